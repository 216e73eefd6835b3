/* sm.c - XEP-0198 stream management on the client side (urn:xmpp:sm:3): counting the
 * stanzas received and answering <r/>, keeping what we sent until the server
 * acknowledges it (a bounded queue), asking for acknowledgements, and after a lost
 * connection either resuming the session (<resume/>, on the same server or the next
 * address of the list) and sending again what the server did not get, or - when the
 * session cannot be resumed - sending the unacknowledged messages again on the new
 * session (PARLEY_EV_RESENT). IQs and presences of a lost session are not repeated on a
 * new one: their callbacks already failed, and presence is sent afresh anyway. */
#include "../common/util.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ask for an acknowledgement once this many stanzas went out since the last request,
 * or this long after a stanza went out without one. */
#define SM_ACK_EVERY 5
#define SM_ACK_IDLE_MS 250
/* Unacknowledged stanzas we hold before calling the connection broken (the server acks
 * at least every few stanzas, so only a dead or misbehaving server gets here). */
#define SM_QUEUE_MAX 1000

/* ---------------------------------------------------------------- the queue */

void sm_queue_clear(sm_queue *q)
{
    for (size_t i = 0; i < q->count; i++) {
        sm_item *it = &q->items[q->head + i];
        free(it->xml);
        free(it->id);
        free(it->to);
    }
    free(q->items);
    memset(q, 0, sizeof *q);
}

static void queue_append(sm_queue *q, sm_item it)
{
    if (q->head + q->count == q->cap) {
        if (q->head > 0) { /* reuse the room acknowledged items left at the front */
            memmove(q->items, q->items + q->head, q->count * sizeof *q->items);
            q->head = 0;
        } else {
            q->cap = q->cap ? 2 * q->cap : 16;
            q->items = xrealloc(q->items, q->cap * sizeof *q->items);
        }
    }
    q->items[q->head + q->count++] = it;
}

void sm_queue_push(sm_queue *q, const char *xml, size_t len, int is_message, const char *id,
                   const char *to)
{
    sm_item it = {xstrndup(xml, len), len, is_message, id ? xstrdup(id) : NULL,
                  to ? xstrdup(to) : NULL};
    queue_append(q, it);
}

const sm_item *sm_queue_at(const sm_queue *q, size_t i)
{
    return i < q->count ? &q->items[q->head + i] : NULL;
}

int sm_queue_ack(sm_queue *q, uint32_t h)
{
    uint32_t newly = h - q->acked; /* modular: the counter wraps at 2^32 */
    if (newly > q->count)
        return -1; /* acknowledges stanzas never sent: nothing is dropped */
    for (uint32_t i = 0; i < newly; i++) {
        sm_item *it = &q->items[q->head + i];
        free(it->xml);
        free(it->id);
        free(it->to);
    }
    q->head += newly;
    q->count -= newly;
    if (q->count == 0)
        q->head = 0;
    q->acked = h;
    return (int)newly;
}

size_t sm_queue_move_messages(sm_queue *from, sm_queue *to)
{
    size_t moved = 0;
    for (size_t i = 0; i < from->count; i++) {
        sm_item *it = &from->items[from->head + i];
        if (it->is_message) {
            queue_append(to, *it);
            moved++;
        } else {
            free(it->xml);
            free(it->id);
            free(it->to);
        }
    }
    free(from->items);
    memset(from, 0, sizeof *from);
    return moved;
}

int sm_parse_h(const char *text, uint32_t *out)
{
    if (!text || !*text || strlen(text) > 10)
        return -1;
    unsigned long long v = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        v = v * 10 + (unsigned)(*c - '0');
    }
    if (v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* ---------------------------------------------------------------- the session */

static void write_nonza(parley *p, const char *text)
{
    transport_write(p, text, strlen(text));
}

static void request_ack(parley *p)
{
    write_nonza(p, "<r xmlns='" XMLNS_SM "'/>");
    p->sm.r_outstanding = 1;
    p->sm.r_due_ms = 0;
    p->sm.since_r = 0;
}

static void forget_resumption(parley *p)
{
    free(p->sm.resume_id);
    free(p->sm.resume_jid);
    p->sm.resume_id = NULL;
    p->sm.resume_jid = NULL;
    p->sm.resume_until_ms = 0;
}

void sm_free(parley *p)
{
    forget_resumption(p);
    sm_queue_clear(&p->sm.q);
    sm_queue_clear(&p->sm.resend);
}

void sm_on_features(parley *p, const xml_node *features)
{
    p->sm.offered = xml_child(features, XMLNS_SM, "sm") != NULL;
}

int sm_try_resume(parley *p)
{
    sm_client *sm = &p->sm;
    if (!sm->offered || !sm->resume_id)
        return 0;
    if (sm->resume_until_ms && time_mono_ms() > sm->resume_until_ms) {
        client_log(p, 1, "the previous session's resumption window has passed");
        forget_resumption(p);
        return 0;
    }
    char text[256];
    buf b;
    buf_init(&b);
    buf_append_str(&b, "<resume xmlns='" XMLNS_SM "' previd='");
    buf_append_xml_escaped(&b, sm->resume_id, strlen(sm->resume_id), 1);
    snprintf(text, sizeof text, "' h='%u'/>", (unsigned)sm->h_in);
    buf_append_str(&b, text);
    transport_write(p, b.data, b.len);
    buf_free(&b);
    client_log(p, 1, "%s: resuming the previous session (%zu stanzas unacknowledged)", p->peer,
               sm->q.count);
    return 1;
}

void sm_on_bound(parley *p)
{
    sm_client *sm = &p->sm;
    /* A new session: what the old one's server never acknowledged is sent again once
     * online - the messages only (see the header). */
    size_t n = sm_queue_move_messages(&sm->q, &sm->resend);
    if (n)
        client_log(p, 1, "%s: a new session; %zu unacknowledged messages will be sent again",
                   p->peer, n);
    forget_resumption(p);
    sm->h_in = 0;
    sm->active = 0;
    sm->enabled = 0;
    if (!sm->offered)
        return;
    write_nonza(p, "<enable xmlns='" XMLNS_SM "' resume='true'/>");
    sm->enabled = 1; /* the server counts what follows <enable/>: so do we */
}

static void ack_requested_soon(parley *p)
{
    sm_client *sm = &p->sm;
    if (sm->r_outstanding)
        return;
    /* not before <enabled/>: a server that refused <enable/> would take <r/> as an error */
    if (sm->active && sm->since_r >= SM_ACK_EVERY)
        request_ack(p);
    else if (!sm->r_due_ms)
        sm->r_due_ms = time_mono_ms() + SM_ACK_IDLE_MS;
}

void sm_track(parley *p, const xml_node *st, const char *xml, size_t len)
{
    sm_client *sm = &p->sm;
    if (!sm->enabled || !str_eq(st->ns, XMLNS_CLIENT))
        return;
    sm_queue_push(&sm->q, xml, len, str_eq(st->name, "message"), xml_get_attr(st, "id"),
                  xml_get_attr(st, "to"));
    sm->since_r++;
    if (sm->q.count > SM_QUEUE_MAX) {
        client_fail(p, PARLEY_ERR_TIMEOUT, 0,
                    "%s: the server acknowledged none of the last %zu stanzas", p->peer,
                    sm->q.count);
        return;
    }
    ack_requested_soon(p);
}

void sm_count_inbound(parley *p)
{
    if (p->sm.active)
        p->sm.h_in++;
}

/* The server acknowledged stanzas we never sent: its count cannot be trusted, so the
 * stream ends (XEP-0198 handled-count-too-high) and the session is not resumed; what is
 * queued stays queued and goes out again on the next session. */
static void bad_ack(parley *p, const char *h)
{
    sm_client *sm = &p->sm;
    uint32_t sent = sm->q.acked + (uint32_t)sm->q.count;
    char text[512];
    snprintf(text, sizeof text,
             "<stream:error><undefined-condition xmlns='" XMLNS_STREAMS "'/>"
             "<handled-count-too-high xmlns='" XMLNS_SM "' h='%u' send-count='%u'/>"
             "</stream:error></stream:stream>",
             (unsigned)strtoul(h && strlen(h) <= 10 ? h : "0", NULL, 10), (unsigned)sent);
    write_nonza(p, text);
    forget_resumption(p);
    client_fail(p, PARLEY_ERR_PROTOCOL, 0,
                "%s: the server acknowledged %.16s stanzas but only %u were sent; closing "
                "(%zu unacknowledged stanzas kept for the next session)",
                p->peer, h ? h : "(none)", (unsigned)sent, sm->q.count);
}

static void on_enabled(parley *p, const xml_node *el)
{
    sm_client *sm = &p->sm;
    if (!sm->enabled || sm->active) {
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: an unexpected <enabled/>", p->peer);
        return;
    }
    sm->active = 1;
    const char *resume = xml_get_attr(el, "resume");
    const char *id = xml_get_attr(el, "id");
    if ((str_eq(resume, "true") || str_eq(resume, "1")) && id && *id && strlen(id) <= 256 &&
        p->bound) {
        sm->resume_id = xstrdup(id);
        sm->resume_jid = xstrdup(p->bound);
        uint32_t max;
        sm->resume_max_s = sm_parse_h(xml_get_attr(el, "max"), &max) == 0 ? max : 0;
    }
    client_log(p, 0, "%s: stream management enabled%s", p->peer,
               sm->resume_id ? " (resumable)" : "");
    if (sm->q.count)
        ack_requested_soon(p);
}

/* The session was resumed: the server got h of our stanzas; the rest go again. */
static int on_resumed(parley *p, const xml_node *el)
{
    sm_client *sm = &p->sm;
    const char *h = xml_get_attr(el, "h");
    uint32_t hv;
    if (!str_eq(xml_get_attr(el, "previd"), sm->resume_id)) {
        forget_resumption(p);
        client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: <resumed/> for another session", p->peer);
        return -1;
    }
    if (sm_parse_h(h, &hv) < 0 || sm_queue_ack(&sm->q, hv) < 0) {
        bad_ack(p, h);
        return -1;
    }
    /* IQs of the lost connection were answered with an error already: not again */
    sm_queue again = {0};
    again.acked = sm->q.acked;
    for (size_t i = 0; i < sm->q.count; i++) {
        sm_item *it = &sm->q.items[sm->q.head + i];
        if (strncmp(it->xml, "<iq", 3) == 0) {
            free(it->xml);
            free(it->id);
            free(it->to);
        } else {
            queue_append(&again, *it);
        }
    }
    free(sm->q.items);
    sm->q = again;
    for (size_t i = 0; i < sm->q.count; i++)
        transport_write(p, sm->q.items[sm->q.head + i].xml, sm->q.items[sm->q.head + i].len);
    free(p->bound);
    p->bound = xstrdup(sm->resume_jid);
    sm->enabled = sm->active = 1;
    sm->resume_until_ms = 0;
    sm->since_r = (unsigned)sm->q.count;
    client_log(p, 1, "%s: session resumed as %s; %zu stanzas sent again", p->peer, p->bound,
               sm->q.count);
    if (sm->q.count)
        request_ack(p);
    return 0;
}

sm_result sm_handle(parley *p, const xml_node *el)
{
    sm_client *sm = &p->sm;
    if (str_eq(el->name, "r")) {
        if (!sm->active)
            return SM_OK; /* not enabled here: nothing to count */
        char text[64];
        snprintf(text, sizeof text, "<a xmlns='" XMLNS_SM "' h='%u'/>", (unsigned)sm->h_in);
        write_nonza(p, text);
        return SM_OK;
    }
    if (str_eq(el->name, "a")) {
        const char *h = xml_get_attr(el, "h");
        uint32_t hv;
        if (!sm->active || sm_parse_h(h, &hv) < 0 || sm_queue_ack(&sm->q, hv) < 0) {
            bad_ack(p, h);
            return SM_OK;
        }
        sm->r_outstanding = 0;
        if (sm->q.count)
            ack_requested_soon(p);
        return SM_OK;
    }
    if (str_eq(el->name, "enabled")) {
        on_enabled(p, el);
        return SM_OK;
    }
    if (str_eq(el->name, "resumed")) {
        if (p->neg != NEG_RESUME) {
            client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: an unexpected <resumed/>", p->peer);
            return SM_OK;
        }
        return on_resumed(p, el) == 0 ? SM_RESUMED : SM_OK;
    }
    if (str_eq(el->name, "failed")) {
        if (p->neg == NEG_RESUME) {
            /* XEP-0198 1.6: the server may say what it did get of the old session */
            uint32_t hv;
            if (sm_parse_h(xml_get_attr(el, "h"), &hv) == 0)
                sm_queue_ack(&sm->q, hv); /* a wrong h only means nothing is dropped */
            client_log(p, 1, "%s: the previous session cannot be resumed here; binding anew",
                       p->peer);
            forget_resumption(p);
            return SM_RESUME_FAILED;
        }
        /* <enable/> refused: nothing is counted on this stream */
        client_log(p, 2, "%s: the server refused stream management", p->peer);
        sm->enabled = sm->active = 0;
        sm_queue_clear(&sm->q);
        return SM_OK;
    }
    client_fail(p, PARLEY_ERR_PROTOCOL, 0, "%s: unknown stream management element <%s/>",
                p->peer, el->name);
    return SM_OK;
}

void sm_resend(parley *p)
{
    sm_client *sm = &p->sm;
    size_t n = sm->resend.count;
    if (!n)
        return;
    sm_queue pending = sm->resend;
    sm->resend = (sm_queue){0};
    for (size_t i = 0; i < n && !p->fail_pending; i++) {
        const sm_item *it = &pending.items[pending.head + i];
        transport_write(p, it->xml, it->len);
        if (sm->enabled) {
            sm_queue_push(&sm->q, it->xml, it->len, 1, it->id, it->to);
            sm->since_r++;
        }
        parley_event ev = {0};
        ev.type = PARLEY_EV_RESENT;
        ev.id = it->id;
        ev.to = it->to;
        ev.error_text = "sent again on a new session: the server had not acknowledged it";
        client_emit(p, &ev);
    }
    client_log(p, 1, "%s: sent %zu unacknowledged messages again", p->peer, n);
    sm_queue_clear(&pending);
    if (sm->enabled && sm->q.count)
        request_ack(p);
}

void sm_on_lost(parley *p, int clean)
{
    sm_client *sm = &p->sm;
    sm->enabled = sm->active = 0;
    sm->r_outstanding = 0;
    sm->r_due_ms = 0;
    sm->since_r = 0;
    if (clean) {
        /* our </stream:stream> was answered: the server handled everything before it */
        forget_resumption(p);
        sm_queue_clear(&sm->q);
        return;
    }
    /* the window runs from the loss of the session, not from later failed attempts */
    if (sm->resume_id && sm->resume_max_s && !sm->resume_until_ms)
        sm->resume_until_ms = time_mono_ms() + (int64_t)sm->resume_max_s * 1000;
}

void sm_timers(parley *p, int64_t now)
{
    sm_client *sm = &p->sm;
    if (sm->active && sm->r_due_ms && now >= sm->r_due_ms && !sm->r_outstanding && sm->q.count)
        request_ack(p);
}

int64_t sm_next_timer(const parley *p)
{
    const sm_client *sm = &p->sm;
    return sm->active && sm->r_due_ms && !sm->r_outstanding && sm->q.count ? sm->r_due_ms : -1;
}
