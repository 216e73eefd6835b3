/* pep.h - XEP-0163 Personal Eventing Protocol: every account is a small publish-subscribe
 * service (XEP-0060) of its own. Nodes and items live in the store and survive restarts;
 * notifications go to the owner's available resources and to contacts (access model
 * "presence") or anyone on the server (access model "open") whose entity capabilities
 * (XEP-0115, caps.h) include NODE+notify. docs/pep.md describes what is supported. */
#ifndef PARLEY_PEP_H
#define PARLEY_PEP_H

#include "../common/xml.h"
#include "c2s.h"

/* Is this IQ payload a pubsub request (pubsub or pubsub#owner)? */
int pep_is_request(const xml_node *payload);
/* A pubsub IQ addressed to owner's bare JID (the sender's own, or a contact's). Takes
 * ownership. */
void pep_handle_iq(server *srv, c2s *origin, xml_node *iq, const char *owner);
/* An available presence of session s (its caps may announce new interests: the last item
 * of each node of interest is then sent, from the account itself and its contacts). */
void pep_presence(server *srv, c2s *s, const xml_node *presence);
/* Session s, available, was resumed here from another node (node_sm.h): its caps. */
void pep_session_moved(server *srv, c2s *s);
/* Session s went unavailable or closed. */
void pep_session_end(server *srv, c2s *s);
/* owner approved contact's presence subscription: contact's interested resources get the
 * last item of owner's nodes. */
void pep_subscription_approved(server *srv, const char *owner, const char *contact);
/* A <pep/> envelope (node.h) from another node: an event for the interested sessions of
 * bare here (bare NULL: of everyone here, for an open node), or the last items of the
 * owner who approved bare's subscription. */
void pep_from_node(server *srv, const char *bare, const xml_node *el);
/* The PEP identity and features, for disco#info on an account. */
void pep_disco_info(xml_node *query);
/* The nodes of owner that requester may read, for disco#items on an account. */
void pep_disco_items(server *srv, const char *requester, const char *owner, xml_node *query);
void pep_free(server *srv);

#endif
