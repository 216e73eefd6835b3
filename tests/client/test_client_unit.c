/* test_client_unit.c - unit tests for the client pieces that need no server: JSON
 * escaping, command line and configuration parsing, the server list and the reconnect
 * back-off schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli/json.h"
#include "client/cli/options.h"
#include "client/internal.h"

static char *json_of(const char *s)
{
    buf b;
    buf_init(&b);
    json_append_string(&b, s);
    return buf_steal(&b);
}

static void check_json(const char *in, const char *want)
{
    char *got = json_of(in);
    assert_string_equal(got, want);
    free(got);
}

static void test_json_escape(void **state)
{
    (void)state;
    check_json(NULL, "null");
    check_json("", "\"\"");
    check_json("plain text", "\"plain text\"");
    check_json("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
    check_json("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
    check_json("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
    check_json("caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80\"");
    check_json("\xe2\x80\xa8\xe2\x80\xa9", "\"\\u2028\\u2029\"");
    /* invalid UTF-8: lone continuation, truncated sequence, overlong, surrogate */
    check_json("\x80", "\"\\ufffd\"");
    check_json("a\xe2\x98", "\"a\\ufffd\\ufffd\"");
    check_json("\xc0\xaf", "\"\\ufffd\\ufffd\"");
    check_json("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
    check_json("</script>", "\"</script>\"");
}

static void test_json_object(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    buf_append_str(&b, "{");
    json_kv_string(&b, "from", "a@b/c", 1);
    json_kv_string(&b, "id", NULL, 0);
    json_kv_bool(&b, "encrypted", 0, 0);
    json_kv_int(&b, "n", -5, 0);
    buf_append_str(&b, "}");
    assert_string_equal(b.data, "{\"from\":\"a@b/c\",\"id\":null,\"encrypted\":false,\"n\":-5}");
    buf_free(&b);
}

static int parse(cli_opts *o, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "parley";
    va_list ap;
    va_start(ap, errlen);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return cli_parse_args(argc, argv, o, err, errlen);
}

static void test_args(void **state)
{
    (void)state;
    cli_opts o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof err, "send", "--to", "bob@x", "--message=hi there",
                           "--jid", "alice@x", "--password-file", "/p", "--ca-file", "/ca",
                           "--server", "h:1,h2:2", "--direct-tls", "--timeout", "2.5", NULL), 0);
    assert_string_equal(o.command, "send");
    assert_string_equal(o.to, "bob@x");
    assert_string_equal(o.message, "hi there");
    assert_string_equal(o.jid, "alice@x");
    assert_string_equal(o.password_file, "/p");
    assert_string_equal(o.ca_file, "/ca");
    assert_string_equal(o.server, "h:1,h2:2");
    assert_int_equal(o.direct_tls, 1);
    assert_true(o.timeout > 2.49 && o.timeout < 2.51);
    cli_opts_free(&o);

    /* options before the command, --starttls, listen's numbers */
    assert_int_equal(parse(&o, err, sizeof err, "--starttls", "listen", "--count", "3",
                           "--keepalive", "1", NULL), 0);
    assert_string_equal(o.command, "listen");
    assert_int_equal(o.direct_tls, 0);
    assert_int_equal(o.count, 3);
    assert_true(o.timeout < 0);
    cli_opts_free(&o);

    /* a message may start with a dash when given as a value */
    assert_int_equal(parse(&o, err, sizeof err, "send", "--message", "-x-", NULL), 0);
    assert_string_equal(o.message, "-x-");
    cli_opts_free(&o);

    assert_int_equal(parse(&o, err, sizeof err, "send", "--bogus", NULL), -1);
    assert_non_null(strstr(err, "--bogus"));
    cli_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof err, "send", "--to", NULL), -1);
    assert_non_null(strstr(err, "needs a value"));
    cli_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof err, "listen", "--count", "0", NULL), -1);
    cli_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof err, "listen", "--count", "3x", NULL), -1);
    cli_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof err, "listen", "--timeout", "-1", NULL), -1);
    cli_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof err, "send", "listen", NULL), -1);
    cli_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof err, "-h", NULL), 0);
    assert_int_equal(o.help, 1);
    assert_null(o.command);
    cli_opts_free(&o);
}

static void test_history_args(void **state)
{
    (void)state;
    cli_opts o;
    char err[256];
    /* only `history` takes words after the command */
    assert_int_equal(parse(&o, err, sizeof err, "history", "search", "two", "words",
                           "--history-key-file", "/k", "--data-dir", "/d", NULL), 0);
    assert_string_equal(o.command, "history");
    assert_int_equal(o.nargs, 3);
    assert_string_equal(o.args[0], "search");
    assert_string_equal(o.args[2], "words");
    assert_string_equal(o.history_key_file, "/k");
    assert_string_equal(o.data_dir, "/d");
    cli_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof err, "history", "show", "--with", "bob@x",
                           "--history", "archive", NULL), 0);
    assert_string_equal(o.with, "bob@x");
    assert_string_equal(o.history, "archive");
    cli_opts_free(&o);
    assert_int_equal(parse(&o, err, sizeof err, "chat", "extra", NULL), -1);
    cli_opts_free(&o);
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/parley-test-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_config(void **state)
{
    (void)state;
    cli_opts o;
    char err[256];
    char *path = write_temp("# account\n"
                            "jid = alice@example.org\n"
                            "  password_file = secret.txt  \n"
                            "ca_file = \"/etc/ca.pem\"\n"
                            "server = a:5222, b:5222\n"
                            "direct_tls = yes\n");
    /* the command line wins over the file */
    assert_int_equal(parse(&o, err, sizeof err, "listen", "--jid", "bob@example.org", NULL), 0);
    assert_int_equal(cli_load_config(path, 1, &o, err, sizeof err), 0);
    assert_string_equal(o.jid, "bob@example.org");
    assert_string_equal(o.password_file, "/tmp/secret.txt"); /* relative to the file */
    assert_string_equal(o.ca_file, "/etc/ca.pem");
    assert_string_equal(o.server, "a:5222, b:5222");
    assert_int_equal(o.direct_tls, 1);
    cli_opts_free(&o);
    unlink(path);
    free(path);

    static const char *bad[] = {"jid alice@x\n", "colour = blue\n", "jid = a@x\njid = b@x\n",
                                "direct_tls = maybe\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        path = write_temp(bad[i]);
        assert_int_equal(parse(&o, err, sizeof err, "listen", NULL), 0);
        assert_int_equal(cli_load_config(path, 1, &o, err, sizeof err), -1);
        assert_non_null(strstr(err, ":1") ? strstr(err, ":1") : strstr(err, ":2"));
        cli_opts_free(&o);
        unlink(path);
        free(path);
    }
    /* the history keys; file names relative to the configuration file */
    path = write_temp("history = disabled\ndata_dir = data\nhistory_passphrase_file = /p\n"
                      "history_key_file = k\n");
    assert_int_equal(parse(&o, err, sizeof err, "chat", NULL), 0);
    assert_int_equal(cli_load_config(path, 1, &o, err, sizeof err), 0);
    assert_string_equal(o.history, "disabled");
    assert_string_equal(o.data_dir, "/tmp/data");
    assert_string_equal(o.history_key_file, "/tmp/k");
    assert_string_equal(o.history_passphrase_file, "/p");
    cli_opts_free(&o);
    unlink(path);
    free(path);
    path = write_temp("history = forever\n");
    assert_int_equal(parse(&o, err, sizeof err, "chat", NULL), 0);
    assert_int_equal(cli_load_config(path, 1, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "default, disabled or archive"));
    cli_opts_free(&o);
    unlink(path);
    free(path);
    /* a missing default file is fine, a missing --config file is not */
    assert_int_equal(parse(&o, err, sizeof err, "listen", NULL), 0);
    assert_int_equal(cli_load_config("/nonexistent/parley.conf", 0, &o, err, sizeof err), 0);
    assert_int_equal(cli_load_config("/nonexistent/parley.conf", 1, &o, err, sizeof err), -1);
    cli_opts_free(&o);
}

static void test_servers(void **state)
{
    (void)state;
    server_addr *s;
    assert_int_equal(client_parse_servers("example.org", "5222", &s), 1);
    assert_string_equal(s[0].host, "example.org");
    assert_string_equal(s[0].port, "5222");
    client_free_servers(s, 1);
    assert_int_equal(client_parse_servers("127.0.0.1:5223, [::1]:6000,[::1],h", "5222", &s), 4);
    assert_string_equal(s[0].host, "127.0.0.1");
    assert_string_equal(s[0].port, "5223");
    assert_string_equal(s[1].host, "::1");
    assert_string_equal(s[1].port, "6000");
    assert_string_equal(s[2].host, "::1");
    assert_string_equal(s[2].port, "5222");
    assert_string_equal(s[3].host, "h");
    client_free_servers(s, 4);
    static const char *bad[] = {"", ",", "h:", "h:0", "h:65536", "h:12a", "::1:5222", "[::1",
                                "[]:5", "[::1]x", "a,,b", ":5222"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(client_parse_servers(bad[i], "5222", &s), -1);
        assert_null(s);
    }
}

static void test_backoff(void **state)
{
    (void)state;
    /* rnd 0 gives the lower bound (half the step), rnd ~1 the full step */
    int lo[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    for (int n = 1; n <= 9; n++) {
        assert_int_equal(client_backoff_ms(n, 1000, 60000, 0.0), lo[n - 1]);
        int hi = client_backoff_ms(n, 1000, 60000, 0.999999);
        assert_true(hi >= lo[n - 1] * 2 - 1 && hi <= lo[n - 1] * 2);
    }
    /* bounded for huge attempt counts and odd inputs */
    assert_true(client_backoff_ms(1000000, 1000, 60000, 0.5) <= 60000);
    assert_true(client_backoff_ms(0, 1000, 60000, 0.5) >= 500);
    assert_true(client_backoff_ms(3, 0, 0, 2.0) >= 0);
    assert_true(client_backoff_ms(3, 5000, 100, 0.5) <= 5000);
    /* jitter spreads: different rnd, different delays within the bounds */
    int a = client_backoff_ms(4, 1000, 60000, 0.1), b = client_backoff_ms(4, 1000, 60000, 0.9);
    assert_true(a < b && a >= 4000 && b <= 8000);
}

static void test_options_validation(void **state)
{
    (void)state;
    parley_options o;
    parley_options_init(&o);
    assert_int_equal(o.allow_plain, 1);
    assert_int_equal(o.reconnect, 1);
    char why[256];
    parley_error e;
    assert_null(parley_new(&o, &e, why, sizeof why));
    assert_int_equal(e, PARLEY_ERR_INVALID);
    o.jid = "not a jid@@";
    o.password = "x";
    assert_null(parley_new(&o, &e, why, sizeof why));
    assert_non_null(strstr(why, "JID"));
    o.jid = "alice@localhost";
    o.password = NULL;
    o.password_file = "/nonexistent/pw";
    assert_null(parley_new(&o, &e, why, sizeof why));
    assert_non_null(strstr(why, "/nonexistent/pw"));
    o.password_file = NULL;
    o.password = "secret";
    o.server = "h:99999";
    assert_null(parley_new(&o, &e, why, sizeof why));
    assert_non_null(strstr(why, "server"));
    o.server = "127.0.0.1:1";
    o.ca_file = "/nonexistent/ca.pem";
    assert_null(parley_new(&o, &e, why, sizeof why));
    o.ca_file = NULL;
    parley *p = parley_new(&o, &e, why, sizeof why);
    assert_non_null(p);
    assert_int_equal(e, PARLEY_OK);
    assert_int_equal(parley_get_state(p), PARLEY_STATE_OFFLINE);
    assert_int_equal(parley_send_message(p, "bob@localhost", NULL, "hi", NULL, 0), PARLEY_ERR_STATE);
    assert_int_equal(parley_send_message(p, "bad@@", NULL, "hi", NULL, 0), PARLEY_ERR_INVALID);
    assert_int_equal(parley_send_message(p, "bob@localhost", "bogus", "hi", NULL, 0), PARLEY_ERR_INVALID);
    assert_int_equal(parley_send_xml(p, "<notastanza/>"), PARLEY_ERR_INVALID);
    assert_int_equal(parley_send_xml(p, "<message"), PARLEY_ERR_INVALID);
    assert_int_equal(parley_send_iq(p, "<iq type='result'/>", NULL, NULL, 0, NULL, 0), PARLEY_ERR_INVALID);
    parley_tls_info ti;
    assert_int_equal(parley_tls_info_get(p, &ti), PARLEY_ERR_STATE);
    assert_int_equal(parley_conversation_encrypted(p, "bob@localhost"), 0);
    /* nothing listens on port 1: unreachable, reported through the loop */
    assert_int_equal(parley_connect(p), PARLEY_OK);
    assert_int_equal(parley_run_until(p, NULL, NULL, 5000), PARLEY_ERR_UNREACHABLE);
    assert_int_equal(parley_last_error(p), PARLEY_ERR_UNREACHABLE);
    assert_non_null(strstr(parley_last_error_text(p), "127.0.0.1:1"));
    parley_free(p);
    for (int i = PARLEY_OK; i <= PARLEY_ERR_CLOSED; i++)
        assert_non_null(parley_strerror((parley_error)i));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escape),   cmocka_unit_test(test_json_object),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_history_args),  cmocka_unit_test(test_config),
        cmocka_unit_test(test_servers),       cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_options_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
