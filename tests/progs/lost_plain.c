/*
 * lost_plain: blocks whose only pointer is dropped are definitely lost; a freed block is not
 * reported at all; nothing is left reachable (the program never touches stdio or threads, so
 * glibc itself allocates nothing).
 *
 * The last block allocated is 24 bytes: natively, glibc's main_arena.top then points at the top
 * chunk header, which lies 16 bytes into that block (the next chunk's header overlaps the last 8
 * usable bytes). malloc's own bookkeeping must not be a root, or this block would come out
 * "possibly lost" instead of "definitely lost". (Under valgrind glibc's malloc is replaced, so
 * valgrind never sees such pointers.)
 */
// EXPECT definitely_lost=72/3 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=0/0
// EXPECT_FUNC leak_block definitely_lost=72/3
#include <stdlib.h>

#include "lt.h"

static LT_NOINLINE void leak_block(size_t n)
{
    char *p = malloc(n); /* dropped on return: the frame dies, lt_scrub_stack() wipes it */
    lt_fill(p, n);
}

static LT_NOINLINE void alloc_and_free(size_t n)
{
    char *p = malloc(n);
    lt_fill(p, n);
    free(p);
}

static LT_NOINLINE void run(void)
{
    leak_block(16);
    alloc_and_free(100);
    leak_block(32);
    alloc_and_free(7);
    leak_block(24);
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
