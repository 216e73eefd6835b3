/* message.h - RFC 6121 section 8 message delivery to local accounts, and XEP-0160
 * offline storage with delivery on the next available presence. */
#ifndef PARLEY_MESSAGE_H
#define PARLEY_MESSAGE_H

#include "../common/xml.h"
#include "c2s.h"

/* Deliver a message addressed to bare (and resource, or NULL) of this server. Takes
 * ownership. */
void message_to_local(server *srv, xml_node *stanza, const char *bare, const char *resource);
/* A message from a local user to another domain: recorded (outcome sent-remote) when it
 * leaves, copied to the sender's other devices, then sent over the server link. Takes
 * ownership. */
void message_to_remote(server *srv, xml_node *stanza);
/* The delivery itself, without a compliance record or hold: for services that recorded
 * the message already (router_send). Takes ownership. */
void message_deliver(server *srv, xml_node *stanza, const char *bare, const char *resource);
/* The same for a message another node forwarded: sessions on this node, or offline
 * storage; never forwarded again (node.h). Takes ownership. */
void message_deliver_here(server *srv, xml_node *stanza, const char *bare, const char *resource);
/* Send the stored offline messages of s->user to s (after initial presence). */
void message_flush_offline(server *srv, c2s *s);

#endif
