/* xml.h - the stanza tree: elements with a namespace, attributes and children.
 *
 * Every element carries its namespace URI (resolved by the parser); the serializer
 * writes an xmlns attribute only where an element's namespace differs from its
 * parent's, so trees can be moved between streams (c2s, s2s, components) freely.
 * Elements in the stream namespace are written with the "stream:" prefix that every
 * XMPP stream declares on its root. Attribute names are plain ("to", "type") or
 * "xml:lang"; other namespaced attributes are written with a generated prefix. */
#ifndef PARLEY_XML_H
#define PARLEY_XML_H

#include "buf.h"
#include <stddef.h>

#define XMLNS_STREAM "http://etherx.jabber.org/streams"
#define XMLNS_CLIENT "jabber:client"
#define XMLNS_SERVER "jabber:server"
#define XMLNS_COMPONENT "jabber:component:accept"
#define XMLNS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define XMLNS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define XMLNS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define XMLNS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define XMLNS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define XMLNS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"
#define XMLNS_ROSTER "jabber:iq:roster"
#define XMLNS_VERSION "jabber:iq:version"
#define XMLNS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define XMLNS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define XMLNS_PING "urn:xmpp:ping"
#define XMLNS_DELAY "urn:xmpp:delay"
#define XMLNS_CAPS "http://jabber.org/protocol/caps"
#define XMLNS_ROSTERVER "urn:xmpp:features:rosterver"
#define XMLNS_SASL_CB "urn:xmpp:sasl-cb:0"
#define XMLNS_XML "http://www.w3.org/XML/1998/namespace"

typedef struct xml_attr {
    char *name;  /* "to", "xml:lang", or "{uri}local" for other namespaced attributes */
    char *value;
    struct xml_attr *next;
} xml_attr;

typedef struct xml_node {
    char *ns;   /* element: namespace URI, never NULL ("" for none); text: NULL */
    char *name; /* element: local name; text node: NULL */
    char *text; /* text node: the characters (NUL-terminated); element: NULL */
    size_t text_len;
    xml_attr *attrs;
    struct xml_node *parent;
    struct xml_node *children; /* first child */
    struct xml_node *last;     /* last child */
    struct xml_node *next;     /* next sibling */
} xml_node;

/* A new detached element. ns NULL means "". */
xml_node *xml_new(const char *ns, const char *name);
/* A new element appended to parent; ns NULL means "same namespace as parent". */
xml_node *xml_add_child(xml_node *parent, const char *ns, const char *name);
/* Append a text child (merged with a preceding text child). */
void xml_add_text(xml_node *parent, const char *text, size_t len);
/* Append an existing detached node as the last child. */
void xml_append(xml_node *parent, xml_node *child);
/* Remove node from its parent (it is not freed). */
void xml_detach(xml_node *node);
/* Free a node and its whole subtree (detach it first if it has a parent you keep). */
void xml_free(xml_node *node);
/* Deep copy, detached. */
xml_node *xml_copy(const xml_node *node);

/* Attributes. value NULL in xml_set_attr removes the attribute. */
const char *xml_get_attr(const xml_node *node, const char *name);
void xml_set_attr(xml_node *node, const char *name, const char *value);

/* First element child with this namespace (NULL: any) and local name (NULL: any). */
xml_node *xml_child(const xml_node *node, const char *ns, const char *name);
/* Next element sibling after child with the same filters. */
xml_node *xml_next(const xml_node *child, const char *ns, const char *name);
/* First element child of any name (NULL if none). */
xml_node *xml_first_element(const xml_node *node);
/* Concatenated text of the direct text children, freshly allocated ("" if none). */
char *xml_text(const xml_node *node);
/* Text of the first matching child element, freshly allocated, or NULL if absent. */
char *xml_child_text(const xml_node *node, const char *ns, const char *name);
/* Is this element named name in namespace ns? */
int xml_is(const xml_node *node, const char *ns, const char *name);

/* Append the serialization of node to out. parent_ns is the namespace in scope where it
 * is written (e.g. "jabber:client" inside a c2s stream): xmlns is omitted when equal. */
void xml_serialize(const xml_node *node, const char *parent_ns, buf *out);
/* Convenience: serialize into a fresh string (parent_ns as above). */
char *xml_to_string(const xml_node *node, const char *parent_ns);

/* Parse one complete XML document (a stored stanza) with the same restrictions as the
 * stream parser (no DTD, no entities, size limit max_bytes). default_ns is the namespace
 * assumed for unqualified elements. Returns NULL on any error. */
xml_node *xml_parse_document(const char *text, size_t len, const char *default_ns,
                             size_t max_bytes);

#endif
