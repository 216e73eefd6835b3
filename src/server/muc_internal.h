/* muc_internal.h - state shared by the multi-user chat modules (XEP-0045): the service,
 * its rooms, their occupants and affiliations. Only muc*.c include this; the rest of
 * the server sees muc.h.
 *
 * Split by responsibility: muc.c routes stanzas to rooms and enforces the service's
 * limits, muc_room.c is occupants, presence and messages, muc_config.c the owner's form
 * and destruction, muc_admin.c roles and affiliations, muc_store.c persistence,
 * muc_archive.c the room's message archive (XEP-0313). */
#ifndef PARLEY_MUC_INTERNAL_H
#define PARLEY_MUC_INTERNAL_H

#include "../common/dict.h"
#include "../common/xml.h"
#include "server.h"

#include <stddef.h>
#include <stdint.h>

#define MUC_NS "http://jabber.org/protocol/muc"
#define MUC_NS_USER "http://jabber.org/protocol/muc#user"
#define MUC_NS_ADMIN "http://jabber.org/protocol/muc#admin"
#define MUC_NS_OWNER "http://jabber.org/protocol/muc#owner"
#define MUC_NS_ROOMCONFIG "http://jabber.org/protocol/muc#roomconfig"
#define MUC_NS_ROOMINFO "http://jabber.org/protocol/muc#roominfo"
#ifndef XMLNS_SID
#define XMLNS_SID "urn:xmpp:sid:0"
#endif
#ifndef XMLNS_DATA
#define XMLNS_DATA "jabber:x:data"
#endif
#define XMLNS_CONFERENCE "jabber:x:conference"

/* Bounds on what one user can make the server keep (bytes, after normalisation). */
#define MUC_MAX_NICK 128
#define MUC_MAX_ROOM_NAME 256         /* a room JID's localpart */
#define MUC_MAX_SUBJECT 1024
#define MUC_MAX_TITLE 256             /* the configured room name */
#define MUC_MAX_DESCRIPTION 1024
#define MUC_MAX_PASSWORD 256
#define MUC_MAX_REASON 1024
#define MUC_MAX_AFFILIATIONS 10000    /* entries in one room's affiliation list */
#define MUC_MAX_LISTED 1000           /* rooms in one disco#items answer */
#define MUC_MAX_HISTORY_BYTES (1u << 20) /* one room's history, serialized */

typedef enum {
    MUC_AFF_NONE = 0,
    MUC_AFF_OUTCAST,
    MUC_AFF_MEMBER,
    MUC_AFF_ADMIN,
    MUC_AFF_OWNER,
} muc_aff;

typedef enum {
    MUC_ROLE_NONE = 0,
    MUC_ROLE_VISITOR,
    MUC_ROLE_PARTICIPANT,
    MUC_ROLE_MODERATOR,
} muc_role;

/* Who may send private messages (muc#roomconfig_allowpm). */
typedef enum { MUC_PM_NONE = 0, MUC_PM_MODERATORS, MUC_PM_PARTICIPANTS, MUC_PM_ANYONE } muc_pm;

/* A token bucket: rate tokens a second, at most rate in reserve (one second's burst). */
typedef struct muc_bucket {
    double tokens;
    int64_t last_ms;
} muc_bucket;

typedef struct muc_occupant {
    char *nick;
    char *jid;           /* the occupant's real full JID */
    char *bare;
    char *resource;
    muc_role role;
    xml_node *presence;  /* the last available presence's payload (show, status, caps) */
    char *node;          /* the node of this domain holding the session, if not this one
                          * (node_rooms.h); NULL: here, or a user of another domain */
    struct muc_occupant *prev, *next; /* join order: the order presence goes out in */
} muc_occupant;

typedef struct muc_room_config {
    char *name;          /* NULL: none */
    char *description;
    char *password;      /* NULL: not password-protected */
    int persistent;
    int public_list;     /* listed in disco#items on the service */
    int members_only;
    int moderated;
    int semi_anonymous;  /* 0 (default): everyone sees real JIDs; 1: moderators only */
    int change_subject;  /* participants may change the subject */
    int allow_invites;   /* members may invite (admins and owners always may) */
    muc_pm allow_pm;
    int max_users;
} muc_room_config;

/* One message of the room's history: the broadcast form (from room/nick, stanza-id). */
typedef struct muc_history_entry {
    xml_node *msg;
    int64_t ts_us;
    size_t chars;        /* serialized size, for the maxchars request */
    int64_t seq;         /* persistent rooms: the store key's number */
} muc_history_entry;

typedef struct muc muc;

typedef struct muc_room {
    muc *svc;
    char *jid;           /* bare, normalised */
    muc_room_config cfg;
    int locked;          /* created, awaiting the owner's configuration (status 201) */
    dict *affs;          /* bare JID -> (void *)(intptr_t)muc_aff, never MUC_AFF_NONE */
    dict *by_nick;       /* nick -> occupant */
    dict *by_jid;        /* real full JID -> occupant */
    muc_occupant *first, *last;
    size_t noccupants;
    char *subject;       /* NULL: never set */
    char *subject_from;  /* the nick that set it (the room itself if NULL) */
    muc_history_entry *hist; /* ring of svc->srv->cfg.muc_history entries */
    size_t hist_start, hist_len;
    size_t hist_bytes;   /* sum of the entries' chars */
    int64_t hist_seq;
    muc_bucket rate;
    /* Several nodes (node_rooms.h): what the store's room list shows of the room. */
    char *listed;        /* the name listed, NULL: not listed */
    int listed_persistent;
    int described;       /* listed and listed_persistent were written */
} muc_room;

struct muc {
    server *srv;
    char *domain;
    dict *rooms;         /* room bare JID -> muc_room */
    dict *user_rate;     /* sender bare JID -> muc_bucket */
    int registered;      /* the router serves domain through us */
    struct node_rooms_state *homes; /* several nodes: where rooms live (node_rooms.h) */
    const char *via_node; /* while a stanza from another node's link is handled: that node */
    int busy;            /* handling a stanza: others wait in deferred (muc.c) */
    struct deferred *deferred;
};

/* ---- muc.c ---- */
/* Take a token from b at rate per second; 0, or -1 when empty. */
int muc_bucket_take(muc_bucket *b, int rate, int64_t now_ms);
/* Rate limits for one message from sender into r (user, then room): 0, or -1 after the
 * resource-constraint error has gone back to the sender. */
int muc_rate_check(muc_room *r, const xml_node *stanza, const char *sender_bare);
/* Forget a room (its occupants must already be gone) and free it. */
void muc_remove_room(muc *m, muc_room *r);
/* After a room handled something: a temporary room nobody is in ends; with several
 * nodes, the room's claim is given up (room gone) or its listing kept up to date. */
void muc_room_done(muc *m, const char *room_jid);
/* The name the service's room list shows for r, or NULL if r is not listed (caller
 * frees). */
char *muc_room_listing(const muc_room *r);
/* Between hold and release, stanzas for the service wait (for code that loops over
 * rooms or occupants outside a delivery); release handles them. */
void muc_hold(muc *m);
void muc_release(muc *m);
/* A stanza for the service that came over the link from node (node_rooms.h). Takes
 * ownership. */
void muc_deliver_via(muc *m, xml_node *stanza, const char *node);

/* Marks (in the node link namespace, XMLNS_NODE) an unavailable presence that the
 * server sent because the occupant's session ended, not because the client left. */
#define MUC_SESSION_ENDED "session-ended"
/* Does this unavailable presence say the session ended (disconnected)? */
int muc_session_ended(const xml_node *stanza);

/* ---- muc_room.c ---- */
muc_room *muc_room_new(muc *m, const char *jid);
void muc_room_free(muc_room *r);
muc_aff muc_room_aff(const muc_room *r, const char *bare);
/* Set an affiliation in memory (the caller persists and audits). */
void muc_room_set_aff(muc_room *r, const char *bare, muc_aff aff);
muc_role muc_default_role(const muc_room *r, muc_aff aff);
muc_occupant *muc_occupant_by_jid(const muc_room *r, const char *full);
muc_occupant *muc_occupant_by_nick(const muc_room *r, const char *nick);
/* A presence to room/nick (join, change, leave) from a real full JID. created: the room
 * was made for this join. Takes ownership of stanza. */
void muc_room_presence(muc_room *r, xml_node *stanza, const char *from, const char *nick,
                       int created);
/* A message to the room (nick NULL) or to an occupant. Takes ownership. */
void muc_room_message(muc_room *r, xml_node *stanza, const char *from, const char *nick);
/* Send stanza (not consumed) to an occupant's session, 'to' set to its real JID. */
void muc_send(muc_room *r, const muc_occupant *o, xml_node *stanza);
/* Tell everyone an occupant's role or affiliation changed (its presence, again). */
void muc_room_broadcast_presence(muc_room *r, muc_occupant *o);
/* Remove an occupant: unavailable presence with these status codes (and the actor's
 * nick and a reason, if any) to everyone, the occupant included. */
void muc_room_remove(muc_room *r, muc_occupant *o, const int *codes, size_t ncodes,
                     const char *actor, const char *reason);
/* The compliance audit event (room-join, room-leave) of o in r, with its role, affiliation,
 * nick and, for a leave, why (reason may be NULL). Only the room's home calls this. */
void muc_audit_occupant(muc_room *r, const muc_occupant *o, const char *event,
                        const char *reason);
/* A message from the room to every occupant carrying these status codes (104: the
 * configuration changed). */
void muc_room_status_message(muc_room *r, const int *codes, size_t ncodes);
/* An <x xmlns=muc#user/> under parent, and a <status code/> in it. */
xml_node *muc_user_x(xml_node *parent);
void muc_add_status(xml_node *x, int code);
const char *muc_aff_name(muc_aff a);
const char *muc_role_name(muc_role r);
int muc_aff_parse(const char *s);  /* -1 if unknown */
int muc_role_parse(const char *s); /* -1 if unknown */

/* ---- muc_message.c ---- */
/* Append a history entry (broadcast form, copied); persistent rooms store it too unless
 * loading (save = 0). */
void muc_history_add(muc_room *r, const xml_node *msg, int64_t ts_us, int64_t seq, int save);
void muc_history_clear(muc_room *r);
/* Send the history a joiner asked for (<history/> in its join element, may be NULL),
 * then the subject, to o. */
void muc_history_send(muc_room *r, const muc_occupant *o, const xml_node *request);
/* Messages to the room (groupchat, invitations, declines) and private messages. */
void muc_message_groupchat(muc_room *r, xml_node *stanza, muc_occupant *o);
void muc_message_private(muc_room *r, xml_node *stanza, muc_occupant *o, const char *nick);
void muc_message_other(muc_room *r, xml_node *stanza, muc_occupant *o, const char *from);

/* ---- muc_config.c ---- */
void muc_config_defaults(muc_room_config *c, const config *cfg);
void muc_config_clear(muc_room_config *c);
/* An IQ in the muc#owner namespace (form get/submit/cancel, destroy). Takes ownership. */
void muc_config_iq(muc_room *r, xml_node *iq, const char *from);
/* disco#info on the room. Takes ownership. */
void muc_room_disco_info(muc_room *r, xml_node *iq);
/* Destroy the room: everyone gets unavailable presence with <destroy/>, the stored room
 * is deleted, the event audited, and r freed. */
void muc_room_destroy(muc_room *r, const char *actor, const char *reason, const char *alt);

/* ---- muc_admin.c ---- */
/* An IQ in the muc#admin namespace (role and affiliation lists and changes). Takes
 * ownership. */
void muc_admin_iq(muc_room *r, xml_node *iq, const char *from);

/* ---- muc_store.c ---- */
/* Load every persistent room. 0, or -1 after logging (the store failed). */
int muc_store_load(muc *m);
/* Load one persistent room into m->rooms (replacing any copy there): the room, or NULL
 * if it is not stored (or the store failed, logged). */
muc_room *muc_store_load_room(muc *m, const char *room_jid);
/* Each writes one document of a persistent room (no-op for temporary ones); failures
 * are logged (the room keeps working from memory). */
void muc_store_config(muc_room *r);
void muc_store_affiliations(muc_room *r);
void muc_store_subject(muc_room *r);
void muc_store_history_add(muc_room *r, const muc_history_entry *e);
void muc_store_history_drop(muc_room *r, int64_t seq);
/* Everything of the room (when it is destroyed or stops being persistent). */
void muc_store_delete(muc_room *r);
/* The whole room (when it becomes persistent). */
void muc_store_all(muc_room *r);

/* ---- muc_archive.c ---- */
/* Keep a room message (broadcast form, carrying the room's stanza-id id) in the room's
 * archive. sender_bare: the occupant's real bare JID. */
void muc_archive_message(muc_room *r, const char *sender_bare, const char *id,
                         const xml_node *stanza);
/* An IQ in urn:xmpp:mam:2 to the room. Takes ownership. */
void muc_archive_iq(muc_room *r, xml_node *iq, const char *from);
/* Delete the room's archive (the room is gone, or a new room takes its name). */
void muc_archive_forget(muc_room *r);

#endif
