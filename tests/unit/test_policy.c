/* test_policy.c - unit tests of the admin policy's keys, canonical values and resolution
 * (src/common/policy.h): precedence user > groups > global > default, the most
 * restrictive value across several groups, and the e2e_aes/e2e_plain combination. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/policy.h"

#include <stdlib.h>
#include <string.h>

static void expect_canon(const char *key, const char *in, const char *want)
{
    char err[256] = "";
    char *got = policy_canonical(policy_key_find(key), in, err, sizeof err);
    if (!got)
        fail_msg("%s=%s refused: %s", key, in, err);
    assert_string_equal(got, want);
    free(got);
}

static void expect_bad(const char *key, const char *in, const char *why)
{
    char err[256] = "";
    char *got = policy_canonical(policy_key_find(key), in, err, sizeof err);
    if (got)
        fail_msg("%s=%s accepted as %s", key, in, got);
    if (!strstr(err, why))
        fail_msg("%s=%s: error '%s' lacks '%s'", key, in, err, why);
}

static void test_canonical(void **state)
{
    (void)state;
    assert_int_equal(policy_key_find("nope"), -1);
    expect_canon("e2e_aes", "YES", "true");
    expect_canon("e2e_plain", "off", "false");
    expect_bad("e2e_aes", "maybe", "a boolean");
    expect_canon("max_file_size", "100M", "104857600");
    expect_canon("max_file_size", "2GiB", "2147483648");
    expect_canon("max_file_size", "512kb", "524288");
    expect_canon("max_file_size", "1000", "1000");
    expect_bad("max_file_size", "0", "more than 0");
    expect_bad("max_file_size", "-5", "a size");
    expect_bad("max_file_size", "10X", "a size");
    expect_bad("max_file_size", "99999999999999999999999", "1 PiB");
    expect_bad("max_file_size", "2048T", "1 PiB");
    expect_canon("file_daily_quota", "0", "0");
    expect_canon("file_daily_quota", "1G", "1073741824");
    expect_canon("file_types_allowed", " image/PNG, .PDF ,docx,*.tar.gz,image/png",
                 "image/png,.pdf,.docx,.tar.gz");
    expect_canon("file_types_allowed", "image/*, *", "*");
    expect_canon("file_types_allowed", "any", "*");
    expect_canon("file_types_blocked", "none", "");
    expect_canon("file_types_blocked", "", "");
    expect_bad("file_types_blocked", "image/", "neither a MIME type");
    expect_bad("file_types_blocked", "a b", "neither a MIME type");
    expect_bad("file_types_blocked", "*/png", "neither a MIME type");
}

static void test_group_names(void **state)
{
    (void)state;
    assert_true(policy_group_name_ok("finance"));
    assert_true(policy_group_name_ok("team-2.eu_west"));
    assert_false(policy_group_name_ok(""));
    assert_false(policy_group_name_ok("-x"));
    assert_false(policy_group_name_ok("Finance"));
    assert_false(policy_group_name_ok("a b"));
    char long_name[80];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_false(policy_group_name_ok(long_name));
}

static const policy_row rows[] = {
    {POLICY_GLOBAL, "", "e2e_plain", "false"},
    {POLICY_GLOBAL, "", "max_file_size", "1000"},
    {POLICY_GROUP, "b-team", "max_file_size", "500"},
    {POLICY_GROUP, "a-team", "max_file_size", "700"},
    {POLICY_GROUP, "a-team", "file_transfer", "true"},
    {POLICY_GROUP, "b-team", "file_transfer", "false"},
    {POLICY_GROUP, "a-team", "file_types_allowed", "image/*,.pdf"},
    {POLICY_GROUP, "b-team", "file_types_allowed", "image/png,.doc"},
    {POLICY_GROUP, "a-team", "file_types_blocked", ".exe"},
    {POLICY_GROUP, "b-team", "file_types_blocked", ".bat,.exe"},
    {POLICY_GROUP, "a-team", "file_daily_quota", "0"},
    {POLICY_GROUP, "b-team", "file_daily_quota", "100"},
    {POLICY_GROUP, "c-team", "e2e_aes", "false"},
    {POLICY_USER, "bob@x", "e2e_plain", "true"},
    {POLICY_USER, "carol@x", "e2e_plain", "not-a-bool"}, /* ignored */
};

static void test_precedence(void **state)
{
    (void)state;
    policy_effective e;
    /* Global scope: global values over defaults. */
    policy_resolve(rows, sizeof rows / sizeof rows[0], NULL, NULL, 0, &e);
    assert_string_equal(e.value[POLICY_E2E_PLAIN], "false");
    assert_string_equal(e.source[POLICY_E2E_PLAIN], "global");
    assert_string_equal(e.value[POLICY_E2E_AES], "true");
    assert_string_equal(e.source[POLICY_E2E_AES], "default");
    assert_int_equal(policy_check(&e, (char[8]){0}, 8), 0);
    policy_effective_clear(&e);

    /* A user in both teams: the most restrictive group value, named. */
    const char *groups[] = {"b-team", "a-team"};
    policy_resolve(rows, sizeof rows / sizeof rows[0], "bob@x", groups, 2, &e);
    assert_string_equal(e.value[POLICY_E2E_PLAIN], "true");
    assert_string_equal(e.source[POLICY_E2E_PLAIN], "user");
    assert_string_equal(e.value[POLICY_MAX_FILE_SIZE], "500");
    assert_string_equal(e.source[POLICY_MAX_FILE_SIZE], "group b-team");
    assert_string_equal(e.value[POLICY_FILE_TRANSFER], "false");
    assert_string_equal(e.source[POLICY_FILE_TRANSFER], "group b-team");
    assert_string_equal(e.value[POLICY_FILE_TYPES_ALLOWED], "image/png");
    assert_string_equal(e.source[POLICY_FILE_TYPES_ALLOWED], "groups a-team, b-team");
    assert_string_equal(e.value[POLICY_FILE_TYPES_BLOCKED], ".exe,.bat");
    assert_string_equal(e.value[POLICY_FILE_DAILY_QUOTA], "100");
    policy_effective_clear(&e);

    /* An invalid stored value is ignored: carol falls back to global. */
    policy_resolve(rows, sizeof rows / sizeof rows[0], "carol@x", NULL, 0, &e);
    assert_string_equal(e.value[POLICY_E2E_PLAIN], "false");
    assert_string_equal(e.source[POLICY_E2E_PLAIN], "global");
    policy_effective_clear(&e);

    /* c-team forbids encryption, global forbids plaintext: invalid, and says why. */
    const char *c[] = {"c-team"};
    policy_resolve(rows, sizeof rows / sizeof rows[0], "dave@x", c, 1, &e);
    char why[300];
    assert_int_equal(policy_check(&e, why, sizeof why), -1);
    assert_non_null(strstr(why, "group c-team"));
    assert_non_null(strstr(why, "global"));
    policy_effective_clear(&e);
}

static void test_equal(void **state)
{
    (void)state;
    policy_effective a, b;
    const char *g1[] = {"a-team"};
    const char *g2[] = {"a-team", "c-team"};
    policy_resolve(rows, sizeof rows / sizeof rows[0], "x@x", g1, 1, &a);
    policy_resolve(rows, sizeof rows / sizeof rows[0], "y@x", g1, 1, &b);
    assert_true(policy_effective_equal(&a, &b));
    policy_effective_clear(&b);
    policy_resolve(rows, sizeof rows / sizeof rows[0], "y@x", g2, 2, &b);
    assert_false(policy_effective_equal(&a, &b));
    policy_effective_clear(&a);
    policy_effective_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_group_names),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_equal),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
