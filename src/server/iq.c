/* iq.c - IQs answered by the server itself: XEP-0030 discovery, XEP-0199 ping,
 * XEP-0092 version, the RFC 3921 session no-op, and IQs to an account's bare JID. */
#include "iq.h"
#include "../common/util.h"
#include "../common/version.h"
#include "carbons.h"
#include "mam.h"
#include "iq_out.h"
#include "pep.h"
#include "policy_service.h"
#include "roster.h"
#include "router.h"
#include "stanza.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

/* What the server itself supports, in disco#info order. */
static const char *server_features[] = {
    XMLNS_DISCO_INFO, XMLNS_DISCO_ITEMS, XMLNS_PING, XMLNS_VERSION, "msgoffline", XMLNS_CARBONS,
    POLICY_NS,
};
static const char *account_features[] = {XMLNS_DISCO_INFO, XMLNS_DISCO_ITEMS, XMLNS_ROSTER,
                                         XMLNS_ROSTERVER, XMLNS_MAM, XMLNS_SID};

static void reply(c2s *origin, xml_node *r)
{
    c2s_send(origin, r);
    xml_free(r);
}

static void reply_error(c2s *origin, const xml_node *iq, const char *etype, const char *cond,
                        const char *text)
{
    xml_node *err = stanza_error(iq, etype, cond, text);
    if (err)
        reply(origin, err);
}

static xml_node *query_result(const xml_node *iq, const char *ns, const char *from)
{
    xml_node *r = stanza_iq_result(iq);
    xml_set_attr(r, "from", from);
    xml_node *q = xml_add_child(r, ns, "query");
    const char *node = xml_get_attr(xml_first_element(iq), "node");
    if (node)
        xml_set_attr(q, "node", node);
    return r;
}

/* extra: adds more identities and features (PEP on accounts), or NULL. */
static void disco_info(c2s *origin, const xml_node *iq, const char *from, const char *category,
                       const char *type, const char *name, const char **features, size_t n,
                       void (*extra)(xml_node *query))
{
    if (xml_get_attr(xml_first_element(iq), "node")) {
        reply_error(origin, iq, "cancel", "item-not-found", "no such node");
        return;
    }
    xml_node *r = query_result(iq, XMLNS_DISCO_INFO, from);
    xml_node *q = xml_first_element(r);
    xml_node *id = xml_add_child(q, NULL, "identity");
    xml_set_attr(id, "category", category);
    xml_set_attr(id, "type", type);
    if (name)
        xml_set_attr(id, "name", name);
    for (size_t i = 0; i < n; i++)
        xml_set_attr(xml_add_child(q, NULL, "feature"), "var", features[i]);
    if (extra)
        extra(q);
    reply(origin, r);
}

/* One service (rooms, file upload, components) in the server's disco#items. */
static void add_item(void *ud, const char *domain)
{
    xml_set_attr(xml_add_child(ud, NULL, "item"), "jid", domain);
}

static void version(server *srv, c2s *origin, const xml_node *iq)
{
    xml_node *r = query_result(iq, XMLNS_VERSION, srv->cfg.domain);
    xml_node *q = xml_first_element(r);
    xml_node *name = xml_add_child(q, NULL, "name");
    xml_add_text(name, PARLEY_NAME, strlen(PARLEY_NAME));
    if (!srv->cfg.hide_version) {
        xml_node *v = xml_add_child(q, NULL, "version");
        xml_add_text(v, PARLEY_VERSION, strlen(PARLEY_VERSION));
        xml_node *os = xml_add_child(q, NULL, "os");
        xml_add_text(os, "Linux", 5);
    }
    reply(origin, r);
}

/* Results and errors addressed to us need no answer (RFC 6120 8.2.3). */
static int is_request(const xml_node *iq, const xml_node **payload)
{
    const char *type = xml_get_attr(iq, "type");
    *payload = xml_first_element(iq);
    return str_eq(type, "get") || str_eq(type, "set");
}

void iq_to_server(server *srv, c2s *origin, xml_node *iq)
{
    const xml_node *p;
    if (!is_request(iq, &p)) {
        iq_out_answer(srv, iq); /* an answer to a query the server sent (caps, pushes) */
        xml_free(iq);
        return;
    }
    int get = str_eq(xml_get_attr(iq, "type"), "get");
    if (!p) {
        reply_error(origin, iq, "modify", "bad-request", "an IQ request carries one payload");
    } else if (get && xml_is(p, XMLNS_DISCO_INFO, "query")) {
        disco_info(origin, iq, srv->cfg.domain, "server", "im", PARLEY_NAME, server_features,
                   ARRAY_LEN(server_features), NULL);
    } else if (get && xml_is(p, XMLNS_DISCO_ITEMS, "query")) {
        xml_node *r = query_result(iq, XMLNS_DISCO_ITEMS, srv->cfg.domain);
        /* The services (group chat, components) are how clients find them (XEP-0030). */
        if (!xml_get_attr(p, "node"))
            router_each_service(srv, add_item, xml_first_element(r));
        reply(origin, r);
    } else if (get && xml_is(p, XMLNS_PING, "ping")) {
        xml_node *r = stanza_iq_result(iq);
        xml_set_attr(r, "from", srv->cfg.domain);
        reply(origin, r);
    } else if (get && xml_is(p, XMLNS_VERSION, "query")) {
        version(srv, origin, iq);
    } else if (!get && xml_is(p, XMLNS_SESSION, "session")) {
        reply(origin, stanza_iq_result(iq));
    } else if (xml_is(p, XMLNS_CARBONS, "enable") || xml_is(p, XMLNS_CARBONS, "disable")) {
        carbons_handle_iq(srv, origin, iq);
        return;
    } else if (xml_is(p, XMLNS_ROSTER, "query")) {
        /* Some clients address the roster to the domain; it is the account's business. */
        iq_to_account(srv, origin, iq, origin->user);
        return;
    } else if (xml_is(p, POLICY_NS, "policy")) {
        policy_service_iq(srv, origin, iq);
        return;
    } else {
        reply_error(origin, iq, "cancel", "service-unavailable", NULL);
    }
    xml_free(iq);
}

static int subscribed_to(server *srv, const char *requester, const char *account)
{
    roster_item item;
    memset(&item, 0, sizeof item);
    int ok = store_roster_get_item(srv->store, account, requester, &item) == STORE_OK &&
             (item.sub == SUB_FROM || item.sub == SUB_BOTH);
    roster_item_clear(&item);
    return ok;
}

void iq_to_account(server *srv, c2s *origin, xml_node *iq, const char *bare)
{
    const xml_node *p;
    if (!is_request(iq, &p)) {
        if (!xml_get_attr(iq, "to"))
            iq_out_answer(srv, iq); /* an answer to the server's query, without 'to' */
        xml_free(iq);
        return;
    }
    int own = strcmp(bare, origin->user) == 0;
    int get = str_eq(xml_get_attr(iq, "type"), "get");
    if (own && p && xml_is(p, XMLNS_ROSTER, "query")) {
        roster_handle_iq(srv, origin, iq);
        return;
    }
    if (own && p && (xml_is(p, XMLNS_CARBONS, "enable") || xml_is(p, XMLNS_CARBONS, "disable"))) {
        carbons_handle_iq(srv, origin, iq);
        return;
    }
    if (own && mam_is_request(p)) {
        mam_handle_iq(srv, origin, iq);
        return;
    }
    if (own && p && xml_is(p, POLICY_NS, "policy")) {
        policy_service_iq(srv, origin, iq);
        return;
    }
    if (p && pep_is_request(p)) {
        pep_handle_iq(srv, origin, iq, bare);
        return;
    }
    if (!own && store_user_exists(srv->store, bare) != STORE_OK) {
        reply_error(origin, iq, "cancel", "service-unavailable", NULL);
    } else if (p && get && xml_is(p, XMLNS_DISCO_INFO, "query") &&
               (own || subscribed_to(srv, origin->user, bare))) {
        disco_info(origin, iq, bare, "account", "registered", NULL, account_features,
                   ARRAY_LEN(account_features), pep_disco_info);
    } else if (p && get && xml_is(p, XMLNS_DISCO_ITEMS, "query") &&
               (own || subscribed_to(srv, origin->user, bare))) {
        xml_node *r = query_result(iq, XMLNS_DISCO_ITEMS, bare);
        if (!xml_get_attr(p, "node"))
            pep_disco_items(srv, origin->user, bare, xml_first_element(r));
        reply(origin, r);
    } else if (own && p && get && xml_is(p, XMLNS_PING, "ping")) {
        xml_node *r = stanza_iq_result(iq);
        xml_set_attr(r, "from", bare);
        reply(origin, r);
    } else if (!own && p && xml_is(p, XMLNS_ROSTER, "query")) {
        reply_error(origin, iq, "auth", "forbidden", "that is not your roster");
    } else {
        reply_error(origin, iq, "cancel", "service-unavailable", NULL);
    }
    xml_free(iq);
}
