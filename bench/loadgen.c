/* loadgen.c - parley-loadgen: an XMPP client load generator over Parley's own stream layer.
 *
 * One process, one thread, one non-blocking epoll loop driving many client sessions. Each
 * session is a state machine: TCP connect (optionally from a chosen loopback source
 * address), direct TLS (XEP-0368) or STARTTLS, SCRAM-SHA-256 (optionally -PLUS with
 * tls-exporter) via scram_client_*, stream restart, resource binding, initial presence.
 * Then, per --mode:
 *   idle  hold every session; print a "ready" line once all are established (or failed),
 *         hold for --hold seconds (or until SIGTERM), close, report sessions/s and failures.
 *   chat  sessions 2i -> 2i+1 in pairs; the sender stamps each message with the monotonic
 *         clock, the receiver (same process) records end-to-end latency in a log-linear
 *         histogram; paced at --rate messages/s overall, or as fast as a window of
 *         --window outstanding messages per pair allows.
 * Load must stay on this machine: --server and --sources must be loopback addresses.
 * Several processes (--first/--count) cover more sessions than one process's fd limit. */
#include "common/base64.h"
#include "common/buf.h"
#include "common/scram.h"
#include "lg_scram.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/xml.h"
#include "common/xmlstream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* Linux >= 4.2; older headers lack the name */
#endif

/* ---- bounds ---------------------------------------------------------------------- */
#define MAX_SESSIONS 19000       /* one process never holds more (fd hard limit 20000) */
#define FD_RESERVE 64            /* descriptors kept for epoll, stdio, OpenSSL, ... */
#define MAX_SOURCES 64           /* --sources entries */
#define MAX_SERVERS 16           /* --servers entries (the nodes of one domain) */
#define MAX_STANZA (64 * 1024)   /* the server never sends us anything larger */
#define MAX_OUT (256 * 1024)     /* queued output per session before we call it stuck */
#define MAX_BODY 4096            /* --body-size ceiling */
#define READS_PER_EVENT 64       /* fairness: records read per readiness event */
#define EVENTS_PER_WAIT 1024
#define MAX_FAILURE_LOGS 5       /* detailed failure lines per process, the rest counted */
#define DRAIN_NS (3 * NS_PER_S)  /* after --duration, wait this long for in-flight messages */
#define NS_PER_S 1000000000LL
#define RESOURCE "loadgen"

/* ---- latency histogram -------------------------------------------------------------
 * HDR-style log-linear buckets over microseconds: values below 128 us are exact, above
 * that each power of two is split into 128 linear sub-buckets (< 0.8% relative error),
 * up to 2^26 us (67 s). Values above the top are clamped into the last bucket; the exact
 * maximum is kept separately. Merging two histograms is adding the counts. */
#define H_SUB_BITS 7
#define H_SUB (1 << H_SUB_BITS)
#define H_TOP_EXP 26
#define H_BUCKETS (H_SUB + (H_TOP_EXP - H_SUB_BITS) * H_SUB)

typedef struct histogram {
    uint64_t counts[H_BUCKETS];
    uint64_t total;
    uint64_t max_us;
    uint64_t sum_us;
} histogram;

static int h_index(uint64_t us)
{
    if (us < H_SUB)
        return (int)us;
    int e = 63 - __builtin_clzll(us); /* floor(log2(us)) >= H_SUB_BITS */
    if (e >= H_TOP_EXP)
        return H_BUCKETS - 1;
    int shift = e - H_SUB_BITS;
    return H_SUB + shift * H_SUB + (int)((us >> shift) - H_SUB);
}

/* The highest value that lands in bucket i (what a percentile reports, as HDR does). */
static uint64_t h_value(int i)
{
    if (i < H_SUB)
        return (uint64_t)i;
    int shift = (i - H_SUB) / H_SUB;
    uint64_t sub = (uint64_t)((i - H_SUB) % H_SUB) + H_SUB;
    return ((sub + 1) << shift) - 1;
}

static void h_record(histogram *h, int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    h->counts[h_index(us)]++;
    h->total++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

static uint64_t h_percentile(const histogram *h, double p)
{
    if (!h->total)
        return 0;
    uint64_t want = (uint64_t)((p / 100.0) * (double)h->total + 0.5);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (int i = 0; i < H_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            uint64_t v = h_value(i);
            return v < h->max_us ? v : h->max_us;
        }
    }
    return h->max_us;
}

/* ---- options ----------------------------------------------------------------------- */
typedef enum { MODE_IDLE, MODE_CHAT, MODE_FANOUT } run_mode;

static struct {
    struct sockaddr_storage server;
    socklen_t server_len;
    char server_text[80];
    int direct_tls;
    const char *domain;
    const char *ca_file;
    const char *prefix;
    const char *password;
    int first, count;
    run_mode mode;
    double hold_s, duration_s, rate, connect_rate, timeout_s, login_timeout_s;
    int window, pairs, max_pending, presence, plus, json, verbose, body_size, sha1;
    const char *scram_cache;
    const char *cipher;     /* TLS 1.3 suite to insist on (TLS 1.3 only), or NULL */
    double search_p99_ms;   /* chat: search the highest rate with p99 under this */
    double step_s;          /* chat search: seconds per rate step */
    double warmup_s;        /* chat search: quiet seconds between the logins and step 1 */
    int search_steps;       /* chat search: most steps */
    double settle_s;        /* fanout: quiet time that ends the run */
    long expect_presence;   /* fanout: presences expected in total (0: unknown) */
    const char *save_tickets; /* append each user's TLS session (ticket) to this file */
    const char *resume_from;  /* offer the TLS sessions saved in this file */
    struct sockaddr_storage sources[MAX_SOURCES];
    socklen_t source_len[MAX_SOURCES];
    int nsources;
    struct sockaddr_storage servers[MAX_SERVERS]; /* --servers: several nodes of one domain */
    socklen_t servers_len[MAX_SERVERS];
    int nservers;
    const char *server_map; /* --server-map: digit per user (user % length) = its server */
} opt;

/* ---- sessions ---------------------------------------------------------------------- */
typedef enum {
    S_NEW = 0,    /* not started yet */
    S_CONNECTING, /* TCP connect in progress */
    S_TLS,        /* TLS handshake in progress */
    S_FEATURES,   /* stream header sent, waiting for <stream:features/> */
    S_PROCEED,    /* <starttls/> sent */
    S_CHALLENGE,  /* <auth/> sent */
    S_SUCCESS,    /* <response/> sent */
    S_BIND,       /* bind <iq/> sent */
    S_READY,      /* bound (and presence sent): the measured state */
    S_CLOSED,
} sess_state;

typedef enum { F_CONNECT, F_TLS, F_AUTH, F_BIND, F_STREAM, F_TIMEOUT, F_IO, F_DROPPED, F_KINDS } fail_kind;
static const char *const fail_names[F_KINDS] = {"connect", "tls", "auth", "bind",
                                                "stream", "timeout", "io", "dropped"};

struct pair;

typedef struct session {
    int fd;
    int user; /* the N in PREFIX<N> */
    sess_state state;
    unsigned char tls_done, authed, start_tls, hs_wants_write, read_wants_write, dirty;
    unsigned char failed;
    uint32_t epmask; /* what epoll currently watches */
    SSL *ssl;
    xmlstream *xs;
    lg_scram *scram;
    buf out;
    int64_t t_start; /* connect() time, for login latency */
    struct pair *pair;
    int is_sender;
    fail_kind fail_kind_pending;
    const char *fail_reason; /* set by xmlstream handlers, acted on after the feed */
    char fail_detail[96];
    struct session *next_dirty;
} session;

typedef struct pair {
    session *tx, *rx;
    char *to; /* receiver's full JID */
    int outstanding;
    uint64_t seq, sent, received, errors;
} pair;

static session *sessions;
static pair *pairs;
static int npairs;
static session *dirty_list;
static int epfd = -1;
static SSL_CTX *tls_ctx;
static volatile sig_atomic_t stop_requested;

static struct {
    int started, pending, established, failed;
    int fails[F_KINDS];
    int failure_logs;
    uint64_t window_stalls, unexpected;
    uint64_t presence_in;     /* presences received from others (fanout) */
    int64_t last_presence_ns;
    char tls_desc[128];       /* negotiated protocol and suite of the first session */
    int resumed;              /* sessions whose TLS handshake resumed a saved session */
    histogram login;
    histogram latency;
} st;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("parley-loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---- output and epoll interest ----------------------------------------------------- */
static void update_interest(session *s)
{
    if (s->fd < 0)
        return;
    uint32_t want = EPOLLIN;
    if (s->state == S_CONNECTING)
        want = EPOLLOUT;
    else if (s->state == S_TLS)
        want = s->hs_wants_write ? EPOLLOUT : EPOLLIN;
    else if (s->out.len || s->read_wants_write)
        want |= EPOLLOUT;
    if (want == s->epmask)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = s};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev) == 0)
        s->epmask = want;
}

static void mark_fail(session *s, fail_kind kind, const char *reason, const char *detail)
{
    if (s->fail_reason)
        return;
    s->fail_kind_pending = kind;
    s->fail_reason = reason;
    snprintf(s->fail_detail, sizeof s->fail_detail, "%s", detail ? detail : "");
}

/* Queue bytes; they leave in the flush before the next epoll_wait, so a burst of stanzas
 * for one session goes out in one TLS record. */
static void sess_write(session *s, const char *data, size_t len)
{
    if (s->state == S_CLOSED || s->fail_reason)
        return;
    if (s->out.len + len > MAX_OUT) {
        mark_fail(s, F_IO, "output queue limit reached (server not reading)", NULL);
        return;
    }
    buf_append(&s->out, data, len);
    if (!s->dirty) {
        s->dirty = 1;
        s->next_dirty = dirty_list;
        dirty_list = s;
    }
}

static void sess_close(session *s, int graceful)
{
    if (s->state == S_CLOSED)
        return;
    if (s->state != S_NEW && s->state != S_READY)
        st.pending--;
    if (graceful && s->ssl && s->tls_done && !s->failed) {
        /* Best effort: the stream end and close_notify leave if the socket takes them. */
        static const char end[] = "</stream:stream>";
        SSL_write(s->ssl, end, (int)sizeof end - 1);
        SSL_shutdown(s->ssl);
    }
    if (s->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    SSL_free(s->ssl);
    s->ssl = NULL;
    xmlstream_free(s->xs);
    s->xs = NULL;
    lg_scram_free(s->scram);
    s->scram = NULL;
    buf_free(&s->out);
    s->state = S_CLOSED;
}

static void sess_fail(session *s, fail_kind kind, const char *reason, const char *detail)
{
    if (s->state == S_CLOSED)
        return;
    int was_ready = s->state == S_READY;
    if (was_ready) {
        kind = F_DROPPED; /* an established session lost later: count it apart */
        st.established--;
    }
    s->failed = 1;
    st.failed++;
    st.fails[kind]++;
    if (st.failure_logs < MAX_FAILURE_LOGS || opt.verbose) {
        st.failure_logs++;
        fprintf(stderr, "parley-loadgen: %s%d: %s%s%s%s\n", opt.prefix, s->user,
                was_ready ? "dropped: " : "", reason, detail && *detail ? ": " : "",
                detail ? detail : "");
    }
    sess_close(s, 0);
}

/* Apply a failure a handler recorded (handlers must not free the parser they run in). */
static int check_fail(session *s)
{
    if (!s->fail_reason)
        return 0;
    sess_fail(s, s->fail_kind_pending, s->fail_reason, s->fail_detail);
    return 1;
}

static void flush_out(session *s)
{
    while (s->out.len && s->state != S_CLOSED) {
        size_t chunk = s->out.len > (1u << 20) ? (1u << 20) : s->out.len;
        if (s->ssl) {
            int n = SSL_write(s->ssl, s->out.data, (int)chunk);
            if (n <= 0) {
                int e = SSL_get_error(s->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    break;
                char err[160];
                tls_last_error(err, sizeof err);
                sess_fail(s, F_IO, "TLS write failed", err);
                return;
            }
            buf_consume(&s->out, (size_t)n);
        } else {
            ssize_t n = send(s->fd, s->out.data, chunk, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    break;
                sess_fail(s, F_IO, "write failed", strerror(errno));
                return;
            }
            buf_consume(&s->out, (size_t)n);
        }
    }
    if (!s->out.len)
        buf_shrink(&s->out); /* idle sessions keep no output storage */
    update_interest(s);
}

static void flush_dirty(void)
{
    while (dirty_list) {
        session *s = dirty_list;
        dirty_list = s->next_dirty;
        s->dirty = 0;
        if (s->state != S_CLOSED && !check_fail(s) && s->state != S_TLS && s->state != S_CONNECTING)
            flush_out(s);
    }
}

/* ---- TLS session tickets ---------------------------------------------------------------
 * --save-tickets appends "USER-NUMBER HEX-DER" lines (one write each, O_APPEND, so that
 * processes can share the file); --resume-from loads them (later lines win) and offers
 * each user's session, as a reconnecting client does. During the run a session is only
 * kept (a reference); encoding and writing wait until the results are out, so that the
 * storm's figures (login rate, the generator's CPU) do not include the file. */
static SSL_SESSION **tickets; /* by session index, NULL: none */
static SSL_SESSION **to_save; /* by session index: sessions for --save-tickets */
static int ticket_fd = -1;

static void save_ticket(session *s)
{
    SSL_SESSION *sess = SSL_get1_session(s->ssl);
    if (!sess)
        return;
    SSL_SESSION_free(to_save[s->user - opt.first]);
    to_save[s->user - opt.first] = sess;
}

static void write_tickets(void)
{
    static const char hexdigits[] = "0123456789abcdef";
    for (int u = 0; to_save && u < opt.count; u++) {
        SSL_SESSION *sess = to_save[u];
        int len = sess && SSL_SESSION_is_resumable(sess) ? i2d_SSL_SESSION(sess, NULL) : 0;
        if (len > 0 && len < 8192) {
            unsigned char *der = xmalloc((size_t)len), *p = der;
            i2d_SSL_SESSION(sess, &p);
            char *line = xmalloc((size_t)len * 2 + 32);
            int n = snprintf(line, 32, "%d ", opt.first + u);
            for (int i = 0; i < len; i++) {
                line[n++] = hexdigits[der[i] >> 4];
                line[n++] = hexdigits[der[i] & 15];
            }
            line[n++] = '\n';
            if (write(ticket_fd, line, (size_t)n) != n)
                perror("parley-loadgen: --save-tickets");
            free(line);
            free(der);
        }
        SSL_SESSION_free(sess);
        to_save[u] = NULL;
    }
    free(to_save);
    to_save = NULL;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
}

static void load_tickets(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        die("--resume-from %s: %s", file, strerror(errno));
    size_t cap = 1 << 16;
    char *line = xmalloc(cap);
    while (fgets(line, (int)cap, f)) {
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        long user = strtol(line, NULL, 10);
        if (user < opt.first || user >= (long)opt.first + opt.count)
            continue;
        char *hex = sp + 1;
        size_t hl = strcspn(hex, "\n");
        if (hl < 2 || hl % 2)
            continue;
        unsigned char *der = xmalloc(hl / 2);
        for (size_t i = 0; i < hl / 2; i++) /* not sscanf: millions of calls, all in cpu_s */
            der[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        const unsigned char *p = der;
        SSL_SESSION *sess = d2i_SSL_SESSION(NULL, &p, (long)(hl / 2));
        free(der);
        if (!sess)
            continue;
        SSL_SESSION_free(tickets[user - opt.first]);
        tickets[user - opt.first] = sess;
    }
    free(line);
    fclose(f);
}

/* ---- protocol steps ------------------------------------------------------------------ */
static void send_stream_header(session *s)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, "<?xml version='1.0'?><stream:stream xmlns='" XMLNS_CLIENT
                       "' xmlns:stream='" XMLNS_STREAM "' version='1.0' xml:lang='en' to='");
    buf_append_xml_escaped(&b, opt.domain, strlen(opt.domain), 1);
    buf_append_str(&b, "'>");
    sess_write(s, b.data, b.len);
    buf_free(&b);
    s->state = S_FEATURES;
}

static void send_sasl(session *s, const char *name, const char *mech, const char *data)
{
    char *b64 = base64_encode((const unsigned char *)data, strlen(data));
    buf b;
    buf_init(&b);
    buf_appendf(&b, "<%s xmlns='" XMLNS_SASL "'", name);
    if (mech)
        buf_appendf(&b, " mechanism='%s'", mech);
    buf_appendf(&b, ">%s</%s>", *b64 ? b64 : "=", name);
    sess_write(s, b.data, b.len);
    buf_free(&b);
    free(b64);
}

static int offers_mechanism(const xml_node *features, const char *name)
{
    xml_node *mechs = xml_child(features, XMLNS_SASL, "mechanisms");
    for (xml_node *m = mechs ? xml_child(mechs, XMLNS_SASL, "mechanism") : NULL; m;
         m = xml_next(m, XMLNS_SASL, "mechanism")) {
        char *t = xml_text(m);
        int eq = strcmp(t, name) == 0;
        free(t);
        if (eq)
            return 1;
    }
    return 0;
}

static xs_action start_auth(session *s, const xml_node *features)
{
    const char *mech = scram_mech_name(opt.sha1 ? SCRAM_SHA1 : SCRAM_SHA256, opt.plus);
    if (!offers_mechanism(features, mech)) {
        mark_fail(s, F_AUTH, "mechanism not offered", mech);
        return XS_STOP;
    }
    unsigned char cb[64];
    size_t cblen = sizeof cb;
    const char *cbtype = NULL;
    if (opt.plus) {
        if (tls_channel_binding(s->ssl, 0, "tls-exporter", cb, &cblen) < 0) {
            mark_fail(s, F_AUTH, "tls-exporter binding unavailable (needs TLS 1.3)", NULL);
            return XS_STOP;
        }
        cbtype = "tls-exporter";
    }
    char user[128];
    snprintf(user, sizeof user, "%s%d", opt.prefix, s->user);
    s->scram = lg_scram_new(!opt.sha1, user, opt.password, cbtype, cbtype ? cb : NULL,
                            cbtype ? cblen : 0);
    char *first = lg_scram_first(s->scram);
    send_sasl(s, "auth", mech, first);
    free(first);
    s->state = S_CHALLENGE;
    return XS_CONTINUE;
}

/* Decode the base64 text of a SASL element; NULL (and a recorded failure) if invalid. */
static unsigned char *sasl_payload(session *s, const xml_node *el, size_t *len)
{
    char *text = xml_text(el);
    unsigned char *data = base64_decode(text, strlen(text), len);
    free(text);
    if (!data)
        mark_fail(s, F_AUTH, "bad base64 from the server", NULL);
    return data;
}

static void send_bind(session *s)
{
    static const char bind[] = "<iq type='set' id='bind1'><bind xmlns='" XMLNS_BIND
                               "'><resource>" RESOURCE "</resource></bind></iq>";
    sess_write(s, bind, sizeof bind - 1);
    s->state = S_BIND;
}

static void session_ready(session *s)
{
    if (opt.presence) {
        static const char pres[] = "<presence/>";
        sess_write(s, pres, sizeof pres - 1);
    }
    s->state = S_READY;
    st.pending--;
    st.established++;
    if (!st.tls_desc[0] && s->ssl)
        tls_describe(s->ssl, st.tls_desc, sizeof st.tls_desc);
    if (s->ssl && SSL_session_reused(s->ssl))
        st.resumed++;
    if (opt.save_tickets)
        save_ticket(s);
    h_record(&st.login, now_ns() - s->t_start);
}

static void answer_iq(session *s, const xml_node *iq)
{
    /* Pings (XEP-0199) keep idle sessions alive; anything else gets an error so the server
     * never waits on us. */
    const char *type = xml_get_attr(iq, "type");
    if (!str_eq(type, "get") && !str_eq(type, "set"))
        return;
    const char *id = xml_get_attr(iq, "id");
    const char *from = xml_get_attr(iq, "from");
    int ping = xml_child(iq, XMLNS_PING, "ping") != NULL;
    buf b;
    buf_init(&b);
    buf_appendf(&b, "<iq type='%s' id='", ping ? "result" : "error");
    if (id)
        buf_append_xml_escaped(&b, id, strlen(id), 1);
    buf_append_str(&b, "'");
    if (from) {
        buf_append_str(&b, " to='");
        buf_append_xml_escaped(&b, from, strlen(from), 1);
        buf_append_str(&b, "'");
    }
    if (ping)
        buf_append_str(&b, "/>");
    else
        buf_append_str(&b, "><error type='cancel'><service-unavailable xmlns='" XMLNS_STANZAS
                           "'/></error></iq>");
    sess_write(s, b.data, b.len);
    buf_free(&b);
}

/* A presence from one of our own user's resources (the reflection of our own). */
static int is_self(const session *s, const xml_node *el)
{
    const char *from = xml_get_attr(el, "from");
    char mine[128];
    int n = snprintf(mine, sizeof mine, "%s%d@", opt.prefix, s->user);
    return from && strncmp(from, mine, (size_t)n) == 0;
}

static void on_message(session *s, const xml_node *msg)
{
    pair *p = s->pair;
    if (!p) {
        st.unexpected++;
        return;
    }
    if (str_eq(xml_get_attr(msg, "type"), "error")) {
        /* A bounce comes back to the sender: it still frees a window slot. */
        if (s == p->tx) {
            p->errors++;
            if (p->outstanding > 0)
                p->outstanding--;
        } else {
            st.unexpected++;
        }
        return;
    }
    if (s != p->rx) {
        st.unexpected++;
        return;
    }
    char *body = xml_child_text(msg, XMLNS_CLIENT, "body");
    if (!body) {
        st.unexpected++;
        return;
    }
    char *end = NULL;
    long long t = strtoll(body, &end, 10);
    if (end != body && t > 0) {
        h_record(&st.latency, now_ns() - t);
        p->received++;
        if (p->outstanding > 0)
            p->outstanding--;
    } else {
        st.unexpected++;
    }
    free(body);
}

static xs_action on_stream_open(void *ud, const xml_node *root)
{
    (void)ud;
    (void)root;
    return XS_CONTINUE;
}

static xs_action on_stream_close(void *ud)
{
    session *s = ud;
    mark_fail(s, F_STREAM, "server closed the stream", NULL);
    return XS_STOP;
}

static xs_action on_stanza(void *ud, xml_node *el)
{
    session *s = ud;
    xs_action act = XS_CONTINUE;
    if (xml_is(el, XMLNS_STREAM, "error")) {
        xml_node *cond = xml_first_element(el);
        mark_fail(s, s->state == S_READY ? F_DROPPED : F_STREAM, "stream error",
                  cond ? cond->name : "?");
        xml_free(el);
        return XS_STOP;
    }
    switch (s->state) {
    case S_FEATURES:
        if (!xml_is(el, XMLNS_STREAM, "features")) {
            mark_fail(s, F_STREAM, "expected stream features", el->name);
            act = XS_STOP;
        } else if (!s->tls_done) {
            if (!xml_child(el, XMLNS_TLS, "starttls")) {
                mark_fail(s, F_TLS, "server does not offer STARTTLS", NULL);
                act = XS_STOP;
            } else {
                static const char starttls[] = "<starttls xmlns='" XMLNS_TLS "'/>";
                sess_write(s, starttls, sizeof starttls - 1);
                s->state = S_PROCEED;
            }
        } else if (!s->authed) {
            act = start_auth(s, el);
        } else if (!xml_child(el, XMLNS_BIND, "bind")) {
            mark_fail(s, F_BIND, "server does not offer resource binding", NULL);
            act = XS_STOP;
        } else {
            send_bind(s);
        }
        break;
    case S_PROCEED:
        if (xml_is(el, XMLNS_TLS, "proceed")) {
            s->start_tls = 1; /* the read loop begins the handshake after this feed */
            act = XS_RESTART;
        } else {
            mark_fail(s, F_TLS, "STARTTLS refused", el->name);
            act = XS_STOP;
        }
        break;
    case S_CHALLENGE:
    case S_SUCCESS: {
        int challenge = xml_is(el, XMLNS_SASL, "challenge");
        int success = xml_is(el, XMLNS_SASL, "success");
        if ((s->state == S_CHALLENGE && !challenge) || (s->state == S_SUCCESS && !success)) {
            xml_node *cond = xml_is(el, XMLNS_SASL, "failure") ? xml_first_element(el) : NULL;
            mark_fail(s, F_AUTH, "authentication failed", cond ? cond->name : el->name);
            act = XS_STOP;
            break;
        }
        size_t len = 0;
        unsigned char *data = sasl_payload(s, el, &len);
        if (!data) {
            act = XS_STOP;
            break;
        }
        if (challenge) {
            char *reply = lg_scram_final(s->scram, (const char *)data, len);
            if (!reply) {
                mark_fail(s, F_AUTH, "bad SCRAM challenge", NULL);
                act = XS_STOP;
            } else {
                send_sasl(s, "response", NULL, reply);
                s->state = S_SUCCESS;
            }
            free(reply);
        } else if (lg_scram_verify(s->scram, (const char *)data, len) != 0) {
            mark_fail(s, F_AUTH, "server signature did not verify", NULL);
            act = XS_STOP;
        } else {
            lg_scram_free(s->scram);
            s->scram = NULL;
            s->authed = 1;
            send_stream_header(s); /* RFC 6120 6.4.6: restart after SASL success */
            act = XS_RESTART;
        }
        free(data);
        break;
    }
    case S_BIND:
        if (!str_eq(el->name, "iq") || !str_eq(xml_get_attr(el, "id"), "bind1")) {
            st.unexpected++;
        } else if (!str_eq(xml_get_attr(el, "type"), "result")) {
            xml_node *err = xml_child(el, NULL, "error");
            xml_node *cond = err ? xml_first_element(err) : NULL;
            mark_fail(s, F_BIND, "bind refused", cond ? cond->name : NULL);
            act = XS_STOP;
        } else {
            session_ready(s);
        }
        break;
    case S_READY:
        if (str_eq(el->name, "message"))
            on_message(s, el);
        else if (str_eq(el->name, "iq"))
            answer_iq(s, el);
        else if (str_eq(el->name, "presence") && !xml_get_attr(el, "type") && !is_self(s, el)) {
            st.presence_in++;
            st.last_presence_ns = now_ns();
        }
        /* presence (our own reflected, later: fan-out) needs no answer */
        break;
    default:
        st.unexpected++;
        break;
    }
    xml_free(el);
    return s->fail_reason ? XS_STOP : act;
}

static const xmlstream_handlers xs_handlers = {on_stream_open, on_stanza, on_stream_close};

/* ---- TLS and I/O events ------------------------------------------------------------- */

/* Every session of a run talks to the same server with the same certificate: the chain
 * (CA signature, validity, host name) is verified in full until it first succeeds, and
 * from then on a leaf certificate byte-identical to that one is accepted without building
 * the chain again. Any other certificate still gets the full verification. The generator's
 * CPU goes to the load, not to repeating the same check thousands of times. */
static unsigned char *pinned_der;
static int pinned_len;

static int verify_pinned(X509_STORE_CTX *xs, void *arg)
{
    (void)arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    unsigned char *der = NULL;
    int len = leaf ? i2d_X509(leaf, &der) : -1;
    if (len > 0 && pinned_der && len == pinned_len && memcmp(der, pinned_der, (size_t)len) == 0) {
        OPENSSL_free(der);
        X509_STORE_CTX_set_error(xs, X509_V_OK);
        return 1;
    }
    int ok = X509_verify_cert(xs);
    if (ok == 1 && len > 0 && !pinned_der) {
        pinned_der = der;
        pinned_len = len;
        der = NULL;
    }
    OPENSSL_free(der);
    return ok == 1 ? 1 : 0;
}
static void begin_tls(session *s)
{
    s->ssl = SSL_new(tls_ctx);
    if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1 || tls_client_set_domain(s->ssl, opt.domain) < 0) {
        sess_fail(s, F_TLS, "TLS setup failed", NULL);
        return;
    }
    if (opt.direct_tls) {
        static const unsigned char alpn[] = "\x0bxmpp-client"; /* XEP-0368 */
        SSL_set_alpn_protos(s->ssl, alpn, sizeof alpn - 1);
    }
    if (tickets && tickets[s->user - opt.first])
        SSL_set_session(s->ssl, tickets[s->user - opt.first]);
    SSL_set_connect_state(s->ssl);
    s->state = S_TLS;
    s->hs_wants_write = 1; /* the ClientHello goes first */
    update_interest(s);
}

static void do_handshake(session *s)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        s->tls_done = 1;
        s->hs_wants_write = 0;
        xmlstream_reset(s->xs);
        send_stream_header(s);
        flush_out(s);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        s->hs_wants_write = e == SSL_ERROR_WANT_WRITE;
        update_interest(s);
        return;
    }
    char err[160];
    tls_last_error(err, sizeof err);
    sess_fail(s, F_TLS, "TLS handshake failed", err);
}

static void feed(session *s, const char *data, size_t len)
{
    xs_status r = xmlstream_feed(s->xs, data, len);
    if (check_fail(s))
        return;
    switch (r) {
    case XS_OK:
    case XS_RESTARTED:
        if (s->start_tls) {
            s->start_tls = 0;
            begin_tls(s);
        }
        return;
    case XS_STOPPED:
        sess_fail(s, F_STREAM, "stream stopped", NULL);
        return;
    default:
        sess_fail(s, F_STREAM, "bad XML from the server", xmlstream_error_text(s->xs));
        return;
    }
}

static void read_input(session *s)
{
    char data[16384]; /* = the largest TLS record, so OpenSSL never keeps a record back */
    for (int i = 0; i < READS_PER_EVENT && s->state != S_CLOSED && s->state != S_TLS; i++) {
        if (s->ssl) {
            s->read_wants_write = 0;
            ERR_clear_error();
            int n = SSL_read(s->ssl, data, (int)sizeof data);
            if (n <= 0) {
                int e = SSL_get_error(s->ssl, n);
                if (e == SSL_ERROR_WANT_READ)
                    break;
                if (e == SSL_ERROR_WANT_WRITE) {
                    s->read_wants_write = 1;
                    break;
                }
                if (e == SSL_ERROR_ZERO_RETURN ||
                    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                    sess_fail(s, s->state == S_READY ? F_DROPPED : F_IO, "server closed the connection",
                              NULL);
                } else {
                    char err[160];
                    tls_last_error(err, sizeof err);
                    sess_fail(s, F_IO, "TLS read failed", err);
                }
                return;
            }
            feed(s, data, (size_t)n);
        } else {
            ssize_t n = recv(s->fd, data, sizeof data, 0);
            if (n == 0) {
                sess_fail(s, F_IO, "server closed the connection", NULL);
                return;
            }
            if (n < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    sess_fail(s, F_IO, "read failed", strerror(errno));
                break;
            }
            feed(s, data, (size_t)n);
        }
    }
    if (s->state != S_CLOSED)
        update_interest(s);
}

static void on_event(session *s, uint32_t events)
{
    if (s->state == S_CLOSED)
        return;
    if (s->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            sess_fail(s, F_CONNECT, "connect failed", strerror(err));
            return;
        }
        if (opt.direct_tls) {
            begin_tls(s);
        } else {
            s->state = S_FEATURES;
            send_stream_header(s);
            flush_out(s);
        }
        return;
    }
    if (s->state == S_TLS) {
        do_handshake(s);
        if (s->state == S_CLOSED || s->state == S_TLS)
            return;
    }
    if ((events & EPOLLOUT) && s->out.len)
        flush_out(s);
    if (s->state != S_CLOSED && (events & (EPOLLIN | EPOLLHUP | EPOLLERR) || s->read_wants_write))
        read_input(s);
}

static void start_session(session *s, int index)
{
    int64_t t = now_ns();
    s->t_start = t;
    st.started++;
    st.pending++;
    s->state = S_CONNECTING;
    s->xs = xmlstream_new(&xs_handlers, s, MAX_STANZA);
    xmlstream_keep_parser(s->xs, 1); /* CPU matters here, not the generator's memory */
    int src = opt.nsources ? index % opt.nsources : -1;
    int family = opt.server.ss_family;
    s->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        sess_fail(s, F_CONNECT, "socket", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src >= 0) {
        /* Let connect() pick the port per 4-tuple: with several source addresses the
         * ephemeral range is available once per address, not once in total. */
        setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(s->fd, (struct sockaddr *)&opt.sources[src], opt.source_len[src]) < 0) {
            sess_fail(s, F_CONNECT, "bind to the source address", strerror(errno));
            return;
        }
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        sess_fail(s, F_CONNECT, "epoll_ctl", strerror(errno));
        return;
    }
    s->epmask = EPOLLOUT;
    const struct sockaddr_storage *dst = &opt.server;
    socklen_t dst_len = opt.server_len;
    if (opt.nservers > 1) {
        /* By user number, so that processes with different --first agree on who is where. */
        int k = opt.server_map ? opt.server_map[s->user % (int)strlen(opt.server_map)] - '0'
                               : s->user % opt.nservers;
        dst = &opt.servers[k];
        dst_len = opt.servers_len[k];
    }
    if (connect(s->fd, (const struct sockaddr *)dst, dst_len) < 0 && errno != EINPROGRESS)
        sess_fail(s, F_CONNECT, "connect", strerror(errno));
}

/* ---- chat --------------------------------------------------------------------------- */
static char body_pad[MAX_BODY + 1];

static void send_chat(pair *p)
{
    char head[64];
    p->seq++;
    int n = snprintf(head, sizeof head, "%" PRId64 " %" PRIu64 " ", now_ns(), p->seq);
    int pad = opt.body_size > n ? opt.body_size - n : 0;
    buf b;
    buf_init(&b);
    buf_append_str(&b, "<message type='chat' to='");
    buf_append_xml_escaped(&b, p->to, strlen(p->to), 1);
    buf_appendf(&b, "' id='m%" PRIu64 "'><body>%s%.*s</body></message>", p->seq, head, pad, body_pad);
    sess_write(p->tx, b.data, b.len);
    buf_free(&b);
    p->sent++;
    p->outstanding++;
}

static int pair_live(const pair *p)
{
    return p->tx->state == S_READY && p->rx->state == S_READY;
}

/* Rate mode: send what the schedule says is due by now; window mode: refill every window. */
static uint64_t chat_sent_total;
static int chat_rr;

static void pump_chat(int64_t t, int64_t chat_start)
{
    if (!npairs)
        return;
    if (opt.rate > 0) {
        double elapsed = (double)(t - chat_start) / (double)NS_PER_S;
        uint64_t due = (uint64_t)(elapsed * opt.rate);
        int stalled = 0;
        while (chat_sent_total < due && stalled < npairs) {
            pair *p = &pairs[chat_rr];
            chat_rr = (chat_rr + 1) % npairs;
            if (!pair_live(p) || p->outstanding >= opt.window) {
                stalled++;
                continue;
            }
            stalled = 0;
            send_chat(p);
            chat_sent_total++;
        }
        if (chat_sent_total < due) {
            /* Every window is full: the schedule slips (counted, not caught up later). */
            st.window_stalls += due - chat_sent_total;
            chat_sent_total = due;
        }
        return;
    }
    for (int i = 0; i < npairs; i++) {
        pair *p = &pairs[i];
        while (pair_live(p) && p->outstanding < opt.window) {
            send_chat(p);
            chat_sent_total++;
        }
    }
}

/* ---- chat rate search ----------------------------------------------------------------
 * Each step runs --step seconds at a fixed rate, then drains. A step passes when p99 is
 * under the bound, nothing was lost, fewer than 1% of the scheduled sends stalled on a
 * full window and at least 95% of the rate arrived. The rate doubles until a step fails,
 * then bisects between the best pass and the first failure. */
typedef struct search {
    double rate, lo, hi; /* hi < 0: no failure yet */
    int steps, have_best;
    int64_t start;
    uint64_t sent0, received0, errors0, stalls0;
    double best_rate, best_mps, best_secs;
    uint64_t best_sent, best_received, best_lost, best_stalls;
    histogram best;
} search;

static void chat_totals(uint64_t *sent, uint64_t *received, uint64_t *errors)
{
    *sent = *received = *errors = 0;
    for (int i = 0; i < npairs; i++) {
        *sent += pairs[i].sent;
        *received += pairs[i].received;
        *errors += pairs[i].errors;
    }
}

static void print_hist_json(const char *name, const histogram *h);
static double cpu_seconds(void);

static void step_begin(search *sr, int64_t t)
{
    if (sr->rate <= 0)
        sr->rate = opt.rate > 0 ? opt.rate : 1000;
    opt.rate = sr->rate;
    sr->start = t;
    chat_totals(&sr->sent0, &sr->received0, &sr->errors0);
    sr->stalls0 = st.window_stalls;
    memset(&st.latency, 0, sizeof st.latency);
    chat_sent_total = 0;
}

/* Judge the step that ran from sr->start to stop; returns 1 to run another step. */
static int step_end(search *sr, int64_t stop, int64_t now)
{
    uint64_t sent, received, errors;
    chat_totals(&sent, &received, &errors);
    sent -= sr->sent0;
    received -= sr->received0;
    errors -= sr->errors0;
    uint64_t stalls = st.window_stalls - sr->stalls0;
    uint64_t lost = sent > received + errors ? sent - received - errors : 0;
    double secs = (double)(stop - sr->start) / NS_PER_S;
    double mps = secs > 0 ? (double)received / secs : 0;
    uint64_t p99 = h_percentile(&st.latency, 99);
    double due = sr->rate * secs;
    int pass = (double)p99 <= opt.search_p99_ms * 1000 && lost == 0 && errors == 0 &&
               (double)stalls <= 0.01 * due && mps >= 0.95 * sr->rate;
    sr->steps++;
    if (opt.json) {
        printf("{\"event\":\"step\",\"rate\":%.0f,\"pass\":%d,\"msgs_per_s\":%.1f,\"sent\":%" PRIu64
               ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"errors\":%" PRIu64
               ",\"window_stalls\":%" PRIu64 ",\"drain_s\":%.2f,\"cpu_s\":%.2f,",
               sr->rate, pass, mps, sent, received, lost, errors, stalls,
               (double)(now - stop) / NS_PER_S, cpu_seconds());
        print_hist_json("latency_us", &st.latency);
        printf("}\n");
    } else {
        printf("step: rate %.0f/s -> %.0f msgs/s, p99 %" PRIu64 " us, lost %" PRIu64
               ", stalls %" PRIu64 ": %s\n", sr->rate, mps, p99, lost, stalls, pass ? "pass" : "fail");
    }
    fflush(stdout);
    if (pass && (!sr->have_best || sr->rate > sr->best_rate)) {
        sr->have_best = 1;
        sr->best_rate = sr->rate;
        sr->best_mps = mps;
        sr->best_secs = secs;
        sr->best_sent = sent;
        sr->best_received = received;
        sr->best_lost = lost;
        sr->best_stalls = stalls;
        sr->best = st.latency;
    }
    if (pass)
        sr->lo = sr->rate;
    else
        sr->hi = sr->rate;
    if (sr->steps >= opt.search_steps)
        return 0;
    double next = sr->hi < 0 ? sr->rate * 2 : (sr->lo + sr->hi) / 2;
    if (sr->hi > 0 && sr->hi - sr->lo <= 0.05 * sr->hi)
        return 0;
    if (next < 10)
        return 0;
    sr->rate = next;
    return 1;
}

/* ---- options ------------------------------------------------------------------------ */
static void usage(FILE *out)
{
    fprintf(out,
            "usage: parley-loadgen [OPTIONS]\n"
            "  --server HOST:PORT   loopback server (default 127.0.0.1:5223; [::1]:PORT for IPv6)\n"
            "  --direct-tls | --starttls   XEP-0368 direct TLS (default) or STARTTLS\n"
            "  --domain D           XMPP domain (default localhost)\n"
            "  --ca FILE            CA certificate that signed the server's (default: system store)\n"
            "  --users PREFIX       user names PREFIX<N> (default bench)\n"
            "  --password P         password of every user (default bench-password)\n"
            "  --first K --count N  users PREFIX<K> .. PREFIX<K+N-1> (default 0, 1)\n"
            "  --mode idle|chat|fanout (default idle)\n"
            "  --hold S             idle: seconds to hold the sessions once ready (default 10)\n"
            "  --duration S         chat: seconds of sending (default 10)\n"
            "  --rate R             chat: messages/s overall; 0 = as fast as the window allows\n"
            "  --window W           chat: outstanding messages per pair (default 16)\n"
            "  --pairs P            chat: pairs (2i -> 2i+1) that send (default count/2)\n"
            "  --body-size B        chat: body length in bytes (default 64, max %d)\n"
            "  --sources A,B,...    loopback source addresses, round-robin over sessions\n"
            "  --connect-rate C     new connections per second (default 2000)\n"
            "  --max-pending M      connections allowed in the middle of logging in (default 1000)\n"
            "  --login-timeout S    per session (default 60)\n"
            "  --no-presence        do not send initial presence\n"
            "  --plus               SCRAM-SHA-256-PLUS with tls-exporter (TLS 1.3)\n"
            "  --timeout S          whole run, hard limit (default 600)\n"
            "  --mech M             SCRAM-SHA-256 (default) or SCRAM-SHA-1\n"
            "  --scram-cache FILE   keep derived SCRAM keys per salt in FILE (shared by processes)\n"
            "  --cipher SUITE       TLS 1.3 only, with this suite (e.g. TLS_AES_256_GCM_SHA384)\n"
            "  --save-tickets FILE  append each user's TLS session (ticket) to FILE\n"
            "  --resume-from FILE   offer the sessions saved in FILE (reconnecting clients)\n"
            "  --search-p99 MS      chat: search the highest --rate whose p99 stays under MS\n"
            "                       (starts at --rate, doubles, then bisects; --step S seconds\n"
            "                       per step, default 5; at most --search-steps N, default 12;\n"
            "                       --warmup S quiet seconds after the logins, default 3)\n"
            "  --mode fanout        log in with presence and count the presences of others;\n"
            "                       ends --settle S (default 3) after the last one, or once\n"
            "                       --expect-presence N have arrived\n"
            "  --servers A,B,...    several servers (nodes of one domain): user U connects to\n"
            "                       the (U %% n)th, or with --server-map DIGITS to the server\n"
            "                       numbered DIGITS[U %% length] (0 = the first)\n"
            "  --json               result lines as JSON\n"
            "  -v, --verbose        progress every second, every failure\n"
            "SIGTERM/SIGINT end the hold or the chat early; the result is still printed.\n",
            MAX_BODY);
}

static double parse_num(const char *name, const char *v, double lo, double hi)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi)
        die("bad value '%s' for --%s (%g..%g)", v, name, lo, hi);
    return d;
}

/* Only loopback: 127.0.0.0/8 or ::1. Load tests must never leave this machine. */
static int parse_loopback(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
            return -1;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof *in;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return -1;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return 0;
    }
    return -1;
}

static void parse_server(const char *v)
{
    char host[64];
    const char *colon;
    if (v[0] == '[') {
        const char *close_br = strchr(v, ']');
        if (!close_br || close_br[1] != ':' || (size_t)(close_br - v - 1) >= sizeof host)
            die("bad --server '%s' (HOST:PORT or [IPv6]:PORT)", v);
        snprintf(host, sizeof host, "%.*s", (int)(close_br - v - 1), v + 1);
        colon = close_br + 1;
    } else {
        colon = strrchr(v, ':');
        if (!colon || (size_t)(colon - v) >= sizeof host)
            die("bad --server '%s' (HOST:PORT)", v);
        snprintf(host, sizeof host, "%.*s", (int)(colon - v), v);
    }
    int port = (int)parse_num("server port", colon + 1, 1, 65535);
    if (parse_loopback(host, port, &opt.server, &opt.server_len) < 0)
        die("--server %s: not a loopback address (127.0.0.0/8 or ::1); load tests must only "
            "target this machine", host);
    snprintf(opt.server_text, sizeof opt.server_text, "%s", v);
}

static void parse_sources(const char *v)
{
    char list[1024];
    if (strlen(v) >= sizeof list)
        die("--sources list too long");
    snprintf(list, sizeof list, "%s", v);
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (opt.nsources >= MAX_SOURCES)
            die("at most %d --sources", MAX_SOURCES);
        int i = opt.nsources;
        if (parse_loopback(tok, 0, &opt.sources[i], &opt.source_len[i]) < 0)
            die("--sources %s: not a loopback address (127.0.0.0/8 or ::1)", tok);
        opt.nsources++;
    }
    if (!opt.nsources)
        die("--sources needs at least one address");
}

static void parse_servers(const char *v)
{
    char list[1024];
    if (strlen(v) >= sizeof list)
        die("--servers list too long");
    snprintf(list, sizeof list, "%s", v);
    char *save = NULL;
    opt.nservers = 0;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (opt.nservers >= MAX_SERVERS)
            die("at most %d --servers", MAX_SERVERS);
        parse_server(tok);
        opt.servers[opt.nservers] = opt.server;
        opt.servers_len[opt.nservers++] = opt.server_len;
    }
    if (!opt.nservers)
        die("--servers needs at least one HOST:PORT");
    opt.server = opt.servers[0];
    opt.server_len = opt.servers_len[0];
}

static void parse_args(int argc, char **argv)
{
    enum { O_SERVER = 256, O_DIRECT_TLS, O_STARTTLS, O_DOMAIN, O_CA, O_USERS, O_PASSWORD, O_FIRST,
           O_COUNT, O_MODE, O_HOLD, O_DURATION, O_RATE, O_WINDOW, O_PAIRS, O_BODY, O_SOURCES,
           O_CRATE, O_PENDING, O_LTIMEOUT, O_NOPRES, O_PLUS, O_TIMEOUT, O_JSON, O_MECH, O_CACHE,
           O_CIPHER, O_SEARCH, O_STEP, O_STEPS, O_SETTLE, O_EXPECT, O_SAVE_T, O_RESUME, O_WARMUP,
           O_SERVERS, O_SERVER_MAP };
    static const struct option longopts[] = {
        {"server", required_argument, NULL, O_SERVER}, {"direct-tls", no_argument, NULL, O_DIRECT_TLS},
        {"starttls", no_argument, NULL, O_STARTTLS}, {"domain", required_argument, NULL, O_DOMAIN},
        {"ca", required_argument, NULL, O_CA}, {"users", required_argument, NULL, O_USERS},
        {"password", required_argument, NULL, O_PASSWORD}, {"first", required_argument, NULL, O_FIRST},
        {"count", required_argument, NULL, O_COUNT}, {"mode", required_argument, NULL, O_MODE},
        {"hold", required_argument, NULL, O_HOLD}, {"duration", required_argument, NULL, O_DURATION},
        {"rate", required_argument, NULL, O_RATE}, {"window", required_argument, NULL, O_WINDOW},
        {"pairs", required_argument, NULL, O_PAIRS}, {"body-size", required_argument, NULL, O_BODY},
        {"sources", required_argument, NULL, O_SOURCES},
        {"connect-rate", required_argument, NULL, O_CRATE},
        {"max-pending", required_argument, NULL, O_PENDING},
        {"login-timeout", required_argument, NULL, O_LTIMEOUT},
        {"no-presence", no_argument, NULL, O_NOPRES}, {"plus", no_argument, NULL, O_PLUS},
        {"timeout", required_argument, NULL, O_TIMEOUT}, {"json", no_argument, NULL, O_JSON},
        {"mech", required_argument, NULL, O_MECH}, {"scram-cache", required_argument, NULL, O_CACHE},
        {"cipher", required_argument, NULL, O_CIPHER},
        {"search-p99", required_argument, NULL, O_SEARCH}, {"step", required_argument, NULL, O_STEP},
        {"search-steps", required_argument, NULL, O_STEPS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"settle", required_argument, NULL, O_SETTLE},
        {"expect-presence", required_argument, NULL, O_EXPECT},
        {"save-tickets", required_argument, NULL, O_SAVE_T},
        {"resume-from", required_argument, NULL, O_RESUME},
        {"servers", required_argument, NULL, O_SERVERS},
        {"server-map", required_argument, NULL, O_SERVER_MAP},
        {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    opt.direct_tls = 1;
    opt.domain = "localhost";
    opt.prefix = "bench";
    opt.password = "bench-password";
    opt.count = 1;
    opt.hold_s = 10;
    opt.duration_s = 10;
    opt.window = 16;
    opt.pairs = -1;
    opt.body_size = 64;
    opt.connect_rate = 2000;
    opt.max_pending = 1000;
    opt.login_timeout_s = 60;
    opt.timeout_s = 600;
    opt.presence = 1;
    opt.step_s = 5;
    opt.warmup_s = 3;
    opt.search_steps = 12;
    opt.settle_s = 3;
    parse_server("127.0.0.1:5223");
    int c;
    while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (c) {
        case O_SERVER: parse_server(optarg); break;
        case O_DIRECT_TLS: opt.direct_tls = 1; break;
        case O_STARTTLS: opt.direct_tls = 0; break;
        case O_DOMAIN: opt.domain = optarg; break;
        case O_CA: opt.ca_file = optarg; break;
        case O_USERS: opt.prefix = optarg; break;
        case O_PASSWORD: opt.password = optarg; break;
        case O_FIRST: opt.first = (int)parse_num("first", optarg, 0, INT_MAX / 2); break;
        case O_COUNT: opt.count = (int)parse_num("count", optarg, 1, MAX_SESSIONS); break;
        case O_MODE:
            if (strcmp(optarg, "idle") == 0)
                opt.mode = MODE_IDLE;
            else if (strcmp(optarg, "chat") == 0)
                opt.mode = MODE_CHAT;
            else if (strcmp(optarg, "fanout") == 0)
                opt.mode = MODE_FANOUT;
            else
                die("--mode is idle, chat or fanout");
            break;
        case O_HOLD: opt.hold_s = parse_num("hold", optarg, 0, 86400); break;
        case O_DURATION: opt.duration_s = parse_num("duration", optarg, 0.1, 86400); break;
        case O_RATE: opt.rate = parse_num("rate", optarg, 0, 1e7); break;
        case O_WINDOW: opt.window = (int)parse_num("window", optarg, 1, 100000); break;
        case O_PAIRS: opt.pairs = (int)parse_num("pairs", optarg, 1, MAX_SESSIONS / 2); break;
        case O_BODY: opt.body_size = (int)parse_num("body-size", optarg, 0, MAX_BODY); break;
        case O_SOURCES: parse_sources(optarg); break;
        case O_CRATE: opt.connect_rate = parse_num("connect-rate", optarg, 1, 1e6); break;
        case O_PENDING: opt.max_pending = (int)parse_num("max-pending", optarg, 1, MAX_SESSIONS); break;
        case O_LTIMEOUT: opt.login_timeout_s = parse_num("login-timeout", optarg, 1, 3600); break;
        case O_NOPRES: opt.presence = 0; break;
        case O_PLUS: opt.plus = 1; break;
        case O_TIMEOUT: opt.timeout_s = parse_num("timeout", optarg, 1, 86400); break;
        case O_JSON: opt.json = 1; break;
        case O_MECH:
            if (strcmp(optarg, "SCRAM-SHA-1") == 0)
                opt.sha1 = 1;
            else if (strcmp(optarg, "SCRAM-SHA-256") == 0)
                opt.sha1 = 0;
            else
                die("--mech is SCRAM-SHA-1 or SCRAM-SHA-256");
            break;
        case O_CACHE: opt.scram_cache = optarg; break;
        case O_SAVE_T: opt.save_tickets = optarg; break;
        case O_RESUME: opt.resume_from = optarg; break;
        case O_CIPHER: opt.cipher = optarg; break;
        case O_SEARCH: opt.search_p99_ms = parse_num("search-p99", optarg, 0.1, 60000); break;
        case O_STEP: opt.step_s = parse_num("step", optarg, 0.5, 3600); break;
        case O_STEPS: opt.search_steps = (int)parse_num("search-steps", optarg, 1, 100); break;
        case O_WARMUP: opt.warmup_s = parse_num("warmup", optarg, 0, 600); break;
        case O_SETTLE: opt.settle_s = parse_num("settle", optarg, 0.1, 600); break;
        case O_EXPECT: opt.expect_presence = (long)parse_num("expect-presence", optarg, 0, 1e12); break;
        case O_SERVERS: parse_servers(optarg); break;
        case O_SERVER_MAP: opt.server_map = optarg; break;
        case 'v': opt.verbose = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(1);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s'", argv[optind]);
    for (int i = 0; i < opt.nsources; i++)
        if (opt.sources[i].ss_family != opt.server.ss_family)
            die("--sources and --server must be the same address family");
    for (int i = 0; i < opt.nservers; i++)
        if (opt.servers[i].ss_family != opt.server.ss_family)
            die("every --servers entry must be of the same address family");
    size_t map_len = opt.server_map ? strlen(opt.server_map) : 0;
    if (opt.server_map && (map_len == 0 || map_len > 4096))
        die("--server-map needs 1 to 4096 digits");
    for (size_t i = 0; i < map_len; i++)
        if (opt.server_map[i] < '0' || opt.server_map[i] - '0' >= (opt.nservers > 1 ? opt.nservers : 1))
            die("--server-map: '%c' is not the number of a --servers entry", opt.server_map[i]);
    if (strlen(opt.prefix) > 64 || strlen(opt.domain) > 255)
        die("--users prefix or --domain too long");
    if (opt.mode == MODE_CHAT) {
        int max_pairs = opt.count / 2;
        if (opt.pairs < 0)
            opt.pairs = max_pairs;
        if (opt.pairs > max_pairs || opt.pairs < 1)
            die("chat needs --count >= 2 * --pairs (%d sessions give %d pairs)", opt.count, max_pairs);
    }
}

/* ---- main loop --------------------------------------------------------------------------- */
static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)opt.count + FD_RESERVE > rl.rlim_cur)
        die("%d sessions need %d descriptors, the limit is %llu: run several processes "
            "(--first/--count)", opt.count, opt.count + FD_RESERVE, (unsigned long long)rl.rlim_cur);
}

static void print_ready(double secs)
{
    double rate = secs > 0 ? st.established / secs : 0;
    if (opt.json)
        printf("{\"event\":\"ready\",\"first\":%d,\"count\":%d,\"established\":%d,\"failed\":%d,"
               "\"login_s\":%.3f,\"sessions_per_s\":%.1f}\n",
               opt.first, opt.count, st.established, st.failed, secs, rate);
    else
        printf("ready: %d of %d sessions established in %.2f s (%.0f sessions/s), %d failed\n",
               st.established, opt.count, secs, rate, st.failed);
    fflush(stdout);
}

static void print_failures_json(void)
{
    printf("\"failures\":{");
    for (int k = 0; k < F_KINDS; k++)
        printf("%s\"%s\":%d", k ? "," : "", fail_names[k], st.fails[k]);
    printf("}");
}

static void print_hist_json(const char *name, const histogram *h)
{
    printf("\"%s\":{\"count\":%" PRIu64 ",\"mean\":%.1f,\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
           ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 ",\"buckets\":\"",
           name, h->total, h->total ? (double)h->sum_us / (double)h->total : 0.0,
           h_percentile(h, 50), h_percentile(h, 90), h_percentile(h, 99), h_percentile(h, 99.9),
           h->max_us);
    /* Sparse "index:count" list, so that several processes' histograms can be merged. */
    int firstb = 1;
    for (int i = 0; i < H_BUCKETS; i++)
        if (h->counts[i]) {
            printf("%s%d:%" PRIu64, firstb ? "" : ",", i, h->counts[i]);
            firstb = 0;
        }
    printf("\"}");
}

static void print_hist_text(const char *what, const histogram *h)
{
    printf("%s (us): n=%" PRIu64 " p50=%" PRIu64 " p90=%" PRIu64 " p99=%" PRIu64 " p99.9=%" PRIu64
           " max=%" PRIu64 "\n",
           what, h->total, h_percentile(h, 50), h_percentile(h, 90), h_percentile(h, 99),
           h_percentile(h, 99.9), h->max_us);
}

/* Our own CPU time: tells whether the generator or the server was the bottleneck. */
static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void print_failures_text(void)
{
    printf("failures:");
    for (int k = 0; k < F_KINDS; k++)
        printf(" %s=%d", fail_names[k], st.fails[k]);
    printf("\n");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char err[256];
    tls_ctx = tls_client_ctx_new(opt.ca_file, err, sizeof err);
    if (!tls_ctx)
        die("%s", err);
    SSL_CTX_set_cert_verify_callback(tls_ctx, verify_pinned, NULL);
    if (opt.cipher && (SSL_CTX_set_min_proto_version(tls_ctx, TLS1_3_VERSION) != 1 ||
                       SSL_CTX_set_ciphersuites(tls_ctx, opt.cipher) != 1))
        die("--cipher %s: not a TLS 1.3 suite OpenSSL accepts", opt.cipher);
    if (opt.scram_cache && lg_scram_cache_open(opt.scram_cache) < 0)
        die("--scram-cache %s: %s", opt.scram_cache, strerror(errno));
    if (opt.save_tickets) {
        ticket_fd = open(opt.save_tickets, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (ticket_fd < 0)
            die("--save-tickets %s: %s", opt.save_tickets, strerror(errno));
        to_save = xcalloc((size_t)opt.count, sizeof *to_save);
    }
    if (opt.resume_from) {
        tickets = xcalloc((size_t)opt.count, sizeof *tickets);
        load_tickets(opt.resume_from);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    memset(body_pad, 'x', MAX_BODY);

    sessions = xcalloc((size_t)opt.count, sizeof *sessions);
    for (int i = 0; i < opt.count; i++) {
        sessions[i].fd = -1;
        sessions[i].user = opt.first + i;
        buf_init(&sessions[i].out);
    }
    if (opt.mode == MODE_CHAT) {
        npairs = opt.pairs;
        pairs = xcalloc((size_t)npairs, sizeof *pairs);
        for (int i = 0; i < npairs; i++) {
            pair *p = &pairs[i];
            p->tx = &sessions[2 * i];
            p->rx = &sessions[2 * i + 1];
            p->tx->pair = p->rx->pair = p;
            p->tx->is_sender = 1;
            p->to = xasprintf("%s%d@%s/%s", opt.prefix, p->rx->user, opt.domain, RESOURCE);
        }
    }

    enum { PH_LOGIN, PH_HOLD, PH_WARM, PH_CHAT, PH_DRAIN, PH_SETTLE, PH_DONE } phase = PH_LOGIN;
    search srch;
    memset(&srch, 0, sizeof srch);
    srch.lo = 0;
    srch.hi = -1;
    const int64_t t0 = now_ns();
    const int64_t hard_deadline = t0 + (int64_t)(opt.timeout_s * NS_PER_S);
    const int64_t login_timeout = (int64_t)(opt.login_timeout_s * NS_PER_S);
    int64_t phase_end = 0, chat_start = 0, chat_stop = 0, login_done = 0, next_progress = t0 + NS_PER_S;
    int64_t next_timeout_scan = t0;
    int next_to_start = 0, timed_out = 0;
    struct epoll_event events[EVENTS_PER_WAIT];

    while (phase != PH_DONE) {
        int64_t t = now_ns();
        if (t >= hard_deadline) {
            timed_out = 1;
            fprintf(stderr, "parley-loadgen: --timeout %.0f s reached\n", opt.timeout_s);
            break;
        }
        if (stop_requested && phase != PH_DRAIN) {
            if (phase == PH_CHAT) {
                chat_stop = t;
                phase = PH_DRAIN;
                phase_end = t + DRAIN_NS;
            } else {
                break;
            }
        }

        if (phase == PH_LOGIN) {
            /* Paced connection starts: the schedule says how many by now, max-pending caps
             * how many may be half-way through TLS and SASL at once. */
            int64_t due = (int64_t)((double)(t - t0) / NS_PER_S * opt.connect_rate) + 1;
            while (next_to_start < opt.count && next_to_start < due && st.pending < opt.max_pending) {
                start_session(&sessions[next_to_start], next_to_start);
                next_to_start++;
            }
            if (t >= next_timeout_scan) {
                next_timeout_scan = t + NS_PER_S / 10;
                for (int i = 0; i < next_to_start; i++) {
                    session *s = &sessions[i];
                    if (s->state != S_CLOSED && s->state != S_READY && t - s->t_start > login_timeout)
                        sess_fail(s, F_TIMEOUT, "login timed out", NULL);
                }
            }
            if (opt.verbose && t >= next_progress) {
                next_progress += NS_PER_S;
                fprintf(stderr, "progress: %.1f s started=%d established=%d failed=%d pending=%d\n",
                        (double)(t - t0) / NS_PER_S, st.started, st.established, st.failed,
                        st.pending);
            }
            if (next_to_start == opt.count && st.pending == 0) {
                login_done = t;
                flush_dirty(); /* the initial presences */
                print_ready((double)(t - t0) / NS_PER_S);
                if (opt.mode == MODE_IDLE) {
                    phase = PH_HOLD;
                    phase_end = t + (int64_t)(opt.hold_s * NS_PER_S);
                } else if (opt.mode == MODE_FANOUT) {
                    phase = PH_SETTLE;
                } else if (opt.search_p99_ms > 0) {
                    /* Let the server finish what the logins left (presence, GC) first. */
                    phase = PH_WARM;
                    phase_end = t + (int64_t)(opt.warmup_s * NS_PER_S);
                } else {
                    phase = PH_CHAT;
                    chat_start = t;
                    phase_end = t + (int64_t)(opt.duration_s * NS_PER_S);
                }
            }
        }
        if (phase == PH_HOLD && t >= phase_end)
            break;
        if (phase == PH_WARM && t >= phase_end) {
            phase = PH_CHAT;
            chat_start = t;
            phase_end = t + (int64_t)(opt.step_s * NS_PER_S);
            step_begin(&srch, t);
        }
        if (phase == PH_SETTLE) {
            int64_t last = st.last_presence_ns ? st.last_presence_ns : login_done;
            if ((opt.expect_presence > 0 && (long)st.presence_in >= opt.expect_presence) ||
                t - last >= (int64_t)(opt.settle_s * NS_PER_S) || stop_requested)
                break;
        }
        if (phase == PH_CHAT) {
            if (t >= phase_end) {
                chat_stop = t;
                phase = PH_DRAIN;
                phase_end = t + DRAIN_NS;
            } else {
                pump_chat(t, chat_start);
            }
        }
        if (phase == PH_DRAIN) {
            int outstanding = 0;
            for (int i = 0; i < npairs; i++)
                if (pair_live(&pairs[i]))
                    outstanding += pairs[i].outstanding;
            if (!outstanding || t >= phase_end) {
                if (opt.search_p99_ms > 0 && !stop_requested && step_end(&srch, chat_stop, t)) {
                    phase = PH_CHAT;
                    chat_start = t;
                    chat_stop = 0;
                    phase_end = t + (int64_t)(opt.step_s * NS_PER_S);
                    step_begin(&srch, t);
                } else {
                    break;
                }
            }
        }

        flush_dirty();
        int wait_ms = 100;
        if (phase == PH_LOGIN && next_to_start < opt.count)
            wait_ms = 1;
        else if (phase == PH_CHAT && opt.rate > 0)
            wait_ms = 1;
        else if (phase == PH_CHAT || phase == PH_DRAIN)
            wait_ms = 10;
        int n = epoll_wait(epfd, events, EVENTS_PER_WAIT, wait_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++)
            on_event(events[i].data.ptr, events[i].events);
        /* Window mode: refill windows freed by what just arrived, before sleeping again. */
        if (phase == PH_CHAT && opt.rate <= 0)
            pump_chat(now_ns(), chat_start);
    }

    int64_t t_end = now_ns();
    if (!login_done) {
        login_done = t_end;
        if (phase == PH_LOGIN)
            print_ready((double)(t_end - t0) / NS_PER_S); /* interrupted: report what we have */
    }
    if (!chat_stop)
        chat_stop = t_end;
    int held = st.established;
    for (int i = 0; i < opt.count; i++)
        sess_close(&sessions[i], 1);

    double login_s = (double)(login_done - t0) / NS_PER_S;
    double rate_s = login_s > 0 ? held / login_s : 0;
    unsigned long misses = 0, hits = 0;
    lg_scram_cache_stats(&misses, &hits);
    if (opt.json)
        printf("{\"event\":\"info\",\"tls\":\"%s\",\"scram_derived\":%lu,\"scram_cached\":%lu,"
               "\"tls_resumed\":%d}\n", st.tls_desc, misses, hits, st.resumed);
    if (opt.mode == MODE_FANOUT) {
        double fan_s = st.last_presence_ns ? (double)(st.last_presence_ns - t0) / NS_PER_S : 0;
        if (opt.json) {
            printf("{\"event\":\"result\",\"mode\":\"fanout\",\"count\":%d,\"established\":%d,"
                   "\"failed\":%d,\"login_s\":%.3f,\"presence_in\":%" PRIu64 ",\"fanout_s\":%.3f,"
                   "\"presence_per_s\":%.1f,\"timed_out\":%d,\"cpu_s\":%.2f,",
                   opt.count, held, st.failed, login_s, st.presence_in, fan_s,
                   fan_s > 0 ? (double)st.presence_in / fan_s : 0.0, timed_out, cpu_seconds());
            print_failures_json();
            printf(",");
            print_hist_json("login_us", &st.login);
            printf("}\n");
        } else {
            printf("fanout: %d of %d sessions online in %.2f s; %" PRIu64 " presences of others "
                   "received, the last after %.2f s\n",
                   held, opt.count, login_s, st.presence_in, fan_s);
            print_failures_text();
        }
    } else if (opt.mode == MODE_CHAT && opt.search_p99_ms > 0) {
        search *sr = &srch;
        if (opt.json) {
            printf("{\"event\":\"result\",\"mode\":\"chat-search\",\"pairs\":%d,\"established\":%d,"
                   "\"failed\":%d,\"p99_bound_ms\":%.1f,\"steps\":%d,\"found\":%d,\"rate\":%.0f,"
                   "\"msgs_per_s\":%.1f,\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64
                   ",\"window_stalls\":%" PRIu64 ",\"first_fail_rate\":%.0f,\"timed_out\":%d,\"cpu_s\":%.2f,",
                   npairs, st.established, st.failed, opt.search_p99_ms, sr->steps, sr->have_best,
                   sr->best_rate, sr->best_mps, sr->best_sent, sr->best_received, sr->best_lost,
                   sr->best_stalls, sr->hi, timed_out, cpu_seconds());
            print_failures_json();
            printf(",");
            print_hist_json("latency_us", &sr->best);
            printf(",");
            print_hist_json("login_us", &st.login);
            printf("}\n");
        } else {
            printf("chat search: best rate %.0f/s (%.0f msgs/s) with p99 under %.1f ms after %d steps\n",
                   sr->best_rate, sr->best_mps, opt.search_p99_ms, sr->steps);
            print_hist_text("latency at the best rate", &sr->best);
        }
    } else if (opt.mode == MODE_IDLE) {
        if (opt.json) {
            printf("{\"event\":\"result\",\"mode\":\"idle\",\"first\":%d,\"count\":%d,"
                   "\"established\":%d,\"failed\":%d,\"login_s\":%.3f,\"sessions_per_s\":%.1f,"
                   "\"held_s\":%.1f,\"timed_out\":%d,\"cpu_s\":%.2f,",
                   opt.first, opt.count, held, st.failed, login_s,
                   login_s > 0 ? (st.established + st.fails[F_DROPPED]) / login_s : 0.0,
                   (double)(t_end - login_done) / NS_PER_S, timed_out, cpu_seconds());
            print_failures_json();
            printf(",");
            print_hist_json("login_us", &st.login);
            printf("}\n");
        } else {
            printf("idle: %d of %d sessions held %.1f s; logged in at %.0f sessions/s; %d failed\n",
                   held, opt.count, (double)(t_end - login_done) / NS_PER_S, rate_s, st.failed);
            print_failures_text();
            print_hist_text("login latency", &st.login);
        }
    } else {
        uint64_t sent = 0, received = 0, errors = 0;
        for (int i = 0; i < npairs; i++) {
            sent += pairs[i].sent;
            received += pairs[i].received;
            errors += pairs[i].errors;
        }
        double secs = (double)(chat_stop - chat_start) / NS_PER_S;
        double mps = secs > 0 ? (double)received / secs : 0;
        uint64_t lost = sent > received + errors ? sent - received - errors : 0;
        if (opt.json) {
            printf("{\"event\":\"result\",\"mode\":\"chat\",\"pairs\":%d,\"established\":%d,"
                   "\"failed\":%d,\"duration_s\":%.3f,\"rate\":%.1f,\"window\":%d,\"sent\":%" PRIu64
                   ",\"received\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"lost\":%" PRIu64
                   ",\"window_stalls\":%" PRIu64 ",\"msgs_per_s\":%.1f,\"timed_out\":%d,\"cpu_s\":%.2f,",
                   npairs, st.established, st.failed, secs, opt.rate, opt.window, sent, received,
                   errors, lost, st.window_stalls, mps, timed_out, cpu_seconds());
            print_failures_json();
            printf(",");
            print_hist_json("latency_us", &st.latency);
            printf(",");
            print_hist_json("login_us", &st.login);
            printf("}\n");
        } else {
            printf("chat: %d pairs, %.1f s: sent %" PRIu64 ", received %" PRIu64 " (%.0f msgs/s), "
                   "errors %" PRIu64 ", lost %" PRIu64 ", window stalls %" PRIu64 "\n",
                   npairs, secs, sent, received, mps, errors, lost, st.window_stalls);
            print_failures_text();
            print_hist_text("latency", &st.latency);
        }
    }
    fflush(stdout);
    if (ticket_fd >= 0) {
        write_tickets();
        close(ticket_fd);
    }

    for (int i = 0; i < npairs; i++)
        free(pairs[i].to);
    free(pairs);
    free(sessions);
    SSL_CTX_free(tls_ctx);
    OPENSSL_free(pinned_der);
    close(epfd);
    return timed_out || (st.established == 0 && opt.count > 0) ? 1 : 0;
}
