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
#define LS_FMT_VERSION_MINOR 1

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

_Static_assert(sizeof(ls_fmt_file_header_t) == 32, "file header layout");
_Static_assert(sizeof(ls_fmt_chunk_header_t) == 24, "chunk header layout");
_Static_assert(sizeof(ls_fmt_module_t) == 40, "module layout");
_Static_assert(sizeof(ls_fmt_block_t) == 40, "block layout");
_Static_assert(sizeof(ls_fmt_marker_t) == 24, "marker layout");

static inline size_t ls_fmt_pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

#endif
