/*
 * test_sites.c - the per-site view (ls_sites.h) and `leakscope sites` / `leakscope diff` on site
 * counters: text in /proc/allocinfo's shape with real symbolized sites, JSON contract, sorting,
 * --top, totals, sites of 2 frames (continuation lines, folding to 1), the view derived from a
 * full snapshot (exact, allocations unknown; equal to the counters of the same blocks) and from
 * a sample profile (estimates, "~"), the diff keyed by module offsets across two "processes"
 * whose addresses differ, and the reader's refusals end to end (argv[1]: the leakscope binary).
 */
#define _GNU_SOURCE
#include "ls_format_write.h"
#include "ls_profile.h"
#include "ls_sites.h"
#include "sym_target.h"
#include "tcheck.h"
#include "trun.h"
#include "tsnap.h"

#include <cJSON.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/ls-test-sites.XXXXXX";
static const char *bin;
static tsnap_module_t mods[64];
static size_t nmods;
static uintptr_t pc_plain, pc_outer, pc_supp;
static unsigned line_plain, line_inner, line_supp;

/* Writes a mode-sites snapshot: META (mode sites, site_frames, sites_enabled unless < 0),
 * MODULES, STACKS, SITES, STATS. shift moves every module and pc (another "process"). */
static void write_sites(const char *path, const tsnap_stack_t *st, size_t nst,
                        const ls_fmt_site_t *sites, size_t nsites, unsigned site_frames,
                        int enabled, uint64_t shift)
{
    static const char zeros[8];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    char *buf = malloc(1 << 16);
    ls_fmt_writer_t w;
    ls_fmt_writer_init(&w, fd, buf, 1 << 16);
    ls_fmt_chunk_begin(&w, LS_CHUNK_META);
    ls_fmt_put_u64(&w, LS_META_PID, 4321 + shift % 7);
    ls_fmt_put_str(&w, LS_META_EXE, "/usr/bin/sites-prog");
    ls_fmt_put_str(&w, LS_META_MODE, "sites");
    ls_fmt_put_str(&w, LS_META_TRIGGER, "exit");
    ls_fmt_put_u64(&w, LS_META_REASON, LS_REASON_EXIT);
    ls_fmt_put_u64(&w, LS_META_LEAK_CHECKED, 0);
    ls_fmt_put_u64(&w, LS_META_SITE_FRAMES, site_frames);
    if (enabled >= 0) ls_fmt_put_u64(&w, LS_META_SITES_ENABLED, (uint64_t)enabled);
    ls_fmt_chunk_end(&w, 0);
    ls_fmt_chunk_begin(&w, LS_CHUNK_MODULES);
    for (size_t i = 0; i < nmods; i++) {
        ls_fmt_module_t m;
        memset(&m, 0, sizeof(m));
        m.bias = mods[i].bias + shift;
        m.lo = mods[i].lo + shift;
        m.hi = mods[i].hi + shift;
        m.first_stack = mods[i].first_stack;
        m.end_stack = mods[i].end_stack;
        m.path_len = (uint16_t)strlen(mods[i].path);
        m.build_id_len = (uint16_t)mods[i].build_id_len;
        ls_fmt_put(&w, &m, sizeof(m));
        ls_fmt_put(&w, mods[i].path, m.path_len);
        ls_fmt_put(&w, mods[i].build_id, m.build_id_len);
        size_t n = (size_t)m.path_len + m.build_id_len;
        ls_fmt_put(&w, zeros, ls_fmt_pad8(n) - n);
    }
    ls_fmt_chunk_end(&w, (uint32_t)nmods);
    ls_fmt_chunk_begin(&w, LS_CHUNK_STACKS);
    for (size_t i = 0; i < nst; i++) {
        ls_fmt_stack_t s = {st[i].id, st[i].nframes};
        ls_fmt_put(&w, &s, sizeof(s));
        for (uint32_t k = 0; k < st[i].nframes; k++) {
            uint64_t pc = st[i].pcs[k] + shift;
            ls_fmt_put(&w, &pc, 8);
        }
    }
    ls_fmt_chunk_end(&w, (uint32_t)nst);
    ls_fmt_chunk_begin(&w, LS_CHUNK_SITES);
    ls_fmt_put(&w, sites, nsites * sizeof(*sites));
    ls_fmt_chunk_end(&w, (uint32_t)nsites);
    ls_fmt_chunk_begin(&w, LS_CHUNK_STATS);
    ls_fmt_put_u64(&w, LS_STAT_MALLOC_CALLS, 100);
    ls_fmt_chunk_end(&w, 0);
    CHECK(ls_fmt_writer_finish(&w) == 0);
    close(fd);
    free(buf);
}

static void load(const char *path, ls_snapshot_t *snap)
{
    char err[512];
    int rc = ls_snapshot_load(path, snap, err, sizeof(err));
    if (rc) fprintf(stderr, "load %s: %s\n", path, err);
    CHECK(rc == 0);
}

static char *render(const ls_sites_t *v, ls_symbolizer_t *sym, size_t top, int json)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (json)
        CHECK(ls_sites_write_json(v, sym, top, f) == 0);
    else
        ls_sites_write_text(v, sym, top, f);
    fclose(f);
    return text;
}

/* The basic snapshot: 3 sites and the overflow site (stack 0). */
static uint64_t st1[1], st2[1], st3[1];
static const tsnap_stack_t basic_stacks[] = {{1, 1, st1}, {2, 1, st2}, {3, 1, st3}};
static const ls_fmt_site_t basic_sites[] = {
    {2, 0, 100, 5, 5, 100},     /* many small live blocks */
    {1, 0, 4096, 2, 10, 40960}, /* most live bytes, most allocations */
    {3, 0, 0, 0, 7, 700},       /* everything freed */
    {0, 0, 24, 1, 1, 24},       /* overflow: no frames */
};

static void basic_path(char *path, size_t len)
{
    snprintf(path, len, "%s/basic.lsnap", dir);
    st1[0] = pc_plain;
    st2[0] = pc_outer;
    st3[0] = pc_supp;
    write_sites(path, basic_stacks, 3, basic_sites, 4, 1, 1, 0);
}

static void test_text(void)
{
    char path[300];
    basic_path(path, sizeof(path));
    ls_snapshot_t snap;
    load(path, &snap);
    ls_sites_t v;
    char err[256];
    CHECK(ls_sites_build(&snap, 0, &v, err, sizeof(err)) == 0);
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    CHECK(v.exact && v.has_allocs && v.site_frames == 1 && v.enabled == 1 && v.nrows == 4);
    CHECK(v.live_bytes == 4220 && v.live_blocks == 8 && v.allocs == 23 && v.bytes == 41784);
    char *t = render(&v, sym, 0, 0);
    char want[512];
    CHECK(strstr(t, "# leakscope sites: /usr/bin/sites-prog (pid 4321), trigger exit, mode "
                    "sites, 1 frame per site, counting on\n") == t);
    CHECK(strstr(t, "# total: 4220 live bytes in 8 live blocks; 23 allocations of 41784 bytes\n"));
    CHECK(strstr(t, "#       <size>    <calls> <tag info>\n"));
    const char *exe = ls_base_name(mods[0].path);
    snprintf(want, sizeof(want),
             "\n          4096          2 sym_target.c:%u [%s] func:sym_plain allocs:10 "
             "alloc_bytes:40960\n"
             "           100          5 sym_target.c:%u [%s] func:sym_inner allocs:5 "
             "alloc_bytes:100\n"
             "            24          1 (no stack) allocs:1 alloc_bytes:24\n"
             "             0          0 sym_target.c:%u [%s] func:sym_suppressed_site allocs:7 "
             "alloc_bytes:700\n"
             "          4220          8 total allocs:23 alloc_bytes:41784\n",
             line_plain, exe, line_inner, exe, line_supp, exe);
    CHECK(strstr(t, want) != NULL);
    if (!strstr(t, want)) fprintf(stderr, "text:\n%s\nwanted:\n%s", t, want);
    free(t);

    /* --top 2: two rows, the totals of all four */
    t = render(&v, sym, 2, 0);
    CHECK(strstr(t, "func:sym_inner") && !strstr(t, "(no stack)"));
    CHECK(strstr(t, "          4220          8 total allocs:23 alloc_bytes:41784\n"));
    CHECK(strstr(t, "# 2 of 4 sites shown (--top 2); the total counts them all\n"));
    free(t);
    ls_symbolizer_free(sym);
    ls_sites_free(&v);
    ls_snapshot_free(&snap);
}

static void test_sort(void)
{
    char path[300];
    basic_path(path, sizeof(path));
    ls_snapshot_t snap;
    load(path, &snap);
    ls_sites_t v;
    char err[256];
    CHECK(ls_sites_build(&snap, 0, &v, err, sizeof(err)) == 0);
    /* bytes: 4096, 100, 24, 0 */
    CHECK(v.rows[0].stack == 1 && v.rows[1].stack == 2 && v.rows[2].stack == 0 &&
          v.rows[3].stack == 3);
    ls_sites_sort(&v, LS_SITES_SORT_CALLS); /* 5, 2, 1, 0 */
    CHECK(v.rows[0].stack == 2 && v.rows[1].stack == 1 && v.rows[2].stack == 0 &&
          v.rows[3].stack == 3);
    ls_sites_sort(&v, LS_SITES_SORT_ALLOCS); /* 10, 7, 5, 1 */
    CHECK(v.rows[0].stack == 1 && v.rows[1].stack == 3 && v.rows[2].stack == 2 &&
          v.rows[3].stack == 0);
    ls_sites_sort(&v, LS_SITES_SORT_ALLOC_BYTES); /* 40960, 700, 100, 24 */
    CHECK(v.rows[0].stack == 1 && v.rows[1].stack == 3 && v.rows[2].stack == 2 &&
          v.rows[3].stack == 0);
    ls_sites_sort_t by;
    CHECK(ls_sites_sort_parse("alloc-bytes", &by) == 0 && by == LS_SITES_SORT_ALLOC_BYTES);
    CHECK(ls_sites_sort_parse("calls", &by) == 0 && by == LS_SITES_SORT_CALLS);
    CHECK(ls_sites_sort_parse("size", &by) == -1);
    ls_sites_free(&v);
    ls_snapshot_free(&snap);
}

static void test_json(void)
{
    char path[300];
    basic_path(path, sizeof(path));
    ls_snapshot_t snap;
    load(path, &snap);
    ls_sites_t v;
    char err[256];
    CHECK(ls_sites_build(&snap, 0, &v, err, sizeof(err)) == 0);
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    char *t = render(&v, sym, 0, 1);
    cJSON *j = cJSON_Parse(t);
    CHECK(j != NULL);
    CHECK(cJSON_GetObjectItem(j, "version")->valueint == 1);
    CHECK_STR(cJSON_GetObjectItem(j, "program")->valuestring, "/usr/bin/sites-prog");
    CHECK(cJSON_GetObjectItem(j, "pid")->valueint == 4321);
    CHECK_STR(cJSON_GetObjectItem(j, "mode")->valuestring, "sites");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "exact")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "enabled")));
    CHECK(cJSON_GetObjectItem(j, "site_frames")->valueint == 1);
    CHECK(cJSON_GetObjectItem(j, "sites_total")->valueint == 4);
    cJSON *tot = cJSON_GetObjectItem(j, "totals");
    CHECK(cJSON_GetObjectItem(tot, "live_bytes")->valuedouble == 4220);
    CHECK(cJSON_GetObjectItem(tot, "live_blocks")->valuedouble == 8);
    CHECK(cJSON_GetObjectItem(tot, "allocs")->valuedouble == 23);
    CHECK(cJSON_GetObjectItem(tot, "bytes")->valuedouble == 41784);
    cJSON *sites = cJSON_GetObjectItem(j, "sites");
    CHECK(cJSON_GetArraySize(sites) == 4);
    cJSON *s0 = cJSON_GetArrayItem(sites, 0);
    CHECK(cJSON_GetObjectItem(s0, "live_bytes")->valuedouble == 4096);
    CHECK(cJSON_GetObjectItem(s0, "live_blocks")->valuedouble == 2);
    CHECK(cJSON_GetObjectItem(s0, "allocs")->valuedouble == 10);
    CHECK(cJSON_GetObjectItem(s0, "bytes")->valuedouble == 40960);
    cJSON *fr = cJSON_GetObjectItem(s0, "frames");
    CHECK(cJSON_GetArraySize(fr) == 1);
    cJSON *f0 = cJSON_GetArrayItem(fr, 0);
    char hex[32];
    snprintf(hex, sizeof(hex), "0x%" PRIxPTR, pc_plain);
    CHECK_STR(cJSON_GetObjectItem(f0, "pc")->valuestring, hex);
    CHECK_STR(cJSON_GetObjectItem(f0, "function")->valuestring, "sym_plain");
    CHECK(strstr(cJSON_GetObjectItem(f0, "file")->valuestring, "/tests/cli/sym_target.c"));
    CHECK(cJSON_GetObjectItem(f0, "line")->valueint == (int)line_plain);
    CHECK_STR(cJSON_GetObjectItem(f0, "object")->valuestring, mods[0].path);
    snprintf(hex, sizeof(hex), "0x%" PRIx64, (uint64_t)pc_plain - mods[0].bias);
    CHECK_STR(cJSON_GetObjectItem(f0, "offset")->valuestring, hex);
    /* the overflow site: no frames */
    cJSON *s2 = cJSON_GetArrayItem(sites, 2);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(s2, "frames")) == 0);
    CHECK(cJSON_GetObjectItem(s2, "live_bytes")->valuedouble == 24);
    cJSON_Delete(j);
    free(t);
    /* --top 1 in JSON; totals stay whole */
    t = render(&v, sym, 1, 1);
    j = cJSON_Parse(t);
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "sites")) == 1);
    CHECK(j &&
          cJSON_GetObjectItem(cJSON_GetObjectItem(j, "totals"), "live_bytes")->valuedouble == 4220);
    cJSON_Delete(j);
    free(t);
    ls_symbolizer_free(sym);
    ls_sites_free(&v);
    ls_snapshot_free(&snap);
}

/* site_frames 2: callers on continuation lines; folding to 1 frame adds up the sites that share
 * their innermost frame. */
static void test_two_frames(void)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/two.lsnap", dir);
    uint64_t a[2] = {pc_plain, pc_outer}, b[2] = {pc_plain, pc_supp};
    const tsnap_stack_t st[] = {{1, 2, a}, {2, 2, b}};
    const ls_fmt_site_t sites[] = {{1, 0, 300, 3, 4, 400}, {2, 0, 50, 1, 2, 60}};
    write_sites(path, st, 2, sites, 2, 2, 0, 0);
    ls_snapshot_t snap;
    load(path, &snap);
    ls_sites_t v;
    char err[256];
    CHECK(ls_sites_build(&snap, 0, &v, err, sizeof(err)) == 0);
    CHECK(v.site_frames == 2 && v.nrows == 2 && v.enabled == 0);
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    char *t = render(&v, sym, 0, 0);
    char want[512];
    snprintf(want, sizeof(want),
             "           300          3 sym_target.c:%u [%s] func:sym_plain allocs:4 "
             "alloc_bytes:400\n"
             "                          <- sym_target.c:%u [%s] func:sym_inner\n",
             line_plain, ls_base_name(mods[0].path), line_inner, ls_base_name(mods[0].path));
    CHECK(strstr(t, want) != NULL);
    if (!strstr(t, want)) fprintf(stderr, "text:\n%s\nwanted:\n%s", t, want);
    CHECK(strstr(t, "2 frames per site, counting off\n"));
    free(t);
    t = render(&v, sym, 0, 1);
    cJSON *j = cJSON_Parse(t);
    cJSON *fr =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "sites"), 1), "frames");
    CHECK(cJSON_GetArraySize(fr) == 2);
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(fr, 1), "function")->valuestring,
              "sym_suppressed_site");
    cJSON_Delete(j);
    free(t);
    ls_sites_free(&v);
    CHECK(ls_sites_build(&snap, 1, &v, err, sizeof(err)) == 0);
    CHECK(v.nrows == 1 && v.rows[0].nframes == 1 && v.rows[0].live_bytes == 350 &&
          v.rows[0].live_blocks == 4 && v.rows[0].allocs == 6 && v.rows[0].bytes == 460);
    ls_sites_free(&v);
    CHECK(ls_sites_build(&snap, 3, &v, err, sizeof(err)) == -1);
    CHECK(strstr(err, "counted sites of 2 frames: cannot show sites of 3") != NULL);
    ls_symbolizer_free(sym);
    ls_snapshot_free(&snap);
}

/* A full snapshot: its blocks grouped by the innermost frame, exact, allocations unknown; and
 * the counters of the same blocks give the same rows. */
static void test_from_full(void)
{
    uint64_t a[2] = {pc_plain, pc_outer}, b[2] = {pc_plain, pc_supp}, c[1] = {pc_outer};
    const tsnap_stack_t st[] = {{1, 2, a}, {2, 2, b}, {3, 1, c}};
    const ls_fmt_block_t blocks[] = {
        tsnap_block(0x1000, 100, 1, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x2000, 28, 2, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x3000, 7, 3, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x4000, 9, 3, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x5000, 5, 0, LS_KIND_UNCHECKED, LS_NO_LEADER),
    };
    tsnap_t t;
    memset(&t, 0, sizeof(t));
    t.pid = 9;
    t.exe = "/usr/bin/full-prog";
    t.reason = LS_REASON_EXIT;
    t.modules = mods;
    t.nmodules = nmods;
    t.stacks = st;
    t.nstacks = 3;
    t.blocks = blocks;
    t.nblocks = 5;
    t.trigger = "exit";
    char path[300], spath[300];
    snprintf(path, sizeof(path), "%s/full.lsnap", dir);
    CHECK(tsnap_write(path, &t) == 0);
    ls_snapshot_t snap;
    load(path, &snap);
    ls_sites_t v;
    char err[256];
    CHECK(ls_sites_build(&snap, 0, &v, err, sizeof(err)) == 0);
    CHECK_STR(v.mode, "full");
    CHECK(v.exact && !v.has_allocs && v.site_frames == 1 && v.enabled == -1);
    CHECK(v.nrows == 3 && v.live_bytes == 149 && v.live_blocks == 5 && v.allocs == -1);
    CHECK(v.rows[0].nframes == 1 && v.rows[0].pcs[0] == pc_plain && v.rows[0].live_bytes == 128 &&
          v.rows[0].live_blocks == 2 && v.rows[0].allocs == -1 && v.rows[0].bytes == -1);
    CHECK(v.rows[1].pcs[0] == pc_outer && v.rows[1].live_bytes == 16 && v.rows[1].live_blocks == 2);
    CHECK(v.rows[2].nframes == 0 && v.rows[2].live_bytes == 5);
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    char *txt = render(&v, sym, 0, 0);
    CHECK(strstr(txt, "mode full, 1 frame per site\n"));
    CHECK(strstr(txt, "# total: 149 live bytes in 5 live blocks; - allocations of - bytes\n"));
    CHECK(strstr(txt, "           128          2 sym_target.c:"));
    CHECK(strstr(txt, "func:sym_plain allocs:- alloc_bytes:-\n"));
    free(txt);
    char *full_json = render(&v, sym, 0, 1);
    cJSON *j = cJSON_Parse(full_json);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "totals"), "allocs")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "enabled")));
    CHECK_STR(cJSON_GetObjectItem(j, "mode")->valuestring, "full");
    ls_symbolizer_free(sym);
    ls_sites_free(&v);
    ls_snapshot_free(&snap);

    /* the same blocks counted by the agent in mode sites: live figures and frames agree */
    uint64_t s1[1] = {pc_plain}, s2[1] = {pc_outer};
    const tsnap_stack_t sst[] = {{1, 1, s1}, {2, 1, s2}};
    const ls_fmt_site_t sites[] = {
        {1, 0, 128, 2, 9, 900}, {2, 0, 16, 2, 2, 16}, {0, 0, 5, 1, 1, 5}};
    snprintf(spath, sizeof(spath), "%s/same.lsnap", dir);
    write_sites(spath, sst, 2, sites, 3, 1, 1, 0);
    load(spath, &snap);
    CHECK(ls_sites_build(&snap, 0, &v, err, sizeof(err)) == 0);
    sym = ls_symbolizer_new(&snap, NULL);
    char *sites_json = render(&v, sym, 0, 1);
    cJSON *k = cJSON_Parse(sites_json);
    cJSON *fa = cJSON_GetObjectItem(j, "sites"), *fb = cJSON_GetObjectItem(k, "sites");
    CHECK(cJSON_GetArraySize(fa) == 3 && cJSON_GetArraySize(fb) == 3);
    for (int i = 0; i < 3; i++) {
        cJSON *x = cJSON_GetArrayItem(fa, i), *y = cJSON_GetArrayItem(fb, i);
        CHECK(cJSON_GetObjectItem(x, "live_bytes")->valuedouble ==
              cJSON_GetObjectItem(y, "live_bytes")->valuedouble);
        CHECK(cJSON_GetObjectItem(x, "live_blocks")->valuedouble ==
              cJSON_GetObjectItem(y, "live_blocks")->valuedouble);
        char *fx = cJSON_PrintUnformatted(cJSON_GetObjectItem(x, "frames"));
        char *fy = cJSON_PrintUnformatted(cJSON_GetObjectItem(y, "frames"));
        CHECK_STR(fx, fy);
        free(fx);
        free(fy);
    }
    cJSON_Delete(j);
    cJSON_Delete(k);
    free(full_json);
    free(sites_json);
    ls_symbolizer_free(sym);
    ls_sites_free(&v);
    ls_snapshot_free(&snap);
}

/* A sample profile: the estimates of ls_profile.h, grouped by site, marked "~". */
static void test_from_sample(void)
{
    uint64_t a[1] = {pc_plain}, b[2] = {pc_outer, pc_plain};
    const tsnap_stack_t st[] = {{1, 1, a}, {2, 2, b}};
    const uint64_t rate = 1024;
    const ls_fmt_block_t blocks[] = {
        tsnap_block(0x1000, 100, 1, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x2000, 4000, 1, LS_KIND_UNCHECKED, LS_NO_LEADER),
        tsnap_block(0x3000, 10, 2, LS_KIND_UNCHECKED, LS_NO_LEADER),
    };
    const ls_fmt_sample_alloc_t sa[] = {{1, 0, 5, 5000, 20.4, 9000.6},
                                        {2, 0, 1, 10, 102.9, 1029.2}};
    tsnap_t t;
    memset(&t, 0, sizeof(t));
    t.pid = 10;
    t.exe = "/usr/bin/sample-prog";
    t.modules = mods;
    t.nmodules = nmods;
    t.stacks = st;
    t.nstacks = 2;
    t.blocks = blocks;
    t.nblocks = 3;
    t.mode = "sample";
    t.sample_rate = rate;
    t.sample_allocs = sa;
    t.nsample_allocs = 2;
    char path[300];
    snprintf(path, sizeof(path), "%s/sample.lsnap", dir);
    CHECK(tsnap_write(path, &t) == 0);
    ls_snapshot_t snap;
    load(path, &snap);
    ls_sites_t v;
    char err[256];
    CHECK(ls_sites_build(&snap, 0, &v, err, sizeof(err)) == 0);
    CHECK_STR(v.mode, "sample");
    CHECK(!v.exact && v.has_allocs && v.nrows == 2);
    double w100 = ls_prof_weight(100, rate), w4000 = ls_prof_weight(4000, rate),
           w10 = ls_prof_weight(10, rate);
    const ls_sites_row_t *r0 = &v.rows[0], *r1 = &v.rows[1];
    CHECK(r0->pcs[0] == pc_plain);
    CHECK(r0->live_bytes == ls_prof_round(w100 * 100 + w4000 * 4000));
    CHECK(r0->live_blocks == ls_prof_round(w100 + w4000));
    CHECK(r0->allocs == 20 && r0->bytes == 9001);
    CHECK(r1->pcs[0] == pc_outer && r1->live_blocks == ls_prof_round(w10) &&
          r1->live_bytes == ls_prof_round(w10 * 10) && r1->allocs == 103 && r1->bytes == 1029);
    char *txt = render(&v, NULL, 0, 0);
    char want[128];
    snprintf(want, sizeof(want), "%14s", "~9001");
    CHECK(strstr(txt, "mode sample (estimates)"));
    CHECK(strstr(txt, "alloc_bytes:~9001"));
    snprintf(want, sizeof(want), "~%" PRId64 " live bytes", v.live_bytes);
    CHECK(strstr(txt, want));
    free(txt);
    char *js = render(&v, NULL, 0, 1);
    cJSON *j = cJSON_Parse(js);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "exact")));
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "totals"), "allocs")->valuedouble == 123);
    cJSON_Delete(j);
    free(js);
    ls_sites_free(&v);
    ls_snapshot_free(&snap);
}

/* Two "processes" at different addresses: rows meet by module offset; NEW minus OLD sorted by
 * |delta bytes|; unchanged sites counted, not shown. */
static void test_diff(void)
{
    char op[300], np[300];
    snprintf(op, sizeof(op), "%s/old.lsnap", dir);
    snprintf(np, sizeof(np), "%s/new.lsnap", dir);
    uint64_t a[1] = {pc_plain}, b[1] = {pc_outer}, c[1] = {pc_supp};
    const tsnap_stack_t st[] = {{1, 1, a}, {2, 1, b}, {3, 1, c}};
    const ls_fmt_site_t olds[] = {{1, 0, 1000, 10, 10, 1000}, {2, 0, 64, 4, 4, 64}};
    const ls_fmt_site_t news[] = {
        {1, 0, 1000, 10, 20, 2000}, /* unchanged live */
        {2, 0, 16, 1, 4, 64},       /* -48 */
        {3, 0, 512, 2, 2, 512},     /* new: +512 */
    };
    write_sites(op, st, 3, olds, 2, 1, 1, 0);
    write_sites(np, st, 3, news, 3, 1, 1, 0x10000000);
    ls_snapshot_t so, sn;
    load(op, &so);
    load(np, &sn);
    ls_sites_t vo, vn;
    char err[256];
    CHECK(ls_sites_build(&so, 0, &vo, err, sizeof(err)) == 0);
    CHECK(ls_sites_build(&sn, 0, &vn, err, sizeof(err)) == 0);
    ls_sites_diff_t *d = ls_sites_diff_build(&vo, &vn, err, sizeof(err));
    CHECK(d != NULL);
    ls_symbolizer_t *sym = ls_symbolizer_new(&so, NULL);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ls_sites_diff_write_text(d, "old.lsnap", "new.lsnap", sym, NULL, 0, f);
    fclose(f);
    char want[512];
    snprintf(want, sizeof(want),
             "          +512            +2            0          512 %s+0x%" PRIx64 "\n"
             "           -48            -3           64           16 %s+0x%" PRIx64 "\n"
             "          +464            -1         1064         1528 total\n"
             "# 2 sites changed, 1 unchanged\n",
             ls_base_name(mods[0].path), (uint64_t)pc_supp - mods[0].bias,
             ls_base_name(mods[0].path), (uint64_t)pc_outer - mods[0].bias);
    CHECK(strstr(text, want) != NULL);
    if (!strstr(text, want)) fprintf(stderr, "diff:\n%s\nwanted:\n%s", text, want);
    free(text);
    text = NULL;
    f = open_memstream(&text, &len);
    CHECK(ls_sites_diff_write_json(d, "old.lsnap", "new.lsnap", sym, NULL, 0, f) == 0);
    fclose(f);
    cJSON *j = cJSON_Parse(text);
    CHECK(cJSON_GetObjectItem(j, "unchanged")->valueint == 1);
    cJSON *tot = cJSON_GetObjectItem(j, "totals");
    CHECK(cJSON_GetObjectItem(tot, "delta_live_bytes")->valuedouble == 464);
    CHECK(cJSON_GetObjectItem(tot, "delta_live_blocks")->valuedouble == -1);
    cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "sites"), 0);
    CHECK(cJSON_GetObjectItem(s0, "delta_live_bytes")->valuedouble == 512);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(s0, "old")));
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(s0, "new"), "live_blocks")->valuedouble == 2);
    cJSON *s1 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "sites"), 1);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(s1, "old"), "live_bytes")->valuedouble == 64);
    /* frames come from NEW: its pc, the same offset as OLD's */
    cJSON *fr = cJSON_GetArrayItem(cJSON_GetObjectItem(s1, "frames"), 0);
    char hex[32];
    snprintf(hex, sizeof(hex), "0x%" PRIx64, (uint64_t)pc_outer - mods[0].bias);
    CHECK_STR(cJSON_GetObjectItem(fr, "offset")->valuestring, hex);
    snprintf(hex, sizeof(hex), "0x%" PRIx64, (uint64_t)pc_outer + 0x10000000);
    CHECK_STR(cJSON_GetObjectItem(fr, "pc")->valuestring, hex);
    cJSON_Delete(j);
    free(text);
    ls_sites_diff_free(d);
    ls_symbolizer_free(sym);
    ls_sites_free(&vo);
    ls_sites_free(&vn);
    ls_snapshot_free(&so);
    ls_snapshot_free(&sn);
}

/* ---- end to end ------------------------------------------------------------------------------ */

static void test_cli(void)
{
    if (!bin) return;
    char path[300], out[300], op[300], np[300];
    basic_path(path, sizeof(path));
    trun_result_t *r = malloc(sizeof(*r));
    trun(r, "sites", path, NULL);
    CHECK(r->status == 0 && strstr(r->out, "func:sym_plain allocs:10 alloc_bytes:40960\n"));
    trun(r, "sites", path, "--sort", "calls", "--top", "1", NULL);
    CHECK(r->status == 0 && strstr(r->out, "           100          5 sym_target.c:") &&
          !strstr(r->out, "func:sym_plain"));
    snprintf(out, sizeof(out), "%s/out.json", dir);
    trun(r, "sites", "--format", "json", "-o", out, path, NULL);
    CHECK(r->status == 0 && r->out[0] == 0);
    char *buf = malloc(1 << 16);
    trun_slurp(out, buf, 1 << 16);
    cJSON *j = cJSON_Parse(buf);
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "sites")) == 4);
    cJSON_Delete(j);
    free(buf);
    trun(r, "sites", path, "--sort", "size", NULL);
    CHECK(trun_usage_error(r, "bad sort", "unknown --sort 'size'"));
    trun(r, "sites", path, "--top", "x", NULL);
    CHECK(trun_usage_error(r, "bad top", "--top needs a count"));
    trun(r, "sites", NULL);
    CHECK(trun_usage_error(r, "no file", "needs a snapshot file"));
    trun(r, "sites", path, "--site-frames", "2", NULL);
    CHECK(trun_input_error(r, "leakscope sites", "too deep", "cannot show sites of 2"));
    trun(r, "--help", NULL);
    CHECK(r->status == 0 && strstr(r->out, "  sites SNAPSHOT"));

    /* diff of two sites snapshots, and the options that do not apply */
    snprintf(op, sizeof(op), "%s/cold.lsnap", dir);
    snprintf(np, sizeof(np), "%s/cnew.lsnap", dir);
    const ls_fmt_site_t olds[] = {{1, 0, 1000, 10, 10, 1000}};
    const ls_fmt_site_t news[] = {{1, 0, 3000, 12, 12, 3000}};
    write_sites(op, basic_stacks, 3, olds, 1, 1, 1, 0);
    write_sites(np, basic_stacks, 3, news, 1, 1, 1, 0x20000000);
    trun(r, "diff", op, np, NULL);
    CHECK(r->status == 0 && strstr(r->out, "         +2000            +2         1000         "
                                           "3000 "));
    CHECK(strstr(r->out, "# 1 site changed, 0 unchanged\n"));
    trun(r, "diff", "--format", "json", op, np, NULL);
    j = cJSON_Parse(r->out);
    CHECK(r->status == 0 && j &&
          cJSON_GetObjectItem(cJSON_GetObjectItem(j, "totals"), "delta_live_bytes")->valueint ==
              2000);
    cJSON_Delete(j);
    trun(r, "diff", "--by", "stack", op, np, NULL);
    CHECK(trun_usage_error(r, "by stack", "--by stack does not apply to site counters"));
    free(r);
}

/* What the reader refuses, as the command reports it. */
static void test_cli_damage(void)
{
    if (!bin) return;
    char path[300];
    snprintf(path, sizeof(path), "%s/bad.lsnap", dir);
    trun_result_t *r = malloc(sizeof(*r));
    st1[0] = pc_plain;
    const tsnap_stack_t st[] = {{1, 1, st1}};
    const ls_fmt_site_t bad_stack[] = {{1, 0, 8, 1, 1, 8}, {7, 0, 8, 1, 1, 8}};
    write_sites(path, st, 1, bad_stack, 2, 1, 1, 0);
    trun(r, "sites", path, NULL);
    CHECK(trun_input_error(r, "leakscope sites", "bad stack", "stack refers to missing stack 7"));
    CHECK(strstr(r->err, "site 1 at offset"));
    const ls_fmt_site_t neg[] = {{1, 0, -8, 1, 1, 8}};
    write_sites(path, st, 1, neg, 1, 1, 1, 0);
    trun(r, "sites", path, NULL);
    CHECK(trun_input_error(r, "leakscope sites", "negative", "negative live counters"));
    trun(r, "diff", path, path, NULL);
    CHECK(trun_input_error(r, "leakscope diff", "negative (diff)", "negative live counters"));
    /* truncated inside the SITES chunk (a writer that died): no END chunk */
    const ls_fmt_site_t ok[] = {{1, 0, 8, 1, 1, 8}};
    write_sites(path, st, 1, ok, 1, 1, 1, 0);
    trun(r, "sites", path, NULL);
    CHECK(r->status == 0);
    char *buf = malloc(1 << 16);
    int fd = open(path, O_RDONLY);
    ssize_t n = read(fd, buf, 1 << 16);
    close(fd);
    CHECK(n > 100);
    /* cut in the middle of the SITES payload: file = ... SITES hdr + 40 bytes, STATS, END */
    trun_write_file(path, buf, (size_t)n - 24 - 24 - 16 - 20);
    trun(r, "sites", path, NULL);
    CHECK(trun_input_error(r, "leakscope sites", "truncated", "truncated"));
    free(buf);
    free(r);
}

int main(int argc, char **argv)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    bin = argc > 1 ? argv[1] : NULL;
    if (bin) trun_init(bin, dir);
    nmods = tsnap_self_modules(mods, 64);
    sym_plain(&pc_plain);
    sym_outer(&pc_outer);
    sym_suppressed_site(&pc_supp);
    line_plain = tsnap_find_line(SYM_TARGET_SRC, "@plain-call");
    line_inner = tsnap_find_line(SYM_TARGET_SRC, "@inner-call");
    line_supp = tsnap_find_line(SYM_TARGET_SRC, "@supp-call");

    RUN(test_text);
    RUN(test_sort);
    RUN(test_json);
    RUN(test_two_frames);
    RUN(test_from_full);
    RUN(test_from_sample);
    RUN(test_diff);
    RUN(test_cli);
    RUN(test_cli_damage);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    return t_done("test_sites");
}
