/* test_srv_node_dir.c - the directory replica (src/server/node_dir.h): entries count only
 * once their node's snapshot is complete, puts replace, gone removes, a node's drop
 * forgets all its entries and its sync, and the replica is trusted only while every live
 * node is synced. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/node_dir.h"

#include <stdio.h>
#include <string.h>

typedef struct seen {
    char text[512];
    int n;
} seen;

static void record(void *ud, const char *resource, const char *node, int available,
                   int priority)
{
    seen *s = ud;
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof s->text - len, "%s@%s:%d:%d;", resource, node, available,
             priority);
    s->n++;
}

static seen entries_of(node_dir *d, const char *bare)
{
    seen s = {"", 0};
    int n = node_dir_each(d, bare, record, &s);
    assert_int_equal(n, s.n);
    return s;
}

static void test_entries_count_once_synced(void **state)
{
    (void)state;
    node_dir *d = node_dir_new();
    node_dir_put(d, "n2", "bob@d", "r", 1, 5);
    assert_int_equal(entries_of(d, "bob@d").n, 0); /* snapshot not complete */
    node_dir_set_synced(d, "n2");
    assert_string_equal(entries_of(d, "bob@d").text, "r@n2:1:5;");
    node_dir_put(d, "n2", "bob@d", "r", 0, -1); /* replaces */
    assert_string_equal(entries_of(d, "bob@d").text, "r@n2:0:-1;");
    node_dir_put(d, "n2", "bob@d", "s", 1, 0);
    assert_int_equal(entries_of(d, "bob@d").n, 2);
    node_dir_del(d, "n2", "bob@d", "r");
    assert_string_equal(entries_of(d, "bob@d").text, "s@n2:1:0;");
    node_dir_del(d, "n3", "bob@d", "s"); /* not n3's: kept */
    assert_int_equal(entries_of(d, "bob@d").n, 1);
    node_dir_del(d, "n2", "bob@d", "s");
    assert_int_equal(entries_of(d, "bob@d").n, 0);
    assert_int_equal(entries_of(d, "nobody@d").n, 0);
    node_dir_free(d);
}

static void test_drop_forgets_a_node(void **state)
{
    (void)state;
    node_dir *d = node_dir_new();
    node_dir_put(d, "n2", "bob@d", "r", 1, 0);
    node_dir_put(d, "n3", "bob@d", "x", 1, 0);
    node_dir_put(d, "n3", "carol@d", "c", 1, 0);
    node_dir_set_synced(d, "n2");
    node_dir_set_synced(d, "n3");
    assert_int_equal(entries_of(d, "bob@d").n, 2);
    node_dir_drop(d, "n3");
    assert_false(node_dir_synced(d, "n3"));
    assert_true(node_dir_synced(d, "n2"));
    assert_string_equal(entries_of(d, "bob@d").text, "r@n2:1:0;");
    node_dir_set_synced(d, "n3"); /* a new snapshot without carol */
    assert_int_equal(entries_of(d, "carol@d").n, 0);
    node_dir_free(d);
}

static void test_trusted_only_with_every_live_node_synced(void **state)
{
    (void)state;
    node_dir *d = node_dir_new();
    assert_true(node_dir_trusted(d)); /* alone */
    node_dir_mark_alive(d, "n2");
    node_dir_mark_alive(d, "n3");
    assert_false(node_dir_trusted(d));
    node_dir_set_synced(d, "n2");
    assert_false(node_dir_trusted(d));
    node_dir_set_synced(d, "n3");
    assert_true(node_dir_trusted(d));
    node_dir_drop(d, "n3"); /* its link went down */
    assert_false(node_dir_trusted(d));
    node_dir_mark_all_dead(d); /* the store: n3's lease ran out */
    node_dir_mark_alive(d, "n2");
    assert_true(node_dir_trusted(d));
    node_dir_free(d);
}

static void count(void *ud, const char *node)
{
    (void)node;
    (*(int *)ud)++;
}

static void test_asked_and_pushing(void **state)
{
    (void)state;
    node_dir *d = node_dir_new();
    node_dir_mark_alive(d, "n2");
    node_dir_mark_alive(d, "n3");
    node_dir_set_synced(d, "n3");
    int unsynced = 0, pushed = 0;
    node_dir_each_unsynced(d, count, &unsynced);
    assert_int_equal(unsynced, 1);
    assert_int_equal(node_dir_asked(d, "n2"), 0);
    node_dir_set_asked(d, "n2", 42);
    assert_int_equal(node_dir_asked(d, "n2"), 42);
    node_dir_set_pushing(d, "n2", 1);
    node_dir_set_pushing(d, "n4", 1);
    node_dir_set_pushing(d, "n4", 0);
    node_dir_each_pushed(d, count, &pushed);
    assert_int_equal(pushed, 1);
    node_dir_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries_count_once_synced),
        cmocka_unit_test(test_drop_forgets_a_node),
        cmocka_unit_test(test_trusted_only_with_every_live_node_synced),
        cmocka_unit_test(test_asked_and_pushing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
