/* lg_scram.c - see lg_scram.h. */
#include "lg_scram.h"

#include "common/base64.h"
#include "common/buf.h"
#include "common/util.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_KEY 32
#define MAX_ITER 1000000UL /* a server asking for more is not one we benchmark */
#define CACHE_BUCKETS 65536

typedef struct entry {
    char *key; /* "SHA-256 4096 <salt base64>" */
    unsigned char client_key[MAX_KEY], stored_key[MAX_KEY], server_key[MAX_KEY];
    struct entry *next;
} entry;

static entry *table[CACHE_BUCKETS];
static int cache_fd = -1;
static unsigned long n_miss, n_hit;

struct lg_scram {
    int sha256;
    char *password;
    char *gs2;          /* "n,," or "p=TYPE,," */
    buf cb;             /* gs2 header + channel binding data, for c= */
    char *client_first_bare;
    char nonce[25];
    unsigned char server_sig[MAX_KEY];
    int have_sig;
};

static const EVP_MD *md(int sha256) { return sha256 ? EVP_sha256() : EVP_sha1(); }
static size_t klen(int sha256) { return sha256 ? 32 : 20; }

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static entry *lookup(const char *key)
{
    for (entry *e = table[hash_str(key) % CACHE_BUCKETS]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static entry *insert(const char *key)
{
    entry *e = xcalloc(1, sizeof *e);
    e->key = xstrdup(key);
    uint32_t b = hash_str(key) % CACHE_BUCKETS;
    e->next = table[b];
    table[b] = e;
    return e;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int from_hex(const char *in, unsigned char *out, size_t n)
{
    if (strlen(in) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        if (sscanf(in + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

int lg_scram_cache_open(const char *file)
{
    FILE *f = fopen(file, "r");
    if (f) {
        char line[512], hname[16], salt[300], ck[80], sk[80];
        unsigned long iter;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "%15s %lu %299s %79s %79s", hname, &iter, salt, ck, sk) != 5)
                continue;
            int sha256 = strcmp(hname, "SHA-256") == 0;
            char key[340];
            snprintf(key, sizeof key, "%s %lu %s", hname, iter, salt);
            if (lookup(key))
                continue;
            entry e;
            if (from_hex(ck, e.client_key, klen(sha256)) < 0 ||
                from_hex(sk, e.server_key, klen(sha256)) < 0)
                continue;
            unsigned int n = 0;
            entry *ne = insert(key);
            memcpy(ne->client_key, e.client_key, sizeof e.client_key);
            memcpy(ne->server_key, e.server_key, sizeof e.server_key);
            EVP_Digest(ne->client_key, klen(sha256), ne->stored_key, &n, md(sha256), NULL);
        }
        fclose(f);
    }
    cache_fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    return cache_fd < 0 ? -1 : 0;
}

void lg_scram_cache_stats(unsigned long *misses, unsigned long *hits)
{
    *misses = n_miss;
    *hits = n_hit;
}

lg_scram *lg_scram_new(int sha256, const char *user, const char *password, const char *cb_type,
                       const unsigned char *cb_data, size_t cb_len)
{
    lg_scram *c = xcalloc(1, sizeof *c);
    c->sha256 = sha256;
    c->password = xstrdup(password);
    c->gs2 = cb_type ? xasprintf("p=%s,,", cb_type) : xstrdup("n,,");
    buf_init(&c->cb);
    buf_append_str(&c->cb, c->gs2);
    if (cb_type)
        buf_append(&c->cb, cb_data, cb_len);
    random_token(c->nonce, sizeof c->nonce - 1);
    buf b;
    buf_init(&b);
    buf_append_str(&b, "n=");
    for (const char *p = user; *p; p++) {
        if (*p == '=')
            buf_append_str(&b, "=3D");
        else if (*p == ',')
            buf_append_str(&b, "=2C");
        else
            buf_append(&b, p, 1);
    }
    buf_appendf(&b, ",r=%s", c->nonce);
    c->client_first_bare = buf_steal(&b);
    return c;
}

void lg_scram_free(lg_scram *c)
{
    if (!c)
        return;
    free(c->password);
    free(c->gs2);
    buf_free(&c->cb);
    free(c->client_first_bare);
    free(c);
}

char *lg_scram_first(lg_scram *c)
{
    return xasprintf("%s%s", c->gs2, c->client_first_bare);
}

/* The value of attribute `name` ("r", "s", "i") in a server-first-message. */
static char *attr(const char *msg, char name)
{
    for (const char *p = msg; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (p[0] == name && p[1] == '=') {
            const char *end = strchr(p, ',');
            return xstrndup(p + 2, end ? (size_t)(end - p - 2) : strlen(p + 2));
        }
    }
    return NULL;
}

static entry *derive(lg_scram *c, const char *salt_b64, unsigned long iter)
{
    char key[340];
    if (strlen(salt_b64) > 256)
        return NULL;
    snprintf(key, sizeof key, "%s %lu %s", c->sha256 ? "SHA-256" : "SHA-1", iter, salt_b64);
    entry *e = lookup(key);
    if (e) {
        n_hit++;
        return e;
    }
    size_t salt_len = 0;
    unsigned char *salt = base64_decode(salt_b64, strlen(salt_b64), &salt_len);
    if (!salt)
        return NULL;
    unsigned char salted[MAX_KEY];
    size_t kl = klen(c->sha256);
    int ok = PKCS5_PBKDF2_HMAC(c->password, (int)strlen(c->password), salt, (int)salt_len,
                               (int)iter, md(c->sha256), (int)kl, salted) == 1;
    free(salt);
    if (!ok)
        return NULL;
    n_miss++;
    e = insert(key);
    unsigned int n = 0;
    HMAC(md(c->sha256), salted, (int)kl, (const unsigned char *)"Client Key", 10, e->client_key, &n);
    HMAC(md(c->sha256), salted, (int)kl, (const unsigned char *)"Server Key", 10, e->server_key, &n);
    EVP_Digest(e->client_key, kl, e->stored_key, &n, md(c->sha256), NULL);
    secure_wipe(salted, sizeof salted);
    if (cache_fd >= 0) {
        char ck[2 * MAX_KEY + 1], sk[2 * MAX_KEY + 1];
        to_hex(e->client_key, kl, ck);
        to_hex(e->server_key, kl, sk);
        char *line = xasprintf("%s %s %s\n", key, ck, sk);
        /* One write per line with O_APPEND: lines of concurrent processes do not mix. */
        if (write(cache_fd, line, strlen(line)) < 0)
            perror("parley-loadgen: SCRAM cache");
        free(line);
    }
    return e;
}

char *lg_scram_final(lg_scram *c, const char *server_first, size_t len)
{
    char *sf = xstrndup(server_first, len);
    char *r = attr(sf, 'r'), *s = attr(sf, 's'), *i = attr(sf, 'i');
    char *out = NULL;
    if (sf[0] == 'm' || !r || !s || !i || strncmp(r, c->nonce, strlen(c->nonce)) != 0 ||
        strlen(r) == strlen(c->nonce))
        goto done;
    char *end = NULL;
    unsigned long iter = strtoul(i, &end, 10);
    if (!end || *end || iter < 1 || iter > MAX_ITER)
        goto done;
    entry *e = derive(c, s, iter);
    if (!e)
        goto done;
    char *cb64 = base64_encode((const unsigned char *)c->cb.data, c->cb.len);
    char *without_proof = xasprintf("c=%s,r=%s", cb64, r);
    free(cb64);
    char *auth = xasprintf("%s,%s,%s", c->client_first_bare, sf, without_proof);
    size_t kl = klen(c->sha256);
    unsigned char sig[MAX_KEY], proof[MAX_KEY];
    unsigned int n = 0;
    HMAC(md(c->sha256), e->stored_key, (int)kl, (const unsigned char *)auth, strlen(auth), sig, &n);
    for (size_t k = 0; k < kl; k++)
        proof[k] = e->client_key[k] ^ sig[k];
    HMAC(md(c->sha256), e->server_key, (int)kl, (const unsigned char *)auth, strlen(auth),
         c->server_sig, &n);
    c->have_sig = 1;
    char *p64 = base64_encode(proof, kl);
    out = xasprintf("%s,p=%s", without_proof, p64);
    free(p64);
    free(auth);
    free(without_proof);
done:
    free(r);
    free(s);
    free(i);
    free(sf);
    return out;
}

int lg_scram_verify(lg_scram *c, const char *server_final, size_t len)
{
    if (!c->have_sig || len < 3 || server_final[0] != 'v' || server_final[1] != '=')
        return -1;
    const char *v = server_final + 2;
    size_t vlen = len - 2;
    const char *comma = memchr(v, ',', vlen);
    if (comma)
        vlen = (size_t)(comma - v);
    size_t n = 0;
    unsigned char *sig = base64_decode(v, vlen, &n);
    int ok = sig && n == klen(c->sha256) && ct_equal(sig, c->server_sig, n);
    free(sig);
    return ok ? 0 : -1;
}
