/* tls_pool.h - server-side TLS handshakes on a few threads, so that the private-key
 * signature of a login storm uses every core while the event loop keeps serving.
 *
 * The event loop hands over an SSL object in accept state with its non-blocking fd; a
 * pool thread drives SSL_do_handshake to completion in its own epoll loop and hands the
 * result back through an eventfd the event loop watches. While a handshake is in the
 * pool the event loop touches neither the SSL object nor the fd: one thread at a time.
 * Pool threads touch nothing of the server's state and do not log: the error text of a
 * failed handshake travels back with the result. Timeouts stay with the event loop
 * (which cancels a handshake that took too long). */
#ifndef PARLEY_TLS_POOL_H
#define PARLEY_TLS_POOL_H

#include "event.h"

#include <openssl/ssl.h>
#include <stddef.h>

typedef struct tls_pool tls_pool;
typedef struct tls_pool_job tls_pool_job;

typedef enum {
    TLS_POOL_DONE,      /* the handshake completed */
    TLS_POOL_FAILED,    /* it failed; err says why */
    TLS_POOL_CANCELLED, /* tls_pool_cancel, or the pool was freed first */
} tls_pool_result;

/* Runs on the event loop's thread once the pool is done with the SSL object and fd. */
typedef void (*tls_pool_done_fn)(void *ud, tls_pool_result result, const char *err);

/* nthreads >= 1 handshake threads; results arrive through loop. NULL on failure. */
tls_pool *tls_pool_new(ev_loop *loop, int nthreads);
/* Stop the threads; every handshake not yet handed back ends TLS_POOL_CANCELLED, its
 * done callback called from here. Nothing for NULL. */
void tls_pool_free(tls_pool *p);
/* Hand over ssl (accept or connect state, fd set) and its fd. done(ud, ...) runs exactly
 * once, from the event loop (or tls_pool_free). The job is valid until then. NULL if it
 * could not be handed over (the caller keeps the SSL object). */
tls_pool_job *tls_pool_submit(tls_pool *p, SSL *ssl, int fd, tls_pool_done_fn done, void *ud);
/* Ask for the handshake to be abandoned soon: done then runs with TLS_POOL_CANCELLED
 * unless the result was already on its way. */
void tls_pool_cancel(tls_pool_job *job);
/* Threads in the pool (0 for NULL). */
int tls_pool_threads(const tls_pool *p);

#endif
