/*
 * lt.h - helpers shared by the leakscope integration programs (the .c and .cc files here).
 *
 * Every program states its expected leak verdict in `// EXPECT ...` comment lines that
 * tests/integration/check_leaks.py parses (see the header of that script for the syntax).
 * The expectations follow valgrind memcheck's leak checker (3.19) exactly; the driver re-checks
 * them against valgrind whenever valgrind is installed.
 *
 * Why the helpers below exist: valgrind only scans *defined* words of *addressable* memory. Stack
 * memory below the stack pointer is unaddressable for it, and a freshly pushed frame is undefined
 * until written, so a pointer left behind in a dead frame (or in an unwritten slot of a new frame,
 * such as the frames of exit() or of a signal handler) is never a root for valgrind. A native
 * agent cannot tell defined from undefined bytes: it sees every stale copy still in memory. The
 * programs therefore:
 *   - allocate in noinline helpers that drop the pointer before returning,
 *   - overwrite locals that held a lost pointer with volatile stores,
 *   - call lt_scrub_stack() before the program ends (return, exit, _exit, a fatal signal), so the
 *     dead stack below the live frames holds zeros instead of stale pointers,
 *   - fill every byte of every block they keep (lt_fill), because valgrind ignores uninitialised
 *     bytes while a native scan would see whatever malloc left there (free-list links, ...),
 *   - run LT_END() (scrub + clear scratch registers) in a thread before it blocks for good: the
 *     registers and the live stack of every running thread are roots (roots_thread_regs.c relies
 *     on exactly that, on purpose).
 * Each program says in a comment where its verdict hinges on this.
 */
#ifndef LT_H
#define LT_H

#include <stddef.h>
#include <string.h>

#if defined(__clang__)
#define LT_NOINLINE __attribute__((noinline)) /* clang has no noclone and clones nothing here */
#else
#define LT_NOINLINE __attribute__((noinline, noclone))
#endif
#define LT_UNUSED __attribute__((unused))

/* Make the compiler believe p escapes and all memory may be read or written: keeps an allocation
 * (and the stores into it) alive at -O2 without keeping a copy of p anywhere. */
#define lt_escape(p) __asm__ volatile("" : : "g"(p) : "memory")

/* A byte pattern that never forms a plausible pointer: 0xa5a5a5a5a5a5a5a5 is non-canonical. */
#define LT_FILL_BYTE 0xa5

/* Fill all n bytes of a block with the non-pointer pattern. */
static inline LT_UNUSED void lt_fill(void *p, size_t n)
{
    memset(p, LT_FILL_BYTE, n);
    lt_escape(p);
}

/* Zero 64 KiB of stack below the caller's frame: wipes the dead frames of earlier calls (the
 * program's helpers, malloc, the agent's interposers) before the program ends, so that the frames
 * pushed by exit()/abort()/a signal handler hold zeros where valgrind sees undefined bytes.
 * On x86-64 it is a few instructions of assembly: it moves the stack pointer down first and then
 * clears everything from there up to its own return address, so it leaves no hole (a C function
 * leaves its padding and saved-register slots unwritten, and a stale pointer can sit exactly
 * there) and never writes below the stack pointer (which memcheck would flag). */
#if defined(__x86_64__)
#ifdef __cplusplus
extern "C" void lt_scrub_stack_x86_64(void);
#else
void lt_scrub_stack_x86_64(void);
#endif
__asm__(".pushsection .text\n"
        ".weak lt_scrub_stack_x86_64\n"
        ".hidden lt_scrub_stack_x86_64\n"
        ".type lt_scrub_stack_x86_64, @function\n"
        "lt_scrub_stack_x86_64:\n"
        "    .cfi_startproc\n"
        "    sub $65536, %rsp\n"
        "    .cfi_adjust_cfa_offset 65536\n"
        "    mov %rsp, %rdi\n"
        "    mov $65536, %ecx\n"
        "    xor %eax, %eax\n"
        "    cld\n"
        "    rep stosb\n"
        "    add $65536, %rsp\n"
        "    .cfi_adjust_cfa_offset -65536\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size lt_scrub_stack_x86_64, .-lt_scrub_stack_x86_64\n"
        ".popsection\n");
/* A plain call (the caller keeps no red-zone data across it); it clobbers only scratch registers. */
#define lt_scrub_stack() lt_scrub_stack_x86_64()
#else
static LT_NOINLINE LT_UNUSED void lt_scrub_stack(void)
{
    volatile char buf[64 * 1024];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = 0;
}
#endif

/* Overwrite the caller-saved registers the compiler may have left a pointer in: called right
 * before the program ends, after lt_scrub_stack(). (Callee-saved registers are restored by each
 * function's epilogue, so the program's own values in them do not outlive the function.) */
static LT_NOINLINE LT_UNUSED void lt_clear_scratch_regs(void)
{
#if defined(__x86_64__)
    __asm__ volatile("xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\t"
                     "xor %%esi, %%esi\n\txor %%edi, %%edi\n\txor %%r8d, %%r8d\n\t"
                     "xor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\txor %%r11d, %%r11d"
                     :
                     :
                     : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory");
#endif
}

/* The usual end of a program: scrub, then clear scratch registers. */
#define LT_END()                                                                                   \
    do {                                                                                           \
        lt_scrub_stack();                                                                          \
        lt_clear_scratch_regs();                                                                   \
    } while (0)

#endif
