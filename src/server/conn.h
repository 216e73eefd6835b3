/* conn.h - one TCP connection, plain or TLS: non-blocking reads fed to a handler,
 * a bounded output queue flushed before the loop sleeps, and deferred destruction so a
 * handler can close the connection from inside a callback.
 *
 * Shared by every kind of stream the server speaks: client-to-server, components and
 * server-to-server links (which also connect out, and speak TLS as the client). */
#ifndef PARLEY_CONN_H
#define PARLEY_CONN_H

#include "server.h"

#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct conn conn;

typedef struct conn_handlers {
    /* Plaintext bytes from the peer. */
    void (*on_data)(void *ud, const char *data, size_t len);
    /* The TLS handshake completed. */
    void (*on_tls_ready)(void *ud);
    /* The connection is gone (reason for the log). The conn is freed right after. */
    void (*on_close)(void *ud, const char *reason);
} conn_handlers;

/* Take over an accepted, non-blocking fd. */
conn *conn_new(server *srv, int fd, const char *peer, const conn_handlers *h, void *ud);
/* Call fn(ud) whenever all queued output has been written (a streamed response then
 * queues its next part). */
void conn_set_drain(conn *c, void (*fn)(void *ud));
/* Connect out to sa (non-blocking). on_connected(ud) runs once the connection is up;
 * a failure closes the connection (on_close with the reason). NULL if no socket could be
 * made (errno set). */
conn *conn_connect(server *srv, const struct sockaddr *sa, socklen_t salen, const char *peer,
                   const conn_handlers *h, void (*on_connected)(void *ud), void *ud);
/* Begin a server-side TLS handshake on this connection. Returns 0 or -1. */
int conn_start_tls(conn *c, SSL_CTX *ctx);
/* Begin a client-side TLS handshake (after STARTTLS), sending sni as server name. The
 * certificate is judged by the caller once on_tls_ready runs. Returns 0 or -1. */
int conn_start_tls_client(conn *c, SSL_CTX *ctx, const char *sni);
/* Queue bytes for the peer (nothing for NULL). A peer whose queue still holds more than
 * max_output_buffer after a flush has written what the socket would take is closed (a
 * peer that does not read must not make the server hold unbounded data); within one
 * pass of the loop the queue may grow to OUTPUT_PASS_FACTOR times that, not more. */
#define OUTPUT_PASS_FACTOR 4
void conn_write(conn *c, const char *data, size_t len);
/* Close once queued output is flushed (or after a short grace period). */
void conn_close_after_flush(conn *c, const char *reason);
/* Close now; on_close runs (deferred until the current callback returns). */
void conn_close(conn *c, const char *reason);

/* The connection is settled (for c2s: authenticated and bound): a TLS 1.3 connection may
 * give up its OpenSSL object for the compact record layer of tlsrec.c once quiescent.
 * conn_ssl() returns NULL from then on. Nothing for NULL. */
void conn_tls_compact(conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384 (256-bit)", compacted or not; "no TLS" without. */
void conn_tls_describe(const conn *c, char *out, size_t outlen);

/* These accept NULL: the connection of a detached session (sm.h). conn_ssl is the
 * OpenSSL object during and after the handshake; NULL without TLS or once compacted. */
SSL *conn_ssl(const conn *c);
int conn_is_tls(const conn *c);
const char *conn_peer(const conn *c);
int conn_is_closing(const conn *c);
int conn_in_handshake(const conn *c);

/* Flush every connection with queued output and free the closed ones (the loop's
 * before-sleep hook). */
void conn_flush_all(server *srv);
/* Close connections whose close-after-flush grace period has run out (timer). */
void conn_expire_lingering(server *srv);

#endif
