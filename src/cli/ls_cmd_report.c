/*
 * ls_cmd_report.c - `leakscope report`: load a snapshot, symbolize, apply suppressions, render.
 *
 * Two views of a snapshot: the leak report (ls_report.h: a full-mode snapshot's text and JSON)
 * and the profile (ls_profile.h, ls_pprof.h: a sample profile's text and JSON, and pprof and
 * collapsed stacks of any snapshot; also a full snapshot's text/JSON when --top or
 * --sample-index asks for the top-N view).
 *
 * Owns only the command line. Exit status: 0 report written, 1 the input (snapshot or
 * suppressions) is unreadable or corrupt, a --born-after/--born-before marker is not in it, a
 * view the snapshot does not have was asked for (alloc_* of a full snapshot), or the output
 * cannot be written, 2 usage error. -o writes atomically (ls_out_t).
 */
#include "ls_cli.h"
#include "ls_output.h"
#include "ls_pprof.h"
#include "ls_profile.h"
#include "ls_report.h"

#include <unistd.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "leakscope report"

static void usage(FILE *f)
{
    fprintf(f, "usage: leakscope report FILE [options]\n"
               "  -f, --format F             text (default), json, pprof (gzipped profile.proto\n"
               "                             for Go's pprof, Pyroscope, Parca) or collapsed\n"
               "                             (flamegraph.pl, speedscope)\n"
               "  -o, --output OUT           write to OUT (atomically) instead of stdout\n"
               "      --sample-index V       the profile view: inuse_space (default),\n"
               "                             inuse_objects, alloc_space, alloc_objects (alloc_*:\n"
               "                             sample profiles only)\n"
               "      --top N                profile rows per table (default 20 in text, all in\n"
               "                             JSON; 0 = all); with a full snapshot, --top or\n"
               "                             --sample-index gives the profile instead of the\n"
               "                             leak report\n"
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

typedef enum report_format { F_TEXT, F_JSON, F_PPROF, F_COLLAPSED } report_format_t;

/* The profile view in format fmt. A birth window restricts the in-use views (ls_profile_build).
 * Returns the exit status. */
static int profile_view(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                        const ls_block_filter_t *window, report_format_t fmt, ls_prof_value_t index,
                        size_t top, const ls_site_rules_t *rules, const char *output,
                        const char *path)
{
    char err[4096];
    int status = 1, ok = 1;
    ls_profile_t prof;
    ls_prof_report_t *rep = NULL;
    bool have_prof = false;
    if (fmt == F_TEXT || fmt == F_JSON) {
        ls_prof_report_opts_t o = {index, top, rules, NULL, window};
        rep = ls_prof_report_build(snap, sym, &o, err, sizeof(err));
        if (!rep) {
            fprintf(stderr, CMD ": %s: %s\n", path, err);
            return 1;
        }
    } else {
        if (ls_profile_build(snap, window, &prof, err, sizeof(err))) {
            fprintf(stderr, CMD ": %s: %s\n", path, err);
            return 1;
        }
        have_prof = true;
        if (ls_prof_value_is_alloc(index) && !prof.has_alloc) {
            fprintf(stderr, CMD ": %s: %s is not available: %s\n", path, ls_prof_value_name(index),
                    ls_profile_missing_alloc(&prof));
            goto done;
        }
    }
    ls_out_t out;
    if (ls_out_open(&out, output, CMD)) goto done;
    switch (fmt) {
    case F_TEXT:
        ls_prof_report_write_text(rep, out.f);
        break;
    case F_JSON:
        if (ls_prof_report_write_json(rep, out.f)) {
            fprintf(stderr, CMD ": cannot render JSON (out of memory or write error)\n");
            ok = 0;
        }
        break;
    case F_PPROF:
        if (ls_pprof_write_profile(snap, sym, &prof, index, out.f, err, sizeof(err))) {
            fprintf(stderr, CMD ": %s: %s\n", path, err);
            ok = 0;
        }
        break;
    case F_COLLAPSED:
        if (ls_profile_write_collapsed(snap, sym, &prof, index, out.f, err, sizeof(err))) {
            fprintf(stderr, CMD ": %s: %s\n", path, err);
            ok = 0;
        }
        break;
    }
    if (ls_out_close(&out, output, ok, CMD) == 0) status = 0;
done:
    ls_prof_report_free(rep);
    if (have_prof) ls_profile_free(&prof);
    return status;
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
        {"sample-index", required_argument, NULL, 'I'},
        {"top", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = "text", *output = NULL, *index_arg = NULL, *top_arg = NULL;
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
        case 'I':
            index_arg = optarg;
            break;
        case 't':
            top_arg = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default: /* ':' (missing argument) or unknown */
            return ls_option_error(CMD, c, argv[optind - 1]);
        }
    }
    report_format_t fmt;
    if (strcmp(format, "text") == 0)
        fmt = F_TEXT;
    else if (strcmp(format, "json") == 0)
        fmt = F_JSON;
    else if (strcmp(format, "pprof") == 0)
        fmt = F_PPROF;
    else if (strcmp(format, "collapsed") == 0)
        fmt = F_COLLAPSED;
    else
        return ls_usage_error(CMD, "unknown format '%s' (expected text, json, pprof or collapsed)",
                              format);
    int json = fmt == F_JSON;
    ls_prof_value_t index = LS_PROF_INUSE_SPACE;
    if (index_arg && ls_prof_value_parse(index_arg, &index))
        return ls_usage_error(CMD,
                              "unknown --sample-index '%s' (expected inuse_space, inuse_objects, "
                              "alloc_space or alloc_objects)",
                              index_arg);
    uint64_t top = fmt == F_TEXT ? 20 : 0;
    if (top_arg && ls_parse_uint(top_arg, SIZE_MAX, &top))
        return ls_usage_error(CMD, "--top needs a count, got '%s'", top_arg);
    if (top_arg && (fmt == F_PPROF || fmt == F_COLLAPSED))
        return ls_usage_error(CMD, "--top applies to the text and json formats");
    if (fmt == F_PPROF && !output && isatty(STDOUT_FILENO))
        return ls_usage_error(CMD, "a pprof profile is binary: give -o FILE (or redirect)");
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
    /* The profile view: a sample profile, a profile format, or the top-N asked for. */
    bool profile = ls_snapshot_is_sampled(&snap) || fmt == F_PPROF || fmt == F_COLLAPSED ||
                   index_arg || top_arg;
    if (profile && (nsupp_files || show_reachable)) {
        status = ls_usage_error(CMD, "%s applies to leak reports, not to %s",
                                nsupp_files ? "--suppressions" : "--show-reachable",
                                ls_snapshot_is_sampled(&snap) ? "a sample profile"
                                                              : "the profile formats");
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
    if (profile) {
        status =
            profile_view(&snap, sym, &ro.window, fmt, index, (size_t)top, &rules, output, path);
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
