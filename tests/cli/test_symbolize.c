/*
 * test_symbolize.c - ls_symbolize against this very process: return addresses captured in
 * sym_target.c (built -O2 -g) and sym_cxx.cpp, a snapshot of this process's modules written
 * with the real writer and read back, then resolved offline from the files on disk.
 * Also: stale modules (build-id mismatch, file gone), PCs in no module, the cache.
 */
#define _GNU_SOURCE
#include "ls_symbolize.h"
#include "sym_target.h"
#include "tcheck.h"
#include "tsnap.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/ls-test-sym.XXXXXX";
static tsnap_module_t mods[64];
static size_t nmods;
static uintptr_t pc_plain, pc_inline, pc_cxx;
static const char *exe_override; /* META exe when set, else the first module's path */

/* Writes and loads a snapshot with the given modules and one stack holding pcs. */
static void load_snap(ls_snapshot_t *snap, const tsnap_module_t *m, size_t nm, const uint64_t *pcs,
                      uint32_t npcs)
{
    char path[256], err[512];
    snprintf(path, sizeof(path), "%s/snap.lks", dir);
    tsnap_stack_t st = {1, npcs, pcs};
    tsnap_t s = {.pid = 42,
                 .exe = exe_override ? exe_override : m[0].path,
                 .reason = LS_REASON_EXIT,
                 .leak_checked = 1,
                 .modules = m,
                 .nmodules = nm,
                 .stacks = &st,
                 .nstacks = 1};
    CHECK(tsnap_write(path, &s) == 0);
    int rc = ls_snapshot_load(path, snap, err, sizeof(err));
    if (rc) fprintf(stderr, "load: %s\n", err);
    CHECK(rc == 0);
}

static const char *base(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

static void test_plain_function_file_line(void)
{
    ls_snapshot_t snap;
    uint64_t pcs[] = {pc_plain};
    load_snap(&snap, mods, nmods, pcs, 1);
    ls_symbolizer_t *s = ls_symbolizer_new(&snap, NULL);
    const ls_sym_frame_t *f = NULL;
    size_t n = ls_symbolize_pc(s, pc_plain, 1, &f);
    CHECK_U(n, 1);
    if (n >= 1) {
        CHECK_STR(f[0].function, "sym_plain");
        CHECK_STR(base(f[0].file), "sym_target.c");
        CHECK(f[0].file && f[0].file[0] == '/'); /* joined with the comp dir */
        CHECK_U(f[0].line, tsnap_find_line(SYM_TARGET_SRC, "@plain-call"));
        CHECK_STR(f[0].object, mods[0].path);
        CHECK_U(f[0].offset, pc_plain - mods[0].bias);
        CHECK_U(f[0].pc, pc_plain);
        CHECK_U(f[0].inlined, 0);
        CHECK_U(f[0].status, LS_SYM_OK);
    }
    ls_symbolizer_free(s);
    ls_snapshot_free(&snap);
}

static void test_inlined_chain(void)
{
    ls_snapshot_t snap;
    uint64_t pcs[] = {pc_inline};
    load_snap(&snap, mods, nmods, pcs, 1);
    ls_symbolizer_t *s = ls_symbolizer_new(&snap, NULL);
    const ls_sym_frame_t *f = NULL;
    size_t n = ls_symbolize_pc(s, pc_inline, 1, &f);
    CHECK_U(n, 2);
    if (n == 2) {
        CHECK_STR(f[0].function, "sym_inner");
        CHECK_U(f[0].inlined, 1);
        CHECK_STR(base(f[0].file), "sym_target.c");
        CHECK_U(f[0].line, tsnap_find_line(SYM_TARGET_SRC, "@inner-call"));
        CHECK_STR(f[1].function, "sym_outer");
        CHECK_U(f[1].inlined, 0);
        CHECK_STR(base(f[1].file), "sym_target.c");
        CHECK_U(f[1].line, tsnap_find_line(SYM_TARGET_SRC, "@outer-call"));
        CHECK_U(f[0].pc, pc_inline);
        CHECK_U(f[1].pc, pc_inline);
    }
    ls_symbolizer_free(s);
    ls_snapshot_free(&snap);
}

static void test_cxx_demangled(void)
{
    ls_snapshot_t snap;
    uint64_t pcs[] = {pc_cxx};
    load_snap(&snap, mods, nmods, pcs, 1);
    ls_symbolizer_t *s = ls_symbolizer_new(&snap, NULL);
    const ls_sym_frame_t *f = NULL;
    size_t n = ls_symbolize_pc(s, pc_cxx, 1, &f);
    CHECK_U(n, 1);
    if (n >= 1) {
        CHECK_STR(f[0].function, "ns::Widget<int>::make(int, unsigned long*)");
        CHECK_STR(base(f[0].file), "sym_cxx.cpp");
        CHECK_U(f[0].line, tsnap_find_line(SYM_CXX_SRC, "@cxx-call"));
    }
    ls_symbolizer_free(s);
    ls_snapshot_free(&snap);
}

static void test_demangle_direct(void)
{
    char *d = ls_demangle("_ZN2ns6Widget4makeEi");
    CHECK_STR(d, "ns::Widget::make(int)");
    free(d);
    CHECK(ls_demangle("make_node") == NULL);
    CHECK(ls_demangle("_Zgarbage!") == NULL);
    CHECK(ls_demangle(NULL) == NULL);
}

static void test_build_id_mismatch(void)
{
    tsnap_module_t m[64];
    memcpy(m, mods, nmods * sizeof(m[0]));
    uint8_t wrong[20];
    memset(wrong, 0xab, sizeof(wrong));
    m[0].build_id = wrong;
    m[0].build_id_len = sizeof(wrong);
    ls_snapshot_t snap;
    uint64_t pcs[] = {pc_plain};
    load_snap(&snap, m, nmods, pcs, 1);
    ls_symbolizer_t *s = ls_symbolizer_new(&snap, NULL);
    const ls_sym_frame_t *f = NULL;
    size_t n = ls_symbolize_pc(s, pc_plain, 1, &f);
    CHECK_U(n, 1);
    if (n == 1) {
        CHECK(f[0].function == NULL);
        CHECK(f[0].file == NULL);
        CHECK_STR(f[0].object, mods[0].path);
        CHECK_U(f[0].offset, pc_plain - mods[0].bias);
        CHECK_U(f[0].status, LS_SYM_BUILD_ID);
    }
    ls_symbolizer_free(s);
    ls_snapshot_free(&snap);
}

static void test_replaced_file(void)
{
    /* The recorded path now holds another program (/bin/sh): its build-id differs. */
    tsnap_module_t m[1];
    m[0] = mods[0];
    m[0].path = "/bin/sh";
    ls_snapshot_t snap;
    uint64_t pcs[] = {pc_plain};
    load_snap(&snap, m, 1, pcs, 1);
    ls_symbolizer_t *s = ls_symbolizer_new(&snap, NULL);
    const ls_sym_frame_t *f = NULL;
    CHECK_U(ls_symbolize_pc(s, pc_plain, 1, &f), 1);
    CHECK(f[0].function == NULL && f[0].file == NULL);
    CHECK_STR(f[0].object, "/bin/sh");
    CHECK_U(f[0].status, LS_SYM_BUILD_ID);
    CHECK_STR(ls_sym_status_name(f[0].status), "build-id mismatch");
    ls_symbolizer_free(s);
    ls_snapshot_free(&snap);
}

static void test_no_build_id_recorded(void)
{
    /* Without a recorded build-id the load range is checked: right range resolves, a range
     * that does not fit the file is refused. */
    tsnap_module_t m[2];
    m[0] = mods[0];
    m[0].build_id = NULL;
    m[0].build_id_len = 0;
    m[1] = m[0];
    m[1].lo = 0x100000000000ull;
    m[1].hi = m[1].lo + 0x10000000;
    m[1].bias = m[1].lo;
    ls_snapshot_t snap;
    uint64_t pcs[] = {pc_plain, m[1].lo + 0x1234};
    load_snap(&snap, m, 2, pcs, 2);
    ls_symbolizer_t *s = ls_symbolizer_new(&snap, NULL);
    const ls_sym_frame_t *f = NULL;
    CHECK_U(ls_symbolize_pc(s, pc_plain, 1, &f), 1);
    CHECK_STR(f[0].function, "sym_plain");
    CHECK_U(ls_symbolize_pc(s, pcs[1], 1, &f), 1);
    CHECK(f[0].function == NULL);
    CHECK_U(f[0].status, LS_SYM_BUILD_ID);
    CHECK_U(f[0].offset, 0x1234);
    ls_symbolizer_free(s);
    ls_snapshot_free(&snap);
}

static void test_missing_file_and_no_module(void)
{
    tsnap_module_t m[2];
    m[0] = mods[0];
    memset(&m[1], 0, sizeof(m[1]));
    m[1].path = "/nonexistent/dir/libgone.so";
    m[1].lo = 0x200000000000ull;
    m[1].hi = m[1].lo + 0x4000;
    m[1].bias = m[1].lo;
    m[1].first_stack = 1;
    m[1].end_stack = UINT32_MAX;
    uint64_t in_gone = m[1].lo + 0x1a0, nowhere = 0x10;
    ls_snapshot_t snap;
    uint64_t pcs[] = {in_gone, nowhere};
    load_snap(&snap, m, 2, pcs, 2);
    ls_symbolizer_t *s = ls_symbolizer_new(&snap, NULL);
    const ls_sym_frame_t *f = NULL;
    CHECK_U(ls_symbolize_pc(s, in_gone, 1, &f), 1);
    CHECK(f[0].function == NULL);
    CHECK_STR(f[0].object, "/nonexistent/dir/libgone.so");
    CHECK_U(f[0].offset, 0x1a0);
    CHECK_U(f[0].status, LS_SYM_NO_FILE);
    CHECK_U(ls_symbolize_pc(s, nowhere, 1, &f), 1);
    CHECK(f[0].function == NULL && f[0].object == NULL && f[0].file == NULL);
    CHECK_U(f[0].status, LS_SYM_NO_MODULE);
    CHECK_U(f[0].pc, nowhere);
    ls_symbolizer_free(s);
    ls_snapshot_free(&snap);
}

static void test_empty_path_is_the_program(void)
{
    /* dl_iterate_phdr names the main program ""; the snapshot's exe stands in for it. */
    tsnap_module_t m[1];
    m[0] = mods[0];
    m[0].path = "";
    exe_override = mods[0].path;
    ls_snapshot_t snap;
    uint64_t pcs[] = {pc_plain};
    load_snap(&snap, m, 1, pcs, 1);
    exe_override = NULL;
    ls_symbolizer_t *s = ls_symbolizer_new(&snap, NULL);
    const ls_sym_frame_t *f = NULL;
    CHECK_U(ls_symbolize_pc(s, pc_plain, 1, &f), 1);
    CHECK_STR(f[0].function, "sym_plain");
    CHECK_STR(f[0].object, mods[0].path);
    ls_symbolizer_free(s);
    ls_snapshot_free(&snap);
}

static void test_cache(void)
{
    ls_snapshot_t snap;
    uint64_t pcs[] = {pc_plain, pc_inline};
    load_snap(&snap, mods, nmods, pcs, 2);
    ls_symbolizer_t *s = ls_symbolizer_new(&snap, NULL);
    const ls_sym_frame_t *a = NULL, *b = NULL, *c = NULL;
    ls_symbolize_pc(s, pc_plain, 1, &a);
    ls_symbolize_pc(s, pc_inline, 1, &c);
    for (int i = 0; i < 1000; i++) ls_symbolize_pc(s, pc_plain, 1, &b);
    uint64_t lookups, misses;
    ls_symbolizer_stats(s, &lookups, &misses);
    CHECK_U(lookups, 1002);
    CHECK_U(misses, 2);
    CHECK(a == b);
    /* Interned strings: the same file name is one pointer. */
    CHECK(a[0].file == c[0].file);
    /* Many distinct PCs grow the table without losing entries. */
    for (uint64_t p = 0x1000; p < 0x1000 + 5000; p++) ls_symbolize_pc(s, p, 1, &b);
    ls_symbolize_pc(s, pc_plain, 1, &b);
    CHECK(a == b);
    ls_symbolizer_stats(s, &lookups, &misses);
    CHECK_U(misses, 5002);
    ls_symbolizer_free(s);
    ls_snapshot_free(&snap);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    sym_plain(&pc_plain);
    sym_outer(&pc_inline);
    sym_cxx_run(&pc_cxx);
    nmods = tsnap_self_modules(mods, 64);
    CHECK(nmods > 1);

    RUN(test_plain_function_file_line);
    RUN(test_inlined_chain);
    RUN(test_cxx_demangled);
    RUN(test_demangle_direct);
    RUN(test_build_id_mismatch);
    RUN(test_replaced_file);
    RUN(test_no_build_id_recorded);
    RUN(test_missing_file_and_no_module);
    RUN(test_empty_path_is_the_program);
    RUN(test_cache);

    char path[256];
    snprintf(path, sizeof(path), "%s/snap.lks", dir);
    unlink(path);
    rmdir(dir);
    return t_done("test_symbolize");
}
