/*
 * suppress_obj: a suppression by object-name glob: every allocation stack of this program has a
 * frame in the program's own executable, so leak:*suppress_obj suppresses everything it leaks.
 *  - leaks of 5, 6 and 7 bytes:   suppressed 18/3
 * With --error-exitcode 42 leakscope exits with the program's own status, 0.
 */
// SUPPRESS leak:*suppress_obj
// VG_SUPPRESS obj:*suppress_obj
// ERROR_EXITCODE 42
// EXPECT definitely_lost=0/0 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=0/0 suppressed=18/3
#include <stdlib.h>

#include "lt.h"

static LT_NOINLINE void leak_n(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
}

int main(void)
{
    leak_n(5);
    leak_n(6);
    leak_n(7);
    LT_END();
    return 0;
}
