/*
 * cycle_reachable: cycles hanging off roots.
 *  - global -> A <-> B (40 bytes each): still reachable.
 *  - global -> X -> Y -> Z -> X (24 bytes each): still reachable.
 *  - global -> P+8 (an interior pointer), P <-> Q (64 bytes each): P is only reached through an
 *    interior pointer, so it is possibly lost; Q is reached from a possibly-lost block, so it is
 *    possibly lost too (valgrind never upgrades a block reached from a "possible" one), and Q's
 *    start pointer back to P does not make P reachable either. None of valgrind's heuristics
 *    applies to P+8: P's first word is a heap address (not a plausible new[] count or length64)
 *    and the word at P+8 is the fill pattern, not a vtable pointer.
 */
// EXPECT definitely_lost=0/0 indirectly_lost=0/0 possibly_lost=128/2 still_reachable=152/5
#include <stdlib.h>

#include "lt.h"

struct link {
    struct link *next;
    long data[];
};

struct link *g_cycle2, *g_cycle3;
char *g_interior;

static LT_NOINLINE struct link *new_link(size_t size)
{
    struct link *l = malloc(size);
    lt_fill(l, size);
    l->next = NULL;
    return l;
}

static LT_NOINLINE void run(void)
{
    struct link *a = new_link(40), *b = new_link(40);
    a->next = b;
    b->next = a;
    g_cycle2 = a;

    struct link *x = new_link(24), *y = new_link(24), *z = new_link(24);
    x->next = y;
    y->next = z;
    z->next = x;
    g_cycle3 = y;

    struct link *p = new_link(64), *q = new_link(64);
    p->next = q;
    q->next = p;
    g_interior = (char *)p + 8;
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
