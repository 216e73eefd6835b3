/* pep.c - XEP-0163 PEP: publish (with publish-options), retract, items, node creation,
 * configuration, purge and deletion, notifications and last items (pep.h).
 *
 * A node's configuration is kept in the store as "max_items=N|max;access_model=...;
 * persist_items=0|1". "max" means this server's pep_max_items, so raising the limit
 * raises it for such nodes too. Items are stored as serialized XML and parsed again when
 * sent, with the same limits as stanzas. */
#include "pep.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "caps.h"
#include "conn.h"
#include "router.h"
#include "stanza.h"
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XMLNS_PUBSUB "http://jabber.org/protocol/pubsub"
#define XMLNS_PUBSUB_OWNER XMLNS_PUBSUB "#owner"
#define XMLNS_PUBSUB_EVENT XMLNS_PUBSUB "#event"
#define XMLNS_PUBSUB_ERRORS XMLNS_PUBSUB "#errors"
#define FORM_PUBLISH_OPTIONS XMLNS_PUBSUB "#publish-options"
#define FORM_NODE_CONFIG XMLNS_PUBSUB "#node_config"
#define XMLNS_DATA "jabber:x:data"

/* Longest node name and item id accepted (node names are usually namespaces). */
#define MAX_NODE_LEN 512
#define MAX_ITEM_ID_LEN 256

struct pep {
    caps_table *caps;
};

typedef struct node_cfg {
    int max_items; /* 0: "max", the server's limit */
    int open;      /* access model open (else presence) */
    int persist;   /* items are stored */
} node_cfg;

/* XEP-0163 section 4.2's defaults. */
static const node_cfg default_cfg = {1, 0, 1};

static void caps_ready(server *srv, const char *full);

static struct pep *pep_of(server *srv)
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

int pep_is_request(const xml_node *payload)
{
    return xml_is(payload, XMLNS_PUBSUB, "pubsub") || xml_is(payload, XMLNS_PUBSUB_OWNER, "pubsub");
}

/* ---- node configuration ---- */

static char *cfg_text(const node_cfg *c)
{
    char max[16];
    if (c->max_items)
        snprintf(max, sizeof max, "%d", c->max_items);
    else
        snprintf(max, sizeof max, "max");
    return xasprintf("max_items=%s;access_model=%s;persist_items=%d", max,
                     c->open ? "open" : "presence", c->persist ? 1 : 0);
}

/* Unknown or damaged parts keep their defaults. */
static node_cfg cfg_parse(const char *text)
{
    node_cfg c = default_cfg;
    char *copy = xstrdup(text ? text : "");
    char *save = NULL;
    for (char *kv = strtok_r(copy, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(kv, "max_items") == 0)
            c.max_items = strcmp(v, "max") == 0 ? 0 : atoi(v) > 0 ? atoi(v) : 1;
        else if (strcmp(kv, "access_model") == 0)
            c.open = strcmp(v, "open") == 0;
        else if (strcmp(kv, "persist_items") == 0)
            c.persist = strcmp(v, "0") != 0;
    }
    free(copy);
    return c;
}

/* Items a node keeps: its own limit, never above the server's. */
static int keep_items(server *srv, const node_cfg *c)
{
    int lim = srv->cfg.pep_max_items;
    return c->max_items && c->max_items < lim ? c->max_items : lim;
}

enum { OPT_MAX_ITEMS = 1, OPT_ACCESS = 2, OPT_PERSIST = 4 };

static int parse_bool(const char *v, int *out)
{
    if (str_eq(v, "1") || str_eq(v, "true")) {
        *out = 1;
        return 0;
    }
    if (str_eq(v, "0") || str_eq(v, "false")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* Options this server does not store but always behaves as; a client asking for exactly
 * that behaviour is satisfied. */
static int fixed_option_ok(const char *var, const char *v)
{
    static const struct {
        const char *var, *value;
    } fixed[] = {
        {"pubsub#deliver_payloads", "1"},      {"pubsub#deliver_payloads", "true"},
        {"pubsub#deliver_notifications", "1"}, {"pubsub#deliver_notifications", "true"},
        {"pubsub#send_last_published_item", "on_sub_and_presence"},
    };
    for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
        if (strcmp(var, fixed[i].var) == 0 && str_eq(v, fixed[i].value))
            return 1;
    return 0;
}

/* Apply a data form's fields (FORM_TYPE form_type) to *c, noting which were given. 0, or
 * -1 with the reason in why. */
static int parse_options(server *srv, const xml_node *x, const char *form_type, node_cfg *c,
                         unsigned *given, char *why, size_t len)
{
    *given = 0;
    if (!x)
        return 0;
    for (const xml_node *f = xml_child(x, XMLNS_DATA, "field"); f;
         f = xml_next(f, XMLNS_DATA, "field")) {
        const char *var = xml_get_attr(f, "var");
        char *v = xml_child_text(f, XMLNS_DATA, "value");
        int rc = 0;
        if (!var) {
            rc = -1;
            snprintf(why, len, "a form field without var");
        } else if (strcmp(var, "FORM_TYPE") == 0) {
            if (v && strcmp(v, form_type) != 0) {
                rc = -1;
                snprintf(why, len, "FORM_TYPE must be %s", form_type);
            }
        } else if (strcmp(var, "pubsub#max_items") == 0) {
            char *end = NULL;
            errno = 0;
            long n = v ? strtol(v, &end, 10) : 0;
            if (str_eq(v, "max")) {
                c->max_items = 0;
            } else if (!v || !*v || *end || errno || n < 1) {
                rc = -1;
                snprintf(why, len, "pubsub#max_items must be a number > 0 or 'max'");
            } else if (n > srv->cfg.pep_max_items) {
                rc = -1;
                snprintf(why, len, "pubsub#max_items %ld exceeds this server's limit of %d items "
                                   "per node (use 'max')", n, srv->cfg.pep_max_items);
            } else {
                c->max_items = (int)n;
            }
            *given |= OPT_MAX_ITEMS;
        } else if (strcmp(var, "pubsub#access_model") == 0) {
            if (str_eq(v, "open") || str_eq(v, "presence")) {
                c->open = str_eq(v, "open");
            } else {
                rc = -1;
                snprintf(why, len, "access model '%.40s' is not supported (open or presence)",
                         v ? v : "");
            }
            *given |= OPT_ACCESS;
        } else if (strcmp(var, "pubsub#persist_items") == 0) {
            if (parse_bool(v, &c->persist) < 0) {
                rc = -1;
                snprintf(why, len, "pubsub#persist_items must be a boolean");
            }
            *given |= OPT_PERSIST;
        } else if (!fixed_option_ok(var, v)) {
            rc = -1;
            snprintf(why, len, "option %.80s%s%.40s is not supported", var, v ? "=" : "",
                     v ? v : "");
        }
        free(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The first given option on which want and have differ, or NULL. */
static const char *mismatch(unsigned given, const node_cfg *want, const node_cfg *have)
{
    if ((given & OPT_MAX_ITEMS) && want->max_items != have->max_items)
        return "pubsub#max_items";
    if ((given & OPT_ACCESS) && want->open != have->open)
        return "pubsub#access_model";
    if ((given & OPT_PERSIST) && want->persist != have->persist)
        return "pubsub#persist_items";
    return NULL;
}

/* ---- replies ---- */

static void send_to(c2s *s, xml_node *stanza)
{
    c2s_send(s, stanza);
    xml_free(stanza);
}

/* An error with an optional pubsub#errors condition (and its feature attribute). */
static void reply_error(c2s *origin, const xml_node *iq, const char *etype, const char *cond,
                        const char *app, const char *feature, const char *text)
{
    xml_node *err = stanza_error(iq, etype, cond, text);
    if (!err)
        return;
    if (app) {
        xml_node *e = xml_child(err, NULL, "error");
        xml_node *a = xml_add_child(e, XMLNS_PUBSUB_ERRORS, app);
        if (feature)
            xml_set_attr(a, "feature", feature);
        /* The text, if any, stays last, as RFC 6120 8.3.2 orders it. */
        xml_node *t = xml_child(e, XMLNS_STANZAS, "text");
        if (t) {
            xml_detach(t);
            xml_append(e, t);
        }
    }
    send_to(origin, err);
}

static void store_failed(server *srv, c2s *origin, const xml_node *iq, const char *what)
{
    log_error("PEP %s: %s", what, store_last_error(srv->store));
    reply_error(origin, iq, "wait", "internal-server-error", NULL, NULL,
                "the PEP store failed; try again later");
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

/* Send an event about owner's node to every interested session allowed to see it: the
 * owner's own, then contacts with a presence subscription (presence) or anyone on this
 * server (open). Takes ownership of child. */
static void notify(server *srv, const char *owner, const char *node, const node_cfg *c,
                   xml_node *child)
{
    xml_node *msg = event_message(owner, child);
    char *feature = xasprintf("%s+notify", node);
    if (c->open) {
        for (c2s *s = srv->sessions; s; s = s->next_all)
            if (interested(srv, s, feature))
                deliver(s, msg);
    } else {
        for (c2s *s = router_sessions(srv, owner); s; s = s->next_resource)
            if (interested(srv, s, feature))
                deliver(s, msg);
        roster_item *items = NULL;
        size_t n = 0;
        if (store_roster_get(srv->store, owner, &items, &n) != STORE_OK) {
            log_error("PEP notification of %s: %s", owner, store_last_error(srv->store));
            n = 0;
        }
        for (size_t i = 0; i < n; i++) {
            if (items[i].sub != SUB_FROM && items[i].sub != SUB_BOTH)
                continue;
            for (c2s *s = router_sessions(srv, items[i].contact); s; s = s->next_resource)
                if (interested(srv, s, feature))
                    deliver(s, msg);
        }
        roster_items_free(items, n);
    }
    free(feature);
    xml_free(msg);
}

/* <item id=...>payload</item> (in namespace ns) from a stored payload; NULL (logged) if
 * it does not parse. */
static xml_node *item_element(server *srv, const char *ns, const char *id, const char *payload)
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

typedef struct node_list {
    char **names;
    char **configs;
    size_t n, cap;
} node_list;

static void collect_node(void *ud, const char *node, const char *config)
{
    node_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->names = xrealloc(l->names, l->cap * sizeof *l->names);
        l->configs = xrealloc(l->configs, l->cap * sizeof *l->configs);
    }
    l->names[l->n] = xstrdup(node);
    l->configs[l->n++] = xstrdup(config);
}

static void node_list_free(node_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        free(l->configs[i]);
    }
    free(l->names);
    free(l->configs);
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
    node_list nodes = {0};
    if (store_pep_node_list(srv->store, owner, collect_node, &nodes) != STORE_OK) {
        log_error("PEP nodes of %s: %s", owner, store_last_error(srv->store));
        return;
    }
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
            xml_node *item = item_element(srv, XMLNS_PUBSUB_EVENT, li.id, li.payload);
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
    node_list_free(&nodes);
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

void pep_session_end(server *srv, c2s *s)
{
    if (srv->pep && s->full)
        caps_forget(srv->pep->caps, s->full);
}

void pep_subscription_approved(server *srv, const char *owner, const char *contact)
{
    for (c2s *s = router_sessions(srv, contact); s; s = s->next_resource)
        if (s->available && !conn_is_closing(s->conn))
            send_last_of(srv, s, owner);
}

/* ---- requests ---- */

typedef struct request {
    server *srv;
    c2s *origin;
    xml_node *iq;      /* owned by pep_handle_iq */
    const char *owner; /* the account whose PEP service is addressed */
    int own;           /* the requester is the owner */
} request;

/* The node attribute of el, checked; NULL after replying. */
static const char *node_attr(request *r, const xml_node *el)
{
    const char *node = xml_get_attr(el, "node");
    if (!node || !*node) {
        reply_error(r->origin, r->iq, "modify", "bad-request", "nodeid-required", NULL,
                    "a node name is required");
        return NULL;
    }
    if (strlen(node) > MAX_NODE_LEN) {
        reply_error(r->origin, r->iq, "modify", "not-acceptable", NULL, NULL,
                    "the node name is too long");
        return NULL;
    }
    return node;
}

/* The node's configuration: 1 found, 0 absent, -1 after replying to a store failure. */
static int load_cfg(request *r, const char *node, node_cfg *c)
{
    char *text = NULL;
    store_status st = store_pep_node_get(r->srv->store, r->owner, node, &text);
    if (st == STORE_NOT_FOUND)
        return 0;
    if (st != STORE_OK) {
        store_failed(r->srv, r->origin, r->iq, "node lookup");
        return -1;
    }
    *c = cfg_parse(text);
    free(text);
    return 1;
}

/* Create a node; 0, or -1 after replying (the per-account cap, a store failure). */
static int create_node(request *r, const char *node, const node_cfg *c)
{
    char *text = cfg_text(c);
    store_status st = store_pep_node_put(r->srv->store, r->owner, node, text,
                                         r->srv->cfg.pep_max_nodes);
    free(text);
    if (st == STORE_FULL) {
        char why[160];
        snprintf(why, sizeof why, "an account may have at most %d PEP nodes",
                 r->srv->cfg.pep_max_nodes);
        reply_error(r->origin, r->iq, "cancel", "not-allowed", NULL, NULL, why);
        return -1;
    }
    if (st != STORE_OK) {
        store_failed(r->srv, r->origin, r->iq, "node creation");
        return -1;
    }
    return 0;
}

static void reply_result(request *r, xml_node *payload)
{
    xml_node *res = stanza_iq_result(r->iq);
    if (payload)
        xml_append(res, payload);
    send_to(r->origin, res);
}

static void publish(request *r, const xml_node *pubsub, const xml_node *pub)
{
    const char *node = node_attr(r, pub);
    if (!node)
        return;
    const xml_node *item = xml_child(pub, XMLNS_PUBSUB, "item");
    if (!item || xml_next(item, XMLNS_PUBSUB, "item")) {
        reply_error(r->origin, r->iq, "modify", "bad-request", item ? "invalid-payload" : "item-required",
                    NULL, "publish exactly one item");
        return;
    }
    const xml_node *payload = xml_first_element(item);
    if (!payload || xml_next(payload, NULL, NULL)) {
        reply_error(r->origin, r->iq, "modify", "bad-request",
                    payload ? "invalid-payload" : "payload-required", NULL,
                    "an item carries exactly one payload element");
        return;
    }
    char idbuf[17];
    const char *id = xml_get_attr(item, "id");
    if (!id || !*id) {
        random_token(idbuf, 16);
        id = idbuf;
    } else if (strlen(id) > MAX_ITEM_ID_LEN) {
        reply_error(r->origin, r->iq, "modify", "not-acceptable", NULL, NULL,
                    "the item id is too long");
        return;
    }
    char *text = xml_to_string(payload, "");
    if (strlen(text) > r->srv->cfg.pep_max_payload) {
        char why[160];
        snprintf(why, sizeof why, "the payload has %zu bytes; this server accepts at most %zu",
                 strlen(text), r->srv->cfg.pep_max_payload);
        reply_error(r->origin, r->iq, "modify", "not-acceptable", "payload-too-big", NULL, why);
        free(text);
        return;
    }

    node_cfg have;
    int exists = load_cfg(r, node, &have);
    node_cfg want = exists > 0 ? have : default_cfg;
    const xml_node *po = xml_child(pubsub, XMLNS_PUBSUB, "publish-options");
    unsigned given = 0;
    char why[256];
    if (exists < 0) {
        free(text);
        return;
    }
    if (parse_options(r->srv, po ? xml_child(po, XMLNS_DATA, "x") : NULL, FORM_PUBLISH_OPTIONS,
                      &want, &given, why, sizeof why) < 0) {
        reply_error(r->origin, r->iq, "cancel", "conflict", "precondition-not-met", NULL, why);
        free(text);
        return;
    }
    const char *differs = exists > 0 ? mismatch(given, &want, &have) : NULL;
    if (differs) {
        snprintf(why, sizeof why, "publish option %s does not match the configuration of node %.200s",
                 differs, node);
        reply_error(r->origin, r->iq, "cancel", "conflict", "precondition-not-met", NULL, why);
        free(text);
        return;
    }
    if (!exists && create_node(r, node, &want) < 0) {
        free(text);
        return;
    }
    if (want.persist &&
        store_pep_item_put(r->srv->store, r->owner, node, id, r->owner, text,
                           keep_items(r->srv, &want)) != STORE_OK) {
        store_failed(r->srv, r->origin, r->iq, "publish");
        free(text);
        return;
    }
    xml_node *ps = xml_new(XMLNS_PUBSUB, "pubsub");
    xml_node *p = xml_add_child(ps, NULL, "publish");
    xml_set_attr(p, "node", node);
    xml_set_attr(xml_add_child(p, NULL, "item"), "id", id);
    reply_result(r, ps);

    xml_node *items = xml_new(XMLNS_PUBSUB_EVENT, "items");
    xml_set_attr(items, "node", node);
    xml_node *ev_item = xml_add_child(items, NULL, "item");
    xml_set_attr(ev_item, "id", id);
    xml_append(ev_item, xml_copy(payload));
    notify(r->srv, r->owner, node, &want, items);
    free(text);
}

static void retract(request *r, const xml_node *ret)
{
    const char *node = node_attr(r, ret);
    if (!node)
        return;
    const xml_node *item = xml_child(ret, XMLNS_PUBSUB, "item");
    const char *id = item ? xml_get_attr(item, "id") : NULL;
    if (!id || !*id) {
        reply_error(r->origin, r->iq, "modify", "bad-request", "item-required", NULL,
                    "name the item to retract");
        return;
    }
    node_cfg c;
    int exists = load_cfg(r, node, &c);
    if (exists < 0)
        return;
    store_status st = exists ? store_pep_item_del(r->srv->store, r->owner, node, id)
                             : STORE_NOT_FOUND;
    if (st == STORE_NOT_FOUND) {
        reply_error(r->origin, r->iq, "cancel", "item-not-found", NULL, NULL,
                    exists ? "no such item" : "no such node");
        return;
    }
    if (st != STORE_OK) {
        store_failed(r->srv, r->origin, r->iq, "retract");
        return;
    }
    reply_result(r, NULL);
    const char *n = xml_get_attr(ret, "notify");
    if (str_eq(n, "true") || str_eq(n, "1")) {
        xml_node *items = xml_new(XMLNS_PUBSUB_EVENT, "items");
        xml_set_attr(items, "node", node);
        xml_set_attr(xml_add_child(items, NULL, "retract"), "id", id);
        notify(r->srv, r->owner, node, &c, items);
    }
}

/* Does contact receive owner's presence? */
static int subscribed(server *srv, const char *owner, const char *contact)
{
    roster_item it;
    int ok = store_roster_get_item(srv->store, owner, contact, &it) == STORE_OK &&
             (it.sub == SUB_FROM || it.sub == SUB_BOTH);
    roster_item_clear(&it);
    return ok;
}

/* May the requester read this node? */
static int may_read(request *r, const node_cfg *c)
{
    return r->own || c->open || subscribed(r->srv, r->owner, r->origin->user);
}

typedef struct item_rows {
    char **ids, **payloads;
    size_t n, cap;
} item_rows;

static void collect_item(void *ud, const char *id, const char *publisher, const char *payload)
{
    item_rows *rows = ud;
    if (rows->n == rows->cap) {
        rows->cap = rows->cap ? 2 * rows->cap : 8;
        rows->ids = xrealloc(rows->ids, rows->cap * sizeof *rows->ids);
        rows->payloads = xrealloc(rows->payloads, rows->cap * sizeof *rows->payloads);
    }
    rows->ids[rows->n] = xstrdup(id);
    rows->payloads[rows->n++] = xstrdup(payload);
}

static void items(request *r, const xml_node *req)
{
    const char *node = node_attr(r, req);
    if (!node)
        return;
    int max = 0;
    const char *max_attr = xml_get_attr(req, "max_items");
    if (max_attr) {
        char *end;
        errno = 0;
        long v = strtol(max_attr, &end, 10);
        if (!*max_attr || *end || errno || v < 1) {
            reply_error(r->origin, r->iq, "modify", "bad-request", NULL, NULL,
                        "max_items must be a number > 0");
            return;
        }
        max = v > r->srv->cfg.pep_max_items ? r->srv->cfg.pep_max_items : (int)v;
    }
    node_cfg c;
    int exists = load_cfg(r, node, &c);
    if (exists < 0)
        return;
    if (!exists) {
        reply_error(r->origin, r->iq, "cancel", "item-not-found", NULL, NULL, "no such node");
        return;
    }
    if (!may_read(r, &c)) {
        reply_error(r->origin, r->iq, "auth", "not-authorized", "presence-subscription-required",
                    NULL, "only contacts with a presence subscription may read this node");
        return;
    }
    item_rows rows = {0};
    store_status st = STORE_OK;
    int by_id = 0;
    for (const xml_node *it = xml_child(req, XMLNS_PUBSUB, "item"); it && st == STORE_OK;
         it = xml_next(it, XMLNS_PUBSUB, "item")) {
        const char *id = xml_get_attr(it, "id");
        by_id = 1;
        if (id && *id)
            st = store_pep_items(r->srv->store, r->owner, node, id, 0, collect_item, &rows);
    }
    if (!by_id)
        st = store_pep_items(r->srv->store, r->owner, node, NULL, max, collect_item, &rows);
    if (st != STORE_OK && st != STORE_NOT_FOUND) {
        store_failed(r->srv, r->origin, r->iq, "items");
    } else {
        /* The newest items that fit in one stanza (the client's limit is ours). */
        size_t budget = r->srv->cfg.max_stanza_size / 2, used = 0, first = rows.n;
        while (first > 0 && used + strlen(rows.payloads[first - 1]) <= budget) {
            used += strlen(rows.payloads[first - 1]);
            first--;
        }
        xml_node *ps = xml_new(XMLNS_PUBSUB, "pubsub");
        xml_node *list = xml_add_child(ps, NULL, "items");
        xml_set_attr(list, "node", node);
        for (size_t i = first; i < rows.n; i++) {
            xml_node *item = item_element(r->srv, XMLNS_PUBSUB, rows.ids[i], rows.payloads[i]);
            if (item)
                xml_append(list, item);
        }
        reply_result(r, ps);
    }
    for (size_t i = 0; i < rows.n; i++) {
        free(rows.ids[i]);
        free(rows.payloads[i]);
    }
    free(rows.ids);
    free(rows.payloads);
}

static void create(request *r, const xml_node *pubsub, const xml_node *cr)
{
    const char *node = node_attr(r, cr);
    if (!node)
        return;
    node_cfg c = default_cfg;
    const xml_node *conf = xml_child(pubsub, XMLNS_PUBSUB, "configure");
    unsigned given;
    char why[256];
    if (parse_options(r->srv, conf ? xml_child(conf, XMLNS_DATA, "x") : NULL, FORM_NODE_CONFIG,
                      &c, &given, why, sizeof why) < 0) {
        reply_error(r->origin, r->iq, "modify", "not-acceptable", NULL, NULL, why);
        return;
    }
    node_cfg have;
    int exists = load_cfg(r, node, &have);
    if (exists < 0)
        return;
    if (exists) {
        reply_error(r->origin, r->iq, "cancel", "conflict", NULL, NULL, "the node exists");
        return;
    }
    if (create_node(r, node, &c) == 0)
        reply_result(r, NULL);
}

/* <x type='form'> describing c, for configure requests. */
static xml_node *config_form(const node_cfg *c)
{
    xml_node *x = xml_new(XMLNS_DATA, "x");
    xml_set_attr(x, "type", "form");
    static const char *const vars[] = {"FORM_TYPE", "pubsub#max_items", "pubsub#access_model",
                                       "pubsub#persist_items"};
    static const char *const types[] = {"hidden", "text-single", "list-single", "boolean"};
    char max[16];
    if (c->max_items)
        snprintf(max, sizeof max, "%d", c->max_items);
    else
        snprintf(max, sizeof max, "max");
    const char *values[] = {FORM_NODE_CONFIG, max, c->open ? "open" : "presence",
                            c->persist ? "1" : "0"};
    for (size_t i = 0; i < ARRAY_LEN(vars); i++) {
        xml_node *f = xml_add_child(x, NULL, "field");
        xml_set_attr(f, "var", vars[i]);
        xml_set_attr(f, "type", types[i]);
        if (i == 2) {
            static const char *const models[] = {"open", "presence"};
            for (size_t k = 0; k < 2; k++) {
                xml_node *o = xml_add_child(f, NULL, "option");
                xml_node *v = xml_add_child(o, NULL, "value");
                xml_add_text(v, models[k], strlen(models[k]));
            }
        }
        xml_node *v = xml_add_child(f, NULL, "value");
        xml_add_text(v, values[i], strlen(values[i]));
    }
    return x;
}

static void owner_request(request *r, const xml_node *pubsub, int get)
{
    const xml_node *op = xml_first_element(pubsub);
    const char *name = op ? op->name : "";
    if (!op || !str_eq(op->ns, XMLNS_PUBSUB_OWNER)) {
        reply_error(r->origin, r->iq, "modify", "bad-request", NULL, NULL, "no owner operation");
        return;
    }
    if (!r->own) {
        reply_error(r->origin, r->iq, "auth", "forbidden", NULL, NULL,
                    "only the account's owner manages its nodes");
        return;
    }
    const char *node = node_attr(r, op);
    if (!node)
        return;
    node_cfg c;
    int exists = load_cfg(r, node, &c);
    if (exists < 0)
        return;
    if (!exists) {
        reply_error(r->origin, r->iq, "cancel", "item-not-found", NULL, NULL, "no such node");
        return;
    }
    if (!get && strcmp(name, "delete") == 0) {
        if (store_pep_node_del(r->srv->store, r->owner, node) != STORE_OK) {
            store_failed(r->srv, r->origin, r->iq, "node deletion");
            return;
        }
        reply_result(r, NULL);
        xml_node *del = xml_new(XMLNS_PUBSUB_EVENT, "delete");
        xml_set_attr(del, "node", node);
        notify(r->srv, r->owner, node, &c, del);
    } else if (!get && strcmp(name, "purge") == 0) {
        /* Delete and re-create with the same configuration (no cap: it existed). */
        char *text = cfg_text(&c);
        store_status st = store_pep_node_del(r->srv->store, r->owner, node);
        if (st == STORE_OK)
            st = store_pep_node_put(r->srv->store, r->owner, node, text, -1);
        free(text);
        if (st != STORE_OK) {
            store_failed(r->srv, r->origin, r->iq, "purge");
            return;
        }
        reply_result(r, NULL);
        xml_node *purge = xml_new(XMLNS_PUBSUB_EVENT, "purge");
        xml_set_attr(purge, "node", node);
        notify(r->srv, r->owner, node, &c, purge);
    } else if (get && strcmp(name, "configure") == 0) {
        xml_node *ps = xml_new(XMLNS_PUBSUB_OWNER, "pubsub");
        xml_node *conf = xml_add_child(ps, NULL, "configure");
        xml_set_attr(conf, "node", node);
        xml_append(conf, config_form(&c));
        reply_result(r, ps);
    } else if (!get && strcmp(name, "configure") == 0) {
        const xml_node *x = xml_child(op, XMLNS_DATA, "x");
        unsigned given;
        char why[256];
        if (x && str_eq(xml_get_attr(x, "type"), "cancel")) {
            reply_result(r, NULL);
            return;
        }
        if (parse_options(r->srv, x, FORM_NODE_CONFIG, &c, &given, why, sizeof why) < 0) {
            reply_error(r->origin, r->iq, "modify", "not-acceptable", NULL, NULL, why);
            return;
        }
        char *text = cfg_text(&c);
        store_status st = store_pep_node_put(r->srv->store, r->owner, node, text, -1);
        free(text);
        if (st != STORE_OK)
            store_failed(r->srv, r->origin, r->iq, "configure");
        else
            reply_result(r, NULL);
    } else {
        reply_error(r->origin, r->iq, "cancel", "feature-not-implemented", "unsupported",
                    name, NULL);
    }
}

static void user_request(request *r, const xml_node *pubsub, int get)
{
    const xml_node *op = NULL;
    for (const xml_node *c = xml_first_element(pubsub); c && !op; c = xml_next(c, NULL, NULL))
        if (str_eq(c->ns, XMLNS_PUBSUB) && !str_eq(c->name, "publish-options") &&
            !str_eq(c->name, "configure"))
            op = c;
    const char *name = op ? op->name : "";
    int writes = strcmp(name, "publish") == 0 || strcmp(name, "retract") == 0 ||
                 strcmp(name, "create") == 0;
    if (writes && !r->own) {
        reply_error(r->origin, r->iq, "auth", "forbidden", NULL, NULL,
                    "only the account's owner publishes to its nodes");
    } else if (!get && strcmp(name, "publish") == 0) {
        publish(r, pubsub, op);
    } else if (!get && strcmp(name, "retract") == 0) {
        retract(r, op);
    } else if (!get && strcmp(name, "create") == 0) {
        create(r, pubsub, op);
    } else if (get && strcmp(name, "items") == 0) {
        items(r, op);
    } else {
        /* Explicit subscriptions are not offered: interest comes from entity caps. */
        reply_error(r->origin, r->iq, "cancel", "feature-not-implemented", "unsupported",
                    *name ? name : NULL, NULL);
    }
}

void pep_handle_iq(server *srv, c2s *origin, xml_node *iq, const char *owner)
{
    const char *type = xml_get_attr(iq, "type");
    int get = str_eq(type, "get");
    if (!get && !str_eq(type, "set")) {
        xml_free(iq);
        return;
    }
    request r = {srv, origin, iq, owner, strcmp(owner, origin->user) == 0};
    if (!r.own && !router_sessions(srv, owner) &&
        store_user_exists(srv->store, owner) != STORE_OK) {
        reply_error(origin, iq, "cancel", "service-unavailable", NULL, NULL, NULL);
        xml_free(iq);
        return;
    }
    const xml_node *pubsub = xml_first_element(iq);
    if (xml_is(pubsub, XMLNS_PUBSUB_OWNER, "pubsub"))
        owner_request(&r, pubsub, get);
    else
        user_request(&r, pubsub, get);
    xml_free(iq);
}

/* ---- discovery ---- */

void pep_disco_info(xml_node *query)
{
    xml_node *id = xml_add_child(query, NULL, "identity");
    xml_set_attr(id, "category", "pubsub");
    xml_set_attr(id, "type", "pep");
    static const char *const features[] = {
        XMLNS_PUBSUB,
        XMLNS_PUBSUB "#access-open",
        XMLNS_PUBSUB "#access-presence",
        XMLNS_PUBSUB "#auto-create",
        XMLNS_PUBSUB "#config-node",
        XMLNS_PUBSUB "#create-nodes",
        XMLNS_PUBSUB "#delete-items",
        XMLNS_PUBSUB "#delete-nodes",
        XMLNS_PUBSUB "#filtered-notifications",
        XMLNS_PUBSUB "#item-ids",
        XMLNS_PUBSUB "#last-published",
        XMLNS_PUBSUB "#persistent-items",
        XMLNS_PUBSUB "#publish",
        XMLNS_PUBSUB "#publish-options",
        XMLNS_PUBSUB "#purge-nodes",
        XMLNS_PUBSUB "#retract-items",
        XMLNS_PUBSUB "#retrieve-items",
    };
    for (size_t i = 0; i < ARRAY_LEN(features); i++)
        xml_set_attr(xml_add_child(query, NULL, "feature"), "var", features[i]);
}

void pep_disco_items(server *srv, const char *requester, const char *owner, xml_node *query)
{
    node_list nodes = {0};
    if (store_pep_node_list(srv->store, owner, collect_node, &nodes) != STORE_OK) {
        log_error("PEP nodes of %s: %s", owner, store_last_error(srv->store));
        return;
    }
    for (size_t i = 0; i < nodes.n; i++) {
        /* A requester that is neither the owner nor a subscribed contact (iq.c asks only
         * for those) sees the open nodes alone. */
        if (strcmp(requester, owner) != 0 && !cfg_parse(nodes.configs[i]).open &&
            !subscribed(srv, owner, requester))
            continue;
        xml_node *it = xml_add_child(query, NULL, "item");
        xml_set_attr(it, "jid", owner);
        xml_set_attr(it, "node", nodes.names[i]);
    }
    node_list_free(&nodes);
}
