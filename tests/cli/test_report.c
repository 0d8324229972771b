/*
 * test_report.c - ls_report on a snapshot written here with the real writer: grouping by
 * (kind, stack), biggest-first order with its tie-breaks, the direct/indirect split through
 * leader indices, suppression accounting, --show-reachable, the text layout (header, records,
 * frames, LEAK SUMMARY, used_suppression) and the JSON contract, with real symbolized frames
 * from sym_target.c for some stacks.
 */
#define _GNU_SOURCE
#include "ls_report.h"
#include "sym_target.h"
#include "tcheck.h"
#include "tsnap.h"

#include <cJSON.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/ls-test-report.XXXXXX";
static char snap_path[256];
static tsnap_module_t mods[64];
static size_t nmods;
static uintptr_t pc_plain, pc_inline, pc_supp;
static ls_snapshot_t snap;

/*
 * Blocks (index: addr size stack kind leader):
 *  0: 16 s1 DEF           leader of 1 and 2
 *  1: 32 s2 IND -> 0
 *  2:  8 s2 IND -> 0
 *  3: 100 s3 POS          s3 = real frames (sym_plain)
 *  4: 16 s1 DEF
 *  5: 64 s4 REACH
 *  6: 24 s5 DEF           s5 = sym_suppressed_site: suppressed
 *  7: 40 s2 IND -> 6      leader suppressed: stays indirectly lost, not in any split
 *  8: 50 no stack DEF
 *  9:  7 s6 IND, no leader
 * 10: 50 s7 POS           ties with 8 and 11 at 50 bytes
 * 11: 50 s8 DEF           s8 = real frames (inlined chain)
 */
static void make_snapshot(void)
{
    static uint64_t s1[] = {0x1111, 0x1112}, s2[] = {0x2222}, s3[1], s4[] = {0x4444}, s5[2],
                    s6[] = {0x6666}, s7[] = {0x7777}, s8[1];
    s3[0] = pc_plain;
    s5[0] = pc_supp;
    s5[1] = 0x5555;
    s8[0] = pc_inline;
    tsnap_stack_t st[] = {{1, 2, s1}, {2, 1, s2}, {3, 1, s3}, {4, 1, s4},
                          {5, 2, s5}, {6, 1, s6}, {7, 1, s7}, {8, 1, s8}};
    uint32_t N = LS_NO_LEADER;
    ls_fmt_block_t b[] = {
        tsnap_block(0x1000, 16, 1, LS_KIND_DEFINITELY, N),
        tsnap_block(0x2000, 32, 2, LS_KIND_INDIRECTLY, 0),
        tsnap_block(0x3000, 8, 2, LS_KIND_INDIRECTLY, 0),
        tsnap_block(0x4000, 100, 3, LS_KIND_POSSIBLY, N),
        tsnap_block(0x5000, 16, 1, LS_KIND_DEFINITELY, N),
        tsnap_block(0x6000, 64, 4, LS_KIND_REACHABLE, N),
        tsnap_block(0x7000, 24, 5, LS_KIND_DEFINITELY, N),
        tsnap_block(0x8000, 40, 2, LS_KIND_INDIRECTLY, 6),
        tsnap_block(0x9000, 50, 0, LS_KIND_DEFINITELY, N),
        tsnap_block(0xa000, 7, 6, LS_KIND_INDIRECTLY, N),
        tsnap_block(0xb000, 50, 7, LS_KIND_POSSIBLY, N),
        tsnap_block(0xc000, 50, 8, LS_KIND_DEFINITELY, N),
    };
    tsnap_t s = {.pid = 4321,
                 .exe = mods[0].path,
                 .reason = LS_REASON_EXIT,
                 .exit_status = 3,
                 .leak_checked = 1,
                 .modules = mods,
                 .nmodules = nmods,
                 .stacks = st,
                 .nstacks = 8,
                 .blocks = b,
                 .nblocks = 12};
    snprintf(snap_path, sizeof(snap_path), "%s/r.lks", dir);
    CHECK(tsnap_write(snap_path, &s) == 0);
    char err[512];
    int rc = ls_snapshot_load(snap_path, &snap, err, sizeof(err));
    if (rc) fprintf(stderr, "load: %s\n", err);
    CHECK(rc == 0);
}

static ls_suppressions_t *make_supp(void)
{
    ls_suppressions_t *s = ls_suppressions_new();
    const char *t = "leak:matches_nothing\nleak:^sym_suppressed_*\n";
    CHECK(ls_suppressions_parse(s, t, strlen(t), "r.supp", NULL, 0) == 0);
    return s;
}

/* Renders with fn into a string. */
static char *render(const ls_report_t *r, int json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (json)
        CHECK(ls_report_write_json(r, f) == 0);
    else
        ls_report_write_text(r, f);
    fclose(f);
    return buf;
}

static void test_totals_and_suppression(void)
{
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    ls_suppressions_t *supp = make_supp();
    ls_report_opts_t o = {.supp = supp};
    char err[256];
    ls_report_t *r = ls_report_build(&snap, sym, &o, err, sizeof(err));
    CHECK(r != NULL);
    ls_totals_t t;
    ls_report_totals(r, &t);
    CHECK_U(t.bytes[LS_KIND_DEFINITELY], 16 + 16 + 50 + 50);
    CHECK_U(t.blocks[LS_KIND_DEFINITELY], 4);
    CHECK_U(t.bytes[LS_KIND_INDIRECTLY], 32 + 8 + 40 + 7);
    CHECK_U(t.blocks[LS_KIND_INDIRECTLY], 4);
    CHECK_U(t.bytes[LS_KIND_POSSIBLY], 150);
    CHECK_U(t.blocks[LS_KIND_POSSIBLY], 2);
    CHECK_U(t.bytes[LS_KIND_REACHABLE], 64);
    CHECK_U(t.blocks[LS_KIND_REACHABLE], 1);
    CHECK_U(t.suppressed_bytes, 24);
    CHECK_U(t.suppressed_blocks, 1);
    uint64_t bl, by;
    ls_report_supp_hits(r, 0, &bl, &by);
    CHECK(bl == 0 && by == 0);
    ls_report_supp_hits(r, 1, &bl, &by);
    CHECK(bl == 1 && by == 24);
    CHECK_U(ls_report_nrecords(r), 7);
    ls_report_free(r);

    o.show_reachable = 1;
    r = ls_report_build(&snap, sym, &o, err, sizeof(err));
    CHECK_U(ls_report_nrecords(r), 8);
    ls_report_free(r);

    /* Without suppressions the block counts as definitely lost and leads block 7. */
    r = ls_report_build(&snap, sym, NULL, err, sizeof(err));
    ls_report_totals(r, &t);
    CHECK_U(t.bytes[LS_KIND_DEFINITELY], 132 + 24);
    CHECK_U(t.suppressed_blocks, 0);
    ls_report_free(r);
    ls_suppressions_free(supp);
    ls_symbolizer_free(sym);
}

static void test_text_layout(void)
{
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    ls_suppressions_t *supp = make_supp();
    ls_report_opts_t o = {.supp = supp};
    ls_report_t *r = ls_report_build(&snap, sym, &o, NULL, 0);
    char *txt = render(r, 0);
    printf("----- text report -----\n%s-----------------------\n", txt);
    CHECK(strncmp(txt, "leakscope report - version 1\n", 29) == 0);
    char want[512];
    snprintf(want, sizeof(want), "program: %s (pid 4321), exited with status 3\n", mods[0].path);
    CHECK(strstr(txt, want) != NULL);
    /* order: 100 POS s3, 80 IND s2, 72 DEF s1, 50 DEF s0, 50 DEF s8, 50 POS s7, 7 IND s6 */
    const char *order[] = {
        "100 bytes in 1 blocks are possibly lost in loss record 1 of 7\n",
        "80 bytes in 3 blocks are indirectly lost in loss record 2 of 7\n",
        "72 (32 direct, 40 indirect) bytes in 2 blocks are definitely lost in loss record 3 of 7\n",
        "50 bytes in 1 blocks are definitely lost in loss record 4 of 7\n"
        "    (no allocation stack recorded)\n",
        "50 bytes in 1 blocks are definitely lost in loss record 5 of 7\n",
        "50 bytes in 1 blocks are possibly lost in loss record 6 of 7\n",
        "7 bytes in 1 blocks are indirectly lost in loss record 7 of 7\n",
        "\nLEAK SUMMARY:\n"
        "   definitely lost: 132 bytes in 4 blocks\n"
        "   indirectly lost: 87 bytes in 4 blocks\n"
        "     possibly lost: 150 bytes in 2 blocks\n"
        "   still reachable: 64 bytes in 1 blocks\n"
        "        suppressed: 24 bytes in 1 blocks\n",
        "used_suppression:      1 leak:^sym_suppressed_* r.supp:2 suppressed: 24 bytes in 1 "
        "blocks\n",
    };
    const char *at = txt;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *p = strstr(at, order[i]);
        if (!p) fprintf(stderr, "  missing (in order): %s", order[i]);
        CHECK(p != NULL);
        if (p) at = p + strlen(order[i]);
    }
    CHECK(strstr(txt, "matches_nothing") == NULL); /* unused suppressions are not listed */
    /* frames */
    snprintf(want, sizeof(want), "    at 0x%lX: sym_plain (sym_target.c:%u)\n",
             (unsigned long)pc_plain, tsnap_find_line(SYM_TARGET_SRC, "@plain-call"));
    CHECK(strstr(txt, want) != NULL);
    snprintf(want, sizeof(want),
             "    at 0x%lX: sym_inner (sym_target.c:%u) (inlined)\n"
             "    by 0x%lX: sym_outer (sym_target.c:%u)\n",
             (unsigned long)pc_inline, tsnap_find_line(SYM_TARGET_SRC, "@inner-call"),
             (unsigned long)pc_inline, tsnap_find_line(SYM_TARGET_SRC, "@outer-call"));
    CHECK(strstr(txt, want) != NULL);
    CHECK(strstr(txt, "    at 0x1111: ???\n    by 0x1112: ???\n") != NULL);
    CHECK(strstr(txt, "Reachable blocks are not shown") != NULL);
    CHECK(strstr(txt, "sym_suppressed_site") == NULL);
    free(txt);
    ls_report_free(r);

    /* show_reachable: the 64-byte record sits between 72 and 50 */
    o.show_reachable = 1;
    r = ls_report_build(&snap, sym, &o, NULL, 0);
    txt = render(r, 0);
    CHECK(strstr(txt, "72 (32 direct, 40 indirect) bytes in 2 blocks are definitely lost in loss "
                      "record 3 of 8\n") != NULL);
    CHECK(strstr(txt, "64 bytes in 1 blocks are still reachable in loss record 4 of 8\n") != NULL);
    CHECK(strstr(txt, "Reachable blocks are not shown") == NULL);
    free(txt);
    ls_report_free(r);
    ls_suppressions_free(supp);
    ls_symbolizer_free(sym);
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    CHECK(cJSON_IsNumber(x));
    return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void test_json_contract(void)
{
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    ls_suppressions_t *supp = make_supp();
    ls_report_opts_t o = {
        .supp = supp, .program = "myprog", .have_exit_status = 1, .exit_status = 7};
    ls_report_t *r = ls_report_build(&snap, sym, &o, NULL, 0);
    char *js = render(r, 1);
    cJSON *root = cJSON_Parse(js);
    CHECK(root != NULL);
    if (!root) {
        fprintf(stderr, "%s\n", js);
        goto out;
    }
    CHECK_U(jnum(root, "version"), 1);
    CHECK_STR(jstr(root, "program"), "myprog");
    CHECK_U(jnum(root, "pid"), 4321);
    CHECK_U(jnum(root, "exit_status"), 7);
    CHECK_STR(jstr(root, "reason"), "exit");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "leak_checked")));
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(root, "summary");
    const char *kinds[] = {"definitely_lost", "indirectly_lost", "possibly_lost", "still_reachable",
                           "suppressed"};
    const double bytes[] = {132, 87, 150, 64, 24}, blocks[] = {4, 4, 2, 1, 1};
    for (int i = 0; i < 5; i++) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(sum, kinds[i]);
        CHECK(cJSON_IsObject(k));
        CHECK(jnum(k, "bytes") == bytes[i]);
        CHECK(jnum(k, "blocks") == blocks[i]);
    }
    const cJSON *leaks = cJSON_GetObjectItemCaseSensitive(root, "leaks");
    CHECK(cJSON_IsArray(leaks));
    CHECK_U(cJSON_GetArraySize(leaks), 7);
    const char *kind_order[] = {"possibly_lost",   "indirectly_lost", "definitely_lost",
                                "definitely_lost", "definitely_lost", "possibly_lost",
                                "indirectly_lost"};
    const double byte_order[] = {100, 80, 32, 50, 50, 50, 7};
    double sum_def = 0;
    for (int i = 0; i < cJSON_GetArraySize(leaks) && i < 7; i++) {
        const cJSON *l = cJSON_GetArrayItem(leaks, i);
        CHECK_STR(jstr(l, "kind"), kind_order[i]);
        CHECK(jnum(l, "bytes") == byte_order[i]);
        CHECK(jnum(l, "loss_record") == i + 1);
        CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(l, "stack")));
        if (strcmp(kind_order[i], "definitely_lost") == 0) sum_def += jnum(l, "bytes");
    }
    CHECK(sum_def == 132); /* record bytes add up to the summary */
    const cJSON *l2 = cJSON_GetArrayItem(leaks, 2);
    CHECK(jnum(l2, "blocks") == 2);
    CHECK(jnum(l2, "direct_bytes") == 32);
    CHECK(jnum(l2, "indirect_bytes") == 40);
    CHECK(jnum(l2, "indirect_blocks") == 2);
    CHECK(jnum(l2, "total_bytes") == 72);
    /* frames: bare */
    const cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l2, "stack"), 0);
    CHECK_STR(jstr(f0, "pc"), "0x1111");
    CHECK(cJSON_GetObjectItemCaseSensitive(f0, "function") == NULL); /* unknown: omitted */
    CHECK(cJSON_GetObjectItemCaseSensitive(f0, "object") == NULL);
    CHECK_STR(jstr(f0, "unresolved"), "no module");
    /* frames: resolved, with the contract's keys */
    const cJSON *p0 = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(leaks, 0), "stack"), 0);
    char pcbuf[32];
    snprintf(pcbuf, sizeof(pcbuf), "0x%lx", (unsigned long)pc_plain);
    CHECK_STR(jstr(p0, "pc"), pcbuf);
    CHECK_STR(jstr(p0, "function"), "sym_plain");
    CHECK_STR(jstr(p0, "file"), "sym_target.c");
    CHECK(jstr(p0, "dir") && jstr(p0, "dir")[0] == '/');
    CHECK(jnum(p0, "line") == tsnap_find_line(SYM_TARGET_SRC, "@plain-call"));
    CHECK_STR(jstr(p0, "object"), mods[0].path);
    CHECK(cJSON_GetObjectItemCaseSensitive(p0, "inlined") == NULL);
    CHECK(cJSON_GetObjectItemCaseSensitive(p0, "unresolved") == NULL);
    /* the inlined chain (record 5: DEF s8) */
    const cJSON *st8 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(leaks, 4), "stack");
    CHECK_U(cJSON_GetArraySize(st8), 2);
    CHECK_STR(jstr(cJSON_GetArrayItem(st8, 0), "function"), "sym_inner");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(st8, 0), "inlined")));
    CHECK_STR(jstr(cJSON_GetArrayItem(st8, 1), "function"), "sym_outer");
    /* no stack: empty array */
    CHECK_U(
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(leaks, 3), "stack")),
        0);
    /* suppressions */
    const cJSON *sups = cJSON_GetObjectItemCaseSensitive(root, "suppressions");
    CHECK_U(cJSON_GetArraySize(sups), 2);
    const cJSON *s1 = cJSON_GetArrayItem(sups, 1);
    CHECK_STR(jstr(s1, "pattern"), "^sym_suppressed_*");
    CHECK(jnum(s1, "line") == 2);
    CHECK(jnum(s1, "blocks") == 1 && jnum(s1, "bytes") == 24);
    cJSON_Delete(root);
out:
    free(js);
    ls_report_free(r);
    ls_suppressions_free(supp);
    ls_symbolizer_free(sym);
}

static void test_defaults_and_no_symbolizer(void)
{
    /* opts NULL, sym NULL: program from the snapshot, exit status from the snapshot, bare PCs */
    ls_report_t *r = ls_report_build(&snap, NULL, NULL, NULL, 0);
    char *js = render(r, 1);
    cJSON *root = cJSON_Parse(js);
    CHECK_STR(jstr(root, "program"), mods[0].path);
    CHECK(jnum(root, "exit_status") == 3);
    const cJSON *leaks = cJSON_GetObjectItemCaseSensitive(root, "leaks");
    const cJSON *f = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(leaks, 0), "stack"), 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(f, "function") == NULL);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "suppressions")) == 0);
    cJSON_Delete(root);
    free(js);
    ls_report_free(r);
}

static void test_live_and_signal_snapshots(void)
{
    /* A live snapshot: no leak check, every block unchecked and listed as live. */
    static uint64_t pcs[] = {0xabc};
    tsnap_stack_t st[] = {{9, 1, pcs}};
    ls_fmt_block_t b[] = {tsnap_block(0x10, 1000, 9, LS_KIND_UNCHECKED, LS_NO_LEADER),
                          tsnap_block(0x20, 1000, 9, LS_KIND_UNCHECKED, LS_NO_LEADER)};
    tsnap_t s = {.pid = 1,
                 .exe = "/bin/live",
                 .reason = LS_REASON_LIVE,
                 .stacks = st,
                 .nstacks = 1,
                 .blocks = b,
                 .nblocks = 2};
    char path[300], err[512];
    snprintf(path, sizeof(path), "%s/live.lks", dir);
    CHECK(tsnap_write(path, &s) == 0);
    ls_snapshot_t ls;
    CHECK(ls_snapshot_load(path, &ls, err, sizeof(err)) == 0);
    ls_report_t *r = ls_report_build(&ls, NULL, NULL, NULL, 0);
    char *txt = render(r, 0);
    CHECK(strstr(txt, "program: /bin/live (pid 1), live snapshot\n") != NULL);
    CHECK(strstr(txt, "note: this snapshot has no leak check") != NULL);
    CHECK(strstr(txt,
                 "2,000 bytes in 2 blocks are live (not leak-checked) in loss record 1 of 1\n") !=
          NULL);
    CHECK(strstr(txt, "       not checked: 2,000 bytes in 2 blocks\n") != NULL);
    char *js = render(r, 1);
    cJSON *root = cJSON_Parse(js);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "exit_status")));
    CHECK_STR(jstr(root, "reason"), "live");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "leak_checked")));
    CHECK_STR(jstr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "leaks"), 0), "kind"),
              "unchecked");
    cJSON_Delete(root);
    free(js);
    free(txt);
    ls_report_free(r);
    ls_snapshot_free(&ls);

    s.reason = LS_REASON_SIGNAL;
    s.signal = 11;
    s.leak_checked = 1;
    s.nblocks = 0;
    CHECK(tsnap_write(path, &s) == 0);
    CHECK(ls_snapshot_load(path, &ls, err, sizeof(err)) == 0);
    r = ls_report_build(&ls, NULL, NULL, NULL, 0);
    txt = render(r, 0);
    CHECK(strstr(txt, ", killed by signal 11 (Segmentation fault)\n") != NULL);
    CHECK(strstr(txt, "   definitely lost: 0 bytes in 0 blocks\n") != NULL);
    js = render(r, 1);
    root = cJSON_Parse(js);
    CHECK(jnum(root, "signal") == 11);
    CHECK_U(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "leaks")), 0);
    cJSON_Delete(root);
    free(js);
    free(txt);
    ls_report_free(r);
    ls_snapshot_free(&ls);
    unlink(path);
}

static void test_big_numbers_commas(void)
{
    static uint64_t pcs[] = {0x1};
    tsnap_stack_t st[] = {{1, 1, pcs}};
    ls_fmt_block_t b[] = {tsnap_block(0x10, 1234567, 1, LS_KIND_DEFINITELY, LS_NO_LEADER)};
    tsnap_t s = {.pid = 1,
                 .exe = "/bin/x",
                 .reason = LS_REASON_EXIT,
                 .leak_checked = 1,
                 .stacks = st,
                 .nstacks = 1,
                 .blocks = b,
                 .nblocks = 1};
    char path[300];
    snprintf(path, sizeof(path), "%s/big.lks", dir);
    CHECK(tsnap_write(path, &s) == 0);
    ls_snapshot_t ls;
    CHECK(ls_snapshot_load(path, &ls, NULL, 0) == 0);
    ls_report_t *r = ls_report_build(&ls, NULL, NULL, NULL, 0);
    char *txt = render(r, 0);
    CHECK(strstr(txt, "1,234,567 bytes in 1 blocks are definitely lost") != NULL);
    CHECK(strstr(txt, "   definitely lost: 1,234,567 bytes in 1 blocks\n") != NULL);
    char *js = render(r, 1);
    CHECK(strstr(js, "1234567") != NULL);
    free(js);
    free(txt);
    ls_report_free(r);
    ls_snapshot_free(&ls);
    unlink(path);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    sym_plain(&pc_plain);
    sym_outer(&pc_inline);
    sym_suppressed_site(&pc_supp);
    nmods = tsnap_self_modules(mods, 64);
    make_snapshot();

    RUN(test_totals_and_suppression);
    RUN(test_text_layout);
    RUN(test_json_contract);
    RUN(test_defaults_and_no_symbolizer);
    RUN(test_live_and_signal_snapshots);
    RUN(test_big_numbers_commas);

    ls_snapshot_free(&snap);
    unlink(snap_path);
    rmdir(dir);
    return t_done("test_report");
}
