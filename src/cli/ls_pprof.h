/*
 * ls_pprof.h - pprof profiles: profile.proto (src/cli/profile.proto, encoded by protobuf-c),
 * gzip-compressed (zlib), what Go's pprof tool, Pyroscope and Parca read.
 *
 * A builder collects one or more weighted profiles (ls_profile.h), each with the snapshot it
 * came from and a sign: +1 for a profile, -1 for the base of a diff (NEW minus OLD, as
 * `pprof -base` computes it). What it writes, and why:
 *   - sample_type: alloc_objects/count, alloc_space/bytes, inuse_objects/count,
 *     inuse_space/bytes (Go's heap-profile order), or only the inuse pair when the profile has
 *     no allocation views (full mode: ls_profile.h); period_type space/bytes, period the sample
 *     rate (1 for exact profiles); default_sample_type the caller's choice.
 *   - mapping: the executable PT_LOAD segments of every recorded object but the agent, as
 *     /proc/PID/maps shows them (page-aligned start, limit and file offset, read from the ELF
 *     file when its build-id matches), so pprof can symbolize again from the binaries
 *     (-symbolize=force); when the file is unreadable, one mapping over the object's range with
 *     offset 0. filename, build_id (hex); has_functions/has_filenames/has_line_numbers/
 *     has_inline_frames are set on a mapping once one of its locations got a function, file,
 *     line. The main program's mapping comes first (pprof names the profile after mapping 0).
 *   - location: one per distinct address, address = return address - 1, i.e. inside the call
 *     instruction, as Go's runtime writes its heap profiles (runtime.Frame.PC), so that
 *     re-symbolizing the address gives the call's line; its lines are the symbolizer's frames
 *     for it: inlined functions first, the function they were inlined into last. Frames inside
 *     the agent are left out (as in every leakscope stack).
 *   - function: one per distinct (name, file); name and system_name are the demangled name.
 *   - sample: one per distinct location list, values the rounded estimates (ls_prof_round) per
 *     stack times the sign, added up. Samples whose values are all 0 are left out; in a diff a
 *     value may be negative.
 *   Locations of a later profile from the same object (same path, build-id, segment) are rebased
 *   onto the first profile's mapping, as pprof's own merge does, so two runs of one program
 *   share locations and a diff's samples cancel where nothing changed.
 */
#ifndef LS_PPROF_H
#define LS_PPROF_H

#include "ls_profile.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ls_pprof ls_pprof_t;

/* with_alloc: the four sample types, else the inuse pair. Returns NULL when out of memory. */
ls_pprof_t *ls_pprof_new(bool with_alloc, int64_t period, ls_prof_value_t default_type);
void ls_pprof_free(ls_pprof_t *b);

/* Adds p, built from snap, with values times sign (+1 or -1). sym may be NULL (locations
 * without lines). snap and sym are only used during the call. Returns 0, or -1 with a message
 * in err (out of memory). */
int ls_pprof_add(ls_pprof_t *b, const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                 const ls_profile_t *p, int sign, char *err, size_t errlen);

/* time_nanos (ns since the Unix epoch) and duration_nanos. */
void ls_pprof_set_time(ls_pprof_t *b, int64_t time_nanos, int64_t duration_nanos);
/* A free-form comment line. Returns 0 or -1 (out of memory). */
int ls_pprof_add_comment(ls_pprof_t *b, const char *text);

/* When snap was taken, ns since the Unix epoch (0 when the snapshot does not say), and how long
 * the agent had been running: pprof's time_nanos and duration_nanos for a profile of it. */
void ls_pprof_snapshot_time(const ls_snapshot_t *snap, int64_t *time_nanos,
                            int64_t *duration_nanos);

/* The gzip-compressed profile in a malloc'd buffer. Returns 0, or -1 with a message in err. */
int ls_pprof_encode(ls_pprof_t *b, unsigned char **out, size_t *len, char *err, size_t errlen);
/* ls_pprof_encode, written to out. Returns 0, or -1 with a message in err. */
int ls_pprof_write(ls_pprof_t *b, FILE *out, char *err, size_t errlen);

/* The whole path for one snapshot (report --format pprof): a profile of p built from snap, with
 * default_type, time and a comment naming the program. Returns 0 or -1 (message in err). */
int ls_pprof_write_profile(const ls_snapshot_t *snap, ls_symbolizer_t *sym, const ls_profile_t *p,
                           ls_prof_value_t default_type, FILE *out, char *err, size_t errlen);

#endif
