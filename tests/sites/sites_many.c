/*
 * sites_many.c - more sites than the agent's table holds (2^20 - 1), cheaply: run with
 * site_frames=2, one malloc in each of the 1024 cases of leaf() called from each of the 1024
 * cases of mid() makes 2^20 distinct (caller, caller's caller) pairs; extra() calls leaf() from
 * one more place, 1024 more. The program counts only while it allocates (sites_enabled=0, then
 * ls_sites_enable around the loops: stdio's own blocks stay out), so the sum over all sites must
 * equal its own totals, and it knows which of its calls came too late for a site of their own
 * (sites are numbered in order of first use). Built at -O0: no identical-code folding may merge
 * two cases' calls.
 *
 *   sites_many EXPECT_FILE     writes "overflow|total LB LK AL BY" and "allocs A SITES" lines
 *                              (SITES sites, the overflow one aside, have A allocations)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "leakscope.h"

#define NK        1024 /* cases of leaf(), and of mid() */
#define SITES_MAX (1u << 20)

/* 4^5 = 1024 copies of M(n) for n = 0..1023 (constant expressions: case labels). */
#define R4(M, n)   M((n)*4) M((n)*4 + 1) M((n)*4 + 2) M((n)*4 + 3)
#define R16(M, n)  R4(M, (n)*4) R4(M, (n)*4 + 1) R4(M, (n)*4 + 2) R4(M, (n)*4 + 3)
#define R64(M, n)  R16(M, (n)*4) R16(M, (n)*4 + 1) R16(M, (n)*4 + 2) R16(M, (n)*4 + 3)
#define R256(M, n) R64(M, (n)*4) R64(M, (n)*4 + 1) R64(M, (n)*4 + 2) R64(M, (n)*4 + 3)
#define R1024(M)   R256(M, 0) R256(M, 1) R256(M, 2) R256(M, 3)

#define LEAF_CASE(n)                                                                               \
    case n:                                                                                        \
        p = malloc(size);                                                                          \
        break;
#define MID_CASE(n)                                                                                \
    case n:                                                                                        \
        p = leaf(k, size);                                                                         \
        break;

__attribute__((noinline)) static void *leaf(unsigned k, size_t size)
{
    void *p = NULL;
    switch (k) {
        R1024(LEAF_CASE)
    }
    return p;
}

__attribute__((noinline)) static void *mid(unsigned j, unsigned k, size_t size)
{
    void *p = NULL;
    switch (j) {
        R1024(MID_CASE)
    }
    return p;
}

__attribute__((noinline)) static void *extra(unsigned k, size_t size)
{
    void *p = leaf(k, size);
    __asm__ volatile("" ::: "memory"); /* no tail call: extra's frame is the second one */
    return p;
}

typedef struct ctr {
    long long lb, lk, al, by;
} ctr_t;

static void *kept[8192];
static size_t nkept;
static ctr_t overflow, total;
static uint32_t next_id = 1; /* the agent's next site id, as it numbers them */
static unsigned char *seen;  /* combos that have a site (or overflowed): by combo index */
static unsigned *allocs_of;  /* allocations per combo */

/* One allocation by combo c (j * NK + k, or NK * NK + k for extra), kept when keep. */
static void one(unsigned c, int keep)
{
    size_t size = 1 + c % 13;
    void *p = c < NK * NK ? mid(c / NK, c % NK, size) : extra(c % NK, size);
    if (!p) abort();
    if (!seen[c]) seen[c] = next_id < SITES_MAX ? 1 : 2, next_id += next_id < SITES_MAX;
    allocs_of[c]++;
    ctr_t *o = seen[c] == 2 ? &overflow : NULL;
    total.al++, total.by += (long long)size;
    if (o) o->al++, o->by += (long long)size;
    if (keep && nkept < sizeof(kept) / sizeof(kept[0])) {
        kept[nkept++] = p;
        total.lk++, total.lb += (long long)size;
        if (o) o->lk++, o->lb += (long long)size;
    } else {
        free(p);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: sites_many EXPECT_FILE\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    unsigned ncombo = NK * NK + NK;
    seen = calloc(ncombo, 1);
    allocs_of = calloc(ncombo, sizeof(*allocs_of));
    if (!out || !seen || !allocs_of) return 2;
    if (ls_sites_enable(1) != 0) return 3; /* started with sites_enabled=0 */
    for (unsigned c = 0; c < NK * NK; c++) one(c, c % 4096 == 7);
    for (unsigned k = 0; k < NK; k++) one(NK * NK + k, k % 2);
    /* Again for three rows of mid() and for extra(): known sites stay theirs, the overflowed
     * combos stay in the overflow site. */
    for (unsigned j = 0; j < NK; j += NK / 2 - 1)
        for (unsigned k = 0; k < NK; k++) one(j * NK + k, 0);
    for (unsigned k = 0; k < NK; k++) one(NK * NK + k, k % 3 == 0);
    if (ls_sites_enable(0) != 1) return 3;

    fprintf(out, "overflow %lld %lld %lld %lld\n", overflow.lb, overflow.lk, overflow.al,
            overflow.by);
    fprintf(out, "total %lld %lld %lld %lld\n", total.lb, total.lk, total.al, total.by);
    long long hist[4] = {0};
    for (unsigned c = 0; c < ncombo; c++)
        if (seen[c] == 1) hist[allocs_of[c] < 3 ? allocs_of[c] : 3]++;
    for (int a = 1; a < 4; a++)
        if (hist[a]) fprintf(out, "allocs %d %lld\n", a, hist[a]);
    fclose(out);
    return 0; /* the kept blocks stay live: the exit snapshot shows them */
}
