/*
 * trun.c - see trun.h.
 */
#define _GNU_SOURCE
#include "trun.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bin_path, *scratch_dir;

void trun_init(const char *bin, const char *scratch)
{
    bin_path = bin;
    scratch_dir = scratch;
}

void trun_slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    size_t got = 0;
    while (fd >= 0 && got < cap - 1) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    buf[got] = 0;
    if (fd >= 0) close(fd);
}

void trun_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    if (len && write(fd, data, len) != (ssize_t)len) perror(path);
    close(fd);
}

void trun(trun_result_t *r, const char *arg0, ...)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = bin_path;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && n < 63; a = va_arg(ap, const char *)) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char outp[4200], errp[4200];
    snprintf(outp, sizeof(outp), "%s/stdout", scratch_dir);
    snprintf(errp, sizeof(errp), "%s/stderr", scratch_dir);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        execv(bin_path, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    trun_slurp(outp, r->out, sizeof(r->out));
    trun_slurp(errp, r->err, sizeof(r->err));
    unlink(outp);
    unlink(errp);
}

int trun_input_error(const trun_result_t *r, const char *cmd, const char *what, const char *needle)
{
    size_t n = strlen(cmd);
    int ok = r->status == 1 && strncmp(r->err, cmd, n) == 0 && strncmp(r->err + n, ": ", 2) == 0 &&
             strstr(r->err, needle) && !strstr(r->err, "Sanitizer") &&
             !strstr(r->err, "runtime error") && r->out[0] == 0;
    if (!ok)
        fprintf(stderr, "  %s: status %d, stderr: %s  (wanted \"%s\")\n", what, r->status, r->err,
                needle);
    return ok;
}

int trun_usage_error(const trun_result_t *r, const char *what, const char *needle)
{
    int ok = r->status == 2 && strstr(r->err, needle) != NULL;
    if (!ok)
        fprintf(stderr, "  %s: status %d, stderr: %s  (wanted \"%s\")\n", what, r->status, r->err,
                needle);
    return ok;
}
