/*
 * hotpath_bench.c - the cost of one tracked malloc/free pair, as the host sees it.
 *
 * Run it plain and under different agents (LD_PRELOAD=...libleakscope.so); it times ROUNDS
 * rounds of N malloc/free pairs (sizes 16-271 bytes, 64 blocks in flight, called 4 frames deep
 * so the unwinder does real work) and prints the best round in ns per pair: the minimum is what
 * survives a noisy machine. Used to show what a change costs on the allocation path (docs and
 * bench/README.md), e.g. the control channel's (nothing) and the marker floor's (one load).
 * Also built as hotpath_bench_tagged (-include leakscope/tags.h): the malloc below is then a
 * compile-time tag, counted in mode sites without a stack walk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *volatile ring[64];

static __attribute__((noinline)) void churn3(long n)
{
    for (long i = 0; i < n; i++) {
        free(ring[i & 63]);
        ring[i & 63] = malloc(16 + (size_t)(i & 255));
    }
}
static __attribute__((noinline)) void churn2(long n)
{
    churn3(n);
    __asm__ volatile("" ::: "memory");
}
static __attribute__((noinline)) void churn1(long n)
{
    churn2(n);
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 9;
    if (n < 1 || rounds < 1) {
        fprintf(stderr, "usage: hotpath_bench [PAIRS] [ROUNDS]\n");
        return 2;
    }
    churn1(n / 10); /* warm: stacks interned, caches filled */
    double best = 1e300;
    for (int r = 0; r < rounds; r++) {
        double t = now_ns();
        churn1(n);
        t = (now_ns() - t) / (double)n;
        if (t < best) best = t;
    }
    for (int i = 0; i < 64; i++) free(ring[i]);
    printf("best of %d rounds: %.1f ns per malloc/free pair\n", rounds, best);
    return 0;
}
