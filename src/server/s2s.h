/* s2s.h - server-to-server links (RFC 6120): federation with other XMPP domains, and the
 * links between the nodes of one domain (node.h). One outbound stream per remote domain
 * carries our stanzas there; inbound streams carry the peer's to us. Every link runs
 * STARTTLS and is authenticated with SASL EXTERNAL on a verified certificate (XEP-0178),
 * or with dialback (XEP-0220) where the configuration allows it (docs/federation.md). */
#ifndef PARLEY_S2S_H
#define PARLEY_S2S_H

#include "../common/xml.h"
#include "server.h"

/* TLS contexts and state, from srv->cfg. 0, or -1 after logging why. */
int s2s_init(server *srv);
/* Take over an accepted, non-blocking fd on s2s_port. */
void s2s_accept(server *srv, int fd, const char *peer);
/* May this server exchange stanzas with domain (federation on, allow and deny lists)? */
int s2s_allowed(server *srv, const char *domain);
/* Send a stanza to a remote domain ('from' and 'to' set; 'to' not ours): over the
 * domain's link, queued while it connects; bounced to the sender if that fails. Takes
 * ownership. */
void s2s_send(server *srv, xml_node *stanza);
/* Send a stanza to another node of this domain over the node link (node.h). Takes
 * ownership; if the link fails the stanza goes to node_undeliverable. */
void s2s_node_send(server *srv, const char *node, xml_node *stanza);
/* Timer: connect and handshake time-outs, idle links, keepalives. */
void s2s_housekeeping(server *srv);
/* Shutdown: queued stanzas bounced, every link closed with <system-shutdown/>. */
void s2s_shutdown_all(server *srv);
void s2s_free(server *srv);

#endif
