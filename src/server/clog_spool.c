/* clog_spool.c - the local spool of spool mode (clog_spool.h): a durable, checksummed
 * append-only file of batches the store could not take, replayed into the store exactly
 * once.
 *
 * File: a header (8-byte magic, 16-byte random id, the first 16 bytes of the SHA-256 of
 * both), then entries: a 4-byte big-endian payload length, the payload, and the SHA-256
 * of length and payload. The payload: the batch number (8 bytes), the counts of records
 * and events (4 bytes each), then each record and event field by field (integers as 8
 * big-endian bytes, strings as a 4-byte length and the bytes, 0xFFFFFFFF for NULL).
 *
 * Why each step is where it is:
 *   - an entry is fsync'd before clog_spool_commit returns, and the messages are released
 *     only after that, so a message that was delivered has its entry on disk;
 *   - the file is emptied only after every entry is in the store, and emptying gives it a
 *     new id (truncate, fsync, new header, fsync): a crash before that leaves the old
 *     entries, which the store's marker then skips; a crash after leaves an empty or torn
 *     header, which is taken as a new empty spool (no entry can follow a header that was
 *     never completed);
 *   - a batch goes straight to the store only when the file holds no entry, so the store
 *     sees the batches in the order they were made, and the marker of the current id never
 *     passes a number still waiting in the file. */
#include "clog_spool.h"

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "PLYSPL01"
#define MAGIC_LEN 8
#define ID_LEN 16
#define HEADER_SUM_LEN 16
#define HEADER_LEN (MAGIC_LEN + ID_LEN + HEADER_SUM_LEN)
#define SUM_LEN 32
/* One batch's payload at most (a batch is one event-loop iteration's messages, each
 * bounded by max_stanza_size). Larger batches are refused, and so is such a length when
 * reading: it can only be damage. */
#define MAX_PAYLOAD (64u << 20)
/* A replay transaction takes whole entries up to about this much. */
#define CHUNK_ITEMS 2000
#define CHUNK_BYTES (16u << 20)
/* Replay transactions per flush of spool mode. */
#define REPLAY_CHUNKS_PER_FLUSH 2
/* While the store keeps failing, it is tried again after RETRY_MS, then twice as long
 * each time up to RETRY_MAX_MS: each try may wait for a connection or a lock with the
 * event loop stopped, and the spool keeps the records meanwhile. */
#define RETRY_MS 1000
#define RETRY_MAX_MS 10000
#define NULL_LEN 0xFFFFFFFFu

struct clog_spool {
    char *path;
    int fd;
    char id[2 * ID_LEN + 1]; /* hex: the source of the store's replay marker */
    off_t end;               /* where the next entry goes */
    off_t replay_off;        /* entries before this are in the store */
    int64_t next_no;         /* number of the next batch, spooled or not */
    size_t pending;          /* entries in the file */
    int needs_reset;         /* replayed completely, but emptying the file failed */
    int64_t retry_after_ms;  /* the store is not tried again before this (monotonic) */
    int64_t retry_ms;        /* the pause after the next failure */
    int outage_logged;
    size_t replayed, skipped; /* batches of the replay in progress, for its log line */
    size_t replayed_recs, replayed_evs;
    char error[512];
};

static int spool_error(clog_spool *sp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int spool_error(clog_spool *sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sp->error, sizeof sp->error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *clog_spool_error(const clog_spool *sp)
{
    return sp ? sp->error : "no spool";
}

size_t clog_spool_pending(const clog_spool *sp)
{
    return sp ? sp->pending : 0;
}

static void sha256(const void *a, size_t alen, const void *b, size_t blen,
                   unsigned char out[SUM_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, a, alen) != 1 || (blen && EVP_DigestUpdate(ctx, b, blen) != 1) ||
        EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != SUM_LEN) {
        /* A failing digest is a broken OpenSSL: as on allocation failure. */
        log_error("compliance spool: SHA-256 failed");
        abort();
    }
    EVP_MD_CTX_free(ctx);
}

/* ---- file I/O ---- */

static int write_all(int fd, const void *data, size_t len, off_t off)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* 1: read len bytes; 0: the file ends first; -1: error. */
static int read_all(int fd, void *data, size_t len, off_t off)
{
    char *p = data;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 1;
}

/* mkdir -p of path's directories, each new one 0700 (the spool holds message content). */
static int make_parents(clog_spool *sp, const char *path)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return spool_error(sp, "%.200s: path too long", path);
    char *last = strrchr(dir, '/');
    if (!last || last == dir)
        return 0;
    *last = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return spool_error(sp, "cannot create directory %.200s: %s", dir, strerror(errno));
        *p = saved;
        if (!saved)
            break;
    }
    return 0;
}

/* fsync the directory, so a newly created spool's name survives a crash too. */
static void sync_parent(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *last = strrchr(dir, '/');
    if (last == dir)
        last[1] = '\0';
    else if (last)
        *last = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void header_sum(const unsigned char *magic_id, unsigned char out[HEADER_SUM_LEN])
{
    unsigned char sum[SUM_LEN];
    sha256(magic_id, MAGIC_LEN + ID_LEN, NULL, 0, sum);
    memcpy(out, sum, HEADER_SUM_LEN);
}

/* Empty the file under a new id (see the top of the file for why in this order). */
static int new_generation(clog_spool *sp)
{
    unsigned char h[HEADER_LEN];
    memcpy(h, MAGIC, MAGIC_LEN);
    random_bytes(h + MAGIC_LEN, ID_LEN);
    header_sum(h, h + MAGIC_LEN + ID_LEN);
    if (ftruncate(sp->fd, 0) < 0 || fsync(sp->fd) < 0 || write_all(sp->fd, h, HEADER_LEN, 0) < 0 ||
        fdatasync(sp->fd) < 0) {
        sp->needs_reset = 1;
        return spool_error(sp, "compliance spool %s: cannot empty it: %s", sp->path,
                           strerror(errno));
    }
    clog_hex(h + MAGIC_LEN, ID_LEN, sp->id);
    sp->end = sp->replay_off = HEADER_LEN;
    sp->next_no = 1;
    sp->pending = 0;
    sp->needs_reset = 0;
    sp->replayed = sp->skipped = sp->replayed_recs = sp->replayed_evs = 0;
    return 0;
}

/* ---- entries ---- */

static void put_u32(buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    buf_append(b, x, 4);
}

static void put_i64(buf *b, int64_t v)
{
    uint64_t u = (uint64_t)v;
    unsigned char x[8];
    for (int i = 7; i >= 0; i--, u >>= 8)
        x[i] = (unsigned char)u;
    buf_append(b, x, 8);
}

static void put_str(buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    put_u32(b, s ? (uint32_t)n : NULL_LEN);
    if (s)
        buf_append(b, s, n);
}

/* The payload of batch no. */
static void encode_batch(buf *b, int64_t no, const clog_record *recs, size_t nrecs,
                         const clog_audit *evs, size_t nevs)
{
    put_i64(b, no);
    put_u32(b, (uint32_t)nrecs);
    put_u32(b, (uint32_t)nevs);
    for (size_t i = 0; i < nrecs; i++) {
        const clog_record *r = &recs[i];
        put_i64(b, r->ts_us);
        const char *a[] = {r->kind, r->sender, r->recipient, r->msg_id,
                           r->thread, r->type, r->subject, r->body};
        for (size_t k = 0; k < ARRAY_LEN(a); k++)
            put_str(b, a[k]);
        put_i64(b, r->encrypted ? 1 : 0);
        put_str(b, r->enc_ns);
        put_str(b, r->file_name);
        put_i64(b, r->file_size);
        const char *z[] = {r->file_type, r->file_sha256, r->outcome,
                           r->verdict,   r->reason,      r->stanza};
        for (size_t k = 0; k < ARRAY_LEN(z); k++)
            put_str(b, z[k]);
    }
    for (size_t i = 0; i < nevs; i++) {
        const clog_audit *e = &evs[i];
        put_i64(b, e->ts_us);
        const char *a[] = {e->actor, e->event, e->target, e->peer, e->detail};
        for (size_t k = 0; k < ARRAY_LEN(a); k++)
            put_str(b, a[k]);
    }
}

/* A bounded reader over one payload; any overrun sets bad and yields zeros / NULL. */
typedef struct reader {
    const unsigned char *p;
    size_t left;
    int bad;
} reader;

static uint64_t get_be(reader *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    r->left -= n;
    return v;
}

static char *get_str(reader *r)
{
    uint32_t n = (uint32_t)get_be(r, 4);
    if (r->bad || n == NULL_LEN)
        return NULL;
    if (n > r->left || memchr(r->p, '\0', n)) {
        r->bad = 1;
        return NULL;
    }
    char *s = xstrndup((const char *)r->p, n);
    r->p += n;
    r->left -= n;
    return s;
}

/* A decoded batch (owns its strings). */
typedef struct batch {
    clog_record *recs;
    size_t nrecs, rcap;
    clog_audit *evs;
    size_t nevs, ecap;
} batch;

static void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->nrecs; i++)
        clog_record_clear(&b->recs[i]);
    for (size_t i = 0; i < b->nevs; i++)
        clog_audit_clear(&b->evs[i]);
    b->nrecs = b->nevs = 0;
}

static void batch_free(batch *b)
{
    batch_clear(b);
    free(b->recs);
    free(b->evs);
    memset(b, 0, sizeof *b);
}

/* Append the payload's records and events to b; its number in *no. -1 if undecodable. */
static int decode_batch(const unsigned char *data, size_t len, int64_t *no, batch *b)
{
    reader r = {data, len, 0};
    *no = (int64_t)get_be(&r, 8);
    uint64_t nrecs = get_be(&r, 4), nevs = get_be(&r, 4);
    /* Every record takes at least 8 + 20 * 4 bytes, every event 8 + 5 * 4: counts beyond
     * what the payload can hold are damage, not an allocation to attempt. */
    if (r.bad || nrecs > len / 88 || nevs > len / 28)
        return -1;
    for (uint64_t i = 0; i < nrecs && !r.bad; i++) {
        if (b->nrecs == b->rcap) {
            b->rcap = b->rcap ? 2 * b->rcap : 64;
            b->recs = xrealloc(b->recs, b->rcap * sizeof *b->recs);
        }
        clog_record *c = &b->recs[b->nrecs++];
        memset(c, 0, sizeof *c);
        c->ts_us = (int64_t)get_be(&r, 8);
        char **a[] = {&c->kind, &c->sender, &c->recipient, &c->msg_id,
                      &c->thread, &c->type, &c->subject, &c->body};
        for (size_t k = 0; k < ARRAY_LEN(a); k++)
            *a[k] = get_str(&r);
        c->encrypted = get_be(&r, 8) != 0;
        c->enc_ns = get_str(&r);
        c->file_name = get_str(&r);
        c->file_size = (int64_t)get_be(&r, 8);
        char **z[] = {&c->file_type, &c->file_sha256, &c->outcome,
                      &c->verdict,   &c->reason,      &c->stanza};
        for (size_t k = 0; k < ARRAY_LEN(z); k++)
            *z[k] = get_str(&r);
    }
    for (uint64_t i = 0; i < nevs && !r.bad; i++) {
        if (b->nevs == b->ecap) {
            b->ecap = b->ecap ? 2 * b->ecap : 64;
            b->evs = xrealloc(b->evs, b->ecap * sizeof *b->evs);
        }
        clog_audit *e = &b->evs[b->nevs++];
        memset(e, 0, sizeof *e);
        e->ts_us = (int64_t)get_be(&r, 8);
        char **a[] = {&e->actor, &e->event, &e->target, &e->peer, &e->detail};
        for (size_t k = 0; k < ARRAY_LEN(a); k++)
            *a[k] = get_str(&r);
    }
    return r.bad || r.left ? -1 : 0;
}

typedef enum { ENTRY_OK, ENTRY_END, ENTRY_TORN, ENTRY_BAD, ENTRY_IOERR } entry_status;

/* One entry's payload as read back (the buffer is reused from entry to entry). */
typedef struct entry_buf {
    unsigned char *data;
    size_t len, cap;
} entry_buf;

/* Read the entry at off into pl; *next: the offset after it. Damage counts as a torn
 * write when it can be the last write: entries are appended only after the one before is
 * fsync'd, so only the last one can have been cut short. */
static entry_status read_entry(clog_spool *sp, off_t off, off_t size, entry_buf *pl, off_t *next)
{
    if (off >= size)
        return ENTRY_END;
    unsigned char len4[4];
    if (size - off < 4)
        return ENTRY_TORN;
    if (read_all(sp->fd, len4, 4, off) != 1)
        return ENTRY_IOERR;
    uint32_t len = (uint32_t)len4[0] << 24 | (uint32_t)len4[1] << 16 | (uint32_t)len4[2] << 8 |
                   len4[3];
    if (len < 16 || len > MAX_PAYLOAD)
        return size - off <= 4 + (off_t)MAX_PAYLOAD + SUM_LEN ? ENTRY_TORN : ENTRY_BAD;
    off_t total = 4 + (off_t)len + SUM_LEN;
    if (size - off < total)
        return ENTRY_TORN;
    if (pl->cap < len + SUM_LEN) {
        pl->cap = len + SUM_LEN;
        pl->data = xrealloc(pl->data, pl->cap);
    }
    if (read_all(sp->fd, pl->data, len + SUM_LEN, off + 4) != 1)
        return ENTRY_IOERR;
    pl->len = len;
    unsigned char sum[SUM_LEN];
    sha256(len4, 4, pl->data, len, sum);
    if (memcmp(sum, pl->data + len, SUM_LEN) != 0)
        return off + total == size ? ENTRY_TORN : ENTRY_BAD;
    *next = off + total;
    return ENTRY_OK;
}

static int64_t entry_number(const entry_buf *pl)
{
    reader r = {pl->data, pl->len, 0};
    return (int64_t)get_be(&r, 8);
}

/* Check the whole file: header, entries in increasing number, a torn tail cut off. */
static int load(clog_spool *sp)
{
    struct stat st;
    if (fstat(sp->fd, &st) < 0)
        return spool_error(sp, "compliance spool %s: %s", sp->path, strerror(errno));
    off_t size = st.st_size;
    unsigned char h[HEADER_LEN], sum[HEADER_SUM_LEN];
    int got = size >= HEADER_LEN ? read_all(sp->fd, h, HEADER_LEN, 0) : 0;
    if (got < 0)
        return spool_error(sp, "compliance spool %s: %s", sp->path, strerror(errno));
    if (got == 1)
        header_sum(h, sum);
    if (got != 1 || memcmp(h, MAGIC, MAGIC_LEN) != 0 ||
        memcmp(sum, h + MAGIC_LEN + ID_LEN, HEADER_SUM_LEN) != 0) {
        /* New, or a header whose writing was cut short: no entry can follow that. */
        if (size <= HEADER_LEN)
            return new_generation(sp);
        return spool_error(sp,
                           "compliance spool %s: not a spool file, or its header is damaged "
                           "(%lld bytes kept as they are)",
                           sp->path, (long long)size);
    }
    clog_hex(h + MAGIC_LEN, ID_LEN, sp->id);
    entry_buf pl = {0};
    off_t off = HEADER_LEN;
    int64_t last = 0;
    size_t count = 0;
    int rc = 0;
    for (;;) {
        off_t next = off;
        entry_status es = read_entry(sp, off, size, &pl, &next);
        if (es == ENTRY_END)
            break;
        if (es == ENTRY_OK) {
            int64_t no = entry_number(&pl);
            if (no <= last) {
                es = ENTRY_BAD;
            } else {
                last = no;
                count++;
                off = next;
                continue;
            }
        }
        if (es == ENTRY_TORN) {
            /* A crash while writing it: it was never fsync'd, so its messages were never
             * released. Cut it off so that new entries follow the good ones. */
            log_warn("compliance spool %s: the last entry (at byte %lld, %lld bytes) is "
                     "incomplete or fails its checksum (a crash while writing it); ignored: its "
                     "messages were never delivered",
                     sp->path, (long long)off, (long long)(size - off));
            if (ftruncate(sp->fd, off) < 0 || fsync(sp->fd) < 0)
                rc = spool_error(sp, "compliance spool %s: cutting off the torn entry: %s",
                                 sp->path, strerror(errno));
            break;
        }
        if (es == ENTRY_IOERR)
            rc = spool_error(sp, "compliance spool %s: reading: %s", sp->path, strerror(errno));
        else
            rc = spool_error(sp,
                             "compliance spool %s: entry at byte %lld is damaged and entries "
                             "follow it; the file is kept as it is for inspection",
                             sp->path, (long long)off);
        break;
    }
    free(pl.data);
    if (rc < 0)
        return -1;
    if (count == 0)
        return new_generation(sp); /* also: never reuse numbers a marker may have passed */
    sp->end = off;
    sp->replay_off = HEADER_LEN;
    sp->pending = count;
    sp->next_no = last + 1;
    log_warn("compliance spool %s: %zu batches wait to be replayed into the store", sp->path,
             count);
    return 0;
}

clog_spool *clog_spool_open(const char *path, char *err, size_t errlen)
{
    clog_spool *sp = xcalloc(1, sizeof *sp);
    sp->fd = -1;
    sp->path = xstrdup(path);
    if (!*path) {
        spool_error(sp, "compliance spool: no file name");
        goto fail;
    }
    if (make_parents(sp, path) < 0)
        goto fail;
    sp->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (sp->fd < 0) {
        spool_error(sp, "compliance spool %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(sp->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        spool_error(sp, "compliance spool %s: not a regular file", path);
        goto fail;
    }
    if ((st.st_mode & 077) && fchmod(sp->fd, 0600) == 0)
        log_warn("compliance spool %s: was readable by others; now 0600", path);
    if (flock(sp->fd, LOCK_EX | LOCK_NB) < 0) {
        spool_error(sp, "compliance spool %s: %s", path,
                    errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
        goto fail;
    }
    sync_parent(path);
    if (load(sp) < 0)
        goto fail;
    return sp;
fail:
    snprintf(err, errlen, "%s", sp->error);
    clog_spool_close(sp);
    return NULL;
}

void clog_spool_close(clog_spool *sp)
{
    if (!sp)
        return;
    if (sp->fd >= 0)
        close(sp->fd); /* releases the lock */
    free(sp->path);
    free(sp);
}

/* Append batch no as an entry and make it durable. */
static int write_entry(clog_spool *sp, int64_t no, const clog_record *recs, size_t nrecs,
                       const clog_audit *evs, size_t nevs)
{
    if (sp->needs_reset && new_generation(sp) < 0)
        return -1;
    buf b;
    buf_init(&b);
    put_u32(&b, 0); /* the length, filled in below */
    encode_batch(&b, no, recs, nrecs, evs, nevs);
    size_t len = b.len - 4;
    if (len > MAX_PAYLOAD) {
        buf_free(&b);
        return spool_error(sp, "compliance spool %s: a batch of %zu bytes is too large", sp->path,
                           len);
    }
    b.data[0] = (char)(len >> 24);
    b.data[1] = (char)(len >> 16);
    b.data[2] = (char)(len >> 8);
    b.data[3] = (char)len;
    unsigned char sum[SUM_LEN];
    sha256(b.data, 4, b.data + 4, len, sum);
    buf_append(&b, sum, SUM_LEN);
    int rc = 0;
    if (write_all(sp->fd, b.data, b.len, sp->end) < 0 || fdatasync(sp->fd) < 0) {
        rc = spool_error(sp, "compliance spool %s: writing: %s", sp->path, strerror(errno));
        /* What did reach the file must not be taken for an entry later. */
        if (ftruncate(sp->fd, sp->end) < 0)
            log_error("compliance spool %s: cannot cut off a failed write: %s", sp->path,
                      strerror(errno));
    } else {
        sp->end += (off_t)b.len;
        sp->pending++;
    }
    buf_free(&b);
    return rc;
}

int clog_spool_write(clog_spool *sp, const clog_record *recs, size_t nrecs,
                     const clog_audit *evs, size_t nevs)
{
    if (write_entry(sp, sp->next_no, recs, nrecs, evs, nevs) < 0)
        return -1;
    sp->next_no++;
    return 0;
}

/* One replay transaction: the batches numbered first..last. */
static int flush_chunk(clog_spool *sp, clog *log, batch *b, int64_t first, int64_t last)
{
    int rc = clog_append_marked(log, b->recs, b->nrecs, b->evs, b->nevs, sp->id, first, last);
    batch_clear(b);
    return rc < 0 ? -1 : 0;
}

/* Replay from replay_off, at most max_chunks transactions (0: all). 0: everything is in
 * the store and the spool was emptied; 1: more is left for the next call; -1: error. */
static int replay(clog_spool *sp, clog *log, int max_chunks)
{
    if (sp->needs_reset)
        return new_generation(sp);
    if (sp->pending == 0)
        return 0;
    int64_t done = 0;
    if (clog_marker(log, sp->id, &done) < 0)
        return -1;
    entry_buf pl = {0};
    batch b = {0};
    int64_t first = 0, last = 0;
    size_t bytes = 0, entries = 0, nrecs = 0, nevs = 0, skipped = 0;
    int rc = 0, chunks = 0;
    off_t off = sp->replay_off;
    while (off < sp->end) {
        off_t next = off;
        if (read_entry(sp, off, sp->end, &pl, &next) != ENTRY_OK) {
            rc = spool_error(sp, "compliance spool %s: the entry at byte %lld cannot be read "
                                 "back (damaged since it was written?)",
                             sp->path, (long long)off);
            log_error("%s", sp->error);
            break;
        }
        int64_t no = 0;
        size_t had_recs = b.nrecs, had_evs = b.nevs;
        if (decode_batch(pl.data, pl.len, &no, &b) < 0) {
            rc = spool_error(sp, "compliance spool %s: batch %lld cannot be decoded", sp->path,
                             (long long)no);
            log_error("%s", sp->error);
            break;
        }
        off = next;
        entries++;
        if (no <= done) { /* in the store already: skip it */
            while (b.nrecs > had_recs)
                clog_record_clear(&b.recs[--b.nrecs]);
            while (b.nevs > had_evs)
                clog_audit_clear(&b.evs[--b.nevs]);
            skipped++;
        } else {
            if (!first)
                first = no;
            last = no;
            nrecs += b.nrecs - had_recs;
            nevs += b.nevs - had_evs;
            bytes += pl.len;
        }
        if (b.nrecs + b.nevs < CHUNK_ITEMS && bytes < CHUNK_BYTES && off < sp->end)
            continue;
        /* Whole entries per transaction: the marker covers a batch completely or not. */
        if (first && flush_chunk(sp, log, &b, first, last) < 0) {
            rc = -1;
            break;
        }
        sp->replay_off = off;
        sp->pending -= entries;
        sp->replayed += entries - skipped;
        sp->skipped += skipped;
        sp->replayed_recs += nrecs;
        sp->replayed_evs += nevs;
        first = 0;
        bytes = entries = nrecs = nevs = skipped = 0;
        if (++chunks == max_chunks && off < sp->end) {
            rc = 1;
            break;
        }
    }
    batch_free(&b);
    free(pl.data);
    if (rc != 0)
        return rc;
    sp->retry_after_ms = 0; /* the store took it all: it is back */
    sp->retry_ms = RETRY_MS;
    sp->outage_logged = 0;
    log_info("compliance: replayed %zu spooled batches (%zu records, %zu audit events) from %s "
             "into the store%s",
             sp->replayed, sp->replayed_recs, sp->replayed_evs, sp->path,
             sp->skipped ? "; batches already there were skipped" : "");
    if (new_generation(sp) < 0) {
        log_error("%s (every batch is in the store; the next write tries again)", sp->error);
        return -1;
    }
    return 0;
}

int clog_spool_replay(clog_spool *sp, clog *log)
{
    return replay(sp, log, 0);
}

static void note_outage(clog_spool *sp, clog *log)
{
    if (sp->retry_ms < RETRY_MS)
        sp->retry_ms = RETRY_MS;
    sp->retry_after_ms = time_mono_ms() + sp->retry_ms;
    sp->retry_ms = sp->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : sp->retry_ms * 2;
    if (sp->outage_logged)
        return;
    sp->outage_logged = 1;
    log_warn("compliance: the store cannot be written (%s); records are spooled to %s until it "
             "can",
             clog_last_error(log), sp->path);
}

int clog_spool_commit(clog_spool *sp, clog *log, clog_record *recs, size_t nrecs,
                      clog_audit *evs, size_t nevs)
{
    int64_t now = time_mono_ms();
    int store_ok = now >= sp->retry_after_ms;
    if ((sp->pending || sp->needs_reset) && store_ok) {
        /* A share per flush: a long outage's backlog must not stop the event loop for
         * long; the rest goes at the next flushes, new batches queueing behind it. */
        if (replay(sp, log, REPLAY_CHUNKS_PER_FLUSH) < 0) {
            note_outage(sp, log);
            store_ok = 0;
        }
    }
    if (nrecs == 0 && nevs == 0)
        return 0;
    int64_t no = sp->next_no;
    if (store_ok && sp->pending == 0 && !sp->needs_reset) {
        /* Marked like a spooled batch: if the commit's answer is lost, the same batch is
         * spooled under the same number, and the replay finds it in the store. */
        sp->next_no++;
        if (clog_append_marked(log, recs, nrecs, evs, nevs, sp->id, no, no) >= 0) {
            sp->outage_logged = 0;
            sp->retry_ms = RETRY_MS;
            return 0;
        }
        note_outage(sp, log);
    } else {
        sp->next_no++;
    }
    if (write_entry(sp, no, recs, nrecs, evs, nevs) < 0) {
        log_error("%s", sp->error);
        return -1;
    }
    return 0;
}
