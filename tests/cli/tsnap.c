/*
 * tsnap.c - see tsnap.h. Module discovery uses dl_iterate_phdr: the load bias is dlpi_addr,
 * the range spans the PT_LOAD segments, the build-id comes from the NT_GNU_BUILD_ID note.
 */
#define _GNU_SOURCE
#include "tsnap.h"
#include "ls_format_write.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tsnap_write(const char *path, const tsnap_t *s)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    static char buf[8192];
    ls_fmt_writer_t w;
    ls_fmt_writer_init(&w, fd, buf, sizeof(buf));

    ls_fmt_chunk_begin(&w, LS_CHUNK_META);
    ls_fmt_put_u64(&w, LS_META_PID, s->pid);
    if (s->exe) ls_fmt_put_str(&w, LS_META_EXE, s->exe);
    if (s->reason) ls_fmt_put_u64(&w, LS_META_REASON, s->reason);
    if (s->reason == LS_REASON_EXIT) ls_fmt_put_i64(&w, LS_META_EXIT_STATUS, s->exit_status);
    if (s->reason == LS_REASON_SIGNAL) ls_fmt_put_u64(&w, LS_META_SIGNAL, s->signal);
    ls_fmt_put_u64(&w, LS_META_LEAK_CHECKED, s->leak_checked);
    ls_fmt_put_str(&w, LS_META_MODE, s->mode ? s->mode : "full");
    if (s->sample_rate) ls_fmt_put_u64(&w, LS_META_SAMPLE_RATE, s->sample_rate);
    if (s->start_ns) ls_fmt_put_u64(&w, LS_META_START_NS, s->start_ns);
    if (s->snap_ns) ls_fmt_put_u64(&w, LS_META_SNAP_NS, s->snap_ns);
    if (s->snap_realtime_ns) ls_fmt_put_u64(&w, LS_META_SNAP_REALTIME_NS, s->snap_realtime_ns);
    if (s->snap_seq) ls_fmt_put_u64(&w, LS_META_SNAP_SEQ, s->snap_seq);
    if (s->trigger) ls_fmt_put_str(&w, LS_META_TRIGGER, s->trigger);
    if (s->refs_meta) ls_fmt_put_str(&w, LS_META_REFS, s->refs_meta);
    ls_fmt_chunk_end(&w, 0);

    if (s->nmarkers) {
        static const char zeros[8];
        ls_fmt_chunk_begin(&w, LS_CHUNK_MARKERS);
        for (size_t i = 0; i < s->nmarkers; i++) {
            const tsnap_marker_t *m = &s->markers[i];
            ls_fmt_marker_t r;
            memset(&r, 0, sizeof(r));
            r.time_ns = m->time_ns;
            r.realtime_ns = m->realtime_ns;
            r.seq = m->seq;
            r.label_len = (uint16_t)strlen(m->label);
            ls_fmt_put(&w, &r, sizeof(r));
            ls_fmt_put(&w, m->label, r.label_len);
            ls_fmt_put(&w, zeros, ls_fmt_pad8(r.label_len) - r.label_len);
        }
        ls_fmt_chunk_end(&w, (uint32_t)s->nmarkers);
    }

    ls_fmt_chunk_begin(&w, LS_CHUNK_MODULES);
    for (size_t i = 0; i < s->nmodules; i++) {
        const tsnap_module_t *m = &s->modules[i];
        ls_fmt_module_t r;
        memset(&r, 0, sizeof(r));
        r.bias = m->bias;
        r.lo = m->lo;
        r.hi = m->hi;
        r.first_stack = m->first_stack;
        r.end_stack = m->end_stack;
        r.path_len = (uint16_t)strlen(m->path);
        r.build_id_len = (uint16_t)m->build_id_len;
        ls_fmt_put(&w, &r, sizeof(r));
        ls_fmt_put(&w, m->path, r.path_len);
        if (m->build_id_len) ls_fmt_put(&w, m->build_id, m->build_id_len);
        static const char zeros[8];
        size_t n = (size_t)r.path_len + r.build_id_len;
        ls_fmt_put(&w, zeros, ls_fmt_pad8(n) - n);
    }
    ls_fmt_chunk_end(&w, (uint32_t)s->nmodules);

    ls_fmt_chunk_begin(&w, LS_CHUNK_STACKS);
    for (size_t i = 0; i < s->nstacks; i++) {
        ls_fmt_stack_t r = {s->stacks[i].id, s->stacks[i].nframes};
        ls_fmt_put(&w, &r, sizeof(r));
        ls_fmt_put(&w, s->stacks[i].pcs, 8 * (size_t)r.nframes);
    }
    ls_fmt_chunk_end(&w, (uint32_t)s->nstacks);

    ls_fmt_chunk_begin(&w, LS_CHUNK_BLOCKS);
    if (s->nblocks) ls_fmt_put(&w, s->blocks, s->nblocks * sizeof(ls_fmt_block_t));
    ls_fmt_chunk_end(&w, (uint32_t)s->nblocks);

    if (s->refs) {
        static const char zeros[8];
        ls_fmt_chunk_begin(&w, LS_CHUNK_REF_TYPES);
        for (size_t i = 0; i < s->nref_types; i++) {
            const tsnap_ref_type_t *t = &s->ref_types[i];
            ls_fmt_ref_type_t r = {t->id, (uint16_t)strlen(t->name), t->flags};
            ls_fmt_put(&w, &r, sizeof(r));
            ls_fmt_put(&w, t->name, r.name_len);
            ls_fmt_put(&w, zeros, ls_fmt_pad8(r.name_len) - r.name_len);
        }
        ls_fmt_chunk_end(&w, (uint32_t)s->nref_types);
        ls_fmt_chunk_begin(&w, LS_CHUNK_REF_OBJECTS);
        if (s->nref_objects) ls_fmt_put(&w, s->ref_objects, s->nref_objects * 64);
        ls_fmt_chunk_end(&w, (uint32_t)s->nref_objects);
        ls_fmt_chunk_begin(&w, LS_CHUNK_REF_EVENTS);
        if (s->nref_events) ls_fmt_put(&w, s->ref_events, s->nref_events * 16);
        ls_fmt_chunk_end(&w, (uint32_t)s->nref_events);
        ls_fmt_chunk_begin(&w, LS_CHUNK_REF_FINDINGS);
        if (s->nref_findings) ls_fmt_put(&w, s->ref_findings, s->nref_findings * 64);
        ls_fmt_chunk_end(&w, (uint32_t)s->nref_findings);
        ls_fmt_chunk_begin(&w, LS_CHUNK_REF_PAIRS);
        if (s->nref_pairs) ls_fmt_put(&w, s->ref_pairs, s->nref_pairs * 24);
        ls_fmt_chunk_end(&w, (uint32_t)s->nref_pairs);
    }
    if (s->sample_allocs) {
        ls_fmt_chunk_begin(&w, LS_CHUNK_SAMPLE_ALLOCS);
        if (s->nsample_allocs)
            ls_fmt_put(&w, s->sample_allocs, s->nsample_allocs * sizeof(ls_fmt_sample_alloc_t));
        ls_fmt_chunk_end(&w, (uint32_t)s->nsample_allocs);
    }
    if (s->nstats) {
        ls_fmt_chunk_begin(&w, LS_CHUNK_STATS);
        for (size_t i = 0; i < s->nstats; i++)
            ls_fmt_put_u64(&w, (uint16_t)s->stats[i][0], s->stats[i][1]);
        ls_fmt_chunk_end(&w, 0);
    }

    int rc = ls_fmt_writer_finish(&w);
    if (close(fd) != 0 && !rc) rc = errno;
    return rc;
}

typedef struct mod_acc {
    tsnap_module_t *out;
    size_t max, n;
} mod_acc_t;

static char paths[64][4096];
static uint8_t ids[64][64];

static int on_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    mod_acc_t *a = arg;
    if (a->n == a->max || a->n == 64) return 1;
    tsnap_module_t *m = &a->out[a->n];
    memset(m, 0, sizeof(*m));
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD) {
            uint64_t b = info->dlpi_addr + ph->p_vaddr, e = b + ph->p_memsz;
            if (b < lo) lo = b;
            if (e > hi) hi = e;
        } else if (ph->p_type == PT_NOTE) {
            const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
            size_t off = 0;
            while (off + sizeof(ElfW(Nhdr)) <= ph->p_memsz) {
                const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(p + off);
                size_t name_off = off + sizeof(*nh),
                       desc_off = name_off + ((nh->n_namesz + 3) & ~3u);
                if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                    memcmp(p + name_off, "GNU", 4) == 0 && nh->n_descsz <= 64) {
                    memcpy(ids[a->n], p + desc_off, nh->n_descsz);
                    m->build_id = ids[a->n];
                    m->build_id_len = nh->n_descsz;
                }
                off = desc_off + ((nh->n_descsz + 3) & ~3u);
            }
        }
    }
    if (hi == 0) return 0;
    if (a->n == 0 || !info->dlpi_name || !info->dlpi_name[0]) {
        ssize_t k = readlink("/proc/self/exe", paths[a->n], sizeof(paths[0]) - 1);
        paths[a->n][k > 0 ? k : 0] = 0;
    } else {
        snprintf(paths[a->n], sizeof(paths[0]), "%s", info->dlpi_name);
    }
    m->path = paths[a->n];
    m->bias = info->dlpi_addr;
    m->lo = lo;
    m->hi = hi;
    m->first_stack = 1;
    m->end_stack = UINT32_MAX;
    a->n++;
    return 0;
}

size_t tsnap_self_modules(tsnap_module_t *out, size_t max)
{
    mod_acc_t a = {out, max, 0};
    dl_iterate_phdr(on_object, &a);
    return a.n;
}

ls_fmt_block_t tsnap_block(uint64_t addr, uint64_t size, uint32_t stack, unsigned kind,
                           uint32_t leader)
{
    ls_fmt_block_t b;
    memset(&b, 0, sizeof(b));
    b.addr = addr;
    b.size = size;
    b.stack = stack;
    b.kind = (uint8_t)kind;
    b.leader = leader;
    return b;
}

ls_fmt_block_t tsnap_block_born(uint64_t addr, uint64_t size, uint32_t stack, unsigned kind,
                                uint64_t birth_ns)
{
    ls_fmt_block_t b = tsnap_block(addr, size, stack, kind, LS_NO_LEADER);
    b.birth_ns = birth_ns;
    return b;
}

unsigned tsnap_find_line(const char *file, const char *marker)
{
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[1024];
    unsigned n = 0, found = 0;
    while (fgets(line, sizeof(line), f)) {
        n++;
        if (strstr(line, marker)) {
            found = n;
            break;
        }
    }
    fclose(f);
    return found;
}
