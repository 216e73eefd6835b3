/* sqlite_checkpoint.c - WAL checkpoints off the committing thread (sqlite_checkpoint.h).
 *
 * The owner's connection keeps committing into the WAL; a commit hook on it (which
 * replaces SQLite's auto-checkpoint, itself such a hook) only notes that a checkpoint is
 * due and wakes the thread. The thread touches nothing but its own connection and the
 * few fields under `lock`. Its checkpoints are PASSIVE: they copy the frames committed
 * before they began and never make the owner wait. A writer that never pauses can keep
 * the WAL from starting over (it restarts only when a new write finds every frame
 * copied; a passive checkpoint that finds new frames at its end cannot), so past
 * max_wal_bytes the thread runs a RESTART checkpoint: it holds the owner's writes on
 * their busy handler while it copies the last frames and syncs (two fsyncs, 10-40 ms
 * here), and the owner's next write starts the WAL over. That is the price of a bounded
 * WAL when the thread falls behind, once per max_wal_bytes instead of once per
 * SQLITE_CKPT_PAGES. Not TRUNCATE: cutting a 64 MiB file took 150 ms with the writer
 * held; the file keeps its size and is overwritten from the start. If the thread cannot
 * run at all, the hook checkpoints inline, as SQLite would have. */
#include "sqlite_checkpoint.h"

#include "../common/log.h"
#include "../common/util.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* How long the RESTART checkpoint waits for the owner's transaction to end and then,
 * holding the owner's next one up, for a reader that began meanwhile. Short: a failed
 * attempt is tried again a little later, a long wait stops the event loop. */
#define CKPT_BUSY_MS 100
/* Passive checkpoints in a row while the owner keeps committing. */
#define CKPT_ROUNDS 4
/* Bytes of WAL per page besides the page itself (the frame header). */
#define WAL_FRAME_HEADER 24

struct sqlite_ckpt {
    sqlite3 *db;   /* the owner's connection: only the owner's thread uses it */
    char *path;    /* absolute, from sqlite3_db_filename; read-only once started */
    char *label;   /* for log messages; read-only once started */
    long long max_wal_bytes; /* read-only */
    pthread_t thread;
    int started;   /* the thread exists (written by the owner's thread only) */

    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t wake;
    int due;      /* a checkpoint is wanted */
    int stop;     /* the owner is closing: last checkpoint, then exit */
    int failed;   /* no thread: the hook checkpoints inline */
    int last_log; /* WAL frames the thread's last checkpoint could not copy (0: none) */
};

/* Copy the WAL into the database with own; returns the frames left in the WAL. */
static int checkpoint(sqlite_ckpt *c, sqlite3 *own, int page_size, int final, int *warned)
{
    int log = 0, done = 0, seen = -1;
    int rc = SQLITE_OK;
    /* A passive checkpoint copies the frames that were in the WAL when it began (log).
     * Another round copies what the owner committed meanwhile, until a round finds
     * nothing new: then the owner's next write starts the WAL over. */
    for (int round = 0; round < CKPT_ROUNDS && log != seen; round++) {
        seen = log;
        rc = sqlite3_wal_checkpoint_v2(own, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        /* Busy: another connection is checkpointing (parleyctl closing): it does our work.
         * done < log: a reader still uses older frames; a wait would not help. */
        if (rc != SQLITE_OK || done < log)
            break;
    }
    /* Only when no reader is in the way: RESTART waits for readers with the owner's
     * writes held up, and a long reader (parleyctl) would stop the owner for the whole
     * busy timeout. A WAL that a reader holds grows until the reader is done, as it does
     * with SQLite's own checkpoints. */
    if (rc == SQLITE_OK && !final && done >= log &&
        (long long)log * (page_size + WAL_FRAME_HEADER) > c->max_wal_bytes) {
        rc = sqlite3_wal_checkpoint_v2(own, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
        if (rc == SQLITE_OK)
            log = done = 0;
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        if (!*warned)
            log_warn("%s %s: background checkpoint: %s", c->label, c->path, sqlite3_errmsg(own));
        *warned = 1;
    } else if (rc == SQLITE_OK) {
        *warned = 0;
    }
    return done >= log ? 0 : log;
}

/* 1 if db runs in WAL mode on a file. Also makes a fresh connection read the database
 * header, without which it does not know the WAL and a checkpoint does nothing. */
static int in_wal_mode(sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK)
        return 0;
    const unsigned char *mode = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int wal = mode && strcmp((const char *)mode, "wal") == 0;
    sqlite3_finalize(st);
    return wal;
}

static void *run(void *arg)
{
    sqlite_ckpt *c = arg;
    sqlite3 *own = NULL;
    if (sqlite3_open_v2(c->path, &own, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        !in_wal_mode(own)) {
        log_warn("%s %s: checkpoint thread cannot use the database (%s); checkpoints stay "
                 "on the committing thread",
                 c->label, c->path, own ? sqlite3_errmsg(own) : "out of memory");
        sqlite3_close(own);
        pthread_mutex_lock(&c->lock);
        c->failed = 1;
        pthread_mutex_unlock(&c->lock);
        return NULL;
    }
    sqlite3_busy_timeout(own, CKPT_BUSY_MS);
    /* A checkpoint syncs the WAL before copying it and the file after, unless this
     * connection's synchronous is OFF (a build's default could be): never let it be. */
    sqlite3_exec(own, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    int page_size = 4096;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(own, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0)
            page_size = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }

    int warned = 0;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        while (!c->due && !c->stop)
            pthread_cond_wait(&c->wake, &c->lock);
        int final = c->stop;
        c->due = 0;
        pthread_mutex_unlock(&c->lock);

        int left = checkpoint(c, own, page_size, final, &warned);

        pthread_mutex_lock(&c->lock);
        c->last_log = left;
        pthread_mutex_unlock(&c->lock);
        if (final)
            break;
    }
    sqlite3_close(own);
    return NULL;
}

static int start_thread(sqlite_ckpt *c)
{
    /* Signals are the event loop's (signalfd): this thread must never take one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, run, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : -1;
}

/* After every commit of the owner's connection, on the owner's thread: frames is the
 * number of frames in the WAL. Costs a mutex, and a signal when a checkpoint is due. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    sqlite_ckpt *c = arg;
    if (frames < SQLITE_CKPT_PAGES)
        return SQLITE_OK;
    pthread_mutex_lock(&c->lock);
    int inline_ckpt = c->failed;
    /* A WAL that a reader keeps from being copied is due again only after
     * SQLITE_CKPT_PAGES more frames, not on every commit. */
    if (!inline_ckpt && (frames < c->last_log || frames - c->last_log >= SQLITE_CKPT_PAGES)) {
        c->due = 1;
        if (c->started)
            pthread_cond_signal(&c->wake);
    }
    int start = c->due && !c->started && !inline_ckpt;
    if (start) {
        if (start_thread(c) == 0) {
            c->started = 1;
        } else {
            c->failed = inline_ckpt = 1;
            log_warn("%s %s: cannot start the checkpoint thread; checkpoints stay on the "
                     "committing thread",
                     c->label, c->path);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (inline_ckpt)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

sqlite_ckpt *sqlite_ckpt_start(sqlite3 *db, const char *label, long long max_wal_bytes)
{
    const char *path = sqlite3_db_filename(db, "main");
    if (!path || !*path || !in_wal_mode(db))
        return NULL;
    sqlite_ckpt *c = xcalloc(1, sizeof *c);
    c->db = db;
    c->path = xstrdup(path);
    c->label = xstrdup(label);
    c->max_wal_bytes = max_wal_bytes;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->path);
        free(c->label);
        free(c);
        return NULL;
    }
    if (pthread_cond_init(&c->wake, NULL) != 0) {
        pthread_mutex_destroy(&c->lock);
        free(c->path);
        free(c->label);
        free(c);
        return NULL;
    }
    /* Replaces SQLite's auto-checkpoint, which is a WAL hook too (the last one set wins). */
    sqlite3_wal_hook(db, on_commit, c);
    return c;
}

void sqlite_ckpt_stop(sqlite_ckpt *c)
{
    if (!c)
        return;
    sqlite3_wal_autocheckpoint(c->db, SQLITE_CKPT_PAGES); /* removes on_commit */
    if (c->started) {
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
    }
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c->path);
    free(c->label);
    free(c);
}
