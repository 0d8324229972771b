/*
 * test_live.c - the agent's live-inspection side, end to end: ls_mark/ls_snapshot_write from the
 * API (marker exactness against block births), the control socket (info, mark, snapshot, errors,
 * listing, fork, exec, removal at exit), the snapshot signal, interval snapshots, an unsafe socket
 * directory and control=0.
 *
 * usage: test_live AGENT LIVE_PROG
 * Every child runs with XDG_RUNTIME_DIR in a private temporary directory, so its socket and ours
 * never meet another test's.
 */
#define _GNU_SOURCE
#include "../cli/tcheck.h"
#include "ls_ctl.h"
#include "ls_format_read.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *agent, *prog;
static char dir[256];

typedef struct child {
    pid_t pid;
    FILE *in, *out; /* its stdin, its stdout */
    int err_fd;     /* its stderr */
} child_t;

static int spawn(child_t *c, const char *options, const char *arg1, const char *arg2)
{
    int pin[2], pout[2], perr[2];
    if (pipe(pin) || pipe(pout) || pipe(perr)) return -1;
    c->pid = fork();
    if (c->pid < 0) return -1;
    if (c->pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        close(pin[1]);
        close(pout[0]);
        close(perr[0]);
        setenv("LD_PRELOAD", agent, 1);
        setenv("LEAKSCOPE_OPTIONS", options, 1);
        execl(prog, prog, arg1, arg2, (char *)NULL);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    c->in = fdopen(pin[1], "w");
    c->out = fdopen(pout[0], "r");
    c->err_fd = perr[0];
    fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
    return 0;
}

/* Reads one line of the child's stdout within 10 s. */
static int read_line(child_t *c, char *buf, size_t len)
{
    struct pollfd p = {fileno(c->out), POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) return -1;
    return fgets(buf, (int)len, c->out) ? 0 : -1;
}

static void say(child_t *c, const char *line)
{
    fprintf(c->in, "%s\n", line);
    fflush(c->in);
}

static int finish(child_t *c)
{
    if (c->in) fclose(c->in);
    int st = 0;
    waitpid(c->pid, &st, 0);
    fclose(c->out);
    close(c->err_fd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void child_stderr(child_t *c, char *buf, size_t len)
{
    ssize_t n = read(c->err_fd, buf, len - 1);
    buf[n > 0 ? n : 0] = 0;
}

static int request(pid_t pid, const char *req, char *reply, size_t len)
{
    char err[512];
    int rc = ls_ctl_request(pid, req, reply, len, 10000, err, sizeof(err));
    if (rc) snprintf(reply, len, "%s", err);
    return rc;
}

static int wait_file(const char *path, int ms)
{
    for (int i = 0; i < ms / 20; i++) {
        if (access(path, F_OK) == 0) return 0;
        usleep(20000);
    }
    return -1;
}

static size_t count_size(const ls_snapshot_t *s, uint64_t size, uint64_t lo, uint64_t hi)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nblocks; i++)
        if (s->blocks[i].size == size && s->blocks[i].birth_ns >= lo && s->blocks[i].birth_ns < hi)
            n++;
    return n;
}

static void test_api(void)
{
    char snap[512], opts[1024], auto2[512], err[512];
    snprintf(snap, sizeof(snap), "%s/api.lsnap", dir);
    snprintf(opts, sizeof(opts), "output=%s/exit.lsnap:summary=0:snapshot_output=%s/auto.%%n.lsnap",
             dir, dir);
    child_t c;
    CHECK(spawn(&c, opts, "api", snap) == 0);
    CHECK_U(finish(&c), 0);
    ls_snapshot_t s;
    if (ls_snapshot_load(snap, &s, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        CHECK(0);
    }
    CHECK_U(s.nmarkers, 2);
    if (s.nmarkers == 2) {
        CHECK_STR(s.markers[0].label, "A");
        CHECK_STR(s.markers[1].label, "B");
        CHECK_U(s.markers[1].seq, 2);
        uint64_t a = s.markers[0].time_ns, b = s.markers[1].time_ns;
        CHECK(a < b);
        /* exact windows, though all of it ran within one tick of the coarse clock */
        CHECK_U(count_size(&s, 1111, 0, a), 3);
        CHECK_U(count_size(&s, 1111, a, UINT64_MAX), 0);
        CHECK_U(count_size(&s, 2222, a, b), 5);
        CHECK_U(count_size(&s, 2222, 0, UINT64_MAX), 5);
        CHECK_U(count_size(&s, 3333, b, UINT64_MAX), 7);
        CHECK_U(count_size(&s, 3333, 0, b), 0);
    }
    CHECK_U(s.reason, LS_REASON_LIVE);
    CHECK_STR(s.trigger, "api");
    CHECK_U(s.snap_seq, 1);
    CHECK(s.snap_realtime_ns > 0);
    CHECK(s.stats_present & (1ull << LS_STAT_PAUSE_NS));
    for (size_t i = 0; i < s.nblocks; i++) CHECK_U(s.blocks[i].kind, LS_KIND_UNCHECKED);
    ls_snapshot_free(&s);
    snprintf(auto2, sizeof(auto2), "%s/auto.2.lsnap", dir);
    CHECK(ls_snapshot_load(auto2, &s, err, sizeof(err)) == 0);
    CHECK_U(count_size(&s, 2222, 0, UINT64_MAX), 0);
    CHECK_U(count_size(&s, 3333, 0, UINT64_MAX), 7);
    CHECK_U(s.snap_seq, 2);
    ls_snapshot_free(&s);
}

static pid_t start_serve(child_t *c, const char *extra)
{
    char opts[1024], line[128];
    snprintf(opts, sizeof(opts), "output=%s/exit.%%p.lsnap:summary=0%s", dir, extra);
    if (spawn(c, opts, "serve", NULL)) return 0;
    int pid = 0;
    if (read_line(c, line, sizeof(line)) || sscanf(line, "ready %d", &pid) != 1) return 0;
    return (pid_t)pid;
}

static void found(pid_t pid, const char *info, void *ctx)
{
    (void)info;
    if (pid == *(pid_t *)ctx) *(pid_t *)ctx = -1;
}

static void test_socket(void)
{
    child_t c;
    pid_t pid = start_serve(&c, "");
    CHECK(pid > 0);
    char reply[LS_CTL_LINE_MAX], want[64], path[512], line[128], err[512];
    CHECK(request(pid, "info", reply, sizeof(reply)) == 0);
    snprintf(want, sizeof(want), "pid=%d ", (int)pid);
    CHECK(strstr(reply, want) != NULL);
    CHECK(strstr(reply, "protocol=1") != NULL);

    say(&c, "alloc 100 4000");
    CHECK(read_line(&c, line, sizeof(line)) == 0 && !strcmp(line, "ok\n"));
    CHECK(request(pid, "mark round one", reply, sizeof(reply)) == 0);
    CHECK(strncmp(reply, "seq=1 ", 6) == 0);
    snprintf(path, sizeof(path), "%s/s1.lsnap", dir);
    CHECK(ls_ctl_snapshot(pid, path, 0, err, sizeof(err)) == 0);
    ls_snapshot_t s;
    CHECK(ls_snapshot_load(path, &s, err, sizeof(err)) == 0);
    CHECK_U(count_size(&s, 4000, 0, UINT64_MAX), 100);
    CHECK(s.nmarkers == 1 && !strcmp(s.markers[0].label, "round one"));
    CHECK_STR(s.trigger, "control");
    ls_snapshot_free(&s);
    /* a leak-checked snapshot: verdicts on every block */
    snprintf(path, sizeof(path), "%s/s2.lsnap", dir);
    CHECK(ls_ctl_snapshot(pid, path, 1, err, sizeof(err)) == 0);
    CHECK(ls_snapshot_load(path, &s, err, sizeof(err)) == 0);
    CHECK_U(s.leak_checked, 1);
    ls_snapshot_free(&s);

    /* errors are replies, and the process keeps serving */
    CHECK(request(pid, "bogus", reply, sizeof(reply)) == -1);
    CHECK(strstr(reply, "unknown or incomplete request 'bogus'") != NULL);
    CHECK(request(pid, "snapshot relative.lsnap", reply, sizeof(reply)) == -1);
    CHECK(strstr(reply, "absolute path") != NULL);
    CHECK(request(pid, "mark", reply, sizeof(reply)) == -1);
    CHECK(request(pid, "snapshot /nonexistent-dir/x.lsnap", reply, sizeof(reply)) == -1);
    CHECK(strstr(reply, "cannot write") != NULL);
    char longlabel[300];
    memset(longlabel, 'x', sizeof(longlabel));
    memcpy(longlabel, "mark ", 5);
    longlabel[sizeof(longlabel) - 1] = 0;
    CHECK(request(pid, longlabel, reply, sizeof(reply)) == -1);
    CHECK(strstr(reply, "longer than 120") != NULL);
    CHECK(request(pid, "info", reply, sizeof(reply)) == 0);

    pid_t look = pid;
    ls_ctl_list(found, &look);
    CHECK(look == -1);

    /* a forked child gets its own socket; the parent keeps its own */
    say(&c, "fork");
    int cpid = 0;
    CHECK(read_line(&c, line, sizeof(line)) == 0 && sscanf(line, "child %d", &cpid) == 1);
    if (cpid > 0) {
        snprintf(want, sizeof(want), "pid=%d ", cpid);
        int ok = -1;
        for (int i = 0; i < 100 && ok; i++) { /* its thread starts right after fork */
            ok = request(cpid, "info", reply, sizeof(reply));
            if (ok) usleep(20000);
        }
        CHECK(ok == 0 && strstr(reply, want) != NULL);
        CHECK(request(pid, "info", reply, sizeof(reply)) == 0);
        /* killed without an exit path: its socket stays behind until a listing removes it */
        kill(cpid, SIGKILL);
        usleep(100000);
        char sock[700], dirs[3][512];
        ls_ctl_dirs(dirs, 3);
        snprintf(sock, sizeof(sock), "%s/%d.sock", dirs[0], cpid);
        pid_t none = cpid;
        ls_ctl_list(found, &none);
        CHECK(none == cpid);
        CHECK(access(sock, F_OK) != 0);
    }

    /* exec: the new image answers on the same pid, with its own state */
    say(&c, "exec");
    int again = 0;
    CHECK(read_line(&c, line, sizeof(line)) == 0 && sscanf(line, "ready %d", &again) == 1);
    CHECK(again == pid);
    CHECK(request(pid, "info", reply, sizeof(reply)) == 0);
    CHECK(strstr(reply, "markers=0 ") != NULL);

    char dirs[3][512], sock[700];
    ls_ctl_dirs(dirs, 3);
    snprintf(sock, sizeof(sock), "%s/%d.sock", dirs[0], (int)pid);
    CHECK(access(sock, F_OK) == 0);
    CHECK_U(finish(&c), 0);
    CHECK(access(sock, F_OK) != 0); /* removed at exit */
    CHECK(request(pid, "info", reply, sizeof(reply)) == -1);
}

static void test_signal_and_interval(void)
{
    char extra[600], path[512], err[512];
    child_t c;
    snprintf(extra, sizeof(extra), ":snapshot_signal=%d:snapshot_output=%s/sig.%%n.lsnap", SIGUSR2,
             dir);
    pid_t pid = start_serve(&c, extra);
    CHECK(pid > 0);
    kill(pid, SIGUSR2);
    snprintf(path, sizeof(path), "%s/sig.1.lsnap", dir);
    CHECK(wait_file(path, 10000) == 0);
    usleep(50000);
    ls_snapshot_t s;
    CHECK(ls_snapshot_load(path, &s, err, sizeof(err)) == 0);
    CHECK_STR(s.trigger, "signal");
    ls_snapshot_free(&s);
    CHECK_U(finish(&c), 0); /* SIGUSR2 did not kill it */

    snprintf(extra, sizeof(extra), ":snapshot_interval=1:snapshot_output=%s/int.%%n.lsnap", dir);
    pid = start_serve(&c, extra);
    CHECK(pid > 0);
    snprintf(path, sizeof(path), "%s/int.2.lsnap", dir);
    CHECK(wait_file(path, 10000) == 0);
    usleep(50000);
    CHECK(ls_snapshot_load(path, &s, err, sizeof(err)) == 0);
    CHECK_STR(s.trigger, "interval");
    ls_snapshot_free(&s);
    CHECK_U(finish(&c), 0);
}

/* output=/dev/null keeps nothing - and never replaces the device (as root, a rename would). */
static void test_dev_null(void)
{
    child_t c;
    CHECK(spawn(&c, "output=/dev/null:summary=0", "serve", NULL) == 0);
    CHECK_U(finish(&c), 0);
    struct stat st;
    CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
}

static void test_refusals(void)
{
    /* A socket directory open to others is refused: no channel, the program runs on. */
    char bad[400], sub[512], msg[4096], reply[512];
    snprintf(bad, sizeof(bad), "%s/bad", dir);
    mkdir(bad, 0700);
    snprintf(sub, sizeof(sub), "%s/leakscope", bad);
    mkdir(sub, 0755);
    chmod(sub, 0755);
    char *saved = strdup(getenv("XDG_RUNTIME_DIR"));
    setenv("XDG_RUNTIME_DIR", bad, 1);
    child_t c;
    pid_t pid = start_serve(&c, "");
    CHECK(pid > 0);
    usleep(100000);
    child_stderr(&c, msg, sizeof(msg));
    CHECK(strstr(msg, "control channel off") != NULL);
    CHECK(strstr(msg, "mode 755") != NULL);
    CHECK_U(finish(&c), 0);
    setenv("XDG_RUNTIME_DIR", saved, 1);
    free(saved);

    /* an agent with its own control_dir: the CLI finds it through LEAKSCOPE_CONTROL_DIR */
    char own[400], extra[500];
    snprintf(own, sizeof(own), "%s/own", dir);
    snprintf(extra, sizeof(extra), ":control_dir=%s", own);
    pid = start_serve(&c, extra);
    CHECK(pid > 0);
    usleep(100000);
    CHECK(request(pid, "info", reply, sizeof(reply)) == -1);
    setenv("LEAKSCOPE_CONTROL_DIR", own, 1);
    CHECK(request(pid, "info", reply, sizeof(reply)) == 0);
    unsetenv("LEAKSCOPE_CONTROL_DIR");
    CHECK_U(finish(&c), 0);

    pid = start_serve(&c, ":control=0");
    CHECK(pid > 0);
    CHECK(request(pid, "info", reply, sizeof(reply)) == -1);
    CHECK(strstr(reply, "no leakscope agent listening") != NULL);
    CHECK_U(finish(&c), 0);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_live AGENT LIVE_PROG\n");
        return 2;
    }
    agent = argv[1];
    prog = argv[2];
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/ls-test-live-XXXXXX");
    if (!mkdtemp(dir)) return 2;
    char xdg[300];
    snprintf(xdg, sizeof(xdg), "%s/xdg", dir);
    mkdir(xdg, 0700);
    setenv("XDG_RUNTIME_DIR", xdg, 1);
    unsetenv("LEAKSCOPE_CONTROL_DIR");
    RUN(test_api);
    RUN(test_socket);
    RUN(test_signal_and_interval);
    RUN(test_refusals);
    RUN(test_dev_null);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
    return t_done("test_live");
}
