/*
 * roots_globals: pointers in the program's writable data are roots.
 *  - an initialised global (.data):                    11 bytes still reachable
 *  - a zero-initialised static (.bss):                 22 bytes still reachable
 *  - a static local variable:                          33 bytes still reachable
 *  - an element of a global array:                     44 bytes still reachable
 *  - a pointer at an unaligned offset in a packed global struct: valgrind only scans aligned
 *    words, so this pointer is invisible:              55 bytes definitely lost
 *  - a pointer stored XOR-ed with a constant (hidden): 66 bytes definitely lost
 *  - a pointer in a read-only global? not possible for a heap address; skipped.
 * reachable 110/4, definitely lost 121/2.
 */
// EXPECT definitely_lost=121/2 indirectly_lost=0/0 possibly_lost=0/0 still_reachable=110/4
// EXPECT_FUNC alloc_filled still_reachable=110/4
// EXPECT_FUNC alloc_filled definitely_lost=121/2
#include <stdint.h>
#include <stdlib.h>

#include "lt.h"

static int g_dummy;
void *g_data = &g_dummy; /* .data */
static void *g_bss;      /* .bss */
void *g_array[8];

static struct __attribute__((packed)) {
    char c;
    void *p; /* at offset 1 */
} g_packed;

uintptr_t g_hidden;

static LT_NOINLINE void *alloc_filled(size_t n)
{
    void *p = malloc(n);
    lt_fill(p, n);
    return p;
}

static LT_NOINLINE void remember(void *p)
{
    static void *s_cache; /* static local */
    s_cache = p;
    lt_escape(&s_cache);
}

static LT_NOINLINE void run(void)
{
    g_data = alloc_filled(11);
    g_bss = alloc_filled(22);
    lt_escape(&g_bss);
    remember(alloc_filled(33));
    g_array[5] = alloc_filled(44);
    g_packed.c = 1;
    g_packed.p = alloc_filled(55);
    g_hidden = (uintptr_t)alloc_filled(66) ^ (uintptr_t)0x5a5a5a5a5a5a5a5aULL;
}

int main(void)
{
    run();
    LT_END();
    return 0;
}
