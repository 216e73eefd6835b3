/* roster.h - RFC 6121 roster management (jabber:iq:roster) with XEP-0237 versioning,
 * and roster pushes to every interested resource. */
#ifndef PARLEY_ROSTER_H
#define PARLEY_ROSTER_H

#include "../common/xml.h"
#include "c2s.h"
#include "store.h"

/* A roster get or set from the account's own session. Takes ownership. */
void roster_handle_iq(server *srv, c2s *s, xml_node *iq);
/* Push an item (removed = subscription='remove') to every interested resource of user. */
void roster_push(server *srv, const char *user, const roster_item *item, int removed);
/* A push another node made for user's sessions here (node.h): sent to each of them. */
void roster_push_here(server *srv, const char *user, const xml_node *push);
/* Store item and push it. Returns the store status. */
store_status roster_save_and_push(server *srv, const char *user, const roster_item *item);

#endif
