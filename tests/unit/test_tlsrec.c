/* test_tlsrec.c - tlsrec.c, the record layer a settled TLS 1.3 connection moves to:
 * real OpenSSL clients on one end of a socketpair, a server SSL handed over to tls_rec
 * on the other, for each suite of the policy; KeyUpdate both ways, records split at
 * every byte, tampering, closure, resumed handshakes and TLS 1.2 (which stays). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/tls.h"
#include "common/tlsrec.h"
#include "tls_helpers.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a client SSL and a server SSL tracked by tlsrec ---- */

typedef struct {
    SSL *c, *s;
    int fds[2];
    tls_rec *r;
} pair;

static void pump_handshake(pair *p)
{
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 10000 && !(cdone && sdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(p->c);
            if (r == 1)
                cdone = 1;
            else
                assert_true(SSL_get_error(p->c, r) == SSL_ERROR_WANT_READ ||
                            SSL_get_error(p->c, r) == SSL_ERROR_WANT_WRITE);
        }
        if (!sdone) {
            int r = SSL_do_handshake(p->s);
            if (r == 1)
                sdone = 1;
            else
                assert_true(SSL_get_error(p->s, r) == SSL_ERROR_WANT_READ ||
                            SSL_get_error(p->s, r) == SSL_ERROR_WANT_WRITE);
        }
    }
    assert_true(cdone && sdone);
}

/* Read exactly n bytes of application data on the client. */
static void client_read(pair *p, char *out, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < 100000 && got < n; i++) {
        int r = SSL_read(p->c, out + got, (int)(n - got));
        if (r > 0)
            got += (size_t)r;
        else
            assert_int_equal(SSL_get_error(p->c, r), SSL_ERROR_WANT_READ);
    }
    assert_int_equal(got, n);
}

static void client_write(pair *p, const void *data, size_t n)
{
    size_t done = 0;
    while (done < n) {
        int r = SSL_write(p->c, (const char *)data + done, (int)(n - done));
        assert_true(r > 0);
        done += (size_t)r;
    }
}

/* Everything the client sent, as raw bytes from the server's socket. */
static void server_recv_all(pair *p, buf *raw)
{
    char data[4096];
    for (;;) {
        ssize_t n = recv(p->fds[1], data, sizeof data, 0);
        if (n <= 0) {
            assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
            return;
        }
        buf_append(raw, data, (size_t)n);
    }
}

static void server_send(pair *p, buf *out)
{
    size_t off = 0;
    while (off < out->len) {
        ssize_t n = send(p->fds[1], out->data + off, out->len - off, 0);
        assert_true(n > 0);
        off += (size_t)n;
    }
    buf_reset(out);
}

/* A handshake on a tracked server SSL, application data both ways through OpenSSL (so
 * that both sequence numbers have moved), then the hand-over. */
static void setup_pair(pair *p, SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *resume)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds), 0);
    nonblock(p->fds[0]);
    nonblock(p->fds[1]);
    p->c = SSL_new(cctx);
    p->s = SSL_new(sctx);
    SSL_set_fd(p->c, p->fds[0]);
    SSL_set_fd(p->s, p->fds[1]);
    SSL_set_connect_state(p->c);
    SSL_set_accept_state(p->s);
    assert_int_equal(tls_client_set_domain(p->c, "localhost"), 0);
    if (resume)
        assert_int_equal(SSL_set_session(p->c, resume), 1);
    assert_int_equal(tls_rec_track(p->s), 0);
    assert_int_equal(tls_rec_possible(p->s), 1);
    pump_handshake(p);

    char b[16];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(SSL_write(p->s, "ping", 4), 4);
        client_read(p, b, 4);
        assert_memory_equal(b, "ping", 4);
        client_write(p, "pong!", 5);
        int n = 0;
        for (int k = 0; k < 1000 && n <= 0; k++)
            n = SSL_read(p->s, b, sizeof b);
        assert_int_equal(n, 5);
    }
    assert_int_equal(tls_rec_possible(p->s), 1);
    p->r = tls_rec_take(p->s);
    assert_non_null(p->r);
}

static void pair_free(pair *p)
{
    /* A client session freed without close_notify is not resumable. */
    if (SSL_is_init_finished(p->c) && !(SSL_get_shutdown(p->c) & SSL_SENT_SHUTDOWN))
        SSL_shutdown(p->c);
    tls_rec_free(p->r);
    SSL_free(p->c);
    SSL_free(p->s);
    close(p->fds[0]);
    close(p->fds[1]);
    ERR_clear_error();
}

static SSL_CTX *client_ctx(const char *suite)
{
    char err[512] = "";
    SSL_CTX *ctx = tls_client_ctx_new(ca_pem, err, sizeof err);
    if (!ctx)
        fail_msg("client ctx: %s", err);
    if (suite) {
        assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
        assert_int_equal(SSL_CTX_set_ciphersuites(ctx, suite), 1);
    }
    return ctx;
}

/* Server -> client and client -> server through the record layer. */
static void exchange(pair *p, size_t size, int byte_by_byte)
{
    char *msg = malloc(size), *got = malloc(size);
    for (size_t i = 0; i < size; i++)
        msg[i] = (char)('a' + i % 26);
    buf out, plain, raw;
    buf_init(&out);
    buf_init(&plain);
    buf_init(&raw);
    assert_int_equal(tls_rec_seal(p->r, msg, size, &out), 0);
    server_send(p, &out);
    client_read(p, got, size);
    assert_memory_equal(got, msg, size);

    client_write(p, msg, size);
    server_recv_all(p, &raw);
    const char *why = NULL;
    if (byte_by_byte) {
        for (size_t i = 0; i < raw.len; i++)
            assert_int_equal(tls_rec_open(p->r, raw.data + i, 1, &plain, &out, &why), TLS_REC_OK);
    } else {
        assert_int_equal(tls_rec_open(p->r, raw.data, raw.len, &plain, &out, &why), TLS_REC_OK);
    }
    assert_int_equal(plain.len, size);
    assert_memory_equal(plain.data, msg, size);
    assert_int_equal(out.len, 0);
    buf_free(&out);
    buf_free(&plain);
    buf_free(&raw);
    free(msg);
    free(got);
}

static void run_suite(const char *suite, const char *desc)
{
    SSL_CTX *cctx = client_ctx(suite), *sctx = server_ctx();
    pair p;
    setup_pair(&p, cctx, sctx, NULL);
    assert_string_equal(tls_rec_describe(p.r), desc);
    exchange(&p, 5, 0);
    exchange(&p, 40000, 0); /* several records */
    exchange(&p, 700, 1);   /* records arriving a byte at a time */

    /* The client updates its key and asks us to update ours. */
    assert_int_equal(SSL_key_update(p.c, SSL_KEY_UPDATE_REQUESTED), 1);
    client_write(&p, "after", 5);
    buf raw, plain, out;
    buf_init(&raw);
    buf_init(&plain);
    buf_init(&out);
    server_recv_all(&p, &raw);
    const char *why = NULL;
    assert_int_equal(tls_rec_open(p.r, raw.data, raw.len, &plain, &out, &why), TLS_REC_OK);
    assert_int_equal(plain.len, 5);
    assert_memory_equal(plain.data, "after", 5);
    assert_true(out.len > 0); /* our KeyUpdate */
    server_send(&p, &out);
    exchange(&p, 3000, 0); /* both sides on their new keys */

    /* A record altered in transit: refused. */
    buf_reset(&raw);
    buf_reset(&plain);
    client_write(&p, "tampered", 8);
    server_recv_all(&p, &raw);
    raw.data[raw.len - 3] ^= 1;
    assert_int_equal(tls_rec_open(p.r, raw.data, raw.len, &plain, &out, &why), TLS_REC_ERROR);
    assert_string_equal(why, "bad record MAC");
    assert_int_equal(plain.len, 0);
    pair_free(&p);

    /* The client's close_notify, and ours. */
    setup_pair(&p, cctx, sctx, NULL);
    tls_rec_close_notify(p.r, &out);
    server_send(&p, &out);
    char b[4];
    int r = SSL_read(p.c, b, sizeof b);
    assert_int_equal(r, 0);
    assert_int_equal(SSL_get_error(p.c, r), SSL_ERROR_ZERO_RETURN);
    SSL_shutdown(p.c);
    buf_reset(&raw);
    server_recv_all(&p, &raw);
    assert_int_equal(tls_rec_open(p.r, raw.data, raw.len, &plain, &out, &why), TLS_REC_CLOSED);
    pair_free(&p);

    buf_free(&raw);
    buf_free(&plain);
    buf_free(&out);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_aes256(void **state)
{
    (void)state;
    run_suite("TLS_AES_256_GCM_SHA384", "TLSv1.3 TLS_AES_256_GCM_SHA384 (256-bit)");
}

static void test_chacha20(void **state)
{
    (void)state;
    run_suite("TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 (256-bit)");
}

static void test_aes128(void **state)
{
    (void)state;
    run_suite("TLS_AES_128_GCM_SHA256", "TLSv1.3 TLS_AES_128_GCM_SHA256 (128-bit)");
}

/* A resumed handshake sends its ticket differently: the counts must still be right. */
static void test_resumed(void **state)
{
    (void)state;
    SSL_CTX *cctx = client_ctx(NULL), *sctx = server_ctx();
    pair p;
    setup_pair(&p, cctx, sctx, NULL);
    SSL_SESSION *sess = SSL_get1_session(p.c);
    assert_non_null(sess);
    assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
    exchange(&p, 100, 0);
    pair_free(&p);
    setup_pair(&p, cctx, sctx, sess);
    assert_int_equal(SSL_session_reused(p.c), 1);
    exchange(&p, 100, 0);
    pair_free(&p);
    SSL_SESSION_free(sess);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* Garbage and plaintext records after the hand-over are refused. */
static void test_refusals(void **state)
{
    (void)state;
    SSL_CTX *cctx = client_ctx(NULL), *sctx = server_ctx();
    buf plain, out;
    buf_init(&plain);
    buf_init(&out);
    const char *why = NULL;
    pair p;
    setup_pair(&p, cctx, sctx, NULL);
    static const unsigned char alert[] = {21, 3, 3, 0, 2, 2, 40};
    assert_int_equal(tls_rec_open(p.r, alert, sizeof alert, &plain, &out, &why), TLS_REC_ERROR);
    assert_string_equal(why, "unprotected record after the handshake");
    pair_free(&p);
    setup_pair(&p, cctx, sctx, NULL);
    static const unsigned char huge[] = {23, 3, 3, 0x48, 0x01};
    assert_int_equal(tls_rec_open(p.r, huge, sizeof huge, &plain, &out, &why), TLS_REC_ERROR);
    assert_string_equal(why, "record overflow");
    pair_free(&p);
    /* Within the ciphertext limit, but more than 2^14 + 1 bytes of inner plaintext. */
    setup_pair(&p, cctx, sctx, NULL);
    size_t body = 16384 + 2 + 16;
    unsigned char *rec = calloc(1, 5 + body);
    rec[0] = 23, rec[1] = 3, rec[2] = 3, rec[3] = (unsigned char)(body >> 8), rec[4] = (unsigned char)body;
    assert_int_equal(tls_rec_open(p.r, rec, 5 + body, &plain, &out, &why), TLS_REC_ERROR);
    assert_string_equal(why, "record overflow");
    free(rec);
    pair_free(&p);
    buf_free(&plain);
    buf_free(&out);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* TLS 1.2 keeps its SSL object. */
static void test_tls12_stays(void **state)
{
    (void)state;
    SSL_CTX *cctx = client_ctx(NULL), *sctx = server_ctx();
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    pair p;
    memset(&p, 0, sizeof p);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p.fds), 0);
    nonblock(p.fds[0]);
    nonblock(p.fds[1]);
    p.c = SSL_new(cctx);
    p.s = SSL_new(sctx);
    SSL_set_fd(p.c, p.fds[0]);
    SSL_set_fd(p.s, p.fds[1]);
    SSL_set_connect_state(p.c);
    SSL_set_accept_state(p.s);
    assert_int_equal(tls_rec_track(p.s), 0);
    pump_handshake(&p);
    assert_int_equal(tls_rec_possible(p.s), 0);
    assert_null(tls_rec_take(p.s));
    pair_free(&p);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aes256),   cmocka_unit_test(test_chacha20),
        cmocka_unit_test(test_aes128),   cmocka_unit_test(test_resumed),
        cmocka_unit_test(test_refusals), cmocka_unit_test(test_tls12_stays),
    };
    return cmocka_run_group_tests(tests, tls_certs_setup, tls_certs_teardown);
}
