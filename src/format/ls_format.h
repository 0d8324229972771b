/*
 * ls_format.h - the snapshot file: the one contract between the agent and the CLI.
 *
 * A snapshot is a 32-byte file header followed by chunks. Every chunk is a 24-byte header
 * (type, record count, payload size, CRC-32 of the payload) and its payload; the file ends with
 * an END chunk whose count is the number of chunks before it, so a truncated file is detected.
 * Unknown chunk types are skipped by readers (forward compatibility); a file whose major version
 * differs is refused. All integers are little-endian, records are 8-byte aligned. The agent
 * writes snapshots to a temporary name and renames them, so a reader never sees half a file.
 *
 * The layout of every record is described here and in docs/FORMAT.md; keep both in step.
 * Writer (agent side, never allocates): ls_format_write.c. Reader (CLI side): ls_format_read.c.
 */
#ifndef LS_FORMAT_H
#define LS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define LS_FMT_MAGIC         "LKSCOPE\0"
#define LS_FMT_VERSION_MAJOR 1
#define LS_FMT_VERSION_MINOR 5

typedef struct ls_fmt_file_header {
    char magic[8];          /* LS_FMT_MAGIC */
    uint16_t version_major; /* readers refuse a different major */
    uint16_t version_minor; /* readers accept any minor */
    uint32_t header_size;   /* sizeof(ls_fmt_file_header_t), room to grow */
    uint64_t flags;         /* reserved, 0 */
    uint64_t reserved;
} ls_fmt_file_header_t;

typedef struct ls_fmt_chunk_header {
    uint32_t type;  /* ls_fmt_chunk_type_t */
    uint32_t count; /* number of records (meaning per chunk type) */
    uint64_t size;  /* payload bytes that follow this header, a multiple of 8 */
    uint32_t crc32; /* zlib crc32 of the payload */
    uint32_t flags; /* reserved, 0 (later: compression) */
} ls_fmt_chunk_header_t;

typedef enum ls_fmt_chunk_type {
    LS_CHUNK_META = 1,    /* key/value items, see ls_fmt_meta_key_t */
    LS_CHUNK_MODULES = 2, /* ls_fmt_module_t records, variable length */
    LS_CHUNK_STACKS = 3,  /* ls_fmt_stack_t records, variable length */
    LS_CHUNK_BLOCKS = 4,  /* ls_fmt_block_t records, fixed length */
    LS_CHUNK_STATS = 5,   /* key/value items, see ls_fmt_stat_key_t */
    LS_CHUNK_MARKERS = 6, /* ls_fmt_marker_t records, variable length (since 1.1) */
    /* reference counts (since 1.2), written when the process used them */
    LS_CHUNK_REF_TYPES = 7,     /* ls_fmt_ref_type_t records, variable length */
    LS_CHUNK_REF_OBJECTS = 8,   /* ls_fmt_ref_object_t records, fixed length */
    LS_CHUNK_REF_EVENTS = 9,    /* ls_fmt_ref_event_t records, fixed length */
    LS_CHUNK_REF_FINDINGS = 10, /* ls_fmt_ref_finding_t records, fixed length */
    LS_CHUNK_REF_PAIRS = 11,    /* ls_fmt_ref_pair_t records, fixed length */
    /* mode sample (since 1.3) */
    LS_CHUNK_SAMPLE_ALLOCS = 12, /* ls_fmt_sample_alloc_t records, fixed length */
    /* mode sites (since 1.4) */
    LS_CHUNK_SITES = 13, /* ls_fmt_site_t records, fixed length */
    /* compile-time tags and fault injection (1.5) */
    LS_CHUNK_TAGS = 14,   /* ls_fmt_tag_t records, variable length */
    LS_CHUNK_FAULTS = 15, /* ls_fmt_fault_t records, fixed length */
    LS_CHUNK_END = 0x454e4400u,
} ls_fmt_chunk_type_t;

/*
 * META and STATS payloads: a sequence of items {u16 key, u16 type, u32 len, data[len], pad to 8}.
 * type 1 = unsigned 64-bit integer (len 8), 2 = signed 64-bit (len 8), 3 = UTF-8 string (no NUL).
 */
typedef struct ls_fmt_item {
    uint16_t key;
    uint16_t type;
    uint32_t len;
} ls_fmt_item_t;

enum { LS_ITEM_U64 = 1, LS_ITEM_I64 = 2, LS_ITEM_STR = 3 };

typedef enum ls_fmt_meta_key {
    LS_META_PID = 1,               /* u64 */
    LS_META_PPID = 2,              /* u64 */
    LS_META_EXE = 3,               /* str: /proc/self/exe */
    LS_META_CMDLINE = 4,           /* str: argv joined by single spaces */
    LS_META_START_NS = 5,          /* u64: CLOCK_REALTIME at agent start, ns */
    LS_META_SNAP_NS = 6,           /* u64: CLOCK_MONOTONIC ns since agent start when taken */
    LS_META_REASON = 7,            /* u64: ls_fmt_reason_t */
    LS_META_EXIT_STATUS = 8,       /* i64: exit status (reason exit) */
    LS_META_SIGNAL = 9,            /* u64: fatal signal number (reason signal) */
    LS_META_MODE = 10,             /* str: "full" */
    LS_META_OPTIONS = 11,          /* str: the effective LEAKSCOPE_OPTIONS */
    LS_META_LEAK_CHECKED = 12,     /* u64: 1 when blocks carry a reachability kind */
    LS_META_AGENT_VERSION = 13,    /* str */
    LS_META_MAX_FRAMES = 14,       /* u64 */
    LS_META_SNAP_REALTIME_NS = 15, /* u64: CLOCK_REALTIME ns when taken (since 1.1) */
    LS_META_TRIGGER = 16,  /* str: what asked for it: exit, signal, control, api, interval (1.1) */
    LS_META_SNAP_SEQ = 17, /* u64: live snapshots taken by this process so far, this one included */
    LS_META_REFS = 18,     /* str: the refs option (wrapped REF:UNREF[:TYPE] functions), 1.2 */
    LS_META_SAMPLE_RATE = 19,   /* u64: mode sample: mean bytes between samples (1.3) */
    LS_META_SITE_FRAMES = 20,   /* u64: mode sites: frames that make a site (1.4) */
    LS_META_SITES_ENABLED = 21, /* u64: mode sites: 1 when counting was on when taken (1.4) */
    LS_META_FAIL = 22,          /* str: the fail option (fault injection rules), 1.5 */
} ls_fmt_meta_key_t;

typedef enum ls_fmt_reason {
    LS_REASON_EXIT = 1,   /* normal process exit (return from main, exit, _exit) */
    LS_REASON_SIGNAL = 2, /* fatal signal */
    LS_REASON_LIVE = 3,   /* taken while the process runs */
} ls_fmt_reason_t;

typedef enum ls_fmt_stat_key {
    LS_STAT_MALLOC_CALLS = 1,  /* all allocating calls seen */
    LS_STAT_FREE_CALLS = 2,    /* all free calls seen, incl. free(NULL) */
    LS_STAT_UNKNOWN_FREES = 3, /* frees of pointers the agent never tracked */
    LS_STAT_LIVE_BLOCKS = 4,   /* live tracked blocks when taken */
    LS_STAT_LIVE_BYTES = 5,
    LS_STAT_STACKS = 6,               /* distinct stacks interned */
    LS_STAT_AGENT_BYTES = 7,          /* memory the agent mapped for itself */
    LS_STAT_THREADS_STOPPED = 8,      /* threads parked for the leak check */
    LS_STAT_THREADS_UNRESPONSIVE = 9, /* threads that did not park; stacks scanned whole */
    LS_STAT_ROOT_BYTES = 10,          /* bytes of root memory scanned */
    LS_STAT_SCAN_NS = 11,             /* time of the reachability scan */
    LS_STAT_TRUNCATED_STACKS = 12,    /* stacks cut at max_frames */
    LS_STAT_AGENT_ERRORS = 13,        /* internal errors the agent survived (reported on stderr) */
    LS_STAT_PEAK_BLOCKS = 14,
    LS_STAT_PEAK_BYTES = 15,
    LS_STAT_PAUSE_NS = 16,        /* how long the host's threads were parked for this snapshot */
    LS_STAT_MARKERS_DROPPED = 17, /* markers not recorded: the agent's marker table was full */
    /* reference counts (1.2) */
    LS_STAT_REF_OBJECTS_LIVE = 18,       /* registered objects alive when taken */
    LS_STAT_REF_OBJECTS_TOTAL = 19,      /* objects registered since start */
    LS_STAT_REF_EVENTS = 20,             /* get/put/create/destroy events recorded since start */
    LS_STAT_REF_EVENTS_DROPPED = 21,     /* events counted but not recorded (a bound was hit) */
    LS_STAT_REF_EVENT_BYTES = 22,        /* bytes of event records in use when taken */
    LS_STAT_REF_OBJECTS_DROPPED = 23,    /* objects not tracked: the object table was full */
    LS_STAT_REF_FINDINGS_DROPPED = 24,   /* findings not recorded: the findings table was full */
    LS_STAT_REF_PAIRS_DROPPED = 25,      /* learned pairs not recorded: the pair table was full */
    LS_STAT_REF_EVENTS_COMPACTED = 26,   /* paired events removed from long histories */
    LS_STAT_REF_QUARANTINE_EVICTED = 27, /* dead objects forgotten to make room */
    /* fault injection (1.5) */
    LS_STAT_FAIL_CALLS = 28,      /* allocating calls that matched a fail rule */
    LS_STAT_FAIL_INJECTED = 29,   /* of those, made to fail (NULL, errno ENOMEM) */
    LS_STAT_FAIL_UNRECORDED = 30, /* injected failures whose stack did not fit in FAULTS */
} ls_fmt_stat_key_t;

/*
 * MODULES: one record per loaded object the agent saw, including ones dlclose'd since.
 * A PC p of stack s belongs to module m when m.lo <= p < m.hi and m.first_stack <= s < m.end_stack
 * (stack ids are handed out in time order, so this tells apart objects mapped at the same address
 * at different times). Followed by path (path_len bytes) and build-id (build_id_len bytes), padded
 * to 8.
 */
typedef struct ls_fmt_module {
    uint64_t bias;        /* load bias: runtime address - ELF virtual address */
    uint64_t lo, hi;      /* runtime address range of the object's PT_LOAD segments */
    uint32_t first_stack; /* first stack id interned while mapped */
    uint32_t end_stack;   /* first stack id interned after dlclose, UINT32_MAX if still mapped */
    uint16_t path_len;
    uint16_t build_id_len;
    uint32_t reserved;
} ls_fmt_module_t;

/* STACKS: {u32 id, u32 nframes, u64 pc[nframes]}; pc[0] is the innermost caller of the
 * allocation function. Return addresses are stored as captured (the call site is pc - 1). */
typedef struct ls_fmt_stack {
    uint32_t id;
    uint32_t nframes;
} ls_fmt_stack_t;

typedef enum ls_fmt_block_kind {
    LS_KIND_UNCHECKED = 0,  /* no reachability scan (live snapshot) */
    LS_KIND_DEFINITELY = 1, /* definitely lost: no pointer to it from roots or reachable blocks */
    LS_KIND_INDIRECTLY = 2, /* indirectly lost: reachable only from lost blocks */
    LS_KIND_POSSIBLY = 3,   /* possibly lost: reachable only through interior pointers */
    LS_KIND_REACHABLE = 4,  /* still reachable */
} ls_fmt_block_kind_t;

enum { LS_BLOCK_VIA_HEURISTIC = 1 }; /* ls_fmt_block_t.flags: reachable through a heuristic */

/* BLOCKS: live blocks, sorted by address. */
typedef struct ls_fmt_block {
    uint64_t addr;
    uint64_t size;     /* requested size */
    uint64_t birth_ns; /* CLOCK_MONOTONIC ns since agent start */
    uint32_t stack;    /* stack id, 0 = no stack */
    uint32_t leader;   /* indirectly lost: index (in this chunk) of its definitely lost leader */
    uint8_t kind;      /* ls_fmt_block_kind_t */
    uint8_t flags;
    uint16_t reserved0;
    uint32_t reserved1;
} ls_fmt_block_t;

#define LS_NO_LEADER UINT32_MAX

/*
 * MARKERS: named points in the process's life, in placement order, followed by the label
 * (label_len bytes, UTF-8, no NUL) padded to 8. time_ns is on the clock of ls_fmt_block_t.birth_ns
 * and the agent keeps the two exact against each other: a block allocated after the marker was
 * placed has birth_ns >= time_ns, one allocated before has birth_ns < time_ns. So a block's marker
 * epoch (the markers placed before it was born) is the number of markers with time_ns <= birth_ns.
 */
typedef struct ls_fmt_marker {
    uint64_t time_ns;     /* CLOCK_MONOTONIC ns since agent start, on the birth_ns scale */
    uint64_t realtime_ns; /* CLOCK_REALTIME ns when placed */
    uint32_t seq;         /* 1, 2, ... in placement order */
    uint16_t label_len;
    uint16_t reserved;
} ls_fmt_marker_t;

/*
 * Reference counts (1.2). Ids of types are 1, 2, ... in REF_TYPES; stack ids refer to STACKS.
 *
 * REF_TYPES: {ls_fmt_ref_type_t, name (name_len bytes, UTF-8, no NUL), padded to 8}.
 */
enum { LS_REF_TYPE_WRAPPED = 1 }; /* objects seen through wrapped functions (run --refs) */
typedef struct ls_fmt_ref_type {
    uint32_t id;
    uint16_t name_len;
    uint16_t flags; /* LS_REF_TYPE_* */
} ls_fmt_ref_type_t;

/* What an event did to the object's count. */
typedef enum ls_fmt_ref_op {
    LS_REF_OP_CREATE = 1,  /* registered: holds object.initial references */
    LS_REF_OP_GET = 2,     /* +1 */
    LS_REF_OP_PUT = 3,     /* -1 */
    LS_REF_OP_DESTROY = 4, /* ls_ref_destroy */
    LS_REF_OP_FREE = 5,    /* the heap block holding the object was freed */
} ls_fmt_ref_op_t;

/* REF_EVENTS: one object's history is a run of consecutive records, oldest first. */
typedef struct ls_fmt_ref_event {
    uint32_t stack;   /* stack id of the code that did it, 0 = none */
    uint32_t tid;     /* thread id */
    uint32_t tracker; /* ls_ref_get_tracked / ls_ref_put_tracked tracker, 0 = none */
    uint8_t op;       /* ls_fmt_ref_op_t */
    uint8_t flags;    /* reserved, 0 */
    uint16_t reserved;
} ls_fmt_ref_event_t;

enum {
    LS_REF_OBJ_WRAPPED = 1,    /* seen through wrapped functions: dies when its block is freed */
    LS_REF_OBJ_INCOMPLETE = 2, /* some of its events were not recorded (dropped_events) */
    LS_REF_OBJ_COMPACTED = 4,  /* paired events were removed from its history */
};

/* REF_OBJECTS: the registered objects alive when the snapshot was taken, by address. */
typedef struct ls_fmt_ref_object {
    uint64_t addr;
    uint64_t block;    /* start of the tracked heap block holding it, 0 = none found */
    uint64_t birth_ns; /* registration, on the clock of ls_fmt_block_t.birth_ns */
    int64_t count;     /* the agent's shadow count */
    int64_t initial;   /* references the creation held */
    uint32_t type;     /* REF_TYPES id */
    uint32_t create_stack;
    uint32_t first_event; /* its history: REF_EVENTS[first_event, first_event + nevents) */
    uint32_t nevents;
    uint32_t dropped_events; /* events not recorded (bounds) */
    uint32_t flags;          /* LS_REF_OBJ_* */
} ls_fmt_ref_object_t;

typedef enum ls_fmt_ref_finding_kind {
    LS_REF_FIND_DOUBLE_PUT = 1,       /* a put below zero, or on an object a put already killed */
    LS_REF_FIND_USE_AFTER_PUT = 2,    /* a get (or put, destroy) on an object already dead */
    LS_REF_FIND_DESTROY_UNKNOWN = 3,  /* ls_ref_destroy of an object never registered */
    LS_REF_FIND_UNREGISTERED = 4,     /* a get or put on an object never registered */
    LS_REF_FIND_BAD_TRACKER = 5,      /* a put with a tracker this object never handed out */
    LS_REF_FIND_FREED_REFERENCED = 6, /* its block was freed while it still held references */
} ls_fmt_ref_finding_kind_t;

/* REF_FINDINGS: errors seen as they happened. Occurrences with equal kind, type, stack and
 * other_stack are folded into one record (count); the first occurrence's details are kept. */
typedef struct ls_fmt_ref_finding {
    uint64_t addr;
    uint64_t time_ns; /* first occurrence, on the birth_ns clock */
    uint32_t kind;    /* ls_fmt_ref_finding_kind_t */
    uint32_t type;    /* REF_TYPES id, 0 = unknown */
    uint32_t op;      /* ls_fmt_ref_op_t of the offending operation */
    uint32_t stack;   /* the offending operation's stack */
    uint32_t tid;
    uint32_t other_stack; /* double put: the put that took it to zero; use after put: the
                           * operation that killed it (put, destroy or free); else 0 */
    uint32_t other_tid;
    uint32_t create_stack;
    uint32_t first_event; /* the object's history at the first occurrence (REF_EVENTS) */
    uint32_t nevents;
    uint32_t count; /* occurrences folded in */
    uint32_t reserved;
} ls_fmt_ref_finding_t;

/* REF_PAIRS: what released objects taught: the reference taken at get_stack (a get, or the
 * creation when get_op is CREATE) was dropped at put_stack, count times. The agent pairs an
 * object's events when it dies (trackers when it has them, else the put with the deepest common
 * caller, the latest such reference first); readers use these pairs to name the unpaired gets
 * of leaked objects (docs/DESIGN.md, reference counts). */
typedef struct ls_fmt_ref_pair {
    uint32_t get_stack;
    uint32_t put_stack;
    uint32_t type;
    uint32_t count;
    uint8_t get_op; /* LS_REF_OP_GET or LS_REF_OP_CREATE */
    uint8_t reserved[7];
} ls_fmt_ref_pair_t;

/*
 * Mode sample (1.3). The agent samples allocations as a Poisson process over allocated bytes
 * with mean interval sample_rate (META): an allocation of s bytes is sampled with probability
 * p(s) = 1 - exp(-s / sample_rate). Only sampled blocks are tracked, so BLOCKS lists the live
 * sampled blocks (kind UNCHECKED); a reader weighs each by 1/p(size) objects and size/p(size)
 * bytes to estimate what is in use. SAMPLE_ALLOCS accumulates every sampled allocation since the
 * start (freed ones included) per stack, for the "allocated" views; the agent adds the weights
 * as it samples, so the estimates need no per-allocation sizes.
 */
typedef struct ls_fmt_sample_alloc {
    uint32_t stack;
    uint32_t reserved;
    uint64_t samples;       /* sampled allocations */
    uint64_t sampled_bytes; /* their requested bytes */
    double est_objects;     /* sum of 1/p(size): estimated allocations */
    double est_bytes;       /* sum of size/p(size): estimated bytes allocated */
} ls_fmt_sample_alloc_t;

/*
 * Mode sites (1.4): per allocation site, counters kept by the agent for every allocation made
 * while counting was enabled (the kernel's /proc/allocinfo in user space). A site is a STACKS
 * entry holding the site_frames (META) innermost frames of the allocating call: with 1, the
 * return address into the code that called malloc. No BLOCKS are written (blocks carry only a
 * site id) and there is no leak check. Blocks allocated while counting was off are never
 * charged, so their frees change no counter: live_* never go negative. realloc counts as a free
 * of the old block at its site and an allocation at realloc's caller.
 */
typedef struct ls_fmt_site {
    uint32_t stack;      /* STACKS id of the site's frames */
    uint32_t tag;        /* 0, or 1 + the index in TAGS of the compile-time tag of the site */
    int64_t live_bytes;  /* requested bytes of this site's blocks not freed yet */
    int64_t live_blocks; /* those blocks */
    uint64_t allocs;     /* allocations here since the start (while counting) */
    uint64_t bytes;      /* their requested bytes */
} ls_fmt_site_t;

/*
 * Compile-time tags (1.5, include/leakscope/tags.h): a program built with tags names each of its
 * allocating calls with a static tag (file, line, function). A tagged call is counted at the
 * tag's own site, whose SITES record has tag = 1 + the index of the tag's record here, and whose
 * stack holds one address: the tag object's own (in the data of the module that holds the call,
 * so MODULES tells the module; it is not a return address). TAGS lists every tag the agent
 * registered, called or not. Record: ls_fmt_tag_t, then file (file_len bytes) and function
 * (func_len bytes), UTF-8 without NUL, padded to 8.
 */
typedef enum ls_fmt_tag_kind {
    LS_TAG_KIND_MALLOC = 1, /* malloc, strdup, strndup (the header builds them on malloc) */
    LS_TAG_KIND_CALLOC = 2,
    LS_TAG_KIND_REALLOC = 3, /* realloc, reallocarray */
    LS_TAG_KIND_ALIGNED = 4, /* aligned_alloc, posix_memalign, memalign, valloc */
} ls_fmt_tag_kind_t;

typedef struct ls_fmt_tag {
    uint32_t line;
    uint16_t file_len;
    uint16_t func_len;
    uint16_t kind; /* ls_fmt_tag_kind_t */
    uint16_t reserved0;
    uint32_t reserved1;
} ls_fmt_tag_t;

/*
 * Fault injection (1.5): with the fail option (META fail, `leakscope run --fail`), allocating
 * calls that match a rule are made to fail (NULL, errno ENOMEM) by its schedule. FAULTS has one
 * record per (rule, stack) of the failures injected; STATS fail_* count them all.
 */
typedef struct ls_fmt_fault {
    uint32_t stack;    /* STACKS id of the failed call (innermost frame: the caller) */
    uint32_t rule;     /* index of the rule in META fail, 0-based */
    uint64_t count;    /* failures injected there */
    uint64_t first_ns; /* CLOCK_MONOTONIC ns since agent start of the first one */
} ls_fmt_fault_t;

_Static_assert(sizeof(ls_fmt_tag_t) == 16, "tag layout");
_Static_assert(sizeof(ls_fmt_fault_t) == 24, "fault layout");
_Static_assert(sizeof(ls_fmt_site_t) == 40, "site layout");
_Static_assert(sizeof(ls_fmt_sample_alloc_t) == 40, "sample alloc layout");
_Static_assert(sizeof(ls_fmt_file_header_t) == 32, "file header layout");
_Static_assert(sizeof(ls_fmt_ref_type_t) == 8, "ref type layout");
_Static_assert(sizeof(ls_fmt_ref_event_t) == 16, "ref event layout");
_Static_assert(sizeof(ls_fmt_ref_object_t) == 64, "ref object layout");
_Static_assert(sizeof(ls_fmt_ref_finding_t) == 64, "ref finding layout");
_Static_assert(sizeof(ls_fmt_ref_pair_t) == 24, "ref pair layout");
_Static_assert(sizeof(ls_fmt_chunk_header_t) == 24, "chunk header layout");
_Static_assert(sizeof(ls_fmt_module_t) == 40, "module layout");
_Static_assert(sizeof(ls_fmt_block_t) == 40, "block layout");
_Static_assert(sizeof(ls_fmt_marker_t) == 24, "marker layout");

static inline size_t ls_fmt_pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

#endif
