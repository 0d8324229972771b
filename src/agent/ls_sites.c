/*
 * ls_sites.c - mode sites: exact per-site counters of every allocation made while counting is
 * on (the kernel's /proc/allocinfo in user space), cheap enough for production. The interposers
 * (ls_interpose.c, "mode sites") put a 16-byte header before each counted block (ls_agent.h) and
 * charge the block's site; this file keeps the sites and the counters.
 *
 * Sites: a key (the caller's return address, or with site_frames > 1 the 64-bit hash of that
 * many innermost frames) -> a dense id (1, 2, ...; at most 2^20 - 1, beyond that everything is
 * counted under the overflow site 0). Each thread looks a key up in its own direct-mapped cache
 * (ls__tls.site_cache); a miss probes a global open-addressing table without a lock (an entry's
 * key is written before its id is published with release), and only a new site takes the table
 * lock and interns its frames in the stack depot - the hot path touches neither.
 *
 * Counters: one shard per thread, an array indexed by site id of {allocs, bytes, frees,
 * freed_bytes} (live = allocs - frees: two adds per call, not four) (NORESERVE: only the pages of
 * the sites a thread uses cost memory), written with plain adds by its thread only. A free on
 * another thread than the allocation's decrements the freeing thread's shard: only the sum over
 * shards means something. A thread that exits folds its shard into the retired shard (atomic adds)
 * from a pthread key destructor and hands it back zeroed for the next thread; what it allocates or
 * frees after that (later destructors) goes to the retired shard directly. A snapshot sums retired
 * + every live shard with plain loads under the registry lock: exact when no other thread allocates
 * meanwhile (the exit snapshot of a program whose threads are done), otherwise each 8-byte counter
 * is read whole but not all at one instant, so a live snapshot may be off by the calls in flight;
 * it clamps live_* to [0, allocs/bytes] so such a read never shows the impossible.
 *
 * Lock order: registry lock > table lock > depot bucket locks (ls_agent.h).
 */
#define _GNU_SOURCE
#include "ls_interpose.h"
#include "ls_format_write.h"
#include "ls_unwind.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../../include/leakscope.h"
#define LEAKSCOPE_TAGS_TYPES_ONLY
#include "../../include/leakscope/tags.h"

#define LS_SITE_HASH_BITS 21 /* 2^21 slots for at most 2^20 sites: load factor <= 1/2 */
#define LS_SITE_HASH      (1u << LS_SITE_HASH_BITS)
#define LS_MAX_SHARDS     4096
#define LS_SHARD_BYTES    ((size_t)LS_SITES_MAX * sizeof(ls_site_ctr_t)) /* 32 MiB, NORESERVE */

ls_sites_global_t ls__sites;

typedef struct site_slot {
    _Atomic uint64_t key;
    _Atomic uint32_t id; /* 0 = empty; published last */
    uint32_t pad;
} site_slot_t;

typedef struct site_rec {
    uint64_t key;
    uint32_t stack;
    uint32_t tag;  /* 1 + index in TAGS of a tagged site (ls_tags.c), else 0 */
    uint32_t fail; /* the fault injection rule (1-based) of the site, 0: none */
    uint32_t pad;
} site_rec_t;

static site_slot_t *slots;                   /* LS_SITE_HASH */
static site_rec_t *recs;                     /* LS_SITES_MAX, by id */
static _Atomic uint32_t nsites = 1;          /* next id; 0 is the overflow site */
static _Atomic int table_lock;               /* new sites */
static _Atomic int overflowed;               /* reported once */
static ls_site_ctr_t *retired;               /* folded shards of exited threads: atomic adds */
static ls_site_ctr_t *shards[LS_MAX_SHARDS]; /* live threads' shards */
static size_t nshards;
static ls_site_ctr_t *spare[LS_MAX_SHARDS]; /* zeroed shards of exited threads, for reuse */
static size_t nspare;
static _Atomic int registry_lock;
static pthread_key_t exit_key;
static bool have_key;

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* ---- sites --------------------------------------------------------------------------------- */
/* Looks key up, creating its site (with frames pcs[0..n), or for a tagged site tag t with index
 * tag1) if new; *created tells. Caller: guard clear or set, never inside a signal handler that
 * interrupted the table lock (the interposers do not count while the guard is set, and the guard
 * is set around this lock). */
static uint32_t site_lookup(uint64_t key, const uintptr_t *pcs, size_t n, const ls_tag_t *t,
                            uint32_t tag1, bool *created)
{
    *created = false;
    uint32_t mask = LS_SITE_HASH - 1, i = (uint32_t)mix64(key) & mask;
    for (;;) { /* lock-free probe: the common miss of a thread's cache */
        uint32_t id = atomic_load_explicit(&slots[i].id, memory_order_acquire);
        if (!id) break;
        if (atomic_load_explicit(&slots[i].key, memory_order_relaxed) == key) return id;
        i = (i + 1) & mask;
    }
    ls__tls.guard++;
    ls__spin_lock(&table_lock);
    uint32_t id = 0;
    for (;;) {
        id = atomic_load_explicit(&slots[i].id, memory_order_relaxed);
        if (!id) break;
        if (atomic_load_explicit(&slots[i].key, memory_order_relaxed) == key) goto out;
        i = (i + 1) & mask;
    }
    id = atomic_load_explicit(&nsites, memory_order_relaxed);
    if (id >= LS_SITES_MAX) {
        id = 0;
        if (!atomic_exchange(&overflowed, 1))
            ls__error("mode sites: more than %u sites; the rest are counted under one overflow "
                      "site",
                      LS_SITES_MAX - 1);
        goto out;
    }
    recs[id].key = key;
    recs[id].stack = ls__depot_intern(pcs, n, ls__depot_hash(pcs, n));
    recs[id].tag = tag1;
    /* Which rule a site falls under is settled once, here; its calls then only fire. */
    if (ls__fail_on)
        recs[id].fail = (uint32_t)(t ? ls__fail_match_tag(t) : ls__fail_match_pc(pcs[0]));
    *created = true;
    atomic_store_explicit(&slots[i].key, key, memory_order_relaxed);
    atomic_store_explicit(&slots[i].id, id, memory_order_release);
    atomic_store_explicit(&nsites, id + 1, memory_order_release);
out:
    ls__spin_unlock(&table_lock);
    ls__tls.guard--;
    return id;
}

/* Only a thread with a shard caches: a hit in malloc's common case needs no shard test. */
static inline void cache_put(uint64_t key, uint32_t id)
{
    if (LS_UNLIKELY(!ls__tls.sites_shard)) return;
    size_t c = ls__site_slot(key);
    ls__tls.site_cache[c].key = key;
    ls__tls.site_cache[c].id = id;
}

uint32_t ls__site_fire(uint32_t id)
{
    uint32_t r = id ? recs[id].fail : 0;
    return r && ls__fail_fire((int)r) ? id | LS_SITE_FAILED : id;
}

uint32_t ls__site_of_pc_slow(uintptr_t pc)
{
    uintptr_t pcs[1] = {pc};
    bool created;
    uint32_t id = site_lookup(pc, pcs, 1, NULL, 0, &created);
    if (LS_UNLIKELY(id && recs[id].fail)) return ls__site_fire(id); /* never cached */
    cache_put(pc, id);
    return id;
}

uint32_t ls__site_of_tag(const ls_tag_t *t, uint32_t tag1, bool *created)
{
    uintptr_t pcs[1] = {(uintptr_t)t}; /* the tag's own address: MODULES finds its module */
    return site_lookup((uintptr_t)t, pcs, 1, t, tag1, created);
}

uint32_t ls__site_fail_rule(uint32_t id)
{
    return id ? recs[id].fail : 0;
}

void ls__sites_fail_record(uint32_t id, const ls_uw_frame_t *f)
{
    ls__fail_record((int)ls__site_fail_rule(id & ~LS_SITE_FAILED), f);
}

uint32_t ls__site_of_frames(const ls_uw_frame_t *f)
{
    ls_tls_t *t = &ls__tls;
    if (LS_UNLIKELY(!t->inited)) ls__thread_init_slow(t);
    uintptr_t pcs[16];
    size_t max = (size_t)ls__sites.frames, n;
    uint64_t h;
    if (ls__g.unwinder == LS_UNWIND_FP) {
        n = ls__unwind_fp(f, t->stack_hi, pcs, max);
        h = ls__depot_hash(pcs, n);
    } else { /* libunwind is for mode full: its walk is too slow for a per-call site */
        n = ls__unwind_fast_hashed(f, t->stack_hi, pcs, max, &h);
    }
    if (!h) h = 1; /* 0 marks an empty cache entry */
    size_t c = ls__site_slot(h);
    if (LS_LIKELY(t->site_cache[c].key == h)) return t->site_cache[c].id;
    bool created;
    uint32_t id = site_lookup(h, pcs, n, NULL, 0, &created);
    if (LS_UNLIKELY(id && recs[id].fail)) return ls__site_fire(id); /* never cached */
    cache_put(h, id);
    return id;
}

/* ---- counters -------------------------------------------------------------------------------
 */
static void shard_fold(ls_site_ctr_t *s)
{
    uint32_t n = atomic_load(&nsites);
    for (uint32_t i = 0; i < n; i++) {
        ls_site_ctr_t *c = &s[i];
        if (!c->allocs && !c->frees) continue;
        __atomic_fetch_add(&retired[i].frees, c->frees, __ATOMIC_RELAXED);
        __atomic_fetch_add(&retired[i].freed_bytes, c->freed_bytes, __ATOMIC_RELAXED);
        __atomic_fetch_add(&retired[i].allocs, c->allocs, __ATOMIC_RELAXED);
        __atomic_fetch_add(&retired[i].bytes, c->bytes, __ATOMIC_RELAXED);
    }
}

/* Zeroes the pages shard s used (they go back to the kernel) and keeps it for the next thread;
 * registry lock held. */
static void shard_recycle(ls_site_ctr_t *s)
{
    size_t used = (size_t)atomic_load(&nsites) * sizeof(ls_site_ctr_t);
    used = (used + 4095) & ~(size_t)4095;
    madvise(s, used, MADV_DONTNEED);
    if (nspare < LS_MAX_SHARDS)
        spare[nspare++] = s;
    else
        ls__unmap(s, LS_SHARD_BYTES);
}

static void shard_unregister(ls_site_ctr_t *s)
{
    for (size_t i = 0; i < nshards; i++)
        if (shards[i] == s) {
            shards[i] = shards[--nshards];
            break;
        }
}

/* pthread key destructor: the thread is exiting. */
static void thread_gone(void *p)
{
    ls_site_ctr_t *s = p;
    ls_tls_t *t = &ls__tls;
    t->guard++;
    ls__spin_lock(&registry_lock);
    shard_fold(s);
    shard_unregister(s);
    shard_recycle(s);
    ls__spin_unlock(&registry_lock);
    t->sites_shard = NULL;
    t->sites_gone = 1;
    memset(t->site_cache, 0, sizeof(t->site_cache)); /* a hit implies a shard */
    t->guard--;
}

ls_site_ctr_t *ls__sites_shard_slow(void)
{
    ls_tls_t *t = &ls__tls;
    if (t->sites_gone || t->guard) return NULL;
    t->guard++;
    ls_site_ctr_t *s = NULL;
    ls__spin_lock(&registry_lock);
    if (nshards < LS_MAX_SHARDS) {
        s = nspare ? spare[--nspare] : NULL;
        if (!s) {
            ls__spin_unlock(&registry_lock); /* no mmap under the lock */
            s = ls__map(LS_SHARD_BYTES);
            ls__spin_lock(&registry_lock);
        }
        if (s && nshards < LS_MAX_SHARDS) {
            shards[nshards++] = s;
        } else if (s) {
            shard_recycle(s);
            s = NULL;
        }
    }
    ls__spin_unlock(&registry_lock);
    if (s) {
        t->sites_shard = s;
        /* The main thread never runs key destructors: its shard stays registered. */
        if (have_key) pthread_setspecific(exit_key, s);
    } else {
        t->sites_gone = 1; /* no shard for this thread: it counts in the retired one */
    }
    t->guard--;
    return s;
}

void ls__sites_charge_retired(uint32_t id, uint64_t size, int sign)
{
    ls_site_ctr_t *c = &retired[id];
    if (sign > 0) {
        __atomic_fetch_add(&c->allocs, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&c->bytes, size, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_add(&c->frees, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&c->freed_bytes, size, __ATOMIC_RELAXED);
    }
}

/* ---- enabling -------------------------------------------------------------------------------
 */
static void toggle_handler(int sig)
{
    (void)sig;
    atomic_fetch_xor(&ls__sites.on, LS_SITES_ON);
}

LS_EXPORT int ls_agent_sites_enable(int on)
{
    if (!ls__sites.mode || atomic_load(&ls__g.state) != LS_STATE_READY) return -1;
    int was = on ? atomic_fetch_or(&ls__sites.on, LS_SITES_ON)
                 : atomic_fetch_and(&ls__sites.on, ~LS_SITES_ON);
    return was & LS_SITES_ON;
}

/* ---- start-up and fork ----------------------------------------------------------------------
 */
bool ls__sites_init(void)
{
    ls_options_t *o = &ls__g.opt;
    if (o->site_frames < 1 || o->site_frames > 16) {
        ls__error("site_frames=%ld out of range 1-16; using 1", o->site_frames);
        o->site_frames = 1;
    }
    ls__sites.frames = (int)o->site_frames;
    uint64_t secret = 0;
    if (getrandom(&secret, sizeof(secret), GRND_NONBLOCK) != (ssize_t)sizeof(secret)) {
        /* No entropy yet (early boot): the clock and addresses, still unknown to the program. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        secret = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)&secret ^
                       ((uint64_t)getpid() << 17));
    }
    ls__sites.secret = secret | 1;
    slots = ls__map((size_t)LS_SITE_HASH * sizeof(site_slot_t));
    recs = ls__map((size_t)LS_SITES_MAX * sizeof(site_rec_t));
    retired = ls__map(LS_SHARD_BYTES);
    if (!slots || !recs || !retired) return false;
    have_key = pthread_key_create(&exit_key, thread_gone) == 0;
    if (o->sites_signal) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = toggle_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (o->sites_signal == ls__g.stop_signal || o->sites_signal == o->snapshot_signal ||
            sigaction((int)o->sites_signal, &sa, NULL) < 0)
            ls__error("cannot use signal %ld to toggle the site counters", o->sites_signal);
    }
    atomic_store(&ls__sites.on, (o->sites_enabled ? LS_SITES_ON : 0) |
                                    (ls__sites.frames > 1 ? LS_SITES_FRAMES : 0));
    ls__sites.mode = true;
    ls__tags_sites_ready();
    atomic_store_explicit(&ls__sampling, 3, memory_order_release);
    return true;
}

void ls__sites_lock(void)
{
    ls__spin_lock(&registry_lock);
    ls__spin_lock(&table_lock);
}

void ls__sites_unlock(void)
{
    ls__spin_unlock(&table_lock);
    ls__spin_unlock(&registry_lock);
}

void ls__sites_after_fork_child(void)
{
    atomic_store(&table_lock, 0);
    if (ls__sites.mode) {
        /* Only the forking thread lives on: the others' counts move to the retired shard (their
         * blocks are still in the child's heap), their shards are recycled. */
        ls_site_ctr_t *mine = ls__tls.sites_shard;
        for (size_t i = 0; i < nshards;) {
            if (shards[i] == mine) {
                i++;
                continue;
            }
            ls_site_ctr_t *s = shards[i];
            shard_fold(s);
            shards[i] = shards[--nshards];
            shard_recycle(s);
        }
    }
    atomic_store(&registry_lock, 0);
}

/* ---- snapshots ------------------------------------------------------------------------------
 */
void ls__sites_view_take(ls_sites_view_t *v)
{
    memset(v, 0, sizeof(*v));
    if (!ls__sites.mode) return;
    ls__spin_lock(&registry_lock);
    uint32_t n = atomic_load_explicit(&nsites, memory_order_acquire);
    size_t bytes = (size_t)n * sizeof(ls_fmt_site_t);
    ls__spin_unlock(&registry_lock);
    ls_fmt_site_t *out = ls__map(bytes); /* no mmap under the lock */
    if (!out) {
        ls__error("snapshot: no memory for the site counters");
        return;
    }
    ls__spin_lock(&registry_lock);
    size_t m = 0;
    for (uint32_t id = 0; id < n; id++) {
        uint64_t al = __atomic_load_n(&retired[id].allocs, __ATOMIC_RELAXED);
        uint64_t by = __atomic_load_n(&retired[id].bytes, __ATOMIC_RELAXED);
        uint64_t fr = __atomic_load_n(&retired[id].frees, __ATOMIC_RELAXED);
        uint64_t fb = __atomic_load_n(&retired[id].freed_bytes, __ATOMIC_RELAXED);
        for (size_t k = 0; k < nshards; k++) {
            const ls_site_ctr_t *c = &shards[k][id];
            al += __atomic_load_n(&c->allocs, __ATOMIC_RELAXED);
            by += __atomic_load_n(&c->bytes, __ATOMIC_RELAXED);
            fr += __atomic_load_n(&c->frees, __ATOMIC_RELAXED);
            fb += __atomic_load_n(&c->freed_bytes, __ATOMIC_RELAXED);
        }
        if (!al && !fr && !(id && recs[id].tag)) continue; /* every tag is listed (TAGS) */
        /* Exact when the host holds still; a read racing the host is clamped (head comment). */
        int64_t lk = (int64_t)(al - fr), lb = (int64_t)(by - fb);
        if (lk < 0 || lb < 0) lk = lb = 0;
        if ((uint64_t)lk > al) lk = (int64_t)al;
        if ((uint64_t)lb > by) lb = (int64_t)by;
        if (!lk) lb = 0;
        uint32_t stack = id ? recs[id].stack : 0; /* 0: the overflow site, no frames */
        out[m++] = (ls_fmt_site_t){.stack = stack,
                                   .tag = id ? recs[id].tag : 0,
                                   .live_bytes = lb,
                                   .live_blocks = lk,
                                   .allocs = al,
                                   .bytes = by};
    }
    ls__spin_unlock(&registry_lock);
    v->recs = out;
    v->n = m;
    v->map_size = bytes;
}

void ls__sites_view_free(ls_sites_view_t *v)
{
    if (v->recs) ls__unmap(v->recs, v->map_size);
    memset(v, 0, sizeof(*v));
}

void ls__sites_write(ls_fmt_writer_t *w, const ls_sites_view_t *v)
{
    ls_fmt_chunk_begin(w, LS_CHUNK_SITES);
    ls_fmt_put(w, v->recs, v->n * sizeof(ls_fmt_site_t));
    ls_fmt_chunk_end(w, (uint32_t)v->n);
}
