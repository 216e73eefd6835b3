/* mam.h - XEP-0313 message archive management: every chat message a local user sends or
 * receives is kept in the user's archive (the store's mam table) with an XEP-0359
 * stanza-id, queried with XEP-0059 paging, governed by per-user preferences, and expired
 * after archive_expires_after days. Rooms keep their own archives in the same table (owner
 * = the room's JID), queried with the same code. */
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

/* Where the answers to a query on some archive go. */
typedef struct mam_target {
    const char *owner;        /* whose archive: a user's or a room's bare JID (the 'from'
                                 of each result) */
    const char *to;           /* the requester's full JID */
    void (*send)(void *ud, xml_node *stanza); /* sends and frees each answer */
    void *ud;
    const char *with_refused; /* non-NULL: 'with' may not be used, and this says why */
} mam_target;

/* A query (set) or fields request (get) in urn:xmpp:mam:2 on t->owner's archive, with
 * the paging and filters of a user's own; the caller has checked the requester may read
 * it. iq is not consumed. */
void mam_answer_query(server *srv, const mam_target *t, const xml_node *iq);
/* Keep a room message (the broadcast form, from room/nick, carrying the room's stanza-id
 * id) once in the room's archive. sender_bare is the occupant's real bare JID. */
void mam_archive_room(server *srv, const char *room, const char *sender_bare, const char *id,
                      const xml_node *stanza);
/* Delete owner's whole archive (a temporary room that is gone, a new room's name). */
void mam_forget(server *srv, const char *owner);
/* Is this IQ payload ours? */
int mam_is_request(const xml_node *payload);
/* Hourly: delete archived messages older than archive_expires_after. */
void mam_expire(server *srv);
/* Commit the messages archived since the last call in one transaction (before the event
 * loop sleeps, ahead of any output: see mam.c). A failure is logged and the messages are
 * kept for a retry. */
void mam_flush(server *srv);
/* Commit what is left and free cached preferences (shutdown). */
void mam_free(server *srv);

#endif
