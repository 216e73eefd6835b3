/* sqlite_db.h - what every SQLite database of the server shares (the account store and
 * the compliance archive): a private file in private directories, and versioned schema
 * migrations recorded in a schema_version table. */
#ifndef PARLEY_SQLITE_DB_H
#define PARLEY_SQLITE_DB_H

#include <sqlite3.h>
#include <stddef.h>

/* Create the directories above path (0700) and the file itself (0600) if missing, so
 * SQLite and its -wal/-shm files never take the umask's permissions. Returns 0 or -1
 * with a reason in err. */
int sqlite_db_create_private(const char *path, char *err, size_t errlen);

/* Bring the schema up to nmigrations in one BEGIN IMMEDIATE transaction (a concurrent
 * opener of a new file waits on the busy handler and finds the work done). migrations[i]
 * is the SQL of version i + 1; label names the database in messages ("store"). A file
 * from a newer program is refused. Returns 0 or -1 with a reason in err. */
int sqlite_db_migrate(sqlite3 *db, const char *path, const char *label,
                      const char *const *migrations, int nmigrations, char *err, size_t errlen);

/* The schema version recorded in the file (0 if none). Returns 0 or -1 with err. */
int sqlite_db_schema_version(sqlite3 *db, int *out, char *err, size_t errlen);

/* sqlite3_exec with the error put into err as "what: reason". Returns 0 or -1. */
int sqlite_db_exec(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen);

#endif
