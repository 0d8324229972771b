/*
 * ls_interpose.c - the malloc family, as seen by the host. The hot path is: one test of the
 * agent state and the thread's reentrancy guard, the real allocator, a stack capture, a table
 * insert. Everything unusual - agent not ready yet, a call from inside the agent, pointers from
 * the bootstrap buffer - goes to cold functions.
 *
 * Every block handed out carries a 16-byte trailer (ls_agent.h) and a bit in the ownership
 * bitmap (ls_bitmap.c); a free is one test-and-clear of that bit and the real free.
 *
 * Mode sample (ls_sample.c) tracks only sampled blocks, the same way. Every interposer tests
 * the mode first (the hot four in a dispatcher: see "dispatch"); then a non-sampled allocation
 * costs a thread-local countdown and the real call, nothing else: no trailer, no bit, no stack.
 * A free tests its page's count of sampled blocks (ls_agent.h) and counts nothing.
 *
 * Mode sites (ls_sites.c) counts every allocation at its site: a 16-byte header before the block
 * (ls_agent.h) names the site, a free checks it and uncharges the site - plain adds to the
 * calling thread's counter shard, no atomic, no lock, no stack walk (see "mode sites").
 *
 * Bootstrap: the first malloc of the process (often from ld.so, before our constructor) starts
 * the agent, which asks dlsym for the real functions; dlsym itself may call calloc. Such calls
 * are served from a static buffer that is never reused; frees into it are ignored.
 */
#define _GNU_SOURCE
#include "ls_interpose.h"
#include "ls_unwind.h"

#define LEAKSCOPE_TAGS_TYPES_ONLY
#include "../../include/leakscope/tags.h"

#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

ls_real_t ls__real;

/* ---- bootstrap buffer --------------------------------------------------------------------------
 */
#define LS_BOOT_SIZE (1u << 20)
static char boot_buf[LS_BOOT_SIZE] __attribute__((aligned(64)));
static _Atomic size_t boot_used;

static inline bool is_boot(const void *p)
{
    return (const char *)p >= boot_buf && (const char *)p < boot_buf + LS_BOOT_SIZE;
}

/* Each bootstrap block keeps its size in the 16 bytes before it (for realloc and usable_size). */
static LS_COLD void *boot_alloc(size_t size, size_t align)
{
    if (align < 16) align = 16;
    for (;;) {
        size_t used = atomic_load(&boot_used);
        size_t start = (used + 16 + align - 1) & ~(align - 1);
        if (start + size > LS_BOOT_SIZE || size > LS_BOOT_SIZE) return NULL;
        if (atomic_compare_exchange_weak(&boot_used, &used, start + size)) {
            ((size_t *)(boot_buf + start))[-1] = size;
            return boot_buf + start;
        }
    }
}

static size_t boot_size(const void *p)
{
    return ((const size_t *)p)[-1];
}

void ls__boot_pin_pages(void)
{
    ls__sample_pages_pin((uintptr_t)boot_buf, (uintptr_t)boot_buf + LS_BOOT_SIZE);
}

/* ---- slow paths --------------------------------------------------------------------------------
 */
static inline bool fast_ok(void)
{
    return LS_LIKELY(atomic_load_explicit(&ls__g.state, memory_order_relaxed) == LS_STATE_READY &&
                     !ls__tls.guard);
}

/* Not tracking this call: start the agent if nobody has, then pass it through. */
static LS_COLD bool untracked_prepare(void)
{
    if (atomic_load(&ls__g.state) == LS_STATE_UNINIT) ls__init();
    /* In mode sample, the call that started the agent came through a full-mode entry point: it
     * stays untracked (an unsampled allocation), since a block tracked the full-mode way has no
     * page count and the sample-mode free would leave its bit behind. */
    return fast_ok() && !atomic_load_explicit(&ls__sampling, memory_order_acquire);
}

static LS_COLD void *malloc_untracked(size_t size)
{
    if (ls__real.malloc) return ls__real.malloc(size);
    return boot_alloc(size, 16);
}

static LS_COLD void free_untracked(void *p)
{
    if (ls__real.free) ls__real.free(p);
    /* before the real free is known there is nothing it could have allocated */
}

/* ---- tracking ----------------------------------------------------------------------------------
 */

_Atomic uint32_t ls__birth_floor;

uint32_t ls__birth_now(void)
{
    /* The coarse clock is a vDSO read of a jiffy-updated value: a few ns, ~4 ms resolution,
     * enough to place a block between markers taken by a human or a test. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    /* The coarse clock lags the precise one the start time was read from by up to a tick. */
    uint64_t since = ns > ls__g.start_mono_ns ? ns - ls__g.start_mono_ns : 0;
    uint32_t t = (uint32_t)(since >> 20);
    uint32_t floor = atomic_load_explicit(&ls__birth_floor, memory_order_relaxed);
    return t > floor ? t : floor;
}

ls_trailer_t *ls__trailer(const void *p)
{
    return (ls_trailer_t *)((char *)p + ls__real.malloc_usable_size((void *)p) - LS_TRAILER);
}

/* Writes the trailer of a fresh real block p of `size` requested bytes and marks p ours. If the
 * bitmap cannot record p (an address above 2^48, or no memory for the bitmap), p simply stays
 * untracked: it needs nothing special to be freed. */
static inline void *track_stack(void *p, size_t size, uint32_t stack)
{
    ls_trailer_t *t = ls__trailer(p);
    t->size_flags = size;
    t->stack = stack;
    t->birth = ls__birth_now();
    ls__bm_set((uintptr_t)p); /* trailer first: whoever sees the bit sees a complete trailer */
    return p;
}

static inline void *track(void *p, size_t size, const ls_uw_frame_t *f)
{
    return track_stack(p, size, f ? ls__capture_stack(f) : 0);
}

/* Mode sample: a sampled block is tracked as in mode full (its page counted first: ls_agent.h)
 * and added to the per-stack table. Without memory for its page's count it stays untracked,
 * only counted in the table. */
static LS_COLD void *sample_track(void *p, size_t size, const ls_uw_frame_t *f)
{
    uint32_t stack = f ? ls__capture_stack(f) : 0;
    ls__sample_record(stack, size);
    if (!ls__sample_page_add((uintptr_t)p)) return p;
    return track_stack(p, size, stack);
}

/* How a block made by hand (realloc_by_hand) is to be kept. */
enum { NEW_PLAIN, NEW_TRACKED, NEW_SAMPLED };

static inline void *keep_new(void *q, size_t size, const ls_uw_frame_t *f, int how)
{
    if (how == NEW_TRACKED) return track(q, size, f);
    if (how == NEW_SAMPLED) return sample_track(q, size, f);
    return q;
}

static inline bool size_ok(size_t size)
{
    if (LS_LIKELY(size <= LS_SIZE_MASK)) return true;
    errno = ENOMEM;
    return false;
}

/* Fault injection (ls_fail.c) in mode full: must this call, made from frame f, fail? If so it is
 * counted and recorded, and the interposer returns what a failed call returns (errno ENOMEM,
 * nothing allocated, a realloc'd block untouched). Out of line: without rules an interposer pays
 * one load of ls__fail_on. Only tracked calls get here: the agent's own never fail. */
static LS_COLD __attribute__((noinline)) bool fail_full(const ls_uw_frame_t *f)
{
    int saved = errno; /* a call that does not fail leaves errno alone */
    ls__tls.guard = 1;
    int r = ls__fail_match_pc(f->pc);
    bool fire = r && ls__fail_fire(r);
    if (fire) ls__fail_record(r, f);
    ls__tls.guard = 0;
    errno = fire ? ENOMEM : saved;
    return fire;
}
#define FAIL_FULL(f) (LS_UNLIKELY(ls__fail_on) && fail_full(f))

/* ---- deferred frees ---------------------------------------------------------------------------
 * A live snapshot reads the trailers of the blocks it listed while the host runs on
 * (ls_live.c). Meanwhile a free of one of ours is parked here instead of reaching the real
 * allocator, so no listed block's memory is reused or unmapped under the reader; the reader frees
 * them all when it is done. The host pays one load of a read-mostly flag per free.
 *
 * Ordering: the free path clears the block's bit (a locked RMW) before it reads the flag, and the
 * reader sets the flag (seq_cst) before it reads the bits; so a free the reader can still see as
 * live is one that sees the flag. Turning deferral off is the mirror image: a freeing thread
 * announces itself (inflight) before it reads the flag, and the reader waits for inflight to
 * drop to zero after clearing the flag and before draining.
 */
#define LS_DEFER_CAP (1u << 20) /* 8 MiB of address space, touched only as frees arrive */
_Alignas(64) _Atomic int ls__defer_frees;
static _Alignas(64) _Atomic int defer_inflight;
static _Atomic size_t defer_n;
static void **defer_buf;

/* Returns true when p was parked (the caller must not free it). */
static LS_COLD bool defer_free(void *p)
{
    atomic_fetch_add(&defer_inflight, 1);
    bool parked = false;
    if (atomic_load(&ls__defer_frees)) {
        size_t i = atomic_fetch_add(&defer_n, 1);
        if (i < LS_DEFER_CAP) {
            defer_buf[i] = p;
            parked = true;
        } else {
            /* Full: wait the reader out (tens of ms), then free normally. */
            while (atomic_load(&ls__defer_frees)) sched_yield();
        }
    }
    atomic_fetch_sub(&defer_inflight, 1);
    return parked;
}

bool ls__defer_begin(void)
{
    if (!defer_buf) defer_buf = ls__map(LS_DEFER_CAP * sizeof(void *));
    if (!defer_buf) return false;
    atomic_store(&defer_n, 0);
    atomic_store(&ls__defer_frees, 1);
    return true;
}

size_t ls__defer_end(void)
{
    atomic_store(&ls__defer_frees, 0);
    while (atomic_load(&defer_inflight)) sched_yield();
    size_t n = atomic_load(&defer_n);
    if (n > LS_DEFER_CAP) n = LS_DEFER_CAP;
    for (size_t i = 0; i < n; i++) ls__real.free(defer_buf[i]);
    atomic_store(&defer_n, 0);
    /* A free-heavy host filled much of it: give the pages back (the first 512 KiB stay). */
    if (n > (64u << 10))
        madvise(defer_buf + (64u << 10), (LS_DEFER_CAP - (64u << 10)) * sizeof(void *),
                MADV_DONTNEED);
    return n;
}

/* ---- dispatch -----------------------------------------------------------------------------
 * The four hot entry points (malloc, free, calloc, realloc) are three-instruction dispatchers to
 * a mode full and a mode sample function, so that neither mode pays for the other's registers
 * and stack frame: mode sample's common case is a countdown and a jump to the real allocator,
 * which needs no frame at all. The target is entered by a jump, so it sees the program's return
 * address and frame as its own caller's, exactly as if the program had called it.
 * ls__sampling is 0 until init has finished (whatever the mode), so every call made before
 * takes the mode full path, which handles bootstrap. Only 1 goes to mode sample and 3 to mode
 * sites (tested second: mode sample's path stays two instructions): 2 (the control thread is
 * wanted) takes the last branch, whose first test sends it on to ls__control_wake and then to
 * the mode's function, so the request costs the common path nothing. They sit in .text.hot with
 * mode sites' cached paths (LS_HOT).
 */
#define LS_DISPATCH(name)                                                                          \
    __asm__(".pushsection .text.hot,\"ax\",@progbits\n"                                            \
            ".globl " #name "\n"                                                                   \
            ".type " #name ",@function\n"                                                          \
            ".globl ls__" #name "_entry\n"                                                         \
            ".hidden ls__" #name "_entry\n"                                                        \
            ".p2align 4\n" #name ":\n"                                                             \
            "ls__" #name "_entry:\n"                                                               \
            "  .cfi_startproc\n"                                                                   \
            "  cmpl $1, ls__sampling(%rip)\n"                                                      \
            "  je ls__" #name "_sample\n"                                                          \
            "  cmpl $3, ls__sampling(%rip)\n"                                                      \
            "  je ls__" #name "_sites\n"                                                           \
            "  jmp ls__" #name "_full\n"                                                           \
            "  .cfi_endproc\n"                                                                     \
            ".size " #name ", .-" #name "\n"                                                       \
            ".popsection\n")

LS_DISPATCH(malloc);
LS_DISPATCH(free);
LS_DISPATCH(calloc);
LS_DISPATCH(realloc);

#define LS_DISPATCHED LS_HIDDEN __attribute__((used))
LS_DISPATCHED void *ls__malloc_full(size_t size);
LS_DISPATCHED void *ls__malloc_sample(size_t size);
LS_DISPATCHED void ls__free_full(void *p);
LS_DISPATCHED void ls__free_sample(void *p);
LS_DISPATCHED void *ls__calloc_full(size_t n, size_t size);
LS_DISPATCHED void *ls__calloc_sample(size_t n, size_t size);
LS_DISPATCHED void *ls__realloc_full(void *p, size_t size);
LS_DISPATCHED void *ls__realloc_sample(void *p, size_t size);
LS_DISPATCHED void *ls__malloc_sites(size_t size);
LS_DISPATCHED void ls__free_sites(void *p);
LS_DISPATCHED void *ls__calloc_sites(size_t n, size_t size);
LS_DISPATCHED void *ls__realloc_sites(void *p, size_t size);

/* The dispatcher's other branch in mode sample: the control thread is wanted. */
static LS_COLD __attribute__((noinline)) void wake_control(void)
{
    ls__control_wake();
}
#define LS_WAKE_OR(call, sites_call)                                                               \
    do {                                                                                           \
        if (LS_UNLIKELY(atomic_load_explicit(&ls__sampling, memory_order_relaxed) == 2)) {         \
            wake_control();                                                                        \
            return ls__mode_sites() ? sites_call : call;                                           \
        }                                                                                          \
    } while (0)

/* The rarer entry points test the mode in C. */
static inline bool sampling(void)
{
    /* acquire: whoever sees the flag sees the real functions and the table (ls__sample_init) */
    return LS_UNLIKELY(atomic_load_explicit(&ls__sampling, memory_order_acquire));
}

/* ---- mode sample: the slow paths ---------------------------------------------------------------
 */
/* Counts size down on this thread's countdown; true when this allocation is to be sampled. */
static inline bool sample_hit(size_t size)
{
    uint64_t left = ls__tls.sample_left;
    if (LS_LIKELY(size < left)) {
        ls__tls.sample_left = left - size;
        return false;
    }
    return ls__sample_cross(size);
}

static void *realloc_by_hand(void *p, size_t size, const ls_uw_frame_t *f, int how);
static void *realloc_from_boot(void *p, size_t size);

enum { SA_MALLOC, SA_CALLOC, SA_MEMALIGN, SA_ALIGNED };

/* A sampled allocation: ls__sample_cross said yes, so the agent is ready and not busy here. */
static LS_COLD void *sampled_alloc(int kind, size_t align, size_t size, const ls_uw_frame_t *f)
{
    if (!size_ok(size)) return NULL;
    ls__tls.guard = 1;
    void *p;
    switch (kind) {
    case SA_CALLOC:
        p = ls__real.calloc(1, size + LS_TRAILER);
        break;
    case SA_MEMALIGN:
        p = ls__real.memalign(align, size + LS_TRAILER);
        break;
    case SA_ALIGNED:
        p = ls__real.aligned_alloc(align, size + LS_TRAILER);
        break;
    default:
        p = ls__real.malloc(size + LS_TRAILER);
        break;
    }
    if (LS_LIKELY(p != NULL)) sample_track(p, size, f);
    ls__tls.guard = 0;
    return p;
}

/* A sampled block p whose bit was just cleared stays ours after all (a failed realloc): count
 * its page again, then set its bit (the order of ls_agent.h). */
static void sample_keep_old(void *p)
{
    ls__sample_page_add((uintptr_t)p); /* cannot fail: its page's counters exist */
    ls__bm_set((uintptr_t)p);
}

/*
 * realloc in mode sample, every case but the common one (no block or an unsampled one, and an
 * unsampled result). realloc is an allocation of the new size (ls_sample.c): hit says whether the
 * countdown sampled it - never for size 0, which frees. An unsampled block may become a sampled
 * one (it gets a trailer and a bit) and a sampled one an unsampled one (it loses them). The page
 * count of a sampled old block drops before its memory can be reused by another thread.
 */
static LS_COLD void *sample_realloc(void *p, size_t size, bool hit, const ls_uw_frame_t *f)
{
    if (p && is_boot(p)) return realloc_from_boot(p, size);
    if (hit && !size_ok(size)) return NULL;
    /* With the guard set on entry the unwinder may be busy: no stack for a refs FREE event
     * (hit is false then: ls__sample_cross never samples for a busy agent). */
    const ls_uw_frame_t *rf = ls__tls.guard ? NULL : f;
    size_t extra = hit ? LS_TRAILER : 0;
    ls__tls.guard++;
    void *q;
    if (!p || !ls__bm_test_clear((uintptr_t)p)) { /* no block, or an unsampled one */
        q = ls__real.realloc(p, size + extra);
        if (q && hit) sample_track(q, size, f);
    } else {
        ls__sample_page_del((uintptr_t)p);
        if (LS_UNLIKELY(atomic_load_explicit(&ls__defer_frees, memory_order_relaxed)) ||
            (atomic_load_explicit(&ls__refs_active, memory_order_relaxed) &&
             ls__refs_block_has_objects(p))) {
            q = realloc_by_hand(p, size, rf, hit ? NEW_SAMPLED : NEW_PLAIN);
        } else if (size == 0) {
            ls__real.free(p);
            q = NULL;
        } else {
            q = ls__real.realloc(p, size + extra);
            if (!q)
                sample_keep_old(p); /* failed: the old block is untouched, still ours */
            else if (hit)
                sample_track(q, size, f);
        }
    }
    ls__tls.guard--;
    return q;
}

/* A free that the page counts could not rule out: a sampled block, or a neighbour of one.
 * f: the frame of free's caller. */
static LS_COLD void free_maybe_sampled(void *p, const ls_uw_frame_t *f);

/* ---- the interposers ----------------------------------------------------------------------- */
void *ls__malloc_sample(size_t size)
{
    if (LS_LIKELY(!sample_hit(size))) return ls__real.malloc(size);
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    return sampled_alloc(SA_MALLOC, 0, size, &f);
}

void *ls__malloc_full(size_t size)
{
    LS_WAKE_OR(ls__malloc_sample(size), ls__malloc_sites(size));
    if (!fast_ok() && !untracked_prepare()) return malloc_untracked(size);
    if (!size_ok(size)) return NULL;
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    if (FAIL_FULL(&f)) return NULL;
    ls__tls.guard = 1;
    void *p = ls__real.malloc(size + LS_TRAILER);
    if (LS_LIKELY(p != NULL)) track(p, size, &f);
    ls__tls.guard = 0;
    return p;
}

/* Objects registered in a block die with it (ls_refs.c). fp: free's own frame, which gives the
 * frame of free's caller, so the FREE event names the program's function. */
static LS_COLD __attribute__((noinline)) void refs_block_freed(void *p, const uintptr_t *fp)
{
    ls_uw_frame_t f = {.pc = fp[1], .sp = (uintptr_t)(fp + 2), .bp = fp[0]};
    /* With the guard set (a signal handler interrupted the agent) the unwinder may be busy. */
    ls__refs_block_freed(p, ls__tls.guard ? NULL : &f);
}

/* No guard, no state test: whoever frees a block of ours, even a signal handler running inside
 * the agent, its bit must go; nothing here can call back into the allocator. */
void ls__free_full(void *p)
{
    if (LS_UNLIKELY(atomic_load_explicit(&ls__sampling, memory_order_relaxed) == 2)) {
        wake_control();
        if (ls__mode_sites())
            ls__free_sites(p);
        else
            ls__free_sample(p);
        return;
    }
    if (!p) return;
    if (LS_UNLIKELY(is_boot(p))) return;
    if (LS_UNLIKELY(!ls__bm_test_clear((uintptr_t)p))) {
        atomic_fetch_add_explicit(&ls__g.unknown_frees, 1, memory_order_relaxed);
    } else {
        if (LS_UNLIKELY(atomic_load_explicit(&ls__refs_active, memory_order_relaxed)))
            refs_block_freed(p, (const uintptr_t *)__builtin_frame_address(0));
        if (LS_UNLIKELY(atomic_load_explicit(&ls__defer_frees, memory_order_relaxed)) &&
            defer_free(p))
            return;
    }
    free_untracked(p);
}

/* Mode sample: nearly every free is of an unsampled block, settled by its page's count (a byte
 * that is almost always in cache). Nothing is counted: a shared counter would be a cache line
 * written by every free. free(NULL) and the bootstrap buffer need no test here: page 0 never
 * holds a block, and the buffer's pages are pinned at "maybe" (ls__sample_init), so its
 * pointers reach free_maybe_sampled. */
void ls__free_sample(void *p)
{
    if (LS_LIKELY(!ls__sample_page_maybe((uintptr_t)p))) {
        ls__real.free(p);
        return;
    }
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    free_maybe_sampled(p, &f);
}

static LS_COLD void free_maybe_sampled(void *p, const ls_uw_frame_t *f)
{
    if (!p || is_boot(p)) return;
    if (ls__bm_test_clear((uintptr_t)p)) {
        ls__sample_page_del((uintptr_t)p); /* bit first, then count: ls_agent.h */
        /* With the guard set (a signal handler interrupted the agent) the unwinder may be busy. */
        if (LS_UNLIKELY(atomic_load_explicit(&ls__refs_active, memory_order_relaxed)))
            ls__refs_block_freed(p, ls__tls.guard ? NULL : f);
        if (LS_UNLIKELY(atomic_load_explicit(&ls__defer_frees, memory_order_relaxed)) &&
            defer_free(p))
            return;
    }
    ls__real.free(p);
}

void *ls__calloc_sample(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (LS_LIKELY(!sample_hit(total))) return ls__real.calloc(n, size);
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    return sampled_alloc(SA_CALLOC, 0, total, &f);
}

void *ls__calloc_full(size_t n, size_t size)
{
    LS_WAKE_OR(ls__calloc_sample(n, size), ls__calloc_sites(n, size));
    size_t total;
    if (__builtin_mul_overflow(n, size, &total) || !size_ok(total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.calloc) return ls__real.calloc(n, size);
        return boot_alloc(total, 16); /* static buffer: already zero, never reused */
    }
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    if (FAIL_FULL(&f)) return NULL;
    ls__tls.guard = 1;
    void *p = ls__real.calloc(1, total + LS_TRAILER);
    if (LS_LIKELY(p != NULL)) track(p, total, &f);
    ls__tls.guard = 0;
    return p;
}

static LS_COLD void *realloc_from_boot(void *p, size_t size)
{
    void *q = malloc(size);
    if (q) {
        size_t old = boot_size(p);
        memcpy(q, p, old < size ? old : size);
    }
    return q;
}

/* realloc by hand: while a snapshot reads trailers (p must stay where it is), and for a block
 * holding reference-counted objects (they die with it, and its address must not be reused by
 * another thread before they are dead). */
static LS_COLD void *realloc_by_hand(void *p, size_t size, const ls_uw_frame_t *f, int how)
{
    size_t old = ls__trailer(p)->size_flags & LS_SIZE_MASK;
    void *q = size ? ls__real.malloc(size + (how == NEW_PLAIN ? 0 : LS_TRAILER)) : NULL;
    if (size && !q) {
        /* failed: the old block is untouched and still ours */
        if (atomic_load_explicit(&ls__sampling, memory_order_relaxed))
            sample_keep_old(p);
        else
            ls__bm_set((uintptr_t)p);
        return NULL;
    }
    if (q) memcpy(q, p, old < size ? old : size);
    if (atomic_load_explicit(&ls__refs_active, memory_order_relaxed)) ls__refs_block_freed(p, f);
    if (!defer_free(p)) ls__real.free(p);
    return q ? keep_new(q, size, f, how) : NULL;
}

/* realloc for every caller; f == NULL when the agent is busy on this thread (no stack then).
 * glibc frees on realloc(p, 0) and returns NULL; so do we. */
static void *realloc_common(void *p, size_t size, const ls_uw_frame_t *f)
{
    if (!p) {
        void *q = ls__real.malloc(size + LS_TRAILER);
        return q ? track(q, size, f) : NULL;
    }
    if (!ls__bm_test_clear((uintptr_t)p)) return ls__real.realloc(p, size); /* foreign */
    if (LS_UNLIKELY(atomic_load_explicit(&ls__defer_frees, memory_order_relaxed)) ||
        LS_UNLIKELY(atomic_load_explicit(&ls__refs_active, memory_order_relaxed) &&
                    ls__refs_block_has_objects(p)))
        return realloc_by_hand(p, size, f, NEW_TRACKED);
    if (size == 0) {
        ls__real.free(p);
        return NULL;
    }
    void *q = ls__real.realloc(p, size + LS_TRAILER);
    if (!q) {
        ls__bm_set((uintptr_t)p); /* failed: the old block is untouched and still ours */
        return NULL;
    }
    return track(q, size, f); /* valgrind: a realloc'd block has the realloc's stack */
}

static LS_COLD void *realloc_untracked(void *p, size_t size)
{
    if (!ls__real.realloc) return p ? NULL : boot_alloc(size, 16); /* nothing existed yet */
    if (!size_ok(size)) return NULL;
    return realloc_common(p, size, NULL);
}

/* The common case inline: no block or an unsampled one (a bootstrap block's pages are pinned at
 * "maybe"), and a size that fits the countdown (size 0 always does: it frees). */
static LS_COLD void *realloc_sample_slow(void *p, size_t size, const uintptr_t *fp)
{
    ls_uw_frame_t f = {.pc = fp[1], .sp = (uintptr_t)(fp + 2), .bp = fp[0]};
    return sample_realloc(p, size, size && sample_hit(size), &f);
}

void *ls__realloc_sample(void *p, size_t size)
{
    uint64_t left = ls__tls.sample_left;
    if (LS_LIKELY(size < left && (!p || !ls__sample_page_maybe((uintptr_t)p)))) {
        ls__tls.sample_left = left - size;
        return ls__real.realloc(p, size);
    }
    /* Out of line, so the common case needs no registers saved; fp: this frame, which gives the
     * caller's (the barrier keeps the call from becoming a jump that would drop the frame). */
    void *q = realloc_sample_slow(p, size, (const uintptr_t *)__builtin_frame_address(0));
    __asm__ volatile("" ::: "memory");
    return q;
}

void *ls__realloc_full(void *p, size_t size)
{
    LS_WAKE_OR(ls__realloc_sample(p, size), ls__realloc_sites(p, size));
    if (LS_UNLIKELY(p && is_boot(p))) return realloc_from_boot(p, size);
    if (!fast_ok() && !untracked_prepare()) return realloc_untracked(p, size);
    if (!size_ok(size)) return NULL;
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    if ((size || !p) && FAIL_FULL(&f)) return NULL; /* realloc(p, 0) frees: never fails */
    ls__tls.guard = 1;
    void *q = realloc_common(p, size, &f);
    ls__tls.guard = 0;
    return q;
}

/* ---- mode sites ---------------------------------------------------------------------------
 * The header (ls_agent.h) and the counters (ls_sites.c). A call is counted when counting is on
 * and the agent is not busy on this thread (its own allocations stay plain); an uncounted block
 * gets no header, so its free, whenever it comes, finds none and changes no counter. A counted
 * block is uncharged at its own site whenever it is freed, counting on or off. The site of a call
 * is computed in the interposer itself (SITE_HERE): the return address is the program's.
 */
static inline bool sites_counting(size_t size)
{
    return LS_LIKELY((atomic_load_explicit(&ls__sites.on, memory_order_relaxed) & LS_SITES_ON) &&
                     !ls__tls.guard && size <= LS_SITE_SIZE_MASK);
}

/* The cached paths' first test: counting on with site_frames 1, and the agent not busy here. */
static inline bool sites_fast(void)
{
    return LS_LIKELY(atomic_load_explicit(&ls__sites.on, memory_order_relaxed) == LS_SITES_ON &&
                     !ls__tls.guard);
}

static inline uint32_t site_of_pc(uintptr_t pc)
{
    size_t c = ls__site_slot(pc);
    if (LS_LIKELY(ls__tls.site_cache[c].key == pc)) return ls__tls.site_cache[c].id;
    return ls__site_of_pc_slow(pc);
}

/* The site of the interposer's caller (a macro: it must run in the interposer's own frame). */
#define SITE_HERE(id)                                                                              \
    do {                                                                                           \
        if (LS_LIKELY(ls__sites.frames == 1)) {                                                    \
            (id) = site_of_pc((uintptr_t)__builtin_return_address(0));                             \
        } else {                                                                                   \
            ls_uw_frame_t site_f_;                                                                 \
            LS_UW_CALLER_FRAME(&site_f_);                                                          \
            (id) = ls__site_of_frames(&site_f_);                                                   \
        }                                                                                          \
    } while (0)

/* Fault injection (ls_fail.c): a slow site lookup says LS_SITE_FAILED when this call must fail;
 * the interposer records it with its own caller's stack and returns what a failed call returns.
 * Failing sites are never cached, so the cached hot paths test nothing. */
#define SITES_FAIL_RECORD(id)                                                                      \
    do {                                                                                           \
        ls_uw_frame_t fail_f_;                                                                     \
        LS_UW_CALLER_FRAME(&fail_f_);                                                              \
        ls__sites_fail_record((id), &fail_f_);                                                     \
    } while (0)
#define SITE_HERE_OR_FAIL(id, ...)                                                                 \
    do {                                                                                           \
        SITE_HERE(id);                                                                             \
        if (LS_UNLIKELY((id)&LS_SITE_FAILED)) {                                                    \
            SITES_FAIL_RECORD(id);                                                                 \
            return __VA_ARGS__;                                                                    \
        }                                                                                          \
    } while (0)

/* A site's counters, changed with add-to-memory instructions: the barriers keep the compiler from
 * turning them into SSE loads, shuffles and stores (twice the instructions, measured with
 * callgrind on python). */
static inline void ctr_charge(ls_site_ctr_t *c, uint64_t size)
{
    c->allocs++;
    __asm__("" ::: "memory");
    c->bytes += size;
}

static inline void ctr_uncharge(ls_site_ctr_t *c, uint64_t size)
{
    c->frees++;
    __asm__("" ::: "memory");
    c->freed_bytes += size;
}

static inline void site_add(uint32_t id, uint64_t size, int sign)
{
    ls_site_ctr_t *sh = ls__tls.sites_shard;
    if (LS_UNLIKELY(!sh) && !(sh = ls__sites_shard_slow())) {
        ls__sites_charge_retired(id, size, sign);
        return;
    }
    if (sign > 0)
        ctr_charge(&sh[id], size);
    else
        ctr_uncharge(&sh[id], size);
}

static inline uint64_t site_word1(uint64_t w0, const void *p)
{
    return w0 ^ (uintptr_t)p ^ ls__sites.secret;
}

/* Writes the header of the counted block p; returns its word0. */
static inline uint64_t site_header(void *p, size_t size, uint64_t id, unsigned la)
{
    uint64_t w0 = (uint64_t)size | id << LS_SITE_SIZE_BITS | (uint64_t)la << 60;
    uint64_t *h = (uint64_t *)p - 2;
    h[0] = w0;
    h[1] = site_word1(w0, p);
    return w0;
}

/* Writes the header of the counted block p and charges its site; returns p. */
static inline void *site_mark(void *p, size_t size, uint32_t id, unsigned la)
{
    site_header(p, size, id, la);
    site_add(id, size, 1);
    return p;
}

/* Is p a counted block? Reads the 16 bytes before it (mapped for any heap pointer). */
static inline bool site_ours(const void *p, uint64_t *w0)
{
    const uint64_t *h = (const uint64_t *)p - 2;
    uint64_t a = h[0];
    *w0 = a;
    return LS_UNLIKELY(h[1] == site_word1(a, p));
}

static inline void site_uncharge(uint64_t w0)
{
    site_add((uint32_t)(w0 >> LS_SITE_SIZE_BITS) & (LS_SITES_MAX - 1), w0 & LS_SITE_SIZE_MASK, -1);
}

/* The real allocator's block behind the counted block p. */
static inline void *site_base(void *p, uint64_t w0)
{
    unsigned la = (unsigned)(w0 >> 60);
    return (char *)p - (la ? (size_t)1 << (la + 4) : LS_SITE_HDR);
}

/* malloc's hot path keeps nothing but the size alive across the real call and leaves every rare
 * case (a new site, a thread's first counted call, site_frames > 1) to a cold function reached by
 * a tail call, so that it needs no callee-saved registers beyond one: the first version saved
 * five and spent 5.5 ns per malloc/free pair (bench/hotpath_bench) where python's budget is ~9. */
static LS_COLD __attribute__((noinline)) void *sites_mark_slow(char *p, size_t size, uintptr_t pc,
                                                               const ls_uw_frame_t *f)
{
    uint32_t id = f ? ls__site_of_frames(f) : site_of_pc(pc);
    if (LS_UNLIKELY(id & LS_SITE_FAILED)) {
        ls__real.free(p - LS_SITE_HDR);
        if (f) {
            ls__sites_fail_record(id, f);
        } else {
            SITES_FAIL_RECORD(id); /* tail-called: the caller's frame is the program's */
        }
        errno = ENOMEM;
        return NULL;
    }
    return site_mark(p, size, id, 0);
}

/* Counting off, the agent busy, a huge size or site_frames > 1: tail-called by ls__malloc_sites,
 * so its caller's frame is the program's. */
static LS_COLD __attribute__((noinline)) void *malloc_sites_other(size_t size)
{
    if (!sites_counting(size)) return ls__real.malloc(size);
    char *q = ls__real.malloc(size + LS_SITE_HDR);
    if (LS_UNLIKELY(!q)) return NULL;
    if (ls__sites.frames == 1) /* counting was just turned on */
        return sites_mark_slow(q + LS_SITE_HDR, size, (uintptr_t)__builtin_return_address(0), NULL);
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    return sites_mark_slow(q + LS_SITE_HDR, size, 0, &f);
}

/* The common case tests one global word, the guard and the size, and a cache hit implies the
 * thread's shard (cache_put). */
LS_HOT void *ls__malloc_sites(size_t size)
{
    if (LS_UNLIKELY(!sites_fast() || size > LS_SITE_SIZE_MASK)) return malloc_sites_other(size);
    char *q = ls__real.malloc(size + LS_SITE_HDR);
    if (LS_UNLIKELY(!q)) return NULL;
    q += LS_SITE_HDR;
    uintptr_t pc = (uintptr_t)__builtin_return_address(0);
    size_t c = ls__site_slot(pc);
    if (LS_UNLIKELY(ls__tls.site_cache[c].key != pc)) return sites_mark_slow(q, size, pc, NULL);
    uint32_t id = ls__tls.site_cache[c].id;
    site_header(q, size, id, 0);
    ctr_charge(&ls__tls.sites_shard[id], size);
    return q;
}

static LS_COLD __attribute__((noinline)) void sites_free_slow(void *p, uint64_t w0)
{
    site_uncharge(w0);
    ls__real.free(site_base(p, w0));
}

/* A block without a header: uncounted, or in the bootstrap buffer (never freed). */
static LS_COLD __attribute__((noinline)) void sites_free_plain(void *p)
{
    if (!is_boot(p)) ls__real.free(p);
}

/* No guard test: a counted block is uncharged whoever frees it. Nothing may be read before NULL;
 * a bootstrap block can be (its 16 bytes before lie in the buffer or the agent's data), and its
 * check word fails like any uncounted block's. */
LS_HOT void ls__free_sites(void *p)
{
    if (LS_UNLIKELY(!p)) return;
    const uint64_t *h = (const uint64_t *)p - 2;
    uint64_t w0 = h[0];
    ls_site_ctr_t *sh = ls__tls.sites_shard;
    if (LS_UNLIKELY(h[1] != site_word1(w0, p))) {
        sites_free_plain(p);
        return;
    }
    if (LS_UNLIKELY(!sh || (w0 >> 60))) {
        sites_free_slow(p, w0);
        return;
    }
    ctr_uncharge(&sh[(w0 >> LS_SITE_SIZE_BITS) & (LS_SITES_MAX - 1)], w0 & LS_SITE_SIZE_MASK);
    ls__real.free((char *)p - LS_SITE_HDR);
}

/* Every case but the common one; tail-called by ls__calloc_sites (the site is its caller). */
static LS_COLD void *calloc_sites_other(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (LS_UNLIKELY(!sites_counting(total))) return ls__real.calloc(n, size);
    uint32_t id;
    SITE_HERE_OR_FAIL(id, (errno = ENOMEM, NULL));
    char *q = ls__real.calloc(1, total + LS_SITE_HDR);
    if (LS_UNLIKELY(!q)) return NULL;
    return site_mark(q + LS_SITE_HDR, total, id, 0);
}

/* The common case: counting on (site_frames 1), a cached site, a size that fits the header. The
 * cached hot paths (malloc, calloc, realloc, free) sit together in .text.hot: a host with a large
 * code footprint (python) keeps fewer of the agent's cache lines. */
LS_HOT void *ls__calloc_sites(size_t n, size_t size)
{
    size_t total;
    uintptr_t pc = (uintptr_t)__builtin_return_address(0);
    size_t c = ls__site_slot(pc);
    if (LS_UNLIKELY(!sites_fast() || __builtin_mul_overflow(n, size, &total) ||
                    total > LS_SITE_SIZE_MASK || ls__tls.site_cache[c].key != pc))
        return calloc_sites_other(n, size);
    uint32_t id = ls__tls.site_cache[c].id;
    char *q = ls__real.calloc(1, total + LS_SITE_HDR);
    if (LS_UNLIKELY(!q)) return NULL;
    q += LS_SITE_HDR;
    site_header(q, total, id, 0);
    ctr_charge(&ls__tls.sites_shard[id], total);
    return q;
}

/*
 * realloc = a free of the old block at its own site + an allocation at the caller (count: the
 * new block is counted, at site id). A counted block is resized in place by the real realloc
 * (header and all) unless the new one is not to be counted or the old one is over-aligned: then
 * by hand. An uncounted block that is to be counted is moved by hand too (it needs a header).
 * realloc(p, 0) frees, like glibc's.
 */
static LS_COLD void *sites_realloc_slow(void *p, size_t size, uint32_t id, bool count, bool ours,
                                        uint64_t w0)
{
    size_t old = ours ? (size_t)(w0 & LS_SITE_SIZE_MASK) : ls__real.malloc_usable_size(p);
    if (size == 0) {
        if (ours) site_uncharge(w0);
        ls__real.free(ours ? site_base(p, w0) : p);
        return NULL;
    }
    char *q = ls__real.malloc(size + (count ? LS_SITE_HDR : 0));
    if (!q) return NULL; /* the old block is untouched, still charged if it was */
    if (count) q += LS_SITE_HDR;
    memcpy(q, p, old < size ? old : size);
    if (ours) site_uncharge(w0);
    ls__real.free(ours ? site_base(p, w0) : p);
    return count ? site_mark(q, size, id, 0) : q;
}

static inline void *sites_realloc(void *p, size_t size, uint32_t id, bool count)
{
    uint64_t w0 = 0;
    if (!p) {
        if (!count) return ls__real.malloc(size);
        char *q = ls__real.malloc(size + LS_SITE_HDR);
        return q ? site_mark(q + LS_SITE_HDR, size, id, 0) : NULL;
    }
    if (LS_UNLIKELY(is_boot(p))) return realloc_from_boot(p, size);
    bool ours = site_ours(p, &w0);
    if (!ours && !count) return ls__real.realloc(p, size);
    if (!ours || !count || size == 0 || (w0 >> 60))
        return sites_realloc_slow(p, size, id, count, ours, w0);
    char *q = ls__real.realloc((char *)p - LS_SITE_HDR, size + LS_SITE_HDR);
    if (!q) return NULL; /* the old block is untouched, still charged */
    site_uncharge(w0);
    return site_mark(q + LS_SITE_HDR, size, id, 0);
}

/* Every case but the common one; tail-called by ls__realloc_sites (the site is its caller). */
static LS_COLD void *realloc_sites_other(void *p, size_t size)
{
    bool count = sites_counting(size) && (size || !p); /* realloc(p, 0) frees: never fails */
    uint32_t id = 0;
    if (count) SITE_HERE_OR_FAIL(id, (errno = ENOMEM, NULL));
    return sites_realloc(p, size, id, count);
}

/* The common case: a counted block (not over-aligned) resized in place by the real realloc,
 * counting on, a cached site. */
LS_HOT void *ls__realloc_sites(void *p, size_t size)
{
    uintptr_t pc = (uintptr_t)__builtin_return_address(0);
    size_t c = ls__site_slot(pc);
    if (LS_UNLIKELY(!sites_fast() || !p || size - 1 >= LS_SITE_SIZE_MASK ||
                    ls__tls.site_cache[c].key != pc))
        return realloc_sites_other(p, size);
    const uint64_t *h = (const uint64_t *)p - 2;
    uint64_t w0 = h[0];
    if (LS_UNLIKELY(h[1] != site_word1(w0, p) || (w0 >> 60))) return realloc_sites_other(p, size);
    uint32_t id = ls__tls.site_cache[c].id;
    char *q = ls__real.realloc((char *)p - LS_SITE_HDR, size + LS_SITE_HDR);
    if (LS_UNLIKELY(!q)) return NULL; /* the old block is untouched, still charged */
    q += LS_SITE_HDR;
    site_header(q, size, id, 0);
    ls_site_ctr_t *sh = ls__tls.sites_shard;
    ctr_uncharge(&sh[(w0 >> LS_SITE_SIZE_BITS) & (LS_SITES_MAX - 1)], w0 & LS_SITE_SIZE_MASK);
    ctr_charge(&sh[id], size);
    return q;
}

/* memalign & co. Alignments up to 16 are malloc's own; larger ones (up to 2^19) put the block
 * `align` bytes into a real block of size + align, the header just before it (la in word0 lets a
 * free find the real block). An alignment that is not a power of two, or a larger one, is the
 * real allocator's business: such a block stays uncounted. */
#define LS_SITE_ALIGN_MAX ((size_t)1 << 19)
static inline bool pow2(size_t x);

static void *sites_aligned(size_t align, size_t size, uint32_t id)
{
    if (align <= 16) {
        char *q = ls__real.malloc(size + LS_SITE_HDR);
        return q ? site_mark(q + LS_SITE_HDR, size, id, 0) : NULL;
    }
    if (size > SIZE_MAX - align) return NULL;
    char *q = ls__real.memalign(align, size + align);
    if (!q) return NULL;
    unsigned la = (unsigned)__builtin_ctzl(align) - 4;
    return site_mark(q + align, size, id, la);
}

static inline bool sites_align_ok(size_t align, size_t size)
{
    return pow2(align) && align <= LS_SITE_ALIGN_MAX && sites_counting(size);
}

/* The mode sites branch of memalign & co (a macro: the site is the interposer's caller). A block
 * that cannot be counted is the real allocator's (uncounted: the call that makes it). */
#define SITES_ALIGNED_RETURN(align, size, uncounted)                                               \
    do {                                                                                           \
        if (!sites_align_ok(align, size)) return uncounted;                                        \
        uint32_t id_;                                                                              \
        SITE_HERE_OR_FAIL(id_, (errno = ENOMEM, NULL));                                            \
        void *p_ = sites_aligned(align, size, id_);                                                \
        if (!p_) errno = ENOMEM;                                                                   \
        return p_;                                                                                 \
    } while (0)

LS_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total) || !size_ok(total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (LS_UNLIKELY(p && is_boot(p))) return realloc_from_boot(p, total);
    if (sampling()) {
        if (ls__mode_sites()) {
            bool count = sites_counting(total) && (total || !p);
            uint32_t id = 0;
            if (count) SITE_HERE_OR_FAIL(id, (errno = ENOMEM, NULL));
            return sites_realloc(p, total, id, count);
        }
        bool hit = total && sample_hit(total);
        if (LS_LIKELY(!hit && (!p || !ls__sample_page_maybe((uintptr_t)p))))
            return ls__real.realloc(p, total);
        ls_uw_frame_t f;
        LS_UW_CALLER_FRAME(&f);
        return sample_realloc(p, total, hit, &f);
    }
    if (!fast_ok() && !untracked_prepare()) return realloc_untracked(p, total);
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    if ((total || !p) && FAIL_FULL(&f)) return NULL; /* a resize to 0 frees: never fails */
    ls__tls.guard = 1;
    void *q = realloc_common(p, total, &f);
    ls__tls.guard = 0;
    return q;
}

static inline bool pow2(size_t x)
{
    return x && !(x & (x - 1));
}

LS_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (align % sizeof(void *) || !pow2(align / sizeof(void *))) return EINVAL;
    if (sampling()) {
        if (ls__mode_sites()) {
            if (!sites_align_ok(align, size)) return ls__real.posix_memalign(out, align, size);
            uint32_t id;
            SITE_HERE_OR_FAIL(id, ENOMEM);
            void *p = sites_aligned(align, size, id);
            if (!p) return ENOMEM;
            *out = p;
            return 0;
        }
        if (LS_LIKELY(!sample_hit(size))) return ls__real.posix_memalign(out, align, size);
        if (size > LS_SIZE_MASK) return ENOMEM;
        ls_uw_frame_t f;
        LS_UW_CALLER_FRAME(&f);
        void *p = sampled_alloc(SA_MEMALIGN, align, size, &f);
        if (!p) return ENOMEM;
        *out = p;
        return 0;
    }
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.posix_memalign) return ls__real.posix_memalign(out, align, size);
        void *p = boot_alloc(size, align);
        if (!p) return ENOMEM;
        *out = p;
        return 0;
    }
    if (size > LS_SIZE_MASK) return ENOMEM;
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    if (LS_UNLIKELY(ls__fail_on)) {
        int saved = errno; /* posix_memalign reports through its result only */
        bool failed = fail_full(&f);
        errno = saved;
        if (failed) return ENOMEM;
    }
    ls__tls.guard = 1;
    void *p = NULL;
    int rc = ls__real.posix_memalign(&p, align, size + LS_TRAILER);
    if (rc == 0) *out = track(p, size, &f);
    ls__tls.guard = 0;
    return rc;
}

#define LS_PAGE         4096
#define PVALLOC_SIZE(s) (((s) + LS_PAGE - 1) & ~(size_t)(LS_PAGE - 1))
LS_EXPORT void *aligned_alloc(size_t align, size_t size)
{
    if (sampling()) {
        if (ls__mode_sites()) {
            SITES_ALIGNED_RETURN(align, size, ls__real.aligned_alloc(align, size));
        }
        if (LS_LIKELY(!sample_hit(size))) return ls__real.aligned_alloc(align, size);
        ls_uw_frame_t f;
        LS_UW_CALLER_FRAME(&f);
        return sampled_alloc(SA_ALIGNED, align, size, &f);
    }
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.aligned_alloc) return ls__real.aligned_alloc(align, size);
        return boot_alloc(size, align);
    }
    if (!size_ok(size)) return NULL;
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    if (FAIL_FULL(&f)) return NULL;
    ls__tls.guard = 1;
    void *p = ls__real.aligned_alloc(align, size + LS_TRAILER);
    if (p) track(p, size, &f);
    ls__tls.guard = 0;
    return p;
}

LS_EXPORT void *memalign(size_t align, size_t size)
{
    if (sampling()) {
        if (ls__mode_sites()) {
            SITES_ALIGNED_RETURN(align, size, ls__real.memalign(align, size));
        }
        if (LS_LIKELY(!sample_hit(size))) return ls__real.memalign(align, size);
        ls_uw_frame_t f;
        LS_UW_CALLER_FRAME(&f);
        return sampled_alloc(SA_MEMALIGN, align, size, &f);
    }
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.memalign) return ls__real.memalign(align, size);
        return boot_alloc(size, align);
    }
    if (!size_ok(size)) return NULL;
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    if (FAIL_FULL(&f)) return NULL;
    ls__tls.guard = 1;
    void *p = ls__real.memalign(align, size + LS_TRAILER);
    if (p) track(p, size, &f);
    ls__tls.guard = 0;
    return p;
}

/* valloc and pvalloc are memalign(page) for the host; pvalloc's size is rounded up to whole
 * pages and valgrind reports that rounded size. */
static inline void *page_aligned(size_t size, const ls_uw_frame_t *f)
{
    void *p = ls__real.memalign(LS_PAGE, size + LS_TRAILER);
    return p ? track(p, size, f) : NULL;
}

LS_EXPORT void *valloc(size_t size)
{
    if (sampling()) {
        if (ls__mode_sites()) {
            SITES_ALIGNED_RETURN(LS_PAGE, size, ls__real.memalign(LS_PAGE, size));
        }
        if (LS_LIKELY(!sample_hit(size))) return ls__real.memalign(LS_PAGE, size);
        ls_uw_frame_t f;
        LS_UW_CALLER_FRAME(&f);
        return sampled_alloc(SA_MEMALIGN, LS_PAGE, size, &f);
    }
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.valloc) return ls__real.valloc(size);
        return boot_alloc(size, LS_PAGE);
    }
    if (!size_ok(size)) return NULL;
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    if (FAIL_FULL(&f)) return NULL;
    ls__tls.guard = 1;
    void *p = page_aligned(size, &f);
    ls__tls.guard = 0;
    return p;
}

LS_EXPORT void *pvalloc(size_t size)
{
    if (sampling()) {
        size_t rounded = PVALLOC_SIZE(size);
        if (rounded < size) { /* wrapped around */
            errno = ENOMEM;
            return NULL;
        }
        if (ls__mode_sites()) {
            SITES_ALIGNED_RETURN(LS_PAGE, rounded, ls__real.memalign(LS_PAGE, rounded));
        }
        if (LS_LIKELY(!sample_hit(rounded))) return ls__real.memalign(LS_PAGE, rounded);
        ls_uw_frame_t f;
        LS_UW_CALLER_FRAME(&f);
        return sampled_alloc(SA_MEMALIGN, LS_PAGE, rounded, &f);
    }
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.pvalloc) return ls__real.pvalloc(size);
        return boot_alloc(PVALLOC_SIZE(size), LS_PAGE);
    }
    if (!size_ok(size)) return NULL;
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    if (FAIL_FULL(&f)) return NULL;
    ls__tls.guard = 1;
    void *p = page_aligned(PVALLOC_SIZE(size), &f);
    ls__tls.guard = 0;
    return p;
}

LS_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p) return 0;
    if (is_boot(p)) return boot_size(p);
    if (!ls__real.malloc_usable_size) return 0;
    uint64_t w0;
    if (ls__mode_sites() && site_ours(p, &w0)) {
        void *b = site_base(p, w0);
        return ls__real.malloc_usable_size(b) - (size_t)((char *)p - (char *)b);
    }
    size_t u = ls__real.malloc_usable_size(p);
    return ls__bm_test((uintptr_t)p) ? u - LS_TRAILER : u;
}

/* ---- compile-time tags (ls_tags.c, include/leakscope/tags.h) --------------------------------
 * A tagged call enters ls_agent_tag_NAME(tag, args...). In mode sites it goes to
 * ls__tag_NAME_sites, which takes the site from the tag (no return address lookup); in every
 * other mode the dispatcher drops the tag and jumps to the ordinary entry point, which sees the
 * program's return address and frame as if the program had called it. 2 (the control thread is
 * wanted, modes sample and sites) goes through ls__tag_NAME_wake.
 */
#define LS_TAG_DISPATCH(name, shift)                                                               \
    __asm__(".text\n"                                                                              \
            ".globl ls_agent_tag_" #name "\n"                                                      \
            ".type ls_agent_tag_" #name ",@function\n"                                             \
            ".p2align 4\nls_agent_tag_" #name ":\n"                                                \
            "  .cfi_startproc\n"                                                                   \
            "  cmpl $3, ls__sampling(%rip)\n"                                                      \
            "  je ls__tag_" #name "_sites\n"                                                       \
            "  cmpl $2, ls__sampling(%rip)\n"                                                      \
            "  je ls__tag_" #name "_wake\n" shift "  jmp ls__" #name "_entry\n"                    \
            "  .cfi_endproc\n"                                                                     \
            ".size ls_agent_tag_" #name ", .-ls_agent_tag_" #name "\n")

LS_TAG_DISPATCH(malloc, "  mov %rsi, %rdi\n");
LS_TAG_DISPATCH(calloc, "  mov %rsi, %rdi\n  mov %rdx, %rsi\n");
LS_TAG_DISPATCH(realloc, "  mov %rsi, %rdi\n  mov %rdx, %rsi\n");
LS_TAG_DISPATCH(memalign, "  mov %rsi, %rdi\n  mov %rdx, %rsi\n");

/* memalign is a C function: a local name for the dispatcher to jump to. */
__asm__(
    ".globl ls__memalign_entry\n.hidden ls__memalign_entry\n.set ls__memalign_entry, memalign\n");

LS_DISPATCHED void *ls__tag_malloc_sites(ls_tag_t *t, size_t size);
LS_DISPATCHED void *ls__tag_calloc_sites(ls_tag_t *t, size_t n, size_t size);
LS_DISPATCHED void *ls__tag_realloc_sites(ls_tag_t *t, void *p, size_t size);
LS_DISPATCHED void *ls__tag_memalign_sites(ls_tag_t *t, size_t align, size_t size);
LS_DISPATCHED void *ls__tag_malloc_wake(ls_tag_t *t, size_t size);
LS_DISPATCHED void *ls__tag_calloc_wake(ls_tag_t *t, size_t n, size_t size);
LS_DISPATCHED void *ls__tag_realloc_wake(ls_tag_t *t, void *p, size_t size);
LS_DISPATCHED void *ls__tag_memalign_wake(ls_tag_t *t, size_t align, size_t size);

/* The site of a tagged call that missed the tag's cached id (the macro runs in the interposer's
 * frame: a tag the agent does not recognise is counted at the return address). */
#define TAG_SITE(id, t)                                                                            \
    do {                                                                                           \
        (id) = ls__tag_site_slow(t);                                                               \
        if (LS_UNLIKELY((id) == UINT32_MAX)) SITE_HERE(id);                                        \
    } while (0)
#define TAG_SITE_OR_FAIL(id, t, ...)                                                               \
    do {                                                                                           \
        int32_t cached_ =                                                                          \
            (int32_t)atomic_load_explicit((_Atomic uint32_t *)&(t)->site, memory_order_relaxed);   \
        if (LS_LIKELY(cached_ > 0)) {                                                              \
            (id) = (uint32_t)cached_;                                                              \
        } else {                                                                                   \
            TAG_SITE(id, t);                                                                       \
            if (LS_UNLIKELY((id)&LS_SITE_FAILED)) {                                                \
                SITES_FAIL_RECORD(id);                                                             \
                return __VA_ARGS__;                                                                \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static LS_COLD __attribute__((noinline)) void *tag_mark_slow(char *p, size_t size, ls_tag_t *t)
{
    uint32_t id;
    TAG_SITE(id, t);
    if (LS_UNLIKELY(id & LS_SITE_FAILED)) {
        ls__real.free(p - LS_SITE_HDR);
        SITES_FAIL_RECORD(id); /* tail-called: the caller's frame is the program's */
        errno = ENOMEM;
        return NULL;
    }
    return site_mark(p, size, id, 0);
}

/* The hottest tagged path: like ls__malloc_sites, with the tag's id instead of the cache. */
void *ls__tag_malloc_sites(ls_tag_t *t, size_t size)
{
    if (LS_UNLIKELY(!sites_counting(size))) return ls__real.malloc(size);
    char *q = ls__real.malloc(size + LS_SITE_HDR);
    if (LS_UNLIKELY(!q)) return NULL;
    q += LS_SITE_HDR;
    int32_t id = (int32_t)atomic_load_explicit((_Atomic uint32_t *)&t->site, memory_order_relaxed);
    ls_site_ctr_t *sh = ls__tls.sites_shard;
    if (LS_UNLIKELY(id <= 0 || !sh)) return tag_mark_slow(q, size, t);
    site_header(q, size, (uint32_t)id, 0);
    ctr_charge(&sh[id], size);
    return q;
}

void *ls__tag_calloc_sites(ls_tag_t *t, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (LS_UNLIKELY(!sites_counting(total))) return ls__real.calloc(n, size);
    uint32_t id;
    TAG_SITE_OR_FAIL(id, t, (errno = ENOMEM, NULL));
    char *q = ls__real.calloc(1, total + LS_SITE_HDR);
    if (LS_UNLIKELY(!q)) return NULL;
    return site_mark(q + LS_SITE_HDR, total, id, 0);
}

void *ls__tag_realloc_sites(ls_tag_t *t, void *p, size_t size)
{
    bool count = sites_counting(size) && (size || !p);
    uint32_t id = 0;
    if (count) TAG_SITE_OR_FAIL(id, t, (errno = ENOMEM, NULL));
    return sites_realloc(p, size, id, count);
}

void *ls__tag_memalign_sites(ls_tag_t *t, size_t align, size_t size)
{
    if (!sites_align_ok(align, size)) return ls__real.memalign(align, size);
    uint32_t id;
    TAG_SITE_OR_FAIL(id, t, (errno = ENOMEM, NULL));
    void *p = sites_aligned(align, size, id);
    if (!p) errno = ENOMEM;
    return p;
}

/* Entered by a jump with the program's return address: each ends in a tail call. */
void *ls__tag_malloc_wake(ls_tag_t *t, size_t size)
{
    wake_control();
    return ls__mode_sites() ? ls__tag_malloc_sites(t, size) : ls__malloc_sample(size);
}

void *ls__tag_calloc_wake(ls_tag_t *t, size_t n, size_t size)
{
    wake_control();
    return ls__mode_sites() ? ls__tag_calloc_sites(t, n, size) : ls__calloc_sample(n, size);
}

void *ls__tag_realloc_wake(ls_tag_t *t, void *p, size_t size)
{
    wake_control();
    return ls__mode_sites() ? ls__tag_realloc_sites(t, p, size) : ls__realloc_sample(p, size);
}

void *ls__tag_memalign_wake(ls_tag_t *t, size_t align, size_t size)
{
    wake_control();
    return ls__mode_sites() ? ls__tag_memalign_sites(t, align, size) : memalign(align, size);
}
