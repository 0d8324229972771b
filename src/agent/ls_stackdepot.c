/*
 * ls_stackdepot.c - every distinct call stack stored once; a block keeps a 32-bit id.
 *
 * Shape: nodes {next id, hash, nframes, pcs[]} are appended to 64 MiB chunks mapped on demand;
 * a node's id is its byte offset in the concatenated chunks / 8, plus one, so ids grow in time
 * order (the module registry relies on that) and decoding an id is two shifts. A fixed array of
 * 2^20 bucket heads indexes them. Lookups are lock-free: a node is fully written before the
 * release-store that publishes it as a bucket head, and nodes are never changed or freed.
 * Inserting takes one of 256 striped locks. The idea is the sanitizers' StackDepot and the
 * kernel's stackdepot; the code is ours.
 */
#include "ls_agent.h"
#include "ls_unwind.h"

#include <string.h>

#define LS_DEPOT_BUCKET_BITS 20
#define LS_DEPOT_SMALL_BITS  14 /* mode sample: few stacks, and each bucket touched is a page */
#define LS_DEPOT_CHUNK_BITS  26 /* 64 MiB */
#define LS_DEPOT_CHUNK       (1ull << LS_DEPOT_CHUNK_BITS)
#define LS_DEPOT_MAX_CHUNKS  512 /* 32 GiB of stacks: ids stay within 32 bits */
#define LS_DEPOT_LOCKS       256

typedef struct ls_depot_node {
    uint32_t next; /* id of the next node in the bucket chain, 0 = end */
    uint32_t hash;
    uint32_t nframes;
    uint32_t reserved;
    uintptr_t pcs[];
} ls_depot_node_t;

static _Atomic uint32_t *buckets;
static char *_Atomic chunks[LS_DEPOT_MAX_CHUNKS];
static uint64_t bump; /* next free byte offset; guarded by alloc_lock */
static _Atomic uint64_t published_bump;
static _Atomic uint64_t nstacks;
static _Atomic int alloc_lock;
static _Atomic int locks[LS_DEPOT_LOCKS];
static _Atomic int init_done;
static unsigned bucket_bits = LS_DEPOT_BUCKET_BITS; /* ls__depot_small: fewer */

void ls__depot_small(void)
{
    if (!atomic_load(&init_done)) bucket_bits = LS_DEPOT_SMALL_BITS;
}

static inline ls_depot_node_t *node_of(uint32_t id)
{
    uint64_t off = (uint64_t)(id - 1) << 3;
    char *c = atomic_load_explicit(&chunks[off >> LS_DEPOT_CHUNK_BITS], memory_order_acquire);
    return (ls_depot_node_t *)(c + (off & (LS_DEPOT_CHUNK - 1)));
}

uint64_t ls__depot_hash(const uintptr_t *pcs, size_t n)
{
    uint64_t h = LS_STACK_HASH_SEED;
    for (size_t i = n; i-- > 0;) h = ls__stack_hash_step(h, pcs[i]); /* outermost first */
    return ls__stack_hash_final(h, n);
}

static LS_COLD bool depot_init(void)
{
    if (atomic_load_explicit(&init_done, memory_order_acquire)) return true;
    ls__spin_lock(&alloc_lock);
    if (!buckets) buckets = ls__map(sizeof(uint32_t) << bucket_bits);
    if (buckets) atomic_store_explicit(&init_done, 1, memory_order_release);
    ls__spin_unlock(&alloc_lock);
    return buckets != NULL;
}

/* Reserves room for a node; returns its id or 0 when the depot is full or out of memory. */
static uint32_t node_alloc(size_t bytes)
{
    uint32_t id = 0;
    ls__spin_lock(&alloc_lock);
    uint64_t off = bump;
    if ((off & (LS_DEPOT_CHUNK - 1)) + bytes > LS_DEPOT_CHUNK)
        off = (off + LS_DEPOT_CHUNK) & ~(LS_DEPOT_CHUNK - 1); /* nodes never straddle chunks */
    uint64_t ci = off >> LS_DEPOT_CHUNK_BITS;
    if (ci < LS_DEPOT_MAX_CHUNKS) {
        if (!chunks[ci])
            atomic_store_explicit(&chunks[ci], ls__map(LS_DEPOT_CHUNK), memory_order_release);
        if (chunks[ci]) {
            bump = off + bytes;
            atomic_store_explicit(&published_bump, bump, memory_order_release);
            id = (uint32_t)(off >> 3) + 1;
        }
    }
    ls__spin_unlock(&alloc_lock);
    return id;
}

uint32_t ls__depot_intern(const uintptr_t *pcs, size_t n, uint64_t hash64)
{
    if (LS_UNLIKELY(!atomic_load_explicit(&init_done, memory_order_acquire)) && !depot_init())
        return 0;
    uint32_t h = (uint32_t)(hash64 ^ (hash64 >> 32));
    size_t b = h & ((1u << bucket_bits) - 1);
    uint32_t head = atomic_load_explicit(&buckets[b], memory_order_acquire);
    for (uint32_t id = head; id;) {
        ls_depot_node_t *nd = node_of(id);
        if (nd->hash == h && nd->nframes == n && !memcmp(nd->pcs, pcs, n * sizeof(*pcs))) return id;
        id = nd->next;
    }
    _Atomic int *lock = &locks[b & (LS_DEPOT_LOCKS - 1)];
    ls__spin_lock(lock);
    /* Someone may have inserted it since we looked: search what was added in front. */
    uint32_t head2 = atomic_load_explicit(&buckets[b], memory_order_acquire);
    for (uint32_t id = head2; id && id != head;) {
        ls_depot_node_t *nd = node_of(id);
        if (nd->hash == h && nd->nframes == n && !memcmp(nd->pcs, pcs, n * sizeof(*pcs))) {
            ls__spin_unlock(lock);
            return id;
        }
        id = nd->next;
    }
    uint32_t id = node_alloc(sizeof(ls_depot_node_t) + n * sizeof(uintptr_t));
    if (id) {
        ls_depot_node_t *nd = node_of(id);
        nd->next = head2;
        nd->hash = h;
        nd->nframes = (uint32_t)n;
        memcpy(nd->pcs, pcs, n * sizeof(*pcs));
        atomic_store_explicit(&buckets[b], id, memory_order_release);
        atomic_fetch_add_explicit(&nstacks, 1, memory_order_relaxed);
    }
    ls__spin_unlock(lock);
    return id;
}

size_t ls__depot_get(uint32_t id, const uintptr_t **pcs)
{
    if (!id || ((uint64_t)(id - 1) << 3) >= atomic_load(&published_bump)) {
        *pcs = NULL;
        return 0;
    }
    ls_depot_node_t *nd = node_of(id);
    *pcs = nd->pcs;
    return nd->nframes;
}

uint32_t ls__depot_next_id(void)
{
    return (uint32_t)(atomic_load(&published_bump) >> 3) + 1;
}

uint64_t ls__depot_count(void)
{
    return atomic_load(&nstacks);
}

void ls__depot_lock_all(void)
{
    for (unsigned i = 0; i < LS_DEPOT_LOCKS; i++) ls__spin_lock(&locks[i]);
    ls__spin_lock(&alloc_lock);
}

void ls__depot_unlock_all(void)
{
    ls__spin_unlock(&alloc_lock);
    for (unsigned i = LS_DEPOT_LOCKS; i-- > 0;) ls__spin_unlock(&locks[i]);
}

void ls__depot_after_fork_child(void)
{
    ls__spin_unlock(&alloc_lock);
    for (unsigned i = 0; i < LS_DEPOT_LOCKS; i++) ls__spin_unlock(&locks[i]);
}
