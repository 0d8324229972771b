/*
 * hook_prologues.c - reference functions whose first instructions exercise the entry hooks of
 * `run --refs` (src/agent/ls_hook.c): written in assembly so the bytes are exactly these.
 *
 *   ref_rip     endbr64 (kept in place), then a RIP-relative load and store: re-pointed
 *   unref_thunk a bare `jmp rel32` to the real code: relocated, no jump back
 *   ref_jcc     `test; je rel8` within the first 5 bytes: the branch is relocated
 *   unref_push  push rbp; mov rbp, rsp; sub rsp, imm8: plain copies
 *   ref_store   `movl $imm32, disp32(%rip)`: a RIP-relative operand followed by an immediate
 *   ref_args    uses every argument register and xmm0-7 after the hook ran: the trampoline must
 *               give them back untouched
 *   ref_call    starts with a call: refused (the error names byte 0xe8)
 *   ref_short   a 1-byte function (`ret`): refused as shorter than 5 bytes
 *   ref_loop    branches back to its own first byte: refused
 *
 * Each REF adds 1 to the int at the object's start, each UNREF subtracts 1, so the program can
 * check the functions still do their work once wrapped. Per type (A: ref_rip/unref_thunk, B:
 * ref_jcc/unref_push, C: ref_store/unref_push2, G: ref_args/unref_plain) two objects are
 * released correctly and one leaks with one reference, taken in leak_<type>().
 * Prints "ok" when every function computed what it should.
 */
#include <stdio.h>
#include <stdlib.h>

typedef struct obj {
    int count;
    int pad;
    long isum;
    double dsum;
} obj_t;

obj_t *ref_rip(obj_t *o);
void unref_thunk(obj_t *o);
obj_t *ref_jcc(obj_t *o);
void unref_push(obj_t *o);
obj_t *ref_store(obj_t *o);
void unref_push2(obj_t *o);
obj_t *ref_args(obj_t *o, long a, long b, long c, long d, long e, double x0, double x1, double x2,
                double x3, double x4, double x5, double x6, double x7);
void unref_plain(obj_t *o);
obj_t *ref_call(obj_t *o);
void unref_call(obj_t *o);
obj_t *ref_short(obj_t *o);
void unref_short(obj_t *o);
obj_t *ref_loop(obj_t *o);
void unref_loop(obj_t *o);

long rip_calls; /* ref_rip's RIP-relative counter */
int store_flag; /* ref_store's RIP-relative store */
int call_helper_hits;

__asm__(".text\n"
        ".globl ref_rip\n.type ref_rip,@function\n"
        "ref_rip:\n"
        "  endbr64\n"
        "  mov rip_calls(%rip), %rax\n"
        "  add $1, %rax\n"
        "  mov %rax, rip_calls(%rip)\n"
        "  addl $1, (%rdi)\n"
        "  mov %rdi, %rax\n"
        "  ret\n"
        ".size ref_rip, .-ref_rip\n"

        ".globl unref_thunk\n.type unref_thunk,@function\n"
        "unref_thunk:\n"
        "  .byte 0xe9\n .long unref_thunk_body - . - 4\n" /* jmp rel32, not the short form */
        ".size unref_thunk, .-unref_thunk\n"
        "unref_thunk_body:\n"
        "  subl $1, (%rdi)\n"
        "  ret\n"

        ".globl ref_jcc\n.type ref_jcc,@function\n"
        "ref_jcc:\n"
        "  test %rdi, %rdi\n"
        "  je 1f\n"
        "  addl $1, (%rdi)\n"
        "1:\n"
        "  mov %rdi, %rax\n"
        "  ret\n"
        ".size ref_jcc, .-ref_jcc\n"

        ".globl unref_push\n.type unref_push,@function\n"
        "unref_push:\n"
        "  push %rbp\n"
        "  mov %rsp, %rbp\n"
        "  sub $16, %rsp\n"
        "  subl $1, (%rdi)\n"
        "  leave\n"
        "  ret\n"
        ".size unref_push, .-unref_push\n"

        ".globl ref_store\n.type ref_store,@function\n"
        "ref_store:\n"
        "  movl $0x5eed, store_flag(%rip)\n"
        "  addl $1, (%rdi)\n"
        "  mov %rdi, %rax\n"
        "  ret\n"
        ".size ref_store, .-ref_store\n"

        ".globl unref_push2\n.type unref_push2,@function\n"
        "unref_push2:\n"
        "  push %r15\n"
        "  push %r14\n"
        "  xor %eax, %eax\n"
        "  subl $1, (%rdi)\n"
        "  pop %r14\n"
        "  pop %r15\n"
        "  ret\n"
        ".size unref_push2, .-unref_push2\n"

        ".globl ref_args\n.type ref_args,@function\n"
        "ref_args:\n"
        "  push %rbx\n"
        "  mov %rdi, %rbx\n"
        "  mov %rsi, %rax\n"
        "  add %rdx, %rax\n"
        "  add %rcx, %rax\n"
        "  add %r8, %rax\n"
        "  add %r9, %rax\n"
        "  mov %rax, 8(%rbx)\n"
        "  addsd %xmm1, %xmm0\n"
        "  addsd %xmm2, %xmm0\n"
        "  addsd %xmm3, %xmm0\n"
        "  addsd %xmm4, %xmm0\n"
        "  addsd %xmm5, %xmm0\n"
        "  addsd %xmm6, %xmm0\n"
        "  addsd %xmm7, %xmm0\n"
        "  movsd %xmm0, 16(%rbx)\n"
        "  addl $1, (%rbx)\n"
        "  mov %rbx, %rax\n"
        "  pop %rbx\n"
        "  ret\n"
        ".size ref_args, .-ref_args\n"

        ".globl unref_plain\n.type unref_plain,@function\n"
        "unref_plain:\n"
        "  nopl 0(%rax,%rax,1)\n"
        "  subl $1, (%rdi)\n"
        "  ret\n"
        ".size unref_plain, .-unref_plain\n"

        ".globl ref_call\n.type ref_call,@function\n"
        "ref_call:\n"
        "  call call_helper\n"
        "  addl $1, (%rdi)\n"
        "  mov %rdi, %rax\n"
        "  ret\n"
        ".size ref_call, .-ref_call\n"
        "call_helper:\n"
        "  addl $1, call_helper_hits(%rip)\n"
        "  ret\n"

        ".globl ref_short\n.type ref_short,@function\n"
        "ref_short:\n"
        "  ret\n"
        ".size ref_short, .-ref_short\n"
        "  int3\n int3\n int3\n int3\n int3\n int3\n int3\n int3\n"

        ".globl ref_loop\n.type ref_loop,@function\n"
        "ref_loop:\n"
        "  test %rdi, %rdi\n"
        "  je ref_loop\n"
        "  addl $1, (%rdi)\n"
        "  mov %rdi, %rax\n"
        "  ret\n"
        ".size ref_loop, .-ref_loop\n"

        ".globl unref_call\n.type unref_call,@function\n"
        "unref_call:\n"
        ".globl unref_short\n.type unref_short,@function\n"
        "unref_short:\n"
        ".globl unref_loop\n.type unref_loop,@function\n"
        "unref_loop:\n"
        "  subl $1, (%rdi)\n"
        "  nop\n nop\n nop\n nop\n"
        "  ret\n"
        ".size unref_call, .-unref_call\n"
        ".size unref_short, .-unref_short\n"
        ".size unref_loop, .-unref_loop\n");

static int bad;

static void expect(int cond, const char *what)
{
    if (!cond) {
        printf("FAIL: %s\n", what);
        bad++;
    }
}

static obj_t *obj_new(void)
{
    obj_t *o = calloc(1, sizeof(*o));
    if (!o) abort();
    o->count = 1;
    return o;
}

/* The one reference of each type nobody drops. */
__attribute__((noinline)) static obj_t *leak_a(obj_t *o)
{
    ref_rip(o);
    return o;
}

__attribute__((noinline)) static obj_t *leak_b(obj_t *o)
{
    ref_jcc(o);
    return o;
}

__attribute__((noinline)) static obj_t *leak_c(obj_t *o)
{
    ref_store(o);
    return o;
}

__attribute__((noinline)) static obj_t *leak_g(obj_t *o)
{
    ref_args(o, 1, 2, 3, 4, 5, 0.5, 1, 2, 3, 4, 5, 6, 7);
    return o;
}

static obj_t *kept[4]; /* the leaked objects stay reachable: only their counts are wrong */

int main(void)
{
    for (int i = 0; i < 2; i++) {
        obj_t *o = obj_new();
        expect(ref_rip(o) == o && o->count == 2, "ref_rip");
        unref_thunk(o);
        expect(o->count == 1, "unref_thunk");
        unref_thunk(o);
        free(o);

        o = obj_new();
        expect(ref_jcc(o) == o && o->count == 2, "ref_jcc");
        expect(ref_jcc(NULL) == NULL, "ref_jcc(NULL) takes the relocated branch");
        unref_push(o);
        unref_push(o);
        expect(o->count == 0, "unref_push");
        free(o);

        o = obj_new();
        store_flag = 0;
        expect(ref_store(o) == o && store_flag == 0x5eed && o->count == 2, "ref_store");
        unref_push2(o);
        unref_push2(o);
        expect(o->count == 0, "unref_push2");
        free(o);

        o = obj_new();
        expect(ref_args(o, 10, 20, 30, 40, 50, 0.5, 1, 2, 3, 4, 5, 6, 7) == o, "ref_args");
        expect(o->isum == 150 && o->dsum == 28.5 && o->count == 2, "ref_args arguments intact");
        unref_plain(o);
        unref_plain(o);
        free(o);
    }
    expect(rip_calls == 2, "ref_rip's RIP-relative counter");
    /* The refused functions still run, unwrapped. */
    obj_t *o = obj_new();
    ref_call(o);
    ref_short(o);
    ref_loop(o);
    expect(o->count == 3 && call_helper_hits == 1, "refused functions run");
    unref_call(o);
    unref_short(o);
    unref_loop(o);
    free(o);

    /* The creator's reference is dropped; leak_<type>'s is not. */
    kept[0] = leak_a(obj_new());
    unref_thunk(kept[0]);
    kept[1] = leak_b(obj_new());
    unref_push(kept[1]);
    kept[2] = leak_c(obj_new());
    unref_push2(kept[2]);
    kept[3] = leak_g(obj_new());
    unref_plain(kept[3]);
    for (int i = 0; i < 4; i++) expect(kept[i]->count == 1, "leaked object count");
    expect(rip_calls == 3, "ref_rip's counter after the leak");
    if (!bad) printf("ok\n");
    return bad ? 1 : 0;
}
