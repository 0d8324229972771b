/*
 * ls_modules.c - the registry of loaded objects, so the CLI can symbolize every PC later, even
 * in a library dlclose'd long before exit.
 *
 * One record per (object, mapping period): path, load bias, address range, build-id, and the
 * stack-id interval during which it was mapped (stack ids grow in time; see ls_format.h). It is
 * refreshed with dl_iterate_phdr at init and after every dlopen/dlclose, never on the hot path.
 */
#define _GNU_SOURCE
#include "ls_agent.h"
#include "ls_format_write.h"

#include <elf.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#define LS_MAX_MODULES 8192

typedef struct ls_module {
    uintptr_t bias, lo, hi;
    uint32_t first_stack, end_stack;
    char *path;
    uint16_t path_len;
    uint8_t build_id_len;
    uint8_t build_id[64];
    bool seen; /* scratch for refresh */
} ls_module_t;

static ls_module_t *mods; /* LS_MAX_MODULES entries, mapped at first refresh */
static size_t nmods;
static _Atomic int mod_lock;
static char exe_path[4096];

void ls__modules_lock(void)
{
    ls__spin_lock(&mod_lock);
}

void ls__modules_unlock(void)
{
    ls__spin_unlock(&mod_lock);
}

static size_t read_build_id(const struct dl_phdr_info *info, uint8_t *out, size_t max)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
        const char *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            size_t namesz = (nh->n_namesz + 3) & ~3u, descsz = (nh->n_descsz + 3) & ~3u;
            const char *name = p + sizeof(*nh), *desc = name + namesz;
            if (desc + descsz > end) break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
                size_t n = nh->n_descsz < max ? nh->n_descsz : max;
                memcpy(out, desc, n);
                return n;
            }
            p = desc + descsz;
        }
    }
    return 0;
}

typedef struct refresh_ctx {
    uint32_t first_stack;
} refresh_ctx_t;

static int refresh_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    refresh_ctx_t *ctx = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo) lo = a;
        if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
    }
    if (hi <= lo) return 0;
    const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : exe_path;
    for (size_t i = 0; i < nmods; i++) {
        ls_module_t *m = &mods[i];
        if (m->end_stack == UINT32_MAX && m->lo == lo && m->bias == info->dlpi_addr &&
            !strcmp(m->path, name)) {
            m->seen = true;
            return 0;
        }
    }
    if (nmods >= LS_MAX_MODULES) {
        atomic_fetch_add(&ls__g.agent_errors, 1);
        return 0;
    }
    size_t plen = strlen(name);
    if (plen > 4095) plen = 4095;
    char *path = ls__perm_alloc(plen + 1);
    if (!path) return 0;
    memcpy(path, name, plen);
    path[plen] = 0;
    ls_module_t *m = &mods[nmods++];
    memset(m, 0, sizeof(*m));
    m->bias = info->dlpi_addr;
    m->lo = lo;
    m->hi = hi;
    m->first_stack = ctx->first_stack;
    m->end_stack = UINT32_MAX;
    m->path = path;
    m->path_len = (uint16_t)plen;
    m->build_id_len = (uint8_t)read_build_id(info, m->build_id, sizeof(m->build_id));
    m->seen = true;
    (void)size;
    return 0;
}

void ls__modules_refresh(uint32_t first_stack)
{
    ls__modules_lock();
    if (!mods) {
        mods = ls__map(LS_MAX_MODULES * sizeof(ls_module_t));
        ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
        exe_path[n > 0 ? n : 0] = 0;
    }
    if (mods) {
        for (size_t i = 0; i < nmods; i++) mods[i].seen = false;
        refresh_ctx_t ctx = {first_stack};
        dl_iterate_phdr(refresh_cb, &ctx);
        uint32_t now = ls__depot_next_id();
        for (size_t i = 0; i < nmods; i++)
            if (!mods[i].seen && mods[i].end_stack == UINT32_MAX) mods[i].end_stack = now;
    }
    ls__modules_unlock();
}

size_t ls__modules_write(ls_fmt_writer_t *w)
{
    static const char zeros[8];
    ls_fmt_chunk_begin(w, LS_CHUNK_MODULES);
    for (size_t i = 0; i < nmods; i++) {
        const ls_module_t *m = &mods[i];
        ls_fmt_module_t rec;
        memset(&rec, 0, sizeof(rec));
        rec.bias = m->bias;
        rec.lo = m->lo;
        rec.hi = m->hi;
        rec.first_stack = m->first_stack;
        rec.end_stack = m->end_stack;
        rec.path_len = m->path_len;
        rec.build_id_len = m->build_id_len;
        ls_fmt_put(w, &rec, sizeof(rec));
        ls_fmt_put(w, m->path, m->path_len);
        ls_fmt_put(w, m->build_id, m->build_id_len);
        size_t n = (size_t)m->path_len + m->build_id_len;
        ls_fmt_put(w, zeros, ls_fmt_pad8(n) - n);
    }
    ls_fmt_chunk_end(w, (uint32_t)nmods);
    return nmods;
}
