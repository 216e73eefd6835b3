/* http.c - HTTP/1.1 over TLS for parleyd's HTTPS listener (see http.h).
 *
 * One request at a time per connection: once a request is complete the parser is paused
 * and anything the client pipelines behind it waits (bounded) until the response has
 * been sent. Parsing is libhttp-parser's; this file only keeps the few headers the
 * handlers need, with fixed-size buffers, and enforces the limits. */
#include "http.h"
#include "../common/buf.h"
#include "../common/log.h"
#include "../common/util.h"
#include "conn.h"
#include "upload_http.h"

#include <http_parser.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define URL_MAX 2048            /* longest request target accepted (414 beyond) */
#define HEADER_BYTES_MAX 8192   /* all header names and values of a request (431 beyond) */
#define KEEP_NAME_MAX 32        /* header names longer than this are never ones we use */
#define KEEP_VALUE_MAX 256      /* values of the headers we keep */
#define PIPELINE_MAX 16384      /* input buffered behind a request in progress */
#define STREAM_CHUNK 65536      /* file bytes queued per write-ready event */
#define MIN_BODY_RATE 1024      /* bytes/s a body must average (slow uploads are cut off) */

typedef enum { HS_IDLE, HS_HEADERS, HS_BODY, HS_WAIT } http_stage;

struct http_conn {
    server *srv;
    conn *c;
    http_parser parser;
    char peer[64];
    http_stage stage;
    int64_t deadline_ms;       /* 0: none */
    int64_t body_deadline_ms;  /* overall limit of a body, from its size */
    int in_execute;
    /* the request being read */
    char url[URL_MAX + 1];
    size_t url_len;
    char field[KEEP_NAME_MAX + 1];
    size_t field_len;
    int field_long;
    char value[KEEP_VALUE_MAX + 1];
    size_t value_len;
    int value_long;
    int have_field;
    int last_was_value;
    size_t header_bytes;
    char range[KEEP_VALUE_MAX + 1];
    int has_range;
    char ctype[KEEP_VALUE_MAX + 1];
    int has_ctype;
    int expect_continue;
    int expect_bad;
    int error_status;          /* a limit or rule was broken: answer this and close */
    const char *error_text;
    int stop;                  /* the handler refused: stop parsing, close after response */
    http_request req;
    int body_accepted;
    int msg_complete;
    int responded;
    int close_after;
    void *state;
    http_hold *hold;
    /* streamed body */
    int resp_active;
    int stream_fd;
    int64_t stream_off, stream_left;
    buf pending;               /* pipelined input waiting for the current response */
    struct http_conn *prev, *next;
};

static http_conn *conns_head(server *srv) { return srv->http_conns; }

server *http_server(http_conn *h) { return h->srv; }
const char *http_peer(http_conn *h) { return h->peer; }
void *http_get_state(http_conn *h) { return h->state; }
void http_set_state(http_conn *h, void *state) { h->state = state; }

static void set_deadline(http_conn *h, int seconds)
{
    h->deadline_ms = time_mono_ms() + (int64_t)seconds * 1000;
}

/* ---- responses ---- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    default: return http_status_str((enum http_status)status);
    }
}

void http_begin(http_conn *h, int status, const char *extra, int64_t body_len, int head)
{
    if (status >= 400 && status != 404 && status != 416)
        h->close_after = 1; /* after a refusal the stream may hold an unread body */
    char line[512];
    int n = snprintf(line, sizeof line,
                     "HTTP/1.1 %d %s\r\nServer: parleyd\r\nContent-Length: %" PRId64 "\r\n%s",
                     status, reason_phrase(status), body_len,
                     h->close_after ? "Connection: close\r\n" : "");
    conn_write(h->c, line, (size_t)n);
    conn_write(h->c, extra, strlen(extra));
    conn_write(h->c, "\r\n", 2);
    h->responded = 1;
    (void)head;
}

void http_respond(http_conn *h, int status, const char *text, int close)
{
    if (close)
        h->close_after = 1;
    char body[600];
    int n = snprintf(body, sizeof body, "%s\n", text ? text : reason_phrase(status));
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    int head = h->req.method == HTTP_M_HEAD;
    http_begin(h, status,
               "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"
               "Cache-Control: no-store\r\n",
               n, head);
    if (!head)
        conn_write(h->c, body, (size_t)n);
}

void http_refuse(http_conn *h, int status, const char *text)
{
    h->stop = 1;
    http_respond(h, status, text, 1);
}

void http_continue(http_conn *h)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_write(h->c, line, sizeof line - 1);
}

/* Queue the next chunk of a streamed body; the rest follows as the peer reads. */
static void pump(http_conn *h)
{
    if (!h->resp_active || conn_is_closing(h->c))
        return;
    if (h->stream_left > 0) {
        char chunk[STREAM_CHUNK];
        size_t want = h->stream_left < (int64_t)sizeof chunk ? (size_t)h->stream_left : sizeof chunk;
        ssize_t n = pread(h->stream_fd, chunk, want, (off_t)h->stream_off);
        if (n <= 0) {
            /* The file shrank or failed under us: the promised length cannot be kept, so
             * the connection must end for the client to notice. */
            log_warn("http %s: reading a file being served failed: %s", h->peer,
                     n < 0 ? strerror(errno) : "unexpected end of file");
            conn_close(h->c, "file read failed");
            return;
        }
        conn_write(h->c, chunk, (size_t)n);
        h->stream_off += n;
        h->stream_left -= n;
        set_deadline(h, h->srv->cfg.http_idle_timeout);
    }
    if (h->stream_left == 0) {
        close(h->stream_fd);
        h->stream_fd = -1;
        h->resp_active = 0;
    }
}

void http_stream_file(http_conn *h, int fd, int64_t offset, int64_t len)
{
    h->stream_fd = fd;
    h->stream_off = offset;
    h->stream_left = len;
    h->resp_active = 1;
    pump(h);
}

void http_hold_begin(http_conn *h, http_hold *hold)
{
    hold->conn = h;
    h->hold = hold;
    h->deadline_ms = 0;
}

static void maybe_next(http_conn *h);

void http_hold_end(http_hold *hold)
{
    http_conn *h = hold->conn;
    hold->conn = NULL;
    if (!h)
        return;
    h->hold = NULL;
    maybe_next(h);
}

/* ---- parser callbacks ---- */

static http_conn *of(http_parser *p) { return p->data; }

static int fail_with(http_conn *h, int status, const char *text)
{
    if (!h->error_status) {
        h->error_status = status;
        h->error_text = text;
    }
    return -1;
}

static void reset_request(http_conn *h)
{
    h->url_len = 0;
    h->url[0] = '\0';
    h->field_len = h->value_len = 0;
    h->field_long = h->value_long = 0;
    h->have_field = h->last_was_value = 0;
    h->header_bytes = 0;
    h->has_range = h->has_ctype = 0;
    h->expect_continue = h->expect_bad = 0;
    h->error_status = 0;
    h->error_text = NULL;
    h->stop = 0;
    h->body_accepted = h->msg_complete = h->responded = 0;
    memset(&h->req, 0, sizeof h->req);
}

static int on_message_begin(http_parser *p)
{
    http_conn *h = of(p);
    reset_request(h);
    h->stage = HS_HEADERS;
    set_deadline(h, h->srv->cfg.http_header_timeout);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn *h = of(p);
    if (h->url_len + len > URL_MAX)
        return fail_with(h, 414, "request target too long");
    memcpy(h->url + h->url_len, at, len);
    h->url_len += len;
    h->url[h->url_len] = '\0';
    return 0;
}

static void keep(char *dst, const char *src, size_t len)
{
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* One header is complete: keep it if it is one the handlers use. */
static int finish_header(http_conn *h)
{
    if (!h->have_field)
        return 0;
    h->have_field = 0;
    if (h->field_long)
        return 0;
    const char *f = h->field;
    if (strcasecmp(f, "Range") == 0) {
        if (h->value_long || h->has_range)
            h->has_range = -1; /* oversized or repeated: ignored (RFC 7233 allows that) */
        else if (h->has_range == 0) {
            keep(h->range, h->value, h->value_len);
            h->has_range = 1;
        }
    } else if (strcasecmp(f, "Content-Type") == 0 && !h->value_long) {
        keep(h->ctype, h->value, h->value_len);
        h->has_ctype = 1;
    } else if (strcasecmp(f, "Expect") == 0) {
        if (!h->value_long && strcasecmp(h->value, "100-continue") == 0)
            h->expect_continue = 1;
        else
            h->expect_bad = 1;
    }
    return 0;
}

static int count_header_bytes(http_conn *h, size_t len)
{
    h->header_bytes += len;
    return h->header_bytes > HEADER_BYTES_MAX ? -1 : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn *h = of(p);
    if (count_header_bytes(h, len) < 0)
        return fail_with(h, 431, "request headers too large");
    if (h->last_was_value || !h->have_field) {
        finish_header(h);
        h->field_len = h->value_len = 0;
        h->field_long = h->value_long = 0;
        h->have_field = 1;
        h->last_was_value = 0;
    }
    if (h->field_len + len > KEEP_NAME_MAX) {
        h->field_long = 1;
        return 0;
    }
    memcpy(h->field + h->field_len, at, len);
    h->field_len += len;
    h->field[h->field_len] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn *h = of(p);
    if (count_header_bytes(h, len) < 0)
        return fail_with(h, 431, "request headers too large");
    h->last_was_value = 1;
    if (h->value_len + len > KEEP_VALUE_MAX) {
        h->value_long = 1;
        return 0;
    }
    memcpy(h->value + h->value_len, at, len);
    h->value_len += len;
    h->value[h->value_len] = '\0';
    return 0;
}

static http_method_id method_id(unsigned m)
{
    switch (m) {
    case HTTP_GET: return HTTP_M_GET;
    case HTTP_HEAD: return HTTP_M_HEAD;
    case HTTP_PUT: return HTTP_M_PUT;
    case HTTP_OPTIONS: return HTTP_M_OPTIONS;
    default: return HTTP_M_OTHER;
    }
}

static int on_headers_complete(http_parser *p)
{
    http_conn *h = of(p);
    finish_header(h);
    if (h->url_len == 0 || h->url[0] != '/')
        return fail_with(h, 400, "request target must be an absolute path");
    if (h->expect_bad)
        return fail_with(h, 417, "only 'Expect: 100-continue' is understood");
    if (p->upgrade)
        return fail_with(h, 400, "protocol upgrades are not supported");
    char *q = strpbrk(h->url, "?#");
    if (q)
        *q = '\0';
    h->req.method = method_id(p->method);
    h->req.method_name = http_method_str((enum http_method)p->method);
    h->req.path = h->url;
    h->req.content_length = (p->flags & F_CONTENTLENGTH) ? (int64_t)p->content_length : -1;
    h->req.chunked = (p->flags & F_CHUNKED) != 0;
    h->req.range = h->has_range == 1 ? h->range : NULL;
    h->req.content_type = h->has_ctype ? h->ctype : NULL;
    h->req.expect_continue = h->expect_continue;
    h->req.peer = h->peer;
    if (!http_should_keep_alive(p))
        h->close_after = 1;
    h->stage = HS_BODY;
    set_deadline(h, h->srv->cfg.http_idle_timeout);
    int64_t cl = h->req.content_length > 0 ? h->req.content_length : 0;
    h->body_deadline_ms = time_mono_ms() + (int64_t)h->srv->cfg.http_idle_timeout * 1000 +
                          cl / MIN_BODY_RATE * 1000;
    if (upload_http_begin(h, &h->req) == 0) {
        h->body_accepted = 1;
        return 0;
    }
    if (h->req.content_length > 0 || h->req.chunked) {
        /* Answered without reading the body: the connection cannot be reused. */
        h->stop = 1;
        h->close_after = 1;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_conn *h = of(p);
    if (!h->body_accepted)
        return fail_with(h, 400, "unexpected request body");
    set_deadline(h, h->srv->cfg.http_idle_timeout);
    if (upload_http_body(h, at, len) < 0) {
        h->stop = 1;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn *h = of(p);
    h->stage = HS_WAIT;
    h->msg_complete = 1;
    h->deadline_ms = 0;
    if (h->body_accepted)
        upload_http_complete(h);
    /* One request at a time: what follows waits until this one is answered. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- input ---- */

static void feed(http_conn *h, const char *data, size_t len);

/* The current request is answered in full: end it and go on with the next one. */
static void maybe_next(http_conn *h)
{
    if (h->in_execute || h->stage != HS_WAIT || !h->msg_complete || h->hold || h->resp_active ||
        conn_is_closing(h->c))
        return;
    if (!h->responded) {
        /* never the URL: it carries a capability */
        log_error("http %s: a %s request got no response", h->peer,
                  h->req.method_name ? h->req.method_name : "?");
        http_respond(h, 500, "internal error", 1);
    }
    upload_http_end(h);
    if (h->close_after) {
        conn_close_after_flush(h->c, "HTTP request done");
        return;
    }
    h->stage = HS_IDLE;
    set_deadline(h, h->srv->cfg.http_idle_timeout);
    http_parser_pause(&h->parser, 0);
    if (h->pending.len) {
        buf more = h->pending;
        buf_init(&h->pending);
        feed(h, more.data, more.len);
        buf_free(&more);
    }
}

static void feed(http_conn *h, const char *data, size_t len)
{
    h->in_execute = 1;
    size_t n = http_parser_execute(&h->parser, &settings, data, len);
    h->in_execute = 0;
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (e == HPE_PAUSED) {
        if (n < len)
            buf_append(&h->pending, data + n, len - n);
        if (h->pending.len > PIPELINE_MAX) {
            conn_close(h->c, "too much pipelined input");
            return;
        }
        maybe_next(h);
        return;
    }
    if (h->stop) {
        /* A response is queued; the rest of the input is never parsed. */
        if (!h->responded)
            http_respond(h, 400, "request refused", 1);
        upload_http_end(h);
        conn_close_after_flush(h->c, "HTTP request refused");
        return;
    }
    if (e != HPE_OK || h->parser.upgrade) {
        char why[160];
        int status = h->error_status ? h->error_status : 400;
        if (h->error_text)
            snprintf(why, sizeof why, "%s", h->error_text);
        else if (h->parser.upgrade)
            snprintf(why, sizeof why, "protocol upgrades are not supported");
        else
            snprintf(why, sizeof why, "malformed HTTP request: %s", http_errno_description(e));
        log_info("http %s: %d %s", h->peer, status, why);
        if (!h->responded && !conn_is_closing(h->c))
            http_respond(h, status, why, 1);
        upload_http_end(h);
        conn_close_after_flush(h->c, "bad HTTP request");
    }
}

static void on_data(void *ud, const char *data, size_t len)
{
    http_conn *h = ud;
    if (h->stage == HS_WAIT) {
        if (h->pending.len + len > PIPELINE_MAX) {
            conn_close(h->c, "too much pipelined input");
            return;
        }
        buf_append(&h->pending, data, len);
        return;
    }
    feed(h, data, len);
}

static void on_tls_ready(void *ud)
{
    (void)ud;
}

static void on_drain(void *ud)
{
    http_conn *h = ud;
    if (h->resp_active) {
        pump(h);
        if (!h->resp_active)
            maybe_next(h);
    }
}

static void on_close(void *ud, const char *reason)
{
    http_conn *h = ud;
    log_debug("http %s: closed: %s", h->peer, reason);
    if (h->hold)
        h->hold->conn = NULL;
    upload_http_end(h);
    if (h->stream_fd >= 0)
        close(h->stream_fd);
    buf_free(&h->pending);
    if (h->prev)
        h->prev->next = h->next;
    else
        h->srv->http_conns = h->next;
    if (h->next)
        h->next->prev = h->prev;
    free(h);
}

static const conn_handlers handlers = {
    .on_data = on_data,
    .on_tls_ready = on_tls_ready,
    .on_close = on_close,
};

void http_accept(server *srv, int fd, const char *peer)
{
    http_conn *h = xcalloc(1, sizeof *h);
    h->srv = srv;
    h->stream_fd = -1;
    snprintf(h->peer, sizeof h->peer, "%s", peer);
    buf_init(&h->pending);
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    h->c = conn_new(srv, fd, peer, &handlers, h);
    if (!h->c) {
        free(h);
        return;
    }
    conn_set_drain(h->c, on_drain);
    h->next = srv->http_conns;
    if (h->next)
        h->next->prev = h;
    srv->http_conns = h;
    /* The handshake and the first request share the header time limit. */
    set_deadline(h, srv->cfg.http_header_timeout);
    if (conn_start_tls(h->c, srv->tls_ctx) < 0)
        conn_close(h->c, "TLS setup failed");
}

void http_housekeeping(server *srv)
{
    int64_t now = time_mono_ms();
    for (http_conn *h = conns_head(srv); h; h = h->next) {
        if (conn_is_closing(h->c))
            continue;
        int late = h->deadline_ms && now > h->deadline_ms;
        if (h->stage == HS_BODY && h->body_deadline_ms && now > h->body_deadline_ms)
            late = 2;
        if (!late)
            continue;
        switch (h->stage) {
        case HS_HEADERS:
            log_info("http %s: request headers not complete in time", h->peer);
            http_respond(h, 408, "request headers not received in time", 1);
            conn_close_after_flush(h->c, "header timeout");
            break;
        case HS_BODY:
            log_info("http %s: request body %s", h->peer,
                     late == 2 ? "too slow" : "stalled");
            http_respond(h, 408, late == 2 ? "upload too slow" : "upload stalled: no data in time", 1);
            upload_http_end(h);
            conn_close_after_flush(h->c, "body timeout");
            break;
        default:
            conn_close(h->c, h->stage == HS_IDLE ? "idle" : "peer not reading");
            break;
        }
        h->deadline_ms = 0;
        h->body_deadline_ms = 0;
    }
}

void http_close_all(server *srv)
{
    for (http_conn *h = conns_head(srv); h; h = h->next)
        conn_close(h->c, "server shutting down");
}
