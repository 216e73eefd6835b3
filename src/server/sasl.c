/* sasl.c - SASL for c2s streams: SCRAM (with channel binding) and PLAIN inside TLS. */
#include "sasl.h"
#include "../common/base64.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/scram.h"
#include "../common/tls.h"
#include "../common/util.h"
#include "authlimit.h"
#include "compliance.h"
#include "conn.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

/* The most failed attempts one stream may make before it is closed. */
#define MAX_FAILURES_PER_STREAM 3
/* SASL payloads are small; anything larger is an attack or a bug. */
#define MAX_SASL_PAYLOAD 4096

typedef struct sasl_lookup {
    server *srv;
    char *user; /* normalised bare JID of the attempt, once known */
} sasl_lookup;

/* Kept out of c2s.h so that the session needs to know nothing of SASL internals. */
struct sasl_state {
    scram_server *scram;
    sasl_lookup lookup;
    int failures;
    /* The client asked for a channel binding type we do not offer (slixmpp only knows
     * tls-unique, undefined on TLS 1.3). Its later "y" flag then honestly means "we share
     * no binding", not a stripped mechanism list, so it is not treated as a downgrade. */
    int cb_type_unsupported;
    char mech[32]; /* the mechanism of the exchange in progress, for the audit trail */
};
typedef struct sasl_state sasl_state;

static sasl_state *state_of(c2s *s)
{
    if (!s->sasl)
        s->sasl = xcalloc(1, sizeof(sasl_state));
    return s->sasl;
}

void sasl_reset(c2s *s)
{
    sasl_state *st = s->sasl;
    if (!st)
        return;
    scram_server_free(st->scram);
    free(st->lookup.user);
    free(st);
    s->sasl = NULL;
}

static void addr_key(c2s *s, char *out, size_t outlen)
{
    /* conn_peer is "IP:port" or "[IPv6]:port": the address is what precedes the last ':'. */
    const char *peer = conn_peer(s->conn);
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    snprintf(out, outlen, "addr:%.*s", (int)n, peer);
}

/* "alice" or "alice@domain" -> "alice@domain" if that is a valid local account name. */
static char *user_from_authcid(server *srv, const char *authcid)
{
    const char *at = strchr(authcid, '@');
    char *local = NULL;
    if (at) {
        char *given = jid_normalize_bare(authcid);
        char *domain = given ? strchr(given, '@') : NULL;
        if (domain && strcmp(domain + 1, srv->cfg.domain) == 0)
            return given;
        free(given);
        return NULL;
    }
    local = jid_normalize_local(authcid);
    if (!local)
        return NULL;
    char *user = xasprintf("%s@%s", local, srv->cfg.domain);
    free(local);
    return user;
}

static int lookup_cred(void *ud, const char *username, scram_hash hash, scram_cred *out)
{
    sasl_lookup *lk = ud;
    free(lk->user);
    lk->user = user_from_authcid(lk->srv, username);
    if (!lk->user)
        return -1;
    return store_user_get_cred(lk->srv->store, lk->user, hash, out) == STORE_OK ? 0 : -1;
}

static void send_sasl(c2s *s, const char *name, const char *condition, const char *data,
                      const char *text)
{
    xml_node *el = xml_new(XMLNS_SASL, name);
    if (condition)
        xml_add_child(el, NULL, condition);
    if (text) {
        xml_node *t = xml_add_child(el, NULL, "text");
        xml_set_attr(t, "xml:lang", "en");
        xml_add_text(t, text, strlen(text));
    }
    if (data) {
        char *b64 = base64_encode((const unsigned char *)data, strlen(data));
        xml_add_text(el, *b64 ? b64 : "=", *b64 ? strlen(b64) : 1);
        free(b64);
    }
    c2s_send(s, el);
    xml_free(el);
}

static sasl_step fail(c2s *s, const char *condition, const char *text, int counts)
{
    sasl_state *st = state_of(s);
    if (counts) {
        char key[80];
        addr_key(s, key, sizeof key);
        authlimit_failed(s->srv->authlimit, key);
        if (st->lookup.user) {
            char *ukey = xasprintf("user:%s", st->lookup.user);
            authlimit_failed(s->srv->authlimit, ukey);
            free(ukey);
        }
        log_info("c2s %s: authentication failed for %s: %s", conn_peer(s->conn),
                 st->lookup.user ? st->lookup.user : "(unknown)", condition);
    }
    if (counts || strcmp(condition, "temporary-auth-failure") == 0) {
        char *detail = xasprintf("%s%s%s", st->mech[0] ? st->mech : "", st->mech[0] ? ": " : "",
                                 condition);
        compliance_audit(s->srv, NULL, "auth-failure", st->lookup.user, conn_peer(s->conn), detail);
        free(detail);
    }
    int failures = st->failures + (counts ? 1 : 0);
    int cb_type_unsupported = st->cb_type_unsupported;
    sasl_reset(s);
    send_sasl(s, "failure", condition, NULL, text);
    state_of(s)->failures = failures;
    state_of(s)->cb_type_unsupported = cb_type_unsupported;
    if (failures >= MAX_FAILURES_PER_STREAM) {
        c2s_stream_error(s, "policy-violation", "too many failed authentication attempts");
        return SASL_STEP_CLOSED;
    }
    return SASL_STEP_CONTINUE;
}

static int is_blocked(c2s *s, const char *user)
{
    char key[80];
    addr_key(s, key, sizeof key);
    if (authlimit_blocked(s->srv->authlimit, key))
        return 1;
    if (!user)
        return 0;
    char *ukey = xasprintf("user:%s", user);
    int blocked = authlimit_blocked(s->srv->authlimit, ukey);
    free(ukey);
    return blocked;
}

static sasl_step succeed(c2s *s, const char *mech, const char *additional)
{
    sasl_state *st = state_of(s);
    s->user = st->lookup.user;
    st->lookup.user = NULL;
    send_sasl(s, "success", NULL, additional, NULL);
    if (st->mech[0])
        mech = st->mech;
    log_info("c2s %s: authenticated %s with %s", conn_peer(s->conn), s->user, mech);
    char *detail = xasprintf("mechanism=%s", mech);
    compliance_audit(s->srv, s->user, "sign-in", s->user, conn_peer(s->conn), detail);
    free(detail);
    sasl_reset(s);
    s->state = C2S_WAIT_BIND;
    return SASL_STEP_SUCCESS;
}

void sasl_add_features(c2s *s, xml_node *features)
{
    xml_node *mechs = xml_add_child(features, XMLNS_SASL, "mechanisms");
    static const char *names[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                  "SCRAM-SHA-1", "PLAIN"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (strcmp(names[i], "PLAIN") == 0 && !s->srv->cfg.allow_plain)
            continue;
        xml_node *m = xml_add_child(mechs, NULL, "mechanism");
        xml_add_text(m, names[i], strlen(names[i]));
    }
    /* XEP-0440: tell the client which channel bindings it can use. */
    xml_node *cb = xml_add_child(features, XMLNS_SASL_CB, "sasl-channel-binding");
    xml_set_attr(xml_add_child(cb, NULL, "channel-binding"), "type", "tls-server-end-point");
    if (SSL_version(conn_ssl(s->conn)) == TLS1_3_VERSION)
        xml_set_attr(xml_add_child(cb, NULL, "channel-binding"), "type", "tls-exporter");
}

/* The channel binding type the client named in its gs2 header ("p=TYPE,..."), if any. */
static char *requested_binding(const unsigned char *msg, size_t len)
{
    if (len < 3 || msg[0] != 'p' || msg[1] != '=')
        return NULL;
    const unsigned char *comma = memchr(msg + 2, ',', len - 2);
    if (!comma || comma - msg > 64)
        return NULL;
    return xstrndup((const char *)msg + 2, (size_t)(comma - msg - 2));
}

static sasl_step start_scram(c2s *s, scram_hash hash, int plus, const unsigned char *msg, size_t len)
{
    sasl_state *st = state_of(s);
    SSL *ssl = conn_ssl(s->conn);
    unsigned char cb[64];
    size_t cblen = sizeof cb;
    char *cbtype = requested_binding(msg, len);
    const char *offered = cbtype;
    if (!offered && !st->cb_type_unsupported) /* lets SCRAM detect a "y" downgrade */
        offered = "tls-server-end-point";
    if (!offered || tls_channel_binding(ssl, 1, offered, cb, &cblen) < 0)
        cblen = 0;
    if (plus && cblen == 0) {
        free(cbtype);
        st->cb_type_unsupported = 1;
        return fail(s, "malformed-request", "unsupported channel binding type", 0);
    }
    st->lookup.srv = s->srv;
    st->scram = scram_server_new(hash, plus, cblen ? offered : NULL, cblen ? cb : NULL, cblen, lookup_cred,
                                 &st->lookup);
    free(cbtype);
    char *out = NULL;
    scram_status r = scram_server_first(st->scram, (const char *)msg, len, &out);
    if (r != SCRAM_OK && r != SCRAM_CONTINUE) {
        free(out);
        return fail(s, r == SCRAM_ERR_BINDING ? "not-authorized" : "malformed-request",
                    r == SCRAM_ERR_BINDING ? "channel binding downgrade detected" : NULL,
                    r == SCRAM_ERR_BINDING);
    }
    if (is_blocked(s, st->lookup.user)) {
        free(out);
        return fail(s, "temporary-auth-failure", "too many failed attempts; try again later", 0);
    }
    send_sasl(s, "challenge", NULL, out, NULL);
    free(out);
    return SASL_STEP_CONTINUE;
}

static sasl_step finish_scram(c2s *s, const unsigned char *msg, size_t len)
{
    sasl_state *st = state_of(s);
    if (!st->scram)
        return fail(s, "malformed-request", "no SASL negotiation in progress", 0);
    char *out = NULL;
    scram_status r = scram_server_final(st->scram, (const char *)msg, len, &out);
    if (r != SCRAM_OK) {
        free(out);
        switch (r) {
        case SCRAM_ERR_MALFORMED: return fail(s, "malformed-request", NULL, 1);
        case SCRAM_ERR_AUTHZID: return fail(s, "invalid-authzid", NULL, 1);
        default: return fail(s, "not-authorized", NULL, 1);
        }
    }
    sasl_step ok = succeed(s, "SCRAM", out);
    free(out);
    return ok;
}

static sasl_step do_plain(c2s *s, const unsigned char *msg, size_t len)
{
    /* authzid NUL authcid NUL passwd (RFC 4616) */
    const unsigned char *nul1 = memchr(msg, 0, len);
    const unsigned char *nul2 = nul1 ? memchr(nul1 + 1, 0, len - (size_t)(nul1 + 1 - msg)) : NULL;
    if (!nul2)
        return fail(s, "malformed-request", NULL, 0);
    char *authzid = xstrndup((const char *)msg, (size_t)(nul1 - msg));
    char *authcid = xstrndup((const char *)nul1 + 1, (size_t)(nul2 - nul1 - 1));
    size_t pwlen = len - (size_t)(nul2 + 1 - msg);
    char *password = xstrndup((const char *)nul2 + 1, pwlen);
    sasl_state *st = state_of(s);
    st->lookup.srv = s->srv;
    st->lookup.user = user_from_authcid(s->srv, authcid);

    sasl_step r;
    scram_cred cred;
    if (is_blocked(s, st->lookup.user)) {
        r = fail(s, "temporary-auth-failure", "too many failed attempts; try again later", 0);
    } else if (*authzid && !str_eq(authzid, st->lookup.user)) {
        r = fail(s, "invalid-authzid", NULL, 1);
    } else if (!st->lookup.user || strlen(password) != pwlen ||
               store_user_get_cred(s->srv->store, st->lookup.user, SCRAM_SHA256, &cred) != STORE_OK ||
               !scram_check_password(&cred, password)) {
        r = fail(s, "not-authorized", NULL, 1);
    } else {
        r = succeed(s, "PLAIN", NULL);
    }
    secure_wipe(password, pwlen);
    free(password);
    free(authzid);
    free(authcid);
    return r;
}

sasl_step sasl_handle(c2s *s, xml_node *el)
{
    sasl_step r;
    char *text = xml_text(el);
    size_t textlen = strlen(text);
    size_t len = 0;
    unsigned char *msg = NULL;
    if (textlen > MAX_SASL_PAYLOAD) {
        r = fail(s, "malformed-request", "SASL data too large", 0);
        goto done;
    }
    if (!xml_is(el, XMLNS_SASL, "abort")) {
        msg = base64_decode(text, textlen, &len);
        if (!msg) {
            r = fail(s, "incorrect-encoding", NULL, 0);
            goto done;
        }
    }
    if (xml_is(el, XMLNS_SASL, "auth")) {
        const char *mech = xml_get_attr(el, "mechanism");
        scram_hash hash;
        int plus;
        sasl_state *st = state_of(s);
        /* A new <auth/> abandons any exchange in progress (the counters stay). */
        scram_server_free(st->scram);
        st->scram = NULL;
        free(st->lookup.user);
        st->lookup.user = NULL;
        snprintf(st->mech, sizeof st->mech, "%s", mech ? mech : "");
        if (mech && scram_mech_parse(mech, &hash, &plus) == 0)
            r = start_scram(s, hash, plus, msg, len);
        else if (str_eq(mech, "PLAIN") && s->srv->cfg.allow_plain)
            r = do_plain(s, msg, len);
        else
            r = fail(s, "invalid-mechanism", NULL, 0);
    } else if (xml_is(el, XMLNS_SASL, "response")) {
        r = finish_scram(s, msg, len);
    } else if (xml_is(el, XMLNS_SASL, "abort")) {
        r = fail(s, "aborted", NULL, 0);
    } else {
        r = fail(s, "malformed-request", "unexpected SASL element", 0);
    }
done:
    if (msg) {
        secure_wipe(msg, len);
        free(msg);
    }
    free(text);
    xml_free(el);
    return r;
}
