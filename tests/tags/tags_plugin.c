/*
 * tags_plugin.c - a tagged shared library that tags_prog dlopen's, uses, dlclose's and loads
 * again: its tags are registered twice (two TAGS records with one key, one row in the views),
 * and the blocks it allocated outlive it.
 */
#include <stdlib.h>

#define NOINL __attribute__((noinline))

static void *volatile sink;

NOINL void *plug_alloc(size_t n, int *line)
{
    void *p = (*line = __LINE__, malloc(n));
    sink = p;
    return p;
}

const char *plug_file(void)
{
    return __FILE__;
}
