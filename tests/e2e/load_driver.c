/*
 * load_driver.c - a bounded load generator for epoll_server: one round of N short client
 * sessions over loopback, at most C of them at a time, from one thread (nonblocking sockets and
 * epoll).
 *
 *   load_driver --port P [--clients N] [--concurrency C] [--messages M] [--size B]
 *               [--think MS] [--timeout S] [--tag T]
 *
 * Each client connects to 127.0.0.1:P, sends M lines of B bytes (newline included) one at a
 * time, MS milliseconds apart (default 0), checks that each comes back unchanged (a line starts
 * with "T client=I msg=J "), then shuts its side down and waits for the server
 * to close the connection (so when this program exits, the server has closed every connection
 * of the round). Exit status: 0 when every client completed, 1 on any failure (connection
 * refused or reset, wrong echo, server closed early) or when the whole round exceeded the
 * timeout (default 30 s), 2 on a usage error. Prints one summary line on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { CONNECTING, SENDING, RECEIVING, THINKING, DRAINING };

struct client {
    int fd, idx;
    enum state st;
    int msg;        /* message being exchanged */
    char out[4096]; /* the current message */
    size_t outlen, sent;
    char in[4096]; /* its echo so far */
    size_t got;
    long long wake_ms; /* THINKING: when to send the next message */
};

static struct {
    int port, clients, concurrency, messages, size, think_ms, timeout_s;
    const char *tag;
} cfg = {0, 300, 32, 4, 64, 0, 30, "load"};

static int epfd, done, failed, started;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(struct client *c, const char *what)
{
    if (failed < 10)
        fprintf(stderr, "load_driver: client %d, message %d: %s%s%s\n", c->idx, c->msg, what,
                errno ? ": " : "", errno ? strerror(errno) : "");
    failed++;
}

static void make_message(struct client *c)
{
    int n = snprintf(c->out, sizeof(c->out), "%s client=%d msg=%d ", cfg.tag, c->idx, c->msg);
    size_t len = (size_t)cfg.size - 1;
    for (size_t i = (size_t)n; i < len; i++) c->out[i] = (char)('a' + (i + (size_t)c->idx) % 26);
    if ((size_t)n > len) len = (size_t)n; /* the header never is truncated */
    c->out[len] = '\n';
    c->outlen = len + 1;
    c->sent = c->got = 0;
}

static void set_events(struct client *c, unsigned ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

static void finish(struct client *c, int ok)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (ok) done++;
}

static int start_client(struct client *c, int idx)
{
    memset(c, 0, sizeof(*c));
    c->idx = idx;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail(c, "socket");
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->st = CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        fail(c, "connect");
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    errno = 0;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) < 0) {
        fail(c, "epoll_ctl");
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    started++;
    return 0;
}

/* Advances c on an event; returns 0 while it goes on, 1 when it is done (or failed). */
static int step(struct client *c, unsigned ev)
{
    errno = 0;
    if (c->st == CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            errno = err;
            fail(c, "connect");
            return 1;
        }
        c->st = SENDING;
        make_message(c);
    }
    if (c->st == THINKING) {
        if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            fail(c, "server closed the connection early");
            return 1;
        }
        if (now_ms() < c->wake_ms) return 0;
        c->st = SENDING;
    }
    if (c->st == SENDING) {
        while (c->sent < c->outlen) {
            ssize_t n = send(c->fd, c->out + c->sent, c->outlen - c->sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {
                set_events(c, EPOLLOUT);
                return 0;
            }
            if (n <= 0) {
                fail(c, "send");
                return 1;
            }
            c->sent += (size_t)n;
        }
        c->st = RECEIVING;
        set_events(c, EPOLLIN | EPOLLRDHUP);
        return 0; /* wait for the echo */
    }
    if (c->st == RECEIVING) {
        for (;;) {
            ssize_t n = recv(c->fd, c->in + c->got, c->outlen - c->got, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return 0;
            if (n == 0) {
                errno = 0;
                fail(c, "server closed the connection early");
                return 1;
            }
            if (n < 0) {
                fail(c, "recv");
                return 1;
            }
            c->got += (size_t)n;
            if (c->got < c->outlen) continue;
            if (memcmp(c->in, c->out, c->outlen) != 0) {
                errno = 0;
                fail(c, "echo differs from the message");
                return 1;
            }
            if (++c->msg < cfg.messages) {
                make_message(c);
                if (cfg.think_ms) { /* a pause, as a client doing something between requests */
                    c->st = THINKING;
                    c->wake_ms = now_ms() + cfg.think_ms;
                    set_events(c, EPOLLRDHUP);
                    return 0;
                }
                c->st = SENDING;
                set_events(c, EPOLLOUT);
                return 0;
            }
            c->st = DRAINING; /* our side is done: wait for the server to close */
            if (shutdown(c->fd, SHUT_WR) < 0) {
                fail(c, "shutdown");
                return 1;
            }
            break;
        }
    }
    if (c->st == DRAINING) {
        char buf[256];
        for (;;) {
            ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return 0;
            if (n == 0) {
                finish(c, 1);
                return 1;
            }
            errno = n < 0 ? errno : 0;
            fail(c, n < 0 ? "recv" : "unexpected data after the last echo");
            return 1;
        }
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: load_driver --port P [--clients N] [--concurrency C] [--messages M] "
                    "[--size B] [--think MS] [--timeout S] [--tag T]\n");
    exit(2);
}

static int num(const char *s, int lo, int hi)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || v < lo || v > hi) usage();
    return (int)v;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--port") == 0)
            cfg.port = num(v, 1, 65535);
        else if (strcmp(a, "--clients") == 0)
            cfg.clients = num(v, 1, 100000);
        else if (strcmp(a, "--concurrency") == 0)
            cfg.concurrency = num(v, 1, 1000);
        else if (strcmp(a, "--messages") == 0)
            cfg.messages = num(v, 1, 10000);
        else if (strcmp(a, "--size") == 0)
            cfg.size = num(v, 32, 4096);
        else if (strcmp(a, "--think") == 0)
            cfg.think_ms = num(v, 0, 10000);
        else if (strcmp(a, "--timeout") == 0)
            cfg.timeout_s = num(v, 1, 3600);
        else if (strcmp(a, "--tag") == 0 && v && v[0] && !strpbrk(v, " \n"))
            cfg.tag = v;
        else
            usage();
    }
    if (!cfg.port) usage();

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("load_driver: epoll_create1");
        return 1;
    }
    struct client *cl = calloc((size_t)cfg.concurrency, sizeof(*cl));
    if (!cl) {
        perror("load_driver: calloc");
        return 1;
    }
    for (int i = 0; i < cfg.concurrency; i++) cl[i].fd = -1;

    long long t0 = now_ms(), deadline = t0 + cfg.timeout_s * 1000LL;
    int next = 0, active = 0;
    while (!failed) {
        /* fill the free slots */
        for (int i = 0; i < cfg.concurrency && next < cfg.clients; i++) {
            if (cl[i].fd >= 0) continue;
            if (start_client(&cl[i], next++) < 0) break;
            active++;
        }
        if (!active) break;
        long long left = deadline - now_ms();
        if (left <= 0) {
            fprintf(stderr, "load_driver: timeout after %d s: %d of %d clients done, %d active\n",
                    cfg.timeout_s, done, cfg.clients, active);
            failed++;
            break;
        }
        long long wait = left > 1000 ? 1000 : left, now = now_ms();
        for (int i = 0; i < cfg.concurrency; i++)
            if (cl[i].fd >= 0 && cl[i].st == THINKING)
                wait = cl[i].wake_ms <= now
                           ? 0
                           : (cl[i].wake_ms - now < wait ? cl[i].wake_ms - now : wait);
        struct epoll_event evs[64];
        int n = epoll_wait(epfd, evs, 64, (int)wait);
        if (n < 0 && errno != EINTR) {
            perror("load_driver: epoll_wait");
            failed++;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct client *c = evs[i].data.ptr;
            if (step(c, evs[i].events)) {
                if (c->fd >= 0) finish(c, 0);
                active--;
            }
        }
        now = now_ms();
        for (int i = 0; i < cfg.concurrency; i++) {
            struct client *c = &cl[i];
            if (c->fd < 0 || c->st != THINKING || c->wake_ms > now) continue;
            if (step(c, 0)) {
                if (c->fd >= 0) finish(c, 0);
                active--;
            }
        }
    }
    for (int i = 0; i < cfg.concurrency; i++)
        if (cl[i].fd >= 0) close(cl[i].fd);
    free(cl);
    close(epfd);
    long long ms = now_ms() - t0;
    printf("%s: %d/%d clients done, %d messages each, %d failures, %lld ms\n", cfg.tag, done,
           cfg.clients, cfg.messages, failed, ms);
    return failed || done != cfg.clients ? 1 : 0;
}
