/* verdict.c - the compliance server's verdicts (verdict.h, docs/verdict-protocol.md).
 *
 * A message that needs a check waits in its sender's queue until its verdict arrives;
 * messages its sender sends meanwhile (checked or not) queue behind it. Whenever the
 * head of a queue is decided, the decided messages at its front move into the batch
 * that compliance_flush commits, so records keep the group commit and messages keep
 * their sender's order. Other senders have queues of their own and never wait. */
#include "verdict.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "iq_out.h"
#include "router.h"
#include "sm.h"

#include <stdlib.h>
#include <string.h>

#define XMLNS_FORWARD "urn:xmpp:forward:0"

/* Messages one sender may have waiting behind an unanswered check. More are refused:
 * a slow compliance server must not make the server queue without bound. */
#define MAX_WAITING_PER_SENDER 1000

#define FAILURE_TEXT "the compliance server did not answer; the message was not delivered"
#define BLOCK_TEXT "the compliance server blocked this message"
#define BACKLOG_TEXT "too many of your messages are waiting for the compliance server"

typedef struct queue queue;

typedef struct entry {
    compliance_item it;
    queue *q;
    struct entry *next;
    int waiting; /* its check is unanswered (iq_out holds a pointer to it) */
    uint64_t sm_serial; /* its sender's stream management (sm.h), 0 if none */
    uint32_t sm_seq;    /* its number among the stanzas counted there */
} entry;

/* One sender's messages, in order; exists only while its head waits for a verdict. */
struct queue {
    char *sender;
    entry *head, *tail;
    size_t n;
};

struct verdicts {
    dict *queues; /* sender's full JID -> queue */
};

typedef enum { V_ALLOW, V_BLOCK, V_MODIFY, V_FAIL } action;

/* A parsed answer (or the lack of one). */
typedef struct decision {
    action act;
    char *reason; /* the verdict's reason, or why there is no verdict */
    char *body;   /* modify: the body to deliver */
} decision;

static struct verdicts *state(server *srv)
{
    if (!srv->verdicts) {
        srv->verdicts = xcalloc(1, sizeof *srv->verdicts);
        srv->verdicts->queues = dict_new();
    }
    return srv->verdicts;
}

int verdict_pending(const server *srv)
{
    return srv->verdicts && dict_size(srv->verdicts->queues) > 0;
}

int verdict_sender_waiting(const server *srv, const char *sender, uint64_t sm_serial,
                           uint32_t *h)
{
    const queue *q = srv->verdicts && sender ? dict_get(srv->verdicts->queues, sender) : NULL;
    for (const entry *e = q ? q->head : NULL; e; e = e->next)
        if (e->sm_serial == sm_serial) {
            *h = e->sm_seq - 1; /* modular, like the counter */
            return 1;
        }
    return 0;
}

static void set_str(char **field, const char *value)
{
    free(*field);
    *field = value ? xstrdup(value) : NULL;
}

/* ---- reading the answer ---- */

static void parse_reply(server *srv, const xml_node *reply, decision *d)
{
    memset(d, 0, sizeof *d);
    d->act = V_FAIL;
    if (!reply) {
        if (router_is_service(srv, srv->cfg.compliance_server))
            d->reason = xasprintf("no verdict within %d ms", srv->cfg.compliance_server_timeout);
        else
            d->reason = xstrdup("the compliance server disconnected before its verdict");
        return;
    }
    if (str_eq(xml_get_attr(reply, "type"), "error")) {
        const xml_node *err = xml_child(reply, NULL, "error");
        const xml_node *cond = err ? xml_child(err, XMLNS_STANZAS, NULL) : NULL;
        d->reason = xasprintf("the compliance server answered with an error (%.64s)",
                              cond ? cond->name : "no condition");
        return;
    }
    const xml_node *v = xml_child(reply, XMLNS_VERDICT, "verdict");
    const char *act = v ? xml_get_attr(v, "action") : NULL;
    char *reason = v ? xml_child_text(v, XMLNS_VERDICT, "reason") : NULL;
    char *body = v ? xml_child_text(v, XMLNS_VERDICT, "body") : NULL;
    if (str_eq(act, "allow")) {
        d->act = V_ALLOW;
    } else if (str_eq(act, "block")) {
        d->act = V_BLOCK;
    } else if (str_eq(act, "modify") && body) {
        d->act = V_MODIFY;
        d->body = body;
        body = NULL;
    } else {
        free(reason);
        free(body);
        d->reason = xstrdup(str_eq(act, "modify") ? "the compliance server's modify verdict has "
                                                    "no <body/>"
                                                  : "the compliance server's answer holds no "
                                                    "valid verdict");
        return;
    }
    free(body);
    d->reason = reason;
}

static void decision_clear(decision *d)
{
    free(d->reason);
    free(d->body);
}

/* ---- what a verdict does to a held message ---- */

/* A held message that must go back to its sender instead of being released. The
 * original release is never called, so its ud is freed with its own free_ud. */
typedef struct bounce {
    void *ud;
    void (*free_ud)(void *ud);
    const char *etype, *condition;
    char *text;
} bounce;

static void bounce_free(void *ud)
{
    bounce *b = ud;
    if (b->free_ud)
        b->free_ud(b->ud);
    free(b->text);
    free(b);
}

static void bounce_release(server *srv, xml_node *stanza, void *ud)
{
    bounce *b = ud;
    router_bounce(srv, stanza, b->etype, b->condition, b->text);
    xml_free(stanza);
    bounce_free(b);
}

static void turn_into_bounce(compliance_item *it, const char *etype, const char *condition,
                             const char *text)
{
    bounce *b = xcalloc(1, sizeof *b);
    b->ud = it->ud;
    b->free_ud = it->free_ud;
    b->etype = etype;
    b->condition = condition;
    b->text = xstrdup(text);
    it->release = bounce_release;
    it->ud = b;
    it->free_ud = bounce_free;
}

static void replace_body(xml_node *stanza, const char *body)
{
    xml_node *b;
    while ((b = xml_child(stanza, XMLNS_CLIENT, "body")) != NULL) {
        xml_detach(b);
        xml_free(b);
    }
    b = xml_add_child(stanza, XMLNS_CLIENT, "body");
    xml_add_text(b, body, strlen(body));
}

static void block(compliance_item *it, const char *verdict, const char *reason)
{
    set_str(&it->rec.outcome, "blocked-compliance");
    set_str(&it->rec.verdict, verdict);
    set_str(&it->rec.reason, reason);
    turn_into_bounce(it, "modify", "policy-violation", reason ? reason : BLOCK_TEXT);
}

static void apply(server *srv, compliance_item *it, decision *d)
{
    clog_record *r = &it->rec;
    if (d->act == V_MODIFY && r->encrypted) {
        /* The server cannot rewrite what it cannot read: a modify is a block here. */
        char *why = xasprintf("modify is not valid for an encrypted message%s%s",
                              d->reason ? ": " : "", d->reason ? d->reason : "");
        free(d->reason);
        d->reason = why;
        d->act = V_BLOCK;
    }
    switch (d->act) {
    case V_ALLOW:
        set_str(&r->verdict, "allow");
        if (d->reason) /* else keep why it was not delivered, if it was not */
            set_str(&r->reason, d->reason);
        break;
    case V_BLOCK:
        block(it, "block", d->reason);
        break;
    case V_MODIFY:
        replace_body(it->stanza, d->body);
        set_str(&r->body, d->body); /* the record's stanza stays the original as sent */
        set_str(&r->verdict, "modify");
        set_str(&r->reason, d->reason);
        break;
    case V_FAIL:
        log_warn("compliance server: message %s from %s: %s",
                 r->msg_id ? r->msg_id : "(no id)", r->sender ? r->sender : "?", d->reason);
        if (srv->cfg.compliance_server_failure == COMPLIANCE_FAIL_ALLOW) {
            set_str(&r->verdict, "allow-unchecked");
            set_str(&r->reason, d->reason);
        } else {
            set_str(&r->outcome, "blocked-compliance");
            set_str(&r->verdict, "block-unchecked");
            set_str(&r->reason, d->reason);
            turn_into_bounce(it, "wait", "service-unavailable", FAILURE_TEXT);
        }
        return;
    }
    log_debug("compliance server: message %s from %s: %s", r->msg_id ? r->msg_id : "(no id)",
              r->sender ? r->sender : "?", r->verdict);
}

/* ---- the senders' queues ---- */

static void drop_item(compliance_item *it)
{
    xml_free(it->stanza);
    if (it->free_ud)
        it->free_ud(it->ud);
    if (it->has_record)
        clog_record_clear(&it->rec);
}

/* Move the decided messages at the front of q into the batch; free q once empty. */
static void drain(server *srv, queue *q)
{
    int moved = 0;
    while (q->head && !q->head->waiting) {
        entry *e = q->head;
        q->head = e->next;
        q->n--;
        compliance_enqueue(srv, &e->it);
        free(e);
        moved = 1;
    }
    if (!q->head) {
        dict_del(srv->verdicts->queues, q->sender);
        q->tail = NULL;
    }
    /* What moved is in the batch, committed before any output: an XEP-0198
     * acknowledgement held back for these messages may go out with it. */
    if (moved)
        sm_sender_settled(srv, q->sender);
    if (q->head)
        return;
    free(q->sender);
    free(q);
}

static void decided(server *srv, entry *e, decision *d)
{
    apply(srv, &e->it, d);
    decision_clear(d);
    e->waiting = 0;
    drain(srv, e->q);
}

static void on_message_reply(server *srv, void *ud, const xml_node *reply)
{
    decision d;
    parse_reply(srv, reply, &d);
    decided(srv, ud, &d);
}

/* The stanza as the compliance server sees it. Encrypted messages go without <body/>:
 * a fallback body is not the content (the same rule as the archive's record). */
static xml_node *forwarded_copy(const compliance_item *it)
{
    xml_node *copy = xml_copy(it->stanza);
    if (it->has_record && it->rec.encrypted) {
        xml_node *b;
        while ((b = xml_child(copy, XMLNS_CLIENT, "body")) != NULL) {
            xml_detach(b);
            xml_free(b);
        }
    }
    return copy;
}

/* Send a check with payload (taken over); -1 if no compliance server is connected. */
static int send_check(server *srv, xml_node *payload, const char *kind,
                      const char *const *occupants, size_t noccupants, iq_reply_fn fn, void *ud)
{
    if (!router_is_service(srv, srv->cfg.compliance_server)) {
        xml_free(payload);
        return -1;
    }
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_set_attr(iq, "to", srv->cfg.compliance_server);
    xml_node *check = xml_add_child(iq, XMLNS_VERDICT, "check");
    xml_set_attr(check, "kind", kind);
    for (size_t i = 0; i < noccupants; i++) {
        xml_node *o = xml_add_child(check, NULL, "occupant");
        xml_set_attr(o, "jid", occupants[i]);
    }
    if (strcmp(kind, "file") == 0) {
        xml_append(check, payload);
    } else {
        xml_node *fwd = xml_add_child(check, XMLNS_FORWARD, "forwarded");
        xml_append(fwd, payload);
    }
    iq_out_send(srv, iq, srv->cfg.compliance_server_timeout, fn, ud);
    return 0;
}

static int domain_is(const char *jid_text, const char *domain)
{
    jid j;
    if (!jid_text || jid_parse(jid_text, &j) < 0)
        return 0;
    int same = strcmp(j.domain, domain) == 0;
    jid_clear(&j);
    return same;
}

/* The compliance server's own messages, and messages to it, are recorded but not put
 * to it: it sees them anyway, and asking it about its own notices only adds a way to
 * fail. */
static int exempt(server *srv, const xml_node *stanza)
{
    return domain_is(xml_get_attr(stanza, "from"), srv->cfg.compliance_server) ||
           domain_is(xml_get_attr(stanza, "to"), srv->cfg.compliance_server);
}

int verdict_take(server *srv, compliance_item *it, const char *kind,
                 const char *const *occupants, size_t noccupants)
{
    if (!srv->cfg.compliance_server)
        return 0;
    const char *from = xml_get_attr(it->stanza, "from");
    const char *sender = from ? from : "";
    struct verdicts *v = state(srv);
    queue *q = dict_get(v->queues, sender);
    int check = it->has_record && !exempt(srv, it->stanza);
    if (!check && !q)
        return 0;
    if (q && q->n >= MAX_WAITING_PER_SENDER) {
        log_warn("compliance server: %zu messages of %s wait for verdicts; refusing more",
                 q->n, sender);
        router_bounce(srv, it->stanza, "wait", "resource-constraint", BACKLOG_TEXT);
        drop_item(it);
        return 1;
    }
    entry *e = xcalloc(1, sizeof *e);
    e->it = *it;
    /* Routed as it arrives: the sender's count of stanzas received is its number. */
    e->sm_serial = sm_inbound_count(srv, sender, &e->sm_seq);
    if (!q) {
        q = xcalloc(1, sizeof *q);
        q->sender = xstrdup(sender);
        dict_set(v->queues, sender, q);
    }
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->n++;
    e->q = q;
    if (!check)
        return 1;
    e->waiting = 1;
    if (send_check(srv, forwarded_copy(it), kind, occupants, noccupants, on_message_reply, e) < 0) {
        decision d = {V_FAIL, xstrdup("no compliance server is connected"), NULL};
        decided(srv, e, &d); /* may free e and q */
    }
    return 1;
}

/* ---- files ---- */

typedef struct file_check {
    compliance_file_fn fn;
    void *ud;
} file_check;

static void file_decided(server *srv, file_check *fc, decision *d)
{
    compliance_verdict v = {0, "block", d->reason};
    if (d->act == V_ALLOW) {
        v.allowed = 1;
        v.verdict = "allow";
    } else if (d->act == V_FAIL) {
        log_warn("compliance server: file check: %s", d->reason);
        v.allowed = srv->cfg.compliance_server_failure == COMPLIANCE_FAIL_ALLOW;
        v.verdict = v.allowed ? "allow-unchecked" : "block-unchecked";
    }
    fc->fn(srv, fc->ud, &v);
    decision_clear(d);
    free(fc);
}

static void on_file_reply(server *srv, void *ud, const xml_node *reply)
{
    decision d;
    parse_reply(srv, reply, &d);
    file_decided(srv, ud, &d);
}

void compliance_check_file(server *srv, xml_node *file, compliance_file_fn fn, void *ud)
{
    if (!srv->cfg.compliance_server) {
        compliance_verdict v = {1, "allow", NULL};
        xml_free(file);
        fn(srv, ud, &v);
        return;
    }
    file_check *fc = xcalloc(1, sizeof *fc);
    fc->fn = fn;
    fc->ud = ud;
    if (send_check(srv, file, "file", NULL, 0, on_file_reply, fc) < 0) {
        decision d = {V_FAIL, xstrdup("no compliance server is connected"), NULL};
        file_decided(srv, fc, &d);
    }
}

/* ---- shutdown ---- */

static int free_queue(void *ud, const char *key, void *value)
{
    queue *q = value;
    for (entry *e = q->head, *next; e; e = next) {
        next = e->next;
        drop_item(&e->it);
        free(e);
    }
    free(q->sender);
    free(q);
    return 0;
}

void verdict_free(server *srv)
{
    if (!srv->verdicts)
        return;
    /* iq_out_free answered every check, so every queue has drained; anything left would
     * be a bug, and is at least not leaked. */
    if (dict_size(srv->verdicts->queues))
        log_error("compliance server: %zu senders still had messages waiting at shutdown",
                  dict_size(srv->verdicts->queues));
    dict_each(srv->verdicts->queues, free_queue, NULL);
    dict_free(srv->verdicts->queues, NULL);
    free(srv->verdicts);
    srv->verdicts = NULL;
}
