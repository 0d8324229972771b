/*
 * ls_cmd_watch.c - `leakscope watch PID`: a live snapshot every interval, kept as files, with a
 * table of the top allocation sites and their growth (loop: ls_watch.c; table: ls_series.c).
 *
 * Owns the command line and SIGINT/SIGTERM: the first one ends the loop cleanly (the files are
 * kept and the hint to run `leakscope suspects DIR` printed). Exit status: 0 at least one
 * snapshot taken, 1 none (no such process, no agent in it, directory not creatable), 2 usage.
 */
#define _GNU_SOURCE
#include "ls_cli.h"
#include "ls_ctl.h"
#include "ls_output.h"
#include "ls_watch.h"

#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "leakscope watch"

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: leakscope watch PID [options]\n"
               "  snapshots of a running process (started under the agent) over time, kept in a\n"
               "  directory, with a table of the sites that grow\n"
               "      --interval S           seconds between snapshots (default 5; 0.5, 500ms)\n"
               "      --count N              stop after N snapshots (default: until Ctrl-C or\n"
               "                             the process exits)\n"
               "  -o, --output DIR           where the snapshots go (default:\n"
               "                             ./leakscope-watch-PID; snap-0001.lsnap, ...)\n"
               "      --top N                sites in the table (default 15; 0 = all)\n"
               "      --site-skip GLOB       functions that are not allocation sites (xmalloc);\n"
               "                             may be given more than once\n"
               "  -h, --help                 this text\n");
}

static int ctl_snapshot(pid_t pid, const char *path, char *err, size_t errlen, void *ctx)
{
    (void)ctx;
    return ls_ctl_snapshot(pid, path, 0, err, errlen);
}

int ls_cmd_watch(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"interval", required_argument, NULL, 'i'},
        {"count", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"top", required_argument, NULL, 't'},
        {"site-skip", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ls_watch_opts_t o;
    memset(&o, 0, sizeof(o));
    o.interval_ns = 5000000000ull;
    o.top = 15;
    const char *skip[64];
    size_t nskip = 0;
    uint64_t v;

    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (ls_parse_duration(optarg, &o.interval_ns) || o.interval_ns < 10000000)
                return ls_usage_error(CMD,
                                      "--interval needs seconds, at least 0.01 (5, 0.5, "
                                      "500ms), got '%s'",
                                      optarg);
            break;
        case 'c':
            if (ls_parse_uint(optarg, UINT32_MAX, &o.count) || o.count == 0)
                return ls_usage_error(CMD, "--count needs a positive count, got '%s'", optarg);
            break;
        case 'o':
            o.dir = optarg;
            break;
        case 't':
            if (ls_parse_uint(optarg, SIZE_MAX, &v))
                return ls_usage_error(CMD, "--top needs a count, got '%s'", optarg);
            o.top = (size_t)v;
            break;
        case 'S':
            if (ls_site_skip_add(CMD, skip, &nskip, sizeof(skip) / sizeof(skip[0]), optarg))
                return 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default: /* ':' (missing argument) or unknown */
            return ls_option_error(CMD, c, argv[optind - 1]);
        }
    }
    if (optind >= argc) return ls_usage_error(CMD, "no PID given");
    if (argc - optind > 1) return ls_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    if (ls_parse_uint(argv[optind], INT32_MAX, &v) || v == 0)
        return ls_usage_error(CMD, "PID must be a process id, got '%s'", argv[optind]);
    o.pid = (pid_t)v;
    if (ls_process_gone(o.pid)) {
        fprintf(stderr, CMD ": no process %d\n", (int)o.pid);
        return 1;
    }
    char dirbuf[64];
    if (!o.dir) {
        snprintf(dirbuf, sizeof(dirbuf), "leakscope-watch-%d", (int)o.pid);
        o.dir = dirbuf;
    }
    ls_site_rules_t rules = {skip, nskip};
    o.rules = &rules;
    o.redraw = isatty(STDOUT_FILENO);
    setlocale(LC_CTYPE, "");
    o.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop; /* no SA_RESTART: the sleep must end at once */
    sigemptyset(&sa.sa_mask);
    struct sigaction old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_flag = 0;
    int status = ls_watch_run(&o, ctl_snapshot, NULL, &stop_flag, stdout);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return status;
}
