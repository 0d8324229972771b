/*
 * ls_stopworld.c - parks every other thread of the process so the leak scan sees a still heap
 * and each thread's registers.
 *
 * The caller first takes all agent locks (no parked thread can then hold one), then we send each
 * task in /proc/self/task the stop signal. Its handler copies the interrupted registers from the
 * ucontext into the thread's slot, marks it parked, and sleeps on a futex until the session is
 * released. Threads created meanwhile are caught by listing the tasks again until no new ones
 * appear. A thread that never parks (it blocks the signal) is left running and reported as
 * unresponsive; the scan then takes its whole stack as roots and its SP from
 * /proc/self/task/TID/syscall when it sits in a system call.
 */
#define _GNU_SOURCE
#include "ls_stopworld.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static ls_parked_t *slots;
static _Atomic size_t nslots;
static _Atomic uint32_t session;  /* current stop session id */
static _Atomic uint32_t released; /* session id that has been released */
static struct sigaction old_action;
static int stop_sig;

static long futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

static ls_parked_t *slot_of(pid_t tid)
{
    size_t n = atomic_load(&nslots);
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&slots[i].tid) == tid) return &slots[i];
    return NULL;
}

static void stop_handler(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    int saved_errno = errno;
    uint32_t s = atomic_load(&session);
    ls_parked_t *p = atomic_load(&released) != s ? slot_of((pid_t)syscall(SYS_gettid)) : NULL;
    if (p && atomic_load(&p->session) == s) {
        p->sp = ls__ucontext_regs(ucv, p->regs);
        p->pc = (uintptr_t)((const ucontext_t *)ucv)->uc_mcontext.gregs[REG_RIP];
        p->nregs = 16;
        atomic_store(&p->state, LS_PARKED);
        for (;;) {
            uint32_t r = atomic_load(&released);
            if (r == s) break;
            futex(&released, FUTEX_WAIT_PRIVATE, r);
        }
        atomic_store(&p->state, LS_LEFT);
    } else {
        ls__control_poke(); /* no session for us: a control connection (ls_control.c) */
    }
    errno = saved_errno;
}

int ls__stopworld_init(int signo)
{
    slots = ls__map(LS_MAX_PARKED * sizeof(ls_parked_t));
    if (!slots) return -1;
    stop_sig = signo;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = stop_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask); /* nothing else runs on a parked thread */
    return sigaction(signo, &sa, &old_action);
}

/* Lists task ids with getdents64 (no allocation); calls add for each one not seen before. */
static size_t list_tasks(pid_t self, uint32_t s)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t added = 0;
    char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(buf + off);
            off += d->reclen;
            pid_t tid = 0;
            const char *c = d->name;
            if (*c < '0' || *c > '9') continue;
            for (; *c >= '0' && *c <= '9'; c++) tid = tid * 10 + (*c - '0');
            /* The control thread is agent code: never parked, its stack never a root. */
            if (tid == self || slot_of(tid) || tid == atomic_load(&ls__g.control_tid)) continue;
            size_t i = atomic_load(&nslots);
            if (i >= LS_MAX_PARKED) continue;
            ls_parked_t *p = &slots[i];
            memset(p, 0, sizeof(*p));
            atomic_store(&p->session, s);
            atomic_store(&p->tid, tid);
            /* SIGNALLED before the signal: the handler may park the thread on another CPU before
             * tgkill even returns, and a later store would undo its PARKED. */
            atomic_store(&p->state, LS_SIGNALLED);
            atomic_store(&nslots, i + 1);
            if (syscall(SYS_tgkill, getpid(), tid, stop_sig) < 0) atomic_store(&p->state, LS_GONE);
            added++;
        }
    }
    close(fd);
    return added;
}

static void sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static uintptr_t parse_hex(const char *p)
{
    if (p[0] != '0' || p[1] != 'x') return 0;
    uintptr_t v = 0;
    for (p += 2;; p++) {
        if (*p >= '0' && *p <= '9')
            v = v * 16 + (uintptr_t)(*p - '0');
        else if (*p >= 'a' && *p <= 'f')
            v = v * 16 + (uintptr_t)(*p - 'a' + 10);
        else
            return v;
    }
}

int ls__thread_syscall_regs(pid_t tid, uintptr_t *sp, uintptr_t *pc)
{
    char path[64], buf[256];
    int n = 0;
    const char *pre = "/proc/self/task/";
    for (const char *c = pre; *c; c++) path[n++] = *c;
    char digits[16];
    int nd = 0;
    for (pid_t t = tid; t; t /= 10) digits[nd++] = (char)('0' + t % 10);
    while (nd) path[n++] = digits[--nd];
    for (const char *c = "/syscall"; *c; c++) path[n++] = *c;
    path[n] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len <= 0) return 0;
    buf[len] = 0;
    /* "nr arg1 .. arg6 sp pc": the 8th and 9th fields. */
    char *p = buf;
    for (int field = 0; field < 7; field++) {
        while (*p && *p != ' ') p++;
        while (*p == ' ') p++;
    }
    *sp = parse_hex(p);
    while (*p && *p != ' ') p++;
    while (*p == ' ') p++;
    *pc = parse_hex(p);
    return *sp && *pc ? 1 : 0;
}

static uintptr_t syscall_sp(pid_t tid)
{
    uintptr_t sp, pc;
    return ls__thread_syscall_regs(tid, &sp, &pc) == 1 ? sp : 0;
}

size_t ls__stopworld_stop(ls_parked_t **out, unsigned *unresponsive)
{
    pid_t self = (pid_t)syscall(SYS_gettid);
    uint32_t s = atomic_fetch_add(&session, 1) + 1;
    atomic_store(&nslots, 0);
    *unresponsive = 0;
    if (!slots) {
        *out = NULL;
        return 0;
    }
    /* Round after round until no new thread shows up (one may be starting as we look). */
    for (int round = 0; round < 16; round++) {
        if (!list_tasks(self, s) && round) break;
        for (int waited = 0; waited < 2000; waited++) { /* up to ~0.5 s */
            bool all = true;
            size_t n = atomic_load(&nslots);
            for (size_t i = 0; i < n; i++)
                if (atomic_load(&slots[i].state) == LS_SIGNALLED) all = false;
            if (all) break;
            if (waited < 50)
                sched_yield();
            else
                sleep_us(250);
        }
    }
    size_t n = atomic_load(&nslots);
    for (size_t i = 0; i < n; i++) {
        ls_parked_t *p = &slots[i];
        if (atomic_load(&p->state) == LS_SIGNALLED) {
            /* Not parked: scan its stack from where it sleeps, if we can tell. */
            p->sp = syscall_sp(atomic_load(&p->tid));
            p->unresponsive = true;
            (*unresponsive)++;
        }
    }
    *out = slots;
    return n;
}

void ls__stopworld_resume(void)
{
    atomic_store(&released, atomic_load(&session));
    futex(&released, FUTEX_WAKE_PRIVATE, 0x7fffffff);
    /* Wait briefly for parked threads to leave, so a following session starts clean. */
    size_t n = atomic_load(&nslots);
    for (int waited = 0; waited < 1000; waited++) {
        bool all = true;
        for (size_t i = 0; i < n; i++)
            if (atomic_load(&slots[i].state) == LS_PARKED) all = false;
        if (all) break;
        sched_yield();
    }
}
