/* s2s_dialback.c - XEP-0220 server dialback, used only when s2s_dialback = yes and
 * s2s_secure = no, and only over TLS: a peer whose certificate cannot be verified proves
 * that it is authoritative for its domain by the DNS round trip.
 *
 * Keys follow XEP-0185: HMAC-SHA256 under a random secret made at start-up, over
 * "receiving originating stream-id", so a key is worthless on any other stream or after
 * a restart. Keys are compared in constant time and never logged. */
#include "s2s_internal.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "conn.h"
#include "router.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_HEX 64

void s2s_dialback_key(server *srv, const char *to, const char *from, const char *id,
                      char out[KEY_HEX + 1])
{
    char *msg = xasprintf("%s %s %s", to, from, id);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), srv->s2s->dialback_secret, sizeof srv->s2s->dialback_secret,
              (const unsigned char *)msg, strlen(msg), md, &mdlen) || mdlen != 32) {
        /* A key nobody can match rather than a predictable one. */
        random_token(out, KEY_HEX);
        free(msg);
        return;
    }
    free(msg);
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[KEY_HEX] = '\0';
    secure_wipe(md, sizeof md);
}

static int key_matches(server *srv, const char *to, const char *from, const char *id,
                       const char *given)
{
    char want[KEY_HEX + 1];
    s2s_dialback_key(srv, to, from, id, want);
    int same = strlen(given) == KEY_HEX && CRYPTO_memcmp(want, given, KEY_HEX) == 0;
    secure_wipe(want, sizeof want);
    return same;
}

static xml_node *db_element(const char *name, const char *from, const char *to, const char *id,
                            const char *type)
{
    xml_node *el = xml_new(XMLNS_DIALBACK, name);
    xml_set_attr(el, "from", from);
    xml_set_attr(el, "to", to);
    if (id)
        xml_set_attr(el, "id", id);
    if (type)
        xml_set_attr(el, "type", type);
    return el;
}

void s2s_dialback_start(s2s_link *l)
{
    server *srv = l->srv;
    char key[KEY_HEX + 1];
    s2s_dialback_key(srv, l->remote, srv->cfg.domain, l->stream_id, key);
    xml_node *el = db_element("result", srv->cfg.domain, l->remote, NULL, NULL);
    xml_add_text(el, key, KEY_HEX);
    secure_wipe(key, sizeof key);
    s2s_write_stanza(l, el);
    xml_free(el);
    l->state = L_WAIT_DIALBACK;
    s2s_flush_dialback(l);
    log_info("s2s out %s: certificate not usable, authenticating by dialback", l->remote);
}

/* The peer asks us to verify a key we (as originating server) gave it. */
static void answer_verify(s2s_link *l, xml_node *el)
{
    server *srv = l->srv;
    const char *from = xml_get_attr(el, "from"), *to = xml_get_attr(el, "to");
    const char *id = xml_get_attr(el, "id");
    char *key = xml_text(el);
    int valid = from && to && id && router_is_local_domain(srv, to) &&
                key_matches(srv, from, to, id, key);
    secure_wipe(key, strlen(key));
    free(key);
    xml_node *ans = db_element("verify", to ? to : srv->cfg.domain, from ? from : "", id,
                               valid ? "valid" : "invalid");
    s2s_write_stanza(l, ans);
    xml_free(ans);
}

int s2s_dialback_inbound(s2s_link *l, xml_node *el)
{
    server *srv = l->srv;
    if (strcmp(el->name, "verify") == 0) {
        answer_verify(l, el);
        xml_free(el);
        return 0;
    }
    if (strcmp(el->name, "result") != 0 || l->state != L_WAIT_AUTH || l->dialback_pending) {
        xml_free(el);
        s2s_stream_error(l, "not-authorized", "unexpected dialback element");
        return -1;
    }
    char *from = xml_get_attr(el, "from") ? jid_normalize(xml_get_attr(el, "from")) : NULL;
    int ok = from && l->remote && strcmp(from, l->remote) == 0;
    free(from);
    if (!ok) {
        xml_free(el);
        s2s_stream_error(l, "invalid-from", "dialback for a domain other than the stream's");
        return -1;
    }
    /* Ask the authoritative server of the peer's domain, over our own link to it. */
    char *key = xml_text(el);
    xml_free(el);
    xml_node *verify = db_element("verify", srv->cfg.domain, l->remote, l->stream_id, NULL);
    xml_add_text(verify, key, strlen(key));
    secure_wipe(key, strlen(key));
    free(key);
    l->dialback_pending = 1;
    log_info("s2s in %s: verifying a dialback key with the domain's server", l->remote);
    s2s_link_send(srv, l->remote, 0, verify);
    return 0;
}

/* The answer to a verification we asked for: settle the inbound link waiting for it. */
static void verified(s2s_link *out, xml_node *el)
{
    server *srv = out->srv;
    const char *id = xml_get_attr(el, "id");
    int valid = str_eq(xml_get_attr(el, "type"), "valid");
    for (s2s_link *l = srv->s2s->links; l; l = l->next) {
        if (l->outbound || !l->dialback_pending || !id || strcmp(l->stream_id, id) != 0 ||
            !l->remote || strcmp(l->remote, out->remote) != 0 || !l->conn)
            continue;
        l->dialback_pending = 0;
        xml_node *res = db_element("result", srv->cfg.domain, l->remote, NULL,
                                   valid ? "valid" : "invalid");
        s2s_write_stanza(l, res);
        xml_free(res);
        if (valid) {
            l->authed = 1;
            l->secure = 0;
            s2s_link_ready(l);
        } else {
            s2s_stream_error(l, "not-authorized", "dialback failed: the domain's server did "
                                                  "not confirm the key");
        }
        return;
    }
}

int s2s_dialback_outbound(s2s_link *l, xml_node *el)
{
    if (strcmp(el->name, "verify") == 0) {
        verified(l, el);
        xml_free(el);
        return 0;
    }
    if (strcmp(el->name, "result") == 0 && l->state == L_WAIT_DIALBACK) {
        int valid = str_eq(xml_get_attr(el, "type"), "valid");
        xml_free(el);
        if (valid) {
            l->authed = 1;
            l->secure = 0;
            s2s_link_ready(l);
            return 0;
        }
        char text[300];
        snprintf(text, sizeof text, "the server of %s refused our dialback", l->remote);
        s2s_link_fail(l, "remote-server-timeout", text);
        s2s_write_str(l, "</stream:stream>");
        conn_close_after_flush(l->conn, "dialback refused");
        return -1;
    }
    xml_free(el);
    return 0;
}
