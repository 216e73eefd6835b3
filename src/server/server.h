/* server.h - the state of one parleyd process, passed to every module.
 * There is no global server state: modules take a server * so tests can run several. */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include "config.h"
#include "event.h"
#include "store.h"

#include <openssl/ssl.h>

struct c2s;
struct conn;
struct dict;
struct authlimit;
struct compliance;
struct iq_out;
struct mam_cache;
struct verdicts;
struct sm_memory;
struct component;
struct muc;
struct policy_cache;
struct pep;
struct s2s;

typedef struct server {
    config cfg;
    store *store;
    ev_loop *loop;
    SSL_CTX *tls_ctx;           /* replaced on SIGHUP; live connections keep theirs */
    struct dict *users;         /* bare JID -> user_sessions (router.c) */
    struct dict *services;      /* domain -> service served in or beside parleyd (router.c) */
    struct iq_out *iq_out;      /* IQs the server sent and awaits answers to (iq_out.h) */
    struct dict *sm_sessions;   /* XEP-0198 resumption id -> c2s (sm.c) */
    struct sm_memory *sm_expired; /* counts of recently ended resumable sessions (sm.c) */
    struct mam_cache *mam;      /* archive preferences and rows awaiting commit (mam.c) */
    struct verdicts *verdicts;  /* messages waiting for the compliance server (verdict.h) */
    struct component *components; /* every external component connection (component.h) */
    struct s2s *s2s;            /* server links, NULL when federation is off (s2s.h) */
    struct node_state *nodes;   /* the other nodes of this domain (node.h) */
    struct c2s *sessions;       /* every c2s session, for housekeeping and shutdown */
    struct conn *dirty;         /* connections with output to flush before sleeping */
    struct conn *closing;       /* connections to reap outside any callback */
    struct conn *lingering;     /* closing once their output is flushed, with a deadline */
    struct authlimit *authlimit;
    struct compliance *compliance; /* the compliance archive, NULL when off (compliance.h) */
    struct muc *muc;            /* multi-user chat, NULL when off (muc.h) */
    struct policy_cache *policy; /* effective admin policies (policy_service.h) */
    struct pep *pep;            /* PEP interest and entity caps (pep.h) */
    struct upload *upload;      /* XEP-0363 file transfer, NULL when off (upload.h) */
    struct http_conn *http_conns; /* connections of the HTTPS listener (http.h) */
    int nconns;
    int listen_fds[8];
    int listen_kinds[8];        /* listen_kind of each fd (listener.h) */
    int nlisten;
    int spare_fd;               /* reserve fd released to shed connections on EMFILE */
    int exit_code;
    struct tls_pool *tls_pool;  /* TLS handshake threads, NULL with tls_threads = 0 (tls_pool.h) */
    int64_t loop_handshake_us;  /* time the loop spent on handshakes this iteration (conn.c) */
} server;

/* Bring everything up from a loaded config: store, TLS, listeners. Returns 0, or -1 after
 * logging why. */
int server_init(server *srv, const config *cfg);
/* Run until SIGTERM/SIGINT. */
void server_run(server *srv);
/* Close every session (system-shutdown) and free everything. */
void server_shutdown(server *srv);
/* Reload certificate and key (SIGHUP). Keeps the old ones if the new ones fail. */
int server_reload_tls(server *srv);

#endif
