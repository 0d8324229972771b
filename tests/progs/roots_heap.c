/*
 * roots_heap: pointers stored in heap blocks.
 *  - global -> R (64); R[0] -> A (32); A[0] -> C (16): all three still reachable (112/3)
 *  - R[1] = B+8, an interior pointer into B (48); B[0] -> F (20): B is reached only through an
 *    interior pointer, so possibly lost, and F, reached from B, too (68/2). (B+8: B's first word
 *    is a heap address, so neither the new[] nor the length64 heuristic applies.)
 *  - a lost block L (40) holds an interior pointer L[0] = E+16 into E (64): L is definitely
 *    lost, E indirectly lost (valgrind's clique pass follows interior pointers like start
 *    pointers).
 */
// EXPECT definitely_lost=40/1 indirectly_lost=64/1 possibly_lost=68/2 still_reachable=112/3
#include <stdlib.h>

#include "lt.h"

void **g_root;

static LT_NOINLINE void **alloc_filled(size_t n)
{
    void **p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void run(void)
{
    void **r = alloc_filled(64), **a = alloc_filled(32), **c = alloc_filled(16);
    void **b = alloc_filled(48), **f = alloc_filled(20);
    r[0] = a;
    a[0] = c;
    r[1] = (char *)b + 8;
    b[0] = f;
    g_root = r;

    void **l = alloc_filled(40), **e = alloc_filled(64);
    l[0] = (char *)e + 16;
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
