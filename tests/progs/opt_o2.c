/*
 * opt_o2: built with -O2 -fomit-frame-pointer: allocation stacks must be unwound with DWARF CFI
 * (no frame-pointer chain), through noinline functions, a recursion and a frame with a VLA.
 *  - top_level builds a 4-node list through mid_level -> leaf_alloc and drops it:
 *    16/1 definitely lost + 48/3 indirectly lost
 *  - recurse(6) (argc is 1) allocates 24 bytes at the bottom of the recursion and drops it:  24/1
 *  - vla_frame allocates 40 bytes below a frame with a variable-length array:    40/1
 * definitely lost 80 bytes in 3 blocks.
 * No call is a tail call (each caller works on the result), so every function keeps a frame.
 * At -O2 pointers live in registers: callee-saved ones are restored by each epilogue, scratch
 * ones are clobbered by later calls and LT_END().
 */
// CFLAGS -O2 -g -fomit-frame-pointer
// EXPECT definitely_lost=80/3 indirectly_lost=48/3 possibly_lost=0/0 still_reachable=0/0
// EXPECT_FUNC leaf_alloc definitely_lost=80/3
// EXPECT_FUNC mid_level definitely_lost=16/1
// EXPECT_FUNC top_level definitely_lost=16/1
// EXPECT_FUNC top_level indirectly_lost=48/3
// EXPECT_FUNC recurse definitely_lost=24/1
// EXPECT_FUNC vla_frame definitely_lost=40/1
// EXPECT_FUNC run definitely_lost=80/3
// EXPECT_FUNC main definitely_lost=80/3
#include <stdlib.h>

#include "lt.h"

struct node {
    struct node *next;
    long val;
};

volatile int g_depth_seen;

LT_NOINLINE void *leaf_alloc(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

LT_NOINLINE struct node *mid_level(long v)
{
    struct node *n = leaf_alloc(sizeof *n);
    n->val = v;
    n->next = NULL;
    return n;
}

LT_NOINLINE void top_level(int count)
{
    struct node *head = NULL;
    for (int i = 0; i < count; i++) {
        struct node *n = mid_level(i);
        n->next = head;
        head = n;
    }
    lt_escape(head);
}

LT_NOINLINE int recurse(int depth)
{
    if (depth == 0) {
        lt_escape(leaf_alloc(24));
        return 0;
    }
    int r = recurse(depth - 1) + 1;
    g_depth_seen = r;
    return r;
}

LT_NOINLINE long vla_frame(int n)
{
    volatile char buf[n];
    for (int i = 0; i < n; i++) buf[i] = (char)i;
    lt_escape(leaf_alloc(40));
    return buf[n / 2];
}

LT_NOINLINE void run(int argc)
{
    top_level(4);
    if (recurse(5 + argc) != 5 + argc) exit(90);
    if (vla_frame(100 + argc) != (100 + argc) / 2) exit(91);
}

int main(int argc, char **argv)
{
    (void)argv;
    run(argc);
    LT_END();
    return 0;
}
