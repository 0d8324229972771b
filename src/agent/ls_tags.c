/*
 * ls_tags.c - compile-time tags (include/leakscope/tags.h): the call sites a program names
 * itself, counted in mode sites without a stack walk or a lookup.
 *
 * Each module built with tags registers its section of ls_tag_t objects from a constructor
 * (ls_agent_tags_register; possibly before the agent's own constructor has run: the ranges are
 * kept and taken up by ls__tags_sites_ready). In mode sites every tag of a registered range gets
 * its site at once, so that TAGS lists every tag, called or not (like /proc/allocinfo), and its
 * calls find the site id in the tag itself (ls_tag_t.site):
 *   0           not assigned yet (a call before its module registered): the slow path assigns it
 *   id          the site to charge
 *   id | SLOW   the site has a fault injection rule, or is the overflow site: every call takes
 *               the slow path (ls__tag_site_slow), which fires the rule
 * The hot path tests (int32_t)site <= 0, one compare for both rare cases. The strings of a tag
 * are copied when it is assigned, so a module may be dlclose'd (ls_agent_tags_unregister only
 * forgets its range); a module loaded again gets new tags and sites, which the views merge by
 * file, line and function.
 *
 * Lock order: tags lock > sites registry/table locks (ls_agent.h).
 */
#define _GNU_SOURCE
#include "ls_interpose.h"
#include "ls_format_write.h"

#include <string.h>

#define LEAKSCOPE_TAGS_TYPES_ONLY
#include "../../include/leakscope/tags.h"

#define LS_TAG_SLOW        0x80000000u
#define LS_TAGS_MAX_RANGES 4096

typedef struct tag_rec {
    const char *file, *func; /* agent copies */
    uint32_t line;
    uint16_t file_len, func_len;
    uint16_t kind;
} tag_rec_t;

static struct {
    ls_tag_t *start, *stop;
} ranges[LS_TAGS_MAX_RANGES];
static size_t nranges;
static _Atomic int tags_lock;
static bool ready;             /* mode sites: the site table exists */
static tag_rec_t *trecs;       /* by tag index; LS_SITES_MAX, pages touched as used */
static _Atomic uint32_t ntags; /* TAGS records */
static const char *last_file;  /* the tags of one translation unit share their __FILE__ */
static const char *last_copy;
static uint16_t last_len;

static bool tag_valid(const ls_tag_t *t)
{
    return t->magic == LS_TAG_MAGIC && t->version == LS_TAG_VERSION && t->kind >= 1 &&
           t->kind <= 4 && t->file && t->func;
}

/* A copy of s (at most 65535 bytes kept) in agent memory; NULL when out of memory. */
static const char *copy_str(const char *s, uint16_t *len)
{
    size_t n = strnlen(s, 65535);
    char *c = ls__perm_alloc(n + 1);
    if (!c) return NULL;
    memcpy(c, s, n);
    c[n] = '\0';
    *len = (uint16_t)n;
    return c;
}

/* Gives tag t its site (tags lock held, guard set). */
static void tag_assign(ls_tag_t *t)
{
    if (atomic_load_explicit((_Atomic uint32_t *)&t->site, memory_order_relaxed)) return;
    if (!tag_valid(t)) return;
    uint32_t idx = atomic_load_explicit(&ntags, memory_order_relaxed);
    bool created = false;
    uint32_t id = 0; /* no table or full: the overflow site */
    if (trecs && idx < LS_SITES_MAX) {
        tag_rec_t *r = &trecs[idx];
        if (t->file != last_file || !last_copy) {
            last_copy = copy_str(t->file, &last_len);
            last_file = last_copy ? t->file : NULL;
        }
        r->file = last_copy;
        r->file_len = last_len;
        r->func = copy_str(t->func, &r->func_len);
        r->line = t->line;
        r->kind = t->kind;
        if (!r->file || !r->func) {
            ls__error("compile-time tags: no memory to keep the tag of %s", t->func);
            return;
        }
        /* The record is complete before its index can appear in a SITES record. */
        atomic_store_explicit(&ntags, idx + 1, memory_order_release);
        id = ls__site_of_tag(t, idx + 1, &created);
        if (!created) atomic_store_explicit(&ntags, idx, memory_order_release);
    }
    uint32_t v = id;
    if (!id || ls__site_fail_rule(id)) v |= LS_TAG_SLOW;
    atomic_store_explicit((_Atomic uint32_t *)&t->site, v, memory_order_relaxed);
}

static void range_assign(ls_tag_t *start, ls_tag_t *stop)
{
    for (ls_tag_t *t = start; t < stop; t++) tag_assign(t);
}

uint32_t ls__tag_site_slow(ls_tag_t *t)
{
    uint32_t v = atomic_load_explicit((_Atomic uint32_t *)&t->site, memory_order_relaxed);
    if (!v) {
        if (!tag_valid(t)) return UINT32_MAX; /* not a tag of ours: count it at its pc */
        ls__tls.guard++;
        ls__spin_lock(&tags_lock);
        tag_assign(t);
        ls__spin_unlock(&tags_lock);
        ls__tls.guard--;
        v = atomic_load_explicit((_Atomic uint32_t *)&t->site, memory_order_relaxed);
        if (!v) return 0; /* out of memory: the overflow site */
    }
    uint32_t id = v & ~LS_TAG_SLOW;
    return (v & LS_TAG_SLOW) ? ls__site_fire(id) : id;
}

/* Both entry points may run before the agent's constructor (a library's constructors run
 * first): they only touch static memory until ready. */
LS_EXPORT void ls_agent_tags_register(ls_tag_t *start, ls_tag_t *stop)
{
    if (!start || stop <= start) return;
    ls__tls.guard++;
    ls__spin_lock(&tags_lock);
    size_t i = 0;
    while (i < nranges && ranges[i].start != start) i++;
    if (i == nranges) { /* the module's first registration (one per translation unit) */
        if (nranges < LS_TAGS_MAX_RANGES) {
            ranges[nranges].start = start;
            ranges[nranges].stop = stop;
            nranges++;
            if (ready) range_assign(start, stop);
        } else {
            ls__error("compile-time tags: more than %d tagged modules; the rest are counted when "
                      "called",
                      LS_TAGS_MAX_RANGES);
        }
    }
    ls__spin_unlock(&tags_lock);
    ls__tls.guard--;
}

LS_EXPORT void ls_agent_tags_unregister(ls_tag_t *start, ls_tag_t *stop)
{
    (void)stop;
    ls__tls.guard++;
    ls__spin_lock(&tags_lock);
    for (size_t i = 0; i < nranges; i++)
        if (ranges[i].start == start) {
            ranges[i] = ranges[--nranges];
            break;
        }
    ls__spin_unlock(&tags_lock);
    ls__tls.guard--;
}

void ls__tags_sites_ready(void)
{
    trecs = ls__map((size_t)LS_SITES_MAX * sizeof(tag_rec_t));
    if (!trecs) {
        ls__error("compile-time tags: no memory for the tag table; tagged calls are counted at "
                  "their return address");
        return;
    }
    ls__spin_lock(&tags_lock);
    ready = true;
    for (size_t i = 0; i < nranges; i++) range_assign(ranges[i].start, ranges[i].stop);
    ls__spin_unlock(&tags_lock);
}

void ls__tags_write(ls_fmt_writer_t *w)
{
    uint32_t n = atomic_load_explicit(&ntags, memory_order_acquire);
    if (!n) return;
    ls_fmt_chunk_begin(w, LS_CHUNK_TAGS);
    static const char zero[8];
    for (uint32_t i = 0; i < n; i++) {
        const tag_rec_t *r = &trecs[i];
        ls_fmt_tag_t rec = {
            .line = r->line, .file_len = r->file_len, .func_len = r->func_len, .kind = r->kind};
        ls_fmt_put(w, &rec, sizeof(rec));
        ls_fmt_put(w, r->file, r->file_len);
        ls_fmt_put(w, r->func, r->func_len);
        size_t len = (size_t)r->file_len + r->func_len;
        ls_fmt_put(w, zero, ls_fmt_pad8(len) - len);
    }
    ls_fmt_chunk_end(w, n);
}

void ls__tags_lock(void)
{
    ls__spin_lock(&tags_lock);
}

void ls__tags_unlock(void)
{
    ls__spin_unlock(&tags_lock);
}

void ls__tags_after_fork_child(void)
{
    atomic_store(&tags_lock, 0);
}
