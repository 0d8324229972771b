/*
 * suppress_helper.c - second source of the suppress_partial program: its leak is suppressed by a
 * file-name pattern (leak:*suppress_helper.c). Not a test program itself: no EXPECT line.
 */
#include <stdlib.h>

#include "lt.h"

void helper_leak(void);

LT_NOINLINE void helper_leak(void)
{
    void *p = malloc(44);
    lt_fill(p, 44);
}
