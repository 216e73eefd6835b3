/* node.c - the nodes of one domain (node.h).
 *
 * The session directory is in the shared PostgreSQL store (store_node_*, store_session_*):
 * which node holds which full JID, available or not, with what priority. Each node holds
 * a lease on the database's clock and renews it every node_lease/3 seconds; an entry
 * counts only while its node's lease runs, so a node that dies drops out of the
 * directory as a whole when its lease expires, and the survivors delete its entries.
 * Stanzas for sessions on another node travel over a node link (s2s.h); what arrives
 * over one is delivered here and never forwarded again, so a stale directory can only
 * cause a detour to offline storage, never a loop.
 *
 * Routing reads a replica of the other nodes' entries (node_dir.h), not the store: each
 * node sends a snapshot of its sessions to a node that asks (over its link), then pushes
 * every change. The replica answers only while every live node's snapshot is in; an
 * answer that would send a stanza to offline storage or bounce it (no such session) is
 * asked again of the store, since a session that began a moment ago on another node may
 * not have reached the replica yet. Presence at login does the same when the replica shows
 * a contact nowhere available (node_copy_at_login); other copies use the replica alone. */
#include "node.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "c2s.h"
#include "message.h"
#include "node_dir.h"
#include "node_ns.h"
#include "node_rooms.h"
#include "roster.h"
#include "router.h"
#include "s2s.h"
#include "stanza.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct node_state {
    int64_t renewed_s;  /* when our lease was last written */
    int64_t swept_s;    /* when dead nodes' entries were last deleted */
    node_dir *dir;      /* the other nodes' entries, as they told us */
    unsigned long long from_replica, from_store; /* lookups, logged at shutdown */
} node_state;

static void refresh_alive(server *srv);

static int clustered(const server *srv) { return srv->cfg.node_name != NULL; }
static int64_t now_s(void) { return time_mono_ms() / 1000; }

static void renew(server *srv)
{
    if (store_node_renew(srv->store, srv->cfg.node_name, srv->cfg.node_lease) != STORE_OK)
        log_error("node lease: %s", store_last_error(srv->store));
    srv->nodes->renewed_s = now_s();
    refresh_alive(srv);
}

/* ---- directory entries ---- */

typedef struct entry {
    char *resource;
    char *node;
    int available;
    int priority;
} entry;

typedef struct entries {
    entry *v;
    size_t n;
    const char *self;
    int stored; /* from the store, not the replica */
} entries;

static void entry_cb(void *ud, const char *resource, const char *node, int available,
                     int priority)
{
    entries *es = ud;
    if (strcmp(node, es->self) == 0)
        return;
    es->v = xrealloc(es->v, (es->n + 1) * sizeof *es->v);
    es->v[es->n++] = (entry){xstrdup(resource), xstrdup(node), available, priority};
}

static void entries_free(entries *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->v[i].resource);
        free(es->v[i].node);
    }
    free(es->v);
}

/* The entries of bare on other live nodes, from the store. */
static void from_store(server *srv, const char *bare, entries *es)
{
    memset(es, 0, sizeof *es);
    es->self = srv->cfg.node_name;
    es->stored = 1;
    srv->nodes->from_store++;
    log_debug("node directory: %s asked of the store", bare);
    if (store_session_list(srv->store, bare, entry_cb, es) != STORE_OK)
        log_error("node directory of %s: %s", bare, store_last_error(srv->store));
}

/* The entries of bare on other live nodes: from the replica when every live node's
 * snapshot is in, else from the store. */
static void others(server *srv, const char *bare, entries *es)
{
    node_state *ns = srv->nodes;
    if (!node_dir_trusted(ns->dir)) {
        from_store(srv, bare, es);
        return;
    }
    memset(es, 0, sizeof *es);
    es->self = srv->cfg.node_name;
    node_dir_each(ns->dir, bare, entry_cb, es);
    /* One full JID named by two nodes (a session that moved, a node that lies): the store
     * says which session is the newer. */
    for (size_t i = 0; i < es->n; i++)
        for (size_t j = i + 1; j < es->n; j++)
            if (strcmp(es->v[i].resource, es->v[j].resource) == 0) {
                entries_free(es);
                from_store(srv, bare, es);
                return;
            }
    ns->from_replica++;
}

/* A negative answer that decides a stanza's fate (offline storage, a bounce): asked again
 * of the store, which a session that began a moment ago is already in. */
static void confirm(server *srv, const char *bare, entries *es)
{
    if (es->stored)
        return;
    entries_free(es);
    from_store(srv, bare, es);
}

static char *find_holder(const entries *es, const char *resource)
{
    for (size_t i = 0; i < es->n; i++)
        if (strcmp(es->v[i].resource, resource) == 0)
            return xstrdup(es->v[i].node);
    return NULL;
}

/* The other node holding bare/resource, or NULL (caller frees). */
static char *holder(server *srv, const char *bare, const char *resource)
{
    entries es;
    others(srv, bare, &es);
    char *node = find_holder(&es, resource);
    if (!node) {
        confirm(srv, bare, &es);
        node = find_holder(&es, resource);
    }
    entries_free(&es);
    return node;
}

/* ---- public ---- */

int node_init(server *srv)
{
    if (!clustered(srv))
        return 0;
    srv->nodes = xcalloc(1, sizeof *srv->nodes);
    srv->nodes->dir = node_dir_new();
    int removed = 0;
    /* Entries of an earlier life of this node (killed before it could clean up). */
    if (store_node_sweep(srv->store, srv->cfg.node_name, 0, &removed) != STORE_OK) {
        log_error("node directory: %s", store_last_error(srv->store));
        return -1;
    }
    renew(srv);
    log_info("node %s of %s (session directory in the store, lease %d s)", srv->cfg.node_name,
             srv->cfg.domain, srv->cfg.node_lease);
    return 0;
}

int node_known(server *srv, const char *name)
{
    if (!clustered(srv))
        return 0;
    if (config_host_lookup(srv->cfg.nodes, name, NULL, 0, NULL) == 0)
        return 1;
    char *v = NULL;
    int known = store_node_address(srv->store, name, &v) == STORE_OK;
    free(v);
    return known;
}

int node_address(server *srv, const char *name, char *host, size_t hostlen, int *port)
{
    if (config_host_lookup(srv->cfg.nodes, name, host, hostlen, port) == 0)
        return 0;
    char *v = NULL;
    if (!clustered(srv) || store_node_address(srv->store, name, &v) != STORE_OK)
        return -1;
    /* The registered form is checked like the nodes key (parleyctl node add). */
    char *list = xasprintf("%s=%s", name, v);
    free(v);
    int rc = config_host_lookup(list, name, host, hostlen, port);
    free(list);
    return rc;
}

int node_has_session(server *srv, const char *bare, const char *resource)
{
    if (!clustered(srv))
        return 0;
    char *node = holder(srv, bare, resource);
    free(node);
    return node != NULL;
}

int node_route(server *srv, const char *bare, const char *resource, xml_node *stanza)
{
    if (!clustered(srv))
        return 0;
    char *node = holder(srv, bare, resource);
    if (!node)
        return 0;
    s2s_node_send(srv, node, stanza);
    free(node);
    return 1;
}

static int wanted(const entry *e, int want)
{
    return !((want >= NODE_AVAILABLE && !e->available) ||
             (want == NODE_DELIVERABLE && e->priority < 0));
}

/* A copy of stanza for each node named in es holding a session of the kind want says (one
 * per node). Returns how many nodes got one. */
static int copy_to_nodes(server *srv, const entries *es, const xml_node *stanza, int want)
{
    int n = 0;
    for (size_t i = 0; i < es->n; i++) {
        if (!wanted(&es->v[i], want))
            continue;
        int seen = 0; /* one copy per node */
        for (size_t j = 0; j < i && !seen; j++)
            seen = wanted(&es->v[j], want) && strcmp(es->v[j].node, es->v[i].node) == 0;
        if (seen)
            continue;
        s2s_node_send(srv, es->v[i].node, xml_copy(stanza));
        n++;
    }
    return n;
}

static int any_wanted(const entries *es, int want)
{
    for (size_t i = 0; i < es->n; i++)
        if (wanted(&es->v[i], want))
            return 1;
    return 0;
}

int node_copy_to_user(server *srv, const char *bare, const xml_node *stanza, int want)
{
    if (!clustered(srv))
        return 0;
    entries es;
    others(srv, bare, &es);
    int n = copy_to_nodes(srv, &es, stanza, want);
    entries_free(&es);
    return n;
}

int node_copy_at_login(server *srv, const char *bare, const xml_node *presence,
                       const xml_node *probe)
{
    if (!clustered(srv))
        return 0;
    entries es;
    others(srv, bare, &es);
    /* None available on the replica's word: a session of bare that became available a
     * moment ago on another node may not have reached the replica yet, but it is in the
     * store, written before our own availability was (docs/federation.md). */
    if (!any_wanted(&es, NODE_AVAILABLE))
        confirm(srv, bare, &es);
    int n = 0;
    if (presence)
        n = copy_to_nodes(srv, &es, presence, NODE_AVAILABLE);
    if (probe)
        n = copy_to_nodes(srv, &es, probe, NODE_AVAILABLE);
    entries_free(&es);
    return n;
}

static int any_deliverable(const entries *es) { return any_wanted(es, NODE_DELIVERABLE); }

/* Can a session here take a message for bare (available, priority >= 0)? */
static int deliverable_here(server *srv, const char *bare)
{
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
        if (s->available && c2s_is_live(s) && s->priority >= 0)
            return 1;
    return 0;
}

int node_user_available(server *srv, const char *bare)
{
    if (!clustered(srv))
        return 0;
    entries es;
    others(srv, bare, &es);
    if (!any_deliverable(&es))
        confirm(srv, bare, &es);
    int any = any_deliverable(&es);
    entries_free(&es);
    return any;
}

int node_best_priority(server *srv, const char *bare)
{
    if (!clustered(srv))
        return -1;
    entries es;
    others(srv, bare, &es);
    /* None elsewhere and none here: the message would go to offline storage. */
    if (!any_deliverable(&es) && !deliverable_here(srv, bare))
        confirm(srv, bare, &es);
    int best = -1;
    for (size_t i = 0; i < es.n; i++)
        if (wanted(&es.v[i], NODE_DELIVERABLE) && es.v[i].priority > best)
            best = es.v[i].priority;
    entries_free(&es);
    return best;
}

static int copy_to_priority(server *srv, const entries *es, const xml_node *stanza,
                            int min_priority)
{
    int n = 0;
    for (size_t i = 0; i < es->n; i++) {
        const entry *e = &es->v[i];
        if (!wanted(e, NODE_DELIVERABLE) || e->priority < min_priority)
            continue;
        int seen = 0; /* one copy per node */
        for (size_t j = 0; j < i && !seen; j++)
            seen = wanted(&es->v[j], NODE_DELIVERABLE) && es->v[j].priority >= min_priority &&
                   strcmp(es->v[j].node, e->node) == 0;
        if (seen)
            continue;
        s2s_node_send(srv, e->node, xml_copy(stanza));
        n++;
    }
    return n;
}

int node_copy_to_priority(server *srv, const char *bare, const xml_node *stanza,
                          int min_priority)
{
    if (!clustered(srv))
        return 0;
    entries es;
    others(srv, bare, &es);
    int n = copy_to_priority(srv, &es, stanza, min_priority);
    if (n == 0 && !es.stored) {
        /* node_best_priority found one, so the store did (a session the replica lacks). */
        confirm(srv, bare, &es);
        n = copy_to_priority(srv, &es, stanza, min_priority);
    }
    entries_free(&es);
    return n;
}

int node_has_user(server *srv, const char *bare)
{
    if (!clustered(srv))
        return 0;
    entries es;
    memset(&es, 0, sizeof es);
    es.self = srv->cfg.node_name;
    node_dir_each(srv->nodes->dir, bare, entry_cb, &es);
    int any = es.n > 0;
    entries_free(&es);
    return any;
}

typedef struct live_nodes {
    const char *self;
    char **names;
    size_t n;
} live_nodes;

static void live_cb(void *ud, const store_node *n)
{
    live_nodes *l = ud;
    if (!n->alive || strcmp(n->name, l->self) == 0)
        return;
    l->names = xrealloc(l->names, (l->n + 1) * sizeof *l->names);
    l->names[l->n++] = xstrdup(n->name);
}

/* The other live nodes (the caller frees l->names and each name). */
static void live_others(server *srv, live_nodes *l)
{
    *l = (live_nodes){srv->cfg.node_name, NULL, 0};
    if (store_node_list(srv->store, live_cb, l) != STORE_OK)
        log_error("node registry: %s", store_last_error(srv->store));
}

/* The store's view of which nodes live: the replica answers only while each of them has
 * sent its snapshot. */
static void refresh_alive(server *srv)
{
    live_nodes l;
    live_others(srv, &l);
    node_dir_mark_all_dead(srv->nodes->dir);
    for (size_t i = 0; i < l.n; i++) {
        node_dir_mark_alive(srv->nodes->dir, l.names[i]);
        free(l.names[i]);
    }
    free(l.names);
}

void node_copy_to_all(server *srv, const xml_node *stanza)
{
    if (!clustered(srv))
        return;
    live_nodes l;
    live_others(srv, &l); /* collected first: sending may ask the store (a link's address) */
    for (size_t i = 0; i < l.n; i++) {
        s2s_node_send(srv, l.names[i], xml_copy(stanza));
        free(l.names[i]);
    }
    free(l.names);
}

int node_alive(server *srv, const char *name)
{
    if (!clustered(srv))
        return 0;
    live_nodes l;
    live_others(srv, &l);
    int alive = 0;
    for (size_t i = 0; i < l.n; i++) {
        alive |= strcmp(l.names[i], name) == 0;
        free(l.names[i]);
    }
    free(l.names);
    return alive;
}

static void split_full(const char *full, char **bare, const char **resource)
{
    const char *slash = strchr(full, '/');
    *bare = slash ? xstrndup(full, (size_t)(slash - full)) : xstrdup(full);
    *resource = slash ? slash + 1 : NULL;
}

/* ---- our entries, told to the other nodes (docs/federation.md, "The directory replica") ---- */


/* <message from=domain to=domain><what xmlns=XMLNS_NODE node=us/></message> */
static xml_node *dir_envelope(server *srv, const char *what, xml_node **dir)
{
    xml_node *env = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(env, "from", srv->cfg.domain);
    xml_set_attr(env, "to", srv->cfg.domain);
    *dir = xml_add_child(env, XMLNS_NODE, what);
    xml_set_attr(*dir, "node", srv->cfg.node_name);
    return env;
}

static void add_session(xml_node *dir, const char *full, int available, int priority)
{
    char prio[16];
    snprintf(prio, sizeof prio, "%d", priority);
    xml_node *e = xml_add_child(dir, XMLNS_NODE, "session");
    xml_set_attr(e, "jid", full);
    xml_set_attr(e, "available", available ? "1" : "0");
    xml_set_attr(e, "priority", prio);
}

typedef struct names {
    char **v;
    size_t n;
} names;

static void collect_name(void *ud, const char *node)
{
    names *l = ud;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = xstrdup(node);
}

/* A change of our entries, to every node that has our snapshot. Takes env. */
static void push(server *srv, xml_node *env)
{
    names l = {NULL, 0};
    node_dir_each_pushed(srv->nodes->dir, collect_name, &l); /* sending may fail a link */
    for (size_t i = 0; i < l.n; i++) {
        s2s_node_send(srv, l.v[i], xml_copy(env));
        free(l.v[i]);
    }
    free(l.v);
    xml_free(env);
}

typedef struct snapshot {
    server *srv;
    const char *node;
    xml_node *env, *dir;
    size_t bytes; /* about how long the stanza being filled is */
} snapshot;

static void snapshot_send(snapshot *sn, int last)
{
    if (last)
        xml_set_attr(sn->dir, "complete", "1");
    s2s_node_send(sn->srv, sn->node, sn->env);
    sn->env = dir_envelope(sn->srv, "directory", &sn->dir);
    sn->bytes = 0;
}

static int snapshot_user(void *ud, const char *bare, void *value)
{
    snapshot *sn = ud;
    for (c2s *s = value; s; s = s->next_resource) {
        if (!s->full)
            continue;
        add_session(sn->dir, s->full, s->available, s->priority);
        /* Well within max_stanza_size, the most a node link takes in one stanza. */
        sn->bytes += strlen(s->full) + 64;
        if (sn->bytes >= sn->srv->cfg.max_stanza_size / 4)
            snapshot_send(sn, 0);
    }
    return 0;
}

/* Every session here, to node (which asked): the first stanza says reset, the last
 * complete; our pushes follow over the same link, in order. */
static void send_snapshot(server *srv, const char *node)
{
    snapshot sn = {srv, node, NULL, NULL, 0};
    sn.env = dir_envelope(srv, "directory", &sn.dir);
    xml_set_attr(sn.dir, "reset", "1");
    dict_each(srv->users, snapshot_user, &sn);
    snapshot_send(&sn, 1);
    xml_free(sn.env);
    node_dir_set_pushing(srv->nodes->dir, node, 1);
}

void node_session_update(server *srv, const char *full, int available, int priority)
{
    if (!clustered(srv))
        return;
    char *bare;
    const char *resource;
    split_full(full, &bare, &resource);
    if (resource && store_session_put(srv->store, bare, resource, srv->cfg.node_name, available,
                                      priority) != STORE_OK)
        log_error("node directory, %s: %s", full, store_last_error(srv->store));
    if (resource) { /* after the store: a node that misses the push finds it there */
        xml_node *dir;
        xml_node *env = dir_envelope(srv, "directory", &dir);
        add_session(dir, full, available, priority);
        push(srv, env);
    }
    free(bare);
}

void node_session_gone(server *srv, const char *full)
{
    if (!clustered(srv))
        return;
    char *bare;
    const char *resource;
    split_full(full, &bare, &resource);
    if (resource && store_session_del(srv->store, bare, resource, srv->cfg.node_name) != STORE_OK)
        log_error("node directory, %s: %s", full, store_last_error(srv->store));
    if (resource) {
        xml_node *dir;
        xml_node *env = dir_envelope(srv, "directory", &dir);
        xml_set_attr(xml_add_child(dir, XMLNS_NODE, "gone"), "jid", full);
        push(srv, env);
    }
    free(bare);
}

/* ---- the other nodes' entries, as they tell us ---- */

/* One <session/> or <gone/> of node's: for a full JID of ours. */
static void apply(server *srv, const char *node, const xml_node *e)
{
    jid j;
    const char *full = xml_get_attr(e, "jid");
    if (!full || jid_parse(full, &j) < 0)
        return;
    if (j.local && j.resource && str_eq(j.domain, srv->cfg.domain)) {
        char *bare = jid_bare(&j);
        if (strcmp(e->name, "session") == 0) {
            const char *prio = xml_get_attr(e, "priority");
            long p = prio ? strtol(prio, NULL, 10) : 0;
            p = p < -128 ? -128 : p > 127 ? 127 : p; /* RFC 6121 4.7.2.3 */
            node_dir_put(srv->nodes->dir, node, bare, j.resource,
                         str_eq(xml_get_attr(e, "available"), "1"), (int)p);
        } else if (strcmp(e->name, "gone") == 0) {
            node_dir_del(srv->nodes->dir, node, bare, j.resource);
        }
        free(bare);
    }
    jid_clear(&j);
}

void node_directory_from_node(server *srv, const char *node, const xml_node *el)
{
    if (!clustered(srv))
        return;
    /* A node speaks only of its own sessions: what names another is forged. */
    if (!str_eq(xml_get_attr(el, "node"), node)) {
        log_warn("node %s: a directory update naming node %s dropped", node,
                 xml_get_attr(el, "node") ? xml_get_attr(el, "node") : "(none)");
        return;
    }
    node_dir *d = srv->nodes->dir;
    if (strcmp(el->name, "resync") == 0) {
        send_snapshot(srv, node);
        return;
    }
    if (str_eq(xml_get_attr(el, "reset"), "1"))
        node_dir_drop(d, node);
    for (const xml_node *e = xml_child(el, XMLNS_NODE, NULL); e; e = xml_next(e, XMLNS_NODE, NULL))
        apply(srv, node, e);
    if (str_eq(xml_get_attr(el, "complete"), "1") && !node_dir_synced(d, node)) {
        node_dir_set_synced(d, node);
        log_info("node directory: %s synced", node);
    }
}

/* Ask node for its snapshot (it is alive and its entries are not in). */
static void ask(void *ud, const char *node)
{
    server *srv = ud;
    node_state *ns = srv->nodes;
    int64_t s = now_s(), retry = (srv->cfg.node_lease + 2) / 3;
    int64_t asked = node_dir_asked(ns->dir, node);
    if (asked && s - asked < retry)
        return;
    node_dir_set_asked(ns->dir, node, s);
    xml_node *dir;
    xml_node *env = dir_envelope(srv, "resync", &dir);
    s2s_node_send(srv, node, env);
}

/* ---- stanzas from other nodes: delivered here, never forwarded again ---- */

static void presence_here(server *srv, xml_node *stanza, const char *bare, const char *resource)
{
    const char *type = xml_get_attr(stanza, "type");
    if (str_eq(type, "probe")) {
        /* Another node's session wants the presence of our sessions of bare. */
        const char *prober = xml_get_attr(stanza, "from");
        for (c2s *r = router_sessions(srv, bare); r && prober; r = r->next_resource) {
            if (!r->available || !r->presence)
                continue;
            xml_node *p = xml_copy(r->presence);
            xml_set_attr(p, "from", r->full);
            xml_set_attr(p, "to", prober);
            router_deliver(srv, p);
        }
        return;
    }
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
        if ((resource ? strcmp(s->resource, resource) == 0 : s->available) && c2s_is_live(s))
            c2s_send(s, stanza);
}

void node_from_link(server *srv, const char *node, xml_node *stanza)
{
    if (node_ns_from_link(srv, node, stanza))
        return; /* ours between nodes (node_ns.h) */
    jid to;
    const char *to_attr = xml_get_attr(stanza, "to");
    if (!to_attr || jid_parse(to_attr, &to) < 0) {
        xml_free(stanza);
        return;
    }
    if (node_rooms_from_link(srv, node, stanza)) { /* for a room living here */
        jid_clear(&to);
        return;
    }
    if (!to.local || !router_is_local_domain(srv, to.domain)) {
        /* For a service (or the server) of this node; answers to other domains too. */
        router_send(srv, stanza);
        jid_clear(&to);
        return;
    }
    char *bare = jid_bare(&to);
    if (strcmp(stanza->name, "message") == 0) {
        message_deliver_here(srv, stanza, bare, to.resource);
        stanza = NULL;
    } else if (strcmp(stanza->name, "presence") == 0) {
        presence_here(srv, stanza, bare, to.resource);
    } else if (!to.resource && str_eq(xml_get_attr(stanza, "type"), "set") &&
               xml_child(stanza, XMLNS_ROSTER, "query")) {
        roster_push_here(srv, bare, stanza);
    } else {
        c2s *s = to.resource ? router_session(srv, bare, to.resource) : NULL;
        const char *type = xml_get_attr(stanza, "type");
        if (s && c2s_is_live(s))
            c2s_send(s, stanza);
        else if (str_eq(type, "get") || str_eq(type, "set"))
            router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
    }
    xml_free(stanza);
    free(bare);
    jid_clear(&to);
}

void node_undeliverable(server *srv, xml_node *stanza)
{
    if (node_ns_envelope(srv, stanza)) {
        xml_free(stanza); /* copies for sessions on that node: gone with it */
        return;
    }
    jid to;
    const char *to_attr = xml_get_attr(stanza, "to");
    const char *type = xml_get_attr(stanza, "type");
    if (!to_attr || jid_parse(to_attr, &to) < 0) {
        xml_free(stanza);
        return;
    }
    if (node_rooms_undeliverable(srv, stanza)) { /* for a room on that node */
        jid_clear(&to);
        return;
    }
    if (strcmp(stanza->name, "message") == 0 && to.local) {
        /* The node is gone with the session: the message waits in offline storage. */
        char *bare = jid_bare(&to);
        message_deliver_here(srv, stanza, bare, to.resource);
        free(bare);
        stanza = NULL;
    } else if (strcmp(stanza->name, "iq") == 0 && (str_eq(type, "get") || str_eq(type, "set"))) {
        router_bounce(srv, stanza, "cancel", "service-unavailable", "the node is unreachable");
    }
    xml_free(stanza);
    jid_clear(&to);
}

void node_link_up(server *srv, const char *node, int outbound)
{
    log_info("node %s: %s link up", node, outbound ? "outbound" : "inbound");
}

void node_link_down(server *srv, const char *node, int outbound)
{
    log_info("node %s: %s link down", node ? node : "?", outbound ? "outbound" : "inbound");
    if (!node)
        return;
    node_rooms_link_down(srv, node);
    if (!clustered(srv) || !srv->nodes)
        return;
    if (outbound) {
        /* Our pushes are lost with the link: node asks for a snapshot again. */
        node_dir_set_pushing(srv->nodes->dir, node, 0);
    } else {
        /* Its pushes may be lost with the link: its entries no longer count (the store
         * answers) until a new snapshot arrives, which we ask for at once. */
        node_dir_drop(srv->nodes->dir, node);
        node_dir_set_asked(srv->nodes->dir, node, 0);
    }
}

void node_housekeeping(server *srv)
{
    if (!clustered(srv))
        return;
    node_state *ns = srv->nodes;
    int64_t s = now_s();
    if (s - ns->renewed_s >= (srv->cfg.node_lease + 2) / 3)
        renew(srv);
    if (s - ns->swept_s >= srv->cfg.node_lease) {
        /* Nodes whose lease ran out a lease ago: gone (a restarted one sweeps its own). */
        ns->swept_s = s;
        int removed = 0;
        if (store_node_sweep(srv->store, NULL, srv->cfg.node_lease, &removed) != STORE_OK)
            log_error("node directory: %s", store_last_error(srv->store));
        else if (removed)
            log_info("node directory: %d entries of nodes that are gone removed", removed);
    }
    node_dir_each_unsynced(ns->dir, ask, srv);
    node_rooms_housekeeping(srv);
}

void node_shutdown(server *srv)
{
    if (!clustered(srv) || !srv->nodes)
        return;
    /* A clean leave: nobody waits for the lease to run out. */
    if (store_node_sweep(srv->store, srv->cfg.node_name, 0, NULL) != STORE_OK ||
        store_node_renew(srv->store, srv->cfg.node_name, 1) != STORE_OK)
        log_error("node directory: %s", store_last_error(srv->store));
    log_info("node directory: %llu lookups answered by the replica, %llu by the store",
             srv->nodes->from_replica, srv->nodes->from_store);
    node_dir_free(srv->nodes->dir);
    free(srv->nodes);
    srv->nodes = NULL;
}
