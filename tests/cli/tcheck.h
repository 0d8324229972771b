/*
 * tcheck.h - the tiny test harness of tests/cli: CHECK macros that count instead of aborting,
 * test cases as functions, and a closing "NAME: N passed, N failed" line (cases, not checks).
 */
#ifndef TCHECK_H
#define TCHECK_H

#include <stdio.h>
#include <string.h>

static int t_checks_failed, t_cases_passed, t_cases_failed;

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            t_checks_failed++;                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *t_a = (a), *t_b = (b);                                                         \
        if (!t_a || !t_b || strcmp(t_a, t_b) != 0) {                                               \
            t_checks_failed++;                                                                     \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s = \"%s\", expected \"%s\"\n", __FILE__,   \
                    __LINE__, #a, t_a ? t_a : "(null)", t_b ? t_b : "(null)");                     \
        }                                                                                          \
    } while (0)

#define CHECK_U(a, b)                                                                              \
    do {                                                                                           \
        unsigned long long t_a = (unsigned long long)(a), t_b = (unsigned long long)(b);           \
        if (t_a != t_b) {                                                                          \
            t_checks_failed++;                                                                     \
            fprintf(stderr, "%s:%d: CHECK_U failed: %s = %llu, expected %llu\n", __FILE__,         \
                    __LINE__, #a, t_a, t_b);                                                       \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int t_before = t_checks_failed;                                                            \
        fn();                                                                                      \
        if (t_checks_failed == t_before)                                                           \
            t_cases_passed++;                                                                      \
        else {                                                                                     \
            t_cases_failed++;                                                                      \
            fprintf(stderr, "FAIL: %s\n", #fn);                                                    \
        }                                                                                          \
    } while (0)

static inline int t_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, t_cases_passed, t_cases_failed);
    return t_cases_failed != 0;
}

#endif
