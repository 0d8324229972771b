/*
 * cycle_lost: unreachable cycles. valgrind's clique pass starts a clique at each still-unreached
 * block in address order: the first block of a cycle becomes the (definitely lost) clique leader
 * and the rest of the cycle is indirectly lost, although every block of a cycle is pointed to.
 * The blocks of each cycle have equal sizes, so the verdict does not depend on which one has the
 * lowest address.
 *  - A <-> B, 40 bytes each: 40/1 definite + 40/1 indirect.
 *  - X -> Y -> Z -> X, 24 bytes each: 24/1 definite + 48/2 indirect.
 */
// EXPECT definitely_lost=64/2 indirectly_lost=88/3 possibly_lost=0/0 still_reachable=0/0
// EXPECT_FUNC make_cycle2
// EXPECT_FUNC make_cycle3
#include <stdlib.h>

#include "lt.h"

struct link {
    struct link *next;
    long data[];
};

static LT_NOINLINE struct link *new_link(size_t size)
{
    struct link *l = malloc(size);
    lt_fill(l, size);
    l->next = NULL;
    return l;
}

static LT_NOINLINE void make_cycle2(void)
{
    struct link *a = new_link(40), *b = new_link(40);
    a->next = b;
    b->next = a;
}

static LT_NOINLINE void make_cycle3(void)
{
    struct link *x = new_link(24), *y = new_link(24), *z = new_link(24);
    x->next = y;
    y->next = z;
    z->next = x;
}

int main(void)
{
    make_cycle2();
    make_cycle3();
    LT_END();
    return 0;
}
