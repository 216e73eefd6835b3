/* tls.h - TLS contexts under Parley's policy (DESIGN.md), on OpenSSL 3.
 *
 * Policy, for every listener and every client: TLS 1.2 minimum, TLS 1.3 preferred;
 * ECDHE key exchange with AEAD ciphers only, AES-256-GCM first in the server's order;
 * no compression, no renegotiation, no session tickets without forward secrecy.
 * Certificates must carry RSA >= 2048 bits or ECDSA on P-256/P-384. */
#ifndef PARLEY_TLS_H
#define PARLEY_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* The TLS 1.2 cipher list and TLS 1.3 suites the policy allows, in preference order. */
#define TLS_POLICY_CIPHERS_12                                                          \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                        \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define TLS_POLICY_SUITES_13 "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

/* Check that a key is strong enough: RSA >= 2048 bits, EC on P-256 or P-384, or Ed25519.
 * Returns 0, or -1 with a reason in err. */
int tls_check_key_strength(EVP_PKEY *key, char *err, size_t errlen);

/* Server context: loads the certificate chain (PEM) and private key, checks that they
 * match and that the key is strong enough, applies the policy. If ca_file is non-NULL,
 * peers may present client certificates verified against it (used between nodes).
 * Returns NULL with a reason in err. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, const char *ca_file,
                            char *err, size_t errlen);

/* Client context: verifies the server's chain against ca_file, or the system store if
 * ca_file is NULL. Returns NULL with a reason in err. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, char *err, size_t errlen);

/* Prepare a client SSL to check the server's certificate names the XMPP domain
 * (RFC 6125 DNS-ID, via X509_VERIFY_PARAM_set1_host) and send SNI. Returns 0 or -1. */
int tls_client_set_domain(SSL *ssl, const char *domain);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384 (256-bit)" for the negotiated connection. */
void tls_describe(const SSL *ssl, char *out, size_t outlen);

/* Channel binding data (RFC 5929 / RFC 9266) for SCRAM-*-PLUS.
 * type is "tls-exporter" (TLS 1.3 only: RFC 9266 forbids it on 1.2 without EMS, and we
 * accept it only on 1.3) or "tls-server-end-point" (hash of the server certificate).
 * is_server says which side of the connection ssl is. Writes up to *len bytes into out and
 * sets *len. Returns 0, or -1 if that binding is not available on this connection. */
int tls_channel_binding(SSL *ssl, int is_server, const char *type, unsigned char *out,
                        size_t *len);

/* The last OpenSSL error as text (drains the error queue), for log lines. */
void tls_last_error(char *out, size_t outlen);

#endif
