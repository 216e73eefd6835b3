/* test_time.c - time_parse_iso8601 and time_format_utc (src/common/util.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/util.h"

static int64_t parse(const char *s)
{
    int64_t us = -1;
    assert_int_equal(time_parse_iso8601(s, &us), 0);
    return us;
}

static void test_iso8601_forms(void **state)
{
    (void)state;
    assert_int_equal(parse("1970-01-01"), 0);
    assert_int_equal(parse("2024-05-01"), INT64_C(1714521600000000));
    assert_int_equal(parse("2024-05-01T12:00"), INT64_C(1714564800000000));
    assert_int_equal(parse("2024-05-01T12:00:00Z"), INT64_C(1714564800000000));
    assert_int_equal(parse("2024-05-01 12:00:00"), INT64_C(1714564800000000));
    assert_int_equal(parse("2024-05-01T12:00:00.5Z"), INT64_C(1714564800500000));
    assert_int_equal(parse("2024-05-01T12:00:00.123456789Z"), INT64_C(1714564800123456));
    /* Offsets: 14:00+02:00 is 12:00Z. */
    assert_int_equal(parse("2024-05-01T14:00:00+02:00"), INT64_C(1714564800000000));
    assert_int_equal(parse("2024-05-01T10:30:00-01:30"), INT64_C(1714564800000000));
}

static void test_iso8601_round_trip(void **state)
{
    (void)state;
    char text[TIME_UTC_LEN];
    int64_t t = INT64_C(1714564800123456);
    time_format_utc(t, text);
    assert_string_equal(text, "2024-05-01T12:00:00.123456Z");
    assert_int_equal(parse(text), t);
}

static void test_iso8601_bad_input(void **state)
{
    (void)state;
    static const char *bad[] = {"",           "yesterday",           "2024-05-01T",
                                "2024-05-01T12",           "2024-05-01T12:00:00.",
                                "2024-05-01T12:00:00+2",   "2024-05-01T12:00:00+24:00",
                                "2024-05-01T12:00:00+0a:00", "2024-05-01T12:00:00Zjunk",
                                "2024-13-01"};
    int64_t us;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (time_parse_iso8601(bad[i], &us) == 0)
            fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(time_parse_iso8601(NULL, &us), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso8601_forms),
        cmocka_unit_test(test_iso8601_round_trip),
        cmocka_unit_test(test_iso8601_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
