/* https.c - libparley's blocking HTTPS client for file transfer (parley_https_put/get):
 * one request per connection, TLS under the project's policy (common/tls.h) with the
 * chain and the URL's host name verified, every wait bounded, responses bounded. */
#include "../common/tls.h"
#include "../common/util.h"
#include "parley.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define HEAD_MAX 16384          /* response status line and headers */
#define ERROR_BODY_MAX 512      /* of an error response, shown to the user */

typedef struct url_parts {
    char host[256];
    char port[8];
    char path[2048];
} url_parts;

static int parse_url(const char *url, url_parts *u)
{
    if (strncmp(url, "https://", 8) != 0)
        return -1;
    const char *h = url + 8;
    size_t hl = strcspn(h, ":/");
    if (hl == 0 || hl >= sizeof u->host)
        return -1;
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    const char *p = h + hl;
    snprintf(u->port, sizeof u->port, "443");
    if (*p == ':') {
        size_t pl = strspn(p + 1, "0123456789");
        if (pl == 0 || pl > 5)
            return -1;
        memcpy(u->port, p + 1, pl);
        u->port[pl] = '\0';
        p += 1 + pl;
    }
    if (*p != '/' || strlen(p) >= sizeof u->path || strpbrk(p, " \r\n\t"))
        return -1;
    snprintf(u->path, sizeof u->path, "%s", p);
    return 0;
}

typedef struct hconn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} hconn;

static void hclose(hconn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    ERR_clear_error();
}

static parley_error hopen(hconn *c, const url_parts *u, const char *ca_file, int timeout_ms,
                          char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot resolve: %s", u->host, gai_strerror(rc));
        return PARLEY_ERR_UNREACHABLE;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    for (struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        /* Blocking with time limits: a stalled peer ends the transfer, never hangs it. */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            c->fd = fd;
        else
            close(fd);
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        snprintf(err, errlen, "%s:%s: cannot connect: %s", u->host, u->port, strerror(errno));
        return PARLEY_ERR_UNREACHABLE;
    }
    char why[512];
    c->ctx = tls_client_ctx_new(ca_file, why, sizeof why);
    if (!c->ctx) {
        snprintf(err, errlen, "TLS: %s", why);
        hclose(c);
        return PARLEY_ERR_INVALID;
    }
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || tls_client_set_domain(c->ssl, u->host) < 0 || SSL_set_fd(c->ssl, c->fd) != 1) {
        snprintf(err, errlen, "cannot set up TLS for %s", u->host);
        hclose(c);
        return PARLEY_ERR_PROTOCOL;
    }
    if (SSL_connect(c->ssl) != 1) {
        long vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK) {
            snprintf(err, errlen, "certificate of %s not trusted: %s", u->host,
                     X509_verify_cert_error_string(vr));
            hclose(c);
            return PARLEY_ERR_CERTIFICATE;
        }
        tls_last_error(why, sizeof why);
        snprintf(err, errlen, "%s: TLS handshake failed: %s", u->host, why);
        hclose(c);
        return PARLEY_ERR_PROTOCOL;
    }
    return PARLEY_OK;
}

static int hwrite(hconn *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        int n = SSL_write(c->ssl, p, len > (1 << 20) ? (1 << 20) : (int)len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read the status line and headers; the bytes of the body already read stay in head
 * after *body_off. Returns the status, or -1. */
static int read_head(hconn *c, char *head, size_t *have, size_t *body_off, long long *clen)
{
    *have = 0;
    *clen = -1;
    for (;;) {
        head[*have] = '\0';
        char *end = strstr(head, "\r\n\r\n");
        if (end) {
            *body_off = (size_t)(end + 4 - head);
            break;
        }
        if (*have >= HEAD_MAX - 1)
            return -1;
        int n = SSL_read(c->ssl, head + *have, (int)(HEAD_MAX - 1 - *have));
        if (n <= 0)
            return -1;
        *have += (size_t)n;
    }
    int status;
    if (sscanf(head, "HTTP/1.%*d %3d", &status) != 1)
        return -1;
    for (char *line = strstr(head, "\r\n"); line && line < head + *body_off; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
            *clen = strtoll(line + 17, NULL, 10);
    return status;
}

/* The short text body of an error response, for the user. */
static void error_text(hconn *c, char *head, size_t have, size_t off, int status, char *err,
                       size_t errlen)
{
    char body[ERROR_BODY_MAX + 1];
    size_t n = have - off < ERROR_BODY_MAX ? have - off : ERROR_BODY_MAX;
    memcpy(body, head + off, n);
    while (n < ERROR_BODY_MAX) {
        int r = SSL_read(c->ssl, body + n, (int)(ERROR_BODY_MAX - n));
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    body[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)body[i] < 0x20)
            body[i] = ' ';
    while (n > 0 && body[n - 1] == ' ')
        body[--n] = '\0';
    snprintf(err, errlen, "HTTP %d: %s", status, n ? body : "(no reason given)");
}

static parley_error status_error(int status)
{
    return status == 403 || status == 413 ? PARLEY_ERR_POLICY : PARLEY_ERR_PROTOCOL;
}

parley_error parley_https_put(const char *url, const char *ca_file, const char *path,
                              const char *content_type, int timeout_ms, char *err,
                              size_t errlen)
{
    url_parts u;
    if (!url || parse_url(url, &u) < 0) {
        snprintf(err, errlen, "not an https:// URL");
        return PARLEY_ERR_INVALID;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: %s", path, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return PARLEY_ERR_INVALID;
    }
    hconn c;
    parley_error e = hopen(&c, &u, ca_file, timeout_ms, err, errlen);
    if (e != PARLEY_OK) {
        close(fd);
        return e;
    }
    char req[3072];
    int n = snprintf(req, sizeof req,
                     "PUT %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Length: %lld\r\n"
                     "Content-Type: %s\r\nConnection: close\r\nUser-Agent: parley\r\n\r\n",
                     u.path, u.host, u.port, (long long)sb.st_size,
                     content_type ? content_type : "application/octet-stream");
    int failed = n < 0 || (size_t)n >= sizeof req || hwrite(&c, req, (size_t)n) < 0;
    char chunk[65536];
    long long left = sb.st_size;
    while (!failed && left > 0) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r <= 0 || hwrite(&c, chunk, (size_t)r) < 0)
            failed = 1;
        else
            left -= r;
    }
    close(fd);
    char *head = xmalloc(HEAD_MAX);
    size_t have = 0, off = 0;
    long long clen;
    /* Even when sending failed the server may have said why (413, 507) before closing. */
    int status = read_head(&c, head, &have, &off, &clen);
    if (status < 0) {
        snprintf(err, errlen, "%s: %s", u.host, failed ? "upload interrupted" : "no valid answer");
        e = PARLEY_ERR_UNREACHABLE;
    } else if (status != 200 && status != 201) {
        error_text(&c, head, have, off, status, err, errlen);
        e = status_error(status);
    } else if (failed) {
        snprintf(err, errlen, "%s: upload interrupted", u.host);
        e = PARLEY_ERR_UNREACHABLE;
    }
    free(head);
    hclose(&c);
    return e;
}

/* Send a request without a body (GET, HEAD) and read the answer's head. */
static int ask(hconn *c, const url_parts *u, const char *method, char *head, size_t *have,
               size_t *off, long long *clen)
{
    char req[3072];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\nUser-Agent: parley\r\n\r\n",
                     method, u->path, u->host, u->port);
    if (n <= 0 || (size_t)n >= sizeof req || hwrite(c, req, (size_t)n) < 0)
        return -1;
    return read_head(c, head, have, off, clen);
}

/* One request on a fresh connection, up to the answer's head. */
typedef struct exchange {
    hconn c;
    url_parts u;
    char *head;
    size_t have, off;
    long long clen;
    int status; /* < 0: no valid answer */
} exchange;

static parley_error exchange_start(exchange *x, const char *url, const char *method,
                                   const char *ca_file, int timeout_ms, char *err, size_t errlen)
{
    if (!url || parse_url(url, &x->u) < 0) {
        snprintf(err, errlen, "not an https:// URL");
        return PARLEY_ERR_INVALID;
    }
    parley_error e = hopen(&x->c, &x->u, ca_file, timeout_ms, err, errlen);
    if (e != PARLEY_OK)
        return e;
    x->head = xmalloc(HEAD_MAX);
    x->have = x->off = 0;
    x->clen = -1;
    x->status = ask(&x->c, &x->u, method, x->head, &x->have, &x->off, &x->clen);
    if (x->status < 0)
        snprintf(err, errlen, "%s: no valid answer", x->u.host);
    return PARLEY_OK;
}

static void exchange_end(exchange *x)
{
    free(x->head);
    hclose(&x->c);
}

static parley_error status_code_error(int status)
{
    if (status < 0)
        return PARLEY_ERR_UNREACHABLE;
    return status == 404 ? PARLEY_ERR_INVALID : status_error(status);
}

parley_error parley_https_head(const char *url, const char *ca_file, int timeout_ms,
                               char *err, size_t errlen)
{
    exchange x;
    parley_error e = exchange_start(&x, url, "HEAD", ca_file, timeout_ms, err, errlen);
    if (e != PARLEY_OK)
        return e;
    if (x.status >= 0 && x.status != 200)
        /* an answer to HEAD has no body to read the reason from */
        snprintf(err, errlen, "HTTP %d", x.status);
    e = x.status == 200 ? PARLEY_OK : status_code_error(x.status);
    exchange_end(&x);
    return e;
}

parley_error parley_https_get(const char *url, const char *ca_file, const char *dest,
                              int timeout_ms, char *err, size_t errlen)
{
    exchange x;
    parley_error e = exchange_start(&x, url, "GET", ca_file, timeout_ms, err, errlen);
    if (e != PARLEY_OK)
        return e;
    hconn *c = &x.c;
    char *head = x.head;
    size_t have = x.have, off = x.off;
    long long clen = x.clen;
    if (x.status < 0) {
        e = PARLEY_ERR_UNREACHABLE;
    } else if (x.status != 200) {
        error_text(c, head, have, off, x.status, err, errlen);
        e = status_code_error(x.status);
    } else if (clen < 0) {
        snprintf(err, errlen, "%s: answer without Content-Length", x.u.host);
        e = PARLEY_ERR_PROTOCOL;
    } else {
        char *tmp = xasprintf("%s.part", dest);
        /* O_EXCL on both: nothing the user has is ever overwritten. */
        int fd = access(dest, F_OK) == 0 ? -1
                                          : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", access(dest, F_OK) == 0 ? dest : tmp,
                     access(dest, F_OK) == 0 ? "already exists" : strerror(errno));
            e = PARLEY_ERR_INVALID;
        } else {
            long long got = (long long)(have - off) > clen ? clen : (long long)(have - off);
            int bad = write(fd, head + off, (size_t)got) != (ssize_t)got;
            char chunk[65536];
            while (!bad && got < clen) {
                int r = SSL_read(c->ssl, chunk, (int)sizeof chunk);
                if (r <= 0)
                    break;
                if (got + r > clen)
                    r = (int)(clen - got);
                bad = write(fd, chunk, (size_t)r) != r;
                got += r;
            }
            if (fsync(fd) < 0)
                bad = 1;
            close(fd);
            if (bad || got != clen || link(tmp, dest) < 0) {
                snprintf(err, errlen, "%s: %s", dest,
                         bad ? strerror(errno) : got != clen ? "download interrupted" : strerror(errno));
                e = got != clen ? PARLEY_ERR_UNREACHABLE : PARLEY_ERR_INVALID;
            }
            unlink(tmp);
        }
        free(tmp);
    }
    exchange_end(&x);
    return e;
}
