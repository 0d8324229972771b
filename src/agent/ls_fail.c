/*
 * ls_fail.c - fault injection (option fail, `leakscope run --fail`): allocating calls that match a
 * rule return NULL with errno ENOMEM, by the rule's schedule, so that a program's error paths
 * run under the leak check (mode full) or the site counters (mode sites).
 *
 * The option (written by the CLI, src/cli/ls_fail_spec.c; grammar in docs/leakscope.1, FAULT
 * INJECTION) is a list of rules separated by ';', or "@FILE" to read that list from FILE (the
 * CLI's choice when the rules outgrow the option's 511 bytes: a function's many ranges):
 *     TARGET|TARGET|...[,nth=N|,every=N|,probability=P][,seed=S][,spec=TEXT]
 *     TARGET = MODULE+0xLO-0xHI   the call instruction ends in [LO, HI) (ELF addresses of MODULE)
 *            | MODULE+0xOFF       the call returns to OFF (a frame as reports print it)
 *            | line=FILE@LINE     tagged calls (include/leakscope/tags.h) of that line
 *            | func=NAME          tagged calls made in that function
 * MODULE is a path (the same file) or a basename; FILE matches a path suffix on a '/' boundary.
 * '%XX' escapes any byte (the CLI escapes "%:;,|=@" and controls); spec is the user's own text,
 * kept for the report only.
 *
 * Shape:
 *  - rules[]: schedule and counters per rule (atomic: any thread may fire any rule).
 *  - ranges[]: every MODULE target as ELF addresses; mods[]: the distinct MODULE names, each with
 *    its load bias once an object of that name is loaded (dl_iterate_phdr).
 *  - segs[]: the loaded ranges at run time, cut into sorted disjoint segments, each naming the
 *    first rule that covers it; published under a sequence counter, so a lookup is a lock-free
 *    binary search. Rebuilt (under resolve_lock) when the loaded objects change: checked on
 *    every lookup while some MODULE is not loaded (dl_iterate_phdr stopped at its first object
 *    unless dlpi_adds/dlpi_subs moved), and after each dlopen/dlclose (ls__fail_modules_changed).
 *  - faults: injected failures by (rule, stack), an open-addressing table claimed with a CAS,
 *    mapped when rules exist; beyond LS_FAIL_MAX_RECORDS a failure is counted only.
 * Nothing here allocates through the host's malloc (dl_iterate_phdr does not either).
 */
#define _GNU_SOURCE
#include "ls_agent.h"
#include "ls_format_write.h"

#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEAKSCOPE_TAGS_TYPES_ONLY
#include "../../include/leakscope/tags.h"

#define LS_FAIL_MAX_RULES   64
#define LS_FAIL_MAX_RANGES  4096
#define LS_FAIL_MAX_TAGS    256 /* line= and func= targets */
#define LS_FAIL_MAX_MODS    64
#define LS_FAIL_MAX_RECORDS 4096
#define LS_FAIL_SLOTS       (2 * LS_FAIL_MAX_RECORDS) /* load factor <= 1/2 */

enum { SCHED_ALWAYS, SCHED_NTH, SCHED_EVERY, SCHED_PROB };

typedef struct fail_rule {
    int sched;
    uint64_t n;         /* nth / every */
    uint64_t threshold; /* probability: a draw below it fails (P * 2^64) */
    bool always;        /* probability=1 */
    _Atomic uint64_t calls, injected;
    _Atomic uint64_t rng; /* xorshift64* state */
} fail_rule_t;

typedef struct fail_range {
    uint64_t lo, hi; /* ELF addresses, [lo, hi) holds pc - 1 */
    uint16_t mod, rule;
} fail_range_t;

typedef struct fail_tag {
    const char *file; /* line=: file suffix; NULL for func= */
    const char *func; /* func=: name */
    uint32_t line;
    uint16_t rule;
} fail_tag_t;

#define LS_NOT_LOADED UINTPTR_MAX
typedef struct fail_mod {
    const char *name;
    bool has_slash;
    uintptr_t bias; /* LS_NOT_LOADED until an object of that name is found */
} fail_mod_t;

typedef struct fail_seg {
    uintptr_t lo, hi; /* run-time [lo, hi) of pc - 1 */
    uint32_t rule;    /* 1-based */
} fail_seg_t;

typedef struct fail_slot {
    _Atomic uint64_t key; /* rule << 32 | stack; rule >= 1, so 0 = empty */
    _Atomic uint64_t count;
    _Atomic uint64_t first_ns;
} fail_slot_t;

int ls__fail_on;

static fail_rule_t rules[LS_FAIL_MAX_RULES];
static int nrules;
static fail_range_t ranges[LS_FAIL_MAX_RANGES];
static size_t nranges;
static fail_tag_t tags[LS_FAIL_MAX_TAGS];
static size_t ntags;
static fail_mod_t mods[LS_FAIL_MAX_MODS];
static size_t nmods;
static const char *rules_text; /* the rules: the option itself, or FILE's contents */
static char *pool;             /* decoded strings: never longer than the rules */
static size_t pool_used, pool_cap;
static char exe_path[4096];

static fail_seg_t segs[2 * LS_FAIL_MAX_RANGES];
static uint32_t nsegs;
static _Atomic uint32_t seg_seq; /* odd while segs is rewritten */
static _Atomic int need_check;   /* look at the loaded objects before the next lookup */
static _Atomic int resolve_lock;
static unsigned long long seen_adds, seen_subs;

static fail_slot_t *slots;
static _Atomic uint64_t nrecords, unrecorded;

/* ---- parsing the option ------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A decoded copy of s[0..n) in the pool ('%XX' escapes), or NULL when malformed or empty. */
static const char *pool_str(const char *s, size_t n)
{
    if (!n || pool_used + n + 1 > pool_cap) return NULL;
    char *out = pool + pool_used, *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int a = i + 2 < n ? hexval(s[i + 1]) : -1, b = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (a < 0 || b < 0 || (a == 0 && b == 0)) return NULL;
        *o++ = (char)(a << 4 | b);
        i += 2;
    }
    *o++ = 0;
    pool_used += (size_t)(o - out);
    return out;
}

/* Unsigned decimal (or 0x hex) s[0..n) into *v; false when malformed or out of range. */
static bool parse_u64(const char *s, size_t n, uint64_t *v)
{
    int base = 10;
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        n -= 2;
    }
    if (!n) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hexval(s[i]);
        if (d < 0 || d >= base) return false;
        if (x > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
        x = x * (uint64_t)base + (uint64_t)d;
    }
    *v = x;
    return true;
}

/* P as a decimal fraction ("0.25", "1", "1.0"; at most 18 decimals) into threshold = P * 2^64
 * (*always for 1). No strtod: glibc's may allocate for long inputs. */
static bool parse_prob(const char *s, size_t n, fail_rule_t *r)
{
    uint64_t num = 0, den = 1;
    size_t i = 0;
    bool digits = false;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits = true) {
        if (num > 1) return false; /* above 1 */
        num = num * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits = true) {
            if (den == 1000000000000000000ull) return false; /* beyond 18 decimals */
            num = num * 10 + (uint64_t)(s[i] - '0');
            den *= 10;
        }
    }
    if (i != n || !digits || num == 0 || num > den) return false;
    if (num == den) {
        r->always = true;
        return true;
    }
    r->threshold = (uint64_t)(((unsigned __int128)num << 64) / den);
    return r->threshold != 0;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int mod_index(const char *name)
{
    for (size_t i = 0; i < nmods; i++)
        if (!strcmp(mods[i].name, name)) return (int)i;
    if (nmods == LS_FAIL_MAX_MODS) return -1;
    mods[nmods] = (fail_mod_t){name, strchr(name, '/') != NULL, LS_NOT_LOADED};
    return (int)nmods++;
}

/* One TARGET of rule r (1-based). Returns NULL or what is wrong. */
static const char *parse_target(const char *s, size_t n, int r)
{
    if (n > 5 && !memcmp(s, "line=", 5)) {
        const char *at = NULL;
        for (size_t i = 5; i < n; i++)
            if (s[i] == '@') at = s + i;
        uint64_t line;
        if (!at || !parse_u64(at + 1, (size_t)(s + n - at - 1), &line) || !line ||
            line > UINT32_MAX)
            return "line= wants FILE@LINE";
        const char *file = pool_str(s + 5, (size_t)(at - s - 5));
        if (!file) return "bad FILE in line=";
        if (ntags == LS_FAIL_MAX_TAGS) return "too many line= and func= targets";
        tags[ntags++] = (fail_tag_t){file, NULL, (uint32_t)line, (uint16_t)r};
        return NULL;
    }
    if (n > 5 && !memcmp(s, "func=", 5)) {
        const char *fn = pool_str(s + 5, n - 5);
        if (!fn) return "bad NAME in func=";
        if (ntags == LS_FAIL_MAX_TAGS) return "too many line= and func= targets";
        tags[ntags++] = (fail_tag_t){NULL, fn, 0, (uint16_t)r};
        return NULL;
    }
    /* MODULE+0xLO[-0xHI]: the last "+0x" (module names may hold '+': libstdc++) */
    const char *plus = NULL;
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == '+' && s[i + 1] == '0' && (s[i + 2] == 'x' || s[i + 2] == 'X')) plus = s + i;
    if (!plus || plus == s) return "want MODULE+0xOFFSET, MODULE+0xLO-0xHI, line= or func=";
    const char *end = s + n, *dash = memchr(plus, '-', (size_t)(end - plus));
    uint64_t lo, hi;
    if (!parse_u64(plus + 1, (size_t)((dash ? dash : end) - plus - 1), &lo) ||
        (dash && !parse_u64(dash + 1, (size_t)(end - dash - 1), &hi)))
        return "bad hexadecimal address";
    if (!dash) { /* a return address: the call ends just before it */
        if (!lo) return "offset 0 is no return address";
        hi = lo;
        lo--;
    }
    if (lo >= hi) return "empty range (want LO < HI)";
    const char *name = pool_str(s, (size_t)(plus - s));
    if (!name) return "bad MODULE";
    int m = mod_index(name);
    if (m < 0) return "too many distinct modules";
    if (nranges == LS_FAIL_MAX_RANGES) return "too many address ranges";
    ranges[nranges++] = (fail_range_t){lo, hi, (uint16_t)m, (uint16_t)r};
    return NULL;
}

/* One rule s[0..n), the r-th (1-based). Returns NULL or what is wrong. */
static const char *parse_rule(const char *s, size_t n, int r)
{
    fail_rule_t *rule = &rules[r - 1];
    memset(rule, 0, sizeof(*rule));
    const char *comma = memchr(s, ',', n), *tend = comma ? comma : s + n;
    if (tend == s) return "no target";
    for (const char *t = s; t < tend;) {
        const char *bar = memchr(t, '|', (size_t)(tend - t)), *e = bar ? bar : tend;
        if (e == t) return "empty target";
        const char *why = parse_target(t, (size_t)(e - t), r);
        if (why) return why;
        t = bar ? bar + 1 : tend;
    }
    uint64_t seed = 1;
    bool have_seed = false;
    for (const char *k = comma; k && k < s + n;) {
        k++;
        const char *next = memchr(k, ',', (size_t)(s + n - k)), *e = next ? next : s + n;
        const char *eq = memchr(k, '=', (size_t)(e - k));
        if (!eq) return "knob without '='";
        size_t kl = (size_t)(eq - k), vl = (size_t)(e - eq - 1);
        const char *v = eq + 1;
        int sched = -1;
        if (kl == 3 && !memcmp(k, "nth", 3))
            sched = SCHED_NTH;
        else if (kl == 5 && !memcmp(k, "every", 5))
            sched = SCHED_EVERY;
        else if (kl == 11 && !memcmp(k, "probability", 11))
            sched = SCHED_PROB;
        if (sched >= 0) {
            if (rule->sched != SCHED_ALWAYS) return "more than one of nth, every, probability";
            rule->sched = sched;
            if (sched == SCHED_PROB) {
                if (!parse_prob(v, vl, rule)) return "probability wants 0 < P <= 1";
            } else if (!parse_u64(v, vl, &rule->n) || !rule->n) {
                return "nth and every want a count >= 1";
            }
        } else if (kl == 4 && !memcmp(k, "seed", 4)) {
            if (!parse_u64(v, vl, &seed)) return "seed wants an unsigned integer";
            have_seed = true;
        } else if (kl == 4 && !memcmp(k, "spec", 4)) {
            /* the user's own words, for the report (META fail keeps them) */
        } else {
            return "unknown knob (nth, every, probability, seed, spec)";
        }
        k = next;
    }
    if (have_seed && rule->sched != SCHED_PROB) return "seed applies to probability only";
    uint64_t st = splitmix64(seed);
    atomic_store(&rule->rng, st ? st : 1);
    return NULL;
}

static void reset_rules(void)
{
    nrules = 0;
    nranges = ntags = nmods = pool_used = 0;
}

/* ---- loaded objects ----------------------------------------------------------------------- */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Is the loaded object at path the module m names? A path names the same file (by inode when
 * the spelling differs: /lib vs /usr/lib); a basename names any object with that basename. */
static bool mod_matches(const fail_mod_t *m, const char *path)
{
    if (!m->has_slash) return !strcmp(base_name(path), m->name);
    if (!strcmp(path, m->name)) return true;
    if (strcmp(base_name(path), base_name(m->name))) return false;
    struct stat a, b;
    return stat(path, &a) == 0 && stat(m->name, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

typedef struct resolve_ctx {
    bool quick;   /* stop at the first object when nothing was added or removed */
    bool changed; /* adds/subs moved: walk them all */
    uintptr_t bias[LS_FAIL_MAX_MODS];
} resolve_ctx_t;

static int resolve_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    resolve_ctx_t *ctx = data;
    if (!ctx->changed) {
        if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs) &&
            info->dlpi_adds == seen_adds && info->dlpi_subs == seen_subs && ctx->quick)
            return 1;
        ctx->changed = true;
        seen_adds = info->dlpi_adds;
        seen_subs = info->dlpi_subs;
    }
    const char *path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : exe_path;
    if (!path[0]) return 0;
    for (size_t i = 0; i < nmods; i++)
        if (ctx->bias[i] == LS_NOT_LOADED && mod_matches(&mods[i], path))
            ctx->bias[i] = info->dlpi_addr;
    return 0;
}

/* Sorts a[0..n) (shell sort: qsort may allocate). */
static void sort_u64(uintptr_t *a, size_t n)
{
    static const size_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
        size_t gap = gaps[g];
        for (size_t i = gap; i < n; i++) {
            uintptr_t v = a[i];
            size_t j = i;
            for (; j >= gap && a[j - gap] > v; j -= gap) a[j] = a[j - gap];
            a[j] = v;
        }
    }
}

/* Cuts the loaded ranges into disjoint segments (the first rule covering one wins) and
 * publishes them. Caller: resolve_lock. */
static void build_segments(void)
{
    static uintptr_t bounds[2 * LS_FAIL_MAX_RANGES];
    static fail_seg_t tmp[2 * LS_FAIL_MAX_RANGES];
    size_t nb = 0;
    for (size_t i = 0; i < nranges; i++) {
        uintptr_t bias = mods[ranges[i].mod].bias;
        if (bias == LS_NOT_LOADED) continue;
        bounds[nb++] = bias + ranges[i].lo;
        bounds[nb++] = bias + ranges[i].hi;
    }
    sort_u64(bounds, nb);
    size_t m = 0;
    for (size_t i = 0; i < nb; i++)
        if (!m || bounds[m - 1] != bounds[i]) bounds[m++] = bounds[i];
    size_t nt = m ? m - 1 : 0; /* elementary intervals [bounds[i], bounds[i + 1]) */
    for (size_t i = 0; i < nt; i++) tmp[i] = (fail_seg_t){bounds[i], bounds[i + 1], 0};
    for (size_t i = 0; i < nranges; i++) { /* in rule order: the first rule keeps a segment */
        uintptr_t bias = mods[ranges[i].mod].bias;
        if (bias == LS_NOT_LOADED) continue;
        uintptr_t lo = bias + ranges[i].lo, hi = bias + ranges[i].hi;
        size_t a = 0, b = nt; /* first interval starting at lo */
        while (a < b) {
            size_t mid = (a + b) / 2;
            if (tmp[mid].lo < lo)
                a = mid + 1;
            else
                b = mid;
        }
        for (size_t k = a; k < nt && tmp[k].lo < hi; k++)
            if (!tmp[k].rule) tmp[k].rule = ranges[i].rule;
    }
    atomic_fetch_add_explicit(&seg_seq, 1, memory_order_acq_rel); /* odd: readers retry */
    atomic_thread_fence(memory_order_release);
    uint32_t n = 0;
    for (size_t i = 0; i < nt; i++) {
        if (!tmp[i].rule) continue;
        if (n && segs[n - 1].hi == tmp[i].lo && segs[n - 1].rule == tmp[i].rule)
            segs[n - 1].hi = tmp[i].hi;
        else
            segs[n++] = tmp[i];
    }
    __atomic_store_n(&nsegs, n, __ATOMIC_RELAXED);
    atomic_fetch_add_explicit(&seg_seq, 1, memory_order_release);
}

/* Looks at the loaded objects (quick: only when the loader's counters moved) and rebuilds the
 * segments when a MODULE was loaded or unloaded. */
static void resolve_modules(bool quick)
{
    ls__tls.guard++; /* a signal handler's malloc must not spin on the segments being rebuilt */
    ls__spin_lock(&resolve_lock);
    resolve_ctx_t ctx;
    ctx.quick = quick;
    ctx.changed = false;
    for (size_t i = 0; i < nmods; i++) ctx.bias[i] = LS_NOT_LOADED;
    atomic_store(&need_check, 0); /* before the walk: a dlopen during it asks again */
    dl_iterate_phdr(resolve_cb, &ctx);
    bool missing = false, moved = false;
    if (ctx.changed) {
        for (size_t i = 0; i < nmods; i++) {
            if (ctx.bias[i] != mods[i].bias) moved = true;
            mods[i].bias = ctx.bias[i];
            if (ctx.bias[i] == LS_NOT_LOADED) missing = true;
        }
        if (moved) build_segments();
    } else {
        for (size_t i = 0; i < nmods; i++)
            if (mods[i].bias == LS_NOT_LOADED) missing = true;
    }
    if (missing) atomic_store(&need_check, 1);
    ls__spin_unlock(&resolve_lock);
    ls__tls.guard--;
}

void ls__fail_modules_changed(void)
{
    if (ls__fail_on && nmods) atomic_store(&need_check, 1);
}

/* ---- init --------------------------------------------------------------------------------- */

#define LS_FAIL_FILE_MAX 65536 /* what META fail holds (ls_fmt_put_str) */

/* fail=@FILE: FILE's contents (a trailing newline dropped) in mapped memory, or NULL. */
static const char *read_rules_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > LS_FAIL_FILE_MAX) {
        ls__error("fail: cannot read the rules in '%s'; no fault injection", path);
        if (fd >= 0) close(fd);
        return NULL;
    }
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = ls__map(n + 1);
    while (buf && got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    if (!buf || got != n) {
        ls__error("fail: cannot read the rules in '%s'; no fault injection", path);
        if (buf) ls__unmap(buf, n + 1);
        return NULL;
    }
    while (got && (buf[got - 1] == '\n' || buf[got - 1] == '\r')) got--;
    buf[got] = 0;
    return buf;
}

void ls__fail_init(void)
{
    const char *opt = ls__g.opt.fail;
    if (!opt[0]) return;
    if (!strcmp(ls__g.opt.mode, "sample")) {
        ls__error("fail: fault injection works in modes full and sites, not sample; rules "
                  "ignored");
        return;
    }
    rules_text = opt[0] == '@' ? read_rules_file(opt + 1) : opt;
    if (!rules_text) return;
    pool_cap = strlen(rules_text) + 64;
    pool = ls__map(pool_cap);
    if (!pool) {
        ls__error("fail: no memory for the rules; no fault injection");
        return;
    }
    reset_rules();
    const char *p = rules_text;
    while (*p) {
        const char *semi = strchr(p, ';'), *e = semi ? semi : p + strlen(p);
        if (nrules == LS_FAIL_MAX_RULES) {
            ls__error("fail: more than %d rules; no fault injection", LS_FAIL_MAX_RULES);
            reset_rules();
            return;
        }
        nrules++;
        const char *why = parse_rule(p, (size_t)(e - p), nrules);
        if (why) {
            ls__error("fail: rule %d '%.*s': %s; no fault injection", nrules,
                      (int)(e - p < 300 ? e - p : 300), p, why);
            reset_rules();
            return;
        }
        p = semi ? semi + 1 : e;
    }
    if (!nrules) return;
    slots = ls__map(LS_FAIL_SLOTS * sizeof(fail_slot_t));
    if (!slots) ls__error("fail: no memory for the failure records; failures are counted only");
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
    exe_path[n > 0 ? n : 0] = 0;
    if (nmods) resolve_modules(false);
    ls__fail_on = 1;
    if (ls__g.opt.verbose)
        ls__log("fail: %d rules, %zu address ranges (%u loaded segments), %zu tag targets", nrules,
                nranges, nsegs, ntags);
}

/* ---- matching ----------------------------------------------------------------------------- */

const char *ls__fail_rules(void)
{
    return ls__fail_on ? rules_text : NULL;
}

int ls__fail_match_pc(uintptr_t pc)
{
    if (!ls__fail_on || !nmods) return 0;
    if (LS_UNLIKELY(atomic_load_explicit(&need_check, memory_order_relaxed))) resolve_modules(true);
    uintptr_t a = pc - 1; /* the call instruction's last byte */
    for (;;) {
        uint32_t s1 = atomic_load_explicit(&seg_seq, memory_order_acquire);
        if (s1 & 1) continue; /* a rebuild in progress: a few hundred ns */
        uint32_t lo = 0, hi = __atomic_load_n(&nsegs, __ATOMIC_RELAXED), r = 0;
        while (lo < hi) { /* first segment with lo > a */
            uint32_t mid = (lo + hi) / 2;
            if (__atomic_load_n(&segs[mid].lo, __ATOMIC_RELAXED) <= a)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo && a < __atomic_load_n(&segs[lo - 1].hi, __ATOMIC_RELAXED))
            r = __atomic_load_n(&segs[lo - 1].rule, __ATOMIC_RELAXED);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&seg_seq, memory_order_relaxed) == s1) return (int)r;
    }
}

/* Does path end with suffix on a '/' boundary ("parse.c" and "app/parse.c" match
 * "/src/app/parse.c")? */
static bool path_suffix(const char *path, const char *suffix)
{
    size_t n = strlen(path), k = strlen(suffix);
    if (k > n || strcmp(path + n - k, suffix)) return false;
    return k == n || path[n - k - 1] == '/' || suffix[0] == '/';
}

int ls__fail_match_tag(const struct ls_tag *t)
{
    if (!ls__fail_on || !t) return 0;
    for (size_t i = 0; i < ntags; i++) {
        const fail_tag_t *g = &tags[i];
        if (g->func ? (t->func && !strcmp(t->func, g->func))
                    : (t->line == g->line && t->file && path_suffix(t->file, g->file)))
            return g->rule;
    }
    return 0;
}

static uint64_t xorshift64s(uint64_t x)
{
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x;
}

bool ls__fail_fire(int r)
{
    if (r < 1 || r > nrules) return false;
    fail_rule_t *rule = &rules[r - 1];
    uint64_t c = atomic_fetch_add_explicit(&rule->calls, 1, memory_order_relaxed) + 1;
    bool fire;
    switch (rule->sched) {
    case SCHED_NTH:
        fire = c == rule->n;
        break;
    case SCHED_EVERY:
        fire = c % rule->n == 0;
        break;
    case SCHED_PROB:
        if (rule->always) {
            fire = true;
            break;
        }
        /* One step of the rule's generator per matching call: the same sequence on every run
         * with one thread (threads share the stream, so their interleaving decides who gets
         * which draw). */
        uint64_t old = atomic_load_explicit(&rule->rng, memory_order_relaxed), next;
        do next = xorshift64s(old);
        while (!atomic_compare_exchange_weak_explicit(&rule->rng, &old, next, memory_order_relaxed,
                                                      memory_order_relaxed));
        fire = next * 0x2545f4914f6cdd1dull < rule->threshold;
        break;
    default:
        fire = true;
        break;
    }
    if (fire) atomic_fetch_add_explicit(&rule->injected, 1, memory_order_relaxed);
    return fire;
}

void ls__fail_record(int r, const struct ls_uw_frame *f)
{
    if (r < 1 || r > nrules) return;
    if (!slots || !f) {
        atomic_fetch_add_explicit(&unrecorded, 1, memory_order_relaxed);
        return;
    }
    ls__tls.guard++; /* the unwinder and the depot must not be re-entered from here */
    uint32_t stack = ls__capture_stack(f);
    ls__tls.guard--;
    uint64_t key = (uint64_t)r << 32 | stack;
    uint32_t i = (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 40) & (LS_FAIL_SLOTS - 1);
    for (uint32_t probes = 0; probes < LS_FAIL_SLOTS; probes++, i = (i + 1) & (LS_FAIL_SLOTS - 1)) {
        fail_slot_t *s = &slots[i];
        uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (k == 0) {
            if (atomic_fetch_add(&nrecords, 1) >= LS_FAIL_MAX_RECORDS) {
                atomic_fetch_sub(&nrecords, 1);
                break;
            }
            uint64_t zero = 0;
            if (!atomic_compare_exchange_strong(&s->key, &zero, key)) {
                atomic_fetch_sub(&nrecords, 1);
                if (zero != key) continue; /* another record took it */
            } else {
                atomic_store_explicit(&s->first_ns, ls__now_ns(), memory_order_relaxed);
            }
            k = key;
        }
        if (k == key) {
            atomic_fetch_add_explicit(&s->count, 1, memory_order_release);
            return;
        }
    }
    atomic_fetch_add_explicit(&unrecorded, 1, memory_order_relaxed);
}

/* ---- snapshots ---------------------------------------------------------------------------- */

void ls__fail_view_take(ls_fail_view_t *v)
{
    memset(v, 0, sizeof(*v));
    if (!ls__fail_on || !slots) return;
    size_t bytes = LS_FAIL_MAX_RECORDS * sizeof(ls_fmt_fault_t);
    ls_fmt_fault_t *out = ls__map(bytes);
    if (!out) {
        ls__error("snapshot: no memory for the fault injection records");
        return;
    }
    size_t n = 0;
    for (uint32_t i = 0; i < LS_FAIL_SLOTS && n < LS_FAIL_MAX_RECORDS; i++) {
        uint64_t k = atomic_load_explicit(&slots[i].key, memory_order_acquire);
        uint64_t c = atomic_load_explicit(&slots[i].count, memory_order_acquire);
        if (!k || !c) continue; /* empty, or claimed and not counted yet */
        out[n++] = (ls_fmt_fault_t){.stack = (uint32_t)k,
                                    .rule = (uint32_t)(k >> 32) - 1,
                                    .count = c,
                                    .first_ns = atomic_load(&slots[i].first_ns)};
    }
    v->recs = out;
    v->n = n;
    v->map_size = bytes;
}

void ls__fail_view_free(ls_fail_view_t *v)
{
    if (v->recs) ls__unmap(v->recs, v->map_size);
    memset(v, 0, sizeof(*v));
}

void ls__fail_write(struct ls_fmt_writer *w, const ls_fail_view_t *v)
{
    if (!ls__fail_on) return;
    ls_fmt_chunk_begin(w, LS_CHUNK_FAULTS);
    ls_fmt_put(w, v->recs, v->n * sizeof(ls_fmt_fault_t));
    ls_fmt_chunk_end(w, (uint32_t)v->n);
}

void ls__fail_write_stats(struct ls_fmt_writer *w)
{
    if (!ls__fail_on) return;
    uint64_t calls = 0, injected = 0;
    for (int r = 0; r < nrules; r++) {
        calls += atomic_load(&rules[r].calls);
        injected += atomic_load(&rules[r].injected);
    }
    ls_fmt_put_u64(w, LS_STAT_FAIL_CALLS, calls);
    ls_fmt_put_u64(w, LS_STAT_FAIL_INJECTED, injected);
    ls_fmt_put_u64(w, LS_STAT_FAIL_UNRECORDED, atomic_load(&unrecorded));
}

/* ---- fork --------------------------------------------------------------------------------- */

void ls__fail_lock(void)
{
    ls__spin_lock(&resolve_lock);
}

void ls__fail_unlock(void)
{
    ls__spin_unlock(&resolve_lock);
}

/* The child keeps the rules' counters and records (its snapshot tells its whole history, as
 * its blocks do); only the lock is reset. */
void ls__fail_after_fork_child(void)
{
    atomic_store(&resolve_lock, 0);
}
