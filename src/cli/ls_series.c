/*
 * ls_series.c - snapshot series and the analyses on them: diff, suspects, the watch table (see
 * ls_series.h; the suspects method and its reasons are in docs/DESIGN.md, "Suspects").
 *
 * Owns: the series (per snapshot: metadata + ls_agg_t; the shared ls_keys_t; the symbolizer of
 * the latest module table with the snapshot it was made for), site tables, suspects, diffs.
 */
#define _GNU_SOURCE
#include "ls_series.h"

#include "ls_profile.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ls_series {
    ls_keys_t *keys;
    const ls_site_rules_t *rules;
    ls_series_snap_t *v;
    size_t n, cap;
    ls_snapshot_t *sym_snap; /* the snapshot sym was made for, kept while sym is */
    ls_symbolizer_t *sym;
};

ls_series_t *ls_series_new(const ls_site_rules_t *rules)
{
    ls_series_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->keys = ls_keys_new();
    if (!s->keys) {
        free(s);
        return NULL;
    }
    s->rules = rules;
    return s;
}

static void drop_symbolizer(ls_series_t *s)
{
    ls_symbolizer_free(s->sym);
    s->sym = NULL;
    if (s->sym_snap) ls_snapshot_free(s->sym_snap);
    free(s->sym_snap);
    s->sym_snap = NULL;
}

void ls_series_free(ls_series_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].file);
        free(s->v[i].exe);
        ls_agg_free(s->v[i].agg);
    }
    free(s->v);
    drop_symbolizer(s);
    ls_keys_free(s->keys);
    free(s);
}

size_t ls_series_len(const ls_series_t *s)
{
    return s->n;
}

const ls_series_snap_t *ls_series_at(const ls_series_t *s, size_t i)
{
    return i < s->n ? &s->v[i] : NULL;
}

const ls_keys_t *ls_series_keys(const ls_series_t *s)
{
    return s->keys;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Same objects at the same places over the same stack-id ranges: a symbolizer made for one
 * resolves the other's pcs identically. */
static bool modules_equal(const ls_snapshot_t *a, const ls_snapshot_t *b)
{
    if (a->nmodules != b->nmodules || !str_eq(a->exe, b->exe)) return false;
    for (size_t i = 0; i < a->nmodules; i++) {
        const ls_snap_module_t *x = &a->modules[i], *y = &b->modules[i];
        if (memcmp(&x->rec, &y->rec, sizeof(x->rec)) != 0 || !str_eq(x->path, y->path) ||
            memcmp(x->build_id, y->build_id, x->rec.build_id_len) != 0)
            return false;
    }
    return true;
}

int ls_series_add_file(ls_series_t *s, const char *path, char *err, size_t errlen)
{
    ls_snapshot_t *snap = calloc(1, sizeof(*snap));
    ls_wstack_t *ws = NULL;
    size_t nws = 0;
    bool keep = false; /* snap becomes the symbolizer's */
    int rc = -1;
    if (!snap) goto oom;
    if (ls_snapshot_load(path, snap, err, errlen)) {
        free(snap);
        return -1;
    }
    if (s->n == s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 16;
        ls_series_snap_t *nv = realloc(s->v, ncap * sizeof(*nv));
        if (!nv) goto oom;
        s->v = nv;
        s->cap = ncap;
    }
    if (!s->sym || !modules_equal(s->sym_snap, snap)) {
        drop_symbolizer(s);
        s->sym = ls_symbolizer_new(snap, NULL);
        if (!s->sym) goto oom;
        s->sym_snap = snap;
        keep = true;
    }
    if (ls_profile_weigh_inuse(snap, &ws, &nws)) goto oom;
    ls_series_snap_t *e = &s->v[s->n];
    memset(e, 0, sizeof(*e));
    e->agg = ls_agg_build(snap, s->sym, s->keys, s->rules, ws, nws, err, errlen);
    if (!e->agg) goto fail;
    e->file = strdup(path);
    e->exe = snap->exe ? strdup(snap->exe) : NULL;
    if (!e->file || (snap->exe && !e->exe)) {
        free(e->file);
        free(e->exe);
        ls_agg_free(e->agg);
        goto oom;
    }
    e->pid = snap->pid;
    e->reason = snap->reason;
    e->snap_ns = snap->snap_ns;
    e->snap_realtime_ns = snap->snap_realtime_ns;
    e->snap_seq = snap->snap_seq;
    e->sample_rate = ls_snapshot_is_sampled(snap) ? snap->sample_rate : 0;
    e->time_s = (double)snap->snap_ns / 1e9;
    s->n++;
    rc = 0;
    goto out;
oom:
    ls_set_err(err, errlen, "%s: out of memory", path);
fail:
    if (keep) { /* do not leave a symbolizer whose snapshot is freed below */
        ls_symbolizer_free(s->sym);
        s->sym = NULL;
        s->sym_snap = NULL;
        keep = false;
    }
out:
    free(ws);
    if (snap && !keep) {
        ls_snapshot_free(snap);
        free(snap);
    }
    return rc;
}

static int cmp_snap_time(const void *a, const void *b)
{
    const ls_series_snap_t *x = a, *y = b;
    if (x->snap_realtime_ns != y->snap_realtime_ns)
        return x->snap_realtime_ns < y->snap_realtime_ns ? -1 : 1;
    if (x->snap_ns != y->snap_ns) return x->snap_ns < y->snap_ns ? -1 : 1;
    return strcmp(x->file, y->file);
}

bool ls_series_set_times(ls_series_t *s)
{
    bool mixed = false, realtime = true;
    uint64_t rt0 = UINT64_MAX;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].pid != s->v[0].pid) mixed = true;
        if (!s->v[i].snap_realtime_ns) realtime = false;
        if (s->v[i].snap_realtime_ns < rt0) rt0 = s->v[i].snap_realtime_ns;
    }
    for (size_t i = 0; i < s->n; i++) {
        ls_series_snap_t *e = &s->v[i];
        if (!mixed)
            e->time_s = (double)e->snap_ns / 1e9; /* the clock of births and markers */
        else if (realtime)
            e->time_s = (double)(e->snap_realtime_ns - rt0) / 1e9;
        else
            e->time_s = (double)i;
    }
    return mixed;
}

bool ls_series_sort(ls_series_t *s)
{
    if (s->n) qsort(s->v, s->n, sizeof(*s->v), cmp_snap_time);
    return ls_series_set_times(s);
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ls_series_free_files(char **files, size_t n)
{
    for (size_t i = 0; files && i < n; i++) free(files[i]);
    free(files);
}

static int push_file(char ***files, size_t *n, size_t *cap, char *f)
{
    if (!f) return -1;
    if (*n == *cap) {
        size_t ncap = *cap ? 2 * *cap : 16;
        char **nv = realloc(*files, ncap * sizeof(*nv));
        if (!nv) {
            free(f);
            return -1;
        }
        *files = nv;
        *cap = ncap;
    }
    (*files)[(*n)++] = f;
    return 0;
}

int ls_series_expand_args(char *const *args, size_t nargs, char ***files, size_t *nfiles, char *err,
                          size_t errlen)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    for (size_t a = 0; a < nargs; a++) {
        struct stat st;
        if (stat(args[a], &st) != 0 || !S_ISDIR(st.st_mode)) {
            /* a file, or nothing: the loader names the problem */
            if (push_file(&v, &n, &cap, strdup(args[a]))) goto oom;
            continue;
        }
        DIR *d = opendir(args[a]);
        if (!d) {
            ls_set_err(err, errlen, "cannot open directory %s: %s", args[a], strerror(errno));
            ls_series_free_files(v, n);
            return -1;
        }
        size_t first = n;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t len = strlen(de->d_name);
            if (de->d_name[0] == '.' || len < 7 || strcmp(de->d_name + len - 6, ".lsnap") != 0)
                continue;
            char *p = NULL;
            if (asprintf(&p, "%s/%s", args[a], de->d_name) < 0) p = NULL;
            if (push_file(&v, &n, &cap, p)) {
                closedir(d);
                goto oom;
            }
        }
        closedir(d);
        if (n == first) {
            ls_set_err(err, errlen, "no snapshot files (*.lsnap) in directory %s", args[a]);
            ls_series_free_files(v, n);
            return -1;
        }
        qsort(v + first, n - first, sizeof(*v), cmp_strp);
    }
    *files = v;
    *nfiles = n;
    return 0;
oom:
    ls_series_free_files(v, n);
    ls_set_err(err, errlen, "out of memory");
    return -1;
}

/* ---- per-site series ------------------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int ls_site_table_build(const ls_series_t *s, ls_site_table_t *t)
{
    memset(t, 0, sizeof(*t));
    t->nsnaps = s->n;
    size_t total = 0;
    for (size_t i = 0; i < s->n; i++) total += s->v[i].agg->nsites;
    uint32_t *keys = malloc((total ? total : 1) * sizeof(*keys));
    if (!keys) return -1;
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        for (size_t j = 0; j < s->v[i].agg->nsites; j++) keys[k++] = s->v[i].agg->sites[j].key;
    qsort(keys, total, sizeof(*keys), cmp_u32);
    size_t u = 0;
    for (size_t i = 0; i < total; i++)
        if (!u || keys[u - 1] != keys[i]) keys[u++] = keys[i];
    t->rows = calloc(u ? u : 1, sizeof(*t->rows));
    t->buf = calloc(2 * u * s->n + 1, sizeof(*t->buf));
    if (!t->rows || !t->buf) {
        free(keys);
        ls_site_table_free(t);
        return -1;
    }
    t->nrows = u;
    for (size_t r = 0; r < u; r++) {
        t->rows[r].key = keys[r];
        t->rows[r].bytes = t->buf + 2 * r * s->n;
        t->rows[r].blocks = t->rows[r].bytes + s->n;
    }
    free(keys);
    /* Both sides sorted by key: one merge per snapshot. */
    for (size_t i = 0; i < s->n; i++) {
        const ls_agg_t *a = s->v[i].agg;
        size_t r = 0;
        for (size_t j = 0; j < a->nsites; j++) {
            while (t->rows[r].key != a->sites[j].key) r++;
            t->rows[r].bytes[i] = a->sites[j].bytes;
            t->rows[r].blocks[i] = a->sites[j].blocks;
        }
    }
    return 0;
}

void ls_site_table_free(ls_site_table_t *t)
{
    free(t->rows);
    free(t->buf);
    memset(t, 0, sizeof(*t));
}

void ls_linear_fit(const double *x, const double *y, size_t n, double *slope, double *r2)
{
    *slope = 0;
    *r2 = 0;
    if (n < 2) return;
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= (double)n;
    my /= (double)n;
    double sxx = 0, sxy = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        sxy += (x[i] - mx) * (y[i] - my);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx <= 0) return;
    *slope = sxy / sxx;
    if (syy > 0) *r2 = sxy * sxy / (sxx * syy);
}

/* ---- suspects ------------------------------------------------------------------------------- */

static double dist(double a, double b)
{
    return a > b ? a - b : b - a;
}

/*
 * The snapshot splitting the series into halves: the one closest in time to the middle of the
 * active span, kept strictly inside it. Activity of an interval = the sum over sites of how much
 * their bytes changed in it; the active span runs from the first to the last interval with more
 * than 5% of the busiest interval's activity. So an idle tail (or head), however long and however
 * noisy with timers, does not move the middle away from where the program worked.
 */
static size_t split_point(const ls_series_t *s, const ls_site_table_t *t)
{
    size_t n = s->n, a = 0, e = n - 1;
    uint64_t *act = calloc(n, sizeof(*act)), max = 0;
    if (act) {
        for (size_t r = 0; r < t->nrows; r++)
            for (size_t i = 1; i < n; i++) {
                uint64_t x = t->rows[r].bytes[i - 1], y = t->rows[r].bytes[i];
                act[i] += x > y ? x - y : y - x;
            }
        for (size_t i = 1; i < n; i++)
            if (act[i] > max) max = act[i];
        size_t first = 0, last = 0;
        for (size_t i = 1; i < n; i++)
            if (act[i] > max / 20) {
                if (!first) first = i;
                last = i;
            }
        if (first && last - (first - 1) >= 2) a = first - 1, e = last;
        free(act);
    }
    double mid = (s->v[a].time_s + s->v[e].time_s) / 2;
    size_t best = a + 1;
    for (size_t i = a + 1; i < e; i++)
        if (dist(s->v[i].time_s, mid) < dist(s->v[best].time_s, mid)) best = i;
    return best;
}

typedef struct rank_ctx {
    const ls_keys_t *keys;
} rank_ctx_t;

static int cmp_suspect(const void *a, const void *b, void *arg)
{
    const ls_suspect_t *x = a, *y = b;
    const rank_ctx_t *c = arg;
    if (x->growth != y->growth) return x->growth > y->growth ? -1 : 1;
    if (x->slope != y->slope) return x->slope > y->slope ? -1 : 1;
    return ls_keys_cmp_frame(c->keys, x->site->key, y->site->key);
}

static int cmp_sstack(const void *a, const void *b, void *arg)
{
    const ls_suspect_stack_t *x = a, *y = b;
    const rank_ctx_t *c = arg;
    if (x->growth != y->growth) return x->growth > y->growth ? -1 : 1;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    return ls_keys_cmp_stack(c->keys, x->key, y->key);
}

typedef struct site_stack {
    uint32_t suspect, key;
} site_stack_t;

static int cmp_site_stack(const void *a, const void *b)
{
    const site_stack_t *x = a, *y = b;
    if (x->suspect != y->suspect) return x->suspect < y->suspect ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

typedef struct site_index {
    uint32_t key, suspect;
} site_index_t;

static int cmp_site_index(const void *a, const void *b)
{
    const site_index_t *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* The stacks of every suspect: each stack seen at that site anywhere in the series, with its
 * growth (last bytes minus its minimum), biggest growth first, at most max per suspect. */
static int suspect_stacks(const ls_series_t *s, ls_suspects_t *r, size_t max)
{
    if (!r->n) return 0;
    site_index_t *idx = malloc(r->n * sizeof(*idx));
    if (!idx) return -1;
    for (size_t i = 0; i < r->n; i++) idx[i] = (site_index_t){r->v[i].site->key, (uint32_t)i};
    qsort(idx, r->n, sizeof(*idx), cmp_site_index);
    site_stack_t *list = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < s->n; i++) {
        const ls_agg_t *a = s->v[i].agg;
        for (size_t j = 0; j < a->nstacks; j++) {
            site_index_t probe = {a->stacks[j].site, 0};
            const site_index_t *hit = bsearch(&probe, idx, r->n, sizeof(*idx), cmp_site_index);
            if (!hit) continue;
            if (n == cap) {
                size_t ncap = cap ? 2 * cap : 64;
                site_stack_t *nl = realloc(list, ncap * sizeof(*nl));
                if (!nl) goto oom;
                list = nl;
                cap = ncap;
            }
            list[n++] = (site_stack_t){hit->suspect, a->stacks[j].key};
        }
    }
    if (n) qsort(list, n, sizeof(*list), cmp_site_stack);
    rank_ctx_t ctx = {s->keys};
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && list[j].suspect == list[i].suspect) j++;
        ls_suspect_t *sus = &r->v[list[i].suspect];
        sus->stacks = calloc(j - i, sizeof(*sus->stacks));
        if (!sus->stacks) goto oom;
        for (size_t k = i; k < j; k++) {
            if (k > i && list[k].key == list[k - 1].key) continue;
            uint64_t min = UINT64_MAX, last = 0, last_blocks = 0;
            for (size_t t = 0; t < s->n; t++) {
                const ls_agg_stack_t *st = ls_agg_find_stack(s->v[t].agg, list[k].key);
                uint64_t b = st ? st->bytes : 0;
                if (b < min) min = b;
                if (t == s->n - 1) last = b, last_blocks = st ? st->blocks : 0;
            }
            sus->stacks[sus->nstacks++] =
                (ls_suspect_stack_t){list[k].key, last, last_blocks, last - min};
        }
        qsort_r(sus->stacks, sus->nstacks, sizeof(*sus->stacks), cmp_sstack, &ctx);
        if (sus->nstacks > max) sus->nstacks = max;
        i = j;
    }
    free(idx);
    free(list);
    return 0;
oom:
    free(idx);
    free(list);
    return -1;
}

ls_suspects_t *ls_suspects_find(const ls_series_t *s, const ls_suspect_opts_t *o, char *err,
                                size_t errlen)
{
    if (s->n < 3) {
        ls_set_err(err, errlen,
                   "need at least 3 snapshots to tell growth from noise, got %zu (take more "
                   "with 'leakscope watch' or 'leakscope snapshot')",
                   s->n);
        return NULL;
    }
    ls_suspects_t *r = calloc(1, sizeof(*r));
    double *x = malloc(s->n * sizeof(*x)), *y = malloc(s->n * sizeof(*y));
    if (!r || !x || !y || ls_site_table_build(s, &r->table)) goto oom;
    size_t n = s->n, last = n - 1;
    uint64_t live = s->v[last].agg->bytes;
    r->min_growth = o && o->has_min_growth ? o->min_growth : live / 100 > 4096 ? live / 100 : 4096;
    r->split = split_point(s, &r->table);
    for (size_t i = 0; i < n; i++) x[i] = s->v[i].time_s;
    r->v = calloc(r->table.nrows + 1, sizeof(*r->v));
    if (!r->v) goto oom;

    uint64_t *floor = malloc(n * sizeof(*floor));
    if (!floor) goto oom;
    for (size_t k = 0; k < r->table.nrows; k++) {
        const ls_site_row_t *row = &r->table.rows[k];
        floor[last] = row->bytes[last];
        for (size_t i = last; i-- > 0;)
            floor[i] = row->bytes[i] < floor[i + 1] ? row->bytes[i] : floor[i + 1];
        uint64_t growth = floor[last] - floor[0];
        uint64_t rise1 = floor[r->split] - floor[0], rise2 = floor[last] - floor[r->split];
        /* Each half must carry a tenth of the growth: a structure that filled up early and only
         * crept afterwards is not a leak that keeps growing. */
        if (growth == 0 || growth < r->min_growth || rise1 == 0 || rise2 == 0 ||
            rise1 < growth / 10 || rise2 < growth / 10)
            continue;
        ls_suspect_t *sus = &r->v[r->n++];
        sus->site = row;
        sus->floor = floor;
        floor = malloc(n * sizeof(*floor));
        if (!floor) goto oom;
        sus->growth = growth;
        sus->rise1 = rise1;
        sus->rise2 = rise2;
        for (size_t i = 0; i < n; i++) y[i] = (double)row->bytes[i];
        ls_linear_fit(x, y, n, &sus->slope, &sus->r2);
    }
    free(floor);
    rank_ctx_t ctx = {s->keys};
    if (r->n) qsort_r(r->v, r->n, sizeof(*r->v), cmp_suspect, &ctx);
    if (suspect_stacks(s, r, o && o->max_stacks ? o->max_stacks : 3)) goto oom;
    free(x);
    free(y);
    return r;
oom:
    free(x);
    free(y);
    ls_suspects_free(r);
    ls_set_err(err, errlen, "out of memory while looking for suspects");
    return NULL;
}

void ls_suspects_free(ls_suspects_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].floor);
        free(r->v[i].stacks);
    }
    free(r->v);
    ls_site_table_free(&r->table);
    free(r);
}

static void site_label(const ls_keys_t *k, uint32_t site, char *buf, size_t len)
{
    ls_site_label(ls_keys_frame(k, site), buf, len);
}

/* "of pid 42 (/usr/bin/server)" or "of 3 processes". */
static void describe_pids(const ls_series_t *s, char *buf, size_t len)
{
    size_t distinct = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = 0;
        while (j < i && s->v[j].pid != s->v[i].pid) j++;
        if (j == i) distinct++;
    }
    if (distinct == 1)
        snprintf(buf, len, "of pid %llu%s%s%s", (unsigned long long)s->v[0].pid,
                 s->v[0].exe ? " (" : "", s->v[0].exe ? s->v[0].exe : "", s->v[0].exe ? ")" : "");
    else
        snprintf(buf, len, "of %zu processes", distinct);
}

static void text_stack(FILE *out, const ls_keys_t *k, uint32_t stack_key)
{
    const uint32_t *fk;
    size_t n = ls_keys_stack(k, stack_key, &fk);
    if (!n) fprintf(out, "    (no allocation stack recorded)\n");
    for (size_t i = 0; i < n; i++) ls_text_frame(out, ls_keys_frame(k, fk[i]), i == 0);
}

void ls_suspects_write_text(const ls_series_t *s, const ls_suspects_t *r, size_t top, FILE *out)
{
    char b1[32], b2[32], b3[32], b4[32], who[1200], label[1024];
    describe_pids(s, who, sizeof(who));
    const ls_series_snap_t *first = &s->v[0], *last = &s->v[s->n - 1];
    fprintf(out, "leakscope suspects - %zu snapshots %s, %.2f s to %.2f s\n", s->n, who,
            first->time_s, last->time_s);
    fprintf(out, "live at the last: %s bytes in %s blocks; minimum growth %s bytes\n",
            ls_commas(last->agg->bytes, b1), ls_commas(last->agg->blocks, b2),
            ls_commas(r->min_growth, b3));
    fprintf(out, "%zu sites considered, %zu suspect%s\n", r->table.nrows, r->n,
            r->n == 1 ? "" : "s");
    if (!r->n) {
        fprintf(out, "\nno suspects: no site's live bytes kept growing through both halves of "
                     "the series\n");
        return;
    }
    size_t shown = top && top < r->n ? top : r->n;
    fprintf(out, "\n%4s %12s %12s %6s %12s %10s  %s\n", "rank", "growth", "bytes/s", "R2", "live",
            "blocks", "site");
    for (size_t i = 0; i < shown; i++) {
        const ls_suspect_t *x = &r->v[i];
        site_label(s->keys, x->site->key, label, sizeof(label));
        char slope[32];
        snprintf(slope, sizeof(slope), "%.1f", x->slope);
        fprintf(out, "%4zu %12s %12s %6.3f %12s %10s  %s\n", i + 1,
                ls_human_sbytes((int64_t)x->growth, b1), slope, x->r2,
                ls_human_bytes(x->site->bytes[s->n - 1], b2),
                ls_commas(x->site->blocks[s->n - 1], b3), label);
    }
    if (shown < r->n)
        fprintf(out, "(%zu more suspects not shown; --top 0 shows all)\n", r->n - shown);
    for (size_t i = 0; i < shown; i++) {
        const ls_suspect_t *x = &r->v[i];
        const ls_sym_frame_t *sf = ls_keys_frame(s->keys, x->site->key);
        site_label(s->keys, x->site->key, label, sizeof(label));
        fprintf(out, "\n#%zu %s%s%s\n", i + 1, label, sf && sf->object ? " in " : "",
                sf && sf->object ? sf->object : "");
        fprintf(out, "   floor grew %s bytes: %s by %.2f s (first half), %s after (second half)\n",
                ls_commas(x->growth, b1), ls_scommas((int64_t)x->rise1, b2), s->v[r->split].time_s,
                ls_scommas((int64_t)x->rise2, b3));
        fprintf(out, "   trend %.1f bytes/s, R2 %.3f\n", x->slope, x->r2);
        fprintf(out, "   %10s %14s %10s %14s\n", "time (s)", "bytes", "blocks", "floor");
        for (size_t t = 0; t < s->n; t++)
            fprintf(out, "   %10.2f %14s %10s %14s\n", s->v[t].time_s,
                    ls_commas(x->site->bytes[t], b1), ls_commas(x->site->blocks[t], b2),
                    ls_commas(x->floor[t], b3));
        for (size_t k = 0; k < x->nstacks; k++) {
            const ls_suspect_stack_t *st = &x->stacks[k];
            fprintf(out, "   stack %zu: %s bytes in %s blocks (%s over the series)\n", k + 1,
                    ls_commas(st->bytes, b1), ls_commas(st->blocks, b2),
                    ls_scommas((int64_t)st->growth, b4));
            text_stack(out, s->keys, st->key);
        }
    }
}

/* {"file", "pid", "time_s", "live_bytes", "live_blocks", "snap_seq"} */
static cJSON *json_snap(ls_jctx_t *c, const ls_series_snap_t *e)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        c->oom = 1;
        return NULL;
    }
    ls_jstr(c, o, "file", e->file);
    ls_jnum(c, o, "pid", (double)e->pid);
    ls_jnum(c, o, "time_s", e->time_s);
    ls_jnum(c, o, "live_bytes", (double)e->agg->bytes);
    ls_jnum(c, o, "live_blocks", (double)e->agg->blocks);
    ls_jnum(c, o, "snap_seq", (double)e->snap_seq);
    if (e->sample_rate) ls_jnum(c, o, "sample_rate", (double)e->sample_rate);
    return o;
}

static cJSON *json_u64s(ls_jctx_t *c, const uint64_t *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    if (!a) c->oom = 1;
    for (size_t i = 0; a && i < n; i++) ls_jpush(c, a, cJSON_CreateNumber((double)v[i]));
    return a;
}

/* The frames of a stack key as a JSON array under k. */
static void json_stack(ls_jctx_t *c, cJSON *o, const char *k, const ls_keys_t *keys,
                       uint32_t stack_key)
{
    cJSON *arr = ls_jarr(c, o, k);
    const uint32_t *fk;
    size_t n = ls_keys_stack(keys, stack_key, &fk);
    for (size_t i = 0; arr && i < n; i++)
        ls_jpush(c, arr, ls_json_frame(c, ls_keys_frame(keys, fk[i])));
}

int ls_suspects_write_json(const ls_series_t *s, const ls_suspects_t *r, size_t top, FILE *out)
{
    ls_jctx_t c = {0};
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    ls_jnum(&c, root, "version", 1);
    cJSON *snaps = ls_jarr(&c, root, "snapshots");
    for (size_t i = 0; snaps && i < s->n; i++) ls_jpush(&c, snaps, json_snap(&c, &s->v[i]));
    ls_jnum(&c, root, "min_growth", (double)r->min_growth);
    ls_jnum(&c, root, "split_time_s", s->v[r->split].time_s);
    ls_jnum(&c, root, "sites_considered", (double)r->table.nrows);
    ls_jstream_t js;
    ls_jstream_begin(&js, &c, out, root, "suspects");
    size_t shown = top && top < r->n ? top : r->n;
    for (size_t i = 0; i < shown && !c.oom; i++) {
        const ls_suspect_t *x = &r->v[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            c.oom = 1;
            break;
        }
        ls_jnum(&c, o, "rank", (double)(i + 1));
        ls_jput(&c, o, "site", ls_json_site(&c, ls_keys_frame(s->keys, x->site->key)));
        ls_jput(&c, o, "bytes", json_u64s(&c, x->site->bytes, s->n));
        ls_jput(&c, o, "blocks", json_u64s(&c, x->site->blocks, s->n));
        ls_jput(&c, o, "floor_bytes", json_u64s(&c, x->floor, s->n));
        ls_jnum(&c, o, "growth_bytes", (double)x->growth);
        ls_jnum(&c, o, "rise_first_half_bytes", (double)x->rise1);
        ls_jnum(&c, o, "rise_second_half_bytes", (double)x->rise2);
        ls_jnum(&c, o, "slope_bytes_per_s", x->slope);
        ls_jnum(&c, o, "r2", x->r2);
        cJSON *sts = ls_jarr(&c, o, "stacks");
        for (size_t k = 0; sts && k < x->nstacks; k++) {
            cJSON *so = ls_jpush_obj(&c, sts);
            if (!so) break;
            ls_jnum(&c, so, "bytes", (double)x->stacks[k].bytes);
            ls_jnum(&c, so, "blocks", (double)x->stacks[k].blocks);
            ls_jnum(&c, so, "growth_bytes", (double)x->stacks[k].growth);
            json_stack(&c, so, "frames", s->keys, x->stacks[k].key);
        }
        ls_jstream_item(&js, o);
    }
    return ls_jstream_end(&js, NULL);
}

/* ---- diff ----------------------------------------------------------------------------------- */

static int64_t delta(uint64_t o, uint64_t n)
{
    return (int64_t)(n - o);
}

static uint64_t mag(int64_t d)
{
    return d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
}

const char *ls_diff_status(const ls_diff_row_t *r)
{
    if (!r->old_blocks && r->new_blocks) return "new";
    if (r->old_blocks && !r->new_blocks) return "gone";
    int64_t d = delta(r->old_bytes, r->new_bytes);
    if (!d) d = delta(r->old_blocks, r->new_blocks);
    return d > 0 ? "grew" : d < 0 ? "shrank" : "same";
}

typedef struct diff_ctx {
    const ls_keys_t *keys;
    ls_diff_by_t by;
} diff_ctx_t;

static int cmp_diff_row(const void *a, const void *b, void *arg)
{
    const ls_diff_row_t *x = a, *y = b;
    const diff_ctx_t *c = arg;
    uint64_t dx = mag(delta(x->old_bytes, x->new_bytes)),
             dy = mag(delta(y->old_bytes, y->new_bytes));
    if (dx != dy) return dx > dy ? -1 : 1;
    dx = mag(delta(x->old_blocks, x->new_blocks));
    dy = mag(delta(y->old_blocks, y->new_blocks));
    if (dx != dy) return dx > dy ? -1 : 1;
    if (x->new_bytes != y->new_bytes) return x->new_bytes > y->new_bytes ? -1 : 1;
    return c->by == LS_DIFF_BY_SITE ? ls_keys_cmp_frame(c->keys, x->key, y->key)
                                    : ls_keys_cmp_stack(c->keys, x->key, y->key);
}

/* Entry idx of a's sites or stacks: key, site key, bytes, blocks. */
static void agg_entry(const ls_agg_t *a, ls_diff_by_t by, size_t idx, ls_diff_row_t *out,
                      bool is_new)
{
    uint64_t bytes, blocks;
    if (by == LS_DIFF_BY_SITE) {
        out->key = out->site = a->sites[idx].key;
        bytes = a->sites[idx].bytes;
        blocks = a->sites[idx].blocks;
    } else {
        out->key = a->stacks[idx].key;
        out->site = a->stacks[idx].site;
        bytes = a->stacks[idx].bytes;
        blocks = a->stacks[idx].blocks;
    }
    if (is_new)
        out->new_bytes = bytes, out->new_blocks = blocks;
    else
        out->old_bytes = bytes, out->old_blocks = blocks;
}

static uint32_t agg_key(const ls_agg_t *a, ls_diff_by_t by, size_t idx)
{
    return by == LS_DIFF_BY_SITE ? a->sites[idx].key : a->stacks[idx].key;
}

ls_diff_t *ls_diff_build(const ls_series_t *s, ls_diff_by_t by)
{
    if (s->n < 2) return NULL;
    const ls_agg_t *o = s->v[0].agg, *nw = s->v[1].agg;
    ls_diff_t *d = calloc(1, sizeof(*d));
    size_t no = by == LS_DIFF_BY_SITE ? o->nsites : o->nstacks;
    size_t nn = by == LS_DIFF_BY_SITE ? nw->nsites : nw->nstacks;
    if (!d || !(d->rows = calloc(no + nn + 1, sizeof(*d->rows)))) {
        free(d);
        return NULL;
    }
    d->by = by;
    /* Merge of two key-sorted arrays; keys are shared, so equal keys are the same code. */
    size_t i = 0, j = 0;
    while (i < no || j < nn) {
        bool take_old = i < no && (j >= nn || agg_key(o, by, i) <= agg_key(nw, by, j));
        bool take_new = j < nn && (i >= no || agg_key(nw, by, j) <= agg_key(o, by, i));
        ls_diff_row_t *r = &d->rows[d->n++];
        if (take_old) agg_entry(o, by, i++, r, false);
        if (take_new) agg_entry(nw, by, j++, r, true);
    }
    diff_ctx_t ctx = {s->keys, by};
    if (d->n) qsort_r(d->rows, d->n, sizeof(*d->rows), cmp_diff_row, &ctx);
    return d;
}

void ls_diff_free(ls_diff_t *d)
{
    if (!d) return;
    free(d->rows);
    free(d);
}

static void text_snap_line(FILE *out, const char *what, const ls_series_snap_t *e)
{
    char b1[32], b2[32];
    fprintf(out, "%s: %s (pid %llu, %.2f s%s): %s bytes in %s blocks", what, e->file,
            (unsigned long long)e->pid, e->time_s,
            e->reason == LS_REASON_LIVE     ? ", live"
            : e->reason == LS_REASON_EXIT   ? ", at exit"
            : e->reason == LS_REASON_SIGNAL ? ", fatal signal"
                                            : "",
            ls_commas(e->agg->bytes, b1), ls_commas(e->agg->blocks, b2));
    if (e->sample_rate) /* a sample profile: estimates, blocks are estimated objects */
        fprintf(out, " (estimated: sample profile, rate %s)", ls_commas(e->sample_rate, b1));
    fputc('\n', out);
}

void ls_diff_write_text(const ls_series_t *s, const ls_diff_t *d, size_t top, FILE *out)
{
    char b1[32], b2[32], b3[32], b4[32], label[1024];
    const ls_agg_t *o = s->v[0].agg, *nw = s->v[1].agg;
    const char *unit = d->by == LS_DIFF_BY_SITE ? "site" : "stack";
    fprintf(out, "leakscope diff - by %s, NEW minus OLD\n", unit);
    text_snap_line(out, "old", &s->v[0]);
    text_snap_line(out, "new", &s->v[1]);
    size_t count[5] = {0}; /* grew shrank new gone same */
    static const char *const names[5] = {"grew", "shrank", "new", "gone", "same"};
    for (size_t i = 0; i < d->n; i++) {
        const char *st = ls_diff_status(&d->rows[i]);
        for (int k = 0; k < 5; k++)
            if (strcmp(st, names[k]) == 0) count[k]++;
    }
    fprintf(out, "total: %s bytes (%s -> %s), ", ls_scommas(delta(o->bytes, nw->bytes), b1),
            ls_commas(o->bytes, b2), ls_commas(nw->bytes, b3));
    fprintf(out, "%s blocks (%s -> %s); ", ls_scommas(delta(o->blocks, nw->blocks), b1),
            ls_commas(o->blocks, b2), ls_commas(nw->blocks, b3));
    fprintf(out, "%zu %s%s: %zu grew, %zu shrank, %zu new, %zu gone, %zu same\n", d->n, unit,
            d->n == 1 ? "" : "s", count[0], count[1], count[2], count[3], count[4]);
    size_t shown = top && top < d->n ? top : d->n;
    if (shown)
        fprintf(out, "\n%14s %12s %14s %14s  %-6s  %s\n", "delta bytes", "delta blocks",
                "old bytes", "new bytes", "status", "site");
    for (size_t i = 0; i < shown; i++) {
        const ls_diff_row_t *r = &d->rows[i];
        site_label(s->keys, r->site, label, sizeof(label));
        if (d->by == LS_DIFF_BY_STACK && i) fputc('\n', out);
        fprintf(out, "%14s %12s %14s %14s  %-6s  %s\n",
                ls_scommas(delta(r->old_bytes, r->new_bytes), b1),
                ls_scommas(delta(r->old_blocks, r->new_blocks), b2), ls_commas(r->old_bytes, b3),
                ls_commas(r->new_bytes, b4), ls_diff_status(r), label);
        if (d->by == LS_DIFF_BY_STACK) text_stack(out, s->keys, r->key);
    }
    if (shown < d->n)
        fprintf(out, "(%zu more %s%s not shown; --top 0 shows all)\n", d->n - shown, unit,
                d->n - shown == 1 ? "" : "s");
}

int ls_diff_write_json(const ls_series_t *s, const ls_diff_t *d, size_t top, FILE *out)
{
    ls_jctx_t c = {0};
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    const ls_agg_t *o = s->v[0].agg, *nw = s->v[1].agg;
    ls_jnum(&c, root, "version", 1);
    ls_jput(&c, root, "old", json_snap(&c, &s->v[0]));
    ls_jput(&c, root, "new", json_snap(&c, &s->v[1]));
    ls_jstr(&c, root, "by", d->by == LS_DIFF_BY_SITE ? "site" : "stack");
    cJSON *t = ls_jobj(&c, root, "totals");
    if (t) {
        ls_jnum(&c, t, "old_bytes", (double)o->bytes);
        ls_jnum(&c, t, "new_bytes", (double)nw->bytes);
        ls_jnum(&c, t, "delta_bytes", (double)delta(o->bytes, nw->bytes));
        ls_jnum(&c, t, "old_blocks", (double)o->blocks);
        ls_jnum(&c, t, "new_blocks", (double)nw->blocks);
        ls_jnum(&c, t, "delta_blocks", (double)delta(o->blocks, nw->blocks));
    }
    ls_jnum(&c, root, "rows_total", (double)d->n);
    ls_jstream_t js;
    ls_jstream_begin(&js, &c, out, root, "rows");
    size_t shown = top && top < d->n ? top : d->n;
    ls_jframes_t *fc = ls_jframes_new();
    if (!fc) c.oom = 1;
    for (size_t i = 0; fc && i < shown && !c.oom; i++) {
        const ls_diff_row_t *r = &d->rows[i];
        FILE *f = ls_jstream_raw_begin(&js);
        fputs("{\"site\":", f);
        ls_jstream_site(&js, fc, ls_keys_frame(s->keys, r->site));
        if (d->by == LS_DIFF_BY_STACK) {
            fputs(",\"stack\":[", f);
            const uint32_t *fk;
            size_t n = ls_keys_stack(s->keys, r->key, &fk);
            for (size_t k = 0; k < n; k++) {
                if (k) fputc(',', f);
                ls_jstream_frame(&js, fc, ls_keys_frame(s->keys, fk[k]));
            }
            fputc(']', f);
        }
        fprintf(f,
                ",\"old_bytes\":%llu,\"new_bytes\":%llu,\"delta_bytes\":%lld,\"old_blocks\":%llu,"
                "\"new_blocks\":%llu,\"delta_blocks\":%lld,\"status\":\"%s\"}",
                (unsigned long long)r->old_bytes, (unsigned long long)r->new_bytes,
                (long long)delta(r->old_bytes, r->new_bytes), (unsigned long long)r->old_blocks,
                (unsigned long long)r->new_blocks, (long long)delta(r->old_blocks, r->new_blocks),
                ls_diff_status(r));
        ls_jstream_raw_end(&js);
    }
    ls_jframes_free(fc);
    return ls_jstream_end(&js, NULL);
}

/* ---- watch ---------------------------------------------------------------------------------- */

void ls_sparkline(const uint64_t *v, size_t n, bool utf8, char *buf, size_t len)
{
    static const char *const bars[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                        "\u2585", "\u2586", "\u2587", "\u2588"};
    static const char ascii[] = " .:-=+*#";
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
    }
    size_t o = 0;
    if (len) buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned lvl = hi > lo ? (unsigned)((double)(v[i] - lo) * 7 / (double)(hi - lo) + 0.5) : 0;
        const char *g = utf8 ? bars[lvl] : (const char[]){ascii[lvl], 0};
        size_t gl = strlen(g);
        if (o + gl >= len) break;
        memcpy(buf + o, g, gl + 1);
        o += gl;
    }
}

typedef struct watch_row {
    const ls_site_row_t *row;
    int64_t since_first, since_last;
} watch_row_t;

typedef struct watch_ctx {
    const ls_keys_t *keys;
    size_t last;
} watch_ctx_t;

/* Growth since the first snapshot, then live bytes now, then key. */
static int cmp_watch_row(const void *a, const void *b, void *arg)
{
    const watch_row_t *x = a, *y = b;
    const watch_ctx_t *c = arg;
    if (x->since_first != y->since_first) return x->since_first > y->since_first ? -1 : 1;
    uint64_t lx = x->row->bytes[c->last], ly = y->row->bytes[c->last];
    if (lx != ly) return lx > ly ? -1 : 1;
    return ls_keys_cmp_frame(c->keys, x->row->key, y->row->key);
}

int ls_watch_table(const ls_series_t *s, size_t top, bool utf8, FILE *out)
{
    if (!s->n) return 0;
    ls_site_table_t t;
    if (ls_site_table_build(s, &t)) return -1;
    watch_row_t *rows = calloc(t.nrows + 1, sizeof(*rows));
    if (!rows) {
        ls_site_table_free(&t);
        return -1;
    }
    size_t n = s->n, last = n - 1;
    for (size_t i = 0; i < t.nrows; i++) {
        const ls_site_row_t *r = &t.rows[i];
        rows[i].row = r;
        rows[i].since_first = delta(r->bytes[0], r->bytes[last]);
        rows[i].since_last = last ? delta(r->bytes[last - 1], r->bytes[last]) : 0;
    }
    watch_ctx_t ctx = {s->keys, last};
    if (t.nrows) qsort_r(rows, t.nrows, sizeof(*rows), cmp_watch_row, &ctx);

    char b1[32], b2[32], b3[32], b4[32], label[1024], spark[128];
    const ls_series_snap_t *e = &s->v[last];
    fprintf(out,
            "pid %llu - snapshot %zu (%s) at %.2f s: %s in %s blocks, %s since the first, %s "
            "since the last\n",
            (unsigned long long)e->pid, n, ls_base_name(e->file), e->time_s,
            ls_human_bytes(e->agg->bytes, b1), ls_commas(e->agg->blocks, b2),
            ls_human_sbytes(delta(s->v[0].agg->bytes, e->agg->bytes), b3),
            ls_human_sbytes(last ? delta(s->v[last - 1].agg->bytes, e->agg->bytes) : 0, b4));
    size_t shown = top && top < t.nrows ? top : t.nrows;
    fprintf(out, "\n%12s %10s %12s %12s  %-16s  %s\n", "live", "blocks", "since first",
            "since last", "trend", "site");
    size_t from = n > 16 ? n - 16 : 0;
    for (size_t i = 0; i < shown; i++) {
        const watch_row_t *w = &rows[i];
        site_label(s->keys, w->row->key, label, sizeof(label));
        ls_sparkline(w->row->bytes + from, n - from, utf8, spark, sizeof(spark));
        /* pad by columns, not bytes: a UTF-8 bar is 3 bytes wide on one column */
        fprintf(out, "%12s %10s %12s %12s  %s%*s  %s\n", ls_human_bytes(w->row->bytes[last], b1),
                ls_commas(w->row->blocks[last], b2), ls_human_sbytes(w->since_first, b3),
                ls_human_sbytes(w->since_last, b4), spark, (int)(16 - (n - from)), "", label);
    }
    if (shown < t.nrows) fprintf(out, "(%zu more sites)\n", t.nrows - shown);
    free(rows);
    ls_site_table_free(&t);
    return 0;
}
