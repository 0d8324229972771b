/*
 * test_series.c - analyses over series of synthetic snapshots: diff (grew / shrank / new / gone /
 * same, totals, order, by site and by stack, two processes with different addresses), suspects
 * (a leak rising in both load rounds ranked first with its evidence; a fill-once cache, steady
 * alloc/free churn and small noise not reported; an idle tail does not hide the leak; fewer
 * than 3 snapshots is an error), the least-squares fit, sparklines, the watch table and the
 * watch loop with a fake snapshot source (numbering, count, stop, process gone, failures).
 */
#define _GNU_SOURCE
#include "ls_series.h"
#include "ls_watch.h"
#include "sym_target.h"
#include "tcheck.h"
#include "tsnap.h"

#include <cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/ls-test-series.XXXXXX";
static tsnap_module_t mods[64];
static size_t nmods;
static uintptr_t pc_plain, pc_outer;

#define SEC 1000000000ull

/* ---- a tiny synthetic process ---------------------------------------------------------------
 * Sites are bare pcs (no modules): 0x1000 leak (two stacks: via 0x5000 and via 0x6000), 0x2000
 * cache, 0x3000 churn, 0x4000 noise. blocks[site] = how many blocks of `size` are live. */
enum { LEAK_A, LEAK_B, CACHE, CHURN, NOISE, NSTACKS };
static uint64_t st_leak_a[] = {0x1000, 0x5000}, st_leak_b[] = {0x1000, 0x6000},
                st_cache[] = {0x2000}, st_churn[] = {0x3000}, st_noise[] = {0x4000};
static const uint64_t sizes[NSTACKS] = {1024, 1024, 1024, 4096, 16};

static void write_state(const char *path, uint64_t pid, uint64_t t_ns, const unsigned *count)
{
    tsnap_stack_t st[] = {
        {1, 2, st_leak_a}, {2, 2, st_leak_b}, {3, 1, st_cache}, {4, 1, st_churn}, {5, 1, st_noise}};
    size_t total = 0;
    for (int i = 0; i < NSTACKS; i++) total += count[i];
    ls_fmt_block_t *b = calloc(total + 1, sizeof(*b));
    size_t k = 0;
    for (int i = 0; i < NSTACKS; i++)
        for (unsigned j = 0; j < count[i]; j++, k++)
            b[k] = tsnap_block_born(0x100000 + 0x1000 * k, sizes[i], (uint32_t)i + 1,
                                    LS_KIND_UNCHECKED, t_ns / 2);
    tsnap_t t = {.pid = pid,
                 .exe = "/usr/bin/server",
                 .reason = LS_REASON_LIVE,
                 .stacks = st,
                 .nstacks = 5,
                 .blocks = b,
                 .nblocks = total,
                 .snap_ns = t_ns,
                 .snap_realtime_ns = 1700000000 * SEC + t_ns,
                 .trigger = "control"};
    CHECK(tsnap_write(path, &t) == 0);
    free(b);
}

/* Two load rounds: round 1 at 2-3 s, idle at 4 s, round 2 at 5-6 s, idle from 7 s. */
static const unsigned rounds[][NSTACKS] = {
    /* leak_a leak_b cache churn noise */
    {0, 0, 0, 0, 0},    /* 1 s: before load */
    {8, 2, 20, 2, 1},   /* 2 s: round 1 */
    {15, 5, 40, 3, 2},  /* 3 s */
    {15, 5, 40, 0, 2},  /* 4 s: idle */
    {23, 7, 40, 2, 3},  /* 5 s: round 2 */
    {30, 10, 40, 0, 4}, /* 6 s */
    {30, 10, 40, 0, 4}, /* 7 s: idle */
    {30, 10, 40, 0, 5}, /* idle with a little noise (not in the base series) */
};
#define NROUNDS 7

/* A series of the states idx[0..n) at 1 s, 2 s, ... */
static ls_series_t *series_idx(const size_t *idx, size_t n, const char *sub)
{
    char d[400];
    snprintf(d, sizeof(d), "%s/%s", dir, sub);
    mkdir(d, 0755);
    ls_series_t *s = ls_series_new(NULL);
    for (size_t i = 0; i < n; i++) {
        char p[500], err[512];
        snprintf(p, sizeof(p), "%s/snap-%04zu.lsnap", d, i + 1);
        write_state(p, 42, (i + 1) * SEC, rounds[idx[i]]);
        CHECK(ls_series_add_file(s, p, err, sizeof(err)) == 0);
        unlink(p);
    }
    rmdir(d);
    ls_series_sort(s);
    return s;
}

static ls_series_t *series_of(size_t n, size_t idle_tail, const char *sub)
{
    char d[400];
    snprintf(d, sizeof(d), "%s/%s", dir, sub);
    mkdir(d, 0755);
    ls_series_t *s = ls_series_new(NULL);
    /* written in reverse so that the sort, not the file order, makes the series */
    for (size_t i = n + idle_tail; i-- > 0;) {
        char p[500];
        snprintf(p, sizeof(p), "%s/snap-%04zu.lsnap", d, i + 1);
        write_state(p, 42, (i + 1) * SEC, rounds[i < n ? i : n - 1]);
    }
    char *arg = d, **files;
    size_t nf;
    char err[512];
    CHECK(ls_series_expand_args(&arg, 1, &files, &nf, err, sizeof(err)) == 0);
    CHECK_U(nf, n + idle_tail);
    for (size_t i = nf; i-- > 0;) {
        int rc = ls_series_add_file(s, files[i], err, sizeof(err));
        if (rc) fprintf(stderr, "add: %s\n", err);
        CHECK(rc == 0);
        unlink(files[i]);
    }
    ls_series_free_files(files, nf);
    rmdir(d);
    CHECK(!ls_series_sort(s));
    return s;
}

static const ls_sym_frame_t *site_frame(const ls_series_t *s, uint32_t key)
{
    return ls_keys_frame(ls_series_keys(s), key);
}

static void test_suspects_rounds(void)
{
    ls_series_t *s = series_of(NROUNDS, 0, "rounds");
    CHECK_U(ls_series_len(s), NROUNDS);
    for (size_t i = 0; i < ls_series_len(s); i++)
        CHECK(ls_series_at(s, i)->time_s == (double)(i + 1));
    char err[512];
    ls_suspects_t *r = ls_suspects_find(s, NULL, err, sizeof(err));
    CHECK(r != NULL);
    if (!r) goto out;
    CHECK_U(r->table.nrows, 4);   /* leak, cache, churn, noise */
    CHECK_U(r->min_growth, 4096); /* 1% of 82 KiB is less */
    CHECK_U(r->split, 2);         /* 3 s: the middle of 1..6 s (7 s is an idle tail) */
    CHECK_U(r->n, 1);
    if (r->n != 1) goto out;
    const ls_suspect_t *x = &r->v[0];
    const ls_sym_frame_t *f = site_frame(s, x->site->key);
    CHECK(f && f->pc == 0x1000);
    const uint64_t want_bytes[] = {0, 10240, 20480, 20480, 30720, 40960, 40960};
    const uint64_t want_blocks[] = {0, 10, 20, 20, 30, 40, 40};
    for (size_t i = 0; i < NROUNDS; i++) {
        CHECK_U(x->site->bytes[i], want_bytes[i]);
        CHECK_U(x->site->blocks[i], want_blocks[i]);
        CHECK_U(x->floor[i], want_bytes[i]); /* never falls: floor = bytes */
    }
    CHECK_U(x->growth, 40960);
    CHECK_U(x->rise1, 20480);
    CHECK_U(x->rise2, 20480);
    /* slope and R^2 of bytes over 1..7 s, computed independently */
    double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
    for (size_t i = 0; i < NROUNDS; i++) {
        double xx = (double)(i + 1), yy = (double)want_bytes[i];
        sx += xx, sy += yy, sxx += xx * xx, sxy += xx * yy, syy += yy * yy;
    }
    double nn = NROUNDS, cxx = sxx - sx * sx / nn, cxy = sxy - sx * sy / nn,
           cyy = syy - sy * sy / nn;
    double slope = cxy / cxx, r2 = cxy * cxy / (cxx * cyy);
    CHECK(x->slope > slope - 1e-6 && x->slope < slope + 1e-6);
    CHECK(x->r2 > r2 - 1e-9 && x->r2 < r2 + 1e-9);
    CHECK(x->r2 > 0.9 && x->r2 <= 1.0);
    /* its stacks: via 0x5000 (30 KiB) then via 0x6000 (10 KiB) */
    CHECK_U(x->nstacks, 2);
    if (x->nstacks == 2) {
        CHECK_U(x->stacks[0].bytes, 30720);
        CHECK_U(x->stacks[0].blocks, 30);
        CHECK_U(x->stacks[0].growth, 30720);
        CHECK_U(x->stacks[1].bytes, 10240);
        const uint32_t *fk;
        CHECK_U(ls_keys_stack(ls_series_keys(s), x->stacks[0].key, &fk), 2);
        CHECK(ls_keys_frame(ls_series_keys(s), fk[1])->pc == 0x5000);
    }

    /* JSON */
    char *js = NULL;
    size_t len;
    FILE *mf = open_memstream(&js, &len);
    CHECK(ls_suspects_write_json(s, r, 0, mf) == 0);
    fclose(mf);
    cJSON *root = cJSON_Parse(js);
    CHECK(cJSON_GetObjectItemCaseSensitive(root, "version")->valuedouble == 1);
    CHECK(cJSON_GetObjectItemCaseSensitive(root, "sites_considered")->valuedouble == 4);
    const cJSON *snaps = cJSON_GetObjectItemCaseSensitive(root, "snapshots");
    CHECK_U(cJSON_GetArraySize(snaps), NROUNDS);
    const cJSON *s0 = cJSON_GetArrayItem(snaps, 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(s0, "pid")->valuedouble == 42);
    CHECK(cJSON_GetObjectItemCaseSensitive(s0, "time_s")->valuedouble == 1);
    CHECK(strstr(cJSON_GetObjectItemCaseSensitive(s0, "file")->valuestring, "snap-0001.lsnap"));
    const cJSON *sus = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "suspects"), 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(sus, "rank")->valuedouble == 1);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sus, "site"), "pc")
                  ->valuestring,
              "0x1000");
    CHECK(cJSON_GetObjectItemCaseSensitive(sus, "growth_bytes")->valuedouble == 40960);
    CHECK(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(sus, "bytes"), 5)->valuedouble ==
          40960);
    CHECK(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(sus, "blocks"), 2)->valuedouble ==
          20);
    CHECK_U(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(sus, "floor_bytes")), NROUNDS);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(sus, "slope_bytes_per_s")));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(sus, "r2")));
    const cJSON *st0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(sus, "stacks"), 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(st0, "bytes")->valuedouble == 30720);
    CHECK_U(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st0, "frames")), 2);
    cJSON_Delete(root);
    free(js);

    /* text */
    char *txt = NULL;
    mf = open_memstream(&txt, &len);
    ls_suspects_write_text(s, r, 10, mf);
    fclose(mf);
    printf("----- suspects -----\n%s--------------------\n", txt);
    CHECK(strstr(txt, "leakscope suspects - 7 snapshots of pid 42 (/usr/bin/server), 1.00 s to "
                      "7.00 s\n") != NULL);
    CHECK(strstr(txt, "4 sites considered, 1 suspect\n") != NULL);
    CHECK(strstr(txt, "#1 ??? (in") == NULL); /* bare pcs have no object */
    CHECK(strstr(txt, "floor grew 40,960 bytes: +20,480 by 3.00 s (first half), +20,480 after") !=
          NULL);
    CHECK(strstr(txt, "   stack 1: 30,720 bytes in 30 blocks (+30,720 over the series)\n"
                      "    at 0x1000: ???\n    by 0x5000: ???\n") != NULL);
    free(txt);
out:
    ls_suspects_free(r);
    ls_series_free(s);
}

/* A long idle tail must not move the halves' middle past the last activity. */
static void test_suspects_idle_tail(void)
{
    ls_series_t *s = series_of(NROUNDS, 20, "tail");
    ls_suspects_t *r = ls_suspects_find(s, NULL, NULL, 0);
    CHECK(r && r->n == 1 && r->split == 2);
    ls_suspects_free(r);
    ls_series_free(s);
}

/* Only round 1: everything that grew filled once; three snapshots is the minimum. */
static void test_suspects_edge(void)
{
    ls_series_t *s = series_of(2, 0, "two");
    char err[512];
    CHECK(ls_suspects_find(s, NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "need at least 3 snapshots") != NULL);
    ls_series_free(s);

    /* nothing changes: no suspect, whatever sits in the heap */
    const size_t steady[] = {3, 3, 3, 3};
    s = series_idx(steady, 4, "steady");
    ls_suspects_t *r = ls_suspects_find(s, NULL, err, sizeof(err));
    CHECK(r && r->n == 0 && r->table.nrows == 3);
    char *txt = NULL;
    size_t len;
    FILE *mf = open_memstream(&txt, &len);
    ls_suspects_write_text(s, r, 0, mf);
    fclose(mf);
    CHECK(strstr(txt, "no suspects") != NULL);
    free(txt);
    ls_suspects_free(r);
    ls_series_free(s);
    /* One round of load, then idle: the leak and the cache both grew through all the activity
     * there was, and nothing tells them apart (a second round would): both are suspects. */
    const size_t once[] = {0, 1, 2, 3, 3, 3, 3};
    s = series_idx(once, 7, "once");
    r = ls_suspects_find(s, NULL, err, sizeof(err));
    CHECK(r && r->n == 2 && r->split == 1);
    ls_suspects_free(r);
    ls_series_free(s);
    /* Round 2 without the cache growing: the cache is out, even with a noisy idle tail (churn
     * coming and going, below 5% of the busiest interval) */
    const size_t two[] = {0, 1, 2, 3, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6};
    s = series_idx(two, 15, "two");
    r = ls_suspects_find(s, NULL, err, sizeof(err));
    CHECK(r && r->n == 1 && r->split == 2);
    ls_suspects_free(r);
    /* --min-growth above the leak's growth: none; at 1 byte the noise site (16 bytes per
     * snapshot in both rounds) is a suspect too, ranked after the leak */
    ls_series_free(s);
    s = series_of(NROUNDS, 0, "min");
    ls_suspect_opts_t o = {.has_min_growth = true, .min_growth = 40961};
    r = ls_suspects_find(s, &o, err, sizeof(err));
    CHECK(r && r->n == 0);
    ls_suspects_free(r);
    o.min_growth = 1;
    o.max_stacks = 1;
    r = ls_suspects_find(s, &o, err, sizeof(err));
    CHECK(r && r->n == 2);
    if (r && r->n == 2) {
        CHECK(site_frame(s, r->v[0].site->key)->pc == 0x1000);
        CHECK(site_frame(s, r->v[1].site->key)->pc == 0x4000);
        CHECK_U(r->v[1].growth, 64);
        CHECK_U(r->v[0].nstacks, 1);
    }
    ls_suspects_free(r);
    ls_series_free(s);
}

static void test_linear_fit(void)
{
    double x[] = {0, 1, 2, 3}, y[] = {1, 3, 5, 7}, slope, r2;
    ls_linear_fit(x, y, 4, &slope, &r2);
    CHECK(slope > 2 - 1e-12 && slope < 2 + 1e-12 && r2 > 1 - 1e-12);
    double flat[] = {5, 5, 5, 5};
    ls_linear_fit(x, flat, 4, &slope, &r2);
    CHECK(slope == 0 && r2 == 0);
    double same_x[] = {1, 1, 1};
    ls_linear_fit(same_x, y, 3, &slope, &r2);
    CHECK(slope == 0 && r2 == 0);
    ls_linear_fit(x, y, 1, &slope, &r2);
    CHECK(slope == 0 && r2 == 0);
}

static void test_sparkline(void)
{
    uint64_t v[] = {0, 1, 2, 3, 4, 5, 6, 7};
    char buf[64];
    ls_sparkline(v, 8, false, buf, sizeof(buf));
    CHECK_STR(buf, " .:-=+*#");
    ls_sparkline(v, 8, true, buf, sizeof(buf));
    CHECK_STR(buf, "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588");
    uint64_t flat[] = {9, 9, 9};
    ls_sparkline(flat, 3, false, buf, sizeof(buf));
    CHECK_STR(buf, "   ");
    ls_sparkline(v, 8, true, buf, 7); /* room for two 3-byte bars only */
    CHECK_STR(buf, "\u2581\u2582");
    ls_sparkline(v, 0, false, buf, sizeof(buf));
    CHECK_STR(buf, "");
}

/* ---- diff -------------------------------------------------------------------------------- */

static void write_pair(const char *a, const char *b, const tsnap_t *ta, const tsnap_t *tb,
                       ls_series_t *s)
{
    char err[512];
    CHECK(tsnap_write(a, ta) == 0);
    CHECK(tsnap_write(b, tb) == 0);
    CHECK(ls_series_add_file(s, a, err, sizeof(err)) == 0);
    CHECK(ls_series_add_file(s, b, err, sizeof(err)) == 0);
    unlink(a);
    unlink(b);
}

static const ls_diff_row_t *row_at(const ls_series_t *s, const ls_diff_t *d, uint64_t site_pc,
                                   uint64_t second_pc)
{
    for (size_t i = 0; i < d->n; i++) {
        const ls_sym_frame_t *f = site_frame(s, d->rows[i].site);
        if (!f || f->pc != site_pc) continue;
        if (d->by == LS_DIFF_BY_SITE) return &d->rows[i];
        const uint32_t *fk;
        size_t n = ls_keys_stack(ls_series_keys(s), d->rows[i].key, &fk);
        if (n > 1 && ls_keys_frame(ls_series_keys(s), fk[1])->pc == second_pc) return &d->rows[i];
        if (n == 1 && !second_pc) return &d->rows[i];
    }
    return NULL;
}

static void test_diff(void)
{
    /* sites: A 0xa (two stacks, one grows, one same), B 0xb shrinks, C 0xc new, D 0xd gone,
     * E 0xe same bytes (same blocks) */
    static uint64_t a1[] = {0xa, 0x100}, a2[] = {0xa, 0x200}, sb[] = {0xb}, sc[] = {0xc},
                    sd[] = {0xd}, se[] = {0xe};
    tsnap_stack_t st[] = {{1, 2, a1}, {2, 2, a2}, {3, 1, sb}, {4, 1, sc}, {5, 1, sd}, {6, 1, se}};
    ls_fmt_block_t ob[] = {
        tsnap_block(0x10, 100, 1, 0, LS_NO_LEADER), tsnap_block(0x20, 50, 2, 0, LS_NO_LEADER),
        tsnap_block(0x30, 300, 3, 0, LS_NO_LEADER), tsnap_block(0x40, 300, 3, 0, LS_NO_LEADER),
        tsnap_block(0x50, 70, 5, 0, LS_NO_LEADER),  tsnap_block(0x60, 8, 6, 0, LS_NO_LEADER),
    };
    ls_fmt_block_t nb[] = {
        tsnap_block(0x10, 100, 1, 0, LS_NO_LEADER), tsnap_block(0x18, 900, 1, 0, LS_NO_LEADER),
        tsnap_block(0x20, 50, 2, 0, LS_NO_LEADER),  tsnap_block(0x30, 300, 3, 0, LS_NO_LEADER),
        tsnap_block(0x44, 40, 4, 0, LS_NO_LEADER),  tsnap_block(0x60, 8, 6, 0, LS_NO_LEADER),
    };
    tsnap_t to = {.pid = 5,
                  .reason = LS_REASON_LIVE,
                  .stacks = st,
                  .nstacks = 6,
                  .blocks = ob,
                  .nblocks = 6,
                  .snap_ns = 2 * SEC};
    tsnap_t tn = to;
    tn.blocks = nb;
    tn.snap_ns = 12 * SEC;
    char pa[400], pb[400];
    snprintf(pa, sizeof(pa), "%s/old.lsnap", dir);
    snprintf(pb, sizeof(pb), "%s/new.lsnap", dir);
    ls_series_t *s = ls_series_new(NULL);
    write_pair(pa, pb, &to, &tn, s);
    CHECK(!ls_series_set_times(s));

    ls_diff_t *d = ls_diff_build(s, LS_DIFF_BY_SITE);
    CHECK(d && d->n == 5);
    /* order: |delta bytes| desc: A +900, B -300, D -70, C +40, E 0 */
    const uint64_t order[] = {0xa, 0xb, 0xd, 0xc, 0xe};
    const char *status[] = {"grew", "shrank", "gone", "new", "same"};
    for (size_t i = 0; d && i < 5 && i < d->n; i++) {
        CHECK(site_frame(s, d->rows[i].site)->pc == order[i]);
        CHECK_STR(ls_diff_status(&d->rows[i]), status[i]);
    }
    const ls_diff_row_t *ra = row_at(s, d, 0xa, 0);
    CHECK(ra && ra->old_bytes == 150 && ra->new_bytes == 1050 && ra->old_blocks == 2 &&
          ra->new_blocks == 3);
    const ls_diff_row_t *rc = row_at(s, d, 0xc, 0);
    CHECK(rc && rc->old_blocks == 0 && rc->new_bytes == 40);

    char *js = NULL;
    size_t len;
    FILE *mf = open_memstream(&js, &len);
    CHECK(ls_diff_write_json(s, d, 0, mf) == 0);
    fclose(mf);
    cJSON *root = cJSON_Parse(js);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(root, "by")->valuestring, "site");
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(root, "old");
    CHECK(cJSON_GetObjectItemCaseSensitive(old, "live_bytes")->valuedouble == 828);
    CHECK(cJSON_GetObjectItemCaseSensitive(old, "time_s")->valuedouble == 2);
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "new"),
                                           "live_blocks")
              ->valuedouble == 6);
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(root, "totals");
    CHECK(cJSON_GetObjectItemCaseSensitive(tot, "delta_bytes")->valuedouble == 1398 - 828);
    CHECK(cJSON_GetObjectItemCaseSensitive(tot, "delta_blocks")->valuedouble == 0);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    CHECK_U(cJSON_GetArraySize(rows), 5);
    const cJSON *r1 = cJSON_GetArrayItem(rows, 1);
    CHECK(cJSON_GetObjectItemCaseSensitive(r1, "delta_bytes")->valuedouble == -300);
    CHECK(cJSON_GetObjectItemCaseSensitive(r1, "delta_blocks")->valuedouble == -1);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(r1, "status")->valuestring, "shrank");
    CHECK(cJSON_GetObjectItemCaseSensitive(r1, "stack") == NULL);
    cJSON_Delete(root);
    free(js);
    js = NULL;
    mf = open_memstream(&js, &len);
    CHECK(ls_diff_write_json(s, d, 2, mf) == 0);
    fclose(mf);
    root = cJSON_Parse(js);
    CHECK_U(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "rows")), 2);
    CHECK(cJSON_GetObjectItemCaseSensitive(root, "rows_total")->valuedouble == 5);
    cJSON_Delete(root);
    free(js);

    char *txt = NULL;
    mf = open_memstream(&txt, &len);
    ls_diff_write_text(s, d, 3, mf);
    fclose(mf);
    printf("----- diff -----\n%s----------------\n", txt);
    CHECK(strstr(txt, "total: +570 bytes (828 -> 1,398), 0 blocks (6 -> 6); 5 sites: 1 grew, 1 "
                      "shrank, 1 new, 1 gone, 1 same\n") != NULL);
    CHECK(strstr(txt, "(2 more sites not shown; --top 0 shows all)") != NULL);
    free(txt);
    ls_diff_free(d);

    /* by stack: A splits into a grown stack and an unchanged one */
    d = ls_diff_build(s, LS_DIFF_BY_STACK);
    CHECK(d && d->n == 6);
    const ls_diff_row_t *r100 = row_at(s, d, 0xa, 0x100), *r200 = row_at(s, d, 0xa, 0x200);
    CHECK(r100 && r100->new_bytes - r100->old_bytes == 900 && r100->new_blocks == 2);
    CHECK(r200 && !strcmp(ls_diff_status(r200), "same"));
    CHECK(d->rows[0].key == r100->key);
    js = NULL;
    mf = open_memstream(&js, &len);
    CHECK(ls_diff_write_json(s, d, 0, mf) == 0);
    fclose(mf);
    root = cJSON_Parse(js);
    const cJSON *row0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "rows"), 0);
    const cJSON *stk = cJSON_GetObjectItemCaseSensitive(row0, "stack");
    CHECK_U(cJSON_GetArraySize(stk), 2);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(stk, 1), "pc")->valuestring,
              "0x100");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(row0, "site"), "pc")
                  ->valuestring,
              "0xa");
    cJSON_Delete(root);
    free(js);
    ls_diff_free(d);
    ls_series_free(s);
}

/* Two runs of one program: other pids, every address shifted; symbolized frames match. */
static void test_diff_two_processes(void)
{
    const uint64_t shift = 0x200000000ull;
    tsnap_module_t m2[64];
    for (size_t i = 0; i < nmods; i++) {
        m2[i] = mods[i];
        m2[i].bias += shift, m2[i].lo += shift, m2[i].hi += shift;
    }
    static uint64_t p1[2], p2[1], q1[2], q2[1];
    p1[0] = pc_plain, p1[1] = pc_outer;
    p2[0] = pc_outer;
    q1[0] = pc_plain + shift, q1[1] = pc_outer + shift;
    q2[0] = pc_outer + shift;
    tsnap_stack_t sp[] = {{1, 2, p1}, {2, 1, p2}}, sq[] = {{5, 1, q2}, {6, 2, q1}};
    ls_fmt_block_t bp[] = {tsnap_block(0x10, 10, 1, 0, LS_NO_LEADER),
                           tsnap_block(0x20, 20, 2, 0, LS_NO_LEADER)};
    ls_fmt_block_t bq[] = {tsnap_block(0x10, 10, 6, 0, LS_NO_LEADER),
                           tsnap_block(0x18, 10, 6, 0, LS_NO_LEADER),
                           tsnap_block(0x30, 20, 5, 0, LS_NO_LEADER)};
    tsnap_t tp = {.pid = 100,
                  .exe = mods[0].path,
                  .reason = LS_REASON_EXIT,
                  .leak_checked = 1,
                  .modules = mods,
                  .nmodules = nmods,
                  .stacks = sp,
                  .nstacks = 2,
                  .blocks = bp,
                  .nblocks = 2,
                  .snap_ns = 3 * SEC,
                  .snap_realtime_ns = 1000 * SEC};
    tsnap_t tq = tp;
    tq.pid = 200;
    tq.modules = m2;
    tq.stacks = sq;
    tq.blocks = bq;
    tq.nblocks = 3;
    tq.snap_realtime_ns = 1060 * SEC;
    char pa[400], pb[400];
    snprintf(pa, sizeof(pa), "%s/run1.lsnap", dir);
    snprintf(pb, sizeof(pb), "%s/run2.lsnap", dir);
    ls_series_t *s = ls_series_new(NULL);
    write_pair(pa, pb, &tp, &tq, s);
    CHECK(ls_series_set_times(s)); /* different pids */
    CHECK(ls_series_at(s, 1)->time_s == 60);
    for (int by = 0; by < 2; by++) {
        ls_diff_t *d = ls_diff_build(s, (ls_diff_by_t)by);
        CHECK(d && d->n == 2);
        for (size_t i = 0; d && i < d->n; i++) {
            const char *st = ls_diff_status(&d->rows[i]);
            CHECK(strcmp(st, "grew") == 0 || strcmp(st, "same") == 0);
        }
        const ls_sym_frame_t *f = site_frame(s, d->rows[0].site);
        CHECK(f && f->function && strcmp(f->function, "sym_plain") == 0);
        CHECK(d->rows[0].old_bytes == 10 && d->rows[0].new_bytes == 20);
        ls_diff_free(d);
    }
    ls_series_free(s);
}

/* ---- watch ------------------------------------------------------------------------------- */

static void test_watch_table(void)
{
    ls_series_t *s = series_of(NROUNDS, 0, "table");
    char *txt = NULL;
    size_t len;
    FILE *mf = open_memstream(&txt, &len);
    CHECK(ls_watch_table(s, 2, false, mf) == 0);
    fclose(mf);
    printf("----- watch table -----\n%s-----------------------\n", txt);
    CHECK(strstr(txt, "pid 42 - snapshot 7 (snap-0007.lsnap) at 7.00 s: 80 KiB in 84 blocks, +80 "
                      "KiB since the first, 0 B since the last\n") != NULL);
    /* the cache grew most since the first snapshot (40 KiB, like the leak: the tie goes to the
     * bigger live bytes, equal too, then the key), then the leak; the top 2 only */
    const char *l1 = strstr(txt, "      40 KiB         40      +40 KiB          0 B  ");
    CHECK(l1 != NULL);
    CHECK(strstr(txt, "(2 more sites)") != NULL);
    /* the leak's trend over 0, 10, 20, 20, 30, 40, 40 KiB */
    CHECK(strstr(txt, "  :==+##           0x1000\n") != NULL);
    free(txt);
    ls_series_free(s);
}

typedef struct fake {
    int calls, fail_from, stop_at;
    volatile sig_atomic_t *stop;
} fake_t;

static int fake_snap(pid_t pid, const char *path, char *err, size_t errlen, void *ctx)
{
    fake_t *f = ctx;
    (void)pid;
    f->calls++;
    if (f->fail_from && f->calls >= f->fail_from) {
        snprintf(err, errlen, "no agent answers");
        return -1;
    }
    write_state(path, 42, (uint64_t)f->calls * SEC, rounds[(f->calls - 1) % NROUNDS]);
    if (f->stop_at && f->calls == f->stop_at) *f->stop = 1;
    return 0;
}

static size_t count_snaps(const char *d)
{
    DIR *dd = opendir(d);
    size_t n = 0;
    struct dirent *e;
    while (dd && (e = readdir(dd)))
        if (strstr(e->d_name, ".lsnap")) n++;
    if (dd) closedir(dd);
    return n;
}

static void test_watch_loop(void)
{
    char d[100], p[500];
    snprintf(d, sizeof(d), "%s/watch", dir);
    volatile sig_atomic_t stop = 0;
    fake_t f = {0};
    f.stop = &stop;
    ls_watch_opts_t o = {.pid = getpid(), .interval_ns = 10000000, .count = 3, .dir = d, .top = 5};
    char *txt = NULL;
    size_t len;
    FILE *mf = open_memstream(&txt, &len);
    CHECK(ls_watch_run(&o, fake_snap, &f, &stop, mf) == 0);
    fclose(mf);
    CHECK_U(f.calls, 3);
    CHECK_U(count_snaps(d), 3);
    snprintf(p, sizeof(p), "%s/snap-0003.lsnap", d);
    CHECK(access(p, R_OK) == 0);
    CHECK(strstr(txt, "pid 42 - snapshot 1 (snap-0001.lsnap)") != NULL);
    CHECK(strstr(txt, "pid 42 - snapshot 3 (snap-0003.lsnap)") != NULL);
    CHECK(strstr(txt, "\033[") == NULL); /* not a terminal: appended, no escape codes */
    char want[600];
    snprintf(want, sizeof(want), "3 snapshots in %s; look for leaks with: leakscope suspects %s\n",
             d, d);
    CHECK(strstr(txt, want) != NULL);
    free(txt);

    /* again in the same directory: numbering continues; stop after the 2nd (like SIGINT) */
    f = (fake_t){.stop = &stop, .stop_at = 2};
    o.count = 0;
    o.redraw = true;
    txt = NULL;
    mf = open_memstream(&txt, &len);
    CHECK(ls_watch_run(&o, fake_snap, &f, &stop, mf) == 0);
    fclose(mf);
    CHECK_U(f.calls, 2);
    CHECK_U(count_snaps(d), 5);
    snprintf(p, sizeof(p), "%s/snap-0005.lsnap", d);
    CHECK(access(p, R_OK) == 0);
    CHECK(strstr(txt, "\033[H\033[2J") != NULL);
    CHECK(strstr(txt, "(interrupted)") != NULL);
    free(txt);

    /* failures with the process alive: three in a row end it; none taken -> 1 */
    stop = 0;
    f = (fake_t){.stop = &stop, .fail_from = 1};
    o.count = 10;
    txt = NULL;
    mf = open_memstream(&txt, &len);
    CHECK(ls_watch_run(&o, fake_snap, &f, &stop, mf) == 1);
    fclose(mf);
    CHECK_U(f.calls, 3);
    free(txt);

    /* the process is gone: stops at the first failure, keeping what was taken */
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    CHECK(ls_process_gone(child));
    CHECK(!ls_process_gone(getpid()));
    f = (fake_t){.stop = &stop, .fail_from = 2};
    o.pid = child;
    txt = NULL;
    mf = open_memstream(&txt, &len);
    CHECK(ls_watch_run(&o, fake_snap, &f, &stop, mf) == 0);
    fclose(mf);
    CHECK_U(f.calls, 2);
    CHECK(strstr(txt, "1 snapshot in") && strstr(txt, "(the process is gone)"));
    free(txt);

    /* a directory that cannot be made */
    o.dir = "/nonexistent/dir/w";
    txt = NULL;
    mf = open_memstream(&txt, &len);
    CHECK(ls_watch_run(&o, fake_snap, &f, &stop, mf) == 1);
    fclose(mf);
    free(txt);

    DIR *dd = opendir(d);
    struct dirent *e;
    while (dd && (e = readdir(dd))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
        unlink(p);
    }
    if (dd) closedir(dd);
    rmdir(d);
}

static void test_expand_args(void)
{
    char d[100], p[500], err[512];
    snprintf(d, sizeof(d), "%s/empty", dir);
    mkdir(d, 0755);
    snprintf(p, sizeof(p), "%s/notes.txt", d);
    FILE *f = fopen(p, "w");
    fclose(f);
    char *args[] = {d}, **files = NULL;
    size_t n = 0;
    CHECK(ls_series_expand_args(args, 1, &files, &n, err, sizeof(err)) == -1);
    char want[600];
    snprintf(want, sizeof(want), "no snapshot files (*.lsnap) in directory %s", d);
    CHECK_STR(err, want);
    unlink(p);
    rmdir(d);
    /* files are passed through, even missing ones (the loader names the problem) */
    char *two[] = {"/nonexistent/a.lsnap", "b.lsnap"};
    CHECK(ls_series_expand_args(two, 2, &files, &n, err, sizeof(err)) == 0);
    CHECK(n == 2 && strcmp(files[0], "/nonexistent/a.lsnap") == 0);
    ls_series_free_files(files, n);
    ls_series_t *s = ls_series_new(NULL);
    CHECK(ls_series_add_file(s, "/nonexistent/a.lsnap", err, sizeof(err)) == -1);
    CHECK(strstr(err, "cannot open /nonexistent/a.lsnap") != NULL);
    ls_series_free(s);
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

    RUN(test_suspects_rounds);
    RUN(test_suspects_idle_tail);
    RUN(test_suspects_edge);
    RUN(test_linear_fit);
    RUN(test_sparkline);
    RUN(test_diff);
    RUN(test_diff_two_processes);
    RUN(test_watch_table);
    RUN(test_watch_loop);
    RUN(test_expand_args);
    rmdir(dir);
    return t_done("test_series");
}
