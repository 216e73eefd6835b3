/* sqlite_db.c - private database files and versioned migrations for SQLite databases. */
#include "sqlite_db.h"
#include "../common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* mkdir -p for the directories above path, each new one 0700 (they hold account data). */
static int make_parents(const char *path, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errlen, "%.200s: path too long", path);
        return -1;
    }
    char *last = strrchr(buf, '/');
    if (!last || last == buf)
        return 0;
    *last = '\0';
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create directory %.200s: %s", buf, strerror(errno));
                return -1;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    return 0;
}

int sqlite_db_create_private(const char *path, char *err, size_t errlen)
{
    if (make_parents(path, err, errlen) < 0)
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return 0;
        snprintf(err, errlen, "cannot create %.200s: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0600) < 0) {
        snprintf(err, errlen, "chmod %.200s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int sqlite_db_exec(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", what, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int sqlite_db_schema_version(sqlite3 *db, int *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st,
                           NULL) != SQLITE_OK) {
        snprintf(err, errlen, "read schema_version: %s", sqlite3_errmsg(db));
        return -1;
    }
    *out = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return 0;
}

int sqlite_db_migrate(sqlite3 *db, const char *path, const char *label,
                      const char *const *migrations, int nmigrations, char *err, size_t errlen)
{
    if (sqlite_db_exec(db, "BEGIN IMMEDIATE", "begin migration", err, errlen) < 0)
        return -1;
    if (sqlite_db_exec(db,
                       "CREATE TABLE IF NOT EXISTS schema_version ("
                       " version INTEGER PRIMARY KEY NOT NULL, applied INTEGER NOT NULL)",
                       "create schema_version", err, errlen) < 0)
        goto fail;

    int current = 0;
    if (sqlite_db_schema_version(db, &current, err, errlen) < 0)
        goto fail;

    if (current > nmigrations) {
        snprintf(err, errlen,
                 "%.200s: %s schema version %d is newer than this program supports (%d); "
                 "upgrade Parley",
                 path, label, current, nmigrations);
        goto fail;
    }
    for (int v = current + 1; v <= nmigrations; v++) {
        char what[64], sql[128];
        snprintf(what, sizeof what, "%s schema migration %d", label, v);
        snprintf(sql, sizeof sql, "INSERT INTO schema_version(version, applied) VALUES (%d, %lld)",
                 v, (long long)time(NULL));
        if (sqlite_db_exec(db, migrations[v - 1], what, err, errlen) < 0 ||
            sqlite_db_exec(db, sql, what, err, errlen) < 0)
            goto fail;
        if (current > 0)
            log_info("%s %s: migrated schema to version %d", label, path, v);
    }
    if (sqlite_db_exec(db, "COMMIT", "commit migration", err, errlen) < 0)
        goto fail;
    return 0;
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}
