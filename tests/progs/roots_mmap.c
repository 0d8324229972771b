/*
 * roots_mmap: pointers stored in mmap'd memory. valgrind scans every client mapping that is both
 * readable and writable (file, anonymous or shared), and nothing else.
 *  - private anonymous rw mapping:                          11 bytes still reachable
 *  - shared anonymous rw mapping:                           22 bytes still reachable
 *  - private mapping made read-only after the store:        33 bytes definitely lost
 *    (valgrind skips segments without both R and W)
 *  - mapping munmap'ed after the store:                     44 bytes definitely lost
 */
// EXPECT definitely_lost=77/2 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=33/2
// EXPECT_FUNC alloc_filled still_reachable=33/2
// EXPECT_FUNC alloc_filled definitely_lost=77/2
#include <stdlib.h>
#include <sys/mman.h>

#include "lt.h"

void **g_private, **g_shared, **g_readonly;

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static void **map_page(int flags)
{
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) exit(90);
    return m;
}

static LT_NOINLINE void run(void)
{
    g_private = map_page(MAP_PRIVATE);
    g_private[3] = alloc_filled(11);

    g_shared = map_page(MAP_SHARED);
    g_shared[7] = alloc_filled(22);

    g_readonly = map_page(MAP_PRIVATE);
    g_readonly[1] = alloc_filled(33);
    if (mprotect(g_readonly, 4096, PROT_READ)) exit(91);

    void **gone = map_page(MAP_PRIVATE);
    gone[0] = alloc_filled(44);
    if (munmap(gone, 4096)) exit(92);
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
