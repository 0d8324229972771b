/*
 * leaky_lib.c - the shared library dlopen_leak.c loads, leaks from, and dlcloses (built as
 * liblt_leaky.so beside the test programs). Not a test program itself: no EXPECT line.
 */
#include <stdlib.h>

#include "lt.h"

void *leaky_lib_keep; /* in this library's .bss: a root only while the library is mapped */

__attribute__((visibility("default"))) LT_NOINLINE void *leaky_lib_make(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

__attribute__((visibility("default"))) LT_NOINLINE void leaky_lib_alloc(void)
{
    lt_escape(leaky_lib_make(123)); /* dropped: only rax held it, and later calls clobber rax */
    leaky_lib_keep = leaky_lib_make(45);
    lt_scrub_stack();
}
