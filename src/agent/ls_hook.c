/*
 * ls_hook.c - entry hooks on the reference functions of an unmodified program (run --refs,
 * option refs=REF,UNREF[,TYPE];...): every call of REF(obj) and UNREF(obj) reaches
 * ls__refs_wrapped as a get or a put of obj, with the stack of the caller.
 *
 * Why entry hooks and not GOT/PLT patching: the library that defines the functions calls them
 * itself with direct calls that never go through a GOT (libgobject-2.0 has 27 `call
 * <g_object_ref@@Base>` of its own: signal emission, GValue, weak references, closures). Patching
 * the GOTs would see the program's refs but miss the library's, and every object's count would be
 * off. So the function's first bytes are replaced with a `jmp rel32` to a trampoline mapped
 * within +-2 GiB of it, which saves the argument and scratch registers, calls hook_entered() with
 * the object (first argument) and the entry stack pointer, restores everything, runs the
 * displaced instructions (relocated) and jumps back after them. Only the entry matters: REF's
 * first argument is the object, so there is no return hook and the stack is never rewritten.
 *
 * Shape: specs[] holds the parsed option (one entry per REF,UNREF pair); hooks[] one entry per
 * patched function, each address hooked once (its slot number is baked into its trampoline, so
 * it is never reused or moved). A spec is installed whole or not at all: a REF without its UNREF
 * would make every object look leaked. Names are looked up as callers bind them (dlsym
 * RTLD_DEFAULT; past a non-PIE executable's canonical PLT entry), then in objects loaded with
 * RTLD_LOCAL; names not loaded yet are skipped silently: ls__hooks_install runs again after each
 * dlopen (ls_init.c) and picks them up then, and also re-wraps functions whose object was
 * dlclose'd and loaded again. The trampoline opens a standard RBP frame, so libunwind and
 * frame-pointer walks cross it.
 *
 * Patching happens with the other threads parked (ls_stopworld.c, under the locks a scan takes),
 * and not while any of them has its program counter inside the bytes being replaced (retried a
 * while, then reported). Code pages are made writable with mprotect (RWX, or RW while the world
 * is parked when a W^X policy refuses RWX) and put back as they were.
 *
 * Limits: x86-64 Linux only. The displaced prologue is decoded by a small instruction-length
 * decoder that knows what compilers put there (endbr64 - kept in place -, push/pop, mov, lea,
 * ALU ops, test, nops, SSE moves, conditional and unconditional relative jumps, RIP-relative
 * operands); anything else (a call, an indirect jump, VEX, int3 from a debugger...) makes it
 * refuse that function with an error naming the byte. A function shorter than 5 bytes is refused.
 * Calls made before main (constructors) and by code that runs before the hooks are installed are
 * not seen. A jump from later in the function back into its first 5 bytes would land inside the
 * jmp: compilers do not emit one into a prologue, and it is not checked. A thread interrupted
 * by a signal inside those bytes and still in its handler when a dlopen installs the hook is not
 * detected (the parked context is the handler's). A REF or UNREF called from a signal handler
 * while the agent is busy on the same thread is not seen (its guard is set; said once), and may
 * show up as an unbalanced count. Calls made by a dlopen'd library's constructors happen before
 * its functions are wrapped. A function that tail-calls REF (`return g_object_ref(x)` at -O2)
 * has no frame left when REF is entered: the stack starts at its caller, which gets the blame.
 * At most 32 entries and 64 wrapped functions (a dlclose'd one keeps its slot).
 */
#define _GNU_SOURCE
#include "ls_agent.h"
#include "ls_interpose.h"
#include "ls_stopworld.h"
#include "ls_unwind.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__linux__)

#define LS_MAX_SPECS   32
#define LS_MAX_HOOKS   64
#define LS_NAME_MAX    128
#define LS_TRAMP_SLOT  256 /* bytes per trampoline: save/call/restore 156, displaced code < 100 */
#define LS_PAGE        4096
#define LS_JMP_LEN     5
#define LS_PATCH_TRIES 100 /* parks of the world, 1 ms apart, waiting for a thread to leave */

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

enum { SPEC_PENDING, SPEC_DONE, SPEC_FAILED };

typedef struct ls_spec {
    char fn[2][LS_NAME_MAX]; /* [0] REF, [1] UNREF */
    char type_name[LS_NAME_MAX];
    uint32_t type;
    int state;
    size_t slot[2]; /* SPEC_DONE: its functions' hooks */
} ls_spec_t;

typedef struct ls_hook {
    uintptr_t fn;   /* what dlsym returned */
    uintptr_t site; /* where the jmp goes: fn, or fn + 4 after an endbr64 */
    size_t len;     /* displaced bytes at site (>= 5, whole instructions) */
    uint8_t *tramp;
    uint32_t type;
    int op; /* LS_REF_OP_GET or LS_REF_OP_PUT */
    const char *name;
} ls_hook_t;

static ls_spec_t specs[LS_MAX_SPECS];
static size_t nspecs;
static bool parsed;
static ls_hook_t hooks[LS_MAX_HOOKS];
static _Atomic size_t nhooks; /* published after a hook's slot is filled in */
/* Holder's pid, 0 when free: a lock held by a thread of the parent at fork time (another pid) is
 * taken over by the child, where that thread does not exist. Lock order: this, then check_lock. */
static _Atomic pid_t install_lock;
/* Calls not passed on: the agent was busy on the thread (its guard set: a signal handler). */
static _Atomic uint64_t missed;

/* ---- the C side of a trampoline --------------------------------------------------------------
 */
/* Entered from a trampoline (any thread, maybe a signal handler) with the registers of the
 * wrapped function's entry saved: obj is its first argument, entry_sp its RSP at entry (the
 * return address into the caller at [entry_sp]), entry_bp its RBP. */
static void hook_entered(uintptr_t slot, const void *obj, const uintptr_t *entry_sp,
                         uintptr_t entry_bp)
{
    ls_tls_t *t = &ls__tls;
    if (LS_UNLIKELY(atomic_load_explicit(&ls__g.state, memory_order_acquire) != LS_STATE_READY ||
                    !obj)) /* REF(NULL), UNREF(NULL): no object, nothing to count */
        return;
    if (LS_UNLIKELY(t->guard)) {
        if (atomic_fetch_add_explicit(&missed, 1, memory_order_relaxed) == 0)
            ls__error("refs: a wrapped function ran while the agent was busy on the same thread "
                      "(from a signal handler?): not counted, reference counts may look off");
        return;
    }
    const ls_hook_t *h = &hooks[slot];
    ls_uw_frame_t f = {entry_sp[0], (uintptr_t)(entry_sp + 1), entry_bp};
    ls__refs_wrapped(h->op, h->type, obj, &f); /* sets the guard itself while it records */
}

/* ---- option parsing --------------------------------------------------------------------------
 */
static bool is_ident(const char *s, size_t n)
{
    if (!n || n >= LS_NAME_MAX || (s[0] >= '0' && s[0] <= '9')) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static bool is_type_name(const char *s, size_t n)
{
    if (!n || n >= LS_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

/* One entry "REF,UNREF[,TYPE]" of length n; false when malformed. */
static bool parse_spec(const char *e, size_t n, ls_spec_t *s)
{
    const char *f[3];
    size_t len[3], nf = 0;
    const char *p = e, *end = e + n;
    while (nf < 3) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        f[nf] = p;
        len[nf++] = (size_t)((c ? c : end) - p);
        if (!c) break;
        p = c + 1;
    }
    if (nf < 2 || memchr(f[nf - 1], ',', len[nf - 1]) || !is_ident(f[0], len[0]) ||
        !is_ident(f[1], len[1]) || (len[0] == len[1] && !memcmp(f[0], f[1], len[0])))
        return false;
    if (nf == 3 && !is_type_name(f[2], len[2])) return false;
    memcpy(s->fn[0], f[0], len[0]);
    memcpy(s->fn[1], f[1], len[1]);
    if (nf == 3)
        memcpy(s->type_name, f[2], len[2]);
    else
        memcpy(s->type_name, f[0], len[0]); /* default type: the REF function's name */
    return true;
}

static void parse_specs(void)
{
    const char *p = ls__g.opt.refs;
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        if (n) {
            ls_spec_t *s = &specs[nspecs];
            if (nspecs >= LS_MAX_SPECS) {
                ls__error("refs: more than %d entries; '%.*s' ignored", LS_MAX_SPECS, (int)n, p);
            } else if (!parse_spec(p, n, s)) {
                memset(s, 0, sizeof(*s));
                ls__error("refs: '%.*s' ignored: want REF,UNREF[,TYPE] with REF and UNREF two "
                          "different function names",
                          (int)n, p);
            } else {
                s->type = ls__refs_type(s->type_name, true);
                if (!s->type) {
                    ls__error("refs: '%.*s' ignored: the type table is full", (int)n, p);
                    memset(s, 0, sizeof(*s));
                } else {
                    nspecs++;
                }
            }
        }
        p += n + (semi ? 1 : 0);
    }
}

/* ---- x86-64 instruction lengths --------------------------------------------------------------
 */
enum { INSN_PLAIN, INSN_JCC, INSN_JMP, INSN_RET };

typedef struct ls_insn {
    size_t len;
    int disp_off; /* offset of a RIP-relative disp32 in the instruction, -1 if none */
    int kind;     /* INSN_* */
    int cc;       /* INSN_JCC: the condition (low nibble of the opcode) */
    int64_t rel;  /* INSN_JCC, INSN_JMP: branch displacement from the instruction's end */
} ls_insn_t;

/* Skips a ModRM operand (and its SIB and displacement) at p[*i]; notes a RIP-relative disp32. */
static void modrm(const uint8_t *p, size_t *i, ls_insn_t *in, int *reg)
{
    uint8_t m = p[(*i)++];
    int mod = m >> 6, rm = m & 7;
    *reg = (m >> 3) & 7;
    if (mod == 3) return;
    if (rm == 4) {
        uint8_t sib = p[(*i)++];
        if (mod == 0 && (sib & 7) == 5) *i += 4;
    } else if (mod == 0 && rm == 5) {
        in->disp_off = (int)*i; /* [rip + disp32] in 64-bit mode */
        *i += 4;
        return;
    }
    if (mod == 1) *i += 1;
    if (mod == 2) *i += 4;
}

static int32_t rd32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Decodes the instruction at p (at least 15 readable bytes). Returns 0, or -1 with *bad the offset
 * of the byte it does not accept. Covers what compilers emit in prologues, nothing that would
 * need more than re-pointing a RIP-relative operand or a relative branch. */
static int decode(const uint8_t *p, ls_insn_t *in, size_t *bad)
{
    size_t i = 0, at = 0, iz; /* at: the opcode, for error messages; iz: an Iz immediate */
    bool opsize = false, rexw = false;
    int reg;
    uint8_t op;
    memset(in, 0, sizeof(*in));
    in->disp_off = -1;
    for (;; i++) { /* legacy prefixes */
        uint8_t b = p[i];
        if (b == 0x66)
            opsize = true;
        else if (b != 0xf2 && b != 0xf3 && b != 0x2e && b != 0x3e && b != 0x26 && b != 0x36 &&
                 b != 0x64 && b != 0x65 && b != 0xf0)
            break;
        if (i >= 4) {
            at = i;
            goto refuse;
        }
    }
    if ((p[i] & 0xf0) == 0x40) rexw = (p[i++] & 8) != 0;
    iz = opsize ? 2 : 4;
    at = i;
    op = p[i++];
    if (op == 0x0f) {
        at = i;
        uint8_t op2 = p[i++];
        if (op2 == 0x0d || (op2 >= 0x18 && op2 <= 0x1f) || op2 == 0xb8 ||
            (op2 >= 0x10 && op2 <= 0x17) || (op2 >= 0x28 && op2 <= 0x2f) ||
            (op2 >= 0x40 && op2 <= 0x6f) || (op2 >= 0x74 && op2 <= 0x76) ||
            (op2 >= 0x7e && op2 <= 0x7f) || (op2 >= 0x90 && op2 <= 0x9f) || op2 == 0xa3 ||
            op2 == 0xa5 || op2 == 0xab || op2 == 0xad || op2 == 0xaf || op2 == 0xb0 ||
            op2 == 0xb1 || op2 == 0xb3 || op2 == 0xb6 || op2 == 0xb7 || op2 == 0xbb ||
            (op2 >= 0xbc && op2 <= 0xbf) || op2 == 0xc0 || op2 == 0xc1 || op2 == 0xc3 ||
            (op2 >= 0xd0 && op2 <= 0xfe)) {
            modrm(p, &i, in, &reg);
        } else if ((op2 >= 0x70 && op2 <= 0x73) || op2 == 0xa4 || op2 == 0xac || op2 == 0xba ||
                   op2 == 0xc2 || (op2 >= 0xc4 && op2 <= 0xc6)) {
            modrm(p, &i, in, &reg);
            i += 1;
        } else if (op2 >= 0x80 && op2 <= 0x8f) {
            in->kind = INSN_JCC;
            in->cc = op2 & 0xf;
            in->rel = rd32(p + i);
            i += 4;
        } else if (op2 >= 0xc8 && op2 <= 0xcf) { /* bswap */
        } else {
            goto refuse;
        }
    } else if (op < 0x40 && (op & 7) < 4) { /* ALU r/m, r and r, r/m */
        modrm(p, &i, in, &reg);
    } else if (op < 0x40 && (op & 7) == 4) { /* ALU al, imm8 */
        i += 1;
    } else if (op < 0x40 && (op & 7) == 5) { /* ALU eax, imm32 */
        i += iz;
    } else if ((op >= 0x50 && op <= 0x5f) || (op >= 0x90 && op <= 0x99) || op == 0x9c ||
               op == 0x9d || op == 0xc9) { /* push, pop, nop/xchg, cdq, pushf, popf, leave */
    } else if (op == 0x63 || (op >= 0x84 && op <= 0x8b) || op == 0x8d || op == 0x8f ||
               (op >= 0xd0 && op <= 0xd3)) {
        modrm(p, &i, in, &reg);
    } else if (op == 0x68) {
        i += iz;
    } else if (op == 0x6a || op == 0xa8 || (op >= 0xb0 && op <= 0xb7)) {
        i += 1;
    } else if (op == 0xa9) {
        i += iz;
    } else if (op >= 0xb8 && op <= 0xbf) {
        i += rexw ? 8 : iz;
    } else if (op == 0x69 || op == 0x81 || op == 0xc7) {
        modrm(p, &i, in, &reg);
        i += iz;
    } else if (op == 0x6b || op == 0x80 || op == 0x83 || op == 0xc0 || op == 0xc1 || op == 0xc6) {
        modrm(p, &i, in, &reg);
        i += 1;
    } else if (op == 0xf6 || op == 0xf7) { /* test has an immediate, not/neg/mul/div do not */
        modrm(p, &i, in, &reg);
        if (reg <= 1) i += op == 0xf6 ? 1 : iz;
    } else if (op == 0xfe || op == 0xff) {
        modrm(p, &i, in, &reg);
        if (reg >= 2 && reg <= 5) goto refuse; /* indirect call or jmp */
        if (op == 0xfe && reg >= 2) goto refuse;
    } else if (op >= 0x70 && op <= 0x7f) {
        in->kind = INSN_JCC;
        in->cc = op & 0xf;
        in->rel = (int8_t)p[i++];
    } else if (op == 0xeb) {
        in->kind = INSN_JMP;
        in->rel = (int8_t)p[i++];
    } else if (op == 0xe9) {
        in->kind = INSN_JMP;
        in->rel = rd32(p + i);
        i += 4;
    } else if (op == 0xc3) {
        in->kind = INSN_RET;
    } else if (op == 0xc2) {
        in->kind = INSN_RET;
        i += 2;
    } else {
        goto refuse; /* call rel32 (would return into the trampoline), int3, VEX, ... */
    }
    if (i > 15) goto refuse;
    in->len = i;
    return 0;
refuse:
    *bad = at;
    return -1;
}

/* ---- trampolines -----------------------------------------------------------------------------
 */
typedef struct ls_emit {
    uint8_t *p, *end;
    bool overflow;
} ls_emit_t;

static void emit(ls_emit_t *e, const void *bytes, size_t n)
{
    if ((size_t)(e->end - e->p) < n) {
        e->overflow = true;
        return;
    }
    memcpy(e->p, bytes, n);
    e->p += n;
}

static void emit_u32(ls_emit_t *e, uint32_t v)
{
    emit(e, &v, 4);
}

static bool fits32(int64_t v)
{
    return v >= INT32_MIN && v <= INT32_MAX;
}

/* Register save, the call, the restore. The trampoline starts a standard RBP frame (push rbp;
 * mov rbp, rsp) so that a frame-pointer walk through it reaches the caller: [rbp] is the
 * caller's RBP and [rbp + 8] the return address into it. */
static void emit_prologue_call(ls_emit_t *e, uint32_t slot)
{
    static const uint8_t save[] = {
        0x55,                                           /* push rbp */
        0x48, 0x89, 0xe5,                               /* mov rbp, rsp */
        0x9c,                                           /* pushfq: before anything sets flags */
        0x50, 0x51, 0x52, 0x56, 0x57,                   /* push rax, rcx, rdx, rsi, rdi */
        0x41, 0x50, 0x41, 0x51, 0x41, 0x52, 0x41, 0x53, /* push r8-r11 */
        0x48, 0x83, 0xe4, 0xf0,                         /* and rsp, -16 */
        0x48, 0x81, 0xec, 0x80, 0x00, 0x00, 0x00,       /* sub rsp, 128 */
    };
    emit(e, save, sizeof(save));
    for (uint8_t x = 0; x < 8; x++) { /* movaps [rsp + 16x], xmmx */
        uint8_t mv[] = {0x0f, 0x29, (uint8_t)(0x44 | x << 3), 0x24, (uint8_t)(16 * x)};
        emit(e, mv, sizeof(mv));
    }
    static const uint8_t args[] = {
        0x48, 0x89, 0xfe,       /* mov rsi, rdi: the object */
        0x48, 0x8d, 0x55, 0x08, /* lea rdx, [rbp + 8]: the entry RSP */
        0x48, 0x8b, 0x4d, 0x00, /* mov rcx, [rbp]: the entry RBP */
        0xbf,                   /* mov edi, imm32: the slot */
    };
    emit(e, args, sizeof(args));
    emit_u32(e, slot);
    uint8_t movabs[2] = {0x48, 0xb8}; /* mov rax, imm64; call rax */
    emit(e, movabs, 2);
    uint64_t fn = (uint64_t)(uintptr_t)hook_entered;
    emit(e, &fn, 8);
    static const uint8_t call[] = {0xff, 0xd0};
    emit(e, call, 2);
    for (uint8_t x = 0; x < 8; x++) { /* movaps xmmx, [rsp + 16x] */
        uint8_t mv[] = {0x0f, 0x28, (uint8_t)(0x44 | x << 3), 0x24, (uint8_t)(16 * x)};
        emit(e, mv, sizeof(mv));
    }
    static const uint8_t restore[] = {
        0x48, 0x8d, 0x65, 0xb0,                         /* lea rsp, [rbp - 80]: at saved r11 */
        0x41, 0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58, /* pop r11-r8 */
        0x5f, 0x5e, 0x5a, 0x59, 0x58,                   /* pop rdi, rsi, rdx, rcx, rax */
        0x9d,                                           /* popfq */
        0x5d,                                           /* pop rbp */
    };
    emit(e, restore, sizeof(restore));
}

/* Copies the displaced instructions [site, site + len) to e, relocated; then the jmp back.
 * Returns NULL, or what is wrong. */
static const char *emit_displaced(ls_emit_t *e, const uint8_t *code, uintptr_t site, size_t len)
{
    bool ends = false; /* a ret or jmp ended the displaced code: no jmp back */
    for (size_t off = 0; off < len;) {
        ls_insn_t in;
        size_t bad;
        if (decode(code + off, &in, &bad)) return "unknown instruction";
        uintptr_t next = site + off + in.len; /* RIP after it, at the original place */
        uintptr_t here = (uintptr_t)e->p;
        if (in.kind == INSN_JCC || in.kind == INSN_JMP) {
            uintptr_t to = next + (uintptr_t)in.rel;
            if (to >= site && to < site + len) return "branch into the displaced bytes";
            int64_t rel = (int64_t)(to - (here + (in.kind == INSN_JCC ? 6 : 5)));
            if (!fits32(rel)) return "branch target out of reach of the trampoline";
            uint8_t b[2] = {0x0f, (uint8_t)(0x80 | in.cc)};
            if (in.kind == INSN_JCC)
                emit(e, b, 2);
            else
                emit(e, (uint8_t[]){0xe9}, 1);
            emit_u32(e, (uint32_t)(int32_t)rel);
            ends = in.kind == INSN_JMP;
        } else {
            emit(e, code + off, in.len);
            if (in.disp_off >= 0 && !e->overflow) {
                uintptr_t to = next + (uintptr_t)(int64_t)rd32(code + off + (size_t)in.disp_off);
                int64_t rel = (int64_t)(to - (here + in.len));
                if (!fits32(rel)) return "RIP-relative operand out of reach of the trampoline";
                int32_t r = (int32_t)rel;
                memcpy((uint8_t *)here + in.disp_off, &r, 4);
            }
            ends = in.kind == INSN_RET;
        }
        off += in.len;
    }
    if (!ends) {
        int64_t rel = (int64_t)((site + len) - ((uintptr_t)e->p + 5));
        if (!fits32(rel)) return "jump back out of reach";
        emit(e, (uint8_t[]){0xe9}, 1);
        emit_u32(e, (uint32_t)(int32_t)rel);
    }
    return e->overflow ? "trampoline too large" : NULL;
}

/* ---- mappings --------------------------------------------------------------------------------
 */
/* Candidate pages for a trampoline near `near`: the top page of each free gap (right below a
 * mapping, so it never sits where a heap grows), the closest first. */
#define LS_MAX_CANDS 16
typedef struct ls_gap_ctx {
    uintptr_t near, prev_hi;
    uintptr_t cand[LS_MAX_CANDS];
    size_t n;
} ls_gap_ctx_t;

static uintptr_t dist(uintptr_t a, uintptr_t b)
{
    return a > b ? a - b : b - a;
}

static int collect_gap(const ls_mapping_t *m, void *ctx)
{
    ls_gap_ctx_t *g = ctx;
    uintptr_t lo = g->prev_hi;
    g->prev_hi = m->hi;
    if (m->lo < lo + LS_PAGE || m->lo < 0x100000 || !strcmp(m->path, "[stack]")) return 0;
    uintptr_t c = m->lo - LS_PAGE;
    if (dist(c, g->near) > 0x7fff0000u) return 0;
    /* Insertion into the sorted candidate list, dropping the farthest. */
    size_t i = g->n < LS_MAX_CANDS ? g->n++ : LS_MAX_CANDS - 1;
    if (i == LS_MAX_CANDS - 1 && g->n == LS_MAX_CANDS &&
        dist(g->cand[i], g->near) < dist(c, g->near))
        return 0;
    while (i > 0 && dist(g->cand[i - 1], g->near) > dist(c, g->near)) {
        g->cand[i] = g->cand[i - 1];
        i--;
    }
    g->cand[i] = c;
    return 0;
}

/* A fresh RW page within reach of site, or NULL. */
static uint8_t *map_near(uintptr_t site)
{
    ls_gap_ctx_t g = {.near = site};
    if (ls__maps_foreach(collect_gap, &g) < 0) return NULL;
    for (size_t i = 0; i < g.n; i++) {
        void *p = mmap((void *)g.cand[i], LS_PAGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED) continue;
        if ((uintptr_t)p == g.cand[i]) return p;
        munmap(p, LS_PAGE); /* an old kernel took the address as a hint only */
    }
    return NULL;
}

typedef struct ls_prot_ctx {
    uintptr_t addr;
    int prot; /* -1: not mapped */
} ls_prot_ctx_t;

static int find_prot(const ls_mapping_t *m, void *ctx)
{
    ls_prot_ctx_t *c = ctx;
    if (c->addr < m->lo || c->addr >= m->hi) return 0;
    c->prot = (m->r ? PROT_READ : 0) | (m->w ? PROT_WRITE : 0) | (m->x ? PROT_EXEC : 0);
    return 1;
}

static int prot_of(uintptr_t addr)
{
    ls_prot_ctx_t c = {addr, -1};
    if (ls__maps_foreach(find_prot, &c) < 0) return -1;
    return c.prot;
}

/* ---- resolving and preparing one function ----------------------------------------------------
 */
static bool is_jmp_stub(const uint8_t *p)
{
    if (!memcmp(p, "\xf3\x0f\x1e\xfa", 4)) p += 4; /* endbr64 */
    if (p[0] == 0xf2) p++;                         /* bnd */
    return p[0] == 0xff && p[1] == 0x25;           /* jmp [rip + disp32] */
}

/* The loaded objects' names, listed once per install pass when a name is not global. */
#define LS_OBJS_BYTES (64 * 1024)
typedef struct ls_objs {
    char *buf; /* NUL-separated paths, mapped */
    size_t len;
    bool listed;
} ls_objs_t;

static int collect_obj(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    ls_objs_t *o = ctx;
    size_t n = info->dlpi_name ? strlen(info->dlpi_name) : 0;
    if (n && o->len + n + 1 <= LS_OBJS_BYTES) {
        memcpy(o->buf + o->len, info->dlpi_name, n + 1);
        o->len += n + 1;
    }
    return 0;
}

/* name in an object loaded with RTLD_LOCAL (a plugin and its dependencies: Python loads its
 * extension modules that way), which dlsym(RTLD_DEFAULT) does not search. */
static void *find_local(const char *name, ls_objs_t *o)
{
    if (!o->listed) {
        o->listed = true;
        o->buf = ls__map(LS_OBJS_BYTES);
        if (o->buf) dl_iterate_phdr(collect_obj, o); /* no dlopen inside: the loader lock */
    }
    if (!o->buf || !ls__real.dlopen || !ls__real.dlclose) return NULL;
    for (size_t off = 0; off < o->len; off += strlen(o->buf + off) + 1) {
        /* The real dlopen, not our interposer (it would install hooks from inside this pass). */
        void *h = ls__real.dlopen(o->buf + off, RTLD_LAZY | RTLD_NOLOAD);
        if (!h) continue;
        void *a = dlsym(h, name);
        ls__real.dlclose(h);
        if (a) return a;
    }
    return NULL;
}

/* The address of name's code: what callers bind to, unless that is the executable's canonical
 * PLT entry (a non-PIE program that takes the function's address), which only jumps to the real
 * one: then the definition that comes after the agent. NULL when not loaded (yet). */
static uintptr_t resolve(const char *name, ls_objs_t *objs)
{
    uint8_t *a = dlsym(RTLD_DEFAULT, name);
    if (!a) a = find_local(name, objs);
    int prot = a ? prot_of((uintptr_t)a) : -1;
    if (prot < 0 || !(prot & PROT_READ)) return 0;
    if (is_jmp_stub(a)) {
        uint8_t *b = dlsym(RTLD_NEXT, name);
        if (b && b != a && !is_jmp_stub(b)) a = b;
    }
    return (uintptr_t)a;
}

/* Per install round: pages being filled with trampolines (RW until the round is patched). */
#define LS_ROUND_PAGES 16
typedef struct ls_round {
    uint8_t *page[LS_ROUND_PAGES];
    size_t used[LS_ROUND_PAGES];
    size_t npages;
    size_t first_hook, nhooks; /* hooks[first_hook, first_hook + nhooks) */
} ls_round_t;

static uint8_t *tramp_alloc(ls_round_t *r, uintptr_t site)
{
    for (size_t i = 0; i < r->npages; i++) {
        uintptr_t p = (uintptr_t)r->page[i];
        if (r->used[i] + LS_TRAMP_SLOT <= LS_PAGE && dist(p, site) < 0x7fff0000u) {
            r->used[i] += LS_TRAMP_SLOT;
            return r->page[i] + r->used[i] - LS_TRAMP_SLOT;
        }
    }
    if (r->npages >= LS_ROUND_PAGES) return NULL;
    uint8_t *p = map_near(site);
    if (!p) return NULL;
    r->page[r->npages] = p;
    r->used[r->npages++] = LS_TRAMP_SLOT;
    return p;
}

static bool in_agent(uintptr_t a)
{
    Dl_info self, it;
    return dladdr((void *)(uintptr_t)hook_entered, &self) && dladdr((void *)a, &it) &&
           self.dli_fbase == it.dli_fbase;
}

/* Fills hooks[slot] for fn and writes its trampoline. Returns false after reporting why not. */
static bool prepare(ls_round_t *r, size_t slot, const char *name, uintptr_t fn, int op,
                    uint32_t type)
{
    if (in_agent(fn)) {
        ls__error("refs: cannot wrap %s: it is leakscope's own function", name);
        return false;
    }
    /* Copy the first bytes, as far as the mapping goes (a decoder reading past it sees int3). */
    uint8_t code[48];
    memset(code, 0xcc, sizeof(code));
    ls_prot_ctx_t pc = {fn, -1};
    ls__maps_foreach(find_prot, &pc);
    if (pc.prot < 0 || !(pc.prot & PROT_EXEC)) {
        ls__error("refs: cannot wrap %s: %#lx is not in an executable mapping", name,
                  (unsigned long)fn);
        return false;
    }
    size_t avail = sizeof(code);
    int next_prot = prot_of((fn | (LS_PAGE - 1)) + 1);
    if (next_prot < 0 || !(next_prot & PROT_READ))
        avail = ((fn | (LS_PAGE - 1)) + 1) - fn < avail ? ((fn | (LS_PAGE - 1)) + 1) - fn : avail;
    memcpy(code, (const void *)fn, avail);

    size_t start = !memcmp(code, "\xf3\x0f\x1e\xfa", 4) ? 4 : 0; /* keep endbr64 in place */
    uintptr_t site = fn + start;
    size_t len = 0;
    while (len < LS_JMP_LEN) {
        ls_insn_t in;
        size_t bad;
        if (decode(code + start + len, &in, &bad)) {
            ls__error("refs: cannot wrap %s: byte 0x%02x at offset %zu of its first "
                      "instructions is not understood",
                      name, code[start + len + bad], start + len + bad);
            return false;
        }
        len += in.len;
        if (len < LS_JMP_LEN && (in.kind == INSN_RET || in.kind == INSN_JMP)) {
            ls__error("refs: cannot wrap %s: the function is shorter than %d bytes", name,
                      LS_JMP_LEN);
            return false;
        }
    }
    /* The symbol's size, when the object says it, must cover the jmp. */
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (dladdr1((void *)fn, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && sym->st_size &&
        (uintptr_t)info.dli_saddr == fn && start + LS_JMP_LEN > sym->st_size) {
        ls__error("refs: cannot wrap %s: the function is shorter than %d bytes", name, LS_JMP_LEN);
        return false;
    }
    if (prot_of(site + LS_JMP_LEN - 1) < 0) {
        ls__error("refs: cannot wrap %s: its first bytes cross the end of its mapping", name);
        return false;
    }
    uint8_t *t = tramp_alloc(r, site);
    if (!t) {
        ls__error("refs: cannot wrap %s: no free page within 2 GiB of it for the trampoline", name);
        return false;
    }
    ls_emit_t e = {t, t + LS_TRAMP_SLOT, false};
    emit_prologue_call(&e, (uint32_t)slot);
    const char *why = emit_displaced(&e, code + start, site, len);
    if (why) {
        ls__error("refs: cannot wrap %s: %s", name, why);
        return false;
    }
    ls_hook_t *h = &hooks[slot];
    h->fn = fn;
    h->site = site;
    h->len = len;
    h->tramp = t;
    h->type = type;
    h->op = op;
    h->name = name;
    return true;
}

/* ---- patching with the world parked ----------------------------------------------------------
 */
static void sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000};
    nanosleep(&ts, NULL);
}

/* A thread that did not park: its PC when it sits in a system call, 0 when it is running
 * (anywhere), 1 when it is gone (anywhere harmless). */
static uintptr_t unparked_pc(pid_t tid)
{
    uintptr_t sp, pc;
    int r = ls__thread_syscall_regs(tid, &sp, &pc);
    return r < 0 ? 1 : r ? pc : 0;
}

/* Is any other thread inside the bytes this round replaces? Then it cannot be patched now.
 * *running: that thread ignores the stop signal and is running (anywhere: waiting won't help). */
static pid_t busy_thread(const ls_round_t *r, const ls_parked_t *parked, size_t nparked,
                         bool *running)
{
    *running = false;
    for (size_t t = 0; t < nparked; t++) {
        int st = atomic_load(&parked[t].state);
        if (st == LS_GONE) continue;
        pid_t tid = atomic_load(&parked[t].tid);
        uintptr_t pc = parked[t].unresponsive ? unparked_pc(tid) : parked[t].pc;
        if (!pc) {
            *running = true;
            return tid;
        }
        for (size_t i = 0; i < r->nhooks; i++) {
            const ls_hook_t *h = &hooks[r->first_hook + i];
            if (pc > h->site && pc < h->site + h->len) return tid;
        }
    }
    return 0;
}

typedef struct ls_patch_page {
    uintptr_t page;
    int prot;
} ls_patch_page_t;

/* Writes the jmps of round r (the other threads parked, none inside the bytes). All or none:
 * returns NULL, or the failing call with errno set. */
static const char *write_jmps(const ls_round_t *r, const ls_patch_page_t *pages, size_t npages)
{
    size_t opened = 0;
    const char *why = NULL;
    for (; opened < npages; opened++) {
        void *p = (void *)pages[opened].page;
        if (mprotect(p, LS_PAGE, PROT_READ | PROT_WRITE | PROT_EXEC) == 0) continue;
        /* W^X: writable without exec is safe too, nothing runs there while the world is parked
         * (this thread is in the agent, the control thread never runs the program's code). */
        if (mprotect(p, LS_PAGE, PROT_READ | PROT_WRITE) == 0) continue;
        why = "mprotect of the code page";
        break;
    }
    if (!why) {
        for (size_t i = 0; i < r->nhooks; i++) {
            const ls_hook_t *h = &hooks[r->first_hook + i];
            uint8_t jmp[LS_JMP_LEN] = {0xe9};
            int32_t rel = (int32_t)((intptr_t)h->tramp - (intptr_t)(h->site + LS_JMP_LEN));
            memcpy(jmp + 1, &rel, 4);
            memcpy((void *)h->site, jmp, LS_JMP_LEN);
            __builtin___clear_cache((char *)h->site, (char *)h->site + LS_JMP_LEN);
        }
    }
    int saved = errno;
    for (size_t i = 0; i < opened; i++) mprotect((void *)pages[i].page, LS_PAGE, pages[i].prot);
    errno = saved;
    return why;
}

/* Other threads of the process, not counting this one and the control thread (for when threads
 * cannot be parked: patching is then safe only with none). */
static int other_threads(void)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int count = 0;
    char buf[2048];
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
        for (long off = 0; off < n;) {
            const struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (const void *)(buf + off);
            off += d->reclen;
            if (d->name[0] >= '0' && d->name[0] <= '9') count++;
        }
    }
    close(fd);
    return count - 1 - (atomic_load(&ls__g.control_tid) ? 1 : 0);
}

/* Patches round r in. Returns true when every jmp of it is written. */
static bool patch_round(ls_round_t *r)
{
    /* The pages the jmps touch, and their protections now (read before the world stops). */
    ls_patch_page_t pages[2 * LS_MAX_HOOKS];
    size_t npages = 0;
    for (size_t i = 0; i < r->nhooks; i++) {
        const ls_hook_t *h = &hooks[r->first_hook + i];
        uintptr_t pg[2] = {h->site & ~(uintptr_t)(LS_PAGE - 1),
                           (h->site + LS_JMP_LEN - 1) & ~(uintptr_t)(LS_PAGE - 1)};
        for (int k = 0; k < (pg[0] == pg[1] ? 1 : 2); k++) {
            bool seen = false;
            for (size_t j = 0; j < npages; j++) seen |= pages[j].page == pg[k];
            if (seen) continue;
            int prot = prot_of(pg[k]);
            if (prot < 0) prot = PROT_READ | PROT_EXEC;
            pages[npages++] = (ls_patch_page_t){pg[k], prot};
        }
    }
    for (size_t i = 0; i < r->npages; i++) {
        if (mprotect(r->page[i], LS_PAGE, PROT_READ | PROT_EXEC) < 0) {
            ls__error("refs: cannot make the trampolines executable (a W^X policy?): %s; no "
                      "function wrapped",
                      strerror(errno));
            return false;
        }
    }
    const char *why = NULL;
    int err = 0;
    pid_t busy = 0;
    bool running = false;
    size_t nparked = 0;
    uint64_t t0 = ls__now_ns(), pause = 0;
    int attempt = 0;
    for (; attempt < LS_PATCH_TRIES; attempt++) {
        /* The scan's discipline: no thread parked inside the agent's locks or ls__map. */
        ls__spin_lock(&ls__g.check_lock);
        ls__mem_lock();
        ls_parked_t *parked = NULL;
        unsigned unresponsive = 0;
        uint64_t p0 = ls__now_ns();
        nparked = ls__stopworld_stop(&parked, &unresponsive);
        ls__mem_unlock();
        if (!parked && other_threads() > 0)
            busy = -1; /* threads exist but cannot be parked */
        else
            busy = parked ? busy_thread(r, parked, nparked, &running) : 0;
        if (!busy) {
            why = write_jmps(r, pages, npages);
            err = errno;
        }
        ls__stopworld_resume();
        pause += ls__now_ns() - p0;
        ls__spin_unlock(&ls__g.check_lock);
        if (!busy || busy < 0 || running) break;
        sleep_ms(1); /* a parked thread was inside the bytes: let it leave them */
    }
    if (busy < 0) {
        ls__error("refs: other threads run and cannot be parked; no function wrapped");
        return false;
    }
    if (busy) {
        ls__error(running ? "refs: thread %d blocks the stop signal and is running: it could be "
                            "inside the bytes to replace; no function wrapped"
                          : "refs: thread %d stayed inside the first bytes of a function to wrap; "
                            "no function wrapped",
                  (int)busy);
        return false;
    }
    if (why) {
        ls__error("refs: %s failed (a W^X policy?): %s; no function wrapped", why, strerror(err));
        return false;
    }
    if (ls__g.opt.verbose >= 2)
        ls__log("refs: %zu entries patched with %zu other threads parked (%d retries): paused "
                "%.3f ms, %.3f ms in all",
                r->nhooks, nparked, attempt, pause / 1e6, (ls__now_ns() - t0) / 1e6);
    return true;
}

/* ---- the install pass ------------------------------------------------------------------------
 */
static const ls_hook_t *hook_at(uintptr_t fn, size_t upto)
{
    for (size_t i = 0; i < upto; i++)
        if (hooks[i].fn == fn) return &hooks[i];
    return NULL;
}

/* Is our jmp still at h's entry? Not once its object was dlclose'd (maybe reloaded since, at
 * the same address or elsewhere: its functions are fresh code, to be wrapped again). */
static bool still_patched(const ls_hook_t *h)
{
    int prot = prot_of(h->site);
    if (prot < 0 || !(prot & PROT_READ) || !(prot & PROT_EXEC)) return false;
    uint8_t want[LS_JMP_LEN] = {0xe9};
    int32_t rel = (int32_t)((intptr_t)h->tramp - (intptr_t)(h->site + LS_JMP_LEN));
    memcpy(want + 1, &rel, 4);
    return !memcmp((const void *)h->site, want, LS_JMP_LEN);
}

/* Entries whose functions went away with a dlclose are pending again. */
static void forget_unloaded(void)
{
    for (size_t s = 0; s < nspecs; s++) {
        ls_spec_t *sp = &specs[s];
        if (sp->state != SPEC_DONE) continue;
        for (int k = 0; k < 2; k++) {
            ls_hook_t *h = &hooks[sp->slot[k]];
            if (h->fn && !still_patched(h)) h->fn = h->site = 0; /* its slot is never reused */
            if (!h->fn) sp->state = SPEC_PENDING;
        }
    }
}

static void install_lock_take(void)
{
    pid_t me = getpid();
    for (unsigned spins = 0;; spins++) {
        pid_t v = atomic_load(&install_lock);
        /* Free (0), or held by a thread of the parent before a fork (another pid). */
        if (v != me && atomic_compare_exchange_strong(&install_lock, &v, me)) return;
        if (spins < 64)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
}

static void install_locked(void)
{
    if (!parsed) {
        parse_specs();
        parsed = true;
    } else {
        forget_unloaded();
    }
    ls_round_t r;
    memset(&r, 0, sizeof(r));
    ls_objs_t objs = {NULL, 0, false};
    size_t base = atomic_load(&nhooks), next = base;
    size_t round_spec[LS_MAX_SPECS], nround = 0;
    for (size_t s = 0; s < nspecs; s++) {
        ls_spec_t *sp = &specs[s];
        if (sp->state != SPEC_PENDING) continue;
        uintptr_t fn[2] = {resolve(sp->fn[0], &objs), resolve(sp->fn[1], &objs)};
        if (!fn[0] || !fn[1]) continue; /* not loaded yet: a later dlopen may bring them */
        if (fn[0] == fn[1]) {
            ls__error("refs: %s and %s are the same function; entry ignored", sp->fn[0], sp->fn[1]);
            sp->state = SPEC_FAILED;
            continue;
        }
        size_t mark = next;
        bool ok = true;
        for (int k = 0; k < 2 && ok; k++) {
            int op = k ? LS_REF_OP_PUT : LS_REF_OP_GET;
            const ls_hook_t *h = hook_at(fn[k], next);
            if (h) { /* shared with an earlier entry: it keeps that entry's type */
                sp->slot[k] = (size_t)(h - hooks);
                if (h->op != op) {
                    ls__error("refs: %s is wrapped both as a REF and as an UNREF; entry %s,%s "
                              "ignored",
                              sp->fn[k], sp->fn[0], sp->fn[1]);
                    ok = false;
                }
                continue;
            }
            if (next >= LS_MAX_HOOKS) {
                ls__error("refs: more than %d functions to wrap; %s ignored", LS_MAX_HOOKS,
                          sp->fn[k]);
                ok = false;
                continue;
            }
            ok = prepare(&r, next, sp->fn[k], fn[k], op, sp->type);
            if (ok) sp->slot[k] = next++;
        }
        if (!ok) {
            memset(&hooks[mark], 0, (next - mark) * sizeof(ls_hook_t));
            next = mark; /* its trampoline bytes stay unused in their page */
            sp->state = SPEC_FAILED;
            continue;
        }
        round_spec[nround++] = s;
    }
    r.first_hook = base;
    r.nhooks = next - base;
    bool ok = r.nhooks == 0 || patch_round(&r);
    for (size_t i = 0; i < nround; i++) specs[round_spec[i]].state = ok ? SPEC_DONE : SPEC_FAILED;
    if (ok) {
        atomic_store(&nhooks, next);
        if (ls__g.opt.verbose)
            for (size_t i = base; i < next; i++)
                ls__log("refs: wrapped %s at %#lx (%zu bytes displaced)", hooks[i].name,
                        (unsigned long)hooks[i].fn, hooks[i].len);
    } else {
        memset(&hooks[base], 0, (next - base) * sizeof(ls_hook_t));
    }
    for (size_t i = 0; i < r.npages; i++)
        if (!ok || r.used[i] == 0) munmap(r.page[i], LS_PAGE);
    if (objs.buf) ls__unmap(objs.buf, LS_OBJS_BYTES);
}

void ls__hooks_install(void)
{
    if (!ls__g.opt.refs[0] || atomic_load(&ls__g.state) != LS_STATE_READY) return;
    ls__tls.guard++; /* dlsym and dladdr may allocate: not the program's blocks */
    install_lock_take();
    install_locked();
    atomic_store(&install_lock, 0);
    ls__tls.guard--;
}

#else /* not x86-64 Linux */

void ls__hooks_install(void)
{
    static _Atomic int said;
    if (ls__g.opt.refs[0] && !atomic_exchange(&said, 1))
        ls__error("refs: wrapping functions is not supported on this platform (x86-64 Linux "
                  "only); option ignored");
}

#endif
