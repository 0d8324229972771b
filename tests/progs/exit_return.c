/*
 * exit_return: main returns 3. The leak check runs after everything exit() does:
 *  - a block leaked by run():                                              10 bytes
 *  - an atexit handler frees a 500-byte block kept in a global (not reported) and leaks 7 bytes
 *  - a destructor function frees a 600-byte block kept in a global (not reported) and leaks 9
 * definitely lost 26 bytes in 3 blocks, nothing reachable.
 * main holds no pointer when it returns: valgrind treats main's frame as dead after the return
 * (so its locals would not be roots), while a native scan of the stack during exit would still
 * find them in memory that exit()'s frames did not overwrite.
 */
// EXIT 3
// EXPECT definitely_lost=26/3 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=0/0
// EXPECT_FUNC leak_block definitely_lost=26/3
// EXPECT_FUNC at_exit_handler definitely_lost=7/1
// EXPECT_FUNC destructor_fn definitely_lost=9/1
#include <stdlib.h>

#include "lt.h"

static void *g_freed_at_exit, *g_freed_in_dtor;

static LT_NOINLINE void leak_block(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
}

static void at_exit_handler(void)
{
    free(g_freed_at_exit);
    g_freed_at_exit = NULL;
    leak_block(7);
    lt_scrub_stack();
}

__attribute__((destructor)) static void destructor_fn(void)
{
    free(g_freed_in_dtor);
    g_freed_in_dtor = NULL;
    leak_block(9);
    lt_scrub_stack();
}

static LT_NOINLINE void run(void)
{
    g_freed_at_exit = malloc(500);
    lt_fill(g_freed_at_exit, 500);
    g_freed_in_dtor = malloc(600);
    lt_fill(g_freed_in_dtor, 600);
    if (atexit(at_exit_handler)) exit(90);
    leak_block(10);
}

int main(void)
{
    run();
    LT_END();
    return 3;
}
