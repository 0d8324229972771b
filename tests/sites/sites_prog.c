/*
 * sites_prog.c - deterministic allocation patterns for the mode sites tests. Every site is its
 * own noinline function, so a site is named by the function of its innermost frame. Each
 * scenario writes what it expects per function to EXPECT_FILE ("func live_bytes live_blocks
 * allocs bytes" lines; -1 when a figure is not checked, LO..HI when only bounds are known), and
 * check_sites.py compares that with `leakscope sites --format json` of the snapshot (and, for
 * exact, with the mode full snapshot of the same run). A "%p" in EXPECT_FILE stands for the pid
 * of the process that writes it (fork: one file per process, like the agent's output=...%p...).
 *
 *   sites_prog exact EXPECT_FILE     several sites, frees, reallocs, calloc, aligned, 2 threads
 *                                    freeing each other's blocks
 *   sites_prog threads EXPECT_FILE   8 threads x 100k alloc/free across sites
 *   sites_prog toggle EXPECT_FILE    counting switched off and on (ls_sites_enable)
 *   sites_prog signal EXPECT_FILE    the same, switched by raise(SIGUSR1) (sites_signal=10)
 *   sites_prog frames2 EXPECT_FILE   two callers of one wrapper
 *   sites_prog fork EXPECT_FILE      the child inherits the parent's counted blocks, frees and
 *                                    reallocs some of them; the parent is untouched by the child
 *   sites_prog forkthread EXPECT_FILE  the same, forked by a second thread while the main thread
 *                                    holds counted blocks; the child then starts a thread
 *   sites_prog exits EXPECT_FILE     threads that end otherwise than by returning: C11 thrd_exit,
 *                                    pthread_exit deep down, blocks freed after their thread
 *                                    exited, a TLS destructor that allocates, 50 short threads
 *   sites_prog mainexit EXPECT_FILE  main leaves by pthread_exit, the last thread exits
 *   sites_prog race EXPECT_FILE      2 threads toggle counting while 2 others allocate and free
 *   sites_prog live EXPECT_FILE      4 threads churn until told (stdin "park"); the counts when
 *                                    parked to EXPECT_FILE, those at exit to EXPECT_FILE.exit
 *                                    (driven by live_sites.py)
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <threads.h>
#include <unistd.h>

#include "leakscope.h"

#define NOINL __attribute__((noinline))

static FILE *expect;
static const char *expect_path;
static int use_signal;

static void want(const char *fn, long long lb, long long lk, long long al, long long by)
{
    fprintf(expect, "%s %lld %lld %lld %lld\n", fn, lb, lk, al, by);
}

/* A figure known only within [lo, hi]. */
static void want_range(const char *fn, long long lb, long long lk, long long al_lo, long long al_hi,
                       long long by_lo, long long by_hi)
{
    fprintf(expect, "%s %lld %lld %lld..%lld %lld..%lld\n", fn, lb, lk, al_lo, al_hi, by_lo, by_hi);
}

/* Opens expect_path (its %p: this process's pid) followed by suffix. */
static FILE *expect_open(const char *suffix)
{
    char path[4096];
    const char *p = strstr(expect_path, "%p");
    if (p)
        snprintf(path, sizeof(path), "%.*s%d%s%s", (int)(p - expect_path), expect_path,
                 (int)getpid(), p + 2, suffix);
    else
        snprintf(path, sizeof(path), "%s%s", expect_path, suffix);
    return fopen(path, "w");
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

/* ---- fork ----------------------------------------------------------------------------------- */
#define FA 100
#define FB 30
#define FG 20
static void *fa[FA], *fb[FB], *fg[FG];

static void *child_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++) site_e(64, 128); /* on a recycled shard, if any */
    for (int i = 0; i < 5; i++) free(fg[i]);     /* blocks of the child's first thread */
    return NULL;
}

/* The child: everything the parent had counted is in its heap and in its counters. */
static void fork_child_side(int with_thread)
{
    fclose(expect); /* the parent's (flushed before the fork) */
    expect = expect_open("");
    if (!expect) exit(2);
    for (int i = 0; i < FA; i += 2) free(fa[i]);
    for (int i = 0; i < FB; i += 3) fb[i] = site_c(fb[i], 500 + (size_t)i); /* leave site_b */
    for (int i = 0; i < FG; i++) fg[i] = site_g(64);
    if (with_thread) {
        pthread_t t;
        pthread_create(&t, NULL, child_thread, NULL);
        pthread_join(t, NULL);
    }
    long long lb = 0, by = 0, cb = 0;
    for (int i = 0; i < FA; i++) by += 16 + i, lb += (i & 1) ? 16 + i : 0;
    want("site_a", lb, FA / 2, FA, by);
    lb = by = 0;
    for (int i = 0; i < FB; i++) by += 4 * (i + 1), lb += (i % 3) ? 4 * (i + 1) : 0;
    for (int i = 0; i < FB; i += 3) cb += 500 + i;
    want("site_b", lb, FB - FB / 3, FB, by);
    want("site_c", cb, FB / 3, FB / 3, cb);
    int gone = with_thread ? 5 : 0;
    want("site_g", 64 * (FG - gone), FG - gone, FG, 64 * FG);
    want("site_e", with_thread ? 5 * 128 : 0, with_thread ? 5 : 0, with_thread ? 5 : 0,
         with_thread ? 5 * 128 : 0);
    want("site_d", 0, 0, 0, 0);
    fclose(expect);
    exit(0); /* the agent writes the child's own snapshot */
}

/* Forks, waits for the child; returns its exit status or -1. */
static int fork_and_wait(int with_thread)
{
    fflush(expect);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) fork_child_side(with_thread);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static void *forking_thread(void *arg)
{
    for (int i = 0; i < FB; i++) fb[i] = site_b((size_t)i + 1);
    *(int *)arg = fork_and_wait(1);
    return NULL;
}

static int run_fork(int from_thread)
{
    for (int i = 0; i < FA; i++) fa[i] = site_a(16 + (size_t)i);
    int rc;
    if (from_thread) { /* site_b on the second thread, site_a on the main thread's shard */
        pthread_t t;
        pthread_create(&t, NULL, forking_thread, &rc);
        pthread_join(t, NULL);
    } else {
        for (int i = 0; i < FB; i++) fb[i] = site_b((size_t)i + 1);
        rc = fork_and_wait(0);
    }
    if (rc != 0) return 1;
    for (int i = 0; i < 4; i++) site_d(256, 1000);
    long long by = 0, bb = 0;
    for (int i = 0; i < FA; i++) by += 16 + i;
    for (int i = 0; i < FB; i++) bb += 4 * (i + 1);
    want("site_a", by, FA, FA, by);
    want("site_b", bb, FB, FB, bb);
    want("site_c", 0, 0, 0, 0);
    want("site_g", 0, 0, 0, 0);
    want("site_e", 0, 0, 0, 0);
    want("site_d", 4000, 4, 4, 4000);
    return 0;
}

/* ---- exits ---------------------------------------------------------------------------------- */
static void *ex_a[50], *ex_b[20], *ex_g[64], *ex_f[10], *ex_d;
static tss_t ex_key;

static int c11_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) ex_a[i] = site_a(100 + (size_t)i);
    for (int i = 0; i < 10; i++) free(ex_a[i]);
    thrd_exit(7); /* 40 blocks still held */
}

NOINL static void leave_now(void)
{
    pthread_exit((void *)5);
}

static void *pexit_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) ex_b[i] = site_b(8);
    leave_now();
    return NULL;
}

static void *g_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 64; i++) ex_g[i] = site_g(200);
    return NULL;
}

static void *g_freer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 64; i++)
        if (i % 4) free(ex_g[i]); /* blocks of a thread that has exited */
    for (int i = 0; i < 10; i++) ex_f[i] = site_f(300);
    return NULL;
}

/* Runs after the agent's own key destructor (keys run in creation order): the thread's shard
 * is folded in already, so these go to the retired shard. */
static void tls_dtor(void *v)
{
    free(v);
    ex_d = site_d(32, 48);
}

static void *tls_thread(void *arg)
{
    (void)arg;
    tss_set(ex_key, site_c(NULL, 70));
    site_d(32, 48);
    return NULL;
}

static void *short_thread(void *arg)
{
    (void)arg;
    void *p[4];
    for (int i = 0; i < 4; i++) p[i] = site_e(16, 24);
    for (int i = 1; i < 4; i++) free(p[i]);
    return NULL;
}

static int run_exits(void)
{
    thrd_t ct;
    int res = 0;
    if (thrd_create(&ct, c11_thread, NULL) != thrd_success || thrd_join(ct, &res) != thrd_success ||
        res != 7)
        return 1;
    pthread_t t;
    void *ret = NULL;
    pthread_create(&t, NULL, pexit_thread, NULL);
    pthread_join(t, &ret);
    if (ret != (void *)5) return 1;
    pthread_create(&t, NULL, g_thread, NULL);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, g_freer, NULL);
    pthread_join(t, NULL);
    for (int i = 0; i < 5; i++) free(ex_f[i]);
    if (tss_create(&ex_key, tls_dtor) != thrd_success) return 1;
    pthread_create(&t, NULL, tls_thread, NULL);
    pthread_join(t, NULL);
    if (!ex_d) return 1;
    for (int i = 0; i < 50; i++) {
        pthread_create(&t, NULL, short_thread, NULL);
        pthread_join(t, NULL);
    }
    long long lb = 0, by = 0;
    for (int i = 0; i < 50; i++) by += 100 + i, lb += i >= 10 ? 100 + i : 0;
    want("site_a", lb, 40, 50, by);
    want("site_b", 20 * 32, 20, 20, 20 * 32);
    want("site_g", 16 * 200, 16, 64, 64 * 200);
    want("site_f", 5 * 300, 5, 10, 10 * 300);
    want("site_c", 0, 0, 1, 70);
    want("site_d", 96, 2, 2, 96);
    want("site_e", 50 * 24, 50, 200, 200 * 24);
    return 0;
}

/* ---- mainexit ------------------------------------------------------------------------------ */
/* The main thread leaves by pthread_exit holding counted blocks (its key destructors run, unlike
 * at a return from main); the last thread's end exits the process: exit(0), the agent's snapshot.
 */
static pthread_t main_thread;

static void *last_thread(void *arg)
{
    (void)arg;
    if (pthread_join(main_thread, NULL)) exit(3);
    for (int i = 0; i < 30; i += 3) free(ex_a[i]); /* the main thread's blocks */
    for (int i = 0; i < 12; i++) site_g(32);
    long long lb = 0, by = 0;
    for (int i = 0; i < 30; i++) by += 50 + i, lb += i % 3 ? 50 + i : 0;
    want("site_a", lb, 20, 30, by);
    want("site_g", 12 * 32, 12, 12, 12 * 32);
    fclose(expect);
    return NULL;
}

static int run_mainexit(void)
{
    for (int i = 0; i < 30; i++) ex_a[i] = site_a(50 + (size_t)i);
    main_thread = pthread_self();
    pthread_t t;
    if (pthread_create(&t, NULL, last_thread, NULL)) return 1;
    pthread_exit(NULL);
}

/* ---- race ----------------------------------------------------------------------------------- */
#define RI   100000
#define RMIN 1000 /* locked allocations each allocator makes with counting on, and off */
typedef struct race_ctr {
    long long al_a, by_a, al_c, by_c, off;        /* under the lock: known exactly */
    long long sure_g, sure_by, maybe_g, maybe_by; /* lock-free: known unless a toggle overlapped */
} race_ctr_t;

static pthread_rwlock_t race_lock;
static _Atomic unsigned race_gen;   /* odd while a toggle is under way */
static _Atomic int race_shadow = 1; /* counting as the togglers set it */
static _Atomic int race_done, race_bad;
static _Atomic long race_toggles;

static void *toggler(void *arg)
{
    (void)arg;
    while (atomic_load(&race_done) < 2) {
        pthread_rwlock_wrlock(&race_lock);
        atomic_fetch_add(&race_gen, 1);
        int on = !atomic_load(&race_shadow);
        if (ls_sites_enable(on) != !on) atomic_fetch_add(&race_bad, 1);
        atomic_store(&race_shadow, on);
        atomic_fetch_add(&race_gen, 1);
        pthread_rwlock_unlock(&race_lock);
        atomic_fetch_add(&race_toggles, 1);
        for (volatile int i = 0; i < 200; i++) {
        } /* let the allocators in */
    }
    return NULL;
}

static void *race_allocator(void *arg)
{
    race_ctr_t *c = arg;
    void *ring[5] = {0}; /* 5: a slot holds blocks of every site in turn, recent ones */
    /* At least RI rounds, and on until both states were met often (the scheduler may keep the
     * togglers off the CPU for a while). */
    for (int i = 0; i < RI || ((c->al_a + c->al_c < RMIN || c->off < RMIN) && i < 50 * RI); i++) {
        void **slot = &ring[i % 5];
        size_t size = 8 + (size_t)(i & 63);
        if (i & 1) { /* the togglers wait: the state is known */
            pthread_rwlock_rdlock(&race_lock);
            int on = atomic_load(&race_shadow);
            if ((i & 3) == 3 && *slot) {
                *slot = site_c(*slot, size); /* the old block leaves its site, counted or not */
                if (on) c->al_c++, c->by_c += (long long)size;
                c->off += !on;
            } else {
                free(*slot);
                *slot = site_a(size);
                if (on) c->al_a++, c->by_a += (long long)size;
                c->off += !on;
            }
            pthread_rwlock_unlock(&race_lock);
        } else { /* racing the togglers: the state is known when no toggle overlapped */
            free(*slot);
            unsigned g1 = atomic_load_explicit(&race_gen, memory_order_acquire);
            int on = atomic_load_explicit(&race_shadow, memory_order_relaxed);
            *slot = site_g(size);
            atomic_thread_fence(memory_order_acquire);
            unsigned g2 = atomic_load_explicit(&race_gen, memory_order_relaxed);
            if (g1 != g2 || (g1 & 1))
                c->maybe_g++, c->maybe_by += (long long)size;
            else if (on)
                c->sure_g++, c->sure_by += (long long)size;
        }
    }
    for (int k = 0; k < 5; k++) free(ring[k]);
    atomic_fetch_add(&race_done, 1);
    return NULL;
}

static int run_race(void)
{
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&race_lock, &ra);
    race_ctr_t c[2];
    memset(c, 0, sizeof(c));
    pthread_t tt[2], ta[2];
    for (int i = 0; i < 2; i++) pthread_create(&tt[i], NULL, toggler, NULL);
    for (int i = 0; i < 2; i++) pthread_create(&ta[i], NULL, race_allocator, &c[i]);
    for (int i = 0; i < 2; i++) pthread_join(ta[i], NULL);
    for (int i = 0; i < 2; i++) pthread_join(tt[i], NULL);
    if (atomic_load(&race_bad) || atomic_load(&race_toggles) < 100) {
        fprintf(stderr, "race: %d unexpected previous states, %ld toggles\n",
                atomic_load(&race_bad), atomic_load(&race_toggles));
        return 1;
    }
    race_ctr_t s = {0};
    for (int i = 0; i < 2; i++) {
        s.al_a += c[i].al_a, s.by_a += c[i].by_a, s.al_c += c[i].al_c, s.by_c += c[i].by_c;
        s.sure_g += c[i].sure_g, s.sure_by += c[i].sure_by;
        s.maybe_g += c[i].maybe_g, s.maybe_by += c[i].maybe_by, s.off += c[i].off;
    }
    for (int i = 0; i < 2; i++)
        if (c[i].off < RMIN || c[i].al_a + c[i].al_c < RMIN) { /* the toggles missed them */
            fprintf(stderr, "race: allocator %d: %lld locked allocations counted, %lld not\n", i,
                    c[i].al_a + c[i].al_c, c[i].off);
            return 1;
        }
    want("site_a", 0, 0, s.al_a, s.by_a);
    want("site_c", 0, 0, s.al_c, s.by_c);
    want_range("site_g", 0, 0, s.sure_g, s.sure_g + s.maybe_g, s.sure_by, s.sure_by + s.maybe_by);
    return 0;
}

/* ---- live ----------------------------------------------------------------------------------- */
#define LT 4
#define LR 32 /* even: a ring slot always holds blocks of one site, LR / 2 per site and thread */
static _Atomic int live_stop, live_warm;
static pthread_barrier_t live_bar;
static long live_iters[LT];
static void *live_ring[LT][LR];

static size_t live_size(long t, long i)
{
    return 16 + (size_t)(i % 29) + (size_t)t * 8;
}

static void *live_thread(void *arg)
{
    long t = (long)arg;
    void **ring = live_ring[t];
    long i = 0;
    for (; !atomic_load_explicit(&live_stop, memory_order_relaxed); i++) {
        free(ring[i % LR]); /* its own block: its shard's live count stays LR / 2 per site */
        ring[i % LR] = (i & 1) ? site_a(live_size(t, i)) : site_g(live_size(t, i));
        if (i == LR) atomic_fetch_add(&live_warm, 1);
    }
    live_iters[t] = i;
    pthread_barrier_wait(&live_bar); /* parked, at a known count */
    pthread_barrier_wait(&live_bar); /* released */
    for (int k = 0; k < LR; k++) free(ring[k]);
    return NULL;
}

static int run_live(void)
{
    pthread_barrier_init(&live_bar, NULL, LT + 1);
    pthread_t t[LT];
    for (long i = 0; i < LT; i++) pthread_create(&t[i], NULL, live_thread, (void *)i);
    while (atomic_load(&live_warm) < LT) sched_yield(); /* every ring full: bounds hold */
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof(line), stdin) || strcmp(line, "park\n")) return 1;
    atomic_store(&live_stop, 1);
    pthread_barrier_wait(&live_bar);
    long long x[2][4] = {{0}}; /* site_g, site_a: live bytes, live blocks, allocs, bytes */
    for (long th = 0; th < LT; th++)
        for (long i = 0; i < live_iters[th]; i++) {
            long long *s = x[i & 1], size = (long long)live_size(th, i);
            s[2]++, s[3] += size;
            if (i >= live_iters[th] - LR) s[0] += size, s[1]++;
        }
    want("site_a", x[1][0], x[1][1], x[1][2], x[1][3]);
    want("site_g", x[0][0], x[0][1], x[0][2], x[0][3]);
    fclose(expect);
    expect = expect_open(".exit");
    if (!expect) return 2;
    want("site_a", 0, 0, x[1][2], x[1][3]);
    want("site_g", 0, 0, x[0][2], x[0][3]);
    printf("parked\n");
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin) || strcmp(line, "finish\n")) return 1;
    pthread_barrier_wait(&live_bar);
    for (int i = 0; i < LT; i++) pthread_join(t[i], NULL);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr,
                "usage: sites_prog "
                "exact|threads|toggle|signal|frames2|fork|forkthread|exits|mainexit|race|live "
                "EXPECT_FILE\n");
        return 2;
    }
    expect_path = argv[2];
    expect = expect_open("");
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
    else if (!strcmp(argv[1], "fork"))
        rc = run_fork(0);
    else if (!strcmp(argv[1], "forkthread"))
        rc = run_fork(1);
    else if (!strcmp(argv[1], "exits"))
        rc = run_exits();
    else if (!strcmp(argv[1], "mainexit"))
        rc = run_mainexit();
    else if (!strcmp(argv[1], "race"))
        rc = run_race();
    else if (!strcmp(argv[1], "live"))
        rc = run_live();
    else
        rc = 2;
    fclose(expect);
    return rc;
}
