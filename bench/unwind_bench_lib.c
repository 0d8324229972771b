/*
 * unwind_bench_lib.c - call chains for unwind_bench, built twice: -O2 -fomit-frame-pointer
 * (UBL_PREFIX ubl_) and -O2 -fno-omit-frame-pointer (ublfp_). Three everyday frame shapes rotate
 * down the recursion (small frame, callee-saved registers, a VLA that makes RBP the CFA base);
 * at the bottom the chain calls the benchmark's callback directly or from inside real Debian
 * libraries: libc's qsort comparator, libc's twalk action (recursive in libc), zlib's zalloc.
 */
#include <search.h>
#include <stdlib.h>
#include <zlib.h>

#include "unwind_bench_lib.h"

#if defined(__clang__)
#define UBL_NOIPA __attribute__((noinline))
#else
#define UBL_NOIPA __attribute__((noipa))
#endif
#define UBL_KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

typedef struct ubl_ctx {
    ubl_cb_t cb;
    void *arg;
    int mode, called;
} ubl_ctx_t;

static __thread ubl_ctx_t *ubl_cur; /* qsort, twalk and zalloc give us no context argument */

static int ubl_next(int d, ubl_ctx_t *c);

static int ubl_cmp(const void *a, const void *b)
{
    if (!ubl_cur->called++) ubl_cur->cb(ubl_cur->arg);
    return *(const int *)a - *(const int *)b;
}

static int ubl_tcmp(const void *a, const void *b)
{
    const char *x = a, *y = b;
    return (x > y) - (x < y);
}

static void *ubl_tree;
static int ubl_tree_max;

static void ubl_depth(const void *node, VISIT which, int level)
{
    (void)node;
    if ((which == leaf) && level > ubl_tree_max) ubl_tree_max = level;
}

static void ubl_act(const void *node, VISIT which, int level)
{
    (void)node;
    if (which == leaf && level == ubl_tree_max && !ubl_cur->called++) ubl_cur->cb(ubl_cur->arg);
}

static char ubl_arena[1 << 20];
static size_t ubl_arena_used;

static voidpf ubl_zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (!ubl_cur->called++) ubl_cur->cb(ubl_cur->arg);
    size_t n = ((size_t)items * size + 63) & ~(size_t)63;
    if (ubl_arena_used + n > sizeof ubl_arena) return Z_NULL;
    void *p = ubl_arena + ubl_arena_used;
    ubl_arena_used += n;
    return p;
}

static void ubl_zfree(voidpf opaque, voidpf p)
{
    (void)opaque;
    (void)p;
}

static UBL_NOIPA int ubl_leaf(ubl_ctx_t *c)
{
    ubl_cur = c;
    switch (c->mode) {
    case UBL_QSORT: {
        int v[256];
        for (int i = 0; i < 256; i++) v[i] = 256 - i;
        qsort(v, 256, sizeof v[0], ubl_cmp); /* msort recursion, then our comparator */
        return v[0];
    }
    case UBL_TWALK:
        if (!ubl_tree) {
            /* A red-black tree of 4096 nodes: twalk recurses ~12-20 levels inside libc. */
            static char keys[4096];
            for (int i = 0; i < 4096; i++) tsearch(&keys[i], &ubl_tree, ubl_tcmp);
            twalk(ubl_tree, ubl_depth);
        }
        twalk(ubl_tree, ubl_act);
        return ubl_tree_max;
    case UBL_ZLIB: {
        z_stream s = {0};
        s.zalloc = ubl_zalloc;
        s.zfree = ubl_zfree;
        ubl_arena_used = 0;
        int r = deflateInit2(&s, 1, Z_DEFLATED, 9, 1, Z_DEFAULT_STRATEGY);
        if (r == Z_OK) deflateEnd(&s);
        return r;
    }
    default:
        c->cb(c->arg);
        return 1;
    }
}

static UBL_NOIPA int ubl_plain(int d, ubl_ctx_t *c)
{
    volatile int x = d;
    int r = ubl_next(d - 1, c);
    return r + x;
}

static UBL_NOIPA int ubl_regs(int d, ubl_ctx_t *c)
{
    volatile int s[4] = {d, d + 1, d + 2, d + 3};
    int a = s[0], b = s[1], e = s[2], f = s[3];
    int r = ubl_next(d - 1, c);
    return r + a * b + e * f;
}

static UBL_NOIPA int ubl_vla(int d, ubl_ctx_t *c)
{
    char buf[(d & 7) + 9];
    buf[0] = (char)d;
    UBL_KEEP(buf);
    int r = ubl_next(d - 1, c);
    UBL_KEEP(buf);
    return r + buf[1];
}

static int ubl_next(int d, ubl_ctx_t *c)
{
    if (d <= 0) return ubl_leaf(c);
    switch (d % 3) {
    case 0:
        return ubl_plain(d, c);
    case 1:
        return ubl_regs(d, c);
    default:
        return ubl_vla(d, c);
    }
}

int UBL(recurse)(int depth, int mode, ubl_cb_t cb, void *arg)
{
    ubl_ctx_t c = {cb, arg, mode, 0};
    return ubl_next(depth, &c) + 1;
}
