/* sasl.c - client SASL for libparley: picks the strongest mechanism both sides support
 * (SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, then PLAIN inside
 * TLS if allowed), the channel binding (tls-exporter on TLS 1.3, tls-server-end-point,
 * guided by XEP-0440), runs the exchange and checks the server's SCRAM proof. */
#include "../common/base64.h"
#include "../common/tls.h"
#include "../common/util.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sasl_ctx {
    scram_client *scram;
    int final_sent;   /* client-final sent: the next data is the server's proof */
    int verified;     /* server proof checked */
};

void sasl_free(parley *p)
{
    if (!p->sasl)
        return;
    scram_client_free(p->sasl->scram);
    free(p->sasl);
    p->sasl = NULL;
}

static int offered(const xml_node *mechs, const char *name)
{
    for (const xml_node *m = xml_child(mechs, XMLNS_SASL, "mechanism"); m;
         m = xml_next(m, XMLNS_SASL, "mechanism")) {
        char *t = xml_text(m);
        int eq = strcmp(t, name) == 0;
        free(t);
        if (eq)
            return 1;
    }
    return 0;
}

static int any_plus(const xml_node *mechs)
{
    for (const xml_node *m = xml_child(mechs, XMLNS_SASL, "mechanism"); m;
         m = xml_next(m, XMLNS_SASL, "mechanism")) {
        char *t = xml_text(m);
        size_t n = strlen(t);
        int plus = n > 5 && strcmp(t + n - 5, "-PLUS") == 0;
        free(t);
        if (plus)
            return 1;
    }
    return 0;
}

/* XEP-0440: does the server list channel binding types, and is `type` among them? */
static int cb_listed(const xml_node *features, const char *type, int *has_list)
{
    const xml_node *cb = xml_child(features, XMLNS_SASL_CB, "sasl-channel-binding");
    *has_list = cb != NULL;
    for (const xml_node *c = cb ? xml_child(cb, NULL, "channel-binding") : NULL; c;
         c = xml_next(c, NULL, "channel-binding"))
        if (str_eq(xml_get_attr(c, "type"), type))
            return 1;
    return 0;
}

/* The binding to use with -PLUS: the server's list decides when it sent one; without a
 * list, tls-exporter is the TLS 1.3 default (RFC 9266), and on TLS 1.2 we cannot know
 * (servers then usually mean tls-unique, which we do not implement), so none. */
static const char *choose_binding(parley *p, const xml_node *features)
{
    int tls13 = SSL_version(p->ssl) == TLS1_3_VERSION, has_list = 0;
    int exporter = cb_listed(features, "tls-exporter", &has_list);
    int endpoint = cb_listed(features, "tls-server-end-point", &has_list);
    if (has_list) {
        if (tls13 && exporter)
            return "tls-exporter";
        return endpoint ? "tls-server-end-point" : NULL;
    }
    return tls13 ? "tls-exporter" : NULL;
}

static void send_auth(parley *p, const char *mech, const char *data, size_t len)
{
    xml_node *auth = xml_new(XMLNS_SASL, "auth");
    xml_set_attr(auth, "mechanism", mech);
    char *b64 = base64_encode((const unsigned char *)data, len);
    xml_add_text(auth, *b64 ? b64 : "=", *b64 ? strlen(b64) : 1);
    session_send(p, auth);
    xml_free(auth);
    secure_wipe(b64, strlen(b64));
    free(b64);
}

static sasl_result begin_scram(parley *p, scram_hash hash, int plus, const char *cb_type)
{
    unsigned char cb[64];
    size_t cblen = sizeof cb;
    if (cb_type && tls_channel_binding(p->ssl, 0, cb_type, cb, &cblen) < 0)
        cb_type = NULL;
    if (plus && !cb_type)
        return SASL_CONTINUE; /* caller tries the next mechanism */
    /* The authentication identity is the localpart (RFC 6120 6.3.7 simple user name). */
    scram_client *sc = scram_client_new(hash, plus, cb_type, cb_type ? cb : NULL,
                                        cb_type ? cblen : 0, p->account.local, p->password);
    if (!sc) {
        client_fail(p, PARLEY_ERR_INVALID, 1, "the user name or password cannot be used with SCRAM");
        return SASL_FAILED;
    }
    char *first = scram_client_first(sc);
    p->sasl = xcalloc(1, sizeof *p->sasl);
    p->sasl->scram = sc;
    snprintf(p->mechanism, sizeof p->mechanism, "%s", scram_mech_name(hash, plus));
    snprintf(p->cb_type, sizeof p->cb_type, "%s", plus ? cb_type : "");
    client_log(p, 1, "%s: authenticating with %s%s%s", p->peer, p->mechanism,
               plus ? " / " : "", plus ? cb_type : "");
    send_auth(p, p->mechanism, first, strlen(first));
    free(first);
    return SASL_SUCCESS; /* started */
}

sasl_result sasl_begin(parley *p, const xml_node *features)
{
    const xml_node *mechs = xml_child(features, XMLNS_SASL, "mechanisms");
    if (!mechs) {
        client_fail(p, PARLEY_ERR_PROTOCOL, 1, "%s: the server offers no SASL mechanisms", p->peer);
        return SASL_FAILED;
    }
    sasl_free(p);
    const char *binding = choose_binding(p, features);
    static const scram_hash order[] = {SCRAM_SHA256, SCRAM_SHA1};
    for (int plus = 1; plus >= 0; plus--) {
        for (size_t i = 0; i < ARRAY_LEN(order); i++) {
            if (!offered(mechs, scram_mech_name(order[i], plus)))
                continue;
            /* Without -PLUS: "y" (we could bind, the server seems not to) unless the server
             * did offer -PLUS and we share no binding type with it: then "n". */
            const char *cb = binding;
            if (!plus && any_plus(mechs))
                cb = NULL;
            else if (!plus && !cb)
                cb = SSL_version(p->ssl) == TLS1_3_VERSION ? "tls-exporter" : "tls-server-end-point";
            sasl_result r = begin_scram(p, order[i], plus, cb);
            if (r != SASL_CONTINUE)
                return r == SASL_SUCCESS ? SASL_CONTINUE : r;
        }
    }
    if (p->opt.allow_plain && p->tls_done && offered(mechs, "PLAIN")) {
        /* authzid NUL authcid NUL password (RFC 4616); inside verified TLS only. */
        size_t ul = strlen(p->account.local), pl = strlen(p->password);
        size_t len = 1 + ul + 1 + pl;
        char *msg = xmalloc(len);
        msg[0] = '\0';
        memcpy(msg + 1, p->account.local, ul);
        msg[1 + ul] = '\0';
        memcpy(msg + 2 + ul, p->password, pl);
        p->sasl = xcalloc(1, sizeof *p->sasl);
        snprintf(p->mechanism, sizeof p->mechanism, "PLAIN");
        p->cb_type[0] = '\0';
        client_log(p, 1, "%s: authenticating with PLAIN (inside TLS)", p->peer);
        send_auth(p, "PLAIN", msg, len);
        secure_wipe(msg, len);
        free(msg);
        return SASL_CONTINUE;
    }
    buf list;
    buf_init(&list);
    for (const xml_node *m = xml_child(mechs, XMLNS_SASL, "mechanism"); m;
         m = xml_next(m, XMLNS_SASL, "mechanism")) {
        char *t = xml_text(m);
        buf_appendf(&list, "%s%s", list.len ? " " : "", t);
        free(t);
    }
    client_fail(p, PARLEY_ERR_POLICY, 1, "%s: no acceptable SASL mechanism (server offers: %s)",
                p->peer, list.len ? list.data : "none");
    buf_free(&list);
    return SASL_FAILED;
}

static unsigned char *decode_payload(const xml_node *el, size_t *len)
{
    char *text = xml_text(el);
    unsigned char *data;
    if (strcmp(text, "=") == 0 || !*text) {
        data = (unsigned char *)xstrdup("");
        *len = 0;
    } else {
        data = base64_decode(text, strlen(text), len);
    }
    free(text);
    return data;
}

static sasl_result failure(parley *p, const xml_node *el)
{
    const xml_node *cond = NULL;
    for (const xml_node *c = xml_first_element(el); c; c = xml_next(c, NULL, NULL))
        if (!str_eq(c->name, "text")) {
            cond = c;
            break;
        }
    const char *name = cond ? cond->name : "not-authorized";
    char *text = xml_child_text(el, XMLNS_SASL, "text");
    parley_error code = PARLEY_ERR_AUTH;
    if (str_eq(name, "encryption-required") || str_eq(name, "mechanism-too-weak"))
        code = PARLEY_ERR_POLICY;
    else if (str_eq(name, "invalid-mechanism") || str_eq(name, "malformed-request") ||
             str_eq(name, "incorrect-encoding") || str_eq(name, "aborted"))
        code = PARLEY_ERR_PROTOCOL;
    client_fail(p, code, 1, "%s: %s authentication failed: <%s/>%s%s", p->peer, p->mechanism,
                name, text && *text ? ": " : "", text && *text ? text : "");
    free(text);
    return SASL_FAILED;
}

static sasl_result verify_proof(parley *p, const unsigned char *data, size_t len)
{
    if (scram_client_verify(p->sasl->scram, (const char *)data, len) != SCRAM_OK) {
        client_fail(p, PARLEY_ERR_AUTH, 1,
                    "%s: the server's SCRAM proof is wrong: it does not know this account's "
                    "credentials (possible impersonation)", p->peer);
        return SASL_FAILED;
    }
    p->sasl->verified = 1;
    return SASL_CONTINUE;
}

sasl_result sasl_step_in(parley *p, const xml_node *el)
{
    if (xml_is(el, XMLNS_SASL, "failure"))
        return failure(p, el);
    if (!p->sasl) {
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: unexpected <%s/>", p->peer, el->name);
        return SASL_FAILED;
    }
    size_t len = 0;
    unsigned char *data = decode_payload(el, &len);
    sasl_result r = SASL_CONTINUE;
    if (!data) {
        client_fail(p, PARLEY_ERR_PROTOCOL, 1, "%s: SASL data is not valid base64", p->peer);
        return SASL_FAILED;
    }
    if (xml_is(el, XMLNS_SASL, "challenge")) {
        if (!p->sasl->scram) {
            client_fail(p, PARLEY_ERR_PROTOCOL, 1, "%s: unexpected SASL challenge", p->peer);
            r = SASL_FAILED;
        } else if (p->sasl->final_sent) {
            /* some servers send server-final as a challenge and then an empty success */
            r = verify_proof(p, data, len);
            if (r == SASL_CONTINUE) {
                xml_node *resp = xml_new(XMLNS_SASL, "response");
                session_send(p, resp);
                xml_free(resp);
            }
        } else {
            char *out = NULL;
            /* scram_client_final returns SCRAM_CONTINUE when it produced client-final */
            scram_status st = scram_client_final(p->sasl->scram, (const char *)data, len, &out);
            if (st != SCRAM_CONTINUE || !out) {
                client_fail(p, PARLEY_ERR_PROTOCOL, 1,
                            "%s: unacceptable SCRAM challenge (malformed, or too few iterations)",
                            p->peer);
                r = SASL_FAILED;
            } else {
                xml_node *resp = xml_new(XMLNS_SASL, "response");
                char *b64 = base64_encode((const unsigned char *)out, strlen(out));
                xml_add_text(resp, b64, strlen(b64));
                session_send(p, resp);
                xml_free(resp);
                free(b64);
                p->sasl->final_sent = 1;
            }
            if (out) {
                secure_wipe(out, strlen(out));
                free(out);
            }
        }
    } else if (xml_is(el, XMLNS_SASL, "success")) {
        if (p->sasl->scram && !p->sasl->verified) {
            if (!p->sasl->final_sent || len == 0) {
                client_fail(p, PARLEY_ERR_AUTH, 1,
                            "%s: SASL success without the server's SCRAM proof", p->peer);
                r = SASL_FAILED;
            } else {
                r = verify_proof(p, data, len);
            }
        }
        if (r == SASL_CONTINUE) {
            client_log(p, 1, "%s: authenticated with %s", p->peer, p->mechanism);
            r = SASL_SUCCESS;
        }
    } else {
        client_fail(p, PARLEY_ERR_PROTOCOL, 1, "%s: unexpected <%s/> during SASL", p->peer, el->name);
        r = SASL_FAILED;
    }
    free(data);
    return r;
}
