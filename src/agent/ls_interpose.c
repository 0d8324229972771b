/*
 * ls_interpose.c - the malloc family, as seen by the host. The hot path is: one test of the
 * agent state and the thread's reentrancy guard, the real allocator, a stack capture, a table
 * insert. Everything unusual - agent not ready yet, a call from inside the agent, pointers from
 * the bootstrap buffer - goes to cold functions.
 *
 * Bootstrap: the first malloc of the process (often from ld.so, before our constructor) starts
 * the agent, which asks dlsym for the real functions; dlsym itself may call calloc. Such calls
 * are served from a static buffer that is never reused; frees into it are ignored.
 */
#define _GNU_SOURCE
#include "ls_interpose.h"
#include "ls_unwind.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ls_real_t ls__real;

/* ---- bootstrap buffer -------------------------------------------------------------------------- */
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

/* ---- slow paths -------------------------------------------------------------------------------- */
static inline bool fast_ok(void)
{
    return LS_LIKELY(atomic_load_explicit(&ls__g.state, memory_order_relaxed) == LS_STATE_READY &&
                     !ls__tls.guard);
}

/* Not tracking this call: start the agent if nobody has, then pass it through. */
static LS_COLD bool untracked_prepare(void)
{
    if (atomic_load(&ls__g.state) == LS_STATE_UNINIT) ls__init();
    return fast_ok();
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

/* ---- tracking ---------------------------------------------------------------------------------- */
static inline void track(void *p, size_t size, const ls_uw_frame_t *f)
{
    ls__table_insert((uintptr_t)p, size, ls__capture_stack(f));
}

static inline void untrack(void *p)
{
    if (LS_UNLIKELY(!ls__table_remove((uintptr_t)p, NULL)))
        atomic_fetch_add_explicit(&ls__g.unknown_frees, 1, memory_order_relaxed);
}

/* ---- the interposers ----------------------------------------------------------------------- */
LS_EXPORT void *malloc(size_t size)
{
    if (!fast_ok() && !untracked_prepare()) return malloc_untracked(size);
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    ls__tls.guard = 1;
    void *p = ls__real.malloc(size);
    if (LS_LIKELY(p != NULL)) track(p, size, &f);
    ls__tls.guard = 0;
    return p;
}

LS_EXPORT void free(void *p)
{
    if (!p) return;
    if (LS_UNLIKELY(is_boot(p))) return;
    if (!fast_ok()) {
        free_untracked(p);
        return;
    }
    ls__tls.guard = 1;
    untrack(p); /* before the real free: another thread may get the address right after */
    ls__real.free(p);
    ls__tls.guard = 0;
}

LS_EXPORT void *calloc(size_t n, size_t size)
{
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.calloc) return ls__real.calloc(n, size);
        size_t total;
        if (__builtin_mul_overflow(n, size, &total)) return NULL;
        return boot_alloc(total, 16); /* static buffer: already zero, never reused */
    }
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    ls__tls.guard = 1;
    void *p = ls__real.calloc(n, size);
    if (LS_LIKELY(p != NULL)) track(p, n * size, &f);
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

/* realloc and reallocarray share this; size is the new total, computed by the caller. */
static inline void *realloc_tracked(void *p, size_t size, const ls_uw_frame_t *f,
                                    void *(*real)(void *, size_t, size_t), size_t n, size_t each)
{
    ls__tls.guard = 1;
    ls_block_t old;
    bool had = p && ls__table_remove((uintptr_t)p, &old);
    if (p && !had) atomic_fetch_add_explicit(&ls__g.unknown_frees, 1, memory_order_relaxed);
    void *q = real ? real(p, n, each) : ls__real.realloc(p, size);
    if (q) {
        track(q, size, f); /* valgrind: a realloc'd block belongs to the realloc's stack */
    } else if (had && size != 0) {
        /* failed: the old block is still live */
        ls__table_insert(old.addr, old.size_flags & LS_SIZE_MASK, old.stack);
    }
    ls__tls.guard = 0;
    return q;
}

LS_EXPORT void *realloc(void *p, size_t size)
{
    if (LS_UNLIKELY(p && is_boot(p))) return realloc_from_boot(p, size);
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.realloc) return ls__real.realloc(p, size);
        return boot_alloc(size, 16); /* p is NULL here: nothing else existed yet */
    }
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    return realloc_tracked(p, size, &f, NULL, 0, 0);
}

LS_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (LS_UNLIKELY(p && is_boot(p))) return realloc_from_boot(p, total);
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.reallocarray) return ls__real.reallocarray(p, n, size);
        return ls__real.realloc ? ls__real.realloc(p, total) : boot_alloc(total, 16);
    }
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    return realloc_tracked(p, total, &f, ls__real.reallocarray, n, size);
}

LS_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.posix_memalign) return ls__real.posix_memalign(out, align, size);
        void *p = boot_alloc(size, align);
        if (!p) return ENOMEM;
        *out = p;
        return 0;
    }
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    ls__tls.guard = 1;
    int rc = ls__real.posix_memalign(out, align, size);
    if (rc == 0 && *out) track(*out, size, &f);
    ls__tls.guard = 0;
    return rc;
}

/* aligned_alloc, memalign, valloc, pvalloc: one shape, different real function and size. */
#define LS_ALIGNED_INTERPOSER(name, params, call, boot_align, tracked_size)                        \
    LS_EXPORT void *name params                                                                    \
    {                                                                                              \
        if (!fast_ok() && !untracked_prepare()) {                                                  \
            if (ls__real.name) return ls__real.name call;                                          \
            return boot_alloc(size, boot_align);                                                   \
        }                                                                                          \
        ls_uw_frame_t f;                                                                           \
        LS_UW_CALLER_FRAME(&f);                                                                    \
        ls__tls.guard = 1;                                                                         \
        void *p = ls__real.name call;                                                              \
        if (p) track(p, tracked_size, &f);                                                         \
        ls__tls.guard = 0;                                                                         \
        return p;                                                                                  \
    }

LS_ALIGNED_INTERPOSER(aligned_alloc, (size_t align, size_t size), (align, size), align, size)
LS_ALIGNED_INTERPOSER(memalign, (size_t align, size_t size), (align, size), align, size)
LS_ALIGNED_INTERPOSER(valloc, (size_t size), (size), 4096, size)
/* pvalloc rounds the size up to whole pages; valgrind reports the rounded size too. */
LS_ALIGNED_INTERPOSER(pvalloc, (size_t size), (size), 4096, (size + 4095) & ~(size_t)4095)

LS_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p) return 0;
    if (is_boot(p)) return boot_size(p);
    if (!ls__real.malloc_usable_size) return 0;
    return ls__real.malloc_usable_size(p);
}
