/* refs_target.h - reference-counted objects used the way programs use them (obj_get() around
 * ls_ref_get(), ...), for test_refs.c. refs_target.c is built with -O0 -g; "@..." markers name
 * the lines the tests expect. Every object comes from a static pool: addresses never repeat. */
#ifndef REFS_TARGET_H
#define REFS_TARGET_H

#include <stdint.h>

/* The perf-style scenario on "struct conn": each kind creates an object, runs one function
 * with it and drops the creator's reference. 'D': funcD calls funcA (which returns a new
 * reference) and puts it: correct. 'B': funcB calls funcA and forgets the put. 'C': funcC calls
 * funcA, then gets again, and puts once. */
void refs_conn_run(const char *kinds);
/* Scenario 'C' twice from one source line (two return addresses, as an unrolled loop has). */
void refs_conn_same_line(void);
/* "struct tracked": one object; its gets and puts with trackers, the second of two gets in
 * tracked_two (@t2-get) is never put although a put follows it. */
void refs_tracked_run(void);
/* "struct single": single_get has one caller, single_user, called from two lines of one
 * function; it takes references it never drops. */
void refs_single_run(void);
/* "struct chain": chain_get -> chain_inner -> ls_ref_get, called from chain_x (whose object is
 * released) and chain_y (whose reference is never dropped). */
void refs_chain_run(void);
/* Errors on "struct conn": a double put (double_put_site, twice from one stack) after the put
 * at @kill-put; a get after the last put (late_get_site) of an object that went through funcD;
 * a get on an object never registered (stray_get_site). */
void refs_errors_run(void);
/* The address of the n-th object handed out by the pool since the last reset. */
uintptr_t refs_pool_addr(unsigned n);
void refs_pool_reset(void);

#endif
