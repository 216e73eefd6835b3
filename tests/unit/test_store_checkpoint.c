/* test_store_checkpoint.c - the SQLite store checkpoints its WAL on a thread of its own
 * (sqlite_checkpoint.c), never in the writer's COMMIT: the WAL is copied into the
 * database and started over while the writer only writes, a reader holding an old
 * snapshot blocks neither, and closing leaves every row in a consistent file.
 *
 * Who checkpoints is seen through a SQLite VFS that wraps the default one and counts, per
 * thread, the syncs of the main database file: with synchronous=NORMAL in WAL mode a
 * checkpoint is the only thing that syncs it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/sqlite_checkpoint.h"
#include "server/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- a VFS that counts syncs of main database files, by thread ---- */

static sqlite3_vfs *real_vfs;
static sqlite3_vfs counting_vfs;
static const sqlite3_io_methods *real_methods;
static sqlite3_io_methods counting_methods;
static pthread_t writer; /* the test's thread: parleyd's event loop */
static atomic_long syncs_by_writer, syncs_by_others;

static int counting_sync(sqlite3_file *f, int flags)
{
    if (pthread_equal(pthread_self(), writer))
        atomic_fetch_add(&syncs_by_writer, 1);
    else
        atomic_fetch_add(&syncs_by_others, 1);
    return real_methods->xSync(f, flags);
}

/* The real file object is used as is; only its method table is swapped for a copy whose
 * xSync counts. */
static int counting_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                         int *out_flags)
{
    (void)vfs;
    int rc = real_vfs->xOpen(real_vfs, name, f, flags, out_flags);
    if (rc == SQLITE_OK && f->pMethods && (flags & SQLITE_OPEN_MAIN_DB)) {
        if (!real_methods) {
            real_methods = f->pMethods;
            counting_methods = *real_methods;
            counting_methods.xSync = counting_sync;
        }
        if (f->pMethods == real_methods)
            f->pMethods = &counting_methods;
    }
    return rc;
}

static void install_counting_vfs(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    counting_vfs = *real_vfs;
    counting_vfs.zName = "counting";
    counting_vfs.pNext = NULL;
    counting_vfs.xOpen = counting_open;
    sqlite3_vfs_register(&counting_vfs, 1);
}

static void reset_counts(void)
{
    writer = pthread_self();
    atomic_store(&syncs_by_writer, 0);
    atomic_store(&syncs_by_others, 0);
}

/* ---- fixture ---- */

typedef struct fixture {
    char dir[64];
    char path[128];
    char wal[140];
    char uri[140];
    store *st;
    long rows;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/parley-ckpt-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
    snprintf(f->wal, sizeof f->wal, "%s-wal", f->path);
    snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
    char err[256];
    f->st = store_open(f->uri, err, sizeof err);
    if (!f->st) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->st)
        store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
    free(f);
    return 0;
}

/* A stanza big enough to take two pages of the WAL per row. */
#define STANZA_BYTES 5000
#define ROWS_PER_COMMIT 2

/* n transactions of ROWS_PER_COMMIT archive rows each, as the event loop commits them. */
static void archive(fixture *f, int n)
{
    static char stanza[STANZA_BYTES + 1];
    memset(stanza, 'x', STANZA_BYTES);
    for (int i = 0; i < n; i++) {
        char id[ROWS_PER_COMMIT][32];
        mam_row rows[ROWS_PER_COMMIT];
        for (int r = 0; r < ROWS_PER_COMMIT; r++) {
            snprintf(id[r], sizeof id[r], "id-%ld", f->rows++);
            rows[r] = (mam_row){.id = id[r], .owner = r ? "bob@example.org" : "alice@example.org",
                                .with = r ? "alice@example.org" : "bob@example.org",
                                .ts_us = 1700000000000000LL + f->rows, .stanza = stanza};
        }
        store_status rc = store_mam_append(f->st, rows, ROWS_PER_COMMIT);
        if (rc != STORE_OK)
            fprintf(stderr, "store_mam_append: %s\n", store_last_error(f->st));
        assert_int_equal(rc, STORE_OK);
    }
}

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000}, NULL);
}

/* The frames in the WAL, from the header of the wal-index (the -shm file): 0 after a
 * checkpoint let a writer start the WAL over. -1 if it cannot be read. */
static long wal_frames(const char *path)
{
    char shm[160];
    snprintf(shm, sizeof shm, "%s-shm", path);
    int fd = open(shm, O_RDONLY | O_CLOEXEC);
    uint32_t mx_frame = 0;
    ssize_t n = fd >= 0 ? pread(fd, &mx_frame, sizeof mx_frame, 16) : -1;
    if (fd >= 0)
        close(fd);
    return n == (ssize_t)sizeof mx_frame ? (long)mx_frame : -1;
}

/* Wait (at most 10 s) until another thread has synced the database file. */
static void wait_for_background_checkpoint(void)
{
    for (int i = 0; i < 1000 && atomic_load(&syncs_by_others) == 0; i++)
        sleep_ms(10);
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static long long count_rows(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM mam", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* ---- cases ---- */

/* Commits of two archive rows, with short pauses as the event loop makes them, until the
 * WAL starts over (its frame count drops): another thread checkpointed it, and the
 * writer never did. Without the checkpoint thread, SQLite's auto-checkpoint starts the
 * WAL over too, but syncs the database file inside the writer's commits. */
static void test_checkpoints_off_the_writer(void **state)
{
    fixture *f = *state;
    reset_counts();
    long frames = 0, restarted = 0;
    for (int i = 0; i < 10000 && !restarted; i++) {
        archive(f, 1);
        if (i % 10 == 0)
            sleep_ms(1);
        long now = wal_frames(f->path);
        assert_true(now >= 0);
        restarted = now < frames;
        frames = now;
    }
    assert_true(restarted);
    assert_true(f->rows > 2 * SQLITE_CKPT_PAGES / 4); /* a few pages per commit */
    assert_int_equal(atomic_load(&syncs_by_writer), 0);
    assert_true(atomic_load(&syncs_by_others) > 0);
}

/* A writer that never pauses long enough for a passive checkpoint to catch up (the WAL
 * never starts over): the thread's RESTART checkpoint past max_wal_bytes holds it back
 * instead, so the WAL file stays near the bound while 40 MB go through it. Between
 * commits the writer pauses for a millisecond, as the event loop does other work: a
 * writer that holds the write lock all the time starves the RESTART (SQLite's locks
 * are not fair) and only a passive checkpoint can run. */
static void test_wal_bounded_under_a_busy_writer(void **state)
{
    fixture *f = *state;
    store_close(f->st); /* this case drives a connection of its own */
    f->st = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                  "CREATE TABLE blobs (b BLOB NOT NULL);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    const long long bound = 4LL * 1024 * 1024;
    sqlite_ckpt *c = sqlite_ckpt_start(db, "test", bound);
    assert_non_null(c);
    reset_counts();
    sqlite3_stmt *ins;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO blobs VALUES (zeroblob(10000))", -1,
                                        &ins, NULL),
                     SQLITE_OK);
    long long biggest = 0;
    for (int i = 0; i < 4000; i++) {
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
        if (i % 4 == 0)
            sleep_ms(1);
        long long size = file_size(f->wal);
        if (size > biggest)
            biggest = size;
    }
    sqlite3_finalize(ins);
    sqlite_ckpt_stop(c);
    assert_int_equal(atomic_load(&syncs_by_writer), 0);
    assert_true(atomic_load(&syncs_by_others) > 0);
    /* The bound, plus what is committed while the thread notices and copies. */
    assert_true(biggest < bound + 12LL * 1024 * 1024);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Closing stops the thread after its last checkpoint; every row is in a consistent file. */
static void test_close_leaves_every_row(void **state)
{
    fixture *f = *state;
    archive(f, 1500);
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(count_rows(f->path), f->rows);

    char err[256];
    f->st = store_open(f->uri, err, sizeof err);
    assert_non_null(f->st);
    archive(f, 10);
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(count_rows(f->path), f->rows);
}

/* A reader keeps its snapshot while the writer goes on past several checkpoints' worth of
 * WAL and past the WAL's bound (about 100 MB): the checkpoints wait for the reader
 * without holding up the writer (a RESTART would, for its whole busy timeout), and
 * catch up after. */
static void test_reader_holds_a_snapshot(void **state)
{
    fixture *f = *state;
    archive(f, 100);
    sqlite3 *reader = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(reader, "SELECT count(*) FROM mam", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long seen = sqlite3_column_int64(st, 0);
    assert_int_equal(seen, f->rows);
    sqlite3_reset(st);

    reset_counts();
    archive(f, 2500); /* the checkpoint thread starts and finds the reader in its way */
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), seen);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

    archive(f, 1500); /* due again: copies everything now that the reader is gone */
    wait_for_background_checkpoint();
    assert_int_equal(atomic_load(&syncs_by_writer), 0);
    assert_true(atomic_load(&syncs_by_others) > 0);
    sqlite3_close(reader);
    assert_int_equal(count_rows(f->path), f->rows);
}

/* An in-memory store has no WAL and no thread; it works as before. */
static void test_memory_store(void **state)
{
    (void)state;
    char err[256];
    store *st = store_open("sqlite::memory:", err, sizeof err);
    assert_non_null(st);
    mam_row row = {.id = "1", .owner = "a@b", .with = "c@d", .ts_us = 1, .stanza = "<m/>"};
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "%d", i);
        row.id = id;
        assert_int_equal(store_mam_append(st, &row, 1), STORE_OK);
    }
    store_close(st);
}

int main(void)
{
    install_counting_vfs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checkpoints_off_the_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_bounded_under_a_busy_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_leaves_every_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_holds_a_snapshot, setup, teardown),
        cmocka_unit_test(test_memory_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
