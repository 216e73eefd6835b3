/* sqlite_checkpoint.h - WAL checkpoints of a SQLite database on a thread of their own.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that pushes the WAL past 1,000
 * pages, on the thread that commits: two fsyncs and a copy of the pages into the
 * database file, 20-35 ms of a stopped event loop each time (bench/RESULTS.md, "Archive
 * on: the loop no longer checkpoints"). sqlite_ckpt_start turns that off for a
 * connection and has a background thread, with its own connection to the same file,
 * do the checkpoints instead. */
#ifndef PARLEY_SQLITE_CHECKPOINT_H
#define PARLEY_SQLITE_CHECKPOINT_H

#include <sqlite3.h>

/* WAL pages after which a checkpoint is due (SQLite's own auto-checkpoint threshold). */
#define SQLITE_CKPT_PAGES 1000
/* The usual max_wal_bytes: past it the thread checkpoints with RESTART, which makes
 * writers wait until every frame is in the database and the WAL can start over: the bound on
 * the WAL when passive checkpoints cannot keep up (a writer that never pauses long
 * enough for one to finish, a long reader). */
#define SQLITE_CKPT_MAX_WAL_BYTES (64 * 1024 * 1024)

typedef struct sqlite_ckpt sqlite_ckpt;

/* Take over the checkpoints of db, a WAL-mode connection to a database file: SQLite's
 * auto-checkpoint is turned off on db, and a hook on its commits wakes a thread once the
 * WAL holds SQLITE_CKPT_PAGES pages. The thread starts on the first such commit, so a
 * short-lived writer (parleyctl) never starts one. max_wal_bytes bounds the WAL
 * (SQLITE_CKPT_MAX_WAL_BYTES). label names the database in log messages. Returns NULL, leaving db as it was, if db is not in WAL mode (":memory:")
 * or on failure. Call from the thread that uses db. */
sqlite_ckpt *sqlite_ckpt_start(sqlite3 *db, const char *label, long long max_wal_bytes);

/* Stop the thread after a last checkpoint, join it, and give db its auto-checkpoint
 * back. Before sqlite3_close(db). NULL is fine. */
void sqlite_ckpt_stop(sqlite_ckpt *c);

#endif
