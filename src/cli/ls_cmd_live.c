/*
 * ls_cmd_live.c - `leakscope snapshot`, `mark` and `ps`: the commands that talk to a running
 * agent over its control socket (ls_ctl.h). They only ask; the agent does the work.
 */
#define _GNU_SOURCE
#include "ls_cli.h"
#include "ls_ctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Parses a pid argument; prints the error and returns 0 when it is not one. */
static pid_t parse_pid(const char *cmd, const char *s)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || v <= 0 || v > 0x3fffffff) {
        fprintf(stderr, "leakscope %s: '%s' is not a process id\n", cmd, s ? s : "");
        return 0;
    }
    return (pid_t)v;
}

/* The value of key=... in an info/ok reply, or "" (copied into out). */
static const char *reply_field(const char *reply, const char *key, char *out, size_t len)
{
    size_t k = strlen(key);
    out[0] = 0;
    for (const char *p = reply; (p = strstr(p, key)); p++) {
        if ((p == reply || p[-1] == ' ') && p[k] == '=') {
            const char *v = p + k + 1;
            /* exe= is last and may hold spaces */
            size_t n = strcmp(key, "exe") == 0 ? strlen(v) : strcspn(v, " ");
            if (n >= len) n = len - 1;
            memcpy(out, v, n);
            out[n] = 0;
            break;
        }
    }
    return out;
}

int ls_cmd_snapshot(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"leak-check", no_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int check = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'c':
            check = 1;
            break;
        case 'h':
            printf("usage: leakscope snapshot PID [-o FILE] [--leak-check]\n"
                   "  writes a snapshot of the live blocks of a running process (default file:\n"
                   "  leakscope-PID-YYYYmmdd-HHMMSS.lsnap); --leak-check also classifies them\n"
                   "  (definitely/indirectly/possibly lost, reachable), parking the process for\n"
                   "  the whole scan instead of the copy only.\n");
            return 0;
        default:
            fprintf(stderr, "Try 'leakscope snapshot --help'.\n");
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "leakscope snapshot: expected one PID\nTry 'leakscope snapshot --help'.\n");
        return 2;
    }
    pid_t pid = parse_pid("snapshot", argv[optind]);
    if (!pid) return 2;
    char def[128];
    if (!out) {
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        snprintf(def, sizeof(def), "leakscope-%d-%04d%02d%02d-%02d%02d%02d.lsnap", (int)pid,
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        out = def;
    }
    char err[512];
    if (ls_ctl_snapshot(pid, out, check, err, sizeof(err)) < 0) {
        fprintf(stderr, "leakscope snapshot: %s\n", err);
        return 1;
    }
    printf("%s\n", out);
    return 0;
}

int ls_cmd_mark(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: leakscope mark PID LABEL...\n"
               "  places a named marker (now, with LABEL) in a running process; snapshots carry\n"
               "  it, and `leakscope report --born-after/--born-before LABEL` select by it.\n");
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr, "leakscope mark: expected PID and LABEL\n");
        return 2;
    }
    pid_t pid = parse_pid("mark", argv[1]);
    if (!pid) return 2;
    char label[LS_CTL_LINE_MAX];
    size_t n = 0;
    for (int i = 2; i < argc; i++) {
        size_t k = strlen(argv[i]);
        if (n + k + 2 > 121) {
            fprintf(stderr, "leakscope mark: label longer than 120 bytes\n");
            return 2;
        }
        if (n) label[n++] = ' ';
        memcpy(label + n, argv[i], k);
        n += k;
    }
    label[n] = 0;
    if (!n || strpbrk(label, "\n\r")) {
        fprintf(stderr, "leakscope mark: the label must be non-empty and on one line\n");
        return 2;
    }
    char req[LS_CTL_LINE_MAX + 8], reply[LS_CTL_LINE_MAX], err[512], seq[32], t[32];
    snprintf(req, sizeof(req), "mark %s", label);
    if (ls_ctl_request(pid, req, reply, sizeof(reply), 10000, err, sizeof(err)) < 0) {
        fprintf(stderr, "leakscope mark: %s\n", err);
        return 1;
    }
    reply_field(reply, "seq", seq, sizeof(seq));
    reply_field(reply, "time_ns", t, sizeof(t));
    printf("marker #%s '%s' placed in process %d at %.3f s\n", seq, label, (int)pid,
           strtod(t, NULL) / 1e9);
    return 0;
}

typedef struct ps_row {
    pid_t pid;
    char info[LS_CTL_LINE_MAX];
} ps_row_t;

typedef struct ps_list {
    ps_row_t *v;
    size_t n, cap;
    int oom;
} ps_list_t;

static void ps_add(pid_t pid, const char *info, void *ctx)
{
    ps_list_t *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        ps_row_t *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].pid = pid;
    snprintf(l->v[l->n].info, sizeof(l->v[l->n].info), "%s", info ? info : "");
    l->n++;
}

static int cmp_row(const void *a, const void *b)
{
    const ps_row_t *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    fclose(f);
    return v;
}

int ls_cmd_ps(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: leakscope ps\n  lists this user's processes with a live leakscope agent\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "leakscope ps: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    ps_list_t l = {NULL, 0, 0, 0};
    ls_ctl_list(ps_add, &l);
    if (l.oom) {
        fprintf(stderr, "leakscope ps: out of memory\n");
        free(l.v);
        return 1;
    }
    if (l.n) qsort(l.v, l.n, sizeof(*l.v), cmp_row);
    printf("%7s %5s %10s %10s %10s %7s %5s  %s\n", "PID", "MODE", "UPTIME", "BLOCKS", "RSS",
           "MARKERS", "SNAPS", "PROGRAM");
    for (size_t i = 0; i < l.n; i++) {
        char mode[32], up[32], blocks[32], markers[16], snaps[16], exe[1024], rss[32];
        const char *r = l.v[i].info;
        if (!r[0]) {
            printf("%7d  (agent listening but not answering within 3 s: busy with a snapshot?)\n",
                   (int)l.v[i].pid);
            continue;
        }
        reply_field(r, "mode", mode, sizeof(mode));
        reply_field(r, "uptime_ns", up, sizeof(up));
        reply_field(r, "blocks", blocks, sizeof(blocks));
        reply_field(r, "markers", markers, sizeof(markers));
        reply_field(r, "snapshots", snaps, sizeof(snaps));
        reply_field(r, "exe", exe, sizeof(exe));
        long kib = rss_kib(l.v[i].pid);
        if (kib < 0)
            snprintf(rss, sizeof(rss), "-");
        else
            snprintf(rss, sizeof(rss), "%.1f MiB", kib / 1024.0);
        char upt[32];
        snprintf(upt, sizeof(upt), "%.1f s", strtod(up, NULL) / 1e9);
        printf("%7d %5s %10s %10s %10s %7s %5s  %s\n", (int)l.v[i].pid, mode, upt, blocks, rss,
               markers, snaps, exe);
    }
    free(l.v);
    return 0;
}
