/*
 * thread_exited: blocks whose only pointers were in threads that have exited (and been joined).
 *  - thread 1 keeps a 111-byte block in a volatile local until it returns:   definitely lost
 *    (the frame is dead once the thread has exited; valgrind never scans a dead frame)
 *  - thread 1 also keeps a 222-byte block in a __thread variable:            definitely lost
 *    (valgrind runs glibc's __libc_freeres at exit, which unmaps the cached stacks of exited
 *    threads, TLS included; semantically the thread's TLS died with it)
 *  - thread 2 builds a 2-node list (32 bytes each) held in a local:          32/1 definite +
 *                                                                            32/1 indirect
 * The exited threads' DTVs are freed by __libc_freeres too: nothing is possibly lost. A native
 * agent sees those stacks still mapped in glibc's stack cache (with the stale pointers, the TLS
 * and the DTV's interior pointer): it must not take them as roots.
 */
// LIBS pthread
// EXPECT definitely_lost=365/3 indirectly_lost=32/1 possibly_lost=0/0 still_reachable>=0/0
// EXPECT_FUNC thread_one definitely_lost=333/2
// EXPECT_FUNC thread_two definitely_lost=32/1
#include <pthread.h>
#include <stdlib.h>

#include "lt.h"

static __thread void *tls_ptr;

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static void *thread_one(void *arg)
{
    (void)arg;
    void *volatile keep = alloc_filled(111);
    tls_ptr = alloc_filled(222);
    lt_escape(keep);
    return NULL; /* keep is still in this (dead) frame's memory */
}

static void *thread_two(void *arg)
{
    (void)arg;
    void **volatile head = alloc_filled(32);
    head[0] = alloc_filled(32);
    lt_escape(head);
    return NULL;
}

static LT_NOINLINE void run(void)
{
    pthread_t a, b;
    if (pthread_create(&a, NULL, thread_one, NULL) || pthread_join(a, NULL)) exit(90);
    if (pthread_create(&b, NULL, thread_two, NULL) || pthread_join(b, NULL)) exit(91);
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
