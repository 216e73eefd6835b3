/* test_jid.c - RFC 7622 parsing and stringprep normalisation in jid.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/jid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

/* Expect s to normalise to want (NULL: invalid). */
static void check_norm(const char *s, const char *want)
{
    char *got = jid_normalize(s);
    if (!want) {
        if (got)
            fail_msg("\"%s\" accepted as \"%s\"", s, got);
        return;
    }
    if (!got)
        fail_msg("\"%s\" rejected, expected \"%s\"", s, want);
    assert_string_equal(got, want);
    free(got);
}

static void test_parse_parts(void **state)
{
    (void)state;
    jid j;
    assert_int_equal(jid_parse("juliet@example.com/balcony", &j), 0);
    assert_string_equal(j.local, "juliet");
    assert_string_equal(j.domain, "example.com");
    assert_string_equal(j.resource, "balcony");
    char *b = jid_bare(&j), *f = jid_full(&j);
    assert_string_equal(b, "juliet@example.com");
    assert_string_equal(f, "juliet@example.com/balcony");
    free(b);
    free(f);
    jid_clear(&j);

    assert_int_equal(jid_parse("example.com", &j), 0);
    assert_null(j.local);
    assert_null(j.resource);
    assert_string_equal(j.domain, "example.com");
    f = jid_full(&j);
    assert_string_equal(f, "example.com");
    free(f);
    jid_clear(&j);

    /* The resource is everything after the first '/', '@' and '/' included. */
    assert_int_equal(jid_parse("example.com/foo@bar/baz", &j), 0);
    assert_null(j.local);
    assert_string_equal(j.domain, "example.com");
    assert_string_equal(j.resource, "foo@bar/baz");
    f = jid_full(&j);
    assert_string_equal(f, "example.com/foo@bar/baz");
    free(f);
    jid_clear(&j);

    /* A failed parse leaves out zeroed. */
    memset(&j, 0x55, sizeof j);
    assert_int_equal(jid_parse("@example.com", &j), -1);
    assert_null(j.local);
    assert_null(j.domain);
    assert_null(j.resource);
    assert_int_equal(jid_parse(NULL, &j), -1);
}

static void test_case_folding(void **state)
{
    (void)state;
    /* localpart and domain fold, the resource keeps its case */
    check_norm("Juliet@Example.COM/Balcony", "juliet@example.com/Balcony");
    check_norm("ROMEO@MONTAGUE.LIT", "romeo@montague.lit");
    /* Unicode: U+00C4 LATIN CAPITAL A WITH DIAERESIS folds to U+00E4 */
    check_norm("\xc3\x84lice@\xc3\x84xample.com/\xc3\x84", "\xc3\xa4lice@\xc3\xa4xample.com/\xc3\x84");
    /* NFKC: U+FB01 LATIN SMALL LIGATURE FI -> "fi" in the localpart */
    check_norm("\xef\xac\x81@example.com", "fi@example.com");
    /* Trailing dot of a fully qualified domain is dropped. */
    check_norm("juliet@example.com./r", "juliet@example.com/r");
    check_norm("example.com.", "example.com");
    /* IP literals */
    check_norm("juliet@192.0.2.1", "juliet@192.0.2.1");
    check_norm("juliet@[2001:DB8:0:0::1]/r", "juliet@[2001:db8::1]/r");

    char *s = jid_normalize_bare("Juliet@Example.com/Balcony");
    assert_string_equal(s, "juliet@example.com");
    free(s);
    s = jid_normalize_local("JULIET");
    assert_string_equal(s, "juliet");
    free(s);
    s = jid_normalize_resource("Balcony Two");
    assert_string_equal(s, "Balcony Two");
    free(s);
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "@example.com",       /* empty localpart */
        "juliet@",            /* empty domain */
        "example.com/",       /* empty resource */
        "juliet@example.com/",
        "/resource",          /* empty domain */
        "@",
        "juliet@@example.com", /* '@' in the domain */
        "jul\"iet@example.com", /* nodeprep prohibits " & ' / : < > @ */
        "jul&iet@example.com",
        "jul'iet@example.com",
        "jul:iet@example.com",
        "jul<iet@example.com",
        "jul>iet@example.com",
        "jul iet@example.com",  /* space */
        "juliet@exa mple.com",
        "juliet@example..com",  /* empty label */
        "juliet@.example.com",
        "juliet@.",
        "juliet@example.com..",
        "juliet@exa_mple.com",
        "juliet@[not-an-ip]",
        "juliet@[::1",
        "\xc2\xad@example.com",  /* maps to nothing: empty localpart */
        "juliet@example.com/\x07",       /* control character in the resource */
        "jul\xc0\xafiet@example.com",    /* overlong UTF-8 */
        "juliet@ex\377ample.com",     /* invalid UTF-8 */
        "juliet@example.com/\xed\xa0\x80", /* surrogate */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        check_norm(bad[i], NULL);
    assert_null(jid_normalize_local(""));
    assert_null(jid_normalize_local("a@b"));
    assert_null(jid_normalize_resource(""));
    assert_null(jid_normalize_local(NULL));
    assert_null(jid_normalize_bare("a@"));
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_length_limits(void **state)
{
    (void)state;
    char *l1023 = repeat('a', 1023), *l1024 = repeat('a', 1024);
    /* a domain of 1023 bytes in labels of 63 */
    char dom1023[1024], dom1024[1025];
    size_t n = 0;
    while (n < 1023) {
        size_t lab = n + 64 <= 1023 ? 63 : 1023 - n;
        memset(dom1023 + n, 'd', lab);
        n += lab;
        if (n < 1023)
            dom1023[n++] = '.';
    }
    dom1023[1023] = '\0';
    memcpy(dom1024, dom1023, 1023);
    dom1024[1023] = 'd';
    dom1024[1024] = '\0';

    char buf[4096];
    snprintf(buf, sizeof buf, "%s@example.com", l1023);
    char *got = jid_normalize(buf);
    assert_non_null(got);
    free(got);
    snprintf(buf, sizeof buf, "%s@example.com", l1024);
    assert_null(jid_normalize(buf));

    snprintf(buf, sizeof buf, "example.com/%s", l1023);
    got = jid_normalize(buf);
    assert_non_null(got);
    free(got);
    snprintf(buf, sizeof buf, "example.com/%s", l1024);
    assert_null(jid_normalize(buf));

    snprintf(buf, sizeof buf, "a@%s/r", dom1023);
    got = jid_normalize(buf);
    assert_non_null(got);
    free(got);
    /* the trailing dot does not count */
    snprintf(buf, sizeof buf, "a@%s./r", dom1023);
    got = jid_normalize(buf);
    assert_non_null(got);
    free(got);
    snprintf(buf, sizeof buf, "a@%s/r", dom1024);
    assert_null(jid_normalize(buf));

    /* The limit applies after preparation too: U+FB03 (3 bytes) expands to "ffi". */
    char big[1100];
    size_t k = 0;
    for (; k + 3 <= 1020; k += 3)
        memcpy(big + k, "\xef\xac\x83", 3); /* 340 ligatures = 1020 bytes -> 1020 bytes */
    big[k] = '\0';
    got = jid_normalize_local(big);
    assert_non_null(got);
    assert_int_equal(strlen(got), 1020);
    free(got);
    memcpy(big + k, "\xef\xac\x83", 4); /* one more: 1023 bytes in, 1023 out */
    got = jid_normalize_local(big);
    assert_non_null(got);
    free(got);
    /* Input within the limit whose preparation exceeds it: U+3300 SQUARE APAATO
     * (3 bytes) becomes four katakana (12 bytes) under NFKC. */
    k = 0;
    while (k + 3 <= 300) {
        memcpy(big + k, "\xe3\x8c\x80", 3);
        k += 3;
    }
    big[k] = '\0';
    assert_null(jid_normalize_local(big));

    free(l1023);
    free(l1024);
}

/* jid.c prepares printable ASCII itself instead of calling stringprep: every ASCII
 * character in every part must come out exactly as libidn's profile would have it. */
static void test_ascii_fast_path_matches_stringprep(void **state)
{
    (void)state;
    for (int c = 1; c < 0x80; c++) {
        char in[4] = {'a', (char)c, 'B', '\0'};
        char ref[64];

        snprintf(ref, sizeof ref, "%s", in);
        int ok = stringprep_xmpp_nodeprep(ref, sizeof ref) == STRINGPREP_OK;
        char *got = jid_normalize_local(in);
        if (ok && got)
            assert_string_equal(got, ref);
        else
            assert_true(!ok || c == '@' || c == '/'); /* split characters, not prep */
        assert_true(ok || got == NULL);
        free(got);

        snprintf(ref, sizeof ref, "%s", in);
        ok = stringprep_xmpp_resourceprep(ref, sizeof ref) == STRINGPREP_OK;
        got = jid_normalize_resource(in);
        if (ok)
            assert_non_null(got);
        if (ok && got)
            assert_string_equal(got, ref);
        if (!ok)
            assert_null(got);
        free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_parts),
        cmocka_unit_test(test_case_folding),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_length_limits),
        cmocka_unit_test(test_ascii_fast_path_matches_stringprep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
