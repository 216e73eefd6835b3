/* node.c - the nodes of one domain (node.h).
 *
 * The session directory lives in the shared store's small-document table (store_kv),
 * so every back end has it without a schema change:
 *   "node"         owner=domain  key=node name  value="host:port"   (parleyctl node add)
 *   "node-lease"   owner=domain  key=node name  value=expiry (Unix seconds)
 *   "node-session" owner=bare    key=resource   value="node\tavailable\tpriority"
 * A node renews its one lease every node_lease/3 seconds; an entry counts only while
 * its node's lease runs, so a node that dies drops out of the directory as a whole when
 * its lease expires (clocks of the nodes must agree to within a few seconds: NTP), and
 * the survivors delete its entries. Stanzas for sessions on another node travel over a
 * node link (s2s.h); what arrives over one is delivered here and never forwarded again,
 * so a stale directory can only cause a detour to offline storage, never a loop. */
#include "node.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "c2s.h"
#include "message.h"
#include "roster.h"
#include "router.h"
#include "s2s.h"
#include "stanza.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C_NODE "node"
#define C_LEASE "node-lease"
#define C_SESSION "node-session"

typedef struct node_state {
    dict *leases;       /* node name -> int64_t * expiry (Unix seconds) */
    int64_t renewed_s;  /* when our lease was last written */
    int64_t loaded_ms;  /* when the leases were last read */
    int64_t gc_s;       /* when dead nodes' entries were last swept */
} node_state;

static int clustered(const server *srv) { return srv->cfg.node_name != NULL; }
static int64_t now_s(void) { return time_now_us() / 1000000; }

/* ---- leases ---- */

static void lease_cb(void *ud, const char *owner, const char *key, const char *value)
{
    dict *d = ud;
    int64_t *t = xmalloc(sizeof *t);
    *t = strtoll(value, NULL, 10);
    free(dict_set(d, key, t));
}

static void load_leases(server *srv)
{
    node_state *ns = srv->nodes;
    dict *d = dict_new();
    if (store_kv_list(srv->store, C_LEASE, srv->cfg.domain, lease_cb, d) != STORE_OK) {
        log_error("node directory: %s", store_last_error(srv->store));
        dict_free(d, free);
        return; /* keep the last view */
    }
    dict_free(ns->leases, free);
    ns->leases = d;
    ns->loaded_ms = time_mono_ms();
}

static int lease_live(server *srv, const char *node)
{
    if (strcmp(node, srv->cfg.node_name) == 0)
        return 1;
    int64_t *t = srv->nodes->leases ? dict_get(srv->nodes->leases, node) : NULL;
    return t && *t > now_s();
}

static void renew(server *srv)
{
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)(now_s() + srv->cfg.node_lease));
    if (store_kv_put(srv->store, C_LEASE, srv->cfg.domain, srv->cfg.node_name, v) != STORE_OK)
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
    const char *only_node; /* sweep: entries of this node (NULL: all) */
    char **owners;         /* sweep: their owners */
} entries;

static int parse_value(const char *value, char **node, int *available, int *priority)
{
    const char *tab = strchr(value, '\t');
    if (!tab)
        return -1;
    *node = xstrndup(value, (size_t)(tab - value));
    *available = tab[1] == '1';
    const char *tab2 = strchr(tab + 1, '\t');
    *priority = tab2 ? atoi(tab2 + 1) : 0;
    return 0;
}

static void entry_cb(void *ud, const char *owner, const char *key, const char *value)
{
    entries *es = ud;
    entry e = {0};
    if (parse_value(value, &e.node, &e.available, &e.priority) < 0)
        return;
    if (es->only_node && strcmp(e.node, es->only_node) != 0) {
        free(e.node);
        return;
    }
    e.resource = xstrdup(key);
    es->v = xrealloc(es->v, (es->n + 1) * sizeof *es->v);
    if (es->only_node) {
        es->owners = xrealloc(es->owners, (es->n + 1) * sizeof *es->owners);
        es->owners[es->n] = xstrdup(owner);
    }
    es->v[es->n++] = e;
}

static void entries_free(entries *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->v[i].resource);
        free(es->v[i].node);
        if (es->owners)
            free(es->owners[i]);
    }
    free(es->v);
    free(es->owners);
}

/* The live entries of bare on other nodes. */
static void others(server *srv, const char *bare, entries *es)
{
    memset(es, 0, sizeof *es);
    entries all = {0};
    if (store_kv_list(srv->store, C_SESSION, bare, entry_cb, &all) != STORE_OK) {
        log_error("node directory of %s: %s", bare, store_last_error(srv->store));
        return;
    }
    for (size_t i = 0; i < all.n; i++) {
        entry *e = &all.v[i];
        if (strcmp(e->node, srv->cfg.node_name) == 0 || !lease_live(srv, e->node)) {
            free(e->resource);
            free(e->node);
            continue;
        }
        es->v = xrealloc(es->v, (es->n + 1) * sizeof *es->v);
        es->v[es->n++] = *e;
    }
    free(all.v);
}

/* Delete the entries of node (a dead one, or ourselves at start and stop). */
static void sweep(server *srv, const char *node)
{
    entries es = {0};
    es.only_node = node;
    if (store_kv_list(srv->store, C_SESSION, NULL, entry_cb, &es) != STORE_OK) {
        log_error("node directory: %s", store_last_error(srv->store));
        return;
    }
    for (size_t i = 0; i < es.n; i++)
        store_kv_del(srv->store, C_SESSION, es.owners[i], es.v[i].resource);
    if (es.n)
        log_info("node directory: %zu entries of node %s removed", es.n, node);
    entries_free(&es);
}

static int sweep_dead(void *ud, const char *node, void *value)
{
    server *srv = ud;
    int64_t *t = value;
    /* A lease long past: the node is gone (a restarted node sweeps its own). */
    if (strcmp(node, srv->cfg.node_name) != 0 && *t + srv->cfg.node_lease < now_s()) {
        sweep(srv, node);
        store_kv_del(srv->store, C_LEASE, srv->cfg.domain, node);
    }
    return 0;
}

/* ---- public ---- */

int node_init(server *srv)
{
    if (!clustered(srv))
        return 0;
    srv->nodes = xcalloc(1, sizeof *srv->nodes);
    sweep(srv, srv->cfg.node_name); /* entries of an earlier life of this node */
    renew(srv);
    load_leases(srv);
    log_info("node %s of %s (sessions shared through the store, lease %d s)",
             srv->cfg.node_name, srv->cfg.domain, srv->cfg.node_lease);
    return 0;
}

int node_known(server *srv, const char *name)
{
    if (!clustered(srv))
        return 0;
    if (config_host_lookup(srv->cfg.nodes, name, NULL, 0, NULL) == 0)
        return 1;
    char *v = NULL;
    int known = store_kv_get(srv->store, C_NODE, srv->cfg.domain, name, &v) == STORE_OK;
    free(v);
    return known;
}

int node_address(server *srv, const char *name, char *host, size_t hostlen, int *port)
{
    if (config_host_lookup(srv->cfg.nodes, name, host, hostlen, port) == 0)
        return 0;
    char *v = NULL;
    if (!clustered(srv) || store_kv_get(srv->store, C_NODE, srv->cfg.domain, name, &v) != STORE_OK)
        return -1;
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
    char *v = NULL, *node = NULL;
    int avail, prio, live = 0;
    if (store_kv_get(srv->store, C_SESSION, bare, resource, &v) == STORE_OK &&
        parse_value(v, &node, &avail, &prio) == 0)
        live = strcmp(node, srv->cfg.node_name) != 0 && lease_live(srv, node);
    free(v);
    free(node);
    return live;
}

int node_route(server *srv, const char *bare, const char *resource, xml_node *stanza)
{
    if (!clustered(srv))
        return 0;
    char *v = NULL, *node = NULL;
    int avail, prio, sent = 0;
    if (store_kv_get(srv->store, C_SESSION, bare, resource, &v) == STORE_OK &&
        parse_value(v, &node, &avail, &prio) == 0 && strcmp(node, srv->cfg.node_name) != 0 &&
        lease_live(srv, node)) {
        s2s_node_send(srv, node, stanza);
        sent = 1;
    }
    free(v);
    free(node);
    return sent;
}

int node_copy_to_user(server *srv, const char *bare, const xml_node *stanza, int want)
{
    if (!clustered(srv))
        return 0;
    entries es;
    others(srv, bare, &es);
    int n = 0;
    for (size_t i = 0; i < es.n; i++) {
        entry *e = &es.v[i];
        if ((want >= NODE_AVAILABLE && !e->available) || (want == NODE_DELIVERABLE && e->priority < 0))
            continue;
        int seen = 0; /* one copy per node */
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(es.v[j].node, e->node) == 0 &&
                   !((want >= NODE_AVAILABLE && !es.v[j].available) ||
                     (want == NODE_DELIVERABLE && es.v[j].priority < 0));
        if (seen)
            continue;
        s2s_node_send(srv, e->node, xml_copy(stanza));
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
        any |= es.v[i].available && es.v[i].priority >= 0;
    entries_free(&es);
    return any;
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
    char *v = xasprintf("%s\t%d\t%d", srv->cfg.node_name, available ? 1 : 0, priority);
    if (resource && store_kv_put(srv->store, C_SESSION, bare, resource, v) != STORE_OK)
        log_error("node directory, %s: %s", full, store_last_error(srv->store));
    free(v);
    free(bare);
}

void node_session_gone(server *srv, const char *full)
{
    if (!clustered(srv))
        return;
    char *bare;
    const char *resource;
    split_full(full, &bare, &resource);
    if (resource && store_kv_del(srv->store, C_SESSION, bare, resource) != STORE_OK)
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
    jid to;
    const char *to_attr = xml_get_attr(stanza, "to");
    if (!to_attr || jid_parse(to_attr, &to) < 0) {
        xml_free(stanza);
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
    jid to;
    const char *to_attr = xml_get_attr(stanza, "to");
    const char *type = xml_get_attr(stanza, "type");
    if (!to_attr || jid_parse(to_attr, &to) < 0) {
        xml_free(stanza);
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

void node_link_up(server *srv, const char *node)
{
    log_info("node %s: linked", node);
}

void node_link_down(server *srv, const char *node, int outbound)
{
    log_info("node %s: %s link down", node ? node : "?", outbound ? "outbound" : "inbound");
}

void node_housekeeping(server *srv)
{
    if (!clustered(srv))
        return;
    node_state *ns = srv->nodes;
    int64_t s = now_s();
    if (s - ns->renewed_s >= (srv->cfg.node_lease + 2) / 3)
        renew(srv);
    load_leases(srv);
    if (s - ns->gc_s >= srv->cfg.node_lease) {
        ns->gc_s = s;
        if (ns->leases)
            dict_each(ns->leases, sweep_dead, srv);
    }
}

void node_shutdown(server *srv)
{
    if (!clustered(srv) || !srv->nodes)
        return;
    /* A clean leave: nobody waits for the lease to run out. */
    sweep(srv, srv->cfg.node_name);
    store_kv_del(srv->store, C_LEASE, srv->cfg.domain, srv->cfg.node_name);
    dict_free(srv->nodes->leases, free);
    free(srv->nodes);
    srv->nodes = NULL;
}
