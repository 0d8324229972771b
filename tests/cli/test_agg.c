/*
 * test_agg.c - ls_agg and the birth window: TIME parsing, marker lookup (labels, #N, errors that
 * list the markers), born-window filtering with exact boundaries (after inclusive, before
 * exclusive), plumbing frames and --site-skip, sites of real symbolized stacks (the caller of a
 * libc function is the site), keys that match across two "processes" whose addresses differ,
 * folding, and the report's window header, "window", "markers" and per-record "site".
 */
#define _GNU_SOURCE
#include "ls_agg.h"
#include "ls_report.h"
#include "sym_target.h"
#include "tcheck.h"
#include "tsnap.h"

#include <cJSON.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/ls-test-agg.XXXXXX";
static tsnap_module_t mods[64];
static size_t nmods;
static uintptr_t pc_plain, pc_outer, pc_supp, pc_libc;

#define SEC 1000000000ull

static void load(const char *name, const tsnap_t *t, ls_snapshot_t *snap)
{
    char path[300], err[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK(tsnap_write(path, t) == 0);
    int rc = ls_snapshot_load(path, snap, err, sizeof(err));
    if (rc) fprintf(stderr, "load %s: %s\n", path, err);
    CHECK(rc == 0);
    unlink(path);
}

static void test_parse_duration(void)
{
    uint64_t ns = 0;
    CHECK(ls_parse_duration("12.5", &ns) == 0 && ns == 12500000000ull);
    CHECK(ls_parse_duration("12.5s", &ns) == 0 && ns == 12500000000ull);
    CHECK(ls_parse_duration("800ms", &ns) == 0 && ns == 800000000ull);
    CHECK(ls_parse_duration("0", &ns) == 0 && ns == 0);
    CHECK(ls_parse_duration(".25", &ns) == 0 && ns == 250000000ull);
    CHECK(ls_parse_duration("3.", &ns) == 0 && ns == 3 * SEC);
    CHECK(ls_parse_duration("0.000000001", &ns) == 0 && ns == 1);
    CHECK(ls_parse_duration("1.5ms", &ns) == 0 && ns == 1500000);
    CHECK(ls_parse_duration("0.1", &ns) == 0 && ns == 100000000ull); /* exact, no binary fp */
    const char *bad[] = {"",
                         "s",
                         "ms",
                         ".",
                         "12x",
                         "1e3",
                         "-1",
                         "+1",
                         "inf",
                         "nan",
                         "12.5.3",
                         " 1",
                         "1 ",
                         "0x10",
                         "12 s",
                         "5m",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = ls_parse_duration(bad[i], &ns);
        if (rc == 0) fprintf(stderr, "  accepted '%s'\n", bad[i]);
        CHECK(rc == -1);
    }
}

static const tsnap_marker_t marks[] = {
    {3200000000ull, 0, 1, "round1-start"},
    {9810000000ull, 0, 2, "round1-end"},
    {12000000000ull, 0, 3, "round1-end"}, /* a label used twice: the first one counts */
    {13000000000ull, 0, 4, "7s"},         /* a label that looks like a time: the label wins */
};

static void test_window_bound(void)
{
    ls_snapshot_t s;
    tsnap_t t = {.pid = 1,
                 .reason = LS_REASON_LIVE,
                 .snap_ns = 15020000000ull,
                 .markers = marks,
                 .nmarkers = 4};
    load("w.lsnap", &t, &s);
    uint64_t ns;
    char desc[256], err[4096];
    CHECK(ls_window_bound(&s, "round1-start", &ns, desc, sizeof(desc), err, sizeof(err)) == 0);
    CHECK_U(ns, 3200000000ull);
    CHECK_STR(desc, "marker 'round1-start' (3.20 s)");
    CHECK(ls_window_bound(&s, "round1-end", &ns, desc, sizeof(desc), err, sizeof(err)) == 0);
    CHECK_U(ns, 9810000000ull);
    CHECK(ls_window_bound(&s, "#3", &ns, desc, sizeof(desc), err, sizeof(err)) == 0);
    CHECK_U(ns, 12000000000ull);
    CHECK(ls_window_bound(&s, "7s", &ns, desc, sizeof(desc), err, sizeof(err)) == 0);
    CHECK_U(ns, 13000000000ull);
    CHECK(ls_window_bound(&s, "8s", &ns, desc, sizeof(desc), err, sizeof(err)) == 0);
    CHECK_U(ns, 8 * SEC);
    CHECK_STR(desc, "8.00 s");
    CHECK(ls_window_bound(&s, "-30s", &ns, desc, sizeof(desc), err, sizeof(err)) == 0);
    CHECK_U(ns, 0); /* clamped: the snapshot is 15 s old */
    CHECK(ls_window_bound(&s, "-5s", &ns, desc, sizeof(desc), err, sizeof(err)) == 0);
    CHECK_U(ns, 10020000000ull);
    CHECK(ls_window_bound(&s, "-250ms", &ns, desc, sizeof(desc), err, sizeof(err)) == 0);
    CHECK_U(ns, 14770000000ull);

    CHECK(ls_window_bound(&s, "round2-start", &ns, desc, sizeof(desc), err, sizeof(err)) == -1);
    CHECK(strstr(err, "no marker 'round2-start'") != NULL);
    CHECK(strstr(err, "'round1-start' (#1, 3.20 s), 'round1-end' (#2, 9.81 s)") != NULL);
    CHECK(ls_window_bound(&s, "#9", &ns, desc, sizeof(desc), err, sizeof(err)) == -1);
    CHECK(strstr(err, "no marker #9; markers: 'round1-start'") != NULL);
    ls_snapshot_free(&s);

    t.nmarkers = 0;
    load("w.lsnap", &t, &s);
    CHECK(ls_window_bound(&s, "go", &ns, desc, sizeof(desc), err, sizeof(err)) == -1);
    CHECK(strstr(err, "the snapshot has no markers") != NULL);
    ls_snapshot_free(&s);
}

/* Blocks born around a marker at exactly T: after is inclusive, before exclusive. */
static void test_window_boundaries(void)
{
    const uint64_t T1 = 5 * SEC, T2 = 9 * SEC;
    static uint64_t s1[] = {0x1000}, s2[] = {0x2000};
    tsnap_stack_t st[] = {{1, 1, s1}, {2, 1, s2}};
    ls_fmt_block_t b[] = {
        tsnap_block_born(0x10, 1, 1, LS_KIND_UNCHECKED, T1 - 1), /* before the window */
        tsnap_block_born(0x20, 2, 1, LS_KIND_UNCHECKED, T1),     /* first ns inside */
        tsnap_block_born(0x30, 4, 2, LS_KIND_UNCHECKED, T1 + 1),
        tsnap_block_born(0x40, 8, 2, LS_KIND_UNCHECKED, T2 - 1),  /* last ns inside */
        tsnap_block_born(0x50, 16, 1, LS_KIND_UNCHECKED, T2),     /* born at the end marker */
        tsnap_block_born(0x60, 32, 0, LS_KIND_UNCHECKED, T2 + 1), /* no stack, after */
    };
    tsnap_marker_t m[] = {{T1, 0, 1, "start"}, {T2, 0, 2, "end"}};
    tsnap_t t = {.pid = 2,
                 .reason = LS_REASON_LIVE,
                 .snap_ns = 10 * SEC,
                 .stacks = st,
                 .nstacks = 2,
                 .blocks = b,
                 .nblocks = 6,
                 .markers = m,
                 .nmarkers = 2};
    ls_snapshot_t s;
    load("b.lsnap", &t, &s);

    ls_block_filter_t f = {0};
    char desc[64], err[512];
    CHECK(ls_window_bound(&s, "start", &f.born_after_ns, desc, sizeof(desc), err, 512) == 0);
    CHECK(ls_window_bound(&s, "end", &f.born_before_ns, desc, sizeof(desc), err, 512) == 0);
    f.has_after = f.has_before = true;
    ls_wstack_t *ws;
    size_t n;
    CHECK(ls_agg_weigh_blocks(&s, &f, &ws, &n) == 0);
    CHECK_U(n, 2);
    CHECK(n == 2 && ws[0].stack == 1 && ws[0].bytes == 2 && ws[0].blocks == 1);
    CHECK(n == 2 && ws[1].stack == 2 && ws[1].bytes == 12 && ws[1].blocks == 2);
    free(ws);
    /* only after: T1 .. end, the no-stack block first (id 0) */
    f.has_before = false;
    CHECK(ls_agg_weigh_blocks(&s, &f, &ws, &n) == 0);
    CHECK_U(n, 3);
    CHECK(n == 3 && ws[0].stack == 0 && ws[0].bytes == 32);
    CHECK(n == 3 && ws[1].stack == 1 && ws[1].bytes == 18);
    free(ws);
    /* only before */
    f.has_after = false;
    f.has_before = true;
    CHECK(ls_agg_weigh_blocks(&s, &f, &ws, &n) == 0);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += ws[i].bytes;
    CHECK_U(total, 1 + 2 + 4 + 8);
    free(ws);
    /* kinds */
    ls_block_filter_t k = {.kinds = 1u << LS_KIND_DEFINITELY};
    CHECK(ls_agg_weigh_blocks(&s, &k, &ws, &n) == 0);
    CHECK_U(n, 0);
    free(ws);

    /* The report restricted to the window: header, totals, JSON window and markers. */
    ls_report_opts_t o = {0};
    o.window.has_after = o.window.has_before = true;
    o.window.born_after_ns = T1;
    o.window.born_before_ns = T2;
    o.born_after_desc = "marker 'start' (5.00 s)";
    o.born_before_desc = "marker 'end' (9.00 s)";
    ls_report_t *r = ls_report_build(&s, NULL, &o, err, sizeof(err));
    CHECK(r != NULL);
    ls_totals_t tt;
    ls_report_totals(r, &tt);
    CHECK_U(tt.bytes[LS_KIND_UNCHECKED], 14);
    CHECK_U(tt.blocks[LS_KIND_UNCHECKED], 3);
    CHECK_U(ls_report_nrecords(r), 2);
    char *txt = NULL, *js = NULL;
    size_t len;
    FILE *mf = open_memstream(&txt, &len);
    ls_report_write_text(r, mf);
    fclose(mf);
    CHECK(strstr(txt, "allocated between marker 'start' (5.00 s) and marker 'end' (9.00 s), still "
                      "alive at 10.00 s: 14 bytes in 3 blocks\n") != NULL);
    CHECK(strstr(txt, "12 bytes in 2 blocks are live (not leak-checked) in loss record 1 of 2\n") !=
          NULL);
    mf = open_memstream(&js, &len);
    CHECK(ls_report_write_json(r, mf) == 0);
    fclose(mf);
    cJSON *root = cJSON_Parse(js);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "window");
    CHECK(cJSON_GetObjectItemCaseSensitive(w, "born_after_ns")->valuedouble == (double)T1);
    CHECK(cJSON_GetObjectItemCaseSensitive(w, "born_before_ns")->valuedouble == (double)T2);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(w, "born_after")->valuestring,
              "marker 'start' (5.00 s)");
    CHECK(cJSON_GetObjectItemCaseSensitive(w, "bytes")->valuedouble == 14);
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "markers");
    CHECK_U(cJSON_GetArraySize(ms), 2);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ms, 1), "label")->valuestring,
              "end");
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ms, 1), "time_ns")->valuedouble ==
          (double)T2);
    const cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "leaks"), 0);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(l0, "kind")->valuestring, "unchecked");
    const cJSON *site = cJSON_GetObjectItemCaseSensitive(l0, "site");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(site, "pc")->valuestring, "0x2000");
    cJSON_Delete(root);
    free(js);
    free(txt);
    ls_report_free(r);

    /* No window: nulls, whole-snapshot totals. */
    r = ls_report_build(&s, NULL, NULL, err, sizeof(err));
    js = NULL;
    mf = open_memstream(&js, &len);
    CHECK(ls_report_write_json(r, mf) == 0);
    fclose(mf);
    root = cJSON_Parse(js);
    w = cJSON_GetObjectItemCaseSensitive(root, "window");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(w, "born_after_ns")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(w, "born_before")));
    CHECK(cJSON_GetObjectItemCaseSensitive(w, "blocks")->valuedouble == 6);
    /* the no-stack record's site */
    const cJSON *leaks = cJSON_GetObjectItemCaseSensitive(root, "leaks");
    int found = 0;
    for (int i = 0; i < cJSON_GetArraySize(leaks); i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(leaks, i), "site");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(x, "unresolved");
        if (cJSON_IsString(u) && strcmp(u->valuestring, "no stack") == 0) found++;
    }
    CHECK(found == 1);
    cJSON_Delete(root);
    free(js);
    ls_report_free(r);
    ls_snapshot_free(&s);
}

static void test_plumbing(void)
{
    const char *yes[] = {"/lib/x86_64-linux-gnu/libc.so.6",
                         "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
                         "/lib64/ld-linux-x86-64.so.2",
                         "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                         "/lib/libc-2.31.so",
                         "/opt/ls/libleakscope.so"};
    const char *no[] = {"/usr/bin/server", "/lib/libcrypto.so.3", "/lib/libcurl.so.4",
                        "/lib/libstdc.so", NULL};
    ls_sym_frame_t f;
    memset(&f, 0, sizeof(f));
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        f.object = yes[i];
        CHECK(ls_frame_is_plumbing(&f, NULL));
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        f.object = no[i];
        CHECK(!ls_frame_is_plumbing(&f, NULL));
    }
    const char *globs[] = {"xmalloc", "pool_*"};
    ls_site_rules_t rules = {globs, 2};
    f.object = "/usr/bin/server";
    f.function = "xmalloc";
    CHECK(ls_frame_is_plumbing(&f, &rules));
    f.function = "xmalloc_aligned"; /* globs match the whole name */
    CHECK(!ls_frame_is_plumbing(&f, &rules));
    f.function = "pool_get";
    CHECK(ls_frame_is_plumbing(&f, &rules));
    CHECK(!ls_frame_is_plumbing(&f, NULL));

    ls_sym_frame_t v[3];
    memset(v, 0, sizeof(v));
    v[0].object = "/lib/x86_64-linux-gnu/libc.so.6";
    v[1].object = "/usr/bin/server";
    v[1].function = "xmalloc";
    v[2].object = "/usr/bin/server";
    v[2].function = "handle";
    CHECK_U(ls_site_index(v, 3, NULL), 1);
    CHECK_U(ls_site_index(v, 3, &rules), 2);
    CHECK_U(ls_site_index(v, 1, NULL), 0); /* plumbing only: the innermost */
    CHECK_U(ls_site_index(v, 0, NULL), 0);
}

/* Stacks through libc (strdup's caller is the site), inlined frames, --site-skip, folding of two
 * stack ids with the same frames. */
static void test_sites_real_frames(void)
{
    static uint64_t s1[2], s2[2], s3[1], s4[2], s5[1];
    s1[0] = pc_libc, s1[1] = pc_plain;
    s2[0] = pc_libc, s2[1] = pc_plain; /* same frames as s1, another id */
    s3[0] = pc_outer;
    s4[0] = pc_plain, s4[1] = pc_outer;
    s5[0] = pc_libc;
    tsnap_stack_t st[] = {{1, 2, s1}, {2, 2, s2}, {3, 1, s3}, {4, 2, s4}, {5, 1, s5}};
    ls_fmt_block_t b[] = {
        tsnap_block(0x10, 10, 1, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x20, 20, 2, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x30, 40, 3, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x40, 80, 4, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x50, 160, 5, LS_KIND_UNCHECKED, LS_NO_LEADER),
    };
    tsnap_t t = {.pid = 3,
                 .exe = mods[0].path,
                 .reason = LS_REASON_LIVE,
                 .modules = mods,
                 .nmodules = nmods,
                 .stacks = st,
                 .nstacks = 5,
                 .blocks = b,
                 .nblocks = 5};
    ls_snapshot_t s;
    load("r.lsnap", &t, &s);
    ls_symbolizer_t *sym = ls_symbolizer_new(&s, NULL);
    ls_keys_t *keys = ls_keys_new();
    ls_wstack_t *ws;
    size_t n;
    char err[256];
    CHECK(ls_agg_weigh_blocks(&s, NULL, &ws, &n) == 0);
    ls_agg_t *a = ls_agg_build(&s, sym, keys, NULL, ws, n, err, sizeof(err));
    CHECK(a != NULL);
    CHECK_U(a->bytes, 310);
    CHECK_U(a->blocks, 5);
    CHECK_U(a->nstacks, 4); /* s1 and s2 folded */
    /* sites: sym_plain (s1+s2 = 30, s4 = 80), sym_inner inlined in sym_outer (s3 = 40), and
     * libc's own frame for the libc-only stack s5 (160) */
    CHECK_U(a->nsites, 3);
    uint64_t plain = 0, inner = 0, libc = 0;
    for (size_t i = 0; i < a->nsites; i++) {
        const ls_sym_frame_t *f = ls_keys_frame(keys, a->sites[i].key);
        CHECK(f != NULL);
        if (!f) continue;
        if (f->function && strcmp(f->function, "sym_plain") == 0) plain = a->sites[i].bytes;
        if (f->function && strcmp(f->function, "sym_inner") == 0) {
            inner = a->sites[i].bytes;
            CHECK(f->inlined);
        }
        if (f->object && strstr(f->object, "libc.so")) libc = a->sites[i].bytes;
    }
    CHECK_U(plain, 110);
    CHECK_U(inner, 40);
    CHECK_U(libc, 160);
    /* the folded stack row: 2 blocks, its frames are libc's then sym_plain */
    const ls_agg_site_t *ps = NULL;
    for (size_t i = 0; i < a->nsites; i++)
        if (a->sites[i].bytes == 110) ps = &a->sites[i];
    CHECK(ps && ps->nstacks == 2 && ps->blocks == 3);
    int folded = 0;
    for (size_t i = 0; i < a->nstacks; i++) {
        if (a->stacks[i].bytes != 30) continue;
        folded = 1;
        CHECK_U(a->stacks[i].blocks, 2);
        CHECK_U(a->stacks[i].stack_id, 1);
        ls_sym_frame_t *fr;
        size_t nf;
        CHECK(ls_keys_stack_frames(keys, a->stacks[i].key, &fr, &nf) == 0);
        CHECK(nf == 2 && strstr(fr[0].object, "libc.so") && fr[1].function &&
              strcmp(fr[1].function, "sym_plain") == 0);
        free(fr);
    }
    CHECK(folded);
    ls_agg_free(a);

    /* --site-skip sym_plain: s4's site moves to the inlined sym_inner of its second pc */
    const char *globs[] = {"sym_plain"};
    ls_site_rules_t rules = {globs, 1};
    a = ls_agg_build(&s, sym, keys, &rules, ws, n, err, sizeof(err));
    inner = 0;
    for (size_t i = 0; i < a->nsites; i++) {
        const ls_sym_frame_t *f = ls_keys_frame(keys, a->sites[i].key);
        if (f && f->function && strcmp(f->function, "sym_inner") == 0) inner = a->sites[i].bytes;
    }
    CHECK_U(inner, 120);
    ls_agg_free(a);
    free(ws);
    ls_keys_free(keys);
    ls_symbolizer_free(sym);
    ls_snapshot_free(&s);
}

/* Two processes: same code, every address shifted (ASLR). Symbolized frames, frames in an
 * unreadable object (object + offset) and frames in no module (bare pc). */
static void test_keys_across_processes(void)
{
    const uint64_t shift = 0x100000000ull;
    tsnap_module_t m2[66];
    memcpy(m2, mods, nmods * sizeof(*m2));
    tsnap_module_t fake = {.bias = 0x7000000000ull,
                           .lo = 0x7000001000ull,
                           .hi = 0x7000100000ull,
                           .first_stack = 1,
                           .end_stack = UINT32_MAX,
                           .path = "/nonexistent/libfake.so"};
    m2[nmods] = fake;
    tsnap_module_t m3[66];
    for (size_t i = 0; i <= nmods; i++) {
        m3[i] = m2[i];
        m3[i].bias += shift, m3[i].lo += shift, m3[i].hi += shift;
    }
    static uint64_t a1[2], a2[1], a3[1], b1[2], b2[1], b3[1];
    a1[0] = pc_plain, a1[1] = pc_outer;
    a2[0] = 0x7000002345ull;
    a3[0] = 0x1234;
    b1[0] = pc_plain + shift, b1[1] = pc_outer + shift;
    b2[0] = 0x7000002345ull + shift;
    b3[0] = 0x1234 + 8; /* a bare pc elsewhere: never the same key */
    tsnap_stack_t sa[] = {{1, 2, a1}, {2, 1, a2}, {3, 1, a3}};
    tsnap_stack_t sb[] = {{7, 2, b1}, {8, 1, b2}, {9, 1, b3}}; /* other ids, too */
    ls_fmt_block_t ba[] = {tsnap_block(0x10, 1, 1, 0, LS_NO_LEADER),
                           tsnap_block(0x20, 2, 2, 0, LS_NO_LEADER),
                           tsnap_block(0x30, 4, 3, 0, LS_NO_LEADER)};
    ls_fmt_block_t bb[] = {tsnap_block(0x10, 8, 7, 0, LS_NO_LEADER),
                           tsnap_block(0x20, 16, 8, 0, LS_NO_LEADER),
                           tsnap_block(0x30, 32, 9, 0, LS_NO_LEADER)};
    tsnap_t ta = {.pid = 10,
                  .exe = mods[0].path,
                  .modules = m2,
                  .nmodules = nmods + 1,
                  .stacks = sa,
                  .nstacks = 3,
                  .blocks = ba,
                  .nblocks = 3};
    tsnap_t tb = ta;
    tb.pid = 11;
    tb.modules = m3;
    tb.stacks = sb;
    tb.blocks = bb;
    ls_snapshot_t A, B;
    load("a.lsnap", &ta, &A);
    load("b.lsnap", &tb, &B);
    ls_symbolizer_t *sA = ls_symbolizer_new(&A, NULL), *sB = ls_symbolizer_new(&B, NULL);
    ls_keys_t *keys = ls_keys_new();
    ls_wstack_t *wa, *wb;
    size_t na, nb;
    CHECK(ls_agg_weigh_blocks(&A, NULL, &wa, &na) == 0);
    CHECK(ls_agg_weigh_blocks(&B, NULL, &wb, &nb) == 0);
    ls_agg_t *x = ls_agg_build(&A, sA, keys, NULL, wa, na, NULL, 0);
    ls_agg_t *y = ls_agg_build(&B, sB, keys, NULL, wb, nb, NULL, 0);
    CHECK(x && y);
    CHECK_U(x->nstacks, 3);
    CHECK_U(y->nstacks, 3);
    size_t same_stacks = 0;
    for (size_t i = 0; i < x->nstacks; i++) {
        const ls_agg_stack_t *o = ls_agg_find_stack(y, x->stacks[i].key);
        if (!o) continue;
        same_stacks++;
        CHECK(o->bytes == x->stacks[i].bytes * 8); /* the matching pairs: 1/8 and 2/16 */
        CHECK(o->site == x->stacks[i].site);
    }
    CHECK_U(same_stacks, 2);
    /* the unreadable object's frame: object + offset, no function */
    int seen_fake = 0;
    for (size_t i = 0; i < x->nsites; i++) {
        const ls_sym_frame_t *f = ls_keys_frame(keys, x->sites[i].key);
        if (f && f->object && strcmp(f->object, "/nonexistent/libfake.so") == 0) {
            seen_fake = 1;
            CHECK_U(f->offset, 0x2345);
            CHECK(f->function == NULL);
            CHECK(ls_agg_find_site(y, x->sites[i].key) != NULL);
        }
    }
    CHECK(seen_fake);
    /* ordering by key text is a total order, consistent with equality */
    CHECK(ls_keys_cmp_stack(keys, x->stacks[0].key, x->stacks[0].key) == 0);
    CHECK(ls_keys_cmp_stack(keys, x->stacks[0].key, x->stacks[1].key) ==
          -ls_keys_cmp_stack(keys, x->stacks[1].key, x->stacks[0].key));
    ls_agg_free(x);
    ls_agg_free(y);
    free(wa);
    free(wb);
    ls_keys_free(keys);
    ls_symbolizer_free(sA);
    ls_symbolizer_free(sB);
    ls_snapshot_free(&A);
    ls_snapshot_free(&B);
}

/* Without a symbolizer: bare pcs, and keys still fold equal stacks. */
static void test_no_symbolizer(void)
{
    static uint64_t p1[] = {0x10, 0x20}, p2[] = {0x10, 0x20}, p3[] = {0x10};
    tsnap_stack_t st[] = {{1, 2, p1}, {2, 2, p2}, {3, 1, p3}};
    ls_fmt_block_t b[] = {
        tsnap_block(0x10, 1, 1, 0, LS_NO_LEADER), tsnap_block(0x20, 2, 2, 0, LS_NO_LEADER),
        tsnap_block(0x30, 4, 3, 0, LS_NO_LEADER), tsnap_block(0x40, 8, 0, 0, LS_NO_LEADER)};
    tsnap_t t = {.pid = 4, .stacks = st, .nstacks = 3, .blocks = b, .nblocks = 4};
    ls_snapshot_t s;
    load("n.lsnap", &t, &s);
    ls_keys_t *keys = ls_keys_new();
    ls_wstack_t *ws;
    size_t n;
    CHECK(ls_agg_weigh_blocks(&s, NULL, &ws, &n) == 0);
    ls_agg_t *a = ls_agg_build(&s, NULL, keys, NULL, ws, n, NULL, 0);
    CHECK_U(a->nstacks, 3); /* {0x10,0x20} x2 folded, {0x10}, no stack */
    CHECK_U(a->nsites, 2);  /* pc 0x10 and "no stack" */
    const ls_agg_site_t *none = ls_agg_find_site(a, 0);
    CHECK(none && none->bytes == 8);
    CHECK(ls_keys_frame(keys, 0) == NULL);
    char label[64];
    ls_site_label(NULL, label, sizeof(label));
    CHECK_STR(label, "(no stack)");
    ls_agg_free(a);
    free(ws);
    ls_keys_free(keys);
    ls_snapshot_free(&s);
}

/* A function of libc itself (RTLD_DEFAULT would give a sanitizer's interceptor). */
static uintptr_t libc_sym(const char *name)
{
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    void *p = h ? dlsym(h, name) : NULL;
    if (h) dlclose(h);
    return (uintptr_t)p;
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    nmods = tsnap_self_modules(mods, 64);
    sym_plain(&pc_plain);
    sym_outer(&pc_outer);
    sym_suppressed_site(&pc_supp);
    pc_libc = (uintptr_t)libc_sym("strdup") + 16;

    RUN(test_parse_duration);
    RUN(test_window_bound);
    RUN(test_window_boundaries);
    RUN(test_plumbing);
    RUN(test_sites_real_frames);
    RUN(test_keys_across_processes);
    RUN(test_no_symbolizer);
    rmdir(dir);
    return t_done("test_agg");
}
