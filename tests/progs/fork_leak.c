/*
 * fork_leak: parent and child leak different amounts; each process gets its own report (the
 * child, which exits without exec, writes FILE.<its pid>).
 *  - before fork: a dropped 10-byte block, in both processes' heaps:    10/1 lost in each
 *  - child: drops three 10-byte blocks, keeps 77 bytes in a global, exit(0)
 *           -> definitely lost 40/4, still reachable 77/1
 *  - parent: waits for the child (and checks its status), drops 100 bytes, returns 0
 *           -> definitely lost 110/2
 */
// JSON_CHILD 1
// EXPECT definitely_lost=110/2 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=0/0
// EXPECT_CHILD definitely_lost=40/4 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=77/1
// EXPECT_FUNC parent_leak definitely_lost=100/1
// EXPECT_CHILD_FUNC child_leak definitely_lost=30/3
// EXPECT_CHILD_FUNC before_fork definitely_lost=10/1
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lt.h"

void *g_child_kept;

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void before_fork(void) { lt_escape(alloc_filled(10)); }
static LT_NOINLINE void child_leak(void) { lt_escape(alloc_filled(10)); }
static LT_NOINLINE void parent_leak(void) { lt_escape(alloc_filled(100)); }

static LT_NOINLINE int run(void)
{
    before_fork();
    LT_END();
    pid_t pid = fork();
    if (pid < 0) return 90;
    if (pid == 0) {
        for (int i = 0; i < 3; i++) child_leak();
        g_child_kept = alloc_filled(77);
        LT_END();
        exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return 91;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 92;
    parent_leak();
    return 0;
}

int main(void)
{
    int rc = run();
    LT_END();
    return rc;
}
