/*
 * realloc_family: sizes after realloc & co. are the last requested ones.
 *  - malloc(100) grown with realloc to 200, dropped:            200
 *  - malloc(300) shrunk with realloc to 50, dropped:             50
 *  - realloc(NULL, 70), dropped:                                 70
 *  - calloc(5, 20), dropped:                                    100
 *  - reallocarray(NULL, 7, 9), dropped:                          63
 *  - malloc(10) grown with reallocarray(p, 3, 16), dropped:      48
 *  - realloc(p, 0) of an 80-byte block: glibc frees p and returns NULL (valgrind 3.19 does the
 *    same), so nothing is left
 *  - malloc(16) grown to 4000 and kept in a global:            4000 still reachable
 * definitely lost: 200 + 50 + 70 + 100 + 63 + 48 = 531 bytes in 6 blocks.
 * Every block is filled over its final size (realloc leaves the grown tail uninitialised).
 */
// EXPECT definitely_lost=531/6 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=4000/1
// EXPECT_FUNC realloc_and_drop definitely_lost=531/6
#define _GNU_SOURCE
#include <stdlib.h>

#include "lt.h"

void *g_kept;
void *volatile g_zero_result = (void *)1;

static LT_NOINLINE void realloc_and_drop(int which)
{
    void *p = NULL;
    size_t n = 0;
    switch (which) {
    case 0: p = malloc(100); lt_fill(p, 100); p = realloc(p, n = 200); break;
    case 1: p = malloc(300); lt_fill(p, 300); p = realloc(p, n = 50); break;
    case 2: p = realloc(NULL, n = 70); break;
    case 3: p = calloc(5, 20); n = 100; break;
    case 4: p = reallocarray(NULL, 7, 9); n = 63; break;
    case 5: p = malloc(10); lt_fill(p, 10); p = reallocarray(p, 3, 16); n = 48; break;
    }
    if (!p) exit(90);
    lt_fill(p, n);
}

static LT_NOINLINE void realloc_to_zero(void)
{
    void *p = malloc(80);
    lt_fill(p, 80);
    g_zero_result = realloc(p, 0);
    if (g_zero_result != NULL) exit(91); /* not glibc's behaviour: the verdict would differ */
}

static LT_NOINLINE void run(void)
{
    for (int i = 0; i < 6; i++) realloc_and_drop(i);
    realloc_to_zero();
    void *k = malloc(16);
    lt_fill(k, 16);
    k = realloc(k, 4000);
    lt_fill(k, 4000);
    g_kept = k;
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
