/*
 * ls_agg.c - weighted stacks -> per-stack and per-site rows keyed by symbolized frames (see
 * ls_agg.h), plus the birth-window helpers that select which blocks count.
 *
 * Owns: ls_keys_t (interned frame keys with a rendered copy of each frame, interned stack keys)
 * and ls_agg_t (sorted row arrays).
 *
 * Building an aggregation, in order:
 *  1. per weighted stack: each pc is symbolized (the symbolizer caches per pc and returns the same
 *     frames pointer for the same (module, pc)); a local map from that pointer to the frame keys
 *     and plumbing bits makes every later occurrence of the pc an O(1) lookup, so the key strings
 *     are built and hashed once per distinct pc, not once per frame of every stack;
 *  2. the frame keys form the stack key; the first non-plumbing one is the site;
 *  3. rows sorted by stack key and folded (stacks of one snapshot with different ids may share a
 *     key: same code reached through different return addresses), then by site key and folded.
 */
#define _GNU_SOURCE
#include "ls_agg.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

#define FNV_BASIS 0xcbf29ce484222325ull

/* ---- frames of a stack --------------------------------------------------------------------- */

static bool is_agent_object(const char *path)
{
    return path && strncmp(ls_base_name(path), "libleakscope.so", 15) == 0;
}

/* Frames inside the agent itself (the wrapper it puts around main) are not the program's. */
static bool in_agent(const ls_snapshot_t *snap, uint64_t pc, uint32_t stack_id)
{
    const ls_snap_module_t *m = ls_snapshot_module_for(snap, pc, stack_id);
    return m && is_agent_object(m->path);
}

/* The frames of one pc: the symbolizer's (cached) or a bare one in *bare. Returns their count,
 * 0 for a pc inside the agent (left out of every stack). */
static size_t pc_frames(const ls_snapshot_t *snap, ls_symbolizer_t *sym, uint64_t pc,
                        uint32_t stack_id, const ls_sym_frame_t **fr, ls_sym_frame_t *bare)
{
    size_t k = sym ? ls_symbolize_pc(sym, pc, stack_id, fr) : 0;
    if (k == 0) { /* no symbolizer (or it ran out of memory): the bare address */
        if (in_agent(snap, pc, stack_id)) return 0;
        memset(bare, 0, sizeof(*bare));
        bare->pc = pc;
        *fr = bare;
        return 1;
    }
    return is_agent_object((*fr)[0].object) ? 0 : k;
}

int ls_stack_expand(const ls_snapshot_t *snap, ls_symbolizer_t *sym, uint32_t stack_id,
                    ls_sym_frame_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    const ls_snap_stack_t *st = stack_id ? ls_snapshot_stack(snap, stack_id) : NULL;
    if (!st || st->nframes == 0) return 0;
    size_t cap = st->nframes, n = 0;
    ls_sym_frame_t *v = malloc(cap * sizeof(*v));
    if (!v) return -1;
    for (uint32_t i = 0; i < st->nframes; i++) {
        uint64_t pc;
        memcpy(&pc, &st->pcs[i], sizeof(pc));
        const ls_sym_frame_t *fr;
        ls_sym_frame_t bare;
        size_t k = pc_frames(snap, sym, pc, stack_id, &fr, &bare);
        if (n + k > cap) {
            while (n + k > cap) cap *= 2;
            ls_sym_frame_t *nv = realloc(v, cap * sizeof(*nv));
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        memcpy(v + n, fr, k * sizeof(*fr));
        n += k;
    }
    *out = v;
    *nout = n;
    return 0;
}

/* ---- sites --------------------------------------------------------------------------------- */

/* The allocator's own objects: their frames are how a block was allocated, not where. */
static const char *const plumbing_objects[] = {
    "libleakscope.so*", "libc.so*", "libc-*.so", "libstdc++.so*", "ld-linux*", "libgcc_s*",
};

bool ls_frame_is_plumbing(const ls_sym_frame_t *f, const ls_site_rules_t *rules)
{
    if (f->object) {
        const char *base = ls_base_name(f->object);
        for (size_t i = 0; i < sizeof(plumbing_objects) / sizeof(plumbing_objects[0]); i++)
            if (fnmatch(plumbing_objects[i], base, 0) == 0) return true;
    }
    if (rules && f->function)
        for (size_t i = 0; i < rules->nskip; i++)
            if (fnmatch(rules->skip[i], f->function, 0) == 0) return true;
    return false;
}

size_t ls_site_index(const ls_sym_frame_t *f, size_t n, const ls_site_rules_t *rules)
{
    for (size_t i = 0; i < n; i++)
        if (!ls_frame_is_plumbing(&f[i], rules)) return i;
    return 0;
}

cJSON *ls_json_site(ls_jctx_t *c, const ls_sym_frame_t *f)
{
    if (f) return ls_json_frame(c, f);
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        c->oom = 1;
        return NULL;
    }
    ls_jhex(c, o, "pc", 0);
    ls_jstr(c, o, "unresolved", "no stack");
    return o;
}

void ls_jstream_site(ls_jstream_t *s, ls_jframes_t *fc, const ls_sym_frame_t *f)
{
    if (f) {
        ls_jstream_frame(s, fc, f);
        return;
    }
    cJSON *o = ls_json_site(s->c, NULL);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        s->c->oom = 1;
        return;
    }
    fputs(text, s->out);
    cJSON_free(text);
}

void ls_site_label(const ls_sym_frame_t *f, char *buf, size_t len)
{
    if (!f)
        snprintf(buf, len, "(no stack)");
    else if (!f->function && !f->file && !f->object) /* a pc in no module: the pc says most */
        snprintf(buf, len, "0x%llx", (unsigned long long)f->pc);
    else
        ls_frame_label(f, buf, len);
}

/* ---- birth window -------------------------------------------------------------------------- */

bool ls_block_passes(const ls_fmt_block_t *b, const ls_block_filter_t *f)
{
    if (!f) return true;
    if (f->has_after && b->birth_ns < f->born_after_ns) return false;
    if (f->has_before && b->birth_ns >= f->born_before_ns) return false;
    if (f->kinds && !(f->kinds & (1u << b->kind))) return false;
    return true;
}

int ls_parse_duration(const char *s, uint64_t *ns)
{
    /* Decimal by hand, not strtod: exact ns (a boundary must compare exactly with birth_ns) and
     * no "inf", hex or exponents. */
    const char *p = s;
    uint64_t ip = 0, frac = 0, fscale = 1;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (ip > (UINT64_MAX - 9) / 10) return -1;
        ip = ip * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (fscale < 1000000000ull) { /* finer than 1 ns is dropped */
                frac = frac * 10 + (uint64_t)(*p - '0');
                fscale *= 10;
            }
            p++;
            digits++;
        }
    }
    if (!digits) return -1;
    uint64_t unit;
    if (*p == 0 || strcmp(p, "s") == 0)
        unit = 1000000000ull;
    else if (strcmp(p, "ms") == 0)
        unit = 1000000ull;
    else
        return -1;
    if (ip > UINT64_MAX / unit) return -1;
    *ns = ip * unit + frac * unit / fscale;
    return 0;
}

static void list_markers(const ls_snapshot_t *snap, char *buf, size_t len)
{
    if (!snap->nmarkers) {
        snprintf(buf, len, "the snapshot has no markers");
        return;
    }
    size_t o = (size_t)snprintf(buf, len, "markers:");
    for (size_t i = 0; i < snap->nmarkers && o < len; i++) {
        const ls_snap_marker_t *m = &snap->markers[i];
        if (i == 20) {
            snprintf(buf + o, len - o, " ... (%zu more)", snap->nmarkers - i);
            return;
        }
        o += (size_t)snprintf(buf + o, len - o, "%s '%s' (#%u, %.2f s)", i ? "," : "", m->label,
                              m->seq, (double)m->time_ns / 1e9);
    }
}

int ls_window_bound(const ls_snapshot_t *snap, const char *spec, uint64_t *ns, char *desc,
                    size_t desclen, char *err, size_t errlen)
{
    const ls_snap_marker_t *m = NULL;
    for (size_t i = 0; i < snap->nmarkers && !m; i++)
        if (strcmp(snap->markers[i].label, spec) == 0) m = &snap->markers[i];
    if (!m && spec[0] == '#' && spec[1]) {
        char *end;
        unsigned long seq = strtoul(spec + 1, &end, 10);
        if (*end == 0 && spec[1] >= '0' && spec[1] <= '9') {
            for (size_t i = 0; i < snap->nmarkers && !m; i++)
                if (snap->markers[i].seq == seq) m = &snap->markers[i];
            if (!m) {
                char list[2048];
                list_markers(snap, list, sizeof(list));
                ls_set_err(err, errlen, "no marker %s; %s", spec, list);
                return -1;
            }
        }
    }
    if (m) {
        *ns = m->time_ns;
        snprintf(desc, desclen, "marker '%s' (%.2f s)", m->label, (double)m->time_ns / 1e9);
        return 0;
    }
    uint64_t d;
    if (ls_parse_duration(spec[0] == '-' ? spec + 1 : spec, &d) == 0) {
        if (spec[0] == '-')
            *ns = d < snap->snap_ns ? snap->snap_ns - d : 0;
        else
            *ns = d;
        snprintf(desc, desclen, "%.2f s", (double)*ns / 1e9);
        return 0;
    }
    char list[2048];
    list_markers(snap, list, sizeof(list));
    ls_set_err(err, errlen,
               "no marker '%s', and it is not a time (12.5, 12.5s, 800ms, -30s) either; %s", spec,
               list);
    return -1;
}

/* ---- keys ---------------------------------------------------------------------------------- */

typedef struct strset {
    char **slots;
    size_t cap, n; /* cap a power of two, at most half full */
} strset_t;

static const char *strset_intern(strset_t *t, const char *s, bool *oom)
{
    if (!s) return NULL;
    if (2 * (t->n + 1) > t->cap) {
        size_t ncap = t->cap ? 2 * t->cap : 256;
        char **ns = calloc(ncap, sizeof(*ns));
        if (!ns) {
            *oom = true;
            return NULL;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slots[i]) continue;
            size_t j = hash_bytes(t->slots[i], strlen(t->slots[i]), FNV_BASIS) & (ncap - 1);
            while (ns[j]) j = (j + 1) & (ncap - 1);
            ns[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    size_t j = hash_bytes(s, strlen(s), FNV_BASIS) & (t->cap - 1);
    while (t->slots[j]) {
        if (strcmp(t->slots[j], s) == 0) return t->slots[j];
        j = (j + 1) & (t->cap - 1);
    }
    char *c = strdup(s);
    if (!c) {
        *oom = true;
        return NULL;
    }
    t->slots[j] = c;
    t->n++;
    return c;
}

typedef struct stack_rec {
    size_t off; /* into pool */
    uint32_t n;
    uint64_t hash;
} stack_rec_t;

struct ls_keys {
    strset_t strs;          /* object, function, file strings of the recorded frames */
    char **text;            /* per frame key; [0] = "" */
    ls_sym_frame_t *frames; /* per frame key */
    uint64_t *fhash;        /* per frame key */
    size_t nf, capf;        /* nf counts key 0 */
    uint32_t *ftab;         /* open addressing over frame keys, 0 = empty */
    size_t ftab_cap;        /* power of two */
    uint32_t *pool;         /* stack keys' frame keys */
    size_t npool, cappool;
    stack_rec_t *stacks; /* per stack key; [0] = empty */
    size_t ns, caps;
    uint32_t *stab;
    size_t stab_cap;
};

ls_keys_t *ls_keys_new(void)
{
    ls_keys_t *k = calloc(1, sizeof(*k));
    if (!k) return NULL;
    k->capf = 64;
    k->text = calloc(k->capf, sizeof(*k->text));
    k->frames = calloc(k->capf, sizeof(*k->frames));
    k->fhash = calloc(k->capf, sizeof(*k->fhash));
    k->ftab_cap = 256;
    k->ftab = calloc(k->ftab_cap, sizeof(*k->ftab));
    k->caps = 64;
    k->stacks = calloc(k->caps, sizeof(*k->stacks));
    k->stab_cap = 256;
    k->stab = calloc(k->stab_cap, sizeof(*k->stab));
    if (k->text) k->text[0] = strdup("");
    if (!k->text || !k->text[0] || !k->frames || !k->fhash || !k->ftab || !k->stacks || !k->stab) {
        ls_keys_free(k);
        return NULL;
    }
    k->nf = 1;
    k->ns = 1;
    return k;
}

void ls_keys_free(ls_keys_t *k)
{
    if (!k) return;
    for (size_t i = 0; i < k->strs.cap; i++) free(k->strs.slots[i]);
    free(k->strs.slots);
    size_t ntext = k->nf ? k->nf : 1; /* text[0] exists before nf is set */
    for (size_t i = 0; k->text && i < ntext; i++) free(k->text[i]);
    free(k->text);
    free(k->frames);
    free(k->fhash);
    free(k->ftab);
    free(k->pool);
    free(k->stacks);
    free(k->stab);
    free(k);
}

const ls_sym_frame_t *ls_keys_frame(const ls_keys_t *k, uint32_t key)
{
    return key && key < k->nf ? &k->frames[key] : NULL;
}

const char *ls_keys_text(const ls_keys_t *k, uint32_t key)
{
    return key < k->nf ? k->text[key] : "";
}

size_t ls_keys_stack(const ls_keys_t *k, uint32_t key, const uint32_t **frame_keys)
{
    if (!key || key >= k->ns) {
        *frame_keys = NULL;
        return 0;
    }
    *frame_keys = k->pool + k->stacks[key].off;
    return k->stacks[key].n;
}

int ls_keys_stack_frames(const ls_keys_t *k, uint32_t key, ls_sym_frame_t **out, size_t *n)
{
    const uint32_t *fk;
    *n = ls_keys_stack(k, key, &fk);
    *out = malloc((*n ? *n : 1) * sizeof(**out));
    if (!*out) return -1;
    for (size_t i = 0; i < *n; i++) (*out)[i] = k->frames[fk[i]];
    return 0;
}

int ls_keys_cmp_frame(const ls_keys_t *k, uint32_t a, uint32_t b)
{
    return a == b ? 0 : strcmp(ls_keys_text(k, a), ls_keys_text(k, b));
}

int ls_keys_cmp_stack(const ls_keys_t *k, uint32_t a, uint32_t b)
{
    if (a == b) return 0;
    const uint32_t *x, *y;
    size_t nx = ls_keys_stack(k, a, &x), ny = ls_keys_stack(k, b, &y);
    for (size_t i = 0; i < nx && i < ny; i++) {
        int c = ls_keys_cmp_frame(k, x[i], y[i]);
        if (c) return c;
    }
    return nx < ny ? -1 : nx > ny;
}

/* Grows an open-addressing table of ids so it stays at most half full. */
static int table_reserve(uint32_t **tab, size_t *cap, size_t n, const uint64_t *hashes,
                         const stack_rec_t *srecs)
{
    if (2 * (n + 1) <= *cap) return 0;
    size_t ncap = *cap * 2;
    uint32_t *nt = calloc(ncap, sizeof(*nt));
    if (!nt) return -1;
    for (size_t i = 0; i < *cap; i++) {
        uint32_t id = (*tab)[i];
        if (!id) continue;
        uint64_t h = hashes ? hashes[id] : srecs[id].hash;
        size_t j = ls_mix64(h) & (ncap - 1);
        while (nt[j]) j = (j + 1) & (ncap - 1);
        nt[j] = id;
    }
    free(*tab);
    *tab = nt;
    *cap = ncap;
    return 0;
}

/* The key text of f ("line" keys when a line is known, else object+offset, else the pc). */
static void frame_key_text(const ls_sym_frame_t *f, char *buf, size_t len)
{
    if (f->object && f->line)
        snprintf(buf, len, "%s\x1f%s\x1f%s\x1f%u", f->object, f->function ? f->function : "",
                 f->file ? f->file : "", f->line);
    else if (f->object)
        snprintf(buf, len, "%s\x1f+%llx\x1f%s", f->object, (unsigned long long)f->offset,
                 f->function ? f->function : "");
    else if (f->function && f->file && f->line)
        snprintf(buf, len, "\x1f%s\x1f%s\x1f%u", f->function, f->file, f->line);
    else
        snprintf(buf, len, "\x1e%llx", (unsigned long long)f->pc);
}

/* Frame key of f, interned (0 when out of memory). */
static uint32_t intern_frame(ls_keys_t *k, const ls_sym_frame_t *f)
{
    char text[4096];
    frame_key_text(f, text, sizeof(text));
    uint64_t h = hash_bytes(text, strlen(text), FNV_BASIS);
    size_t mask = k->ftab_cap - 1, j = ls_mix64(h) & mask;
    for (uint32_t id; (id = k->ftab[j]) != 0; j = (j + 1) & mask)
        if (k->fhash[id] == h && strcmp(k->text[id], text) == 0) return id;
    if (k->nf == UINT32_MAX) return 0;
    if (k->nf == k->capf) {
        size_t ncap = 2 * k->capf;
        char **nt = realloc(k->text, ncap * sizeof(*nt));
        if (nt) k->text = nt;
        ls_sym_frame_t *nfr = realloc(k->frames, ncap * sizeof(*nfr));
        if (nfr) k->frames = nfr;
        uint64_t *nh = realloc(k->fhash, ncap * sizeof(*nh));
        if (nh) k->fhash = nh;
        if (!nt || !nfr || !nh) return 0;
        k->capf = ncap;
    }
    if (table_reserve(&k->ftab, &k->ftab_cap, k->nf, k->fhash, NULL)) return 0;
    bool oom = false;
    ls_sym_frame_t copy = *f;
    copy.function = strset_intern(&k->strs, f->function, &oom);
    copy.file = strset_intern(&k->strs, f->file, &oom);
    copy.object = strset_intern(&k->strs, f->object, &oom);
    char *t = strdup(text);
    if (oom || !t) {
        free(t);
        return 0;
    }
    uint32_t id = (uint32_t)k->nf++;
    k->text[id] = t;
    k->frames[id] = copy;
    k->fhash[id] = h;
    mask = k->ftab_cap - 1;
    j = ls_mix64(h) & mask;
    while (k->ftab[j]) j = (j + 1) & mask;
    k->ftab[j] = id;
    return id;
}

/* Stack key of fk[0..n) (0 for an empty stack, and when out of memory: *oom is set). */
static uint32_t intern_stack(ls_keys_t *k, const uint32_t *fk, size_t n, bool *oom)
{
    if (!n) return 0;
    uint64_t h = hash_bytes(fk, n * sizeof(*fk), FNV_BASIS);
    size_t mask = k->stab_cap - 1, j = ls_mix64(h) & mask;
    for (uint32_t id; (id = k->stab[j]) != 0; j = (j + 1) & mask) {
        const stack_rec_t *r = &k->stacks[id];
        if (r->hash == h && r->n == n && memcmp(k->pool + r->off, fk, n * sizeof(*fk)) == 0)
            return id;
    }
    if (k->npool + n > k->cappool) {
        size_t ncap = k->cappool ? 2 * k->cappool : 4096;
        while (ncap < k->npool + n) ncap *= 2;
        uint32_t *np = realloc(k->pool, ncap * sizeof(*np));
        if (!np) goto oom;
        k->pool = np;
        k->cappool = ncap;
    }
    if (k->ns == k->caps) {
        stack_rec_t *nst = realloc(k->stacks, 2 * k->caps * sizeof(*nst));
        if (!nst) goto oom;
        k->stacks = nst;
        k->caps *= 2;
    }
    if (k->ns == UINT32_MAX || table_reserve(&k->stab, &k->stab_cap, k->ns, NULL, k->stacks))
        goto oom;
    uint32_t id = (uint32_t)k->ns++;
    k->stacks[id] = (stack_rec_t){k->npool, (uint32_t)n, h};
    memcpy(k->pool + k->npool, fk, n * sizeof(*fk));
    k->npool += n;
    mask = k->stab_cap - 1;
    j = ls_mix64(h) & mask;
    while (k->stab[j]) j = (j + 1) & mask;
    k->stab[j] = id;
    return id;
oom:
    *oom = true;
    return 0;
}

/* ---- aggregation --------------------------------------------------------------------------- */

int ls_agg_weigh_blocks(const ls_snapshot_t *snap, const ls_block_filter_t *f, ls_wstack_t **out,
                        size_t *n)
{
    /* Per stack index (snap->stacks is sorted by id); slot nstacks holds "no stack". */
    size_t ns = snap->nstacks;
    ls_wstack_t *acc = calloc(ns + 1, sizeof(*acc));
    *out = NULL;
    *n = 0;
    if (!acc) return -1;
    uint32_t last_id = 0;
    size_t last_pos = ns;
    for (size_t i = 0; i < snap->nblocks; i++) {
        const ls_fmt_block_t *b = &snap->blocks[i];
        if (!ls_block_passes(b, f)) continue;
        size_t pos = ns;
        if (b->stack == last_id) {
            pos = last_pos;
        } else if (b->stack) {
            const ls_snap_stack_t *st = ls_snapshot_stack(snap, b->stack);
            pos = st ? (size_t)(st - snap->stacks) : ns;
            last_id = b->stack;
            last_pos = pos;
        }
        acc[pos].bytes += b->size;
        acc[pos].blocks++;
    }
    /* In id order: "no stack" (id 0) first. */
    size_t k = 0;
    ls_wstack_t *res = malloc((ns + 1) * sizeof(*res));
    if (!res) {
        free(acc);
        return -1;
    }
    if (acc[ns].blocks) res[k++] = (ls_wstack_t){0, acc[ns].bytes, acc[ns].blocks};
    for (size_t i = 0; i < ns; i++)
        if (acc[i].blocks)
            res[k++] = (ls_wstack_t){snap->stacks[i].id, acc[i].bytes, acc[i].blocks};
    free(acc);
    *out = res;
    *n = k;
    return 0;
}

/* pc expansion -> frame keys, keyed by the symbolizer's frames pointer (or the pc when there is
 * no symbolizer): both identify one expansion within one build. */
typedef struct pc_entry {
    uintptr_t tag;   /* 0 = empty */
    uint32_t off, n; /* into the build's key pool */
} pc_entry_t;

typedef struct build_ctx {
    pc_entry_t *tab;
    size_t cap, n;
    uint32_t *keys; /* frame keys of every distinct expansion */
    uint8_t *plumb; /* parallel to keys */
    size_t nkeys, capkeys;
} build_ctx_t;

static pc_entry_t *pc_lookup(build_ctx_t *b, uintptr_t tag, bool *oom)
{
    if (2 * (b->n + 1) > b->cap) {
        size_t ncap = b->cap ? 2 * b->cap : 4096;
        pc_entry_t *nt = calloc(ncap, sizeof(*nt));
        if (!nt) {
            *oom = true;
            return NULL;
        }
        for (size_t i = 0; i < b->cap; i++) {
            if (!b->tab[i].tag) continue;
            size_t j = ls_mix64(b->tab[i].tag) & (ncap - 1);
            while (nt[j].tag) j = (j + 1) & (ncap - 1);
            nt[j] = b->tab[i];
        }
        free(b->tab);
        b->tab = nt;
        b->cap = ncap;
    }
    size_t j = ls_mix64(tag) & (b->cap - 1);
    while (b->tab[j].tag && b->tab[j].tag != tag) j = (j + 1) & (b->cap - 1);
    return &b->tab[j];
}

typedef struct row {
    uint32_t key, site, stack_id;
    uint64_t bytes, blocks;
} row_t;

static int cmp_row_key(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->stack_id < y->stack_id ? -1 : x->stack_id > y->stack_id;
}

static int cmp_row_site(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    return x->site < y->site ? -1 : x->site > y->site;
}

/* Appends k entries to a growable (keys, plumbing bits) pair of arrays. -1 on oom. */
static int push_keys(uint32_t **fk, uint8_t **pl, size_t *cap, size_t *n, const uint32_t *keys,
                     const uint8_t *plumb, size_t k)
{
    if (*n + k > *cap) {
        size_t ncap = *cap ? 2 * *cap : 64;
        while (ncap < *n + k) ncap *= 2;
        uint32_t *nk = realloc(*fk, ncap * sizeof(*nk));
        if (nk) *fk = nk;
        uint8_t *np = realloc(*pl, ncap);
        if (np) *pl = np;
        if (!nk || !np) return -1;
        *cap = ncap;
    }
    memcpy(*fk + *n, keys, k * sizeof(*keys));
    memcpy(*pl + *n, plumb, k);
    *n += k;
    return 0;
}

/* Frame keys and plumbing bits of stack_id's frames into fk/pl (*n of them). -1 on oom. */
static int stack_keys(const ls_snapshot_t *snap, ls_symbolizer_t *sym, ls_keys_t *keys,
                      const ls_site_rules_t *rules, build_ctx_t *b, uint32_t stack_id,
                      uint32_t **fk, uint8_t **pl, size_t *cap, size_t *n)
{
    *n = 0;
    const ls_snap_stack_t *st = stack_id ? ls_snapshot_stack(snap, stack_id) : NULL;
    for (uint32_t i = 0; st && i < st->nframes; i++) {
        uint64_t pc;
        memcpy(&pc, &st->pcs[i], sizeof(pc));
        const ls_sym_frame_t *fr;
        ls_sym_frame_t bare;
        size_t k = pc_frames(snap, sym, pc, stack_id, &fr, &bare);
        if (k == 0) continue;
        /* user pcs are below 2^63, so an odd tag never meets an (aligned) pointer */
        uintptr_t tag = fr == &bare ? (uintptr_t)pc << 1 | 1 : (uintptr_t)fr;
        bool oom = false;
        pc_entry_t *e = pc_lookup(b, tag, &oom);
        if (!e) return -1;
        if (!e->tag) {
            size_t base = b->nkeys;
            for (size_t j = 0; j < k; j++) {
                uint32_t id = intern_frame(keys, &fr[j]);
                uint8_t p = ls_frame_is_plumbing(&fr[j], rules);
                if (!id || push_keys(&b->keys, &b->plumb, &b->capkeys, &b->nkeys, &id, &p, 1))
                    return -1;
            }
            *e = (pc_entry_t){tag, (uint32_t)base, (uint32_t)k};
            b->n++;
        }
        if (push_keys(fk, pl, cap, n, b->keys + e->off, b->plumb + e->off, e->n)) return -1;
    }
    return 0;
}

ls_agg_t *ls_agg_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym, ls_keys_t *keys,
                       const ls_site_rules_t *rules, const ls_wstack_t *ws, size_t n, char *err,
                       size_t errlen)
{
    ls_agg_t *a = calloc(1, sizeof(*a));
    row_t *rows = calloc(n + 1, sizeof(*rows));
    build_ctx_t b = {0};
    uint32_t *fk = NULL;
    uint8_t *pl = NULL;
    size_t cap = 0;
    if (!a || !rows) goto oom;

    /* 1-2: keys and site of every weighted stack */
    for (size_t i = 0; i < n; i++) {
        size_t nf;
        if (stack_keys(snap, sym, keys, rules, &b, ws[i].stack, &fk, &pl, &cap, &nf)) goto oom;
        size_t site = 0;
        while (site < nf && pl[site]) site++;
        if (site == nf) site = 0; /* plumbing only: its innermost frame */
        bool oom = false;
        rows[i].key = intern_stack(keys, fk, nf, &oom);
        if (oom) goto oom;
        rows[i].site = nf ? fk[site] : 0;
        rows[i].stack_id = ws[i].stack;
        rows[i].bytes = ws[i].bytes;
        rows[i].blocks = ws[i].blocks;
        a->bytes += ws[i].bytes;
        a->blocks += ws[i].blocks;
    }

    /* 3: fold by stack key, then by site key */
    qsort(rows, n, sizeof(*rows), cmp_row_key);
    a->stacks = calloc(n + 1, sizeof(*a->stacks));
    if (!a->stacks) goto oom;
    for (size_t i = 0; i < n; i++) {
        if (a->nstacks && a->stacks[a->nstacks - 1].key == rows[i].key) {
            a->stacks[a->nstacks - 1].bytes += rows[i].bytes;
            a->stacks[a->nstacks - 1].blocks += rows[i].blocks;
            continue;
        }
        a->stacks[a->nstacks++] = (ls_agg_stack_t){rows[i].key, rows[i].site, rows[i].stack_id,
                                                   rows[i].bytes, rows[i].blocks};
    }
    for (size_t i = 0; i < a->nstacks; i++)
        rows[i] = (row_t){a->stacks[i].key, a->stacks[i].site, 0, a->stacks[i].bytes,
                          a->stacks[i].blocks};
    qsort(rows, a->nstacks, sizeof(*rows), cmp_row_site);
    a->sites = calloc(a->nstacks + 1, sizeof(*a->sites));
    if (!a->sites) goto oom;
    for (size_t i = 0; i < a->nstacks; i++) {
        ls_agg_site_t *s = a->nsites ? &a->sites[a->nsites - 1] : NULL;
        if (!s || s->key != rows[i].site) {
            s = &a->sites[a->nsites++];
            s->key = rows[i].site;
        }
        s->nstacks++;
        s->bytes += rows[i].bytes;
        s->blocks += rows[i].blocks;
    }
    free(rows);
    free(b.tab);
    free(b.keys);
    free(b.plumb);
    free(fk);
    free(pl);
    return a;
oom:
    free(rows);
    free(b.tab);
    free(b.keys);
    free(b.plumb);
    free(fk);
    free(pl);
    ls_agg_free(a);
    ls_set_err(err, errlen, "out of memory while aggregating stacks");
    return NULL;
}

void ls_agg_free(ls_agg_t *a)
{
    if (!a) return;
    free(a->stacks);
    free(a->sites);
    free(a);
}

const ls_agg_site_t *ls_agg_find_site(const ls_agg_t *a, uint32_t key)
{
    size_t lo = 0, hi = a->nsites;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->sites[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->nsites && a->sites[lo].key == key ? &a->sites[lo] : NULL;
}

const ls_agg_stack_t *ls_agg_find_stack(const ls_agg_t *a, uint32_t key)
{
    size_t lo = 0, hi = a->nstacks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->stacks[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->nstacks && a->stacks[lo].key == key ? &a->stacks[lo] : NULL;
}
