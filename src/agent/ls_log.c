/*
 * ls_log.c - diagnostics and small primitives. Messages are formatted into a stack buffer with
 * vsnprintf (only integer and string conversions are used, which glibc formats without
 * allocating) and written to fd 2 in one write(2), prefixed "leakscope[pid]: ".
 */
#include "ls_agent.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void vlog(const char *kind, const char *fmt, va_list ap)
{
    char buf[1024];
    int saved = errno;
    int n = snprintf(buf, sizeof(buf), "leakscope[%d]: %s", (int)getpid(), kind);
    if (n < 0) n = 0;
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (m > 0) n += m;
    if (n > (int)sizeof(buf) - 2) n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
    errno = saved;
}

void ls__log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void ls__error(const char *fmt, ...)
{
    atomic_fetch_add(&ls__g.agent_errors, 1);
    va_list ap;
    va_start(ap, fmt);
    vlog("error: ", fmt, ap);
    va_end(ap);
}

uint64_t ls__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec - ls__g.start_mono_ns;
}

void ls__spin_lock(_Atomic int *l)
{
    for (unsigned spins = 0;; spins++) {
        if (!atomic_load_explicit(l, memory_order_relaxed) &&
            !atomic_exchange_explicit(l, 1, memory_order_acquire))
            return;
        /* The holder may be preempted (2 cores, many threads): yield rather than burn. */
        if (spins < 64)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
}
