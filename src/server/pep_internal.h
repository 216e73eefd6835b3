/* pep_internal.h - what the PEP module's files share (pep.c requests, pep_config.c node
 * configuration, pep_events.c notifications); nothing outside the module includes it. */
#ifndef PARLEY_PEP_INTERNAL_H
#define PARLEY_PEP_INTERNAL_H

#include "../common/xml.h"
#include "caps.h"
#include "pep.h"

#define XMLNS_PUBSUB "http://jabber.org/protocol/pubsub"
#define XMLNS_PUBSUB_OWNER XMLNS_PUBSUB "#owner"
#define XMLNS_PUBSUB_EVENT XMLNS_PUBSUB "#event"
#define XMLNS_PUBSUB_ERRORS XMLNS_PUBSUB "#errors"
#define FORM_PUBLISH_OPTIONS XMLNS_PUBSUB "#publish-options"
#define FORM_NODE_CONFIG XMLNS_PUBSUB "#node_config"
#define XMLNS_DATA "jabber:x:data"

/* Longest node name and item id accepted (node names are usually namespaces). */
#define MAX_NODE_LEN 512
#define MAX_ITEM_ID_LEN 256

struct pep {
    caps_table *caps;
};

/* The server's PEP state, created on first use. */
struct pep *pep_of(server *srv);

/* ---- pep_config.c ----
 * Stored as "max_items=N|max;access_model=presence|open;persist_items=0|1". "max" means
 * the server's pep_max_items, so raising the limit raises it for such nodes too. */
typedef struct node_cfg {
    int max_items; /* 0: "max", the server's limit */
    int open;      /* access model open (else presence) */
    int persist;   /* items are stored */
} node_cfg;

extern const node_cfg pep_default_cfg;

char *pep_cfg_text(const node_cfg *c);
/* Unknown or damaged parts keep their defaults. */
node_cfg pep_cfg_parse(const char *text);
/* Items a node keeps: its own limit, never above the server's. */
int pep_keep_items(server *srv, const node_cfg *c);

enum { OPT_MAX_ITEMS = 1, OPT_ACCESS = 2, OPT_PERSIST = 4 };
/* Apply a data form's fields (FORM_TYPE form_type; x may be NULL) to *c, noting in *given
 * which were set. 0, or -1 with the reason in why. */
int pep_parse_options(server *srv, const xml_node *x, const char *form_type, node_cfg *c,
                      unsigned *given, char *why, size_t len);
/* The first given option on which want and have differ, or NULL. */
const char *pep_cfg_mismatch(unsigned given, const node_cfg *want, const node_cfg *have);
/* <x type='form'> describing c, for configure requests. */
xml_node *pep_config_form(const node_cfg *c);

/* ---- pep_events.c ---- */
/* Does contact receive owner's presence (owner's roster says from or both)? */
int pep_subscribed(server *srv, const char *owner, const char *contact);
/* <item id=...>payload</item> in namespace ns from a stored payload; NULL (logged) if it
 * does not parse. */
xml_node *pep_item_element(server *srv, const char *ns, const char *id, const char *payload);
/* Send an event (child of <event/>, owned) about owner's node to every interested session
 * allowed to see it: the owner's, then contacts with a presence subscription (presence)
 * or anyone on this server (open). */
void pep_notify(server *srv, const char *owner, const char *node, const node_cfg *c,
                xml_node *child);
/* Every node of owner with its configuration text. */
typedef struct node_list {
    char **names;
    char **configs;
    size_t n, cap;
} node_list;
int pep_nodes_of(server *srv, const char *owner, node_list *out);
void pep_node_list_free(node_list *l);

#endif
