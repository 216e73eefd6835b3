/* listener.c - bind, listen and accept; hands each client to c2s, each component to
 * component.c and each server to s2s.c. */
#include "listener.h"
#include "../common/log.h"
#include "c2s.h"
#include "component.h"
#include "http.h"
#include "s2s.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bounded so one busy listener cannot starve established sessions. */
#define MAX_ACCEPTS_PER_EVENT 256

static void format_peer(const struct sockaddr_storage *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, outlen, "%s:%d", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, outlen, "[%s]:%d", host, port);
    }
}

/* Out of descriptors: accept and drop one pending client using the reserve fd, so the
 * listener does not spin on a connection it can never take. */
static void shed_connection(server *srv, int lfd)
{
    if (srv->spare_fd < 0)
        return;
    close(srv->spare_fd);
    int fd = accept(lfd, NULL, NULL);
    if (fd >= 0)
        close(fd);
    srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_accept(ev_loop *loop, int lfd, void *ud, int mask)
{
    server *srv = ud;
    listen_kind kind = LISTEN_C2S_STARTTLS;
    for (int i = 0; i < srv->nlisten; i++)
        if (srv->listen_fds[i] == lfd)
            kind = (listen_kind)srv->listen_kinds[i];
    for (int n = 0; n < MAX_ACCEPTS_PER_EVENT; n++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = accept4(lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                log_warn("out of file descriptors: refusing a connection");
                shed_connection(srv, lfd);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED) {
                log_warn("accept: %s", strerror(errno));
            }
            return;
        }
        char peer[64];
        format_peer(&sa, peer, sizeof peer);
        if (srv->nconns >= srv->cfg.max_connections) {
            log_warn("%s: refused: max_connections (%d) reached", peer, srv->cfg.max_connections);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (kind == LISTEN_S2S)
            s2s_accept(srv, fd, peer);
        else if (kind == LISTEN_COMPONENT_TLS || kind == LISTEN_COMPONENT_PLAIN)
            component_accept(srv, fd, peer, kind == LISTEN_COMPONENT_TLS);
        else if (kind == LISTEN_HTTPS)
            http_accept(srv, fd, peer);
        else
            c2s_accept(srv, fd, peer, kind == LISTEN_C2S_DIRECT_TLS);
    }
}

int listener_open(server *srv, const char *address, int port, listen_kind kind)
{
    if (srv->nlisten >= (int)(sizeof srv->listen_fds / sizeof srv->listen_fds[0])) {
        log_error("too many listeners");
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(address, portstr, &hints, &res);
    if (rc != 0) {
        log_error("bind_address '%s': %s", address, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        log_error("cannot listen on %s port %d: %s", address, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    if (ev_watch(srv->loop, fd, EV_READ, on_accept, srv) < 0) {
        log_error("cannot watch listener: %s", strerror(errno));
        close(fd);
        return -1;
    }
    srv->listen_kinds[srv->nlisten] = (int)kind;
    srv->listen_fds[srv->nlisten++] = fd;
    static const char *const what[] = {"client, STARTTLS", "client, direct TLS",
                                       "components, direct TLS", "components, plain",
                                       "HTTPS file transfer", "servers, STARTTLS"};
    log_info("listening on %s port %d (%s)", address, port, what[kind]);
    return 0;
}

void listener_close_all(server *srv)
{
    for (int i = 0; i < srv->nlisten; i++) {
        ev_unwatch(srv->loop, srv->listen_fds[i]);
        close(srv->listen_fds[i]);
    }
    srv->nlisten = 0;
}
