/* message.c - message delivery to local accounts (RFC 6121 8.5) and offline storage
 * (XEP-0160, with XEP-0203 delay stamps).
 *
 * With the compliance archive on, delivery has two steps: decide_outcome says what will
 * happen (for the record), the message is held until its record is durable, and
 * message_deliver() then does it, deciding afresh (a session that vanished in between means
 * offline storage, not a lost message). */
#include "message.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "carbons.h"
#include "compliance.h"
#include "mam.h"
#include "node.h"
#include "conn.h"
#include "policy_service.h"
#include "router.h"
#include "s2s.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void add_delay(server *srv, xml_node *stanza)
{
    char stamp[TIME_UTC_LEN];
    time_format_utc(time_now_us(), stamp);
    xml_node *delay = xml_add_child(stanza, XMLNS_DELAY, "delay");
    xml_set_attr(delay, "from", srv->cfg.domain);
    xml_set_attr(delay, "stamp", stamp);
    xml_add_text(delay, "Offline Storage", 15);
}

static void store_offline(server *srv, xml_node *stanza, const char *bare)
{
    add_delay(srv, stanza);
    char *text = xml_to_string(stanza, XMLNS_CLIENT);
    store_status st = store_offline_push(srv->store, bare, text, srv->cfg.offline_max);
    free(text);
    if (st == STORE_FULL) {
        /* XEP-0160 section 3: a full offline store answers service-unavailable. */
        router_bounce(srv, stanza, "cancel", "service-unavailable",
                      "the recipient's offline storage is full");
    } else if (st != STORE_OK) {
        log_error("offline storage for %s failed: %s", bare, store_last_error(srv->store));
        router_bounce(srv, stanza, "wait", "internal-server-error",
                      "the message could not be stored for the offline recipient");
    } else {
        log_debug("stored an offline message for %s", bare);
    }
}

/* Resources eligible for a message to the bare JID (RFC 6121 8.5.2.1.1): the available
 * ones of the highest non-negative priority, or every non-negative one for a headline,
 * counting the sessions on other nodes too (forward): those nodes get a copy and deliver
 * it to their own sessions of that priority. */
static void deliver_to_bare(server *srv, xml_node *stanza, const char *bare, const char *type,
                            int carbons, int forward)
{
    if (strcmp(type, "error") == 0)
        return; /* RFC 6121 8.5.2.1.1: an error for a bare JID is silently ignored */
    int best = -1;
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
        if (s->available && c2s_is_live(s) && s->priority > best)
            best = s->priority;
    int best_elsewhere = forward ? node_best_priority(srv, bare) : -1;
    int top = best > best_elsewhere ? best : best_elsewhere;
    int all = strcmp(type, "headline") == 0;
    int min = all ? 0 : top;
    int delivered = 0;
    if (top >= 0 && best_elsewhere >= min)
        delivered = node_copy_to_priority(srv, bare, stanza, min);
    if (top >= 0 && best >= min) {
        for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
            if (s->available && c2s_is_live(s) &&
                (all ? s->priority >= 0 : s->priority == best))
                c2s_send(s, stanza);
        delivered = 1;
    }
    if (delivered) {
        if (carbons)
            carbons_copy_received(srv, stanza, bare, NULL, top);
        return;
    }
    if (strcmp(type, "headline") == 0 || strcmp(type, "groupchat") == 0)
        return; /* RFC 6121 8.5.2.2.1: never stored */
    store_offline(srv, stanza, bare);
}

/* Where the message goes: the rules of message_deliver() and deliver_to_bare(), without side
 * effects. *reason (static text) says why for anything but delivered/offline. */
static const char *decide_outcome(server *srv, const xml_node *stanza, const char *bare,
                                  const char *resource, const char **reason)
{
    const char *type = xml_get_attr(stanza, "type");
    if (!type)
        type = "normal";
    *reason = NULL;
    if (!router_sessions(srv, bare) && !node_has_user(srv, bare) &&
        store_user_exists(srv->store, bare) != STORE_OK) {
        *reason = "no such account";
        return strcmp(type, "headline") == 0 ? "discarded" : "bounced";
    }
    if (resource) {
        c2s *target = router_session(srv, bare, resource);
        if ((target && c2s_is_live(target)) || node_has_session(srv, bare, resource))
            return "delivered";
        if (strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0) {
            *reason = "the addressed resource is not online";
            return strcmp(type, "groupchat") == 0 ? "bounced" : "discarded";
        }
    }
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
        if (s->available && c2s_is_live(s) && s->priority >= 0)
            return "delivered";
    if (node_user_available(srv, bare))
        return "delivered";
    if (strcmp(type, "headline") == 0 || strcmp(type, "groupchat") == 0) {
        *reason = "the recipient is offline and this type is not stored";
        return "discarded";
    }
    int count = 0;
    if (srv->cfg.offline_max <= 0 || (store_offline_count(srv->store, bare, &count) == STORE_OK &&
                                      count >= srv->cfg.offline_max)) {
        *reason = "the recipient's offline storage is full";
        return "bounced";
    }
    return "offline";
}

/* A message for bare/resource, a session of another node: sent there (1), the copies for
 * the account's other devices with it; 0 if no node holds that session. */
static int route_to_node(server *srv, xml_node *stanza, const char *bare, const char *resource,
                         int carbons)
{
    xml_node *copy = carbons ? xml_copy(stanza) : NULL;
    int routed = node_route(srv, bare, resource, stanza);
    if (routed && copy) {
        char *full = xasprintf("%s/%s", bare, resource);
        carbons_copy_received(srv, copy, bare, full, 0);
        free(full);
    }
    xml_free(copy);
    return routed;
}

/* carbons: copy to the account's other devices (XEP-0280); not for redeliveries and
 * services' messages, whose copies (if any) went out the first time. forward: sessions
 * on other nodes count (not for what another node forwarded here). */
static void deliver(server *srv, xml_node *stanza, const char *bare, const char *resource,
                    int carbons, int forward)
{
    const char *type = xml_get_attr(stanza, "type");
    if (!type)
        type = "normal";
    /* An account with a session (here or on another node) exists: the store is asked
     * only for offline recipients. */
    if (!router_sessions(srv, bare) && !node_has_user(srv, bare) &&
        store_user_exists(srv->store, bare) != STORE_OK) {
        if (strcmp(type, "error") != 0 && strcmp(type, "headline") != 0)
            router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
        xml_free(stanza);
        return;
    }
    if (resource) {
        c2s *target = router_session(srv, bare, resource);
        if (target && c2s_is_live(target)) {
            c2s_send(target, stanza);
            if (carbons)
                carbons_copy_received(srv, stanza, bare, target->full, 0);
            xml_free(stanza);
            return;
        }
        if (forward && route_to_node(srv, stanza, bare, resource, carbons))
            return; /* that session is on another node */
        /* RFC 6121 8.5.3.2.1: a chat or normal message for a gone resource goes to the bare JID. */
        if (strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0) {
            if (strcmp(type, "groupchat") == 0)
                router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
            xml_free(stanza);
            return;
        }
    }
    deliver_to_bare(srv, stanza, bare, type, carbons, forward);
    xml_free(stanza);
}

void message_deliver(server *srv, xml_node *stanza, const char *bare, const char *resource)
{
    deliver(srv, stanza, bare, resource, 0, 1);
}

void message_deliver_here(server *srv, xml_node *stanza, const char *bare, const char *resource)
{
    deliver(srv, stanza, bare, resource, 0, 0);
}

/* A user's message reaches its recipient, and both users' other devices get copies. */
static void deliver_from_user(server *srv, xml_node *stanza, const char *bare,
                              const char *resource)
{
    mam_archive(srv, stanza, bare);
    carbons_copy_sent(srv, stanza);
    deliver(srv, stanza, bare, resource, 1, 1);
}

/* Where a held message goes when it is released. */
typedef struct target {
    char *bare;
    char *resource;
} target;

static void free_target(void *ud)
{
    target *t = ud;
    free(t->bare);
    free(t->resource);
    free(t);
}

static void release(server *srv, xml_node *stanza, void *ud)
{
    target *t = ud;
    deliver_from_user(srv, stanza, t->bare, t->resource);
    free_target(t);
}

void message_to_local(server *srv, xml_node *stanza, const char *bare, const char *resource)
{
    if (policy_service_refuses(srv, stanza, bare))
        return;
    if (compliance_enabled(srv)) {
        int record = compliance_wants(stanza);
        /* Content-free messages (chat states, receipts) need no record but must not
         * overtake held ones. */
        if (record || compliance_pending(srv)) {
            const char *reason = NULL;
            const char *outcome = record ? decide_outcome(srv, stanza, bare, resource, &reason)
                                         : NULL;
            target *t = xcalloc(1, sizeof *t);
            t->bare = xstrdup(bare);
            t->resource = resource ? xstrdup(resource) : NULL;
            char *recipient = resource ? xasprintf("%s/%s", bare, resource) : xstrdup(bare);
            compliance_hold(srv, stanza, recipient, outcome, reason, release, t, free_target);
            free(recipient);
            return;
        }
    }
    deliver_from_user(srv, stanza, bare, resource);
}

static void release_remote(server *srv, xml_node *stanza, void *ud)
{
    carbons_copy_sent(srv, stanza);
    s2s_send(srv, stanza);
}

void message_to_remote(server *srv, xml_node *stanza)
{
    if (compliance_enabled(srv)) {
        int record = compliance_wants(stanza);
        if (record || compliance_pending(srv)) {
            /* The record says where it went: the remote server has it from here on. */
            const char *outcome = NULL, *reason = NULL;
            jid to;
            if (record && jid_parse(xml_get_attr(stanza, "to"), &to) == 0) {
                int ok = s2s_allowed(srv, to.domain);
                outcome = ok ? "sent-remote" : "bounced";
                reason = ok ? NULL : "federation with that domain is not allowed";
                jid_clear(&to);
            }
            compliance_hold(srv, stanza, xml_get_attr(stanza, "to"), outcome, reason,
                            release_remote, NULL, NULL);
            return;
        }
    }
    release_remote(srv, stanza, NULL);
}

static int send_stored(void *ud, const char *text)
{
    c2s *s = ud;
    if (!c2s_is_live(s))
        return -1;
    xml_node *stanza = xml_parse_document(text, strlen(text), XMLNS_CLIENT,
                                          s->srv->cfg.max_stanza_size * 2);
    if (!stanza) {
        log_error("an offline message for %s could not be parsed; dropped", s->user);
        return 0;
    }
    c2s_send(s, stanza);
    xml_free(stanza);
    return 0;
}

void message_flush_offline(server *srv, c2s *s)
{
    if (store_offline_pop(srv->store, s->user, send_stored, s) == STORE_ERROR)
        log_error("offline messages of %s: %s", s->user, store_last_error(srv->store));
}
