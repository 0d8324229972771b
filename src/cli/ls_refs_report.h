/*
 * ls_refs_report.h - the reference-count part of a report (format 1.2 REF_* chunks): which
 * references of the objects still alive nothing dropped, why (the verdict), grouped; and the
 * reference errors the agent saw as they happened (double puts, uses after the last put, ...).
 * Rendered in text inside `leakscope report` / `run` and as the "refs" key of their JSON (the
 * contract is in ls_report.h).
 *
 * Every stack shown starts at its event's site: its first frame that is neither plumbing (the
 * built-in objects and --site-skip globs of ls_agg.h, and the public API's inline ls_ref_*
 * functions) nor a reference wrapper - a function such as obj_get() that every event of one op
 * on one type goes through, called from several functions (the method, and how a reference
 * with no put is named, are in ls_refs_report.c).
 */
#ifndef LS_REFS_REPORT_H
#define LS_REFS_REPORT_H

#include "ls_agg.h"
#include "ls_format_read.h"
#include "ls_output.h"
#include "ls_symbolize.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ls_refs ls_refs_t;

#define LS_REFS_EXAMPLES 5

typedef struct ls_refs_example {
    uint64_t addr;
    int64_t count;    /* the agent's count */
    uint32_t nevents; /* events recorded in its history */
} ls_refs_example_t;

/* One group of unpaired references: equal type, stack from the site on, verdict, pairing. */
typedef struct ls_refs_group {
    const char *type;     /* type name */
    const char *verdict;  /* "no_put_in_caller", "no_put", "extra_get", "unpaired_create",
                           * "unrecorded" (the count holds more references than the history
                           * shows gets: events were not recorded) */
    char *message;        /* "get in funcA reached from funcB has no put", ... */
    const char *function; /* the site's function name (NULL: unknown) */
    const char *culprit;  /* the function that should have dropped it (NULL: unknown) */
    bool tracker;         /* paired exactly, by trackers */
    bool incomplete;      /* an object's history was incomplete or compacted */
    uint64_t objects, references;
    ls_sym_frame_t *stack; /* the unpaired event's frames from its site on */
    size_t nstack;
    ls_sym_frame_t *create_stack; /* the first object's creation, from its site on */
    size_t ncreate;
    ls_refs_example_t examples[LS_REFS_EXAMPLES];
    size_t nexamples;
} ls_refs_group_t;

/* One event of a finding's history. */
typedef struct ls_refs_hist {
    uint8_t op;
    uint32_t tid, tracker;
    const ls_sym_frame_t *site, *caller; /* into the finding's hist_frames; NULL: no stack */
} ls_refs_hist_t;

/* One REF_FINDINGS record, rendered. */
typedef struct ls_refs_finding {
    const ls_fmt_ref_finding_t *rec;
    const char *type;   /* NULL: unknown */
    unsigned other_op;  /* op of other_stack's event (0: none) */
    bool other_tracked; /* double put: the earlier put was a tracker's (put twice) */
    ls_sym_frame_t *stack, *other, *create;
    size_t nstack, nother, ncreate;
    ls_refs_hist_t *hist;
    size_t nhist;
    ls_sym_frame_t *hist_frames; /* two per event: site and caller */
} ls_refs_finding_t;

/*
 * Analyses snap's refs chunks (an empty result when it has none). sym may be NULL (bare pcs);
 * rules NULL: built-in plumbing only. The result holds copies of frames whose strings belong to
 * sym, which must outlive it. Returns NULL with a message in err only when out of memory.
 */
ls_refs_t *ls_refs_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                         const ls_site_rules_t *rules, char *err, size_t errlen);
void ls_refs_free(ls_refs_t *r);

/* Objects alive with references (count > 0), and reference errors (occurrences). */
uint64_t ls_refs_leaked_objects(const ls_refs_t *r);
uint64_t ls_refs_errors(const ls_refs_t *r);
/* Groups in display order. */
size_t ls_refs_ngroups(const ls_refs_t *r);
const ls_refs_group_t *ls_refs_group(const ls_refs_t *r, size_t i);
/* Findings in display order (kind, then count descending, then stack). */
size_t ls_refs_nfindings(const ls_refs_t *r);
const ls_refs_finding_t *ls_refs_finding(const ls_refs_t *r, size_t i);

/* The "REFERENCE COUNTS" block (groups, findings); nothing when the snapshot has no refs. */
void ls_refs_write_text(const ls_refs_t *r, FILE *out);
/* The "REFS SUMMARY" block; nothing when the snapshot has no refs. */
void ls_refs_write_summary(const ls_refs_t *r, FILE *out);
/* The report's "refs" value: null without refs chunks, else the object of ls_report.h's
 * contract. NULL (c->oom set) when out of memory. */
cJSON *ls_refs_json(const ls_refs_t *r, ls_jctx_t *c);

#endif
