/*
 * ls_snapshot.c - writes what the agent knows as a snapshot file (layout: ls_format.h):
 * META, MODULES, the STACKS that live blocks, the sample table and the reference counts use,
 * BLOCKS with their classification, SAMPLE_ALLOCS in mode sample (BLOCKS then holds the live
 * sampled blocks, unclassified), SITES instead of BLOCKS in mode sites, the REF_* chunks when
 * objects were registered, FAULTS when fault injection rules are active, STATS.
 * Written to PATH.tmp.PID and renamed, so a reader sees the whole file or nothing.
 */
#define _GNU_SOURCE
#include "ls_agent.h"
#include "ls_format_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <stdbool.h>
#include <unistd.h>

void ls__snapshot_path(char *buf, size_t len, const char *pattern, uint64_t seq)
{
    const char *o = pattern;
    size_t n = 0;
    for (; *o && n + 24 < len; o++) {
        if (o[0] == '%' && o[1] == 'p') {
            n += (size_t)snprintf(buf + n, len - n, "%d", (int)getpid());
            o++;
        } else if (o[0] == '%' && o[1] == 'n') {
            n += (size_t)snprintf(buf + n, len - n, "%llu", (unsigned long long)seq);
            o++;
        } else if (o[0] == '%' && o[1] == '%') {
            buf[n++] = '%';
            o++;
        } else {
            buf[n++] = *o;
        }
    }
    buf[n] = 0;
}

void ls__output_path(char *buf, size_t len, const char *suffix)
{
    ls__snapshot_path(buf, len, ls__g.opt.output, 0);
    size_t n = strlen(buf);
    if (suffix) snprintf(buf + n, len - n, "%s", suffix);
}

static void read_cmdline(char *buf, size_t len)
{
    buf[0] = 0;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0) return;
    for (ssize_t i = 0; i < n - 1; i++)
        if (!buf[i]) buf[i] = ' ';
    buf[n] = 0;
}

/* Sorts 32-bit ids (two 16-bit radix passes) and drops duplicates; returns the count. */
static size_t unique_ids(uint32_t *a, uint32_t *tmp, size_t n, uint32_t *count)
{
    for (int shift = 0; shift < 32; shift += 16) {
        memset(count, 0, 65536 * sizeof(uint32_t));
        for (size_t i = 0; i < n; i++) count[(a[i] >> shift) & 0xffff]++;
        uint32_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            uint32_t k = count[d];
            count[d] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++) tmp[count[(a[i] >> shift) & 0xffff]++] = a[i];
        memcpy(a, tmp, n * sizeof(*a));
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] && (!m || a[m - 1] != a[i])) a[m++] = a[i];
    return m;
}

/* Streams file from into the existing non-regular file to. Returns 0 or an errno. */
static int copy_into(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return errno;
    int out = open(to, O_WRONLY | O_CLOEXEC);
    if (out < 0) {
        int e = errno;
        close(in);
        return e;
    }
    char buf[16384];
    ssize_t n;
    int err = 0;
    while (!err && (n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno != EINTR) err = errno;
            continue;
        }
        for (ssize_t off = 0; off < n && !err;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR) err = errno;
            if (w > 0) off += w;
        }
    }
    close(in);
    if (close(out) < 0 && !err) err = errno;
    return err;
}

int ls__snapshot_write(const char *path, const ls_check_result_t *res, int reason, int exit_status,
                       int signo, const char *trigger, uint64_t seq)
{
    /* A file is replaced atomically (temporary name beside it, rename). Anything else - a FIFO,
     * a terminal - is never replaced: the snapshot is staged in /tmp and copied into it; and
     * /dev/null (output=/dev/null: keep nothing) is not written at all. */
    struct stat st;
    /* The refs are copied first (under their locks, briefly): ls_refs_check counts from this
     * copy even when the snapshot itself goes nowhere. */
    ls_refs_view_t *rv = ls__refs_view_take();
    bool sampling = atomic_load(&ls__sampling);
    bool sites = sampling && ls__mode_sites();
    if (sites) sampling = false; /* the sample table exists only in mode sample */
    bool special = stat(path, &st) == 0 && !S_ISREG(st.st_mode);
    if (special && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {
        ls__refs_view_free(rv);
        return 0;
    }
    if (special && S_ISDIR(st.st_mode)) {
        ls__refs_view_free(rv);
        return EISDIR;
    }
    char tmp_path[4200];
    if (special)
        snprintf(tmp_path, sizeof(tmp_path), "/tmp/leakscope.%d.%llu.tmp", (int)getpid(),
                 (unsigned long long)seq);
    else
        snprintf(tmp_path, sizeof(tmp_path), "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        ls__refs_view_free(rv);
        return e;
    }
    size_t n = res->n;
    size_t nref = rv ? ls__refs_stack_ids(rv, NULL, 0) : 0; /* stack ids the refs name */
    ls_sample_view_t sv = {0};
    if (sampling) ls__sample_view_take(&sv);
    ls_sites_view_t tv = {0};
    if (sites) ls__sites_view_take(&tv);
    ls_fail_view_t fv; /* injected failures (fault injection): their stacks go to STACKS */
    ls__fail_view_take(&fv);
    size_t nall = n + nref + sv.n + tv.n + fv.n;
    size_t scratch_bytes = (1u << 20) + nall * 8 + 65536 * 4 + 64 * 3;
    char *scratch = ls__map(scratch_bytes);
    if (!scratch) {
        close(fd);
        unlink(tmp_path);
        ls__refs_view_free(rv);
        ls__sample_view_free(&sv);
        ls__sites_view_free(&tv);
        ls__fail_view_free(&fv);
        return ENOMEM;
    }
    char *wbuf = scratch;
    uint32_t *ids = (uint32_t *)(scratch + (1u << 20));
    uint32_t *tmp = ids + nall;
    uint32_t *count = tmp + nall;

    ls_fmt_writer_t w;
    ls_fmt_writer_init(&w, fd, wbuf, 1u << 20);

    char text[4096];
    ls_fmt_chunk_begin(&w, LS_CHUNK_META);
    ls_fmt_put_u64(&w, LS_META_PID, (uint64_t)getpid());
    ls_fmt_put_u64(&w, LS_META_PPID, (uint64_t)getppid());
    ssize_t len = readlink("/proc/self/exe", text, sizeof(text) - 1);
    text[len > 0 ? len : 0] = 0;
    ls_fmt_put_str(&w, LS_META_EXE, text);
    read_cmdline(text, sizeof(text));
    ls_fmt_put_str(&w, LS_META_CMDLINE, text);
    ls_fmt_put_u64(&w, LS_META_START_NS, ls__g.start_realtime_ns);
    ls_fmt_put_u64(&w, LS_META_SNAP_NS, ls__now_ns());
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ls_fmt_put_u64(&w, LS_META_SNAP_REALTIME_NS,
                   (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    if (trigger) ls_fmt_put_str(&w, LS_META_TRIGGER, trigger);
    if (seq) ls_fmt_put_u64(&w, LS_META_SNAP_SEQ, seq);
    ls_fmt_put_u64(&w, LS_META_REASON, (uint64_t)reason);
    if (reason == LS_REASON_EXIT) ls_fmt_put_i64(&w, LS_META_EXIT_STATUS, exit_status);
    if (reason == LS_REASON_SIGNAL) ls_fmt_put_u64(&w, LS_META_SIGNAL, (uint64_t)signo);
    ls_fmt_put_str(&w, LS_META_MODE, ls__g.opt.mode);
    ls_fmt_put_u64(&w, LS_META_LEAK_CHECKED, res->checked);
    ls_fmt_put_str(&w, LS_META_AGENT_VERSION, LS_VERSION);
    ls_fmt_put_u64(&w, LS_META_MAX_FRAMES, ls__g.max_frames);
    if (ls__g.opt.refs[0]) ls_fmt_put_str(&w, LS_META_REFS, ls__g.opt.refs);
    if (sampling) ls_fmt_put_u64(&w, LS_META_SAMPLE_RATE, (uint64_t)ls__g.opt.sample_rate);
    if (sites) {
        ls_fmt_put_u64(&w, LS_META_SITE_FRAMES, (uint64_t)ls__sites.frames);
        ls_fmt_put_u64(&w, LS_META_SITES_ENABLED,
                       (uint64_t)(atomic_load(&ls__sites.on) & LS_SITES_ON));
    }
    if (ls__fail_rules()) ls_fmt_put_str(&w, LS_META_FAIL, ls__fail_rules());
    ls_fmt_chunk_end(&w, 0);

    ls__modules_lock();
    ls__modules_write(&w);
    ls__modules_unlock();
    ls__markers_write(&w);

    for (size_t i = 0; i < n; i++) ids[i] = res->blocks[i].stack;
    if (rv) ls__refs_stack_ids(rv, ids + n, nref);
    for (size_t i = 0; i < sv.n; i++) ids[n + nref + i] = sv.recs[i].stack;
    for (size_t i = 0; i < tv.n; i++) ids[n + nref + sv.n + i] = tv.recs[i].stack;
    for (size_t i = 0; i < fv.n; i++) ids[n + nref + sv.n + tv.n + i] = fv.recs[i].stack;
    size_t nids = nall ? unique_ids(ids, tmp, nall, count) : 0;
    ls_fmt_chunk_begin(&w, LS_CHUNK_STACKS);
    for (size_t i = 0; i < nids; i++) {
        const uintptr_t *pcs;
        size_t nf = ls__depot_get(ids[i], &pcs);
        ls_fmt_stack_t rec = {ids[i], (uint32_t)nf};
        ls_fmt_put(&w, &rec, sizeof(rec));
        ls_fmt_put(&w, pcs, nf * sizeof(uint64_t));
    }
    ls_fmt_chunk_end(&w, (uint32_t)nids);

    uint64_t live_bytes = 0, live_blocks = n;
    if (!sites) ls_fmt_chunk_begin(&w, LS_CHUNK_BLOCKS);
    for (size_t i = 0; i < n; i++) {
        const ls_block_t *b = &res->blocks[i];
        ls_fmt_block_t rec;
        memset(&rec, 0, sizeof(rec));
        rec.addr = b->addr;
        rec.size = b->size_flags & LS_SIZE_MASK;
        rec.birth_ns = (uint64_t)b->birth << 20;
        rec.stack = b->stack;
        rec.leader = res->leader ? res->leader[i] : LS_NO_LEADER;
        rec.kind = res->kind ? res->kind[i] : LS_KIND_UNCHECKED;
        rec.flags = res->bflags ? res->bflags[i] : 0;
        live_bytes += rec.size;
        ls_fmt_put(&w, &rec, sizeof(rec));
    }
    if (!sites) ls_fmt_chunk_end(&w, (uint32_t)n);

    if (sampling) ls__sample_write(&w, &sv);
    if (sites) {
        ls__sites_write(&w, &tv);
        ls__tags_write(&w);
        for (size_t i = 0; i < tv.n; i++) {
            live_bytes += (uint64_t)tv.recs[i].live_bytes;
            live_blocks += (uint64_t)tv.recs[i].live_blocks;
        }
    }
    if (rv) ls__refs_write(&w, rv);
    ls__fail_write(&w, &fv);

    ls_fmt_chunk_begin(&w, LS_CHUNK_STATS);
    /* mode sample does not count frees of unsampled blocks (ls_interpose.c: free) */
    if (!sampling && !sites)
        ls_fmt_put_u64(&w, LS_STAT_UNKNOWN_FREES, atomic_load(&ls__g.unknown_frees));
    ls_fmt_put_u64(&w, LS_STAT_LIVE_BLOCKS, live_blocks);
    ls_fmt_put_u64(&w, LS_STAT_LIVE_BYTES, live_bytes);
    ls_fmt_put_u64(&w, LS_STAT_STACKS, ls__depot_count());
    ls_fmt_put_u64(&w, LS_STAT_AGENT_BYTES, atomic_load(&ls__g.agent_bytes));
    ls_fmt_put_u64(&w, LS_STAT_THREADS_STOPPED, res->threads_stopped);
    ls_fmt_put_u64(&w, LS_STAT_THREADS_UNRESPONSIVE, res->threads_unresponsive);
    ls_fmt_put_u64(&w, LS_STAT_ROOT_BYTES, res->root_bytes);
    ls_fmt_put_u64(&w, LS_STAT_SCAN_NS, res->scan_ns);
    ls_fmt_put_u64(&w, LS_STAT_AGENT_ERRORS, atomic_load(&ls__g.agent_errors));
    ls_fmt_put_u64(&w, LS_STAT_PAUSE_NS, res->pause_ns);
    ls_fmt_put_u64(&w, LS_STAT_MARKERS_DROPPED, ls__markers_dropped());
    if (rv) ls__refs_write_stats(&w, rv);
    ls__fail_write_stats(&w);
    ls_fmt_chunk_end(&w, 0);

    int err = ls_fmt_writer_finish(&w);
    ls__unmap(scratch, scratch_bytes);
    ls__refs_view_free(rv);
    ls__sample_view_free(&sv);
    ls__sites_view_free(&tv);
    ls__fail_view_free(&fv);
    if (close(fd) < 0 && !err) err = errno;
    if (!err && special) {
        err = copy_into(tmp_path, path);
        unlink(tmp_path);
    } else if (!err && rename(tmp_path, path) < 0) {
        err = errno;
    }
    if (err) {
        unlink(tmp_path);
        return err;
    }
    return 0;
}
