/* component.c - the XEP-0114 client side of parley-compliance (component.h).
 *
 * One connection at a time, so the I/O is a plain poll loop on a non-blocking socket:
 * OpenSSL works on the socket directly (SIGPIPE is ignored by main.c). Every wait is
 * bounded (connect, TLS and handshake each within HANDSHAKE_MS), and so is every buffer:
 * input by the stream parser's stanza limit, output by MAX_OUTPUT. The shared secret and
 * the handshake digest are never logged and are wiped after use. */
#include "component.h"

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/tls.h"
#include "../common/util.h"
#include "../common/xmlstream.h"
#include "check.h"
#include "verdict.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* From the start of a connection attempt to an authenticated stream. */
#define HANDSHAKE_MS 10000
/* A reply that cannot be written within this time means parleyd stopped reading. */
#define WRITE_STALL_MS 10000
/* Output queued to parleyd; verdicts are small, so more means it is not reading. */
#define MAX_OUTPUT (4 * 1024 * 1024)
#define READ_CHUNK 16384
/* TCP keep-alive: a parleyd host that vanished without a FIN is noticed in ~1 minute. */
#define KEEPALIVE_IDLE 30
#define KEEPALIVE_INTVL 10
#define KEEPALIVE_CNT 3
#define XMLNS_PING "urn:xmpp:ping"

typedef struct conn {
    const comp_hooks *h;
    /* Copies of the settings: a SIGHUP handled while this session waits replaces the
     * config, and one session must use one consistent set (never TLS settings of one
     * file with the host of another). */
    char *domain;  /* our component domain */
    char *secret;  /* wiped at the end */
    char *host;
    int port;
    int tls;
    char *ca_file; /* NULL: the system store */
    char *server_name;
    char peer[80]; /* "127.0.0.1:5347" for log lines */
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    xmlstream *xs;
    buf out;
    int authenticated;
    int done;      /* the session is over (lost or stopped) */
    int stopped;   /* ... because the owner asked */
    int64_t deadline_ms; /* handshake deadline, then 0 */
    int64_t stalled_since_ms; /* output waiting since, 0 when empty */
} conn;

static void lost(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lost(conn *c, const char *fmt, ...)
{
    if (c->done)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_warn("parleyd %s: %s", c->peer, msg);
    c->done = 1;
}

/* ---- waiting ---- */

/* Wait for events on the socket, or the wake fd, until deadline (monotonic ms; 0: no
 * deadline). Returns the socket's revents, 0 on time-out, -1 if the owner asked to stop. */
static int wait_io(conn *c, short events, int64_t deadline)
{
    for (;;) {
        int timeout = -1;
        if (deadline) {
            int64_t left = deadline - time_mono_ms();
            if (left <= 0)
                return 0;
            timeout = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd p[2] = {{c->fd, events, 0}, {c->h->wake_fd, POLLIN, 0}};
        int n = poll(p, 2, timeout);
        if (n < 0 && errno == EINTR)
            continue; /* the signal's byte in the wake pipe is seen next time round */
        if (n < 0) {
            lost(c, "poll: %s", strerror(errno));
            return 0;
        }
        if (p[1].revents & POLLIN) {
            if (c->h->on_wake(c->h->ud)) {
                c->stopped = 1;
                return -1;
            }
        }
        if (p[0].revents)
            return p[0].revents;
    }
}

/* ---- connecting ---- */

static int addr_is_loopback(const struct addrinfo *ai)
{
    if (ai->ai_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ai->ai_addr;
        return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
    }
    if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ai->ai_addr;
        return IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
    }
    return 0;
}

static void set_keepalive(int fd)
{
    int one = 1, idle = KEEPALIVE_IDLE, intvl = KEEPALIVE_INTVL, cnt = KEEPALIVE_CNT;
    /* Best effort: without them the session still works, a dead host is noticed later. */
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Try one address. Returns 0 connected, -1 failed (reason in why), -2 stop. */
static int connect_addr(conn *c, const struct addrinfo *ai, char *why, size_t whylen)
{
    c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (c->fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        snprintf(why, whylen, "connect: %s", strerror(errno));
        goto fail;
    }
    int ev = wait_io(c, POLLOUT, c->deadline_ms);
    if (ev < 0)
        return -2;
    if (ev == 0) {
        snprintf(why, whylen, "connect: timed out");
        goto fail;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    if (soerr) {
        snprintf(why, whylen, "connect: %s", strerror(soerr));
        goto fail;
    }
    set_keepalive(c->fd);
    return 0;
fail:
    close(c->fd);
    c->fd = -1;
    return -1;
}

static void format_peer(const struct addrinfo *ai, char *out, size_t outlen)
{
    char host[64] = "?", port[16] = "?";
    getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, port, sizeof port,
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(out, outlen, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* Connect to the first address of the host that answers. 0, -1 or -2 (stop). */
static int tcp_connect(conn *c)
{
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    snprintf(c->peer, sizeof c->peer, "%s:%s", c->host, port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(c->host, port, &hints, &res);
    if (rc != 0) {
        lost(c, "cannot resolve %s: %s", c->host, gai_strerror(rc));
        return -1;
    }
    char why[256] = "no usable address";
    int r = -1;
    for (const struct addrinfo *ai = res; ai && r == -1; ai = ai->ai_next) {
        /* Without TLS the secret and every message travel in the clear: loopback only,
         * whatever the name resolves to. */
        if (!c->tls && !addr_is_loopback(ai)) {
            snprintf(why, sizeof why, "tls = no, and %s is not a loopback address",
                     c->host);
            continue;
        }
        format_peer(ai, c->peer, sizeof c->peer);
        r = connect_addr(c, ai, why, sizeof why);
    }
    freeaddrinfo(res);
    if (r == -1)
        lost(c, "%s", why);
    return r;
}

static int tls_connect(conn *c)
{
    char err[512];
    c->ctx = tls_client_ctx_new(c->ca_file, err, sizeof err);
    if (!c->ctx) {
        lost(c, "%s", err);
        return -1;
    }
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || tls_client_set_domain(c->ssl, c->server_name) < 0 ||
        SSL_set_fd(c->ssl, c->fd) != 1) {
        lost(c, "cannot set up TLS for %s", c->server_name);
        return -1;
    }
    /* The output buffer may move between retries of a partial write. */
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int ev = wait_io(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, c->deadline_ms);
            if (ev < 0)
                return -2;
            if (ev == 0) {
                lost(c, "TLS handshake timed out");
                return -1;
            }
            continue;
        }
        long vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK) {
            lost(c, "certificate of %s not trusted: %s", c->server_name,
                 X509_verify_cert_error_string(vr));
        } else {
            tls_last_error(err, sizeof err);
            lost(c, "TLS handshake failed: %s", err);
        }
        return -1;
    }
    char desc[128];
    tls_describe(c->ssl, desc, sizeof desc);
    log_info("parleyd %s: TLS established (%s), certificate verified for %s", c->peer, desc,
             c->server_name);
    return 0;
}

/* ---- writing ---- */

static void flush_out(conn *c)
{
    while (c->out.len > 0 && !c->done) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int len = c->out.len > 0x40000000 ? 0x40000000 : (int)c->out.len;
            int r = SSL_write(c->ssl, c->out.data, len);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    break;
                char why[256];
                tls_last_error(why, sizeof why);
                lost(c, "TLS write failed: %s", why);
                return;
            }
            n = r;
        } else {
            n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n < 0) {
                lost(c, "send: %s", strerror(errno));
                return;
            }
        }
        buf_consume(&c->out, (size_t)n);
    }
    if (c->out.len == 0)
        c->stalled_since_ms = 0;
    else if (!c->stalled_since_ms)
        c->stalled_since_ms = time_mono_ms();
}

static void send_raw(conn *c, const char *data, size_t len)
{
    if (c->done)
        return;
    if (c->out.len + len > MAX_OUTPUT) {
        lost(c, "not reading what we send (more than %d bytes queued)", MAX_OUTPUT);
        return;
    }
    buf_append(&c->out, data, len);
    flush_out(c);
}

static void send_node(conn *c, const xml_node *n)
{
    char *s = xml_to_string(n, XMLNS_COMPONENT);
    send_raw(c, s, strlen(s));
    free(s);
}

/* ---- the stream ---- */

static void send_header(conn *c)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, "<?xml version='1.0'?><stream:stream xmlns='" XMLNS_COMPONENT
                       "' xmlns:stream='" XMLNS_STREAM "' to='");
    buf_append_xml_escaped(&b, c->domain, strlen(c->domain), 1);
    buf_append_str(&b, "'>");
    send_raw(c, b.data, b.len);
    buf_free(&b);
}

/* XEP-0114: hex(SHA-1(stream id || secret)). */
static xs_action on_open(void *ud, const xml_node *root)
{
    conn *c = ud;
    const char *id = xml_get_attr(root, "id");
    if (c->authenticated || !id || !*id) {
        lost(c, c->authenticated ? "unexpected stream restart" : "stream header without an id");
        return XS_STOP;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(md, id, strlen(id)) == 1 &&
             EVP_DigestUpdate(md, c->secret, strlen(c->secret)) == 1 &&
             EVP_DigestFinal_ex(md, digest, &dlen) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) {
        lost(c, "cannot compute the handshake (SHA-1 unavailable)");
        return XS_STOP;
    }
    char msg[sizeof "<handshake></handshake>" + 2 * EVP_MAX_MD_SIZE];
    int n = snprintf(msg, sizeof msg, "<handshake>");
    for (unsigned i = 0; i < dlen; i++)
        n += snprintf(msg + n, sizeof msg - (size_t)n, "%02x", digest[i]);
    n += snprintf(msg + n, sizeof msg - (size_t)n, "</handshake>");
    send_raw(c, msg, (size_t)n);
    secure_wipe(digest, sizeof digest);
    secure_wipe(msg, sizeof msg);
    return c->done ? XS_STOP : XS_CONTINUE;
}

/* The defined condition of a stream error, for the log. */
static const char *stream_error_condition(const xml_node *err)
{
    for (const xml_node *k = xml_first_element(err); k; k = xml_next(k, NULL, NULL))
        if (str_eq(k->ns, XMLNS_STREAMS) && strcmp(k->name, "text") != 0)
            return k->name;
    return "undefined-condition";
}

static const char *refusal_hint(const char *cond)
{
    if (strcmp(cond, "not-authorized") == 0)
        return " (the secret does not match parleyd's 'component' line)";
    if (strcmp(cond, "host-unknown") == 0)
        return " (parleyd has no 'component' line for this domain)";
    if (strcmp(cond, "conflict") == 0)
        return " (another parley-compliance is connected for this domain)";
    return "";
}

static void on_iq(conn *c, const xml_node *iq)
{
    const char *type = xml_get_attr(iq, "type");
    if (!str_eq(type, "get") && !str_eq(type, "set"))
        return; /* results and errors are never answered (RFC 6120 8.2.3) */
    xml_node *reply;
    if (str_eq(type, "set") && xml_child(iq, XMLNS_PC_COMPLIANCE, "check"))
        reply = c->h->on_check(c->h->ud, iq, c->domain);
    else if (str_eq(type, "get") && xml_child(iq, XMLNS_PING, "ping"))
        reply = iq_result_new(iq, c->domain);
    else
        reply = iq_error_new(iq, c->domain, "cancel", "service-unavailable", NULL);
    send_node(c, reply);
    xml_free(reply);
}

static xs_action on_stanza(void *ud, xml_node *st)
{
    conn *c = ud;
    if (xml_is(st, XMLNS_STREAM, "error")) {
        const char *cond = stream_error_condition(st);
        lost(c, "stream error <%s/>%s", cond, refusal_hint(cond));
    } else if (!c->authenticated) {
        if (xml_is(st, XMLNS_COMPONENT, "handshake")) {
            c->authenticated = 1;
            c->deadline_ms = 0;
            log_info("parleyd %s: connected as %s", c->peer, c->domain);
        } else {
            lost(c, "unexpected <%s/> before the handshake succeeded", st->name);
        }
    } else if (xml_is(st, XMLNS_COMPONENT, "iq")) {
        on_iq(c, st);
    }
    /* Messages and presences to the component carry nothing it acts on. */
    xml_free(st);
    return c->done ? XS_STOP : XS_CONTINUE;
}

static xs_action on_close(void *ud)
{
    lost(ud, "closed the stream");
    return XS_STOP;
}

static void feed(conn *c, const char *data, size_t len)
{
    xs_status st = xmlstream_feed(c->xs, data, len);
    if (st != XS_OK && st != XS_STOPPED)
        lost(c, "sent bad XML: %s", xmlstream_error_text(c->xs));
}

/* Read what is there. */
static void read_some(conn *c)
{
    char tmp[READ_CHUNK];
    while (!c->done) {
        if (c->ssl) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, tmp, sizeof tmp);
            if (n > 0) {
                feed(c, tmp, (size_t)n);
                continue;
            }
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            if (e == SSL_ERROR_ZERO_RETURN) {
                lost(c, "closed the TLS connection");
                return;
            }
            char why[256];
            tls_last_error(why, sizeof why);
            lost(c, "connection lost: %s", *why ? why : "closed");
            return;
        }
        ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
        if (n > 0) {
            feed(c, tmp, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        lost(c, "connection lost: %s", n == 0 ? "closed" : strerror(errno));
        return;
    }
}

static void serve(conn *c)
{
    while (!c->done) {
        int64_t deadline = c->deadline_ms;
        if (c->stalled_since_ms &&
            (!deadline || c->stalled_since_ms + WRITE_STALL_MS < deadline))
            deadline = c->stalled_since_ms + WRITE_STALL_MS;
        int ev = wait_io(c, (short)(POLLIN | (c->out.len ? POLLOUT : 0)), deadline);
        if (ev < 0)
            return;
        if (ev == 0) {
            lost(c, c->authenticated ? "stopped reading (a reply was stuck for %d s)"
                                     : "no handshake answer within %d s",
                 (c->authenticated ? WRITE_STALL_MS : HANDSHAKE_MS) / 1000);
            return;
        }
        if (ev & POLLOUT)
            flush_out(c);
        if (ev & (POLLIN | POLLHUP | POLLERR))
            read_some(c);
        /* TLS may hold decrypted bytes the socket no longer signals. */
        while (!c->done && c->ssl && SSL_pending(c->ssl) > 0)
            read_some(c);
        flush_out(c);
    }
}

/* Best effort goodbye when the owner stops us: the closing tag, then close_notify. */
static void say_goodbye(conn *c)
{
    static const char bye[] = "</stream:stream>";
    send_raw(c, bye, sizeof bye - 1);
    int64_t until = time_mono_ms() + 1000;
    while (c->out.len && !c->done && time_mono_ms() < until) {
        struct pollfd p = {c->fd, POLLOUT, 0};
        if (poll(&p, 1, 100) > 0)
            flush_out(c);
    }
    if (c->ssl)
        SSL_shutdown(c->ssl);
}

comp_end component_run(const pc_config *cfg, const comp_hooks *hooks, int *authenticated)
{
    static const xmlstream_handlers handlers = {on_open, on_stanza, on_close};
    conn c;
    memset(&c, 0, sizeof c);
    c.h = hooks;
    c.fd = -1;
    c.domain = xstrdup(cfg->component);
    c.secret = xstrdup(cfg->secret);
    c.host = xstrdup(cfg->server_host);
    c.port = cfg->server_port;
    c.tls = cfg->tls;
    c.ca_file = cfg->ca_file ? xstrdup(cfg->ca_file) : NULL;
    c.server_name = xstrdup(cfg->server_name);
    size_t max_stanza = cfg->max_stanza_size;
    buf_init(&c.out);
    c.deadline_ms = time_mono_ms() + HANDSHAKE_MS;

    int r = tcp_connect(&c);
    if (r == 0 && c.tls)
        r = tls_connect(&c);
    if (r == 0) {
        log_debug("parleyd %s: opening the component stream for %s", c.peer, c.domain);
        c.xs = xmlstream_new(&handlers, &c, max_stanza);
        send_header(&c);
        serve(&c);
    }
    if (c.stopped && !c.done && c.xs) /* the stream was opened: close it */
        say_goodbye(&c);
    *authenticated = c.authenticated;
    if (c.xs)
        xmlstream_free(c.xs);
    if (c.ssl)
        SSL_free(c.ssl);
    if (c.ctx)
        SSL_CTX_free(c.ctx);
    if (c.fd >= 0)
        close(c.fd);
    ERR_clear_error();
    if (c.out.data) /* it held the handshake digest */
        secure_wipe(c.out.data, c.out.cap);
    buf_free(&c.out);
    secure_wipe(c.secret, strlen(c.secret));
    free(c.secret);
    free(c.domain);
    free(c.host);
    free(c.ca_file);
    free(c.server_name);
    return c.stopped ? COMP_STOPPED : COMP_LOST;
}
