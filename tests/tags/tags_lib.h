/*
 * tags_lib.h - the shared library of the tags tests (tags_lib.c), linked to tags_prog. Built
 * with tags like the program (or without, for the untagged variant). Each function makes one
 * allocating call and reports the source line of that call, so the program can write what it
 * expects per tag.
 */
#ifndef TAGS_LIB_H
#define TAGS_LIB_H

#include <stddef.h>

void *lib_make(size_t n, int *line);          /* malloc(n) */
void *lib_grow(void *p, size_t n, int *line); /* realloc(p, n) */
void *lib_never(int really, int *line);       /* calloc(4, 4) if really: a tag never called */
const char *lib_file(void);                   /* __FILE__ of tags_lib.c as compiled */
const void *lib_anchor(void);                 /* an address in the library's data */

#endif
