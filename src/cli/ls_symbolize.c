/*
 * ls_symbolize.c - PC -> {function, file, line, inlined chain, object} with elfutils libdwfl.
 *
 * Owns: one lazily opened Dwfl per snapshot module, a cache of resolved PCs and an intern
 * table for the strings they share.
 *
 * Shape:
 *  - mods[i] mirrors snap->modules[i]: state (untried / ready / why not), its own Dwfl with the
 *    one ELF file reported at the recorded load bias. A Dwfl per module rather than one for all:
 *    the agent records objects dlclose'd since, so two modules may claim the same addresses
 *    (told apart by stack id ranges) and a single Dwfl refuses overlapping modules. It also
 *    means an object is opened only when a stack actually goes through it.
 *    Each also gets, on demand, its own CU range index: libdw (<= 0.189) finds the CU of an
 *    address only through .debug_aranges, which clang does not emit by default, so objects
 *    built by clang (or mixing clang and gcc CUs) would otherwise lose all file:line data.
 *  - cache: open-addressing table of entries keyed by (module index + 1, pc), each holding the
 *    frames for that pc (innermost inlined first). Frames' strings point into strs, where every
 *    distinct name or path is stored once (a report meets the same function at many PCs).
 *
 * The symbols are trusted only when the file on disk is the one that was loaded: the build-id
 * must match the recorded one. Otherwise the frame says module+offset, never a wrong name.
 *
 * Demangling: libdw returns mangled C++ names. We use the C++ runtime's __cxa_demangle, found
 * with dlsym (already loaded) or dlopen("libstdc++.so.6") on the first mangled name, instead of
 * linking -lstdc++: the CLI stays a plain C program with no C++ runtime dependency for C-only
 * users, and if libstdc++ is absent names are shown mangled rather than the CLI failing to start.
 * Single-threaded, like the rest of the CLI.
 */
#include "ls_symbolize.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { MOD_UNTRIED = -1, MOD_READY = 0 }; /* otherwise an ls_sym_status_t failure */

/* One address range of a CU, for finding CUs without .debug_aranges (see find_cu). */
typedef struct cu_range {
    Dwarf_Addr lo, hi; /* DWARF addresses (runtime address - dwbias) */
    Dwarf_Die cu;
} cu_range_t;

typedef struct sym_module {
    int state;
    Dwfl *dwfl;
    Dwfl_Module *mod;
    const char *path; /* display path: the recorded one, or the snapshot's exe when empty */
    cu_range_t *cus;  /* sorted by lo; built on the first address libdwfl cannot place */
    size_t ncus;
    int cus_built;
} sym_module_t;

typedef struct cache_entry {
    uint64_t pc;
    uint32_t module; /* index in snap->modules + 1; 0 = pc in no module */
    uint32_t nframes;
    ls_sym_frame_t frames[]; /* nframes */
} cache_entry_t;

typedef struct strset {
    char **slots;
    size_t cap, n; /* cap is a power of two, kept at most half full */
} strset_t;

struct ls_symbolizer {
    const ls_snapshot_t *snap;
    sym_module_t *mods;
    Dwfl_Callbacks cb;
    char *debuginfo_path; /* cb.debuginfo_path points here */
    cache_entry_t **cache;
    size_t cache_cap, cache_n;
    strset_t strs;
    uint64_t lookups, misses;
};

/* ---- helpers --------------------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Returns the table's copy of s (NULL stays NULL, and out of memory gives NULL). */
static const char *intern(strset_t *t, const char *s)
{
    if (!s) return NULL;
    if (2 * (t->n + 1) > t->cap) {
        size_t ncap = t->cap ? 2 * t->cap : 256;
        char **ns = calloc(ncap, sizeof(*ns));
        if (!ns) return NULL;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slots[i]) continue;
            size_t j = hash_str(t->slots[i]) & (ncap - 1);
            while (ns[j]) j = (j + 1) & (ncap - 1);
            ns[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    size_t j = hash_str(s) & (t->cap - 1);
    while (t->slots[j]) {
        if (strcmp(t->slots[j], s) == 0) return t->slots[j];
        j = (j + 1) & (t->cap - 1);
    }
    char *c = strdup(s);
    if (!c) return NULL;
    t->slots[j] = c;
    t->n++;
    return c;
}

/* Interns path, joined to comp_dir when it is relative (DWARF file names may be either). */
static const char *intern_path(strset_t *t, const char *path, const char *comp_dir)
{
    if (!path) return NULL;
    if (path[0] == '/' || !comp_dir || !comp_dir[0]) return intern(t, path);
    size_t a = strlen(comp_dir), b = strlen(path);
    char *j = malloc(a + b + 2);
    if (!j) return intern(t, path);
    memcpy(j, comp_dir, a);
    j[a] = '/';
    memcpy(j + a + 1, path, b + 1);
    const char *r = intern(t, j);
    free(j);
    return r;
}

typedef char *(*cxa_demangle_fn)(const char *, char *, size_t *, int *);

char *ls_demangle(const char *name)
{
    static int tried;
    static cxa_demangle_fn fn;
    if (!name || name[0] != '_' || name[1] != 'Z') return NULL;
    if (!tried) {
        tried = 1;
        void *p = dlsym(RTLD_DEFAULT, "__cxa_demangle");
        if (!p) {
            /* Kept open for the process's life: unloading a C++ runtime is never safe. */
            void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
            if (h) p = dlsym(h, "__cxa_demangle");
        }
        memcpy(&fn, &p, sizeof(fn)); /* object pointer -> function pointer, as POSIX allows */
    }
    if (!fn) return NULL;
    int status = -1;
    char *d = fn(name, NULL, NULL, &status);
    if (status != 0) {
        free(d);
        return NULL;
    }
    return d;
}

/* A name, demangled when it is a C++ symbol. */
static const char *intern_symbol(strset_t *t, const char *name)
{
    if (!name || !name[0]) return NULL;
    char *d = ls_demangle(name);
    if (!d) return intern(t, name);
    const char *r = intern(t, d);
    free(d);
    return r;
}

const char *ls_sym_status_name(unsigned status)
{
    switch (status) {
    case LS_SYM_NO_MODULE:
        return "no module";
    case LS_SYM_NO_FILE:
        return "object not readable";
    case LS_SYM_BUILD_ID:
        return "build-id mismatch";
    case LS_SYM_NO_SYMBOL:
        return "no symbol";
    default:
        return NULL;
    }
}

/* ---- modules --------------------------------------------------------------------------- */

ls_symbolizer_t *ls_symbolizer_new(const ls_snapshot_t *snap, const char *debuginfo_path)
{
    ls_symbolizer_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->snap = snap;
    s->mods = calloc(snap->nmodules ? snap->nmodules : 1, sizeof(*s->mods));
    if (!s->mods) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < snap->nmodules; i++) {
        s->mods[i].state = MOD_UNTRIED;
        const char *p = snap->modules[i].path;
        /* The main program is reported by dl_iterate_phdr with an empty name. */
        s->mods[i].path = p && p[0] ? p : (snap->exe && snap->exe[0] ? snap->exe : p);
    }
    if (debuginfo_path) {
        s->debuginfo_path = strdup(debuginfo_path);
        if (!s->debuginfo_path) {
            free(s->mods);
            free(s);
            return NULL;
        }
    }
    s->cb.find_elf = dwfl_build_id_find_elf; /* unused with dwfl_report_elf, required non-NULL */
    s->cb.find_debuginfo = dwfl_standard_find_debuginfo; /* debuglink, build-id, /usr/lib/debug */
    s->cb.section_address = dwfl_offline_section_address;
    s->cb.debuginfo_path = &s->debuginfo_path;
    return s;
}

/* True when the ELF's load range agrees with the recorded one: the only check left for an
 * object without a build-id. Weak by nature (a rebuilt file of similar layout passes). */
static bool range_plausible(Dwfl_Module *mod, const ls_fmt_module_t *rec)
{
    Dwarf_Addr start = 0, end = 0;
    dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL);
    uint64_t lo = rec->lo & ~(uint64_t)0xfff, hi = (rec->hi + 0xfff) & ~(uint64_t)0xfff;
    /* libdwfl aligns segment starts to p_align (up to 2 MiB on old x86-64 links). */
    const uint64_t slop = 0x200000;
    return start <= rec->lo && start + slop >= lo && end + slop >= hi && end <= hi + slop;
}

static int open_module(ls_symbolizer_t *s, size_t idx)
{
    sym_module_t *sm = &s->mods[idx];
    const ls_snap_module_t *m = &s->snap->modules[idx];
    /* "[vdso]", "linux-vdso.so.1" and other non-files have no absolute path. */
    if (!sm->path || sm->path[0] != '/') return LS_SYM_NO_FILE;
    Dwfl *dwfl = dwfl_begin(&s->cb);
    if (!dwfl) return LS_SYM_NO_FILE;
    dwfl_report_begin(dwfl);
    /* ET_DYN: base is where vaddr 0 lands, i.e. the load bias; ET_EXEC ignores it. */
    Dwfl_Module *mod = dwfl_report_elf(dwfl, sm->path, sm->path, -1, m->rec.bias, false);
    if (dwfl_report_end(dwfl, NULL, NULL) != 0 || !mod) {
        dwfl_end(dwfl);
        return LS_SYM_NO_FILE;
    }
    GElf_Addr bias = 0;
    if (!dwfl_module_getelf(mod, &bias)) {
        dwfl_end(dwfl);
        return LS_SYM_NO_FILE;
    }
    const unsigned char *bits = NULL;
    GElf_Addr vaddr = 0;
    int n = dwfl_module_build_id(mod, &bits, &vaddr);
    bool same;
    if (m->rec.build_id_len)
        same = n == (int)m->rec.build_id_len && memcmp(bits, m->build_id, (size_t)n) == 0;
    else
        same = range_plausible(mod, &m->rec);
    if (!same) {
        dwfl_end(dwfl);
        return LS_SYM_BUILD_ID;
    }
    sm->dwfl = dwfl;
    sm->mod = mod;
    return MOD_READY;
}

void ls_symbolizer_free(ls_symbolizer_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->snap->nmodules; i++) {
        if (s->mods[i].dwfl) dwfl_end(s->mods[i].dwfl);
        free(s->mods[i].cus);
    }
    free(s->mods);
    for (size_t i = 0; i < s->cache_cap; i++) free(s->cache[i]);
    free(s->cache);
    for (size_t i = 0; i < s->strs.cap; i++) free(s->strs.slots[i]);
    free(s->strs.slots);
    free(s->debuginfo_path);
    free(s);
}

void ls_symbolizer_stats(const ls_symbolizer_t *s, uint64_t *lookups, uint64_t *misses)
{
    if (lookups) *lookups = s->lookups;
    if (misses) *misses = s->misses;
}

/* ---- resolving ------------------------------------------------------------------------- */

/* Growable frame list used while resolving one pc. */
typedef struct frame_vec {
    ls_sym_frame_t *v;
    size_t n, cap;
    bool oom;
} frame_vec_t;

static ls_sym_frame_t *push_frame(frame_vec_t *fv, const ls_sym_frame_t *base)
{
    if (fv->n == fv->cap) {
        size_t ncap = fv->cap ? 2 * fv->cap : 4;
        ls_sym_frame_t *nv = realloc(fv->v, ncap * sizeof(*nv));
        if (!nv) {
            fv->oom = true;
            return NULL;
        }
        fv->v = nv;
        fv->cap = ncap;
    }
    fv->v[fv->n] = *base;
    return &fv->v[fv->n++];
}

/* The name of a subprogram or inlined-subroutine DIE: its linkage name demangled (C++, gives
 * the qualified name with parameters), else DW_AT_name. Both are looked up through
 * DW_AT_abstract_origin / DW_AT_specification, where inlined instances and out-of-class
 * definitions keep them. */
static const char *die_name(strset_t *t, Dwarf_Die *die)
{
    Dwarf_Attribute a;
    const char *ln = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &a));
    if (!ln) ln = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a));
    if (ln) return intern_symbol(t, ln);
    return intern(t, dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a)));
}

/* call_file/call_line/call_column of an inlined-subroutine DIE: where its caller called it. */
static void call_site(strset_t *t, Dwarf_Die *die, const char **file, unsigned *line, unsigned *col)
{
    Dwarf_Attribute a;
    Dwarf_Word w;
    *file = NULL;
    *line = *col = 0;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &a), &w) == 0) *line = (unsigned)w;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_column, &a), &w) == 0) *col = (unsigned)w;
    Dwarf_Die cu;
    Dwarf_Files *files;
    size_t nfiles;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &a), &w) == 0 &&
        dwarf_diecu(die, &cu, NULL, NULL) && dwarf_getsrcfiles(&cu, &files, &nfiles) == 0 &&
        w < nfiles) {
        const char *comp_dir = dwarf_formstring(dwarf_attr(&cu, DW_AT_comp_dir, &a));
        *file = intern_path(t, dwarf_filesrc(files, w, NULL, NULL), comp_dir);
    }
}

static int cmp_cu_range(const void *a, const void *b)
{
    const cu_range_t *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Lists every CU's address ranges (DW_AT_low_pc/high_pc or DW_AT_ranges). */
static void build_cu_index(sym_module_t *sm)
{
    sm->cus_built = 1;
    size_t cap = 0;
    Dwarf_Addr bias;
    Dwarf_Die *cu = NULL;
    while ((cu = dwfl_module_nextcu(sm->mod, cu, &bias)) != NULL) {
        Dwarf_Addr base, lo, hi;
        ptrdiff_t off = 0;
        while ((off = dwarf_ranges(cu, off, &base, &lo, &hi)) > 0) {
            if (lo >= hi) continue;
            if (sm->ncus == cap) {
                size_t ncap = cap ? 2 * cap : 64;
                cu_range_t *nv = realloc(sm->cus, ncap * sizeof(*nv));
                if (!nv) goto done; /* a partial index only loses line info */
                sm->cus = nv;
                cap = ncap;
            }
            sm->cus[sm->ncus++] = (cu_range_t){lo, hi, *cu};
        }
    }
done:
    qsort(sm->cus, sm->ncus, sizeof(*sm->cus), cmp_cu_range);
}

/* The CU DIE covering the DWARF address a, written to *mem: libdwfl's lookup (aranges) first,
 * then our range index. NULL when no CU covers it. */
static Dwarf_Die *find_cu(sym_module_t *sm, Dwarf_Addr addr, Dwarf_Addr *dwbias, Dwarf_Die *mem)
{
    Dwarf_Die *cu = dwfl_module_addrdie(sm->mod, addr, dwbias);
    if (cu) return cu;
    if (!dwfl_module_getdwarf(sm->mod, dwbias)) return NULL;
    if (!sm->cus_built) build_cu_index(sm);
    Dwarf_Addr a = addr - *dwbias;
    size_t lo = 0, hi = sm->ncus; /* first range with lo > a */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sm->cus[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Ranges of different CUs rarely overlap; look back a little in case they do. */
    for (size_t i = lo, steps = 0; i > 0 && steps < 16; i--, steps++) {
        if (a < sm->cus[i - 1].hi) {
            *mem = sm->cus[i - 1].cu;
            return mem;
        }
    }
    return NULL;
}

/* Fills fv with the frames for pc in a ready module. */
static void resolve_in_module(ls_symbolizer_t *s, sym_module_t *sm, uint64_t pc,
                              const ls_sym_frame_t *base, frame_vec_t *fv)
{
    strset_t *t = &s->strs;
    /* pc is a return address; the call instruction, and so its line, ends at pc - 1. */
    Dwarf_Addr addr = pc - 1;
    ls_sym_frame_t f = *base;

    GElf_Off off;
    GElf_Sym sym;
    const char *elfname = dwfl_module_addrinfo(sm->mod, addr, &off, &sym, NULL, NULL, NULL);

    Dwarf_Addr dwbias = 0;
    Dwarf_Die cu_mem, *cudie = find_cu(sm, addr, &dwbias, &cu_mem);
    Dwarf_Die *scopes = NULL, *chain = NULL;
    int nchain = 0;
    if (cudie) {
        /* Innermost location: the line table. */
        Dwarf_Line *ln = dwarf_getsrc_die(cudie, addr - dwbias);
        if (ln) {
            Dwarf_Attribute a;
            int line = 0, col = 0;
            dwarf_lineno(ln, &line);
            dwarf_linecol(ln, &col);
            const char *comp_dir = dwarf_formstring(dwarf_attr(cudie, DW_AT_comp_dir, &a));
            f.file = intern_path(t, dwarf_linesrc(ln, NULL, NULL), comp_dir);
            f.line = line > 0 ? (unsigned)line : 0;
            f.column = col > 0 ? (unsigned)col : 0;
        }
        /* The chain of inlined subroutines: the innermost DWARF scope holding addr, then its
         * lexical parents (dwarf_getscopes_die; dwarf_getscopes itself continues into abstract
         * origins, which is right for variable lookup but not for call chains). */
        if (dwarf_getscopes(cudie, addr - dwbias, &scopes) > 0)
            nchain = dwarf_getscopes_die(&scopes[0], &chain);
    }
    for (int i = 0; i < nchain; i++) {
        int tag = dwarf_tag(&chain[i]);
        if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
        ls_sym_frame_t g = f;
        g.function = die_name(t, &chain[i]);
        if (tag == DW_TAG_subprogram) {
            /* Some subprograms carry no name in DWARF (artificial, or lost by LTO). */
            if (!g.function) g.function = intern_symbol(t, elfname);
            g.inlined = 0;
            push_frame(fv, &g);
            break;
        }
        g.inlined = 1;
        if (!push_frame(fv, &g)) break;
        /* The caller's location is where this instance was inlined. */
        call_site(t, &chain[i], &f.file, &f.line, &f.column);
    }
    free(scopes);
    free(chain);
    if (fv->n && !fv->v[fv->n - 1].inlined) return;
    /* No DWARF function (or the chain ran out inside inlined code): the ELF symbol names the
     * physical function; its location is whatever the walk reached. */
    f.function = intern_symbol(t, elfname);
    f.inlined = 0;
    if (!f.function && !f.file) f.status = LS_SYM_NO_SYMBOL;
    push_frame(fv, &f);
}

static cache_entry_t **cache_slot(ls_symbolizer_t *s, uint32_t module, uint64_t pc)
{
    size_t mask = s->cache_cap - 1;
    size_t j = ls_mix64(pc ^ ((uint64_t)module << 48) ^ module) & mask;
    while (s->cache[j] && (s->cache[j]->pc != pc || s->cache[j]->module != module))
        j = (j + 1) & mask;
    return &s->cache[j];
}

static int cache_grow(ls_symbolizer_t *s)
{
    size_t ncap = s->cache_cap ? 2 * s->cache_cap : 1024;
    cache_entry_t **old = s->cache;
    size_t ocap = s->cache_cap;
    s->cache = calloc(ncap, sizeof(*s->cache));
    if (!s->cache) {
        s->cache = old;
        return -1;
    }
    s->cache_cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i]) *cache_slot(s, old[i]->module, old[i]->pc) = old[i];
    free(old);
    return 0;
}

size_t ls_symbolize_pc(ls_symbolizer_t *s, uint64_t pc, uint32_t stack_id,
                       const ls_sym_frame_t **frames)
{
    s->lookups++;
    /* Look the module up by the call address too: a return address may sit one past the end of
     * an object's last function when that call never returns. */
    const ls_snap_module_t *m = ls_snapshot_module_for(s->snap, pc ? pc - 1 : 0, stack_id);
    uint32_t module = m ? (uint32_t)(m - s->snap->modules) + 1 : 0;
    if (2 * (s->cache_n + 1) > s->cache_cap && cache_grow(s)) return 0;
    cache_entry_t **slot = cache_slot(s, module, pc);
    if (*slot) {
        *frames = (*slot)->frames;
        return (*slot)->nframes;
    }
    s->misses++;

    ls_sym_frame_t base;
    memset(&base, 0, sizeof(base));
    base.pc = pc;
    frame_vec_t fv = {0};
    if (!m) {
        base.status = LS_SYM_NO_MODULE;
        push_frame(&fv, &base);
    } else {
        sym_module_t *sm = &s->mods[module - 1];
        if (sm->state == MOD_UNTRIED) sm->state = open_module(s, module - 1);
        base.object = intern(&s->strs, sm->path);
        base.offset = pc - m->rec.bias;
        if (sm->state == MOD_READY) {
            resolve_in_module(s, sm, pc, &base, &fv);
        } else {
            base.status = (uint8_t)sm->state;
            push_frame(&fv, &base);
        }
    }
    if (fv.oom || fv.n == 0) {
        free(fv.v);
        return 0;
    }
    cache_entry_t *e = malloc(sizeof(*e) + fv.n * sizeof(ls_sym_frame_t));
    if (!e) {
        free(fv.v);
        return 0;
    }
    e->pc = pc;
    e->module = module;
    e->nframes = (uint32_t)fv.n;
    memcpy(e->frames, fv.v, fv.n * sizeof(ls_sym_frame_t));
    free(fv.v);
    *slot = e;
    s->cache_n++;
    *frames = e->frames;
    return e->nframes;
}
