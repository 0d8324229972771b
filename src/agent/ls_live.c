/*
 * ls_live.c - snapshots of the running process and markers.
 *
 * A live snapshot must not stop the host longer than needed. The world is parked only while the
 * live blocks are copied out of the bitmap and trailers (a frozen heap: no trailer is read while
 * its block is being freed or its chunk unmapped); everything slow - mapping the copy, sorting
 * stack ids, writing the file - happens with the host running. The copy buffer is sized from a
 * count taken before the pause and populated up front, so the pause takes no page fault.
 *
 * Markers are named points in time. Block births and marker times share one clock, kept exact
 * against each other by a floor (ls__birth_floor): placing a marker raises the floor past every
 * birth stamped so far, so "born after marker M" is birth >= M.time, with no tie at the clock's
 * ~4 ms granularity.
 */
#define _GNU_SOURCE
#include "ls_agent.h"
#include "ls_format_write.h"
#include "ls_stopworld.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- markers ---------------------------------------------------------------------------------
 */
#define LS_MAX_MARKERS 4096
#define LS_MARK_LABEL  120

typedef struct ls_marker {
    uint32_t birth; /* on the block birth scale (2^20 ns units) */
    uint32_t seq;
    uint64_t realtime_ns;
    uint16_t len;
    char label[LS_MARK_LABEL];
} ls_marker_t;

static ls_marker_t *markers; /* mapped at the first marker */
static uint32_t nmarkers;
static _Atomic uint64_t markers_dropped;
static _Atomic int marker_lock;

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

long ls__mark(const char *label, uint64_t *time_ns)
{
    if (!label) label = "";
    ls__spin_lock(&marker_lock);
    if (!markers) markers = ls__map(LS_MAX_MARKERS * sizeof(ls_marker_t));
    if (!markers || nmarkers >= LS_MAX_MARKERS) {
        ls__spin_unlock(&marker_lock);
        if (!atomic_fetch_add(&markers_dropped, 1))
            ls__error("marker table full (%d markers): further markers are counted, not kept",
                      LS_MAX_MARKERS);
        return -1;
    }
    /* Every birth stamped before this point is <= max(clock, floor); every later one is >= the
     * new floor. One tick past both keeps the two sets apart. */
    uint32_t now = ls__birth_now();
    uint32_t t = now + 1;
    atomic_store_explicit(&ls__birth_floor, t, memory_order_seq_cst);
    ls_marker_t *m = &markers[nmarkers];
    m->birth = t;
    m->seq = nmarkers + 1;
    m->realtime_ns = realtime_ns();
    size_t n = strnlen(label, LS_MARK_LABEL);
    /* Keep a label printable on one line: control characters become '?'. */
    for (size_t i = 0; i < n; i++) m->label[i] = (unsigned char)label[i] < 0x20 ? '?' : label[i];
    m->len = (uint16_t)n;
    nmarkers++;
    long seq = m->seq;
    ls__spin_unlock(&marker_lock);
    if (time_ns) *time_ns = (uint64_t)t << 20;
    return seq;
}

void ls__markers_after_fork_child(void)
{
    atomic_store(&marker_lock, 0); /* a thread that held it in the parent does not exist here */
}

uint32_t ls__markers_count(void)
{
    return nmarkers;
}

void ls__markers_write(ls_fmt_writer_t *w)
{
    ls__spin_lock(&marker_lock);
    uint32_t n = nmarkers;
    ls__spin_unlock(&marker_lock); /* entries below n never change again */
    if (!n) return;
    ls_fmt_chunk_begin(w, LS_CHUNK_MARKERS);
    for (uint32_t i = 0; i < n; i++) {
        const ls_marker_t *m = &markers[i];
        ls_fmt_marker_t rec = {(uint64_t)m->birth << 20, m->realtime_ns, m->seq, m->len, 0};
        ls_fmt_put(w, &rec, sizeof(rec));
        ls_fmt_put(w, m->label, ls_fmt_pad8(m->len));
    }
    ls_fmt_chunk_end(w, n);
}

uint64_t ls__markers_dropped(void)
{
    return atomic_load(&markers_dropped);
}

/* ---- live collection ---------------------------------------------------------------------------
 */
typedef struct addr_sink {
    ls_block_t *out;
    size_t n, cap, missed;
} addr_sink_t;

static void sink_addr(uintptr_t p, void *ctx)
{
    addr_sink_t *s = ctx;
    if (s->n < s->cap)
        s->out[s->n++].addr = p;
    else
        s->missed++;
}

size_t ls__collect_addrs(ls_block_t *out, size_t cap, size_t *missed)
{
    addr_sink_t s = {out, 0, cap, 0};
    ls__bm_foreach(sink_addr, &s);
    *missed = s.missed;
    return s.n;
}

/*
 * Reading a million trailers is a million cache misses (two dependent ones per block: the chunk
 * header gives the usable size, which gives the trailer), ~70 ns each on a big heap. So they are
 * overlapped: the header of block i+16 and, with glibc's layout, the trailer line of block i+8
 * (the next chunk's header, which malloc_usable_size also reads) are prefetched while block i is
 * read. Prefetches are hints that never fault; the reads themselves go through the real
 * malloc_usable_size, so another allocator is still read correctly, just without the second hint.
 */
void ls__read_trailers(ls_block_t *out, size_t n)
{
    const size_t d = 8;
    const bool glibc = ls__g.glibc_heap;
    for (size_t i = 0; i < n; i++) {
        if (i + 2 * d < n) __builtin_prefetch((const char *)out[i + 2 * d].addr - 8);
        if (glibc && i + d < n) {
            uintptr_t q = out[i + d].addr;
            uint64_t hdr = *(const uint64_t *)(q - 8);
            __builtin_prefetch((const char *)(q - 16 + (hdr & ~(uint64_t)7)));
        }
        uintptr_t p = out[i].addr;
        const ls_trailer_t *t = ls__trailer((const void *)p);
        out[i] = (ls_block_t){p, t->size_flags, t->stack, t->birth};
    }
}

/*
 * The host is parked only while the bitmap is walked for addresses (a sequential read, a few ms
 * for a million blocks). The trailers are read after it runs on again, with frees of tracked
 * blocks deferred (ls__defer_begin): every listed block keeps its memory and trailer until the
 * reader is done, and no address is reused meanwhile. The result is the heap as it was at the
 * pause, exactly.
 */
int ls__live_collect(ls_check_result_t *res)
{
    memset(res, 0, sizeof(*res));
    size_t n = ls__bm_count(); /* racy, only a size hint */
    size_t cap = n + n / 8 + 4096;
    for (int attempt = 0; attempt < 4; attempt++) {
        size_t bytes = cap * sizeof(ls_block_t);
        ls_block_t *blocks = ls__map_table(bytes);
        if (!blocks) {
            ls__error("snapshot skipped: cannot map %zu bytes", bytes);
            return -1;
        }
        ls__spin_lock(&ls__g.check_lock);
        if (!ls__defer_begin()) {
            ls__spin_unlock(&ls__g.check_lock);
            ls__unmap(blocks, bytes);
            ls__error("snapshot skipped: no memory to defer frees");
            return -1;
        }
        ls__mem_lock(); /* no thread gets parked inside ls__map */
        uint64_t t0 = ls__now_ns();
        ls_parked_t *parked;
        unsigned unresponsive = 0;
        size_t nparked = ls__stopworld_stop(&parked, &unresponsive);
        ls__mem_unlock();
        uint64_t t1 = ls__now_ns();
        addr_sink_t c = {blocks, 0, cap, 0};
        c.n = ls__collect_addrs(blocks, cap, &c.missed);
        uint64_t t2 = ls__now_ns();
        ls__stopworld_resume();
        uint64_t t3 = ls__now_ns(), pause = t2 - t0; /* released at the start of resume */
        if (!c.missed) ls__read_trailers(blocks, c.n);
        size_t deferred = ls__defer_end();
        ls__spin_unlock(&ls__g.check_lock);
        if (ls__g.opt.verbose >= 2)
            ls__log("live collect: %zu threads (%u unresponsive) parked in %.2f ms, %zu addresses "
                    "in %.2f ms, resumed in %.2f ms; trailers read in %.2f ms with %zu frees "
                    "deferred",
                    nparked, unresponsive, (t1 - t0) / 1e6, c.n, (t2 - t1) / 1e6, (t3 - t2) / 1e6,
                    (ls__now_ns() - t3) / 1e6, deferred);
        if (!c.missed) {
            res->blocks = blocks;
            res->n = c.n;
            res->map_size = bytes;
            res->pause_ns = pause;
            res->threads_stopped = (unsigned)nparked;
            res->threads_unresponsive = unresponsive;
            return 0;
        }
        /* The heap grew between the count and the pause: retry with room for what we saw. */
        ls__unmap(blocks, bytes);
        cap = c.n + c.missed + (c.n + c.missed) / 4 + 4096;
    }
    ls__error("snapshot skipped: the heap keeps growing faster than it can be copied");
    return -1;
}

/* ---- snapshots -------------------------------------------------------------------------------
 */
static _Atomic uint64_t snapshot_seq, snapshots_written;

uint64_t ls__snapshots_taken(void)
{
    return atomic_load(&snapshots_written);
}

static int live_snapshot(const char *path, const char *trigger, bool leak_check,
                         ls_live_info_t *info);

int ls__live_snapshot(const char *path, const char *trigger, bool leak_check, ls_live_info_t *info)
{
    ls_live_info_t mine;
    bool report = !info; /* nobody to hand the error to: the program's stderr */
    if (!info) info = &mine;
    memset(info, 0, sizeof(*info));
    int rc = live_snapshot(path, trigger, leak_check, info);
    if (rc && report) ls__error("%s snapshot failed: %s", trigger, info->error);
    return rc;
}

static int live_snapshot(const char *path, const char *trigger, bool leak_check,
                         ls_live_info_t *info)
{
    if (atomic_load(&ls__g.exiting)) {
        snprintf(info->error, sizeof(info->error), "the process is exiting");
        return -1;
    }
    if (leak_check && atomic_load(&ls__sampling)) {
        snprintf(info->error, sizeof(info->error), "no leak check in mode %.16s", ls__g.opt.mode);
        return -1;
    }
    /* Mode sites has no blocks to collect: the snapshot sums the counters as they are, without
     * parking anyone (ls_sites.c says how exact that is). */
    bool sites = atomic_load(&ls__sampling) && ls__mode_sites();
    char buf[4096];
    if (!path) {
        ls__snapshot_path(buf, sizeof(buf), ls__g.opt.snapshot_output,
                          atomic_load(&snapshot_seq) + 1);
        path = buf;
    }
    ls_check_result_t res;
    memset(&res, 0, sizeof(res));
    int rc = sites ? 0 : leak_check ? ls__check_run(&res, true, NULL) : ls__live_collect(&res);
    if (rc) {
        snprintf(info->error, sizeof(info->error), "cannot collect the live blocks");
        return -1;
    }
    if (leak_check) res.pause_ns = res.scan_ns; /* the whole check runs parked */
    uint64_t seq = atomic_fetch_add(&snapshot_seq, 1) + 1;
    int werr = ls__snapshot_write(path, &res, LS_REASON_LIVE, 0, 0, trigger, seq);
    info->pause_ns = res.pause_ns;
    info->blocks = res.n;
    snprintf(info->path, sizeof(info->path), "%s", path);
    if (werr)
        snprintf(info->error, sizeof(info->error), "cannot write %.180s: %s", path, strerror(werr));
    if (!werr) atomic_fetch_add(&snapshots_written, 1);
    if (ls__g.opt.verbose)
        ls__log("snapshot %s (%s): %zu blocks, host paused %.2f ms", path, trigger, res.n,
                res.pause_ns / 1e6);
    ls__check_free(&res);
    return werr ? -1 : 0;
}

/* ---- public API (include/leakscope.h) -------------------------------------------------------- */
LS_EXPORT long ls_agent_mark(const char *label)
{
    if (atomic_load(&ls__g.state) != LS_STATE_READY) return -1;
    return ls__mark(label, NULL);
}

LS_EXPORT int ls_agent_snapshot_write(const char *path)
{
    if (atomic_load(&ls__g.state) != LS_STATE_READY || ls__tls.guard) return -1;
    ls__tls.guard++;
    int rc = ls__live_snapshot(path, "api", false, NULL);
    ls__tls.guard--;
    return rc;
}
