/*
 * refs_target.c - see refs_target.h. Built with -O0 -g (tests/cli/CMakeLists.txt); the empty
 * asm after each call keeps it from becoming a tail call, so every function keeps its frame.
 * The public API's ls_ref_* are always inline: the recorded stacks start in obj_get() & co.
 */
#include "refs_target.h"
#include "leakscope.h"

#include <string.h>

#define KEEP()   __asm__ volatile("" ::: "memory")
#define NOINLINE __attribute__((noinline))

typedef struct obj {
    long refs;
    char pad[56];
} obj_t;

static obj_t pool[256];
static unsigned pool_next;

uintptr_t refs_pool_addr(unsigned n)
{
    return (uintptr_t)&pool[n];
}

void refs_pool_reset(void)
{
    memset(pool, 0, sizeof(pool));
    pool_next = 0;
}

/* ---- struct conn: the perf-style scenario ---- */

NOINLINE obj_t *obj_new(void)
{
    obj_t *o = &pool[pool_next++ % 256];
    o->refs = 1;
    ls_ref_register(o, "struct conn", 1);
    KEEP();
    return o;
}

NOINLINE void obj_get(obj_t *o)
{
    o->refs++;
    ls_ref_get(o);
    KEEP();
}

NOINLINE void obj_put(obj_t *o)
{
    ls_ref_put(o);
    o->refs--;
    KEEP();
}

/* Returns a new reference to o. */
NOINLINE obj_t *funcA(obj_t *o)
{
    obj_get(o); /* @A-get */
    KEEP();
    return o;
}

NOINLINE void funcD(obj_t *o)
{
    obj_t *x = funcA(o); /* @D-call */
    KEEP();
    obj_put(x); /* @D-put */
    KEEP();
}

NOINLINE void funcB(obj_t *o)
{
    obj_t *x = funcA(o); /* @B-call */
    KEEP();
    (void)x; /* the put is missing */
}

NOINLINE void funcC(obj_t *o)
{
    funcA(o); /* @C-call */
    KEEP();
    obj_get(o); /* @C-get */
    KEEP();
    obj_put(o); /* @C-put */
    KEEP();
}

NOINLINE void conn_scenario(char kind)
{
    obj_t *o = obj_new(); /* @conn-new */
    KEEP();
    if (kind == 'D') funcD(o);
    if (kind == 'B') funcB(o);
    if (kind == 'C') funcC(o);
    KEEP();
    obj_put(o); /* @conn-put */
    KEEP();
}

void refs_conn_run(const char *kinds)
{
    for (const char *k = kinds; *k; k++) {
        conn_scenario(*k); /* @conn-loop */
        KEEP();
    }
}

void refs_conn_same_line(void)
{
    /* clang-format off */
    conn_scenario('C'); KEEP(); conn_scenario('C'); KEEP(); /* @same-line */
    /* clang-format on */
}

/* ---- struct tracked: trackers pair exactly ---- */

NOINLINE ls_ref_tracker_t tget(obj_t *o)
{
    o->refs++;
    ls_ref_tracker_t t = ls_ref_get_tracked(o);
    KEEP();
    return t;
}

NOINLINE void tput(obj_t *o, ls_ref_tracker_t t)
{
    ls_ref_put_tracked(o, t);
    o->refs--;
    KEEP();
}

NOINLINE void tracked_one(obj_t *o)
{
    ls_ref_tracker_t t = tget(o);
    KEEP();
    tput(o, t);
    KEEP();
}

NOINLINE void tracked_two(obj_t *o)
{
    ls_ref_tracker_t t1 = tget(o); /* @t1-get */
    KEEP();
    ls_ref_tracker_t t2 = tget(o); /* @t2-get */
    KEEP();
    (void)t2;
    /* the latest reference first would be t2's: the tracker says t1's is dropped */
    tput(o, t1);
    KEEP();
}

void refs_tracked_run(void)
{
    obj_t *o = &pool[pool_next++ % 256];
    o->refs = 1;
    ls_ref_register(o, "struct tracked", 1);
    tracked_one(o);
    KEEP();
    tracked_two(o);
    KEEP();
}

/* ---- struct single: one caller is not a wrapper ---- */

NOINLINE void single_get(obj_t *o)
{
    o->refs++;
    ls_ref_get(o); /* @single-get */
    KEEP();
}

NOINLINE void single_user(obj_t *o)
{
    single_get(o);
    KEEP();
}

void refs_single_run(void)
{
    obj_t *o = &pool[pool_next++ % 256];
    o->refs = 1;
    ls_ref_register(o, "struct single", 1);
    single_user(o);
    KEEP();
    single_user(o);
    KEEP();
}

/* ---- struct chain: two wrappers deep ---- */

NOINLINE void chain_inner(obj_t *o)
{
    o->refs++;
    ls_ref_get(o);
    KEEP();
}

NOINLINE void chain_get(obj_t *o)
{
    chain_inner(o);
    KEEP();
}

NOINLINE void chain_put(obj_t *o)
{
    ls_ref_put(o);
    o->refs--;
    KEEP();
}

NOINLINE void chain_x(obj_t *o)
{
    chain_get(o);
    KEEP();
    chain_put(o);
    KEEP();
}

NOINLINE void chain_y(obj_t *o)
{
    chain_get(o); /* @chain-y-get */
    KEEP();
}

void refs_chain_run(void)
{
    obj_t *o = &pool[pool_next++ % 256]; /* released: the agent learns from it */
    o->refs = 1;
    ls_ref_register(o, "struct chain", 1);
    chain_x(o);
    KEEP();
    chain_put(o);
    KEEP();
    obj_t *p = &pool[pool_next++ % 256]; /* keeps chain_y's reference */
    p->refs = 1;
    ls_ref_register(p, "struct chain", 1);
    chain_y(p);
    KEEP();
    chain_put(p);
    KEEP();
}

/* ---- errors ---- */

NOINLINE void double_put_site(obj_t *o)
{
    obj_put(o); /* @double-put */
    KEEP();
}

NOINLINE void late_get_site(obj_t *o)
{
    obj_get(o); /* @late-get */
    KEEP();
}

NOINLINE void stray_get_site(obj_t *o)
{
    obj_get(o); /* @stray-get */
    KEEP();
}

void refs_errors_run(void)
{
    obj_t *a = obj_new();
    obj_put(a); /* @kill-put */
    KEEP();
    for (int i = 0; i < 2; i++) { /* twice from one stack: folded into one finding */
        double_put_site(a);
        KEEP();
    }
    obj_t *b = obj_new();
    funcD(b);
    KEEP();
    obj_put(b);
    KEEP();
    late_get_site(b);
    KEEP();
    stray_get_site(&pool[255]);
    KEEP();
}
