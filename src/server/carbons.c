/* carbons.c - XEP-0280 message carbons (see carbons.h). Which messages are copied follows
 * XEP-0280 section 6: chat messages, and normal messages with a body, unless marked
 * private (or no-copy), or sent by a room (group chat, and occupants' private messages:
 * the user's other devices are not in the room). A private message the user sends to an
 * occupant is an ordinary chat to the other devices, and is copied (as Prosody and
 * ejabberd do). */
#include "carbons.h"
#include "../common/jid.h"
#include "../common/util.h"
#include "node.h"
#include "router.h"
#include "stanza.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XMLNS_FORWARD "urn:xmpp:forward:0"
#define XMLNS_HINTS "urn:xmpp:hints"
#define XMLNS_MUC_USER "http://jabber.org/protocol/muc#user"

static const char kind_received[] = "received";

void carbons_handle_iq(server *srv, c2s *origin, xml_node *iq)
{
    const xml_node *p = xml_first_element(iq);
    xml_node *reply;
    if (!str_eq(xml_get_attr(iq, "type"), "set")) {
        reply = stanza_error(iq, "modify", "bad-request", "carbons are enabled with an IQ set");
    } else {
        origin->carbons = strcmp(p->name, "enable") == 0;
        reply = stanza_iq_result(iq);
    }
    if (reply) {
        c2s_send(origin, reply);
        xml_free(reply);
    }
    xml_free(iq);
}

static int eligible(const xml_node *stanza, int received)
{
    const char *type = xml_get_attr(stanza, "type");
    if (xml_child(stanza, XMLNS_CARBONS, "private") || xml_child(stanza, XMLNS_HINTS, "no-copy"))
        return 0;
    /* Sent by a room (the room marks an occupant's private message with this): only the
     * session in the room can answer it. */
    if (received && xml_child(stanza, XMLNS_MUC_USER, "x"))
        return 0;
    if (str_eq(type, "chat"))
        return 1;
    return (!type || str_eq(type, "normal")) && xml_child(stanza, XMLNS_CLIENT, "body");
}

static void send_copy(c2s *to, const xml_node *stanza, const char *wrapper, const char *bare)
{
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "from", bare);
    xml_set_attr(m, "to", to->full);
    const char *type = xml_get_attr(stanza, "type");
    xml_set_attr(m, "type", type ? type : "normal");
    xml_node *w = xml_add_child(m, XMLNS_CARBONS, wrapper);
    xml_node *fwd = xml_add_child(w, XMLNS_FORWARD, "forwarded");
    xml_append(fwd, xml_copy(stanza));
    c2s_send(to, m);
    xml_free(m);
}

/* The sender's other sessions here: every one with carbons on but the sending resource. */
static void copy_sent_here(server *srv, const xml_node *stanza, const char *bare,
                           const char *from_resource)
{
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
        if (s->carbons && s->available && c2s_is_live(s) && strcmp(s->resource, from_resource))
            send_copy(s, stanza, "sent", bare);
}

/* The recipient's sessions here that did not get the message: it went to skip_full, or
 * (skip_full NULL) to the available sessions of priority skip_priority. */
static void copy_received_here(server *srv, const xml_node *stanza, const char *bare,
                               const char *skip_full, int skip_priority)
{
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource) {
        int got = skip_full ? strcmp(s->full, skip_full) == 0 : s->priority == skip_priority;
        /* A message a user sends to their own other resource is not copied back to it. */
        if (!got && s->carbons && s->available && c2s_is_live(s) &&
            !str_eq(xml_get_attr(stanza, "from"), s->full))
            send_copy(s, stanza, kind_received, bare);
    }
}

/* The same copies from the nodes that hold other sessions of bare (node.h): one
 * <carbon/> envelope per node, from the domain itself (no client can send that), which
 * the node turns into copies for its own sessions and never forwards again. */
static void copy_on_other_nodes(server *srv, const xml_node *stanza, const char *bare,
                                const char *kind, const char *skip_full, int skip_priority)
{
    xml_node *env = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(env, "from", srv->cfg.domain);
    xml_set_attr(env, "to", bare);
    xml_node *c = xml_add_child(env, XMLNS_NODE, "carbon");
    xml_set_attr(c, "kind", kind);
    if (skip_full) {
        xml_set_attr(c, "skip", skip_full);
    } else if (strcmp(kind, kind_received) == 0) {
        char prio[16];
        snprintf(prio, sizeof prio, "%d", skip_priority);
        xml_set_attr(c, "skip-priority", prio);
    }
    xml_append(c, xml_copy(stanza));
    node_copy_to_user(srv, bare, env, NODE_AVAILABLE);
    xml_free(env);
}

void carbons_copy_sent(server *srv, const xml_node *stanza)
{
    const char *from = xml_get_attr(stanza, "from");
    jid j;
    if (!eligible(stanza, 0) || !from || jid_parse(from, &j) < 0)
        return;
    if (j.local && j.resource && router_is_local_domain(srv, j.domain)) {
        char *bare = jid_bare(&j);
        copy_sent_here(srv, stanza, bare, j.resource);
        copy_on_other_nodes(srv, stanza, bare, "sent", NULL, 0);
        free(bare);
    }
    jid_clear(&j);
}

void carbons_copy_received(server *srv, const xml_node *stanza, const char *bare,
                           const char *target, int priority)
{
    if (!eligible(stanza, 1))
        return;
    copy_received_here(srv, stanza, bare, target, priority);
    copy_on_other_nodes(srv, stanza, bare, kind_received, target, priority);
}

void carbons_from_node(server *srv, const char *bare, const xml_node *carbon)
{
    const char *kind = xml_get_attr(carbon, "kind");
    const xml_node *m = xml_child(carbon, XMLNS_CLIENT, "message");
    if (!m || !eligible(m, str_eq(kind, kind_received)))
        return;
    if (str_eq(kind, "sent")) {
        /* The sender's resource is on the node that sent this: every session here. */
        jid from;
        if (jid_parse(xml_get_attr(m, "from") ? xml_get_attr(m, "from") : "", &from) < 0)
            return;
        copy_sent_here(srv, m, bare, from.resource ? from.resource : "");
        jid_clear(&from);
    } else if (str_eq(kind, kind_received)) {
        const char *prio = xml_get_attr(carbon, "skip-priority");
        copy_received_here(srv, m, bare, xml_get_attr(carbon, "skip"), prio ? atoi(prio) : 0);
    }
}
