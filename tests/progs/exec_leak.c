/*
 * exec_leak: a program that execs (itself, with an argument). Only the new image's leaks count:
 * the old image's heap is gone with it.
 *  - old image: drops 1000 bytes, keeps 2000 in a global, then execv(argv[0], "child")
 *  - new image: drops 77 bytes and a 3-node list (24 bytes each), returns 0
 *    -> definitely lost 77 + 24 = 101/2, indirectly lost 48/2
 * valgrind needs --trace-children=yes to follow the exec (it does no leak check at exec).
 */
// VALGRIND_ARGS --trace-children=yes
// EXPECT definitely_lost=101/2 indirectly_lost=48/2 possibly_lost=0/0 still_reachable=0/0
// EXPECT_FUNC new_image_leak definitely_lost=101/2
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lt.h"

void *g_old_kept;

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void new_image_leak(void)
{
    lt_escape(alloc_filled(77));
    void **a = alloc_filled(24), **b = alloc_filled(24), **c = alloc_filled(24);
    a[0] = b;
    b[0] = c;
    c[0] = NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        new_image_leak();
        LT_END();
        return 0;
    }
    lt_escape(alloc_filled(1000));
    g_old_kept = alloc_filled(2000);
    char *args[] = {argv[0], "child", NULL};
    execv(argv[0], args);
    return 99; /* exec failed */
}
