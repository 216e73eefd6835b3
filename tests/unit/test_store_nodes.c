/* test_store_nodes.c - unit tests of the node registry and session directory of the store
 * (store_node_*, store_session_*; node.h): registration, leases on the database's clock,
 * entries that count only while their node's lease runs, sweeps, and a SQLite store
 * refusing them. PostgreSQL cases run when PARLEY_TEST_PG_URI names a server (tests/run.sh
 * starts one), each in a database of its own made here. */
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
    return pgt_group_setup("parley_test_nodes");
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
    assert_int_equal(pgt_exec(pgt_group_uri, "DELETE FROM cluster_sessions; DELETE FROM cluster_nodes"), 0);
    return st;
}

typedef struct seen {
    int n;
    char what[8][64];
} seen;

static void on_node(void *ud, const store_node *n)
{
    seen *s = ud;
    snprintf(s->what[s->n++], sizeof s->what[0], "%s %s %d %d/%d", n->name,
             n->address ? n->address : "-", n->alive, n->sessions, n->available);
}

static void on_session(void *ud, const char *resource, const char *node, int available,
                       int priority)
{
    seen *s = ud;
    snprintf(s->what[s->n++], sizeof s->what[0], "%s@%s %d %d", resource, node, available,
             priority);
}

static void test_registry(void **state)
{
    (void)state;
    store *st = open_pg();
    char *addr = NULL;
    assert_int_equal(store_node_address(st, "node1", &addr), STORE_NOT_FOUND);
    assert_int_equal(store_node_register(st, "node1", "127.0.0.1:5270"), STORE_OK);
    assert_int_equal(store_node_register(st, "node1", "127.0.0.1:5271"), STORE_OK); /* moved */
    assert_int_equal(store_node_address(st, "node1", &addr), STORE_OK);
    assert_string_equal(addr, "127.0.0.1:5271");
    free(addr);
    /* a node that only renews (configured, not registered) has no address */
    assert_int_equal(store_node_renew(st, "node2", 30), STORE_OK);
    assert_int_equal(store_node_address(st, "node2", &addr), STORE_NOT_FOUND);
    seen s = {0};
    assert_int_equal(store_node_list(st, on_node, &s), STORE_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.what[0], "node1 127.0.0.1:5271 0 0/0");
    assert_string_equal(s.what[1], "node2 - 1 0/0");
    assert_int_equal(store_node_unregister(st, "node1"), STORE_OK);
    assert_int_equal(store_node_unregister(st, "node1"), STORE_NOT_FOUND);
    assert_int_equal(store_node_renew(st, "node2", 0), STORE_ERROR);
    store_close(st);
}

static void test_directory_and_leases(void **state)
{
    (void)state;
    store *st = open_pg();
    assert_int_equal(store_node_renew(st, "a", 30), STORE_OK);
    assert_int_equal(store_node_renew(st, "b", 30), STORE_OK);
    assert_int_equal(store_session_put(st, "u@d", "r1", "a", 1, 5), STORE_OK);
    assert_int_equal(store_session_put(st, "u@d", "r2", "b", 0, 0), STORE_OK);
    assert_int_equal(store_session_put(st, "v@d", "r1", "b", 1, -1), STORE_OK);
    seen s = {0};
    assert_int_equal(store_session_list(st, "u@d", on_session, &s), STORE_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.what[0], "r1@a 1 5");
    assert_string_equal(s.what[1], "r2@b 0 0");
    /* the session moved to b: a cannot delete it any more */
    assert_int_equal(store_session_put(st, "u@d", "r1", "b", 1, 1), STORE_OK);
    assert_int_equal(store_session_del(st, "u@d", "r1", "a"), STORE_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(store_session_list(st, "u@d", on_session, &s), STORE_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.what[0], "r1@b 1 1");
    /* b's lease ran out (on the database's clock): its entries no longer count */
    assert_int_equal(pgt_exec(pgt_group_uri, "UPDATE cluster_nodes SET lease_until = now() - "
                                    "interval '100 seconds' WHERE name = 'b'"),
                     0);
    memset(&s, 0, sizeof s);
    assert_int_equal(store_session_list(st, "u@d", on_session, &s), STORE_OK);
    assert_int_equal(s.n, 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(store_node_list(st, on_node, &s), STORE_OK);
    assert_string_equal(s.what[1], "b - 0 3/2");
    /* a sweep with a longer grace keeps them; a shorter one removes them */
    int removed = -1;
    assert_int_equal(store_node_sweep(st, NULL, 200, &removed), STORE_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(store_node_sweep(st, NULL, 50, &removed), STORE_OK);
    assert_int_equal(removed, 3);
    /* a node clears its own entries */
    assert_int_equal(store_session_put(st, "w@d", "x", "a", 1, 0), STORE_OK);
    assert_int_equal(store_node_sweep(st, "a", 0, &removed), STORE_OK);
    assert_int_equal(removed, 1);
    store_close(st);
}

static void test_sqlite_refuses(void **state)
{
    (void)state;
    char path[64], uri[80], err[256];
    snprintf(path, sizeof path, "/tmp/parley-test-nodes-%ld.db", (long)getpid());
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    store *st = store_open(uri, err, sizeof err);
    assert_non_null(st);
    assert_int_equal(store_node_register(st, "n", "h:1"), STORE_ERROR);
    assert_non_null(strstr(store_last_error(st), "PostgreSQL"));
    assert_int_equal(store_session_put(st, "u@d", "r", "n", 1, 0), STORE_ERROR);
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
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_directory_and_leases),
        cmocka_unit_test(test_sqlite_refuses),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
