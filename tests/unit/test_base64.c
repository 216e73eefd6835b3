/* test_base64.c - RFC 4648 vectors and the strictness SASL needs from base64.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/base64.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *plain;
    const char *encoded;
} vectors[] = {
    /* RFC 4648 10 */
    {"", ""},           {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

static void test_rfc4648_encode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char *e = base64_encode((const unsigned char *)vectors[i].plain, strlen(vectors[i].plain));
        assert_string_equal(e, vectors[i].encoded);
        free(e);
    }
}

static void test_rfc4648_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        size_t n = 99;
        unsigned char *d = base64_decode(vectors[i].encoded, strlen(vectors[i].encoded), &n);
        assert_non_null(d);
        assert_int_equal(n, strlen(vectors[i].plain));
        assert_memory_equal(d, vectors[i].plain, n);
        assert_int_equal(d[n], '\0');
        free(d);
    }
}

static void test_binary_roundtrip(void **state)
{
    (void)state;
    unsigned char data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (unsigned char)(255 - i);
    for (size_t len = 0; len <= sizeof data; len++) {
        char *e = base64_encode(data, len);
        size_t n = 0;
        unsigned char *d = base64_decode(e, strlen(e), &n);
        assert_non_null(d);
        assert_int_equal(n, len);
        if (len)
            assert_memory_equal(d, data, len);
        free(d);
        free(e);
    }
}

static void test_empty_forms(void **state)
{
    (void)state;
    size_t n = 7;
    unsigned char *d = base64_decode("=", 1, &n);
    assert_non_null(d);
    assert_int_equal(n, 0);
    free(d);
    d = base64_decode("", 0, &n);
    assert_non_null(d);
    assert_int_equal(n, 0);
    free(d);
}

static void test_rejects_bad_input(void **state)
{
    (void)state;
    static const char *bad[] = {
        "Zg",       /* missing padding */
        "Zg=",      /* short padding */
        "Zm9",      /* length not a multiple of 4 */
        "Z===",     /* three padding characters */
        "====",     /* only padding */
        "Zg==Zg==", /* padding in the middle */
        "Z=g=",     /* padding not at the end */
        "Zm9v\n",   /* whitespace */
        " Zm9v",    /* leading whitespace (EVP_DecodeBlock would skip it) */
        "Zm9v ",    /* trailing whitespace */
        "Zm 9v",    /* embedded space */
        "Zm9-",     /* URL-safe alphabet */
        "Zm9_",
        "Zm9*",
        "Zh==",     /* non-zero unused bits */
        "Zm9=",     /* non-zero unused bits, one pad: "fo" is Zm8= */
        "==",
        "Zg==\0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 0;
        size_t len = strlen(bad[i]);
        if (i == sizeof bad / sizeof bad[0] - 1)
            len = 5; /* embedded NUL */
        unsigned char *d = base64_decode(bad[i], len, &n);
        if (d)
            fail_msg("accepted bad base64 #%zu \"%s\"", i, bad[i]);
    }
    /* A NULL out_len is allowed. */
    unsigned char *d = base64_decode("Zm9v", 4, NULL);
    assert_non_null(d);
    assert_string_equal((char *)d, "foo");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_encode),  cmocka_unit_test(test_rfc4648_decode),
        cmocka_unit_test(test_binary_roundtrip), cmocka_unit_test(test_empty_forms),
        cmocka_unit_test(test_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
