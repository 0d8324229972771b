/*
 * ls_cmd_run.c - `leakscope run`: launch a program with the agent preloaded, wait for it, and
 * render the snapshot(s) it wrote at exit.
 *
 * The agent writes one snapshot per process image into a private temporary directory named by
 * pid (%p), so the program and each forked child that exits while we wait are reported
 * separately: the program's report on stderr and in --json FILE, a child's in FILE.PID. The exit
 * status is the program's own (a death by signal is passed on by dying of the same signal),
 * unless --error-exitcode N is given and the program leaked (definitely + indirectly lost, after
 * suppressions) or its reference counts are wrong (objects still referenced, reference errors).
 *
 * G_SLICE: GLib before 2.76 serves small blocks (every GObject instance among them) from its slice
 * allocator, carved out of big chunks without calling malloc per block: those objects are in no
 * tracked block, a leaked one is never reported and its frees are never seen. valgrind's manual
 * asks GLib users to set G_SLICE=always-malloc for that reason; `run` sets it in the program's
 * environment, always (leak checks need it as much as --refs), unless the user set G_SLICE.
 */
#define _GNU_SOURCE
#include "ls_cli.h"
#include "ls_fail_report.h"
#include "ls_fail_spec.h"
#include "ls_format_read.h"
#include "ls_output.h"
#include "ls_profile.h"
#include "ls_report.h"
#include "ls_suppress.h"
#include "ls_symbolize.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct run_opts {
    const char *json_path;
    const char *supp_path;
    const char *output_path;
    const char *mode;
    const char *unwinder;
    long max_frames;
    long sample_rate;   /* 0 = not given (the agent's default) */
    long site_frames;   /* 0 = not given (the agent's default) */
    int error_exitcode; /* 0 = not given */
    int show_reachable;
    char extra[1536];     /* further agent options, ":key=value..." */
    char refs[512];       /* --refs entries, agent syntax: REF,UNREF[,TYPE] separated by ';' */
    const char *fail[64]; /* --fail specs (ls_fail_spec.h), parsed once all options are read */
    size_t nfail;
    char *fail_rules; /* their agent form (malloc'd), until it is passed on */
} run_opts_t;

static volatile pid_t child_pid;

static int parse_int(const char *s, long lo, long hi, long *out);
static int add_option(run_opts_t *o, const char *key, const char *value);

/* --fail: parses the specs and resolves them in program into o->fail_rules. Returns 0, or -1
 * after a message. */
static int resolve_fail_rules(run_opts_t *o, const char *program)
{
    ls_fail_spec_t *specs = calloc(o->nfail, sizeof(*specs));
    char why[1024];
    char *agent_rules = NULL;
    size_t n = 0;
    int rc = -1;
    if (!specs) {
        fprintf(stderr, "leakscope run: out of memory\n");
        return -1;
    }
    for (; n < o->nfail; n++) {
        if (ls_fail_spec_parse(o->fail[n], &specs[n], why, sizeof(why))) {
            fprintf(stderr, "leakscope run: --fail '%s': %s\n", o->fail[n], why);
            goto done;
        }
    }
    if (ls_fail_resolve(specs, n, program, &agent_rules, stderr, "leakscope run", why,
                        sizeof(why))) {
        fprintf(stderr, "leakscope run: %s\n", why);
        goto done;
    }
    o->fail_rules = agent_rules;
    rc = 0;
done:
    for (size_t i = 0; i < n; i++) ls_fail_spec_free(&specs[i]);
    free(specs);
    return rc;
}

/* The agent's fail option: the rules themselves when they fit its 511 bytes, else @FILE with
 * FILE in the run's directory. Frees o->fail_rules. Returns 0, or -1 after a message. */
static int pass_fail_rules(run_opts_t *o, const char *dir)
{
    char path[PATH_MAX + 32], value[PATH_MAX + 40];
    const char *v = o->fail_rules;
    int rc = 0;
    if (strlen(o->fail_rules) > 511) {
        snprintf(path, sizeof(path), "%s/fail.rules", dir);
        FILE *f = fopen(path, "w");
        bool ok = f && fputs(o->fail_rules, f) >= 0;
        if (f && fclose(f) != 0) ok = false;
        if (!ok) {
            fprintf(stderr, "leakscope run: cannot write %s: %s\n", path, strerror(errno));
            rc = -1;
        }
        snprintf(value, sizeof(value), "@%s", path);
        v = value;
    }
    if (!rc && add_option(o, "fail", v)) {
        fprintf(stderr, "leakscope run: too many options for the agent (or ':' in TMPDIR)\n");
        rc = -1;
    }
    free(o->fail_rules);
    o->fail_rules = NULL;
    return rc;
}

static void forward_signal(int sig)
{
    if (child_pid > 0) kill(child_pid, sig);
}

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: leakscope run [OPTIONS] [--] PROGRAM [ARGS...]\n"
            "  --json FILE            write the leak report as JSON (a forked child: FILE.PID)\n"
            "  --error-exitcode N     exit with N (1-255) when leaks or reference-count\n"
            "                         errors were found\n"
            "  --suppressions FILE    leak:PATTERN lines; matching leaks are not reported\n"
            "  --show-reachable       also list still-reachable blocks\n"
            "  --output SNAPSHOT      keep the snapshot file (a forked child: SNAPSHOT.PID)\n"
            "  --mode MODE            what the agent tracks: full (default: every block, leak\n"
            "                         check), sample (a Poisson sample of the allocated\n"
            "                         bytes: a heap profile cheap enough for production) or\n"
            "                         sites (exact counters per allocation site)\n"
            "  --sample-rate BYTES    mode sample: mean bytes allocated between two samples\n"
            "                         (1 to 2^40, default 524288)\n"
            "  --site-frames N        mode sites: frames that make a site (1-16, default 1)\n"
            "  --max-frames N         deepest stack recorded (1-256, default 64)\n"
            "  --unwinder NAME        fast (default), libunwind or fp\n"
            "  --snapshot-signal SIG  write a live snapshot when the program gets SIG (USR2, 12)\n"
            "  --snapshot-interval S  write a live snapshot every S seconds\n"
            "  --snapshot-output PAT  where those go (%%p pid, %%n number; default\n"
            "                         leakscope.%%p.%%n.lsnap in the program's directory)\n"
            "  --no-control           no control socket (leakscope snapshot/mark/watch)\n"
            "  --refs REF:UNREF[:TYPE]\n"
            "                         check the reference counts of objects passed to the\n"
            "                         program's functions REF(obj) (takes a reference) and\n"
            "                         UNREF(obj) (drops one), e.g. g_object_ref:g_object_unref;\n"
            "                         TYPE names them in the report (default: REF); repeatable\n"
            "  --fail SPEC            fault injection (modes full and sites): matching\n"
            "                         allocations return NULL (ENOMEM); SPEC is\n"
            "                         FILE:LINE, FUNCTION, MODULE+0xOFF or MODULE+0xLO-0xHI,\n"
            "                         then ,nth=N | ,every=N | ,probability=P[,seed=S];\n"
            "                         repeatable (leakscope(1), FAULT INJECTION)\n"
            "The program runs with G_SLICE=always-malloc unless G_SLICE is set: GLib's slice\n"
            "allocator would otherwise hide its objects from leakscope (as from valgrind).\n");
}

/* A signal by name (USR2, SIGUSR2) or number. Returns 0 when it is none. */
static int parse_signal(const char *s)
{
    long v;
    if (parse_int(s, 1, SIGRTMAX, &v) == 0) return (int)v;
    if (strncmp(s, "SIG", 3) == 0) s += 3;
    for (int sig = 1; sig < SIGRTMIN; sig++) {
        const char *name = sigabbrev_np(sig);
        if (name && strcasecmp(name, s) == 0) return sig;
    }
    return 0;
}

/* Appends ":key=value" to o->extra; -1 when it does not fit. */
static int add_option(run_opts_t *o, const char *key, const char *value)
{
    size_t n = strlen(o->extra);
    if (strchr(value, ':')) return -1; /* the agent's separator */
    int k = snprintf(o->extra + n, sizeof(o->extra) - n, ":%s=%s", key, value);
    return k < 0 || (size_t)k >= sizeof(o->extra) - n ? -1 : 0;
}

static bool is_c_name(const char *s, size_t n)
{
    if (!n || n > 127 || (s[0] >= '0' && s[0] <= '9')) return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* --refs REF:UNREF[:TYPE]: appended to o->refs as "REF,UNREF[,TYPE]" (the agent's ':' is its
 * option separator). Returns NULL or what is wrong. The agent checks the same again. */
static const char *add_refs(run_opts_t *o, const char *spec)
{
    const char *f[3];
    size_t len[3], n = 0;
    for (const char *p = spec;;) {
        const char *c = strchr(p, ':');
        if (n == 3) return "too many fields (want REF:UNREF[:TYPE])";
        f[n] = p;
        len[n++] = c ? (size_t)(c - p) : strlen(p);
        if (!c) break;
        p = c + 1;
    }
    if (n < 2) return "want REF:UNREF[:TYPE]";
    for (size_t i = 0; i < 2; i++)
        if (!is_c_name(f[i], len[i])) return "REF and UNREF must be function names";
    if (len[0] == len[1] && !memcmp(f[0], f[1], len[0])) return "REF and UNREF are the same";
    if (n == 3) {
        if (!len[2] || len[2] > 127) return "TYPE must be 1 to 127 characters";
        for (size_t i = 0; i < len[2]; i++)
            if ((unsigned char)f[2][i] < 0x20 || f[2][i] == 0x7f || f[2][i] == ',' ||
                f[2][i] == ';')
                return "TYPE may not contain ',', ';' or control characters";
    }
    size_t used = strlen(o->refs);
    int k = snprintf(o->refs + used, sizeof(o->refs) - used, "%s%.*s,%.*s%s%.*s", used ? ";" : "",
                     (int)len[0], f[0], (int)len[1], f[1], n == 3 ? "," : "",
                     n == 3 ? (int)len[2] : 0, n == 3 ? f[2] : "");
    if (k < 0 || (size_t)k >= sizeof(o->refs) - used) {
        o->refs[used] = 0;
        return "too many --refs (511 characters in all)";
    }
    return NULL;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* The agent: $LEAKSCOPE_AGENT, beside this executable (build tree), or the install libdir. */
static int find_agent(char *out, size_t len)
{
    const char *env = getenv("LEAKSCOPE_AGENT");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return access(out, R_OK) == 0 ? 0 : -1;
    }
    char exe[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, len, "%s/libleakscope.so", exe);
            if (access(out, R_OK) == 0) return 0;
        }
    }
    snprintf(out, len, "%s/libleakscope.so", LS_INSTALL_LIBDIR);
    return access(out, R_OK) == 0 ? 0 : -1;
}

static char *build_options(const run_opts_t *o, const char *dir)
{
    const char *user = getenv("LEAKSCOPE_OPTIONS");
    char *s = NULL;
    char frames[64] = "";
    if (o->max_frames) snprintf(frames, sizeof(frames), ":max_frames=%ld", o->max_frames);
    char unw[128] = "";
    if (o->unwinder) snprintf(unw, sizeof(unw), ":unwinder=%s", o->unwinder);
    char rate[64] = "";
    if (o->sample_rate) snprintf(rate, sizeof(rate), ":sample_rate=%ld", o->sample_rate);
    if (o->site_frames) snprintf(rate, sizeof(rate), ":site_frames=%ld", o->site_frames);
    /* Later keys win in the agent's parser: ours come after the user's. */
    if (asprintf(&s, "%s%soutput=%s/%%p.lsnap:summary=0:mode=%s%s%s%s%s", user ? user : "",
                 user && *user ? ":" : "", dir, o->mode, frames, unw, rate, o->extra) < 0)
        return NULL;
    return s;
}

static int copy_file(const char *from, const char *to)
{
    if (ls_out_is_special(to)) { /* --output /dev/null: write in place, never replace it */
        FILE *in = fopen(from, "r"), *out = fopen(to, "w");
        char buf[1 << 16];
        size_t n;
        int rc = in && out ? 0 : -1;
        while (!rc && (n = fread(buf, 1, sizeof(buf), in)) > 0)
            if (fwrite(buf, 1, n, out) != n) rc = -1;
        if (in) fclose(in);
        if (out && fclose(out) != 0) rc = -1;
        return rc;
    }
    if (rename(from, to) == 0) return 0;
    if (errno != EXDEV) return -1;
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", to, (int)getpid());
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n) rc = -1;
    if (n < 0) rc = -1;
    close(in);
    if (close(out) < 0) rc = -1;
    if (rc == 0 && rename(tmp, to) < 0) rc = -1;
    if (rc) unlink(tmp);
    return rc;
}

/* Mode sample: no leak verdicts, the profile's top sites by estimated bytes in use (the whole
 * profile, all views, with --json); returns 0, -1 on error. */
static long long render_profile(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                                const char *snap_path, const char *program, const char *json_path,
                                bool is_child, const run_opts_t *o)
{
    char err[1024];
    ls_prof_report_opts_t po = {.index = LS_PROF_INUSE_SPACE, .top = 10, .program = program};
    ls_prof_report_t *r = ls_prof_report_build(snap, sym, &po, err, sizeof(err));
    if (!r) {
        fprintf(stderr, "leakscope: %s: %s\n", snap_path, err);
        return -1;
    }
    if (is_child)
        fprintf(stderr, "leakscope: ---- forked child process %llu ----\n",
                (unsigned long long)snap->pid);
    ls_prof_report_write_text(r, stderr);
    if (!o->output_path)
        fprintf(stderr, "leakscope: keep the whole profile with --output FILE, then leakscope "
                        "report FILE [--format pprof -o OUT]\n");
    else if (is_child)
        fprintf(stderr, "leakscope: whole profile in %s.%llu\n", o->output_path,
                (unsigned long long)snap->pid);
    else
        fprintf(stderr, "leakscope: whole profile in %s\n", o->output_path);
    fflush(stderr);
    ls_prof_report_free(r);
    long long rc = 0;
    if (json_path) {
        po.top = 0;
        r = ls_prof_report_build(snap, sym, &po, err, sizeof(err));
        char tmp[PATH_MAX + 32];
        bool special = ls_out_is_special(json_path);
        snprintf(tmp, sizeof(tmp), "%s.tmp.%d", json_path, (int)getpid());
        FILE *f = r ? fopen(special ? json_path : tmp, "w") : NULL;
        int wrc = f ? ls_prof_report_write_json(r, f) : -1;
        if (f && fclose(f) != 0) wrc = -1;
        if (wrc || (!special && rename(tmp, json_path) < 0)) {
            fprintf(stderr, "leakscope: cannot write %s: %s\n", json_path,
                    r ? strerror(errno) : err);
            unlink(tmp);
            rc = -1;
        }
        if (r) ls_prof_report_free(r);
    }
    return rc;
}

/* Mode sites with --fail: the injected failures (the leak report prints them in mode full).
 * Returns 0, -1 on error. */
static long long render_faults(const char *snap_path)
{
    ls_snapshot_t snap;
    char err[1024];
    if (ls_snapshot_load(snap_path, &snap, err, sizeof(err))) {
        fprintf(stderr, "leakscope: %s\n", err);
        return -1;
    }
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    ls_faults_t *f = NULL;
    long long rc = 0;
    if (ls_faults_build(&snap, sym, &f)) {
        fprintf(stderr, "leakscope: %s: out of memory\n", snap_path);
        rc = -1;
    }
    ls_faults_write_text(f, stderr);
    fflush(stderr);
    ls_faults_free(f);
    ls_symbolizer_free(sym);
    ls_snapshot_free(&snap);
    return rc;
}

/* Renders one process's snapshot; returns lost bytes (definitely + indirectly) plus reference
 * problems (ls_report_refs_problems), -1 on error. */
static long long render(const char *snap_path, const run_opts_t *o, const ls_suppressions_t *supp,
                        const char *program, int have_status, int status, const char *json_path,
                        bool is_child)
{
    ls_snapshot_t snap;
    char err[1024];
    if (!strcmp(o->mode, "sites")) {
        /* No leak check, no blocks: the counters are the `sites` command's to show. */
        fprintf(stderr, "leakscope: mode sites: leakscope sites %s shows the counters\n",
                o->output_path ? o->output_path : "FILE (keep it with --output FILE)");
        return o->nfail ? render_faults(snap_path) : 0;
    }
    if (ls_snapshot_load(snap_path, &snap, err, sizeof(err))) {
        fprintf(stderr, "leakscope: %s\n", err);
        return -1;
    }
    ls_symbolizer_t *sym = ls_symbolizer_new(&snap, NULL);
    if (ls_snapshot_is_sampled(&snap)) {
        long long rc = render_profile(&snap, sym, snap_path, program, json_path, is_child, o);
        ls_symbolizer_free(sym);
        ls_snapshot_free(&snap);
        return rc;
    }
    ls_report_opts_t ro = {.show_reachable = o->show_reachable,
                           .supp = supp,
                           .program = program,
                           .have_exit_status = have_status,
                           .exit_status = status};
    ls_report_t *r = ls_report_build(&snap, sym, &ro, err, sizeof(err));
    long long lost = -1;
    if (!r) {
        fprintf(stderr, "leakscope: %s: %s\n", snap_path, err);
    } else {
        if (is_child)
            fprintf(stderr, "leakscope: ---- forked child process %llu ----\n",
                    (unsigned long long)snap.pid);
        ls_report_write_text(r, stderr);
        fflush(stderr);
        ls_totals_t t;
        ls_report_totals(r, &t);
        lost = (long long)(t.bytes[LS_KIND_DEFINITELY] + t.bytes[LS_KIND_INDIRECTLY]);
        /* objects still referenced and reference errors fail --error-exitcode too */
        lost += (long long)ls_report_refs_problems(r);
        if (json_path) {
            char tmp[PATH_MAX + 32];
            bool special = ls_out_is_special(json_path); /* /dev/stdout, a FIFO: in place */
            snprintf(tmp, sizeof(tmp), "%s.tmp.%d", json_path, (int)getpid());
            FILE *f = fopen(special ? json_path : tmp, "w");
            int rc = f ? ls_report_write_json(r, f) : -1;
            if (f && fclose(f) != 0) rc = -1;
            if (rc || (!special && rename(tmp, json_path) < 0)) {
                fprintf(stderr, "leakscope: cannot write %s: %s\n", json_path, strerror(errno));
                unlink(tmp);
                lost = -1;
            }
        }
        ls_report_free(r);
    }
    ls_symbolizer_free(sym);
    ls_snapshot_free(&snap);
    return lost;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[PATH_MAX + 300];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int ls_cmd_run(int argc, char **argv)
{
    run_opts_t o = {.mode = "full"};
    static const struct option longopts[] = {
        {"json", required_argument, NULL, 'j'},
        {"error-exitcode", required_argument, NULL, 'e'},
        {"suppressions", required_argument, NULL, 's'},
        {"show-reachable", no_argument, NULL, 'r'},
        {"output", required_argument, NULL, 'o'},
        {"mode", required_argument, NULL, 'm'},
        {"sample-rate", required_argument, NULL, 'X'},
        {"site-frames", required_argument, NULL, 'N'},
        {"max-frames", required_argument, NULL, 'f'},
        {"unwinder", required_argument, NULL, 'u'},
        {"snapshot-signal", required_argument, NULL, 'S'},
        {"snapshot-interval", required_argument, NULL, 'I'},
        {"snapshot-output", required_argument, NULL, 'O'},
        {"no-control", no_argument, NULL, 'C'},
        {"refs", required_argument, NULL, 'R'},
        {"fail", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "+ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            o.json_path = optarg;
            break;
        case 's':
            o.supp_path = optarg;
            break;
        case 'r':
            o.show_reachable = 1;
            break;
        case 'o':
            o.output_path = optarg;
            break;
        case 'm':
            if (strcmp(optarg, "full") && strcmp(optarg, "sample") && strcmp(optarg, "sites")) {
                fprintf(stderr, "leakscope run: --mode wants full, sample or sites, not '%s'\n",
                        optarg);
                return 2;
            }
            o.mode = optarg;
            break;
        case 'X':
            if (parse_int(optarg, 1, 1l << 40, &v)) {
                fprintf(stderr,
                        "leakscope run: --sample-rate wants a number of bytes from 1 to 2^40, "
                        "not '%s'\n",
                        optarg);
                return 2;
            }
            o.sample_rate = v;
            break;
        case 'N':
            if (parse_int(optarg, 1, 16, &v)) {
                fprintf(stderr, "leakscope run: --site-frames wants 1-16, not '%s'\n", optarg);
                return 2;
            }
            o.site_frames = v;
            break;
        case 'e':
            if (parse_int(optarg, 1, 255, &v)) {
                fprintf(stderr, "leakscope run: --error-exitcode wants 1-255, not '%s'\n", optarg);
                return 2;
            }
            o.error_exitcode = (int)v;
            break;
        case 'f':
            if (parse_int(optarg, 1, 256, &v)) {
                fprintf(stderr, "leakscope run: --max-frames wants 1-256, not '%s'\n", optarg);
                return 2;
            }
            o.max_frames = v;
            break;
        case 'u':
            if (strcmp(optarg, "fast") && strcmp(optarg, "libunwind") && strcmp(optarg, "fp")) {
                fprintf(stderr, "leakscope run: --unwinder wants fast, libunwind or fp, not '%s'\n",
                        optarg);
                return 2;
            }
            o.unwinder = optarg;
            break;
        case 'S': {
            int sig = parse_signal(optarg);
            char num[16];
            snprintf(num, sizeof(num), "%d", sig);
            if (!sig || sig == SIGKILL || sig == SIGSTOP) {
                fprintf(stderr, "leakscope run: --snapshot-signal: '%s' is not a usable signal\n",
                        optarg);
                return 2;
            }
            add_option(&o, "snapshot_signal", num);
            break;
        }
        case 'I':
            if (parse_int(optarg, 1, 86400 * 365, &v)) {
                fprintf(stderr,
                        "leakscope run: --snapshot-interval wants whole seconds >= 1, not "
                        "'%s'\n",
                        optarg);
                return 2;
            }
            add_option(&o, "snapshot_interval", optarg);
            break;
        case 'O':
            if (!*optarg || strlen(optarg) > 500 || add_option(&o, "snapshot_output", optarg)) {
                fprintf(stderr,
                        "leakscope run: --snapshot-output: '%s' is empty, too long or "
                        "contains ':'\n",
                        optarg);
                return 2;
            }
            break;
        case 'C':
            add_option(&o, "control", "0");
            break;
        case 'R': {
            const char *why = add_refs(&o, optarg);
            if (why) {
                fprintf(stderr, "leakscope run: --refs '%s': %s\n", optarg, why);
                return 2;
            }
            break;
        }
        case 'F':
            if (o.nfail == sizeof(o.fail) / sizeof(o.fail[0])) {
                fprintf(stderr, "leakscope run: too many --fail (at most %zu)\n", o.nfail);
                return 2;
            }
            o.fail[o.nfail++] = optarg;
            break;
        case 'h':
            run_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "leakscope run: unknown or incomplete option '%s'\n", argv[optind - 1]);
            run_usage(stderr);
            return 2;
        }
    }
    if (o.sample_rate && strcmp(o.mode, "sample")) {
        fprintf(stderr, "leakscope run: --sample-rate needs --mode sample\n");
        return 2;
    }
    if (o.site_frames && strcmp(o.mode, "sites")) {
        fprintf(stderr, "leakscope run: --site-frames needs --mode sites\n");
        return 2;
    }
    if (o.refs[0] && add_option(&o, "refs", o.refs)) {
        fprintf(stderr, "leakscope run: too many options for the agent\n");
        return 2;
    }
    if (o.nfail && !strcmp(o.mode, "sample")) {
        fprintf(stderr, "leakscope run: --fail works in modes full and sites, not in mode sample "
                        "(it sees too few calls to fail a chosen one)\n");
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "leakscope run: no program given\n");
        run_usage(stderr);
        return 2;
    }
    char **prog = argv + optind;
    /* Resolved now: a spec that is wrong or names nothing stops us before the program runs. */
    if (o.nfail && resolve_fail_rules(&o, prog[0])) return 2;

    ls_suppressions_t *supp = NULL;
    char err[1024];
    if (o.supp_path) {
        supp = ls_suppressions_new();
        if (!supp || ls_suppressions_load(supp, o.supp_path, err, sizeof(err))) {
            fprintf(stderr, "leakscope run: %s\n", supp ? err : "out of memory");
            ls_suppressions_free(supp);
            free(o.fail_rules);
            return 2;
        }
    }
    char agent[PATH_MAX];
    if (find_agent(agent, sizeof(agent))) {
        fprintf(stderr,
                "leakscope run: cannot find the agent libleakscope.so (tried %s); set "
                "LEAKSCOPE_AGENT\n",
                agent);
        ls_suppressions_free(supp);
        free(o.fail_rules);
        return 2;
    }
    const char *tmpdir = getenv("TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/leakscope.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "leakscope run: cannot create a directory in %s: %s\n",
                tmpdir && *tmpdir ? tmpdir : "/tmp", strerror(errno));
        ls_suppressions_free(supp);
        free(o.fail_rules);
        return 2;
    }
    if (o.fail_rules && pass_fail_rules(&o, dir)) {
        remove_dir(dir);
        ls_suppressions_free(supp);
        return 2;
    }
    char *options = build_options(&o, dir);
    const char *old_preload = getenv("LD_PRELOAD");
    char *preload = NULL;
    if (!options || asprintf(&preload, "%s%s%s", agent, old_preload && *old_preload ? " " : "",
                             old_preload ? old_preload : "") < 0) {
        fprintf(stderr, "leakscope run: out of memory\n");
        return 2;
    }

    /* A failed exec is reported through this pipe, so it is told apart from the program
     * itself exiting with 127. */
    int epipe[2];
    if (pipe2(epipe, O_CLOEXEC) < 0) {
        fprintf(stderr, "leakscope run: pipe: %s\n", strerror(errno));
        return 2;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "leakscope run: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        close(epipe[0]);
        setenv("LD_PRELOAD", preload, 1);
        setenv("LEAKSCOPE_OPTIONS", options, 1);
        setenv("G_SLICE", "always-malloc", 0); /* see the head comment; the user's value wins */
        free(preload); /* setenv copied them; a sanitized build checks leaks at _exit */
        free(options);
        execvp(prog[0], prog);
        int e = errno;
        ssize_t w = write(epipe[1], &e, sizeof(e));
        (void)w;
        _exit(127);
    }
    close(epipe[1]);
    child_pid = pid;
    struct sigaction ign, fwd, old_int, old_quit, old_term, old_hup;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    memset(&fwd, 0, sizeof(fwd));
    fwd.sa_handler = forward_signal;
    /* Ctrl-C reaches the program through the terminal; we stay to write the report. */
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    sigaction(SIGTERM, &fwd, &old_term);
    sigaction(SIGHUP, &fwd, &old_hup);
    int exec_errno = 0;
    ssize_t got;
    do got = read(epipe[0], &exec_errno, sizeof(exec_errno));
    while (got < 0 && errno == EINTR);
    close(epipe[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    if (got == (ssize_t)sizeof(exec_errno)) {
        fprintf(stderr, "leakscope run: cannot run %s: %s\n", prog[0], strerror(exec_errno));
        remove_dir(dir);
        ls_suppressions_free(supp);
        return 127;
    }

    int exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char main_snap[PATH_MAX + 64];
    snprintf(main_snap, sizeof(main_snap), "%s/%d.lsnap", dir, (int)pid);
    long long lost = -1;
    if (access(main_snap, R_OK) != 0) {
        fprintf(stderr,
                "leakscope run: %s wrote no snapshot: it may be statically linked, setuid, or "
                "have cleared LD_PRELOAD, or it was killed by SIGKILL\n",
                prog[0]);
    } else {
        lost = render(main_snap, &o, supp, prog[0], 1, exit_status, o.json_path, false);
        if (o.output_path && copy_file(main_snap, o.output_path))
            fprintf(stderr, "leakscope run: cannot write %s: %s\n", o.output_path, strerror(errno));
    }
    /* Forked children that have exited by now. */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            int cpid;
            char tail[16];
            if (sscanf(e->d_name, "%d.lsna%15s", &cpid, tail) != 2 || strcmp(tail, "p") ||
                cpid == pid)
                continue;
            char path[PATH_MAX + 300];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            char *cjson = NULL, *csnap = NULL;
            if (o.json_path && asprintf(&cjson, "%s.%d", o.json_path, cpid) < 0) cjson = NULL;
            render(path, &o, supp, prog[0], 0, 0, cjson, true);
            if (o.output_path && asprintf(&csnap, "%s.%d", o.output_path, cpid) >= 0) {
                copy_file(path, csnap);
                free(csnap);
            }
            free(cjson);
        }
        closedir(d);
    }
    remove_dir(dir);
    ls_suppressions_free(supp);
    free(options);
    free(preload);

    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        fflush(NULL);
        signal(sig, SIG_DFL);
        /* Die the same way, without a core file of our own. */
        kill(getpid(), sig);
        return 128 + sig;
    }
    if (o.error_exitcode && lost > 0) return o.error_exitcode;
    return exit_status;
}
