/* clog_sqlite.c - the embedded SQLite back end of the compliance log (clog_backend.h).
 *
 * Durability is the point of this file: synchronous=FULL, so a batch that COMMIT
 * returned for is on disk (WAL fsync'd) before parleyd delivers the messages it
 * records. One batch is one BEGIN IMMEDIATE transaction, so the fsync is paid once per
 * event-loop iteration, not once per message (group commit).
 *
 * WAL checkpoints (copying the WAL into the file; nothing to do with the signed
 * checkpoints of the log) run on a thread of their own (sqlite_checkpoint.c), not inside
 * the COMMIT that fills the WAL: they add two fsyncs to a stopped event loop otherwise.
 *
 * WAL mode lets parleyctl search and verify while parleyd appends. The busy timeout is
 * short: parleyd waits on it with its event loop stopped, and in strict mode a store that
 * stays locked must turn into an error for the senders, not a frozen server.
 *
 * Schema: versioned migrations in schema_version, as in store_sqlite.c; a later version
 * appends a migration and never edits an applied one (version 2 added purge checkpoints
 * and spool replay markers; a read-only handle on a version 1 file sees neither).
 * docs/compliance.md documents it for auditors. The file is created 0600 (it holds
 * message content). */
#include "clog_backend.h"
#include "sqlite_checkpoint.h"
#include "sqlite_db.h"

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Milliseconds to wait for another connection's lock before failing the batch. */
#define CLOG_BUSY_MS 2000

/* ---- schema ---- */

static const char *const migrations[] = {
    /* version 1: messages, audit events, checkpoints */
    "CREATE TABLE messages ("
    "  seq INTEGER PRIMARY KEY NOT NULL,"
    "  ts_us INTEGER NOT NULL,"
    "  time TEXT GENERATED ALWAYS AS"
    "    (strftime('%Y-%m-%dT%H:%M:%fZ', ts_us / 1000000.0, 'unixepoch')) VIRTUAL,"
    "  kind TEXT NOT NULL,"
    "  sender TEXT,"
    "  recipient TEXT,"
    "  msg_id TEXT,"
    "  thread TEXT,"
    "  type TEXT,"
    "  subject TEXT,"
    "  body TEXT,"
    "  encrypted INTEGER NOT NULL DEFAULT 0,"
    "  enc_ns TEXT,"
    "  file_name TEXT,"
    "  file_size INTEGER,"
    "  file_type TEXT,"
    "  file_sha256 TEXT,"
    "  outcome TEXT,"
    "  verdict TEXT,"
    "  reason TEXT,"
    "  stanza TEXT,"
    "  prev_hash BLOB NOT NULL,"
    "  hash BLOB NOT NULL);"
    "CREATE INDEX messages_ts ON messages(ts_us);"
    "CREATE INDEX messages_sender ON messages(sender, ts_us);"
    "CREATE INDEX messages_recipient ON messages(recipient, ts_us);"
    "CREATE INDEX messages_hash ON messages(hash);"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY NOT NULL,"
    "  ts_us INTEGER NOT NULL,"
    "  time TEXT GENERATED ALWAYS AS"
    "    (strftime('%Y-%m-%dT%H:%M:%fZ', ts_us / 1000000.0, 'unixepoch')) VIRTUAL,"
    "  actor TEXT,"
    "  event TEXT NOT NULL,"
    "  target TEXT,"
    "  peer TEXT,"
    "  detail TEXT,"
    "  prev_hash BLOB NOT NULL,"
    "  hash BLOB NOT NULL);"
    "CREATE INDEX audit_ts ON audit(ts_us);"
    "CREATE INDEX audit_actor ON audit(actor, ts_us);"
    "CREATE INDEX audit_target ON audit(target, ts_us);"
    "CREATE INDEX audit_hash ON audit(hash);"
    "CREATE TABLE checkpoints ("
    "  chain TEXT NOT NULL CHECK (chain IN ('messages', 'audit')),"
    "  seq INTEGER NOT NULL,"
    "  ts_us INTEGER NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  signature BLOB NOT NULL,"
    "  signer TEXT NOT NULL,"
    "  PRIMARY KEY (chain, seq));",
    /* version 2: purge checkpoints (retention) and spool replay markers */
    "CREATE TABLE purges ("
    "  chain TEXT NOT NULL CHECK (chain IN ('messages', 'audit')),"
    "  seq INTEGER NOT NULL,"
    "  ts_us INTEGER NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  signature BLOB NOT NULL,"
    "  signer TEXT NOT NULL,"
    "  PRIMARY KEY (chain, seq));"
    "CREATE TABLE spool_replay ("
    "  spool_id TEXT PRIMARY KEY NOT NULL,"
    "  last_entry INTEGER NOT NULL,"
    "  ts_us INTEGER NOT NULL);",
    /* version 3: a message sent again after a failover (same sender, origin-id and
     * content: clog_record_dedupe_key) is recorded once; NULL (no origin-id) never clashes */
    ("ALTER TABLE messages ADD COLUMN dedupe_key TEXT;"
     "CREATE UNIQUE INDEX messages_dedupe ON messages(dedupe_key);"),
};
#define SCHEMA_VERSION ((int)ARRAY_LEN(migrations))

/* ---- statements ---- */

enum sid {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_HEAD_MESSAGES,
    S_HEAD_AUDIT,
    S_LAST_CP,
    S_INSERT_RECORD,
    S_INSERT_AUDIT,
    S_INSERT_CP,
    S_SCAN_CP,
    S_FIND_MESSAGES,
    S_FIND_AUDIT,
    S_PURGE_RANGE,
    S_RECORD_HASH,
    S_DELETE_RECORDS,
    S_INSERT_PURGE,
    S_LAST_PURGE,
    S_SCAN_PURGES,
    S_GET_MARKER,
    S_SET_MARKER,
    S_COUNT
};

#define RECORD_COLUMNS                                                                     \
    "seq, ts_us, kind, sender, recipient, msg_id, thread, type, subject, body, encrypted,"  \
    " enc_ns, file_name, file_size, file_type, file_sha256, outcome, verdict, reason,"      \
    " stanza, prev_hash, hash"
#define AUDIT_COLUMNS "seq, ts_us, actor, event, target, peer, detail, prev_hash, hash"

static const char *const sql_text[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_HEAD_MESSAGES] = "SELECT seq, hash FROM messages ORDER BY seq DESC LIMIT 1",
    [S_HEAD_AUDIT] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [S_LAST_CP] = "SELECT coalesce(max(seq), 0) FROM checkpoints WHERE chain = ?1",
    [S_INSERT_RECORD] = "INSERT INTO messages(" RECORD_COLUMNS ", dedupe_key) VALUES (?1, ?2, ?3, ?4, ?5,"
                        " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
                        " ?20, ?21, ?22, ?23) ON CONFLICT (dedupe_key) DO NOTHING",
    [S_INSERT_AUDIT] = "INSERT INTO audit(" AUDIT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
                       " ?7, ?8, ?9)",
    [S_INSERT_CP] = "INSERT INTO checkpoints(chain, seq, ts_us, hash, signature, signer)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_SCAN_CP] = "SELECT seq, ts_us, hash, signature, signer FROM checkpoints"
                  " WHERE chain = ?1 ORDER BY seq",
    [S_FIND_MESSAGES] = "SELECT seq FROM messages WHERE hash = ?1 LIMIT 1",
    [S_FIND_AUDIT] = "SELECT seq FROM audit WHERE hash = ?1 LIMIT 1",
    [S_PURGE_RANGE] = "SELECT min(seq), coalesce((SELECT min(seq) FROM messages WHERE ts_us >= ?1)"
                      " - 1, max(seq)) FROM messages",
    [S_RECORD_HASH] = "SELECT hash FROM messages WHERE seq = ?1",
    [S_DELETE_RECORDS] = "DELETE FROM messages WHERE seq <= ?1",
    [S_INSERT_PURGE] = "INSERT INTO purges(chain, seq, ts_us, hash, signature, signer)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_LAST_PURGE] = "SELECT seq, hash FROM purges WHERE chain = ?1 ORDER BY seq DESC LIMIT 1",
    [S_SCAN_PURGES] = "SELECT seq, ts_us, hash, signature, signer FROM purges"
                      " WHERE chain = ?1 ORDER BY seq",
    [S_GET_MARKER] = "SELECT last_entry FROM spool_replay WHERE spool_id = ?1",
    [S_SET_MARKER] = "INSERT INTO spool_replay(spool_id, last_entry, ts_us) VALUES (?1, ?2, ?3)"
                     " ON CONFLICT (spool_id) DO UPDATE SET last_entry = excluded.last_entry,"
                     " ts_us = excluded.ts_us",
};

typedef struct sqlite_clog {
    struct clog base; /* first: clog.c sees only this */
    sqlite3 *db;
    char *path;
    int version; /* schema version of the file (a read-only handle cannot migrate it) */
    sqlite_ckpt *ckpt; /* WAL checkpoints; NULL when read-only */
    sqlite3_stmt *stmts[S_COUNT];
} sqlite_clog;

static sqlite_clog *sc_of(clog *c)
{
    return (sqlite_clog *)c;
}

static int db_error(sqlite_clog *s, const char *what)
{
    return clog_set_error(&s->base, "compliance store %s: %s: %s", s->path, what,
                          sqlite3_errmsg(s->db));
}

static sqlite3_stmt *stmt(sqlite_clog *s, enum sid id)
{
    if (!s->stmts[id] && sqlite3_prepare_v3(s->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT,
                                            &s->stmts[id], NULL) != SQLITE_OK) {
        db_error(s, "prepare");
        s->stmts[id] = NULL;
    }
    return s->stmts[id];
}

static void finish(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int exec_stmt(sqlite_clog *s, enum sid id, const char *what)
{
    sqlite3_stmt *st = stmt(s, id);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    finish(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return db_error(s, what);
    return 0;
}

static void bind_str(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? xstrdup((const char *)t) : NULL;
}

/* A stored hash; anything that is not 32 bytes is copied as far as it goes (a tampered
 * value then simply fails to match). */
static void col_hash(sqlite3_stmt *st, int col, unsigned char out[CLOG_HASH_LEN])
{
    memset(out, 0, CLOG_HASH_LEN);
    const void *b = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (b && n > 0)
        memcpy(out, b, n < CLOG_HASH_LEN ? (size_t)n : CLOG_HASH_LEN);
    if (n != CLOG_HASH_LEN)
        out[0] ^= 0x5a; /* never equal to a genuine hash by accident of truncation */
}

/* ---- open / close ---- */

static void sqlite_close(clog *c)
{
    sqlite_clog *s = sc_of(c);
    sqlite_ckpt_stop(s->ckpt);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->stmts[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_warn("compliance store %s: closing: %s", s->path, sqlite3_errmsg(s->db));
    free(s->path);
    free(s);
}

/* The schema version of a file before any migration: 0 for a new or empty file. */
static int found_version(sqlite3 *db, int *v, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'schema_version'", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "read schema_version: %s", sqlite3_errmsg(db));
        return -1;
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) {
        *v = 0;
        return 0;
    }
    if (rc != SQLITE_ROW) {
        snprintf(err, errlen, "read schema_version: %s", sqlite3_errmsg(db));
        return -1;
    }
    return sqlite_db_schema_version(db, v, err, errlen);
}

static clog *sqlite_open(const char *path, int readonly, char *err, size_t errlen)
{
    if (!*path || strcmp(path, ":memory:") == 0) {
        snprintf(err, errlen, "compliance store sqlite: needs a file path (an archive in "
                              "memory would prove nothing)");
        return NULL;
    }
    if (readonly) {
        if (access(path, R_OK) < 0) {
            snprintf(err, errlen, "compliance store %.200s: %s", path, strerror(errno));
            return NULL;
        }
    } else if (sqlite_db_create_private(path, err, errlen) < 0) {
        return NULL;
    }
    sqlite3 *db = NULL;
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "compliance store: cannot open %.200s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, CLOG_BUSY_MS);

    char what[300];
    snprintf(what, sizeof what, "compliance store %.200s", path);
    int v = SCHEMA_VERSION, found = 0;
    if (readonly) {
        if (sqlite_db_schema_version(db, &v, err, errlen) < 0)
            goto fail;
        if (v > SCHEMA_VERSION) {
            snprintf(err, errlen, "%s: schema version %d is newer than this program supports "
                                  "(%d); upgrade Parley", what, v, SCHEMA_VERSION);
            goto fail;
        }
        if (v < 1) {
            snprintf(err, errlen, "%s: not a compliance archive (schema version %d)", what, v);
            goto fail;
        }
        found = v;
    } else {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW) {
            snprintf(err, errlen, "%s: enabling WAL: %s", what, sqlite3_errmsg(db));
            sqlite3_finalize(st);
            goto fail;
        }
        const unsigned char *mode = sqlite3_column_text(st, 0);
        if (!mode || strcmp((const char *)mode, "wal") != 0)
            log_warn("%s: journal mode is %s, not wal", what, mode ? (const char *)mode : "?");
        sqlite3_finalize(st);
        /* FULL: a commit has reached the disk when COMMIT returns. */
        if (sqlite_db_exec(db, "PRAGMA synchronous=FULL", what, err, errlen) < 0 ||
            found_version(db, &found, err, errlen) < 0 ||
            sqlite_db_migrate(db, path, "compliance store", migrations, SCHEMA_VERSION, err, errlen) < 0)
            goto fail;
    }
    sqlite_clog *s = xcalloc(1, sizeof *s);
    s->db = db;
    s->path = xstrdup(path);
    s->version = v;
    s->base.schema_found = found;
    s->base.schema_current = v;
    s->base.schema_supported = SCHEMA_VERSION;
    if (!readonly)
        s->ckpt = sqlite_ckpt_start(db, "compliance store", SQLITE_CKPT_MAX_WAL_BYTES);
    return &s->base;
fail:
    sqlite3_close(db);
    return NULL;
}

/* ---- transactions ---- */

static int sqlite_begin(clog *c)
{
    return exec_stmt(sc_of(c), S_BEGIN, "begin");
}

static int sqlite_commit(clog *c)
{
    return exec_stmt(sc_of(c), S_COMMIT, "commit");
}

static void sqlite_rollback(clog *c)
{
    sqlite_clog *s = sc_of(c);
    if (sqlite3_get_autocommit(s->db))
        return;
    char keep[CLOG_ERRLEN];
    snprintf(keep, sizeof keep, "%s", c->error); /* keep the reason of the failure */
    exec_stmt(s, S_ROLLBACK, "rollback");
    snprintf(c->error, sizeof c->error, "%s", keep);
}

/* ---- writes ---- */

static int sqlite_head(clog *c, clog_chain chain, int64_t *seq, unsigned char hash[CLOG_HASH_LEN])
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = stmt(s, chain == CLOG_AUDIT ? S_HEAD_AUDIT : S_HEAD_MESSAGES);
    if (!st)
        return -1;
    *seq = 0;
    memset(hash, 0, CLOG_HASH_LEN);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(st, 0);
        col_hash(st, 1, hash);
    }
    finish(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(s, "reading the chain head");
    return 0;
}

static int sqlite_last_checkpoint(clog *c, clog_chain chain, int64_t *seq)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = stmt(s, S_LAST_CP);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, clog_chain_name(chain), -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    finish(st);
    if (rc != SQLITE_ROW)
        return db_error(s, "reading the last checkpoint");
    return 0;
}

static int step_insert(sqlite_clog *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_DONE ? 0 : db_error(s, what);
    finish(st);
    return r;
}

static int sqlite_insert_record(clog *c, const clog_record *r)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = stmt(s, S_INSERT_RECORD);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, r->seq);
    sqlite3_bind_int64(st, 2, r->ts_us);
    bind_str(st, 3, r->kind);
    bind_str(st, 4, r->sender);
    bind_str(st, 5, r->recipient);
    bind_str(st, 6, r->msg_id);
    bind_str(st, 7, r->thread);
    bind_str(st, 8, r->type);
    bind_str(st, 9, r->subject);
    bind_str(st, 10, r->body);
    sqlite3_bind_int(st, 11, r->encrypted ? 1 : 0);
    bind_str(st, 12, r->enc_ns);
    bind_str(st, 13, r->file_name);
    if (r->file_size >= 0)
        sqlite3_bind_int64(st, 14, r->file_size);
    else
        sqlite3_bind_null(st, 14);
    bind_str(st, 15, r->file_type);
    bind_str(st, 16, r->file_sha256);
    bind_str(st, 17, r->outcome);
    bind_str(st, 18, r->verdict);
    bind_str(st, 19, r->reason);
    bind_str(st, 20, r->stanza);
    sqlite3_bind_blob(st, 21, r->prev_hash, CLOG_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 22, r->hash, CLOG_HASH_LEN, SQLITE_STATIC);
    char key[CLOG_DEDUPE_KEY_LEN];
    bind_str(st, 23, clog_record_dedupe_key(r, key) == 0 ? key : NULL);
    if (step_insert(s, st, "inserting a message record") < 0)
        return -1;
    return sqlite3_changes(sqlite3_db_handle(st)) == 0 ? 1 : 0; /* a copy: not stored */
}

static int sqlite_insert_audit(clog *c, const clog_audit *a)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = stmt(s, S_INSERT_AUDIT);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, a->seq);
    sqlite3_bind_int64(st, 2, a->ts_us);
    bind_str(st, 3, a->actor);
    bind_str(st, 4, a->event);
    bind_str(st, 5, a->target);
    bind_str(st, 6, a->peer);
    bind_str(st, 7, a->detail);
    sqlite3_bind_blob(st, 8, a->prev_hash, CLOG_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 9, a->hash, CLOG_HASH_LEN, SQLITE_STATIC);
    return step_insert(s, st, "inserting an audit event");
}

/* A signed checkpoint into the table of statement id (checkpoints or purges). */
static int insert_cp(sqlite_clog *s, enum sid id, const clog_checkpoint *cp, const char *what)
{
    sqlite3_stmt *st = stmt(s, id);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, clog_chain_name(cp->chain), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, cp->seq);
    sqlite3_bind_int64(st, 3, cp->ts_us);
    sqlite3_bind_blob(st, 4, cp->hash, CLOG_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, cp->sig, (int)cp->siglen, SQLITE_STATIC);
    bind_str(st, 6, cp->signer);
    return step_insert(s, st, what);
}

static int sqlite_insert_checkpoint(clog *c, const clog_checkpoint *cp)
{
    return insert_cp(sc_of(c), S_INSERT_CP, cp, "inserting a checkpoint");
}

/* ---- reads ---- */

/* WHERE clauses for a filter. Parameters are numbered: ?1 from, ?2 to, ?3 jid, ?4 text,
 * ?5 since, ?6 until, ?7 limit. A bare JID matches every resource of it: the range
 * [jid + "/", jid + "0") is exactly the strings that start with jid + "/" ('0' follows
 * '/'), and it can use the index. */
static void add_jid_match(buf *sql, const char *col, int param, const char *jid)
{
    if (strchr(jid, '/'))
        buf_appendf(sql, "%s = ?%d", col, param);
    else
        buf_appendf(sql, "(%s = ?%d OR (%s >= ?%d || '/' AND %s < ?%d || '0'))", col, param, col,
                    param, col, param);
}

static sqlite3_stmt *prepare_scan(sqlite_clog *s, const char *table, const char *columns,
                                  const char *from_col, const char *to_col, const char *text_col,
                                  const clog_filter *f)
{
    buf sql;
    buf_init(&sql);
    buf_appendf(&sql, "SELECT %s FROM %s WHERE 1", columns, table);
    if (f && f->from) {
        buf_append_str(&sql, " AND ");
        add_jid_match(&sql, from_col, 1, f->from);
    }
    if (f && f->to) {
        buf_append_str(&sql, " AND ");
        add_jid_match(&sql, to_col, 2, f->to);
    }
    if (f && f->jid) {
        buf_append_str(&sql, " AND (");
        add_jid_match(&sql, from_col, 3, f->jid);
        buf_append_str(&sql, " OR ");
        add_jid_match(&sql, to_col, 3, f->jid);
        buf_append_str(&sql, ")");
    }
    if (f && f->text)
        buf_appendf(&sql, " AND instr(lower(%s), lower(?4)) > 0", text_col);
    if (f && f->since_us)
        buf_append_str(&sql, " AND ts_us >= ?5");
    if (f && f->until_us)
        buf_append_str(&sql, " AND ts_us < ?6");
    buf_append_str(&sql, " ORDER BY seq");
    if (f && f->limit > 0)
        buf_append_str(&sql, " LIMIT ?7");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql.data, -1, &st, NULL) != SQLITE_OK) {
        db_error(s, "preparing a search");
        st = NULL;
    } else if (f) {
        if (f->from)
            sqlite3_bind_text(st, 1, f->from, -1, SQLITE_STATIC);
        if (f->to)
            sqlite3_bind_text(st, 2, f->to, -1, SQLITE_STATIC);
        if (f->jid)
            sqlite3_bind_text(st, 3, f->jid, -1, SQLITE_STATIC);
        if (f->text)
            sqlite3_bind_text(st, 4, f->text, -1, SQLITE_STATIC);
        if (f->since_us)
            sqlite3_bind_int64(st, 5, f->since_us);
        if (f->until_us)
            sqlite3_bind_int64(st, 6, f->until_us);
        if (f->limit > 0)
            sqlite3_bind_int64(st, 7, f->limit);
    }
    buf_free(&sql);
    return st;
}

static int sqlite_scan_records(clog *c, const clog_filter *f,
                               int (*fn)(void *ud, const clog_record *r), void *ud)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st =
        prepare_scan(s, "messages", RECORD_COLUMNS, "sender", "recipient", "body", f);
    if (!st)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        clog_record r;
        memset(&r, 0, sizeof r);
        r.seq = sqlite3_column_int64(st, 0);
        r.ts_us = sqlite3_column_int64(st, 1);
        r.kind = col_dup(st, 2);
        r.sender = col_dup(st, 3);
        r.recipient = col_dup(st, 4);
        r.msg_id = col_dup(st, 5);
        r.thread = col_dup(st, 6);
        r.type = col_dup(st, 7);
        r.subject = col_dup(st, 8);
        r.body = col_dup(st, 9);
        r.encrypted = sqlite3_column_int(st, 10);
        r.enc_ns = col_dup(st, 11);
        r.file_name = col_dup(st, 12);
        r.file_size =
            sqlite3_column_type(st, 13) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 13);
        r.file_type = col_dup(st, 14);
        r.file_sha256 = col_dup(st, 15);
        r.outcome = col_dup(st, 16);
        r.verdict = col_dup(st, 17);
        r.reason = col_dup(st, 18);
        r.stanza = col_dup(st, 19);
        col_hash(st, 20, r.prev_hash);
        col_hash(st, 21, r.hash);
        int stop = fn(ud, &r);
        clog_record_clear(&r);
        if (stop) {
            rc = SQLITE_DONE;
            break;
        }
    }
    int r = rc == SQLITE_DONE ? 0 : db_error(s, "reading message records");
    sqlite3_finalize(st);
    return r;
}

static int sqlite_scan_audit(clog *c, const clog_filter *f,
                             int (*fn)(void *ud, const clog_audit *a), void *ud)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = prepare_scan(s, "audit", AUDIT_COLUMNS, "actor", "target", "detail", f);
    if (!st)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        clog_audit a;
        memset(&a, 0, sizeof a);
        a.seq = sqlite3_column_int64(st, 0);
        a.ts_us = sqlite3_column_int64(st, 1);
        a.actor = col_dup(st, 2);
        a.event = col_dup(st, 3);
        a.target = col_dup(st, 4);
        a.peer = col_dup(st, 5);
        a.detail = col_dup(st, 6);
        col_hash(st, 7, a.prev_hash);
        col_hash(st, 8, a.hash);
        int stop = fn(ud, &a);
        clog_audit_clear(&a);
        if (stop) {
            rc = SQLITE_DONE;
            break;
        }
    }
    int r = rc == SQLITE_DONE ? 0 : db_error(s, "reading audit events");
    sqlite3_finalize(st);
    return r;
}

static int scan_cp_table(sqlite_clog *s, enum sid id, clog_chain chain,
                         int (*fn)(void *ud, const clog_checkpoint *cp), void *ud)
{
    sqlite3_stmt *st = stmt(s, id);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, clog_chain_name(chain), -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        clog_checkpoint cp;
        memset(&cp, 0, sizeof cp);
        cp.chain = chain;
        cp.seq = sqlite3_column_int64(st, 0);
        cp.ts_us = sqlite3_column_int64(st, 1);
        col_hash(st, 2, cp.hash);
        /* Borrowed from the statement for the duration of the call. */
        cp.sig = (unsigned char *)sqlite3_column_blob(st, 3);
        cp.siglen = (size_t)sqlite3_column_bytes(st, 3);
        cp.signer = (char *)sqlite3_column_text(st, 4);
        if (fn(ud, &cp)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    finish(st);
    return rc == SQLITE_DONE ? 0 : db_error(s, "reading checkpoints");
}

static int sqlite_scan_checkpoints(clog *c, clog_chain chain,
                                   int (*fn)(void *ud, const clog_checkpoint *cp), void *ud)
{
    return scan_cp_table(sc_of(c), S_SCAN_CP, chain, fn, ud);
}

static int sqlite_find_hash(clog *c, clog_chain chain, const unsigned char hash[CLOG_HASH_LEN],
                            int64_t *seq)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = stmt(s, chain == CLOG_AUDIT ? S_FIND_AUDIT : S_FIND_MESSAGES);
    if (!st)
        return -1;
    sqlite3_bind_blob(st, 1, hash, CLOG_HASH_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    finish(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(s, "looking up a hash");
    return 0;
}

/* ---- retention ---- */

static int sqlite_purge_range(clog *c, int64_t before_us, int64_t *first, int64_t *last)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = stmt(s, S_PURGE_RANGE);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, before_us);
    int rc = sqlite3_step(st);
    *first = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0; /* NULL (empty) is 0 */
    *last = rc == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
    finish(st);
    if (rc != SQLITE_ROW)
        return db_error(s, "finding the records to purge");
    return 0;
}

static int sqlite_record_hash(clog *c, int64_t seq, unsigned char hash[CLOG_HASH_LEN], int *found)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = stmt(s, S_RECORD_HASH);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, seq);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found)
        col_hash(st, 0, hash);
    finish(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(s, "reading a record's hash");
    return 0;
}

static int sqlite_delete_records(clog *c, int64_t last)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = stmt(s, S_DELETE_RECORDS);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, last);
    return step_insert(s, st, "deleting purged records");
}

static int sqlite_insert_purge(clog *c, const clog_checkpoint *cp)
{
    return insert_cp(sc_of(c), S_INSERT_PURGE, cp, "inserting a purge checkpoint");
}

static int sqlite_last_purge(clog *c, clog_chain chain, int64_t *seq,
                             unsigned char hash[CLOG_HASH_LEN])
{
    sqlite_clog *s = sc_of(c);
    *seq = 0;
    memset(hash, 0, CLOG_HASH_LEN);
    if (s->version < 2)
        return 0; /* a version 1 file opened read-only: it has never been purged */
    sqlite3_stmt *st = stmt(s, S_LAST_PURGE);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, clog_chain_name(chain), -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(st, 0);
        col_hash(st, 1, hash);
    }
    finish(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(s, "reading the last purge checkpoint");
    return 0;
}

static int sqlite_scan_purges(clog *c, clog_chain chain,
                              int (*fn)(void *ud, const clog_checkpoint *cp), void *ud)
{
    sqlite_clog *s = sc_of(c);
    if (s->version < 2)
        return 0;
    return scan_cp_table(s, S_SCAN_PURGES, chain, fn, ud);
}

/* ---- replay markers ---- */

static int sqlite_get_marker(clog *c, const char *source, int64_t *last)
{
    sqlite_clog *s = sc_of(c);
    *last = 0;
    if (s->version < 2)
        return 0;
    sqlite3_stmt *st = stmt(s, S_GET_MARKER);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *last = sqlite3_column_int64(st, 0);
    finish(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(s, "reading a replay marker");
    return 0;
}

static int sqlite_set_marker(clog *c, const char *source, int64_t last, int64_t ts_us)
{
    sqlite_clog *s = sc_of(c);
    sqlite3_stmt *st = stmt(s, S_SET_MARKER);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, last);
    sqlite3_bind_int64(st, 3, ts_us);
    return step_insert(s, st, "writing a replay marker");
}

const struct clog_ops clog_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .head = sqlite_head,
    .last_checkpoint = sqlite_last_checkpoint,
    .insert_record = sqlite_insert_record,
    .insert_audit = sqlite_insert_audit,
    .insert_checkpoint = sqlite_insert_checkpoint,
    .scan_records = sqlite_scan_records,
    .scan_audit = sqlite_scan_audit,
    .scan_checkpoints = sqlite_scan_checkpoints,
    .find_hash = sqlite_find_hash,
    .purge_range = sqlite_purge_range,
    .record_hash = sqlite_record_hash,
    .delete_records = sqlite_delete_records,
    .insert_purge = sqlite_insert_purge,
    .last_purge = sqlite_last_purge,
    .scan_purges = sqlite_scan_purges,
    .get_marker = sqlite_get_marker,
    .set_marker = sqlite_set_marker,
};
