/*
 * pprof_prog.c - a program with known allocation sites, for the Go pprof test
 * (test_go_pprof.py). What each site holds at exit is fixed, so a full-mode profile is known to
 * the byte and a sample profile must come within 10% of it:
 *   big_site      32 blocks of 128 KiB, kept        4 MiB in use
 *   medium_site   16384 blocks of 256 B, kept       4 MiB in use
 *   small_site    131072 blocks of 16 B, kept       2 MiB in use
 *   churn_site    100000 blocks of 1 KiB, freed     0 in use, 100000 KiB allocated
 * Each site calls malloc itself (no inlining), so it is the first frame of its stacks. The kept
 * blocks stay reachable from globals; nothing is printed (stdio would add a block of its own).
 */
#include <stdlib.h>

#define NBIG    32
#define NMEDIUM 16384
#define NSMALL  131072
#define NCHURN  100000

static void *big[NBIG], *medium[NMEDIUM], *small[NSMALL];

__attribute__((noinline)) void *big_site(void)
{
    return malloc(128 * 1024);
}

__attribute__((noinline)) void *medium_site(void)
{
    return malloc(256);
}

__attribute__((noinline)) void *small_site(void)
{
    return malloc(16);
}

__attribute__((noinline)) void *churn_site(void)
{
    return malloc(1024);
}

int main(void)
{
    /* Interleaved, as a real program's sites would be. */
    int churned = 0;
    for (int i = 0; i < NSMALL; i++) {
        small[i] = small_site();
        if (i % (NSMALL / NMEDIUM) == 0) medium[i / (NSMALL / NMEDIUM)] = medium_site();
        if (i % (NSMALL / NBIG) == 0) big[i / (NSMALL / NBIG)] = big_site();
        if (i % 4 == 0) {
            free(churn_site());
            churned++;
        }
    }
    for (; churned < NCHURN; churned++) free(churn_site());
    return 0;
}
