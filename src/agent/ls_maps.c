/*
 * ls_maps.c - reads /proc/self/maps with open/read into a fixed buffer and parses it line by
 * line. Used while other threads are parked (they may hold the allocator's or stdio's locks),
 * so it must not touch either.
 */
#include "ls_agent.h"
#include "ls_unwind.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static uintptr_t parse_hex(const char **p)
{
    uintptr_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9')
            v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else
            break;
    }
    return v;
}

static int parse_line(char *line, ls_mapping_t *m)
{
    const char *p = line;
    m->lo = parse_hex(&p);
    if (*p++ != '-') return -1;
    m->hi = parse_hex(&p);
    if (*p++ != ' ') return -1;
    if (strlen(p) < 5) return -1;
    m->r = p[0] == 'r';
    m->w = p[1] == 'w';
    m->x = p[2] == 'x';
    m->shared = p[3] == 's';
    p += 5;
    m->offset = parse_hex(&p);
    /* skip " dev inode" then spaces up to the path */
    for (int field = 0; field < 2; field++) {
        while (*p == ' ') p++;
        while (*p && *p != ' ') p++;
    }
    while (*p == ' ') p++;
    m->path = p;
    return 0;
}

int ls__maps_foreach(int (*fn)(const ls_mapping_t *m, void *ctx), void *ctx)
{
    int fd = ls__maps_open();
    if (fd < 0) return -1;
    char buf[8192];
    size_t len = 0;
    int stop = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = 0;
        char *line = buf;
        char *nl;
        while ((nl = memchr(line, '\n', len - (size_t)(line - buf)))) {
            *nl = 0;
            ls_mapping_t m;
            if (!parse_line(line, &m) && fn(&m, ctx)) {
                stop = 1;
                break;
            }
            line = nl + 1;
        }
        if (stop) break;
        size_t rest = len - (size_t)(line - buf);
        if (rest == sizeof(buf) - 1) rest = 0; /* a line longer than the buffer: drop it */
        memmove(buf, line, rest);
        len = rest;
    }
    close(fd);
    return 0;
}
