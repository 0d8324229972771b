/*
 * ls_profile.h - heap profiles from snapshots: the weighted estimates, the four pprof views, and
 * the profile renderers (top-N text, JSON, collapsed stacks). The pprof encoder is ls_pprof.h.
 *
 * Weights: the one place where a recorded block or allocation becomes objects and bytes. In
 * mode sample the agent samples an allocation of s bytes with probability
 * p(s) = 1 - exp(-s / R), R = META sample_rate (a Poisson process over allocated bytes), so a
 * sampled block stands for 1/p(s) objects and s/p(s) bytes and the expected totals equal the
 * truth (a Horvitz-Thompson estimate, as Go's and tcmalloc's heap profiles make). A full-mode
 * snapshot records every block: weight 1, and the same code gives exact figures. A sampled
 * block of size 0 weighs nothing (Go's scaleHeapSample does the same; a byte-driven sampler
 * never picks one anyway).
 *
 * Views, pprof's sample types, in Go's heap-profile order:
 *   alloc_objects, alloc_space  allocated since the process started, freed blocks included:
 *                               the agent's SAMPLE_ALLOCS estimates (it adds the weights as it
 *                               samples). NOT AVAILABLE for full-mode snapshots: full mode
 *                               forgets a block when it is freed, so "allocated" could only be
 *                               the live blocks again, which would mislead; the views and the
 *                               pprof sample types are left out instead.
 *   inuse_objects, inuse_space  live when the snapshot was taken: BLOCKS, weighted.
 *
 * Rounding: a stack's estimates are kept as doubles and rounded to integers once per stack, where
 * integers are needed (pprof values, ls_agg rows, collapsed lines), as Go rounds each of its
 * profile records; totals are sums of the rounded figures so that percentages add up.
 */
#ifndef LS_PROFILE_H
#define LS_PROFILE_H

#include "ls_agg.h"
#include "ls_format_read.h"
#include "ls_symbolize.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum ls_prof_value {
    LS_PROF_ALLOC_OBJECTS = 0,
    LS_PROF_ALLOC_SPACE = 1,
    LS_PROF_INUSE_OBJECTS = 2,
    LS_PROF_INUSE_SPACE = 3,
    LS_PROF_NVALUES = 4,
} ls_prof_value_t;

/* "alloc_objects", "alloc_space", "inuse_objects", "inuse_space". */
const char *ls_prof_value_name(ls_prof_value_t v);
/* "count" for objects, "bytes" for space (pprof's units). */
const char *ls_prof_value_unit(ls_prof_value_t v);
/* The name back to the view. Returns 0 or -1. */
int ls_prof_value_parse(const char *s, ls_prof_value_t *v);
static inline bool ls_prof_value_is_alloc(ls_prof_value_t v)
{
    return v == LS_PROF_ALLOC_OBJECTS || v == LS_PROF_ALLOC_SPACE;
}

/* True when snap is a sample profile (META mode "sample"). */
bool ls_snapshot_is_sampled(const ls_snapshot_t *snap);

/* Objects one recorded block of size bytes stands for: 1/p(size) with p as above; 1 when rate
 * is 0 (full mode: exact); 0 for size 0 under sampling. Its bytes are size times this. */
double ls_prof_weight(uint64_t size, uint64_t rate);

/* An estimate rounded to the nearest integer (clamped to int64). */
int64_t ls_prof_round(double v);

typedef struct ls_prof_stack {
    uint32_t stack;            /* the snapshot's stack id; 0 = no stack */
    uint64_t live;             /* live recorded blocks (sampled ones in mode sample) */
    uint64_t samples;          /* sampled allocations since start (SAMPLE_ALLOCS) */
    double v[LS_PROF_NVALUES]; /* estimates (exact in full mode) */
} ls_prof_stack_t;

typedef struct ls_profile {
    bool sampled;    /* mode sample: estimates; else exact */
    bool has_alloc;  /* alloc_* views available: a sample profile with SAMPLE_ALLOCS */
    bool windowed;   /* built with a birth window */
    uint64_t period; /* pprof's period: sample_rate when sampled, 1 (every byte) when full */
    ls_prof_stack_t *stacks; /* one per stack with a live block or a sampled allocation, by id */
    size_t nstacks;
    double total[LS_PROF_NVALUES]; /* sums of the unrounded estimates */
    uint64_t live, samples;        /* sums of the stacks' live and samples */
} ls_profile_t;

/*
 * The weighted profile of snap. Blocks are taken when they pass f (NULL: all). A birth window
 * in f restricts the in-use views to the blocks born in it; the allocated views, which carry no
 * birth times, are then left out (has_alloc false). Returns 0, or -1 with a message in err (out
 * of memory).
 */
int ls_profile_build(const ls_snapshot_t *snap, const ls_block_filter_t *f, ls_profile_t *p,
                     char *err, size_t errlen);
void ls_profile_free(ls_profile_t *p);
/* Why p has no alloc views, for messages ("a full-mode snapshot records live blocks only ..."). */
const char *ls_profile_missing_alloc(const ls_profile_t *p);

/* One view pair of p as weighted stacks for ls_agg (bytes = space, blocks = objects, rounded per
 * stack; stacks rounding to 0 and 0 left out): the alloc views when alloc, else in use.
 * *out is malloc'd, sorted by stack id. Returns 0 or -1 (out of memory). */
int ls_profile_wstacks(const ls_profile_t *p, bool alloc, ls_wstack_t **out, size_t *n);

/* The in-use weighted stacks of snap, what diff, suspects and watch compare: exactly
 * ls_agg_weigh_blocks for a full snapshot, the rounded estimates for a sample profile. */
int ls_profile_weigh_inuse(const ls_snapshot_t *snap, ls_wstack_t **out, size_t *n);

/* ---- the top-N view (report --format text|json of a sample profile) ------------------------ */

typedef struct ls_prof_report_opts {
    ls_prof_value_t index;             /* rows sorted by this view (default inuse_space) */
    size_t top;                        /* rows per table; 0 = all */
    const ls_site_rules_t *site_rules; /* NULL: built-in plumbing only */
    const char *program;               /* NULL: the snapshot's exe */
    const ls_block_filter_t *window;   /* NULL: every block (see ls_profile_build) */
} ls_prof_report_opts_t;

typedef struct ls_prof_report ls_prof_report_t;

/* Aggregates snap per allocation site and per stack (ls_agg.h). sym may be NULL; snap and sym
 * must outlive the report. Fails (NULL, message in err) when out of memory or when o->index is
 * an alloc view the snapshot does not have. */
ls_prof_report_t *ls_prof_report_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                                       const ls_prof_report_opts_t *o, char *err, size_t errlen);
void ls_prof_report_free(ls_prof_report_t *r);
/* The profile behind the report. */
const ls_profile_t *ls_prof_report_profile(const ls_prof_report_t *r);

/*
 * Text, like `pprof -top`: a header (program, how it was sampled, samples, totals), then the top
 * allocation sites and the top stacks by o->index, each with its share, the running sum of
 * shares, and every available view. Write errors stay in out's error indicator.
 */
void ls_prof_report_write_text(const ls_prof_report_t *r, FILE *out);

/*
 * JSON (version 1; keys may be added, never renamed or removed; unknown values are left out):
 *   {"version": 1, "program": "..."|null, "pid": N, "exit_status": N|null,
 *    "reason": "exit"|"signal"|"live"|"unknown", "mode": "sample"|"full",
 *    "profile": {"exact": bool, "sample_rate": N (mode sample only), "period": N,
 *                "sample_index": "inuse_space",
 *                "sample_types": ["alloc_objects", "alloc_space", "inuse_objects",
 *                                 "inuse_space"]    the views available (full: the inuse two),
 *                "live_samples": N,                 live recorded blocks
 *                "samples": N,                      sampled allocations (mode sample only)
 *                "totals": {"inuse_space": N, "inuse_objects": N,
 *                           "alloc_space": N, "alloc_objects": N (mode sample only)},
 *                "sites_total": N, "stacks_total": N},   rows before --top
 *    "sites": [{"site": frame, "stacks": N, "inuse_space": N, "inuse_objects": N,
 *               "alloc_space": N, "alloc_objects": N}],
 *    "stacks": [{"site": frame, "stack_id": N, "frames": [frames], "inuse_space": N, ...}]}
 * Figures are the rounded estimates (exact for full mode); "totals" add up the rows (all of
 * them, not only the shown ones). Rows are sorted by "sample_index" descending, then the other
 * views, then the site / stack text. Frames and sites are the report's frame objects
 * (ls_report.h, ls_agg.h); stacks are symbolized, inlined frames included, innermost first.
 * Returns 0, or -1 when out of memory or the write failed.
 */
int ls_prof_report_write_json(const ls_prof_report_t *r, FILE *out);

/*
 * Collapsed stacks (flamegraph.pl, speedscope, inferno): one line per distinct symbolized stack,
 * "outermost;...;innermost VALUE", VALUE the rounded figure of index for that stack (lines
 * of stacks that symbolize the same are added up; lines of value 0 are left out), sorted by the
 * stack text (byte order), so the output is deterministic. A frame is its function name, else
 * "object+0xOFFSET", else "0xPC"; inlined functions are frames of their own; ';' in a name
 * becomes ':'. A block without a stack is "[no stack]". Returns 0 or -1 (out of memory: message
 * in err).
 */
int ls_profile_write_collapsed(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                               const ls_profile_t *p, ls_prof_value_t index, FILE *out, char *err,
                               size_t errlen);

#endif
