/* xmlstream.c - incremental XMPP stream parser on expat, and the one-shot document
 * parser (xml_parse_document) that shares its restrictions and tree building.
 *
 * This is the only place expat is configured: both modes use the same handlers, so
 * the RFC 6120 section 11.1 restrictions (no DOCTYPE, entity declarations, comments
 * or processing instructions) and the size limit cannot drift apart.
 *
 * Size limit: expat buffers an incomplete token (a start tag with a megabyte of
 * attributes) without calling us, so handler checks alone cannot bound memory. Input
 * is therefore fed to expat in small chunks, and between chunks the bytes fed since
 * the current top-level item began (mark) are compared with the limit; handlers check
 * the same distance plus the bytes accumulated in the tree under construction.
 *
 * Idle memory: an expat parser costs about 9.5 KiB once it has seen a stream header
 * (pools, hash tables, its input buffer), more than the whole per-session budget. So
 * whenever a feed ends exactly between stanzas, the parser is freed; the next feed
 * creates a new one and primes it with a synthetic copy of the stream header's start
 * tag (same qualified name, same namespace declarations), which is not reported
 * again. An idle stream then holds only this struct, the header tree and that copy.
 * Creating and priming a parser costs about as much as parsing a small message, so a
 * busy stream can keep its parser (xmlstream_keep_parser) and let its owner release
 * it once the stream has gone quiet (xmlstream_release_parser).
 *
 * Rules for handlers: they run inside xmlstream_feed and must not call xmlstream_free
 * on the stream that is calling them (expat is still on the stack); to end the
 * stream return XS_STOP and free it after xmlstream_feed returns. Calling
 * xmlstream_reset from a handler is allowed and acts like returning XS_RESTART. */
#include "xmlstream.h"
#include "log.h"
#include "util.h"

#include <expat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Expat joins namespace URI, local name and prefix ("triplets") with this byte. 0xFF
 * never occurs in UTF-8, so it cannot be part of a URI or a name. */
#define NS_SEP '\xFF'

/* Bytes handed to expat per XML_Parse call. Small, because expat's input buffer grows
 * to chunk + 1 KiB of context (+ any partial token) and because the size limit is
 * checked between chunks. */
#define FEED_CHUNK 512

struct xmlstream {
    XML_Parser p;           /* NULL while idle: created on the next feed */
    xmlstream_handlers h;
    void *ud;
    size_t max;             /* stanza (stream) or document (document mode) size limit */
    xml_node *root;         /* stream mode: the header; document mode: the result */
    xml_node *cur;          /* innermost open element of the tree being built */
    char *decl_ns;          /* default namespace declared on the root start tag */
    buf decls;              /* the root's namespace declarations, while it is parsed */
    char *resume;           /* synthetic root start tag to prime a new parser with */
    char *errtext;          /* reason for status, allocated only on error */
    const char *default_ns; /* document mode: namespace of unqualified elements */
    unsigned long salt;     /* expat hash salt, per stream (0: draw a new one) */
    int64_t fed;            /* bytes given to the current expat parser */
    int64_t mark;           /* where the current top-level item (or gap) began */
    int64_t top_tag_end;    /* end of the current top-level element's start tag */
    size_t tree_bytes;      /* names, values and text in the tree being built */
    unsigned depth;         /* open elements, the stream root included */
    unsigned default_decls; /* default namespace declarations in scope */
    unsigned char status;   /* xs_status; sticky once not XS_OK */
    unsigned char pending;  /* xs_action a handler asked for, acted on after XML_Parse */
    unsigned char document; /* 1: xml_parse_document mode */
    unsigned char in_parse; /* inside XML_Parse: expat must not be freed now */
    unsigned char resuming; /* parsing the synthetic root: report nothing */
    unsigned char keep;     /* do not free the parser between stanzas by itself */
};

static void set_status(xmlstream *xs, xs_status st, char *text)
{
    if (xs->status != XS_OK || xs->pending != XS_CONTINUE) {
        free(text); /* the first reason wins */
        return;
    }
    xs->status = (unsigned char)st;
    free(xs->errtext);
    xs->errtext = text;
}

/* From inside a handler: record the error and make expat return at once. */
static void fail(xmlstream *xs, xs_status st, char *text)
{
    set_status(xs, st, text);
    XML_StopParser(xs->p, XML_FALSE);
}

static int halted(const xmlstream *xs)
{
    return xs->status != XS_OK || xs->pending != XS_CONTINUE;
}

static void act(xmlstream *xs, xs_action a)
{
    if (a == XS_CONTINUE || halted(xs))
        return;
    xs->pending = (unsigned char)a;
    XML_StopParser(xs->p, XML_FALSE);
}

static void too_big(xmlstream *xs, int from_handler)
{
    char *text = !xs->document && xs->depth == 0
                     ? xasprintf("stream header exceeds %zu bytes", xs->max)
                     : xasprintf("%s exceeds %zu bytes", xs->document ? "document" : "stanza",
                                 xs->max);
    if (from_handler)
        fail(xs, XS_ERR_TOO_BIG, text);
    else
        set_status(xs, XS_ERR_TOO_BIG, text);
}

/* The tree under construction, if any, is freed (errors, resets, free). */
static void drop_partial(xmlstream *xs)
{
    xml_node *n = xs->cur;
    if (!n)
        return;
    while (n->parent)
        n = n->parent;
    xml_free(n);
    xs->cur = NULL;
}

/* Expat's "local", "uri<SEP>local" or "uri<SEP>local<SEP>prefix", split in place. */
typedef struct {
    const char *uri; /* NULL: unqualified */
    size_t uri_len;
    const char *local;
    size_t local_len;
    const char *prefix; /* NULL: none */
} qname;

static qname split_name(const char *full)
{
    qname q = {NULL, 0, full, strlen(full), NULL};
    const char *sep = strchr(full, NS_SEP);
    if (!sep)
        return q;
    q.uri = full;
    q.uri_len = (size_t)(sep - full);
    q.local = sep + 1;
    const char *sep2 = strchr(q.local, NS_SEP);
    q.local_len = sep2 ? (size_t)(sep2 - q.local) : strlen(q.local);
    q.prefix = sep2 ? sep2 + 1 : NULL;
    return q;
}

static int uri_is(const qname *q, const char *uri)
{
    return q->uri && q->uri_len == strlen(uri) && memcmp(q->uri, uri, q->uri_len) == 0;
}

static xml_node *element_from_name(const qname *q, const char *unqualified_ns)
{
    xml_node *n = xcalloc(1, sizeof(*n));
    n->ns = q->uri ? xstrndup(q->uri, q->uri_len) : xstrdup(unqualified_ns);
    n->name = xstrndup(q->local, q->local_len);
    return n;
}

/* Attribute names as xml.h spells them: "local", "xml:local" or "{uri}local". */
static char *attr_name(const qname *q)
{
    if (!q->uri)
        return xstrndup(q->local, q->local_len);
    if (uri_is(q, XMLNS_XML))
        return xasprintf("xml:%.*s", (int)q->local_len, q->local);
    return xasprintf("{%.*s}%.*s", (int)q->uri_len, q->uri, (int)q->local_len, q->local);
}

/* Attributes are appended directly: expat has already rejected duplicates (by
 * expanded name), and xml_set_attr's scan would make many attributes quadratic. */
static size_t add_attrs(xml_node *n, const XML_Char **atts)
{
    size_t bytes = 0;
    xml_attr **tail = &n->attrs;
    while (*tail)
        tail = &(*tail)->next;
    for (size_t i = 0; atts[i] && atts[i + 1]; i += 2) {
        qname q = split_name(atts[i]);
        xml_attr *a = xmalloc(sizeof(*a));
        a->name = attr_name(&q);
        a->value = xstrdup(atts[i + 1]);
        a->next = NULL;
        *tail = a;
        tail = &a->next;
        /* Count what the source had to spell out: never more than its bytes. */
        bytes += q.local_len + strlen(atts[i + 1]);
    }
    return bytes;
}

static void open_root(xmlstream *xs, const XML_Char *name, const XML_Char **atts, int64_t end)
{
    if (xs->resuming) {
        xs->depth = 1;
        xs->mark = end;
        return;
    }
    qname q = split_name(name);
    if (!uri_is(&q, XMLNS_STREAM) || q.local_len != 6 || memcmp(q.local, "stream", 6) != 0) {
        fail(xs, XS_ERR_BAD_NS,
             xstrdup("root element is not <stream:stream/> in " XMLNS_STREAM));
        return;
    }
    if (end - xs->mark > (int64_t)xs->max) {
        too_big(xs, 1);
        return;
    }
    xml_node *root = element_from_name(&q, "");
    /* The stream's default namespace is not an attribute to expat; callers need it to
     * tell c2s from s2s and component streams, so it is exposed as "xmlns". */
    if (xs->decl_ns) {
        xml_attr *a = xmalloc(sizeof(*a));
        a->name = xstrdup("xmlns");
        a->value = xs->decl_ns;
        a->next = NULL;
        root->attrs = a;
        xs->decl_ns = NULL;
    }
    add_attrs(root, atts);
    xml_free(xs->root);
    xs->root = root;
    /* What a new parser must see to continue this stream: the same qualified name
     * (so </stream:stream> matches) with the same namespace declarations. */
    free(xs->resume);
    const char *decls = xs->decls.data ? xs->decls.data : "";
    xs->resume = q.prefix ? xasprintf("<%s:stream%s>", q.prefix, decls)
                          : xasprintf("<stream%s>", decls);
    buf_free(&xs->decls);
    xs->depth = 1;
    xs->mark = end;
    if (xs->h.stream_open)
        act(xs, xs->h.stream_open(xs->ud, root));
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xmlstream *xs = ud;
    if (halted(xs))
        return;
    int64_t idx = XML_GetCurrentByteIndex(xs->p);
    int64_t end = idx + XML_GetCurrentByteCount(xs->p);
    if (!xs->document && xs->depth == 0) {
        open_root(xs, name, atts, end);
        return;
    }
    if (!xs->cur) {
        xs->mark = idx;
        xs->top_tag_end = end;
        xs->tree_bytes = 0;
    }
    /* An unqualified element under an explicit xmlns="" has no namespace; without any
     * default declaration in scope it gets the document's default namespace. */
    const char *unqualified = xs->document && !xs->default_decls ? xs->default_ns : "";
    qname q = split_name(name);
    xml_node *n = element_from_name(&q, unqualified);
    xs->tree_bytes += strlen(n->name) + add_attrs(n, atts);
    if (xs->cur)
        xml_append(xs->cur, n);
    xs->cur = n;
    xs->depth++;
    if (end - xs->mark > (int64_t)xs->max || xs->tree_bytes > xs->max)
        too_big(xs, 1);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    xmlstream *xs = ud;
    if (halted(xs))
        return;
    xml_node *n = xs->cur;
    if (!n) {
        /* Only the stream root can close with no tree open. */
        xs->depth = 0;
        if (xs->h.stream_close)
            act(xs, xs->h.stream_close(xs->ud));
        return;
    }
    xs->cur = n->parent;
    xs->depth--;
    if (n->parent)
        return;
    int64_t count = XML_GetCurrentByteCount(xs->p);
    /* Expat reports no bytes for the end of an empty element <a/>. */
    int64_t end = count ? XML_GetCurrentByteIndex(xs->p) + count : xs->top_tag_end;
    if (end - xs->mark > (int64_t)xs->max) {
        xml_free(n);
        too_big(xs, 1);
        return;
    }
    xs->mark = end;
    if (xs->document)
        xs->root = n;
    else if (xs->h.stanza)
        act(xs, xs->h.stanza(xs->ud, n));
    else
        xml_free(n);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    xmlstream *xs = ud;
    if (halted(xs))
        return;
    int64_t end = XML_GetCurrentByteIndex(xs->p) + XML_GetCurrentByteCount(xs->p);
    if (!xs->cur) {
        xs->mark = end; /* whitespace keepalive between stanzas: not kept */
        return;
    }
    xs->tree_bytes += (size_t)len;
    if (end - xs->mark > (int64_t)xs->max || xs->tree_bytes > xs->max) {
        too_big(xs, 1);
        return;
    }
    xml_add_text(xs->cur, s, (size_t)len);
}

static void XMLCALL on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    xmlstream *xs = ud;
    if (halted(xs))
        return;
    if (!prefix)
        xs->default_decls++;
    if (xs->document || xs->depth != 0 || xs->resuming)
        return;
    buf_appendf(&xs->decls, " xmlns%s%s=\"", prefix ? ":" : "", prefix ? prefix : "");
    const char *value = uri ? uri : "";
    buf_append_xml_escaped(&xs->decls, value, strlen(value), 1);
    buf_append_str(&xs->decls, "\"");
    if (!prefix) {
        free(xs->decl_ns);
        xs->decl_ns = xstrdup(uri ? uri : "");
    }
}

static void XMLCALL on_ns_end(void *ud, const XML_Char *prefix)
{
    xmlstream *xs = ud;
    if (!prefix && xs->default_decls > 0)
        xs->default_decls--;
}

static void restricted(xmlstream *xs, const char *what)
{
    fail(xs, XS_ERR_RESTRICTED, xasprintf("%s not allowed in XMPP", what));
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    restricted(ud, "DOCTYPE is");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    restricted(ud, "entity declarations are");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
    restricted(ud, "comments are");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    restricted(ud, "processing instructions are");
}

static void XMLCALL on_xmldecl(void *ud, const XML_Char *version, const XML_Char *encoding,
                               int standalone)
{
    xmlstream *xs = ud;
    if (encoding && strcasecmp(encoding, "UTF-8") != 0) {
        char enc[64];
        /* bounded: the name is peer-controlled and the error text ends up in logs */
        snprintf(enc, sizeof(enc), "%s", encoding);
        fail(xs, XS_ERR_RESTRICTED,
             xasprintf("encoding %s is not allowed in XMPP (UTF-8 only)", enc));
    }
}

static void parser_create(xmlstream *xs)
{
    /* Forcing UTF-8 makes expat ignore any other declared or BOM-sniffed encoding. */
    xs->p = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!xs->p) {
        log_error("out of memory creating an XML parser");
        abort();
    }
    /* One random salt per stream, kept across idle periods: a parser that was freed
     * and re-created is the same stream to an attacker, and drawing from the CSPRNG
     * on every wake-up would cost more than parsing a small stanza. */
    while (!xs->salt)
        random_bytes(&xs->salt, sizeof(xs->salt));
    XML_SetHashSalt(xs->p, xs->salt);
    XML_SetUserData(xs->p, xs);
    XML_SetReturnNSTriplet(xs->p, XML_TRUE); /* the root's prefix, for resuming */
    XML_SetElementHandler(xs->p, on_start, on_end);
    XML_SetCharacterDataHandler(xs->p, on_text);
    XML_SetNamespaceDeclHandler(xs->p, on_ns_start, on_ns_end);
    XML_SetStartDoctypeDeclHandler(xs->p, on_doctype);
    XML_SetEntityDeclHandler(xs->p, on_entity_decl);
    XML_SetCommentHandler(xs->p, on_comment);
    XML_SetProcessingInstructionHandler(xs->p, on_pi);
    XML_SetXmlDeclHandler(xs->p, on_xmldecl);
    XML_SetParamEntityParsing(xs->p, XML_PARAM_ENTITY_PARSING_NEVER);
#ifdef HAVE_XML_SETREPARSEDEFERRALENABLED
    /* Reparse deferral would hold back a stanza completed by a small read until more
     * bytes arrive; in an interactive protocol they may never come. */
    XML_SetReparseDeferralEnabled(xs->p, XML_FALSE);
#endif
    xs->fed = 0;
    xs->mark = 0;
    xs->top_tag_end = 0;
    xs->tree_bytes = 0;
    xs->depth = 0;
    xs->default_decls = 0;
}

/* Expect a new stream. The parser is freed rather than reset (XML_ParserReset keeps
 * its buffers) and created on the next feed. Never called while expat is running. */
static void parser_restart(xmlstream *xs)
{
    XML_ParserFree(xs->p);
    xs->p = NULL;
    drop_partial(xs);
    free(xs->decl_ns);
    xs->decl_ns = NULL;
    free(xs->resume);
    xs->resume = NULL;
    buf_free(&xs->decls);
    xs->pending = XS_CONTINUE;
    xs->depth = 0;
    xs->salt = 0;
}

/* A parser for the next bytes: fresh, or primed to continue an open stream. */
static void parser_wake(xmlstream *xs)
{
    int open = xs->depth == 1 && xs->resume;
    parser_create(xs);
    if (!open)
        return;
    size_t n = strlen(xs->resume);
    xs->resuming = 1;
    xs->in_parse = 1;
    enum XML_Status rc = XML_Parse(xs->p, xs->resume, (int)n, XML_FALSE);
    xs->in_parse = 0;
    xs->resuming = 0;
    xs->fed = (int64_t)n;
    if (rc != XML_STATUS_OK || xs->depth != 1) /* cannot happen: it parsed before */
        set_status(xs, XS_ERR_XML, xstrdup("internal error resuming the stream"));
}

/* Between stanzas with every byte consumed (mark == fed: the last event ended at the
 * end of the input, so expat holds no partial token), the parser can go. */
static int sleep_now(xmlstream *xs)
{
    if (xs->document || !xs->p || xs->in_parse || !xs->resume || xs->depth != 1 || xs->cur ||
        xs->mark != xs->fed || xs->status != XS_OK || xs->pending != XS_CONTINUE)
        return 0;
    XML_ParserFree(xs->p);
    xs->p = NULL;
    return 1;
}

static void maybe_sleep(xmlstream *xs)
{
    if (!xs->keep)
        sleep_now(xs);
}

void xmlstream_keep_parser(xmlstream *xs, int keep)
{
    xs->keep = keep ? 1 : 0;
}

int xmlstream_release_parser(xmlstream *xs)
{
    return sleep_now(xs);
}

static void expat_error(xmlstream *xs)
{
    enum XML_Error code = XML_GetErrorCode(xs->p);
    /* RFC 6120 11.1 lists entity references other than the predefined ones among the
     * restricted features, so an undefined entity is restricted-xml, not just invalid. */
    xs_status st = code == XML_ERROR_UNDEFINED_ENTITY ? XS_ERR_RESTRICTED : XS_ERR_XML;
    set_status(xs, st,
               xasprintf("%s at line %lu, column %lu", XML_ErrorString(code),
                         (unsigned long)XML_GetCurrentLineNumber(xs->p),
                         (unsigned long)XML_GetCurrentColumnNumber(xs->p)));
}

static xs_status feed(xmlstream *xs, const char *data, size_t len)
{
    if (xs->status != XS_OK || len == 0)
        return (xs_status)xs->status;
    if (!xs->p) {
        parser_wake(xs);
        if (xs->status != XS_OK)
            return (xs_status)xs->status;
    }
    xs->in_parse = 1;
    while (len > 0) {
        size_t n = len < FEED_CHUNK ? len : FEED_CHUNK;
        enum XML_Status rc = XML_Parse(xs->p, data, (int)n, XML_FALSE);
        xs->fed += (int64_t)n;
        data += n;
        len -= n;
        if (xs->pending != XS_CONTINUE || xs->status != XS_OK)
            break;
        if (rc != XML_STATUS_OK) {
            expat_error(xs);
            break;
        }
        if (xs->fed - xs->mark > (int64_t)xs->max) {
            too_big(xs, 0);
            break;
        }
    }
    xs->in_parse = 0;
    if (xs->pending == XS_RESTART) {
        parser_restart(xs); /* the rest of the input is dropped with the old parser */
        return XS_RESTARTED;
    }
    if (xs->pending == XS_STOP) {
        xs->pending = XS_CONTINUE;
        set_status(xs, XS_STOPPED, xstrdup("stopped by the application"));
    }
    maybe_sleep(xs);
    return (xs_status)xs->status;
}

static void init(xmlstream *xs)
{
    memset(xs, 0, sizeof(*xs));
    xs->status = XS_OK;
    xs->pending = XS_CONTINUE;
    buf_init(&xs->decls);
}

static void cleanup(xmlstream *xs)
{
    XML_ParserFree(xs->p); /* accepts NULL */
    drop_partial(xs);
    xml_free(xs->root);
    free(xs->decl_ns);
    free(xs->resume);
    buf_free(&xs->decls);
    free(xs->errtext);
}

xmlstream *xmlstream_new(const xmlstream_handlers *handlers, void *ud, size_t max_stanza)
{
    xmlstream *xs = xmalloc(sizeof(*xs));
    init(xs);
    if (handlers)
        xs->h = *handlers;
    xs->ud = ud;
    xs->max = max_stanza;
    return xs;
}

void xmlstream_free(xmlstream *xs)
{
    if (!xs)
        return;
    cleanup(xs);
    free(xs);
}

xs_status xmlstream_feed(xmlstream *xs, const char *data, size_t len)
{
    return feed(xs, data, len);
}

void xmlstream_reset(xmlstream *xs)
{
    if (xs->in_parse) {
        /* Called from a handler: expat is on the stack, so restart once it returns. */
        act(xs, XS_RESTART);
        return;
    }
    xs->status = XS_OK;
    free(xs->errtext);
    xs->errtext = NULL;
    parser_restart(xs);
}

const char *xmlstream_error_text(const xmlstream *xs)
{
    return xs->errtext ? xs->errtext : "no error";
}

xml_node *xml_parse_document(const char *text, size_t len, const char *default_ns,
                             size_t max_bytes)
{
    if (!text || len > max_bytes)
        return NULL;
    xmlstream xs;
    init(&xs);
    xs.document = 1;
    xs.default_ns = default_ns ? default_ns : "";
    xs.max = max_bytes;
    parser_create(&xs);
    if (feed(&xs, text, len) == XS_OK) {
        xs.in_parse = 1;
        if (XML_Parse(xs.p, "", 0, XML_TRUE) != XML_STATUS_OK && xs.status == XS_OK)
            expat_error(&xs);
        xs.in_parse = 0;
    }
    xml_node *doc = NULL;
    if (xs.status == XS_OK && !xs.cur) {
        doc = xs.root;
        xs.root = NULL;
    }
    cleanup(&xs);
    return doc;
}
