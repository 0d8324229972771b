/*
 * ls_options.c - parses LEAKSCOPE_OPTIONS (key=value:key=value) against the table in
 * ls_options.def. Runs at agent init, before the allocator is usable, so it only touches the
 * environment string and fixed-size fields. A bad item is reported once and ignored: the agent
 * must not change its host's behaviour over a typo.
 */
#include "ls_agent.h"

#include <stdlib.h>
#include <string.h>

static void set_defaults(ls_options_t *o)
{
#define LS_OPT(name, type, def, desc) LS_OPT_DEF_##type(o->name, def);
#define LS_OPT_DEF_BOOL(f, d)         f = (d)
#define LS_OPT_DEF_INT(f, d)          f = (d)
#define LS_OPT_DEF_STR(f, d)          (strncpy(f, d, sizeof(f) - 1), f[sizeof(f) - 1] = 0)
#include "ls_options.def"
#undef LS_OPT
}

static int parse_long(const char *v, size_t len, long *out)
{
    char tmp[32];
    if (!len || len >= sizeof(tmp)) return -1;
    memcpy(tmp, v, len);
    tmp[len] = 0;
    char *end;
    long x = strtol(tmp, &end, 0);
    if (*end) return -1;
    *out = x;
    return 0;
}

static int set_bool(int *f, const char *s, size_t n)
{
    if ((n == 1 && (*s == '1' || *s == 'y')) || (n == 4 && !memcmp(s, "true", 4)) ||
        (n == 3 && !memcmp(s, "yes", 3))) {
        *f = 1;
        return 0;
    }
    if ((n == 1 && (*s == '0' || *s == 'n')) || (n == 5 && !memcmp(s, "false", 5)) ||
        (n == 2 && !memcmp(s, "no", 2))) {
        *f = 0;
        return 0;
    }
    return -1;
}

static int set_one(ls_options_t *o, const char *k, size_t klen, const char *v, size_t vlen)
{
#define LS_OPT(name, type, def, desc)                                                              \
    if (klen == sizeof(#name) - 1 && !memcmp(k, #name, klen)) return LS_OPT_SET_##type(o->name);
#define LS_OPT_SET_INT(f)  parse_long(v, vlen, &(f))
#define LS_OPT_SET_BOOL(f) set_bool(&(f), v, vlen)
#define LS_OPT_SET_STR(f)  (vlen >= sizeof(f) ? -1 : (memcpy(f, v, vlen), f[vlen] = 0, 0))
#include "ls_options.def"
#undef LS_OPT
    return -2;
}

void ls__options_parse(ls_options_t *o, const char *env)
{
    set_defaults(o);
    if (!env) return;
    const char *p = env;
    while (*p) {
        const char *end = strchr(p, ':');
        if (!end) end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (end > p) {
            int rc = eq ? set_one(o, p, (size_t)(eq - p), eq + 1, (size_t)(end - eq - 1)) : -2;
            if (rc == -2)
                ls__error("LEAKSCOPE_OPTIONS: unknown option '%.*s' ignored", (int)(end - p), p);
            else if (rc)
                ls__error("LEAKSCOPE_OPTIONS: bad value in '%.*s' ignored", (int)(end - p), p);
        }
        p = *end ? end + 1 : end;
    }
}
