/* ls_stopworld.h - park and release the other threads (see ls_stopworld.c). */
#ifndef LS_STOPWORLD_H
#define LS_STOPWORLD_H

#include "ls_agent.h"

#define LS_MAX_PARKED 8192

enum { LS_SIGNALLED = 1, LS_PARKED = 2, LS_LEFT = 3, LS_GONE = 4 };

typedef struct ls_parked {
    _Atomic pid_t tid;
    _Atomic int state;
    _Atomic uint32_t session;
    bool unresponsive; /* never parked: registers unknown, sp from /proc or 0 */
    uintptr_t sp;
    uintptr_t regs[16];
    int nregs;
} ls_parked_t;

int ls__stopworld_init(int signo) LS_HIDDEN;
/* Parks all other threads; returns their slots (state LS_PARKED, or unresponsive). */
size_t ls__stopworld_stop(ls_parked_t **out, unsigned *unresponsive) LS_HIDDEN;
void ls__stopworld_resume(void) LS_HIDDEN;

#endif
