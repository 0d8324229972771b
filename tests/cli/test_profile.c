/*
 * test_profile.c - sample profiles on the CLI side (ls_profile.h, ls_pprof.h):
 *   - the estimator, statistically: a synthetic allocation stream with known truth, sampled by
 *     bytes as a Poisson process (our own PRNG, fixed seeds), written as a sample profile; every
 *     view of every site holding more than 1% of the heap must be within 10% of the truth, and
 *     the totals, pooled over the seeds, within 1% (no bias);
 *   - exact figures for full-mode snapshots (weight 1), and alloc views refused for them;
 *   - the reader's checks of SAMPLE_ALLOCS and META sample_rate;
 *   - collapsed stacks, exact;
 *   - pprof: decoded with protobuf-c's generated unpack (sample types, period, values,
 *     locations -> lines -> functions with inlined frames, mappings from the ELF segments);
 *   - diff semantics (grew, shrank, new, gone, same) in ls_diff and as a pprof -base profile,
 *     across two "processes" whose addresses differ;
 *   - the top-N text and JSON, and `leakscope report` / `diff` end to end (argv[1]: the binary).
 */
#define _GNU_SOURCE
#include "ls_pprof.h"
#include "ls_profile.h"
#include "ls_series.h"
#include "profile.pb-c.h"
#include "sym_target.h"
#include "tcheck.h"
#include "trun.h"
#include "tsnap.h"

#include <cJSON.h>
#include <elf.h>
#include <link.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[] = "/tmp/ls-test-profile.XXXXXX";
static tsnap_module_t mods[64];
static size_t nmods;
static uintptr_t pc_plain, pc_outer, pc_supp;
static const char *leakscope_bin;

/* needle must be in text; prints the text when not. */
#define CHECK_IN(text, needle)                                                                     \
    do {                                                                                           \
        const char *t_text = (text);                                                               \
        if (!t_text || !strstr(t_text, needle)) {                                                  \
            fprintf(stderr, "--- not found: \"%s\" in:\n%s\n---\n", needle, t_text ? t_text : ""); \
            CHECK(!"text holds needle");                                                           \
        }                                                                                          \
    } while (0)

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static int load(const char *name, const tsnap_t *t, ls_snapshot_t *snap, char *err, size_t errlen)
{
    char path[300];
    path_in(path, sizeof(path), name);
    CHECK(tsnap_write(path, t) == 0);
    int rc = ls_snapshot_load(path, snap, err, errlen);
    unlink(path);
    return rc;
}

static void load_ok(const char *name, const tsnap_t *t, ls_snapshot_t *snap)
{
    char err[512];
    int rc = load(name, t, snap, err, sizeof(err));
    if (rc) fprintf(stderr, "load %s: %s\n", name, err);
    CHECK(rc == 0);
}

/* ---- PRNG: splitmix64, our own so the stream is fixed on every libc ------------------------ */

static uint64_t rng;

static uint64_t rng_next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(void) /* [0, 1) */
{
    return (double)(rng_next() >> 11) * 0x1.0p-53;
}

static uint64_t rng_range(uint64_t lo, uint64_t hi) /* [lo, hi] */
{
    return lo + rng_next() % (hi - lo + 1);
}

static double rng_exp(double mean)
{
    return -mean * log1p(-rng_unit());
}

/* ---- the estimator ------------------------------------------------------------------------- */

typedef struct site_spec {
    uint64_t min, max; /* sizes, uniform */
    uint32_t count;    /* allocations */
    double keep;       /* probability that a block is still live at the end */
} site_spec_t;

/* Sizes from 24 B to 2 MiB against a rate of 8 KiB: p(s) from 0.3% to 1. "churn" allocates much
 * and keeps little (alloc views >> in use); "rare" holds < 1% of the heap (not checked). */
static const site_spec_t sites[] = {
    {24, 64, 1000000, 0.5},      /* tiny */
    {100, 1000, 200000, 0.7},    /* small */
    {4096, 4096, 20000, 0.5},    /* page */
    {1024, 65536, 4000, 0.6},    /* mixed */
    {262144, 2097152, 100, 0.5}, /* large */
    {512, 8192, 100000, 0.03},   /* churn */
    {64, 256, 1000, 1.0},        /* rare */
};
#define NSITES (sizeof(sites) / sizeof(sites[0]))
#define RATE   8192u

typedef struct truth {
    double live_bytes[NSITES], live_objects[NSITES], alloc_bytes[NSITES], alloc_objects[NSITES];
} truth_t;

/* One run of the synthetic program under the sampler; writes the sample profile and loads it. */
static void simulate(uint64_t seed, truth_t *t, ls_snapshot_t *snap)
{
    rng = seed;
    memset(t, 0, sizeof(*t));
    uint32_t left[NSITES];
    uint64_t total_left = 0;
    for (size_t i = 0; i < NSITES; i++) total_left += left[i] = sites[i].count;
    static ls_fmt_block_t *blocks;
    static size_t cap;
    size_t nblocks = 0;
    ls_fmt_sample_alloc_t sa[NSITES];
    memset(sa, 0, sizeof(sa));
    static uint64_t pcs[NSITES];
    tsnap_stack_t st[NSITES];
    for (size_t i = 0; i < NSITES; i++) {
        pcs[i] = 0x400000 + 0x100 * i; /* bare pcs: the estimator needs no symbols */
        st[i] = (tsnap_stack_t){(uint32_t)i + 1, 1, &pcs[i]};
        sa[i].stack = (uint32_t)i + 1;
    }
    double next = rng_exp(RATE); /* bytes to the next sample point */
    uint64_t addr = 0x10000000;
    while (total_left) {
        /* The sites interleave at random, each in proportion to what it has left. */
        uint64_t pick = rng_next() % total_left;
        size_t i = 0;
        while (pick >= left[i]) pick -= left[i++];
        left[i]--;
        total_left--;
        uint64_t size = rng_range(sites[i].min, sites[i].max);
        bool live = rng_unit() < sites[i].keep;
        t->alloc_bytes[i] += (double)size;
        t->alloc_objects[i] += 1;
        if (live) {
            t->live_bytes[i] += (double)size;
            t->live_objects[i] += 1;
        }
        addr += size + 16;
        if ((double)size < next) { /* the interval holds no sample point */
            next -= (double)size;
            continue;
        }
        next = rng_exp(RATE); /* memoryless: a fresh interval from the allocation's end */
        /* What the agent adds to SAMPLE_ALLOCS (its job; the CLI reads these sums). */
        double w = 1.0 / -expm1(-(double)size / RATE);
        sa[i].samples++;
        sa[i].sampled_bytes += size;
        sa[i].est_objects += w;
        sa[i].est_bytes += w * (double)size;
        if (!live) continue;
        if (nblocks == cap) {
            cap = cap ? 2 * cap : 4096;
            blocks = realloc(blocks, cap * sizeof(*blocks));
        }
        blocks[nblocks++] =
            tsnap_block(addr, size, (uint32_t)i + 1, LS_KIND_UNCHECKED, LS_NO_LEADER);
    }
    tsnap_t ts = {.pid = 100,
                  .exe = "/synthetic",
                  .reason = LS_REASON_EXIT,
                  .mode = "sample",
                  .sample_rate = RATE,
                  .stacks = st,
                  .nstacks = NSITES,
                  .blocks = blocks,
                  .nblocks = nblocks,
                  .sample_allocs = sa,
                  .nsample_allocs = NSITES};
    load_ok("sim.lsnap", &ts, snap);
}

static double rel_err(double est, double truth)
{
    return truth > 0 ? fabs(est - truth) / truth : (est == 0 ? 0 : INFINITY);
}

static void test_estimator(void)
{
    static const uint64_t seeds[] = {1, 2, 3, 42, 20240601};
    const size_t nseeds = sizeof(seeds) / sizeof(seeds[0]);
    double pooled_est[LS_PROF_NVALUES] = {0}, pooled_truth[LS_PROF_NVALUES] = {0};
    double worst = 0;
    for (size_t k = 0; k < nseeds; k++) {
        truth_t t;
        ls_snapshot_t snap;
        simulate(seeds[k], &t, &snap);
        ls_profile_t p;
        char err[256];
        CHECK(ls_profile_build(&snap, NULL, &p, err, sizeof(err)) == 0);
        CHECK(p.sampled && p.has_alloc);
        CHECK_U(p.period, RATE);
        CHECK_U(p.nstacks, NSITES);
        double heap = 0, allocated = 0;
        for (size_t i = 0; i < NSITES; i++) {
            heap += t.live_bytes[i];
            allocated += t.alloc_bytes[i];
        }
        size_t checked = 0;
        for (size_t i = 0; i < NSITES && i < p.nstacks; i++) {
            const ls_prof_stack_t *s = &p.stacks[i];
            CHECK_U(s->stack, i + 1);
            const double truths[LS_PROF_NVALUES] = {t.alloc_objects[i], t.alloc_bytes[i],
                                                    t.live_objects[i], t.live_bytes[i]};
            for (int v = 0; v < LS_PROF_NVALUES; v++) {
                pooled_est[v] += s->v[v];
                pooled_truth[v] += truths[v];
            }
            /* The bar: every site holding more than 1% of the heap, within 10%. */
            if (t.live_bytes[i] > 0.01 * heap) {
                checked++;
                for (int v = LS_PROF_INUSE_OBJECTS; v <= LS_PROF_INUSE_SPACE; v++) {
                    double e = rel_err(s->v[v], truths[v]);
                    if (e > worst) worst = e;
                    if (e > 0.10)
                        fprintf(stderr, "seed %llu site %zu %s: %.0f estimated, %.0f true\n",
                                (unsigned long long)seeds[k], i,
                                ls_prof_value_name((ls_prof_value_t)v), s->v[v], truths[v]);
                    CHECK(e <= 0.10);
                }
            }
            if (t.alloc_bytes[i] > 0.01 * allocated) {
                for (int v = LS_PROF_ALLOC_OBJECTS; v <= LS_PROF_ALLOC_SPACE; v++) {
                    double e = rel_err(s->v[v], truths[v]);
                    if (e > worst) worst = e;
                    CHECK(e <= 0.10);
                }
            }
        }
        CHECK_U(checked, NSITES - 1); /* all but "rare" */
        CHECK(t.live_bytes[NSITES - 1] < 0.01 * heap);
        ls_profile_free(&p);
        ls_snapshot_free(&snap);
    }
    /* Unbiased: pooled over the seeds, every view's total within 1%. */
    for (int v = 0; v < LS_PROF_NVALUES; v++) {
        double e = rel_err(pooled_est[v], pooled_truth[v]);
        if (e > 0.01)
            fprintf(stderr, "pooled %s: %.0f estimated, %.0f true\n",
                    ls_prof_value_name((ls_prof_value_t)v), pooled_est[v], pooled_truth[v]);
        CHECK(e <= 0.01);
    }
    printf("estimator: worst relative error over %zu seeds, sites > 1%%: %.2f%%\n", nseeds,
           100 * worst);
}

static void test_weight(void)
{
    /* 1 / (1 - e^-1) */
    CHECK(fabs(ls_prof_weight(1000, 1000) - 1.5819767068693265) < 1e-12);
    CHECK(ls_prof_weight(123, 0) == 1.0);           /* full mode: exact */
    CHECK(ls_prof_weight(0, 4096) == 0.0);          /* a zero-byte sample weighs nothing */
    CHECK(ls_prof_weight(1ull << 40, 4096) == 1.0); /* certain */
    /* tiny against the rate: about rate/size + 1/2, without cancellation */
    CHECK(fabs(ls_prof_weight(1, 524288) - 524288.5) < 1e-3);
    CHECK_U(ls_prof_round(2.5), 3);
    CHECK_U(ls_prof_round(1582.0 - 0.4), 1582);
    CHECK(ls_prof_round(-2.5) == -3);
    CHECK(ls_prof_round(NAN) == 0);
    ls_prof_value_t v;
    CHECK(ls_prof_value_parse("alloc_space", &v) == 0 && v == LS_PROF_ALLOC_SPACE);
    CHECK(ls_prof_value_parse("inuse", &v) == -1);
    CHECK_STR(ls_prof_value_unit(LS_PROF_INUSE_OBJECTS), "count");
    CHECK_STR(ls_prof_value_unit(LS_PROF_ALLOC_SPACE), "bytes");
}

/* ---- full snapshots: exact ------------------------------------------------------------------ */

static void test_full_exact(void)
{
    static uint64_t s1[] = {0x1111}, s2[] = {0x2222};
    tsnap_stack_t st[] = {{1, 1, s1}, {2, 1, s2}};
    ls_fmt_block_t b[] = {
        tsnap_block(0x1000, 48, 1, LS_KIND_DEFINITELY, LS_NO_LEADER),
        tsnap_block(0x2000, 16, 2, LS_KIND_INDIRECTLY, 0),
        tsnap_block(0x3000, 1000003, 2, LS_KIND_REACHABLE, LS_NO_LEADER),
        tsnap_block(0x4000000, 7, 0, LS_KIND_REACHABLE, LS_NO_LEADER), /* no stack */
    };
    tsnap_t t = {.pid = 5,
                 .reason = LS_REASON_EXIT,
                 .leak_checked = 1,
                 .stacks = st,
                 .nstacks = 2,
                 .blocks = b,
                 .nblocks = 4,
                 .sample_rate = 4096 /* ignored */};
    ls_snapshot_t snap;
    load_ok("full.lsnap", &t, &snap);
    CHECK(!ls_snapshot_is_sampled(&snap));
    ls_profile_t p;
    char err[512];
    CHECK(ls_profile_build(&snap, NULL, &p, err, sizeof(err)) == 0);
    CHECK(!p.sampled && !p.has_alloc);
    CHECK_U(p.period, 1);
    CHECK_U(p.nstacks, 3);
    CHECK_U(p.stacks[0].stack, 0);
    CHECK(p.stacks[0].v[LS_PROF_INUSE_SPACE] == 7 && p.stacks[0].v[LS_PROF_INUSE_OBJECTS] == 1);
    CHECK(p.stacks[1].v[LS_PROF_INUSE_SPACE] == 48);
    CHECK(p.stacks[2].v[LS_PROF_INUSE_SPACE] == 1000019 &&
          p.stacks[2].v[LS_PROF_INUSE_OBJECTS] == 2);
    CHECK(p.stacks[2].v[LS_PROF_ALLOC_SPACE] == 0);
    CHECK(p.total[LS_PROF_INUSE_SPACE] == 1000074 && p.total[LS_PROF_INUSE_OBJECTS] == 4);
    CHECK(strstr(ls_profile_missing_alloc(&p), "full-mode") != NULL);
    /* The weighting diff and suspects use is ls_agg's own for full snapshots. */
    ls_wstack_t *a, *b2;
    size_t na, nb;
    CHECK(ls_agg_weigh_blocks(&snap, NULL, &a, &na) == 0);
    CHECK(ls_profile_weigh_inuse(&snap, &b2, &nb) == 0);
    CHECK(na == nb);
    for (size_t i = 0; i < na && i < nb; i++)
        CHECK(a[i].stack == b2[i].stack && a[i].bytes == b2[i].bytes &&
              a[i].blocks == b2[i].blocks);
    free(a);
    free(b2);
    /* A birth window keeps only the blocks born in it. */
    ls_block_filter_t f = {.has_after = true, .born_after_ns = 1};
    ls_profile_free(&p);
    CHECK(ls_profile_build(&snap, &f, &p, err, sizeof(err)) == 0);
    CHECK_U(p.nstacks, 0);
    CHECK(p.windowed);
    ls_profile_free(&p);
    /* The alloc views do not exist here: the top-N view refuses them. */
    ls_prof_report_opts_t o = {.index = LS_PROF_ALLOC_SPACE};
    CHECK(ls_prof_report_build(&snap, NULL, &o, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "alloc_space is not available: a full-mode snapshot") != NULL);
    ls_snapshot_free(&snap);
}

/* ---- the reader --------------------------------------------------------------------------- */

static void test_reader(void)
{
    static uint64_t s1[] = {0x1111};
    tsnap_stack_t st[] = {{1, 1, s1}};
    ls_fmt_sample_alloc_t sa[2] = {
        {.stack = 1, .samples = 2, .sampled_bytes = 64, .est_objects = 300.5, .est_bytes = 9000.25},
        {.stack = 0, .samples = 1, .sampled_bytes = 8, .est_objects = 1000, .est_bytes = 8000}};
    tsnap_t t = {.pid = 5,
                 .mode = "sample",
                 .sample_rate = 4096,
                 .stacks = st,
                 .nstacks = 1,
                 .sample_allocs = sa,
                 .nsample_allocs = 2};
    ls_snapshot_t snap;
    char err[512];
    load_ok("r.lsnap", &t, &snap);
    CHECK(snap.has_sample_allocs);
    CHECK_U(snap.nsample_allocs, 2);
    CHECK_U(snap.sample_rate, 4096);
    CHECK(snap.sample_allocs[0].est_bytes == 9000.25);
    ls_snapshot_free(&snap);

    t.nsample_allocs = 0; /* present and empty */
    load_ok("r.lsnap", &t, &snap);
    CHECK(snap.has_sample_allocs && snap.nsample_allocs == 0);
    ls_snapshot_free(&snap);
    t.nsample_allocs = 2;

    sa[0].stack = 9; /* no such stack */
    CHECK(load("r.lsnap", &t, &snap, err, sizeof(err)) == -1);
    CHECK(strstr(err, "sample alloc 0 at offset") && strstr(err, "refers to missing stack 9"));
    sa[0].stack = 1;
    sa[1].est_bytes = NAN;
    CHECK(load("r.lsnap", &t, &snap, err, sizeof(err)) == -1);
    CHECK(strstr(err, "sample alloc 1 at offset") && strstr(err, "non-finite"));
    sa[1].est_bytes = INFINITY;
    CHECK(load("r.lsnap", &t, &snap, err, sizeof(err)) == -1);
    sa[1].est_bytes = 8000;
    sa[1].est_objects = -1;
    CHECK(load("r.lsnap", &t, &snap, err, sizeof(err)) == -1);
    CHECK(strstr(err, "negative or non-finite estimate") != NULL);
    sa[1].est_objects = 1000;
    t.sample_rate = 0; /* mode sample says nothing about how it sampled */
    CHECK(load("r.lsnap", &t, &snap, err, sizeof(err)) == -1);
    CHECK(strstr(err, "without a sample rate") != NULL);
}

/* ---- snapshots of real code ---------------------------------------------------------------- */

/* Stacks of this test's own code (symbolizable): 1 sym_plain; 2 sym_outer (sym_inner inlined);
 * 3 sym_plain called from sym_outer; 4 a bare pc; 5 = stack 1's frames under another id. */
static uint64_t st1[1], st2[1], st3[2], st4[1] = {0x1234}, st5[1];
static tsnap_stack_t real_stacks[5];

static void init_real_stacks(void)
{
    st1[0] = pc_plain;
    st2[0] = pc_outer;
    st3[0] = pc_plain, st3[1] = pc_outer;
    st5[0] = pc_plain;
    tsnap_stack_t v[] = {{1, 1, st1}, {2, 1, st2}, {3, 2, st3}, {4, 1, st4}, {5, 1, st5}};
    memcpy(real_stacks, v, sizeof(v));
}

/* A sample profile at rate 1000 of: stack 1: blocks of 1000 and 2000 B; stack 2: 3 x 100 B;
 * stack 3: 500 B; stack 4: 10 B; stack 5: 1000 B; no stack: 50 B. */
static void sample_snapshot(ls_snapshot_t *snap, bool with_allocs)
{
    static ls_fmt_block_t b[9];
    b[0] = tsnap_block(0x1000, 1000, 1, LS_KIND_UNCHECKED, LS_NO_LEADER);
    b[1] = tsnap_block(0x2000, 2000, 1, LS_KIND_UNCHECKED, LS_NO_LEADER);
    b[2] = tsnap_block(0x3000, 100, 2, LS_KIND_UNCHECKED, LS_NO_LEADER);
    b[3] = tsnap_block(0x3100, 100, 2, LS_KIND_UNCHECKED, LS_NO_LEADER);
    b[4] = tsnap_block(0x3200, 100, 2, LS_KIND_UNCHECKED, LS_NO_LEADER);
    b[5] = tsnap_block(0x4000, 500, 3, LS_KIND_UNCHECKED, LS_NO_LEADER);
    b[6] = tsnap_block(0x5000, 10, 4, LS_KIND_UNCHECKED, LS_NO_LEADER);
    b[7] = tsnap_block(0x6000, 50, 0, LS_KIND_UNCHECKED, LS_NO_LEADER);
    b[8] = tsnap_block(0x7000, 1000, 5, LS_KIND_UNCHECKED, LS_NO_LEADER);
    static ls_fmt_sample_alloc_t sa[] = {
        {.stack = 1,
         .samples = 10,
         .sampled_bytes = 10000,
         .est_objects = 15.8,
         .est_bytes = 15819.77},
        {.stack = 2,
         .samples = 40,
         .sampled_bytes = 4000,
         .est_objects = 420.2,
         .est_bytes = 42016.6},
        {.stack = 4, .samples = 1, .sampled_bytes = 10, .est_objects = 100.5, .est_bytes = 1005.0},
    };
    tsnap_t t = {.pid = 4242,
                 .exe = mods[0].path,
                 .reason = LS_REASON_LIVE,
                 .mode = "sample",
                 .sample_rate = 1000,
                 .snap_ns = 2500000000ull,
                 .snap_realtime_ns = 1700000000123456789ull,
                 .modules = mods,
                 .nmodules = nmods,
                 .stacks = real_stacks,
                 .nstacks = 5,
                 .blocks = b,
                 .nblocks = 9,
                 .sample_allocs = with_allocs ? sa : NULL,
                 .nsample_allocs = with_allocs ? 3 : 0};
    load_ok("real.lsnap", &t, snap);
}

/* Figures of sample_snapshot, computed apart (python: s / (1 - exp(-s / 1000))):
 * 1000 B -> 1581.98 B, 1.58198 objects; 2000 -> 2313.03 B, 1.15652; 100 -> 1050.83 B, 10.5083;
 * 500 -> 1270.81 B, 2.54163; 10 -> 1005.00 B, 100.499; 50 -> 1025.21 B, 20.5042. */

static void test_collapsed(void)
{
    ls_snapshot_t snap;
    sample_snapshot(&snap, true);
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    ls_profile_t p;
    char err[256], *buf = NULL;
    size_t len = 0;
    CHECK(ls_profile_build(&snap, NULL, &p, err, sizeof(err)) == 0);
    FILE *f = open_memstream(&buf, &len);
    CHECK(ls_profile_write_collapsed(&snap, sym, &p, LS_PROF_INUSE_SPACE, f, err, sizeof(err)) ==
          0);
    fclose(f);
    /* Stacks 1 and 5 fold into one line (1581.98 + 2313.03 + 1581.98 = 5477); inlined
     * sym_inner is a frame of its own; byte order. */
    CHECK_STR(buf, "0x1234 1005\n"
                   "[no stack] 1025\n"
                   "sym_outer;sym_inner 3152\n"
                   "sym_outer;sym_inner;sym_plain 1271\n"
                   "sym_plain 5477\n");
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    CHECK(ls_profile_write_collapsed(&snap, sym, &p, LS_PROF_ALLOC_OBJECTS, f, err, sizeof(err)) ==
          0);
    fclose(f);
    CHECK_STR(buf, "0x1234 101\n"
                   "sym_outer;sym_inner 420\n"
                   "sym_plain 16\n");
    free(buf);
    ls_profile_free(&p);
    ls_symbolizer_free(sym);
    ls_snapshot_free(&snap);
}

/* ---- pprof, decoded ------------------------------------------------------------------------ */

static Pprof__Profile *decode(const unsigned char *gz, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    CHECK(inflateInit2(&z, 15 + 16) == Z_OK); /* gzip only: what pprof reads */
    size_t cap = 1 << 20;
    unsigned char *out = malloc(cap);
    z.next_in = (unsigned char *)gz;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    CHECK(rc == Z_STREAM_END);
    size_t n = z.total_out;
    inflateEnd(&z);
    Pprof__Profile *p = rc == Z_STREAM_END ? pprof__profile__unpack(NULL, n, out) : NULL;
    CHECK(p != NULL);
    free(out);
    return p;
}

static const char *pstr(const Pprof__Profile *p, int64_t i)
{
    return i >= 0 && (size_t)i < p->n_string_table ? p->string_table[i] : "(bad index)";
}

static const Pprof__Location *ploc(const Pprof__Profile *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_location; i++)
        if (p->location[i]->id == id) return p->location[i];
    return NULL;
}

static const Pprof__Function *pfunc(const Pprof__Profile *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_function; i++)
        if (p->function[i]->id == id) return p->function[i];
    return NULL;
}

static const Pprof__Mapping *pmap(const Pprof__Profile *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_mapping; i++)
        if (p->mapping[i]->id == id) return p->mapping[i];
    return NULL;
}

/* "f1;f2|f3" for a sample: its locations innermost first, ';' between locations, '|' between
 * the lines of one location (inlined first). */
static void sample_text(const Pprof__Profile *p, const Pprof__Sample *s, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < s->n_location_id; i++) {
        const Pprof__Location *l = ploc(p, s->location_id[i]);
        if (i) o += (size_t)snprintf(buf + o, len - o, ";");
        if (!l) {
            o += (size_t)snprintf(buf + o, len - o, "(missing)");
            continue;
        }
        if (!l->n_line)
            o += (size_t)snprintf(buf + o, len - o, "0x%llx", (unsigned long long)l->address);
        for (size_t k = 0; k < l->n_line; k++) {
            const Pprof__Function *f = pfunc(p, l->line[k]->function_id);
            o += (size_t)snprintf(buf + o, len - o, "%s%s", k ? "|" : "",
                                  f ? pstr(p, f->name) : "(missing)");
        }
    }
}

static const Pprof__Sample *find_sample(const Pprof__Profile *p, const char *text)
{
    char buf[1024];
    for (size_t i = 0; i < p->n_sample; i++) {
        sample_text(p, p->sample[i], buf, sizeof(buf));
        if (strcmp(buf, text) == 0) return p->sample[i];
    }
    fprintf(stderr, "no sample %s; samples:\n", text);
    for (size_t i = 0; i < p->n_sample; i++) {
        sample_text(p, p->sample[i], buf, sizeof(buf));
        fprintf(stderr, "  %s\n", buf);
    }
    return NULL;
}

static void check_values(const Pprof__Sample *s, int64_t a, int64_t b, int64_t c, int64_t d,
                         size_t n)
{
    CHECK(s != NULL);
    if (!s) return;
    CHECK_U(s->n_value, n);
    const int64_t want[4] = {a, b, c, d};
    for (size_t i = 0; i < n && i < s->n_value; i++) {
        if (s->value[i] != want[i])
            fprintf(stderr, "  value[%zu] = %lld, expected %lld\n", i, (long long)s->value[i],
                    (long long)want[i]);
        CHECK(s->value[i] == want[i]);
    }
}

/* The main program's executable segment as the kernel mapped it. */
static int exec_segment(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uint64_t *out = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            out[0] = (info->dlpi_addr + ph->p_vaddr) & ~4095ull;
            out[1] = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + 4095) & ~4095ull;
            out[2] = ph->p_offset & ~4095ull;
            return 1; /* the first object is the main program */
        }
    }
    return 1;
}

static Pprof__Profile *encode_snapshot(const ls_snapshot_t *snap, ls_prof_value_t def)
{
    ls_symbolizer_t *sym = ls_symbolizer_new(snap, NULL);
    ls_profile_t p;
    char err[256], *buf = NULL;
    size_t len = 0;
    CHECK(ls_profile_build(snap, NULL, &p, err, sizeof(err)) == 0);
    FILE *f = open_memstream(&buf, &len);
    int rc = ls_pprof_write_profile(snap, sym, &p, def, f, err, sizeof(err));
    if (rc) fprintf(stderr, "pprof: %s\n", err);
    CHECK(rc == 0);
    fclose(f);
    CHECK(len > 18 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b); /* gzip */
    Pprof__Profile *pp = decode((unsigned char *)buf, len);
    free(buf);
    ls_profile_free(&p);
    ls_symbolizer_free(sym);
    return pp;
}

static void test_pprof_decode(void)
{
    ls_snapshot_t snap;
    sample_snapshot(&snap, true);
    Pprof__Profile *p = encode_snapshot(&snap, LS_PROF_INUSE_SPACE);
    if (!p) return;
    CHECK(p->n_string_table > 0 && strcmp(p->string_table[0], "") == 0);
    static const char *const types[4][2] = {{"alloc_objects", "count"},
                                            {"alloc_space", "bytes"},
                                            {"inuse_objects", "count"},
                                            {"inuse_space", "bytes"}};
    CHECK_U(p->n_sample_type, 4);
    for (size_t i = 0; i < 4 && i < p->n_sample_type; i++) {
        CHECK_STR(pstr(p, p->sample_type[i]->type), types[i][0]);
        CHECK_STR(pstr(p, p->sample_type[i]->unit), types[i][1]);
    }
    CHECK(p->period_type != NULL);
    if (p->period_type) {
        CHECK_STR(pstr(p, p->period_type->type), "space");
        CHECK_STR(pstr(p, p->period_type->unit), "bytes");
    }
    CHECK(p->period == 1000);
    CHECK_STR(pstr(p, p->default_sample_type), "inuse_space");
    CHECK(p->time_nanos == 1700000000123456789ll);
    CHECK(p->duration_nanos == 2500000000ll);
    CHECK(p->n_comment == 1 && strstr(pstr(p, p->comment[0]), "sample profile of") != NULL);

    /* Values: [alloc_objects, alloc_space, inuse_objects, inuse_space], rounded per stack;
     * stacks 1 and 5 have the same pcs: one sample. */
    check_values(find_sample(p, "sym_plain"), 16, 15820, 5 /* round(2.74) + round(1.58) */, 5477,
                 4);
    check_values(find_sample(p, "sym_inner|sym_outer"), 420, 42017, 32, 3152, 4);
    check_values(find_sample(p, "sym_plain;sym_inner|sym_outer"), 0, 0, 3, 1271, 4);
    check_values(find_sample(p, "0x1233"), 101, 1005, 101, 1005, 4);
    check_values(find_sample(p, ""), 0, 0, 21, 1025, 4); /* no stack: no locations */
    CHECK_U(p->n_sample, 5);

    /* Locations: address = return address - 1; lines innermost first with their source lines. */
    unsigned inner = tsnap_find_line(SYM_TARGET_SRC, "@inner-call"),
             outer = tsnap_find_line(SYM_TARGET_SRC, "@outer-call"),
             plain = tsnap_find_line(SYM_TARGET_SRC, "@plain-call");
    const Pprof__Location *lo = NULL, *lp = NULL, *lb = NULL;
    for (size_t i = 0; i < p->n_location; i++) {
        const Pprof__Location *l = p->location[i];
        if (l->address == pc_outer - 1) lo = l;
        if (l->address == pc_plain - 1) lp = l;
        if (l->address == 0x1233) lb = l;
    }
    CHECK(lo && lp && lb);
    CHECK_U(p->n_location, 3);
    if (lo && lo->n_line == 2) {
        const Pprof__Function *f0 = pfunc(p, lo->line[0]->function_id),
                              *f1 = pfunc(p, lo->line[1]->function_id);
        CHECK(f0 && f1);
        if (f0 && f1) {
            CHECK_STR(pstr(p, f0->name), "sym_inner");
            CHECK_STR(pstr(p, f1->name), "sym_outer");
            CHECK_STR(pstr(p, f1->system_name), "sym_outer");
            CHECK(strstr(pstr(p, f1->filename), "sym_target.c") != NULL);
        }
        CHECK_U(lo->line[0]->line, inner);
        CHECK_U(lo->line[1]->line, outer);
    } else {
        CHECK(!"sym_outer's location has two lines");
    }
    if (lp && lp->n_line == 1) CHECK_U(lp->line[0]->line, plain);
    /* The bare pc lies in no mapping and has no lines. */
    if (lb) CHECK(lb->mapping_id == 0 && lb->n_line == 0);

    /* Mappings: the main program first, its executable segment as /proc/self/maps has it. */
    uint64_t seg[3] = {0, 0, 0};
    dl_iterate_phdr(exec_segment, seg);
    CHECK(p->n_mapping >= 2); /* the program, libc, ... */
    const Pprof__Mapping *m0 = p->n_mapping ? p->mapping[0] : NULL;
    if (m0) {
        CHECK_STR(pstr(p, m0->filename), mods[0].path);
        char hexid[129] = "";
        for (size_t i = 0; i < mods[0].build_id_len; i++)
            sprintf(hexid + 2 * i, "%02x", mods[0].build_id[i]);
        CHECK_STR(pstr(p, m0->build_id), hexid);
        CHECK(strlen(hexid) == 40);
        CHECK(m0->memory_start == seg[0] && m0->memory_limit == seg[1] &&
              m0->file_offset == seg[2]);
        CHECK(m0->has_functions && m0->has_filenames && m0->has_line_numbers &&
              m0->has_inline_frames);
    }
    const Pprof__Mapping *ml = lo ? pmap(p, lo->mapping_id) : NULL;
    CHECK(ml == m0);
    if (ml) CHECK(ml->memory_start <= lo->address && lo->address < ml->memory_limit);
    for (size_t i = 0; i < p->n_mapping; i++) {
        const Pprof__Mapping *m = p->mapping[i];
        CHECK(m->id == i + 1);
        CHECK(m->memory_start % 4096 == 0 && m->memory_limit % 4096 == 0 &&
              m->file_offset % 4096 == 0 && m->memory_start < m->memory_limit);
        CHECK(strstr(pstr(p, m->filename), "libleakscope") == NULL);
        if (i) CHECK(!m->has_functions); /* nothing sampled in the other objects */
    }
    pprof__profile__free_unpacked(p, NULL);

    /* Without SAMPLE_ALLOCS (or from a full snapshot): the inuse pair only. */
    ls_snapshot_free(&snap);
    sample_snapshot(&snap, false);
    p = encode_snapshot(&snap, LS_PROF_INUSE_OBJECTS);
    if (p) {
        CHECK_U(p->n_sample_type, 2);
        if (p->n_sample_type == 2) {
            CHECK_STR(pstr(p, p->sample_type[0]->type), "inuse_objects");
            CHECK_STR(pstr(p, p->sample_type[1]->type), "inuse_space");
        }
        CHECK_STR(pstr(p, p->default_sample_type), "inuse_objects");
        check_values(find_sample(p, "sym_plain"), 5, 5477, 0, 0, 2);
        pprof__profile__free_unpacked(p, NULL);
    }
    ls_snapshot_free(&snap);
}

/* ---- diffs ---------------------------------------------------------------------------------- */

/* OLD and NEW at rate 1000, blocks of 1000 B (1581.98 B, 1.58 objects each) unless said:
 *   sym_plain   1 block -> 3 blocks        grew
 *   sym_outer   2 blocks -> 1 block        shrank
 *   0x1234      absent -> 1 block          new
 *   sym_plain from sym_outer: 1 -> absent  gone
 *   no stack    1 block of 50 -> the same  same
 * NEW's addresses are OLD's shifted by `shift` (another run of the same program). */
static void diff_snapshot(const char *name, bool is_new, uint64_t shift)
{
    static uint64_t a1[1], a2[1], a3[2], a4[1];
    a1[0] = pc_plain + shift;
    a2[0] = pc_outer + shift;
    a3[0] = pc_plain + shift, a3[1] = pc_outer + shift;
    a4[0] = 0x1234; /* a bare pc stays put */
    tsnap_stack_t st[] = {{1, 1, a1}, {2, 1, a2}, {3, 2, a3}, {4, 1, a4}};
    ls_fmt_block_t b[8];
    size_t n = 0;
    uint64_t addr = 0x10000;
    int counts[4] = {is_new ? 3 : 1, is_new ? 1 : 2, is_new ? 0 : 1, is_new ? 1 : 0};
    for (int s = 0; s < 4; s++)
        for (int k = 0; k < counts[s]; k++, addr += 0x1000)
            b[n++] = tsnap_block(addr, 1000, (uint32_t)s + 1, LS_KIND_UNCHECKED, LS_NO_LEADER);
    b[n++] = tsnap_block(addr, 50, 0, LS_KIND_UNCHECKED, LS_NO_LEADER);
    tsnap_module_t m[64];
    for (size_t i = 0; i < nmods; i++) {
        m[i] = mods[i];
        m[i].bias += shift;
        m[i].lo += shift;
        m[i].hi += shift;
    }
    tsnap_t t = {.pid = is_new ? 2 : 1,
                 .exe = mods[0].path,
                 .reason = LS_REASON_EXIT,
                 .mode = "sample",
                 .sample_rate = 1000,
                 .modules = m,
                 .nmodules = nmods,
                 .stacks = st,
                 .nstacks = 4,
                 .blocks = b,
                 .nblocks = n,
                 .snap_realtime_ns = is_new ? 2000000000ull : 1000000000ull};
    char path[300];
    path_in(path, sizeof(path), name);
    CHECK(tsnap_write(path, &t) == 0);
}

static const ls_diff_row_t *diff_row(const ls_series_t *s, const ls_diff_t *d, const char *func)
{
    const ls_keys_t *k = ls_series_keys(s);
    for (size_t i = 0; i < d->n; i++) {
        const ls_sym_frame_t *f = ls_keys_frame(k, d->rows[i].site);
        const char *name = !f ? "(no stack)" : f->function ? f->function : "(bare)";
        if (strcmp(name, func) == 0) return &d->rows[i];
    }
    return NULL;
}

static void test_diff(void)
{
    const uint64_t shift = 0x7000000000ull; /* page-aligned: a different ASLR base */
    char oldp[300], newp[300], err[512];
    diff_snapshot("old.lsnap", false, 0);
    diff_snapshot("new.lsnap", true, shift);
    path_in(oldp, sizeof(oldp), "old.lsnap");
    path_in(newp, sizeof(newp), "new.lsnap");

    /* By stack: the growth of the estimates, pprof -base semantics. */
    ls_series_t *s = ls_series_new(NULL);
    CHECK(ls_series_add_file(s, oldp, err, sizeof(err)) == 0);
    CHECK(ls_series_add_file(s, newp, err, sizeof(err)) == 0);
    CHECK_U(ls_series_at(s, 0)->sample_rate, 1000);
    ls_diff_t *d = ls_diff_build(s, LS_DIFF_BY_STACK);
    CHECK(d && d->n == 5);
    struct {
        const char *site, *status;
        uint64_t old_bytes, new_bytes, old_blocks, new_blocks;
    } want[] = {
        {"sym_plain", "grew", 1582, 4746, 2, 5},
        {"(bare)", "new", 0, 1582, 0, 2},
        {"(no stack)", "same", 1025, 1025, 21, 21},
    };
    for (size_t i = 0; d && i < sizeof(want) / sizeof(want[0]); i++) {
        const ls_diff_row_t *r = diff_row(s, d, want[i].site);
        CHECK(r != NULL);
        if (!r) continue;
        CHECK_STR(ls_diff_status(r), want[i].status);
        CHECK_U(r->old_bytes, want[i].old_bytes);
        CHECK_U(r->new_bytes, want[i].new_bytes);
        CHECK_U(r->old_blocks, want[i].old_blocks);
        CHECK_U(r->new_blocks, want[i].new_blocks);
    }
    /* The other two: sym_outer's own stack (site sym_inner, shrank) and sym_plain called from
     * sym_outer (site sym_plain, gone). */
    size_t grew = 0, shrank = 0, gone = 0, nw = 0, same = 0;
    for (size_t i = 0; d && i < d->n; i++) {
        const char *st = ls_diff_status(&d->rows[i]);
        grew += !strcmp(st, "grew");
        shrank += !strcmp(st, "shrank");
        gone += !strcmp(st, "gone");
        nw += !strcmp(st, "new");
        same += !strcmp(st, "same");
    }
    CHECK(grew == 1 && shrank == 1 && gone == 1 && nw == 1 && same == 1);
    ls_diff_free(d);
    /* By site: sym_inner (the inlined frame) is sym_outer's stack's first frame. */
    d = ls_diff_build(s, LS_DIFF_BY_SITE);
    const ls_diff_row_t *r = d ? diff_row(s, d, "sym_inner") : NULL;
    CHECK(r && !strcmp(ls_diff_status(r), "shrank") && r->old_bytes == 3164 &&
          r->new_bytes == 1582);
    r = d ? diff_row(s, d, "sym_plain") : NULL; /* own stack grew, the other one is gone */
    CHECK(r && r->old_bytes == 3164 && r->new_bytes == 4746);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ls_diff_write_text(s, d, 0, f);
    fclose(f);
    CHECK_IN(buf, "(estimated: sample profile, rate 1,000)");
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    CHECK(ls_diff_write_json(s, d, 0, f) == 0);
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    CHECK(j != NULL);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "old"), "sample_rate")) ==
          1000);
    cJSON_Delete(j);
    free(buf);
    ls_diff_free(d);
    ls_series_free(s);

    /* As one pprof profile, NEW minus OLD; OLD's addresses are rebased onto NEW's mappings, so
     * what did not change (no stack: same) cancels and is left out. */
    ls_snapshot_t so, sn;
    CHECK(ls_snapshot_load(oldp, &so, err, sizeof(err)) == 0);
    CHECK(ls_snapshot_load(newp, &sn, err, sizeof(err)) == 0);
    ls_profile_t po, pn;
    CHECK(ls_profile_build(&so, NULL, &po, err, sizeof(err)) == 0);
    CHECK(ls_profile_build(&sn, NULL, &pn, err, sizeof(err)) == 0);
    ls_symbolizer_t *yo = ls_symbolizer_new(&so, NULL), *yn = ls_symbolizer_new(&sn, NULL);
    ls_pprof_t *b = ls_pprof_new(false, 1000, LS_PROF_INUSE_SPACE);
    CHECK(ls_pprof_add(b, &sn, yn, &pn, +1, err, sizeof(err)) == 0);
    CHECK(ls_pprof_add(b, &so, yo, &po, -1, err, sizeof(err)) == 0);
    unsigned char *gz;
    size_t gzlen;
    CHECK(ls_pprof_encode(b, &gz, &gzlen, err, sizeof(err)) == 0);
    Pprof__Profile *p = decode(gz, gzlen);
    if (p) {
        check_values(find_sample(p, "sym_plain"), 3, 3164, 0, 0, 2);
        check_values(find_sample(p, "sym_inner|sym_outer"), -1, -1582, 0, 0, 2);
        check_values(find_sample(p, "0x1233"), 2, 1582, 0, 0, 2);
        check_values(find_sample(p, "sym_plain;sym_inner|sym_outer"), -2, -1582, 0, 0, 2);
        CHECK_U(p->n_sample, 4); /* "same" cancelled */
        /* One set of locations: OLD's pcs landed on NEW's addresses. */
        CHECK_U(p->n_location, 3);
        for (size_t i = 0; i < p->n_location; i++)
            if (p->location[i]->mapping_id)
                CHECK(p->location[i]->address == pc_plain - 1 + shift ||
                      p->location[i]->address == pc_outer - 1 + shift);
        pprof__profile__free_unpacked(p, NULL);
    }
    free(gz);
    ls_pprof_free(b);
    ls_symbolizer_free(yo);
    ls_symbolizer_free(yn);
    ls_profile_free(&po);
    ls_profile_free(&pn);
    ls_snapshot_free(&so);
    ls_snapshot_free(&sn);
}

/* ---- the top-N view ------------------------------------------------------------------------ */

static void test_top_view(void)
{
    ls_snapshot_t snap;
    sample_snapshot(&snap, true);
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    char err[256], *buf = NULL;
    size_t len = 0;
    ls_prof_report_opts_t o = {.index = LS_PROF_INUSE_SPACE, .top = 2};
    ls_prof_report_t *r = ls_prof_report_build(&snap, sym, &o, err, sizeof(err));
    CHECK(r != NULL);
    if (!r) return;
    FILE *f = open_memstream(&buf, &len);
    ls_prof_report_write_text(r, f);
    fclose(f);
    CHECK(strncmp(buf, "leakscope profile - version 1\n", 30) == 0);
    CHECK_IN(buf, "sample profile: one sample per 1000 B allocated on average (sample_rate "
                  "1,000); figures are estimates\n");
    CHECK_IN(buf, "samples: 9 live, 51 since start\n");
    CHECK_IN(buf, "in use:    11,930 bytes in 162 objects");
    CHECK_IN(buf, "allocated: 58,842 bytes in 537 objects");
    /* Sites: sym_plain holds stacks 1 and 5 (5477) and stack 3 (1271): 6748; sym_inner (stack 2,
     * its inlined first frame) 3152; no stack 1025; the bare pc 1005. */
    CHECK_IN(buf, "Allocation sites by inuse_space (top 2 of 4):\n");
    CHECK_IN(buf, "          6,748  56.56%  56.56%               8          15,820              16"
                  "  sym_plain (sym_target.c:");
    CHECK_IN(buf, "          3,152  26.42%  82.98%              32          42,017             420"
                  "  sym_inner (sym_target.c:");
    CHECK_IN(buf, "Stacks by inuse_space (top 2 of 5):\n");
    CHECK_IN(buf, "(3 more not shown; --top 0 shows all)\n");
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    CHECK(ls_prof_report_write_json(r, f) == 0);
    fclose(f);
    ls_prof_report_free(r);
    cJSON *j = cJSON_Parse(buf);
    CHECK(j != NULL);
    cJSON *pr = cJSON_GetObjectItem(j, "profile");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "mode")), "sample");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(pr, "exact")));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(pr, "sample_rate")) == 1000);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(pr, "sample_index")), "inuse_space");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(pr, "sample_types")) == 4);
    cJSON *tot = cJSON_GetObjectItem(pr, "totals");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(tot, "inuse_space")) == 11930);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(tot, "alloc_objects")) == 537);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(pr, "sites_total")) == 4);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(pr, "stacks_total")) == 5);
    cJSON *sites_j = cJSON_GetObjectItem(j, "sites"), *stacks_j = cJSON_GetObjectItem(j, "stacks");
    CHECK(cJSON_GetArraySize(sites_j) == 2 && cJSON_GetArraySize(stacks_j) == 2);
    cJSON *s0 = cJSON_GetArrayItem(sites_j, 0);
    CHECK_STR(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(s0, "site"), "function")),
        "sym_plain");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(s0, "stacks")) == 2);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(s0, "inuse_space")) == 6748);
    cJSON *k0 = cJSON_GetArrayItem(stacks_j, 0);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(k0, "inuse_space")) == 5477);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(k0, "stack_id")) == 1);
    cJSON *k1 = cJSON_GetArrayItem(stacks_j, 1), *fr = cJSON_GetObjectItem(k1, "frames");
    CHECK(cJSON_GetArraySize(fr) == 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(fr, 0), "function")),
              "sym_inner");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(fr, 0), "inlined")));
    cJSON_Delete(j);
    free(buf);

    /* Sorted by alloc_objects: sym_inner's 420 first. */
    o.index = LS_PROF_ALLOC_OBJECTS;
    o.top = 0;
    r = ls_prof_report_build(&snap, sym, &o, err, sizeof(err));
    buf = NULL;
    f = open_memstream(&buf, &len);
    ls_prof_report_write_text(r, f);
    fclose(f);
    CHECK_IN(buf, "Allocation sites by alloc_objects (4 of 4):\n  alloc_objects       %    "
                  "sum%     inuse_space   inuse_objects     alloc_space  site\n"
                  "            420  78.21%  78.21%           3,152              32          "
                  "42,017  sym_inner");
    free(buf);
    ls_prof_report_free(r);
    ls_symbolizer_free(sym);
    ls_snapshot_free(&snap);
}

/* ---- the commands --------------------------------------------------------------------------- */

static void test_commands(void)
{
    if (!leakscope_bin) return;
    trun_init(leakscope_bin, dir);
    static trun_result_t r;
    char snap[300], full[300], out[300], oldp[300], newp[300];
    path_in(snap, sizeof(snap), "cmd-sample.lsnap");
    path_in(full, sizeof(full), "cmd-full.lsnap");
    path_in(out, sizeof(out), "out.pb.gz");
    path_in(oldp, sizeof(oldp), "old.lsnap");
    path_in(newp, sizeof(newp), "new.lsnap");
    ls_snapshot_t s;
    sample_snapshot(&s, true); /* writes real.lsnap, then removed: write it again by hand */
    ls_snapshot_free(&s);
    {
        static ls_fmt_block_t b[2];
        b[0] = tsnap_block(0x1000, 1000, 1, LS_KIND_UNCHECKED, LS_NO_LEADER);
        b[1] = tsnap_block(0x2000, 100, 2, LS_KIND_UNCHECKED, LS_NO_LEADER);
        ls_fmt_sample_alloc_t sa[] = {{.stack = 1,
                                       .samples = 1,
                                       .sampled_bytes = 1000,
                                       .est_objects = 1.58,
                                       .est_bytes = 1581.98}};
        tsnap_t t = {.pid = 9,
                     .exe = mods[0].path,
                     .reason = LS_REASON_EXIT,
                     .mode = "sample",
                     .sample_rate = 1000,
                     .modules = mods,
                     .nmodules = nmods,
                     .stacks = real_stacks,
                     .nstacks = 5,
                     .blocks = b,
                     .nblocks = 2,
                     .sample_allocs = sa,
                     .nsample_allocs = 1};
        CHECK(tsnap_write(snap, &t) == 0);
        t.mode = NULL;
        t.sample_allocs = NULL;
        t.leak_checked = 1;
        b[0].kind = b[1].kind = LS_KIND_DEFINITELY;
        CHECK(tsnap_write(full, &t) == 0);
    }
    /* A sample profile's default report is the top-N view. */
    trun(&r, "report", snap, NULL);
    CHECK_U(r.status, 0);
    CHECK(strncmp(r.out, "leakscope profile - version 1\n", 30) == 0);
    trun(&r, "report", snap, "--format", "collapsed", "--sample-index", "inuse_objects", NULL);
    CHECK_U(r.status, 0);
    CHECK_STR(r.out, "sym_outer;sym_inner 11\nsym_plain 2\n");
    trun(&r, "report", snap, "--format", "pprof", "-o", out, NULL);
    CHECK_U(r.status, 0);
    struct stat st;
    CHECK(stat(out, &st) == 0 && st.st_size > 100);
    /* A full snapshot: the leak report by default, the profile on request, no alloc views. */
    trun(&r, "report", full, NULL);
    CHECK(strncmp(r.out, "leakscope report - version 1\n", 29) == 0);
    trun(&r, "report", full, "--top", "1", NULL);
    CHECK_IN(r.out, "exact profile of a full-mode snapshot");
    CHECK_IN(r.out, "Allocation sites by inuse_space (top 1 of 2):\n");
    trun(&r, "report", full, "--format", "collapsed", NULL);
    CHECK_STR(r.out, "sym_outer;sym_inner 100\nsym_plain 1000\n");
    trun(&r, "report", full, "--format", "pprof", "--sample-index", "alloc_space", "-o", out, NULL);
    CHECK(trun_input_error(&r, "leakscope report", "alloc view of a full snapshot",
                           "alloc_space is not available: a full-mode snapshot"));
    /* Usage errors. */
    trun(&r, "report", snap, "--format", "svg", NULL);
    CHECK(trun_usage_error(&r, "unknown format", "expected text, json, pprof or collapsed"));
    trun(&r, "report", snap, "--sample-index", "inuse", NULL);
    CHECK(trun_usage_error(&r, "unknown index", "unknown --sample-index 'inuse'"));
    trun(&r, "report", snap, "--format", "pprof", "--top", "3", "-o", out, NULL);
    CHECK(trun_usage_error(&r, "--top with pprof", "--top applies to the text and json formats"));
    trun(&r, "report", snap, "--show-reachable", NULL);
    CHECK(trun_usage_error(&r, "--show-reachable on a profile", "not to a sample profile"));
    /* diff --format pprof */
    trun(&r, "diff", oldp, newp, "--format", "pprof", "-o", out, NULL);
    CHECK_U(r.status, 0);
    trun(&r, "diff", oldp, newp, "--format", "pprof", "--by", "stack", "-o", out, NULL);
    CHECK(trun_usage_error(&r, "--by with pprof", "--by does not apply to --format pprof"));
    trun(&r, "diff", oldp, newp, "--sample-index", "inuse_space", NULL);
    CHECK(trun_usage_error(&r, "--sample-index without pprof", "applies to --format pprof"));
    trun(&r, "diff", oldp, newp, "--format", "pprof", "--sample-index", "alloc_space", "-o", out,
         NULL);
    CHECK(trun_input_error(&r, "leakscope diff", "alloc view without SAMPLE_ALLOCS",
                           "alloc_space is not available: the profile has no SAMPLE_ALLOCS"));
    trun(&r, "diff", oldp, newp, NULL);
    CHECK_U(r.status, 0);
    CHECK_IN(r.out, "sym_plain");
}

/* --sample-seed PATH: writes a sample profile with every 1.3 chunk (modules, stacks, blocks,
 * SAMPLE_ALLOCS with a "no stack" entry) for the reader's fuzz test (tests/fuzz). */
static int write_seed(const char *path)
{
    ls_fmt_block_t b[] = {tsnap_block(0x1000, 1000, 1, LS_KIND_UNCHECKED, LS_NO_LEADER),
                          tsnap_block(0x2000, 100, 2, LS_KIND_UNCHECKED, LS_NO_LEADER),
                          tsnap_block(0x3000, 10, 0, LS_KIND_UNCHECKED, LS_NO_LEADER)};
    ls_fmt_sample_alloc_t sa[] = {
        {.stack = 1, .samples = 3, .sampled_bytes = 3000, .est_objects = 4.7, .est_bytes = 4746},
        {.stack = 3, .samples = 1, .sampled_bytes = 500, .est_objects = 2.5, .est_bytes = 1271},
        {.stack = 0, .samples = 2, .sampled_bytes = 20, .est_objects = 201, .est_bytes = 2010}};
    tsnap_t t = {.pid = 9,
                 .exe = mods[0].path,
                 .reason = LS_REASON_LIVE,
                 .mode = "sample",
                 .sample_rate = 1000,
                 .snap_ns = 5,
                 .snap_seq = 1,
                 .modules = mods,
                 .nmodules = nmods < 4 ? nmods : 4,
                 .stacks = real_stacks,
                 .nstacks = 5,
                 .blocks = b,
                 .nblocks = 3,
                 .sample_allocs = sa,
                 .nsample_allocs = 3};
    int rc = tsnap_write(path, &t);
    if (rc) fprintf(stderr, "%s: %s\n", path, strerror(rc));
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    nmods = tsnap_self_modules(mods, 64);
    sym_plain(&pc_plain);
    sym_outer(&pc_outer);
    sym_suppressed_site(&pc_supp);
    init_real_stacks();
    if (argc == 3 && strcmp(argv[1], "--sample-seed") == 0) return write_seed(argv[2]);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    leakscope_bin = argc > 1 ? argv[1] : NULL;

    RUN(test_weight);
    RUN(test_estimator);
    RUN(test_full_exact);
    RUN(test_reader);
    RUN(test_collapsed);
    RUN(test_pprof_decode);
    RUN(test_diff);
    RUN(test_top_view);
    RUN(test_commands);

    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    return t_done("test_profile");
}
