/* node.c - the nodes of one domain (node.h). */
#include "node.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "router.h"

#include <stdlib.h>
#include <string.h>

static int clustered(const server *srv) { return srv->cfg.node_name != NULL; }

int node_init(server *srv) { return 0; }

int node_known(server *srv, const char *name)
{
    return clustered(srv) && config_host_lookup(srv->cfg.nodes, name, NULL, 0, NULL) == 0;
}

int node_address(server *srv, const char *name, char *host, size_t hostlen, int *port)
{
    return config_host_lookup(srv->cfg.nodes, name, host, hostlen, port);
}

int node_route(server *srv, const char *bare, const char *resource, xml_node *stanza)
{
    return 0;
}

int node_copy_to_user(server *srv, const char *bare, const xml_node *stanza, int available_only)
{
    return 0;
}

int node_user_available(server *srv, const char *bare) { return 0; }
void node_session_update(server *srv, const char *full, int available, int priority) {}
void node_session_gone(server *srv, const char *full) {}

void node_from_link(server *srv, const char *node, xml_node *stanza) { xml_free(stanza); }
void node_undeliverable(server *srv, xml_node *stanza) { xml_free(stanza); }
void node_link_up(server *srv, const char *node) {}
void node_link_down(server *srv, const char *node, int outbound) {}
void node_housekeeping(server *srv) {}
void node_shutdown(server *srv) {}
