/* s2s_in.c - the inbound side of a server link: the peer's stream header (namespace,
 * our domain, its domain against the allow and deny lists), mandatory STARTTLS with a
 * request for the peer's certificate, SASL EXTERNAL when that certificate is valid for
 * the domain it claims (or for a known node's name), dialback only where allowed; then
 * stanzas whose 'from' must be in the authenticated domain. */
#include "s2s_internal.h"
#include "../common/base64.h"
#include "../common/jid.h"
#include "../common/log.h"
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

static int dialback_allowed(const s2s_link *l)
{
    return !l->node && l->srv->cfg.s2s_dialback && !l->srv->cfg.s2s_secure;
}

/* Is domain one this server answers for on server links (ours or a service's)? */
static int serves(server *srv, const char *domain)
{
    return router_is_local_domain(srv, domain) || router_is_service(srv, domain);
}

static void send_features(s2s_link *l)
{
    server *srv = l->srv;
    xml_node *f = xml_new(XMLNS_STREAM, "features");
    if (!l->tls) {
        xml_node *tls = xml_add_child(f, XMLNS_TLS, "starttls");
        xml_add_child(tls, NULL, "required");
        l->state = L_WAIT_TLS;
    } else if (!l->authed) {
        char why[256];
        /* A node names itself in SASL; its certificate is checked against that name. */
        int valid = l->node ? 1 : s2s_tls_peer_valid(conn_ssl(l->conn), l->remote, why,
                                                     sizeof why) == 0;
        if (valid) {
            xml_node *m = xml_add_child(f, XMLNS_SASL, "mechanisms");
            xml_node *mech = xml_add_child(m, NULL, "mechanism");
            xml_add_text(mech, "EXTERNAL", 8);
        } else if (dialback_allowed(l)) {
            xml_node *db = xml_add_child(f, XMLNS_DIALBACK_FEATURE, "dialback");
            xml_add_child(db, NULL, "errors");
        } else {
            xml_free(f);
            char text[400];
            snprintf(text, sizeof text, "%s; this server accepts only certificates valid for "
                                        "the sending domain", why);
            compliance_audit(srv, l->remote, "s2s-auth-failure", l->remote, conn_peer(l->conn),
                             text);
            s2s_stream_error(l, "not-authorized", text);
            return;
        }
        l->state = L_WAIT_AUTH;
    } else {
        xml_free(f);
        s2s_write_str(l, "<stream:features/>");
        s2s_link_ready(l);
        return;
    }
    s2s_write_stanza(l, f);
    xml_free(f);
}

static xs_action on_stream_open(void *ud, const xml_node *root)
{
    s2s_link *l = ud;
    server *srv = l->srv;
    const char *to = xml_get_attr(root, "to");
    char *local = to ? jid_normalize(to) : NULL;
    /* Answer as the domain asked for, so that the error is in the right stream. */
    s2s_send_header(l, local && serves(srv, local) ? local : srv->cfg.domain,
                    xml_get_attr(root, "from"), 1);
    if (!str_eq(xml_get_attr(root, "xmlns"), XMLNS_SERVER)) {
        free(local);
        s2s_stream_error(l, "invalid-namespace", "this port serves jabber:server streams");
        return XS_STOP;
    }
    const char *version = xml_get_attr(root, "version");
    if (!version || strncmp(version, "1.", 2) != 0) {
        free(local);
        s2s_stream_error(l, "unsupported-version", "XMPP 1.0 streams (STARTTLS) are required");
        return XS_STOP;
    }
    int ours = local && serves(srv, local);
    free(local);
    if (!ours) {
        s2s_stream_error(l, "host-unknown", "this server does not serve that domain");
        return XS_STOP;
    }
    const char *from_attr = xml_get_attr(root, "from");
    char *from = from_attr ? jid_normalize(from_attr) : NULL;
    if (!from || strchr(from, '@') || strchr(from, '/')) {
        free(from);
        s2s_stream_error(l, "improper-addressing", "the stream header needs the sending "
                                                   "domain in 'from'");
        return XS_STOP;
    }
    if (l->authed) {
        /* After SASL: the same peer, or nothing. */
        int same = strcmp(from, l->node ? srv->cfg.domain : l->remote) == 0;
        free(from);
        if (!same) {
            s2s_stream_error(l, "invalid-from", "'from' changed after authentication");
            return XS_STOP;
        }
        send_features(l);
        return conn_is_closing(l->conn) ? XS_STOP : XS_CONTINUE;
    }
    if (!l->tls) {
        free(l->pre_tls_from);
        l->pre_tls_from = xstrdup(from);
    } else if (!l->pre_tls_from || strcmp(from, l->pre_tls_from) != 0) {
        /* The TLS context (and so the trusted CAs) was chosen for the first sender. */
        free(from);
        s2s_stream_error(l, "invalid-from", "the sending domain changed after STARTTLS");
        return XS_STOP;
    }
    if (router_is_local_domain(srv, from)) {
        /* Another node of this domain, or someone pretending to be us. */
        if (!srv->cfg.node_name) {
            free(from);
            s2s_stream_error(l, "not-authorized", "this server is not one of several nodes");
            return XS_STOP;
        }
        l->node = 1;
    } else if (!s2s_allowed(srv, from)) {
        char text[400];
        snprintf(text, sizeof text, "federation with %s is not allowed by this server's "
                                    "policy", from);
        compliance_audit(srv, from, "s2s-refused", from, conn_peer(l->conn), "policy");
        free(from);
        s2s_stream_error(l, "policy-violation", text);
        return XS_STOP;
    }
    free(l->remote);
    l->remote = l->node ? NULL : from;
    if (l->node)
        free(from);
    send_features(l);
    return conn_is_closing(l->conn) ? XS_STOP : XS_CONTINUE;
}

/* SASL EXTERNAL (XEP-0178): the identity is the authzid, or the stream's 'from'. */
static xs_action sasl_external(s2s_link *l, xml_node *auth)
{
    server *srv = l->srv;
    if (!str_eq(xml_get_attr(auth, "mechanism"), "EXTERNAL")) {
        xml_free(auth);
        s2s_write_str(l, "<failure xmlns='" XMLNS_SASL "'><invalid-mechanism/></failure>");
        return XS_CONTINUE;
    }
    char *text = xml_text(auth);
    xml_free(auth);
    size_t n = 0;
    unsigned char *raw = NULL;
    if (*text && strcmp(text, "=") != 0) {
        raw = base64_decode(text, strlen(text), &n);
        if (!raw || memchr(raw, '\0', n)) {
            free(text);
            free(raw);
            s2s_write_str(l, "<failure xmlns='" XMLNS_SASL "'><incorrect-encoding/></failure>");
            return XS_CONTINUE;
        }
    }
    free(text);
    char *claimed = raw ? jid_normalize((const char *)raw) : NULL;
    free(raw);
    if (raw && !claimed) {
        s2s_write_str(l, "<failure xmlns='" XMLNS_SASL "'><invalid-authzid/></failure>");
        return XS_CONTINUE;
    }
    char why[300] = "";
    const char *identity = l->node ? claimed : (claimed ? claimed : l->remote);
    int ok = 1;
    if (!identity) {
        snprintf(why, sizeof why, "a node must name itself in the SASL EXTERNAL authzid");
        ok = 0;
    } else if (!l->node && strcmp(identity, l->remote) != 0) {
        snprintf(why, sizeof why, "the authzid %s is not the stream's domain %s", identity,
                 l->remote);
        ok = 0;
    } else if (l->node && (!node_known(srv, identity) ||
                           strcmp(identity, srv->cfg.node_name) == 0)) {
        snprintf(why, sizeof why, "%s is not a node of this cluster", identity);
        ok = 0;
    } else if (s2s_tls_peer_valid(conn_ssl(l->conn), identity, why, sizeof why) < 0) {
        ok = 0;
    }
    if (!ok) {
        log_warn("s2s in %s: SASL EXTERNAL as %s refused: %s", conn_peer(l->conn),
                 identity ? identity : "?", why);
        compliance_audit(srv, identity, l->node ? "node-auth-failure" : "s2s-auth-failure",
                         identity, conn_peer(l->conn), why);
        free(claimed);
        xml_node *f = xml_new(XMLNS_SASL, "failure");
        xml_add_child(f, NULL, "not-authorized");
        xml_node *t = xml_add_child(f, NULL, "text");
        xml_add_text(t, why, strlen(why));
        s2s_write_stanza(l, f);
        xml_free(f);
        s2s_write_str(l, "</stream:stream>");
        conn_close_after_flush(l->conn, "SASL EXTERNAL refused");
        return XS_STOP;
    }
    if (l->node) {
        free(l->remote);
        l->remote = claimed;
        claimed = NULL;
    }
    free(claimed);
    l->authed = l->secure = 1;
    s2s_write_str(l, "<success xmlns='" XMLNS_SASL "'/>");
    l->state = L_STREAM_START;
    return XS_RESTART;
}

/* A stanza from the authenticated peer: addresses checked, then routed. */
static xs_action stanza_while_ready(s2s_link *l, xml_node *stanza)
{
    server *srv = l->srv;
    if (str_eq(stanza->ns, XMLNS_DIALBACK))
        return s2s_dialback_inbound(l, stanza) < 0 ? XS_STOP : XS_CONTINUE;
    if (!stanza_is_routable(stanza) || !str_eq(stanza->ns, XMLNS_SERVER)) {
        xml_free(stanza);
        s2s_stream_error(l, "unsupported-stanza-type", NULL);
        return XS_STOP;
    }
    const char *from_attr = xml_get_attr(stanza, "from");
    const char *to_attr = xml_get_attr(stanza, "to");
    jid from, to;
    if (!from_attr || !to_attr) {
        xml_free(stanza);
        s2s_stream_error(l, "improper-addressing", "a stanza between servers needs 'from' "
                                                   "and 'to'");
        return XS_STOP;
    }
    if (jid_parse(from_attr, &from) < 0) {
        xml_free(stanza);
        s2s_stream_error(l, "invalid-from", "'from' is not a valid JID");
        return XS_STOP;
    }
    /* RFC 6120 4.9.3.9 / 13.8: a peer may speak only for the domain it authenticated
     * (nodes speak for this domain's users and for what they relay, node.c checks). */
    if (!l->node && strcmp(from.domain, l->remote) != 0) {
        char text[300];
        snprintf(text, sizeof text, "'from' must be in %s, the domain this stream "
                                    "authenticated", l->remote);
        log_warn("s2s in %s: spoofed 'from' domain %s refused", l->remote, from.domain);
        compliance_audit(srv, l->remote, "s2s-invalid-from", from.domain, conn_peer(l->conn),
                         NULL);
        jid_clear(&from);
        xml_free(stanza);
        s2s_stream_error(l, "invalid-from", text);
        return XS_STOP;
    }
    if (jid_parse(to_attr, &to) < 0 || !serves(srv, to.domain)) {
        if (to.domain)
            jid_clear(&to);
        jid_clear(&from);
        xml_free(stanza);
        s2s_stream_error(l, "host-unknown", "'to' is not in a domain this server serves");
        return XS_STOP;
    }
    char *norm = jid_full(&from);
    xml_set_attr(stanza, "from", norm);
    free(norm);
    norm = jid_full(&to);
    xml_set_attr(stanza, "to", norm);
    free(norm);
    jid_clear(&from);
    jid_clear(&to);
    s2s_route_inbound(l, stanza);
    return l->conn && conn_is_closing(l->conn) ? XS_STOP : XS_CONTINUE;
}

static xs_action on_stanza(void *ud, xml_node *el)
{
    s2s_link *l = ud;
    server *srv = l->srv;
    if (xml_is(el, XMLNS_STREAM, "error")) {
        xml_node *c = xml_first_element(el);
        log_info("s2s in %s %s: the peer sent a stream error <%s/>", conn_peer(l->conn),
                 l->remote ? l->remote : "?", c ? c->name : "?");
        xml_free(el);
        s2s_write_str(l, "</stream:stream>");
        conn_close_after_flush(l->conn, "peer sent a stream error");
        return XS_STOP;
    }
    switch (l->state) {
    case L_WAIT_TLS:
        if (xml_is(el, XMLNS_TLS, "starttls")) {
            xml_free(el);
            s2s_write_str(l, "<proceed xmlns='" XMLNS_TLS "'/>");
            SSL_CTX *ctx = l->node ? srv->s2s->node_in_ctx : srv->s2s->in_ctx;
            if (conn_start_tls(l->conn, ctx) < 0) {
                conn_close(l->conn, "TLS setup failed");
                return XS_STOP;
            }
            return XS_RESTART;
        }
        xml_free(el);
        s2s_stream_error(l, "policy-violation", "TLS is required: use STARTTLS first");
        return XS_STOP;
    case L_WAIT_AUTH:
        if (xml_is(el, XMLNS_SASL, "auth"))
            return sasl_external(l, el);
        if (str_eq(el->ns, XMLNS_DIALBACK) && dialback_allowed(l))
            return s2s_dialback_inbound(l, el) < 0 ? XS_STOP : XS_CONTINUE;
        xml_free(el);
        s2s_stream_error(l, "not-authorized", "authenticate first");
        return XS_STOP;
    case L_READY:
        return stanza_while_ready(l, el);
    default:
        xml_free(el);
        s2s_stream_error(l, "not-well-formed", "stanza before the stream header");
        return XS_STOP;
    }
}

static xs_action on_stream_close(void *ud)
{
    s2s_link *l = ud;
    s2s_write_str(l, "</stream:stream>");
    conn_close_after_flush(l->conn, "peer closed the stream");
    return XS_STOP;
}

const xmlstream_handlers s2s_in_xs_handlers = {on_stream_open, on_stanza, on_stream_close};
