/*
 * ls_profile.c - weighted profiles of snapshots and their top-N, JSON and collapsed renderers
 * (see ls_profile.h for the estimator and the views).
 *
 * Owns: ls_profile_t (per stack id: live and sampled counts, four estimates as doubles) and the
 * report built on it (two ls_agg aggregations sharing one keys table, in-use and allocated,
 * joined by key into rows carrying the four rounded views).
 */
#define _GNU_SOURCE
#include "ls_profile.h"

#include "ls_output.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const value_names[LS_PROF_NVALUES] = {"alloc_objects", "alloc_space",
                                                         "inuse_objects", "inuse_space"};

const char *ls_prof_value_name(ls_prof_value_t v)
{
    return (unsigned)v < LS_PROF_NVALUES ? value_names[v] : "unknown";
}

const char *ls_prof_value_unit(ls_prof_value_t v)
{
    return v == LS_PROF_ALLOC_OBJECTS || v == LS_PROF_INUSE_OBJECTS ? "count" : "bytes";
}

int ls_prof_value_parse(const char *s, ls_prof_value_t *v)
{
    for (int i = 0; i < LS_PROF_NVALUES; i++)
        if (strcmp(s, value_names[i]) == 0) {
            *v = (ls_prof_value_t)i;
            return 0;
        }
    return -1;
}

bool ls_snapshot_is_sampled(const ls_snapshot_t *snap)
{
    return snap->mode && strcmp(snap->mode, "sample") == 0;
}

double ls_prof_weight(uint64_t size, uint64_t rate)
{
    if (rate == 0) return 1.0;
    if (size == 0) return 0.0;
    /* -expm1(-x) is 1 - exp(-x) without the cancellation that would ruin it for size << rate. */
    double p = -expm1(-(double)size / (double)rate);
    return p > 0 ? 1.0 / p : 0.0;
}

int64_t ls_prof_round(double v)
{
    if (!(v == v)) return 0; /* NaN: the reader refuses them; never let one through */
    if (v >= 9.2e18) return INT64_MAX;
    if (v <= -9.2e18) return INT64_MIN;
    return (int64_t)llround(v);
}

/* ---- the profile --------------------------------------------------------------------------- */

/* Slot of a stack id in an array indexed like snap->stacks, slot nstacks for id 0 (and for an
 * id the reader would have refused). */
static size_t stack_slot(const ls_snapshot_t *snap, uint32_t id)
{
    if (!id) return snap->nstacks;
    const ls_snap_stack_t *st = ls_snapshot_stack(snap, id);
    return st ? (size_t)(st - snap->stacks) : snap->nstacks;
}

int ls_profile_build(const ls_snapshot_t *snap, const ls_block_filter_t *f, ls_profile_t *p,
                     char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->sampled = ls_snapshot_is_sampled(snap);
    uint64_t rate = p->sampled ? snap->sample_rate : 0;
    p->period = p->sampled ? rate : 1;
    p->windowed = f && (f->has_after || f->has_before);
    p->has_alloc = p->sampled && snap->has_sample_allocs && !p->windowed;
    size_t ns = snap->nstacks;
    ls_prof_stack_t *acc = calloc(ns + 1, sizeof(*acc));
    if (!acc) {
        ls_set_err(err, errlen, "out of memory");
        return -1;
    }
    uint32_t last_id = 0;
    size_t last_slot = ns;
    for (size_t i = 0; i < snap->nblocks; i++) {
        const ls_fmt_block_t *b = &snap->blocks[i];
        if (!ls_block_passes(b, f)) continue;
        size_t slot = b->stack == last_id ? last_slot : stack_slot(snap, b->stack);
        last_id = b->stack;
        last_slot = slot;
        double w = ls_prof_weight(b->size, rate);
        acc[slot].live++;
        acc[slot].v[LS_PROF_INUSE_OBJECTS] += w;
        acc[slot].v[LS_PROF_INUSE_SPACE] += w * (double)b->size;
    }
    for (size_t i = 0; p->has_alloc && i < snap->nsample_allocs; i++) {
        const ls_fmt_sample_alloc_t *a = &snap->sample_allocs[i];
        size_t slot = stack_slot(snap, a->stack);
        acc[slot].samples += a->samples;
        acc[slot].v[LS_PROF_ALLOC_OBJECTS] += a->est_objects;
        acc[slot].v[LS_PROF_ALLOC_SPACE] += a->est_bytes;
    }
    /* Compact in id order, "no stack" (id 0) first. */
    ls_prof_stack_t *res = malloc((ns + 1) * sizeof(*res));
    if (!res) {
        free(acc);
        ls_set_err(err, errlen, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t j = 0; j <= ns; j++) {
        size_t slot = j == 0 ? ns : j - 1;
        ls_prof_stack_t *e = &acc[slot];
        bool any = e->live || e->samples;
        for (int v = 0; v < LS_PROF_NVALUES; v++) any |= e->v[v] != 0;
        if (!any) continue;
        e->stack = slot == ns ? 0 : snap->stacks[slot].id;
        for (int v = 0; v < LS_PROF_NVALUES; v++) p->total[v] += e->v[v];
        p->live += e->live;
        p->samples += e->samples;
        res[k++] = *e;
    }
    free(acc);
    p->stacks = res;
    p->nstacks = k;
    return 0;
}

void ls_profile_free(ls_profile_t *p)
{
    free(p->stacks);
    memset(p, 0, sizeof(*p));
}

const char *ls_profile_missing_alloc(const ls_profile_t *p)
{
    if (!p->sampled)
        return "a full-mode snapshot records live blocks only (use a sample profile for the "
               "allocated views)";
    if (p->windowed) return "a birth window selects live blocks only";
    return "the profile has no SAMPLE_ALLOCS chunk";
}

int ls_profile_wstacks(const ls_profile_t *p, bool alloc, ls_wstack_t **out, size_t *n)
{
    *out = malloc((p->nstacks ? p->nstacks : 1) * sizeof(**out));
    *n = 0;
    if (!*out) return -1;
    int vo = alloc ? LS_PROF_ALLOC_OBJECTS : LS_PROF_INUSE_OBJECTS;
    int vs = alloc ? LS_PROF_ALLOC_SPACE : LS_PROF_INUSE_SPACE;
    for (size_t i = 0; i < p->nstacks; i++) {
        int64_t objects = ls_prof_round(p->stacks[i].v[vo]),
                bytes = ls_prof_round(p->stacks[i].v[vs]);
        if (objects <= 0 && bytes <= 0) continue;
        (*out)[(*n)++] = (ls_wstack_t){p->stacks[i].stack, bytes > 0 ? (uint64_t)bytes : 0,
                                       objects > 0 ? (uint64_t)objects : 0};
    }
    return 0;
}

int ls_profile_weigh_inuse(const ls_snapshot_t *snap, ls_wstack_t **out, size_t *n)
{
    if (!ls_snapshot_is_sampled(snap)) return ls_agg_weigh_blocks(snap, NULL, out, n);
    ls_profile_t p;
    if (ls_profile_build(snap, NULL, &p, NULL, 0)) return -1;
    int rc = ls_profile_wstacks(&p, false, out, n);
    ls_profile_free(&p);
    return rc;
}

/* ---- the report ---------------------------------------------------------------------------- */

typedef struct prow {
    uint32_t key;      /* site key (site rows) or stack key (stack rows) */
    uint32_t site;     /* site key */
    uint32_t stack_id; /* stack rows: the snapshot's stack id (smallest folded in) */
    uint32_t nstacks;  /* site rows: stack rows under it */
    int64_t v[LS_PROF_NVALUES];
} prow_t;

struct ls_prof_report {
    const ls_snapshot_t *snap;
    ls_prof_report_opts_t o;
    ls_profile_t prof;
    ls_keys_t *keys;
    prow_t *sites, *stacks;
    size_t nsites, nstacks;
    int64_t total[LS_PROF_NVALUES]; /* sums of the rows */
};

const ls_profile_t *ls_prof_report_profile(const ls_prof_report_t *r)
{
    return &r->prof;
}

/* Tie-breaks after the sort key: the other views, biggest first, in-use before allocated. */
static const int tie_order[LS_PROF_NVALUES] = {LS_PROF_INUSE_SPACE, LS_PROF_INUSE_OBJECTS,
                                               LS_PROF_ALLOC_SPACE, LS_PROF_ALLOC_OBJECTS};

typedef struct sort_ctx {
    const ls_keys_t *keys;
    ls_prof_value_t index;
    bool stacks;
} sort_ctx_t;

static int cmp_rows(const void *a, const void *b, void *arg)
{
    const prow_t *x = a, *y = b;
    const sort_ctx_t *c = arg;
    if (x->v[c->index] != y->v[c->index]) return x->v[c->index] > y->v[c->index] ? -1 : 1;
    for (int i = 0; i < LS_PROF_NVALUES; i++) {
        int k = tie_order[i];
        if (x->v[k] != y->v[k]) return x->v[k] > y->v[k] ? -1 : 1;
    }
    return c->stacks ? ls_keys_cmp_stack(c->keys, x->key, y->key)
                     : ls_keys_cmp_frame(c->keys, x->key, y->key);
}

/* Joins the in-use rows (a) and the allocated rows (b, may be NULL), both sorted by key, into
 * out; stacks or sites. Returns the count. */
static size_t join_rows(const ls_agg_t *a, const ls_agg_t *b, bool stacks, prow_t *out)
{
    size_t na = stacks ? a->nstacks : a->nsites, nb = !b ? 0 : stacks ? b->nstacks : b->nsites;
    size_t i = 0, j = 0, k = 0;
    while (i < na || j < nb) {
        uint32_t ka = i < na ? (stacks ? a->stacks[i].key : a->sites[i].key) : UINT32_MAX;
        uint32_t kb = j < nb ? (stacks ? b->stacks[j].key : b->sites[j].key) : UINT32_MAX;
        prow_t *r = &out[k++];
        memset(r, 0, sizeof(*r));
        if (ka <= kb && i < na) {
            r->key = ka;
            if (stacks) {
                const ls_agg_stack_t *s = &a->stacks[i];
                r->site = s->site;
                r->stack_id = s->stack_id;
                r->v[LS_PROF_INUSE_SPACE] = (int64_t)s->bytes;
                r->v[LS_PROF_INUSE_OBJECTS] = (int64_t)s->blocks;
            } else {
                r->site = ka;
                r->v[LS_PROF_INUSE_SPACE] = (int64_t)a->sites[i].bytes;
                r->v[LS_PROF_INUSE_OBJECTS] = (int64_t)a->sites[i].blocks;
            }
            i++;
        }
        if (kb <= ka && j < nb) {
            r->key = kb;
            if (stacks) {
                const ls_agg_stack_t *s = &b->stacks[j];
                r->site = s->site;
                if (!r->stack_id || (s->stack_id && s->stack_id < r->stack_id))
                    r->stack_id = s->stack_id;
                r->v[LS_PROF_ALLOC_SPACE] = (int64_t)s->bytes;
                r->v[LS_PROF_ALLOC_OBJECTS] = (int64_t)s->blocks;
            } else {
                r->site = kb;
                r->v[LS_PROF_ALLOC_SPACE] = (int64_t)b->sites[j].bytes;
                r->v[LS_PROF_ALLOC_OBJECTS] = (int64_t)b->sites[j].blocks;
            }
            j++;
        }
    }
    return k;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = ((const prow_t *)a)->key, y = ((const prow_t *)b)->key;
    return x < y ? -1 : x > y;
}

ls_prof_report_t *ls_prof_report_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                                       const ls_prof_report_opts_t *o, char *err, size_t errlen)
{
    ls_prof_report_t *r = calloc(1, sizeof(*r));
    ls_wstack_t *ws = NULL;
    size_t nws = 0;
    ls_agg_t *inuse = NULL, *alloc = NULL;
    if (!r) goto oom;
    r->snap = snap;
    if (o)
        r->o = *o;
    else
        r->o.index = LS_PROF_INUSE_SPACE;
    if (ls_profile_build(snap, r->o.window, &r->prof, err, errlen)) goto fail;
    if (ls_prof_value_is_alloc(r->o.index) && !r->prof.has_alloc) {
        ls_set_err(err, errlen, "%s is not available: %s", ls_prof_value_name(r->o.index),
                   ls_profile_missing_alloc(&r->prof));
        goto fail;
    }
    r->keys = ls_keys_new();
    if (!r->keys) goto oom;
    if (ls_profile_wstacks(&r->prof, false, &ws, &nws)) goto oom;
    inuse = ls_agg_build(snap, sym, r->keys, r->o.site_rules, ws, nws, err, errlen);
    free(ws);
    ws = NULL;
    if (!inuse) goto fail;
    if (r->prof.has_alloc) {
        if (ls_profile_wstacks(&r->prof, true, &ws, &nws)) goto oom;
        alloc = ls_agg_build(snap, sym, r->keys, r->o.site_rules, ws, nws, err, errlen);
        free(ws);
        ws = NULL;
        if (!alloc) goto fail;
    }
    size_t cap_st = inuse->nstacks + (alloc ? alloc->nstacks : 0),
           cap_si = inuse->nsites + (alloc ? alloc->nsites : 0);
    r->stacks = malloc((cap_st ? cap_st : 1) * sizeof(*r->stacks));
    r->sites = malloc((cap_si ? cap_si : 1) * sizeof(*r->sites));
    if (!r->stacks || !r->sites) goto oom;
    r->nstacks = join_rows(inuse, alloc, true, r->stacks);
    r->nsites = join_rows(inuse, alloc, false, r->sites);
    /* A site's stack count: the stack rows under it (sites are sorted by key). */
    for (size_t i = 0; i < r->nstacks; i++) {
        prow_t probe = {.key = r->stacks[i].site};
        prow_t *s = bsearch(&probe, r->sites, r->nsites, sizeof(*r->sites), cmp_u32);
        if (s) s->nstacks++;
    }
    for (size_t i = 0; i < r->nstacks; i++)
        for (int v = 0; v < LS_PROF_NVALUES; v++) r->total[v] += r->stacks[i].v[v];
    sort_ctx_t cs = {r->keys, r->o.index, true}, cx = {r->keys, r->o.index, false};
    if (r->nstacks) qsort_r(r->stacks, r->nstacks, sizeof(*r->stacks), cmp_rows, &cs);
    if (r->nsites) qsort_r(r->sites, r->nsites, sizeof(*r->sites), cmp_rows, &cx);
    ls_agg_free(inuse);
    ls_agg_free(alloc);
    return r;
oom:
    ls_set_err(err, errlen, "out of memory");
fail:
    free(ws);
    ls_agg_free(inuse);
    ls_agg_free(alloc);
    ls_prof_report_free(r);
    return NULL;
}

void ls_prof_report_free(ls_prof_report_t *r)
{
    if (!r) return;
    ls_profile_free(&r->prof);
    ls_keys_free(r->keys);
    free(r->sites);
    free(r->stacks);
    free(r);
}

/* The views a profile has, in column order: in use first, then allocated. */
static size_t views(const ls_profile_t *p, ls_prof_value_t index, int out[LS_PROF_NVALUES])
{
    size_t n = 0;
    out[n++] = index;
    for (int i = 0; i < LS_PROF_NVALUES; i++) {
        int v = tie_order[i];
        if (v == (int)index || (ls_prof_value_is_alloc((ls_prof_value_t)v) && !p->has_alloc))
            continue;
        out[n++] = v;
    }
    return n;
}

static void text_program(const ls_prof_report_t *r, FILE *out)
{
    const ls_snapshot_t *s = r->snap;
    const char *prog = r->o.program ? r->o.program : s->exe;
    fprintf(out, "program: %s (pid %llu)", prog && prog[0] ? prog : "(unknown)",
            (unsigned long long)s->pid);
    if (s->reason == LS_REASON_EXIT)
        fprintf(out, ", at exit (status %lld)", (long long)s->exit_status);
    else if (s->reason == LS_REASON_SIGNAL)
        fprintf(out, ", at fatal signal %llu", (unsigned long long)s->signal);
    else if (s->reason == LS_REASON_LIVE)
        fprintf(out, ", live snapshot at %.2f s", (double)s->snap_ns / 1e9);
    fputc('\n', out);
}

static void text_table(const ls_prof_report_t *r, bool stacks, FILE *out)
{
    const prow_t *rows = stacks ? r->stacks : r->sites;
    size_t n = stacks ? r->nstacks : r->nsites;
    size_t shown = r->o.top && r->o.top < n ? r->o.top : n;
    int col[LS_PROF_NVALUES];
    size_t ncol = views(&r->prof, r->o.index, col);
    const char *what = stacks ? "Stacks" : "Allocation sites";
    fprintf(out, "\n%s by %s (%s%zu of %zu):\n", what, ls_prof_value_name(r->o.index),
            shown < n ? "top " : "", shown, n);
    if (!shown) return;
    fprintf(out, "%15s %7s %7s", ls_prof_value_name(r->o.index), "%", "sum%");
    for (size_t c = 1; c < ncol; c++) fprintf(out, " %15s", ls_prof_value_name(col[c]));
    fprintf(out, "  %s\n", stacks ? "site, then the stack" : "site");
    int64_t tot = r->total[r->o.index];
    double sum = 0;
    char b[32], label[1024];
    for (size_t i = 0; i < shown; i++) {
        const prow_t *x = &rows[i];
        double pct = tot > 0 ? 100.0 * (double)x->v[r->o.index] / (double)tot : 0;
        sum += pct;
        fprintf(out, "%15s %6.2f%% %6.2f%%", ls_commas((uint64_t)x->v[r->o.index], b), pct, sum);
        for (size_t c = 1; c < ncol; c++)
            fprintf(out, " %15s", ls_commas((uint64_t)x->v[col[c]], b));
        ls_site_label(ls_keys_frame(r->keys, x->site), label, sizeof(label));
        fprintf(out, "  %s\n", label);
        if (stacks) {
            const uint32_t *fk;
            size_t nf = ls_keys_stack(r->keys, x->key, &fk);
            if (!nf) fprintf(out, "    (no allocation stack recorded)\n");
            for (size_t k = 0; k < nf; k++)
                ls_text_frame(out, ls_keys_frame(r->keys, fk[k]), k == 0);
        }
    }
    if (shown < n) fprintf(out, "(%zu more not shown; --top 0 shows all)\n", n - shown);
}

void ls_prof_report_write_text(const ls_prof_report_t *r, FILE *out)
{
    const ls_profile_t *p = &r->prof;
    char b1[32], b2[32], b3[32];
    fprintf(out, "leakscope profile - version 1\n");
    text_program(r, out);
    if (p->sampled) {
        fprintf(out,
                "sample profile: one sample per %s allocated on average (sample_rate %s); "
                "figures are estimates\n",
                ls_human_bytes(p->period, b1), ls_commas(p->period, b2));
        fprintf(out, "samples: %s live", ls_commas(p->live, b1));
        if (p->has_alloc) fprintf(out, ", %s since start", ls_commas(p->samples, b2));
        fputc('\n', out);
    } else {
        fprintf(out, "exact profile of a full-mode snapshot: every live block (allocations since "
                     "start are not recorded in full mode)\n");
    }
    fprintf(out, "in use:    %s bytes in %s objects (%s)\n",
            ls_commas((uint64_t)r->total[LS_PROF_INUSE_SPACE], b1),
            ls_commas((uint64_t)r->total[LS_PROF_INUSE_OBJECTS], b2),
            ls_human_bytes((uint64_t)r->total[LS_PROF_INUSE_SPACE], b3));
    if (p->has_alloc)
        fprintf(out, "allocated: %s bytes in %s objects (%s) since start\n",
                ls_commas((uint64_t)r->total[LS_PROF_ALLOC_SPACE], b1),
                ls_commas((uint64_t)r->total[LS_PROF_ALLOC_OBJECTS], b2),
                ls_human_bytes((uint64_t)r->total[LS_PROF_ALLOC_SPACE], b3));
    text_table(r, false, out);
    text_table(r, true, out);
}

static const char *reason_name(uint64_t reason)
{
    switch (reason) {
    case LS_REASON_EXIT:
        return "exit";
    case LS_REASON_SIGNAL:
        return "signal";
    case LS_REASON_LIVE:
        return "live";
    default:
        return "unknown";
    }
}

/* The row's views, in the JSON key order of the contract. */
static void json_values(FILE *f, const ls_profile_t *p, const int64_t *v)
{
    static const int order[LS_PROF_NVALUES] = {LS_PROF_INUSE_SPACE, LS_PROF_INUSE_OBJECTS,
                                               LS_PROF_ALLOC_SPACE, LS_PROF_ALLOC_OBJECTS};
    for (int i = 0; i < LS_PROF_NVALUES; i++) {
        if (ls_prof_value_is_alloc((ls_prof_value_t)order[i]) && !p->has_alloc) continue;
        fprintf(f, ",\"%s\":%lld", value_names[order[i]], (long long)v[order[i]]);
    }
}

int ls_prof_report_write_json(const ls_prof_report_t *r, FILE *out)
{
    const ls_snapshot_t *s = r->snap;
    const ls_profile_t *p = &r->prof;
    ls_jctx_t c = {0};
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    ls_jnum(&c, root, "version", 1);
    ls_jstr(&c, root, "program", r->o.program ? r->o.program : s->exe);
    ls_jnum(&c, root, "pid", (double)s->pid);
    if (s->reason == LS_REASON_EXIT)
        ls_jnum(&c, root, "exit_status", (double)s->exit_status);
    else
        ls_jnull(&c, root, "exit_status");
    ls_jstr(&c, root, "reason", reason_name(s->reason));
    ls_jstr(&c, root, "mode", p->sampled ? "sample" : "full");
    cJSON *pr = ls_jobj(&c, root, "profile");
    if (pr) {
        ls_jbool(&c, pr, "exact", !p->sampled);
        if (p->sampled) ls_jnum(&c, pr, "sample_rate", (double)p->period);
        ls_jnum(&c, pr, "period", (double)p->period);
        ls_jstr(&c, pr, "sample_index", ls_prof_value_name(r->o.index));
        cJSON *types = ls_jarr(&c, pr, "sample_types");
        for (int v = 0; types && v < LS_PROF_NVALUES; v++) {
            if (ls_prof_value_is_alloc((ls_prof_value_t)v) && !p->has_alloc) continue;
            ls_jpush(&c, types, cJSON_CreateString(value_names[v]));
        }
        ls_jnum(&c, pr, "live_samples", (double)p->live);
        if (p->sampled) ls_jnum(&c, pr, "samples", (double)p->samples);
        cJSON *t = ls_jobj(&c, pr, "totals");
        static const int order[LS_PROF_NVALUES] = {LS_PROF_INUSE_SPACE, LS_PROF_INUSE_OBJECTS,
                                                   LS_PROF_ALLOC_SPACE, LS_PROF_ALLOC_OBJECTS};
        for (int i = 0; t && i < LS_PROF_NVALUES; i++) {
            if (ls_prof_value_is_alloc((ls_prof_value_t)order[i]) && !p->has_alloc) continue;
            ls_jnum(&c, t, value_names[order[i]], (double)r->total[order[i]]);
        }
        ls_jnum(&c, pr, "sites_total", (double)r->nsites);
        ls_jnum(&c, pr, "stacks_total", (double)r->nstacks);
    }
    /* Sites in the head (as many as the stacks at most, a few small keys each); the stacks,
     * which carry whole symbolized stacks, are streamed one per line. */
    size_t nsi = r->o.top && r->o.top < r->nsites ? r->o.top : r->nsites;
    cJSON *sites = ls_jarr(&c, root, "sites");
    for (size_t i = 0; sites && i < nsi && !c.oom; i++) {
        const prow_t *x = &r->sites[i];
        cJSON *o = ls_jpush_obj(&c, sites);
        if (!o) break;
        ls_jput(&c, o, "site", ls_json_site(&c, ls_keys_frame(r->keys, x->key)));
        ls_jnum(&c, o, "stacks", x->nstacks);
        static const int order[LS_PROF_NVALUES] = {LS_PROF_INUSE_SPACE, LS_PROF_INUSE_OBJECTS,
                                                   LS_PROF_ALLOC_SPACE, LS_PROF_ALLOC_OBJECTS};
        for (int k = 0; k < LS_PROF_NVALUES; k++) {
            if (ls_prof_value_is_alloc((ls_prof_value_t)order[k]) && !p->has_alloc) continue;
            ls_jnum(&c, o, value_names[order[k]], (double)x->v[order[k]]);
        }
    }
    ls_jstream_t js;
    ls_jstream_begin(&js, &c, out, root, "stacks");
    size_t nst = r->o.top && r->o.top < r->nstacks ? r->o.top : r->nstacks;
    ls_jframes_t *fc = ls_jframes_new();
    if (!fc) c.oom = 1;
    for (size_t i = 0; fc && i < nst && !c.oom; i++) {
        const prow_t *x = &r->stacks[i];
        FILE *f = ls_jstream_raw_begin(&js);
        fputs("{\"site\":", f);
        ls_jstream_site(&js, fc, ls_keys_frame(r->keys, x->site));
        fprintf(f, ",\"stack_id\":%u,\"frames\":[", x->stack_id);
        const uint32_t *fk;
        size_t nf = ls_keys_stack(r->keys, x->key, &fk);
        for (size_t k = 0; k < nf; k++) {
            if (k) fputc(',', f);
            ls_jstream_frame(&js, fc, ls_keys_frame(r->keys, fk[k]));
        }
        fputc(']', f);
        json_values(f, p, x->v);
        fputc('}', f);
        ls_jstream_raw_end(&js);
    }
    ls_jframes_free(fc);
    return ls_jstream_end(&js, NULL);
}

/* ---- collapsed stacks ---------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (b->len + n + 1 > nc) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* One frame's name in a collapsed line: no ';' (the separator) and no line breaks. */
static void collapsed_frame(sbuf_t *b, const ls_sym_frame_t *f)
{
    char tmp[64];
    if (f->function) {
        size_t start = b->len;
        sb_put(b, f->function, strlen(f->function));
        for (size_t i = start; !b->oom && i < b->len; i++) {
            if (b->p[i] == ';') b->p[i] = ':';
            if (b->p[i] == '\n' || b->p[i] == '\r') b->p[i] = ' ';
        }
    } else if (f->object) {
        const char *base = ls_base_name(f->object);
        sb_put(b, base, strlen(base));
        int n = snprintf(tmp, sizeof(tmp), "+0x%llx", (unsigned long long)f->offset);
        sb_put(b, tmp, (size_t)n);
    } else {
        int n = snprintf(tmp, sizeof(tmp), "0x%llx", (unsigned long long)f->pc);
        sb_put(b, tmp, (size_t)n);
    }
}

typedef struct cline {
    size_t off; /* of the line's stack text in the shared buffer */
    int64_t value;
} cline_t;

static int cmp_cline(const void *a, const void *b, void *arg)
{
    const char *base = arg;
    return strcmp(base + ((const cline_t *)a)->off, base + ((const cline_t *)b)->off);
}

int ls_profile_write_collapsed(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                               const ls_profile_t *p, ls_prof_value_t index, FILE *out, char *err,
                               size_t errlen)
{
    sbuf_t text = {0};
    cline_t *lines = malloc((p->nstacks ? p->nstacks : 1) * sizeof(*lines));
    size_t n = 0;
    if (!lines) goto oom;
    for (size_t i = 0; i < p->nstacks; i++) {
        int64_t v = ls_prof_round(p->stacks[i].v[index]);
        if (v == 0) continue;
        ls_sym_frame_t *fr = NULL;
        size_t nf = 0;
        if (ls_stack_expand(snap, sym, p->stacks[i].stack, &fr, &nf)) goto oom;
        lines[n].off = text.len;
        lines[n].value = v;
        if (!nf) sb_put(&text, "[no stack]", 10);
        for (size_t k = nf; k-- > 0;) {
            collapsed_frame(&text, &fr[k]);
            if (k) sb_put(&text, ";", 1);
        }
        sb_put(&text, "", 1); /* the NUL ending this line's text stays in the buffer */
        free(fr);
        if (text.oom) goto oom;
        n++;
    }
    if (n) qsort_r(lines, n, sizeof(*lines), cmp_cline, text.p);
    for (size_t i = 0; i < n;) {
        int64_t sum = 0;
        size_t j = i;
        while (j < n && strcmp(text.p + lines[j].off, text.p + lines[i].off) == 0)
            sum += lines[j++].value;
        if (sum) fprintf(out, "%s %lld\n", text.p + lines[i].off, (long long)sum);
        i = j;
    }
    free(lines);
    free(text.p);
    return 0;
oom:
    ls_set_err(err, errlen, "out of memory");
    free(lines);
    free(text.p);
    return -1;
}
