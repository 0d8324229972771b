/*
 * ls_format_read.c - snapshot reader and checker (see ls_format.h for the layout).
 *
 * The whole file is read into memory; arrays point into it where records are fixed-size and
 * aligned. Every length is checked against what remains before it is used, so a truncated or
 * corrupt file produces one clear message and no out-of-bounds read (fuzzed: tests/fuzz).
 */
#include "ls_format_read.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

const char *ls_kind_name(unsigned kind)
{
    switch (kind) {
    case LS_KIND_DEFINITELY:
        return "definitely_lost";
    case LS_KIND_INDIRECTLY:
        return "indirectly_lost";
    case LS_KIND_POSSIBLY:
        return "possibly_lost";
    case LS_KIND_REACHABLE:
        return "still_reachable";
    default:
        return "unchecked";
    }
}

const char *ls_ref_op_name(unsigned op)
{
    switch (op) {
    case LS_REF_OP_CREATE:
        return "create";
    case LS_REF_OP_GET:
        return "get";
    case LS_REF_OP_PUT:
        return "put";
    case LS_REF_OP_DESTROY:
        return "destroy";
    case LS_REF_OP_FREE:
        return "free";
    default:
        return "unknown";
    }
}

const char *ls_ref_finding_name(unsigned kind)
{
    switch (kind) {
    case LS_REF_FIND_DOUBLE_PUT:
        return "double_put";
    case LS_REF_FIND_USE_AFTER_PUT:
        return "use_after_put";
    case LS_REF_FIND_DESTROY_UNKNOWN:
        return "destroy_unregistered";
    case LS_REF_FIND_UNREGISTERED:
        return "unregistered";
    case LS_REF_FIND_BAD_TRACKER:
        return "bad_tracker";
    case LS_REF_FIND_FREED_REFERENCED:
        return "freed_referenced";
    default:
        return "unknown";
    }
}

const char *ls_tag_kind_name(unsigned kind)
{
    switch (kind) {
    case LS_TAG_KIND_MALLOC:
        return "malloc";
    case LS_TAG_KIND_CALLOC:
        return "calloc";
    case LS_TAG_KIND_REALLOC:
        return "realloc";
    case LS_TAG_KIND_ALIGNED:
        return "aligned";
    default:
        return "unknown";
    }
}

static char *dup_n(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* Walks META/STATS items; calls fn for each. */
typedef int (*item_fn)(ls_snapshot_t *snap, const ls_fmt_item_t *it, const unsigned char *data,
                       char *err, size_t errlen);

static int parse_items(ls_snapshot_t *snap, const unsigned char *p, uint64_t size,
                       uint64_t base_off, item_fn fn, const char *what, char *err, size_t errlen)
{
    uint64_t off = 0;
    while (off < size) {
        if (size - off < sizeof(ls_fmt_item_t))
            return fail(err, errlen, "%s item at offset %llu is truncated", what,
                        (unsigned long long)(base_off + off));
        ls_fmt_item_t it;
        memcpy(&it, p + off, sizeof(it));
        off += sizeof(it);
        if (it.len > size - off)
            return fail(err, errlen, "%s item %u at offset %llu claims %u bytes, only %llu left",
                        what, it.key, (unsigned long long)(base_off + off), it.len,
                        (unsigned long long)(size - off));
        if ((it.type == LS_ITEM_U64 || it.type == LS_ITEM_I64) && it.len != 8)
            return fail(err, errlen, "%s item %u has integer type but length %u", what, it.key,
                        it.len);
        if (fn(snap, &it, p + off, err, errlen)) return -1;
        uint64_t adv = ls_fmt_pad8(it.len);
        if (adv > size - off) adv = size - off;
        off += adv;
    }
    return 0;
}

static int meta_item(ls_snapshot_t *s, const ls_fmt_item_t *it, const unsigned char *d, char *err,
                     size_t errlen)
{
    uint64_t u = 0;
    char **str = NULL;
    if (it->type == LS_ITEM_U64 || it->type == LS_ITEM_I64) memcpy(&u, d, 8);
    switch (it->key) {
    case LS_META_PID:
        s->pid = u;
        break;
    case LS_META_PPID:
        s->ppid = u;
        break;
    case LS_META_START_NS:
        s->start_ns = u;
        break;
    case LS_META_SNAP_NS:
        s->snap_ns = u;
        break;
    case LS_META_REASON:
        s->reason = u;
        break;
    case LS_META_EXIT_STATUS:
        s->exit_status = (int64_t)u;
        break;
    case LS_META_SIGNAL:
        s->signal = u;
        break;
    case LS_META_LEAK_CHECKED:
        s->leak_checked = u;
        break;
    case LS_META_MAX_FRAMES:
        s->max_frames = u;
        break;
    case LS_META_SNAP_REALTIME_NS:
        s->snap_realtime_ns = u;
        break;
    case LS_META_SNAP_SEQ:
        s->snap_seq = u;
        break;
    case LS_META_SAMPLE_RATE:
        s->sample_rate = u;
        break;
    case LS_META_SITE_FRAMES:
        s->site_frames = u;
        break;
    case LS_META_SITES_ENABLED:
        if (u > 1)
            return fail(err, errlen, "meta sites_enabled is %llu (expected 0 or 1)",
                        (unsigned long long)u);
        s->sites_enabled = (int)u;
        break;
    case LS_META_TRIGGER:
        str = &s->trigger;
        break;
    case LS_META_EXE:
        str = &s->exe;
        break;
    case LS_META_CMDLINE:
        str = &s->cmdline;
        break;
    case LS_META_MODE:
        str = &s->mode;
        break;
    case LS_META_OPTIONS:
        str = &s->options;
        break;
    case LS_META_AGENT_VERSION:
        str = &s->agent_version;
        break;
    case LS_META_REFS:
        str = &s->refs;
        break;
    case LS_META_FAIL:
        str = &s->fail;
        break;
    default:
        break; /* unknown keys are for newer readers */
    }
    if (str) {
        if (it->type != LS_ITEM_STR)
            return fail(err, errlen, "meta item %u should be a string", it->key);
        free(*str);
        *str = dup_n(d, it->len);
        if (!*str) return fail(err, errlen, "out of memory");
    }
    return 0;
}

static int stat_item(ls_snapshot_t *s, const ls_fmt_item_t *it, const unsigned char *d, char *err,
                     size_t errlen)
{
    (void)err;
    (void)errlen;
    if (it->key < LS_STAT_KEYS && it->type == LS_ITEM_U64) {
        memcpy(&s->stats[it->key], d, 8);
        s->stats_present |= 1ull << it->key;
    }
    return 0;
}

static int parse_modules(ls_snapshot_t *s, const unsigned char *p, uint64_t size, uint32_t count,
                         uint64_t base, char *err, size_t errlen)
{
    if (count > size / sizeof(ls_fmt_module_t))
        return fail(err, errlen,
                    "modules chunk at offset %llu: %u records cannot fit in %llu bytes",
                    (unsigned long long)base, count, (unsigned long long)size);
    s->modules = calloc(count ? count : 1, sizeof(*s->modules));
    if (!s->modules) return fail(err, errlen, "out of memory");
    uint64_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (size - off < sizeof(ls_fmt_module_t))
            return fail(err, errlen, "module record %u at offset %llu is truncated", i,
                        (unsigned long long)(base + off));
        ls_snap_module_t *m = &s->modules[i];
        memcpy(&m->rec, p + off, sizeof(m->rec));
        off += sizeof(m->rec);
        uint64_t need = ls_fmt_pad8((size_t)m->rec.path_len + m->rec.build_id_len);
        if (need > size - off)
            return fail(err, errlen, "module record %u at offset %llu: names run past the chunk", i,
                        (unsigned long long)(base + off));
        if (m->rec.lo > m->rec.hi)
            return fail(err, errlen, "module record %u: range 0x%llx-0x%llx is inverted", i,
                        (unsigned long long)m->rec.lo, (unsigned long long)m->rec.hi);
        m->path = dup_n(p + off, m->rec.path_len);
        m->build_id = (uint8_t *)dup_n(p + off + m->rec.path_len, m->rec.build_id_len);
        if (!m->path || !m->build_id) return fail(err, errlen, "out of memory");
        s->nmodules = i + 1;
        off += need;
    }
    return 0;
}

static int cmp_stack(const void *a, const void *b)
{
    const ls_snap_stack_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int parse_stacks(ls_snapshot_t *s, const unsigned char *p, uint64_t size, uint32_t count,
                        uint64_t base, char *err, size_t errlen)
{
    if (count > size / sizeof(ls_fmt_stack_t))
        return fail(err, errlen, "stacks chunk at offset %llu: %u records cannot fit in %llu bytes",
                    (unsigned long long)base, count, (unsigned long long)size);
    s->stacks = calloc(count ? count : 1, sizeof(*s->stacks));
    if (!s->stacks) return fail(err, errlen, "out of memory");
    uint64_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
        ls_fmt_stack_t rec;
        if (size - off < sizeof(rec))
            return fail(err, errlen, "stack record %u at offset %llu is truncated", i,
                        (unsigned long long)(base + off));
        memcpy(&rec, p + off, sizeof(rec));
        off += sizeof(rec);
        if (rec.nframes > (size - off) / 8)
            return fail(err, errlen, "stack %u at offset %llu claims %u frames, chunk too short",
                        rec.id, (unsigned long long)(base + off), rec.nframes);
        if (rec.id == 0) return fail(err, errlen, "stack record %u has the reserved id 0", i);
        s->stacks[i].id = rec.id;
        s->stacks[i].nframes = rec.nframes;
        s->stacks[i].pcs = (const uint64_t *)(p + off);
        off += (uint64_t)rec.nframes * 8;
    }
    s->nstacks = count;
    qsort(s->stacks, count, sizeof(*s->stacks), cmp_stack);
    for (size_t i = 1; i < count; i++)
        if (s->stacks[i].id == s->stacks[i - 1].id)
            return fail(err, errlen, "stack id %u appears twice", s->stacks[i].id);
    return 0;
}

static int parse_blocks(ls_snapshot_t *s, const unsigned char *p, uint64_t size, uint32_t count,
                        uint64_t base, char *err, size_t errlen)
{
    if ((uint64_t)count * sizeof(ls_fmt_block_t) != size)
        return fail(err, errlen, "blocks chunk at offset %llu: %u records do not fill %llu bytes",
                    (unsigned long long)base, count, (unsigned long long)size);
    s->blocks = (ls_fmt_block_t *)p; /* payload is 8-aligned in an 8-aligned buffer */
    s->nblocks = count;
    return 0;
}

static int parse_markers(ls_snapshot_t *s, const unsigned char *p, uint64_t size, uint32_t count,
                         uint64_t base, char *err, size_t errlen)
{
    if (count > size / sizeof(ls_fmt_marker_t))
        return fail(err, errlen,
                    "markers chunk at offset %llu: %u records cannot fit in %llu bytes",
                    (unsigned long long)base, count, (unsigned long long)size);
    s->markers = calloc(count ? count : 1, sizeof(*s->markers));
    if (!s->markers) return fail(err, errlen, "out of memory");
    uint64_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
        ls_fmt_marker_t rec;
        if (size - off < sizeof(rec))
            return fail(err, errlen, "marker record %u at offset %llu is truncated", i,
                        (unsigned long long)(base + off));
        memcpy(&rec, p + off, sizeof(rec));
        off += sizeof(rec);
        if (ls_fmt_pad8(rec.label_len) > size - off)
            return fail(err, errlen, "marker record %u at offset %llu: label runs past the chunk",
                        i, (unsigned long long)(base + off));
        if (memchr(p + off, 0, rec.label_len))
            return fail(err, errlen, "marker record %u: label contains a NUL byte", i);
        if (i && rec.time_ns < s->markers[i - 1].time_ns)
            return fail(err, errlen, "marker record %u: time goes backwards", i);
        ls_snap_marker_t *m = &s->markers[i];
        m->time_ns = rec.time_ns;
        m->realtime_ns = rec.realtime_ns;
        m->seq = rec.seq;
        m->label = dup_n(p + off, rec.label_len);
        if (!m->label) return fail(err, errlen, "out of memory");
        s->nmarkers = i + 1;
        off += ls_fmt_pad8(rec.label_len);
    }
    return 0;
}

/* ---- reference counts (1.2) ------------------------------------------------------------- */

static int cmp_ref_type(const void *a, const void *b)
{
    const ls_snap_ref_type_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int parse_ref_types(ls_snapshot_t *s, const unsigned char *p, uint64_t size, uint32_t count,
                           uint64_t base, char *err, size_t errlen)
{
    if (count > size / sizeof(ls_fmt_ref_type_t))
        return fail(err, errlen,
                    "ref types chunk at offset %llu: %u records cannot fit in %llu bytes",
                    (unsigned long long)base, count, (unsigned long long)size);
    s->ref_types = calloc(count ? count : 1, sizeof(*s->ref_types));
    if (!s->ref_types) return fail(err, errlen, "out of memory");
    uint64_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
        ls_fmt_ref_type_t rec;
        if (size - off < sizeof(rec))
            return fail(err, errlen, "ref type record %u at offset %llu is truncated", i,
                        (unsigned long long)(base + off));
        memcpy(&rec, p + off, sizeof(rec));
        if (rec.id == 0)
            return fail(err, errlen, "ref type record %u at offset %llu has the reserved id 0", i,
                        (unsigned long long)(base + off));
        off += sizeof(rec);
        if (ls_fmt_pad8(rec.name_len) > size - off)
            return fail(err, errlen, "ref type %u at offset %llu: name runs past the chunk", rec.id,
                        (unsigned long long)(base + off));
        if (memchr(p + off, 0, rec.name_len))
            return fail(err, errlen, "ref type %u at offset %llu: name contains a NUL byte", rec.id,
                        (unsigned long long)(base + off));
        ls_snap_ref_type_t *t = &s->ref_types[i];
        t->id = rec.id;
        t->flags = rec.flags;
        t->name = dup_n(p + off, rec.name_len);
        if (!t->name) return fail(err, errlen, "out of memory");
        s->nref_types = i + 1;
        off += ls_fmt_pad8(rec.name_len);
    }
    qsort(s->ref_types, s->nref_types, sizeof(*s->ref_types), cmp_ref_type);
    for (size_t i = 1; i < s->nref_types; i++)
        if (s->ref_types[i].id == s->ref_types[i - 1].id)
            return fail(err, errlen, "ref type id %u appears twice", s->ref_types[i].id);
    return 0;
}

/* Fixed-size records mapped onto the payload (8-aligned in an 8-aligned buffer). */
static int check_records(uint64_t size, uint32_t count, size_t recsize, const char *what,
                         uint64_t base, char *err, size_t errlen)
{
    if ((uint64_t)count * recsize != size)
        return fail(err, errlen, "%s chunk at offset %llu: %u records do not fill %llu bytes", what,
                    (unsigned long long)base, count, (unsigned long long)size);
    return 0;
}

/* Payload offsets of the REF_* chunks, for the messages of the checks that need every chunk. */
typedef struct ref_offsets {
    uint64_t objects, events, findings, pairs;
} ref_offsets_t;

static int check_stack_ref(const ls_snapshot_t *s, uint32_t id, const char *what, size_t i,
                           const char *field, uint64_t off, char *err, size_t errlen)
{
    if (id && !ls_snapshot_stack(s, id))
        return fail(err, errlen, "%s %zu at offset %llu: %s refers to missing stack %u", what, i,
                    (unsigned long long)off, field, id);
    return 0;
}

static int check_event_range(const ls_snapshot_t *s, uint32_t first, uint32_t n, const char *what,
                             size_t i, uint64_t off, char *err, size_t errlen)
{
    if ((uint64_t)first + n > s->nref_events)
        return fail(err, errlen,
                    "%s %zu at offset %llu: events [%u, %llu) run past the %zu ref events", what, i,
                    (unsigned long long)off, first, (unsigned long long)first + n, s->nref_events);
    return 0;
}

/* Cross-chunk checks of the refs chunks, once every chunk is read. */
static int check_refs(const ls_snapshot_t *s, const ref_offsets_t *ro, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->nref_events; i++) {
        const ls_fmt_ref_event_t *e = &s->ref_events[i];
        uint64_t off = ro->events + i * sizeof(*e);
        if (e->op < LS_REF_OP_CREATE || e->op > LS_REF_OP_FREE)
            return fail(err, errlen, "ref event %zu at offset %llu has unknown op %u", i,
                        (unsigned long long)off, e->op);
        if (check_stack_ref(s, e->stack, "ref event", i, "stack", off, err, errlen)) return -1;
    }
    for (size_t i = 0; i < s->nref_objects; i++) {
        const ls_fmt_ref_object_t *o = &s->ref_objects[i];
        uint64_t off = ro->objects + i * sizeof(*o);
        if (!ls_snapshot_ref_type(s, o->type))
            return fail(err, errlen, "ref object %zu at offset %llu has unknown type id %u", i,
                        (unsigned long long)off, o->type);
        if (check_stack_ref(s, o->create_stack, "ref object", i, "create_stack", off, err,
                            errlen) ||
            check_event_range(s, o->first_event, o->nevents, "ref object", i, off, err, errlen))
            return -1;
        if (i && o->addr <= s->ref_objects[i - 1].addr)
            return fail(err, errlen,
                        "ref objects are not sorted by address at record %zu (offset %llu)", i,
                        (unsigned long long)off);
    }
    for (size_t i = 0; i < s->nref_findings; i++) {
        const ls_fmt_ref_finding_t *f = &s->ref_findings[i];
        uint64_t off = ro->findings + i * sizeof(*f);
        if (f->kind < LS_REF_FIND_DOUBLE_PUT || f->kind > LS_REF_FIND_FREED_REFERENCED)
            return fail(err, errlen, "ref finding %zu at offset %llu has unknown kind %u", i,
                        (unsigned long long)off, f->kind);
        if (f->op < LS_REF_OP_CREATE || f->op > LS_REF_OP_FREE)
            return fail(err, errlen, "ref finding %zu at offset %llu has unknown op %u", i,
                        (unsigned long long)off, f->op);
        if (f->type && !ls_snapshot_ref_type(s, f->type))
            return fail(err, errlen, "ref finding %zu at offset %llu has unknown type id %u", i,
                        (unsigned long long)off, f->type);
        if (f->count == 0)
            return fail(err, errlen, "ref finding %zu at offset %llu counts 0 occurrences", i,
                        (unsigned long long)off);
        if (check_stack_ref(s, f->stack, "ref finding", i, "stack", off, err, errlen) ||
            check_stack_ref(s, f->other_stack, "ref finding", i, "other_stack", off, err, errlen) ||
            check_stack_ref(s, f->create_stack, "ref finding", i, "create_stack", off, err,
                            errlen) ||
            check_event_range(s, f->first_event, f->nevents, "ref finding", i, off, err, errlen))
            return -1;
    }
    for (size_t i = 0; i < s->nref_pairs; i++) {
        const ls_fmt_ref_pair_t *pr = &s->ref_pairs[i];
        uint64_t off = ro->pairs + i * sizeof(*pr);
        if (!ls_snapshot_ref_type(s, pr->type))
            return fail(err, errlen, "ref pair %zu at offset %llu has unknown type id %u", i,
                        (unsigned long long)off, pr->type);
        if (pr->get_op != LS_REF_OP_GET && pr->get_op != LS_REF_OP_CREATE)
            return fail(err, errlen,
                        "ref pair %zu at offset %llu has get op %u (not get or create)", i,
                        (unsigned long long)off, pr->get_op);
        if (pr->count == 0)
            return fail(err, errlen, "ref pair %zu at offset %llu counts 0 pairs", i,
                        (unsigned long long)off);
        if (check_stack_ref(s, pr->get_stack, "ref pair", i, "get_stack", off, err, errlen) ||
            check_stack_ref(s, pr->put_stack, "ref pair", i, "put_stack", off, err, errlen))
            return -1;
    }
    return 0;
}

/* ---- mode sample (1.3) ------------------------------------------------------------------ */

static bool finite_nonneg(double v)
{
    return isfinite(v) && v >= 0;
}

/* A sample profile must say how it was sampled, and its estimates must be usable as weights:
 * a NaN or a negative count would poison every total it enters. */
static int check_sample(const ls_snapshot_t *s, uint64_t base, char *err, size_t errlen)
{
    if (s->mode && strcmp(s->mode, "sample") == 0 && s->sample_rate == 0)
        return fail(err, errlen, "sample profile (mode sample) without a sample rate");
    for (size_t i = 0; i < s->nsample_allocs; i++) {
        const ls_fmt_sample_alloc_t *a = &s->sample_allocs[i];
        uint64_t off = base + i * sizeof(*a);
        if (check_stack_ref(s, a->stack, "sample alloc", i, "stack", off, err, errlen)) return -1;
        if (!finite_nonneg(a->est_objects) || !finite_nonneg(a->est_bytes))
            return fail(err, errlen,
                        "sample alloc %zu at offset %llu has a negative or non-finite estimate "
                        "(%g objects, %g bytes)",
                        i, (unsigned long long)off, a->est_objects, a->est_bytes);
    }
    return 0;
}

/* ---- compile-time tags (1.5) ------------------------------------------------------------- */

/* TAGS: {ls_fmt_tag_t, file, function, pad to 8}; the strings stay in the file's data. */
static int parse_tags(ls_snapshot_t *s, const unsigned char *p, uint64_t size, uint32_t count,
                      uint64_t base, char *err, size_t errlen)
{
    if (count > size / sizeof(ls_fmt_tag_t))
        return fail(err, errlen, "tags chunk at offset %llu: %u records cannot fit in %llu bytes",
                    (unsigned long long)base, count, (unsigned long long)size);
    s->tags = calloc(count ? count : 1, sizeof(*s->tags));
    if (!s->tags) return fail(err, errlen, "out of memory");
    uint64_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
        ls_fmt_tag_t rec;
        if (size - off < sizeof(rec))
            return fail(err, errlen, "tag record %u at offset %llu is truncated", i,
                        (unsigned long long)(base + off));
        memcpy(&rec, p + off, sizeof(rec));
        unsigned long long at = (unsigned long long)(base + off);
        off += sizeof(rec);
        uint64_t need = ls_fmt_pad8((size_t)rec.file_len + rec.func_len);
        if (need > size - off)
            return fail(err, errlen,
                        "tag record %u at offset %llu: file and function (%u + %u bytes) run "
                        "past the chunk",
                        i, at, rec.file_len, rec.func_len);
        if (rec.kind < LS_TAG_KIND_MALLOC || rec.kind > LS_TAG_KIND_ALIGNED)
            return fail(err, errlen, "tag record %u at offset %llu has unknown kind %u", i, at,
                        rec.kind);
        if (rec.line == 0)
            return fail(err, errlen, "tag record %u at offset %llu has line 0", i, at);
        ls_snap_tag_t *t = &s->tags[i];
        t->file = (const char *)(p + off);
        t->func = (const char *)(p + off + rec.file_len);
        t->file_len = rec.file_len;
        t->func_len = rec.func_len;
        t->kind = rec.kind;
        t->line = rec.line;
        off += need;
    }
    s->ntags = count;
    return 0;
}

const ls_snap_tag_t *ls_snapshot_site_tag(const ls_snapshot_t *s, const ls_fmt_site_t *site)
{
    return site->tag && site->tag <= s->ntags ? &s->tags[site->tag - 1] : NULL;
}

static int cmp_site_tag(const void *a, const void *b)
{
    const ls_fmt_site_t *x = *(const ls_fmt_site_t *const *)a;
    const ls_fmt_site_t *y = *(const ls_fmt_site_t *const *)b;
    if (x->tag != y->tag) return x->tag < y->tag ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* A tagged site is the tag's own: it names an existing TAGS record, its stack is the tag
 * object's address (one frame), and no other site counts that tag. */
static int check_site_tags(const ls_snapshot_t *s, uint64_t base, char *err, size_t errlen)
{
    size_t ntagged = 0;
    for (size_t i = 0; i < s->nsites; i++) {
        const ls_fmt_site_t *r = &s->sites[i];
        if (!r->tag) continue;
        unsigned long long off = (unsigned long long)(base + i * sizeof(*r));
        if (!s->has_tags)
            return fail(err, errlen,
                        "site %zu at offset %llu has tag %u but there is no TAGS chunk", i, off,
                        r->tag);
        if (r->tag > s->ntags)
            return fail(err, errlen, "site %zu at offset %llu has tag %u, past the %zu tags", i,
                        off, r->tag, s->ntags);
        const ls_snap_stack_t *st = r->stack ? ls_snapshot_stack(s, r->stack) : NULL;
        if (!st || st->nframes != 1)
            return fail(err, errlen,
                        "site %zu at offset %llu (tag %u): a tagged site needs a stack of one "
                        "frame, stack %u has %u",
                        i, off, r->tag, r->stack, st ? st->nframes : 0);
        ntagged++;
    }
    if (ntagged < 2) return 0;
    const ls_fmt_site_t **by = malloc(ntagged * sizeof(*by));
    if (!by) return fail(err, errlen, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < s->nsites; i++)
        if (s->sites[i].tag) by[n++] = &s->sites[i];
    qsort(by, n, sizeof(*by), cmp_site_tag);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (by[i]->tag == by[i - 1]->tag)
            rc = fail(err, errlen, "sites %zu and %zu both count tag %u",
                      (size_t)(by[i - 1] - s->sites), (size_t)(by[i] - s->sites), by[i]->tag);
    free(by);
    return rc;
}

/* ---- mode sites (1.4) -------------------------------------------------------------------- */

static int cmp_site_stack(const void *a, const void *b)
{
    const ls_fmt_site_t *x = *(const ls_fmt_site_t *const *)a;
    const ls_fmt_site_t *y = *(const ls_fmt_site_t *const *)b;
    if (x->stack != y->stack) return x->stack < y->stack ? -1 : 1;
    return x < y ? -1 : x > y; /* file order among equals, for a stable message */
}

/* The counters of a site obey what the agent can do: a block is live only after it was counted
 * as allocated, frees never take a counter below zero, and a live byte belongs to a live block.
 * Anything else is corruption (or an agent bug), named with the record. */
static int check_sites(const ls_snapshot_t *s, uint64_t base, char *err, size_t errlen)
{
    bool sites_mode = s->mode && strcmp(s->mode, "sites") == 0;
    if (sites_mode && !s->has_sites)
        return fail(err, errlen, "site counters (mode sites) without a SITES chunk");
    if (sites_mode && s->site_frames == 0)
        return fail(err, errlen, "site counters (mode sites) without meta site_frames");
    if (s->site_frames > 16)
        return fail(err, errlen, "meta site_frames is %llu (at most 16)",
                    (unsigned long long)s->site_frames);
    for (size_t i = 0; i < s->nsites; i++) {
        const ls_fmt_site_t *r = &s->sites[i];
        unsigned long long off = (unsigned long long)(base + i * sizeof(*r));
        if (check_stack_ref(s, r->stack, "site", i, "stack", base + i * sizeof(*r), err, errlen))
            return -1;
        const ls_snap_stack_t *st = r->stack ? ls_snapshot_stack(s, r->stack) : NULL;
        if (st && s->site_frames && st->nframes > s->site_frames)
            return fail(err, errlen,
                        "site %zu at offset %llu: stack %u has %u frames, more than site_frames "
                        "%llu",
                        i, off, r->stack, st->nframes, (unsigned long long)s->site_frames);
        if (r->live_bytes < 0 || r->live_blocks < 0)
            return fail(err, errlen,
                        "site %zu at offset %llu (stack %u): negative live counters (%lld bytes, "
                        "%lld blocks)",
                        i, off, r->stack, (long long)r->live_bytes, (long long)r->live_blocks);
        if ((uint64_t)r->live_blocks > r->allocs)
            return fail(err, errlen,
                        "site %zu at offset %llu (stack %u): %lld live blocks but only %llu "
                        "allocations",
                        i, off, r->stack, (long long)r->live_blocks, (unsigned long long)r->allocs);
        if ((uint64_t)r->live_bytes > r->bytes)
            return fail(err, errlen,
                        "site %zu at offset %llu (stack %u): %lld live bytes but only %llu bytes "
                        "allocated",
                        i, off, r->stack, (long long)r->live_bytes, (unsigned long long)r->bytes);
        if (r->live_blocks == 0 && r->live_bytes != 0)
            return fail(err, errlen,
                        "site %zu at offset %llu (stack %u): %lld live bytes in no live block", i,
                        off, r->stack, (long long)r->live_bytes);
        if (r->allocs == 0 && r->bytes != 0)
            return fail(err, errlen,
                        "site %zu at offset %llu (stack %u): %llu bytes allocated by no "
                        "allocation",
                        i, off, r->stack, (unsigned long long)r->bytes);
    }
    if (s->nsites < 2) return check_site_tags(s, base, err, errlen);
    /* One record per site: two records of one stack would split (or double) its counters. */
    const ls_fmt_site_t **by = malloc(s->nsites * sizeof(*by));
    if (!by) return fail(err, errlen, "out of memory");
    for (size_t i = 0; i < s->nsites; i++) by[i] = &s->sites[i];
    qsort(by, s->nsites, sizeof(*by), cmp_site_stack);
    int rc = 0;
    for (size_t i = 1; i < s->nsites && !rc; i++)
        if (by[i]->stack == by[i - 1]->stack)
            rc = fail(err, errlen, "sites %zu and %zu both count stack %u",
                      (size_t)(by[i - 1] - s->sites), (size_t)(by[i] - s->sites), by[i]->stack);
    free(by);
    if (rc) return rc;
    return check_site_tags(s, base, err, errlen);
}

/* ---- fault injection (1.5) --------------------------------------------------------------- */

/* A FAULTS record names a stack of STACKS (0: none was captured), a rule of META fail (its
 * rules are separated by ';', which the agent form never holds escaped) and at least one
 * failure. */
static int check_faults(const ls_snapshot_t *s, uint64_t base, char *err, size_t errlen)
{
    uint64_t nrules = 0;
    if (s->fail && s->fail[0]) {
        nrules = 1;
        for (const char *p = s->fail; *p; p++) nrules += *p == ';';
    }
    for (size_t i = 0; i < s->nfaults; i++) {
        const ls_fmt_fault_t *f = &s->faults[i];
        uint64_t off = base + i * sizeof(*f);
        if (check_stack_ref(s, f->stack, "fault", i, "stack", off, err, errlen)) return -1;
        if (f->count == 0)
            return fail(err, errlen, "fault %zu at offset %llu counts 0 failures", i,
                        (unsigned long long)off);
        if (s->fail && f->rule >= nrules)
            return fail(err, errlen,
                        "fault %zu at offset %llu names rule %u, meta fail has %llu rules", i,
                        (unsigned long long)off, f->rule, (unsigned long long)nrules);
    }
    return 0;
}

int ls_snapshot_parse(const void *data, size_t size, ls_snapshot_t *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->sites_enabled = -1;
    const unsigned char *d = data;
    s->data = (unsigned char *)data;
    s->size = size;
    if ((uintptr_t)d % 8) return fail(err, errlen, "internal: snapshot buffer is not aligned");
    ls_fmt_file_header_t fh;
    if (size < sizeof(fh))
        return fail(err, errlen, "file is %zu bytes, too short for a snapshot header", size);
    memcpy(&fh, d, sizeof(fh));
    if (memcmp(fh.magic, LS_FMT_MAGIC, 8) != 0)
        return fail(err, errlen, "not a leakscope snapshot (bad magic)");
    if (fh.version_major != LS_FMT_VERSION_MAJOR)
        return fail(err, errlen,
                    "snapshot format version %u.%u is not supported (this reader: %u.x)",
                    fh.version_major, fh.version_minor, LS_FMT_VERSION_MAJOR);
    if (fh.header_size < sizeof(fh) || fh.header_size > size || fh.header_size % 8)
        return fail(err, errlen, "bad header size %u", fh.header_size);
    s->version_major = fh.version_major;
    s->version_minor = fh.version_minor;

    uint64_t off = fh.header_size;
    uint32_t nchunks = 0;
    bool seen[LS_CHUNK_FAULTS + 1] = {false};
    ref_offsets_t ro = {0, 0, 0, 0};
    uint64_t sample_allocs_off = 0, sites_off = 0, faults_off = 0;
    for (;;) {
        ls_fmt_chunk_header_t ch;
        if (size - off < sizeof(ch))
            return fail(err, errlen,
                        "file is truncated at offset %llu: no END chunk (the process may have "
                        "died while writing)",
                        (unsigned long long)off);
        memcpy(&ch, d + off, sizeof(ch));
        off += sizeof(ch);
        if (ch.size > size - off)
            return fail(err, errlen,
                        "chunk %u (type 0x%x) at offset %llu claims %llu bytes, file has %llu "
                        "left: truncated",
                        nchunks, ch.type, (unsigned long long)(off - sizeof(ch)),
                        (unsigned long long)ch.size, (unsigned long long)(size - off));
        if (ch.size % 8)
            return fail(err, errlen, "chunk %u at offset %llu has unaligned size %llu", nchunks,
                        (unsigned long long)(off - sizeof(ch)), (unsigned long long)ch.size);
        const unsigned char *p = d + off;
        if (ch.type == LS_CHUNK_END) {
            if (ch.count != nchunks)
                return fail(err, errlen, "END chunk counts %u chunks, file has %u", ch.count,
                            nchunks);
            break;
        }
        uLong crc = crc32(0L, Z_NULL, 0);
        uint64_t left = ch.size;
        const unsigned char *q = p;
        while (left) {
            uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
            crc = crc32(crc, q, n);
            q += n;
            left -= n;
        }
        if ((uint32_t)crc != ch.crc32)
            return fail(err, errlen,
                        "chunk %u (type 0x%x) at offset %llu: checksum mismatch, "
                        "the file is corrupt",
                        nchunks, ch.type, (unsigned long long)(off - sizeof(ch)));
        if (ch.type >= 1 && ch.type <= LS_CHUNK_FAULTS) {
            if (seen[ch.type]) return fail(err, errlen, "chunk type %u appears twice", ch.type);
            seen[ch.type] = true;
        }
        int rc = 0;
        switch (ch.type) {
        case LS_CHUNK_META:
            rc = parse_items(s, p, ch.size, off, meta_item, "meta", err, errlen);
            break;
        case LS_CHUNK_STATS:
            rc = parse_items(s, p, ch.size, off, stat_item, "stats", err, errlen);
            break;
        case LS_CHUNK_MODULES:
            rc = parse_modules(s, p, ch.size, ch.count, off, err, errlen);
            break;
        case LS_CHUNK_STACKS:
            rc = parse_stacks(s, p, ch.size, ch.count, off, err, errlen);
            break;
        case LS_CHUNK_BLOCKS:
            rc = parse_blocks(s, p, ch.size, ch.count, off, err, errlen);
            break;
        case LS_CHUNK_MARKERS:
            rc = parse_markers(s, p, ch.size, ch.count, off, err, errlen);
            break;
        case LS_CHUNK_REF_TYPES:
            rc = parse_ref_types(s, p, ch.size, ch.count, off, err, errlen);
            break;
        case LS_CHUNK_REF_OBJECTS:
            ro.objects = off;
            rc = check_records(ch.size, ch.count, sizeof(ls_fmt_ref_object_t), "ref objects", off,
                               err, errlen);
            s->ref_objects = (const ls_fmt_ref_object_t *)p;
            s->nref_objects = rc ? 0 : ch.count;
            break;
        case LS_CHUNK_REF_EVENTS:
            ro.events = off;
            rc = check_records(ch.size, ch.count, sizeof(ls_fmt_ref_event_t), "ref events", off,
                               err, errlen);
            s->ref_events = (const ls_fmt_ref_event_t *)p;
            s->nref_events = rc ? 0 : ch.count;
            break;
        case LS_CHUNK_REF_FINDINGS:
            ro.findings = off;
            rc = check_records(ch.size, ch.count, sizeof(ls_fmt_ref_finding_t), "ref findings", off,
                               err, errlen);
            s->ref_findings = (const ls_fmt_ref_finding_t *)p;
            s->nref_findings = rc ? 0 : ch.count;
            break;
        case LS_CHUNK_REF_PAIRS:
            ro.pairs = off;
            rc = check_records(ch.size, ch.count, sizeof(ls_fmt_ref_pair_t), "ref pairs", off, err,
                               errlen);
            s->ref_pairs = (const ls_fmt_ref_pair_t *)p;
            s->nref_pairs = rc ? 0 : ch.count;
            break;
        case LS_CHUNK_SAMPLE_ALLOCS:
            sample_allocs_off = off;
            rc = check_records(ch.size, ch.count, sizeof(ls_fmt_sample_alloc_t), "sample allocs",
                               off, err, errlen);
            s->sample_allocs = (const ls_fmt_sample_alloc_t *)p;
            s->nsample_allocs = rc ? 0 : ch.count;
            s->has_sample_allocs = true;
            break;
        case LS_CHUNK_SITES:
            sites_off = off;
            rc = check_records(ch.size, ch.count, sizeof(ls_fmt_site_t), "sites", off, err, errlen);
            s->sites = (const ls_fmt_site_t *)p;
            s->nsites = rc ? 0 : ch.count;
            s->has_sites = true;
            break;
        case LS_CHUNK_TAGS:
            rc = parse_tags(s, p, ch.size, ch.count, off, err, errlen);
            s->has_tags = true;
            break;
        case LS_CHUNK_FAULTS:
            faults_off = off;
            rc = check_records(ch.size, ch.count, sizeof(ls_fmt_fault_t), "faults", off, err,
                               errlen);
            s->faults = (const ls_fmt_fault_t *)p;
            s->nfaults = rc ? 0 : ch.count;
            s->has_faults = true;
            break;
        default:
            break;
        }
        if (rc) return -1;
        off += ch.size;
        nchunks++;
    }
    if (!seen[LS_CHUNK_META]) return fail(err, errlen, "snapshot has no META chunk");
    for (size_t i = 0; i < s->nblocks; i++) {
        const ls_fmt_block_t *b = &s->blocks[i];
        if (b->kind > LS_KIND_REACHABLE)
            return fail(err, errlen, "block %zu has unknown kind %u", i, b->kind);
        if (b->stack && !ls_snapshot_stack(s, b->stack))
            return fail(err, errlen, "block %zu refers to missing stack %u", i, b->stack);
        if (b->kind == LS_KIND_INDIRECTLY && b->leader != LS_NO_LEADER && b->leader >= s->nblocks)
            return fail(err, errlen, "block %zu has leader %u out of range", i, b->leader);
        if (i && b->addr <= s->blocks[i - 1].addr)
            return fail(err, errlen, "blocks are not sorted by address at record %zu", i);
    }
    for (unsigned t = LS_CHUNK_REF_TYPES; t <= LS_CHUNK_REF_PAIRS; t++) s->has_refs |= seen[t];
    if (check_sample(s, sample_allocs_off, err, errlen)) return -1;
    if (check_sites(s, sites_off, err, errlen)) return -1;
    if (check_faults(s, faults_off, err, errlen)) return -1;
    return check_refs(s, &ro, err, errlen);
}

int ls_snapshot_load(const char *path, ls_snapshot_t *snap, char *err, size_t errlen)
{
    memset(snap, 0, sizeof(*snap));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, errlen, "%s is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    /* 8-aligned copy: malloc's alignment is 16 on this platform. */
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return fail(err, errlen, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    char inner[512];
    if (ls_snapshot_parse(buf, got, snap, inner, sizeof(inner))) {
        ls_snapshot_free(snap);
        free(buf);
        memset(snap, 0, sizeof(*snap));
        return fail(err, errlen, "%s: %s", path, inner);
    }
    snap->owns_data = 1;
    return 0;
}

void ls_snapshot_free(ls_snapshot_t *s)
{
    for (size_t i = 0; i < s->nmodules; i++) {
        free(s->modules[i].path);
        free(s->modules[i].build_id);
    }
    free(s->modules);
    free(s->stacks);
    for (size_t i = 0; i < s->nmarkers; i++) free(s->markers[i].label);
    free(s->markers);
    free(s->trigger);
    free(s->exe);
    free(s->cmdline);
    free(s->mode);
    free(s->options);
    free(s->agent_version);
    free(s->refs);
    free(s->fail);
    s->fail = NULL;
    for (size_t i = 0; i < s->nref_types; i++) free(s->ref_types[i].name);
    free(s->ref_types);
    free(s->tags);
    s->tags = NULL;
    s->ntags = 0;
    s->refs = NULL;
    s->ref_types = NULL;
    s->nref_types = 0;
    if (s->owns_data) free(s->data);
    s->owns_data = 0;
    s->data = NULL;
    s->modules = NULL;
    s->stacks = NULL;
    s->markers = NULL;
    s->trigger = NULL;
    s->nmodules = s->nstacks = s->nmarkers = 0;
}

const ls_snap_stack_t *ls_snapshot_stack(const ls_snapshot_t *s, uint32_t id)
{
    size_t lo = 0, hi = s->nstacks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->stacks[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nstacks && s->stacks[lo].id == id ? &s->stacks[lo] : NULL;
}

const ls_snap_ref_type_t *ls_snapshot_ref_type(const ls_snapshot_t *s, uint32_t id)
{
    size_t lo = 0, hi = s->nref_types;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->ref_types[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return id && lo < s->nref_types && s->ref_types[lo].id == id ? &s->ref_types[lo] : NULL;
}

const ls_snap_module_t *ls_snapshot_module_for(const ls_snapshot_t *s, uint64_t pc,
                                               uint32_t stack_id)
{
    const ls_snap_module_t *best = NULL;
    for (size_t i = 0; i < s->nmodules; i++) {
        const ls_snap_module_t *m = &s->modules[i];
        if (pc < m->rec.lo || pc >= m->rec.hi) continue;
        if (stack_id && (stack_id < m->rec.first_stack || stack_id >= m->rec.end_stack)) {
            if (!best) best = m; /* fall back to any object once mapped there */
            continue;
        }
        return m;
    }
    return best;
}
