/* clog_backend.h - internal: what a compliance log back end provides to clog.c.
 *
 * Same shape as store_backend.h: clog.c owns the public API (hashing, signing,
 * verification, batching) and calls the back end only for plain storage through this
 * ops table, so a PostgreSQL compliance log is one more file with one more entry in
 * clog.c's scheme table. A back end allocates its handle with a `struct clog` as its
 * first member. Every op returns 0 or -1 after clog_set_error(). */
#ifndef PARLEY_CLOG_BACKEND_H
#define PARLEY_CLOG_BACKEND_H

#include "clog.h"

#define CLOG_ERRLEN 512

struct clog_ops {
    const char *name; /* "sqlite", "postgresql" */
    /* location: the URI without its scheme. Creates and migrates the schema unless
     * readonly. */
    clog *(*open)(const char *location, int readonly, char *err, size_t errlen);
    void (*close)(clog *c);

    /* A write transaction that serialises appenders (SQLite: BEGIN IMMEDIATE; PG: a
     * transaction plus an advisory or table lock). commit must be durable on return. */
    int (*begin)(clog *c);
    int (*commit)(clog *c);
    void (*rollback)(clog *c);

    /* The chain's head: *seq = 0 and hash zeroed for an empty chain. */
    int (*head)(clog *c, clog_chain chain, int64_t *seq, unsigned char hash[CLOG_HASH_LEN]);
    /* The seq of the latest checkpoint of the chain (0: none). */
    int (*last_checkpoint)(clog *c, clog_chain chain, int64_t *seq);
    /* 1 (nothing stored) if a record with the same clog_record_dedupe_key exists */
    int (*insert_record)(clog *c, const clog_record *r);
    int (*insert_audit)(clog *c, const clog_audit *a);
    int (*insert_checkpoint)(clog *c, const clog_checkpoint *cp);

    /* Reads, in seq order; fn returning non-zero stops early (still 0). The object
     * passed to fn is valid during the call only. f may be NULL (everything). */
    int (*scan_records)(clog *c, const clog_filter *f,
                        int (*fn)(void *ud, const clog_record *r), void *ud);
    int (*scan_audit)(clog *c, const clog_filter *f,
                      int (*fn)(void *ud, const clog_audit *a), void *ud);
    int (*scan_checkpoints)(clog *c, clog_chain chain,
                            int (*fn)(void *ud, const clog_checkpoint *cp), void *ud);
    /* The seq of the record of chain whose stored hash is hash; 0 if none. */
    int (*find_hash)(clog *c, clog_chain chain, const unsigned char hash[CLOG_HASH_LEN],
                     int64_t *seq);

    /* Retention (inside a write transaction, but last_purge and scan_purges). The first
     * and last seq of the messages that come before the first one with ts_us >= before_us
     * (*last < *first: none). */
    int (*purge_range)(clog *c, int64_t before_us, int64_t *first, int64_t *last);
    /* The stored hash of message record seq; *found 0 if there is none. */
    int (*record_hash)(clog *c, int64_t seq, unsigned char hash[CLOG_HASH_LEN], int *found);
    int (*delete_records)(clog *c, int64_t last); /* every message record with seq <= last */
    int (*insert_purge)(clog *c, const clog_checkpoint *cp);
    /* The latest purge checkpoint of the chain: *seq 0 (hash zeroed) if none. */
    int (*last_purge)(clog *c, clog_chain chain, int64_t *seq, unsigned char hash[CLOG_HASH_LEN]);
    int (*scan_purges)(clog *c, clog_chain chain,
                       int (*fn)(void *ud, const clog_checkpoint *cp), void *ud);

    /* Replay markers: the last batch number of a source (0: none); set inside the write
     * transaction of the batch. */
    int (*get_marker)(clog *c, const char *source, int64_t *last);
    int (*set_marker)(clog *c, const char *source, int64_t last, int64_t ts_us);
};

struct clog {
    const struct clog_ops *ops;
    EVP_PKEY *key;          /* signs checkpoints; NULL: none */
    char *signer_pem;       /* key's public half, PEM (stored with each checkpoint) */
    int checkpoint_every;
    int readonly;
    /* Set by the back end's open: schema version found (0: none), after migrating, and
     * the newest it knows (clog_schema). */
    int schema_found, schema_current, schema_supported;
    char error[CLOG_ERRLEN];
};

/* Record why the last call failed (printf-style); returns -1. */
int clog_set_error(clog *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

extern const struct clog_ops clog_sqlite_ops;
extern const struct clog_ops clog_pg_ops;

#endif
