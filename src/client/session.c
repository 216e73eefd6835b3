/* session.c - the XMPP stream of a libparley connection: stream headers, features,
 * mandatory STARTTLS, the SASL hand-off, resource binding, the initial roster and
 * presence, stream errors, XEP-0199 keep-alive and IQ time-outs. Every outgoing stanza
 * passes through session_send() (the one place later work such as XEP-0198 counts). */
#include "../common/util.h"
#include "ext.h"
#include "internal.h"
#include "omemo/omemo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xs_action on_stream_open(void *ud, const xml_node *root);
static xs_action on_stanza(void *ud, xml_node *stanza);
static xs_action on_stream_close(void *ud);
static const xmlstream_handlers handlers = {on_stream_open, on_stanza, on_stream_close};

#define IQ_DEFAULT_TIMEOUT_MS 30000

char *session_new_id(parley *p)
{
    char rnd[9];
    random_token(rnd, 8);
    return xasprintf("pl%u-%s", ++p->next_id, rnd);
}

/* A message with content gets an XEP-0359 origin-id (unless it has one): sent again after
 * a failover it is then known as the same message, by the recipient's client and by the
 * server's compliance log. Returns a tagged copy, or NULL when the stanza stays as it is. */
static xml_node *with_origin_id(const xml_node *st)
{
    if (!str_eq(st->name, "message") || !str_eq(st->ns, XMLNS_CLIENT) ||
        str_eq(xml_get_attr(st, "type"), "error") || !ext_has_content(st) ||
        xml_child(st, XMLNS_SID, "origin-id"))
        return NULL;
    char token[25];
    random_token(token, sizeof token - 1);
    xml_node *copy = xml_copy(st);
    xml_set_attr(xml_add_child(copy, XMLNS_SID, "origin-id"), "id", token);
    return copy;
}

void session_send(parley *p, const xml_node *stanza)
{
    xml_node *tagged = with_origin_id(stanza);
    const xml_node *st = tagged ? tagged : stanza;
    client_ext_sent(p, st);
    buf out;
    buf_init(&out);
    xml_serialize(st, XMLNS_CLIENT, &out);
    transport_write(p, out.data, out.len);
    sm_track(p, st, out.data, out.len); /* XEP-0198: kept until the server acknowledges it */
    buf_free(&out);
    xml_free(tagged);
}

static void send_header(parley *p)
{
    buf out;
    buf_init(&out);
    buf_append_str(&out, "<?xml version='1.0'?><stream:stream xmlns='" XMLNS_CLIENT
                         "' xmlns:stream='" XMLNS_STREAM "' version='1.0' xml:lang='en' to='");
    buf_append_xml_escaped(&out, p->account.domain, strlen(p->account.domain), 1);
    if (p->tls_done) { /* RFC 6120 4.7.1: 'from' only once the stream is protected */
        buf_append_str(&out, "' from='");
        buf_append_xml_escaped(&out, p->account_bare, strlen(p->account_bare), 1);
    }
    buf_append_str(&out, "'>");
    p->phase = PH_STREAM;
    p->neg = NEG_FEATURES;
    if (!p->xs)
        p->xs = xmlstream_new(&handlers, p, p->opt.max_stanza);
    transport_write(p, out.data, out.len);
    buf_free(&out);
}

void session_on_tcp_connected(parley *p)
{
    if (p->opt.direct_tls)
        transport_start_tls(p);
    else
        send_header(p);
}

void session_on_tls_ready(parley *p)
{
    if (p->xs)
        xmlstream_reset(p->xs);
    send_header(p);
}

void session_reset(parley *p)
{
    xmlstream_free(p->xs);
    p->xs = NULL;
    sasl_free(p);
    free(p->bound);
    p->bound = NULL;
    p->neg = NEG_FEATURES;
    p->authed = 0;
    p->need_session = 0;
    p->ping_deadline_ms = 0;
}

void session_close_stream(parley *p)
{
    static const char close_tag[] = "</stream:stream>";
    transport_write(p, close_tag, sizeof close_tag - 1);
}

pending_iq *session_track_iq(parley *p, const char *id, const char *to, parley_iq_fn cb,
                             void *ud, int timeout_ms, int internal)
{
    pending_iq *q = xcalloc(1, sizeof *q);
    q->id = xstrdup(id);
    q->to = to ? jid_normalize(to) : NULL;
    q->cb = cb;
    q->ud = ud;
    q->internal = internal;
    q->deadline_ms = time_mono_ms() + (timeout_ms > 0 ? timeout_ms : IQ_DEFAULT_TIMEOUT_MS);
    q->next = p->iqs;
    p->iqs = q;
    return q;
}

/* Send an IQ built here, tracked with an internal continuation. */
static void send_internal_iq(parley *p, xml_node *iq, parley_iq_fn cb)
{
    char *id = session_new_id(p);
    xml_set_attr(iq, "id", id);
    session_track_iq(p, id, xml_get_attr(iq, "to"), cb, NULL, p->opt.connect_timeout_ms, 1);
    session_send(p, iq);
    xml_free(iq);
    free(id);
}

/* ---------------------------------------------------------------- stream errors */

static void stream_error(parley *p, const xml_node *err)
{
    const xml_node *cond = NULL;
    for (const xml_node *c = xml_first_element(err); c; c = xml_next(c, NULL, NULL))
        if (str_eq(c->ns, XMLNS_STREAMS) && !str_eq(c->name, "text")) {
            cond = c;
            break;
        }
    const char *name = cond ? cond->name : "undefined-condition";
    char *text = xml_child_text(err, XMLNS_STREAMS, "text");
    parley_error code = PARLEY_ERR_PROTOCOL;
    int permanent = 0;
    if (str_eq(name, "not-authorized")) {
        code = PARLEY_ERR_AUTH;
        permanent = 1;
    } else if (str_eq(name, "policy-violation")) {
        code = PARLEY_ERR_POLICY;
    } else if (str_eq(name, "connection-timeout")) {
        code = PARLEY_ERR_TIMEOUT;
    } else if (str_eq(name, "system-shutdown") || str_eq(name, "remote-connection-failed") ||
               str_eq(name, "see-other-host") || str_eq(name, "reset")) {
        code = PARLEY_ERR_UNREACHABLE;
    } else if (str_eq(name, "conflict")) {
        permanent = 1; /* another session took our resource: do not fight over it */
    }
    client_fail(p, code, permanent, "%s: stream error <%s/>%s%s", p->peer, name,
                text && *text ? ": " : "", text && *text ? text : "");
    free(text);
}

/* ---------------------------------------------------------------- negotiation */

static void go_online(parley *p)
{
    p->neg = NEG_ONLINE;
    p->last_rx_ms = time_mono_ms();
    if (p->opt.initial_presence)
        im_send_current_presence(p);
    sm_resend(p); /* a lost session's unacknowledged messages, before anything new */
    omemo_on_online(p); /* publishes (or withdraws) our keys as the policy says */
    client_online(p);
}

/* The admin policy before CONNECTED: nothing is sent against a policy not yet known. */
static void after_policy(parley *p)
{
    if (p->neg == NEG_POLICY)
        go_online(p);
}

static void fetch_policy(parley *p)
{
    p->neg = NEG_POLICY;
    policy_request(p, after_policy);
}

static void fail_iq(parley *p, const char *what, const parley_stanza *res, parley_error err)
{
    if (!res) {
        client_fail(p, err, 0, "%s: no answer to %s", p->peer, what);
        return;
    }
    char *text = im_error_text((const xml_node *)res);
    parley_error code = im_error_code((const xml_node *)res);
    client_fail(p, code, code == PARLEY_ERR_POLICY || code == PARLEY_ERR_AUTH,
                "%s: %s refused: %s", p->peer, what, text);
    free(text);
}

static void on_roster(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)ud;
    if (err == PARLEY_OK)
        im_roster_result(p, (const xml_node *)res);
    else
        client_log(p, 2, "roster fetch failed (continuing without it)");
    if (p->neg == NEG_ROSTER)
        fetch_policy(p);
}

static void after_session(parley *p)
{
    if (!p->opt.fetch_roster) {
        fetch_policy(p);
        return;
    }
    p->neg = NEG_ROSTER;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "get");
    xml_add_child(iq, XMLNS_ROSTER, "query");
    send_internal_iq(p, iq, on_roster);
}

static void on_session(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)ud;
    if (err != PARLEY_OK) {
        fail_iq(p, "session establishment", res, err);
        return;
    }
    after_session(p);
}

static void on_bind(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)ud;
    if (err != PARLEY_OK) {
        fail_iq(p, "resource binding", res, err);
        return;
    }
    const xml_node *bind = xml_child((const xml_node *)res, XMLNS_BIND, "bind");
    char *given = bind ? xml_child_text(bind, XMLNS_BIND, "jid") : NULL;
    char *norm = given ? jid_normalize(given) : NULL;
    free(given);
    if (!norm) {
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: bind result without a valid JID", p->peer);
        return;
    }
    free(p->bound);
    p->bound = norm;
    client_log(p, 1, "%s: bound as %s", p->peer, norm);
    sm_on_bound(p); /* XEP-0198 right after binding, before anything is counted */
    if (p->need_session) {
        p->neg = NEG_SESSION;
        xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
        xml_set_attr(iq, "type", "set");
        xml_add_child(iq, XMLNS_SESSION, "session");
        send_internal_iq(p, iq, on_session);
        return;
    }
    after_session(p);
}

static void start_bind(parley *p)
{
    p->neg = NEG_BIND;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_node *b = xml_add_child(iq, XMLNS_BIND, "bind");
    if (p->account.resource) {
        xml_node *r = xml_add_child(b, NULL, "resource");
        xml_add_text(r, p->account.resource, strlen(p->account.resource));
    }
    send_internal_iq(p, iq, on_bind);
}

static xs_action on_features(parley *p, const xml_node *features)
{
    if (!p->tls_done) {
        if (!xml_child(features, XMLNS_TLS, "starttls")) {
            client_fail(p, PARLEY_ERR_POLICY, 1,
                        "%s: the server does not offer STARTTLS; refusing to sign in without TLS",
                        p->peer);
            return XS_STOP;
        }
        static const char starttls[] = "<starttls xmlns='" XMLNS_TLS "'/>";
        transport_write(p, starttls, sizeof starttls - 1);
        p->neg = NEG_STARTTLS;
        return XS_CONTINUE;
    }
    if (!p->authed) {
        p->neg = NEG_SASL;
        return sasl_begin(p, features) == SASL_FAILED ? XS_STOP : XS_CONTINUE;
    }
    if (!xml_child(features, XMLNS_BIND, "bind")) {
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: the server offers no resource binding", p->peer);
        return XS_STOP;
    }
    const xml_node *sess = xml_child(features, XMLNS_SESSION, "session");
    p->need_session = sess && !xml_child(sess, NULL, "optional");
    sm_on_features(p, features);
    if (sm_try_resume(p))
        p->neg = NEG_RESUME; /* <resumed/> or <failed/> (then we bind) comes next */
    else
        start_bind(p);
    return p->fail_pending ? XS_STOP : XS_CONTINUE;
}

static xs_action on_stream_open(void *ud, const xml_node *root)
{
    parley *p = ud;
    const char *version = xml_get_attr(root, "version");
    if (!version || strncmp(version, "1.", 2) != 0) {
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: not an XMPP 1.0 server", p->peer);
        return XS_STOP;
    }
    return XS_CONTINUE;
}

static xs_action on_stream_close(void *ud)
{
    parley *p = ud;
    if (p->phase != PH_CLOSING)
        session_close_stream(p);
    client_fail(p, p->phase == PH_CLOSING ? PARLEY_ERR_CLOSED : PARLEY_ERR_UNREACHABLE, 0,
                "%s: the server closed the stream", p->peer);
    return XS_STOP;
}

static xs_action on_stanza(void *ud, xml_node *el)
{
    parley *p = ud;
    xs_action act = XS_CONTINUE;
    if (xml_is(el, XMLNS_STREAM, "error")) {
        stream_error(p, el);
        xml_free(el);
        return XS_STOP;
    }
    switch (p->neg) {
    case NEG_FEATURES:
        if (xml_is(el, XMLNS_STREAM, "features"))
            act = on_features(p, el);
        else {
            client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: <%s/> before stream features", p->peer,
                        el->name);
            act = XS_STOP;
        }
        break;
    case NEG_STARTTLS:
        if (xml_is(el, XMLNS_TLS, "proceed") && transport_start_tls(p) == 0) {
            act = XS_RESTART; /* bytes after <proceed/> must never be read as XML */
        } else {
            if (!p->fail_pending)
                client_fail(p, PARLEY_ERR_POLICY, 1, "%s: the server refused STARTTLS", p->peer);
            act = XS_STOP;
        }
        break;
    case NEG_SASL:
        if (!str_eq(el->ns, XMLNS_SASL)) {
            client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: <%s/> during authentication", p->peer,
                        el->name);
            act = XS_STOP;
            break;
        }
        switch (sasl_step_in(p, el)) {
        case SASL_SUCCESS:
            p->authed = 1;
            sasl_free(p);
            send_header(p);
            act = XS_RESTART;
            break;
        case SASL_FAILED: act = XS_STOP; break;
        case SASL_CONTINUE: break;
        }
        break;
    default:
        if (str_eq(el->ns, XMLNS_CLIENT)) {
            sm_count_inbound(p); /* handled from here on, whatever becomes of it */
            im_dispatch(p, el); /* takes ownership */
            return p->fail_pending ? XS_STOP : XS_CONTINUE;
        }
        if (str_eq(el->ns, XMLNS_SM)) {
            switch (sm_handle(p, el)) {
            case SM_RESUMED: go_online(p); break; /* the server kept roster and presence */
            case SM_RESUME_FAILED: start_bind(p); break;
            case SM_OK: break;
            }
            act = p->fail_pending ? XS_STOP : XS_CONTINUE;
            break;
        }
        client_log(p, 0, "ignoring <%s xmlns='%s'/>", el->name, el->ns);
        break;
    }
    xml_free(el);
    return act;
}

void session_on_data(parley *p, const char *data, size_t len)
{
    p->last_rx_ms = time_mono_ms();
    p->ping_deadline_ms = 0; /* anything from the server proves the link is alive */
    if (!p->xs)
        return;
    p->in_feed = 1;
    xs_status st = xmlstream_feed(p->xs, data, len);
    p->in_feed = 0;
    switch (st) {
    case XS_OK:
    case XS_STOPPED:
    case XS_RESTARTED:
        return;
    default:
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: bad XML from the server: %s", p->peer,
                    xmlstream_error_text(p->xs));
    }
}

/* ---------------------------------------------------------------- timers */

static void on_ping(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)p, (void)res, (void)err, (void)ud; /* any answer (even an error) proves liveness */
}

static void expire_iqs(parley *p, int64_t now)
{
    for (;;) {
        pending_iq **pp = &p->iqs, *q = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->deadline_ms <= now) {
                q = *pp;
                *pp = q->next;
                break;
            }
        if (!q)
            return;
        if (q->cb)
            q->cb(p, NULL, PARLEY_ERR_TIMEOUT, q->ud);
        free(q->to);
        free(q->id);
        free(q);
        if (p->fail_pending)
            return;
    }
}

void session_timers(parley *p, int64_t now)
{
    if (p->phase != PH_STREAM)
        return;
    expire_iqs(p, now);
    if (p->fail_pending || p->neg != NEG_ONLINE)
        return;
    sm_timers(p, now);
    omemo_timers(p, now);
    if (p->opt.ping_interval_ms <= 0)
        return;
    if (p->ping_deadline_ms && now >= p->ping_deadline_ms) {
        client_fail(p, PARLEY_ERR_TIMEOUT, 0, "%s: no answer to a keep-alive ping within %d ms",
                    p->peer, p->opt.ping_timeout_ms);
        return;
    }
    if (!p->ping_deadline_ms && now - p->last_rx_ms >= p->opt.ping_interval_ms) {
        xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
        xml_set_attr(iq, "type", "get");
        xml_set_attr(iq, "to", p->account.domain);
        xml_add_child(iq, XMLNS_PING, "ping");
        char *id = session_new_id(p);
        xml_set_attr(iq, "id", id);
        session_track_iq(p, id, p->account.domain, on_ping, NULL, p->opt.ping_timeout_ms + 1000, 1);
        session_send(p, iq);
        xml_free(iq);
        free(id);
        p->ping_deadline_ms = now + p->opt.ping_timeout_ms;
    }
}

int64_t session_next_timer(const parley *p)
{
    int64_t next = -1;
    if (p->phase != PH_STREAM)
        return -1;
    for (const pending_iq *q = p->iqs; q; q = q->next)
        if (next < 0 || q->deadline_ms < next)
            next = q->deadline_ms;
    int64_t sm_due = p->neg == NEG_ONLINE ? sm_next_timer(p) : -1;
    if (sm_due >= 0 && (next < 0 || sm_due < next))
        next = sm_due;
    if (p->neg == NEG_ONLINE && p->opt.ping_interval_ms > 0) {
        int64_t t = p->ping_deadline_ms ? p->ping_deadline_ms : p->last_rx_ms + p->opt.ping_interval_ms;
        if (next < 0 || t < next)
            next = t;
    }
    return next;
}
