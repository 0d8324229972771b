/*
 * ls_fail_spec.c - `leakscope run --fail`: parses the user's specs, resolves FILE:LINE and
 * FUNCTION to address ranges of the program's objects, writes the agent's fail option
 * (grammar: ls_fail_spec.h), and reads it back for the report.
 *
 * Resolution, per object (the program, then what `INTERP --list PROGRAM` prints, as ldd does):
 *  - FILE:LINE: every line-table row of that line in a file whose path ends with FILE (on a '/'
 *    boundary) gives [row address, next row address): the call's last byte lies in one of them.
 *  - FUNCTION: the address ranges of every concrete instance of the function (its out-of-line
 *    body and each copy inlined elsewhere) minus the ranges of the functions inlined into it, so
 *    a rule names the calls whose innermost frame in a report is FUNCTION; without DWARF for it,
 *    its ELF symbol (st_value, st_size).
 * A library is searched only when its debug sections contain the file's base name or the
 * function's name at all: libc's DWARF (libc6-dbg) is large, and most specs name the program.
 * Objects opened with dlopen are not listed: such code is named with MODULE+0x... (checked
 * by the agent when the object is loaded) or compile-time tags.
 */
#define _GNU_SOURCE
#include "ls_fail_spec.h"
#include "ls_symbolize.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <math.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the agent takes: the rules go in META fail, whose strings the writer cuts at 64 KiB
 * (run passes longer rules than its option's 511 bytes through a file: fail=@FILE), and its
 * tables hold 4096 address ranges. */
#define LS_FAIL_RULES_MAX  65536
#define LS_FAIL_RANGES_MAX 4096

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- specs ---------------------------------------------------------------------------------- */

static bool parse_uint(const char *s, size_t n, int base, uint64_t *out)
{
    if (!n || n > 40) return false;
    char tmp[48];
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (tmp[0] == '-' || tmp[0] == '+' || tmp[0] == ' ') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(tmp, &end, base);
    if (errno || *end) return false;
    *out = v;
    return true;
}

/* "0x1f" -> 0x1f */
static bool parse_hex(const char *s, size_t n, uint64_t *out)
{
    if (n < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return false;
    return parse_uint(s + 2, n - 2, 16, out);
}

/* The last "+0x" of s[0..n), or NULL. */
static const char *last_plus_hex(const char *s, size_t n)
{
    const char *r = NULL;
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == '+' && s[i + 1] == '0' && (s[i + 2] == 'x' || s[i + 2] == 'X')) r = s + i;
    return r;
}

static int parse_where(const char *s, size_t n, ls_fail_spec_t *o, char *err, size_t errlen)
{
    if (!n) {
        set_err(err, errlen, "no FILE:LINE, FUNCTION or MODULE+0xOFFSET before the options");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == ' ' || s[i] == ';' || s[i] == '|') {
            set_err(err, errlen, "the location may not contain spaces, ';', '|' or controls");
            return -1;
        }
    const char *plus = last_plus_hex(s, n);
    if (plus) {
        const char *end = s + n, *dash = memchr(plus, '-', (size_t)(end - plus));
        uint64_t lo, hi = 0;
        if (plus == s) {
            set_err(err, errlen, "no MODULE before '+0x'");
            return -1;
        }
        if (!parse_hex(plus + 1, (size_t)((dash ? dash : end) - plus - 1), &lo) ||
            (dash && !parse_hex(dash + 1, (size_t)(end - dash - 1), &hi))) {
            set_err(err, errlen,
                    "want MODULE+0xOFFSET or MODULE+0xLO-0xHI with hexadecimal addresses");
            return -1;
        }
        if (dash && lo >= hi) {
            set_err(err, errlen, "the range 0x%llx-0x%llx is empty (want LO < HI)",
                    (unsigned long long)lo, (unsigned long long)hi);
            return -1;
        }
        if (!dash && lo == 0) {
            set_err(err, errlen, "offset 0x0 is no return address");
            return -1;
        }
        o->where = LS_FAIL_ADDR;
        o->module = strndup(s, (size_t)(plus - s));
        /* MODULE+0xOFF is a return address, as reports print frames: the call ends before it */
        o->lo = dash ? lo : lo - 1;
        o->hi = dash ? hi : lo;
        return o->module ? 0 : -1;
    }
    const char *colon = memrchr(s, ':', n);
    if (colon && colon + 1 < s + n && colon[1] >= '0' && colon[1] <= '9') {
        uint64_t line;
        if (!parse_uint(colon + 1, (size_t)(s + n - colon - 1), 10, &line) || !line ||
            line > UINT32_MAX) {
            set_err(err, errlen, "want FILE:LINE with a line number >= 1");
            return -1;
        }
        if (colon == s) {
            set_err(err, errlen, "no FILE before ':LINE'");
            return -1;
        }
        o->where = LS_FAIL_LINE;
        o->file = strndup(s, (size_t)(colon - s));
        o->line = (unsigned)line;
        return o->file ? 0 : -1;
    }
    if (memchr(s, '/', n) || (s[0] >= '0' && s[0] <= '9')) {
        set_err(err, errlen, "want FILE:LINE, FUNCTION or MODULE+0xOFFSET");
        return -1;
    }
    o->where = LS_FAIL_FUNC;
    o->func = strndup(s, n);
    return o->func ? 0 : -1;
}

int ls_fail_spec_parse(const char *text, ls_fail_spec_t *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    o->text = text;
    o->seed = 1;
    const char *comma = strchr(text, ',');
    size_t wn = comma ? (size_t)(comma - text) : strlen(text);
    if (parse_where(text, wn, o, err, errlen)) {
        ls_fail_spec_free(o);
        return -1;
    }
    for (const char *k = comma; k;) {
        k++;
        const char *next = strchr(k, ','), *e = next ? next : k + strlen(k);
        const char *eq = memchr(k, '=', (size_t)(e - k));
        size_t kl = eq ? (size_t)(eq - k) : (size_t)(e - k);
        const char *v = eq ? eq + 1 : e;
        size_t vl = (size_t)(e - v);
        ls_fail_sched_t sched = LS_FAIL_ALWAYS;
        if (kl == 3 && !memcmp(k, "nth", 3))
            sched = LS_FAIL_NTH;
        else if (kl == 5 && !memcmp(k, "every", 5))
            sched = LS_FAIL_EVERY;
        else if (kl == 11 && !memcmp(k, "probability", 11))
            sched = LS_FAIL_PROB;
        if (!eq && (sched != LS_FAIL_ALWAYS || (kl == 4 && !memcmp(k, "seed", 4)))) {
            set_err(err, errlen, "'%.*s' wants a value ('%.*s=...')", (int)kl, k, (int)kl, k);
            goto bad;
        }
        if (sched != LS_FAIL_ALWAYS) {
            if (o->sched != LS_FAIL_ALWAYS) {
                set_err(err, errlen, "give one of nth=, every= and probability=, not several");
                goto bad;
            }
            o->sched = sched;
            if (sched == LS_FAIL_PROB) {
                char tmp[64];
                char *end;
                if (!vl || vl >= sizeof(tmp)) goto bad_p;
                memcpy(tmp, v, vl);
                tmp[vl] = 0;
                errno = 0;
                o->p = strtod(tmp, &end);
                if (errno || *end || !isfinite(o->p) || !(o->p > 0) || o->p > 1) goto bad_p;
                if (o->p < 1e-18) {
                    set_err(err, errlen, "probability %s is below 1e-18", tmp);
                    goto bad;
                }
            } else if (!parse_uint(v, vl, 10, &o->n) || !o->n) {
                set_err(err, errlen, "%s wants a whole number >= 1, not '%.*s'",
                        sched == LS_FAIL_NTH ? "nth" : "every", (int)vl, v);
                goto bad;
            }
        } else if (kl == 4 && !memcmp(k, "seed", 4)) {
            if (!parse_uint(v, vl, 10, &o->seed)) {
                set_err(err, errlen, "seed wants an unsigned integer, not '%.*s'", (int)vl, v);
                goto bad;
            }
            o->have_seed = true;
        } else {
            set_err(err, errlen, "unknown option '%.*s' (nth=N, every=N, probability=P, seed=S)",
                    (int)(e - k), k);
            goto bad;
        }
        k = next;
    }
    if (o->have_seed && o->sched != LS_FAIL_PROB) {
        set_err(err, errlen, "seed= applies to probability= only");
        goto bad;
    }
    return 0;
bad_p:
    set_err(err, errlen, "probability wants a number P with 0 < P <= 1");
bad:
    ls_fail_spec_free(o);
    return -1;
}

void ls_fail_spec_free(ls_fail_spec_t *s)
{
    free(s->file);
    free(s->func);
    free(s->module);
    s->file = s->func = s->module = NULL;
}

/* ---- the agent form ------------------------------------------------------------------------- */

int ls_fail_escape(char *buf, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool esc = c < 0x20 || c == 0x7f || strchr("%:;,|=@", c);
        size_t need = esc ? 3 : 1;
        if (*len + need >= cap) {
            if (cap) buf[*len < cap ? *len : cap - 1] = 0;
            return -1;
        }
        if (esc) {
            buf[(*len)++] = '%';
            buf[(*len)++] = hex[c >> 4];
            buf[(*len)++] = hex[c & 15];
        } else {
            buf[(*len)++] = (char)c;
        }
    }
    buf[*len] = 0;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A decoded copy of s[0..n) (a malformed escape is kept as it is). */
static char *unescape(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        int a = -1, b = -1;
        if (s[i] == '%' && i + 2 < n) {
            a = hexval(s[i + 1]);
            b = hexval(s[i + 2]);
        }
        if (a >= 0 && b >= 0 && (a | b)) {
            *o++ = (char)(a << 4 | b);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return out;
}

long ls_fail_rules_parse(const char *agent, char ***specs)
{
    *specs = NULL;
    if (!agent || !*agent) return 0;
    size_t n = 1;
    for (const char *p = agent; *p; p++) n += *p == ';';
    char **v = calloc(n, sizeof(*v));
    if (!v) return -1;
    const char *p = agent;
    for (size_t i = 0; i < n; i++) {
        const char *e = strchr(p, ';');
        if (!e) e = p + strlen(p);
        const char *spec = NULL, *send = NULL;
        for (const char *k = memchr(p, ',', (size_t)(e - p)); k && k < e;) {
            const char *next = memchr(k + 1, ',', (size_t)(e - k - 1));
            if ((size_t)(e - k) > 6 && !memcmp(k, ",spec=", 6)) {
                spec = k + 6;
                send = next ? next : e;
            }
            k = next;
        }
        v[i] = spec ? unescape(spec, (size_t)(send - spec)) : strndup(p, (size_t)(e - p));
        if (!v[i]) {
            ls_fail_rules_free(v, i);
            return -1;
        }
        p = *e ? e + 1 : e;
    }
    *specs = v;
    return (long)n;
}

void ls_fail_rules_free(char **specs, size_t n)
{
    for (size_t i = 0; specs && i < n; i++) free(specs[i]);
    free(specs);
}

/* ---- the program's objects ------------------------------------------------------------------ */

typedef struct obj {
    char *path;
    const char *name; /* what the agent form calls it: its basename when unique, else path */
    Dwfl *dwfl;
    Dwfl_Module *mod;
    int state; /* 0 untried, 1 open, -1 unusable */
    bool tagged;
} obj_t;

typedef struct objs {
    obj_t *v;
    size_t n;
    bool listed; /* the loader listed the libraries */
} objs_t;

/* program as execvp finds it, into out. */
static int find_program(const char *prog, char *out, size_t len)
{
    if (strchr(prog, '/')) {
        snprintf(out, len, "%s", prog);
        return access(out, X_OK) == 0 ? 0 : -1;
    }
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        const char *c = strchr(p, ':'), *e = c ? c : p + strlen(p);
        snprintf(out, len, "%.*s%s%s", (int)(e - p), p, e > p ? "/" : "", prog);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0) return 0;
        if (!c) return -1;
        p = c + 1;
    }
}

static void objs_add(objs_t *o, const char *path)
{
    char real[PATH_MAX];
    const char *key = realpath(path, real) ? real : path;
    for (size_t i = 0; i < o->n; i++) {
        char r2[PATH_MAX];
        const char *k2 = realpath(o->v[i].path, r2) ? r2 : o->v[i].path;
        if (!strcmp(k2, key)) return;
    }
    obj_t *nv = realloc(o->v, (o->n + 1) * sizeof(*nv));
    if (!nv) return;
    o->v = nv;
    memset(&o->v[o->n], 0, sizeof(obj_t));
    o->v[o->n].path = strdup(path);
    if (o->v[o->n].path) o->n++;
}

/* PT_INTERP of the ELF file at path into out; false when it has none or is no ELF. */
static bool read_interp(const char *path, char *out, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = false;
    elf_version(EV_CURRENT); /* libelf's handshake, before any elf_begin */
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    size_t nph;
    if (e && elf_kind(e) == ELF_K_ELF && elf_getphdrnum(e, &nph) == 0) {
        for (size_t i = 0; i < nph && !ok; i++) {
            GElf_Phdr ph;
            if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_INTERP) continue;
            size_t n;
            char *raw = elf_rawfile(e, &n);
            if (raw && ph.p_offset < n && ph.p_filesz < len && ph.p_filesz <= n - ph.p_offset) {
                memcpy(out, raw + ph.p_offset, ph.p_filesz);
                out[ph.p_filesz] = 0;
                ok = out[0] == '/';
            }
        }
    }
    if (e) elf_end(e);
    close(fd);
    return ok;
}

/* The libraries `interp --list prog` prints ("name => /path (0x...)", "/path (0x...)"). */
static bool list_libraries(const char *interp, const char *prog, objs_t *o)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return false;
    }
    if (pid == 0) {
        dup2(pfd[1], 1);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 2);
        execl(interp, interp, "--list", prog, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        char *arrow = strstr(s, " => ");
        if (arrow) s = arrow + 4;
        char *paren = strstr(s, " (0x");
        if (paren) *paren = 0;
        s[strcspn(s, "\n")] = 0;
        if (s[0] == '/') objs_add(o, s);
    }
    free(line);
    if (f)
        fclose(f);
    else
        close(pfd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static char *debuginfo_path_none; /* libdwfl's default search path */
static const Dwfl_Callbacks dwfl_cb = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path_none,
};

/* Does the ELF e have a section named name? */
static Elf_Scn *find_section(Elf *e, const char *name)
{
    size_t shstrndx;
    if (!e || elf_getshdrstrndx(e, &shstrndx) != 0) return NULL;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn));) {
        GElf_Shdr sh;
        const char *n = gelf_getshdr(scn, &sh) ? elf_strptr(e, shstrndx, sh.sh_name) : NULL;
        if (n && !strcmp(n, name)) return scn;
    }
    return NULL;
}

/* Opens o's libdwfl module, addresses = ELF virtual addresses (load base 0). */
static bool obj_open(obj_t *o)
{
    if (o->state) return o->state > 0;
    o->state = -1;
    o->dwfl = dwfl_begin(&dwfl_cb);
    if (!o->dwfl) return false;
    dwfl_report_begin(o->dwfl);
    o->mod = dwfl_report_elf(o->dwfl, o->path, o->path, -1, 0, false);
    if (dwfl_report_end(o->dwfl, NULL, NULL) != 0 || !o->mod) return false;
    GElf_Addr bias;
    Elf *e = dwfl_module_getelf(o->mod, &bias);
    if (!e) return false;
    o->tagged = find_section(e, "ls_tags") != NULL;
    o->state = 1;
    return true;
}

static void objs_free(objs_t *o)
{
    for (size_t i = 0; i < o->n; i++) {
        if (o->v[i].dwfl) dwfl_end(o->v[i].dwfl);
        free(o->v[i].path);
    }
    free(o->v);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

/* ---- address ranges ------------------------------------------------------------------------- */

typedef struct range {
    uint64_t lo, hi;
} range_t;

typedef struct ranges {
    range_t *v;
    size_t n, cap;
} ranges_t;

static void ranges_add(ranges_t *r, uint64_t lo, uint64_t hi)
{
    if (lo >= hi) return;
    if (r->n && r->v[r->n - 1].hi == lo) { /* consecutive line rows */
        r->v[r->n - 1].hi = hi;
        return;
    }
    if (r->n == r->cap) {
        size_t ncap = r->cap ? 2 * r->cap : 16;
        range_t *nv = realloc(r->v, ncap * sizeof(*nv));
        if (!nv) return;
        r->v = nv;
        r->cap = ncap;
    }
    r->v[r->n++] = (range_t){lo, hi};
}

static int cmp_range(const void *a, const void *b)
{
    const range_t *x = a, *y = b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return x->hi < y->hi ? -1 : x->hi > y->hi;
}

/* Sorts and merges overlapping or touching ranges. */
static void ranges_normalize(ranges_t *r)
{
    if (r->n < 2) return;
    qsort(r->v, r->n, sizeof(*r->v), cmp_range);
    size_t m = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (m && r->v[i].lo <= r->v[m - 1].hi) {
            if (r->v[i].hi > r->v[m - 1].hi) r->v[m - 1].hi = r->v[i].hi;
        } else {
            r->v[m++] = r->v[i];
        }
    }
    r->n = m;
}

/* a minus holes, both normalized; appended to out. */
static void ranges_subtract(const ranges_t *a, const ranges_t *holes, ranges_t *out)
{
    size_t h = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint64_t lo = a->v[i].lo, hi = a->v[i].hi;
        while (h < holes->n && holes->v[h].hi <= lo) h++;
        for (size_t k = h; k < holes->n && holes->v[k].lo < hi; k++) {
            if (holes->v[k].lo > lo) ranges_add(out, lo, holes->v[k].lo);
            if (holes->v[k].hi > lo) lo = holes->v[k].hi;
        }
        if (lo < hi) ranges_add(out, lo, hi);
    }
}

/* Every [lo, hi) of die, in module addresses. */
static void die_ranges(Dwarf_Die *die, Dwarf_Addr dwbias, ranges_t *out)
{
    Dwarf_Addr base, lo, hi;
    ptrdiff_t off = 0;
    while ((off = dwarf_ranges(die, off, &base, &lo, &hi)) > 0)
        ranges_add(out, lo + dwbias, hi + dwbias);
}

/* Does path end with suffix on a '/' boundary? */
static bool path_suffix(const char *path, const char *suffix)
{
    size_t n = strlen(path), k = strlen(suffix);
    if (k > n || strcmp(path + n - k, suffix)) return false;
    return k == n || path[n - k - 1] == '/' || suffix[0] == '/';
}

/* Does a debug string section of dw's file hold needle? -1 when it has none of them. */
static int elf_mentions(Dwarf *dw, const char *needle, size_t len)
{
    Elf *e = dw ? dwarf_getelf(dw) : NULL;
    if (!e) return -1;
    static const char *const names[] = {".debug_str", ".debug_line_str", ".debug_line",
                                        ".debug_info"};
    int seen = -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        Elf_Scn *scn = find_section(e, names[i]);
        GElf_Shdr sh;
        if (!scn || !gelf_getshdr(scn, &sh)) continue;
        if (sh.sh_flags & SHF_COMPRESSED) elf_compress(scn, 0, 0); /* libdw did it, normally */
        Elf_Data *d = elf_getdata(scn, NULL);
        if (!d || !d->d_buf) continue;
        seen = 0;
        if (memmem(d->d_buf, d->d_size, needle, len)) return 1;
    }
    return seen;
}

/* May o's DWARF mention needle (a file's base name, a function's name with its NUL)? A cheap
 * test before a walk of every DIE: also looks in the dwz supplementary file (Debian's -dbg
 * packages keep shared strings there); true when it cannot tell. */
static bool debug_mentions(obj_t *o, const char *needle, size_t len)
{
    Dwarf_Addr bias;
    Dwarf *dw = dwfl_module_getdwarf(o->mod, &bias);
    int a = elf_mentions(dw, needle, len);
    if (a > 0) return true;
    int b = dw ? elf_mentions(dwarf_getalt(dw), needle, len) : -1;
    return b > 0 || (a < 0 && b < 0);
}

/* FILE:LINE in o: the rows of that line. */
static void resolve_line(obj_t *o, const char *file, unsigned line, ranges_t *out)
{
    Dwarf_Addr dwbias;
    Dwarf_Die *cu = NULL;
    while ((cu = dwfl_module_nextcu(o->mod, cu, &dwbias)) != NULL) {
        Dwarf_Lines *lines;
        size_t nl;
        if (dwarf_getsrclines(cu, &lines, &nl) != 0) continue;
        Dwarf_Attribute a;
        const char *comp_dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &a));
        const char *last_src = NULL;
        bool last_match = false;
        for (size_t i = 0; i + 1 < nl; i++) {
            Dwarf_Line *l = dwarf_onesrcline(lines, i);
            int ln;
            bool end;
            if (!l || dwarf_lineno(l, &ln) || ln != (int)line || dwarf_lineendsequence(l, &end) ||
                end)
                continue;
            const char *src = dwarf_linesrc(l, NULL, NULL);
            if (!src) continue;
            if (src != last_src) { /* rows of one file share the string */
                last_src = src;
                char *full = NULL;
                if (src[0] != '/' && comp_dir && asprintf(&full, "%s/%s", comp_dir, src) >= 0) {
                    last_match = path_suffix(full, file);
                    free(full);
                } else {
                    last_match = path_suffix(src, file);
                }
            }
            if (!last_match) continue;
            Dwarf_Addr lo, hi;
            if (dwarf_lineaddr(l, &lo) || dwarf_lineaddr(dwarf_onesrcline(lines, i + 1), &hi))
                continue;
            ranges_add(out, lo + dwbias, hi + dwbias);
        }
    }
}

/* Is die an instance of the function called name (DW_AT_name, the linkage name, or the
 * demangled one with or without its parameters)? */
static bool die_is(Dwarf_Die *die, const char *name)
{
    Dwarf_Attribute a;
    const char *n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
    if (n && !strcmp(n, name)) return true;
    const char *ln = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &a));
    if (!ln) return false;
    if (!strcmp(ln, name)) return true;
    char *d = ls_demangle(ln);
    bool same = false;
    if (d) {
        size_t k = strlen(name);
        same = !strncmp(d, name, k) && (d[k] == 0 || d[k] == '(');
        free(d);
    }
    return same;
}

/* The inlined subroutines below die (through lexical blocks, not into themselves). */
static void inlined_holes(Dwarf_Die *die, Dwarf_Addr dwbias, ranges_t *holes)
{
    Dwarf_Die child;
    if (dwarf_child(die, &child) != 0) return;
    do {
        int tag = dwarf_tag(&child);
        if (tag == DW_TAG_inlined_subroutine)
            die_ranges(&child, dwbias, holes);
        else if (tag != DW_TAG_subprogram)
            inlined_holes(&child, dwbias, holes);
    } while (dwarf_siblingof(&child, &child) == 0);
}

/* Walks every DIE below die for instances of name; adds their own code to out. */
static void find_function(Dwarf_Die *die, Dwarf_Addr dwbias, const char *name, ranges_t *out,
                          int depth)
{
    Dwarf_Die child;
    if (depth > 64 || dwarf_child(die, &child) != 0) return;
    do {
        int tag = dwarf_tag(&child);
        if ((tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) &&
            die_is(&child, name)) {
            ranges_t own = {0}, holes = {0};
            die_ranges(&child, dwbias, &own);
            if (own.n) {
                inlined_holes(&child, dwbias, &holes);
                ranges_normalize(&own);
                ranges_normalize(&holes);
                ranges_subtract(&own, &holes, out);
            }
            free(own.v);
            free(holes.v);
        }
        if (dwarf_haschildren(&child)) find_function(&child, dwbias, name, out, depth + 1);
    } while (dwarf_siblingof(&child, &child) == 0);
}

static void resolve_function(obj_t *o, const char *name, ranges_t *out)
{
    Dwarf_Addr dwbias;
    Dwarf_Die *cu = NULL;
    size_t before = out->n;
    while ((cu = dwfl_module_nextcu(o->mod, cu, &dwbias)) != NULL)
        find_function(cu, dwbias, name, out, 0);
    if (out->n > before) return;
    /* No DWARF for it: the ELF symbol's extent (assembly, stripped debug info). */
    int nsym = dwfl_module_getsymtab(o->mod);
    for (int i = 0; i < nsym; i++) {
        GElf_Sym sym;
        GElf_Addr addr;
        const char *n = dwfl_module_getsym_info(o->mod, i, &sym, &addr, NULL, NULL, NULL);
        if (!n || GELF_ST_TYPE(sym.st_info) != STT_FUNC || !sym.st_size) continue;
        char *d = ls_demangle(n);
        size_t k = strlen(name);
        bool same = !strcmp(n, name) || (d && !strncmp(d, name, k) && (d[k] == 0 || d[k] == '('));
        free(d);
        if (same) ranges_add(out, addr, addr + sym.st_size);
    }
}

/* ---- building the agent form ---------------------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_grow(sbuf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap) return;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + more + 1) ncap *= 2;
    char *ns = realloc(b->s, ncap);
    if (!ns) {
        b->oom = true;
        return;
    }
    b->s = ns;
    b->cap = ncap;
}

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_grow(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void sb_escaped(sbuf_t *b, const char *s)
{
    sb_grow(b, 3 * strlen(s));
    if (!b->oom) ls_fail_escape(b->s, b->cap, &b->len, s);
}

/* P as the agent reads it: a plain decimal with at most 18 places. */
static void sb_prob(sbuf_t *b, double p)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%.18f", p);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '0') n--;
    if (tmp[n - 1] == '.') n--;
    tmp[n] = 0;
    sb_printf(b, "probability=%s", tmp);
}

static void knobs(sbuf_t *b, const ls_fail_spec_t *s)
{
    switch (s->sched) {
    case LS_FAIL_NTH:
        sb_printf(b, ",nth=%llu", (unsigned long long)s->n);
        break;
    case LS_FAIL_EVERY:
        sb_printf(b, ",every=%llu", (unsigned long long)s->n);
        break;
    case LS_FAIL_PROB:
        sb_printf(b, ",");
        sb_prob(b, s->p);
        if (s->have_seed) sb_printf(b, ",seed=%llu", (unsigned long long)s->seed);
        break;
    default:
        break;
    }
    sb_printf(b, ",spec=");
    sb_escaped(b, s->text);
}

/* The names the agent form gives objects: basenames, or the path when two share one. */
static void name_objects(objs_t *o)
{
    for (size_t i = 0; i < o->n; i++) {
        const char *b = base_name(o->v[i].path);
        bool unique = true;
        for (size_t j = 0; j < o->n && unique; j++)
            unique = j == i || strcmp(base_name(o->v[j].path), b);
        o->v[i].name = unique ? b : o->v[i].path;
    }
}

int ls_fail_resolve(const ls_fail_spec_t *specs, size_t n, const char *program, char **agent,
                    FILE *warn, const char *cmd, char *err, size_t errlen)
{
    *agent = NULL;
    objs_t objs = {0};
    sbuf_t b = {0};
    int rc = -1;
    size_t nranges = 0;
    bool need_dwarf = false;
    for (size_t i = 0; i < n; i++) need_dwarf |= specs[i].where != LS_FAIL_ADDR;
    char prog[PATH_MAX];
    if (find_program(program, prog, sizeof(prog)) == 0) {
        objs_add(&objs, prog);
        char interp[PATH_MAX];
        if (read_interp(prog, interp, sizeof(interp)))
            objs.listed = list_libraries(interp, prog, &objs);
    }
    name_objects(&objs);
    bool tagged = false;
    if (need_dwarf)
        for (size_t i = 0; i < objs.n; i++) tagged |= obj_open(&objs.v[i]) && objs.v[i].tagged;
    for (size_t i = 0; i < n; i++) {
        const ls_fail_spec_t *s = &specs[i];
        if (i) sb_printf(&b, ";");
        if (s->where == LS_FAIL_ADDR) {
            sb_escaped(&b, s->module);
            sb_printf(&b, "+0x%llx-0x%llx", (unsigned long long)s->lo, (unsigned long long)s->hi);
            nranges++;
            bool known = false;
            for (size_t k = 0; k < objs.n && !known; k++)
                known = strchr(s->module, '/') ? !strcmp(objs.v[k].path, s->module)
                                               : !strcmp(base_name(objs.v[k].path), s->module);
            if (!known && objs.listed && warn && strchr(s->module, '/') == NULL)
                fprintf(warn,
                        "%s: note: --fail %s: %s is not among %s's libraries; it matches once "
                        "an object of that name is loaded\n",
                        cmd, s->text, s->module, program);
            knobs(&b, s);
            continue;
        }
        const char *needle = s->where == LS_FAIL_LINE ? base_name(s->file) : s->func;
        size_t targets = 0;
        for (size_t k = 0; k < objs.n; k++) {
            obj_t *o = &objs.v[k];
            if (!obj_open(o)) continue;
            Dwarf_Addr bias;
            /* The program itself is always searched; a library only when its debug strings
             * mention the file or function at all (or it has no DWARF: its symbols). */
            bool dwarf = dwfl_module_getdwarf(o->mod, &bias) != NULL;
            if (k > 0 && dwarf && !debug_mentions(o, needle, strlen(needle) + (s->func ? 1 : 0)))
                continue;
            ranges_t r = {0};
            if (s->where == LS_FAIL_LINE)
                resolve_line(o, s->file, s->line, &r);
            else
                resolve_function(o, s->func, &r);
            ranges_normalize(&r);
            nranges += r.n;
            for (size_t j = 0; j < r.n; j++) {
                if (targets++) sb_printf(&b, "|");
                sb_escaped(&b, o->name);
                sb_printf(&b, "+0x%llx-0x%llx", (unsigned long long)r.v[j].lo,
                          (unsigned long long)r.v[j].hi);
            }
            free(r.v);
        }
        if (!targets && !tagged) {
            if (s->where == LS_FAIL_LINE)
                set_err(err, errlen, "--fail %s: no code for this line in %s or its libraries",
                        s->text, program);
            else
                set_err(err, errlen, "--fail %s: no function %s in %s or its libraries", s->text,
                        s->func, program);
            goto done;
        }
        if (!targets && warn)
            fprintf(warn,
                    "%s: warning: --fail %s: no code for it in the debug information of %s or "
                    "its libraries; only its compile-time tags can match\n",
                    cmd, s->text, program);
        if (tagged) { /* mode sites counts tagged calls at their tags: name them too */
            if (targets++) sb_printf(&b, "|");
            if (s->where == LS_FAIL_LINE) {
                sb_printf(&b, "line=");
                sb_escaped(&b, s->file);
                sb_printf(&b, "@%u", s->line);
            } else {
                sb_printf(&b, "func=");
                sb_escaped(&b, s->func);
            }
        }
        knobs(&b, s);
    }
    if (b.oom || !b.s) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    if (b.len > LS_FAIL_RULES_MAX || nranges > LS_FAIL_RANGES_MAX) {
        set_err(err, errlen,
                "--fail: the rules resolve to %zu address ranges (%zu characters), more than the "
                "agent's %d (%d): give fewer or narrower specs",
                nranges, b.len, LS_FAIL_RANGES_MAX, LS_FAIL_RULES_MAX);
        goto done;
    }
    *agent = b.s;
    b.s = NULL;
    rc = 0;
done:
    free(b.s);
    objs_free(&objs);
    return rc;
}
