/* sym_target.h - functions with known names and lines whose return addresses the symbolizer
 * tests resolve (sym_target.c is built with -O2 -g; markers "@..." name the lines). */
#ifndef SYM_TARGET_H
#define SYM_TARGET_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Stores its return address in *out. */
void sym_capture(uintptr_t *out);
/* Calls sym_capture directly (@plain-call). */
void sym_plain(uintptr_t *out);
/* Calls sym_capture through the always-inline sym_inner (@inner-call), inlined at @outer-call. */
void sym_outer(uintptr_t *out);
/* Another direct caller, for suppression tests (@supp-call). */
void sym_suppressed_site(uintptr_t *out);
/* C++ (sym_cxx.cpp): calls sym_capture from ns::Widget<int>::make(int, unsigned long*). */
void sym_cxx_run(uintptr_t *out);

#ifdef __cplusplus
}
#endif

#endif
