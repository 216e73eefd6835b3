/* carbons.c - XEP-0280 message carbons (see carbons.h). Which messages are copied follows
 * XEP-0280 section 6: chat messages, and normal messages with a body, unless marked
 * private (or no-copy) or sent within a group chat. */
#include "carbons.h"
#include "../common/jid.h"
#include "../common/util.h"
#include "router.h"
#include "stanza.h"

#include <stdlib.h>
#include <string.h>

#define XMLNS_FORWARD "urn:xmpp:forward:0"
#define XMLNS_HINTS "urn:xmpp:hints"
#define XMLNS_MUC_USER "http://jabber.org/protocol/muc#user"

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

static int eligible(const xml_node *stanza)
{
    const char *type = xml_get_attr(stanza, "type");
    if (xml_child(stanza, XMLNS_CARBONS, "private") || xml_child(stanza, XMLNS_HINTS, "no-copy"))
        return 0;
    /* A private message within a room is between occupants, not the user's devices. */
    if (xml_child(stanza, XMLNS_MUC_USER, "x"))
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

void carbons_copy_sent(server *srv, const xml_node *stanza)
{
    const char *from = xml_get_attr(stanza, "from");
    jid j;
    if (!eligible(stanza) || !from || jid_parse(from, &j) < 0)
        return;
    if (j.local && j.resource && router_is_local_domain(srv, j.domain)) {
        char *bare = jid_bare(&j);
        for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
            if (s->carbons && s->available && c2s_is_live(s) && strcmp(s->resource, j.resource))
                send_copy(s, stanza, "sent", bare);
        free(bare);
    }
    jid_clear(&j);
}

void carbons_copy_received(server *srv, const xml_node *stanza, const char *bare,
                           const c2s *target)
{
    if (!eligible(stanza))
        return;
    int best = -1;
    if (!target)
        for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
            if (s->available && c2s_is_live(s) && s->priority > best)
                best = s->priority;
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource) {
        int got = target ? s == target : s->available && c2s_is_live(s) && s->priority == best;
        /* A message a user sends to their own other resource is not copied back to it. */
        if (!got && s->carbons && s->available && c2s_is_live(s) &&
            !str_eq(xml_get_attr(stanza, "from"), s->full))
            send_copy(s, stanza, "received", bare);
    }
}
