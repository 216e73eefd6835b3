/* scram.c - SASL SCRAM-SHA-1 / SCRAM-SHA-256 (+PLUS), RFC 5802 and RFC 7677, both sides.
 *
 * Every message is peer-controlled: parsing is bounded (SCRAM_MAX_MSG), strict about
 * the attribute order of RFC 5802 7, and never allocates in proportion to anything
 * but the (bounded) input. Key material is wiped as soon as it is no longer needed.
 * Cryptography is OpenSSL's (PBKDF2, HMAC, SHA), SASLprep is libidn's. */
#include "scram.h"
#include "scram_internal.h"

#include "base64.h"
#include "buf.h"
#include "util.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

#define SCRAM_MAX_MSG 4096      /* any single SCRAM message */
#define SCRAM_NONCE_LEN 24      /* our random nonce part, [A-Za-z0-9] */
#define SCRAM_MAX_NONCE 64      /* test-hook nonces */
#define SCRAM_MAX_SALT 128      /* a salt sent by a server, decoded */
#define SCRAM_MAX_CB_NAME 64    /* "tls-server-end-point" is the longest registered */
#define SCRAM_CLIENT_MAX_ITER 10000000u /* a hostile server must not pin our CPU */

/* ------------------------------------------------------------------ primitives */

static const EVP_MD *md_of(scram_hash h) { return h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256(); }
static size_t keylen_of(scram_hash h) { return h == SCRAM_SHA1 ? 20 : 32; }

static int hmac(scram_hash h, const unsigned char *key, size_t keylen, const void *data,
                size_t len, unsigned char *out)
{
    unsigned int n = 0;
    if (!HMAC(md_of(h), key, (int)keylen, data, len, out, &n) || n != keylen_of(h))
        return -1;
    return 0;
}

static int digest(scram_hash h, const unsigned char *data, size_t len, unsigned char *out)
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, md_of(h), NULL) != 1 || n != keylen_of(h))
        return -1;
    return 0;
}

/* StoredKey and ServerKey from a SASLprep'd password (RFC 5802 3). */
static int derive_keys(scram_hash h, const char *prepped, const unsigned char *salt,
                       size_t salt_len, unsigned iterations, unsigned char *client_key,
                       unsigned char *stored_key, unsigned char *server_key)
{
    size_t kl = keylen_of(h);
    unsigned char salted[SCRAM_MAX_KEY], ck[SCRAM_MAX_KEY];
    int rc = -1;
    if (iterations == 0 || iterations > INT_MAX || salt_len > INT_MAX)
        return -1;
    if (PKCS5_PBKDF2_HMAC(prepped, (int)strlen(prepped), salt, (int)salt_len, (int)iterations,
                          md_of(h), (int)kl, salted) != 1)
        goto out;
    if (hmac(h, salted, kl, "Client Key", 10, ck) < 0 || digest(h, ck, kl, stored_key) < 0)
        goto out;
    if (server_key && hmac(h, salted, kl, "Server Key", 10, server_key) < 0)
        goto out;
    if (client_key)
        memcpy(client_key, ck, kl);
    rc = 0;
out:
    secure_wipe(salted, sizeof salted);
    secure_wipe(ck, sizeof ck);
    return rc;
}

static void free_secret_str(char *s)
{
    if (s) {
        secure_wipe(s, strlen(s));
        free(s);
    }
}

/* ------------------------------------------------------------------ public helpers */

const char *scram_mech_name(scram_hash hash, int plus)
{
    if (hash == SCRAM_SHA1)
        return plus ? "SCRAM-SHA-1-PLUS" : "SCRAM-SHA-1";
    return plus ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
}

int scram_mech_parse(const char *name, scram_hash *hash, int *plus)
{
    static const struct {
        const char *name;
        scram_hash hash;
        int plus;
    } mechs[] = {
        {"SCRAM-SHA-1", SCRAM_SHA1, 0},
        {"SCRAM-SHA-1-PLUS", SCRAM_SHA1, 1},
        {"SCRAM-SHA-256", SCRAM_SHA256, 0},
        {"SCRAM-SHA-256-PLUS", SCRAM_SHA256, 1},
    };
    for (size_t i = 0; name && i < ARRAY_LEN(mechs); i++) {
        if (strcmp(name, mechs[i].name) == 0) {
            if (hash)
                *hash = mechs[i].hash;
            if (plus)
                *plus = mechs[i].plus;
            return 0;
        }
    }
    return -1;
}

char *scram_saslprep(const char *password)
{
    char *out = NULL;
    if (!password)
        return NULL;
    if (stringprep_profile(password, &out, "SASLprep", 0) != STRINGPREP_OK) {
        free(out);
        return NULL;
    }
    return out;
}

int scram_derive_cred(scram_hash hash, const char *password, const unsigned char *salt,
                      size_t salt_len, unsigned iterations, scram_cred *out)
{
    if (!password || !salt || !out || salt_len == 0 || salt_len > SCRAM_SALT_LEN ||
        (hash != SCRAM_SHA1 && hash != SCRAM_SHA256))
        return -1;
    char *prepped = scram_saslprep(password);
    if (!prepped)
        return -1;
    memset(out, 0, sizeof *out);
    out->hash = hash;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    out->iterations = iterations;
    out->key_len = keylen_of(hash);
    int rc = derive_keys(hash, prepped, salt, salt_len, iterations, NULL, out->stored_key,
                         out->server_key);
    free_secret_str(prepped);
    if (rc < 0)
        secure_wipe(out, sizeof *out);
    return rc;
}

int scram_make_cred(scram_hash hash, const char *password, unsigned iterations, scram_cred *out)
{
    unsigned char salt[SCRAM_SALT_LEN];
    if (iterations < SCRAM_MIN_ITERATIONS)
        return -1;
    random_bytes(salt, sizeof salt);
    return scram_derive_cred(hash, password, salt, sizeof salt, iterations, out);
}

static int cred_valid(const scram_cred *c, scram_hash hash)
{
    return c->hash == hash && c->key_len == keylen_of(hash) && c->salt_len > 0 &&
           c->salt_len <= SCRAM_SALT_LEN && c->iterations > 0 && c->iterations <= INT_MAX;
}

int scram_check_password(const scram_cred *cred, const char *password)
{
    unsigned char stored[SCRAM_MAX_KEY];
    if (!cred || !password || (cred->hash != SCRAM_SHA1 && cred->hash != SCRAM_SHA256) ||
        !cred_valid(cred, cred->hash))
        return 0;
    char *prepped = scram_saslprep(password);
    if (!prepped)
        return 0;
    int ok = derive_keys(cred->hash, prepped, cred->salt, cred->salt_len, cred->iterations,
                         NULL, stored, NULL) == 0 &&
             ct_equal(stored, cred->stored_key, cred->key_len);
    free_secret_str(prepped);
    secure_wipe(stored, sizeof stored);
    return ok;
}

/* ------------------------------------------------------------------ message syntax */

/* Take attribute "name=value" at *pp (value up to the next ',' or end, never empty).
 * Returns 1 if a ',' followed (more attributes), 0 at the end, -1 on a syntax error. */
static int take_attr(const char **pp, const char *end, char name, const char **val, size_t *vlen)
{
    const char *p = *pp;
    if (end - p < 3 || p[1] != '=' || (name ? p[0] != name
                                           : !((p[0] >= 'a' && p[0] <= 'z') ||
                                               (p[0] >= 'A' && p[0] <= 'Z'))))
        return -1;
    p += 2;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *vend = comma ? comma : end;
    if (vend == p)
        return -1;
    *val = p;
    *vlen = (size_t)(vend - p);
    *pp = comma ? comma + 1 : end;
    return comma ? 1 : 0;
}

/* Skip optional extensions after the last mandatory attribute (rc was 1: more follow).
 * Returns 0, or -1 on a syntax error. */
static int skip_extensions(const char **pp, const char *end, int rc)
{
    const char *v;
    size_t vl;
    while (rc == 1)
        rc = take_attr(pp, end, 0, &v, &vl);
    return rc;
}

/* RFC 5802 7: printable ASCII except ','. */
static int nonce_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
            return 0;
    }
    return n > 0;
}

/* Decode a saslname ("=2C" -> ',', "=3D" -> '='; any other '=' is an error). Control
 * characters are refused too: no username legitimately contains them. */
static char *saslname_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') {
            if (n - i >= 3 && s[i + 1] == '2' && s[i + 2] == 'C')
                out[o++] = ',';
            else if (n - i >= 3 && s[i + 1] == '3' && s[i + 2] == 'D')
                out[o++] = '=';
            else
                goto bad;
            i += 2;
        } else if (c < 0x20 || c == 0x7f || c == ',') {
            goto bad;
        } else {
            out[o++] = (char)c;
        }
    }
    if (o == 0)
        goto bad;
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

static void saslname_encode(buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == ',')
            buf_append_str(b, "=2C");
        else if (*s == '=')
            buf_append_str(b, "=3D");
        else
            buf_append(b, s, 1);
    }
}

static int cb_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > SCRAM_MAX_CB_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Common entry checks: bounded, no NUL bytes. */
static int msg_ok(const char *in, size_t inlen)
{
    return in && inlen > 0 && inlen <= SCRAM_MAX_MSG && !memchr(in, '\0', inlen);
}

/* base64 of gs2-header followed by the channel binding data when it is used. */
static char *cbind_b64(const char *gs2, int with_data, const unsigned char *data, size_t len)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, gs2);
    if (with_data && len)
        buf_append(&b, data, len);
    char *r = base64_encode((const unsigned char *)b.data, b.len);
    buf_free(&b);
    return r;
}

/* ------------------------------------------------------------------ server */

enum { ST_START, ST_FIRST_DONE, ST_DONE, ST_FAILED };

struct scram_server {
    scram_hash hash;
    int plus;
    char *cb_type;
    unsigned char *cb_data;
    size_t cb_len;
    scram_lookup_fn lookup;
    void *lookup_ud;
    int state;

    char cbflag; /* 'n', 'y' or 'p' */
    char *gs2_header;
    char *authzid;
    char *username;
    char *client_first_bare;
    char *server_first;
    char *nonce; /* client nonce + server nonce */
    char test_nonce[SCRAM_MAX_NONCE + 1];
    int known;
    scram_cred cred;
};

/* Unknown users get a salt that is stable per username (so repeated probes see the
 * same one, as for a real account) but unpredictable: an HMAC under a per-process key. */
static unsigned char fake_salt_key[32];
static CRYPTO_ONCE fake_salt_once = CRYPTO_ONCE_STATIC_INIT;
static void fake_salt_init(void) { random_bytes(fake_salt_key, sizeof fake_salt_key); }
/* ... and the iteration count of the most recent real account, so that the count
 * does not give them away either when the deployment uses more than the minimum. */
static atomic_uint fake_iterations = SCRAM_MIN_ITERATIONS;

static void fake_cred(scram_server *s)
{
    unsigned char mac[32];
    CRYPTO_THREAD_run_once(&fake_salt_once, fake_salt_init);
    memset(&s->cred, 0, sizeof s->cred);
    s->cred.hash = s->hash;
    s->cred.key_len = keylen_of(s->hash);
    if (hmac(SCRAM_SHA256, fake_salt_key, sizeof fake_salt_key, s->username,
             strlen(s->username), mac) < 0)
        random_bytes(mac, sizeof mac);
    memcpy(s->cred.salt, mac, SCRAM_SALT_LEN);
    s->cred.salt_len = SCRAM_SALT_LEN;
    s->cred.iterations = atomic_load(&fake_iterations);
    /* Random keys: no proof can match them, and the final step runs the same code. */
    random_bytes(s->cred.stored_key, s->cred.key_len);
    random_bytes(s->cred.server_key, s->cred.key_len);
    s->known = 0;
}

scram_server *scram_server_new(scram_hash hash, int plus, const char *cb_type,
                               const unsigned char *cb_data, size_t cb_len,
                               scram_lookup_fn lookup, void *lookup_ud)
{
    if ((hash != SCRAM_SHA1 && hash != SCRAM_SHA256) || !lookup)
        return NULL;
    if (cb_type && (!cb_name_valid(cb_type, strlen(cb_type)) || !cb_data || cb_len == 0 ||
                    cb_len > SCRAM_MAX_MSG))
        return NULL;
    scram_server *s = xcalloc(1, sizeof *s);
    s->hash = hash;
    s->plus = plus;
    if (cb_type) {
        s->cb_type = xstrdup(cb_type);
        s->cb_data = xmalloc(cb_len);
        memcpy(s->cb_data, cb_data, cb_len);
        s->cb_len = cb_len;
    }
    s->lookup = lookup;
    s->lookup_ud = lookup_ud;
    return s;
}

void scram_server_free(scram_server *s)
{
    if (!s)
        return;
    free(s->cb_type);
    if (s->cb_data) {
        secure_wipe(s->cb_data, s->cb_len);
        free(s->cb_data);
    }
    free(s->gs2_header);
    free(s->authzid);
    free(s->username);
    free(s->client_first_bare);
    free(s->server_first);
    free(s->nonce);
    secure_wipe(s, sizeof *s);
    free(s);
}

int scram_server_set_nonce_for_test(scram_server *s, const char *nonce)
{
    if (!s || !nonce || strlen(nonce) > SCRAM_MAX_NONCE || !nonce_valid(nonce, strlen(nonce)))
        return -1;
    strcpy(s->test_nonce, nonce);
    return 0;
}

const char *scram_server_username(const scram_server *s)
{
    return s && s->state == ST_DONE ? s->username : NULL;
}

/* Parse client-first-message (RFC 5802 7) into s. */
static scram_status server_parse_first(scram_server *s, const char *in, size_t inlen,
                                       const char **cnonce, size_t *cnonce_len)
{
    const char *p = in, *end = in + inlen, *v;
    size_t vl;
    int rc;

    /* gs2-cbind-flag */
    if (*p == 'n' || *p == 'y') {
        s->cbflag = *p++;
    } else if (end - p >= 2 && p[0] == 'p' && p[1] == '=') {
        if (take_attr(&p, end, 'p', &v, &vl) != 1 || !cb_name_valid(v, vl))
            return SCRAM_ERR_MALFORMED;
        s->cbflag = 'p';
        /* The client binds to a type this connection does not offer (or it chose the
         * non-PLUS mechanism and binds anyway): RFC 5802 6. */
        if (!s->plus || !s->cb_type || strlen(s->cb_type) != vl || memcmp(s->cb_type, v, vl))
            return SCRAM_ERR_BINDING;
        p--; /* take_attr consumed the ',' that the common code below expects */
    } else {
        return SCRAM_ERR_MALFORMED;
    }
    if (p >= end || *p++ != ',')
        return SCRAM_ERR_MALFORMED;

    /* authzid */
    if (p < end && *p == ',') {
        p++;
    } else {
        if (take_attr(&p, end, 'a', &v, &vl) != 1)
            return SCRAM_ERR_MALFORMED;
        if (!(s->authzid = saslname_decode(v, vl)))
            return SCRAM_ERR_MALFORMED;
    }
    s->gs2_header = xstrndup(in, (size_t)(p - in));
    s->client_first_bare = xstrndup(p, (size_t)(end - p));

    /* A mandatory extension we cannot honour (RFC 5802 5.1 "m"). */
    if (end - p >= 2 && p[0] == 'm' && p[1] == '=')
        return SCRAM_ERR_MALFORMED;
    if (take_attr(&p, end, 'n', &v, &vl) != 1 || !(s->username = saslname_decode(v, vl)))
        return SCRAM_ERR_MALFORMED;
    if ((rc = take_attr(&p, end, 'r', cnonce, cnonce_len)) < 0 ||
        !nonce_valid(*cnonce, *cnonce_len))
        return SCRAM_ERR_MALFORMED;
    if (skip_extensions(&p, end, rc) < 0)
        return SCRAM_ERR_MALFORMED;

    /* Binding decisions that do not need the flag's name. */
    if (s->cbflag != 'p' && s->plus)
        return SCRAM_ERR_BINDING; /* chose -PLUS, then did not bind */
    if (s->cbflag == 'y' && s->cb_type)
        return SCRAM_ERR_BINDING; /* "y": it could bind and thinks we cannot: downgrade */
    return SCRAM_OK;
}

scram_status scram_server_first(scram_server *s, const char *in, size_t inlen, char **out)
{
    const char *cnonce = NULL;
    size_t cnonce_len = 0;
    if (out)
        *out = NULL;
    if (!s || !out || s->state != ST_START)
        return SCRAM_ERR_INTERNAL;
    s->state = ST_FAILED; /* until proven otherwise */
    if (!msg_ok(in, inlen))
        return SCRAM_ERR_MALFORMED;
    scram_status st = server_parse_first(s, in, inlen, &cnonce, &cnonce_len);
    if (st != SCRAM_OK)
        return st;

    if (s->lookup(s->lookup_ud, s->username, s->hash, &s->cred) == 0) {
        if (!cred_valid(&s->cred, s->hash)) {
            secure_wipe(&s->cred, sizeof s->cred);
            return SCRAM_ERR_INTERNAL;
        }
        s->known = 1;
        atomic_store(&fake_iterations, s->cred.iterations);
    } else {
        fake_cred(s);
    }

    char snonce[SCRAM_MAX_NONCE + 1];
    if (s->test_nonce[0])
        memcpy(snonce, s->test_nonce, sizeof snonce);
    else
        random_token(snonce, SCRAM_NONCE_LEN);
    s->nonce = xasprintf("%.*s%s", (int)cnonce_len, cnonce, snonce);
    char *salt = base64_encode(s->cred.salt, s->cred.salt_len);
    s->server_first = xasprintf("r=%s,s=%s,i=%u", s->nonce, salt, s->cred.iterations);
    free(salt);
    *out = xstrdup(s->server_first);
    s->state = ST_FIRST_DONE;
    return SCRAM_OK;
}

scram_status scram_server_final(scram_server *s, const char *in, size_t inlen, char **out)
{
    const char *p, *end, *v, *cbv = NULL, *nv = NULL, *pv = NULL, *proof_at = NULL;
    size_t vl, cbl = 0, nl = 0, pl = 0;
    int rc;
    scram_status st = SCRAM_ERR_MALFORMED;
    unsigned char *cbind = NULL, *proof = NULL;
    size_t cbind_len = 0, proof_len = 0, kl = keylen_of(s ? s->hash : SCRAM_SHA1);
    unsigned char sig[SCRAM_MAX_KEY], key[SCRAM_MAX_KEY], stored[SCRAM_MAX_KEY];
    buf am;
    buf_init(&am);

    if (out)
        *out = NULL;
    if (!s || !out || s->state != ST_FIRST_DONE)
        return SCRAM_ERR_INTERNAL;
    s->state = ST_FAILED;
    if (!msg_ok(in, inlen))
        return SCRAM_ERR_MALFORMED;

    /* client-final-message = channel-binding "," nonce ["," extensions] "," proof */
    p = in;
    end = in + inlen;
    if (take_attr(&p, end, 'c', &cbv, &cbl) != 1 || take_attr(&p, end, 'r', &nv, &nl) != 1)
        goto out;
    for (rc = 1; rc == 1;) {
        const char *at = p;
        if (end - p >= 2 && p[0] == 'p' && p[1] == '=') {
            if (take_attr(&p, end, 'p', &pv, &pl) != 0)
                goto out; /* the proof must come last */
            proof_at = at;
            break;
        }
        if ((rc = take_attr(&p, end, 0, &v, &vl)) < 0)
            goto out;
    }
    if (!proof_at)
        goto out;

    /* Channel binding: exactly the gs2 header we saw, plus the data if "p=". */
    if (!(cbind = base64_decode(cbv, cbl, &cbind_len)))
        goto out;
    size_t hl = strlen(s->gs2_header);
    size_t want = hl + (s->cbflag == 'p' ? s->cb_len : 0);
    if (cbind_len != want || memcmp(cbind, s->gs2_header, hl) != 0 ||
        (s->cbflag == 'p' && !ct_equal(cbind + hl, s->cb_data, s->cb_len))) {
        st = SCRAM_ERR_BINDING;
        goto out;
    }
    if (nl != strlen(s->nonce) || memcmp(nv, s->nonce, nl) != 0) {
        st = SCRAM_ERR_AUTH;
        goto out;
    }
    if (!(proof = base64_decode(pv, pl, &proof_len)) || proof_len != kl)
        goto out;

    /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
    buf_append_str(&am, s->client_first_bare);
    buf_append_str(&am, ",");
    buf_append_str(&am, s->server_first);
    buf_append_str(&am, ",");
    buf_append(&am, in, (size_t)(proof_at - 1 - in));

    /* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); valid iff H(ClientKey) is the
     * StoredKey we hold. Unknown users run the same code against random keys. */
    st = SCRAM_ERR_INTERNAL;
    if (hmac(s->hash, s->cred.stored_key, kl, am.data, am.len, sig) < 0)
        goto out;
    for (size_t i = 0; i < kl; i++)
        key[i] = proof[i] ^ sig[i];
    if (digest(s->hash, key, kl, stored) < 0)
        goto out;
    int match = ct_equal(stored, s->cred.stored_key, kl);
    if (!match || !s->known) {
        st = SCRAM_ERR_AUTH;
        goto out;
    }
    /* Authenticated; now may it act as the identity it asked for? Only as itself. */
    if (s->authzid && strcmp(s->authzid, s->username) != 0) {
        st = SCRAM_ERR_AUTHZID;
        goto out;
    }
    if (hmac(s->hash, s->cred.server_key, kl, am.data, am.len, sig) < 0)
        goto out;
    char *b64 = base64_encode(sig, kl);
    *out = xasprintf("v=%s", b64);
    free(b64);
    s->state = ST_DONE;
    st = SCRAM_OK;
out:
    secure_wipe(sig, sizeof sig);
    secure_wipe(key, sizeof key);
    secure_wipe(stored, sizeof stored);
    if (proof) {
        secure_wipe(proof, proof_len);
        free(proof);
    }
    free(cbind);
    buf_free(&am);
    if (st != SCRAM_OK)
        secure_wipe(&s->cred, sizeof s->cred);
    return st;
}

/* ------------------------------------------------------------------ client */

struct scram_client {
    scram_hash hash;
    int plus;
    char *cb_type;
    unsigned char *cb_data;
    size_t cb_len;
    char *username; /* SASLprep'd */
    char *password; /* SASLprep'd */
    int state;
    char nonce[SCRAM_MAX_NONCE + 1];
    char *gs2_header;
    char *client_first_bare;
    unsigned char server_sig[SCRAM_MAX_KEY];
};

scram_client *scram_client_new(scram_hash hash, int plus, const char *cb_type,
                               const unsigned char *cb_data, size_t cb_len,
                               const char *username, const char *password)
{
    if ((hash != SCRAM_SHA1 && hash != SCRAM_SHA256) || !username || !*username || !password)
        return NULL;
    if (cb_type && (!cb_name_valid(cb_type, strlen(cb_type)) || !cb_data || cb_len == 0 ||
                    cb_len > SCRAM_MAX_MSG))
        return NULL;
    if (plus && !cb_type)
        return NULL; /* -PLUS without a binding cannot work */
    char *user = scram_saslprep(username);
    char *pass = scram_saslprep(password);
    if (!user || !pass || !*user) {
        free(user);
        free_secret_str(pass);
        return NULL;
    }
    scram_client *c = xcalloc(1, sizeof *c);
    c->hash = hash;
    c->plus = plus;
    if (cb_type) {
        c->cb_type = xstrdup(cb_type);
        c->cb_data = xmalloc(cb_len);
        memcpy(c->cb_data, cb_data, cb_len);
        c->cb_len = cb_len;
    }
    c->username = user;
    c->password = pass;
    return c;
}

void scram_client_free(scram_client *c)
{
    if (!c)
        return;
    free(c->cb_type);
    if (c->cb_data) {
        secure_wipe(c->cb_data, c->cb_len);
        free(c->cb_data);
    }
    free(c->username);
    free_secret_str(c->password);
    free(c->gs2_header);
    free(c->client_first_bare);
    secure_wipe(c, sizeof *c);
    free(c);
}

int scram_client_set_nonce_for_test(scram_client *c, const char *nonce)
{
    if (!c || !nonce || strlen(nonce) > SCRAM_MAX_NONCE || !nonce_valid(nonce, strlen(nonce)))
        return -1;
    strcpy(c->nonce, nonce);
    return 0;
}

char *scram_client_first(scram_client *c)
{
    if (!c || c->state != ST_START)
        return NULL;
    if (!c->nonce[0])
        random_token(c->nonce, SCRAM_NONCE_LEN);
    /* RFC 5802 6: "p=" when binding; "y" when we could bind but the server did not
     * offer -PLUS (so a stripped offer is detected); "n" when we cannot bind. */
    if (c->plus)
        c->gs2_header = xasprintf("p=%s,,", c->cb_type);
    else
        c->gs2_header = xstrdup(c->cb_type ? "y,," : "n,,");
    buf b;
    buf_init(&b);
    buf_append_str(&b, "n=");
    saslname_encode(&b, c->username);
    buf_appendf(&b, ",r=%s", c->nonce);
    c->client_first_bare = buf_steal(&b);
    c->state = ST_FIRST_DONE;
    return xasprintf("%s%s", c->gs2_header, c->client_first_bare);
}

/* Strict decimal, no sign, no leading zeros. */
static int parse_uint(const char *s, size_t n, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

scram_status scram_client_final(scram_client *c, const char *in, size_t inlen, char **out)
{
    const char *p, *end, *nv, *sv, *iv;
    size_t nl, sl, il;
    unsigned long iter = 0;
    unsigned char *salt = NULL;
    size_t salt_len = 0, kl = keylen_of(c ? c->hash : SCRAM_SHA1);
    unsigned char ck[SCRAM_MAX_KEY], stored[SCRAM_MAX_KEY], sk[SCRAM_MAX_KEY];
    unsigned char sig[SCRAM_MAX_KEY];
    scram_status st = SCRAM_ERR_MALFORMED;
    int rc;
    buf am;
    buf_init(&am);
    char *cfwp = NULL;

    if (out)
        *out = NULL;
    if (!c || !out || c->state != ST_FIRST_DONE)
        return SCRAM_ERR_INTERNAL;
    c->state = ST_FAILED;
    if (!msg_ok(in, inlen))
        return SCRAM_ERR_MALFORMED;

    /* server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
     *                        ["," extensions]; we support no mandatory extension. */
    p = in;
    end = in + inlen;
    size_t cnl = strlen(c->nonce);
    if (take_attr(&p, end, 'r', &nv, &nl) != 1 || nl <= cnl || memcmp(nv, c->nonce, cnl) != 0 ||
        !nonce_valid(nv, nl))
        goto out;
    if (take_attr(&p, end, 's', &sv, &sl) != 1 || (rc = take_attr(&p, end, 'i', &iv, &il)) < 0 ||
        skip_extensions(&p, end, rc) < 0)
        goto out;
    if (!(salt = base64_decode(sv, sl, &salt_len)) || salt_len == 0 || salt_len > SCRAM_MAX_SALT)
        goto out;
    /* Fewer than the minimum would make an eavesdropped exchange cheap to attack. */
    if (parse_uint(iv, il, SCRAM_CLIENT_MAX_ITER, &iter) < 0 || iter < SCRAM_MIN_ITERATIONS)
        goto out;

    st = SCRAM_ERR_INTERNAL;
    if (derive_keys(c->hash, c->password, salt, salt_len, (unsigned)iter, ck, stored, sk) < 0)
        goto out;
    char *cb = cbind_b64(c->gs2_header, c->plus, c->cb_data, c->cb_len);
    cfwp = xasprintf("c=%s,r=%.*s", cb, (int)nl, nv);
    free(cb);
    buf_append_str(&am, c->client_first_bare);
    buf_append_str(&am, ",");
    buf_append(&am, in, inlen);
    buf_append_str(&am, ",");
    buf_append_str(&am, cfwp);

    if (hmac(c->hash, stored, kl, am.data, am.len, sig) < 0 ||
        hmac(c->hash, sk, kl, am.data, am.len, c->server_sig) < 0)
        goto out;
    for (size_t i = 0; i < kl; i++)
        ck[i] ^= sig[i]; /* ClientProof */
    char *proof = base64_encode(ck, kl);
    *out = xasprintf("%s,p=%s", cfwp, proof);
    free(proof);
    c->state = ST_DONE;
    st = SCRAM_CONTINUE;
out:
    secure_wipe(ck, sizeof ck);
    secure_wipe(stored, sizeof stored);
    secure_wipe(sk, sizeof sk);
    secure_wipe(sig, sizeof sig);
    free(salt);
    free(cfwp);
    buf_free(&am);
    return st;
}

scram_status scram_client_verify(scram_client *c, const char *in, size_t inlen)
{
    const char *p, *v;
    size_t vl, sl = 0;
    scram_status st = SCRAM_ERR_AUTH;
    if (!c || c->state != ST_DONE || !msg_ok(in, inlen))
        return SCRAM_ERR_AUTH;
    c->state = ST_FAILED; /* one verification per exchange */
    p = in;
    /* server-final-message = (server-error / verifier) ["," extensions] */
    int rc = take_attr(&p, in + inlen, 'v', &v, &vl);
    if (rc < 0 || skip_extensions(&p, in + inlen, rc) < 0)
        return SCRAM_ERR_AUTH;
    unsigned char *sig = base64_decode(v, vl, &sl);
    size_t kl = keylen_of(c->hash);
    if (sig && sl == kl && ct_equal(sig, c->server_sig, kl))
        st = SCRAM_OK;
    free(sig);
    secure_wipe(c->server_sig, sizeof c->server_sig);
    return st;
}
