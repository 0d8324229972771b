/*
 * ls_watch.c - see ls_watch.h. Snapshots are scheduled on CLOCK_MONOTONIC from the start (the
 * k-th at start + k * interval), so the time spent loading and drawing does not drift the series;
 * a snapshot that took longer than the interval just makes the next one immediate.
 */
#define _GNU_SOURCE
#include "ls_watch.h"
#include "ls_output.h"
#include "ls_series.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CMD "leakscope watch"

bool ls_process_gone(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return false; /* no /proc: trust kill */
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* "pid (comm) S ...": comm may hold spaces */
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* Highest N of DIR/snap-N.lsnap, 0 when none. */
static unsigned last_number(const char *dir)
{
    DIR *d = opendir(dir);
    unsigned max = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned n;
        char tail[8];
        if (sscanf(e->d_name, "snap-%u.%7s", &n, tail) == 2 && strcmp(tail, "lsnap") == 0 &&
            n > max)
            max = n;
    }
    closedir(d);
    return max;
}

/* Sleeps until the monotonic time t (ns); false when *stop was set meanwhile. */
static bool sleep_until(uint64_t t, volatile sig_atomic_t *stop)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    while (!*stop) {
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc == 0) return !*stop;
        if (rc != EINTR) return !*stop;
    }
    return false;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int ls_watch_run(const ls_watch_opts_t *o, ls_watch_snap_fn snap, void *ctx,
                 volatile sig_atomic_t *stop, FILE *out)
{
    if (mkdir(o->dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, CMD ": cannot create directory %s: %s\n", o->dir, strerror(errno));
        return 1;
    }
    struct stat st;
    if (stat(o->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, CMD ": %s is not a directory\n", o->dir);
        return 1;
    }
    ls_series_t *s = ls_series_new(o->rules);
    if (!s) {
        fprintf(stderr, CMD ": out of memory\n");
        return 1;
    }
    unsigned num = last_number(o->dir);
    size_t taken = 0, failures = 0;
    const char *why = NULL;
    uint64_t start = mono_ns();
    for (uint64_t k = 0; !o->count || k < o->count; k++) {
        if (k && !sleep_until(start + k * o->interval_ns, stop)) break;
        if (*stop) break;
        char path[4096], err[4096];
        snprintf(path, sizeof(path), "%s/snap-%04u.lsnap", o->dir, ++num);
        if (snap(o->pid, path, err, sizeof(err), ctx) != 0) {
            num--;
            if (*stop) break; /* Ctrl-C cut the request short: not worth a message */
            if (ls_process_gone(o->pid)) {
                why = "the process is gone";
                break;
            }
            fprintf(stderr, CMD ": snapshot of pid %d failed: %s\n", (int)o->pid, err);
            if (++failures == 3) {
                why = "3 snapshots in a row failed";
                break;
            }
            continue;
        }
        failures = 0;
        taken++;
        if (ls_series_add_file(s, path, err, sizeof(err))) {
            fprintf(stderr, CMD ": %s\n", err); /* kept on disk; the table skips it */
            continue;
        }
        ls_series_set_times(s);
        if (o->redraw)
            fputs("\033[H\033[2J", out);
        else if (ls_series_len(s) > 1)
            fputc('\n', out);
        if (ls_watch_table(s, o->top, o->utf8, out)) fprintf(stderr, CMD ": out of memory\n");
        fflush(out);
    }
    if (*stop) why = "interrupted";
    if (taken)
        fprintf(out, "\n%zu snapshot%s in %s%s%s%s; look for leaks with: leakscope suspects %s\n",
                taken, taken == 1 ? "" : "s", o->dir, why ? " (" : "", why ? why : "",
                why ? ")" : "", o->dir);
    else
        fprintf(stderr, CMD ": no snapshot taken%s%s\n", why ? ": " : "", why ? why : "");
    fflush(out);
    ls_series_free(s);
    return taken ? 0 : 1;
}
