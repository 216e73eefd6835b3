/* node_dir.c - the replica of the other nodes' directory entries (node_dir.h).
 *
 * Entries are kept per bare JID (a dict of small arrays: a user has few sessions), each
 * naming the node that told us; the per-node state (synced, alive, asked, pushing) is a
 * short list, one per other node. Nothing here talks to the network or the store. */
#include "node_dir.h"
#include "../common/dict.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *resource;
    char *node;
    int available;
    int priority;
} entry;

typedef struct user_entries {
    entry *v;
    size_t n;
} user_entries;

typedef struct peer {
    char *name;
    int synced;   /* its snapshot arrived over the current link */
    int alive;    /* its lease ran at the last look at the store */
    int pushing;  /* it gets our pushes */
    int64_t asked_s;
    struct peer *next;
} peer;

struct node_dir {
    dict *users; /* bare -> user_entries */
    peer *peers;
};

static void entry_clear(entry *e)
{
    free(e->resource);
    free(e->node);
}

static void user_entries_free(void *p)
{
    user_entries *u = p;
    for (size_t i = 0; i < u->n; i++)
        entry_clear(&u->v[i]);
    free(u->v);
    free(u);
}

node_dir *node_dir_new(void)
{
    node_dir *d = xcalloc(1, sizeof *d);
    d->users = dict_new();
    return d;
}

void node_dir_free(node_dir *d)
{
    if (!d)
        return;
    dict_free(d->users, user_entries_free);
    for (peer *p = d->peers, *next; p; p = next) {
        next = p->next;
        free(p->name);
        free(p);
    }
    free(d);
}

static peer *find_peer(const node_dir *d, const char *node)
{
    for (peer *p = d->peers; p; p = p->next)
        if (strcmp(p->name, node) == 0)
            return p;
    return NULL;
}

static peer *get_peer(node_dir *d, const char *node)
{
    peer *p = find_peer(d, node);
    if (!p) {
        p = xcalloc(1, sizeof *p);
        p->name = xstrdup(node);
        p->next = d->peers;
        d->peers = p;
    }
    return p;
}

/* Remove entry i of u (order does not matter). */
static void remove_at(user_entries *u, size_t i)
{
    entry_clear(&u->v[i]);
    u->v[i] = u->v[--u->n];
}

static void maybe_delete(node_dir *d, const char *bare, user_entries *u)
{
    if (u->n == 0)
        user_entries_free(dict_del(d->users, bare));
}

void node_dir_put(node_dir *d, const char *node, const char *bare, const char *resource,
                  int available, int priority)
{
    get_peer(d, node);
    user_entries *u = dict_get(d->users, bare);
    if (!u) {
        u = xcalloc(1, sizeof *u);
        dict_set(d->users, bare, u);
    }
    for (size_t i = 0; i < u->n; i++) {
        entry *e = &u->v[i];
        if (strcmp(e->node, node) == 0 && strcmp(e->resource, resource) == 0) {
            e->available = available;
            e->priority = priority;
            return;
        }
    }
    u->v = xrealloc(u->v, (u->n + 1) * sizeof *u->v);
    u->v[u->n++] = (entry){xstrdup(resource), xstrdup(node), available, priority};
}

void node_dir_del(node_dir *d, const char *node, const char *bare, const char *resource)
{
    user_entries *u = dict_get(d->users, bare);
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->v[i].node, node) == 0 && strcmp(u->v[i].resource, resource) == 0) {
            remove_at(u, i);
            break;
        }
    maybe_delete(d, bare, u);
}

typedef struct drop_ctx {
    const char *node;
    char **empty; /* bare JIDs left without entries, deleted after the walk */
    size_t n;
} drop_ctx;

static int drop_cb(void *ud, const char *bare, void *value)
{
    drop_ctx *c = ud;
    user_entries *u = value;
    for (size_t i = u->n; i-- > 0;)
        if (strcmp(u->v[i].node, c->node) == 0)
            remove_at(u, i);
    if (u->n == 0) {
        c->empty = xrealloc(c->empty, (c->n + 1) * sizeof *c->empty);
        c->empty[c->n++] = xstrdup(bare);
    }
    return 0;
}

void node_dir_drop(node_dir *d, const char *node)
{
    drop_ctx c = {node, NULL, 0};
    dict_each(d->users, drop_cb, &c);
    for (size_t i = 0; i < c.n; i++) {
        user_entries_free(dict_del(d->users, c.empty[i]));
        free(c.empty[i]);
    }
    free(c.empty);
    peer *p = find_peer(d, node);
    if (p)
        p->synced = 0;
}

void node_dir_set_synced(node_dir *d, const char *node)
{
    get_peer(d, node)->synced = 1;
}

int node_dir_synced(const node_dir *d, const char *node)
{
    const peer *p = find_peer(d, node);
    return p && p->synced;
}

void node_dir_mark_all_dead(node_dir *d)
{
    for (peer *p = d->peers; p; p = p->next)
        p->alive = 0;
}

void node_dir_mark_alive(node_dir *d, const char *node)
{
    get_peer(d, node)->alive = 1;
}

int node_dir_trusted(const node_dir *d)
{
    for (const peer *p = d->peers; p; p = p->next)
        if (p->alive && !p->synced)
            return 0;
    return 1;
}

void node_dir_each_unsynced(node_dir *d, void (*fn)(void *ud, const char *node), void *ud)
{
    for (peer *p = d->peers; p; p = p->next)
        if (p->alive && !p->synced)
            fn(ud, p->name);
}

int64_t node_dir_asked(const node_dir *d, const char *node)
{
    const peer *p = find_peer(d, node);
    return p ? p->asked_s : 0;
}

void node_dir_set_asked(node_dir *d, const char *node, int64_t when_s)
{
    get_peer(d, node)->asked_s = when_s;
}

void node_dir_set_pushing(node_dir *d, const char *node, int on)
{
    get_peer(d, node)->pushing = on;
}

void node_dir_each_pushed(node_dir *d, void (*fn)(void *ud, const char *node), void *ud)
{
    for (peer *p = d->peers; p; p = p->next)
        if (p->pushing)
            fn(ud, p->name);
}

int node_dir_each(const node_dir *d, const char *bare, node_dir_fn fn, void *ud)
{
    const user_entries *u = dict_get(d->users, bare);
    int n = 0;
    for (size_t i = 0; u && i < u->n; i++) {
        const entry *e = &u->v[i];
        if (!node_dir_synced(d, e->node))
            continue;
        fn(ud, e->resource, e->node, e->available, e->priority);
        n++;
    }
    return n;
}
