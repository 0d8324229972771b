/*
 * ls_refpair.h - pairing the gets and puts of one reference-counted object: which put dropped
 * which reference. Shared by the agent (it pairs the history of every object that dies, to learn
 * which get stacks are released by which put stacks, and to compact long histories) and the CLI
 * (it pairs the history of each leaked object, helped by what the agent learned, and names the
 * references nothing dropped). Pure functions over arrays: no allocation, no locks.
 *
 * The rule: puts are taken in time order; each drops one reference still open at that moment,
 * the one the score function rates highest, the latest of equals (references are mostly dropped
 * in the reverse order they were taken). A put with a tracker drops exactly the reference of
 * that tracker or nothing; trackers never pair with untracked events.
 */
#ifndef LS_REFPAIR_H
#define LS_REFPAIR_H

#include <stddef.h>
#include <stdint.h>

typedef struct ls_rp_event {
    const uint64_t *pcs; /* the event's stack, innermost first (may be NULL when npcs is 0) */
    uint32_t npcs;
    uint32_t stack;   /* stack id, for the score function's own lookups */
    uint32_t tracker; /* 0 = none */
    uint32_t refs;    /* references the event takes: the creation's initial count, 1 per get */
    uint8_t op;       /* ls_fmt_ref_op_t; only GET, CREATE (take) and PUT (drop) take part */
} ls_rp_event_t;

typedef struct ls_rp_pair {
    uint32_t get; /* index of the taking event (GET or CREATE) */
    uint32_t put; /* index of the PUT */
} ls_rp_pair_t;

#define LS_RP_NEVER INT64_MIN

/* Rates dropping the reference taken by g with put p: higher is likelier, LS_RP_NEVER forbids. */
typedef int64_t (*ls_rp_score_fn)(void *ctx, const ls_rp_event_t *g, const ls_rp_event_t *p);

/* Number of outermost frames a and b share (equal PCs, compared from the outer end). */
size_t ls_rp_common_outer(const uint64_t *a, size_t na, const uint64_t *b, size_t nb);

/* The agent's rule: how many outer frames the two stacks share (the deeper their common caller,
 * the likelier the pair). Tracker equality is handled by ls_rp_match before any score. */
int64_t ls_rp_score_structural(void *ctx, const ls_rp_event_t *g, const ls_rp_event_t *p);

/*
 * Pairs the n events of one object (time order). Writes at most `cap` pairs (cap >= the number
 * of puts suffices) and returns how many. open[i], when open is not NULL, receives the
 * references event i still holds afterwards (0 for everything but GET and CREATE); unmatched[i]
 * is set to 1 for a PUT that found nothing to drop (when unmatched is not NULL).
 * Work: O(n * references open at once) score calls.
 */
size_t ls_rp_match(const ls_rp_event_t *ev, size_t n, ls_rp_score_fn score, void *ctx,
                   ls_rp_pair_t *pairs, size_t cap, uint32_t *open, uint8_t *unmatched);

#endif
