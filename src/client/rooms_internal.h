/* rooms_internal.h - the rooms a handle is in, shared by rooms.c (joining, leaving, what
 * rooms send) and room_ops.c (what the application asks of a room, the service). */
#ifndef PARLEY_CLIENT_ROOMS_INTERNAL_H
#define PARLEY_CLIENT_ROOMS_INTERNAL_H

#include "ext.h"

typedef struct occupant {
    char *nick;
    char *jid;          /* real JID when the room shows it */
    char *role;
    char *affiliation;
    char *show;
} occupant;

typedef enum {
    ROOM_WANTED = 0,    /* to join once online (again, after a reconnect) */
    ROOM_DISCO,         /* asking the room what it supports */
    ROOM_JOINING,       /* join presence sent */
    ROOM_JOINED,
} room_phase;

typedef struct room {
    char *jid;          /* bare, normalised */
    char *nick;         /* ours */
    char *password;     /* NULL: none */
    room_phase phase;
    int has_mam;        /* the room keeps an archive (disco#info) */
    dict *occupants;    /* nick -> occupant */
    size_t noccupants;
    char *subject;
    char *role, *affiliation; /* ours */
} room;

typedef struct list_req list_req;

struct rooms_state {
    dict *rooms;        /* room JID -> room */
    char *service;      /* the group chat service found at sign-in */
    int disco_pending;  /* discovery IQs not answered yet */
    list_req *waiting;  /* room lists asked for before the service was known */
};

/* ---- rooms.c */
rooms_state *rooms_of(parley *p);
room *rooms_get(const parley *p, const char *jid);
void rooms_forget(parley *p, const char *jid); /* and free it */
void rooms_clear_occupants(room *r);
void rooms_occupant_free(void *v);
/* Emit a room event (never marked end-to-end encrypted). */
void rooms_emit(parley *p, parley_event *ev);
/* Why a join was refused, in words a user understands. */
const char *rooms_refusal_words(const xml_node *stanza);
/* ---- room_ops.c */
void room_ops_free_waiting(rooms_state *rs);
/* Send iq (taken) to room_jid; the answer goes to cb (the stanza), else to done (a text),
 * else a refusal becomes PARLEY_EV_ROOM_ERROR "cannot <what> in <room>: <why>". */
void room_ops_request(parley *p, const char *room_jid, xml_node *iq, const char *what,
                      parley_iq_fn cb, parley_room_done_fn done, void *ud);
/* The room's JID for a request that needs no joining: NULL with *e INVALID (not a room's
 * address) or STATE (offline). */
char *room_ops_target(parley *p, const char *room_name, parley_error *e);

/* ---- rooms.c */
/* Open a room we created with the service's defaults (XEP-0045 10.1.2). */
void rooms_instant(parley *p, const room *r);

#endif
