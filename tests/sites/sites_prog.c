/*
 * sites_prog.c - deterministic allocation patterns for the mode sites tests. Every site is its
 * own noinline function, so a site is named by the function of its innermost frame. Each
 * scenario writes what it expects per function to EXPECT_FILE ("func live_bytes live_blocks
 * allocs bytes" lines; allocs and bytes -1 when only live counts are checked), and check_sites.py
 * compares that with `leakscope sites --format json` of the snapshot (and, for exact, with the
 * mode full snapshot of the same run).
 *
 *   sites_prog exact EXPECT_FILE     several sites, frees, reallocs, calloc, aligned, 2 threads
 *                                    freeing each other's blocks
 *   sites_prog threads EXPECT_FILE   8 threads x 100k alloc/free across sites
 *   sites_prog toggle EXPECT_FILE    counting switched off and on (ls_sites_enable)
 *   sites_prog signal EXPECT_FILE    the same, switched by raise(SIGUSR1) (sites_signal=10)
 *   sites_prog frames2 EXPECT_FILE   two callers of one wrapper
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leakscope.h"

#define NOINL __attribute__((noinline))

static FILE *expect;
static int use_signal;

static void want(const char *fn, long long lb, long long lk, long long al, long long by)
{
    fprintf(expect, "%s %lld %lld %lld %lld\n", fn, lb, lk, al, by);
}

static void *volatile sink; /* keeps the compiler from pairing malloc with free */

NOINL static void *site_a(size_t n)
{
    void *p = malloc(n);
    sink = p;
    return p;
}
NOINL static void *site_b(size_t n)
{
    void *p = calloc(n, 4);
    sink = p;
    return p;
}
NOINL static void *site_c(void *p, size_t n)
{
    void *q = realloc(p, n);
    sink = q;
    return q;
}
NOINL static void *site_d(size_t align, size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, align, n)) abort();
    sink = p;
    return p;
}
NOINL static void *site_e(size_t align, size_t n)
{
    void *p = aligned_alloc(align, n);
    sink = p;
    return p;
}
NOINL static void *site_f(size_t n)
{
    void *p = memalign(64, n);
    sink = p;
    return p;
}
NOINL static void *site_g(size_t n)
{
    void *p = malloc(n);
    sink = p;
    return p;
}

/* ---- exact ---------------------------------------------------------------------------------- */
#define XN 200
static void *xa[XN], *xg[XN];

static void *thread_g(void *arg)
{
    (void)arg;
    for (int i = 0; i < XN; i++) xg[i] = site_g(40 + (size_t)i);
    return NULL;
}
static void *thread_free_a(void *arg)
{
    (void)arg;
    for (int i = 0; i < XN; i += 2) free(xa[i]); /* blocks of the main thread */
    return NULL;
}

static int run_exact(void)
{
    long long a_lb = 0, a_lk = 0, c_lb = 0, c_lk = 0;
    /* site_a: 200 blocks, the even ones freed on another thread */
    for (int i = 0; i < XN; i++) xa[i] = site_a(16 + (size_t)i * 3);
    pthread_t t;
    pthread_create(&t, NULL, thread_free_a, NULL);
    pthread_join(t, NULL);
    for (int i = 1; i < XN; i += 2) a_lb += 16 + i * 3, a_lk++;
    /* site_g: allocated on a thread, a third freed here */
    pthread_create(&t, NULL, thread_g, NULL);
    pthread_join(t, NULL);
    long long lb = 0, lk = 0;
    for (int i = 0; i < XN; i++)
        if (i % 3 == 0)
            free(xg[i]);
        else
            lb += 40 + i, lk++;
    want("site_g", lb, lk, XN, -1);
    /* site_b: calloc, some freed */
    void *b[50];
    lb = 0;
    for (int i = 0; i < 50; i++) b[i] = site_b((size_t)i + 1);
    for (int i = 0; i < 50; i++)
        if (i % 5)
            lb += (i + 1) * 4;
        else
            free(b[i]);
    want("site_b", lb, 40, 50, -1);
    /* site_c: realloc of site_a blocks (the old block leaves site_a), realloc(NULL), shrink,
     * realloc(p, 0) */
    for (int i = 1; i < 21; i += 2) {
        a_lb -= 16 + i * 3, a_lk--;
        xa[i] = site_c(xa[i], 1000 + (size_t)i);
        c_lb += 1000 + i, c_lk++;
    }
    void *c1 = site_c(NULL, 77);
    c1 = site_c(c1, 33);
    c_lb += 33, c_lk++;
    void *c2 = site_c(NULL, 500);
    site_c(c2, 0); /* frees */
    want("site_a", a_lb, a_lk, XN, -1);
    /* aligned: posix_memalign 16 and 256, aligned_alloc 4096, memalign 64; realloc of one */
    void *d1 = site_d(16, 100), *d2 = site_d(256, 300), *d3 = site_d(256, 5);
    free(d3);
    want("site_d", 400, 2, 3, 405);
    void *e1 = site_e(4096, 4096), *e2 = site_e(4096, 8192);
    free(e2);
    want("site_e", 4096, 1, 2, 4096 + 8192);
    void *f1 = site_f(123);
    void *f2 = site_f(200);
    f2 = site_c(f2, 250); /* an over-aligned block moved by realloc */
    c_lb += 250, c_lk++;
    want("site_f", 123, 1, 2, 323);
    want("site_c", c_lb, c_lk, 14, -1); /* realloc(p, 0) is a free */
    if (((unsigned long)d2 & 255) || ((unsigned long)e1 & 4095) || ((unsigned long)f1 & 63) ||
        ((unsigned long)d1 & 15))
        return 1;
    if (malloc_usable_size(d2) < 300 || malloc_usable_size(f1) < 123 ||
        malloc_usable_size(e1) < 4096)
        return 1;
    return 0;
}

/* ---- threads -------------------------------------------------------------------------------- */
#define TN 8
#define TI 100000
static void *thread_churn(void *arg)
{
    long id = (long)arg;
    void *ring[8] = {0};
    for (int i = 0; i < TI; i++) {
        free(ring[i & 7]);
        ring[i & 7] = (i & 1) ? site_a(24 + (size_t)(i & 15)) : site_g(8 + (size_t)id);
    }
    /* the last 8 stay: i = TI-8 .. TI-1 */
    return NULL;
}

static int run_threads(void)
{
    pthread_t t[TN];
    for (long i = 0; i < TN; i++) pthread_create(&t[i], NULL, thread_churn, (void *)i);
    for (int i = 0; i < TN; i++) pthread_join(t[i], NULL);
    long long a_lb = 0, a_by = 0, g_lb = 0, g_by = 0;
    for (long id = 0; id < TN; id++)
        for (int i = 0; i < TI; i++) {
            long long sa = 24 + (i & 15), sg = 8 + id;
            if (i & 1) {
                a_by += sa;
                if (i >= TI - 8) a_lb += sa;
            } else {
                g_by += sg;
                if (i >= TI - 8) g_lb += sg;
            }
        }
    want("site_a", a_lb, TN * 4, (long long)TN * TI / 2, a_by);
    want("site_g", g_lb, TN * 4, (long long)TN * TI / 2, g_by);
    return 0;
}

/* ---- toggle --------------------------------------------------------------------------------- */
static void set_counting(int on)
{
    if (use_signal) {
        int was = ls_sites_enable(on); /* to learn the state; put it back, then toggle by signal */
        ls_sites_enable(was);
        if (was != on) raise(SIGUSR1);
    } else {
        ls_sites_enable(on);
    }
}

static int run_toggle(void)
{
    if (ls_sites_enable(1) != 0) return 1; /* started with sites_enabled=0 */
    set_counting(0);
    void *off[10];
    for (int i = 0; i < 10; i++) off[i] = site_a(100); /* never charged */
    void *w = site_g(64);                              /* never charged... until realloc'd on */
    set_counting(1);
    for (int i = 0; i < 10; i++) free(off[i]); /* changes nothing */
    void *on[10];
    for (int i = 0; i < 10; i++) on[i] = site_b(10); /* 40 bytes each */
    void *z = site_f(48);
    void *y = site_a(7);
    w = site_c(w, 80); /* an uncharged block becomes a charged one at site_c */
    set_counting(0);
    for (int i = 0; i < 5; i++) free(on[i]); /* charged, freed while off: uncharged */
    z = site_c(z, 96);                       /* leaves site_f, the new block uncounted */
    void *y2 = site_a(1000);                 /* uncounted */
    set_counting(1);
    free(y2);
    (void)y, (void)w, (void)z;
    want("site_a", 7, 1, 1, 7);
    want("site_b", 200, 5, 10, 400);
    want("site_f", 0, 0, 1, 48);
    want("site_c", 80, 1, 1, 80);
    want("site_g", 0, 0, 0, 0);
    return 0;
}

/* ---- frames2 -------------------------------------------------------------------------------- */
NOINL static void *wrapper(size_t n)
{
    void *p = malloc(n);
    sink = p;
    return p;
}
NOINL static void caller_one(void)
{
    for (int i = 0; i < 3; i++) wrapper(11);
    __asm__ volatile("" ::: "memory");
}
NOINL static void caller_two(void)
{
    for (int i = 0; i < 5; i++) wrapper(13);
    __asm__ volatile("" ::: "memory");
}

static int run_frames2(void)
{
    caller_one();
    caller_two();
    want("wrapper<-caller_one", 33, 3, 3, 33);
    want("wrapper<-caller_two", 65, 5, 5, 65);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: sites_prog exact|threads|toggle|signal|frames2 EXPECT_FILE\n");
        return 2;
    }
    expect = fopen(argv[2], "w+");
    if (!expect) return 2;
    int rc;
    if (!strcmp(argv[1], "exact"))
        rc = run_exact();
    else if (!strcmp(argv[1], "threads"))
        rc = run_threads();
    else if (!strcmp(argv[1], "toggle"))
        rc = run_toggle();
    else if (!strcmp(argv[1], "signal"))
        use_signal = 1, rc = run_toggle();
    else if (!strcmp(argv[1], "frames2"))
        rc = run_frames2();
    else
        rc = 2;
    fclose(expect);
    return rc;
}
