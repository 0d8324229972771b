/*
 * aligned_family: aligned allocators; the reported size is the requested one, the block starts at
 * the aligned address returned.
 *  - posix_memalign(64, 100), dropped:           100
 *  - aligned_alloc(32, 96), dropped:              96
 *  - memalign(128, 40), dropped:                  40
 *  - valloc(10), dropped:                         10   (valgrind: memalign(pagesize, 10))
 *  definitely lost 246 bytes in 4 blocks
 *  - posix_memalign(4096, 500) kept in a global:  500  still reachable
 *  - memalign(256, 64) with only a pointer to its byte 32 kept: 64 possibly lost
 * pvalloc is tested separately (pvalloc.c): valgrind aborts the program on it.
 */
// EXPECT definitely_lost=246/4 indirectly_lost=0/0 possibly_lost=64/1 still_reachable=500/1
// EXPECT_FUNC aligned_and_drop definitely_lost=246/4
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "lt.h"

void *g_page_aligned;
char *g_interior;

static LT_NOINLINE void aligned_and_drop(int which)
{
    void *p = NULL;
    size_t n = 0, align = 1;
    switch (which) {
    case 0: if (posix_memalign(&p, align = 64, n = 100)) exit(90); break;
    case 1: p = aligned_alloc(align = 32, n = 96); break;
    case 2: p = memalign(align = 128, n = 40); break;
    case 3: p = valloc(n = 10); align = 4096; break;
    }
    if (!p || (uintptr_t)p % align) exit(91);
    lt_fill(p, n);
}

static LT_NOINLINE void run(void)
{
    for (int i = 0; i < 4; i++) aligned_and_drop(i);
    if (posix_memalign(&g_page_aligned, 4096, 500)) exit(92);
    lt_fill(g_page_aligned, 500);
    char *m = memalign(256, 64);
    if (!m) exit(93);
    lt_fill(m, 64);
    g_interior = m + 32;
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
