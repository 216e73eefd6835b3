/* http.h - parleyd's HTTPS listener: HTTP/1.1 over TLS connections (conn.h, the same TLS
 * policy as XMPP), requests parsed by libhttp-parser, bounded in every dimension (URL,
 * header bytes, time to send headers, silence in a body or between requests), and
 * responses streamed from files as the peer reads them. What a request means is decided
 * by upload_http.c; this file knows only HTTP. */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include "server.h"

#include <stddef.h>
#include <stdint.h>

typedef struct http_conn http_conn;

typedef enum { HTTP_M_OTHER = 0, HTTP_M_GET, HTTP_M_HEAD, HTTP_M_PUT, HTTP_M_OPTIONS } http_method_id;

/* A request once its headers are complete (valid until the response is finished). */
typedef struct http_request {
    http_method_id method;
    const char *method_name;
    const char *path;          /* the URL's path, still percent-encoded (no query) */
    int64_t content_length;    /* -1: none given */
    int chunked;               /* Transfer-Encoding: chunked */
    const char *range;         /* Range header value, or NULL */
    const char *content_type;  /* or NULL */
    int expect_continue;       /* Expect: 100-continue */
    const char *peer;          /* "127.0.0.1:40000" */
} http_request;

/* A pause in a request while something else finishes (a record committing). The holder
 * embeds it; conn is set to NULL if the connection closes meanwhile. */
typedef struct http_hold {
    http_conn *conn;
} http_hold;

/* Accept a connection from the HTTPS listener (TLS from the first byte). */
void http_accept(server *srv, int fd, const char *peer);
/* Timer (every second): requests too slow to arrive, bodies gone silent. */
void http_housekeeping(server *srv);
/* Shutdown: close every HTTP connection. */
void http_close_all(server *srv);

/* ---- for the request handlers ---- */

/* A complete response with a short text body (and "Connection: close" if close). */
void http_respond(http_conn *h, int status, const char *text, int close);
/* Status line and headers (extra: CRLF-terminated lines or ""); body_len bytes follow
 * (sent with http_send_body or http_stream_file); head: the body is omitted (HEAD). */
void http_begin(http_conn *h, int status, const char *extra, int64_t body_len, int head);
/* Stream len bytes of fd from offset as the body; fd is closed at the end. */
void http_stream_file(http_conn *h, int fd, int64_t offset, int64_t len);
/* Send "100 Continue" (the client waits for it before the body). */
void http_continue(http_conn *h);
/* The request is refused while its body is still coming: the response is sent and the
 * connection closes (its remaining body is never read into anything). */
void http_refuse(http_conn *h, int status, const char *text);

void http_hold_begin(http_conn *h, http_hold *hold);
void http_hold_end(http_hold *hold);
/* Per-request state of the handler (freed through the handler's on_end). */
void *http_get_state(http_conn *h);
void http_set_state(http_conn *h, void *state);
server *http_server(http_conn *h);
const char *http_peer(http_conn *h);

#endif
