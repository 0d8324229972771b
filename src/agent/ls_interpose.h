/* ls_interpose.h - the real functions behind the interposers, resolved by ls__init. */
#ifndef LS_INTERPOSE_H
#define LS_INTERPOSE_H

#include "ls_agent.h"

#include <pthread.h>

typedef struct ls_real {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
    int (*pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    void *(*dlopen)(const char *, int);
    int (*dlclose)(void *);
    void (*exit)(int) __attribute__((noreturn));
    void (*_exit)(int) __attribute__((noreturn));
    void (*_Exit)(int) __attribute__((noreturn));
} ls_real_t;

extern ls_real_t ls__real LS_HIDDEN;

/* Starts the agent (idempotent, thread-safe); called by the first interposed call. */
void ls__init(void) LS_HIDDEN;

#endif
