/*
 * epoll_server.c - a small single-threaded epoll line-echo server, the patient of the live-leak
 * end-to-end test (test_live_leak.py) and of docs/tutorial-live.md.
 *
 *   epoll_server [--port N] [--port-file FILE] [--idle-timeout S] [--cache N]
 *
 * Listens on 127.0.0.1:N (0, the default: an ephemeral port), prints "listening on
 * 127.0.0.1:PORT" on stdout and, with --port-file, writes PORT to FILE (atomically). Each line a
 * client sends is echoed back. Per connection: a `struct conn` and a read and a write buffer,
 * freed when the connection closes. On a client's first request a periodic session timer is
 * armed (timer_schedule): it closes the connection once it has been idle for --idle-timeout
 * seconds, and carries a copy of the read buffer as it was then, for the "idle" log line. A
 * small LRU of recent request lines (--cache entries) is shared by all connections.
 *
 * The bug (built unless LS_E2E_FIXED is defined): conn_close() forgets to cancel the session
 * timer. The timer stays on the global timer list, fires every interval, finds its connection
 * gone and re-arms; its record (sizeof(struct timer) + RBUF_SIZE bytes) is never freed. Nothing
 * is lost in the leak checker's sense - every record is reachable from `timers` - so an exit
 * report only shows it as "still reachable"; the server just grows with every connection it
 * ever served.
 *
 * SIGTERM and SIGINT (through a signalfd) stop it cleanly: every connection is closed and all
 * memory it can reach is freed (in the fixed build: everything).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE      1024 /* initial read buffer; grows for longer lines */
#define WBUF_SIZE      1024 /* initial write buffer; grows while the peer does not read */
#define MAX_LINE       (64 * 1024)
#define MAX_WBUF       (1024 * 1024)
#define TIMER_INTERVAL 1000 /* ms between two checks of a session timer */

struct conn {
    int fd;
    uint64_t id; /* unique for the process lifetime: timers find their connection by (fd, id) */
    char peer[32];
    char *rbuf;
    size_t rlen, rcap;
    char *wbuf;
    size_t wlen, woff, wcap;
    uint64_t last_active_ms;
    uint64_t requests;
    struct timer *timer;
    int want_out;
};

/* A periodic timer of one connection's session. */
struct timer {
    struct timer *next, *prev;
    uint64_t deadline_ms;
    uint64_t conn_id;
    int fd;
    unsigned interval_ms;
    size_t ctx_len; /* copy of the connection's read buffer when the session started */
    char ctx[];
};

/* Recent request lines, most recent first, at most cache_max of them. */
struct cache_entry {
    struct cache_entry *next, *prev;
    size_t len;
    char line[];
};

static struct {
    int epfd, lfd, sfd;
    struct conn **conns; /* by fd */
    size_t nconns_cap;
    uint64_t next_id;
    struct timer *timers, *timers_tail; /* by deadline (all intervals are equal: append order) */
    struct cache_entry *cache_head, *cache_tail;
    size_t cache_len, cache_max;
    uint64_t idle_timeout_ms;
    uint64_t accepted, closed, requests;
    int stopping;
} srv;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "epoll_server: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- timers ---------------------------------------------------------------------------------- */
static void timer_link(struct timer *t)
{
    t->next = NULL;
    t->prev = srv.timers_tail;
    if (srv.timers_tail)
        srv.timers_tail->next = t;
    else
        srv.timers = t;
    srv.timers_tail = t;
}

static void timer_unlink(struct timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        srv.timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        srv.timers_tail = t->prev;
    t->next = t->prev = NULL;
}

/* Arms c's session timer; it carries a copy of c's read buffer for the idle log line. */
static struct timer *timer_schedule(struct conn *c, unsigned interval_ms)
{
    struct timer *t = malloc(sizeof(*t) + c->rcap);
    if (!t) return NULL;
    t->deadline_ms = now_ms() + interval_ms;
    t->conn_id = c->id;
    t->fd = c->fd;
    t->interval_ms = interval_ms;
    t->ctx_len = c->rlen;
    memcpy(t->ctx, c->rbuf, c->rcap);
    timer_link(t);
    return t;
}

#ifdef LS_E2E_FIXED
/* The fix: conn_close() cancels the session timer. */
static void timer_cancel(struct timer *t)
{
    timer_unlink(t);
    free(t);
}
#endif

static struct conn *conn_lookup(int fd, uint64_t id)
{
    if (fd < 0 || (size_t)fd >= srv.nconns_cap) return NULL;
    struct conn *c = srv.conns[fd];
    return c && c->id == id ? c : NULL;
}

static void conn_close(struct conn *c);

/* Runs the timers that are due; returns the epoll timeout until the next one (-1: none). */
static int timers_run(void)
{
    uint64_t now = now_ms();
    /* Re-armed timers go to the tail: stop at the first one that was not due when we started. */
    struct timer *end = srv.timers_tail;
    while (srv.timers && srv.timers->deadline_ms <= now) {
        struct timer *t = srv.timers;
        int last = t == end;
        timer_unlink(t);
        struct conn *c = conn_lookup(t->fd, t->conn_id);
        if (c && now - c->last_active_ms >= srv.idle_timeout_ms) {
            const char *nl = memchr(t->ctx, '\n', t->ctx_len);
            int first = (int)(nl ? (size_t)(nl - t->ctx) : t->ctx_len);
            printf("closing idle connection %s after %llu requests (first: %.*s)\n", c->peer,
                   (unsigned long long)c->requests, first, t->ctx);
            timer_link(t); /* conn_close cancels it */
            conn_close(c);
        } else {
            t->deadline_ms = now + t->interval_ms;
            timer_link(t);
        }
        if (last) break;
    }
    if (!srv.timers) return -1;
    now = now_ms();
    return srv.timers->deadline_ms <= now ? 0 : (int)(srv.timers->deadline_ms - now);
}

/* ---- the request cache ----------------------------------------------------------------------- */
static void cache_put(const char *line, size_t len)
{
    if (!srv.cache_max) return;
    struct cache_entry *e = malloc(sizeof(*e) + len + 1);
    if (!e) return;
    e->len = len;
    memcpy(e->line, line, len);
    e->line[len] = 0;
    e->prev = NULL;
    e->next = srv.cache_head;
    if (srv.cache_head)
        srv.cache_head->prev = e;
    else
        srv.cache_tail = e;
    srv.cache_head = e;
    if (++srv.cache_len > srv.cache_max) {
        struct cache_entry *old = srv.cache_tail;
        srv.cache_tail = old->prev;
        srv.cache_tail->next = NULL;
        free(old);
        srv.cache_len--;
    }
}

static void cache_clear(void)
{
    while (srv.cache_head) {
        struct cache_entry *e = srv.cache_head;
        srv.cache_head = e->next;
        free(e);
    }
    srv.cache_tail = NULL;
    srv.cache_len = 0;
}

/* ---- connections ----------------------------------------------------------------------------- */
static int conn_update_events(struct conn *c, int want_out)
{
    if (c->want_out == want_out) return 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(srv.epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -1;
    c->want_out = want_out;
    return 0;
}

static struct conn *conn_open(int fd, const struct sockaddr_in *sa)
{
    if ((size_t)fd >= srv.nconns_cap) {
        size_t cap = srv.nconns_cap ? srv.nconns_cap : 64;
        while (cap <= (size_t)fd) cap *= 2;
        struct conn **v = realloc(srv.conns, cap * sizeof(*v));
        if (!v) return NULL;
        memset(v + srv.nconns_cap, 0, (cap - srv.nconns_cap) * sizeof(*v));
        srv.conns = v;
        srv.nconns_cap = cap;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->fd = fd;
    c->id = ++srv.next_id;
    c->rbuf = malloc(RBUF_SIZE);
    c->wbuf = malloc(WBUF_SIZE);
    if (!c->rbuf || !c->wbuf) {
        free(c->rbuf);
        free(c->wbuf);
        free(c);
        return NULL;
    }
    c->rcap = RBUF_SIZE;
    c->wcap = WBUF_SIZE;
    c->last_active_ms = now_ms();
    snprintf(c->peer, sizeof(c->peer), "%s:%u", inet_ntoa(sa->sin_addr),
             (unsigned)ntohs(sa->sin_port));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(c->rbuf);
        free(c->wbuf);
        free(c);
        return NULL;
    }
    srv.conns[fd] = c;
    srv.accepted++;
    return c;
}

static void conn_close(struct conn *c)
{
#ifdef LS_E2E_FIXED
    if (c->timer) timer_cancel(c->timer);
#endif
    c->timer = NULL;
    epoll_ctl(srv.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    srv.conns[c->fd] = NULL;
    free(c->rbuf);
    free(c->wbuf);
    free(c);
    srv.closed++;
}

/* Sends what is buffered; returns -1 when the connection is dead. */
static int conn_flush(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) return -1;
        c->woff += (size_t)n;
    }
    if (c->woff == c->wlen) c->woff = c->wlen = 0;
    return conn_update_events(c, c->wlen > 0);
}

static int conn_queue(struct conn *c, const char *data, size_t len)
{
    if (c->woff) { /* compact */
        memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
    }
    if (c->wlen + len > c->wcap) {
        size_t cap = c->wcap;
        while (cap < c->wlen + len) cap *= 2;
        if (cap > MAX_WBUF) return -1; /* a peer that never reads */
        char *b = realloc(c->wbuf, cap);
        if (!b) return -1;
        c->wbuf = b;
        c->wcap = cap;
    }
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
    return 0;
}

/* One request line (with its '\n'): echo it, remember it. */
static int conn_request(struct conn *c, const char *line, size_t len)
{
    if (c->requests++ == 0) c->timer = timer_schedule(c, TIMER_INTERVAL);
    srv.requests++;
    cache_put(line, len - 1);
    return conn_queue(c, line, len);
}

/* Reads what is there; returns -1 when the connection is to be closed. */
static int conn_read(struct conn *c)
{
    for (;;) {
        if (c->rlen == c->rcap) {
            if (c->rcap >= MAX_LINE) return -1; /* a line that never ends */
            char *b = realloc(c->rbuf, c->rcap * 2);
            if (!b) return -1;
            c->rbuf = b;
            c->rcap *= 2;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) return -1; /* EOF or error */
        c->rlen += (size_t)n;
        c->last_active_ms = now_ms();
        size_t start = 0;
        for (;;) {
            char *nl = memchr(c->rbuf + start, '\n', c->rlen - start);
            if (!nl) break;
            size_t len = (size_t)(nl - (c->rbuf + start)) + 1;
            if (conn_request(c, c->rbuf + start, len) < 0) return -1;
            start += len;
        }
        if (start) {
            memmove(c->rbuf, c->rbuf + start, c->rlen - start);
            c->rlen -= start;
        }
    }
    return conn_flush(c);
}

static void accept_all(void)
{
    for (;;) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(srv.lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EMFILE || errno == ENFILE) {
                fprintf(stderr, "epoll_server: accept: %s\n", strerror(errno));
                return;
            }
            die("accept");
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (!conn_open(fd, &sa)) {
            fprintf(stderr, "epoll_server: cannot serve a connection: out of memory\n");
            close(fd);
        }
    }
}

/* ---- main ------------------------------------------------------------------------------------ */
static void usage(void)
{
    fprintf(stderr, "usage: epoll_server [--port N] [--port-file FILE] [--idle-timeout S] "
                    "[--cache N]\n");
    exit(2);
}

static long arg_num(const char *s, long max)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || errno || *end || v < 0 || v > max) usage();
    return v;
}

static void write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) die(path);
}

int main(int argc, char **argv)
{
    long port = 0;
    const char *port_file = NULL;
    srv.idle_timeout_ms = 60 * 1000;
    srv.cache_max = 128;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0)
            port = arg_num(argv[++i], 65535);
        else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
            port_file = argv[++i];
        else if (strcmp(argv[i], "--idle-timeout") == 0)
            srv.idle_timeout_ms = (uint64_t)arg_num(argv[++i], 86400) * 1000;
        else if (strcmp(argv[i], "--cache") == 0)
            srv.cache_max = (size_t)arg_num(argv[++i], 1 << 20);
        else
            usage();
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) die("sigprocmask");
    srv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (srv.sfd < 0) die("signalfd");

    srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv.lfd < 0) die("socket");
    int one = 1;
    setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(srv.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("bind");
    if (listen(srv.lfd, SOMAXCONN) < 0) die("listen");
    socklen_t sl = sizeof(sa);
    if (getsockname(srv.lfd, (struct sockaddr *)&sa, &sl) < 0) die("getsockname");

    srv.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (srv.epfd < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.lfd, &ev) < 0) die("epoll_ctl");
    ev.data.ptr = &srv.sfd;
    if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.sfd, &ev) < 0) die("epoll_ctl");

    printf("listening on 127.0.0.1:%u\n", (unsigned)ntohs(sa.sin_port));
    fflush(stdout);
    if (port_file) write_port_file(port_file, ntohs(sa.sin_port));

    struct epoll_event evs[64];
    while (!srv.stopping) {
        int timeout = timers_run();
        int n = epoll_wait(srv.epfd, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == NULL) {
                accept_all();
            } else if (p == &srv.sfd) {
                struct signalfd_siginfo si;
                while (read(srv.sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                    printf("signal %u: shutting down\n", si.ssi_signo);
                    srv.stopping = 1;
                }
            } else {
                struct conn *c = p;
                int dead = 0;
                if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    dead = conn_read(c) < 0;
                if (!dead && (evs[i].events & EPOLLOUT)) dead = conn_flush(c) < 0;
                if (dead) conn_close(c);
            }
        }
    }

    for (size_t fd = 0; fd < srv.nconns_cap; fd++)
        if (srv.conns[fd]) conn_close(srv.conns[fd]);
    free(srv.conns);
    cache_clear();
    close(srv.epfd);
    close(srv.lfd);
    close(srv.sfd);
    printf("served %llu connections, %llu requests\n", (unsigned long long)srv.accepted,
           (unsigned long long)srv.requests);
    return 0;
}
