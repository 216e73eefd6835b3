/* s2s_resolve.c - where to connect for a remote domain (RFC 6120 3.2.1): the s2s_hosts
 * override (or the nodes list for a node), else DNS SRV records _xmpp-server._tcp in
 * priority order, else the domain itself on port 5269.
 *
 * The SRV query is synchronous (libresolv): it blocks the event loop for at most the
 * resolver's time-out, once per new link. Deployments that cannot accept that pin their
 * peers in s2s_hosts (docs/federation.md). */
#include "s2s_internal.h"
#include "../common/log.h"
#include "node.h"

#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_S2S_PORT 5269

typedef struct srv_rr {
    int priority, weight, port;
    char host[S2S_MAX_HOST];
} srv_rr;

static int by_priority(const void *a, const void *b)
{
    const srv_rr *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority - y->priority;
    return y->weight - x->weight; /* heavier first: a simplification of RFC 2782 */
}

/* SRV records for domain into out (max). Returns how many; -1 when the domain says
 * "no service" (a single record with target "."). */
static int query_srv(const char *domain, srv_rr *out, int max)
{
    char name[300];
    snprintf(name, sizeof name, "_xmpp-server._tcp.%s", domain);
    unsigned char answer[4096];
    int len = res_query(name, ns_c_in, ns_t_srv, answer, sizeof answer);
    if (len <= 0)
        return 0;
    ns_msg msg;
    if (ns_initparse(answer, len, &msg) < 0)
        return 0;
    int n = 0, count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count && n < max; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_srv ||
            ns_rr_rdlen(rr) < 7)
            continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        out[n].priority = ns_get16(rd);
        out[n].weight = ns_get16(rd + 2);
        out[n].port = ns_get16(rd + 4);
        if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, out[n].host,
                      sizeof out[n].host) < 0)
            continue;
        if (strcmp(out[n].host, ".") == 0 || out[n].host[0] == '\0')
            return count == 1 ? -1 : n; /* RFC 2782: "." means no service */
        n++;
    }
    qsort(out, (size_t)n, sizeof *out, by_priority);
    return n;
}

int s2s_resolve(server *srv, const char *domain, int node, s2s_target *out, int max,
                const char **why)
{
    *why = NULL;
    if (node) {
        if (node_address(srv, domain, out[0].host, sizeof out[0].host, &out[0].port) == 0)
            return 1;
        *why = "the node has no known address (nodes, or parleyctl node add)";
        return 0;
    }
    if (config_host_lookup(srv->cfg.s2s_hosts, domain, out[0].host, sizeof out[0].host,
                           &out[0].port) == 0)
        return 1;
    srv_rr rrs[S2S_MAX_TARGETS];
    int n = query_srv(domain, rrs, max < S2S_MAX_TARGETS ? max : S2S_MAX_TARGETS);
    if (n < 0) {
        *why = "the domain publishes no XMPP server service";
        return 0;
    }
    for (int i = 0; i < n; i++) {
        snprintf(out[i].host, sizeof out[i].host, "%s", rrs[i].host);
        out[i].port = rrs[i].port;
    }
    if (n == 0) {
        /* RFC 6120 3.2.2: no SRV record, so the domain itself on the default port. */
        snprintf(out[0].host, sizeof out[0].host, "%s", domain);
        out[0].port = DEFAULT_S2S_PORT;
        n = 1;
    }
    log_debug("s2s %s: %d connection target(s), first %s:%d", domain, n, out[0].host,
              out[0].port);
    return n;
}
