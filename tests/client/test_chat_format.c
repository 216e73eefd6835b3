/* test_chat_format.c - cmocka tests of the terminal client's pure formatting
 * (chat_format.c): the client-to-server and client-to-client locks in UTF-8 and ASCII,
 * with encrypted=1 as the end-to-end work will deliver it, message and header lines,
 * roster entries, sanitising of hostile text, wrapping and /command splitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/client/cli/chat_format.h"

#define LOCK_C2S "\xF0\x9F\x94\x92" /* 🔒 */
#define LOCK_E2E "\xF0\x9F\x94\x90" /* 🔐 */

static void test_tls_lock(void **state)
{
    (void)state;
    char b[64];
    fmt_tls_lock(b, sizeof b, "TLSv1.3", 1);
    assert_string_equal(b, "[TLS1.3 " LOCK_C2S "]");
    fmt_tls_lock(b, sizeof b, "TLSv1.2", 0);
    assert_string_equal(b, "[TLS1.2 *locked*]");
    fmt_tls_lock(b, sizeof b, NULL, 1);
    assert_string_equal(b, "[no connection]");
    fmt_tls_lock(b, sizeof b, "", 0);
    assert_string_equal(b, "[no connection]");
    assert_string_equal(fmt_aead_name("TLS_AES_256_GCM_SHA384"), "AES-256-GCM");
    assert_string_equal(fmt_aead_name("ECDHE-RSA-AES256-GCM-SHA384"), "AES-256-GCM");
    assert_string_equal(fmt_aead_name("TLS_CHACHA20_POLY1305_SHA256"), "ChaCha20-Poly1305");
    assert_string_equal(fmt_aead_name("TLS_AES_128_GCM_SHA256"), "AES-128-GCM");
    assert_string_equal(fmt_aead_name(NULL), "unknown");
}

static void test_e2e_marks(void **state)
{
    (void)state;
    char b[256];
    /* encrypted: the client-to-client lock, distinct from the client-to-server one */
    fmt_message(b, sizeof b, 3600 * 13 + 60 * 5, "bob@x", "hi", 1, 1);
    assert_string_equal(b, "13:05 " LOCK_E2E " <bob@x> hi");
    assert_null(strstr(b, LOCK_C2S));
    fmt_message(b, sizeof b, 3600 * 13 + 60 * 5, "bob@x", "hi", 1, 0);
    assert_string_equal(b, "13:05 [E2E] <bob@x> hi");
    /* plaintext: no lock, same width so the locks stand out in a column */
    fmt_message(b, sizeof b, 3600 * 13 + 60 * 5, "bob@x", "hi", 0, 1);
    assert_string_equal(b, "13:05    <bob@x> hi");
    fmt_message(b, sizeof b, 3600 * 13 + 60 * 5, "me", "yo", 0, 0);
    assert_string_equal(b, "13:05       <me> yo");
    assert_int_equal(fmt_width(fmt_e2e_mark(1, 1)), fmt_width(fmt_e2e_mark(0, 1)));
    assert_int_equal(fmt_width(fmt_e2e_mark(1, 0)), fmt_width(fmt_e2e_mark(0, 0)));

    /* conversation header: encrypted, or the server-readable legend */
    fmt_conv_header(b, sizeof b, 2, "bob@x", "online", 1, 1);
    assert_string_equal(b, "[2] bob@x (online) " LOCK_E2E " end-to-end encrypted");
    fmt_conv_header(b, sizeof b, 2, "bob@x", "online", 1, 0);
    assert_string_equal(b, "[2] bob@x (online) [E2E] end-to-end encrypted");
    fmt_conv_header(b, sizeof b, 3, "carol@x", "away", 0, 1);
    assert_string_equal(b, "[3] carol@x (away) [server-readable] not end-to-end encrypted");
    assert_null(strstr(b, LOCK_E2E));
}

static void test_presence_and_roster(void **state)
{
    (void)state;
    assert_string_equal(fmt_presence(0, "away"), "offline");
    assert_string_equal(fmt_presence(1, NULL), "online");
    assert_string_equal(fmt_presence(1, "chat"), "online");
    assert_string_equal(fmt_presence(1, "away"), "away");
    assert_string_equal(fmt_presence(1, "dnd"), "dnd");
    assert_string_equal(fmt_presence(1, "xa"), "xa");
    char b[128];
    fmt_roster_entry(b, sizeof b, 30, "bob@example.org", "online", 0);
    assert_string_equal(b, "bob@example.org online");
    fmt_roster_entry(b, sizeof b, 30, "bob@example.org", "away", 12);
    assert_string_equal(b, "bob@example.org away (12)");
    /* a long name is cut, never the presence or the count */
    fmt_roster_entry(b, sizeof b, 24, "someone.with.a.long.name@example.org", "offline", 3);
    assert_string_equal(b, "someone.wit~ offline (3)");
    assert_int_equal(fmt_width(b), 24);
    /* wide characters count as two columns */
    fmt_roster_entry(b, sizeof b, 14, "\xE5\xB1\xB1\xE7\x94\xB0\xE5\xA4\xAA\xE9\x83\x8E@x", "online", 0);
    assert_true(fmt_width(b) <= 14);
    assert_non_null(strstr(b, " online"));
}

static void test_sanitize(void **state)
{
    (void)state;
    /* terminal escapes, C1 controls, DEL, bidi overrides, invalid UTF-8 */
    char *s = fmt_sanitize("a\x1b[2Jb\x07\x7f" "c\xC2\x9B" "d\xE2\x80\xAE" "e\xFF\tf\ng", 1, 1);
    assert_string_equal(s, "a?[2Jb??c?d?e? f\ng");
    free(s);
    s = fmt_sanitize("line1\nline2", 1, 0);
    assert_string_equal(s, "line1 line2");
    free(s);
    /* ASCII locale: non-ASCII becomes '?', one per character */
    s = fmt_sanitize("caf\xC3\xA9 " LOCK_E2E, 0, 0);
    assert_string_equal(s, "caf? ?");
    free(s);
    s = fmt_sanitize("caf\xC3\xA9", 1, 0);
    assert_string_equal(s, "caf\xC3\xA9");
    free(s);
    /* overlong encoding and surrogates are invalid */
    s = fmt_sanitize("\xC0\xAF\xED\xA0\x80", 1, 0);
    assert_string_equal(s, "?????");
    free(s);
    s = fmt_sanitize(NULL, 1, 0);
    assert_string_equal(s, "");
    free(s);
}

typedef struct lines {
    char v[16][64];
    int n;
} lines;

static void collect(const char *line, size_t n, void *ud)
{
    lines *l = ud;
    assert_true(l->n < 16 && n < 64);
    memcpy(l->v[l->n], line, n);
    l->v[l->n][n] = '\0';
    l->n++;
}

static void test_wrap_and_fit(void **state)
{
    (void)state;
    lines l = {0};
    assert_int_equal(fmt_wrap("the quick brown fox jumps", 10, collect, &l), 3);
    assert_string_equal(l.v[0], "the quick");
    assert_string_equal(l.v[1], "brown fox");
    assert_string_equal(l.v[2], "jumps");
    memset(&l, 0, sizeof l);
    assert_int_equal(fmt_wrap("abcdefghij12", 5, collect, &l), 3); /* no space: hard cut */
    assert_string_equal(l.v[0], "abcde");
    assert_string_equal(l.v[2], "12");
    memset(&l, 0, sizeof l);
    assert_int_equal(fmt_wrap("one\ntwo\n", 20, collect, &l), 2);
    assert_string_equal(l.v[1], "two");
    memset(&l, 0, sizeof l);
    assert_int_equal(fmt_wrap("", 20, collect, &l), 1);
    memset(&l, 0, sizeof l);
    /* a double-width character never straddles the edge */
    assert_int_equal(fmt_wrap("ab" LOCK_E2E "cd", 3, collect, &l), 3);
    assert_string_equal(l.v[0], "ab");
    assert_string_equal(l.v[1], LOCK_E2E "c");
    assert_string_equal(l.v[2], "d");
    assert_int_equal(fmt_width(LOCK_E2E), 2);
    assert_int_equal(fmt_fit("ab" LOCK_E2E "cd", 3), 2);
    assert_int_equal(fmt_fit("ab" LOCK_E2E "cd", 4), 6);
    assert_int_equal(fmt_fit("abc", 10), 3);
}

static void test_commands(void **state)
{
    (void)state;
    char name[16], word[32];
    const char *args;
    assert_int_equal(fmt_command("/MSG  bob@x  hello there", name, sizeof name, &args), 1);
    assert_string_equal(name, "msg");
    assert_string_equal(args, "bob@x  hello there");
    assert_int_equal(fmt_next_word(&args, word, sizeof word), 1);
    assert_string_equal(word, "bob@x");
    assert_string_equal(args, "hello there");
    assert_int_equal(fmt_command("/quit", name, sizeof name, &args), 1);
    assert_string_equal(name, "quit");
    assert_string_equal(args, "");
    assert_int_equal(fmt_next_word(&args, word, sizeof word), 0);
    /* "//" escapes a leading slash; plain text is not a command */
    assert_int_equal(fmt_command("//etc/passwd is a path", name, sizeof name, &args), 0);
    assert_string_equal(args, "/etc/passwd is a path");
    assert_int_equal(fmt_command("hello", name, sizeof name, &args), 0);
    assert_string_equal(args, "hello");
    /* over-long names are truncated, not overflowed */
    assert_int_equal(fmt_command("/averyveryverylongcommandname x", name, sizeof name, &args), 1);
    assert_int_equal(strlen(name), sizeof name - 1);
}

int main(void)
{
    /* wcwidth needs a UTF-8 locale; times are shown in UTC here */
    setenv("TZ", "UTC", 1);
    if (!setlocale(LC_ALL, "C.UTF-8"))
        setlocale(LC_ALL, "C.utf8");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_lock),
        cmocka_unit_test(test_e2e_marks),
        cmocka_unit_test(test_presence_and_roster),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_wrap_and_fit),
        cmocka_unit_test(test_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

