/* transport.c - the byte pipe under a libparley session: non-blocking TCP connect over
 * the configured server list (every resolved address of every entry, in turn), TLS via
 * OpenSSL memory BIOs (so the library does its own send(MSG_NOSIGNAL) and never raises
 * SIGPIPE in the application), and the classification of TLS failures. */
#include "../common/tls.h"
#include "../common/util.h"
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define READS_PER_CALL 16

/* A failure of one address that does not end the attempt by itself. */
static void note_unreachable(parley *p, const char *where, const char *what, const char *why)
{
    if (p->err != PARLEY_OK && p->err != PARLEY_ERR_UNREACHABLE)
        return;
    p->err = PARLEY_ERR_UNREACHABLE;
    snprintf(p->errtext, sizeof p->errtext, "%s: %s: %s", where, what, why);
    client_log(p, 1, "%s", p->errtext);
}

static void format_peer(const struct addrinfo *ai, const char *port, char *out, size_t outlen)
{
    char host[64] = "?";
    getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0, NI_NUMERICHOST);
    if (ai->ai_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%s", host, port);
    else
        snprintf(out, outlen, "%s:%s", host, port);
}

static int connect_one(parley *p, const struct addrinfo *ai)
{
    const server_addr *sa = &p->servers[p->server_idx];
    format_peer(ai, sa->port, p->peer, sizeof p->peer);
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        note_unreachable(p, p->peer, "socket", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        note_unreachable(p, p->peer, "connect", strerror(errno));
        close(fd);
        return -1;
    }
    p->fd = fd;
    p->phase = PH_TCP;
    p->attempt_deadline_ms = time_mono_ms() + p->opt.connect_timeout_ms;
    client_log(p, 0, "connecting to %s (%s)", p->peer, sa->host);
    return 0;
}

static void next_entry(parley *p)
{
    if (p->ai_list)
        freeaddrinfo(p->ai_list);
    p->ai_list = p->ai_cur = NULL;
    p->tried++;
    p->server_idx = (p->server_idx + 1) % p->nservers;
}

/* Connect to the current address or the first one after it that can be tried. */
static int try_from_current(parley *p)
{
    while (p->tried < p->nservers) {
        if (!p->ai_list) {
            const server_addr *sa = &p->servers[p->server_idx];
            struct addrinfo hints = {0};
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            int rc = getaddrinfo(sa->host, sa->port, &hints, &p->ai_list);
            if (rc != 0) {
                p->ai_list = NULL;
                note_unreachable(p, sa->host, "cannot resolve", gai_strerror(rc));
                next_entry(p);
                continue;
            }
            p->ai_cur = p->ai_list;
        }
        for (; p->ai_cur; p->ai_cur = p->ai_cur->ai_next)
            if (connect_one(p, p->ai_cur) == 0)
                return 0;
        next_entry(p);
    }
    return -1;
}

int transport_start(parley *p)
{
    if (p->ai_list)
        freeaddrinfo(p->ai_list);
    p->ai_list = p->ai_cur = NULL;
    return try_from_current(p);
}

int transport_next(parley *p)
{
    if (p->ai_cur)
        p->ai_cur = p->ai_cur->ai_next;
    return try_from_current(p);
}

/* Move what OpenSSL wrote into the socket queue. */
static void pump_out(parley *p)
{
    char tmp[READ_CHUNK];
    int n;
    while (p->net_out && BIO_ctrl_pending(p->net_out) > 0 &&
           (n = BIO_read(p->net_out, tmp, sizeof tmp)) > 0)
        buf_append(&p->out, tmp, (size_t)n);
}

static void flush_out(parley *p)
{
    while (p->fd >= 0 && p->out.len > 0) {
        ssize_t n = send(p->fd, p->out.data, p->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&p->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        client_fail(p, p->phase == PH_CLOSING ? PARLEY_ERR_CLOSED : PARLEY_ERR_UNREACHABLE, 0,
                    "%s: send: %s", p->peer, strerror(errno));
        buf_reset(&p->out);
        return;
    }
}

void transport_close(parley *p)
{
    if (p->ssl && p->tls_done && p->fd >= 0) {
        SSL_shutdown(p->ssl); /* close_notify, best effort */
        pump_out(p);
        if (p->out.len)
            (void)!send(p->fd, p->out.data, p->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (p->ssl)
        SSL_free(p->ssl); /* frees both BIOs */
    p->ssl = NULL;
    p->net_in = p->net_out = NULL;
    p->tls_done = 0;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    buf_reset(&p->out);
    buf_shrink(&p->out);
    p->phase = PH_IDLE;
    ERR_clear_error();
}

static int is_policy_reason(int reason)
{
    switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_CIPHERS_AVAILABLE:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
    case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
    case SSL_R_WRONG_SIGNATURE_TYPE:
    case SSL_R_CA_MD_TOO_WEAK:
    case SSL_R_EE_KEY_TOO_SMALL:
    case SSL_R_CA_KEY_TOO_SMALL:
    case SSL_R_DH_KEY_TOO_SMALL:
        return 1;
    default:
        return 0;
    }
}

static void handshake_failed(parley *p)
{
    long vr = SSL_get_verify_result(p->ssl);
    if (vr != X509_V_OK) {
        ERR_clear_error();
        client_fail(p, PARLEY_ERR_CERTIFICATE, 0, "%s: certificate of %s not trusted: %s",
                    p->peer, p->account.domain, X509_verify_cert_error_string(vr));
        return;
    }
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    char why[400];
    tls_last_error(why, sizeof why);
    if (is_policy_reason(reason))
        client_fail(p, PARLEY_ERR_POLICY, 0,
                    "%s: no TLS protocol version or cipher acceptable to both sides "
                    "(TLS 1.2+ with AEAD required): %s", p->peer, why);
    else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG)
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: the server did not answer with TLS "
                    "(a STARTTLS port used for direct TLS?): %s", p->peer, why);
    else
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: TLS handshake failed: %s", p->peer, why);
}

static void tls_handshake(parley *p)
{
    ERR_clear_error();
    int r = SSL_do_handshake(p->ssl);
    pump_out(p);
    if (r == 1) {
        p->tls_done = 1;
        if (SSL_version(p->ssl) < TLS1_2_VERSION) { /* the context refuses it already */
            client_fail(p, PARLEY_ERR_POLICY, 1, "%s: TLS below 1.2 refused", p->peer);
            return;
        }
        char desc[128];
        tls_describe(p->ssl, desc, sizeof desc);
        client_log(p, 1, "%s: TLS established: %s", p->peer, desc);
        session_on_tls_ready(p);
        return;
    }
    int e = SSL_get_error(p->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    handshake_failed(p);
}

int transport_start_tls(parley *p)
{
    p->ssl = SSL_new(p->ssl_ctx);
    if (!p->ssl || tls_client_set_domain(p->ssl, p->account.domain) < 0) {
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "cannot set up TLS for %s", p->account.domain);
        return -1;
    }
    p->net_in = BIO_new(BIO_s_mem());
    p->net_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(p->net_in, -1); /* empty means "want more", not EOF */
    SSL_set_bio(p->ssl, p->net_in, p->net_out);
    SSL_set_connect_state(p->ssl);
    p->phase = PH_TLS;
    tls_handshake(p);
    flush_out(p);
    return 0;
}

void transport_write(parley *p, const char *data, size_t len)
{
    if (p->fd < 0 || p->phase == PH_IDLE || p->phase == PH_TCP)
        return;
    if (p->ssl) {
        if (!p->tls_done)
            return; /* nothing may be sent in clear once TLS has started */
        while (len > 0) {
            ERR_clear_error();
            int n = SSL_write(p->ssl, data, len > 0x40000000 ? 0x40000000 : (int)len);
            if (n <= 0) {
                char why[256];
                tls_last_error(why, sizeof why);
                client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: TLS write failed: %s", p->peer, why);
                return;
            }
            data += n;
            len -= (size_t)n;
        }
        pump_out(p);
    } else {
        buf_append(&p->out, data, len);
    }
    flush_out(p);
}

/* Decrypt whatever the socket gave us and pass it up. */
static void tls_read(parley *p)
{
    if (!p->tls_done) {
        tls_handshake(p);
        if (!p->tls_done || p->fail_pending)
            return;
    }
    char tmp[READ_CHUNK];
    while (p->ssl && !p->fail_pending) {
        ERR_clear_error();
        int n = SSL_read(p->ssl, tmp, sizeof tmp);
        if (n > 0) {
            session_on_data(p, tmp, (size_t)n);
            continue;
        }
        int e = SSL_get_error(p->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            client_fail(p, p->phase == PH_CLOSING ? PARLEY_ERR_CLOSED : PARLEY_ERR_UNREACHABLE, 0,
                        "%s: the server closed the TLS connection", p->peer);
            break;
        }
        char why[256];
        tls_last_error(why, sizeof why);
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: TLS error: %s", p->peer, why);
        break;
    }
    pump_out(p);
}

static void tcp_connected(parley *p)
{
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    if (soerr != 0) {
        client_fail(p, PARLEY_ERR_UNREACHABLE, 0, "%s: connect: %s", p->peer, strerror(soerr));
        return;
    }
    client_log(p, 0, "%s: TCP connected", p->peer);
    session_on_tcp_connected(p);
}

void transport_io(parley *p, short revents)
{
    if (p->fd < 0)
        return;
    if (p->phase == PH_TCP) {
        if (revents & (POLLOUT | POLLERR | POLLHUP))
            tcp_connected(p);
        flush_out(p);
        return;
    }
    if (revents & POLLOUT)
        flush_out(p);
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    char tmp[READ_CHUNK];
    for (int i = 0; i < READS_PER_CALL && p->fd >= 0 && !p->fail_pending; i++) {
        ssize_t n = recv(p->fd, tmp, sizeof tmp, 0);
        if (n > 0) {
            if (p->ssl) {
                BIO_write(p->net_in, tmp, (int)n);
                tls_read(p);
            } else {
                session_on_data(p, tmp, (size_t)n);
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n == 0)
            client_fail(p, p->phase == PH_CLOSING ? PARLEY_ERR_CLOSED : PARLEY_ERR_UNREACHABLE, 0,
                        "%s: connection closed by the server", p->peer);
        else
            client_fail(p, PARLEY_ERR_UNREACHABLE, 0, "%s: recv: %s", p->peer, strerror(errno));
        break;
    }
    flush_out(p);
}

short transport_poll_events(const parley *p)
{
    if (p->fd < 0)
        return 0;
    if (p->phase == PH_TCP)
        return POLLOUT;
    return (short)(POLLIN | (p->out.len > 0 ? POLLOUT : 0));
}
