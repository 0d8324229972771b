/*
 * sample_sites.c - mode sample on a heap whose truth is known, checked from the snapshots.
 *
 * Sites (one function each, so one stack each; run at sample_rate=8192 with a fixed seed):
 *   site_a   40 MiB live in 4 KiB blocks             site_b  10 MiB live in 64-byte blocks
 *   site_c   200 MiB allocated and freed, 1 KiB      site_d  one 8 MiB block
 *   site_r0/r1/r2: 2000 blocks made at 100 bytes, realloc'ed to 6000, then to 12000 bytes
 *   site_f calloc, site_g posix_memalign, site_h aligned_alloc, site_m memalign, site_v valloc
 *
 * sample_sites run DIR RATE: builds the heap under the agent, then checks live snapshots
 *   (ls_snapshot_write) from inside: estimates per site against the truth, nothing but sampled
 *   blocks tracked, a free removes a sampled block, realloc moves blocks between sampled and not,
 *   malloc_usable_size leaves the trailer alone. It exits with A freed and the rest live.
 * sample_sites check FILE RATE: checks a snapshot of `run` or `hold` taken at exit or from
 *   outside (B, D and the realloc'ed blocks live, C none).
 * sample_sites hold[-busy] DIR: builds B, C and D, writes DIR/ready, waits for DIR/stop (at most
 *   60 s); hold-busy also mallocs and frees 32 bytes every 10 ms, as a live process would.
 * sample_sites meta-rate FILE: prints the snapshot's META sample_rate (0: none).
 *
 * Tolerances: the issue's +-10% for the sites holding more than 1% of the heap (A, B, C's
 * allocations, R2); 6 standard deviations of the estimator elsewhere (its variance is
 * sum s^2 (1-p)/p over the blocks), so a correct sampler fails with odds below 1e-8 per check.
 */
#define _GNU_SOURCE
#include "../../include/leakscope.h"
#include "sample_check.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

enum {
    NA = 10240,  /* 40 MiB of 4 KiB */
    NB = 163840, /* 10 MiB of 64 B */
    NC = 204800, /* 200 MiB of 1 KiB */
    NR = 2000,
    NF = 1000, /* calloc 2048 */
    NG = 1000, /* posix_memalign(64, 3000) */
    NH = 500,  /* aligned_alloc(4096, 4096) */
    NM = 500,  /* memalign(256, 5000) */
    NV = 300,  /* valloc(7000) */
};

void *va[NA], *vb[NB], *vr[NR], *vf[NF], *vg[NG], *vh[NH], *vm[NM], *vv[NV];
void *vd, *volatile vc;

/* One function per site. The results are stored after the call so that no call is a tail call:
 * the innermost frame of each stack is the site itself. */
__attribute__((noinline)) void site_a(int i)
{
    va[i] = malloc(4096);
}
__attribute__((noinline)) void site_b(int i)
{
    vb[i] = malloc(64);
}
__attribute__((noinline)) void site_c(void)
{
    vc = malloc(1024);
}
__attribute__((noinline)) void site_d(void)
{
    vd = malloc(8u << 20);
}
__attribute__((noinline)) void site_r0(int i)
{
    vr[i] = malloc(100);
}
__attribute__((noinline)) void site_r1(int i)
{
    vr[i] = realloc(vr[i], 6000);
}
__attribute__((noinline)) void site_r2(int i)
{
    vr[i] = realloc(vr[i], 12000);
}
__attribute__((noinline)) void site_f(int i)
{
    vf[i] = calloc(2, 1024);
}
__attribute__((noinline)) void site_g(int i)
{
    if (posix_memalign(&vg[i], 64, 3000)) vg[i] = NULL;
}
__attribute__((noinline)) void site_h(int i)
{
    vh[i] = aligned_alloc(4096, 4096);
}
__attribute__((noinline)) void site_m(int i)
{
    vm[i] = memalign(256, 5000);
}
__attribute__((noinline)) void site_v(int i)
{
    vv[i] = valloc(7000);
}

static void oom(void)
{
    fprintf(stderr, "out of memory\n");
    exit(3);
}

/* B, C and D interleaved (the countdown sees them mixed, as in a real program). */
static void build_bcd(void)
{
    _Static_assert(NC == NB + NB / 4, "C is interleaved with B");
    for (int i = 0; i < NB; i++) {
        site_b(i);
        if (!vb[i]) oom();
        site_c();
        free(vc);
        if (i % 4 == 0) {
            site_c();
            free(vc);
        }
    }
    site_d();
    if (!vd) oom();
    memset(vd, 1, 4096);
}

typedef struct site_sum {
    const char *name;
    size_t n;
    double bytes, est, var; /* live sampled: count, bytes; estimate of all live bytes */
} site_sum_t;

static site_sum_t *find(const site_sum_t *sums, size_t nsums, const char *name)
{
    for (size_t i = 0; i < nsums; i++)
        if (!strcmp(sums[i].name, name)) return (site_sum_t *)&sums[i];
    return NULL;
}

/* Per site: live sampled blocks and the weighted estimate of live bytes. */
static size_t summarize(const ls_snapshot_t *s, double rate, site_sum_t *sums, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nblocks; i++) {
        const ls_fmt_block_t *b = &s->blocks[i];
        SC_CHECK(b->kind == LS_KIND_UNCHECKED, "block %zu has kind %u in mode sample", i, b->kind);
        const char *name = sc_site(s, b->stack);
        site_sum_t *x = find(sums, n, name);
        if (!x && n < cap) {
            x = &sums[n++];
            memset(x, 0, sizeof(*x));
            x->name = name;
        }
        if (!x) continue;
        double p = sc_prob((double)b->size, rate);
        x->n++;
        x->bytes += (double)b->size;
        x->est += (double)b->size / p;
    }
    return n;
}

/* sd of the estimated bytes of n blocks of size s: sqrt(n s^2 (1-p)/p) */
static double sd_bytes(double n, double s, double rate)
{
    double p = sc_prob(s, rate);
    return sqrt(n * s * s * (1 - p) / p);
}

static void expect_est(const site_sum_t *sums, size_t n, const char *name, double truth,
                       double size, double count, double rate, double rel)
{
    const site_sum_t *x = find(sums, n, name);
    double est = x ? x->est : 0;
    double tol = rel > 0 ? rel * truth : 6 * sd_bytes(count, size, rate);
    printf("  %-8s live: %6zu sampled, est %9.3f MiB, truth %9.3f MiB (%+.1f%%, tolerance "
           "%.1f%%)\n",
           name, x ? x->n : 0, est / MIB, truth / MIB, 100 * (est - truth) / truth,
           100 * tol / truth);
    SC_CHECK(fabs(est - truth) <= tol, "%s: estimated %.0f bytes in use, truth %.0f", name, est,
             truth);
    if (x) {
        SC_CHECK(x->bytes == x->n * size,
                 "%s: sampled blocks of the wrong size (%.0f bytes in %zu)", name, x->bytes, x->n);
        /* the sampling probability itself: count ~ Binomial(count, p) */
        double p = sc_prob(size, rate), mean = count * p, sd = sqrt(count * p * (1 - p));
        SC_CHECK(fabs((double)x->n - mean) <= 6 * sd + 1, "%s: %zu sampled, expected %.1f", name,
                 x->n, mean);
    }
}

/* The SAMPLE_ALLOCS totals of a site: the sum over its stacks (a site called from two places
 * has two). */
static bool alloc_sum(const ls_snapshot_t *s, const ls_fmt_sample_alloc_t *r, size_t n,
                      const char *name, ls_fmt_sample_alloc_t *sum)
{
    memset(sum, 0, sizeof(*sum));
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(sc_site(s, r[i].stack), name)) continue;
        any = true;
        sum->samples += r[i].samples;
        sum->sampled_bytes += r[i].sampled_bytes;
        sum->est_objects += r[i].est_objects;
        sum->est_bytes += r[i].est_bytes;
    }
    return any;
}

static void expect_alloc(const ls_snapshot_t *s, const ls_fmt_sample_alloc_t *r, size_t n,
                         const char *name, double count, double size, double rate, double rel)
{
    ls_fmt_sample_alloc_t sum;
    const ls_fmt_sample_alloc_t *x = alloc_sum(s, r, n, name, &sum) ? &sum : NULL;
    double truth = count * size;
    double est = x ? x->est_bytes : 0, objs = x ? x->est_objects : 0;
    double tol = rel > 0 ? rel * truth : 6 * sd_bytes(count, size, rate);
    printf("  %-8s alloc: %6llu samples, est %9.3f MiB in %9.0f, truth %9.3f MiB in %9.0f\n", name,
           x ? (unsigned long long)x->samples : 0ull, est / MIB, objs, truth / MIB, count);
    SC_CHECK(fabs(est - truth) <= tol, "%s: estimated %.0f bytes allocated, truth %.0f", name, est,
             truth);
    SC_CHECK(fabs(objs - count) <= tol / size, "%s: estimated %.0f allocations, truth %.0f", name,
             objs, count);
    if (x)
        SC_CHECK(x->sampled_bytes == x->samples * (uint64_t)size,
                 "%s: %llu sampled bytes in %llu samples", name,
                 (unsigned long long)x->sampled_bytes, (unsigned long long)x->samples);
}

static int load(const char *path, ls_snapshot_t *s)
{
    char err[512];
    if (ls_snapshot_load(path, s, err, sizeof(err))) {
        fprintf(stderr, "FAIL: %s\n", err);
        sc_failures++;
        return -1;
    }
    return 0;
}

/* What every sample snapshot must be: META, stacks of SAMPLE_ALLOCS present. */
static void check_common(const ls_snapshot_t *s, double rate, const ls_fmt_sample_alloc_t **recs,
                         size_t *nrecs)
{
    SC_CHECK(s->version_major == 1 && s->version_minor >= 3, "format %u.%u", s->version_major,
             s->version_minor);
    SC_CHECK(s->mode && !strcmp(s->mode, "sample"), "META mode %s", s->mode ? s->mode : "(none)");
    SC_CHECK(!s->leak_checked, "a sample snapshot says it was leak-checked");
    SC_CHECK(sc_sample_rate(s) == (uint64_t)rate, "META sample_rate %llu, want %.0f",
             (unsigned long long)sc_sample_rate(s), rate);
    *recs = sc_sample_allocs(s, nrecs);
    SC_CHECK(*recs != NULL, "no SAMPLE_ALLOCS chunk");
    for (size_t i = 0; i < *nrecs; i++) {
        const ls_fmt_sample_alloc_t *r = &(*recs)[i];
        SC_CHECK(!r->stack || ls_snapshot_stack(s, r->stack),
                 "SAMPLE_ALLOCS stack %u not in STACKS", r->stack);
        SC_CHECK(r->samples > 0 && r->est_objects >= (double)r->samples &&
                     r->est_bytes >= (double)r->sampled_bytes,
                 "SAMPLE_ALLOCS record %zu inconsistent", i);
    }
}

/* B, D and the realloc chain are live in both `run` snapshots and at its exit. */
static void check_live_bcd(const site_sum_t *sums, size_t n, double rate, bool with_r)
{
    expect_est(sums, n, "site_b", NB * 64.0, 64, NB, rate, 0.10);
    expect_est(sums, n, "site_d", 8 * MIB, 8 * MIB, 1, rate, -1);
    const site_sum_t *c = find(sums, n, "site_c");
    SC_CHECK(!c, "%zu blocks of site_c live: its frees did not remove them", c ? c->n : 0);
    if (with_r) {
        expect_est(sums, n, "site_r2", NR * 12000.0, 12000, NR, rate, 0.10);
        SC_CHECK(!find(sums, n, "site_r0") && !find(sums, n, "site_r1"),
                 "a realloc'ed block is still listed under its old stack");
    }
}

static void check_allocs_bcd(const ls_snapshot_t *s, const ls_fmt_sample_alloc_t *r, size_t n,
                             double rate)
{
    expect_alloc(s, r, n, "site_b", NB, 64, rate, 0.10);
    expect_alloc(s, r, n, "site_c", NC, 1024, rate, 0.10);
    expect_alloc(s, r, n, "site_d", 1, 8 * MIB, rate, -1);
}

static int cmd_run(const char *dir, double rate)
{
    if (!ls_agent_active()) {
        fprintf(stderr, "run: needs the agent (LD_PRELOAD) in mode sample\n");
        return 2;
    }
    /* the heap */
    for (int i = 0; i < NA; i++) {
        site_a(i);
        if (!va[i]) oom();
        /* the whole usable size is the program's: the trailer must survive this */
        memset(va[i], 0x5a, malloc_usable_size(va[i]));
    }
    build_bcd();
    for (int i = 0; i < NR; i++) site_r0(i);
    for (int i = 0; i < NR; i++) site_r1(i);
    for (int i = 0; i < NR; i++) {
        site_r2(i);
        if (!vr[i]) oom();
        SC_CHECK(malloc_usable_size(vr[i]) >= 12000, "usable size %zu < 12000",
                 malloc_usable_size(vr[i]));
    }
    for (int i = 0; i < NF; i++) site_f(i);
    for (int i = 0; i < NG; i++) site_g(i);
    for (int i = 0; i < NH; i++) site_h(i);
    for (int i = 0; i < NM; i++) site_m(i);
    for (int i = 0; i < NV; i++) site_v(i);
    for (int i = 0; i < NF; i++)
        for (int k = 0; k < 2048; k++)
            if (((char *)vf[i])[k]) {
                SC_CHECK(0, "calloc'ed block %d not zero at %d", i, k);
                break;
            }
    for (int i = 0; i < NG; i++) SC_CHECK(((uintptr_t)vg[i] & 63) == 0, "posix_memalign");
    for (int i = 0; i < NH; i++) SC_CHECK(((uintptr_t)vh[i] & 4095) == 0, "aligned_alloc");
    for (int i = 0; i < NM; i++) SC_CHECK(((uintptr_t)vm[i] & 255) == 0, "memalign");
    for (int i = 0; i < NV; i++) SC_CHECK(((uintptr_t)vv[i] & 4095) == 0, "valloc");
    SC_CHECK(ls_leak_check(NULL) == -1, "ls_leak_check ran in mode sample");

    char path[4200];
    snprintf(path, sizeof(path), "%s/live1.lsnap", dir);
    SC_CHECK(ls_snapshot_write(path) == 0, "ls_snapshot_write %s", path);
    ls_snapshot_t s;
    if (load(path, &s)) return 1;
    const ls_fmt_sample_alloc_t *recs;
    size_t nrecs;
    check_common(&s, rate, &recs, &nrecs);
    site_sum_t sums[64];
    size_t n = summarize(&s, rate, sums, 64);
    printf("live1: %zu sampled blocks of %d live\n", s.nblocks,
           NA + NB + 1 + NR + NF + NG + NH + NM + NV);
    expect_est(sums, n, "site_a", NA * 4096.0, 4096, NA, rate, 0.10);
    check_live_bcd(sums, n, rate, true);
    expect_est(sums, n, "site_f", NF * 2048.0, 2048, NF, rate, -1);
    expect_est(sums, n, "site_g", NG * 3000.0, 3000, NG, rate, -1);
    expect_est(sums, n, "site_h", NH * 4096.0, 4096, NH, rate, -1);
    expect_est(sums, n, "site_m", NM * 5000.0, 5000, NM, rate, -1);
    expect_est(sums, n, "site_v", NV * 7000.0, 7000, NV, rate, -1);
    /* Nothing else: what the test's own libc calls left live is small. */
    double other = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        total += sums[i].est;
        if (strncmp(sums[i].name, "site_", 5)) other += sums[i].est;
    }
    printf("  other    live: est %.3f MiB of %.3f MiB\n", other / MIB, total / MIB);
    SC_CHECK(other < 0.01 * total, "%.0f bytes estimated at unknown sites", other);
    SC_CHECK(s.nblocks < (NA + NB) / 4, "%zu blocks listed: not a sample", s.nblocks);
    expect_alloc(&s, recs, nrecs, "site_a", NA, 4096, rate, 0.10);
    check_allocs_bcd(&s, recs, nrecs, rate);
    expect_alloc(&s, recs, nrecs, "site_r0", NR, 100, rate, -1);
    expect_alloc(&s, recs, nrecs, "site_r1", NR, 6000, rate, -1);
    expect_alloc(&s, recs, nrecs, "site_r2", NR, 12000, rate, 0.10);
    size_t a_sampled = find(sums, n, "site_a") ? find(sums, n, "site_a")->n : 0;
    ls_fmt_sample_alloc_t ra;
    uint64_t a_samples = alloc_sum(&s, recs, nrecs, "site_a", &ra) ? ra.samples : 0;
    SC_CHECK(a_samples == a_sampled, "site_a: %llu samples taken, %zu live",
             (unsigned long long)a_samples, a_sampled);
    size_t b_sampled = find(sums, n, "site_b") ? find(sums, n, "site_b")->n : 0;
    ls_snapshot_free(&s);

    /* Frees remove sampled blocks; the allocation totals stay. */
    for (int i = 0; i < NA; i++) free(va[i]);
    snprintf(path, sizeof(path), "%s/live2.lsnap", dir);
    SC_CHECK(ls_snapshot_write(path) == 0, "ls_snapshot_write %s", path);
    if (load(path, &s)) return 1;
    check_common(&s, rate, &recs, &nrecs);
    n = summarize(&s, rate, sums, 64);
    printf("live2 (site_a freed): %zu sampled blocks\n", s.nblocks);
    SC_CHECK(!find(sums, n, "site_a"), "site_a's sampled blocks survived their free");
    SC_CHECK(find(sums, n, "site_b") && find(sums, n, "site_b")->n == b_sampled,
             "site_b's sampled blocks changed");
    SC_CHECK(alloc_sum(&s, recs, nrecs, "site_a", &ra) && ra.samples == a_samples,
             "site_a's allocation totals changed");
    check_live_bcd(sums, n, rate, true);
    ls_snapshot_free(&s);
    printf("%s\n", sc_failures ? "FAILED" : "ok");
    return sc_failures ? 1 : 0; /* B, D, R2 and the others stay live for the exit snapshot */
}

static int cmd_check(const char *path, double rate)
{
    ls_snapshot_t s;
    if (load(path, &s)) return 1;
    const ls_fmt_sample_alloc_t *recs;
    size_t nrecs;
    check_common(&s, rate, &recs, &nrecs);
    site_sum_t sums[64];
    size_t n = summarize(&s, rate, sums, 64);
    ls_fmt_sample_alloc_t r2;
    bool from_run = alloc_sum(&s, recs, nrecs, "site_r2", &r2);
    printf("%s (trigger %s): %zu sampled blocks\n", path, s.trigger ? s.trigger : "?", s.nblocks);
    check_live_bcd(sums, n, rate, from_run);
    check_allocs_bcd(&s, recs, nrecs, rate);
    SC_CHECK(!find(sums, n, "site_a"), "site_a's blocks are live");
    ls_snapshot_free(&s);
    printf("%s\n", sc_failures ? "FAILED" : "ok");
    return sc_failures ? 1 : 0;
}

/* busy: a small malloc/free every tick, as a live process does; mode sample's lazy control
 * thread is created at such a call (ls_control.c), so an idle hold is served only with
 * control_lazy=0. */
static int cmd_hold(const char *dir, bool busy)
{
    build_bcd();
    char path[4200];
    snprintf(path, sizeof(path), "%s/ready", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fclose(f);
    snprintf(path, sizeof(path), "%s/stop", dir);
    for (int i = 0; i < 6000 && access(path, F_OK) != 0; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        if (busy) {
            vc = malloc(32);
            free(vc);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "run")) return cmd_run(argv[2], atof(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "check")) return cmd_check(argv[2], atof(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "hold")) return cmd_hold(argv[2], false);
    if (argc == 3 && !strcmp(argv[1], "hold-busy")) return cmd_hold(argv[2], true);
    if (argc == 3 && !strcmp(argv[1], "meta-rate")) { /* prints META sample_rate */
        ls_snapshot_t s;
        if (load(argv[2], &s)) return 1;
        printf("%llu\n", (unsigned long long)sc_sample_rate(&s));
        ls_snapshot_free(&s);
        return 0;
    }
    fprintf(
        stderr,
        "usage: sample_sites run DIR RATE | check FILE RATE | hold[-busy] DIR | meta-rate FILE\n");
    return 2;
}
