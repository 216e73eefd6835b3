/* test_s2s_config.c - unit tests of the server-link keys of parleyd.conf: domain lists
 * (s2s_allow, s2s_deny), host maps (s2s_hosts, nodes) with their normalisation and
 * errors, and the rules between keys (dialback, nodes). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MINIMAL "domain = example.org\ncert_file = server.crt\nkey_file = server.key\n"
#define PG "store = postgresql://parley@127.0.0.1:5432/parley\n"

static char path[64];

/* Load text as a config file; returns config_load's result with err filled. */
static int load(const char *text, config *cfg, char *err, size_t errlen)
{
    snprintf(path, sizeof path, "/tmp/parley-s2s-config-%d.conf", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    config_init(cfg);
    err[0] = '\0';
    int rc = config_load(cfg, path, err, errlen);
    unlink(path);
    return rc;
}

static void test_defaults(void **state)
{
    (void)state;
    config cfg;
    char err[512];
    assert_int_equal(load(MINIMAL, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.s2s_port, 5269);
    assert_int_equal(cfg.s2s_secure, 1);
    assert_int_equal(cfg.s2s_dialback, 0);
    assert_null(cfg.s2s_allow);
    assert_null(cfg.s2s_hosts);
    assert_null(cfg.node_name);
    assert_int_equal(cfg.node_lease, 30);
    config_free(&cfg);
}

static void test_lists_normalised(void **state)
{
    (void)state;
    config cfg;
    char err[512];
    assert_int_equal(load(MINIMAL "s2s_deny = Spam.Example,  other.example\n"
                                  "s2s_hosts = Partner.Example=10.0.0.1:5270, v6.example=[::1]:5269\n",
                          &cfg, err, sizeof err),
                     0);
    assert_string_equal(cfg.s2s_deny, "spam.example,other.example");
    assert_true(config_domain_listed(cfg.s2s_deny, "spam.example"));
    assert_true(config_domain_listed(cfg.s2s_deny, "other.example"));
    assert_false(config_domain_listed(cfg.s2s_deny, "spam.exampl"));
    assert_false(config_domain_listed(cfg.s2s_deny, "example"));
    assert_false(config_domain_listed(NULL, "spam.example"));
    char host[256];
    int port = 0;
    assert_int_equal(config_host_lookup(cfg.s2s_hosts, "partner.example", host, sizeof host, &port), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 5270);
    assert_int_equal(config_host_lookup(cfg.s2s_hosts, "v6.example", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 5269);
    assert_int_equal(config_host_lookup(cfg.s2s_hosts, "nowhere.example", host, sizeof host, &port),
                     -1);
    config_free(&cfg);
}

static void expect_error(const char *text, const char *needle)
{
    config cfg;
    char err[512];
    assert_int_equal(load(text, &cfg, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not contain '%s'", err, needle);
    config_free(&cfg);
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_error(MINIMAL "s2s_hosts = partner.example\n", "bad entry 'partner.example'");
    expect_error(MINIMAL "s2s_hosts = partner.example=host\n", "expected name=host:port");
    expect_error(MINIMAL "s2s_hosts = partner.example=host:0\n", "expected name=host:port");
    expect_error(MINIMAL "s2s_hosts = partner.example=host:70000\n", "expected name=host:port");
    expect_error(MINIMAL "s2s_hosts = a@b=host:1\n", "bad entry");
    expect_error(MINIMAL "s2s_allow = ,\n", "empty list for 's2s_allow'");
    expect_error(MINIMAL "s2s_deny = bad/domain\n", "bad domain 'bad/domain'");
    expect_error(MINIMAL "s2s_dialback = yes\n", "needs s2s_secure = no");
    expect_error(MINIMAL "nodes = n2=127.0.0.1:5270\n", "nodes needs node_name");
    expect_error(MINIMAL "node_name = n1\nca_file = ca.crt\n", "needs a postgresql:// store");
    expect_error(MINIMAL PG "node_name = n1\n", "needs ca_file");
    expect_error(MINIMAL PG "node_name = n1\nca_file = ca.crt\ns2s_port = 0\n", "needs s2s_port");
}

static void test_dialback_allowed_when_not_secure(void **state)
{
    (void)state;
    config cfg;
    char err[512];
    assert_int_equal(load(MINIMAL "s2s_secure = no\ns2s_dialback = yes\n", &cfg, err, sizeof err),
                     0);
    assert_int_equal(cfg.s2s_secure, 0);
    assert_int_equal(cfg.s2s_dialback, 1);
    config_free(&cfg);
}

typedef struct seen {
    int n;
    char names[4][32];
    int ports[4];
} seen;

static void each(void *ud, const char *name, const char *host, int port)
{
    seen *s = ud;
    snprintf(s->names[s->n], sizeof s->names[s->n], "%s", name);
    s->ports[s->n++] = port;
}

static void test_nodes(void **state)
{
    (void)state;
    config cfg;
    char err[512];
    assert_int_equal(load(MINIMAL PG "node_name = node1\nca_file = ca.crt\n"
                                  "nodes = node2=127.0.0.1:5270,node3=127.0.0.1:5271\n",
                          &cfg, err, sizeof err),
                     0);
    assert_string_equal(cfg.node_name, "node1");
    seen s = {0};
    config_each_host(cfg.nodes, each, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[0], "node2");
    assert_int_equal(s.ports[1], 5271);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_lists_normalised),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_dialback_allowed_when_not_secure),
        cmocka_unit_test(test_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
