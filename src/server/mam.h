/* mam.h - XEP-0313 message archive management for one-to-one chats: every chat message a
 * local user sends or receives is kept in the user's archive (the store's mam table) with
 * an XEP-0359 stanza-id, queried with XEP-0059 paging, governed by per-user preferences,
 * and expired after archive_expires_after days. */
#ifndef PARLEY_MAM_H
#define PARLEY_MAM_H

#include "../common/xml.h"
#include "c2s.h"

#define XMLNS_MAM "urn:xmpp:mam:2"
#define XMLNS_SID "urn:xmpp:sid:0"

/* A message from a local user or to local account bare is being delivered: archive it
 * for the sender (when local) and the recipient, and stamp the recipient's archive id on
 * it. Archive failures are logged, never stop delivery. */
void mam_archive(server *srv, xml_node *stanza, const char *recipient_bare);
/* A query, fields or prefs IQ for the session's own archive. Takes ownership. */
void mam_handle_iq(server *srv, c2s *origin, xml_node *iq);
/* Is this IQ payload ours? */
int mam_is_request(const xml_node *payload);
/* Hourly: delete archived messages older than archive_expires_after. */
void mam_expire(server *srv);
/* Free cached preferences (shutdown). */
void mam_free(server *srv);

#endif
