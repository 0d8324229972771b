/*
 * snapshot_bench.c - what a live snapshot costs the process it inspects.
 *
 * Run under the agent (leakscope run -- ./snapshot_bench [BLOCKS] [REPS]). It fills the heap
 * with BLOCKS live blocks (default 1,000,000, sizes 16-1039 bytes, from 8 call sites), starts a
 * worker thread that keeps allocating and freeing and records the longest gap between two of
 * its iterations, then asks its own agent for REPS snapshots over the control socket, exactly as
 * `leakscope snapshot PID` does. Per snapshot it prints:
 *   wall   time from request to file written (what the operator waits)
 *   pause  how long the agent kept the host's threads parked (its own measure)
 *   stall  the longest gap the worker saw during the request (the host's own measure)
 * and the medians at the end.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static _Atomic int stop;
static _Atomic uint64_t max_gap_ns;

static void *worker(void *arg)
{
    (void)arg;
    void *ring[256] = {0};
    unsigned i = 0;
    double last = now_ms();
    while (!atomic_load(&stop)) {
        free(ring[i & 255]);
        ring[i & 255] = malloc(32 + (i & 127));
        i++;
        double t = now_ms();
        uint64_t gap = (uint64_t)((t - last) * 1e6);
        if (gap > atomic_load(&max_gap_ns)) atomic_store(&max_gap_ns, gap);
        last = t;
    }
    for (int k = 0; k < 256; k++) free(ring[k]);
    return NULL;
}

#define FILL(n)                                                                                    \
    static __attribute__((noinline)) void *site##n(size_t s)                                       \
    {                                                                                              \
        return malloc(s);                                                                          \
    }
FILL(0)
FILL(1)
FILL(2)
FILL(3)
FILL(4)
FILL(5)
FILL(6)
FILL(7)
static void *(*const sites[8])(size_t) = {site0, site1, site2, site3, site4, site5, site6, site7};

/* One request on the agent's socket; returns the reply line in buf. */
static int ask(const char *sock, const char *req, char *buf, size_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof(a.sun_path)) return -1;
    memcpy(a.sun_path, sock, strlen(sock) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) return -1;
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) return -1;
    ssize_t n = 0, k;
    while ((k = recv(fd, buf + n, len - 1 - (size_t)n, 0)) > 0) n += k;
    close(fd);
    buf[n] = 0;
    return strncmp(buf, "ok ", 3) == 0 ? 0 : -1;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    long nblocks = argc > 1 ? atol(argv[1]) : 1000000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (nblocks < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: snapshot_bench [BLOCKS] [REPS]\n");
        return 2;
    }
    char sock[100];
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg == '/')
        snprintf(sock, sizeof(sock), "%s/leakscope/%d.sock", xdg, (int)getpid());
    else
        snprintf(sock, sizeof(sock), "/tmp/leakscope-%u/%d.sock", (unsigned)geteuid(),
                 (int)getpid());
    struct stat st;
    if (stat(sock, &st) < 0) {
        fprintf(stderr, "snapshot_bench: no agent socket %s: run me under leakscope\n", sock);
        return 2;
    }
    void **keep = malloc((size_t)nblocks * sizeof(void *));
    double t0 = now_ms();
    for (long i = 0; i < nblocks; i++) keep[i] = sites[i & 7](16 + (size_t)(i * 7919 % 1024));
    printf("filled %ld blocks in %.0f ms\n", nblocks, now_ms() - t0);

    pthread_t th;
    pthread_create(&th, NULL, worker, NULL);
    usleep(200000);
    double wall[100], pause[100], stall[100];
    char path[300], req[400], reply[512];
    snprintf(path, sizeof(path), "/tmp/snapshot_bench.%d.lsnap", (int)getpid());
    printf("%4s %10s %10s %10s %12s\n", "rep", "wall ms", "pause ms", "stall ms", "file MiB");
    for (int r = 0; r < reps; r++) {
        usleep(100000);
        atomic_store(&max_gap_ns, 0);
        snprintf(req, sizeof(req), "snapshot %s\n", path);
        double a = now_ms();
        if (ask(sock, req, reply, sizeof(reply)) < 0) {
            fprintf(stderr, "snapshot failed: %s\n", reply);
            return 1;
        }
        wall[r] = now_ms() - a;
        const char *p = strstr(reply, "pause_ns=");
        pause[r] = p ? atof(p + 9) / 1e6 : -1;
        stall[r] = atomic_load(&max_gap_ns) / 1e6;
        stat(path, &st);
        printf("%4d %10.1f %10.2f %10.2f %12.1f\n", r + 1, wall[r], pause[r], stall[r],
               st.st_size / 1048576.0);
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    unlink(path);
    printf("median of %d: blocks %ld  wall %.1f ms  pause %.2f ms  worker stall %.2f ms\n", reps,
           nblocks, median(wall, reps), median(pause, reps), median(stall, reps));
    for (long i = 0; i < nblocks; i++) free(keep[i]);
    free(keep);
    return 0;
}
