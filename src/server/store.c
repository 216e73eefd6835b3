/* store.c - the storage interface of store.h: picks a back end by the URI's scheme and
 * forwards every call through its ops table (store_backend.h). Argument checks that are
 * the same for every back end live here so each back end can assume sane input. */
#include "store_backend.h"

#include "../common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* scheme prefix -> back end. libpq accepts both URI schemes of PostgreSQL. */
static const struct {
    const char *prefix;
    const struct store_ops *ops;
} backends[] = {
    {"sqlite:", &store_sqlite_ops},
    {"postgresql:", &store_pg_ops},
    {"postgres:", &store_pg_ops},
};

store_status store_set_error(store *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->error, sizeof st->error, fmt, ap);
    va_end(ap);
    return STORE_ERROR;
}

store *store_open(const char *uri, char *err, size_t errlen)
{
    if (!uri) {
        snprintf(err, errlen, "no store configured");
        return NULL;
    }
    for (size_t i = 0; i < ARRAY_LEN(backends); i++) {
        size_t plen = strlen(backends[i].prefix);
        if (strncmp(uri, backends[i].prefix, plen) == 0) {
            store *st = backends[i].ops->open(uri + plen, err, errlen);
            if (st)
                st->ops = backends[i].ops;
            return st;
        }
    }
    snprintf(err, errlen,
             "store '%.200s': unknown scheme (expected sqlite:PATH or postgresql://...)", uri);
    return NULL;
}

void store_close(store *st)
{
    if (st)
        st->ops->close(st);
}

const char *store_last_error(const store *st)
{
    return st ? st->error : "no store";
}

void roster_item_clear(roster_item *item)
{
    if (!item)
        return;
    free(item->contact);
    free(item->name);
    free(item->pending_in_stanza);
    for (size_t i = 0; i < item->ngroups; i++)
        free(item->groups[i]);
    free(item->groups);
    memset(item, 0, sizeof *item);
}

void roster_items_free(roster_item *items, size_t n)
{
    if (!items)
        return;
    for (size_t i = 0; i < n; i++)
        roster_item_clear(&items[i]);
    free(items);
}

/* A NULL or empty user/contact is a caller bug; report it rather than crash in SQL. */
#define CHECK_STR(st, s, what)                                                         \
    do {                                                                               \
        if (!(s) || !*(s))                                                             \
            return store_set_error((st), "%s: empty %s", __func__, (what));            \
    } while (0)

static store_status check_creds(store *st, const scram_cred *creds, size_t ncreds)
{
    if (ncreds && !creds)
        return store_set_error(st, "credentials missing");
    for (size_t i = 0; i < ncreds; i++) {
        if (creds[i].salt_len > SCRAM_SALT_LEN || creds[i].key_len > SCRAM_MAX_KEY ||
            (creds[i].hash != SCRAM_SHA1 && creds[i].hash != SCRAM_SHA256))
            return store_set_error(st, "malformed SCRAM credential");
        for (size_t j = 0; j < i; j++)
            if (creds[j].hash == creds[i].hash)
                return store_set_error(st, "two credentials for the same hash");
    }
    return STORE_OK;
}

store_status store_user_create(store *st, const char *user, const scram_cred *creds, size_t ncreds)
{
    CHECK_STR(st, user, "user");
    if (check_creds(st, creds, ncreds) != STORE_OK)
        return STORE_ERROR;
    return st->ops->user_create(st, user, creds, ncreds);
}

store_status store_user_set_creds(store *st, const char *user, const scram_cred *creds, size_t ncreds)
{
    CHECK_STR(st, user, "user");
    if (check_creds(st, creds, ncreds) != STORE_OK)
        return STORE_ERROR;
    return st->ops->user_set_creds(st, user, creds, ncreds);
}

store_status store_user_get_cred(store *st, const char *user, scram_hash hash, scram_cred *out)
{
    CHECK_STR(st, user, "user");
    return st->ops->user_get_cred(st, user, hash, out);
}

store_status store_user_exists(store *st, const char *user)
{
    CHECK_STR(st, user, "user");
    return st->ops->user_exists(st, user);
}

store_status store_user_delete(store *st, const char *user)
{
    CHECK_STR(st, user, "user");
    return st->ops->user_delete(st, user);
}

store_status store_user_list(store *st, void (*fn)(void *ud, const char *user), void *ud)
{
    if (!fn)
        return store_set_error(st, "store_user_list: no callback");
    return st->ops->user_list(st, fn, ud);
}

store_status store_roster_get(store *st, const char *user, roster_item **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    CHECK_STR(st, user, "user");
    return st->ops->roster_get(st, user, items, n);
}

store_status store_roster_get_item(store *st, const char *user, const char *contact, roster_item *out)
{
    memset(out, 0, sizeof *out);
    CHECK_STR(st, user, "user");
    CHECK_STR(st, contact, "contact");
    return st->ops->roster_get_item(st, user, contact, out);
}

store_status store_roster_put(store *st, const char *user, const roster_item *item)
{
    CHECK_STR(st, user, "user");
    CHECK_STR(st, item->contact, "contact");
    if (item->sub < SUB_NONE || item->sub > SUB_BOTH)
        return store_set_error(st, "roster item %s: bad subscription state %d", item->contact,
                               (int)item->sub);
    if (item->ngroups && !item->groups)
        return store_set_error(st, "roster item %s: groups missing", item->contact);
    return st->ops->roster_put(st, user, item);
}

store_status store_roster_del(store *st, const char *user, const char *contact)
{
    CHECK_STR(st, user, "user");
    CHECK_STR(st, contact, "contact");
    return st->ops->roster_del(st, user, contact);
}

store_status store_roster_version(store *st, const char *user, int64_t *version)
{
    *version = 0;
    CHECK_STR(st, user, "user");
    return st->ops->roster_version(st, user, version);
}

store_status store_offline_push(store *st, const char *user, const char *stanza, int max)
{
    CHECK_STR(st, user, "user");
    if (!stanza)
        return store_set_error(st, "store_offline_push: no stanza");
    return st->ops->offline_push(st, user, stanza, max);
}

store_status store_offline_pop(store *st, const char *user,
                               int (*fn)(void *ud, const char *stanza), void *ud)
{
    CHECK_STR(st, user, "user");
    if (!fn)
        return store_set_error(st, "store_offline_pop: no callback");
    return st->ops->offline_pop(st, user, fn, ud);
}

store_status store_offline_count(store *st, const char *user, int *count)
{
    *count = 0;
    CHECK_STR(st, user, "user");
    return st->ops->offline_count(st, user, count);
}

store_status store_kv_put(store *st, const char *collection, const char *owner, const char *key,
                          const char *value)
{
    CHECK_STR(st, collection, "collection");
    CHECK_STR(st, owner, "owner");
    CHECK_STR(st, key, "key");
    if (!value)
        return store_set_error(st, "%s: no value", __func__);
    return st->ops->kv_put(st, collection, owner, key, value);
}

store_status store_kv_get(store *st, const char *collection, const char *owner, const char *key,
                          char **value)
{
    CHECK_STR(st, collection, "collection");
    CHECK_STR(st, owner, "owner");
    CHECK_STR(st, key, "key");
    *value = NULL;
    return st->ops->kv_get(st, collection, owner, key, value);
}

store_status store_kv_del(store *st, const char *collection, const char *owner, const char *key)
{
    CHECK_STR(st, collection, "collection");
    CHECK_STR(st, owner, "owner");
    return st->ops->kv_del(st, collection, owner, key);
}

store_status store_kv_list(store *st, const char *collection, const char *owner,
                           void (*fn)(void *ud, const char *owner, const char *key,
                                      const char *value),
                           void *ud)
{
    CHECK_STR(st, collection, "collection");
    return st->ops->kv_list(st, collection, owner, fn, ud);
}

store_status store_mam_append(store *st, const mam_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        CHECK_STR(st, rows[i].id, "archive id");
        CHECK_STR(st, rows[i].owner, "owner");
        CHECK_STR(st, rows[i].with, "with");
        CHECK_STR(st, rows[i].stanza, "stanza");
    }
    return n ? st->ops->mam_append(st, rows, n) : STORE_OK;
}

store_status store_mam_query(store *st, const mam_filter *q,
                             void (*fn)(void *ud, const mam_row *row), void *ud, int *complete)
{
    CHECK_STR(st, q->owner, "owner");
    if (q->max <= 0)
        return store_set_error(st, "%s: page size must be positive", __func__);
    *complete = 0;
    return st->ops->mam_query(st, q, fn, ud, complete);
}

store_status store_mam_count(store *st, const mam_filter *q, int64_t *count)
{
    CHECK_STR(st, q->owner, "owner");
    *count = 0;
    return st->ops->mam_count(st, q, count);
}

store_status store_mam_purge(store *st, const char *owner, int64_t before_us, int64_t *deleted)
{
    *deleted = 0;
    return st->ops->mam_purge(st, owner, before_us, deleted);
}

void store_uri_redacted(const char *uri, char *out, size_t len)
{
    if (!uri) {
        snprintf(out, len, "(none)");
        return;
    }
    const char *sep = strstr(uri, "://");
    if (!sep) { /* sqlite:PATH holds no secret */
        snprintf(out, len, "%s", uri);
        return;
    }
    /* SCHEME://[user[:password]@]host[:port][/db][?params]: the query may carry a
     * password= too, so it goes as well. Any scheme, so a misspelt one is safe too. */
    const char *rest = sep + 3;
    size_t auth_end = strcspn(rest, "@/?");
    const char *host = rest[auth_end] == '@' ? rest + auth_end + 1 : rest;
    size_t user_len = host == rest ? 0 : strcspn(rest, ":@");
    size_t tail_len = strcspn(host, "?");
    snprintf(out, len, "%.*s://%.*s%s%.*s%s", (int)(sep - uri > 32 ? 32 : sep - uri), uri,
             (int)user_len, rest, user_len ? "@" : "", (int)tail_len, host,
             host[tail_len] ? "?..." : "");
}

/* ---- admin policy ---- */

/* A scope's name: required for groups and users, "" for global whatever was passed. */
static store_status check_scope(store *st, policy_scope scope, const char **name)
{
    if (scope == POLICY_GLOBAL) {
        *name = "";
        return STORE_OK;
    }
    if (scope != POLICY_GROUP && scope != POLICY_USER)
        return store_set_error(st, "bad policy scope %d", (int)scope);
    if (!*name || !**name)
        return store_set_error(st, "policy: empty %s name", policy_scope_name(scope));
    return STORE_OK;
}

store_status store_policy_set(store *st, policy_scope scope, const char *name, const char *key,
                              const char *value)
{
    if (check_scope(st, scope, &name) != STORE_OK)
        return STORE_ERROR;
    CHECK_STR(st, key, "key");
    if (!value)
        return store_set_error(st, "%s: no value", __func__);
    return st->ops->policy_set(st, scope, name, key, value);
}

store_status store_policy_unset(store *st, policy_scope scope, const char *name,
                                const char *key)
{
    if (check_scope(st, scope, &name) != STORE_OK)
        return STORE_ERROR;
    CHECK_STR(st, key, "key");
    return st->ops->policy_unset(st, scope, name, key);
}

store_status store_policy_list(store *st, store_policy_fn fn, void *ud)
{
    if (!fn)
        return store_set_error(st, "%s: no callback", __func__);
    return st->ops->policy_list(st, NULL, fn, ud);
}

store_status store_policy_for_user(store *st, const char *user, store_policy_fn fn, void *ud)
{
    CHECK_STR(st, user, "user");
    if (!fn)
        return store_set_error(st, "%s: no callback", __func__);
    return st->ops->policy_list(st, user, fn, ud);
}

store_status store_policy_version(store *st, int64_t *version)
{
    *version = 0;
    return st->ops->policy_version(st, version);
}

store_status store_group_add(store *st, const char *group)
{
    CHECK_STR(st, group, "group");
    return st->ops->group_add(st, group);
}

store_status store_group_del(store *st, const char *group)
{
    CHECK_STR(st, group, "group");
    return st->ops->group_del(st, group);
}

store_status store_group_list(store *st, void (*fn)(void *ud, const char *group), void *ud)
{
    if (!fn)
        return store_set_error(st, "%s: no callback", __func__);
    return st->ops->group_list(st, fn, ud);
}

store_status store_group_member_add(store *st, const char *group, const char *user)
{
    CHECK_STR(st, group, "group");
    CHECK_STR(st, user, "user");
    return st->ops->group_member_add(st, group, user);
}

store_status store_group_member_del(store *st, const char *group, const char *user)
{
    CHECK_STR(st, group, "group");
    CHECK_STR(st, user, "user");
    return st->ops->group_member_del(st, group, user);
}

store_status store_group_members(store *st, const char *group,
                                 void (*fn)(void *ud, const char *group, const char *user),
                                 void *ud)
{
    if (group && !*group)
        return store_set_error(st, "%s: empty group", __func__);
    if (!fn)
        return store_set_error(st, "%s: no callback", __func__);
    return st->ops->group_members(st, group, fn, ud);
}

/* ---- PEP ---- */

store_status store_pep_node_get(store *st, const char *owner, const char *node, char **config)
{
    *config = NULL;
    CHECK_STR(st, owner, "owner");
    CHECK_STR(st, node, "node");
    return st->ops->pep_node_get(st, owner, node, config);
}

store_status store_pep_node_put(store *st, const char *owner, const char *node,
                                const char *config, int max_nodes)
{
    CHECK_STR(st, owner, "owner");
    CHECK_STR(st, node, "node");
    if (!config)
        return store_set_error(st, "%s: no configuration", __func__);
    return st->ops->pep_node_put(st, owner, node, config, max_nodes);
}

store_status store_pep_node_del(store *st, const char *owner, const char *node)
{
    CHECK_STR(st, owner, "owner");
    CHECK_STR(st, node, "node");
    return st->ops->pep_node_del(st, owner, node);
}

store_status store_pep_node_list(store *st, const char *owner,
                                 void (*fn)(void *ud, const char *node, const char *config),
                                 void *ud)
{
    CHECK_STR(st, owner, "owner");
    if (!fn)
        return store_set_error(st, "%s: no callback", __func__);
    return st->ops->pep_node_list(st, owner, fn, ud);
}

store_status store_pep_item_put(store *st, const char *owner, const char *node, const char *id,
                                const char *publisher, const char *payload, int max_items)
{
    CHECK_STR(st, owner, "owner");
    CHECK_STR(st, node, "node");
    CHECK_STR(st, id, "item id");
    CHECK_STR(st, publisher, "publisher");
    if (!payload)
        return store_set_error(st, "%s: no payload", __func__);
    return st->ops->pep_item_put(st, owner, node, id, publisher, payload, max_items);
}

store_status store_pep_item_del(store *st, const char *owner, const char *node, const char *id)
{
    CHECK_STR(st, owner, "owner");
    CHECK_STR(st, node, "node");
    CHECK_STR(st, id, "item id");
    return st->ops->pep_item_del(st, owner, node, id);
}

store_status store_pep_items(store *st, const char *owner, const char *node, const char *id,
                             int max, store_pep_item_fn fn, void *ud)
{
    CHECK_STR(st, owner, "owner");
    CHECK_STR(st, node, "node");
    if (id && !*id)
        return store_set_error(st, "%s: empty item id", __func__);
    if (!fn)
        return store_set_error(st, "%s: no callback", __func__);
    return st->ops->pep_items(st, owner, node, id, max, fn, ud);
}

/* ---- nodes ---- */

/* The node directory lives only where several nodes can share it. */
#define NEED_NODES(st, op)                                                                  \
    do {                                                                                    \
        if (!(st)->ops->op)                                                                 \
            return store_set_error((st), "nodes need a PostgreSQL store shared by all of "  \
                                         "them (this one is %s)", (st)->ops->name);         \
    } while (0)

store_status store_node_register(store *st, const char *name, const char *address)
{
    CHECK_STR(st, name, "name");
    CHECK_STR(st, address, "address");
    NEED_NODES(st, node_register);
    return st->ops->node_register(st, name, address);
}

store_status store_node_unregister(store *st, const char *name)
{
    CHECK_STR(st, name, "name");
    NEED_NODES(st, node_unregister);
    return st->ops->node_unregister(st, name);
}

store_status store_node_address(store *st, const char *name, char **address)
{
    *address = NULL;
    CHECK_STR(st, name, "name");
    NEED_NODES(st, node_address);
    return st->ops->node_address(st, name, address);
}

store_status store_node_renew(store *st, const char *name, int lease_seconds)
{
    CHECK_STR(st, name, "name");
    NEED_NODES(st, node_renew);
    if (lease_seconds <= 0)
        return store_set_error(st, "%s: the lease must be positive", __func__);
    return st->ops->node_renew(st, name, lease_seconds);
}

store_status store_node_list(store *st, void (*fn)(void *ud, const store_node *node), void *ud)
{
    NEED_NODES(st, node_list);
    return st->ops->node_list(st, fn, ud);
}

store_status store_node_sweep(store *st, const char *node, int grace_seconds, int *removed)
{
    if (removed)
        *removed = 0;
    NEED_NODES(st, node_sweep);
    return st->ops->node_sweep(st, node, grace_seconds < 0 ? 0 : grace_seconds, removed);
}

store_status store_session_put(store *st, const char *bare, const char *resource,
                               const char *node, int available, int priority)
{
    CHECK_STR(st, bare, "bare");
    CHECK_STR(st, resource, "resource");
    CHECK_STR(st, node, "node");
    NEED_NODES(st, session_put);
    return st->ops->session_put(st, bare, resource, node, available != 0, priority);
}

store_status store_session_del(store *st, const char *bare, const char *resource,
                               const char *node)
{
    CHECK_STR(st, bare, "bare");
    CHECK_STR(st, resource, "resource");
    CHECK_STR(st, node, "node");
    NEED_NODES(st, session_del);
    return st->ops->session_del(st, bare, resource, node);
}

store_status store_session_list(store *st, const char *bare, store_session_fn fn, void *ud)
{
    CHECK_STR(st, bare, "bare");
    NEED_NODES(st, session_list);
    return st->ops->session_list(st, bare, fn, ud);
}

store_status store_room_claim(store *st, const char *room, const char *node, char **holder)
{
    *holder = NULL;
    CHECK_STR(st, room, "room");
    CHECK_STR(st, node, "node");
    NEED_NODES(st, room_claim);
    return st->ops->room_claim(st, room, node, holder);
}

store_status store_room_release(store *st, const char *room, const char *node)
{
    CHECK_STR(st, node, "node");
    NEED_NODES(st, room_release);
    return st->ops->room_release(st, room, node);
}

store_status store_room_sweep(store *st, int grace_seconds, int *removed)
{
    if (removed)
        *removed = 0;
    NEED_NODES(st, room_sweep);
    return st->ops->room_sweep(st, grace_seconds < 0 ? 0 : grace_seconds, removed);
}

store_status store_room_describe(store *st, const char *room, const char *node,
                                 const char *listing, int persistent)
{
    CHECK_STR(st, room, "room");
    CHECK_STR(st, node, "node");
    NEED_NODES(st, room_describe);
    return st->ops->room_describe(st, room, node, listing, persistent != 0);
}

store_status store_room_list(store *st, void (*fn)(void *ud, const store_room *room), void *ud)
{
    NEED_NODES(st, room_list);
    return st->ops->room_list(st, fn, ud);
}
