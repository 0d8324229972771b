/*
 * ls_agent.h - what the agent's modules share: global state, per-thread state, and the internal
 * interfaces between interposition, the live table, the stack depot, module registry, scan and
 * snapshot writer. Everything here is internal (ls__ prefix, hidden visibility).
 *
 * Lock order (outermost first): ls__g.check_lock > module lock > table shard locks > refs locks
 * (ls_refs.c: object stripes > block stripes > its leaf locks) > tags lock (ls_tags.c) > sites
 * registry lock > sites table lock (ls_sites.c) > fail resolve lock (ls_fail.c) > depot bucket
 * locks > sample table lock (ls_sample.c) > memory locks.
 * The scan takes all of them before it parks the other threads, so no parked thread can hold one
 * (the refs, sample and sites locks are never needed while threads are parked). None of them is
 * ever held across a call into the real allocator.
 */
#ifndef LS_AGENT_H
#define LS_AGENT_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ls_format.h"

#define LS_HIDDEN           __attribute__((visibility("hidden")))
#define LS_EXPORT           __attribute__((visibility("default")))
#define LS_LIKELY(x)        __builtin_expect(!!(x), 1)
#define LS_UNLIKELY(x)      __builtin_expect(!!(x), 0)
#define LS_COLD             __attribute__((cold, noinline))
#define LS_HOT              __attribute__((hot))
#define LS_MAX_FRAMES_LIMIT 256

/* ---- options (ls_options.c) ------------------------------------------------------------------ */
typedef struct ls_options {
#define LS_OPT(name, type, def, desc) LS_OPT_FIELD_##type(name);
#define LS_OPT_FIELD_BOOL(n)          int n
#define LS_OPT_FIELD_INT(n)           long n
#define LS_OPT_FIELD_STR(n)           char n[512]
#include "ls_options.def"
#undef LS_OPT
} ls_options_t;

/* Parses LEAKSCOPE_OPTIONS into o (defaults first). Bad items are reported once and ignored. */
void ls__options_parse(ls_options_t *o, const char *env);

/* ---- global and per-thread state ------------------------------------------------------------- */
enum { LS_UNWIND_FAST, LS_UNWIND_LIBUNWIND, LS_UNWIND_FP };

typedef struct ls_exit_state {
    uintptr_t sp;       /* the exiting thread's stack pointer when it entered the exit path */
    uintptr_t regs[16]; /* registers that may hold pointers at that moment */
    int nregs;
    bool interrupted; /* stopped by a signal mid-code: the red zone below sp is live */
} ls_exit_state_t;

typedef struct ls_global {
    _Atomic int state; /* LS_STATE_* */
    ls_options_t opt;
    int unwinder;
    size_t max_frames;
    pid_t pid; /* the pid the agent believes it has; differs in a vfork/clone child */
    uint64_t start_realtime_ns;
    uint64_t start_mono_ns;
    int stop_signal;
    _Atomic int exiting; /* set once the exit path has run the check */
    _Atomic int check_lock;
    /* stats */
    _Atomic uint64_t unknown_frees, agent_errors;
    _Atomic int have_exit_status;
    int exit_status;
    _Atomic uint64_t agent_bytes;
    ls_exit_state_t exit_state;
    _Atomic int have_exit_state;
    _Atomic pid_t control_tid; /* the control thread (ls_control.c): never parked, never a root */
    bool glibc_heap;           /* the real allocator is glibc's: its chunk layout may be assumed */
} ls_global_t;

enum { LS_STATE_UNINIT = 0, LS_STATE_INITIALIZING = 1, LS_STATE_READY = 2, LS_STATE_DISABLED = 3 };

extern ls_global_t ls__g LS_HIDDEN;

#define LS_STACK_CACHE 256
#define LS_SITE_CACHE  256

typedef struct ls_tls {
    int guard; /* nonzero while the agent runs on this thread: calls pass through */
    int inited;
    /* Mode sample (ls_sample.c): bytes this thread may still allocate before its next sample
     * (an allocation of s < sample_left bytes is not sampled and counts it down by s); 0 until
     * the thread's generator is seeded, so a thread's first allocation takes the slow path. */
    uint64_t sample_left;
    uint64_t sample_rng; /* xorshift64* state, 0 = not seeded */
    uintptr_t stack_lo, stack_hi;
    uint64_t truncated; /* stacks cut at max_frames on this thread */
    /* Recent stacks of this thread: 64-bit hash of the frames -> depot id. A hit skips the
     * shared depot (its bucket and node are cache misses); a false hit needs two distinct
     * stacks with equal 64-bit hashes (odds ~1e-8 among a million stacks). */
    struct {
        uint64_t hash;
        uint32_t id;
    } stack_cache[LS_STACK_CACHE];
    ls_exit_state_t exit_state;
    int have_exit_state;
    /* reference counts (ls_refs.c): this thread's batch of free event slots (recycled ones and
     * a fresh range), so recording an event writes no shared cache line; its tid (0: unknown) */
    struct {
        uint32_t tid;
        uint32_t nfree;
        uint32_t free[64];       /* recycled slots, taken from the end */
        uint32_t bump, bump_end; /* fresh slots [bump, bump_end) */
        int keyed;               /* its slots go back when it exits (a pthread key's destructor) */
        int busy; /* inside ls_refs.c: a free from a signal handler leaves the refs alone */
    } refs;
    /* mode sites (ls_sites.c): this thread's counter shard (NULL until its first charge, and
     * again once the thread has folded it at exit: sites_gone), and its recent sites: key (the
     * caller's pc, or the hash of site_frames frames) -> site id, direct-mapped. */
    struct ls_site_ctr *sites_shard;
    int sites_gone;
    struct {
        uint64_t key;
        uint32_t id;
    } site_cache[LS_SITE_CACHE];
    /* The figures of the last refs chunks this thread wrote (ls_refs_check, exit summary). */
    struct {
        int valid;
        long findings;
        uint64_t referenced, errors;
    } refs_last;
} ls_tls_t;

extern __thread ls_tls_t ls__tls LS_HIDDEN;

void ls__thread_init_slow(ls_tls_t *t) LS_HIDDEN;

/* ---- memory for the agent itself (ls_mem.c): mmap-backed, never the host's allocator ------- */
void *ls__map(size_t size) LS_HIDDEN;       /* zeroed pages, NULL on failure (counted) */
void *ls__map_table(size_t size) LS_HIDDEN; /* same, populated now, huge pages if big */
void ls__unmap(void *p, size_t size) LS_HIDDEN;
void ls__mem_lock(void) LS_HIDDEN; /* for fork: no child inherits a held region lock */
void ls__mem_unlock(void) LS_HIDDEN;
void *ls__perm_alloc(size_t size) LS_HIDDEN; /* small permanent objects, 16-aligned */
/* Agent-owned ranges, excluded from the leak scan's roots. */
typedef struct ls_range {
    uintptr_t lo, hi;
} ls_range_t;
size_t ls__mem_ranges(ls_range_t *out, size_t max) LS_HIDDEN;

/* ---- diagnostics (ls_log.c): formatted with a stack buffer, written to fd 2 ------------------ */
void ls__log(const char *fmt, ...) LS_HIDDEN __attribute__((format(printf, 1, 2)));
void ls__error(const char *fmt, ...) LS_HIDDEN __attribute__((format(printf, 1, 2)));
uint64_t ls__now_ns(void) LS_HIDDEN; /* CLOCK_MONOTONIC since agent start */
void ls__spin_lock(_Atomic int *l) LS_HIDDEN;
static inline void ls__spin_unlock(_Atomic int *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

/* ---- live blocks
 * --------------------------------------------------------------------------------- */
/* A live block as the scan and the snapshot see it (collected from the bitmap and trailers). */
typedef struct ls_block {
    uintptr_t addr;
    uint64_t size_flags; /* low 48 bits: requested size; high 16: LS_BF_* */
    uint32_t stack;      /* stack depot id, 0 = none */
    uint32_t birth;      /* CLOCK_MONOTONIC_COARSE since start, in 2^20 ns (~1 ms) units */
} ls_block_t;

#define LS_SIZE_MASK  ((1ull << 48) - 1)
#define LS_BF_IGNORED (1ull << 48) /* ls_ignore(): treat as reachable */
#define LS_BF_DROP    (1ull << 51) /* scan only: freed by __libc_freeres under valgrind */

/*
 * The 16 bytes at the end of every block the agent allocates: the host asked for size, the
 * agent asked the real allocator for size + 16 and keeps this in the last 16 usable bytes.
 * Why a trailer and not a header: the host's pointer stays the real allocator's pointer, so
 * alignment, memalign and free need no arithmetic, a free never reads it, and glibc's own
 * pointers to the next chunk always lie past the block's end (a header in front made them look
 * like the program's pointers into the block, which the leak scan must not believe).
 */
typedef struct ls_trailer {
    uint64_t size_flags; /* requested size | LS_BF_* */
    uint32_t stack;
    uint32_t birth;
} ls_trailer_t;

#define LS_TRAILER sizeof(ls_trailer_t)

/* Birth stamps never go below this floor; markers raise it (ls_live.c explains why). */
extern _Atomic uint32_t ls__birth_floor LS_HIDDEN;
uint32_t ls__birth_now(void) LS_HIDDEN;
/* The trailer of block p (ours: its bit is set), from the real allocator's usable size. */
ls_trailer_t *ls__trailer(const void *p) LS_HIDDEN;

/* While set, frees of tracked blocks are parked (ls_interpose.c): a live snapshot reads their
 * trailers with the host running. begin: false when it cannot (no memory); end: frees the parked
 * blocks, returns how many. One reader at a time (under check_lock). */
extern _Atomic int ls__defer_frees LS_HIDDEN;
bool ls__defer_begin(void) LS_HIDDEN;
size_t ls__defer_end(void) LS_HIDDEN;

/* ---- ownership bitmap (ls_bitmap.c) ---------------------------------------------------------- */
bool ls__bm_init(void) LS_HIDDEN;
bool ls__bm_set(uintptr_t p) LS_HIDDEN; /* false: cannot record (address too high, no memory) */
bool ls__bm_test_clear(uintptr_t p) LS_HIDDEN; /* was p ours? (and it no longer is) */
bool ls__bm_test(uintptr_t p) LS_HIDDEN;
/* The nearest block start at or below p, at most max_back bytes below it; 0 when none. */
uintptr_t ls__bm_find_block(uintptr_t p, size_t max_back) LS_HIDDEN;
size_t ls__bm_foreach(void (*fn)(uintptr_t p, void *ctx), void *ctx) LS_HIDDEN;
/* Live blocks now (racy unless the world is stopped: a count, not a snapshot). */
size_t ls__bm_count(void) LS_HIDDEN;

/* ---- stack depot (ls_stackdepot.c) ----------------------------------------------------------- */
uint64_t ls__depot_hash(const uintptr_t *pcs, size_t n) LS_HIDDEN;
uint32_t ls__depot_intern(const uintptr_t *pcs, size_t n, uint64_t hash64) LS_HIDDEN;
/* Frames of id; returns count, *pcs points into the depot (valid forever). */
size_t ls__depot_get(uint32_t id, const uintptr_t **pcs) LS_HIDDEN;
uint32_t ls__depot_next_id(void) LS_HIDDEN; /* ids are handed out in increasing order */
/* Before the first stack, for mode sample: 2^14 buckets instead of 2^20 (a bucket array touched
 * at random costs the host a page per stack; sampled stacks are few). */
void ls__depot_small(void) LS_HIDDEN;
uint64_t ls__depot_count(void) LS_HIDDEN;
void ls__depot_after_fork_child(void) LS_HIDDEN;
void ls__depot_lock_all(void) LS_HIDDEN;
void ls__depot_unlock_all(void) LS_HIDDEN;

/* ---- stack capture (ls_capture.c, on top of ls_unwind.h) ---------------------------------------
 */
struct ls_uw_frame;
uint32_t ls__capture_stack(const struct ls_uw_frame *caller) LS_HIDDEN;

/* ---- loaded objects (ls_modules.c) ----------------------------------------------------------- */
void ls__modules_refresh(uint32_t first_stack) LS_HIDDEN; /* after init, dlopen, dlclose */
struct ls_fmt_writer;
size_t ls__modules_write(struct ls_fmt_writer *w) LS_HIDDEN;
void ls__modules_lock(void) LS_HIDDEN;
void ls__modules_unlock(void) LS_HIDDEN;

/* ---- /proc/self/maps without allocating (ls_maps.c) ------------------------------------------ */
typedef struct ls_mapping {
    uintptr_t lo, hi;
    bool r, w, x, shared;
    uint64_t offset;
    const char *path; /* "" for anonymous; "[heap]", "[stack]", ...; valid during the callback */
} ls_mapping_t;
/* Calls fn for each mapping in address order; stops early when fn returns nonzero.
 * Returns 0, or -1 when /proc/self/maps cannot be read. */
int ls__maps_foreach(int (*fn)(const ls_mapping_t *m, void *ctx), void *ctx) LS_HIDDEN;

/* ---- threads (ls_threads.c) ------------------------------------------------------------------ */
/* A thread the agent saw start through pthread_create; dead ones keep their range so the scan can
 * leave their (cached, stale) stacks out of the roots. */
typedef struct ls_thread_rec {
    _Atomic pid_t tid; /* 0 once dead */
    uintptr_t stack_lo, stack_hi;
    uintptr_t tp; /* thread pointer (struct pthread, the TCB): finds its DTV after death */
} ls_thread_rec_t;
void ls__threads_init(void) LS_HIDDEN;
void ls__threads_register_self(void) LS_HIDDEN;
size_t ls__threads_snapshot(ls_thread_rec_t *out, size_t max) LS_HIDDEN;
void ls__threads_after_fork_child(void) LS_HIDDEN;

/* ---- leak check and snapshot (ls_scan.c, ls_snapshot.c) ---------------------------------------
 */
typedef struct ls_check_result {
    ls_block_t *blocks; /* sorted by address */
    uint8_t *kind;      /* ls_fmt_block_kind_t per block */
    uint8_t *bflags;    /* LS_BLOCK_* per block */
    uint32_t *leader;   /* per block, LS_NO_LEADER unless indirectly lost */
    size_t n;
    size_t map_size; /* bytes mapped for the arrays above */
    uint64_t root_bytes, scan_ns;
    uint64_t pause_ns; /* how long the other threads stayed parked */
    unsigned threads_stopped, threads_unresponsive;
    bool checked; /* reachability computed */
} ls_check_result_t;

enum { LS_CHECK_EXIT, LS_CHECK_SIGNAL, LS_CHECK_LIVE };
/* Parks the other threads, copies the live table and, if classify, runs the reachability scan.
 * self_sp/self_regs describe the calling thread's live stack and registers. */
int ls__check_run(ls_check_result_t *res, bool classify, const ls_exit_state_t *self) LS_HIDDEN;
void ls__check_free(ls_check_result_t *res) LS_HIDDEN;
/* Writes a snapshot file atomically (PATH.tmp.PID, renamed). res->kind/bflags/leader may be NULL
 * (a live collection: no verdicts). trigger names what asked for it (META trigger), seq is the
 * live snapshot number (0 for exit). Returns 0 or an errno; reporting it is the caller's (the
 * program's stderr, or the peer that asked over the socket). */
int ls__snapshot_write(const char *path, const ls_check_result_t *res, int reason, int exit_status,
                       int signo, const char *trigger, uint64_t seq) LS_HIDDEN;
/* Expands pattern into buf: %p = pid, %n = seq, %% = %. */
void ls__snapshot_path(char *buf, size_t len, const char *pattern, uint64_t seq) LS_HIDDEN;
/* Expands %p in the output option, then appends suffix (may be NULL). */
void ls__output_path(char *buf, size_t len, const char *suffix) LS_HIDDEN;

/* ---- live snapshots and markers (ls_live.c) -------------------------------------------------- */
/* Lists the live blocks' addresses (address order) into out, at most cap; *missed counts the
 * rest. Then fills in each block from its trailer. Both need a heap that holds still: the other
 * threads parked, or (trailers) frees deferred. */
size_t ls__collect_addrs(ls_block_t *out, size_t cap, size_t *missed) LS_HIDDEN;
void ls__read_trailers(ls_block_t *out, size_t n) LS_HIDDEN;
/* Copies the live blocks with the other threads parked only for the copy (res->pause_ns). */
int ls__live_collect(ls_check_result_t *res) LS_HIDDEN;
typedef struct ls_live_info {
    uint64_t pause_ns;
    size_t blocks;
    char path[4096];
    char error[256];
} ls_live_info_t;
/* Takes a snapshot of the running process into path (NULL: the snapshot_output pattern), with a
 * leak check when asked. Returns 0, or -1 with the reason in info->error - or, with info NULL,
 * on stderr. Not from a signal handler. */
int ls__live_snapshot(const char *path, const char *trigger, bool leak_check,
                      ls_live_info_t *info) LS_HIDDEN;
uint64_t ls__snapshots_taken(void) LS_HIDDEN;
/* Places a marker; returns its seq (1, 2, ...) or -1 when the table is full. */
long ls__mark(const char *label, uint64_t *time_ns) LS_HIDDEN;
uint32_t ls__markers_count(void) LS_HIDDEN;
void ls__markers_after_fork_child(void) LS_HIDDEN;
uint64_t ls__markers_dropped(void) LS_HIDDEN;
void ls__markers_write(struct ls_fmt_writer *w) LS_HIDDEN;

/* ---- reference counts (ls_refs.c; docs/DESIGN.md "Reference counts") ----------------------- */
struct ls_uw_frame;
/* Nonzero once any object was registered: only then do frees look for objects in their block. */
extern _Atomic int ls__refs_active LS_HIDDEN;
/* The tracked heap block starting at p is being freed (free, or realloc moving it): objects
 * registered in it die (op FREE), with the stack captured from f (the frame of free's caller;
 * NULL: no stack - pass NULL when the thread's guard was already set on entry, as the unwinder
 * may be busy then). Never allocates. Cheap when no object lives in p: one lock-free load. */
void ls__refs_block_freed(const void *p, const struct ls_uw_frame *f) LS_HIDDEN;
/* May objects live in the tracked block starting at p? Lock-free; false positives possible, no
 * false negatives. realloc moves such blocks by hand, so the old address cannot be reused by
 * another thread before the objects in it are dead. */
bool ls__refs_block_has_objects(const void *p) LS_HIDDEN;
/* Type id for name (interned, 1, 2, ...; cut at 120 bytes; NULL is "(untyped)"); wrapped:
 * objects of this type come from run --refs. 0 when the type table is full. Any thread, any
 * time after init; never allocates. */
uint32_t ls__refs_type(const char *name, bool wrapped) LS_HIDDEN;
/* Entered a wrapped reference function (ls_hook.c): op LS_REF_OP_GET or LS_REF_OP_PUT on obj.
 * An object seen for the first time is registered with one reference (its constructor's), the
 * creation stack being its heap block's allocation stack. f: the frame of the function's caller.
 * Call it with the thread's guard CLEAR: like the public entry points it does nothing when the
 * guard is set (the agent is already busy on this thread, e.g. a signal handler interrupted it)
 * or the agent is not READY, and sets the guard itself while it works. */
void ls__refs_wrapped(int op, uint32_t type, const void *obj,
                      const struct ls_uw_frame *f) LS_HIDDEN;
/*
 * Snapshots. ls__refs_view_take copies the whole refs state (live objects with their histories,
 * findings, learned pairs, types, counters) with every refs lock held, so the host's gets and
 * puts wait only for the copy, never for the disk; the writer then works from the copy. NULL
 * when no object was ever registered (or no memory for the copy: counted, reported).
 */
typedef struct ls_refs_view ls_refs_view_t;
ls_refs_view_t *ls__refs_view_take(void) LS_HIDDEN;
void ls__refs_view_free(ls_refs_view_t *v) LS_HIDDEN;
/* Appends the stack ids the refs chunks name (objects, events, findings, pairs) to ids, at most
 * cap; returns how many it wanted to write (may exceed cap: call again bigger). */
size_t ls__refs_stack_ids(const ls_refs_view_t *v, uint32_t *ids, size_t cap) LS_HIDDEN;
/* Writes the REF_* chunks of v and returns the number of findings: error occurrences so far
 * plus live objects holding references (ls__refs_view_take also leaves these figures in
 * ls__tls.refs_last, for ls_refs_check and the exit summary). */
long ls__refs_write(struct ls_fmt_writer *w, const ls_refs_view_t *v) LS_HIDDEN;
/* STATS items of the refs (LS_STAT_REF_*), inside the caller's open STATS chunk. */
void ls__refs_write_stats(struct ls_fmt_writer *w, const ls_refs_view_t *v) LS_HIDDEN;
void ls__refs_lock_all(void) LS_HIDDEN; /* fork: every refs lock, in lock order */
void ls__refs_unlock_all(void) LS_HIDDEN;
void ls__refs_after_fork_child(void) LS_HIDDEN; /* the child keeps the parent's objects */

/* ---- wrapped reference functions (ls_hook.c): run --refs, option refs= ----------------------- */
/* Installs entry hooks on the functions named by the refs option that are loaded now; again after
 * each dlopen (new objects only). Errors are reported on stderr once per function. */
void ls__hooks_install(void) LS_HIDDEN;

/* ---- mode sample (ls_sample.c) --------------------------------------------------------------- */
/* The interposers' first test. 0: mode full, or not ready yet; 1 (release, once the agent is
 * ready to sample): mode sample; 2: mode sample, and the control thread is wanted (ls_control.c).
 * Never 0 again once set. */
extern _Atomic int ls__sampling LS_HIDDEN;
/*
 * The free path's first test in mode sample: per 4 KiB page of the address space, how many
 * sampled blocks start in it (saturating at 255, which then stays). Two levels like the bitmap:
 * 2^20 pointers, one per 256 MiB, to 64 KiB of counters. One byte per page of heap is dense
 * enough to stay in cache (the bitmap has a bit per 16 bytes: a free of an unsampled block
 * missed the cache in it). A page counts a block before the block's bit is set and forgets it
 * after the bit is cleared, so a zero count proves the block unsampled.
 */
extern uint8_t *_Atomic *ls__sample_pages LS_HIDDEN;
static inline bool ls__sample_page_maybe(uintptr_t p)
{
    /* An address above 2^48 aliases one below: at worst a false "maybe" (none is ever counted). */
    uint8_t *l2 =
        atomic_load_explicit(&ls__sample_pages[(p >> 28) & ((1u << 20) - 1)], memory_order_acquire);
    return l2 && l2[(p >> 12) & 0xffff];
}
/* Before the block's bit is set; false (no memory): the block must stay out of the bitmap. */
bool ls__sample_page_add(uintptr_t p) LS_HIDDEN;
void ls__sample_page_del(uintptr_t p) LS_HIDDEN; /* after its bit is cleared */
/* Pins the pages of [lo, hi) at "maybe" for good: frees there always take the slow path. */
void ls__sample_pages_pin(uintptr_t lo, uintptr_t hi) LS_HIDDEN;
/* Pins the bootstrap buffer (ls_interpose.c): the fast free path then need not test for it. */
void ls__boot_pin_pages(void) LS_HIDDEN;
/* Checks the sample options, maps the per-stack table, then sets ls__g.sampling. Called by
 * ls__init in mode sample, just before the agent turns READY. false: cannot sample. */
bool ls__sample_init(void) LS_HIDDEN;
/* The calling thread's countdown cannot absorb an allocation of size bytes (size >=
 * ls__tls.sample_left). Seeds the thread's generator on its first call, draws the next
 * interval. true: sample this allocation; false: not (it fitted the first interval, or the agent
 * cannot track it now: not ready, or busy on this thread). */
bool ls__sample_cross(size_t size) LS_HIDDEN;
/* Adds one sampled allocation of size bytes at stack to the per-stack cumulative table
 * (SAMPLE_ALLOCS). Takes a leaf spin lock; never allocates. */
void ls__sample_record(uint32_t stack, size_t size) LS_HIDDEN;
/* p(size) = 1 - exp(-size / sample_rate): the probability that an allocation is sampled. */
double ls__sample_prob(uint64_t size) LS_HIDDEN;
/* A copy of the table, taken under its lock (the host waits for a memcpy, never for the disk). */
typedef struct ls_sample_view {
    ls_fmt_sample_alloc_t *recs;
    size_t n, map_size;
} ls_sample_view_t;
void ls__sample_view_take(ls_sample_view_t *v) LS_HIDDEN; /* v->n = 0 when empty or no memory */
void ls__sample_view_free(ls_sample_view_t *v) LS_HIDDEN;
void ls__sample_write(struct ls_fmt_writer *w, const ls_sample_view_t *v) LS_HIDDEN;
void ls__sample_lock(void) LS_HIDDEN; /* fork */
void ls__sample_unlock(void) LS_HIDDEN;
void ls__sample_after_fork_child(void) LS_HIDDEN; /* a fresh random stream for the child */

/* ---- mode sites (ls_sites.c; docs/DESIGN.md "Mode sites") -----------------------------------
 * Exact per-site counters of every allocation (the kernel's /proc/allocinfo in user space).
 * ls__sampling is 3 in mode sites (2 while the lazy control thread is wanted, as in mode sample:
 * ls__sites_mode then tells which fast value to restore). Every block allocated while counting
 * is on carries a 16-byte header just before the host's pointer p:
 *   word0 = size (bits 0-39) | site id (bits 40-59) | la (bits 60-63)
 *   word1 = word0 ^ p ^ ls__sites.secret
 * la = 0: the real block starts at p - 16; la = 1..15: it starts at p - 2^(la + 4) (aligned
 * allocations with an alignment above 16). A free reads p - 16 (always mapped: glibc's chunk
 * header sits there for a block that is not ours) and believes word1 only if it matches; a
 * false match needs the program to guess the 64-bit random secret.
 */
#define LS_SITE_SIZE_BITS 40
#define LS_SITE_SIZE_MASK ((1ull << LS_SITE_SIZE_BITS) - 1)
#define LS_SITE_ID_BITS   20
#define LS_SITES_MAX      (1u << LS_SITE_ID_BITS) /* ids 1..2^20-1; 0 = the overflow site */
#define LS_SITE_HDR       16

/* A site's counters in one shard: the live figures are allocs - frees and bytes - freed_bytes
 * of the sum over shards (so an allocation and a free each change two counters). */
typedef struct ls_site_ctr {
    uint64_t allocs, bytes, frees, freed_bytes;
} ls_site_ctr_t;

typedef struct ls_sites_global {
    uint64_t secret; /* header check (above) */
    /* LS_SITES_ON: counting enabled (sites_enabled, ls_sites_enable, sites_signal), plus
     * LS_SITES_FRAMES when site_frames > 1, so that malloc's common case tests one word. */
    _Atomic int on;
    int frames; /* site_frames: 1 = the caller's return address */
    bool mode;  /* mode sites: set before ls__sampling = 3 (release) */
} ls_sites_global_t;
#define LS_SITES_ON     1
#define LS_SITES_FRAMES 2

/* The thread's site cache slot of key (a return address, or a hash of site_frames frames). */
static inline size_t ls__site_slot(uint64_t key)
{
    return (size_t)(key ^ (key >> 8)) & (LS_SITE_CACHE - 1);
}
extern ls_sites_global_t ls__sites LS_HIDDEN;

/* Maps the tables, draws the secret, installs sites_signal, then sets ls__sampling = 3. Called
 * by ls__init in mode sites just before READY. false: cannot count (no memory). */
bool ls__sites_init(void) LS_HIDDEN;
/* The calling thread's shard when it has none yet (maps or reuses one, registers it); NULL when
 * the thread already folded its shard (exiting) or no memory: charge through ls__sites_charge. */
ls_site_ctr_t *ls__sites_shard_slow(void) LS_HIDDEN;
/* Charges (sign +1) or uncharges (-1) without a shard: atomic adds to the retired shard. */
void ls__sites_charge_retired(uint32_t id, uint64_t size, int sign) LS_HIDDEN;
/* Site id of key pc (site_frames = 1) on a miss of the thread's cache; fills the cache. */
uint32_t ls__site_of_pc_slow(uintptr_t pc) LS_HIDDEN;
struct ls_uw_frame;
/* Site id of the site_frames innermost frames from f (site_frames > 1). */
uint32_t ls__site_of_frames(const struct ls_uw_frame *f) LS_HIDDEN;
/* Snapshots: the sum of every shard (ls_sites.c says how exact). */
typedef struct ls_sites_view {
    ls_fmt_site_t *recs;
    size_t n, map_size;
} ls_sites_view_t;
void ls__sites_view_take(ls_sites_view_t *v) LS_HIDDEN;
void ls__sites_view_free(ls_sites_view_t *v) LS_HIDDEN;
void ls__sites_write(struct ls_fmt_writer *w, const ls_sites_view_t *v) LS_HIDDEN;
void ls__sites_lock(void) LS_HIDDEN; /* fork */
void ls__sites_unlock(void) LS_HIDDEN;
void ls__sites_after_fork_child(void) LS_HIDDEN; /* folds the other threads' shards */
/* Mode sample or sites sets ls__sampling; these tell them apart (after an acquire load != 0). */
static inline bool ls__mode_sites(void)
{
    return ls__sites.mode;
}

/* The site id a slow lookup returns for a call that must fail (fault injection, below): it is
 * not counted, the caller returns NULL with errno ENOMEM and records it (ls__sites_fail_record). */
#define LS_SITE_FAILED 0x80000000u
/* Records the injected failure of a call at site id (its rule) with the stack from f. */
void ls__sites_fail_record(uint32_t id, const struct ls_uw_frame *f) LS_HIDDEN;

/* ---- compile-time tags (ls_tags.c; include/leakscope/tags.h) --------------------------------
 * A tagged call reaches ls_agent_tag_* (asm dispatchers in ls_interpose.c: mode sites goes to
 * ls__tag_*_sites, every other mode to the ordinary interposer, as if the program had called it).
 * A tag's site is assigned when its module registers (or at its first call if earlier) and cached
 * in the tag; the tag's strings are copied, so a module may be dlclose'd. */
struct ls_tag;
/* The site of tag t (id | LS_SITE_FAILED when this call must fail); caches it in t unless the
 * site has a fail rule. */
uint32_t ls__tag_site_slow(struct ls_tag *t) LS_HIDDEN;
/* ls_sites.c: the site of tag t, created with TAGS index tag1 (1-based) if new (*created). */
uint32_t ls__site_of_tag(const struct ls_tag *t, uint32_t tag1, bool *created) LS_HIDDEN;
/* The fault injection rule of site id (0: none), and one call there: id, or id | LS_SITE_FAILED
 * when the call must fail. */
uint32_t ls__site_fail_rule(uint32_t id) LS_HIDDEN;
uint32_t ls__site_fire(uint32_t id) LS_HIDDEN;
/* Called by ls__sites_init once the site table exists: registers the modules that registered
 * before (their constructors may run before the agent's). */
void ls__tags_sites_ready(void) LS_HIDDEN;
void ls__tags_write(struct ls_fmt_writer *w) LS_HIDDEN; /* TAGS chunk (mode sites) */
void ls__tags_lock(void) LS_HIDDEN;                     /* fork */
void ls__tags_unlock(void) LS_HIDDEN;
void ls__tags_after_fork_child(void) LS_HIDDEN;

/* ---- fault injection (ls_fail.c; option fail) -----------------------------------------------
 * Rules (docs/leakscope.1, FAULT INJECTION) match allocating calls by their return address
 * (module + offset range) or compile-time tag (file and line, or function); a matching call
 * fails by the rule's schedule (nth, every, probability with a seed). Modes full and sites.
 * Lock order: its resolve lock comes after the sites table lock (mode sites matches a new site
 * under it) and is held across dl_iterate_phdr (the loader's lock), never across the depot. */
extern int ls__fail_on LS_HIDDEN; /* nonzero once rules are parsed (set by ls__fail_init) */
/* Parses ls__g.opt.fail (before READY, before the mode's init); a bad rule is reported and no
 * rule is active; mode sample ignores the rules (reported once). */
void ls__fail_init(void) LS_HIDDEN;
/* Rule (1-based) that a call returning to pc matches, 0 if none. Lock-free, a binary search,
 * once the rules' modules are loaded; while one is not, it first asks the loader whether
 * objects were added (dl_iterate_phdr: the loader's lock, no malloc), so it must not be called
 * with a lock the loader's callers may wait for. Mode full asks per call, mode sites per site. */
int ls__fail_match_pc(uintptr_t pc) LS_HIDDEN;
/* Rule (1-based) that tagged calls of t match, 0 if none (asked once per tag). */
int ls__fail_match_tag(const struct ls_tag *t) LS_HIDDEN;
/* One matching call of rule r: counts it; true when it must fail now. Thread-safe. */
bool ls__fail_fire(int r) LS_HIDDEN;
/* Records an injected failure of rule r, with the stack from f (bounded table; beyond it the
 * failure is counted only). Caller: guard may be set or not; never allocates. */
void ls__fail_record(int r, const struct ls_uw_frame *f) LS_HIDDEN;
/* The active rules (the option, or the contents of fail=@FILE) for META fail; NULL: none. */
const char *ls__fail_rules(void) LS_HIDDEN;
/* After dlopen/dlclose: the rules' modules are looked up again before the next match. */
void ls__fail_modules_changed(void) LS_HIDDEN;
/* Snapshots: a copy of the FAULTS records (n = 0 without rules or memory). */
typedef struct ls_fail_view {
    ls_fmt_fault_t *recs;
    size_t n, map_size;
} ls_fail_view_t;
void ls__fail_view_take(ls_fail_view_t *v) LS_HIDDEN;
void ls__fail_view_free(ls_fail_view_t *v) LS_HIDDEN;
/* FAULTS chunk, STATS fail_* items: both only when rules are active (META fail then too). */
void ls__fail_write(struct ls_fmt_writer *w, const ls_fail_view_t *v) LS_HIDDEN;
void ls__fail_write_stats(struct ls_fmt_writer *w) LS_HIDDEN;
void ls__fail_lock(void) LS_HIDDEN; /* fork */
void ls__fail_unlock(void) LS_HIDDEN;
void ls__fail_after_fork_child(void) LS_HIDDEN;

/* ---- control channel (ls_control.c) ---------------------------------------------------------- */
/* Starts the control thread (socket, snapshot signal, interval snapshots) if the options ask for
 * it. Called before main and in a fork child; idempotent per process. */
void ls__control_start(void) LS_HIDDEN;
void ls__control_after_fork_child(void) LS_HIDDEN;
/* Mode sample's lazy start (ls_control.c head comment): poke is async-signal-safe and asks for
 * the thread (ls__sampling 1 -> 2); wake, called by the dispatcher's other branch on a host
 * allocator call, creates it. */
void ls__control_poke(void) LS_HIDDEN;
void ls__control_wake(void) LS_HIDDEN;
/* Exit path: waits for a request in flight, then keeps the thread from taking another (it goes
 * dormant). Returns true when a control thread exists (the process has one thread more). */
bool ls__control_quiesce(void) LS_HIDDEN;
/* Removes this process's socket (exit path). */
void ls__control_stop(void) LS_HIDDEN;
/* The whole exit path: check, write, summary. Runs once per process image. */
void ls__at_exit(int reason, int status, int signo, const ls_exit_state_t *st) LS_HIDDEN;

#endif
