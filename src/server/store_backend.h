/* store_backend.h - internal: what a storage back end provides to store.c.
 *
 * store.c owns the public API (store.h) and dispatches every call through the
 * back end's ops table, so adding PostgreSQL means one new file with one more
 * entry in store.c's scheme table. A back end allocates its own handle with a
 * `struct store` as its first member and casts back in its ops. */
#ifndef PARLEY_STORE_BACKEND_H
#define PARLEY_STORE_BACKEND_H

#include "store.h"

#define STORE_ERRLEN 512

struct store_ops {
    const char *name; /* "sqlite" */
    /* location: the URI without its scheme ("PATH" for "sqlite:PATH"). */
    store *(*open)(const char *location, char *err, size_t errlen);
    void (*close)(store *st);

    store_status (*user_create)(store *st, const char *user, const scram_cred *creds,
                                size_t ncreds);
    store_status (*user_set_creds)(store *st, const char *user, const scram_cred *creds,
                                   size_t ncreds);
    store_status (*user_get_cred)(store *st, const char *user, scram_hash hash,
                                  scram_cred *out);
    store_status (*user_exists)(store *st, const char *user);
    store_status (*user_delete)(store *st, const char *user);
    store_status (*user_list)(store *st, void (*fn)(void *ud, const char *user), void *ud);

    store_status (*roster_get)(store *st, const char *user, roster_item **items, size_t *n);
    store_status (*roster_get_item)(store *st, const char *user, const char *contact,
                                    roster_item *out);
    store_status (*roster_put)(store *st, const char *user, const roster_item *item);
    store_status (*roster_del)(store *st, const char *user, const char *contact);
    store_status (*roster_version)(store *st, const char *user, int64_t *version);

    store_status (*offline_push)(store *st, const char *user, const char *stanza, int max);
    store_status (*offline_pop)(store *st, const char *user,
                                int (*fn)(void *ud, const char *stanza), void *ud);
    store_status (*offline_count)(store *st, const char *user, int *count);

    store_status (*mam_append)(store *st, const mam_row *rows, size_t n);
    store_status (*mam_query)(store *st, const mam_filter *q,
                              void (*fn)(void *ud, const mam_row *row), void *ud,
                              int *complete);
    store_status (*mam_purge)(store *st, const char *owner, int64_t before_us,
                              int64_t *deleted);

    store_status (*kv_put)(store *st, const char *collection, const char *owner,
                           const char *key, const char *value);
    store_status (*kv_get)(store *st, const char *collection, const char *owner,
                           const char *key, char **value);
    store_status (*kv_del)(store *st, const char *collection, const char *owner,
                           const char *key);
    store_status (*kv_list)(store *st, const char *collection, const char *owner,
                            void (*fn)(void *ud, const char *owner, const char *key,
                                       const char *value),
                            void *ud);

    store_status (*policy_set)(store *st, policy_scope scope, const char *name,
                               const char *key, const char *value);
    store_status (*policy_unset)(store *st, policy_scope scope, const char *name,
                                 const char *key);
    /* user NULL: every value (store_policy_list), else store_policy_for_user. */
    store_status (*policy_list)(store *st, const char *user, store_policy_fn fn, void *ud);
    store_status (*policy_version)(store *st, int64_t *version);
    store_status (*group_add)(store *st, const char *group);
    store_status (*group_del)(store *st, const char *group);
    store_status (*group_list)(store *st, void (*fn)(void *ud, const char *group), void *ud);
    store_status (*group_member_add)(store *st, const char *group, const char *user);
    store_status (*group_member_del)(store *st, const char *group, const char *user);
    store_status (*group_members)(store *st, const char *group,
                                  void (*fn)(void *ud, const char *group, const char *user),
                                  void *ud);

    store_status (*pep_node_get)(store *st, const char *owner, const char *node,
                                 char **config);
    store_status (*pep_node_put)(store *st, const char *owner, const char *node,
                                 const char *config, int max_nodes);
    store_status (*pep_node_del)(store *st, const char *owner, const char *node);
    store_status (*pep_node_list)(store *st, const char *owner,
                                  void (*fn)(void *ud, const char *node, const char *config),
                                  void *ud);
    store_status (*pep_item_put)(store *st, const char *owner, const char *node,
                                 const char *id, const char *publisher, const char *payload,
                                 int max_items);
    store_status (*pep_item_del)(store *st, const char *owner, const char *node,
                                 const char *id);
    store_status (*pep_items)(store *st, const char *owner, const char *node, const char *id,
                              int max, store_pep_item_fn fn, void *ud);

    /* Nodes and the session directory: NULL in back ends that nodes cannot share. */
    store_status (*node_register)(store *st, const char *name, const char *address);
    store_status (*node_unregister)(store *st, const char *name);
    store_status (*node_address)(store *st, const char *name, char **address);
    store_status (*node_renew)(store *st, const char *name, int lease_seconds);
    store_status (*node_list)(store *st, void (*fn)(void *ud, const store_node *node), void *ud);
    store_status (*node_sweep)(store *st, const char *node, int grace_seconds, int *removed);
    store_status (*session_put)(store *st, const char *bare, const char *resource,
                                const char *node, int available, int priority);
    store_status (*session_del)(store *st, const char *bare, const char *resource,
                                const char *node);
    store_status (*session_list)(store *st, const char *bare, store_session_fn fn, void *ud);
    store_status (*room_claim)(store *st, const char *room, const char *node, char **holder);
    store_status (*room_release)(store *st, const char *room, const char *node);
    store_status (*room_sweep)(store *st, int grace_seconds, int *removed);
    store_status (*room_describe)(store *st, const char *room, const char *node,
                                  const char *listing, int persistent);
    store_status (*room_list)(store *st, void (*fn)(void *ud, const store_room *room), void *ud);
    store_status (*mam_count)(store *st, const mam_filter *q, int64_t *count);
};

struct store {
    const struct store_ops *ops;
    char error[STORE_ERRLEN]; /* the last failure, for store_last_error() */
};

/* Record why the last call failed (printf-style); returns STORE_ERROR for convenience. */
store_status store_set_error(store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops; /* store_pg.c: postgresql:// URIs */

#endif
