/* upload_http.c - the meaning of XEP-0363's HTTPS requests in parleyd (see
 * upload_http.h): PUT into a slot, GET/HEAD of a file, both authorised by the
 * capability in the URL; records before anything is acknowledged or served.
 *
 * URLs: /upload/ID/CAP/NAME (PUT) and /file/ID/CAP/NAME (GET, HEAD), where CAP is the
 * HMAC of the purpose and ID under the server's key (upload_capability). NAME is only
 * for people and programs that save the file: the file is found by ID alone, and its
 * bytes by the SHA-256 the server computed. */
#include "upload_http.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "upload.h"
#include "upload_policy.h"

#include <magic.h>
#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A request that waits for its compliance record to commit. Freed by the callback, never
 * by the connection (which may be gone by then: hold.conn is NULL). */
typedef struct waiting {
    http_hold hold;
    int head;
    int status;
    char *headers;
    int fd;
    int64_t offset, len;
    file_meta m;        /* PUT: the stored file */
    int quarantined;
} waiting;

/* The per-request state of a PUT in progress. */
typedef struct put_state {
    file_meta m;
    int fd;
    char tmp[4096];
    EVP_MD_CTX *sha;
    int64_t got;
    int committed;
} put_state;

/* Slots with a PUT in progress: a second PUT to the same slot is refused at once. */
static dict *uploading(server *srv)
{
    return srv->upload->uploading;
}

/* ---- URLs ---- */

typedef struct target {
    char id[FILES_ID_LEN + 1];
    char cap[65];
} target;

/* "/PREFIX/ID/CAP[/NAME]" -> 0 with t filled, or -1. */
static int parse_target(const char *path, const char *prefix, target *t)
{
    size_t plen = strlen(prefix);
    if (path[0] != '/' || strncmp(path + 1, prefix, plen) != 0 || path[1 + plen] != '/')
        return -1;
    const char *p = path + 2 + plen;
    size_t n = strcspn(p, "/");
    if (n != FILES_ID_LEN)
        return -1;
    memcpy(t->id, p, n);
    t->id[n] = '\0';
    p += n;
    if (*p != '/')
        return -1;
    p++;
    n = strcspn(p, "/");
    if (n != 64)
        return -1;
    memcpy(t->cap, p, n);
    t->cap[n] = '\0';
    p += n;
    /* the name segment is optional and never used; nothing may follow it */
    if (*p == '/' && strchr(p + 1, '/'))
        return -1;
    for (const char *c = t->id; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return -1;
    return 0;
}

/* Constant-time: the comparison must not tell how much of a guess was right. */
static int capability_ok(server *srv, const char *purpose, const target *t)
{
    char want[65];
    upload_capability(srv, purpose, t->id, want);
    int ok = ct_equal(want, t->cap, 64);
    secure_wipe(want, sizeof want);
    return ok;
}

/* ---- PUT ---- */

static void put_free(put_state *ps, server *srv)
{
    if (ps->fd >= 0)
        close(ps->fd);
    if (ps->tmp[0] && !ps->committed)
        unlink(ps->tmp);
    dict_del(uploading(srv), ps->m.id);
    EVP_MD_CTX_free(ps->sha);
    file_meta_clear(&ps->m);
    free(ps);
}

static int disk_full(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

static void storage_failed(http_conn *h, put_state *ps, int err)
{
    server *srv = http_server(h);
    if (disk_full(err)) {
        log_error("upload: disk full storing %.8s... in %s: %s", ps->m.id, srv->cfg.upload_dir,
                  strerror(err));
        char text[600];
        snprintf(text, sizeof text, "Your upload of \"%s\" failed: the server has no room "
                                    "to store it. Try again later or send a smaller file.",
                 ps->m.name ? ps->m.name : "?");
        upload_notify(srv, &ps->m, text);
        upload_record(srv, &ps->m, "upload", "failed", NULL, "insufficient storage",
                      http_peer(h), NULL, NULL);
        http_refuse(h, 507, "insufficient storage: the server's disk is full");
    } else if (err == EWOULDBLOCK) {
        /* files_publish: another process held the objects lock too long */
        log_error("upload: storing %.8s... failed: the objects lock is busy", ps->m.id);
        http_refuse(h, 503, "the file store is busy; try again later");
    } else {
        log_error("upload: storing %.8s... failed: %s", ps->m.id, strerror(err));
        http_refuse(h, 500, "the file could not be stored");
    }
}

static int put_begin(http_conn *h, const http_request *req)
{
    server *srv = http_server(h);
    target t;
    if (parse_target(req->path, "upload", &t) < 0) {
        http_respond(h, 404, "not found", 0);
        return -1;
    }
    if (!capability_ok(srv, "put", &t)) {
        http_respond(h, 403, "this URL does not authorise an upload", 1);
        return -1;
    }
    put_state *ps = xcalloc(1, sizeof *ps);
    ps->fd = -1;
    store_status st = files_meta_get(srv->store, t.id, &ps->m);
    if (st != STORE_OK) {
        free(ps);
        if (st == STORE_NOT_FOUND)
            http_respond(h, 404, "no such upload slot (expired or never granted)", 1);
        else
            http_respond(h, 503, "the file store is unavailable", 1);
        return -1;
    }
    const char *why = NULL;
    int status = 0;
    if (ps->m.state != FILE_PENDING) {
        status = 409, why = "this slot has already been used: a slot takes one upload";
    } else if (dict_get(uploading(srv), ps->m.id)) {
        status = 409, why = "an upload into this slot is already in progress";
    } else if (ps->m.expires_us < time_now_us()) {
        status = 410, why = "this upload slot has expired";
    } else if (req->chunked || req->content_length < 0) {
        status = 411, why = "Content-Length is required (the slot's exact size)";
    } else if (req->content_length > ps->m.size) {
        status = 413, why = "the body is larger than the slot";
    } else if (req->content_length != ps->m.size) {
        status = 400, why = "Content-Length must be exactly the slot's size";
    }
    if (why) {
        log_info("upload: PUT %.8s... from %s refused: %s", ps->m.id, http_peer(h), why);
        file_meta_clear(&ps->m);
        free(ps);
        http_respond(h, status, why, 1);
        return -1;
    }
    ps->fd = files_tmp_create(srv->cfg.upload_dir, ps->tmp, sizeof ps->tmp);
    if (ps->fd < 0) {
        int e = errno;
        ps->tmp[0] = '\0';
        http_set_state(h, ps);
        dict_set(uploading(srv), ps->m.id, ps);
        storage_failed(h, ps, e);
        return -1;
    }
    ps->sha = EVP_MD_CTX_new();
    if (!ps->sha || EVP_DigestInit_ex(ps->sha, EVP_sha256(), NULL) != 1) {
        http_set_state(h, ps);
        dict_set(uploading(srv), ps->m.id, ps);
        http_refuse(h, 500, "internal error");
        return -1;
    }
    dict_set(uploading(srv), ps->m.id, ps);
    http_set_state(h, ps);
    if (req->expect_continue)
        http_continue(h);
    return 0;
}

int upload_http_body(http_conn *h, const char *data, size_t len)
{
    put_state *ps = http_get_state(h);
    if (!ps || ps->fd < 0)
        return -1;
    if (ps->got + (int64_t)len > ps->m.size) { /* http-parser frames by Content-Length */
        http_refuse(h, 413, "the body is larger than the slot");
        return -1;
    }
    EVP_DigestUpdate(ps->sha, data, len);
    while (len > 0) {
        ssize_t n = write(ps->fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            storage_failed(h, ps, n < 0 ? errno : ENOSPC);
            return -1;
        }
        data += n;
        len -= (size_t)n;
        ps->got += n;
    }
    return 0;
}

static void put_recorded(server *srv, int ok, void *ud)
{
    waiting *w = ud;
    if (!ok) {
        /* Strict: a file whose record is not durable is not kept either. */
        files_remove(srv->store, srv->cfg.upload_dir, w->m.id);
        if (w->hold.conn)
            http_respond(w->hold.conn, 503, "the compliance archive is unavailable; the "
                                            "file was not stored", 1);
    } else {
        if (w->hold.conn)
            http_respond(w->hold.conn, 201, w->quarantined
                                                ? "stored; held for the compliance server's verdict"
                                                : "stored", 0);
        if (w->quarantined)
            upload_judge(srv, w->m.id);
    }
    http_hold_end(&w->hold);
    file_meta_clear(&w->m);
    free(w);
}

/* The sniffed media type of a file (libmagic on its content, not its name). */
static char *sniff(server *srv, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return xstrdup("application/octet-stream");
    const char *t = magic_descriptor((magic_t)srv->upload->magic, fd);
    close(fd);
    return xstrdup(t ? t : "application/octet-stream");
}

void upload_http_complete(http_conn *h)
{
    server *srv = http_server(h);
    put_state *ps = http_get_state(h);
    if (!ps)
        return;
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ps->sha, md, &mdlen);
    for (unsigned i = 0; i < 32; i++)
        snprintf(ps->m.sha256 + 2 * i, 3, "%02x", md[i]);
    ps->m.type = sniff(srv, ps->tmp);

    /* The content is judged now: a renamed executable is still an executable. */
    upload_policy pol;
    char why[512];
    const char *refused = NULL;
    char *bare = jid_normalize_bare(ps->m.sender ? ps->m.sender : "");
    if (upload_policy_get(srv, bare ? bare : "", &pol) < 0) {
        refused = "policy";
        snprintf(why, sizeof why, "your file transfer policy cannot be read");
    } else {
        refused = upload_policy_check_content(&pol, ps->m.name, ps->m.type, why, sizeof why);
        upload_policy_clear(&pol);
    }
    free(bare);
    if (refused) {
        log_info("upload: file %.8s... from %s refused after upload: %s", ps->m.id,
                 ps->m.sender, why);
        files_remove(srv->store, srv->cfg.upload_dir, ps->m.id); /* the slot is spent */
        upload_record(srv, &ps->m, "upload", "blocked-policy", "block", why, http_peer(h), NULL,
                      NULL);
        char text[700];
        snprintf(text, sizeof text, "Your file \"%s\" was not stored: %s",
                 ps->m.name ? ps->m.name : "?", why);
        upload_notify(srv, &ps->m, text);
        http_respond(h, 403, why, 1);
        return;
    }
    int64_t now = time_now_us();
    ps->m.uploaded_us = now;
    ps->m.expires_us = srv->cfg.upload_expire_after
                           ? now + (int64_t)srv->cfg.upload_expire_after * 1000000
                           : 0;
    int quarantined = srv->cfg.compliance_server != NULL;
    ps->m.state = quarantined ? FILE_QUARANTINED : FILE_AVAILABLE;
    int published = files_publish(srv->store, srv->cfg.upload_dir, ps->tmp, ps->fd, &ps->m);
    if (published == -1) {
        storage_failed(h, ps, errno);
        return;
    }
    ps->committed = 1; /* the temporary file is gone: renamed, or dropped as a duplicate */
    if (published == -2) {
        log_error("upload: cannot store the metadata of %.8s...: %s", ps->m.id,
                  store_last_error(srv->store));
        http_respond(h, 503, "the file store is unavailable", 1);
        return;
    }
    log_info("upload: file %.8s... stored (%" PRId64 " bytes, %s, sha256 %.16s...)%s", ps->m.id,
             ps->m.size, ps->m.type, ps->m.sha256, quarantined ? ", quarantined" : "");
    waiting *w = xcalloc(1, sizeof *w);
    w->fd = -1;
    w->quarantined = quarantined;
    w->m = ps->m; /* moved */
    memset(&ps->m, 0, sizeof ps->m);
    memcpy(ps->m.id, w->m.id, sizeof ps->m.id);
    http_hold_begin(h, &w->hold);
    /* Quarantined: no verdict yet (the "verdict" record will carry it). */
    upload_record(srv, &w->m, "upload", quarantined ? "quarantined" : "stored",
                  quarantined ? "pending" : "allow", NULL, http_peer(h), put_recorded, w);
}

/* ---- GET / HEAD ---- */

/* A single byte range of a file of size bytes (RFC 7233): 1 with [*start, *end], 0 to
 * ignore the header (malformed or several ranges: the whole file is sent), -1 if not
 * satisfiable (416). */
static int parse_range(const char *v, int64_t size, int64_t *start, int64_t *end)
{
    if (strncmp(v, "bytes=", 6) != 0 || strchr(v, ','))
        return 0;
    const char *p = v + 6;
    char *e;
    if (*p == '-') {
        if (p[1] < '0' || p[1] > '9')
            return 0;
        errno = 0;
        long long suffix = strtoll(p + 1, &e, 10);
        if (errno || *e)
            return 0;
        if (suffix == 0 || size == 0)
            return -1;
        *start = suffix >= size ? 0 : size - suffix;
        *end = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return 0;
    errno = 0;
    long long a = strtoll(p, &e, 10);
    if (errno || *e != '-')
        return 0;
    long long b = -1;
    if (e[1]) {
        const char *q = e + 1;
        if (*q < '0' || *q > '9')
            return 0;
        b = strtoll(q, &e, 10);
        if (errno || *e || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    *start = a;
    *end = (b < 0 || b >= size) ? size - 1 : b;
    return 1;
}

/* Content-Disposition for a sanitised name: an ASCII fallback and the exact UTF-8 name
 * percent-encoded (RFC 6266 / RFC 8187). */
static void disposition(buf *out, const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_append_str(out, "Content-Disposition: attachment; filename=\"");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        char c = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') ? (char)*p : '_';
        buf_append(out, &c, 1);
    }
    buf_append_str(out, "\"; filename*=UTF-8''");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("!#$&+-.^_`|~", *p)) {
            buf_append(out, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(out, e, 3);
        }
    }
    buf_append_str(out, "\r\n");
}

static void get_recorded(server *srv, int ok, void *ud)
{
    waiting *w = ud;
    http_conn *h = w->hold.conn;
    if (h && !ok) {
        http_respond(h, 503, "the compliance archive is unavailable; try again later", 1);
    } else if (h) {
        http_begin(h, w->status, w->headers, w->len, w->head);
        if (!w->head && w->len > 0) {
            http_stream_file(h, w->fd, w->offset, w->len);
            w->fd = -1; /* the stream closes it */
        }
    }
    if (w->fd >= 0)
        close(w->fd);
    http_hold_end(&w->hold);
    free(w->headers);
    file_meta_clear(&w->m);
    free(w);
}

/* Count one more in t's minute; 1 while that keeps it within cap. */
static int tally_take(refused_tally *t, int64_t now, int cap)
{
    if (now - t->window_ms >= 60000) {
        t->window_ms = now;
        t->n = 0;
    }
    if (t->n >= cap)
        return 0;
    t->n++;
    return 1;
}

/* May a refused download from peer ("ADDR:PORT") be recorded? Refused requests need no
 * account: their records are capped per address and in all (upload.h), so that they
 * cannot flood the compliance archive. */
static int refusal_recordable(upload *u, const char *peer)
{
    char addr[64];
    snprintf(addr, sizeof addr, "%s", peer);
    char *colon = strrchr(addr, ':');
    if (colon)
        *colon = '\0';
    int64_t now = time_mono_ms();
    refused_tally *t = NULL, *oldest = &u->refused[0];
    for (size_t i = 0; i < UPLOAD_REFUSED_TRACKED && !t; i++) {
        if (strcmp(u->refused[i].addr, addr) == 0)
            t = &u->refused[i];
        else if (u->refused[i].window_ms < oldest->window_ms)
            oldest = &u->refused[i];
    }
    if (!t) {
        t = oldest;
        snprintf(t->addr, sizeof t->addr, "%s", addr);
        t->window_ms = now;
        t->n = 0;
    }
    return tally_take(t, now, UPLOAD_REFUSED_PER_MINUTE) &&
           tally_take(&u->refused_all, now, UPLOAD_REFUSED_ALL_PER_MINUTE);
}

/* Refuse a GET or HEAD of file id (its metadata m when known, else NULL) and record
 * the attempt as a "download" record with outcome "refused". */
static void get_refused(http_conn *h, const http_request *req, const char *id,
                        const file_meta *m, int status, const char *text)
{
    server *srv = http_server(h);
    if (refusal_recordable(srv->upload, http_peer(h))) {
        file_meta only_id;
        memset(&only_id, 0, sizeof only_id);
        snprintf(only_id.id, sizeof only_id.id, "%s", id);
        char reason[256];
        snprintf(reason, sizeof reason, "%s refused (%d): %s", req->method_name, status, text);
        upload_record(srv, m ? m : &only_id, "download", "refused", "block", reason,
                      http_peer(h), NULL, NULL);
    } else {
        log_info("upload: refused %s of %.8s... from %s not recorded (too many this minute)",
                 req->method_name, id, http_peer(h));
    }
    http_respond(h, status, text, 0);
}

static void get_begin(http_conn *h, const http_request *req)
{
    server *srv = http_server(h);
    target t;
    if (parse_target(req->path, "file", &t) < 0) {
        http_respond(h, 404, "not found", 0); /* names no file: nothing to record */
        return;
    }
    file_meta m;
    store_status st = files_meta_get(srv->store, t.id, &m);
    if (st != STORE_OK && st != STORE_NOT_FOUND) {
        http_respond(h, 503, "the file store is unavailable", 0);
        return;
    }
    if (!capability_ok(srv, "get", &t)) {
        log_info("upload: %s %s without a valid capability from %s", req->method_name,
                 t.id, http_peer(h));
        get_refused(h, req, t.id, st == STORE_OK ? &m : NULL, 403,
                    "this URL does not authorise a download");
        file_meta_clear(&m);
        return;
    }
    if (st == STORE_NOT_FOUND) {
        get_refused(h, req, t.id, NULL, 404, "no such file (expired, purged or blocked)");
        return;
    }
    /* Quarantined files do not exist for downloaders until the verdict allows them. */
    if (m.state != FILE_AVAILABLE || (m.expires_us && m.expires_us < time_now_us())) {
        get_refused(h, req, t.id, &m, 404, "no such file (not available)");
        file_meta_clear(&m);
        return;
    }
    char path[4096];
    int fd = -1;
    struct stat sb;
    if (files_object_path(srv->cfg.upload_dir, m.sha256, path, sizeof path) == 0)
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size != m.size) {
        log_error("upload: file %.8s... is missing or damaged on disk (%s)", m.id, path);
        if (fd >= 0)
            close(fd);
        get_refused(h, req, t.id, &m, 404, "no such file (lost)");
        file_meta_clear(&m);
        return;
    }
    int64_t start = 0, end = m.size - 1;
    int ranged = req->range ? parse_range(req->range, m.size, &start, &end) : 0;
    buf hd;
    buf_init(&hd);
    buf_appendf(&hd, "Accept-Ranges: bytes\r\nContent-Type: %s\r\n", m.type);
    disposition(&hd, m.name ? m.name : "file");
    buf_appendf(&hd, "ETag: \"%s\"\r\nX-Content-Type-Options: nosniff\r\n"
                     "Content-Security-Policy: default-src 'none'; sandbox\r\n"
                     "Cache-Control: private\r\nAccess-Control-Allow-Origin: *\r\n",
                m.sha256);
    if (ranged < 0) {
        buf_appendf(&hd, "Content-Range: bytes */%" PRId64 "\r\n", m.size);
        close(fd);
        file_meta_clear(&m);
        char *x = buf_steal(&hd);
        http_begin(h, 416, x, 0, 1);
        free(x);
        return;
    }
    if (ranged > 0)
        buf_appendf(&hd, "Content-Range: bytes %" PRId64 "-%" PRId64 "/%" PRId64 "\r\n", start,
                    end, m.size);
    waiting *w = xcalloc(1, sizeof *w);
    w->head = req->method == HTTP_M_HEAD;
    w->status = ranged > 0 ? 206 : 200;
    w->headers = buf_steal(&hd);
    w->fd = fd;
    w->offset = start;
    w->len = m.size == 0 ? 0 : end - start + 1;
    w->m = m;
    http_hold_begin(h, &w->hold);
    if (w->head) {
        get_recorded(srv, 1, w); /* no content leaves: nothing to record */
        return;
    }
    char reason[128];
    if (ranged > 0)
        snprintf(reason, sizeof reason, "bytes %" PRId64 "-%" PRId64 " of %" PRId64, start, end,
                 m.size);
    else
        snprintf(reason, sizeof reason, "whole file");
    log_info("upload: file %.8s... fetched by %s (%s)", w->m.id, http_peer(h), reason);
    upload_record(srv, &w->m, "download", "downloaded", "allow", reason, http_peer(h),
                  get_recorded, w);
}

/* ---- dispatch ---- */

int upload_http_begin(http_conn *h, const http_request *req)
{
    switch (req->method) {
    case HTTP_M_PUT:
        return put_begin(h, req);
    case HTTP_M_GET:
    case HTTP_M_HEAD:
        if (req->content_length > 0 || req->chunked) {
            http_respond(h, 400, "a GET or HEAD request has no body", 1);
            return -1;
        }
        get_begin(h, req);
        return -1;
    case HTTP_M_OPTIONS:
        /* CORS preflight for web clients (XEP-0363 section 5). */
        http_begin(h, 204,
                   "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, HEAD, "
                   "PUT, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type\r\n"
                   "Access-Control-Max-Age: 86400\r\n",
                   0, 1);
        return -1;
    default:
        http_respond(h, 405, "method not allowed (GET, HEAD, PUT, OPTIONS)", 1);
        return -1;
    }
}

void upload_http_end(http_conn *h)
{
    put_state *ps = http_get_state(h);
    if (!ps)
        return;
    http_set_state(h, NULL);
    put_free(ps, http_server(h));
}
