/*
 * heuristics: valgrind's default --leak-check-heuristics=all turns some interior pointers into
 * "still reachable" (memcheck's heuristic_reachedness). Each case below emulates the layout the
 * heuristic looks for, with a negative twin that just misses it (and stays possibly lost):
 *
 *  - length64: pointer at offset 8, first 8 bytes = block size - 8.
 *      L, 48 bytes, word0 = 40, global -> L+8:                          still reachable
 *  - newarray: pointer at offset 8, word0 = n > 0 with (size - 8) % n == 0 (a new[] cookie).
 *      A, 56 bytes, word0 = 3 (48 % 3 == 0), global -> A+8:            still reachable
 *      B, 18 bytes, word0 = 4 (10 % 4 != 0, and 4 != 10 for length64): possibly lost
 *  - stdstring: pointer at offset 24, word0 = length <= word1 = capacity, size = 24 + cap + 1.
 *      S, 45 bytes, length 5, capacity 20, global -> S+24:             still reachable
 *      S2, 45 bytes, length 30 > capacity 20, global -> S2+24:         possibly lost
 *  - multipleinheritance: word-aligned pointer p into the block where both *p and the block's
 *    first word point to "vtables": tables in a readable file mapping whose first non-null
 *    entries (at least two within 20 words) point into executable file mappings.
 *      M, 32 bytes, word0 = vt_a, word2 = vt_b, global -> M+16:         still reachable
 *      M2, 32 bytes, word0 = fill pattern, word2 = vt_b, global -> M2+16: possibly lost
 * reachable: 48 + 56 + 45 + 32 = 181/4; possibly lost: 18 + 45 + 32 = 95/3.
 */
// EXPECT definitely_lost=0/0 indirectly_lost=0/0 possibly_lost=95/3 still_reachable=181/4
#include <stdint.h>
#include <stdlib.h>

#include "lt.h"

static LT_NOINLINE void fa1(void) { lt_escape(0); }
static LT_NOINLINE void fa2(void) { lt_escape(1); }
static LT_NOINLINE void fb1(void) { lt_escape(2); }
static LT_NOINLINE void fb2(void) { lt_escape(3); }

/* "vtables": const arrays of function pointers (in .data.rel.ro, a read-only file mapping once
 * relocated), each pointing into .text. */
static void (*const vt_a[3])(void) = {fa1, fa2, 0};
static void (*const vt_b[3])(void) = {fb1, fb2, 0};

char *g_len64, *g_newarr, *g_newarr_bad, *g_str, *g_str_bad, *g_mi, *g_mi_bad;

static LT_NOINLINE uint64_t *make_block(size_t n)
{
    uint64_t *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void run(void)
{
    uint64_t *b;

    b = make_block(48);
    b[0] = 40;
    g_len64 = (char *)b + 8;

    b = make_block(56);
    b[0] = 3;
    g_newarr = (char *)b + 8;

    b = make_block(18);
    b[0] = 4;
    g_newarr_bad = (char *)b + 8;

    b = make_block(45);
    b[0] = 5;  /* length */
    b[1] = 20; /* capacity */
    b[2] = 0;  /* refcount */
    memset((char *)b + 24, 'x', 20);
    ((char *)b)[44] = 0;
    g_str = (char *)b + 24;

    b = make_block(45);
    b[0] = 30;
    b[1] = 20;
    b[2] = 0;
    memset((char *)b + 24, 'x', 20);
    ((char *)b)[44] = 0;
    g_str_bad = (char *)b + 24;

    b = make_block(32);
    b[0] = (uint64_t)(uintptr_t)vt_a;
    b[2] = (uint64_t)(uintptr_t)vt_b;
    g_mi = (char *)b + 16;

    b = make_block(32);
    b[2] = (uint64_t)(uintptr_t)vt_b;
    g_mi_bad = (char *)b + 16;
    b = NULL;
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
