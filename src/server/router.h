/* router.h - who is online where, and where each stanza goes (RFC 6120 section 10,
 * RFC 6121 section 8). Besides local accounts the server routes to services: domains
 * served by a module inside parleyd (multi-user chat) or by an external component
 * (XEP-0114). A stanza for any other domain goes over a server-to-server link (s2s.h);
 * the stanzas that arrive on those links come in through router_from_remote. */
#ifndef PARLEY_ROUTER_H
#define PARLEY_ROUTER_H

#include "../common/xml.h"
#include "c2s.h"
#include "server.h"

/* Add a bound session under s->user / s->resource. An existing session with the same
 * resource is replaced: it gets a <conflict/> stream error (RFC 6120 7.7.2.2). */
void router_bind(server *srv, c2s *s);
/* Remove a session (on close). */
void router_unbind(server *srv, c2s *s);
/* All sessions of a bare JID (linked through next_resource), or NULL. */
c2s *router_sessions(server *srv, const char *bare);
/* The session of a full JID, or NULL. */
c2s *router_session(server *srv, const char *bare, const char *resource);
/* Does this domain belong to this server? */
int router_is_local_domain(server *srv, const char *domain);

/* Route a stanza that a bound session sent (from already stamped with its full JID).
 * Takes ownership of stanza. */
void router_route(server *srv, c2s *origin, xml_node *stanza);
/* Deliver a stanza on behalf of the server (errors, pushes, presence): to is a JID string,
 * full or bare. Takes ownership of stanza. */
void router_deliver(server *srv, xml_node *stanza);
/* ---- services ---- */

/* Receives every stanza addressed to the service's domain or a JID in it (from already
 * stamped with the sender's full JID); takes ownership of stanza. */
typedef void (*router_service_fn)(server *srv, void *ud, xml_node *stanza);

/* Serve domain (normalised) with deliver. Returns 0, or -1 if the domain is the
 * server's own or already served. */
int router_add_service(server *srv, const char *domain, router_service_fn deliver, void *ud);
void router_remove_service(server *srv, const char *domain);
/* Is domain served by a service right now? */
int router_is_service(server *srv, const char *domain);
/* Call fn for each service domain (for disco#items on the server). */
void router_each_service(server *srv, void (*fn)(void *ud, const char *domain), void *ud);

/* Route a stanza a service (or the server itself) sends: to a local account (messages
 * delivered without a compliance record: a service records what it must itself, once,
 * e.g. a room message per room), to another service, or an IQ answer to the server
 * (iq_out.h). The 'from' attribute must already be set. Takes ownership. */
void router_send(server *srv, xml_node *stanza);

/* A stanza from another domain (an authenticated server link; from and to normalised,
 * to in our domain or a service's). Takes ownership. */
void router_from_remote(server *srv, xml_node *stanza);
/* Is domain someone else's (neither ours nor a service's)? */
int router_is_remote_domain(server *srv, const char *domain);

/* Send an error reply for stanza (if it is not itself an error) back to its sender. */
void router_bounce(server *srv, const xml_node *stanza, const char *etype, const char *condition,
                   const char *text);

#endif
