/*
 * tags_lib.c - a shared library with tagged allocation calls (see tags_lib.h): its tags live in
 * its own "ls_tags" section and it registers them from its own constructor.
 */
#include "tags_lib.h"

#include <stdlib.h>

#define NOINL __attribute__((noinline))

static void *volatile sink;

/* Each call and the line it reports share one source line: the tag's line is the call's. */
NOINL void *lib_make(size_t n, int *line)
{
    void *p = (*line = __LINE__, malloc(n));
    sink = p;
    return p;
}

NOINL void *lib_grow(void *p, size_t n, int *line)
{
    void *q = (*line = __LINE__, realloc(p, n));
    sink = q;
    return q;
}

NOINL void *lib_never(int really, int *line)
{
    void *p = (*line = __LINE__, really ? calloc(4, 4) : NULL);
    sink = p;
    return p;
}

const char *lib_file(void)
{
    return __FILE__;
}

/* dladdr of this names the library; of a function it may name the executable's PLT entry (the
 * canonical address of a function called from non-PIC code). */
static const char lib_anchor_byte = 1;

const void *lib_anchor(void)
{
    return (const void *)&lib_anchor_byte;
}
