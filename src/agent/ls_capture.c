/*
 * ls_capture.c - one call: the stack of the current allocation, interned. Picks the unwinder
 * chosen by option; the frame-pointer walker is here as a reference for the benchmark and for
 * programs built with frame pointers.
 */
#include "ls_agent.h"
#include "ls_unwind.h"

static size_t unwind_fp(const ls_uw_frame_t *f, uintptr_t lo, uintptr_t hi, uintptr_t *pcs,
                        size_t max)
{
    size_t n = 0;
    pcs[n++] = f->pc;
    uintptr_t bp = f->bp, prev = f->sp;
    while (n < max && bp >= prev && bp >= lo && bp + 16 <= hi && !(bp & 7)) {
        uintptr_t ra = ((uintptr_t *)bp)[1];
        if (!ra) break;
        pcs[n++] = ra;
        prev = bp + 16;
        bp = ((uintptr_t *)bp)[0];
    }
    return n;
}

__attribute__((noinline)) uint32_t ls__capture_stack(const ls_uw_frame_t *f)
{
    ls_tls_t *t = &ls__tls;
    if (LS_UNLIKELY(!t->inited)) ls__thread_init_slow(t);
    uintptr_t pcs[LS_MAX_FRAMES_LIMIT];
    size_t max = ls__g.max_frames, n;
    switch (ls__g.unwinder) {
    case LS_UNWIND_LIBUNWIND:
        /* skip: ls__unwind_libunwind, ls__capture_stack, the interposer */
        n = ls__unwind_libunwind(pcs, max, 3);
        break;
    case LS_UNWIND_FP: n = unwind_fp(f, f->sp, t->stack_hi ? t->stack_hi : UINTPTR_MAX, pcs, max); break;
    default: n = ls__unwind_fast(f, t->stack_hi, pcs, max); break;
    }
    if (LS_UNLIKELY(n == max)) t->truncated++;
    return ls__depot_intern(pcs, n);
}
