/* client.c - the libparley handle: options, lifecycle, the process loop and its timers,
 * failure handling across the server list, reconnect with bounded back-off, events. */
#include "../common/tls.h"
#include "../common/util.h"
#include "internal.h"
#include "omemo/omemo.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLOSE_WAIT_MS 2000

const char *parley_strerror(parley_error err)
{
    switch (err) {
    case PARLEY_OK: return "success";
    case PARLEY_ERR_INVALID: return "invalid argument or option";
    case PARLEY_ERR_UNREACHABLE: return "server unreachable";
    case PARLEY_ERR_CERTIFICATE: return "server certificate not trusted";
    case PARLEY_ERR_AUTH: return "authentication failed";
    case PARLEY_ERR_POLICY: return "refused by security policy";
    case PARLEY_ERR_TIMEOUT: return "timed out";
    case PARLEY_ERR_PROTOCOL: return "protocol error";
    case PARLEY_ERR_STATE: return "not connected";
    case PARLEY_ERR_CLOSED: return "connection closed";
    }
    return "unknown error";
}

void parley_options_init(parley_options *o)
{
    memset(o, 0, sizeof *o);
    o->carbons = 1;
    o->allow_plain = 1;
    o->initial_presence = 1;
    o->fetch_roster = 1;
    o->connect_timeout_ms = 15000;
    o->ping_interval_ms = 60000;
    o->ping_timeout_ms = 20000;
    o->reconnect = 1;
    o->reconnect_min_ms = 1000;
    o->reconnect_max_ms = 60000;
    o->max_stanza = 1024 * 1024;
    o->e2e = 1;
    o->e2e_plain_default = 1;
}

void client_log(parley *p, int level, const char *fmt, ...)
{
    if (!p->opt.on_log)
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    p->opt.on_log(level, line, p->opt.userdata);
}

void client_emit(parley *p, const parley_event *ev)
{
    if (!p->opt.on_event)
        return;
    parley_event marked = *ev;
    client_ext_emit(p, &marked); /* a carbon or an archived message says so */
    p->opt.on_event(p, &marked, p->opt.userdata);
}

/* When several addresses fail in one attempt, report the most telling failure. */
static int error_rank(parley_error e)
{
    switch (e) {
    case PARLEY_OK: return 0;
    case PARLEY_ERR_UNREACHABLE: return 1;
    case PARLEY_ERR_TIMEOUT: return 2;
    case PARLEY_ERR_PROTOCOL: return 3;
    case PARLEY_ERR_CERTIFICATE: return 4;
    default: return 5;
    }
}

void client_fail(parley *p, parley_error err, int permanent, const char *fmt, ...)
{
    if (p->fail_pending)
        return; /* the first cause is the one worth reporting */
    int online = p->phase == PH_STREAM && p->neg == NEG_ONLINE;
    if (!online && error_rank(err) < error_rank(p->err)) {
        p->fail_pending = 1; /* an earlier address failed in a more telling way */
        p->fail_permanent = permanent;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errtext, sizeof p->errtext, fmt, ap);
    va_end(ap);
    p->err = err;
    p->fail_permanent = permanent;
    p->fail_pending = 1;
    client_log(p, err == PARLEY_ERR_CLOSED ? 0 : 2, "%s: %s", parley_strerror(err), p->errtext);
}

int client_backoff_ms(int attempt, int min_ms, int max_ms, double rnd)
{
    if (min_ms < 1)
        min_ms = 1;
    if (max_ms < min_ms)
        max_ms = min_ms;
    if (attempt < 1)
        attempt = 1;
    int64_t d = min_ms;
    for (int i = 1; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    if (rnd < 0)
        rnd = 0;
    if (rnd >= 1)
        rnd = 0.999999;
    /* Equal jitter: never less than half the step (so back-off really backs off), and
     * spread over the other half (so clients of a restarted server do not stampede). */
    return (int)(d / 2 + (int64_t)((double)(d - d / 2) * rnd));
}

static double random_unit(void)
{
    uint32_t r;
    random_bytes(&r, sizeof r);
    return (double)r / 4294967296.0;
}

void client_free_servers(server_addr *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].host);
        free(s[i].port);
    }
    free(s);
}

static int valid_port(const char *s)
{
    if (!*s || strlen(s) > 5)
        return 0;
    long v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        v = v * 10 + (*c - '0');
    }
    return v >= 1 && v <= 65535;
}

int client_parse_servers(const char *spec, const char *default_port, server_addr **out)
{
    *out = NULL;
    if (!spec)
        return -1;
    server_addr *list = NULL;
    size_t n = 0;
    const char *p = spec;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0)
            goto bad;
        char *item = xstrndup(p, len);
        char *host, *port = NULL;
        if (item[0] == '[') {
            char *close = strchr(item, ']');
            if (!close || close == item + 1) {
                free(item);
                goto bad;
            }
            *close = '\0';
            host = item + 1;
            if (close[1] == ':')
                port = close + 2;
            else if (close[1] != '\0') {
                free(item);
                goto bad;
            }
        } else {
            host = item;
            char *colon = strchr(item, ':');
            if (colon) {
                if (strchr(colon + 1, ':')) { /* bare IPv6 needs brackets */
                    free(item);
                    goto bad;
                }
                *colon = '\0';
                port = colon + 1;
            }
        }
        if (!*host || (port && !valid_port(port)) || (!port && !valid_port(default_port))) {
            free(item);
            goto bad;
        }
        list = xrealloc(list, (n + 1) * sizeof *list);
        list[n].host = xstrdup(host);
        list[n].port = xstrdup(port ? port : default_port);
        n++;
        free(item);
        if (!end)
            break;
        p = end + 1;
    }
    *out = list;
    return (int)n;
bad:
    client_free_servers(list, n);
    return -1;
}

static char *read_password_file(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whylen, "cannot open password file %s: %s", path, strerror(errno));
        return NULL;
    }
    char line[1024];
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    if (!got) {
        snprintf(why, whylen, "password file %s is empty", path);
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    char *pw = xstrdup(line);
    secure_wipe(line, sizeof line);
    return pw;
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

parley *parley_new(const parley_options *o, parley_error *err, char *why, size_t whylen)
{
    char reason[512] = "";
    parley *p = NULL;
    if (err)
        *err = PARLEY_ERR_INVALID;
    if (!o || !o->jid) {
        snprintf(reason, sizeof reason, "an account JID is required");
        goto fail;
    }
    p = xcalloc(1, sizeof *p);
    p->opt = *o;
    p->fd = -1;
    p->show = PARLEY_SHOW_AVAILABLE;
    p->priority = o->priority;
    p->roster = dict_new();
    p->next_hook_id = 1;
    buf_init(&p->out);
    if (jid_parse(o->jid, &p->account) < 0 || !p->account.local) {
        snprintf(reason, sizeof reason, "invalid account JID '%s' (user@domain expected)", o->jid);
        goto fail;
    }
    p->account_bare = jid_bare(&p->account);
    if (o->password)
        p->password = xstrdup(o->password);
    else if (o->password_file && !(p->password = read_password_file(o->password_file, reason,
                                                                     sizeof reason)))
        goto fail;
    if (!p->password || !*p->password) {
        snprintf(reason, sizeof reason, "a password (or password file) is required");
        goto fail;
    }
    p->ca_file = dup_or_null(o->ca_file);
    p->opt.password = NULL;
    p->opt.password_file = NULL;
    p->opt.ca_file = p->ca_file;
    p->opt.jid = p->account_bare;
    p->opt.server = NULL;
    const char *defport = o->direct_tls ? "5223" : "5222";
    int n = client_parse_servers(o->server ? o->server : p->account.domain, defport, &p->servers);
    if (n <= 0) {
        snprintf(reason, sizeof reason, "invalid server list '%s' (host:port[,host:port...])",
                 o->server ? o->server : p->account.domain);
        goto fail;
    }
    p->nservers = (size_t)n;
    policy_defaults(p);
    if (o->e2e) {
        /* the key store is opened here: a wrong key or a damaged file stops parley_new */
        p->omemo = omemo_new(p, reason, sizeof reason);
        if (!p->omemo)
            goto fail;
    }
    p->opt.e2e_store_key = NULL;
    p->opt.e2e_store_passphrase = NULL;
    p->opt.e2e_store = NULL;
    p->opt.e2e_label = NULL;
    if (p->opt.max_stanza < 4096)
        p->opt.max_stanza = 4096;
    if (p->opt.connect_timeout_ms <= 0)
        p->opt.connect_timeout_ms = 15000;
    if (p->opt.ping_timeout_ms <= 0)
        p->opt.ping_timeout_ms = 20000;
    char tlserr[400];
    p->ssl_ctx = tls_client_ctx_new(p->ca_file, tlserr, sizeof tlserr);
    if (!p->ssl_ctx) {
        snprintf(reason, sizeof reason, "%s", tlserr);
        goto fail;
    }
    if (err)
        *err = PARLEY_OK;
    return p;
fail:
    if (why && whylen)
        snprintf(why, whylen, "%s", reason);
    parley_free(p);
    return NULL;
}

void parley_free(parley *p)
{
    if (!p)
        return;
    transport_close(p);
    session_reset(p);
    im_fail_pending_iqs(p, PARLEY_ERR_CLOSED);
    omemo_free(p->omemo); /* after the IQ callbacks above, which still look at it */
    p->omemo = NULL;
    im_roster_free(p);
    im_hooks_free(p);
    sm_free(p);
    client_ext_free(p); /* after the IQ callbacks above, which free what they hold */
    dict_free(p->roster, NULL);
    if (p->ai_list)
        freeaddrinfo(p->ai_list);
    SSL_CTX_free(p->ssl_ctx);
    client_free_servers(p->servers, p->nservers);
    jid_clear(&p->account);
    free(p->account_bare);
    if (p->password) {
        secure_wipe(p->password, strlen(p->password));
        free(p->password);
    }
    free(p->ca_file);
    free(p->status);
    buf_free(&p->out);
    free(p);
}

/* Begin an attempt over the whole server list, starting with the last one that worked. */
static void start_attempt(parley *p)
{
    p->reconnect_at_ms = 0;
    p->tried = 0;
    p->server_idx = p->first_idx;
    p->err = PARLEY_OK;
    p->errtext[0] = '\0';
    if (transport_start(p) < 0) {
        /* no address could even be tried: p->err says why; the teardown reports it */
        p->fail_pending = 1;
        p->fail_permanent = 0;
    }
}

parley_error parley_connect(parley *p)
{
    if (!p)
        return PARLEY_ERR_INVALID;
    if (p->phase != PH_IDLE || p->reconnect_at_ms)
        return PARLEY_ERR_STATE;
    p->want_online = 1;
    p->ever_online = 0;
    p->attempts = 0;
    start_attempt(p);
    return PARLEY_OK;
}

parley_error parley_disconnect(parley *p)
{
    if (!p)
        return PARLEY_ERR_INVALID;
    p->want_online = 0;
    p->reconnect_at_ms = 0;
    if (p->phase == PH_STREAM && p->neg == NEG_ONLINE) {
        session_close_stream(p);
        p->phase = PH_CLOSING;
        p->closing_deadline_ms = time_mono_ms() + CLOSE_WAIT_MS;
        return PARLEY_OK;
    }
    if (p->phase == PH_IDLE)
        omemo_give_up(p, PARLEY_ERR_CLOSED); /* it was waiting to reconnect */
    else if (p->phase != PH_CLOSING)
        client_fail(p, PARLEY_ERR_CLOSED, 1, "disconnected by the application");
    return PARLEY_OK;
}

void client_online(parley *p)
{
    p->ever_online = 1;
    p->attempts = 0;
    p->first_idx = p->server_idx;
    p->err = PARLEY_OK;
    p->errtext[0] = '\0';
    parley_event ev = {0};
    ev.type = PARLEY_EV_CONNECTED;
    ev.from = p->bound;
    client_emit(p, &ev);
    if (p->phase == PH_STREAM && p->neg == NEG_ONLINE) /* the callback may have closed */
        client_ext_online(p);
}

/* The safe point: tear down a failed connection, then try the next address, schedule a
 * reconnect, or give up. */
static void handle_failure(parley *p)
{
    p->fail_pending = 0;
    int was_online = p->phase == PH_STREAM && p->neg == NEG_ONLINE;
    int closing = p->phase == PH_CLOSING;
    transport_close(p);
    session_reset(p);
    sm_on_lost(p, closing); /* unacknowledged stanzas stay queued for the next session */
    client_ext_offline(p); /* rooms left, held messages out, before the IQ callbacks */
    im_fail_pending_iqs(p, p->err == PARLEY_ERR_CLOSED ? PARLEY_ERR_CLOSED : PARLEY_ERR_UNREACHABLE);
    omemo_on_offline(p, p->err == PARLEY_ERR_CLOSED ? PARLEY_ERR_CLOSED : PARLEY_ERR_UNREACHABLE);

    if (closing) {
        parley_event ev = {0};
        ev.type = PARLEY_EV_DISCONNECTED;
        omemo_give_up(p, PARLEY_ERR_CLOSED);
        ev.error = p->err = PARLEY_ERR_CLOSED;
        ev.error_text = "disconnected";
        ev.retry_in_ms = -1;
        client_emit(p, &ev);
        return;
    }
    if (!was_online && !p->fail_permanent && p->want_online && transport_next(p) == 0)
        return; /* the next address is being tried */
    if (!was_online)
        p->attempts++;
    int transient = p->err == PARLEY_ERR_UNREACHABLE || p->err == PARLEY_ERR_TIMEOUT ||
                    p->err == PARLEY_ERR_PROTOCOL;
    int retry = p->want_online && !p->fail_permanent && transient &&
                (p->opt.reconnect >= 2 || (p->opt.reconnect == 1 && p->ever_online)) &&
                (p->opt.reconnect_max_attempts <= 0 || p->attempts < p->opt.reconnect_max_attempts);
    parley_event ev = {0};
    ev.type = PARLEY_EV_DISCONNECTED;
    ev.error = p->err;
    ev.error_text = p->errtext;
    ev.retry_in_ms = -1;
    if (retry) {
        ev.retry_in_ms = client_backoff_ms(p->attempts + 1, p->opt.reconnect_min_ms,
                                           p->opt.reconnect_max_ms, random_unit());
        p->reconnect_at_ms = time_mono_ms() + ev.retry_in_ms;
        client_log(p, 1, "reconnecting in %d ms (attempt %d)", ev.retry_in_ms, p->attempts + 1);
    } else {
        p->want_online = 0;
        omemo_give_up(p, p->err == PARLEY_ERR_CLOSED ? PARLEY_ERR_CLOSED : PARLEY_ERR_UNREACHABLE);
    }
    client_emit(p, &ev);
}

static void run_timers(parley *p)
{
    int64_t now = time_mono_ms();
    if (p->phase == PH_IDLE && p->want_online && p->reconnect_at_ms && now >= p->reconnect_at_ms) {
        start_attempt(p);
        return;
    }
    if (p->phase == PH_CLOSING && now >= p->closing_deadline_ms) {
        client_fail(p, PARLEY_ERR_CLOSED, 1, "closed");
        return;
    }
    if (p->phase != PH_IDLE && p->phase != PH_CLOSING && !(p->phase == PH_STREAM && p->neg == NEG_ONLINE) &&
        now >= p->attempt_deadline_ms) {
        client_fail(p, PARLEY_ERR_TIMEOUT, 0, "%s: sign-in did not complete within %d ms",
                    p->peer, p->opt.connect_timeout_ms);
        return;
    }
    session_timers(p, now);
}

int parley_timeout_ms(const parley *p)
{
    if (!p)
        return -1;
    int64_t now = time_mono_ms(), next = -1;
    if (p->fail_pending)
        return 0;
    if (p->phase == PH_IDLE) {
        if (p->want_online && p->reconnect_at_ms)
            next = p->reconnect_at_ms;
    } else if (p->phase == PH_CLOSING) {
        next = p->closing_deadline_ms;
    } else {
        if (!(p->phase == PH_STREAM && p->neg == NEG_ONLINE))
            next = p->attempt_deadline_ms;
        int64_t s = session_next_timer(p);
        if (s >= 0 && (next < 0 || s < next))
            next = s;
    }
    if (next < 0)
        return -1;
    return next <= now ? 0 : (int)(next - now > 0x7fffffff ? 0x7fffffff : next - now);
}

int parley_fd(const parley *p) { return p && p->phase != PH_IDLE ? p->fd : -1; }

short parley_poll_events(const parley *p) { return p ? transport_poll_events(p) : 0; }

parley_state parley_get_state(const parley *p)
{
    if (!p)
        return PARLEY_STATE_OFFLINE;
    switch (p->phase) {
    case PH_IDLE: return p->want_online && p->reconnect_at_ms ? PARLEY_STATE_WAITING : PARLEY_STATE_OFFLINE;
    case PH_CLOSING: return PARLEY_STATE_ONLINE;
    case PH_STREAM:
        if (p->neg == NEG_ONLINE)
            return PARLEY_STATE_ONLINE;
        /* fall through */
    default: return PARLEY_STATE_CONNECTING;
    }
}

parley_error parley_last_error(const parley *p) { return p ? p->err : PARLEY_ERR_INVALID; }
const char *parley_last_error_text(const parley *p)
{
    if (!p)
        return "";
    return p->errtext[0] ? p->errtext : parley_strerror(p->err);
}
const char *parley_bound_jid(const parley *p)
{
    return p && p->phase == PH_STREAM && p->neg == NEG_ONLINE ? p->bound : NULL;
}

parley_error parley_process(parley *p, int timeout_ms)
{
    if (!p)
        return PARLEY_ERR_INVALID;
    int wait = parley_timeout_ms(p);
    if (wait < 0 || (timeout_ms >= 0 && timeout_ms < wait))
        wait = timeout_ms;
    if (p->fail_pending)
        wait = 0;
    int fd = parley_fd(p);
    struct pollfd pfd = {fd, fd >= 0 ? parley_poll_events(p) : 0, 0};
    int n = poll(fd >= 0 ? &pfd : NULL, fd >= 0 ? 1 : 0, wait);
    if (n > 0 && pfd.revents)
        transport_io(p, pfd.revents);
    if (!p->fail_pending)
        run_timers(p);
    /* Failures may cascade (next address fails at once); each pass makes progress. */
    for (int i = 0; p->fail_pending && i < 64; i++)
        handle_failure(p);
    if (p->phase == PH_IDLE && !p->want_online)
        return p->err == PARLEY_OK ? PARLEY_ERR_CLOSED : p->err;
    return PARLEY_OK;
}

parley_error parley_run_until(parley *p, int (*done)(parley *p, void *ud), void *ud,
                              int timeout_ms)
{
    if (!p)
        return PARLEY_ERR_INVALID;
    int64_t end = timeout_ms < 0 ? -1 : time_mono_ms() + timeout_ms;
    for (;;) {
        if (done && done(p, ud))
            return PARLEY_OK;
        int64_t now = time_mono_ms();
        if (end >= 0 && now >= end)
            return PARLEY_ERR_TIMEOUT;
        int step = end < 0 ? 1000 : (int)(end - now);
        parley_error e = parley_process(p, step);
        if (e != PARLEY_OK) {
            if (done && done(p, ud))
                return PARLEY_OK;
            return e;
        }
    }
}

parley_error parley_tls_info_get(const parley *p, parley_tls_info *out)
{
    if (!p || !out)
        return PARLEY_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (!p->ssl || !p->tls_done || p->neg != NEG_ONLINE)
        return PARLEY_ERR_STATE;
    const SSL_CIPHER *c = SSL_get_current_cipher(p->ssl);
    snprintf(out->version, sizeof out->version, "%s", SSL_get_version(p->ssl));
    snprintf(out->cipher, sizeof out->cipher, "%s", c ? SSL_CIPHER_get_name(c) : "");
    out->key_bits = c ? SSL_CIPHER_get_bits(c, NULL) : 0;
    out->verified = SSL_get_verify_result(p->ssl) == X509_V_OK &&
                    SSL_get0_peer_certificate(p->ssl) != NULL;
    X509 *cert = SSL_get0_peer_certificate(p->ssl);
    if (cert)
        X509_NAME_oneline(X509_get_subject_name(cert), out->peer_subject,
                          (int)sizeof out->peer_subject);
    snprintf(out->sasl_mechanism, sizeof out->sasl_mechanism, "%s", p->mechanism);
    snprintf(out->channel_binding, sizeof out->channel_binding, "%s", p->cb_type);
    snprintf(out->server, sizeof out->server, "%s", p->peer);
    return PARLEY_OK;
}

