/* pg_db.h - what every PostgreSQL database of the server shares (the account store and
 * the compliance archive): a bounded connection whose messages never show the password,
 * session defaults set again after each reconnect, statements prepared once per
 * connection and tried again once on a connection found dead, and versioned schema
 * migrations applied under an advisory lock. Each back end keeps its own statements,
 * migrations, transaction rules and error wording. */
#ifndef PARLEY_PG_DB_H
#define PARLEY_PG_DB_H

#include <libpq-fe.h>
#include <stddef.h>

#define PG_DB_ERRLEN 512

/* What differs between the databases; string fields are literals (they are kept). */
typedef struct pg_db_conf {
    const char *log_label;        /* begins log lines and URI errors: "store" */
    const char *err_label;        /* begins connection errors: "" or "compliance store " */
    const char *application_name; /* shown in pg_stat_activity */
    const char *connect_timeout;  /* seconds; connection defaults the URI may override */
    const char *tcp_user_timeout; /* ms an unacknowledged write may wait */
    const char *statement_timeout;   /* session defaults unless the server or role sets */
    const char *idle_tx_timeout;     /* ... one (a stuck transaction releases its locks) */
    const char *lock_timeout;        /* set always; NULL: left alone */
    int readonly;                 /* SET default_transaction_read_only = on */
    int durable;                  /* SET synchronous_commit = on (when not readonly) */
    int min_server_version;       /* as PQserverVersion: 100000 is 10 */
    const char *const *sql;       /* statement texts by id, for pg_db_run */
    int nstmts;
    const char *stmt_prefix;      /* prepared statement names: prefix and id */
} pg_db_conf;

typedef struct pg_db {
    PGconn *conn;
    char where[256];         /* user@host:port/db, never the password: for messages */
    pg_db_conf conf;
    unsigned char *prepared; /* conf.nstmts flags for this connection; cleared by a reset */
    int fresh;               /* no statement of the current call has run yet */
    int reset_tried;         /* the current call already tried PQreset */
} pg_db;

/* Connect to location, the URI after "postgresql:" ("//user@host:port/db?..."), with the
 * conf's connection defaults (the URI's own settings win), check the server version and
 * set the session up. Returns 0, or -1 with a reason in err; pg_db_close either way. */
int pg_db_open(pg_db *db, const pg_db_conf *conf, const char *location, char *err,
               size_t errlen);
void pg_db_close(pg_db *db);

/* Start a call: it may reset the connection once. Outside a transaction (in_tx 0) a
 * connection known to be bad is reset now, and a transaction left open is rolled back.
 * Returns 0, or -1 with the reason in err. */
int pg_db_call_start(pg_db *db, int in_tx, char *err, size_t errlen);

/* PQreset and the session set up again; the connection's prepared statements are gone.
 * Returns 0, or -1 with the reason in err. */
int pg_db_reconnect(pg_db *db, char *err, size_t errlen);

/* Run statement id (prepared on first use) with n parameters (val, len, fmt as for
 * PQexecPrepared) and results in binary if binary. A connection that turns out dead is
 * reset and the statement run again when no statement of the call has run yet and
 * retry_ok (the caller's own rule, e.g. outside a transaction). Returns 0 with *res the
 * result (PQclear it); -1 if the statement failed, *res the failing result or NULL (PQclear
 * it) for the caller's message; -2 if reconnecting failed, the reason in err. */
int pg_db_run(pg_db *db, int id, int n, const char *const *val, const int *len, const int *fmt,
              int binary, int retry_ok, PGresult **res, char *err, size_t errlen);

/* PQexec of sql; on failure -1 and, if err, "what: reason" in it. */
int pg_db_exec(PGconn *conn, const char *sql, const char *what, char *err, size_t errlen);

/* The highest version in table, or -1 if there is no such table. Returns 0 or -1 + err. */
int pg_db_schema_version(PGconn *conn, const char *table, int *version, char *err,
                         size_t errlen);

/* Bring the schema up to nmigrations in one transaction, recorded in table (created if
 * missing); lock_key (digits) is a pg_advisory_xact_lock key, so openers of a new
 * database wait for the first one, then find the work done. migrations[i] is the SQL of
 * version i + 1. A database from a newer program is refused. Returns 0 or -1 + err. */
int pg_db_migrate(pg_db *db, const char *table, const char *lock_key,
                  const char *const *migrations, int nmigrations, char *err, size_t errlen);

/* libpq's messages end with a newline (sometimes several lines): the first line. */
void pg_db_first_line(char *dst, size_t len, const char *msg);

#endif
