/* clog_pg.c - the PostgreSQL back end of the compliance log (clog_backend.h), on libpq.
 *
 * Same logical schema as clog_sqlite.c (same table and column names, so auditors' queries
 * carry over), for archives that several parleyd nodes share or that must live on a
 * database server. What matters here:
 *
 *   - Serialised appenders: every write transaction takes one transaction-level advisory
 *     lock before it reads the chain head, so two writers (nodes, parleyctl) take turns
 *     and can never fork the chain. lock_timeout bounds the wait: parleyd waits with its
 *     event loop stopped, and a store that stays locked must become an error for the
 *     senders (strict mode) or the spool (spool mode), not a frozen server.
 *   - Durable commit: synchronous_commit is on for this session whatever the server,
 *     database or role says, so COMMIT returns only after the WAL is flushed.
 *   - Reconnect: a dead connection found by the first statement of a call made outside a
 *     transaction (BEGIN, or a read) is reset once and the statement retried; inside a
 *     transaction the call fails and the transaction is gone, and the next one reconnects.
 *   - Bounded: connect_timeout, TCP keepalives and user timeout unless the URI sets them;
 *     statement_timeout unless the server or role sets one.
 *   - Reads go through a cursor fetched in slices, so verifying a large archive does not
 *     hold it in memory, and the caller's callback may run other statements meanwhile.
 *     Outside a write transaction a read runs in a read-only REPEATABLE READ transaction:
 *     one snapshot per read.
 *   - Messages never show the password: "user@host:port/db" only.
 *
 * Schema: versioned migrations in compliance_schema_version (not schema_version: the
 * account store may share the database), applied under an advisory lock by the first
 * writable open; a read-only open (parleyctl compliance ...) creates nothing and runs in
 * read-only transactions. Later versions append; an applied one is never edited. */
#include "clog_backend.h"
#include "pg_db.h"

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PG_CONNECT_TIMEOUT "5"       /* seconds */
#define PG_TCP_USER_TIMEOUT "10000"  /* ms an unacknowledged write may wait */
#define PG_STATEMENT_TIMEOUT "20s"
#define PG_LOCK_TIMEOUT "2s"         /* the appenders' lock, as SQLite's busy timeout */
#define PG_IDLE_TX_TIMEOUT "60s"
/* pg_advisory_xact_lock keys: "clogmig" and "clogapp" in ASCII (the account store uses
 * another key for its migrations). */
#define PG_MIGRATION_LOCK "28549237223221607"
#define PG_APPEND_LOCK "28549237223223408"
/* Rows per FETCH of a scan. */
#define PG_FETCH_ROWS 500

/* ---- schema ---- */

/* The SQLite schema's equivalent. Text columns that are compared as ranges (JIDs) are
 * COLLATE "C", so a bare JID's range [jid/, jid0) is byte order whatever the database's
 * locale, and the indexes serve it. `time` is the UTC timestamp of ts_us (not hashed). */
static const char *const migrations[] = {
    /* version 1: messages, audit events, checkpoints, purge checkpoints, spool markers */
    "CREATE TABLE messages ("
    "  seq BIGINT PRIMARY KEY NOT NULL,"
    "  ts_us BIGINT NOT NULL,"
    "  time TIMESTAMP GENERATED ALWAYS AS"
    "    (TIMESTAMP '1970-01-01' + ts_us * INTERVAL '1 microsecond') STORED,"
    "  kind TEXT NOT NULL,"
    "  sender TEXT COLLATE \"C\","
    "  recipient TEXT COLLATE \"C\","
    "  msg_id TEXT,"
    "  thread TEXT,"
    "  type TEXT,"
    "  subject TEXT,"
    "  body TEXT,"
    "  encrypted SMALLINT NOT NULL DEFAULT 0,"
    "  enc_ns TEXT,"
    "  file_name TEXT,"
    "  file_size BIGINT,"
    "  file_type TEXT,"
    "  file_sha256 TEXT,"
    "  outcome TEXT,"
    "  verdict TEXT,"
    "  reason TEXT,"
    "  stanza TEXT,"
    "  prev_hash BYTEA NOT NULL,"
    "  hash BYTEA NOT NULL);"
    "CREATE INDEX messages_ts ON messages(ts_us);"
    "CREATE INDEX messages_sender ON messages(sender, ts_us);"
    "CREATE INDEX messages_recipient ON messages(recipient, ts_us);"
    "CREATE INDEX messages_hash ON messages(hash);"
    "CREATE TABLE audit ("
    "  seq BIGINT PRIMARY KEY NOT NULL,"
    "  ts_us BIGINT NOT NULL,"
    "  time TIMESTAMP GENERATED ALWAYS AS"
    "    (TIMESTAMP '1970-01-01' + ts_us * INTERVAL '1 microsecond') STORED,"
    "  actor TEXT COLLATE \"C\","
    "  event TEXT NOT NULL,"
    "  target TEXT COLLATE \"C\","
    "  peer TEXT,"
    "  detail TEXT,"
    "  prev_hash BYTEA NOT NULL,"
    "  hash BYTEA NOT NULL);"
    "CREATE INDEX audit_ts ON audit(ts_us);"
    "CREATE INDEX audit_actor ON audit(actor, ts_us);"
    "CREATE INDEX audit_target ON audit(target, ts_us);"
    "CREATE INDEX audit_hash ON audit(hash);"
    "CREATE TABLE checkpoints ("
    "  chain TEXT NOT NULL CHECK (chain IN ('messages', 'audit')),"
    "  seq BIGINT NOT NULL,"
    "  ts_us BIGINT NOT NULL,"
    "  hash BYTEA NOT NULL,"
    "  signature BYTEA NOT NULL,"
    "  signer TEXT NOT NULL,"
    "  PRIMARY KEY (chain, seq));"
    "CREATE TABLE purges ("
    "  chain TEXT NOT NULL CHECK (chain IN ('messages', 'audit')),"
    "  seq BIGINT NOT NULL,"
    "  ts_us BIGINT NOT NULL,"
    "  hash BYTEA NOT NULL,"
    "  signature BYTEA NOT NULL,"
    "  signer TEXT NOT NULL,"
    "  PRIMARY KEY (chain, seq));"
    "CREATE TABLE spool_replay ("
    "  spool_id TEXT PRIMARY KEY NOT NULL,"
    "  last_entry BIGINT NOT NULL,"
    "  ts_us BIGINT NOT NULL);",
    /* version 2: a message sent again after a failover (same sender, origin-id and
     * content: clog_record_dedupe_key) is recorded once, whichever node it reached;
     * NULL (no origin-id) never clashes */
    ("ALTER TABLE messages ADD COLUMN dedupe_key TEXT;"
     "CREATE UNIQUE INDEX messages_dedupe ON messages(dedupe_key);"),
};
#define SCHEMA_VERSION ((int)ARRAY_LEN(migrations))

/* ---- statements ---- */

enum sid {
    S_BEGIN,
    S_LOCK,
    S_COMMIT,
    S_ROLLBACK,
    S_BEGIN_READ,
    S_HEAD_MESSAGES,
    S_HEAD_AUDIT,
    S_LAST_CP,
    S_INSERT_RECORD,
    S_INSERT_AUDIT,
    S_INSERT_CP,
    S_FIND_MESSAGES,
    S_FIND_AUDIT,
    S_PURGE_RANGE,
    S_RECORD_HASH,
    S_DELETE_RECORDS,
    S_INSERT_PURGE,
    S_LAST_PURGE,
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
    [S_BEGIN] = "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE",
    [S_LOCK] = "SELECT pg_advisory_xact_lock(" PG_APPEND_LOCK ")",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_BEGIN_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    [S_HEAD_MESSAGES] = "SELECT seq, hash FROM messages ORDER BY seq DESC LIMIT 1",
    [S_HEAD_AUDIT] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [S_LAST_CP] = "SELECT coalesce(max(seq), 0) FROM checkpoints WHERE chain = $1",
    [S_INSERT_RECORD] = "INSERT INTO messages(" RECORD_COLUMNS ", dedupe_key) VALUES ($1, $2, $3, $4, $5,"
                        " $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,"
                        " $20, $21, $22, $23) ON CONFLICT (dedupe_key) DO NOTHING RETURNING seq",
    [S_INSERT_AUDIT] = "INSERT INTO audit(" AUDIT_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6,"
                       " $7, $8, $9)",
    [S_INSERT_CP] = "INSERT INTO checkpoints(chain, seq, ts_us, hash, signature, signer)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
    [S_FIND_MESSAGES] = "SELECT seq FROM messages WHERE hash = $1 LIMIT 1",
    [S_FIND_AUDIT] = "SELECT seq FROM audit WHERE hash = $1 LIMIT 1",
    [S_PURGE_RANGE] = "SELECT coalesce(min(seq), 0), coalesce((SELECT min(seq) FROM messages"
                      " WHERE ts_us >= $1) - 1, max(seq), 0) FROM messages",
    [S_RECORD_HASH] = "SELECT hash FROM messages WHERE seq = $1",
    [S_DELETE_RECORDS] = "DELETE FROM messages WHERE seq <= $1",
    [S_INSERT_PURGE] = "INSERT INTO purges(chain, seq, ts_us, hash, signature, signer)"
                       " VALUES ($1, $2, $3, $4, $5, $6)",
    [S_LAST_PURGE] = "SELECT seq, hash FROM purges WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
    [S_GET_MARKER] = "SELECT last_entry FROM spool_replay WHERE spool_id = $1",
    [S_SET_MARKER] = "INSERT INTO spool_replay(spool_id, last_entry, ts_us) VALUES ($1, $2, $3)"
                     " ON CONFLICT (spool_id) DO UPDATE SET last_entry = excluded.last_entry,"
                     " ts_us = excluded.ts_us",
};

typedef struct pg_clog {
    struct clog base; /* first: clog.c sees only this */
    pg_db db;                        /* the connection; db.where names it in messages */
    int in_tx;                       /* a transaction is open (ours or a scan's) */
    unsigned cursors;                /* names scan cursors uniquely */
} pg_clog;

static pg_clog *pc_of(clog *c)
{
    return (pg_clog *)c;
}

/* The server's own message says what went wrong; what is only a short phrase. Never the
 * DETAIL line: it may quote a row, i.e. message content, into the log. */
static int pg_error(pg_clog *s, const char *what, const PGresult *res)
{
    char msg[CLOG_ERRLEN];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (PQstatus(s->db.conn) == CONNECTION_BAD || !primary) {
        pg_db_first_line(msg, sizeof msg, PQerrorMessage(s->db.conn));
        return clog_set_error(&s->base, "compliance store PostgreSQL %s: %s: %s%s", s->db.where,
                              what, PQstatus(s->db.conn) == CONNECTION_BAD ? "connection lost: " : "",
                              msg);
    }
    pg_db_first_line(msg, sizeof msg, primary);
    return clog_set_error(&s->base, "compliance store PostgreSQL %s: %s: %s", s->db.where, what,
                          msg);
}

/* Every op starts here. Outside a transaction a connection known to be bad is reset
 * now; one that turns out dead on the op's first statement is reset by run(). */
static int enter(pg_clog *s)
{
    return pg_db_call_start(&s->db, s->in_tx, s->base.error, sizeof s->base.error);
}

/* Parameters of one statement: text unless given as binary (bytea). */
#define MAX_PARAMS 24
typedef struct params {
    int n;
    const char *val[MAX_PARAMS];
    int len[MAX_PARAMS];
    int fmt[MAX_PARAMS];
    char num[MAX_PARAMS][24]; /* integers are formatted here */
} params;

static void p_text(params *p, const char *v)
{
    if (p->n >= MAX_PARAMS)
        abort(); /* a statement of this file with too many parameters: a bug */
    p->val[p->n] = v; /* NULL is SQL NULL */
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

static void p_int(params *p, int64_t v)
{
    if (p->n >= MAX_PARAMS)
        abort();
    snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)v);
    p_text(p, p->num[p->n]);
}

static void p_bin(params *p, const void *v, size_t len)
{
    if (p->n >= MAX_PARAMS)
        abort();
    p->val[p->n] = v;
    p->len[p->n] = (int)len;
    p->fmt[p->n] = 1;
    p->n++;
}

static int ok_status(const PGresult *res)
{
    ExecStatusType rs = PQresultStatus(res);
    return rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK;
}

/* Run prepared statement id with binary results; the result (PQclear it) or NULL after
 * clog_set_error. A dead connection is reset and the statement retried only outside a
 * transaction. */
static PGresult *run(pg_clog *s, enum sid id, const params *p, const char *what)
{
    static const params none = {0};
    if (!p)
        p = &none;
    PGresult *res;
    int rc = pg_db_run(&s->db, id, p->n, p->val, p->len, p->fmt, 1, !s->in_tx, &res,
                       s->base.error, sizeof s->base.error);
    if (rc == 0)
        return res;
    if (rc == -1)
        pg_error(s, what, res);
    PQclear(res);
    return NULL;
}

static int run_simple(pg_clog *s, enum sid id, const params *p, const char *what)
{
    PGresult *res = run(s, id, p, what);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* ---- binary result values ---- */

static int64_t get_int(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const unsigned char *b = (const unsigned char *)PQgetvalue(res, row, col);
    int len = PQgetlength(res, row, col);
    if (len != 2 && len != 4 && len != 8)
        return 0;
    uint64_t v = (b[0] & 0x80) ? UINT64_MAX : 0; /* sign extension */
    for (int i = 0; i < len; i++)
        v = v << 8 | b[i];
    return (int64_t)v;
}

static char *get_str(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return xstrndup(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

/* A stored hash; anything but 32 bytes is copied as far as it goes and marked, so a
 * tampered value fails to match rather than being read past. */
static void get_hash(const PGresult *res, int row, int col, unsigned char out[CLOG_HASH_LEN])
{
    memset(out, 0, CLOG_HASH_LEN);
    int n = PQgetisnull(res, row, col) ? 0 : PQgetlength(res, row, col);
    if (n > 0)
        memcpy(out, PQgetvalue(res, row, col), n < CLOG_HASH_LEN ? (size_t)n : CLOG_HASH_LEN);
    if (n != CLOG_HASH_LEN)
        out[0] ^= 0x5a;
}

/* ---- open / close ---- */

/* A server that does not fsync cannot keep a durable commit's promise: say so. */
static void warn_if_not_durable(PGconn *conn, const char *where)
{
    PGresult *res = PQexec(conn, "SELECT current_setting('fsync')");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        strcmp(PQgetvalue(res, 0, 0), "off") == 0)
        log_warn("compliance store PostgreSQL %s: the server runs with fsync = off: a commit "
                 "may be lost in a crash of the database server",
                 where);
    PQclear(res);
}

static void pg_close(clog *c)
{
    pg_clog *s = pc_of(c);
    pg_db_close(&s->db);
    free(s);
}

/* location: the URI after "postgresql:" or "postgres:" ("//user@host:port/db?..."). */
static clog *pg_open(const char *location, int readonly, char *err, size_t errlen)
{
    pg_db_conf conf = {
        .log_label = "compliance store",
        .err_label = "compliance store ",
        .application_name = "parley-compliance",
        .connect_timeout = PG_CONNECT_TIMEOUT,
        .tcp_user_timeout = PG_TCP_USER_TIMEOUT,
        .statement_timeout = PG_STATEMENT_TIMEOUT,
        .idle_tx_timeout = PG_IDLE_TX_TIMEOUT,
        .lock_timeout = PG_LOCK_TIMEOUT,
        /* An audit must not change what it inspects; a writer must not lose a commit. */
        .readonly = readonly,
        .durable = 1,
        .min_server_version = 120000, /* stored generated columns need 12 */
        .sql = sql_text,
        .nstmts = S_COUNT,
        .stmt_prefix = "parley_clog_",
    };
    pg_clog *s = xcalloc(1, sizeof *s);
    if (pg_db_open(&s->db, &conf, location, err, errlen) < 0)
        goto fail;
    /* Looked at first: a read-only open needs an archive it understands, and a migrating
     * one reports what was there (parleyctl compliance migrate); pg_db_migrate decides
     * again under its lock. */
    int v = 0;
    char why[CLOG_ERRLEN];
    if (pg_db_schema_version(s->db.conn, "compliance_schema_version", &v, why, sizeof why) < 0) {
        snprintf(err, errlen, "compliance store PostgreSQL %s: %s", s->db.where, why);
        goto fail;
    }
    if (readonly) {
        if (v < 1 || v > SCHEMA_VERSION) {
            snprintf(err, errlen,
                     v < 1 ? "compliance store PostgreSQL %s: no compliance archive in this "
                             "database (schema version %d)"
                           : "compliance store PostgreSQL %s: schema version %d is newer "
                             "than this program supports (%d); upgrade Parley",
                     s->db.where, v, SCHEMA_VERSION);
            goto fail;
        }
        s->base.schema_found = v;
    } else {
        s->base.schema_found = v < 0 ? 0 : v;
        if (pg_db_migrate(&s->db, "compliance_schema_version", PG_MIGRATION_LOCK, migrations,
                          SCHEMA_VERSION, err, errlen) < 0)
            goto fail;
        warn_if_not_durable(s->db.conn, s->db.where);
    }
    s->base.schema_current = readonly ? s->base.schema_found : SCHEMA_VERSION;
    s->base.schema_supported = SCHEMA_VERSION;
    return &s->base;
fail:
    pg_close(&s->base);
    return NULL;
}

/* ---- transactions ---- */

static void pg_rollback(clog *c)
{
    pg_clog *s = pc_of(c);
    if (s->in_tx && PQstatus(s->db.conn) == CONNECTION_OK &&
        PQtransactionStatus(s->db.conn) != PQTRANS_IDLE) {
        PQclear(PQexec(s->db.conn, "ROLLBACK")); /* the error of the failure is kept */
    }
    s->in_tx = 0;
}

static int pg_begin(clog *c)
{
    pg_clog *s = pc_of(c);
    if (enter(s) < 0 || run_simple(s, S_BEGIN, NULL, "begin") < 0)
        return -1;
    s->in_tx = 1;
    /* Appenders take turns from here to COMMIT: the head read next is the real one. */
    if (run_simple(s, S_LOCK, NULL, "waiting for the other appenders") < 0) {
        pg_rollback(c);
        return -1;
    }
    return 0;
}

static int pg_commit(clog *c)
{
    pg_clog *s = pc_of(c);
    PGresult *res = run(s, S_COMMIT, NULL, "commit");
    if (!res)
        return -1; /* the caller rolls back */
    /* COMMIT of a transaction that failed succeeds as a ROLLBACK. */
    int rolled_back = strcmp(PQcmdStatus(res), "ROLLBACK") == 0;
    PQclear(res);
    s->in_tx = 0;
    if (rolled_back)
        return clog_set_error(c, "compliance store PostgreSQL %s: the transaction was rolled back",
                              s->db.where);
    return 0;
}

/* ---- writes ---- */

static int pg_head(clog *c, clog_chain chain, int64_t *seq, unsigned char hash[CLOG_HASH_LEN])
{
    pg_clog *s = pc_of(c);
    *seq = 0;
    memset(hash, 0, CLOG_HASH_LEN);
    if (enter(s) < 0)
        return -1;
    PGresult *res =
        run(s, chain == CLOG_AUDIT ? S_HEAD_AUDIT : S_HEAD_MESSAGES, NULL, "reading the chain head");
    if (!res)
        return -1;
    if (PQntuples(res) > 0) {
        *seq = get_int(res, 0, 0);
        get_hash(res, 0, 1, hash);
    }
    PQclear(res);
    return 0;
}

static int pg_last_checkpoint(clog *c, clog_chain chain, int64_t *seq)
{
    pg_clog *s = pc_of(c);
    *seq = 0;
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_text(&p, clog_chain_name(chain));
    PGresult *res = run(s, S_LAST_CP, &p, "reading the last checkpoint");
    if (!res)
        return -1;
    if (PQntuples(res) > 0)
        *seq = get_int(res, 0, 0);
    PQclear(res);
    return 0;
}

static int pg_insert_record(clog *c, const clog_record *r)
{
    pg_clog *s = pc_of(c);
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_int(&p, r->seq);
    p_int(&p, r->ts_us);
    p_text(&p, r->kind);
    p_text(&p, r->sender);
    p_text(&p, r->recipient);
    p_text(&p, r->msg_id);
    p_text(&p, r->thread);
    p_text(&p, r->type);
    p_text(&p, r->subject);
    p_text(&p, r->body);
    p_int(&p, r->encrypted ? 1 : 0);
    p_text(&p, r->enc_ns);
    p_text(&p, r->file_name);
    if (r->file_size >= 0)
        p_int(&p, r->file_size);
    else
        p_text(&p, NULL);
    p_text(&p, r->file_type);
    p_text(&p, r->file_sha256);
    p_text(&p, r->outcome);
    p_text(&p, r->verdict);
    p_text(&p, r->reason);
    p_text(&p, r->stanza);
    p_bin(&p, r->prev_hash, CLOG_HASH_LEN);
    p_bin(&p, r->hash, CLOG_HASH_LEN);
    char key[CLOG_DEDUPE_KEY_LEN];
    p_text(&p, clog_record_dedupe_key(r, key) == 0 ? key : NULL);
    PGresult *res = run(s, S_INSERT_RECORD, &p, "inserting a message record");
    if (!res)
        return -1;
    int copy = PQntuples(res) == 0; /* nothing returned: a copy, not stored */
    PQclear(res);
    return copy;
}

static int pg_insert_audit(clog *c, const clog_audit *a)
{
    pg_clog *s = pc_of(c);
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_int(&p, a->seq);
    p_int(&p, a->ts_us);
    p_text(&p, a->actor);
    p_text(&p, a->event);
    p_text(&p, a->target);
    p_text(&p, a->peer);
    p_text(&p, a->detail);
    p_bin(&p, a->prev_hash, CLOG_HASH_LEN);
    p_bin(&p, a->hash, CLOG_HASH_LEN);
    return run_simple(s, S_INSERT_AUDIT, &p, "inserting an audit event");
}

static int insert_cp(pg_clog *s, enum sid id, const clog_checkpoint *cp, const char *what)
{
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_text(&p, clog_chain_name(cp->chain));
    p_int(&p, cp->seq);
    p_int(&p, cp->ts_us);
    p_bin(&p, cp->hash, CLOG_HASH_LEN);
    p_bin(&p, cp->sig, cp->siglen);
    p_text(&p, cp->signer);
    return run_simple(s, id, &p, what);
}

static int pg_insert_checkpoint(clog *c, const clog_checkpoint *cp)
{
    return insert_cp(pc_of(c), S_INSERT_CP, cp, "inserting a checkpoint");
}

/* ---- reads through a cursor ---- */

/* One row of a scan's result; non-zero stops the scan. */
typedef int (*row_fn)(const PGresult *res, int row, void *ctx);

/* Run sql (with p) through a cursor, calling fn on each row. Outside a write transaction,
 * inside a read-only REPEATABLE READ one of its own: one snapshot for the whole scan. */
static int scan(pg_clog *s, const char *sql, const params *p, const char *what, row_fn fn,
                void *ctx)
{
    if (enter(s) < 0)
        return -1;
    int own = !s->in_tx;
    if (own) {
        if (run_simple(s, S_BEGIN_READ, NULL, what) < 0)
            return -1;
        s->in_tx = 1;
    }
    char cursor[32], fetch[64], close_sql[48];
    snprintf(cursor, sizeof cursor, "parley_scan_%u", s->cursors++);
    snprintf(fetch, sizeof fetch, "FETCH %d FROM %s", PG_FETCH_ROWS, cursor);
    snprintf(close_sql, sizeof close_sql, "CLOSE %s", cursor);
    buf decl;
    buf_init(&decl);
    buf_appendf(&decl, "DECLARE %s NO SCROLL CURSOR FOR %s", cursor, sql);
    PGresult *res = PQexecParams(s->db.conn, decl.data, p->n, NULL, p->val, p->len, p->fmt, 1);
    buf_free(&decl);
    int rc = 0;
    if (!ok_status(res)) {
        rc = pg_error(s, what, res);
        PQclear(res);
        goto out;
    }
    PQclear(res);
    for (int stop = 0; !stop;) {
        res = PQexecParams(s->db.conn, fetch, 0, NULL, NULL, NULL, NULL, 1);
        if (!ok_status(res)) {
            rc = pg_error(s, what, res);
            PQclear(res);
            goto out;
        }
        int n = PQntuples(res);
        for (int i = 0; i < n && !stop; i++)
            stop = fn(res, i, ctx);
        PQclear(res);
        if (n < PG_FETCH_ROWS)
            break;
    }
    if (pg_db_exec(s->db.conn, close_sql, NULL, NULL, 0) < 0)
        rc = pg_error(s, what, NULL);
out:
    if (own) {
        if (rc == 0 && pg_db_exec(s->db.conn, "COMMIT", NULL, NULL, 0) < 0)
            rc = pg_error(s, what, NULL);
        if (rc < 0 && PQstatus(s->db.conn) == CONNECTION_OK &&
            PQtransactionStatus(s->db.conn) != PQTRANS_IDLE)
            PQclear(PQexec(s->db.conn, "ROLLBACK"));
        s->in_tx = 0;
    }
    return rc;
}

/* WHERE clauses of a filter, numbering parameters as they are added. A bare JID matches
 * every resource: [jid + "/", jid + "0") in byte order ('0' follows '/'). */
static void add_jid_match(buf *sql, params *p, const char *col, const char *jid)
{
    p_text(p, jid);
    int n = p->n;
    if (strchr(jid, '/'))
        buf_appendf(sql, "%s = $%d::text", col, n);
    else
        buf_appendf(sql,
                    "(%s = $%d::text OR (%s >= $%d::text || '/' COLLATE \"C\" AND"
                    " %s < $%d::text || '0' COLLATE \"C\"))",
                    col, n, col, n, col, n);
}

static void build_filter(buf *sql, params *p, const char *table, const char *columns,
                         const char *from_col, const char *to_col, const char *text_col,
                         const clog_filter *f)
{
    buf_appendf(sql, "SELECT %s FROM %s WHERE true", columns, table);
    if (f && f->from) {
        buf_append_str(sql, " AND ");
        add_jid_match(sql, p, from_col, f->from);
    }
    if (f && f->to) {
        buf_append_str(sql, " AND ");
        add_jid_match(sql, p, to_col, f->to);
    }
    if (f && f->jid) {
        buf_append_str(sql, " AND (");
        add_jid_match(sql, p, from_col, f->jid);
        buf_append_str(sql, " OR ");
        add_jid_match(sql, p, to_col, f->jid);
        buf_append_str(sql, ")");
    }
    if (f && f->text) {
        p_text(p, f->text);
        buf_appendf(sql, " AND strpos(lower(%s), lower($%d::text)) > 0", text_col, p->n);
    }
    if (f && f->since_us) {
        p_int(p, f->since_us);
        buf_appendf(sql, " AND ts_us >= $%d::bigint", p->n);
    }
    if (f && f->until_us) {
        p_int(p, f->until_us);
        buf_appendf(sql, " AND ts_us < $%d::bigint", p->n);
    }
    buf_append_str(sql, " ORDER BY seq");
    if (f && f->limit > 0) {
        p_int(p, f->limit);
        buf_appendf(sql, " LIMIT $%d::bigint", p->n);
    }
}

typedef struct record_ctx {
    int (*fn)(void *ud, const clog_record *r);
    void *ud;
} record_ctx;

static int record_row(const PGresult *res, int i, void *ctx)
{
    record_ctx *x = ctx;
    clog_record r;
    memset(&r, 0, sizeof r);
    r.seq = get_int(res, i, 0);
    r.ts_us = get_int(res, i, 1);
    r.kind = get_str(res, i, 2);
    r.sender = get_str(res, i, 3);
    r.recipient = get_str(res, i, 4);
    r.msg_id = get_str(res, i, 5);
    r.thread = get_str(res, i, 6);
    r.type = get_str(res, i, 7);
    r.subject = get_str(res, i, 8);
    r.body = get_str(res, i, 9);
    r.encrypted = (int)get_int(res, i, 10);
    r.enc_ns = get_str(res, i, 11);
    r.file_name = get_str(res, i, 12);
    r.file_size = PQgetisnull(res, i, 13) ? -1 : get_int(res, i, 13);
    r.file_type = get_str(res, i, 14);
    r.file_sha256 = get_str(res, i, 15);
    r.outcome = get_str(res, i, 16);
    r.verdict = get_str(res, i, 17);
    r.reason = get_str(res, i, 18);
    r.stanza = get_str(res, i, 19);
    get_hash(res, i, 20, r.prev_hash);
    get_hash(res, i, 21, r.hash);
    int stop = x->fn(x->ud, &r);
    clog_record_clear(&r);
    return stop;
}

static int pg_scan_records(clog *c, const clog_filter *f,
                           int (*fn)(void *ud, const clog_record *r), void *ud)
{
    buf sql;
    buf_init(&sql);
    params p = {0};
    build_filter(&sql, &p, "messages", RECORD_COLUMNS, "sender", "recipient", "body", f);
    record_ctx x = {fn, ud};
    int rc = scan(pc_of(c), sql.data, &p, "reading message records", record_row, &x);
    buf_free(&sql);
    return rc;
}

typedef struct audit_ctx {
    int (*fn)(void *ud, const clog_audit *a);
    void *ud;
} audit_ctx;

static int audit_row(const PGresult *res, int i, void *ctx)
{
    audit_ctx *x = ctx;
    clog_audit a;
    memset(&a, 0, sizeof a);
    a.seq = get_int(res, i, 0);
    a.ts_us = get_int(res, i, 1);
    a.actor = get_str(res, i, 2);
    a.event = get_str(res, i, 3);
    a.target = get_str(res, i, 4);
    a.peer = get_str(res, i, 5);
    a.detail = get_str(res, i, 6);
    get_hash(res, i, 7, a.prev_hash);
    get_hash(res, i, 8, a.hash);
    int stop = x->fn(x->ud, &a);
    clog_audit_clear(&a);
    return stop;
}

static int pg_scan_audit(clog *c, const clog_filter *f, int (*fn)(void *ud, const clog_audit *a),
                         void *ud)
{
    buf sql;
    buf_init(&sql);
    params p = {0};
    build_filter(&sql, &p, "audit", AUDIT_COLUMNS, "actor", "target", "detail", f);
    audit_ctx x = {fn, ud};
    int rc = scan(pc_of(c), sql.data, &p, "reading audit events", audit_row, &x);
    buf_free(&sql);
    return rc;
}

typedef struct cp_ctx {
    clog_chain chain;
    int (*fn)(void *ud, const clog_checkpoint *cp);
    void *ud;
} cp_ctx;

static int cp_row(const PGresult *res, int i, void *ctx)
{
    cp_ctx *x = ctx;
    clog_checkpoint cp;
    memset(&cp, 0, sizeof cp);
    cp.chain = x->chain;
    cp.seq = get_int(res, i, 0);
    cp.ts_us = get_int(res, i, 1);
    get_hash(res, i, 2, cp.hash);
    /* Borrowed from the result for the duration of the call. */
    cp.sig = (unsigned char *)PQgetvalue(res, i, 3);
    cp.siglen = (size_t)PQgetlength(res, i, 3);
    cp.signer = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
    return x->fn(x->ud, &cp);
}

static int scan_cp_table(clog *c, const char *table, clog_chain chain,
                         int (*fn)(void *ud, const clog_checkpoint *cp), void *ud)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT seq, ts_us, hash, signature, signer FROM %s WHERE chain = $1::text"
             " ORDER BY seq",
             table);
    params p = {0};
    p_text(&p, clog_chain_name(chain));
    cp_ctx x = {chain, fn, ud};
    return scan(pc_of(c), sql, &p, "reading checkpoints", cp_row, &x);
}

static int pg_scan_checkpoints(clog *c, clog_chain chain,
                               int (*fn)(void *ud, const clog_checkpoint *cp), void *ud)
{
    return scan_cp_table(c, "checkpoints", chain, fn, ud);
}

static int pg_find_hash(clog *c, clog_chain chain, const unsigned char hash[CLOG_HASH_LEN],
                        int64_t *seq)
{
    pg_clog *s = pc_of(c);
    *seq = 0;
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_bin(&p, hash, CLOG_HASH_LEN);
    PGresult *res =
        run(s, chain == CLOG_AUDIT ? S_FIND_AUDIT : S_FIND_MESSAGES, &p, "looking up a hash");
    if (!res)
        return -1;
    if (PQntuples(res) > 0)
        *seq = get_int(res, 0, 0);
    PQclear(res);
    return 0;
}

/* ---- retention ---- */

static int pg_purge_range(clog *c, int64_t before_us, int64_t *first, int64_t *last)
{
    pg_clog *s = pc_of(c);
    *first = *last = 0;
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_int(&p, before_us);
    PGresult *res = run(s, S_PURGE_RANGE, &p, "finding the records to purge");
    if (!res)
        return -1;
    if (PQntuples(res) > 0) {
        *first = get_int(res, 0, 0);
        *last = get_int(res, 0, 1);
    }
    PQclear(res);
    return 0;
}

static int pg_record_hash(clog *c, int64_t seq, unsigned char hash[CLOG_HASH_LEN], int *found)
{
    pg_clog *s = pc_of(c);
    *found = 0;
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_int(&p, seq);
    PGresult *res = run(s, S_RECORD_HASH, &p, "reading a record's hash");
    if (!res)
        return -1;
    if (PQntuples(res) > 0) {
        *found = 1;
        get_hash(res, 0, 0, hash);
    }
    PQclear(res);
    return 0;
}

static int pg_delete_records(clog *c, int64_t last)
{
    pg_clog *s = pc_of(c);
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_int(&p, last);
    return run_simple(s, S_DELETE_RECORDS, &p, "deleting purged records");
}

static int pg_insert_purge(clog *c, const clog_checkpoint *cp)
{
    return insert_cp(pc_of(c), S_INSERT_PURGE, cp, "inserting a purge checkpoint");
}

static int pg_last_purge(clog *c, clog_chain chain, int64_t *seq, unsigned char hash[CLOG_HASH_LEN])
{
    pg_clog *s = pc_of(c);
    *seq = 0;
    memset(hash, 0, CLOG_HASH_LEN);
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_text(&p, clog_chain_name(chain));
    PGresult *res = run(s, S_LAST_PURGE, &p, "reading the last purge checkpoint");
    if (!res)
        return -1;
    if (PQntuples(res) > 0) {
        *seq = get_int(res, 0, 0);
        get_hash(res, 0, 1, hash);
    }
    PQclear(res);
    return 0;
}

static int pg_scan_purges(clog *c, clog_chain chain,
                          int (*fn)(void *ud, const clog_checkpoint *cp), void *ud)
{
    return scan_cp_table(c, "purges", chain, fn, ud);
}

/* ---- replay markers ---- */

static int pg_get_marker(clog *c, const char *source, int64_t *last)
{
    pg_clog *s = pc_of(c);
    *last = 0;
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_text(&p, source);
    PGresult *res = run(s, S_GET_MARKER, &p, "reading a replay marker");
    if (!res)
        return -1;
    if (PQntuples(res) > 0)
        *last = get_int(res, 0, 0);
    PQclear(res);
    return 0;
}

static int pg_set_marker(clog *c, const char *source, int64_t last, int64_t ts_us)
{
    pg_clog *s = pc_of(c);
    if (enter(s) < 0)
        return -1;
    params p = {0};
    p_text(&p, source);
    p_int(&p, last);
    p_int(&p, ts_us);
    return run_simple(s, S_SET_MARKER, &p, "writing a replay marker");
}

const struct clog_ops clog_pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .head = pg_head,
    .last_checkpoint = pg_last_checkpoint,
    .insert_record = pg_insert_record,
    .insert_audit = pg_insert_audit,
    .insert_checkpoint = pg_insert_checkpoint,
    .scan_records = pg_scan_records,
    .scan_audit = pg_scan_audit,
    .scan_checkpoints = pg_scan_checkpoints,
    .find_hash = pg_find_hash,
    .purge_range = pg_purge_range,
    .record_hash = pg_record_hash,
    .delete_records = pg_delete_records,
    .insert_purge = pg_insert_purge,
    .last_purge = pg_last_purge,
    .scan_purges = pg_scan_purges,
    .get_marker = pg_get_marker,
    .set_marker = pg_set_marker,
};
