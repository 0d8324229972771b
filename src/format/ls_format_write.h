/*
 * ls_format_write.h - snapshot writer. Used inside the agent, so it never allocates: the caller
 * hands it a buffer, it writes with write(2)/pwrite(2) and remembers the first error.
 */
#ifndef LS_FORMAT_WRITE_H
#define LS_FORMAT_WRITE_H

#include "ls_format.h"

typedef struct ls_fmt_writer {
    int fd;
    int error;             /* errno of the first failure; later calls do nothing */
    uint64_t offset;       /* bytes handed to the file so far (flushed or buffered) */
    uint64_t chunk_offset; /* file offset of the open chunk's header */
    uint32_t chunk_type;   /* 0 when no chunk is open */
    uint32_t chunk_crc;
    uint64_t chunk_size;
    uint32_t nchunks;
    char *buf;
    size_t buf_len, buf_cap;
} ls_fmt_writer_t;

/* Starts a file on fd (at offset 0) and writes its header into buf (cap >= 4096). */
void ls_fmt_writer_init(ls_fmt_writer_t *w, int fd, void *buf, size_t cap);
void ls_fmt_chunk_begin(ls_fmt_writer_t *w, uint32_t type);
void ls_fmt_put(ls_fmt_writer_t *w, const void *data, size_t len);
void ls_fmt_put_u64(ls_fmt_writer_t *w, uint16_t key, uint64_t v);
void ls_fmt_put_i64(ls_fmt_writer_t *w, uint16_t key, int64_t v);
void ls_fmt_put_str(ls_fmt_writer_t *w, uint16_t key, const char *s);
/* Pads the payload to 8 bytes and writes the chunk header with count, size and CRC. */
void ls_fmt_chunk_end(ls_fmt_writer_t *w, uint32_t count);
/* Writes the END chunk and flushes; returns 0 or the first errno seen. */
int ls_fmt_writer_finish(ls_fmt_writer_t *w);

/* zlib-compatible CRC-32 (crc32(crc, data, len) of zlib): the chunk checksum. */
uint32_t ls_fmt_crc32(uint32_t crc, const void *data, size_t len);

#endif
