/* pep.c - XEP-0163 PEP requests: publish (with publish-options), retract, items, node
 * creation, configuration, purge and deletion, and discovery (pep.h). Node configuration
 * is pep_config.c's, notifications and last items pep_events.c's. */
#include "pep_internal.h"
#include "../common/log.h"
#include "../common/util.h"
#include "router.h"
#include "stanza.h"
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pep_is_request(const xml_node *payload)
{
    return xml_is(payload, XMLNS_PUBSUB, "pubsub") || xml_is(payload, XMLNS_PUBSUB_OWNER, "pubsub");
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
    *c = pep_cfg_parse(text);
    free(text);
    return 1;
}

/* Create a node; 0, or -1 after replying (the per-account cap, a store failure). */
static int create_node(request *r, const char *node, const node_cfg *c)
{
    char *text = pep_cfg_text(c);
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
    node_cfg want = exists > 0 ? have : pep_default_cfg;
    const xml_node *po = xml_child(pubsub, XMLNS_PUBSUB, "publish-options");
    unsigned given = 0;
    char why[512];
    if (exists < 0) {
        free(text);
        return;
    }
    if (pep_parse_options(r->srv, po ? xml_child(po, XMLNS_DATA, "x") : NULL, FORM_PUBLISH_OPTIONS,
                      &want, &given, why, sizeof why) < 0) {
        reply_error(r->origin, r->iq, "cancel", "conflict", "precondition-not-met", NULL, why);
        free(text);
        return;
    }
    const char *differs = exists > 0 ? pep_cfg_mismatch(given, &want, &have) : NULL;
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
                           pep_keep_items(r->srv, &want)) != STORE_OK) {
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
    pep_notify(r->srv, r->owner, node, &want, items);
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
        pep_notify(r->srv, r->owner, node, &c, items);
    }
}

/* May the requester read this node? */
static int may_read(request *r, const node_cfg *c)
{
    return r->own || c->open || pep_subscribed(r->srv, r->owner, r->origin->user);
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
    /* No more ids than a node may hold: each costs a store query. */
    for (const xml_node *it = xml_child(req, XMLNS_PUBSUB, "item");
         it && st == STORE_OK && by_id < r->srv->cfg.pep_max_items;
         it = xml_next(it, XMLNS_PUBSUB, "item")) {
        const char *id = xml_get_attr(it, "id");
        by_id++;
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
            xml_node *item = pep_item_element(r->srv, XMLNS_PUBSUB, rows.ids[i], rows.payloads[i]);
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
    node_cfg c = pep_default_cfg;
    const xml_node *conf = xml_child(pubsub, XMLNS_PUBSUB, "configure");
    unsigned given;
    char why[256];
    if (pep_parse_options(r->srv, conf ? xml_child(conf, XMLNS_DATA, "x") : NULL, FORM_NODE_CONFIG,
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
        pep_notify(r->srv, r->owner, node, &c, del);
    } else if (!get && strcmp(name, "purge") == 0) {
        /* Delete and re-create with the same configuration (no cap: it existed). */
        char *text = pep_cfg_text(&c);
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
        pep_notify(r->srv, r->owner, node, &c, purge);
    } else if (get && strcmp(name, "configure") == 0) {
        xml_node *ps = xml_new(XMLNS_PUBSUB_OWNER, "pubsub");
        xml_node *conf = xml_add_child(ps, NULL, "configure");
        xml_set_attr(conf, "node", node);
        xml_append(conf, pep_config_form(&c));
        reply_result(r, ps);
    } else if (!get && strcmp(name, "configure") == 0) {
        const xml_node *x = xml_child(op, XMLNS_DATA, "x");
        unsigned given;
        char why[256];
        if (x && str_eq(xml_get_attr(x, "type"), "cancel")) {
            reply_result(r, NULL);
            return;
        }
        if (pep_parse_options(r->srv, x, FORM_NODE_CONFIG, &c, &given, why, sizeof why) < 0) {
            reply_error(r->origin, r->iq, "modify", "not-acceptable", NULL, NULL, why);
            return;
        }
        char *text = pep_cfg_text(&c);
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
    node_list nodes;
    if (pep_nodes_of(srv, owner, &nodes) < 0)
        return;
    for (size_t i = 0; i < nodes.n; i++) {
        /* A requester that is neither the owner nor a subscribed contact (iq.c asks only
         * for those) sees the open nodes alone. */
        if (strcmp(requester, owner) != 0 && !pep_cfg_parse(nodes.configs[i]).open &&
            !pep_subscribed(srv, owner, requester))
            continue;
        xml_node *it = xml_add_child(query, NULL, "item");
        xml_set_attr(it, "jid", owner);
        xml_set_attr(it, "node", nodes.names[i]);
    }
    pep_node_list_free(&nodes);
}
