/*
 * test_suppress.c - suppression files: parsing (good files, comments, blanks, CRLF, every kind
 * of malformed line with its line number), the LSan matching rule, and matching against the
 * frames of a stack (function, source file, object; first match wins). Also the demangler
 * found at run time in a program that does not link the C++ runtime.
 */
#define _GNU_SOURCE
#include "ls_suppress.h"
#include "tcheck.h"

#include <stdlib.h>
#include <unistd.h>

static void test_parse_good(void)
{
    const char *text = "# a comment\n"
                       "\n"
                       "leak:make_node\n"
                       "   leak:  libfoo.so  \r\n"
                       "\t# indented comment\n"
                       "leak:^std::vector<int>::operator[]*$\n"
                       "leak:*"; /* no final newline */
    ls_suppressions_t *s = ls_suppressions_new();
    char err[256] = "";
    CHECK(ls_suppressions_parse(s, text, strlen(text), "good.supp", err, sizeof(err)) == 0);
    CHECK_U(s->n, 4);
    if (s->n == 4) {
        CHECK_STR(s->v[0].pattern, "make_node");
        CHECK_STR(s->v[0].type, "leak");
        CHECK_U(s->v[0].line, 3);
        CHECK_STR(s->v[0].file, "good.supp");
        CHECK_STR(s->v[1].pattern, "libfoo.so");
        CHECK_U(s->v[1].line, 4);
        CHECK_STR(s->v[2].pattern, "^std::vector<int>::operator[]*$");
        CHECK_U(s->v[2].line, 6);
        CHECK_STR(s->v[3].pattern, "*");
        CHECK_U(s->v[3].line, 7);
    }
    /* Empty and comment-only files are fine. */
    CHECK(ls_suppressions_parse(s, "", 0, "empty", err, sizeof(err)) == 0);
    CHECK(ls_suppressions_parse(s, "#x\n\n", 4, "c", err, sizeof(err)) == 0);
    CHECK_U(s->n, 4);
    ls_suppressions_free(s);
}

/* Parses text, expects failure with a message starting with want. */
static void expect_error(const char *text, size_t len, const char *want)
{
    ls_suppressions_t *s = ls_suppressions_new();
    CHECK(ls_suppressions_parse(s, "leak:kept\n", 10, "first", NULL, 0) == 0);
    char err[256] = "";
    int rc = ls_suppressions_parse(s, text, len, "bad.supp", err, sizeof(err));
    CHECK(rc == -1);
    if (strncmp(err, want, strlen(want)) != 0) {
        fprintf(stderr, "  message \"%s\" does not start with \"%s\"\n", err, want);
        CHECK(0);
    }
    CHECK_U(s->n, 1); /* nothing from the failed text is kept */
    ls_suppressions_free(s);
}

#define EXPECT_ERROR(text, want) expect_error(text, sizeof(text) - 1, want)

static void test_parse_errors(void)
{
    EXPECT_ERROR("leak:a\n\nmake_node\n", "bad.supp:3: expected \"leak:PATTERN\"");
    EXPECT_ERROR("# c\nleak:\n", "bad.supp:2: empty pattern");
    EXPECT_ERROR("leak:   \n", "bad.supp:1: empty pattern");
    EXPECT_ERROR("\n\n\n\nrace:foo\n", "bad.supp:5: unknown suppression type \"race\"");
    EXPECT_ERROR("Leak:foo\n", "bad.supp:1: unknown suppression type \"Leak\"");
    EXPECT_ERROR("leak foo:bar\n", "bad.supp:1: expected \"leak:PATTERN\"");
    EXPECT_ERROR(":foo\n", "bad.supp:1: expected \"leak:PATTERN\"");
    EXPECT_ERROR("leak:a\nleak:b\x00z\n", "bad.supp:2: line contains a NUL byte");
}

static void test_load_file(void)
{
    char path[] = "/tmp/ls-test-supp.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "leak:one\n# two\nleak two\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    ls_suppressions_t *s = ls_suppressions_new();
    char err[512] = "";
    CHECK(ls_suppressions_load(s, path, err, sizeof(err)) == -1);
    char want[600];
    snprintf(want, sizeof(want), "%s:3: ", path);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    unlink(path);
    CHECK(ls_suppressions_load(s, "/nonexistent/x.supp", err, sizeof(err)) == -1);
    CHECK(strstr(err, "cannot open suppressions file /nonexistent/x.supp") != NULL);
    ls_suppressions_free(s);
}

static void test_pattern_rule(void)
{
    /* plain text: substring */
    CHECK(ls_suppress_pattern_match("make_node", "make_node"));
    CHECK(ls_suppress_pattern_match("node", "make_node_fast"));
    CHECK(!ls_suppress_pattern_match("nodes", "make_node"));
    /* * anywhere, unanchored at both ends unless ^ / $ */
    CHECK(ls_suppress_pattern_match("make_*", "make_node"));
    CHECK(ls_suppress_pattern_match("make_*", "remake_node")); /* LSan: unanchored */
    CHECK(ls_suppress_pattern_match("^make_*", "make_node"));
    CHECK(!ls_suppress_pattern_match("^make_*", "remake_node"));
    CHECK(ls_suppress_pattern_match("node$", "make_node"));
    CHECK(!ls_suppress_pattern_match("node$", "make_node2"));
    CHECK(ls_suppress_pattern_match("^make_node$", "make_node"));
    CHECK(!ls_suppress_pattern_match("^make_node$", "make_nodes"));
    CHECK(ls_suppress_pattern_match("lib*.so", "/usr/lib/x86_64-linux-gnu/libfoo.so.1"));
    CHECK(ls_suppress_pattern_match("/usr/*/libfoo", "/usr/lib/x86_64-linux-gnu/libfoo.so"));
    CHECK(ls_suppress_pattern_match("*", "anything"));
    /* ? [ ] \ are literal */
    CHECK(ls_suppress_pattern_match("operator[]", "std::vector<int>::operator[](unsigned long)"));
    CHECK(!ls_suppress_pattern_match("a?c", "abc"));
    CHECK(ls_suppress_pattern_match("a?c", "xa?cx"));
    CHECK(!ls_suppress_pattern_match("[ab]", "a"));
    CHECK(ls_suppress_pattern_match("a\\b", "a\\b"));
    CHECK(!ls_suppress_pattern_match("x", NULL));
}

static void test_match_frames(void)
{
    const char *text = "leak:never_here\n"
                       "leak:^helper$\n"
                       "leak:third_party/*.c\n"
                       "leak:libvendor.so\n";
    ls_suppressions_t *s = ls_suppressions_new();
    CHECK(ls_suppressions_parse(s, text, strlen(text), "m.supp", NULL, 0) == 0);
    ls_sym_frame_t f[3];
    memset(f, 0, sizeof(f));
    f[0].function = "xmalloc";
    f[0].file = "/src/util/xmalloc.c";
    f[0].object = "/usr/bin/prog";
    f[1].function = "helper";
    f[1].inlined = 1;
    f[2].function = "main";
    CHECK(ls_suppressions_match(s, f, 3) == 1); /* by function, an inlined frame counts */
    f[1].function = "helper2";
    CHECK(ls_suppressions_match(s, f, 3) == -1);
    f[2].file = "/src/third_party/zz/q.c";
    CHECK(ls_suppressions_match(s, f, 3) == 2); /* by source path */
    f[2].file = NULL;
    f[2].object = "/opt/lib/libvendor.so.3";
    CHECK(ls_suppressions_match(s, f, 3) == 3); /* by object path */
    f[1].function = "helper";
    CHECK(ls_suppressions_match(s, f, 3) == 1); /* first suppression in file order wins */
    CHECK(ls_suppressions_match(s, f, 0) == -1);
    CHECK(ls_suppressions_match(NULL, f, 3) == -1);
    ls_suppressions_free(s);
}

static void test_demangle_runtime_lookup(void)
{
    /* This program does not link libstdc++: the demangler is found with dlopen. */
    char *d = ls_demangle("_ZNSt6vectorIiSaIiEEixEm");
    CHECK_STR(d, "std::vector<int, std::allocator<int> >::operator[](unsigned long)");
    free(d);
}

int main(void)
{
    RUN(test_parse_good);
    RUN(test_parse_errors);
    RUN(test_load_file);
    RUN(test_pattern_rule);
    RUN(test_match_frames);
    RUN(test_demangle_runtime_lookup);
    return t_done("test_suppress");
}
