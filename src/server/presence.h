/* presence.h - RFC 6121 presence: subscriptions (sections 3 and 4), broadcast, probes,
 * directed presence, and the unavailable presence of a session that ends. */
#ifndef PARLEY_PRESENCE_H
#define PARLEY_PRESENCE_H

#include "../common/xml.h"
#include "c2s.h"

/* A presence stanza a bound client sent (with or without 'to'). Takes ownership. */
void presence_from_client(server *srv, c2s *s, xml_node *stanza);
/* A presence stanza from another domain (router_from_remote). Takes ownership. */
void presence_from_remote(server *srv, xml_node *stanza);
/* The session ended: tell subscribers and directed-presence targets it is unavailable. */
void presence_session_end(server *srv, c2s *s);

#endif
