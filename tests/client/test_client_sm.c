/* test_client_sm.c - unit tests of libparley's XEP-0198 stream management (sm.c): the
 * queue of unacknowledged stanzas and its counters (wrap-around included), what a new
 * session sends again, the h attribute parser, and - on a handle whose "server" is the
 * other end of a socket pair - enable, answering <r/>, asking for acks, origin-ids on
 * messages, and a server that acknowledges more than was sent: a clear error, the
 * connection closed, nothing lost (sent again on the next session). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/internal.h"

static void push_n(sm_queue *q, int first, int n, int is_message)
{
    for (int i = first; i < first + n; i++) {
        char xml[64], id[16];
        snprintf(xml, sizeof xml, "<%s id='s%d'/>", is_message ? "message" : "iq", i);
        snprintf(id, sizeof id, "s%d", i);
        sm_queue_push(q, xml, strlen(xml), is_message, id, "bob@localhost");
    }
}

static void test_queue_ack(void **state)
{
    (void)state;
    sm_queue q = {0};
    push_n(&q, 1, 40, 1); /* grows past its first allocation */
    assert_int_equal(q.count, 40);
    assert_int_equal(sm_queue_ack(&q, 0), 0);     /* nothing new */
    assert_int_equal(sm_queue_ack(&q, 15), 15);
    assert_int_equal(q.count, 25);
    assert_string_equal(sm_queue_at(&q, 0)->id, "s16");
    assert_int_equal(sm_queue_ack(&q, 15), 0);    /* the same h again: harmless */
    /* more than was sent: refused, nothing dropped */
    assert_int_equal(sm_queue_ack(&q, 41), -1);
    assert_int_equal(q.count, 25);
    assert_int_equal(q.acked, 15);
    /* an h from before (it went backwards): counts as ~2^32 new ones, refused */
    assert_int_equal(sm_queue_ack(&q, 14), -1);
    assert_int_equal(q.count, 25);
    push_n(&q, 41, 5, 1); /* appended after a partial ack reuses the front */
    assert_int_equal(sm_queue_ack(&q, 45), 30);
    assert_int_equal(q.count, 0);
    assert_null(sm_queue_at(&q, 0));
    sm_queue_clear(&q);
}

static void test_queue_wraps(void **state)
{
    (void)state;
    sm_queue q = {0};
    q.acked = 0xfffffffeu; /* the counter wraps at 2^32 */
    push_n(&q, 1, 4, 1);
    assert_int_equal(sm_queue_ack(&q, 1), 3); /* 0xffffffff, 0, 1 */
    assert_int_equal(q.count, 1);
    assert_int_equal(sm_queue_ack(&q, 3), -1);
    assert_int_equal(sm_queue_ack(&q, 2), 1);
    sm_queue_clear(&q);
}

static void test_move_messages(void **state)
{
    (void)state;
    sm_queue q = {0}, resend = {0};
    push_n(&q, 1, 2, 1);
    push_n(&q, 3, 2, 0); /* IQs: not sent again on a new session */
    push_n(&q, 5, 1, 1);
    assert_int_equal(sm_queue_ack(&q, 1), 1);
    assert_int_equal(sm_queue_move_messages(&q, &resend), 2);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.acked, 0); /* a new session counts from 0 */
    assert_int_equal(resend.count, 2);
    assert_string_equal(sm_queue_at(&resend, 0)->id, "s2");
    assert_string_equal(sm_queue_at(&resend, 1)->id, "s5");
    assert_string_equal(sm_queue_at(&resend, 1)->xml, "<message id='s5'/>");
    sm_queue_clear(&resend);
}

static void test_parse_h(void **state)
{
    (void)state;
    uint32_t h = 7;
    assert_int_equal(sm_parse_h("0", &h), 0);
    assert_int_equal(h, 0);
    assert_int_equal(sm_parse_h("4294967295", &h), 0);
    assert_int_equal(h, 4294967295u);
    const char *bad[] = {NULL, "", "4294967296", "-1", "1a", " 1", "99999999999", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sm_parse_h(bad[i], &h), -1);
}

/* ---- a handle talking to a socket pair ---- */

typedef struct harness {
    parley *p;
    int server;   /* our end: what the library wrote, and nothing else */
    int disconnected, resent;
    char last_error[512];
} harness;

static void on_event(parley *p, const parley_event *ev, void *ud)
{
    (void)p;
    harness *h = ud;
    if (ev->type == PARLEY_EV_DISCONNECTED) {
        h->disconnected++;
        snprintf(h->last_error, sizeof h->last_error, "%s", ev->error_text ? ev->error_text : "");
    } else if (ev->type == PARLEY_EV_RESENT) {
        h->resent++;
    }
}

/* What the library wrote since the last call (NUL-terminated, static). */
static const char *drain(harness *h)
{
    static char got[65536];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(h->server, got + n, sizeof got - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    got[n] = '\0';
    return got;
}

static void feed(harness *h, const char *xml)
{
    session_on_data(h->p, xml, strlen(xml));
}

/* A handle "online" on a plain socket pair: the stream is open, a session bound, and
 * stream management enabled (resumable). */
static void open_session(harness *h)
{
    memset(h, 0, sizeof *h);
    parley_options o;
    parley_options_init(&o);
    o.jid = "alice@localhost/r";
    o.password = "secret";
    o.e2e = 0;
    o.on_event = on_event;
    o.userdata = h;
    parley_error e;
    char why[256];
    h->p = parley_new(&o, &e, why, sizeof why);
    assert_non_null(h->p);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    h->server = sv[1];
    parley *p = h->p;
    p->fd = sv[0];
    p->phase = PH_TCP;
    p->want_online = 1;
    snprintf(p->peer, sizeof p->peer, "test-server");
    session_on_tcp_connected(p); /* sends our header, makes the parser */
    feed(h, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
            " version='1.0' from='localhost'>");
    p->authed = 1;
    p->bound = strdup("alice@localhost/r");
    p->sm.offered = 1;
    sm_on_bound(p);
    p->neg = NEG_ONLINE;
    assert_non_null(strstr(drain(h), "<enable xmlns='urn:xmpp:sm:3' resume='true'/>"));
    feed(h, "<enabled xmlns='urn:xmpp:sm:3' id='sess-1' resume='true' max='60'/>");
    assert_true(p->sm.active);
    assert_string_equal(p->sm.resume_id, "sess-1");
}

static void close_session(harness *h)
{
    parley_free(h->p);
    close(h->server);
}

static void send_chat(harness *h, int n)
{
    char body[32], id[16];
    snprintf(body, sizeof body, "body %d", n);
    snprintf(id, sizeof id, "m%d", n);
    im_send_plain(h->p, "bob@localhost", "chat", body, id);
}

static void test_session_counts_and_acks(void **state)
{
    (void)state;
    harness h;
    open_session(&h);
    parley *p = h.p;
    /* received stanzas are counted and <r/> answered with the count */
    feed(&h, "<message xmlns='jabber:client' from='bob@localhost/x' type='chat'><body>hi</body></message>");
    feed(&h, "<presence xmlns='jabber:client' from='bob@localhost/x'/>");
    feed(&h, "<r xmlns='urn:xmpp:sm:3'/>");
    assert_non_null(strstr(drain(&h), "<a xmlns='urn:xmpp:sm:3' h='2'/>"));
    /* sent messages carry an origin-id and wait in the queue; every 5th asks for an ack */
    for (int i = 1; i <= 5; i++)
        send_chat(&h, i);
    const char *out = drain(&h);
    assert_non_null(strstr(out, "<origin-id "));
    assert_non_null(strstr(out, "urn:xmpp:sid:0"));
    assert_non_null(strstr(out, "<r xmlns='urn:xmpp:sm:3'/>"));
    assert_int_equal(p->sm.q.count, 5);
    assert_non_null(strstr(sm_queue_at(&p->sm.q, 0)->xml, "origin-id"));
    feed(&h, "<a xmlns='urn:xmpp:sm:3' h='3'/>");
    assert_int_equal(p->sm.q.count, 2);
    assert_false(p->fail_pending);
    /* one more, then idle: an <r/> once the short delay has passed */
    send_chat(&h, 6);
    drain(&h);
    assert_true(p->sm.r_due_ms > 0);
    sm_timers(p, p->sm.r_due_ms);
    assert_non_null(strstr(drain(&h), "<r xmlns='urn:xmpp:sm:3'/>"));
    close_session(&h);
}

static void test_ack_beyond_sent(void **state)
{
    (void)state;
    harness h;
    open_session(&h);
    parley *p = h.p;
    for (int i = 1; i <= 3; i++)
        send_chat(&h, i);
    drain(&h);
    feed(&h, "<a xmlns='urn:xmpp:sm:3' h='1'/>");
    assert_int_equal(p->sm.q.count, 2);
    /* the server claims 7 of our 3 stanzas: a clear error, the stream ends */
    feed(&h, "<a xmlns='urn:xmpp:sm:3' h='7'/>");
    assert_true(p->fail_pending);
    assert_int_equal(p->err, PARLEY_ERR_PROTOCOL);
    assert_non_null(strstr(p->errtext, "acknowledged 7 stanzas but only 3 were sent"));
    const char *out = drain(&h);
    assert_non_null(strstr(out, "<handled-count-too-high xmlns='urn:xmpp:sm:3' h='7' send-count='3'/>"));
    assert_non_null(strstr(out, "</stream:stream>"));
    /* nothing lost: both unacknowledged messages are kept; a count we cannot trust is
     * not resumed */
    assert_int_equal(p->sm.q.count, 2);
    assert_null(p->sm.resume_id);
    p->opt.reconnect = 0;
    parley_process(p, 0); /* the teardown */
    assert_int_equal(h.disconnected, 1);
    assert_non_null(strstr(h.last_error, "acknowledged 7"));
    assert_int_equal(parley_get_state(p), PARLEY_STATE_OFFLINE);
    assert_int_equal(p->sm.q.count, 2);
    /* the next session sends them again, in order, and says so */
    sm_on_bound(p);
    assert_int_equal(p->sm.resend.count, 2);
    assert_string_equal(sm_queue_at(&p->sm.resend, 0)->id, "m2");
    assert_string_equal(sm_queue_at(&p->sm.resend, 1)->id, "m3");
    close_session(&h);
}

static void test_bad_ack_values(void **state)
{
    (void)state;
    const char *bad[] = {"<a xmlns='urn:xmpp:sm:3'/>", "<a xmlns='urn:xmpp:sm:3' h='-1'/>",
                         "<a xmlns='urn:xmpp:sm:3' h='99999999999999'/>",
                         "<a xmlns='urn:xmpp:sm:3' h='1x'/>"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        harness h;
        open_session(&h);
        send_chat(&h, 1);
        feed(&h, bad[i]);
        assert_true(h.p->fail_pending);
        assert_int_equal(h.p->err, PARLEY_ERR_PROTOCOL);
        assert_int_equal(h.p->sm.q.count, 1);
        close_session(&h);
    }
}

static void lose_and_resume(harness *h)
{
    parley *p = h->p;
    send_chat(h, 1);
    send_chat(h, 2);
    drain(h);
    /* the connection dies; the next one (here: the same pair) offers resumption */
    sm_on_lost(p, 0);
    p->neg = NEG_FEATURES;
    assert_int_equal(sm_try_resume(p), 1);
    assert_non_null(strstr(drain(h), "<resume xmlns='urn:xmpp:sm:3' previd='sess-1' h='0'/>"));
    p->neg = NEG_RESUME;
}

static void test_resumed_sends_the_rest(void **state)
{
    (void)state;
    harness h;
    open_session(&h);
    parley *p = h.p;
    lose_and_resume(&h);
    /* the server got the first message: only the second goes again */
    feed(&h, "<resumed xmlns='urn:xmpp:sm:3' h='1' previd='sess-1'/>");
    assert_false(p->fail_pending);
    assert_int_equal(p->neg, NEG_ONLINE);
    assert_string_equal(p->bound, "alice@localhost/r");
    const char *out = drain(&h);
    assert_non_null(strstr(out, "body 2"));
    assert_null(strstr(out, "body 1"));
    /* the rest of the queue: what going online sent (presence, carbons, ...) */
    assert_non_null(strstr(sm_queue_at(&p->sm.q, 0)->xml, "body 2"));
    assert_int_equal(p->sm.q.acked, 1);
    assert_int_equal(h.resent, 0); /* the same session: nothing for the application */
    close_session(&h);
}

static void test_resume_failed_then_resend(void **state)
{
    (void)state;
    harness h;
    open_session(&h);
    parley *p = h.p;
    lose_and_resume(&h);
    char *second = strdup(sm_queue_at(&p->sm.q, 1)->xml);
    /* another node: it cannot resume, but says it got the first message */
    feed(&h, "<failed xmlns='urn:xmpp:sm:3' h='1'><item-not-found"
             " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    assert_false(p->fail_pending);
    assert_int_equal(p->neg, NEG_BIND);
    assert_null(p->sm.resume_id);
    assert_non_null(strstr(drain(&h), "urn:ietf:params:xml:ns:xmpp-bind"));
    /* bound afresh: the unacknowledged message goes again, unchanged (same origin-id),
     * counted on the new session, and the application is told */
    sm_on_bound(p);
    assert_int_equal(p->sm.resend.count, 1);
    feed(&h, "<enabled xmlns='urn:xmpp:sm:3' id='sess-2' resume='true'/>");
    drain(&h);
    sm_resend(p);
    assert_int_equal(h.resent, 1);
    assert_non_null(strstr(drain(&h), second));
    assert_int_equal(p->sm.q.count, 1);
    assert_int_equal(p->sm.resend.count, 0);
    free(second);
    close_session(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_ack),
        cmocka_unit_test(test_queue_wraps),
        cmocka_unit_test(test_move_messages),
        cmocka_unit_test(test_parse_h),
        cmocka_unit_test(test_session_counts_and_acks),
        cmocka_unit_test(test_ack_beyond_sent),
        cmocka_unit_test(test_bad_ack_values),
        cmocka_unit_test(test_resumed_sends_the_rest),
        cmocka_unit_test(test_resume_failed_then_resend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
