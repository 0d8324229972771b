/* ls_stopworld.h - park and release the other threads (see ls_stopworld.c). */
#ifndef LS_STOPWORLD_H
#define LS_STOPWORLD_H

#include "ls_agent.h"

#include <ucontext.h>

/* The 16 general registers of an interrupted thread (roots for the scan) from the ucontext its
 * signal handler got; returns its stack pointer. Used by the stop and fatal-signal handlers. */
static inline uintptr_t ls__ucontext_regs(const void *ucv, uintptr_t regs[16])
{
    static const int gpr[16] = {REG_RAX, REG_RBX, REG_RCX, REG_RDX, REG_RSI, REG_RDI,
                                REG_RBP, REG_RSP, REG_R8,  REG_R9,  REG_R10, REG_R11,
                                REG_R12, REG_R13, REG_R14, REG_R15};
    const greg_t *g = ((const ucontext_t *)ucv)->uc_mcontext.gregs;
    for (int i = 0; i < 16; i++) regs[i] = (uintptr_t)g[gpr[i]];
    return (uintptr_t)g[REG_RSP];
}

#define LS_MAX_PARKED 8192

enum { LS_SIGNALLED = 1, LS_PARKED = 2, LS_LEFT = 3, LS_GONE = 4 };

typedef struct ls_parked {
    _Atomic pid_t tid;
    _Atomic int state;
    _Atomic uint32_t session;
    bool unresponsive; /* never parked: registers unknown, sp from /proc or 0 */
    uintptr_t sp;
    uintptr_t pc; /* where it was interrupted (parked only): ls_hook.c patches around it */
    uintptr_t regs[16];
    int nregs;
} ls_parked_t;

int ls__stopworld_init(int signo) LS_HIDDEN;
/* Parks all other threads; returns their slots (state LS_PARKED, or unresponsive). */
size_t ls__stopworld_stop(ls_parked_t **out, unsigned *unresponsive) LS_HIDDEN;
void ls__stopworld_resume(void) LS_HIDDEN;
/* A thread that did not park, from /proc/self/task/TID/syscall: 1 when it is blocked in a system
 * call (*sp, *pc set), 0 when it is running (anywhere) or unreadable, -1 when it is gone. */
int ls__thread_syscall_regs(pid_t tid, uintptr_t *sp, uintptr_t *pc) LS_HIDDEN;

#endif
