/* s2s_tls.c - TLS contexts and certificate identity checks for server links (s2s_tls.h). */
#include "s2s_tls.h"
#include "../common/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

/* id-on-xmppAddr (RFC 6120 13.7.1.4). */
#define OID_XMPP_ADDR "1.3.6.1.5.5.7.8.5"

/* Record verification errors but finish the handshake: the stream layer decides, with a
 * reason it can tell the peer and the log (and dialback may still apply). Nothing is
 * trusted before s2s_tls_peer_valid() says so. */
static int keep_going(int preverify_ok, X509_STORE_CTX *ctx)
{
    (void)preverify_ok, (void)ctx;
    return 1;
}

static int add_trust(SSL_CTX *ctx, const config *cfg, int system_store, char *err, size_t errlen)
{
    if (cfg->ca_file && SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
        snprintf(err, errlen, "cannot load ca_file %s", cfg->ca_file);
        return -1;
    }
    if (system_store && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "cannot load the system CA store");
        return -1;
    }
    /* XMPP servers present their server certificate as TLS clients too; public CAs no
     * longer add clientAuth to it, so the purpose is not checked (the name is). */
    SSL_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, keep_going);
    SSL_CTX_set_verify_depth(ctx, 8);
    return 0;
}

SSL_CTX *s2s_tls_server_ctx(const config *cfg, int system_store, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_server_ctx_new(cfg->cert_file, cfg->key_file, NULL, err, errlen);
    if (!ctx)
        return NULL;
    if (add_trust(ctx, cfg, system_store, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

SSL_CTX *s2s_tls_client_ctx(const config *cfg, int system_store, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_client_ctx_new(cfg->ca_file, err, errlen);
    if (!ctx)
        return NULL;
    char reason[256];
    if (add_trust(ctx, cfg, system_store, err, errlen) < 0)
        goto fail;
    /* Our certificate, for the peer's SASL EXTERNAL (XEP-0178). */
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "cannot load %s / %s for server links", cfg->cert_file,
                 cfg->key_file);
        goto fail;
    }
    if (tls_check_key_strength(SSL_CTX_get0_privatekey(ctx), reason, sizeof reason) < 0) {
        snprintf(err, errlen, "%s", reason);
        goto fail;
    }
    ERR_clear_error();
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

/* An XmppAddr otherName equal to domain? */
static int names_xmpp_addr(X509 *cert, const char *domain)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!names)
        return 0;
    ASN1_OBJECT *xmpp = OBJ_txt2obj(OID_XMPP_ADDR, 1);
    int found = 0;
    for (int i = 0; xmpp && !found && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_OTHERNAME || OBJ_cmp(gn->d.otherName->type_id, xmpp) != 0)
            continue;
        ASN1_TYPE *v = gn->d.otherName->value;
        if (!v || v->type != V_ASN1_UTF8STRING)
            continue;
        const unsigned char *data = ASN1_STRING_get0_data(v->value.utf8string);
        int len = ASN1_STRING_length(v->value.utf8string);
        /* A server's XmppAddr is its bare domain; compared case-insensitively (domains
         * are normalised to lower case already). */
        found = len > 0 && (size_t)len == strlen(domain) &&
                strncasecmp((const char *)data, domain, (size_t)len) == 0;
    }
    ASN1_OBJECT_free(xmpp);
    GENERAL_NAMES_free(names);
    return found;
}

int s2s_tls_peer_valid(SSL *ssl, const char *domain, char *why, size_t whylen)
{
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (!cert) {
        snprintf(why, whylen, "the peer presented no certificate");
        return -1;
    }
    long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK) {
        snprintf(why, whylen, "the peer's certificate is not trusted: %s",
                 X509_verify_cert_error_string(vr));
        return -1;
    }
    /* RFC 6125 6.4.3: a wildcard only as the whole left-most label; the CN is a fallback
     * only when the certificate has no DNS-ID at all (OpenSSL's default). */
    if (X509_check_host(cert, domain, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1 ||
        names_xmpp_addr(cert, domain)) {
        ERR_clear_error();
        return 0;
    }
    ERR_clear_error();
    snprintf(why, whylen, "the peer's certificate does not name %s", domain);
    return -1;
}
