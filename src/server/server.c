/* server.c - bringing parleyd up and down: store, TLS, listeners, timers, signals. */
#include "server.h"
#include "../common/dict.h"
#include "../common/log.h"
#include "../common/tls.h"
#include "authlimit.h"
#include "c2s.h"
#include "compliance.h"
#include "component.h"
#include "conn.h"
#include "http.h"
#include "iq_out.h"
#include "listener.h"
#include "mam.h"
#include "muc.h"
#include "upload.h"
#include "node.h"
#include "s2s.h"
#include "verdict.h"
#include "pep.h"
#include "policy_service.h"
#include "tls_pool.h"
#include "sm.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void on_tick(ev_loop *loop, void *ud)
{
    server *srv = ud;
    c2s_housekeeping(srv);
    component_housekeeping(srv);
    s2s_housekeeping(srv);
    node_housekeeping(srv);
    conn_expire_lingering(srv);
    authlimit_expire(srv->authlimit);
    policy_service_tick(srv);
    http_housekeeping(srv);
    upload_housekeeping(srv);
}

static void on_hourly(ev_loop *loop, void *ud)
{
    mam_expire(ud);
}

static void on_fast_tick(ev_loop *loop, void *ud)
{
    iq_out_expire(ud);
}

static void before_sleep(ev_loop *loop, void *ud)
{
    /* Records first: the messages they release are then written out in the same pass.
     * The users' archive commits before any output leaves: an <a/> or a delivery never
     * precedes the archive rows of the messages it stands for (mam.c). */
    server *srv = ud;
    compliance_flush(srv);
    mam_flush(srv);
    conn_flush_all(srv);
    srv->loop_handshake_us = 0;
}

static void on_signal(ev_loop *loop, int signo, void *ud)
{
    server *srv = ud;
    if (signo == SIGHUP) {
        log_info("SIGHUP: reloading certificate and key");
        server_reload_tls(srv);
        if (srv->cfg.log_file && log_open_file(srv->cfg.log_file) < 0)
            log_error("cannot reopen log file %s", srv->cfg.log_file);
        return;
    }
    log_info("signal %d: shutting down", signo);
    ev_stop(loop);
}

int server_reload_tls(server *srv)
{
    char err[512];
    SSL_CTX *ctx = tls_server_ctx_new(srv->cfg.cert_file, srv->cfg.key_file, NULL, err, sizeof err);
    if (!ctx) {
        log_error("TLS reload failed, keeping the current certificate: %s", err);
        return -1;
    }
    /* Established connections hold a reference to the old context. */
    SSL_CTX_free(srv->tls_ctx);
    srv->tls_ctx = ctx;
    log_info("TLS certificate loaded from %s", srv->cfg.cert_file);
    return 0;
}

/* Room for max_connections plus the store, listeners and the reserve descriptor. */
static int raise_fd_limit(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 64;
    rlim_t target = (rlim_t)want;
    if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max)
        target = rl.rlim_max;
    if (rl.rlim_cur < target) {
        rl.rlim_cur = target;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (int)rl.rlim_cur;
}

/* The CPUs this process may run on: its affinity mask (taskset, a container's cpuset)
 * rather than the machine's, so that threads are not started for CPUs it cannot use. */
static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online < 1 ? 1 : (int)online;
}

/* tls_threads: -1 means one thread per usable CPU (at most 64). Even with one CPU: a
 * thread is as fast as the loop without its handshake budget and ~9 % faster than the
 * loop with it (bench/RESULTS.md, "Handshakes in the loop"). */
static int start_tls_pool(server *srv)
{
    int n = srv->cfg.tls_threads;
    if (n < 0)
        n = usable_cpus();
    if (n > 64)
        n = 64;
    if (n == 0) {
        log_info("TLS handshakes in the event loop");
        return 0;
    }
    srv->tls_pool = tls_pool_new(srv->loop, n);
    if (!srv->tls_pool) {
        log_error("cannot start %d TLS handshake threads", n);
        return -1;
    }
    log_info("TLS handshakes on %d thread%s", n, n == 1 ? "" : "s");
    return 0;
}

int server_init(server *srv, const config *cfg)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = *cfg;
    srv->spare_fd = -1;
    log_set_level((log_level)cfg->log_level);

    int max_fds = raise_fd_limit(cfg->max_connections + 64);
    if (max_fds < cfg->max_connections + 64) {
        /* Past the limit accept() fails anyway; refusing cleanly at a known count is better. */
        srv->cfg.max_connections = max_fds > 128 ? max_fds - 64 : max_fds / 2;
        log_info("max_connections lowered from %d to %d by the open-file limit (%d)",
                 cfg->max_connections, srv->cfg.max_connections, max_fds);
    }

    char err[512];
    srv->tls_ctx = tls_server_ctx_new(cfg->cert_file, cfg->key_file, NULL, err, sizeof err);
    if (!srv->tls_ctx) {
        log_error("TLS: %s", err);
        return -1;
    }
    srv->store = store_open(cfg->store, err, sizeof err);
    if (!srv->store) {
        char shown[512];
        store_uri_redacted(cfg->store, shown, sizeof shown);
        log_error("store %s: %s", shown, err);
        return -1;
    }
    if (compliance_open(srv) < 0)
        return -1;
    srv->loop = ev_new(max_fds + 16);
    if (!srv->loop) {
        log_error("cannot create the event loop");
        return -1;
    }
    if (start_tls_pool(srv) < 0)
        return -1;
    srv->users = dict_new();
    srv->authlimit = authlimit_new(cfg->auth_fail_limit, cfg->auth_fail_window);
    srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (muc_init(srv) < 0)
        return -1;

    if (cfg->c2s_port && listener_open(srv, cfg->bind_address, cfg->c2s_port, LISTEN_C2S_STARTTLS) < 0)
        return -1;
    if (cfg->tls_port && listener_open(srv, cfg->bind_address, cfg->tls_port, LISTEN_C2S_DIRECT_TLS) < 0)
        return -1;
    if (s2s_init(srv) < 0 || node_init(srv) < 0)
        return -1;
    if (cfg->s2s_port && listener_open(srv, cfg->bind_address, cfg->s2s_port, LISTEN_S2S) < 0)
        return -1;
    if (cfg->ncomponents && cfg->component_port &&
        listener_open(srv, cfg->bind_address, cfg->component_port,
                      cfg->component_tls ? LISTEN_COMPONENT_TLS : LISTEN_COMPONENT_PLAIN) < 0)
        return -1;
    if (cfg->https_port && (upload_open(srv) < 0 ||
                            listener_open(srv, cfg->bind_address, cfg->https_port, LISTEN_HTTPS) < 0))
        return -1;

    static const int signals[] = {SIGHUP, SIGTERM, SIGINT, 0};
    if (ev_signals(srv->loop, signals, on_signal, srv) < 0) {
        log_error("cannot set up signal handling");
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    ev_every(srv->loop, 1000, on_tick, srv);
    ev_every(srv->loop, 100, on_fast_tick, srv);
    ev_every(srv->loop, 3600 * 1000, on_hourly, srv);
    mam_expire(srv);
    ev_before_sleep(srv->loop, before_sleep, srv);
    char shown[512];
    store_uri_redacted(cfg->store, shown, sizeof shown);
    log_info("serving %s (store %s)", cfg->domain, shown);
    return 0;
}

void server_run(server *srv)
{
    ev_run(srv->loop);
}

void server_shutdown(server *srv)
{
    /* Held messages go out (or back) before the sessions are told to go away. */
    compliance_flush(srv);
    if (srv->loop) {
        listener_close_all(srv);
        /* Handshakes still on the pool's threads come back (abandoned) to be closed
         * with the rest; new ones from here on run in the loop. */
        tls_pool_free(srv->tls_pool);
        srv->tls_pool = NULL;
        /* Components first: checks waiting for the compliance server fail now, and the
         * messages they held are delivered or bounced while their senders are online. */
        component_shutdown_all(srv);
        compliance_flush(srv);
        c2s_shutdown_all(srv);
        http_close_all(srv);
        conn_flush_all(srv); /* reaps them: their requests end before upload_close */
        /* After the users: their unavailable presence goes out before the links close. */
        s2s_shutdown_all(srv);
        node_shutdown(srv);
    }
    if (srv->compliance)
        compliance_audit(srv, "server", "server-stop", srv->cfg.domain, NULL, NULL);
    muc_free(srv);
    iq_out_free(srv);
    s2s_free(srv);
    compliance_close(srv);
    mam_free(srv); /* after the compliance archive: the messages it releases are archived */
    verdict_free(srv);
    policy_service_free(srv);
    pep_free(srv);
    upload_close(srv);
    dict_free(srv->users, NULL);
    dict_free(srv->services, free);
    dict_free(srv->sm_sessions, NULL);
    sm_free(srv);
    authlimit_free(srv->authlimit);
    store_close(srv->store);
    SSL_CTX_free(srv->tls_ctx);
    ev_free(srv->loop);
    if (srv->spare_fd >= 0)
        close(srv->spare_fd);
    memset(srv, 0, sizeof *srv);
}
