/* node_ns.h - what the nodes of a domain say to each other in our own namespace
 * XMLNS_NODE (node.h, docs/federation.md): envelopes that carry copies for a user's
 * sessions on the receiving node (carbons, PEP events), and requests (the handover of a
 * XEP-0198 session, node_sm.h). Only node links carry them. */
#ifndef PARLEY_NODE_NS_H
#define PARLEY_NODE_NS_H

#include "../common/xml.h"
#include "server.h"

/* A stanza from node over its link: if it is ours (an envelope or a request), handle it
 * and return 1 (taken); else 0 (still the caller's). */
int node_ns_from_link(server *srv, const char *node, xml_node *stanza);
/* Is stanza one of our envelopes? (One that cannot be delivered is dropped: it was for
 * sessions on the node that is gone.) */
int node_ns_envelope(server *srv, const xml_node *stanza);

#endif
