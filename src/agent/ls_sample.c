/*
 * ls_sample.c - mode sample: which allocations are sampled, and the per-stack table of every
 * sample taken since the start (the SAMPLE_ALLOCS chunk).
 *
 * Sampling is a Poisson process over the bytes a thread allocates, with mean interval
 * sample_rate (tcmalloc's and jemalloc's scheme). Each thread keeps a countdown of the bytes left
 * before its next sample point (ls__tls.sample_left); an allocation of s bytes that fits in it
 * only counts it down - that is the whole cost of a non-sampled allocation, in the interposers
 * (ls_interpose.c). One that does not fit contains at least one sample point, so it is sampled,
 * once, whatever its size: that is what p(s) = 1 - exp(-s/rate) assumes, the probability that an
 * interval of s bytes holds a point. The countdown then starts afresh from the end of the
 * allocation with one new exponential draw: the process is memoryless, so the distance from
 * there to the next point is exponential again, however many points the allocation spanned.
 * (Carrying the bytes past the point over as a debt on the next interval would be wrong: the
 * allocations after a large one would be sampled too often. tests/sample/sample_stats.c sees
 * that bias at 25 standard deviations.)
 *
 * A sampled block is tracked like every block of mode full (trailer, bitmap bit, stack), so the
 * free path, live snapshots and the BLOCKS writer need nothing new; a reader weighs each live
 * sampled block by 1/p(size). The "allocated since start" views come from this table: per stack,
 * samples, their bytes, and the weights est_objects = sum 1/p(s), est_bytes = sum s/p(s),
 * accumulated here so that the snapshot needs no per-sample sizes.
 *
 * realloc counts as an allocation of the new size (jemalloc's choice): the countdown decides
 * afresh whether the new block is sampled, whether the old one was or not; a sampled old block
 * leaves the live samples as a free does.
 *
 * Random numbers: a xorshift64* generator per thread, seeded at the thread's first allocation
 * from the clock and the thread's address, or from sample_seed (tests: each thread's stream is
 * then fixed by the order in which threads first allocate). log and exp are computed here by
 * series, so the agent does not pull libm into every process; only the sampled path uses them.
 *
 * The table: entries in insertion order (a snapshot copies them with one memcpy under the lock),
 * found through an open-addressing index of stack ids that doubles as it fills (a big index
 * would touch a page per stack: memory the host pays for in mode sample). Bounded: past
 * LS_SAMPLE_MAX stacks, new stacks' samples go to the entry of stack 0 ("no stack"), so totals
 * stay right.
 */
#include "ls_agent.h"
#include "ls_format_write.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define LS_SAMPLE_BITS_MIN 10 /* index slots: entry number + 1, 0 = empty; grows by doubling */
#define LS_SAMPLE_BITS_MAX 17
#define LS_SAMPLE_MAX      (1u << (LS_SAMPLE_BITS_MAX - 1)) /* entries: load factor <= 1/2 */
#define LS_SAMPLE_RATE_MAX (1l << 40)
#define LS_PAGES_L1        (1u << 20) /* 256 MiB each: a 48-bit address space */
#define LS_PAGES_L2        (1u << 16) /* one byte per 4 KiB page */

_Alignas(64) _Atomic int ls__sampling; /* read by every interposer; written once */
uint8_t *_Atomic *ls__sample_pages;

static uint64_t rate;    /* sample_rate, checked */
static double inv_rate;  /* 1 / rate */
static uint32_t *index_; /* 2^index_bits slots: touched at random, so it grows as needed */
static unsigned index_bits;
static ls_fmt_sample_alloc_t *entries;
static size_t nentries;
static bool overflowed;
static _Atomic int table_lock;
static _Atomic uint64_t threads_seeded;

/* ---- numbers --------------------------------------------------------------------------------- */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t next_random(ls_tls_t *t)
{
    uint64_t x = t->sample_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->sample_rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* ln(x) for x > 0 (finite, normal): x = m 2^e with m in [sqrt(1/2), sqrt(2)), then
 * ln m = 2 atanh(t), t = (m-1)/(m+1), |t| < 0.172: the odd series to t^23 is exact to ~1e-19. */
static double ln(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, 8);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & ((1ull << 52) - 1)) | (1023ull << 52); /* m in [1, 2) */
    double m;
    memcpy(&m, &bits, 8);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double t = (m - 1) / (m + 1), t2 = t * t, sum = 0;
    for (int k = 23; k >= 1; k -= 2) sum = sum * t2 + 1.0 / k;
    return 2 * t * sum + e * 0.6931471805599453;
}

/* 1 - exp(-x) for x >= 0, accurate for tiny x too (a 16-byte block at rate 512 KiB). */
static double one_minus_exp_neg(double x)
{
    if (x <= 0) return 0;
    if (x > 700) return 1;
    if (x < 0.5) { /* x - x^2/2! + x^3/3! - ...: 18 terms leave < 1e-22 */
        double term = x, sum = x;
        for (int k = 2; k <= 18; k++) {
            term *= -x / k;
            sum += term;
        }
        return sum;
    }
    /* exp(-x) = 2^-k exp(-r), r = x - k ln2 in [0, ln2): 20 Taylor terms */
    int k = (int)(x / 0.6931471805599453);
    double r = x - k * 0.6931471805599453, term = 1, e = 1;
    for (int i = 1; i <= 20; i++) {
        term *= -r / i;
        e += term;
    }
    while (k >= 60) {
        e *= 1.0 / (double)(1ull << 60);
        k -= 60;
    }
    e /= (double)(1ull << k);
    return 1 - e;
}

double ls__sample_prob(uint64_t size)
{
    return one_minus_exp_neg((double)size * inv_rate);
}

/* An exponential interval of mean rate, as an integer >= 1: the allocation of s bytes that
 * starts it is not sampled iff s < 1 + floor(X), iff X >= s, with probability exp(-s/rate). */
static uint64_t draw(ls_tls_t *t)
{
    double u = (double)((next_random(t) >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double x = -ln(u) * (double)rate;                                             /* <= 37 rate */
    return 1 + (uint64_t)x;
}

static uint64_t seed_for_thread(ls_tls_t *t)
{
    uint64_t ord = atomic_fetch_add_explicit(&threads_seeded, 1, memory_order_relaxed);
    uint64_t x;
    if (ls__g.opt.sample_seed) {
        x = (uint64_t)ls__g.opt.sample_seed + ord * 0x9e3779b97f4a7c15ull;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
            ((uint64_t)(uintptr_t)t << 16) ^ ord;
    }
    x = splitmix64(x);
    return x ? x : 0x9e3779b97f4a7c15ull; /* xorshift's one forbidden state */
}

/* ---- the countdown ------------------------------------------------------------------------- */
bool ls__sample_cross(size_t size)
{
    ls_tls_t *t = &ls__tls;
    if (LS_UNLIKELY(!t->sample_rng)) {
        /* The thread's first allocation: its first interval starts here. */
        t->sample_rng = seed_for_thread(t);
        t->sample_left = draw(t);
        if (size < t->sample_left) {
            t->sample_left -= size;
            return false;
        }
    }
    t->sample_left = draw(t); /* from the end of this allocation: see the head comment */
    /* The agent busy on this thread (its own calls into libc) or not ready: not tracked. */
    return atomic_load_explicit(&ls__g.state, memory_order_relaxed) == LS_STATE_READY && !t->guard;
}

/* ---- the table ------------------------------------------------------------------------------- */
bool ls__sample_init(void)
{
    long r = ls__g.opt.sample_rate;
    if (r < 1 || r > LS_SAMPLE_RATE_MAX) {
        ls__error("sample_rate=%ld out of range 1-%ld; using 524288", r, LS_SAMPLE_RATE_MAX);
        r = 524288;
        ls__g.opt.sample_rate = r;
    }
    rate = (uint64_t)r;
    inv_rate = 1.0 / (double)rate;
    /* NORESERVE: pages cost memory only as stacks arrive (a few KiB for most programs). */
    index_bits = LS_SAMPLE_BITS_MIN;
    index_ = ls__map(sizeof(uint32_t) << index_bits);
    entries = ls__map(LS_SAMPLE_MAX * sizeof(ls_fmt_sample_alloc_t));
    ls__sample_pages = ls__map(LS_PAGES_L1 * sizeof(*ls__sample_pages));
    if (!index_ || !entries || !ls__sample_pages) return false;
    ls__boot_pin_pages();
    atomic_store_explicit(&ls__sampling, 1, memory_order_release);
    return true;
}

/* ---- sampled pages (ls_agent.h: ls__sample_page_maybe) ----------------------------------------
 */
static uint8_t *pages_l2(uintptr_t p)
{
    _Atomic(uint8_t *) *slot = &ls__sample_pages[p >> 28];
    uint8_t *l2 = atomic_load_explicit(slot, memory_order_acquire);
    if (l2) return l2;
    uint8_t *fresh = ls__map(LS_PAGES_L2);
    if (!fresh) return NULL;
    if (!atomic_compare_exchange_strong(slot, &l2, fresh)) {
        ls__unmap(fresh, LS_PAGES_L2); /* another thread won */
        return l2;
    }
    return fresh;
}

bool ls__sample_page_add(uintptr_t p)
{
    if (p >> 48) return false;
    uint8_t *l2 = pages_l2(p);
    if (!l2) return false;
    uint8_t *c = &l2[(p >> 12) & 0xffff], v = __atomic_load_n(c, __ATOMIC_RELAXED);
    while (v < 255 && !__atomic_compare_exchange_n(c, &v, (uint8_t)(v + 1), true, __ATOMIC_SEQ_CST,
                                                   __ATOMIC_RELAXED)) {
    }
    return true;
}

void ls__sample_pages_pin(uintptr_t lo, uintptr_t hi)
{
    for (uintptr_t p = lo & ~(uintptr_t)4095; p < hi; p += 4096) {
        uint8_t *l2 = pages_l2(p);
        if (l2) __atomic_store_n(&l2[(p >> 12) & 0xffff], 255, __ATOMIC_RELAXED);
    }
}

void ls__sample_page_del(uintptr_t p)
{
    if (p >> 48) return;
    uint8_t *l2 = atomic_load_explicit(&ls__sample_pages[p >> 28], memory_order_acquire);
    if (!l2) return;
    uint8_t *c = &l2[(p >> 12) & 0xffff], v = __atomic_load_n(c, __ATOMIC_RELAXED);
    /* 255 sticks: the count was lost, the page stays "maybe" (only slower frees). */
    while (v > 0 && v < 255 &&
           !__atomic_compare_exchange_n(c, &v, (uint8_t)(v - 1), true, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED)) {
    }
}

static inline uint32_t slot_of(uint32_t stack)
{
    return (uint32_t)((stack * 0x9e3779b1u) >> (32 - index_bits));
}

/* Doubles the index (locked; memory locks come after this one). false: no memory. */
static bool grow_locked(void)
{
    unsigned bits = index_bits + 1;
    uint32_t *fresh = ls__map(sizeof(uint32_t) << bits);
    if (!fresh) return false;
    uint32_t *old = index_;
    unsigned old_bits = index_bits;
    index_ = fresh;
    index_bits = bits;
    for (size_t i = 0; i < nentries; i++) {
        uint32_t s = slot_of(entries[i].stack);
        while (index_[s]) s = (s + 1) & ((1u << bits) - 1);
        index_[s] = (uint32_t)(i + 1);
    }
    ls__unmap(old, sizeof(uint32_t) << old_bits);
    return true;
}

/* The entry of stack, created if new; the stack-0 entry when the table is full. Locked. */
static ls_fmt_sample_alloc_t *entry_locked(uint32_t stack)
{
    for (;;) {
        uint32_t s = slot_of(stack);
        for (;; s = (s + 1) & ((1u << index_bits) - 1)) {
            uint32_t e = index_[s];
            if (!e) break;
            if (entries[e - 1].stack == stack) return &entries[e - 1];
        }
        /* a new stack: keep the index at most half full */
        if (nentries + 1 > (1u << (index_bits - 1)) && index_bits < LS_SAMPLE_BITS_MAX &&
            grow_locked())
            continue;
        if (nentries < (1u << (index_bits - 1))) {
            ls_fmt_sample_alloc_t *n = &entries[nentries++];
            n->stack = stack;
            index_[s] = (uint32_t)nentries;
            return n;
        }
        if (!overflowed) {
            overflowed = true;
            ls__error("sample table full (%u stacks): samples of further stacks are counted "
                      "under no stack",
                      (unsigned)LS_SAMPLE_MAX);
        }
        if (stack == 0) return &entries[0]; /* unreachable: stack 0 was inserted first */
        stack = 0;
    }
}

void ls__sample_record(uint32_t stack, size_t size)
{
    double p = ls__sample_prob(size);
    double w = p > 0 ? 1 / p : 0;
    ls__spin_lock(&table_lock);
    if (!nentries) entry_locked(0); /* the overflow bucket exists from the start */
    ls_fmt_sample_alloc_t *e = entry_locked(stack);
    e->samples++;
    e->sampled_bytes += size;
    e->est_objects += w;
    e->est_bytes += (double)size * w;
    ls__spin_unlock(&table_lock);
}

void ls__sample_view_take(ls_sample_view_t *v)
{
    memset(v, 0, sizeof(*v));
    if (!entries) return;
    size_t bytes = LS_SAMPLE_MAX * sizeof(ls_fmt_sample_alloc_t);
    ls_fmt_sample_alloc_t *copy = ls__map(bytes); /* NORESERVE: only the copied part is touched */
    if (!copy) {
        ls__error("snapshot: no memory for the sample table; SAMPLE_ALLOCS left out");
        return;
    }
    ls__spin_lock(&table_lock);
    size_t n = nentries;
    memcpy(copy, entries, n * sizeof(*copy));
    ls__spin_unlock(&table_lock);
    /* The overflow bucket stays out while it is empty. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (copy[i].samples) copy[m++] = copy[i];
    v->recs = copy;
    v->n = m;
    v->map_size = bytes;
}

void ls__sample_view_free(ls_sample_view_t *v)
{
    if (v->recs) ls__unmap(v->recs, v->map_size);
    memset(v, 0, sizeof(*v));
}

void ls__sample_write(ls_fmt_writer_t *w, const ls_sample_view_t *v)
{
    ls_fmt_chunk_begin(w, LS_CHUNK_SAMPLE_ALLOCS);
    ls_fmt_put(w, v->recs, v->n * sizeof(ls_fmt_sample_alloc_t));
    ls_fmt_chunk_end(w, (uint32_t)v->n);
}

void ls__sample_lock(void)
{
    ls__spin_lock(&table_lock);
}

void ls__sample_unlock(void)
{
    ls__spin_unlock(&table_lock);
}

void ls__sample_after_fork_child(void)
{
    atomic_store(&table_lock, 0);
    /* The child would otherwise repeat its parent's draws (with sample_seed too: the pid makes
     * parent and child differ, which a fixed seed cannot promise anyway across processes). */
    ls_tls_t *t = &ls__tls;
    if (t->sample_rng) {
        t->sample_rng = splitmix64(t->sample_rng ^ ((uint64_t)getpid() << 32));
        if (!t->sample_rng) t->sample_rng = 0x9e3779b97f4a7c15ull;
    }
}
