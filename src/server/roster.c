/* roster.c - jabber:iq:roster get/set/remove, XEP-0237 versions, and pushes. */
#include "roster.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "node.h"
#include "presence.h"
#include "router.h"
#include "stanza.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS_PER_ITEM 64

static const char *sub_name(sub_state s)
{
    static const char *names[] = {"none", "to", "from", "both"};
    return names[s];
}

/* "None + Pending In" items are the server's business until approved (RFC 6121 2.1.2.4). */
static int visible(const roster_item *item)
{
    return item->sub != SUB_NONE || item->ask_out || !item->pending_in;
}

static void add_item(xml_node *query, const roster_item *item, int removed)
{
    xml_node *el = xml_add_child(query, NULL, "item");
    xml_set_attr(el, "jid", item->contact);
    if (removed) {
        xml_set_attr(el, "subscription", "remove");
        return;
    }
    if (item->name)
        xml_set_attr(el, "name", item->name);
    xml_set_attr(el, "subscription", sub_name(item->sub));
    if (item->ask_out)
        xml_set_attr(el, "ask", "subscribe");
    for (size_t i = 0; i < item->ngroups; i++) {
        xml_node *g = xml_add_child(el, NULL, "group");
        xml_add_text(g, item->groups[i], strlen(item->groups[i]));
    }
}

static char *version_string(server *srv, const char *user)
{
    int64_t v = 0;
    if (store_roster_version(srv->store, user, &v) != STORE_OK)
        return NULL;
    return xasprintf("%lld", (long long)v);
}

void roster_push(server *srv, const char *user, const roster_item *item, int removed)
{
    char *ver = version_string(srv, user);
    for (c2s *s = router_sessions(srv, user); s; s = s->next_resource) {
        if (!s->roster_loaded)
            continue;
        char id[20] = "push-";
        random_token(id + 5, 12);
        xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
        xml_set_attr(iq, "type", "set");
        xml_set_attr(iq, "id", id);
        xml_set_attr(iq, "to", s->full);
        xml_node *q = xml_add_child(iq, XMLNS_ROSTER, "query");
        if (ver)
            xml_set_attr(q, "ver", ver);
        add_item(q, item, removed);
        c2s_send(s, iq);
        xml_free(iq);
    }
    /* The user's sessions on other nodes (node.h) get the push from their own node. */
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_set_attr(iq, "id", "node-push");
    xml_set_attr(iq, "from", user); /* links between servers carry both addresses */
    xml_set_attr(iq, "to", user);
    xml_node *q = xml_add_child(iq, XMLNS_ROSTER, "query");
    if (ver)
        xml_set_attr(q, "ver", ver);
    add_item(q, item, removed);
    node_copy_to_user(srv, user, iq, NODE_ANY);
    xml_free(iq);
    free(ver);
}

void roster_push_here(server *srv, const char *user, const xml_node *push)
{
    for (c2s *s = router_sessions(srv, user); s; s = s->next_resource) {
        if (!s->roster_loaded)
            continue;
        char id[20] = "push-";
        random_token(id + 5, 12);
        xml_node *iq = xml_copy(push);
        xml_set_attr(iq, "id", id);
        xml_set_attr(iq, "to", s->full);
        xml_set_attr(iq, "from", NULL);
        c2s_send(s, iq);
        xml_free(iq);
    }
}

store_status roster_save_and_push(server *srv, const char *user, const roster_item *item)
{
    store_status st = store_roster_put(srv->store, user, item);
    if (st != STORE_OK) {
        log_error("saving the roster of %s: %s", user, store_last_error(srv->store));
        return st;
    }
    if (visible(item))
        roster_push(srv, user, item, 0);
    return st;
}

static void reply(c2s *s, xml_node *r)
{
    c2s_send(s, r);
    xml_free(r);
}

static void reply_error(c2s *s, xml_node *iq, const char *etype, const char *cond, const char *text)
{
    xml_node *err = stanza_error(iq, etype, cond, text);
    if (err)
        reply(s, err);
}

static void roster_get(server *srv, c2s *s, xml_node *iq, xml_node *query)
{
    roster_item *items = NULL;
    size_t n = 0;
    if (store_roster_get(srv->store, s->user, &items, &n) != STORE_OK) {
        reply_error(s, iq, "wait", "internal-server-error", "the roster store failed");
        return;
    }
    s->roster_loaded = 1;
    char *ver = version_string(srv, s->user);
    const char *client_ver = xml_get_attr(query, "ver");
    xml_node *r = stanza_iq_result(iq);
    xml_set_attr(r, "from", NULL);
    /* XEP-0237: an unchanged roster is answered with an empty result. */
    if (!(client_ver && ver && strcmp(client_ver, ver) == 0)) {
        xml_node *q = xml_add_child(r, XMLNS_ROSTER, "query");
        if (ver)
            xml_set_attr(q, "ver", ver);
        for (size_t i = 0; i < n; i++)
            if (visible(&items[i]))
                add_item(q, &items[i], 0);
    }
    reply(s, r);
    free(ver);
    roster_items_free(items, n);
}

/* Cancel both directions of a subscription before an item is removed (RFC 6121 2.5.2). */
static void cancel_subscriptions(server *srv, c2s *s, const roster_item *item)
{
    static const char *types[] = {"unsubscribe", "unsubscribed"};
    for (int i = 0; i < 2; i++) {
        int applies = i == 0 ? (item->sub == SUB_TO || item->sub == SUB_BOTH || item->ask_out)
                             : (item->sub == SUB_FROM || item->sub == SUB_BOTH || item->pending_in);
        if (!applies)
            continue;
        xml_node *p = xml_new(XMLNS_CLIENT, "presence");
        xml_set_attr(p, "type", types[i]);
        xml_set_attr(p, "to", item->contact);
        xml_set_attr(p, "from", s->full);
        presence_from_client(srv, s, p);
    }
}

static void roster_set(server *srv, c2s *s, xml_node *iq, xml_node *query)
{
    xml_node *el = xml_child(query, XMLNS_ROSTER, "item");
    if (!el || xml_next(el, XMLNS_ROSTER, "item")) {
        reply_error(s, iq, "modify", "bad-request", "a roster set carries exactly one item");
        return;
    }
    const char *jid_attr = xml_get_attr(el, "jid");
    char *contact = jid_attr ? jid_normalize(jid_attr) : NULL;
    if (!contact || strchr(contact, '/')) {
        free(contact);
        reply_error(s, iq, "modify", "jid-malformed", "the item's jid is not a valid bare JID");
        return;
    }
    if (strcmp(contact, s->user) == 0) {
        free(contact);
        reply_error(s, iq, "cancel", "not-allowed", "your own JID cannot be a contact");
        return;
    }
    roster_item item;
    memset(&item, 0, sizeof item);
    store_status st = store_roster_get_item(srv->store, s->user, contact, &item);
    if (st != STORE_OK && st != STORE_NOT_FOUND) {
        free(contact);
        reply_error(s, iq, "wait", "internal-server-error", "the roster store failed");
        return;
    }
    if (str_eq(xml_get_attr(el, "subscription"), "remove")) {
        if (st == STORE_NOT_FOUND) {
            reply_error(s, iq, "modify", "item-not-found", NULL);
        } else {
            cancel_subscriptions(srv, s, &item);
            if (store_roster_del(srv->store, s->user, contact) != STORE_OK) {
                reply_error(s, iq, "wait", "internal-server-error", "the roster store failed");
            } else {
                roster_push(srv, s->user, &item, 1);
                xml_node *r = stanza_iq_result(iq);
                xml_set_attr(r, "from", NULL);
                reply(s, r);
            }
        }
        roster_item_clear(&item);
        free(contact);
        return;
    }
    if (st == STORE_NOT_FOUND)
        item.contact = xstrdup(contact);
    free(contact);
    free(item.name);
    const char *name = xml_get_attr(el, "name");
    item.name = name && *name ? xstrdup(name) : NULL;
    for (size_t i = 0; i < item.ngroups; i++)
        free(item.groups[i]);
    free(item.groups);
    item.groups = NULL;
    item.ngroups = 0;
    const char *problem = NULL;
    for (xml_node *g = xml_child(el, XMLNS_ROSTER, "group"); g && !problem;
         g = xml_next(g, XMLNS_ROSTER, "group")) {
        char *gname = xml_text(g);
        if (!*gname)
            problem = "a group name cannot be empty";
        for (size_t i = 0; i < item.ngroups && !problem; i++)
            if (strcmp(item.groups[i], gname) == 0)
                problem = "duplicate group";
        if (item.ngroups >= MAX_GROUPS_PER_ITEM)
            problem = "too many groups";
        if (problem) {
            free(gname);
            break;
        }
        item.groups = xrealloc(item.groups, (item.ngroups + 1) * sizeof *item.groups);
        item.groups[item.ngroups++] = gname;
    }
    if (problem) {
        reply_error(s, iq, "modify", "not-acceptable", problem);
    } else if (store_roster_put(srv->store, s->user, &item) != STORE_OK) {
        log_error("saving the roster of %s: %s", s->user, store_last_error(srv->store));
        reply_error(s, iq, "wait", "internal-server-error", "the roster store failed");
    } else {
        roster_push(srv, s->user, &item, 0); /* set explicitly: visible whatever its state */
        xml_node *r = stanza_iq_result(iq);
        xml_set_attr(r, "from", NULL);
        reply(s, r);
    }
    roster_item_clear(&item);
}

void roster_handle_iq(server *srv, c2s *s, xml_node *iq)
{
    xml_node *query = xml_child(iq, XMLNS_ROSTER, "query");
    const char *type = xml_get_attr(iq, "type");
    if (str_eq(type, "get"))
        roster_get(srv, s, iq, query);
    else if (str_eq(type, "set"))
        roster_set(srv, s, iq, query);
    xml_free(iq);
}
