/* test_srv_muc.c - the token bucket behind the group chat rate limits (muc.c): a second's
 * worth of burst, then one message per 1/rate seconds, never more than the rate held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/muc_internal.h"

static void burst_then_empty(void **state)
{
    muc_bucket b = {0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(muc_bucket_take(&b, 5, 1000), 0);
    assert_int_equal(muc_bucket_take(&b, 5, 1000), -1);
    assert_int_equal(muc_bucket_take(&b, 5, 1100), -1); /* 0.5 token after 100 ms */
    assert_int_equal(muc_bucket_take(&b, 5, 1200), 0);  /* 1 token after 200 ms */
    assert_int_equal(muc_bucket_take(&b, 5, 1200), -1);
}

static void refill_is_capped(void **state)
{
    muc_bucket b = {0};
    assert_int_equal(muc_bucket_take(&b, 3, 1000), 0);
    /* an hour idle refills to the rate, not to 10800 */
    int ok = 0;
    for (int i = 0; i < 10; i++)
        ok += muc_bucket_take(&b, 3, 3601000) == 0;
    assert_int_equal(ok, 3);
}

static void clock_going_back_costs_nothing(void **state)
{
    muc_bucket b = {0};
    assert_int_equal(muc_bucket_take(&b, 2, 5000), 0);
    assert_int_equal(muc_bucket_take(&b, 2, 4000), 0);
    assert_int_equal(muc_bucket_take(&b, 2, 4000), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_empty),
        cmocka_unit_test(refill_is_capped),
        cmocka_unit_test(clock_going_back_costs_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
