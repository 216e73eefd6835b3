/* carbons.h - XEP-0280 message carbons: a user's other devices get a copy of the
 * one-to-one chats the user sends and receives on any of them. */
#ifndef PARLEY_CARBONS_H
#define PARLEY_CARBONS_H

#include "../common/xml.h"
#include "c2s.h"

#define XMLNS_CARBONS "urn:xmpp:carbons:2"

/* <enable/> or <disable/> in the carbons namespace, from the session's own client.
 * Answers the IQ; takes ownership. */
void carbons_handle_iq(server *srv, c2s *origin, xml_node *iq);
/* A message from a local user (from = full JID) is being delivered: copy it, wrapped in
 * <sent/>, to the sender's other sessions that enabled carbons, on every node. */
void carbons_copy_sent(server *srv, const xml_node *stanza);
/* A message for local account bare was delivered to target (a full JID), or (target NULL)
 * to the available resources of the given priority on every node: copy it, wrapped in
 * <received/>, to the account's other sessions that enabled carbons, on every node. */
void carbons_copy_received(server *srv, const xml_node *stanza, const char *bare,
                           const char *target, int priority);
/* A <carbon/> envelope (node ns) from another node for bare: the copies for the sessions
 * of bare on this node. */
void carbons_from_node(server *srv, const char *bare, const xml_node *carbon);

#endif
