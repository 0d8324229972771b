/*
 * ls_symbolize.h - turns the raw return addresses of a snapshot into source-level frames.
 *
 * Built on elfutils libdwfl, from the module list the agent recorded (path, load bias, address
 * range, build-id). One PC may expand to several frames: the functions inlined at that address,
 * innermost first, then the function they were inlined into. Results are cached per
 * (module, pc), so a report that meets the same PC in many stacks resolves it once.
 *
 * Frames and their strings belong to the symbolizer and stay valid until ls_symbolizer_free.
 */
#ifndef LS_SYMBOLIZE_H
#define LS_SYMBOLIZE_H

#include "ls_format_read.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ls_symbolizer ls_symbolizer_t;

/* Why a frame carries less than a function name (ls_sym_frame_t.status). */
typedef enum ls_sym_status {
    LS_SYM_OK = 0,        /* resolved as far as the object's symbols and DWARF allow */
    LS_SYM_NO_MODULE = 1, /* the pc lies in no recorded module */
    LS_SYM_NO_FILE = 2,   /* the module's file cannot be opened or is not ELF */
    LS_SYM_BUILD_ID = 3,  /* the file on disk is not the one that was loaded */
    LS_SYM_NO_SYMBOL = 4, /* the object is right but has no symbol covering the pc */
} ls_sym_status_t;

typedef struct ls_sym_frame {
    uint64_t pc;          /* the return address as recorded (the call is at pc - 1) */
    const char *function; /* demangled name; NULL when unknown */
    const char *file;     /* source path, absolute when DWARF allows; NULL when unknown */
    unsigned line;        /* 0 when unknown */
    unsigned column;      /* 0 when unknown */
    const char *object;   /* path of the module holding pc; NULL when in no module */
    uint64_t offset;      /* pc - load bias: the address inside the ELF file (addr2line's) */
    uint8_t inlined;      /* 1: this function was inlined into the next frame (same pc) */
    uint8_t status;       /* ls_sym_status_t */
} ls_sym_frame_t;

/*
 * A symbolizer for snap's modules; snap must outlive it. debuginfo_path is libdwfl's search
 * path for separate debug files (NULL: the default ":.debug:/usr/lib/debug", which covers
 * .gnu_debuglink and /usr/lib/debug/.build-id). Modules are opened lazily, on their first PC.
 * Returns NULL only when out of memory.
 */
ls_symbolizer_t *ls_symbolizer_new(const ls_snapshot_t *snap, const char *debuginfo_path);
void ls_symbolizer_free(ls_symbolizer_t *s);

/*
 * Resolves the return address pc, seen in stack stack_id (which picks the module when objects
 * were mapped at the same address at different times; 0 = any). Sets *frames to 1 or more
 * frames, innermost first, and returns their count; never fails on bad input (unknowns give a
 * module+offset or a bare pc frame). Returns 0 only when out of memory.
 */
size_t ls_symbolize_pc(ls_symbolizer_t *s, uint64_t pc, uint32_t stack_id,
                       const ls_sym_frame_t **frames);

/* Counters for tests and --verbose: PCs asked for, and how many were not in the cache. */
void ls_symbolizer_stats(const ls_symbolizer_t *s, uint64_t *lookups, uint64_t *misses);

/* Demangles an Itanium C++ name ("_Z..."); returns a malloc'd string, or NULL when name is not
 * mangled or the C++ runtime's demangler is unavailable. */
char *ls_demangle(const char *name);

/* Short words for ls_sym_status_t ("build-id mismatch", ...); NULL for LS_SYM_OK. */
const char *ls_sym_status_name(unsigned status);

/* A 64-bit finalizer (murmur3's): spreads a key over the bits a hash table indexes by. Shared by
 * the CLI's tables (symbol cache, aggregation). */
static inline uint64_t ls_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

#endif
