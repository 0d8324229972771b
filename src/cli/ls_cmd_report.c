/*
 * ls_cmd_report.c - `leakscope report`: load a snapshot, symbolize, apply suppressions, render.
 *
 * Owns only the command line and the output file. Exit status: 0 report written, 1 the input
 * (snapshot or suppressions) is unreadable or corrupt or the output cannot be written, 2 usage
 * error. With -o the report is written to a temporary file beside OUT and renamed over it, so a
 * reader of OUT never sees half a report and a failed run leaves an older OUT untouched.
 */
#include "ls_cli.h"
#include "ls_report.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "leakscope report"

static void usage(FILE *f)
{
    fprintf(f, "usage: leakscope report FILE [options]\n"
               "  -f, --format text|json     output format (default: text)\n"
               "  -o, --output OUT           write to OUT (atomically) instead of stdout\n"
               "      --show-reachable       also list still-reachable blocks\n"
               "      --suppressions FILE    LeakSanitizer-style suppressions (leak:PATTERN);\n"
               "                             may be given more than once\n"
               "  -h, --help                 this text\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, CMD ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'leakscope report --help'.\n");
    return 2;
}

typedef struct out_file {
    FILE *f;
    char *tmp; /* temporary path when writing to a file, else NULL (stdout) */
} out_file_t;

static int out_open(out_file_t *o, const char *path)
{
    o->f = stdout;
    o->tmp = NULL;
    if (!path || strcmp(path, "-") == 0) return 0;
    size_t n = strlen(path);
    o->tmp = malloc(n + sizeof(".tmp.XXXXXX"));
    if (!o->tmp) return -1;
    memcpy(o->tmp, path, n);
    memcpy(o->tmp + n, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        fprintf(stderr, CMD ": cannot create %s: %s\n", o->tmp, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    /* mkstemp makes the file 0600; a report is an ordinary file: 0666 less the umask. */
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um); /* on failure the report just stays private */
    o->f = fdopen(fd, "w");
    if (!o->f) {
        fprintf(stderr, CMD ": cannot write %s: %s\n", o->tmp, strerror(errno));
        close(fd);
        unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    return 0;
}

/* Finishes the output: flush, check, rename into place. ok = 0 discards it. Returns 0/-1. */
static int out_close(out_file_t *o, const char *path, int ok)
{
    int rc = 0;
    if (fflush(o->f) != 0 || ferror(o->f)) {
        if (ok)
            fprintf(stderr, CMD ": error writing %s: %s\n", o->tmp ? path : "standard output",
                    strerror(errno));
        rc = -1;
    }
    if (!o->tmp) return rc;
    if (fclose(o->f) != 0 && rc == 0) {
        if (ok) fprintf(stderr, CMD ": error writing %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    if (ok && rc == 0 && rename(o->tmp, path) != 0) {
        fprintf(stderr, CMD ": cannot rename %s to %s: %s\n", o->tmp, path, strerror(errno));
        rc = -1;
    }
    if (!ok || rc != 0) unlink(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    return ok ? rc : -1;
}

int ls_cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},   {"output", required_argument, NULL, 'o'},
        {"show-reachable", no_argument, NULL, 'r'}, {"suppressions", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *format = "text", *output = NULL;
    const char *supp_files[64];
    size_t nsupp_files = 0;
    int show_reachable = 0;

    optind = 0; /* GNU: full re-initialisation, so the command can run twice in one process */
    opterr = 0; /* our own messages, naming the command */
    int c;
    while ((c = getopt_long(argc, argv, ":f:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'r':
            show_reachable = 1;
            break;
        case 's':
            if (nsupp_files == sizeof(supp_files) / sizeof(supp_files[0]))
                return usage_error("too many --suppressions files (at most %s)", "64");
            supp_files[nsupp_files++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            return usage_error("option '%s' needs an argument", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    int json;
    if (strcmp(format, "text") == 0)
        json = 0;
    else if (strcmp(format, "json") == 0)
        json = 1;
    else
        return usage_error("unknown format '%s' (expected text or json)", format);
    if (optind >= argc) return usage_error("%s", "no snapshot file given");
    if (argc - optind > 1) return usage_error("unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];

    char err[1024];
    int status = 1;
    ls_suppressions_t *supp = NULL;
    ls_snapshot_t snap;
    memset(&snap, 0, sizeof(snap));
    ls_symbolizer_t *sym = NULL;
    ls_report_t *rep = NULL;

    if (nsupp_files) {
        supp = ls_suppressions_new();
        if (!supp) {
            fprintf(stderr, CMD ": out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < nsupp_files; i++) {
            if (ls_suppressions_load(supp, supp_files[i], err, sizeof(err))) {
                fprintf(stderr, CMD ": %s\n", err);
                goto done;
            }
        }
    }
    if (ls_snapshot_load(path, &snap, err, sizeof(err))) {
        fprintf(stderr, CMD ": %s\n", err);
        goto done;
    }
    sym = ls_symbolizer_new(&snap, NULL);
    if (!sym) {
        fprintf(stderr, CMD ": out of memory\n");
        goto done;
    }
    ls_report_opts_t ro;
    memset(&ro, 0, sizeof(ro));
    ro.show_reachable = show_reachable;
    ro.supp = supp;
    rep = ls_report_build(&snap, sym, &ro, err, sizeof(err));
    if (!rep) {
        fprintf(stderr, CMD ": %s: %s\n", path, err);
        goto done;
    }
    out_file_t out;
    if (out_open(&out, output)) goto done;
    int ok = 1;
    if (json) {
        if (ls_report_write_json(rep, out.f)) {
            fprintf(stderr, CMD ": cannot render JSON (out of memory or write error)\n");
            ok = 0;
        }
    } else {
        ls_report_write_text(rep, out.f);
    }
    if (out_close(&out, output, ok) == 0) status = 0;
done:
    ls_report_free(rep);
    ls_symbolizer_free(sym);
    ls_snapshot_free(&snap);
    ls_suppressions_free(supp);
    return status;
}
