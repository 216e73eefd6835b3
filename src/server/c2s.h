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
struct sm_state;

typedef enum {
    C2S_STREAM_START, /* waiting for the stream header */
    C2S_WAIT_TLS,     /* plaintext: only <starttls/> is acceptable */
    C2S_WAIT_AUTH,    /* TLS up: SASL negotiation */
    C2S_WAIT_BIND,    /* authenticated: resource binding */
    C2S_BOUND,        /* a full JID: stanzas flow */
    C2S_HUSK,         /* its session was resumed on another connection (sm.c) */
} c2s_state;

typedef struct c2s {
    server *srv;
    struct conn *conn;  /* NULL while detached, waiting for resumption (sm.h) */
    struct xmlstream *xs;
    c2s_state state;
    int stream_open;    /* header received in the current stream */
    int direct_tls;     /* came in on the XEP-0368 port */
    char stream_id[17];
    struct sasl_state *sasl; /* SASL negotiation in progress (sasl.c) */
    struct sm_state *sm;     /* XEP-0198 stream management, once enabled (sm.c) */
    /* identity once authenticated / bound */
    char *user;     /* bare JID */
    char *resource;
    char *full;     /* full JID */
    /* presence */
    int available;        /* sent initial presence */
    int priority;
    int roster_loaded;    /* requested the roster: an "interested resource" (RFC 6121 2.1.6) */
    int carbons;          /* XEP-0280 copies enabled */
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
/* Does the session still take stanzas? False once its connection is closing, unless the
 * session will wait for resumption (sm.h): then what is sent to it is queued. */
int c2s_is_live(const c2s *s);
/* Serialize stanza into this session's stream (the stanza is not consumed). */
void c2s_send(c2s *s, const xml_node *stanza);
/* End the session with a stream error (condition from RFC 6120 4.9.3) and optional text. */
void c2s_stream_error(c2s *s, const char *condition, const char *text);
/* Resumption (sm.c): s, authenticated as the same account, takes over old's bound
 * session (resource, presence, queue); old is discarded without ending the session. */
void c2s_take_over(c2s *s, c2s *old);
/* Resumption on another node (node_sm.c): old's session leaves this node without ending
 * (no unavailable presence; its stream management state was handed over first). */
void c2s_hand_over(c2s *old);
/* ... and s, authenticated as the same account, takes it up: bound to resource with the
 * session's presence state (presence: its last available presence, owned, or NULL). */
void c2s_adopt(c2s *s, const char *resource, int available, int priority, int roster_loaded,
               int carbons, xml_node *presence);
/* End a detached session that was not resumed (frees it). */
void c2s_end_detached(c2s *s, const char *reason);
/* Timer: handshake time-outs and idle pings for every session. */
void c2s_housekeeping(server *srv);
/* Server shutdown: every session gets <system-shutdown/>. */
void c2s_shutdown_all(server *srv);

#endif
