/*
 * ls_suppress.c - parsing and matching of LeakSanitizer-style suppression files.
 *
 * Owns: ls_suppressions_t, a growable array of {type, pattern, file, line, glob}, all strings
 * malloc'd. Hit counts are not kept here (the set is shared read-only by reports): ls_report
 * counts blocks and bytes per suppression index.
 *
 * The matching rule is LSan's (sanitizer_common's TemplateMatch), chosen so that suppression
 * files written for LSan behave the same here:
 *   - `*` matches any run of characters, '/' included; nothing else is special, so C++ names
 *     such as `std::vector<int>::operator[](unsigned long)` can be written as they print;
 *   - without anchors the pattern may match anywhere in the name (a substring match);
 *   - a leading `^` pins it to the start of the name, a trailing `$` to the end.
 * It is implemented with fnmatch(3) on a glob built once per line: `^`/`$` removed or replaced
 * by a `*` at that end, and fnmatch's other metacharacters (`?`, `[`, `\`) escaped. This
 * contains the simpler rule "whole-name glob, or plain substring for a pattern without `*`":
 * anything that matches under that rule matches under this one.
 */
#include "ls_suppress.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

ls_suppressions_t *ls_suppressions_new(void)
{
    return calloc(1, sizeof(ls_suppressions_t));
}

static void supp_clear(ls_suppression_t *x)
{
    free(x->type);
    free(x->pattern);
    free(x->file);
    free(x->glob);
}

void ls_suppressions_free(ls_suppressions_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) supp_clear(&s->v[i]);
    free(s->v);
    free(s);
}

/* The fnmatch glob for an LSan pattern (see the file comment); NULL when out of memory. */
static char *pattern_to_glob(const char *pat)
{
    size_t n = strlen(pat);
    int anchor_start = n > 0 && pat[0] == '^';
    if (anchor_start) pat++, n--;
    int anchor_end = n > 0 && pat[n - 1] == '$';
    if (anchor_end) n--;
    char *g = malloc(2 * n + 3), *o = g;
    if (!g) return NULL;
    if (!anchor_start) *o++ = '*';
    for (size_t i = 0; i < n; i++) {
        if (pat[i] == '?' || pat[i] == '[' || pat[i] == '\\') *o++ = '\\';
        *o++ = pat[i];
    }
    if (!anchor_end) *o++ = '*';
    *o = 0;
    return g;
}

int ls_suppress_pattern_match(const char *pattern, const char *name)
{
    if (!name) return 0;
    char *g = pattern_to_glob(pattern);
    int r = g && fnmatch(g, name, 0) == 0;
    free(g);
    return r;
}

static int push(ls_suppressions_t *s, ls_suppression_t *x)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 8;
        ls_suppression_t *nv = realloc(s->v, ncap * sizeof(*nv));
        if (!nv) return -1;
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = *x;
    return 0;
}

/* Trims blanks (and a CR from CRLF files) from both ends of [*b, *e). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b)) (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1])) (*e)--;
}

static char *dup_range(const char *b, const char *e)
{
    char *c = malloc((size_t)(e - b) + 1);
    if (!c) return NULL;
    memcpy(c, b, (size_t)(e - b));
    c[e - b] = 0;
    return c;
}

int ls_suppressions_parse(ls_suppressions_t *s, const char *text, size_t len, const char *name,
                          char *err, size_t errlen)
{
    size_t first = s->n; /* rolled back to on error */
    const char *p = text, *end = text + len;
    unsigned lineno = 0;
    int rc = 0;
    if (!name) name = "<suppressions>";
    while (p < end && rc == 0) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *b = p, *e = nl ? nl : end;
        p = nl ? nl + 1 : end;
        if (memchr(b, '\0', (size_t)(e - b))) {
            rc = fail(err, errlen, "%s:%u: line contains a NUL byte", name, lineno);
            break;
        }
        trim(&b, &e);
        if (b == e || *b == '#') continue;
        const char *colon = memchr(b, ':', (size_t)(e - b));
        const char *t = b;
        while (t < e && (isalnum((unsigned char)*t) || *t == '_')) t++;
        if (!colon || t != colon || colon == b) {
            rc = fail(err, errlen, "%s:%u: expected \"leak:PATTERN\", got \"%.*s\"", name, lineno,
                      (int)(e - b > 60 ? 60 : e - b), b);
            break;
        }
        if ((size_t)(colon - b) != 4 || memcmp(b, "leak", 4) != 0) {
            rc = fail(err, errlen,
                      "%s:%u: unknown suppression type \"%.*s\" (only \"leak:\" is supported)",
                      name, lineno, (int)(colon - b > 40 ? 40 : colon - b), b);
            break;
        }
        const char *pb = colon + 1, *pe = e;
        trim(&pb, &pe);
        if (pb == pe) {
            rc = fail(err, errlen, "%s:%u: empty pattern after \"leak:\"", name, lineno);
            break;
        }
        ls_suppression_t x;
        memset(&x, 0, sizeof(x));
        x.type = dup_range(b, colon);
        x.pattern = dup_range(pb, pe);
        x.file = strdup(name);
        x.line = lineno;
        x.glob = x.pattern ? pattern_to_glob(x.pattern) : NULL;
        if (!x.type || !x.pattern || !x.file || !x.glob || push(s, &x)) {
            supp_clear(&x);
            rc = fail(err, errlen, "%s:%u: out of memory", name, lineno);
        }
    }
    if (rc) {
        for (size_t i = first; i < s->n; i++) supp_clear(&s->v[i]);
        s->n = first;
    }
    return rc;
}

int ls_suppressions_load(ls_suppressions_t *s, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, errlen, "cannot open suppressions file %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (!buf)
        rc = fail(err, errlen, "%s: out of memory", path);
    else if (ferror(f))
        rc = fail(err, errlen, "cannot read suppressions file %s: %s", path, strerror(errno));
    fclose(f);
    if (rc == 0) rc = ls_suppressions_parse(s, buf, len, path, err, errlen);
    free(buf);
    return rc;
}

long ls_suppressions_match(const ls_suppressions_t *s, const ls_sym_frame_t *frames, size_t n)
{
    if (!s) return -1;
    for (size_t k = 0; k < s->n; k++) {
        const char *g = s->v[k].glob;
        for (size_t i = 0; i < n; i++) {
            const ls_sym_frame_t *f = &frames[i];
            if ((f->function && fnmatch(g, f->function, 0) == 0) ||
                (f->file && fnmatch(g, f->file, 0) == 0) ||
                (f->object && fnmatch(g, f->object, 0) == 0))
                return (long)k;
        }
    }
    return -1;
}
