/*
 * stress_threads: 8 threads each run 1,250,000 random heap operations (10M in all): malloc,
 * calloc, realloc (grow and shrink), free, handing blocks to another thread through lock-free
 * mailboxes (the receiver, or whoever displaces them, frees them) and draining their own
 * mailbox. Each thread's PRNG (xorshift64*) has a fixed seed, so its sequence of operations is
 * deterministic; only the interleaving varies. At the end every block is freed except the ones
 * each thread deliberately leaks after its loop:
 *   thread t: three blocks of 16 * (t + 1), 1000 + t and 7 bytes, and a 2-node list (32 + 32)
 * definitely lost: sum over t of 16(t+1) + 1000 + t + 7 + 32 = 576 + 8028 + 56 + 256 = 8916 bytes
 * in 32 blocks; indirectly lost: 8 list tails, 256 bytes in 8 blocks.
 * The threads have exited (and were joined) at exit: their stacks are not roots (see
 * thread_exited.c), their DTVs are freed as under valgrind (__libc_freeres), nothing is left
 * reachable. Every kept block is fully written with a non-pointer pattern, so stale malloc data
 * never looks like a pointer.
 * ARGS: optional number of operations per thread (default 1250000).
 */
// NO_VALGRIND ten million allocator calls under memcheck take far too long; the same verdict logic is covered at small scale by the other thread tests
// LIBS pthread
// LABELS stress
// TIMEOUT 300
// EXPECT definitely_lost=8916/32 indirectly_lost=256/8 possibly_lost=0/0 still_reachable=0/0
// EXPECT_FUNC leak_fixed definitely_lost=8916/32
// EXPECT_FUNC leak_fixed indirectly_lost=256/8
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lt.h"

#define NTHREADS 8
#define NSLOTS 512
#define MBOX 64

static void *slots[NTHREADS][NSLOTS];
static _Atomic(void *) mbox[NTHREADS][MBOX];
static long g_ops_per_thread = 1250000;
static atomic_ulong g_total_ops, g_cross_frees;

static inline uint64_t xorshift64s(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline size_t rand_size(uint64_t r)
{
    if ((r >> 8) % 100 < 2) return 1024 + (size_t)((r >> 16) % 16384); /* 2%: larger blocks */
    return 1 + (size_t)((r >> 16) % 256);
}

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    if (!p) abort();
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void leak_fixed(int t)
{
    lt_escape(alloc_filled(16 * (size_t)(t + 1)));
    lt_escape(alloc_filled(1000 + (size_t)t));
    lt_escape(alloc_filled(7));
    void **head = alloc_filled(32);
    head[0] = alloc_filled(32);
    lt_escape(head);
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1);
    unsigned long cross = 0;
    void **mine = slots[t];

    for (long op = 0; op < g_ops_per_thread; op++) {
        uint64_t r = xorshift64s(&seed);
        unsigned k = (unsigned)(r % NSLOTS);
        unsigned a = (unsigned)((r >> 24) % 100);
        void *p = mine[k];
        if (!p) {
            size_t n = rand_size(r);
            if (a < 50) {
                p = malloc(n);
                if (!p) abort();
                lt_fill(p, n);
            } else {
                p = calloc(1, n); /* zeros: never a pointer */
                if (!p) abort();
            }
            mine[k] = p;
        } else if (a < 40) {
            free(p);
            mine[k] = NULL;
        } else if (a < 70) {
            size_t n = rand_size(r >> 7);
            p = realloc(p, n);
            if (!p) abort();
            lt_fill(p, n);
            mine[k] = p;
        } else if (a < 90) {
            /* hand the block to another thread's mailbox; free whatever it displaces */
            unsigned u = (unsigned)(t + 1 + (int)((r >> 40) % (NTHREADS - 1))) % NTHREADS;
            unsigned j = (unsigned)((r >> 48) % MBOX);
            mine[k] = NULL;
            void *old = atomic_exchange(&mbox[u][j], p);
            if (old) {
                free(old);
                cross++;
            }
        } else {
            unsigned j = (unsigned)((r >> 48) % MBOX);
            void *q = atomic_exchange(&mbox[t][j], NULL);
            if (q) {
                free(q); /* allocated by another thread */
                cross++;
            }
        }
    }
    for (unsigned k = 0; k < NSLOTS; k++) {
        free(mine[k]);
        mine[k] = NULL;
    }
    atomic_fetch_add(&g_total_ops, (unsigned long)g_ops_per_thread);
    atomic_fetch_add(&g_cross_frees, cross);
    leak_fixed(t);
    LT_END();
    return NULL;
}

static LT_NOINLINE int run(void)
{
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t)) return 90;
    for (int t = 0; t < NTHREADS; t++)
        if (pthread_join(th[t], NULL)) return 91;
    for (int u = 0; u < NTHREADS; u++)
        for (int j = 0; j < MBOX; j++) free(atomic_exchange(&mbox[u][j], NULL));
    if (atomic_load(&g_total_ops) != (unsigned long)g_ops_per_thread * NTHREADS) return 92;
    if (atomic_load(&g_cross_frees) == 0) return 93;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) g_ops_per_thread = atol(argv[1]);
    int rc = run();
    LT_END();
    return rc;
}
