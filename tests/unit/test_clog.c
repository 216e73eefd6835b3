/* test_clog.c - unit tests of the compliance log (clog.h): the canonical encoding and hash
 * chain, batches that are atomic, a chain that continues across reopen, checkpoints,
 * verification that names the first altered, missing, reordered or truncated record and a
 * forged checkpoint, purges with signed purge checkpoints, replay markers, and appenders
 * that take turns. Tampering is done the way an attacker with the database would: with
 * SQL on it.
 *
 * The contract runs against every back end: SQLite on a temporary file always, and
 * PostgreSQL when PARLEY_TEST_PG_URI names a real server, in a database of its own whose
 * schema is wiped before each case (pg_helpers.h). The connection-loss case starts a
 * private cluster, because it stops and restarts its server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "server/clog.h"
#include "server/store.h"

#include "pg_helpers.h"

#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef enum { BACKEND_SQLITE, BACKEND_PG } backend;

/* The back end of the group running now, and PostgreSQL's database for it. */
static backend g_backend;
static char g_pg_db[64];
static char g_pg_uri[512];

typedef struct fixture {
    char dir[PATH_MAX];
    char path[PATH_MAX + 32];
    char uri[PATH_MAX + 64];
    EVP_PKEY *key;
} fixture;

static int group_setup_sqlite(void **state)
{
    (void)state;
    g_backend = BACKEND_SQLITE;
    return 0;
}

static int group_setup_pg(void **state)
{
    (void)state;
    snprintf(g_pg_db, sizeof g_pg_db, "parley_test_clog_%ld", (long)getpid());
    if (pgt_create_db(g_pg_db, g_pg_uri, sizeof g_pg_uri) < 0)
        return -1;
    g_backend = BACKEND_PG;
    return 0;
}

static int group_teardown_pg(void **state)
{
    (void)state;
    return pgt_drop_db(g_pg_db);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/parley-test-clog-XXXXXX";
    if (!mkdtemp(tmpl))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s", tmpl);
    snprintf(f->path, sizeof f->path, "%s/compliance.db", f->dir);
    if (g_backend == BACKEND_SQLITE) {
        snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
    } else {
        /* Start from nothing: clog_open must create the schema. */
        if (pgt_exec(g_pg_uri, "DROP SCHEMA public CASCADE; CREATE SCHEMA public") < 0)
            return -1;
        snprintf(f->uri, sizeof f->uri, "%s", g_pg_uri);
    }
    f->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!f->key)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    EVP_PKEY_free(f->key);
    free(f);
    return 0;
}

static clog *open_log(fixture *f, EVP_PKEY *key, int every)
{
    char err[512] = "";
    clog *c = clog_open(f->uri, key, every, 0, err, sizeof err);
    if (!c)
        fail_msg("clog_open: %s", err);
    return c;
}

/* A record with fields derived from n (borrowed strings: static buffers per slot). */
static void make_record(clog_record *r, int n, char *bodybuf, size_t len)
{
    memset(r, 0, sizeof *r);
    r->file_size = -1;
    r->ts_us = 1700000000000000LL + n * 1000000LL;
    r->kind = "message";
    r->sender = n % 2 ? "alice@example.org/phone" : "bob@example.org/desk";
    r->recipient = n % 2 ? "bob@example.org" : "alice@example.org";
    r->msg_id = "id";
    r->type = "chat";
    snprintf(bodybuf, len, "message number %d", n);
    r->body = bodybuf;
    r->outcome = "delivered";
    r->verdict = "allow";
    r->stanza = "<message/>";
}

/* Append count records numbered from first, in one batch. */
static void append_n(clog *c, int first, int count)
{
    clog_record recs[16];
    char bodies[16][64];
    assert_true(count <= 16);
    for (int i = 0; i < count; i++)
        make_record(&recs[i], first + i, bodies[i], sizeof bodies[i]);
    assert_int_equal(clog_append(c, recs, (size_t)count, NULL, 0), 0);
}

/* Run SQL on the store behind clog's back (the same text for both back ends). */
static void sql(fixture *f, const char *text)
{
    if (g_backend == BACKEND_PG) {
        if (pgt_exec(f->uri, text) < 0)
            fail_msg("%s failed", text);
        return;
    }
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", text, msg);
    sqlite3_close(db);
}

/* The first value of a query, as text. */
static void value(fixture *f, const char *query, char *out, size_t len)
{
    if (g_backend == BACKEND_PG) {
        if (pgt_value(f->uri, query, out, len) < 0)
            fail_msg("%s failed", query);
        return;
    }
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, query, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", query, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, len, "%s", t ? (const char *)t : "");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int64_t count_rows(fixture *f, const char *table)
{
    char q[128], v[32];
    snprintf(q, sizeof q, "SELECT count(*) FROM %s", table);
    value(f, q, v, sizeof v);
    return strtoll(v, NULL, 10);
}

/* A stored hash column of one row, as lower-case hex. */
static void hash_hex(fixture *f, const char *table, const char *col, const char *where,
                     char out[65])
{
    char q[256];
    if (g_backend == BACKEND_PG)
        snprintf(q, sizeof q, "SELECT encode(%s, 'hex') FROM %s WHERE %s", col, table, where);
    else
        snprintf(q, sizeof q, "SELECT lower(hex(%s)) FROM %s WHERE %s", col, table, where);
    value(f, q, out, 65);
}

/* A blob literal of hex digits, in the back end's SQL. */
static void blob_literal(const char *hex, char *out, size_t len)
{
    if (g_backend == BACKEND_PG)
        snprintf(out, len, "'\\x%s'::bytea", hex);
    else
        snprintf(out, len, "X'%s'", hex);
}

/* Make inserts into table fail when cond (an SQL expression on NEW) holds: a store that
 * refuses to be written. */
static void break_table(fixture *f, const char *table, const char *cond)
{
    char q[768];
    if (g_backend == BACKEND_PG)
        snprintf(q, sizeof q,
                 "CREATE FUNCTION boom_%s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                 " IF %s THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$;"
                 "CREATE TRIGGER boom_%s BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION"
                 " boom_%s()",
                 table, cond, table, table, table);
    else
        snprintf(q, sizeof q,
                 "CREATE TRIGGER boom_%s BEFORE INSERT ON %s WHEN %s"
                 " BEGIN SELECT RAISE(ABORT, 'boom'); END",
                 table, table, cond);
    sql(f, q);
}

static void repair_table(fixture *f, const char *table)
{
    char q[256];
    if (g_backend == BACKEND_PG)
        snprintf(q, sizeof q, "DROP TRIGGER boom_%s ON %s; DROP FUNCTION boom_%s()", table,
                 table, table);
    else
        snprintf(q, sizeof q, "DROP TRIGGER boom_%s", table);
    sql(f, q);
}

/* Verify with a read-only handle, as parleyctl does. */
static clog_verify_result verify(fixture *f, clog_chain chain, EVP_PKEY *trusted)
{
    char err[512] = "";
    clog *c = clog_open(f->uri, NULL, 1, CLOG_READONLY, err, sizeof err);
    if (!c)
        fail_msg("clog_open read-only: %s", err);
    clog_verify_result res;
    assert_int_equal(clog_verify(c, chain, trusted, &res), 0);
    clog_close(c);
    return res;
}

static void assert_problem(clog_verify_result res, const char *expect)
{
    if (res.ok || strstr(res.problem, expect) == NULL)
        fail_msg("expected a problem containing '%s', got ok=%d '%s'", expect, res.ok, res.problem);
}

/* ---- encoding and chain ---- */

static void test_canonical_encoding(void **state)
{
    (void)state;
    clog_record r;
    memset(&r, 0, sizeof r);
    r.seq = 7;
    r.ts_us = 12;
    r.kind = "message";
    r.subject = ""; /* empty and NULL must differ */
    r.file_size = -1;
    size_t len;
    unsigned char *enc = clog_record_encode(&r, &len);
    /* tag */
    static const char tag[] = "parley-clog-message-v1";
    assert_memory_equal(enc, "\0\0\0\x16", 4);
    assert_memory_equal(enc + 4, tag, strlen(tag));
    size_t off = 4 + strlen(tag);
    assert_memory_equal(enc + off, "\0\0\0\x01" "7", 5); /* seq as decimal */
    off += 5;
    assert_memory_equal(enc + off, "\0\0\0\x02" "12", 6);
    off += 6;
    assert_memory_equal(enc + off, "\0\0\0\x07" "message", 11);
    off += 11;
    /* sender, recipient, msg_id, thread, type: NULL */
    for (int i = 0; i < 5; i++, off += 4)
        assert_memory_equal(enc + off, "\xff\xff\xff\xff", 4);
    assert_memory_equal(enc + off, "\0\0\0\0", 4); /* subject "" */
    off += 4;
    assert_memory_equal(enc + off, "\xff\xff\xff\xff", 4); /* body NULL */
    off += 4;
    assert_memory_equal(enc + off, "\0\0\0\x01" "0", 5); /* encrypted */
    off += 5;
    /* enc_ns, file_name, file_size, file_type, file_sha256, outcome, verdict, reason,
     * stanza: all NULL, and nothing after them */
    for (int i = 0; i < 9; i++, off += 4)
        assert_memory_equal(enc + off, "\xff\xff\xff\xff", 4);
    assert_int_equal(off, len);

    /* hash = SHA-256(prev_hash || encoding) */
    unsigned char buf[4096], want[32], got[32];
    memset(r.prev_hash, 0xab, 32);
    memcpy(buf, r.prev_hash, 32);
    memcpy(buf + 32, enc, len);
    unsigned int n;
    assert_int_equal(EVP_Digest(buf, 32 + len, want, &n, EVP_sha256(), NULL), 1);
    clog_record_hash(&r, got);
    assert_memory_equal(got, want, 32);
    free(enc);

    /* a different field, or the same bytes in a different field, changes the hash */
    unsigned char other[32];
    r.subject = NULL;
    r.body = "";
    clog_record_hash(&r, other);
    assert_memory_not_equal(other, got, 32);
}

static void test_chain_links(void **state)
{
    fixture *f = *state;
    clog *c = open_log(f, f->key, 1000);
    clog_record recs[3];
    char bodies[3][64];
    for (int i = 0; i < 3; i++)
        make_record(&recs[i], i + 1, bodies[i], sizeof bodies[i]);
    assert_int_equal(clog_append(c, recs, 3, NULL, 0), 0);
    unsigned char zero[32] = {0};
    assert_int_equal(recs[0].seq, 1);
    assert_memory_equal(recs[0].prev_hash, zero, 32);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(recs[i].seq, i + 1);
        assert_memory_equal(recs[i].prev_hash, recs[i - 1].hash, 32);
    }
    append_n(c, 4, 2);
    clog_close(c); /* writes the closing checkpoint */
    clog_verify_result res = verify(f, CLOG_MESSAGES, f->key);
    assert_true(res.ok);
    assert_int_equal(res.records, 5);
    assert_int_equal(res.checkpoints, 1);
    assert_int_equal(count_rows(f, "checkpoints"), 1);
}

static void test_reopen_continues_chain(void **state)
{
    fixture *f = *state;
    clog *c = open_log(f, f->key, 1000);
    append_n(c, 1, 3);
    clog_close(c);
    c = open_log(f, f->key, 1000);
    clog_record r;
    char body[64];
    make_record(&r, 4, body, sizeof body);
    assert_int_equal(clog_append(c, &r, 1, NULL, 0), 0);
    assert_int_equal(r.seq, 4);
    clog_close(c);
    clog_verify_result res = verify(f, CLOG_MESSAGES, f->key);
    assert_true(res.ok);
    assert_int_equal(res.records, 4);
    assert_int_equal(res.checkpoints, 2);
}

static void test_checkpoint_every(void **state)
{
    fixture *f = *state;
    clog *c = open_log(f, f->key, 4);
    for (int i = 0; i < 10; i++)
        append_n(c, i + 1, 1);
    /* at 4 and 8 while appending */
    assert_int_equal(count_rows(f, "checkpoints"), 2);
    clog_close(c);
    assert_int_equal(count_rows(f, "checkpoints"), 3); /* and 10 at close */
    assert_true(verify(f, CLOG_MESSAGES, f->key).ok);
}

/* A batch either lands completely (records and audit events) or not at all, and a
 * failed batch leaves no gap in the chain. */
static void test_batch_atomic(void **state)
{
    fixture *f = *state;
    clog *c = open_log(f, f->key, 1000);
    append_n(c, 1, 2);
    break_table(f, "messages", "NEW.body = 'boom'");
    clog_record recs[3];
    char bodies[3][64];
    for (int i = 0; i < 3; i++)
        make_record(&recs[i], 3 + i, bodies[i], sizeof bodies[i]);
    recs[1].body = "boom";
    clog_audit ev = {0};
    ev.ts_us = time_now_us();
    ev.event = "sign-in";
    ev.actor = "alice@example.org";
    assert_int_equal(clog_append(c, recs, 3, &ev, 1), -1);
    assert_non_null(strstr(clog_last_error(c), "boom"));
    assert_int_equal(count_rows(f, "messages"), 2);
    assert_int_equal(count_rows(f, "audit"), 0);
    repair_table(f, "messages");
    recs[1].body = bodies[1];
    assert_int_equal(clog_append(c, recs, 3, &ev, 1), 0);
    assert_int_equal(recs[0].seq, 3);
    assert_int_equal(ev.seq, 1);
    clog_close(c);
    assert_true(verify(f, CLOG_MESSAGES, f->key).ok);
    assert_true(verify(f, CLOG_AUDIT, f->key).ok);
}

/* ---- tampering ---- */

static void build_ten(fixture *f, int every)
{
    clog *c = open_log(f, f->key, every);
    append_n(c, 1, 5);
    append_n(c, 6, 5);
    clog_close(c);
    assert_true(verify(f, CLOG_MESSAGES, f->key).ok);
}

static void test_detect_update(void **state)
{
    fixture *f = *state;
    build_ten(f, 1000);
    sql(f, "UPDATE messages SET body = 'nothing to see' WHERE seq = 6");
    clog_verify_result res = verify(f, CLOG_MESSAGES, f->key);
    assert_problem(res, "record 6 altered");
    assert_int_equal(res.bad_seq, 6);
}

static void test_detect_update_rehashed(void **state)
{
    fixture *f = *state;
    build_ten(f, 1000);
    /* An attacker who recomputes the altered record's hash breaks the next link. */
    clog_record r;
    char body[64];
    make_record(&r, 6, body, sizeof body);
    r.seq = 6;
    r.body = "forged";
    char hex[65], lit[128], q[256];
    hash_hex(f, "messages", "prev_hash", "seq = 6", hex);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        r.prev_hash[i] = (unsigned char)v;
    }
    clog_record_hash(&r, r.hash);
    clog_hex(r.hash, 32, hex);
    blob_literal(hex, lit, sizeof lit);
    snprintf(q, sizeof q, "UPDATE messages SET body = 'forged', hash = %s WHERE seq = 6", lit);
    sql(f, q);
    assert_problem(verify(f, CLOG_MESSAGES, f->key), "record 6 altered or replaced");
}

static void test_detect_delete_middle(void **state)
{
    fixture *f = *state;
    build_ten(f, 1000);
    sql(f, "DELETE FROM messages WHERE seq = 4");
    clog_verify_result res = verify(f, CLOG_MESSAGES, f->key);
    assert_problem(res, "record 4 missing");
    assert_int_equal(res.bad_seq, 4);
    sql(f, "DELETE FROM messages WHERE seq IN (5, 6)");
    assert_problem(verify(f, CLOG_MESSAGES, f->key), "records 4 to 6 missing");
}

static void test_detect_tail_removed(void **state)
{
    fixture *f = *state;
    build_ten(f, 1000); /* the closing checkpoint pins record 10 */
    sql(f, "DELETE FROM messages WHERE seq > 7");
    assert_problem(verify(f, CLOG_MESSAGES, f->key), "records after 7 removed (checkpoint at 10)");
}

static void test_tail_after_checkpoint_undetectable(void **state)
{
    fixture *f = *state;
    /* Documented limit: without a later checkpoint, a cut tail looks like a short chain. */
    clog *c = open_log(f, NULL, 1000); /* no key: no checkpoints */
    append_n(c, 1, 5);
    clog_close(c);
    sql(f, "DELETE FROM messages WHERE seq > 3");
    clog_verify_result res = verify(f, CLOG_MESSAGES, NULL);
    assert_true(res.ok);
    assert_int_equal(res.records, 3);
}

static void test_detect_swap(void **state)
{
    fixture *f = *state;
    build_ten(f, 1000);
    sql(f, "UPDATE messages SET seq = -1 WHERE seq = 3;"
           "UPDATE messages SET seq = 3 WHERE seq = 8;"
           "UPDATE messages SET seq = 8 WHERE seq = -1;");
    clog_verify_result res = verify(f, CLOG_MESSAGES, f->key);
    assert_problem(res, "record 3 out of order (it holds record 8");
    assert_int_equal(res.bad_seq, 3);
}

static void test_detect_forged_checkpoint(void **state)
{
    fixture *f = *state;
    build_ten(f, 5); /* checkpoints at 5 and 10 */
    char lit[200], q[300];
    blob_literal("3045022100ababababababababababababababababababababababababababababababab"
                 "ab022000abababababababababababababababababababababababababababababab", lit,
                 sizeof lit);
    snprintf(q, sizeof q, "UPDATE checkpoints SET signature = %s WHERE seq = 5", lit);
    sql(f, q);
    assert_problem(verify(f, CLOG_MESSAGES, f->key), "checkpoint at 5: invalid signature");
}

static void test_detect_foreign_signer(void **state)
{
    fixture *f = *state;
    /* Everything rewritten and re-signed with the attacker's own key verifies by itself,
     * but not against the server's key. Ed25519 also exercises the no-digest path. */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(other);
    clog *c = open_log(f, other, 1000);
    append_n(c, 1, 3);
    clog_close(c);
    assert_true(verify(f, CLOG_MESSAGES, other).ok);
    assert_true(verify(f, CLOG_MESSAGES, NULL).ok);
    assert_problem(verify(f, CLOG_MESSAGES, f->key),
                   "checkpoint at 3: signed by a key that is not the server's");
    EVP_PKEY_free(other);
}

static void test_detect_rewritten_chain(void **state)
{
    fixture *f = *state;
    build_ten(f, 1000);
    /* Rewrite record 2 and every hash after it consistently: only the checkpoint tells. */
    clog *c = open_log(f, NULL, 1000);
    sql(f, "DELETE FROM messages WHERE seq >= 2");
    clog_record recs[9];
    char bodies[9][64];
    for (int i = 0; i < 9; i++)
        make_record(&recs[i], i + 2, bodies[i], sizeof bodies[i]);
    recs[0].body = "rewritten";
    assert_int_equal(clog_append(c, recs, 9, NULL, 0), 0);
    clog_close(c);
    assert_problem(verify(f, CLOG_MESSAGES, f->key),
                   "record 10 does not match the checkpoint at 10");
}

static void test_audit_chain(void **state)
{
    fixture *f = *state;
    clog *c = open_log(f, f->key, 1000);
    clog_audit ev[3];
    memset(ev, 0, sizeof ev);
    const char *events[] = {"sign-in", "sign-out", "user-add"};
    for (int i = 0; i < 3; i++) {
        ev[i].ts_us = time_now_us();
        ev[i].actor = "alice@example.org/phone";
        ev[i].event = (char *)events[i];
        ev[i].peer = "127.0.0.1:4000";
    }
    assert_int_equal(clog_append(c, NULL, 0, ev, 3), 0);
    assert_int_equal(ev[2].seq, 3);
    clog_close(c);
    clog_verify_result res = verify(f, CLOG_AUDIT, f->key);
    assert_true(res.ok);
    assert_int_equal(res.records, 3);
    assert_true(verify(f, CLOG_MESSAGES, f->key).ok); /* empty chain verifies */
    sql(f, "UPDATE audit SET peer = '10.0.0.1:1' WHERE seq = 2");
    assert_problem(verify(f, CLOG_AUDIT, f->key), "record 2 altered");
}

/* ---- search ---- */

static int count_cb(void *ud, const clog_record *r)
{
    (void)r;
    (*(int *)ud)++;
    return 0;
}

static int search_count(clog *c, const clog_filter *flt)
{
    int n = 0;
    assert_int_equal(clog_search(c, flt, count_cb, &n), 0);
    return n;
}

static void test_search(void **state)
{
    fixture *f = *state;
    build_ten(f, 1000); /* odd: alice/phone -> bob, even: bob/desk -> alice */
    char err[512];
    clog *c = clog_open(f->uri, NULL, 1, CLOG_READONLY, err, sizeof err);
    assert_non_null(c);
    clog_filter flt = {0};
    assert_int_equal(search_count(c, &flt), 10);
    flt.from = "alice@example.org"; /* bare: every resource */
    assert_int_equal(search_count(c, &flt), 5);
    flt.from = "alice@example.org/phone";
    assert_int_equal(search_count(c, &flt), 5);
    flt.from = "alice@example.org/desk";
    assert_int_equal(search_count(c, &flt), 0);
    flt.from = "alice@example.or"; /* not a prefix match */
    assert_int_equal(search_count(c, &flt), 0);
    memset(&flt, 0, sizeof flt);
    flt.to = "alice@example.org";
    assert_int_equal(search_count(c, &flt), 5);
    memset(&flt, 0, sizeof flt);
    flt.jid = "alice@example.org";
    assert_int_equal(search_count(c, &flt), 10);
    memset(&flt, 0, sizeof flt);
    flt.text = "NUMBER 1"; /* case-insensitive: 1 and 10 */
    assert_int_equal(search_count(c, &flt), 2);
    memset(&flt, 0, sizeof flt);
    flt.since_us = 1700000000000000LL + 3 * 1000000LL;
    flt.until_us = 1700000000000000LL + 6 * 1000000LL;
    assert_int_equal(search_count(c, &flt), 3);
    flt.limit = 2;
    assert_int_equal(search_count(c, &flt), 2);
    clog_close(c);
}

static void test_readonly(void **state)
{
    fixture *f = *state;
    char err[512];
    /* Nothing there yet: a read-only open creates nothing. */
    assert_null(clog_open(f->uri, NULL, 1, CLOG_READONLY, err, sizeof err));
    clog *c = open_log(f, f->key, 10);
    append_n(c, 1, 2);
    clog_close(c);
    c = clog_open(f->uri, NULL, 1, CLOG_READONLY, err, sizeof err);
    assert_non_null(c);
    clog_record r;
    char body[64];
    make_record(&r, 3, body, sizeof body);
    assert_int_equal(clog_append(c, &r, 1, NULL, 0), -1);
    assert_non_null(strstr(clog_last_error(c), "read-only"));
    clog_purge_result pr;
    assert_int_equal(clog_purge(c, INT64_MAX, NULL, "admin", NULL, &pr), -1);
    clog_close(c);
    assert_int_equal(count_rows(f, "messages"), 2);
}

static void test_sqlite_file_and_bad_uris(void **state)
{
    fixture *f = *state;
    char err[512];
    assert_null(clog_open("sqlite::memory:", NULL, 1, 0, err, sizeof err));
    assert_null(clog_open("mysql://x", NULL, 1, 0, err, sizeof err));
    assert_non_null(strstr(err, "unknown scheme"));
    /* A misspelt scheme must not put the password into the message. */
    assert_null(clog_open("postgresq://u:s3cret@h/db", NULL, 1, 0, err, sizeof err));
    assert_null(strstr(err, "s3cret"));
    clog *c = open_log(f, f->key, 10);
    clog_close(c);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_uri_redacted(void **state)
{
    (void)state;
    char out[256];
    store_uri_redacted("postgresql://u:s3cret@db.example:5433/arch?sslmode=require&password=x",
                      out, sizeof out);
    assert_string_equal(out, "postgresql://u@db.example:5433/arch?...");
    store_uri_redacted("postgres://db.example/arch", out, sizeof out);
    assert_string_equal(out, "postgres://db.example/arch");
    store_uri_redacted("postgresql://u@h/d", out, sizeof out);
    assert_string_equal(out, "postgresql://u@h/d");
    store_uri_redacted("sqlite:/var/lib/parley/compliance.db", out, sizeof out);
    assert_string_equal(out, "sqlite:/var/lib/parley/compliance.db");
}

/* ---- retention ---- */

#define OLD_US 1600000000000000LL   /* 2020-09-13 */
#define YOUNG_US 1700000000000000LL /* 2023-11-14 */
#define CUTOFF_US 1650000000000000LL

/* Ten records; old (before CUTOFF_US) are 1-4 and 6-7, so a purge stops at 5. */
static void build_aged(fixture *f, int every)
{
    clog *c = open_log(f, f->key, every);
    for (int i = 1; i <= 10; i++) {
        clog_record r;
        char body[64];
        make_record(&r, i, body, sizeof body);
        int old = i <= 4 || i == 6 || i == 7;
        r.ts_us = (old ? OLD_US : YOUNG_US) + i;
        assert_int_equal(clog_append(c, &r, 1, NULL, 0), 0);
    }
    clog_close(c);
}

static clog_purge_result purge(fixture *f, int64_t before)
{
    clog *c = open_log(f, f->key, 1000);
    clog_purge_result res;
    if (clog_purge(c, before, f->key, "admin", "uid=0", &res) < 0)
        fail_msg("clog_purge: %s", clog_last_error(c));
    clog_close(c);
    return res;
}

static int find_audit(void *ud, const clog_audit *a)
{
    char *out = ud;
    if (strcmp(a->event, "compliance-purge") == 0)
        snprintf(out, 256, "%s|%s|%s", a->actor, a->target ? a->target : "", a->detail);
    return 0;
}

static void test_purge_prefix_then_verify(void **state)
{
    fixture *f = *state;
    build_aged(f, 3); /* checkpoints at 3, 6, 9 and 10 */
    clog_purge_result res = purge(f, CUTOFF_US);
    assert_int_equal(res.count, 4);
    assert_int_equal(res.first_seq, 1);
    assert_int_equal(res.last_seq, 4);
    assert_int_equal(count_rows(f, "messages"), 6);
    assert_int_equal(count_rows(f, "purges"), 1);
    clog_verify_result v = verify(f, CLOG_MESSAGES, f->key);
    if (!v.ok)
        fail_msg("%s", v.problem);
    assert_int_equal(v.records, 6);
    assert_int_equal(v.purged_seq, 4);
    assert_int_equal(v.checkpoints, 4); /* 3 (signature only), 6, 9, 10 */
    /* The audit chain records who purged what, and verifies. */
    char err[512], found[256] = "";
    clog *c = clog_open(f->uri, NULL, 1, CLOG_READONLY, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(clog_search_audit(c, NULL, find_audit, found), 0);
    clog_close(c);
    assert_string_equal(found, "admin|messages|uid=0 records=4 seq=1-4 "
                               "before=2022-04-15T05:20:00.000000Z");
    assert_true(verify(f, CLOG_AUDIT, f->key).ok);

    /* Nothing older than the first remaining record: nothing is written. */
    res = purge(f, CUTOFF_US);
    assert_int_equal(res.count, 0);
    assert_int_equal(count_rows(f, "purges"), 1);
    assert_int_equal(count_rows(f, "audit"), 1);

    /* Everything: the chain goes on from the purge point. */
    res = purge(f, YOUNG_US + 1000);
    assert_int_equal(res.count, 6);
    assert_int_equal(res.last_seq, 10);
    assert_int_equal(count_rows(f, "messages"), 0);
    assert_true(verify(f, CLOG_MESSAGES, f->key).ok);
    c = open_log(f, f->key, 1000);
    clog_record r;
    char body[64];
    make_record(&r, 11, body, sizeof body);
    assert_int_equal(clog_append(c, &r, 1, NULL, 0), 0);
    assert_int_equal(r.seq, 11);
    clog_close(c);
    v = verify(f, CLOG_MESSAGES, f->key);
    assert_true(v.ok);
    assert_int_equal(v.records, 1);
    assert_int_equal(v.purged_seq, 10);
}

static void test_purge_then_detect_deletion(void **state)
{
    fixture *f = *state;
    build_aged(f, 1000);
    purge(f, CUTOFF_US);
    /* The first remaining record removed as well: the purge checkpoint says where the
     * chain starts, so that is missing, not a shorter purge. */
    sql(f, "DELETE FROM messages WHERE seq = 5");
    clog_verify_result v = verify(f, CLOG_MESSAGES, f->key);
    assert_problem(v, "record 5 missing");
    assert_int_equal(v.bad_seq, 5);
    sql(f, "DELETE FROM messages WHERE seq = 7");
    assert_problem(verify(f, CLOG_MESSAGES, f->key), "record 5 missing");
}

static void test_purge_checkpoint_removed_or_forged(void **state)
{
    fixture *f = *state;
    build_aged(f, 1000);
    purge(f, CUTOFF_US);
    sql(f, "CREATE TABLE saved AS SELECT * FROM purges");
    /* Without it, the chain must start at 1 again. */
    sql(f, "DELETE FROM purges");
    assert_problem(verify(f, CLOG_MESSAGES, f->key), "records 1 to 4 missing");
    /* A head checkpoint copied in as a purge checkpoint (to cover more deletions) does
     * not verify: the two are signed over different texts. */
    clog *c = open_log(f, f->key, 1000);
    clog_close(c); /* a head checkpoint at 10 */
    sql(f, "INSERT INTO purges SELECT * FROM checkpoints WHERE seq = 10;"
           "DELETE FROM messages");
    assert_problem(verify(f, CLOG_MESSAGES, f->key), "purge checkpoint at 10: invalid signature");
    /* The genuine one moved to a later record does not verify either. */
    sql(f, "DELETE FROM purges; INSERT INTO purges SELECT * FROM saved;"
           "UPDATE purges SET seq = 6");
    assert_problem(verify(f, CLOG_MESSAGES, f->key), "purge checkpoint at 6: invalid signature");
}

static void test_purge_does_not_launder_tampering(void **state)
{
    fixture *f = *state;
    build_aged(f, 1000);
    sql(f, "UPDATE messages SET body = 'rewritten' WHERE seq = 2");
    clog *c = open_log(f, f->key, 1000);
    clog_purge_result res;
    assert_int_equal(clog_purge(c, CUTOFF_US, f->key, "admin", NULL, &res), -1);
    assert_non_null(strstr(clog_last_error(c), "record 2 altered"));
    assert_non_null(strstr(clog_last_error(c), "nothing was removed"));
    clog_close(c);
    assert_int_equal(count_rows(f, "messages"), 10);
    assert_int_equal(count_rows(f, "purges"), 0);
    assert_int_equal(count_rows(f, "audit"), 0);
}

static void test_purge_needs_key(void **state)
{
    fixture *f = *state;
    build_aged(f, 1000);
    clog *c = open_log(f, NULL, 1000);
    clog_purge_result res;
    assert_int_equal(clog_purge(c, CUTOFF_US, NULL, "admin", NULL, &res), -1);
    assert_non_null(strstr(clog_last_error(c), "signing key"));
    clog_close(c);
    assert_int_equal(count_rows(f, "messages"), 10);
}

/* ---- replay markers ---- */

static void test_append_marked_once(void **state)
{
    fixture *f = *state;
    clog *c = open_log(f, f->key, 1000);
    clog_record recs[2];
    char bodies[2][64];
    for (int i = 0; i < 2; i++)
        make_record(&recs[i], i + 1, bodies[i], sizeof bodies[i]);
    int64_t m = -1;
    assert_int_equal(clog_marker(c, "spool-a", &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(clog_append_marked(c, recs, 1, NULL, 0, "spool-a", 1, 1), 0);
    /* The same batch again (a replay after a crash): nothing is written. */
    assert_int_equal(clog_append_marked(c, recs, 1, NULL, 0, "spool-a", 1, 1), 1);
    assert_int_equal(count_rows(f, "messages"), 1);
    assert_int_equal(clog_append_marked(c, &recs[1], 1, NULL, 0, "spool-a", 2, 3), 0);
    assert_int_equal(clog_marker(c, "spool-a", &m), 0);
    assert_int_equal(m, 3);
    /* A batch cannot be partly in. */
    assert_int_equal(clog_append_marked(c, recs, 1, NULL, 0, "spool-a", 3, 4), -1);
    assert_non_null(strstr(clog_last_error(c), "inside the batches"));
    /* Markers are per source. */
    assert_int_equal(clog_append_marked(c, recs, 1, NULL, 0, "spool-b", 1, 1), 0);
    assert_int_equal(clog_append_marked(c, recs, 1, NULL, 0, "", 1, 1), -1);
    clog_close(c);
    assert_int_equal(count_rows(f, "messages"), 3);
    assert_true(verify(f, CLOG_MESSAGES, f->key).ok);
}

/* ---- appenders take turns ---- */

typedef struct writer {
    const char *uri;
    EVP_PKEY *key;
    int id;
    int failures;
    char error[512];
} writer;

static void *write_batches(void *ud)
{
    writer *w = ud;
    char err[512];
    clog *c = clog_open(w->uri, w->key, 7, 0, err, sizeof err);
    if (!c) {
        snprintf(w->error, sizeof w->error, "%s", err);
        w->failures++;
        return NULL;
    }
    for (int i = 0; i < 40; i++) {
        clog_record recs[2];
        char bodies[2][64];
        for (int k = 0; k < 2; k++)
            make_record(&recs[k], w->id * 1000 + i * 2 + k, bodies[k], sizeof bodies[k]);
        clog_audit ev = {0};
        ev.ts_us = time_now_us();
        ev.event = "test";
        ev.actor = w->id ? "writer-1" : "writer-0";
        /* Taking turns means no append fails: without the lock, both would read the
         * same head and one would hit the other's seq. */
        if (clog_append(c, recs, 2, &ev, 1) < 0) {
            snprintf(w->error, sizeof w->error, "%s", clog_last_error(c));
            w->failures++;
        }
    }
    clog_close(c);
    return NULL;
}

static void test_two_appenders_one_chain(void **state)
{
    fixture *f = *state;
    clog *c = open_log(f, f->key, 7); /* create the schema before the race */
    clog_close(c);
    writer w[2] = {{f->uri, f->key, 0, 0, ""}, {f->uri, f->key, 1, 0, ""}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, write_batches, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        if (w[i].failures)
            fail_msg("writer %d: %s", i, w[i].error);
    assert_int_equal(count_rows(f, "messages"), 160);
    /* One chain: every record's seq is unique and consecutive, each links to the one
     * before, whoever wrote it. */
    clog_verify_result v = verify(f, CLOG_MESSAGES, f->key);
    if (!v.ok)
        fail_msg("%s", v.problem);
    assert_int_equal(v.records, 160);
    v = verify(f, CLOG_AUDIT, f->key);
    assert_true(v.ok);
    assert_int_equal(v.records, 80);
}

/* clog_schema: the version found at open (0: created), the version now, the newest known;
 * an older store is read as it is and migrated by a writable open; a newer one never
 * opens. */
static void test_schema_versions(void **state)
{
    fixture *f = *state;
    const char *table = g_backend == BACKEND_PG ? "compliance_schema_version" : "schema_version";
    char err[512] = "", q[256];
    int found, current, supported;
    clog *c = open_log(f, f->key, 10);
    clog_schema(c, &found, &current, &supported);
    assert_int_equal(found, 0);
    assert_int_equal(current, supported);
    assert_int_equal(supported, g_backend == BACKEND_PG ? 2 : 3);
    append_n(c, 1, 2);
    clog_close(c);
    c = open_log(f, f->key, 10);
    clog_schema(c, &found, &current, &supported);
    assert_int_equal(found, supported);
    assert_int_equal(current, supported);
    clog_close(c);

    /* Back to the version before the dedupe key (what that version's tables were). */
    snprintf(q, sizeof q, "DELETE FROM %s WHERE version = %d; DROP INDEX messages_dedupe;"
                          " ALTER TABLE messages DROP COLUMN dedupe_key", table, supported);
    sql(f, q);
    c = clog_open(f->uri, NULL, 1, CLOG_READONLY, err, sizeof err);
    if (!c)
        fail_msg("read-only open of an older schema: %s", err);
    clog_schema(c, &found, &current, &supported);
    assert_int_equal(found, supported - 1);
    assert_int_equal(current, supported - 1); /* read-only: not migrated */
    clog_verify_result res;
    assert_int_equal(clog_verify(c, CLOG_MESSAGES, NULL, &res), 0);
    assert_true(res.ok);
    clog_close(c);
    c = open_log(f, f->key, 10);
    clog_schema(c, &found, &current, &supported);
    assert_int_equal(found, supported - 1);
    assert_int_equal(current, supported);
    append_n(c, 3, 1);
    clog_close(c);
    res = verify(f, CLOG_MESSAGES, NULL);
    assert_true(res.ok);
    assert_int_equal(res.records, 3);

    /* Newer than this program: refused by both kinds of open, nothing written. */
    snprintf(q, sizeof q, "INSERT INTO %s(version, applied) VALUES (%d, 0)", table,
             supported + 1);
    sql(f, q);
    int64_t before = count_rows(f, "audit") + count_rows(f, "messages") +
                     count_rows(f, "checkpoints");
    char want[128];
    snprintf(want, sizeof want, "schema version %d is newer than this program supports (%d)",
             supported + 1, supported);
    assert_null(clog_open(f->uri, f->key, 10, 0, err, sizeof err));
    if (!strstr(err, want))
        fail_msg("writable open: '%s', want '%s'", err, want);
    assert_null(clog_open(f->uri, NULL, 1, CLOG_READONLY, err, sizeof err));
    if (!strstr(err, want))
        fail_msg("read-only open: '%s', want '%s'", err, want);
    assert_int_equal(count_rows(f, "audit") + count_rows(f, "messages") +
                         count_rows(f, "checkpoints"),
                     before);
}

/* ---- PostgreSQL only ---- */

static void test_pg_schema(void **state)
{
    fixture *f = *state;
    clog *c = open_log(f, f->key, 1000);
    append_n(c, 1, 1);
    clog_close(c);
    char v[128];
    value(f, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
             " AND table_name IN ('messages', 'audit', 'checkpoints', 'purges', 'spool_replay',"
             " 'compliance_schema_version')",
          v, sizeof v);
    assert_string_equal(v, "6");
    /* Its own version table: the account store's schema_version is not touched. */
    value(f, "SELECT to_regclass('schema_version') IS NULL", v, sizeof v);
    assert_string_equal(v, "t");
    value(f, "SELECT max(version) FROM compliance_schema_version", v, sizeof v);
    assert_string_equal(v, "2"); /* 2: the dedupe key of copies sent again */
    value(f, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'messages'"
             " AND column_name IN ('prev_hash', 'hash') AND data_type = 'bytea'",
          v, sizeof v);
    assert_string_equal(v, "2");
    value(f, "SELECT time FROM messages WHERE seq = 1", v, sizeof v);
    assert_string_equal(v, "2023-11-14 22:13:21"); /* ts_us 1700000001000000, UTC */
    value(f, "SELECT octet_length(hash) FROM messages WHERE seq = 1", v, sizeof v);
    assert_string_equal(v, "32");
    value(f, "SELECT count(*) FROM pg_indexes WHERE tablename = 'messages'", v, sizeof v);
    assert_string_equal(v, "6"); /* the primary key, four, and the dedupe key */
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_pg_connection_loss(void **state)
{
    (void)state;
    pgt_cluster cl;
    if (pgt_cluster_start(&cl, __FILE__) < 0)
        fail_msg("could not start a private PostgreSQL cluster");
    char err[512];
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    clog *c = clog_open(cl.uri, key, 1000, 0, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    append_n(c, 1, 2);

    /* The server goes away: an error with a reason, promptly, and nothing half-done. */
    assert_int_equal(pgt_cluster_cmd(&cl, "pause"), 0);
    double t0 = now_s();
    clog_record r;
    char body[64];
    make_record(&r, 3, body, sizeof body);
    assert_int_equal(clog_append(c, &r, 1, NULL, 0), -1);
    assert_non_null(strstr(clog_last_error(c), "PostgreSQL"));
    assert_non_null(strstr(clog_last_error(c), "connection"));
    assert_int_equal(clog_append(c, &r, 1, NULL, 0), -1);
    assert_true(now_s() - t0 < 20);

    /* Back: the next append reconnects by itself and continues the chain. */
    assert_int_equal(pgt_cluster_cmd(&cl, "resume"), 0);
    assert_int_equal(clog_append(c, &r, 1, NULL, 0), 0);
    assert_int_equal(r.seq, 3);
    /* Restarted while idle: the first statement finds the connection dead, and the
     * append succeeds on a new one. */
    assert_int_equal(pgt_cluster_cmd(&cl, "pause"), 0);
    assert_int_equal(pgt_cluster_cmd(&cl, "resume"), 0);
    make_record(&r, 4, body, sizeof body);
    assert_int_equal(clog_append(c, &r, 1, NULL, 0), 0);
    assert_int_equal(r.seq, 4);
    clog_close(c);

    c = clog_open(cl.uri, NULL, 1, CLOG_READONLY, err, sizeof err);
    assert_non_null(c);
    clog_verify_result v;
    assert_int_equal(clog_verify(c, CLOG_MESSAGES, key, &v), 0);
    assert_true(v.ok);
    assert_int_equal(v.records, 4);
    clog_close(c);
    EVP_PKEY_free(key);
    assert_int_equal(pgt_cluster_cmd(&cl, "stop"), 0);
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

/* ---- copies sent again after a failover (XEP-0359 origin-id) ---- */

static void origin_record(clog_record *r, const char *sender, const char *oid, const char *body,
                          char *stanza, size_t len)
{
    memset(r, 0, sizeof *r);
    r->file_size = -1;
    r->ts_us = 1700000000000000LL;
    r->kind = "message";
    r->sender = (char *)sender;
    r->recipient = "bob@example.org";
    r->msg_id = "m1";
    r->type = "chat";
    r->body = (char *)body;
    r->outcome = "delivered";
    r->verdict = "allow";
    if (oid)
        snprintf(stanza, len,
                 "<message xmlns='jabber:client' from='%s' to='bob@example.org' id='m1'"
                 " type='chat'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/>"
                 "</message>", sender, body, oid);
    else
        snprintf(stanza, len, "<message xmlns='jabber:client' from='%s' id='m1'><body>%s</body>"
                 "</message>", sender, body);
    r->stanza = stanza;
}

static void test_dedupe_origin_id(void **state)
{
    fixture *f = *state;
    clog *c = open_log(f, f->key, 1000);
    char st[8][512];
    clog_record r[8];
    /* the first copy, then the same message sent again from another resource (a new
     * session after a failover): one record, the chain untouched */
    origin_record(&r[0], "alice@example.org/phone", "o-1", "hello", st[0], sizeof st[0]);
    assert_int_equal(clog_append(c, r, 1, NULL, 0), 0);
    assert_int_equal(r[0].seq, 1);
    origin_record(&r[1], "alice@example.org/other", "o-1", "hello", st[1], sizeof st[1]);
    assert_int_equal(clog_append(c, &r[1], 1, NULL, 0), 0);
    assert_int_equal(r[1].seq, 0);
    assert_int_equal(count_rows(f, "messages"), 1);
    /* in one batch: a copy between two new messages; the others link past it */
    origin_record(&r[2], "alice@example.org/phone", "o-2", "second", st[2], sizeof st[2]);
    origin_record(&r[3], "alice@example.org/phone", "o-2", "second", st[3], sizeof st[3]);
    origin_record(&r[4], "alice@example.org/phone", "o-3", "third", st[4], sizeof st[4]);
    assert_int_equal(clog_append(c, &r[2], 3, NULL, 0), 0);
    assert_int_equal(r[2].seq, 2);
    assert_int_equal(r[3].seq, 0);
    assert_int_equal(r[4].seq, 3);
    assert_memory_equal(r[4].prev_hash, r[2].hash, 32);
    /* not copies: the same origin-id with other content (an id cannot hide a message),
     * from another account, and messages without an origin-id */
    origin_record(&r[5], "alice@example.org/phone", "o-1", "something else", st[5], sizeof st[5]);
    origin_record(&r[6], "mallory@example.org/x", "o-1", "hello", st[6], sizeof st[6]);
    assert_int_equal(clog_append(c, &r[5], 2, NULL, 0), 0);
    assert_int_equal(r[5].seq, 4);
    assert_int_equal(r[6].seq, 5);
    origin_record(&r[7], "alice@example.org/phone", NULL, "plain", st[7], sizeof st[7]);
    assert_int_equal(clog_append(c, &r[7], 1, NULL, 0), 0);
    assert_int_equal(clog_append(c, &r[7], 1, NULL, 0), 0);
    assert_int_equal(count_rows(f, "messages"), 7);
    char key[CLOG_DEDUPE_KEY_LEN];
    assert_int_equal(clog_record_dedupe_key(&r[7], key), -1);
    assert_int_equal(clog_record_dedupe_key(&r[0], key), 0);
    assert_int_equal(strlen(key), 64);
    clog_close(c);
    clog_verify_result res = verify(f, CLOG_MESSAGES, f->key);
    assert_true(res.ok);
    assert_int_equal(res.records, 7);
}

int main(void)
{
    log_set_level(PLOG_ERROR);
    const struct CMUnitTest common[] = {
        BOTH(test_chain_links),
        BOTH(test_reopen_continues_chain),
        BOTH(test_checkpoint_every),
        BOTH(test_batch_atomic),
        BOTH(test_detect_update),
        BOTH(test_detect_update_rehashed),
        BOTH(test_detect_delete_middle),
        BOTH(test_detect_tail_removed),
        BOTH(test_tail_after_checkpoint_undetectable),
        BOTH(test_detect_swap),
        BOTH(test_detect_forged_checkpoint),
        BOTH(test_detect_foreign_signer),
        BOTH(test_detect_rewritten_chain),
        BOTH(test_audit_chain),
        BOTH(test_search),
        BOTH(test_readonly),
        BOTH(test_purge_prefix_then_verify),
        BOTH(test_purge_then_detect_deletion),
        BOTH(test_purge_checkpoint_removed_or_forged),
        BOTH(test_purge_does_not_launder_tampering),
        BOTH(test_purge_needs_key),
        BOTH(test_append_marked_once),
        BOTH(test_two_appenders_one_chain),
        BOTH(test_dedupe_origin_id),
        BOTH(test_schema_versions),
    };
    const struct CMUnitTest no_store[] = {
        cmocka_unit_test(test_canonical_encoding),
        cmocka_unit_test(test_uri_redacted),
    };
    const struct CMUnitTest sqlite_only[] = {
        BOTH(test_sqlite_file_and_bad_uris),
    };
    const struct CMUnitTest pg_only[] = {
        BOTH(test_pg_schema),
        cmocka_unit_test(test_pg_connection_loss),
    };
    int failed = cmocka_run_group_tests_name("clog", no_store, NULL, NULL);
    failed += cmocka_run_group_tests_name("clog sqlite", common, group_setup_sqlite, NULL);
    failed += cmocka_run_group_tests_name("clog sqlite only", sqlite_only, group_setup_sqlite,
                                          NULL);
    const char *pg = getenv("PARLEY_TEST_PG_URI");
    if (pg && *pg) {
        failed += cmocka_run_group_tests_name("clog postgresql", common, group_setup_pg,
                                              group_teardown_pg);
        failed += cmocka_run_group_tests_name("clog postgresql only", pg_only, group_setup_pg,
                                              group_teardown_pg);
    } else {
        printf("clog postgresql: skipped (set PARLEY_TEST_PG_URI, see scripts/pg-cluster.sh)\n");
    }
    return failed;
}
