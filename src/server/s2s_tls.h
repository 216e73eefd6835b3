/* s2s_tls.h - trust on server-to-server links: the TLS contexts (our certificate on
 * both sides; peers' chains verified against the system store and ca_file, or ca_file
 * alone between nodes) and the RFC 6125 / XEP-0178 check that a verified certificate
 * names the domain the peer claims. Verification never aborts the handshake: the stream
 * then says why the peer is refused, and dialback may still apply (docs/federation.md). */
#ifndef PARLEY_S2S_TLS_H
#define PARLEY_S2S_TLS_H

#include "config.h"

#include <openssl/ssl.h>
#include <stddef.h>

/* Inbound (server side, asks for the peer's certificate) and outbound (client side,
 * presents ours) contexts. system_store: trust the system's CAs besides ca_file (no for
 * node links, whose only CA is the cluster's). NULL with a reason in err. */
SSL_CTX *s2s_tls_server_ctx(const config *cfg, int system_store, char *err, size_t errlen);
SSL_CTX *s2s_tls_client_ctx(const config *cfg, int system_store, char *err, size_t errlen);

/* Did the peer present a certificate that chains to a trusted CA and names domain (a
 * DNS-ID, wildcard only as the whole left-most label, or an XmppAddr)? Returns 0, or -1
 * with the reason in why. */
int s2s_tls_peer_valid(SSL *ssl, const char *domain, char *why, size_t whylen);

#endif
