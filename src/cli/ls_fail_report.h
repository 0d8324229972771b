/*
 * ls_fail_report.h - the injected allocation failures of a snapshot (fault injection: FAULTS,
 * META fail, STATS fail_*), as a section of `leakscope report` and `leakscope run`.
 *
 * Text:
 *   injected N allocation failures (M matching calls)
 *     rule 1: SPEC: K failures
 *       K failures at:                              (per distinct stack, most first)
 *         at 0x...: function (file.c:12) [module+0xOFF]
 * [module+0xOFF] is the frame's return address in its object, the form --fail takes back.
 *
 * JSON (the report's "faults" key; null when the snapshot has no fault injection):
 *   {"calls": M, "injected": N, "unrecorded": U,
 *    "rules": [{"rule": 1, "spec": "...", "injected": K,
 *               "stacks": [{"count": K, "first_ns": T, "stack_id": S, "stack": [frames]}]}]}
 *   calls: calls that matched a rule; injected: of those, made to fail; unrecorded: failures
 *   whose stack the agent's table had no room for (counted in injected, in no rule's stacks).
 *   A rule's injected adds up its stacks. first_ns: the first failure there, ns since the agent
 *   started. Frames as in the leak report's "stack".
 */
#ifndef LS_FAIL_REPORT_H
#define LS_FAIL_REPORT_H

#include "ls_format_read.h"
#include "ls_output.h"
#include "ls_symbolize.h"

#include <cJSON.h>
#include <stdio.h>

typedef struct ls_faults ls_faults_t;

/* The failures of snap, symbolized (sym may be NULL: bare pcs). *out is NULL when the snapshot
 * has no fault injection (no META fail). Returns 0, or -1 when out of memory. sym and snap
 * must outlive it. */
int ls_faults_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym, ls_faults_t **out);
void ls_faults_free(ls_faults_t *f);
/* Failures injected (0 for NULL). */
uint64_t ls_faults_injected(const ls_faults_t *f);
/* The text section, after a blank line; nothing for NULL. */
void ls_faults_write_text(const ls_faults_t *f, FILE *out);
/* The JSON object (JSON null for f NULL); NULL when out of memory (c->oom set). */
cJSON *ls_faults_json(const ls_faults_t *f, ls_jctx_t *c);

#endif
