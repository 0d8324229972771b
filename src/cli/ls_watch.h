/*
 * ls_watch.h - the loop behind `leakscope watch`: a snapshot every interval into a directory,
 * each added to a series (ls_series.h) and shown as the growth table. The snapshot itself is
 * taken by a callback (the control channel in the CLI, a synthetic writer in the tests).
 */
#ifndef LS_WATCH_H
#define LS_WATCH_H

#include "ls_agg.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Writes a snapshot of pid to path. Returns 0, or -1 with a message in err. */
typedef int (*ls_watch_snap_fn)(pid_t pid, const char *path, char *err, size_t errlen, void *ctx);

typedef struct ls_watch_opts {
    pid_t pid;
    uint64_t interval_ns;
    uint64_t count;  /* snapshots to take; 0 = until stopped or the process is gone */
    const char *dir; /* created if missing; snap-NNNN.lsnap numbered after any already there */
    size_t top;      /* sites in the table; 0 = all */
    bool redraw;     /* clear the screen before each table (a terminal) */
    bool utf8;       /* sparkline with block characters */
    const ls_site_rules_t *rules;
} ls_watch_opts_t;

/*
 * Runs the loop until count snapshots, *stop set (by a signal handler: the sleep is cut short), or
 * the process is gone (or 3 snapshots in a row failed). Tables go to out, problems to stderr
 * prefixed by "leakscope watch: "; at the end, where the files are and how to analyse them.
 * Returns 0 when at least one snapshot was taken, else 1.
 */
int ls_watch_run(const ls_watch_opts_t *o, ls_watch_snap_fn snap, void *ctx,
                 volatile sig_atomic_t *stop, FILE *out);

/* Whether pid no longer runs (no such process, or a zombie). */
bool ls_process_gone(pid_t pid);

#endif
