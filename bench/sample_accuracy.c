/*
 * sample_accuracy.c - a deterministic heap with known sites, for bench/run.py's accuracy check:
 * the same run under mode full (exact live bytes per site) and mode sample (estimates) must
 * agree within 10% for every site holding more than 1% of the heap.
 *
 * Eight allocation sites with different size mixes (16 B to 2 MiB), allocated in an interleaved
 * order from a fixed LCG, about a third freed again along the way (so the sampler sees churn),
 * ~256 MiB live at the end, which is held until exit (the exit snapshot is the comparison
 * point). Usage: sample_accuracy [SCALE]  (SCALE 1 = ~256 MiB live; default 1)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

static uint64_t lcg = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg >> 33);
}

static void **live;
static size_t nlive, cap;

static void keep(void *p)
{
    if (nlive == cap) {
        cap = cap ? cap * 2 : 1 << 16;
        live = realloc(live, cap * sizeof(*live));
        if (!live) abort();
    }
    live[nlive++] = p;
}

static size_t last_size; /* requested bytes of the block the last site returned */

static void *touch(void *p, size_t n)
{
    if (!p) abort();
    last_size = n;
    memset(p, 1, n < 64 ? n : 64);
    return p;
}

/* One function per site, so each has its own stack. */
static NOINLINE void *site_tiny(void)
{
    size_t n = 16 + rnd() % 48;
    return touch(malloc(n), n);
}
static NOINLINE void *site_small(void)
{
    size_t n = 100 + rnd() % 200;
    return touch(malloc(n), n);
}
static NOINLINE void *site_medium(void)
{
    size_t n = 1024 + rnd() % 3072;
    return touch(malloc(n), n);
}
static NOINLINE void *site_page(void)
{
    return touch(calloc(1, 4096), 4096);
}
static NOINLINE void *site_large(void)
{
    size_t n = 65536 + rnd() % 65536;
    return touch(malloc(n), n);
}
static NOINLINE void *site_huge(void)
{
    size_t n = (1u << 20) + rnd() % (1u << 20);
    return touch(malloc(n), n);
}
static NOINLINE void *site_string(void)
{
    char buf[200];
    size_t n = 8 + rnd() % 150;
    memset(buf, 'x', n);
    buf[n] = 0;
    last_size = n + 1;
    return strdup(buf);
}
static NOINLINE void *site_grow(void)
{
    size_t n = 32;
    char *p = touch(malloc(n), n);
    for (int i = 0, k = (int)(rnd() % 6); i < k; i++) {
        n *= 2;
        p = touch(realloc(p, n), n);
    }
    return p;
}

typedef void *(*site_fn)(void);
static const site_fn sites[] = {site_tiny,  site_small, site_medium, site_page,
                                site_large, site_huge,  site_string, site_grow};
/* Allocation weights per site, in 1/1000: tiny and small dominate the count, huge the bytes. */
static const unsigned mix[] = {400, 250, 120, 80, 6, 1, 90, 28};

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    size_t target = (size_t)(scale * 256.0 * 1048576.0), bytes = 0;
    unsigned total = 0;
    for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) total += mix[i];
    while (bytes < target) {
        unsigned r = rnd() % total, k = 0;
        while (r >= mix[k]) r -= mix[k++];
        void *p = sites[k]();
        if (rnd() % 3 == 0) { /* churn: freed again, never counted */
            free(p);
            continue;
        }
        keep(p);
        bytes += last_size;
    }
    printf("%zu live blocks, %zu bytes\n", nlive, bytes);
    return 0; /* everything stays live to the exit snapshot */
}
