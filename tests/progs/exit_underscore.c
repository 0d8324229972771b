/*
 * exit_underscore: _exit(5) from main: no atexit handlers, no destructors, yet the leak check
 * still happens (valgrind checks at the exit_group system call).
 *  - main's volatile local (its frame is live at _exit):         100 still reachable
 *  - a global whose block an atexit handler would have freed:     50 still reachable
 *  - a dropped block:                                             20 definitely lost
 */
// EXIT 5
// EXPECT definitely_lost=20/1 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=150/2
// EXPECT_FUNC alloc_filled definitely_lost=20/1
#include <stdlib.h>
#include <unistd.h>

#include "lt.h"

static void *g_kept;

static void free_kept(void)
{
    free(g_kept);
    g_kept = NULL;
}

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

int main(void)
{
    void *volatile keep = alloc_filled(100);
    g_kept = alloc_filled(50);
    if (atexit(free_kept)) return 90;
    lt_escape(alloc_filled(20));
    LT_END();
    _exit(5);
    lt_escape(keep);
}
