/*
 * possibly_lost: blocks reached only through interior pointers (pointers into the block but not
 * at its start) are "possibly lost" in valgrind's terms, and so is everything reached only from
 * a possibly-lost block.
 *  - X, 100 bytes; a global holds X+50 (the middle):                          possibly lost
 *  - X2, 33 bytes; a global holds X2+1 (an odd, unaligned interior address): possibly lost
 *  - Z, 16 bytes; a global holds Z+15 (its last byte):                         possibly lost
 *  - P, 32 bytes; a global holds P+16; P's first word is a start pointer to
 *    Q (48 bytes): P possibly lost, and Q too (reached from a "possible" block)
 *  - N, 40 bytes of zeros; a global holds N+8: not a new[] cookie (count 0) nor
 *    a length64 header (length 0), so no heuristic applies:                    possibly lost
 *  - Y, 64 bytes; a global holds Y+64, one past its end: valgrind does not count
 *    a pointer to the first byte after a block as pointing into it:           definitely lost
 * possibly lost: 100 + 33 + 16 + 32 + 48 + 40 = 269 bytes in 6 blocks; definitely: 64/1.
 * (No heuristic applies to X+50, X2+1, Z+15: they are not word-aligned. P+16 and N+8 point at
 * fill bytes or zeros, not vtables.) Block extents are the requested sizes: natively Y's chunk has
 * slack after byte 64 (malloc_usable_size is 72), but Y+64 is still outside the block.
 */
// EXPECT definitely_lost=64/1 indirectly_lost=0/0 possibly_lost=269/6 still_reachable=0/0
// EXPECT_FUNC make_block possibly_lost=269/6
// EXPECT_FUNC make_block definitely_lost=64/1
#include <stdlib.h>

#include "lt.h"

char *g_x_mid, *g_x2_odd, *g_z_last, *g_p_mid, *g_n_cookie, *g_y_end;

static LT_NOINLINE char *make_block(size_t n)
{
    char *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void run(void)
{
    g_x_mid = make_block(100) + 50;
    g_x2_odd = make_block(33) + 1;
    g_z_last = make_block(16) + 15;

    char *p = make_block(32);
    *(char **)p = make_block(48);
    g_p_mid = p + 16;
    p = NULL;

    char *n = make_block(40);
    memset(n, 0, 40);
    g_n_cookie = n + 8;
    n = NULL;

    g_y_end = make_block(64) + 64;
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
