/* test_store.c - unit tests of the store (store.h) against a temporary SQLite file:
 * accounts, rosters, offline messages, persistence, schema version and file mode. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char dir[64];
    char path[128];
    char uri[160];
    store *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/parley-test-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    /* A subdirectory that does not exist yet: store_open must create it. */
    snprintf(f->path, sizeof f->path, "%s/sub/parley.db", f->dir);
    snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
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
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
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
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *stq;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM roster_groups WHERE owner='alice@localhost')"
                                        " + (SELECT count(*) FROM credentials WHERE jid='alice@localhost')",
                                        -1, &stq, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stq), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(stq, 0), 0);
    sqlite3_finalize(stq);
    sqlite3_close(db);

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

static void test_schema_and_mode(void **state)
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
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);

    /* A database from a newer Parley is refused rather than misread. */
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_version VALUES (99, 0)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    char err[256] = "";
    store *newer = store_open(f->uri, err, sizeof err);
    assert_null(newer);
    assert_non_null(strstr(err, "newer"));
}

static void test_open_errors(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(store_open("mysql://x", err, sizeof err));
    assert_non_null(strstr(err, "unknown scheme"));
    assert_null(store_open("postgresql://db/parley", err, sizeof err));
    assert_non_null(strstr(err, "PostgreSQL"));
    assert_null(store_open("sqlite:/proc/nonexistent/dir/x.db", err, sizeof err));
    assert_true(strlen(err) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_user_create_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_bad_creds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_set_creds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_delete_cascades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roster_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roster_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roster_unknown_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_order_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_pop_keeps_on_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_and_mode, setup, teardown),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
