/*
 * ls_table.c - the side table: address -> {size, flags, stack id, birth} for the few blocks that
 * carry no header (alignment above 256, or an address the bitmap cannot record). Most blocks
 * never come here: see ls_bitmap.c for why the main path is a header plus a bit, not a table.
 *
 * 16 shards chosen by a hash of the address, each an open-addressing table with linear probing
 * and backward-shift deletion (no tombstones, so a long-running host with heavy churn never
 * degrades), grown by doubling at 3/4 load, protected by its own spinlock on its own cache line.
 * A malloc/free pair touches one shard for a few nanoseconds; threads rarely meet on a shard.
 * Entries are 24 bytes; at the 3/8..3/4 load band that is 32-64 bytes per live block.
 */
#include "ls_agent.h"

#include <string.h>
#include <time.h>

#define LS_SHARD_BITS 4
#define LS_NSHARDS    (1u << LS_SHARD_BITS)
#define LS_SHARD_INIT 256

typedef struct ls_shard {
    _Atomic int lock;
    size_t mask;  /* capacity - 1; capacity is a power of two */
    size_t count;
    ls_block_t *slots;
} __attribute__((aligned(64))) ls_shard_t;

static ls_shard_t shards[LS_NSHARDS];
_Atomic size_t ls__side_count;

/* Fibonacci hashing: multiply, then use the TOP bits (shard = top 6, slot = the bits below),
 * which depend on every bit of the address; heap addresses differ mostly in bits 4..30. */
static inline uint64_t mix64(uint64_t x)
{
    return (x >> 4) * 0x9e3779b97f4a7c15ull;
}

static inline size_t shard_of(uint64_t h)
{
    return (size_t)(h >> (64 - LS_SHARD_BITS));
}

static inline size_t slot_of(uint64_t h, size_t mask)
{
    return (size_t)(h >> 20) & mask; /* bits 20..57: independent of the shard bits */
}

uint32_t ls__birth_now(void)
{
    /* The coarse clock is a vDSO read of a jiffy-updated value: a few ns, ~4 ms resolution,
     * enough to place a block between markers taken by a human or a test. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    return (uint32_t)((ns - ls__g.start_mono_ns) >> 20);
}

static bool shard_alloc(ls_shard_t *s, size_t cap)
{
    ls_block_t *slots = ls__map_table(cap * sizeof(ls_block_t));
    if (!slots) return false;
    s->slots = slots;
    s->mask = cap - 1;
    s->count = 0;
    return true;
}

void ls__table_init(void)
{
    for (unsigned i = 0; i < LS_NSHARDS; i++) shard_alloc(&shards[i], LS_SHARD_INIT);
}

static void shard_put(ls_shard_t *s, uint64_t h, const ls_block_t *b)
{
    size_t i = slot_of(h, s->mask);
    while (s->slots[i].addr && s->slots[i].addr != b->addr) i = (i + 1) & s->mask;
    if (!s->slots[i].addr) s->count++;
    s->slots[i] = *b;
}

static LS_COLD void shard_grow(ls_shard_t *s)
{
    ls_block_t *old = s->slots;
    size_t oldcap = s->mask + 1;
    if (!shard_alloc(s, oldcap * 2)) {
        s->slots = old; /* keep working at a higher load: correctness does not depend on it */
        s->mask = oldcap - 1;
        return;
    }
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].addr) shard_put(s, mix64(old[i].addr), &old[i]);
    ls__unmap(old, oldcap * sizeof(ls_block_t));
}

void ls__table_insert(uintptr_t addr, uint64_t size, uint32_t stack)
{
    uint64_t h = mix64(addr);
    ls_shard_t *s = &shards[shard_of(h)];
    ls_block_t b = {addr, size, stack, ls__birth_now()};
    ls__spin_lock(&s->lock);
    if (LS_UNLIKELY(!s->slots)) {
        ls__spin_unlock(&s->lock);
        return;
    }
    /* An existing entry means its free was missed (made from a signal handler while the agent
     * was busy on that thread): the new block replaces it. */
    if (LS_UNLIKELY((s->count + 1) * 4 > (s->mask + 1) * 3)) shard_grow(s);
    size_t before = s->count;
    if (s->count + 1 <= s->mask) shard_put(s, h, &b);
    if (s->count != before) atomic_fetch_add(&ls__side_count, 1);
    ls__spin_unlock(&s->lock);
}

static bool shard_find(ls_shard_t *s, uint64_t h, uintptr_t addr, size_t *idx)
{
    if (!s->slots) return false;
    size_t i = slot_of(h, s->mask);
    for (;;) {
        uintptr_t a = s->slots[i].addr;
        if (a == addr) {
            *idx = i;
            return true;
        }
        if (!a) return false;
        i = (i + 1) & s->mask;
    }
}

bool ls__table_remove(uintptr_t addr, ls_block_t *out)
{
    uint64_t h = mix64(addr);
    ls_shard_t *s = &shards[shard_of(h)];
    size_t i;
    ls__spin_lock(&s->lock);
    if (!shard_find(s, h, addr, &i)) {
        ls__spin_unlock(&s->lock);
        return false;
    }
    if (out) *out = s->slots[i];
    /* Backward-shift deletion: pull later members of the probe run into the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & s->mask;
        uintptr_t a = s->slots[j].addr;
        if (!a) break;
        size_t home = slot_of(mix64(a), s->mask);
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i].addr = 0;
    s->count--;
    atomic_fetch_sub(&ls__side_count, 1);
    ls__spin_unlock(&s->lock);
    return true;
}

bool ls__table_lookup(uintptr_t addr, ls_block_t *out)
{
    uint64_t h = mix64(addr);
    ls_shard_t *s = &shards[shard_of(h)];
    size_t i;
    ls__spin_lock(&s->lock);
    bool found = shard_find(s, h, addr, &i);
    if (found && out) *out = s->slots[i];
    ls__spin_unlock(&s->lock);
    return found;
}

bool ls__table_set_flag(uintptr_t addr, uint64_t flag)
{
    uint64_t h = mix64(addr);
    ls_shard_t *s = &shards[shard_of(h)];
    size_t i;
    ls__spin_lock(&s->lock);
    bool found = shard_find(s, h, addr, &i);
    if (found) s->slots[i].size_flags |= flag;
    ls__spin_unlock(&s->lock);
    return found;
}

void ls__table_lock_all(void)
{
    for (unsigned i = 0; i < LS_NSHARDS; i++) ls__spin_lock(&shards[i].lock);
}

void ls__table_unlock_all(void)
{
    for (unsigned i = LS_NSHARDS; i-- > 0;) ls__spin_unlock(&shards[i].lock);
}

size_t ls__table_count_locked(void)
{
    size_t n = 0;
    for (unsigned i = 0; i < LS_NSHARDS; i++) n += shards[i].count;
    return n;
}

size_t ls__table_copy_locked(ls_block_t *out, size_t cap)
{
    size_t n = 0;
    for (unsigned i = 0; i < LS_NSHARDS; i++) {
        ls_shard_t *s = &shards[i];
        if (!s->slots) continue;
        for (size_t j = 0; j <= s->mask && n < cap; j++)
            if (s->slots[j].addr) out[n++] = s->slots[j];
    }
    return n;
}

void ls__table_after_fork_child(void)
{
    for (unsigned i = 0; i < LS_NSHARDS; i++) atomic_store(&shards[i].lock, 0);
}
