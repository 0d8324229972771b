/*
 * pvalloc: pvalloc(n) allocates n rounded up to a whole number of pages, and the caller owns all
 * of it, so the block's size is the rounded one: a pointer stored anywhere in the page is inside
 * the block.
 *  - g_page = pvalloc(10): a 4096-byte block; at byte 2048 of it (beyond the 10 requested) sits
 *    the only pointer to a 16-byte block Q. Both still reachable (4112/2) only if the page is
 *    tracked as 4096 bytes.
 *  - pvalloc(5000), dropped: 8192 bytes definitely lost.
 * (glibc 2.36 computes the rounding as (n + pagesize - 1) & -(pagesize - 1), which asks for one
 * byte more than the page multiple: 4097 for 10, 8193 for 5000. The memory the caller may use is
 * still the page multiple; a tracker must interpose pvalloc itself, as glibc's pvalloc calls its
 * internal memalign, not the interposable one.)
 */
// NO_VALGRIND valgrind 3.19 does not implement pvalloc: its replacement prints "Program aborting because of call to pvalloc" and calls _exit(99)
// EXPECT definitely_lost=8192/1 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=4112/2
// EXPECT_FUNC pvalloc_and_drop definitely_lost=8192/1
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "lt.h"

char *g_page;

static LT_NOINLINE void pvalloc_and_drop(size_t n)
{
    char *p = pvalloc(n);
    if (!p || (uintptr_t)p % 4096) exit(90);
    lt_fill(p, (n + 4095) & ~(size_t)4095);
}

static LT_NOINLINE void run(void)
{
    g_page = pvalloc(10);
    if (!g_page || (uintptr_t)g_page % 4096) exit(91);
    lt_fill(g_page, 4096);
    void *q = malloc(16);
    lt_fill(q, 16);
    *(void **)(g_page + 2048) = q;
    pvalloc_and_drop(5000);
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
