/* upload_flow.c - what happens to a file besides its bytes: its compliance records, the
 * compliance server's verdicts (docs/verdict-protocol.md, kind "file"), quarantine until
 * the verdict, and notices to the sender from upload.DOMAIN. */
#include "upload.h"
#include "../common/log.h"
#include "../common/util.h"
#include "clog.h"
#include "router.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERDICT_NS "urn:parley:compliance:0"

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void upload_record(server *srv, const file_meta *m, const char *type, const char *outcome,
                   const char *verdict, const char *reason, const char *peer,
                   compliance_done_fn done, void *ud)
{
    clog_record r;
    memset(&r, 0, sizeof r);
    r.ts_us = time_now_us();
    r.kind = xstrdup("file");
    r.sender = dup_or_null(m->sender);
    r.recipient = dup_or_null(m->recipient);
    r.msg_id = xstrdup(m->id);
    r.type = xstrdup(type);
    r.file_name = dup_or_null(m->name);
    r.file_size = m->size;
    r.file_type = dup_or_null(m->type ? m->type : m->declared_type);
    r.file_sha256 = m->sha256[0] ? xstrdup(m->sha256) : NULL;
    r.outcome = xstrdup(outcome);
    r.verdict = dup_or_null(verdict); /* NULL: no verdict applies (e.g. a failed write) */
    r.reason = dup_or_null(reason);
    /* The event in full, as the record's "stanza": who, from where, which file. */
    xml_node *x = xml_new(FILES_NS, "file");
    xml_set_attr(x, "event", type);
    xml_set_attr(x, "id", m->id);
    if (m->declared_type)
        xml_set_attr(x, "declared-type", m->declared_type);
    xml_set_attr(x, "screen-capture", m->screen_capture ? "true" : "false");
    if (peer)
        xml_set_attr(x, "peer", peer);
    r.stanza = xml_to_string(x, NULL);
    xml_free(x);
    compliance_record(srv, &r, done, ud);
}

void upload_notify(server *srv, const file_meta *m, const char *text)
{
    if (!m->sender)
        return;
    xml_node *msg = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(msg, "from", srv->cfg.upload_domain);
    xml_set_attr(msg, "to", m->sender);
    xml_set_attr(msg, "type", "normal");
    char id[24];
    random_token(id, 16);
    xml_set_attr(msg, "id", id);
    xml_node *b = xml_add_child(msg, NULL, "body");
    xml_add_text(b, text, strlen(text));
    xml_node *f = xml_add_child(msg, FILES_NS, "file-blocked");
    xml_set_attr(f, "id", m->id);
    if (m->name)
        xml_set_attr(f, "name", m->name);
    router_send(srv, msg);
}

/* ---- verdicts ---- */

typedef struct verdict_ctx {
    upload_verdict_fn fn;
    void *ud;
} verdict_ctx;

static void on_verdict(server *srv, void *ud, const compliance_verdict *v)
{
    verdict_ctx *c = ud;
    c->fn(srv, c->ud, v->allowed, v->verdict, v->reason);
    free(c);
}

void upload_ask_verdict(server *srv, const file_meta *m, const char *stage,
                        upload_verdict_fn fn, void *ud)
{
    xml_node *f = xml_new(VERDICT_NS, "file");
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, m->size);
    xml_set_attr(f, "name", m->name ? m->name : "");
    xml_set_attr(f, "size", num);
    const char *type = m->type ? m->type : m->declared_type;
    if (type)
        xml_set_attr(f, "type", type);
    if (m->sender)
        xml_set_attr(f, "sender", m->sender);
    if (m->recipient)
        xml_set_attr(f, "recipient", m->recipient);
    xml_set_attr(f, "screen-capture", m->screen_capture ? "true" : "false");
    xml_set_attr(f, "stage", stage);
    if (m->sha256[0])
        xml_set_attr(f, "sha256", m->sha256);
    verdict_ctx *c = xcalloc(1, sizeof *c);
    c->fn = fn;
    c->ud = ud;
    compliance_check_file(srv, f, on_verdict, c);
}

/* ---- quarantine ---- */

static void on_upload_verdict(server *srv, void *ud, int allow, const char *verdict,
                              const char *reason)
{
    char *id = ud;
    file_meta m;
    if (files_meta_get(srv->store, id, &m) != STORE_OK || m.state != FILE_QUARANTINED) {
        free(id); /* purged meanwhile: nothing left to release or delete */
        return;
    }
    if (allow) {
        m.state = FILE_AVAILABLE;
        if (files_meta_put(srv->store, &m) != STORE_OK)
            log_error("upload: cannot release file %.8s...: %s", m.id,
                      store_last_error(srv->store));
        upload_record(srv, &m, "verdict", "released", verdict, reason, NULL, NULL, NULL);
        log_info("upload: file %.8s... released (%s)", m.id, verdict);
    } else {
        char text[700];
        snprintf(text, sizeof text, "Your file \"%s\" was blocked by the compliance server "
                                    "and deleted: %s", m.name ? m.name : "?",
                 reason ? reason : "no reason given");
        if (files_remove(srv->store, srv->cfg.upload_dir, m.id) != STORE_OK)
            log_error("upload: cannot delete blocked file %.8s...: %s", m.id,
                      store_last_error(srv->store));
        upload_record(srv, &m, "verdict", "blocked-compliance", verdict, reason, NULL, NULL, NULL);
        upload_notify(srv, &m, text);
        log_info("upload: file %.8s... blocked (%s) and deleted", m.id, verdict);
    }
    file_meta_clear(&m);
    free(id);
}

void upload_judge(server *srv, const char *id)
{
    file_meta m;
    if (files_meta_get(srv->store, id, &m) != STORE_OK)
        return;
    if (m.state == FILE_QUARANTINED)
        upload_ask_verdict(srv, &m, "upload", on_upload_verdict, xstrdup(id));
    file_meta_clear(&m);
}
