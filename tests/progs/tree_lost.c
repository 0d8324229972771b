/*
 * tree_lost: binary trees of 32-byte nodes.
 *  - T1, 7 nodes (depth 3), root pointer dropped: root definitely lost, 6 nodes indirectly lost.
 *  - T2, 7 nodes, root pointer dropped, but a global points at the root's left child: that
 *    3-node subtree is still reachable; the root is definitely lost and its right subtree (3 nodes)
 *    indirectly lost.
 *  - T3, 3 nodes (depth 2) kept in a global: still reachable.
 * Totals: definite 2 roots = 64/2; indirect 6 + 3 = 9 nodes = 288/9; reachable 3 + 3 = 192/6.
 */
// EXPECT definitely_lost=64/2 indirectly_lost=288/9 possibly_lost=0/0 still_reachable=192/6
// EXPECT_FUNC tree_build
#include <stdlib.h>

#include "lt.h"

struct tnode {
    struct tnode *left, *right;
    long key, pad;
};

struct tnode *g_subtree; /* T2's left subtree */
struct tnode *g_kept;    /* T3 */

static long g_next_key;

static LT_NOINLINE struct tnode *tree_build(int depth)
{
    if (depth == 0) return NULL;
    struct tnode *n = malloc(sizeof *n);
    n->key = g_next_key++;
    n->pad = -1;
    n->left = tree_build(depth - 1);
    n->right = tree_build(depth - 1);
    return n;
}

static LT_NOINLINE void run(void)
{
    struct tnode *volatile t = tree_build(3); /* T1 */
    t = tree_build(3);                         /* T1's root pointer overwritten by T2's */
    g_subtree = t->left;
    t = NULL;
    g_kept = tree_build(2);
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
