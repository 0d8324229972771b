/*
 * exit_segv: a store through a NULL pointer (SIGSEGV, default disposition); the leak check still
 * happens.
 *  - main's volatile local:     64 still reachable
 *  - a dropped block:           48 definitely lost
 */
// SIGNAL 11
// EXPECT definitely_lost=48/1 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=64/1
// EXPECT_FUNC alloc_filled definitely_lost=48/1
#include <stdlib.h>

#include "lt.h"

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

int *volatile g_null;

int main(void)
{
    void *volatile keep = alloc_filled(64);
    lt_escape(alloc_filled(48));
    LT_END();
    *g_null = 1;
    lt_escape(keep);
    return 0;
}
