/*
 * dlopen_leak: a dlopen'd library leaks, then is dlclose'd (and really unmapped) before exit.
 *  - leaky_lib_alloc() drops a 123-byte block:                             definitely lost
 *  - it also keeps a 45-byte block in the library's own .bss; once the library is unmapped
 *    that root is gone:                                                    definitely lost
 * Both allocation stacks run through leaky_lib_make/leaky_lib_alloc, code that no longer exists
 * at exit: leakscope must still name them (it has to resolve symbols while the library is
 * mapped, or keep its symbol tables). valgrind cannot: it discards a library's debug info at
 * munmap and prints "???", hence `leakscope_only` on the EXPECT_FUNC lines.
 * dlopen/dlclose's own allocations are freed by dlclose.
 */
// LIBS dl
// DEPENDS lt_leaky_lib
// EXPECT definitely_lost=168/2 indirectly_lost=0/0 possibly_lost=0/0 still_reachable>=0/0
// EXPECT_FUNC leaky_lib_make definitely_lost=168/2 leakscope_only
// EXPECT_FUNC leaky_lib_alloc definitely_lost=168/2 leakscope_only
// EXPECT_FUNC run definitely_lost=168/2
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lt.h"

static LT_NOINLINE void run(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n <= 0) exit(90);
    path[n] = 0;
    char *slash = strrchr(path, '/');
    strcpy(slash + 1, "liblt_leaky.so");

    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) exit(91);
    void (*fn)(void);
    *(void **)&fn = dlsym(h, "leaky_lib_alloc");
    if (!fn) exit(92);
    fn();
    fn = NULL;
    if (dlclose(h) != 0) exit(93);
    if (dlopen(path, RTLD_NOW | RTLD_NOLOAD)) exit(94); /* still loaded: the test is void */
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
