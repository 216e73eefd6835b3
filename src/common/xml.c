/* xml.c - the stanza tree: construction, lookup, copy and serialization.
 *
 * Trees come from peers, so nothing here recurses: a 256 KiB stanza can nest tens of
 * thousands of elements deep, and walking it recursively would let a peer exhaust the
 * stack. Free, copy and serialize walk the tree iteratively through parent pointers.
 *
 * xml_parse_document is implemented in xmlstream.c, the one place expat is set up. */
#include "xml.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Text storage grows in powers of two so that expat delivering a long text in many
 * small pieces costs amortized O(n), not O(n^2). The capacity is derived from text_len,
 * so every text buffer must be allocated through text_alloc_size. */
static size_t text_alloc_size(size_t len)
{
    size_t cap = 16;
    while (cap < len + 1)
        cap *= 2;
    return cap;
}

static xml_node *node_new(const char *ns, const char *name)
{
    xml_node *n = xcalloc(1, sizeof(*n));
    n->ns = xstrdup(ns ? ns : "");
    n->name = xstrdup(name);
    return n;
}

xml_node *xml_new(const char *ns, const char *name)
{
    return node_new(ns, name);
}

void xml_append(xml_node *parent, xml_node *child)
{
    child->parent = parent;
    child->next = NULL;
    if (parent->last)
        parent->last->next = child;
    else
        parent->children = child;
    parent->last = child;
}

xml_node *xml_add_child(xml_node *parent, const char *ns, const char *name)
{
    if (!parent)
        return node_new(ns, name);
    xml_node *n = node_new(ns ? ns : parent->ns, name);
    xml_append(parent, n);
    return n;
}

void xml_add_text(xml_node *parent, const char *text, size_t len)
{
    if (len == 0)
        return;
    xml_node *t = parent->last;
    if (t && t->name == NULL) {
        size_t cap = text_alloc_size(t->text_len);
        if (t->text_len + len + 1 > cap)
            t->text = xrealloc(t->text, text_alloc_size(t->text_len + len));
        memcpy(t->text + t->text_len, text, len);
        t->text_len += len;
        t->text[t->text_len] = '\0';
        return;
    }
    t = xcalloc(1, sizeof(*t));
    t->text = xmalloc(text_alloc_size(len));
    memcpy(t->text, text, len);
    t->text[len] = '\0';
    t->text_len = len;
    xml_append(parent, t);
}

void xml_detach(xml_node *node)
{
    xml_node *p = node->parent;
    if (!p)
        return;
    xml_node *prev = NULL;
    for (xml_node *c = p->children; c && c != node; c = c->next)
        prev = c;
    if (prev)
        prev->next = node->next;
    else
        p->children = node->next;
    if (p->last == node)
        p->last = prev;
    node->parent = NULL;
    node->next = NULL;
}

static void attrs_free(xml_attr *a)
{
    while (a) {
        xml_attr *next = a->next;
        free(a->name);
        free(a->value);
        free(a);
        a = next;
    }
}

static void node_free_one(xml_node *n)
{
    free(n->ns);
    free(n->name);
    free(n->text);
    attrs_free(n->attrs);
    free(n);
}

void xml_free(xml_node *node)
{
    if (!node)
        return;
    /* Post-order walk confined to node's subtree; node's own parent and siblings are
     * never touched (callers detach first when they keep the parent). */
    xml_node *n = node;
    for (;;) {
        while (n->children)
            n = n->children;
        if (n == node) {
            node_free_one(n);
            return;
        }
        xml_node *p = n->parent;
        p->children = n->next;
        node_free_one(n);
        n = p;
    }
}

static xml_attr *attr_copy_list(const xml_attr *a)
{
    xml_attr *head = NULL, **tail = &head;
    for (; a; a = a->next) {
        xml_attr *c = xmalloc(sizeof(*c));
        c->name = xstrdup(a->name);
        c->value = xstrdup(a->value);
        c->next = NULL;
        *tail = c;
        tail = &c->next;
    }
    return head;
}

static xml_node *copy_one(const xml_node *n)
{
    if (!n->name) {
        xml_node *t = xcalloc(1, sizeof(*t));
        t->text = xmalloc(text_alloc_size(n->text_len));
        memcpy(t->text, n->text, n->text_len);
        t->text[n->text_len] = '\0';
        t->text_len = n->text_len;
        return t;
    }
    xml_node *c = node_new(n->ns, n->name);
    c->attrs = attr_copy_list(n->attrs);
    return c;
}

xml_node *xml_copy(const xml_node *node)
{
    if (!node)
        return NULL;
    xml_node *root = copy_one(node);
    const xml_node *src = node;
    xml_node *dst = root;
    /* Pre-order walk of the source with dst tracking the copy of src. */
    for (;;) {
        if (src->children) {
            src = src->children;
            xml_node *c = copy_one(src);
            xml_append(dst, c);
            dst = c;
            continue;
        }
        while (src != node && !src->next) {
            src = src->parent;
            dst = dst->parent;
        }
        if (src == node)
            return root;
        src = src->next;
        xml_node *c = copy_one(src);
        xml_append(dst->parent, c);
        dst = c;
    }
}

const char *xml_get_attr(const xml_node *node, const char *name)
{
    for (const xml_attr *a = node->attrs; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a->value;
    return NULL;
}

void xml_set_attr(xml_node *node, const char *name, const char *value)
{
    xml_attr **pp = &node->attrs;
    for (; *pp; pp = &(*pp)->next) {
        xml_attr *a = *pp;
        if (strcmp(a->name, name) != 0)
            continue;
        if (value) {
            char *v = xstrdup(value);
            free(a->value);
            a->value = v;
        } else {
            *pp = a->next;
            free(a->name);
            free(a->value);
            free(a);
        }
        return;
    }
    if (!value)
        return;
    xml_attr *a = xmalloc(sizeof(*a));
    a->name = xstrdup(name);
    a->value = xstrdup(value);
    a->next = NULL;
    *pp = a;
}

static int matches(const xml_node *n, const char *ns, const char *name)
{
    return n->name && (!ns || strcmp(n->ns, ns) == 0) && (!name || strcmp(n->name, name) == 0);
}

xml_node *xml_child(const xml_node *node, const char *ns, const char *name)
{
    for (xml_node *c = node->children; c; c = c->next)
        if (matches(c, ns, name))
            return c;
    return NULL;
}

xml_node *xml_next(const xml_node *child, const char *ns, const char *name)
{
    for (xml_node *c = child->next; c; c = c->next)
        if (matches(c, ns, name))
            return c;
    return NULL;
}

xml_node *xml_first_element(const xml_node *node)
{
    return xml_child(node, NULL, NULL);
}

char *xml_text(const xml_node *node)
{
    buf b;
    buf_init(&b);
    for (const xml_node *c = node->children; c; c = c->next)
        if (!c->name)
            buf_append(&b, c->text, c->text_len);
    return buf_steal(&b);
}

char *xml_child_text(const xml_node *node, const char *ns, const char *name)
{
    xml_node *c = xml_child(node, ns, name);
    return c ? xml_text(c) : NULL;
}

int xml_is(const xml_node *node, const char *ns, const char *name)
{
    return node && node->name && str_eq(node->ns, ns) && str_eq(node->name, name);
}

/* ---- serialization ---- */

static int is_stream_ns(const xml_node *n)
{
    return strcmp(n->ns, XMLNS_STREAM) == 0;
}

/* Namespaces written with a fixed prefix instead of a default namespace: the stream
 * namespace (declared on every stream root) and the predeclared xml namespace, which
 * may never be made the default namespace. */
static const char *fixed_prefix(const xml_node *n)
{
    if (is_stream_ns(n))
        return "stream:";
    if (strcmp(n->ns, XMLNS_XML) == 0)
        return "xml:";
    return NULL;
}

/* The default namespace in scope for n's children. Elements written with the stream:
 * prefix leave the default namespace alone, except that a stream root carries the
 * stream's default namespace as its "xmlns" attribute (as the parser reports it). */
static const char *scope_for_children(const xml_node *n, const xml_node *top, const char *top_ns)
{
    for (;;) {
        if (!fixed_prefix(n))
            return n->ns;
        const char *x = xml_get_attr(n, "xmlns");
        if (x)
            return x;
        if (n == top)
            return top_ns;
        n = n->parent;
    }
}

static void write_attr(buf *out, const char *name, const char *value)
{
    buf_append_str(out, " ");
    buf_append_str(out, name);
    buf_append_str(out, "=\"");
    buf_append_xml_escaped(out, value, strlen(value), 1);
    buf_append_str(out, "\"");
}

static void write_attrs(const xml_node *n, buf *out)
{
    unsigned prefix = 0;
    int stream = is_stream_ns(n);
    for (const xml_attr *a = n->attrs; a; a = a->next) {
        const char *name = a->name;
        /* An element's namespace is its ns field; stray xmlns attributes would contradict
         * it. Only a stream root may carry "xmlns" (its declared default namespace). */
        if (strncmp(name, "xmlns", 5) == 0 && (name[5] == '\0' || name[5] == ':')) {
            if (stream && name[5] == '\0')
                write_attr(out, name, a->value);
            continue;
        }
        if (name[0] != '{') {
            write_attr(out, name, a->value);
            continue;
        }
        /* "{uri}local": local names cannot contain '}', so split at the last one. */
        const char *close = strrchr(name, '}');
        if (!close || close[1] == '\0')
            continue; /* not a valid name; writing it would produce broken XML */
        size_t ulen = (size_t)(close - name - 1);
        const char *local = close + 1;
        if (ulen == 0) {
            write_attr(out, local, a->value);
            continue;
        }
        if (ulen == strlen(XMLNS_XML) && memcmp(name + 1, XMLNS_XML, ulen) == 0) {
            /* The xml prefix is predeclared and may not be bound to anything else. */
            buf_append_str(out, " xml:");
            buf_append_str(out, local);
            buf_append_str(out, "=\"");
        } else {
            prefix++;
            buf_appendf(out, " xmlns:p%u=\"", prefix);
            buf_append_xml_escaped(out, name + 1, ulen, 1);
            buf_appendf(out, "\" p%u:%s=\"", prefix, local);
        }
        buf_append_xml_escaped(out, a->value, strlen(a->value), 1);
        buf_append_str(out, "\"");
    }
}

static void write_start(const xml_node *n, const char *ctx_ns, buf *out)
{
    buf_append_str(out, "<");
    const char *prefix = fixed_prefix(n);
    if (prefix) {
        buf_append_str(out, prefix);
        buf_append_str(out, n->name);
        /* The stream root is where the stream: prefix is declared. */
        if (is_stream_ns(n) && strcmp(n->name, "stream") == 0)
            write_attr(out, "xmlns:stream", XMLNS_STREAM);
    } else {
        buf_append_str(out, n->name);
        if (strcmp(n->ns, ctx_ns) != 0)
            write_attr(out, "xmlns", n->ns);
    }
    write_attrs(n, out);
    buf_append_str(out, n->children ? ">" : "/>");
}

static void write_end(const xml_node *n, buf *out)
{
    if (!n->children)
        return;
    buf_append_str(out, "</");
    const char *prefix = fixed_prefix(n);
    if (prefix)
        buf_append_str(out, prefix);
    buf_append_str(out, n->name);
    buf_append_str(out, ">");
}

void xml_serialize(const xml_node *node, const char *parent_ns, buf *out)
{
    if (!node)
        return;
    const char *top_ns = parent_ns ? parent_ns : "";
    const xml_node *n = node;
    const char *ctx = top_ns; /* default namespace in scope where n is written */
    for (;;) {
        if (!n->name) {
            buf_append_xml_escaped(out, n->text, n->text_len, 0);
        } else {
            write_start(n, ctx, out);
            if (n->children) {
                ctx = scope_for_children(n, node, top_ns);
                n = n->children;
                continue;
            }
        }
        /* n is finished: climb while no next sibling, closing the parents. */
        while (n != node && !n->next) {
            n = n->parent;
            write_end(n, out);
        }
        if (n == node)
            return;
        n = n->next;
        ctx = scope_for_children(n->parent, node, top_ns);
    }
}

char *xml_to_string(const xml_node *node, const char *parent_ns)
{
    buf b;
    buf_init(&b);
    xml_serialize(node, parent_ns, &b);
    return buf_steal(&b);
}
