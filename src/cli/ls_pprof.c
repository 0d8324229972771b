/*
 * ls_pprof.c - the pprof encoder (see ls_pprof.h for what is written and why).
 *
 * Owns the builder: interned strings, mappings, functions, locations and samples, each an array
 * indexed by id - 1 with a hash table over its key where lookups repeat (strings, functions,
 * locations, samples); mappings are few and searched linearly. Nothing points into the
 * snapshots or symbolizers it was fed: strings are copied, so ls_pprof_add's inputs may go
 * before the encode. Encoding fills protobuf-c's generated structs (profile.pb-c.h, generated
 * at build time from profile.proto) over those arrays, packs and gzips.
 */
#define _GNU_SOURCE
#include "ls_pprof.h"

#include "ls_output.h"
#include "profile.pb-c.h"

#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- small pieces ---------------------------------------------------------------------------- */

#define FNV_BASIS 0xcbf29ce484222325ull

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

/* Makes room for need elements in *v (capacity *cap). Returns 0 or -1. */
static int reserve(void *vp, size_t *cap, size_t need, size_t elem)
{
    void **v = vp;
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *nv = realloc(*v, nc * elem);
    if (!nv) return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

/* Open addressing over indexes into the caller's array: slot idx is index + 1, 0 = empty. */
typedef struct hslot {
    uint64_t hash;
    uint32_t idx;
} hslot_t;

typedef struct htab {
    hslot_t *v;
    size_t cap, n; /* cap a power of two */
} htab_t;

typedef bool (*ht_eq_fn)(const void *ctx, uint32_t idx, const void *key);

static int ht_reserve(htab_t *h)
{
    if ((h->n + 1) * 10 < h->cap * 7) return 0;
    size_t nc = h->cap ? h->cap * 2 : 256;
    hslot_t *nv = calloc(nc, sizeof(*nv));
    if (!nv) return -1;
    for (size_t i = 0; i < h->cap; i++) {
        if (!h->v[i].idx) continue;
        size_t j = h->v[i].hash & (nc - 1);
        while (nv[j].idx) j = (j + 1) & (nc - 1);
        nv[j] = h->v[i];
    }
    free(h->v);
    h->v = nv;
    h->cap = nc;
    return 0;
}

/* The slot holding key, or the empty slot where it goes (h must have room: ht_reserve). */
static hslot_t *ht_find(htab_t *h, uint64_t hash, ht_eq_fn eq, const void *ctx, const void *key)
{
    size_t j = ls_mix64(hash) & (h->cap - 1);
    while (h->v[j].idx) {
        if (h->v[j].hash == hash && eq(ctx, h->v[j].idx - 1, key)) return &h->v[j];
        j = (j + 1) & (h->cap - 1);
    }
    h->v[j].hash = hash;
    return &h->v[j];
}

/* ---- the builder ----------------------------------------------------------------------------- */

typedef struct mapping {
    uint64_t start, limit, offset;
    int64_t file, build_id; /* string indexes */
    bool has_functions, has_filenames, has_line_numbers;
} mapping_t;

typedef struct function {
    int64_t name, file;
} function_t;

typedef struct location {
    uint64_t mapping; /* id, 0 = none */
    uint64_t address;
    uint32_t first_line, nlines; /* in lines[] */
} location_t;

typedef struct line {
    uint64_t function; /* id */
    int64_t line;
} line_t;

typedef struct sample {
    uint32_t first_loc, nlocs; /* in sample_locs[] */
    size_t first_value;        /* in values[], nvalues of them */
} sample_t;

struct ls_pprof {
    bool with_alloc;
    int nvalues;
    int64_t period, time_nanos, duration_nanos;
    ls_prof_value_t default_type;
    char **strs;
    size_t nstrs, cap_strs;
    htab_t str_ht;
    int64_t *comments;
    size_t ncomments, cap_comments;
    mapping_t *maps;
    size_t nmaps, cap_maps;
    function_t *funcs;
    size_t nfuncs, cap_funcs;
    htab_t func_ht;
    location_t *locs;
    size_t nlocs, cap_locs;
    htab_t loc_ht;
    line_t *lines;
    size_t nlines, cap_lines;
    sample_t *samples;
    size_t nsamples, cap_samples;
    htab_t sample_ht;
    uint64_t *sample_locs;
    size_t nsample_locs, cap_sample_locs;
    int64_t *values;
    size_t nvalues_used, cap_values;
};

static bool str_eq(const void *ctx, uint32_t idx, const void *key)
{
    const ls_pprof_t *b = ctx;
    return strcmp(b->strs[idx], key) == 0;
}

/* The string's index in the table (interned), or -1 when out of memory. NULL is "". */
static int64_t intern(ls_pprof_t *b, const char *s)
{
    if (!s) s = "";
    if (ht_reserve(&b->str_ht)) return -1;
    uint64_t h = fnv(s, strlen(s), FNV_BASIS);
    hslot_t *slot = ht_find(&b->str_ht, h, str_eq, b, s);
    if (slot->idx) return slot->idx - 1;
    if (reserve(&b->strs, &b->cap_strs, b->nstrs + 1, sizeof(*b->strs))) return -1;
    char *copy = strdup(s);
    if (!copy) return -1;
    b->strs[b->nstrs] = copy;
    slot->idx = (uint32_t)++b->nstrs;
    b->str_ht.n++;
    return (int64_t)b->nstrs - 1;
}

ls_pprof_t *ls_pprof_new(bool with_alloc, int64_t period, ls_prof_value_t default_type)
{
    ls_pprof_t *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->with_alloc = with_alloc;
    b->nvalues = with_alloc ? 4 : 2;
    b->period = period;
    b->default_type = default_type;
    if (intern(b, "") != 0) { /* string_table[0] must be "" */
        ls_pprof_free(b);
        return NULL;
    }
    return b;
}

void ls_pprof_free(ls_pprof_t *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->nstrs; i++) free(b->strs[i]);
    free(b->strs);
    free(b->str_ht.v);
    free(b->comments);
    free(b->maps);
    free(b->funcs);
    free(b->func_ht.v);
    free(b->locs);
    free(b->loc_ht.v);
    free(b->lines);
    free(b->samples);
    free(b->sample_ht.v);
    free(b->sample_locs);
    free(b->values);
    free(b);
}

void ls_pprof_set_time(ls_pprof_t *b, int64_t time_nanos, int64_t duration_nanos)
{
    b->time_nanos = time_nanos;
    b->duration_nanos = duration_nanos;
}

int ls_pprof_add_comment(ls_pprof_t *b, const char *text)
{
    int64_t s = intern(b, text);
    if (s < 0 || reserve(&b->comments, &b->cap_comments, b->ncomments + 1, sizeof(int64_t)))
        return -1;
    b->comments[b->ncomments++] = s;
    return 0;
}

void ls_pprof_snapshot_time(const ls_snapshot_t *snap, int64_t *time_nanos, int64_t *duration_nanos)
{
    uint64_t t = snap->snap_realtime_ns;
    if (!t && snap->start_ns) t = snap->start_ns + snap->snap_ns;
    *time_nanos = (int64_t)(t > INT64_MAX ? 0 : t);
    *duration_nanos = (int64_t)(snap->snap_ns > INT64_MAX ? 0 : snap->snap_ns);
}

/* ---- mappings ------------------------------------------------------------------------------ */

/* Where one object's executable segments landed in one snapshot, and the mapping each belongs
 * to in the profile; delta rebases this snapshot's addresses onto that mapping. */
typedef struct seg {
    uint64_t lo, hi;
    uint64_t mapping; /* id */
    uint64_t delta;   /* added (mod 2^64) to an address of this snapshot */
} seg_t;

typedef struct modsegs {
    bool agent;
    size_t first, n; /* in the add's seg array */
} modsegs_t;

static bool is_agent_path(const char *path)
{
    return path && strncmp(ls_base_name(path), "libleakscope.so", 15) == 0;
}

/* The mapping with these properties, reusing an equal one (same object, same segment, any
 * address): its id, and in *delta what rebases start onto it. 0 when out of memory. */
static uint64_t mapping_for(ls_pprof_t *b, const mapping_t *m, uint64_t *delta)
{
    for (size_t i = 0; i < b->nmaps; i++) {
        const mapping_t *x = &b->maps[i];
        if (x->file == m->file && x->build_id == m->build_id && x->offset == m->offset &&
            x->limit - x->start == m->limit - m->start) {
            *delta = x->start - m->start;
            return i + 1;
        }
    }
    if (reserve(&b->maps, &b->cap_maps, b->nmaps + 1, sizeof(*b->maps))) return 0;
    b->maps[b->nmaps++] = *m;
    *delta = 0;
    return b->nmaps;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

#define PAGE 4096ull

/* The executable PT_LOAD segments of m's file placed at m's bias, page-aligned as the kernel
 * maps them, into segs (at most max). Returns their count; 0 when the file cannot be read, is not
 * the object that was loaded (build-id), or has none. */
static size_t elf_exec_segments(const ls_snap_module_t *m, mapping_t *segs, size_t max)
{
    if (elf_version(EV_CURRENT) == EV_NONE) return 0; /* libelf wants this before elf_begin */
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t n = 0;
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    size_t nph = 0;
    if (!e || elf_kind(e) != ELF_K_ELF || elf_getphdrnum(e, &nph) != 0) goto out;
    if (m->rec.build_id_len) {
        const void *id = NULL;
        ssize_t len = dwelf_elf_gnu_build_id(e, &id);
        if (len != (ssize_t)m->rec.build_id_len || memcmp(id, m->build_id, (size_t)len) != 0)
            goto out; /* rebuilt since: its segments may have moved */
    }
    for (size_t i = 0; i < nph && n < max; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X) ||
            !ph.p_memsz)
            continue;
        uint64_t start = m->rec.bias + ph.p_vaddr, end = start + ph.p_memsz;
        segs[n].start = start & ~(PAGE - 1);
        segs[n].limit = (end + PAGE - 1) & ~(PAGE - 1);
        segs[n].offset = ph.p_offset & ~(PAGE - 1);
        n++;
    }
out:
    if (e) elf_end(e);
    close(fd);
    return n;
}

/* Fills segs for every module of snap (mappings created or reused). Returns 0 or -1. */
static int add_mappings(ls_pprof_t *b, const ls_snapshot_t *snap, modsegs_t *ms, seg_t **segs,
                        size_t *nsegs)
{
    size_t cap = 0;
    *segs = NULL;
    *nsegs = 0;
    for (size_t i = 0; i < snap->nmodules; i++) {
        const ls_snap_module_t *m = &snap->modules[i];
        ms[i].agent = is_agent_path(m->path);
        ms[i].first = *nsegs;
        ms[i].n = 0;
        if (ms[i].agent) continue;
        mapping_t ex[16];
        size_t nex = elf_exec_segments(m, ex, 16);
        if (!nex) { /* the object's whole range, page-aligned; it starts at file offset 0 */
            memset(&ex[0], 0, sizeof(ex[0]));
            ex[0].start = m->rec.lo & ~(PAGE - 1);
            ex[0].limit = (m->rec.hi + PAGE - 1) & ~(PAGE - 1);
            nex = 1;
        }
        char *id = malloc(2 * (size_t)m->rec.build_id_len + 1);
        if (!id) return -1;
        hex(m->build_id, m->rec.build_id_len, id);
        int64_t file = intern(b, m->path), bid = intern(b, id);
        free(id);
        if (file < 0 || bid < 0) return -1;
        if (reserve(segs, &cap, *nsegs + nex, sizeof(**segs))) return -1;
        for (size_t k = 0; k < nex; k++) {
            ex[k].file = file;
            ex[k].build_id = bid;
            ex[k].has_functions = ex[k].has_filenames = ex[k].has_line_numbers = false;
            seg_t *s = &(*segs)[(*nsegs)++];
            s->lo = ex[k].start;
            s->hi = ex[k].limit;
            s->mapping = mapping_for(b, &ex[k], &s->delta);
            if (!s->mapping) return -1;
            ms[i].n++;
        }
    }
    return 0;
}

/* ---- locations ----------------------------------------------------------------------------- */

typedef struct loc_key {
    uint64_t mapping, address;
} loc_key_t;

static bool loc_eq(const void *ctx, uint32_t idx, const void *key)
{
    const ls_pprof_t *b = ctx;
    const loc_key_t *k = key;
    return b->locs[idx].mapping == k->mapping && b->locs[idx].address == k->address;
}

static bool func_eq(const void *ctx, uint32_t idx, const void *key)
{
    const ls_pprof_t *b = ctx;
    const function_t *k = key;
    return b->funcs[idx].name == k->name && b->funcs[idx].file == k->file;
}

/* The function id of (name, file), or 0 when out of memory. */
static uint64_t function_for(ls_pprof_t *b, const char *name, const char *file)
{
    function_t k = {intern(b, name), intern(b, file)};
    if (k.name < 0 || k.file < 0 || ht_reserve(&b->func_ht)) return 0;
    uint64_t h = fnv(&k, sizeof(k), FNV_BASIS);
    hslot_t *slot = ht_find(&b->func_ht, h, func_eq, b, &k);
    if (slot->idx) return slot->idx;
    if (reserve(&b->funcs, &b->cap_funcs, b->nfuncs + 1, sizeof(*b->funcs))) return 0;
    b->funcs[b->nfuncs++] = k;
    slot->idx = (uint32_t)b->nfuncs;
    b->func_ht.n++;
    return b->nfuncs;
}

/* The location of return address pc of stack stack_id: its id, UINT64_MAX when the pc lies in the
 * agent (left out), 0 when out of memory. */
static uint64_t location_for(ls_pprof_t *b, const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                             const modsegs_t *ms, const seg_t *segs, uint64_t pc, uint32_t stack_id)
{
    const ls_snap_module_t *m = ls_snapshot_module_for(snap, pc, stack_id);
    uint64_t call = pc ? pc - 1 : 0; /* inside the call instruction: Go's runtime.Frame.PC */
    loc_key_t k = {0, call};
    mapping_t *map = NULL;
    if (m) {
        const modsegs_t *x = &ms[m - snap->modules];
        if (x->agent) return UINT64_MAX;
        for (size_t i = 0; i < x->n; i++) {
            const seg_t *s = &segs[x->first + i];
            if (call >= s->lo && call < s->hi) {
                k.mapping = s->mapping;
                k.address = call + s->delta;
                map = &b->maps[s->mapping - 1];
                break;
            }
        }
    }
    if (ht_reserve(&b->loc_ht)) return 0;
    hslot_t *slot = ht_find(&b->loc_ht, fnv(&k, sizeof(k), FNV_BASIS), loc_eq, b, &k);
    if (slot->idx) return slot->idx;
    /* New: its lines from the symbolizer (cached per pc there). */
    const ls_sym_frame_t *fr = NULL;
    size_t nf = sym ? ls_symbolize_pc(sym, pc, stack_id, &fr) : 0;
    if (nf && is_agent_path(fr[0].object)) return UINT64_MAX;
    if (reserve(&b->locs, &b->cap_locs, b->nlocs + 1, sizeof(*b->locs)) ||
        reserve(&b->lines, &b->cap_lines, b->nlines + nf, sizeof(*b->lines)))
        return 0;
    location_t *l = &b->locs[b->nlocs];
    l->mapping = k.mapping;
    l->address = k.address;
    l->first_line = (uint32_t)b->nlines;
    l->nlines = 0;
    for (size_t i = 0; i < nf; i++) {
        if (!fr[i].function) continue; /* no name: pprof shows the address instead */
        uint64_t fid = function_for(b, fr[i].function, fr[i].file);
        if (!fid) return 0;
        b->lines[b->nlines].function = fid;
        b->lines[b->nlines].line = fr[i].line;
        b->nlines++;
        l->nlines++;
        if (map) {
            map->has_functions = true;
            map->has_filenames |= fr[i].file != NULL;
            map->has_line_numbers |= fr[i].line != 0;
        }
    }
    b->nlocs++;
    slot->idx = (uint32_t)b->nlocs;
    b->loc_ht.n++;
    return b->nlocs;
}

/* ---- samples ------------------------------------------------------------------------------- */

typedef struct sample_key {
    const uint64_t *locs;
    size_t n;
} sample_key_t;

static bool sample_eq(const void *ctx, uint32_t idx, const void *key)
{
    const ls_pprof_t *b = ctx;
    const sample_key_t *k = key;
    const sample_t *s = &b->samples[idx];
    return s->nlocs == k->n &&
           (k->n == 0 || memcmp(&b->sample_locs[s->first_loc], k->locs, k->n * 8) == 0);
}

/* Adds values to the sample of locations locs[0..n) (created when new). Returns 0 or -1. */
static int add_sample(ls_pprof_t *b, const uint64_t *locs, size_t n, const int64_t *values)
{
    if (ht_reserve(&b->sample_ht)) return -1;
    sample_key_t k = {locs, n};
    hslot_t *slot = ht_find(&b->sample_ht, fnv(locs, n * 8, FNV_BASIS), sample_eq, b, &k);
    if (!slot->idx) {
        if (reserve(&b->samples, &b->cap_samples, b->nsamples + 1, sizeof(*b->samples)) ||
            reserve(&b->sample_locs, &b->cap_sample_locs, b->nsample_locs + n, 8) ||
            reserve(&b->values, &b->cap_values, b->nvalues_used + (size_t)b->nvalues, 8))
            return -1;
        sample_t *s = &b->samples[b->nsamples];
        s->first_loc = (uint32_t)b->nsample_locs;
        s->nlocs = (uint32_t)n;
        s->first_value = b->nvalues_used;
        if (n) memcpy(&b->sample_locs[b->nsample_locs], locs, n * 8);
        b->nsample_locs += n;
        memset(&b->values[b->nvalues_used], 0, (size_t)b->nvalues * 8);
        b->nvalues_used += (size_t)b->nvalues;
        slot->idx = (uint32_t)++b->nsamples;
        b->sample_ht.n++;
    }
    int64_t *v = &b->values[b->samples[slot->idx - 1].first_value];
    for (int i = 0; i < b->nvalues; i++) v[i] += values[i];
    return 0;
}

int ls_pprof_add(ls_pprof_t *b, const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                 const ls_profile_t *p, int sign, char *err, size_t errlen)
{
    modsegs_t *ms = calloc(snap->nmodules ? snap->nmodules : 1, sizeof(*ms));
    seg_t *segs = NULL;
    size_t nsegs = 0, cap_locs = 0;
    uint64_t *locs = NULL;
    int rc = -1;
    if (!ms || add_mappings(b, snap, ms, &segs, &nsegs)) goto out;
    /* The sample types in order: the alloc pair (when present), then the inuse pair. */
    static const int types4[4] = {LS_PROF_ALLOC_OBJECTS, LS_PROF_ALLOC_SPACE, LS_PROF_INUSE_OBJECTS,
                                  LS_PROF_INUSE_SPACE};
    const int *types = b->with_alloc ? types4 : types4 + 2;
    for (size_t i = 0; i < p->nstacks; i++) {
        const ls_prof_stack_t *ps = &p->stacks[i];
        int64_t v[4];
        bool any = false;
        for (int k = 0; k < b->nvalues; k++) {
            v[k] = sign * ls_prof_round(ps->v[types[k]]);
            any |= v[k] != 0;
        }
        if (!any) continue;
        const ls_snap_stack_t *st = ps->stack ? ls_snapshot_stack(snap, ps->stack) : NULL;
        size_t nf = st ? st->nframes : 0, n = 0;
        if (reserve(&locs, &cap_locs, nf ? nf : 1, 8)) goto out;
        for (size_t f = 0; f < nf; f++) {
            uint64_t pc;
            memcpy(&pc, &st->pcs[f], 8);
            uint64_t id = location_for(b, snap, sym, ms, segs, pc, ps->stack);
            if (!id) goto out;
            if (id != UINT64_MAX) locs[n++] = id;
        }
        if (add_sample(b, locs, n, v)) goto out;
    }
    rc = 0;
out:
    if (rc) ls_set_err(err, errlen, "out of memory");
    free(locs);
    free(segs);
    free(ms);
    return rc;
}

/* ---- encoding ------------------------------------------------------------------------------ */

static int gzip_buf(const unsigned char *in, size_t len, unsigned char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    /* 15 + 16: a gzip wrapper; the fastest level, as Go's runtime/pprof writes its profiles. */
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    const uInt step = 1u << 30; /* zlib counts in uInt */
    size_t cap = len / 2 + 4096, used = 0, in_left = len;
    unsigned char *buf = malloc(cap);
    int rc = buf ? Z_OK : Z_MEM_ERROR;
    z.next_in = (unsigned char *)in;
    while (rc == Z_OK || rc == Z_BUF_ERROR) {
        if (z.avail_in == 0 && in_left) {
            z.avail_in = in_left > step ? step : (uInt)in_left;
            in_left -= z.avail_in;
        }
        if (used == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = Z_MEM_ERROR;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t room = cap - used;
        z.next_out = buf + used;
        z.avail_out = room > step ? step : (uInt)room;
        uInt before = z.avail_out;
        rc = deflate(&z, in_left ? Z_NO_FLUSH : Z_FINISH);
        used += before - z.avail_out;
        if (rc == Z_STREAM_END) break;
    }
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = used;
    return 0;
}

int ls_pprof_encode(ls_pprof_t *b, unsigned char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    static const int types4[4] = {LS_PROF_ALLOC_OBJECTS, LS_PROF_ALLOC_SPACE, LS_PROF_INUSE_OBJECTS,
                                  LS_PROF_INUSE_SPACE};
    const int *types = b->with_alloc ? types4 : types4 + 2;
    Pprof__ValueType vt[4], period_type = PPROF__VALUE_TYPE__INIT;
    Pprof__ValueType *vtp[4];
    int64_t def = 0, space = intern(b, "space"), bytes = intern(b, "bytes");
    bool oom = space < 0 || bytes < 0;
    for (int k = 0; k < b->nvalues; k++) {
        pprof__value_type__init(&vt[k]);
        vt[k].type = intern(b, ls_prof_value_name((ls_prof_value_t)types[k]));
        vt[k].unit = intern(b, ls_prof_value_unit((ls_prof_value_t)types[k]));
        oom |= vt[k].type < 0 || vt[k].unit < 0;
        vtp[k] = &vt[k];
        if (types[k] == (int)b->default_type) def = vt[k].type;
    }
    if (oom) {
        ls_set_err(err, errlen, "out of memory encoding the pprof profile");
        return -1;
    }
    period_type.type = space;
    period_type.unit = bytes;

    Pprof__Sample *sm = calloc(b->nsamples + 1, sizeof(*sm));
    Pprof__Sample **smp = calloc(b->nsamples + 1, sizeof(*smp));
    Pprof__Mapping *mp = calloc(b->nmaps + 1, sizeof(*mp));
    Pprof__Mapping **mpp = calloc(b->nmaps + 1, sizeof(*mpp));
    Pprof__Location *lc = calloc(b->nlocs + 1, sizeof(*lc));
    Pprof__Location **lcp = calloc(b->nlocs + 1, sizeof(*lcp));
    Pprof__Line *ln = calloc(b->nlines + 1, sizeof(*ln));
    Pprof__Line **lnp = calloc(b->nlines + 1, sizeof(*lnp));
    Pprof__Function *fn = calloc(b->nfuncs + 1, sizeof(*fn));
    Pprof__Function **fnp = calloc(b->nfuncs + 1, sizeof(*fnp));
    unsigned char *packed = NULL;
    int rc = -1;
    if (!sm || !smp || !mp || !mpp || !lc || !lcp || !ln || !lnp || !fn || !fnp) goto done;
    size_t ns = 0;
    for (size_t i = 0; i < b->nsamples; i++) {
        const sample_t *s = &b->samples[i];
        int64_t *v = &b->values[s->first_value];
        bool any = false;
        for (int k = 0; k < b->nvalues; k++) any |= v[k] != 0;
        if (!any) continue; /* a diff where nothing changed */
        pprof__sample__init(&sm[ns]);
        sm[ns].n_location_id = s->nlocs;
        sm[ns].location_id = &b->sample_locs[s->first_loc];
        sm[ns].n_value = (size_t)b->nvalues;
        sm[ns].value = v;
        smp[ns] = &sm[ns];
        ns++;
    }
    for (size_t i = 0; i < b->nmaps; i++) {
        const mapping_t *m = &b->maps[i];
        pprof__mapping__init(&mp[i]);
        mp[i].id = i + 1;
        mp[i].memory_start = m->start;
        mp[i].memory_limit = m->limit;
        mp[i].file_offset = m->offset;
        mp[i].filename = m->file;
        mp[i].build_id = m->build_id;
        mp[i].has_functions = m->has_functions;
        mp[i].has_filenames = m->has_filenames;
        mp[i].has_line_numbers = m->has_line_numbers;
        mp[i].has_inline_frames = m->has_functions; /* inlined frames are always expanded */
        mpp[i] = &mp[i];
    }
    for (size_t i = 0; i < b->nlines; i++) {
        pprof__line__init(&ln[i]);
        ln[i].function_id = b->lines[i].function;
        ln[i].line = b->lines[i].line;
        lnp[i] = &ln[i];
    }
    for (size_t i = 0; i < b->nlocs; i++) {
        const location_t *l = &b->locs[i];
        pprof__location__init(&lc[i]);
        lc[i].id = i + 1;
        lc[i].mapping_id = l->mapping;
        lc[i].address = l->address;
        lc[i].n_line = l->nlines;
        lc[i].line = l->nlines ? &lnp[l->first_line] : NULL;
        lcp[i] = &lc[i];
    }
    for (size_t i = 0; i < b->nfuncs; i++) {
        pprof__function__init(&fn[i]);
        fn[i].id = i + 1;
        fn[i].name = b->funcs[i].name;
        fn[i].system_name = b->funcs[i].name;
        fn[i].filename = b->funcs[i].file;
        fnp[i] = &fn[i];
    }
    Pprof__Profile prof = PPROF__PROFILE__INIT;
    prof.n_sample_type = (size_t)b->nvalues;
    prof.sample_type = vtp;
    prof.n_sample = ns;
    prof.sample = smp;
    prof.n_mapping = b->nmaps;
    prof.mapping = mpp;
    prof.n_location = b->nlocs;
    prof.location = lcp;
    prof.n_function = b->nfuncs;
    prof.function = fnp;
    prof.n_string_table = b->nstrs;
    prof.string_table = b->strs;
    prof.time_nanos = b->time_nanos;
    prof.duration_nanos = b->duration_nanos;
    prof.period_type = &period_type;
    prof.period = b->period;
    prof.n_comment = b->ncomments;
    prof.comment = b->comments;
    prof.default_sample_type = def; /* 0 (unset: the last type) when not among the types */
    size_t plen = pprof__profile__get_packed_size(&prof);
    packed = malloc(plen ? plen : 1);
    if (!packed) goto done;
    if (pprof__profile__pack(&prof, packed) != plen) {
        ls_set_err(err, errlen, "internal: protobuf-c packed a different size than announced");
        goto done_msg;
    }
    if (gzip_buf(packed, plen, out, len)) goto done;
    rc = 0;
done:
    if (rc) ls_set_err(err, errlen, "out of memory (or zlib failed) encoding the pprof profile");
done_msg:
    free(packed);
    free(sm);
    free(smp);
    free(mp);
    free(mpp);
    free(lc);
    free(lcp);
    free(ln);
    free(lnp);
    free(fn);
    free(fnp);
    return rc;
}

int ls_pprof_write(ls_pprof_t *b, FILE *out, char *err, size_t errlen)
{
    unsigned char *buf;
    size_t len;
    if (ls_pprof_encode(b, &buf, &len, err, errlen)) return -1;
    size_t w = fwrite(buf, 1, len, out);
    free(buf);
    if (w != len) {
        ls_set_err(err, errlen, "write error");
        return -1;
    }
    return 0;
}

int ls_pprof_write_profile(const ls_snapshot_t *snap, ls_symbolizer_t *sym, const ls_profile_t *p,
                           ls_prof_value_t default_type, FILE *out, char *err, size_t errlen)
{
    ls_pprof_t *b = ls_pprof_new(p->has_alloc, (int64_t)p->period, default_type);
    if (!b) {
        ls_set_err(err, errlen, "out of memory");
        return -1;
    }
    int64_t t, d;
    ls_pprof_snapshot_time(snap, &t, &d);
    ls_pprof_set_time(b, t, d);
    char comment[4200];
    snprintf(comment, sizeof(comment), "leakscope %s profile of %s (pid %llu)",
             p->sampled ? "sample" : "exact (full mode)", snap->exe ? snap->exe : "(unknown)",
             (unsigned long long)snap->pid);
    int rc = ls_pprof_add_comment(b, comment) ? -1 : 0;
    if (rc) ls_set_err(err, errlen, "out of memory");
    if (!rc) rc = ls_pprof_add(b, snap, sym, p, +1, err, errlen);
    if (!rc) rc = ls_pprof_write(b, out, err, errlen);
    ls_pprof_free(b);
    return rc;
}
