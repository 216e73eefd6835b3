/* component.c - XEP-0114 component streams (component.h): header, handshake, then
 * stanzas both ways between the component and the router.
 *
 * Inside the server every stanza is in jabber:client; a component stream speaks
 * jabber:component:accept. The stanza element and the children that inherit its
 * namespace are renamed at the stream boundary, in both directions, so the rest of the
 * server never sees the difference. */
#include "component.h"
#include "../common/buf.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/xmlstream.h"
#include "authlimit.h"
#include "compliance.h"
#include "conn.h"
#include "iq_out.h"
#include "message.h"
#include "router.h"
#include "stanza.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* SHA-1 in lowercase hex: the XEP-0114 handshake value. */
#define HANDSHAKE_LEN 40
/* Stream id length: 32 characters of [A-Za-z0-9] from the CSPRNG (190 bits), so a
 * recorded handshake can never be replayed on another stream. */
#define STREAM_ID_LEN 32

typedef enum {
    COMP_STREAM_START,    /* waiting for the stream header */
    COMP_WAIT_HANDSHAKE,  /* header accepted: only <handshake/> is acceptable */
    COMP_READY,           /* authenticated, the domain is routed here */
} comp_state;

typedef struct component {
    server *srv;
    struct conn *conn;
    xmlstream *xs;
    comp_state state;
    int stream_open;           /* our header was sent */
    int tls;                   /* direct TLS */
    char stream_id[STREAM_ID_LEN + 1];
    char *domain;              /* the configured component named in the header's 'to' */
    int registered;            /* domain in the router's service table */
    int64_t connected_ms;
    int64_t last_input_ms;
    int ping_outstanding;
    struct component *prev, *next;
} component;

static void on_data(void *ud, const char *data, size_t len);
static void on_tls_ready(void *ud);
static void on_close(void *ud, const char *reason);
static xs_action on_stream_open(void *ud, const xml_node *root);
static xs_action on_stanza(void *ud, xml_node *stanza);
static xs_action on_stream_close(void *ud);

static const conn_handlers comp_conn_handlers = {on_data, on_tls_ready, on_close};
static const xmlstream_handlers comp_xs_handlers = {on_stream_open, on_stanza, on_stream_close};

void component_accept(server *srv, int fd, const char *peer, int tls)
{
    component *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->tls = tls;
    c->connected_ms = c->last_input_ms = time_mono_ms();
    c->conn = conn_new(srv, fd, peer, &comp_conn_handlers, c);
    if (!c->conn) {
        free(c);
        return;
    }
    c->xs = xmlstream_new(&comp_xs_handlers, c, srv->cfg.max_stanza_size);
    c->next = srv->components;
    if (srv->components)
        srv->components->prev = c;
    srv->components = c;
    if (tls && conn_start_tls(c->conn, srv->tls_ctx) < 0)
        conn_close(c->conn, "TLS setup failed");
    log_debug("component %s: connected%s", peer, tls ? " (direct TLS)" : " (plain)");
}

/* ---- output ---- */

/* Rename the stanza element and the descendants that inherit its namespace. */
static void rename_ns(xml_node *n, const char *from, const char *to)
{
    if (!n->name || !str_eq(n->ns, from))
        return;
    free(n->ns);
    n->ns = xstrdup(to);
    for (xml_node *ch = n->children; ch; ch = ch->next)
        rename_ns(ch, from, to);
}

/* Write stanza (jabber:client inside the server) into the component stream. The stanza
 * is changed (renamed), not consumed. */
static void send_stanza(component *c, xml_node *stanza)
{
    rename_ns(stanza, XMLNS_CLIENT, XMLNS_COMPONENT);
    buf out;
    buf_init(&out);
    xml_serialize(stanza, XMLNS_COMPONENT, &out);
    conn_write(c->conn, out.data, out.len);
    buf_free(&out);
    rename_ns(stanza, XMLNS_COMPONENT, XMLNS_CLIENT);
}

static void write_str(component *c, const char *text)
{
    conn_write(c->conn, text, strlen(text));
}

static void send_stream_header(component *c)
{
    random_token(c->stream_id, STREAM_ID_LEN);
    const char *from = c->domain ? c->domain : c->srv->cfg.domain;
    buf out;
    buf_init(&out);
    buf_append_str(&out, "<?xml version='1.0'?><stream:stream xmlns='" XMLNS_COMPONENT
                         "' xmlns:stream='" XMLNS_STREAM "' id='");
    buf_append_str(&out, c->stream_id);
    buf_append_str(&out, "' from='");
    buf_append_xml_escaped(&out, from, strlen(from), 1);
    buf_append_str(&out, "'>");
    conn_write(c->conn, out.data, out.len);
    buf_free(&out);
    c->stream_open = 1;
}

static void stream_error(component *c, const char *condition, const char *text)
{
    if (conn_is_closing(c->conn))
        return;
    if (!c->stream_open) /* RFC 6120 4.9.1.1: the error goes inside our own header */
        send_stream_header(c);
    xml_node *err = xml_new(XMLNS_STREAM, "error");
    xml_add_child(err, XMLNS_STREAMS, condition);
    if (text) {
        xml_node *t = xml_add_child(err, XMLNS_STREAMS, "text");
        xml_set_attr(t, "xml:lang", "en");
        xml_add_text(t, text, strlen(text));
    }
    buf out;
    buf_init(&out);
    xml_serialize(err, XMLNS_COMPONENT, &out);
    buf_append_str(&out, "</stream:stream>");
    conn_write(c->conn, out.data, out.len);
    buf_free(&out);
    xml_free(err);
    log_info("component %s%s%s: stream error <%s/>%s%s", conn_peer(c->conn),
             c->domain ? " " : "", c->domain ? c->domain : "", condition, text ? ": " : "",
             text ? text : "");
    conn_close_after_flush(c->conn, condition);
}

static component *find_ready(server *srv, const char *domain)
{
    for (component *c = srv->components; c; c = c->next)
        if (c->registered && !conn_is_closing(c->conn) && strcmp(c->domain, domain) == 0)
            return c;
    return NULL;
}

/* A held message to a component, released after its record committed: the component
 * may have gone meanwhile. */
static void release_to_component(server *srv, xml_node *stanza, void *ud)
{
    char *domain = ud;
    component *c = find_ready(srv, domain);
    if (c)
        send_stanza(c, stanza);
    else
        router_bounce(srv, stanza, "cancel", "service-unavailable",
                      "the component is not connected");
    xml_free(stanza);
    free(domain);
}

/* Is this a message an account of this server sent? */
static int from_local_account(server *srv, const xml_node *stanza)
{
    jid f;
    if (jid_parse(xml_get_attr(stanza, "from") ? xml_get_attr(stanza, "from") : "", &f) < 0)
        return 0;
    int local = f.local && router_is_local_domain(srv, f.domain);
    jid_clear(&f);
    return local;
}

/* The router's deliver function for the component's domain. Messages with content from
 * the server's users are recorded (and judged) like messages between users: a component
 * may be a gateway out of the organisation. */
static void deliver(server *srv, void *ud, xml_node *stanza)
{
    component *c = ud;
    if (conn_is_closing(c->conn)) {
        /* Going away, not yet reaped: say so rather than queue into a closing stream. */
        const char *type = xml_get_attr(stanza, "type");
        if (strcmp(stanza->name, "presence") != 0 && !str_eq(type, "result") &&
            !str_eq(type, "error"))
            router_bounce(srv, stanza, "cancel", "service-unavailable",
                          "the component is disconnecting");
        xml_free(stanza);
        return;
    }
    if (strcmp(stanza->name, "message") == 0 && compliance_enabled(srv) &&
        from_local_account(srv, stanza)) {
        int record = compliance_wants(stanza);
        if (record || compliance_pending(srv)) {
            compliance_hold(srv, stanza, xml_get_attr(stanza, "to"), record ? "delivered" : NULL,
                            NULL, release_to_component, xstrdup(c->domain), free);
            return;
        }
    }
    send_stanza(c, stanza);
    xml_free(stanza);
}

/* ---- input ---- */

static xs_action on_stream_open(void *ud, const xml_node *root)
{
    component *c = ud;
    if (!str_eq(xml_get_attr(root, "xmlns"), XMLNS_COMPONENT)) {
        stream_error(c, "invalid-namespace", "this port serves jabber:component:accept streams");
        return XS_STOP;
    }
    const char *to = xml_get_attr(root, "to");
    char *domain = to ? jid_normalize(to) : NULL;
    if (!domain || !config_find_component(&c->srv->cfg, domain)) {
        free(domain);
        stream_error(c, "host-unknown", "no component is configured for that domain");
        return XS_STOP;
    }
    c->domain = domain;
    send_stream_header(c);
    c->state = COMP_WAIT_HANDSHAKE;
    return XS_CONTINUE;
}

static void address_key(component *c, char *out, size_t outlen)
{
    /* conn_peer is "IP:port" or "[IPv6]:port"; a key space apart from the clients', so a
     * misconfigured component does not lock users out. */
    const char *peer = conn_peer(c->conn);
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    snprintf(out, outlen, "component-addr:%.*s", (int)n, peer);
}

/* hex(SHA-1(stream id || secret)) into out (HANDSHAKE_LEN + 1). Returns 0 or -1. */
static int expected_handshake(const component *c, const char *secret, char *out)
{
    size_t idlen = strlen(c->stream_id), slen = strlen(secret);
    unsigned char *in = xmalloc(idlen + slen);
    memcpy(in, c->stream_id, idlen);
    memcpy(in + idlen, secret, slen);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(in, idlen + slen, md, &mdlen, EVP_sha1(), NULL) == 1 && mdlen == 20;
    secure_wipe(in, idlen + slen);
    free(in);
    if (!ok)
        return -1;
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 20; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[HANDSHAKE_LEN] = '\0';
    secure_wipe(md, sizeof md);
    return 0;
}

/* Does the handshake text match? Length first (it is public), then the bytes in
 * constant time; hex letters are accepted in either case. */
static int handshake_matches(const component *c, const char *secret, const char *given)
{
    char want[HANDSHAKE_LEN + 1], got[HANDSHAKE_LEN];
    if (strlen(given) != HANDSHAKE_LEN || expected_handshake(c, secret, want) < 0)
        return 0;
    for (size_t i = 0; i < HANDSHAKE_LEN; i++) {
        char ch = given[i];
        got[i] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
    }
    int same = CRYPTO_memcmp(want, got, HANDSHAKE_LEN) == 0;
    secure_wipe(want, sizeof want);
    return same;
}

static xs_action handle_handshake(component *c, xml_node *stanza)
{
    server *srv = c->srv;
    char key[96];
    address_key(c, key, sizeof key);
    if (!xml_is(stanza, XMLNS_COMPONENT, "handshake")) {
        xml_free(stanza);
        stream_error(c, "not-authorized", "send the handshake first");
        return XS_STOP;
    }
    char *given = xml_text(stanza);
    xml_free(stanza);
    const config_component *cc = config_find_component(&srv->cfg, c->domain);
    if (authlimit_blocked(srv->authlimit, key)) {
        free(given);
        stream_error(c, "not-authorized", "too many failed handshakes from this address; "
                                          "try again later");
        return XS_STOP;
    }
    int ok = cc && handshake_matches(c, cc->secret, given);
    free(given);
    if (!ok) {
        authlimit_failed(srv->authlimit, key);
        compliance_audit(srv, NULL, "component-auth-failure", c->domain, conn_peer(c->conn),
                         "handshake: not-authorized");
        stream_error(c, "not-authorized", "wrong handshake");
        return XS_STOP;
    }
    /* Checked after the secret: only the holder of the secret learns that its domain is
     * connected already. The first connection stays. */
    if (router_is_service(srv, c->domain) || router_add_service(srv, c->domain, deliver, c) < 0) {
        stream_error(c, "conflict", "this component is connected already");
        return XS_STOP;
    }
    c->registered = 1;
    c->state = COMP_READY;
    write_str(c, "<handshake/>");
    log_info("component %s: %s connected (%s)", conn_peer(c->conn), c->domain,
             c->tls ? "TLS" : "plain, loopback");
    compliance_audit(srv, c->domain, "component-connect", c->domain, conn_peer(c->conn),
                     c->tls ? "tls" : "plain");
    return XS_CONTINUE;
}

/* A stanza from an authenticated component: checked addresses, then into the router. */
static xs_action stanza_while_ready(component *c, xml_node *stanza)
{
    server *srv = c->srv;
    if (!stanza_is_routable(stanza) ||
        !(str_eq(stanza->ns, XMLNS_COMPONENT) || str_eq(stanza->ns, XMLNS_CLIENT))) {
        xml_free(stanza);
        stream_error(c, "unsupported-stanza-type", NULL);
        return XS_STOP;
    }
    const char *from_attr = xml_get_attr(stanza, "from");
    const char *to_attr = xml_get_attr(stanza, "to");
    if (!from_attr || !to_attr) {
        xml_free(stanza);
        stream_error(c, "improper-addressing", "a component's stanza needs 'from' and 'to'");
        return XS_STOP;
    }
    jid from;
    if (jid_parse(from_attr, &from) < 0 || strcmp(from.domain, c->domain) != 0) {
        if (from.domain)
            jid_clear(&from);
        xml_free(stanza);
        stream_error(c, "invalid-from", "'from' must be an address in the component's domain");
        return XS_STOP;
    }
    rename_ns(stanza, XMLNS_COMPONENT, XMLNS_CLIENT);
    char *norm = jid_full(&from);
    xml_set_attr(stanza, "from", norm);
    free(norm);
    jid_clear(&from);

    jid to;
    if (jid_parse(to_attr, &to) < 0) {
        router_bounce(srv, stanza, "modify", "jid-malformed", "the 'to' address is not a valid JID");
        xml_free(stanza);
        return XS_CONTINUE;
    }
    norm = jid_full(&to);
    xml_set_attr(stanza, "to", norm);
    free(norm);
    if (strcmp(stanza->name, "message") == 0 && to.local && router_is_local_domain(srv, to.domain)) {
        /* To a user: recorded, judged and delivered exactly like a user's message. */
        char *bare = jid_bare(&to);
        message_to_local(srv, stanza, bare, to.resource);
        free(bare);
    } else {
        router_send(srv, stanza);
    }
    jid_clear(&to);
    return conn_is_closing(c->conn) ? XS_STOP : XS_CONTINUE;
}

static xs_action on_stanza(void *ud, xml_node *stanza)
{
    component *c = ud;
    switch (c->state) {
    case COMP_STREAM_START:
        xml_free(stanza);
        stream_error(c, "not-well-formed", "stanza before the stream header");
        return XS_STOP;
    case COMP_WAIT_HANDSHAKE:
        return handle_handshake(c, stanza);
    case COMP_READY:
        return stanza_while_ready(c, stanza);
    }
    xml_free(stanza);
    return XS_STOP;
}

static xs_action on_stream_close(void *ud)
{
    component *c = ud;
    write_str(c, "</stream:stream>");
    conn_close_after_flush(c->conn, "component closed the stream");
    return XS_STOP;
}

static void on_data(void *ud, const char *data, size_t len)
{
    component *c = ud;
    c->last_input_ms = time_mono_ms();
    c->ping_outstanding = 0;
    switch (xmlstream_feed(c->xs, data, len)) {
    case XS_OK:
    case XS_STOPPED:
    case XS_RESTARTED:
        return;
    case XS_ERR_XML:
        stream_error(c, "not-well-formed", xmlstream_error_text(c->xs));
        return;
    case XS_ERR_RESTRICTED:
        stream_error(c, "restricted-xml", xmlstream_error_text(c->xs));
        return;
    case XS_ERR_TOO_BIG:
        stream_error(c, "policy-violation", xmlstream_error_text(c->xs));
        return;
    case XS_ERR_BAD_NS:
        stream_error(c, "invalid-namespace", xmlstream_error_text(c->xs));
        return;
    }
}

static void on_tls_ready(void *ud)
{
    component *c = ud;
    xmlstream_reset(c->xs);
    c->stream_open = 0;
    c->state = COMP_STREAM_START;
}

static void on_close(void *ud, const char *reason)
{
    component *c = ud;
    server *srv = c->srv;
    log_info("component %s%s%s: closed: %s", conn_peer(c->conn), c->domain ? " " : "",
             c->domain ? c->domain : "", reason);
    if (c->registered) {
        router_remove_service(srv, c->domain);
        compliance_audit(srv, c->domain, "component-disconnect", c->domain, conn_peer(c->conn),
                         reason);
        /* Requests to it (verdicts) fail now rather than at their time-out. */
        iq_out_fail_to(srv, c->domain);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->components = c->next;
    if (c->next)
        c->next->prev = c->prev;
    xmlstream_free(c->xs);
    free(c->domain);
    free(c);
}

void component_housekeeping(server *srv)
{
    int64_t now = time_mono_ms();
    int64_t handshake_ms = (int64_t)srv->cfg.handshake_timeout * 1000;
    int64_t idle_ms = (int64_t)srv->cfg.idle_timeout * 1000;
    for (component *c = srv->components; c; c = c->next) {
        if (conn_is_closing(c->conn))
            continue;
        if (c->state != COMP_READY) {
            if (now - c->connected_ms > handshake_ms) {
                if (conn_in_handshake(c->conn))
                    conn_close(c->conn, "TLS handshake timed out");
                else
                    stream_error(c, "connection-timeout", "the handshake took too long");
            }
            continue;
        }
        if (now - c->last_input_ms <= idle_ms)
            continue;
        if (!c->ping_outstanding) {
            /* Any answer (even an error) is input and proves the component alive. */
            c->ping_outstanding = 1;
            c->last_input_ms = now - idle_ms + handshake_ms;
            xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
            xml_set_attr(iq, "type", "get");
            xml_set_attr(iq, "id", "component-idle-ping");
            xml_set_attr(iq, "from", srv->cfg.domain);
            xml_set_attr(iq, "to", c->domain);
            xml_add_child(iq, XMLNS_PING, "ping");
            send_stanza(c, iq);
            xml_free(iq);
        } else {
            stream_error(c, "connection-timeout", "no answer to ping");
        }
    }
}

void component_shutdown_all(server *srv)
{
    for (component *c = srv->components; c; c = c->next)
        stream_error(c, "system-shutdown", "the server is shutting down");
    conn_flush_all(srv);
    for (component *c = srv->components; c; c = c->next)
        conn_close(c->conn, "server shutdown");
    conn_flush_all(srv);
}
