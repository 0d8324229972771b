/* unwind_bench_lib.h - call chains of unwind_bench: see unwind_bench_lib.c. */
#ifndef UNWIND_BENCH_LIB_H
#define UNWIND_BENCH_LIB_H

#define UBL_CAT2(a, b) a##b
#define UBL_CAT(a, b)  UBL_CAT2(a, b)
#ifdef UBL_PREFIX
#define UBL(name) UBL_CAT(UBL_PREFIX, name)
#endif

typedef void (*ubl_cb_t)(void *arg);

/* What the bottom of the chain does before calling cb(arg) (once). */
enum { UBL_DIRECT = 0, UBL_QSORT, UBL_TWALK, UBL_ZLIB };

/* depth frames of mixed shapes, then mode; returns a value so nothing is a tail call. */
int ubl_recurse(int depth, int mode, ubl_cb_t cb, void *arg);   /* -fomit-frame-pointer */
int ublfp_recurse(int depth, int mode, ubl_cb_t cb, void *arg); /* -fno-omit-frame-pointer */

#endif
