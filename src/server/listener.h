/* listener.h - listening sockets and accepting connections (with EMFILE shedding):
 * clients, external components and other servers. */
#ifndef PARLEY_LISTENER_H
#define PARLEY_LISTENER_H

#include "server.h"

typedef enum {
    LISTEN_C2S_STARTTLS,
    LISTEN_C2S_DIRECT_TLS,
    LISTEN_COMPONENT_TLS,   /* XEP-0114 components, direct TLS */
    LISTEN_COMPONENT_PLAIN, /* XEP-0114 components, plain (loopback only, config.c) */
    LISTEN_HTTPS,           /* XEP-0363 file transfer, direct TLS (http.c) */
    LISTEN_S2S,             /* server-to-server links (s2s.h) */
} listen_kind;

/* Listen on address:port for kind; the fd is recorded in srv->listen_fds.
 * Returns 0, or -1 after logging why. */
int listener_open(server *srv, const char *address, int port, listen_kind kind);
void listener_close_all(server *srv);

#endif
