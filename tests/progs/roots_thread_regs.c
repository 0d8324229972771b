/*
 * roots_thread_regs: the registers of every live thread are roots (valgrind scans the general
 * purpose registers of all threads). A thread moves its only pointer to a 77-byte block into r12,
 * clears the memory copy, and blocks in a raw read() syscall written in assembly, so that while it
 * is blocked the pointer exists nowhere but in r12:                        77 bytes still reachable.
 * A native agent has to capture the registers of the other threads (e.g. from the ucontext of a
 * signal it sends them) to see it. Possibly lost: the live thread's DTV (see roots_tls.c).
 * x86-64 only.
 */
// LIBS pthread
// EXPECT definitely_lost=0/0 indirectly_lost=0/0 possibly_lost=*/1 still_reachable>=77/1
// EXPECT_FUNC alloc_filled still_reachable=77/1
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "lt.h"

__attribute__((used)) static void *g_slot;
__attribute__((used)) static int g_block_fd;
static int ready_pipe[2], block_pipe[2];

/* void block_with_ptr_in_r12(void): r12 = g_slot; g_slot = 0; then read(g_block_fd, ..., 1)
 * until EOF (never). Never returns. */
void block_with_ptr_in_r12(void);
__asm__(".text\n"
        ".type block_with_ptr_in_r12, @function\n"
        "block_with_ptr_in_r12:\n"
        "    sub $24, %rsp\n"
        "    mov g_slot(%rip), %r12\n"
        "    movq $0, g_slot(%rip)\n"
        "1:  xor %eax, %eax\n"       /* SYS_read */
        "    mov g_block_fd(%rip), %edi\n"
        "    mov %rsp, %rsi\n"
        "    mov $1, %edx\n"
        "    syscall\n"
        "    jmp 1b\n"
        ".size block_with_ptr_in_r12, .-block_with_ptr_in_r12\n");

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static void *reg_thread(void *arg)
{
    (void)arg;
    g_slot = alloc_filled(77);
    LT_END();
    char c = 1;
    if (write(ready_pipe[1], &c, 1) != 1) abort();
    /* From here until the process exits the block is referenced by g_slot, then by g_slot and
     * r12, then by r12 alone: it is reachable at every instant. */
    block_with_ptr_in_r12();
    return NULL;
}

static LT_NOINLINE void run(void)
{
    pthread_t t;
    char c;
    if (pipe(ready_pipe) || pipe(block_pipe)) exit(90);
    g_block_fd = block_pipe[0];
    if (pthread_create(&t, NULL, reg_thread, NULL)) exit(91);
    if (read(ready_pipe[0], &c, 1) != 1) exit(92);
    /* Wait until the thread has moved the pointer into r12 (g_slot cleared), so the check below
     * really exercises the register root. */
    while (__atomic_load_n(&g_slot, __ATOMIC_ACQUIRE) != NULL) usleep(1000);
    usleep(20000); /* and has entered the syscall */
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
