/* ext.h - libparley's parts above the core session (internal): group chat (rooms.c,
 * room_ops.c), the message archive (archive.c, archive_sync.c) and carbons (carbons.c),
 * tied to the core by ext.c: the received stanzas they see first, the session's start and
 * end, and how the events of a forwarded message are marked (carbon, archived). */
#ifndef PARLEY_CLIENT_EXT_H
#define PARLEY_CLIENT_EXT_H

#include "internal.h"

#define XMLNS_MUC "http://jabber.org/protocol/muc"
#define XMLNS_MUC_USER "http://jabber.org/protocol/muc#user"
#define XMLNS_MUC_ADMIN "http://jabber.org/protocol/muc#admin"
#define XMLNS_MUC_OWNER "http://jabber.org/protocol/muc#owner"
#define XMLNS_MAM "urn:xmpp:mam:2"
#define XMLNS_RSM "http://jabber.org/protocol/rsm"
#define XMLNS_FORWARD "urn:xmpp:forward:0"
#define XMLNS_CARBONS "urn:xmpp:carbons:2"
#define XMLNS_SID "urn:xmpp:sid:0"
#define XMLNS_XDATA "jabber:x:data"

/* Bounds on what the server can make us keep. */
#define EXT_MAX_ROOMS 256         /* rooms joined at once */
#define EXT_MAX_OCCUPANTS 5000    /* occupants tracked per room */
#define EXT_MAX_NICK 128          /* bytes of a nickname we send */
#define EXT_MAX_PASSWORD 256
#define EXT_MAX_TEXT 1024         /* subject, reason, status we send */
#define EXT_MAX_LISTED 1000       /* rooms in one list */

/* How a message reached us: client_emit marks its MESSAGE event with this. */
typedef struct fwd_ctx {
    int carbon;               /* PARLEY_CARBON_* */
    int archived;
    int outgoing;
    const char *stanza_id;
    long long timestamp_ms;
} fwd_ctx;

typedef struct rooms_state rooms_state;
typedef struct archive_state archive_state;

typedef struct ext_state {
    rooms_state *rooms;
    archive_state *archive;
    const fwd_ctx *fwd;       /* set while a forwarded message is being delivered */
} ext_state;

/* ---- ext.c */
/* The state, made on first use. */
ext_state *ext_of(parley *p);
/* A live or replayed message that is not a carbon, an archive result or room traffic. */
int ext_live_message(parley *p, const xml_node *msg);
/* Deliver a one-to-one message through the core's path, its event marked by ctx. */
void ext_deliver(parley *p, const xml_node *msg, const fwd_ctx *ctx);
int ext_online(const parley *p);
/* The <delay/> stamp of a message in Unix ms, or 0. */
long long ext_delay_ms(const xml_node *msg);
/* The id of the message's <stanza-id/> given by `by` (a bare JID), or NULL. */
const char *ext_stanza_id(const xml_node *msg, const char *by);
/* Has the message something to show (a body, or an end-to-end encrypted payload)? */
int ext_has_content(const xml_node *msg);
/* Is addr (any form) the account's bare JID, or one of its full JIDs? */
int ext_is_own(const parley *p, const char *addr);
/* Send an IQ built here, tracked with cb (which gets every outcome, a disconnect
 * included, so it can free ud). */
void ext_send_iq(parley *p, xml_node *iq, parley_iq_fn cb, void *ud);

/* ---- carbons.c */
void carbons_enable(parley *p);
/* A message from our own account carrying a carbon: 1 (delivered, or refused as forged). */
int carbons_handle(parley *p, const xml_node *msg);

/* ---- archive.c: queries, results, what has been delivered */
void archive_free(parley *p);
/* A result of one of our queries: 1 (delivered, skipped as a duplicate, or refused). */
int archive_result(parley *p, const xml_node *msg);
/* Record that the message with archive id `id` in archive (NULL: ours) was delivered;
 * 1 if it already was (the caller then drops it). NULL id: 0. */
int archive_seen(parley *p, const char *archive, const char *id);
/* Record that a one-to-one message with an XEP-0359 origin-id was delivered; 1 if one
 * from the same sender with the same origin-id already was: a copy its client sent again
 * after a failover (the server gave it a new stanza-id), dropped by the caller. */
int archive_seen_origin(parley *p, const xml_node *msg);
/* We sent a message with this id (its archived copy is not delivered again). */
void archive_note_sent(parley *p, const char *id);
/* Hold a live message of archive while a fetch of it runs: 1 if held (a copy is kept and
 * replayed when the fetch ends). */
int archive_hold(parley *p, const char *archive, const xml_node *msg);

/* ---- archive_sync.c: what is fetched at sign-in and on joining a room */
/* archive_sync > 0, and the admin policy does not disable history. */
int archive_sync_wanted(const parley *p);
void archive_sync_account(parley *p);
void archive_sync_room(parley *p, const char *room);
/* The session ended: running fetches end with it, held messages are delivered. */
void archive_on_offline(parley *p);

/* ---- rooms.c: rooms, occupants, what rooms send */
int rooms_message(parley *p, const xml_node *msg);
int rooms_presence(parley *p, const xml_node *pres);
/* A message from a room's archive (msg is the forwarded one): 1 if delivered, 0 if it
 * was a duplicate or not a room message. */
int rooms_archived(parley *p, const char *room, const xml_node *msg, const char *id,
                   long long ts_ms);
void rooms_on_online(parley *p);
void rooms_on_offline(parley *p);
void rooms_free(parley *p);
/* Emit a ROOM_ERROR for room with this text. */
void rooms_error(parley *p, const char *room, parley_error err, int change, const char *id,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* ---- room_ops.c: what the application asks of rooms, the service */
void room_ops_discover(parley *p);
/* Build "<name>@<service>" if room has no '@', normalised bare JID; NULL if invalid. */
char *room_ops_jid(const parley *p, const char *room);

#endif
