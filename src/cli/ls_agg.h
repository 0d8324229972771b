/*
 * ls_agg.h - aggregation of a snapshot into per-stack and per-site rows (bytes, blocks) that can
 * be compared across snapshots, and processes.
 *
 * Input is mode-agnostic: "weighted stacks" {stack id, bytes, blocks}. A full-mode snapshot's
 * blocks give them (ls_agg_weigh_blocks, optionally restricted to a birth window and to kinds);
 * sampled profiles and per-site counters will give them too and reuse everything below.
 *
 * Keys. Each symbolized frame gets a key: object + function + file + line, or object + offset
 * when the frame has no symbol, or the bare pc when it lies in no recorded module. Keys are
 * interned in an ls_keys_t shared by the aggregations being compared, so the same key id means
 * the same code in any snapshot of any process (ASLR moves pcs, not keys). A stack key is the
 * sequence of its (expanded, inlined-included) frames' keys; frames inside the agent are left out.
 * The keys table keeps a copy of the first frame seen for each key (strings owned by the table),
 * so rows can be rendered after their snapshot and symbolizer are gone.
 *
 * Sites. A stack's site is its first frame that is not allocator plumbing: frames whose object is
 * libleakscope.so, libc.so.*, libstdc++.so.*, ld-linux*, libgcc_s* are skipped (the caller of
 * strdup or operator new is the site), and so are frames whose function matches one of the
 * caller's globs (fnmatch(3) on the whole demangled name: --site-skip xmalloc). A stack made of
 * plumbing only has its first frame as site; a block without a stack has the "no stack" site,
 * key 0.
 *
 * Cost: O(blocks log stacks) to weigh, O(frames) symbolizer lookups (cached per pc) plus
 * O(stacks log stacks) to fold.
 */
#ifndef LS_AGG_H
#define LS_AGG_H

#include "ls_format_read.h"
#include "ls_output.h"
#include "ls_symbolize.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- frames of a stack --------------------------------------------------------------------- */

/* The stack's frames, symbolized and expanded (inlined frames included, agent frames left out),
 * innermost first, in a malloc'd array; strings stay in the symbolizer. sym may be NULL (bare
 * pcs). A missing stack gives 0 frames. Returns 0, or -1 when out of memory. */
int ls_stack_expand(const ls_snapshot_t *snap, ls_symbolizer_t *sym, uint32_t stack_id,
                    ls_sym_frame_t **out, size_t *nout);

/* ---- sites --------------------------------------------------------------------------------- */

typedef struct ls_site_rules {
    const char *const *skip; /* fnmatch globs on function names */
    size_t nskip;
} ls_site_rules_t;

/* True when f is allocator plumbing under rules (may be NULL: built-in objects only). */
bool ls_frame_is_plumbing(const ls_sym_frame_t *f, const ls_site_rules_t *rules);
/* Index of the site frame in f[0..n); 0 when every frame is plumbing (and when n == 0). */
size_t ls_site_index(const ls_sym_frame_t *f, size_t n, const ls_site_rules_t *rules);
/* JSON site object: the frame, or {"pc": "0x0", "unresolved": "no stack"} when f is NULL. */
cJSON *ls_json_site(ls_jctx_t *c, const ls_sym_frame_t *f);
/* Writes the JSON site object of f (NULL: no stack) into a stream, through the frame cache. */
void ls_jstream_site(ls_jstream_t *s, ls_jframes_t *fc, const ls_sym_frame_t *f);
/* Text label of a site (ls_frame_label, or "(no stack)"). */
void ls_site_label(const ls_sym_frame_t *f, char *buf, size_t len);

/* ---- birth window and kinds ---------------------------------------------------------------- */

typedef struct ls_block_filter {
    bool has_after, has_before;
    uint64_t born_after_ns;  /* inclusive: birth_ns >= born_after_ns */
    uint64_t born_before_ns; /* exclusive: birth_ns < born_before_ns */
    unsigned kinds;          /* bit (1u << kind) per ls_fmt_block_kind_t accepted; 0 = all */
} ls_block_filter_t;

bool ls_block_passes(const ls_fmt_block_t *b, const ls_block_filter_t *f); /* f NULL: true */

/*
 * Resolves a window bound as given to --born-after / --born-before into ns since the agent
 * started (the birth_ns clock):
 *   - a marker label (the first marker with exactly that label), else
 *   - "#N": the marker with seq N, else
 *   - a TIME: seconds since the process started, "12.5", "12.5s", "800ms", or, with a leading
 *     '-', that long before the snapshot was taken ("-30s"; clamped at 0).
 * Writes a description ("marker 'round1-start' (3.20 s)", "12.50 s") to desc. Returns 0, or -1
 * with a message in err (an unknown marker lists the snapshot's markers).
 */
int ls_window_bound(const ls_snapshot_t *snap, const char *spec, uint64_t *ns, char *desc,
                    size_t desclen, char *err, size_t errlen);

/* Parses a duration ("12.5", "12.5s", "800ms"; no sign) into ns. Returns 0 or -1. */
int ls_parse_duration(const char *s, uint64_t *ns);

/* ---- keys ---------------------------------------------------------------------------------- */

typedef struct ls_keys ls_keys_t;

ls_keys_t *ls_keys_new(void);
void ls_keys_free(ls_keys_t *k);
/* The frame recorded for a frame key (a copy of the first frame seen); NULL for key 0. */
const ls_sym_frame_t *ls_keys_frame(const ls_keys_t *k, uint32_t frame_key);
/* The key's text (total order for deterministic tie-breaks); "" for key 0. */
const char *ls_keys_text(const ls_keys_t *k, uint32_t frame_key);
/* Frame keys of a stack key, innermost first; returns their count (0 for key 0). */
size_t ls_keys_stack(const ls_keys_t *k, uint32_t stack_key, const uint32_t **frame_keys);
/* Frames of a stack key, copied into a malloc'd array. Returns 0 or -1 (out of memory). */
int ls_keys_stack_frames(const ls_keys_t *k, uint32_t stack_key, ls_sym_frame_t **out, size_t *n);
/* Orders frame keys / stack keys by text (strcmp-like), for deterministic output. */
int ls_keys_cmp_frame(const ls_keys_t *k, uint32_t a, uint32_t b);
int ls_keys_cmp_stack(const ls_keys_t *k, uint32_t a, uint32_t b);

/* ---- aggregation --------------------------------------------------------------------------- */

typedef struct ls_wstack {
    uint32_t stack; /* the snapshot's stack id; 0 = no stack */
    uint64_t bytes, blocks;
} ls_wstack_t;

/* Weighted stacks of snap's blocks that pass f (NULL: all), one per stack id, sorted by id.
 * *out is malloc'd. Returns 0 or -1 (out of memory). */
int ls_agg_weigh_blocks(const ls_snapshot_t *snap, const ls_block_filter_t *f, ls_wstack_t **out,
                        size_t *n);

typedef struct ls_agg_stack {
    uint32_t key;      /* stack key */
    uint32_t site;     /* site key (a frame key; 0 = no stack) */
    uint32_t stack_id; /* the snapshot's id (the smallest of those folded under this key) */
    uint64_t bytes, blocks;
} ls_agg_stack_t;

typedef struct ls_agg_site {
    uint32_t key; /* frame key of the site; 0 = no stack */
    uint32_t nstacks;
    uint64_t bytes, blocks;
} ls_agg_site_t;

typedef struct ls_agg {
    ls_agg_stack_t *stacks; /* sorted by key */
    size_t nstacks;
    ls_agg_site_t *sites; /* sorted by key */
    size_t nsites;
    uint64_t bytes, blocks; /* totals */
} ls_agg_t;

/*
 * Folds ws[0..n) of snap into rows, with keys interned in keys and sites chosen under rules
 * (NULL: built-in plumbing only). sym may be NULL (bare pcs). The result references only keys:
 * snap and sym may be freed after. Returns NULL with a message in err when out of memory.
 */
ls_agg_t *ls_agg_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym, ls_keys_t *keys,
                       const ls_site_rules_t *rules, const ls_wstack_t *ws, size_t n, char *err,
                       size_t errlen);
void ls_agg_free(ls_agg_t *a);
const ls_agg_site_t *ls_agg_find_site(const ls_agg_t *a, uint32_t site_key);
const ls_agg_stack_t *ls_agg_find_stack(const ls_agg_t *a, uint32_t stack_key);

#endif
