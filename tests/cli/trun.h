/*
 * trun.h - test helper: runs the built leakscope binary (fork + exec) with a NULL-terminated
 * argument list and captures its exit status, stdout and stderr; checks the shape every bad
 * input must have.
 */
#ifndef TRUN_H
#define TRUN_H

#include <stddef.h>

typedef struct trun_result {
    int status; /* exit code, or 128 + signal */
    char out[131072], err[16384];
} trun_result_t;

/* bin: the leakscope binary; scratch: a directory for the capture files. */
void trun_init(const char *bin, const char *scratch);
/* Runs leakscope ARG0 ARGS... (NULL-terminated). */
void trun(trun_result_t *r, const char *arg0, ...) __attribute__((sentinel));
/* Reads up to cap - 1 bytes of path into buf, NUL-terminated ("" when unreadable). */
void trun_slurp(const char *path, char *buf, size_t cap);
void trun_write_file(const char *path, const void *data, size_t len);
/* The failure shape of a bad input: exit 1, stderr starting with "CMD: " and containing needle,
 * no sanitizer report, nothing on stdout. Returns 1 when it holds (else prints why). */
int trun_input_error(const trun_result_t *r, const char *cmd, const char *what, const char *needle);
/* A usage error: exit 2 and needle in stderr. */
int trun_usage_error(const trun_result_t *r, const char *what, const char *needle);

#endif
