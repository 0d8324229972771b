/*
 * ls_cmd_sites.c - `leakscope sites SNAPSHOT`: the per-site view of a snapshot in the shape of
 * the kernel's /proc/allocinfo (live bytes, live blocks, site), from the agent's counters in
 * mode sites, exact from the blocks of a full snapshot, estimated from a sample profile
 * (ls_sites.h has the view and its text and JSON contract).
 *
 * Owns only the command line. Exit status: 0 written, 1 unreadable or corrupt input or output
 * failure, 2 usage error.
 */
#include "ls_cli.h"
#include "ls_output.h"
#include "ls_sites.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "leakscope sites"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: leakscope sites SNAPSHOT [options]\n"
            "  live bytes and blocks per allocation site, like /proc/allocinfo: the agent's\n"
            "  counters (mode sites), exact from a full snapshot's blocks, estimates (~) from a\n"
            "  sample profile\n"
            "  -f, --format text|json     output format (default: text)\n"
            "      --sort KEY             bytes (live bytes, default), calls (live blocks),\n"
            "                             allocs or alloc-bytes (since the start)\n"
            "      --top N                sites shown (default: all; 0 = all)\n"
            "      --site-frames N        frames per site (1..16; default: the snapshot's own,\n"
            "                             1 for full and sample snapshots)\n"
            "      --all                  also the sites never called (compile-time tags: every\n"
            "                             tag of the program, as /proc/allocinfo lists them)\n"
            "  -o, --output OUT           write to OUT (atomically) instead of stdout\n"
            "  -h, --help                 this text\n");
}

int ls_cmd_sites(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"sort", required_argument, NULL, 's'},
        {"top", required_argument, NULL, 't'},
        {"site-frames", required_argument, NULL, 'F'},
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = "text", *output = NULL;
    ls_sites_sort_t by = LS_SITES_SORT_BYTES;
    uint64_t top = 0, frames = 0;
    unsigned flags = 0;

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
        case 's':
            if (ls_sites_sort_parse(optarg, &by))
                return ls_usage_error(
                    CMD, "unknown --sort '%s' (expected bytes, calls, allocs or alloc-bytes)",
                    optarg);
            break;
        case 't':
            if (ls_parse_uint(optarg, SIZE_MAX, &top))
                return ls_usage_error(CMD, "--top needs a count, got '%s'", optarg);
            break;
        case 'F':
            if (ls_parse_uint(optarg, 16, &frames) || frames == 0)
                return ls_usage_error(CMD, "--site-frames needs 1..16, got '%s'", optarg);
            break;
        case 'a':
            flags |= LS_SITES_ALL;
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
    if (argc - optind < 1) return ls_usage_error(CMD, "needs a snapshot file");
    if (argc - optind > 1) return ls_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];

    ls_snapshot_t snap;
    ls_sites_t v;
    ls_symbolizer_t *sym = NULL;
    char err[4096];
    int status = 1, built = 0;
    if (ls_snapshot_load(path, &snap, err, sizeof(err))) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    if (ls_sites_build_ex(&snap, (unsigned)frames, flags, &v, err, sizeof(err))) {
        fprintf(stderr, CMD ": %s: %s\n", path, err);
        goto done;
    }
    built = 1;
    if (by == LS_SITES_SORT_ALLOCS || by == LS_SITES_SORT_ALLOC_BYTES) {
        if (!v.has_allocs) {
            fprintf(stderr,
                    CMD ": %s: --sort %s: this %s snapshot does not count allocations (mode "
                        "sites does; a sample profile with its alloc views does)\n",
                    path, ls_sites_sort_name(by), v.mode);
            goto done;
        }
    }
    ls_sites_sort(&v, by);
    sym = ls_symbolizer_new(&snap, NULL);
    if (!sym) {
        fprintf(stderr, CMD ": out of memory\n");
        goto done;
    }
    ls_out_t out;
    if (ls_out_open(&out, output, CMD)) goto done;
    int ok = 1;
    if (json) {
        if (ls_sites_write_json(&v, sym, (size_t)top, out.f)) {
            fprintf(stderr, CMD ": cannot render JSON (out of memory or write error)\n");
            ok = 0;
        }
    } else {
        ls_sites_write_text(&v, sym, (size_t)top, out.f);
    }
    if (ls_out_close(&out, output, ok, CMD) == 0) status = 0;
done:
    ls_symbolizer_free(sym);
    if (built) ls_sites_free(&v);
    ls_snapshot_free(&snap);
    return status;
}
