/* internal.h - libparley's private state and the interfaces between its modules.
 *
 *   client.c    handle, options, the process loop, timers, reconnect back-off, events
 *   transport.c TCP connect over the server list, TLS through memory BIOs, raw I/O
 *   session.c   stream negotiation (STARTTLS, SASL hand-off, bind, roster, presence),
 *               stream errors, keep-alive, failure classification
 *   sm.c        XEP-0198 stream management: acks, the unacknowledged queue, resumption
 *   sasl.c      mechanism choice and the SCRAM / PLAIN exchanges
 *   im.c        messages, presence, subscriptions, roster, IQ tracking, stanza hooks
 *   policy.c    the admin policy (urn:parley:policy:0): fetched at sign-in, pushed later
 *   omemo/      end-to-end encryption (XEP-0384 OMEMO, urn:xmpp:omemo:2), omemo.h
 *   ext.c       group chat, the message archive and carbons on top of these (ext.h)
 *
 * Nothing here is exported: applications see only parley.h. */
#ifndef PARLEY_CLIENT_INTERNAL_H
#define PARLEY_CLIENT_INTERNAL_H

#include "../common/buf.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/scram.h"
#include "../common/xml.h"
#include "../common/xmlstream.h"
#include "parley.h"

#include <openssl/ssl.h>
#include <stdint.h>

typedef struct server_addr {
    char *host;
    char *port;
} server_addr;

/* Where the connection is. */
typedef enum {
    PH_IDLE = 0,    /* no socket */
    PH_TCP,         /* non-blocking connect in progress */
    PH_TLS,         /* TLS handshake in progress */
    PH_STREAM,      /* XML stream up; see negotiation step */
    PH_CLOSING,     /* our </stream:stream> sent, waiting for the server's (bounded) */
} conn_phase;

/* Stream negotiation steps once the XML stream is up. */
typedef enum {
    NEG_FEATURES = 0, /* header sent, waiting for <stream:features/> */
    NEG_STARTTLS,     /* <starttls/> sent, waiting for <proceed/> */
    NEG_SASL,         /* exchange in progress */
    NEG_RESUME,       /* XEP-0198 <resume/> sent instead of binding */
    NEG_BIND,         /* bind IQ sent */
    NEG_SESSION,      /* legacy session IQ sent */
    NEG_ROSTER,       /* initial roster fetch */
    NEG_POLICY,       /* admin policy fetch */
    NEG_ONLINE,
} neg_step;

typedef struct pending_iq {
    char *id;
    char *to;         /* normalised 'to' of the request (NULL: our own account) */
    parley_iq_fn cb;
    void *ud;
    int64_t deadline_ms;
    int internal;     /* answered by a library step (bind, session, roster, ping) */
    struct pending_iq *next;
} pending_iq;

typedef struct stanza_hook {
    int id;
    char *name;
    char *child_ns;
    parley_stanza_fn fn;
    void *ud;
    struct stanza_hook *next;
} stanza_hook;

typedef struct roster_entry {
    char *jid;
    char *name;
    char *subscription;
    int ask;
    char **groups;
    size_t ngroups;
} roster_entry;

/* XEP-0198 (sm.c): a stanza sent and not yet acknowledged, as the text that went out. */
#define XMLNS_SM "urn:xmpp:sm:3"
typedef struct sm_item {
    char *xml;
    size_t len;
    int is_message;   /* a <message/>: sent again on a new session */
    char *id, *to;    /* for PARLEY_EV_RESENT (may be NULL) */
} sm_item;

typedef struct sm_queue {
    sm_item *items;   /* items[head .. head + count): the oldest first */
    size_t head, count, cap;
    uint32_t acked;   /* the server's last h: it handled this many (mod 2^32) */
} sm_queue;

typedef struct sm_client {
    sm_queue q;         /* sent since <enable/> (or resent after <resumed/>), unacknowledged */
    sm_queue resend;    /* messages of a lost session, sent again once the new one is online */
    int offered;        /* this stream's features offer urn:xmpp:sm:3 */
    int enabled;        /* <enable/> sent on this stream: outgoing stanzas are counted */
    int active;         /* <enabled/> (or <resumed/>) received: incoming ones are counted */
    uint32_t h_in;      /* stanzas received since <enabled/> (mod 2^32) */
    char *resume_id;    /* the server's id of our resumable session, or NULL */
    char *resume_jid;   /* the JID that session is bound to */
    uint32_t resume_max_s;     /* the server's resumption window (0: not said) */
    int64_t resume_until_ms;   /* after a loss: resume only before this (0: no limit) */
    int r_outstanding;  /* our <r/> awaits its <a/> */
    int64_t r_due_ms;   /* send <r/> at this time (0: none due) */
    unsigned since_r;   /* stanzas queued since our last <r/> */
} sm_client;

typedef struct sasl_ctx sasl_ctx;
typedef struct omemo_ctx omemo_ctx;

struct parley {
    /* options (copied) */
    parley_options opt; /* string members point into the copies below */
    jid account;
    char *account_bare;
    char *password;
    char *ca_file;
    server_addr *servers;
    size_t nservers;
    SSL_CTX *ssl_ctx;

    /* connection */
    conn_phase phase;
    int fd;
    SSL *ssl;
    BIO *net_in;   /* bytes from the socket, read by OpenSSL */
    BIO *net_out;  /* bytes OpenSSL produced, for the socket */
    buf out;       /* bytes waiting for the socket */
    int tls_done;
    size_t server_idx;  /* entry of servers[] being tried */
    size_t first_idx;   /* where this attempt started (the last one that worked) */
    size_t tried;       /* entries tried in this attempt */
    struct addrinfo *ai_list, *ai_cur;
    char peer[96];
    int64_t attempt_deadline_ms;
    int64_t closing_deadline_ms;

    /* stream */
    xmlstream *xs;
    neg_step neg;
    sasl_ctx *sasl;
    char mechanism[32];
    char cb_type[32];
    char *bound;
    int authed;      /* SASL succeeded on this connection */
    int need_session; /* server requires the RFC 3921 session IQ */

    /* session */
    pending_iq *iqs;
    unsigned next_id;
    stanza_hook *hooks;
    int next_hook_id;
    dict *roster; /* bare JID -> roster_entry */
    parley_show show;
    char *status;
    int priority;
    parley_policy policy;
    omemo_ctx *omemo;  /* NULL when e2e is off */
    int64_t last_rx_ms;
    int64_t ping_deadline_ms; /* 0: no ping outstanding */
    sm_client sm;             /* XEP-0198; survives reconnects (sm.c) */

    /* lifecycle */
    int want_online;        /* parley_connect called, parley_disconnect not */
    int ever_online;        /* a session was established since parley_connect */
    int attempts;           /* failed attempts since the last established session */
    int64_t reconnect_at_ms;
    int fail_pending;       /* tear down at the next safe point */
    int fail_permanent;
    int in_feed;
    parley_error err;
    char errtext[512];

    struct ext_state *ext; /* group chat, archive, carbons (ext.h); NULL until used */
};

/* ---- client.c */
void client_log(parley *p, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void client_emit(parley *p, const parley_event *ev);
/* Record the error that ends this connection; the teardown happens at the next safe
 * point. permanent: do not try other servers or reconnect (auth, certificate, policy). */
void client_fail(parley *p, parley_error err, int permanent, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The attempt succeeded: a session is bound and ready. */
void client_online(parley *p);
/* Back-off before reconnect attempt n (1-based): exponential from min_ms, capped at
 * max_ms, with "equal jitter" (half fixed, half random from rnd in [0,1)). */
int client_backoff_ms(int attempt, int min_ms, int max_ms, double rnd);
/* Parse "host:port,[v6]:port,..." (default_port when a port is missing). Returns the
 * number of entries (> 0) and sets *out, or -1 on a syntax error. */
int client_parse_servers(const char *spec, const char *default_port, server_addr **out);
void client_free_servers(server_addr *s, size_t n);

/* ---- transport.c */
/* Start connecting to servers[server_idx]; -1 if no address of it could be tried. */
int transport_start(parley *p);
/* Try the next resolved address / server entry after a failure; -1 when none left. */
int transport_next(parley *p);
void transport_close(parley *p);
int transport_start_tls(parley *p);
/* Queue bytes (through TLS if active) and try to send them. */
void transport_write(parley *p, const char *data, size_t len);
/* Handle poll() results on p->fd. */
void transport_io(parley *p, short revents);
short transport_poll_events(const parley *p);

/* ---- session.c */
void session_on_tcp_connected(parley *p);
void session_on_tls_ready(parley *p);
void session_on_data(parley *p, const char *data, size_t len);
void session_send(parley *p, const xml_node *stanza); /* every stanza goes out here */
void session_timers(parley *p, int64_t now);
int64_t session_next_timer(const parley *p);
void session_reset(parley *p); /* forget stream and session state (keeps roster) */
void session_close_stream(parley *p);
/* Register an IQ we sent; cb may be NULL. */
pending_iq *session_track_iq(parley *p, const char *id, const char *to, parley_iq_fn cb,
                             void *ud, int timeout_ms, int internal);
char *session_new_id(parley *p);

/* ---- sm.c: XEP-0198 stream management */
/* The queue (pure; unit-tested): push a copy; ack h: the number of items newly
 * acknowledged and dropped, or -1 (nothing dropped) if h counts more than was sent. */
void sm_queue_push(sm_queue *q, const char *xml, size_t len, int is_message, const char *id,
                   const char *to);
int sm_queue_ack(sm_queue *q, uint32_t h);
const sm_item *sm_queue_at(const sm_queue *q, size_t i);
/* Append from's messages to `to` (dropping its other stanzas); from is emptied. */
size_t sm_queue_move_messages(sm_queue *from, sm_queue *to);
void sm_queue_clear(sm_queue *q);
/* An h attribute: decimal, 0 .. 2^32-1. */
int sm_parse_h(const char *text, uint32_t *out);

typedef enum { SM_OK = 0, SM_RESUMED, SM_RESUME_FAILED } sm_result;
void sm_on_features(parley *p, const xml_node *features); /* after authentication */
int sm_try_resume(parley *p);  /* 1: <resume/> sent (p->neg must become NEG_RESUME) */
void sm_on_bound(parley *p);   /* a new session: enable, keep old messages to resend */
void sm_track(parley *p, const xml_node *st, const char *xml, size_t len); /* sent */
void sm_count_inbound(parley *p);                     /* a stanza received */
sm_result sm_handle(parley *p, const xml_node *el);   /* an urn:xmpp:sm:3 element */
void sm_resend(parley *p);          /* online on a new session: the old messages again */
void sm_on_lost(parley *p, int clean); /* the connection ended (clean: closed by us) */
void sm_timers(parley *p, int64_t now);
int64_t sm_next_timer(const parley *p);
void sm_free(parley *p);

/* ---- policy.c */
/* The policy a server without one implies (known 0). */
void policy_defaults(parley *p);
/* Ask for the policy; `then` runs once it arrived (or the server has none). */
void policy_request(parley *p, void (*then)(parley *p));
/* An IQ set pushing a new policy: answered, applied, announced. 1 if it was one. */
int policy_handle_push(parley *p, const xml_node *iq);

/* ---- sasl.c */
typedef enum { SASL_CONTINUE = 0, SASL_SUCCESS, SASL_FAILED } sasl_result;
/* Choose a mechanism from <stream:features/> and send <auth/>. SASL_FAILED if none is
 * acceptable (client_fail already called). */
sasl_result sasl_begin(parley *p, const xml_node *features);
sasl_result sasl_step_in(parley *p, const xml_node *el);
void sasl_free(parley *p);

/* ---- im.c */
/* A stanza on the bound session: hooks, IQ answers, library handling, events. */
void im_dispatch(parley *p, xml_node *stanza);
/* Replace the local roster with the items of a roster result (emits ROSTER events). */
void im_roster_result(parley *p, const xml_node *iq);
void im_send_current_presence(parley *p);
void im_fail_pending_iqs(parley *p, parley_error err);
void im_roster_free(parley *p);
void im_hooks_free(parley *p);
/* Send a plain <message/> (no end-to-end encryption) with the given id. */
void im_send_plain(parley *p, const char *to, const char *type, const char *body,
                   const char *id);
void im_send_iq_error(parley *p, const xml_node *iq, const char *type, const char *cond);
void im_send_iq_result(parley *p, const xml_node *iq);
/* Text of a stanza error's condition ("policy-violation: text"), freshly allocated. */
char *im_error_text(const xml_node *stanza);
parley_error im_error_code(const xml_node *stanza);

/* ---- ext.c: group chat, the archive and carbons (ext.h), as the core sees them */
/* A received stanza after the application's hooks: 1 if handled there. */
int client_ext_dispatch(parley *p, const xml_node *st);
void client_ext_online(parley *p);   /* after CONNECTED: carbons, archive sync, rejoins */
void client_ext_offline(parley *p);  /* the session ended */
void client_ext_sent(parley *p, const xml_node *st); /* every stanza sent */
/* Mark the MESSAGE event of a forwarded message (a carbon, an archive result). */
void client_ext_emit(const parley *p, parley_event *ev);
void client_ext_free(parley *p);
/* Is the message being handled a copy (carbon) or from the archive? Such a message was
 * answered (receipts, refusals) when it was live: never answer it again. */
int client_ext_forwarded(const parley *p);
/* ... and one this account sent (from another device): addressed to the peer, not to us. */
int client_ext_outgoing(const parley *p);
/* im.c: the core's handling of a message, for those unwrapped from carbons and results. */
void im_message(parley *p, const xml_node *msg);

#endif
