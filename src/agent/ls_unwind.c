/*
 * ls_unwind.c - call-stack capture for the agent (x86-64 Linux): our cached DWARF-CFI unwinder,
 * a frame-pointer walker, and libunwind's unw_backtrace as the reference.
 *
 * Owns: the global per-PC rule cache, the .eh_frame_hdr/.eh_frame parser and CFA-program
 * interpreter that fill it on a miss, the signal-frame (__restore_rt) special case, the
 * libunwind wrapper and a malloc-free stack-top lookup.
 *
 * Data shapes:
 *  - rule (uint64_t): how to step from one PC to its caller, see LS__RULE below:
 *      bits  0..31  s32  CFA offset (or, for LS__K_NOFDE, the module-add count it was made at)
 *      bits 32..35  kind: CFA = RSP+off | RBP+off | *(RBP+off) (these three with the return
 *                   address at CFA-8) | signal frame | end | stop | general (any RA offset)
 *      bits 36..37  where the caller's RBP is: unchanged | at CFA+bp | at RBP+bp | lost
 *      bits 38..39  for the general kind: the CFA base, as the kind numbers of the first three
 *      bits 40..47  s8   return-address offset from the CFA, in words (-1 but for "general")
 *      bits 48..63  s16  RBP save offset, in words
 *  - key (uint64_t) = (pc << 1 | exact) | gen << 48: exact = 0 for a return address (its rule
 *    is compiled for pc - 1, the call), 1 for a PC interrupted by a signal (rule at pc itself);
 *    gen is the module generation, bumped by ls__unwind_modules_changed so old rules stop
 *    matching.
 *  - cache: 2^LS_UW_CACHE_BITS slots of 16 bytes {tag = key ^ mix(rule), rule} in 4-way sets
 *    (one cache line each), mmap'd once, shared by all threads, written and read without locks.
 *    A reader accepts a slot only when tag ^ mix(rule) == key, so a torn slot (half old, half
 *    new) or two racing writers yield a miss, never a rule for the wrong PC (the 64-bit mix
 *    makes a false match ~2^-64). Sets, not a direct-mapped table, because a miss costs ~300 ns
 *    to 1 us: two hot PCs must not keep evicting each other.
 *    Build with -DLS_UW_SEQLOCK=1 for the per-slot seqlock variant, kept for the benchmark.
 *
 * A rule holds no pointer into any object, so a stale rule can give a wrong stack but never a
 * fault: every load from the stack is bounds-checked. The miss path runs inside
 * dl_iterate_phdr's callback, where the loader lock keeps the object mapped while we read it.
 *
 * The miss path reads the object's unwind sections through views (ls__uw_view): in full mode a
 * view is the mapping itself; in small mode (mode sample) the bytes of non-writable segments are
 * copied with pread() from the object's file into stack buffers, so that no page of
 * .eh_frame_hdr or .eh_frame becomes resident in the host. Readers carry the delta from buffer to
 * original address for pc-relative pointers. The files: a small table of descriptors, one per
 * recently used object, each checked once against the mapping (ls__uw_file_of).
 *
 * libunwind is not linked: ls__unwind_libunwind_load dlopen()s it on request.
 */
#define _GNU_SOURCE
#include "ls_unwind.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h> /* types and symbol names only: the library is dlopen'd */

#ifndef LS_UW_CACHE_BITS
#define LS_UW_CACHE_BITS 16 /* 64K slots, 1 MiB */
#endif
#define LS_UW_SMALL_BITS 11 /* ls__unwind_init_small: 2K slots, 32 KiB */
#ifndef LS_UW_SEQLOCK
#define LS_UW_SEQLOCK 0
#endif
#define LS_UW_CACHE_SIZE  (1u << LS_UW_CACHE_BITS)
#define LS_UW_WAYS_LOG    2 /* 4-way sets: one 64-byte line per set */
#define LS_UW_WAYS        (1u << LS_UW_WAYS_LOG)
#define LS_UW_STACK_GUESS (64ul << 20) /* plausibility window when stack_hi is unknown */
#define LS_UW_ADDR_LIMIT  (1ul << 47)  /* user space; keys need addr < 2^47 */
#define LS_UW_GEN_SHIFT   48
#define LS_UW_GEN_MAX     0xffffu
#define LS_UW_REMEMBER    8   /* DW_CFA_remember_state depth */
#define LS_UW_LU_BUF      512 /* frames buffered for unw_backtrace */
#define LS_UW_LIBUNWIND   "libunwind.so.8"
/* Small mode's pread buffers, on the stack of the thread that misses (records longer than
 * these, never seen in libc, libstdc++ or python3, are read from the mapping). */
#define LS_UW_FDE_BUF   1024 /* an FDE: at most 760 bytes in libstdc++, 99% under 140 */
#define LS_UW_CIE_BUF   256  /* a CIE: 24-32 bytes */
#define LS_UW_TAB_BLOCK 128  /* .eh_frame_hdr entries read at once once the search is narrow */
#define LS_UW_FILES     8    /* objects whose descriptor we keep */
#define LS_UW_SAMPLES   128  /* search-table entries kept per object (every k-th) */
#define LS_UW_CIE_KEEP  64   /* the last CIE's bytes kept per object */
#define LS_UW_FD_MIN    900  /* where those descriptors are moved, out of the host's way */

#define ls__likely(x)   __builtin_expect(!!(x), 1)
#define ls__unlikely(x) __builtin_expect(!!(x), 0)

typedef uintptr_t __attribute__((may_alias)) ls__uw_word_t;

/* ---- rules ----------------------------------------------------------------------------------- */

enum {
    LS__K_EMPTY = 0, /* never stored: an all-zero slot matches no key (gen >= 1) */
    LS__K_RSP,       /* CFA = RSP + off */
    LS__K_RBP,       /* CFA = RBP + off */
    LS__K_DEREF,     /* CFA = *(RBP + off): stack-realigning functions (DRAP) after the prologue */
    LS__K_SIGNAL,    /* __restore_rt: a ucontext_t lies at RSP */
    LS__K_END,       /* return address undefined (_start, clone): outermost frame */
    LS__K_NOSIMPLE,  /* CFI we cannot express (PLT expressions, CFA in r10...): stop here */
    LS__K_NOFDE,     /* no object or no FDE covers the PC: stop here */
    LS__K_GENERAL,   /* CFA from base (bits 38..39: RSP, RBP, *RBP) + off, RA at CFA + ra */
};
enum {
    LS__BP_SAME = 0, /* caller's RBP = this RBP */
    LS__BP_CFA,      /* caller's RBP saved at CFA + bp */
    LS__BP_RBP,      /* caller's RBP saved at RBP + bp (DRAP frames) */
    LS__BP_LOST,     /* unknown: a caller whose CFA needs RBP ends the walk */
};

#define LS__RULE(kind, off, bpmode, ra_words, bp_words)                                            \
    ((uint64_t)(uint32_t)(int32_t)(off) | (uint64_t)(kind) << 32 | (uint64_t)(bpmode) << 36 |      \
     (uint64_t)(uint8_t)(int8_t)(ra_words) << 40 | (uint64_t)(uint16_t)(int16_t)(bp_words) << 48)
#define LS__R_OFF(r)  ((intptr_t)(int32_t)(uint32_t)(r))
#define LS__R_KIND(r) ((unsigned)((r) >> 32) & 15u)
#define LS__R_BPM(r)  ((unsigned)((r) >> 36) & 3u)
#define LS__R_RA(r)   ((intptr_t)(int8_t)(uint8_t)((r) >> 40) * 8)
#define LS__R_BP(r)   ((intptr_t)(int16_t)(uint16_t)((r) >> 48) * 8)

/* ---- global state ---------------------------------------------------------------------------- */

#if LS_UW_SEQLOCK
typedef struct ls__uw_slot {
    uint64_t seq, key, rule, pad;
} ls__uw_slot_t;
#else
typedef struct ls__uw_slot {
    uint64_t tag, rule;
} ls__uw_slot_t;
#endif

static ls__uw_slot_t *ls__uw_cache;
static uint64_t ls__uw_gen = 1;   /* 1..LS_UW_GEN_MAX, part of every key */
static uint32_t ls__uw_adds;      /* bumped on dlopen: revalidates cached "no FDE" rules */
static uint64_t ls__uw_gen_bumps; /* total bumps, to clear the table when gen wraps */

/* Stats: striped by thread so the hot path does a plain add on a line it (mostly) owns. Past
 * LS_UW_STRIPES threads two may share a stripe and lose an increment now and then. */
#define LS_UW_STRIPES 64
typedef struct ls__uw_ctr {
    uint64_t hits, misses, no_rule, bad_cfa;
} __attribute__((aligned(64))) ls__uw_ctr_t;
static ls__uw_ctr_t ls__uw_ctr[LS_UW_STRIPES];
static unsigned ls__uw_next_stripe;
static __thread unsigned ls__uw_stripe; /* 0 = not yet assigned, else index + 1 */

static ls__uw_ctr_t *ls__uw_my_ctr(void)
{
    unsigned s = ls__uw_stripe;
    if (ls__unlikely(s == 0)) {
        s = __atomic_fetch_add(&ls__uw_next_stripe, 1, __ATOMIC_RELAXED) % LS_UW_STRIPES + 1;
        ls__uw_stripe = s;
    }
    return &ls__uw_ctr[s - 1];
}

static inline void ls__uw_count(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* murmur3 finalizer: a bijection with mix(0) = 0, so an empty slot {0, 0} matches no key. */
static inline uint64_t ls__uw_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Set of a lookup address: on the critical path (pc -> set -> rule -> CFA -> next pc), so two
 * parallel shifts and an xor of the low 22 bits, no multiply. Neither the generation nor the
 * exact bit take part, so a PC's new rule replaces its stale one in place. */
#define LS__SET_BYTES (sizeof(ls__uw_slot_t) * LS_UW_WAYS)
#define LS__SET_SHIFT (__builtin_ctz(LS__SET_BYTES))
static size_t ls__uw_slots = LS_UW_CACHE_SIZE; /* ls__unwind_init_small: fewer */
static size_t ls__uw_set_mask = (size_t)(LS_UW_CACHE_SIZE / LS_UW_WAYS - 1) << LS__SET_SHIFT;
static inline ls__uw_slot_t *ls__uw_set_of(ls__uw_slot_t *cache, uintptr_t pc)
{
    size_t off = ((pc << LS__SET_SHIFT) ^ (pc >> 8)) & ls__uw_set_mask;
    return (ls__uw_slot_t *)(void *)((char *)cache + off);
}

static inline uintptr_t ls__uw_key_pc(uint64_t key)
{
    return (uintptr_t)((key & ((1ull << LS_UW_GEN_SHIFT) - 1)) >> 1);
}

/* The key a slot holds (or garbage for a torn or empty slot, which then matches nothing). */
static inline uint64_t ls__uw_slot_key(const ls__uw_slot_t *s, uint64_t *rule)
{
#if LS_UW_SEQLOCK
    uint64_t q1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    uint64_t k = __atomic_load_n(&s->key, __ATOMIC_RELAXED);
    uint64_t r = __atomic_load_n(&s->rule, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* x86: a compiler barrier */
    uint64_t q2 = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    *rule = r;
    return q1 == q2 && !(q1 & 1) ? k : 0;
#else
    uint64_t r = __atomic_load_n(&s->rule, __ATOMIC_RELAXED);
    uint64_t t = __atomic_load_n(&s->tag, __ATOMIC_RELAXED);
    *rule = r;
    return t ^ ls__uw_mix(r);
#endif
}

/* Looks key up in its set. Sets fill from way 0 and few hold two live keys, so the hit is
 * nearly always the first compare; the compare is off the data path (the CPU predicts the hit
 * and runs on with the rule). */
static inline bool ls__uw_probe(ls__uw_slot_t *cache, uintptr_t pc, uint64_t key, uint64_t *rule)
{
    ls__uw_slot_t *set = ls__uw_set_of(cache, pc);
    for (unsigned w = 0; w < LS_UW_WAYS; w++)
        if (ls__likely(ls__uw_slot_key(&set[w], rule) == key)) return true;
    return false;
}

static void ls__uw_store(ls__uw_slot_t *s, uint64_t key, uint64_t rule)
{
#if LS_UW_SEQLOCK
    uint64_t q = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    /* A writer already in this slot, or we lost the race: skip, the next miss retries. */
    if ((q & 1) ||
        !__atomic_compare_exchange_n(&s->seq, &q, q + 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&s->key, key, __ATOMIC_RELAXED);
    __atomic_store_n(&s->rule, rule, __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, q + 2, __ATOMIC_RELEASE);
#else
    /* No lock: two racing writers may leave {tag of one, rule of the other}, which matches no
     * key and is overwritten by a later miss. */
    __atomic_store_n(&s->rule, rule, __ATOMIC_RELAXED);
    __atomic_store_n(&s->tag, key ^ ls__uw_mix(rule), __ATOMIC_RELAXED);
#endif
}

/* Inserts into key's set: the way already holding this PC (any generation), else the first way
 * not live in the current generation, else a pseudo-random way. */
static void ls__uw_insert(ls__uw_slot_t *cache, uint64_t key, uint64_t rule)
{
    const uint64_t addr_mask = (1ull << LS_UW_GEN_SHIFT) - 1;
    ls__uw_slot_t *set = ls__uw_set_of(cache, ls__uw_key_pc(key));
    unsigned victim = LS_UW_WAYS;
    for (unsigned w = 0; w < LS_UW_WAYS; w++) {
        uint64_t r, k = ls__uw_slot_key(&set[w], &r);
        if ((k & addr_mask) == (key & addr_mask)) {
            victim = w;
            break;
        }
        /* Empty slots decode to gen 0, which is never current. */
        if (victim == LS_UW_WAYS && (k & ~addr_mask) != (key & ~addr_mask)) victim = w;
    }
    if (victim == LS_UW_WAYS) victim = (unsigned)(ls__uw_mix(key) >> (64 - LS_UW_WAYS_LOG));
    ls__uw_store(&set[victim], key, rule);
}

/* ---- bounded readers over one mapped segment ------------------------------------------------- */

/* Bytes [p, end) of a view; the byte at p was read from address p + delta (0 when the view is
 * the mapping itself, else the distance from a pread buffer to the original). */
typedef struct ls__uw_rd {
    const uint8_t *p, *end;
    bool bad;
    uintptr_t delta;
} ls__uw_rd_t;

static uint64_t ls__uw_fixed(ls__uw_rd_t *r, size_t n)
{
    uint64_t v = 0;
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return 0;
    }
    memcpy(&v, r->p, n); /* little-endian; a fixed-size memcpy is a plain load */
    r->p += n;
    return v;
}

static inline uint8_t ls__uw_u8(ls__uw_rd_t *r)
{
    return (uint8_t)ls__uw_fixed(r, 1);
}

static uint64_t ls__uw_uleb(ls__uw_rd_t *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b = ls__uw_u8(r);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    r->bad = true;
    return 0;
}

static int64_t ls__uw_sleb(ls__uw_rd_t *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b = ls__uw_u8(r);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (shift + 7 < 64 && (b & 0x40)) v |= ~0ull << (shift + 7);
            return (int64_t)v;
        }
    }
    r->bad = true;
    return 0;
}

/* Small mode: one recently used object and its file, with what we keep of its unwind tables so
 * that a miss costs few system calls (fstat, a block of the search table, the FDE). Misses run
 * inside dl_iterate_phdr, which serializes them (glibc holds its loader lock across the
 * callbacks); ls__uw_files_busy guards the table anyway (a miss that finds it taken reads the
 * mapping). */
typedef struct ls__uw_file {
    uintptr_t base;   /* dlpi_addr and */
    const void *phdr; /* dlpi_phdr name the loaded object (NULL: free entry) */
    uint64_t gen;     /* ls__uw_gen when checked: after a dlclose another object may sit here */
    uint64_t used;    /* last use, for eviction */
    int fd;           /* -1: no usable file, read the mapping (the verdict is kept) */
    dev_t dev;        /* what fd was: the host may close it, or close it and reuse the number */
    ino_t ino;
    /* .eh_frame_hdr's search table (hdr = 0: not read yet), and every k-th entry's start,
     * read as binary searches first need them: later searches start within k entries. */
    uintptr_t hdr, tab;
    size_t n, k;
    uint64_t have[LS_UW_SAMPLES / 64];
    int32_t sample[LS_UW_SAMPLES];
    /* The last CIE read (most objects have one to three): cie_len = 0 for none. */
    uintptr_t cie;
    size_t cie_len;
    uint8_t cie_bytes[LS_UW_CIE_KEEP];
} ls__uw_file_t;

/* The object being read: for bounds (indirect pointers must land in one of its segments), and
 * in small mode its file (fd -1, file NULL: read the mapping). */
typedef struct ls__uw_obj {
    const struct dl_phdr_info *info;
    int fd;
    ls__uw_file_t *file;
} ls__uw_obj_t;

/* Bounds of the PT_LOAD segment of obj that contains addr; false if none. */
static bool ls__uw_segment(const ls__uw_obj_t *o, uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
    for (int i = 0; i < o->info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &o->info->dlpi_phdr[i];
        uintptr_t s = o->info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_R) && addr - s < ph->p_memsz) {
            *lo = s;
            *hi = s + ph->p_memsz;
            return true;
        }
    }
    return false;
}

/*
 * A view of o's bytes from address a on: the pointer returned holds *got of them. With no file
 * (o->fd < 0), or in a writable segment (relocated: its bytes differ from the file's), the view
 * is the mapping itself up to the segment's end. Otherwise pread() copies at most cap bytes, up
 * to the end of the segment's file part, into buf, touching no page of the mapping; a failed
 * read falls back to the mapping. NULL if a lies in no readable segment of o.
 */
static const uint8_t *ls__uw_view(const ls__uw_obj_t *o, uintptr_t a, uint8_t *buf, size_t cap,
                                  size_t *got)
{
    *got = 0;
    for (int i = 0; i < o->info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &o->info->dlpi_phdr[i];
        uintptr_t off = a - (o->info->dlpi_addr + ph->p_vaddr);
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_R) || off >= ph->p_memsz) continue;
        if (o->fd >= 0 && !(ph->p_flags & PF_W) && off < ph->p_filesz && cap > 0) {
            size_t n = ph->p_filesz - off < cap ? ph->p_filesz - off : cap;
            ssize_t r;
            do r = pread(o->fd, buf, n, (off_t)(ph->p_offset + off));
            while (r < 0 && errno == EINTR);
            if (r > 0) {
                *got = (size_t)r;
                return buf;
            }
        }
        *got = ph->p_memsz - off;
        return (const uint8_t *)a;
    }
    return NULL;
}

/* A view of the whole CIE or FDE at a: as ls__uw_view, but a record longer than cap is viewed in
 * the mapping (rare: see LS_UW_FDE_BUF). cap >= 12. */
static const uint8_t *ls__uw_view_record(const ls__uw_obj_t *o, uintptr_t a, uint8_t *buf,
                                         size_t cap, size_t *got)
{
    const uint8_t *p = ls__uw_view(o, a, buf, cap, got);
    if (p != buf || *got < cap) return p; /* the mapping, or all the segment has left */
    uint32_t len32;
    uint64_t need;
    memcpy(&len32, p, 4);
    if (len32 == 0xffffffffu) {
        memcpy(&need, p + 4, 8);
        need = need > UINT64_MAX - 12 ? UINT64_MAX : need + 12;
    } else {
        need = (uint64_t)len32 + 4;
    }
    if (need <= *got) return p;
    const ls__uw_obj_t mem = {o->info, -1, NULL};
    return ls__uw_view(&mem, a, NULL, 0, got);
}

static inline int32_t ls__uw_s32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

enum { LS__PE_OMIT = 0xff, LS__PE_INDIRECT = 0x80 };

/* Reads a DW_EH_PE_* encoded pointer. datarel is the base for DW_EH_PE_datarel (0: invalid). */
static uintptr_t ls__uw_ptr(ls__uw_rd_t *r, uint8_t enc, uintptr_t datarel, const ls__uw_obj_t *o)
{
    uintptr_t here = (uintptr_t)r->p + r->delta, v; /* for pcrel: where the bytes came from */
    if (enc == LS__PE_OMIT) return 0;
    switch (enc & 0x0f) {
    case 0x00:
        v = (uintptr_t)ls__uw_fixed(r, 8);
        break;
    case 0x01:
        v = (uintptr_t)ls__uw_uleb(r);
        break;
    case 0x02:
        v = (uintptr_t)ls__uw_fixed(r, 2);
        break;
    case 0x03:
        v = (uintptr_t)ls__uw_fixed(r, 4);
        break;
    case 0x04:
        v = (uintptr_t)ls__uw_fixed(r, 8);
        break;
    case 0x09:
        v = (uintptr_t)ls__uw_sleb(r);
        break;
    case 0x0a:
        v = (uintptr_t)(int16_t)ls__uw_fixed(r, 2);
        break;
    case 0x0b:
        v = (uintptr_t)(int32_t)ls__uw_fixed(r, 4);
        break;
    case 0x0c:
        v = (uintptr_t)ls__uw_fixed(r, 8);
        break;
    default:
        r->bad = true;
        return 0;
    }
    switch (enc & 0x70) {
    case 0x00:
        break;
    case 0x10:
        v += here;
        break; /* pcrel */
    case 0x30: /* datarel: only meaningful in .eh_frame_hdr on x86-64 */
        if (!datarel) r->bad = true;
        v += datarel;
        break;
    default:
        r->bad = true;
        return 0; /* textrel, funcrel, aligned: not emitted on x86-64 */
    }
    if (enc & LS__PE_INDIRECT) {
        uintptr_t lo, hi;
        if (!o || !ls__uw_segment(o, v, &lo, &hi) || hi - v < sizeof(uintptr_t)) {
            r->bad = true;
            return 0;
        }
        v = *(const ls__uw_word_t *)v;
    }
    return v;
}

/* ---- CIE/FDE and the CFA program ------------------------------------------------------------- */

enum { LS__H_SAME = 0, LS__H_UNDEF, LS__H_OFFSET, LS__H_EXPR_RBP, LS__H_OTHER };
enum { LS__C_REG = 0, LS__C_DEREF_RBP, LS__C_OTHER };
enum { LS__S_RBP = 0, LS__S_RSP, LS__S_RA, LS__S_N }; /* the registers we track */

typedef struct ls__uw_reg {
    uint8_t how;
    int64_t off;
} ls__uw_reg_t;

typedef struct ls__uw_state {
    uint8_t cfa_how;
    uint64_t cfa_reg;
    int64_t cfa_off;
    ls__uw_reg_t reg[LS__S_N];
} ls__uw_state_t;

typedef struct ls__uw_cie {
    uint64_t code_align, ra_reg;
    int64_t data_align;
    uint8_t fde_enc;
    bool has_z, signal;
    const uint8_t *insns, *end; /* the initial instructions, in the view of the CIE */
    uintptr_t delta;            /* that view's delta (ls__uw_rd_t) */
} ls__uw_cie_t;

/* Parses the CIE at p (inside the view [p, end), whose delta is delta). */
static bool ls__uw_parse_cie(const uint8_t *p, const uint8_t *end, uintptr_t delta,
                             const ls__uw_obj_t *o, ls__uw_cie_t *c)
{
    ls__uw_rd_t r = {p, end, false, delta};
    uint64_t len = ls__uw_fixed(&r, 4);
    bool dw64 = len == 0xffffffffu;
    if (dw64) len = ls__uw_fixed(&r, 8);
    if (r.bad || len == 0 || len > (uint64_t)(r.end - r.p)) return false;
    r.end = r.p + len;
    if (ls__uw_fixed(&r, dw64 ? 8 : 4) != 0) return false; /* CIE id is 0 in .eh_frame */
    uint8_t version = ls__uw_u8(&r);
    if (version != 1 && version != 3 && version != 4) return false;
    char aug[8];
    size_t na = 0;
    for (;;) {
        uint8_t ch = ls__uw_u8(&r);
        if (r.bad) return false;
        if (!ch) break;
        if (na + 1 >= sizeof aug) return false;
        aug[na++] = (char)ch;
    }
    aug[na] = 0;
    if (version == 4) {
        if (ls__uw_u8(&r) != 8 || ls__uw_u8(&r) != 0) return false; /* address, segment size */
    }
    c->code_align = ls__uw_uleb(&r);
    c->data_align = ls__uw_sleb(&r);
    c->ra_reg = version == 1 ? ls__uw_u8(&r) : ls__uw_uleb(&r);
    c->fde_enc = 0; /* absptr */
    c->has_z = aug[0] == 'z';
    c->signal = false;
    if (c->has_z) {
        uint64_t alen = ls__uw_uleb(&r);
        if (r.bad || alen > (uint64_t)(r.end - r.p)) return false;
        const uint8_t *aend = r.p + alen;
        for (size_t i = 1; i < na; i++) {
            switch (aug[i]) {
            case 'L':
                ls__uw_u8(&r);
                break; /* LSDA encoding: the FDE's aug data is skipped */
            case 'P': {
                uint8_t penc = ls__uw_u8(&r);
                /* Read past the personality pointer without following it. */
                if (penc != LS__PE_OMIT) ls__uw_ptr(&r, (uint8_t)(penc & 0x7f), 0, o);
                break;
            }
            case 'R':
                c->fde_enc = ls__uw_u8(&r);
                break;
            case 'S':
                c->signal = true;
                break;
            default:
                i = na;
                break; /* unknown: the length lets us skip the rest */
            }
        }
        r.p = aend;
    } else if (na != 0) {
        return false; /* "eh" and other pre-z augmentations */
    }
    c->insns = r.p;
    c->end = r.end;
    c->delta = delta;
    return !r.bad && c->code_align != 0;
}

static int ls__uw_slot_of(uint64_t reg, const ls__uw_cie_t *c)
{
    if (reg == 6) return LS__S_RBP;
    if (reg == 7) return LS__S_RSP;
    if (reg == c->ra_reg) return LS__S_RA;
    return -1;
}

static void ls__uw_set(ls__uw_state_t *st, int slot, uint8_t how, int64_t off)
{
    if (slot >= 0) {
        st->reg[slot].how = how;
        st->reg[slot].off = off;
    }
}

/* Matches the expression [DW_OP_breg6 k] (and [.. DW_OP_deref] if deref) exactly. */
static bool ls__uw_expr_rbp(const uint8_t *p, uint64_t len, bool deref, int64_t *k)
{
    ls__uw_rd_t e = {p, p + len, false, 0};
    if (ls__uw_u8(&e) != 0x76) return false; /* DW_OP_breg6 */
    *k = ls__uw_sleb(&e);
    if (deref && ls__uw_u8(&e) != 0x06) return false; /* DW_OP_deref */
    return !e.bad && e.p == e.end;
}

/*
 * Runs the CFA instructions in [r->p, r->end) from location *loc, stopping before the first
 * row that starts past addr. init holds the state after the CIE program (for DW_CFA_restore).
 */
static bool ls__uw_exec(ls__uw_rd_t *r, const ls__uw_cie_t *c, const ls__uw_obj_t *o,
                        uintptr_t *loc, uintptr_t addr, ls__uw_state_t *st,
                        const ls__uw_state_t *init)
{
    ls__uw_state_t saved[LS_UW_REMEMBER];
    unsigned depth = 0;
    while (r->p < r->end && !r->bad) {
        uint8_t op = ls__uw_u8(r);
        uint64_t reg, delta = 0;
        int64_t off;
        switch (op & 0xc0) {
        case 0x40:
            delta = (op & 0x3f) * c->code_align;
            goto advance;
        case 0x80:
            ls__uw_set(st, ls__uw_slot_of(op & 0x3f, c), LS__H_OFFSET,
                       (int64_t)ls__uw_uleb(r) * c->data_align);
            continue;
        case 0xc0: {
            int s = ls__uw_slot_of(op & 0x3f, c);
            if (s >= 0) st->reg[s] = init ? init->reg[s] : (ls__uw_reg_t){LS__H_SAME, 0};
            continue;
        }
        }
        switch (op) {
        case 0x00:
            break;   /* nop */
        case 0x01: { /* set_loc */
            uintptr_t to = ls__uw_ptr(r, c->fde_enc, 0, o);
            if (to > addr) return !r->bad;
            *loc = to;
            break;
        }
        case 0x02:
            delta = ls__uw_fixed(r, 1);
            goto advance;
        case 0x03:
            delta = ls__uw_fixed(r, 2);
            goto advance;
        case 0x04:
            delta = ls__uw_fixed(r, 4);
            goto advance;
        case 0x1d:
            delta = ls__uw_fixed(r, 8);
            goto advance; /* MIPS_advance_loc8 */
        case 0x05:        /* offset_extended */
            reg = ls__uw_uleb(r);
            ls__uw_set(st, ls__uw_slot_of(reg, c), LS__H_OFFSET,
                       (int64_t)ls__uw_uleb(r) * c->data_align);
            break;
        case 0x11: /* offset_extended_sf */
            reg = ls__uw_uleb(r);
            ls__uw_set(st, ls__uw_slot_of(reg, c), LS__H_OFFSET, ls__uw_sleb(r) * c->data_align);
            break;
        case 0x2f: /* GNU_negative_offset_extended */
            reg = ls__uw_uleb(r);
            ls__uw_set(st, ls__uw_slot_of(reg, c), LS__H_OFFSET,
                       -(int64_t)ls__uw_uleb(r) * c->data_align);
            break;
        case 0x06: { /* restore_extended */
            int s = ls__uw_slot_of(ls__uw_uleb(r), c);
            if (s >= 0) st->reg[s] = init ? init->reg[s] : (ls__uw_reg_t){LS__H_SAME, 0};
            break;
        }
        case 0x07:
            ls__uw_set(st, ls__uw_slot_of(ls__uw_uleb(r), c), LS__H_UNDEF, 0);
            break;
        case 0x08:
            ls__uw_set(st, ls__uw_slot_of(ls__uw_uleb(r), c), LS__H_SAME, 0);
            break;
        case 0x09: /* register: value lives in another register */
            reg = ls__uw_uleb(r);
            ls__uw_uleb(r);
            ls__uw_set(st, ls__uw_slot_of(reg, c), LS__H_OTHER, 0);
            break;
        case 0x0a: /* remember_state: the whole row, CFA included (as GCC and LLVM do) */
            if (depth == LS_UW_REMEMBER) return false;
            saved[depth++] = *st;
            break;
        case 0x0b: /* restore_state */
            if (depth == 0) return false;
            *st = saved[--depth];
            break;
        case 0x0c: /* def_cfa */
            st->cfa_how = LS__C_REG;
            st->cfa_reg = ls__uw_uleb(r);
            st->cfa_off = (int64_t)ls__uw_uleb(r);
            break;
        case 0x12: /* def_cfa_sf */
            st->cfa_how = LS__C_REG;
            st->cfa_reg = ls__uw_uleb(r);
            st->cfa_off = ls__uw_sleb(r) * c->data_align;
            break;
        case 0x0d: /* def_cfa_register */
            st->cfa_how = LS__C_REG;
            st->cfa_reg = ls__uw_uleb(r);
            break;
        case 0x0e:
            st->cfa_off = (int64_t)ls__uw_uleb(r);
            break; /* def_cfa_offset */
        case 0x13:
            st->cfa_off = ls__uw_sleb(r) * c->data_align;
            break;   /* def_cfa_offset_sf */
        case 0x0f: { /* def_cfa_expression */
            uint64_t len = ls__uw_uleb(r);
            if (r->bad || len > (uint64_t)(r->end - r->p)) return false;
            st->cfa_how = ls__uw_expr_rbp(r->p, len, true, &off) ? LS__C_DEREF_RBP : LS__C_OTHER;
            st->cfa_off = st->cfa_how == LS__C_DEREF_RBP ? off : 0;
            r->p += len;
            break;
        }
        case 0x10:   /* expression: register saved at the address the expression computes */
        case 0x16: { /* val_expression */
            reg = ls__uw_uleb(r);
            uint64_t len = ls__uw_uleb(r);
            if (r->bad || len > (uint64_t)(r->end - r->p)) return false;
            bool simple = op == 0x10 && ls__uw_expr_rbp(r->p, len, false, &off);
            ls__uw_set(st, ls__uw_slot_of(reg, c), simple ? LS__H_EXPR_RBP : LS__H_OTHER,
                       simple ? off : 0);
            r->p += len;
            break;
        }
        case 0x14: /* val_offset */
            reg = ls__uw_uleb(r);
            ls__uw_uleb(r);
            ls__uw_set(st, ls__uw_slot_of(reg, c), LS__H_OTHER, 0);
            break;
        case 0x15: /* val_offset_sf */
            reg = ls__uw_uleb(r);
            ls__uw_sleb(r);
            ls__uw_set(st, ls__uw_slot_of(reg, c), LS__H_OTHER, 0);
            break;
        case 0x2e:
            ls__uw_uleb(r);
            break; /* GNU_args_size: only matters for landing pads */
        default:
            return false;
        }
        continue;
    advance:
        /* A new row starts at *loc + delta; rows past addr do not apply. */
        if (delta > addr - *loc) return !r->bad;
        *loc += delta;
    }
    return !r->bad;
}

/* Turns the row for the PC into a rule. */
static uint64_t ls__uw_rule_of(const ls__uw_state_t *st)
{
    const ls__uw_reg_t *ra = &st->reg[LS__S_RA], *bp = &st->reg[LS__S_RBP];
    const ls__uw_reg_t *sp = &st->reg[LS__S_RSP];
    unsigned kind;
    if (ra->how == LS__H_UNDEF) return LS__RULE(LS__K_END, 0, 0, 0, 0);
    if (ra->how != LS__H_OFFSET || (ra->off & 7) || ra->off / 8 < -128 || ra->off / 8 > 127)
        return LS__RULE(LS__K_NOSIMPLE, 0, 0, 0, 0);
    /* x86-64: the caller's RSP is the CFA; any explicit rule for it is beyond us. */
    if (sp->how != LS__H_SAME && sp->how != LS__H_UNDEF)
        return LS__RULE(LS__K_NOSIMPLE, 0, 0, 0, 0);
    if (st->cfa_how == LS__C_DEREF_RBP)
        kind = LS__K_DEREF;
    else if (st->cfa_how == LS__C_REG && st->cfa_reg == 7)
        kind = LS__K_RSP;
    else if (st->cfa_how == LS__C_REG && st->cfa_reg == 6)
        kind = LS__K_RBP;
    else
        return LS__RULE(LS__K_NOSIMPLE, 0, 0, 0, 0); /* e.g. CFA = r10 + 0 during DRAP setup */
    if (st->cfa_off != (int32_t)st->cfa_off) return LS__RULE(LS__K_NOSIMPLE, 0, 0, 0, 0);
    unsigned bpm = LS__BP_LOST;
    int64_t bpw = 0;
    if (bp->how == LS__H_SAME || bp->how == LS__H_UNDEF) {
        bpm = LS__BP_SAME;
    } else if ((bp->how == LS__H_OFFSET || bp->how == LS__H_EXPR_RBP) && !(bp->off & 7) &&
               bp->off / 8 >= INT16_MIN && bp->off / 8 <= INT16_MAX) {
        bpm = bp->how == LS__H_OFFSET ? LS__BP_CFA : LS__BP_RBP;
        bpw = bp->off / 8;
    }
    /* The fast kinds hard-wire the return address at CFA-8 (always so on x86-64) so the load
     * takes a constant displacement; anything else goes the general way. */
    if (ra->off != -8)
        return LS__RULE(LS__K_GENERAL, st->cfa_off, bpm, ra->off / 8, bpw) | (uint64_t)kind << 38;
    return LS__RULE(kind, st->cfa_off, bpm, ra->off / 8, bpw);
}

/* Finds the FDE address covering addr through the .eh_frame_hdr search table, or by a linear
 * walk of .eh_frame when there is no usable table. Returns 0 if none. */
static uintptr_t ls__uw_find_fde(const ls__uw_obj_t *o, uintptr_t hdr, uintptr_t addr)
{
    uint8_t hbuf[32], tbuf[LS_UW_TAB_BLOCK * 8];
    uintptr_t lo, hi, eh_frame = 0, tab;
    size_t got, n;
    ls__uw_file_t *const f = o->file;
    if (f && f->hdr == hdr) { /* small mode: the header was read before */
        tab = f->tab;
        n = f->n;
    } else {
        const uint8_t *h = ls__uw_view(o, hdr, hbuf, sizeof hbuf, &got);
        if (!h) return 0;
        ls__uw_rd_t r = {h, h + got, false, hdr - (uintptr_t)h};
        if (ls__uw_u8(&r) != 1) return 0;
        uint8_t ptr_enc = ls__uw_u8(&r), cnt_enc = ls__uw_u8(&r), tab_enc = ls__uw_u8(&r);
        eh_frame = ls__uw_ptr(&r, ptr_enc, hdr, o);
        if (r.bad) return 0;
        if (cnt_enc == LS__PE_OMIT || tab_enc != 0x3b) /* datarel | sdata4: what ld emits */
            goto linear;
        uint64_t cnt = ls__uw_ptr(&r, cnt_enc, hdr, o);
        tab = (uintptr_t)r.p + r.delta;
        if (r.bad || cnt == 0 || !ls__uw_segment(o, tab, &lo, &hi) || cnt > (hi - tab) / 8)
            return 0;
        n = (size_t)cnt;
        if (f) {
            f->hdr = hdr;
            f->tab = tab;
            f->n = n;
            f->k = (n + LS_UW_SAMPLES - 1) / LS_UW_SAMPLES;
            if (f->k < LS_UW_TAB_BLOCK) f->k = LS_UW_TAB_BLOCK;
            memset(f->have, 0, sizeof f->have);
        }
    }
    /* Find the last entry with start <= addr. From a file: first among the kept samples (each
     * read once), then one 4-byte pread per probe until the range fits one block, then the
     * block (python3's 10K entries: 80 samples, then one block). */
    size_t a = 0, b = n;
    if (f) {
        size_t sa = 0, sb = (n + f->k - 1) / f->k;
        while (sb - sa > 1) {
            size_t m = sa + (sb - sa) / 2;
            if (!(f->have[m / 64] >> (m % 64) & 1)) {
                const uint8_t *e = ls__uw_view(o, tab + 8 * m * f->k, tbuf, 4, &got);
                if (!e || got < 4) return 0;
                f->sample[m] = ls__uw_s32(e);
                f->have[m / 64] |= 1ull << (m % 64);
            }
            if (hdr + (intptr_t)f->sample[m] <= addr)
                sa = m;
            else
                sb = m;
        }
        a = sa * f->k;
        b = sb * f->k < n ? sb * f->k : n;
    }
    const size_t block = o->fd >= 0 ? LS_UW_TAB_BLOCK : SIZE_MAX;
    while (b - a > block) {
        size_t m = a + (b - a) / 2;
        const uint8_t *e = ls__uw_view(o, tab + 8 * m, tbuf, 4, &got);
        if (!e || got < 4) return 0;
        if (hdr + (intptr_t)ls__uw_s32(e) <= addr)
            a = m;
        else
            b = m;
    }
    const uint8_t *t = ls__uw_view(o, tab + 8 * a, tbuf, 8 * (b - a), &got);
    if (!t || got < 8 * (b - a)) return 0;
    size_t ta = 0, tb = b - a; /* the same search within the block */
    while (tb - ta > 1) {
        size_t m = ta + (tb - ta) / 2;
        if (hdr + (intptr_t)ls__uw_s32(t + 8 * m) <= addr)
            ta = m;
        else
            tb = m;
    }
    if (hdr + (intptr_t)ls__uw_s32(t + 8 * ta) > addr) return 0;
    return hdr + (intptr_t)ls__uw_s32(t + 8 * ta + 4);

linear:;
    /* No table: walk .eh_frame in the mapping, decoding each FDE's range (rare: ld could not
     * sort it; reading it all through a file would cost as much as the pages it saves). */
    const ls__uw_obj_t mem = {o->info, -1, NULL};
    if (!ls__uw_segment(o, eh_frame, &lo, &hi)) return 0;
    for (uintptr_t p = eh_frame; p < hi;) {
        ls__uw_rd_t e = {(const uint8_t *)p, (const uint8_t *)hi, false, 0};
        uint64_t len = ls__uw_fixed(&e, 4);
        bool dw64 = len == 0xffffffffu;
        if (dw64) len = ls__uw_fixed(&e, 8);
        if (e.bad || len == 0 || len > (uint64_t)(e.end - e.p)) return 0;
        uintptr_t next = (uintptr_t)e.p + len;
        const uint8_t *id_at = e.p;
        uint64_t id = ls__uw_fixed(&e, dw64 ? 8 : 4);
        ls__uw_cie_t c;
        if (id != 0 && (uintptr_t)id_at - id >= lo &&
            ls__uw_parse_cie(id_at - id, (const uint8_t *)hi, 0, &mem, &c)) {
            uintptr_t start = ls__uw_ptr(&e, c.fde_enc, 0, &mem);
            uintptr_t range = ls__uw_ptr(&e, c.fde_enc & 0x0f, 0, &mem);
            if (!e.bad && addr - start < range) return p;
        }
        p = next;
    }
    return 0;
}

/* Compiles the rule for addr inside object o (which maps addr). */
static uint64_t ls__uw_compile(const ls__uw_obj_t *o, uintptr_t addr, bool exact)
{
    const uint64_t nofde =
        LS__RULE(LS__K_NOFDE, __atomic_load_n(&ls__uw_adds, __ATOMIC_RELAXED), 0, 0, 0);
    const uint64_t nosimple = LS__RULE(LS__K_NOSIMPLE, 0, 0, 0, 0);
    uintptr_t lo, hi;

    /* Signal trampoline: the handler "returns" to __restore_rt (mov $15,%rax; syscall). */
    static const uint8_t restore_rt[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
    uintptr_t code = exact ? addr : addr + 1;
    if (ls__uw_segment(o, code, &lo, &hi) && hi - code >= sizeof restore_rt &&
        memcmp((const void *)code, restore_rt, sizeof restore_rt) == 0)
        return LS__RULE(LS__K_SIGNAL, 0, 0, 0, 0);

    uintptr_t hdr = 0;
    for (int i = 0; i < o->info->dlpi_phnum; i++)
        if (o->info->dlpi_phdr[i].p_type == PT_GNU_EH_FRAME)
            hdr = o->info->dlpi_addr + o->info->dlpi_phdr[i].p_vaddr;
    if (!hdr) return nofde;
    uintptr_t fde = ls__uw_find_fde(o, hdr, addr);
    if (!fde || !ls__uw_segment(o, fde, &lo, &hi)) return nofde;

    uint8_t fbuf[LS_UW_FDE_BUF], cbuf[LS_UW_CIE_BUF];
    size_t got;
    const uint8_t *fv = ls__uw_view_record(o, fde, fbuf, sizeof fbuf, &got);
    if (!fv) return nofde;
    ls__uw_rd_t r = {fv, fv + got, false, fde - (uintptr_t)fv};
    uint64_t len = ls__uw_fixed(&r, 4);
    bool dw64 = len == 0xffffffffu;
    if (dw64) len = ls__uw_fixed(&r, 8);
    if (r.bad || len == 0 || len > (uint64_t)(r.end - r.p)) return nofde;
    r.end = r.p + len;
    const uintptr_t id_at = (uintptr_t)r.p + r.delta;
    uint64_t cie_off = ls__uw_fixed(&r, dw64 ? 8 : 4);
    uintptr_t cie = id_at - cie_off;
    if (r.bad || cie_off == 0 || cie < lo || cie >= hi) return nofde;
    const uint8_t *cv;
    ls__uw_file_t *const f = o->file;
    if (f && f->cie_len && f->cie == cie) { /* small mode: the CIE read last time */
        cv = f->cie_bytes;
        got = f->cie_len;
    } else {
        cv = ls__uw_view_record(o, cie, cbuf, sizeof cbuf, &got);
        uint32_t clen = 0;
        if (f && cv == cbuf && got >= 4) memcpy(&clen, cv, 4);
        if (clen && clen <= sizeof f->cie_bytes - 4 && clen + 4 <= got) { /* keep it */
            f->cie = cie;
            f->cie_len = clen + 4;
            memcpy(f->cie_bytes, cv, f->cie_len);
        }
    }
    ls__uw_cie_t c;
    if (!cv || !ls__uw_parse_cie(cv, cv + got, cie - (uintptr_t)cv, o, &c)) return nofde;
    uintptr_t start = ls__uw_ptr(&r, c.fde_enc, 0, o);
    uintptr_t range = ls__uw_ptr(&r, c.fde_enc & 0x0f, 0, o);
    if (r.bad || addr - start >= range) return nofde;
    if (c.has_z) {
        uint64_t alen = ls__uw_uleb(&r);
        if (r.bad || alen > (uint64_t)(r.end - r.p)) return nofde;
        r.p += alen;
    }

    ls__uw_state_t st, init;
    memset(&st, 0, sizeof st);
    st.cfa_how = LS__C_OTHER; /* until the CIE defines it */
    uintptr_t loc = start;
    ls__uw_rd_t ci = {c.insns, c.end, false, c.delta};
    if (!ls__uw_exec(&ci, &c, o, &loc, UINTPTR_MAX, &st, NULL)) return nosimple;
    init = st;
    loc = start;
    if (!ls__uw_exec(&r, &c, o, &loc, addr, &st, &init)) return nosimple;
    if (c.signal) return nosimple; /* an 'S' frame other than __restore_rt */
    return ls__uw_rule_of(&st);
}

/* ---- small mode: the files behind the objects ------------------------------------------------ */

static bool ls__uw_small; /* ls__unwind_init_small was called: read through files */
static ls__uw_file_t ls__uw_files[LS_UW_FILES];
static uint64_t ls__uw_file_clock;
static int ls__uw_files_busy;
static uint64_t ls__uw_from_file, ls__uw_files_refused; /* ls_uw_stats_t */

static bool ls__uw_file_ours(const ls__uw_file_t *e)
{
    struct stat st;
    return fstat(e->fd, &st) == 0 && st.st_ino == e->ino && st.st_dev == e->dev;
}

/* Text relocations patch read-only segments in memory: their file bytes are not what runs. */
static bool ls__uw_textrel(const struct dl_phdr_info *info, const ElfW(Phdr) * dyn)
{
    const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + dyn->p_vaddr);
    for (size_t i = 0; i < dyn->p_memsz / sizeof(*d) && d[i].d_tag != DT_NULL; i++)
        if (d[i].d_tag == DT_TEXTREL || (d[i].d_tag == DT_FLAGS && (d[i].d_un.d_val & DF_TEXTREL)))
            return true;
    return false;
}

/*
 * Opens the file info was mapped from (the main program: /proc/self/exe, which is its inode even
 * if the path was replaced since), if its bytes are the mapping's: the first page, with the ELF
 * and program headers and the build-id note, must be equal in both. That page is resident (ld.so
 * and dl_iterate_phdr read the program headers in it), so the check maps no new page. Returns
 * the descriptor, moved to LS_UW_FD_MIN or above, or -1.
 */
static int ls__uw_file_open(const struct dl_phdr_info *info, dev_t *dev, ino_t *ino)
{
    const uint8_t *head = NULL;
    size_t head_len = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && ph->p_offset == 0 && !head) {
            head = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
            head_len = ph->p_filesz < 4096 ? (size_t)ph->p_filesz : 4096;
        } else if (ph->p_type == PT_DYNAMIC && ls__uw_textrel(info, ph)) {
            return -1;
        }
    }
    /* The headers page must be the one holding the program headers (then it is resident). */
    if (!head || head_len < sizeof(ElfW(Ehdr)) || ((uintptr_t)head & 4095) ||
        (uintptr_t)info->dlpi_phdr - (uintptr_t)head >= head_len)
        return -1;
    const char *path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); /* a FIFO must not block */
    if (fd < 0) return -1;
    struct stat st;
    bool same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    uint8_t buf[512];
    for (size_t off = 0; same && off < head_len; off += sizeof buf) {
        size_t n = head_len - off < sizeof buf ? head_len - off : sizeof buf;
        same = pread(fd, buf, n, (off_t)off) == (ssize_t)n && memcmp(buf, head + off, n) == 0;
    }
    if (!same) {
        close(fd);
        return -1;
    }
    int high = fcntl(fd, F_DUPFD_CLOEXEC, LS_UW_FD_MIN); /* out of the way of dup2(x, 3) */
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    return fd;
}

/* The file to read info's object through, or NULL (read its mapping). Caller holds
 * ls__uw_files_busy. */
static ls__uw_file_t *ls__uw_file_of(const struct dl_phdr_info *info)
{
    const uint64_t gen = __atomic_load_n(&ls__uw_gen, __ATOMIC_ACQUIRE);
    ls__uw_file_t *e = NULL, *victim = &ls__uw_files[0];
    for (size_t i = 0; i < LS_UW_FILES && !e; i++) {
        ls__uw_file_t *x = &ls__uw_files[i];
        if (x->phdr == info->dlpi_phdr && x->base == info->dlpi_addr && x->gen == gen)
            e = x;
        else if (x->used < victim->used)
            victim = x;
    }
    if (e) {
        e->used = ++ls__uw_file_clock;
        if (e->fd < 0) return NULL;
        if (ls__uw_file_ours(e)) return e;
        /* The host closed it (and may have reused the number): not ours to close. Again. */
    } else {
        e = victim;
        if (e->phdr && e->fd >= 0 && ls__uw_file_ours(e)) close(e->fd);
        e->base = info->dlpi_addr;
        e->phdr = info->dlpi_phdr;
        e->gen = gen;
        e->used = ++ls__uw_file_clock;
    }
    e->hdr = 0;
    e->cie_len = 0;
    e->fd = ls__uw_file_open(info, &e->dev, &e->ino);
    if (e->fd >= 0) return e;
    __atomic_add_fetch(&ls__uw_files_refused, 1, __ATOMIC_RELAXED);
    return NULL;
}

typedef struct ls__uw_find {
    uintptr_t addr;
    bool exact, found;
    uint64_t rule;
} ls__uw_find_t;

static int ls__uw_phdr_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    ls__uw_find_t *f = data;
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && f->addr - (info->dlpi_addr + ph->p_vaddr) < ph->p_memsz) {
            bool files =
                ls__uw_small && !__atomic_exchange_n(&ls__uw_files_busy, 1, __ATOMIC_ACQUIRE);
            ls__uw_file_t *file = files ? ls__uw_file_of(info) : NULL;
            ls__uw_obj_t o = {info, file ? file->fd : -1, file};
            f->found = true;
            f->rule = ls__uw_compile(&o, f->addr, f->exact);
            if (o.fd >= 0) __atomic_add_fetch(&ls__uw_from_file, 1, __ATOMIC_RELAXED);
            if (files) __atomic_store_n(&ls__uw_files_busy, 0, __ATOMIC_RELEASE);
            return 1;
        }
    }
    return 0;
}

/* The cold path: compile the rule for key, publish it, return it. Takes no lock of ours; the
 * loader lock dl_iterate_phdr holds is recursive, so a malloc inside a callback of someone
 * else's dl_iterate_phdr still gets here. */
static __attribute__((noinline, cold)) uint64_t ls__uw_miss(uint64_t key)
{
    /* A return address's rule is the one for the call before it (pc - 1): after a noreturn
     * call, pc itself may already be in the next function. */
    ls__uw_find_t f = {
        .addr = ls__uw_key_pc(key) - !(key & 1), .exact = key & 1, .found = false, .rule = 0};
    int saved_errno = errno; /* the host's malloc must not change it (small mode's syscalls) */
    dl_iterate_phdr(ls__uw_phdr_cb, &f);
    errno = saved_errno;
    if (!f.found) f.rule = LS__RULE(LS__K_NOFDE, ls__uw_adds, 0, 0, 0);
    ls__uw_insert(ls__uw_cache, key, f.rule);
    return f.rule;
}

/* ---- libunwind, dlopen'd on request ---------------------------------------------------------- */

/* The symbols behind libunwind.h's macros (unw_local_addr_space is _ULx86_64_local_addr_space
 * with UNW_LOCAL_ONLY, and so on): the header names them, so a port keeps working. */
#define LS__STR2(x) #x
#define LS__STR(x)  LS__STR2(x)

static struct {
    int (*backtrace)(void **, int);
    int (*set_caching_policy)(unw_addr_space_t, unw_caching_policy_t);
    void (*flush_cache)(unw_addr_space_t, unw_word_t, unw_word_t);
    unw_addr_space_t *local_as;
} ls__lu;
static int ls__lu_state; /* 0: not tried, 1: loaded, -1: failed */

bool ls__unwind_libunwind_load(const char **why)
{
    static char err[160];
    int st = __atomic_load_n(&ls__lu_state, __ATOMIC_ACQUIRE);
    if (st) {
        if (why) *why = err;
        return st > 0;
    }
    /* RTLD_LOCAL: its unw_* and backtrace() stay out of the host's symbol lookups. */
    void *h = dlopen(LS_UW_LIBUNWIND, RTLD_NOW | RTLD_LOCAL);
    if (h) {
        ls__lu.backtrace = (int (*)(void **, int))dlsym(h, "unw_backtrace");
        ls__lu.set_caching_policy = (int (*)(unw_addr_space_t, unw_caching_policy_t))dlsym(
            h, LS__STR(unw_set_caching_policy));
        ls__lu.flush_cache =
            (void (*)(unw_addr_space_t, unw_word_t, unw_word_t))dlsym(h, LS__STR(unw_flush_cache));
        ls__lu.local_as = (unw_addr_space_t *)dlsym(h, LS__STR(unw_local_addr_space));
    }
    if (!h || !ls__lu.backtrace || !ls__lu.set_caching_policy || !ls__lu.flush_cache ||
        !ls__lu.local_as) {
        const char *e = dlerror();
        if (!e) e = LS_UW_LIBUNWIND ": a function is missing";
        size_t n = strnlen(e, sizeof err - 1);
        memcpy(err, e, n);
        err[n] = 0;
        /* h stays open when symbols are missing: dlclose from here could run destructors. */
        __atomic_store_n(&ls__lu_state, -1, __ATOMIC_RELEASE);
        if (why) *why = err;
        return false;
    }
    ls__lu.set_caching_policy(*ls__lu.local_as, UNW_CACHE_PER_THREAD);
    __atomic_store_n(&ls__lu_state, 1, __ATOMIC_RELEASE);
    return true;
}

/* ---- the public functions -------------------------------------------------------------------- */

void ls__unwind_init_small(void)
{
    if (__atomic_load_n(&ls__uw_cache, __ATOMIC_ACQUIRE)) return; /* too late */
    ls__uw_slots = 1u << LS_UW_SMALL_BITS;
    ls__uw_set_mask = (ls__uw_slots / LS_UW_WAYS - 1) << LS__SET_SHIFT;
    ls__uw_small = true;
    ls__unwind_init();
}

void ls__unwind_init(void)
{
    if (__atomic_load_n(&ls__uw_cache, __ATOMIC_ACQUIRE)) return;
    void *m = mmap(NULL, sizeof(ls__uw_slot_t) * ls__uw_slots, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return;
    ls__uw_slot_t *expect = NULL;
    if (!__atomic_compare_exchange_n(&ls__uw_cache, &expect, (ls__uw_slot_t *)m, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        munmap(m, sizeof(ls__uw_slot_t) * ls__uw_slots); /* lost a race with another init */
}

void ls__unwind_modules_changed(void)
{
    uint64_t bumps = __atomic_add_fetch(&ls__uw_gen_bumps, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&ls__uw_adds, 1, __ATOMIC_RELAXED);
    if (bumps % LS_UW_GEN_MAX == 0) {
        /* gen is about to take values it had before: drop every old rule first. */
        ls__uw_slot_t *c = __atomic_load_n(&ls__uw_cache, __ATOMIC_ACQUIRE);
        for (size_t i = 0; c && i < ls__uw_slots; i++) ls__uw_store(&c[i], 0, 0);
    }
    __atomic_store_n(&ls__uw_gen, bumps % LS_UW_GEN_MAX + 1, __ATOMIC_RELEASE);
    /* libunwind's caches do not notice dlclose either (a lock-free generation bump). */
    if (__atomic_load_n(&ls__lu_state, __ATOMIC_ACQUIRE) > 0)
        ls__lu.flush_cache(*ls__lu.local_as, 0, 0);
}

void ls__unwind_after_fork_child(void)
{
    /* The thread that held the table did not come along: its entry may be half written. Every
     * entry is dropped (gen 0 never matches; the next use closes its descriptor if still ours). */
    if (!__atomic_load_n(&ls__uw_files_busy, __ATOMIC_ACQUIRE)) return;
    for (size_t i = 0; i < LS_UW_FILES; i++) ls__uw_files[i].gen = 0;
    __atomic_store_n(&ls__uw_files_busy, 0, __ATOMIC_RELEASE);
}

void ls__unwind_modules_added(void)
{
    __atomic_add_fetch(&ls__uw_adds, 1, __ATOMIC_RELAXED);
}

void ls__unwind_stats(ls_uw_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < LS_UW_STRIPES; i++) {
        out->hits += __atomic_load_n(&ls__uw_ctr[i].hits, __ATOMIC_RELAXED);
        out->misses += __atomic_load_n(&ls__uw_ctr[i].misses, __ATOMIC_RELAXED);
        out->no_rule += __atomic_load_n(&ls__uw_ctr[i].no_rule, __ATOMIC_RELAXED);
        out->bad_cfa += __atomic_load_n(&ls__uw_ctr[i].bad_cfa, __ATOMIC_RELAXED);
    }
    out->from_file = __atomic_load_n(&ls__uw_from_file, __ATOMIC_RELAXED);
    out->files_refused = __atomic_load_n(&ls__uw_files_refused, __ATOMIC_RELAXED);
}

/* A word at a may be loaded iff lo <= a && a + 8 <= hi, i.e. a - lo <= span (hi - lo - 8). */
#define LS__OK(a) ((uintptr_t)(a)-lo <= span)
#define LS__LD(a) (*(const ls__uw_word_t *)(a))

/*
 * Reuse of the previous walk on this thread. Consecutive allocations share most of their outer
 * frames; re-deriving each of them costs a rule probe. When the walk reaches a frame with the
 * same CFA and return address as a frame of the previous walk, and every outer frame of that walk
 * had an RSP-relative CFA rule (so its CFA follows from its return address alone), the outer
 * part is the same if every return-address slot it was read from still holds the same value,
 * and the slot that ended it (a zero) still does. Checking that is one load per frame instead of
 * a probe, a rule and two loads. Frames with RBP-based, signal or unusual rules are never reused.
 */
#define LS_UW_REUSE_MAX 64
/* One frame of the last walk, stored by depth from the OUTERMOST frame, so the outer frames two
 * walks share stay in place and a reuse writes only the new inner frames. */
typedef struct ls__uw_rec {
    uintptr_t pc, cfa; /* cfa: UINTPTR_MAX at a final rule */
    uintptr_t bp_in;   /* RBP when the frame's rule was applied */
    uintptr_t bp_slot; /* where the caller's RBP was loaded from, or 0 */
    uint64_t hsuf;     /* stack hash of depths 0..this one (outermost first) */
    uint64_t ok;       /* reusable: RSP or RBP rule, or ended by a final rule */
} ls__uw_rec_t;

typedef struct ls__uw_walk {
    uint64_t gen;
    uint32_t adds;
    uint32_t n;          /* frames recorded; 0 = not reusable (too deep, truncated) */
    uint32_t ok_depth;   /* depths 0..ok_depth-1 are all reusable */
    uint32_t why;        /* how the walk ended */
    uintptr_t hi;        /* the stack bound it ran with */
    uintptr_t zero_slot; /* ended by reading pc 0 here (0: ended otherwise) */
    ls__uw_rec_t r[LS_UW_REUSE_MAX];
} ls__uw_walk_t;

static __thread ls__uw_walk_t ls__uw_last __attribute__((tls_model("initial-exec")));
static __thread uint64_t ls__uw_reused __attribute__((tls_model("initial-exec")));

/* The frames of w above depth d (depths d-1..0) are still on the stack as recorded? */
static bool walk_still_valid(const ls__uw_walk_t *w, uint32_t d, uintptr_t lo, uintptr_t span)
{
    for (uint32_t k = d - 1; k-- > 0;) {
        uintptr_t a = w->r[k + 1].cfa - 8;
        if ((uintptr_t)(a - lo) > span || *(const ls__uw_word_t *)a != w->r[k].pc) return false;
        uintptr_t b = w->r[k + 1].bp_slot;
        if (b && ((uintptr_t)(b - lo) > span || *(const ls__uw_word_t *)b != w->r[k].bp_in))
            return false;
    }
    if (w->zero_slot) {
        uintptr_t a = w->zero_slot;
        if ((uintptr_t)(a - lo) > span || *(const ls__uw_word_t *)a != 0) return false;
    }
    return true;
}

uint64_t ls__unwind_reused_frames(void)
{
    return ls__uw_reused;
}

static inline __attribute__((always_inline)) size_t unwind_fast(const ls_uw_frame_t *start,
                                                                uintptr_t stack_hi, uintptr_t *pcs,
                                                                size_t max, uint64_t *hash)
{
    uint64_t h = LS_STACK_HASH_SEED;
    ls__uw_slot_t *cache = __atomic_load_n(&ls__uw_cache, __ATOMIC_ACQUIRE);
    if (ls__unlikely(!cache)) {
        ls__unwind_init();
        if (!(cache = __atomic_load_n(&ls__uw_cache, __ATOMIC_ACQUIRE))) return 0;
    }
    uintptr_t pc = start->pc, sp = start->sp, bp = start->bp;
    const uintptr_t lo = sp;
    uintptr_t hi = stack_hi;
    if (!hi) hi = sp + LS_UW_STACK_GUESS < sp ? UINTPTR_MAX : sp + LS_UW_STACK_GUESS;
    if (max == 0 || hi < lo + 16) return 0;
    const uintptr_t span = hi - lo - sizeof(uintptr_t);
    const uint64_t gen = __atomic_load_n(&ls__uw_gen, __ATOMIC_ACQUIRE) << LS_UW_GEN_SHIFT;
    uint64_t probes = 0, misses = 0, key, rule;
    enum { LS__STOP_OK, LS__STOP_NO_RULE, LS__STOP_BAD } why = LS__STOP_OK;
    bool retried = false;
    size_t n = 0;
    /* Walk reuse, in the hashed (agent) variant only: ls__unwind_fast stays the plain
     * reference the tests compare against. t_* keep this walk's frames until they are stored. */
    const uint32_t adds = __atomic_load_n(&ls__uw_adds, __ATOMIC_RELAXED);
    ls__uw_walk_t *w = hash ? &ls__uw_last : NULL;
    ls__uw_walk_t *pw = NULL; /* w, when its last walk may be reused */
    uint32_t dp = 0;          /* depth in pw of the frame compared next */
    uintptr_t zero_slot = 0;
    uintptr_t t_cfa[LS_UW_REUSE_MAX], t_bp_in[LS_UW_REUSE_MAX], t_bp_slot[LS_UW_REUSE_MAX];
    uint8_t t_ok[LS_UW_REUSE_MAX];
    if (w && w->n && w->gen == gen && w->adds == adds && w->hi == hi) {
        pw = w;
        dp = w->n - 1;
    }
#define LS__REC(cfa_, bp_in_, bp_slot_, ok_)                                                       \
    do {                                                                                           \
        if (w && n <= LS_UW_REUSE_MAX) {                                                           \
            t_cfa[n - 1] = (cfa_);                                                                 \
            t_bp_in[n - 1] = (bp_in_);                                                             \
            t_bp_slot[n - 1] = (bp_slot_);                                                         \
            t_ok[n - 1] = (ok_);                                                                   \
        }                                                                                          \
    } while (0)

    /* Register use matters here: the loop is one dependent chain pc -> set -> rule -> CFA ->
     * next pc. A lost RBP is kept as bp = 0, which fails the checks of any rule that needs it. */
    while (pc) {
        pcs[n++] = pc;
        if (n == max) break;
        if (ls__unlikely(pc - 1 >= LS_UW_ADDR_LIMIT - 1)) { /* vsyscall page or garbage */
            why = LS__STOP_NO_RULE;
            LS__REC(UINTPTR_MAX, 0, 0, 1);
            break;
        }
        key = (uint64_t)pc << 1 | gen; /* exact bit 0: pc is a return address */
    probe:
        probes++;
        if (ls__unlikely(!ls__uw_probe(cache, pc, key, &rule))) {
            misses++;
            rule = ls__uw_miss(key);
        }
    dispatch:;
        const unsigned kind = LS__R_KIND(rule);
        const uintptr_t bp_used = bp;
        uintptr_t cfa;
        if (ls__likely(kind == LS__K_RSP)) {
            cfa = sp + LS__R_OFF(rule);
        } else if (kind == LS__K_RBP) {
            cfa = bp + LS__R_OFF(rule);
        } else if (kind == LS__K_DEREF) {
            uintptr_t a = bp + LS__R_OFF(rule);
            if (!LS__OK(a)) goto bad;
            cfa = LS__LD(a);
        } else if (kind == LS__K_SIGNAL) {
            /* sp points at the ucontext_t the kernel pushed; resume at its saved registers. */
            uintptr_t a_ip = sp + offsetof(ucontext_t, uc_mcontext.gregs[REG_RIP]);
            uintptr_t a_sp = sp + offsetof(ucontext_t, uc_mcontext.gregs[REG_RSP]);
            uintptr_t a_bp = sp + offsetof(ucontext_t, uc_mcontext.gregs[REG_RBP]);
            if (!LS__OK(a_ip) || !LS__OK(a_sp) || !LS__OK(a_bp)) goto bad;
            uintptr_t nsp = LS__LD(a_sp);
            if (nsp <= sp) goto bad;
            LS__REC(nsp, bp, 0, 0);
            pc = LS__LD(a_ip);
            bp = LS__LD(a_bp);
            sp = nsp;
            if (!pc) break;
            pcs[n++] = pc;
            if (n == max) break;
            if (pc >= LS_UW_ADDR_LIMIT) {
                why = LS__STOP_NO_RULE;
                LS__REC(UINTPTR_MAX, bp, 0, 0);
                break;
            }
            /* The interrupted PC is not a return address: its rule is the one at pc itself. */
            key = (uint64_t)pc << 1 | 1 | gen;
            goto probe;
        } else if (kind == LS__K_END) {
            LS__REC(UINTPTR_MAX, bp, 0, 1);
            break;
        } else if (kind == LS__K_GENERAL) {
            /* Return address not at CFA-8: never seen on x86-64, handled apart from the fast
             * kinds so theirs can be a constant displacement. */
            const unsigned base = (unsigned)(rule >> 38) & 3u;
            uintptr_t a = (base == LS__K_RSP ? sp : bp) + LS__R_OFF(rule);
            if (base == LS__K_DEREF) {
                if (!LS__OK(a)) goto bad;
                a = LS__LD(a);
            }
            cfa = a;
            const uintptr_t a_ra = cfa + LS__R_RA(rule);
            if (cfa <= sp || !LS__OK(a_ra)) goto bad;
            pc = LS__LD(a_ra);
            goto rbp;
        } else {
            /* A "no FDE" verdict from before the last dlopen may be stale: ask once more. */
            if (kind == LS__K_NOFDE && !retried &&
                (uint32_t)rule != __atomic_load_n(&ls__uw_adds, __ATOMIC_RELAXED)) {
                retried = true;
                probes++;
                misses++;
                rule = ls__uw_miss(key);
                goto dispatch;
            }
            why = LS__STOP_NO_RULE;
            LS__REC(UINTPTR_MAX, bp, 0, 1);
            break;
        }
        /* The CFA must move up the stack, and the slots we read must lie on it. */
        if (ls__unlikely(cfa <= sp || !LS__OK(cfa - 8))) goto bad;
        pc = LS__LD(cfa - 8);
    rbp:;
        const unsigned bpm = LS__R_BPM(rule);
        uintptr_t bp_slot = 0;
        if (bpm != LS__BP_SAME) {
            uintptr_t a_bp = (bpm == LS__BP_CFA ? cfa : bp) + LS__R_BP(rule);
            bool ok = bpm != LS__BP_LOST && LS__OK(a_bp);
            bp = ok ? LS__LD(a_bp) : 0;
            bp_slot = ok ? a_bp : 0;
        }
        sp = cfa;
        LS__REC(cfa, bp_used, bp_slot, kind == LS__K_RSP || kind == LS__K_RBP);
        if (!pc) zero_slot = cfa - 8;
        if (pw && pc) {
            while (dp > 0 && pw->r[dp].cfa < cfa) dp--;
            if (dp > 0 && pw->r[dp].cfa == cfa && pw->r[dp].pc == pcs[n - 1] &&
                pw->r[dp - 1].pc == pc && pw->r[dp - 1].bp_in == bp && dp <= pw->ok_depth &&
                n + dp < max && n + dp <= LS_UW_REUSE_MAX) {
                if (walk_still_valid(pw, dp, lo, span)) goto reuse;
                pw = NULL; /* the stack changed under it: walk the rest */
            }
        }
    }
    if (0) {
    bad:
        why = LS__STOP_BAD;
        if (n) LS__REC(UINTPTR_MAX, bp, 0, 0);
    }
    if (w) {
        /* Store this walk by depth from the outermost frame; the hash runs the same way, so a
         * reuse continues it from the stored prefix instead of rehashing the shared frames. */
        uint32_t base = 0; /* depths below base are the previous walk's, kept in place */
        size_t inner = n;  /* frames of this walk to store, innermost last */
        if (0) {
        reuse:
            base = dp;
            inner = n;
            for (uint32_t k = dp; k-- > 0;) pcs[n++] = pw->r[k].pc;
            ls__uw_reused += dp;
            why = (int)pw->why;
            zero_slot = pw->zero_slot;
        }
        if (n <= LS_UW_REUSE_MAX && n < max) {
            h = base ? w->r[base - 1].hsuf : LS_STACK_HASH_SEED;
            uint32_t ok = base ? base : 0; /* with a reuse, depths < base were all reusable */
            bool run = base == 0 || base <= w->ok_depth;
            for (size_t i = inner; i-- > 0;) {
                uint32_t d = (uint32_t)(base + (inner - 1 - i));
                ls__uw_rec_t *r = &w->r[d];
                h = ls__stack_hash_step(h, pcs[i]);
                r->pc = pcs[i];
                r->cfa = t_cfa[i];
                r->bp_in = t_bp_in[i];
                r->bp_slot = t_bp_slot[i];
                r->ok = t_ok[i];
                r->hsuf = h;
                if (run && t_ok[i])
                    ok = d + 1;
                else
                    run = false;
            }
            w->n = (uint32_t)n;
            w->ok_depth = ok;
            w->gen = gen;
            w->adds = adds;
            w->hi = hi;
            w->why = (uint32_t)why;
            w->zero_slot = zero_slot;
        } else {
            w->n = 0; /* too deep or cut at max: its outer frames are unknown */
            h = LS_STACK_HASH_SEED;
            for (size_t i = n; i-- > 0;) h = ls__stack_hash_step(h, pcs[i]);
        }
    }
#undef LS__REC
    if (hash) *hash = ls__stack_hash_final(h, n);
    ls__uw_ctr_t *ctr = ls__uw_my_ctr();
    ls__uw_count(&ctr->hits, probes - misses);
    if (ls__unlikely(misses | why)) {
        __atomic_add_fetch(&ctr->misses, misses, __ATOMIC_RELAXED);
        __atomic_add_fetch(&ctr->no_rule, why == LS__STOP_NO_RULE, __ATOMIC_RELAXED);
        __atomic_add_fetch(&ctr->bad_cfa, why == LS__STOP_BAD, __ATOMIC_RELAXED);
    }
    return n;
}

size_t ls__unwind_fast(const ls_uw_frame_t *start, uintptr_t stack_hi, uintptr_t *pcs, size_t max)
{
    return unwind_fast(start, stack_hi, pcs, max, NULL);
}

size_t ls__unwind_fast_hashed(const ls_uw_frame_t *start, uintptr_t stack_hi, uintptr_t *pcs,
                              size_t max, uint64_t *hash)
{
    return unwind_fast(start, stack_hi, pcs, max, hash);
}

size_t ls__unwind_fp(const ls_uw_frame_t *start, uintptr_t stack_hi, uintptr_t *pcs, size_t max)
{
    uintptr_t pc = start->pc, bp = start->bp;
    const uintptr_t lo = start->sp;
    uintptr_t hi = stack_hi;
    if (!hi) hi = lo + LS_UW_STACK_GUESS < lo ? UINTPTR_MAX : lo + LS_UW_STACK_GUESS;
    if (hi < lo + 16) return 0;
    const uintptr_t span = hi - lo - 2 * sizeof(uintptr_t); /* we load bp[0] and bp[1] */
    uintptr_t prev = 0;
    size_t n = 0;
    while (n < max && pc) {
        pcs[n++] = pc;
        /* The chain must go up the stack; the outermost frame has rbp = 0. */
        if (bp <= prev || !LS__OK(bp) || (bp & 7)) break;
        prev = bp;
        pc = LS__LD(bp + sizeof(uintptr_t));
        bp = LS__LD(bp);
    }
    return n;
}

/* unw_backtrace into a stack buffer, then copy from the frame `first` decides on. */
static size_t ls__uw_lu_copy(void *const *buf, int got, int first, uintptr_t *pcs, size_t max)
{
    size_t n = 0;
    for (int i = first; i < got && n < max; i++) pcs[n++] = (uintptr_t)buf[i];
    return n;
}

__attribute__((noinline)) size_t ls__unwind_libunwind(uintptr_t *pcs, size_t max, int skip)
{
    void *buf[LS_UW_LU_BUF];
    const uintptr_t ret = (uintptr_t)__builtin_return_address(0);
    if (__atomic_load_n(&ls__lu_state, __ATOMIC_ACQUIRE) <= 0) return 0; /* never loads here */
    int got = ls__lu.backtrace(buf, LS_UW_LU_BUF);
    /* Frame 0 is our caller: drop libunwind's and our own frames by finding our return
     * address, instead of trusting how many frames unw_backtrace adds of its own. */
    int first = 0;
    while (first < got && first < 8 && (uintptr_t)buf[first] != ret) first++;
    if (first == got || first == 8) first = 2;
    return ls__uw_lu_copy(buf, got, first + (skip > 0 ? skip : 0), pcs, max);
}

__attribute__((noinline)) size_t ls__unwind_libunwind_from(const ls_uw_frame_t *start,
                                                           uintptr_t *pcs, size_t max)
{
    void *buf[LS_UW_LU_BUF];
    if (__atomic_load_n(&ls__lu_state, __ATOMIC_ACQUIRE) <= 0) return 0; /* never loads here */
    int got = ls__lu.backtrace(buf, LS_UW_LU_BUF);
    /* The agent's own frames come first; the first occurrence of start->pc is where the walk
     * that ls__unwind_fast(start) makes begins. */
    int first = 0;
    while (first < got && first < 64 && (uintptr_t)buf[first] != start->pc) first++;
    if (first == got || first == 64) return 0;
    return ls__uw_lu_copy(buf, got, first, pcs, max);
}

uintptr_t ls__unwind_stack_top(uintptr_t sp)
{
    /* /proc/self/maps through a fixed buffer: no stdio, no malloc. */
    int fd = ls__maps_open();
    if (fd < 0) return 0;
    char buf[4096];
    size_t have = 0;
    uintptr_t top = 0;
    for (;;) {
        ssize_t got = read(fd, buf + have, sizeof buf - have);
        if (got <= 0) break;
        have += (size_t)got;
        size_t line = 0;
        for (size_t i = 0; i < have; i++) {
            if (buf[i] != '\n') continue;
            uintptr_t a = 0, b = 0;
            size_t j = line;
            for (; j < i && buf[j] != '-'; j++)
                a = a * 16 + (uintptr_t)(buf[j] <= '9' ? buf[j] - '0' : (buf[j] | 0x20) - 'a' + 10);
            for (j++; j < i && buf[j] != ' '; j++)
                b = b * 16 + (uintptr_t)(buf[j] <= '9' ? buf[j] - '0' : (buf[j] | 0x20) - 'a' + 10);
            line = i + 1;
            if (sp >= a && sp < b) {
                top = b;
                goto out;
            }
        }
        memmove(buf, buf + line, have - line); /* keep the partial last line */
        have -= line;
        if (have == sizeof buf) have = 0; /* a line longer than the buffer: cannot be ours */
    }
out:
    close(fd);
    return top;
}
