/*
 * ls_refs.c - reference-count checking, the agent side (include/leakscope.h ls_ref_*, and the
 * functions wrapped by run --refs through ls_hook.c).
 *
 * What it owns: the registered objects (address -> record with a shadow count and a history of
 * events), the quarantine of dead objects, the findings (errors seen as they happened), the
 * learned pairs (which put stack released which get stack, from objects that died cleanly) and
 * the interned type names. Snapshots copy all of it (ls__refs_view_take) and write the REF_*
 * chunks (ls_format.h is the contract).
 *
 * Shape:
 *  - objects: 128-byte records from an ls__map'd pool of refs_max_objects (alive + dead in
 *    quarantine), found through a NORESERVE array of bucket heads (chains through anext) under
 *    1024 striped spin locks, the object stripes. A second array of heads indexes the records by
 *    the heap block holding them (chains through bnext, 1024 block stripes), so a free finds
 *    the objects in its block; a free whose block bucket is empty - nearly all - costs one load.
 *  - events: 16-byte records {stack, link, tracker, tid << 4 | op} in an ls__map'd arena of
 *    refs_max_events slots. An object's history is a chain, newest first (written out oldest
 *    first). Each thread takes free slots 64 at a time (a fresh range of the arena, or 64
 *    recycled slot numbers from a stack of them), so taking a slot touches only the thread's own
 *    lines; the slot is written under the lock, and the next one is prefetched meanwhile.
 *  - a get or put: capture the stack, take a slot, lock the object's stripe, find the record,
 *    update the count, write and link the event, unlock. Nothing else on the common path.
 *
 * Bounds, and what happens when one is hit (shadow counts stay exact in every case):
 *  - an object's history reaching refs_object_events is compacted: its gets and puts are paired
 *    (ls_rp_match, structural score) and the paired GET and PUT events are dropped; the pairs
 *    feed the learned table (REF_EVENTS_COMPACTED, LS_REF_OBJ_COMPACTED). Creations, unpaired
 *    events, destroys and frees stay. When a compaction keeps more than half of the history
 *    (many references open at once, the pairing's cost grows with them) it is not tried again
 *    for that object until its count falls below a quarter of the bound: meanwhile its further
 *    events are counted, not recorded.
 *  - the event arena full: the histories of the oldest quarantined objects are reclaimed first
 *    (they become LS_REF_OBJ_INCOMPLETE); only when none is left are new events dropped
 *    (REF_EVENTS_DROPPED, LS_REF_OBJ_INCOMPLETE, dropped_events).
 *  - the object pool full: the oldest quarantined object is evicted to make room; with none, the
 *    registration is counted (REF_OBJECTS_DROPPED) and the address remembered in a filter, so
 *    its later gets and puts are ignored rather than reported as unregistered.
 *  - the quarantine (refs_quarantine dead objects, first in first out): the oldest is evicted,
 *    history and record freed (REF_QUARANTINE_EVICTED); a later get or put at its address is
 *    then "unregistered".
 *  - findings: 4096 distinct (kind, type, stack, other stack), each with the object's last 64
 *    events at its first occurrence; learned pairs: 65536 distinct; types: 4096 names.
 *  - a thread keeps at most 64 free event slots to itself (and up to 63 fresh ones); they go back
 *    when it exits (a pthread key's destructor), or are lost if it never returns them (fork).
 *  - compaction costs a walk of the history (one dependent load per event) and a pairing; per
 *    event recorded that is a few ns, paid by the get or put that fills the history.
 *
 * Lock order: object stripe > block stripe > compaction > quarantine > findings > pairs > types
 * > pool > event free list. No refs lock is held while a stack is captured (the unwinder may
 * take the loader's lock, under which a library constructor may call a wrapped function) or
 * while memory is mapped, and event slots are taken before a stripe is locked. ls__tls.refs.busy
 * marks a thread inside this file: a free from a signal handler then leaves the refs alone.
 */
#define _GNU_SOURCE
#include "ls_agent.h"
#include "ls_format_write.h"
#include "ls_refpair.h"
#include "ls_unwind.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../include/leakscope.h"

#define NSTRIPES    1024
#define EV_BATCH    64
#define LEARN_MAX   64 /* histories up to this long teach pairs when their object dies */
#define FIND_MAX    4096
#define FIND_SLOTS  8192
#define FIND_HIST   64
#define PAIRS_MAX   65536
#define PAIRS_SLOTS 131072
#define TYPES_MAX   4096
#define TYPE_SLOTS  8192
#define TYPE_NAME   120
#define BLOCK_BACK  (1u << 20) /* how far below an object its block's start is looked for */
#define FILTER_BITS 20
#define MEMO_SLOTS  4096
#define NO_TRACKER  0xffffffffu /* tracker of an event that can pair with nothing */

enum { RS_NONE = 0, RS_STARTING = 1, RS_READY = 2, RS_FAILED = 3 };
enum { ST_FREE = 0, ST_ALIVE = 1, ST_DEAD = 2 };
/* Record flags: LS_REF_OBJ_* in the low byte (written out), these above it. */
enum {
    RO_BLOCK_LINKED = 1u << 8, /* in the block index */
    RO_BLOCK_GONE = 1u << 9,   /* its block was freed */
    RO_NOCOMPACT = 1u << 10,   /* compaction did not pay: further events are dropped */
    RO_DESTROYED = 1u << 11,   /* ls_ref_destroy seen */
    RO_ZERO_PUT = 1u << 12,    /* the count is 0 because of a put (zero_stack) */
    RO_PUBLIC = 0xffu,
};

/* A registered object. The first cache line holds what a get or put touches. */
typedef struct ref_obj {
    uintptr_t addr;
    int64_t count;    /* the shadow count */
    uint32_t anext;   /* next record in the address bucket */
    uint32_t hist;    /* newest event, 0 = none */
    uint32_t nevents; /* events in hist */
    uint32_t flags;   /* LS_REF_OBJ_* | RO_* */
    uint32_t dropped; /* events not recorded */
    uint32_t serial;  /* high half of its trackers */
    uint32_t tracker_seq;
    uint32_t zero_stack; /* the put that last took the count to 0 (RO_ZERO_PUT) */
    uint32_t zero_tid;
    uint32_t gen;   /* bumped when the record is freed: stale references to it notice */
    uint64_t total; /* events recorded for it, compacted ones included */
    /* second line */
    uintptr_t block; /* start of the tracked heap block holding it, 0 = none */
    int64_t initial;
    uint32_t bnext; /* next record in the block bucket */
    uint32_t type;
    uint32_t create_stack;
    uint32_t birth; /* ls__birth_now() scale */
    uint32_t kill_stack, kill_tid;
    uint8_t kill_op;
    uint8_t state; /* ST_* */
    uint16_t reserved0;
    uint32_t reserved1;
    uint64_t qseq; /* its position in the quarantine ring */
    uint64_t reserved2;
} ref_obj_t;
_Static_assert(sizeof(ref_obj_t) == 128, "two cache lines per record");

typedef struct ref_ev {
    uint32_t stack;
    uint32_t link; /* the next older event of the same history; in free slots, the chain */
    uint32_t tracker;
    uint32_t tidop; /* tid << 4 | op */
} ref_ev_t;

typedef struct ref_type {
    uint16_t len, flags;
    char name[TYPE_NAME];
} ref_type_t;

typedef struct memo {
    uint32_t g, p, gen;
    int32_t score;
} memo_t;

typedef struct pair_cnt {
    uint32_t g, p, count, op; /* get stack, put stack, occurrences, get op */
} pair_cnt_t;

#define AGG_SLOTS 1024 /* distinct pairs aggregated per compaction before they are flushed */

typedef struct lock_line {
    _Alignas(64) _Atomic int l;
} lock_line_t;

static lock_line_t astripe[NSTRIPES], bstripe[NSTRIPES];

_Atomic int ls__refs_active;

static struct {
    /* set once at start, read on every operation */
    _Atomic int state; /* RS_* */
    unsigned bits;     /* log2 of the bucket arrays */
    uint32_t *ahead;
    _Atomic uint32_t *bhead;
    ref_obj_t *obj; /* records 1 .. obj_cap */
    ref_ev_t *ev;   /* slots EV_BATCH .. ev_cap - 1 (0: none) */
    uint32_t obj_cap, ev_cap;
    uint32_t obj_events; /* refs_object_events */
    uint32_t qcap;
    uint64_t *qring; /* quarantine: (gen << 32 | record), 0 = left early */
    _Atomic uint64_t *filter;
    ls_fmt_ref_finding_t *find; /* 0 .. nfind - 1 */
    uint32_t *find_slot;        /* finding index + 1 */
    ls_fmt_ref_event_t *fev;    /* FIND_HIST per finding */
    ls_fmt_ref_pair_t *pairs;
    uint32_t *pair_slot;
    ref_type_t *types; /* 1 .. ntypes */
    _Atomic uint32_t *type_slot;
    /* compaction scratch, under clock */
    uint32_t *c_idx, *c_open;
    ls_rp_event_t *c_ev;
    ls_rp_pair_t *c_pairs;
    uint8_t *c_drop;
    memo_t *memo;

    uint32_t *fstack;  /* recycled slot numbers, under ev_lock */
    pair_cnt_t *c_agg; /* the pairs of one compaction, counted before they are learned */

    /* shared, written */
    _Alignas(64) _Atomic uint64_t ev_next; /* fresh slots from here */
    _Alignas(64) _Atomic int ev_lock;
    size_t fstack_n;
    _Alignas(64) _Atomic int pool_lock;
    uint32_t pool_free, pool_next;
    _Alignas(64) _Atomic int qlock;
    uint64_t q_head, q_tail, q_reclaim;
    _Alignas(64) _Atomic int clock, flock, plock, tlock;
    uint32_t memo_gen, nfind, npairs;
    _Atomic uint32_t ntypes;
    _Alignas(64) _Atomic uint64_t objects_total, objects_dropped, events_retired,
        events_dropped, ev_in_use, findings_dropped, pairs_dropped, compacted, evicted, errors;
    _Atomic uint32_t serial;
    _Atomic int any_filtered;
} R;

/* ---- small helpers ---------------------------------------------------------------------------
 */
static inline void lock(_Atomic int *l)
{
    if (LS_LIKELY(!atomic_exchange_explicit(l, 1, memory_order_acquire))) return;
    ls__spin_lock(l);
}

static inline void unlock(_Atomic int *l)
{
    ls__spin_unlock(l);
}

static inline ref_obj_t *O(uint32_t i)
{
    return &R.obj[i];
}

static inline ref_ev_t *E(uint32_t i)
{
    return &R.ev[i];
}

static inline uint32_t hash_addr(uintptr_t a)
{
    return (uint32_t)((a * 0x9E3779B97F4A7C15ull) >> (64 - R.bits));
}

static inline uint32_t hash_block(uintptr_t a)
{
    return (uint32_t)((a * 0xC2B2AE3D27D4EB4Full) >> (64 - R.bits));
}

static inline _Atomic int *astripe_of(uint32_t bucket)
{
    return &astripe[bucket & (NSTRIPES - 1)].l;
}

static inline _Atomic int *bstripe_of(uint32_t bucket)
{
    return &bstripe[bucket & (NSTRIPES - 1)].l;
}

static inline uint32_t self_tid(void)
{
    uint32_t t = ls__tls.refs.tid;
    if (LS_UNLIKELY(!t)) t = ls__tls.refs.tid = (uint32_t)syscall(SYS_gettid);
    return t;
}

static inline ls_fmt_ref_event_t ev_out(const ref_ev_t *e)
{
    return (ls_fmt_ref_event_t){e->stack, e->tidop >> 4, e->tracker, (uint8_t)(e->tidop & 15), 0,
                                0};
}

static inline uint32_t filter_bit(uintptr_t a)
{
    return (uint32_t)((a * 0xD6E8FEB86659FD93ull) >> (64 - FILTER_BITS));
}

/* An address whose registration was dropped (a bound): its gets and puts are not errors. */
static void filter_set(uintptr_t a)
{
    uint32_t h = filter_bit(a);
    atomic_fetch_or_explicit(&R.filter[h >> 6], 1ull << (h & 63), memory_order_relaxed);
    atomic_store_explicit(&R.any_filtered, 1, memory_order_relaxed);
}

static bool filter_test(uintptr_t a)
{
    if (!atomic_load_explicit(&R.any_filtered, memory_order_relaxed)) return false;
    uint32_t h = filter_bit(a);
    return atomic_load_explicit(&R.filter[h >> 6], memory_order_relaxed) & (1ull << (h & 63));
}

static void set_active(void)
{
    if (!atomic_load_explicit(&ls__refs_active, memory_order_relaxed))
        atomic_store(&ls__refs_active, 1);
}

/* ---- start-up ----------------------------------------------------------------------------------
 */
static long clamp_opt(const char *name, long v, long lo, long hi)
{
    if (v >= lo && v <= hi) return v;
    long c = v < lo ? lo : hi;
    ls__error("%s=%ld out of range %ld-%ld; using %ld", name, v, lo, hi, c);
    return c;
}

static char *carve(char **cur, size_t bytes)
{
    char *p = *cur;
    *cur += (bytes + 4095) & ~(size_t)4095;
    return p;
}

static bool refs_map(void)
{
    const ls_options_t *o = &ls__g.opt;
    long mo = clamp_opt("refs_max_objects", o->refs_max_objects, 64, 1l << 25);
    long me = clamp_opt("refs_max_events", o->refs_max_events, 4096, 1l << 28);
    long oe = clamp_opt("refs_object_events", o->refs_object_events, 16, 1l << 20);
    long q = clamp_opt("refs_quarantine", o->refs_quarantine, 0, 1l << 24);
    if (oe > me / 4) oe = me / 4;
    unsigned bits = 16;
    while (bits < 24 && (1l << bits) < mo) bits++;
    size_t nb = (size_t)1 << bits;
    size_t sz[] = {
        nb * sizeof(uint32_t),
        nb * sizeof(uint32_t),
        ((size_t)mo + 1) * sizeof(ref_obj_t),
        ((size_t)me + EV_BATCH) * sizeof(ref_ev_t),
        (size_t)q * sizeof(uint64_t) + 8,
        ((size_t)1 << FILTER_BITS) / 8,
        (size_t)FIND_MAX * sizeof(ls_fmt_ref_finding_t),
        (size_t)FIND_SLOTS * sizeof(uint32_t),
        (size_t)FIND_MAX * FIND_HIST * sizeof(ls_fmt_ref_event_t),
        (size_t)PAIRS_MAX * sizeof(ls_fmt_ref_pair_t),
        (size_t)PAIRS_SLOTS * sizeof(uint32_t),
        ((size_t)TYPES_MAX + 1) * sizeof(ref_type_t),
        (size_t)TYPE_SLOTS * sizeof(uint32_t),
        (size_t)oe * sizeof(uint32_t),
        (size_t)oe * sizeof(uint32_t),
        (size_t)oe * sizeof(ls_rp_event_t),
        (size_t)oe * sizeof(ls_rp_pair_t),
        (size_t)oe,
        (size_t)MEMO_SLOTS * sizeof(memo_t),
        ((size_t)me + EV_BATCH) * sizeof(uint32_t),
        (size_t)AGG_SLOTS * sizeof(pair_cnt_t),
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++) total += (sz[i] + 4095) & ~(size_t)4095;
    char *base = ls__map(total); /* NORESERVE: pages cost memory only once touched */
    if (!base) return false;
    char *cur = base;
    size_t k = 0;
    R.ahead = (uint32_t *)carve(&cur, sz[k++]);
    R.bhead = (_Atomic uint32_t *)carve(&cur, sz[k++]);
    R.obj = (ref_obj_t *)carve(&cur, sz[k++]);
    R.ev = (ref_ev_t *)carve(&cur, sz[k++]);
    R.qring = (uint64_t *)carve(&cur, sz[k++]);
    R.filter = (_Atomic uint64_t *)carve(&cur, sz[k++]);
    R.find = (ls_fmt_ref_finding_t *)carve(&cur, sz[k++]);
    R.find_slot = (uint32_t *)carve(&cur, sz[k++]);
    R.fev = (ls_fmt_ref_event_t *)carve(&cur, sz[k++]);
    R.pairs = (ls_fmt_ref_pair_t *)carve(&cur, sz[k++]);
    R.pair_slot = (uint32_t *)carve(&cur, sz[k++]);
    R.types = (ref_type_t *)carve(&cur, sz[k++]);
    R.type_slot = (_Atomic uint32_t *)carve(&cur, sz[k++]);
    R.c_idx = (uint32_t *)carve(&cur, sz[k++]);
    R.c_open = (uint32_t *)carve(&cur, sz[k++]);
    R.c_ev = (ls_rp_event_t *)carve(&cur, sz[k++]);
    R.c_pairs = (ls_rp_pair_t *)carve(&cur, sz[k++]);
    R.c_drop = (uint8_t *)carve(&cur, sz[k++]);
    R.memo = (memo_t *)carve(&cur, sz[k++]);
    R.fstack = (uint32_t *)carve(&cur, sz[k++]);
    R.c_agg = (pair_cnt_t *)carve(&cur, sz[k++]);
    R.bits = bits;
    R.obj_cap = (uint32_t)mo;
    R.ev_cap = (uint32_t)me + EV_BATCH;
    R.obj_events = (uint32_t)oe;
    R.qcap = (uint32_t)q;
    R.pool_next = 1;
    atomic_store(&R.ev_next, EV_BATCH); /* slot 0 means none; batches stay 1 KiB-aligned */
    return true;
}

static pthread_key_t thread_key; /* its destructor returns an exiting thread's slots */
static bool have_thread_key;
static void thread_gone(void *unused);

static LS_COLD bool refs_start(void)
{
    int s = RS_NONE;
    if (atomic_compare_exchange_strong(&R.state, &s, RS_STARTING)) {
        bool ok = refs_map();
        if (ok) have_thread_key = pthread_key_create(&thread_key, thread_gone) == 0;
        atomic_store(&R.state, ok ? RS_READY : RS_FAILED);
        if (!ok) ls__error("reference counting disabled: cannot map its tables");
        return ok;
    }
    while ((s = atomic_load(&R.state)) == RS_STARTING) sched_yield();
    return s == RS_READY;
}

static inline bool refs_ready(void)
{
    return LS_LIKELY(atomic_load_explicit(&R.state, memory_order_acquire) == RS_READY) ||
           refs_start();
}

/* ---- event slots ----------------------------------------------------------------------------
 */
static bool reclaim_histories(void);

/* Returns n slots to the shared stack of recycled ones. */
static void ev_release(const uint32_t *idx, size_t n)
{
    if (!n) return;
    lock(&R.ev_lock);
    memcpy(R.fstack + R.fstack_n, idx, n * sizeof(*idx));
    R.fstack_n += n;
    unlock(&R.ev_lock);
    atomic_fetch_sub_explicit(&R.ev_in_use, n, memory_order_relaxed);
}

/* Frees a history (a chain through link, ending at 0). */
static void ev_free_chain(uint32_t head)
{
    uint32_t buf[256];
    size_t n = 0;
    for (uint32_t e = head; e; e = E(e)->link) {
        buf[n++] = e;
        if (n == 256) {
            ev_release(buf, n);
            n = 0;
        }
    }
    ev_release(buf, n);
}

/* A thread exits: the slots it kept for itself go back. */
static void thread_gone(void *unused)
{
    (void)unused;
    ls_tls_t *t = &ls__tls;
    int guard = t->guard;
    t->guard = 1;
    t->refs.busy = 1;
    ev_release(t->refs.free, t->refs.nfree);
    t->refs.nfree = 0;
    while (t->refs.bump < t->refs.bump_end) {
        uint32_t batch[EV_BATCH], n = 0;
        while (n < EV_BATCH && t->refs.bump < t->refs.bump_end) batch[n++] = t->refs.bump++;
        ev_release(batch, n);
    }
    t->refs.busy = 0;
    t->guard = guard;
}

static LS_COLD uint32_t ev_refill(ls_tls_t *t)
{
    /* The first slots of this thread: have them returned when it exits (a key below 32 is
     * stored in the thread itself: no allocation). */
    if (!t->refs.keyed && have_thread_key) {
        t->refs.keyed = 1;
        pthread_setspecific(thread_key, (void *)1);
    }
    for (int attempt = 0; attempt < 4; attempt++) {
        if (__atomic_load_n(&R.fstack_n, __ATOMIC_RELAXED)) {
            lock(&R.ev_lock);
            size_t k = R.fstack_n < EV_BATCH ? R.fstack_n : EV_BATCH;
            R.fstack_n -= k;
            memcpy(t->refs.free, R.fstack + R.fstack_n, k * sizeof(uint32_t));
            unlock(&R.ev_lock);
            if (k) {
                atomic_fetch_add_explicit(&R.ev_in_use, k, memory_order_relaxed);
                t->refs.nfree = (uint32_t)k - 1;
                return t->refs.free[k - 1];
            }
        }
        if (atomic_load_explicit(&R.ev_next, memory_order_relaxed) < R.ev_cap) {
            uint64_t b = atomic_fetch_add(&R.ev_next, EV_BATCH);
            if (b < R.ev_cap) {
                uint64_t end = b + EV_BATCH < R.ev_cap ? b + EV_BATCH : R.ev_cap;
                /* Fault the range's page in now (a batch never spans two), not under a lock. */
                __atomic_store_n(&E((uint32_t)b)->tidop, 0, __ATOMIC_RELAXED);
                atomic_fetch_add_explicit(&R.ev_in_use, end - b, memory_order_relaxed);
                t->refs.bump = (uint32_t)b + 1;
                t->refs.bump_end = (uint32_t)end;
                return (uint32_t)b;
            }
        }
        if (!reclaim_histories()) break;
    }
    return 0;
}

/* An event about to be recorded: its slot (0: none left anywhere) and contents. The slot is
 * taken before the stripe is locked (a refill may reclaim histories, which locks stripes) and
 * written under it (hist_push); a slot not consumed goes back to the thread (ev_done). */
typedef struct op_ev {
    uint32_t e;
    uint32_t stack;
    uint32_t tracker;
    uint32_t tidop;
} op_ev_t;

static inline op_ev_t ev_take(uint32_t stack, uint32_t tid, int op)
{
    ls_tls_t *t = &ls__tls;
    op_ev_t x = {0, stack, 0, tid << 4 | (uint32_t)op};
    if (LS_LIKELY(t->refs.nfree)) {
        x.e = t->refs.free[--t->refs.nfree];
        /* Recycled slots are cold: fetch the next one's line now, it is written next time. */
        if (t->refs.nfree) __builtin_prefetch(E(t->refs.free[t->refs.nfree - 1]), 1);
    } else if (t->refs.bump < t->refs.bump_end) {
        x.e = t->refs.bump++;
    } else {
        x.e = ev_refill(t);
    }
    return x;
}

static inline void ev_done(op_ev_t *x)
{
    if (LS_LIKELY(!x->e)) return;
    ls_tls_t *t = &ls__tls;
    if (t->refs.nfree < EV_BATCH)
        t->refs.free[t->refs.nfree++] = x->e;
    else
        ev_release(&x->e, 1);
    x->e = 0;
}

/* ---- records ---------------------------------------------------------------------------------
 */
static inline uint32_t lookup(uintptr_t a, uint32_t bucket)
{
    uint32_t i = R.ahead[bucket];
    while (i && O(i)->addr != a) i = O(i)->anext;
    return i;
}

static uint32_t obj_alloc(void)
{
    lock(&R.pool_lock);
    uint32_t i = R.pool_free;
    if (i)
        R.pool_free = O(i)->anext;
    else if (R.pool_next <= R.obj_cap)
        i = R.pool_next++;
    unlock(&R.pool_lock);
    return i;
}

/* Back to the pool; its gen moves on so queued references to it (quarantine) see it is gone. */
static void obj_release(uint32_t i)
{
    ref_obj_t *r = O(i);
    __atomic_store_n(&r->gen, r->gen + 1, __ATOMIC_RELAXED);
    r->state = ST_FREE;
    lock(&R.pool_lock);
    r->anext = R.pool_free;
    R.pool_free = i;
    unlock(&R.pool_lock);
}

static void block_link(uint32_t i)
{
    ref_obj_t *r = O(i);
    uint32_t bb = hash_block(r->block);
    lock(bstripe_of(bb));
    r->bnext = atomic_load_explicit(&R.bhead[bb], memory_order_relaxed);
    atomic_store_explicit(&R.bhead[bb], i, memory_order_relaxed);
    unlock(bstripe_of(bb));
    r->flags |= RO_BLOCK_LINKED;
}

static void block_unlink(uint32_t i)
{
    ref_obj_t *r = O(i);
    uint32_t bb = hash_block(r->block);
    lock(bstripe_of(bb));
    uint32_t prev = 0, k = atomic_load_explicit(&R.bhead[bb], memory_order_relaxed);
    while (k && k != i) {
        prev = k;
        k = O(k)->bnext;
    }
    if (k) {
        if (prev)
            O(prev)->bnext = r->bnext;
        else
            atomic_store_explicit(&R.bhead[bb], r->bnext, memory_order_relaxed);
    }
    unlock(bstripe_of(bb));
    r->flags &= ~(uint32_t)RO_BLOCK_LINKED;
}

/* ---- quarantine ------------------------------------------------------------------------------
 */
static inline uint64_t q_entry(uint32_t i)
{
    return (uint64_t)O(i)->gen << 32 | i;
}

/* A dead record joins the quarantine; returns the entry pushed out to make room (0: none),
 * which the caller evicts once it holds no lock. With no quarantine, that is itself. */
static uint64_t quarantine_push(uint32_t i)
{
    uint64_t entry = q_entry(i), victim = 0;
    if (!R.qcap) return entry;
    lock(&R.qlock);
    if (R.q_head - R.q_tail >= R.qcap) victim = R.qring[R.q_tail++ % R.qcap];
    R.qring[R.q_head % R.qcap] = entry;
    O(i)->qseq = R.q_head++;
    unlock(&R.qlock);
    return victim;
}

static void quarantine_remove(uint32_t i)
{
    if (!R.qcap) return;
    uint64_t s = O(i)->qseq;
    lock(&R.qlock);
    if (s >= R.q_tail && s < R.q_head && R.qring[s % R.qcap] == q_entry(i)) R.qring[s % R.qcap] = 0;
    unlock(&R.qlock);
}

static uint64_t quarantine_pop_oldest(void)
{
    uint64_t v = 0;
    if (!R.qcap) return 0;
    lock(&R.qlock);
    while (!v && R.q_tail < R.q_head) v = R.qring[R.q_tail++ % R.qcap];
    unlock(&R.qlock);
    return v;
}

/* Takes record i (in bucket) out of the table and frees it with its history. Caller holds the
 * object stripe of bucket. */
static void obj_remove(uint32_t i, uint32_t bucket)
{
    ref_obj_t *r = O(i);
    uint32_t *pp = &R.ahead[bucket];
    while (*pp && *pp != i) pp = &O(*pp)->anext;
    if (*pp) *pp = r->anext;
    if (r->flags & RO_BLOCK_LINKED) block_unlink(i);
    if (r->state == ST_DEAD) quarantine_remove(i);
    if (r->hist) ev_free_chain(r->hist);
    r->hist = 0;
    r->nevents = 0;
    atomic_fetch_add_explicit(&R.events_retired, r->total, memory_order_relaxed);
    obj_release(i);
}

/* Forgets a record whose quarantine entry was pushed out, unless it changed meanwhile. */
static void evict(uint64_t entry)
{
    uint32_t i = (uint32_t)entry, gen = (uint32_t)(entry >> 32);
    ref_obj_t *r = O(i);
    uintptr_t a = __atomic_load_n(&r->addr, __ATOMIC_RELAXED);
    uint32_t b = hash_addr(a);
    lock(astripe_of(b));
    if (__atomic_load_n(&r->gen, __ATOMIC_RELAXED) == gen && r->state == ST_DEAD && r->addr == a) {
        obj_remove(i, b);
        atomic_fetch_add_explicit(&R.evicted, 1, memory_order_relaxed);
    }
    unlock(astripe_of(b));
}

/* The arena is full: free the histories of the oldest quarantined objects. */
static LS_COLD bool reclaim_histories(void)
{
    if (!R.qcap) return false;
    for (;;) {
        uint64_t got[32];
        int n = 0;
        lock(&R.qlock);
        if (R.q_reclaim < R.q_tail) R.q_reclaim = R.q_tail;
        while (R.q_reclaim < R.q_head && n < 32) {
            uint64_t e = R.qring[R.q_reclaim++ % R.qcap];
            if (e) got[n++] = e;
        }
        unlock(&R.qlock);
        if (!n) return false;
        bool freed = false;
        for (int k = 0; k < n; k++) {
            uint32_t i = (uint32_t)got[k], gen = (uint32_t)(got[k] >> 32);
            ref_obj_t *r = O(i);
            uintptr_t a = __atomic_load_n(&r->addr, __ATOMIC_RELAXED);
            uint32_t b = hash_addr(a);
            lock(astripe_of(b));
            if (__atomic_load_n(&r->gen, __ATOMIC_RELAXED) == gen && r->state == ST_DEAD &&
                r->addr == a && r->hist) {
                ev_free_chain(r->hist);
                r->dropped += r->nevents;
                r->hist = 0;
                r->nevents = 0;
                r->flags |= LS_REF_OBJ_INCOMPLETE;
                freed = true;
            }
            unlock(astripe_of(b));
        }
        if (freed) return true;
    }
}

/* Victims pushed out of the quarantine while a stripe was held, evicted after it is released. */
typedef struct pending {
    uint64_t v[4];
    int n;
} pending_t;

static inline void pending_add(pending_t *p, uint64_t v)
{
    if (v && p->n < 4) p->v[p->n++] = v;
}

static inline void pending_run(pending_t *p)
{
    for (int k = 0; k < p->n; k++) evict(p->v[k]);
    p->n = 0;
}

/* A record for a new object, evicting the oldest quarantined one when the pool is full. */
static uint32_t obj_alloc_evicting(void)
{
    uint32_t i = obj_alloc();
    for (int tries = 0; !i && tries < 4; tries++) {
        uint64_t v = quarantine_pop_oldest();
        if (!v) break;
        evict(v);
        i = obj_alloc();
    }
    return i;
}

/* ---- findings --------------------------------------------------------------------------------
 */
typedef struct find_info {
    uintptr_t addr;
    uint32_t kind, type, op, stack, tid, other_stack, other_tid, create_stack;
} find_info_t;

/* The last max events of r's history, oldest first; returns how many. */
static uint32_t history_tail(const ref_obj_t *r, ls_fmt_ref_event_t *out, uint32_t max)
{
    uint32_t m = r->nevents < max ? r->nevents : max, k = m;
    for (uint32_t e = r->hist; e && k; e = E(e)->link) out[--k] = ev_out(E(e));
    if (k) { /* fewer than nevents said: close the gap */
        memmove(out, out + k, (m - k) * sizeof(*out));
        m -= k;
    }
    return m;
}

static const char *const kind_names[] = {"?",
                                         "double put",
                                         "use after put",
                                         "destroy of an unregistered object",
                                         "get or put of an unregistered object",
                                         "bad tracker",
                                         "free of a referenced object"};

static uint32_t find_hash(const find_info_t *f)
{
    uint64_t h = ((uint64_t)f->kind << 32 | f->type) * 0x9E3779B97F4A7C15ull;
    h ^= ((uint64_t)f->stack << 32 | f->other_stack) * 0xC2B2AE3D27D4EB4Full;
    return (uint32_t)(h >> 40) & (FIND_SLOTS - 1);
}

/* Records an error as it happens (r: the object, its history copied at the first occurrence;
 * lone: the offending event when there is no object). Caller may hold r's object stripe. */
static void finding(const find_info_t *f, const ref_obj_t *r, const op_ev_t *lone)
{
    atomic_fetch_add_explicit(&R.errors, 1, memory_order_relaxed);
    ls_fmt_ref_event_t hist[FIND_HIST];
    uint32_t nh = 0;
    if (r)
        nh = history_tail(r, hist, FIND_HIST);
    else if (lone)
        hist[nh++] = (ls_fmt_ref_event_t){
            lone->stack, lone->tidop >> 4, lone->tracker, (uint8_t)(lone->tidop & 15), 0, 0};
    bool first = false, full = false;
    lock(&R.flock);
    for (uint32_t s = find_hash(f), probes = 0;; s = (s + 1) & (FIND_SLOTS - 1), probes++) {
        uint32_t k = R.find_slot[s];
        if (!k) {
            if (R.nfind >= FIND_MAX || probes >= FIND_SLOTS) {
                full = true;
                break;
            }
            k = R.nfind++;
            ls_fmt_ref_finding_t *d = &R.find[k];
            *d = (ls_fmt_ref_finding_t){
                .addr = f->addr,
                .time_ns = (uint64_t)ls__birth_now() << 20,
                .kind = f->kind,
                .type = f->type,
                .op = f->op,
                .stack = f->stack,
                .tid = f->tid,
                .other_stack = f->other_stack,
                .other_tid = f->other_tid,
                .create_stack = f->create_stack,
                .first_event = k * FIND_HIST,
                .nevents = nh,
                .count = 1,
            };
            memcpy(&R.fev[(size_t)k * FIND_HIST], hist, nh * sizeof(*hist));
            R.find_slot[s] = k + 1;
            first = true;
            break;
        }
        ls_fmt_ref_finding_t *d = &R.find[k - 1];
        if (d->kind == f->kind && d->type == f->type && d->stack == f->stack &&
            d->other_stack == f->other_stack) {
            if (d->count < UINT32_MAX) d->count++;
            break;
        }
    }
    unlock(&R.flock);
    if (full) atomic_fetch_add_explicit(&R.findings_dropped, 1, memory_order_relaxed);
    if (first && ls__g.opt.verbose)
        ls__log("refs: %s at %#lx (thread %u)", kind_names[f->kind < 7 ? f->kind : 0],
                (unsigned long)f->addr, f->tid);
}

/* ---- learning: which put released which get ---------------------------------------------------
 */
static void pairs_add(const pair_cnt_t *pc, size_t n, uint32_t type)
{
    uint64_t dropped = 0;
    lock(&R.plock);
    for (size_t k = 0; k < n; k++) {
        const pair_cnt_t *c = &pc[k];
        if (!c->count) continue;
        uint64_t h = ((uint64_t)c->g << 32 | c->p) * 0x9E3779B97F4A7C15ull;
        h ^= ((uint64_t)type << 8 | c->op) * 0xC2B2AE3D27D4EB4Full;
        for (uint32_t s = (uint32_t)(h >> 40) & (PAIRS_SLOTS - 1);;
             s = (s + 1) & (PAIRS_SLOTS - 1)) {
            uint32_t i = R.pair_slot[s];
            if (!i) {
                if (R.npairs >= PAIRS_MAX) {
                    dropped += c->count;
                    break;
                }
                i = ++R.npairs;
                R.pairs[i - 1] =
                    (ls_fmt_ref_pair_t){c->g, c->p, type, c->count, (uint8_t)c->op, {0}};
                R.pair_slot[s] = i;
                break;
            }
            ls_fmt_ref_pair_t *q = &R.pairs[i - 1];
            if (q->get_stack == c->g && q->put_stack == c->p && q->type == type &&
                q->get_op == c->op) {
                q->count = q->count > UINT32_MAX - c->count ? UINT32_MAX : q->count + c->count;
                break;
            }
        }
    }
    unlock(&R.plock);
    if (dropped) atomic_fetch_add_explicit(&R.pairs_dropped, dropped, memory_order_relaxed);
}

/* r's newest n events (n = min(nevents, max)), oldest first: their slots into idx and, for the
 * pairing, their contents into ev in one walk of the chain (its loads are the cost of a
 * compaction). ev's stacks are given by id only: the score looks up their frames. */
static uint32_t gather(const ref_obj_t *r, uint32_t *idx, ls_rp_event_t *ev, uint32_t max)
{
    uint32_t m = r->nevents < max ? r->nevents : max, k = m;
    uint32_t initial = r->initial <= 0           ? 0
                       : r->initial >= INT32_MAX ? INT32_MAX
                                                 : (uint32_t)r->initial;
    for (uint32_t e = r->hist; e && k; e = E(e)->link) {
        const ref_ev_t *x = E(e);
        uint8_t op = (uint8_t)(x->tidop & 15);
        idx[--k] = e;
        ev[k] = (ls_rp_event_t){NULL, 0, x->stack, x->tracker, op == LS_REF_OP_CREATE ? initial : 1,
                                op};
    }
    if (k) {
        memmove(idx, idx + k, (m - k) * sizeof(*idx));
        memmove(ev, ev + k, (m - k) * sizeof(*ev));
        m -= k;
    }
    return m;
}

/* The structural score (ls_rp_score_structural) of two events gathered without their frames. */
static int64_t score_by_id(const ls_rp_event_t *g, const ls_rp_event_t *p)
{
    ls_rp_event_t a = *g, b = *p;
    const uintptr_t *pcs;
    a.npcs = (uint32_t)ls__depot_get(a.stack, &pcs);
    a.pcs = (const uint64_t *)pcs;
    b.npcs = (uint32_t)ls__depot_get(b.stack, &pcs);
    b.pcs = (const uint64_t *)pcs;
    return ls_rp_score_structural(NULL, &a, &b);
}

static int64_t score_fn(void *ctx, const ls_rp_event_t *g, const ls_rp_event_t *p)
{
    (void)ctx;
    return score_by_id(g, p);
}

/* An object died with every reference dropped and a short, complete history: pair it. */
static void learn(const ref_obj_t *r)
{
    uint32_t idx[LEARN_MAX], open[LEARN_MAX];
    ls_rp_event_t ev[LEARN_MAX];
    ls_rp_pair_t pairs[LEARN_MAX];
    pair_cnt_t pc[LEARN_MAX];
    uint32_t n = gather(r, idx, ev, LEARN_MAX);
    size_t np = ls_rp_match(ev, n, score_fn, NULL, pairs, LEARN_MAX, open, NULL);
    for (size_t k = 0; k < np; k++) {
        const ls_rp_event_t *g = &ev[pairs[k].get];
        pc[k] = (pair_cnt_t){g->stack, ev[pairs[k].put].stack, 1, g->op};
    }
    pairs_add(pc, np, r->type);
}

/* ---- compaction ------------------------------------------------------------------------------
 */
/* The structural score, remembered per (get stack, put stack) for one compaction: a long
 * history repeats a few stacks, and the score compares up to max_frames frames. */
static int64_t memo_score(void *ctx, const ls_rp_event_t *g, const ls_rp_event_t *p)
{
    (void)ctx;
    uint64_t h = ((uint64_t)g->stack << 32 | p->stack) * 0x9E3779B97F4A7C15ull;
    uint32_t s = (uint32_t)(h >> 52) & (MEMO_SLOTS - 1);
    for (int probe = 0; probe < 8; probe++, s = (s + 1) & (MEMO_SLOTS - 1)) {
        memo_t *m = &R.memo[s];
        if (m->gen == R.memo_gen && m->g == g->stack && m->p == p->stack) return m->score;
        if (m->gen != R.memo_gen) {
            int64_t v = score_by_id(g, p);
            *m = (memo_t){g->stack, p->stack, R.memo_gen, (int32_t)v};
            return v;
        }
    }
    return score_by_id(g, p);
}

/* Counts one dropped pair in the compaction's aggregate (learned once per distinct pair). */
static void agg_add(uint32_t g, uint32_t p, uint32_t op, uint32_t type)
{
    uint32_t s = (uint32_t)((((uint64_t)g << 32 | p) * 0x9E3779B97F4A7C15ull) >> 54);
    for (int probe = 0; probe < 16; probe++, s = (s + 1) & (AGG_SLOTS - 1)) {
        pair_cnt_t *c = &R.c_agg[s];
        if (c->count && c->g == g && c->p == p && c->op == op) {
            c->count++;
            return;
        }
        if (!c->count) {
            *c = (pair_cnt_t){g, p, 1, op};
            return;
        }
    }
    pairs_add(&(pair_cnt_t){g, p, 1, op}, 1, type); /* crowded: straight to the table */
}

/* r's history is full: drop its paired gets and puts. Returns true when there is room now.
 * Caller holds r's object stripe. */
static LS_COLD bool compact(ref_obj_t *r)
{
    /* Given up on while many references were open; worth another try once most are closed. */
    if ((r->flags & RO_NOCOMPACT) && r->count < (int64_t)(R.obj_events / 4))
        r->flags &= ~(uint32_t)RO_NOCOMPACT;
    if ((r->flags & RO_NOCOMPACT) || r->nevents > R.obj_events) return false;
    lock(&R.clock);
    if (++R.memo_gen == 0) { /* wrapped: old entries could look current */
        memset(R.memo, 0, MEMO_SLOTS * sizeof(memo_t));
        R.memo_gen = 1;
    }
    uint32_t n = gather(r, R.c_idx, R.c_ev, R.obj_events);
    size_t np = ls_rp_match(R.c_ev, n, memo_score, NULL, R.c_pairs, n, R.c_open, NULL);
    memset(R.c_drop, 0, n);
    memset(R.c_agg, 0, AGG_SLOTS * sizeof(pair_cnt_t));
    for (size_t k = 0; k < np; k++) {
        const ls_rp_event_t *g = &R.c_ev[R.c_pairs[k].get], *p = &R.c_ev[R.c_pairs[k].put];
        if (g->op != LS_REF_OP_GET) continue; /* creations stay */
        R.c_drop[R.c_pairs[k].get] = 1;
        R.c_drop[R.c_pairs[k].put] = 1;
        agg_add(g->stack, p->stack, g->op, r->type);
    }
    pairs_add(R.c_agg, AGG_SLOTS, r->type);
    /* Relink what stays, newest first; the dropped slots go back by number (c_open is free
     * again: the pairing is done). */
    uint32_t kept = 0, nfreed = 0, head = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = R.c_idx[i];
        if (R.c_drop[i]) {
            R.c_open[nfreed++] = e;
        } else {
            E(e)->link = head;
            head = e;
            kept++;
        }
    }
    ev_release(R.c_open, nfreed);
    unlock(&R.clock);
    r->hist = head;
    if (kept < r->nevents) {
        atomic_fetch_add_explicit(&R.compacted, r->nevents - kept, memory_order_relaxed);
        r->flags |= LS_REF_OBJ_COMPACTED;
    }
    r->nevents = kept;
    if (kept > R.obj_events / 2) r->flags |= RO_NOCOMPACT;
    return kept < R.obj_events;
}

/* ---- operations on a record (its object stripe held) ------------------------------------------
 */
static void ev_dropped(ref_obj_t *r)
{
    r->dropped++;
    r->flags |= LS_REF_OBJ_INCOMPLETE;
    atomic_fetch_add_explicit(&R.events_dropped, 1, memory_order_relaxed);
}

/* Writes event x into its slot and appends it to r's history (or counts it as dropped). */
static inline void hist_push(ref_obj_t *r, op_ev_t *x)
{
    if (LS_UNLIKELY(!x->e) || (LS_UNLIKELY(r->nevents >= R.obj_events) && !compact(r))) {
        ev_dropped(r);
        return;
    }
    *E(x->e) = (ref_ev_t){x->stack, r->hist, x->tracker, x->tidop};
    r->hist = x->e;
    r->nevents++;
    r->total++;
    x->e = 0;
}

static inline uint32_t x_tid(const op_ev_t *x)
{
    return x->tidop >> 4;
}

static inline int x_op(const op_ev_t *x)
{
    return (int)(x->tidop & 15);
}

static void die(ref_obj_t *r, uint32_t i, const op_ev_t *x, pending_t *pend)
{
    r->state = ST_DEAD;
    r->kill_stack = x->stack;
    r->kill_tid = x_tid(x);
    r->kill_op = (uint8_t)x_op(x);
    if (r->count == 0 && !(r->flags & LS_REF_OBJ_INCOMPLETE) && r->nevents &&
        r->nevents <= LEARN_MAX)
        learn(r);
    pending_add(pend, quarantine_push(i));
}

static void finding_about(const ref_obj_t *r, uint32_t kind, const op_ev_t *x, uint32_t other_stack,
                          uint32_t other_tid)
{
    find_info_t f = {r->addr,  kind,        r->type,   (uint32_t)x_op(x), x->stack,
                     x_tid(x), other_stack, other_tid, r->create_stack};
    finding(&f, r, NULL);
}

/* An operation on a dead object: appended to its history, and an error unless it is the
 * destroy that follows the destroying put. */
static void dead_op(ref_obj_t *r, op_ev_t *x)
{
    int op = x_op(x);
    hist_push(r, x);
    uint32_t kind = LS_REF_FIND_USE_AFTER_PUT, other = r->kill_stack, other_tid = r->kill_tid;
    if (op == LS_REF_OP_PUT && (r->flags & RO_ZERO_PUT)) {
        kind = LS_REF_FIND_DOUBLE_PUT;
        other = r->zero_stack;
        other_tid = r->zero_tid;
    } else if (op == LS_REF_OP_DESTROY && r->kill_op == LS_REF_OP_PUT &&
               !(r->flags & RO_DESTROYED)) {
        r->flags |= RO_DESTROYED;
        return;
    }
    finding_about(r, kind, x, other, other_tid);
}

enum { TRK_OK, TRK_BAD, TRK_TWICE };

/* Did r hand out tracker t, and is it still open? *first: the put that already dropped it. */
static int tracker_check(const ref_obj_t *r, uint64_t t, uint32_t *first)
{
    uint32_t seq = (uint32_t)t;
    *first = 0;
    if ((uint32_t)(t >> 32) != r->serial || !seq || seq > r->tracker_seq) return TRK_BAD;
    for (uint32_t e = r->hist; e; e = E(e)->link) {
        if (E(e)->tracker != seq) continue;
        int op = (int)(E(e)->tidop & 15);
        if (op == LS_REF_OP_PUT) {
            *first = e;
            return TRK_TWICE;
        }
        if (op == LS_REF_OP_GET) return TRK_OK;
    }
    /* Not in the history: compaction dropped its get with the put that released it - unless
     * events were lost, when nothing can be said. */
    if ((r->flags & LS_REF_OBJ_COMPACTED) && !(r->flags & LS_REF_OBJ_INCOMPLETE)) return TRK_TWICE;
    return TRK_OK;
}

static void put_alive(ref_obj_t *r, uint32_t i, op_ev_t *x, bool tracked, uint64_t t,
                      pending_t *pend)
{
    if (tracked) {
        uint32_t first;
        int v = tracker_check(r, t, &first);
        x->tracker = v == TRK_BAD ? NO_TRACKER : (uint32_t)t;
        if (v != TRK_OK) {
            uint32_t os = first ? E(first)->stack : 0, ot = first ? E(first)->tidop >> 4 : 0;
            hist_push(r, x);
            if (v == TRK_BAD)
                finding_about(r, LS_REF_FIND_BAD_TRACKER, x, 0, 0);
            else
                finding_about(r, LS_REF_FIND_DOUBLE_PUT, x, os, ot);
            return;
        }
    }
    if (r->count <= 0) { /* below zero: only wrapped objects (and initial 0) live at 0 */
        hist_push(r, x);
        bool z = r->flags & RO_ZERO_PUT;
        finding_about(r, LS_REF_FIND_DOUBLE_PUT, x, z ? r->zero_stack : 0, z ? r->zero_tid : 0);
        return;
    }
    r->count--;
    if (r->count == 0) {
        r->zero_stack = x->stack;
        r->zero_tid = x_tid(x);
        r->flags |= RO_ZERO_PUT;
        hist_push(r, x);
        if (!(r->flags & LS_REF_OBJ_WRAPPED)) die(r, i, x, pend);
        return;
    }
    hist_push(r, x);
}

static inline void get_alive(ref_obj_t *r, op_ev_t *x)
{
    r->count++;
    r->flags &= ~(uint32_t)RO_ZERO_PUT;
    hist_push(r, x);
}

/* ---- the heap block of an object --------------------------------------------------------------
 */
/* The tracked block holding a (its start, or 0), with its allocation stack and birth.
 * Known limit: when a lies in no tracked block, the nearest block start below it may belong to
 * another thread that frees it meanwhile, and its trailer is then read after the free. */
static uintptr_t containing_block(uintptr_t a, uint32_t *stack, uint32_t *birth)
{
    uintptr_t b = ls__bm_test(a) ? a : ls__bm_find_block(a, BLOCK_BACK);
    if (!b) return 0;
    const ls_trailer_t *t = ls__trailer((const void *)b);
    if (b != a && a - b >= (t->size_flags & LS_SIZE_MASK)) return 0;
    if (stack) *stack = t->stack;
    if (birth) *birth = t->birth;
    return b;
}

static void obj_init(uint32_t i, uintptr_t a, uintptr_t block, long initial, uint32_t type,
                     uint32_t create_stack, uint32_t birth, uint32_t flags)
{
    ref_obj_t *r = O(i);
    uint32_t gen = r->gen;
    uint32_t serial = atomic_fetch_add_explicit(&R.serial, 1, memory_order_relaxed) + 1;
    if (!serial) serial = atomic_fetch_add_explicit(&R.serial, 1, memory_order_relaxed) + 1;
    memset(r, 0, sizeof(*r));
    r->gen = gen;
    __atomic_store_n(&r->addr, a, __ATOMIC_RELAXED);
    r->block = block;
    r->count = initial < 0 ? 0 : initial;
    r->initial = r->count;
    r->type = type;
    r->create_stack = create_stack;
    r->birth = birth;
    r->flags = flags;
    r->serial = serial;
    r->state = ST_ALIVE;
    atomic_fetch_add_explicit(&R.objects_total, 1, memory_order_relaxed);
}

/* ---- the entry points' bodies (guard and busy set by the callers) -----------------------------
 */
static void unknown_addr(uintptr_t a, op_ev_t *x)
{
    ev_done(x);
    if (filter_test(a)) return; /* its registration was dropped: not the program's error */
    int op = x_op(x);
    find_info_t f = {
        a,        op == LS_REF_OP_DESTROY ? LS_REF_FIND_DESTROY_UNKNOWN : LS_REF_FIND_UNREGISTERED,
        0,        (uint32_t)op,
        x->stack, x_tid(x),
        0,        0,
        0};
    finding(&f, NULL, x);
}

static uint64_t ref_op(uintptr_t a, int op, bool tracked, uint64_t t, const ls_uw_frame_t *fr)
{
    op_ev_t x = ev_take(ls__capture_stack(fr), self_tid(), op);
    uint32_t b = hash_addr(a);
    pending_t pend = {.n = 0};
    uint64_t ret = 0;
    lock(astripe_of(b));
    uint32_t i = lookup(a, b);
    if (LS_UNLIKELY(!i)) {
        unlock(astripe_of(b));
        unknown_addr(a, &x);
        return tracked ? NO_TRACKER : 0;
    }
    ref_obj_t *r = O(i);
    if (LS_UNLIKELY(r->state != ST_ALIVE)) {
        if (tracked && op == LS_REF_OP_PUT) x.tracker = (uint32_t)t;
        dead_op(r, &x);
        ret = tracked ? NO_TRACKER : 0;
    } else if (op == LS_REF_OP_GET) {
        if (tracked) {
            uint32_t seq = ++r->tracker_seq;
            if (LS_UNLIKELY(!seq)) seq = ++r->tracker_seq;
            x.tracker = seq;
            ret = (uint64_t)r->serial << 32 | seq;
        }
        get_alive(r, &x);
    } else if (op == LS_REF_OP_PUT) {
        put_alive(r, i, &x, tracked, t, &pend);
    } else { /* destroy */
        hist_push(r, &x);
        r->flags |= RO_DESTROYED;
        if (!(r->flags & LS_REF_OBJ_WRAPPED) && r->count > 1)
            finding_about(r, LS_REF_FIND_FREED_REFERENCED, &x, 0, 0);
        die(r, i, &x, &pend);
    }
    unlock(astripe_of(b));
    ev_done(&x);
    if (LS_UNLIKELY(pend.n)) pending_run(&pend);
    return ret;
}

static void ref_register(uintptr_t a, const char *type, long initial, const ls_uw_frame_t *fr)
{
    uint32_t stack = ls__capture_stack(fr), tid = self_tid();
    uint32_t ty = ls__refs_type(type, false);
    uintptr_t block = containing_block(a, NULL, NULL);
    set_active(); /* before the object is visible: its block's free must look */
    uint32_t i = obj_alloc_evicting();
    if (!i) {
        atomic_fetch_add_explicit(&R.objects_dropped, 1, memory_order_relaxed);
        filter_set(a);
        return;
    }
    op_ev_t x = ev_take(stack, tid, LS_REF_OP_CREATE);
    obj_init(i, a, block, initial, ty, stack, ls__birth_now(), 0);
    ref_obj_t *r = O(i);
    uint32_t b = hash_addr(a);
    lock(astripe_of(b));
    uint32_t old = lookup(a, b);
    if (old) obj_remove(old, b); /* alive: it ends here, as if destroyed; dead: replaced */
    r->anext = R.ahead[b];
    R.ahead[b] = i;
    if (block) block_link(i);
    hist_push(r, &x);
    unlock(astripe_of(b));
    ev_done(&x);
}

/* Applies a wrapped get or put to record i, alive or dead. */
static void apply(uint32_t i, op_ev_t *x, pending_t *pend)
{
    ref_obj_t *r = O(i);
    if (r->state != ST_ALIVE)
        dead_op(r, x);
    else if (x_op(x) == LS_REF_OP_GET)
        get_alive(r, x);
    else
        put_alive(r, i, x, false, 0, pend);
}

/* Is record i a dead object whose block is gone (so a may now hold a new object)? */
static inline bool replaceable(uint32_t i)
{
    return O(i)->state == ST_DEAD && (O(i)->flags & RO_BLOCK_GONE);
}

static void wrapped_op(int op, uint32_t type, uintptr_t a, const ls_uw_frame_t *fr)
{
    uint32_t tid = self_tid();
    op_ev_t x = ev_take(fr ? ls__capture_stack(fr) : 0, tid, op);
    uint32_t b = hash_addr(a);
    pending_t pend = {.n = 0};
    lock(astripe_of(b));
    uint32_t i = lookup(a, b);
    if (i && !replaceable(i)) {
        apply(i, &x, &pend);
        unlock(astripe_of(b));
        goto out;
    }
    unlock(astripe_of(b));
    /* First sight, or a dead object whose block is gone: a new object if a lies in a live
     * tracked block (or, first sight, in none); a use after the end otherwise. */
    uint32_t cstack = 0, cbirth = 0;
    uintptr_t block = containing_block(a, &cstack, &cbirth);
    if (i && !block) {
        lock(astripe_of(b));
        if ((i = lookup(a, b)) != 0) apply(i, &x, &pend);
        unlock(astripe_of(b));
        goto out;
    }
    if (!i && filter_test(a)) goto out;
    set_active();
    uint32_t n = obj_alloc_evicting();
    if (!n) {
        atomic_fetch_add_explicit(&R.objects_dropped, 1, memory_order_relaxed);
        filter_set(a);
        goto out;
    }
    /* Its creation: the constructor's reference, made where its block was allocated. */
    op_ev_t c = ev_take(block ? cstack : x.stack, tid, LS_REF_OP_CREATE);
    obj_init(n, a, block, 1, type, c.stack, block ? cbirth : ls__birth_now(), LS_REF_OBJ_WRAPPED);
    lock(astripe_of(b));
    uint32_t cur = lookup(a, b);
    if (cur && !replaceable(cur)) { /* another thread registered it meanwhile */
        obj_release(n);
        atomic_fetch_sub_explicit(&R.objects_total, 1, memory_order_relaxed);
        apply(cur, &x, &pend);
    } else {
        if (cur) obj_remove(cur, b);
        ref_obj_t *r = O(n);
        r->anext = R.ahead[b];
        R.ahead[b] = n;
        if (block) block_link(n);
        hist_push(r, &c);
        apply(n, &x, &pend);
    }
    unlock(astripe_of(b));
    ev_done(&c);
out:
    ev_done(&x);
    pending_run(&pend);
}

/* ---- internal interface (ls_agent.h) ----------------------------------------------------------
 */
bool ls__refs_block_has_objects(const void *p)
{
    return atomic_load_explicit(&R.state, memory_order_acquire) == RS_READY &&
           atomic_load_explicit(&R.bhead[hash_block((uintptr_t)p)], memory_order_relaxed);
}

void ls__refs_block_freed(const void *p, const ls_uw_frame_t *fr)
{
    if (atomic_load_explicit(&R.state, memory_order_acquire) != RS_READY) return;
    uintptr_t bp = (uintptr_t)p;
    uint32_t bb = hash_block(bp);
    if (LS_LIKELY(!atomic_load_explicit(&R.bhead[bb], memory_order_relaxed))) return;
    ls_tls_t *t = &ls__tls;
    if (t->refs.busy) { /* a signal handler's free inside a refs operation of this thread */
        atomic_fetch_add_explicit(&ls__g.agent_errors, 1, memory_order_relaxed);
        return;
    }
    int guard = t->guard;
    bool want_stack = fr != NULL;
    t->guard = 1;
    t->refs.busy = 1;
    uint32_t stack = 0, tid = self_tid();
    bool have_stack = false;
    for (int rounds = 0; rounds < 1 << 20; rounds++) {
        uint32_t i = 0, gen = 0;
        uintptr_t a = 0;
        lock(bstripe_of(bb));
        for (uint32_t k = atomic_load_explicit(&R.bhead[bb], memory_order_relaxed); k;
             k = O(k)->bnext) {
            if (O(k)->block == bp) {
                i = k;
                gen = O(k)->gen;
                a = O(k)->addr;
                break;
            }
        }
        unlock(bstripe_of(bb));
        if (!i) break;
        if (want_stack && !have_stack) {
            stack = ls__capture_stack(fr);
            have_stack = true;
        }
        op_ev_t x = ev_take(stack, tid, LS_REF_OP_FREE);
        uint32_t b = hash_addr(a);
        pending_t pend = {.n = 0};
        lock(astripe_of(b));
        ref_obj_t *r = O(i);
        if (r->gen == gen && r->state != ST_FREE && r->addr == a && r->block == bp &&
            (r->flags & RO_BLOCK_LINKED)) {
            block_unlink(i);
            r->flags |= RO_BLOCK_GONE;
            if (r->state == ST_ALIVE) {
                hist_push(r, &x);
                /* Whoever frees it holds one reference; more is someone else's. */
                if (!(r->flags & LS_REF_OBJ_WRAPPED) && r->count > 1)
                    finding_about(r, LS_REF_FIND_FREED_REFERENCED, &x, 0, 0);
                die(r, i, &x, &pend);
            }
        }
        unlock(astripe_of(b));
        ev_done(&x);
        pending_run(&pend);
    }
    t->refs.busy = 0;
    t->guard = guard;
}

static uint64_t type_hash(const char *name, size_t len, bool wrapped)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)wrapped;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

uint32_t ls__refs_type(const char *name, bool wrapped)
{
    if (!refs_ready()) return 0;
    if (!name) name = "(untyped)";
    size_t len = strnlen(name, TYPE_NAME);
    uint16_t flags = wrapped ? LS_REF_TYPE_WRAPPED : 0;
    uint32_t s0 = (uint32_t)type_hash(name, len, wrapped) & (TYPE_SLOTS - 1);
    /* Lock-free lookup: a slot is published (release) after its type is written. */
    for (uint32_t s = s0, probes = 0; probes < TYPE_SLOTS;
         s = (s + 1) & (TYPE_SLOTS - 1), probes++) {
        uint32_t id = atomic_load_explicit(&R.type_slot[s], memory_order_acquire);
        if (!id) break;
        const ref_type_t *ty = &R.types[id];
        if (ty->len == len && ty->flags == flags && !memcmp(ty->name, name, len)) return id;
    }
    uint32_t id = 0;
    lock(&R.tlock);
    for (uint32_t s = s0, probes = 0; probes < TYPE_SLOTS;
         s = (s + 1) & (TYPE_SLOTS - 1), probes++) {
        uint32_t k = atomic_load_explicit(&R.type_slot[s], memory_order_relaxed);
        if (k) {
            const ref_type_t *ty = &R.types[k];
            if (ty->len == len && ty->flags == flags && !memcmp(ty->name, name, len)) {
                id = k;
                break;
            }
            continue;
        }
        uint32_t nt = atomic_load_explicit(&R.ntypes, memory_order_relaxed);
        if (nt >= TYPES_MAX) break;
        id = nt + 1;
        ref_type_t *ty = &R.types[id];
        memcpy(ty->name, name, len);
        ty->len = (uint16_t)len;
        ty->flags = flags;
        atomic_store_explicit(&R.ntypes, id, memory_order_relaxed);
        atomic_store_explicit(&R.type_slot[s], id, memory_order_release);
        break;
    }
    unlock(&R.tlock);
    return id;
}

void ls__refs_wrapped(int op, uint32_t type, const void *obj, const ls_uw_frame_t *f)
{
    if (atomic_load_explicit(&ls__g.state, memory_order_relaxed) != LS_STATE_READY ||
        ls__tls.guard || !obj || (op != LS_REF_OP_GET && op != LS_REF_OP_PUT))
        return;
    ls__tls.guard = 1;
    if (refs_ready()) {
        ls__tls.refs.busy = 1;
        wrapped_op(op, type, (uintptr_t)obj, f);
        ls__tls.refs.busy = 0;
    }
    ls__tls.guard = 0;
}

/* ---- public API (include/leakscope.h) ---------------------------------------------------------
 * Each entry captures its caller's frame itself: the ls_ref_* wrappers are always inlined, so
 * that caller is the program's function.
 */
static inline bool api_ok(const void *obj)
{
    return LS_LIKELY(atomic_load_explicit(&ls__g.state, memory_order_relaxed) == LS_STATE_READY &&
                     !ls__tls.guard && obj);
}

#define API_ENTER()                                                                                \
    ls_uw_frame_t f;                                                                               \
    LS_UW_CALLER_FRAME(&f);                                                                        \
    ls__tls.guard = 1;                                                                             \
    ls__tls.refs.busy = 1
#define API_LEAVE()                                                                                \
    do {                                                                                           \
        ls__tls.refs.busy = 0;                                                                     \
        ls__tls.guard = 0;                                                                         \
    } while (0)

LS_EXPORT void ls_agent_ref_register(const void *obj, const char *type, long initial)
{
    if (!api_ok(obj) || !refs_ready()) return;
    API_ENTER();
    ref_register((uintptr_t)obj, type, initial, &f);
    API_LEAVE();
}

LS_EXPORT void ls_agent_ref_get(const void *obj)
{
    if (!api_ok(obj) || !refs_ready()) return;
    API_ENTER();
    ref_op((uintptr_t)obj, LS_REF_OP_GET, false, 0, &f);
    API_LEAVE();
}

LS_EXPORT void ls_agent_ref_put(const void *obj)
{
    if (!api_ok(obj) || !refs_ready()) return;
    API_ENTER();
    ref_op((uintptr_t)obj, LS_REF_OP_PUT, false, 0, &f);
    API_LEAVE();
}

LS_EXPORT unsigned long long ls_agent_ref_get_tracked(const void *obj)
{
    if (!api_ok(obj) || !refs_ready()) return NO_TRACKER;
    API_ENTER();
    uint64_t t = ref_op((uintptr_t)obj, LS_REF_OP_GET, true, 0, &f);
    API_LEAVE();
    return t ? t : NO_TRACKER;
}

LS_EXPORT void ls_agent_ref_put_tracked(const void *obj, unsigned long long tracker)
{
    if (!api_ok(obj) || !refs_ready()) return;
    API_ENTER();
    ref_op((uintptr_t)obj, LS_REF_OP_PUT, true, tracker, &f);
    API_LEAVE();
}

LS_EXPORT void ls_agent_ref_destroy(const void *obj)
{
    if (!api_ok(obj) || !refs_ready()) return;
    API_ENTER();
    ref_op((uintptr_t)obj, LS_REF_OP_DESTROY, false, 0, &f);
    API_LEAVE();
}

LS_EXPORT long ls_agent_refs_check(const char *snapshot_path)
{
    if (atomic_load(&ls__g.state) != LS_STATE_READY || ls__tls.guard) return -1;
    ls__tls.guard++;
    ls__tls.refs_last.valid = 0;
    int rc = ls__live_snapshot(snapshot_path, "refs_check", false, NULL);
    long n = rc ? -1 : ls__tls.refs_last.valid ? ls__tls.refs_last.findings : 0;
    ls__tls.guard--;
    return n;
}

/* ---- snapshots -------------------------------------------------------------------------------
 */
struct ls_refs_view {
    char *map;
    size_t map_size;
    ls_fmt_ref_object_t *objs; /* by address */
    uint32_t nobjs;
    ls_fmt_ref_event_t *evs; /* live objects' histories, then the findings' */
    uint32_t nevs;
    ls_fmt_ref_finding_t *finds;
    uint32_t nfinds;
    ls_fmt_ref_pair_t *pairs;
    uint32_t npairs;
    ref_type_t *types; /* 1 .. ntypes */
    uint32_t ntypes;
    uint64_t events_total, event_bytes;
    uint64_t objects_total, objects_dropped, events_dropped, findings_dropped, pairs_dropped,
        compacted, evicted, errors, referenced;
};

static void lock_all(void)
{
    for (int i = 0; i < NSTRIPES; i++) lock(&astripe[i].l);
    for (int i = 0; i < NSTRIPES; i++) lock(&bstripe[i].l);
    lock(&R.clock);
    lock(&R.qlock);
    lock(&R.flock);
    lock(&R.plock);
    lock(&R.tlock);
    lock(&R.pool_lock);
    lock(&R.ev_lock);
}

static void unlock_all(void)
{
    unlock(&R.ev_lock);
    unlock(&R.pool_lock);
    unlock(&R.tlock);
    unlock(&R.plock);
    unlock(&R.flock);
    unlock(&R.qlock);
    unlock(&R.clock);
    for (int i = NSTRIPES; i-- > 0;) unlock(&bstripe[i].l);
    for (int i = NSTRIPES; i-- > 0;) unlock(&astripe[i].l);
}

void ls__refs_lock_all(void)
{
    if (atomic_load(&R.state) == RS_READY) lock_all();
}

void ls__refs_unlock_all(void)
{
    if (atomic_load(&R.state) == RS_READY) unlock_all();
}

void ls__refs_after_fork_child(void)
{
    /* Nobody else runs in the child: every lock the parent's threads held is free here. */
    for (int i = 0; i < NSTRIPES; i++) {
        atomic_store(&astripe[i].l, 0);
        atomic_store(&bstripe[i].l, 0);
    }
    atomic_store(&R.clock, 0);
    atomic_store(&R.qlock, 0);
    atomic_store(&R.flock, 0);
    atomic_store(&R.plock, 0);
    atomic_store(&R.tlock, 0);
    atomic_store(&R.pool_lock, 0);
    atomic_store(&R.ev_lock, 0);
    ls__tls.refs.tid = 0;
    ls__tls.refs.busy = 0;
}

/* Sorts n (key, value) pairs by key, 16 bits per pass (keys are user addresses: 48 bits). */
typedef struct kv {
    uint64_t key, val;
} kv_t;

static void sort_kv(kv_t *a, kv_t *tmp, size_t n, uint32_t *count)
{
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof(uint32_t));
        bool all_zero = true;
        for (size_t i = 0; i < n; i++) {
            uint32_t d = (uint32_t)(a[i].key >> shift) & 0xffff;
            count[d]++;
            all_zero &= d == 0;
        }
        if (all_zero) continue;
        uint32_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            uint32_t k = count[d];
            count[d] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++) tmp[count[(a[i].key >> shift) & 0xffff]++] = a[i];
        memcpy(a, tmp, n * sizeof(*a));
    }
}

/* Maps a view with room for nobj objects and nev events (NORESERVE: what is not copied into
 * it costs nothing). */
static ls_refs_view_t *view_map(size_t nobj, size_t nev, kv_t **keys, uint32_t **count,
                                ls_fmt_ref_object_t **unsorted)
{
    size_t sz[] = {
        sizeof(ls_refs_view_t),
        nobj * sizeof(ls_fmt_ref_object_t) * 2,
        nev * sizeof(ls_fmt_ref_event_t),
        (size_t)FIND_MAX * sizeof(ls_fmt_ref_finding_t),
        (size_t)PAIRS_MAX * sizeof(ls_fmt_ref_pair_t),
        ((size_t)TYPES_MAX + 1) * sizeof(ref_type_t),
        nobj * sizeof(kv_t) * 2,
        65536 * sizeof(uint32_t),
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++) total += (sz[i] + 4095) & ~(size_t)4095;
    char *map = ls__map(total);
    if (!map) {
        ls__error("refs left out of the snapshot: cannot map %zu bytes", total);
        return NULL;
    }
    char *cur = map;
    ls_refs_view_t *v = (ls_refs_view_t *)carve(&cur, sz[0]);
    v->map = map;
    v->map_size = total;
    *unsorted = (ls_fmt_ref_object_t *)carve(&cur, sz[1]);
    v->objs = *unsorted + nobj;
    v->evs = (ls_fmt_ref_event_t *)carve(&cur, sz[2]);
    v->finds = (ls_fmt_ref_finding_t *)carve(&cur, sz[3]);
    v->pairs = (ls_fmt_ref_pair_t *)carve(&cur, sz[4]);
    v->types = (ref_type_t *)carve(&cur, sz[5]);
    *keys = (kv_t *)carve(&cur, sz[6]);
    *count = (uint32_t *)carve(&cur, sz[7]);
    return v;
}

/* Slots ever handed out from the arena (fresh ones), which bounds the live histories. */
static size_t events_high_water(void)
{
    uint64_t n = atomic_load(&R.ev_next);
    return n < R.ev_cap ? (size_t)n : R.ev_cap;
}

ls_refs_view_t *ls__refs_view_take(void)
{
    /* Nothing to say until an object was registered or an error seen (types interned for
     * wrapped functions that never ran do not count). */
    if (atomic_load(&R.state) != RS_READY ||
        (!atomic_load(&ls__refs_active) && !atomic_load(&R.errors)))
        return NULL;
    /* Sized from the high-water marks read now, with room to grow until the locks are taken;
     * if they grew past it meanwhile, again. Live histories fit in the slots handed out. */
    ls_refs_view_t *v = NULL;
    kv_t *keys = NULL;
    uint32_t *count = NULL;
    ls_fmt_ref_object_t *unsorted = NULL;
    size_t nobj = 0, nev = 0;
    int busy = ls__tls.refs.busy;
    ls__tls.refs.busy = 1;
    for (int attempt = 0;; attempt++) {
        lock(&R.pool_lock);
        size_t objs_hw = R.pool_next;
        unlock(&R.pool_lock);
        size_t ev_hw = events_high_water();
        nobj = objs_hw + objs_hw / 4 + 1024;
        nev = ev_hw + ev_hw / 4 + 64 * 1024;
        if (nobj > (size_t)R.obj_cap + 1 || attempt == 3) nobj = (size_t)R.obj_cap + 1;
        if (nev > R.ev_cap || attempt == 3) nev = R.ev_cap;
        nev += (size_t)FIND_MAX * FIND_HIST;
        if (!(v = view_map(nobj, nev, &keys, &count, &unsorted))) {
            ls__tls.refs.busy = busy;
            return NULL;
        }
        lock_all();
        if ((R.pool_next <= nobj && events_high_water() <= nev - (size_t)FIND_MAX * FIND_HIST) ||
            attempt == 3)
            break; /* it fits (the bounds always do): keep the locks */
        unlock_all();
        ls__unmap(v->map, v->map_size);
    }
    uint64_t events_total = atomic_load(&R.events_retired);
    uint32_t n = 0, ne = 0;
    for (uint32_t i = 1; i < R.pool_next; i++) {
        const ref_obj_t *r = O(i);
        if (r->state == ST_FREE) continue;
        events_total += r->total;
        if (r->state != ST_ALIVE) continue;
        ls_fmt_ref_object_t *o = &unsorted[n];
        *o = (ls_fmt_ref_object_t){
            .addr = r->addr,
            .block = r->block,
            .birth_ns = (uint64_t)r->birth << 20,
            .count = r->count,
            .initial = r->initial,
            .type = r->type,
            .create_stack = r->create_stack,
            .first_event = ne,
            .nevents = 0,
            .dropped_events = r->dropped,
            .flags = r->flags & RO_PUBLIC,
        };
        uint32_t m = 0;
        for (uint32_t e = r->hist; e && m < r->nevents; e = E(e)->link) m++;
        uint32_t k = m;
        for (uint32_t e = r->hist; e && k; e = E(e)->link) v->evs[ne + --k] = ev_out(E(e));
        o->nevents = m;
        ne += m;
        if (r->count > 0) v->referenced++;
        keys[n] = (kv_t){r->addr, n};
        n++;
    }
    for (uint32_t k = 0; k < R.nfind; k++) {
        ls_fmt_ref_finding_t *d = &v->finds[k];
        *d = R.find[k];
        memcpy(&v->evs[ne], &R.fev[(size_t)k * FIND_HIST], d->nevents * sizeof(*v->evs));
        d->first_event = ne;
        ne += d->nevents;
    }
    v->nfinds = R.nfind;
    memcpy(v->pairs, R.pairs, R.npairs * sizeof(*v->pairs));
    v->npairs = R.npairs;
    v->ntypes = atomic_load(&R.ntypes);
    memcpy(v->types, R.types, ((size_t)v->ntypes + 1) * sizeof(*v->types));
    v->events_total = events_total;
    v->event_bytes = atomic_load(&R.ev_in_use) * sizeof(ref_ev_t);
    v->objects_total = atomic_load(&R.objects_total);
    v->objects_dropped = atomic_load(&R.objects_dropped);
    v->events_dropped = atomic_load(&R.events_dropped);
    v->findings_dropped = atomic_load(&R.findings_dropped);
    v->pairs_dropped = atomic_load(&R.pairs_dropped);
    v->compacted = atomic_load(&R.compacted);
    v->evicted = atomic_load(&R.evicted);
    v->errors = atomic_load(&R.errors);
    unlock_all();
    ls__tls.refs.busy = busy;

    sort_kv(keys, keys + nobj, n, count);
    for (uint32_t k = 0; k < n; k++) v->objs[k] = unsorted[keys[k].val];
    v->nobjs = n;
    v->nevs = ne;
    ls__tls.refs_last.valid = 1;
    ls__tls.refs_last.referenced = v->referenced;
    ls__tls.refs_last.errors = v->errors;
    ls__tls.refs_last.findings = (long)(v->errors + v->referenced);
    return v;
}

void ls__refs_view_free(ls_refs_view_t *v)
{
    if (v) ls__unmap(v->map, v->map_size);
}

size_t ls__refs_stack_ids(const ls_refs_view_t *v, uint32_t *ids, size_t cap)
{
    size_t n = 0;
#define PUSH(x)                                                                                    \
    do {                                                                                           \
        if (n < cap) ids[n] = (x);                                                                 \
        n++;                                                                                       \
    } while (0)
    for (uint32_t i = 0; i < v->nobjs; i++) PUSH(v->objs[i].create_stack);
    for (uint32_t i = 0; i < v->nevs; i++) PUSH(v->evs[i].stack);
    for (uint32_t i = 0; i < v->nfinds; i++) {
        PUSH(v->finds[i].stack);
        PUSH(v->finds[i].other_stack);
        PUSH(v->finds[i].create_stack);
    }
    for (uint32_t i = 0; i < v->npairs; i++) {
        PUSH(v->pairs[i].get_stack);
        PUSH(v->pairs[i].put_stack);
    }
#undef PUSH
    return n;
}

long ls__refs_write(ls_fmt_writer_t *w, const ls_refs_view_t *v)
{
    ls_fmt_chunk_begin(w, LS_CHUNK_REF_TYPES);
    for (uint32_t id = 1; id <= v->ntypes; id++) {
        const ref_type_t *ty = &v->types[id];
        ls_fmt_ref_type_t rec = {id, ty->len, ty->flags};
        ls_fmt_put(w, &rec, sizeof(rec));
        ls_fmt_put(w, ty->name, ls_fmt_pad8(ty->len));
    }
    ls_fmt_chunk_end(w, v->ntypes);
    ls_fmt_chunk_begin(w, LS_CHUNK_REF_OBJECTS);
    ls_fmt_put(w, v->objs, v->nobjs * sizeof(*v->objs));
    ls_fmt_chunk_end(w, v->nobjs);
    ls_fmt_chunk_begin(w, LS_CHUNK_REF_EVENTS);
    ls_fmt_put(w, v->evs, v->nevs * sizeof(*v->evs));
    ls_fmt_chunk_end(w, v->nevs);
    ls_fmt_chunk_begin(w, LS_CHUNK_REF_FINDINGS);
    ls_fmt_put(w, v->finds, v->nfinds * sizeof(*v->finds));
    ls_fmt_chunk_end(w, v->nfinds);
    ls_fmt_chunk_begin(w, LS_CHUNK_REF_PAIRS);
    ls_fmt_put(w, v->pairs, v->npairs * sizeof(*v->pairs));
    ls_fmt_chunk_end(w, v->npairs);
    return (long)(v->errors + v->referenced);
}

void ls__refs_write_stats(ls_fmt_writer_t *w, const ls_refs_view_t *v)
{
    ls_fmt_put_u64(w, LS_STAT_REF_OBJECTS_LIVE, v->nobjs);
    ls_fmt_put_u64(w, LS_STAT_REF_OBJECTS_TOTAL, v->objects_total);
    ls_fmt_put_u64(w, LS_STAT_REF_EVENTS, v->events_total);
    ls_fmt_put_u64(w, LS_STAT_REF_EVENTS_DROPPED, v->events_dropped);
    ls_fmt_put_u64(w, LS_STAT_REF_EVENT_BYTES, v->event_bytes);
    ls_fmt_put_u64(w, LS_STAT_REF_OBJECTS_DROPPED, v->objects_dropped);
    ls_fmt_put_u64(w, LS_STAT_REF_FINDINGS_DROPPED, v->findings_dropped);
    ls_fmt_put_u64(w, LS_STAT_REF_PAIRS_DROPPED, v->pairs_dropped);
    ls_fmt_put_u64(w, LS_STAT_REF_EVENTS_COMPACTED, v->compacted);
    ls_fmt_put_u64(w, LS_STAT_REF_QUARANTINE_EVICTED, v->evicted);
}
