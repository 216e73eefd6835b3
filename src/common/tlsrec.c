/* tlsrec.c - see tlsrec.h. RFC 8446 sections 5 (record protocol), 4.6.3 (KeyUpdate),
 * 6.1 (closure alerts), 7.1 and 7.2 (HKDF-Expand-Label, traffic key calculation). */
#include "tlsrec.h"
#include "buf.h"
#include "util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REC_HEADER 5
#define TAG_LEN 16
#define NONCE_LEN 12
#define MAX_PLAIN 16384                 /* 2^14 (RFC 8446 5.1) */
#define MAX_CIPHER (MAX_PLAIN + 256)    /* 2^14 + 256 (RFC 8446 5.2) */
#define CT_APPDATA 23
#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define MT_FINISHED 20
#define MT_KEY_UPDATE 24
/* AES-GCM keys must not protect more than 2^24.5 full records (RFC 8446 5.5): update
 * our sending key well before. The peer's keys are its own business. */
#define WRITE_KEY_RECORDS (1ULL << 24)

enum { R = 0, W = 1 }; /* read (client's secret) and write (server's secret) */

/* ---------------------------------------------------------------- suites */

typedef struct suite {
    const char *name;
    const char *desc;
    const EVP_CIPHER *(*cipher)(void);
    const EVP_MD *(*md)(void);
    size_t key_len;
} suite;

static const suite suites[] = {
    {"TLS_AES_256_GCM_SHA384", "TLSv1.3 TLS_AES_256_GCM_SHA384 (256-bit)", EVP_aes_256_gcm,
     EVP_sha384, 32},
    {"TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 (256-bit)",
     EVP_chacha20_poly1305, EVP_sha256, 32},
    {"TLS_AES_128_GCM_SHA256", "TLSv1.3 TLS_AES_128_GCM_SHA256 (128-bit)", EVP_aes_128_gcm,
     EVP_sha256, 16},
};
#define NSUITES (sizeof suites / sizeof suites[0])

/* One encrypting and one decrypting context per suite, shared by all connections: each
 * record sets its own key and nonce. */
static EVP_CIPHER_CTX *ctxs[NSUITES][2];

static EVP_CIPHER_CTX *ctx_for(size_t s, int enc)
{
    if (!ctxs[s][enc]) {
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        if (!c || EVP_CipherInit_ex(c, suites[s].cipher(), NULL, NULL, NULL, enc) != 1) {
            EVP_CIPHER_CTX_free(c);
            return NULL;
        }
        ctxs[s][enc] = c;
    }
    return ctxs[s][enc];
}

static int suite_of(const SSL *ssl)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    const char *name = c ? SSL_CIPHER_get_name(c) : NULL;
    for (size_t i = 0; name && i < NSUITES; i++)
        if (strcmp(name, suites[i].name) == 0)
            return (int)i;
    return -1;
}

/* ---------------------------------------------------------------- connection state */

struct tls_rec {
    size_t suite;
    size_t hash_len;
    unsigned char secret[2][EVP_MAX_MD_SIZE];
    unsigned char key[2][32];
    unsigned char iv[2][NONCE_LEN];
    uint64_t seq[2];
    buf in; /* a record received in part */
};

/* What the callbacks learn during a handshake (ex_data of the SSL). */
typedef struct capture {
    unsigned char secret[2][EVP_MAX_MD_SIZE];
    size_t secret_len[2];
    uint64_t seq[2];         /* records under the application keys so far */
    unsigned char counting[2]; /* that side's Finished has passed */
    unsigned char key_update;  /* a KeyUpdate went by: our secrets are stale */
} capture;

static int capture_idx = -1;

static void capture_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr) {
        secure_wipe(ptr, sizeof(capture));
        free(ptr);
    }
}

static capture *capture_of(const SSL *ssl)
{
    return capture_idx < 0 ? NULL : SSL_get_ex_data(ssl, capture_idx);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>" (NSS key log format). */
static void on_keylog(const SSL *ssl, const char *line)
{
    capture *cap = capture_of(ssl);
    if (!cap)
        return;
    int dir;
    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0)
        dir = R;
    else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0)
        dir = W;
    else
        return;
    const char *hex = strchr(line + 24, ' ');
    if (!hex)
        return;
    hex++;
    size_t n = strlen(hex) / 2;
    if (n == 0 || n > EVP_MAX_MD_SIZE)
        return;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return;
        cap->secret[dir][i] = (unsigned char)(hi << 4 | lo);
    }
    cap->secret_len[dir] = n;
}

static void on_message(int write_p, int version, int content_type, const void *data, size_t len,
                       SSL *ssl, void *arg)
{
    (void)version, (void)arg;
    capture *cap = capture_of(ssl);
    if (!cap)
        return;
    int dir = write_p ? W : R;
    if (content_type == SSL3_RT_HEADER) {
        /* Reported once per record, when it is read or made. */
        if (cap->counting[dir])
            cap->seq[dir]++;
    } else if (content_type == SSL3_RT_HANDSHAKE && len > 0) {
        unsigned char type = ((const unsigned char *)data)[0];
        /* Reported after the message's own record: the records that follow are the
         * first under that side's application traffic secret. */
        if (type == MT_FINISHED)
            cap->counting[dir] = 1;
        else if (type == MT_KEY_UPDATE)
            cap->key_update = 1;
    }
}

int tls_rec_enable(SSL_CTX *ctx)
{
    if (capture_idx < 0) {
        capture_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, capture_free);
        if (capture_idx < 0)
            return -1;
    }
    SSL_CTX_set_keylog_callback(ctx, on_keylog);
    return 0;
}

int tls_rec_track(SSL *ssl)
{
    if (capture_idx < 0)
        return -1;
    capture *cap = xcalloc(1, sizeof *cap);
    if (!SSL_set_ex_data(ssl, capture_idx, cap)) {
        free(cap);
        return -1;
    }
    SSL_set_msg_callback(ssl, on_message);
    return 0;
}

int tls_rec_possible(SSL *ssl)
{
    capture *cap = capture_of(ssl);
    if (!cap || cap->key_update)
        return 0;
    if (!SSL_is_init_finished(ssl))
        return 1; /* not known yet */
    return SSL_version(ssl) == TLS1_3_VERSION && suite_of(ssl) >= 0;
}

/* ---------------------------------------------------------------- key schedule */

/* HKDF-Expand-Label(secret, label, "", len) for len <= the hash length: one HMAC block. */
static int expand_label(const EVP_MD *md, const unsigned char *secret, size_t secret_len,
                        const char *label, unsigned char *out, size_t len)
{
    unsigned char info[2 + 1 + 255 + 1 + 1];
    size_t ll = 6 + strlen(label), n = 0;
    if (ll > 255 || len > (size_t)EVP_MD_get_size(md))
        return -1;
    info[n++] = (unsigned char)(len >> 8);
    info[n++] = (unsigned char)len;
    info[n++] = (unsigned char)ll;
    memcpy(info + n, "tls13 ", 6);
    memcpy(info + n + 6, label, ll - 6);
    n += ll;
    info[n++] = 0;    /* empty context */
    info[n++] = 0x01; /* HKDF-Expand counter T(1) */
    unsigned char t[EVP_MAX_MD_SIZE];
    unsigned int tl = 0;
    if (!HMAC(md, secret, (int)secret_len, info, n, t, &tl))
        return -1;
    memcpy(out, t, len);
    secure_wipe(t, sizeof t);
    return 0;
}

static int set_keys(tls_rec *r, int dir)
{
    const suite *s = &suites[r->suite];
    const EVP_MD *md = s->md();
    r->seq[dir] = 0;
    if (expand_label(md, r->secret[dir], r->hash_len, "key", r->key[dir], s->key_len) < 0 ||
        expand_label(md, r->secret[dir], r->hash_len, "iv", r->iv[dir], NONCE_LEN) < 0)
        return -1;
    return 0;
}

/* application_traffic_secret_N+1 (RFC 8446 7.2). */
static int next_secret(tls_rec *r, int dir)
{
    unsigned char next[EVP_MAX_MD_SIZE];
    if (expand_label(suites[r->suite].md(), r->secret[dir], r->hash_len, "traffic upd", next,
                     r->hash_len) < 0)
        return -1;
    memcpy(r->secret[dir], next, r->hash_len);
    secure_wipe(next, sizeof next);
    return set_keys(r, dir);
}

tls_rec *tls_rec_take(SSL *ssl)
{
    capture *cap = capture_of(ssl);
    if (!cap || cap->key_update || !SSL_is_init_finished(ssl) || SSL_version(ssl) != TLS1_3_VERSION ||
        SSL_get_shutdown(ssl) != 0 || SSL_has_pending(ssl) || !cap->counting[R] ||
        !cap->counting[W])
        return NULL;
    int s = suite_of(ssl);
    if (s < 0)
        return NULL;
    size_t hl = (size_t)EVP_MD_get_size(suites[s].md());
    if (cap->secret_len[R] != hl || cap->secret_len[W] != hl || !ctx_for((size_t)s, 0) ||
        !ctx_for((size_t)s, 1))
        return NULL;
    tls_rec *r = xcalloc(1, sizeof *r);
    r->suite = (size_t)s;
    r->hash_len = hl;
    buf_init(&r->in);
    for (int d = R; d <= W; d++) {
        memcpy(r->secret[d], cap->secret[d], hl);
        if (set_keys(r, d) < 0) {
            tls_rec_free(r);
            return NULL;
        }
        r->seq[d] = cap->seq[d];
    }
    return r;
}

void tls_rec_free(tls_rec *r)
{
    if (!r)
        return;
    buf_free(&r->in);
    secure_wipe(r, sizeof *r);
    free(r);
}

const char *tls_rec_describe(const tls_rec *r)
{
    return suites[r->suite].desc;
}

/* ---------------------------------------------------------------- records */

/* AEAD over data[0..n) in place with the 5-byte header as additional data. */
static int aead(tls_rec *r, int dir, const unsigned char *header, unsigned char *data, size_t n,
                unsigned char *tag)
{
    int enc = dir == W;
    EVP_CIPHER_CTX *ctx = ctx_for(r->suite, enc);
    unsigned char nonce[NONCE_LEN];
    memcpy(nonce, r->iv[dir], NONCE_LEN);
    for (int i = 0; i < 8; i++)
        nonce[NONCE_LEN - 1 - i] ^= (unsigned char)(r->seq[dir] >> (8 * i));
    int outl = 0;
    if (!ctx || EVP_CipherInit_ex(ctx, NULL, NULL, r->key[dir], nonce, enc) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &outl, header, REC_HEADER) != 1 ||
        (n && EVP_CipherUpdate(ctx, data, &outl, data, (int)n) != 1) ||
        (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1) ||
        EVP_CipherFinal_ex(ctx, data + n, &outl) != 1 ||
        (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, tag) != 1))
        return -1;
    r->seq[dir]++;
    return 0;
}

/* One record of inner content type `type` (n <= MAX_PLAIN), appended to out. */
static int seal_one(tls_rec *r, unsigned char type, const void *data, size_t n, buf *out)
{
    size_t total = n + 1 + TAG_LEN;
    unsigned char header[REC_HEADER] = {CT_APPDATA, 0x03, 0x03, (unsigned char)(total >> 8),
                                        (unsigned char)total};
    static const unsigned char zero_tag[TAG_LEN];
    size_t start = out->len;
    buf_append(out, header, REC_HEADER);
    buf_append(out, data, n);
    buf_append(out, &type, 1);
    buf_append(out, zero_tag, TAG_LEN);
    unsigned char *body = (unsigned char *)out->data + start + REC_HEADER;
    if (aead(r, W, header, body, n + 1, body + n + 1) < 0) {
        out->len = start;
        out->data[start] = '\0';
        return -1;
    }
    return 0;
}

/* A KeyUpdate under the current key, then the next key for what follows. */
static int send_key_update(tls_rec *r, int request, buf *out)
{
    unsigned char msg[5] = {MT_KEY_UPDATE, 0, 0, 1, (unsigned char)request};
    if (seal_one(r, CT_HANDSHAKE, msg, sizeof msg, out) < 0)
        return -1;
    return next_secret(r, W);
}

int tls_rec_seal(tls_rec *r, const void *data, size_t len, buf *out)
{
    const unsigned char *p = data;
    while (len > 0) {
        if (r->seq[W] >= WRITE_KEY_RECORDS && send_key_update(r, 0, out) < 0)
            return -1;
        size_t n = len > MAX_PLAIN ? MAX_PLAIN : len;
        if (seal_one(r, CT_APPDATA, p, n, out) < 0)
            return -1;
        p += n;
        len -= n;
    }
    return 0;
}

void tls_rec_close_notify(tls_rec *r, buf *out)
{
    static const unsigned char alert[2] = {1, 0}; /* warning, close_notify */
    seal_one(r, CT_ALERT, alert, sizeof alert, out);
}

/* Post-handshake messages from a client: only KeyUpdate is allowed (NewSessionTicket
 * and CertificateRequest come from servers; we never ask for post-handshake auth). */
static tls_rec_status handshake_msgs(tls_rec *r, const unsigned char *m, size_t n, buf *out,
                                     const char **why)
{
    while (n > 0) {
        if (n < 5 || m[0] != MT_KEY_UPDATE || m[1] != 0 || m[2] != 0 || m[3] != 1) {
            *why = "unexpected post-handshake message";
            return TLS_REC_ERROR;
        }
        if (m[4] > 1) {
            *why = "malformed KeyUpdate";
            return TLS_REC_ERROR;
        }
        if (next_secret(r, R) < 0 || (m[4] == 1 && send_key_update(r, 0, out) < 0)) {
            *why = "key update failed";
            return TLS_REC_ERROR;
        }
        m += 5;
        n -= 5;
    }
    return TLS_REC_OK;
}

tls_rec_status tls_rec_open(tls_rec *r, const void *data, size_t len, buf *plain, buf *out,
                            const char **why)
{
    const unsigned char *p = data;
    size_t avail = len, used = 0;
    int buffered = r->in.len > 0;
    tls_rec_status st = TLS_REC_OK;
    *why = NULL;
    if (buffered) {
        buf_append(&r->in, data, len);
        p = (const unsigned char *)r->in.data;
        avail = r->in.len;
    }
    while (st == TLS_REC_OK && avail - used >= REC_HEADER) {
        const unsigned char *h = p + used;
        size_t rlen = (size_t)h[3] << 8 | h[4];
        if (h[0] != CT_APPDATA) {
            /* Every protected record has the outer type application_data (RFC 8446 5.2);
             * a plaintext alert or change_cipher_spec after the handshake is refused. */
            *why = "unprotected record after the handshake";
            return TLS_REC_ERROR;
        }
        if (rlen > MAX_CIPHER || rlen < TAG_LEN + 1) {
            *why = rlen > MAX_CIPHER ? "record overflow" : "record too short";
            return TLS_REC_ERROR;
        }
        if (avail - used < REC_HEADER + rlen)
            break;
        size_t clen = rlen - TAG_LEN, start = plain->len;
        if (clen > MAX_PLAIN + 1) {
            /* TLSInnerPlaintext, padding included, is at most 2^14 + 1 (RFC 8446 5.4). */
            *why = "record overflow";
            return TLS_REC_ERROR;
        }
        unsigned char tag[TAG_LEN];
        memcpy(tag, h + REC_HEADER + clen, TAG_LEN);
        buf_append(plain, h + REC_HEADER, clen);
        unsigned char *body = (unsigned char *)plain->data + start;
        if (aead(r, R, h, body, clen, tag) < 0) {
            plain->len = start;
            plain->data[start] = '\0';
            *why = "bad record MAC";
            return TLS_REC_ERROR;
        }
        used += REC_HEADER + rlen;
        /* TLSInnerPlaintext: content, then the type, then zero padding. */
        size_t m = clen;
        while (m > 0 && body[m - 1] == 0)
            m--;
        if (m == 0) {
            plain->len = start;
            plain->data[start] = '\0';
            *why = "record without a content type";
            return TLS_REC_ERROR;
        }
        unsigned char type = body[m - 1];
        m--;
        if (type == CT_APPDATA) {
            plain->len = start + m;
            plain->data[plain->len] = '\0';
            continue;
        }
        /* Not application data: handled here, then dropped from plain (body stays valid
         * until plain grows again). */
        if (type == CT_ALERT) {
            if (m == 2 && body[1] == 0) {
                st = TLS_REC_CLOSED;
            } else {
                *why = "alert from the peer";
                st = TLS_REC_ERROR;
            }
        } else if (type == CT_HANDSHAKE) {
            st = handshake_msgs(r, body, m, out, why);
        } else {
            *why = "unexpected record content type";
            st = TLS_REC_ERROR;
        }
        plain->len = start;
        plain->data[start] = '\0';
    }
    if (st != TLS_REC_OK)
        return st;
    if (buffered) {
        buf_consume(&r->in, used);
    } else if (used < avail) {
        buf_append(&r->in, p + used, avail - used);
    }
    buf_shrink(&r->in);
    return TLS_REC_OK;
}
