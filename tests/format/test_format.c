/*
 * test_format.c - the snapshot format round trip: what the writer puts in, the reader gives back,
 * and every kind of damage the reader must refuse with a message instead of crashing.
 */
#include "ls_format_read.h"
#include "ls_format_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures, checks;
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(c)) {                                                                                \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
        }                                                                                          \
    } while (0)

/* Writes a snapshot with 2 modules, 3 stacks, 4 blocks, meta and stats into a memory file. */
static size_t make_snapshot(unsigned char **out, size_t wbuf_cap)
{
    FILE *f = tmpfile();
    int fd = fileno(f);
    char *wbuf = malloc(wbuf_cap);
    ls_fmt_writer_t w;
    ls_fmt_writer_init(&w, fd, wbuf, wbuf_cap);
    ls_fmt_chunk_begin(&w, LS_CHUNK_META);
    ls_fmt_put_u64(&w, LS_META_PID, 4242);
    ls_fmt_put_str(&w, LS_META_EXE, "/usr/bin/prog");
    ls_fmt_put_i64(&w, LS_META_EXIT_STATUS, -3);
    ls_fmt_put_u64(&w, LS_META_REASON, LS_REASON_EXIT);
    ls_fmt_put_u64(&w, LS_META_LEAK_CHECKED, 1);
    ls_fmt_put_u64(&w, 999, 7); /* an unknown key: skipped by readers */
    ls_fmt_chunk_end(&w, 0);

    ls_fmt_chunk_begin(&w, LS_CHUNK_MODULES);
    const char *paths[2] = {"/usr/bin/prog", "/lib/x86_64-linux-gnu/libc.so.6"};
    for (int i = 0; i < 2; i++) {
        ls_fmt_module_t m;
        memset(&m, 0, sizeof(m));
        m.bias = 0x1000 * (i + 1);
        m.lo = 0x400000 + 0x100000 * i;
        m.hi = m.lo + 0x10000;
        m.first_stack = 1;
        m.end_stack = UINT32_MAX;
        m.path_len = (uint16_t)strlen(paths[i]);
        m.build_id_len = 3;
        ls_fmt_put(&w, &m, sizeof(m));
        ls_fmt_put(&w, paths[i], m.path_len);
        ls_fmt_put(&w, "\x01\x02\x03", 3);
        static const char zeros[8];
        size_t n = m.path_len + 3u;
        ls_fmt_put(&w, zeros, ls_fmt_pad8(n) - n);
    }
    ls_fmt_chunk_end(&w, 2);

    ls_fmt_chunk_begin(&w, LS_CHUNK_STACKS);
    for (uint32_t id = 1; id <= 3; id++) {
        ls_fmt_stack_t st = {id * 10, id};
        ls_fmt_put(&w, &st, sizeof(st));
        for (uint32_t k = 0; k < id; k++) {
            uint64_t pc = 0x400100 + id * 16 + k;
            ls_fmt_put(&w, &pc, 8);
        }
    }
    ls_fmt_chunk_end(&w, 3);

    /* an unknown chunk type: readers skip it */
    ls_fmt_chunk_begin(&w, 77);
    ls_fmt_put(&w, "futuredat", 8);
    ls_fmt_chunk_end(&w, 1);

    ls_fmt_chunk_begin(&w, LS_CHUNK_BLOCKS);
    for (int i = 0; i < 4; i++) {
        ls_fmt_block_t b;
        memset(&b, 0, sizeof(b));
        b.addr = 0x10000 + 0x100 * (uint64_t)i;
        b.size = 16u * (i + 1);
        b.stack = 10u * (1 + i % 3);
        b.kind = (uint8_t)(1 + i);
        b.leader = i == 1 ? 0 : LS_NO_LEADER;
        ls_fmt_put(&w, &b, sizeof(b));
    }
    ls_fmt_chunk_end(&w, 4);

    ls_fmt_chunk_begin(&w, LS_CHUNK_STATS);
    ls_fmt_put_u64(&w, LS_STAT_LIVE_BLOCKS, 4);
    ls_fmt_chunk_end(&w, 0);
    CHECK(ls_fmt_writer_finish(&w) == 0);

    long size = lseek(fd, 0, SEEK_END);
    unsigned char *data = aligned_alloc(8, ((size_t)size + 7) & ~(size_t)7);
    CHECK(pread(fd, data, (size_t)size, 0) == size);
    fclose(f);
    free(wbuf);
    *out = data;
    return (size_t)size;
}

static void test_round_trip(size_t wbuf_cap)
{
    unsigned char *d;
    size_t n = make_snapshot(&d, wbuf_cap);
    ls_snapshot_t s;
    char err[256] = "";
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    if (err[0]) fprintf(stderr, "parse error: %s\n", err);
    CHECK(s.pid == 4242);
    CHECK(s.exe && !strcmp(s.exe, "/usr/bin/prog"));
    CHECK(s.exit_status == -3);
    CHECK(s.nmodules == 2 && !strcmp(s.modules[1].path, "/lib/x86_64-linux-gnu/libc.so.6"));
    CHECK(s.modules[0].rec.build_id_len == 3 && s.modules[0].build_id[2] == 3);
    CHECK(s.nstacks == 3);
    const ls_snap_stack_t *st = ls_snapshot_stack(&s, 30);
    CHECK(st && st->nframes == 3 && st->pcs[2] == 0x400100 + 48 + 2);
    CHECK(ls_snapshot_stack(&s, 31) == NULL);
    CHECK(s.nblocks == 4 && s.blocks[3].size == 64 && s.blocks[1].kind == LS_KIND_INDIRECTLY);
    CHECK(s.stats[LS_STAT_LIVE_BLOCKS] == 4);
    CHECK(ls_snapshot_module_for(&s, 0x500010, 10) == &s.modules[1]);
    ls_snapshot_free(&s);
    free(d);
}

static void expect_error(const unsigned char *d, size_t n, const char *what)
{
    unsigned char *copy = aligned_alloc(8, (n + 8) & ~(size_t)7);
    memcpy(copy, d, n);
    ls_snapshot_t s;
    char err[256] = "";
    int rc = ls_snapshot_parse(copy, n, &s, err, sizeof(err));
    CHECK(rc != 0);
    CHECK(strstr(err, what) != NULL);
    if (rc == 0 || !strstr(err, what)) fprintf(stderr, "  wanted '%s', got '%s'\n", what, err);
    ls_snapshot_free(&s);
    free(copy);
}

static void test_damage(void)
{
    unsigned char *d;
    size_t n = make_snapshot(&d, 4096);
    expect_error(d, 10, "too short");
    expect_error(d, n - 24, "truncated");
    expect_error(d, n - 1, "truncated");
    unsigned char *bad = malloc(n);
    memcpy(bad, d, n);
    bad[0] = 'X';
    expect_error(bad, n, "bad magic");
    memcpy(bad, d, n);
    bad[8] = 9; /* major version */
    expect_error(bad, n, "not supported");
    memcpy(bad, d, n);
    bad[n / 2] ^= 0x40; /* somewhere in a payload */
    expect_error(bad, n, "checksum");
    /* every truncation point must fail cleanly */
    for (size_t cut = 0; cut < n; cut++) {
        ls_snapshot_t s;
        char err[256];
        unsigned char *c = aligned_alloc(8, (cut + 8) & ~(size_t)7);
        memcpy(c, d, cut);
        CHECK(ls_snapshot_parse(c, cut, &s, err, sizeof(err)) != 0);
        ls_snapshot_free(&s);
        free(c);
    }
    free(bad);
    free(d);
}

int main(void)
{
    test_round_trip(4096);
    test_round_trip(64 * 1024); /* header patched in the buffer rather than with pwrite */
    test_damage();
    printf("format: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
