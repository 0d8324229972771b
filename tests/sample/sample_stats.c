/*
 * sample_stats.c - the estimator, statistically: unbiased, with the variance theory predicts.
 *
 * ROUNDS rounds; in each, 4 new threads (each a fresh random stream: with sample_seed the streams
 * are fixed, so the test is deterministic up to thread start order) allocate N blocks of a size
 * mix from 16 bytes (p ~ 0.0005 at rate 32768) to 256 KiB (p ~ 1), including sizes that span
 * several sampling intervals, and keep them; the main thread takes a live snapshot and estimates
 * the live bytes of the workers' stack as sum size/p(size) over its sampled blocks. With T the
 * truth and V = sum over all blocks of s^2 (1-p)/p the estimator's variance, z = (E - T)/sqrt(V)
 * must have mean ~0 and variance ~1 over the rounds. Then the threads free everything.
 * At the end the cumulative SAMPLE_ALLOCS (est_objects, est_bytes) of the workers' stack are
 * checked the same way against the known totals of all rounds.
 *
 * A sampler that redraws after a large allocation until the countdown is positive again, or that
 * draws intervals with the wrong mean, fails the mean test; one that samples more or less often
 * than p(s) fails both. Usage: sample_stats DIR RATE [ROUNDS]  (under the agent, mode sample)
 */
#define _GNU_SOURCE
#include "../../include/leakscope.h"
#include "sample_check.h"

#include <pthread.h>
#include <stdint.h>

#define THREADS 4
#define N       800

static const size_t sizes[] = {16, 48, 200, 1000, 4000, 30000, 100000, 262144};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static void *blocks[THREADS][N];
static pthread_barrier_t built, freed;

__attribute__((noinline)) void stat_alloc(int t, int i)
{
    blocks[t][i] = malloc(sizes[(size_t)(i * 7 + t) % NSIZES]);
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < N; i++) {
        stat_alloc(t, i);
        if (!blocks[t][i]) abort();
    }
    pthread_barrier_wait(&built); /* the main thread snapshots */
    pthread_barrier_wait(&freed);
    for (int i = 0; i < N; i++) free(blocks[t][i]);
    return NULL;
}

/* Truth for one round: bytes, objects, and the variances of both estimators. */
static void truth(double rate, double *bytes, double *objs, double *vbytes, double *vobjs)
{
    *bytes = *objs = *vbytes = *vobjs = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < N; i++) {
            double s = (double)sizes[(size_t)(i * 7 + t) % NSIZES], p = sc_prob(s, rate);
            *bytes += s;
            *objs += 1;
            *vbytes += s * s * (1 - p) / p;
            *vobjs += (1 - p) / p;
        }
}

int main(int argc, char **argv)
{
    if (argc < 3 || !ls_agent_active()) {
        fprintf(stderr, "usage: sample_stats DIR RATE [ROUNDS], under the agent in mode sample\n");
        return 2;
    }
    const char *dir = argv[1];
    double rate = atof(argv[2]);
    int rounds = argc > 3 ? atoi(argv[3]) : 40;
    double T, O, VT, VO;
    truth(rate, &T, &O, &VT, &VO);
    pthread_barrier_init(&built, NULL, THREADS + 1);
    pthread_barrier_init(&freed, NULL, THREADS + 1);
    double sum_z = 0, sum_z2 = 0, max_abs = 0;
    char path[4200];
    for (int r = 0; r < rounds; r++) {
        pthread_t th[THREADS];
        for (int t = 0; t < THREADS; t++)
            if (pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t)) abort();
        pthread_barrier_wait(&built);
        snprintf(path, sizeof(path), "%s/stats.lsnap", dir);
        SC_CHECK(ls_snapshot_write(path) == 0, "snapshot %d", r);
        ls_snapshot_t s;
        char err[512];
        double est = 0;
        size_t nsampled = 0;
        if (ls_snapshot_load(path, &s, err, sizeof(err)) == 0) {
            for (size_t i = 0; i < s.nblocks; i++) {
                if (strcmp(sc_site(&s, s.blocks[i].stack), "stat_alloc")) continue;
                double sz = (double)s.blocks[i].size;
                est += sz / sc_prob(sz, rate);
                nsampled++;
            }
            ls_snapshot_free(&s);
        } else {
            SC_CHECK(0, "%s", err);
        }
        pthread_barrier_wait(&freed);
        for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
        double z = (est - T) / sqrt(VT);
        sum_z += z;
        sum_z2 += z * z;
        if (fabs(z) > max_abs) max_abs = fabs(z);
        if (r < 3)
            printf("round %d: %zu sampled of %d, estimated %.0f bytes, truth %.0f, z %+.2f\n", r,
                   nsampled, THREADS * N, est, T, z);
    }
    double mean = sum_z / rounds, var = (sum_z2 - rounds * mean * mean) / (rounds - 1);
    printf("in use, %d rounds: z mean %+.3f (|.| < %.3f), variance %.3f, max |z| %.2f\n", rounds,
           mean, 4 / sqrt(rounds), var, max_abs);
    /* mean of R standard normals: sd 1/sqrt(R); sample variance: sd sqrt(2/(R-1)) */
    SC_CHECK(fabs(mean) < 4 / sqrt(rounds), "estimates biased: mean z %.3f", mean);
    SC_CHECK(fabs(var - 1) < 4 * sqrt(2.0 / (rounds - 1)), "variance of z %.3f, want 1", var);
    SC_CHECK(max_abs < 5.5, "a round %.1f standard deviations off", max_abs);

    /* cumulative: every round's allocations, all freed by now */
    snprintf(path, sizeof(path), "%s/stats-end.lsnap", dir);
    SC_CHECK(ls_snapshot_write(path) == 0, "final snapshot");
    ls_snapshot_t s;
    char err[512];
    if (ls_snapshot_load(path, &s, err, sizeof(err))) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    size_t nrecs;
    const ls_fmt_sample_alloc_t *recs = sc_sample_allocs(&s, &nrecs);
    const ls_fmt_sample_alloc_t *x = NULL;
    for (size_t i = 0; i < nrecs; i++)
        if (!strcmp(sc_site(&s, recs[i].stack), "stat_alloc")) x = &recs[i];
    SC_CHECK(x != NULL, "no SAMPLE_ALLOCS record for stat_alloc");
    for (size_t i = 0; i < s.nblocks; i++)
        SC_CHECK(strcmp(sc_site(&s, s.blocks[i].stack), "stat_alloc"),
                 "a freed block is still listed");
    if (x) {
        double zb = (x->est_bytes - rounds * T) / sqrt(rounds * VT);
        double zo = (x->est_objects - rounds * O) / sqrt(rounds * VO);
        printf("allocated: %llu samples; bytes est %.0f truth %.0f (z %+.2f); objects est %.0f "
               "truth %.0f (z %+.2f)\n",
               (unsigned long long)x->samples, x->est_bytes, rounds * T, zb, x->est_objects,
               rounds * O, zo);
        SC_CHECK(fabs(zb) < 5, "allocated bytes z %.2f", zb);
        SC_CHECK(fabs(zo) < 5, "allocated objects z %.2f", zo);
    }
    ls_snapshot_free(&s);
    printf("%s\n", sc_failures ? "FAILED" : "ok");
    return sc_failures ? 1 : 0;
}
