/*
 * tags_prog.c - deterministic allocations at compile-time tags, for the tags tests. Built with
 * `-include leakscope/tags.h` (every malloc-family call below becomes a tagged call), and also
 * without it: the same program then has ordinary call sites, which mode sites must count the
 * same per function.
 *
 * Each allocating call sits in its own noinline function (t_*, lib_* in tags_lib.c, plug_* in
 * tags_plugin.c) and records its own source line on the line of the call, so the program knows
 * each tag (file, line, function) and writes what it expects per tag to EXPECT_FILE:
 *   "file line module function kind live_bytes live_blocks allocs bytes"
 * one line per tag, the tags never called included (all figures 0). check_tags.py compares that
 * with `leakscope sites --format json`. Scenarios:
 *
 *   tags_prog exact EXPECT_FILE PLUGIN   every tagged call kind in the program, calls in the
 *                                        linked tags_lib, and PLUGIN (a tagged library) dlopen'ed,
 *                                        dlclose'd, dlopen'ed again and dlclose'd
 *   tags_prog threads EXPECT_FILE        4 threads on tagged sites, blocks freed across threads
 *   tags_prog leak                       one block of 100 bytes lost in t_leak (mode full)
 *
 * stdout: one line of figures computed from the blocks' contents, the same with the agent in any
 * mode and without it.
 */
#ifndef _GNU_SOURCE /* the tagged build defines it on the command line, before tags.h */
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tags_lib.h"

#define NOINL __attribute__((noinline))

/* ---- expectations --------------------------------------------------------------------------- */

typedef struct site {
    const char *file, *module, *func, *kind;
    int line;
    long long lb, lk, al, by; /* live bytes, live blocks, allocations, bytes */
} site_t;

#define MAX_SITES 64
static site_t sites[MAX_SITES];
static int nsites;
static char exe_module[PATH_MAX], lib_module[PATH_MAX], plug_module[PATH_MAX];
static __thread unsigned long long checksum; /* per thread: the output stays deterministic */

static site_t *site(const char *file, int line, const char *module, const char *func,
                    const char *kind)
{
    for (int i = 0; i < nsites; i++)
        if (sites[i].line == line && !strcmp(sites[i].file, file) &&
            !strcmp(sites[i].module, module) && !strcmp(sites[i].func, func))
            return &sites[i];
    if (nsites == MAX_SITES) abort();
    site_t *s = &sites[nsites++];
    *s = (site_t){file, module, func, kind, line, 0, 0, 0, 0};
    return s;
}

/* A block and the tag it is charged to. */
typedef struct blk {
    void *p;
    size_t n;
    site_t *s;
} blk_t;

static void fill(void *p, size_t n)
{
    memset(p, (int)(n & 0x7f), n);
    checksum = checksum * 31 + n;
}

static void charge(blk_t *b, void *p, size_t n, site_t *s)
{
    if (!p) abort();
    b->p = p;
    b->n = n;
    b->s = s;
    s->lb += (long long)n;
    s->lk++;
    s->al++;
    s->by += (long long)n;
}

static void uncharge(blk_t *b)
{
    b->s->lb -= (long long)b->n;
    b->s->lk--;
}

static void drop(blk_t *b)
{
    for (size_t i = 0; i < b->n; i++) checksum += ((unsigned char *)b->p)[i];
    free(b->p);
    uncharge(b);
    b->p = NULL;
}

/* realloc: the old block leaves its site, the new one is charged to the realloc's tag. */
static void moved(blk_t *b, void *q, size_t n, site_t *s)
{
    if (b->p) uncharge(b);
    charge(b, q, n, s);
}

static void base_name(char *out, const char *path)
{
    const char *s = strrchr(path, '/');
    snprintf(out, PATH_MAX, "%s", s ? s + 1 : path);
}

static void write_expect(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    for (int i = 0; i < nsites; i++) {
        const site_t *s = &sites[i];
        fprintf(f, "%s %d %s %s %s %lld %lld %lld %lld\n", s->file, s->line, s->module, s->func,
                s->kind, s->lb, s->lk, s->al, s->by);
    }
    if (fclose(f)) exit(1);
}

/* ---- the program's tagged calls ------------------------------------------------------------- */

#define SITE(kind) site(__FILE__, line, exe_module, __func__, kind)

NOINL static void t_malloc(blk_t *b, size_t n)
{
    int line;
    void *p = (line = __LINE__, malloc(n));
    charge(b, p, n, SITE("malloc"));
    fill(p, n);
}

NOINL static void t_calloc(blk_t *b, size_t n)
{
    int line;
    void *p = (line = __LINE__, calloc(n, 8));
    charge(b, p, n * 8, SITE("calloc"));
}

NOINL static void t_realloc(blk_t *b, size_t n)
{
    int line;
    void *q = (line = __LINE__, realloc(b->p, n));
    moved(b, q, n, SITE("realloc"));
    fill(q, n);
}

NOINL static void t_reallocarray(blk_t *b, size_t n)
{
    int line;
    void *q = (line = __LINE__, reallocarray(b->p, n, 16));
    moved(b, q, n * 16, SITE("realloc"));
}

NOINL static void t_strdup(blk_t *b, const char *s)
{
    int line;
    char *p = (line = __LINE__, strdup(s));
    charge(b, p, strlen(s) + 1, SITE("malloc"));
}

NOINL static void t_strndup(blk_t *b, const char *s, size_t max)
{
    int line;
    char *p = (line = __LINE__, strndup(s, max));
    charge(b, p, strlen(p) + 1, SITE("malloc"));
}

NOINL static void t_aligned_alloc(blk_t *b, size_t n)
{
    int line;
    void *p = (line = __LINE__, aligned_alloc(64, n));
    if ((uintptr_t)p % 64) abort();
    charge(b, p, n, SITE("aligned"));
    fill(p, n);
}

NOINL static void t_posix_memalign(blk_t *b, size_t n)
{
    int line;
    void *p = NULL;
    int rc = (line = __LINE__, posix_memalign(&p, 32, n));
    if (rc || (uintptr_t)p % 32) abort();
    charge(b, p, n, SITE("aligned"));
    fill(p, n);
}

NOINL static void t_memalign(blk_t *b, size_t n)
{
    int line;
    void *p = (line = __LINE__, memalign(128, n));
    if ((uintptr_t)p % 128) abort();
    charge(b, p, n, SITE("aligned"));
    fill(p, n);
}

NOINL static void t_valloc(blk_t *b, size_t n)
{
    int line;
    void *p = (line = __LINE__, valloc(n));
    if ((uintptr_t)p % (uintptr_t)sysconf(_SC_PAGESIZE)) abort();
    charge(b, p, n, SITE("aligned"));
    fill(p, n);
}

/* A tag that is never called: the function runs, its malloc does not. */
static volatile int really;
NOINL static void *t_never(void)
{
    int line;
    void *p = (line = __LINE__, really ? malloc(8) : NULL);
    site(__FILE__, line, exe_module, __func__, "malloc");
    return p;
}

/* ---- exact ----------------------------------------------------------------------------------- */

static blk_t keep[256];
static int nkeep;

static blk_t *new_blk(void)
{
    if (nkeep == 256) abort();
    return &keep[nkeep++];
}

/* Where each load of the plugin was mapped. */
static void *plug_base[2];

static void run_plugin(const char *path, int round, blk_t *first)
{
    /* Before the second load, take the address the first one had: the plugin then loads
     * elsewhere, and its tags are new objects (two TAGS records) with the same key. */
    if (round == 1 &&
        mmap(plug_base[0], 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
             0) != plug_base[0])
        abort();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "tags_prog: %s\n", dlerror());
        exit(1);
    }
    void *(*plug_alloc)(size_t, int *) = (void *(*)(size_t, int *))dlsym(h, "plug_alloc");
    const char *(*plug_file)(void) = (const char *(*)(void))dlsym(h, "plug_file");
    Dl_info di;
    if (!plug_alloc || !plug_file || !dladdr((void *)plug_file, &di)) abort();
    plug_base[round] = di.dli_fbase;
    /* the file name outlives the plugin in the expectations: copy it */
    static char file[PATH_MAX];
    snprintf(file, sizeof(file), "%s", plug_file());
    for (int i = 0; i < (round == 0 ? 3 : 2); i++) {
        int line;
        size_t n = (size_t)(11 * (1 + i + 3 * round));
        void *p = plug_alloc(n, &line);
        charge(new_blk(), p, n, site(file, line, plug_module, "plug_alloc", "malloc"));
        fill(p, n);
    }
    if (round == 1) drop(first); /* a block of the first load, freed after the second */
    if (dlclose(h)) abort();
}

static int run_exact(const char *expect, const char *plugin)
{
    blk_t a[20];
    for (int i = 0; i < 20; i++) t_malloc(&a[i], 10 + (size_t)i * 7);
    for (int i = 0; i < 20; i += 2) drop(&a[i]);
    blk_t c[8];
    for (int i = 0; i < 8; i++) t_calloc(&c[i], (size_t)i + 1);
    for (int i = 0; i < 4; i++) drop(&c[i]);
    t_realloc(&a[1], 500); /* leaves t_malloc for t_realloc */
    t_realloc(&a[3], 3);
    blk_t r = {0};
    t_realloc(&r, 64); /* realloc(NULL, 64) */
    t_reallocarray(&a[5], 10);
    blk_t ra = {0};
    t_reallocarray(&ra, 3);
    static const char *const words[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"};
    blk_t w[6];
    for (int i = 0; i < 6; i++) t_strdup(&w[i], words[i]);
    drop(&w[1]);
    drop(&w[4]);
    blk_t sn[2];
    t_strndup(&sn[0], "abcdefghij", 4);
    t_strndup(&sn[1], "xy", 10);
    blk_t al[2];
    t_aligned_alloc(&al[0], 128);
    t_aligned_alloc(&al[1], 192);
    blk_t pm[3];
    for (int i = 0; i < 3; i++) t_posix_memalign(&pm[i], 100 + (size_t)i);
    drop(&pm[1]);
    blk_t ma, va;
    t_memalign(&ma, 40);
    t_valloc(&va, 100);
    t_never();

    /* the linked library */
    blk_t lb[5];
    for (int i = 0; i < 5; i++) {
        int line;
        size_t n = 33 + (size_t)i;
        void *p = lib_make(n, &line);
        charge(&lb[i], p, n, site(lib_file(), line, lib_module, "lib_make", "malloc"));
        fill(p, n);
    }
    drop(&lb[0]);
    int gl;
    void *q = lib_grow(lb[2].p, 1000, &gl);
    moved(&lb[2], q, 1000, site(lib_file(), gl, lib_module, "lib_grow", "realloc"));
    int nl;
    if (lib_never(really, &nl)) abort();
    site(lib_file(), nl, lib_module, "lib_never", "calloc");

    /* the plugin, loaded twice */
    base_name(plug_module, plugin);
    run_plugin(plugin, 0, NULL);
    run_plugin(plugin, 1, &keep[0]);

    if (plug_base[0] == plug_base[1]) {
        fprintf(stderr, "tags_prog: the plugin was loaded twice at %p\n", plug_base[0]);
        return 1;
    }
    write_expect(expect);
    printf("tags_prog exact: %d tags, checksum %llu\n", nsites, checksum);
    return 0;
}

/* ---- threads --------------------------------------------------------------------------------- */

#define NTHREADS 4
#define NITER    20000

typedef struct thr {
    site_t m, s; /* this thread's share of the two tags (merged by main) */
    blk_t keep[NITER / 5 + NITER / 3 + 2];
    int nkeep;
} thr_t;

static thr_t thr[NTHREADS];

NOINL static void t_thr_malloc(thr_t *t, blk_t *b, size_t n)
{
    int line;
    void *p = (line = __LINE__, malloc(n));
    t->m.line = line;
    charge(b, p, n, &t->m);
}

NOINL static void t_thr_strdup(thr_t *t, blk_t *b, const char *s)
{
    int line;
    char *p = (line = __LINE__, strdup(s));
    t->s.line = line;
    charge(b, p, strlen(s) + 1, &t->s);
}

static void *thread_main(void *arg)
{
    thr_t *t = arg;
    char word[32];
    for (int k = 0; k < NITER; k++) {
        blk_t m, s;
        t_thr_malloc(t, &m, 16 + (size_t)(k % 50));
        snprintf(word, sizeof(word), "w%d-%d", (int)(t - thr), k % 977);
        t_thr_strdup(t, &s, word);
        if (k % 5 == 0)
            t->keep[t->nkeep++] = m;
        else
            drop(&m);
        if (k % 3 == 0)
            t->keep[t->nkeep++] = s;
        else
            drop(&s);
    }
    return NULL;
}

static int run_threads(const char *expect)
{
    pthread_t id[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        thr[i].m = (site_t){__FILE__, exe_module, "t_thr_malloc", "malloc", 0, 0, 0, 0, 0};
        thr[i].s = (site_t){__FILE__, exe_module, "t_thr_strdup", "malloc", 0, 0, 0, 0, 0};
        if (pthread_create(&id[i], NULL, thread_main, &thr[i])) abort();
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(id[i], NULL);
    /* the main thread frees half of what each thread kept: counted at the threads' tags */
    for (int i = 0; i < NTHREADS; i++)
        for (int k = 0; k < thr[i].nkeep; k += 2) drop(&thr[i].keep[k]);
    for (int i = 0; i < NTHREADS; i++) {
        const site_t *parts[2] = {&thr[i].m, &thr[i].s};
        for (int j = 0; j < 2; j++) {
            const site_t *p = parts[j];
            site_t *s = site(p->file, p->line, p->module, p->func, p->kind);
            s->lb += p->lb;
            s->lk += p->lk;
            s->al += p->al;
            s->by += p->by;
        }
    }
    write_expect(expect);
    printf("tags_prog threads: %d tags, checksum %llu\n", nsites, checksum);
    return 0;
}

/* ---- leak ------------------------------------------------------------------------------------ */

static void *volatile lost;

NOINL static void t_leak(void)
{
    lost = malloc(100);
    memset(lost, 1, 100);
    lost = NULL; /* the only pointer is gone: definitely lost */
}

int main(int argc, char **argv)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return 1;
    exe[n] = 0;
    base_name(exe_module, exe);
    Dl_info di;
    if (!dladdr(lib_anchor(), &di) || !di.dli_fname) return 1;
    base_name(lib_module, di.dli_fname);
    if (argc == 4 && !strcmp(argv[1], "exact")) return run_exact(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "threads")) return run_threads(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "leak")) {
        t_leak();
        printf("tags_prog leak: done\n");
        return 0;
    }
    fprintf(stderr, "usage: tags_prog exact EXPECT PLUGIN | threads EXPECT | leak\n");
    return 2;
}
