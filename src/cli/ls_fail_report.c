/*
 * ls_fail_report.c - the injected allocation failures of a snapshot, grouped by rule (in META
 * fail's order) and stack (most failures first, then the earliest), symbolized once at build.
 */
#include "ls_fail_report.h"
#include "ls_agg.h"
#include "ls_fail_spec.h"

#include <stdlib.h>
#include <string.h>

typedef struct fault_stack {
    uint32_t stack;
    uint64_t count, first_ns;
    ls_sym_frame_t *frames;
    size_t nframes;
} fault_stack_t;

typedef struct fault_rule {
    char *spec;
    uint64_t injected;
    fault_stack_t *stacks;
    size_t nstacks;
} fault_rule_t;

struct ls_faults {
    uint64_t calls, injected, unrecorded;
    fault_rule_t *rules;
    size_t nrules;
};

static int cmp_stack(const void *a, const void *b)
{
    const fault_stack_t *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    if (x->first_ns != y->first_ns) return x->first_ns < y->first_ns ? -1 : 1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

int ls_faults_build(const ls_snapshot_t *snap, ls_symbolizer_t *sym, ls_faults_t **out)
{
    *out = NULL;
    if (!snap->fail) return 0;
    ls_faults_t *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    f->calls = snap->stats[LS_STAT_FAIL_CALLS];
    f->injected = snap->stats[LS_STAT_FAIL_INJECTED];
    f->unrecorded = snap->stats[LS_STAT_FAIL_UNRECORDED];
    char **specs;
    long n = ls_fail_rules_parse(snap->fail, &specs);
    if (n < 0) goto oom;
    f->nrules = (size_t)n;
    f->rules = calloc(f->nrules + 1, sizeof(*f->rules));
    if (!f->rules) {
        ls_fail_rules_free(specs, (size_t)n);
        goto oom;
    }
    for (size_t i = 0; i < f->nrules; i++) f->rules[i].spec = specs[i]; /* taken over */
    free(specs);
    /* the reader checked rule < nrules for every record */
    for (size_t i = 0; i < snap->nfaults; i++) {
        const ls_fmt_fault_t *r = &snap->faults[i];
        if (r->rule >= f->nrules) continue;
        fault_rule_t *fr = &f->rules[r->rule];
        fault_stack_t *ns = realloc(fr->stacks, (fr->nstacks + 1) * sizeof(*ns));
        if (!ns) goto oom;
        fr->stacks = ns;
        ns[fr->nstacks++] = (fault_stack_t){r->stack, r->count, r->first_ns, NULL, 0};
        fr->injected += r->count;
    }
    for (size_t i = 0; i < f->nrules; i++) {
        fault_rule_t *fr = &f->rules[i];
        if (fr->nstacks > 1) qsort(fr->stacks, fr->nstacks, sizeof(*fr->stacks), cmp_stack);
        for (size_t k = 0; k < fr->nstacks; k++)
            if (ls_stack_expand(snap, sym, fr->stacks[k].stack, &fr->stacks[k].frames,
                                &fr->stacks[k].nframes))
                goto oom;
    }
    *out = f;
    return 0;
oom:
    ls_faults_free(f);
    return -1;
}

void ls_faults_free(ls_faults_t *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->nrules; i++) {
        for (size_t k = 0; k < f->rules[i].nstacks; k++) free(f->rules[i].stacks[k].frames);
        free(f->rules[i].stacks);
        free(f->rules[i].spec);
    }
    free(f->rules);
    free(f);
}

uint64_t ls_faults_injected(const ls_faults_t *f)
{
    return f ? f->injected : 0;
}

static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

void ls_faults_write_text(const ls_faults_t *f, FILE *out)
{
    if (!f) return;
    char b1[32], b2[32];
    fprintf(out, "\ninjected %s allocation failure%s (%s matching call%s)\n",
            ls_commas(f->injected, b1), plural(f->injected), ls_commas(f->calls, b2),
            plural(f->calls));
    for (size_t i = 0; i < f->nrules; i++) {
        const fault_rule_t *r = &f->rules[i];
        if (r->injected)
            fprintf(out, "  rule %zu: %s: %s failure%s\n", i + 1, r->spec,
                    ls_commas(r->injected, b1), plural(r->injected));
        else
            fprintf(out, "  rule %zu: %s: no failure injected\n", i + 1, r->spec);
        for (size_t k = 0; k < r->nstacks; k++) {
            const fault_stack_t *s = &r->stacks[k];
            fprintf(out, "    %s failure%s at:\n", ls_commas(s->count, b1), plural(s->count));
            if (!s->nframes) fprintf(out, "      (no stack recorded)\n");
            for (size_t j = 0; j < s->nframes; j++)
                ls_text_frame_in(out, &s->frames[j], j == 0, 6, true);
        }
    }
    if (f->unrecorded)
        fprintf(out, "  %s failure%s not listed: the agent's table of failure stacks was full\n",
                ls_commas(f->unrecorded, b1), plural(f->unrecorded));
}

cJSON *ls_faults_json(const ls_faults_t *f, ls_jctx_t *c)
{
    cJSON *o = f ? cJSON_CreateObject() : cJSON_CreateNull();
    if (!o) {
        c->oom = 1;
        return NULL;
    }
    if (!f) return o;
    ls_jnum(c, o, "calls", (double)f->calls);
    ls_jnum(c, o, "injected", (double)f->injected);
    ls_jnum(c, o, "unrecorded", (double)f->unrecorded);
    cJSON *rules = ls_jarr(c, o, "rules");
    for (size_t i = 0; rules && i < f->nrules; i++) {
        const fault_rule_t *r = &f->rules[i];
        cJSON *jr = ls_jpush_obj(c, rules);
        if (!jr) break;
        ls_jnum(c, jr, "rule", (double)(i + 1));
        ls_jstr(c, jr, "spec", r->spec);
        ls_jnum(c, jr, "injected", (double)r->injected);
        cJSON *st = ls_jarr(c, jr, "stacks");
        for (size_t k = 0; st && k < r->nstacks; k++) {
            const fault_stack_t *s = &r->stacks[k];
            cJSON *js = ls_jpush_obj(c, st);
            if (!js) break;
            ls_jnum(c, js, "count", (double)s->count);
            ls_jnum(c, js, "first_ns", (double)s->first_ns);
            ls_jnum(c, js, "stack_id", s->stack);
            ls_json_frames(c, js, "stack", s->frames, s->nframes);
        }
    }
    return o;
}
