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
 *
 * Since reference counts (only additions):
 *   "refs": null when the snapshot has no reference counts (no REF_* chunk: the program never
 *   registered an object), else
 *   {"objects_live": N, "leaked_objects": N, "errors": N,
 *    "stats": {"events": N, "events_dropped": N, "event_bytes": N, "objects_dropped": N,
 *              "findings_dropped": N, "pairs_dropped": N, "events_compacted": N,
 *              "quarantine_evicted": N, "pairs_learned": N},
 *    "leaks": [{"type": "...", "objects": N, "references": N, "verdict": "...",
 *               "message": "...", "function": "F"|null, "culprit": "G"|null,
 *               "paired_by": "tracker"|"inference", "incomplete": bool,
 *               "get_site": frame, "get_stack": [frames], "create_stack": [frames],
 *               "examples": [{"addr": "0x..", "count": N, "events": N}]}],
 *    "findings": [{"kind": "double_put"|"use_after_put"|"destroy_unregistered"|"unregistered"|
 *                  "bad_tracker"|"freed_referenced", "type": "..."|null, "count": N,
 *                  "op": "get"|"put"|"destroy"|"free"|"create", "addr": "0x..", "tid": N,
 *                  "stack": [frames], "other_stack": [frames]|null, "other_tid": N|null,
 *                  "create_stack": [frames]|null,
 *                  "history": [{"op": "...", "tid": N, "tracker": N|null, "site": frame}]}]}
 *   objects_live: registered objects alive when the snapshot was taken; leaked_objects: those
 *   holding references (count > 0: leaks at exit, outstanding references in a live snapshot);
 *   errors: reference errors, every occurrence (the findings' counts added up). "stats" are
 *   the agent's counters (0 when absent; ls_format.h LS_STAT_REF_*), pairs_learned the released
 *   references whose (get, put) pair the agent learned. Frames as in "stack"; every refs stack
 *   starts at its event's site: plumbing (as for "site"), the public API's inline ls_ref_*
 *   functions and reference wrappers (a function every event of one op on one type goes
 *   through, from several callers, like obj_get) are left out.
 *   "leaks": the references nothing dropped, grouped by (type, get stack, verdict, paired_by),
 *   most references first, then most objects, then type name, then stack. "references" counts
 *   them, "objects" the objects holding them. verdict / message:
 *     "no_put_in_caller"  "get in funcA reached from funcB has no put": references taken in
 *                         funcA are released by its caller (learned from released objects);
 *                         funcB, the culprit, did not;
 *     "no_put"            "get in F has no put": F itself should have dropped it (learned, or
 *                         exact by tracker);
 *     "extra_get"         "extra get in F": F's references were never seen released;
 *     "unpaired_create"   "reference from creation in F has no put";
 *     "unrecorded"        the count holds references whose gets were not recorded (bounds):
 *                         function, culprit null, get_stack empty.
 *   function: the get site's function; culprit: the function that should have dropped it.
 *   paired_by "tracker": exact (ls_ref_get_tracked); "inference": from the stacks and what the
 *   agent learned. incomplete: a history in the group lost events (dropped or compacted).
 *   get_site: the first frame of get_stack ({"pc": "0x0", "unresolved": "no stack"} without
 *   one). create_stack: the first object's creation. examples: up to 5 objects by address, with
 *   the agent's count and the events recorded.
 *   "findings": errors as the agent saw them, equal ones folded ("count"), by kind in the order
 *   above, then count descending, then stack. op: the offending operation, stack its stack;
 *   other_stack: for a double put the put that took the count to zero, for a use after put the
 *   operation that ended the object, else null; history: the object's events (oldest first)
 *   when the first occurrence happened, each with its site. type and create_stack are null for
 *   objects never registered.
 *
 * Since fault injection (only additions):
 *   "faults": null without fault injection (no META fail), else the object ls_fail_report.h
 *   describes: {"calls", "injected", "unrecorded", "rules": [{"rule", "spec", "injected",
 *   "stacks": [{"count", "first_ns", "stack_id", "stack": [frames]}]}]}. The text report ends
 *   with the same section ("injected N allocation failures (M matching calls)", per rule).
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
/* Reference counts (ls_refs_report.h); empty when the snapshot has no REF_* chunks. */
struct ls_refs;
const struct ls_refs *ls_report_refs(const ls_report_t *r);
/* Objects still holding references plus reference errors: what run --error-exitcode counts
 * besides lost bytes. */
uint64_t ls_report_refs_problems(const ls_report_t *r);
/* Blocks and bytes suppression k of opts->supp hid. */
void ls_report_supp_hits(const ls_report_t *r, size_t k, uint64_t *blocks, uint64_t *bytes);
/* Write errors are left in out's error indicator for the caller to check. */
void ls_report_write_text(const ls_report_t *r, FILE *out);
/* Returns 0, or -1 when out of memory or the write failed. */
int ls_report_write_json(const ls_report_t *r, FILE *out);
void ls_report_free(ls_report_t *r);

#endif
