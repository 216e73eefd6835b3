/* tlsrec.h - the TLS 1.3 record layer of an established connection, without OpenSSL's
 * per-connection object.
 *
 * Why: an idle TLS 1.3 connection costs about 12 KiB in OpenSSL 3.0 (the SSL object alone
 * is one 7.6 KiB allocation, plus two cipher contexts, the session and the key shares),
 * more than the whole per-session budget of parleyd. Once the handshake (and, for c2s,
 * SASL and resource binding, which may need the SSL object for channel binding) is done,
 * a TLS 1.3 connection needs only its two traffic secrets, keys, IVs and sequence
 * numbers: about 300 bytes. OpenSSL still does every handshake, certificate and key
 * exchange; this module only protects and opens application-data records afterwards
 * (RFC 8446 section 5), handles the post-handshake messages a client may send (KeyUpdate,
 * alerts) and refuses everything else.
 *
 * How: tls_rec_track() on a server SSL before its handshake captures the application
 * traffic secrets (through the SSL_CTX keylog callback installed by tls_rec_enable) and
 * counts the records each side has protected under them (through the message callback).
 * tls_rec_take() then builds a tls_rec from a quiescent connection: TLS 1.3, handshake
 * done, nothing buffered in OpenSSL in either direction, no KeyUpdate so far, an AEAD
 * suite of the policy. The caller frees the SSL object afterwards.
 *
 * Single-threaded: the AEAD contexts are shared by all connections of the process. */
#ifndef PARLEY_TLSREC_H
#define PARLEY_TLSREC_H

#include <openssl/ssl.h>
#include <stddef.h>

typedef struct tls_rec tls_rec;
struct buf;

typedef enum {
    TLS_REC_OK = 0,
    TLS_REC_CLOSED, /* the peer sent close_notify */
    TLS_REC_ERROR,  /* protocol or decryption failure: close the connection */
} tls_rec_status;

/* Install the secret-capturing callback on a server context. Returns 0 or -1. */
int tls_rec_enable(SSL_CTX *ctx);
/* Follow this SSL's handshake so that tls_rec_take can succeed later. Returns 0 or -1. */
int tls_rec_track(SSL *ssl);
/* 1 if tls_rec_take may succeed on this SSL later (0: TLS 1.2, a KeyUpdate was seen,
 * the suite is not one this module handles, or the SSL was not tracked). */
int tls_rec_possible(SSL *ssl);
/* The record state of a quiescent, established TLS 1.3 SSL, or NULL if not possible now
 * (see tls_rec_possible to tell "not now" from "never"). ssl is not freed. */
tls_rec *tls_rec_take(SSL *ssl);
void tls_rec_free(tls_rec *r);

/* Protect plaintext as application-data records appended to out. Returns 0 or -1. */
int tls_rec_seal(tls_rec *r, const void *data, size_t len, struct buf *out);
/* Append a close_notify alert to out. */
void tls_rec_close_notify(tls_rec *r, struct buf *out);
/* Open received bytes: application data is appended to plain; records the protocol
 * requires us to send (a KeyUpdate answering the peer's) are appended to out. A partial
 * record is kept inside r until the rest arrives. On TLS_REC_ERROR, *why says what. */
tls_rec_status tls_rec_open(tls_rec *r, const void *data, size_t len, struct buf *plain,
                            struct buf *out,
                            const char **why);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384 (256-bit)", as tls_describe says it. */
const char *tls_rec_describe(const tls_rec *r);

#endif
