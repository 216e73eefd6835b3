/* pg_db.c - connections, reconnects, prepared statements and schema migrations for the
 * server's PostgreSQL databases (store_pg.c, clog_pg.c). */
#include "pg_db.h"

#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pg_db_first_line(char *dst, size_t len, const char *msg)
{
    snprintf(dst, len, "%s", msg && *msg ? msg : "unknown error");
    dst[strcspn(dst, "\n")] = '\0';
}

/* "user@host:port/db" from the URI's own fields, so no message ever shows a password. */
static void describe(const char *uri, char *out, size_t len)
{
    const char *user = "", *host = "", *port = "", *db = "";
    PQconninfoOption *opts = PQconninfoParse(uri, NULL);
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
    }
    snprintf(out, len, "%.60s%s%.80s%s%.10s/%.60s", user, *user ? "@" : "",
             *host ? host : "localhost", *port ? ":" : "", port, db);
    PQconninfoFree(opts);
}

/* Notices (e.g. "relation exists, skipping") go to the debug log, not stderr. arg is the
 * conf's log label, a literal. */
static void notice_to_log(void *arg, const char *message)
{
    char line[PG_DB_ERRLEN];
    pg_db_first_line(line, sizeof line, message);
    log_debug("%s: PostgreSQL: %s", (const char *)arg, line);
}

int pg_db_exec(PGconn *conn, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType rs = PQresultStatus(res);
    if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) {
        PQclear(res);
        return 0;
    }
    if (err) {
        char msg[PG_DB_ERRLEN];
        pg_db_first_line(msg, sizeof msg, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        snprintf(err, errlen, "%s: %.300s", what, msg);
    }
    PQclear(res);
    return -1;
}

/* Set a timeout unless the server, database or role already sets one ("0" = none). */
static int default_timeout(PGconn *conn, const char *name, const char *value)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT current_setting('%s')", name);
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    int unset = ok && strcmp(PQgetvalue(res, 0, 0), "0") == 0;
    PQclear(res);
    if (!ok)
        return -1;
    if (!unset)
        return 0;
    snprintf(sql, sizeof sql, "SET %s = '%s'", name, value);
    return pg_db_exec(conn, sql, NULL, NULL, 0);
}

/* What every session needs, again after a reconnect: quiet notices, bounded statements. */
static int session_setup(PGconn *conn, const pg_db_conf *conf)
{
    PQsetNoticeProcessor(conn, notice_to_log, (void *)conf->log_label);
    if (default_timeout(conn, "statement_timeout", conf->statement_timeout) < 0 ||
        default_timeout(conn, "idle_in_transaction_session_timeout", conf->idle_tx_timeout) < 0)
        return -1;
    if (conf->lock_timeout) {
        char sql[96];
        snprintf(sql, sizeof sql, "SET lock_timeout = '%s'", conf->lock_timeout);
        if (pg_db_exec(conn, sql, NULL, NULL, 0) < 0)
            return -1;
    }
    if (conf->readonly)
        return pg_db_exec(conn, "SET default_transaction_read_only = on", NULL, NULL, 0);
    if (conf->durable)
        return pg_db_exec(conn, "SET synchronous_commit = on", NULL, NULL, 0);
    return 0;
}

int pg_db_open(pg_db *db, const pg_db_conf *conf, const char *location, char *err,
               size_t errlen)
{
    memset(db, 0, sizeof *db);
    db->conf = *conf;
    if (strncmp(location, "//", 2) != 0) {
        snprintf(err, errlen,
                 "%s postgresql: expected postgresql://[user[:password]@]host[:port]/database",
                 conf->log_label);
        return -1;
    }
    size_t ulen = strlen("postgresql:") + strlen(location) + 1;
    char *uri = xmalloc(ulen);
    snprintf(uri, ulen, "postgresql:%s", location);

    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &perr);
    if (!opts) {
        char msg[PG_DB_ERRLEN];
        pg_db_first_line(msg, sizeof msg, perr);
        snprintf(err, errlen, "%s postgresql: bad URI: %s", conf->log_label, msg);
        PQfreemem(perr);
        free(uri);
        return -1;
    }
    PQconninfoFree(opts);
    describe(uri, db->where, sizeof db->where);

    /* Our defaults come before the URI (the "dbname" entry, expanded): libpq lets later
     * entries override earlier ones, so whatever the URI sets wins. */
    const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                                "application_name", "client_encoding", "dbname", NULL};
    const char *const vals[] = {conf->connect_timeout, "1", "30", "10", "3",
                                conf->tcp_user_timeout, conf->application_name, "UTF8", uri,
                                NULL};
    db->conn = PQconnectdbParams(keys, vals, 1);
    free(uri);
    if (!db->conn) {
        snprintf(err, errlen, "%sPostgreSQL %s: out of memory", conf->err_label, db->where);
        return -1;
    }
    char msg[PG_DB_ERRLEN];
    if (PQstatus(db->conn) != CONNECTION_OK) {
        pg_db_first_line(msg, sizeof msg, PQerrorMessage(db->conn));
        snprintf(err, errlen, "%sPostgreSQL %s: cannot connect: %s", conf->err_label, db->where,
                 msg);
        return -1;
    }
    if (PQserverVersion(db->conn) < conf->min_server_version) {
        snprintf(err, errlen,
                 "%sPostgreSQL %s: server version %d is too old (%d or newer needed)",
                 conf->err_label, db->where, PQserverVersion(db->conn),
                 conf->min_server_version / 10000);
        return -1;
    }
    if (session_setup(db->conn, conf) < 0) {
        pg_db_first_line(msg, sizeof msg, PQerrorMessage(db->conn));
        snprintf(err, errlen, "%sPostgreSQL %s: session setup: %s", conf->err_label, db->where,
                 msg);
        return -1;
    }
    db->prepared = xcalloc((size_t)conf->nstmts + 1, 1);
    return 0;
}

void pg_db_close(pg_db *db)
{
    PQfinish(db->conn);
    db->conn = NULL;
    free(db->prepared);
    db->prepared = NULL;
}

int pg_db_reconnect(pg_db *db, char *err, size_t errlen)
{
    db->reset_tried = 1;
    PQreset(db->conn);
    memset(db->prepared, 0, (size_t)db->conf.nstmts);
    char msg[PG_DB_ERRLEN];
    if (PQstatus(db->conn) != CONNECTION_OK) {
        pg_db_first_line(msg, sizeof msg, PQerrorMessage(db->conn));
        snprintf(err, errlen, "%sPostgreSQL %s: connection lost, reconnecting failed: %s",
                 db->conf.err_label, db->where, msg);
        return -1;
    }
    if (session_setup(db->conn, &db->conf) < 0) {
        pg_db_first_line(msg, sizeof msg, PQerrorMessage(db->conn));
        snprintf(err, errlen, "%sPostgreSQL %s: session setup after reconnecting: %s",
                 db->conf.err_label, db->where, msg);
        return -1;
    }
    log_warn("%s: reconnected to PostgreSQL %s", db->conf.log_label, db->where);
    return 0;
}

int pg_db_call_start(pg_db *db, int in_tx, char *err, size_t errlen)
{
    db->fresh = 1;
    db->reset_tried = 0;
    if (in_tx)
        return 0;
    if (PQstatus(db->conn) == CONNECTION_BAD)
        return pg_db_reconnect(db, err, errlen);
    if (PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
        /* Left open by a failure not seen (a bug): never build on it. */
        log_warn("%s: PostgreSQL %s: a transaction was left open; rolled back",
                 db->conf.log_label, db->where);
        PQclear(PQexec(db->conn, "ROLLBACK"));
    }
    return 0;
}

int pg_db_run(pg_db *db, int id, int n, const char *const *val, const int *len, const int *fmt,
              int binary, int retry_ok, PGresult **res, char *err, size_t errlen)
{
    char name[48];
    snprintf(name, sizeof name, "%s%d", db->conf.stmt_prefix, id);
    for (;;) {
        *res = NULL;
        int ok = 1;
        if (!db->prepared[id]) {
            *res = PQprepare(db->conn, name, db->conf.sql[id], 0, NULL);
            ok = PQresultStatus(*res) == PGRES_COMMAND_OK;
            if (ok) {
                db->prepared[id] = 1;
                PQclear(*res);
                *res = NULL;
            }
        }
        if (ok) {
            *res = PQexecPrepared(db->conn, name, n, val, len, fmt, binary);
            ExecStatusType rs = PQresultStatus(*res);
            if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) {
                db->fresh = 0;
                return 0;
            }
        }
        if (PQstatus(db->conn) == CONNECTION_BAD && db->fresh && !db->reset_tried && retry_ok) {
            PQclear(*res);
            *res = NULL;
            if (pg_db_reconnect(db, err, errlen) < 0)
                return -2;
            continue;
        }
        db->fresh = 0;
        return -1;
    }
}

int pg_db_schema_version(PGconn *conn, const char *table, int *version, char *err,
                         size_t errlen)
{
    char sql[160], what[96];
    snprintf(sql, sizeof sql, "SELECT to_regclass('%s') IS NULL", table);
    snprintf(what, sizeof what, "looking for %s", table);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        goto fail;
    int missing = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (missing) {
        *version = -1;
        return 0;
    }
    snprintf(sql, sizeof sql, "SELECT coalesce(max(version), 0) FROM %s", table);
    snprintf(what, sizeof what, "reading %s", table);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        goto fail;
    *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
fail:;
    char msg[PG_DB_ERRLEN];
    pg_db_first_line(msg, sizeof msg, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    snprintf(err, errlen, "%s: %.300s", what, msg);
    PQclear(res);
    return -1;
}

/* The migration itself, inside the caller's transaction; err without the "where". */
static int migrate_locked(pg_db *db, const char *table, const char *lock_key,
                          const char *const *migrations, int nmigrations, char *err,
                          size_t errlen)
{
    char sql[160], what[96];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%s)", lock_key);
    int current = 0;
    if (pg_db_exec(db->conn, sql, "lock for migration", err, errlen) < 0 ||
        pg_db_schema_version(db->conn, table, &current, err, errlen) < 0)
        return -1;
    /* Look before creating: CREATE TABLE IF NOT EXISTS needs the CREATE privilege even
     * when the table exists, and a role that only reads and writes must still open. */
    if (current < 0) {
        snprintf(sql, sizeof sql,
                 "CREATE TABLE %s (version INTEGER PRIMARY KEY NOT NULL, applied BIGINT NOT NULL)",
                 table);
        snprintf(what, sizeof what, "create %s", table);
        if (pg_db_exec(db->conn, sql, what, err, errlen) < 0)
            return -1;
        current = 0;
    }
    if (current > nmigrations) {
        snprintf(err, errlen,
                 "schema version %d is newer than this program supports (%d); upgrade Parley",
                 current, nmigrations);
        return -1;
    }
    for (int v = current + 1; v <= nmigrations; v++) {
        snprintf(what, sizeof what, "schema migration %d", v);
        if (pg_db_exec(db->conn, migrations[v - 1], what, err, errlen) < 0)
            return -1;
        snprintf(sql, sizeof sql, "INSERT INTO %s(version, applied) VALUES (%d, %lld)", table,
                 v, (long long)time(NULL));
        if (pg_db_exec(db->conn, sql, what, err, errlen) < 0)
            return -1;
        if (current > 0)
            log_info("%s PostgreSQL %s: migrated schema to version %d", db->conf.log_label,
                     db->where, v);
    }
    return 0;
}

int pg_db_migrate(pg_db *db, const char *table, const char *lock_key,
                  const char *const *migrations, int nmigrations, char *err, size_t errlen)
{
    char why[PG_DB_ERRLEN];
    if (pg_db_exec(db->conn, "BEGIN", "begin migration", why, sizeof why) == 0) {
        if (migrate_locked(db, table, lock_key, migrations, nmigrations, why, sizeof why) == 0 &&
            pg_db_exec(db->conn, "COMMIT", "commit migration", why, sizeof why) == 0)
            return 0;
        PQclear(PQexec(db->conn, "ROLLBACK"));
    }
    snprintf(err, errlen, "%sPostgreSQL %s: %s", db->conf.err_label, db->where, why);
    return -1;
}
