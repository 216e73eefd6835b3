/* tls_helpers.h - what the TLS unit tests share: a throw-away CA and server certificates
 * (RSA 2048, a too-weak RSA 1024, EC P-256, all for "localhost") written as PEM files in a
 * temporary directory by the group setup and removed by the group teardown, a server
 * context of the policy (tls.h) with the RSA certificate, and a non-blocking switch for
 * the socketpairs the handshakes run over. Header-only (static functions and file-scope
 * paths): each test program includes it once, after cmocka.h. */
#ifndef PARLEY_TEST_TLS_HELPERS_H
#define PARLEY_TEST_TLS_HELPERS_H

#include "common/tls.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Paths of the PEM files tls_certs_setup writes. */
static char dir[64];
static char ca_pem[128], rsa_crt[128], rsa_key[128], weak_crt[128], weak_key[128];
static char ec_crt[128], ec_key[128];
/* The RSA server certificate, kept for the channel-binding digest. */
static X509 *rsa_cert_x509;

/* ---- certificate factory ---- */

static inline X509 *make_cert(const char *cn, EVP_PKEY *pub, X509 *issuer,
                              EVP_PKEY *issuer_key, int is_ca)
{
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    unsigned char serial[8];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, pub);

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    const char *exts[][2] = {
        {"basicConstraints", is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE"},
        {"keyUsage", is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment"},
        {"subjectKeyIdentifier", "hash"},
        {"subjectAltName", is_ca ? NULL : "DNS:localhost"},
        {"extendedKeyUsage", is_ca ? NULL : "serverAuth,clientAuth"},
    };
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        if (!exts[i][1])
            continue;
        X509_EXTENSION *e = X509V3_EXT_conf(NULL, &ctx, exts[i][0], exts[i][1]);
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
    return x;
}

static inline void write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (cert)
        assert_int_equal(PEM_write_X509(f, cert), 1);
    if (key)
        assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

/* cmocka group setup: the CA and the certificates above. */
static inline int tls_certs_setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/parley-test-tls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
#define P(var, name) snprintf(var, sizeof var, "%s/%s", dir, name)
    P(ca_pem, "ca.pem");
    P(rsa_crt, "rsa.crt");
    P(rsa_key, "rsa.key");
    P(weak_crt, "weak.crt");
    P(weak_key, "weak.key");
    P(ec_crt, "ec.crt");
    P(ec_key, "ec.key");
#undef P
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    X509 *ca = make_cert("Parley Test CA", ca_key, NULL, ca_key, 1);
    write_pem(ca_pem, ca, NULL);

    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    rsa_cert_x509 = make_cert("localhost", rsa, ca, ca_key, 0);
    write_pem(rsa_crt, rsa_cert_x509, NULL);
    write_pem(rsa_key, NULL, rsa);

    EVP_PKEY *weak = EVP_RSA_gen(1024);
    X509 *weak_cert = make_cert("localhost", weak, ca, ca_key, 0);
    write_pem(weak_crt, weak_cert, NULL);
    write_pem(weak_key, NULL, weak);

    EVP_PKEY *ec = EVP_EC_gen("P-256");
    X509 *ec_cert = make_cert("localhost", ec, ca, ca_key, 0);
    write_pem(ec_crt, ec_cert, NULL);
    write_pem(ec_key, NULL, ec);

    X509_free(ca);
    X509_free(weak_cert);
    X509_free(ec_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(weak);
    EVP_PKEY_free(ec);
    return 0;
}

static inline int tls_certs_teardown(void **state)
{
    (void)state;
    const char *files[] = {ca_pem, rsa_crt, rsa_key, weak_crt, weak_key, ec_crt, ec_key};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(dir);
    X509_free(rsa_cert_x509);
    return 0;
}

static inline void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* A server context of our policy with the RSA certificate. */
static inline SSL_CTX *server_ctx(void)
{
    char err[512] = "";
    SSL_CTX *ctx = tls_server_ctx_new(rsa_crt, rsa_key, NULL, err, sizeof err);
    if (!ctx)
        fail_msg("server ctx: %s", err);
    return ctx;
}

#endif
