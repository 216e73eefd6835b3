/* s2s_internal.h - what the server-link files share: the link, its states, and the
 * helpers of s2s.c used by the outbound (s2s_out.c) and inbound (s2s_in.c) sides. */
#ifndef PARLEY_S2S_INTERNAL_H
#define PARLEY_S2S_INTERNAL_H

#include "../common/xml.h"
#include "../common/xmlstream.h"
#include "conn.h"
#include "s2s.h"

#include <openssl/ssl.h>
#include <stdint.h>

#define XMLNS_DIALBACK "jabber:server:dialback"
#define XMLNS_DIALBACK_FEATURE "urn:xmpp:features:dialback"
#define S2S_STREAM_ID_LEN 32
#define S2S_MAX_TARGETS 8
/* Longest host name of a connection target. */
#define S2S_MAX_HOST 256

typedef enum {
    L_RESOLVING,      /* out: choosing where to connect */
    L_CONNECTING,     /* out: TCP connect in progress */
    L_STREAM_START,   /* waiting for the peer's stream header */
    L_WAIT_FEATURES,  /* out: header received, features next */
    L_WAIT_PROCEED,   /* out: <starttls/> sent */
    L_WAIT_TLS,       /* in: plaintext; only <starttls/> is acceptable */
    L_WAIT_AUTH,      /* in: TLS up; SASL EXTERNAL or dialback next */
    L_WAIT_SASL,      /* out: <auth/> sent */
    L_WAIT_DIALBACK,  /* out: <db:result/> sent */
    L_READY,          /* authenticated: stanzas flow */
} link_state;

typedef struct s2s_target {
    char host[S2S_MAX_HOST];
    int port;
} s2s_target;

typedef struct queued {
    xml_node *stanza;
    struct queued *next;
} queued;

typedef struct s2s_link {
    server *srv;
    struct conn *conn;
    xmlstream *xs;
    int outbound;
    int node;                  /* a link between nodes of this domain (node.h) */
    link_state state;
    int stream_open;           /* our header was sent in the current stream */
    int tls;                   /* TLS is up */
    int authed;                /* the peer (in) or we (out) are authenticated */
    int secure;                /* authenticated by certificate (else by dialback) */
    char *remote;              /* out: the domain (or node) we link to; in: peer's 'from' */
    char stream_id[128];       /* ours (in), or the peer's (out: keys are bound to it) */
    /* outbound */
    s2s_target targets[S2S_MAX_TARGETS];
    int ntargets, next_target;
    queued *queue, *queue_tail;
    int nqueued;
    int failed;                /* for good: new stanzas need a new link */
    char fail_text[256];       /* why, for the bounces */
    char *db_key;              /* dialback: the key we sent, waiting for the verdict */
    /* inbound */
    char *pre_tls_from;        /* the 'from' of the header before STARTTLS */
    int dialback_pending;      /* dialback: a verification is in flight for this link */
    /* time-keeping */
    int64_t created_ms;
    int64_t last_used_ms;      /* a stanza went through */
    int64_t last_input_ms;
    struct s2s_link *prev, *next;
} s2s_link;

/* The state behind srv->s2s. */
typedef struct s2s {
    SSL_CTX *in_ctx, *out_ctx;           /* federation: system store + ca_file */
    SSL_CTX *node_in_ctx, *node_out_ctx; /* nodes: ca_file only (NULL when not clustered) */
    s2s_link *links;
    unsigned char dialback_secret[32];   /* XEP-0185 keys; never leaves the process */
} s2s;

/* ---- s2s.c ---- */
s2s_link *s2s_link_new(server *srv, int outbound);
/* The connection callbacks every link uses (conn.h). */
const conn_handlers *s2s_conn_handlers(void);
/* The outbound link to remote (a domain, or a node when node is set), or NULL. */
s2s_link *s2s_find_out(server *srv, const char *remote, int node);
/* Write our stream header (to: the peer's domain, or NULL; with an id when we answer). */
void s2s_send_header(s2s_link *l, const char *from, const char *to, int with_id);
/* Serialize a stanza (jabber:client inside the server) into the link; not consumed. */
void s2s_write_stanza(s2s_link *l, xml_node *stanza);
void s2s_write_str(s2s_link *l, const char *text);
/* Close with a stream error, logged with its reason. */
void s2s_stream_error(s2s_link *l, const char *condition, const char *text);
/* Send or queue on the outbound link to remote (a domain, or a node), made on first use.
 * Takes ownership. */
void s2s_link_send(server *srv, const char *remote, int node, xml_node *stanza);
/* Write the dialback verifications queued on an outbound link that sent its key. */
void s2s_flush_dialback(s2s_link *l);
/* The link authenticated: record it, flush its queue (out), replace an older inbound
 * link from the same peer (in). */
void s2s_link_ready(s2s_link *l);
/* An outbound link failed for good: bounce what it queued with condition and text. */
void s2s_link_fail(s2s_link *l, const char *condition, const char *reason);
/* A stanza from an authenticated inbound link, checked and normalised: route it. */
void s2s_route_inbound(s2s_link *l, xml_node *stanza);
/* Feed bytes to the link's parser and turn parse errors into stream errors. */
void s2s_feed(s2s_link *l, const char *data, size_t len);

/* ---- s2s_out.c ---- */
/* Start connecting an outbound link to l->remote (or the next target). 0, or -1 when
 * that failed and the queue was bounced (the link has no connection then). */
int s2s_out_start(s2s_link *l);
extern const xmlstream_handlers s2s_out_xs_handlers;

/* ---- s2s_in.c ---- */
extern const xmlstream_handlers s2s_in_xs_handlers;

/* ---- s2s_resolve.c ---- */
/* Where to connect for domain: s2s_hosts (or nodes), else SRV _xmpp-server._tcp, else
 * the domain on 5269. Returns the number of targets (0: none, with why). */
int s2s_resolve(server *srv, const char *domain, int node, s2s_target *out, int max,
                const char **why);

/* ---- s2s_dialback.c ---- */
/* The XEP-0185 key for (to, from, stream id) into out (hex, 65 bytes). */
void s2s_dialback_key(server *srv, const char *to, const char *from, const char *id,
                      char out[65]);
/* Authenticate an outbound link by dialback: send db:result. */
void s2s_dialback_start(s2s_link *l);
/* Dialback elements on an inbound stream (db:result to verify, db:verify to answer).
 * Returns 0, or -1 if the stream was closed. Takes ownership. */
int s2s_dialback_inbound(s2s_link *l, xml_node *el);
/* A db:result or db:verify answer on an outbound stream. Takes ownership. */
int s2s_dialback_outbound(s2s_link *l, xml_node *el);

#endif
