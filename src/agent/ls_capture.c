/*
 * ls_capture.c - one call: the stack of the current allocation, interned. Picks the unwinder
 * chosen by option (ls_unwind.h; docs/DESIGN.md has the measurements behind the default).
 */
#include "ls_agent.h"
#include "ls_unwind.h"

__attribute__((noinline)) uint32_t ls__capture_stack(const ls_uw_frame_t *f)
{
    ls_tls_t *t = &ls__tls;
    if (LS_UNLIKELY(!t->inited)) ls__thread_init_slow(t);
    uintptr_t pcs[LS_MAX_FRAMES_LIMIT];
    size_t max = ls__g.max_frames, n;
    switch (ls__g.unwinder) {
    case LS_UNWIND_LIBUNWIND:
        n = ls__unwind_libunwind_from(f, pcs, max);
        break;
    case LS_UNWIND_FP:
        n = ls__unwind_fp(f, t->stack_hi, pcs, max);
        break;
    default:
        n = ls__unwind_fast(f, t->stack_hi, pcs, max);
        break;
    }
    if (LS_UNLIKELY(n == max)) t->truncated++;
    return ls__depot_intern(pcs, n);
}
