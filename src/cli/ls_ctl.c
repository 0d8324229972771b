/*
 * ls_ctl.c - the CLI's side of the control channel (protocol: ls_ctl.h, agent: ls_control.c).
 *
 * The agent picks its socket directory from its own environment, which may differ from ours (a
 * service without XDG_RUNTIME_DIR, a shell with it), so every candidate directory is tried.
 */
#define _GNU_SOURCE
#include "ls_ctl.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

size_t ls_ctl_dirs(char dirs[][512], size_t max)
{
    char cand[4][512];
    size_t n = 0;
    const char *own = getenv("LEAKSCOPE_CONTROL_DIR"); /* an agent started with control_dir= */
    if (own && *own) snprintf(cand[n++], 512, "%s", own);
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/') snprintf(cand[n++], 512, "%s/leakscope", xdg);
    snprintf(cand[n++], 512, "/run/user/%u/leakscope", (unsigned)geteuid());
    snprintf(cand[n++], 512, "/tmp/leakscope-%u", (unsigned)geteuid());
    size_t out = 0;
    for (size_t i = 0; i < n && out < max; i++) {
        bool dup = false;
        for (size_t k = 0; k < out; k++) dup |= strcmp(dirs[k], cand[i]) == 0;
        if (!dup) memcpy(dirs[out++], cand[i], 512);
    }
    return out;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connects to the socket at path. Returns the fd, or -1 with errno. */
static int connect_path(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* One exchange on a connected fd. Returns 0/-1 with err. */
static int exchange(int fd, const char *request, char *reply, size_t replylen, int timeout_ms,
                    char *err, size_t errlen)
{
    char line[LS_CTL_LINE_MAX + 2];
    size_t n = strlen(request);
    if (n >= LS_CTL_LINE_MAX || memchr(request, '\n', n)) {
        snprintf(err, errlen, "request too long or contains a newline");
        return -1;
    }
    memcpy(line, request, n);
    line[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, line + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            snprintf(err, errlen, "cannot send the request: %s", strerror(errno));
            return -1;
        }
        off += (size_t)w;
    }
    size_t got = 0;
    long long end = now_ms() + timeout_ms;
    for (;;) {
        long long left = end - now_ms();
        if (left <= 0) {
            snprintf(err, errlen,
                     "no reply within %d ms (an agent in mode sample serves its first request "
                     "at the process's next allocation: an idle process answers when it wakes; "
                     "LEAKSCOPE_OPTIONS=control_lazy=0 serves at once)",
                     timeout_ms);
            return -1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return -1;
        }
        if (r == 0) continue;
        ssize_t k = recv(fd, line + got, sizeof(line) - 1 - got, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            snprintf(err, errlen,
                     "the agent closed the connection without a reply (did the "
                     "process exit?)");
            return -1;
        }
        got += (size_t)k;
        line[got] = 0;
        char *nl = strchr(line, '\n');
        if (nl || got == sizeof(line) - 1) {
            if (nl) *nl = 0;
            break;
        }
    }
    if (strncmp(line, "ok", 2) == 0 && (line[2] == 0 || line[2] == ' ')) {
        snprintf(reply, replylen, "%s", line[2] ? line + 3 : "");
        return 0;
    }
    if (strncmp(line, "error ", 6) == 0)
        snprintf(err, errlen, "the agent says: %s", line + 6);
    else
        snprintf(err, errlen, "unexpected reply from the agent: '%.100s'", line);
    return -1;
}

int ls_ctl_request(pid_t pid, const char *request, char *reply, size_t replylen, int timeout_ms,
                   char *err, size_t errlen)
{
    char dirs[4][512];
    size_t nd = ls_ctl_dirs(dirs, 4);
    int last_errno = ENOENT;
    for (size_t i = 0; i < nd; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/%d.sock", dirs[i], (int)pid);
        int fd = connect_path(path);
        if (fd < 0) {
            if (errno != ENOENT) last_errno = errno;
            continue;
        }
        int rc = exchange(fd, request, reply, replylen, timeout_ms, err, errlen);
        close(fd);
        return rc;
    }
    if (kill(pid, 0) < 0 && errno == ESRCH)
        snprintf(err, errlen, "no process %d", (int)pid);
    else if (last_errno == ENOENT)
        snprintf(err, errlen,
                 "process %d has no leakscope agent listening (not started under leakscope, "
                 "control=0, or another user's)",
                 (int)pid);
    else
        snprintf(err, errlen, "cannot reach the agent of process %d: %s", (int)pid,
                 strerror(last_errno));
    return -1;
}

int ls_ctl_snapshot(pid_t pid, const char *path, int leak_check, char *err, size_t errlen)
{
    /* The agent runs elsewhere: give it an absolute path, made from our cwd. */
    char abs[PATH_MAX + 64];
    if (path[0] == '/') {
        snprintf(abs, sizeof(abs), "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd))) {
            snprintf(err, errlen, "cannot get the working directory: %s", strerror(errno));
            return -1;
        }
        snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
    }
    char req[LS_CTL_LINE_MAX], reply[LS_CTL_LINE_MAX];
    if ((size_t)snprintf(req, sizeof(req), "snapshot %s%s", abs, leak_check ? " check" : "") >=
        sizeof(req)) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    /* A leak check of a big heap takes seconds; a snapshot well under one. */
    return ls_ctl_request(pid, req, reply, sizeof(reply), leak_check ? 120000 : 60000, err, errlen);
}

size_t ls_ctl_list(ls_ctl_agent_fn fn, void *ctx)
{
    char dirs[4][512];
    size_t nd = ls_ctl_dirs(dirs, 4), found = 0;
    for (size_t i = 0; i < nd; i++) {
        DIR *d = opendir(dirs[i]);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (pid <= 0 || strcmp(end, ".sock") != 0) continue;
            char path[800];
            snprintf(path, sizeof(path), "%s/%s", dirs[i], e->d_name);
            int fd = connect_path(path);
            if (fd < 0) {
                /* Nobody listens: the agent binds under a temporary name and renames only once it
                 * listens, so a refused socket is stale (its process exited or exec'd). */
                if (errno == ECONNREFUSED) unlink(path);
                continue;
            }
            char reply[LS_CTL_LINE_MAX], err[256];
            int rc = exchange(fd, "info", reply, sizeof(reply), 3000, err, sizeof(err));
            close(fd);
            fn((pid_t)pid, rc == 0 ? reply : NULL, ctx); /* NULL: it did not answer in time */
            found++;
        }
        closedir(d);
    }
    return found;
}
