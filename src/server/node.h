/* node.h - several parleyd nodes serving one domain (docs/federation.md): each node has
 * a node_name and a certificate from the cluster's CA; nodes link to each other with
 * server links (s2s.h) authenticated by SASL EXTERNAL on the node's name, and share
 * the store. A session directory in the store (which node holds which full JID, with
 * leases that expire when a node dies) tells where a stanza for a user goes. */
#ifndef PARLEY_NODE_H
#define PARLEY_NODE_H

#include "../common/xml.h"
#include "server.h"

/* Our private namespace between nodes: envelopes (carbons, PEP events) and requests
 * (session handover), docs/federation.md. Only node links carry it. */
#define XMLNS_NODE "urn:parley:node:0"

/* Start: this node's directory entries from an earlier life are dropped. 0 or -1. */
int node_init(server *srv);
/* Is name a node of this cluster (nodes, or registered with parleyctl node add)? */
int node_known(server *srv, const char *name);
/* Where node name listens for node links. 0, or -1 if unknown. */
int node_address(server *srv, const char *name, char *host, size_t hostlen, int *port);
/* A stanza for bare/resource, which has no session here: if another node holds that
 * session, send it there and return 1 (stanza taken); else 0 (stanza still the caller's). */
int node_route(server *srv, const char *bare, const char *resource, xml_node *stanza);
/* Which sessions node_copy_to_user reaches. */
enum { NODE_ANY = 0, NODE_AVAILABLE = 1, NODE_DELIVERABLE = 2 /* available, priority >= 0 */ };
/* Copies of stanza for the sessions of bare on other nodes (one per node holding a session
 * of the kind want says). Returns how many nodes got one. stanza is not consumed. */
int node_copy_to_user(server *srv, const char *bare, const xml_node *stanza, int want);
/* Login-time presence (docs/federation.md, "The directory replica"): copies of presence
 * and of probe (either may be NULL; presence first) for each node holding an available
 * session of bare. When the replica names none, the store is asked (one query for both):
 * a contact that became available on another node a moment ago is then still reached.
 * Returns how many nodes got a copy. Not consumed. */
int node_copy_at_login(server *srv, const char *bare, const xml_node *presence,
                       const xml_node *probe);
/* Does the directory replica name a session of bare on another node (then the account
 * exists: no need to ask the store)? No store query. */
int node_has_user(server *srv, const char *bare);
/* Does another (live) node hold bare/resource? */
int node_has_session(server *srv, const char *bare, const char *resource);
/* Does bare have an available session with priority >= 0 on another node? */
int node_user_available(server *srv, const char *bare);
/* The highest priority (>= 0) of bare's available sessions on other nodes, or -1. */
int node_best_priority(server *srv, const char *bare);
/* Copies of stanza for the nodes holding an available session of bare with priority >=
 * min_priority (one per node). Returns how many nodes got one. Not consumed. */
int node_copy_to_priority(server *srv, const char *bare, const xml_node *stanza,
                          int min_priority);
/* A copy of stanza for every other live node. Not consumed. */
void node_copy_to_all(server *srv, const xml_node *stanza);
/* Is node name's lease running (the node is alive)? */
int node_alive(server *srv, const char *name);
/* A session was bound / ended here, or its availability changed: the directory. */
void node_session_update(server *srv, const char *full, int available, int priority);
void node_session_gone(server *srv, const char *full);
/* A <directory/> or <resync/> envelope's payload from node (node_ns.h): node's entries
 * for our replica, or its request for our snapshot (docs/federation.md). */
void node_directory_from_node(server *srv, const char *node, const xml_node *el);
/* A stanza from node over its link (from, to normalised). Takes ownership. */
void node_from_link(server *srv, const char *node, xml_node *stanza);
/* A stanza queued for a node whose link failed: delivered as if the user were offline. */
void node_undeliverable(server *srv, xml_node *stanza);
void node_link_up(server *srv, const char *node, int outbound);
void node_link_down(server *srv, const char *node, int outbound);
/* Timer: renew this node's leases, refresh the view of the others. */
void node_housekeeping(server *srv);
/* Shutdown: this node's entries leave the directory. */
void node_shutdown(server *srv);

#endif
