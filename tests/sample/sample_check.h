/*
 * sample_check.h - what the mode sample tests read from a snapshot: the parts of format 1.3 the
 * reader does not expose (META sample_rate, SAMPLE_ALLOCS), found by walking the checked file's
 * chunks, and the attribution of a stack to a function of this very program (the tests are
 * linked with -rdynamic, so dladdr names their functions).
 */
#ifndef SAMPLE_CHECK_H
#define SAMPLE_CHECK_H

#include "ls_format_read.h"

#include <dlfcn.h>
#include <link.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int sc_failures;

#define SC_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            sc_failures++;                                                                         \
        }                                                                                          \
    } while (0)

/* p(s) = 1 - exp(-s / rate), as the agent computes it. */
static inline double sc_prob(double size, double rate)
{
    return -expm1(-size / rate);
}

/* The payload of the first chunk of type t (NULL when absent); *count its record count. */
static inline const unsigned char *sc_chunk(const ls_snapshot_t *s, uint32_t t, uint32_t *count,
                                            uint64_t *size)
{
    const ls_fmt_file_header_t *fh = (const ls_fmt_file_header_t *)s->data;
    size_t off = fh->header_size;
    while (off + sizeof(ls_fmt_chunk_header_t) <= s->size) {
        ls_fmt_chunk_header_t ch;
        memcpy(&ch, s->data + off, sizeof(ch));
        off += sizeof(ch);
        if (ch.type == LS_CHUNK_END) break;
        if (ch.type == t) {
            *count = ch.count;
            *size = ch.size;
            return s->data + off;
        }
        off += ch.size;
    }
    return NULL;
}

/* META sample_rate, 0 when absent. */
static inline uint64_t sc_sample_rate(const ls_snapshot_t *s)
{
    uint32_t n;
    uint64_t size;
    const unsigned char *p = sc_chunk(s, LS_CHUNK_META, &n, &size);
    for (uint64_t off = 0; p && off + sizeof(ls_fmt_item_t) <= size;) {
        ls_fmt_item_t it;
        memcpy(&it, p + off, sizeof(it));
        off += sizeof(it);
        if (it.key == LS_META_SAMPLE_RATE && it.type == LS_ITEM_U64) {
            uint64_t v;
            memcpy(&v, p + off, 8);
            return v;
        }
        off += (it.len + 7) & ~7u;
    }
    return 0;
}

/* SAMPLE_ALLOCS records (pointing into the file), NULL when absent. */
static inline const ls_fmt_sample_alloc_t *sc_sample_allocs(const ls_snapshot_t *s, size_t *n)
{
    uint32_t count;
    uint64_t size;
    const unsigned char *p = sc_chunk(s, LS_CHUNK_SAMPLE_ALLOCS, &count, &size);
    *n = p ? count : 0;
    if (p && size != (uint64_t)count * sizeof(ls_fmt_sample_alloc_t)) {
        fprintf(stderr, "FAIL: SAMPLE_ALLOCS size %llu for %u records\n", (unsigned long long)size,
                count);
        sc_failures++;
        *n = 0;
    }
    return (const ls_fmt_sample_alloc_t *)p;
}

/* Load bias of this program (the main executable). */
static inline int sc_bias_cb(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    *(uintptr_t *)ctx = info->dlpi_addr;
    return 1; /* the first object is the executable */
}

/* The name of this program's function that stack id's innermost frame lies in ("" when none,
 * "?" when the stack is unknown). The snapshot may come from another process running this same
 * executable: its pcs are moved by the difference of the two load biases. */
static inline const char *sc_site(const ls_snapshot_t *s, uint32_t id)
{
    const ls_snap_stack_t *st = ls_snapshot_stack(s, id);
    if (!st || !st->nframes) return "?";
    uint64_t pc = st->pcs[0];
    const ls_snap_module_t *m = ls_snapshot_module_for(s, pc, id);
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[len > 0 ? len : 0] = 0;
    if (!m || strcmp(m->path, exe) != 0) return ""; /* only this executable's functions count */
    uintptr_t bias = 0;
    dl_iterate_phdr(sc_bias_cb, &bias);
    uintptr_t mine = (uintptr_t)(pc - m->rec.bias) + bias - 1; /* the call, not the return */
    Dl_info di;
    if (!dladdr((void *)mine, &di) || !di.dli_sname) return "";
    return di.dli_sname;
}

#endif
