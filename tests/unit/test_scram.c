/* test_scram.c - SCRAM (scram.c) against the RFC 5802 / RFC 7677 examples, full
 * client<->server exchanges with and without channel binding, and hostile input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/base64.h"
#include "common/scram.h"
#include "common/scram_internal.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a tiny credential store for the lookup callback ---- */
#define MAX_USERS 4
typedef struct {
    const char *names[MAX_USERS];
    scram_cred creds[MAX_USERS];
    int n;
    int lookups;
} store;

static int lookup(void *ud, const char *username, scram_hash hash, scram_cred *out)
{
    store *st = ud;
    st->lookups++;
    for (int i = 0; i < st->n; i++) {
        if (strcmp(st->names[i], username) == 0 && st->creds[i].hash == hash) {
            *out = st->creds[i];
            return 0;
        }
    }
    return -1;
}

static void store_add(store *st, const char *name, scram_hash hash, const char *password)
{
    assert_true(st->n < MAX_USERS);
    assert_int_equal(scram_make_cred(hash, password, 4096, &st->creds[st->n]), 0);
    st->names[st->n++] = name;
}

static void store_add_salted(store *st, const char *name, scram_hash hash, const char *password,
                             const char *salt_b64, unsigned iter)
{
    size_t sl = 0;
    unsigned char *salt = base64_decode(salt_b64, strlen(salt_b64), &sl);
    assert_non_null(salt);
    assert_int_equal(scram_derive_cred(hash, password, salt, sl, iter, &st->creds[st->n]), 0);
    free(salt);
    st->names[st->n++] = name;
}

/* ---- RFC test vectors ---- */
static void run_vector(scram_hash hash, const char *cnonce, const char *snonce,
                       const char *salt_b64, const char *cfirst, const char *sfirst,
                       const char *cfinal, const char *sfinal)
{
    store st = {0};
    store_add_salted(&st, "user", hash, "pencil", salt_b64, 4096);

    /* client side reproduces the RFC's messages */
    scram_client *c = scram_client_new(hash, 0, NULL, NULL, 0, "user", "pencil");
    assert_non_null(c);
    assert_int_equal(scram_client_set_nonce_for_test(c, cnonce), 0);
    char *m1 = scram_client_first(c);
    assert_string_equal(m1, cfirst);
    char *m3 = NULL;
    assert_int_equal(scram_client_final(c, sfirst, strlen(sfirst), &m3), SCRAM_CONTINUE);
    assert_string_equal(m3, cfinal);
    assert_int_equal(scram_client_verify(c, sfinal, strlen(sfinal)), SCRAM_OK);

    /* server side reproduces them too */
    scram_server *s = scram_server_new(hash, 0, NULL, NULL, 0, lookup, &st);
    assert_non_null(s);
    assert_int_equal(scram_server_set_nonce_for_test(s, snonce), 0);
    char *m2 = NULL, *m4 = NULL;
    assert_int_equal(scram_server_first(s, cfirst, strlen(cfirst), &m2), SCRAM_OK);
    assert_string_equal(m2, sfirst);
    assert_int_equal(scram_server_final(s, cfinal, strlen(cfinal), &m4), SCRAM_OK);
    assert_string_equal(m4, sfinal);
    assert_string_equal(scram_server_username(s), "user");

    free(m1);
    free(m2);
    free(m3);
    free(m4);
    scram_client_free(c);
    scram_server_free(s);
}

static void test_rfc5802_sha1(void **state)
{
    (void)state;
    run_vector(SCRAM_SHA1, "fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j", "QSXCR+Q6sek8bf92",
               "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
               "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
               "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
               "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

static void test_rfc7677_sha256(void **state)
{
    (void)state;
    run_vector(SCRAM_SHA256, "rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
               "W22ZaJ0SNY7soEsUEjb6gQ==", "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
               "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
               "i=4096",
               "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
               "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
               "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

/* ---- full exchanges ---- */
typedef struct {
    scram_hash hash;
    int cplus;
    const char *ccb_type;
    const char *ccb_data;
    int splus;
    const char *scb_type;
    const char *scb_data;
    const char *user;
    const char *password;
} exch;

typedef struct {
    scram_status first, final, verify;
    char *username;
} result;

static result run(store *st, const exch *e)
{
    result r = {SCRAM_ERR_INTERNAL, SCRAM_ERR_INTERNAL, SCRAM_ERR_INTERNAL, NULL};
    scram_client *c = scram_client_new(e->hash, e->cplus, e->ccb_type,
                                       (const unsigned char *)e->ccb_data,
                                       e->ccb_data ? strlen(e->ccb_data) : 0, e->user, e->password);
    assert_non_null(c);
    scram_server *s = scram_server_new(e->hash, e->splus, e->scb_type,
                                       (const unsigned char *)e->scb_data,
                                       e->scb_data ? strlen(e->scb_data) : 0, lookup, st);
    assert_non_null(s);
    char *m1 = scram_client_first(c), *m2 = NULL, *m3 = NULL, *m4 = NULL;
    assert_non_null(m1);
    r.first = scram_server_first(s, m1, strlen(m1), &m2);
    if (r.first != SCRAM_OK) {
        assert_null(m2);
        goto done;
    }
    assert_int_equal(scram_client_final(c, m2, strlen(m2), &m3), SCRAM_CONTINUE);
    r.final = scram_server_final(s, m3, strlen(m3), &m4);
    if (r.final != SCRAM_OK) {
        assert_null(m4);
        assert_null(scram_server_username(s));
        goto done;
    }
    r.verify = scram_client_verify(c, m4, strlen(m4));
    r.username = strdup(scram_server_username(s));
done:
    free(m1);
    free(m2);
    free(m3);
    free(m4);
    scram_client_free(c);
    scram_server_free(s);
    return r;
}

static void expect(store *st, const exch *e, scram_status first, scram_status final)
{
    result r = run(st, e);
    assert_int_equal(r.first, first);
    if (first == SCRAM_OK) {
        assert_int_equal(r.final, final);
        if (final == SCRAM_OK) {
            assert_int_equal(r.verify, SCRAM_OK);
            assert_string_equal(r.username, e->user);
        }
    }
    free(r.username);
}

static void test_exchange_plain(void **state)
{
    (void)state;
    store st = {0};
    store_add(&st, "juliet", SCRAM_SHA256, "r0m30!");
    store_add(&st, "juliet", SCRAM_SHA1, "r0m30!");
    store_add(&st, "we,ird=name", SCRAM_SHA256, "p\xc3\xa4ss");
    exch e = {SCRAM_SHA256, 0, NULL, NULL, 0, NULL, NULL, "juliet", "r0m30!"};
    expect(&st, &e, SCRAM_OK, SCRAM_OK);
    e.hash = SCRAM_SHA1;
    expect(&st, &e, SCRAM_OK, SCRAM_OK);
    /* saslname escaping of ',' and '=' round-trips */
    exch w = {SCRAM_SHA256, 0, NULL, NULL, 0, NULL, NULL, "we,ird=name", "p\xc3\xa4ss"};
    expect(&st, &w, SCRAM_OK, SCRAM_OK);
    /* SASLprep: U+00AD SOFT HYPHEN is mapped to nothing */
    w.password = "p\xc2\xad\xc3\xa4ss";
    expect(&st, &w, SCRAM_OK, SCRAM_OK);
}

static void test_exchange_binding(void **state)
{
    (void)state;
    store st = {0};
    store_add(&st, "juliet", SCRAM_SHA256, "secret");
    const char *cb = "0123456789abcdef0123456789abcdef";
    exch e = {SCRAM_SHA256, 1, "tls-exporter", cb, 1, "tls-exporter", cb, "juliet", "secret"};
    expect(&st, &e, SCRAM_OK, SCRAM_OK);
    e.ccb_type = e.scb_type = "tls-server-end-point";
    expect(&st, &e, SCRAM_OK, SCRAM_OK);
    e.hash = SCRAM_SHA1;
    store_add(&st, "juliet", SCRAM_SHA1, "secret");
    expect(&st, &e, SCRAM_OK, SCRAM_OK);

    /* different binding data (a MITM terminating TLS): refused at the final step */
    exch m = {SCRAM_SHA256, 1, "tls-exporter", cb, 1, "tls-exporter",
              "fedcba9876543210fedcba9876543210", "juliet", "secret"};
    expect(&st, &m, SCRAM_OK, SCRAM_ERR_BINDING);
    /* binding type the connection does not offer */
    m.scb_data = cb;
    m.ccb_type = "tls-server-end-point";
    expect(&st, &m, SCRAM_ERR_BINDING, 0);
    /* client binds while using the non-PLUS mechanism */
    m.ccb_type = "tls-exporter";
    m.splus = 0;
    expect(&st, &m, SCRAM_ERR_BINDING, 0);
    /* client chose -PLUS but did not bind ("n") */
    exch n = {SCRAM_SHA256, 0, NULL, NULL, 1, "tls-exporter", cb, "juliet", "secret"};
    expect(&st, &n, SCRAM_ERR_BINDING, 0);
}

static void test_downgrade_y(void **state)
{
    (void)state;
    store st = {0};
    store_add(&st, "juliet", SCRAM_SHA256, "secret");
    const char *cb = "0123456789abcdef0123456789abcdef";
    /* The client can bind but chose plain SCRAM (it did not see -PLUS): it says "y". The
     * server can bind, so the -PLUS offer was stripped on the way: downgrade. */
    exch e = {SCRAM_SHA256, 0, "tls-exporter", cb, 0, "tls-exporter", cb, "juliet", "secret"};
    expect(&st, &e, SCRAM_ERR_BINDING, 0);
    /* The server really cannot bind: "y" is fine. */
    e.scb_type = e.scb_data = NULL;
    expect(&st, &e, SCRAM_OK, SCRAM_OK);
}

static void test_wrong_password(void **state)
{
    (void)state;
    store st = {0};
    store_add(&st, "juliet", SCRAM_SHA256, "secret");
    exch e = {SCRAM_SHA256, 0, NULL, NULL, 0, NULL, NULL, "juliet", "Secret"};
    expect(&st, &e, SCRAM_OK, SCRAM_ERR_AUTH);
    /* credentials for the other hash only: unknown for this mechanism */
    e.hash = SCRAM_SHA1;
    e.password = "secret";
    expect(&st, &e, SCRAM_OK, SCRAM_ERR_AUTH);
}

/* Server-first for username, checked for shape; returns it (caller frees). */
static char *server_first_for(store *st, const char *user)
{
    char m1[256];
    snprintf(m1, sizeof m1, "n,,n=%s,r=abcdefgh", user);
    scram_server *s = scram_server_new(SCRAM_SHA256, 0, NULL, NULL, 0, lookup, st);
    char *m2 = NULL;
    assert_int_equal(scram_server_first(s, m1, strlen(m1), &m2), SCRAM_OK);
    assert_non_null(m2);
    assert_memory_equal(m2, "r=abcdefgh", 10);
    assert_int_equal(strlen(m2), strlen("r=abcdefgh") + 24 + strlen(",s=") + 24 + strlen(",i=4096"));
    scram_server_free(s);
    /* strip the nonce: return "s=...,i=..." */
    char *rest = strdup(strchr(m2, ',') + 1);
    free(m2);
    return rest;
}

static void test_unknown_user(void **state)
{
    (void)state;
    store st = {0};
    store_add(&st, "juliet", SCRAM_SHA256, "secret");
    char *a1 = server_first_for(&st, "nobody");
    char *a2 = server_first_for(&st, "nobody");
    char *b = server_first_for(&st, "somebody");
    char *real = server_first_for(&st, "juliet");
    assert_string_equal(a1, a2);     /* stable, as for a real account */
    assert_string_not_equal(a1, b);  /* but per user */
    assert_string_not_equal(a1, real);
    free(a1);
    free(a2);
    free(b);
    free(real);
    /* Fails only at the final step, with the same status as a wrong password. */
    exch e = {SCRAM_SHA256, 0, NULL, NULL, 0, NULL, NULL, "nobody", "secret"};
    expect(&st, &e, SCRAM_OK, SCRAM_ERR_AUTH);
}

/* An independent computation of a client proof, to craft messages our client would
 * never send (authzid, extensions). */
static char *proof_for(scram_hash h, const char *password, const unsigned char *salt,
                       size_t salt_len, int iter, const char *am)
{
    const EVP_MD *md = h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
    int kl = EVP_MD_get_size(md);
    unsigned char sp[32], ck[32], sk[32], sig[32];
    unsigned int n;
    assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iter,
                                       md, kl, sp), 1);
    HMAC(md, sp, kl, (const unsigned char *)"Client Key", 10, ck, &n);
    EVP_Digest(ck, (size_t)kl, sk, &n, md, NULL);
    HMAC(md, sk, kl, (const unsigned char *)am, strlen(am), sig, &n);
    for (int i = 0; i < kl; i++)
        ck[i] ^= sig[i];
    return base64_encode(ck, (size_t)kl);
}

/* Drive a server with a hand-made client-first (gs2 header + bare) and a correct proof.
 * Returns the final status. */
static scram_status crafted(store *st, const char *gs2, const char *bare, const char *ext)
{
    scram_server *s = scram_server_new(SCRAM_SHA256, 0, NULL, NULL, 0, lookup, st);
    char m1[512], *m2 = NULL, *m4 = NULL;
    snprintf(m1, sizeof m1, "%s%s", gs2, bare);
    scram_status rc = scram_server_first(s, m1, strlen(m1), &m2);
    if (rc != SCRAM_OK) {
        scram_server_free(s);
        return rc;
    }
    /* r=<nonce>,s=<salt>,i=<n> */
    char nonce[128], salt_b64[64];
    int iter = 0;
    assert_int_equal(sscanf(m2, "r=%127[^,],s=%63[^,],i=%d", nonce, salt_b64, &iter), 3);
    size_t sl;
    unsigned char *salt = base64_decode(salt_b64, strlen(salt_b64), &sl);
    char *cb = base64_encode((const unsigned char *)gs2, strlen(gs2));
    char cfwp[512], am[1536], m3[1024];
    snprintf(cfwp, sizeof cfwp, "c=%s,r=%s%s", cb, nonce, ext);
    snprintf(am, sizeof am, "%s,%s,%s", bare, m2, cfwp);
    char *proof = proof_for(SCRAM_SHA256, "secret", salt, sl, iter, am);
    snprintf(m3, sizeof m3, "%s,p=%s", cfwp, proof);
    rc = scram_server_final(s, m3, strlen(m3), &m4);
    free(salt);
    free(cb);
    free(proof);
    free(m2);
    free(m4);
    scram_server_free(s);
    return rc;
}

static void test_authzid_and_extensions(void **state)
{
    (void)state;
    store st = {0};
    store_add(&st, "juliet", SCRAM_SHA256, "secret");
    assert_int_equal(crafted(&st, "n,,", "n=juliet,r=abcdef", ""), SCRAM_OK);
    assert_int_equal(crafted(&st, "n,a=juliet,", "n=juliet,r=abcdef", ""), SCRAM_OK);
    assert_int_equal(crafted(&st, "n,a=romeo,", "n=juliet,r=abcdef", ""), SCRAM_ERR_AUTHZID);
    /* optional extensions are ignored, both in client-first and client-final */
    assert_int_equal(crafted(&st, "n,,", "n=juliet,r=abcdef,x=whatever", ",y=more"), SCRAM_OK);
    /* a mandatory extension is refused */
    assert_int_equal(crafted(&st, "n,,", "m=ext,n=juliet,r=abcdef", ""), SCRAM_ERR_MALFORMED);
}

static scram_status server_first_status(const char *m1, size_t len)
{
    store st = {0};
    store_add(&st, "user", SCRAM_SHA256, "pencil");
    scram_server *s = scram_server_new(SCRAM_SHA256, 0, NULL, NULL, 0, lookup, &st);
    char *m2 = NULL;
    scram_status rc = scram_server_first(s, m1, len, &m2);
    if (rc != SCRAM_OK)
        assert_null(m2);
    free(m2);
    scram_server_free(s);
    return rc;
}

static void test_malformed_client_first(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "x,,n=user,r=abc",       /* bad cbind flag */
        "n,n=user,r=abc",        /* missing authzid field */
        "n,,r=abc",              /* missing username */
        "n,,n=user",             /* missing nonce */
        "n,,n=user,",            /* empty attribute */
        "n,,n=,r=abc",           /* empty username */
        "n,,n=user,r=",          /* empty nonce */
        "n,,n=user,r=abc,",      /* trailing comma */
        "n,,n=user,r=abc,x",     /* extension without '=' */
        "n,,n=us=2Xer,r=abc",    /* bad saslname escape */
        "n,,n=user=,r=abc",
        "n,,n=user,r=ab\001c",   /* non-printable nonce */
        "n,,r=abc,n=user",       /* wrong order */
        "n,a=,n=user,r=abc",     /* empty authzid */
        "n,b=x,n=user,r=abc",    /* not an authzid */
        "p=,,n=user,r=abc",      /* empty cb name */
        "p=tls exporter,,n=user,r=abc",
        "n",
        "n,",
        "n,,",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        scram_status rc = server_first_status(bad[i], strlen(bad[i]));
        if (rc != SCRAM_ERR_MALFORMED)
            fail_msg("client-first #%zu \"%s\": status %d", i, bad[i], rc);
    }
    /* embedded NUL */
    assert_int_equal(server_first_status("n,,n=user\0x,r=abc", 17), SCRAM_ERR_MALFORMED);
    /* huge input: refused before any parsing */
    size_t big = 1 << 20;
    char *huge = malloc(big);
    memcpy(huge, "n,,n=user,r=", 12);
    memset(huge + 12, 'a', big - 12);
    assert_int_equal(server_first_status(huge, big), SCRAM_ERR_MALFORMED);
    /* ... but a long-ish, legitimate nonce is fine */
    huge[1000] = '\0';
    assert_int_equal(server_first_status(huge, 1000), SCRAM_OK);
    free(huge);
}

/* A server after a good client-first, for feeding broken client-finals. */
static scram_status server_final_status(const char *m3)
{
    store st = {0};
    store_add_salted(&st, "user", SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096);
    scram_server *s = scram_server_new(SCRAM_SHA1, 0, NULL, NULL, 0, lookup, &st);
    scram_server_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j");
    const char *m1 = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
    char *m2 = NULL, *m4 = NULL;
    assert_int_equal(scram_server_first(s, m1, strlen(m1), &m2), SCRAM_OK);
    scram_status rc = scram_server_final(s, m3, strlen(m3), &m4);
    if (rc != SCRAM_OK)
        assert_null(m4);
    /* a second final is a protocol error whatever happened */
    char *again = NULL;
    assert_int_equal(scram_server_final(s, m3, strlen(m3), &again), SCRAM_ERR_INTERNAL);
    free(m2);
    free(m4);
    scram_server_free(s);
    return rc;
}

#define RN "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
#define GOODP "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="

static void test_malformed_client_final(void **state)
{
    (void)state;
    assert_int_equal(server_final_status("c=biws," RN "," GOODP), SCRAM_OK);
    assert_int_equal(server_final_status("c=biws," RN), SCRAM_ERR_MALFORMED);           /* no proof */
    assert_int_equal(server_final_status(RN "," GOODP), SCRAM_ERR_MALFORMED);           /* no c= */
    assert_int_equal(server_final_status("c=biws," GOODP), SCRAM_ERR_MALFORMED);        /* no r= */
    assert_int_equal(server_final_status("c=biws," RN "," GOODP ",x=y"), SCRAM_ERR_MALFORMED);
    assert_int_equal(server_final_status("c=biws," RN ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts"),
                     SCRAM_ERR_MALFORMED); /* bad base64 */
    assert_int_equal(server_final_status("c=biws," RN ",p=dGVzdA=="), SCRAM_ERR_MALFORMED);
    assert_int_equal(server_final_status("c=bi!s," RN "," GOODP), SCRAM_ERR_MALFORMED);
    assert_int_equal(server_final_status("c=eSws," RN "," GOODP), SCRAM_ERR_BINDING); /* "y,," */
    assert_int_equal(server_final_status("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7X,"
                                         GOODP),
                     SCRAM_ERR_AUTH); /* nonce mismatch */
    assert_int_equal(server_final_status("c=biws," RN ",p=v1X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
                     SCRAM_ERR_AUTH); /* one bit off in the proof */
    assert_int_equal(server_final_status(""), SCRAM_ERR_MALFORMED);
}

static void test_client_rejects_bad_server(void **state)
{
    (void)state;
    static const char *bad[] = {
        "r=OTHERNONCEabc,s=QSXCR+Q6sek8bf92,i=4096",   /* not our nonce */
        "r=fyko,s=QSXCR+Q6sek8bf92,i=4096",            /* exactly our nonce: no server part */
        "r=fykoXYZ,s=QSXCR+Q6sek8bf92,i=0",
        "r=fykoXYZ,s=QSXCR+Q6sek8bf92,i=100",          /* below the minimum */
        "r=fykoXYZ,s=QSXCR+Q6sek8bf92,i=99999999999",  /* absurd */
        "r=fykoXYZ,s=QSXCR+Q6sek8bf92,i=-4096",
        "r=fykoXYZ,s=QSXCR+Q6sek8bf92,i=04096",
        "r=fykoXYZ,s=QSXCR+Q6sek8bf9,i=4096",          /* bad base64 */
        "r=fykoXYZ,s==,i=4096",                        /* empty salt */
        "r=fykoXYZ,i=4096",
        "m=x,r=fykoXYZ,s=QSXCR+Q6sek8bf92,i=4096",
        "r=fykoXYZ,s=QSXCR+Q6sek8bf92",
        "e=other-error",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        scram_client *c = scram_client_new(SCRAM_SHA1, 0, NULL, NULL, 0, "user", "pencil");
        scram_client_set_nonce_for_test(c, "fyko");
        free(scram_client_first(c));
        char *m3 = (char *)1;
        scram_status rc = scram_client_final(c, bad[i], strlen(bad[i]), &m3);
        if (rc != SCRAM_ERR_MALFORMED)
            fail_msg("server-first #%zu \"%s\": status %d", i, bad[i], rc);
        assert_null(m3);
        scram_client_free(c);
    }
    /* and a bad server signature */
    static const char *sfinal[] = {"v=rmF9pqV8S7suAoZWja4dJRkFsKQ", "v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                                   "e=invalid-proof", "", "v=", "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=x"};
    for (size_t i = 0; i < sizeof sfinal / sizeof sfinal[0]; i++) {
        scram_client *c = scram_client_new(SCRAM_SHA1, 0, NULL, NULL, 0, "user", "pencil");
        scram_client_set_nonce_for_test(c, "fyko+d2lbbFgONRv9qkxdawL");
        free(scram_client_first(c));
        const char *m2 = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        char *m3 = NULL;
        assert_int_equal(scram_client_final(c, m2, strlen(m2), &m3), SCRAM_CONTINUE);
        free(m3);
        assert_int_equal(scram_client_verify(c, sfinal[i], strlen(sfinal[i])), SCRAM_ERR_AUTH);
        scram_client_free(c);
    }
}

static void test_check_password(void **state)
{
    (void)state;
    scram_cred cred;
    assert_int_equal(scram_make_cred(SCRAM_SHA256, "pencil", 4096, &cred), 0);
    assert_int_equal(cred.key_len, 32);
    assert_int_equal(cred.salt_len, SCRAM_SALT_LEN);
    assert_int_equal(cred.iterations, 4096);
    assert_int_equal(scram_check_password(&cred, "pencil"), 1);
    assert_int_equal(scram_check_password(&cred, "Pencil"), 0);
    assert_int_equal(scram_check_password(&cred, ""), 0);
    assert_int_equal(scram_check_password(&cred, "pen\xc2\xad" "cil"), 1); /* SASLprep */
    /* two creds for the same password differ (random salt) */
    scram_cred other;
    assert_int_equal(scram_make_cred(SCRAM_SHA256, "pencil", 4096, &other), 0);
    assert_memory_not_equal(cred.salt, other.salt, SCRAM_SALT_LEN);
    assert_memory_not_equal(cred.stored_key, other.stored_key, 32);

    assert_int_equal(scram_make_cred(SCRAM_SHA1, "pencil", 4096, &cred), 0);
    assert_int_equal(cred.key_len, 20);
    assert_int_equal(scram_check_password(&cred, "pencil"), 1);
    cred.key_len = 32; /* corrupted record: never matches */
    assert_int_equal(scram_check_password(&cred, "pencil"), 0);

    assert_int_equal(scram_make_cred(SCRAM_SHA256, "pencil", 1000, &cred), -1);
    assert_int_equal(scram_make_cred(SCRAM_SHA256, "bad\x07", 4096, &cred), -1);

    char *p = scram_saslprep("I\xc2\xadX");
    assert_string_equal(p, "IX");
    free(p);
    p = scram_saslprep("\xe2\x85\xa8"); /* U+2168 ROMAN NUMERAL NINE -> "IX" */
    assert_string_equal(p, "IX");
    free(p);
    assert_null(scram_saslprep("a\x07" "b"));
    assert_null(scram_saslprep("\xd8\xa7" "1")); /* RandALCat rules */
}

static void test_mech_names(void **state)
{
    (void)state;
    assert_string_equal(scram_mech_name(SCRAM_SHA1, 0), "SCRAM-SHA-1");
    assert_string_equal(scram_mech_name(SCRAM_SHA256, 1), "SCRAM-SHA-256-PLUS");
    scram_hash h;
    int plus;
    assert_int_equal(scram_mech_parse("SCRAM-SHA-256-PLUS", &h, &plus), 0);
    assert_int_equal(h, SCRAM_SHA256);
    assert_int_equal(plus, 1);
    assert_int_equal(scram_mech_parse("SCRAM-SHA-1", &h, &plus), 0);
    assert_int_equal(h, SCRAM_SHA1);
    assert_int_equal(plus, 0);
    assert_int_equal(scram_mech_parse("PLAIN", &h, &plus), -1);
    assert_int_equal(scram_mech_parse("SCRAM-SHA-512", &h, &plus), -1);
    assert_int_equal(scram_mech_parse("scram-sha-1", &h, &plus), -1);
}

static void test_misuse(void **state)
{
    (void)state;
    store st = {0};
    /* -PLUS client without binding data cannot be created */
    assert_null(scram_client_new(SCRAM_SHA256, 1, NULL, NULL, 0, "u", "p"));
    assert_null(scram_client_new(SCRAM_SHA256, 0, NULL, NULL, 0, "", "p"));
    assert_null(scram_client_new(SCRAM_SHA256, 0, NULL, NULL, 0, "u", "bad\x07"));
    assert_null(scram_server_new(SCRAM_SHA256, 1, "tls-exporter", NULL, 0, lookup, &st));
    /* out of order calls */
    scram_server *s = scram_server_new(SCRAM_SHA256, 0, NULL, NULL, 0, lookup, &st);
    char *out = NULL;
    assert_int_equal(scram_server_final(s, "c=biws,r=x,p=eA==", 17, &out), SCRAM_ERR_INTERNAL);
    assert_null(scram_server_username(s));
    scram_server_free(s);
    scram_client *c = scram_client_new(SCRAM_SHA256, 0, NULL, NULL, 0, "u", "p");
    assert_int_equal(scram_client_verify(c, "v=AAAA", 6), SCRAM_ERR_AUTH);
    char *m1 = scram_client_first(c);
    assert_null(scram_client_first(c));
    free(m1);
    scram_client_free(c);
    scram_server_free(NULL);
    scram_client_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5802_sha1),
        cmocka_unit_test(test_rfc7677_sha256),
        cmocka_unit_test(test_exchange_plain),
        cmocka_unit_test(test_exchange_binding),
        cmocka_unit_test(test_downgrade_y),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_unknown_user),
        cmocka_unit_test(test_authzid_and_extensions),
        cmocka_unit_test(test_malformed_client_first),
        cmocka_unit_test(test_malformed_client_final),
        cmocka_unit_test(test_client_rejects_bad_server),
        cmocka_unit_test(test_check_password),
        cmocka_unit_test(test_mech_names),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
