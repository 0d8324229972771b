/*
 * ls_threads.c - per-thread setup and the registry of thread stacks.
 *
 * The leak scan needs two things about threads: where each live thread's stack ends (its roots
 * run from the parked SP to there) and which memory used to be the stack of a thread that has
 * exited (glibc caches those mappings for reuse; their stale words must not act as roots, since
 * valgrind, tracking SP, never sees them). Threads started through pthread_create run through a
 * trampoline that records their stack range; a pthread key destructor marks them dead.
 */
#define _GNU_SOURCE
#include "ls_agent.h"

#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LS_MAX_THREAD_RECS 4096

static ls_thread_rec_t *recs; /* mapped at init */
static _Atomic size_t nrecs;
static _Atomic int recs_lock;
static pthread_key_t exit_key;
static bool have_key;

extern void *__libc_stack_end;

static int find_stack_map(const ls_mapping_t *m, void *ctx)
{
    uintptr_t *bounds = ctx;
    if (bounds[0] >= m->lo && bounds[0] < m->hi) {
        bounds[1] = m->lo;
        bounds[2] = m->hi;
        return 1;
    }
    return 0;
}

void ls__thread_init_slow(ls_tls_t *t)
{
    t->inited = 1;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (tid == getpid()) {
        /* Main thread: the mapping holding __libc_stack_end ([stack]). */
        uintptr_t b[3] = {(uintptr_t)__libc_stack_end, 0, 0};
        ls__maps_foreach(find_stack_map, b);
        t->stack_lo = b[1];
        t->stack_hi = b[2];
        return;
    }
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            t->stack_lo = (uintptr_t)addr;
            t->stack_hi = (uintptr_t)addr + size;
        }
        pthread_attr_destroy(&attr);
    }
}

static void on_thread_exit(void *p)
{
    ls_thread_rec_t *r = p;
    atomic_store(&r->tid, 0);
}

void ls__threads_init(void)
{
    recs = ls__map(LS_MAX_THREAD_RECS * sizeof(ls_thread_rec_t));
    have_key = pthread_key_create(&exit_key, on_thread_exit) == 0;
}

void ls__threads_register_self(void)
{
    ls_tls_t *t = &ls__tls;
    if (!t->inited) ls__thread_init_slow(t);
    if (!recs || !t->stack_hi) return;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    ls_thread_rec_t *r = NULL;
    ls__spin_lock(&recs_lock);
    size_t n = atomic_load(&nrecs);
    /* glibc reuses cached stacks: a dead record with the same range is this stack's. */
    for (size_t i = 0; i < n && !r; i++)
        if (!atomic_load(&recs[i].tid) && recs[i].stack_lo == t->stack_lo &&
            recs[i].stack_hi == t->stack_hi)
            r = &recs[i];
    if (!r && n < LS_MAX_THREAD_RECS) {
        r = &recs[n];
        atomic_store(&nrecs, n + 1);
    }
    for (size_t i = 0; i < n && !r; i++) /* full: forget the oldest dead stack */
        if (!atomic_load(&recs[i].tid)) r = &recs[i];
    if (r) {
        r->stack_lo = t->stack_lo;
        r->stack_hi = t->stack_hi;
        r->tp = (uintptr_t)pthread_self();
        atomic_store(&r->tid, tid);
    }
    ls__spin_unlock(&recs_lock);
    if (r && have_key) pthread_setspecific(exit_key, r);
}

size_t ls__threads_snapshot(ls_thread_rec_t *out, size_t max)
{
    ls__spin_lock(&recs_lock);
    size_t n = atomic_load(&nrecs);
    if (n > max) n = max;
    for (size_t i = 0; i < n; i++) {
        out[i].tid = atomic_load(&recs[i].tid);
        out[i].stack_lo = recs[i].stack_lo;
        out[i].stack_hi = recs[i].stack_hi;
        out[i].tp = recs[i].tp;
    }
    ls__spin_unlock(&recs_lock);
    return n;
}

void ls__threads_after_fork_child(void)
{
    atomic_store(&recs_lock, 0);
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    pid_t tid = (pid_t)syscall(SYS_gettid);
    size_t n = atomic_load(&nrecs);
    /* Only the forking thread lives on in the child. */
    for (size_t i = 0; i < n; i++)
        atomic_store(&recs[i].tid, (sp >= recs[i].stack_lo && sp < recs[i].stack_hi) ? tid : 0);
}
