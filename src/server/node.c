/* node.c - the nodes of one domain (node.h).
 *
 * The session directory is in the shared PostgreSQL store (store_node_*, store_session_*):
 * which node holds which full JID, available or not, with what priority. Each node holds
 * a lease on the database's clock and renews it every node_lease/3 seconds; an entry
 * counts only while its node's lease runs, so a node that dies drops out of the
 * directory as a whole when its lease expires, and the survivors delete its entries.
 * Stanzas for sessions on another node travel over a node link (s2s.h); what arrives
 * over one is delivered here and never forwarded again, so a stale directory can only
 * cause a detour to offline storage, never a loop. */
#include "node.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "c2s.h"
#include "message.h"
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
} node_state;

static int clustered(const server *srv) { return srv->cfg.node_name != NULL; }
static int64_t now_s(void) { return time_mono_ms() / 1000; }

static void renew(server *srv)
{
    if (store_node_renew(srv->store, srv->cfg.node_name, srv->cfg.node_lease) != STORE_OK)
        log_error("node lease: %s", store_last_error(srv->store));
    srv->nodes->renewed_s = now_s();
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

/* The entries of bare on other live nodes. */
static void others(server *srv, const char *bare, entries *es)
{
    memset(es, 0, sizeof *es);
    es->self = srv->cfg.node_name;
    if (store_session_list(srv->store, bare, entry_cb, es) != STORE_OK)
        log_error("node directory of %s: %s", bare, store_last_error(srv->store));
}

/* The other node holding bare/resource, or NULL (caller frees). */
static char *holder(server *srv, const char *bare, const char *resource)
{
    entries es;
    others(srv, bare, &es);
    char *node = NULL;
    for (size_t i = 0; i < es.n && !node; i++)
        if (strcmp(es.v[i].resource, resource) == 0)
            node = xstrdup(es.v[i].node);
    entries_free(&es);
    return node;
}

/* ---- public ---- */

int node_init(server *srv)
{
    if (!clustered(srv))
        return 0;
    srv->nodes = xcalloc(1, sizeof *srv->nodes);
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

int node_copy_to_user(server *srv, const char *bare, const xml_node *stanza, int want)
{
    if (!clustered(srv))
        return 0;
    entries es;
    others(srv, bare, &es);
    int n = 0;
    for (size_t i = 0; i < es.n; i++) {
        if (!wanted(&es.v[i], want))
            continue;
        int seen = 0; /* one copy per node */
        for (size_t j = 0; j < i && !seen; j++)
            seen = wanted(&es.v[j], want) && strcmp(es.v[j].node, es.v[i].node) == 0;
        if (seen)
            continue;
        s2s_node_send(srv, es.v[i].node, xml_copy(stanza));
        n++;
    }
    entries_free(&es);
    return n;
}

int node_user_available(server *srv, const char *bare)
{
    if (!clustered(srv))
        return 0;
    entries es;
    others(srv, bare, &es);
    int any = 0;
    for (size_t i = 0; i < es.n; i++)
        any |= wanted(&es.v[i], NODE_DELIVERABLE);
    entries_free(&es);
    return any;
}

int node_best_priority(server *srv, const char *bare)
{
    if (!clustered(srv))
        return -1;
    entries es;
    others(srv, bare, &es);
    int best = -1;
    for (size_t i = 0; i < es.n; i++)
        if (wanted(&es.v[i], NODE_DELIVERABLE) && es.v[i].priority > best)
            best = es.v[i].priority;
    entries_free(&es);
    return best;
}

int node_copy_to_priority(server *srv, const char *bare, const xml_node *stanza,
                          int min_priority)
{
    if (!clustered(srv))
        return 0;
    entries es;
    others(srv, bare, &es);
    int n = 0;
    for (size_t i = 0; i < es.n; i++) {
        entry *e = &es.v[i];
        if (!wanted(e, NODE_DELIVERABLE) || e->priority < min_priority)
            continue;
        int seen = 0; /* one copy per node */
        for (size_t j = 0; j < i && !seen; j++)
            seen = wanted(&es.v[j], NODE_DELIVERABLE) && es.v[j].priority >= min_priority &&
                   strcmp(es.v[j].node, e->node) == 0;
        if (seen)
            continue;
        s2s_node_send(srv, e->node, xml_copy(stanza));
        n++;
    }
    entries_free(&es);
    return n;
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
    free(bare);
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
    if (node)
        node_rooms_link_down(srv, node);
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
    free(srv->nodes);
    srv->nodes = NULL;
}
