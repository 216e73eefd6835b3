/* pep_events.c - PEP events: notifications to interested sessions, the last items sent
 * when a session announces its interests or a contact is approved, and the per-server
 * state with the entity caps table (pep_internal.h, caps.h). */
#include "pep_internal.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "conn.h"
#include "node.h"
#include "router.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

static void caps_ready(server *srv, const char *full);

struct pep *pep_of(server *srv)
{
    if (!srv->pep) {
        srv->pep = xcalloc(1, sizeof *srv->pep);
        srv->pep->caps = caps_new(caps_ready);
    }
    return srv->pep;
}

void pep_free(server *srv)
{
    if (!srv->pep)
        return;
    caps_free(srv->pep->caps);
    free(srv->pep);
    srv->pep = NULL;
}

/* Does contact receive owner's presence? */
int pep_subscribed(server *srv, const char *owner, const char *contact)
{
    roster_item it;
    int ok = store_roster_get_item(srv->store, owner, contact, &it) == STORE_OK &&
             (it.sub == SUB_FROM || it.sub == SUB_BOTH);
    roster_item_clear(&it);
    return ok;
}

/* ---- notifications ---- */

/* Send a copy of msg (a headline from owner) to session s. */
static void deliver(c2s *s, xml_node *msg)
{
    if (conn_is_closing(s->conn))
        return;
    xml_set_attr(msg, "to", s->full);
    c2s_send(s, msg);
}

static int interested(server *srv, c2s *s, const char *notify_feature)
{
    return s->state == C2S_BOUND && s->available &&
           caps_has(pep_of(srv)->caps, s->full, notify_feature);
}

/* <message type='headline' from=owner><event xmlns=pubsub#event>(child)</event></message> */
static xml_node *event_message(const char *owner, xml_node *child)
{
    xml_node *msg = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(msg, "type", "headline");
    xml_set_attr(msg, "from", owner);
    char id[17];
    random_token(id, 16);
    xml_set_attr(msg, "id", id);
    xml_append(xml_add_child(msg, XMLNS_PUBSUB_EVENT, "event"), child);
    return msg;
}

/* msg to the sessions of bare on this node (every session when bare is NULL) that want
 * feature. */
static void notify_here(server *srv, const char *bare, const char *feature, xml_node *msg)
{
    for (c2s *s = bare ? router_sessions(srv, bare) : srv->sessions; s;
         s = bare ? s->next_resource : s->next_all)
        if (interested(srv, s, feature))
            deliver(s, msg);
}

/* The same event for the sessions of bare (NULL: all) on other nodes: they know their
 * sessions' caps, so each gets the event with the feature and picks the interested ones. */
static void notify_other_nodes(server *srv, const char *bare, const char *feature,
                               const xml_node *msg)
{
    xml_node *env = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(env, "from", srv->cfg.domain);
    xml_set_attr(env, "to", bare ? bare : srv->cfg.domain);
    xml_node *p = xml_add_child(env, XMLNS_NODE, "pep");
    xml_set_attr(p, "feature", feature);
    xml_append(p, xml_copy(msg));
    if (bare)
        node_copy_to_user(srv, bare, env, NODE_AVAILABLE);
    else
        node_copy_to_all(srv, env);
    xml_free(env);
}

/* Send an event about owner's node to every interested session allowed to see it, on
 * every node: the owner's own, then contacts with a presence subscription (presence) or
 * anyone on this server (open). Takes ownership of child. */
void pep_notify(server *srv, const char *owner, const char *node, const node_cfg *c,
                   xml_node *child)
{
    xml_node *msg = event_message(owner, child);
    char *feature = xasprintf("%s+notify", node);
    if (c->open) {
        notify_here(srv, NULL, feature, msg);
        notify_other_nodes(srv, NULL, feature, msg);
    } else {
        notify_here(srv, owner, feature, msg);
        notify_other_nodes(srv, owner, feature, msg);
        roster_item *items = NULL;
        size_t n = 0;
        if (store_roster_get(srv->store, owner, &items, &n) != STORE_OK) {
            log_error("PEP notification of %s: %s", owner, store_last_error(srv->store));
            n = 0;
        }
        for (size_t i = 0; i < n; i++) {
            if (items[i].sub != SUB_FROM && items[i].sub != SUB_BOTH)
                continue;
            notify_here(srv, items[i].contact, feature, msg);
            const char *at = strchr(items[i].contact, '@');
            if (at && router_is_local_domain(srv, at + 1))
                notify_other_nodes(srv, items[i].contact, feature, msg);
        }
        roster_items_free(items, n);
    }
    free(feature);
    xml_free(msg);
}

/* <item id=...>payload</item> (in namespace ns) from a stored payload; NULL (logged) if
 * it does not parse. */
xml_node *pep_item_element(server *srv, const char *ns, const char *id, const char *payload)
{
    xml_node *item = xml_new(ns, "item");
    xml_set_attr(item, "id", id);
    if (*payload) {
        xml_node *p = xml_parse_document(payload, strlen(payload), "",
                                         srv->cfg.max_stanza_size * 2);
        if (!p) {
            log_error("PEP item %s: the stored payload does not parse; skipped", id);
            xml_free(item);
            return NULL;
        }
        xml_append(item, p);
    }
    return item;
}

/* ---- last items ---- */

static void collect_node(void *ud, const char *node, const char *cfg)
{
    node_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->names = xrealloc(l->names, l->cap * sizeof *l->names);
        l->configs = xrealloc(l->configs, l->cap * sizeof *l->configs);
    }
    l->names[l->n] = xstrdup(node);
    l->configs[l->n++] = xstrdup(cfg);
}

int pep_nodes_of(server *srv, const char *owner, node_list *out)
{
    memset(out, 0, sizeof *out);
    if (store_pep_node_list(srv->store, owner, collect_node, out) != STORE_OK) {
        log_error("PEP nodes of %s: %s", owner, store_last_error(srv->store));
        pep_node_list_free(out);
        return -1;
    }
    return 0;
}

void pep_node_list_free(node_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        free(l->configs[i]);
    }
    free(l->names);
    free(l->configs);
    memset(l, 0, sizeof *l);
}

typedef struct last_item {
    char *id;
    char *payload;
} last_item;

static void keep_last(void *ud, const char *id, const char *publisher, const char *payload)
{
    last_item *li = ud;
    free(li->id);
    free(li->payload);
    li->id = xstrdup(id);
    li->payload = xstrdup(payload);
}

/* Send session s the last item of each of owner's nodes s is interested in. */
static void send_last_of(server *srv, c2s *s, const char *owner)
{
    node_list nodes;
    if (pep_nodes_of(srv, owner, &nodes) < 0)
        return;
    for (size_t i = 0; i < nodes.n; i++) {
        char *feature = xasprintf("%s+notify", nodes.names[i]);
        int want = interested(srv, s, feature);
        free(feature);
        if (!want)
            continue;
        last_item li = {0};
        if (store_pep_items(srv->store, owner, nodes.names[i], NULL, 1, keep_last, &li) ==
                STORE_OK &&
            li.id) {
            xml_node *item = pep_item_element(srv, XMLNS_PUBSUB_EVENT, li.id, li.payload);
            if (item) {
                xml_node *items = xml_new(XMLNS_PUBSUB_EVENT, "items");
                xml_set_attr(items, "node", nodes.names[i]);
                xml_append(items, item);
                xml_node *msg = event_message(owner, items);
                deliver(s, msg);
                xml_free(msg);
            }
        }
        free(li.id);
        free(li.payload);
    }
    pep_node_list_free(&nodes);
}

/* The last items a session that just announced its interests should have: its own
 * account's, and those of every contact whose presence it receives. Open nodes of other
 * accounts are not broadcast at sign-in (that would be every account's); clients fetch
 * those when they need them. */
static void send_last_items(server *srv, c2s *s)
{
    send_last_of(srv, s, s->user);
    roster_item *items = NULL;
    size_t n = 0;
    if (store_roster_get(srv->store, s->user, &items, &n) != STORE_OK) {
        log_error("PEP last items for %s: %s", s->full, store_last_error(srv->store));
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (items[i].sub == SUB_TO || items[i].sub == SUB_BOTH)
            send_last_of(srv, s, items[i].contact);
    roster_items_free(items, n);
}

static void caps_ready(server *srv, const char *full)
{
    jid j;
    if (jid_parse(full, &j) < 0)
        return;
    char *bare = jid_bare(&j);
    c2s *s = j.resource ? router_session(srv, bare, j.resource) : NULL;
    if (s && s->available && !conn_is_closing(s->conn))
        send_last_items(srv, s);
    free(bare);
    jid_clear(&j);
}

void pep_presence(server *srv, c2s *s, const xml_node *presence)
{
    if (caps_presence(srv, pep_of(srv)->caps, s, presence) == CAPS_KNOWN)
        send_last_items(srv, s);
}

void pep_session_moved(server *srv, c2s *s)
{
    /* The session had its last items on its old node: only its interests are learnt. */
    if (s->presence)
        caps_presence(srv, pep_of(srv)->caps, s, s->presence);
}

void pep_session_end(server *srv, c2s *s)
{
    if (srv->pep && s->full)
        caps_forget(srv->pep->caps, s->full);
}

static void approved_here(server *srv, const char *owner, const char *contact)
{
    for (c2s *s = router_sessions(srv, contact); s; s = s->next_resource)
        if (s->available && !conn_is_closing(s->conn))
            send_last_of(srv, s, owner);
}

void pep_subscription_approved(server *srv, const char *owner, const char *contact)
{
    approved_here(srv, owner, contact);
    /* The contact's sessions on other nodes: their node sends the last items. */
    xml_node *env = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(env, "from", srv->cfg.domain);
    xml_set_attr(env, "to", contact);
    xml_set_attr(xml_add_child(env, XMLNS_NODE, "pep"), "approved-by", owner);
    node_copy_to_user(srv, contact, env, NODE_AVAILABLE);
    xml_free(env);
}

void pep_from_node(server *srv, const char *bare, const xml_node *el)
{
    const char *feature = xml_get_attr(el, "feature");
    const char *owner = xml_get_attr(el, "approved-by");
    xml_node *msg = xml_child(el, XMLNS_CLIENT, "message");
    if (feature && msg)
        notify_here(srv, bare, feature, msg);
    else if (owner && bare)
        approved_here(srv, owner, bare);
}
