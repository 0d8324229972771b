/*
 * tags_workload.c - an allocation-heavy C program for the compile-time tags benchmark
 * (bench/run.py, workload "tags"). bench/CMakeLists.txt builds it twice from this one source:
 * tags_workload (plain) and tags_workload_tagged (-include leakscope/tags.h), same flags.
 *
 *   tags_workload gen WORDS FILE    writes a deterministic text corpus of WORDS words
 *   tags_workload run FILE ROUNDS   the workload: ROUNDS rounds over the corpus
 *
 * Each round does what a small text indexer does, the naive way: reads the file into a buffer
 * grown by realloc, splits it into words (a strndup per token, lowercased, freed after lookup),
 * counts them in a chained hash table (strdup'ed keys, malloc'ed entries, the table itself
 * calloc'ed and rehashed as it grows), records each word's positions in arrays grown by realloc,
 * builds a binary search tree of the words by count (one node per word) and renders the top 20
 * into a string grown by realloc; then frees everything. It prints the top words and a checksum,
 * the same for both builds and with or without the agent.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- corpus ---------------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* A vocabulary of syllable words, drawn with a skew (small ranks far more often), like text. */
static int gen(long words, const char *path)
{
    static const char *const syl[] = {"ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "an",
                                      "el", "or", "qu", "is", "um", "ve", "zo", "ba", "ch", "th"};
    enum { VOCAB = 40000 };
    char(*vocab)[24] = malloc(sizeof(*vocab) * VOCAB);
    if (!vocab) return 1;
    for (int i = 0; i < VOCAB; i++) {
        int n = 1 + (int)(next_rand() % 4), len = 0;
        for (int k = 0; k < n; k++)
            len += snprintf(vocab[i] + len, 24 - (size_t)len, "%s", syl[next_rand() % 20]);
        if (i % 7 == 0) vocab[i][0] = (char)toupper((unsigned char)vocab[i][0]);
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    for (long w = 0; w < words; w++) {
        uint32_t r = next_rand() % VOCAB;
        uint32_t rank = (uint32_t)((uint64_t)r * r / VOCAB * r / VOCAB); /* cubic skew */
        fputs(vocab[rank], f);
        fputc(w % 13 == 12 ? '\n' : w % 9 == 8 ? ',' : ' ', f);
        if (w % 9 == 8) fputc(' ', f);
    }
    free(vocab);
    return fclose(f) ? 1 : 0;
}

/* ---- the index ------------------------------------------------------------------------------- */

typedef struct entry {
    char *word;
    long count;
    long *pos; /* positions of the word, grown by realloc */
    size_t npos, cap;
    struct entry *next;
} entry_t;

typedef struct table {
    entry_t **b;
    size_t nb, n;
} table_t;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void rehash(table_t *t)
{
    size_t nb = t->nb ? t->nb * 2 : 1024;
    entry_t **b = calloc(nb, sizeof(*b));
    if (!b) abort();
    for (size_t i = 0; i < t->nb; i++)
        for (entry_t *e = t->b[i], *next; e; e = next) {
            next = e->next;
            size_t k = hash(e->word) & (nb - 1);
            e->next = b[k];
            b[k] = e;
        }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

static void add_word(table_t *t, const char *tok, size_t len, long pos)
{
    char *w = strndup(tok, len); /* the naive way: a copy per token */
    if (!w) abort();
    for (char *c = w; *c; c++) *c = (char)tolower((unsigned char)*c);
    if (t->n >= t->nb) rehash(t);
    size_t k = hash(w) & (t->nb - 1);
    entry_t *e = t->b[k];
    while (e && strcmp(e->word, w)) e = e->next;
    if (!e) {
        e = malloc(sizeof(*e));
        if (!e) abort();
        e->word = strdup(w);
        e->count = 0;
        e->pos = NULL;
        e->npos = e->cap = 0;
        e->next = t->b[k];
        t->b[k] = e;
        t->n++;
    }
    free(w);
    e->count++;
    if (e->npos == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 2;
        long *p = realloc(e->pos, cap * sizeof(*p));
        if (!p) abort();
        e->pos = p;
        e->cap = cap;
    }
    e->pos[e->npos++] = pos;
}

/* ---- the tree of words by count -------------------------------------------------------- */

typedef struct node {
    entry_t *e;
    struct node *l, *r;
} node_t;

static int before(const entry_t *a, const entry_t *b)
{
    return a->count != b->count ? a->count > b->count : strcmp(a->word, b->word) < 0;
}

static void insert(node_t **root, entry_t *e)
{
    node_t *n = malloc(sizeof(*n));
    if (!n) abort();
    n->e = e;
    n->l = n->r = NULL;
    while (*root) root = before(e, (*root)->e) ? &(*root)->l : &(*root)->r;
    *root = n;
}

/* In order (biggest count first), appending the first `left` words to out. */
static void top(const node_t *n, int *left, char **out, size_t *len, size_t *cap)
{
    if (!n || *left <= 0) return;
    top(n->l, left, out, len, cap);
    if (*left > 0) {
        char line[96];
        int k = snprintf(line, sizeof(line), "%s %ld\n", n->e->word, n->e->count);
        if (*len + (size_t)k + 1 > *cap) {
            *cap = (*len + (size_t)k + 1) * 2;
            char *o = realloc(*out, *cap);
            if (!o) abort();
            *out = o;
        }
        memcpy(*out + *len, line, (size_t)k + 1);
        *len += (size_t)k;
        (*left)--;
    }
    top(n->r, left, out, len, cap);
}

static void free_tree(node_t *n)
{
    while (n) {
        free_tree(n->l);
        node_t *r = n->r;
        free(n);
        n = r;
    }
}

static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n - 1 == 0) {
            char *b = realloc(buf, cap * 2);
            if (!b) abort();
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *size = n;
    return buf;
}

static int run(const char *path, int rounds)
{
    uint64_t sum = 0;
    char *last = NULL;
    for (int round = 0; round < rounds; round++) {
        size_t size;
        char *text = read_file(path, &size);
        if (!text) {
            perror(path);
            return 1;
        }
        table_t t = {NULL, 0, 0};
        long pos = 0;
        for (char *p = text; *p;) {
            while (*p && !isalpha((unsigned char)*p)) p++;
            char *s = p;
            while (isalpha((unsigned char)*p)) p++;
            if (p > s) add_word(&t, s, (size_t)(p - s), pos++);
        }
        node_t *root = NULL;
        for (size_t i = 0; i < t.nb; i++)
            for (entry_t *e = t.b[i]; e; e = e->next) insert(&root, e);
        char *out = NULL;
        size_t len = 0, cap = 0;
        int left = 20;
        top(root, &left, &out, &len, &cap);
        sum = sum * 31 + t.n + (uint64_t)pos + len;
        free_tree(root);
        for (size_t i = 0; i < t.nb; i++)
            for (entry_t *e = t.b[i], *next; e; e = next) {
                next = e->next;
                sum += e->pos[e->npos / 2];
                free(e->pos);
                free(e->word);
                free(e);
            }
        free(t.b);
        free(text);
        free(last);
        last = out;
    }
    printf("%schecksum %llu\n", last ? last : "", (unsigned long long)sum);
    free(last);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "gen")) return gen(atol(argv[2]), argv[3]);
    if (argc == 4 && !strcmp(argv[1], "run")) return run(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: tags_workload gen WORDS FILE | run FILE ROUNDS\n");
    return 2;
}
