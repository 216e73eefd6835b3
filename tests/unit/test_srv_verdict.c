/* test_srv_verdict.c - the verdict entry points that have no network caller yet: room
 * messages (compliance_hold_room: kind="groupchat" with the occupants) and file checks
 * (compliance_check_file), plus the sender order and the time-out, inside one server
 * with a real compliance archive, the router and iq_out. The compliance server's side is
 * played by the test through the router's service table, the same path a connected
 * component's stanzas take: it receives the check IQs and answers with router_send. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/dict.h"
#include "common/util.h"
#include "common/xml.h"
#include "server/clog.h"
#include "server/compliance.h"
#include "server/iq_out.h"
#include "server/router.h"
#include "server/server.h"
#include "server/verdict.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COMP "compliance.localhost"
#define MAX_SEEN 16

typedef struct fixture {
    char dir[PATH_MAX];
    char uri[PATH_MAX + 64];
    server srv;
    xml_node *checks[MAX_SEEN]; /* IQs the compliance server received */
    size_t nchecks;
    char *released[MAX_SEEN];   /* ids of the messages released, in order */
    size_t nreleased;
    int freed;                  /* free_ud calls (messages bounced instead) */
    compliance_verdict file;    /* the last file verdict (strings copied) */
    char file_verdict[32], file_reason[128];
    int file_calls;
} fixture;

static void compliance_server(server *srv, void *ud, xml_node *stanza)
{
    fixture *f = ud;
    assert_true(f->nchecks < MAX_SEEN);
    f->checks[f->nchecks++] = stanza;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/parley-test-verdict-XXXXXX";
    if (!f || !mkdtemp(tmpl))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s", tmpl);
    snprintf(f->uri, sizeof f->uri, "sqlite:%s/compliance.db", f->dir);
    server *srv = &f->srv;
    config_init(&srv->cfg);
    srv->cfg.domain = xstrdup("localhost");
    free(srv->cfg.compliance_store);
    srv->cfg.compliance_store = xstrdup(f->uri);
    srv->cfg.compliance_server = xstrdup(COMP);
    srv->spare_fd = -1;
    /* The archive signs checkpoints with the TLS key: a fresh one will do. */
    srv->tls_ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!srv->tls_ctx || !key || SSL_CTX_use_PrivateKey(srv->tls_ctx, key) != 1)
        return -1;
    EVP_PKEY_free(key);
    srv->users = dict_new();
    if (compliance_open(srv) < 0 || router_add_service(srv, COMP, compliance_server, f) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    server *srv = &f->srv;
    iq_out_free(srv);
    compliance_close(srv);
    verdict_free(srv);
    dict_free(srv->users, NULL);
    dict_free(srv->services, free);
    SSL_CTX_free(srv->tls_ctx);
    config_free(&srv->cfg);
    for (size_t i = 0; i < f->nchecks; i++)
        xml_free(f->checks[i]);
    for (size_t i = 0; i < f->nreleased; i++)
        free(f->released[i]);
    char path[PATH_MAX + 64];
    const char *exts[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/compliance.db%s", f->dir, exts[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static xml_node *message(const char *from, const char *to, const char *type, const char *id,
                         const char *body)
{
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "from", from);
    xml_set_attr(m, "to", to);
    xml_set_attr(m, "type", type);
    xml_set_attr(m, "id", id);
    if (body) {
        xml_node *b = xml_add_child(m, NULL, "body");
        xml_add_text(b, body, strlen(body));
    } else {
        xml_add_child(m, "http://jabber.org/protocol/chatstates", "composing");
    }
    return m;
}

static void release(server *srv, xml_node *stanza, void *ud)
{
    fixture *f = ud;
    assert_true(f->nreleased < MAX_SEEN);
    f->released[f->nreleased++] = xstrdup(xml_get_attr(stanza, "id"));
    xml_free(stanza);
}

static void free_ud(void *ud)
{
    ((fixture *)ud)->freed++;
}

/* The compliance server answers check number i. */
static void answer_with(fixture *f, size_t i, const char *action, const char *reason,
                        const char *body)
{
    assert_true(i < f->nchecks);
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "result");
    xml_set_attr(iq, "id", xml_get_attr(f->checks[i], "id"));
    xml_set_attr(iq, "from", COMP);
    xml_set_attr(iq, "to", "localhost");
    xml_node *v = xml_add_child(iq, XMLNS_VERDICT, "verdict");
    xml_set_attr(v, "action", action);
    if (reason) {
        xml_node *r = xml_add_child(v, NULL, "reason");
        xml_add_text(r, reason, strlen(reason));
    }
    if (body)
        xml_add_text(xml_add_child(v, NULL, "body"), body, strlen(body));
    router_send(&f->srv, iq);
}

static void answer(fixture *f, size_t i, const char *action, const char *reason)
{
    answer_with(f, i, action, reason, NULL);
}

static const xml_node *check_of(fixture *f, size_t i)
{
    assert_true(i < f->nchecks);
    const xml_node *iq = f->checks[i];
    assert_string_equal(xml_get_attr(iq, "type"), "set");
    assert_string_equal(xml_get_attr(iq, "from"), "localhost");
    assert_string_equal(xml_get_attr(iq, "to"), COMP);
    const xml_node *check = xml_child(iq, XMLNS_VERDICT, "check");
    assert_non_null(check);
    return check;
}

typedef struct found {
    char verdict[32], outcome[32], recipient[64], reason[128];
    int n;
} found;

static int record_with_id(void *ud, const clog_record *r)
{
    found *fd = ud;
    fd->n++;
    snprintf(fd->verdict, sizeof fd->verdict, "%s", r->verdict ? r->verdict : "");
    snprintf(fd->outcome, sizeof fd->outcome, "%s", r->outcome ? r->outcome : "");
    snprintf(fd->recipient, sizeof fd->recipient, "%s", r->recipient ? r->recipient : "");
    snprintf(fd->reason, sizeof fd->reason, "%s", r->reason ? r->reason : "");
    return 0;
}

/* The last committed record whose body is text. */
static found record_of(fixture *f, const char *text)
{
    char err[256];
    clog *c = clog_open(f->uri, NULL, 0, CLOG_READONLY, err, sizeof err);
    assert_non_null(c);
    found fd;
    memset(&fd, 0, sizeof fd);
    clog_filter flt;
    memset(&flt, 0, sizeof flt);
    flt.text = text;
    assert_int_equal(clog_search(c, &flt, record_with_id, &fd), 0);
    clog_close(c);
    return fd;
}

static void room_message_lists_occupants(void **state)
{
    fixture *f = *state;
    server *srv = &f->srv;
    const char *occupants[] = {"bob@localhost", "carol@localhost"};
    compliance_hold_room(srv, message("alice@localhost/a", "room@conference.localhost",
                                      "groupchat", "r1", "room hello"),
                         "room@conference.localhost", occupants, 2, "delivered", NULL, release,
                         f, free_ud);
    const xml_node *check = check_of(f, 0);
    assert_string_equal(xml_get_attr(check, "kind"), "groupchat");
    const xml_node *o = xml_child(check, XMLNS_VERDICT, "occupant");
    assert_non_null(o);
    assert_string_equal(xml_get_attr(o, "jid"), "bob@localhost");
    o = xml_next(o, XMLNS_VERDICT, "occupant");
    assert_non_null(o);
    assert_string_equal(xml_get_attr(o, "jid"), "carol@localhost");
    assert_null(xml_next(o, XMLNS_VERDICT, "occupant"));
    const xml_node *fwd = xml_child(check, "urn:xmpp:forward:0", "forwarded");
    const xml_node *m = fwd ? xml_child(fwd, XMLNS_CLIENT, "message") : NULL;
    assert_non_null(m);
    assert_string_equal(xml_get_attr(m, "id"), "r1");

    /* held until the verdict, even across flushes */
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 0);
    assert_true(compliance_pending(srv));
    answer(f, 0, "allow", NULL);
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 1);
    assert_string_equal(f->released[0], "r1");
    assert_false(compliance_pending(srv));
    found r = record_of(f, "room hello");
    assert_int_equal(r.n, 1);
    assert_string_equal(r.verdict, "allow");
    assert_string_equal(r.recipient, "room@conference.localhost");

    /* plain compliance_hold of a room message: a groupchat check without occupants */
    compliance_hold(srv, message("alice@localhost/a", "room@conference.localhost", "groupchat",
                                 "r2", "room again"),
                    "room@conference.localhost", "delivered", NULL, release, f, free_ud);
    check = check_of(f, 1);
    assert_string_equal(xml_get_attr(check, "kind"), "groupchat");
    assert_null(xml_child(check, XMLNS_VERDICT, "occupant"));
    answer(f, 1, "block", "not in this room");
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 1); /* not released: bounced */
    assert_int_equal(f->freed, 1);
    r = record_of(f, "room again");
    assert_string_equal(r.verdict, "block");
    assert_string_equal(r.outcome, "blocked-compliance");
    assert_string_equal(r.reason, "not in this room");
}

static void on_file(server *srv, void *ud, const compliance_verdict *v)
{
    fixture *f = ud;
    f->file_calls++;
    f->file.allowed = v->allowed;
    snprintf(f->file_verdict, sizeof f->file_verdict, "%s", v->verdict);
    snprintf(f->file_reason, sizeof f->file_reason, "%s", v->reason ? v->reason : "");
}

static xml_node *file_element(void)
{
    xml_node *file = xml_new(XMLNS_VERDICT, "file");
    xml_set_attr(file, "name", "report.pdf");
    xml_set_attr(file, "size", "18234");
    xml_set_attr(file, "type", "application/pdf");
    xml_set_attr(file, "sender", "alice@localhost/a");
    xml_set_attr(file, "recipient", "bob@localhost");
    xml_set_attr(file, "stage", "request");
    return file;
}

static void file_checks(void **state)
{
    fixture *f = *state;
    server *srv = &f->srv;
    compliance_check_file(srv, file_element(), on_file, f);
    assert_int_equal(f->file_calls, 0);
    const xml_node *check = check_of(f, 0);
    assert_string_equal(xml_get_attr(check, "kind"), "file");
    const xml_node *file = xml_child(check, XMLNS_VERDICT, "file");
    assert_non_null(file);
    assert_string_equal(xml_get_attr(file, "name"), "report.pdf");
    assert_null(xml_child(check, "urn:xmpp:forward:0", "forwarded"));
    answer(f, 0, "block", "no PDFs to bob");
    assert_int_equal(f->file_calls, 1);
    assert_int_equal(f->file.allowed, 0);
    assert_string_equal(f->file_verdict, "block");
    assert_string_equal(f->file_reason, "no PDFs to bob");

    compliance_check_file(srv, file_element(), on_file, f);
    answer_with(f, 1, "modify", "rewritten", "new body"); /* no such thing for a file */
    assert_int_equal(f->file_calls, 2);
    assert_int_equal(f->file.allowed, 0);
    assert_string_equal(f->file_verdict, "block");
    assert_string_equal(f->file_reason, "rewritten");

    compliance_check_file(srv, file_element(), on_file, f);
    answer(f, 2, "allow", NULL);
    assert_int_equal(f->file_calls, 3);
    assert_int_equal(f->file.allowed, 1);
    assert_string_equal(f->file_verdict, "allow");

    /* nobody to ask: decided at once by compliance_server_failure */
    router_remove_service(srv, COMP);
    compliance_check_file(srv, file_element(), on_file, f);
    assert_int_equal(f->file_calls, 4);
    assert_int_equal(f->file.allowed, 0);
    assert_string_equal(f->file_verdict, "block-unchecked");
    assert_string_equal(f->file_reason, "no compliance server is connected");
    srv->cfg.compliance_server_failure = COMPLIANCE_FAIL_ALLOW;
    compliance_check_file(srv, file_element(), on_file, f);
    assert_int_equal(f->file_calls, 5);
    assert_int_equal(f->file.allowed, 1);
    assert_string_equal(f->file_verdict, "allow-unchecked");
    assert_int_equal(f->nchecks, 3);
}

static void sender_order_and_other_senders(void **state)
{
    fixture *f = *state;
    server *srv = &f->srv;
    compliance_hold(srv, message("alice@localhost/a", "bob@localhost", "chat", "a1", "first"),
                    "bob@localhost", "delivered", NULL, release, f, free_ud);
    compliance_hold(srv, message("alice@localhost/a", "bob@localhost", "chat", "a2", NULL),
                    "bob@localhost", NULL, NULL, release, f, free_ud);
    compliance_hold(srv, message("alice@localhost/a", "bob@localhost", "chat", "a3", "third"),
                    "bob@localhost", "delivered", NULL, release, f, free_ud);
    compliance_hold(srv, message("dave@localhost/d", "bob@localhost", "chat", "d1", "dave"),
                    "bob@localhost", "delivered", NULL, release, f, free_ud);
    assert_int_equal(f->nchecks, 3); /* a1, a3, d1: all asked at once */
    answer(f, 2, "allow", NULL);     /* dave's */
    answer(f, 1, "allow", NULL);     /* alice's third, before her first */
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 1);
    assert_string_equal(f->released[0], "d1");
    answer(f, 0, "allow", NULL);
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 4);
    assert_string_equal(f->released[1], "a1");
    assert_string_equal(f->released[2], "a2");
    assert_string_equal(f->released[3], "a3");
}

static void timeout_blocks_or_allows(void **state)
{
    fixture *f = *state;
    server *srv = &f->srv;
    srv->cfg.compliance_server_timeout = 0; /* expired at the next tick */
    compliance_hold(srv, message("alice@localhost/a", "bob@localhost", "chat", "t1", "late one"),
                    "bob@localhost", "delivered", NULL, release, f, free_ud);
    iq_out_expire(srv);
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 0);
    assert_int_equal(f->freed, 1);
    found r = record_of(f, "late one");
    assert_string_equal(r.verdict, "block-unchecked");
    assert_string_equal(r.outcome, "blocked-compliance");
    assert_string_equal(r.reason, "no verdict within 0 ms");
    answer(f, 0, "allow", NULL); /* too late: ignored */
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 0);

    srv->cfg.compliance_server_failure = COMPLIANCE_FAIL_ALLOW;
    compliance_hold(srv, message("alice@localhost/a", "bob@localhost", "chat", "t2", "late two"),
                    "bob@localhost", "delivered", NULL, release, f, free_ud);
    iq_out_expire(srv);
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 1);
    r = record_of(f, "late two");
    assert_string_equal(r.verdict, "allow-unchecked");
    assert_string_equal(r.outcome, "delivered");
}

static void forged_answer_ignored(void **state)
{
    fixture *f = *state;
    server *srv = &f->srv;
    compliance_hold(srv, message("alice@localhost/a", "bob@localhost", "chat", "f1", "forge me"),
                    "bob@localhost", "delivered", NULL, release, f, free_ud);
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "result");
    xml_set_attr(iq, "id", xml_get_attr(f->checks[0], "id"));
    xml_set_attr(iq, "from", "gateway.localhost");
    xml_set_attr(iq, "to", "localhost");
    xml_set_attr(xml_add_child(iq, XMLNS_VERDICT, "verdict"), "action", "allow");
    router_send(srv, iq);
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 0);
    assert_true(compliance_pending(srv));
    answer(f, 0, "allow", NULL);
    compliance_flush(srv);
    assert_int_equal(f->nreleased, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(room_message_lists_occupants, setup, teardown),
        cmocka_unit_test_setup_teardown(file_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(sender_order_and_other_senders, setup, teardown),
        cmocka_unit_test_setup_teardown(timeout_blocks_or_allows, setup, teardown),
        cmocka_unit_test_setup_teardown(forged_answer_ignored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
