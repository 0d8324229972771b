/*
 * exit_nested: exit(3) called three calls deep. The frames of main, level1 and level2 are still
 * live when the process exits (valgrind scans them: they are above the stack pointer), so their
 * locals are roots:
 *  - main's volatile local:                       100 bytes still reachable
 *  - level1's volatile local:                      11 bytes still reachable
 *  - level3 drops a block and calls exit(3):       30 bytes definitely lost
 */
// EXIT 3
// EXPECT definitely_lost=30/1 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=111/2
// EXPECT_FUNC level3 definitely_lost=30/1
// EXPECT_FUNC level1 still_reachable=11/1
#include <stdlib.h>

#include "lt.h"

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void level3(void)
{
    lt_escape(alloc_filled(30));
    LT_END();
    exit(3);
}

static LT_NOINLINE void level2(void)
{
    level3();
}

static LT_NOINLINE void level1(void)
{
    void *volatile keep = alloc_filled(11);
    level2();
    lt_escape(keep);
}

int main(void)
{
    void *volatile keep = alloc_filled(100);
    level1();
    lt_escape(keep);
    return 0;
}
