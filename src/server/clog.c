/* clog.c - the compliance log (clog.h): the canonical encoding and hash chain, batched
 * appends, signed checkpoints and verification, on top of a storage back end reached
 * through clog_backend.h's ops table.
 *
 * Everything that decides what the archive proves lives here, once, so every back end
 * produces byte-identical chains and the same verification. */
#include "clog_backend.h"
#include "store.h"

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/tls.h"
#include "../common/util.h"
#include "../common/xml.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* scheme prefix -> back end. */
static const struct {
    const char *prefix;
    const struct clog_ops *ops;
} backends[] = {
    {"sqlite:", &clog_sqlite_ops},
    {"postgresql:", &clog_pg_ops},
    {"postgres:", &clog_pg_ops},
};

/* Domain separation: a message record can never hash like an audit event, nor a head
 * checkpoint sign like a purge checkpoint. */
#define TAG_MESSAGE "parley-clog-message-v1"
#define TAG_AUDIT "parley-clog-audit-v1"
#define TAG_CHECKPOINT "parley-clog-checkpoint-v1"
#define TAG_PURGE "parley-clog-purge-v1"

int clog_set_error(clog *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *clog_last_error(const clog *c)
{
    return c ? c->error : "no compliance log";
}

const char *clog_chain_name(clog_chain chain)
{
    return chain == CLOG_AUDIT ? "audit" : "messages";
}

void clog_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void clog_record_clear(clog_record *r)
{
    if (!r)
        return;
    char **strs[] = {&r->kind,      &r->sender,    &r->recipient,   &r->msg_id,  &r->thread,
                     &r->type,      &r->subject,   &r->body,        &r->enc_ns,  &r->file_name,
                     &r->file_type, &r->file_sha256, &r->outcome,   &r->verdict, &r->reason,
                     &r->stanza};
    for (size_t i = 0; i < ARRAY_LEN(strs); i++)
        free(*strs[i]);
    memset(r, 0, sizeof *r);
    r->file_size = -1;
}

void clog_audit_clear(clog_audit *a)
{
    if (!a)
        return;
    free(a->actor);
    free(a->event);
    free(a->target);
    free(a->peer);
    free(a->detail);
    memset(a, 0, sizeof *a);
}

void clog_checkpoint_clear(clog_checkpoint *cp)
{
    if (!cp)
        return;
    free(cp->sig);
    free(cp->signer);
    memset(cp, 0, sizeof *cp);
}

/* ---- canonical encoding ---- */

/* Each field: 4-byte big-endian length, then the bytes; NULL is the length 0xFFFFFFFF
 * with no bytes (so NULL and "" differ). Integers are decimal ASCII. */
static void put_field(buf *b, const char *s)
{
    unsigned char len[4];
    uint32_t n = s ? (uint32_t)strlen(s) : 0xFFFFFFFFu;
    len[0] = (unsigned char)(n >> 24);
    len[1] = (unsigned char)(n >> 16);
    len[2] = (unsigned char)(n >> 8);
    len[3] = (unsigned char)n;
    buf_append(b, len, 4);
    if (s)
        buf_append(b, s, n);
}

static void put_int(buf *b, int64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)v);
    put_field(b, num);
}

static void encode_record(const clog_record *r, buf *b)
{
    put_field(b, TAG_MESSAGE);
    put_int(b, r->seq);
    put_int(b, r->ts_us);
    put_field(b, r->kind);
    put_field(b, r->sender);
    put_field(b, r->recipient);
    put_field(b, r->msg_id);
    put_field(b, r->thread);
    put_field(b, r->type);
    put_field(b, r->subject);
    put_field(b, r->body);
    put_int(b, r->encrypted ? 1 : 0);
    put_field(b, r->enc_ns);
    put_field(b, r->file_name);
    if (r->file_size >= 0)
        put_int(b, r->file_size);
    else
        put_field(b, NULL);
    put_field(b, r->file_type);
    put_field(b, r->file_sha256);
    put_field(b, r->outcome);
    put_field(b, r->verdict);
    put_field(b, r->reason);
    put_field(b, r->stanza);
}

static void encode_audit(const clog_audit *a, buf *b)
{
    put_field(b, TAG_AUDIT);
    put_int(b, a->seq);
    put_int(b, a->ts_us);
    put_field(b, a->actor);
    put_field(b, a->event);
    put_field(b, a->target);
    put_field(b, a->peer);
    put_field(b, a->detail);
}

unsigned char *clog_record_encode(const clog_record *r, size_t *len)
{
    buf b;
    buf_init(&b);
    encode_record(r, &b);
    *len = b.len;
    return (unsigned char *)buf_steal(&b);
}

/* SHA-256 of b's bytes (prev_hash || encoding). A failing digest means a broken
 * OpenSSL: abort like on allocation failure rather than write a wrong chain. */
static void sha256_buf(const buf *b, unsigned char out[CLOG_HASH_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(b->data, b->len, out, &n, EVP_sha256(), NULL) != 1 || n != CLOG_HASH_LEN) {
        log_error("compliance log: SHA-256 failed");
        abort();
    }
}

void clog_record_hash(const clog_record *r, unsigned char out[CLOG_HASH_LEN])
{
    buf b;
    buf_init(&b);
    buf_append(&b, r->prev_hash, CLOG_HASH_LEN);
    encode_record(r, &b);
    sha256_buf(&b, out);
    buf_free(&b);
}

#define TAG_DEDUPE "parley-clog-dedupe-v1"
#define XMLNS_SID "urn:xmpp:sid:0"
#define DEDUPE_STANZA_MAX (1024 * 1024)

int clog_record_dedupe_key(const clog_record *r, char out[CLOG_DEDUPE_KEY_LEN])
{
    out[0] = '\0';
    /* cheap test first: most stanzas have none */
    if (!r->stanza || !r->sender || !strstr(r->stanza, "origin-id"))
        return -1;
    xml_node *st = xml_parse_document(r->stanza, strlen(r->stanza), "jabber:client",
                                      DEDUPE_STANZA_MAX);
    const xml_node *o = st ? xml_child(st, XMLNS_SID, "origin-id") : NULL;
    const char *oid = o ? xml_get_attr(o, "id") : NULL;
    if (!oid || !*oid) {
        xml_free(st);
        return -1;
    }
    /* The same origin-id with other content is another message, recorded as such: a
     * client cannot hide a message behind an earlier one's id. The content is what the
     * record holds (the encrypted payload for an end-to-end encrypted message). */
    char *bare = xstrndup(r->sender, strcspn(r->sender, "/"));
    buf b;
    buf_init(&b);
    put_field(&b, TAG_DEDUPE);
    put_field(&b, bare);
    put_field(&b, oid);
    put_field(&b, r->kind);
    put_field(&b, r->recipient);
    put_field(&b, r->msg_id);
    put_field(&b, r->thread);
    put_field(&b, r->type);
    put_field(&b, r->subject);
    put_field(&b, r->body);
    put_int(&b, r->encrypted ? 1 : 0);
    put_field(&b, r->enc_ns);
    put_field(&b, r->file_name);
    put_int(&b, r->file_size);
    put_field(&b, r->file_type);
    put_field(&b, r->file_sha256);
    const xml_node *enc = r->enc_ns ? xml_child(st, r->enc_ns, NULL) : NULL;
    char *payload = enc ? xml_to_string(enc, "jabber:client") : NULL;
    put_field(&b, payload);
    free(payload);
    free(bare);
    xml_free(st);
    unsigned char digest[CLOG_HASH_LEN];
    sha256_buf(&b, digest);
    buf_free(&b);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < CLOG_HASH_LEN; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * CLOG_HASH_LEN] = '\0';
    return 0;
}

void clog_audit_hash(const clog_audit *a, unsigned char out[CLOG_HASH_LEN])
{
    buf b;
    buf_init(&b);
    buf_append(&b, a->prev_hash, CLOG_HASH_LEN);
    encode_audit(a, &b);
    sha256_buf(&b, out);
    buf_free(&b);
}

char *clog_checkpoint_message(clog_chain chain, int64_t seq,
                              const unsigned char hash[CLOG_HASH_LEN])
{
    char hex[2 * CLOG_HASH_LEN + 1];
    clog_hex(hash, CLOG_HASH_LEN, hex);
    return xasprintf(TAG_CHECKPOINT "|%s|%lld|%s", clog_chain_name(chain), (long long)seq, hex);
}

char *clog_purge_message(clog_chain chain, int64_t seq, const unsigned char hash[CLOG_HASH_LEN])
{
    char hex[2 * CLOG_HASH_LEN + 1];
    clog_hex(hash, CLOG_HASH_LEN, hex);
    return xasprintf(TAG_PURGE "|%s|%lld|%s", clog_chain_name(chain), (long long)seq, hex);
}

/* ---- signatures ---- */

/* Ed25519/Ed448 sign the message itself; every other key type signs its SHA-256. */
static const EVP_MD *sig_md(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
        return NULL;
    return EVP_sha256();
}

static int sign_text(clog *c, const char *msg, unsigned char **sig, size_t *siglen)
{
    char ebuf[256];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    *sig = NULL;
    *siglen = 0;
    if (!ctx || EVP_DigestSignInit(ctx, NULL, sig_md(c->key), NULL, c->key) != 1 ||
        EVP_DigestSign(ctx, NULL, siglen, (const unsigned char *)msg, strlen(msg)) != 1) {
        EVP_MD_CTX_free(ctx);
        tls_last_error(ebuf, sizeof ebuf);
        return clog_set_error(c, "signing a checkpoint: %s", ebuf);
    }
    *sig = xmalloc(*siglen);
    if (EVP_DigestSign(ctx, *sig, siglen, (const unsigned char *)msg, strlen(msg)) != 1) {
        free(*sig);
        *sig = NULL;
        EVP_MD_CTX_free(ctx);
        tls_last_error(ebuf, sizeof ebuf);
        return clog_set_error(c, "signing a checkpoint: %s", ebuf);
    }
    EVP_MD_CTX_free(ctx);
    return 0;
}

static char *public_pem(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && PEM_write_bio_PUBKEY(b, key) == 1) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        if (n > 0)
            out = xstrndup(data, (size_t)n);
    }
    BIO_free(b);
    return out;
}

static EVP_PKEY *pem_public(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    ERR_clear_error();
    return k;
}

/* 1: valid, 0: not. */
static int verify_sig(EVP_PKEY *pub, const char *msg, const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, sig_md(pub), NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg, strlen(msg)) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* ---- open / close ---- */

clog *clog_open(const char *uri, EVP_PKEY *key, int checkpoint_every, int flags, char *err,
                size_t errlen)
{
    if (!uri) {
        snprintf(err, errlen, "no compliance store configured");
        return NULL;
    }
    for (size_t i = 0; i < ARRAY_LEN(backends); i++) {
        size_t plen = strlen(backends[i].prefix);
        if (strncmp(uri, backends[i].prefix, plen) != 0)
            continue;
        char *pem = NULL;
        if (key && !(flags & CLOG_READONLY) && !(pem = public_pem(key))) {
            snprintf(err, errlen, "compliance store: cannot export the signing key's public half");
            return NULL;
        }
        clog *c = backends[i].ops->open(uri + plen, flags & CLOG_READONLY, err, errlen);
        if (!c) {
            free(pem);
            return NULL;
        }
        c->ops = backends[i].ops;
        c->readonly = (flags & CLOG_READONLY) != 0;
        c->key = pem ? key : NULL;
        c->signer_pem = pem;
        c->checkpoint_every = checkpoint_every > 0 ? checkpoint_every : 1000;
        return c;
    }
    char shown[256];
    store_uri_redacted(uri, shown, sizeof shown);
    snprintf(err, errlen,
             "compliance store '%.200s': unknown scheme (expected sqlite:PATH or "
             "postgresql://...)",
             shown);
    return NULL;
}

void clog_schema(const clog *c, int *found, int *current, int *supported)
{
    *found = c->schema_found;
    *current = c->schema_current;
    *supported = c->schema_supported;
}

/* The chain's head; when every record was purged, the record the latest purge checkpoint
 * pins, so the chain goes on from there instead of starting again at 1. */
static int chain_head(clog *c, clog_chain chain, int64_t *seq, unsigned char hash[CLOG_HASH_LEN])
{
    if (c->ops->head(c, chain, seq, hash) < 0)
        return -1;
    if (*seq == 0 && c->ops->last_purge(c, chain, seq, hash) < 0)
        return -1;
    return 0;
}

/* Inside a transaction: pin the chain's head with a signed checkpoint if it is at least
 * `every` records past the last one (every = 1: any unpinned head). */
static int maybe_checkpoint(clog *c, clog_chain chain, int every)
{
    if (!c->key)
        return 0;
    int64_t head, last;
    clog_checkpoint cp;
    memset(&cp, 0, sizeof cp);
    if (chain_head(c, chain, &head, cp.hash) < 0 || c->ops->last_checkpoint(c, chain, &last) < 0)
        return -1;
    if (head == 0 || head - last < every)
        return 0;
    cp.chain = chain;
    cp.seq = head;
    cp.ts_us = time_now_us();
    char *msg = clog_checkpoint_message(chain, head, cp.hash);
    int rc = sign_text(c, msg, &cp.sig, &cp.siglen);
    free(msg);
    if (rc == 0) {
        cp.signer = c->signer_pem;
        rc = c->ops->insert_checkpoint(c, &cp);
        cp.signer = NULL;
    }
    clog_checkpoint_clear(&cp);
    return rc;
}

void clog_close(clog *c)
{
    if (!c)
        return;
    if (c->key && !c->readonly) {
        /* The final checkpoint makes a truncated tail detectable up to this point. */
        if (c->ops->begin(c) < 0 || maybe_checkpoint(c, CLOG_MESSAGES, 1) < 0 ||
            maybe_checkpoint(c, CLOG_AUDIT, 1) < 0 || c->ops->commit(c) < 0) {
            c->ops->rollback(c);
            log_error("compliance store: the closing checkpoint was not written: %s", c->error);
        }
    }
    free(c->signer_pem);
    c->ops->close(c);
}

/* ---- append ---- */

/* What the schema requires is checked before anything is written, so the hash never
 * covers a value the back end would store differently. */
static int check_batch(clog *c, const clog_record *recs, size_t nrecs, const clog_audit *evs,
                       size_t nevs)
{
    if (c->readonly)
        return clog_set_error(c, "compliance store opened read-only");
    for (size_t i = 0; i < nrecs; i++)
        if (!recs[i].kind)
            return clog_set_error(c, "compliance record without a kind");
    for (size_t i = 0; i < nevs; i++)
        if (!evs[i].event)
            return clog_set_error(c, "audit event without an event name");
    return 0;
}

/* Inside the write transaction. The head is read here, not remembered: another appender
 * (parleyctl, another node) may have extended the chain since our last batch. */
static int append_locked(clog *c, clog_record *recs, size_t nrecs, clog_audit *evs, size_t nevs)
{
    int64_t seq;
    unsigned char prev[CLOG_HASH_LEN];
    if (nrecs) {
        if (chain_head(c, CLOG_MESSAGES, &seq, prev) < 0)
            return -1;
        for (size_t i = 0; i < nrecs; i++) {
            recs[i].seq = ++seq;
            memcpy(recs[i].prev_hash, prev, CLOG_HASH_LEN);
            clog_record_hash(&recs[i], recs[i].hash);
            int rc = c->ops->insert_record(c, &recs[i]);
            if (rc < 0)
                return -1;
            if (rc > 0) { /* a copy of a recorded message: no record, the chain unchanged */
                recs[i].seq = 0;
                seq--;
                continue;
            }
            memcpy(prev, recs[i].hash, CLOG_HASH_LEN);
        }
        if (maybe_checkpoint(c, CLOG_MESSAGES, c->checkpoint_every) < 0)
            return -1;
    }
    if (nevs) {
        if (chain_head(c, CLOG_AUDIT, &seq, prev) < 0)
            return -1;
        for (size_t i = 0; i < nevs; i++) {
            evs[i].seq = ++seq;
            memcpy(evs[i].prev_hash, prev, CLOG_HASH_LEN);
            clog_audit_hash(&evs[i], evs[i].hash);
            if (c->ops->insert_audit(c, &evs[i]) < 0)
                return -1;
            memcpy(prev, evs[i].hash, CLOG_HASH_LEN);
        }
        if (maybe_checkpoint(c, CLOG_AUDIT, c->checkpoint_every) < 0)
            return -1;
    }
    return 0;
}

int clog_append(clog *c, clog_record *recs, size_t nrecs, clog_audit *evs, size_t nevs)
{
    if (check_batch(c, recs, nrecs, evs, nevs) < 0)
        return -1;
    if (nrecs == 0 && nevs == 0)
        return 0;
    if (c->ops->begin(c) < 0)
        return -1;
    if (append_locked(c, recs, nrecs, evs, nevs) < 0 || c->ops->commit(c) < 0) {
        c->ops->rollback(c);
        return -1;
    }
    return 0;
}

static int check_source(clog *c, const char *source)
{
    if (!source || !*source || strlen(source) > CLOG_MARKER_MAX)
        return clog_set_error(c, "replay marker: bad source id");
    return 0;
}

int clog_append_marked(clog *c, clog_record *recs, size_t nrecs, clog_audit *evs, size_t nevs,
                       const char *source, int64_t first, int64_t last)
{
    if (check_batch(c, recs, nrecs, evs, nevs) < 0 || check_source(c, source) < 0)
        return -1;
    if (first < 1 || last < first)
        return clog_set_error(c, "replay marker: bad batch numbers %lld..%lld",
                              (long long)first, (long long)last);
    if (c->ops->begin(c) < 0)
        return -1;
    /* Read under the appenders' lock: the marker and the records it covers change
     * together or not at all. */
    int64_t done = 0;
    if (c->ops->get_marker(c, source, &done) < 0)
        goto fail;
    if (done >= last) {
        c->ops->rollback(c);
        return 1;
    }
    if (done >= first) {
        clog_set_error(c, "replay marker of %s is at %lld, inside the batches %lld..%lld",
                       source, (long long)done, (long long)first, (long long)last);
        goto fail;
    }
    if (append_locked(c, recs, nrecs, evs, nevs) < 0 ||
        c->ops->set_marker(c, source, last, time_now_us()) < 0 || c->ops->commit(c) < 0)
        goto fail;
    return 0;
fail:
    c->ops->rollback(c);
    return -1;
}

int clog_marker(clog *c, const char *source, int64_t *last)
{
    *last = 0;
    if (check_source(c, source) < 0)
        return -1;
    return c->ops->get_marker(c, source, last);
}

/* ---- retention ---- */

int clog_purge(clog *c, int64_t before_us, EVP_PKEY *trusted, const char *actor,
               const char *note, clog_purge_result *res)
{
    memset(res, 0, sizeof *res);
    if (c->readonly)
        return clog_set_error(c, "compliance store opened read-only");
    if (!c->key)
        return clog_set_error(c, "a purge must be signed, and the signing key is not "
                                 "available (key_file)");
    if (c->ops->begin(c) < 0)
        return -1;
    /* Under the appenders' lock: what is verified is what is purged. */
    clog_verify_result vr;
    if (clog_verify(c, CLOG_MESSAGES, trusted, &vr) < 0)
        goto fail;
    if (!vr.ok) {
        char why[sizeof vr.problem];
        snprintf(why, sizeof why, "%s", vr.problem);
        clog_set_error(c, "the messages chain does not verify (%s): a purge would destroy the "
                          "evidence, so nothing was removed",
                       why);
        goto fail;
    }
    int64_t first = 0, last = 0;
    if (c->ops->purge_range(c, before_us, &first, &last) < 0)
        goto fail;
    if (first < 1 || last < first) {
        c->ops->rollback(c); /* nothing older: nothing to write */
        return 0;
    }
    clog_checkpoint cp;
    memset(&cp, 0, sizeof cp);
    int found = 0;
    if (c->ops->record_hash(c, last, cp.hash, &found) < 0)
        goto fail;
    if (!found) {
        clog_set_error(c, "record %lld vanished during the purge", (long long)last);
        goto fail;
    }
    cp.chain = CLOG_MESSAGES;
    cp.seq = last;
    cp.ts_us = time_now_us();
    char *msg = clog_purge_message(CLOG_MESSAGES, last, cp.hash);
    int rc = sign_text(c, msg, &cp.sig, &cp.siglen);
    free(msg);
    if (rc == 0) {
        cp.signer = c->signer_pem;
        rc = c->ops->insert_purge(c, &cp);
        cp.signer = NULL;
    }
    clog_checkpoint_clear(&cp);
    if (rc < 0 || c->ops->delete_records(c, last) < 0)
        goto fail;

    char when[TIME_UTC_LEN], detail[512];
    time_format_utc(before_us, when);
    snprintf(detail, sizeof detail, "%.200s%srecords=%lld seq=%lld-%lld before=%s",
             note ? note : "", note && *note ? " " : "", (long long)(last - first + 1),
             (long long)first, (long long)last, when);
    clog_audit ev;
    memset(&ev, 0, sizeof ev);
    ev.ts_us = time_now_us();
    ev.actor = (char *)actor;
    ev.event = (char *)"compliance-purge";
    ev.target = (char *)"messages";
    ev.detail = detail;
    if (append_locked(c, NULL, 0, &ev, 1) < 0 || c->ops->commit(c) < 0)
        goto fail;
    res->count = last - first + 1;
    res->first_seq = first;
    res->last_seq = last;
    return 0;
fail:
    c->ops->rollback(c);
    return -1;
}

/* ---- verification ---- */

typedef struct cp_list {
    clog_checkpoint *v;
    size_t n, cap;
} cp_list;

static int collect_cp(void *ud, const clog_checkpoint *cp)
{
    cp_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    clog_checkpoint *d = &l->v[l->n++];
    *d = *cp;
    d->sig = xmalloc(cp->siglen ? cp->siglen : 1);
    if (cp->siglen)
        memcpy(d->sig, cp->sig, cp->siglen);
    d->signer = cp->signer ? xstrdup(cp->signer) : NULL;
    return 0;
}

typedef struct vstate {
    clog *c;
    clog_chain chain;
    EVP_PKEY *trusted;
    cp_list cps;
    size_t next_cp;
    int64_t expect;
    unsigned char prev[CLOG_HASH_LEN];
    int64_t purged; /* the latest purge checkpoint's seq (0: none) */
    clog_verify_result *res;
    int io_error;
} vstate;

static int problem(vstate *v, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int problem(vstate *v, int64_t seq, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->res->problem, sizeof v->res->problem, fmt, ap);
    va_end(ap);
    v->res->ok = 0;
    v->res->bad_seq = seq;
    return 1; /* stops the scan */
}

/* The signature of a (purge) checkpoint: valid, and by the trusted key if there is one. */
static int check_signature(vstate *v, const clog_checkpoint *cp, int purge)
{
    long long s = (long long)cp->seq;
    const char *what = purge ? "purge checkpoint" : "checkpoint";
    EVP_PKEY *pub = cp->signer ? pem_public(cp->signer) : NULL;
    if (!pub)
        return problem(v, 0, "%s at %lld: unreadable signer key", what, s);
    char *msg = purge ? clog_purge_message(v->chain, cp->seq, cp->hash)
                      : clog_checkpoint_message(v->chain, cp->seq, cp->hash);
    int good = verify_sig(pub, msg, cp->sig, cp->siglen);
    free(msg);
    int trusted = !v->trusted || EVP_PKEY_eq(pub, v->trusted) == 1;
    EVP_PKEY_free(pub);
    ERR_clear_error();
    if (!good)
        return problem(v, 0, "%s at %lld: invalid signature (forged or altered)", what, s);
    if (!trusted)
        return problem(v, 0, "%s at %lld: signed by a key that is not the server's", what, s);
    return 0;
}

/* stored: the hash of the record the checkpoint pins (NULL: that record was purged, so
 * only the signature can be checked). */
static int check_checkpoint(vstate *v, const clog_checkpoint *cp, const unsigned char *stored)
{
    long long s = (long long)cp->seq;
    if (check_signature(v, cp, 0))
        return 1;
    if (stored && memcmp(cp->hash, stored, CLOG_HASH_LEN) != 0)
        return problem(v, cp->seq,
                       "record %lld does not match the checkpoint at %lld (the chain was "
                       "rewritten up to there)",
                       s, s);
    v->res->checkpoints++;
    return 0;
}

/* Purge checkpoints: every one signed; the latest is where the chain now starts. The
 * head checkpoints of purged records can only have their signatures checked, but one
 * that pins the purge point must agree with it. */
static int check_purges(vstate *v, const cp_list *purges)
{
    const clog_checkpoint *latest = NULL;
    for (size_t i = 0; i < purges->n; i++) {
        if (check_signature(v, &purges->v[i], 1))
            return 1;
        if (!latest || purges->v[i].seq > latest->seq)
            latest = &purges->v[i];
    }
    if (!latest)
        return 0;
    while (v->next_cp < v->cps.n && v->cps.v[v->next_cp].seq <= latest->seq) {
        const clog_checkpoint *cp = &v->cps.v[v->next_cp++];
        if (check_checkpoint(v, cp, cp->seq == latest->seq ? latest->hash : NULL))
            return 1;
    }
    v->purged = latest->seq;
    v->res->purged_seq = latest->seq;
    v->expect = latest->seq + 1;
    memcpy(v->prev, latest->hash, CLOG_HASH_LEN);
    return 0;
}

/* One record of either chain: seq, stored prev_hash and hash, and a function recomputing
 * its hash as if it stood at another position. */
typedef void (*rehash_fn)(const void *rec, int64_t seq, unsigned char out[CLOG_HASH_LEN]);

static int check_one(vstate *v, const void *rec, int64_t seq, const unsigned char *prev_hash,
                     const unsigned char *hash, rehash_fn rehash)
{
    long long s = (long long)seq;
    if (seq < v->expect) {
        if (v->purged && seq <= v->purged)
            return problem(v, seq,
                           "record %lld is still there although the purge checkpoint at %lld "
                           "says it was removed (put back?)",
                           s, (long long)v->purged);
        return problem(v, seq, "record %lld out of place", s);
    }
    if (seq != v->expect) {
        if (seq == v->expect + 1)
            return problem(v, v->expect, "record %lld missing", (long long)v->expect);
        return problem(v, v->expect, "records %lld to %lld missing", (long long)v->expect, s - 1);
    }
    unsigned char calc[CLOG_HASH_LEN];
    rehash(rec, seq, calc);
    if (memcmp(calc, hash, CLOG_HASH_LEN) != 0) {
        /* Is this a genuine record that was moved? Its prev_hash names its predecessor;
         * if it hashes correctly at the position after that one, it was reordered. */
        int64_t pred = 0;
        if (v->c->ops->find_hash(v->c, v->chain, prev_hash, &pred) < 0) {
            v->io_error = 1;
            return 1;
        }
        int64_t orig = 0;
        int zero_prev = 1;
        for (int i = 0; i < CLOG_HASH_LEN; i++)
            zero_prev &= prev_hash[i] == 0;
        if (pred > 0)
            orig = pred + 1;
        else if (zero_prev)
            orig = 1;
        if (orig > 0 && orig != seq) {
            rehash(rec, orig, calc);
            if (memcmp(calc, hash, CLOG_HASH_LEN) == 0)
                return problem(v, seq,
                               "record %lld out of order (it holds record %lld: rows were "
                               "swapped or moved)",
                               s, (long long)orig);
        }
        return problem(v, seq, "record %lld altered (its content does not match its hash)", s);
    }
    if (memcmp(prev_hash, v->prev, CLOG_HASH_LEN) != 0) {
        if (seq == 1)
            return problem(v, 1, "record 1 altered (it does not start the chain)");
        if (seq - 1 == v->purged)
            return problem(v, seq,
                           "record %lld altered or replaced (it does not link to the purge "
                           "checkpoint at %lld)",
                           s, s - 1);
        return problem(v, seq - 1,
                       "record %lld altered or replaced (record %lld no longer links to it)",
                       s - 1, s);
    }
    while (v->next_cp < v->cps.n && v->cps.v[v->next_cp].seq <= seq) {
        const clog_checkpoint *cp = &v->cps.v[v->next_cp++];
        if (cp->seq == seq && check_checkpoint(v, cp, hash))
            return 1;
    }
    memcpy(v->prev, hash, CLOG_HASH_LEN);
    v->expect = seq + 1;
    v->res->records++;
    return 0;
}

static void rehash_record(const void *rec, int64_t seq, unsigned char out[CLOG_HASH_LEN])
{
    clog_record tmp = *(const clog_record *)rec;
    tmp.seq = seq;
    clog_record_hash(&tmp, out);
}

static void rehash_audit(const void *rec, int64_t seq, unsigned char out[CLOG_HASH_LEN])
{
    clog_audit tmp = *(const clog_audit *)rec;
    tmp.seq = seq;
    clog_audit_hash(&tmp, out);
}

static int verify_record(void *ud, const clog_record *r)
{
    return check_one(ud, r, r->seq, r->prev_hash, r->hash, rehash_record);
}

static int verify_audit(void *ud, const clog_audit *a)
{
    return check_one(ud, a, a->seq, a->prev_hash, a->hash, rehash_audit);
}

int clog_verify(clog *c, clog_chain chain, EVP_PKEY *trusted, clog_verify_result *res)
{
    memset(res, 0, sizeof *res);
    res->ok = 1;
    vstate v;
    memset(&v, 0, sizeof v);
    v.c = c;
    v.chain = chain;
    v.trusted = trusted;
    v.expect = 1;
    v.res = res;
    cp_list purges = {0};
    int rc = c->ops->scan_checkpoints(c, chain, collect_cp, &v.cps);
    if (rc == 0)
        rc = c->ops->scan_purges(c, chain, collect_cp, &purges);
    if (rc == 0 && check_purges(&v, &purges) == 0)
        rc = chain == CLOG_AUDIT ? c->ops->scan_audit(c, NULL, verify_audit, &v)
                                 : c->ops->scan_records(c, NULL, verify_record, &v);
    if (rc == 0 && v.io_error)
        rc = -1;
    if (rc == 0 && res->ok) {
        /* A checkpoint beyond the last record: the tail it pinned was removed. */
        if (v.next_cp < v.cps.n) {
            long long last = (long long)(v.expect - 1);
            problem(&v, v.expect, "records after %lld removed (checkpoint at %lld)", last,
                    (long long)v.cps.v[v.cps.n - 1].seq);
        }
    }
    for (size_t i = 0; i < v.cps.n; i++)
        clog_checkpoint_clear(&v.cps.v[i]);
    free(v.cps.v);
    for (size_t i = 0; i < purges.n; i++)
        clog_checkpoint_clear(&purges.v[i]);
    free(purges.v);
    return rc;
}

/* ---- search ---- */

int clog_search(clog *c, const clog_filter *f, int (*fn)(void *ud, const clog_record *r), void *ud)
{
    return c->ops->scan_records(c, f, fn, ud);
}

int clog_search_audit(clog *c, const clog_filter *f, int (*fn)(void *ud, const clog_audit *a),
                      void *ud)
{
    return c->ops->scan_audit(c, f, fn, ud);
}
