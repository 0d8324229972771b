/*
 * fork_threads: a thread forks 8 times while 3 other threads keep allocating, reallocating and
 * freeing; every child allocates and frees some more, leaks a known amount and exits. Neither side
 * may deadlock (a child that inherits a lock held by an allocating thread at fork time would hang:
 * the parent gives each child 60 s, then kills it and exits 3), and each child's report must be
 * right.
 *
 * Child (one report FILE.<pid> each):
 *  - child_leak: five 1000-byte blocks dropped                          5000/5 definitely lost
 *  - child_leak_list: a 2-node list of 512-byte nodes dropped           512/1 definite + 512/1
 *                                                                       indirect
 *  - the allocator threads' blocks are in global slot arrays: still reachable in the child.
 *    But at the instant of fork each allocator thread may be between malloc/realloc returning and
 *    storing the result in its slot: that block (at most one per thread, at most 256 bytes) is
 *    then held only by a thread that does not exist in the child, and may be lost there. Hence
 *    the range 5512/6 .. 5512 + 3 * 256 = 6280/9 for the child's definitely lost total; the
 *    child's own leaks are pinned exactly by EXPECT_CHILD_FUNC.
 * Parent: all allocator blocks freed, threads joined; parent_leak drops 4242 bytes.
 * Allocator blocks (1..256 bytes, other threads' arenas) and the child's (1000 and 512 bytes,
 * main arena) never share addresses, so a stale slot pointer cannot make a child leak reachable.
 */
// LIBS pthread
// TIMEOUT 240
// JSON_CHILD 8
// EXPECT definitely_lost=4242/1 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=0/0
// EXPECT_CHILD definitely_lost>=5512/6 definitely_lost<=6280/9 indirectly_lost=512/1
// EXPECT_FUNC parent_leak definitely_lost=4242/1
// EXPECT_CHILD_FUNC child_leak definitely_lost=5000/5
// EXPECT_CHILD_FUNC child_leak_list definitely_lost=512/1
// EXPECT_CHILD_FUNC child_leak_list indirectly_lost=512/1
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lt.h"

#define NALLOC 3
#define NFORK 8
#define NSLOTS 64

static void *slots[NALLOC][NSLOTS];
static atomic_int g_stop;
static atomic_ulong g_progress[NALLOC];

static inline uint64_t xorshift64s(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void *allocator(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t seed = 0xD1B54A32D192ED03ULL * (uint64_t)(t + 1);
    void **mine = slots[t];
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        uint64_t r = xorshift64s(&seed);
        unsigned k = (unsigned)(r % NSLOTS);
        size_t n = 1 + (size_t)((r >> 16) % 256);
        if (!mine[k]) {
            void *p = malloc(n);
            if (!p) abort();
            lt_fill(p, n);
            mine[k] = p;
        } else if ((r >> 32) % 2) {
            free(mine[k]);
            mine[k] = NULL;
        } else {
            void *p = realloc(mine[k], n);
            if (!p) abort();
            lt_fill(p, n);
            mine[k] = p;
        }
        atomic_fetch_add_explicit(&g_progress[t], 1, memory_order_relaxed);
    }
    for (unsigned k = 0; k < NSLOTS; k++) {
        free(mine[k]);
        mine[k] = NULL;
    }
    return NULL;
}

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    if (!p) abort();
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void child_leak(void) { lt_escape(alloc_filled(1000)); }

static LT_NOINLINE void child_leak_list(void)
{
    void **head = alloc_filled(512);
    head[0] = alloc_filled(512);
    lt_escape(head);
}

static LT_NOINLINE void parent_leak(void) { lt_escape(alloc_filled(4242)); }

static LT_NOINLINE void child_main(void)
{
    void *churn[16] = {0};
    for (int i = 0; i < 2000; i++) {
        int k = i % 16;
        free(churn[k]);
        churn[k] = alloc_filled(300 + (size_t)(i % 700));
    }
    for (int k = 0; k < 16; k++) free(churn[k]);
    for (int i = 0; i < 5; i++) child_leak();
    child_leak_list();
    LT_END();
    exit(0);
}

static void wait_progress(unsigned long *last)
{
    for (int t = 0; t < NALLOC; t++) {
        while (atomic_load(&g_progress[t]) < last[t] + 200) sched_yield();
        last[t] = atomic_load(&g_progress[t]);
    }
}

static int wait_child(pid_t pid)
{
    struct timespec start, now, nap = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 4;
        if (w < 0) return 5;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 60) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return 3; /* the child deadlocked */
        }
        nanosleep(&nap, NULL);
    }
}

static void *forker(void *arg)
{
    (void)arg;
    unsigned long last[NALLOC] = {0};
    intptr_t rc = 0;
    for (int i = 0; i < NFORK && rc == 0; i++) {
        wait_progress(last); /* the allocators are busy right now */
        pid_t pid = fork();
        if (pid < 0) return (void *)(intptr_t)6;
        if (pid == 0) child_main();
        rc = wait_child(pid);
    }
    return (void *)rc;
}

static LT_NOINLINE int run(void)
{
    pthread_t al[NALLOC], fk;
    void *rc;
    for (int t = 0; t < NALLOC; t++)
        if (pthread_create(&al[t], NULL, allocator, (void *)(intptr_t)t)) return 90;
    if (pthread_create(&fk, NULL, forker, NULL)) return 91;
    if (pthread_join(fk, &rc)) return 92;
    atomic_store(&g_stop, 1);
    for (int t = 0; t < NALLOC; t++)
        if (pthread_join(al[t], NULL)) return 93;
    if (rc) return (int)(intptr_t)rc;
    parent_leak();
    return 0;
}

int main(void)
{
    int rc = run();
    LT_END();
    return rc;
}
