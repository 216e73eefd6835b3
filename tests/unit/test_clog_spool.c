/* test_clog_spool.c - unit tests of spool mode's spool (clog_spool.h) against a real
 * archive (SQLite; the replay markers it relies on are tested on both back ends in
 * test_clog.c): batches spooled while the store refuses writes, replayed in order with
 * their own timestamps, exactly once even when the process dies between the store's
 * commit and emptying the spool, a torn last entry cut off, damage elsewhere refused
 * without touching the file, and a private, locked file. The store is made to refuse
 * writes with a trigger, the way a full or broken database would. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "server/clog.h"
#include "server/clog_spool.h"

#include <limits.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_BYTES 40 /* magic, id, checksum: an empty spool */

typedef struct fixture {
    char dir[PATH_MAX];
    char db[PATH_MAX + 32];
    char uri[PATH_MAX + 64];
    char spool[PATH_MAX + 32];
    EVP_PKEY *key;
    clog *log;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/parley-test-spool-XXXXXX";
    if (!f || !mkdtemp(tmpl))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s", tmpl);
    snprintf(f->db, sizeof f->db, "%s/compliance.db", f->dir);
    snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->db);
    /* A directory that does not exist yet: the spool creates it. */
    snprintf(f->spool, sizeof f->spool, "%s/spool/compliance.spool", f->dir);
    f->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char err[512];
    f->log = clog_open(f->uri, f->key, 1000, 0, err, sizeof err);
    if (!f->key || !f->log)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    clog_close(f->log);
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    EVP_PKEY_free(f->key);
    free(f);
    return 0;
}

static void sql(fixture *f, const char *text)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", text, msg);
    sqlite3_close(db);
}

/* The store refuses every insert, as a broken database would (and fast, unlike a lock). */
static void break_store(fixture *f)
{
    sql(f, "CREATE TRIGGER down_m BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'down');"
           " END; CREATE TRIGGER down_a BEFORE INSERT ON audit BEGIN SELECT"
           " RAISE(ABORT, 'down'); END");
}

static void repair_store(fixture *f)
{
    sql(f, "DROP TRIGGER down_m; DROP TRIGGER down_a");
}

/* "seq:body:ts_us;" for every record, in seq order. */
static void records(fixture *f, char *out, size_t len)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    out[0] = '\0';
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq, body, ts_us FROM messages ORDER BY seq",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t n = strlen(out);
        snprintf(out + n, len - n, "%lld:%s:%lld;", (long long)sqlite3_column_int64(st, 0),
                 (const char *)sqlite3_column_text(st, 1), (long long)sqlite3_column_int64(st, 2));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int64_t count_rows(fixture *f, const char *table)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char q[128];
    snprintf(q, sizeof q, "SELECT count(*) FROM %s", table);
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static clog_spool *open_spool(fixture *f)
{
    char err[512] = "";
    clog_spool *sp = clog_spool_open(f->spool, err, sizeof err);
    if (!sp)
        fail_msg("clog_spool_open: %s", err);
    return sp;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *data = malloc(1 << 20);
    *len = fread(data, 1, 1 << 20, fp);
    fclose(fp);
    return data;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = read_file(from, &len);
    write_file(to, data, len);
    free(data);
}

/* Commit a batch of one record per body (and one audit event) through spool mode. Every
 * string field is set, NULL and empty included, so the round trip covers them all. */
static int commit(fixture *f, clog_spool *sp, const char *const *bodies, size_t n, int64_t ts)
{
    clog_record recs[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        memset(&recs[i], 0, sizeof recs[i]);
        recs[i].ts_us = ts + (int64_t)i;
        recs[i].kind = "message";
        recs[i].sender = "alice@example.org/phone";
        recs[i].recipient = "bob@example.org";
        recs[i].msg_id = "";
        recs[i].type = "chat";
        recs[i].body = (char *)bodies[i];
        recs[i].encrypted = 0;
        recs[i].file_size = -1;
        recs[i].outcome = "delivered";
        recs[i].verdict = "allow";
        recs[i].stanza = "<message xmlns='jabber:client'><body>\xc3\xa9</body></message>";
    }
    clog_audit ev = {0};
    ev.ts_us = ts;
    ev.actor = "alice@example.org";
    ev.event = "sign-in";
    ev.peer = "127.0.0.1:1";
    return clog_spool_commit(sp, f->log, recs, n, &ev, 1);
}

static void assert_verifies(fixture *f)
{
    clog_verify_result res;
    for (int ch = CLOG_MESSAGES; ch <= CLOG_AUDIT; ch++) {
        assert_int_equal(clog_verify(f->log, (clog_chain)ch, f->key, &res), 0);
        if (!res.ok)
            fail_msg("%s", res.problem);
    }
}

/* ---- tests ---- */

static void test_spool_created_private(void **state)
{
    fixture *f = *state;
    clog_spool *sp = open_spool(f);
    struct stat st;
    assert_int_equal(stat(f->spool, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/spool", f->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(file_size(f->spool), HEADER_BYTES);
    assert_int_equal(clog_spool_pending(sp), 0);
    /* One process per spool. */
    char err[512];
    assert_null(clog_spool_open(f->spool, err, sizeof err));
    assert_non_null(strstr(err, "in use by another process"));
    clog_spool_close(sp);
}

static void test_spool_when_store_fails_then_replay_in_order(void **state)
{
    fixture *f = *state;
    clog_spool *sp = open_spool(f);
    const char *a[] = {"one", "two"}, *b[] = {"three"}, *c[] = {"four"};
    assert_int_equal(commit(f, sp, a, 2, 1000), 0); /* healthy: straight in */
    assert_int_equal(clog_spool_pending(sp), 0);
    break_store(f);
    assert_int_equal(commit(f, sp, b, 1, 3000), 0); /* durable in the spool */
    assert_int_equal(commit(f, sp, c, 1, 2000), 0); /* an older clock: kept as it is */
    assert_int_equal(clog_spool_pending(sp), 2);
    assert_true(file_size(f->spool) > HEADER_BYTES);
    assert_int_equal(count_rows(f, "messages"), 2);
    /* Still down: replaying fails and keeps everything. */
    assert_int_equal(clog_spool_replay(sp, f->log), -1);
    assert_int_equal(clog_spool_pending(sp), 2);

    repair_store(f);
    assert_int_equal(clog_spool_replay(sp, f->log), 0);
    assert_int_equal(clog_spool_pending(sp), 0);
    assert_int_equal(file_size(f->spool), HEADER_BYTES);
    char got[512];
    records(f, got, sizeof got);
    /* Spool order, original timestamps, seq given on the way in. */
    assert_string_equal(got, "1:one:1000;2:two:1001;3:three:3000;4:four:2000;");
    assert_int_equal(count_rows(f, "audit"), 3);
    assert_verifies(f);
    /* Empty again: new batches go straight to the store. */
    const char *d[] = {"five"};
    assert_int_equal(commit(f, sp, d, 1, 4000), 0);
    assert_int_equal(clog_spool_pending(sp), 0);
    assert_int_equal(count_rows(f, "messages"), 5);
    clog_spool_close(sp);
}

static void test_spool_replayed_by_a_later_flush(void **state)
{
    fixture *f = *state;
    clog_spool *sp = open_spool(f);
    break_store(f);
    const char *a[] = {"spooled"}, *b[] = {"after"};
    assert_int_equal(commit(f, sp, a, 1, 1000), 0);
    repair_store(f);
    /* Within the retry pause the store is left alone, and the order is kept: the next
     * batch queues behind the spooled one. */
    assert_int_equal(commit(f, sp, b, 1, 2000), 0);
    assert_int_equal(clog_spool_pending(sp), 2);
    assert_int_equal(count_rows(f, "messages"), 0);
    usleep(1100 * 1000);
    /* An idle flush (an empty batch) replays. */
    assert_int_equal(clog_spool_commit(sp, f->log, NULL, 0, NULL, 0), 0);
    assert_int_equal(clog_spool_pending(sp), 0);
    char got[256];
    records(f, got, sizeof got);
    assert_string_equal(got, "1:spooled:1000;2:after:2000;");
    clog_spool_close(sp);
}

static void test_spool_kept_across_restart(void **state)
{
    fixture *f = *state;
    clog_spool *sp = open_spool(f);
    break_store(f);
    const char *a[] = {"a1", "a2"}, *b[] = {"b1"};
    assert_int_equal(commit(f, sp, a, 2, 1000), 0);
    assert_int_equal(commit(f, sp, b, 1, 2000), 0);
    clog_spool_close(sp); /* the process goes away */
    repair_store(f);
    sp = open_spool(f);
    assert_int_equal(clog_spool_pending(sp), 2);
    assert_int_equal(clog_spool_replay(sp, f->log), 0);
    char got[256];
    records(f, got, sizeof got);
    assert_string_equal(got, "1:a1:1000;2:a2:1001;3:b1:2000;");
    clog_spool_close(sp);
}

/* The process died between the store's commit and emptying the spool: the spool comes
 * back with every entry, and none may go in twice. Also for a replay cut short after
 * some entries. */
static void test_spool_exactly_once_after_crash(void **state)
{
    fixture *f = *state;
    char first_two[PATH_MAX + 64], all_three[PATH_MAX + 64];
    snprintf(first_two, sizeof first_two, "%s/first-two", f->dir);
    snprintf(all_three, sizeof all_three, "%s/all-three", f->dir);
    clog_spool *sp = open_spool(f);
    break_store(f);
    const char *a[] = {"a"}, *b[] = {"b"}, *c[] = {"c"};
    assert_int_equal(commit(f, sp, a, 1, 1000), 0);
    assert_int_equal(commit(f, sp, b, 1, 2000), 0);
    copy_file(f->spool, first_two);
    assert_int_equal(commit(f, sp, c, 1, 3000), 0);
    copy_file(f->spool, all_three);
    clog_spool_close(sp);
    repair_store(f);

    /* Entries a and b reach the store, then the process dies before emptying. */
    copy_file(first_two, f->spool);
    sp = open_spool(f);
    assert_int_equal(clog_spool_replay(sp, f->log), 0);
    clog_spool_close(sp);
    char got[256];
    records(f, got, sizeof got);
    assert_string_equal(got, "1:a:1000;2:b:2000;");

    /* Back with all three: only c is new. */
    copy_file(all_three, f->spool);
    sp = open_spool(f);
    assert_int_equal(clog_spool_pending(sp), 3);
    assert_int_equal(clog_spool_replay(sp, f->log), 0);
    records(f, got, sizeof got);
    assert_string_equal(got, "1:a:1000;2:b:2000;3:c:3000;");
    clog_spool_close(sp);

    /* And with all three once more (died again before emptying): nothing new. */
    copy_file(all_three, f->spool);
    sp = open_spool(f);
    assert_int_equal(clog_spool_replay(sp, f->log), 0);
    records(f, got, sizeof got);
    assert_string_equal(got, "1:a:1000;2:b:2000;3:c:3000;");
    assert_int_equal(count_rows(f, "audit"), 3);
    assert_verifies(f);
    clog_spool_close(sp);
}

/* Emptying gives the spool a new id: the numbers of a second outage start again from 1,
 * and the store's marker of the first one must not make them look replayed. */
static void test_spool_second_outage_not_skipped(void **state)
{
    fixture *f = *state;
    clog_spool *sp = open_spool(f);
    const char *a[] = {"first outage"}, *b[] = {"second outage"};
    break_store(f);
    assert_int_equal(commit(f, sp, a, 1, 1000), 0);
    repair_store(f);
    assert_int_equal(clog_spool_replay(sp, f->log), 0);
    clog_spool_close(sp);
    sp = open_spool(f); /* a restart in between, too */
    break_store(f);
    assert_int_equal(commit(f, sp, b, 1, 2000), 0);
    repair_store(f);
    assert_int_equal(clog_spool_replay(sp, f->log), 0);
    char got[256];
    records(f, got, sizeof got);
    assert_string_equal(got, "1:first outage:1000;2:second outage:2000;");
    clog_spool_close(sp);
}

static void test_spool_torn_last_entry_ignored(void **state)
{
    fixture *f = *state;
    clog_spool *sp = open_spool(f);
    break_store(f);
    const char *a[] = {"kept"}, *b[] = {"torn"};
    assert_int_equal(commit(f, sp, a, 1, 1000), 0);
    off_t one = file_size(f->spool);
    assert_int_equal(commit(f, sp, b, 1, 2000), 0);
    off_t two = file_size(f->spool);
    clog_spool_close(sp);
    repair_store(f);

    /* Cut short in the middle of the second entry. */
    assert_int_equal(truncate(f->spool, two - 9), 0);
    sp = open_spool(f);
    assert_int_equal(clog_spool_pending(sp), 1);
    assert_int_equal(file_size(f->spool), one); /* cut off, so new entries follow "kept" */
    const char *c[] = {"next"};
    break_store(f);
    assert_int_equal(commit(f, sp, c, 1, 3000), 0);
    repair_store(f);
    assert_int_equal(clog_spool_replay(sp, f->log), 0);
    char got[256];
    records(f, got, sizeof got);
    assert_string_equal(got, "1:kept:1000;2:next:3000;");
    clog_spool_close(sp);
}

static void test_spool_bad_checksum_of_last_entry_ignored(void **state)
{
    fixture *f = *state;
    clog_spool *sp = open_spool(f);
    break_store(f);
    const char *a[] = {"kept"}, *b[] = {"garbled"};
    assert_int_equal(commit(f, sp, a, 1, 1000), 0);
    assert_int_equal(commit(f, sp, b, 1, 2000), 0);
    clog_spool_close(sp);
    repair_store(f);
    size_t len;
    char *data = read_file(f->spool, &len);
    data[len - 40] ^= 0x01; /* inside the last entry's payload; full length */
    write_file(f->spool, data, len);
    free(data);
    sp = open_spool(f);
    assert_int_equal(clog_spool_pending(sp), 1);
    assert_int_equal(clog_spool_replay(sp, f->log), 0);
    char got[256];
    records(f, got, sizeof got);
    assert_string_equal(got, "1:kept:1000;");
    clog_spool_close(sp);
}

static void test_spool_damage_before_the_end_refused(void **state)
{
    fixture *f = *state;
    clog_spool *sp = open_spool(f);
    break_store(f);
    const char *a[] = {"first"}, *b[] = {"second"};
    assert_int_equal(commit(f, sp, a, 1, 1000), 0);
    assert_int_equal(commit(f, sp, b, 1, 2000), 0);
    clog_spool_close(sp);
    size_t len;
    char *data = read_file(f->spool, &len);
    data[HEADER_BYTES + 20] ^= 0x01; /* inside the first entry */
    write_file(f->spool, data, len);
    char err[512];
    assert_null(clog_spool_open(f->spool, err, sizeof err));
    assert_non_null(strstr(err, "damaged"));
    /* Nothing was cut or rewritten: the file waits for someone to look at it. */
    size_t len2;
    char *after = read_file(f->spool, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(after, data, len);
    free(after);
    free(data);
}

static void test_spool_not_a_spool_file(void **state)
{
    fixture *f = *state;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/spool", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    static const char text[] = "this is somebody's notes file, long enough to be more than a "
                               "spool header, and it must not be touched\n";
    write_file(f->spool, text, sizeof text - 1);
    char err[512];
    assert_null(clog_spool_open(f->spool, err, sizeof err));
    assert_non_null(strstr(err, "not a spool file"));
    assert_int_equal(file_size(f->spool), (off_t)(sizeof text - 1));
}

/* A long outage's backlog goes into the store a share per flush, not in one stop of the
 * event loop, and new batches keep queueing behind it. */
static void test_spool_long_backlog_replayed_in_shares(void **state)
{
    fixture *f = *state;
    clog_spool *sp = open_spool(f);
    enum { ENTRIES = 20, PER_ENTRY = 300 };
    static clog_record recs[PER_ENTRY];
    static char bodies[PER_ENTRY][32];
    for (int e = 0; e < ENTRIES; e++) {
        for (int i = 0; i < PER_ENTRY; i++) {
            memset(&recs[i], 0, sizeof recs[i]);
            recs[i].ts_us = 1000 + e * PER_ENTRY + i;
            recs[i].kind = "message";
            recs[i].file_size = -1;
            snprintf(bodies[i], sizeof bodies[i], "m%d", e * PER_ENTRY + i);
            recs[i].body = bodies[i];
        }
        assert_int_equal(clog_spool_write(sp, recs, PER_ENTRY, NULL, 0), 0);
    }
    assert_int_equal(clog_spool_pending(sp), ENTRIES);
    assert_int_equal(clog_spool_commit(sp, f->log, NULL, 0, NULL, 0), 0);
    size_t left = clog_spool_pending(sp);
    int64_t in = count_rows(f, "messages");
    assert_true(left > 0 && left < ENTRIES);
    assert_true(in > 0 && in < ENTRIES * PER_ENTRY);
    /* New traffic meanwhile: behind the backlog, not before it. */
    const char *late[] = {"late"};
    assert_int_equal(commit(f, sp, late, 1, 99999999), 0);
    for (int i = 0; i < 20 && clog_spool_pending(sp); i++)
        assert_int_equal(clog_spool_commit(sp, f->log, NULL, 0, NULL, 0), 0);
    assert_int_equal(clog_spool_pending(sp), 0);
    assert_int_equal(file_size(f->spool), HEADER_BYTES);
    assert_int_equal(count_rows(f, "messages"), ENTRIES * PER_ENTRY + 1);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM messages WHERE"
                                            " body <> 'm' || (seq - 1) AND body <> 'late'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), 0); /* in order, each once */
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq FROM messages WHERE body = 'late'", -1,
                                        &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), ENTRIES * PER_ENTRY + 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_verifies(f);
    clog_spool_close(sp);
}

int main(void)
{
    log_set_level(PLOG_ERROR);
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_spool_created_private),
        T(test_spool_when_store_fails_then_replay_in_order),
        T(test_spool_replayed_by_a_later_flush),
        T(test_spool_kept_across_restart),
        T(test_spool_exactly_once_after_crash),
        T(test_spool_second_outage_not_skipped),
        T(test_spool_torn_last_entry_ignored),
        T(test_spool_bad_checksum_of_last_entry_ignored),
        T(test_spool_damage_before_the_end_refused),
        T(test_spool_not_a_spool_file),
        T(test_spool_long_backlog_replayed_in_shares),
    };
    return cmocka_run_group_tests_name("clog spool", tests, NULL, NULL);
}
