/*
 * lost_overwritten: a pointer variable overwritten by the next allocation loses the previous
 * block. With ARGS 4 the loop allocates 100, 101, 102, 103 bytes into the same variable and frees
 * only the last one: 100 + 101 + 102 = 303 bytes in 3 blocks are definitely lost.
 *
 * The variable is a volatile local of a noinline helper, so each store really overwrites the
 * only copy (no register keeps the old value); the helper's frame is dead and scrubbed at exit.
 */
// ARGS 4
// EXPECT definitely_lost=303/3 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=0/0
// EXPECT_FUNC overwrite_loop definitely_lost=303/3
#include <stdlib.h>

#include "lt.h"

static LT_NOINLINE void overwrite_loop(int n)
{
    char *volatile p = NULL;
    for (int i = 0; i < n; i++) {
        p = malloc(100 + (size_t)i); /* the previous block's only pointer is overwritten */
        lt_fill(p, 100 + (size_t)i);
    }
    free(p);
    p = NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    overwrite_loop(n);
    LT_END();
    return 0;
}
