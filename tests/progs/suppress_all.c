/*
 * suppress_all: every lost block is suppressed; only a possibly-lost block remains. With
 * --error-exitcode 42 leakscope must exit with the program's own status (4): only definitely and
 * indirectly lost blocks (after suppressions) trigger the error exit code.
 *  - lost_one / lost_two leak 16 bytes and a 2-node list (24 + 24): suppressed by leak:lost_*
 *    (the list's second node is allocated in lost_two too, so it is suppressed as well)
 *  - a 40-byte block held only through an interior pointer:          possibly lost, not suppressed
 */
// SUPPRESS leak:lost_*
// ERROR_EXITCODE 42
// EXIT 4
// EXPECT definitely_lost=0/0 indirectly_lost=0/0 possibly_lost=40/1 still_reachable=0/0 suppressed=64/3
#include <stdlib.h>

#include "lt.h"

char *g_interior;

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void lost_one(void) { lt_escape(alloc_filled(16)); }

static LT_NOINLINE void lost_two(void)
{
    void **a = alloc_filled(24);
    a[0] = alloc_filled(24);
}

static LT_NOINLINE void keep_interior(void) { g_interior = (char *)alloc_filled(40) + 20; }

int main(void)
{
    lost_one();
    lost_two();
    keep_interior();
    LT_END();
    return 4;
}
