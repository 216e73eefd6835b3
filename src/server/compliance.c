/* compliance.c - recording messages and audit events in the compliance archive before
 * anything is delivered (see compliance.h for the strict-mode contract). */
#include "compliance.h"
#include "../common/log.h"
#include "../common/util.h"
#include "clog.h"
#include "clog_spool.h"
#include "compliance_internal.h"
#include "router.h"
#include "verdict.h"

#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

/* Audit events kept for retry while the store fails; beyond this the oldest are dropped
 * (with an error in the log) so that a dead store cannot exhaust memory. */
#define MAX_PENDING_EVENTS 100000
/* An audit-only batch that failed is retried at most this often (ms): each attempt may
 * wait the store's busy timeout with the event loop stopped. */
#define AUDIT_RETRY_MS 1000

#define BOUNCE_TEXT "the compliance archive is unavailable; the message was not delivered"

/* End-to-end encryption elements: the record keeps their namespace, never a body. */
static const struct {
    const char *ns, *name;
} e2e_elements[] = {
    {"urn:xmpp:omemo:2", "encrypted"},                 /* OMEMO (XEP-0384) */
    {"eu.siacs.conversations.axolotl", "encrypted"},   /* legacy OMEMO */
    {"urn:xmpp:openpgp:0", "openpgp"},                 /* OpenPGP (XEP-0373) */
    {"jabber:x:encrypted", "x"},                       /* legacy OpenPGP (XEP-0027) */
};

typedef compliance_item held;

typedef struct compliance {
    clog *log;
    clog_spool *spool; /* spool mode only */
    EVP_PKEY *key;
    held *held;
    size_t nheld, held_cap;
    clog_audit *events;
    size_t nevents, events_cap;
    int64_t retry_after_ms;
    int64_t last_ts_us;  /* the latest time stamped on a message record or audit event */
} compliance;

int compliance_enabled(const server *srv)
{
    return srv->compliance != NULL;
}

int compliance_pending(const server *srv)
{
    return srv->compliance && (srv->compliance->nheld > 0 || verdict_pending(srv));
}

int compliance_sender_waiting(const server *srv, const char *sender, uint64_t sm_serial,
                              uint32_t *h)
{
    return srv->compliance && verdict_sender_waiting(srv, sender, sm_serial, h);
}

static const char *e2e_namespace(const xml_node *stanza)
{
    for (size_t i = 0; i < ARRAY_LEN(e2e_elements); i++)
        if (xml_child(stanza, e2e_elements[i].ns, e2e_elements[i].name))
            return e2e_elements[i].ns;
    return NULL;
}

int compliance_wants(const xml_node *stanza)
{
    if (str_eq(xml_get_attr(stanza, "type"), "error"))
        return 0;
    return xml_child(stanza, XMLNS_CLIENT, "body") || xml_child(stanza, XMLNS_CLIENT, "subject") ||
           e2e_namespace(stanza);
}

int compliance_open(server *srv)
{
    if (!srv->cfg.compliance)
        return 0;
    /* The TLS key signs the checkpoints: the same key the server proves itself with, and
     * one reference kept so that a SIGHUP reload of the TLS context does not free it. */
    EVP_PKEY *key = SSL_CTX_get0_privatekey(srv->tls_ctx);
    if (!key || EVP_PKEY_up_ref(key) != 1) {
        log_error("compliance: no private key to sign checkpoints with");
        return -1;
    }
    char err[512], where[256];
    store_uri_redacted(srv->cfg.compliance_store, where, sizeof where);
    clog *log = clog_open(srv->cfg.compliance_store, key, srv->cfg.compliance_checkpoint_every,
                          0, err, sizeof err);
    clog_spool *spool = NULL;
    if (log && srv->cfg.compliance_mode == COMPLIANCE_SPOOL &&
        !(spool = clog_spool_open(srv->cfg.compliance_spool, err, sizeof err))) {
        clog_close(log);
        log = NULL;
    }
    if (!log) {
        log_error("compliance archive %s cannot be opened, refusing to start: %s", where, err);
        EVP_PKEY_free(key);
        return -1;
    }
    compliance *c = xcalloc(1, sizeof *c);
    c->log = log;
    c->spool = spool;
    c->key = key;
    srv->compliance = c;
    compliance_audit(srv, "server", "server-start", srv->cfg.domain, NULL, NULL);
    /* The start event proves the archive is writable now, not at the first message. */
    compliance_flush(srv);
    if (c->nevents) {
        log_error("compliance archive %s is not writable, refusing to start: %s", where,
                  clog_last_error(log));
        compliance_close(srv);
        return -1;
    }
    log_info("compliance archive %s (%s mode, checkpoint every %d records)", where,
             spool ? "spool" : "strict", srv->cfg.compliance_checkpoint_every);
    return 0;
}

void compliance_close(server *srv)
{
    compliance *c = srv->compliance;
    if (!c)
        return;
    compliance_flush(srv);
    c->retry_after_ms = 0;
    compliance_flush(srv); /* events queued by the releases */
    if (c->nevents)
        log_error("compliance: %zu audit events could not be written at shutdown: %s",
                  c->nevents, clog_last_error(c->log));
    for (size_t i = 0; i < c->nevents; i++)
        clog_audit_clear(&c->events[i]);
    free(c->events);
    free(c->held);
    clog_spool_close(c->spool);
    clog_close(c->log);
    EVP_PKEY_free(c->key);
    free(c);
    srv->compliance = NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* The time of a message record or audit event: the server clock, but strictly after
 * everything stamped before, so that the two chains (each with its own seq) interleave in
 * one order by ts_us. An auditor needs that order to tell who was in a room (room-join,
 * room-leave) when each room message was recorded. */
static int64_t next_ts(compliance *c)
{
    int64_t now = time_now_us();
    c->last_ts_us = now > c->last_ts_us ? now : c->last_ts_us + 1;
    return c->last_ts_us;
}

/* The record of a message: its metadata, its body unless it is end-to-end encrypted,
 * and the whole stanza (without bodies when encrypted: a fallback body is not the
 * content, and the archive must not pretend to hold plaintext it does not). */
static void build_record(compliance *c, clog_record *r, const xml_node *stanza,
                         const char *recipient, const char *outcome, const char *reason)
{
    memset(r, 0, sizeof *r);
    r->file_size = -1;
    r->ts_us = next_ts(c);
    r->kind = xstrdup("message");
    r->sender = dup_or_null(xml_get_attr(stanza, "from"));
    r->recipient = dup_or_null(recipient);
    r->msg_id = dup_or_null(xml_get_attr(stanza, "id"));
    const char *type = xml_get_attr(stanza, "type");
    r->type = xstrdup(type ? type : "normal");
    r->thread = xml_child_text(stanza, XMLNS_CLIENT, "thread");
    r->subject = xml_child_text(stanza, XMLNS_CLIENT, "subject");
    const char *ns = e2e_namespace(stanza);
    if (ns) {
        r->encrypted = 1;
        r->enc_ns = xstrdup(ns);
        xml_node *copy = xml_copy(stanza);
        xml_node *b;
        while ((b = xml_child(copy, XMLNS_CLIENT, "body")) != NULL) {
            xml_detach(b);
            xml_free(b);
        }
        r->stanza = xml_to_string(copy, XMLNS_CLIENT);
        xml_free(copy);
    } else {
        r->body = xml_child_text(stanza, XMLNS_CLIENT, "body");
        r->stanza = xml_to_string(stanza, XMLNS_CLIENT);
    }
    r->outcome = xstrdup(outcome);
    r->verdict = xstrdup("allow");
    r->reason = dup_or_null(reason);
}

void compliance_enqueue(server *srv, const compliance_item *it)
{
    compliance *c = srv->compliance;
    if (c->nheld == c->held_cap) {
        c->held_cap = c->held_cap ? 2 * c->held_cap : 64;
        c->held = xrealloc(c->held, c->held_cap * sizeof *c->held);
    }
    c->held[c->nheld++] = *it;
}

/* Hold a message: it waits for a verdict (verdict.c) or goes straight into the batch. */
static void hold(server *srv, xml_node *stanza, const char *recipient, const char *kind,
                 const char *const *occupants, size_t noccupants, const char *outcome,
                 const char *reason, compliance_release_fn release, void *ud,
                 void (*free_ud)(void *ud))
{
    held h;
    memset(&h, 0, sizeof h);
    h.stanza = stanza;
    h.release = release;
    h.ud = ud;
    h.free_ud = free_ud;
    if (outcome) {
        h.has_record = 1;
        build_record(srv->compliance, &h.rec, stanza, recipient, outcome, reason);
    }
    if (verdict_take(srv, &h, kind, occupants, noccupants))
        return;
    compliance_enqueue(srv, &h);
}

void compliance_hold(server *srv, xml_node *stanza, const char *recipient, const char *outcome,
                     const char *reason, compliance_release_fn release, void *ud,
                     void (*free_ud)(void *ud))
{
    /* A room module that records each room message through this entry point still gets
     * a groupchat check, only without the occupant list. */
    const char *kind = str_eq(xml_get_attr(stanza, "type"), "groupchat") ? "groupchat" : "message";
    hold(srv, stanza, recipient, kind, NULL, 0, outcome, reason, release, ud, free_ud);
}

void compliance_hold_room(server *srv, xml_node *stanza, const char *room,
                          const char *const *occupants, size_t noccupants, const char *outcome,
                          const char *reason, compliance_release_fn release, void *ud,
                          void (*free_ud)(void *ud))
{
    hold(srv, stanza, room, "groupchat", occupants, noccupants, outcome, reason, release, ud,
         free_ud);
}

void compliance_record(server *srv, clog_record *rec, compliance_done_fn done, void *ud)
{
    compliance *c = srv->compliance;
    if (!c) {
        clog_record_clear(rec);
        if (done)
            done(srv, 1, ud);
        return;
    }
    held h;
    memset(&h, 0, sizeof h);
    h.has_record = 1;
    h.rec = *rec;
    h.done = done;
    h.ud = ud;
    memset(rec, 0, sizeof *rec);
    compliance_enqueue(srv, &h);
}

void compliance_audit(server *srv, const char *actor, const char *event, const char *target,
                      const char *peer, const char *detail)
{
    compliance *c = srv->compliance;
    if (!c)
        return;
    if (c->nevents >= MAX_PENDING_EVENTS) {
        log_error("compliance: audit event '%s' of %s dropped: %zu events already wait for "
                  "the store (%s)",
                  c->events[0].event, c->events[0].actor ? c->events[0].actor : "?",
                  c->nevents, clog_last_error(c->log));
        clog_audit_clear(&c->events[0]);
        memmove(c->events, c->events + 1, (c->nevents - 1) * sizeof *c->events);
        c->nevents--;
    }
    if (c->nevents == c->events_cap) {
        c->events_cap = c->events_cap ? 2 * c->events_cap : 16;
        c->events = xrealloc(c->events, c->events_cap * sizeof *c->events);
    }
    clog_audit *a = &c->events[c->nevents++];
    memset(a, 0, sizeof *a);
    a->ts_us = next_ts(c);
    a->actor = dup_or_null(actor);
    a->event = xstrdup(event);
    a->target = dup_or_null(target);
    a->peer = dup_or_null(peer);
    a->detail = dup_or_null(detail);
}

void compliance_flush(server *srv)
{
    compliance *c = srv->compliance;
    if (!c || (c->nheld == 0 && c->nevents == 0 && !clog_spool_pending(c->spool)))
        return; /* the common idle case: nothing to do, no allocation */
    if (c->nheld == 0 && c->retry_after_ms && time_mono_ms() < c->retry_after_ms)
        return;

    /* Take the batch out first: releasing may queue new work for the next flush. */
    held *batch = c->held;
    size_t n = c->nheld;
    c->held = NULL;
    c->nheld = c->held_cap = 0;

    size_t nrecs = 0;
    clog_record *recs = n ? xmalloc(n * sizeof *recs) : NULL;
    for (size_t i = 0; i < n; i++)
        if (batch[i].has_record)
            recs[nrecs++] = batch[i].rec; /* shallow: the strings stay with batch[i] */
    /* Spool mode: what the store cannot take goes to the fsync'd spool instead. */
    int rc = c->spool ? clog_spool_commit(c->spool, c->log, recs, nrecs, c->events, c->nevents)
                      : clog_append(c->log, recs, nrecs, c->events, c->nevents);
    free(recs);
    if (rc == 0) {
        for (size_t i = 0; i < c->nevents; i++)
            clog_audit_clear(&c->events[i]);
        c->nevents = 0;
        c->retry_after_ms = 0;
    } else {
        log_error("compliance: writing %zu records and %zu audit events failed: %s%s", nrecs,
                  c->nevents, clog_last_error(c->log),
                  nrecs ? "; the messages are returned to their senders" : "");
        c->retry_after_ms = time_mono_ms() + AUDIT_RETRY_MS;
    }

    for (size_t i = 0; i < n; i++) {
        held *h = &batch[i];
        if (!h->stanza) {
            if (h->done)
                h->done(srv, rc == 0, h->ud);
        } else if (rc == 0 || !h->has_record) {
            h->release(srv, h->stanza, h->ud);
        } else {
            router_bounce(srv, h->stanza, "wait", "resource-constraint", BOUNCE_TEXT);
            xml_free(h->stanza);
            if (h->free_ud)
                h->free_ud(h->ud);
        }
        if (h->has_record)
            clog_record_clear(&h->rec);
    }
    free(batch);
}
