/*
 * ls_sites.h - the per-site view of a snapshot, shaped like the kernel's /proc/allocinfo:
 * `leakscope sites` and the sites part of `leakscope diff`.
 *
 * Every snapshot has this view:
 *   - mode sites: the agent's counters (SITES chunk), exact, allocations included;
 *   - mode full: exact live figures from BLOCKS grouped by the first site_frames frames of each
 *     block's stack (default 1, the innermost caller of malloc); allocations unknown (full mode
 *     forgets freed blocks);
 *   - mode sample: estimates (ls_profile.h weighting) grouped the same way; the in-use views
 *     give live_*, the alloc views allocs/bytes when the profile has them. Rounded per site.
 * So two runs of one program, one in mode full and one in mode sites, give the same live figures
 * per site: compare them with `--format json` (rows keyed by module offsets, not raw pcs).
 *
 * Text (--format text), one line per site, the first three columns as /proc/allocinfo:
 *   # leakscope sites: PROGRAM (pid N), trigger T, mode M, F frame(s) per site, counting on|off
 *   # total: B live bytes in N live blocks; A allocations of Y bytes   ("-" when unknown)
 *   #       <size>    <calls> <tag info>
 *           4096          2 file.c:12 [module] func:name allocs:10 alloc_bytes:40960
 *                             <- caller.c:40 [module] func:caller        (site_frames > 1)
 *           4096          2 total allocs:10 alloc_bytes:40960
 * size = live bytes, calls = live blocks (the kernel's "calls" counts live allocations). Figures
 * of a sample profile are estimates, printed "~N"; unknown ones "-". The tag is the innermost
 * frame symbolized (inlined functions resolved to the innermost); without a file, the module and
 * offset ("libx.so+0x1f3"), or the bare pc. "(no stack)" is the site of blocks without a stack
 * (mode sites: the agent's overflow site, when its site table was full).
 *
 * Compile-time tags (include/leakscope/tags.h, format 1.5): a tagged site is printed from its
 * tag, "file.c:12 [module] func:name" (file as the compiler named it, shown by its base name;
 * module: the base name of the object whose range holds the tag), with no symbolization. The
 * agent keeps a site for every registered tag: tags never called (all four figures 0) are left
 * out unless LS_SITES_ALL is given (`leakscope sites --all`; /proc/allocinfo lists them all). One
 * tag seen twice (its module dlclose'd and loaded again: two TAGS records) is one row: tagged
 * sites are grouped by (module base name, file, line, function), which is also how diff matches
 * them across runs.
 *
 * JSON (--format json), version 1; keys may be added, never renamed or removed:
 *   {"version": 1, "program": "..."|null, "pid": N, "trigger": "..."|null, "mode": "sites"|
 *    "full"|"sample", "exact": bool, "site_frames": N, "enabled": bool|null (counting on when
 *    taken; null when the snapshot does not say), "sort": "bytes"|"calls"|"allocs"|"alloc-bytes",
 *    "sites_total": N (rows before --top), "all": bool (LS_SITES_ALL),
 *    "totals": {"live_bytes": N, "live_blocks": N, "allocs": N|null, "bytes": N|null},
 *    "sites": [{"live_bytes": N, "live_blocks": N, "allocs": N|null, "bytes": N|null,
 *               "frames": [{"pc": "0x..", "function": "..."|null, "file": "..."|null (as DWARF
 *                           gives it, absolute when it can), "line": N|null, "object": "..."|null
 *                           (module path), "offset": "0x.."|null (pc - the module's load bias:
 *                           the same in two runs despite ASLR)}],
 *               "tag": {"file": "...", "line": N, "function": "...", "kind": "malloc"|"calloc"|
 *                       "realloc"|"aligned"|"mixed", "module": "..."|null}   (tagged sites only)
 *              }]}
 * "frames" holds the site's frames innermost first (empty for "(no stack)" and for a tagged
 * site, whose one recorded address is the tag object's, not code; "tag" names it instead; kind
 * "mixed" when calls of several kinds on one line share the row). "totals" add up all
 * rows, not only the shown ones. allocs/bytes are null when unknown (full mode, or a sample
 * profile without its alloc views). Rows are sorted descending by the sort key, then live bytes,
 * live blocks, allocs, bytes, then frames.
 */
#ifndef LS_SITES_H
#define LS_SITES_H

#include "ls_format_read.h"
#include "ls_symbolize.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum ls_sites_sort {
    LS_SITES_SORT_BYTES = 0,       /* live bytes (default) */
    LS_SITES_SORT_CALLS = 1,       /* live blocks */
    LS_SITES_SORT_ALLOCS = 2,      /* allocations since the start */
    LS_SITES_SORT_ALLOC_BYTES = 3, /* their bytes */
} ls_sites_sort_t;

/* "bytes", "calls", "allocs", "alloc-bytes" -> the key. Returns 0 or -1. */
int ls_sites_sort_parse(const char *s, ls_sites_sort_t *by);
const char *ls_sites_sort_name(ls_sites_sort_t by);

typedef struct ls_sites_row {
    uint32_t stack;           /* a stack id of the snapshot holding the site's frames; 0 = none */
    uint32_t nframes;         /* the site's frames: pcs[0..nframes) (0 = no stack) */
    const uint64_t *pcs;      /* into the snapshot */
    const ls_snap_tag_t *tag; /* compile-time tag (the first of the group), NULL if untagged */
    const char *module;       /* tagged: base name of the tag's object, NULL when unknown */
    uint16_t kind;            /* tagged: the group's ls_fmt_tag_kind_t, 0 when they differ */
    int64_t live_bytes;       /* rounded estimates in a sample profile */
    int64_t live_blocks;
    int64_t allocs, bytes; /* -1 when unknown */
} ls_sites_row_t;

typedef struct ls_sites {
    const ls_snapshot_t *snap;
    const char *mode;     /* "sites", "full" or "sample" */
    bool exact;           /* false for a sample profile's estimates */
    bool has_allocs;      /* allocs and bytes known */
    unsigned site_frames; /* frames that make a site here */
    int enabled;          /* META sites_enabled, -1 when absent */
    bool all;             /* built with LS_SITES_ALL */
    ls_sites_sort_t sort;
    ls_sites_row_t *rows;
    size_t nrows;
    int64_t live_bytes, live_blocks, allocs, bytes; /* totals of all rows (-1: unknown) */
} ls_sites_t;

/*
 * The site view of snap (which must outlive it). frames: frames per site; 0 = the snapshot's
 * own (META site_frames for mode sites, 1 otherwise). A mode-sites snapshot can be folded to
 * fewer frames than it counted, not more (a tagged site stays one tag). flags: LS_SITES_ALL
 * keeps sites whose figures are all 0 (tags never called). Rows are sorted by live bytes.
 * Returns 0, or -1 with a message in err.
 */
enum { LS_SITES_ALL = 1 };
int ls_sites_build_ex(const ls_snapshot_t *snap, unsigned frames, unsigned flags, ls_sites_t *v,
                      char *err, size_t errlen);
/* ls_sites_build_ex without flags. */
int ls_sites_build(const ls_snapshot_t *snap, unsigned frames, ls_sites_t *v, char *err,
                   size_t errlen);
void ls_sites_free(ls_sites_t *v);
void ls_sites_sort(ls_sites_t *v, ls_sites_sort_t by);

/* The renderers above; top = rows shown (0 = all); sym may be NULL (bare pcs and module
 * offsets). Write errors stay in out's error indicator; json returns -1 when out of memory. */
void ls_sites_write_text(const ls_sites_t *v, ls_symbolizer_t *sym, size_t top, FILE *out);
int ls_sites_write_json(const ls_sites_t *v, ls_symbolizer_t *sym, size_t top, FILE *out);

/*
 * Diff of two site views (`leakscope diff OLD NEW` when either is a mode-sites snapshot; a full
 * or sample snapshot takes part through its derived view). Sites are matched by the module path
 * and offset of each frame (the bare pc outside any module), tagged sites by (module base name,
 * file, line, function), never by raw pc or stack id, so two runs compare. Rows: NEW minus OLD in
 * live bytes and live blocks, sorted by |delta bytes|, then |delta blocks|, then frames; sites that
 * did not change are left out (counted).
 *
 * Text: a header naming both files, then per row
 *   "%+12lld %+9lld %12lld %12lld  TAG" = delta bytes, delta calls, old bytes, new bytes, site
 * and a total line. JSON (version 1): {"version": 1, "old": {"file", "program", "pid", "mode",
 * "exact"}, "new": {...}, "totals": {"old_live_bytes", "old_live_blocks", "new_live_bytes",
 * "new_live_blocks", "delta_live_bytes", "delta_live_blocks"}, "unchanged": N, "sites_total": N,
 * "sites": [{"delta_live_bytes", "delta_live_blocks", "old": {"live_bytes", "live_blocks"}|null,
 * "new": {...}|null, "frames": [frames as above, from NEW when the site is in NEW], "tag": {...}
 * (tagged sites, as above)}]}.
 */
typedef struct ls_sites_diff ls_sites_diff_t;

ls_sites_diff_t *ls_sites_diff_build(const ls_sites_t *old_v, const ls_sites_t *new_v, char *err,
                                     size_t errlen);
void ls_sites_diff_free(ls_sites_diff_t *d);
void ls_sites_diff_write_text(const ls_sites_diff_t *d, const char *old_file, const char *new_file,
                              ls_symbolizer_t *old_sym, ls_symbolizer_t *new_sym, size_t top,
                              FILE *out);
int ls_sites_diff_write_json(const ls_sites_diff_t *d, const char *old_file, const char *new_file,
                             ls_symbolizer_t *old_sym, ls_symbolizer_t *new_sym, size_t top,
                             FILE *out);

#endif
