/* test_store_rooms.c - unit tests of the room claims of the store (store_room_*;
 * node_rooms.h): a room claimed by the first node that asks, the holder answered to the
 * others, taken over once the holder's lease has run out, released, described for the
 * room list, and the temporary rooms of dead nodes swept; a SQLite store refuses them.
 * PostgreSQL cases run when PARLEY_TEST_PG_URI names a server (tests/run.sh starts one),
 * in a database of their own made here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/store.h"

#include "pg_helpers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int group_setup(void **state)
{
    (void)state;
    return pgt_group_setup("parley_test_rooms");
}

static int group_teardown(void **state)
{
    (void)state;
    return pgt_group_teardown();
}

static store *open_pg(void)
{
    if (!pgt_group_uri[0])
        skip(); /* no PostgreSQL server for this run */
    char err[512];
    store *st = store_open(pgt_group_uri, err, sizeof err);
    if (!st)
        fail_msg("store_open: %s", err);
    assert_int_equal(pgt_exec(pgt_group_uri, "DELETE FROM cluster_rooms; DELETE FROM cluster_nodes"), 0);
    return st;
}

typedef struct seen {
    int n;
    char what[8][96];
} seen;

static void on_room(void *ud, const store_room *r)
{
    seen *s = ud;
    snprintf(s->what[s->n++], sizeof s->what[0], "%s %s %s %d %d", r->room, r->node,
             r->listing ? r->listing : "-", r->persistent, r->alive);
}

static void claim(store *st, const char *room, const char *node, const char *want)
{
    char *holder = NULL;
    assert_int_equal(store_room_claim(st, room, node, &holder), STORE_OK);
    assert_string_equal(holder, want);
    free(holder);
}

static void expire(const char *node)
{
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE cluster_nodes SET lease_until = now() - "
                              "interval '100 seconds' WHERE name = '%s'", node);
    assert_int_equal(pgt_exec(pgt_group_uri, sql), 0);
}

static void test_claims_and_takeover(void **state)
{
    (void)state;
    store *st = open_pg();
    assert_int_equal(store_node_renew(st, "a", 30), STORE_OK);
    assert_int_equal(store_node_renew(st, "b", 30), STORE_OK);
    claim(st, "r1@conf", "a", "a"); /* first come */
    claim(st, "r1@conf", "b", "a"); /* a holds it: b is told so */
    claim(st, "r1@conf", "a", "a"); /* asking again changes nothing */
    claim(st, "r2@conf", "b", "b");
    assert_int_equal(store_room_describe(st, "r1@conf", "a", "Room One", 1), STORE_OK);
    /* only the holder describes its room */
    assert_int_equal(store_room_describe(st, "r2@conf", "a", "not mine", 1), STORE_OK);
    seen s = {0};
    assert_int_equal(store_room_list(st, on_room, &s), STORE_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.what[0], "r1@conf a Room One 1 1");
    assert_string_equal(s.what[1], "r2@conf b - 0 1");
    /* a's lease ran out: its room goes to the next node that asks, listing kept */
    expire("a");
    claim(st, "r1@conf", "b", "b");
    claim(st, "r1@conf", "a", "b");
    memset(&s, 0, sizeof s);
    assert_int_equal(store_room_list(st, on_room, &s), STORE_OK);
    assert_string_equal(s.what[0], "r1@conf b Room One 1 1");
    /* releasing: only the holder's claim goes */
    assert_int_equal(store_room_release(st, "r1@conf", "a"), STORE_OK);
    claim(st, "r1@conf", "a", "b");
    assert_int_equal(store_room_release(st, "r1@conf", "b"), STORE_OK);
    assert_int_equal(store_node_renew(st, "a", 30), STORE_OK);
    claim(st, "r1@conf", "a", "a");
    /* all of a node's claims at once */
    claim(st, "r3@conf", "a", "a");
    assert_int_equal(store_room_release(st, NULL, "a"), STORE_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(store_room_list(st, on_room, &s), STORE_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.what[0], "r2@conf b - 0 1");
    store_close(st);
}

static void test_sweep(void **state)
{
    (void)state;
    store *st = open_pg();
    assert_int_equal(store_node_renew(st, "a", 30), STORE_OK);
    assert_int_equal(store_node_renew(st, "b", 30), STORE_OK);
    claim(st, "temp@conf", "a", "a");
    claim(st, "kept@conf", "a", "a");
    claim(st, "other@conf", "b", "b");
    assert_int_equal(store_room_describe(st, "kept@conf", "a", NULL, 1), STORE_OK);
    expire("a");
    int removed = -1;
    /* within the grace nothing goes; past it, the dead node's temporary room */
    assert_int_equal(store_room_sweep(st, 200, &removed), STORE_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(store_room_sweep(st, 50, &removed), STORE_OK);
    assert_int_equal(removed, 1);
    seen s = {0};
    assert_int_equal(store_room_list(st, on_room, &s), STORE_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.what[0], "kept@conf a - 1 0");
    assert_string_equal(s.what[1], "other@conf b - 0 1");
    store_close(st);
}

static void test_sqlite_refuses(void **state)
{
    (void)state;
    char path[64], uri[80], err[256];
    snprintf(path, sizeof path, "/tmp/parley-test-rooms-%ld.db", (long)getpid());
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    store *st = store_open(uri, err, sizeof err);
    assert_non_null(st);
    char *holder = NULL;
    assert_int_equal(store_room_claim(st, "r@conf", "n", &holder), STORE_ERROR);
    assert_null(holder);
    assert_non_null(strstr(store_last_error(st), "PostgreSQL"));
    assert_int_equal(store_room_release(st, NULL, "n"), STORE_ERROR);
    store_close(st);
    unlink(path);
    char side[96];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_and_takeover),
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_sqlite_refuses),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
