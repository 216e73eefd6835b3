/* node_ns.c - our namespace between nodes (node_ns.h): envelopes and requests.
 *
 * An envelope is a message from the bare domain (no client can send one: the server
 * stamps clients' 'from' with their full JID, and other domains do not use node links),
 * without a type, whose first child is in XMLNS_NODE, to a user's bare JID (for that
 * user's sessions here) or to the domain (for every session here):
 *   <carbon kind=...>  carbons.h, carbons_from_node
 *   <pep .../>         pep.h, pep_from_node
 *   <directory node=.../>, <resync node=.../> (to the domain)  node.h, node_directory_from_node
 * It is handled here and never forwarded again. A request is an IQ get/set from another
 * node, from domain/node, whose payload is in XMLNS_NODE (the handover of node_sm.h). */
#include "node_ns.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "carbons.h"
#include "node.h"
#include "node_sm.h"
#include "pep.h"
#include "router.h"

#include <stdlib.h>
#include <string.h>

/* The envelope's payload, or NULL if stanza is not an envelope. */
static const xml_node *payload(server *srv, const xml_node *stanza)
{
    const xml_node *el = xml_first_element(stanza);
    if (strcmp(stanza->name, "message") != 0 || !el || !str_eq(el->ns, XMLNS_NODE) ||
        xml_get_attr(stanza, "type") || !str_eq(xml_get_attr(stanza, "from"), srv->cfg.domain))
        return NULL;
    return el;
}

int node_ns_envelope(server *srv, const xml_node *stanza)
{
    return payload(srv, stanza) != NULL;
}

static void open_envelope(server *srv, const char *node, xml_node *stanza, const xml_node *el)
{
    jid to;
    if (jid_parse(xml_get_attr(stanza, "to") ? xml_get_attr(stanza, "to") : "", &to) < 0)
        return;
    if (!to.resource && router_is_local_domain(srv, to.domain)) {
        char *bare = to.local ? jid_bare(&to) : NULL; /* NULL: every session here */
        if (strcmp(el->name, "carbon") == 0 && bare)
            carbons_from_node(srv, bare, el);
        else if (strcmp(el->name, "pep") == 0)
            pep_from_node(srv, bare, el);
        else if (!bare && (strcmp(el->name, "directory") == 0 || strcmp(el->name, "resync") == 0))
            node_directory_from_node(srv, node, el);
        else
            log_warn("node %s: an envelope <%s/> for %s dropped", node, el->name,
                     xml_get_attr(stanza, "to"));
        free(bare);
    }
    jid_clear(&to);
}

int node_ns_from_link(server *srv, const char *node, xml_node *stanza)
{
    const xml_node *el = payload(srv, stanza);
    if (el) {
        open_envelope(srv, node, stanza, el);
        xml_free(stanza);
        return 1;
    }
    const char *type = xml_get_attr(stanza, "type");
    el = xml_first_element(stanza);
    if (strcmp(stanza->name, "iq") != 0 || !el || !str_eq(el->ns, XMLNS_NODE) ||
        !(str_eq(type, "get") || str_eq(type, "set")))
        return 0;
    /* Only from the node itself (domain/node), never relayed for anyone else. */
    char *self = xasprintf("%s/%s", srv->cfg.domain, node);
    int from_node = str_eq(xml_get_attr(stanza, "from"), self);
    free(self);
    if (from_node) {
        node_sm_request(srv, node, stanza); /* the only requests in our namespace yet */
    } else {
        log_warn("node %s: a request in the node namespace not from the node: dropped", node);
        xml_free(stanza);
    }
    return 1;
}
