/* uwt_lib.h - call chains of test_unwind: see uwt_lib.c. UWT(name) adds the build's prefix. */
#ifndef UWT_LIB_H
#define UWT_LIB_H

#define UWT_CAT2(a, b) a##b
#define UWT_CAT(a, b)  UWT_CAT2(a, b)
#ifdef UWT_PREFIX
#define UWT(name) UWT_CAT(UWT_PREFIX, name)
#endif

typedef void (*uwt_cb_t)(void *arg);

/* depth frames of mixed shapes, then cb(arg); returns a value so nothing is a tail call. */
int nofp_recurse(int depth, uwt_cb_t cb, void *arg);
int fp_recurse(int depth, uwt_cb_t cb, void *arg);
/* The same, then qsort from libc, whose comparator calls cb(arg) once. */
int nofp_recurse_qsort(int depth, uwt_cb_t cb, void *arg);
int fp_recurse_qsort(int depth, uwt_cb_t cb, void *arg);
/* The same, then sets *stop = 1 and spins until *stop == 2 (for asynchronous signals). */
int nofp_recurse_spin(int depth, volatile int *stop);
int fp_recurse_spin(int depth, volatile int *stop);

/* uwt_dl.c, reached through dlsym only. */
typedef int (*uwt_dl_recurse_t)(int depth, uwt_cb_t cb, void *arg);

#endif
