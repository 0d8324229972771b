/*
 * suppress_partial: suppressions by function glob and by source-file glob; the unsuppressed leak
 * makes leakscope exit with --error-exitcode.
 *  - noisy_alloc_a / noisy_alloc_b leak 11 and 22 bytes:  suppressed by leak:noisy_*
 *  - helper_leak (in suppress_helper.c) leaks 44 bytes:   suppressed by leak:*suppress_helper.c
 *    (valgrind has no source-file suppressions: it gets fun:helper_leak instead)
 *  - real_leak leaks 33 bytes:                            definitely lost
 * suppressed 77 bytes in 3 blocks; definitely lost 33/1, so leakscope exits 42.
 */
// SOURCES suppress_helper.c
// SUPPRESS leak:noisy_*
// SUPPRESS leak:*suppress_helper.c
// VG_SUPPRESS fun:noisy_*
// VG_SUPPRESS fun:helper_leak
// ERROR_EXITCODE 42
// EXPECT definitely_lost=33/1 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=0/0 suppressed=77/3
// EXPECT_FUNC real_leak definitely_lost=33/1
#include <stdlib.h>

#include "lt.h"

void helper_leak(void);

static LT_NOINLINE void leak_n(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
}

static LT_NOINLINE void noisy_alloc_a(void) { leak_n(11); }
static LT_NOINLINE void noisy_alloc_b(void) { leak_n(22); }
static LT_NOINLINE void real_leak(void) { leak_n(33); }

int main(void)
{
    noisy_alloc_a();
    noisy_alloc_b();
    helper_leak();
    real_leak();
    LT_END();
    return 0;
}
