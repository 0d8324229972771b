/*
 * libc_alloc: blocks libc allocates on the program's behalf, with libc frames at the top of the
 * allocation stack.
 *  - strdup("leakscope"):                       10 bytes
 *  - strndup("abcdefghij", 4):                   5 bytes
 *  - asprintf("%d-%s", 42, "x") -> "42-x":      5 bytes (the final block is strlen + 1: glibc
 *                                                         shrinks or copies its work buffer)
 *  - getline() on an fmemopen stream, first call with a NULL buffer: 120 bytes (glibc's initial
 *    getline buffer); the stream itself is fclose'd (its FILE and buffer are freed)
 * definitely lost: 140 bytes in 4 blocks, all from leak_strings.
 */
// EXPECT definitely_lost=140/4 indirectly_lost=0/0 possibly_lost=0/0 still_reachable>=0/0
// EXPECT_FUNC leak_strings definitely_lost=140/4
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lt.h"

static char g_text[] = "first line\nsecond line\n";

static LT_NOINLINE void leak_strings(void)
{
    char *s = strdup("leakscope");
    lt_escape(s);
    s = strndup("abcdefghij", 4);
    lt_escape(s);
    if (asprintf(&s, "%d-%s", 42, "x") != 4) exit(90);
    lt_escape(s);

    FILE *f = fmemopen(g_text, strlen(g_text), "r");
    if (!f) exit(91);
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, f) != 11 || cap != 120) exit(92);
    if (getline(&line, &cap, f) != 12) exit(93);
    fclose(f);
    lt_escape(line);
    line = s = NULL;
}

int main(void)
{
    leak_strings();
    LT_END();
    return 0;
}
