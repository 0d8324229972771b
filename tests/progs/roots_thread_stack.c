/*
 * roots_thread_stack: the live part of a running thread's stack is a root.
 * Two threads are still running when main returns:
 *  - one blocked in read() on a pipe, holding a 100-byte block in a local:       still reachable
 *  - one blocked in pthread_cond_wait(), holding a 200-byte block in a local:    still reachable
 *  - each also dropped a block before blocking (40 and 50 bytes):               definitely lost
 * valgrind scans each live thread's stack above its stack pointer (and the registers); what lies
 * below it is inaccessible. The threads scrub their stacks before blocking so the dropped
 * pointers do not linger in the region their blocking calls reuse.
 * Possibly lost: the two live threads' DTVs (block count only, see roots_tls.c).
 */
// LIBS pthread
// EXPECT definitely_lost=90/2 indirectly_lost=0/0 possibly_lost=*/2 still_reachable>=300/2
// EXPECT_FUNC pipe_thread still_reachable=100/1
// EXPECT_FUNC cond_thread still_reachable=200/1
// EXPECT_FUNC drop_block definitely_lost=90/2
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "lt.h"

static int ready_pipe[2], block_pipe[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void drop_block(size_t n) { lt_escape(alloc_filled(n)); }

static LT_NOINLINE void signal_ready(void)
{
    char c = 1;
    if (write(ready_pipe[1], &c, 1) != 1) abort();
}

static void *pipe_thread(void *arg)
{
    (void)arg;
    void *volatile keep = alloc_filled(100);
    drop_block(40);
    LT_END(); /* scrub the dead stack and the scratch registers: both are roots while we block */
    signal_ready();
    char c;
    while (read(block_pipe[0], &c, 1) != 0) {
    }
    lt_escape(keep);
    return NULL;
}

static void *cond_thread(void *arg)
{
    (void)arg;
    void *volatile keep = alloc_filled(200);
    drop_block(50);
    LT_END(); /* scrub the dead stack and the scratch registers: both are roots while we block */
    pthread_mutex_lock(&mu);
    signal_ready();
    for (;;) pthread_cond_wait(&never, &mu);
    lt_escape(keep);
    return NULL;
}

static LT_NOINLINE void run(void)
{
    pthread_t a, b;
    char c;
    if (pipe(ready_pipe) || pipe(block_pipe)) exit(90);
    if (pthread_create(&a, NULL, pipe_thread, NULL)) exit(91);
    if (pthread_create(&b, NULL, cond_thread, NULL)) exit(91);
    for (int i = 0; i < 2; i++)
        if (read(ready_pipe[0], &c, 1) != 1) exit(92);
}

int main(void)
{
    run();
    LT_END();
    return 0; /* both threads are still blocked */
}
