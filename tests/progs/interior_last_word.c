/*
 * interior_last_word: interior pointers to the last 8 bytes of a block, where natively the next
 * malloc chunk's header lies (glibc's chunk header overlaps the last usable word of the chunk
 * before it). For valgrind these are ordinary interior pointers, wherever they are stored:
 *  - X, 40 bytes; a global points at X+32 (e.g. &x->last_member):     possibly lost
 *  - L, 16 bytes, dropped; L[0] = Y+32 into Y (40 bytes): L definitely lost, Y indirectly lost
 *    (the clique pass follows interior pointers)
 * while glibc's own bookkeeping pointer to the top chunk, which here points 16 bytes into the last
 * block allocated (Z, 24 bytes, dropped), is no root at all (valgrind never sees glibc's malloc
 * state) and must not save Z:                                          definitely lost
 * definitely lost 16 + 24 = 40/2, indirectly lost 40/1, possibly lost 40/1.
 * An agent that ignores every word equal to a next-chunk header address (to skip glibc's
 * main_arena.top and bins) misses the first two cases: it has to skip such words only where glibc
 * keeps them (its malloc_state in libc's .data and in thread-arena heaps).
 */
// EXPECT definitely_lost=40/2 indirectly_lost=40/1 possibly_lost=40/1 still_reachable=0/0
// EXPECT_FUNC alloc_filled possibly_lost=40/1
#include <stdlib.h>

#include "lt.h"

char *g_last_word;

static LT_NOINLINE char *alloc_filled(size_t n)
{
    char *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void run(void)
{
    g_last_word = alloc_filled(40) + 32;
    char *y = alloc_filled(40);
    char **l = (char **)alloc_filled(16);
    l[0] = y + 32;
    lt_escape(alloc_filled(24)); /* Z: allocated last, right below glibc's top chunk */
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
