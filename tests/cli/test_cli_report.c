/*
 * test_cli_report.c - `leakscope report` as a user runs it (fork + exec of the built binary,
 * given as argv[1]): text and JSON output of a snapshot of this process, -o (atomic, no temp
 * left behind), suppressions, usage errors (exit 2), and unreadable, truncated or corrupted
 * snapshots (exit 1 with a clear message, never a crash or a sanitizer report).
 */
#define _GNU_SOURCE
#include "sym_target.h"
#include "tcheck.h"
#include "trun.h"
#include "tsnap.h"

#include <cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/ls-test-cli.XXXXXX";
static char snap_path[300];
static unsigned char *snap_bytes;
static size_t snap_size;
static uintptr_t pc_plain;

typedef trun_result_t run_result_t;
#define run trun

static void expect_input_error(const run_result_t *r, const char *what, const char *needle)
{
    CHECK(trun_input_error(r, "leakscope report", what, needle));
}

#define write_file trun_write_file
#define slurp      trun_slurp

static void make_snapshot(void)
{
    static tsnap_module_t mods[64];
    size_t nmods = tsnap_self_modules(mods, 64);
    static uint64_t s1[2], s2[] = {0x1234};
    s1[0] = pc_plain;
    s1[1] = 0x999;
    tsnap_stack_t st[] = {{1, 2, s1}, {2, 1, s2}};
    ls_fmt_block_t b[] = {tsnap_block(0x1000, 48, 1, LS_KIND_DEFINITELY, LS_NO_LEADER),
                          tsnap_block(0x2000, 16, 2, LS_KIND_INDIRECTLY, 0),
                          tsnap_block(0x3000, 8, 2, LS_KIND_REACHABLE, LS_NO_LEADER)};
    tsnap_t s = {.pid = 777,
                 .exe = mods[0].path,
                 .reason = LS_REASON_EXIT,
                 .leak_checked = 1,
                 .modules = mods,
                 .nmodules = nmods,
                 .stacks = st,
                 .nstacks = 2,
                 .blocks = b,
                 .nblocks = 3};
    snprintf(snap_path, sizeof(snap_path), "%s/good.lks", dir);
    CHECK(tsnap_write(snap_path, &s) == 0);
    struct stat sb;
    stat(snap_path, &sb);
    snap_size = (size_t)sb.st_size;
    snap_bytes = malloc(snap_size);
    int fd = open(snap_path, O_RDONLY);
    CHECK(read(fd, snap_bytes, snap_size) == (ssize_t)snap_size);
    close(fd);
}

static void test_text_default(void)
{
    run_result_t *r = malloc(sizeof(*r));
    run(r, "report", snap_path, NULL);
    CHECK_U(r->status, 0);
    CHECK(strncmp(r->out, "leakscope report - version 1\n", 29) == 0);
    CHECK(strstr(r->out, "64 (48 direct, 16 indirect) bytes in 1 blocks are definitely lost in "
                         "loss record 1 of 2\n") != NULL);
    CHECK(strstr(r->out, ": sym_plain (sym_target.c:") != NULL);
    CHECK(strstr(r->out, "   still reachable: 8 bytes in 1 blocks\n") != NULL);
    CHECK(r->err[0] == 0);
    /* options after the file, and --show-reachable */
    run(r, "report", snap_path, "--show-reachable", NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "8 bytes in 1 blocks are still reachable in loss record 3 of 3\n") !=
          NULL);
    free(r);
}

static void test_json_to_file(void)
{
    run_result_t *r = malloc(sizeof(*r));
    char out[400];
    snprintf(out, sizeof(out), "%s/report.json", dir);
    write_file(out, "old", 3);
    run(r, "report", "--format", "json", "-o", out, snap_path, NULL);
    CHECK_U(r->status, 0);
    CHECK(r->out[0] == 0 && r->err[0] == 0);
    char *buf = malloc(65536);
    slurp(out, buf, 65536);
    cJSON *root = cJSON_Parse(buf);
    CHECK(root != NULL);
    const cJSON *leaks = cJSON_GetObjectItemCaseSensitive(root, "leaks");
    CHECK_U(cJSON_GetArraySize(leaks), 2);
    const cJSON *f = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(leaks, 0), "stack"), 0);
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "function");
    CHECK(cJSON_IsString(fn) && strcmp(fn->valuestring, "sym_plain") == 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(root, "pid")->valuedouble == 777);
    cJSON_Delete(root);
    free(buf);
    struct stat sb;
    CHECK(stat(out, &sb) == 0 && (sb.st_mode & 0444) == 0444); /* not left 0600 by mkstemp */
    /* Only the files we made are in the directory: no temp file left behind. */
    DIR *d = opendir(dir);
    struct dirent *e;
    int others = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && strcmp(e->d_name, "report.json") &&
            strcmp(e->d_name, "good.lks"))
            others++, fprintf(stderr, "  stray file %s\n", e->d_name);
    closedir(d);
    CHECK(others == 0);
    /* An output in a missing directory: exit 1, message. */
    run(r, "report", "-o", "/nonexistent/dir/r.txt", snap_path, NULL);
    CHECK_U(r->status, 1);
    CHECK(strstr(r->err, "leakscope report: cannot create /nonexistent/dir/r.txt") != NULL);
    free(r);
}

static void test_suppressions(void)
{
    run_result_t *r = malloc(sizeof(*r));
    char supp[400];
    snprintf(supp, sizeof(supp), "%s/s.supp", dir);
    write_file(supp, "# mine\nleak:sym_plain\n", 22);
    run(r, "report", "--suppressions", supp, snap_path, NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "        suppressed: 48 bytes in 1 blocks\n") != NULL);
    CHECK(strstr(r->out, "leak:sym_plain") != NULL);
    write_file(supp, "leak:ok\n\nbogus line\n", 20);
    run(r, "report", "--suppressions", supp, snap_path, NULL);
    char want[500];
    snprintf(want, sizeof(want), "%s:3: expected \"leak:PATTERN\"", supp);
    expect_input_error(r, "bad suppressions", want);
    unlink(supp);
    free(r);
}

static void test_usage_errors(void)
{
    run_result_t *r = malloc(sizeof(*r));
    run(r, "report", NULL);
    CHECK_U(r->status, 2);
    CHECK(strstr(r->err, "no snapshot file given") != NULL);
    run(r, "report", "--format", "xml", snap_path, NULL);
    CHECK_U(r->status, 2);
    CHECK(strstr(r->err, "unknown format 'xml'") != NULL);
    run(r, "report", "--bogus", snap_path, NULL);
    CHECK_U(r->status, 2);
    CHECK(strstr(r->err, "unknown option '--bogus'") != NULL);
    run(r, "report", snap_path, snap_path, NULL);
    CHECK_U(r->status, 2);
    CHECK(strstr(r->err, "unexpected argument") != NULL);
    run(r, "report", snap_path, "--suppressions", NULL);
    CHECK_U(r->status, 2);
    CHECK(strstr(r->err, "needs an argument") != NULL);
    run(r, "report", "--help", NULL);
    CHECK_U(r->status, 0);
    CHECK(strstr(r->out, "usage: leakscope report") != NULL);
    free(r);
}

static void test_bad_inputs(void)
{
    run_result_t *r = malloc(sizeof(*r));
    char p[400];
    snprintf(p, sizeof(p), "%s/bad.lks", dir);

    run(r, "report", "/nonexistent/snap.lks", NULL);
    expect_input_error(r, "missing file", "cannot open /nonexistent/snap.lks");
    run(r, "report", dir, NULL);
    expect_input_error(r, "directory", "is not a regular file");
    write_file(p, "", 0);
    run(r, "report", p, NULL);
    expect_input_error(r, "empty", "too short");
    write_file(p, "this is not a snapshot, just some text\n", 39);
    run(r, "report", p, NULL);
    expect_input_error(r, "text", "not a leakscope snapshot");

    /* truncated in the middle: no END chunk */
    write_file(p, snap_bytes, snap_size / 2);
    run(r, "report", p, NULL);
    expect_input_error(r, "half", "truncated");
    write_file(p, snap_bytes, snap_size - 24); /* exactly the END chunk missing */
    run(r, "report", p, NULL);
    expect_input_error(r, "no END", "truncated");

    /* one flipped byte in a payload: checksum */
    unsigned char *c = malloc(snap_size);
    memcpy(c, snap_bytes, snap_size);
    c[32 + 24 + 4] ^= 0x40; /* inside the first chunk's payload */
    write_file(p, c, snap_size);
    run(r, "report", p, NULL);
    expect_input_error(r, "flipped", "checksum mismatch");

    /* every 16th prefix length, and every length near the end: always a clean error */
    for (size_t n = 0; n < snap_size; n += (n + 64 < snap_size ? 16 : 1)) {
        write_file(p, snap_bytes, n);
        run(r, "report", "--format", "json", p, NULL);
        char what[64];
        snprintf(what, sizeof(what), "prefix %zu", n);
        expect_input_error(r, what, p);
    }
    /* a flipped bit in every header word (chunk headers included) */
    for (size_t off = 0; off < snap_size; off += 16) {
        memcpy(c, snap_bytes, snap_size);
        c[off] ^= 0x01;
        write_file(p, c, snap_size);
        run(r, "report", p, NULL);
        if (r->status == 0) continue; /* e.g. a reserved field: still a valid snapshot */
        char what[64];
        snprintf(what, sizeof(what), "flip at %zu", off);
        expect_input_error(r, what, p);
    }
    free(c);
    unlink(p);
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
    sym_plain(&pc_plain);
    make_snapshot();

    RUN(test_text_default);
    RUN(test_json_to_file);
    RUN(test_suppressions);
    RUN(test_usage_errors);
    RUN(test_bad_inputs);

    char p[400];
    snprintf(p, sizeof(p), "%s/report.json", dir);
    unlink(p);
    unlink(snap_path);
    rmdir(dir);
    free(snap_bytes);
    return t_done("test_cli_report");
}
