/* conn.c - non-blocking TCP/TLS connection with bounded output and deferred close.
 *
 * A TLS connection starts on an OpenSSL SSL object. Once its user says the connection
 * is settled (conn_tls_compact: for c2s, after resource binding) and the connection is
 * quiescent, a TLS 1.3 connection moves to tlsrec.c's record layer and the SSL object is
 * freed: about 12 KiB less per idle connection (see tlsrec.h). Protected output then
 * waits in `ct` until the socket takes it. */
#include "conn.h"
#include "../common/buf.h"
#include "../common/log.h"
#include "../common/tls.h"
#include "../common/tlsrec.h"
#include "../common/util.h"
#include "tls_pool.h"

#include <openssl/err.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Time the event loop gives handshakes per iteration when it does them itself
 * (tls_threads = 0, and the outbound ones). A step may sign with the private key, about
 * 1 ms with RSA-2048: once the budget is spent the loop serves everyone else who is
 * ready and takes up the other handshakes on the next iteration, so a login storm delays
 * the established sessions by a few milliseconds, not by a whole batch of hundreds of
 * handshakes. A smaller budget costs the storm more: 2 ms gave ~17 % fewer logins/s than
 * no budget, 8 ms ~9 % (bench/RESULTS.md, "Handshakes in the loop"). */
#define LOOP_HANDSHAKE_BUDGET_US 8000

struct conn {
    server *srv;
    int fd;
    SSL *ssl;
    tls_rec *rec;   /* instead of ssl once compacted */
    buf ct;         /* records sealed by rec, not yet taken by the socket */
    int want_compact;
    SSL_CTX *tls_pending; /* STARTTLS accepted: begin TLS once plaintext output is flushed */
    int tls_client;       /* we are the TLS client (outbound server links) */
    char *sni;            /* server name to send as TLS client */
    int connecting;       /* outbound connect in progress */
    void (*on_connected)(void *ud);
    int handshaking;
    int handshake_wants_write;
    tls_pool_job *pool_job; /* the handshake is on a pool thread: hands off ssl and fd */
    int orphan;             /* reaped while in the pool: freed when it comes back */
    const conn_handlers *h;
    void (*on_drain)(void *ud);
    void *ud;
    buf out;
    int closing;     /* queued for reaping: no more reads or writes */
    int flush_close; /* close once out is empty */
    int read_wants_write;
    const char *reason;
    int64_t flush_close_deadline;
    conn *next_dirty;
    conn *next_closing;   /* reaping happens outside any callback, so a handler never */
    conn *next_lingering; /* sees its own (or another) connection freed under it */
    int dirty;
    char peer[64];
};

static void on_fd_event(ev_loop *loop, int fd, void *ud, int mask);
static void on_pool_done(void *ud, tls_pool_result result, const char *err);
static void conn_free(conn *c);
static void read_input(conn *c);

conn *conn_new(server *srv, int fd, const char *peer, const conn_handlers *h, void *ud)
{
    conn *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->fd = fd;
    c->h = h;
    c->ud = ud;
    buf_init(&c->out);
    buf_init(&c->ct);
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    if (ev_watch(srv->loop, fd, EV_READ, on_fd_event, c) < 0) {
        log_warn("cannot watch connection from %s: %s", peer, strerror(errno));
        close(fd);
        free(c);
        return NULL;
    }
    srv->nconns++;
    return c;
}

conn *conn_connect(server *srv, const struct sockaddr *sa, socklen_t salen, const char *peer,
                   const conn_handlers *h, void (*on_connected)(void *ud), void *ud)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    conn *c = conn_new(srv, fd, peer, h, ud);
    if (!c)
        return NULL;
    /* Writable means connected (or failed: SO_ERROR tells which). */
    c->connecting = 1;
    c->on_connected = on_connected;
    ev_modify(srv->loop, fd, EV_WRITE);
    return c;
}

/* A NULL conn is a detached session's (sm.c): it has no peer, and it is not closing —
 * stanzas routed to it are queued for its resumption. */
SSL *conn_ssl(const conn *c) { return c ? c->ssl : NULL; }
int conn_is_tls(const conn *c)
{
    return c && ((c->ssl != NULL && !c->handshaking) || c->rec != NULL);
}

void conn_tls_describe(const conn *c, char *out, size_t outlen)
{
    if (c && c->rec)
        snprintf(out, outlen, "%s", tls_rec_describe(c->rec));
    else
        tls_describe(c ? c->ssl : NULL, out, outlen);
}
const char *conn_peer(const conn *c) { return c ? c->peer : "(detached)"; }
int conn_is_closing(const conn *c) { return c && (c->closing || c->flush_close); }
void conn_set_drain(conn *c, void (*fn)(void *ud)) { c->on_drain = fn; }
int conn_in_handshake(const conn *c) { return c->handshaking; }

static void mark_dirty(conn *c)
{
    if (c->dirty)
        return;
    c->dirty = 1;
    c->next_dirty = c->srv->dirty;
    c->srv->dirty = c;
}

void conn_close(conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->reason = reason;
    ev_modify(c->srv->loop, c->fd, 0);
    c->next_closing = c->srv->closing;
    c->srv->closing = c;
}

void conn_close_after_flush(conn *c, const char *reason)
{
    if (c->closing || c->flush_close)
        return;
    c->flush_close = 1;
    c->reason = reason;
    /* A peer that stops reading must not keep a closing connection alive forever. */
    c->flush_close_deadline = time_mono_ms() + 2000;
    c->next_lingering = c->srv->lingering;
    c->srv->lingering = c;
    mark_dirty(c);
}

void conn_write(conn *c, const char *data, size_t len)
{
    if (!c)
        return; /* a detached session (sm.c) queues instead */
    if (c->closing)
        return;
    /* Output leaves only when the loop flushes (after the pass's commits), so one pass
     * may queue more than max_output_buffer for a peer that reads perfectly well (a
     * burst of large stanzas read in one go). A peer is judged "not reading" by
     * flush_out, after the socket took what it could; here only a hard cap bounds
     * what one pass may queue. */
    size_t hard_cap = c->srv->cfg.max_output_buffer * OUTPUT_PASS_FACTOR;
    if (c->out.len + c->ct.len + len > hard_cap) {
        log_warn("%s: over %zu bytes of output queued in one pass, closing", c->peer, hard_cap);
        conn_close(c, "output buffer limit exceeded");
        return;
    }
    buf_append(&c->out, data, len);
    mark_dirty(c);
}

static void set_interest(conn *c)
{
    if (c->pool_job)
        return; /* not watched by the loop until the pool hands the connection back */
    /* Write interest only when there is something to write: a writable socket is always
     * ready, and asking anyway would spin the loop (during a stalled handshake, say). */
    if (c->connecting) {
        ev_modify(c->srv->loop, c->fd, EV_WRITE);
        return;
    }
    int mask = EV_READ;
    if (c->handshaking ? c->handshake_wants_write
                       : (c->out.len > 0 || c->ct.len > 0 || c->tls_pending != NULL))
        mask |= EV_WRITE;
    if (c->read_wants_write)
        mask |= EV_WRITE;
    ev_modify(c->srv->loop, c->fd, mask);
}

static void tls_failed(conn *c, const char *what)
{
    char err[256];
    tls_last_error(err, sizeof err);
    log_info("%s: %s: %s", c->peer, what, err);
    conn_close(c, what);
}

static void begin_tls(conn *c)
{
    SSL *ssl = SSL_new(c->tls_pending);
    c->tls_pending = NULL;
    if (!ssl || SSL_set_fd(ssl, c->fd) != 1) {
        SSL_free(ssl);
        tls_failed(c, "TLS setup failed");
        return;
    }
    if (c->tls_client) {
        SSL_set_connect_state(ssl);
        if (c->sni && SSL_set_tlsext_host_name(ssl, c->sni) != 1) {
            SSL_free(ssl);
            tls_failed(c, "TLS setup failed");
            return;
        }
        c->handshake_wants_write = 1; /* the client speaks first */
    } else {
        SSL_set_accept_state(ssl);
        tls_rec_track(ssl); /* if it fails, the connection just keeps its SSL object */
    }
    c->ssl = ssl;
    c->handshaking = 1;
    if (!c->tls_client && c->srv->tls_pool) {
        /* The loop lets go of the fd (even an error or hangup must not wake it) until
         * the pool hands the connection back; if it cannot take it, the loop does the
         * handshake itself. */
        ev_unwatch(c->srv->loop, c->fd);
        c->pool_job = tls_pool_submit(c->srv->tls_pool, ssl, c->fd, on_pool_done, c);
        if (!c->pool_job && ev_watch(c->srv->loop, c->fd, EV_READ, on_fd_event, c) < 0)
            tls_failed(c, "TLS setup failed");
    }
}

int conn_start_tls(conn *c, SSL_CTX *ctx)
{
    if (c->ssl || c->tls_pending)
        return -1;
    c->tls_pending = ctx;
    if (c->out.len == 0)
        begin_tls(c);
    else
        mark_dirty(c);
    set_interest(c);
    return 0;
}

int conn_start_tls_client(conn *c, SSL_CTX *ctx, const char *sni)
{
    if (c->ssl || c->tls_pending)
        return -1;
    c->tls_client = 1;
    free(c->sni);
    c->sni = sni ? xstrdup(sni) : NULL;
    return conn_start_tls(c, ctx);
}

/* Move to the compact record layer if asked and the connection is quiescent: nothing
 * queued, nothing half-read inside OpenSSL (tls_rec_take checks), not closing. */
static void try_compact(conn *c)
{
    if (!c->want_compact || !c->ssl || c->handshaking || c->out.len || c->read_wants_write ||
        c->closing || c->flush_close)
        return;
    if (!tls_rec_possible(c->ssl)) {
        c->want_compact = 0; /* TLS 1.2, a KeyUpdate, another suite: keep the SSL object */
        return;
    }
    tls_rec *r = tls_rec_take(c->ssl);
    if (!r)
        return; /* not quiescent yet: the next flush or read tries again */
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->rec = r;
    c->want_compact = 0;
    log_debug("%s: TLS record layer compacted", c->peer);
}

void conn_tls_compact(conn *c)
{
    if (!c)
        return; /* a detached session's (sm.c) */
    c->want_compact = 1;
    mark_dirty(c);
}

/* Send the sealed records in ct. Returns 0, or -1 if the connection failed. */
static int send_ct(conn *c)
{
    while (c->ct.len) {
        ssize_t n = send(c->fd, c->ct.data, c->ct.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            log_debug("%s: write: %s", c->peer, strerror(errno));
            conn_close(c, "write failed");
            return -1;
        }
        buf_consume(&c->ct, (size_t)n);
    }
    return 0;
}

/* Write queued output. Returns 0, or -1 if the connection failed. */
static int flush_out(conn *c)
{
    if (c->connecting)
        return 0; /* written once connected */
    if (c->rec && !c->closing) {
        if (c->out.len && tls_rec_seal(c->rec, c->out.data, c->out.len, &c->ct) < 0) {
            tls_failed(c, "TLS record protection failed");
            return -1;
        }
        buf_reset(&c->out);
        if (send_ct(c) < 0)
            return -1;
    }
    while (c->out.len && !c->closing) {
        if (c->ssl) {
            if (c->handshaking)
                break;
            int n = SSL_write(c->ssl, c->out.data, (int)(c->out.len > 1 << 30 ? 1 << 30 : c->out.len));
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    break;
                tls_failed(c, "TLS write failed");
                return -1;
            }
            buf_consume(&c->out, (size_t)n);
        } else {
            ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    break;
                log_debug("%s: write: %s", c->peer, strerror(errno));
                conn_close(c, "write failed");
                return -1;
            }
            buf_consume(&c->out, (size_t)n);
        }
    }
    if (c->out.len + c->ct.len > c->srv->cfg.max_output_buffer && !c->closing &&
        !c->handshaking && !c->connecting) {
        log_warn("%s: output buffer over %zu bytes (peer not reading), closing", c->peer,
                 c->srv->cfg.max_output_buffer);
        conn_close(c, "output buffer limit exceeded");
        return -1;
    }
    if (c->out.len == 0 && c->ct.len == 0) {
        buf_shrink(&c->out);
        buf_shrink(&c->ct);
        if (c->tls_pending)
            begin_tls(c);
        if (c->flush_close && !c->closing) {
            if (c->ssl && !c->handshaking)
                SSL_shutdown(c->ssl); /* best effort close_notify */
            if (c->rec) {
                tls_rec_close_notify(c->rec, &c->ct);
                (void)send(c->fd, c->ct.data, c->ct.len, MSG_NOSIGNAL | MSG_DONTWAIT);
            }
            conn_close(c, c->reason);
            return 0;
        }
        try_compact(c);
        if (c->on_drain && !c->closing && !c->handshaking && !c->tls_pending)
            c->on_drain(c->ud);
    }
    if (!c->closing)
        set_interest(c);
    return 0;
}

static void handshake_done(conn *c)
{
    c->handshaking = 0;
    if (log_get_level() <= PLOG_DEBUG) {
        char desc[128];
        tls_describe(c->ssl, desc, sizeof desc);
        log_debug("%s: TLS established: %s", c->peer, desc);
    }
    c->h->on_tls_ready(c->ud);
    set_interest(c);
}

static void do_handshake(conn *c)
{
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        handshake_done(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->handshake_wants_write = e == SSL_ERROR_WANT_WRITE;
        set_interest(c);
        return;
    }
    tls_failed(c, "TLS handshake failed");
}

/* The pool is done with the SSL object and the fd: the loop owns them again. */
static void on_pool_done(void *ud, tls_pool_result result, const char *err)
{
    conn *c = ud;
    c->pool_job = NULL;
    if (c->orphan) {
        conn_free(c); /* reaped (on_close ran) while the pool had it */
        return;
    }
    if (ev_watch(c->srv->loop, c->fd, c->closing ? 0 : EV_READ, on_fd_event, c) < 0) {
        conn_close(c, "cannot watch the connection");
        return;
    }
    if (c->closing)
        return; /* closed meanwhile: reaped with the next flush */
    if (result == TLS_POOL_CANCELLED) {
        conn_close(c, "TLS handshake abandoned");
        return;
    }
    if (result == TLS_POOL_FAILED) {
        log_info("%s: TLS handshake failed: %s", c->peer, err);
        conn_close(c, "TLS handshake failed");
        return;
    }
    handshake_done(c);
    if (c->closing)
        return;
    if (c->out.len)
        mark_dirty(c);
    /* The client's first records may have arrived with its Finished, and sit in
     * OpenSSL's buffer where the socket's readiness no longer shows them (what is still
     * in the socket, the loop's level-triggered watch reports). */
    if (SSL_has_pending(c->ssl))
        read_input(c);
}

/* Input on a compacted connection: open the records, hand on the plaintext. */
static void read_records(conn *c)
{
    static buf plain; /* one for the process: the event loop is single-threaded */
    char data[16384];
    while (!c->closing) {
        ssize_t n = recv(c->fd, data, sizeof data, 0);
        if (n == 0) {
            conn_close(c, "peer closed the connection");
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                conn_close(c, "read failed");
            return;
        }
        const char *why = NULL;
        size_t before = c->ct.len;
        buf_reset(&plain);
        tls_rec_status st = tls_rec_open(c->rec, data, (size_t)n, &plain, &c->ct, &why);
        if (c->ct.len > before)
            mark_dirty(c); /* our answer to a KeyUpdate */
        if (st == TLS_REC_ERROR) {
            log_info("%s: TLS: %s", c->peer, why);
            conn_close(c, why);
            return;
        }
        if (plain.len && !c->flush_close)
            c->h->on_data(c->ud, plain.data, plain.len);
        if (st == TLS_REC_CLOSED) {
            conn_close(c, "peer closed the TLS session");
            return;
        }
    }
}

static void read_input(conn *c)
{
    char data[16384];
    if (c->rec && !c->tls_pending && !c->handshaking) {
        read_records(c);
        return;
    }
    while (!c->closing && !c->tls_pending && !c->handshaking) {
        ssize_t n;
        if (c->ssl) {
            c->read_wants_write = 0;
            int r = SSL_read(c->ssl, data, (int)sizeof data);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ) {
                    if (c->want_compact && c->out.len == 0) {
                        try_compact(c);
                        if (c->rec)
                            set_interest(c);
                    }
                    return;
                }
                if (e == SSL_ERROR_WANT_WRITE) {
                    c->read_wants_write = 1;
                    set_interest(c);
                    return;
                }
                if (e == SSL_ERROR_ZERO_RETURN) {
                    conn_close(c, "peer closed the TLS session");
                    return;
                }
                if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
                    conn_close(c, "peer closed the connection");
                    return;
                }
                tls_failed(c, "TLS read failed");
                return;
            }
            n = r;
        } else {
            n = recv(c->fd, data, sizeof data, 0);
            if (n == 0) {
                conn_close(c, "peer closed the connection");
                return;
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return;
                conn_close(c, "read failed");
                return;
            }
        }
        /* Once closing, input is read and dropped so the peer cannot keep us awake. */
        if (!c->flush_close)
            c->h->on_data(c->ud, data, (size_t)n);
    }
}

/* The outbound connect finished (the socket became writable): up, or failed. */
static void finish_connect(conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return;
    c->connecting = 0;
    if (err) {
        log_info("%s: connect failed: %s", c->peer, strerror(err));
        conn_close(c, err == ECONNREFUSED ? "connection refused" : "connect failed");
        return;
    }
    set_interest(c);
    c->on_connected(c->ud);
}

static void on_fd_event(ev_loop *loop, int fd, void *ud, int mask)
{
    conn *c = ud;
    if (c->closing || c->pool_job)
        return;
    if (c->connecting) {
        finish_connect(c);
        return;
    }
    if (c->handshaking) {
        if (c->srv->loop_handshake_us >= LOOP_HANDSHAKE_BUDGET_US)
            return; /* the level-triggered watch brings it back next iteration */
        int64_t start = time_mono_us();
        do_handshake(c);
        c->srv->loop_handshake_us += time_mono_us() - start;
        if (c->handshaking || c->closing)
            return;
    }
    if ((mask & EV_WRITE) && (c->out.len || c->ct.len || c->tls_pending)) {
        if (flush_out(c) < 0)
            return;
    }
    if ((mask & EV_READ) || c->read_wants_write) {
        read_input(c);
    }
}

static void conn_free(conn *c)
{
    if (c->pool_job) {
        /* The pool still holds the SSL object and the fd: free once it lets go. */
        c->orphan = 1;
        tls_pool_cancel(c->pool_job);
        return;
    }
    ev_unwatch(c->srv->loop, c->fd);
    if (c->ssl)
        SSL_free(c->ssl);
    tls_rec_free(c->rec);
    close(c->fd);
    buf_free(&c->out);
    free(c->sni);
    buf_free(&c->ct);
    c->srv->nconns--;
    free(c);
}

static void unlink_conn(conn **head, conn *c, size_t next_offset)
{
    while (*head && *head != c)
        head = (conn **)((char *)*head + next_offset);
    if (*head)
        *head = *(conn **)((char *)c + next_offset);
}

static void reap_closed(server *srv)
{
    while (srv->closing) {
        conn *c = srv->closing;
        srv->closing = c->next_closing;
        if (c->dirty)
            unlink_conn(&srv->dirty, c, offsetof(conn, next_dirty));
        if (c->flush_close)
            unlink_conn(&srv->lingering, c, offsetof(conn, next_lingering));
        c->h->on_close(c->ud, c->reason ? c->reason : "closed");
        conn_free(c);
    }
}

void conn_flush_all(server *srv)
{
    /* on_close of a reaped connection may queue output for others (unavailable presence)
     * and a failed flush may close one: go round until both lists are empty. */
    while (srv->dirty || srv->closing) {
        conn *c = srv->dirty;
        srv->dirty = NULL;
        while (c) {
            conn *next = c->next_dirty;
            c->dirty = 0;
            if (!c->closing)
                flush_out(c);
            c = next;
        }
        reap_closed(srv);
    }
}

void conn_expire_lingering(server *srv)
{
    int64_t now = time_mono_ms();
    for (conn *c = srv->lingering; c; c = c->next_lingering)
        if (!c->closing && now > c->flush_close_deadline)
            conn_close(c, c->reason);
}
