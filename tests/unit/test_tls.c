/* test_tls.c - tls.c under real handshakes: certificates made at test time, both ends in
 * this process over a socketpair, checking the policy (versions, ciphers, preference,
 * key strength), verification, descriptions and channel binding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/tls.h"
#include "tls_helpers.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- in-process handshake over a socketpair ---- */

typedef struct {
    SSL *c, *s;
    int fds[2];
} pair;

/* Session the next handshake's client offers for resumption (NULL: none). */
static SSL_SESSION *next_session;

/* Returns 1 if both ends completed the handshake. */
static int handshake(SSL_CTX *cctx, SSL_CTX *sctx, const char *domain, pair *p)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds), 0);
    nonblock(p->fds[0]);
    nonblock(p->fds[1]);
    p->c = SSL_new(cctx);
    p->s = SSL_new(sctx);
    assert_non_null(p->c);
    assert_non_null(p->s);
    SSL_set_fd(p->c, p->fds[0]);
    SSL_set_fd(p->s, p->fds[1]);
    SSL_set_connect_state(p->c);
    SSL_set_accept_state(p->s);
    if (domain)
        assert_int_equal(tls_client_set_domain(p->c, domain), 0);
    if (next_session)
        assert_int_equal(SSL_set_session(p->c, next_session), 1);

    int cdone = 0, sdone = 0, cfail = 0, sfail = 0, after_fail = 0;
    for (int i = 0; i < 10000; i++) {
        if (!cdone && !cfail) {
            int r = SSL_do_handshake(p->c);
            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(p->c, r) != SSL_ERROR_WANT_READ &&
                     SSL_get_error(p->c, r) != SSL_ERROR_WANT_WRITE)
                cfail = 1;
        }
        if (!sdone && !sfail) {
            int r = SSL_do_handshake(p->s);
            if (r == 1)
                sdone = 1;
            else if (SSL_get_error(p->s, r) != SSL_ERROR_WANT_READ &&
                     SSL_get_error(p->s, r) != SSL_ERROR_WANT_WRITE)
                sfail = 1;
        }
        if (cdone && sdone)
            break;
        /* once one side failed, give the other a few rounds to read the alert */
        if ((cfail || sfail) && ++after_fail > 50)
            break;
    }
    ERR_clear_error();
    if (!(cdone && sdone))
        return 0;
    /* Application data both ways: lets the client process TLS 1.3 tickets. */
    char buf[8];
    assert_int_equal(SSL_write(p->s, "ping", 4), 4);
    assert_int_equal(SSL_read(p->c, buf, sizeof buf), 4);
    assert_int_equal(SSL_write(p->c, "pong", 4), 4);
    assert_int_equal(SSL_read(p->s, buf, sizeof buf), 4);
    return 1;
}

static void pair_free(pair *p)
{
    /* A clean close_notify: a session freed without one is marked not resumable. */
    if (SSL_is_init_finished(p->c))
        SSL_shutdown(p->c);
    if (SSL_is_init_finished(p->s))
        SSL_shutdown(p->s);
    ERR_clear_error();
    SSL_free(p->c);
    SSL_free(p->s);
    close(p->fds[0]);
    close(p->fds[1]);
}

static SSL_CTX *client_ctx(void)
{
    char err[512] = "";
    SSL_CTX *ctx = tls_client_ctx_new(ca_pem, err, sizeof err);
    if (!ctx)
        fail_msg("client ctx: %s", err);
    return ctx;
}

/* A client outside our policy, to see what the server accepts. */
static SSL_CTX *raw_client(int max_version, const char *ciphers12, const char *suites13)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (max_version < TLS1_2_VERSION) {
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_min_proto_version(ctx, 0);
    }
    SSL_CTX_set_max_proto_version(ctx, max_version);
    if (ciphers12)
        assert_int_equal(SSL_CTX_set_cipher_list(ctx, ciphers12), 1);
    if (suites13)
        assert_int_equal(SSL_CTX_set_ciphersuites(ctx, suites13), 1);
    return ctx;
}

/* ---- tests ---- */

static void test_key_strength(void **state)
{
    (void)state;
    char err[256];
    EVP_PKEY *k = EVP_RSA_gen(1024);
    assert_int_equal(tls_check_key_strength(k, err, sizeof err), -1);
    assert_string_equal(err, "RSA key of 1024 bits is below the 2048-bit minimum");
    EVP_PKEY_free(k);

    k = EVP_EC_gen("P-384");
    assert_int_equal(tls_check_key_strength(k, err, sizeof err), 0);
    EVP_PKEY_free(k);
    k = EVP_EC_gen("P-256");
    assert_int_equal(tls_check_key_strength(k, err, sizeof err), 0);
    EVP_PKEY_free(k);
    k = EVP_EC_gen("P-521");
    assert_int_equal(tls_check_key_strength(k, err, sizeof err), -1);
    assert_non_null(strstr(err, "secp521r1"));
    EVP_PKEY_free(k);
    k = EVP_EC_gen("secp256k1");
    assert_int_equal(tls_check_key_strength(k, err, sizeof err), -1);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_int_equal(tls_check_key_strength(k, err, sizeof err), 0);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    assert_int_equal(tls_check_key_strength(k, err, sizeof err), -1);
    assert_non_null(strstr(err, "X25519"));
    EVP_PKEY_free(k);
    assert_int_equal(tls_check_key_strength(NULL, err, sizeof err), -1);
}

static void test_server_ctx_errors(void **state)
{
    (void)state;
    char err[512];
    /* 1024-bit RSA is refused at start-up, naming the file and the reason */
    assert_null(tls_server_ctx_new(weak_crt, weak_key, NULL, err, sizeof err));
    assert_non_null(strstr(err, weak_key));
    assert_non_null(strstr(err, "RSA key of 1024 bits is below the 2048-bit minimum"));
    /* missing files are named */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nonexistent.crt", dir);
    assert_null(tls_server_ctx_new(missing, rsa_key, NULL, err, sizeof err));
    assert_non_null(strstr(err, missing));
    assert_null(tls_server_ctx_new(rsa_crt, missing, NULL, err, sizeof err));
    assert_non_null(strstr(err, missing));
    /* a key file holding no key */
    assert_null(tls_server_ctx_new(rsa_crt, rsa_crt, NULL, err, sizeof err));
    assert_non_null(strstr(err, rsa_crt));
    /* key and certificate that do not belong together */
    assert_null(tls_server_ctx_new(rsa_crt, ec_key, NULL, err, sizeof err));
    assert_non_null(strstr(err, "does not match"));
    /* a bad CA file */
    assert_null(tls_server_ctx_new(rsa_crt, rsa_key, missing, err, sizeof err));
    assert_non_null(strstr(err, missing));
    assert_null(tls_client_ctx_new(missing, err, sizeof err));
    assert_non_null(strstr(err, missing));
    /* P-256 is accepted */
    SSL_CTX *ctx = tls_server_ctx_new(ec_crt, ec_key, NULL, err, sizeof err);
    assert_non_null(ctx);
    SSL_CTX_free(ctx);
    assert_int_equal(ERR_peek_error(), 0); /* no stale errors left for the caller */
}

static void test_handshake_tls13(void **state)
{
    (void)state;
    SSL_CTX *cctx = client_ctx(), *sctx = server_ctx();
    pair p;
    assert_int_equal(handshake(cctx, sctx, "localhost", &p), 1);
    assert_int_equal(SSL_version(p.c), TLS1_3_VERSION);
    assert_string_equal(SSL_get_cipher_name(p.s), "TLS_AES_256_GCM_SHA384");
    assert_int_equal(SSL_get_verify_result(p.c), X509_V_OK);

    char d[128];
    tls_describe(p.c, d, sizeof d);
    assert_string_equal(d, "TLSv1.3 TLS_AES_256_GCM_SHA384 (256-bit)");
    tls_describe(p.s, d, sizeof d);
    assert_string_equal(d, "TLSv1.3 TLS_AES_256_GCM_SHA384 (256-bit)");
    tls_describe(NULL, d, sizeof d);
    assert_string_equal(d, "no TLS");

    /* tls-exporter: 32 bytes, the same on both ends */
    unsigned char cb_c[64], cb_s[64], zero[64] = {0};
    size_t lc = sizeof cb_c, ls = sizeof cb_s;
    assert_int_equal(tls_channel_binding(p.c, 0, "tls-exporter", cb_c, &lc), 0);
    assert_int_equal(tls_channel_binding(p.s, 1, "tls-exporter", cb_s, &ls), 0);
    assert_int_equal(lc, 32);
    assert_int_equal(ls, 32);
    assert_memory_equal(cb_c, cb_s, 32);
    assert_memory_not_equal(cb_c, zero, 32);
    size_t small = 16;
    assert_int_equal(tls_channel_binding(p.c, 0, "tls-exporter", cb_c, &small), -1);

    /* tls-server-end-point: SHA-256 (the signature hash) of the server certificate */
    lc = sizeof cb_c;
    ls = sizeof cb_s;
    assert_int_equal(tls_channel_binding(p.c, 0, "tls-server-end-point", cb_c, &lc), 0);
    assert_int_equal(tls_channel_binding(p.s, 1, "tls-server-end-point", cb_s, &ls), 0);
    assert_int_equal(lc, 32);
    assert_int_equal(ls, 32);
    assert_memory_equal(cb_c, cb_s, 32);
    unsigned char want[EVP_MAX_MD_SIZE];
    unsigned int wl = 0;
    X509_digest(rsa_cert_x509, EVP_sha256(), want, &wl);
    assert_int_equal(wl, 32);
    assert_memory_equal(cb_c, want, 32);
    small = 16;
    assert_int_equal(tls_channel_binding(p.s, 1, "tls-server-end-point", cb_s, &small), -1);

    lc = sizeof cb_c;
    assert_int_equal(tls_channel_binding(p.c, 0, "tls-unique", cb_c, &lc), -1);

    /* TLS 1.3 session tickets are issued */
    assert_int_equal(SSL_SESSION_has_ticket(SSL_get0_session(p.c)), 1);
    pair_free(&p);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_binding_before_handshake(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx();
    SSL *s = SSL_new(sctx);
    unsigned char out[64];
    size_t len = sizeof out;
    assert_int_equal(tls_channel_binding(s, 1, "tls-exporter", out, &len), -1);
    assert_int_equal(tls_channel_binding(s, 1, "tls-server-end-point", out, &len), -1);
    SSL_free(s);
    SSL_CTX_free(sctx);
}

static void test_verification_failures(void **state)
{
    (void)state;
    SSL_CTX *cctx = client_ctx(), *sctx = server_ctx();
    pair p;
    /* the certificate names localhost, not the domain we want */
    assert_int_equal(handshake(cctx, sctx, "example.org", &p), 0);
    assert_int_equal(SSL_get_verify_result(p.c), X509_V_ERR_HOSTNAME_MISMATCH);
    pair_free(&p);
    SSL_CTX_free(cctx);

    /* the system store does not know our test CA */
    char err[256];
    cctx = tls_client_ctx_new(NULL, err, sizeof err);
    assert_non_null(cctx);
    assert_int_equal(handshake(cctx, sctx, "localhost", &p), 0);
    assert_int_not_equal(SSL_get_verify_result(p.c), X509_V_OK);
    pair_free(&p);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_old_protocols_and_ciphers_refused(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx();
    pair p;
    /* TLS 1.1 at most, every cipher allowed: refused */
    SSL_CTX *c11 = raw_client(TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0", NULL);
    assert_int_equal(handshake(c11, sctx, NULL, &p), 0);
    pair_free(&p);
    SSL_CTX_free(c11);
    /* TLS 1.2 with only CBC (and static RSA) suites: refused */
    SSL_CTX *cbc = raw_client(TLS1_2_VERSION,
                              "ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256:"
                              "ECDHE-RSA-AES256-SHA:AES256-GCM-SHA384:AES256-SHA",
                              NULL);
    assert_int_equal(handshake(cbc, sctx, NULL, &p), 0);
    pair_free(&p);
    SSL_CTX_free(cbc);
    SSL_CTX_free(sctx);
}

static void test_tls12_aead(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx();
    pair p;
    /* only AES-128-GCM offered: accepted */
    SSL_CTX *c = raw_client(TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256", NULL);
    assert_int_equal(handshake(c, sctx, NULL, &p), 1);
    char d[128];
    tls_describe(p.s, d, sizeof d);
    assert_string_equal(d, "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 (128-bit)");
    /* tls-exporter is for TLS 1.3 only; tls-server-end-point works on 1.2 */
    unsigned char cb[64];
    size_t len = sizeof cb;
    assert_int_equal(tls_channel_binding(p.s, 1, "tls-exporter", cb, &len), -1);
    len = sizeof cb;
    assert_int_equal(tls_channel_binding(p.s, 1, "tls-server-end-point", cb, &len), 0);
    /* no TLS 1.2 session ticket, though this client asked for one */
    assert_int_equal(SSL_SESSION_has_ticket(SSL_get0_session(p.c)), 0);
    pair_free(&p);
    SSL_CTX_free(c);

    /* both offered, client prefers 128: the server's order wins */
    c = raw_client(TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384", NULL);
    assert_int_equal(handshake(c, sctx, NULL, &p), 1);
    assert_string_equal(SSL_get_cipher_name(p.c), "ECDHE-RSA-AES256-GCM-SHA384");
    pair_free(&p);
    SSL_CTX_free(c);

    /* the same on TLS 1.3 */
    c = raw_client(TLS1_3_VERSION, NULL, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
    assert_int_equal(handshake(c, sctx, NULL, &p), 1);
    assert_string_equal(SSL_get_cipher_name(p.c), "TLS_AES_256_GCM_SHA384");
    pair_free(&p);
    SSL_CTX_free(c);
    SSL_CTX_free(sctx);
}

static void test_ec_server_and_client_certs(void **state)
{
    (void)state;
    char err[512];
    /* P-256 server, and a server that accepts (but does not demand) client certificates */
    SSL_CTX *sctx = tls_server_ctx_new(ec_crt, ec_key, ca_pem, err, sizeof err);
    assert_non_null(sctx);
    SSL_CTX *cctx = client_ctx();
    pair p;
    assert_int_equal(handshake(cctx, sctx, "localhost", &p), 1);
    assert_null(SSL_get0_peer_certificate(p.s)); /* c2s clients present none */
    unsigned char a[64], b[64];
    size_t la = sizeof a, lb = sizeof b;
    assert_int_equal(tls_channel_binding(p.c, 0, "tls-server-end-point", a, &la), 0);
    assert_int_equal(tls_channel_binding(p.s, 1, "tls-server-end-point", b, &lb), 0);
    assert_int_equal(la, 32);
    assert_memory_equal(a, b, 32);
    pair_free(&p);

    /* a node presenting a certificate from the CA is verified */
    assert_int_equal(SSL_CTX_use_certificate_file(cctx, rsa_crt, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(cctx, rsa_key, SSL_FILETYPE_PEM), 1);
    assert_int_equal(handshake(cctx, sctx, "localhost", &p), 1);
    assert_non_null(SSL_get0_peer_certificate(p.s));
    assert_int_equal(SSL_get_verify_result(p.s), X509_V_OK);
    pair_free(&p);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* Resume with the session of a first connection; returns whether it was reused. */
static int resumes(SSL_CTX *cctx, SSL_CTX *sctx)
{
    pair p;
    assert_int_equal(handshake(cctx, sctx, NULL, &p), 1);
    SSL_SESSION *sess = SSL_get1_session(p.c);
    pair_free(&p);
    next_session = sess;
    int ok = handshake(cctx, sctx, NULL, &p);
    next_session = NULL;
    assert_int_equal(ok, 1);
    int reused = SSL_session_reused(p.c);
    pair_free(&p);
    SSL_SESSION_free(sess);
    return reused;
}

static void test_resumption(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx();
    /* TLS 1.3 resumes from its (forward-secret, psk_dhe_ke) ticket */
    SSL_CTX *c13 = raw_client(TLS1_3_VERSION, NULL, NULL);
    assert_int_equal(resumes(c13, sctx), 1);
    SSL_CTX_free(c13);
    /* TLS 1.2 does not resume: neither tickets nor a session cache */
    SSL_CTX *c12 = raw_client(TLS1_2_VERSION, NULL, NULL);
    assert_int_equal(resumes(c12, sctx), 0);
    /* ... also when the client does not offer tickets and relies on the session ID */
    SSL_CTX_set_options(c12, SSL_OP_NO_TICKET);
    assert_int_equal(resumes(c12, sctx), 0);
    SSL_CTX_free(c12);
    SSL_CTX_free(sctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_strength),
        cmocka_unit_test(test_server_ctx_errors),
        cmocka_unit_test(test_handshake_tls13),
        cmocka_unit_test(test_binding_before_handshake),
        cmocka_unit_test(test_verification_failures),
        cmocka_unit_test(test_old_protocols_and_ciphers_refused),
        cmocka_unit_test(test_tls12_aead),
        cmocka_unit_test(test_ec_server_and_client_certs),
        cmocka_unit_test(test_resumption),
    };
    return cmocka_run_group_tests(tests, tls_certs_setup, tls_certs_teardown);
}
