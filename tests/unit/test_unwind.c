/*
 * test_unwind.c - unit tests of src/agent/ls_unwind.c (compiled into this executable).
 *
 * The reference is libunwind: for each stack, ls__unwind_fast must give the same PCs frame by
 * frame as ls__unwind_libunwind (and as the frame-pointer walk over the part built with frame
 * pointers). Stacks run through libuwt_nofp.so (-O2 -fomit-frame-pointer, five frame shapes),
 * libuwt_fp.so, libc's qsort, signal handlers, dlopen'd objects and four threads at once.
 * libunwind is not linked: ls__unwind_libunwind_load dlopen()s it, as in the agent.
 * `test_unwind small` runs it all in small mode (mode sample's: misses read the objects' files
 * with pread), where a dlopen'd object whose file was replaced must be read from memory.
 * Ends with "N passed, N failed"; exit status 1 on any failure.
 */
#define _GNU_SOURCE
#include "ls_unwind.h"
#include "uwt_lib.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXF 256

static int g_checks_failed; /* within the current test */
static int g_passed, g_failed;
static bool g_small; /* ls__unwind_init_small: rules compiled from the objects' files */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_checks_failed++;                                                                     \
        }                                                                                          \
    } while (0)

static __thread uintptr_t t_stack_hi;

/* This thread's stack top, looked up once (the way the agent is meant to do it). */
static uintptr_t stack_hi(void)
{
    if (!t_stack_hi) t_stack_hi = ls__unwind_stack_top((uintptr_t)__builtin_frame_address(0));
    return t_stack_hi;
}

/* ---- capturing and comparing ----------------------------------------------------------------- */

typedef struct cap {
    size_t max;
    size_t nfast, nfast0, nlu, nlu_from, nfp;
    uintptr_t fast[MAXF], fast0[MAXF], lu[MAXF], lu_from[MAXF], fp[MAXF];
} cap_t;

/* Unwinds its caller's stack four ways. Built with frame pointers like the agent's hooks. */
static __attribute__((noinline)) void capture(void *arg)
{
    cap_t *c = arg;
    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    size_t max = c->max ? c->max : MAXF;
    c->nfast = ls__unwind_fast(&f, stack_hi(), c->fast, max);
    c->nfast0 = ls__unwind_fast(&f, 0, c->fast0, max); /* stack top unknown */
    c->nlu = ls__unwind_libunwind(c->lu, max, 1);
    c->nlu_from = ls__unwind_libunwind_from(&f, c->lu_from, max);
    c->nfp = ls__unwind_fp(&f, stack_hi(), c->fp, max);
}

static bool same_list(const uintptr_t *a, size_t na, const uintptr_t *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

static void print_pc(FILE *out, uintptr_t pc)
{
    Dl_info di;
    if (dladdr((void *)pc, &di) && di.dli_fname) {
        const char *base = strrchr(di.dli_fname, '/');
        fprintf(out, "%#lx %s(%s+%#lx)", (unsigned long)pc, base ? base + 1 : di.dli_fname,
                di.dli_sname ? di.dli_sname : "?",
                (unsigned long)(pc - (uintptr_t)(di.dli_saddr ? di.dli_saddr : di.dli_fbase)));
    } else {
        fprintf(out, "%#lx ?", (unsigned long)pc);
    }
}

static void dump_two(const char *na, const uintptr_t *a, size_t n_a, const char *nb,
                     const uintptr_t *b, size_t n_b)
{
    fprintf(stderr, "  %-34s | %s\n", na, nb);
    for (size_t i = 0; i < n_a || i < n_b; i++) {
        fprintf(stderr, "  %2zu %c ", i, i < n_a && i < n_b && a[i] == b[i] ? ' ' : '*');
        if (i < n_a) print_pc(stderr, a[i]);
        fprintf(stderr, "  |  ");
        if (i < n_b) print_pc(stderr, b[i]);
        fputc('\n', stderr);
    }
}

#define CHECK_SAME(what, a, na, b, nb)                                                             \
    do {                                                                                           \
        bool ok_ = same_list(a, na, b, nb);                                                        \
        CHECK(ok_, "%s: %s (%zu frames) != %s (%zu frames)", what, #a, (size_t)(na), #b,           \
              (size_t)(nb));                                                                       \
        if (!ok_) dump_two(#a, a, na, #b, b, nb);                                                  \
    } while (0)

/* Address range [lo, hi) of the object that holds fn (all its PT_LOADs). */
typedef struct range {
    uintptr_t base, lo, hi;
} range_t;

static int range_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    range_t *r = data;
    (void)size;
    if (info->dlpi_addr != r->base) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t s = info->dlpi_addr + ph->p_vaddr;
        if (!r->lo || s < r->lo) r->lo = s;
        if (s + ph->p_memsz > r->hi) r->hi = s + ph->p_memsz;
    }
    return 1;
}

static range_t range_of(const void *fn)
{
    range_t r = {0, 0, 0};
    Dl_info di;
    if (dladdr(fn, &di)) {
        /* dli_fbase is the mapping start; dlpi_addr the load bias (0 for a non-PIE exe). */
        struct link_map *lm = NULL;
        if (dladdr1(fn, &di, (void **)&lm, RTLD_DL_LINKMAP) && lm) r.base = lm->l_addr;
        dl_iterate_phdr(range_cb, &r);
    }
    return r;
}

static size_t count_in(const uintptr_t *pcs, size_t n, range_t r)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += pcs[i] >= r.lo && pcs[i] < r.hi;
    return k;
}

static range_t g_exe, g_nofp, g_fp, g_libc;

/* ---- tests ----------------------------------------------------------------------------------- */

/* Small mode: every miss of a walk through the exe, libuwt_* and libc is compiled from a file. */
static ls_uw_stats_t g_before;
static void files_begin(void)
{
    ls__unwind_stats(&g_before);
}
static void files_end(const char *what)
{
    ls_uw_stats_t s;
    ls__unwind_stats(&s);
    uint64_t misses = s.misses - g_before.misses, from_file = s.from_file - g_before.from_file;
    if (g_small)
        CHECK(from_file == misses && s.files_refused == g_before.files_refused,
              "%s: %lu misses, %lu from a file", what, (unsigned long)misses,
              (unsigned long)from_file);
    else
        CHECK(from_file == 0, "%s: full mode reads the mappings", what);
}

static void test_nofp_chain(void)
{
    static const int depths[] = {0, 1, 5, 12, 40, 60};
    files_begin();
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        cap_t cc[2] = {{0}, {0}};
        /* volatile: one call site for both walks (no unrolling), so the lists must match. */
        for (volatile int rep = 0; rep < 2; rep++) nofp_recurse(depths[i], capture, &cc[rep]);
        const cap_t *c = &cc[0], *d = &cc[1];
        CHECK_SAME("nofp chain", c->fast, c->nfast, c->lu, c->nlu);
        CHECK_SAME("nofp chain, stack_hi = 0", c->fast, c->nfast, c->fast0, c->nfast0);
        CHECK_SAME("nofp chain, libunwind from start", c->fast, c->nfast, c->lu_from, c->nlu_from);
        CHECK(count_in(c->fast, c->nfast, g_nofp) >= (size_t)depths[i] + 2,
              "depth %d: only %zu frames in libuwt_nofp", depths[i],
              count_in(c->fast, c->nfast, g_nofp));
        CHECK(count_in(c->fast, c->nfast, g_exe) >= 2, "main and the test fn should be there");
        /* The second walk is all cache hits and must not differ. */
        CHECK_SAME("nofp chain, warm", c->fast, c->nfast, d->fast, d->nfast);
    }
    files_end("nofp chain");
}

static void test_fp_chain(void)
{
    cap_t c = {0};
    fp_recurse(17, capture, &c);
    CHECK_SAME("fp chain", c.fast, c.nfast, c.lu, c.nlu);
    /* The frame-pointer walk is right up to and including the first return address into code
     * without frame pointers (libc's __libc_start_call_main). */
    size_t m = 0;
    while (m < c.nfast && (count_in(&c.fast[m], 1, g_fp) || count_in(&c.fast[m], 1, g_exe))) m++;
    CHECK(m >= 19 && m < c.nfast, "m = %zu of %zu", m, c.nfast);
    CHECK(c.nfp > m, "fp walk has %zu frames, need > %zu", c.nfp, m);
    if (c.nfp > m) CHECK_SAME("fp prefix", c.fast, m + 1, c.fp, m + 1);
}

static void test_qsort(void)
{
    files_begin();
    cap_t c = {0};
    nofp_recurse_qsort(8, capture, &c);
    CHECK_SAME("through qsort", c.fast, c.nfast, c.lu, c.nlu);
    CHECK_SAME("through qsort, libunwind from start", c.fast, c.nfast, c.lu_from, c.nlu_from);
    CHECK(count_in(c.fast, c.nfast, g_libc) >= 3, "qsort frames from libc: %zu",
          count_in(c.fast, c.nfast, g_libc));
    CHECK(count_in(c.fast, c.nfast, g_nofp) >= 10, "nofp frames: %zu",
          count_in(c.fast, c.nfast, g_nofp));
    cap_t d = {0};
    fp_recurse_qsort(8, capture, &d);
    CHECK_SAME("through qsort (fp lib)", d.fast, d.nfast, d.lu, d.nlu);
    files_end("qsort");
}

static void test_max(void)
{
    cap_t c = {.max = 64};
    nofp_recurse(300, capture, &c);
    CHECK(c.nfast == 64 && c.nlu == 64, "fast %zu, libunwind %zu", c.nfast, c.nlu);
    CHECK_SAME("max 64", c.fast, c.nfast, c.lu, c.nlu);
    cap_t one = {.max = 1};
    nofp_recurse(3, capture, &one);
    CHECK(one.nfast == 1 && one.nlu == 1 && one.fast[0] == one.lu[0], "max 1");

    ls_uw_frame_t f;
    LS_UW_CALLER_FRAME(&f);
    uintptr_t pcs[1];
    CHECK(ls__unwind_fast(&f, stack_hi(), pcs, 0) == 0, "max 0 writes nothing");
}

/* A PC outside every object: one frame, counted as "no rule"; cached, and re-checked after
 * ls__unwind_modules_added (a dlopen could have mapped code there). */
static void test_no_fde(void)
{
    void *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(page != MAP_FAILED, "mmap");
    uintptr_t words[8] = {0};
    ls_uw_frame_t f = {(uintptr_t)page + 100, (uintptr_t)words, 0};
    uintptr_t pcs[8];
    ls_uw_stats_t s0, s1, s2, s3;
    ls__unwind_stats(&s0);
    CHECK(ls__unwind_fast(&f, stack_hi(), pcs, 8) == 1 && pcs[0] == f.pc, "one frame");
    ls__unwind_stats(&s1);
    CHECK(ls__unwind_fast(&f, stack_hi(), pcs, 8) == 1, "one frame again");
    ls__unwind_stats(&s2);
    ls__unwind_modules_added();
    CHECK(ls__unwind_fast(&f, stack_hi(), pcs, 8) == 1, "one frame after dlopen");
    ls__unwind_stats(&s3);
    CHECK(s1.misses == s0.misses + 1 && s1.no_rule == s0.no_rule + 1, "first: a miss");
    CHECK(s2.misses == s1.misses && s2.hits == s1.hits + 1, "second: a cached verdict");
    CHECK(s3.misses == s2.misses + 1, "after modules_added: asked again");
    munmap(page, 4096);
}

/* ---- threads --------------------------------------------------------------------------------- */

static volatile int g_stop_changer;
static int g_thread_mismatch, g_thread_walks;

static void *changer(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !g_stop_changer; i++) {
        if (i & 1)
            ls__unwind_modules_changed();
        else
            ls__unwind_modules_added();
        if ((i & 1023) > 512) usleep(20); /* alternate storms and calm */
    }
    return NULL;
}

static void *worker(void *arg)
{
    int seed = (int)(intptr_t)arg;
    stack_hi();
    for (int i = 0; i < 1500; i++) {
        cap_t c = {0};
        int depth = (i * 7 + seed * 13) % 45;
        if (i % 3 == 2)
            nofp_recurse_qsort(depth, capture, &c);
        else
            nofp_recurse(depth, capture, &c);
        bool ok = same_list(c.fast, c.nfast, c.lu, c.nlu) &&
                  count_in(c.fast, c.nfast, g_nofp) >= (size_t)depth + 2;
        if (!ok && __atomic_fetch_add(&g_thread_mismatch, 1, __ATOMIC_RELAXED) == 0)
            dump_two("fast", c.fast, c.nfast, "libunwind", c.lu, c.nlu);
        __atomic_fetch_add(&g_thread_walks, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t w[4], ch;
    g_stop_changer = 0;
    CHECK(pthread_create(&ch, NULL, changer, NULL) == 0, "changer");
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&w[i], NULL, worker, (void *)(intptr_t)i) == 0, "worker");
    for (int i = 0; i < 4; i++) pthread_join(w[i], NULL);
    g_stop_changer = 1;
    pthread_join(ch, NULL);
    CHECK(g_thread_walks == 4 * 1500, "walks %d", g_thread_walks);
    CHECK(g_thread_mismatch == 0, "%d of %d walks differ from libunwind", g_thread_mismatch,
          g_thread_walks);
}

/* ---- dlopen / dlclose / dlopen --------------------------------------------------------------- */

typedef struct dl_job {
    uwt_dl_recurse_t fn;
    cap_t c;
} dl_job_t;

static void *dl_thread(void *arg)
{
    dl_job_t *j = arg;
    stack_hi();
    j->fn(9, capture, &j->c);
    return NULL;
}

/* Each walk runs in a new thread: libunwind's unw_backtrace keeps a per-thread rule cache keyed
 * by PC that nothing flushes (not even unw_flush_cache), so in an old thread it returns garbage
 * for code dlopen'd where other code used to be. Our cache is global: it must get it right. */
static void test_dlopen(void)
{
    static const char *const paths[] = {UWT_DL_A, UWT_DL_B, UWT_DL_A, UWT_DL_B};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        void *h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
        CHECK(h, "dlopen %s: %s", paths[i], dlerror());
        if (!h) return;
        ls__unwind_modules_added();
        static dl_job_t j;
        memset(&j, 0, sizeof j);
        j.fn = (uwt_dl_recurse_t)dlsym(h, "uwt_dl_recurse");
        CHECK(j.fn, "dlsym");
        if (j.fn) {
            pthread_t t;
            pthread_create(&t, NULL, dl_thread, &j);
            pthread_join(t, NULL);
            range_t r = range_of((void *)j.fn);
            CHECK_SAME("dlopen'd lib", j.c.fast, j.c.nfast, j.c.lu, j.c.nlu);
            CHECK(count_in(j.c.fast, j.c.nfast, r) >= 11, "%zu frames in the dlopen'd object",
                  count_in(j.c.fast, j.c.nfast, r));
        }
        dlclose(h);
        ls__unwind_modules_changed();
    }
}

/* Copies file from to to (through a temporary name and a rename: a new inode at to, as a
 * package upgrade does; the old inode stays mapped by whoever has it open). */
static bool replace_file(const char *from, const char *to)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.new", to);
    int in = open(from, O_RDONLY), out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    bool ok = in >= 0 && out >= 0;
    char buf[65536];
    ssize_t n;
    while (ok && (n = read(in, buf, sizeof buf)) > 0) ok = write(out, buf, (size_t)n) == n;
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    return ok && rename(tmp, to) == 0;
}

/*
 * The file behind an object is read only while it is the one mapped. A copy of one layout is
 * dlopen'd; then the other layout replaces the file at that path before the first walk through
 * it. Small mode must notice (files_refused) and read the mapping: the stack equals libunwind's.
 * The control: the same without the replacement is compiled from the file (from_file).
 */
static void test_replaced_file(void)
{
    char dir[] = "/tmp/test_unwind.XXXXXX", path[4096];
    CHECK(mkdtemp(dir), "mkdtemp");
    for (int replaced = 0; replaced < 2; replaced++) {
        snprintf(path, sizeof path, "%s/uwt_copy%d.so", dir, replaced);
        CHECK(replace_file(UWT_DL_A, path), "copy %s", UWT_DL_A);
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        CHECK(h, "dlopen %s: %s", path, dlerror());
        if (!h) break;
        ls__unwind_modules_added();
        if (replaced) CHECK(replace_file(UWT_DL_B, path), "replace %s", path);
        static dl_job_t j;
        memset(&j, 0, sizeof j);
        j.fn = (uwt_dl_recurse_t)dlsym(h, "uwt_dl_recurse");
        CHECK(j.fn, "dlsym");
        ls_uw_stats_t s0, s1;
        ls__unwind_stats(&s0);
        if (j.fn) {
            pthread_t t;
            pthread_create(&t, NULL, dl_thread, &j);
            pthread_join(t, NULL);
            CHECK_SAME(replaced ? "replaced file" : "kept file", j.c.fast, j.c.nfast, j.c.lu,
                       j.c.nlu);
            CHECK(count_in(j.c.fast, j.c.nfast, range_of((void *)j.fn)) >= 11, "frames in it");
        }
        ls__unwind_stats(&s1);
        if (g_small && replaced)
            CHECK(s1.files_refused == s0.files_refused + 1, "refused %lu -> %lu",
                  (unsigned long)s0.files_refused, (unsigned long)s1.files_refused);
        if (g_small && !replaced)
            CHECK(s1.files_refused == s0.files_refused && s1.from_file > s0.from_file,
                  "kept: refused %lu -> %lu, from file %lu -> %lu", (unsigned long)s0.files_refused,
                  (unsigned long)s1.files_refused, (unsigned long)s0.from_file,
                  (unsigned long)s1.from_file);
        dlclose(h);
        ls__unwind_modules_changed();
        unlink(path);
    }
    rmdir(dir);
}

/* A callback of libc's dl_iterate_phdr: libc code the earlier tests did not walk through. */
static int capture_once(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)info;
    (void)size;
    capture(data);
    return 1;
}

/*
 * The host closes descriptors it does not know (a daemon's close-all) and reuses their numbers:
 * here every descriptor from 900 up, small mode's, is replaced by one of a scratch file. The next
 * misses must notice (fstat), open the objects' files again and never close or read through the
 * host's descriptors: the walk equals libunwind's, and the scratch descriptors stay as they were.
 */
static void test_host_fds(void)
{
    char tmp[] = "/tmp/test_unwind_fd.XXXXXX";
    int decoy = mkstemp(tmp);
    CHECK(decoy >= 0, "mkstemp");
    if (decoy < 0) return;
    unlink(tmp);
    CHECK(write(decoy, "not an ELF file", 15) == 15, "write");
    struct stat dst;
    fstat(decoy, &dst);
    int taken[64], ntaken = 0;
    for (int fd = 900; fd < 1024 && ntaken < 64; fd++)
        if (fcntl(fd, F_GETFD) >= 0 && dup2(decoy, fd) == fd) taken[ntaken++] = fd;
    if (g_small) CHECK(ntaken >= 2, "small mode keeps descriptors from 900 up: %d", ntaken);
    ls_uw_stats_t s0, s1;
    ls__unwind_stats(&s0);
    cap_t c = {0};
    dl_iterate_phdr(capture_once, &c);
    ls__unwind_stats(&s1);
    CHECK_SAME("through dl_iterate_phdr", c.fast, c.nfast, c.lu, c.nlu);
    CHECK(count_in(c.fast, c.nfast, g_libc) >= 1, "libc frames: %zu",
          count_in(c.fast, c.nfast, g_libc));
    if (g_small)
        CHECK(s1.misses > s0.misses && s1.from_file - s0.from_file == s1.misses - s0.misses &&
                  s1.files_refused == s0.files_refused,
              "misses %lu, from file %lu, refused %lu", (unsigned long)(s1.misses - s0.misses),
              (unsigned long)(s1.from_file - s0.from_file),
              (unsigned long)(s1.files_refused - s0.files_refused));
    for (int i = 0; i < ntaken; i++) {
        struct stat st;
        CHECK(fstat(taken[i], &st) == 0 && st.st_ino == dst.st_ino && st.st_dev == dst.st_dev,
              "fd %d: the host's descriptor was closed or replaced", taken[i]);
        close(taken[i]);
    }
    close(decoy);
}

/* ---- signals --------------------------------------------------------------------------------- */

static cap_t g_sigcap;
static volatile int g_sig_count, g_sig_mismatch, g_sig_shallow;
static volatile int g_spin;

static void on_sigusr1(int sig)
{
    (void)sig;
    capture(&g_sigcap);
    g_sig_count++;
}

static void raise_cb(void *arg)
{
    (void)arg;
    raise(SIGUSR1);
}

static void test_signal_sync(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigaction(SIGUSR1, &sa, NULL);
    memset(&g_sigcap, 0, sizeof g_sigcap);
    g_sig_count = 0;
    nofp_recurse(9, raise_cb, NULL);
    CHECK(g_sig_count == 1, "handler ran");
    CHECK_SAME("through __restore_rt", g_sigcap.fast, g_sigcap.nfast, g_sigcap.lu, g_sigcap.nlu);
    CHECK(count_in(g_sigcap.fast, g_sigcap.nfast, g_nofp) >= 11,
          "frames below the signal frame: %zu", count_in(g_sigcap.fast, g_sigcap.nfast, g_nofp));
    signal(SIGUSR1, SIG_DFL);
}

/* Asynchronous: the signal lands anywhere in the spin loop of a -fomit-frame-pointer leaf, so
 * the frame under __restore_rt is unwound from an exact PC, not a return address. */
static void on_sigusr2(int sig)
{
    (void)sig;
    cap_t *c = &g_sigcap;
    capture(c);
    if (!same_list(c->fast, c->nfast, c->lu, c->nlu)) g_sig_mismatch++;
    if (count_in(c->fast, c->nfast, g_nofp) < 14) g_sig_shallow++;
    g_sig_count++;
}

static void *spinner(void *arg)
{
    (void)arg;
    stack_hi();
    nofp_recurse_spin(12, &g_spin);
    return NULL;
}

static void test_signal_async(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr2;
    sigaction(SIGUSR2, &sa, NULL);
    g_sig_count = g_sig_mismatch = g_sig_shallow = 0;
    g_spin = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, spinner, NULL) == 0, "spinner");
    while (g_spin != 1) sched_yield();
    const int rounds = 300;
    for (int i = 0; i < rounds; i++) {
        int before = g_sig_count;
        pthread_kill(t, SIGUSR2);
        while (g_sig_count == before) sched_yield();
    }
    g_spin = 2;
    pthread_join(t, NULL);
    signal(SIGUSR2, SIG_DFL);
    CHECK(g_sig_count == rounds, "signals %d", g_sig_count);
    CHECK(g_sig_mismatch == 0, "%d of %d differ from libunwind", g_sig_mismatch, rounds);
    CHECK(g_sig_shallow == 0, "%d of %d did not reach the spinning frames", g_sig_shallow, rounds);
    if (g_sig_mismatch)
        dump_two("fast", g_sigcap.fast, g_sigcap.nfast, "libunwind", g_sigcap.lu, g_sigcap.nlu);
}

/* ---- robustness ------------------------------------------------------------------------------ */

/* Random words as a "stack", starting from real PCs: the walk must stay inside the stack. */
static __attribute__((noinline)) void garbage_walks(const uintptr_t *real, size_t nreal)
{
    uintptr_t junk[1024];
    uintptr_t out[64];
    unsigned seed = 12345;
    for (int trial = 0; trial < 20000; trial++) {
        for (size_t i = 0; i < 1024; i++) {
            unsigned r = (unsigned)rand_r(&seed);
            switch (r % 5) {
            case 0:
                junk[i] = real[r % nreal];
                break;
            case 1:
                junk[i] = (uintptr_t)&junk[(r >> 4) % 1024];
                break;
            case 2:
                junk[i] = (uintptr_t)r * 4096;
                break;
            case 3:
                junk[i] = 0;
                break;
            default:
                junk[i] = (uintptr_t)&junk[(r >> 4) % 1024] - 4096;
                break;
            }
        }
        unsigned r = (unsigned)rand_r(&seed);
        ls_uw_frame_t f = {real[r % nreal], (uintptr_t)&junk[(r >> 8) % 900], junk[r % 1024]};
        size_t n = ls__unwind_fast(&f, stack_hi(), out, 64);
        CHECK(n >= 1 && n <= 64, "n = %zu", n);
    }
}

static void test_garbage(void)
{
    cap_t c = {0};
    nofp_recurse_qsort(20, capture, &c);
    garbage_walks(c.fast, c.nfast);
}

static void test_stack_top(void)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t top = ls__unwind_stack_top(sp);
    pthread_attr_t a;
    void *addr;
    size_t size;
    CHECK(pthread_getattr_np(pthread_self(), &a) == 0, "getattr");
    pthread_attr_getstack(&a, &addr, &size);
    pthread_attr_destroy(&a);
    /* glibc reports the page above __libc_stack_end; the mapping goes on over argv and env. */
    CHECK(top >= (uintptr_t)addr + size && top - ((uintptr_t)addr + size) < (1u << 20) && sp < top,
          "main stack top %#lx, pthread says %#lx", (unsigned long)top,
          (unsigned long)((uintptr_t)addr + size));
    CHECK(ls__unwind_stack_top(0) == 0, "nothing maps page 0");
}

static void *thread_top(void *arg)
{
    uintptr_t *res = arg;
    pthread_attr_t a;
    void *addr;
    size_t size;
    pthread_getattr_np(pthread_self(), &a);
    pthread_attr_getstack(&a, &addr, &size);
    pthread_attr_destroy(&a);
    res[0] = ls__unwind_stack_top((uintptr_t)__builtin_frame_address(0));
    res[1] = (uintptr_t)addr + size;
    res[2] = (uintptr_t)__builtin_frame_address(0);
    return NULL;
}

static void test_stack_top_thread(void)
{
    uintptr_t res[3] = {0};
    pthread_t t;
    pthread_create(&t, NULL, thread_top, res);
    pthread_join(t, NULL);
    /* A neighbouring writable mapping may merge with the stack's: >= is what matters. */
    CHECK(res[0] >= res[1] && res[2] < res[0], "thread stack top %#lx, pthread says %#lx",
          (unsigned long)res[0], (unsigned long)res[1]);
}

static void test_stats(void)
{
    ls_uw_stats_t s;
    ls__unwind_stats(&s);
    printf("# stats: hits %lu, misses %lu, no_rule %lu, bad_cfa %lu (hit rate %.2f%%); "
           "from file %lu, files refused %lu\n",
           (unsigned long)s.hits, (unsigned long)s.misses, (unsigned long)s.no_rule,
           (unsigned long)s.bad_cfa, 100.0 * (double)s.hits / (double)(s.hits + s.misses + 1),
           (unsigned long)s.from_file, (unsigned long)s.files_refused);
    CHECK(s.hits > 0 && s.misses > 0 && s.no_rule > 0, "counters move");
    if (g_small) /* the replaced file, and the vdso (no file) if a walk met it */
        CHECK(s.from_file > 0 && s.files_refused >= 1 && s.files_refused <= 2,
              "from file %lu, refused %lu", (unsigned long)s.from_file,
              (unsigned long)s.files_refused);
    else
        CHECK(s.from_file == 0 && s.files_refused == 0, "full mode reads the mappings");
}

/* libunwind is dlopen'd on request only: before, its walkers give nothing. */
static void test_libunwind_load(void)
{
    uintptr_t pcs[8];
    CHECK(ls__unwind_libunwind(pcs, 8, 0) == 0, "a walk before loading it");
    const char *why = NULL;
    CHECK(ls__unwind_libunwind_load(&why), "load: %s", why);
    CHECK(ls__unwind_libunwind_load(NULL), "again");
    CHECK(ls__unwind_libunwind(pcs, 8, 0) >= 2, "a walk after");
}

/* ---- driver ---------------------------------------------------------------------------------- */

static void run(const char *name, void (*fn)(void))
{
    g_checks_failed = 0;
    ls_uw_stats_t a, b;
    ls__unwind_stats(&a);
    fn();
    ls__unwind_stats(&b);
    if (getenv("UWT_STATS"))
        printf("# %s: misses %lu, from file %lu, refused %lu\n", name,
               (unsigned long)(b.misses - a.misses), (unsigned long)(b.from_file - a.from_file),
               (unsigned long)(b.files_refused - a.files_refused));
    printf("%s %s\n", g_checks_failed ? "FAIL" : "ok  ", name);
    fflush(stdout);
    if (g_checks_failed)
        g_failed++;
    else
        g_passed++;
}

int main(int argc, char **argv)
{
    g_small = argc > 1 && !strcmp(argv[1], "small");
    if (g_small)
        ls__unwind_init_small();
    else
        ls__unwind_init();
    printf("# %s mode\n", g_small ? "small" : "full");
    run("libunwind_load", test_libunwind_load); /* first: every later test compares with it */
    stack_hi();
    g_exe = range_of((void *)main);
    g_nofp = range_of((void *)nofp_recurse);
    g_fp = range_of((void *)fp_recurse);
    g_libc = range_of((void *)qsort);

    run("nofp_chain", test_nofp_chain);
    run("fp_chain", test_fp_chain);
    run("qsort", test_qsort);
    run("max", test_max);
    run("no_fde", test_no_fde);
    run("threads", test_threads);
    run("dlopen", test_dlopen);
    run("replaced_file", test_replaced_file);
    run("host_fds", test_host_fds);
    run("signal_sync", test_signal_sync);
    run("signal_async", test_signal_async);
    run("garbage", test_garbage);
    run("stack_top", test_stack_top);
    run("stack_top_thread", test_stack_top_thread);
    run("stats", test_stats);

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
