/* xmlstream.h - incremental XMPP stream parser on expat.
 *
 * Fed raw bytes as they arrive, it reports the stream header, each complete top-level
 * element (stanza or nonza) as an xml_node tree, and the closing </stream:stream>.
 * It enforces RFC 6120 section 11.1 restricted XML: any DOCTYPE, entity declaration,
 * comment or processing instruction is an error (so billion-laughs cannot expand), and
 * a stanza larger than max_stanza bytes is an error before it is buffered in full. */
#ifndef PARLEY_XMLSTREAM_H
#define PARLEY_XMLSTREAM_H

#include "xml.h"
#include <stddef.h>

typedef enum {
    XS_OK = 0,
    XS_ERR_XML,        /* not well-formed -> <not-well-formed/> */
    XS_ERR_RESTRICTED, /* DOCTYPE, entity, comment or PI -> <restricted-xml/> */
    XS_ERR_TOO_BIG,    /* stanza over the limit -> <policy-violation/> */
    XS_ERR_BAD_NS,     /* root not stream:stream in the streams namespace -> <invalid-namespace/> */
    XS_STOPPED,        /* a handler asked to stop (connection is being closed) */
    XS_RESTARTED,      /* a handler asked for a stream restart; the remaining input was discarded */
} xs_status;

/* What a handler tells the parser to do next. */
typedef enum {
    XS_CONTINUE = 0,
    XS_STOP,    /* stop parsing; xmlstream_feed returns XS_STOPPED */
    XS_RESTART, /* after this handler, reset to expect a new stream header and discard the
                   rest of the bytes fed in this call (STARTTLS and SASL restarts: bytes a
                   peer sent before the restart must never be interpreted afterwards) */
} xs_action;

typedef struct xmlstream_handlers {
    /* The stream header; root is the <stream:stream/> element with its attributes and no
     * children. root is owned by the parser and valid until the next header or free. */
    xs_action (*stream_open)(void *ud, const xml_node *root);
    /* A complete top-level element; the callee takes ownership of stanza. Its ns is the
     * resolved namespace (jabber:client for ordinary stanzas). */
    xs_action (*stanza)(void *ud, xml_node *stanza);
    /* </stream:stream> arrived. */
    xs_action (*stream_close)(void *ud);
} xmlstream_handlers;

typedef struct xmlstream xmlstream;

xmlstream *xmlstream_new(const xmlstream_handlers *handlers, void *ud, size_t max_stanza);
void xmlstream_free(xmlstream *xs);
/* Parse len bytes. Handlers run from inside this call. Once an error is returned the
 * stream is dead: further feeds return the same error. */
xs_status xmlstream_feed(xmlstream *xs, const char *data, size_t len);
/* Forget everything and expect a new stream header (used by the connection itself
 * when a restart is initiated outside a handler). */
void xmlstream_reset(xmlstream *xs);
/* keep = 1: the parser is no longer freed between stanzas by xmlstream_feed itself (it
 * costs about 9.5 KiB; re-creating it costs about as much CPU as a small stanza). */
void xmlstream_keep_parser(xmlstream *xs, int keep);
/* Free the parser now if the stream is between stanzas (no partial input); the next feed
 * creates a new one. Not from inside a handler of this stream. Returns 1 if it freed one. */
int xmlstream_release_parser(xmlstream *xs);
/* Human-readable reason for the last error (expat's message, or ours). */
const char *xmlstream_error_text(const xmlstream *xs);

#endif
