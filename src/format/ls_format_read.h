/*
 * ls_format_read.h - snapshot reader (CLI side). Loads a whole file, checks every chunk (size,
 * CRC, record bounds, ids) and exposes plain arrays. Any defect gives an error message naming
 * the problem and the file offset; the reader never trusts a length it has not checked.
 */
#ifndef LS_FORMAT_READ_H
#define LS_FORMAT_READ_H

#include "ls_format.h"

#include <stdbool.h>

typedef struct ls_snap_module {
    ls_fmt_module_t rec;
    char *path;        /* NUL-terminated copy */
    uint8_t *build_id; /* rec.build_id_len bytes */
} ls_snap_module_t;

typedef struct ls_snap_stack {
    uint32_t id;
    uint32_t nframes;
    const uint64_t *pcs; /* points into the snapshot's data */
} ls_snap_stack_t;

typedef struct ls_snap_marker {
    uint64_t time_ns, realtime_ns; /* see ls_fmt_marker_t */
    uint32_t seq;
    char *label; /* NUL-terminated copy */
} ls_snap_marker_t;

/* A REF_TYPES record (1.2). */
typedef struct ls_snap_ref_type {
    uint32_t id;
    uint16_t flags; /* LS_REF_TYPE_* */
    char *name;     /* NUL-terminated copy */
} ls_snap_ref_type_t;

/* A TAGS record (1.5): one compile-time tag (include/leakscope/tags.h). The strings point into
 * the snapshot's data and are not NUL-terminated: print them with "%.*s". */
typedef struct ls_snap_tag {
    const char *file; /* as the compiler gave __FILE__ */
    const char *func;
    uint16_t file_len, func_len;
    uint16_t kind; /* ls_fmt_tag_kind_t, 1..4 */
    uint32_t line; /* > 0 */
} ls_snap_tag_t;

#define LS_STAT_KEYS 64

typedef struct ls_snapshot {
    uint16_t version_major, version_minor;
    /* META */
    uint64_t pid, ppid, start_ns, snap_ns, reason, signal, leak_checked, max_frames;
    uint64_t snap_realtime_ns, snap_seq; /* 0 when absent (files older than 1.1) */
    int64_t exit_status;
    char *exe, *cmdline, *mode, *options, *agent_version, *trigger;
    /* MODULES, STACKS (sorted by id), BLOCKS (sorted by address) */
    ls_snap_module_t *modules;
    size_t nmodules;
    ls_snap_stack_t *stacks;
    size_t nstacks;
    ls_fmt_block_t *blocks;
    size_t nblocks;
    /* MARKERS, in placement order (time_ns non-decreasing) */
    ls_snap_marker_t *markers;
    size_t nmarkers;
    /* Reference counts (1.2; all empty in older files and when the process used none).
     * has_refs is set when any REF_* chunk is present. Types are sorted by id; objects, events,
     * findings and pairs point into the file's data, in file order, and every id, stack id and
     * event range in them was checked against the other chunks. */
    bool has_refs;
    char *refs; /* META refs: the wrapped functions (run --refs), NULL when absent */
    ls_snap_ref_type_t *ref_types;
    size_t nref_types;
    const ls_fmt_ref_object_t *ref_objects; /* sorted by address */
    size_t nref_objects;
    const ls_fmt_ref_event_t *ref_events;
    size_t nref_events;
    const ls_fmt_ref_finding_t *ref_findings;
    size_t nref_findings;
    const ls_fmt_ref_pair_t *ref_pairs;
    size_t nref_pairs;
    /* Mode sample (1.3). sample_rate is META sample_rate (0 when absent; a snapshot whose mode
     * is "sample" always has one). sample_allocs points into the file's data, in file order;
     * every stack id in it was checked against STACKS and every estimate is finite and >= 0.
     * has_sample_allocs is set when the chunk is present (even empty). */
    uint64_t sample_rate;
    bool has_sample_allocs;
    const ls_fmt_sample_alloc_t *sample_allocs;
    size_t nsample_allocs;
    /* Mode sites (1.4). sites points into the file's data, in file order; every record was
     * checked: its stack is 0 (the agent's overflow site, no frames) or a STACKS id of at most
     * site_frames frames, no two records share a stack, live_* >= 0, live_blocks <= allocs,
     * live_bytes <= bytes, no live bytes without live blocks and no bytes without allocations.
     * has_sites is set when the chunk is present (even empty); a snapshot whose mode is "sites"
     * always has one and a site_frames in 1..16. site_frames is META site_frames (0 when
     * absent); sites_enabled is META sites_enabled (0 or 1), -1 when absent. */
    bool has_sites;
    const ls_fmt_site_t *sites;
    size_t nsites;
    uint64_t site_frames;
    int sites_enabled;
    /* Compile-time tags (1.5): the TAGS records in file order (a SITES tag t names tags[t - 1]).
     * Checked: kind 1..4, line > 0, strings inside the record; a site with a tag has a stack of
     * exactly one frame (the tag object's address) and no two sites share a tag. has_tags is set
     * when the chunk is present (even empty). */
    bool has_tags;
    ls_snap_tag_t *tags;
    size_t ntags;
    /* Fault injection (1.5). fail is META fail (the agent's rules, ';'-separated; NULL when
     * absent); faults points into the file's data, in file order. Checked: every stack is 0 or
     * in STACKS, count > 0, and with META fail, rule < its number of rules. has_faults is set
     * when the chunk is present (even empty). The STATS fail_* items count all of them. */
    char *fail;
    bool has_faults;
    const ls_fmt_fault_t *faults;
    size_t nfaults;
    /* STATS, indexed by ls_fmt_stat_key_t */
    uint64_t stats[LS_STAT_KEYS];
    uint64_t stats_present; /* bit k set when stats[k] was in the file */
    /* the file's bytes */
    unsigned char *data;
    size_t size;
    int owns_data; /* set by ls_snapshot_load: free() data with the snapshot */
} ls_snapshot_t;

/* Reads and checks path. Returns 0, or -1 with a message in err. */
int ls_snapshot_load(const char *path, ls_snapshot_t *snap, char *err, size_t errlen);
/* Parses bytes the caller owns; snap->data points into them (the fuzz target's entry). */
int ls_snapshot_parse(const void *data, size_t size, ls_snapshot_t *snap, char *err, size_t errlen);
void ls_snapshot_free(ls_snapshot_t *snap);

const ls_snap_stack_t *ls_snapshot_stack(const ls_snapshot_t *snap, uint32_t id);
/* The module holding pc as seen by stack stack_id, or NULL. */
const ls_snap_module_t *ls_snapshot_module_for(const ls_snapshot_t *snap, uint64_t pc,
                                               uint32_t stack_id);
const char *ls_kind_name(unsigned kind); /* "definitely_lost", ... */
/* ls_fmt_tag_kind_t -> "malloc", "calloc", "realloc", "aligned"; "unknown" otherwise. */
const char *ls_tag_kind_name(unsigned kind);
/* The tag of a SITES record, or NULL when it has none (tag 0; the reader checked the rest). */
const ls_snap_tag_t *ls_snapshot_site_tag(const ls_snapshot_t *snap, const ls_fmt_site_t *site);

/* The REF_TYPES record with this id, or NULL (id 0 included). */
const ls_snap_ref_type_t *ls_snapshot_ref_type(const ls_snapshot_t *snap, uint32_t id);
/* ls_fmt_ref_op_t -> "create", "get", "put", "destroy", "free"; "unknown" otherwise. */
const char *ls_ref_op_name(unsigned op);
/* ls_fmt_ref_finding_kind_t -> "double_put", "use_after_put", "destroy_unregistered",
 * "unregistered", "bad_tracker", "freed_referenced"; "unknown" otherwise. */
const char *ls_ref_finding_name(unsigned kind);

#endif
