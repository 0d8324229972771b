/*
 * ls_refpair.c - see ls_refpair.h. Compiled into both the agent and the CLI: it must never
 * allocate (the agent runs it inside the host's put) and it keeps its working set in the
 * caller's open[] array.
 */
#include "ls_refpair.h"
#include "ls_format.h"

size_t ls_rp_common_outer(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    size_t k = 0;
    while (k < na && k < nb && a[na - 1 - k] == b[nb - 1 - k]) k++;
    return k;
}

int64_t ls_rp_score_structural(void *ctx, const ls_rp_event_t *g, const ls_rp_event_t *p)
{
    (void)ctx;
    return (int64_t)ls_rp_common_outer(g->pcs, g->npcs, p->pcs, p->npcs);
}

static int takes(const ls_rp_event_t *e)
{
    return (e->op == LS_REF_OP_GET || e->op == LS_REF_OP_CREATE) && e->refs > 0;
}

/*
 * While matching, open[k] of an event that holds nothing (any event but a taking one, or a
 * taking one whose references are all dropped) is RP_SKIP | an earlier index from which to go on
 * looking for holders (RP_NONE: there is none), compressed as it is followed. So a put visits
 * only the references open at that moment, not every earlier event: a long history (the agent
 * compacts 1024 events at a time) costs O(n * open) instead of O(n^2). Holders keep their count
 * (below 2^31). Everything is turned back into plain counts before returning.
 */
#define RP_SKIP 0x80000000u
#define RP_NONE 0x7fffffffu

static uint32_t skip_to(uint32_t k)
{
    return RP_SKIP | (k ? k - 1 : RP_NONE);
}

/* The latest event at or before j still holding references, or RP_NONE. */
static uint32_t holder_at_or_before(uint32_t *open, uint32_t j)
{
    uint32_t k = j;
    while (k != RP_NONE && (open[k] & RP_SKIP)) k = open[k] & ~RP_SKIP;
    while (j != k && j != RP_NONE && (open[j] & RP_SKIP)) {
        uint32_t next = open[j] & ~RP_SKIP;
        open[j] = RP_SKIP | k;
        j = next;
    }
    return k;
}

size_t ls_rp_match(const ls_rp_event_t *ev, size_t n, ls_rp_score_fn score, void *ctx,
                   ls_rp_pair_t *pairs, size_t cap, uint32_t *open, uint8_t *unmatched)
{
    size_t np = 0;
    /* open[] doubles as the working state; without the caller's array, nothing can be paired. */
    if (!open || n >= RP_NONE) return 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t refs = ev[i].refs < RP_SKIP ? ev[i].refs : RP_SKIP - 1;
        open[i] = takes(&ev[i]) ? refs : skip_to((uint32_t)i);
        if (unmatched) unmatched[i] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        const ls_rp_event_t *p = &ev[i];
        if (p->op != LS_REF_OP_PUT) continue;
        size_t best = n;
        int64_t best_score = LS_RP_NEVER;
        /* latest first: ties keep the latest */
        for (uint32_t j = i ? holder_at_or_before(open, (uint32_t)i - 1) : RP_NONE; j != RP_NONE;
             j = j ? holder_at_or_before(open, j - 1) : RP_NONE) {
            const ls_rp_event_t *g = &ev[j];
            if (p->tracker || g->tracker) {
                if (p->tracker == g->tracker) {
                    best = j;
                    break;
                }
                continue;
            }
            int64_t s = score(ctx, g, p);
            if (s == LS_RP_NEVER) continue;
            if (best == n || s > best_score) {
                best = j;
                best_score = s;
            }
        }
        if (best == n) {
            if (unmatched) unmatched[i] = 1;
            continue;
        }
        if (--open[best] == 0) open[best] = skip_to((uint32_t)best);
        if (np < cap) pairs[np++] = (ls_rp_pair_t){(uint32_t)best, (uint32_t)i};
    }
    for (size_t i = 0; i < n; i++)
        if (open[i] & RP_SKIP) open[i] = 0;
    return np;
}
