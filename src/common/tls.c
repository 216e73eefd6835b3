/* tls.c - OpenSSL 3 contexts under Parley's TLS policy (DESIGN.md, tls.h), key strength
 * checks, connection descriptions and channel binding data for SCRAM-*-PLUS. */
#include "tls.h"
#include "tlsrec.h"

#include <arpa/inet.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TLS_POLICY_GROUPS "X25519:P-256:P-384"
/* Resumption sessions are only valid within this context (needed with SSL_VERIFY_PEER). */
static const unsigned char session_ctx_id[] = "parley";

void tls_last_error(char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    size_t used = 0;
    unsigned long e;
    /* Oldest first: the first entry is usually the root cause, later ones add context. */
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        if (used + 3 < outlen) {
            int n = snprintf(out + used, outlen - used, "%s%s", used ? "; " : "", one);
            if (n > 0)
                used += (size_t)n < outlen - used ? (size_t)n : outlen - used - 1;
        }
    }
    if (used == 0)
        snprintf(out, outlen, "no OpenSSL error reported");
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen,
                                                          const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "<context>: <openssl error queue>" into err. */
static void set_ssl_err(char *err, size_t errlen, const char *context, const char *file)
{
    char ossl[512];
    tls_last_error(ossl, sizeof ossl);
    set_err(err, errlen, "%s%s%s: %s", context, *file ? " " : "", file, ossl);
}

int tls_check_key_strength(EVP_PKEY *key, char *err, size_t errlen)
{
    if (!key) {
        set_err(err, errlen, "%s", "no key");
        return -1;
    }
    if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS")) {
        int bits = EVP_PKEY_get_bits(key);
        if (bits < 2048) {
            set_err(err, errlen, "RSA key of %d bits is below the 2048-bit minimum", bits);
            return -1;
        }
        return 0;
    }
    if (EVP_PKEY_is_a(key, "EC")) {
        char group[64] = "";
        if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                            sizeof group, NULL)) {
            ERR_clear_error();
            set_err(err, errlen, "%s", "EC key with an unknown or explicit curve is not allowed");
            return -1;
        }
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ||
            strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
            return 0;
        set_err(err, errlen, "EC key on curve %s is not allowed (P-256 or P-384 required)", group);
        return -1;
    }
    if (EVP_PKEY_is_a(key, "ED25519"))
        return 0;
    const char *type = EVP_PKEY_get0_type_name(key);
    set_err(err, errlen,
            "%s key is not allowed (RSA >= 2048 bits, ECDSA P-256/P-384 or Ed25519 required)",
            type ? type : "unknown");
    return -1;
}

/* Refuses to prompt for a passphrase: a daemon must never block on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* TLS 1.2 session tickets are encrypted under a long-lived key, which breaks forward
 * secrecy; TLS 1.3 tickets are fine (resumption uses psk_dhe_ke). The protocol version is
 * only known once the ClientHello is processed, so the decision is made per connection
 * in the certificate callback, which runs after version negotiation and before the
 * ServerHello (whose session_ticket extension OpenSSL drops once NO_TICKET is set). */
static int server_cert_cb(SSL *ssl, void *arg)
{
    (void)arg;
    if (SSL_version(ssl) < TLS1_3_VERSION)
        SSL_set_options(ssl, SSL_OP_NO_TICKET);
    return 1;
}

/* Belt and braces for the above: never resume a pre-1.3 session from a ticket. */
static SSL_TICKET_RETURN server_ticket_dec_cb(SSL *ssl, SSL_SESSION *sess,
                                              const unsigned char *keyname, size_t keyname_len,
                                              SSL_TICKET_STATUS status, void *arg)
{
    (void)keyname, (void)keyname_len, (void)arg;
    switch (status) {
    case SSL_TICKET_FATAL_ERR_MALLOC:
    case SSL_TICKET_FATAL_ERR_OTHER:
        return SSL_TICKET_RETURN_ABORT;
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
        if (!sess || SSL_SESSION_get_protocol_version(sess) != TLS1_3_VERSION ||
            SSL_version(ssl) != TLS1_3_VERSION)
            return SSL_TICKET_RETURN_IGNORE;
        return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE
                                            : SSL_TICKET_RETURN_USE_RENEW;
    default: /* no ticket, or one we cannot decrypt: full handshake, new ticket */
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
}

/* What server and client contexts share. Returns 0 or -1 with err set. */
static int apply_policy(SSL_CTX *ctx, char *err, size_t errlen)
{
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        set_ssl_err(err, errlen, "cannot set the minimum TLS version", "");
        return -1;
    }
    /* Level 2: 112-bit security, no SHA-1 signatures, RSA/DH >= 2048. */
    SSL_CTX_set_security_level(ctx, 2);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (!SSL_CTX_set_cipher_list(ctx, TLS_POLICY_CIPHERS_12)) {
        set_ssl_err(err, errlen, "cannot set the TLS 1.2 cipher list", "");
        return -1;
    }
    if (!SSL_CTX_set_ciphersuites(ctx, TLS_POLICY_SUITES_13)) {
        set_ssl_err(err, errlen, "cannot set the TLS 1.3 cipher suites", "");
        return -1;
    }
    if (!SSL_CTX_set1_groups_list(ctx, TLS_POLICY_GROUPS)) {
        set_ssl_err(err, errlen, "cannot set the key exchange groups", "");
        return -1;
    }
    /* RELEASE_BUFFERS frees the ~34 KiB of record buffers while a connection is idle:
     * the target is < 10 KiB per idle TLS session. The other two let the event loop
     * retry writes with a buffer that moved or shrank. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, const char *ca_file,
                            char *err, size_t errlen)
{
    char reason[256];
    EVP_PKEY *key = NULL;
    SSL_CTX *ctx = NULL;
    ERR_clear_error();
    if (!cert_file || !key_file) {
        set_err(err, errlen, "%s", "a TLS certificate and key file are required");
        return NULL;
    }

    /* Read and judge the key ourselves before OpenSSL sees it, so that a weak key gets
     * our policy message instead of a terse "ee key too small" from the chain load. */
    BIO *bio = BIO_new_file(key_file, "r");
    if (!bio) {
        set_ssl_err(err, errlen, "cannot open TLS private key file", key_file);
        return NULL;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (!key) {
        set_ssl_err(err, errlen, "cannot read a PEM private key (unencrypted) from", key_file);
        return NULL;
    }
    if (tls_check_key_strength(key, reason, sizeof reason) < 0) {
        set_err(err, errlen, "TLS private key %s refused: %s", key_file, reason);
        goto fail;
    }

    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        set_ssl_err(err, errlen, "cannot create a TLS server context", "");
        goto fail;
    }
    if (apply_policy(ctx, err, errlen) < 0)
        goto fail;
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        set_ssl_err(err, errlen, "cannot load the TLS certificate chain", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        char ossl[256];
        tls_last_error(ossl, sizeof ossl);
        set_err(err, errlen, "TLS private key %s does not match certificate %s: %s", key_file,
                cert_file, ossl);
        goto fail;
    }
    /* The same check on what OpenSSL actually holds, so the policy is enforced on the
     * key used for the handshake even if the loading above changes. */
    if (tls_check_key_strength(SSL_CTX_get0_privatekey(ctx), reason, sizeof reason) < 0) {
        set_err(err, errlen, "TLS private key %s refused: %s", key_file, reason);
        goto fail;
    }

    if (ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            set_ssl_err(err, errlen, "cannot load the TLS CA file", ca_file);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        /* Request a certificate but do not demand one: c2s clients authenticate with
         * SASL and present none; s2s peers do, and the caller checks the result. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }

    if (!SSL_CTX_set_session_id_context(ctx, session_ctx_id, sizeof session_ctx_id - 1)) {
        set_ssl_err(err, errlen, "cannot set the TLS session context", "");
        goto fail;
    }
    /* No server-side session cache: TLS 1.3 resumes from stateless tickets, and TLS 1.2
     * resumption (tickets or cached master secrets) is what the policy wants to avoid.
     * It also keeps per-connection memory off the server's books. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_cert_cb(ctx, server_cert_cb, NULL);
    SSL_CTX_set_session_ticket_cb(ctx, NULL, server_ticket_dec_cb, NULL);
    /* Lets connections leave OpenSSL's per-connection object once established. */
    if (tls_rec_enable(ctx) < 0) {
        set_ssl_err(err, errlen, "cannot set up the TLS record layer", "");
        goto fail;
    }

    EVP_PKEY_free(key);
    ERR_clear_error();
    return ctx;
fail:
    EVP_PKEY_free(key);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

SSL_CTX *tls_client_ctx_new(const char *ca_file, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        set_ssl_err(err, errlen, "cannot create a TLS client context", "");
        return NULL;
    }
    if (apply_policy(ctx, err, errlen) < 0)
        goto fail;
    /* Do not ask for TLS 1.2 tickets either (TLS 1.3 tickets are unaffected). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            set_ssl_err(err, errlen, "cannot load the TLS CA file", ca_file);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        set_ssl_err(err, errlen, "cannot load the system CA store", "");
        goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ERR_clear_error();
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

int tls_client_set_domain(SSL *ssl, const char *domain)
{
    if (!ssl || !domain || !*domain)
        return -1;
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, domain, addr) == 1 || inet_pton(AF_INET6, domain, addr) == 1;
    if (is_ip) {
        /* RFC 6066 3: SNI carries host names only; an address is matched as an IP SAN. */
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        return X509_VERIFY_PARAM_set1_ip_asc(param, domain) == 1 ? 0 : -1;
    }
    if (SSL_set_tlsext_host_name(ssl, domain) != 1)
        return -1;
    /* RFC 6125 6.4.3: a wildcard only as the whole left-most label. */
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, domain) != 1)
        return -1;
    return 0;
}

void tls_describe(const SSL *ssl, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    const SSL_CIPHER *c = ssl ? SSL_get_current_cipher(ssl) : NULL;
    if (!c) {
        snprintf(out, outlen, "no TLS");
        return;
    }
    snprintf(out, outlen, "%s %s (%d-bit)", SSL_get_version(ssl), SSL_CIPHER_get_name(c),
             SSL_CIPHER_get_bits(c, NULL));
}

/* RFC 5929 4.1: hash the server certificate with its signature's hash algorithm, MD5
 * and SHA-1 replaced by SHA-256; undefined when the signature has no single hash
 * (e.g. Ed25519), in which case the binding is unavailable. */
static int server_end_point(X509 *cert, unsigned char *out, size_t *len)
{
    int mdnid = NID_undef;
    if (!cert || !X509_get_signature_info(cert, &mdnid, NULL, NULL, NULL))
        return -1;
    if (mdnid == NID_md5 || mdnid == NID_sha1)
        mdnid = NID_sha256;
    const EVP_MD *md = mdnid == NID_undef ? NULL : EVP_get_digestbynid(mdnid);
    if (!md)
        return -1;
    int size = EVP_MD_get_size(md);
    if (size <= 0 || (size_t)size > *len)
        return -1;
    unsigned int n = 0;
    if (X509_digest(cert, md, out, &n) != 1)
        return -1;
    *len = n;
    return 0;
}

int tls_channel_binding(SSL *ssl, int is_server, const char *type, unsigned char *out,
                        size_t *len)
{
    if (!ssl || !type || !out || !len || !SSL_is_init_finished(ssl))
        return -1;
    if (strcmp(type, "tls-exporter") == 0) {
        static const char label[] = "EXPORTER-Channel-Binding";
        if (SSL_version(ssl) != TLS1_3_VERSION || *len < 32)
            return -1;
        /* RFC 9266 2: 32 bytes, empty context. */
        if (SSL_export_keying_material(ssl, out, 32, label, sizeof label - 1,
                                       (const unsigned char *)"", 0, 1) != 1) {
            ERR_clear_error();
            return -1;
        }
        *len = 32;
        return 0;
    }
    if (strcmp(type, "tls-server-end-point") == 0) {
        X509 *cert = is_server ? SSL_get_certificate(ssl) : SSL_get0_peer_certificate(ssl);
        int rc = server_end_point(cert, out, len);
        ERR_clear_error();
        return rc;
    }
    return -1;
}
