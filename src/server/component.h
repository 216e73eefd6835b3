/* component.h - XEP-0114 external components: the jabber:component:accept stream on
 * component_port (direct TLS, or plain on loopback), the handshake against the
 * configured secret, and the component's domain in the router's service table while it
 * is connected. The compliance server (docs/verdict-protocol.md) is one of them. */
#ifndef PARLEY_COMPONENT_H
#define PARLEY_COMPONENT_H

#include "server.h"

/* Take over an accepted, non-blocking fd on the component port. tls: begin direct TLS. */
void component_accept(server *srv, int fd, const char *peer, int tls);
/* Timer: handshake time-outs and idle pings. */
void component_housekeeping(server *srv);
/* Server shutdown: every component gets <system-shutdown/> and is closed. */
void component_shutdown_all(server *srv);

#endif
