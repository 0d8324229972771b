/*
 * exit_thread: exit(7) called by a second thread while main is blocked in pthread_join. Both
 * stacks are live at exit:
 *  - main's volatile local:                          400 still reachable
 *  - the exiting thread's volatile local:            300 still reachable
 *  - the thread drops a block before exiting:         30 definitely lost
 * Possibly lost: the exiting thread's DTV (block count only, see roots_tls.c).
 */
// LIBS pthread
// EXIT 7
// EXPECT definitely_lost=30/1 indirectly_lost=0/0 possibly_lost=*/1 still_reachable>=700/2
// EXPECT_FUNC exiting_thread still_reachable=300/1
// EXPECT_FUNC exiting_thread definitely_lost=30/1
#include <pthread.h>
#include <stdlib.h>

#include "lt.h"

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static void *exiting_thread(void *arg)
{
    (void)arg;
    void *volatile keep = alloc_filled(300);
    lt_escape(alloc_filled(30));
    LT_END();
    exit(7);
    lt_escape(keep);
    return NULL;
}

int main(void)
{
    pthread_t t;
    void *volatile keep = alloc_filled(400);
    LT_END();
    if (pthread_create(&t, NULL, exiting_thread, NULL)) return 90;
    pthread_join(t, NULL);
    lt_escape(keep);
    return 91;
}
