/*
 * ls_series.h - a series of snapshots aggregated per site and per stack with shared keys
 * (ls_agg.h), and the analyses built on it: `diff` (two snapshots), `suspects` (sites whose live
 * bytes keep growing) and `watch`'s growth table.
 *
 * A series keeps, per snapshot, only its metadata and its aggregation; the snapshot itself is
 * dropped once aggregated. Consecutive snapshots with the same module table (the same process,
 * nothing dlopen'd or dlclose'd in between) share one symbolizer, so a pc is resolved once per
 * series, not once per snapshot.
 */
#ifndef LS_SERIES_H
#define LS_SERIES_H

#include "ls_agg.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct ls_series_snap {
    char *file;
    char *exe;
    uint64_t pid, reason, snap_ns, snap_realtime_ns, snap_seq;
    double time_s; /* x axis: see ls_series_set_times */
    ls_agg_t *agg; /* every live block, all kinds; a sample profile's estimates (ls_profile.h) */
    uint64_t sample_rate; /* a sample profile's sample rate; 0 for a full snapshot (exact) */
} ls_series_snap_t;

typedef struct ls_series ls_series_t;

/* rules (may be NULL) must outlive the series. Returns NULL when out of memory. */
ls_series_t *ls_series_new(const ls_site_rules_t *rules);
void ls_series_free(ls_series_t *s);
size_t ls_series_len(const ls_series_t *s);
const ls_series_snap_t *ls_series_at(const ls_series_t *s, size_t i);
const ls_keys_t *ls_series_keys(const ls_series_t *s);

/* Loads path and appends its aggregation: live blocks, weighted by ls_profile_weigh_inuse (a
 * sample profile gives its estimated in-use bytes and objects, rounded per stack; a full
 * snapshot its exact blocks). Returns 0, or -1 with a message naming the file. */
int ls_series_add_file(ls_series_t *s, const char *path, char *err, size_t errlen);

/* Orders the snapshots by snap_realtime_ns, then snap_ns, then file name, and sets time_s:
 * snap_ns in seconds (time since the process started) when every snapshot has the same pid,
 * else seconds of CLOCK_REALTIME since the first snapshot (or the index, without realtime).
 * Returns true when the pids differ. */
bool ls_series_sort(ls_series_t *s);
/* Sets time_s as ls_series_sort does, keeping the current order (diff, watch). */
bool ls_series_set_times(ls_series_t *s);

/* Expands arguments into snapshot files: a directory gives its *.lsnap files (sorted by name),
 * anything else is taken as a file. *files is a malloc'd array of malloc'd strings (free with
 * ls_series_free_files). Returns 0, or -1 with a message (unreadable or empty directory). */
int ls_series_expand_args(char *const *args, size_t nargs, char ***files, size_t *nfiles, char *err,
                          size_t errlen);
void ls_series_free_files(char **files, size_t n);

/* ---- per-site series ------------------------------------------------------------------------ */

typedef struct ls_site_row {
    uint32_t key;             /* site key */
    uint64_t *bytes, *blocks; /* one per snapshot (0 where the site is absent) */
} ls_site_row_t;

typedef struct ls_site_table {
    ls_site_row_t *rows; /* sorted by key */
    size_t nrows, nsnaps;
    uint64_t *buf;
} ls_site_table_t;

/* Every site seen in the series with its bytes and blocks at each snapshot. Returns 0 or -1. */
int ls_site_table_build(const ls_series_t *s, ls_site_table_t *t);
void ls_site_table_free(ls_site_table_t *t);

/* Least-squares fit of y over x (n points): slope and R^2 (1 for a perfect fit; 0 when x or y
 * do not vary). */
void ls_linear_fit(const double *x, const double *y, size_t n, double *slope, double *r2);

/* ---- suspects ------------------------------------------------------------------------------- */

typedef struct ls_suspect_opts {
    bool has_min_growth;
    uint64_t min_growth; /* else: max(4096, 1% of the last snapshot's live bytes) */
    size_t max_stacks;   /* stacks shown per suspect; 0 = 3 */
} ls_suspect_opts_t;

typedef struct ls_suspect_stack {
    uint32_t key;           /* stack key */
    uint64_t bytes, blocks; /* at the last snapshot */
    uint64_t growth;        /* of its floor over the series */
} ls_suspect_stack_t;

typedef struct ls_suspect {
    const ls_site_row_t *site;
    uint64_t *floor;       /* floor[i] = min(bytes[i..n-1]) */
    uint64_t growth;       /* floor[n-1] - floor[0] */
    uint64_t rise1, rise2; /* floor growth in the first / second half */
    double slope, r2;      /* bytes over time_s */
    ls_suspect_stack_t *stacks;
    size_t nstacks;
} ls_suspect_t;

typedef struct ls_suspects {
    ls_site_table_t table;
    uint64_t min_growth;
    size_t split;    /* the snapshot ending the first half and starting the second */
    ls_suspect_t *v; /* ranked: growth, then slope, then site key text */
    size_t n;
} ls_suspects_t;

/* Ranks the suspects of s (method: docs/DESIGN.md, "Suspects"). Needs at least 3 snapshots.
 * Returns NULL with a message in err. */
ls_suspects_t *ls_suspects_find(const ls_series_t *s, const ls_suspect_opts_t *o, char *err,
                                size_t errlen);
void ls_suspects_free(ls_suspects_t *r);
/* top: suspects shown, 0 = all. */
void ls_suspects_write_text(const ls_series_t *s, const ls_suspects_t *r, size_t top, FILE *out);
/*
 * JSON (version 1; fields may be added, never renamed or dropped):
 *   {"version": 1,
 *    "snapshots": [{"file": "...", "pid": N, "time_s": X, "live_bytes": N, "live_blocks": N,
 *                   "snap_seq": N}],                      in series order
 *    "min_growth": N, "split_time_s": X, "sites_considered": N,
 *    "suspects": [{"rank": 1, "site": {frame}, "bytes": [N per snapshot], "blocks": [..],
 *                  "floor_bytes": [..], "growth_bytes": N, "rise_first_half_bytes": N,
 *                  "rise_second_half_bytes": N, "slope_bytes_per_s": X, "r2": X,
 *                  "stacks": [{"bytes": N, "blocks": N, "growth_bytes": N,
 *                              "frames": [frame]}]}]}
 * Frames and sites are the report's frame objects (ls_report.h, ls_agg.h). A stack's bytes and
 * blocks are at the last snapshot, growth_bytes its own floor growth. Returns 0 or -1. */
int ls_suspects_write_json(const ls_series_t *s, const ls_suspects_t *r, size_t top, FILE *out);

/* ---- diff ----------------------------------------------------------------------------------- */

typedef enum ls_diff_by { LS_DIFF_BY_SITE, LS_DIFF_BY_STACK } ls_diff_by_t;

typedef struct ls_diff_row {
    uint32_t key;  /* site key or stack key */
    uint32_t site; /* site key */
    uint64_t old_bytes, new_bytes, old_blocks, new_blocks;
} ls_diff_row_t;

typedef struct ls_diff {
    ls_diff_by_t by;
    ls_diff_row_t *rows; /* by |delta bytes| desc, |delta blocks| desc, new bytes desc, key */
    size_t n;
} ls_diff_t;

/* NEW (snapshot 1 of s) minus OLD (snapshot 0). Returns NULL when out of memory. */
ls_diff_t *ls_diff_build(const ls_series_t *s, ls_diff_by_t by);
void ls_diff_free(ls_diff_t *d);
/* "grew", "shrank", "new", "gone" or "same". */
const char *ls_diff_status(const ls_diff_row_t *r);
void ls_diff_write_text(const ls_series_t *s, const ls_diff_t *d, size_t top, FILE *out);
/*
 * Sample profiles are compared on their estimated in-use bytes and objects ("blocks"), as
 * `pprof -base` compares inuse_space and inuse_objects.
 * JSON (version 1; fields may be added, never renamed or dropped):
 *   {"version": 1, "old": {snapshot as in suspects, plus "sample_rate": N for a sample
 *    profile}, "new": {..}, "by": "site"|"stack",
 *    "totals": {"old_bytes": N, "new_bytes": N, "delta_bytes": N, "old_blocks": N,
 *               "new_blocks": N, "delta_blocks": N},
 *    "rows_total": N,                                      rows before --top
 *    "rows": [{"site": {frame}, "stack": [frames] (by stack only), "old_bytes": N,
 *              "new_bytes": N, "delta_bytes": N, "old_blocks": N, "new_blocks": N,
 *              "delta_blocks": N, "status": "grew"|"shrank"|"new"|"gone"|"same"}]}
 * top: rows written, 0 = all. Returns 0 or -1. */
int ls_diff_write_json(const ls_series_t *s, const ls_diff_t *d, size_t top, FILE *out);

/* ---- watch ---------------------------------------------------------------------------------- */

/* A sparkline of v[0..n) scaled between its min and max: UTF-8 blocks (U+2581..U+2588) or
 * ASCII (" .:-=+*#"); writes at most len - 1 bytes of it. */
void ls_sparkline(const uint64_t *v, size_t n, bool utf8, char *buf, size_t len);
/* The watch table of the series so far: a header (the last snapshot, totals and their growth)
 * and the top sites by growth since the first snapshot (then live bytes): live bytes, blocks,
 * growth since the first and since the previous snapshot, and a trend of the last 16. Returns
 * 0 or -1 (out of memory). */
int ls_watch_table(const ls_series_t *s, size_t top, bool utf8, FILE *out);

#endif
