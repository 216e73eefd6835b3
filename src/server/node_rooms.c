/* node_rooms.c - where each room of the multi-user chat service lives (node_rooms.h).
 *
 * The claims are in the shared store (store_room_*): room JID -> node, counted while
 * that node's lease runs (node.c renews it). This node keeps the rooms it holds in
 * m->rooms, so a stanza for one of them never asks the store; for a room held elsewhere
 * the answer is cached for CACHE_MS, and a failed link to the home drops the entry, so
 * a room whose node died is claimed again by the next stanza once the lease has run out.
 * Stanzas that came over a node link are never forwarded again (muc.c), so a stale
 * cache can cost a bounced stanza, never a loop. */
#include "node_rooms.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "muc_internal.h"
#include "router.h"
#include "s2s.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

/* How long the home of a room held by another node is believed without asking again. */
#define CACHE_MS 5000

typedef struct cached_home {
    char *node;
    int64_t until_ms;
} cached_home;

typedef struct node_rooms_state {
    dict *cache;       /* room JID -> cached_home (rooms held by other nodes) */
    int64_t checked_s; /* when dead nodes and our claims were last looked at */
} node_rooms_state;

static int64_t now_s(void) { return time_mono_ms() / 1000; }

int node_rooms_clustered(const server *srv)
{
    return srv->cfg.node_name != NULL;
}

static const char *self(const muc *m)
{
    return m->srv->cfg.node_name;
}

static void cached_free(void *value)
{
    cached_home *c = value;
    if (c) {
        free(c->node);
        free(c);
    }
}

static void forget_cached(muc *m, const char *room)
{
    if (m->homes)
        cached_free(dict_del(m->homes->cache, room));
}

/* ---- start and stop ---- */

typedef struct adopt_ctx {
    muc *m;
    char **lost;
    size_t n, cap;
    int failed;
} adopt_ctx;

static int adopt(void *ud, const char *key, void *value)
{
    adopt_ctx *a = ud;
    char *holder = NULL;
    if (store_room_claim(a->m->srv->store, key, self(a->m), &holder) != STORE_OK) {
        a->failed = 1;
        return 1;
    }
    if (strcmp(holder, self(a->m)) != 0) {
        if (a->n == a->cap) {
            a->cap = a->cap ? 2 * a->cap : 16;
            a->lost = xrealloc(a->lost, a->cap * sizeof *a->lost);
        }
        a->lost[a->n++] = xstrdup(key);
    }
    free(holder);
    return 0;
}

int node_rooms_init(muc *m)
{
    server *srv = m->srv;
    if (!node_rooms_clustered(srv))
        return 0;
    m->homes = xcalloc(1, sizeof *m->homes);
    m->homes->cache = dict_new();
    /* Claims of an earlier life of this node: those rooms died with it. */
    if (store_room_release(srv->store, NULL, self(m)) != STORE_OK) {
        log_error("muc: room directory: %s", store_last_error(srv->store));
        return -1;
    }
    /* The persistent rooms nobody holds live here from now on; the others stay where
     * they are (this node's copies are dropped). */
    adopt_ctx a = {m, NULL, 0, 0, 0};
    dict_each(m->rooms, adopt, &a);
    for (size_t i = 0; i < a.n; i++) {
        muc_room_free(dict_del(m->rooms, a.lost[i]));
        free(a.lost[i]);
    }
    free(a.lost);
    if (a.failed) {
        log_error("muc: room directory: %s", store_last_error(srv->store));
        return -1;
    }
    log_info("muc: %zu rooms live on this node (room directory in the store)",
             dict_size(m->rooms));
    return 0;
}

void node_rooms_free(muc *m)
{
    if (!m->homes)
        return;
    /* A clean leave: the rooms can be claimed at once, not a lease later. */
    if (m->srv->store && store_room_release(m->srv->store, NULL, self(m)) != STORE_OK)
        log_error("muc: room directory: %s", store_last_error(m->srv->store));
    dict_free(m->homes->cache, cached_free);
    free(m->homes);
    m->homes = NULL;
}

/* ---- homes ---- */

int node_rooms_home(muc *m, const char *room, const char **home)
{
    server *srv = m->srv;
    int64_t now = time_mono_ms();
    cached_home *c = dict_get(m->homes->cache, room);
    if (c && c->until_ms > now) {
        *home = c->node;
        return 0;
    }
    char *holder = NULL;
    if (store_room_claim(srv->store, room, self(m), &holder) != STORE_OK) {
        log_error("muc: room directory, %s: %s", room, store_last_error(srv->store));
        return -1;
    }
    if (strcmp(holder, self(m)) == 0) {
        free(holder);
        forget_cached(m, room);
        log_debug("muc: %s lives on this node", room);
        return 1;
    }
    if (!c) {
        c = xcalloc(1, sizeof *c);
        dict_set(m->homes->cache, room, c);
    }
    free(c->node);
    c->node = holder;
    c->until_ms = now + CACHE_MS;
    *home = c->node;
    return 0;
}

void node_rooms_release(muc *m, const char *room)
{
    server *srv = m->srv;
    if (store_room_release(srv->store, room, self(m)) != STORE_OK)
        log_error("muc: room directory, %s: %s", room, store_last_error(srv->store));
}

void node_rooms_describe(muc *m, muc_room *r)
{
    char *listing = muc_room_listing(r);
    int persistent = r->cfg.persistent != 0;
    int same = r->described && r->listed_persistent == persistent &&
               (listing ? r->listed && strcmp(listing, r->listed) == 0 : !r->listed);
    if (same) {
        free(listing);
        return;
    }
    server *srv = m->srv;
    if (store_room_describe(srv->store, r->jid, self(m), listing, persistent) != STORE_OK) {
        log_error("muc: room directory, %s: %s", r->jid, store_last_error(srv->store));
        free(listing);
        return; /* tried again after the next stanza */
    }
    free(r->listed);
    r->listed = listing;
    r->listed_persistent = persistent;
    r->described = 1;
}

typedef struct listed_ctx {
    muc *m;
    void (*fn)(void *ud, const char *room, const char *name);
    void *ud;
} listed_ctx;

static void listed_row(void *ud, const store_room *row)
{
    listed_ctx *c = ud;
    /* A dead node's persistent rooms are still there: the next join claims them. */
    if (row->listing && strcmp(row->node, self(c->m)) != 0 && (row->alive || row->persistent))
        c->fn(c->ud, row->room, row->listing);
}

void node_rooms_each_listed(muc *m, void (*fn)(void *ud, const char *room, const char *name),
                            void *ud)
{
    listed_ctx c = {m, fn, ud};
    if (store_room_list(m->srv->store, listed_row, &c) != STORE_OK)
        log_error("muc: room directory: %s", store_last_error(m->srv->store));
}

/* ---- lists of names ---- */

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static void names_add(names *ns, const char *s)
{
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? 2 * ns->cap : 8;
        ns->v = xrealloc(ns->v, ns->cap * sizeof *ns->v);
    }
    ns->v[ns->n++] = xstrdup(s);
}

static int names_has(const names *ns, const char *s)
{
    for (size_t i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i], s) == 0)
            return 1;
    return 0;
}

static void names_free(names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
}

/* ---- links ---- */

void node_rooms_send(muc *m, const char *node, const xml_node *stanza)
{
    s2s_node_send(m->srv, node, xml_copy(stanza));
}

/* The room service's domain, if stanza is addressed to it. */
static int for_rooms(server *srv, const xml_node *stanza)
{
    if (!srv->muc || !node_rooms_clustered(srv))
        return 0;
    jid to;
    const char *to_attr = xml_get_attr(stanza, "to");
    if (!to_attr || jid_parse(to_attr, &to) < 0)
        return 0;
    int yes = strcmp(to.domain, srv->muc->domain) == 0;
    jid_clear(&to);
    return yes;
}

int node_rooms_from_link(server *srv, const char *node, xml_node *stanza)
{
    if (!for_rooms(srv, stanza))
        return 0;
    muc_deliver_via(srv->muc, stanza, node);
    return 1;
}

int node_rooms_undeliverable(server *srv, xml_node *stanza)
{
    if (!for_rooms(srv, stanza))
        return 0;
    jid to;
    if (jid_parse(xml_get_attr(stanza, "to"), &to) == 0) {
        if (to.local) {
            char *room = jid_bare(&to);
            forget_cached(srv->muc, room); /* the next stanza asks the store again */
            free(room);
        }
        jid_clear(&to);
    }
    const char *type = xml_get_attr(stanza, "type");
    int presence = strcmp(stanza->name, "presence") == 0;
    if (!str_eq(type, "error") && !str_eq(type, "result") && !(presence && type))
        router_bounce(srv, stanza, "cancel", "remote-server-not-found",
                      "the node this room lives on is unreachable; if it is gone, another node "
                      "takes the room over when its lease runs out: try again then");
    xml_free(stanza);
    return 1;
}

typedef struct node_keys {
    const char *node;
    names *keys;
} node_keys;

static int cached_on(void *ud, const char *key, void *value)
{
    node_keys *c = ud;
    const cached_home *h = value;
    if (strcmp(h->node, c->node) == 0)
        names_add(c->keys, key);
    return 0;
}

void node_rooms_link_down(server *srv, const char *node)
{
    muc *m = srv->muc;
    if (!m || !m->homes)
        return;
    names keys = {0};
    node_keys c = {node, &keys};
    dict_each(m->homes->cache, cached_on, &c);
    for (size_t i = 0; i < keys.n; i++)
        forget_cached(m, keys.v[i]);
    names_free(&keys);
}

typedef struct session_ctx {
    const char *resource;
    const char *node;
    int found;
} session_ctx;

static void session_row(void *ud, const char *resource, const char *node, int available,
                        int priority)
{
    session_ctx *c = ud;
    (void)available;
    (void)priority;
    if (strcmp(resource, c->resource) == 0 && strcmp(node, c->node) == 0)
        c->found = 1;
}

int node_rooms_session_on(muc *m, const char *full, const char *node)
{
    const char *slash = strchr(full, '/');
    if (!slash)
        return 0;
    char *bare = xstrndup(full, (size_t)(slash - full));
    session_ctx c = {slash + 1, node, 0};
    if (store_session_list(m->srv->store, bare, session_row, &c) != STORE_OK)
        log_error("muc: session directory, %s: %s", bare, store_last_error(m->srv->store));
    free(bare);
    return c.found;
}

/* ---- housekeeping ---- */

static void dead_node(void *ud, const store_node *n)
{
    if (!n->alive)
        names_add(ud, n->name);
}

typedef struct claims_ctx {
    const char *self;
    names *held;
} claims_ctx;

static void own_claim(void *ud, const store_room *row)
{
    claims_ctx *c = ud;
    if (strcmp(row->node, c->self) == 0)
        names_add(c->held, row->room);
}

typedef struct expired_ctx {
    int64_t now_ms;
    names keys;
} expired_ctx;

static int expired(void *ud, const char *key, void *value)
{
    expired_ctx *c = ud;
    const cached_home *h = value;
    if (h->until_ms <= c->now_ms)
        names_add(&c->keys, key);
    return 0;
}

typedef struct sweep_ctx {
    const names *dead;
    const names *held;  /* rooms the store says this node holds */
    names rooms;        /* rooms with occupants removed: done with afterwards */
    names lost;         /* rooms another node took over */
} sweep_ctx;

static int sweep_room(void *ud, const char *key, void *value)
{
    sweep_ctx *c = ud;
    muc_room *r = value;
    if (!names_has(c->held, key)) {
        names_add(&c->lost, key);
        return 0;
    }
    int removed = 0;
    for (muc_occupant *o = r->first, *next; o; o = next) {
        next = o->next;
        if (o->node && names_has(c->dead, o->node)) {
            static const int codes[] = {333};
            log_info("muc: %s leaves %s: its node %s is gone", o->jid, r->jid, o->node);
            muc_room_remove(r, o, codes, 1, NULL, "the occupant's server node went down");
            removed = 1;
        }
    }
    if (removed)
        names_add(&c->rooms, key);
    return 0;
}

/* A room this node held but the store gives to another (this node's lease ran out under
 * it): the occupants are told the room is gone here (332) and rejoin at its new home. */
static void drop_lost(muc *m, const char *room)
{
    muc_room *r = dict_get(m->rooms, room);
    if (!r)
        return;
    log_warn("muc: %s now lives on another node; its occupants here must rejoin", room);
    while (r->first) {
        static const int codes[] = {332};
        muc_room_remove(r, r->first, codes, 1, NULL, "the room moved to another server node");
    }
    muc_remove_room(m, r);
}

void node_rooms_housekeeping(server *srv)
{
    muc *m = srv->muc;
    if (!m || !m->homes)
        return;
    int64_t s = now_s();
    if (s - m->homes->checked_s < (srv->cfg.node_lease + 2) / 3)
        return;
    m->homes->checked_s = s;
    expired_ctx ec = {time_mono_ms(), {0}};
    dict_each(m->homes->cache, expired, &ec);
    for (size_t i = 0; i < ec.keys.n; i++)
        forget_cached(m, ec.keys.v[i]);
    names_free(&ec.keys);

    names dead = {0}, held = {0};
    claims_ctx cc = {self(m), &held};
    if (store_node_list(srv->store, dead_node, &dead) != STORE_OK ||
        store_room_list(srv->store, own_claim, &cc) != STORE_OK) {
        log_error("muc: room directory: %s", store_last_error(srv->store));
        names_free(&dead);
        names_free(&held);
        return;
    }
    sweep_ctx c = {&dead, &held, {0}, {0}};
    muc_hold(m);
    dict_each(m->rooms, sweep_room, &c);
    for (size_t i = 0; i < c.rooms.n; i++)
        muc_room_done(m, c.rooms.v[i]);
    for (size_t i = 0; i < c.lost.n; i++)
        drop_lost(m, c.lost.v[i]);
    muc_release(m);
    /* Temporary rooms of nodes gone for a lease: nobody can be in them. */
    int removed = 0;
    if (store_room_sweep(srv->store, srv->cfg.node_lease, &removed) != STORE_OK)
        log_error("muc: room directory: %s", store_last_error(srv->store));
    names_free(&c.rooms);
    names_free(&c.lost);
    names_free(&dead);
    names_free(&held);
}
