/*
 * usable_size: a program may use all malloc_usable_size(p) bytes of a block (glibc: at least the
 * request, 24 for malloc(20); valgrind: exactly the request), but leaks are reported with the
 * requested sizes.
 *  - malloc(20), filled up to malloc_usable_size, dropped:   20
 *  - malloc(1), filled up to malloc_usable_size, dropped:     1
 *  - malloc(40) kept in a global, malloc_usable_size queried: 40 still reachable
 */
// EXPECT definitely_lost=21/2 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=40/1
// EXPECT_FUNC use_usable_and_drop definitely_lost=21/2
#include <malloc.h>
#include <stdlib.h>

#include "lt.h"

void *g_kept;

static LT_NOINLINE void use_usable_and_drop(size_t n)
{
    char *p = malloc(n);
    size_t u = malloc_usable_size(p);
    if (u < n) exit(90);
    lt_fill(p, u);
}

static LT_NOINLINE void run(void)
{
    use_usable_and_drop(20);
    use_usable_and_drop(1);
    g_kept = malloc(40);
    if (malloc_usable_size(g_kept) < 40 || malloc_usable_size(NULL) != 0) exit(91);
    lt_fill(g_kept, 40);
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
