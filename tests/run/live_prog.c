/*
 * live_prog.c - a host for the live-inspection tests (test_live.c), run under the agent.
 *
 *   live_prog api SNAP     allocates 3 x 1111 bytes, ls_mark("A"), 5 x 2222, ls_mark("B"),
 *                          7 x 3333, ls_snapshot_write(SNAP), frees the 2222s,
 *                          ls_snapshot_write(NULL) (the agent's snapshot_output), exits.
 *   live_prog serve        prints "ready PID", then obeys lines on stdin until EOF:
 *                            alloc N SIZE   keep N more blocks of SIZE bytes   -> "ok"
 *                            fork           a child that serves the same way   -> "child PID"
 *                                           (the child's stdin is the parent's, so the test
 *                                           stops it with a signal)
 *                            exec           re-executes itself as "serve" (same pid)
 *                          and exits 0 at EOF.
 */
#include <leakscope.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *keep[100000];
static size_t nkeep;

static void alloc_n(int n, size_t size)
{
    for (int i = 0; i < n && nkeep < sizeof(keep) / sizeof(keep[0]); i++) {
        keep[nkeep] = malloc(size);
        memset(keep[nkeep], 7, size);
        nkeep++;
    }
}

static int api(const char *snap)
{
    if (!ls_active()) return 11;
    alloc_n(3, 1111);
    if (ls_mark("A") != 1) return 12;
    alloc_n(5, 2222); /* in the same clock tick as the marker: the floor keeps them apart */
    if (ls_mark("B") != 2) return 13;
    alloc_n(7, 3333);
    if (ls_snapshot_write(snap) != 0) return 14;
    for (size_t i = 3; i < 8; i++) free(keep[i]);
    if (ls_snapshot_write(NULL) != 0) return 15;
    puts("api ok");
    return 0;
}

static int serve(char **argv)
{
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof(line), stdin)) {
        int n;
        size_t size;
        if (sscanf(line, "alloc %d %zu", &n, &size) == 2) {
            alloc_n(n, size);
            puts("ok");
        } else if (strncmp(line, "fork", 4) == 0) {
            fflush(stdout);
            pid_t c = fork();
            if (c == 0) {
                printf("child %d\n", (int)getpid());
                fflush(stdout);
                for (;;) pause();
            }
        } else if (strncmp(line, "exec", 4) == 0) {
            char *args[] = {argv[0], "serve", NULL};
            fflush(stdout);
            execv("/proc/self/exe", args);
            perror("execv");
            return 3;
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "api")) return api(argv[2]);
    if (argc > 1 && !strcmp(argv[1], "serve")) return serve(argv);
    fprintf(stderr, "usage: live_prog api SNAP | serve\n");
    return 2;
}
