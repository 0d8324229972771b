/*
 * ls_format_write.c - snapshot writer (see ls_format.h for the layout).
 *
 * Chunk headers carry the payload's size and CRC, which are known only at the chunk's end, so
 * the header is written as a placeholder and patched with pwrite(2) when the chunk closes. The
 * writer never allocates and never calls stdio: it runs inside the agent, possibly at exit or in
 * a signal handler, with the host's allocator in any state.
 */
#include "ls_format_write.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* The chunk CRC: zlib's crc32 (IEEE 802.3, reflected 0xEDB88320), which the reader checks with
 * zlib itself. Written here because linking zlib for this put 84 KB of resident library pages
 * into every host process (perl, mode sample) for 30 lines of code; a byte-wise table does
 * ~1 GB/s, a few ms for a big snapshot. tests/format compares it with zlib's on random data. */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t ls_fmt_crc32(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void writer_flush(ls_fmt_writer_t *w)
{
    size_t done = 0;
    while (!w->error && done < w->buf_len) {
        ssize_t n = write(w->fd, w->buf + done, w->buf_len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            w->error = n < 0 ? errno : EIO;
            break;
        }
        done += (size_t)n;
    }
    w->buf_len = 0;
}

static void writer_raw(ls_fmt_writer_t *w, const void *data, size_t len)
{
    const char *p = data;
    while (len && !w->error) {
        if (w->buf_len == w->buf_cap) writer_flush(w);
        size_t n = w->buf_cap - w->buf_len;
        if (n > len) n = len;
        memcpy(w->buf + w->buf_len, p, n);
        w->buf_len += n;
        w->offset += n;
        p += n;
        len -= n;
    }
}

void ls_fmt_writer_init(ls_fmt_writer_t *w, int fd, void *buf, size_t cap)
{
    memset(w, 0, sizeof(*w));
    w->fd = fd;
    w->buf = buf;
    w->buf_cap = cap;
    ls_fmt_file_header_t h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, LS_FMT_MAGIC, sizeof(h.magic));
    h.version_major = LS_FMT_VERSION_MAJOR;
    h.version_minor = LS_FMT_VERSION_MINOR;
    h.header_size = sizeof(h);
    writer_raw(w, &h, sizeof(h));
}

void ls_fmt_chunk_begin(ls_fmt_writer_t *w, uint32_t type)
{
    ls_fmt_chunk_header_t h;
    memset(&h, 0, sizeof(h));
    w->chunk_offset = w->offset;
    w->chunk_type = type;
    w->chunk_crc = 0;
    w->chunk_size = 0;
    writer_raw(w, &h, sizeof(h));
}

void ls_fmt_put(ls_fmt_writer_t *w, const void *data, size_t len)
{
    w->chunk_crc = ls_fmt_crc32(w->chunk_crc, data, len);
    w->chunk_size += len;
    writer_raw(w, data, len);
}

static void put_item(ls_fmt_writer_t *w, uint16_t key, uint16_t type, const void *data,
                     uint32_t len)
{
    static const char zeros[8];
    ls_fmt_item_t it = {key, type, len};
    ls_fmt_put(w, &it, sizeof(it));
    ls_fmt_put(w, data, len);
    ls_fmt_put(w, zeros, ls_fmt_pad8(len) - len);
}

void ls_fmt_put_u64(ls_fmt_writer_t *w, uint16_t key, uint64_t v)
{
    put_item(w, key, LS_ITEM_U64, &v, 8);
}

void ls_fmt_put_i64(ls_fmt_writer_t *w, uint16_t key, int64_t v)
{
    put_item(w, key, LS_ITEM_I64, &v, 8);
}

void ls_fmt_put_str(ls_fmt_writer_t *w, uint16_t key, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 65536) n = 65536; /* a meta string is never longer; bound what a reader must hold */
    put_item(w, key, LS_ITEM_STR, s ? s : "", (uint32_t)n);
}

void ls_fmt_chunk_end(ls_fmt_writer_t *w, uint32_t count)
{
    static const char zeros[8];
    size_t pad = ls_fmt_pad8(w->chunk_size) - w->chunk_size;
    if (pad) ls_fmt_put(w, zeros, pad);
    ls_fmt_chunk_header_t h;
    memset(&h, 0, sizeof(h));
    h.type = w->chunk_type;
    h.count = count;
    h.size = w->chunk_size;
    h.crc32 = w->chunk_crc;
    w->chunk_type = 0;
    w->nchunks++;
    /* The header may still sit in the buffer or already be on disk. */
    uint64_t buf_start = w->offset - w->buf_len;
    if (w->chunk_offset >= buf_start) {
        memcpy(w->buf + (w->chunk_offset - buf_start), &h, sizeof(h));
        return;
    }
    writer_flush(w);
    if (w->error) return;
    if (pwrite(w->fd, &h, sizeof(h), (off_t)w->chunk_offset) != (ssize_t)sizeof(h))
        w->error = errno ? errno : EIO;
}

int ls_fmt_writer_finish(ls_fmt_writer_t *w)
{
    uint32_t n = w->nchunks;
    ls_fmt_chunk_begin(w, LS_CHUNK_END);
    ls_fmt_chunk_end(w, n);
    writer_flush(w);
    return w->error;
}
