/*
 * ls_control.c - the control channel: a background thread that serves a Unix socket
 * (leakscope snapshot/mark/ps/watch), the snapshot signal and interval snapshots.
 *
 * Why a thread of its own: the host's threads must not pay anything for the channel, so nothing
 * on the allocation path looks at it; a request is served by this thread, which parks the others
 * only while a snapshot copies the live blocks (ls_live.c).
 *
 * Living inside someone else's process:
 * - the thread runs with the reentrancy guard set for good, so whatever it calls is never tracked,
 *   and it never calls the host's allocator while other threads are parked;
 * - its stack and TCB are agent memory (ls__map), so a leak scan never takes them for roots, and
 *   it is never parked itself (ls__g.control_tid);
 * - it blocks every signal but the stop signal: no host handler ever runs on it;
 * - the socket is created owner-only in a directory checked for ownership, bound under a
 *   temporary name and renamed, so PID.sock always has a listener behind it; peers of another
 *   uid (root aside) are refused (SO_PEERCRED);
 * - one request per connection, served one at a time with a deadline: a silent or malformed
 *   peer costs at most that deadline and gets an error line, never a crash.
 *
 * Modes sample and sites (ls__sampling 3 instead of 1, restored by the wake) start the thread
 * lazily, at the first request. The mere existence of a second
 * thread takes glibc's malloc off its single-thread path for good (arena locks and atomic
 * fastbins on every call: ~5% of a single-threaded interpreter's time, more than the whole
 * profiler), and its stack and TCB cost RSS. So the socket listens from the start, with O_ASYNC:
 * a peer's connection makes the kernel send the stop signal, whose handler (outside a stop
 * session) and the snapshot signal's handler only poke ls__sampling from 1 to 2. The next
 * malloc/free/calloc/realloc on any thread then goes through the dispatcher's other branch
 * (ls_interpose.c), which calls ls__control_wake and creates the thread there, outside any
 * signal handler, before doing its own work. Like heapprofd, an idle process that never
 * allocates is served when it next allocates (control_lazy=0 starts the thread at startup).
 * Interval snapshots need the clock, so with snapshot_interval the thread starts at once.
 */
#define _GNU_SOURCE
#include "ls_agent.h"
#include "ls_interpose.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LS_CTL_LINE_MAX    4096
#define LS_CTL_DEADLINE_MS 2000
#define LS_CTL_STACK       (256u << 10)

static struct {
    int listen_fd, wake_fd;
    struct stat listen_st, wake_st; /* identity: a host may close our descriptors and reuse them */
    pid_t owner; /* the process that created the socket: only it removes the file */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    _Atomic int snapshot_pending;
    _Atomic int busy; /* held while the thread works; the exit path takes it for good */
    bool thread;      /* the thread was created (it may not have run yet) */
    bool started;
    _Atomic bool lazy; /* mode sample: the thread waits for a first request (head comment) */
} ctl = {.listen_fd = -1, .wake_fd = -1};

/* ---- the socket --------------------------------------------------------------------------------
 */
/* Moves fd to a high number (a host that closes every descriptor but its own, or reuses low
 * numbers, is then unlikely to meet ours) and remembers what it is. */
static int park_fd(int fd, struct stat *st)
{
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 900);
    if (hi >= 0) {
        close(fd);
        fd = hi;
    }
    if (fstat(fd, st) < 0) memset(st, 0, sizeof(*st));
    return fd;
}

/* Is fd still the descriptor we opened? (closed, or closed and reused by the host: not ours) */
static bool still_ours(int fd, const struct stat *was)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_ino == was->st_ino && st.st_dev == was->st_dev;
}

/* The directory for sockets: made owner-only if missing, refused if someone else owns it or it
 * is open to others (a /tmp name another user created first). */
static int socket_dir(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (ls__g.opt.control_dir[0])
        snprintf(buf, len, "%s", ls__g.opt.control_dir);
    else if (xdg && xdg[0] == '/')
        snprintf(buf, len, "%s/leakscope", xdg);
    else
        snprintf(buf, len, "/tmp/leakscope-%u", (unsigned)geteuid());
    if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
        ls__error("control channel off: cannot create %s: %s", buf, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(buf, &st) < 0 || !S_ISDIR(st.st_mode)) {
        ls__error("control channel off: %s is not a directory", buf);
        return -1;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077)) {
        ls__error("control channel off: %s is owned by uid %u with mode %03o (must be ours, 0700)",
                  buf, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

static int open_socket(void)
{
    char dir[512];
    if (socket_dir(dir, sizeof(dir)) < 0) return -1;
    struct sockaddr_un tmp = {.sun_family = AF_UNIX};
    int n1 = snprintf(ctl.path, sizeof(ctl.path), "%s/%d.sock", dir, (int)getpid());
    int n2 = snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s/.%d.tmp", dir, (int)getpid());
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(ctl.path) || (size_t)n2 >= sizeof(tmp.sun_path)) {
        ls__error("control channel off: socket path under %s is too long", dir);
        ctl.path[0] = 0;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        ls__error("control channel off: socket: %s", strerror(errno));
        ctl.path[0] = 0;
        return -1;
    }
    unlink(tmp.sun_path); /* left by an earlier process with our pid */
    if (bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) < 0 || chmod(tmp.sun_path, 0600) < 0 ||
        listen(fd, 128) < 0 || rename(tmp.sun_path, ctl.path) < 0) {
        ls__error("control channel off: cannot listen on %s: %s", ctl.path, strerror(errno));
        unlink(tmp.sun_path);
        close(fd);
        ctl.path[0] = 0;
        return -1;
    }
    ctl.listen_fd = park_fd(fd, &ctl.listen_st);
    ctl.owner = getpid();
    if (ls__g.opt.verbose) ls__log("control socket %s", ctl.path);
    return 0;
}

/* ---- requests ----------------------------------------------------------------------------------
 */
static void reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(int fd, const char *fmt, ...)
{
    char buf[LS_CTL_LINE_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof(buf) - 2) n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0) return; /* a peer that does not read loses its reply */
        off += (int)w;
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first word of a request, printable, for error messages. */
static void word_for_error(const char *s, char *out, size_t len)
{
    size_t i = 0;
    for (; s[i] && s[i] != ' ' && i + 1 < len && i < 32; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = 0;
}

static void serve_snapshot(int fd, char *arg)
{
    bool check = false;
    char *sp = strrchr(arg, ' ');
    if (sp && strcmp(sp + 1, "check") == 0) {
        check = true;
        *sp = 0;
    }
    if (arg[0] != '/') {
        reply(fd, "error snapshot needs an absolute path, got '%.200s'", arg);
        return;
    }
    ls_live_info_t info;
    if (ls__live_snapshot(arg, "control", check, &info) < 0) {
        reply(fd, "error %s", info.error[0] ? info.error : "snapshot failed");
        return;
    }
    reply(fd, "ok %s pause_ns=%llu blocks=%zu", info.path, (unsigned long long)info.pause_ns,
          info.blocks);
}

static void serve_info(int fd)
{
    uint64_t blocks = ls__bm_count();
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = 0;
    reply(fd,
          "ok pid=%d mode=%s blocks=%llu uptime_ns=%llu markers=%u snapshots=%llu protocol=1 "
          "exe=%s",
          (int)getpid(), ls__g.opt.mode, (unsigned long long)blocks,
          (unsigned long long)ls__now_ns(), ls__markers_count(),
          (unsigned long long)ls__snapshots_taken(), exe);
}

/* One complete request line (NUL-terminated at n) from connection fd. */
static void serve_line(int fd, char *line, size_t n)
{
    if (n && line[n - 1] == '\r') line[--n] = 0;
    if (memchr(line, 0, n)) {
        reply(fd, "error request contains a NUL byte");
        return;
    }
    char *arg = strchr(line, ' ');
    if (arg) *arg++ = 0;
    if (strcmp(line, "info") == 0 && !arg) {
        serve_info(fd);
    } else if (strcmp(line, "snapshot") == 0 && arg && *arg) {
        serve_snapshot(fd, arg);
    } else if (strcmp(line, "mark") == 0 && arg && *arg) {
        uint64_t t = 0;
        if (strlen(arg) > 120) {
            reply(fd, "error marker label longer than 120 bytes");
            return;
        }
        long seq = ls__mark(arg, &t);
        if (seq < 0)
            reply(fd, "error marker table full");
        else
            reply(fd, "ok seq=%ld time_ns=%llu", seq, (unsigned long long)t);
    } else {
        char w[40];
        word_for_error(line, w, sizeof(w));
        reply(
            fd,
            "error unknown or incomplete request '%s' (expected: info, snapshot PATH, mark LABEL)",
            w);
    }
}

/* ---- the thread --------------------------------------------------------------------------------
 */

/*
 * Connections: up to LS_CTL_CONNS are read at once, each until its line is complete or its
 * deadline passes, so a silent peer delays nobody; requests then run one at a time. While the
 * table is full, further peers wait in the listen backlog (they connect, their request waits).
 */
#define LS_CTL_CONNS 32
typedef struct ctl_conn {
    int fd; /* -1: free */
    size_t len;
    int64_t deadline;
    char buf[LS_CTL_LINE_MAX + 1];
} ctl_conn_t;

static ctl_conn_t *conns; /* agent memory, mapped with the thread */

static void conn_close(ctl_conn_t *c)
{
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static ctl_conn_t *free_conn(void)
{
    for (int i = 0; i < LS_CTL_CONNS; i++)
        if (conns[i].fd < 0) return &conns[i];
    return NULL;
}

static void accept_all(void)
{
    ctl_conn_t *c;
    while ((c = free_conn())) {
        int fd = accept4(ctl.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) return; /* EAGAIN: no more waiting */
        struct ucred cred;
        socklen_t clen = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
            (cred.uid != geteuid() && cred.uid != 0)) {
            reply(fd, "error permission denied: peer uid %u is not the process owner",
                  (unsigned)cred.uid);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->len = 0;
        c->deadline = mono_ms() + LS_CTL_DEADLINE_MS;
    }
}

/* Reads what c's peer sent; serves and closes it once a line is complete. */
static void conn_read(ctl_conn_t *c)
{
    ssize_t got = recv(c->fd, c->buf + c->len, LS_CTL_LINE_MAX - c->len, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (got <= 0) { /* EOF: a last line without '\n' is fine */
        if (c->len) {
            c->buf[c->len] = 0;
            serve_line(c->fd, c->buf, c->len);
        }
        conn_close(c);
        return;
    }
    char *nl = memchr(c->buf + c->len, '\n', (size_t)got);
    c->len += (size_t)got;
    if (nl) {
        size_t n = (size_t)(nl - c->buf);
        c->buf[n] = 0;
        serve_line(c->fd, c->buf, n);
        conn_close(c);
    } else if (c->len == LS_CTL_LINE_MAX) {
        reply(c->fd, "error request longer than %d bytes", LS_CTL_LINE_MAX);
        conn_close(c);
    }
}

/* State letter of task tid of this process (from /proc/self/task/TID/stat), 0 if unreadable. */
static char task_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return p && p[1] == ' ' ? p[2] : 0;
}

/* A process ends when its last thread does. When the main thread has left with pthread_exit and
 * every other thread of the program has ended, this thread alone would keep the process alive for
 * ever: it then does what glibc does for the last thread, exit(0). No allocation: raw getdents. */
static bool program_threads_gone(void)
{
    char st = task_state(getpid());
    if (st != 'Z' && st != 'X') return false; /* the common case: one small read a second */
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    pid_t self = (pid_t)syscall(SYS_gettid);
    char buf[4096] __attribute__((aligned(8)));
    bool gone = true;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (n <= 0) break;
        for (long off = 0; off < n && gone;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(buf + off);
            off += d->reclen;
            if (d->name[0] < '0' || d->name[0] > '9') continue;
            pid_t tid = (pid_t)atoi(d->name);
            if (tid == self || tid == getpid()) continue;
            char t = task_state(tid);
            if (t && t != 'Z' && t != 'X') gone = false;
        }
        if (!gone) break;
    }
    close(fd);
    return gone;
}

static void *control_main(void *arg)
{
    (void)arg;
    ls__tls.guard = 1; /* for good: nothing this thread does is the host's */
    atomic_store(&ls__g.control_tid, (pid_t)syscall(SYS_gettid));
    int64_t interval_ms = ls__g.opt.snapshot_interval > 0 ? ls__g.opt.snapshot_interval * 1000 : 0;
    int64_t next = interval_ms ? mono_ms() + interval_ms : 0;
    bool locked = false;
    for (;;) {
        locked = false;
        /* A full table leaves the listen socket unpolled: peers queue in its backlog. */
        struct pollfd p[2 + LS_CTL_CONNS] = {{free_conn() ? ctl.listen_fd : -1, POLLIN, 0},
                                             {ctl.wake_fd, POLLIN, 0}};
        int64_t now = mono_ms(), wake_at = interval_ms ? next : INT64_MAX;
        for (int i = 0; i < LS_CTL_CONNS; i++) {
            p[2 + i] = (struct pollfd){conns[i].fd, POLLIN, 0};
            if (conns[i].fd >= 0 && conns[i].deadline < wake_at) wake_at = conns[i].deadline;
        }
        int timeout = wake_at == INT64_MAX ? -1 : wake_at <= now ? 0 : (int)(wake_at - now);
        if (timeout < 0 || timeout > 1000) timeout = 1000; /* program_threads_gone, each second */
        int r = poll(p, 2 + LS_CTL_CONNS, timeout);
        if (r == 0 && !atomic_load(&ls__g.exiting) && program_threads_gone()) exit(0);
        if (r < 0 && errno != EINTR) {
            ls__error("control thread: poll: %s; channel closed", strerror(errno));
            return NULL;
        }
        /* Once the exit path runs it owns the process: go dormant rather than queue for busy. */
        while (!atomic_load(&ls__g.exiting))
            if (!atomic_load(&ctl.busy) && !atomic_exchange(&ctl.busy, 1)) {
                locked = true;
                break;
            } else {
                sched_yield();
            }
        if (!locked || atomic_load(&ls__g.exiting)) break;
        /* A host that closed our descriptors (a daemon closing everything) loses the channel,
         * and we never touch a descriptor it has since reused. */
        for (int k = 0; k < 2; k++) {
            int *fd = k ? &ctl.wake_fd : &ctl.listen_fd;
            if (p[k].revents && !still_ours(*fd, k ? &ctl.wake_st : &ctl.listen_st)) {
                ls__error("control channel: descriptor %d was closed by the program; %s off", *fd,
                          k ? "snapshot signal" : "socket");
                *fd = -1;
                p[k].revents = 0;
            }
        }
        if (p[1].revents & POLLIN) {
            uint64_t v;
            (void)!read(ctl.wake_fd, &v, sizeof(v));
        }
        if (atomic_exchange(&ctl.snapshot_pending, 0))
            ls__live_snapshot(NULL, "signal", false, NULL);
        if (interval_ms && mono_ms() >= next) {
            ls__live_snapshot(NULL, "interval", false, NULL);
            next = mono_ms() + interval_ms;
        }
        for (int i = 0; i < LS_CTL_CONNS; i++)
            if (conns[i].fd >= 0 && p[2 + i].revents) conn_read(&conns[i]);
        now = mono_ms();
        for (int i = 0; i < LS_CTL_CONNS; i++)
            if (conns[i].fd >= 0 && now >= conns[i].deadline) conn_close(&conns[i]); /* silent */
        if (p[0].revents & POLLIN) accept_all();
        ls__spin_unlock(&ctl.busy);
    }
    /* Exiting: stay dormant (holding nothing the exit path needs) until the process ends. */
    if (locked) ls__spin_unlock(&ctl.busy);
    for (;;) poll(NULL, 0, -1);
    return NULL;
}

static void snapshot_signal_handler(int sig)
{
    (void)sig;
    int e = errno;
    atomic_store(&ctl.snapshot_pending, 1);
    ls__control_poke();
    uint64_t one = 1;
    if (still_ours(ctl.wake_fd, &ctl.wake_st)) /* fstat is async-signal-safe */
        (void)!write(ctl.wake_fd, &one, sizeof(one));
    errno = e;
}

static bool start_thread(void);

/* The dispatchers' value of ls__sampling when no request is pending: 1 in mode sample, 3 in mode
 * sites (fixed before either is first stored). */
static inline int fast_value(void)
{
    return ls__mode_sites() ? 3 : 1;
}

/* Stop signal outside a stop session (ls_stopworld.c), snapshot signal: async-signal-safe. */
void ls__control_poke(void)
{
    if (!atomic_load_explicit(&ctl.lazy, memory_order_relaxed)) return;
    int fast = fast_value();
    atomic_compare_exchange_strong(&ls__sampling, &fast, 2);
}

/* The dispatcher saw ls__sampling == 2 on an allocator call of the host. */
void ls__control_wake(void)
{
    int two = 2;
    if (!atomic_compare_exchange_strong(&ls__sampling, &two, fast_value()))
        return; /* another thread won */
    /* Inside the agent (its own libc calls) or before READY: leave it to a later call. */
    if (ls__tls.guard || atomic_load(&ls__g.state) != LS_STATE_READY ||
        !atomic_exchange(&ctl.lazy, false)) {
        if (ls__tls.guard) {
            int fast = fast_value();
            atomic_compare_exchange_strong(&ls__sampling, &fast, 2);
        }
        return;
    }
    ls__tls.guard++;
    if (ctl.listen_fd >= 0) { /* no more signals: the thread polls from now on */
        int fl = fcntl(ctl.listen_fd, F_GETFL);
        if (fl >= 0) fcntl(ctl.listen_fd, F_SETFL, fl & ~O_ASYNC);
    }
    if (ls__g.opt.verbose) ls__log("control thread started at the first request");
    if (!start_thread()) ls__control_stop();
    ls__tls.guard--;
}

/* O_ASYNC on the listening socket: a connection sends the stop signal to the process. */
static bool arm_async(void)
{
    struct f_owner_ex owner = {F_OWNER_PID, getpid()};
    int fl = fcntl(ctl.listen_fd, F_GETFL);
    return fl >= 0 && fcntl(ctl.listen_fd, F_SETOWN_EX, &owner) == 0 &&
           fcntl(ctl.listen_fd, F_SETSIG, ls__g.stop_signal) == 0 &&
           fcntl(ctl.listen_fd, F_SETFL, fl | O_ASYNC) == 0;
}

void ls__control_start(void)
{
    const ls_options_t *o = &ls__g.opt;
    if (ctl.started || atomic_load(&ls__g.state) != LS_STATE_READY) return;
    if (!o->control && !o->snapshot_signal && o->snapshot_interval <= 0) return;
    ctl.started = true;
    ls__tls.guard++;
    ctl.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctl.wake_fd < 0) {
        ls__error("control channel off: eventfd: %s", strerror(errno));
        goto out;
    }
    ctl.wake_fd = park_fd(ctl.wake_fd, &ctl.wake_st);
    if (o->control) open_socket(); /* without it, signal and interval snapshots still work */
    if (o->snapshot_signal) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = snapshot_signal_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (o->snapshot_signal == ls__g.stop_signal ||
            sigaction((int)o->snapshot_signal, &sa, NULL) < 0)
            ls__error("cannot use signal %ld for snapshots", o->snapshot_signal);
    }
    if (atomic_load(&ls__sampling) == fast_value() && o->control_lazy &&
        o->snapshot_interval <= 0 && (ctl.listen_fd < 0 || arm_async())) {
        atomic_store(&ctl.lazy, true);
        goto out;
    }
    if (!start_thread()) ls__control_stop();
out:
    ls__tls.guard--;
}

/* Maps the thread's stack and connection table and creates it; guard held. */
static bool start_thread(void)
{
    void *stack = ls__map(LS_CTL_STACK);
    if (!conns) {
        conns = ls__map(LS_CTL_CONNS * sizeof(ctl_conn_t));
        for (int i = 0; conns && i < LS_CTL_CONNS; i++) conns[i].fd = -1;
    }
    pthread_attr_t attr;
    if (!stack || !conns || pthread_attr_init(&attr)) goto fail;
    pthread_attr_setstack(&attr, stack, LS_CTL_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The thread inherits this mask: every signal blocked but the stop signal, which it only gets
     * if a scan lists it before it has recorded its tid. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, ls__g.stop_signal);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t th;
    int rc = ls__real.pthread_create(&th, &attr, control_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0) {
        ctl.thread = true;
        return true;
    }
fail:
    if (stack) ls__unmap(stack, LS_CTL_STACK);
    ls__error("control channel off: cannot start its thread");
    return false;
}

void ls__control_after_fork_child(void)
{
    /* The parent's socket and thread stay the parent's: close the inherited descriptors (the file
     * is not ours to remove) and start afresh under the child's pid. */
    if (!ctl.started) return;
    if (ctl.listen_fd >= 0) close(ctl.listen_fd);
    if (ctl.wake_fd >= 0) close(ctl.wake_fd);
    ctl.listen_fd = ctl.wake_fd = -1;
    for (int i = 0; conns && i < LS_CTL_CONNS; i++) /* the parent's peers, not ours */
        if (conns[i].fd >= 0) conn_close(&conns[i]);
    ctl.path[0] = 0;
    ctl.started = false;
    ctl.thread = false;
    atomic_store(&ctl.lazy, false);
    atomic_store(&ctl.busy, 0); /* the parent's thread may have held it: it does not exist here */
    atomic_store(&ls__g.control_tid, 0);
    atomic_store(&ctl.snapshot_pending, 0);
    ls__control_start();
}

bool ls__control_quiesce(void)
{
    if (!ctl.thread) return false;
    /* Wait out a request in flight (a leak-checked snapshot of a big heap takes seconds), then
     * keep the lock for good. Bounded: an exit never hangs on the channel. */
    for (int i = 0; i < 30000; i++) {
        if (!atomic_load(&ctl.busy) && !atomic_exchange(&ctl.busy, 1)) return true;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    ls__error("control thread busy for 30 s at exit; exiting without waiting for it");
    return false;
}

void ls__control_stop(void)
{
    if (ctl.path[0] && ctl.owner == getpid()) unlink(ctl.path);
    ctl.path[0] = 0;
}
