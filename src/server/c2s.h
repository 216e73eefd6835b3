/* c2s.h - a client-to-server session: the RFC 6120 stream state machine (stream header,
 * STARTTLS, SASL, resource binding) and the per-session state the other modules read. */
#ifndef PARLEY_C2S_H
#define PARLEY_C2S_H

#include "../common/xml.h"
#include "server.h"

#include <stdint.h>

struct conn;
struct xmlstream;
struct sasl_state;

typedef enum {
    C2S_STREAM_START, /* waiting for the stream header */
    C2S_WAIT_TLS,     /* plaintext: only <starttls/> is acceptable */
    C2S_WAIT_AUTH,    /* TLS up: SASL negotiation */
    C2S_WAIT_BIND,    /* authenticated: resource binding */
    C2S_BOUND,        /* a full JID: stanzas flow */
} c2s_state;

typedef struct c2s {
    server *srv;
    struct conn *conn;
    struct xmlstream *xs;
    c2s_state state;
    int stream_open;    /* header received in the current stream */
    int direct_tls;     /* came in on the XEP-0368 port */
    char stream_id[17];
    struct sasl_state *sasl; /* SASL negotiation in progress (sasl.c) */
    /* identity once authenticated / bound */
    char *user;     /* bare JID */
    char *resource;
    char *full;     /* full JID */
    /* presence */
    int available;        /* sent initial presence */
    int priority;
    int roster_loaded;    /* requested the roster: an "interested resource" (RFC 6121 2.1.6) */
    xml_node *presence;   /* last broadcast available presence */
    struct dict *directed; /* JIDs sent directed presence, told unavailable at the end */
    /* time-keeping */
    int64_t connected_ms;
    int64_t last_input_ms;
    int ping_outstanding;
    /* lists */
    struct c2s *next_resource; /* same user's sessions (router.c) */
    struct c2s *prev_all, *next_all;
} c2s;

/* Accept a new client connection (fd non-blocking). direct_tls: XEP-0368 port. */
void c2s_accept(server *srv, int fd, const char *peer, int direct_tls);
/* Serialize stanza into this session's stream (the stanza is not consumed). */
void c2s_send(c2s *s, const xml_node *stanza);
/* End the session with a stream error (condition from RFC 6120 4.9.3) and optional text. */
void c2s_stream_error(c2s *s, const char *condition, const char *text);
/* Timer: handshake time-outs and idle pings for every session. */
void c2s_housekeeping(server *srv);
/* Server shutdown: every session gets <system-shutdown/>. */
void c2s_shutdown_all(server *srv);

#endif
