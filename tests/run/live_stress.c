/*
 * live_stress.c - snapshots taken while threads churn the heap, under the agent.
 *
 * THREADS threads each keep 512 blocks and, in a loop, free / malloc / realloc (grow and shrink)
 * them, every block filled with a pattern derived from its slot and generation that is checked
 * before it is freed or reallocated. Meanwhile the main thread takes SNAPS snapshots with
 * ls_snapshot_write (each one defers the frees and moves the reallocs made while it reads) and
 * checks each file loads. Any lost write, double free or block handed out twice shows up as a
 * pattern mismatch, a crash, or glibc's abort. Exit 0 and "stress ok" on success.
 *
 * usage: live_stress DIR [THREADS] [SNAPS]
 */
#include <leakscope.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 512

static _Atomic int stop;
static _Atomic long ops, bad;

typedef struct slot {
    unsigned char *p;
    size_t size;
    unsigned gen;
} slot_t;

static unsigned char pat(unsigned t, unsigned s, unsigned gen)
{
    return (unsigned char)(t * 131u + s * 7u + gen * 13u + 1u);
}

static void fill(slot_t *x, unsigned t, unsigned s)
{
    memset(x->p, pat(t, s, x->gen), x->size);
}

static void check(const slot_t *x, unsigned t, unsigned s, size_t n)
{
    unsigned char want = pat(t, s, x->gen);
    for (size_t i = 0; i < n; i++)
        if (x->p[i] != want) {
            atomic_fetch_add(&bad, 1);
            return;
        }
}

static void *churn(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg, seed = t * 2654435761u + 1;
    slot_t slots[SLOTS];
    memset(slots, 0, sizeof(slots));
    long n = 0;
    while (!atomic_load(&stop)) {
        seed = seed * 1103515245u + 12345u;
        unsigned s = (seed >> 8) % SLOTS;
        slot_t *x = &slots[s];
        size_t size = 8 + (seed >> 20) % 600;
        if (!x->p) {
            x->p = malloc(size);
            x->size = size;
            fill(x, t, s);
        } else if ((seed & 3) == 0) {
            check(x, t, s, x->size);
            free(x->p);
            x->p = NULL;
        } else {
            check(x, t, s, x->size);
            size_t keep = size < x->size ? size : x->size;
            unsigned char *q = realloc(x->p, size);
            if (!q) continue;
            x->p = q;
            x->size = size;
            check(x, t, s, keep); /* realloc kept the old contents */
            x->gen++;
            fill(x, t, s);
        }
        n++;
    }
    for (unsigned s = 0; s < SLOTS; s++)
        if (slots[s].p) {
            check(&slots[s], t, s, slots[s].size);
            free(slots[s].p);
        }
    atomic_fetch_add(&ops, n);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: live_stress DIR [THREADS] [SNAPS]\n");
        return 2;
    }
    int nthreads = argc > 2 ? atoi(argv[2]) : 4, nsnaps = argc > 3 ? atoi(argv[3]) : 20;
    if (!ls_active()) return 11;
    pthread_t th[64];
    if (nthreads < 1 || nthreads > 64) return 2;
    for (int i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)i);
    int failed = 0;
    for (int k = 0; k < nsnaps; k++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/stress.%d.lsnap", argv[1], k);
        if (ls_snapshot_write(path) != 0) failed++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    printf("%ld operations, %d snapshots, %d failed, %ld pattern mismatches\n", atomic_load(&ops),
           nsnaps, failed, atomic_load(&bad));
    if (failed || atomic_load(&bad)) return 1;
    puts("stress ok");
    return 0;
}
