/*
 * check_many.c - checks the exit snapshot of sites_many (run with site_frames=2) against what the
 * program counted itself: the overflow site (stack 0) and the sum over all sites exactly, the
 * number of sites and how many allocations each had, every other site with its own two frames:
 * 1024 distinct innermost ones (leaf's calls) and 1024 distinct second ones (mid's calls; extra's
 * all came too late for a site).
 *
 *   check_many SNAPSHOT EXPECT_FILE
 */
#include "ls_format_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad;

#define EQ(what, got, want)                                                                        \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ != w_) {                                                                            \
            fprintf(stderr, "FAIL %s: %lld, expected %lld\n", what, g_, w_);                       \
            bad++;                                                                                 \
        }                                                                                          \
    } while (0)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t distinct(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        if (!i || v[i] != v[i - 1]) d++;
    return d;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: check_many SNAPSHOT EXPECT_FILE\n");
        return 2;
    }
    ls_snapshot_t s;
    char err[512];
    if (ls_snapshot_load(argv[1], &s, err, sizeof(err))) {
        fprintf(stderr, "FAIL %s\n", err);
        return 1;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 2;
    }
    if (!s.mode || strcmp(s.mode, "sites") || s.site_frames != 2) {
        fprintf(stderr, "FAIL not a mode sites snapshot with 2 frames per site\n");
        return 1;
    }
    /* Sum everything, and count the other sites by their number of allocations. */
    long long tot[4] = {0}, ovf[4] = {0}, hist[4] = {0};
    size_t novf = 0, n2 = 0;
    uint64_t *f0 = calloc(s.nsites, sizeof(uint64_t)), *f1 = calloc(s.nsites, sizeof(uint64_t));
    if (!f0 || !f1) return 2;
    for (size_t i = 0; i < s.nsites; i++) {
        const ls_fmt_site_t *r = &s.sites[i];
        long long v[4] = {r->live_bytes, r->live_blocks, (long long)r->allocs, (long long)r->bytes};
        for (int k = 0; k < 4; k++) tot[k] += v[k];
        if (!r->stack) {
            novf++;
            memcpy(ovf, v, sizeof(v));
            continue;
        }
        hist[r->allocs < 3 ? r->allocs : 3]++;
        const ls_snap_stack_t *st = ls_snapshot_stack(&s, r->stack);
        if (st && st->nframes == 2) {
            f0[n2] = st->pcs[0];
            f1[n2] = st->pcs[1];
            n2++;
        }
    }
    EQ("overflow sites", novf, 1);
    EQ("sites with two frames", n2, s.nsites - novf);
    EQ("distinct innermost frames", distinct(f0, n2), 1024);
    EQ("distinct second frames", distinct(f1, n2), 1024);
    char line[256], what[64];
    long long a, b, c, d;
    long long want_hist[4] = {0};
    while (fgets(line, sizeof(line), f)) {
        int n = sscanf(line, "%63s %lld %lld %lld %lld", what, &a, &b, &c, &d);
        if (n == 3 && !strcmp(what, "allocs") && a >= 1 && a <= 3) {
            want_hist[a] = b;
        } else if (n == 5 && (!strcmp(what, "overflow") || !strcmp(what, "total"))) {
            long long *got = what[0] == 'o' ? ovf : tot, want[4] = {a, b, c, d};
            static const char *label[4] = {"live_bytes", "live_blocks", "allocs", "bytes"};
            for (int k = 0; k < 4; k++) {
                char msg[128];
                snprintf(msg, sizeof(msg), "%s %s", what, label[k]);
                EQ(msg, got[k], want[k]);
            }
        } else {
            fprintf(stderr, "bad expectation line: %s", line);
            return 2;
        }
    }
    for (int k = 1; k < 4; k++) {
        char msg[64];
        snprintf(msg, sizeof(msg), "sites with %d allocation(s)%s", k, k == 3 ? " or more" : "");
        EQ(msg, hist[k], want_hist[k]);
    }
    EQ("sites without allocations", hist[0], 0);
    EQ("sites", s.nsites, 1 + want_hist[1] + want_hist[2] + want_hist[3]);
    fclose(f);
    free(f0);
    free(f1);
    printf("%s: %zu sites, overflow %lld allocations\n", bad ? "FAIL" : "ok", s.nsites, ovf[2]);
    ls_snapshot_free(&s);
    return bad ? 1 : 0;
}
