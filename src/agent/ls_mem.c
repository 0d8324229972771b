/*
 * ls_mem.c - the agent's own memory. Everything the agent keeps lives in mmap'd regions recorded
 * here, so (1) no agent data passes through the allocator it tracks and (2) the leak scan can
 * leave these regions out of its roots (the agent's tables point at every live block and would
 * make everything look reachable). Small permanent objects come from a bump arena.
 */
#include "ls_agent.h"

#include <string.h>
#include <sys/mman.h>

#define LS_MAX_REGIONS 4096
#define LS_PERM_CHUNK  (1u << 20)

static ls_range_t regions[LS_MAX_REGIONS];
static size_t nregions;
static _Atomic int regions_lock;

static char *perm_cur, *perm_end;
static _Atomic int perm_lock;

static void region_add(uintptr_t lo, uintptr_t hi)
{
    ls__spin_lock(&regions_lock);
    if (nregions < LS_MAX_REGIONS)
        regions[nregions++] = (ls_range_t){lo, hi};
    else
        atomic_fetch_add(&ls__g.agent_errors, 1); /* a leak scan may then see agent memory */
    ls__spin_unlock(&regions_lock);
}

static void region_del(uintptr_t lo, uintptr_t hi)
{
    ls__spin_lock(&regions_lock);
    for (size_t i = 0; i < nregions; i++) {
        if (regions[i].lo == lo && regions[i].hi == hi) {
            regions[i] = regions[--nregions];
            break;
        }
    }
    ls__spin_unlock(&regions_lock);
}

void *ls__map(size_t size)
{
    size = (size + 4095) & ~(size_t)4095;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        atomic_fetch_add(&ls__g.agent_errors, 1);
        return NULL;
    }
    region_add((uintptr_t)p, (uintptr_t)p + size);
    atomic_fetch_add(&ls__g.agent_bytes, size);
    return p;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void *ls__map_table(size_t size)
{
    void *p = ls__map(size);
    if (!p) return NULL;
    /* Tables are probed at random and written whole at once (a rehash): huge pages spare a TLB
     * miss - a nested page walk in a VM - on nearly every probe, and populating in one call
     * spares a page fault per 4 KiB. Both are hints; the table works without them. */
    if (size >= (2u << 20)) madvise(p, size, MADV_HUGEPAGE);
    madvise(p, size, MADV_POPULATE_WRITE);
    return p;
}

void ls__unmap(void *p, size_t size)
{
    if (!p) return;
    size = (size + 4095) & ~(size_t)4095;
    region_del((uintptr_t)p, (uintptr_t)p + size);
    munmap(p, size);
    atomic_fetch_sub(&ls__g.agent_bytes, size);
}

void *ls__perm_alloc(size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size > LS_PERM_CHUNK / 4) return ls__map(size);
    ls__spin_lock(&perm_lock);
    if (!perm_cur || (size_t)(perm_end - perm_cur) < size) {
        char *c = ls__map(LS_PERM_CHUNK);
        if (!c) {
            ls__spin_unlock(&perm_lock);
            return NULL;
        }
        perm_cur = c;
        perm_end = c + LS_PERM_CHUNK;
    }
    void *p = perm_cur;
    perm_cur += size;
    ls__spin_unlock(&perm_lock);
    return p;
}

size_t ls__mem_ranges(ls_range_t *out, size_t max)
{
    ls__spin_lock(&regions_lock);
    size_t n = nregions < max ? nregions : max;
    memcpy(out, regions, n * sizeof(*out));
    ls__spin_unlock(&regions_lock);
    return n;
}

void ls__mem_lock(void)
{
    ls__spin_lock(&regions_lock);
    ls__spin_lock(&perm_lock);
}

void ls__mem_unlock(void)
{
    ls__spin_unlock(&perm_lock);
    ls__spin_unlock(&regions_lock);
}
