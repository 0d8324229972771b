/*
 * ls_bitmap.c - which addresses are blocks the agent made: one bit per 16-byte granule of the
 * address space, set at the user pointer of every block that carries our header.
 *
 * Why a bitmap and not a hash table of live blocks: a hash scatters neighbouring blocks over a
 * table of tens of MiB, so every malloc and every free paid a cache and TLB miss (measured
 * ~100 ns each on python3, ~3x its run time). Blocks allocated together sit together, so their
 * bits share words: the bit for a block is almost always in cache, and a free tests-and-clears
 * it with one atomic op. It also answers "is this pointer ours?" exactly, so frees of foreign
 * pointers go to the real allocator untouched, and it enumerates live blocks in address order
 * for the leak scan.
 *
 * Shape: a first level of 2^20 pointers (one per 256 MiB of a 48-bit address space, mapped
 * NORESERVE so only used entries cost memory), each to a 2 MiB second-level bitmap mapped on
 * first use (installed with a compare-and-swap). Memory: 1/128 of the address range the heap
 * spans, paid only for pages actually touched.
 */
#include "ls_agent.h"

#include <string.h>
#include <sys/mman.h>

#define LS_BM_ADDR_BITS 48
#define LS_BM_L2_SHIFT  28 /* 256 MiB per second-level bitmap */
#define LS_BM_L1_SIZE   (1ull << (LS_BM_ADDR_BITS - LS_BM_L2_SHIFT))
#define LS_BM_L2_BITS   (1ull << (LS_BM_L2_SHIFT - 4))
#define LS_BM_L2_WORDS  (LS_BM_L2_BITS / 64)
#define LS_BM_L2_BYTES  (LS_BM_L2_WORDS * 8)

static _Atomic(uint64_t *) *l1;

bool ls__bm_init(void)
{
    l1 = ls__map(LS_BM_L1_SIZE * sizeof(*l1));
    return l1 != NULL;
}

static LS_COLD uint64_t *l2_create(size_t i)
{
    uint64_t *fresh = ls__map(LS_BM_L2_BYTES);
    if (!fresh) return NULL;
    uint64_t *expected = NULL;
    if (!atomic_compare_exchange_strong(&l1[i], &expected, fresh)) {
        ls__unmap(fresh, LS_BM_L2_BYTES); /* another thread won */
        return expected;
    }
    return fresh;
}

static inline _Atomic uint64_t *word_of(uintptr_t p, uint64_t *bit, bool create)
{
    if (LS_UNLIKELY((p >> LS_BM_ADDR_BITS) || !l1)) return NULL; /* !l1: before init */
    size_t i = p >> LS_BM_L2_SHIFT;
    uint64_t *l2 = atomic_load_explicit(&l1[i], memory_order_acquire);
    if (LS_UNLIKELY(!l2)) {
        if (!create || !(l2 = l2_create(i))) return NULL;
    }
    uint64_t g = (p >> 4) & (LS_BM_L2_BITS - 1);
    *bit = 1ull << (g & 63);
    return (_Atomic uint64_t *)&l2[g >> 6];
}

bool ls__bm_set(uintptr_t p)
{
    uint64_t bit;
    _Atomic uint64_t *w = word_of(p, &bit, true);
    if (!w) return false;
    atomic_fetch_or_explicit(w, bit, memory_order_relaxed);
    return true;
}

bool ls__bm_test_clear(uintptr_t p)
{
    uint64_t bit;
    _Atomic uint64_t *w = word_of(p, &bit, false);
    if (!w || !(atomic_load_explicit(w, memory_order_relaxed) & bit)) return false;
    return atomic_fetch_and_explicit(w, ~bit, memory_order_relaxed) & bit;
}

bool ls__bm_test(uintptr_t p)
{
    uint64_t bit;
    _Atomic uint64_t *w = word_of(p, &bit, false);
    return w && (atomic_load_explicit(w, memory_order_relaxed) & bit);
}

/*
 * Calls fn for every set bit in address order. Only resident pages of each second-level bitmap
 * are read (mincore): an untouched page is all zero, and reading it would fault it in.
 */
static void count_none(uintptr_t p, void *ctx)
{
    (void)p;
    (void)ctx;
}

size_t ls__bm_count(void)
{
    return ls__bm_foreach(count_none, NULL);
}

size_t ls__bm_foreach(void (*fn)(uintptr_t p, void *ctx), void *ctx)
{
    size_t n = 0;
    unsigned char vec[LS_BM_L2_BYTES / 4096];
    for (size_t i = 0; i < LS_BM_L1_SIZE; i++) {
        /* The first level is mostly untouched zero pages; skip 512 entries at a time. */
        if ((i & 511) == 0) {
            unsigned char r;
            if (mincore((void *)&l1[i], 4096, &r) == 0 && !(r & 1)) {
                i += 511;
                continue;
            }
        }
        uint64_t *l2 = atomic_load_explicit(&l1[i], memory_order_acquire);
        if (!l2) continue;
        if (mincore(l2, LS_BM_L2_BYTES, vec) != 0) memset(vec, 1, sizeof(vec));
        for (size_t pg = 0; pg < sizeof(vec); pg++) {
            if (!(vec[pg] & 1)) continue;
            const uint64_t *words = l2 + pg * (4096 / 8);
            for (size_t k = 0; k < 4096 / 8; k++) {
                uint64_t w = words[k];
                while (w) {
                    unsigned b = (unsigned)__builtin_ctzll(w);
                    w &= w - 1;
                    uint64_t g = (pg * 512 + k) * 64 + b;
                    fn(((uintptr_t)i << LS_BM_L2_SHIFT) | (uintptr_t)(g << 4), ctx);
                    n++;
                }
            }
        }
    }
    return n;
}

/*
 * The nearest block start at or below p, at most max_back bytes below it (0: none). Reference
 * counting uses it to find the block an object lives in (GObject instances sit past their
 * private data). Word by word backwards; a missing second-level bitmap is a 256 MiB hole.
 */
uintptr_t ls__bm_find_block(uintptr_t p, size_t max_back)
{
    if ((p >> LS_BM_ADDR_BITS) || !l1) return 0;
    uintptr_t lo = p > max_back ? p - max_back : 0;
    uintptr_t g = p >> 4, glo = lo >> 4;
    for (;;) {
        size_t i = (size_t)(g >> (LS_BM_L2_SHIFT - 4));
        uint64_t *l2 = atomic_load_explicit(&l1[i], memory_order_acquire);
        uint64_t first_g = (uint64_t)i << (LS_BM_L2_SHIFT - 4); /* granule of this bitmap's bit 0 */
        if (l2) {
            uint64_t k = g - first_g; /* bit index within this bitmap */
            for (;;) {
                uint64_t w =
                    atomic_load_explicit((_Atomic uint64_t *)&l2[k >> 6], memory_order_relaxed);
                unsigned b = (unsigned)(k & 63);
                if (b < 63) w &= (2ull << b) - 1; /* bits <= k */
                if (w) {
                    uint64_t found = first_g + (k & ~63ull) + (63 - (unsigned)__builtin_clzll(w));
                    return found >= glo ? (uintptr_t)(found << 4) : 0;
                }
                if ((k >> 6) == 0) break; /* word 0 done */
                k = (k & ~63ull) - 1;
                if (first_g + k < glo) return 0;
            }
        }
        if (first_g == 0 || first_g - 1 < glo) return 0;
        g = first_g - 1;
    }
}
