/*
 * sym_target.c - code with known source lines for the symbolizer tests, built with -O2 -g.
 * The "@..." comments mark the lines tests expect; keep each marker on its call's line.
 * The empty asm after each call keeps the call from becoming a tail call, so its return
 * address stays inside the caller.
 */
#include "sym_target.h"

__attribute__((noinline)) void sym_capture(uintptr_t *out)
{
    *out = (uintptr_t)__builtin_return_address(0);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void sym_plain(uintptr_t *out)
{
    sym_capture(out); /* @plain-call */
    __asm__ volatile("" ::: "memory");
}

static inline __attribute__((always_inline)) void sym_inner(uintptr_t *out)
{
    sym_capture(out); /* @inner-call */
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void sym_outer(uintptr_t *out)
{
    sym_inner(out); /* @outer-call */
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void sym_suppressed_site(uintptr_t *out)
{
    sym_capture(out); /* @supp-call */
    __asm__ volatile("" ::: "memory");
}
