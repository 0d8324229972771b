/*
 * leakscope/tags.h - compile-time allocation tags: per-call-site counters without unwinding.
 *
 * Build a C program (or some of its files) with
 *     cc -include leakscope/tags.h ...        (or #include it first in a common header)
 * and every malloc, calloc, realloc, reallocarray, strdup, strndup, aligned_alloc, memalign,
 * posix_memalign and valloc call in it gets a static tag object {file, line, function} in the ELF
 * section "ls_tags" of its module (executable or shared library), like the kernel's code tags
 * behind /proc/allocinfo. Under the agent in mode sites (leakscope run --mode sites), a tagged
 * call is counted at its tag: the tag caches its site, so counting needs neither a stack walk nor
 * a lookup, and `leakscope sites` prints the tag's file:line and function. Each module that
 * includes this header registers its section with the agent from a constructor (and takes it back
 * from a destructor, at dlclose).
 *
 * Without the agent (or under it in another mode) the program runs as before: each call costs a
 * test of a weak symbol against NULL, then the libc function itself; in modes full and sample
 * the agent sees the call as an ordinary one from the same place.
 *
 * Limits: C only (in C++ this header declares nothing). The macros take over the names malloc,
 * calloc, ... when used as calls: code that calls a struct member or a function pointer of one of
 * these names (p->malloc(n)) must define LEAKSCOPE_TAGS_EXPLICIT before including this header,
 * and tag calls by hand with ls_tagged_malloc(n) & co. A tagged call inside a non-static inline
 * function is not allowed by C (a static object in it): call (malloc)(n) there.
 */
#ifndef LEAKSCOPE_TAGS_H
#define LEAKSCOPE_TAGS_H

#include <stddef.h>
#include <stdint.h>

/* The tag object: an ABI shared with the agent (src/agent/ls_tags.c). */
#define LS_TAG_MAGIC   0x6754736cu /* "lsTg" */
#define LS_TAG_VERSION 1
typedef struct ls_tag {
    uint32_t magic;   /* LS_TAG_MAGIC */
    uint16_t version; /* LS_TAG_VERSION */
    uint16_t kind;    /* ls_fmt_tag_kind_t: 1 malloc, 2 calloc, 3 realloc, 4 aligned */
    uint32_t line;
    uint32_t site; /* the agent's site id for this tag, 0 until it assigns one */
    const char *file;
    const char *func;
} ls_tag_t;

#if !defined(__cplusplus) && !defined(LEAKSCOPE_TAGS_TYPES_ONLY)

/* Declared before the macros below exist, so that later includes of these headers (no-ops
 * thanks to their guards) do not see their own declarations rewritten. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Agent entry points (weak: absent without the agent). Each behaves as the call it names, made
 * from the caller's own frame; tag says which call site it is. */
void *ls_agent_tag_malloc(ls_tag_t *tag, size_t size) __attribute__((weak));
void *ls_agent_tag_calloc(ls_tag_t *tag, size_t n, size_t size) __attribute__((weak));
void *ls_agent_tag_realloc(ls_tag_t *tag, void *p, size_t size) __attribute__((weak));
void *ls_agent_tag_memalign(ls_tag_t *tag, size_t align, size_t size) __attribute__((weak));
void ls_agent_tags_register(ls_tag_t *start, ls_tag_t *stop) __attribute__((weak));
void ls_agent_tags_unregister(ls_tag_t *start, ls_tag_t *stop) __attribute__((weak));

/* Bounds of this module's tags, defined by the linker for a section named like a C identifier;
 * hidden, so that each module sees its own. */
extern ls_tag_t __start_ls_tags[] __attribute__((weak, visibility("hidden")));
extern ls_tag_t __stop_ls_tags[] __attribute__((weak, visibility("hidden")));

#if defined(__x86_64__)
/* The address of a weak entry point, read from the GOT. A plain `if (fn)` on a weak function
 * compiles, in non-PIC code (-fno-PIE, linked -no-pie), to a constant that the linker sets to 0
 * when no library of the link defines fn: the agent preloaded at run time would never be seen.
 * A GOT load gets a dynamic relocation in every kind of module. */
#define LS_TAG_ENTRY(fn)                                                                           \
    __extension__({                                                                                \
        __typeof__(&fn) ls_e_;                                                                     \
        __asm__("movq " #fn "@GOTPCREL(%%rip), %0" : "=r"(ls_e_));                                 \
        ls_e_;                                                                                     \
    })
/* Referenced only from asm above: the assembler must still know them weak. */
__asm__(".weak ls_agent_tag_malloc\n.weak ls_agent_tag_calloc\n.weak ls_agent_tag_realloc\n"
        ".weak ls_agent_tag_memalign\n.weak ls_agent_tags_register\n"
        ".weak ls_agent_tags_unregister\n");
#else
#define LS_TAG_ENTRY(fn) (&fn)
#endif

/* One copy per translation unit; the agent ignores a module's second registration. */
__attribute__((constructor, used)) static void ls_tags_register_module_(void)
{
    void (*reg)(ls_tag_t *, ls_tag_t *) = LS_TAG_ENTRY(ls_agent_tags_register);
    if (reg && &__start_ls_tags[0] != &__stop_ls_tags[0]) reg(__start_ls_tags, __stop_ls_tags);
}

__attribute__((destructor, used)) static void ls_tags_unregister_module_(void)
{
    void (*unreg)(ls_tag_t *, ls_tag_t *) = LS_TAG_ENTRY(ls_agent_tags_unregister);
    if (unreg && &__start_ls_tags[0] != &__stop_ls_tags[0]) unreg(__start_ls_tags, __stop_ls_tags);
}

/* The calls, as macros rather than inline functions: an inlined function would be the innermost
 * frame of every tagged call in the reports of modes full and sample ("ls_tag_malloc_
 * (tags.h:85)"); a macro's code is the caller's, at the caller's line. */
#define ls_tag_malloc_(t, n)                                                                       \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, size_t) = LS_TAG_ENTRY(ls_agent_tag_malloc);                    \
        size_t ls_n_ = (n);                                                                        \
        ls_f_ ? ls_f_((t), ls_n_) : (malloc)(ls_n_);                                               \
    })

#define ls_tag_calloc_(t, n, size)                                                                 \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, size_t, size_t) = LS_TAG_ENTRY(ls_agent_tag_calloc);            \
        size_t ls_n_ = (n), ls_s_ = (size);                                                        \
        ls_f_ ? ls_f_((t), ls_n_, ls_s_) : (calloc)(ls_n_, ls_s_);                                 \
    })

#define ls_tag_realloc_(t, p, size)                                                                \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, void *, size_t) = LS_TAG_ENTRY(ls_agent_tag_realloc);           \
        void *ls_p_ = (p);                                                                         \
        size_t ls_s_ = (size);                                                                     \
        ls_f_ ? ls_f_((t), ls_p_, ls_s_) : (realloc)(ls_p_, ls_s_);                                \
    })

#define ls_tag_reallocarray_(t, p, n, size)                                                        \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, void *, size_t) = LS_TAG_ENTRY(ls_agent_tag_realloc);           \
        void *ls_p_ = (p), *ls_r_;                                                                 \
        size_t ls_n_ = (n), ls_s_ = (size), ls_total_;                                             \
        if (!ls_f_)                                                                                \
            ls_r_ = (reallocarray)(ls_p_, ls_n_, ls_s_);                                           \
        else if (__builtin_mul_overflow(ls_n_, ls_s_, &ls_total_)) {                               \
            errno = ENOMEM;                                                                        \
            ls_r_ = NULL;                                                                          \
        } else                                                                                     \
            ls_r_ = ls_f_((t), ls_p_, ls_total_);                                                  \
        ls_r_;                                                                                     \
    })

#define ls_tag_strdup_(t, s)                                                                       \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, size_t) = LS_TAG_ENTRY(ls_agent_tag_malloc);                    \
        const char *ls_str_ = (s);                                                                 \
        char *ls_r_;                                                                               \
        if (!ls_f_)                                                                                \
            ls_r_ = (strdup)(ls_str_);                                                             \
        else {                                                                                     \
            size_t ls_len_ = strlen(ls_str_) + 1;                                                  \
            ls_r_ = (char *)ls_f_((t), ls_len_);                                                   \
            if (ls_r_) memcpy(ls_r_, ls_str_, ls_len_);                                            \
        }                                                                                          \
        ls_r_;                                                                                     \
    })

#define ls_tag_strndup_(t, s, max)                                                                 \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, size_t) = LS_TAG_ENTRY(ls_agent_tag_malloc);                    \
        const char *ls_str_ = (s);                                                                 \
        size_t ls_max_ = (max);                                                                    \
        char *ls_r_;                                                                               \
        if (!ls_f_)                                                                                \
            ls_r_ = (strndup)(ls_str_, ls_max_);                                                   \
        else {                                                                                     \
            size_t ls_len_ = strnlen(ls_str_, ls_max_);                                            \
            ls_r_ = (char *)ls_f_((t), ls_len_ + 1);                                               \
            if (ls_r_) {                                                                           \
                memcpy(ls_r_, ls_str_, ls_len_);                                                   \
                ls_r_[ls_len_] = '\0';                                                             \
            }                                                                                      \
        }                                                                                          \
        ls_r_;                                                                                     \
    })

#define ls_tag_aligned_alloc_(t, align, size)                                                      \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, size_t, size_t) = LS_TAG_ENTRY(ls_agent_tag_memalign);          \
        size_t ls_a_ = (align), ls_s_ = (size);                                                    \
        ls_f_ ? ls_f_((t), ls_a_, ls_s_) : (aligned_alloc)(ls_a_, ls_s_);                          \
    })

#define ls_tag_memalign_(t, align, size)                                                           \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, size_t, size_t) = LS_TAG_ENTRY(ls_agent_tag_memalign);          \
        size_t ls_a_ = (align), ls_s_ = (size);                                                    \
        ls_f_ ? ls_f_((t), ls_a_, ls_s_) : (memalign)(ls_a_, ls_s_);                               \
    })

#define ls_tag_valloc_(t, size)                                                                    \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, size_t, size_t) = LS_TAG_ENTRY(ls_agent_tag_memalign);          \
        size_t ls_s_ = (size);                                                                     \
        ls_f_ ? ls_f_((t), (size_t)sysconf(_SC_PAGESIZE), ls_s_) : (valloc)(ls_s_);                \
    })

#define ls_tag_posix_memalign_(t, out, align, size)                                                \
    __extension__({                                                                                \
        void *(*ls_f_)(ls_tag_t *, size_t, size_t) = LS_TAG_ENTRY(ls_agent_tag_memalign);          \
        void **ls_o_ = (out);                                                                      \
        size_t ls_a_ = (align), ls_s_ = (size);                                                    \
        int ls_rc_;                                                                                \
        if (!ls_f_)                                                                                \
            ls_rc_ = (posix_memalign)(ls_o_, ls_a_, ls_s_);                                        \
        else if (ls_a_ % sizeof(void *) || (ls_a_ & (ls_a_ - 1)))                                  \
            ls_rc_ = EINVAL;                                                                       \
        else {                                                                                     \
            int ls_saved_ = errno;                                                                 \
            void *ls_r_ = ls_f_((t), ls_a_, ls_s_);                                                \
            if (ls_r_) {                                                                           \
                *ls_o_ = ls_r_;                                                                    \
                ls_rc_ = 0;                                                                        \
            } else {                                                                               \
                ls_rc_ = errno == EINVAL ? EINVAL : ENOMEM;                                        \
                errno = ls_saved_; /* posix_memalign reports through its result, not errno */      \
            }                                                                                      \
        }                                                                                          \
        ls_rc_;                                                                                    \
    })

/* A static tag for this call site, then the call. */
#define LS_TAG_CALL(kind_, fn_, ...)                                                               \
    __extension__({                                                                                \
        static ls_tag_t ls_tag_ __attribute__((section("ls_tags"), used, aligned(8))) = {          \
            LS_TAG_MAGIC, LS_TAG_VERSION, (kind_), __LINE__, 0, __FILE__, __func__};               \
        fn_(&ls_tag_, __VA_ARGS__);                                                                \
    })

/* Explicit tagging, always available. */
#define ls_tagged_malloc(n)                 LS_TAG_CALL(1, ls_tag_malloc_, (n))
#define ls_tagged_calloc(n, size)           LS_TAG_CALL(2, ls_tag_calloc_, (n), (size))
#define ls_tagged_realloc(p, size)          LS_TAG_CALL(3, ls_tag_realloc_, (p), (size))
#define ls_tagged_reallocarray(p, n, size)  LS_TAG_CALL(3, ls_tag_reallocarray_, (p), (n), (size))
#define ls_tagged_strdup(s)                 LS_TAG_CALL(1, ls_tag_strdup_, (s))
#define ls_tagged_strndup(s, n)             LS_TAG_CALL(1, ls_tag_strndup_, (s), (n))
#define ls_tagged_aligned_alloc(a, n)       LS_TAG_CALL(4, ls_tag_aligned_alloc_, (a), (n))
#define ls_tagged_memalign(a, n)            LS_TAG_CALL(4, ls_tag_memalign_, (a), (n))
#define ls_tagged_valloc(n)                 LS_TAG_CALL(4, ls_tag_valloc_, (n))
#define ls_tagged_posix_memalign(out, a, n) LS_TAG_CALL(4, ls_tag_posix_memalign_, (out), (a), (n))

#ifndef LEAKSCOPE_TAGS_EXPLICIT
#undef strdup /* older glibc defined these two as macros */
#undef strndup
#define malloc(n)                 ls_tagged_malloc(n)
#define calloc(n, size)           ls_tagged_calloc(n, size)
#define realloc(p, size)          ls_tagged_realloc(p, size)
#define reallocarray(p, n, size)  ls_tagged_reallocarray(p, n, size)
#define strdup(s)                 ls_tagged_strdup(s)
#define strndup(s, n)             ls_tagged_strndup(s, n)
#define aligned_alloc(a, n)       ls_tagged_aligned_alloc(a, n)
#define memalign(a, n)            ls_tagged_memalign(a, n)
#define valloc(n)                 ls_tagged_valloc(n)
#define posix_memalign(out, a, n) ls_tagged_posix_memalign(out, a, n)
#endif

#endif /* !__cplusplus && !LEAKSCOPE_TAGS_TYPES_ONLY */
#endif
