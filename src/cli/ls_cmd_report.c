/*
 * ls_cmd_report.c - `leakscope report`: load a snapshot, symbolize, apply suppressions, render.
 *
 * Owns only the command line. Exit status: 0 report written, 1 the input (snapshot or
 * suppressions) is unreadable or corrupt, a --born-after/--born-before marker is not in it, or
 * the output cannot be written, 2 usage error. -o writes atomically (ls_out_t).
 */
#include "ls_cli.h"
#include "ls_output.h"
#include "ls_report.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "leakscope report"

static void usage(FILE *f)
{
    fprintf(f, "usage: leakscope report FILE [options]\n"
               "  -f, --format text|json     output format (default: text)\n"
               "  -o, --output OUT           write to OUT (atomically) instead of stdout\n"
               "      --show-reachable       also list still-reachable blocks\n"
               "      --suppressions FILE    LeakSanitizer-style suppressions (leak:PATTERN);\n"
               "                             may be given more than once\n"
               "      --born-after MARK|TIME  only blocks born at or after this point\n"
               "      --born-before MARK|TIME only blocks born before this point\n"
               "                             MARK: a marker label or #SEQ; TIME: seconds since\n"
               "                             the process started (12.5, 12.5s, 800ms) or before\n"
               "                             the snapshot (-30s)\n"
               "      --site-skip GLOB       functions that are not allocation sites (xmalloc);\n"
               "                             may be given more than once\n"
               "  -h, --help                 this text\n");
}

int ls_cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"show-reachable", no_argument, NULL, 'r'},
        {"suppressions", required_argument, NULL, 's'},
        {"born-after", required_argument, NULL, 'A'},
        {"born-before", required_argument, NULL, 'B'},
        {"site-skip", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = "text", *output = NULL;
    const char *supp_files[64], *skip[64];
    size_t nsupp_files = 0, nskip = 0;
    const char *born_after = NULL, *born_before = NULL;
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
                return ls_usage_error(CMD, "too many --suppressions files (at most 64)");
            supp_files[nsupp_files++] = optarg;
            break;
        case 'A':
            born_after = optarg;
            break;
        case 'B':
            born_before = optarg;
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
    int json = ls_parse_format(format);
    if (json < 0) return ls_usage_error(CMD, "unknown format '%s' (expected text or json)", format);
    if (optind >= argc) return ls_usage_error(CMD, "no snapshot file given");
    if (argc - optind > 1) return ls_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];

    char err[4096];
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
    ls_site_rules_t rules = {skip, nskip};
    ro.site_rules = &rules;
    char after_desc[256], before_desc[256];
    if (born_after) {
        if (ls_window_bound(&snap, born_after, &ro.window.born_after_ns, after_desc,
                            sizeof(after_desc), err, sizeof(err))) {
            fprintf(stderr, CMD ": %s: --born-after: %s\n", path, err);
            goto done;
        }
        ro.window.has_after = true;
        ro.born_after_desc = after_desc;
    }
    if (born_before) {
        if (ls_window_bound(&snap, born_before, &ro.window.born_before_ns, before_desc,
                            sizeof(before_desc), err, sizeof(err))) {
            fprintf(stderr, CMD ": %s: --born-before: %s\n", path, err);
            goto done;
        }
        ro.window.has_before = true;
        ro.born_before_desc = before_desc;
    }
    if (born_after && born_before && ro.window.born_after_ns >= ro.window.born_before_ns) {
        fprintf(stderr, CMD ": %s: empty window: --born-after %s is not before --born-before %s\n",
                path, after_desc, before_desc);
        goto done;
    }
    rep = ls_report_build(&snap, sym, &ro, err, sizeof(err));
    if (!rep) {
        fprintf(stderr, CMD ": %s: %s\n", path, err);
        goto done;
    }
    ls_out_t out;
    if (ls_out_open(&out, output, CMD)) goto done;
    int ok = 1;
    if (json) {
        if (ls_report_write_json(rep, out.f)) {
            fprintf(stderr, CMD ": cannot render JSON (out of memory or write error)\n");
            ok = 0;
        }
    } else {
        ls_report_write_text(rep, out.f);
    }
    if (ls_out_close(&out, output, ok, CMD) == 0) status = 0;
done:
    ls_report_free(rep);
    ls_symbolizer_free(sym);
    ls_snapshot_free(&snap);
    ls_suppressions_free(supp);
    return status;
}
