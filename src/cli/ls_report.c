/*
 * ls_report.c - loss records from a snapshot's blocks, and their text and JSON renderings.
 *
 * Owns: the report, its loss records (each with a copy of its symbolized frames, whose strings
 * belong to the symbolizer) and the per-suppression hit counters.
 *
 * Building, in order (blocks outside opts->window are skipped first, everywhere):
 *  1. per distinct stack (indexed like snap->stacks), lazily: which suppression matches it;
 *  2. per block: suppressed ones go to the suppressed totals, the rest to their kind's totals;
 *  3. unsuppressed blocks sorted by key (kind << 32 | stack id) and folded into records;
 *  4. each unsuppressed indirectly lost block adds its size to the record holding its
 *     definitely lost leader (the block's `leader` index) unless that leader was suppressed:
 *     this is valgrind's "(16 direct, 32 indirect)" split;
 *  5. the shown kinds are kept and sorted biggest total first, then by kind, then stack id;
 *     each gets its expanded frames and its site (ls_agg.h).
 */
#include "ls_report.h"
#include "ls_fail_report.h"
#include "ls_output.h"
#include "ls_refs_report.h"

#include <cJSON.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef struct loss_record {
    unsigned kind;
    uint32_t stack;
    uint64_t bytes, blocks;         /* the record's own blocks */
    uint64_t ind_bytes, ind_blocks; /* definitely lost: indirectly lost blocks they lead */
    ls_sym_frame_t *frames;         /* innermost first, inlined frames expanded */
    size_t nframes;
    size_t site; /* index of the site frame in frames */
} loss_record_t;

struct ls_report {
    const ls_snapshot_t *snap;
    ls_report_opts_t opts;
    ls_totals_t totals;
    uint64_t win_bytes, win_blocks; /* blocks in the window, suppressed ones included */
    loss_record_t *recs;            /* shown records, in display order */
    size_t nrecs;
    uint64_t *supp_blocks, *supp_bytes, *supp_stacks; /* per opts.supp index */
    size_t nsupp;
    ls_refs_t *refs;     /* reference counts (empty without REF_* chunks) */
    ls_faults_t *faults; /* injected allocation failures; NULL without fault injection */
};

static const char *const kind_phrase[5] = {"live (not leak-checked)", "definitely lost",
                                           "indirectly lost", "possibly lost", "still reachable"};

static uint64_t rec_total(const loss_record_t *r)
{
    return r->bytes + r->ind_bytes;
}

typedef struct keyed {
    uint64_t key; /* kind << 32 | stack id */
    size_t block;
} keyed_t;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed_t *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->block < y->block ? -1 : x->block > y->block;
}

static int cmp_shown(const void *a, const void *b)
{
    const loss_record_t *x = a, *y = b;
    uint64_t tx = rec_total(x), ty = rec_total(y);
    if (tx != ty) return tx > ty ? -1 : 1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

/* Record with the given key in recs (sorted by key), or NULL. */
static loss_record_t *find_record(loss_record_t *recs, size_t n, unsigned kind, uint32_t stack)
{
    uint64_t key = (uint64_t)kind << 32 | stack;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t k = (uint64_t)recs[mid].kind << 32 | recs[mid].stack;
        if (k < key)
            lo = mid + 1;
        else if (k > key)
            hi = mid;
        else
            return &recs[mid];
    }
    return NULL;
}

ls_report_t *ls_report_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym,
                             const ls_report_opts_t *opts, char *err, size_t errlen)
{
    ls_report_t *r = calloc(1, sizeof(*r));
    if (!r) {
        ls_set_err(err, errlen, "out of memory");
        return NULL;
    }
    r->snap = snap;
    if (opts) r->opts = *opts;
    const ls_suppressions_t *supp = r->opts.supp;
    r->nsupp = supp ? supp->n : 0;
    int32_t *stack_supp = NULL; /* per snap->stacks index: -2 unknown, -1 none, else index */
    uint8_t *suppressed = NULL; /* per block */
    keyed_t *keys = NULL;
    loss_record_t *all = NULL;
    size_t nall = 0;

    r->supp_blocks = calloc(r->nsupp + 1, sizeof(uint64_t));
    r->supp_bytes = calloc(r->nsupp + 1, sizeof(uint64_t));
    r->supp_stacks = calloc(r->nsupp + 1, sizeof(uint64_t));
    stack_supp = malloc((snap->nstacks + 1) * sizeof(*stack_supp));
    suppressed = calloc(snap->nblocks + 1, 1);
    keys = malloc((snap->nblocks + 1) * sizeof(*keys));
    if (!r->supp_blocks || !r->supp_bytes || !r->supp_stacks || !stack_supp || !suppressed || !keys)
        goto oom;
    for (size_t i = 0; i < snap->nstacks; i++) stack_supp[i] = -2;

    /* 1-2: suppression and totals */
    size_t nkeys = 0;
    for (size_t i = 0; i < snap->nblocks; i++) {
        const ls_fmt_block_t *b = &snap->blocks[i];
        if (!ls_block_passes(b, &r->opts.window)) continue;
        r->win_bytes += b->size;
        r->win_blocks++;
        unsigned kind = b->kind <= LS_KIND_REACHABLE ? b->kind : LS_KIND_UNCHECKED;
        long k = -1;
        /* the stack lookup only matters to suppressions (a binary search per block) */
        const ls_snap_stack_t *st = b->stack && r->nsupp ? ls_snapshot_stack(snap, b->stack) : NULL;
        if (st) {
            size_t pos = (size_t)(st - snap->stacks);
            if (stack_supp[pos] == -2) {
                ls_sym_frame_t *fr;
                size_t nfr;
                if (ls_stack_expand(snap, sym, b->stack, &fr, &nfr)) goto oom;
                stack_supp[pos] = (int32_t)ls_suppressions_match(supp, fr, nfr);
                free(fr);
                if (stack_supp[pos] >= 0) r->supp_stacks[stack_supp[pos]]++;
            }
            k = stack_supp[pos];
        }
        if (k >= 0) {
            suppressed[i] = 1;
            r->supp_blocks[k]++;
            r->supp_bytes[k] += b->size;
            r->totals.suppressed_blocks++;
            r->totals.suppressed_bytes += b->size;
            continue;
        }
        r->totals.blocks[kind]++;
        r->totals.bytes[kind] += b->size;
        keys[nkeys].key = (uint64_t)kind << 32 | b->stack;
        keys[nkeys].block = i;
        nkeys++;
    }

    /* 3: fold into records, in key order */
    qsort(keys, nkeys, sizeof(*keys), cmp_keyed);
    all = calloc(nkeys + 1, sizeof(*all));
    if (!all) goto oom;
    for (size_t i = 0; i < nkeys; i++) {
        if (!nall || ((uint64_t)all[nall - 1].kind << 32 | all[nall - 1].stack) != keys[i].key) {
            all[nall].kind = (unsigned)(keys[i].key >> 32);
            all[nall].stack = (uint32_t)keys[i].key;
            nall++;
        }
        all[nall - 1].blocks++;
        all[nall - 1].bytes += snap->blocks[keys[i].block].size;
    }

    /* 4: direct/indirect split */
    for (size_t i = 0; i < snap->nblocks; i++) {
        const ls_fmt_block_t *b = &snap->blocks[i];
        if (b->kind != LS_KIND_INDIRECTLY || suppressed[i]) continue;
        if (!ls_block_passes(b, &r->opts.window)) continue;
        if (b->leader == LS_NO_LEADER || b->leader >= snap->nblocks) continue;
        const ls_fmt_block_t *lead = &snap->blocks[b->leader];
        if (lead->kind != LS_KIND_DEFINITELY || suppressed[b->leader]) continue;
        if (!ls_block_passes(lead, &r->opts.window)) continue; /* its record is not in view */
        loss_record_t *lr = find_record(all, nall, LS_KIND_DEFINITELY, lead->stack);
        if (!lr) continue; /* cannot happen: the leader was folded into one */
        lr->ind_blocks++;
        lr->ind_bytes += b->size;
    }

    /* 5: keep the shown kinds, biggest first */
    r->recs = calloc(nall + 1, sizeof(*r->recs));
    if (!r->recs) goto oom;
    for (size_t i = 0; i < nall; i++)
        if (all[i].kind != LS_KIND_REACHABLE || r->opts.show_reachable)
            r->recs[r->nrecs++] = all[i];
    qsort(r->recs, r->nrecs, sizeof(*r->recs), cmp_shown);
    for (size_t i = 0; i < r->nrecs; i++) {
        loss_record_t *rec = &r->recs[i];
        if (ls_stack_expand(snap, sym, rec->stack, &rec->frames, &rec->nframes)) goto oom;
        rec->site = ls_site_index(rec->frames, rec->nframes, r->opts.site_rules);
    }
    r->refs = ls_refs_build(snap, sym, r->opts.site_rules, err, errlen);
    if (!r->refs) goto oom;
    if (ls_faults_build(snap, sym, &r->faults)) goto oom;

    free(stack_supp);
    free(suppressed);
    free(keys);
    free(all);
    return r;
oom:
    free(stack_supp);
    free(suppressed);
    free(keys);
    free(all);
    ls_report_free(r);
    ls_set_err(err, errlen, "out of memory while building the report");
    return NULL;
}

void ls_report_totals(const ls_report_t *r, ls_totals_t *out)
{
    *out = r->totals;
}

const ls_refs_t *ls_report_refs(const ls_report_t *r)
{
    return r->refs;
}

uint64_t ls_report_refs_problems(const ls_report_t *r)
{
    return r->refs ? ls_refs_leaked_objects(r->refs) + ls_refs_errors(r->refs) : 0;
}

size_t ls_report_nrecords(const ls_report_t *r)
{
    return r->nrecs;
}

void ls_report_supp_hits(const ls_report_t *r, size_t k, uint64_t *blocks, uint64_t *bytes)
{
    *blocks = k < r->nsupp ? r->supp_blocks[k] : 0;
    *bytes = k < r->nsupp ? r->supp_bytes[k] : 0;
}

void ls_report_free(ls_report_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nrecs; i++) free(r->recs[i].frames);
    free(r->recs);
    free(r->supp_blocks);
    free(r->supp_bytes);
    free(r->supp_stacks);
    ls_refs_free(r->refs);
    ls_faults_free(r->faults);
    free(r);
}

/* ---- text ------------------------------------------------------------------------------ */

static void text_header(const ls_report_t *r, FILE *out)
{
    const ls_snapshot_t *s = r->snap;
    const char *prog = r->opts.program ? r->opts.program : s->exe;
    fprintf(out, "leakscope report - version 1\n");
    fprintf(out, "program: %s (pid %llu)", prog && prog[0] ? prog : "(unknown)",
            (unsigned long long)s->pid);
    if (r->opts.have_exit_status)
        fprintf(out, ", exited with status %d", r->opts.exit_status);
    else if (s->reason == LS_REASON_EXIT)
        fprintf(out, ", exited with status %lld", (long long)s->exit_status);
    else if (s->reason == LS_REASON_SIGNAL) {
        const char *d = s->signal < 65 ? strsignal((int)s->signal) : NULL;
        fprintf(out, ", killed by signal %llu%s%s%s", (unsigned long long)s->signal, d ? " (" : "",
                d ? d : "", d ? ")" : "");
    } else if (s->reason == LS_REASON_LIVE)
        fprintf(out, ", live snapshot");
    fputc('\n', out);
    if (!s->leak_checked)
        fprintf(out, "note: this snapshot has no leak check; blocks are listed as live\n");
    const ls_block_filter_t *w = &r->opts.window;
    if (w->has_after || w->has_before) {
        char b1[32], b2[32];
        const char *a = r->opts.born_after_desc, *b = r->opts.born_before_desc;
        if (w->has_after && w->has_before)
            fprintf(out, "allocated between %s and %s", a, b);
        else if (w->has_after)
            fprintf(out, "allocated since %s", a);
        else
            fprintf(out, "allocated before %s", b);
        fprintf(out, ", still alive at %.2f s: %s bytes in %s blocks\n", (double)s->snap_ns / 1e9,
                ls_commas(r->win_bytes, b1), ls_commas(r->win_blocks, b2));
    }
}

void ls_report_write_text(const ls_report_t *r, FILE *out)
{
    char b1[32], b2[32], b3[32], b4[32];
    text_header(r, out);
    for (size_t i = 0; i < r->nrecs; i++) {
        const loss_record_t *rec = &r->recs[i];
        fputc('\n', out);
        if (rec->kind == LS_KIND_DEFINITELY && rec->ind_bytes)
            fprintf(out, "%s (%s direct, %s indirect) bytes in %s blocks are %s",
                    ls_commas(rec_total(rec), b1), ls_commas(rec->bytes, b2),
                    ls_commas(rec->ind_bytes, b3), ls_commas(rec->blocks, b4),
                    kind_phrase[rec->kind]);
        else
            fprintf(out, "%s bytes in %s blocks are %s", ls_commas(rec->bytes, b1),
                    ls_commas(rec->blocks, b2), kind_phrase[rec->kind]);
        fprintf(out, " in loss record %zu of %zu\n", i + 1, r->nrecs);
        if (rec->nframes == 0) fprintf(out, "    (no allocation stack recorded)\n");
        for (size_t j = 0; j < rec->nframes; j++) ls_text_frame(out, &rec->frames[j], j == 0);
    }
    ls_refs_write_text(r->refs, out);
    const ls_totals_t *t = &r->totals;
    fprintf(out, "\nLEAK SUMMARY:\n");
    fprintf(out, "   definitely lost: %s bytes in %s blocks\n",
            ls_commas(t->bytes[LS_KIND_DEFINITELY], b1),
            ls_commas(t->blocks[LS_KIND_DEFINITELY], b2));
    fprintf(out, "   indirectly lost: %s bytes in %s blocks\n",
            ls_commas(t->bytes[LS_KIND_INDIRECTLY], b1),
            ls_commas(t->blocks[LS_KIND_INDIRECTLY], b2));
    fprintf(out, "     possibly lost: %s bytes in %s blocks\n",
            ls_commas(t->bytes[LS_KIND_POSSIBLY], b1), ls_commas(t->blocks[LS_KIND_POSSIBLY], b2));
    fprintf(out, "   still reachable: %s bytes in %s blocks\n",
            ls_commas(t->bytes[LS_KIND_REACHABLE], b1),
            ls_commas(t->blocks[LS_KIND_REACHABLE], b2));
    fprintf(out, "        suppressed: %s bytes in %s blocks\n", ls_commas(t->suppressed_bytes, b1),
            ls_commas(t->suppressed_blocks, b2));
    if (t->blocks[LS_KIND_UNCHECKED])
        fprintf(out, "       not checked: %s bytes in %s blocks\n",
                ls_commas(t->bytes[LS_KIND_UNCHECKED], b1),
                ls_commas(t->blocks[LS_KIND_UNCHECKED], b2));
    if (t->blocks[LS_KIND_REACHABLE] && !r->opts.show_reachable)
        fprintf(out, "Reachable blocks are not shown. To see them, add --show-reachable.\n");
    if (r->nsupp) fputc('\n', out);
    for (size_t k = 0; k < r->nsupp; k++) {
        if (!r->supp_blocks[k]) continue;
        const ls_suppression_t *x = &r->opts.supp->v[k];
        fprintf(out, "used_suppression: %6llu %s:%s %s:%u suppressed: %s bytes in %s blocks\n",
                (unsigned long long)r->supp_stacks[k], x->type, x->pattern, x->file, x->line,
                ls_commas(r->supp_bytes[k], b1), ls_commas(r->supp_blocks[k], b2));
    }
    ls_refs_write_summary(r->refs, out);
    ls_faults_write_text(r->faults, out);
}

/* ---- JSON ------------------------------------------------------------------------------ */

static const char *reason_name(uint64_t reason)
{
    switch (reason) {
    case LS_REASON_EXIT:
        return "exit";
    case LS_REASON_SIGNAL:
        return "signal";
    case LS_REASON_LIVE:
        return "live";
    default:
        return "unknown";
    }
}

static void json_bound(ls_jctx_t *c, cJSON *w, const char *k_ns, const char *k_desc, bool has,
                       uint64_t ns, const char *desc)
{
    if (has) {
        ls_jnum(c, w, k_ns, (double)ns);
        ls_jstr(c, w, k_desc, desc ? desc : "");
    } else {
        ls_jnull(c, w, k_ns);
        ls_jnull(c, w, k_desc);
    }
}

int ls_report_write_json(const ls_report_t *r, FILE *out)
{
    const ls_snapshot_t *s = r->snap;
    ls_jctx_t c = {0};
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    ls_jnum(&c, root, "version", 1);
    ls_jstr(&c, root, "program", r->opts.program ? r->opts.program : s->exe);
    ls_jnum(&c, root, "pid", (double)s->pid);
    if (r->opts.have_exit_status)
        ls_jnum(&c, root, "exit_status", r->opts.exit_status);
    else if (s->reason == LS_REASON_EXIT)
        ls_jnum(&c, root, "exit_status", (double)s->exit_status);
    else
        ls_jnull(&c, root, "exit_status");
    ls_jstr(&c, root, "reason", reason_name(s->reason));
    if (s->reason == LS_REASON_SIGNAL) ls_jnum(&c, root, "signal", (double)s->signal);
    ls_jbool(&c, root, "leak_checked", s->leak_checked != 0);

    const ls_totals_t *t = &r->totals;
    cJSON *sum = ls_jobj(&c, root, "summary");
    if (sum) {
        for (unsigned k = LS_KIND_DEFINITELY; k <= LS_KIND_REACHABLE; k++)
            ls_jsize(&c, sum, ls_kind_name(k), t->bytes[k], t->blocks[k]);
        ls_jsize(&c, sum, "suppressed", t->suppressed_bytes, t->suppressed_blocks);
        ls_jsize(&c, sum, "unchecked", t->bytes[LS_KIND_UNCHECKED], t->blocks[LS_KIND_UNCHECKED]);
    }

    const ls_block_filter_t *win = &r->opts.window;
    cJSON *w = ls_jobj(&c, root, "window");
    if (w) {
        json_bound(&c, w, "born_after_ns", "born_after", win->has_after, win->born_after_ns,
                   r->opts.born_after_desc);
        json_bound(&c, w, "born_before_ns", "born_before", win->has_before, win->born_before_ns,
                   r->opts.born_before_desc);
        ls_jnum(&c, w, "bytes", (double)r->win_bytes);
        ls_jnum(&c, w, "blocks", (double)r->win_blocks);
    }
    cJSON *marks = ls_jarr(&c, root, "markers");
    for (size_t i = 0; marks && i < s->nmarkers; i++) {
        cJSON *m = ls_jpush_obj(&c, marks);
        if (!m) break;
        ls_jnum(&c, m, "seq", s->markers[i].seq);
        ls_jstr(&c, m, "label", s->markers[i].label);
        ls_jnum(&c, m, "time_ns", (double)s->markers[i].time_ns);
    }

    ls_jstream_t js;
    ls_jstream_begin(&js, &c, out, root, "leaks");
    /* Records by hand around cached frame texts: the same JSON as cJSON would print, at a
     * fraction of the cost for a live snapshot's 100k records. */
    ls_jframes_t *fc = ls_jframes_new();
    if (!fc) c.oom = 1;
    for (size_t i = 0; fc && i < r->nrecs && !c.oom; i++) {
        const loss_record_t *rec = &r->recs[i];
        FILE *f = ls_jstream_raw_begin(&js);
        fprintf(f,
                "{\"kind\":\"%s\",\"bytes\":%llu,\"blocks\":%llu,\"loss_record\":%zu,"
                "\"stack_id\":%u,\"total_bytes\":%llu",
                ls_kind_name(rec->kind), (unsigned long long)rec->bytes,
                (unsigned long long)rec->blocks, i + 1, rec->stack,
                (unsigned long long)rec_total(rec));
        if (rec->kind == LS_KIND_DEFINITELY)
            fprintf(f, ",\"direct_bytes\":%llu,\"indirect_bytes\":%llu,\"indirect_blocks\":%llu",
                    (unsigned long long)rec->bytes, (unsigned long long)rec->ind_bytes,
                    (unsigned long long)rec->ind_blocks);
        fputs(",\"stack\":", f);
        ls_jstream_frames(&js, fc, rec->frames, rec->nframes);
        fputs(",\"site\":", f);
        ls_jstream_site(&js, fc, rec->nframes ? &rec->frames[rec->site] : NULL);
        fputc('}', f);
        ls_jstream_raw_end(&js);
    }
    ls_jframes_free(fc);

    cJSON *tail = cJSON_CreateObject();
    if (tail) ls_jput(&c, tail, "refs", ls_refs_json(r->refs, &c));
    if (tail) ls_jput(&c, tail, "faults", ls_faults_json(r->faults, &c));
    cJSON *sup = tail ? ls_jarr(&c, tail, "suppressions") : NULL;
    if (!tail) c.oom = 1;
    for (size_t k = 0; sup && k < r->nsupp; k++) {
        const ls_suppression_t *x = &r->opts.supp->v[k];
        cJSON *o = ls_jpush_obj(&c, sup);
        if (!o) break;
        ls_jstr(&c, o, "type", x->type);
        ls_jstr(&c, o, "pattern", x->pattern);
        ls_jstr(&c, o, "file", x->file);
        ls_jnum(&c, o, "line", x->line);
        ls_jnum(&c, o, "blocks", (double)r->supp_blocks[k]);
        ls_jnum(&c, o, "bytes", (double)r->supp_bytes[k]);
    }
    return ls_jstream_end(&js, tail);
}
