/*
 * test_refs.c - the reference-count report (ls_refs_report) on snapshots written here.
 *
 * The programs are real code (refs_target.c, built -O0 -g) using the public API; this file
 * stands in for the agent: it defines the ls_agent_ref_* entry points, records every event with
 * its stack (backtrace(3): the return addresses a real unwinder gives), keeps the shadow counts,
 * folds findings, and pairs the history of each object that dies with the agent's own rule
 * (ls_rp_match, ls_rp_score_structural) into learned pairs. It then writes the REF_* chunks with
 * the real writer (tsnap), and the tests check the exact verdicts, messages, culprits, grouping
 * and order of the report, its text and its JSON.
 */
#define _GNU_SOURCE
#include "leakscope.h"
#include "ls_refpair.h"
#include "ls_refs_report.h"
#include "ls_report.h"
#include "refs_target.h"
#include "tcheck.h"
#include "tsnap.h"

#include <cJSON.h>
#include <execinfo.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- the stand-in agent ---------------------------------------------------------------- */

#define M_FRAMES 64

typedef struct mstack {
    uint32_t n;
    uint64_t pcs[M_FRAMES];
} mstack_t;

typedef struct mobj {
    uint64_t addr;
    uint32_t type, create_stack, kill_stack, kill_tid, trackers, dropped, flags;
    uint8_t kill_op;
    int64_t count, initial;
    int alive;
    ls_fmt_ref_event_t ev[64];
    uint32_t nev;
} mobj_t;

static mstack_t m_stacks[512];
static uint32_t m_nstacks;
static const char *m_types[8];
static uint32_t m_ntypes;
static mobj_t m_objs[64];
static uint32_t m_nobjs;
static ls_fmt_ref_finding_t m_finds[16];
static uint32_t m_nfinds;
static ls_fmt_ref_event_t m_fevents[512]; /* the findings' histories */
static uint32_t m_nfevents;
static ls_fmt_ref_pair_t m_pairs[64];
static uint32_t m_npairs;
static uint64_t m_events;
static int m_drop_next_get; /* the next get is counted, not recorded (a full event table) */

static void m_reset(void)
{
    m_nstacks = m_ntypes = m_nobjs = m_nfinds = m_nfevents = m_npairs = 0;
    m_events = 0;
    m_drop_next_get = 0;
    refs_pool_reset();
}

static uint32_t m_intern(const uint64_t *pcs, uint32_t n)
{
    for (uint32_t i = 0; i < m_nstacks; i++)
        if (m_stacks[i].n == n && memcmp(m_stacks[i].pcs, pcs, n * 8) == 0) return i + 1;
    if (m_nstacks == sizeof(m_stacks) / sizeof(m_stacks[0])) abort();
    m_stacks[m_nstacks].n = n;
    memcpy(m_stacks[m_nstacks].pcs, pcs, n * 8);
    return ++m_nstacks;
}

/* The stack from ra (the return address of the ls_agent_ref_* entry point, into its caller)
 * outward: the frames backtrace(3) gives before it (here, the entry point, and under ASan its
 * interceptor) are not the program's. */
static __attribute__((noinline)) uint32_t m_capture(void *ra)
{
    void *b[M_FRAMES + 8];
    int n = backtrace(b, M_FRAMES + 8), from = 0;
    while (from < n && b[from] != ra) from++;
    if (from == n) abort(); /* the unwinder lost its way: the test cannot be trusted */
    uint64_t pcs[M_FRAMES];
    uint32_t k = 0;
    for (int i = from; i < n && k < M_FRAMES; i++) pcs[k++] = (uintptr_t)b[i];
    __asm__ volatile("" ::: "memory");
    return m_intern(pcs, k);
}

#define CAPTURE() m_capture(__builtin_return_address(0))

static uint32_t m_type(const char *name)
{
    for (uint32_t i = 0; i < m_ntypes; i++)
        if (strcmp(m_types[i], name) == 0) return i + 1;
    m_types[m_ntypes] = name;
    return ++m_ntypes;
}

static mobj_t *m_find(const void *p)
{
    for (uint32_t i = m_nobjs; i-- > 0;)
        if (m_objs[i].addr == (uintptr_t)p) return &m_objs[i];
    return NULL;
}

static void m_event(mobj_t *o, uint8_t op, uint32_t stack, uint32_t tracker)
{
    m_events++;
    if (op == LS_REF_OP_GET && m_drop_next_get) {
        m_drop_next_get = 0;
        o->dropped++;
        o->flags |= LS_REF_OBJ_INCOMPLETE;
        return;
    }
    o->ev[o->nev++] = (ls_fmt_ref_event_t){stack, (uint32_t)gettid(), tracker, op, 0, 0};
}

static void m_finding(uint32_t kind, mobj_t *o, const void *addr, uint8_t op, uint32_t stack)
{
    uint32_t type = o ? o->type : 0, other = o ? o->kill_stack : 0;
    for (uint32_t i = 0; i < m_nfinds; i++) {
        ls_fmt_ref_finding_t *f = &m_finds[i];
        if (f->kind == kind && f->type == type && f->stack == stack && f->other_stack == other) {
            f->count++;
            return;
        }
    }
    ls_fmt_ref_finding_t *f = &m_finds[m_nfinds++];
    memset(f, 0, sizeof(*f));
    f->addr = (uintptr_t)addr;
    f->kind = kind;
    f->type = type;
    f->op = op;
    f->stack = stack;
    f->tid = (uint32_t)gettid();
    f->other_stack = other;
    f->other_tid = o ? o->kill_tid : 0;
    f->create_stack = o ? o->create_stack : 0;
    f->first_event = m_nfevents;
    f->nevents = o ? o->nev : 0;
    f->count = 1;
    if (o) memcpy(&m_fevents[m_nfevents], o->ev, o->nev * sizeof(o->ev[0]));
    m_nfevents += f->nevents;
}

/* The object died: learn which put dropped which reference, as the agent does. */
static void m_die(mobj_t *o, uint8_t op, uint32_t stack)
{
    o->alive = 0;
    o->kill_op = op;
    o->kill_stack = stack;
    o->kill_tid = (uint32_t)gettid();
    ls_rp_event_t ev[64];
    uint32_t open[64];
    ls_rp_pair_t pairs[64];
    for (uint32_t i = 0; i < o->nev; i++) {
        const mstack_t *s = &m_stacks[o->ev[i].stack - 1];
        uint8_t eop = o->ev[i].op;
        ev[i] =
            (ls_rp_event_t){s->pcs,
                            s->n,
                            o->ev[i].stack,
                            o->ev[i].tracker,
                            eop == LS_REF_OP_CREATE ? (uint32_t)o->initial : eop == LS_REF_OP_GET,
                            eop};
    }
    size_t np = ls_rp_match(ev, o->nev, ls_rp_score_structural, NULL, pairs, 64, open, NULL);
    for (size_t k = 0; k < np; k++) {
        uint32_t g = ev[pairs[k].get].stack, p = ev[pairs[k].put].stack;
        uint8_t gop = ev[pairs[k].get].op;
        uint32_t j = 0;
        while (j < m_npairs && !(m_pairs[j].get_stack == g && m_pairs[j].put_stack == p &&
                                 m_pairs[j].type == o->type && m_pairs[j].get_op == gop))
            j++;
        if (j == m_npairs) {
            memset(&m_pairs[j], 0, sizeof(m_pairs[j]));
            m_pairs[j] = (ls_fmt_ref_pair_t){g, p, o->type, 0, gop, {0}};
            m_npairs++;
        }
        m_pairs[j].count++;
    }
}

void ls_agent_ref_register(const void *obj, const char *type, long initial)
{
    uint32_t st = CAPTURE();
    mobj_t *o = &m_objs[m_nobjs++];
    memset(o, 0, sizeof(*o));
    o->addr = (uintptr_t)obj;
    o->type = m_type(type);
    o->count = o->initial = initial;
    o->create_stack = st;
    o->alive = 1;
    m_event(o, LS_REF_OP_CREATE, st, 0);
}

static void m_get(const void *obj, uint32_t st, uint32_t tracker)
{
    mobj_t *o = m_find(obj);
    if (!o)
        m_finding(LS_REF_FIND_UNREGISTERED, NULL, obj, LS_REF_OP_GET, st);
    else if (!o->alive)
        m_finding(LS_REF_FIND_USE_AFTER_PUT, o, obj, LS_REF_OP_GET, st);
    else {
        o->count++;
        m_event(o, LS_REF_OP_GET, st, tracker);
    }
}

static void m_put(const void *obj, uint32_t st, uint32_t tracker)
{
    mobj_t *o = m_find(obj);
    if (!o)
        m_finding(LS_REF_FIND_UNREGISTERED, NULL, obj, LS_REF_OP_PUT, st);
    else if (!o->alive)
        m_finding(o->kill_op == LS_REF_OP_PUT ? LS_REF_FIND_DOUBLE_PUT : LS_REF_FIND_USE_AFTER_PUT,
                  o, obj, LS_REF_OP_PUT, st);
    else {
        m_event(o, LS_REF_OP_PUT, st, tracker);
        if (--o->count == 0) m_die(o, LS_REF_OP_PUT, st);
    }
}

void ls_agent_ref_get(const void *obj)
{
    m_get(obj, CAPTURE(), 0);
}

void ls_agent_ref_put(const void *obj)
{
    m_put(obj, CAPTURE(), 0);
}

unsigned long long ls_agent_ref_get_tracked(const void *obj)
{
    uint32_t st = CAPTURE();
    mobj_t *o = m_find(obj);
    uint32_t t = o ? ++o->trackers : 0;
    m_get(obj, st, t);
    return t;
}

void ls_agent_ref_put_tracked(const void *obj, unsigned long long tracker)
{
    m_put(obj, CAPTURE(), (uint32_t)tracker);
}

void ls_agent_ref_destroy(const void *obj)
{
    uint32_t st = CAPTURE();
    mobj_t *o = m_find(obj);
    if (!o)
        m_finding(LS_REF_FIND_DESTROY_UNKNOWN, NULL, obj, LS_REF_OP_DESTROY, st);
    else if (o->alive) {
        m_event(o, LS_REF_OP_DESTROY, st, 0);
        m_die(o, LS_REF_OP_DESTROY, st);
    }
}

static char dir[] = "/tmp/ls-test-refs.XXXXXX";
static tsnap_module_t mods[64];
static size_t nmods;

/* Writes what the stand-in agent knows as a snapshot of the given reason. */
static void m_write(const char *path, uint64_t reason, uint32_t extra_flags)
{
    static tsnap_stack_t st[512];
    static tsnap_ref_type_t types[8];
    static ls_fmt_ref_object_t objs[64];
    static ls_fmt_ref_event_t events[4096];
    static ls_fmt_ref_finding_t finds[16];
    size_t nobjs = 0, nev = 0;
    for (uint32_t i = 0; i < m_nstacks; i++)
        st[i] = (tsnap_stack_t){i + 1, m_stacks[i].n, m_stacks[i].pcs};
    for (uint32_t i = 0; i < m_ntypes; i++) types[i] = (tsnap_ref_type_t){i + 1, 0, m_types[i]};
    for (uint32_t i = 0; i < m_nobjs; i++) { /* pool order is address order */
        const mobj_t *o = &m_objs[i];
        if (!o->alive) continue;
        ls_fmt_ref_object_t *r = &objs[nobjs++];
        memset(r, 0, sizeof(*r));
        r->addr = o->addr;
        r->count = o->count;
        r->initial = o->initial;
        r->type = o->type;
        r->create_stack = o->create_stack;
        r->first_event = (uint32_t)nev;
        r->nevents = o->nev;
        r->dropped_events = o->dropped;
        r->flags = o->flags | extra_flags;
        memcpy(&events[nev], o->ev, o->nev * sizeof(o->ev[0]));
        nev += o->nev;
    }
    for (uint32_t i = 0; i < m_nfinds; i++) {
        finds[i] = m_finds[i];
        finds[i].first_event += (uint32_t)nev;
    }
    memcpy(&events[nev], m_fevents, m_nfevents * sizeof(m_fevents[0]));
    nev += m_nfevents;
    uint64_t stats[][2] = {{LS_STAT_REF_OBJECTS_LIVE, nobjs},
                           {LS_STAT_REF_OBJECTS_TOTAL, m_nobjs},
                           {LS_STAT_REF_EVENTS, m_events},
                           {LS_STAT_REF_EVENT_BYTES, nev * 16}};
    tsnap_t s = {.pid = (uint64_t)getpid(),
                 .exe = mods[0].path,
                 .reason = reason,
                 .modules = mods,
                 .nmodules = nmods,
                 .stacks = st,
                 .nstacks = m_nstacks,
                 .refs = 1,
                 .ref_types = types,
                 .nref_types = m_ntypes,
                 .ref_objects = objs,
                 .nref_objects = nobjs,
                 .ref_events = events,
                 .nref_events = nev,
                 .ref_findings = finds,
                 .nref_findings = m_nfinds,
                 .ref_pairs = m_pairs,
                 .nref_pairs = m_npairs,
                 .stats = stats,
                 .nstats = 4};
    CHECK(tsnap_write(path, &s) == 0);
}

/* ---- helpers --------------------------------------------------------------------------- */

typedef struct loaded {
    ls_snapshot_t snap;
    ls_symbolizer_t *sym;
    ls_report_t *rep;
    const ls_refs_t *refs;
} loaded_t;

static int load(const char *name, loaded_t *l)
{
    char path[256], err[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    memset(l, 0, sizeof(*l));
    if (ls_snapshot_load(path, &l->snap, err, sizeof(err))) {
        fprintf(stderr, "load: %s\n", err);
        CHECK(0);
        return -1;
    }
    l->sym = ls_symbolizer_new(&l->snap, NULL);
    l->rep = ls_report_build(&l->snap, l->sym, NULL, err, sizeof(err));
    CHECK(l->rep != NULL);
    if (!l->rep) return -1;
    l->refs = ls_report_refs(l->rep);
    return 0;
}

/* Writes the stand-in agent's state as NAME and loads it. */
static int snapshot(const char *name, uint64_t reason, uint32_t extra_flags, loaded_t *l)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    m_write(path, reason, extra_flags);
    return load(name, l);
}

static void unload(loaded_t *l)
{
    ls_report_free(l->rep);
    ls_symbolizer_free(l->sym);
    ls_snapshot_free(&l->snap);
}

static char *render(const ls_report_t *r, int json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (json)
        CHECK(ls_report_write_json(r, f) == 0);
    else
        ls_report_write_text(r, f);
    fclose(f);
    return buf;
}

static unsigned line_of(const char *marker)
{
    return tsnap_find_line(REFS_TARGET_SRC, marker);
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0)) return 1;
    fprintf(stderr, "missing line: \"%s\"\n", line);
    return 0;
}

static const char *fn(const ls_sym_frame_t *f, size_t n, size_t i)
{
    return i < n ? f[i].function : NULL;
}

/* ---- tests ----------------------------------------------------------------------------- */

/* funcB forgets the put of the reference funcA returned; funcC takes one reference too many;
 * funcD does it right (what the agent learns from). */
static void test_conn_scenario(void)
{
    m_reset();
    refs_conn_run("DDBBC");
    loaded_t l;
    if (snapshot("conn.lsnap", LS_REASON_EXIT, 0, &l)) return;
    const ls_refs_t *r = l.refs;
    CHECK_U(ls_refs_leaked_objects(r), 3);
    CHECK_U(ls_refs_errors(r), 0);
    CHECK_U(ls_refs_nfindings(r), 0);
    CHECK_U(ls_refs_ngroups(r), 2);
    CHECK_U(ls_report_refs_problems(l.rep), 3);
    const ls_refs_group_t *g = ls_refs_group(r, 0);
    if (g) {
        CHECK_STR(g->type, "struct conn");
        CHECK_STR(g->verdict, "no_put_in_caller");
        CHECK_STR(g->message, "get in funcA reached from funcB has no put");
        CHECK_STR(g->function, "funcA");
        CHECK_STR(g->culprit, "funcB");
        CHECK_U(g->objects, 2);
        CHECK_U(g->references, 2);
        CHECK(!g->tracker && !g->incomplete);
        /* obj_get (a wrapper: called from funcA and funcC) and the inline ls_ref_get are
         * skipped */
        CHECK_STR(fn(g->stack, g->nstack, 0), "funcA");
        CHECK_U(g->nstack ? g->stack[0].line : 0, line_of("@A-get"));
        CHECK_STR(fn(g->stack, g->nstack, 1), "funcB");
        CHECK_U(g->nstack > 1 ? g->stack[1].line : 0, line_of("@B-call"));
        CHECK_STR(fn(g->stack, g->nstack, 2), "conn_scenario");
        /* obj_new has one caller: not a wrapper */
        CHECK_STR(fn(g->create_stack, g->ncreate, 0), "obj_new");
        CHECK_STR(fn(g->create_stack, g->ncreate, 1), "conn_scenario");
        CHECK_U(g->nexamples, 2);
        CHECK_U(g->examples[0].addr, refs_pool_addr(2));
        CHECK_U(g->examples[1].addr, refs_pool_addr(3));
        CHECK(g->examples[0].count == 1 && g->examples[0].nevents == 3);
    }
    g = ls_refs_group(r, 1);
    if (g) {
        CHECK_STR(g->verdict, "extra_get");
        CHECK_STR(g->message, "extra get in funcC");
        CHECK_STR(g->function, "funcC");
        CHECK_STR(g->culprit, "funcC");
        CHECK_U(g->objects, 1);
        CHECK_U(g->references, 1);
        CHECK_STR(fn(g->stack, g->nstack, 0), "funcC");
        CHECK_U(g->nstack ? g->stack[0].line : 0, line_of("@C-get"));
        CHECK_U(g->nexamples, 1);
        CHECK(g->examples[0].addr == refs_pool_addr(4) && g->examples[0].nevents == 5);
    }

    char *text = render(l.rep, 0);
    CHECK(has_line(text, "REFERENCE COUNTS: 3 objects still referenced at exit (2 groups); no "
                         "reference errors"));
    CHECK(has_line(text, "2 unpaired references in 2 objects of type \"struct conn\": get in "
                         "funcA reached from funcB has no put  [refs group 1 of 2]"));
    CHECK(has_line(text, "1 unpaired reference in 1 object of type \"struct conn\": extra get "
                         "in funcC  [refs group 2 of 2]"));
    CHECK(has_line(text, "  unpaired get:"));
    CHECK(has_line(text, "  objects created at:"));
    char ex[128];
    snprintf(ex, sizeof(ex), "  e.g. object 0x%llx: count 1, 3 events",
             (unsigned long long)refs_pool_addr(2));
    CHECK(has_line(text, ex));
    snprintf(ex, sizeof(ex), "      object 0x%llx: count 1, 3 events",
             (unsigned long long)refs_pool_addr(3));
    CHECK(has_line(text, ex));
    CHECK(has_line(text, "REFS SUMMARY:"));
    CHECK(has_line(text, "   still referenced: 3 objects, 3 references in 2 groups"));
    CHECK(has_line(text, "   reference errors: 0"));
    CHECK(has_line(text, "      learned pairs: 4"));
    /* refs after the leak records, before LEAK SUMMARY; their summary after it */
    const char *rc = strstr(text, "REFERENCE COUNTS"), *ls = strstr(text, "LEAK SUMMARY"),
               *rs = strstr(text, "REFS SUMMARY");
    CHECK(rc && ls && rs && rc < ls && ls < rs);
    free(text);

    char *js = render(l.rep, 1);
    cJSON *root = cJSON_Parse(js);
    CHECK(root != NULL);
    cJSON *refs = cJSON_GetObjectItem(root, "refs");
    CHECK(cJSON_IsObject(refs));
    CHECK(cJSON_GetObjectItem(refs, "objects_live")->valuedouble == 3);
    CHECK(cJSON_GetObjectItem(refs, "leaked_objects")->valuedouble == 3);
    CHECK(cJSON_GetObjectItem(refs, "errors")->valuedouble == 0);
    cJSON *stats = cJSON_GetObjectItem(refs, "stats");
    CHECK(cJSON_GetObjectItem(stats, "pairs_learned")->valuedouble == 4);
    CHECK(cJSON_GetObjectItem(stats, "events")->valuedouble == 4 + 4 + 3 + 3 + 5);
    CHECK(cJSON_GetObjectItem(stats, "events_dropped")->valuedouble == 0);
    cJSON *leaks = cJSON_GetObjectItem(refs, "leaks");
    CHECK(cJSON_GetArraySize(leaks) == 2);
    cJSON *j0 = cJSON_GetArrayItem(leaks, 0), *j1 = cJSON_GetArrayItem(leaks, 1);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j0, "type")), "struct conn");
    CHECK(cJSON_GetObjectItem(j0, "objects")->valuedouble == 2);
    CHECK(cJSON_GetObjectItem(j0, "references")->valuedouble == 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j0, "verdict")), "no_put_in_caller");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j0, "message")),
              "get in funcA reached from funcB has no put");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j0, "function")), "funcA");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j0, "culprit")), "funcB");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j0, "paired_by")), "inference");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j0, "incomplete")));
    CHECK_STR(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j0, "get_site"), "function")),
        "funcA");
    cJSON *gs = cJSON_GetObjectItem(j0, "get_stack");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(gs, 1), "function")),
              "funcB");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(gs, 0), "file")),
              "refs_target.c");
    cJSON *cs = cJSON_GetObjectItem(j0, "create_stack");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cs, 0), "function")),
              "obj_new");
    cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j0, "examples"), 0);
    snprintf(ex, sizeof(ex), "0x%llx", (unsigned long long)refs_pool_addr(2));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(e0, "addr")), ex);
    CHECK(cJSON_GetObjectItem(e0, "count")->valuedouble == 1);
    CHECK(cJSON_GetObjectItem(e0, "events")->valuedouble == 3);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j1, "verdict")), "extra_get");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j1, "message")), "extra get in funcC");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(refs, "findings")) == 0);
    cJSON_Delete(root);
    free(js);
    unload(&l);
}

/* Two calls from one source line have two return addresses: their references are one group. */
static void test_same_line(void)
{
    m_reset();
    refs_conn_run("D");
    refs_conn_same_line();
    loaded_t l;
    if (snapshot("line.lsnap", LS_REASON_EXIT, 0, &l)) return;
    CHECK_U(ls_refs_ngroups(l.refs), 1);
    const ls_refs_group_t *g = ls_refs_group(l.refs, 0);
    if (g) {
        CHECK_STR(g->message, "extra get in funcC");
        CHECK_U(g->objects, 2);
        CHECK_U(g->references, 2);
        CHECK_STR(fn(g->stack, g->nstack, 2), "refs_conn_same_line");
        CHECK_U(g->nstack > 2 ? g->stack[2].line : 0, line_of("@same-line"));
    }
    unload(&l);
}

/* The same program seen live: references are outstanding, not leaked. */
static void test_live_wording(void)
{
    m_reset();
    refs_conn_run("DBC");
    loaded_t l;
    if (snapshot("live.lsnap", LS_REASON_LIVE, 0, &l)) return;
    char *text = render(l.rep, 0);
    CHECK(has_line(text, "REFERENCE COUNTS: 2 objects with outstanding references (2 groups); no "
                         "reference errors"));
    CHECK(has_line(text, "1 outstanding reference in 1 object of type \"struct conn\": get in "
                         "funcA reached from funcB has no put  [refs group 1 of 2]"));
    free(text);
    unload(&l);
}

/* Trackers pair exactly: the reference left is the second get's, although the structural rule
 * (the latest reference first) would have dropped it. */
static void test_trackers(void)
{
    m_reset();
    refs_tracked_run();
    loaded_t l;
    if (snapshot("tracked.lsnap", LS_REASON_EXIT, 0, &l)) return;
    const ls_refs_t *r = l.refs;
    CHECK_U(ls_refs_leaked_objects(r), 1);
    CHECK_U(ls_refs_ngroups(r), 2);
    const ls_refs_group_t *g = ls_refs_group(r, 0);
    if (g) {
        CHECK_STR(g->verdict, "unpaired_create");
        CHECK_STR(g->message, "reference from creation in refs_tracked_run has no put");
        CHECK(!g->tracker);
    }
    g = ls_refs_group(r, 1);
    if (g) {
        CHECK_STR(g->verdict, "no_put");
        CHECK_STR(g->message, "get in tracked_two has no put");
        CHECK(g->tracker);
        CHECK_STR(fn(g->stack, g->nstack, 0), "tracked_two");
        CHECK_U(g->nstack ? g->stack[0].line : 0, line_of("@t2-get"));
    }
    char *text = render(l.rep, 0);
    CHECK(has_line(text, "  unpaired get (paired exactly, by trackers):"));
    CHECK(has_line(text, "  unpaired creation:"));
    free(text);
    char *js = render(l.rep, 1);
    cJSON *root = cJSON_Parse(js);
    cJSON *leaks = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "refs"), "leaks");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(leaks, 1), "paired_by")),
              "tracker");
    cJSON_Delete(root);
    free(js);
    unload(&l);
}

/* single_get has one caller (single_user, from one function): not a wrapper. chain_get (called
 * from chain_x and chain_y) is two levels above chain_inner, which is innermost in every get and
 * has one caller: only the first frame can be a wrapper, so the site is chain_inner, released
 * two levels up (learned from chain_x): the culprit is chain_y. */
static void test_wrappers(void)
{
    m_reset();
    refs_single_run();
    refs_chain_run();
    loaded_t l;
    if (snapshot("wrappers.lsnap", LS_REASON_EXIT, 0, &l)) return;
    const ls_refs_t *r = l.refs;
    CHECK_U(ls_refs_leaked_objects(r), 2);
    size_t single = 0, chain = 0;
    for (size_t i = 0; i < ls_refs_ngroups(r); i++) {
        const ls_refs_group_t *g = ls_refs_group(r, i);
        if (strcmp(g->type, "struct single") == 0 && strcmp(g->verdict, "extra_get") == 0) {
            single++;
            CHECK_STR(g->message, "extra get in single_get");
            CHECK_STR(fn(g->stack, g->nstack, 0), "single_get");
            CHECK_U(g->nstack ? g->stack[0].line : 0, line_of("@single-get"));
            CHECK_STR(fn(g->stack, g->nstack, 1), "single_user");
        } else if (strcmp(g->type, "struct chain") == 0) {
            chain++;
            CHECK_STR(g->verdict, "no_put_in_caller");
            CHECK_STR(g->message, "get in chain_inner reached from chain_y has no put");
            CHECK_STR(g->function, "chain_inner");
            CHECK_STR(g->culprit, "chain_y");
            CHECK_STR(fn(g->stack, g->nstack, 2), "chain_y");
            CHECK_U(g->nstack > 2 ? g->stack[2].line : 0, line_of("@chain-y-get"));
        }
    }
    CHECK_U(single, 2); /* two call sites of single_user: two stacks */
    CHECK_U(chain, 1);
    /* order: most references first, then objects, then type name, then stack text */
    for (size_t i = 1; i < ls_refs_ngroups(r); i++) {
        const ls_refs_group_t *a = ls_refs_group(r, i - 1), *b = ls_refs_group(r, i);
        CHECK(a->references > b->references ||
              (a->references == b->references &&
               (a->objects > b->objects ||
                (a->objects == b->objects && strcmp(a->type, b->type) <= 0))));
    }
    unload(&l);
}

/* Findings: a double put (twice from one stack: folded), a get after the last put, a get on an
 * object never registered; their order, text and JSON. */
static void test_findings(void)
{
    m_reset();
    refs_conn_run("D"); /* gets through funcA: obj_get has two callers with late_get_site */
    refs_errors_run();
    loaded_t l;
    if (snapshot("errors.lsnap", LS_REASON_EXIT, 0, &l)) return;
    const ls_refs_t *r = l.refs;
    CHECK_U(ls_refs_leaked_objects(r), 0);
    CHECK_U(ls_refs_errors(r), 4);
    CHECK_U(ls_refs_nfindings(r), 3);
    const ls_refs_finding_t *f = ls_refs_finding(r, 0);
    if (f) {
        CHECK_U(f->rec->kind, LS_REF_FIND_DOUBLE_PUT);
        CHECK_U(f->rec->count, 2);
        CHECK_STR(fn(f->stack, f->nstack, 0), "double_put_site");
        CHECK_U(f->nstack ? f->stack[0].line : 0, line_of("@double-put"));
        CHECK_STR(fn(f->other, f->nother, 0), "refs_errors_run");
        CHECK_U(f->nother ? f->other[0].line : 0, line_of("@kill-put"));
    }
    f = ls_refs_finding(r, 1);
    if (f) {
        CHECK_U(f->rec->kind, LS_REF_FIND_USE_AFTER_PUT);
        CHECK_U(f->other_op, LS_REF_OP_PUT);
        CHECK_STR(fn(f->stack, f->nstack, 0), "late_get_site");
        CHECK_U(f->nhist, 4);
    }
    f = ls_refs_finding(r, 2);
    if (f) {
        CHECK_U(f->rec->kind, LS_REF_FIND_UNREGISTERED);
        CHECK(f->type == NULL);
        /* no type: the wrappers of the type whose wrapper it enters */
        CHECK_STR(fn(f->stack, f->nstack, 0), "stray_get_site");
    }
    char *text = render(l.rep, 0);
    char line[256];
    unsigned tid = (unsigned)gettid();
    CHECK(has_line(text, "REFERENCE COUNTS: no object still referenced at exit; 4 reference "
                         "errors"));
    snprintf(line, sizeof(line),
             "double put on an object of type \"struct conn\" (2 times) [thread %u]", tid);
    CHECK(has_line(text, line));
    snprintf(line, sizeof(line), "  the put that took the count to zero [thread %u]:", tid);
    CHECK(has_line(text, line));
    snprintf(line, sizeof(line),
             "get after the last put on an object of type \"struct conn\" (1 time) [thread %u]",
             tid);
    CHECK(has_line(text, line));
    snprintf(line, sizeof(line), "  the put that ended it [thread %u]:", tid);
    CHECK(has_line(text, line));
    snprintf(line, sizeof(line), "get on an object that was never registered (1 time) [thread %u]",
             tid);
    CHECK(has_line(text, line));
    /* obj_new has two callers here (conn_scenario, refs_errors_run): a wrapper */
    CHECK(strstr(text, "  history: create (refs_errors_run <- ") != NULL);
    CHECK(strstr(text, "), get (funcA <- funcD), put (funcD <- refs_errors_run), put "
                       "(refs_errors_run <- ") != NULL);
    CHECK(has_line(text, "   reference errors: 4 (2 double put, 1 use after put, 1 unregistered)"));
    /* double put before use after put before unregistered */
    const char *a = strstr(text, "double put on"), *b = strstr(text, "get after the last put"),
               *c = strstr(text, "never registered");
    CHECK(a && b && c && a < b && b < c);
    free(text);

    char *js = render(l.rep, 1);
    cJSON *root = cJSON_Parse(js);
    cJSON *refs = cJSON_GetObjectItem(root, "refs");
    CHECK(cJSON_GetObjectItem(refs, "errors")->valuedouble == 4);
    cJSON *fs = cJSON_GetObjectItem(refs, "findings");
    CHECK(cJSON_GetArraySize(fs) == 3);
    cJSON *f0 = cJSON_GetArrayItem(fs, 0), *f1 = cJSON_GetArrayItem(fs, 1),
          *f2 = cJSON_GetArrayItem(fs, 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f0, "kind")), "double_put");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f0, "type")), "struct conn");
    CHECK(cJSON_GetObjectItem(f0, "count")->valuedouble == 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f0, "op")), "put");
    CHECK(cJSON_GetObjectItem(f0, "tid")->valuedouble == tid);
    CHECK(cJSON_GetObjectItem(f0, "other_tid")->valuedouble == tid);
    char addr[32];
    snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)refs_pool_addr(1));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f0, "addr")), addr);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(
                  cJSON_GetArrayItem(cJSON_GetObjectItem(f0, "other_stack"), 0), "function")),
              "refs_errors_run");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(
                  cJSON_GetArrayItem(cJSON_GetObjectItem(f0, "create_stack"), 0), "function")),
              "refs_errors_run");
    cJSON *h = cJSON_GetObjectItem(f0, "history");
    CHECK(cJSON_GetArraySize(h) == 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(h, 0), "op")), "create");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(h, 0), "tracker")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(
                  cJSON_GetObjectItem(cJSON_GetArrayItem(h, 1), "site"), "function")),
              "refs_errors_run");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f1, "kind")), "use_after_put");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f1, "op")), "get");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f2, "kind")), "unregistered");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(f2, "type")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(f2, "other_stack")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(f2, "other_tid")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(f2, "create_stack")));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(f2, "history")) == 0);
    cJSON_Delete(root);
    free(js);
    unload(&l);
}

/* A get that was counted but not recorded: the count holds a reference no history shows. */
static void test_incomplete(void)
{
    m_reset();
    m_drop_next_get = 1;
    refs_conn_run("B");
    loaded_t l;
    if (snapshot("dropped.lsnap", LS_REASON_EXIT, 0, &l)) return;
    CHECK_U(ls_refs_ngroups(l.refs), 1);
    const ls_refs_group_t *g = ls_refs_group(l.refs, 0);
    if (g) {
        CHECK_STR(g->verdict, "unrecorded");
        CHECK_STR(g->message, "references whose gets were not recorded");
        CHECK(g->incomplete);
        CHECK_U(g->references, 1);
        CHECK_STR(fn(g->create_stack, g->ncreate, 0), "obj_new");
    }
    char *text = render(l.rep, 0);
    CHECK(has_line(text, "  note: some of these histories are incomplete (events dropped or "
                         "compacted): the pairing may be wrong"));
    free(text);
    unload(&l);

    /* compacted histories are flagged too */
    m_reset();
    refs_conn_run("DB");
    if (snapshot("compacted.lsnap", LS_REASON_EXIT, LS_REF_OBJ_COMPACTED, &l)) return;
    g = ls_refs_group(l.refs, 0);
    CHECK(g && g->incomplete);
    char *js = render(l.rep, 1);
    cJSON *root = cJSON_Parse(js);
    cJSON *leaks = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "refs"), "leaks");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(leaks, 0), "incomplete")));
    cJSON_Delete(root);
    free(js);
    unload(&l);
}

/* Without refs chunks: "refs" is null and the text has no reference counts. */
static void test_no_refs(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/plain.lsnap", dir);
    tsnap_t s = {.pid = 1, .reason = LS_REASON_EXIT, .leak_checked = 1};
    CHECK(tsnap_write(path, &s) == 0);
    loaded_t l;
    if (load("plain.lsnap", &l)) return;
    CHECK(!l.snap.has_refs);
    CHECK_U(ls_report_refs_problems(l.rep), 0);
    char *text = render(l.rep, 0);
    CHECK(strstr(text, "REFERENCE COUNTS") == NULL && strstr(text, "REFS SUMMARY") == NULL);
    free(text);
    char *js = render(l.rep, 1);
    cJSON *root = cJSON_Parse(js);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(root, "refs")));
    cJSON_Delete(root);
    free(js);
    unload(&l);
}

/* The same snapshot analysed twice gives the same bytes (no dependence on addresses or on
 * hash order), and without a symbolizer the analysis still runs (bare pcs). */
static void test_deterministic(void)
{
    m_reset();
    refs_conn_run("DDBBC");
    refs_tracked_run();
    refs_errors_run();
    loaded_t a, b;
    if (snapshot("all.lsnap", LS_REASON_EXIT, 0, &a)) return;
    if (load("all.lsnap", &b)) return;
    char *ta = render(a.rep, 0), *tb = render(b.rep, 0);
    CHECK(ta && tb && strcmp(ta, tb) == 0);
    char *ja = render(a.rep, 1), *jb = render(b.rep, 1);
    CHECK(ja && jb && strcmp(ja, jb) == 0);
    free(ta);
    free(tb);
    free(ja);
    free(jb);
    char err[256];
    ls_report_t *bare = ls_report_build(&a.snap, NULL, NULL, err, sizeof(err));
    CHECK(bare != NULL);
    if (bare) {
        CHECK_U(ls_refs_leaked_objects(ls_report_refs(bare)), 4);
        char *t = render(bare, 0);
        CHECK(strstr(t, "REFERENCE COUNTS: 4 objects still referenced at exit") != NULL);
        free(t);
        ls_report_free(bare);
    }
    unload(&a);
    unload(&b);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    nmods = tsnap_self_modules(mods, 64);
    RUN(test_conn_scenario);
    RUN(test_same_line);
    RUN(test_live_wording);
    RUN(test_trackers);
    RUN(test_wrappers);
    RUN(test_findings);
    RUN(test_incomplete);
    RUN(test_no_refs);
    RUN(test_deterministic);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("TEST_REFS_KEEP")) /* to look at the snapshots with leakscope report */
        fprintf(stderr, "snapshots kept in %s\n", dir);
    else if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return t_done("test_refs");
}
