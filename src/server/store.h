/* store.h - the storage interface: accounts, rosters, offline messages, module documents,
 * the admin policy with its groups, and PEP nodes.
 *
 * One interface, several back ends (embedded SQLite, or PostgreSQL shared by several nodes), chosen by the
 * config's store URI. Every function returns a store_status; callers check it. Calls are
 * synchronous; the SQLite back end runs in WAL mode so they are short. */
#ifndef PARLEY_STORE_H
#define PARLEY_STORE_H

#include "../common/policy.h"
#include "../common/scram.h"
#include <stddef.h>
#include <stdint.h>

typedef enum {
    STORE_OK = 0,
    STORE_NOT_FOUND,
    STORE_EXISTS,
    STORE_FULL,  /* a per-user cap was reached (offline messages) */
    STORE_ERROR, /* the store failed; store_last_error() says why */
} store_status;

/* RFC 6121 subscription states, with pending flags kept beside them. */
typedef enum { SUB_NONE = 0, SUB_TO = 1, SUB_FROM = 2, SUB_BOTH = 3 } sub_state;

typedef struct roster_item {
    char *contact;     /* bare JID, normalised */
    char *name;        /* may be NULL */
    sub_state sub;
    int ask_out;       /* we asked the contact to subscribe ("pending out") */
    int pending_in;    /* the contact asked us and we have not answered */
    char *pending_in_stanza; /* the subscribe stanza to re-deliver on login, or NULL */
    char **groups;
    size_t ngroups;
} roster_item;

void roster_item_clear(roster_item *item);
void roster_items_free(roster_item *items, size_t n);

typedef struct store store;

/* Open by URI: "sqlite:PATH". Creates the schema if needed. NULL with a reason in err. */
store *store_open(const char *uri, char *err, size_t errlen);
void store_close(store *st);
/* A store URI fit for logs: the password (and query) of a SCHEME://... URI left out. */
void store_uri_redacted(const char *uri, char *out, size_t len);
const char *store_last_error(const store *st);

/* ---- accounts (user = normalised bare JID) ---- */
/* Create with one credential per SCRAM hash (SHA-1 and SHA-256). */
store_status store_user_create(store *st, const char *user, const scram_cred *creds, size_t ncreds);
store_status store_user_set_creds(store *st, const char *user, const scram_cred *creds, size_t ncreds);
store_status store_user_get_cred(store *st, const char *user, scram_hash hash, scram_cred *out);
store_status store_user_exists(store *st, const char *user);
/* Deletes the account with its roster entries, offline messages, PEP nodes, policy values
 * and group memberships. */
store_status store_user_delete(store *st, const char *user);
store_status store_user_list(store *st, void (*fn)(void *ud, const char *user), void *ud);

/* ---- roster ---- */
store_status store_roster_get(store *st, const char *user, roster_item **items, size_t *n);
store_status store_roster_get_item(store *st, const char *user, const char *contact, roster_item *out);
/* Insert or replace the whole item (groups included). */
store_status store_roster_put(store *st, const char *user, const roster_item *item);
store_status store_roster_del(store *st, const char *user, const char *contact);
/* Roster version (XEP-0237): a counter bumped by every put/del. */
store_status store_roster_version(store *st, const char *user, int64_t *version);

/* ---- offline messages (XEP-0160) ---- */
/* Append a serialized stanza; STORE_FULL if the user already has max messages. */
store_status store_offline_push(store *st, const char *user, const char *stanza, int max);
/* Call fn on each stored stanza in arrival order, then delete them (only if every fn
 * returned 0: a failure keeps them for the next time). */
store_status store_offline_pop(store *st, const char *user,
                               int (*fn)(void *ud, const char *stanza), void *ud);
store_status store_offline_count(store *st, const char *user, int *count);

/* ---- message archive (XEP-0313): each user's one-to-one history ---- */
typedef struct mam_row {
    const char *id;     /* the archive id (XEP-0359 stanza-id), unique per owner */
    const char *owner;  /* whose archive: a bare JID */
    const char *with;   /* the other party, bare JID */
    int64_t ts_us;      /* when the server handled it, microseconds since the epoch (UTC) */
    const char *stanza; /* the message as archived */
} mam_row;

typedef struct mam_filter {
    const char *owner;     /* required */
    const char *with;      /* NULL: any */
    int64_t start_us;      /* ts_us >= start_us when non-zero */
    int64_t end_us;        /* ts_us <= end_us when non-zero */
    const char *after_id;  /* results after this id (NULL: from the start) */
    const char *before_id; /* results before this id; "" with last: the last page */
    int last;              /* the page at the end (RSM <before/>): the newest max results */
    int max;               /* page size, > 0 */
} mam_filter;

/* Append rows in one transaction (all or none). A row whose (owner, id) is already there
 * is skipped: a commit retried after an unclear failure stores nothing twice. */
store_status store_mam_append(store *st, const mam_row *rows, size_t n);
/* Call fn on each result in archive order; *complete is 1 when the page reaches the end
 * of the results in its direction. STORE_NOT_FOUND if after_id/before_id is unknown. */
store_status store_mam_query(store *st, const mam_filter *q,
                             void (*fn)(void *ud, const mam_row *row), void *ud, int *complete);
/* How many archived messages match q's owner, with, start and end (the whole result set
 * of a query, whatever its page: XEP-0059 <count/>). */
store_status store_mam_count(store *st, const mam_filter *q, int64_t *count);
/* Delete archived messages older than before_us (of owner, or everyone's when NULL). */
store_status store_mam_purge(store *st, const char *owner, int64_t before_us, int64_t *deleted);

/* ---- small documents of server modules (rooms, and the like) ----
 * A value (text, typically XML) under (collection, owner, key): collection names the
 * module's kind of data ("muc-room"), owner the entity it belongs to (a room's JID). Not
 * tied to accounts: deleting a user does not touch it. */
store_status store_kv_put(store *st, const char *collection, const char *owner, const char *key,
                          const char *value);
/* STORE_NOT_FOUND if absent; *value is the caller's to free. */
store_status store_kv_get(store *st, const char *collection, const char *owner, const char *key,
                          char **value);
/* Delete one key, or every key of owner when key is NULL (STORE_OK even if none). */
store_status store_kv_del(store *st, const char *collection, const char *owner, const char *key);
/* Call fn for every entry of collection (of owner, or of every owner when owner is NULL),
 * ordered by owner then key (byte order). The strings are valid during the call only. */
store_status store_kv_list(store *st, const char *collection, const char *owner,
                           void (*fn)(void *ud, const char *owner, const char *key,
                                      const char *value),
                           void *ud);

/* ---- admin policy (docs/policy.md) ----
 * Values under (scope, name, key): name is the group or the user's bare JID, ignored for
 * POLICY_GLOBAL. The store keeps values as given; callers validate them (policy.h). Every
 * change of values, groups or memberships (and the deletion of an account) bumps one
 * version counter, which a running server polls to notice changes made by parleyctl. */
/* STORE_NOT_FOUND if the user or group does not exist. */
store_status store_policy_set(store *st, policy_scope scope, const char *name, const char *key,
                              const char *value);
/* STORE_NOT_FOUND if the value is not set. */
store_status store_policy_unset(store *st, policy_scope scope, const char *name,
                                const char *key);
typedef void (*store_policy_fn)(void *ud, policy_scope scope, const char *name,
                                const char *key, const char *value);
/* Every value, ordered by scope (global, group, user), name, key (byte order). */
store_status store_policy_list(store *st, store_policy_fn fn, void *ud);
/* The values that make up user's effective policy: the global ones, those of the groups
 * user is a member of, and user's own; same order. */
store_status store_policy_for_user(store *st, const char *user, store_policy_fn fn, void *ud);
store_status store_policy_version(store *st, int64_t *version);

/* Groups of accounts that policy values can be set for. STORE_EXISTS if present. */
store_status store_group_add(store *st, const char *group);
/* Deletes the group with its memberships and policy values; STORE_NOT_FOUND if absent. */
store_status store_group_del(store *st, const char *group);
/* Every group, in byte order. */
store_status store_group_list(store *st, void (*fn)(void *ud, const char *group), void *ud);
/* STORE_NOT_FOUND if the group or the account does not exist, STORE_EXISTS if a member. */
store_status store_group_member_add(store *st, const char *group, const char *user);
/* STORE_NOT_FOUND if user is not a member (or the group does not exist). */
store_status store_group_member_del(store *st, const char *group, const char *user);
/* The members of group (STORE_NOT_FOUND if it does not exist), or every membership when
 * group is NULL; ordered by group, then member. */
store_status store_group_members(store *st, const char *group,
                                 void (*fn)(void *ud, const char *group, const char *user),
                                 void *ud);

/* ---- PEP (XEP-0163): an account's nodes with their items ----
 * A node's configuration is text the store does not interpret (pep.c's format). Items
 * are kept in publication order. */
/* STORE_NOT_FOUND if the node does not exist; *config is the caller's to free. */
store_status store_pep_node_get(store *st, const char *owner, const char *node, char **config);
/* Create the node or replace its configuration. Creating: STORE_FULL if owner already has
 * max_nodes nodes (max_nodes < 0: no cap), STORE_NOT_FOUND if there is no such account. */
store_status store_pep_node_put(store *st, const char *owner, const char *node,
                                const char *config, int max_nodes);
/* Delete the node with its items; STORE_NOT_FOUND if absent. */
store_status store_pep_node_del(store *st, const char *owner, const char *node);
/* Every node of owner, in byte order. */
store_status store_pep_node_list(store *st, const char *owner,
                                 void (*fn)(void *ud, const char *node, const char *config),
                                 void *ud);
/* Publish: insert the item, or replace the one with the same id (it becomes the newest),
 * then keep only the newest max_items (max_items <= 0: all). STORE_NOT_FOUND if the node
 * does not exist. */
store_status store_pep_item_put(store *st, const char *owner, const char *node, const char *id,
                                const char *publisher, const char *payload, int max_items);
/* STORE_NOT_FOUND if the node has no such item. */
store_status store_pep_item_del(store *st, const char *owner, const char *node, const char *id);
typedef void (*store_pep_item_fn)(void *ud, const char *id, const char *publisher,
                                  const char *payload);
/* Items of a node, oldest first: only the one with id (id non-NULL), else the newest max
 * (max > 0), else all. STORE_NOT_FOUND if the node does not exist; an item id that does
 * not exist is just not reported. */
store_status store_pep_items(store *st, const char *owner, const char *node, const char *id,
                             int max, store_pep_item_fn fn, void *ud);

/* ---- the nodes of one domain and their session directory (node.h) ----
 * Only the PostgreSQL back end has them (the nodes share that store); the others answer
 * STORE_ERROR. Leases are judged by the database's clock, so the nodes' clocks do not
 * matter. */
typedef struct store_node {
    const char *name;
    const char *address; /* host:port of its node links, or NULL (configured, not registered) */
    int alive;           /* its lease runs */
    int sessions;        /* directory entries it holds */
    int available;       /* of which available */
} store_node;
/* Register node name at address (host:port), or move it there. */
store_status store_node_register(store *st, const char *name, const char *address);
/* Forget a node with its directory entries; STORE_NOT_FOUND if it is unknown. */
store_status store_node_unregister(store *st, const char *name);
/* The registered address of name (the caller frees it); STORE_NOT_FOUND if none. */
store_status store_node_address(store *st, const char *name, char **address);
/* Extend name's lease to lease_seconds from now (it is listed from then on). */
store_status store_node_renew(store *st, const char *name, int lease_seconds);
/* Every node, registered or leased, by name. */
store_status store_node_list(store *st, void (*fn)(void *ud, const store_node *node), void *ud);
/* Delete the directory entries of node, or (node NULL) of every node whose lease ran out
 * more than grace_seconds ago or that is unknown. *removed: how many (may be NULL). */
store_status store_node_sweep(store *st, const char *node, int grace_seconds, int *removed);
/* bare/resource is held by node (available, with priority). */
store_status store_session_put(store *st, const char *bare, const char *resource,
                               const char *node, int available, int priority);
/* Forget bare/resource if node holds it (a session that moved stays). */
store_status store_session_del(store *st, const char *bare, const char *resource,
                               const char *node);
typedef void (*store_session_fn)(void *ud, const char *resource, const char *node, int available,
                                 int priority);
/* The entries of bare held by nodes whose lease runs. */
store_status store_session_list(store *st, const char *bare, store_session_fn fn, void *ud);

/* ---- the node each room of the MUC service lives on (node_rooms.h) ----
 * PostgreSQL only, like the session directory. A claim counts while its node's lease runs. */
typedef struct store_room {
    const char *room;
    const char *node;
    const char *listing; /* the name shown in the service's disco#items, or NULL */
    int persistent;
    int alive;           /* its node's lease runs */
} store_room;
/* Claim room for node: taken if unclaimed, already node's, or held by a node whose lease
 * ran out. *holder: the node that holds it now (the caller frees it). */
store_status store_room_claim(store *st, const char *room, const char *node, char **holder);
/* node gives room up (a room another node took stays); room NULL: all of node's rooms. */
store_status store_room_release(store *st, const char *room, const char *node);
/* Forget temporary rooms of nodes whose lease ran out more than grace_seconds ago.
 * *removed: how many (may be NULL). */
store_status store_room_sweep(store *st, int grace_seconds, int *removed);
/* What the service's room list shows of room, if node holds it. */
store_status store_room_describe(store *st, const char *room, const char *node,
                                 const char *listing, int persistent);
/* Every claim, by room. */
store_status store_room_list(store *st, void (*fn)(void *ud, const store_room *room), void *ud);

#endif
