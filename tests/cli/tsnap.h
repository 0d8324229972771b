/*
 * tsnap.h - test helper: writes snapshot files with the real writer (ls_format_write), from
 * plain arrays, and lists the test process's own loaded objects as snapshot modules.
 */
#ifndef TSNAP_H
#define TSNAP_H

#include "ls_format.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tsnap_module {
    uint64_t bias, lo, hi;
    uint32_t first_stack, end_stack;
    const char *path;
    const uint8_t *build_id;
    size_t build_id_len;
} tsnap_module_t;

typedef struct tsnap_stack {
    uint32_t id, nframes;
    const uint64_t *pcs;
} tsnap_stack_t;

typedef struct tsnap_marker {
    uint64_t time_ns, realtime_ns;
    uint32_t seq;
    const char *label;
} tsnap_marker_t;

typedef struct tsnap_ref_type {
    uint32_t id;
    uint16_t flags;
    const char *name;
} tsnap_ref_type_t;

typedef struct tsnap {
    uint64_t pid;
    const char *exe;
    uint64_t reason; /* ls_fmt_reason_t; 0 = leave out */
    int64_t exit_status;
    uint64_t signal;
    uint64_t leak_checked;
    const tsnap_module_t *modules;
    size_t nmodules;
    const tsnap_stack_t *stacks;
    size_t nstacks;
    const ls_fmt_block_t *blocks; /* sorted by address */
    size_t nblocks;
    /* format 1.1 (each left out when 0 / NULL) */
    uint64_t start_ns, snap_ns, snap_realtime_ns, snap_seq;
    const char *trigger;
    const tsnap_marker_t *markers; /* written as a MARKERS chunk when nmarkers > 0 */
    size_t nmarkers;
    /* format 1.2: the REF_* chunks, all five written when refs is set */
    int refs;
    const char *refs_meta; /* META refs, left out when NULL */
    const tsnap_ref_type_t *ref_types;
    size_t nref_types;
    const ls_fmt_ref_object_t *ref_objects;
    size_t nref_objects;
    const ls_fmt_ref_event_t *ref_events;
    size_t nref_events;
    const ls_fmt_ref_finding_t *ref_findings;
    size_t nref_findings;
    const ls_fmt_ref_pair_t *ref_pairs;
    size_t nref_pairs;
    /* format 1.3, mode sample: META mode (NULL = "full"), META sample_rate (left out when 0),
     * and a SAMPLE_ALLOCS chunk when sample_allocs is set (nsample_allocs may be 0) */
    const char *mode;
    uint64_t sample_rate;
    const ls_fmt_sample_alloc_t *sample_allocs;
    size_t nsample_allocs;
    /* STATS items {key, value}, a STATS chunk when nstats > 0 */
    const uint64_t (*stats)[2];
    size_t nstats;
} tsnap_t;

/* Writes s to path. Returns 0 or an errno. */
int tsnap_write(const char *path, const tsnap_t *s);

/* Fills out with this process's loaded objects (main program first, its path from
 * /proc/self/exe), build-ids included; first_stack 1, end_stack UINT32_MAX. Returns the count.
 * Strings live in static storage. */
size_t tsnap_self_modules(tsnap_module_t *out, size_t max);

/* A block record. */
ls_fmt_block_t tsnap_block(uint64_t addr, uint64_t size, uint32_t stack, unsigned kind,
                           uint32_t leader);

/* A block record with a birth time. */
ls_fmt_block_t tsnap_block_born(uint64_t addr, uint64_t size, uint32_t stack, unsigned kind,
                                uint64_t birth_ns);

/* Line number (1-based) of the first line of file containing marker; 0 when absent. */
unsigned tsnap_find_line(const char *file, const char *marker);

#endif
