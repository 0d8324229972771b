/*
 * first_alloc: regression test for mode sample's first allocation. The call that starts the agent
 * comes through a mode full entry point before sampling is on; it must stay untracked. It once
 * got a mode full trailer and bitmap bit but no page count, so its free (mode sample's fast path)
 * left the bit behind, and the block that next took its address - here garbage-filled - was
 * reported as a live sampled block: its "trailer" read as a stack and a size, a crash at exit in
 * jq. Run with a sample_rate no allocation reaches; the exit profile must hold no live sample.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *first_alloc_block;

int main(void)
{
    if (!first_alloc_block) return 1;
    free(first_alloc_block);
    static void *keep[256];
    for (int i = 0; i < 256; i++) { /* one of them takes the freed block's address */
        keep[i] = malloc(4000);
        if (!keep[i]) return 1;
        memset(keep[i], 0xa5, 4000);
    }
    puts("ok");
    return 0; /* keep[] stays live for the exit profile */
}
