/* A library whose constructor allocates: with the agent preloaded, such a call can be the one
 * that starts the agent (as libjq's does), through a mode full entry point (first_alloc.c). */
#include <stdlib.h>

void *first_alloc_block;

__attribute__((constructor)) static void first_alloc_ctor(void)
{
    first_alloc_block = malloc(4000);
}
