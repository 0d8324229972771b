/*
 * refs_bench.c - the cost of one ls_ref_get + ls_ref_put pair as the program sees it, next to
 * the cost of one tracked malloc/free pair in the same process (bench/hotpath_bench.c's loop).
 *
 * Run under the agent: LD_PRELOAD=libleakscope.so refs_bench [PAIRS] [ROUNDS]. Both loops run
 * 4 frames deep, so the unwinder does real work; the get/put loop cycles over 64 registered
 * objects (each object's history fills up and is compacted along the way, as in a long-running
 * program). Prints the best round of each in ns per pair: the minimum is what survives a noisy
 * machine. Without the agent the ls_ref_* calls cost a test of a weak symbol.
 */
#include "leakscope.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

#define NOBJ 64
static void *volatile objs[NOBJ];
static void *volatile ring[64];

static __attribute__((noinline)) void obj_get(void *o)
{
    ls_ref_get(o);
}

static __attribute__((noinline)) void obj_put(void *o)
{
    ls_ref_put(o);
}

static __attribute__((noinline)) void refs3(long n)
{
    for (long i = 0; i < n; i++) {
        void *o = objs[i & (NOBJ - 1)];
        obj_get(o);
        obj_put(o);
    }
}

static __attribute__((noinline)) void churn3(long n)
{
    for (long i = 0; i < n; i++) {
        free(ring[i & 63]);
        ring[i & 63] = malloc(16 + (size_t)(i & 255));
    }
}

#define WRAP(name, inner)                                                                          \
    static __attribute__((noinline)) void name##2(long n)                                          \
    {                                                                                              \
        inner(n);                                                                                  \
        __asm__ volatile("" ::: "memory");                                                         \
    }                                                                                              \
    static __attribute__((noinline)) void name##1(long n)                                          \
    {                                                                                              \
        name##2(n);                                                                                \
        __asm__ volatile("" ::: "memory");                                                         \
    }
WRAP(refs, refs3)
WRAP(churn, churn3)

static double best_of(void (*fn)(long), long n, int rounds)
{
    fn(n / 10); /* warm: stacks interned, caches filled */
    double best = 1e300;
    for (int r = 0; r < rounds; r++) {
        double t = now_ns();
        fn(n);
        t = (now_ns() - t) / (double)n;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 9;
    if (n < 1 || rounds < 1) {
        fprintf(stderr, "usage: refs_bench [PAIRS] [ROUNDS]\n");
        return 2;
    }
    if (!ls_active()) fprintf(stderr, "refs_bench: the agent is not loaded; timing the no-op\n");
    for (int i = 0; i < NOBJ; i++) {
        objs[i] = malloc(64);
        ls_ref_register(objs[i], "bench object", 1);
    }
    double refs = best_of(refs1, n, rounds);
    double mf = best_of(churn1, n, rounds);
    for (int i = 0; i < NOBJ; i++) {
        ls_ref_put(objs[i]);
        free(objs[i]);
    }
    for (int i = 0; i < 64; i++) free(ring[i]);
    printf("best of %d rounds: %.1f ns per get/put pair\n", rounds, refs);
    printf("best of %d rounds: %.1f ns per malloc/free pair\n", rounds, mf);
    return 0;
}
