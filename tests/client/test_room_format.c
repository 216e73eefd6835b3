/* test_room_format.c - cmocka tests of the terminal client's formatting for group chats
 * and carbons (chat_format.c): a room's header never shows the end-to-end lock and says
 * the server reads it, hostile room names and topics are cut, not overflowed, and the
 * marks of messages from another device of ours. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/client/cli/chat_format.h"

#define LOCK_E2E "\xF0\x9F\x94\x90" /* 🔐 */

static void test_room_header_never_claims_end_to_end(void **state)
{
    (void)state;
    char b[256];
    fmt_room_header(b, sizeof b, 3, "team@conference.example.org", "alice", 4, "release");
    assert_string_equal(b, "[3] team@conference.example.org [server-readable] group chat | "
                           "4 occupants, you are alice | topic: release");
    fmt_room_header(b, sizeof b, 2, "solo@c.x", "me", 1, NULL);
    assert_string_equal(b, "[2] solo@c.x [server-readable] group chat | 1 occupant, you are me");
    fmt_room_header(b, sizeof b, 2, "gone@c.x", NULL, 0, "");
    assert_string_equal(b, "[2] gone@c.x [server-readable] group chat | not joined");
    assert_null(strstr(b, LOCK_E2E));
}

static void test_bad_input_long_topic_is_cut_to_the_buffer(void **state)
{
    (void)state;
    char topic[3000], b[128];
    memset(topic, 'x', sizeof topic - 1);
    topic[sizeof topic - 1] = '\0';
    memset(b, 'Z', sizeof b);
    fmt_room_header(b, sizeof b, 9, "r@c.x", "n", 2, topic);
    assert_int_equal(strlen(b), sizeof b - 1);
    assert_int_equal(strncmp(b, "[9] r@c.x [server-readable]", 27), 0);
}

static void test_carbon_marks(void **state)
{
    (void)state;
    char b[128];
    fmt_carbon_who(b, sizeof b, 1, "alice@x/phone", 1);
    assert_string_equal(b, "me (other device)");
    fmt_carbon_who(b, sizeof b, 0, "bob@x", 1);
    assert_string_equal(b, "bob@x \xE2\x86\x92 (other device)");
    fmt_carbon_who(b, sizeof b, 0, "bob@x", 0);
    assert_string_equal(b, "bob@x -> (other device)");
    fmt_carbon_who(b, sizeof b, 0, NULL, 0);
    assert_string_equal(b, "? -> (other device)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_header_never_claims_end_to_end),
        cmocka_unit_test(test_bad_input_long_topic_is_cut_to_the_buffer),
        cmocka_unit_test(test_carbon_marks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
