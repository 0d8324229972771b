/*
 * zero_size: zero-byte blocks. malloc(0), calloc(0, n) and realloc(NULL, 0) return unique
 * pointers (glibc and valgrind alike), each a block of 0 bytes. valgrind treats a 0-byte block as
 * covering one address (its start, see find_chunk_for in mc_leakcheck.c), so a start pointer keeps
 * it reachable; without one it is "definitely lost: 0 bytes in N blocks".
 *  - kept in globals: malloc(0), calloc(0, 8):           still reachable 0/2
 *  - dropped: malloc(0), realloc(NULL, 0), calloc(4, 0):  definitely lost 0/3
 */
// EXPECT definitely_lost=0/3 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=0/2
// EXPECT_FUNC drop_zero definitely_lost=0/3
#include <stdlib.h>

#include "lt.h"

void *g_zero_malloc, *g_zero_calloc;

static LT_NOINLINE void drop_zero(int how)
{
    void *p;
    switch (how) {
    case 0: p = malloc(0); break;
    case 1: p = realloc(NULL, 0); break;
    default: p = calloc(4, 0); break;
    }
    if (!p) exit(90); /* glibc never returns NULL here */
    lt_escape(p);
}

static LT_NOINLINE void run(void)
{
    g_zero_malloc = malloc(0);
    g_zero_calloc = calloc(0, 8);
    if (!g_zero_malloc || !g_zero_calloc) exit(91);
    drop_zero(0);
    drop_zero(1);
    drop_zero(2);
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
