/*
 * exit_abort: abort() (SIGABRT, default disposition). valgrind checks leaks when a fatal signal
 * terminates the process; the frames up to abort() are live.
 *  - main's volatile local:     64 still reachable
 *  - a dropped block:           32 definitely lost
 */
// SIGNAL 6
// EXPECT definitely_lost=32/1 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=64/1
// EXPECT_FUNC alloc_filled definitely_lost=32/1
#include <stdlib.h>

#include "lt.h"

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

int main(void)
{
    void *volatile keep = alloc_filled(64);
    lt_escape(alloc_filled(32));
    LT_END();
    abort();
    lt_escape(keep);
}
