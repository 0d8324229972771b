/*
 * ls_suppress.h - LeakSanitizer-style suppressions: "leak:PATTERN" lines that hide the leaks
 * whose allocation stack goes through a matching function, source file or object.
 *
 * The rule (LSan's, see ls_suppress.c for details): a pattern matches a name when it matches
 * some substring of it; `*` matches any run of characters (including '/'); a leading `^`
 * anchors the match at the start of the name and a trailing `$` at its end; every other
 * character, `?` and `[` included, stands for itself. An allocation is suppressed by the first
 * suppression (in file order) that matches the function name, the source file path or the
 * object path of any of its frames, inlined frames included.
 */
#ifndef LS_SUPPRESS_H
#define LS_SUPPRESS_H

#include "ls_symbolize.h"

#include <stddef.h>

typedef struct ls_suppression {
    char *type;    /* "leak" (the only type accepted today) */
    char *pattern; /* as written after "leak:", surrounding blanks trimmed */
    char *file;    /* where it was read, for messages and the report's used_suppression lines */
    unsigned line;
    char *glob; /* internal: the pattern as an fnmatch glob */
} ls_suppression_t;

typedef struct ls_suppressions {
    ls_suppression_t *v;
    size_t n, cap;
} ls_suppressions_t;

ls_suppressions_t *ls_suppressions_new(void);
void ls_suppressions_free(ls_suppressions_t *s);

/*
 * Adds the suppressions of text (len bytes; need not be NUL-terminated), read from a file
 * called name (used in messages). Blank lines and lines whose first non-blank character is '#'
 * are skipped. Returns 0, or -1 with "NAME:LINE: problem" in err; on error nothing from this
 * text is kept.
 */
int ls_suppressions_parse(ls_suppressions_t *s, const char *text, size_t len, const char *name,
                          char *err, size_t errlen);
/* Reads path and parses it. Returns 0, or -1 with a message in err. */
int ls_suppressions_load(ls_suppressions_t *s, const char *path, char *err, size_t errlen);

/* True when pattern (as written, with optional ^ and $) matches name under the rule above. */
int ls_suppress_pattern_match(const char *pattern, const char *name);

/* Index of the first suppression matching any of frames[0..n-1], or -1. */
long ls_suppressions_match(const ls_suppressions_t *s, const ls_sym_frame_t *frames, size_t n);

#endif
