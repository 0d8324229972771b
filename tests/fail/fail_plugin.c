/*
 * fail_plugin.c - a library fail_prog loads with dlopen (twice), for a rule that names code not
 * loaded when the program starts (MODULE+0xLO-0xHI): the agent matches it once it is loaded.
 */
#include <stdlib.h>

void *volatile fail_plugin_sink;

__attribute__((noinline)) void *plugin_alloc(size_t n)
{
    void *p = malloc(n); /* FAIL-LINE: plugin_alloc */
    fail_plugin_sink = p;
    return p;
}
