/* test_store.c - unit tests of the store (store.h): accounts, rosters, offline messages,
 * persistence, schema version, concurrent handles, module documents, the admin policy
 * with its groups, PEP nodes and items.
 *
 * The same cases run against every back end: SQLite on a temporary file always, and
 * PostgreSQL when PARLEY_TEST_PG_URI names a real server (tests/run.sh starts a throwaway
 * cluster with scripts/pg-cluster.sh). PostgreSQL runs in a database of its own, created
 * here and dropped at the end, its schema wiped before each case. The connection-loss
 * case starts a second private cluster, because it stops and restarts its server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/store.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef enum { BACKEND_SQLITE, BACKEND_PG } backend;

/* The back end the current group runs against, and PostgreSQL's private database. */
static backend g_backend;
static char g_pg_uri[512];

typedef struct fixture {
    char dir[64];
    char path[128];
    char uri[600];
    store *st;
} fixture;

/* ---- PostgreSQL helpers ---- */

/* base URI with its database name replaced: "postgresql://u@h:p/old?x" -> ".../db?x". */
static int uri_with_db(const char *base, const char *db, char *out, size_t len)
{
    const char *auth = strstr(base, "://");
    if (!auth)
        return -1;
    const char *path = strchr(auth + 3, '/');
    const char *query = strchr(auth + 3, '?');
    if (query && path && path > query)
        path = NULL;
    size_t head = path ? (size_t)(path - base) : query ? (size_t)(query - base) : strlen(base);
    int n = snprintf(out, len, "%.*s/%s%s", (int)head, base, db, query ? query : "");
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *pg_connect(const char *uri)
{
    PGconn *c = PQconnectdb(uri);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect %s: %s", uri, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    /* "drop cascades to ..." and friends are expected here. */
    PQsetNoticeProcessor(c, ignore_notice, NULL);
    return c;
}

static int pg_exec(const char *uri, const char *sql)
{
    PGconn *c = pg_connect(uri);
    if (!c)
        return -1;
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

static char g_pg_db[64];

static int group_setup_pg(void **state)
{
    (void)state;
    const char *base = getenv("PARLEY_TEST_PG_URI");
    snprintf(g_pg_db, sizeof g_pg_db, "parley_test_store_%ld", (long)getpid());
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", g_pg_db);
    if (pg_exec(base, sql) < 0)
        return -1;
    /* A language-aware collation where the server has ICU, so that the byte-order checks
     * prove the store asks for byte order rather than inheriting it from the database. */
    snprintf(sql, sizeof sql,
             "CREATE DATABASE %s LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
             " TEMPLATE template0",
             g_pg_db);
    if (pg_exec(base, sql) < 0) {
        fprintf(stderr, "(no ICU collation: testing with the server's default)\n");
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", g_pg_db);
        if (pg_exec(base, sql) < 0)
            return -1;
    }
    if (uri_with_db(base, g_pg_db, g_pg_uri, sizeof g_pg_uri) < 0)
        return -1;
    g_backend = BACKEND_PG;
    return 0;
}

static int group_teardown_pg(void **state)
{
    (void)state;
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", g_pg_db);
    return pg_exec(getenv("PARLEY_TEST_PG_URI"), sql);
}

static int group_setup_sqlite(void **state)
{
    (void)state;
    g_backend = BACKEND_SQLITE;
    return 0;
}

/* ---- fixture: a fresh, empty store of the current back end ---- */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (g_backend == BACKEND_SQLITE) {
        snprintf(f->dir, sizeof f->dir, "/tmp/parley-test-store-XXXXXX");
        if (!mkdtemp(f->dir))
            return -1;
        /* A subdirectory that does not exist yet: store_open must create it. */
        snprintf(f->path, sizeof f->path, "%s/sub/parley.db", f->dir);
        snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
    } else {
        /* Start from nothing: store_open must create the schema. */
        if (pg_exec(g_pg_uri, "DROP SCHEMA public CASCADE; CREATE SCHEMA public") < 0)
            return -1;
        snprintf(f->uri, sizeof f->uri, "%s", g_pg_uri);
    }
    char err[256] = "";
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
    store_close(f->st);
    if (f->dir[0]) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", f->dir);
    }
    free(f);
    return 0;
}

/* Run sql on the fixture's database behind the store's back. */
static void db_exec(fixture *f, const char *sql)
{
    if (g_backend == BACKEND_SQLITE) {
        sqlite3 *db;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    } else {
        assert_int_equal(pg_exec(f->uri, sql), 0);
    }
}

/* The integer a one-value query returns, read behind the store's back. */
static long long db_int(fixture *f, const char *sql)
{
    long long v = -1;
    if (g_backend == BACKEND_SQLITE) {
        sqlite3 *db;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
    } else {
        PGconn *c = pg_connect(f->uri);
        assert_non_null(c);
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(PQntuples(r), 1);
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(c);
    }
    return v;
}

static scram_cred make_cred(scram_hash h, unsigned char fill)
{
    scram_cred c;
    memset(&c, 0, sizeof c);
    c.hash = h;
    c.salt_len = SCRAM_SALT_LEN;
    memset(c.salt, fill, c.salt_len);
    c.iterations = 4096;
    c.key_len = h == SCRAM_SHA1 ? 20 : 32;
    memset(c.stored_key, fill + 1, c.key_len);
    memset(c.server_key, fill + 2, c.key_len);
    return c;
}

static void create_user(store *st, const char *user)
{
    scram_cred creds[2] = {make_cred(SCRAM_SHA1, 1), make_cred(SCRAM_SHA256, 2)};
    assert_int_equal(store_user_create(st, user, creds, 2), STORE_OK);
}

/* ---- accounts ---- */

static void test_user_create_get(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_user_exists(f->st, "alice@localhost"), STORE_NOT_FOUND);
    create_user(f->st, "alice@localhost");
    assert_int_equal(store_user_exists(f->st, "alice@localhost"), STORE_OK);

    scram_cred got;
    assert_int_equal(store_user_get_cred(f->st, "alice@localhost", SCRAM_SHA256, &got), STORE_OK);
    scram_cred want = make_cred(SCRAM_SHA256, 2);
    assert_int_equal(got.hash, SCRAM_SHA256);
    assert_int_equal(got.key_len, 32);
    assert_int_equal(got.salt_len, SCRAM_SALT_LEN);
    assert_int_equal(got.iterations, 4096);
    assert_memory_equal(got.salt, want.salt, SCRAM_SALT_LEN);
    assert_memory_equal(got.stored_key, want.stored_key, 32);
    assert_memory_equal(got.server_key, want.server_key, 32);

    assert_int_equal(store_user_get_cred(f->st, "alice@localhost", SCRAM_SHA1, &got), STORE_OK);
    assert_int_equal(got.key_len, 20);
    assert_int_equal(got.stored_key[0], 2);

    assert_int_equal(store_user_get_cred(f->st, "bob@localhost", SCRAM_SHA1, &got),
                     STORE_NOT_FOUND);
}

static void test_user_duplicate(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    scram_cred c = make_cred(SCRAM_SHA256, 9);
    assert_int_equal(store_user_create(f->st, "alice@localhost", &c, 1), STORE_EXISTS);
    assert_non_null(strstr(store_last_error(f->st), "already exists"));
    /* The failed create changed nothing. */
    scram_cred got;
    assert_int_equal(store_user_get_cred(f->st, "alice@localhost", SCRAM_SHA256, &got), STORE_OK);
    assert_int_equal(got.salt[0], 2);
}

static void test_user_bad_creds(void **state)
{
    fixture *f = *state;
    scram_cred c[2] = {make_cred(SCRAM_SHA256, 1), make_cred(SCRAM_SHA256, 2)};
    assert_int_equal(store_user_create(f->st, "x@localhost", c, 2), STORE_ERROR);
    c[0].salt_len = SCRAM_SALT_LEN + 1;
    assert_int_equal(store_user_create(f->st, "x@localhost", c, 1), STORE_ERROR);
    assert_int_equal(store_user_exists(f->st, "x@localhost"), STORE_NOT_FOUND);
    assert_int_equal(store_user_create(f->st, "", c, 0), STORE_ERROR);
}

static void test_user_set_creds(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    scram_cred c = make_cred(SCRAM_SHA256, 7);
    c.iterations = 10000;
    assert_int_equal(store_user_set_creds(f->st, "alice@localhost", &c, 1), STORE_OK);
    scram_cred got;
    assert_int_equal(store_user_get_cred(f->st, "alice@localhost", SCRAM_SHA256, &got), STORE_OK);
    assert_int_equal(got.iterations, 10000);
    assert_int_equal(got.salt[0], 7);
    /* All credentials are replaced: the old SHA-1 one is gone. */
    assert_int_equal(store_user_get_cred(f->st, "alice@localhost", SCRAM_SHA1, &got),
                     STORE_NOT_FOUND);
    assert_int_equal(store_user_set_creds(f->st, "nobody@localhost", &c, 1), STORE_NOT_FOUND);
}

static void collect_user(void *ud, const char *user)
{
    char *out = ud;
    strcat(out, user);
    strcat(out, ";");
}

static void test_user_list(void **state)
{
    fixture *f = *state;
    char out[256] = "";
    assert_int_equal(store_user_list(f->st, collect_user, out), STORE_OK);
    assert_string_equal(out, "");
    create_user(f->st, "carol@localhost");
    create_user(f->st, "alice@localhost");
    create_user(f->st, "bob@localhost");
    assert_int_equal(store_user_list(f->st, collect_user, out), STORE_OK);
    assert_string_equal(out, "alice@localhost;bob@localhost;carol@localhost;");
}

static roster_item make_item(const char *contact, const char *name, sub_state sub)
{
    roster_item it;
    memset(&it, 0, sizeof it);
    it.contact = (char *)contact;
    it.name = (char *)name;
    it.sub = sub;
    return it;
}

static void test_user_delete_cascades(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    create_user(f->st, "bob@localhost");
    char *groups[] = {"Friends"};
    roster_item it = make_item("bob@localhost", "Bob", SUB_BOTH);
    it.groups = groups;
    it.ngroups = 1;
    assert_int_equal(store_roster_put(f->st, "alice@localhost", &it), STORE_OK);
    it = make_item("alice@localhost", NULL, SUB_BOTH);
    assert_int_equal(store_roster_put(f->st, "bob@localhost", &it), STORE_OK);
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<message/>", 10), STORE_OK);

    assert_int_equal(store_user_delete(f->st, "alice@localhost"), STORE_OK);
    assert_int_equal(store_user_exists(f->st, "alice@localhost"), STORE_NOT_FOUND);
    scram_cred got;
    assert_int_equal(store_user_get_cred(f->st, "alice@localhost", SCRAM_SHA1, &got),
                     STORE_NOT_FOUND);
    roster_item *items;
    size_t n;
    assert_int_equal(store_roster_get(f->st, "alice@localhost", &items, &n), STORE_OK);
    assert_int_equal(n, 0);
    int64_t v;
    assert_int_equal(store_roster_version(f->st, "alice@localhost", &v), STORE_OK);
    assert_int_equal(v, 0);
    int count = -1;
    assert_int_equal(store_offline_count(f->st, "alice@localhost", &count), STORE_OK);
    assert_int_equal(count, 0);

    /* No orphans: check the tables directly. */
    assert_int_equal(db_int(f, "SELECT (SELECT count(*) FROM roster_groups WHERE owner='alice@localhost')"
                               " + (SELECT count(*) FROM credentials WHERE jid='alice@localhost')"
                               " + (SELECT count(*) FROM roster_versions WHERE owner='alice@localhost')"
                               " + (SELECT count(*) FROM offline WHERE owner='alice@localhost')"),
                     0);

    /* Bob is untouched. */
    assert_int_equal(store_user_exists(f->st, "bob@localhost"), STORE_OK);
    assert_int_equal(store_roster_get(f->st, "bob@localhost", &items, &n), STORE_OK);
    assert_int_equal(n, 1);
    roster_items_free(items, n);

    assert_int_equal(store_user_delete(f->st, "alice@localhost"), STORE_NOT_FOUND);
}

/* ---- roster ---- */

static void test_roster_put_get(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    int64_t v = -1;
    assert_int_equal(store_roster_version(f->st, "alice@localhost", &v), STORE_OK);
    assert_int_equal(v, 0);

    char *groups[] = {"Work", "Friends", "Work"}; /* duplicate collapses */
    roster_item it = make_item("bob@localhost", "Bob", SUB_TO);
    it.groups = groups;
    it.ngroups = 3;
    it.ask_out = 1;
    assert_int_equal(store_roster_put(f->st, "alice@localhost", &it), STORE_OK);

    roster_item in = make_item("carol@localhost", NULL, SUB_NONE);
    in.pending_in = 1;
    in.pending_in_stanza = "<presence type='subscribe' from='carol@localhost'/>";
    assert_int_equal(store_roster_put(f->st, "alice@localhost", &in), STORE_OK);
    assert_int_equal(store_roster_version(f->st, "alice@localhost", &v), STORE_OK);
    assert_int_equal(v, 2);

    roster_item *items;
    size_t n;
    assert_int_equal(store_roster_get(f->st, "alice@localhost", &items, &n), STORE_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].contact, "bob@localhost");
    assert_string_equal(items[0].name, "Bob");
    assert_int_equal(items[0].sub, SUB_TO);
    assert_int_equal(items[0].ask_out, 1);
    assert_int_equal(items[0].pending_in, 0);
    assert_null(items[0].pending_in_stanza);
    assert_int_equal(items[0].ngroups, 2);
    assert_string_equal(items[0].groups[0], "Friends");
    assert_string_equal(items[0].groups[1], "Work");
    assert_string_equal(items[1].contact, "carol@localhost");
    assert_null(items[1].name);
    assert_int_equal(items[1].pending_in, 1);
    assert_string_equal(items[1].pending_in_stanza,
                        "<presence type='subscribe' from='carol@localhost'/>");
    assert_int_equal(items[1].ngroups, 0);
    roster_items_free(items, n);

    /* Replace: groups and fields follow the new item. */
    char *g2[] = {"Family"};
    it = make_item("bob@localhost", "Robert", SUB_BOTH);
    it.groups = g2;
    it.ngroups = 1;
    assert_int_equal(store_roster_put(f->st, "alice@localhost", &it), STORE_OK);
    roster_item one;
    assert_int_equal(store_roster_get_item(f->st, "alice@localhost", "bob@localhost", &one),
                     STORE_OK);
    assert_string_equal(one.name, "Robert");
    assert_int_equal(one.sub, SUB_BOTH);
    assert_int_equal(one.ask_out, 0);
    assert_int_equal(one.ngroups, 1);
    assert_string_equal(one.groups[0], "Family");
    roster_item_clear(&one);
    assert_int_equal(store_roster_version(f->st, "alice@localhost", &v), STORE_OK);
    assert_int_equal(v, 3);

    assert_int_equal(store_roster_get_item(f->st, "alice@localhost", "dave@localhost", &one),
                     STORE_NOT_FOUND);
    assert_null(one.contact);
}

static void test_roster_del(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    char *groups[] = {"G"};
    roster_item it = make_item("bob@localhost", NULL, SUB_FROM);
    it.groups = groups;
    it.ngroups = 1;
    assert_int_equal(store_roster_put(f->st, "alice@localhost", &it), STORE_OK);
    assert_int_equal(store_roster_del(f->st, "alice@localhost", "bob@localhost"), STORE_OK);
    int64_t v;
    assert_int_equal(store_roster_version(f->st, "alice@localhost", &v), STORE_OK);
    assert_int_equal(v, 2);
    /* Deleting what is not there is NOT_FOUND and does not bump the version. */
    assert_int_equal(store_roster_del(f->st, "alice@localhost", "bob@localhost"), STORE_NOT_FOUND);
    assert_int_equal(store_roster_version(f->st, "alice@localhost", &v), STORE_OK);
    assert_int_equal(v, 2);
    roster_item one;
    assert_int_equal(store_roster_get_item(f->st, "alice@localhost", "bob@localhost", &one),
                     STORE_NOT_FOUND);

    /* Re-adding starts with no groups left over. */
    it.ngroups = 0;
    it.groups = NULL;
    assert_int_equal(store_roster_put(f->st, "alice@localhost", &it), STORE_OK);
    assert_int_equal(store_roster_get_item(f->st, "alice@localhost", "bob@localhost", &one),
                     STORE_OK);
    assert_int_equal(one.ngroups, 0);
    roster_item_clear(&one);
}

static void test_roster_unknown_user(void **state)
{
    fixture *f = *state;
    roster_item it = make_item("bob@localhost", NULL, SUB_NONE);
    assert_int_equal(store_roster_put(f->st, "ghost@localhost", &it), STORE_NOT_FOUND);
    it.sub = (sub_state)7;
    create_user(f->st, "alice@localhost");
    assert_int_equal(store_roster_put(f->st, "alice@localhost", &it), STORE_ERROR);
}

/* ---- offline ---- */

typedef struct popped {
    char text[512];
    int calls;
    int fail_at; /* 1-based call that fails, 0 = never */
} popped;

static int collect_stanza(void *ud, const char *stanza)
{
    popped *p = ud;
    p->calls++;
    if (p->fail_at && p->calls == p->fail_at)
        return -1;
    strcat(p->text, stanza);
    return 0;
}

static void test_offline_order_cap(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<m1/>", 3), STORE_OK);
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<m2/>", 3), STORE_OK);
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<m3/>", 3), STORE_OK);
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<m4/>", 3), STORE_FULL);
    int count;
    assert_int_equal(store_offline_count(f->st, "alice@localhost", &count), STORE_OK);
    assert_int_equal(count, 3);
    assert_int_equal(store_offline_push(f->st, "ghost@localhost", "<m/>", 3), STORE_NOT_FOUND);

    popped p = {.fail_at = 0};
    assert_int_equal(store_offline_pop(f->st, "alice@localhost", collect_stanza, &p), STORE_OK);
    assert_string_equal(p.text, "<m1/><m2/><m3/>");
    assert_int_equal(store_offline_count(f->st, "alice@localhost", &count), STORE_OK);
    assert_int_equal(count, 0);

    /* Popping nothing calls nothing. */
    popped q = {.fail_at = 0};
    assert_int_equal(store_offline_pop(f->st, "alice@localhost", collect_stanza, &q), STORE_OK);
    assert_int_equal(q.calls, 0);
    /* Room again after the pop. */
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<m5/>", 3), STORE_OK);
}

static void test_offline_pop_keeps_on_failure(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<a/>", 10), STORE_OK);
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<b/>", 10), STORE_OK);
    popped p = {.fail_at = 2};
    assert_int_not_equal(store_offline_pop(f->st, "alice@localhost", collect_stanza, &p), STORE_OK);
    int count;
    assert_int_equal(store_offline_count(f->st, "alice@localhost", &count), STORE_OK);
    assert_int_equal(count, 2);

    popped q = {.fail_at = 0};
    assert_int_equal(store_offline_pop(f->st, "alice@localhost", collect_stanza, &q), STORE_OK);
    assert_string_equal(q.text, "<a/><b/>");
}

/* ---- persistence and the file ---- */

static void test_reopen_keeps_data(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    roster_item it = make_item("bob@localhost", "Bob", SUB_BOTH);
    assert_int_equal(store_roster_put(f->st, "alice@localhost", &it), STORE_OK);
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<x/>", 10), STORE_OK);
    store_close(f->st);

    char err[256];
    f->st = store_open(f->uri, err, sizeof err);
    assert_non_null(f->st);
    assert_int_equal(store_user_exists(f->st, "alice@localhost"), STORE_OK);
    roster_item one;
    assert_int_equal(store_roster_get_item(f->st, "alice@localhost", "bob@localhost", &one),
                     STORE_OK);
    assert_string_equal(one.name, "Bob");
    roster_item_clear(&one);
    int count;
    assert_int_equal(store_offline_count(f->st, "alice@localhost", &count), STORE_OK);
    assert_int_equal(count, 1);
}

static void test_two_handles(void **state)
{
    /* parleyd and parleyctl hold the same file open at once. */
    fixture *f = *state;
    char err[256];
    store *other = store_open(f->uri, err, sizeof err);
    assert_non_null(other);
    create_user(other, "alice@localhost");
    assert_int_equal(store_user_exists(f->st, "alice@localhost"), STORE_OK);
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<x/>", 10), STORE_OK);
    assert_int_equal(store_user_delete(other, "alice@localhost"), STORE_OK);
    assert_int_equal(store_user_exists(f->st, "alice@localhost"), STORE_NOT_FOUND);
    store_close(other);
}

static void test_schema_version(void **state)
{
    fixture *f = *state;
    /* PostgreSQL has two more: the nodes' session directory and their room claims, which
     * only a shared store can hold. */
    int want = strncmp(f->uri, "sqlite:", 7) == 0 ? 5 : 7;
    assert_int_equal(db_int(f, "SELECT max(version) FROM schema_version"), want);

    /* Opening again applies nothing twice. */
    char err[256] = "";
    store *again = store_open(f->uri, err, sizeof err);
    assert_non_null(again);
    store_close(again);
    assert_int_equal(db_int(f, "SELECT count(*) FROM schema_version"), want);

    /* A database from a newer Parley is refused rather than misread. */
    db_exec(f, "INSERT INTO schema_version VALUES (99, 0)");
    store *newer = store_open(f->uri, err, sizeof err);
    assert_null(newer);
    assert_non_null(strstr(err, "newer"));
}

static void test_sqlite_file_mode_wal(void **state)
{
    fixture *f = *state;
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char sub[160];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    assert_int_equal(stat(sub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_open_errors(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(store_open("mysql://x", err, sizeof err));
    assert_non_null(strstr(err, "unknown scheme"));
    /* A PostgreSQL server that is not there: a clear error, at once, no password shown. */
    assert_null(store_open("postgresql://u:secretpw@127.0.0.1:1/parley", err, sizeof err));
    assert_non_null(strstr(err, "PostgreSQL"));
    assert_non_null(strstr(err, "127.0.0.1"));
    assert_null(strstr(err, "secretpw"));
    assert_null(store_open("postgres://127.0.0.1:1/parley?connect_timeout=2", err, sizeof err));
    assert_non_null(strstr(err, "cannot connect"));
    assert_null(store_open("postgresql:parley", err, sizeof err));
    assert_non_null(strstr(err, "postgresql://"));
    assert_null(store_open("postgresql://127.0.0.1:1/parley?nosuchoption=1", err, sizeof err));
    assert_non_null(strstr(err, "bad URI"));
    assert_null(store_open("sqlite:/proc/nonexistent/dir/x.db", err, sizeof err));
    assert_true(strlen(err) > 0);
}

/* ---- binary safety, order, re-entrancy, concurrency (every back end) ---- */

static void test_binary_creds(void **state)
{
    /* Salts and keys are bytes: NUL, backslash, quote and 0xff must come back as they went. */
    fixture *f = *state;
    scram_cred c = make_cred(SCRAM_SHA256, 0);
    static const unsigned char odd[] = {0x00, 0x5c, 0x27, 0xff, 0x00, 0x78, 0x01, 0x80};
    for (size_t i = 0; i < c.salt_len; i++)
        c.salt[i] = odd[i % sizeof odd];
    for (size_t i = 0; i < c.key_len; i++) {
        c.stored_key[i] = odd[(i + 3) % sizeof odd];
        c.server_key[i] = (unsigned char)(255 - i);
    }
    c.salt_len = 5; /* shorter than the maximum, ending in NUL */
    c.iterations = 4000000000u; /* above INT_MAX */
    assert_int_equal(store_user_create(f->st, "bin@localhost", &c, 1), STORE_OK);
    scram_cred got;
    assert_int_equal(store_user_get_cred(f->st, "bin@localhost", SCRAM_SHA256, &got), STORE_OK);
    assert_int_equal(got.salt_len, 5);
    assert_memory_equal(got.salt, c.salt, 5);
    assert_memory_equal(got.stored_key, c.stored_key, 32);
    assert_memory_equal(got.server_key, c.server_key, 32);
    assert_int_equal(got.iterations, 4000000000u);
}

static void test_byte_order_and_text(void **state)
{
    /* Lists come in byte order, whatever the database's locale; text is UTF-8 and kept. */
    fixture *f = *state;
    create_user(f->st, "zed@localhost");
    create_user(f->st, "Zed@localhost");
    create_user(f->st, "_x@localhost");
    create_user(f->st, "\xc3\xa9lise@localhost");
    char out[256] = "";
    assert_int_equal(store_user_list(f->st, collect_user, out), STORE_OK);
    assert_string_equal(out, "Zed@localhost;_x@localhost;zed@localhost;\xc3\xa9lise@localhost;");

    char *groups[] = {"b", "B", "\xc3\xa9quipe", "a"};
    roster_item it = make_item("b@localhost", "B\xc3\xb6" "b 'quoted' \\ name", SUB_BOTH);
    it.groups = groups;
    it.ngroups = 4;
    assert_int_equal(store_roster_put(f->st, "zed@localhost", &it), STORE_OK);
    it = make_item("A@localhost", NULL, SUB_NONE);
    assert_int_equal(store_roster_put(f->st, "zed@localhost", &it), STORE_OK);
    roster_item *items;
    size_t n;
    assert_int_equal(store_roster_get(f->st, "zed@localhost", &items, &n), STORE_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].contact, "A@localhost");
    assert_int_equal(items[0].ngroups, 0);
    assert_string_equal(items[1].name, "B\xc3\xb6" "b 'quoted' \\ name");
    assert_int_equal(items[1].ngroups, 4);
    assert_string_equal(items[1].groups[0], "B");
    assert_string_equal(items[1].groups[1], "a");
    assert_string_equal(items[1].groups[2], "b");
    assert_string_equal(items[1].groups[3], "\xc3\xa9quipe");
    roster_items_free(items, n);
}

typedef struct nested {
    store *st;
    int calls;
    store_status inner_push, inner_ghost, inner_exists;
} nested;

static int pop_and_use_store(void *ud, const char *stanza)
{
    /* The server's callback only sends; a future one may use the store: it must work. */
    nested *x = ud;
    (void)stanza;
    x->calls++;
    x->inner_exists = store_user_exists(x->st, "alice@localhost");
    x->inner_push = store_offline_push(x->st, "bob@localhost", "<fwd/>", 10);
    x->inner_ghost = store_offline_push(x->st, "ghost@localhost", "<fwd/>", 10);
    return 0;
}

static void test_store_calls_from_pop_callback(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    create_user(f->st, "bob@localhost");
    assert_int_equal(store_offline_push(f->st, "alice@localhost", "<a/>", 10), STORE_OK);
    nested x = {.st = f->st};
    assert_int_equal(store_offline_pop(f->st, "alice@localhost", pop_and_use_store, &x), STORE_OK);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.inner_exists, STORE_OK);
    assert_int_equal(x.inner_push, STORE_OK);
    /* A failed inner call leaves the pop itself intact. */
    assert_int_equal(x.inner_ghost, STORE_NOT_FOUND);
    int count;
    assert_int_equal(store_offline_count(f->st, "alice@localhost", &count), STORE_OK);
    assert_int_equal(count, 0);
    assert_int_equal(store_offline_count(f->st, "bob@localhost", &count), STORE_OK);
    assert_int_equal(count, 1);
}

typedef struct pusher {
    const char *uri;
    int n, max, first;
    int ok, full, failed;
    int done;
} pusher;

static void *push_worker(void *arg)
{
    pusher *p = arg;
    char err[256];
    store *st = store_open(p->uri, err, sizeof err);
    if (!st) {
        fprintf(stderr, "push worker: %s\n", err);
        p->failed = p->n;
        return NULL;
    }
    for (int i = 0; i < p->n; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "<m i='%d'/>", p->first + i);
        store_status r = store_offline_push(st, "alice@localhost", msg, p->max);
        if (r == STORE_OK)
            p->ok++;
        else if (r == STORE_FULL)
            p->full++;
        else {
            fprintf(stderr, "push worker: %s\n", store_last_error(st));
            p->failed++;
        }
    }
    store_close(st);
    return NULL;
}

static void test_concurrent_push_cap(void **state)
{
    /* Several handles (nodes) pushing at once never pass the cap together. */
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    enum { WORKERS = 4, EACH = 15, CAP = 25 };
    pusher w[WORKERS];
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (pusher){.uri = f->uri, .n = EACH, .max = CAP, .first = i * EACH};
        assert_int_equal(pthread_create(&t[i], NULL, push_worker, &w[i]), 0);
    }
    int ok = 0, full = 0;
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failed, 0);
        ok += w[i].ok;
        full += w[i].full;
    }
    assert_int_equal(ok, CAP);
    assert_int_equal(full, WORKERS * EACH - CAP);
    int count;
    assert_int_equal(store_offline_count(f->st, "alice@localhost", &count), STORE_OK);
    assert_int_equal(count, CAP);
}

/* ---- PostgreSQL only ---- */

enum { POP_TOTAL = 300 };

typedef struct popper {
    const char *uri;
    pthread_mutex_t *lock;
    int *seen;
    volatile int *pushing;
    int failed;
} popper;

static int mark_seen(void *ud, const char *stanza)
{
    popper *p = ud;
    int i = -1;
    if (sscanf(stanza, "<m i='%d'/>", &i) == 1 && i >= 0 && i < POP_TOTAL) {
        pthread_mutex_lock(p->lock);
        p->seen[i]++;
        pthread_mutex_unlock(p->lock);
    }
    return 0;
}

static void *pop_worker(void *arg)
{
    popper *p = arg;
    char err[256];
    store *st = store_open(p->uri, err, sizeof err);
    if (!st) {
        fprintf(stderr, "pop worker: %s\n", err);
        p->failed = 1;
        return NULL;
    }
    for (;;) {
        int still = __atomic_load_n(p->pushing, __ATOMIC_SEQ_CST);
        if (store_offline_pop(st, "alice@localhost", mark_seen, p) != STORE_OK) {
            fprintf(stderr, "pop worker: %s\n", store_last_error(st));
            p->failed = 1;
            break;
        }
        if (!still)
            break;
    }
    store_close(st);
    return NULL;
}

static void test_pg_concurrent_pop_once(void **state)
{
    /* Nodes popping one account's messages while others arrive: each delivered once. */
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    for (int i = 0; i < POP_TOTAL / 2; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "<m i='%d'/>", i);
        assert_int_equal(store_offline_push(f->st, "alice@localhost", msg, -1), STORE_OK);
    }
    static int seen[POP_TOTAL];
    memset(seen, 0, sizeof seen);
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    volatile int pushing = 1;
    enum { POPPERS = 3 };
    popper pw[POPPERS];
    pthread_t pt[POPPERS], push_t;
    pusher pu = {.uri = f->uri, .n = POP_TOTAL / 2, .max = -1, .first = POP_TOTAL / 2};
    for (int i = 0; i < POPPERS; i++) {
        pw[i] = (popper){.uri = f->uri, .lock = &lock, .seen = seen, .pushing = &pushing};
        assert_int_equal(pthread_create(&pt[i], NULL, pop_worker, &pw[i]), 0);
    }
    assert_int_equal(pthread_create(&push_t, NULL, push_worker, &pu), 0);
    pthread_join(push_t, NULL);
    __atomic_store_n(&pushing, 0, __ATOMIC_SEQ_CST);
    for (int i = 0; i < POPPERS; i++) {
        pthread_join(pt[i], NULL);
        assert_int_equal(pw[i].failed, 0);
    }
    assert_int_equal(pu.failed, 0);
    assert_int_equal(pu.ok, POP_TOTAL / 2);
    popper last = {.lock = &lock, .seen = seen};
    assert_int_equal(store_offline_pop(f->st, "alice@localhost", mark_seen, &last), STORE_OK);
    for (int i = 0; i < POP_TOTAL; i++)
        if (seen[i] != 1)
            fail_msg("message %d delivered %d times", i, seen[i]);
}

static void test_pg_schema(void **state)
{
    /* The types auditors' tools see. */
    fixture *f = *state;
    assert_int_equal(db_int(f, "SELECT count(*) FROM information_schema.columns"
                               " WHERE table_name = 'credentials' AND data_type = 'bytea'"),
                     3);
    assert_int_equal(db_int(f, "SELECT count(*) FROM information_schema.tables"
                               " WHERE table_schema = 'public' AND table_name IN ('users',"
                               " 'credentials', 'roster', 'roster_groups', 'roster_versions',"
                               " 'offline', 'schema_version', 'kv', 'mam', 'policy', 'policy_groups',"
                               " 'policy_group_members', 'policy_version', 'pep_nodes',"
                               " 'pep_items')"),
                     15);
}

/* scripts/pg-cluster.sh, found from this file's path unless PARLEY_PG_CLUSTER says. */
static void cluster_script(char *out, size_t len)
{
    const char *env = getenv("PARLEY_PG_CLUSTER");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return;
    }
    const char *me = __FILE__;
    const char *tail = strstr(me, "tests/unit/test_store.c");
    snprintf(out, len, "%.*sscripts/pg-cluster.sh", tail ? (int)(tail - me) : 0, me);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct cluster {
    char script[512];
    char dir[64];
    char uri[256];
} cluster;

static int cluster_cmd(cluster *c, const char *cmd)
{
    char line[700];
    snprintf(line, sizeof line, "sh '%s' %s '%s' >&2", c->script, cmd, c->dir);
    return system(line);
}

static int stop_server_in_callback(void *ud, const char *stanza)
{
    (void)stanza;
    return cluster_cmd(ud, "pause") == 0 ? 0 : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_pg_connection_loss(void **state)
{
    /* A private cluster, since this stops its server: the shared one serves other tests. */
    (void)state;
    cluster c;
    memset(&c, 0, sizeof c);
    cluster_script(c.script, sizeof c.script);
    snprintf(c.dir, sizeof c.dir, "/tmp/parley-pgc-XXXXXX");
    assert_non_null(mkdtemp(c.dir));
    int port = free_port();
    assert_true(port > 0);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "sh '%s' start '%s' %d", c.script, c.dir, port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *got = fgets(c.uri, sizeof c.uri, p);
    int rc = pclose(p);
    if (!got || rc != 0) {
        cluster_cmd(&c, "stop");
        fail_msg("could not start a cluster: %s", cmd);
    }
    c.uri[strcspn(c.uri, "\n")] = '\0';

    char err[256];
    store *st = store_open(c.uri, err, sizeof err);
    assert_non_null(st);
    create_user(st, "alice@localhost");
    assert_int_equal(store_offline_push(st, "alice@localhost", "<kept/>", 10), STORE_OK);

    /* The server goes away between calls: an error with a reason, promptly. */
    assert_int_equal(cluster_cmd(&c, "pause"), 0);
    double t0 = now_s();
    assert_int_equal(store_user_exists(st, "alice@localhost"), STORE_ERROR);
    assert_non_null(strstr(store_last_error(st), "PostgreSQL"));
    assert_non_null(strstr(store_last_error(st), "connection"));
    int count = -1;
    assert_int_equal(store_offline_count(st, "alice@localhost", &count), STORE_ERROR);
    assert_non_null(strstr(store_last_error(st), "reconnecting failed"));
    roster_item it = make_item("bob@localhost", NULL, SUB_NONE);
    assert_int_equal(store_roster_put(st, "alice@localhost", &it), STORE_ERROR);
    assert_true(now_s() - t0 < 30);

    /* Back again: the next call reconnects by itself. */
    assert_int_equal(cluster_cmd(&c, "resume"), 0);
    assert_int_equal(store_user_exists(st, "alice@localhost"), STORE_OK);
    assert_int_equal(store_roster_put(st, "alice@localhost", &it), STORE_OK);

    /* Restarted while idle: the call's first statement finds the connection dead, and
     * the call succeeds on a new one. */
    assert_int_equal(cluster_cmd(&c, "pause"), 0);
    assert_int_equal(cluster_cmd(&c, "resume"), 0);
    assert_int_equal(store_offline_count(st, "alice@localhost", &count), STORE_OK);
    assert_int_equal(count, 1);

    /* The server goes away in the middle of a pop: the error is reported and the message
     * is kept (its transaction never committed). */
    assert_int_equal(store_offline_pop(st, "alice@localhost", stop_server_in_callback, &c),
                     STORE_ERROR);
    assert_non_null(strstr(store_last_error(st), "PostgreSQL"));
    assert_int_equal(cluster_cmd(&c, "resume"), 0);
    popped q = {.fail_at = 0};
    assert_int_equal(store_offline_pop(st, "alice@localhost", collect_stanza, &q), STORE_OK);
    assert_string_equal(q.text, "<kept/>");

    store_close(st);
    assert_int_equal(cluster_cmd(&c, "stop"), 0);
    struct stat sb;
    assert_int_not_equal(stat(c.dir, &sb), 0);
}

static void append_kv(void *ud, const char *owner, const char *key, const char *value)
{
    char *buf = ud;
    size_t len = strlen(buf);
    snprintf(buf + len, 512 - len, "%s|%s|%s;", owner, key, value);
}

static void test_kv_documents(void **state)
{
    fixture *f = *state;
    char *v = NULL;
    assert_int_equal(store_kv_get(f->st, "muc-room", "a@conf", "config", &v), STORE_NOT_FOUND);
    assert_null(v);
    assert_int_equal(store_kv_put(f->st, "muc-room", "b@conf", "config", "<x b/>"), STORE_OK);
    assert_int_equal(store_kv_put(f->st, "muc-room", "a@conf", "config", "<x a/>"), STORE_OK);
    assert_int_equal(store_kv_put(f->st, "muc-room", "a@conf", "affiliations", "<aff/>"),
                     STORE_OK);
    assert_int_equal(store_kv_put(f->st, "other", "a@conf", "config", "elsewhere"), STORE_OK);
    /* Replacing keeps one value per key; text is kept byte for byte. */
    assert_int_equal(store_kv_put(f->st, "muc-room", "a@conf", "config", "<x a='2'>\xc3\xa9</x>"),
                     STORE_OK);
    assert_int_equal(store_kv_get(f->st, "muc-room", "a@conf", "config", &v), STORE_OK);
    assert_string_equal(v, "<x a='2'>\xc3\xa9</x>");
    free(v);

    char all[512] = "";
    assert_int_equal(store_kv_list(f->st, "muc-room", NULL, append_kv, all), STORE_OK);
    assert_string_equal(all, "a@conf|affiliations|<aff/>;a@conf|config|<x a='2'>\xc3\xa9</x>;"
                             "b@conf|config|<x b/>;");
    char one[512] = "";
    assert_int_equal(store_kv_list(f->st, "muc-room", "b@conf", append_kv, one), STORE_OK);
    assert_string_equal(one, "b@conf|config|<x b/>;");

    assert_int_equal(store_kv_del(f->st, "muc-room", "a@conf", "affiliations"), STORE_OK);
    assert_int_equal(store_kv_get(f->st, "muc-room", "a@conf", "affiliations", &v),
                     STORE_NOT_FOUND);
    assert_int_equal(store_kv_del(f->st, "muc-room", "a@conf", NULL), STORE_OK);
    assert_int_equal(store_kv_get(f->st, "muc-room", "a@conf", "config", &v), STORE_NOT_FOUND);
    /* Other collections are untouched. */
    assert_int_equal(store_kv_get(f->st, "other", "a@conf", "config", &v), STORE_OK);
    free(v);
    /* Bad input is an error, not a crash. */
    assert_int_equal(store_kv_put(f->st, "", "a", "k", "v"), STORE_ERROR);
    assert_int_equal(store_kv_put(f->st, "c", "a", "k", NULL), STORE_ERROR);
}

static void append_mam(void *ud, const mam_row *row)
{
    char *buf = ud;
    size_t len = strlen(buf);
    snprintf(buf + len, 512 - len, "%s:%s;", row->id, row->stanza);
}

static void test_mam_archive_query_pages(void **state)
{
    fixture *f = *state;
    char stanza[32], id[16];
    for (int i = 1; i <= 7; i++) {
        snprintf(id, sizeof id, "id%d", i);
        snprintf(stanza, sizeof stanza, "<m%d/>", i);
        mam_row rows[2] = {
            {id, "alice@localhost", i % 2 ? "bob@localhost" : "carol@localhost", 1000 * i, stanza},
            {id, "bob@localhost", "alice@localhost", 1000 * i, stanza},
        };
        assert_int_equal(store_mam_append(f->st, rows, i % 2 ? 2 : 1), STORE_OK);
    }
    char out[512] = "";
    int complete = -1;
    mam_filter q = {.owner = "alice@localhost", .max = 3};
    assert_int_equal(store_mam_query(f->st, &q, append_mam, out, &complete), STORE_OK);
    assert_string_equal(out, "id1:<m1/>;id2:<m2/>;id3:<m3/>;");
    assert_int_equal(complete, 0);
    /* The next page, after the last id seen. */
    out[0] = '\0';
    q.after_id = "id3";
    assert_int_equal(store_mam_query(f->st, &q, append_mam, out, &complete), STORE_OK);
    assert_string_equal(out, "id4:<m4/>;id5:<m5/>;id6:<m6/>;");
    assert_int_equal(complete, 0);
    q.after_id = "id6";
    out[0] = '\0';
    assert_int_equal(store_mam_query(f->st, &q, append_mam, out, &complete), STORE_OK);
    assert_string_equal(out, "id7:<m7/>;");
    assert_int_equal(complete, 1);
    /* The last page, still in archive order; and the page before an id. */
    mam_filter last = {.owner = "alice@localhost", .max = 2, .last = 1};
    out[0] = '\0';
    assert_int_equal(store_mam_query(f->st, &last, append_mam, out, &complete), STORE_OK);
    assert_string_equal(out, "id6:<m6/>;id7:<m7/>;");
    last.before_id = "id6";
    out[0] = '\0';
    assert_int_equal(store_mam_query(f->st, &last, append_mam, out, &complete), STORE_OK);
    assert_string_equal(out, "id4:<m4/>;id5:<m5/>;");
    /* Filters: with, time range. */
    mam_filter with = {.owner = "alice@localhost", .with = "carol@localhost", .max = 10};
    out[0] = '\0';
    assert_int_equal(store_mam_query(f->st, &with, append_mam, out, &complete), STORE_OK);
    assert_string_equal(out, "id2:<m2/>;id4:<m4/>;id6:<m6/>;");
    assert_int_equal(complete, 1);
    mam_filter range = {.owner = "bob@localhost", .start_us = 2000, .end_us = 5000, .max = 10};
    out[0] = '\0';
    assert_int_equal(store_mam_query(f->st, &range, append_mam, out, &complete), STORE_OK);
    assert_string_equal(out, "id3:<m3/>;id5:<m5/>;");
    /* The size of the whole result set, whatever the page (XEP-0059 <count/>). */
    int64_t total = -1;
    assert_int_equal(store_mam_count(f->st, &q, &total), STORE_OK); /* after id6: ignored */
    assert_int_equal(total, 7);
    assert_int_equal(store_mam_count(f->st, &with, &total), STORE_OK);
    assert_int_equal(total, 3);
    assert_int_equal(store_mam_count(f->st, &range, &total), STORE_OK);
    assert_int_equal(total, 2);
    mam_filter nobody = {.owner = "dave@localhost", .max = 1};
    assert_int_equal(store_mam_count(f->st, &nobody, &total), STORE_OK);
    assert_int_equal(total, 0);
    /* An id from someone else's archive, or none at all, is not found. */
    mam_filter bad = {.owner = "bob@localhost", .after_id = "id2", .max = 10};
    assert_int_equal(store_mam_query(f->st, &bad, append_mam, out, &complete), STORE_NOT_FOUND);
    /* Purge: one owner's old messages, then everyone's. */
    int64_t deleted = -1;
    assert_int_equal(store_mam_purge(f->st, "alice@localhost", 3500, &deleted), STORE_OK);
    assert_int_equal(deleted, 3);
    assert_int_equal(store_mam_purge(f->st, NULL, 5500, &deleted), STORE_OK);
    assert_int_equal(deleted, 5); /* alice 4, 5; bob 1, 3, 5 */
    out[0] = '\0';
    assert_int_equal(store_mam_query(f->st, &q, append_mam, out, &complete), STORE_OK);
    q.after_id = NULL;
    out[0] = '\0';
    assert_int_equal(store_mam_query(f->st, &q, append_mam, out, &complete), STORE_OK);
    assert_string_equal(out, "id6:<m6/>;id7:<m7/>;");
    /* Bad input. */
    mam_row empty = {"", "alice@localhost", "bob@localhost", 1, "<m/>"};
    assert_int_equal(store_mam_append(f->st, &empty, 1), STORE_ERROR);
    mam_filter zero = {.owner = "alice@localhost", .max = 0};
    assert_int_equal(store_mam_query(f->st, &zero, append_mam, out, &complete), STORE_ERROR);
}

/* ---- admin policy ---- */

static void append_policy(void *ud, policy_scope scope, const char *name, const char *key,
                          const char *value)
{
    char *buf = ud;
    size_t len = strlen(buf);
    snprintf(buf + len, 1024 - len, "%s:%s:%s=%s;", policy_scope_name(scope), name, key, value);
}

static void append_member(void *ud, const char *group, const char *user)
{
    char *buf = ud;
    size_t len = strlen(buf);
    snprintf(buf + len, 1024 - len, "%s:%s;", group, user);
}

static void append_name(void *ud, const char *name)
{
    char *buf = ud;
    size_t len = strlen(buf);
    snprintf(buf + len, 1024 - len, "%s;", name);
}

static int64_t policy_version_of(store *st)
{
    int64_t v = -1;
    assert_int_equal(store_policy_version(st, &v), STORE_OK);
    return v;
}

static void test_policy_values(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    create_user(f->st, "bob@localhost");
    int64_t v0 = policy_version_of(f->st);

    assert_int_equal(store_policy_set(f->st, POLICY_GLOBAL, NULL, "e2e_plain", "true"), STORE_OK);
    assert_true(policy_version_of(f->st) > v0);
    assert_int_equal(store_policy_set(f->st, POLICY_GLOBAL, "ignored", "max_file_size", "100"),
                     STORE_OK);
    assert_int_equal(store_group_add(f->st, "finance"), STORE_OK);
    assert_int_equal(store_group_add(f->st, "all"), STORE_OK);
    assert_int_equal(store_policy_set(f->st, POLICY_GROUP, "finance", "e2e_plain", "false"),
                     STORE_OK);
    assert_int_equal(store_policy_set(f->st, POLICY_GROUP, "all", "file_transfer", "false"),
                     STORE_OK);
    assert_int_equal(store_policy_set(f->st, POLICY_USER, "bob@localhost", "e2e_aes", "true"),
                     STORE_OK);
    /* Replacing keeps one value. */
    assert_int_equal(store_policy_set(f->st, POLICY_USER, "bob@localhost", "e2e_aes", "false"),
                     STORE_OK);
    /* Unknown user or group. */
    assert_int_equal(store_policy_set(f->st, POLICY_USER, "nobody@localhost", "e2e_aes", "true"),
                     STORE_NOT_FOUND);
    assert_non_null(strstr(store_last_error(f->st), "nobody@localhost"));
    assert_int_equal(store_policy_set(f->st, POLICY_GROUP, "nogroup", "e2e_aes", "true"),
                     STORE_NOT_FOUND);
    assert_non_null(strstr(store_last_error(f->st), "no such group"));
    assert_int_equal(store_policy_set(f->st, POLICY_GROUP, "", "e2e_aes", "true"), STORE_ERROR);

    char all[1024] = "";
    assert_int_equal(store_policy_list(f->st, append_policy, all), STORE_OK);
    assert_string_equal(all, "global::e2e_plain=true;global::max_file_size=100;"
                             "group:all:file_transfer=false;group:finance:e2e_plain=false;"
                             "user:bob@localhost:e2e_aes=false;");

    /* A user's rows: global, its groups', its own. */
    assert_int_equal(store_group_member_add(f->st, "finance", "bob@localhost"), STORE_OK);
    char bob[1024] = "";
    assert_int_equal(store_policy_for_user(f->st, "bob@localhost", append_policy, bob), STORE_OK);
    assert_string_equal(bob, "global::e2e_plain=true;global::max_file_size=100;"
                             "group:finance:e2e_plain=false;user:bob@localhost:e2e_aes=false;");
    char alice[1024] = "";
    assert_int_equal(store_policy_for_user(f->st, "alice@localhost", append_policy, alice),
                     STORE_OK);
    assert_string_equal(alice, "global::e2e_plain=true;global::max_file_size=100;");

    int64_t v1 = policy_version_of(f->st);
    assert_int_equal(store_policy_unset(f->st, POLICY_GROUP, "finance", "e2e_plain"), STORE_OK);
    assert_true(policy_version_of(f->st) > v1);
    assert_int_equal(store_policy_unset(f->st, POLICY_GROUP, "finance", "e2e_plain"),
                     STORE_NOT_FOUND);
    assert_non_null(strstr(store_last_error(f->st), "not set"));

    /* Deleting the account takes its values and memberships with it, and is a change. */
    int64_t v2 = policy_version_of(f->st);
    assert_int_equal(store_user_delete(f->st, "bob@localhost"), STORE_OK);
    assert_true(policy_version_of(f->st) > v2);
    all[0] = '\0';
    assert_int_equal(store_policy_list(f->st, append_policy, all), STORE_OK);
    assert_null(strstr(all, "bob@localhost"));
    char members[1024] = "";
    assert_int_equal(store_group_members(f->st, NULL, append_member, members), STORE_OK);
    assert_string_equal(members, "");
}

static void test_policy_groups(void **state)
{
    fixture *f = *state;
    create_user(f->st, "alice@localhost");
    create_user(f->st, "bob@localhost");
    assert_int_equal(store_group_add(f->st, "legal"), STORE_OK);
    assert_int_equal(store_group_add(f->st, "finance"), STORE_OK);
    assert_int_equal(store_group_add(f->st, "finance"), STORE_EXISTS);
    char names[1024] = "";
    assert_int_equal(store_group_list(f->st, append_name, names), STORE_OK);
    assert_string_equal(names, "finance;legal;");

    assert_int_equal(store_group_member_add(f->st, "finance", "bob@localhost"), STORE_OK);
    assert_int_equal(store_group_member_add(f->st, "finance", "alice@localhost"), STORE_OK);
    assert_int_equal(store_group_member_add(f->st, "legal", "alice@localhost"), STORE_OK);
    assert_int_equal(store_group_member_add(f->st, "finance", "bob@localhost"), STORE_EXISTS);
    assert_int_equal(store_group_member_add(f->st, "finance", "nobody@localhost"),
                     STORE_NOT_FOUND);
    assert_non_null(strstr(store_last_error(f->st), "no such user"));
    assert_int_equal(store_group_member_add(f->st, "nogroup", "bob@localhost"), STORE_NOT_FOUND);
    assert_non_null(strstr(store_last_error(f->st), "no such group"));

    char members[1024] = "";
    assert_int_equal(store_group_members(f->st, "finance", append_member, members), STORE_OK);
    assert_string_equal(members, "finance:alice@localhost;finance:bob@localhost;");
    members[0] = '\0';
    assert_int_equal(store_group_members(f->st, NULL, append_member, members), STORE_OK);
    assert_string_equal(members, "finance:alice@localhost;finance:bob@localhost;"
                                 "legal:alice@localhost;");
    assert_int_equal(store_group_members(f->st, "nogroup", append_member, members),
                     STORE_NOT_FOUND);

    assert_int_equal(store_group_member_del(f->st, "finance", "bob@localhost"), STORE_OK);
    assert_int_equal(store_group_member_del(f->st, "finance", "bob@localhost"), STORE_NOT_FOUND);
    assert_int_equal(store_group_member_del(f->st, "nogroup", "bob@localhost"), STORE_NOT_FOUND);

    /* Deleting a group takes its members and values with it. */
    assert_int_equal(store_policy_set(f->st, POLICY_GROUP, "finance", "e2e_aes", "false"),
                     STORE_OK);
    int64_t v = policy_version_of(f->st);
    assert_int_equal(store_group_del(f->st, "finance"), STORE_OK);
    assert_true(policy_version_of(f->st) > v);
    assert_int_equal(store_group_del(f->st, "finance"), STORE_NOT_FOUND);
    char all[1024] = "";
    assert_int_equal(store_policy_list(f->st, append_policy, all), STORE_OK);
    assert_string_equal(all, "");
    members[0] = '\0';
    assert_int_equal(store_group_members(f->st, NULL, append_member, members), STORE_OK);
    assert_string_equal(members, "legal:alice@localhost;");
    assert_int_equal(db_int(f, "SELECT count(*) FROM policy_groups"), 1);
}

/* ---- PEP ---- */

static void append_item(void *ud, const char *id, const char *publisher, const char *payload)
{
    char *buf = ud;
    size_t len = strlen(buf);
    snprintf(buf + len, 1024 - len, "%s|%s|%s;", id, publisher, payload);
}

static void append_node(void *ud, const char *node, const char *config)
{
    char *buf = ud;
    size_t len = strlen(buf);
    snprintf(buf + len, 1024 - len, "%s=%s;", node, config);
}

static void test_pep_nodes_items(void **state)
{
    fixture *f = *state;
    const char *a = "alice@localhost";
    create_user(f->st, a);
    char *cfg = NULL;
    assert_int_equal(store_pep_node_get(f->st, a, "urn:x:tune", &cfg), STORE_NOT_FOUND);
    assert_int_equal(store_pep_node_put(f->st, a, "urn:x:tune", "max_items=1", 2), STORE_OK);
    assert_int_equal(store_pep_node_put(f->st, a, "urn:x:mood", "max_items=3", 2), STORE_OK);
    /* The cap counts nodes; replacing a configuration is not creating. */
    assert_int_equal(store_pep_node_put(f->st, a, "urn:x:third", "x", 2), STORE_FULL);
    assert_int_equal(store_pep_node_put(f->st, a, "urn:x:mood", "max_items=2", 2), STORE_OK);
    assert_int_equal(store_pep_node_put(f->st, "nobody@localhost", "n", "x", 2), STORE_NOT_FOUND);
    assert_int_equal(store_pep_node_get(f->st, a, "urn:x:mood", &cfg), STORE_OK);
    assert_string_equal(cfg, "max_items=2");
    free(cfg);
    char nodes[1024] = "";
    assert_int_equal(store_pep_node_list(f->st, a, append_node, nodes), STORE_OK);
    assert_string_equal(nodes, "urn:x:mood=max_items=2;urn:x:tune=max_items=1;");

    /* Items keep publication order; the newest max_items stay. */
    assert_int_equal(store_pep_item_put(f->st, a, "urn:x:mood", "1", a, "<a/>", 2), STORE_OK);
    assert_int_equal(store_pep_item_put(f->st, a, "urn:x:mood", "2", a, "<b/>", 2), STORE_OK);
    assert_int_equal(store_pep_item_put(f->st, a, "urn:x:mood", "3", a, "<c/>", 2), STORE_OK);
    char items[1024] = "";
    assert_int_equal(store_pep_items(f->st, a, "urn:x:mood", NULL, 0, append_item, items),
                     STORE_OK);
    assert_string_equal(items, "2|alice@localhost|<b/>;3|alice@localhost|<c/>;");
    /* Republishing an id replaces it and makes it the newest. */
    assert_int_equal(store_pep_item_put(f->st, a, "urn:x:mood", "2", a, "<b2 \xc3\xa9/>", 2),
                     STORE_OK);
    items[0] = '\0';
    assert_int_equal(store_pep_items(f->st, a, "urn:x:mood", NULL, 0, append_item, items),
                     STORE_OK);
    assert_string_equal(items, "3|alice@localhost|<c/>;2|alice@localhost|<b2 \xc3\xa9/>;");
    items[0] = '\0';
    assert_int_equal(store_pep_items(f->st, a, "urn:x:mood", NULL, 1, append_item, items),
                     STORE_OK);
    assert_string_equal(items, "2|alice@localhost|<b2 \xc3\xa9/>;");
    items[0] = '\0';
    assert_int_equal(store_pep_items(f->st, a, "urn:x:mood", "3", 0, append_item, items),
                     STORE_OK);
    assert_string_equal(items, "3|alice@localhost|<c/>;");
    items[0] = '\0';
    assert_int_equal(store_pep_items(f->st, a, "urn:x:mood", "1", 0, append_item, items),
                     STORE_OK);
    assert_string_equal(items, "");
    /* max_items <= 0 keeps everything. */
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(store_pep_item_put(f->st, a, "urn:x:tune", id, a, "<t/>", 0), STORE_OK);
    }
    assert_int_equal(db_int(f, "SELECT count(*) FROM pep_items WHERE node = 'urn:x:tune'"), 5);

    assert_int_equal(store_pep_item_del(f->st, a, "urn:x:mood", "3"), STORE_OK);
    assert_int_equal(store_pep_item_del(f->st, a, "urn:x:mood", "3"), STORE_NOT_FOUND);
    assert_int_equal(store_pep_item_put(f->st, a, "urn:x:none", "1", a, "<a/>", 2),
                     STORE_NOT_FOUND);
    assert_int_equal(store_pep_items(f->st, a, "urn:x:none", NULL, 0, append_item, items),
                     STORE_NOT_FOUND);

    /* A node goes with its items; an account with its nodes. */
    assert_int_equal(store_pep_node_del(f->st, a, "urn:x:mood"), STORE_OK);
    assert_int_equal(store_pep_node_del(f->st, a, "urn:x:mood"), STORE_NOT_FOUND);
    assert_int_equal(db_int(f, "SELECT count(*) FROM pep_items WHERE node = 'urn:x:mood'"), 0);
    assert_int_equal(store_user_delete(f->st, a), STORE_OK);
    assert_int_equal(db_int(f, "SELECT (SELECT count(*) FROM pep_items)"
                               " + (SELECT count(*) FROM pep_nodes)"),
                     0);
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    /* Every back end: the store's contract. */
    const struct CMUnitTest common[] = {
        BOTH(test_user_create_get),
        BOTH(test_user_duplicate),
        BOTH(test_user_bad_creds),
        BOTH(test_user_set_creds),
        BOTH(test_user_list),
        BOTH(test_user_delete_cascades),
        BOTH(test_roster_put_get),
        BOTH(test_roster_del),
        BOTH(test_roster_unknown_user),
        BOTH(test_offline_order_cap),
        BOTH(test_offline_pop_keeps_on_failure),
        BOTH(test_reopen_keeps_data),
        BOTH(test_two_handles),
        BOTH(test_schema_version),
        BOTH(test_binary_creds),
        BOTH(test_byte_order_and_text),
        BOTH(test_store_calls_from_pop_callback),
        BOTH(test_concurrent_push_cap),
        BOTH(test_kv_documents),
        BOTH(test_mam_archive_query_pages),
        BOTH(test_policy_values),
        BOTH(test_policy_groups),
        BOTH(test_pep_nodes_items),
    };
    const struct CMUnitTest sqlite_only[] = {
        BOTH(test_sqlite_file_mode_wal),
        cmocka_unit_test(test_open_errors),
    };
    const struct CMUnitTest pg_only[] = {
        BOTH(test_pg_concurrent_pop_once),
        BOTH(test_pg_schema),
        cmocka_unit_test(test_pg_connection_loss),
    };
    int failed = cmocka_run_group_tests_name("store sqlite", common, group_setup_sqlite, NULL);
    failed += cmocka_run_group_tests_name("store sqlite only", sqlite_only, group_setup_sqlite,
                                          NULL);
    const char *pg = getenv("PARLEY_TEST_PG_URI");
    if (pg && *pg) {
        failed += cmocka_run_group_tests_name("store postgresql", common, group_setup_pg,
                                              group_teardown_pg);
        failed += cmocka_run_group_tests_name("store postgresql only", pg_only, group_setup_pg,
                                              group_teardown_pg);
    } else {
        printf("store postgresql: skipped (set PARLEY_TEST_PG_URI, see scripts/pg-cluster.sh)\n");
    }
    return failed;
}
