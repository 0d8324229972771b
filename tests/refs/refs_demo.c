/*
 * refs_demo.c - a reference-counted "connection" object with the classic bugs, one scenario per
 * argument, run under the agent by test_refs.py with exact expected findings:
 *
 *   perf     the perf-style pair: funcA returns a new reference; funcD (correct) drops it,
 *            funcB forgets to, funcC takes an extra one. 40 objects go the correct way first, so
 *            the agent learns how funcA's references are released.
 *   race     two threads both believe they drop the last reference (a double put).
 *   uap      a get after the put that released the object (use after the last put).
 *   destroy  ls_ref_destroy of an address never registered.
 *   trackers exact pairing: a tracker never given back, and a tracker put twice.
 *   threads  8 threads get/put 16 shared objects; everything released: no finding.
 *   free     objects whose heap block is freed without ls_ref_destroy (one still referenced).
 *   check    ls_refs_check() between phases of a program.
 *   serve    holds references until DIR/stop appears: a live snapshot (leakscope snapshot PID).
 *
 * The program keeps its own count (refcnt) exactly as real code does; the ls_ref_* calls only
 * tell the agent. Functions are noinline so their names appear in the stacks.
 */
#define _GNU_SOURCE
#include "leakscope.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

struct conn {
    atomic_int refcnt;
    int id;
    char name[40];
};

static struct conn *keep[4096]; /* leaked objects stay reachable: this is about counts */
static int nkeep;

static volatile int sink;
static NOINLINE void use(struct conn *c)
{
    sink += c->id;
}

static NOINLINE struct conn *conn_new(int id)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) abort();
    atomic_store(&c->refcnt, 1);
    c->id = id;
    snprintf(c->name, sizeof(c->name), "conn-%d", id);
    ls_ref_register(c, "struct conn", 1);
    keep[nkeep++ % 4096] = c;
    return c;
}

static NOINLINE struct conn *conn_get(struct conn *c)
{
    atomic_fetch_add(&c->refcnt, 1);
    ls_ref_get(c);
    return c;
}

static NOINLINE void conn_put(struct conn *c)
{
    ls_ref_put(c);
    if (atomic_fetch_sub(&c->refcnt, 1) == 1) {
        for (int i = 0; i < 4096; i++)
            if (keep[i] == c) keep[i] = NULL;
        free(c);
    }
}

/* ---- perf: funcA returns a new reference to its caller ------------------------------------ */
static NOINLINE struct conn *funcA(struct conn *c)
{
    return conn_get(c);
}

static NOINLINE void funcD(struct conn *c) /* correct: drops what funcA gave it */
{
    struct conn *r = funcA(c);
    use(r);
    conn_put(r);
}

static NOINLINE void funcB(struct conn *c) /* bug: never drops funcA's reference */
{
    struct conn *r = funcA(c);
    use(r);
}

static NOINLINE void funcC(struct conn *c) /* bug: takes one more reference than it drops */
{
    struct conn *r = funcA(c);
    conn_get(r);
    use(r);
    conn_put(r);
}

static void scenario_perf(void)
{
    for (int i = 0; i < 40; i++) {
        struct conn *c = conn_new(i);
        funcD(c);
        conn_put(c);
    }
    for (int i = 0; i < 3; i++) {
        struct conn *c = conn_new(100 + i);
        funcB(c);
        conn_put(c); /* count stays 1: funcA's reference */
    }
    for (int i = 0; i < 2; i++) {
        struct conn *c = conn_new(200 + i);
        funcC(c);
        conn_put(c); /* count stays 1: funcC's extra reference */
    }
}

/* ---- race: both threads drop "the last" reference ------------------------------------------- */
static pthread_barrier_t race_barrier;
static struct conn *race_obj;

static NOINLINE void release_from_reader(struct conn *c)
{
    ls_ref_put(c); /* the agent's shadow count; the object is not freed, so the demo stays safe */
    atomic_fetch_sub(&c->refcnt, 1);
}

static NOINLINE void release_from_writer(struct conn *c)
{
    ls_ref_put(c);
    atomic_fetch_sub(&c->refcnt, 1);
}

static void *race_reader(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&race_barrier);
    release_from_reader(race_obj);
    return NULL;
}

static void *race_writer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&race_barrier);
    release_from_writer(race_obj);
    return NULL;
}

static void scenario_race(void)
{
    race_obj = conn_new(1);
    pthread_barrier_init(&race_barrier, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, race_reader, NULL);
    pthread_create(&b, NULL, race_writer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&race_barrier);
}

/* ---- uap: a get after the last put --------------------------------------------------------- */
static struct conn *session;

static NOINLINE void close_session(void)
{
    ls_ref_put(session); /* the last reference: the object is dead from here on */
    atomic_fetch_sub(&session->refcnt, 1);
}

static NOINLINE void stale_timer_fires(void)
{
    conn_get(session); /* bug: the timer kept a pointer without a reference */
}

static void scenario_uap(void)
{
    session = conn_new(7);
    close_session();
    stale_timer_fires();
}

/* ---- destroy of something never registered ----------------------------------------------- */
static NOINLINE void bogus_destroy(void *p)
{
    ls_ref_destroy(p);
}

static void scenario_destroy(void)
{
    static char not_an_object[64];
    bogus_destroy(not_an_object);
    struct conn *c = conn_new(9); /* a correct destroy, for contrast */
    ls_ref_put(c);
    ls_ref_destroy(c);
}

/* ---- trackers ----------------------------------------------------------------------------- */
static NOINLINE ls_ref_tracker_t trk_borrow(struct conn *c)
{
    atomic_fetch_add(&c->refcnt, 1);
    return ls_ref_get_tracked(c);
}

static NOINLINE void trk_return(struct conn *c, ls_ref_tracker_t t)
{
    atomic_fetch_sub(&c->refcnt, 1);
    ls_ref_put_tracked(c, t);
}

static NOINLINE void trk_forgets(struct conn *c)
{
    ls_ref_tracker_t t = trk_borrow(c);
    (void)t; /* bug: never returned */
}

static NOINLINE void trk_twice(struct conn *c)
{
    ls_ref_tracker_t t = trk_borrow(c);
    trk_return(c, t);
    trk_return(c, t); /* bug: the same reference dropped twice */
}

static void scenario_trackers(void)
{
    struct conn *c = conn_new(11);
    for (int i = 0; i < 5; i++) trk_return(c, trk_borrow(c));
    trk_forgets(c);
    conn_put(c); /* the creation's reference: c keeps only trk_forgets' one */
    struct conn *d = conn_new(12);
    ls_ref_tracker_t keep_d = trk_borrow(d); /* held across the double put below */
    trk_twice(d);
    trk_return(d, keep_d);
    ls_ref_put(d); /* the creation's reference: d is released (the demo never frees it) */
}

/* ---- threads: heavy correct use ------------------------------------------------------------ */
static struct conn *shared[16];

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        struct conn *c = conn_get(shared[(seed >> 16) % 16]);
        use(c);
        conn_put(c);
    }
    return NULL;
}

static void scenario_threads(void)
{
    for (int i = 0; i < 16; i++) shared[i] = conn_new(300 + i);
    pthread_t th[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 16; i++) conn_put(shared[i]);
}

/* ---- free without destroy ----------------------------------------------------------------- */
static NOINLINE void drop_without_put(struct conn *c)
{
    free(c); /* bug: the count is still 2 */
}

static void scenario_free(void)
{
    for (int i = 0; i < 10; i++) { /* freed at count 1: the free ends them, no finding */
        struct conn *c = conn_new(400 + i);
        for (int k = 0; k < 4096; k++)
            if (keep[k] == c) keep[k] = NULL;
        free(c);
    }
    struct conn *c = conn_new(500);
    conn_get(c);
    for (int k = 0; k < 4096; k++)
        if (keep[k] == c) keep[k] = NULL;
    drop_without_put(c);
}

/* ---- check: ls_refs_check between phases ----------------------------------------------------- */
static void scenario_check(const char *dir)
{
    char path[4096];
    struct conn *c = conn_new(600);
    snprintf(path, sizeof(path), "%s/phase1.lsnap", dir);
    long n1 = ls_refs_check(path); /* one object holds a reference */
    conn_put(c);
    snprintf(path, sizeof(path), "%s/phase2.lsnap", dir);
    long n2 = ls_refs_check(path); /* all released */
    printf("check %ld %ld\n", n1, n2);
}

/* ---- serve: outstanding references seen from outside (leakscope snapshot PID) ------------------
 */
static void scenario_serve(const char *dir)
{
    struct conn *held[3];
    for (int i = 0; i < 3; i++) held[i] = conn_new(700 + i);
    funcB(held[0]); /* one reference nobody will drop */
    printf("ready\n");
    fflush(stdout);
    char stop[4096];
    snprintf(stop, sizeof(stop), "%s/stop", dir);
    for (int i = 0; i < 2000 && access(stop, F_OK) != 0; i++) usleep(10000);
    for (int i = 0; i < 3; i++) conn_put(held[i]);
}

int main(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : "perf";
    if (!strcmp(s, "perf"))
        scenario_perf();
    else if (!strcmp(s, "race"))
        scenario_race();
    else if (!strcmp(s, "uap"))
        scenario_uap();
    else if (!strcmp(s, "destroy"))
        scenario_destroy();
    else if (!strcmp(s, "trackers"))
        scenario_trackers();
    else if (!strcmp(s, "threads"))
        scenario_threads();
    else if (!strcmp(s, "free"))
        scenario_free();
    else if (!strcmp(s, "serve"))
        scenario_serve(argc > 2 ? argv[2] : ".");
    else if (!strcmp(s, "check"))
        scenario_check(argc > 2 ? argv[2] : ".");
    else {
        fprintf(stderr,
                "usage: refs_demo perf|race|uap|destroy|trackers|threads|free|check|serve [DIR]\n");
        return 2;
    }
    return 0;
}
