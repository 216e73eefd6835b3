/* clog.h - the compliance log: a tamper-evident archive of messages (and, later, file
 * transfers) and of audit events (sign-ins, sign-outs, admin actions).
 *
 * Two hash chains live in one store: "messages" and "audit". Every record carries
 * hash = SHA-256(prev_hash || canonical encoding of its fields), prev_hash being the
 * hash of the record before it (32 zero bytes for the first). Signed checkpoints
 * (every N records and at close) pin the head of each chain with the server's key, so
 * that rewriting the whole chain from some point on is detectable too. The exact
 * encoding is in docs/compliance.md: auditors can re-verify with their own tools.
 *
 * The interface is back-end agnostic (clog_backend.h): "sqlite:PATH" is the embedded
 * back end, "postgresql://..." (or "postgres://...") the shared one. Appends read the
 * chain head inside a write transaction that serialises appenders, so parleyd (several
 * nodes, with PostgreSQL) and parleyctl may append at the same time without forking the
 * chain.
 *
 * Retention: clog_purge removes the oldest message records (a prefix of the chain) and
 * leaves a signed purge checkpoint pinning the last one removed, from which verification
 * then starts. Spool mode (clog_spool.h) uses the replay markers below to put each
 * spooled batch into the store exactly once. */
#ifndef PARLEY_CLOG_H
#define PARLEY_CLOG_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define CLOG_HASH_LEN 32

typedef struct clog clog;

/* One message (or file transfer) record. Strings may be NULL (stored as NULL). Records
 * returned by clog own their strings (clog_record_clear frees them); records passed to
 * clog_append are only read. */
typedef struct clog_record {
    int64_t seq;        /* position in the chain, from 1; set by clog_append */
    int64_t ts_us;      /* server clock, microseconds since the Unix epoch (UTC) */
    char *kind;         /* "message" (or "file") */
    char *sender;       /* full JID */
    char *recipient;    /* JID as addressed, or a room */
    char *msg_id;       /* the stanza's id attribute */
    char *thread;
    char *type;         /* chat, normal, groupchat, headline */
    char *subject;
    char *body;         /* NULL for end-to-end encrypted messages */
    int encrypted;      /* 1: client-to-client encrypted, metadata only */
    char *enc_ns;       /* the encryption element's namespace */
    char *file_name;    /* file transfers (later): name, size, media type, SHA-256 hex */
    int64_t file_size;  /* -1: none */
    char *file_type;
    char *file_sha256;
    char *outcome;      /* delivered, offline, bounced, discarded (later blocked-policy,
                         * blocked-compliance) */
    char *verdict;      /* allow (block / modify when a compliance component decides) */
    char *reason;       /* why: the verdict's reason, or why it was not delivered */
    char *stanza;       /* the whole stanza as XML (without bodies if encrypted) */
    unsigned char prev_hash[CLOG_HASH_LEN];
    unsigned char hash[CLOG_HASH_LEN];
} clog_record;

/* One audit event. */
typedef struct clog_audit {
    int64_t seq;
    int64_t ts_us;
    char *actor;        /* who: a full JID, "admin" (parleyctl), "server" */
    char *event;        /* sign-in, sign-out, auth-failure, user-add, user-del, ... */
    char *target;       /* what it concerns (an account), may be NULL */
    char *peer;         /* network address, may be NULL */
    char *detail;       /* free text (mechanism, reason), may be NULL */
    unsigned char prev_hash[CLOG_HASH_LEN];
    unsigned char hash[CLOG_HASH_LEN];
} clog_audit;

typedef enum { CLOG_MESSAGES = 0, CLOG_AUDIT = 1 } clog_chain;

typedef struct clog_checkpoint {
    clog_chain chain;
    int64_t seq;        /* the record this checkpoint pins */
    int64_t ts_us;
    unsigned char hash[CLOG_HASH_LEN];
    unsigned char *sig; /* over clog_checkpoint_message() */
    size_t siglen;
    char *signer;       /* the signer's public key, PEM */
} clog_checkpoint;

/* Search filters: NULL / 0 means "any". JIDs without a resource match every resource. */
typedef struct clog_filter {
    const char *from;   /* sender (messages) or actor (audit) */
    const char *to;     /* recipient (messages) or target (audit) */
    const char *jid;    /* either side */
    const char *text;   /* body (messages) or detail (audit) substring */
    int64_t since_us;   /* ts_us >= since_us when non-zero */
    int64_t until_us;   /* ts_us < until_us when non-zero */
    int64_t limit;      /* at most this many (0: all), in seq order */
} clog_filter;

#define CLOG_READONLY 1

/* Open by URI ("sqlite:PATH"). key: signs checkpoints (borrowed; NULL: no checkpoints
 * are written by this handle). checkpoint_every: records between checkpoints (> 0).
 * CLOG_READONLY opens an existing store without creating or migrating it. NULL with
 * the reason in err. */
clog *clog_open(const char *uri, EVP_PKEY *key, int checkpoint_every, int flags, char *err,
                size_t errlen);
/* Writes a checkpoint for each chain whose head is not yet pinned (if there is a key),
 * then closes. */
void clog_close(clog *c);
const char *clog_last_error(const clog *c);
/* The store's schema versions: *found when it was opened (0: there was no archive, one
 * was created), *current now (after a writable open's migrations), *supported the
 * newest this program knows. A store newer than *supported never opens. */
void clog_schema(const clog *c, int *found, int *current, int *supported);

/* Append records and audit events in one transaction, in order: all of them are
 * durable, or none is (then -1 and clog_last_error). Sets seq, prev_hash and hash in
 * each. Writes a checkpoint when a chain passed checkpoint_every records since the last. */
int clog_append(clog *c, clog_record *recs, size_t nrecs, clog_audit *evs, size_t nevs);

/* ---- verification ---- */

typedef struct clog_verify_result {
    int ok;                 /* 1: everything verifies */
    int64_t records;        /* records walked */
    int64_t checkpoints;    /* checkpoints checked */
    int64_t bad_seq;        /* the record the problem concerns (0: none / not a record) */
    int64_t purged_seq;     /* records up to this one were purged (signed); 0: none */
    char problem[512];      /* the first problem found, e.g. "record 17 altered" */
} clog_verify_result;

/* Walk a chain in seq order and check: contiguous seq from 1 (or from just after the
 * latest signed purge checkpoint, whose pinned hash the first record must link to), each
 * prev_hash is the previous record's hash, each hash recomputes, each checkpoint's and
 * purge checkpoint's signature is valid (and by trusted, if given) and matches its
 * record, and no record a checkpoint pinned is gone. Returns 0 with res filled (res->ok
 * says whether it verified), -1 if the store could not be read. */
int clog_verify(clog *c, clog_chain chain, EVP_PKEY *trusted, clog_verify_result *res);

/* ---- retention ---- */

typedef struct clog_purge_result {
    int64_t count;      /* records removed; 0: none was older (nothing was written) */
    int64_t first_seq;  /* the range removed */
    int64_t last_seq;
} clog_purge_result;

/* Remove the oldest message records with ts_us < before_us: the prefix of the chain up to
 * (not including) the first younger record. In one transaction: verify the messages chain
 * (as clog_verify with trusted; refused if it does not verify, since a purge would
 * destroy the evidence), delete, write a signed purge checkpoint pinning the last record
 * removed, and append the audit event "compliance-purge" (actor; detail: note, then the
 * count, seq range and date). Needs the signing key. Audit events are never purged.
 * Returns 0 (res filled) or -1. */
int clog_purge(clog *c, int64_t before_us, EVP_PKEY *trusted, const char *actor,
               const char *note, clog_purge_result *res);

/* ---- replay markers (spool mode) ---- */

#define CLOG_MARKER_MAX 64 /* longest source id */

/* clog_append, plus in the same transaction: the batches numbered first..last of source
 * (a spool's id) are in the store. If the marker of source already reaches last, nothing
 * is written and 1 is returned (the batch went in before: a replay after a crash, or a
 * commit whose answer was lost). 0: appended; -1: error (also for a marker between first
 * and last: a batch is never partly in). */
int clog_append_marked(clog *c, clog_record *recs, size_t nrecs, clog_audit *evs, size_t nevs,
                       const char *source, int64_t first, int64_t last);
/* The last batch number of source in the store (0: none). */
int clog_marker(clog *c, const char *source, int64_t *last);

/* ---- search ---- */

/* Call fn on each matching record in seq order (the record is valid during the call);
 * fn returning non-zero stops the walk. Returns 0 or -1. */
int clog_search(clog *c, const clog_filter *f, int (*fn)(void *ud, const clog_record *r),
                void *ud);
int clog_search_audit(clog *c, const clog_filter *f,
                      int (*fn)(void *ud, const clog_audit *a), void *ud);

/* ---- building blocks, exposed for the back ends and the tests ---- */

/* hash = SHA-256(prev_hash || encoding) of a record / audit event, from their fields
 * and prev_hash (seq included). */
void clog_record_hash(const clog_record *r, unsigned char out[CLOG_HASH_LEN]);
/* The dedupe key of a message record whose stanza carries an XEP-0359 origin-id: 64 hex
 * digits of SHA-256 over the sender's bare JID, the origin-id and the message's content
 * (docs/compliance.md). A second record with the same key is a copy its client sent
 * again after a failover: the back ends store it once (unique index). Returns 0, or -1
 * (out "") when there is no origin-id. Not part of the hash chain. */
#define CLOG_DEDUPE_KEY_LEN (2 * CLOG_HASH_LEN + 1)
int clog_record_dedupe_key(const clog_record *r, char out[CLOG_DEDUPE_KEY_LEN]);
void clog_audit_hash(const clog_audit *a, unsigned char out[CLOG_HASH_LEN]);
/* The canonical encoding itself (freshly allocated, *len set), for the tests and docs. */
unsigned char *clog_record_encode(const clog_record *r, size_t *len);
/* The text a checkpoint signs: "parley-clog-checkpoint-v1|CHAIN|SEQ|HEXHASH". */
char *clog_checkpoint_message(clog_chain chain, int64_t seq,
                              const unsigned char hash[CLOG_HASH_LEN]);
/* The text a purge checkpoint signs: "parley-clog-purge-v1|CHAIN|SEQ|HEXHASH" (another
 * tag, so that a head checkpoint can never pass for a purge). */
char *clog_purge_message(clog_chain chain, int64_t seq, const unsigned char hash[CLOG_HASH_LEN]);
const char *clog_chain_name(clog_chain chain);
void clog_hex(const unsigned char *bytes, size_t n, char *out); /* out: 2n+1 */

void clog_record_clear(clog_record *r);
void clog_audit_clear(clog_audit *a);
void clog_checkpoint_clear(clog_checkpoint *cp);

#endif
