/*
 * ls_unwind.h - call-stack capture inside the agent, without frame pointers.
 *
 * Two unwinders behind one interface, chosen by the `unwinder` option:
 *  - ls__unwind_fast: our own x86-64 unwinder. It keeps a global cache of per-PC rules (how to
 *    find the caller's CFA, return address and RBP from this PC) compiled from the module's
 *    .eh_frame on first sight of each PC, so a warm step is one hash probe and two loads.
 *  - ls__unwind_libunwind: libunwind's unw_backtrace with per-thread caching (the reference).
 *    The agent does not link libunwind (it and liblzma cost the host ~150 KiB of memory when
 *    unused): ls__unwind_libunwind_load dlopen()s it, and until then these walkers return 0.
 *    Beware: libunwind's per-thread trace cache is keyed by PC and never flushed, so a thread
 *    that unwound through a dlclose'd object gets wrong stacks through whatever is dlopen'd at
 *    the same address later (test_unwind's dlopen test shows it).
 * docs/DESIGN.md records the measurements that chose the default.
 *
 * Contract for both: never call malloc or anything that may (they run inside the tracked
 * malloc path; the caller holds no agent lock but the thread's reentrancy guard is set); never
 * fault on a corrupt stack: every load is checked against [start->sp, stack_hi); stop at the
 * first frame without unwind info, at a zero return address, or at max frames.
 */
#ifndef LS_UNWIND_H
#define LS_UNWIND_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Register state of one frame: the function executing at pc, with stack pointer sp (the value
 * of RSP inside that function at pc) and frame pointer bp (RBP there). */
typedef struct ls_uw_frame {
    uintptr_t pc, sp, bp;
} ls_uw_frame_t;

/*
 * Fills f with the state of the caller of the function this macro is used in, which must be
 * compiled with frame pointers (the agent is built with -fno-omit-frame-pointer): pc is the
 * return address into the caller, sp the caller's RSP after the return, bp the caller's RBP.
 */
#define LS_UW_CALLER_FRAME(f)                                                                      \
    do {                                                                                           \
        uintptr_t *ls__fp = (uintptr_t *)__builtin_frame_address(0);                               \
        (f)->pc = (uintptr_t)__builtin_return_address(0);                                          \
        (f)->sp = (uintptr_t)(ls__fp + 2);                                                         \
        (f)->bp = ls__fp[0];                                                                       \
    } while (0)

/*
 * Writes the return addresses of start and its callers into pcs: pcs[0] = start->pc, then one
 * per caller, at most max. stack_hi is the top (highest address, exclusive) of the current
 * thread's stack; 0 means unknown (then the CFA must rise and stay within 64 MiB of start->sp,
 * which a garbage stack can still defeat: pass the real top, see ls__unwind_stack_top). Returns
 * the number written. Thread-safe and lock-free. Walks through signal frames (__restore_rt) when
 * the handler runs on the same stack; stops at a sigaltstack boundary. Async-signal-safe when
 * warm; a rule-cache miss calls dl_iterate_phdr (takes the loader's recursive lock, no malloc),
 * which is not formally async-signal-safe.
 */
size_t ls__unwind_fast(const ls_uw_frame_t *start, uintptr_t stack_hi, uintptr_t *pcs, size_t max);

/*
 * Same result through libunwind's unw_backtrace. Frame 0 is the function that calls
 * ls__unwind_libunwind (pcs[0] would be the return address into it); skip drops that many
 * frames from the inner end. So in a function F,
 *     LS_UW_CALLER_FRAME(&f); n = ls__unwind_fast(&f, hi, pcs, max);
 * and n = ls__unwind_libunwind(pcs, max, 1) give the same list, provided F does not make the
 * call as a tail call (use the result after it) and F itself is not inlined. At most
 * 512 - skip - 2 frames.
 */
size_t ls__unwind_libunwind(uintptr_t *pcs, size_t max, int skip);

/* Loads libunwind.so.8 (RTLD_NOW | RTLD_LOCAL), finds the few functions we call and sets its
 * per-thread caching; true once that has worked (later calls are free). On failure, *why (if
 * not NULL) gets dlerror's message, valid until the next dl* call, and every later call fails
 * at once. Not for the allocation path: dlopen allocates, takes the loader lock and runs
 * constructors; the agent calls it from its constructor. */
bool ls__unwind_libunwind_load(const char **why);

/* The same, trimmed to begin at start->pc: the very list ls__unwind_fast(start, ...) gives,
 * whatever the agent inlined between the interposer and here (0 if start->pc is not among the
 * first 64 frames). Prefer it to counting frames for skip. */
size_t ls__unwind_libunwind_from(const ls_uw_frame_t *start, uintptr_t *pcs, size_t max);

/* Frame-pointer walk from start (RBP chain), same bounds checks and output as ls__unwind_fast;
 * right only while every frame keeps a frame pointer. For reference and FP-built targets. */
size_t ls__unwind_fp(const ls_uw_frame_t *start, uintptr_t stack_hi, uintptr_t *pcs, size_t max);

/* Once, before the first unwind (called from the agent's init; maps the 1 MiB rule cache).
 * ls__unwind_fast calls it itself if nobody did. */
void ls__unwind_init(void);
/*
 * Instead of ls__unwind_init, for mode sample, where walks are rare and the host's memory is
 * what counts:
 *  - a rule cache of 32 KiB (its slots are touched at random, so the 1 MiB one would become
 *    resident; a sampled program has a few hundred distinct return addresses);
 *  - a miss reads .eh_frame_hdr and .eh_frame with pread() from the object's file instead of
 *    through its mapping: each first touch of a mapped file page faults in its whole fault-around
 *    window (64 KiB), so a few misses would make most of those sections resident (~300 KiB for
 *    python3). Only non-writable segments of objects whose file still matches the mapping;
 *    anything else reads the mapping as in full mode. A few descriptors stay open (O_CLOEXEC,
 *    numbered from 900 up).
 */
void ls__unwind_init_small(void);

/* In the child of a fork: a miss another thread had under way (small mode's file table) is
 * dropped. Async-signal-safe. */
void ls__unwind_after_fork_child(void);

/* After dlclose (or any change that may unmap code): forget every cached rule. */
void ls__unwind_modules_changed(void);

/* After dlopen: only mappings were added, so rules stay valid; cached "no unwind info here"
 * verdicts are re-checked. Much cheaper for the target than ls__unwind_modules_changed. */
void ls__unwind_modules_added(void);

/* Top (exclusive end) of the mapping that holds sp, read from /proc/self/maps without malloc;
 * 0 if not found. Costs tens of microseconds: call once per thread and keep the result as that
 * thread's stack_hi. */
uintptr_t ls__unwind_stack_top(uintptr_t sp);

/* Counters for the benchmark and stats, summed over threads: rule-cache hits and misses,
 * walks that ended at a frame without a usable rule (no FDE, CFI beyond simple rules, lost RBP),
 * walks that ended at an implausible CFA or a load outside the stack. Approximate with more
 * than 64 threads (striped counters without atomic adds). */
typedef struct ls_uw_stats {
    uint64_t hits, misses, no_rule, bad_cfa;
    /* Small mode: misses compiled from the object's file; objects whose file was unusable
     * (cannot be opened, does not match the mapping, text relocations), read from memory. */
    uint64_t from_file, files_refused;
} ls_uw_stats_t;
void ls__unwind_stats(ls_uw_stats_t *out);

/*
 * The stack depot's 64-bit hash of a list of PCs, folded frame by frame from the OUTERMOST
 * frame in (pcs[n-1] first), so a walk that shares its outer frames with the previous one
 * continues the hash from where they end (ls__unwind_fast_hashed); ls__depot_hash computes the
 * same value over a finished list.
 */
#define LS_STACK_HASH_SEED 0x243f6a8885a308d3ull
static inline uint64_t ls__stack_hash_step(uint64_t h, uintptr_t pc)
{
    h = (h ^ pc) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}
static inline uint64_t ls__stack_hash_final(uint64_t h, size_t n)
{
    h = (h ^ n) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

/* ls__unwind_fast, also returning ls__stack_hash_final of the PCs it wrote in *hash. */
size_t ls__unwind_fast_hashed(const ls_uw_frame_t *start, uintptr_t stack_hi, uintptr_t *pcs,
                              size_t max, uint64_t *hash);

/* Frames the hashed variant took over from the previous walk of this thread (statistics). */
uint64_t ls__unwind_reused_frames(void);

/* The process's memory map for reading. /proc/thread-self first: once the main thread has left
 * with pthread_exit, /proc/self/maps (the leader's) reads empty while the process runs on. */
static inline int ls__maps_open(void)
{
    int fd = open("/proc/thread-self/maps", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? fd : open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
}

#endif
