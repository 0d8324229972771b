/*
 * test_format.c - the snapshot format round trip: what the writer puts in, the reader gives back,
 * and every kind of damage the reader must refuse with a message instead of crashing; the same
 * for the reference-count chunks of 1.2 (`test_format --refs-seed FILE` writes that snapshot,
 * the fuzz driver's seed), the site counters of 1.4 (`--sites-seed FILE`), the compile-time
 * tags of 1.5 (`--tags-seed FILE`) and its fault injection records (`--faults-seed FILE`).
 */
#include "ls_format_read.h"
#include "ls_format_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

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

/* ---- reference counts (1.2) ---------------------------------------------------------------- */

/* What make_refs_snapshot breaks (each one record field, with a valid CRC). */
enum refs_defect {
    R_NONE,
    R_OBJ_TYPE,    /* an object names type 9, which REF_TYPES does not have */
    R_EVENT_RANGE, /* an object's events run past REF_EVENTS */
    R_EVENT_OP,    /* an event with op 9 */
    R_EVENT_STACK, /* an event names a stack STACKS does not have */
    R_OBJ_ORDER,   /* objects not sorted by address */
    R_OBJ_SIZE,    /* REF_OBJECTS count does not match its size */
    R_TYPE_NAME,   /* a type name running past its chunk */
    R_TYPE_DUP,    /* a type id twice */
    R_TYPE_ZERO,   /* type id 0 */
    R_FIND_KIND,   /* a finding of kind 7 */
    R_FIND_RANGE,  /* a finding's history past REF_EVENTS */
    R_FIND_OTHER,  /* a finding's other_stack missing */
    R_PAIR_OP,     /* a pair whose get op is a put */
    R_PAIR_TYPE,   /* a pair of type 0 */
    R_CHUNK_TWICE, /* REF_EVENTS twice */
};

static size_t make_refs_snapshot(unsigned char **out, int defect)
{
    static const char zeros[8];
    FILE *f = tmpfile();
    int fd = fileno(f);
    char *wbuf = malloc(4096);
    ls_fmt_writer_t w;
    ls_fmt_writer_init(&w, fd, wbuf, 4096);
    ls_fmt_chunk_begin(&w, LS_CHUNK_META);
    ls_fmt_put_u64(&w, LS_META_PID, 77);
    ls_fmt_put_u64(&w, LS_META_REASON, LS_REASON_EXIT);
    ls_fmt_put_str(&w, LS_META_REFS, "g_object_ref:g_object_unref:GObject");
    ls_fmt_chunk_end(&w, 0);

    ls_fmt_chunk_begin(&w, LS_CHUNK_STACKS);
    for (uint32_t id = 5; id <= 7; id++) {
        ls_fmt_stack_t st = {id, 2};
        uint64_t pcs[2] = {0x401000 + id, 0x402000};
        ls_fmt_put(&w, &st, sizeof(st));
        ls_fmt_put(&w, pcs, sizeof(pcs));
    }
    ls_fmt_chunk_end(&w, 3);

    /* types written out of order: the reader sorts them by id */
    const char *names[2] = {"GObject", "struct conn"};
    uint32_t ids[2] = {2, defect == R_TYPE_DUP ? 2u : defect == R_TYPE_ZERO ? 0u : 1u};
    ls_fmt_chunk_begin(&w, LS_CHUNK_REF_TYPES);
    for (int i = 0; i < 2; i++) {
        ls_fmt_ref_type_t t = {ids[i], (uint16_t)strlen(names[i]),
                               i == 0 ? LS_REF_TYPE_WRAPPED : 0};
        if (defect == R_TYPE_NAME && i == 1) t.name_len = 200;
        ls_fmt_put(&w, &t, sizeof(t));
        size_t n = strlen(names[i]);
        ls_fmt_put(&w, names[i], n);
        ls_fmt_put(&w, zeros, ls_fmt_pad8(n) - n);
    }
    ls_fmt_chunk_end(&w, 2);

    ls_fmt_ref_event_t ev[6] = {
        {5, 100, 0, LS_REF_OP_CREATE, 0, 0}, {6, 100, 0, LS_REF_OP_GET, 0, 0},
        {7, 101, 3, LS_REF_OP_GET, 0, 0},    {5, 100, 0, LS_REF_OP_CREATE, 0, 0},
        {6, 100, 0, LS_REF_OP_PUT, 0, 0},    {7, 102, 0, LS_REF_OP_PUT, 0, 0},
    };
    if (defect == R_EVENT_OP) ev[4].op = 9;
    if (defect == R_EVENT_STACK) ev[2].stack = 8;

    ls_fmt_ref_object_t objs[2];
    memset(objs, 0, sizeof(objs));
    objs[0] = (ls_fmt_ref_object_t){0x1000, 0x1000, 11, 3, 1, 1, 5, 0, 3, 0, 0};
    objs[1] = (ls_fmt_ref_object_t){
        0x2000, 0, 12, 1, 1, 2, 5, 3, 1, 4, LS_REF_OBJ_WRAPPED | LS_REF_OBJ_INCOMPLETE};
    if (defect == R_OBJ_TYPE) objs[1].type = 9;
    if (defect == R_EVENT_RANGE) objs[1].nevents = 4; /* [3, 7) of 6 */
    if (defect == R_OBJ_ORDER) objs[1].addr = 0x1000;
    ls_fmt_chunk_begin(&w, LS_CHUNK_REF_OBJECTS);
    ls_fmt_put(&w, objs, sizeof(objs));
    ls_fmt_chunk_end(&w, defect == R_OBJ_SIZE ? 3 : 2);

    for (int k = 0; k < (defect == R_CHUNK_TWICE ? 2 : 1); k++) {
        ls_fmt_chunk_begin(&w, LS_CHUNK_REF_EVENTS);
        ls_fmt_put(&w, ev, sizeof(ev));
        ls_fmt_chunk_end(&w, 6);
    }

    ls_fmt_ref_finding_t fi;
    memset(&fi, 0, sizeof(fi));
    fi = (ls_fmt_ref_finding_t){
        0x3000, 99, LS_REF_FIND_DOUBLE_PUT, 1, LS_REF_OP_PUT, 7, 101, 6, 100, 5, 3, 3, 2, 0};
    if (defect == R_FIND_KIND) fi.kind = 7;
    if (defect == R_FIND_RANGE) fi.first_event = 5;
    if (defect == R_FIND_OTHER) fi.other_stack = 4;
    ls_fmt_chunk_begin(&w, LS_CHUNK_REF_FINDINGS);
    ls_fmt_put(&w, &fi, sizeof(fi));
    ls_fmt_chunk_end(&w, 1);

    ls_fmt_ref_pair_t pr;
    memset(&pr, 0, sizeof(pr));
    pr.get_stack = 6;
    pr.put_stack = 7;
    pr.type = defect == R_PAIR_TYPE ? 0 : 1;
    pr.count = 4;
    pr.get_op = defect == R_PAIR_OP ? LS_REF_OP_PUT : LS_REF_OP_GET;
    ls_fmt_chunk_begin(&w, LS_CHUNK_REF_PAIRS);
    ls_fmt_put(&w, &pr, sizeof(pr));
    ls_fmt_chunk_end(&w, 1);

    ls_fmt_chunk_begin(&w, LS_CHUNK_STATS);
    ls_fmt_put_u64(&w, LS_STAT_REF_OBJECTS_LIVE, 2);
    ls_fmt_put_u64(&w, LS_STAT_REF_EVENTS, 40);
    ls_fmt_put_u64(&w, LS_STAT_REF_QUARANTINE_EVICTED, 3);
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

static void test_refs_round_trip(void)
{
    unsigned char *d;
    size_t n = make_refs_snapshot(&d, R_NONE);
    ls_snapshot_t s;
    char err[256] = "";
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    if (err[0]) fprintf(stderr, "parse error: %s\n", err);
    CHECK(s.version_minor == LS_FMT_VERSION_MINOR);
    CHECK(s.has_refs);
    CHECK(s.refs && !strcmp(s.refs, "g_object_ref:g_object_unref:GObject"));
    CHECK(s.nref_types == 2);
    const ls_snap_ref_type_t *t = ls_snapshot_ref_type(&s, 1);
    CHECK(t && !strcmp(t->name, "struct conn") && t->flags == 0);
    t = ls_snapshot_ref_type(&s, 2);
    CHECK(t && !strcmp(t->name, "GObject") && t->flags == LS_REF_TYPE_WRAPPED);
    CHECK(ls_snapshot_ref_type(&s, 0) == NULL && ls_snapshot_ref_type(&s, 3) == NULL);
    CHECK(s.nref_objects == 2 && s.ref_objects[0].addr == 0x1000 && s.ref_objects[0].count == 3);
    CHECK(s.ref_objects[1].dropped_events == 4 &&
          s.ref_objects[1].flags == (LS_REF_OBJ_WRAPPED | LS_REF_OBJ_INCOMPLETE));
    CHECK(s.nref_events == 6 && s.ref_events[2].tracker == 3 && s.ref_events[2].tid == 101 &&
          s.ref_events[5].op == LS_REF_OP_PUT);
    CHECK(s.nref_findings == 1 && s.ref_findings[0].kind == LS_REF_FIND_DOUBLE_PUT &&
          s.ref_findings[0].count == 2 && s.ref_findings[0].other_stack == 6);
    CHECK(s.nref_pairs == 1 && s.ref_pairs[0].count == 4 && s.ref_pairs[0].get_op == LS_REF_OP_GET);
    CHECK(s.stats[LS_STAT_REF_EVENTS] == 40 && s.stats[LS_STAT_REF_QUARANTINE_EVICTED] == 3);
    CHECK(!strcmp(ls_ref_op_name(LS_REF_OP_FREE), "free"));
    CHECK(!strcmp(ls_ref_op_name(0), "unknown"));
    CHECK(!strcmp(ls_ref_finding_name(LS_REF_FIND_DESTROY_UNKNOWN), "destroy_unregistered"));
    CHECK(!strcmp(ls_ref_finding_name(LS_REF_FIND_FREED_REFERENCED), "freed_referenced"));
    ls_snapshot_free(&s);
    /* every truncation point still fails cleanly */
    for (size_t cut = 0; cut < n; cut += 8) {
        unsigned char *c = aligned_alloc(8, (cut + 8) & ~(size_t)7);
        memcpy(c, d, cut);
        CHECK(ls_snapshot_parse(c, cut, &s, err, sizeof(err)) != 0);
        ls_snapshot_free(&s);
        free(c);
    }
    free(d);

    /* a 1.1 file: no refs, nothing set */
    n = make_snapshot(&d, 4096);
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    CHECK(!s.has_refs && s.nref_types == 0 && s.nref_objects == 0 && s.nref_events == 0 &&
          s.nref_findings == 0 && s.nref_pairs == 0 && s.refs == NULL);
    ls_snapshot_free(&s);
    free(d);
}

static void expect_refs_error(int defect, const char *what)
{
    unsigned char *d;
    size_t n = make_refs_snapshot(&d, defect);
    expect_error(d, n, what);
    free(d);
}

static void test_refs_damage(void)
{
    expect_refs_error(R_OBJ_TYPE, "ref object 1 at offset");
    expect_refs_error(R_OBJ_TYPE, "unknown type id 9");
    expect_refs_error(R_EVENT_RANGE, "events [3, 7) run past the 6 ref events");
    expect_refs_error(R_EVENT_OP, "ref event 4 at offset");
    expect_refs_error(R_EVENT_OP, "unknown op 9");
    expect_refs_error(R_EVENT_STACK, "ref event 2 at offset");
    expect_refs_error(R_EVENT_STACK, "missing stack 8");
    expect_refs_error(R_OBJ_ORDER, "ref objects are not sorted by address at record 1");
    expect_refs_error(R_OBJ_SIZE, "ref objects chunk at offset");
    expect_refs_error(R_OBJ_SIZE, "3 records do not fill 128 bytes");
    expect_refs_error(R_TYPE_NAME, "name runs past the chunk");
    expect_refs_error(R_TYPE_DUP, "ref type id 2 appears twice");
    expect_refs_error(R_TYPE_ZERO, "has the reserved id 0");
    expect_refs_error(R_FIND_KIND, "ref finding 0 at offset");
    expect_refs_error(R_FIND_KIND, "unknown kind 7");
    expect_refs_error(R_FIND_RANGE, "events [5, 8) run past");
    expect_refs_error(R_FIND_OTHER, "other_stack refers to missing stack 4");
    expect_refs_error(R_PAIR_OP, "get op 3 (not get or create)");
    expect_refs_error(R_PAIR_TYPE, "ref pair 0 at offset");
    expect_refs_error(R_CHUNK_TWICE, "chunk type 9 appears twice");
}

/* ---- mode sites (1.4) ----------------------------------------------------------------------- */

/* What make_sites_snapshot breaks (each one field, with a valid CRC). */
enum sites_defect {
    S_NONE,
    S_STACK,       /* a site names stack 99, which STACKS does not have */
    S_NEG_BYTES,   /* live_bytes -16 */
    S_NEG_BLOCKS,  /* live_blocks -1 */
    S_LIVE_ALLOCS, /* more live blocks than allocations */
    S_LIVE_BYTES,  /* more live bytes than bytes allocated */
    S_ORPHAN,      /* live bytes without a live block */
    S_NO_ALLOCS,   /* bytes without allocations */
    S_DUP,         /* two records of one stack */
    S_SIZE,        /* the count does not match the payload */
    S_FRAMES,      /* a stack of 3 frames with site_frames 2 */
    S_NO_CHUNK,    /* mode sites without a SITES chunk */
    S_NO_FRAMES,   /* mode sites without META site_frames */
    S_ENABLED,     /* META sites_enabled 2 */
    S_TWICE,       /* SITES twice */
};

/* A mode-sites snapshot: 1 module, stacks 1 (1 frame), 2 (2 frames), 3 (3 frames, only with
 * S_FRAMES), 3 sites (stack 0 = the overflow site among them), site_frames 2, counting off. */
static size_t make_sites_snapshot(unsigned char **out, int defect)
{
    static const char zeros[8];
    FILE *f = tmpfile();
    int fd = fileno(f);
    char *wbuf = malloc(4096);
    ls_fmt_writer_t w;
    ls_fmt_writer_init(&w, fd, wbuf, 4096);
    ls_fmt_chunk_begin(&w, LS_CHUNK_META);
    ls_fmt_put_u64(&w, LS_META_PID, 77);
    ls_fmt_put_str(&w, LS_META_MODE, "sites");
    ls_fmt_put_u64(&w, LS_META_LEAK_CHECKED, 0);
    if (defect != S_NO_FRAMES) ls_fmt_put_u64(&w, LS_META_SITE_FRAMES, 2);
    ls_fmt_put_u64(&w, LS_META_SITES_ENABLED, defect == S_ENABLED ? 2 : 0);
    ls_fmt_chunk_end(&w, 0);

    ls_fmt_chunk_begin(&w, LS_CHUNK_MODULES);
    const char *path = "/usr/bin/prog";
    ls_fmt_module_t m;
    memset(&m, 0, sizeof(m));
    m.bias = 0x400000;
    m.lo = 0x400000;
    m.hi = 0x410000;
    m.first_stack = 1;
    m.end_stack = UINT32_MAX;
    m.path_len = (uint16_t)strlen(path);
    ls_fmt_put(&w, &m, sizeof(m));
    ls_fmt_put(&w, path, m.path_len);
    ls_fmt_put(&w, zeros, ls_fmt_pad8(m.path_len) - m.path_len);
    ls_fmt_chunk_end(&w, 1);

    ls_fmt_chunk_begin(&w, LS_CHUNK_STACKS);
    uint32_t nst = defect == S_FRAMES ? 3 : 2;
    for (uint32_t id = 1; id <= nst; id++) {
        ls_fmt_stack_t st = {id, id};
        ls_fmt_put(&w, &st, sizeof(st));
        for (uint32_t k = 0; k < id; k++) {
            uint64_t pc = 0x401000 + id * 0x100 + k * 8;
            ls_fmt_put(&w, &pc, 8);
        }
    }
    ls_fmt_chunk_end(&w, nst);

    ls_fmt_site_t sites[3] = {
        {1, 0, 4096, 2, 10, 40960},
        {2, 0, 0, 0, 5, 80},
        {0, 0, 24, 1, 1, 24},
    };
    switch (defect) {
    case S_STACK:
        sites[1].stack = 99;
        break;
    case S_NEG_BYTES:
        sites[0].live_bytes = -16;
        break;
    case S_NEG_BLOCKS:
        sites[1].live_blocks = -1;
        break;
    case S_LIVE_ALLOCS:
        sites[2].live_blocks = 2;
        break;
    case S_LIVE_BYTES:
        sites[2].live_bytes = 25;
        break;
    case S_ORPHAN:
        sites[1].live_bytes = 8;
        break;
    case S_NO_ALLOCS:
        sites[1].allocs = 0;
        break;
    case S_DUP:
        sites[2].stack = 1;
        break;
    case S_FRAMES:
        sites[1].stack = 3;
        break;
    default:
        break;
    }
    for (int k = 0; k < (defect == S_TWICE ? 2 : 1) && defect != S_NO_CHUNK; k++) {
        ls_fmt_chunk_begin(&w, LS_CHUNK_SITES);
        ls_fmt_put(&w, sites, sizeof(sites));
        ls_fmt_chunk_end(&w, defect == S_SIZE ? 4 : 3);
    }
    ls_fmt_chunk_begin(&w, LS_CHUNK_STATS);
    ls_fmt_put_u64(&w, LS_STAT_MALLOC_CALLS, 16);
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

static void test_sites_round_trip(void)
{
    unsigned char *d;
    size_t n = make_sites_snapshot(&d, S_NONE);
    ls_snapshot_t s;
    char err[256] = "";
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    if (err[0]) fprintf(stderr, "parse error: %s\n", err);
    CHECK(s.mode && !strcmp(s.mode, "sites"));
    CHECK(s.has_sites && s.nsites == 3);
    CHECK(s.site_frames == 2 && s.sites_enabled == 0);
    CHECK(s.sites[0].stack == 1 && s.sites[0].live_bytes == 4096 && s.sites[0].live_blocks == 2 &&
          s.sites[0].allocs == 10 && s.sites[0].bytes == 40960);
    CHECK(s.sites[1].stack == 2 && s.sites[1].live_blocks == 0 && s.sites[1].allocs == 5);
    CHECK(s.sites[2].stack == 0 && s.sites[2].bytes == 24);
    CHECK(s.nblocks == 0 && !s.has_sample_allocs && !s.has_refs);
    ls_snapshot_free(&s);
    for (size_t cut = 0; cut < n; cut += 8) {
        unsigned char *c = aligned_alloc(8, (cut + 8) & ~(size_t)7);
        memcpy(c, d, cut);
        CHECK(ls_snapshot_parse(c, cut, &s, err, sizeof(err)) != 0);
        ls_snapshot_free(&s);
        free(c);
    }
    free(d);

    /* an older file: no sites, sites_enabled unknown */
    n = make_snapshot(&d, 4096);
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    CHECK(!s.has_sites && s.nsites == 0 && s.site_frames == 0 && s.sites_enabled == -1);
    ls_snapshot_free(&s);
    free(d);
}

static void expect_sites_error(int defect, const char *what)
{
    unsigned char *d;
    size_t n = make_sites_snapshot(&d, defect);
    expect_error(d, n, what);
    free(d);
}

static void test_sites_damage(void)
{
    expect_sites_error(S_STACK, "site 1 at offset");
    expect_sites_error(S_STACK, "stack refers to missing stack 99");
    expect_sites_error(S_NEG_BYTES, "site 0 at offset");
    expect_sites_error(S_NEG_BYTES, "negative live counters (-16 bytes, 2 blocks)");
    expect_sites_error(S_NEG_BLOCKS, "negative live counters (0 bytes, -1 blocks)");
    expect_sites_error(S_LIVE_ALLOCS, "2 live blocks but only 1 allocations");
    expect_sites_error(S_LIVE_BYTES, "25 live bytes but only 24 bytes allocated");
    expect_sites_error(S_ORPHAN, "8 live bytes in no live block");
    expect_sites_error(S_NO_ALLOCS, "80 bytes allocated by no allocation");
    expect_sites_error(S_DUP, "sites 0 and 2 both count stack 1");
    expect_sites_error(S_SIZE, "4 records do not fill 120 bytes");
    expect_sites_error(S_FRAMES, "stack 3 has 3 frames, more than site_frames 2");
    expect_sites_error(S_NO_CHUNK, "without a SITES chunk");
    expect_sites_error(S_NO_FRAMES, "without meta site_frames");
    expect_sites_error(S_ENABLED, "meta sites_enabled is 2");
    expect_sites_error(S_TWICE, "chunk type 13 appears twice");
}

/* ---- compile-time tags (1.5) ---------------------------------------------------------------- */

/* What make_tags_snapshot breaks (each one field, with a valid CRC). */
enum tags_defect {
    T_NONE,
    T_KIND,      /* a tag of kind 5 */
    T_LINE,      /* a tag at line 0 */
    T_LEN,       /* a function name running past the chunk */
    T_COUNT,     /* more records than the payload holds */
    T_RANGE,     /* a site naming tag 9 of 3 */
    T_NO_TAGS,   /* tagged sites without a TAGS chunk */
    T_FRAMES,    /* a tagged site whose stack has 2 frames */
    T_DUP,       /* two sites of one tag */
    T_TWICE,     /* TAGS twice */
    T_DUP_FIRST, /* with a single other site: the tag check still runs */
};

/* A tag-built program in mode sites: stacks 1, 2, 4 hold one tag address each (module data),
 * stack 3 a return address (an untagged call), stack 5 two frames; TAGS: 3 records (the third
 * never called), sites of tags 1 and 2, the untagged site, and tag 3's zero site. */
static size_t make_tags_snapshot(unsigned char **out, int defect)
{
    static const char zeros[8];
    FILE *f = tmpfile();
    int fd = fileno(f);
    char *wbuf = malloc(4096);
    ls_fmt_writer_t w;
    ls_fmt_writer_init(&w, fd, wbuf, 4096);
    ls_fmt_chunk_begin(&w, LS_CHUNK_META);
    ls_fmt_put_u64(&w, LS_META_PID, 78);
    ls_fmt_put_str(&w, LS_META_MODE, "sites");
    ls_fmt_put_u64(&w, LS_META_SITE_FRAMES, 2);
    ls_fmt_put_u64(&w, LS_META_SITES_ENABLED, 1);
    ls_fmt_chunk_end(&w, 0);

    ls_fmt_chunk_begin(&w, LS_CHUNK_MODULES);
    const char *path = "/usr/bin/tagged";
    ls_fmt_module_t m;
    memset(&m, 0, sizeof(m));
    m.bias = 0x400000;
    m.lo = 0x400000;
    m.hi = 0x420000;
    m.first_stack = 1;
    m.end_stack = UINT32_MAX;
    m.path_len = (uint16_t)strlen(path);
    ls_fmt_put(&w, &m, sizeof(m));
    ls_fmt_put(&w, path, m.path_len);
    ls_fmt_put(&w, zeros, ls_fmt_pad8(m.path_len) - m.path_len);
    ls_fmt_chunk_end(&w, 1);

    ls_fmt_chunk_begin(&w, LS_CHUNK_STACKS);
    static const uint64_t pcs[6] = {0, 0x418000, 0x418020, 0x401234, 0x418040, 0x401300};
    for (uint32_t id = 1; id <= 5; id++) {
        ls_fmt_stack_t st = {id, id == 5 ? 2 : 1};
        ls_fmt_put(&w, &st, sizeof(st));
        ls_fmt_put(&w, &pcs[id], 8);
        if (id == 5) ls_fmt_put(&w, &pcs[3], 8);
    }
    ls_fmt_chunk_end(&w, 5);

    static const struct {
        const char *file, *func;
        uint16_t kind;
        uint32_t line;
    } tags[3] = {
        {"src/parse.c", "parse_record", LS_TAG_KIND_MALLOC, 42},
        {"src/parse.c", "grow", LS_TAG_KIND_REALLOC, 77},
        {"/abs/lib/util.c", "never_called", LS_TAG_KIND_ALIGNED, 9},
    };
    for (int k = 0; k < (defect == T_TWICE ? 2 : 1) && defect != T_NO_TAGS; k++) {
        ls_fmt_chunk_begin(&w, LS_CHUNK_TAGS);
        for (int i = 0; i < 3; i++) {
            ls_fmt_tag_t t;
            memset(&t, 0, sizeof(t));
            t.line = defect == T_LINE && i == 1 ? 0 : tags[i].line;
            t.kind = defect == T_KIND && i == 2 ? 5 : tags[i].kind;
            t.file_len = (uint16_t)strlen(tags[i].file);
            t.func_len = (uint16_t)strlen(tags[i].func);
            size_t n = (size_t)t.file_len + t.func_len;
            if (defect == T_LEN && i == 2) t.func_len = 200;
            ls_fmt_put(&w, &t, sizeof(t));
            ls_fmt_put(&w, tags[i].file, strlen(tags[i].file));
            ls_fmt_put(&w, tags[i].func, strlen(tags[i].func));
            ls_fmt_put(&w, zeros, ls_fmt_pad8(n) - n);
        }
        ls_fmt_chunk_end(&w, defect == T_COUNT ? 40 : 3);
    }

    ls_fmt_site_t sites[4] = {
        {1, 1, 300, 3, 10, 1000},
        {2, 2, 64, 1, 4, 256},
        {3, 0, 16, 1, 1, 16},
        {4, 3, 0, 0, 0, 0},
    };
    size_t nsites = 4;
    switch (defect) {
    case T_RANGE:
        sites[1].tag = 9;
        break;
    case T_FRAMES:
        sites[1].stack = 5;
        break;
    case T_DUP:
        sites[3].tag = 1;
        break;
    case T_DUP_FIRST:
        sites[1].tag = 1;
        nsites = 2;
        break;
    default:
        break;
    }
    ls_fmt_chunk_begin(&w, LS_CHUNK_SITES);
    ls_fmt_put(&w, sites, nsites * sizeof(sites[0]));
    ls_fmt_chunk_end(&w, (uint32_t)nsites);
    CHECK(ls_fmt_writer_finish(&w) == 0);

    long size = lseek(fd, 0, SEEK_END);
    unsigned char *data = aligned_alloc(8, ((size_t)size + 7) & ~(size_t)7);
    CHECK(pread(fd, data, (size_t)size, 0) == size);
    fclose(f);
    free(wbuf);
    *out = data;
    return (size_t)size;
}

static int tag_is(const ls_snap_tag_t *t, const char *file, const char *func, unsigned kind,
                  uint32_t line)
{
    return t && t->file_len == strlen(file) && memcmp(t->file, file, t->file_len) == 0 &&
           t->func_len == strlen(func) && memcmp(t->func, func, t->func_len) == 0 &&
           t->kind == kind && t->line == line;
}

static void test_tags_round_trip(void)
{
    unsigned char *d;
    size_t n = make_tags_snapshot(&d, T_NONE);
    ls_snapshot_t s;
    char err[256] = "";
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    if (err[0]) fprintf(stderr, "parse error: %s\n", err);
    CHECK(s.has_tags && s.ntags == 3);
    CHECK(tag_is(&s.tags[0], "src/parse.c", "parse_record", LS_TAG_KIND_MALLOC, 42));
    CHECK(tag_is(&s.tags[1], "src/parse.c", "grow", LS_TAG_KIND_REALLOC, 77));
    CHECK(tag_is(&s.tags[2], "/abs/lib/util.c", "never_called", LS_TAG_KIND_ALIGNED, 9));
    CHECK(s.nsites == 4);
    CHECK(ls_snapshot_site_tag(&s, &s.sites[0]) == &s.tags[0]);
    CHECK(ls_snapshot_site_tag(&s, &s.sites[1]) == &s.tags[1]);
    CHECK(ls_snapshot_site_tag(&s, &s.sites[2]) == NULL);
    CHECK(ls_snapshot_site_tag(&s, &s.sites[3]) == &s.tags[2]);
    CHECK(s.sites[3].allocs == 0 && s.sites[3].live_blocks == 0);
    /* the tag's address is in the module's range: the views name the module by it */
    const ls_snap_stack_t *st = ls_snapshot_stack(&s, s.sites[0].stack);
    CHECK(st && st->nframes == 1 &&
          ls_snapshot_module_for(&s, st->pcs[0], st->id) == &s.modules[0]);
    CHECK(!strcmp(ls_tag_kind_name(LS_TAG_KIND_CALLOC), "calloc") &&
          !strcmp(ls_tag_kind_name(7), "unknown"));
    ls_snapshot_free(&s);
    CHECK(s.tags == NULL && s.ntags == 0);
    for (size_t cut = 0; cut < n; cut += 8) {
        unsigned char *c = aligned_alloc(8, (cut + 8) & ~(size_t)7);
        memcpy(c, d, cut);
        CHECK(ls_snapshot_parse(c, cut, &s, err, sizeof(err)) != 0);
        ls_snapshot_free(&s);
        free(c);
    }
    free(d);

    /* an older file: no tags */
    n = make_sites_snapshot(&d, S_NONE);
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    CHECK(!s.has_tags && s.ntags == 0 && ls_snapshot_site_tag(&s, &s.sites[0]) == NULL);
    ls_snapshot_free(&s);
    free(d);
}

static void expect_tags_error(int defect, const char *what)
{
    unsigned char *d;
    size_t n = make_tags_snapshot(&d, defect);
    expect_error(d, n, what);
    free(d);
}

static void test_tags_damage(void)
{
    expect_tags_error(T_KIND, "tag record 2 at offset");
    expect_tags_error(T_KIND, "has unknown kind 5");
    expect_tags_error(T_LINE, "tag record 1 at offset");
    expect_tags_error(T_LINE, "has line 0");
    expect_tags_error(T_LEN, "file and function (15 + 200 bytes) run past the chunk");
    expect_tags_error(T_COUNT, "40 records cannot fit in");
    expect_tags_error(T_RANGE, "site 1 at offset");
    expect_tags_error(T_RANGE, "has tag 9, past the 3 tags");
    expect_tags_error(T_NO_TAGS, "has tag 1 but there is no TAGS chunk");
    expect_tags_error(T_FRAMES, "a tagged site needs a stack of one frame, stack 5 has 2");
    expect_tags_error(T_DUP, "sites 0 and 3 both count tag 1");
    expect_tags_error(T_DUP_FIRST, "sites 0 and 1 both count tag 1");
    expect_tags_error(T_TWICE, "chunk type 14 appears twice");
}

/* ---- fault injection (1.5): META fail, FAULTS, STATS fail_* ------------------------------ */
enum { F_NONE, F_STACK, F_COUNT, F_RULE, F_SIZE, F_NO_META };

/* Two rules (the second one's spec escaped), three stacks, three FAULTS records. */
static size_t make_faults_snapshot(unsigned char **out, int defect)
{
    FILE *f = tmpfile();
    int fd = fileno(f);
    char *wbuf = malloc(4096);
    ls_fmt_writer_t w;
    ls_fmt_writer_init(&w, fd, wbuf, 4096);
    ls_fmt_chunk_begin(&w, LS_CHUNK_META);
    ls_fmt_put_u64(&w, LS_META_PID, 91);
    ls_fmt_put_str(&w, LS_META_MODE, "full");
    ls_fmt_put_u64(&w, LS_META_LEAK_CHECKED, 1);
    if (defect != F_NO_META)
        ls_fmt_put_str(&w, LS_META_FAIL,
                       "prog+0x1136-0x1140,nth=2,spec=parse.c%3A42%2Cnth%3D2;"
                       "libc.so.6+0x9e990-0x9e9c9|func=grow,every=3,spec=grow%2Cevery%3D3");
    ls_fmt_chunk_end(&w, 0);
    ls_fmt_chunk_begin(&w, LS_CHUNK_STACKS);
    static const uint64_t pcs[4] = {0, 0x401136, 0x7f0000009e9aa, 0x401300};
    for (uint32_t id = 1; id <= 3; id++) {
        ls_fmt_stack_t st = {id, 2};
        ls_fmt_put(&w, &st, sizeof(st));
        ls_fmt_put(&w, &pcs[id], 8);
        ls_fmt_put(&w, &pcs[3], 8);
    }
    ls_fmt_chunk_end(&w, 3);
    ls_fmt_chunk_begin(&w, LS_CHUNK_BLOCKS);
    ls_fmt_chunk_end(&w, 0);
    ls_fmt_fault_t faults[3] = {
        {1, 0, 1, 5000},
        {2, 1, 4, 7000},
        {3, 1, 2, 9000},
    };
    if (defect == F_STACK) faults[1].stack = 9;
    if (defect == F_COUNT) faults[2].count = 0;
    if (defect == F_RULE) faults[0].rule = 2;
    ls_fmt_chunk_begin(&w, LS_CHUNK_FAULTS);
    ls_fmt_put(&w, faults, sizeof(faults) - (defect == F_SIZE ? 8 : 0));
    ls_fmt_chunk_end(&w, 3);
    ls_fmt_chunk_begin(&w, LS_CHUNK_STATS);
    ls_fmt_put_u64(&w, LS_STAT_FAIL_CALLS, 20);
    ls_fmt_put_u64(&w, LS_STAT_FAIL_INJECTED, 8);
    ls_fmt_put_u64(&w, LS_STAT_FAIL_UNRECORDED, 1);
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

static void test_faults_round_trip(void)
{
    unsigned char *d;
    size_t n = make_faults_snapshot(&d, F_NONE);
    ls_snapshot_t s;
    char err[256] = "";
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    if (err[0]) fprintf(stderr, "parse error: %s\n", err);
    CHECK(s.fail && strstr(s.fail, ";libc.so.6+0x9e990-0x9e9c9|func=grow,every=3,") != NULL);
    CHECK(s.has_faults && s.nfaults == 3);
    CHECK(s.nfaults == 3 && s.faults[1].stack == 2 && s.faults[1].rule == 1 &&
          s.faults[1].count == 4 && s.faults[1].first_ns == 7000);
    CHECK(s.stats[LS_STAT_FAIL_CALLS] == 20 && s.stats[LS_STAT_FAIL_INJECTED] == 8 &&
          s.stats[LS_STAT_FAIL_UNRECORDED] == 1);
    ls_snapshot_free(&s);
    CHECK(s.fail == NULL);
    for (size_t cut = 0; cut < n; cut += 8) {
        unsigned char *c = aligned_alloc(8, (cut + 8) & ~(size_t)7);
        memcpy(c, d, cut);
        CHECK(ls_snapshot_parse(c, cut, &s, err, sizeof(err)) != 0);
        ls_snapshot_free(&s);
        free(c);
    }
    free(d);
    /* without META fail the rules cannot be counted: any rule index passes */
    n = make_faults_snapshot(&d, F_NO_META);
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    CHECK(!s.fail && s.nfaults == 3);
    ls_snapshot_free(&s);
    free(d);
    /* an older file: no fault injection */
    n = make_sites_snapshot(&d, S_NONE);
    CHECK(ls_snapshot_parse(d, n, &s, err, sizeof(err)) == 0);
    CHECK(!s.fail && !s.has_faults && s.nfaults == 0);
    ls_snapshot_free(&s);
    free(d);
}

static void expect_faults_error(int defect, const char *what)
{
    unsigned char *d;
    size_t n = make_faults_snapshot(&d, defect);
    expect_error(d, n, what);
    free(d);
}

static void test_faults_damage(void)
{
    expect_faults_error(F_STACK, "fault 1 at offset");
    expect_faults_error(F_STACK, "stack refers to missing stack 9");
    expect_faults_error(F_COUNT, "counts 0 failures");
    expect_faults_error(F_RULE, "fault 0 at offset");
    expect_faults_error(F_RULE, "names rule 2, meta fail has 2 rules");
    expect_faults_error(F_SIZE, "faults chunk at offset");
}

/* The writer's own CRC-32 (the agent does not link zlib) against zlib's, which the reader uses:
 * random lengths and contents, whole and fed in pieces. */
static void test_crc32(void)
{
    unsigned char buf[4096];
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
        for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)rand_r(&seed);
        uint32_t z = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)len);
        CHECK(ls_fmt_crc32(0, buf, len) == z);
        size_t cut = len ? (size_t)rand_r(&seed) % len : 0;
        CHECK(ls_fmt_crc32(ls_fmt_crc32(0, buf, cut), buf + cut, len - cut) == z);
    }
    CHECK(ls_fmt_crc32(0, "123456789", 9) == 0xCBF43926u); /* the standard check value */
}

int main(int argc, char **argv)
{
    /* --refs-seed FILE: writes the refs snapshot (the fuzz driver's seed) and exits */
    if (argc == 3 && strcmp(argv[1], "--refs-seed") == 0) {
        unsigned char *d;
        size_t n = make_refs_snapshot(&d, R_NONE);
        FILE *f = fopen(argv[2], "wb");
        int ok = f && fwrite(d, 1, n, f) == n;
        if (f && fclose(f) != 0) ok = 0;
        free(d);
        if (!ok) perror(argv[2]);
        return ok ? 0 : 1;
    }
    /* --sites-seed FILE: writes the mode-sites snapshot (a fuzz seed) and exits */
    if (argc == 3 && strcmp(argv[1], "--sites-seed") == 0) {
        unsigned char *d;
        size_t n = make_sites_snapshot(&d, S_NONE);
        FILE *f = fopen(argv[2], "wb");
        int ok = f && fwrite(d, 1, n, f) == n;
        if (f && fclose(f) != 0) ok = 0;
        free(d);
        if (!ok) perror(argv[2]);
        return ok ? 0 : 1;
    }
    /* --tags-seed FILE: writes the tag-built mode-sites snapshot (a fuzz seed) and exits */
    if (argc == 3 && strcmp(argv[1], "--tags-seed") == 0) {
        unsigned char *d;
        size_t n = make_tags_snapshot(&d, T_NONE);
        FILE *f = fopen(argv[2], "wb");
        int ok = f && fwrite(d, 1, n, f) == n;
        if (f && fclose(f) != 0) ok = 0;
        free(d);
        if (!ok) perror(argv[2]);
        return ok ? 0 : 1;
    }
    /* --faults-seed FILE: writes the fault injection snapshot (a fuzz seed) and exits */
    if (argc == 3 && strcmp(argv[1], "--faults-seed") == 0) {
        unsigned char *d;
        size_t n = make_faults_snapshot(&d, F_NONE);
        FILE *f = fopen(argv[2], "wb");
        int ok = f && fwrite(d, 1, n, f) == n;
        if (f && fclose(f) != 0) ok = 0;
        free(d);
        if (!ok) perror(argv[2]);
        return ok ? 0 : 1;
    }
    test_crc32();
    test_round_trip(4096);
    test_round_trip(64 * 1024); /* header patched in the buffer rather than with pwrite */
    test_damage();
    test_refs_round_trip();
    test_refs_damage();
    test_sites_round_trip();
    test_sites_damage();
    test_tags_round_trip();
    test_tags_damage();
    test_faults_round_trip();
    test_faults_damage();
    printf("format: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
