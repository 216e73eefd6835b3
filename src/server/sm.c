/* sm.c - XEP-0198 stream management (see sm.h): counters, the queue of unacknowledged
 * stanzas, enable / r / a / resume, detached sessions and their end. */
#include "sm.h"
#include "../common/dict.h"
#include "../common/log.h"
#include "../common/util.h"
#include "compliance.h"
#include "conn.h"
#include "message.h"
#include "node.h"
#include "node_sm.h"
#include "router.h"
#include "stanza.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ask for an acknowledgement once this many stanzas are unacknowledged. */
#define ACK_REQUEST_EVERY 5

/* Ended sessions whose last inbound count is remembered for <failed h='...'/>. */
#define SM_EXPIRED_MAX 1024

/* A resumption id: a random token, and on a node "." and the node's name (node_sm.h). */
#define SM_TOKEN_LEN 24
#define SM_ID_MAX (SM_TOKEN_LEN + 1 + 255 + 1)

struct sm_state {
    char id[SM_ID_MAX];      /* the resumption id (previd) */
    int handover;            /* placeholder: waiting for another node's session (node_sm.c) */
    int resumable;           /* resumption was requested, granted and not forbidden */
    uint32_t h_in;           /* stanzas received from the client (mod 2^32) */
    uint32_t acked;          /* stanzas the client acknowledged (mod 2^32) */
    char **queue;            /* unacknowledged stanzas as text: acked + 1 ... */
    size_t head, count, cap; /* queue[head .. head + count) */
    int ack_requested;       /* an <r/> is outstanding */
    int64_t detach_deadline; /* monotonic ms; 0 while attached */
    /* Compliance: an <a/> never counts a message still waiting for the compliance
     * server's verdict, whose record is not committed (a crash must not lose the record
     * of an acknowledged message); verdict.c knows them by this serial. */
    uint64_t serial;
    int ack_owed;   /* an <r/> was answered short: more <a/> as the messages settle */
    uint32_t h_sent; /* the last <a/> sent */
};

/* Serials of stream management states (never 0: 0 is "none" in verdict.c). */
static uint64_t last_serial;

/* The last inbound count of sessions that ended recently (XEP-0198 <failed h/>), kept
 * sm_resume_timeout seconds in a ring of SM_EXPIRED_MAX: the oldest goes first. */
typedef struct sm_expired {
    char *id, *user;
    uint32_t h;
    int64_t until_ms;
} sm_expired;

struct sm_memory {
    sm_expired ring[SM_EXPIRED_MAX];
    size_t next;
};

static void write_nonza(c2s *s, const char *text)
{
    if (s->conn)
        conn_write(s->conn, text, strlen(text));
}

static void request_ack(c2s *s)
{
    write_nonza(s, "<r xmlns='" XMLNS_SM "'/>");
    s->sm->ack_requested = 1;
}

void sm_add_feature(c2s *s, xml_node *features)
{
    xml_add_child(features, XMLNS_SM, "sm");
}

void sm_count_inbound(c2s *s)
{
    if (s->sm)
        s->sm->h_in++;
}

static c2s *session_of(server *srv, const char *full)
{
    const char *slash = full ? strchr(full, '/') : NULL;
    if (!slash)
        return NULL;
    char *bare = xstrndup(full, (size_t)(slash - full));
    c2s *s = router_session(srv, bare, slash + 1);
    free(bare);
    return s && s->sm && !s->sm->handover ? s : NULL;
}

uint64_t sm_inbound_count(server *srv, const char *full, uint32_t *h)
{
    c2s *s = session_of(srv, full);
    if (!s)
        return 0;
    if (!s->sm->serial)
        s->sm->serial = ++last_serial;
    *h = s->sm->h_in;
    return s->sm->serial;
}

/* The client's stanzas durably handled: all it sent, but for messages still waiting for
 * their verdicts: then those before the first of them. 1 if that is all it sent. */
static int handled(c2s *s, uint32_t *h)
{
    sm_state *sm = s->sm;
    if (sm->serial && compliance_sender_waiting(s->srv, s->full, sm->serial, h))
        return 0;
    *h = sm->h_in;
    return 1;
}

static void send_ack(c2s *s, uint32_t h)
{
    char text[64];
    snprintf(text, sizeof text, "<a xmlns='" XMLNS_SM "' h='%u'/>", (unsigned)h);
    write_nonza(s, text);
    s->sm->h_sent = h;
}

/* Answer <r/> with what is durably handled; the rest follows as it settles. */
static void answer_ack_request(c2s *s)
{
    uint32_t h;
    s->sm->ack_owed = !handled(s, &h);
    send_ack(s, h);
}

void sm_sender_settled(server *srv, const char *full)
{
    c2s *s = session_of(srv, full);
    if (!s || !s->sm->ack_owed)
        return;
    uint32_t h;
    s->sm->ack_owed = !handled(s, &h);
    if (h != s->sm->h_sent)
        send_ack(s, h); /* unsolicited, as XEP-0198 section 4 allows */
}

static void queue_push(sm_state *sm, char *text)
{
    if (sm->head + sm->count == sm->cap) {
        if (sm->head > sm->cap / 2) {
            memmove(sm->queue, sm->queue + sm->head, sm->count * sizeof *sm->queue);
            sm->head = 0;
        } else {
            sm->cap = sm->cap ? 2 * sm->cap : 16;
            sm->queue = xrealloc(sm->queue, sm->cap * sizeof *sm->queue);
        }
    }
    sm->queue[sm->head + sm->count++] = text;
}

static void queue_drop(sm_state *sm, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(sm->queue[sm->head + i]);
    sm->head += n;
    sm->count -= n;
    if (sm->count == 0)
        sm->head = 0;
}

static void hand_back(c2s *s, sm_state *sm);

int sm_track_outbound(c2s *s, const char *text, size_t len)
{
    sm_state *sm = s->sm;
    if (!sm || sm->handover)
        return 1;
    if (sm->count >= (size_t)s->srv->cfg.sm_max_queue) {
        /* A client that never acknowledges must not make the server hold unbounded data;
         * ending the session hands the queue back to the router, so nothing is lost. */
        queue_push(sm, xstrndup(text, len));
        if (!s->conn) {
            sm->detach_deadline = 1; /* ends at the next tick, queueing until then */
            return 0;
        }
        sm_forbid_resume(s);
        c2s_stream_error(s, "policy-violation", "too many unacknowledged stanzas");
        /* The session is no longer live: what arrives while its connection closes goes
         * elsewhere at once, so the queue goes there now, ahead of it, to keep the order.
         * Nothing is written after the stream's closing tag. */
        hand_back(s, sm);
        return 0;
    }
    queue_push(sm, xstrndup(text, len));
    if (!s->conn)
        return 0;
    if (!sm->ack_requested && sm->count >= ACK_REQUEST_EVERY)
        request_ack(s);
    return 1;
}

/* The client says it has received h stanzas. -1 if h acknowledges stanzas never sent. */
static int apply_ack(sm_state *sm, uint32_t h)
{
    uint32_t newly = h - sm->acked; /* modular: the counter wraps at 2^32 */
    if (newly > sm->count)
        return -1;
    queue_drop(sm, newly);
    sm->acked = h;
    return 0;
}

static int parse_h(const char *text, uint32_t *out)
{
    if (!text || !*text)
        return -1;
    unsigned long long v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || p - text > 10)
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void send_failed(c2s *s, const char *condition, int with_h, uint32_t h)
{
    char text[256];
    if (with_h)
        snprintf(text, sizeof text,
                 "<failed xmlns='" XMLNS_SM "' h='%u'><%s xmlns='" XMLNS_STANZAS "'/></failed>",
                 (unsigned)h, condition);
    else
        snprintf(text, sizeof text,
                 "<failed xmlns='" XMLNS_SM "'><%s xmlns='" XMLNS_STANZAS "'/></failed>",
                 condition);
    write_nonza(s, text);
}

static void handle_enable(c2s *s, const xml_node *enable)
{
    if (s->state != C2S_BOUND || s->sm) {
        send_failed(s, "unexpected-request", 0, 0);
        return;
    }
    sm_state *sm = xcalloc(1, sizeof *sm);
    s->sm = sm;
    const char *resume = xml_get_attr(enable, "resume");
    int timeout = s->srv->cfg.sm_resume_timeout;
    sm->resumable = timeout > 0 && (str_eq(resume, "true") || str_eq(resume, "1"));
    char text[SM_ID_MAX + 128];
    if (sm->resumable) {
        random_token(sm->id, SM_TOKEN_LEN);
        /* On a node the id names it, so that another node knows whom to ask (node_sm.h). */
        const char *node = s->srv->cfg.node_name;
        if (node && strlen(node) < sizeof sm->id - SM_TOKEN_LEN - 1)
            snprintf(sm->id + SM_TOKEN_LEN, sizeof sm->id - SM_TOKEN_LEN, ".%s", node);
        if (!s->srv->sm_sessions)
            s->srv->sm_sessions = dict_new();
        dict_set(s->srv->sm_sessions, sm->id, s);
        snprintf(text, sizeof text,
                 "<enabled xmlns='" XMLNS_SM "' id='%s' resume='true' max='%d'/>", sm->id,
                 timeout);
    } else {
        snprintf(text, sizeof text, "<enabled xmlns='" XMLNS_SM "'/>");
    }
    write_nonza(s, text);
    log_debug("c2s %s: stream management enabled%s", s->full, sm->resumable ? ", resumable" : "");
}

/* s now holds the session: tell the client, and send what it has not acknowledged. */
static void resumed(c2s *s)
{
    server *srv = s->srv;
    sm_state *sm = s->sm;
    dict_set(srv->sm_sessions, sm->id, s);
    sm->detach_deadline = 0;
    sm->ack_requested = 0;
    char text[SM_ID_MAX + 128];
    snprintf(text, sizeof text, "<resumed xmlns='" XMLNS_SM "' h='%u' previd='%s'/>",
             (unsigned)sm->h_in, sm->id);
    write_nonza(s, text);
    for (size_t i = 0; i < sm->count; i++)
        conn_write(s->conn, sm->queue[sm->head + i], strlen(sm->queue[sm->head + i]));
    if (sm->count)
        request_ack(s);
    compliance_audit(srv, s->full, "session-resumed", s->user, conn_peer(s->conn), NULL);
    log_info("c2s %s: resumed %s, %zu stanzas sent again", conn_peer(s->conn), s->full,
             sm->count);
}

/* A session with a resumption id ends: remember its count for a late <resume/>. */
static void remember_expired(server *srv, const c2s *s, const sm_state *sm)
{
    if (!sm->id[0] || !s->user || srv->cfg.sm_resume_timeout <= 0)
        return;
    if (!srv->sm_expired)
        srv->sm_expired = xcalloc(1, sizeof *srv->sm_expired);
    struct sm_memory *m = srv->sm_expired;
    sm_expired *e = &m->ring[m->next];
    m->next = (m->next + 1) % SM_EXPIRED_MAX;
    free(e->id);
    free(e->user);
    e->id = xstrdup(sm->id);
    e->user = xstrdup(s->user);
    e->h = sm->h_in;
    e->until_ms = time_mono_ms() + (int64_t)srv->cfg.sm_resume_timeout * 1000;
}

/* The remembered count of the ended session previd of user, or -1. */
static int64_t expired_h(server *srv, const char *previd, const char *user)
{
    struct sm_memory *m = srv->sm_expired;
    if (!m)
        return -1;
    int64_t now = time_mono_ms();
    for (size_t i = 0; i < SM_EXPIRED_MAX; i++) {
        const sm_expired *e = &m->ring[i];
        if (e->id && now < e->until_ms && strcmp(e->id, previd) == 0)
            return strcmp(e->user, user) == 0 ? (int64_t)e->h : -1;
    }
    return -1;
}

void sm_free(server *srv)
{
    struct sm_memory *m = srv->sm_expired;
    if (!m)
        return;
    for (size_t i = 0; i < SM_EXPIRED_MAX; i++) {
        free(m->ring[i].id);
        free(m->ring[i].user);
    }
    free(m);
    srv->sm_expired = NULL;
}

static void handle_resume(c2s *s, const xml_node *resume)
{
    server *srv = s->srv;
    const char *previd = xml_get_attr(resume, "previd");
    uint32_t h;
    if (s->state != C2S_WAIT_BIND || s->sm || !previd ||
        parse_h(xml_get_attr(resume, "h"), &h) < 0) {
        send_failed(s, s->state != C2S_WAIT_BIND || s->sm ? "unexpected-request" : "bad-request",
                    0, 0);
        return;
    }
    c2s *old = srv->sm_sessions ? dict_get(srv->sm_sessions, previd) : NULL;
    int64_t gone_h = old ? -1 : expired_h(srv, previd, s->user);
    if (gone_h >= 0) {
        /* Ended here not long ago: the client learns which of its stanzas were handled
         * (XEP-0198 section 5, h on <failed/>). Same account only, like a resumption. */
        send_failed(s, "item-not-found", 1, (uint32_t)gone_h);
        return;
    }
    if (!old && node_sm_resume(s, previd, h))
        return; /* held by another node: asked to hand it over */
    /* Only the same account may take a session over; say nothing else about it. */
    if (!old || !old->sm || strcmp(old->user, s->user) != 0) {
        send_failed(s, "item-not-found", 0, 0);
        return;
    }
    if (apply_ack(old->sm, h) < 0) {
        send_failed(s, "undefined-condition", 0, 0);
        return;
    }
    c2s_take_over(s, old);
    resumed(s);
}

static void redeliver(server *srv, c2s *s, const char *text);

/* ---- handover between nodes (node_sm.c) ---- */

c2s *sm_find(server *srv, const char *previd)
{
    c2s *s = srv->sm_sessions ? dict_get(srv->sm_sessions, previd) : NULL;
    return s && s->sm && s->state == C2S_BOUND ? s : NULL;
}

xml_node *sm_hand_over(c2s *s, uint32_t h, const char **condition)
{
    sm_state *sm = s->sm;
    uint32_t newly = h - sm->acked;
    if (newly > sm->count) {
        *condition = "undefined-condition";
        return NULL;
    }
    xml_node *el = xml_new(XMLNS_NODE, "session");
    char num[16];
    snprintf(num, sizeof num, "%u", (unsigned)sm->h_in);
    xml_set_attr(el, "h-in", num);
    snprintf(num, sizeof num, "%u", (unsigned)h);
    xml_set_attr(el, "acked", num);
    for (size_t i = newly; i < sm->count; i++) {
        const char *text = sm->queue[sm->head + i];
        xml_add_text(xml_add_child(el, XMLNS_NODE, "queued"), text, strlen(text));
    }
    /* It must fit in one stanza on the node link (the other node's parser limit), with
     * room for the identity the caller adds (the presence is a stanza itself). */
    char *text = xml_to_string(el, XMLNS_NODE);
    size_t bytes = strlen(text);
    free(text);
    if (bytes + s->srv->cfg.max_stanza_size / 2 > s->srv->cfg.max_stanza_size) {
        xml_free(el);
        *condition = "resource-constraint";
        return NULL;
    }
    /* From here the session's stream management lives on the other node. */
    dict_del(s->srv->sm_sessions, sm->id);
    s->sm = NULL;
    queue_drop(sm, sm->count);
    free(sm->queue);
    free(sm);
    return el;
}

void sm_wait_handover(c2s *s)
{
    s->sm = xcalloc(1, sizeof *s->sm);
    s->sm->handover = 1;
}

int sm_waits_handover(const c2s *s)
{
    return s->sm && s->sm->handover;
}

void sm_handover_failed(c2s *s, const char *condition)
{
    free(s->sm);
    s->sm = NULL;
    if (condition)
        send_failed(s, condition, 0, 0);
}

int sm_resume_handed(c2s *s, const char *previd, const xml_node *session)
{
    sm_state *sm = s->sm;
    if (!sm || !sm->handover || strlen(previd) >= sizeof sm->id ||
        parse_h(xml_get_attr(session, "h-in"), &sm->h_in) < 0 ||
        parse_h(xml_get_attr(session, "acked"), &sm->acked) < 0)
        return -1;
    sm->handover = 0;
    sm->resumable = s->srv->cfg.sm_resume_timeout > 0; /* as this node would grant it */
    snprintf(sm->id, sizeof sm->id, "%s", previd);
    for (const xml_node *q = xml_child(session, XMLNS_NODE, "queued"); q;
         q = xml_next(q, XMLNS_NODE, "queued"))
        queue_push(sm, xml_text(q));
    if (!s->srv->sm_sessions)
        s->srv->sm_sessions = dict_new();
    resumed(s);
    return 0;
}

void sm_redeliver_handed(server *srv, const char *user, const xml_node *session)
{
    c2s tmp = {.srv = srv, .full = (char *)user};
    size_t n = 0;
    for (const xml_node *q = xml_child(session, XMLNS_NODE, "queued"); q;
         q = xml_next(q, XMLNS_NODE, "queued"), n++) {
        char *text = xml_text(q);
        tmp.user = (char *)user;
        redeliver(srv, &tmp, text);
        free(text);
    }
    if (n)
        log_info("%s: a session handed over for a client that left: %zu stanzas delivered "
                 "again", user, n);
}

int sm_handle(c2s *s, xml_node *nonza)
{
    sm_state *sm = s->sm;
    int rc = 0;
    if (strcmp(nonza->name, "enable") == 0) {
        handle_enable(s, nonza);
    } else if (strcmp(nonza->name, "resume") == 0) {
        handle_resume(s, nonza);
    } else if (sm && sm->handover) {
        /* Not managed until the other node answers: nothing to count or acknowledge. */
        send_failed(s, "unexpected-request", 0, 0);
    } else if (strcmp(nonza->name, "r") == 0 && sm) {
        answer_ack_request(s);
    } else if (strcmp(nonza->name, "a") == 0 && sm) {
        uint32_t h;
        if (parse_h(xml_get_attr(nonza, "h"), &h) < 0 || apply_ack(sm, h) < 0) {
            c2s_stream_error(s, "undefined-condition",
                             "the acknowledgement counts stanzas that were never sent");
            rc = -1;
        } else {
            sm->ack_requested = 0;
        }
    } else {
        c2s_stream_error(s, "unsupported-stanza-type",
                         sm ? "unknown stream management element"
                            : "stream management is not enabled");
        rc = -1;
    }
    xml_free(nonza);
    return rc;
}

int sm_may_resume(const c2s *s)
{
    return s->sm && s->sm->resumable && s->state == C2S_BOUND;
}

void sm_forbid_resume(c2s *s)
{
    if (s->sm)
        s->sm->resumable = 0;
}

int sm_detach(c2s *s, const char *reason)
{
    sm_state *sm = s->sm;
    if (!sm || !sm->resumable || s->state != C2S_BOUND)
        return 0;
    sm->detach_deadline = time_mono_ms() + (int64_t)s->srv->cfg.sm_resume_timeout * 1000;
    sm->ack_requested = 0;
    compliance_audit(s->srv, s->full, "session-detached", s->user, conn_peer(s->conn), reason);
    log_info("c2s %s: connection lost (%s); session kept %d s for resumption, %zu "
             "stanzas unacknowledged",
             s->full, reason, s->srv->cfg.sm_resume_timeout, sm->count);
    return 1;
}

/* Give a queued stanza back to the router as if the session had never existed. */
static void redeliver(server *srv, c2s *s, const char *text)
{
    xml_node *stanza = xml_parse_document(text, strlen(text), XMLNS_CLIENT,
                                          srv->cfg.max_stanza_size * 2);
    if (!stanza) {
        log_error("c2s %s: a queued stanza could not be parsed again; dropped", s->full);
        return;
    }
    const char *type = xml_get_attr(stanza, "type");
    if (strcmp(stanza->name, "message") == 0 && !str_eq(type, "error") &&
        !str_eq(type, "groupchat") && !str_eq(type, "headline")) {
        /* Its record was written when it was first routed: deliver without a new one. */
        message_deliver(srv, stanza, s->user, NULL);
        return;
    }
    if (strcmp(stanza->name, "iq") == 0 && (str_eq(type, "get") || str_eq(type, "set")))
        router_bounce(srv, stanza, "cancel", "service-unavailable",
                      "the recipient's session ended before it answered");
    xml_free(stanza);
}

void sm_session_end(c2s *s)
{
    sm_state *sm = s->sm;
    if (!sm)
        return;
    s->sm = NULL; /* the redelivered stanzas must not come back into this queue */
    if (sm->id[0] && s->srv->sm_sessions && dict_get(s->srv->sm_sessions, sm->id) == s)
        dict_del(s->srv->sm_sessions, sm->id);
    remember_expired(s->srv, s, sm);
    hand_back(s, sm);
    free(sm->queue);
    free(sm);
}

/* Deliver the queue again through the normal rules, in order, and empty it. */
static void hand_back(c2s *s, sm_state *sm)
{
    if (sm->count)
        log_info("c2s %s: %zu unacknowledged stanzas handed back for delivery", s->full,
                 sm->count);
    for (size_t i = 0; i < sm->count; i++)
        redeliver(s->srv, s, sm->queue[sm->head + i]);
    queue_drop(sm, sm->count);
}

int sm_housekeeping(c2s *s, int64_t now_ms)
{
    sm_state *sm = s->sm;
    if (!sm)
        return 0;
    if (!s->conn) {
        if (now_ms < sm->detach_deadline)
            return 0;
        c2s_end_detached(s, "not resumed in time");
        return 1;
    }
    if (sm->count && !sm->ack_requested)
        request_ack(s);
    return 0;
}
