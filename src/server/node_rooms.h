/* node_rooms.h - where each room of the multi-user chat service lives when several nodes
 * serve one domain (docs/federation.md, "Rooms"). A room lives on exactly one node at a
 * time, its home: the node that claimed it in the store (store_room_claim) at its first
 * use. Other nodes forward the room's traffic to the home over the node link; the home
 * sends to occupants on other nodes over theirs. A claim counts while its node's lease
 * runs, so a dead node's rooms are taken over by the next node that needs them (a
 * persistent room is loaded again from the store; its occupants rejoin). Without
 * node_name none of this applies and every function here does nothing. */
#ifndef PARLEY_NODE_ROOMS_H
#define PARLEY_NODE_ROOMS_H

#include "../common/xml.h"
#include "server.h"

struct muc;
struct muc_room;

/* Is the service shared by several nodes (node_name set)? */
int node_rooms_clustered(const server *srv);
/* Start: forget this node's claims of an earlier life, then keep only the loaded
 * persistent rooms this node wins (the others live elsewhere). 0, or -1 (store failed). */
int node_rooms_init(struct muc *m);
void node_rooms_free(struct muc *m);
/* The home of room (bare JID), for a stanza with no room of that name here: 1 this node
 * (just claimed), 0 another (*home set, valid until the next call), -1 the store failed. */
int node_rooms_home(struct muc *m, const char *room, const char **home);
/* The room is no longer here (emptied, destroyed, or never made): give up the claim. */
void node_rooms_release(struct muc *m, const char *room);
/* After the room handled a stanza: tell the store what the room list should show. */
void node_rooms_describe(struct muc *m, struct muc_room *r);
/* Rooms listed by other nodes, for the service's disco#items: fn per room. */
void node_rooms_each_listed(struct muc *m, void (*fn)(void *ud, const char *room,
                                                      const char *name), void *ud);
/* Send stanza (not consumed) to an occupant on another node. */
void node_rooms_send(struct muc *m, const char *node, const xml_node *stanza);
/* A stanza over the link from node: taken (1) if it is for the room service, else 0. */
int node_rooms_from_link(server *srv, const char *node, xml_node *stanza);
/* A stanza for a room that could not reach the room's home (its link failed): bounced to
 * the sender (1), or 0 if the stanza is not for the room service. */
int node_rooms_undeliverable(server *srv, xml_node *stanza);
/* The link to node went down: rooms believed to live there are looked up again. */
void node_rooms_link_down(server *srv, const char *node);
/* Does node hold the session full (the directory says so)? For joins over a link. */
int node_rooms_session_on(struct muc *m, const char *full, const char *node);
/* Timer: occupants on nodes whose lease ran out leave their rooms; stale cache entries,
 * and rooms this node no longer holds, go. */
void node_rooms_housekeeping(server *srv);

#endif
