/*
 * ls_cmd_diff.c - `leakscope diff OLD NEW`: what grew and what shrank between two snapshots,
 * per allocation site (default) or per stack, NEW minus OLD (pprof's -base).
 *
 * Owns only the command line. The two snapshots may come from one process or from two runs:
 * rows are matched by symbolized frames (ls_agg.h keys), never by address or stack id. Exit
 * status: 0 written, 1 unreadable or corrupt input or output failure, 2 usage error.
 */
#include "ls_cli.h"
#include "ls_output.h"
#include "ls_series.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "leakscope diff"

static void usage(FILE *f)
{
    fprintf(f, "usage: leakscope diff OLD NEW [options]\n"
               "  per allocation site (or stack): bytes and blocks in OLD and NEW, NEW minus OLD\n"
               "      --by site|stack        group by allocation site (default) or whole stack\n"
               "  -f, --format text|json     output format (default: text)\n"
               "      --top N                rows shown (default: 20 in text, all in JSON;\n"
               "                             0 = all)\n"
               "      --site-skip GLOB       functions that are not allocation sites (xmalloc);\n"
               "                             may be given more than once\n"
               "  -o, --output OUT           write to OUT (atomically) instead of stdout\n"
               "  -h, --help                 this text\n");
}

int ls_cmd_diff(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"by", required_argument, NULL, 'b'},
        {"top", required_argument, NULL, 't'},
        {"site-skip", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = "text", *output = NULL, *by = "site", *top_arg = NULL;
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
            by = optarg;
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
    int json = ls_parse_format(format);
    if (json < 0) return ls_usage_error(CMD, "unknown format '%s' (expected text or json)", format);
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
