/* c2s.c - client-to-server streams: stream header and features, STARTTLS, the hand-off
 * to SASL, resource binding, then stanzas into the router. Also the session time-outs. */
#include "c2s.h"
#include "../common/buf.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/tls.h"
#include "../common/util.h"
#include "../common/xmlstream.h"
#include "compliance.h"
#include "conn.h"
#include "presence.h"
#include "router.h"
#include "sasl.h"
#include "sm.h"
#include "stanza.h"

#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static void on_data(void *ud, const char *data, size_t len);
static void on_tls_ready(void *ud);
static void on_close(void *ud, const char *reason);
static xs_action on_stream_open(void *ud, const xml_node *root);
static xs_action on_stanza(void *ud, xml_node *stanza);
static xs_action on_stream_close(void *ud);

/* A session silent this long gives its XML parser back (about 9.5 KiB each). */
#define PARSER_IDLE_MS 1000
/* Parsers released in one housekeeping pass that make it return free memory to the OS. */
#define PARSER_TRIM_BATCH 16

static const conn_handlers c2s_conn_handlers = {on_data, on_tls_ready, on_close};
static const xmlstream_handlers c2s_xs_handlers = {on_stream_open, on_stanza, on_stream_close};

void c2s_accept(server *srv, int fd, const char *peer, int direct_tls)
{
    c2s *s = xcalloc(1, sizeof *s);
    s->srv = srv;
    s->connected_ms = s->last_input_ms = time_mono_ms();
    s->direct_tls = direct_tls;
    s->state = C2S_STREAM_START;
    s->conn = conn_new(srv, fd, peer, &c2s_conn_handlers, s);
    if (!s->conn) {
        free(s);
        return;
    }
    s->xs = xmlstream_new(&c2s_xs_handlers, s, srv->cfg.max_stanza_size);
    /* A busy session keeps its parser; housekeeping frees it once the session is quiet. */
    xmlstream_keep_parser(s->xs, 1);
    s->next_all = srv->sessions;
    if (srv->sessions)
        srv->sessions->prev_all = s;
    srv->sessions = s;
    if (direct_tls && conn_start_tls(s->conn, srv->tls_ctx) < 0)
        conn_close(s->conn, "TLS setup failed");
    log_debug("c2s %s: connected%s", peer, direct_tls ? " (direct TLS)" : "");
}

static void write_str(c2s *s, const char *text)
{
    conn_write(s->conn, text, strlen(text));
}

int c2s_is_live(const c2s *s)
{
    return !conn_is_closing(s->conn) || sm_may_resume(s);
}

void c2s_send(c2s *s, const xml_node *stanza)
{
    buf out;
    buf_init(&out);
    xml_serialize(stanza, XMLNS_CLIENT, &out);
    if (sm_track_outbound(s, out.data, out.len))
        conn_write(s->conn, out.data, out.len);
    buf_free(&out);
}

static void send_stream_header(c2s *s, const char *client_from)
{
    random_token(s->stream_id, sizeof s->stream_id - 1);
    buf out;
    buf_init(&out);
    buf_append_str(&out, "<?xml version='1.0'?><stream:stream xmlns='" XMLNS_CLIENT
                         "' xmlns:stream='" XMLNS_STREAM "' version='1.0' xml:lang='en' id='");
    buf_append_str(&out, s->stream_id);
    buf_append_str(&out, "' from='");
    buf_append_xml_escaped(&out, s->srv->cfg.domain, strlen(s->srv->cfg.domain), 1);
    if (client_from) {
        buf_append_str(&out, "' to='");
        buf_append_xml_escaped(&out, client_from, strlen(client_from), 1);
    }
    buf_append_str(&out, "'>");
    conn_write(s->conn, out.data, out.len);
    buf_free(&out);
    s->stream_open = 1;
}

void c2s_stream_error(c2s *s, const char *condition, const char *text)
{
    if (!s->conn) {
        /* Detached: nobody to tell; the session ends (replaced, shut down). */
        c2s_end_detached(s, condition);
        return;
    }
    /* A client that merely went silent may come back and resume; any other stream error
     * (shutdown included) ends the session for good. */
    if (strcmp(condition, "connection-timeout") != 0)
        sm_forbid_resume(s);
    if (conn_is_closing(s->conn))
        return;
    /* RFC 6120 4.9.1.1: an error before the peer's header is sent inside our own header. */
    if (!s->stream_open)
        send_stream_header(s, NULL);
    xml_node *err = xml_new(XMLNS_STREAM, "error");
    xml_add_child(err, XMLNS_STREAMS, condition);
    if (text) {
        xml_node *t = xml_add_child(err, XMLNS_STREAMS, "text");
        xml_set_attr(t, "xml:lang", "en");
        xml_add_text(t, text, strlen(text));
    }
    buf out;
    buf_init(&out);
    xml_serialize(err, XMLNS_CLIENT, &out);
    buf_append_str(&out, "</stream:stream>");
    conn_write(s->conn, out.data, out.len);
    buf_free(&out);
    xml_free(err);
    log_info("c2s %s%s%s: stream error <%s/>%s%s", conn_peer(s->conn), s->full ? " " : "",
             s->full ? s->full : "", condition, text ? ": " : "", text ? text : "");
    conn_close_after_flush(s->conn, condition);
}

static void send_features(c2s *s)
{
    xml_node *f = xml_new(XMLNS_STREAM, "features");
    if (!conn_is_tls(s->conn)) {
        xml_node *tls = xml_add_child(f, XMLNS_TLS, "starttls");
        xml_add_child(tls, NULL, "required");
        s->state = C2S_WAIT_TLS;
    } else if (!s->user) {
        sasl_add_features(s, f);
        s->state = C2S_WAIT_AUTH;
    } else {
        xml_add_child(f, XMLNS_BIND, "bind");
        sm_add_feature(s, f);
        xml_node *sess = xml_add_child(f, XMLNS_SESSION, "session");
        xml_add_child(sess, NULL, "optional");
        xml_add_child(f, XMLNS_ROSTERVER, "ver");
        s->state = C2S_WAIT_BIND;
    }
    c2s_send(s, f);
    xml_free(f);
}

static xs_action on_stream_open(void *ud, const xml_node *root)
{
    c2s *s = ud;
    const char *from = xml_get_attr(root, "from");
    char *client_from = from ? jid_normalize(from) : NULL;
    send_stream_header(s, client_from);
    free(client_from);

    if (!str_eq(xml_get_attr(root, "xmlns"), XMLNS_CLIENT)) {
        c2s_stream_error(s, "invalid-namespace", "this port serves jabber:client streams");
        return XS_STOP;
    }
    const char *version = xml_get_attr(root, "version");
    if (!version || strncmp(version, "1.", 2) != 0) {
        c2s_stream_error(s, "unsupported-version", "XMPP 1.0 streams only");
        return XS_STOP;
    }
    const char *to = xml_get_attr(root, "to");
    if (to) {
        char *domain = jid_normalize(to);
        int ok = domain && strcmp(domain, s->srv->cfg.domain) == 0;
        free(domain);
        if (!ok) {
            c2s_stream_error(s, "host-unknown", "this server does not serve that domain");
            return XS_STOP;
        }
    }
    send_features(s);
    return XS_CONTINUE;
}

static xs_action on_stream_close(void *ud)
{
    c2s *s = ud;
    sm_forbid_resume(s); /* a clean close ends the session (XEP-0198 section 5) */
    write_str(s, "</stream:stream>");
    conn_close_after_flush(s->conn, "client closed the stream");
    return XS_STOP;
}

static void handle_bind(c2s *s, xml_node *iq)
{
    xml_node *bind = xml_child(iq, XMLNS_BIND, "bind");
    char *requested = bind ? xml_child_text(bind, XMLNS_BIND, "resource") : NULL;
    char *resource = NULL;
    if (requested && *requested) {
        resource = jid_normalize_resource(requested);
        if (!resource) {
            xml_node *err = stanza_error(iq, "modify", "bad-request", "invalid resource");
            c2s_send(s, err);
            xml_free(err);
            free(requested);
            return;
        }
    } else {
        resource = xmalloc(17);
        random_token(resource, 16);
    }
    free(requested);
    s->resource = resource;
    s->full = xasprintf("%s/%s", s->user, resource);
    router_bind(s->srv, s);
    s->state = C2S_BOUND;

    xml_node *res = stanza_iq_result(iq);
    xml_set_attr(res, "to", NULL);
    xml_set_attr(res, "from", NULL);
    xml_node *b = xml_add_child(res, XMLNS_BIND, "bind");
    xml_node *j = xml_add_child(b, NULL, "jid");
    xml_add_text(j, s->full, strlen(s->full));
    c2s_send(s, res);
    xml_free(res);
    /* SASL (and its channel binding) is over: the SSL object can go once idle. */
    conn_tls_compact(s->conn);

    char desc[128];
    conn_tls_describe(s->conn, desc, sizeof desc);
    log_info("c2s %s: bound %s over %s", conn_peer(s->conn), s->full, desc);
}

static xs_action stanza_while_bound(c2s *s, xml_node *stanza)
{
    if (!stanza_is_routable(stanza) || !str_eq(stanza->ns, XMLNS_CLIENT)) {
        xml_free(stanza);
        c2s_stream_error(s, "unsupported-stanza-type", NULL);
        return XS_STOP;
    }
    sm_count_inbound(s);
    /* RFC 6120 8.1.2.1: the server stamps the sender's full JID, whatever the client said. */
    xml_set_attr(stanza, "from", s->full);
    router_route(s->srv, s, stanza);
    return conn_is_closing(s->conn) ? XS_STOP : XS_CONTINUE;
}

static xs_action on_stanza(void *ud, xml_node *stanza)
{
    c2s *s = ud;
    switch (s->state) {
    case C2S_STREAM_START:
        xml_free(stanza);
        c2s_stream_error(s, "not-well-formed", "stanza before the stream header");
        return XS_STOP;
    case C2S_WAIT_TLS:
        if (xml_is(stanza, XMLNS_TLS, "starttls")) {
            xml_free(stanza);
            write_str(s, "<proceed xmlns='" XMLNS_TLS "'/>");
            if (conn_start_tls(s->conn, s->srv->tls_ctx) < 0) {
                conn_close(s->conn, "TLS setup failed");
                return XS_STOP;
            }
            s->stream_open = 0;
            return XS_RESTART; /* anything the client sent after <starttls/> is discarded */
        }
        xml_free(stanza);
        c2s_stream_error(s, "policy-violation", "TLS is required: use STARTTLS first");
        return XS_STOP;
    case C2S_WAIT_AUTH:
        if (str_eq(stanza->ns, XMLNS_SASL)) {
            sasl_step r = sasl_handle(s, stanza);
            if (r == SASL_STEP_SUCCESS) {
                s->stream_open = 0;
                return XS_RESTART;
            }
            return r == SASL_STEP_CLOSED ? XS_STOP : XS_CONTINUE;
        }
        xml_free(stanza);
        c2s_stream_error(s, "not-authorized", "authenticate first");
        return XS_STOP;
    case C2S_WAIT_BIND:
        if (str_eq(stanza->ns, XMLNS_SM))
            return sm_handle(s, stanza) < 0 ? XS_STOP : XS_CONTINUE;
        if (str_eq(stanza->name, "iq") && str_eq(xml_get_attr(stanza, "type"), "set") &&
            xml_child(stanza, XMLNS_BIND, "bind")) {
            handle_bind(s, stanza);
            xml_free(stanza);
            return XS_CONTINUE;
        }
        xml_free(stanza);
        c2s_stream_error(s, "not-authorized", "bind a resource first");
        return XS_STOP;
    case C2S_BOUND:
        if (str_eq(stanza->ns, XMLNS_SM))
            return sm_handle(s, stanza) < 0 ? XS_STOP : XS_CONTINUE;
        return stanza_while_bound(s, stanza);
    case C2S_HUSK:
        break;
    }
    xml_free(stanza);
    return XS_STOP;
}

static void on_data(void *ud, const char *data, size_t len)
{
    c2s *s = ud;
    s->last_input_ms = time_mono_ms();
    s->ping_outstanding = 0;
    xs_status st = xmlstream_feed(s->xs, data, len);
    switch (st) {
    case XS_OK:
    case XS_STOPPED:
    case XS_RESTARTED:
        return;
    case XS_ERR_XML:
        c2s_stream_error(s, "not-well-formed", xmlstream_error_text(s->xs));
        return;
    case XS_ERR_RESTRICTED:
        c2s_stream_error(s, "restricted-xml", xmlstream_error_text(s->xs));
        return;
    case XS_ERR_TOO_BIG:
        c2s_stream_error(s, "policy-violation", xmlstream_error_text(s->xs));
        return;
    case XS_ERR_BAD_NS:
        c2s_stream_error(s, "invalid-namespace", xmlstream_error_text(s->xs));
        return;
    }
}

static void on_tls_ready(void *ud)
{
    c2s *s = ud;
    /* The next bytes must be a fresh stream header (RFC 6120 5.4.3.3). */
    xmlstream_reset(s->xs);
    s->stream_open = 0;
    s->state = C2S_STREAM_START;
}

static void free_session(c2s *s)
{
    server *srv = s->srv;
    if (s->prev_all)
        s->prev_all->next_all = s->next_all;
    else
        srv->sessions = s->next_all;
    if (s->next_all)
        s->next_all->prev_all = s->prev_all;
    sasl_reset(s);
    xmlstream_free(s->xs);
    xml_free(s->presence);
    dict_free(s->directed, NULL);
    free(s->user);
    free(s->resource);
    free(s->full);
    free(s);
}

static void end_session(c2s *s, const char *reason)
{
    server *srv = s->srv;
    if (s->user) /* authenticated, bound or not: every sign-in has its sign-out */
        compliance_audit(srv, s->full ? s->full : s->user, "sign-out", s->user,
                         conn_peer(s->conn), reason);
    if (s->state == C2S_BOUND) {
        presence_session_end(srv, s);
        router_unbind(srv, s);
    }
    /* After unbinding: what the client never acknowledged goes elsewhere, not back here. */
    sm_session_end(s);
    free_session(s);
}

static void on_close(void *ud, const char *reason)
{
    c2s *s = ud;
    log_info("c2s %s%s%s: closed: %s", conn_peer(s->conn), s->full ? " " : "",
             s->full ? s->full : "", reason);
    if (s->state == C2S_HUSK) {
        free_session(s);
        return;
    }
    if (sm_detach(s, reason)) {
        s->conn = NULL; /* freed by conn.c right after this callback */
        return;
    }
    end_session(s, reason);
}

void c2s_end_detached(c2s *s, const char *reason)
{
    log_info("c2s %s: detached session ends: %s", s->full ? s->full : "?", reason);
    end_session(s, reason);
}

void c2s_take_over(c2s *s, c2s *old)
{
    server *srv = s->srv;
    router_unbind(srv, old);
    s->resource = old->resource;
    s->full = old->full;
    s->available = old->available;
    s->priority = old->priority;
    s->roster_loaded = old->roster_loaded;
    s->carbons = old->carbons;
    s->presence = old->presence;
    s->directed = old->directed;
    s->sm = old->sm;
    old->resource = old->full = NULL;
    old->presence = NULL;
    old->directed = NULL;
    old->sm = NULL;
    old->available = 0;
    old->state = C2S_HUSK;
    s->state = C2S_BOUND;
    router_bind(srv, s);
    conn_tls_compact(s->conn); /* resumed (XEP-0198): settled as after a bind */
    if (old->conn)
        conn_close(old->conn, "its session was resumed on a new connection");
    else
        free_session(old);
}

void c2s_hand_over(c2s *old)
{
    router_unbind(old->srv, old); /* no unavailable presence: the session goes on */
    old->available = 0;
    old->state = C2S_HUSK;
    if (old->conn)
        conn_close(old->conn, "its session was resumed on another node");
    else
        free_session(old);
}

void c2s_adopt(c2s *s, const char *resource, int available, int priority, int roster_loaded,
               int carbons, xml_node *presence)
{
    s->resource = xstrdup(resource);
    s->full = xasprintf("%s/%s", s->user, resource);
    s->available = available;
    s->priority = priority;
    s->roster_loaded = roster_loaded;
    s->carbons = carbons;
    s->presence = presence;
    s->state = C2S_BOUND;
    router_bind(s->srv, s);
    conn_tls_compact(s->conn); /* resumed (XEP-0198): settled as after a bind */
}

void c2s_housekeeping(server *srv)
{
    int64_t now = time_mono_ms();
    int64_t handshake_ms = (int64_t)srv->cfg.handshake_timeout * 1000;
    int64_t idle_ms = (int64_t)srv->cfg.idle_timeout * 1000;
    size_t released = 0;
    c2s *next;
    for (c2s *s = srv->sessions; s; s = next) {
        next = s->next_all; /* s may end here */
        if (sm_housekeeping(s, now))
            continue;
        if (now - s->last_input_ms >= PARSER_IDLE_MS) /* detached sessions too */
            released += xmlstream_release_parser(s->xs);
        if (!s->conn || conn_is_closing(s->conn))
            continue;
        if (s->state != C2S_BOUND) {
            if (now - s->connected_ms > handshake_ms) {
                if (conn_in_handshake(s->conn))
                    conn_close(s->conn, "TLS handshake timed out");
                else
                    c2s_stream_error(s, "connection-timeout", "authentication took too long");
            }
            continue;
        }
        if (now - s->last_input_ms <= idle_ms)
            continue;
        if (!s->ping_outstanding) {
            /* XEP-0199: ask a silent client whether it is still there before dropping it. */
            s->ping_outstanding = 1;
            s->last_input_ms = now - idle_ms + handshake_ms; /* answer within handshake_ms */
            xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
            xml_set_attr(iq, "type", "get");
            xml_set_attr(iq, "id", "c2s-idle-ping");
            xml_set_attr(iq, "from", srv->cfg.domain);
            xml_set_attr(iq, "to", s->full);
            xml_add_child(iq, XMLNS_PING, "ping");
            c2s_send(s, iq);
            xml_free(iq);
        } else {
            c2s_stream_error(s, "connection-timeout", "no answer to ping");
        }
    }
#ifdef __GLIBC__
    /* After a burst of logins the freed parsers are holes between long-lived session
     * objects; glibc keeps them unless asked. Give whole free pages back. */
    if (released >= PARSER_TRIM_BATCH)
        malloc_trim(0);
#endif
}

void c2s_shutdown_all(server *srv)
{
    c2s *next;
    for (c2s *s = srv->sessions; s; s = next) {
        next = s->next_all; /* a detached session ends (and is freed) here */
        c2s_stream_error(s, "system-shutdown", "the server is shutting down");
    }
    conn_flush_all(srv);
    for (c2s *s = srv->sessions; s; s = s->next_all)
        if (s->conn)
            conn_close(s->conn, "server shutdown");
    conn_flush_all(srv);
}
