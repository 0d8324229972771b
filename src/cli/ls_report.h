/*
 * ls_report.h - the analysed view of a snapshot (loss records, totals, suppressions) and its
 * text (valgrind-like) and JSON renderers.
 *
 * A loss record is the set of blocks of one kind allocated from one stack. Records are ordered
 * biggest first by total bytes (for definitely lost: direct plus the indirectly lost blocks they
 * lead), ties broken by kind then stack id, and numbered in that order among the shown kinds.
 *
 * JSON contract (version 1; fields may be added, never renamed or dropped):
 *   {"version": 1, "program": "..."|null, "pid": N, "exit_status": N|null,
 *    "reason": "exit"|"signal"|"live"|"unknown", "signal": N (reason signal only),
 *    "leak_checked": bool,
 *    "summary": {"definitely_lost": {"bytes": N, "blocks": N}, "indirectly_lost": {..},
 *                "possibly_lost": {..}, "still_reachable": {..}, "suppressed": {..},
 *                "unchecked": {..}},
 *    "leaks": [{"kind": "definitely_lost", "bytes": N, "blocks": N, "loss_record": N,
 *               "stack_id": N, "total_bytes": N,
 *               definitely lost only: "direct_bytes", "indirect_bytes", "indirect_blocks",
 *               "stack": [{"pc": "0x401136", "function": "make_node", "file": "t.c",
 *                          "dir": "/src", "line": 12, "column": 5, "object": "/path/prog",
 *                          "offset": "0x1136", "inlined": true, "unresolved": "..."}]}],
 *    "suppressions": [{"type": "leak", "pattern": "...", "file": "...", "line": N,
 *                      "blocks": N, "bytes": N}]}
 *   "bytes"/"blocks" of a record count its own blocks only (so they add up to the summary);
 *   "total_bytes" adds the indirect bytes. In a frame, keys that are unknown are omitted
 *   (never null): "function", "file"/"dir"/"line"/"column", "object"/"offset"; "inlined" appears
 *   only when true and "unresolved" (why a frame has no name: "build-id mismatch", ...) only
 *   when set. "file" is the source file's base name, "dir" its directory (as valgrind's XML).
 *   "leaks" holds the records of the kinds shown in text, in the same order.
 *
 * Since live inspection (only additions):
 *   "window": {"born_after_ns": N|null, "born_before_ns": N|null, "born_after": "..."|null,
 *              "born_before": "..."|null, "bytes": N, "blocks": N}
 *     the birth window the report was restricted to (--born-after inclusive, --born-before
 *     exclusive, ns since the agent started: the clock of block births and markers), how each
 *     bound was given ("marker 'round1-start' (3.20 s)", "12.50 s"), and the bytes and blocks
 *     born in it (suppressed ones included). All null, and the totals those of the whole
 *     snapshot, without a window. With a window, "summary" and "leaks" count only its blocks.
 *   "markers": [{"seq": N, "label": "...", "time_ns": N}]   the snapshot's markers, in order.
 *   per record "site": the record's allocation site (ls_agg.h: its first frame that is not
 *     allocator plumbing), a frame object as in "stack"; {"pc": "0x0", "unresolved":
 *     "no stack"} for a record without a stack.
 *   A live snapshot (reason "live", leak_checked false) has only blocks of kind "unchecked":
 *   its records list them, grouped by stack, biggest first, like any shown kind.
 */
#ifndef LS_REPORT_H
#define LS_REPORT_H

#include "ls_agg.h"
#include "ls_format_read.h"
#include "ls_suppress.h"
#include "ls_symbolize.h"

#include <stdint.h>
#include <stdio.h>

typedef struct ls_report ls_report_t;

/* index = ls_fmt_block_kind_t; suppressed blocks are counted only in suppressed_* */
typedef struct ls_totals {
    uint64_t bytes[5], blocks[5];
    uint64_t suppressed_bytes, suppressed_blocks;
} ls_totals_t;

typedef struct ls_report_opts {
    int show_reachable; /* also list still-reachable records (valgrind --show-reachable) */
    const ls_suppressions_t *supp; /* may be NULL */
    const char *program;           /* JSON "program"; NULL -> snapshot exe */
    int have_exit_status;
    int exit_status; /* JSON "exit_status" override */
    /* Birth window: only blocks born in it are analysed (has_after/has_before unset: all). */
    ls_block_filter_t window;
    const char *born_after_desc, *born_before_desc; /* how the bounds were given (header) */
    const ls_site_rules_t *site_rules;              /* NULL: built-in plumbing only */
} ls_report_opts_t;

/*
 * Analyses snap. sym may be NULL (frames then carry bare PCs); when given it, snap and
 * opts->supp must outlive the report (frames point into the symbolizer's cache). opts may be
 * NULL (defaults). Returns NULL with a message in err only when out of memory.
 */
ls_report_t *ls_report_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                             const ls_report_opts_t *opts, char *err, size_t errlen);
void ls_report_totals(const ls_report_t *r, ls_totals_t *out);
/* Number of shown loss records (the "of N" in "loss record i of N"). */
size_t ls_report_nrecords(const ls_report_t *r);
/* Blocks and bytes suppression k of opts->supp hid. */
void ls_report_supp_hits(const ls_report_t *r, size_t k, uint64_t *blocks, uint64_t *bytes);
/* Write errors are left in out's error indicator for the caller to check. */
void ls_report_write_text(const ls_report_t *r, FILE *out);
/* Returns 0, or -1 when out of memory or the write failed. */
int ls_report_write_json(const ls_report_t *r, FILE *out);
void ls_report_free(ls_report_t *r);

#endif
