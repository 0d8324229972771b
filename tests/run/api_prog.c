/*
 * api_prog.c - exercises include/leakscope.h. Mode "check": leaks 100 bytes, runs a leak check
 * mid-run (expects >= 100 lost bytes back), then marks a 200-byte block ignored and drops it
 * (never reported), and ends. Mode "absent": the same program without the agent: every call is
 * a no-op (ls_active() == 0, ls_leak_check() == -1).
 */
#include <leakscope.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __attribute__((noinline)) void lose(size_t n)
{
    char *volatile p = malloc(n);
    memset(p, 1, n);
    p = NULL;
}

int main(int argc, char **argv)
{
    const char *snap = argc > 2 ? argv[2] : NULL;
    if (argc > 1 && !strcmp(argv[1], "absent")) {
        if (ls_active() || ls_leak_check(NULL) != -1) return 10;
        ls_ignore(malloc(1));
        puts("absent ok");
        return 0;
    }
    if (!ls_active()) return 11;
    lose(100);
    long lost = ls_leak_check(snap);
    printf("mid-run check: %ld bytes lost\n", lost);
    if (lost < 100) return 12;
    char *volatile keep = malloc(200);
    ls_ignore(keep);
    keep = NULL;
    return 0;
}
