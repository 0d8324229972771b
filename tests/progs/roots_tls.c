/*
 * roots_tls: __thread variables are roots while their thread lives.
 *  - the main thread's __thread pointer (static TLS block set up by ld.so): 64 bytes reachable
 *  - a live thread's __thread pointer (its TLS sits at the top of its stack mapping); the thread
 *    is blocked in read() on a pipe when main returns:                     128 bytes reachable
 *  - a block the live thread dropped before blocking:                       32 bytes definitely lost
 * The live thread's DTV: glibc calloc()s it in pthread_create and keeps only dtv+1 (an interior
 * pointer) in the thread's TCB, so valgrind reports it possibly lost (288 bytes here). Its size is
 * (number of TLS modules + 16) * 16 bytes, which depends on what else is loaded (a preloaded
 * agent with TLS of its own adds 16), hence the EXPECT line pins its block count only.
 * The thread scrubs its stack before blocking so the dropped pointer does not linger in the part
 * of its stack that read() reuses.
 */
// LIBS pthread
// EXPECT definitely_lost=32/1 indirectly_lost=0/0 possibly_lost=*/1 still_reachable>=192/2
// EXPECT_FUNC alloc_filled still_reachable=192/2
// EXPECT_FUNC drop_block definitely_lost=32/1
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "lt.h"

static __thread void *tls_ptr;
static int ready_pipe[2], block_pipe[2];

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void drop_block(size_t n) { lt_escape(alloc_filled(n)); }

static void *blocked_thread(void *arg)
{
    (void)arg;
    tls_ptr = alloc_filled(128);
    drop_block(32);
    LT_END(); /* scrub the dead stack and the scratch registers: both are roots while we block */
    char c = 1;
    if (write(ready_pipe[1], &c, 1) != 1) abort();
    while (read(block_pipe[0], &c, 1) != 0) { /* never written: blocks until the process exits */
    }
    return NULL;
}

static LT_NOINLINE void run(void)
{
    pthread_t t;
    char c;
    if (pipe(ready_pipe) || pipe(block_pipe)) exit(90);
    tls_ptr = alloc_filled(64);
    if (pthread_create(&t, NULL, blocked_thread, NULL)) exit(91);
    if (read(ready_pipe[0], &c, 1) != 1) exit(92);
}

int main(void)
{
    run();
    LT_END();
    return 0; /* the thread is still blocked in read() */
}
