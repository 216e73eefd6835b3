/* journal.c - the SQLite journal of every check (journal.h). A private file (0600, via
 * the server's sqlite_db helpers) with versioned migrations; rows are written with
 * synchronous=FULL before the verdict leaves, so an answered check is always on disk. */
#include "journal.h"

#include "../common/util.h"
#include "../server/sqlite_db.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUSY_MS 5000

/* Schema version i + 1. The partial index serves the disclaimer question only. */
static const char *const migrations[] = {
    "CREATE TABLE checks ("
    " id INTEGER PRIMARY KEY,"
    " time TEXT NOT NULL,"          /* UTC, 2026-05-01T12:00:00.123456Z */
    " day TEXT NOT NULL,"           /* UTC date of time: the disclaimer's day */
    " kind TEXT NOT NULL,"          /* message, groupchat, file, invalid */
    " sender TEXT,"
    " recipient TEXT,"              /* the peer, or the room */
    " verdict TEXT NOT NULL,"       /* allow, block, modify, error */
    " flagged INTEGER NOT NULL DEFAULT 0,"
    " rule TEXT,"
    " reason TEXT,"
    " disclaimer INTEGER NOT NULL DEFAULT 0,"
    " message_id TEXT,"
    " request_id TEXT,"
    " detail TEXT);"
    "CREATE INDEX checks_disclaimer ON checks(sender, day) WHERE disclaimer = 1;",
};

#define COLUMNS "time, kind, sender, recipient, verdict, flagged, rule, reason, disclaimer, " \
                "message_id, request_id, detail"

struct journal {
    sqlite3 *db;
    sqlite3_stmt *insert;
    sqlite3_stmt *seen;
};

static void db_err(sqlite3 *db, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "journal: %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

journal *journal_open(const char *path, char *err, size_t errlen)
{
    if (sqlite_db_create_private(path, err, errlen) < 0)
        return NULL;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) !=
        SQLITE_OK) {
        db_err(db, path, err, errlen);
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, BUSY_MS);
    journal *j = xcalloc(1, sizeof *j);
    j->db = db;
    if (sqlite_db_exec(db, "PRAGMA journal_mode=WAL", "journal mode", err, errlen) < 0 ||
        sqlite_db_exec(db, "PRAGMA synchronous=FULL", "synchronous", err, errlen) < 0 ||
        sqlite_db_migrate(db, path, "journal", migrations, (int)ARRAY_LEN(migrations), err,
                          errlen) < 0)
        goto fail;
    if (sqlite3_prepare_v2(db, "INSERT INTO checks(" COLUMNS ", day) VALUES "
                               "(?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &j->insert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT 1 FROM checks WHERE sender = ? AND day = ? AND "
                               "disclaimer = 1 LIMIT 1", -1, &j->seen, NULL) != SQLITE_OK) {
        db_err(db, "prepare", err, errlen);
        goto fail;
    }
    return j;
fail:
    journal_close(j);
    return NULL;
}

void journal_close(journal *j)
{
    if (!j)
        return;
    sqlite3_finalize(j->insert);
    sqlite3_finalize(j->seen);
    sqlite3_close(j->db);
    free(j);
}

void journal_day(int64_t time_us, char out[11])
{
    time_t t = (time_t)(time_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, 11, "%Y-%m-%d", &tm) == 0)
        snprintf(out, 11, "0000-00-00");
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

int journal_disclaimer_sent(journal *j, const char *sender, const char *day, int *sent,
                            char *err, size_t errlen)
{
    sqlite3_reset(j->seen);
    bind_text(j->seen, 1, sender);
    bind_text(j->seen, 2, day);
    int rc = sqlite3_step(j->seen);
    sqlite3_reset(j->seen);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_err(j->db, "disclaimer lookup", err, errlen);
        return -1;
    }
    *sent = rc == SQLITE_ROW;
    return 0;
}

int journal_record(journal *j, const journal_entry *e, char *err, size_t errlen)
{
    char when[TIME_UTC_LEN], day[11];
    time_format_utc(e->time_us, when);
    journal_day(e->time_us, day);
    sqlite3_stmt *st = j->insert;
    sqlite3_reset(st);
    bind_text(st, 1, when);
    bind_text(st, 2, e->kind);
    bind_text(st, 3, e->sender);
    bind_text(st, 4, e->recipient);
    bind_text(st, 5, e->verdict);
    sqlite3_bind_int(st, 6, e->flagged ? 1 : 0);
    bind_text(st, 7, e->rule);
    bind_text(st, 8, e->reason);
    sqlite3_bind_int(st, 9, e->disclaimer ? 1 : 0);
    bind_text(st, 10, e->message_id);
    bind_text(st, 11, e->request_id);
    bind_text(st, 12, e->detail);
    bind_text(st, 13, day);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        db_err(j->db, "insert", err, errlen);
        return -1;
    }
    return 0;
}

/* One field of a dump line: tabs and line breaks would split the row, so they become
 * spaces; NULL is "-". */
static void put_field(FILE *out, const unsigned char *s, int last)
{
    if (!s || !*s) {
        fputc('-', out);
    } else {
        for (; *s; s++)
            fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, out);
    }
    fputc(last ? '\n' : '\t', out);
}

int journal_dump(const char *path, FILE *out, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL) !=
        SQLITE_OK) {
        db_err(db, path, err, errlen);
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, BUSY_MS);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT " COLUMNS " FROM checks ORDER BY id", -1, &st, NULL) !=
        SQLITE_OK) {
        db_err(db, path, err, errlen);
        sqlite3_close(db);
        return -1;
    }
    fprintf(out, "time\tkind\tsender\trecipient\tverdict\tflagged\trule\treason\tdisclaimer\t"
                 "message_id\trequest_id\tdetail\n");
    int rc, ncols = sqlite3_column_count(st);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        for (int i = 0; i < ncols; i++)
            put_field(out, sqlite3_column_text(st, i), i == ncols - 1);
    if (rc != SQLITE_DONE)
        db_err(db, "read", err, errlen);
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (fflush(out) != 0 && rc == SQLITE_DONE) {
        snprintf(err, errlen, "journal: cannot write the output");
        return -1;
    }
    return rc == SQLITE_DONE ? 0 : -1;
}
