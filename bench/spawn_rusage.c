/*
 * spawn_rusage OUT [VAR=VALUE...] -- PROG [ARGS...]: runs PROG as our child, with VAR=VALUE added
 * to its environment only (LD_PRELOAD must not load an agent into us), and writes its resource
 * usage to OUT ("maxrss_kib utime_s stime_s"); exits as it did (128+N for signal N).
 *
 * Why: bench/run.py's Python process is ~20 MB, and subprocess starts children with vfork, whose
 * exec folds the parent's peak RSS into the child's ru_maxrss. A 12 MB workload then reads as
 * 20 MB under every tool, and RSS ratios hide the tool's cost. Forked from this small process, the
 * child starts its accounting clean; ru_maxrss still covers its own descendants (the largest
 * process of the tree), as before.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int sep = 2;
    while (sep < argc && strcmp(argv[sep], "--") != 0 && strchr(argv[sep], '=')) sep++;
    if (sep + 1 >= argc || strcmp(argv[sep], "--") != 0) {
        fprintf(stderr, "usage: spawn_rusage OUT [VAR=VALUE...] -- PROG [ARGS...]\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("spawn_rusage: fork");
        return 2;
    }
    if (pid == 0) {
        for (int i = 2; i < sep; i++) putenv(argv[i]);
        execvp(argv[sep + 1], argv + sep + 1);
        fprintf(stderr, "spawn_rusage: cannot run %s: %s\n", argv[sep + 1], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) {
            perror("spawn_rusage: wait4");
            return 2;
        }
    FILE *f = fopen(argv[1], "w");
    if (!f ||
        fprintf(f, "%ld %.6f %.6f\n", ru.ru_maxrss,
                (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
                (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6) < 0 ||
        fclose(f) != 0) {
        perror("spawn_rusage: writing the result");
        return 2;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
