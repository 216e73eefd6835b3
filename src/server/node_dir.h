/* node_dir.h - this node's replica of the other nodes' session directory entries
 * (docs/federation.md, "The directory replica"): which node holds which full JID,
 * available or not, with what priority, as each node told us over its link. A node's
 * entries count only while its replica is synced (a full snapshot arrived over the
 * current link, kept current by pushes since); the store stays the source of truth. */
#ifndef PARLEY_NODE_DIR_H
#define PARLEY_NODE_DIR_H

#include <stdint.h>

typedef struct node_dir node_dir;

/* One entry, as store_session_list reports them (same callback shape). */
typedef void (*node_dir_fn)(void *ud, const char *resource, const char *node, int available,
                            int priority);

node_dir *node_dir_new(void);
void node_dir_free(node_dir *d);

/* Node says bare/resource is its session (replaces what node said of it before). */
void node_dir_put(node_dir *d, const char *node, const char *bare, const char *resource,
                  int available, int priority);
/* Node says its session bare/resource ended. */
void node_dir_del(node_dir *d, const char *node, const char *bare, const char *resource);
/* Forget every entry of node; its replica is no longer synced. */
void node_dir_drop(node_dir *d, const char *node);
/* Node's snapshot is complete: its entries count from now on. */
void node_dir_set_synced(node_dir *d, const char *node);
int node_dir_synced(const node_dir *d, const char *node);
/* The store's list of live nodes changed: alive 1 for each live one (others 0 first:
 * node_dir_mark_all_dead, then node_dir_mark_alive for each). */
void node_dir_mark_all_dead(node_dir *d);
void node_dir_mark_alive(node_dir *d, const char *node);
/* Can the replica answer for the whole cluster: is every live node's replica synced? */
int node_dir_trusted(const node_dir *d);
/* Each live node whose replica is not synced (to ask it for a snapshot). */
void node_dir_each_unsynced(node_dir *d, void (*fn)(void *ud, const char *node), void *ud);
/* When we last asked node for a snapshot (0: never); set it. */
int64_t node_dir_asked(const node_dir *d, const char *node);
void node_dir_set_asked(node_dir *d, const char *node, int64_t when_s);

/* Our side: does node get our pushes (it asked for our snapshot over the current link)? */
void node_dir_set_pushing(node_dir *d, const char *node, int on);
void node_dir_each_pushed(node_dir *d, void (*fn)(void *ud, const char *node), void *ud);

/* The entries of bare on synced nodes; returns how many. */
int node_dir_each(const node_dir *d, const char *bare, node_dir_fn fn, void *ud);

#endif
