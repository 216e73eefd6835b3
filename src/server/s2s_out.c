/* s2s_out.c - the outbound side of a server link: connect (target by target), stream
 * header, STARTTLS as TLS client, the peer's certificate checked against the domain we
 * dialled, SASL EXTERNAL with our own certificate (XEP-0178) or, where allowed, dialback
 * (XEP-0220); then the queued stanzas go out. */
#include "s2s_internal.h"
#include "../common/base64.h"
#include "../common/log.h"
#include "../common/util.h"
#include "conn.h"
#include "s2s_tls.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_connected(void *ud)
{
    s2s_link *l = ud;
    server *srv = l->srv;
    l->state = L_STREAM_START;
    s2s_send_header(l, srv->cfg.domain, l->node ? srv->cfg.domain : l->remote, 0);
}

/* Connect to the next target that yields a socket. 0, or -1 when none is left. */
static int connect_next(s2s_link *l)
{
    while (l->next_target < l->ntargets) {
        const s2s_target *t = &l->targets[l->next_target++];
        char port[8];
        snprintf(port, sizeof port, "%d", t->port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(t->host, port, &hints, &res);
        if (rc != 0) {
            log_info("s2s out %s: %s: %s", l->remote, t->host, gai_strerror(rc));
            continue;
        }
        char peer[S2S_MAX_HOST + 16];
        snprintf(peer, sizeof peer, "%s:%d", t->host, t->port);
        for (struct addrinfo *ai = res; ai && !l->conn; ai = ai->ai_next)
            l->conn = conn_connect(l->srv, ai->ai_addr, ai->ai_addrlen, peer,
                                   s2s_conn_handlers(), on_connected, l);
        freeaddrinfo(res);
        if (l->conn) {
            log_debug("s2s out %s: connecting to %s", l->remote, peer);
            return 0;
        }
        log_info("s2s out %s: %s: %s", l->remote, peer, strerror(errno));
    }
    return -1;
}

int s2s_out_start(s2s_link *l)
{
    if (l->ntargets == 0) {
        const char *why = NULL;
        l->ntargets = s2s_resolve(l->srv, l->remote, l->node, l->targets, S2S_MAX_TARGETS, &why);
        if (l->ntargets == 0) {
            char text[300];
            snprintf(text, sizeof text, "cannot find the server of %s: %s", l->remote,
                     why ? why : "no address");
            s2s_link_fail(l, "remote-server-not-found", text);
            return -1;
        }
    }
    xmlstream_reset(l->xs);
    l->stream_open = l->tls = l->authed = l->secure = 0;
    l->state = L_CONNECTING;
    l->created_ms = time_mono_ms();
    if (connect_next(l) < 0) {
        char text[300];
        snprintf(text, sizeof text, "cannot connect to the server of %s", l->remote);
        s2s_link_fail(l, "remote-server-not-found", text);
        return -1;
    }
    return 0;
}

/* ---- the stream ---- */

static xs_action on_stream_open(void *ud, const xml_node *root)
{
    s2s_link *l = ud;
    if (!str_eq(xml_get_attr(root, "xmlns"), XMLNS_SERVER)) {
        s2s_stream_error(l, "invalid-namespace", "expected a jabber:server stream");
        return XS_STOP;
    }
    const char *version = xml_get_attr(root, "version");
    if (!version || strncmp(version, "1.", 2) != 0) {
        s2s_stream_error(l, "unsupported-version", "XMPP 1.0 streams (STARTTLS) are required");
        return XS_STOP;
    }
    const char *id = xml_get_attr(root, "id");
    snprintf(l->stream_id, sizeof l->stream_id, "%s", id ? id : "");
    l->state = L_WAIT_FEATURES;
    return XS_CONTINUE;
}

/* Log the peer's stream error and give up on the link. */
static xs_action peer_error(s2s_link *l, xml_node *el)
{
    const char *cond = "undefined-condition";
    char *text = xml_child_text(el, XMLNS_STREAMS, "text");
    for (xml_node *c = xml_first_element(el); c; c = xml_next(c, NULL, NULL))
        if (str_eq(c->ns, XMLNS_STREAMS) && strcmp(c->name, "text") != 0) {
            cond = c->name;
            break;
        }
    char why[300];
    snprintf(why, sizeof why, "the server of %s refused the link: %s%s%s", l->remote, cond,
             text && *text ? ": " : "", text ? text : "");
    free(text);
    s2s_link_fail(l, "remote-server-not-found", why);
    xml_free(el);
    s2s_write_str(l, "</stream:stream>");
    conn_close_after_flush(l->conn, "peer sent a stream error");
    return XS_STOP;
}

static int offers_mechanism(const xml_node *features, const char *mech)
{
    xml_node *m = xml_child(features, XMLNS_SASL, "mechanisms");
    for (xml_node *c = m ? xml_child(m, XMLNS_SASL, "mechanism") : NULL; c;
         c = xml_next(c, XMLNS_SASL, "mechanism")) {
        char *t = xml_text(c);
        int same = strcmp(t, mech) == 0;
        free(t);
        if (same)
            return 1;
    }
    return 0;
}

static int dialback_allowed(const s2s_link *l)
{
    return !l->node && l->srv->cfg.s2s_dialback && !l->srv->cfg.s2s_secure;
}

/* Features after TLS: authenticate. */
static xs_action authenticate(s2s_link *l, xml_node *features)
{
    server *srv = l->srv;
    char why[256];
    /* l->remote is the domain we dialled, or the node's name. */
    int valid = s2s_tls_peer_valid(conn_ssl(l->conn), l->remote, why, sizeof why) == 0;
    int external = offers_mechanism(features, "EXTERNAL");
    xml_free(features);
    if (valid && external) {
        const char *me = l->node ? srv->cfg.node_name : srv->cfg.domain;
        char *b64 = base64_encode((const unsigned char *)me, strlen(me));
        char *auth = xasprintf("<auth xmlns='" XMLNS_SASL "' mechanism='EXTERNAL'>%s</auth>", b64);
        s2s_write_str(l, auth);
        free(auth);
        free(b64);
        l->state = L_WAIT_SASL;
        return XS_CONTINUE;
    }
    if (dialback_allowed(l)) {
        s2s_dialback_start(l);
        return XS_CONTINUE;
    }
    char text[400];
    if (!valid)
        snprintf(text, sizeof text, "%s (and dialback is not allowed here)", why);
    else
        snprintf(text, sizeof text, "the server of %s does not offer SASL EXTERNAL", l->remote);
    s2s_link_fail(l, "remote-server-timeout", text);
    s2s_stream_error(l, "not-authorized", text);
    return XS_STOP;
}

static xs_action on_features(s2s_link *l, xml_node *features)
{
    if (!l->tls) {
        int starttls = xml_child(features, XMLNS_TLS, "starttls") != NULL;
        xml_free(features);
        if (!starttls) {
            char text[300];
            snprintf(text, sizeof text, "the server of %s does not offer STARTTLS, which "
                                        "this server requires", l->remote);
            s2s_link_fail(l, "remote-server-timeout", text);
            s2s_stream_error(l, "policy-violation", "TLS is required");
            return XS_STOP;
        }
        s2s_write_str(l, "<starttls xmlns='" XMLNS_TLS "'/>");
        l->state = L_WAIT_PROCEED;
        return XS_CONTINUE;
    }
    if (!l->authed)
        return authenticate(l, features);
    xml_free(features);
    s2s_link_ready(l);
    return XS_CONTINUE;
}

static xs_action on_stanza(void *ud, xml_node *el)
{
    s2s_link *l = ud;
    server *srv = l->srv;
    if (xml_is(el, XMLNS_STREAM, "error"))
        return peer_error(l, el);
    switch (l->state) {
    case L_WAIT_FEATURES:
        if (xml_is(el, XMLNS_STREAM, "features"))
            return on_features(l, el);
        break;
    case L_WAIT_PROCEED:
        if (xml_is(el, XMLNS_TLS, "proceed")) {
            xml_free(el);
            SSL_CTX *ctx = l->node ? srv->s2s->node_out_ctx : srv->s2s->out_ctx;
            if (conn_start_tls_client(l->conn, ctx, l->node ? NULL : l->remote) < 0) {
                conn_close(l->conn, "TLS setup failed");
                return XS_STOP;
            }
            return XS_RESTART;
        }
        break;
    case L_WAIT_SASL:
        if (xml_is(el, XMLNS_SASL, "success")) {
            xml_free(el);
            l->authed = l->secure = 1;
            l->state = L_STREAM_START;
            s2s_send_header(l, srv->cfg.domain, l->node ? srv->cfg.domain : l->remote, 0);
            return XS_RESTART;
        }
        if (xml_is(el, XMLNS_SASL, "failure")) {
            xml_node *c = xml_first_element(el);
            char *text = xml_child_text(el, XMLNS_SASL, "text");
            char why[400];
            snprintf(why, sizeof why, "the server of %s refused our certificate (SASL "
                                      "EXTERNAL: %s%s%s)", l->remote, c ? c->name : "failure",
                     text && *text ? ": " : "", text ? text : "");
            free(text);
            xml_free(el);
            s2s_link_fail(l, "remote-server-timeout", why);
            s2s_write_str(l, "</stream:stream>");
            conn_close_after_flush(l->conn, "SASL EXTERNAL refused");
            return XS_STOP;
        }
        break;
    case L_WAIT_DIALBACK:
    case L_READY:
        if (str_eq(el->ns, XMLNS_DIALBACK))
            return s2s_dialback_outbound(l, el) < 0 ? XS_STOP : XS_CONTINUE;
        if (l->state == L_READY) {
            /* Not a bidirectional stream (XEP-0288): the peer sends on its own link. */
            log_debug("s2s out %s: ignored <%s/> on the outbound stream", l->remote, el->name);
            xml_free(el);
            return XS_CONTINUE;
        }
        break;
    default:
        break;
    }
    char text[200];
    snprintf(text, sizeof text, "unexpected <%s/> during the handshake", el->name);
    xml_free(el);
    s2s_stream_error(l, "not-authorized", text);
    return XS_STOP;
}

static xs_action on_stream_close(void *ud)
{
    s2s_link *l = ud;
    s2s_write_str(l, "</stream:stream>");
    conn_close_after_flush(l->conn, "peer closed the stream");
    return XS_STOP;
}

const xmlstream_handlers s2s_out_xs_handlers = {on_stream_open, on_stanza, on_stream_close};
