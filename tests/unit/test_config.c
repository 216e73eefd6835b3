/* test_config.c - unit tests of parleyd.conf parsing (config.h): defaults, every key,
 * error messages that name the line, relative paths, and the default file round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.h"
#include "server/config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char dir[512]; /* canonical (realpath) temp dir */
    char path[600];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/parley-test-config-XXXXXX";
    char *real = mkdtemp(tmpl) ? realpath(tmpl, NULL) : NULL;
    if (!real)
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s", real);
    free(real);
    snprintf(f->path, sizeof f->path, "%s/parleyd.conf", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

#define MINIMAL "domain = example.org\ncert_file = server.crt\nkey_file = server.key\n"

/* Load text; returns config_load's result, err filled. */
static int load_text(fixture *f, const char *text, config *cfg, char *err, size_t errlen)
{
    write_file(f->path, text);
    config_init(cfg);
    err[0] = '\0';
    return config_load(cfg, f->path, err, errlen);
}

static void test_defaults(void **state)
{
    (void)state;
    config cfg;
    config_init(&cfg);
    assert_null(cfg.domain);
    assert_null(cfg.cert_file);
    assert_null(cfg.key_file);
    assert_null(cfg.ca_file);
    assert_null(cfg.log_file);
    assert_string_equal(cfg.bind_address, "127.0.0.1");
    assert_int_equal(cfg.c2s_port, 5222);
    assert_int_equal(cfg.tls_port, 5223);
    assert_int_equal(cfg.https_port, 5443);
    assert_int_equal(cfg.log_level, PLOG_INFO);
    assert_int_equal(cfg.max_stanza_size, 262144);
    assert_int_equal(cfg.max_output_buffer, 1024 * 1024);
    assert_int_equal(cfg.scram_iterations, 4096);
    assert_int_equal(cfg.handshake_timeout, 30);
    assert_int_equal(cfg.idle_timeout, 600);
    assert_int_equal(cfg.max_connections, 20000);
    assert_int_equal(cfg.offline_max, 1000);
    assert_int_equal(cfg.auth_fail_limit, 5);
    assert_int_equal(cfg.auth_fail_window, 60);
    assert_int_equal(cfg.hide_version, 0);
    assert_int_equal(cfg.allow_plain, 1);
    config_free(&cfg);
}

static void test_minimal_and_relative_defaults(void **state)
{
    fixture *f = *state;
    config cfg;
    char err[512];
    assert_int_equal(load_text(f, "# comment\n\n   \n" MINIMAL, &cfg, err, sizeof err), 0);
    char want[2 * PATH_MAX];
    assert_string_equal(cfg.domain, "example.org");
    snprintf(want, sizeof want, "%s/server.crt", f->dir);
    assert_string_equal(cfg.cert_file, want);
    snprintf(want, sizeof want, "%s/server.key", f->dir);
    assert_string_equal(cfg.key_file, want);
    snprintf(want, sizeof want, "%s/data", f->dir);
    assert_string_equal(cfg.data_dir, want);
    snprintf(want, sizeof want, "sqlite:%s/data/parley.db", f->dir);
    assert_string_equal(cfg.store, want);
    assert_string_equal(cfg.path, f->path);
    assert_int_equal(cfg.c2s_port, 5222);
    /* compliance is on unless turned off, its archive beside the store */
    assert_int_equal(cfg.compliance, 1);
    snprintf(want, sizeof want, "sqlite:%s/data/compliance.db", f->dir);
    assert_string_equal(cfg.compliance_store, want);
    assert_int_equal(cfg.compliance_checkpoint_every, 1000);
    config_free(&cfg);
}

static void test_every_key(void **state)
{
    fixture *f = *state;
    config cfg;
    char err[512];
    const char *text = "domain = Example.ORG\n"
                       "bind_address = 0.0.0.0\n"
                       "c2s_port = 15222\n"
                       "tls_port = 0\n"
                       "https_port = 65535\n"
                       "cert_file = /etc/parley/cert.pem\n"
                       "key_file = \"keys/my key.pem\"   # quoted, with a space\n"
                       "ca_file = ca.pem\n"
                       "data_dir = /var/lib/parley\n"
                       "store = sqlite:db/x.db\n"
                       "log_file = log/parleyd.log\n"
                       "log_level = debug\n"
                       "max_stanza_size = 64K\n"
                       "max_output_buffer = 2M\n"
                       "scram_iterations = 10000\n"
                       "handshake_timeout = 10\n"
                       "idle_timeout = 300 # trailing comment\n"
                       "max_connections = 100\n"
                       "offline_max = 0\n"
                       "auth_fail_limit = 3\n"
                       "auth_fail_window = 120\n"
                       "\thide_version=yes\n"
                       "allow_plain = false\n"
                       "compliance = no\n"
                       "compliance_store = sqlite:archive/c.db\n"
                       "compliance_checkpoint_every = 50\n";
    assert_int_equal(load_text(f, text, &cfg, err, sizeof err), 0);
    char want[2 * PATH_MAX];
    assert_string_equal(cfg.domain, "example.org"); /* normalised */
    assert_string_equal(cfg.bind_address, "0.0.0.0");
    assert_int_equal(cfg.c2s_port, 15222);
    assert_int_equal(cfg.tls_port, 0);
    assert_int_equal(cfg.https_port, 65535);
    assert_string_equal(cfg.cert_file, "/etc/parley/cert.pem");
    snprintf(want, sizeof want, "%s/keys/my key.pem", f->dir);
    assert_string_equal(cfg.key_file, want);
    snprintf(want, sizeof want, "%s/ca.pem", f->dir);
    assert_string_equal(cfg.ca_file, want);
    assert_string_equal(cfg.data_dir, "/var/lib/parley");
    snprintf(want, sizeof want, "sqlite:%s/db/x.db", f->dir);
    assert_string_equal(cfg.store, want);
    snprintf(want, sizeof want, "%s/log/parleyd.log", f->dir);
    assert_string_equal(cfg.log_file, want);
    assert_int_equal(cfg.log_level, PLOG_DEBUG);
    assert_int_equal(cfg.max_stanza_size, 65536);
    assert_int_equal(cfg.max_output_buffer, 2 * 1024 * 1024);
    assert_int_equal(cfg.scram_iterations, 10000);
    assert_int_equal(cfg.handshake_timeout, 10);
    assert_int_equal(cfg.idle_timeout, 300);
    assert_int_equal(cfg.max_connections, 100);
    assert_int_equal(cfg.offline_max, 0);
    assert_int_equal(cfg.auth_fail_limit, 3);
    assert_int_equal(cfg.auth_fail_window, 120);
    assert_int_equal(cfg.hide_version, 1);
    assert_int_equal(cfg.allow_plain, 0);
    assert_int_equal(cfg.compliance, 0);
    snprintf(want, sizeof want, "sqlite:%s/archive/c.db", f->dir);
    assert_string_equal(cfg.compliance_store, want);
    assert_int_equal(cfg.compliance_checkpoint_every, 50);
    config_free(&cfg);
}

static void test_store_follows_data_dir(void **state)
{
    fixture *f = *state;
    config cfg;
    char err[512];
    assert_int_equal(load_text(f, MINIMAL "data_dir = state\n", &cfg, err, sizeof err), 0);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "sqlite:%s/state/parley.db", f->dir);
    assert_string_equal(cfg.store, want);
    snprintf(want, sizeof want, "sqlite:%s/state/compliance.db", f->dir);
    assert_string_equal(cfg.compliance_store, want);
    config_free(&cfg);
}

static void test_booleans(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *v;
        int want;
    } cases[] = {{"true", 1}, {"false", 0}, {"yes", 1}, {"no", 0}, {"1", 1}, {"0", 0}, {"YES", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, MINIMAL "hide_version = %s\n", cases[i].v);
        config cfg;
        char err[512];
        assert_int_equal(load_text(f, text, &cfg, err, sizeof err), 0);
        assert_int_equal(cfg.hide_version, cases[i].want);
        config_free(&cfg);
    }
}

/* Expect config_load to fail with exactly "PATH:LINE: <msg...>" containing msg. */
static void expect_error(fixture *f, const char *text, int line, const char *msg)
{
    config cfg;
    char err[512];
    assert_int_equal(load_text(f, text, &cfg, err, sizeof err), -1);
    char prefix[2 * PATH_MAX];
    if (line > 0)
        snprintf(prefix, sizeof prefix, "%s:%d: ", f->path, line);
    else
        snprintf(prefix, sizeof prefix, "%s: ", f->path);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, msg)) {
        print_error("got '%s', want prefix '%s' and '%s'\n", err, prefix, msg);
        fail();
    }
    config_free(&cfg);
}

static void test_unknown_key(void **state)
{
    fixture *f = *state;
    expect_error(f, MINIMAL "\n# x\nfoo = bar\n", 6, "unknown key 'foo'");
}

static void test_bad_values(void **state)
{
    fixture *f = *state;
    expect_error(f, MINIMAL "c2s_port = 65536\n", 4, "bad port '65536'");
    expect_error(f, MINIMAL "c2s_port = -1\n", 4, "bad port");
    expect_error(f, MINIMAL "tls_port = 52x\n", 4, "bad port '52x'");
    expect_error(f, MINIMAL "https_port =\n", 4, "bad port");
    expect_error(f, MINIMAL "max_stanza_size = 0\n", 4, "bad size '0'");
    expect_error(f, MINIMAL "max_stanza_size = 12G\n", 4, "bad size");
    expect_error(f, MINIMAL "max_output_buffer = -5\n", 4, "bad size");
    expect_error(f, MINIMAL "scram_iterations = 4095\n", 4, "scram_iterations");
    expect_error(f, MINIMAL "scram_iterations = lots\n", 4, "scram_iterations");
    expect_error(f, MINIMAL "log_level = verbose\n", 4, "bad log level 'verbose'");
    expect_error(f, MINIMAL "hide_version = maybe\n", 4, "bad boolean 'maybe'");
    expect_error(f, MINIMAL "idle_timeout = 0\n", 4, "bad value '0'");
    expect_error(f, MINIMAL "offline_max = -1\n", 4, "bad value '-1'");
    expect_error(f, MINIMAL "store = mysql:x\n", 4, "unsupported store");
    expect_error(f, MINIMAL "compliance_store = mysql://db/x\n", 4, "unsupported store");
    expect_error(f, MINIMAL "compliance_store = sqlite::memory:\n", 4, "cannot be in memory");
    expect_error(f, MINIMAL "compliance_mode = lax\n", 4, "strict or spool");
    expect_error(f, MINIMAL "compliance_server_failure = maybe\n", 4, "block or allow");
    expect_error(f, MINIMAL "compliance_retention_days = 0\n", 4, "'forever' or a number");
    expect_error(f, MINIMAL "compliance_retention_days = soon\n", 4, "'forever' or a number");
    expect_error(f, MINIMAL "component = c.example.org\n", 4, "a domain and a secret");
    expect_error(f, MINIMAL "component = c.example.org short\n", 4, "at least 16");
    expect_error(f, MINIMAL "component = a@b 0123456789abcdef\n", 4, "invalid component");
    expect_error(f,
                 MINIMAL "component = c.example.org 0123456789abcdef\n"
                         "component = C.example.org 0123456789abcdef-2\n",
                 5, "configured twice");
    /* Rules between keys name the file, not a line. */
    expect_error(f, MINIMAL "compliance_server = c.example.org\n", 0, "not a configured component");
    expect_error(f,
                 MINIMAL "bind_address = 0.0.0.0\ncomponent_tls = no\n"
                         "component = c.example.org 0123456789abcdef\n",
                 0, "loopback");
    expect_error(f, MINIMAL "component = example.org 0123456789abcdef\n", 0, "clashes");
    expect_error(f, MINIMAL "compliance_store = sqlite:\n", 4, "needs a file path");
    expect_error(f, MINIMAL "compliance_checkpoint_every = 0\n", 4, "bad value '0'");
    expect_error(f, MINIMAL "compliance = sometimes\n", 4, "bad boolean 'sometimes'");
    expect_error(f, "domain = alice@example.org\n", 1, "invalid domain");
    expect_error(f, "domain = example.org/res\n", 1, "invalid domain");
    expect_error(f, "domain = \"\"\n", 1, "invalid domain");
    expect_error(f, MINIMAL "c2s_port = 1\nc2s_port = 2\n", 5, "duplicate key 'c2s_port'");
    expect_error(f, MINIMAL "just words\n", 4, "expected 'key = value'");
    expect_error(f, MINIMAL "key_file = \"unterminated\n", 4, "unterminated");
    expect_error(f, MINIMAL " = 5\n", 4, "missing key");
}

static void test_missing_required(void **state)
{
    fixture *f = *state;
    expect_error(f, "cert_file = a\nkey_file = b\n", 0, "missing required key 'domain'");
    expect_error(f, "domain = example.org\nkey_file = b\n", 0, "missing required key 'cert_file'");
    expect_error(f, "domain = example.org\ncert_file = a\n", 0, "missing required key 'key_file'");
}

static void test_components_and_choices(void **state)
{
    fixture *f = *state;
    config cfg;
    char err[512];
    assert_int_equal(load_text(f,
                               MINIMAL "component = Comp.Example.org 0123456789abcdef-secret\n"
                                       "component = other.example.org fedcba9876543210\n"
                                       "compliance_server = comp.example.org\n"
                                       "compliance_mode = SPOOL\n"
                                       "compliance_server_failure = allow\n"
                                       "compliance_retention_days = 2555d\n"
                                       "compliance_store = postgresql://db/x\n",
                               &cfg, err, sizeof err),
                     0);
    assert_int_equal(cfg.ncomponents, 2);
    assert_non_null(config_find_component(&cfg, "comp.example.org"));
    assert_string_equal(config_find_component(&cfg, "comp.example.org")->secret,
                        "0123456789abcdef-secret");
    assert_null(config_find_component(&cfg, "example.org"));
    assert_int_equal(cfg.compliance_mode, COMPLIANCE_SPOOL);
    assert_int_equal(cfg.compliance_server_failure, COMPLIANCE_FAIL_ALLOW);
    assert_int_equal(cfg.compliance_retention_secs, 2555LL * 86400);
    assert_string_equal(cfg.compliance_store, "postgresql://db/x");
    assert_string_equal(cfg.muc_domain, "conference.example.org");
    config_free(&cfg);
    /* Defaults. */
    assert_int_equal(load_text(f, MINIMAL, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.compliance_mode, COMPLIANCE_STRICT);
    assert_int_equal(cfg.compliance_retention_secs, 0);
    assert_int_equal(cfg.compliance_server_failure, COMPLIANCE_FAIL_BLOCK);
    assert_int_equal(cfg.ncomponents, 0);
    config_free(&cfg);
}

static void test_missing_file(void **state)
{
    fixture *f = *state;
    config cfg;
    config_init(&cfg);
    char err[512];
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/nope.conf", f->dir);
    assert_int_equal(config_load(&cfg, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "nope.conf"));
    config_free(&cfg);
}

static void test_write_default_round_trip(void **state)
{
    fixture *f = *state;
    char err[512] = "";
    assert_int_equal(config_write_default(f->path, "Chat.Example.org", f->dir, 6222, 6223, 0, err,
                                          sizeof err),
                     0);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    config cfg;
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, f->path, err, sizeof err), 0);
    char want[2 * PATH_MAX];
    assert_string_equal(cfg.domain, "chat.example.org");
    assert_int_equal(cfg.c2s_port, 6222);
    assert_int_equal(cfg.tls_port, 6223);
    assert_int_equal(cfg.https_port, 0);
    assert_string_equal(cfg.bind_address, "127.0.0.1");
    snprintf(want, sizeof want, "%s/server.crt", f->dir);
    assert_string_equal(cfg.cert_file, want);
    snprintf(want, sizeof want, "%s/server.key", f->dir);
    assert_string_equal(cfg.key_file, want);
    snprintf(want, sizeof want, "%s/ca.crt", f->dir);
    assert_string_equal(cfg.ca_file, want);
    snprintf(want, sizeof want, "%s/data", f->dir);
    assert_string_equal(cfg.data_dir, want);
    snprintf(want, sizeof want, "sqlite:%s/data/parley.db", f->dir);
    assert_string_equal(cfg.store, want);
    assert_null(cfg.log_file);
    /* Everything else is the default. */
    config def;
    config_init(&def);
    assert_int_equal(cfg.log_level, def.log_level);
    assert_int_equal(cfg.max_stanza_size, def.max_stanza_size);
    assert_int_equal(cfg.max_output_buffer, def.max_output_buffer);
    assert_int_equal(cfg.scram_iterations, def.scram_iterations);
    assert_int_equal(cfg.handshake_timeout, def.handshake_timeout);
    assert_int_equal(cfg.idle_timeout, def.idle_timeout);
    assert_int_equal(cfg.max_connections, def.max_connections);
    assert_int_equal(cfg.offline_max, def.offline_max);
    assert_int_equal(cfg.auth_fail_limit, def.auth_fail_limit);
    assert_int_equal(cfg.auth_fail_window, def.auth_fail_window);
    assert_int_equal(cfg.hide_version, def.hide_version);
    assert_int_equal(cfg.allow_plain, def.allow_plain);
    assert_int_equal(cfg.compliance, def.compliance);
    assert_int_equal(cfg.compliance_checkpoint_every, def.compliance_checkpoint_every);
    config_free(&def);
    config_free(&cfg);

    /* Never overwrites, and refuses a bad domain. */
    assert_int_equal(config_write_default(f->path, "example.org", f->dir, 1, 2, 3, err, sizeof err),
                     -1);
    char other[2 * PATH_MAX];
    snprintf(other, sizeof other, "%s/other.conf", f->dir);
    assert_int_equal(config_write_default(other, "a@b", f->dir, 1, 2, 3, err, sizeof err), -1);
    assert_int_equal(access(other, F_OK), -1);
}

static void test_write_default_other_dir(void **state)
{
    /* Certificates in another directory are written as absolute paths. */
    fixture *f = *state;
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/etc", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/parleyd.conf", sub);
    char err[512];
    assert_int_equal(config_write_default(path, "localhost", f->dir, 5222, 5223, 5443, err, sizeof err),
                     0);
    config cfg;
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, path, err, sizeof err), 0);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "%s/server.crt", f->dir);
    assert_string_equal(cfg.cert_file, want);
    config_free(&cfg);
}

/* compliance_retention: forever or a duration with a unit (a bare number is days);
 * compliance_retention_days is the same setting under its older name, not both. */
static void test_compliance_retention(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *line;
        long long secs;
    } ok[] = {
        {"compliance_retention = forever\n", 0},
        {"compliance_retention = FOREVER\n", 0},
        {"compliance_retention = 365d\n", 365LL * 86400},
        {"compliance_retention = 7y\n", 7LL * 366 * 86400},
        {"compliance_retention = 12h\n", 12LL * 3600},
        {"compliance_retention = 90m\n", 90LL * 60},
        {"compliance_retention = 30s\n", 30},
        {"compliance_retention = 2w\n", 14LL * 86400},
        {"compliance_retention = 100\n", 100LL * 86400},
        {"compliance_retention = 1000y\n", 1000LL * 366 * 86400},
        {"compliance_retention_days = 2555d\n", 2555LL * 86400},
        {"compliance_retention_days = 100\n", 100LL * 86400},
        {"compliance_retention_days = 7y\n", 7LL * 366 * 86400},
        {"compliance_retention_days = forever\n", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[256], err[512];
        snprintf(text, sizeof text, MINIMAL "%s", ok[i].line);
        config cfg;
        if (load_text(f, text, &cfg, err, sizeof err) != 0) {
            print_error("%s: %s\n", ok[i].line, err);
            fail();
        }
        if (cfg.compliance_retention_secs != ok[i].secs) {
            print_error("%s: got %lld seconds\n", ok[i].line, cfg.compliance_retention_secs);
            fail();
        }
        config_free(&cfg);
    }
    const char *bad[] = {"0", "0d", "-5d", "12x", "d", "y", "1001y", "soon", "1.5y", "7 y", "12hh"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, MINIMAL "compliance_retention = %s\n", bad[i]);
        expect_error(f, text, 4, "for 'compliance_retention' ('forever' or a number of days, "
                                 "or a duration with a unit: 12h, 365d, 7y)");
    }
    expect_error(f, MINIMAL "compliance_retention = 7y\ncompliance_retention_days = 30\n", 5,
                 "one setting under two names");
    expect_error(f, MINIMAL "compliance_retention_days = 30\ncompliance_retention = 7y\n", 5,
                 "one setting under two names");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_minimal_and_relative_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_follows_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_booleans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_components_and_choices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compliance_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_default_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_default_other_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
