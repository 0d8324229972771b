/*
 * ls_output.h - output pieces shared by the CLI's renderers (report, diff, suspects, watch):
 * the atomic output file behind -o, number formatting, frame rendering in text and JSON, and the
 * cJSON helpers that collect allocation failures in one flag.
 */
#ifndef LS_OUTPUT_H
#define LS_OUTPUT_H

#include "ls_symbolize.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

/* ---- output file ------------------------------------------------------------------------- */

/* -o OUT: written to a temporary file beside OUT, renamed over it when complete, so a reader of
 * OUT never sees half an output and a failed run leaves an older OUT untouched. */
typedef struct ls_out {
    FILE *f;
    char *tmp;   /* temporary path when writing to a file, else NULL (stdout) */
    int special; /* writing in place into a non-regular file */
} ls_out_t;

/* Does path exist as something other than a regular file (/dev/null, a FIFO, a terminal)?
 * Such a target is written in place, never replaced by a rename. */
bool ls_out_is_special(const char *path);

/* path NULL or "-": stdout. Returns 0, or -1 after a message on stderr prefixed by cmd. */
int ls_out_open(ls_out_t *o, const char *path, const char *cmd);
/* Flushes, checks, renames into place; ok = 0 discards the output. Returns 0 or -1 (message on
 * stderr when ok). */
int ls_out_close(ls_out_t *o, const char *path, int ok, const char *cmd);

/* ---- command lines ----------------------------------------------------------------------- */

/* Formats a message into err (when err is not NULL and errlen > 0). */
void ls_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "CMD: message" and "Try 'CMD --help'." on stderr; returns 2 (the usage-error status). */
int ls_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* getopt_long (with a leading ':' in its optstring) returned c for the option text opt that no
 * case took: a missing argument (':') or an unknown option. Prints it; returns 2. */
int ls_option_error(const char *cmd, int c, const char *opt);
/* Adds one --site-skip GLOB to skip[*n] (at most max). Returns 0, or the usage error's 2. */
int ls_site_skip_add(const char *cmd, const char **skip, size_t *n, size_t max, const char *glob);
/* A decimal integer <= max, nothing else. Returns 0 or -1. */
int ls_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* A byte count: an integer with an optional binary suffix k/K/KiB, M/MiB, G/GiB. 0 or -1. */
int ls_parse_size(const char *s, uint64_t *out);
/* "text" -> 0, "json" -> 1, else -1. */
int ls_parse_format(const char *s);

/* ---- numbers ----------------------------------------------------------------------------- */

/* n with thousands separators, as valgrind prints sizes ("1,048,576"); returns buf. */
const char *ls_commas(uint64_t n, char buf[32]);
/* Signed, with an explicit sign for non-zero values ("+4,096", "-16", "0"); returns buf. */
const char *ls_scommas(int64_t n, char buf[32]);
/* Size with a binary unit for tables ("512 B", "4.0 KiB", "1.5 MiB"); returns buf. */
const char *ls_human_bytes(uint64_t n, char buf[32]);
/* Signed human size ("+4.0 KiB", "-512 B", "0 B"); returns buf. */
const char *ls_human_sbytes(int64_t n, char buf[32]);

/* ---- frames ------------------------------------------------------------------------------ */

const char *ls_base_name(const char *path);
/* "func (file.c:12)", "func (in /lib/x.so)", "??? (in /lib/x.so+0x1234)", "???": what a frame
 * says without its pc. */
void ls_frame_label(const ls_sym_frame_t *f, char *buf, size_t len);
/* One valgrind-style stack line: "    at 0x401136: make_node (t.c:12)" ("by" unless first). */
void ls_text_frame(FILE *out, const ls_sym_frame_t *f, int first);
/* The same indented by indent spaces; with_offset adds " [module+0xOFF]" to a frame that is not
 * inlined (the form run --fail takes back). */
void ls_text_frame_in(FILE *out, const ls_sym_frame_t *f, int first, int indent, bool with_offset);

/* ---- JSON -------------------------------------------------------------------------------- */

/* cJSON's Add* helpers return NULL on failure; one flag collects them all. */
typedef struct ls_jctx {
    int oom;
} ls_jctx_t;

void ls_jnum(ls_jctx_t *c, cJSON *o, const char *k, double v);
void ls_jstr(ls_jctx_t *c, cJSON *o, const char *k, const char *v); /* v NULL -> null */
void ls_jhex(ls_jctx_t *c, cJSON *o, const char *k, uint64_t v);    /* "0x1f" */
void ls_jbool(ls_jctx_t *c, cJSON *o, const char *k, int v);
void ls_jnull(ls_jctx_t *c, cJSON *o, const char *k);
cJSON *ls_jobj(ls_jctx_t *c, cJSON *parent, const char *k);
cJSON *ls_jarr(ls_jctx_t *c, cJSON *parent, const char *k);
/* Appends item (may be NULL: counted as out of memory) to arr; deletes it on failure. */
void ls_jpush(ls_jctx_t *c, cJSON *arr, cJSON *item);
/* Sets o[k] = item (may be NULL: counted as out of memory); deletes item on failure. */
void ls_jput(ls_jctx_t *c, cJSON *o, const char *k, cJSON *item);
/* A new object appended to arr, or NULL (oom flagged). */
cJSON *ls_jpush_obj(ls_jctx_t *c, cJSON *arr);
/* {"bytes": N, "blocks": N} under k. */
void ls_jsize(ls_jctx_t *c, cJSON *parent, const char *k, uint64_t bytes, uint64_t blocks);
/* The report contract's frame object (see ls_report.h); NULL when out of memory. */
cJSON *ls_json_frame(ls_jctx_t *c, const ls_sym_frame_t *f);
/* frames[0..n) as an array under k. */
void ls_json_frames(ls_jctx_t *c, cJSON *parent, const char *k, const ls_sym_frame_t *f, size_t n);
/*
 * Streams {HEAD..., "key": [ITEM, ...], TAIL...} without holding every item in memory: a report
 * of a big live snapshot has 100k records of ~20 frames, tens of millions of cJSON nodes as one
 * tree. HEAD and TAIL are printed pretty; each item compactly on a line of its own, and freed.
 */
typedef struct ls_jstream {
    FILE *out;
    ls_jctx_t *c;
    size_t n;
    int err;
} ls_jstream_t;

/* Frames' compact JSON text (ls_json_frame's, printed once per distinct frame): a report of
 * 100k stacks meets a few thousand distinct frames a million times. Keyed by the frame's
 * content with its strings by address, which interned strings make stable. */
typedef struct ls_jframes ls_jframes_t;

ls_jframes_t *ls_jframes_new(void);
void ls_jframes_free(ls_jframes_t *fc);
/* The frame's JSON text (owned by the cache), or NULL when out of memory. */
const char *ls_jframes_text(ls_jframes_t *fc, const ls_sym_frame_t *f);

/* Prints head (consumed) and opens the array key. */
void ls_jstream_begin(ls_jstream_t *s, ls_jctx_t *c, FILE *out, cJSON *head, const char *key);
/* Appends item (consumed; NULL counts as out of memory). */
void ls_jstream_item(ls_jstream_t *s, cJSON *item);
/* For items written by hand: starts one (separator and indent) and returns the stream to
 * write its compact JSON to; ls_jstream_raw_end finishes it. */
FILE *ls_jstream_raw_begin(ls_jstream_t *s);
void ls_jstream_raw_end(ls_jstream_t *s);
/* Writes "[f0,f1,...]" for frames[0..n) through the cache (oom flagged in s->c). */
void ls_jstream_frames(ls_jstream_t *s, ls_jframes_t *fc, const ls_sym_frame_t *f, size_t n);
/* Writes one frame through the cache. */
void ls_jstream_frame(ls_jstream_t *s, ls_jframes_t *fc, const ls_sym_frame_t *f);
/* Closes the array, prints tail's members (consumed; may be NULL) and the final brace. Returns
 * 0, or -1 when anything ran out of memory (c->oom) or a write failed. */
int ls_jstream_end(ls_jstream_t *s, cJSON *tail);

#endif
