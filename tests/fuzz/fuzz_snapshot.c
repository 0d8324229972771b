/*
 * fuzz_snapshot.c - fuzzes the snapshot reader, the one parser that reads files from anywhere.
 *
 * Built two ways: with clang as a libFuzzer target (LLVMFuzzerTestOneInput; see
 * tests/fuzz/README.md), and always as a deterministic mutation driver for ctest, which takes a
 * real snapshot (written by the agent for a test program) and parses a few hundred thousand
 * mutated copies: bit flips, byte sets, truncations, splices, length fields set to extremes;
 * half of them with their chunks' CRCs recomputed, so the checks behind the CRC are reached.
 * Under the ASan+UBSan build in CI any out-of-bounds read is a failure.
 */
#include "ls_format_read.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The reader requires an 8-aligned buffer (it maps fixed records onto it). */
    unsigned char *copy = aligned_alloc(8, (size + 8) & ~(size_t)7);
    if (!copy) return 0;
    memcpy(copy, data, size);
    ls_snapshot_t s;
    char err[512];
    if (ls_snapshot_parse(copy, size, &s, err, sizeof(err)) == 0) {
        /* walk what was accepted, as the report would */
        for (size_t i = 0; i < s.nblocks; i++) {
            const ls_snap_stack_t *st = ls_snapshot_stack(&s, s.blocks[i].stack);
            for (uint32_t k = 0; st && k < st->nframes; k++)
                (void)ls_snapshot_module_for(&s, st->pcs[k], st->id);
        }
        /* and the refs, as the refs analysis would: every id and range was checked */
        volatile uint64_t sink = 0;
        for (size_t i = 0; i < s.nref_objects; i++) {
            const ls_fmt_ref_object_t *o = &s.ref_objects[i];
            if (!ls_snapshot_ref_type(&s, o->type)) abort();
            for (uint32_t k = 0; k < o->nevents; k++) {
                const ls_fmt_ref_event_t *e = &s.ref_events[o->first_event + k];
                const ls_snap_stack_t *st = ls_snapshot_stack(&s, e->stack);
                if (e->stack && !st) abort();
                sink += st && st->nframes ? st->pcs[st->nframes - 1] : e->op;
            }
        }
        /* and the sample allocations (1.3), as ls_profile would: stacks present, estimates
         * usable as weights */
        for (size_t i = 0; i < s.nsample_allocs; i++) {
            const ls_fmt_sample_alloc_t *a = &s.sample_allocs[i];
            if (a->stack && !ls_snapshot_stack(&s, a->stack)) abort();
            if (!isfinite(a->est_objects) || !isfinite(a->est_bytes) || a->est_objects < 0 ||
                a->est_bytes < 0)
                abort();
            sink += a->samples;
        }
        /* and the tags (1.5), as the sites view would: every string byte readable */
        for (size_t i = 0; i < s.nsites; i++) {
            const ls_snap_tag_t *t = ls_snapshot_site_tag(&s, &s.sites[i]);
            if (s.sites[i].tag && !t) abort();
            for (uint16_t k = 0; t && k < t->file_len; k++) sink += (unsigned char)t->file[k];
            for (uint16_t k = 0; t && k < t->func_len; k++) sink += (unsigned char)t->func[k];
        }
        for (size_t i = 0; i < s.nref_findings; i++) {
            const ls_fmt_ref_finding_t *f = &s.ref_findings[i];
            for (uint32_t k = 0; k < f->nevents; k++) sink += s.ref_events[f->first_event + k].op;
            sink += strlen(ls_ref_finding_name(f->kind));
        }
        for (size_t i = 0; i < s.nref_pairs; i++)
            if (!ls_snapshot_ref_type(&s, s.ref_pairs[i].type)) abort();
        for (size_t i = 0; i < s.nref_types; i++) sink += strlen(s.ref_types[i].name);
        (void)sink;
    } else if (!err[0]) {
        abort(); /* an error must always say what is wrong */
    }
    ls_snapshot_free(&s);
    free(copy);
    return 0;
}

#ifndef LS_LIBFUZZER
#include <zlib.h>

/* Recomputes the CRC of every chunk whose header still fits, so that half the mutations get
 * past the checksum and reach the record checks behind it (ids, ranges, ops). */
static void fix_crcs(unsigned char *d, size_t len)
{
    ls_fmt_file_header_t fh;
    if (len < sizeof(fh)) return;
    memcpy(&fh, d, sizeof(fh));
    uint64_t off = fh.header_size;
    while (off <= len && len - off >= sizeof(ls_fmt_chunk_header_t)) {
        ls_fmt_chunk_header_t ch;
        memcpy(&ch, d + off, sizeof(ch));
        uint64_t body = off + sizeof(ch);
        if (ch.size > len - body) return;
        ch.crc32 = (uint32_t)crc32(crc32(0L, Z_NULL, 0), d + body, (uInt)ch.size);
        memcpy(d + off, &ch, sizeof(ch));
        off = body + ch.size;
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_snapshot SEED_SNAPSHOT [ITERATIONS]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    unsigned char *seed = NULL;
    size_t n = 0, cap = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (n == cap) seed = realloc(seed, cap = cap ? cap * 2 : 4096);
        seed[n++] = (unsigned char)c;
    }
    fclose(f);
    long iters = argc > 2 ? atol(argv[2]) : 200000;
    unsigned char *buf = malloc(n + 64);
    LLVMFuzzerTestOneInput(seed, n); /* the seed itself must parse */
    for (long i = 0; i < iters; i++) {
        memcpy(buf, seed, n);
        size_t len = n;
        int edits = 1 + (int)(next() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = len ? next() % len : 0;
            switch (next() % 6) {
            case 0:
                buf[at] ^= (unsigned char)(1u << (next() % 8));
                break;
            case 1:
                buf[at] = (unsigned char)next();
                break;
            case 2:
                len = at;
                break; /* truncate */
            case 3:    /* an extreme little-endian u32 where a length or count may be */
                if (at + 4 <= len) {
                    uint32_t v = (next() & 1) ? 0xffffffffu : (uint32_t)next() % 64;
                    memcpy(buf + (at & ~(size_t)3), &v, 4);
                }
                break;
            case 4: /* copy a run from elsewhere */
                if (len > 16) {
                    size_t from = next() % (len - 8);
                    memmove(buf + at - at % 8, buf + from, len - at < 8 ? len - at : 8);
                }
                break;
            default: /* drop 8 bytes */
                if (at + 8 <= len) {
                    memmove(buf + at, buf + at + 8, len - at - 8);
                    len -= 8;
                }
            }
        }
        if (next() & 1) fix_crcs(buf, len);
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("fuzz_snapshot: %ld mutated inputs of a %zu-byte snapshot parsed without fault\n", iters,
           n);
    free(buf);
    free(seed);
    return 0;
}
#endif
