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

/*
 * What we ask the real allocator for a block of `size`: our header plus at least 9 bytes. With
 * glibc, a 0..8-byte block plus header would fill a minimum chunk exactly, and the host's pointer
 * would equal the next chunk's address, which glibc's own bookkeeping (the top chunk, the bins)
 * points at: the leak scan would take that for the program's pointer to the block.
 */
static inline size_t real_size(size_t size)
{
    return (size < 9 ? 9 : size) + sizeof(ls_hdr_t);
}

/* Fills the header in front of base+16 and marks it ours; returns the pointer the host gets. */
static inline void *hdr_finish(void *base, size_t size, uint64_t flags, const ls_uw_frame_t *f)
{
    char *p = (char *)base + sizeof(ls_hdr_t);
    ls_hdr_t *h = ls__hdr(p);
    h->size_flags = size | flags;
    h->stack = ls__capture_stack(f);
    h->birth = ls__birth_now();
    /* Header first, bit second: whoever sees the bit sees a complete header. */
    if (LS_UNLIKELY(!ls__bm_set((uintptr_t)p)))
        ls__table_insert((uintptr_t)p, size | flags | LS_BF_HEADER, h->stack);
    return p;
}

/* A free of a pointer whose bit is clear: a headerless block of ours, or a foreign one. */
static LS_COLD void free_unmarked(void *p)
{
    ls_block_t b;
    if (atomic_load_explicit(&ls__side_count, memory_order_relaxed) &&
        ls__table_remove((uintptr_t)p, &b)) {
        ls__real.free((b.size_flags & LS_BF_HEADER) ? ls__hdr_base(p, b.size_flags) : p);
        return;
    }
    atomic_fetch_add_explicit(&ls__g.unknown_frees, 1, memory_order_relaxed);
    free_untracked(p);
}

/* ---- the interposers ----------------------------------------------------------------------- */
LS_EXPORT void *malloc(size_t size)
{
    if (!fast_ok() && !untracked_prepare()) return malloc_untracked(size);
    if (LS_UNLIKELY(size > LS_SIZE_MASK)) {
        errno = ENOMEM;
        return NULL;
    }
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    ls__tls.guard = 1;
    void *base = ls__real.malloc(real_size(size));
    void *p = LS_LIKELY(base != NULL) ? hdr_finish(base, size, 0, &f) : NULL;
    ls__tls.guard = 0;
    return p;
}

/* No guard, no state test: a block of ours must lose its header whoever frees it, even a signal
 * handler running inside the agent; nothing here can call back into the allocator. */
LS_EXPORT void free(void *p)
{
    if (!p) return;
    if (LS_UNLIKELY(is_boot(p))) return;
    if (LS_LIKELY(ls__bm_test_clear((uintptr_t)p))) {
        ls__real.free(ls__hdr_base(p, ls__hdr(p)->size_flags));
        return;
    }
    free_unmarked(p);
}

LS_EXPORT void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total) || total > LS_SIZE_MASK) {
        errno = ENOMEM;
        return NULL;
    }
    if (!fast_ok() && !untracked_prepare()) {
        if (ls__real.calloc) return ls__real.calloc(n, size);
        return boot_alloc(total, 16); /* static buffer: already zero, never reused */
    }
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    ls__tls.guard = 1;
    void *base = ls__real.calloc(1, real_size(total));
    void *p = LS_LIKELY(base != NULL) ? hdr_finish(base, total, 0, &f) : NULL;
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

/* Over-aligned blocks: the header sits in the alignment slack (up to 256 bytes), beyond that
 * the block goes to the side table. al is a power of two. */
static void *aligned_tracked(size_t al, size_t size, const ls_uw_frame_t *f)
{
    if (size > LS_SIZE_MASK) return NULL;
    if (al <= 16) {
        void *base = ls__real.malloc(real_size(size));
        return base ? hdr_finish(base, size, 0, f) : NULL;
    }
    if (al <= 256) {
        char *base = ls__real.memalign(al, size + al);
        if (!base) return NULL;
        char *p = base + al;
        ((uint64_t *)p)[-3] = al; /* slack >= 32: room for the offset below the header */
        return hdr_finish(p - sizeof(ls_hdr_t), size, LS_BF_ALIGNED, f);
    }
    void *p = ls__real.memalign(al, size);
    if (p) ls__table_insert((uintptr_t)p, size, ls__capture_stack(f));
    return p;
}

/* realloc of a block that carries our header. glibc frees on realloc(p, 0) and returns NULL. */
static void *realloc_ours(void *p, size_t size, const ls_uw_frame_t *f)
{
    ls_hdr_t *h = ls__hdr(p);
    uint64_t old = h->size_flags;
    if (size == 0) {
        free(p);
        return NULL;
    }
    if (size > LS_SIZE_MASK) {
        errno = ENOMEM;
        return NULL;
    }
    if (LS_UNLIKELY(old & LS_BF_ALIGNED)) {
        size_t al = ((const uint64_t *)p)[-3];
        void *q = aligned_tracked(al, size, f);
        if (!q) return NULL;
        size_t keep = old & LS_SIZE_MASK;
        memcpy(q, p, keep < size ? keep : size);
        free(p);
        return q;
    }
    ls__bm_test_clear((uintptr_t)p);
    void *base = ls__real.realloc(ls__hdr_base(p, old), real_size(size));
    if (!base) {
        ls__bm_set((uintptr_t)p); /* failed: the old block is still live */
        return NULL;
    }
    return hdr_finish(base, size, 0, f); /* valgrind: a realloc'd block has the realloc's stack */
}

/* realloc of anything else: a headerless block of ours, or a foreign one. */
static LS_COLD void *realloc_unmarked(void *p, size_t size, const ls_uw_frame_t *f)
{
    ls_block_t b;
    if (atomic_load(&ls__side_count) && ls__table_remove((uintptr_t)p, &b)) {
        if (b.size_flags & LS_BF_HEADER) { /* a header block the bitmap could not record */
            ls__bm_set((uintptr_t)p);
            return realloc_ours(p, size, f);
        }
        if (size == 0) {
            ls__real.free(p);
            return NULL;
        }
        void *q = f ? aligned_tracked(16, size, f) : ls__real.malloc(size);
        if (!q) {
            ls__table_insert(b.addr, b.size_flags, b.stack);
            return NULL;
        }
        size_t keep = b.size_flags & LS_SIZE_MASK;
        memcpy(q, p, keep < size ? keep : size);
        ls__real.free(p);
        return q;
    }
    return ls__real.realloc ? ls__real.realloc(p, size) : NULL;
}

static inline void *realloc_common(void *p, size_t size, const ls_uw_frame_t *f)
{
    if (!p) {
        if (!f) return malloc_untracked(size);
        void *base = ls__real.malloc(real_size(size));
        return base ? hdr_finish(base, size, 0, f) : NULL;
    }
    if (ls__bm_test((uintptr_t)p)) return realloc_ours(p, size, f);
    return realloc_unmarked(p, size, f);
}

/* Called untracked (agent not ready, or from inside it): blocks of ours still need care. */
static LS_COLD void *realloc_untracked(void *p, size_t size)
{
    if (!ls__real.realloc) return p ? NULL : boot_alloc(size, 16); /* nothing existed yet */
    if (p && ls__bm_test((uintptr_t)p)) {
        /* keep it ours, without a stack: the agent is busy on this thread */
        void *q = ls__real.malloc(real_size(size));
        if (!q) return NULL;
        char *np = (char *)q + sizeof(ls_hdr_t);
        size_t keep = ls__hdr(p)->size_flags & LS_SIZE_MASK;
        memcpy(np, p, keep < size ? keep : size);
        ls__hdr(np)->size_flags = size;
        ls__hdr(np)->stack = 0;
        ls__hdr(np)->birth = ls__birth_now();
        if (!ls__bm_set((uintptr_t)np)) ls__table_insert((uintptr_t)np, size | LS_BF_HEADER, 0);
        free(p);
        return np;
    }
    return realloc_unmarked(p, size, NULL);
}

LS_EXPORT void *realloc(void *p, size_t size)
{
    if (LS_UNLIKELY(p && is_boot(p))) return realloc_from_boot(p, size);
    if (!fast_ok() && !untracked_prepare()) return realloc_untracked(p, size);
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    ls__tls.guard = 1;
    void *q = realloc_common(p, size, &f);
    ls__tls.guard = 0;
    return q;
}

LS_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (LS_UNLIKELY(p && is_boot(p))) return realloc_from_boot(p, total);
    if (!fast_ok() && !untracked_prepare()) return realloc_untracked(p, total);
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
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
    void *p = aligned_tracked(align, size, &f);
    ls__tls.guard = 0;
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

/* aligned_alloc, memalign, valloc, pvalloc: one shape; `al` and `sz` are computed from the
 * parameters, glibc's argument checks come first. */
#define LS_ALIGNED_INTERPOSER(name, params, call, check, al, sz)                                   \
    LS_EXPORT void *name params                                                                    \
    {                                                                                              \
        check;                                                                                     \
        if (!fast_ok() && !untracked_prepare()) {                                                  \
            if (ls__real.name) return ls__real.name call;                                          \
            return boot_alloc(sz, al);                                                             \
        }                                                                                          \
        ls_uw_frame_t f;                                                                           \
        LS_UW_CALLER_FRAME(&f);                                                                    \
        ls__tls.guard = 1;                                                                         \
        void *p = aligned_tracked(al, sz, &f);                                                     \
        ls__tls.guard = 0;                                                                         \
        if (!p) errno = ENOMEM;                                                                    \
        return p;                                                                                  \
    }

static inline size_t round_pow2(size_t a)
{
    size_t r = 16;
    while (r < a && r) r <<= 1;
    return r ? r : a;
}

#define LS_PAGE 4096
/* glibc: aligned_alloc wants a power of two; memalign rounds any alignment up to one. */
LS_ALIGNED_INTERPOSER(aligned_alloc, (size_t align, size_t size), (align, size),
                      if (!pow2(align)) {
                          errno = EINVAL;
                          return NULL;
                      },
                      align, size)
LS_ALIGNED_INTERPOSER(memalign, (size_t align, size_t size), (align, size), (void)0,
                      round_pow2(align), size)
LS_ALIGNED_INTERPOSER(valloc, (size_t size), (size), (void)0, LS_PAGE, size)
/* pvalloc rounds the size up to whole pages; valgrind reports that size. */
LS_ALIGNED_INTERPOSER(pvalloc, (size_t size), (size), (void)0, LS_PAGE,
                      (size + LS_PAGE - 1) & ~(size_t)(LS_PAGE - 1))

LS_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p) return 0;
    if (is_boot(p)) return boot_size(p);
    if (!ls__real.malloc_usable_size) return 0;
    if (ls__bm_test((uintptr_t)p)) {
        uint64_t sf = ls__hdr(p)->size_flags;
        char *base = ls__hdr_base(p, sf);
        return ls__real.malloc_usable_size(base) - (size_t)((char *)p - base);
    }
    return ls__real.malloc_usable_size(p);
}
