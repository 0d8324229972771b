/*
 * test_cli_live.c - the live-inspection analyses as a user runs them (the built binary, argv[1]):
 * `report --born-after/--born-before` (text header, JSON window/markers/site, marker errors),
 * `diff` (JSON and text, by site and stack, -o), `suspects` (a directory series with a leak and a
 * fill-once cache; JSON and text; mixed pids warn), `watch` argument handling (no agent can run
 * here), and for each: usage errors exit 2, bad inputs (missing or corrupt file, empty
 * directory, too few snapshots, unknown marker) exit 1 with a message naming the problem.
 */
#define _GNU_SOURCE
#include "sym_target.h"
#include "tcheck.h"
#include "trun.h"
#include "tsnap.h"

#include <cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/ls-test-cli-live.XXXXXX";
static tsnap_module_t mods[64];
static size_t nmods;
static uintptr_t pc_plain, pc_outer;

#define SEC 1000000000ull

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *x = jget(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *x = jget(o, k);
    return cJSON_IsString(x) ? x->valuestring : "";
}

/* A process state: `leak` blocks of 1000 bytes from sym_plain, `cache` of 500 from sym_outer,
 * born at birth_ns; the markers given. */
static void write_state(const char *path, uint64_t pid, uint64_t t_ns, unsigned leak,
                        unsigned cache, const tsnap_marker_t *marks, size_t nmarks)
{
    static uint64_t s1[2], s2[1];
    s1[0] = pc_plain, s1[1] = 0x999;
    s2[0] = pc_outer;
    tsnap_stack_t st[] = {{1, 2, s1}, {2, 1, s2}};
    ls_fmt_block_t *b = calloc(leak + cache + 1, sizeof(*b));
    size_t k = 0;
    for (unsigned i = 0; i < leak; i++, k++)
        b[k] = tsnap_block_born(0x10000 + 0x100 * k, 1000, 1, LS_KIND_UNCHECKED, (i + 1) * SEC);
    for (unsigned i = 0; i < cache; i++, k++)
        b[k] = tsnap_block_born(0x10000 + 0x100 * k, 500, 2, LS_KIND_UNCHECKED, (i + 1) * SEC);
    tsnap_t t = {.pid = pid,
                 .exe = mods[0].path,
                 .reason = LS_REASON_LIVE,
                 .modules = mods,
                 .nmodules = nmods,
                 .stacks = st,
                 .nstacks = 2,
                 .blocks = b,
                 .nblocks = k,
                 .snap_ns = t_ns,
                 .snap_realtime_ns = 1700000000 * SEC + t_ns,
                 .markers = marks,
                 .nmarkers = nmarks};
    CHECK(tsnap_write(path, &t) == 0);
    free(b);
}

static void test_report_window(void)
{
    trun_result_t *r = malloc(sizeof(*r));
    char p[300];
    snprintf(p, sizeof(p), "%s/live.lsnap", dir);
    /* leak blocks born at 1..10 s, markers at 3 s and exactly 7 s */
    tsnap_marker_t m[] = {{3 * SEC, 0, 1, "round1-start"}, {7 * SEC, 0, 2, "round1-end"}};
    write_state(p, 900, 15 * SEC, 10, 2, m, 2);

    trun(r, "report", p, "--born-after", "round1-start", "--born-before", "round1-end", NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "allocated between marker 'round1-start' (3.00 s) and marker "
                         "'round1-end' (7.00 s), still alive at 15.00 s: 4,000 bytes in 4 "
                         "blocks\n") != NULL);
    CHECK(strstr(r->out, "4,000 bytes in 4 blocks are live (not leak-checked) in loss record 1 of "
                         "1\n") != NULL);
    CHECK(strstr(r->out, ": sym_plain (sym_target.c:") != NULL);

    /* #N and TIME forms; after only; before only */
    trun(r, "report", p, "--format", "json", "--born-after", "#2", NULL);
    CHECK_U(r->status, 0);
    cJSON *root = cJSON_Parse(r->out);
    const cJSON *w = jget(root, "window");
    CHECK(jnum(w, "born_after_ns") == 7e9);
    CHECK(cJSON_IsNull(jget(w, "born_before_ns")));
    CHECK_STR(jstr(w, "born_after"), "marker 'round1-end' (7.00 s)");
    CHECK(jnum(w, "bytes") == 4000); /* 7, 8, 9, 10 s */
    CHECK_U(cJSON_GetArraySize(jget(root, "markers")), 2);
    CHECK_STR(jstr(cJSON_GetArrayItem(jget(root, "markers"), 0), "label"), "round1-start");
    CHECK(jnum(cJSON_GetArrayItem(jget(root, "markers"), 1), "seq") == 2);
    const cJSON *l0 = cJSON_GetArrayItem(jget(root, "leaks"), 0);
    CHECK_STR(jstr(l0, "kind"), "unchecked");
    CHECK_STR(jstr(jget(l0, "site"), "function"), "sym_plain");
    CHECK(jnum(l0, "bytes") == 4000);
    cJSON_Delete(root);

    trun(r, "report", p, "--born-before", "2.5s", NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "allocated before 2.50 s, still alive at 15.00 s: 3,000 bytes in 4 "
                         "blocks\n") != NULL); /* leak 1, 2 s and both cache blocks */
    trun(r, "report", p, "--born-after", "-7s", "--born-before", "9000ms", NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "allocated between 8.00 s and 9.00 s, still alive at 15.00 s: 1,000 bytes "
                         "in 1 blocks\n") != NULL);

    /* errors: unknown marker, no markers at all, bad time */
    trun(r, "report", p, "--born-after", "round2-start", NULL);
    CHECK(trun_input_error(r, "leakscope report", "unknown marker",
                           "--born-after: no marker 'round2-start'"));
    CHECK(strstr(r->err, "markers: 'round1-start' (#1, 3.00 s), 'round1-end' (#2, 7.00 s)"));
    trun(r, "report", p, "--born-before", "#3", NULL);
    CHECK(trun_input_error(r, "leakscope report", "#3", "--born-before: no marker #3"));
    trun(r, "report", p, "--born-before", NULL);
    CHECK(trun_usage_error(r, "no argument", "needs an argument"));
    trun(r, "report", p, "--born-after", "round1-end", "--born-before", "round1-start", NULL);
    CHECK(trun_input_error(r, "leakscope report", "inverted window",
                           "empty window: --born-after marker 'round1-end' (7.00 s) is not before "
                           "--born-before marker 'round1-start' (3.00 s)"));
    write_state(p, 900, 15 * SEC, 1, 0, NULL, 0);
    trun(r, "report", p, "--born-after", "12x", NULL);
    CHECK(trun_input_error(r, "leakscope report", "no markers", "the snapshot has no markers"));
    unlink(p);
    free(r);
}

static void test_diff_cli(void)
{
    trun_result_t *r = malloc(sizeof(*r));
    char a[300], b[300], o[300];
    snprintf(a, sizeof(a), "%s/a.lsnap", dir);
    snprintf(b, sizeof(b), "%s/b.lsnap", dir);
    snprintf(o, sizeof(o), "%s/diff.json", dir);
    write_state(a, 1, 5 * SEC, 3, 4, NULL, 0);
    write_state(b, 1, 9 * SEC, 8, 0, NULL, 0);

    trun(r, "diff", a, b, "--format", "json", NULL);
    CHECK_U(r->status, 0);
    cJSON *root = cJSON_Parse(r->out);
    CHECK(root != NULL);
    CHECK(jnum(root, "version") == 1);
    CHECK_STR(jstr(root, "by"), "site");
    CHECK(jnum(jget(root, "old"), "live_bytes") == 5000);
    CHECK(jnum(jget(root, "new"), "time_s") == 9);
    CHECK(jnum(jget(root, "new"), "pid") == 1);
    CHECK_STR(jstr(jget(root, "old"), "file"), a);
    const cJSON *rows = jget(root, "rows");
    CHECK_U(cJSON_GetArraySize(rows), 2);
    const cJSON *r0 = cJSON_GetArrayItem(rows, 0), *r1 = cJSON_GetArrayItem(rows, 1);
    CHECK_STR(jstr(jget(r0, "site"), "function"), "sym_plain");
    CHECK(jnum(r0, "delta_bytes") == 5000 && jnum(r0, "delta_blocks") == 5);
    CHECK_STR(jstr(r0, "status"), "grew");
    CHECK_STR(jstr(jget(r1, "site"), "function"), "sym_inner");
    CHECK(jnum(r1, "old_bytes") == 2000 && jnum(r1, "new_bytes") == 0);
    CHECK_STR(jstr(r1, "status"), "gone");
    cJSON_Delete(root);

    trun(r, "diff", "--by", "stack", a, b, "--format", "json", "-o", o, NULL);
    CHECK_U(r->status, 0);
    CHECK(r->out[0] == 0);
    char *buf = malloc(1 << 20);
    trun_slurp(o, buf, 1 << 20);
    root = cJSON_Parse(buf);
    r0 = cJSON_GetArrayItem(jget(root, "rows"), 0);
    CHECK_U(cJSON_GetArraySize(jget(r0, "stack")), 2);
    CHECK_STR(jstr(cJSON_GetArrayItem(jget(r0, "stack"), 1), "pc"), "0x999");
    cJSON_Delete(root);
    free(buf);
    unlink(o);

    trun(r, "diff", a, b, NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "leakscope diff - by site, NEW minus OLD\n") != NULL);
    CHECK(strstr(r->out, "total: +3,000 bytes (5,000 -> 8,000), +1 blocks (7 -> 8); 2 sites: 1 "
                         "grew, 0 shrank, 0 new, 1 gone, 0 same\n") != NULL);
    CHECK(strstr(r->out, "grew    sym_plain (sym_target.c:") != NULL);
    trun(r, "diff", a, b, "--by", "stack", "--top", "1", NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "    at 0x") != NULL);
    CHECK(strstr(r->out, "(1 more stack not shown") != NULL);

    /* usage errors */
    trun(r, "diff", a, NULL);
    CHECK(trun_usage_error(r, "one file", "needs two snapshot files"));
    trun(r, "diff", a, b, a, NULL);
    CHECK(trun_usage_error(r, "three files", "unexpected argument"));
    trun(r, "diff", a, b, "--by", "function", NULL);
    CHECK(trun_usage_error(r, "--by", "unknown --by 'function'"));
    trun(r, "diff", a, b, "--format", "xml", NULL);
    CHECK(trun_usage_error(r, "--format", "unknown format 'xml'"));
    trun(r, "diff", a, b, "--top", "-1", NULL);
    CHECK(trun_usage_error(r, "--top", "--top needs a count"));
    trun(r, "diff", a, b, "--bogus", NULL);
    CHECK(trun_usage_error(r, "--bogus", "unknown option '--bogus'"));
    trun(r, "diff", "--help", NULL);
    CHECK(r->status == 0 && strstr(r->out, "usage: leakscope diff OLD NEW"));

    /* bad inputs */
    trun(r, "diff", a, "/nonexistent/b.lsnap", NULL);
    CHECK(trun_input_error(r, "leakscope diff", "missing", "cannot open /nonexistent/b.lsnap"));
    char c[300];
    snprintf(c, sizeof(c), "%s/corrupt.lsnap", dir);
    trun_write_file(c, "LKSCOPE\0garbage garbage garbage garbage", 40);
    trun(r, "diff", c, b, NULL);
    CHECK(trun_input_error(r, "leakscope diff", "corrupt", c));
    unlink(a);
    unlink(b);
    unlink(c);
    free(r);
}

static void rm_dir(const char *d)
{
    DIR *dd = opendir(d);
    struct dirent *e;
    char p[600];
    while (dd && (e = readdir(dd))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
        unlink(p);
    }
    if (dd) closedir(dd);
    rmdir(d);
}

static void test_suspects_cli(void)
{
    trun_result_t *r = malloc(sizeof(*r));
    char d[200], p[400];
    snprintf(d, sizeof(d), "%s/series", dir);
    mkdir(d, 0755);
    /* two rounds: the leak grows in both, the cache fills in round 1 */
    const unsigned leak[] = {0, 5, 10, 10, 15, 20, 20}, cache[] = {0, 20, 40, 40, 40, 40, 40};
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof(p), "%s/snap-%04d.lsnap", d, i + 1);
        write_state(p, 77, (uint64_t)(i + 1) * 2 * SEC, leak[i], cache[i], NULL, 0);
    }
    trun(r, "suspects", d, "--format", "json", NULL);
    CHECK_U(r->status, 0);
    cJSON *root = cJSON_Parse(r->out);
    CHECK(root != NULL);
    CHECK_U(cJSON_GetArraySize(jget(root, "snapshots")), 7);
    CHECK(jnum(root, "sites_considered") == 2);
    CHECK(jnum(cJSON_GetArrayItem(jget(root, "snapshots"), 6), "live_bytes") == 40000);
    const cJSON *sus = jget(root, "suspects");
    CHECK_U(cJSON_GetArraySize(sus), 1);
    const cJSON *s0 = cJSON_GetArrayItem(sus, 0);
    CHECK(jnum(s0, "rank") == 1);
    CHECK_STR(jstr(jget(s0, "site"), "function"), "sym_plain");
    CHECK(jnum(s0, "growth_bytes") == 20000);
    CHECK(cJSON_GetArrayItem(jget(s0, "blocks"), 4)->valuedouble == 15);
    CHECK(jnum(s0, "r2") > 0.9);
    CHECK(jnum(s0, "slope_bytes_per_s") > 0);
    const cJSON *st = cJSON_GetArrayItem(jget(s0, "stacks"), 0);
    CHECK(jnum(st, "bytes") == 20000 && jnum(st, "blocks") == 20);
    CHECK_STR(jstr(cJSON_GetArrayItem(jget(st, "frames"), 0), "function"), "sym_plain");
    cJSON_Delete(root);

    trun(r, "suspects", d, NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "leakscope suspects - 7 snapshots of pid 77") != NULL);
    CHECK(strstr(r->out, "2 sites considered, 1 suspect\n") != NULL);
    CHECK(strstr(r->out, "#1 sym_plain (sym_target.c:") != NULL);
    CHECK(strstr(r->out, "sym_inner") == NULL);

    /* explicit files, in any order; a higher --min-growth: no suspects is not an error */
    char f1[400], f2[400], f3[400];
    snprintf(f1, sizeof(f1), "%s/snap-0007.lsnap", d);
    snprintf(f2, sizeof(f2), "%s/snap-0001.lsnap", d);
    snprintf(f3, sizeof(f3), "%s/snap-0004.lsnap", d);
    trun(r, "suspects", f1, f2, f3, "--min-growth", "1M", NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "no suspects") != NULL);
    CHECK(strstr(r->out, "1.00 s to") == NULL && strstr(r->out, "2.00 s to 14.00 s") != NULL);

    /* fewer than 3 */
    trun(r, "suspects", f1, f2, NULL);
    CHECK(trun_input_error(r, "leakscope suspects", "two", "need at least 3 snapshots"));
    /* a corrupt file in the directory */
    snprintf(p, sizeof(p), "%s/snap-0008.lsnap", d);
    trun_write_file(p, "not a snapshot", 14);
    trun(r, "suspects", d, NULL);
    CHECK(trun_input_error(r, "leakscope suspects", "corrupt", "snap-0008.lsnap"));
    unlink(p);
    /* another process in the series: a warning, still analysed */
    write_state(p, 78, 16 * SEC, 20, 40, NULL, 0);
    trun(r, "suspects", d, "--format", "json", NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->err, "warning: the snapshots come from different processes") != NULL);
    unlink(p);
    /* usage */
    trun(r, "suspects", NULL);
    CHECK(trun_usage_error(r, "no args", "no snapshot directory or files given"));
    trun(r, "suspects", d, "--min-growth", "lots", NULL);
    CHECK(trun_usage_error(r, "--min-growth", "--min-growth needs a byte count"));
    trun(r, "suspects", d, "--format", "yaml", NULL);
    CHECK(trun_usage_error(r, "--format", "unknown format 'yaml'"));
    trun(r, "suspects", "--help", NULL);
    CHECK(r->status == 0 && strstr(r->out, "usage: leakscope suspects"));
    rm_dir(d);

    /* an empty directory, a missing one */
    mkdir(d, 0755);
    trun(r, "suspects", d, NULL);
    CHECK(trun_input_error(r, "leakscope suspects", "empty", "no snapshot files (*.lsnap) in"));
    rmdir(d);
    trun(r, "suspects", "/nonexistent/dir", NULL);
    CHECK(trun_input_error(r, "leakscope suspects", "missing", "cannot open /nonexistent/dir"));
    free(r);
}

static void test_watch_args(void)
{
    trun_result_t *r = malloc(sizeof(*r));
    char pid[32], wd[300];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    snprintf(wd, sizeof(wd), "%s/w", dir);
    trun(r, "watch", NULL);
    CHECK(trun_usage_error(r, "no pid", "no PID given"));
    trun(r, "watch", "abc", NULL);
    CHECK(trun_usage_error(r, "abc", "PID must be a process id"));
    trun(r, "watch", "0", NULL);
    CHECK(trun_usage_error(r, "0", "PID must be a process id"));
    trun(r, "watch", pid, "--interval", "0", NULL);
    CHECK(trun_usage_error(r, "interval 0", "--interval needs seconds"));
    trun(r, "watch", pid, "--interval", "soon", NULL);
    CHECK(trun_usage_error(r, "interval soon", "--interval needs seconds"));
    trun(r, "watch", pid, "--count", "0", NULL);
    CHECK(trun_usage_error(r, "count 0", "--count needs a positive count"));
    trun(r, "watch", pid, "--top", "x", NULL);
    CHECK(trun_usage_error(r, "top x", "--top needs a count"));
    trun(r, "watch", pid, pid, NULL);
    CHECK(trun_usage_error(r, "two pids", "unexpected argument"));
    trun(r, "watch", "--help", NULL);
    CHECK(r->status == 0 && strstr(r->out, "usage: leakscope watch PID"));

    /* a process that is gone */
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    char gone[32];
    snprintf(gone, sizeof(gone), "%d", (int)child);
    trun(r, "watch", gone, NULL);
    char want[64];
    snprintf(want, sizeof(want), "no process %d", (int)child);
    CHECK(trun_input_error(r, "leakscope watch", "gone", want));

    /* this process runs no agent: every snapshot fails, nothing taken */
    trun(r, "watch", pid, "--interval", "10ms", "--count", "2", "-o", wd, NULL);
    CHECK_U(r->status, 1);
    CHECK(strstr(r->err, "leakscope watch: snapshot of pid") != NULL);
    CHECK(strstr(r->err, "no snapshot taken") != NULL);
    rm_dir(wd);
    free(r);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-leakscope\n", argv[0]);
        return 2;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    trun_init(argv[1], dir);
    nmods = tsnap_self_modules(mods, 64);
    sym_plain(&pc_plain);
    sym_outer(&pc_outer);

    RUN(test_report_window);
    RUN(test_diff_cli);
    RUN(test_suspects_cli);
    RUN(test_watch_args);
    rmdir(dir);
    return t_done("test_cli_live");
}
