/* s2s.c - the table of server links (s2s.h): creating and finding links, queueing
 * stanzas while an outbound link connects, bouncing them when it fails, writing stream
 * headers, stanzas and errors, the checks on what an inbound link delivers, time-outs
 * and shutdown. The two state machines are in s2s_out.c and s2s_in.c.
 *
 * Inside the server every stanza is in jabber:client; a server stream speaks
 * jabber:server. The stanza element and the children that inherit its namespace are
 * renamed at the stream boundary, both ways, as on component streams. */
#include "s2s_internal.h"
#include "../common/buf.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/tls.h"
#include "../common/util.h"
#include "compliance.h"
#include "conn.h"
#include "node.h"
#include "router.h"
#include "s2s_tls.h"
#include "stanza.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static s2s *state(server *srv) { return srv->s2s; }

int s2s_init(server *srv)
{
    if (!srv->cfg.s2s_port)
        return 0; /* federation off: s2s_send bounces */
    s2s *st = xcalloc(1, sizeof *st);
    srv->s2s = st;
    random_bytes(st->dialback_secret, sizeof st->dialback_secret);
    char err[512];
    st->in_ctx = s2s_tls_server_ctx(&srv->cfg, 1, err, sizeof err);
    if (st->in_ctx)
        st->out_ctx = s2s_tls_client_ctx(&srv->cfg, 1, err, sizeof err);
    if (st->out_ctx && srv->cfg.node_name) {
        st->node_in_ctx = s2s_tls_server_ctx(&srv->cfg, 0, err, sizeof err);
        if (st->node_in_ctx)
            st->node_out_ctx = s2s_tls_client_ctx(&srv->cfg, 0, err, sizeof err);
        if (!st->node_out_ctx) {
            log_error("node links: %s", err);
            return -1;
        }
    }
    if (!st->out_ctx) {
        log_error("server links: %s", err);
        return -1;
    }
    return 0;
}

int s2s_allowed(server *srv, const char *domain)
{
    if (!srv->s2s || !domain)
        return 0;
    if (config_domain_listed(srv->cfg.s2s_deny, domain))
        return 0;
    return !srv->cfg.s2s_allow || config_domain_listed(srv->cfg.s2s_allow, domain);
}

/* ---- links ---- */

static void on_data(void *ud, const char *data, size_t len);
static void on_tls_ready(void *ud);
static void on_close(void *ud, const char *reason);
static const conn_handlers link_conn_handlers = {on_data, on_tls_ready, on_close};

s2s_link *s2s_link_new(server *srv, int outbound)
{
    s2s_link *l = xcalloc(1, sizeof *l);
    l->srv = srv;
    l->outbound = outbound;
    l->created_ms = l->last_used_ms = l->last_input_ms = time_mono_ms();
    l->xs = xmlstream_new(outbound ? &s2s_out_xs_handlers : &s2s_in_xs_handlers, l,
                          srv->cfg.max_stanza_size);
    s2s *st = state(srv);
    l->next = st->links;
    if (st->links)
        st->links->prev = l;
    st->links = l;
    return l;
}

/* Unlink and free (the connection, if any, is gone or going). */
static void link_free(s2s_link *l)
{
    s2s *st = state(l->srv);
    if (l->prev)
        l->prev->next = l->next;
    else
        st->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    for (queued *q = l->queue, *n; q; q = n) {
        n = q->next;
        xml_free(q->stanza);
        free(q);
    }
    xmlstream_free(l->xs);
    free(l->remote);
    free(l->pre_tls_from);
    if (l->db_key)
        secure_wipe(l->db_key, strlen(l->db_key));
    free(l->db_key);
    free(l);
}

const conn_handlers *s2s_conn_handlers(void) { return &link_conn_handlers; }

s2s_link *s2s_find_out(server *srv, const char *remote, int node)
{
    for (s2s_link *l = state(srv)->links; l; l = l->next)
        if (l->outbound && l->node == node && !l->failed && strcmp(l->remote, remote) == 0 &&
            !(l->conn && conn_is_closing(l->conn)))
            return l;
    return NULL;
}

void s2s_accept(server *srv, int fd, const char *peer)
{
    s2s_link *l = s2s_link_new(srv, 0);
    l->state = L_STREAM_START;
    l->conn = conn_new(srv, fd, peer, &link_conn_handlers, l);
    if (!l->conn) {
        link_free(l);
        return;
    }
    log_debug("s2s %s: connected", peer);
}

/* ---- output ---- */

static void rename_ns(xml_node *n, const char *from, const char *to)
{
    if (!n->name || !str_eq(n->ns, from))
        return;
    free(n->ns);
    n->ns = xstrdup(to);
    for (xml_node *ch = n->children; ch; ch = ch->next)
        rename_ns(ch, from, to);
}

void s2s_write_str(s2s_link *l, const char *text)
{
    conn_write(l->conn, text, strlen(text));
}

void s2s_write_stanza(s2s_link *l, xml_node *stanza)
{
    rename_ns(stanza, XMLNS_CLIENT, XMLNS_SERVER);
    buf out;
    buf_init(&out);
    xml_serialize(stanza, XMLNS_SERVER, &out);
    conn_write(l->conn, out.data, out.len);
    buf_free(&out);
    rename_ns(stanza, XMLNS_SERVER, XMLNS_CLIENT);
    l->last_used_ms = time_mono_ms();
}

void s2s_send_header(s2s_link *l, const char *from, const char *to, int with_id)
{
    buf out;
    buf_init(&out);
    buf_append_str(&out, "<?xml version='1.0'?><stream:stream xmlns='" XMLNS_SERVER
                         "' xmlns:stream='" XMLNS_STREAM "' xmlns:db='" XMLNS_DIALBACK
                         "' version='1.0' xml:lang='en'");
    if (with_id) {
        random_token(l->stream_id, S2S_STREAM_ID_LEN);
        buf_append_str(&out, " id='");
        buf_append_str(&out, l->stream_id);
        buf_append_str(&out, "'");
    }
    buf_append_str(&out, " from='");
    buf_append_xml_escaped(&out, from, strlen(from), 1);
    buf_append_str(&out, "'");
    if (to) {
        buf_append_str(&out, " to='");
        buf_append_xml_escaped(&out, to, strlen(to), 1);
        buf_append_str(&out, "'");
    }
    buf_append_str(&out, ">");
    conn_write(l->conn, out.data, out.len);
    buf_free(&out);
    l->stream_open = 1;
}

static const char *link_name(const s2s_link *l)
{
    return l->remote ? l->remote : l->pre_tls_from ? l->pre_tls_from : "?";
}

void s2s_stream_error(s2s_link *l, const char *condition, const char *text)
{
    if (!l->conn || conn_is_closing(l->conn))
        return;
    if (!l->stream_open)
        s2s_send_header(l, l->srv->cfg.domain, NULL, !l->outbound);
    xml_node *err = xml_new(XMLNS_STREAM, "error");
    xml_add_child(err, XMLNS_STREAMS, condition);
    if (text) {
        xml_node *t = xml_add_child(err, XMLNS_STREAMS, "text");
        xml_set_attr(t, "xml:lang", "en");
        xml_add_text(t, text, strlen(text));
    }
    buf out;
    buf_init(&out);
    xml_serialize(err, XMLNS_SERVER, &out);
    buf_append_str(&out, "</stream:stream>");
    conn_write(l->conn, out.data, out.len);
    buf_free(&out);
    xml_free(err);
    log_warn("s2s %s %s %s: stream error <%s/>%s%s", l->node ? "node" : l->outbound ? "out" : "in",
             conn_peer(l->conn), link_name(l), condition, text ? ": " : "", text ? text : "");
    if (l->outbound && !l->failed) {
        char why[300];
        snprintf(why, sizeof why, "the link to %s failed: %s", link_name(l),
                 text ? text : condition);
        s2s_link_fail(l, "remote-server-not-found", why);
    }
    conn_close_after_flush(l->conn, condition);
}

/* ---- outbound queue ---- */

static void bounce(server *srv, xml_node *stanza, const char *condition, const char *text)
{
    const char *type = xml_get_attr(stanza, "type");
    /* Presence (other than subscription requests) is never bounced: a contact's server
     * being away is normal, and unavailable presence has nobody to tell. */
    if (strcmp(stanza->name, "presence") != 0 || str_eq(type, "subscribe"))
        router_bounce(srv, stanza, "cancel", condition, text);
    xml_free(stanza);
}

void s2s_link_fail(s2s_link *l, const char *condition, const char *reason)
{
    if (!l->failed) {
        l->failed = 1;
        snprintf(l->fail_text, sizeof l->fail_text, "%s", reason);
        log_warn("s2s out %s: failed: %s", link_name(l), reason);
    }
    reason = l->fail_text;
    queued *q = l->queue;
    l->queue = l->queue_tail = NULL;
    l->nqueued = 0;
    while (q) {
        queued *n = q->next;
        if (l->node)
            node_undeliverable(l->srv, q->stanza);
        else
            bounce(l->srv, q->stanza, condition, reason);
        free(q);
        q = n;
    }
}

static void enqueue(s2s_link *l, xml_node *stanza)
{
    if (l->nqueued >= l->srv->cfg.s2s_max_queue) {
        bounce(l->srv, stanza, "remote-server-timeout",
               "too many stanzas are waiting for the link to the remote server");
        return;
    }
    queued *q = xcalloc(1, sizeof *q);
    q->stanza = stanza;
    if (l->queue_tail)
        l->queue_tail->next = q;
    else
        l->queue = q;
    l->queue_tail = q;
    l->nqueued++;
}

void s2s_link_send(server *srv, const char *remote, int node, xml_node *stanza)
{
    s2s_link *l = s2s_find_out(srv, remote, node);
    if (!l && srv->nconns >= srv->cfg.max_connections) {
        /* Outbound links count against the same limit as everything else. */
        if (node)
            node_undeliverable(srv, stanza);
        else
            bounce(srv, stanza, "remote-server-timeout",
                   "this server has too many connections open to link to another");
        return;
    }
    if (!l) {
        l = s2s_link_new(srv, 1);
        l->node = node;
        l->remote = xstrdup(remote);
        enqueue(l, stanza);
        if (s2s_out_start(l) < 0) /* the queue was bounced */
            link_free(l);
        return;
    }
    /* A dialback verification may use a link that is itself waiting for dialback (once
     * our key is sent): otherwise two servers verifying each other would wait forever. */
    if (l->state == L_READY || (l->state == L_WAIT_DIALBACK && str_eq(stanza->ns, XMLNS_DIALBACK))) {
        s2s_write_stanza(l, stanza);
        xml_free(stanza);
    } else {
        enqueue(l, stanza);
    }
}

void s2s_flush_dialback(s2s_link *l)
{
    queued **p = &l->queue;
    l->queue_tail = NULL;
    while (*p) {
        queued *q = *p;
        if (str_eq(q->stanza->ns, XMLNS_DIALBACK)) {
            s2s_write_stanza(l, q->stanza);
            xml_free(q->stanza);
            *p = q->next;
            free(q);
            l->nqueued--;
        } else {
            l->queue_tail = q;
            p = &q->next;
        }
    }
}

void s2s_send(server *srv, xml_node *stanza)
{
    jid to;
    if (jid_parse(xml_get_attr(stanza, "to") ? xml_get_attr(stanza, "to") : "", &to) < 0) {
        xml_free(stanza);
        return;
    }
    if (!srv->s2s) {
        bounce(srv, stanza, "remote-server-not-found",
               "this server does not federate with other domains");
    } else if (!s2s_allowed(srv, to.domain)) {
        bounce(srv, stanza, "remote-server-not-found",
               "federation with that domain is not allowed by this server's policy");
    } else {
        s2s_link_send(srv, to.domain, 0, stanza);
    }
    jid_clear(&to);
}

void s2s_node_send(server *srv, const char *node, xml_node *stanza)
{
    if (!srv->s2s) {
        node_undeliverable(srv, stanza);
        return;
    }
    s2s_link_send(srv, node, 1, stanza);
}

void s2s_link_ready(s2s_link *l)
{
    server *srv = l->srv;
    l->state = L_READY;
    l->last_used_ms = time_mono_ms();
    const char *how = l->secure ? "certificate (SASL EXTERNAL)" : "dialback";
    char desc[128];
    tls_describe(conn_ssl(l->conn), desc, sizeof desc);
    log_info("s2s %s %s %s: authenticated by %s over %s", l->node ? "node" : "domain",
             l->outbound ? "out to" : "in from", l->remote, how, desc);
    compliance_audit(srv, l->remote, l->outbound ? "s2s-out-connect" : "s2s-in-connect",
                     l->remote, conn_peer(l->conn), how);
    if (l->node)
        node_link_up(srv, l->remote, l->outbound);
    if (l->outbound) {
        queued *q = l->queue;
        l->queue = l->queue_tail = NULL;
        l->nqueued = 0;
        while (q) {
            queued *n = q->next;
            s2s_write_stanza(l, q->stanza);
            xml_free(q->stanza);
            free(q);
            q = n;
        }
        return;
    }
    /* One inbound stream per peer: a newer one replaces the older (RFC 6120 4.2). */
    for (s2s_link *o = state(srv)->links; o; o = o->next)
        if (o != l && !o->outbound && o->node == l->node && o->state == L_READY &&
            o->remote && strcmp(o->remote, l->remote) == 0)
            s2s_stream_error(o, "conflict", "replaced by a new stream from the same server");
}

/* ---- inbound stanzas ---- */

void s2s_route_inbound(s2s_link *l, xml_node *stanza)
{
    server *srv = l->srv;
    rename_ns(stanza, XMLNS_SERVER, XMLNS_CLIENT);
    l->last_used_ms = time_mono_ms();
    if (l->node)
        node_from_link(srv, l->remote, stanza);
    else
        router_from_remote(srv, stanza);
}

/* ---- connection events ---- */

void s2s_feed(s2s_link *l, const char *data, size_t len)
{
    switch (xmlstream_feed(l->xs, data, len)) {
    case XS_OK:
    case XS_STOPPED:
    case XS_RESTARTED:
        return;
    case XS_ERR_XML:
        s2s_stream_error(l, "not-well-formed", xmlstream_error_text(l->xs));
        return;
    case XS_ERR_RESTRICTED:
        s2s_stream_error(l, "restricted-xml", xmlstream_error_text(l->xs));
        return;
    case XS_ERR_TOO_BIG:
        s2s_stream_error(l, "policy-violation", xmlstream_error_text(l->xs));
        return;
    case XS_ERR_BAD_NS:
        s2s_stream_error(l, "invalid-namespace", xmlstream_error_text(l->xs));
        return;
    }
}

static void on_data(void *ud, const char *data, size_t len)
{
    s2s_link *l = ud;
    l->last_input_ms = time_mono_ms();
    s2s_feed(l, data, len);
}

static void on_tls_ready(void *ud)
{
    s2s_link *l = ud;
    l->tls = 1;
    xmlstream_reset(l->xs);
    l->stream_open = 0;
    if (l->outbound) {
        /* RFC 6120 5.4.3.3: the initiating entity opens a new stream over TLS. */
        s2s_send_header(l, l->srv->cfg.domain, l->node ? l->srv->cfg.domain : l->remote, 0);
    }
    l->state = L_STREAM_START;
}

static void on_close(void *ud, const char *reason)
{
    s2s_link *l = ud;
    server *srv = l->srv;
    log_info("s2s %s %s %s: closed: %s", l->node ? "node" : "domain",
             l->outbound ? "out to" : "in from", link_name(l), reason);
    l->conn = NULL;
    if (l->state == L_READY)
        compliance_audit(srv, l->remote, l->outbound ? "s2s-out-disconnect" : "s2s-in-disconnect",
                         l->remote, NULL, reason);
    if (l->outbound && l->state != L_READY && !l->failed &&
        l->next_target < l->ntargets) {
        /* Not up yet: the next target (SRV order) may do better. */
        if (s2s_out_start(l) == 0)
            return;
    }
    if (l->outbound && (l->queue || !l->failed)) {
        char why[300];
        snprintf(why, sizeof why, "%s the server of %s: %s",
                 l->state == L_READY ? "lost the link to" : "could not connect to",
                 link_name(l), reason);
        s2s_link_fail(l, l->state == L_READY ? "remote-server-timeout" : "remote-server-not-found",
                      why);
    }
    if (l->node)
        node_link_down(srv, l->remote, l->outbound);
    link_free(l);
}

/* ---- timers and shutdown ---- */

void s2s_housekeeping(server *srv)
{
    if (!srv->s2s)
        return;
    int64_t now = time_mono_ms();
    int64_t handshake_ms = (int64_t)srv->cfg.handshake_timeout * 1000;
    int64_t idle_ms = (int64_t)srv->cfg.s2s_idle_timeout * 1000;
    for (s2s_link *l = state(srv)->links, *next; l; l = next) {
        next = l->next;
        if (!l->conn || conn_is_closing(l->conn))
            continue;
        if (l->state != L_READY) {
            if (now - l->created_ms > handshake_ms) {
                if (l->outbound)
                    s2s_link_fail(l, "remote-server-timeout",
                                  "the remote server did not complete the handshake in time");
                if (conn_in_handshake(l->conn) || l->state == L_CONNECTING)
                    conn_close(l->conn, "handshake timed out");
                else
                    s2s_stream_error(l, "connection-timeout", "the handshake took too long");
            }
            continue;
        }
        /* Node links stay up: they carry the cluster's own traffic. */
        if (!l->node && now - l->last_used_ms > idle_ms) {
            if (l->outbound)
                s2s_write_str(l, "</stream:stream>");
            conn_close_after_flush(l->conn, "idle");
        } else if (now - l->last_input_ms > idle_ms && !l->outbound) {
            s2s_stream_error(l, "connection-timeout", "idle");
        } else if (l->outbound && now - l->last_input_ms > 60000) {
            s2s_write_str(l, " "); /* RFC 6120 4.6.1: whitespace keepalive */
            l->last_input_ms = now;
        }
    }
}

void s2s_shutdown_all(server *srv)
{
    if (!srv->s2s)
        return;
    for (s2s_link *l = state(srv)->links; l; l = l->next) {
        if (l->outbound)
            s2s_link_fail(l, "remote-server-timeout", "the server is shutting down");
        if (l->conn)
            s2s_stream_error(l, "system-shutdown", "the server is shutting down");
    }
    conn_flush_all(srv);
    for (s2s_link *l = state(srv)->links; l; l = l->next)
        if (l->conn)
            conn_close(l->conn, "server shutdown");
    conn_flush_all(srv);
}

void s2s_free(server *srv)
{
    s2s *st = srv->s2s;
    if (!st)
        return;
    while (st->links)
        link_free(st->links); /* only links without a connection are left */
    SSL_CTX_free(st->in_ctx);
    SSL_CTX_free(st->out_ctx);
    SSL_CTX_free(st->node_in_ctx);
    SSL_CTX_free(st->node_out_ctx);
    secure_wipe(st->dialback_secret, sizeof st->dialback_secret);
    free(st);
    srv->s2s = NULL;
}
