/* test_history_ids.c - cmocka tests of what the archive sync keeps in the local history
 * (history.c): finding a message by the server's id or the sender's (so nothing is shown
 * or kept twice), the "archive:" values, and a wipe taking them with the messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/client/cli/history.h"

static void test_has_id_by_peer(void **state)
{
    (void)state;
    char err[256];
    hist *h;
    assert_int_equal(hist_open(&h, NULL, NULL, err, sizeof err), HIST_OK);
    hist_msg m = {.peer = "Bob@Example.org/phone", .body = "hi", .stanza_id = "arch-1"};
    assert_int_equal(hist_add(h, &m), HIST_OK);
    assert_int_equal(hist_has_id(h, "bob@example.org", "arch-1"), 1);
    assert_int_equal(hist_has_id(h, "bob@example.org/other", "arch-1"), 1);
    /* the same id in another conversation is another message */
    assert_int_equal(hist_has_id(h, "carol@example.org", "arch-1"), 0);
    assert_int_equal(hist_has_id(h, "bob@example.org", "arch-2"), 0);
    /* no id: never "known" (messages without ids are not deduplicated) */
    assert_int_equal(hist_has_id(h, "bob@example.org", NULL), 0);
    assert_int_equal(hist_has_id(h, "bob@example.org", ""), 0);
    hist_close(h);
}

static void test_bad_input_meta_keys_and_wipe(void **state)
{
    (void)state;
    char err[256], v[64];
    hist *h;
    assert_int_equal(hist_open(&h, NULL, NULL, err, sizeof err), HIST_OK);
    assert_int_equal(hist_meta_get(h, "archive:account", v, sizeof v), HIST_OK);
    assert_string_equal(v, "");
    assert_int_equal(hist_meta_set(h, "archive:account", "id-9"), HIST_OK);
    assert_int_equal(hist_meta_set(h, "archive:room:r@c.x", "r-3"), HIST_OK);
    assert_int_equal(hist_meta_get(h, "archive:account", v, sizeof v), HIST_OK);
    assert_string_equal(v, "id-9");
    /* only archive values: the format tag (or anything else) cannot be overwritten */
    assert_int_equal(hist_meta_set(h, "format", "evil"), HIST_ERR_INVALID);
    assert_int_equal(hist_meta_set(h, "archive:x", NULL), HIST_ERR_INVALID);
    /* a short buffer gets a cut value, never an overflow */
    char small[3];
    assert_int_equal(hist_meta_get(h, "archive:room:r@c.x", small, sizeof small), HIST_OK);
    assert_string_equal(small, "r-");
    /* a wipe forgets where the sync got to with the messages it got */
    assert_int_equal(hist_wipe(h), HIST_OK);
    assert_int_equal(hist_meta_get(h, "archive:account", v, sizeof v), HIST_OK);
    assert_string_equal(v, "");
    hist_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_has_id_by_peer),
        cmocka_unit_test(test_bad_input_meta_keys_and_wipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
