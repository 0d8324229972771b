/*
 * ls_sites.c - the /proc/allocinfo view of any snapshot and the diff of two such views (the
 * contract is in ls_sites.h).
 *
 * One path for every mode: the snapshot becomes items {frames, figures} (SITES records, or the
 * weighted stacks of ls_profile_build for full and sample snapshots), items are grouped by their
 * first site_frames pcs (sort + merge), and rows are rendered from the groups. Raw pcs are a
 * fine key inside one snapshot (one address space); across snapshots (diff) rows are keyed by
 * module path + offset instead. A tagged site (format 1.5) is keyed by its tag, (module base
 * name, file, line, function), inside one snapshot as across two: the same tag loaded twice
 * (dlclose, dlopen) is one row.
 */
#define _GNU_SOURCE /* qsort_r */
#include "ls_sites.h"

#include "ls_output.h"
#include "ls_profile.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const sort_names[] = {"bytes", "calls", "allocs", "alloc-bytes"};

int ls_sites_sort_parse(const char *s, ls_sites_sort_t *by)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, sort_names[i]) == 0) {
            *by = (ls_sites_sort_t)i;
            return 0;
        }
    return -1;
}

const char *ls_sites_sort_name(ls_sites_sort_t by)
{
    return (unsigned)by < 4 ? sort_names[by] : "bytes";
}

/* ---- building ------------------------------------------------------------------------------ */

typedef struct item {
    uint32_t stack, n;
    const uint64_t *pcs;
    const ls_snap_tag_t *tag; /* a tagged site: keyed by tag and module, not by pcs */
    const char *module;
    int64_t x[4];  /* exact: live bytes, live blocks, allocs, bytes */
    double est[4]; /* estimates (sample), same order */
} item_t;

static int cmp_pcs(const uint64_t *a, uint32_t na, const uint64_t *b, uint32_t nb)
{
    uint32_t n = na < nb ? na : nb;
    for (uint32_t i = 0; i < n; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

static int cmp_bytes(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    if (c) return c < 0 ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

/* The site key: untagged sites by pcs, then tagged ones by (module, file, line, function). */
static int cmp_site(const ls_snap_tag_t *ta, const char *ma, const uint64_t *pa, uint32_t na,
                    const ls_snap_tag_t *tb, const char *mb, const uint64_t *pb, uint32_t nb)
{
    if (!ta || !tb) return ta ? 1 : tb ? -1 : cmp_pcs(pa, na, pb, nb);
    int c = strcmp(ma ? ma : "", mb ? mb : "");
    if (!c) c = cmp_bytes(ta->file, ta->file_len, tb->file, tb->file_len);
    if (!c && ta->line != tb->line) c = ta->line < tb->line ? -1 : 1;
    if (!c) c = cmp_bytes(ta->func, ta->func_len, tb->func, tb->func_len);
    return c;
}

static int cmp_item_site(const item_t *x, const item_t *y)
{
    return cmp_site(x->tag, x->module, x->pcs, x->n, y->tag, y->module, y->pcs, y->n);
}

static int cmp_item(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    int c = cmp_item_site(x, y);
    if (c) return c;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

/* Saturating add: counters of a damaged-but-valid file must not wrap into negatives. */
static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int64_t u2i(uint64_t u)
{
    return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
}

int ls_sites_build(const ls_snapshot_t *snap, unsigned frames, ls_sites_t *v, char *err,
                   size_t errlen)
{
    return ls_sites_build_ex(snap, frames, 0, v, err, errlen);
}

int ls_sites_build_ex(const ls_snapshot_t *snap, unsigned frames, unsigned flags, ls_sites_t *v,
                      char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    v->snap = snap;
    v->all = (flags & LS_SITES_ALL) != 0;
    v->enabled = snap->sites_enabled;
    bool counters = snap->has_sites || (snap->mode && strcmp(snap->mode, "sites") == 0);
    bool sampled = !counters && ls_snapshot_is_sampled(snap);
    v->mode = counters ? "sites" : sampled ? "sample" : "full";
    v->exact = !sampled;
    if (frames > 16) {
        ls_set_err(err, errlen, "a site has at most 16 frames (asked for %u)", frames);
        return -1;
    }
    if (counters) {
        unsigned have = snap->site_frames ? (unsigned)snap->site_frames : 1;
        if (frames > have) {
            ls_set_err(err, errlen,
                       "the agent counted sites of %u frame%s: cannot show sites of %u", have,
                       have == 1 ? "" : "s", frames);
            return -1;
        }
        v->site_frames = frames ? frames : have;
    } else {
        v->site_frames = frames ? frames : 1;
    }

    item_t *it = NULL;
    size_t n = 0;
    ls_profile_t prof;
    memset(&prof, 0, sizeof(prof));
    if (counters) {
        v->has_allocs = true;
        it = calloc(snap->nsites ? snap->nsites : 1, sizeof(*it));
        if (!it) goto oom;
        for (size_t i = 0; i < snap->nsites; i++) {
            const ls_fmt_site_t *r = &snap->sites[i];
            item_t *e = &it[n++];
            e->stack = r->stack;
            e->tag = ls_snapshot_site_tag(snap, r);
            e->x[0] = r->live_bytes;
            e->x[1] = r->live_blocks;
            e->x[2] = u2i(r->allocs);
            e->x[3] = u2i(r->bytes);
        }
    } else {
        if (ls_profile_build(snap, NULL, &prof, err, errlen)) return -1;
        v->has_allocs = prof.has_alloc;
        it = calloc(prof.nstacks ? prof.nstacks : 1, sizeof(*it));
        if (!it) goto oom;
        for (size_t i = 0; i < prof.nstacks; i++) {
            const ls_prof_stack_t *p = &prof.stacks[i];
            item_t *e = &it[n++];
            e->stack = p->stack;
            e->est[0] = p->v[LS_PROF_INUSE_SPACE];
            e->est[1] = p->v[LS_PROF_INUSE_OBJECTS];
            e->est[2] = p->v[LS_PROF_ALLOC_OBJECTS];
            e->est[3] = p->v[LS_PROF_ALLOC_SPACE];
            /* full mode: weights are 1, the doubles hold exact integers */
            for (int k = 0; k < 4; k++) e->x[k] = ls_prof_round(e->est[k]);
        }
        ls_profile_free(&prof);
    }
    for (size_t i = 0; i < n; i++) {
        const ls_snap_stack_t *st = it[i].stack ? ls_snapshot_stack(snap, it[i].stack) : NULL;
        it[i].pcs = st ? st->pcs : NULL;
        it[i].n = st ? (st->nframes < v->site_frames ? st->nframes : v->site_frames) : 0;
        if (it[i].tag && it[i].n) { /* the reader checked: one frame, the tag's address */
            const ls_snap_module_t *m = ls_snapshot_module_for(snap, it[i].pcs[0], it[i].stack);
            it[i].module = m ? ls_base_name(m->path) : NULL;
        }
    }
    qsort(it, n, sizeof(*it), cmp_item);

    v->rows = calloc(n ? n : 1, sizeof(*v->rows));
    if (!v->rows) goto oom;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int64_t x[4] = {0, 0, 0, 0};
        double est[4] = {0, 0, 0, 0};
        uint16_t kind = it[i].tag ? it[i].tag->kind : 0;
        for (; j < n && cmp_item_site(&it[j], &it[i]) == 0; j++) {
            for (int k = 0; k < 4; k++) {
                x[k] = add_sat(x[k], it[j].x[k]);
                est[k] += it[j].est[k];
            }
            if (it[j].tag && it[j].tag->kind != kind) kind = 0; /* two calls on one line */
        }
        if (sampled)
            for (int k = 0; k < 4; k++) x[k] = ls_prof_round(est[k]); /* once per site */
        if (!v->has_allocs) x[2] = x[3] = -1;
        bool any = x[0] > 0 || x[1] > 0 || x[2] > 0 || x[3] > 0;
        if (any || v->all) {
            ls_sites_row_t *r = &v->rows[v->nrows++];
            r->stack = it[i].stack; /* the smallest id of the group (sorted) */
            r->nframes = it[i].n;
            r->pcs = it[i].pcs;
            r->tag = it[i].tag;
            r->module = it[i].module;
            r->kind = kind;
            r->live_bytes = x[0];
            r->live_blocks = x[1];
            r->allocs = x[2];
            r->bytes = x[3];
        }
        i = j;
    }
    free(it);
    v->allocs = v->bytes = v->has_allocs ? 0 : -1;
    for (size_t i = 0; i < v->nrows; i++) {
        const ls_sites_row_t *r = &v->rows[i];
        v->live_bytes = add_sat(v->live_bytes, r->live_bytes);
        v->live_blocks = add_sat(v->live_blocks, r->live_blocks);
        if (v->has_allocs) {
            v->allocs = add_sat(v->allocs, r->allocs);
            v->bytes = add_sat(v->bytes, r->bytes);
        }
    }
    ls_sites_sort(v, LS_SITES_SORT_BYTES);
    return 0;
oom:
    free(it);
    ls_profile_free(&prof);
    ls_sites_free(v);
    ls_set_err(err, errlen, "out of memory");
    return -1;
}

void ls_sites_free(ls_sites_t *v)
{
    free(v->rows);
    v->rows = NULL;
    v->nrows = 0;
}

static int cmp_i64_desc(int64_t a, int64_t b)
{
    return a > b ? -1 : a < b;
}

static int cmp_row(const void *a, const void *b, void *arg)
{
    const ls_sites_row_t *x = a, *y = b;
    const ls_sites_sort_t *by = arg;
    int64_t kx[4] = {x->live_bytes, x->live_blocks, x->allocs, x->bytes};
    int64_t ky[4] = {y->live_bytes, y->live_blocks, y->allocs, y->bytes};
    int c = cmp_i64_desc(kx[*by], ky[*by]);
    for (int k = 0; !c && k < 4; k++) c = cmp_i64_desc(kx[k], ky[k]);
    if (!c)
        c = cmp_site(x->tag, x->module, x->pcs, x->nframes, y->tag, y->module, y->pcs, y->nframes);
    return c;
}

void ls_sites_sort(ls_sites_t *v, ls_sites_sort_t by)
{
    v->sort = by;
    qsort_r(v->rows, v->nrows, sizeof(*v->rows), cmp_row, &by);
}

/* ---- frames -------------------------------------------------------------------------------- */

/* The frame of one recorded pc: the symbolizer's innermost (the function that made the call,
 * inlined or not), with object and offset from the snapshot's modules when it has no better. */
static void site_frame(const ls_snapshot_t *snap, ls_symbolizer_t *sym, uint64_t pc, uint32_t stack,
                       ls_sym_frame_t *f)
{
    memset(f, 0, sizeof(*f));
    f->pc = pc;
    const ls_sym_frame_t *fr = NULL;
    if (sym && ls_symbolize_pc(sym, pc, stack, &fr) > 0) *f = fr[0];
    if (!f->object) {
        const ls_snap_module_t *m = ls_snapshot_module_for(snap, pc, stack);
        if (m) {
            f->object = m->path;
            f->offset = pc - m->rec.bias;
        }
    }
}

/* "file.c:12 [module] func:name", "libx.so+0x1f3 func:name", "0x7f..": allocinfo's tag. */
static void tag_text(const ls_sym_frame_t *f, char *buf, size_t len)
{
    int w;
    if (f->file)
        w = snprintf(buf, len, "%s:%u", ls_base_name(f->file), f->line);
    else if (f->object)
        w = snprintf(buf, len, "%s+0x%" PRIx64, ls_base_name(f->object), f->offset);
    else
        w = snprintf(buf, len, "0x%" PRIx64, f->pc);
    size_t used = w < 0 ? 0 : (size_t)w < len ? (size_t)w : len - 1;
    if (f->file && f->object)
        used += (size_t)snprintf(buf + used, len - used, " [%s]", ls_base_name(f->object));
    if (used < len && f->function) snprintf(buf + used, len - used, " func:%s", f->function);
}

static cJSON *json_frame(ls_jctx_t *c, const ls_sym_frame_t *f)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        c->oom = 1;
        return NULL;
    }
    ls_jhex(c, o, "pc", f->pc);
    ls_jstr(c, o, "function", f->function);
    ls_jstr(c, o, "file", f->file);
    if (f->file && f->line)
        ls_jnum(c, o, "line", f->line);
    else
        ls_jnull(c, o, "line");
    ls_jstr(c, o, "object", f->object);
    if (f->object)
        ls_jhex(c, o, "offset", f->offset);
    else
        ls_jnull(c, o, "offset");
    return o;
}

static void json_frames(ls_jctx_t *c, cJSON *parent, const ls_snapshot_t *snap,
                        ls_symbolizer_t *sym, const ls_sites_row_t *r)
{
    cJSON *arr = ls_jarr(c, parent, "frames");
    for (uint32_t i = 0; arr && i < r->nframes && !c->oom; i++) {
        ls_sym_frame_t f;
        site_frame(snap, sym, r->pcs[i], r->stack, &f);
        ls_jpush(c, arr, json_frame(c, &f));
    }
}

/* A compile-time tag as allocinfo prints it: "file.c:12 [module] func:name". */
static void tag_text_of(const ls_sites_row_t *r, char *buf, size_t len)
{
    const ls_snap_tag_t *t = r->tag;
    int fl = t->file_len;
    const char *file = t->file;
    for (int i = 0; i < t->file_len; i++) /* the base name, as for symbolized frames */
        if (t->file[i] == '/') {
            file = t->file + i + 1;
            fl = t->file_len - i - 1;
        }
    if (r->module)
        snprintf(buf, len, "%.*s:%u [%s] func:%.*s", fl, file, t->line, r->module, t->func_len,
                 t->func);
    else
        snprintf(buf, len, "%.*s:%u func:%.*s", fl, file, t->line, t->func_len, t->func);
}

static void json_tag(ls_jctx_t *c, cJSON *parent, const ls_sites_row_t *r)
{
    cJSON *o = ls_jobj(c, parent, "tag");
    if (!o) return;
    char *file = malloc((size_t)r->tag->file_len + r->tag->func_len + 2);
    if (!file) {
        c->oom = 1;
        return;
    }
    char *func = file + r->tag->file_len + 1;
    memcpy(file, r->tag->file, r->tag->file_len);
    file[r->tag->file_len] = 0;
    memcpy(func, r->tag->func, r->tag->func_len);
    func[r->tag->func_len] = 0;
    ls_jstr(c, o, "file", file);
    ls_jnum(c, o, "line", r->tag->line);
    ls_jstr(c, o, "function", func);
    ls_jstr(c, o, "kind", r->kind ? ls_tag_kind_name(r->kind) : "mixed");
    ls_jstr(c, o, "module", r->module);
    free(file);
}

/* "frames" (empty for a tagged site: its address is the tag object's, not code) and "tag". */
static void json_site(ls_jctx_t *c, cJSON *parent, const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                      const ls_sites_row_t *r)
{
    if (r->tag) {
        ls_jarr(c, parent, "frames");
        json_tag(c, parent, r);
    } else {
        json_frames(c, parent, snap, sym, r);
    }
}

/* Writes the site's tag; the caller frames follow on continuation lines under the tag. */
static void text_site(FILE *out, const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                      const ls_sites_row_t *r, const char *trail, int indent)
{
    char tag[1536];
    ls_sym_frame_t f;
    if (r->tag) {
        tag_text_of(r, tag, sizeof(tag));
        fprintf(out, "%s%s\n", tag, trail);
        return;
    }
    if (r->nframes == 0) {
        snprintf(tag, sizeof(tag), "(no stack)");
    } else {
        site_frame(snap, sym, r->pcs[0], r->stack, &f);
        tag_text(&f, tag, sizeof(tag));
    }
    fprintf(out, "%s%s\n", tag, trail);
    for (uint32_t i = 1; i < r->nframes; i++) {
        site_frame(snap, sym, r->pcs[i], r->stack, &f);
        tag_text(&f, tag, sizeof(tag));
        fprintf(out, "%*s<- %s\n", indent, "", tag);
    }
}

/* ---- sites: text and JSON ------------------------------------------------------------------ */

static const char *fig(const ls_sites_t *v, int64_t x, char buf[32])
{
    if (x < 0)
        snprintf(buf, 32, "-");
    else
        snprintf(buf, 32, "%s%" PRId64, v->exact ? "" : "~", x);
    return buf;
}

static const char *program_of(const ls_snapshot_t *s)
{
    return s->exe ? s->exe : s->cmdline;
}

void ls_sites_write_text(const ls_sites_t *v, ls_symbolizer_t *sym, size_t top, FILE *out)
{
    const ls_snapshot_t *s = v->snap;
    char a[32], b[32], c[32], d[32];
    fprintf(out, "# leakscope sites: %s (pid %" PRIu64 ")", program_of(s) ? program_of(s) : "?",
            s->pid);
    if (s->trigger) fprintf(out, ", trigger %s", s->trigger);
    fprintf(out, ", mode %s%s, %u frame%s per site", v->mode, v->exact ? "" : " (estimates)",
            v->site_frames, v->site_frames == 1 ? "" : "s");
    if (v->enabled >= 0) fprintf(out, ", counting %s", v->enabled ? "on" : "off");
    fprintf(out, "\n# total: %s live bytes in %s live blocks; %s allocations of %s bytes\n",
            fig(v, v->live_bytes, a), fig(v, v->live_blocks, b), fig(v, v->allocs, c),
            fig(v, v->bytes, d));
    fprintf(out, "#       <size>    <calls> <tag info>\n");
    size_t shown = top && top < v->nrows ? top : v->nrows;
    for (size_t i = 0; i < shown; i++) {
        const ls_sites_row_t *r = &v->rows[i];
        char trail[96];
        snprintf(trail, sizeof(trail), " allocs:%s alloc_bytes:%s", fig(v, r->allocs, c),
                 fig(v, r->bytes, d));
        fprintf(out, "%14s %10s ", fig(v, r->live_bytes, a), fig(v, r->live_blocks, b));
        text_site(out, s, sym, r, trail, 26);
    }
    fprintf(out, "%14s %10s total allocs:%s alloc_bytes:%s\n", fig(v, v->live_bytes, a),
            fig(v, v->live_blocks, b), fig(v, v->allocs, c), fig(v, v->bytes, d));
    if (shown < v->nrows)
        fprintf(out, "# %zu of %zu sites shown (--top %zu); the total counts them all\n", shown,
                v->nrows, top);
}

static void jfig(ls_jctx_t *c, cJSON *o, const char *k, int64_t x)
{
    if (x < 0)
        ls_jnull(c, o, k);
    else
        ls_jnum(c, o, k, (double)x);
}

static int print_json(ls_jctx_t *c, cJSON *root, FILE *out)
{
    char *text = c->oom ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return -1;
    int rc = fputs(text, out) < 0 || fputc('\n', out) == EOF ? -1 : 0;
    cJSON_free(text);
    return rc;
}

int ls_sites_write_json(const ls_sites_t *v, ls_symbolizer_t *sym, size_t top, FILE *out)
{
    const ls_snapshot_t *s = v->snap;
    ls_jctx_t c = {0};
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    ls_jnum(&c, root, "version", 1);
    ls_jstr(&c, root, "program", program_of(s));
    ls_jnum(&c, root, "pid", (double)s->pid);
    ls_jstr(&c, root, "trigger", s->trigger);
    ls_jstr(&c, root, "mode", v->mode);
    ls_jbool(&c, root, "exact", v->exact);
    ls_jnum(&c, root, "site_frames", v->site_frames);
    if (v->enabled >= 0)
        ls_jbool(&c, root, "enabled", v->enabled);
    else
        ls_jnull(&c, root, "enabled");
    ls_jstr(&c, root, "sort", ls_sites_sort_name(v->sort));
    ls_jnum(&c, root, "sites_total", (double)v->nrows);
    ls_jbool(&c, root, "all", v->all);
    cJSON *t = ls_jobj(&c, root, "totals");
    if (t) {
        jfig(&c, t, "live_bytes", v->live_bytes);
        jfig(&c, t, "live_blocks", v->live_blocks);
        jfig(&c, t, "allocs", v->allocs);
        jfig(&c, t, "bytes", v->bytes);
    }
    cJSON *arr = ls_jarr(&c, root, "sites");
    size_t shown = top && top < v->nrows ? top : v->nrows;
    for (size_t i = 0; arr && i < shown && !c.oom; i++) {
        const ls_sites_row_t *r = &v->rows[i];
        cJSON *o = ls_jpush_obj(&c, arr);
        if (!o) break;
        jfig(&c, o, "live_bytes", r->live_bytes);
        jfig(&c, o, "live_blocks", r->live_blocks);
        jfig(&c, o, "allocs", r->allocs);
        jfig(&c, o, "bytes", r->bytes);
        json_site(&c, o, s, sym, r);
    }
    return print_json(&c, root, out);
}

/* ---- diff ---------------------------------------------------------------------------------- */

typedef struct dkey {
    char *key; /* module path + offset per frame, or the bare pc */
    const ls_sites_row_t *row;
} dkey_t;

typedef struct drow {
    const ls_sites_row_t *old_row, *new_row; /* the first row of each side under the key */
    int64_t old_bytes, old_blocks, new_bytes, new_blocks;
    const char *key;
} drow_t;

struct ls_sites_diff {
    const ls_sites_t *old_v, *new_v;
    dkey_t *keys[2];
    drow_t *rows;
    size_t nrows, unchanged;
    int64_t old_bytes, old_blocks, new_bytes, new_blocks;
};

static char *row_key(const ls_snapshot_t *snap, const ls_sites_row_t *r)
{
    if (r->tag) { /* "\x01" sorts before any path or pc: no clash with the keys below */
        const char *m = r->module ? r->module : "";
        size_t n = strlen(m) + r->tag->file_len + r->tag->func_len + 32;
        char *k = malloc(n);
        if (k)
            snprintf(k, n, "\x01%s\x1f%.*s\x1f%u\x1f%.*s", m, r->tag->file_len, r->tag->file,
                     r->tag->line, r->tag->func_len, r->tag->func);
        return k;
    }
    size_t cap = 64, len = 0;
    char *k = malloc(cap);
    if (!k) return NULL;
    k[0] = 0;
    for (uint32_t i = 0; i < r->nframes; i++) {
        const ls_snap_module_t *m = ls_snapshot_module_for(snap, r->pcs[i], r->stack);
        size_t need = (m ? strlen(m->path) : 0) + 48;
        if (len + need > cap) {
            cap = (len + need) * 2;
            char *nk = realloc(k, cap);
            if (!nk) {
                free(k);
                return NULL;
            }
            k = nk;
        }
        if (m)
            len += (size_t)snprintf(k + len, cap - len, "%s%s+0x%" PRIx64, i ? ";" : "", m->path,
                                    r->pcs[i] - m->rec.bias);
        else
            len += (size_t)snprintf(k + len, cap - len, "%s0x%" PRIx64, i ? ";" : "", r->pcs[i]);
    }
    return k;
}

static int cmp_dkey(const void *a, const void *b)
{
    return strcmp(((const dkey_t *)a)->key, ((const dkey_t *)b)->key);
}

static uint64_t abs64(int64_t x)
{
    return x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
}

static int cmp_drow(const void *a, const void *b)
{
    const drow_t *x = a, *y = b;
    uint64_t ax = abs64(x->new_bytes - x->old_bytes), ay = abs64(y->new_bytes - y->old_bytes);
    if (ax != ay) return ax > ay ? -1 : 1;
    ax = abs64(x->new_blocks - x->old_blocks);
    ay = abs64(y->new_blocks - y->old_blocks);
    if (ax != ay) return ax > ay ? -1 : 1;
    return strcmp(x->key, y->key);
}

void ls_sites_diff_free(ls_sites_diff_t *d)
{
    if (!d) return;
    for (int s = 0; s < 2; s++) {
        const ls_sites_t *v = s ? d->new_v : d->old_v;
        for (size_t i = 0; d->keys[s] && i < v->nrows; i++) free(d->keys[s][i].key);
        free(d->keys[s]);
    }
    free(d->rows);
    free(d);
}

ls_sites_diff_t *ls_sites_diff_build(const ls_sites_t *old_v, const ls_sites_t *new_v, char *err,
                                     size_t errlen)
{
    ls_sites_diff_t *d = calloc(1, sizeof(*d));
    if (!d) goto oom;
    d->old_v = old_v;
    d->new_v = new_v;
    for (int s = 0; s < 2; s++) {
        const ls_sites_t *v = s ? new_v : old_v;
        d->keys[s] = calloc(v->nrows ? v->nrows : 1, sizeof(dkey_t));
        if (!d->keys[s]) goto oom;
        for (size_t i = 0; i < v->nrows; i++) {
            d->keys[s][i].row = &v->rows[i];
            d->keys[s][i].key = row_key(v->snap, &v->rows[i]);
            if (!d->keys[s][i].key) goto oom;
        }
        qsort(d->keys[s], v->nrows, sizeof(dkey_t), cmp_dkey);
    }
    d->rows = calloc(old_v->nrows + new_v->nrows + 1, sizeof(*d->rows));
    if (!d->rows) goto oom;
    size_t i = 0, j = 0, no = old_v->nrows, nn = new_v->nrows;
    const dkey_t *ko = d->keys[0], *kn = d->keys[1];
    while (i < no || j < nn) {
        const char *key;
        if (j >= nn || (i < no && strcmp(ko[i].key, kn[j].key) < 0))
            key = ko[i].key;
        else
            key = kn[j].key;
        drow_t r;
        memset(&r, 0, sizeof(r));
        r.key = key;
        /* one address space can hold one module offset at two pcs (dlclose + dlopen): fold */
        for (; i < no && strcmp(ko[i].key, key) == 0; i++) {
            if (!r.old_row) r.old_row = ko[i].row;
            r.old_bytes = add_sat(r.old_bytes, ko[i].row->live_bytes);
            r.old_blocks = add_sat(r.old_blocks, ko[i].row->live_blocks);
        }
        for (; j < nn && strcmp(kn[j].key, key) == 0; j++) {
            if (!r.new_row) r.new_row = kn[j].row;
            r.new_bytes = add_sat(r.new_bytes, kn[j].row->live_bytes);
            r.new_blocks = add_sat(r.new_blocks, kn[j].row->live_blocks);
        }
        d->old_bytes = add_sat(d->old_bytes, r.old_bytes);
        d->old_blocks = add_sat(d->old_blocks, r.old_blocks);
        d->new_bytes = add_sat(d->new_bytes, r.new_bytes);
        d->new_blocks = add_sat(d->new_blocks, r.new_blocks);
        if (r.old_bytes == r.new_bytes && r.old_blocks == r.new_blocks)
            d->unchanged++;
        else
            d->rows[d->nrows++] = r;
    }
    qsort(d->rows, d->nrows, sizeof(*d->rows), cmp_drow);
    return d;
oom:
    ls_sites_diff_free(d);
    ls_set_err(err, errlen, "out of memory");
    return NULL;
}

static const char *sfig(bool exact, int64_t x, char buf[32])
{
    snprintf(buf, 32, "%s%+" PRId64, exact ? "" : "~", x);
    return buf;
}

void ls_sites_diff_write_text(const ls_sites_diff_t *d, const char *old_file, const char *new_file,
                              ls_symbolizer_t *old_sym, ls_symbolizer_t *new_sym, size_t top,
                              FILE *out)
{
    const ls_sites_t *o = d->old_v, *n = d->new_v;
    bool exact = o->exact && n->exact;
    char a[32], b[32], c[32], e[32];
    fprintf(out, "# leakscope diff of sites: NEW minus OLD\n");
    fprintf(out, "# OLD %s: %s (pid %" PRIu64 "), mode %s\n", old_file,
            program_of(o->snap) ? program_of(o->snap) : "?", o->snap->pid, o->mode);
    fprintf(out, "# NEW %s: %s (pid %" PRIu64 "), mode %s\n", new_file,
            program_of(n->snap) ? program_of(n->snap) : "?", n->snap->pid, n->mode);
    if (!exact) fprintf(out, "# figures of a sample profile are estimates (~)\n");
    fprintf(out, "#  <delta size> <delta calls>   <old size>   <new size> <tag info>\n");
    size_t shown = top && top < d->nrows ? top : d->nrows;
    for (size_t i = 0; i < shown; i++) {
        const drow_t *r = &d->rows[i];
        fprintf(out, "%14s %13s %12" PRId64 " %12" PRId64 " ",
                sfig(exact, r->new_bytes - r->old_bytes, a),
                sfig(exact, r->new_blocks - r->old_blocks, b), r->old_bytes, r->new_bytes);
        if (r->new_row)
            text_site(out, n->snap, new_sym, r->new_row, "", 55);
        else
            text_site(out, o->snap, old_sym, r->old_row, "", 55);
    }
    fprintf(out, "%14s %13s %12" PRId64 " %12" PRId64 " total\n",
            sfig(exact, d->new_bytes - d->old_bytes, c),
            sfig(exact, d->new_blocks - d->old_blocks, e), d->old_bytes, d->new_bytes);
    fprintf(out, "# %zu site%s changed", d->nrows, d->nrows == 1 ? "" : "s");
    if (shown < d->nrows) fprintf(out, " (%zu shown)", shown);
    fprintf(out, ", %zu unchanged\n", d->unchanged);
}

static void json_side(ls_jctx_t *c, cJSON *root, const char *k, const char *file,
                      const ls_sites_t *v)
{
    cJSON *o = ls_jobj(c, root, k);
    if (!o) return;
    ls_jstr(c, o, "file", file);
    ls_jstr(c, o, "program", program_of(v->snap));
    ls_jnum(c, o, "pid", (double)v->snap->pid);
    ls_jstr(c, o, "mode", v->mode);
    ls_jbool(c, o, "exact", v->exact);
}

int ls_sites_diff_write_json(const ls_sites_diff_t *d, const char *old_file, const char *new_file,
                             ls_symbolizer_t *old_sym, ls_symbolizer_t *new_sym, size_t top,
                             FILE *out)
{
    ls_jctx_t c = {0};
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    ls_jnum(&c, root, "version", 1);
    json_side(&c, root, "old", old_file, d->old_v);
    json_side(&c, root, "new", new_file, d->new_v);
    cJSON *t = ls_jobj(&c, root, "totals");
    if (t) {
        ls_jnum(&c, t, "old_live_bytes", (double)d->old_bytes);
        ls_jnum(&c, t, "old_live_blocks", (double)d->old_blocks);
        ls_jnum(&c, t, "new_live_bytes", (double)d->new_bytes);
        ls_jnum(&c, t, "new_live_blocks", (double)d->new_blocks);
        ls_jnum(&c, t, "delta_live_bytes", (double)(d->new_bytes - d->old_bytes));
        ls_jnum(&c, t, "delta_live_blocks", (double)(d->new_blocks - d->old_blocks));
    }
    ls_jnum(&c, root, "unchanged", (double)d->unchanged);
    ls_jnum(&c, root, "sites_total", (double)d->nrows);
    cJSON *arr = ls_jarr(&c, root, "sites");
    size_t shown = top && top < d->nrows ? top : d->nrows;
    for (size_t i = 0; arr && i < shown && !c.oom; i++) {
        const drow_t *r = &d->rows[i];
        cJSON *o = ls_jpush_obj(&c, arr);
        if (!o) break;
        ls_jnum(&c, o, "delta_live_bytes", (double)(r->new_bytes - r->old_bytes));
        ls_jnum(&c, o, "delta_live_blocks", (double)(r->new_blocks - r->old_blocks));
        for (int s = 0; s < 2; s++) {
            const char *k = s ? "new" : "old";
            if (!(s ? r->new_row : r->old_row)) {
                ls_jnull(&c, o, k);
                continue;
            }
            cJSON *side = ls_jobj(&c, o, k);
            if (!side) break;
            ls_jnum(&c, side, "live_bytes", (double)(s ? r->new_bytes : r->old_bytes));
            ls_jnum(&c, side, "live_blocks", (double)(s ? r->new_blocks : r->old_blocks));
        }
        if (r->new_row)
            json_site(&c, o, d->new_v->snap, new_sym, r->new_row);
        else
            json_site(&c, o, d->old_v->snap, old_sym, r->old_row);
    }
    return print_json(&c, root, out);
}
