/*
 * uwt_dl.c - a library test_unwind dlopens, dlcloses and dlopens again. Built twice with
 * different code layouts (UWT_VARIANT 0 and 1), so that if the second object lands where the
 * first was, a rule cached for the first would give a wrong stack.
 */
#include "uwt_lib.h"

#define UWT_KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

#if UWT_VARIANT == 1
/* Pushes everything below to other addresses and frame sizes. */
__attribute__((noinline)) int uwt_dl_pad(int d)
{
    volatile char pad[3000];
    pad[d & 1023] = (char)d;
    return pad[(d * 7) & 1023] + d;
}
#define UWT_FRAME 2048
#else
#define UWT_FRAME 64
#endif

__attribute__((noinline)) static int uwt_dl_step(int d, uwt_cb_t cb, void *arg)
{
    char frame[UWT_FRAME];
    frame[0] = (char)d;
    UWT_KEEP(frame);
    int r;
    if (d <= 0) {
        cb(arg);
        r = 1;
    } else {
        r = uwt_dl_step(d - 1, cb, arg);
    }
    UWT_KEEP(frame);
    return r + frame[1];
}

int uwt_dl_recurse(int depth, uwt_cb_t cb, void *arg)
{
    return uwt_dl_step(depth, cb, arg) + 1;
}
