/*
 * ls_output.c - see ls_output.h. Formerly private to ls_report.c and ls_cmd_report.c; shared now
 * that diff, suspects and watch render the same frames and write the same kind of files.
 */
#include "ls_output.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- output file ------------------------------------------------------------------------- */

bool ls_out_is_special(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

int ls_out_open(ls_out_t *o, const char *path, const char *cmd)
{
    o->f = stdout;
    o->tmp = NULL;
    o->special = 0;
    if (!path || strcmp(path, "-") == 0) return 0;
    if (ls_out_is_special(path)) {
        o->f = fopen(path, "w");
        if (!o->f) {
            fprintf(stderr, "%s: cannot write %s: %s\n", cmd, path, strerror(errno));
            o->f = stdout;
            return -1;
        }
        o->special = 1;
        return 0;
    }
    size_t n = strlen(path);
    o->tmp = malloc(n + sizeof(".tmp.XXXXXX"));
    if (!o->tmp) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        return -1;
    }
    memcpy(o->tmp, path, n);
    memcpy(o->tmp + n, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", cmd, o->tmp, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    /* mkstemp makes the file 0600; an output is an ordinary file: 0666 less the umask. */
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um); /* on failure the output just stays private */
    o->f = fdopen(fd, "w");
    if (!o->f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", cmd, o->tmp, strerror(errno));
        close(fd);
        unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    return 0;
}

int ls_out_close(ls_out_t *o, const char *path, int ok, const char *cmd)
{
    int rc = 0;
    if (fflush(o->f) != 0 || ferror(o->f)) {
        if (ok)
            fprintf(stderr, "%s: error writing %s: %s\n", cmd, o->tmp ? path : "standard output",
                    strerror(errno));
        rc = -1;
    }
    if (o->special) {
        o->special = 0;
        if (fclose(o->f) != 0) rc = -1;
        return ok ? rc : -1;
    }
    if (!o->tmp) return ok ? rc : -1;
    if (fclose(o->f) != 0 && rc == 0) {
        if (ok) fprintf(stderr, "%s: error writing %s: %s\n", cmd, path, strerror(errno));
        rc = -1;
    }
    if (ok && rc == 0 && rename(o->tmp, path) != 0) {
        fprintf(stderr, "%s: cannot rename %s to %s: %s\n", cmd, o->tmp, path, strerror(errno));
        rc = -1;
    }
    if (!ok || rc != 0) unlink(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    return ok ? rc : -1;
}

/* ---- command lines ----------------------------------------------------------------------- */

void ls_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int ls_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help'.\n", cmd);
    va_end(ap);
    return 2;
}

int ls_option_error(const char *cmd, int c, const char *opt)
{
    if (c == ':') return ls_usage_error(cmd, "option '%s' needs an argument", opt);
    return ls_usage_error(cmd, "unknown option '%s'", opt);
}

int ls_site_skip_add(const char *cmd, const char **skip, size_t *n, size_t max, const char *glob)
{
    if (*n == max) return ls_usage_error(cmd, "too many --site-skip globs (at most %zu)", max);
    skip[(*n)++] = glob;
    return 0;
}

int ls_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (max - (uint64_t)(*s - '0')) / 10) return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s) return -1;
    *out = v;
    return 0;
}

int ls_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1},         {"k", 1024},       {"K", 1024},     {"KiB", 1024},
                 {"M", 1u << 20}, {"MiB", 1u << 20}, {"G", 1u << 30}, {"GiB", 1u << 30}};
    if (!s || *s < '0' || *s > '9') return -1;
    const char *p = s;
    while (*p >= '0' && *p <= '9') p++;
    char num[32];
    if ((size_t)(p - s) >= sizeof(num)) return -1;
    memcpy(num, s, (size_t)(p - s));
    num[p - s] = 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        uint64_t v;
        if (strcmp(p, units[i].suffix) != 0) continue;
        if (ls_parse_uint(num, UINT64_MAX / units[i].mult, &v)) return -1;
        *out = v * units[i].mult;
        return 0;
    }
    return -1;
}

int ls_parse_format(const char *s)
{
    return strcmp(s, "text") == 0 ? 0 : strcmp(s, "json") == 0 ? 1 : -1;
}

/* ---- numbers ----------------------------------------------------------------------------- */

const char *ls_commas(uint64_t n, char buf[32])
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

/* buf = sign of n + text (at most 27 characters: 20 digits and 6 commas). */
static const char *with_sign(int64_t n, const char *text, char buf[32])
{
    size_t o = 0, len = strlen(text);
    if (n) buf[o++] = n > 0 ? '+' : '-';
    if (len > 31 - o) len = 31 - o;
    memcpy(buf + o, text, len);
    buf[o + len] = 0;
    return buf;
}

const char *ls_scommas(int64_t n, char buf[32])
{
    uint64_t mag = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    char tmp[32];
    return with_sign(n, ls_commas(mag, tmp), buf);
}

const char *ls_human_bytes(uint64_t n, char buf[32])
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 1024) {
        snprintf(buf, 32, "%llu B", (unsigned long long)n);
        return buf;
    }
    double v = (double)n / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) v /= 1024, u++;
    snprintf(buf, 32, v < 10 ? "%.1f %s" : "%.0f %s", v, unit[u]);
    return buf;
}

const char *ls_human_sbytes(int64_t n, char buf[32])
{
    uint64_t mag = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    char tmp[32];
    return with_sign(n, ls_human_bytes(mag, tmp), buf);
}

/* ---- frames ------------------------------------------------------------------------------ */

const char *ls_base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

void ls_frame_label(const ls_sym_frame_t *f, char *buf, size_t len)
{
    const char *fn = f->function ? f->function : "???";
    if (f->file && f->line)
        snprintf(buf, len, "%s (%s:%u)", fn, ls_base_name(f->file), f->line);
    else if (f->file)
        snprintf(buf, len, "%s (%s)", fn, ls_base_name(f->file));
    else if (f->object && f->function)
        snprintf(buf, len, "%s (in %s)", fn, f->object);
    else if (f->object)
        snprintf(buf, len, "%s (in %s+0x%llx)", fn, f->object, (unsigned long long)f->offset);
    else
        snprintf(buf, len, "%s", fn);
}

void ls_text_frame_in(FILE *out, const ls_sym_frame_t *f, int first, int indent, bool with_offset)
{
    char label[1024];
    ls_frame_label(f, label, sizeof(label));
    fprintf(out, "%*s%s 0x%llX: %s", indent, "", first ? "at" : "by", (unsigned long long)f->pc,
            label);
    if (f->inlined) fputs(" (inlined)", out);
    if (f->status == LS_SYM_NO_FILE || f->status == LS_SYM_BUILD_ID)
        fprintf(out, " [%s]", ls_sym_status_name(f->status));
    if (with_offset && !f->inlined && f->object)
        fprintf(out, " [%s+0x%llx]", ls_base_name(f->object), (unsigned long long)f->offset);
    fputc('\n', out);
}

void ls_text_frame(FILE *out, const ls_sym_frame_t *f, int first)
{
    ls_text_frame_in(out, f, first, 4, false);
}

/* ---- JSON -------------------------------------------------------------------------------- */

void ls_jnum(ls_jctx_t *c, cJSON *o, const char *k, double v)
{
    if (!cJSON_AddNumberToObject(o, k, v)) c->oom = 1;
}

void ls_jstr(ls_jctx_t *c, cJSON *o, const char *k, const char *v)
{
    if (!(v ? cJSON_AddStringToObject(o, k, v) : cJSON_AddNullToObject(o, k))) c->oom = 1;
}

void ls_jhex(ls_jctx_t *c, cJSON *o, const char *k, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
    ls_jstr(c, o, k, buf);
}

void ls_jbool(ls_jctx_t *c, cJSON *o, const char *k, int v)
{
    if (!cJSON_AddBoolToObject(o, k, v != 0)) c->oom = 1;
}

void ls_jnull(ls_jctx_t *c, cJSON *o, const char *k)
{
    if (!cJSON_AddNullToObject(o, k)) c->oom = 1;
}

cJSON *ls_jobj(ls_jctx_t *c, cJSON *parent, const char *k)
{
    cJSON *o = parent ? cJSON_AddObjectToObject(parent, k) : NULL;
    if (!o) c->oom = 1;
    return o;
}

cJSON *ls_jarr(ls_jctx_t *c, cJSON *parent, const char *k)
{
    cJSON *o = parent ? cJSON_AddArrayToObject(parent, k) : NULL;
    if (!o) c->oom = 1;
    return o;
}

void ls_jpush(ls_jctx_t *c, cJSON *arr, cJSON *item)
{
    if (!item || !arr || !cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        c->oom = 1;
    }
}

void ls_jput(ls_jctx_t *c, cJSON *o, const char *k, cJSON *item)
{
    if (!item || !o || !cJSON_AddItemToObject(o, k, item)) {
        cJSON_Delete(item);
        c->oom = 1;
    }
}

cJSON *ls_jpush_obj(ls_jctx_t *c, cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !arr || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        c->oom = 1;
        return NULL;
    }
    return o;
}

void ls_jsize(ls_jctx_t *c, cJSON *parent, const char *k, uint64_t bytes, uint64_t blocks)
{
    cJSON *o = ls_jobj(c, parent, k);
    if (!o) return;
    ls_jnum(c, o, "bytes", (double)bytes);
    ls_jnum(c, o, "blocks", (double)blocks);
}

cJSON *ls_json_frame(ls_jctx_t *c, const ls_sym_frame_t *f)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        c->oom = 1;
        return NULL;
    }
    ls_jhex(c, o, "pc", f->pc);
    if (f->function) ls_jstr(c, o, "function", f->function);
    if (f->file) {
        ls_jstr(c, o, "file", ls_base_name(f->file));
        const char *slash = strrchr(f->file, '/');
        if (slash) {
            size_t n = slash == f->file ? 1 : (size_t)(slash - f->file);
            char *dir = strndup(f->file, n);
            if (!dir)
                c->oom = 1;
            else
                ls_jstr(c, o, "dir", dir);
            free(dir);
        }
        if (f->line) ls_jnum(c, o, "line", f->line);
        if (f->column) ls_jnum(c, o, "column", f->column);
    }
    if (f->object) {
        ls_jstr(c, o, "object", f->object);
        ls_jhex(c, o, "offset", f->offset);
    }
    if (f->inlined) ls_jbool(c, o, "inlined", 1);
    const char *why = f->status == LS_SYM_OK ? NULL : ls_sym_status_name(f->status);
    if (why) ls_jstr(c, o, "unresolved", why);
    return o;
}

void ls_json_frames(ls_jctx_t *c, cJSON *parent, const char *k, const ls_sym_frame_t *f, size_t n)
{
    cJSON *arr = ls_jarr(c, parent, k);
    for (size_t i = 0; arr && i < n && !c->oom; i++) ls_jpush(c, arr, ls_json_frame(c, &f[i]));
}

void ls_jstream_begin(ls_jstream_t *s, ls_jctx_t *c, FILE *out, cJSON *head, const char *key)
{
    s->out = out;
    s->c = c;
    s->n = 0;
    s->err = 0;
    char *text = c->oom || !head ? NULL : cJSON_Print(head);
    cJSON_Delete(head);
    if (!text) {
        c->oom = 1;
        return;
    }
    /* "{\n\t...\n}": drop the closing brace, keep the members */
    size_t n = strlen(text);
    if (n && text[n - 1] == '}') n--;
    while (n && text[n - 1] == '\n') n--;
    if (fwrite(text, 1, n, out) != n) s->err = 1;
    if (fprintf(out, "%s\n\t\"%s\":\t[", n > 1 ? "," : "", key) < 0) s->err = 1;
    cJSON_free(text);
}

void ls_jstream_item(ls_jstream_t *s, cJSON *item)
{
    char *text = s->c->oom || !item ? NULL : cJSON_PrintUnformatted(item);
    cJSON_Delete(item);
    if (!text) {
        s->c->oom = 1;
        return;
    }
    if (fprintf(s->out, "%s\n\t\t%s", s->n ? "," : "", text) < 0) s->err = 1;
    s->n++;
    cJSON_free(text);
}

FILE *ls_jstream_raw_begin(ls_jstream_t *s)
{
    if (fputs(s->n ? ",\n\t\t" : "\n\t\t", s->out) < 0) s->err = 1;
    return s->out;
}

void ls_jstream_raw_end(ls_jstream_t *s)
{
    if (ferror(s->out)) s->err = 1;
    s->n++;
}

void ls_jstream_frame(ls_jstream_t *s, ls_jframes_t *fc, const ls_sym_frame_t *f)
{
    const char *t = ls_jframes_text(fc, f);
    if (!t)
        s->c->oom = 1;
    else
        fputs(t, s->out);
}

void ls_jstream_frames(ls_jstream_t *s, ls_jframes_t *fc, const ls_sym_frame_t *f, size_t n)
{
    fputc('[', s->out);
    for (size_t i = 0; i < n && !s->c->oom; i++) {
        if (i) fputc(',', s->out);
        ls_jstream_frame(s, fc, &f[i]);
    }
    fputc(']', s->out);
}

int ls_jstream_end(ls_jstream_t *s, cJSON *tail)
{
    if (fputs(s->n ? "\n\t]" : "]", s->out) < 0) s->err = 1;
    if (tail && cJSON_GetArraySize(tail) > 0) {
        char *text = s->c->oom ? NULL : cJSON_Print(tail);
        if (!text)
            s->c->oom = 1;
        else if (fprintf(s->out, ",%s\n", text + 1) < 0) /* "{\n\t..." -> ",\n\t..." */
            s->err = 1;
        cJSON_free(text);
    } else if (fputs("\n}\n", s->out) < 0) {
        s->err = 1;
    }
    cJSON_Delete(tail);
    return s->c->oom || s->err ? -1 : 0;
}

/* ---- frame JSON cache --------------------------------------------------------------------- */

typedef struct jf_entry {
    ls_sym_frame_t f; /* the key (strings by address) */
    char *text;
} jf_entry_t;

struct ls_jframes {
    jf_entry_t *v;
    size_t cap, n; /* cap a power of two, at most half full */
};

static uint64_t jf_hash(const ls_sym_frame_t *f)
{
    uint64_t h = f->pc * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)(uintptr_t)f->function * 0xff51afd7ed558ccdull;
    h ^= (uint64_t)(uintptr_t)f->file * 0xc4ceb9fe1a85ec53ull;
    h ^= ((uint64_t)f->line << 32 | f->column) * 0x2545f4914f6cdd1dull;
    h ^= (uint64_t)(uintptr_t)f->object + f->offset + ((uint64_t)f->inlined << 8 | f->status);
    return h ^ (h >> 29);
}

static bool jf_same(const ls_sym_frame_t *a, const ls_sym_frame_t *b)
{
    return a->pc == b->pc && a->function == b->function && a->file == b->file &&
           a->line == b->line && a->column == b->column && a->object == b->object &&
           a->offset == b->offset && a->inlined == b->inlined && a->status == b->status;
}

ls_jframes_t *ls_jframes_new(void)
{
    return calloc(1, sizeof(ls_jframes_t));
}

void ls_jframes_free(ls_jframes_t *fc)
{
    if (!fc) return;
    for (size_t i = 0; i < fc->cap; i++) cJSON_free(fc->v[i].text);
    free(fc->v);
    free(fc);
}

const char *ls_jframes_text(ls_jframes_t *fc, const ls_sym_frame_t *f)
{
    if (2 * (fc->n + 1) > fc->cap) {
        size_t ncap = fc->cap ? 2 * fc->cap : 1024;
        jf_entry_t *nv = calloc(ncap, sizeof(*nv));
        if (!nv) return NULL;
        for (size_t i = 0; i < fc->cap; i++) {
            if (!fc->v[i].text) continue;
            size_t j = jf_hash(&fc->v[i].f) & (ncap - 1);
            while (nv[j].text) j = (j + 1) & (ncap - 1);
            nv[j] = fc->v[i];
        }
        free(fc->v);
        fc->v = nv;
        fc->cap = ncap;
    }
    size_t j = jf_hash(f) & (fc->cap - 1);
    while (fc->v[j].text) {
        if (jf_same(&fc->v[j].f, f)) return fc->v[j].text;
        j = (j + 1) & (fc->cap - 1);
    }
    ls_jctx_t c = {0};
    cJSON *o = ls_json_frame(&c, f);
    char *text = o && !c.oom ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) return NULL;
    fc->v[j].f = *f;
    fc->v[j].text = text;
    fc->n++;
    return text;
}
