/*
 * ls_refs_report.c - reference counts of a snapshot: unpaired references of the objects still
 * alive, grouped and named, and the agent's findings, rendered (see ls_refs_report.h).
 *
 * Owns: per-stack symbolized frames (lazily, per snap->stacks index) with a function identity
 * (symbolized name + object, or the pc when unknown) and a source location per frame, the
 * wrapper found per (type, op), the release levels learned per get site, the groups and the
 * findings with copies of their frames (strings stay in the symbolizer).
 *
 * Building, in order:
 *  1. Wrappers. Programs call ls_ref_get() inside their own obj_get(), so obj_get is the
 *     innermost frame of every get. Per (type, op), over the distinct stacks of the live
 *     objects' events, the findings' histories and the learned pairs: a function that is the
 *     first non-plumbing frame of all of them, called from at least two distinct functions, is
 *     a wrapper, and every event's site is the frame past it. A function with one caller is
 *     never a wrapper (that only says one path was taken). In wrapped mode (run --refs) frame 0
 *     is already the caller of g_object_ref: those differ and nothing is skipped. An event of
 *     an unknown type (an object never registered) borrows the wrapper of the type whose
 *     wrapper it enters.
 *  2. Learning. Each REF_PAIRS record (get stack, put stack) that the agent saw drop each other
 *     gives the get site's release level: the frame where the two stacks meet (the first frame
 *     from the outer end where they part, ls_rp_common_outer) minus the site's index, in
 *     symbolized frames. 0: the function that took the reference drops it; 1: its caller does
 *     (it returned a new reference). Levels are kept per (type, op, site function) with counts;
 *     the exact (get stack, put stack) pairs too.
 *  3. Pairing. The history of each object alive with count > 0 goes through ls_rp_match with a
 *     score in tiers: the exact pair was learned > the pair's meeting level is one learned for
 *     the get's site > any other pair, by common outer frames (trackers are exact and handled
 *     by ls_rp_match). References still open afterwards have no put.
 *  4. Verdicts, per unpaired reference, from the site's most common learned level L: L >= 1
 *     "no_put_in_caller" (the frame L above the site should have dropped it), L = 0 "no_put";
 *     never seen released: "extra_get" (a tracked get: "no_put", it is exact); a creation's
 *     reference: "unpaired_create"; references the count holds beyond the recorded gets:
 *     "unrecorded".
 *  5. Groups: by (type, stack from the site on, verdict, tracker), ordered by references, then
 *     objects, then type name, then stack text. Stacks compare by source location (object,
 *     function, file, line), not pc: the two calls of an unrolled loop are one group. Findings: by
 * kind, count descending, stack text.
 */
#define _GNU_SOURCE
#include "ls_refs_report.h"
#include "ls_refpair.h"

#include <stdlib.h>
#include <string.h>

#define NONE SIZE_MAX
#define TIER ((int64_t)1 << 20) /* above any count of common frames (max_frames <= 256) */
#define NOPS 6                  /* ls_fmt_ref_op_t values 1..5, index 0 unused */

/* ---- stacks and function identities -------------------------------------------------------- */

typedef struct rstack {
    bool done;
    const uint64_t *pcs; /* raw, innermost first (ls_refpair compares these) */
    uint32_t npcs;
    ls_sym_frame_t *fr; /* expanded (inlined frames included, agent frames left out) */
    size_t nfr;
    uint32_t *fid;  /* per frame: function identity, >= 1 */
    uint32_t *loc;  /* per frame: source location identity (groups), >= 1 */
    uint8_t *plumb; /* per frame: plumbing */
    int32_t *pcf;   /* per pc: its outermost (not inlined) frame; -1 when left out */
} rstack_t;

typedef struct fclass {
    uint32_t wrapper; /* the class's wrapper function, 0 = none */
    uint32_t *ids;    /* stack ids seen in this class (detection input) */
    size_t nids, cap;
} fclass_t;

typedef struct level {
    uint32_t ti, op, fid, level;
    uint64_t count;
} level_t;

typedef struct exact {
    uint32_t ti, op, get, put;
} exact_t;

typedef struct unpaired {
    size_t obj; /* index in ref_objects */
    size_t ev;  /* index in ref_events; NONE: unrecorded references */
    uint32_t refs, ti;
    uint8_t op, tracker;
    const char *verdict;
    rstack_t *st;
    size_t site, culprit; /* frame indices (culprit NONE: unknown) */
} unpaired_t;

struct ls_refs {
    const ls_snapshot_t *snap;
    ls_symbolizer_t *sym;
    const ls_site_rules_t *rules;
    int oom;
    rstack_t *stacks; /* per snap->stacks index */
    char **ftext;     /* interned keys (function identities, source locations): id - 1 -> text */
    size_t nf, capf;
    uint32_t *fslot; /* open addressing: id or 0 */
    size_t fslots;
    fclass_t *cls; /* (types + 1) * NOPS; type index 0 = unknown type */
    size_t ncls;
    level_t *levels;
    size_t nlevels;
    exact_t *exact;
    size_t nexact;
    ls_refs_group_t *groups;
    size_t ngroups;
    ls_refs_finding_t *findings;
    size_t nfindings;
    uint64_t leaked_objects, leaked_refs, errors, pairs_learned;
    uint64_t errors_by_kind[LS_REF_FIND_FREED_REFERENCED + 1];
};

static const char *const api_functions[] = {
    "ls_ref_register",    "ls_ref_get",         "ls_ref_put",
    "ls_ref_get_tracked", "ls_ref_put_tracked", "ls_ref_destroy",
};

/* Plumbing for reference sites: the allocator's objects and --site-skip (ls_agg.h), and the
 * public API's always-inline functions, which symbolize as frames of their own. */
static bool refs_plumbing(const ls_refs_t *r, const ls_sym_frame_t *f)
{
    if (ls_frame_is_plumbing(f, r->rules)) return true;
    if (f->function)
        for (size_t i = 0; i < sizeof(api_functions) / sizeof(api_functions[0]); i++)
            if (strcmp(f->function, api_functions[i]) == 0) return true;
    return false;
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return ls_mix64(h);
}

/* Interns key; returns its id (>= 1), 0 when out of memory. */
static uint32_t fid_intern(ls_refs_t *r, const char *key)
{
    if ((r->nf + 1) * 2 > r->fslots) {
        size_t n = r->fslots ? r->fslots * 2 : 256;
        uint32_t *t = calloc(n, sizeof(*t));
        if (!t) return 0;
        for (size_t i = 0; i < r->fslots; i++) {
            uint32_t id = r->fslot[i];
            if (!id) continue;
            size_t k = str_hash(r->ftext[id - 1]) & (n - 1);
            while (t[k]) k = (k + 1) & (n - 1);
            t[k] = id;
        }
        free(r->fslot);
        r->fslot = t;
        r->fslots = n;
    }
    size_t k = str_hash(key) & (r->fslots - 1);
    while (r->fslot[k]) {
        if (strcmp(r->ftext[r->fslot[k] - 1], key) == 0) return r->fslot[k];
        k = (k + 1) & (r->fslots - 1);
    }
    if (r->nf == r->capf) {
        size_t n = r->capf ? r->capf * 2 : 256;
        char **v = realloc(r->ftext, n * sizeof(*v));
        if (!v) return 0;
        r->ftext = v;
        r->capf = n;
    }
    char *copy = strdup(key);
    if (!copy) return 0;
    r->ftext[r->nf++] = copy;
    r->fslot[k] = (uint32_t)r->nf;
    return (uint32_t)r->nf;
}

/* A frame's source location: the code, wherever it was loaded and whichever of its return
 * addresses (an unrolled loop calls from two) - as ls_agg's keys. */
static uint32_t frame_loc(ls_refs_t *r, const ls_sym_frame_t *f)
{
    char *key = NULL;
    int n =
        f->function || f->file
            ? asprintf(&key, "L%s\x1f%s\x1f%s\x1f%u\x1f%u", f->object ? f->object : "",
                       f->function ? f->function : "", f->file ? f->file : "", f->line, f->inlined)
            : asprintf(&key, "P%llx", (unsigned long long)f->pc);
    uint32_t id = n < 0 ? 0 : fid_intern(r, key);
    free(key);
    if (!id) r->oom = 1;
    return id;
}

static uint32_t frame_fid(ls_refs_t *r, const ls_sym_frame_t *f)
{
    char *key = NULL;
    int n = f->function ? asprintf(&key, "F%s\x1f%s", f->object ? f->object : "", f->function)
                        : asprintf(&key, "P%llx", (unsigned long long)f->pc);
    uint32_t id = n < 0 ? 0 : fid_intern(r, key);
    free(key);
    if (!id) r->oom = 1;
    return id;
}

/* The stack with this id, symbolized (NULL for id 0 or a missing stack, and when out of
 * memory, with r->oom set). */
static rstack_t *rs_get(ls_refs_t *r, uint32_t id)
{
    const ls_snap_stack_t *ss = id ? ls_snapshot_stack(r->snap, id) : NULL;
    if (!ss) return NULL;
    rstack_t *st = &r->stacks[ss - r->snap->stacks];
    if (st->done) return st->fid || !st->nfr ? st : NULL;
    st->done = true;
    st->pcs = ss->pcs;
    st->npcs = ss->nframes;
    if (ls_stack_expand(r->snap, r->sym, id, &st->fr, &st->nfr)) goto oom;
    st->fid = malloc((st->nfr + 1) * sizeof(*st->fid));
    st->loc = malloc((st->nfr + 1) * sizeof(*st->loc));
    st->plumb = malloc(st->nfr + 1);
    st->pcf = malloc((st->npcs + 1) * sizeof(*st->pcf));
    if (!st->fid || !st->loc || !st->plumb || !st->pcf) goto oom;
    for (size_t j = 0; j < st->nfr; j++) {
        st->plumb[j] = refs_plumbing(r, &st->fr[j]);
        st->fid[j] = frame_fid(r, &st->fr[j]);
        st->loc[j] = frame_loc(r, &st->fr[j]);
        if (!st->fid[j] || !st->loc[j]) goto oom;
    }
    /* A pc gives one or more frames (inlined ones first, all with its pc), or none (agent). */
    size_t j = 0;
    for (uint32_t i = 0; i < st->npcs; i++) {
        uint64_t pc;
        memcpy(&pc, &st->pcs[i], sizeof(pc));
        if (j < st->nfr && st->fr[j].pc == pc) {
            while (j + 1 < st->nfr && st->fr[j].inlined && st->fr[j + 1].pc == pc) j++;
            st->pcf[i] = (int32_t)j++;
        } else {
            st->pcf[i] = -1;
        }
    }
    return st;
oom:
    r->oom = 1;
    free(st->fid);
    st->fid = NULL;
    st->nfr = 0;
    return NULL;
}

/* First non-plumbing frame at or after from, or NONE. */
static size_t first_frame(const rstack_t *st, size_t from)
{
    for (size_t j = from; st && j < st->nfr; j++)
        if (!st->plumb[j]) return j;
    return NONE;
}

static size_t type_index(const ls_refs_t *r, uint32_t type)
{
    const ls_snap_ref_type_t *t = ls_snapshot_ref_type(r->snap, type);
    return t ? (size_t)(t - r->snap->ref_types) + 1 : 0;
}

static const char *type_name(const ls_refs_t *r, size_t ti)
{
    return ti ? r->snap->ref_types[ti - 1].name : NULL;
}

static fclass_t *fclass(ls_refs_t *r, size_t ti, unsigned op)
{
    return &r->cls[ti * NOPS + (op < NOPS ? op : 0)];
}

/* The site of an event of op on type ti with stack st: past plumbing and the class's wrappers;
 * 0 when every frame is plumbing (as ls_site_index). */
static size_t site_of(ls_refs_t *r, const rstack_t *st, size_t ti, unsigned op)
{
    size_t j = first_frame(st, 0);
    if (j == NONE) return 0;
    const fclass_t *c = fclass(r, ti, op);
    /* An object of unknown type (a get on an object never registered) borrows the wrappers of
     * the type whose wrappers it enters: obj_get is a wrapper for those too. */
    for (size_t t = 1; ti == 0 && !c->wrapper && t <= r->snap->nref_types; t++)
        if (fclass(r, t, op)->wrapper == st->fid[j]) c = fclass(r, t, op);
    if (c->wrapper && st->fid[j] == c->wrapper) {
        size_t nj = first_frame(st, j + 1);
        if (nj != NONE) j = nj;
    }
    return j;
}

/* ---- 1: wrappers --------------------------------------------------------------------------- */

static void class_add(ls_refs_t *r, size_t ti, unsigned op, uint32_t stack)
{
    fclass_t *c = fclass(r, ti, op);
    if (!stack || !op || op >= NOPS) return;
    if (c->nids == c->cap) {
        size_t n = c->cap ? c->cap * 2 : 16;
        uint32_t *v = realloc(c->ids, n * sizeof(*v));
        if (!v) {
            r->oom = 1;
            return;
        }
        c->ids = v;
        c->cap = n;
    }
    c->ids[c->nids++] = stack;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The wrapper of stacks v[0..n) whose first non-plumbing frames are cur[]: one level, their
 * common innermost function if its callers differ; 0 when none. Walking on while the callers
 * agree would also skip obj_new <- make_conn <- {x, y}: make_conn is where the objects are
 * made, and is indistinguishable from a second wrapper. */
static uint32_t common_wrapper(rstack_t *const *v, const size_t *cur, size_t n)
{
    if (n < 2) return 0; /* one stack: one path, nothing says its frame 0 is a wrapper */
    uint32_t f0 = v[0]->fid[cur[0]], c0 = 0;
    bool diverge = false;
    for (size_t s = 0; s < n; s++) {
        if (v[s]->fid[cur[s]] != f0) return 0;
        size_t nj = first_frame(v[s], cur[s] + 1);
        if (nj == NONE) return 0; /* the outermost frame is nobody's wrapper */
        uint32_t caller = v[s]->fid[nj];
        if (s == 0)
            c0 = caller;
        else if (caller != c0)
            diverge = true;
    }
    return diverge ? f0 : 0;
}

static void detect_wrappers(ls_refs_t *r, fclass_t *c)
{
    qsort(c->ids, c->nids, sizeof(*c->ids), cmp_u32);
    rstack_t **v = malloc((c->nids + 1) * sizeof(*v));
    size_t *cur = malloc((c->nids + 1) * sizeof(*cur));
    size_t n = 0;
    if (!v || !cur) {
        r->oom = 1;
    } else {
        for (size_t i = 0; i < c->nids; i++) {
            if (i && c->ids[i] == c->ids[i - 1]) continue;
            rstack_t *st = rs_get(r, c->ids[i]);
            size_t j = first_frame(st, 0);
            if (j == NONE) continue;
            v[n] = st;
            cur[n++] = j;
        }
        c->wrapper = common_wrapper(v, cur, n);
    }
    free(v);
    free(cur);
    free(c->ids);
    c->ids = NULL;
    c->nids = c->cap = 0;
}

static void find_wrappers(ls_refs_t *r)
{
    const ls_snapshot_t *s = r->snap;
    for (size_t i = 0; i < s->nref_objects; i++) {
        const ls_fmt_ref_object_t *o = &s->ref_objects[i];
        size_t ti = type_index(r, o->type);
        class_add(r, ti, LS_REF_OP_CREATE, o->create_stack);
        for (uint32_t k = 0; k < o->nevents; k++) {
            const ls_fmt_ref_event_t *e = &s->ref_events[o->first_event + k];
            class_add(r, ti, e->op, e->stack);
        }
    }
    for (size_t i = 0; i < s->nref_findings; i++) {
        const ls_fmt_ref_finding_t *f = &s->ref_findings[i];
        size_t ti = type_index(r, f->type);
        class_add(r, ti, f->op, f->stack);
        class_add(r, ti, LS_REF_OP_CREATE, f->create_stack);
        for (uint32_t k = 0; k < f->nevents; k++) {
            const ls_fmt_ref_event_t *e = &s->ref_events[f->first_event + k];
            class_add(r, ti, e->op, e->stack);
        }
    }
    for (size_t i = 0; i < s->nref_pairs; i++) {
        const ls_fmt_ref_pair_t *p = &s->ref_pairs[i];
        size_t ti = type_index(r, p->type);
        class_add(r, ti, p->get_op, p->get_stack);
        class_add(r, ti, LS_REF_OP_PUT, p->put_stack);
    }
    for (size_t k = 0; k < r->ncls; k++)
        if (r->cls[k].nids) detect_wrappers(r, &r->cls[k]);
}

/* ---- 2: learning --------------------------------------------------------------------------- */

/* Release level of the reference taken at get stack g (site index site) and dropped by a put
 * with stack pcs p[0..np): the frames from the site to where the stacks meet; -1: unknown. */
static int meet_level(const rstack_t *g, size_t site, const uint64_t *p, size_t np)
{
    if (!g || !g->nfr || !g->npcs) return -1;
    size_t common = ls_rp_common_outer(g->pcs, g->npcs, p, np);
    size_t m = common >= g->npcs ? 0 : g->npcs - common - 1;
    int32_t mf = -1;
    for (size_t k = m; k < g->npcs && mf < 0; k++) mf = g->pcf[k]; /* past left-out pcs */
    if (mf < 0) return -1;
    return (size_t)mf > site ? (int)((size_t)mf - site) : 0; /* met inside a wrapper: 0 */
}

static int cmp_level(const void *a, const void *b)
{
    const level_t *x = a, *y = b;
    if (x->ti != y->ti) return x->ti < y->ti ? -1 : 1;
    if (x->op != y->op) return x->op < y->op ? -1 : 1;
    if (x->fid != y->fid) return x->fid < y->fid ? -1 : 1;
    return x->level < y->level ? -1 : x->level > y->level;
}

static int cmp_exact(const void *a, const void *b)
{
    const exact_t *x = a, *y = b;
    if (x->ti != y->ti) return x->ti < y->ti ? -1 : 1;
    if (x->op != y->op) return x->op < y->op ? -1 : 1;
    if (x->get != y->get) return x->get < y->get ? -1 : 1;
    return x->put < y->put ? -1 : x->put > y->put;
}

static void learn(ls_refs_t *r)
{
    const ls_snapshot_t *s = r->snap;
    r->levels = calloc(s->nref_pairs + 1, sizeof(*r->levels));
    r->exact = calloc(s->nref_pairs + 1, sizeof(*r->exact));
    if (!r->levels || !r->exact) {
        r->oom = 1;
        return;
    }
    for (size_t i = 0; i < s->nref_pairs; i++) {
        const ls_fmt_ref_pair_t *p = &s->ref_pairs[i];
        uint32_t ti = (uint32_t)type_index(r, p->type);
        r->pairs_learned += p->count;
        r->exact[r->nexact++] = (exact_t){ti, p->get_op, p->get_stack, p->put_stack};
        rstack_t *g = rs_get(r, p->get_stack);
        const ls_snap_stack_t *ps = p->put_stack ? ls_snapshot_stack(s, p->put_stack) : NULL;
        if (!g || !g->nfr) continue;
        size_t site = site_of(r, g, ti, p->get_op);
        int lvl = meet_level(g, site, ps ? ps->pcs : NULL, ps ? ps->nframes : 0);
        if (lvl < 0) continue;
        r->levels[r->nlevels++] = (level_t){ti, p->get_op, g->fid[site], (uint32_t)lvl, p->count};
    }
    qsort(r->exact, r->nexact, sizeof(*r->exact), cmp_exact);
    qsort(r->levels, r->nlevels, sizeof(*r->levels), cmp_level);
    size_t n = 0;
    for (size_t i = 0; i < r->nlevels; i++) {
        if (n && cmp_level(&r->levels[n - 1], &r->levels[i]) == 0)
            r->levels[n - 1].count += r->levels[i].count;
        else
            r->levels[n++] = r->levels[i];
    }
    r->nlevels = n;
}

static bool is_exact(const ls_refs_t *r, uint32_t ti, unsigned op, uint32_t get, uint32_t put)
{
    if (!get || !put) return false;
    exact_t key = {ti, op, get, put};
    return bsearch(&key, r->exact, r->nexact, sizeof(key), cmp_exact) != NULL;
}

static bool has_level(const ls_refs_t *r, uint32_t ti, unsigned op, uint32_t fid, int lvl)
{
    level_t key = {ti, op, fid, (uint32_t)lvl, 0};
    return lvl >= 0 && bsearch(&key, r->levels, r->nlevels, sizeof(key), cmp_level) != NULL;
}

/* The most common level learned for the site (ties: the lowest); false when none. */
static bool learned_level(const ls_refs_t *r, uint32_t ti, unsigned op, uint32_t fid,
                          uint32_t *level)
{
    level_t key = {ti, op, fid, 0, 0};
    size_t lo = 0, hi = r->nlevels;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cmp_level(&r->levels[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t best = 0;
    for (size_t i = lo; i < r->nlevels; i++) {
        const level_t *l = &r->levels[i];
        if (l->ti != ti || l->op != op || l->fid != fid) break;
        if (l->count > best) {
            best = l->count;
            *level = l->level;
        }
    }
    return best > 0;
}

/* ---- 3-4: pairing and verdicts ------------------------------------------------------------- */

typedef struct score_ctx {
    ls_refs_t *r;
    uint32_t ti;
    const ls_rp_event_t *base;
    rstack_t **st;
    size_t *site;
} score_ctx_t;

static int64_t score(void *ctx, const ls_rp_event_t *g, const ls_rp_event_t *p)
{
    score_ctx_t *c = ctx;
    size_t gi = (size_t)(g - c->base);
    int64_t common = (int64_t)ls_rp_common_outer(g->pcs, g->npcs, p->pcs, p->npcs);
    if (is_exact(c->r, c->ti, g->op, g->stack, p->stack)) return 3 * TIER + common;
    const rstack_t *gs = c->st[gi];
    if (gs && gs->nfr) {
        int lvl = meet_level(gs, c->site[gi], p->pcs, p->npcs);
        if (has_level(c->r, c->ti, g->op, gs->fid[c->site[gi]], lvl)) return 2 * TIER + common;
    }
    return common;
}

typedef struct vec {
    unpaired_t *v;
    size_t n, cap;
} vec_t;

static void push_unpaired(ls_refs_t *r, vec_t *u, const unpaired_t *x)
{
    if (u->n == u->cap) {
        size_t n = u->cap ? u->cap * 2 : 64;
        unpaired_t *v = realloc(u->v, n * sizeof(*v));
        if (!v) {
            r->oom = 1;
            return;
        }
        u->v = v;
        u->cap = n;
    }
    u->v[u->n++] = *x;
}

static void verdict(ls_refs_t *r, unpaired_t *u)
{
    u->culprit = NONE;
    if (u->ev == NONE) {
        u->verdict = "unrecorded";
        return;
    }
    const rstack_t *st = u->st;
    uint32_t fid = st && st->nfr ? st->fid[u->site] : 0, lvl = 0;
    bool have = fid && learned_level(r, u->ti, u->op, fid, &lvl);
    size_t above = st && st->nfr ? u->site + lvl : NONE;
    if (above != NONE && above >= st->nfr) above = st->nfr - 1;
    if (st && st->nfr) u->culprit = u->site;
    if (u->op == LS_REF_OP_CREATE) {
        u->verdict = "unpaired_create";
        if (have && lvl >= 1) u->culprit = above;
    } else if (have && lvl >= 1) {
        u->verdict = "no_put_in_caller";
        u->culprit = above;
    } else if (have || u->tracker) {
        u->verdict = "no_put";
    } else {
        u->verdict = "extra_get";
    }
}

typedef struct pair_bufs {
    ls_rp_event_t *ev;
    uint32_t *open;
    rstack_t **st;
    size_t *site;
    size_t cap;
} pair_bufs_t;

static int bufs_reserve(pair_bufs_t *b, size_t n)
{
    if (n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < n) cap *= 2;
    ls_rp_event_t *ev = realloc(b->ev, cap * sizeof(*ev));
    if (ev) b->ev = ev;
    uint32_t *open = realloc(b->open, cap * sizeof(*open));
    if (open) b->open = open;
    rstack_t **st = realloc(b->st, cap * sizeof(*st));
    if (st) b->st = st;
    size_t *site = realloc(b->site, cap * sizeof(*site));
    if (site) b->site = site;
    if (!ev || !open || !st || !site) return -1;
    b->cap = cap;
    return 0;
}

static void pair_object(ls_refs_t *r, size_t oi, pair_bufs_t *b, vec_t *out)
{
    const ls_snapshot_t *s = r->snap;
    const ls_fmt_ref_object_t *o = &s->ref_objects[oi];
    uint32_t ti = (uint32_t)type_index(r, o->type);
    size_t n = o->nevents;
    if (bufs_reserve(b, n + 1)) {
        r->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const ls_fmt_ref_event_t *e = &s->ref_events[o->first_event + i];
        const ls_snap_stack_t *ss = e->stack ? ls_snapshot_stack(s, e->stack) : NULL;
        uint32_t refs = 0;
        if (e->op == LS_REF_OP_GET) refs = 1;
        if (e->op == LS_REF_OP_CREATE)
            refs = o->initial <= 0           ? 0
                   : o->initial > UINT32_MAX ? UINT32_MAX
                                             : (uint32_t)o->initial;
        b->ev[i] = (ls_rp_event_t){
            ss ? ss->pcs : NULL, ss ? ss->nframes : 0, e->stack, e->tracker, refs, e->op};
        b->st[i] = refs ? rs_get(r, e->stack) : NULL;
        b->site[i] = b->st[i] ? site_of(r, b->st[i], ti, e->op) : 0;
    }
    score_ctx_t sc = {r, ti, b->ev, b->st, b->site};
    ls_rp_match(b->ev, n, score, &sc, NULL, 0, b->open, NULL);
    uint64_t open = 0;
    for (size_t i = 0; i < n; i++) {
        if (!b->open[i]) continue;
        open += b->open[i];
        unpaired_t u = {
            oi,   o->first_event + i, b->open[i], ti,  b->ev[i].op, b->ev[i].tracker != 0,
            NULL, b->st[i],           b->site[i], NONE};
        verdict(r, &u);
        push_unpaired(r, out, &u);
    }
    if ((uint64_t)o->count > open) { /* gets the history does not show */
        uint64_t k = (uint64_t)o->count - open;
        unpaired_t u = {oi, NONE, k > UINT32_MAX ? UINT32_MAX : (uint32_t)k, ti, 0, 0, NULL, NULL,
                        0,  NONE};
        verdict(r, &u);
        push_unpaired(r, out, &u);
    }
}

/* ---- 5: groups ----------------------------------------------------------------------------- */

static int cmp_suffix(const rstack_t *a, size_t sa, const rstack_t *b, size_t sb)
{
    size_t na = a && a->nfr ? a->nfr - sa : 0, nb = b && b->nfr ? b->nfr - sb : 0;
    for (size_t k = 0; k < na && k < nb; k++)
        if (a->loc[sa + k] != b->loc[sb + k]) return a->loc[sa + k] < b->loc[sb + k] ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

static int cmp_key(const unpaired_t *x, const unpaired_t *y)
{
    if (x->ti != y->ti) return x->ti < y->ti ? -1 : 1;
    int c = strcmp(x->verdict, y->verdict);
    if (c) return c;
    if (x->tracker != y->tracker) return x->tracker < y->tracker ? -1 : 1;
    return cmp_suffix(x->st, x->site, y->st, y->site);
}

static int cmp_unpaired(const void *a, const void *b)
{
    const unpaired_t *x = a, *y = b;
    int c = cmp_key(x, y);
    if (c) return c;
    if (x->obj != y->obj) return x->obj < y->obj ? -1 : 1;
    return x->ev < y->ev ? -1 : x->ev > y->ev;
}

/* Frames of st from index from on, copied (an empty array for no stack). */
static int copy_frames(const rstack_t *st, size_t from, ls_sym_frame_t **out, size_t *n)
{
    *n = st && from < st->nfr ? st->nfr - from : 0;
    *out = malloc((*n + 1) * sizeof(**out));
    if (!*out) return -1;
    if (*n) memcpy(*out, st->fr + from, *n * sizeof(**out));
    return 0;
}

/* A frame's name for messages: its function, else its label. */
static void frame_name(const ls_sym_frame_t *f, char *buf, size_t len)
{
    if (f && f->function)
        snprintf(buf, len, "%s", f->function);
    else
        ls_site_label(f, buf, len);
}

/* Stack text, for deterministic ordering (pcs move with ASLR, names do not). */
static char *stack_text(const ls_sym_frame_t *f, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) return NULL;
    for (size_t i = 0; i < n; i++) {
        char label[1024];
        ls_frame_label(&f[i], label, sizeof(label));
        fprintf(m, "%s|%s|%u\n", label, f[i].object ? f[i].object : "", f[i].inlined);
    }
    if (fclose(m) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

typedef struct sorted_group {
    ls_refs_group_t g;
    char *text;
} sorted_group_t;

static int cmp_group(const void *a, const void *b)
{
    const sorted_group_t *x = a, *y = b;
    if (x->g.references != y->g.references) return x->g.references > y->g.references ? -1 : 1;
    if (x->g.objects != y->g.objects) return x->g.objects > y->g.objects ? -1 : 1;
    int c = strcmp(x->g.type, y->g.type);
    if (c) return c;
    c = strcmp(x->text, y->text);
    if (c) return c;
    c = strcmp(x->g.verdict, y->g.verdict);
    if (c) return c;
    return (int)x->g.tracker - (int)y->g.tracker;
}

static int make_group(ls_refs_t *r, const unpaired_t *u, size_t n, sorted_group_t *sg)
{
    const ls_snapshot_t *s = r->snap;
    ls_refs_group_t *g = &sg->g;
    g->type = type_name(r, u[0].ti);
    if (!g->type) g->type = "";
    g->verdict = u[0].verdict;
    g->tracker = u[0].tracker;
    for (size_t i = 0; i < n; i++) {
        const ls_fmt_ref_object_t *o = &s->ref_objects[u[i].obj];
        g->references += u[i].refs;
        if (i && u[i].obj == u[i - 1].obj) continue;
        g->objects++;
        if (o->dropped_events || (o->flags & (LS_REF_OBJ_INCOMPLETE | LS_REF_OBJ_COMPACTED)))
            g->incomplete = true;
        if (g->nexamples < LS_REFS_EXAMPLES)
            g->examples[g->nexamples++] = (ls_refs_example_t){o->addr, o->count, o->nevents};
    }
    const rstack_t *st = u[0].st;
    if (copy_frames(st, u[0].site, &g->stack, &g->nstack)) return -1;
    const ls_fmt_ref_object_t *first = &s->ref_objects[u[0].obj];
    rstack_t *cs = rs_get(r, first->create_stack);
    if (copy_frames(cs, site_of(r, cs, u[0].ti, LS_REF_OP_CREATE), &g->create_stack, &g->ncreate))
        return -1;
    const ls_sym_frame_t *site = st && st->nfr ? &st->fr[u[0].site] : NULL;
    const ls_sym_frame_t *culprit = u[0].culprit != NONE ? &st->fr[u[0].culprit] : NULL;
    g->function = site ? site->function : NULL;
    g->culprit = culprit ? culprit->function : NULL;
    char fn[512], cn[512];
    frame_name(site, fn, sizeof(fn));
    frame_name(culprit, cn, sizeof(cn));
    int rc;
    if (strcmp(g->verdict, "no_put_in_caller") == 0)
        rc = asprintf(&g->message, "get in %s reached from %s has no put", fn, cn);
    else if (strcmp(g->verdict, "no_put") == 0)
        rc = asprintf(&g->message, "get in %s has no put", fn);
    else if (strcmp(g->verdict, "extra_get") == 0)
        rc = asprintf(&g->message, "extra get in %s", fn);
    else if (strcmp(g->verdict, "unpaired_create") == 0)
        rc = asprintf(&g->message, "reference from creation in %s has no put", fn);
    else
        rc = asprintf(&g->message, "references whose gets were not recorded");
    if (rc < 0) {
        g->message = NULL;
        return -1;
    }
    sg->text = stack_text(g->stack, g->nstack);
    return sg->text ? 0 : -1;
}

static void build_groups(ls_refs_t *r, vec_t *u)
{
    if (u->n) qsort(u->v, u->n, sizeof(*u->v), cmp_unpaired);
    sorted_group_t *sg = calloc(u->n + 1, sizeof(*sg));
    if (!sg) {
        r->oom = 1;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < u->n;) {
        size_t j = i + 1;
        while (j < u->n && cmp_key(&u->v[i], &u->v[j]) == 0) j++;
        if (make_group(r, &u->v[i], j - i, &sg[n++])) r->oom = 1;
        i = j;
    }
    if (!r->oom) qsort(sg, n, sizeof(*sg), cmp_group);
    r->groups = calloc(n + 1, sizeof(*r->groups));
    if (!r->groups) r->oom = 1;
    for (size_t i = 0; i < n; i++) {
        if (r->groups)
            r->groups[r->ngroups++] = sg[i].g;
        else {
            free(sg[i].g.message);
            free(sg[i].g.stack);
            free(sg[i].g.create_stack);
        }
        free(sg[i].text);
    }
    free(sg);
}

/* ---- findings ------------------------------------------------------------------------------ */

typedef struct sorted_finding {
    ls_refs_finding_t f;
    char *text;
} sorted_finding_t;

static int cmp_finding(const void *a, const void *b)
{
    const sorted_finding_t *x = a, *y = b;
    if (x->f.rec->kind != y->f.rec->kind) return x->f.rec->kind < y->f.rec->kind ? -1 : 1;
    if (x->f.rec->count != y->f.rec->count) return x->f.rec->count > y->f.rec->count ? -1 : 1;
    int c = strcmp(x->text, y->text);
    if (c) return c;
    return x->f.rec->addr < y->f.rec->addr ? -1 : x->f.rec->addr > y->f.rec->addr;
}

static int make_finding(ls_refs_t *r, const ls_fmt_ref_finding_t *rec, sorted_finding_t *sf)
{
    const ls_snapshot_t *s = r->snap;
    ls_refs_finding_t *f = &sf->f;
    size_t ti = type_index(r, rec->type);
    const ls_fmt_ref_event_t *hist = &s->ref_events[rec->first_event];
    f->rec = rec;
    f->type = type_name(r, ti);
    rstack_t *st = rs_get(r, rec->stack);
    if (copy_frames(st, site_of(r, st, ti, rec->op), &f->stack, &f->nstack)) return -1;
    if (rec->other_stack) {
        /* The op of the other stack: its latest event in the history; a double put's is a put. */
        f->other_op = rec->kind == LS_REF_FIND_DOUBLE_PUT ? LS_REF_OP_PUT : 0;
        for (size_t k = rec->nevents; k-- > 0 && !f->other_op;)
            if (hist[k].stack == rec->other_stack) f->other_op = hist[k].op;
        if (!f->other_op && rec->kind == LS_REF_FIND_USE_AFTER_PUT) f->other_op = LS_REF_OP_PUT;
        /* A tracker put twice: the earlier put is that tracker's, not one that reached zero. */
        for (size_t k = rec->nevents; rec->kind == LS_REF_FIND_DOUBLE_PUT && k-- > 0;)
            if (hist[k].op == LS_REF_OP_PUT && hist[k].stack == rec->other_stack) {
                f->other_tracked = hist[k].tracker != 0;
                break;
            }
        rstack_t *os = rs_get(r, rec->other_stack);
        unsigned op = f->other_op ? f->other_op : LS_REF_OP_PUT;
        if (copy_frames(os, site_of(r, os, ti, op), &f->other, &f->nother)) return -1;
    }
    if (rec->create_stack) {
        rstack_t *cs = rs_get(r, rec->create_stack);
        if (copy_frames(cs, site_of(r, cs, ti, LS_REF_OP_CREATE), &f->create, &f->ncreate))
            return -1;
    }
    f->hist = calloc(rec->nevents + 1, sizeof(*f->hist));
    f->hist_frames = calloc(2 * (size_t)rec->nevents + 1, sizeof(*f->hist_frames));
    if (!f->hist || !f->hist_frames) return -1;
    for (size_t k = 0; k < rec->nevents; k++) {
        const ls_fmt_ref_event_t *e = &hist[k];
        ls_refs_hist_t *h = &f->hist[f->nhist++];
        h->op = e->op;
        h->tid = e->tid;
        h->tracker = e->tracker;
        rstack_t *es = rs_get(r, e->stack);
        if (!es || !es->nfr) continue;
        size_t site = site_of(r, es, ti, e->op), caller = first_frame(es, site + 1);
        f->hist_frames[2 * k] = es->fr[site];
        h->site = &f->hist_frames[2 * k];
        if (caller != NONE) {
            f->hist_frames[2 * k + 1] = es->fr[caller];
            h->caller = &f->hist_frames[2 * k + 1];
        }
    }
    sf->text = stack_text(f->stack, f->nstack);
    return sf->text ? 0 : -1;
}

static void free_finding(ls_refs_finding_t *f)
{
    free(f->stack);
    free(f->other);
    free(f->create);
    free(f->hist);
    free(f->hist_frames);
}

static void build_findings(ls_refs_t *r)
{
    const ls_snapshot_t *s = r->snap;
    sorted_finding_t *sf = calloc(s->nref_findings + 1, sizeof(*sf));
    r->findings = calloc(s->nref_findings + 1, sizeof(*r->findings));
    if (!sf || !r->findings) {
        r->oom = 1;
        free(sf);
        return;
    }
    for (size_t i = 0; i < s->nref_findings; i++) {
        const ls_fmt_ref_finding_t *rec = &s->ref_findings[i];
        r->errors += rec->count;
        if (rec->kind <= LS_REF_FIND_FREED_REFERENCED) r->errors_by_kind[rec->kind] += rec->count;
        if (make_finding(r, rec, &sf[i])) r->oom = 1;
    }
    if (!r->oom) qsort(sf, s->nref_findings, sizeof(*sf), cmp_finding);
    for (size_t i = 0; i < s->nref_findings; i++) {
        r->findings[r->nfindings++] = sf[i].f;
        free(sf[i].text);
    }
    free(sf);
}

/* ---- build --------------------------------------------------------------------------------- */

ls_refs_t *ls_refs_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                         const ls_site_rules_t *rules, char *err, size_t errlen)
{
    ls_refs_t *r = calloc(1, sizeof(*r));
    if (!r) {
        ls_set_err(err, errlen, "out of memory");
        return NULL;
    }
    r->snap = snap;
    r->sym = sym;
    r->rules = rules;
    if (!snap->has_refs) return r;
    r->stacks = calloc(snap->nstacks + 1, sizeof(*r->stacks));
    r->ncls = (snap->nref_types + 1) * NOPS;
    r->cls = calloc(r->ncls, sizeof(*r->cls));
    if (!r->stacks || !r->cls) goto oom;

    find_wrappers(r);
    if (r->oom) goto oom;
    learn(r);
    if (r->oom) goto oom;

    vec_t u = {NULL, 0, 0};
    pair_bufs_t b = {NULL, NULL, NULL, NULL, 0};
    for (size_t i = 0; i < snap->nref_objects && !r->oom; i++) {
        if (snap->ref_objects[i].count <= 0) continue;
        r->leaked_objects++;
        pair_object(r, i, &b, &u);
    }
    for (size_t i = 0; i < u.n; i++) r->leaked_refs += u.v[i].refs;
    if (!r->oom) build_groups(r, &u);
    free(u.v);
    free(b.ev);
    free(b.open);
    free(b.st);
    free(b.site);
    if (r->oom) goto oom;
    build_findings(r);
    if (r->oom) goto oom;
    return r;
oom:
    ls_refs_free(r);
    ls_set_err(err, errlen, "out of memory while analysing reference counts");
    return NULL;
}

void ls_refs_free(ls_refs_t *r)
{
    if (!r) return;
    for (size_t i = 0; r->stacks && i < r->snap->nstacks; i++) {
        free(r->stacks[i].fr);
        free(r->stacks[i].fid);
        free(r->stacks[i].loc);
        free(r->stacks[i].plumb);
        free(r->stacks[i].pcf);
    }
    free(r->stacks);
    for (size_t i = 0; i < r->nf; i++) free(r->ftext[i]);
    free(r->ftext);
    free(r->fslot);
    for (size_t i = 0; i < r->ncls; i++) free(r->cls[i].ids);
    free(r->cls);
    free(r->levels);
    free(r->exact);
    for (size_t i = 0; i < r->ngroups; i++) {
        free(r->groups[i].message);
        free(r->groups[i].stack);
        free(r->groups[i].create_stack);
    }
    free(r->groups);
    for (size_t i = 0; i < r->nfindings; i++) free_finding(&r->findings[i]);
    free(r->findings);
    free(r);
}

uint64_t ls_refs_leaked_objects(const ls_refs_t *r)
{
    return r->leaked_objects;
}

uint64_t ls_refs_errors(const ls_refs_t *r)
{
    return r->errors;
}

size_t ls_refs_ngroups(const ls_refs_t *r)
{
    return r->ngroups;
}

const ls_refs_group_t *ls_refs_group(const ls_refs_t *r, size_t i)
{
    return i < r->ngroups ? &r->groups[i] : NULL;
}

size_t ls_refs_nfindings(const ls_refs_t *r)
{
    return r->nfindings;
}

const ls_refs_finding_t *ls_refs_finding(const ls_refs_t *r, size_t i)
{
    return i < r->nfindings ? &r->findings[i] : NULL;
}

/* ---- text ---------------------------------------------------------------------------------- */

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* "still referenced at exit", or how the snapshot's moment is named. */
static const char *moment(const ls_snapshot_t *s)
{
    switch (s->reason) {
    case LS_REASON_EXIT:
        return "still referenced at exit";
    case LS_REASON_SIGNAL:
        return "still referenced when the process was killed";
    default:
        return "with outstanding references";
    }
}

static void text_frames(FILE *out, const ls_sym_frame_t *f, size_t n)
{
    if (!n) fprintf(out, "    (no stack recorded)\n");
    for (size_t j = 0; j < n; j++) ls_text_frame(out, &f[j], j == 0);
}

static void text_group(const ls_refs_t *r, const ls_refs_group_t *g, size_t i, FILE *out)
{
    char b1[32], b2[32];
    bool live = r->snap->reason != LS_REASON_EXIT && r->snap->reason != LS_REASON_SIGNAL;
    fputc('\n', out);
    fprintf(out, "%s %s %s in %s %s of type \"%s\": %s  [refs group %zu of %zu]\n",
            ls_commas(g->references, b1), live ? "outstanding" : "unpaired",
            plural(g->references, "reference", "references"), ls_commas(g->objects, b2),
            plural(g->objects, "object", "objects"), g->type, g->message, i + 1, r->ngroups);
    if (strcmp(g->verdict, "unrecorded") != 0) {
        bool create = strcmp(g->verdict, "unpaired_create") == 0;
        fprintf(out, "  %s%s:\n", create ? "unpaired creation" : "unpaired get",
                g->tracker ? " (paired exactly, by trackers)" : "");
        text_frames(out, g->stack, g->nstack);
    }
    fprintf(out, "  %s created at:\n", plural(g->objects, "object", "objects"));
    text_frames(out, g->create_stack, g->ncreate);
    for (size_t k = 0; k < g->nexamples; k++)
        fprintf(out, "  %s 0x%llx: count %lld, %u %s\n", k ? "    object" : "e.g. object",
                (unsigned long long)g->examples[k].addr, (long long)g->examples[k].count,
                g->examples[k].nevents, plural(g->examples[k].nevents, "event", "events"));
    if (g->incomplete)
        fprintf(out, "  note: some of these histories are incomplete (events dropped or "
                     "compacted): the pairing may be wrong\n");
}

static void text_history(const ls_refs_finding_t *f, FILE *out)
{
    if (!f->nhist) return;
    fprintf(out, "  history:");
    for (size_t k = 0; k < f->nhist; k++) {
        /* long histories: the first 10 and the last 5 events */
        if (f->nhist > 16 && k == 10) {
            fprintf(out, " ... (%zu more),", f->nhist - 15);
            k = f->nhist - 5;
        }
        const ls_refs_hist_t *h = &f->hist[k];
        fprintf(out, " %s", ls_ref_op_name(h->op));
        if (h->site) {
            char a[512], b[512];
            frame_name(h->site, a, sizeof(a));
            if (h->caller) {
                frame_name(h->caller, b, sizeof(b));
                fprintf(out, " (%s <- %s)", a, b);
            } else {
                fprintf(out, " (%s)", a);
            }
        }
        if (k + 1 < f->nhist) fputc(',', out);
    }
    fputc('\n', out);
}

static void text_finding(const ls_refs_finding_t *f, FILE *out)
{
    const ls_fmt_ref_finding_t *rec = f->rec;
    char type[600];
    if (f->type)
        snprintf(type, sizeof(type), "of type \"%s\"", f->type);
    else
        snprintf(type, sizeof(type), "of unknown type");
    const char *op = ls_ref_op_name(rec->op);
    fputc('\n', out);
    switch (rec->kind) {
    case LS_REF_FIND_DOUBLE_PUT:
        fprintf(out, "double put on an object %s", type);
        break;
    case LS_REF_FIND_USE_AFTER_PUT:
        fprintf(out, "%s after the last put on an object %s", op, type);
        break;
    case LS_REF_FIND_DESTROY_UNKNOWN:
        fprintf(out, "destroy of an object that was never registered");
        break;
    case LS_REF_FIND_UNREGISTERED:
        fprintf(out, "%s on an object that was never registered", op);
        break;
    case LS_REF_FIND_BAD_TRACKER:
        fprintf(out, "%s with a tracker the object never handed out, on an object %s", op, type);
        break;
    default:
        fprintf(out, "object %s freed while it still held references", type);
        break;
    }
    fprintf(out, " (%u %s) [thread %u]\n", rec->count, plural(rec->count, "time", "times"),
            rec->tid);
    text_frames(out, f->stack, f->nstack);
    if (rec->other_stack) {
        if (rec->kind == LS_REF_FIND_DOUBLE_PUT)
            fprintf(out, f->other_tracked ? "  the first put of the same tracker"
                                          : "  the put that took the count to zero");
        else if (rec->kind == LS_REF_FIND_USE_AFTER_PUT)
            fprintf(out, "  the %s that ended it", ls_ref_op_name(f->other_op));
        else
            fprintf(out, "  the other operation");
        fprintf(out, " [thread %u]:\n", rec->other_tid);
        text_frames(out, f->other, f->nother);
    }
    if (rec->create_stack) {
        fprintf(out, "  created at:\n");
        text_frames(out, f->create, f->ncreate);
    }
    text_history(f, out);
}

void ls_refs_write_text(const ls_refs_t *r, FILE *out)
{
    if (!r || !r->snap->has_refs) return;
    char b1[32];
    fputc('\n', out);
    if (r->leaked_objects)
        fprintf(out, "REFERENCE COUNTS: %s %s %s (%zu %s)", ls_commas(r->leaked_objects, b1),
                plural(r->leaked_objects, "object", "objects"), moment(r->snap), r->ngroups,
                plural(r->ngroups, "group", "groups"));
    else
        fprintf(out, "REFERENCE COUNTS: no object %s", moment(r->snap));
    if (r->errors)
        fprintf(out, "; %s reference %s\n", ls_commas(r->errors, b1),
                plural(r->errors, "error", "errors"));
    else
        fprintf(out, "; no reference errors\n");
    for (size_t i = 0; i < r->ngroups; i++) text_group(r, &r->groups[i], i, out);
    for (size_t i = 0; i < r->nfindings; i++) text_finding(&r->findings[i], out);
}

static const char *const kind_phrase[] = {
    NULL,           "double put",  "use after put",    "destroy unregistered",
    "unregistered", "bad tracker", "freed referenced",
};

void ls_refs_write_summary(const ls_refs_t *r, FILE *out)
{
    if (!r || !r->snap->has_refs) return;
    const ls_snapshot_t *s = r->snap;
    char b1[32], b2[32], b3[32];
    fprintf(out, "\nREFS SUMMARY:\n");
    fprintf(out, "      objects alive: %s", ls_commas(s->nref_objects, b1));
    if (s->stats[LS_STAT_REF_OBJECTS_TOTAL])
        fprintf(out, " (%s registered)", ls_commas(s->stats[LS_STAT_REF_OBJECTS_TOTAL], b1));
    fputc('\n', out);
    fprintf(out, "   still referenced: %s %s, %s %s in %zu %s\n", ls_commas(r->leaked_objects, b1),
            plural(r->leaked_objects, "object", "objects"), ls_commas(r->leaked_refs, b2),
            plural(r->leaked_refs, "reference", "references"), r->ngroups,
            plural(r->ngroups, "group", "groups"));
    fprintf(out, "   reference errors: %s", ls_commas(r->errors, b1));
    const char *sep = " (";
    for (unsigned k = LS_REF_FIND_DOUBLE_PUT; k <= LS_REF_FIND_FREED_REFERENCED; k++) {
        if (!r->errors_by_kind[k]) continue;
        fprintf(out, "%s%s %s", sep, ls_commas(r->errors_by_kind[k], b2), kind_phrase[k]);
        sep = ", ";
    }
    fprintf(out, "%s\n", r->errors ? ")" : "");
    fprintf(out, "             events: %s recorded, %s dropped, %s compacted\n",
            ls_commas(s->stats[LS_STAT_REF_EVENTS], b1),
            ls_commas(s->stats[LS_STAT_REF_EVENTS_DROPPED], b2),
            ls_commas(s->stats[LS_STAT_REF_EVENTS_COMPACTED], b3));
    fprintf(out, "      learned pairs: %s\n", ls_commas(r->pairs_learned, b1));
    if (s->stats[LS_STAT_REF_OBJECTS_DROPPED] || s->stats[LS_STAT_REF_FINDINGS_DROPPED] ||
        s->stats[LS_STAT_REF_PAIRS_DROPPED])
        fprintf(out,
                "note: tables were full: %s objects not tracked, %s findings and %s pairs not "
                "recorded (options refs_max_objects, refs_max_events)\n",
                ls_commas(s->stats[LS_STAT_REF_OBJECTS_DROPPED], b1),
                ls_commas(s->stats[LS_STAT_REF_FINDINGS_DROPPED], b2),
                ls_commas(s->stats[LS_STAT_REF_PAIRS_DROPPED], b3));
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static void json_frames_or_null(ls_jctx_t *c, cJSON *o, const char *k, bool present,
                                const ls_sym_frame_t *f, size_t n)
{
    if (present)
        ls_json_frames(c, o, k, f, n);
    else
        ls_jnull(c, o, k);
}

static void json_group(ls_jctx_t *c, cJSON *o, const ls_refs_group_t *g)
{
    ls_jstr(c, o, "type", g->type);
    ls_jnum(c, o, "objects", (double)g->objects);
    ls_jnum(c, o, "references", (double)g->references);
    ls_jstr(c, o, "verdict", g->verdict);
    ls_jstr(c, o, "message", g->message);
    ls_jstr(c, o, "function", g->function);
    ls_jstr(c, o, "culprit", g->culprit);
    ls_jstr(c, o, "paired_by", g->tracker ? "tracker" : "inference");
    ls_jbool(c, o, "incomplete", g->incomplete);
    ls_jput(c, o, "get_site", ls_json_site(c, g->nstack ? &g->stack[0] : NULL));
    ls_json_frames(c, o, "get_stack", g->stack, g->nstack);
    ls_json_frames(c, o, "create_stack", g->create_stack, g->ncreate);
    cJSON *ex = ls_jarr(c, o, "examples");
    for (size_t k = 0; ex && k < g->nexamples; k++) {
        cJSON *e = ls_jpush_obj(c, ex);
        if (!e) break;
        ls_jhex(c, e, "addr", g->examples[k].addr);
        ls_jnum(c, e, "count", (double)g->examples[k].count);
        ls_jnum(c, e, "events", g->examples[k].nevents);
    }
}

static void json_finding(ls_jctx_t *c, cJSON *o, const ls_refs_finding_t *f)
{
    const ls_fmt_ref_finding_t *rec = f->rec;
    ls_jstr(c, o, "kind", ls_ref_finding_name(rec->kind));
    ls_jstr(c, o, "type", f->type);
    ls_jnum(c, o, "count", rec->count);
    ls_jstr(c, o, "op", ls_ref_op_name(rec->op));
    ls_jhex(c, o, "addr", rec->addr);
    ls_jnum(c, o, "tid", rec->tid);
    ls_json_frames(c, o, "stack", f->stack, f->nstack);
    json_frames_or_null(c, o, "other_stack", rec->other_stack != 0, f->other, f->nother);
    if (rec->other_stack)
        ls_jnum(c, o, "other_tid", rec->other_tid);
    else
        ls_jnull(c, o, "other_tid");
    json_frames_or_null(c, o, "create_stack", rec->create_stack != 0, f->create, f->ncreate);
    cJSON *h = ls_jarr(c, o, "history");
    for (size_t k = 0; h && k < f->nhist; k++) {
        cJSON *e = ls_jpush_obj(c, h);
        if (!e) break;
        ls_jstr(c, e, "op", ls_ref_op_name(f->hist[k].op));
        ls_jnum(c, e, "tid", f->hist[k].tid);
        if (f->hist[k].tracker)
            ls_jnum(c, e, "tracker", f->hist[k].tracker);
        else
            ls_jnull(c, e, "tracker");
        ls_jput(c, e, "site", ls_json_site(c, f->hist[k].site));
    }
}

cJSON *ls_refs_json(const ls_refs_t *r, ls_jctx_t *c)
{
    cJSON *o = r && r->snap->has_refs ? cJSON_CreateObject() : cJSON_CreateNull();
    if (!o) {
        c->oom = 1;
        return NULL;
    }
    if (!r || !r->snap->has_refs) return o;
    const ls_snapshot_t *s = r->snap;
    ls_jnum(c, o, "objects_live", (double)s->nref_objects);
    ls_jnum(c, o, "leaked_objects", (double)r->leaked_objects);
    ls_jnum(c, o, "errors", (double)r->errors);
    cJSON *st = ls_jobj(c, o, "stats");
    if (st) {
        static const struct {
            const char *name;
            unsigned key;
        } keys[] = {
            {"events", LS_STAT_REF_EVENTS},
            {"events_dropped", LS_STAT_REF_EVENTS_DROPPED},
            {"event_bytes", LS_STAT_REF_EVENT_BYTES},
            {"objects_dropped", LS_STAT_REF_OBJECTS_DROPPED},
            {"findings_dropped", LS_STAT_REF_FINDINGS_DROPPED},
            {"pairs_dropped", LS_STAT_REF_PAIRS_DROPPED},
            {"events_compacted", LS_STAT_REF_EVENTS_COMPACTED},
            {"quarantine_evicted", LS_STAT_REF_QUARANTINE_EVICTED},
        };
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            ls_jnum(c, st, keys[k].name, (double)s->stats[keys[k].key]);
        ls_jnum(c, st, "pairs_learned", (double)r->pairs_learned);
    }
    cJSON *leaks = ls_jarr(c, o, "leaks");
    for (size_t i = 0; leaks && i < r->ngroups; i++) {
        cJSON *g = ls_jpush_obj(c, leaks);
        if (!g) break;
        json_group(c, g, &r->groups[i]);
    }
    cJSON *finds = ls_jarr(c, o, "findings");
    for (size_t i = 0; finds && i < r->nfindings; i++) {
        cJSON *f = ls_jpush_obj(c, finds);
        if (!f) break;
        json_finding(c, f, &r->findings[i]);
    }
    return o;
}
