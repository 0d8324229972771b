/*
 * ls_init.c - the agent's life cycle: start-up, fork, dlopen/dlclose, thread start, and every
 * way a process ends (return from main, exit, _exit, _Exit, a fatal signal), each leading to one
 * leak check and one snapshot per process image. Also the public API (include/leakscope.h).
 *
 * Start-up is an atomic state machine (UNINIT -> INITIALIZING -> READY, or DISABLED when the
 * agent cannot work): the first interposed call, often made by ld.so before any constructor,
 * wins the race and initializes while its guard is set; everyone else passes through untracked.
 * Options come from /proc/self/environ, because libc's environ may not be set up yet.
 */
#define _GNU_SOURCE
#include "ls_interpose.h"
#include "ls_stopworld.h"
#include "ls_unwind.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../../include/leakscope.h"

ls_global_t ls__g;
__thread ls_tls_t ls__tls __attribute__((tls_model("initial-exec")));

static const int fatal_signals[] = {SIGSEGV, SIGBUS,  SIGFPE,  SIGILL,  SIGABRT,
                                    SIGTRAP, SIGSYS,  SIGTERM, SIGINT,  SIGHUP,
                                    SIGQUIT, SIGPIPE, SIGALRM, SIGXCPU, SIGXFSZ};

/* ---- options from the initial environment --------------------------------------------------- */
static char env_buf[1 << 16];

static const char *find_options_env(void)
{
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return getenv("LEAKSCOPE_OPTIONS");
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, env_buf + len, sizeof(env_buf) - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    env_buf[len] = 0;
    static const char key[] = "LEAKSCOPE_OPTIONS=";
    for (size_t i = 0; i < len;) {
        const char *e = env_buf + i;
        size_t elen = strnlen(e, len - i);
        if (!strncmp(e, key, sizeof(key) - 1) && i + elen < len) return e + sizeof(key) - 1;
        i += elen + 1;
    }
    /* An environment larger than the buffer: libc's copy is the only complete one. */
    return len >= sizeof(env_buf) - 1 ? getenv("LEAKSCOPE_OPTIONS") : NULL;
}

/* ---- fork -------------------------------------------------------------------------------------
 */
static void fork_prepare(void)
{
    ls__tls.guard++;
    ls__spin_lock(&ls__g.check_lock);
    ls__modules_lock();
    ls__refs_lock_all();
    ls__tags_lock();  /* before the sites: registering a tag creates its site */
    ls__sites_lock(); /* before the depot: a new site is interned under the sites table lock */
    ls__fail_lock();  /* a new site matches fault injection rules under the sites table lock */
    ls__depot_lock_all();
    ls__sample_lock();
    ls__mem_lock();
}

static void fork_parent(void)
{
    ls__mem_unlock();
    ls__sample_unlock();
    ls__depot_unlock_all();
    ls__fail_unlock();
    ls__sites_unlock();
    ls__tags_unlock();
    ls__refs_unlock_all();
    ls__modules_unlock();
    ls__spin_unlock(&ls__g.check_lock);
    ls__tls.guard--;
}

static void fork_child(void)
{
    ls__mem_unlock();
    ls__sites_after_fork_child();
    ls__tags_after_fork_child();
    ls__fail_after_fork_child();
    ls__sample_after_fork_child();
    ls__depot_after_fork_child();
    ls__refs_after_fork_child();
    ls__modules_unlock();
    ls__spin_unlock(&ls__g.check_lock);
    ls__g.pid = getpid();
    atomic_store(&ls__g.exiting, 0);
    ls__threads_after_fork_child();
    ls__markers_after_fork_child();
    ls__unwind_after_fork_child();
    ls__tls.guard--;
    ls__control_after_fork_child();
}

/* ---- fatal signals -----------------------------------------------------------------------------
 */
static void fatal_handler(int sig, siginfo_t *si, void *ucv)
{
    (void)si;
    ls_exit_state_t st;
    memset(&st, 0, sizeof(st));
    st.sp = ls__ucontext_regs(ucv, st.regs);
    st.nregs = 16;
    st.interrupted = true;
    if (ls__tls.guard)
        ls__log("signal %d inside the agent; leak check skipped", sig);
    else
        ls__at_exit(LS_REASON_SIGNAL, 0, sig, &st);
    /* Die of the same signal, as the host would have. */
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
}

static void install_fatal_handlers(void)
{
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
        struct sigaction old;
        if (sigaction(fatal_signals[i], NULL, &old) < 0) continue;
        /* Only where the default action would kill: never override the host's choice. */
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler != SIG_DFL) continue;
        if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction) continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = fatal_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(fatal_signals[i], &sa, NULL);
    }
}

/* ---- start-up ----------------------------------------------------------------------------------
 */
#define RESOLVE(name) ls__real.name = (__typeof__(ls__real.name))dlsym(RTLD_NEXT, #name)

static bool want_libunwind;

/* unwinder=libunwind: the agent does not link libunwind (with liblzma, ~150 KiB of the host's
 * memory for the reference unwinder): it is dlopen'd here, from our constructor, never inside an
 * allocation (init may run in ld.so's first malloc, where dlopen is not safe). Until then, or if
 * it cannot be loaded, the fast unwinder walks. */
static void load_libunwind(void)
{
    if (!want_libunwind || atomic_load(&ls__g.state) != LS_STATE_READY) return;
    want_libunwind = false;
    const char *why = "";
    ls__tls.guard++;
    bool ok = ls__unwind_libunwind_load(&why);
    ls__tls.guard--;
    if (ok)
        ls__g.unwinder = LS_UNWIND_LIBUNWIND;
    else
        ls__error("unwinder=libunwind: cannot load it (%s); using the fast unwinder", why);
}

void ls__init(void)
{
    int expected = LS_STATE_UNINIT;
    if (!atomic_compare_exchange_strong(&ls__g.state, &expected, LS_STATE_INITIALIZING)) return;
    ls__tls.guard++;
    RESOLVE(malloc);
    RESOLVE(free);
    RESOLVE(calloc);
    RESOLVE(realloc);
    RESOLVE(reallocarray);
    RESOLVE(posix_memalign);
    RESOLVE(aligned_alloc);
    RESOLVE(memalign);
    RESOLVE(valloc);
    RESOLVE(pvalloc);
    RESOLVE(malloc_usable_size);
    RESOLVE(pthread_create);
    RESOLVE(dlopen);
    RESOLVE(dlclose);
    RESOLVE(exit);
    RESOLVE(_exit);
    RESOLVE(_Exit);
    if (!ls__real.malloc || !ls__real.free || !ls__real.calloc || !ls__real.realloc) {
        ls__log("cannot find the real allocator; tracking disabled");
        atomic_store(&ls__g.state, LS_STATE_DISABLED);
        ls__tls.guard--;
        return;
    }
    Dl_info di;
    ls__g.glibc_heap = dladdr((void *)ls__real.malloc, &di) && di.dli_fname &&
                       strstr(di.dli_fname, "/libc.so") != NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ls__g.start_realtime_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ls__g.start_mono_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    ls__g.pid = getpid();

    ls__options_parse(&ls__g.opt, find_options_env());
    ls_options_t *o = &ls__g.opt;
    if (strcmp(o->mode, "full") && strcmp(o->mode, "sample") && strcmp(o->mode, "sites")) {
        ls__error("unknown mode '%s' (full, sample or sites); using full", o->mode);
        strcpy(o->mode, "full");
    }
    if (o->max_frames < 1 || o->max_frames > LS_MAX_FRAMES_LIMIT) {
        ls__error("max_frames=%ld out of range 1-%d; using 64", o->max_frames, LS_MAX_FRAMES_LIMIT);
        o->max_frames = 64;
    }
    ls__g.max_frames = (size_t)o->max_frames;
    if (!strcmp(o->unwinder, "libunwind"))
        want_libunwind = true; /* the fast unwinder until our constructor loads it */
    else if (!strcmp(o->unwinder, "fp"))
        ls__g.unwinder = LS_UNWIND_FP;
    else if (!strcmp(o->unwinder, "fast"))
        ls__g.unwinder = LS_UNWIND_FAST;
    else
        ls__error("unknown unwinder '%s'; using fast", o->unwinder);
    ls__g.stop_signal = o->stop_signal ? (int)o->stop_signal : SIGRTMAX - 3;

    if (!ls__bm_init()) {
        ls__log("cannot map the ownership bitmap; tracking disabled");
        atomic_store(&ls__g.state, LS_STATE_DISABLED);
        ls__tls.guard--;
        return;
    }
    ls__threads_init();
    bool production = !strcmp(o->mode, "sample") || !strcmp(o->mode, "sites");
    if (production) { /* few walks and stacks: tables that cost little memory */
        ls__unwind_init_small();
        ls__depot_small();
    } else {
        ls__unwind_init();
    }
    if (ls__stopworld_init(ls__g.stop_signal) < 0)
        ls__error("cannot install the stop signal %d; leak checks will not park threads",
                  ls__g.stop_signal);
    ls__modules_refresh(1);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (o->catch_signals) install_fatal_handlers();
    ls__fail_init(); /* before the mode's init: mode sites matches each new site to the rules */
    /* Last: from here on the interposers take the sampling paths. */
    if (!strcmp(o->mode, "sample") && !ls__sample_init()) {
        ls__log("cannot map the sample table; tracking disabled");
        atomic_store(&ls__g.state, LS_STATE_DISABLED);
        ls__tls.guard--;
        return;
    }
    if (!strcmp(o->mode, "sites") && !ls__sites_init()) {
        ls__log("cannot map the site tables; tracking disabled");
        atomic_store(&ls__g.state, LS_STATE_DISABLED);
        ls__tls.guard--;
        return;
    }
    if (o->verbose)
        ls__log("agent %s ready: mode=%s unwinder=%s max_frames=%zu", LS_VERSION, o->mode,
                o->unwinder, ls__g.max_frames);
    if (o->verbose && atomic_load(&ls__sampling) && !ls__mode_sites())
        ls__log("sampling: one sample per %ld bytes allocated on average (seed %ld)",
                o->sample_rate, o->sample_seed);
    atomic_store(&ls__g.state, LS_STATE_READY);
    ls__tls.guard--;
}

__attribute__((constructor)) static void ls__ctor(void)
{
    ls__init();
    load_libunwind();
}

/* ---- the exit path ----------------------------------------------------------------------------
 */
static void print_summary(const ls_check_result_t *res, const char *path)
{
    uint64_t bytes[5] = {0}, blocks[5] = {0};
    for (size_t i = 0; i < res->n; i++) {
        bytes[res->kind[i]] += res->blocks[i].size_flags & LS_SIZE_MASK;
        blocks[res->kind[i]]++;
    }
    ls__log("definitely lost: %llu bytes in %llu blocks; indirectly lost: %llu bytes in %llu "
            "blocks; possibly lost: %llu bytes in %llu blocks; still reachable: %llu bytes in "
            "%llu blocks",
            (unsigned long long)bytes[1], (unsigned long long)blocks[1],
            (unsigned long long)bytes[2], (unsigned long long)blocks[2],
            (unsigned long long)bytes[3], (unsigned long long)blocks[3],
            (unsigned long long)bytes[4], (unsigned long long)blocks[4]);
    if (ls__tls.refs_last.valid) /* reference counts were used */
        ls__log("refs: %llu objects still referenced, %llu reference errors",
                (unsigned long long)ls__tls.refs_last.referenced,
                (unsigned long long)ls__tls.refs_last.errors);
    ls__log("details: leakscope report %s", path);
}

/* Mode sample: no verdicts, but what the sampled blocks stand for (each weighs 1/p(size)). */
static void print_sample_summary(const ls_check_result_t *res, const char *path)
{
    double objects = 0, bytes = 0;
    for (size_t i = 0; i < res->n; i++) {
        uint64_t size = res->blocks[i].size_flags & LS_SIZE_MASK;
        double p = ls__sample_prob(size);
        if (p > 0) {
            objects += 1 / p;
            bytes += (double)size / p;
        }
    }
    ls__log("sample profile: ~%.0f bytes in use in ~%.0f blocks (estimated from %zu sampled "
            "blocks, sample_rate=%ld)",
            bytes, objects, res->n, ls__g.opt.sample_rate);
    if (ls__tls.refs_last.valid) /* reference counts were used */
        ls__log("refs: %llu objects still referenced, %llu reference errors",
                (unsigned long long)ls__tls.refs_last.referenced,
                (unsigned long long)ls__tls.refs_last.errors);
    ls__log("details: leakscope report %s", path);
}

/* Mode sites: the totals of the counters. */
static void print_sites_summary(const char *path)
{
    ls_sites_view_t v;
    ls__sites_view_take(&v);
    int64_t bytes = 0, blocks = 0;
    uint64_t allocs = 0;
    for (size_t i = 0; i < v.n; i++) {
        bytes += v.recs[i].live_bytes;
        blocks += v.recs[i].live_blocks;
        allocs += v.recs[i].allocs;
    }
    size_t n = v.n;
    ls__sites_view_free(&v);
    ls__log("sites: %lld bytes live in %lld blocks, %llu allocations counted, %zu sites",
            (long long)bytes, (long long)blocks, (unsigned long long)allocs, n);
    ls__log("details: leakscope sites %s", path);
}

static bool ls__control_thread_dormant;

/* Is this the only thread of the process (the dormant control thread aside)?
 * (/proc/self/status "Threads:") */
static bool single_threaded(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    const char *t = strstr(buf, "\nThreads:");
    if (!t) return false;
    t += 9;
    while (*t == ' ' || *t == '\t') t++;
    char want = ls__control_thread_dormant ? '2' : '1';
    return t[0] == want && (t[1] == '\n' || t[1] == 0);
}

/*
 * valgrind runs glibc's __libc_freeres and libstdc++'s __gnu_cxx::__freeres before its leak
 * check, so memory those libraries keep until exit (ld.so's tables, locale data, stdio buffers,
 * the cache of exited threads' stacks, the C++ emergency exception pool) is freed rather than
 * reported. glibc supports calling __libc_freeres from an exit-time handler (mtrace does); we do
 * it only on a normal exit and only with no other thread left, which could hold a lock it needs.
 */
static void run_freeres(void)
{
    if (!single_threaded()) return;
    void (*cxx)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZN9__gnu_cxx9__freeresEv");
    void (*libc)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "__libc_freeres");
    if (cxx) cxx();
    if (libc) libc();
}

static bool ls__at_exit_allows_freeres;

void ls__at_exit(int reason, int status, int signo, const ls_exit_state_t *st)
{
    if (atomic_load(&ls__g.state) != LS_STATE_READY) return;
    if (getpid() != ls__g.pid) return; /* a vfork/clone child sharing our memory */
    if (atomic_exchange(&ls__g.exiting, 1)) return;
    ls__tls.guard++;
    ls__control_thread_dormant = ls__control_quiesce();
    if (!st && ls__tls.have_exit_state) st = &ls__tls.exit_state;
    if (reason == LS_REASON_EXIT && atomic_load(&ls__g.have_exit_status))
        status = ls__g.exit_status;
    uint64_t t0 = ls__now_ns();
    /* Modes sample and sites have no leak check: nothing to free for them, no reachability
     * scan. Mode sites has no live blocks to collect either: its snapshot sums the counters. */
    bool sampling = atomic_load(&ls__sampling);
    bool sites = sampling && ls__mode_sites();
    bool leak_check = ls__g.opt.leak_check && !sampling;
    if (reason == LS_REASON_EXIT && ls__at_exit_allows_freeres && ls__g.opt.freeres && leak_check) {
        ls__tls.guard--; /* what freeres frees must leave the bitmap */
        run_freeres();
        ls__tls.guard++;
    }
    uint64_t t1 = ls__now_ns();
    if (ls__g.opt.verbose) {
        ls_uw_stats_t us;
        ls__unwind_stats(&us);
        ls__log("stacks: %llu distinct, %llu cut at max_frames=%zu on this thread; unwind rule "
                "cache %llu hits, %llu misses; %llu frames reused from previous walks",
                (unsigned long long)ls__depot_count(), (unsigned long long)ls__tls.truncated,
                ls__g.max_frames, (unsigned long long)us.hits, (unsigned long long)us.misses,
                (unsigned long long)ls__unwind_reused_frames());
    }
    ls_check_result_t res;
    ls__tls.refs_last.valid = 0;
    if (sites) memset(&res, 0, sizeof(res));
    if (sites || ls__check_run(&res, leak_check, st) == 0) {
        char path[4096];
        ls__output_path(path, sizeof(path), NULL);
        uint64_t t2 = ls__now_ns();
        int werr = ls__snapshot_write(path, &res, reason, status, signo,
                                      reason == LS_REASON_EXIT ? "exit" : "signal", 0);
        if (werr)
            ls__error("cannot write snapshot %s: %s", path, strerror(werr));
        else if (ls__g.opt.summary && res.checked)
            print_summary(&res, path);
        else if (ls__g.opt.summary && sites)
            print_sites_summary(path);
        else if (ls__g.opt.summary && sampling)
            print_sample_summary(&res, path);
        if (ls__g.opt.verbose)
            ls__log("exit: freeres %.1f ms, check %.1f ms (%zu blocks), snapshot %.1f ms",
                    (t1 - t0) / 1e6, (t2 - t1) / 1e6, res.n, (ls__now_ns() - t2) / 1e6);
        ls__check_free(&res);
    }
    ls__control_stop();
    ls__tls.guard--;
}

__attribute__((destructor)) static void ls__dtor(void)
{
    ls__at_exit_allows_freeres = true; /* not for _exit: it must not flush stdio */
    ls__at_exit(LS_REASON_EXIT, 0, 0, NULL);
}

static void record_exit(int status, uintptr_t sp, const uintptr_t *regs, int nregs)
{
    ls__g.exit_status = status;
    atomic_store(&ls__g.have_exit_status, 1);
    ls_exit_state_t *e = &ls__tls.exit_state;
    e->sp = sp;
    e->nregs = nregs;
    for (int i = 0; i < nregs; i++) e->regs[i] = regs[i];
    ls__tls.have_exit_state = 1;
}

/*
 * exit() is entered through a few instructions that save the caller's callee-saved registers
 * and stack pointer before any C code can reuse them: a pointer the program holds only in RBX
 * when it calls exit is a root, as it is for valgrind (which sees it spilled by exit's code).
 */
uintptr_t ls__exit_regs[7] LS_HIDDEN;
LS_HIDDEN __attribute__((noreturn, used)) void ls__exit_c(int status);
__asm__(".text\n"
        ".globl exit\n"
        ".type exit,@function\n"
        "exit:\n"
        "  .cfi_startproc\n"
        "  movq %rbx, ls__exit_regs+0(%rip)\n"
        "  movq %rbp, ls__exit_regs+8(%rip)\n"
        "  movq %r12, ls__exit_regs+16(%rip)\n"
        "  movq %r13, ls__exit_regs+24(%rip)\n"
        "  movq %r14, ls__exit_regs+32(%rip)\n"
        "  movq %r15, ls__exit_regs+40(%rip)\n"
        "  leaq 8(%rsp), %rax\n"
        "  movq %rax, ls__exit_regs+48(%rip)\n"
        "  jmp ls__exit_c\n"
        "  .cfi_endproc\n"
        ".size exit, .-exit\n");

void ls__exit_c(int status)
{
    record_exit(status, ls__exit_regs[6], ls__exit_regs, 6);
    if (!ls__real.exit) ls__init();
    if (ls__real.exit) ls__real.exit(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

LS_EXPORT __attribute__((noreturn)) void _exit(int status)
{
    uintptr_t none[1] = {0};
    record_exit(status, (uintptr_t)__builtin_frame_address(0) + 16, none, 0);
    ls__at_exit(LS_REASON_EXIT, status, 0, NULL);
    if (ls__real._exit) ls__real._exit(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

LS_EXPORT __attribute__((noreturn)) void _Exit(int status)
{
    uintptr_t none[1] = {0};
    record_exit(status, (uintptr_t)__builtin_frame_address(0) + 16, none, 0);
    ls__at_exit(LS_REASON_EXIT, status, 0, NULL);
    if (ls__real._Exit) ls__real._Exit(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

/* Return from main: remember main's status and where the live stack ends (above this frame). */
typedef int (*ls_main_fn)(int, char **, char **);
static ls_main_fn real_main;

static int main_wrapper(int argc, char **argv, char **envp)
{
    ls__control_start(); /* here: libc is fully up, the host has not started its threads yet */
    ls__hooks_install(); /* run --refs: the libraries main was linked with are all loaded */
    int r = real_main(argc, argv, envp);
    uintptr_t none[1] = {0};
    record_exit(r, (uintptr_t)__builtin_frame_address(0) + 16, none, 0);
    return r;
}

LS_EXPORT int __libc_start_main(ls_main_fn main, int argc, char **argv, void (*init)(void),
                                void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    typedef int (*start_fn)(ls_main_fn, int, char **, void (*)(void), void (*)(void),
                            void (*)(void), void *);
    start_fn real = (start_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    real_main = main;
    return real(main_wrapper, argc, argv, init, fini, rtld_fini, stack_end);
}

/* ---- threads and loaded objects ------------------------------------------------------------- */
typedef struct ls_thread_start {
    void *(*fn)(void *);
    void *arg;
} ls_thread_start_t;

static void *thread_trampoline(void *p)
{
    ls_thread_start_t s = *(ls_thread_start_t *)p;
    ls__tls.guard++;
    ls__real.free(p);
    ls__threads_register_self();
    ls__tls.guard--;
    return s.fn(s.arg);
}

LS_EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                             void *arg)
{
    if (!ls__real.pthread_create) ls__init();
    if (!ls__real.pthread_create) return EAGAIN;
    if (atomic_load(&ls__g.state) != LS_STATE_READY)
        return ls__real.pthread_create(th, attr, fn, arg);
    ls__tls.guard++;
    ls_thread_start_t *s = ls__real.malloc(sizeof(*s)); /* the agent's, untracked */
    ls__tls.guard--;
    if (!s) return ls__real.pthread_create(th, attr, fn, arg);
    s->fn = fn;
    s->arg = arg;
    int rc = ls__real.pthread_create(th, attr, thread_trampoline, s);
    if (rc) ls__real.free(s);
    return rc;
}

LS_EXPORT void *dlopen(const char *file, int flags)
{
    if (!ls__real.dlopen) ls__init();
    uint32_t first = ls__depot_next_id();
    void *h = ls__real.dlopen ? ls__real.dlopen(file, flags) : NULL;
    if (h && atomic_load(&ls__g.state) == LS_STATE_READY) {
        ls__tls.guard++;
        ls__unwind_modules_added(); /* nothing was unmapped: cached rules stay valid */
        ls__modules_refresh(first);
        ls__fail_modules_changed();
        ls__tls.guard--;
        ls__hooks_install(); /* its reference functions, if it brought any */
    }
    return h;
}

LS_EXPORT int dlclose(void *h)
{
    if (!ls__real.dlclose) ls__init();
    int rc = ls__real.dlclose ? ls__real.dlclose(h) : -1;
    if (atomic_load(&ls__g.state) == LS_STATE_READY) {
        ls__tls.guard++;
        ls__unwind_modules_changed();
        ls__modules_refresh(ls__depot_next_id());
        ls__fail_modules_changed();
        ls__tls.guard--;
    }
    return rc;
}

/* ---- public API (include/leakscope.h) -------------------------------------------------------- */
LS_EXPORT int ls_agent_active(void)
{
    return atomic_load(&ls__g.state) == LS_STATE_READY;
}

LS_EXPORT void ls_agent_ignore(const void *ptr)
{
    if (!ptr || atomic_load(&ls__g.state) != LS_STATE_READY) return;
    if (ls__bm_test((uintptr_t)ptr)) ls__trailer(ptr)->size_flags |= LS_BF_IGNORED;
}

LS_EXPORT long ls_agent_leak_check(const char *snapshot_path)
{
    if (atomic_load(&ls__g.state) != LS_STATE_READY || ls__tls.guard) return -1;
    if (atomic_load(&ls__sampling)) {
        /* Only sampled blocks are tracked: reachability among them means nothing. */
        static _Atomic int said;
        if (!atomic_exchange(&said, 1))
            ls__error("ls_leak_check: no leak check in mode %s (use ls_snapshot_write)",
                      ls__g.opt.mode);
        return -1;
    }
    static _Atomic unsigned seq;
    ls_exit_state_t st;
    memset(&st, 0, sizeof(st));
    st.sp = (uintptr_t)__builtin_frame_address(0) + 16;
    ls__tls.guard++;
    ls_check_result_t res;
    long lost = -1;
    if (ls__check_run(&res, true, &st) == 0) {
        char path[4096];
        if (snapshot_path) {
            snprintf(path, sizeof(path), "%s", snapshot_path);
        } else {
            char suffix[32];
            snprintf(suffix, sizeof(suffix), ".%u", atomic_fetch_add(&seq, 1) + 1);
            ls__output_path(path, sizeof(path), suffix);
        }
        lost = 0;
        for (size_t i = 0; i < res.n; i++)
            if (res.kind[i] == LS_KIND_DEFINITELY || res.kind[i] == LS_KIND_INDIRECTLY)
                lost += (long)(res.blocks[i].size_flags & LS_SIZE_MASK);
        int werr = ls__snapshot_write(path, &res, LS_REASON_LIVE, 0, 0, "leak_check", 0);
        if (werr) {
            ls__error("cannot write snapshot %s: %s", path, strerror(werr));
            lost = -1;
        }
        ls__check_free(&res);
    }
    ls__tls.guard--;
    return lost;
}
