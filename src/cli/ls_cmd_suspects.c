/*
 * ls_cmd_suspects.c - `leakscope suspects DIR|SNAPSHOT...`: the allocation sites whose live bytes
 * keep growing across a series of snapshots and do not fall back (method: docs/DESIGN.md,
 * "Suspects"; code: ls_series.c).
 *
 * Owns only the command line. Exit status: 0 analysed (with or without suspects), 1 bad input
 * (unreadable or corrupt snapshot, empty directory, fewer than 3 snapshots) or output failure,
 * 2 usage error.
 */
#include "ls_cli.h"
#include "ls_output.h"
#include "ls_series.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "leakscope suspects"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: leakscope suspects DIR|SNAPSHOT... [options]\n"
            "  allocation sites whose live bytes keep growing (a directory: its *.lsnap files)\n"
            "  -f, --format text|json     output format (default: text)\n"
            "      --top N                suspects shown (default: 10 in text, all in JSON;\n"
            "                             0 = all)\n"
            "      --min-growth BYTES     least growth of a suspect (suffixes k, M, G; default:\n"
            "                             4 KiB or 1%% of the last snapshot's live bytes)\n"
            "      --site-skip GLOB       functions that are not allocation sites (xmalloc);\n"
            "                             may be given more than once\n"
            "  -o, --output OUT           write to OUT (atomically) instead of stdout\n"
            "  -h, --help                 this text\n");
}

int ls_cmd_suspects(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"top", required_argument, NULL, 't'},
        {"min-growth", required_argument, NULL, 'm'},
        {"site-skip", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = "text", *output = NULL, *top_arg = NULL;
    const char *skip[64];
    size_t nskip = 0;
    ls_suspect_opts_t so;
    memset(&so, 0, sizeof(so));

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
        case 't':
            top_arg = optarg;
            break;
        case 'm':
            if (ls_parse_size(optarg, &so.min_growth))
                return ls_usage_error(CMD,
                                      "--min-growth needs a byte count (4096, 64k, 1M), "
                                      "got '%s'",
                                      optarg);
            so.has_min_growth = true;
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
    uint64_t top = json ? 0 : 10;
    if (top_arg && ls_parse_uint(top_arg, SIZE_MAX, &top))
        return ls_usage_error(CMD, "--top needs a count, got '%s'", top_arg);
    if (optind >= argc) return ls_usage_error(CMD, "no snapshot directory or files given");

    ls_site_rules_t rules = {skip, nskip};
    ls_series_t *s = ls_series_new(&rules);
    ls_suspects_t *r = NULL;
    char **files = NULL;
    size_t nfiles = 0;
    char err[4096];
    int status = 1;
    if (!s) {
        fprintf(stderr, CMD ": out of memory\n");
        return 1;
    }
    if (ls_series_expand_args(argv + optind, (size_t)(argc - optind), &files, &nfiles, err,
                              sizeof(err))) {
        fprintf(stderr, CMD ": %s\n", err);
        goto done;
    }
    for (size_t i = 0; i < nfiles; i++) {
        if (ls_series_add_file(s, files[i], err, sizeof(err))) {
            fprintf(stderr, CMD ": %s\n", err);
            goto done;
        }
    }
    if (ls_series_sort(s))
        fprintf(stderr,
                CMD ": warning: the snapshots come from different processes; their times are "
                    "wall-clock seconds since the first one\n");
    r = ls_suspects_find(s, &so, err, sizeof(err));
    if (!r) {
        fprintf(stderr, CMD ": %s\n", err);
        goto done;
    }
    ls_out_t out;
    if (ls_out_open(&out, output, CMD)) goto done;
    int ok = 1;
    if (json) {
        if (ls_suspects_write_json(s, r, (size_t)top, out.f)) {
            fprintf(stderr, CMD ": cannot render JSON (out of memory or write error)\n");
            ok = 0;
        }
    } else {
        ls_suspects_write_text(s, r, (size_t)top, out.f);
    }
    if (ls_out_close(&out, output, ok, CMD) == 0) status = 0;
done:
    ls_suspects_free(r);
    ls_series_free_files(files, nfiles);
    ls_series_free(s);
    return status;
}
