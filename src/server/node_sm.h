/* node_sm.h - XEP-0198 resumption across the nodes of a domain (docs/federation.md).
 *
 * A resumption id made on a node names it: "<24 random characters>.<node name>". A client
 * that resumes on another node sends that id there; the node checks its form, that the
 * named node is a live node of this cluster, and asks it over the node link (an IQ in
 * XMLNS_NODE, <handover/>) to hand the session over: the owning node checks the account,
 * lets the session go without ending it and answers with its state (resource, presence,
 * counters, unacknowledged stanzas); the asking node binds the session to the new
 * connection and resumes it. Anything else (unknown or forged id, dead node, no answer in
 * time) is <failed><item-not-found/></failed>, and the client binds afresh. */
#ifndef PARLEY_NODE_SM_H
#define PARLEY_NODE_SM_H

#include "../common/xml.h"
#include "c2s.h"

#include <stdint.h>

/* How long a resumption waits for the owning node's answer. */
#define NODE_SM_TIMEOUT_MS 4000

/* s sent <resume previd h/> for a session not held here. Returns 1 if previd names
 * another live node, which is now asked (s gets <resumed/> or <failed/> later), else 0. */
int node_sm_resume(c2s *s, const char *previd, uint32_t h);
/* A request in XMLNS_NODE from node over its link (takes ownership): answered. */
void node_sm_request(server *srv, const char *node, xml_node *iq);

#endif
