/* presence.c - subscriptions, availability broadcast, probes and directed presence for
 * local accounts (RFC 6121 sections 3 and 4), with contacts here or in other domains
 * (reached over server links, s2s.h; their presence comes in via presence_from_remote). */
#include "presence.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "conn.h"
#include "message.h"
#include "pep.h"
#include "node.h"
#include "roster.h"
#include "router.h"
#include "s2s.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

static int has_to(sub_state s) { return s == SUB_TO || s == SUB_BOTH; }
static int has_from(sub_state s) { return s == SUB_FROM || s == SUB_BOTH; }

/* Send a copy of stanza to every available resource of a local bare JID on this node. */
static void to_available_here(server *srv, const char *bare, const xml_node *stanza)
{
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
        if (s->available)
            c2s_send(s, stanza);
}

/* ... on this node and on the others (node.h). */
static void to_available(server *srv, const char *bare, const xml_node *stanza)
{
    to_available_here(srv, bare, stanza);
    node_copy_to_user(srv, bare, stanza, NODE_AVAILABLE);
}

static int is_remote_bare(server *srv, const char *bare)
{
    const char *at = strchr(bare, '@');
    return router_is_remote_domain(srv, at ? at + 1 : bare);
}

/* A copy of stanza to a contact (bare JID): its available resources here, or its
 * domain's server. */
static void to_contact(server *srv, const char *contact, const xml_node *stanza)
{
    if (!is_remote_bare(srv, contact)) {
        to_available(srv, contact, stanza);
        return;
    }
    xml_node *copy = xml_copy(stanza);
    xml_set_attr(copy, "to", contact);
    s2s_send(srv, copy);
}

/* A presence of type (probe, subscribe...) from a local bare JID to a remote one. */
static void send_remote(server *srv, const char *type, const char *from, const char *to)
{
    xml_node *p = xml_new(XMLNS_CLIENT, "presence");
    if (type)
        xml_set_attr(p, "type", type);
    xml_set_attr(p, "from", from);
    xml_set_attr(p, "to", to);
    s2s_send(srv, p);
}

/* Deliver the current presence of every available resource of `of` to `to` (a session or,
 * when to_session is NULL, every available resource of to_bare): answers a probe. */
static void send_current_presence(server *srv, const char *of, c2s *to_session, const char *to_bare)
{
    for (c2s *r = router_sessions(srv, of); r; r = r->next_resource) {
        if (!r->available || !r->presence)
            continue;
        xml_node *p = xml_copy(r->presence);
        xml_set_attr(p, "from", r->full);
        if (to_session) {
            xml_set_attr(p, "to", to_session->full);
            c2s_send(to_session, p);
        } else {
            xml_set_attr(p, "to", to_bare);
            to_contact(srv, to_bare, p);
        }
        xml_free(p);
    }
}

/* Tell `to_bare`'s available resources that every resource of `of` is unavailable. */
static void send_unavailable_from_all(server *srv, const char *of, const char *to_bare)
{
    for (c2s *r = router_sessions(srv, of); r; r = r->next_resource) {
        if (!r->available)
            continue;
        xml_node *p = xml_new(XMLNS_CLIENT, "presence");
        xml_set_attr(p, "type", "unavailable");
        xml_set_attr(p, "from", r->full);
        xml_set_attr(p, "to", to_bare);
        to_contact(srv, to_bare, p);
        xml_free(p);
    }
}

/* The contact stops receiving the user's presence (RFC 6121 3.2 and 3.3): from -> none,
 * both -> to, any pending request dropped. Returns -1 if there was nothing to cancel,
 * else whether the contact had been receiving presence. */
static int cancel_from(roster_item *item)
{
    if (!has_from(item->sub) && !item->pending_in)
        return -1;
    int had_from = has_from(item->sub);
    item->sub = item->sub == SUB_BOTH ? SUB_TO : SUB_NONE;
    item->pending_in = 0;
    free(item->pending_in_stanza);
    item->pending_in_stanza = NULL;
    return had_from;
}

/* The user stops receiving the contact's presence: to -> none, both -> from, any request
 * withdrawn. Returns 0 if there was nothing to cancel, 1 otherwise. */
static int cancel_to(roster_item *item)
{
    if (!has_to(item->sub) && !item->ask_out)
        return 0;
    item->sub = item->sub == SUB_BOTH ? SUB_FROM : SUB_NONE;
    item->ask_out = 0;
    return 1;
}

static int load_item(server *srv, const char *user, const char *contact, roster_item *item)
{
    memset(item, 0, sizeof *item);
    store_status st = store_roster_get_item(srv->store, user, contact, item);
    if (st == STORE_NOT_FOUND) {
        item->contact = xstrdup(contact);
        return 0;
    }
    if (st != STORE_OK) {
        log_error("roster of %s: %s", user, store_last_error(srv->store));
        return -1;
    }
    return 1;
}

static int is_local_account(server *srv, const jid *j)
{
    if (!j->local || !router_is_local_domain(srv, j->domain))
        return 0;
    char *bare = jid_bare(j);
    int exists = store_user_exists(srv->store, bare) == STORE_OK;
    free(bare);
    return exists;
}

/* ---- inbound subscription stanzas, arriving for local account `user` from `contact` ---- */

static void inbound_subscription(server *srv, const char *user, const char *contact,
                                 const char *type, xml_node *stanza)
{
    roster_item item;
    int found = load_item(srv, user, contact, &item);
    if (found < 0)
        return;
    int changed = 0, deliver = 1;
    if (strcmp(type, "subscribe") == 0) {
        if (has_from(item.sub)) {
            /* Already approved: answer on the user's behalf (RFC 6121 3.1.3). */
            deliver = 0;
            xml_node *ok = xml_new(XMLNS_CLIENT, "presence");
            xml_set_attr(ok, "type", "subscribed");
            xml_set_attr(ok, "from", user);
            xml_set_attr(ok, "to", contact);
            router_deliver(srv, ok);
        } else {
            item.pending_in = 1;
            free(item.pending_in_stanza);
            item.pending_in_stanza = xml_to_string(stanza, XMLNS_CLIENT);
            /* Stored without a push: "None + Pending In" items are not shown (2.1.2.4). */
            if (store_roster_put(srv->store, user, &item) != STORE_OK)
                log_error("roster of %s: %s", user, store_last_error(srv->store));
        }
    } else if (strcmp(type, "subscribed") == 0) {
        if (item.ask_out && !has_to(item.sub)) {
            item.sub = item.sub == SUB_FROM ? SUB_BOTH : SUB_TO;
            item.ask_out = 0;
            changed = 1;
        } else {
            deliver = 0;
        }
    } else if (strcmp(type, "unsubscribe") == 0) {
        int had_from = cancel_from(&item);
        changed = had_from >= 0;
        deliver = changed;
        if (had_from > 0)
            send_unavailable_from_all(srv, user, contact);
    } else { /* unsubscribed */
        changed = deliver = cancel_to(&item);
    }
    if (changed)
        roster_save_and_push(srv, user, &item);
    if (deliver) {
        xml_set_attr(stanza, "to", user);
        to_available(srv, user, stanza);
        if (strcmp(type, "subscribed") == 0)
            send_current_presence(srv, contact, NULL, user);
        else if (strcmp(type, "unsubscribed") == 0)
            send_unavailable_from_all(srv, contact, user);
    }
    roster_item_clear(&item);
}

/* ---- outbound subscription stanzas from a client ---- */

static void outbound_subscription(server *srv, c2s *s, jid *to, const char *type, xml_node *stanza)
{
    char *contact = jid_bare(to);
    roster_item item;
    int found = load_item(srv, s->user, contact, &item);
    if (found < 0) {
        free(contact);
        return;
    }
    int changed = 0, route = 1;
    if (strcmp(type, "subscribe") == 0) {
        if (!has_to(item.sub) && !item.ask_out) {
            item.ask_out = 1;
            changed = 1;
        }
    } else if (strcmp(type, "unsubscribe") == 0) {
        changed = cancel_to(&item);
    } else if (strcmp(type, "subscribed") == 0) {
        if (item.pending_in) {
            item.sub = item.sub == SUB_TO ? SUB_BOTH : SUB_FROM;
            item.pending_in = 0;
            free(item.pending_in_stanza);
            item.pending_in_stanza = NULL;
            changed = 1;
        } else {
            route = 0; /* nothing to approve: pre-approval is not offered */
        }
    } else { /* unsubscribed */
        int had_from = cancel_from(&item);
        changed = route = had_from >= 0;
        if (had_from > 0 && (is_local_account(srv, to) || router_is_remote_domain(srv, to->domain)))
            send_unavailable_from_all(srv, s->user, contact);
    }
    if (changed)
        roster_save_and_push(srv, s->user, &item);
    if (route) {
        /* Subscription stanzas go to the bare JID, from the bare JID (RFC 6121 3.1.2). */
        xml_set_attr(stanza, "to", contact);
        xml_set_attr(stanza, "from", s->user);
        int remote = router_is_remote_domain(srv, to->domain);
        int local = is_local_account(srv, to);
        if (local)
            inbound_subscription(srv, contact, s->user, type, stanza);
        else if (remote)
            s2s_send(srv, xml_copy(stanza));
        if (strcmp(type, "subscribed") == 0 && (remote || local))
            send_current_presence(srv, s->user, NULL, contact);
        if (strcmp(type, "subscribed") == 0 && local)
            pep_subscription_approved(srv, s->user, contact);
    }
    roster_item_clear(&item);
    free(contact);
}

/* ---- availability ---- */

typedef struct broadcast_ctx {
    server *srv;
    xml_node *stanza;
} broadcast_ctx;

/* The user's roster, or none (logged) if the store fails. */
static void get_roster(server *srv, c2s *s, roster_item **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (store_roster_get(srv->store, s->user, items, n) != STORE_OK) {
        log_error("roster of %s: %s", s->user, store_last_error(srv->store));
        *n = 0;
    }
}

/* The broadcast of stanza to the user's contacts and own resources. At login (the initial
 * presence) the copies for other nodes are left to login_nodes. */
static void broadcast_to(server *srv, c2s *s, xml_node *stanza, const roster_item *items, size_t n,
                         int at_login)
{
    for (size_t i = 0; i < n; i++) {
        if (!has_from(items[i].sub))
            continue;
        xml_set_attr(stanza, "to", items[i].contact);
        if (at_login && !is_remote_bare(srv, items[i].contact))
            to_available_here(srv, items[i].contact, stanza);
        else
            to_contact(srv, items[i].contact, stanza);
        if (s->directed)
            free(dict_del(s->directed, items[i].contact));
    }
    /* The user's own resources, the sender included (RFC 6121 4.2.2). */
    xml_set_attr(stanza, "to", s->user);
    for (c2s *r = router_sessions(srv, s->user); r; r = r->next_resource)
        if (r->available || r == s)
            c2s_send(r, stanza);
    if (!at_login)
        node_copy_to_user(srv, s->user, stanza, NODE_AVAILABLE);
}

static void broadcast(server *srv, c2s *s, xml_node *stanza)
{
    roster_item *items;
    size_t n;
    get_roster(srv, s, &items, &n);
    broadcast_to(srv, s, stanza, items, n, 0);
    roster_items_free(items, n);
}

static int send_directed_unavailable(void *ud, const char *target, void *value)
{
    broadcast_ctx *ctx = ud;
    xml_set_attr(ctx->stanza, "to", target);
    router_deliver(ctx->srv, xml_copy(ctx->stanza));
    return 0;
}

/* Login-time presence for the sessions of bare (a local contact, or the user) on other
 * nodes: the initial presence if broadcast, and a probe (answered to s) if probe. Unlike
 * later presence, asked of the store when the replica shows bare nowhere available: two
 * contacts signing in on two nodes at once would otherwise each miss the other
 * (docs/federation.md, "The directory replica"). */
static void login_nodes(server *srv, c2s *s, const char *bare, xml_node *broadcast, int probe)
{
    xml_node *p = NULL;
    if (probe) {
        p = xml_new(XMLNS_CLIENT, "presence");
        xml_set_attr(p, "type", "probe");
        xml_set_attr(p, "from", s->full);
        xml_set_attr(p, "to", bare);
    }
    if (broadcast)
        xml_set_attr(broadcast, "to", bare);
    if (broadcast || p)
        node_copy_at_login(srv, bare, broadcast, p);
    xml_free(p);
}

static void initial_presence(server *srv, c2s *s, xml_node *stanza, const roster_item *items,
                             size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* Probe: local contacts are answered directly, remote ones by their server. */
        int remote = is_remote_bare(srv, items[i].contact);
        if (has_to(items[i].sub) && remote)
            send_remote(srv, "probe", s->user, items[i].contact);
        else if (has_to(items[i].sub))
            send_current_presence(srv, items[i].contact, s, NULL);
        if (!remote)
            login_nodes(srv, s, items[i].contact, has_from(items[i].sub) ? stanza : NULL,
                        has_to(items[i].sub));
        /* Subscription requests that arrived while we were away (RFC 6121 3.1.3). */
        if (items[i].pending_in && items[i].pending_in_stanza) {
            xml_node *req = xml_parse_document(items[i].pending_in_stanza,
                                               strlen(items[i].pending_in_stanza), XMLNS_CLIENT,
                                               srv->cfg.max_stanza_size);
            if (req) {
                c2s_send(s, req);
                xml_free(req);
            }
        }
    }
    login_nodes(srv, s, s->user, stanza, 1);
    /* The user's other resources are also presences this session should know. */
    for (c2s *r = router_sessions(srv, s->user); r; r = r->next_resource) {
        if (r == s || !r->available || !r->presence)
            continue;
        xml_node *p = xml_copy(r->presence);
        xml_set_attr(p, "from", r->full);
        xml_set_attr(p, "to", s->full);
        c2s_send(s, p);
        xml_free(p);
    }
}

static void available_presence(server *srv, c2s *s, xml_node *stanza)
{
    char *prio = xml_child_text(stanza, NULL, "priority");
    int priority = prio ? atoi(prio) : 0;
    free(prio);
    if (priority < -128)
        priority = -128;
    if (priority > 127)
        priority = 127;
    int initial = !s->available;
    s->priority = priority;
    s->available = 1;
    xml_free(s->presence);
    s->presence = xml_copy(stanza);
    xml_set_attr(s->presence, "to", NULL);
    node_session_update(srv, s->full, 1, priority);
    /* One roster read serves the broadcast and, for the initial presence, the probes. */
    roster_item *items;
    size_t n;
    get_roster(srv, s, &items, &n);
    broadcast_to(srv, s, stanza, items, n, initial);
    if (initial)
        initial_presence(srv, s, stanza, items, n);
    roster_items_free(items, n);
    if (priority >= 0)
        message_flush_offline(srv, s);
    pep_presence(srv, s, s->presence);
}

void presence_session_end(server *srv, c2s *s)
{
    /* Directed presence counts even without a broadcast one: a client may join a room
     * before (or without) its initial presence, and the room must hear it go. */
    if (!s->available && !s->directed)
        return;
    xml_node *p = xml_new(XMLNS_CLIENT, "presence");
    xml_set_attr(p, "type", "unavailable");
    xml_set_attr(p, "from", s->full);
    if (s->available) {
        s->available = 0;
        node_session_update(srv, s->full, 0, 0);
        pep_session_end(srv, s);
        broadcast(srv, s, p);
    }
    if (s->directed) {
        broadcast_ctx ctx = {srv, p};
        dict_each(s->directed, send_directed_unavailable, &ctx);
        dict_free(s->directed, free);
        s->directed = NULL;
    }
    xml_free(p);
    xml_free(s->presence);
    s->presence = NULL;
}

static void directed_presence(server *srv, c2s *s, jid *to, xml_node *stanza)
{
    const char *type = xml_get_attr(stanza, "type");
    char *target = jid_full(to);
    if (!type) {
        if (!s->directed)
            s->directed = dict_new();
        if (!dict_get(s->directed, target))
            dict_set(s->directed, target, xstrdup(target));
    } else if (s->directed) {
        free(dict_del(s->directed, target));
    }
    free(target);
    /* A room (joining is directed presence, XEP-0045 7.2) or a component, or a local
     * account; router_deliver reaches both. */
    if (router_is_service(srv, to->domain) || is_local_account(srv, to)) {
        router_deliver(srv, stanza);
        return;
    }
    if (router_is_remote_domain(srv, to->domain)) {
        s2s_send(srv, stanza);
        return;
    }
    xml_free(stanza);
}

static void probe(server *srv, c2s *s, jid *to)
{
    char *contact = jid_bare(to);
    roster_item item;
    if (load_item(srv, s->user, contact, &item) > 0 && has_to(item.sub)) {
        if (router_is_remote_domain(srv, to->domain))
            send_remote(srv, "probe", s->user, contact);
        else
            send_current_presence(srv, contact, s, NULL);
    }
    roster_item_clear(&item);
    free(contact);
}

void presence_from_client(server *srv, c2s *s, xml_node *stanza)
{
    const char *type = xml_get_attr(stanza, "type");
    const char *to_attr = xml_get_attr(stanza, "to");
    if (!to_attr) {
        if (!type)
            available_presence(srv, s, stanza);
        else if (strcmp(type, "unavailable") == 0)
            presence_session_end(srv, s);
        xml_free(stanza);
        return;
    }
    jid to;
    if (jid_parse(to_attr, &to) < 0) {
        router_bounce(srv, stanza, "modify", "jid-malformed", "the 'to' address is not a valid JID");
        xml_free(stanza);
        return;
    }
    if (type && (strcmp(type, "subscribe") == 0 || strcmp(type, "subscribed") == 0 ||
                 strcmp(type, "unsubscribe") == 0 || strcmp(type, "unsubscribed") == 0)) {
        if (to.local)
            outbound_subscription(srv, s, &to, type, stanza);
        xml_free(stanza);
    } else if (type && strcmp(type, "probe") == 0) {
        probe(srv, s, &to);
        xml_free(stanza);
    } else if (type && strcmp(type, "error") == 0) {
        router_deliver(srv, stanza);
    } else if (!type || strcmp(type, "unavailable") == 0) {
        char *full = jid_full(&to);
        xml_set_attr(stanza, "to", full);
        free(full);
        directed_presence(srv, s, &to, stanza);
    } else {
        router_bounce(srv, stanza, "modify", "bad-request", "unknown presence type");
        xml_free(stanza);
    }
    jid_clear(&to);
}

/* ---- presence from other domains ---- */

/* A contact's server probes a local user (RFC 6121 4.3.2): the current presence of each
 * available resource if the contact is subscribed, else unavailable; nothing at all to
 * a prober without a subscription (the user's presence is private). */
static void answer_probe(server *srv, const char *user, const char *contact, const char *prober)
{
    roster_item item;
    if (load_item(srv, user, contact, &item) <= 0 || !has_from(item.sub)) {
        roster_item_clear(&item);
        return;
    }
    roster_item_clear(&item);
    int any = 0;
    for (c2s *r = router_sessions(srv, user); r; r = r->next_resource) {
        if (!r->available || !r->presence)
            continue;
        xml_node *p = xml_copy(r->presence);
        xml_set_attr(p, "from", r->full);
        xml_set_attr(p, "to", prober);
        s2s_send(srv, p);
        any = 1;
    }
    /* Sessions on other nodes answer for themselves (node.h). */
    xml_node *probe = xml_new(XMLNS_CLIENT, "presence");
    xml_set_attr(probe, "type", "probe");
    xml_set_attr(probe, "from", prober);
    xml_set_attr(probe, "to", user);
    any |= node_copy_to_user(srv, user, probe, NODE_AVAILABLE) > 0;
    xml_free(probe);
    if (!any)
        send_remote(srv, "unavailable", user, prober);
}

void presence_from_remote(server *srv, xml_node *stanza)
{
    const char *type = xml_get_attr(stanza, "type");
    jid to, from;
    if (jid_parse(xml_get_attr(stanza, "to"), &to) < 0) {
        xml_free(stanza);
        return;
    }
    if (jid_parse(xml_get_attr(stanza, "from"), &from) < 0) {
        jid_clear(&to);
        xml_free(stanza);
        return;
    }
    char *user = jid_bare(&to), *contact = jid_bare(&from);
    int subscription = type && (strcmp(type, "subscribe") == 0 || strcmp(type, "subscribed") == 0 ||
                                strcmp(type, "unsubscribe") == 0 ||
                                strcmp(type, "unsubscribed") == 0);
    if (store_user_exists(srv->store, user) != STORE_OK) {
        /* RFC 6121 3.1.3: a request for an account that does not exist is declined. */
        if (str_eq(type, "subscribe"))
            send_remote(srv, "unsubscribed", user, contact);
    } else if (subscription) {
        xml_set_attr(stanza, "from", contact); /* subscriptions are between bare JIDs */
        inbound_subscription(srv, user, contact, type, stanza);
    } else if (str_eq(type, "probe")) {
        char *prober = jid_full(&from);
        answer_probe(srv, user, contact, prober);
        free(prober);
    } else if (!type || strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0) {
        if (to.resource) {
            c2s *target = router_session(srv, user, to.resource);
            if (target && c2s_is_live(target))
                c2s_send(target, stanza);
        } else {
            /* Broadcast presence reaches the user only from contacts it subscribed to. */
            roster_item item;
            if (str_eq(type, "error") ||
                (load_item(srv, user, contact, &item) > 0 && has_to(item.sub)))
                to_available(srv, user, stanza);
            if (!str_eq(type, "error"))
                roster_item_clear(&item);
        }
    }
    free(user);
    free(contact);
    jid_clear(&to);
    jid_clear(&from);
    xml_free(stanza);
}
