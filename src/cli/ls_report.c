/*
 * ls_report.c - loss records from a snapshot's blocks, and their text and JSON renderings.
 *
 * Owns: the report, its loss records (each with a copy of its symbolized frames, whose strings
 * belong to the symbolizer) and the per-suppression hit counters.
 *
 * Building, in order:
 *  1. per distinct stack (indexed like snap->stacks), lazily: which suppression matches it;
 *  2. per block: suppressed ones go to the suppressed totals, the rest to their kind's totals;
 *  3. unsuppressed blocks sorted by key (kind << 32 | stack id) and folded into records;
 *  4. each unsuppressed indirectly lost block adds its size to the record holding its
 *     definitely lost leader (the block's `leader` index) unless that leader was suppressed:
 *     this is valgrind's "(16 direct, 32 indirect)" split;
 *  5. the shown kinds are kept and sorted biggest total first, then by kind, then stack id.
 */
#include "ls_report.h"

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
} loss_record_t;

struct ls_report {
    const ls_snapshot_t *snap;
    ls_report_opts_t opts;
    ls_totals_t totals;
    loss_record_t *recs; /* shown records, in display order */
    size_t nrecs;
    uint64_t *supp_blocks, *supp_bytes, *supp_stacks; /* per opts.supp index */
    size_t nsupp;
};

static const char *const kind_phrase[5] = {"live (not leak-checked)", "definitely lost",
                                           "indirectly lost", "possibly lost", "still reachable"};

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

static uint64_t rec_total(const loss_record_t *r)
{
    return r->bytes + r->ind_bytes;
}

/* Frames inside the agent itself (the wrapper it puts around main) are not the program's. */
static bool in_agent(const ls_snapshot_t *snap, uint64_t pc, uint32_t stack_id)
{
    const ls_snap_module_t *m = ls_snapshot_module_for(snap, pc, stack_id);
    if (!m || !m->path) return false;
    const char *base = strrchr(m->path, '/');
    base = base ? base + 1 : m->path;
    return strncmp(base, "libleakscope.so", 15) == 0;
}

/* The stack's frames, symbolized and expanded (copies; strings stay in the symbolizer).
 * Returns -1 when out of memory. */
static int expand_stack(const ls_snapshot_t *snap, ls_symbolizer_t *sym, uint32_t stack_id,
                        ls_sym_frame_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    const ls_snap_stack_t *st = stack_id ? ls_snapshot_stack(snap, stack_id) : NULL;
    if (!st || st->nframes == 0) return 0;
    size_t cap = st->nframes, n = 0;
    ls_sym_frame_t *v = malloc(cap * sizeof(*v));
    if (!v) return -1;
    for (uint32_t i = 0; i < st->nframes; i++) {
        uint64_t pc;
        memcpy(&pc, &st->pcs[i], sizeof(pc));
        if (in_agent(snap, pc, stack_id)) continue;
        const ls_sym_frame_t *fr = NULL;
        ls_sym_frame_t bare;
        size_t k = sym ? ls_symbolize_pc(sym, pc, stack_id, &fr) : 0;
        if (k == 0) { /* no symbolizer (or it ran out of memory): the bare address */
            memset(&bare, 0, sizeof(bare));
            bare.pc = pc;
            fr = &bare;
            k = 1;
        }
        if (n + k > cap) {
            while (n + k > cap) cap *= 2;
            ls_sym_frame_t *nv = realloc(v, cap * sizeof(*nv));
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        memcpy(v + n, fr, k * sizeof(*fr));
        n += k;
    }
    *out = v;
    *nout = n;
    return 0;
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
        set_err(err, errlen, "out of memory");
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
        unsigned kind = b->kind <= LS_KIND_REACHABLE ? b->kind : LS_KIND_UNCHECKED;
        long k = -1;
        const ls_snap_stack_t *st = b->stack ? ls_snapshot_stack(snap, b->stack) : NULL;
        if (st && r->nsupp) {
            size_t pos = (size_t)(st - snap->stacks);
            if (stack_supp[pos] == -2) {
                ls_sym_frame_t *fr;
                size_t nfr;
                if (expand_stack(snap, sym, b->stack, &fr, &nfr)) goto oom;
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
        if (b->leader == LS_NO_LEADER || b->leader >= snap->nblocks) continue;
        const ls_fmt_block_t *lead = &snap->blocks[b->leader];
        if (lead->kind != LS_KIND_DEFINITELY || suppressed[b->leader]) continue;
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
    for (size_t i = 0; i < r->nrecs; i++)
        if (expand_stack(snap, sym, r->recs[i].stack, &r->recs[i].frames, &r->recs[i].nframes))
            goto oom;

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
    set_err(err, errlen, "out of memory while building the report");
    return NULL;
}

void ls_report_totals(const ls_report_t *r, ls_totals_t *out)
{
    *out = r->totals;
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
    free(r);
}

/* ---- text ------------------------------------------------------------------------------ */

/* n with thousands separators, as valgrind prints sizes ("1,048,576"). */
static const char *commas(uint64_t n, char buf[32])
{
    char tmp[32];
    int len = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)n);
    char *o = buf;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0) *o++ = ',';
        *o++ = tmp[i];
    }
    *o = 0;
    return buf;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

static void text_frame(FILE *out, const ls_sym_frame_t *f, int first)
{
    fprintf(out, "    %s 0x%llX: %s", first ? "at" : "by", (unsigned long long)f->pc,
            f->function ? f->function : "???");
    if (f->file && f->line)
        fprintf(out, " (%s:%u)", base_name(f->file), f->line);
    else if (f->file)
        fprintf(out, " (%s)", base_name(f->file));
    else if (f->object && f->function)
        fprintf(out, " (in %s)", f->object);
    else if (f->object)
        fprintf(out, " (in %s+0x%llx)", f->object, (unsigned long long)f->offset);
    if (f->inlined) fputs(" (inlined)", out);
    if (f->status == LS_SYM_NO_FILE || f->status == LS_SYM_BUILD_ID)
        fprintf(out, " [%s]", ls_sym_status_name(f->status));
    fputc('\n', out);
}

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
                    commas(rec_total(rec), b1), commas(rec->bytes, b2), commas(rec->ind_bytes, b3),
                    commas(rec->blocks, b4), kind_phrase[rec->kind]);
        else
            fprintf(out, "%s bytes in %s blocks are %s", commas(rec->bytes, b1),
                    commas(rec->blocks, b2), kind_phrase[rec->kind]);
        fprintf(out, " in loss record %zu of %zu\n", i + 1, r->nrecs);
        if (rec->nframes == 0) fprintf(out, "    (no allocation stack recorded)\n");
        for (size_t j = 0; j < rec->nframes; j++) text_frame(out, &rec->frames[j], j == 0);
    }
    const ls_totals_t *t = &r->totals;
    fprintf(out, "\nLEAK SUMMARY:\n");
    fprintf(out, "   definitely lost: %s bytes in %s blocks\n",
            commas(t->bytes[LS_KIND_DEFINITELY], b1), commas(t->blocks[LS_KIND_DEFINITELY], b2));
    fprintf(out, "   indirectly lost: %s bytes in %s blocks\n",
            commas(t->bytes[LS_KIND_INDIRECTLY], b1), commas(t->blocks[LS_KIND_INDIRECTLY], b2));
    fprintf(out, "     possibly lost: %s bytes in %s blocks\n",
            commas(t->bytes[LS_KIND_POSSIBLY], b1), commas(t->blocks[LS_KIND_POSSIBLY], b2));
    fprintf(out, "   still reachable: %s bytes in %s blocks\n",
            commas(t->bytes[LS_KIND_REACHABLE], b1), commas(t->blocks[LS_KIND_REACHABLE], b2));
    fprintf(out, "        suppressed: %s bytes in %s blocks\n", commas(t->suppressed_bytes, b1),
            commas(t->suppressed_blocks, b2));
    if (t->blocks[LS_KIND_UNCHECKED])
        fprintf(out, "       not checked: %s bytes in %s blocks\n",
                commas(t->bytes[LS_KIND_UNCHECKED], b1), commas(t->blocks[LS_KIND_UNCHECKED], b2));
    if (t->blocks[LS_KIND_REACHABLE] && !r->opts.show_reachable)
        fprintf(out, "Reachable blocks are not shown. To see them, add --show-reachable.\n");
    if (r->nsupp) fputc('\n', out);
    for (size_t k = 0; k < r->nsupp; k++) {
        if (!r->supp_blocks[k]) continue;
        const ls_suppression_t *x = &r->opts.supp->v[k];
        fprintf(out, "used_suppression: %6llu %s:%s %s:%u suppressed: %s bytes in %s blocks\n",
                (unsigned long long)r->supp_stacks[k], x->type, x->pattern, x->file, x->line,
                commas(r->supp_bytes[k], b1), commas(r->supp_blocks[k], b2));
    }
}

/* ---- JSON ------------------------------------------------------------------------------ */

/* cJSON's Add* helpers return NULL on failure; one flag collects them all. */
typedef struct jctx {
    int oom;
} jctx_t;

static void jnum(jctx_t *c, cJSON *o, const char *k, double v)
{
    if (!cJSON_AddNumberToObject(o, k, v)) c->oom = 1;
}

static void jstr(jctx_t *c, cJSON *o, const char *k, const char *v)
{
    if (!(v ? cJSON_AddStringToObject(o, k, v) : cJSON_AddNullToObject(o, k))) c->oom = 1;
}

static void jhex(jctx_t *c, cJSON *o, const char *k, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
    jstr(c, o, k, buf);
}

static cJSON *jobj(jctx_t *c, cJSON *parent, const char *k)
{
    cJSON *o = cJSON_AddObjectToObject(parent, k);
    if (!o) c->oom = 1;
    return o;
}

static void jsize(jctx_t *c, cJSON *parent, const char *k, uint64_t bytes, uint64_t blocks)
{
    cJSON *o = jobj(c, parent, k);
    if (!o) return;
    jnum(c, o, "bytes", (double)bytes);
    jnum(c, o, "blocks", (double)blocks);
}

static cJSON *json_frame(jctx_t *c, const ls_sym_frame_t *f)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        c->oom = 1;
        return NULL;
    }
    jhex(c, o, "pc", f->pc);
    if (f->function) jstr(c, o, "function", f->function);
    if (f->file) {
        jstr(c, o, "file", base_name(f->file));
        const char *slash = strrchr(f->file, '/');
        if (slash) {
            size_t n = slash == f->file ? 1 : (size_t)(slash - f->file);
            char *dir = strndup(f->file, n);
            if (!dir)
                c->oom = 1;
            else
                jstr(c, o, "dir", dir);
            free(dir);
        }
        if (f->line) jnum(c, o, "line", f->line);
        if (f->column) jnum(c, o, "column", f->column);
    }
    if (f->object) {
        jstr(c, o, "object", f->object);
        jhex(c, o, "offset", f->offset);
    }
    if (f->inlined && !cJSON_AddTrueToObject(o, "inlined")) c->oom = 1;
    const char *why = f->status == LS_SYM_OK ? NULL : ls_sym_status_name(f->status);
    if (why) jstr(c, o, "unresolved", why);
    return o;
}

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

int ls_report_write_json(const ls_report_t *r, FILE *out)
{
    const ls_snapshot_t *s = r->snap;
    jctx_t c = {0};
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    jnum(&c, root, "version", 1);
    jstr(&c, root, "program", r->opts.program ? r->opts.program : s->exe);
    jnum(&c, root, "pid", (double)s->pid);
    if (r->opts.have_exit_status)
        jnum(&c, root, "exit_status", r->opts.exit_status);
    else if (s->reason == LS_REASON_EXIT)
        jnum(&c, root, "exit_status", (double)s->exit_status);
    else
        jstr(&c, root, "exit_status", NULL);
    jstr(&c, root, "reason", reason_name(s->reason));
    if (s->reason == LS_REASON_SIGNAL) jnum(&c, root, "signal", (double)s->signal);
    if (!cJSON_AddBoolToObject(root, "leak_checked", s->leak_checked != 0)) c.oom = 1;

    const ls_totals_t *t = &r->totals;
    cJSON *sum = jobj(&c, root, "summary");
    if (sum) {
        for (unsigned k = LS_KIND_DEFINITELY; k <= LS_KIND_REACHABLE; k++)
            jsize(&c, sum, ls_kind_name(k), t->bytes[k], t->blocks[k]);
        jsize(&c, sum, "suppressed", t->suppressed_bytes, t->suppressed_blocks);
        jsize(&c, sum, "unchecked", t->bytes[LS_KIND_UNCHECKED], t->blocks[LS_KIND_UNCHECKED]);
    }

    cJSON *leaks = cJSON_AddArrayToObject(root, "leaks");
    if (!leaks) c.oom = 1;
    for (size_t i = 0; leaks && i < r->nrecs && !c.oom; i++) {
        const loss_record_t *rec = &r->recs[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(leaks, o)) {
            cJSON_Delete(o);
            c.oom = 1;
            break;
        }
        jstr(&c, o, "kind", ls_kind_name(rec->kind));
        jnum(&c, o, "bytes", (double)rec->bytes);
        jnum(&c, o, "blocks", (double)rec->blocks);
        jnum(&c, o, "loss_record", (double)(i + 1));
        jnum(&c, o, "stack_id", rec->stack);
        jnum(&c, o, "total_bytes", (double)rec_total(rec));
        if (rec->kind == LS_KIND_DEFINITELY) {
            jnum(&c, o, "direct_bytes", (double)rec->bytes);
            jnum(&c, o, "indirect_bytes", (double)rec->ind_bytes);
            jnum(&c, o, "indirect_blocks", (double)rec->ind_blocks);
        }
        cJSON *st = cJSON_AddArrayToObject(o, "stack");
        if (!st) c.oom = 1;
        for (size_t j = 0; st && j < rec->nframes; j++) {
            cJSON *f = json_frame(&c, &rec->frames[j]);
            if (f && !cJSON_AddItemToArray(st, f)) {
                cJSON_Delete(f);
                c.oom = 1;
            }
        }
    }

    cJSON *sup = cJSON_AddArrayToObject(root, "suppressions");
    if (!sup) c.oom = 1;
    for (size_t k = 0; sup && k < r->nsupp; k++) {
        const ls_suppression_t *x = &r->opts.supp->v[k];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(sup, o)) {
            cJSON_Delete(o);
            c.oom = 1;
            break;
        }
        jstr(&c, o, "type", x->type);
        jstr(&c, o, "pattern", x->pattern);
        jstr(&c, o, "file", x->file);
        jnum(&c, o, "line", x->line);
        jnum(&c, o, "blocks", (double)r->supp_blocks[k]);
        jnum(&c, o, "bytes", (double)r->supp_bytes[k]);
    }

    char *text = c.oom ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return -1;
    int rc = fputs(text, out) < 0 || fputc('\n', out) == EOF ? -1 : 0;
    cJSON_free(text);
    return rc;
}
