/*
 * ls_fail_spec.h - `leakscope run --fail SPEC`: fault injection rules, from the user's specs to
 * the agent's fail option (src/agent/ls_fail.c reads it), and back for the report.
 *
 *   SPEC  = WHERE[,nth=N | ,every=N | ,probability=P][,seed=S]
 *   WHERE = FILE:LINE          the calls on a source line (FILE: a path suffix)
 *         | FUNCTION           the calls made directly in a function (not in functions inlined
 *                              into it: the calls whose innermost frame in a report it is)
 *         | MODULE+0xOFF       the call returning to OFF, a frame exactly as reports print it
 *         | MODULE+0xLO-0xHI   calls whose instruction ends in [LO, HI) (ELF addresses)
 *
 * FILE:LINE and FUNCTION are resolved here, with libdw, in the program and the libraries the
 * dynamic loader lists for it (`ld.so --list`), into MODULE+0xLO-0xHI ranges; for a program or
 * library built with compile-time tags (include/leakscope/tags.h) the rule also names the tag
 * form (line=FILE@LINE, func=NAME), which mode sites matches for tagged calls.
 *
 * The agent form (META fail): rules separated by ';', each "TARGET|TARGET|...,KNOB=V,..." with
 * TARGET = MODULE+0xLO-0xHI | line=FILE@LINE | func=NAME and KNOB = nth, every, probability,
 * seed, spec (the user's spec, for the report). No ':' anywhere (the agent's option separator):
 * every byte of "%:;,|=@" and controls inside a name is written %XX.
 */
#ifndef LS_FAIL_SPEC_H
#define LS_FAIL_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum ls_fail_where { LS_FAIL_LINE, LS_FAIL_FUNC, LS_FAIL_ADDR } ls_fail_where_t;
typedef enum ls_fail_sched {
    LS_FAIL_ALWAYS,
    LS_FAIL_NTH,
    LS_FAIL_EVERY,
    LS_FAIL_PROB
} ls_fail_sched_t;

typedef struct ls_fail_spec {
    const char *text; /* the spec as given (not owned) */
    ls_fail_where_t where;
    char *file; /* LINE: the path suffix */
    unsigned line;
    char *func;      /* FUNC */
    char *module;    /* ADDR: path or basename as given */
    uint64_t lo, hi; /* ADDR: [lo, hi) holds the call's last byte (pc - 1) */
    ls_fail_sched_t sched;
    uint64_t n; /* nth, every */
    double p;   /* probability */
    uint64_t seed;
    bool have_seed;
} ls_fail_spec_t;

/* Parses one spec. Returns 0, or -1 with what is wrong in err (without the spec itself). */
int ls_fail_spec_parse(const char *text, ls_fail_spec_t *out, char *err, size_t errlen);
void ls_fail_spec_free(ls_fail_spec_t *s);

/* Resolves specs[0..n) in program (found on PATH like execvp when it has no '/') and builds the
 * agent form into *agent (malloc'd). Notes and warnings go to warn, each line prefixed by cmd.
 * Returns 0, or -1 with a message naming the spec in err. */
int ls_fail_resolve(const ls_fail_spec_t *specs, size_t n, const char *program, char **agent,
                    FILE *warn, const char *cmd, char *err, size_t errlen);

/* The rules of an agent form (META fail), for reports: *specs[i] is rule i's spec (its spec=
 * knob decoded, or the rule's own text when it has none). Returns the number of rules (0 for
 * NULL or ""), -1 when out of memory. ls_fail_rules_free frees the array. */
long ls_fail_rules_parse(const char *agent, char ***specs);
void ls_fail_rules_free(char **specs, size_t n);

/* Appends s to buf (at *len, capacity cap) with every byte of "%:;,|=@" and controls escaped
 * %XX. Returns 0, or -1 when it does not fit (buf then holds a cut string). */
int ls_fail_escape(char *buf, size_t cap, size_t *len, const char *s);

#endif
