/*
 * test_fail_spec.c - `--fail` specs on their own (src/cli/ls_fail_spec.c): what the parser
 * accepts and refuses, the agent form the resolver writes (escaping, normalized knobs, the
 * user's spec kept), and the rules a report reads back from META fail.
 *
 *   test_fail_spec FAIL_PROG     (tests/fail/fail_prog.c, built with -g)
 */
#include "ls_fail_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(c)) {                                                                                \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
        }                                                                                          \
    } while (0)

static void test_parse(void)
{
    ls_fail_spec_t s;
    char err[256];
    CHECK(ls_fail_spec_parse("src/parse.c:42,nth=3", &s, err, sizeof(err)) == 0);
    CHECK(s.where == LS_FAIL_LINE && !strcmp(s.file, "src/parse.c") && s.line == 42 &&
          s.sched == LS_FAIL_NTH && s.n == 3 && !s.have_seed);
    ls_fail_spec_free(&s);
    CHECK(ls_fail_spec_parse("ns::parse_record", &s, err, sizeof(err)) == 0);
    CHECK(s.where == LS_FAIL_FUNC && !strcmp(s.func, "ns::parse_record") &&
          s.sched == LS_FAIL_ALWAYS);
    ls_fail_spec_free(&s);
    /* a frame as reports print it: the return address, so the call ends just before it */
    CHECK(ls_fail_spec_parse("libstdc++.so.6+0x1a2b,every=4", &s, err, sizeof(err)) == 0);
    CHECK(s.where == LS_FAIL_ADDR && !strcmp(s.module, "libstdc++.so.6") && s.lo == 0x1a2a &&
          s.hi == 0x1a2b && s.sched == LS_FAIL_EVERY && s.n == 4);
    ls_fail_spec_free(&s);
    CHECK(ls_fail_spec_parse("/usr/lib/libz.so.1+0x100-0x180,probability=0.5,seed=9", &s, err,
                             sizeof(err)) == 0);
    CHECK(s.lo == 0x100 && s.hi == 0x180 && s.sched == LS_FAIL_PROB && s.p == 0.5 && s.have_seed &&
          s.seed == 9);
    ls_fail_spec_free(&s);

    static const struct {
        const char *spec, *why;
    } bad[] = {
        {"f,nth=0", "nth wants a whole number >= 1, not '0'"},
        {"f,every=-2", "every wants a whole number >= 1, not '-2'"},
        {"f,nth=1,probability=0.5", "give one of nth=, every= and probability=, not several"},
        {"f,probability=1.5", "probability wants a number P with 0 < P <= 1"},
        {"f,probability=nan", "probability wants a number P with 0 < P <= 1"},
        {"f,probability=1e-30", "probability 1e-30 is below 1e-18"},
        {"f,seed=4", "seed= applies to probability= only"},
        {"f,probability=0.5,seed=x", "seed wants an unsigned integer, not 'x'"},
        {"f,limit=3", "unknown option 'limit=3'"},
        {"f,every", "'every' wants a value ('every=...')"},
        {"", "no FILE:LINE, FUNCTION or MODULE+0xOFFSET before the options"},
        {"a.c:0", "want FILE:LINE with a line number >= 1"},
        {":12", "no FILE before ':LINE'"},
        {"m+0x", "want MODULE+0xOFFSET or MODULE+0xLO-0xHI with hexadecimal addresses"},
        {"m+0xg1", "want MODULE+0xOFFSET or MODULE+0xLO-0xHI with hexadecimal addresses"},
        {"m+0x10-0x10", "the range 0x10-0x10 is empty (want LO < HI)"},
        {"m+0x0", "offset 0x0 is no return address"},
        {"+0x10", "no MODULE before '+0x'"},
        {"dir/file.c", "want FILE:LINE, FUNCTION or MODULE+0xOFFSET"},
        {"two words", "the location may not contain spaces"},
        {"a;b", "the location may not contain spaces, ';', '|' or controls"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        int rc = ls_fail_spec_parse(bad[i].spec, &s, err, sizeof(err));
        CHECK(rc == -1 && strstr(err, bad[i].why));
        if (rc == 0 || !strstr(err, bad[i].why))
            fprintf(stderr, "  spec '%s': got '%s', want '%s'\n", bad[i].spec, err, bad[i].why);
    }
}

static void test_escape_and_rules(void)
{
    char buf[64];
    size_t len = 0;
    CHECK(ls_fail_escape(buf, sizeof(buf), &len, "a:b,c;d|e=f@g%h") == 0);
    CHECK(!strcmp(buf, "a%3Ab%2Cc%3Bd%7Ce%3Df%40g%25h"));
    len = 0;
    CHECK(ls_fail_escape(buf, 8, &len, "abc:def") == -1 && strlen(buf) < 8);

    char **specs;
    long n = ls_fail_rules_parse("m+0x1-0x2,nth=2,spec=parse.c%3A42%2Cnth%3D2;"
                                 "m+0x5-0x9|func=grow,spec=grow;libx.so+0x10-0x20,every=2",
                                 &specs);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(!strcmp(specs[0], "parse.c:42,nth=2"));
        CHECK(!strcmp(specs[1], "grow"));
        CHECK(!strcmp(specs[2], "libx.so+0x10-0x20,every=2")); /* no spec=: the rule itself */
    }
    ls_fail_rules_free(specs, n > 0 ? (size_t)n : 0);
    CHECK(ls_fail_rules_parse("", &specs) == 0 && !specs);
    CHECK(ls_fail_rules_parse(NULL, &specs) == 0 && !specs);
}

/* Resolves spec in prog; returns the agent form (malloc'd) or NULL with err set; the notes go
 * to a temporary file, returned in notes. */
static char *resolve(const char *spec, const char *prog, char *err, size_t errlen, char *notes,
                     size_t notes_len)
{
    ls_fail_spec_t s;
    char *agent = NULL;
    if (ls_fail_spec_parse(spec, &s, err, errlen)) return NULL;
    FILE *warn = tmpfile();
    if (ls_fail_resolve(&s, 1, prog, &agent, warn, "test", err, errlen)) agent = NULL;
    notes[0] = 0;
    rewind(warn);
    size_t k = fread(notes, 1, notes_len - 1, warn);
    notes[k] = 0;
    fclose(warn);
    ls_fail_spec_free(&s);
    return agent;
}

static void test_resolve(const char *prog)
{
    char err[512], notes[1024];
    char *a = resolve("draw_alloc,every=2", prog, err, sizeof(err), notes, sizeof(notes));
    CHECK(a && !strncmp(a, "fail_prog+0x", 12) &&
          strstr(a, ",every=2,spec=draw_alloc%2Cevery%3D2"));
    CHECK(a && !strchr(a, ':') && !strchr(a, ';'));
    free(a);
    /* probability written as the agent reads it (a plain decimal), the user's text kept */
    a = resolve("draw_alloc,probability=2.5e-1,seed=3", prog, err, sizeof(err), notes,
                sizeof(notes));
    CHECK(a && strstr(a, ",probability=0.25,seed=3,spec=draw_alloc%2Cprobability%3D2.5e-1%2C"
                         "seed%3D3"));
    free(a);
    /* MODULE+0x...: passed as it is, with a note when no listed object has that name */
    a = resolve("libplugin.so+0x1234", prog, err, sizeof(err), notes, sizeof(notes));
    CHECK(a && !strcmp(a, "libplugin.so+0x1233-0x1234,spec=libplugin.so+0x1234"));
    CHECK(strstr(notes, "test: note: --fail libplugin.so+0x1234: libplugin.so is not among"));
    free(a);
    a = resolve("libc.so.6+0x1234", prog, err, sizeof(err), notes, sizeof(notes));
    CHECK(a && notes[0] == 0); /* a library the program links: no note */
    free(a);
    a = resolve("fail_prog.c:1", prog, err, sizeof(err), notes, sizeof(notes));
    CHECK(!a && strstr(err, "--fail fail_prog.c:1: no code for this line in "));
    a = resolve("no_such_function_here", prog, err, sizeof(err), notes, sizeof(notes));
    CHECK(!a && strstr(err, "no function no_such_function_here in "));
    a = resolve("draw_alloc", "/nonexistent/prog", err, sizeof(err), notes, sizeof(notes));
    CHECK(!a && strstr(err, "no function draw_alloc in /nonexistent/prog or its libraries"));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_fail_spec FAIL_PROG\n");
        return 2;
    }
    test_parse();
    test_escape_and_rules();
    test_resolve(argv[1]);
    printf("fail_spec: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
