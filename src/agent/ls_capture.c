/*
 * ls_capture.c - one call: the stack of the current allocation, interned. Picks the unwinder
 * chosen by option (ls_unwind.h; docs/DESIGN.md has the measurements behind the default).
 */
#include "ls_agent.h"
#include "ls_unwind.h"

#include <string.h>

/* verify_unwind=1: the plain walk must give exactly what the walk with reuse gave. */
static LS_COLD void verify_walk(const ls_uw_frame_t *f, uintptr_t hi, const uintptr_t *pcs,
                                size_t n, size_t max)
{
    static _Atomic uint64_t walks, bad;
    uintptr_t ref[LS_MAX_FRAMES_LIMIT];
    size_t m = ls__unwind_fast(f, hi, ref, max);
    uint64_t w = atomic_fetch_add(&walks, 1) + 1;
    if (m != n || memcmp(ref, pcs, n * sizeof(*pcs))) {
        if (atomic_fetch_add(&bad, 1) < 10)
            ls__error("verify_unwind: walk %llu differs: %zu frames vs %zu without reuse",
                      (unsigned long long)w, n, m);
    }
    if ((w & ((1u << 22) - 1)) == 0)
        ls__log("verify_unwind: %llu walks, %llu different, %llu frames reused",
                (unsigned long long)w, (unsigned long long)atomic_load(&bad),
                (unsigned long long)ls__unwind_reused_frames());
}

__attribute__((noinline)) uint32_t ls__capture_stack(const ls_uw_frame_t *f)
{
    ls_tls_t *t = &ls__tls;
    if (LS_UNLIKELY(!t->inited)) ls__thread_init_slow(t);
    uintptr_t pcs[LS_MAX_FRAMES_LIMIT];
    size_t max = ls__g.max_frames, n;
    uint64_t h;
    switch (ls__g.unwinder) {
    case LS_UNWIND_LIBUNWIND:
        n = ls__unwind_libunwind_from(f, pcs, max);
        h = ls__depot_hash(pcs, n);
        break;
    case LS_UNWIND_FP:
        n = ls__unwind_fp(f, t->stack_hi, pcs, max);
        h = ls__depot_hash(pcs, n);
        break;
    default:
        n = ls__unwind_fast_hashed(f, t->stack_hi, pcs, max, &h);
        break;
    }
    if (LS_UNLIKELY(n == max)) t->truncated++;
    if (LS_UNLIKELY(ls__g.opt.verify_unwind)) verify_walk(f, t->stack_hi, pcs, n, max);
    size_t slot = (size_t)(h >> 56) & (LS_STACK_CACHE - 1);
    if (LS_LIKELY(t->stack_cache[slot].hash == h && t->stack_cache[slot].id))
        return t->stack_cache[slot].id;
    uint32_t id = ls__depot_intern(pcs, n, h);
    t->stack_cache[slot].hash = h;
    t->stack_cache[slot].id = id;
    return id;
}
