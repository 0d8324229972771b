/*
 * exit_sigterm: raise(SIGTERM) with the default disposition terminates the process; the leak
 * check still happens.
 *  - main's volatile local:     64 still reachable
 *  - a dropped block:           40 definitely lost
 */
// SIGNAL 15
// EXPECT definitely_lost=40/1 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=64/1
// EXPECT_FUNC alloc_filled definitely_lost=40/1
#include <signal.h>
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
    lt_escape(alloc_filled(40));
    LT_END();
    raise(SIGTERM);
    lt_escape(keep);
    return 0;
}
