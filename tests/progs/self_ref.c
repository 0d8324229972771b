/*
 * self_ref: a block that points to itself is not thereby reachable.
 *  - S (48 bytes) points to itself and to C (16 bytes): S definitely lost, C indirectly lost.
 *  - T (32 bytes) points only to itself: definitely lost.
 *  - R (8 bytes) points to itself and is held by a global: still reachable.
 */
// EXPECT definitely_lost=80/2 indirectly_lost=16/1 possibly_lost=0/0 still_reachable=8/1
// EXPECT_FUNC make_self_ref
#include <stdlib.h>

#include "lt.h"

void *g_kept;

static LT_NOINLINE void **make_self_ref(size_t size)
{
    void **b = malloc(size);
    lt_fill(b, size);
    b[0] = b;
    return b;
}

static LT_NOINLINE void run(void)
{
    void **s = make_self_ref(48);
    void **c = malloc(16);
    lt_fill(c, 16);
    s[1] = c;
    s = c = NULL;
    make_self_ref(32);
    g_kept = make_self_ref(8);
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
