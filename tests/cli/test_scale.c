/*
 * test_scale.c - `leakscope report` and `diff` on big synthetic snapshots (argv[1]: the binary;
 * argv[2]: blocks, default 1,000,000; argv[3]: stacks, default 100,000), timed. The stacks are
 * 8-24 frames drawn from a few thousand real return addresses of this program's code (so the
 * symbolizer does real DWARF work once per pc) under a libc frame for half of them, like
 * allocations through strdup. Checks that both commands succeed, that the report's totals are
 * the snapshot's, and that each command stays under a generous bound (argv[4], seconds; 0 = no
 * bound, for sanitizer builds). Prints the times: the numbers quoted in docs/DESIGN.md.
 */
#define _GNU_SOURCE
#include "ls_agg.h"
#include "ls_report.h"
#include "ls_series.h"
#include "sym_target.h"
#include "tcheck.h"
#include "trun.h"
#include "tsnap.h"

#include <cJSON.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/ls-test-scale.XXXXXX";
static tsnap_module_t mods[64];
static size_t nmods;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes a snapshot of nblocks blocks over nstacks stacks; seed varies the blocks only. */
static void make(const char *path, size_t nblocks, size_t nstacks, const uint64_t *pool,
                 size_t npool, uint64_t libc_pc, uint64_t seed, uint64_t *total)
{
    uint64_t save = rng;
    tsnap_stack_t *st = calloc(nstacks, sizeof(*st));
    uint64_t *pcs = calloc(nstacks * 24, sizeof(*pcs));
    for (size_t i = 0; i < nstacks; i++) {
        uint32_t n = 8 + (uint32_t)(next() % 17);
        uint64_t *p = pcs + i * 24;
        uint32_t k = 0;
        if (i % 2) p[k++] = libc_pc;
        /* a shared outer part (main loops) and a varied inner part, like real programs */
        for (; k < n; k++) p[k] = pool[k < n - 4 ? next() % npool : npool - 1 - (n - k)];
        st[i] = (tsnap_stack_t){(uint32_t)i + 1, n, p};
    }
    rng = save ^ seed;
    ls_fmt_block_t *b = calloc(nblocks, sizeof(*b));
    *total = 0;
    for (size_t i = 0; i < nblocks; i++) {
        uint64_t size = 16 + next() % 4096;
        b[i] = tsnap_block_born(0x10000000 + 0x2000 * (uint64_t)i, size,
                                (uint32_t)(next() % nstacks) + 1, LS_KIND_UNCHECKED, i * 1000);
        *total += size;
    }
    tsnap_t t = {.pid = 4242,
                 .exe = mods[0].path,
                 .reason = LS_REASON_LIVE,
                 .modules = mods,
                 .nmodules = nmods,
                 .stacks = st,
                 .nstacks = nstacks,
                 .blocks = b,
                 .nblocks = nblocks,
                 .snap_ns = (uint64_t)nblocks * 1000 + 1};
    CHECK(tsnap_write(path, &t) == 0);
    rng = save;
    free(b);
    free(pcs);
    free(st);
}

/* The last cap - 1 bytes of path. */
static void tail_of(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    buf[0] = 0;
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)cap - 1 ? size - (long)cap + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* A function of libc itself (RTLD_DEFAULT would give a sanitizer's interceptor). */
static uintptr_t libc_sym(const char *name)
{
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    void *p = h ? dlsym(h, name) : NULL;
    if (h) dlclose(h);
    return (uintptr_t)p;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-leakscope [BLOCKS [STACKS [MAX-SECONDS]]]\n", argv[0]);
        return 2;
    }
    size_t nblocks = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    size_t nstacks = argc > 3 ? strtoul(argv[3], NULL, 10) : 100000;
    double max_s = argc > 4 ? strtod(argv[4], NULL) : 30;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    trun_init(argv[1], dir);
    nmods = tsnap_self_modules(mods, 64);

    /* Return addresses inside real functions of this program: 8-byte steps through them. */
    void *fns[] = {
        (void *)ls_agg_build,          (void *)ls_report_build,     (void *)ls_report_write_json,
        (void *)ls_report_write_text,  (void *)ls_series_add_file,  (void *)ls_suspects_find,
        (void *)ls_diff_build,         (void *)ls_window_bound,     (void *)ls_stack_expand,
        (void *)ls_agg_weigh_blocks,   (void *)sym_plain,           (void *)sym_outer,
        (void *)tsnap_write,           (void *)ls_site_table_build, (void *)ls_diff_write_text,
        (void *)ls_suspects_write_text};
    size_t nfns = sizeof(fns) / sizeof(fns[0]), npool = nfns * 200;
    uint64_t *pool = malloc(npool * sizeof(*pool));
    for (size_t i = 0; i < npool; i++)
        pool[i] = (uint64_t)(uintptr_t)fns[i % nfns] + 1 + (i / nfns) * 3;
    uint64_t libc_pc = (uint64_t)(uintptr_t)libc_sym("strdup") + 16;

    char a[300], b[300];
    snprintf(a, sizeof(a), "%s/big1.lsnap", dir);
    snprintf(b, sizeof(b), "%s/big2.lsnap", dir);
    uint64_t total1, total2;
    double t0 = now();
    make(a, nblocks, nstacks, pool, npool, libc_pc, 1, &total1);
    make(b, nblocks + nblocks / 10, nstacks, pool, npool, libc_pc, 2, &total2);
    printf("wrote 2 snapshots of %zu and %zu blocks over %zu stacks in %.2f s\n", nblocks,
           nblocks + nblocks / 10, nstacks, now() - t0);

    trun_result_t *r = malloc(sizeof(*r));
    char out[300], *buf = malloc(1 << 16);
    snprintf(out, sizeof(out), "%s/out", dir);
    double t[5];
    const char *what[5] = {"report (text)", "report --format json", "report --born-after 0.5s",
                           "diff (by site, json)", "diff --by stack (text)"};
    t0 = now();
    trun(r, "report", a, "-o", out, NULL);
    t[0] = now() - t0;
    CHECK_U(r->status, 0);
    tail_of(out, buf, 1 << 16);
    char want[200], num[32], num2[32];
    snprintf(want, sizeof(want), "       not checked: %s bytes in %s blocks\n",
             ls_commas(total1, num), ls_commas(nblocks, num2));
    CHECK(strstr(buf, want) != NULL);

    t0 = now();
    trun(r, "report", a, "--format", "json", "-o", out, NULL);
    t[1] = now() - t0;
    CHECK_U(r->status, 0);
    tail_of(out, buf, 1 << 16);
    CHECK(strstr(buf, "\t\"suppressions\":\t[]\n}\n") != NULL); /* ends whole */

    t0 = now();
    trun(r, "report", a, "--born-after", "0.5s", "-o", out, NULL);
    t[2] = now() - t0;
    CHECK_U(r->status, 0);

    t0 = now();
    trun(r, "diff", a, b, "--format", "json", "--top", "50", NULL);
    t[3] = now() - t0;
    CHECK_U(r->status, 0);
    cJSON *root = cJSON_Parse(r->out);
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(root, "totals");
    CHECK(tot && cJSON_GetObjectItemCaseSensitive(tot, "old_bytes")->valuedouble == (double)total1);
    CHECK(tot && cJSON_GetObjectItemCaseSensitive(tot, "new_bytes")->valuedouble == (double)total2);
    cJSON_Delete(root);

    t0 = now();
    trun(r, "diff", a, b, "--by", "stack", "-o", out, NULL);
    t[4] = now() - t0;
    CHECK_U(r->status, 0);

    for (int i = 0; i < 5; i++) printf("%-26s %6.2f s\n", what[i], t[i]);
    for (int i = 0; i < 5 && max_s > 0; i++) CHECK(t[i] < max_s);
    unlink(out);
    free(buf);
    if (getenv("LS_SCALE_KEEP")) {
        printf("kept %s and %s\n", a, b);
    } else {
        unlink(a);
        unlink(b);
        rmdir(dir);
    }
    free(r);
    free(pool);
    /* one case: the checks above */
    if (t_checks_failed)
        t_cases_failed++;
    else
        t_cases_passed++;
    return t_done("test_scale");
}
