/*
 * unwind_bench.c - what one captured stack costs: ls__unwind_fast (our cached CFI unwinder),
 * ls__unwind_libunwind (unw_backtrace, per-thread caching) and ls__unwind_fp (RBP chain), at
 * about 10, 30 and 60 frames, through -O2 -fomit-frame-pointer code in a shared library and
 * through real Debian libraries (libc qsort and twalk, zlib's zalloc callback).
 *
 * Each number is the median over REPS runs of ITERS back-to-back captures from one call site
 * (rules warm in L1), in ns per stack and ns per frame. The "L1 evicted" columns touch 64 KiB
 * between captures, as a program does between mallocs, and time each capture with rdtscp.
 * Also: cost of a cache miss (rule compiled from .eh_frame), two threads at once, hit rates.
 *
 * Usage: unwind_bench [iters]   (default 20000; the whole run takes ~20 s)
 */
#define _GNU_SOURCE
#include "ls_unwind.h"
#include "unwind_bench_lib.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXF 256
#define REPS 7

static int g_iters = 20000;
static __thread uintptr_t t_hi;
static volatile char g_junk[64 << 10];

/* Thread CPU time: time the thread spent descheduled on a busy machine does not count. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The three captures, each shaped like the agent's malloc hook: a frame-pointer function that
 * unwinds from its caller. */
static __attribute__((noinline)) size_t cap_fast(uintptr_t *pcs)
{
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    return ls__unwind_fast(&f, t_hi, pcs, MAXF);
}

static __attribute__((noinline)) size_t cap_lu(uintptr_t *pcs)
{
    size_t n = ls__unwind_libunwind(pcs, MAXF, 1);
    __asm__ volatile("" : : : "memory"); /* no tail call: skip = 1 counts this frame */
    return n;
}

static __attribute__((noinline)) size_t cap_fp(uintptr_t *pcs)
{
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    return ls__unwind_fp(&f, t_hi, pcs, MAXF);
}

static __attribute__((noinline)) size_t cap_none(uintptr_t *pcs)
{
    __asm__ volatile("" : : "r"(pcs) : "memory");
    return 0;
}

typedef size_t (*cap_fn_t)(uintptr_t *pcs);
static const cap_fn_t g_caps[3] = {cap_fast, cap_lu, cap_fp};
static const char *const g_cap_names[3] = {"fast", "libunwind", "frame pointers"};

static void pollute(void)
{
    for (size_t i = 0; i < sizeof g_junk; i += 64) g_junk[i]++;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return v[n / 2];
}

static double time_cap(cap_fn_t fn)
{
    uintptr_t pcs[MAXF];
    double s[REPS];
    for (int i = 0; i < 200; i++) fn(pcs); /* warm the rules */
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = now_ns();
        for (int i = 0; i < g_iters; i++) fn(pcs);
        s[r] = (double)(now_ns() - t0) / g_iters;
    }
    return median(s, REPS);
}

static double g_tsc_per_ns;

/* With 64 KiB touched before each capture (as a program does between mallocs): the capture
 * alone is timed with rdtscp, minus the same pair around an empty call. */
static double time_cap_evicted(cap_fn_t fn)
{
    uintptr_t pcs[MAXF];
    double s[REPS];
    const int iters = g_iters / 8;
    unsigned aux;
    for (int r = 0; r < REPS; r++) {
        uint64_t with = 0, without = 0;
        for (int i = 0; i < iters; i++) {
            pollute();
            uint64_t t0 = __builtin_ia32_rdtscp(&aux);
            cap_none(pcs);
            uint64_t t1 = __builtin_ia32_rdtscp(&aux);
            pollute();
            uint64_t t2 = __builtin_ia32_rdtscp(&aux);
            fn(pcs);
            uint64_t t3 = __builtin_ia32_rdtscp(&aux);
            without += t1 - t0;
            with += t3 - t2;
        }
        s[r] = ((double)with - (double)without) / iters / g_tsc_per_ns;
    }
    return median(s, REPS);
}

static void calibrate_tsc(void)
{
    struct timespec a, b;
    unsigned aux;
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint64_t t0 = __builtin_ia32_rdtscp(&aux);
    do clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec) < 100000000);
    uint64_t t1 = __builtin_ia32_rdtscp(&aux);
    g_tsc_per_ns =
        (double)(t1 - t0) / (double)((b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec));
}

typedef struct row {
    const char *name;
    bool fp_valid, cold;
    size_t frames[3];
    double ns[3], ns_cold[3];
    bool agree;
    size_t fp_prefix; /* frames the frame-pointer walk got right */
} row_t;

/* Runs at the bottom of the chain. pcs[0] differs between the captures (each is called from
 * its own call site in here), so agreement is checked from frame 1 on. */
static void measure(void *arg)
{
    row_t *r = arg;
    uintptr_t a[MAXF], b[MAXF], c[MAXF];
    size_t na = cap_fast(a), nb = cap_lu(b), nc = cap_fp(c);
    r->frames[0] = na, r->frames[1] = nb, r->frames[2] = nc;
    r->agree = na == nb && na > 1 && !memcmp(a + 1, b + 1, (na - 1) * sizeof a[0]);
    r->fp_prefix = 1;
    while (r->fp_prefix < na && r->fp_prefix < nc && a[r->fp_prefix] == c[r->fp_prefix])
        r->fp_prefix++;
    for (int m = 0; m < 3; m++) r->ns[m] = time_cap(g_caps[m]);
    if (r->cold)
        for (int m = 0; m < 2; m++) r->ns_cold[m] = time_cap_evicted(g_caps[m]);
}

static void count_frames(void *arg)
{
    uintptr_t a[MAXF];
    *(size_t *)arg = cap_fast(a);
}

typedef int (*chain_fn_t)(int depth, int mode, ubl_cb_t cb, void *arg);

/* The recursion depth that makes the whole stack about `frames` long, or -1. */
static int depth_for(chain_fn_t chain, int mode, size_t frames)
{
    size_t base = 0;
    chain(1, mode, count_frames, &base);
    return base && frames >= base ? (int)(frames - base) + 1 : -1;
}

static void print_row(const row_t *r)
{
    size_t n = r->frames[0];
    printf("| %-22s | %3zu |", r->name, n);
    for (int m = 0; m < 3; m++) {
        if (m == 2 && !r->fp_valid)
            printf(" %5s | %5s |", "-", "-");
        else
            printf(" %5.0f | %5.1f |", r->ns[m], r->ns[m] / (double)n);
    }
    if (r->cold)
        printf(" %5.0f | %5.0f |", r->ns_cold[0], r->ns_cold[1]);
    else
        printf(" %5s | %5s |", "", "");
    printf(" %s", r->agree ? "same" : "DIFFER");
    if (r->fp_valid) printf(", fp walk right for %zu", r->fp_prefix);
    printf("\n");
    fflush(stdout);
}

static void *bench_thread(void *arg)
{
    row_t *r = arg;
    t_hi = ls__unwind_stack_top((uintptr_t)__builtin_frame_address(0));
    int d = depth_for(ubl_recurse, UBL_DIRECT, 30);
    ubl_recurse(d, UBL_DIRECT, measure, r);
    return NULL;
}

/* Cost of compiling rules: walk once right after forgetting every rule. */
static void measure_misses(void *arg)
{
    double *per_miss = arg, s[21];
    uintptr_t pcs[MAXF];
    for (int i = 0; i < 21; i++) {
        ls_uw_stats_t a, b;
        ls__unwind_modules_changed();
        ls__unwind_stats(&a);
        uint64_t t0 = now_ns();
        cap_fast(pcs);
        uint64_t t1 = now_ns();
        ls__unwind_stats(&b);
        s[i] = (double)(t1 - t0) / (double)(b.misses - a.misses ? b.misses - a.misses : 1);
    }
    *per_miss = median(s, 21);
}

int main(int argc, char **argv)
{
    if (argc > 1) g_iters = atoi(argv[1]) > 100 ? atoi(argv[1]) : 100;
    ls__unwind_init();
    const char *why = "";
    if (!ls__unwind_libunwind_load(&why)) { /* dlopen'd, as in the agent */
        fprintf(stderr, "unwind_bench: cannot load libunwind: %s\n", why);
        return 1;
    }
    calibrate_tsc();
    t_hi = ls__unwind_stack_top((uintptr_t)__builtin_frame_address(0));

    struct {
        const char *name;
        chain_fn_t chain;
        int mode;
        bool fp_valid;
    } scen[] = {
        {"nofp lib", ubl_recurse, UBL_DIRECT, false},
        /* The frame-pointer walk is right up to main; libc's start code has no frame pointer. */
        {"fp lib", ublfp_recurse, UBL_DIRECT, true},
        {"nofp lib + libc qsort", ubl_recurse, UBL_QSORT, false},
        {"nofp lib + libc twalk", ubl_recurse, UBL_TWALK, false},
        {"nofp lib + zlib zalloc", ubl_recurse, UBL_ZLIB, false},
    };
    static const size_t targets[] = {10, 30, 60};

    printf("# unwind_bench: %d captures x %d runs per cell, median; ns per stack | ns per frame\n",
           g_iters, REPS);
    printf("| %-22s | %3s | %13s | %13s | %13s | %13s | %s\n", "stack", "n", g_cap_names[0],
           g_cap_names[1], g_cap_names[2], "L1 evicted", "fast vs libunwind");
    printf("| %-22s | %3s | %5s | %5s | %5s | %5s | %5s | %5s | %5s | %5s | %s\n", "", "", "stack",
           "frame", "stack", "frame", "stack", "frame", "fast", "lu", "");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t s = 0; s < sizeof scen / sizeof scen[0]; s++) {
        for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
            int d = depth_for(scen[s].chain, scen[s].mode, targets[t]);
            if (d < 1) continue;
            row_t r = {.name = scen[s].name, .fp_valid = scen[s].fp_valid, .cold = true};
            scen[s].chain(d, scen[s].mode, measure, &r);
            print_row(&r);
        }
    }

    /* Two threads at once on two cores: the shared cache is read-only when warm. */
    row_t tr[2] = {{.name = "nofp lib, 2 threads"}, {.name = "nofp lib, 2 threads"}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, bench_thread, &tr[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) print_row(&tr[i]);

    double per_miss = 0;
    ubl_recurse(depth_for(ubl_recurse, UBL_QSORT, 30), UBL_QSORT, measure_misses, &per_miss);
    ls_uw_stats_t st;
    ls__unwind_stats(&st);
    printf("\nmiss (rule compiled from .eh_frame): %.0f ns per distinct PC, median of 21 cold "
           "walks\n",
           per_miss);
    printf("stats: hits %lu, misses %lu (%.4f%%), no_rule %lu, bad_cfa %lu\n",
           (unsigned long)st.hits, (unsigned long)st.misses,
           100.0 * (double)st.misses / (double)(st.hits + st.misses + 1), (unsigned long)st.no_rule,
           (unsigned long)st.bad_cfa);
    return 0;
}
