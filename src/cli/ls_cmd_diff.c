/*
 * ls_cmd_diff.c - `leakscope diff OLD NEW`: what grew and what shrank between two snapshots,
 * per allocation site (default) or per stack, NEW minus OLD (pprof's -base). Sample profiles
 * are compared on their estimated in-use figures (the weighting is ls_profile.c's); --format
 * pprof writes NEW minus OLD as one pprof profile (ls_pprof.h), negative values included.
 *
 * Owns only the command line. The two snapshots may come from one process or from two runs:
 * rows are matched by symbolized frames (ls_agg.h keys), never by address or stack id. When
 * either snapshot holds site counters (mode sites), both are compared as site views instead
 * (ls_sites.h: a full or sample snapshot takes part through its derived view), matched by
 * module path + offset of the site's frames. Exit status: 0 written, 1 unreadable or corrupt
 * input or output failure, 2 usage error.
 */
#include "ls_cli.h"
#include "ls_output.h"
#include "ls_pprof.h"
#include "ls_profile.h"
#include "ls_series.h"
#include "ls_sites.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "leakscope diff"

static void usage(FILE *f)
{
    fprintf(f, "usage: leakscope diff OLD NEW [options]\n"
               "  per allocation site (or stack): bytes and blocks in OLD and NEW, NEW minus OLD\n"
               "      --by site|stack        group by allocation site (default) or whole stack\n"
               "  -f, --format text|json|pprof  output format (default: text); pprof: NEW minus\n"
               "                             OLD per stack as one gzipped profile.proto, as\n"
               "                             `pprof -base OLD NEW` shows it\n"
               "      --sample-index V       pprof: the view shown by default (inuse_space;\n"
               "                             inuse_objects, alloc_space, alloc_objects)\n"
               "      --top N                rows shown (default: 20 in text, all in JSON;\n"
               "                             0 = all)\n"
               "      --site-skip GLOB       functions that are not allocation sites (xmalloc);\n"
               "                             may be given more than once\n"
               "  -o, --output OUT           write to OUT (atomically) instead of stdout\n"
               "  -h, --help                 this text\n");
}

/* --format pprof: NEW (+1) then OLD (-1) into one profile, so NEW's addresses are the ones kept
 * (ls_pprof.h rebases OLD's onto them). The alloc views are written when both have them. */
static int diff_pprof(const char *old_path, const char *new_path, ls_prof_value_t index,
                      const char *output)
{
    const char *paths[2] = {new_path, old_path};
    ls_snapshot_t snap[2];
    ls_symbolizer_t *sym[2] = {NULL, NULL};
    ls_profile_t prof[2];
    ls_pprof_t *b = NULL;
    char err[4096];
    int status = 1, loaded = 0, built = 0;
    memset(snap, 0, sizeof(snap));
    for (; loaded < 2; loaded++) {
        if (ls_snapshot_load(paths[loaded], &snap[loaded], err, sizeof(err))) {
            fprintf(stderr, CMD ": %s\n", err);
            goto done;
        }
    }
    for (; built < 2; built++) {
        if (ls_profile_build(&snap[built], NULL, &prof[built], err, sizeof(err))) {
            fprintf(stderr, CMD ": %s: %s\n", paths[built], err);
            goto done;
        }
    }
    bool alloc = prof[0].has_alloc && prof[1].has_alloc;
    if (ls_prof_value_is_alloc(index) && !alloc) {
        int k = prof[0].has_alloc ? 1 : 0;
        fprintf(stderr, CMD ": %s: %s is not available: %s\n", paths[k], ls_prof_value_name(index),
                ls_profile_missing_alloc(&prof[k]));
        goto done;
    }
    b = ls_pprof_new(alloc, (int64_t)prof[0].period, index);
    if (!b || ls_pprof_add_comment(b, "leakscope diff: NEW minus OLD (pprof -base semantics)")) {
        fprintf(stderr, CMD ": out of memory\n");
        goto done;
    }
    int64_t t0, d0, t1, d1;
    ls_pprof_snapshot_time(&snap[0], &t1, &d1);
    ls_pprof_snapshot_time(&snap[1], &t0, &d0);
    /* The span between the two snapshots when both say when they were taken. */
    ls_pprof_set_time(b, t1, t0 && t1 > t0 ? t1 - t0 : d1);
    for (int k = 0; k < 2; k++) {
        sym[k] = ls_symbolizer_new(&snap[k], NULL);
        if (!sym[k]) {
            fprintf(stderr, CMD ": out of memory\n");
            goto done;
        }
        if (ls_pprof_add(b, &snap[k], sym[k], &prof[k], k == 0 ? +1 : -1, err, sizeof(err))) {
            fprintf(stderr, CMD ": %s: %s\n", paths[k], err);
            goto done;
        }
    }
    ls_out_t out;
    if (ls_out_open(&out, output, CMD)) goto done;
    int ok = 1;
    if (ls_pprof_write(b, out.f, err, sizeof(err))) {
        fprintf(stderr, CMD ": %s\n", err);
        ok = 0;
    }
    if (ls_out_close(&out, output, ok, CMD) == 0) status = 0;
done:
    ls_pprof_free(b);
    for (int k = 0; k < 2; k++) {
        ls_symbolizer_free(sym[k]);
        if (k < built) ls_profile_free(&prof[k]);
        if (k < loaded) ls_snapshot_free(&snap[k]);
    }
    return status;
}

static bool has_counters(const ls_snapshot_t *s)
{
    return s->has_sites || (s->mode && strcmp(s->mode, "sites") == 0);
}

/* Mode sites: NEW minus OLD per site. Loads both; *handled = false (and nothing printed) when
 * neither holds site counters, so the caller goes on with the per-stack diff. */
static int diff_sites(const char *old_path, const char *new_path, const char *unsupported, int json,
                      uint64_t top, const char *output, bool *handled)
{
    const char *paths[2] = {old_path, new_path};
    ls_snapshot_t snap[2];
    ls_sites_t view[2];
    ls_symbolizer_t *sym[2] = {NULL, NULL};
    ls_sites_diff_t *d = NULL;
    char err[4096];
    int status = 1, loaded = 0, built = 0;
    *handled = true;
    for (; loaded < 2; loaded++) {
        if (ls_snapshot_load(paths[loaded], &snap[loaded], err, sizeof(err))) {
            fprintf(stderr, CMD ": %s\n", err);
            goto done;
        }
    }
    if (!has_counters(&snap[0]) && !has_counters(&snap[1])) {
        *handled = false;
        status = 0;
        goto done;
    }
    if (unsupported) {
        status =
            ls_usage_error(CMD, "%s does not apply to site counters (mode sites)", unsupported);
        goto done;
    }
    for (; built < 2; built++) {
        if (ls_sites_build(&snap[built], 0, &view[built], err, sizeof(err))) {
            fprintf(stderr, CMD ": %s: %s\n", paths[built], err);
            goto done;
        }
    }
    /* a site of N frames matches only a site of N frames: compare at the smaller depth */
    if (view[0].site_frames != view[1].site_frames) {
        unsigned f =
            view[0].site_frames < view[1].site_frames ? view[0].site_frames : view[1].site_frames;
        for (; built > 0; built--) ls_sites_free(&view[built - 1]);
        for (; built < 2; built++) {
            if (ls_sites_build(&snap[built], f, &view[built], err, sizeof(err))) {
                fprintf(stderr, CMD ": %s: %s\n", paths[built], err);
                goto done;
            }
        }
    }
    d = ls_sites_diff_build(&view[0], &view[1], err, sizeof(err));
    for (int k = 0; d && k < 2; k++) {
        sym[k] = ls_symbolizer_new(&snap[k], NULL);
        if (!sym[k]) break;
    }
    if (!d || !sym[0] || !sym[1]) {
        fprintf(stderr, CMD ": out of memory\n");
        goto done;
    }
    ls_out_t out;
    if (ls_out_open(&out, output, CMD)) goto done;
    int ok = 1;
    if (json) {
        if (ls_sites_diff_write_json(d, old_path, new_path, sym[0], sym[1], (size_t)top, out.f)) {
            fprintf(stderr, CMD ": cannot render JSON (out of memory or write error)\n");
            ok = 0;
        }
    } else {
        ls_sites_diff_write_text(d, old_path, new_path, sym[0], sym[1], (size_t)top, out.f);
    }
    if (ls_out_close(&out, output, ok, CMD) == 0) status = 0;
done:
    ls_sites_diff_free(d);
    for (int k = 0; k < 2; k++) {
        ls_symbolizer_free(sym[k]);
        if (k < built) ls_sites_free(&view[k]);
        if (k < loaded) ls_snapshot_free(&snap[k]);
    }
    return status;
}

int ls_cmd_diff(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"by", required_argument, NULL, 'b'},
        {"top", required_argument, NULL, 't'},
        {"site-skip", required_argument, NULL, 'S'},
        {"sample-index", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = "text", *output = NULL, *by = "site", *top_arg = NULL;
    const char *by_arg = NULL, *index_arg = NULL;
    const char *skip[64];
    size_t nskip = 0;

    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":f:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'b':
            by = by_arg = optarg;
            break;
        case 'I':
            index_arg = optarg;
            break;
        case 't':
            top_arg = optarg;
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
    bool pprof = strcmp(format, "pprof") == 0;
    int json = pprof ? 0 : ls_parse_format(format);
    if (json < 0)
        return ls_usage_error(CMD, "unknown format '%s' (expected text, json or pprof)", format);
    ls_prof_value_t index = LS_PROF_INUSE_SPACE;
    if (index_arg && ls_prof_value_parse(index_arg, &index))
        return ls_usage_error(CMD,
                              "unknown --sample-index '%s' (expected inuse_space, inuse_objects, "
                              "alloc_space or alloc_objects)",
                              index_arg);
    if (index_arg && !pprof) return ls_usage_error(CMD, "--sample-index applies to --format pprof");
    if (pprof && (by_arg || top_arg))
        return ls_usage_error(CMD, "%s does not apply to --format pprof (a profile of stacks)",
                              by_arg ? "--by" : "--top");
    ls_diff_by_t diff_by;
    if (strcmp(by, "site") == 0)
        diff_by = LS_DIFF_BY_SITE;
    else if (strcmp(by, "stack") == 0)
        diff_by = LS_DIFF_BY_STACK;
    else
        return ls_usage_error(CMD, "unknown --by '%s' (expected site or stack)", by);
    uint64_t top = json ? 0 : 20;
    if (top_arg && ls_parse_uint(top_arg, SIZE_MAX, &top))
        return ls_usage_error(CMD, "--top needs a count, got '%s'", top_arg);
    if (argc - optind < 2)
        return ls_usage_error(CMD, "needs two snapshot files, OLD and NEW (got %d)", argc - optind);
    if (argc - optind > 2) return ls_usage_error(CMD, "unexpected argument '%s'", argv[optind + 2]);
    {
        const char *unsupported = pprof                              ? "--format pprof"
                                  : by_arg && strcmp(by_arg, "site") ? "--by stack"
                                  : nskip                            ? "--site-skip"
                                                                     : NULL;
        bool handled;
        int rc =
            diff_sites(argv[optind], argv[optind + 1], unsupported, json, top, output, &handled);
        if (handled) return rc;
    }
    if (pprof && !output && isatty(STDOUT_FILENO))
        return ls_usage_error(CMD, "a pprof profile is binary: give -o FILE (or redirect)");
    if (pprof) return diff_pprof(argv[optind], argv[optind + 1], index, output);

    ls_site_rules_t rules = {skip, nskip};
    ls_series_t *s = ls_series_new(&rules);
    ls_diff_t *d = NULL;
    char err[4096];
    int status = 1;
    if (!s) {
        fprintf(stderr, CMD ": out of memory\n");
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        if (ls_series_add_file(s, argv[optind + i], err, sizeof(err))) {
            fprintf(stderr, CMD ": %s\n", err);
            goto done;
        }
    }
    ls_series_set_times(s);
    d = ls_diff_build(s, diff_by);
    if (!d) {
        fprintf(stderr, CMD ": out of memory\n");
        goto done;
    }
    ls_out_t out;
    if (ls_out_open(&out, output, CMD)) goto done;
    int ok = 1;
    if (json) {
        if (ls_diff_write_json(s, d, (size_t)top, out.f)) {
            fprintf(stderr, CMD ": cannot render JSON (out of memory or write error)\n");
            ok = 0;
        }
    } else {
        ls_diff_write_text(s, d, (size_t)top, out.f);
    }
    if (ls_out_close(&out, output, ok, CMD) == 0) status = 0;
done:
    ls_diff_free(d);
    ls_series_free(s);
    return status;
}
