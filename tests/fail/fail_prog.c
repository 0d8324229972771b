/*
 * fail_prog.c - a program with real allocation error paths, for the fault injection tests
 * (test_fail.py). Every allocating call sits in a noinline function of its own, so a rule can
 * name it by function, by line (the lines carry "FAIL-LINE: name" markers the driver looks up)
 * or by address, and a report's stack names it.
 *
 *   fail_prog load N       loads N records (new_record: malloc; dup_name: strdup; grow_table:
 *                          realloc of the table); on a failure it frees all it built, prints
 *                          "load failed at record K in STEP: MESSAGE" and exits 1; else prints
 *                          "loaded N records" and exits 0. Nothing leaks either way.
 *   fail_prog leaky N      the same, but dup_name's error path forgets the record (a leak of
 *                          sizeof(record_t) = 24 bytes the leak check must find).
 *   fail_prog draws K      calls draw_alloc K times and prints "draws: F of K failed: i j ..."
 *                          (the 1-based calls that failed).
 *   fail_prog threads T K  T threads call thread_alloc K times each; prints "threads: F of N
 *                          failed".
 *   fail_prog plugin SO K  dlopens SO, calls its plugin_alloc K times, dlcloses it, and again;
 *                          prints "plugin: F of 2K failed: i j ..."
 *   fail_prog family       one call of each kind (family_* functions) and its failure contract:
 *                          NULL and ENOMEM, posix_memalign's result ENOMEM with *out and errno
 *                          untouched, realloc's old block intact; realloc(p, 0) and free never
 *                          fail. Prints "NAME: ok" or "NAME: failed (contract kept)" lines and
 *                          exits 1 when a contract is broken.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINL __attribute__((noinline))

static void *volatile sink; /* keeps calls from becoming tail calls or being paired away */

typedef struct record {
    char *name;
    long id;
    long weight;
} record_t;

typedef struct table {
    record_t **v;
    size_t n;
} table_t;

static int leaky; /* the buggy error path */

NOINL static record_t *new_record(long id)
{
    record_t *r = malloc(sizeof(*r)); /* FAIL-LINE: new_record */
    sink = r;
    if (r) {
        r->id = id;
        r->weight = id * 10;
        r->name = NULL;
    }
    return r;
}

NOINL static char *dup_name(const char *s)
{
    char *d = strdup(s); /* libc allocates: "--fail strdup" names it */
    sink = d;
    return d;
}

NOINL static int grow_table(table_t *t)
{
    record_t **v = realloc(t->v, (t->n + 1) * sizeof(*v)); /* FAIL-LINE: grow_table */
    sink = v;
    if (!v) return -1; /* t->v is untouched and still ours */
    t->v = v;
    return 0;
}

static void free_table(table_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i]->name);
        free(t->v[i]);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

NOINL static int load(long n)
{
    table_t t = {NULL, 0};
    for (long i = 1; i <= n; i++) {
        const char *step = "new_record";
        char text[32];
        snprintf(text, sizeof(text), "record-%ld", i);
        record_t *r = new_record(i);
        if (!r) goto fail;
        step = "dup_name";
        r->name = dup_name(text);
        if (!r->name) {
            if (!leaky) free(r); /* the leaky variant forgets it */
            goto fail;
        }
        step = "grow_table";
        if (grow_table(&t)) {
            free(r->name);
            free(r);
            goto fail;
        }
        t.v[t.n++] = r;
        continue;
    fail:
        printf("load failed at record %ld in %s: %s\n", i, step, strerror(errno));
        free_table(&t);
        return 1;
    }
    printf("loaded %zu records\n", t.n);
    free_table(&t);
    return 0;
}

NOINL static void *draw_alloc(size_t n)
{
    void *p = malloc(n); /* FAIL-LINE: draw_alloc */
    sink = p;
    return p;
}

static int draws(long k)
{
    char *failed = calloc((size_t)k + 1, 1);
    long f = 0;
    for (long i = 1; i <= k; i++) {
        void *p = draw_alloc(16 + (size_t)i % 64);
        if (!p) {
            failed[i] = 1;
            f++;
        }
        free(p);
    }
    printf("draws: %ld of %ld failed:", f, k);
    for (long i = 1; i <= k; i++)
        if (failed[i]) printf(" %ld", i);
    printf("\n");
    free(failed);
    return 0;
}

NOINL static void *thread_alloc(size_t n)
{
    void *p = malloc(n); /* FAIL-LINE: thread_alloc */
    sink = p;
    return p;
}

typedef struct worker {
    pthread_t th;
    long calls, failed;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    for (long i = 0; i < w->calls; i++) {
        void *p = thread_alloc(32);
        if (!p) w->failed++;
        free(p);
    }
    return NULL;
}

static int threads(long nt, long k)
{
    worker_t w[16];
    if (nt < 1 || nt > 16) return 2;
    for (long i = 0; i < nt; i++) {
        w[i] = (worker_t){.calls = k};
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i])) return 2;
    }
    long failed = 0;
    for (long i = 0; i < nt; i++) {
        pthread_join(w[i].th, NULL);
        failed += w[i].failed;
    }
    printf("threads: %ld of %ld failed\n", failed, nt * k);
    return 0;
}

static int plugin(const char *so, long k)
{
    char *failed = calloc(2 * (size_t)k + 1, 1);
    long f = 0, call = 0;
    for (int round = 0; round < 2; round++) {
        void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
        void *sym = h ? dlsym(h, "plugin_alloc") : NULL;
        if (!sym) {
            fprintf(stderr, "plugin: %s\n", dlerror());
            free(failed);
            return 2;
        }
        void *(*fn)(size_t);
        memcpy(&fn, &sym, sizeof(fn));
        for (long i = 0; i < k; i++) {
            void *p = fn(24);
            call++;
            if (!p) {
                failed[call] = 1;
                f++;
            }
            free(p);
        }
        dlclose(h);
    }
    printf("plugin: %ld of %ld failed:", f, call);
    for (long i = 1; i <= call; i++)
        if (failed[i]) printf(" %ld", i);
    printf("\n");
    free(failed);
    return 0;
}

/* ---- family: each kind of allocating call, and what a failure must look like ---------------- */
static int broken;

static void report(const char *name, void *p, int err)
{
    if (p) {
        printf("%s: ok\n", name);
    } else if (err == ENOMEM) {
        printf("%s: failed (contract kept)\n", name);
    } else {
        printf("%s: failed with errno %d, not ENOMEM\n", name, err);
        broken = 1;
    }
}

NOINL static void *family_calloc(void)
{
    void *p = calloc(4, 8);
    sink = p;
    return p;
}
NOINL static void *family_aligned_alloc(void)
{
    void *p = aligned_alloc(64, 128);
    sink = p;
    return p;
}
NOINL static void *family_memalign(void)
{
    void *p = memalign(32, 64);
    sink = p;
    return p;
}
NOINL static void *family_valloc(void)
{
    void *p = valloc(100);
    sink = p;
    return p;
}
NOINL static int family_posix_memalign(void **out)
{
    int rc = posix_memalign(out, 64, 256);
    sink = *out;
    return rc;
}
NOINL static void *family_reallocarray(void *p)
{
    void *q = reallocarray(p, 8, 16);
    sink = q;
    return q;
}
NOINL static void *family_realloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    sink = q;
    return q;
}

static int family(void)
{
    void *p;
    errno = 0;
    p = family_calloc();
    report("calloc", p, errno);
    free(p);
    errno = 0;
    p = family_aligned_alloc();
    report("aligned_alloc", p, errno);
    free(p);
    errno = 0;
    p = family_memalign();
    report("memalign", p, errno);
    free(p);
    errno = 0;
    p = family_valloc();
    report("valloc", p, errno);
    free(p);

    void *out = &broken; /* a posix_memalign failure must leave it */
    errno = EINTR;
    int rc = family_posix_memalign(&out);
    if (rc == 0) {
        printf("posix_memalign: ok\n");
        free(out);
    } else if (rc == ENOMEM && out == &broken && errno == EINTR) {
        printf("posix_memalign: failed (contract kept)\n");
    } else {
        printf("posix_memalign: returned %d, out %s, errno %d\n", rc,
               out == &broken ? "untouched" : "changed", errno);
        broken = 1;
    }

    /* realloc: a failure leaves the old block as it was, still the caller's */
    char *old = malloc(16);
    memcpy(old, "fifteen chars..", 16);
    errno = 0;
    char *q = family_realloc(old, 4096);
    if (q) {
        printf("realloc: ok\n");
        free(q);
    } else if (errno == ENOMEM && !memcmp(old, "fifteen chars..", 16)) {
        printf("realloc: failed (contract kept)\n");
        free(old);
    } else {
        printf("realloc: failed with errno %d or a changed block\n", errno);
        broken = 1;
    }
    /* realloc(p, 0) frees: never a failure, whatever the rules */
    char *z = malloc(32);
    errno = 0;
    void *r0 = family_realloc(z, 0);
    printf("realloc0: %s\n", r0 ? "returned a block" : "freed");
    free(r0);

    char *a = malloc(8);
    errno = 0;
    void *ra = family_reallocarray(a);
    report("reallocarray", ra, errno);
    free(ra ? ra : a);
    return broken;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "load")) return load(atol(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "leaky")) {
        leaky = 1;
        return load(atol(argv[2]));
    }
    if (argc >= 3 && !strcmp(argv[1], "draws")) return draws(atol(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "threads")) return threads(atol(argv[2]), atol(argv[3]));
    if (argc >= 4 && !strcmp(argv[1], "plugin")) return plugin(argv[2], atol(argv[3]));
    if (argc >= 2 && !strcmp(argv[1], "family")) return family();
    fprintf(stderr,
            "usage: fail_prog load N | leaky N | draws K | threads T K | plugin SO K | family\n");
    return 2;
}
