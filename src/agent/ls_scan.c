/*
 * ls_scan.c - the leak check: valgrind memcheck's reachability algorithm on the live table.
 *
 * 1. Under all agent locks, park the other threads and collect the live blocks from the
 *    ownership bitmap (address order) and their trailers.
 * 2. Roots: every readable+writable mapping except the heap itself ([heap], glibc's thread-arena
 *    heaps, mmap'd chunks of live blocks), the agent's own memory and the stacks of exited
 *    threads; each live thread's stack from its parked SP (minus the 128-byte red zone) to its
 *    top, and its registers; for the thread running the check, the stack and registers it had
 *    when it entered the exit path (our own frames below that are not the program's).
 * 3. Mark (valgrind's lc_push/lc_scan_memory): an aligned word equal to a block's start marks it
 *    Reachable when the word's holder is definite (a root or a Reachable block), else Possible;
 *    a word inside a block marks it Possible unless one of valgrind's default heuristics
 *    (stdstring, length64, newarray, multipleinheritance) explains it, then Reachable.
 * 4. Cliques: each still-Unreached block, in address order, scans what it reaches; every
 *    Unreached block it finds becomes indirectly lost with it as leader; the leaders left are
 *    definitely lost. So a lost cycle is one definite block and the rest indirect, as valgrind.
 *
 * Nothing here allocates: arrays are mapped before the world stops; /proc is read with read(2).
 * glibc's own bookkeeping pointers (main_arena.top and the bins, in libc's .data) point at the
 * header of the chunk after a block, which overlaps that block's last 8 bytes: such a word is not
 * taken as an interior pointer.
 */
#define _GNU_SOURCE
#include "ls_agent.h"
#include "ls_format.h"
#include "ls_stopworld.h"

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { ST_UNREACHED = 0, ST_POSSIBLE = 1, ST_REACHABLE = 2, ST_INDIRECT = 3 };

#define LS_MAX_MAPS 65536
#define LS_MAX_EXCL (LS_MAX_MAPS + 16384)
#define LS_REDZONE  128
#define LS_HEAP_MAX (64ull << 20) /* glibc HEAP_MAX_SIZE on 64-bit: thread arenas align to it */

typedef struct scan_ctx {
    /* blocks */
    const ls_block_t *b;
    size_t n;
    uintptr_t min_addr, max_end;
    uint8_t *state, *heur;
    uint8_t *vt; /* VT_*: is the block's first word a vtable pointer (multipleinheritance) */
    uint32_t *clique;
    uint32_t *stack; /* mark stack */
    size_t sp, cap;
    /* address space */
    ls_mapping_t *maps; /* readable mappings (paths not kept) */
    size_t nmaps;
    bool *map_file; /* mapping is file-backed (for the vtable heuristic) */
    ls_range_t *excl;
    size_t nexcl;
    uint64_t root_bytes;
    /* page index: page number -> first block overlapping that page (open addressing) */
    uint64_t *pidx_key; /* page + 1; 0 = empty */
    uint32_t *pidx_val;
    size_t pidx_mask;
    uintptr_t cur_root; /* verbose=3: address of the root word being scanned, for the log */
    bool debug;
} scan_ctx_t;

/* ---- block lookup -------------------------------------------------------------------------- */

static inline size_t bsize(const ls_block_t *b)
{
    return (size_t)(b->size_flags & LS_SIZE_MASK);
}

static inline size_t pidx_slot(uint64_t page, size_t mask)
{
    return (size_t)((page * 0x9e3779b97f4a7c15ull) >> 20) & mask;
}

/* The first block overlapping page, or -1 when no block touches it. */
static inline long pidx_get(const scan_ctx_t *c, uint64_t page)
{
    for (size_t i = pidx_slot(page, c->pidx_mask);; i = (i + 1) & c->pidx_mask) {
        uint64_t k = c->pidx_key[i];
        if (k == page + 1) return c->pidx_val[i];
        if (!k) return -1;
    }
}

/*
 * Index of the block containing v, or -1. valgrind: a 0-byte block contains its start.
 * With the page index (built once per scan), a word whose page no block touches is rejected by
 * one probe, and the search runs only between the first blocks of its page and the next page;
 * without it (while the index is not built yet), a binary search over all blocks.
 */
static inline long find_block(const scan_ctx_t *c, uintptr_t v)
{
    if (v < c->min_addr || v >= c->max_end) return -1;
    size_t lo = 0, hi = c->n;
    if (c->pidx_key) {
        long first = pidx_get(c, v >> 12);
        if (first < 0) return -1;
        lo = (size_t)first;
        long next = pidx_get(c, (v >> 12) + 1);
        if (next >= 0) hi = (size_t)next + 1;
    }
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (c->b[mid].addr <= v)
            lo = mid;
        else
            hi = mid;
    }
    const ls_block_t *b = &c->b[lo];
    size_t sz = bsize(b);
    if (v >= b->addr && (v < b->addr + sz || (sz == 0 && v == b->addr))) return (long)lo;
    return -1;
}

/* Builds the page index over the sorted blocks. Blocks come in address order, so the pages
 * they touch come in nondecreasing order and each page is entered once, for its first block. */
static void pidx_build(scan_ctx_t *c, void *mem, size_t cap)
{
    c->pidx_key = mem;
    c->pidx_val = (uint32_t *)((char *)mem + cap * sizeof(uint64_t));
    c->pidx_mask = cap - 1;
    uint64_t last = UINT64_MAX;
    for (size_t i = 0; i < c->n; i++) {
        size_t sz = bsize(&c->b[i]);
        uint64_t p0 = c->b[i].addr >> 12, p1 = (c->b[i].addr + (sz ? sz - 1 : 0)) >> 12;
        for (uint64_t p = (last != UINT64_MAX && p0 <= last) ? last + 1 : p0; p <= p1; p++) {
            size_t s = pidx_slot(p, c->pidx_mask);
            while (c->pidx_key[s]) s = (s + 1) & c->pidx_mask;
            c->pidx_key[s] = p + 1;
            c->pidx_val[s] = (uint32_t)i;
            last = p;
        }
    }
}

/* How many pages the (sorted) blocks touch, for sizing the page index. */
static size_t pidx_pages(const ls_block_t *b, size_t n)
{
    size_t pages = 0;
    uint64_t last = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t sz = bsize(&b[i]);
        uint64_t p0 = b[i].addr >> 12, p1 = (b[i].addr + (sz ? sz - 1 : 0)) >> 12;
        if (last != UINT64_MAX && p0 <= last) p0 = last + 1;
        if (p1 >= p0) {
            pages += p1 - p0 + 1;
            last = p1;
        }
    }
    return pages;
}

static const ls_mapping_t *find_map(const scan_ctx_t *c, uintptr_t a)
{
    size_t lo = 0, hi = c->nmaps;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->maps[mid].hi <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nmaps && c->maps[lo].lo <= a ? &c->maps[lo] : NULL;
}

static bool readable_word(const scan_ctx_t *c, uintptr_t a)
{
    const ls_mapping_t *m = find_map(c, a);
    return m && m->r && a + 8 <= m->hi;
}

/* glibc's in-use chunk header word (size | flags) just before the real block, if readable. */
static bool chunk_header(const scan_ctx_t *c, uintptr_t base, uint64_t *hdr)
{
    if (base < 16 || !readable_word(c, base - 8)) return false;
    *hdr = *(const uint64_t *)(base - 8);
    return true;
}

/* ---- valgrind's heuristics, for interior pointers ------------------------------------------ */

static bool is_vtable(const scan_ctx_t *c, uintptr_t p)
{
    if (p % 8 || p < 4096) return false;
    const ls_mapping_t *m = find_map(c, p);
    if (!m || !m->r || !c->map_file[m - c->maps]) return false;
    uintptr_t end = p + 20 * 8;
    if (end > m->hi - 8) end = m->hi - 8;
    int fns = 0;
    for (uintptr_t s = p; s <= end; s += 8) {
        uintptr_t fn = *(const uintptr_t *)s;
        if (!fn) continue;
        const ls_mapping_t *fm = find_map(c, fn);
        if (!fm || !fm->x || !c->map_file[fm - c->maps]) return false;
        if (++fns == 2) return true;
    }
    return false;
}

/* c->vt per block: whether the block's first word is a vtable pointer (0 = not known yet). */
enum { VT_UNKNOWN = 0, VT_YES = 1, VT_NO = 2 };

static bool heuristic_reachable(const scan_ctx_t *c, uintptr_t ptr, const ls_block_t *b)
{
    size_t sz = bsize(b);
    const ls_mapping_t *m = find_map(c, b->addr);
    if (!m || !m->r || b->addr + sz > m->hi) return false; /* stale entry: never read it */
    const uint64_t *w = (const uint64_t *)b->addr;
    /* stdstring: {length, capacity, refcount, chars[capacity+1]}, ptr at chars */
    if (ptr == b->addr + 24 && sz >= 24) {
        uint64_t cap = w[1];
        if (24 + cap + 1 == sz && w[0] <= cap) return true;
    }
    /* length64: {u64 remaining size, data}, ptr at data (sqlite's allocator does this) */
    if (ptr == b->addr + 8 && sz >= 8 && w[0] > 0 && sz - 8 == w[0]) return true;
    /* newarray: {u64 count, elements}, ptr at the elements (C++ new[] with destructors) */
    if (ptr == b->addr + 8 && sz >= 8 && w[0] > 0 && (sz - 8) % w[0] == 0) return true;
    /* multipleinheritance: ptr at a secondary vtable pointer inside the object. The block's own
     * first word is checked first, once per block: reading the word at ptr is a cache miss
     * for every interior pointer into a big block (perl's arenas), and mostly in vain. */
    if (ptr % 8 == 0 && sz >= 8 && ptr + 8 <= b->addr + sz) {
        uint8_t *vt = &c->vt[b - c->b];
        if (*vt == VT_UNKNOWN) {
            uintptr_t first = w[0];
            *vt = (first % 8 == 0 && first >= 4096 && is_vtable(c, first)) ? VT_YES : VT_NO;
        }
        if (*vt == VT_YES) {
            uintptr_t inner = *(const uintptr_t *)ptr;
            if (inner % 8 == 0 && inner >= 4096 && is_vtable(c, inner)) return true;
        }
    }
    return false;
}

/* ---- marking --------------------------------------------------------------------------------- */

static inline void push(scan_ctx_t *c, uint32_t i)
{
    if (c->sp < c->cap) c->stack[c->sp++] = i;
}

/* valgrind lc_push_without_clique_if_a_chunk_pointer */
static inline void mark_word(scan_ctx_t *c, uintptr_t v, bool prior_definite)
{
    long i = find_block(c, v);
    if (i < 0) return;
    const ls_block_t *b = &c->b[i];
    uint8_t *st = &c->state[i];
    if (*st == ST_REACHABLE) {
        if (c->heur[i] && v == b->addr) c->heur[i] = 0;
        return;
    }
    bool start = v == b->addr;
    bool via_reach = start;
    if (!start) {
        c->heur[i] = heuristic_reachable(c, v, b);
        via_reach = c->heur[i];
    }
    if (LS_UNLIKELY(c->debug && c->cur_root))
        ls__log("scan: root word at %#lx -> block %#lx (%zu bytes)%s", (unsigned long)c->cur_root,
                (unsigned long)b->addr, bsize(b), start ? "" : " (interior)");
    if (via_reach && prior_definite) {
        *st = ST_REACHABLE;
        push(c, (uint32_t)i);
    } else if (*st == ST_UNREACHED) {
        *st = ST_POSSIBLE;
        push(c, (uint32_t)i);
    }
}

/* valgrind lc_push_with_clique_if_a_chunk_pointer */
static inline void clique_word(scan_ctx_t *c, uintptr_t v, uint32_t leader)
{
    long i = find_block(c, v);
    if (i < 0 || c->state[i] != ST_UNREACHED || (uint32_t)i == leader) return;
    c->state[i] = ST_INDIRECT;
    c->clique[i] = leader;
    push(c, (uint32_t)i);
}

static void scan_range(scan_ctx_t *c, uintptr_t lo, uintptr_t hi, bool prior_definite, long leader)
{
    lo = (lo + 7) & ~(uintptr_t)7;
    hi &= ~(uintptr_t)7;
    for (uintptr_t a = lo; a < hi; a += 8) {
        uintptr_t v = *(const uintptr_t *)a;
        if (v < c->min_addr || v >= c->max_end) continue;
        if (leader < 0)
            mark_word(c, v, prior_definite);
        else
            clique_word(c, v, (uint32_t)leader);
    }
}

/* Root memory: like scan_range, remembering where each word is for the verbose=3 log. */
static void scan_root_words(scan_ctx_t *c, uintptr_t lo, uintptr_t hi)
{
    if (!c->debug) {
        scan_range(c, lo, hi, true, -1);
        return;
    }
    for (uintptr_t a = (lo + 7) & ~(uintptr_t)7; a + 8 <= hi; a += 8) {
        c->cur_root = a;
        mark_word(c, *(const uintptr_t *)a, true);
    }
    c->cur_root = 0;
}

static void process_stack(scan_ctx_t *c, long leader)
{
    while (c->sp) {
        uint32_t i = c->stack[--c->sp];
        const ls_block_t *b = &c->b[i];
        /* Blocks outside any readable mapping are stale entries (a missed free of memory since
         * unmapped): never touch them. */
        const ls_mapping_t *m = find_map(c, b->addr);
        if (!m || !m->r || b->addr + bsize(b) > m->hi) continue;
        scan_range(c, b->addr, b->addr + bsize(b), c->state[i] != ST_POSSIBLE, leader);
    }
}

/* ---- roots ----------------------------------------------------------------------------------- */

typedef struct maps_collect {
    scan_ctx_t *c;
    ls_range_t *heaps; /* [heap] and thread-arena heaps found */
    size_t nheaps, maxheaps;
} maps_collect_t;

static int collect_map(const ls_mapping_t *m, void *ctx)
{
    maps_collect_t *mc = ctx;
    scan_ctx_t *c = mc->c;
    if (c->nmaps >= LS_MAX_MAPS) return 1;
    ls_mapping_t copy = *m;
    bool file = m->path[0] == '/';
    copy.path = NULL;
    c->map_file[c->nmaps] = file;
    c->maps[c->nmaps++] = copy;
    if (!m->r || !m->w) return 0;
    bool heap = !strcmp(m->path, "[heap]");
    /* glibc thread arenas: HEAP_MAX_SIZE-aligned heaps starting with a heap_info
     * {ar_ptr, prev, size, ...}; the first heap of an arena holds its malloc_state right after.
     * The kernel merges neighbouring anonymous mappings with the same flags into one line of
     * /proc/self/maps, so a heap may start anywhere inside one: try every aligned address. */
    if (!heap && !m->path[0]) {
        for (uintptr_t a = (m->lo + LS_HEAP_MAX - 1) & ~(uintptr_t)(LS_HEAP_MAX - 1);
             a >= m->lo && a + 4096 <= m->hi; a += LS_HEAP_MAX) {
            const uintptr_t *hi = (const uintptr_t *)a;
            if (hi[2] && hi[2] <= LS_HEAP_MAX && hi[2] % 4096 == 0 &&
                (hi[0] == a + 48 || (hi[1] && hi[1] % LS_HEAP_MAX == 0))) {
                uintptr_t end = a + LS_HEAP_MAX < m->hi ? a + LS_HEAP_MAX : m->hi;
                if (mc->nheaps < mc->maxheaps) mc->heaps[mc->nheaps++] = (ls_range_t){a, end};
            }
        }
    }
    /* Device mappings are never scanned (valgrind: reading them may hang), /dev/zero is; shared
     * anonymous memory shows as "/dev/zero (deleted)". */
    if (!strncmp(m->path, "/dev/", 5) && strncmp(m->path, "/dev/zero", 9)) heap = true;
    if (!strcmp(m->path, "[vvar]") || !strcmp(m->path, "[vsyscall]")) heap = true;
    if (heap && mc->nheaps < mc->maxheaps) mc->heaps[mc->nheaps++] = (ls_range_t){m->lo, m->hi};
    return 0;
}

static void excl_add(scan_ctx_t *c, uintptr_t lo, uintptr_t hi)
{
    if (hi > lo && c->nexcl < LS_MAX_EXCL) c->excl[c->nexcl++] = (ls_range_t){lo, hi};
}

static void sort_ranges(ls_range_t *r, size_t n)
{
    /* insertion sort on nearly-sorted input, shell gaps for the rest */
    static const size_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
        size_t gap = gaps[g];
        for (size_t i = gap; i < n; i++) {
            ls_range_t t = r[i];
            size_t j = i;
            while (j >= gap && r[j - gap].lo > t.lo) {
                r[j] = r[j - gap];
                j -= gap;
            }
            r[j] = t;
        }
    }
}

/* Scans [lo, hi) minus the (sorted) exclusions as definite roots. */
static void scan_root_range(scan_ctx_t *c, uintptr_t lo, uintptr_t hi)
{
    for (size_t i = 0; i < c->nexcl && lo < hi; i++) {
        const ls_range_t *e = &c->excl[i];
        if (e->hi <= lo) continue;
        if (e->lo >= hi) break;
        if (e->lo > lo) {
            scan_root_words(c, lo, e->lo);
            c->root_bytes += e->lo - lo;
        }
        if (e->hi > lo) lo = e->hi;
    }
    if (lo < hi) {
        scan_root_words(c, lo, hi);
        c->root_bytes += hi - lo;
    }
}

/*
 * Exited threads whose stacks glibc keeps cached still own a DTV (and dynamic TLS blocks) that
 * the next thread on that stack reuses. valgrind runs glibc's __libc_freeres at exit, which frees
 * the cache, so for it these blocks do not exist; the agent cannot call __libc_freeres (exit is
 * not over when it checks), so it leaves them out: the TCB at the thread pointer holds the DTV
 * pointer at offset 8 (&dtv[1]; dtv[0].counter = length; entries are {val, to_free}).
 */
static size_t drop_dead_thread_tls(scan_ctx_t *c, ls_block_t *b, size_t n, const ls_thread_rec_t *t,
                                   size_t nt)
{
    for (size_t k = 0; k < nt; k++) {
        if (atomic_load(&t[k].tid) || !t[k].tp || !readable_word(c, t[k].tp + 8)) continue;
        uintptr_t dtv = *(const uintptr_t *)(t[k].tp + 8);
        if (dtv < 16 || !readable_word(c, dtv - 16)) continue;
        long di = find_block(c, dtv - 16);
        if (di < 0 || b[di].addr != dtv - 16) continue;
        size_t len = *(const uintptr_t *)(dtv - 16);
        for (size_t e = 0; e < len && e < 4096 && readable_word(c, dtv + 16 * e + 8); e++) {
            uintptr_t to_free = *(const uintptr_t *)(dtv + 16 * e + 8);
            long ti = to_free ? find_block(c, to_free) : -1;
            if (ti >= 0 && b[ti].addr == to_free) b[ti].size_flags |= LS_BF_DROP;
        }
        b[di].size_flags |= LS_BF_DROP;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!(b[i].size_flags & LS_BF_DROP)) b[m++] = b[i];
    return m;
}

/* ---- the check ---------------------------------------------------------------------------------
 */

static void *carve(char *base, size_t *off, size_t bytes)
{
    void *r = base ? base + *off : NULL;
    *off += (bytes + 63) & ~(size_t)63;
    return r;
}

typedef struct check_arrays {
    ls_block_t *blocks;
    uint8_t *kind, *bflags, *state, *heur, *vt;
    uint32_t *leader, *clique, *stack;
    ls_mapping_t *maps;
    bool *map_file;
    ls_range_t *excl, *agent, *heaps, *live;
    ls_thread_rec_t *trecs;
} check_arrays_t;

/* Lays out every array of a check for cap blocks from mem; returns the bytes used. With mem ==
 * NULL it only measures, so the mapping and the layout can never disagree. */
static size_t carve_check_arrays(char *mem, size_t cap, check_arrays_t *a)
{
    size_t off = 0;
    a->blocks = carve(mem, &off, cap * sizeof(ls_block_t));
    a->kind = carve(mem, &off, cap);
    a->bflags = carve(mem, &off, cap);
    a->state = carve(mem, &off, cap);
    a->heur = carve(mem, &off, cap);
    a->vt = carve(mem, &off, cap);
    a->leader = carve(mem, &off, cap * 4);
    a->clique = carve(mem, &off, cap * 4);
    a->stack = carve(mem, &off, cap * 3 * 4);
    a->maps = carve(mem, &off, LS_MAX_MAPS * sizeof(ls_mapping_t));
    a->map_file = carve(mem, &off, LS_MAX_MAPS);
    a->excl = carve(mem, &off, LS_MAX_EXCL * sizeof(ls_range_t));
    a->agent = carve(mem, &off, 4096 * sizeof(ls_range_t));
    a->trecs = carve(mem, &off, 4096 * sizeof(ls_thread_rec_t));
    a->heaps = carve(mem, &off, 1024 * sizeof(ls_range_t));
    a->live = carve(mem, &off, 1024 * sizeof(ls_range_t));
    return off;
}

int ls__check_run(ls_check_result_t *res, bool classify, const ls_exit_state_t *self)
{
    memset(res, 0, sizeof(*res));
    uint64_t t0 = ls__now_ns();
    ls__spin_lock(&ls__g.check_lock);
    ls__modules_lock();
    ls__depot_lock_all();
    ls__mem_lock(); /* no thread gets parked inside ls__map (we map below) */

    /* Park the others first: the bitmap and headers are then still while we count and copy. The
     * arrays are sized by a counting pass and mapped before any parked thread could matter:
     * ls__map's lock is taken only briefly and never by a thread inside the allocator path. */
    ls_parked_t *parked = NULL;
    size_t nparked = 0;
    unsigned unresponsive = 0;
    nparked = ls__stopworld_stop(&parked, &unresponsive);
    ls__mem_unlock();
    size_t n = ls__bm_count();
    size_t cap = n + 16;
    scan_ctx_t c;
    memset(&c, 0, sizeof(c));
    check_arrays_t a;
    /* Carved twice from one plan: at 0 to size the mapping, then for real. */
    size_t bytes = carve_check_arrays(NULL, cap, &a);
    char *mem = ls__map(bytes);
    if (!mem) {
        ls__stopworld_resume();
        ls__depot_unlock_all();
        ls__modules_unlock();
        ls__spin_unlock(&ls__g.check_lock);
        ls__error("leak check skipped: cannot map %zu bytes", bytes);
        return -1;
    }
    carve_check_arrays(mem, cap, &a);
    ls_block_t *blocks = a.blocks;
    res->kind = a.kind;
    res->bflags = a.bflags;
    c.state = a.state;
    c.heur = a.heur;
    c.vt = a.vt;
    res->leader = a.leader;
    c.clique = a.clique;
    c.cap = cap * 3;
    c.stack = a.stack;
    c.maps = a.maps;
    c.map_file = a.map_file;
    c.excl = a.excl;
    ls_range_t *agent = a.agent;
    ls_thread_rec_t *trecs = a.trecs;
    ls_range_t *heaps = a.heaps;
    ls_range_t *live = a.live;
    size_t nagent = ls__mem_ranges(agent, 4096);
    size_t ntrecs = ls__threads_snapshot(trecs, 4096);

    size_t missed;
    n = ls__collect_addrs(blocks, cap, &missed); /* none missed: the world stood still */
    ls__read_trailers(blocks, n);
    ls__depot_unlock_all();
    res->blocks = blocks;
    res->n = n;
    res->map_size = bytes;
    res->threads_stopped = (unsigned)nparked;
    res->threads_unresponsive = unresponsive;
    c.b = blocks;
    c.n = n;
    for (size_t i = 0; i < n; i++) {
        res->leader[i] = LS_NO_LEADER;
        c.clique[i] = LS_NO_LEADER;
    }

    maps_collect_t mc = {&c, heaps, 0, 1024};
    if (classify && n) {
        c.min_addr = blocks[0].addr;
        for (size_t i = 0; i < n; i++) {
            uintptr_t e = blocks[i].addr + (bsize(&blocks[i]) ? bsize(&blocks[i]) : 1);
            if (e > c.max_end) c.max_end = e;
        }
        if (ls__maps_foreach(collect_map, &mc) < 0 || c.nmaps == 0) {
            /* Without the address space's layout every block would look lost: no verdict. */
            ls__error("leak check skipped: /proc/self/maps cannot be read");
            classify = false;
        }
    }
    if (classify && n) {
        n = drop_dead_thread_tls(&c, blocks, n, trecs, ntrecs);
        c.n = res->n = n;
        /* Page index at most half full; if it cannot be mapped, find_block binary-searches. */
        size_t pages = pidx_pages(blocks, n), pcap = 1024;
        while (pcap < 2 * pages) pcap <<= 1;
        size_t pbytes = pcap * (sizeof(uint64_t) + sizeof(uint32_t));
        void *pmem = ls__map(pbytes);
        if (pmem) pidx_build(&c, pmem, pcap);

        /* Exclusions: the heap, agent memory, mmap'd chunks, all thread stacks (live stacks
         * are added back from their SP below). */
        for (size_t i = 0; i < mc.nheaps; i++) excl_add(&c, heaps[i].lo, heaps[i].hi);
        for (size_t i = 0; i < nagent; i++) excl_add(&c, agent[i].lo, agent[i].hi);
        for (size_t i = 0; i < ntrecs; i++) excl_add(&c, trecs[i].stack_lo, trecs[i].stack_hi);
        for (size_t i = 0; i < n; i++) {
            uint64_t hdr;
            uintptr_t base = blocks[i].addr;
            if (chunk_header(&c, base, &hdr) && (hdr & 2)) {
                /* mmap'd chunk: prev_size holds the alignment slack before the chunk */
                uintptr_t chunk = base - 16;
                uint64_t slack = readable_word(&c, chunk) ? *(const uint64_t *)chunk : 0;
                uint64_t csize = hdr & ~7ull;
                if (slack < (1ull << 40) && csize < (1ull << 47) && csize >= bsize(&blocks[i]))
                    excl_add(&c, chunk - slack, chunk + csize);
            }
        }
        /* Stacks of live threads, and the checking thread's own. */
        size_t nlive = 0;
        uintptr_t self_sp = self && self->sp ? self->sp : (uintptr_t)__builtin_frame_address(0);
        for (size_t i = 0; i <= nparked && nlive < 1024; i++) {
            uintptr_t sp = i < nparked ? parked[i].sp : self_sp;
            if (i < nparked && atomic_load(&parked[i].state) == LS_GONE) continue;
            const ls_mapping_t *m = sp ? find_map(&c, sp) : NULL;
            /* A thread stopped by a signal may have live data in the red zone below its SP; one
             * that entered exit() or returned from main, at a call boundary, has none. */
            bool async = i < nparked || (self && self->interrupted);
            uintptr_t lo = (async && sp > LS_REDZONE) ? sp - LS_REDZONE : sp, hi = m ? m->hi : 0;
            for (size_t k = 0; k < ntrecs; k++)
                if (sp >= trecs[k].stack_lo && sp < trecs[k].stack_hi) hi = trecs[k].stack_hi;
            if (i < nparked && parked[i].unresponsive && !sp) continue;
            if (m) {
                if (lo < m->lo) lo = m->lo;
                excl_add(&c, m->lo, m->hi); /* the generic pass must not read below SP */
                live[nlive++] = (ls_range_t){lo, hi};
            }
        }
        sort_ranges(c.excl, c.nexcl);

        /* Phase 1: roots */
        c.debug = ls__g.opt.verbose >= 3;
        for (size_t i = 0; i < nlive; i++) {
            if (c.debug)
                ls__log("scan: stack %#lx-%#lx", (unsigned long)live[i].lo,
                        (unsigned long)live[i].hi);
            scan_root_words(&c, live[i].lo, live[i].hi);
            c.root_bytes += live[i].hi - live[i].lo;
        }
        for (size_t i = 0; i < c.nmaps; i++) {
            const ls_mapping_t *m = &c.maps[i];
            if (m->r && m->w) scan_root_range(&c, m->lo, m->hi);
        }
        for (size_t i = 0; i < nparked; i++)
            for (int r = 0; r < parked[i].nregs; r++) mark_word(&c, parked[i].regs[r], true);
        if (self)
            for (int r = 0; r < self->nregs; r++) mark_word(&c, self->regs[r], true);
        c.debug = false;
        for (size_t i = 0; i < n; i++) /* ls_ignore()d blocks are roots */
            if ((blocks[i].size_flags & LS_BF_IGNORED) && c.state[i] != ST_REACHABLE) {
                c.state[i] = ST_REACHABLE;
                push(&c, (uint32_t)i);
            }
        process_stack(&c, -1);

        /* Phase 2: cliques of unreached blocks */
        for (size_t i = 0; i < n; i++) {
            if (c.state[i] != ST_UNREACHED) continue;
            push(&c, (uint32_t)i);
            process_stack(&c, (long)i);
        }
    }
    res->checked = classify; /* also with no live block at all: "nothing leaked" is a verdict */
    ls__stopworld_resume();
    ls__modules_unlock();
    ls__spin_unlock(&ls__g.check_lock);

    for (size_t i = 0; i < n; i++) {
        uint8_t k = LS_KIND_UNCHECKED;
        if (res->checked) {
            switch (c.state[i]) {
            case ST_UNREACHED:
                k = LS_KIND_DEFINITELY;
                break;
            case ST_INDIRECT:
                k = LS_KIND_INDIRECTLY;
                break;
            case ST_POSSIBLE:
                k = LS_KIND_POSSIBLY;
                break;
            default:
                k = LS_KIND_REACHABLE;
                break;
            }
        }
        res->kind[i] = k;
        res->bflags[i] = (k == LS_KIND_REACHABLE && c.heur[i]) ? LS_BLOCK_VIA_HEURISTIC : 0;
        if (k == LS_KIND_INDIRECTLY) {
            /* Leaders absorbed by later cliques became indirect too: follow to the definite one. */
            uint32_t l = c.clique[i];
            for (int hops = 0; l != LS_NO_LEADER && c.state[l] == ST_INDIRECT && hops < 1 << 20;
                 hops++)
                l = c.clique[l];
            res->leader[i] = l;
        }
    }
    if (c.pidx_key)
        ls__unmap(c.pidx_key, (c.pidx_mask + 1) * (sizeof(uint64_t) + sizeof(uint32_t)));
    res->root_bytes = c.root_bytes;
    res->scan_ns = ls__now_ns() - t0;
    return 0;
}

void ls__check_free(ls_check_result_t *res)
{
    if (res->blocks) ls__unmap(res->blocks, res->map_size);
    memset(res, 0, sizeof(*res));
}
