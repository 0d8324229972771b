/*
 * uwt_lib.c - call chains for test_unwind, built twice: -fomit-frame-pointer (UWT_PREFIX nofp_)
 * and -fno-omit-frame-pointer (fp_). Five function shapes rotate down the recursion so every
 * kind of rule shows up: CFA = RSP+off, RBP-based frames (VLA), a 16 KiB frame, RBP used as a
 * plain callee-saved register, and a stack-realigning function with DRAP (CFA = *(RBP-8)).
 * The leaf calls the test's callback, directly or from inside libc's qsort.
 */
#include <stdlib.h>

#include "uwt_lib.h"

#if defined(__clang__)
#define UWT_NOIPA __attribute__((noinline))
#else
#define UWT_NOIPA __attribute__((noipa))
#endif
#define UWT_KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

typedef struct uwt_ctx {
    uwt_cb_t cb;
    void *arg;
    int mode; /* 0: call cb, 1: qsort and call cb from the comparator, 2: spin on arg */
    int called;
} uwt_ctx_t;

static int uwt_next(int d, uwt_ctx_t *c);

static __thread uwt_ctx_t *uwt_cmp_ctx; /* qsort's comparator has no context argument */

static int uwt_cmp(const void *a, const void *b)
{
    uwt_ctx_t *c = uwt_cmp_ctx;
    if (!c->called++) c->cb(c->arg);
    return *(const int *)a - *(const int *)b;
}

static UWT_NOIPA int uwt_leaf(uwt_ctx_t *c)
{
    if (c->mode == 1) {
        int v[64];
        for (int i = 0; i < 64; i++) v[i] = 64 - i;
        uwt_cmp_ctx = c;
        qsort(v, 64, sizeof v[0], uwt_cmp);
        return v[0];
    }
    if (c->mode == 2) {
        volatile int *stop = c->arg;
        *stop = 1; /* tell the signaller we are spinning */
        while (*stop != 2) {
        }
        return 1;
    }
    c->cb(c->arg);
    return 1;
}

static UWT_NOIPA int uwt_plain(int d, uwt_ctx_t *c)
{
    volatile int x = d;
    int r = uwt_next(d - 1, c);
    return r + x;
}

static UWT_NOIPA int uwt_vla(int d, uwt_ctx_t *c)
{
    char buf[(d & 7) + 9]; /* a VLA forces RBP as frame pointer even without -fno-omit */
    buf[0] = (char)d;
    UWT_KEEP(buf);
    int r = uwt_next(d - 1, c);
    UWT_KEEP(buf);
    return r + buf[1];
}

static UWT_NOIPA int uwt_big(int d, uwt_ctx_t *c)
{
    char big[16384];
    big[0] = (char)d;
    UWT_KEEP(big);
    int r = uwt_next(d - 1, c);
    UWT_KEEP(big);
    return r + big[100];
}

static UWT_NOIPA int uwt_regs(int d, uwt_ctx_t *c)
{
    /* Six values live across the call: RBX, RBP, R12-R15 all get saved. */
    volatile int s[6] = {d, d + 1, d + 2, d + 3, d + 4, d + 5};
    int a = s[0], b = s[1], e = s[2], f = s[3], g = s[4], h = s[5];
    int r = uwt_next(d - 1, c);
    return r + a * b + e * f + g * h + (a ^ h);
}

static UWT_NOIPA int uwt_drap(int d, uwt_ctx_t *c)
{
    _Alignas(64) char a[64]; /* realignment plus a VLA: GCC sets up DRAP in r10 */
    char v[(d & 3) + 5];
    a[0] = (char)d;
    v[0] = (char)d;
    UWT_KEEP(a);
    UWT_KEEP(v);
    int r = uwt_next(d - 1, c);
    UWT_KEEP(a);
    UWT_KEEP(v);
    return r + a[3] + v[1];
}

static int uwt_next(int d, uwt_ctx_t *c)
{
    if (d <= 0) return uwt_leaf(c);
    switch (d % 5) {
    case 0:
        return uwt_plain(d, c);
    case 1:
        return uwt_vla(d, c);
    case 2:
        return uwt_big(d, c);
    case 3:
        return uwt_regs(d, c);
    default:
        return uwt_drap(d, c);
    }
}

int UWT(recurse)(int depth, uwt_cb_t cb, void *arg)
{
    uwt_ctx_t c = {cb, arg, 0, 0};
    return uwt_next(depth, &c) + 1;
}

int UWT(recurse_qsort)(int depth, uwt_cb_t cb, void *arg)
{
    uwt_ctx_t c = {cb, arg, 1, 0};
    return uwt_next(depth, &c) + 1;
}

int UWT(recurse_spin)(int depth, volatile int *stop)
{
    uwt_ctx_t c = {0, (void *)stop, 2, 0};
    return uwt_next(depth, &c) + 1;
}
