/* verdict.c - from a check IQ to a verdict IQ (verdict.h). Nothing is answered before
 * its journal row is written: a verdict the journal does not know about would break the
 * promise that every check is on record, so a journal failure is an error reply and
 * parleyd's compliance_server_failure setting decides. */
#include "verdict.h"

#include "../common/log.h"
#include "../common/util.h"
#include "check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xml_node *reply_new(const xml_node *iq, const char *self, const char *type)
{
    xml_node *r = xml_new(XMLNS_COMPONENT, "iq");
    xml_set_attr(r, "type", type);
    xml_set_attr(r, "id", xml_get_attr(iq, "id"));
    xml_set_attr(r, "from", self);
    xml_set_attr(r, "to", xml_get_attr(iq, "from"));
    return r;
}

xml_node *iq_result_new(const xml_node *iq, const char *self)
{
    return reply_new(iq, self, "result");
}

xml_node *iq_error_new(const xml_node *iq, const char *self, const char *type,
                       const char *condition, const char *text)
{
    xml_node *r = reply_new(iq, self, "error");
    xml_node *e = xml_add_child(r, NULL, "error");
    xml_set_attr(e, "type", type);
    xml_add_child(e, XMLNS_STANZAS, condition);
    if (text) {
        xml_node *t = xml_add_child(e, XMLNS_STANZAS, "text");
        xml_add_text(t, text, strlen(text));
    }
    return r;
}

static void add_text_child(xml_node *parent, const char *name, const char *text)
{
    xml_node *n = xml_add_child(parent, NULL, name);
    xml_add_text(n, text, strlen(text));
}

static xml_node *verdict_reply(const xml_node *iq, const char *self, const pc_result *res)
{
    xml_node *r = reply_new(iq, self, "result");
    xml_node *v = xml_add_child(r, XMLNS_PC_COMPLIANCE, "verdict");
    xml_set_attr(v, "action", pc_verdict_name(res->verdict));
    if (res->reason)
        add_text_child(v, "reason", res->reason);
    if (res->verdict == PC_MODIFY && res->body)
        add_text_child(v, "body", res->body);
    return r;
}

/* "name (type, N bytes, stage)" for a file check's journal row. */
static char *file_detail(const pc_check *c)
{
    return xasprintf("%s (%s, %" PRIu64 " bytes, %s)", c->file_name ? c->file_name : "-",
                     c->file_type ? c->file_type : "-", c->file_size, c->file_stage);
}

static xml_node *malformed(const verdict_ctx *vc, const xml_node *iq, const char *why,
                           int64_t now_us)
{
    const char *id = xml_get_attr(iq, "id");
    log_warn("malformed check %s from %s: %s", id ? id : "(no id)",
             xml_get_attr(iq, "from") ? xml_get_attr(iq, "from") : "?", why);
    journal_entry e = {.time_us = now_us, .kind = "invalid", .verdict = "error",
                       .reason = why, .request_id = id};
    char err[512];
    if (journal_record(vc->journal, &e, err, sizeof err) < 0)
        log_error("%s", err);
    return iq_error_new(iq, vc->self, "modify", "bad-request", why);
}

static xml_node *journal_failed(const verdict_ctx *vc, const xml_node *iq, const char *err)
{
    log_error("%s; check %s answered with an error", err,
              xml_get_attr(iq, "id") ? xml_get_attr(iq, "id") : "(no id)");
    return iq_error_new(iq, vc->self, "wait", "internal-server-error",
                        "the compliance journal is unavailable");
}

xml_node *verdict_answer(const verdict_ctx *vc, const xml_node *iq, int64_t now_us)
{
    char why[512], err[512];
    const xml_node *el = xml_child(iq, XMLNS_PC_COMPLIANCE, "check");
    pc_check c;
    if (!el)
        return malformed(vc, iq, "no <check xmlns='" XMLNS_PC_COMPLIANCE "'/> in the request",
                         now_us);
    if (check_parse(el, &c, why, sizeof why) < 0)
        return malformed(vc, iq, why, now_us);

    char day[11];
    journal_day(now_us, day);
    int sent = 1;
    if (rules_has_disclaimer(vc->rules) && c.kind != PC_KIND_FILE && c.body && !c.encrypted &&
        journal_disclaimer_sent(vc->journal, c.sender, day, &sent, err, sizeof err) < 0) {
        check_clear(&c);
        return journal_failed(vc, iq, err);
    }
    pc_result res;
    rules_evaluate(vc->rules, &c, !sent, &res);

    char *detail = c.kind == PC_KIND_FILE ? file_detail(&c) : NULL;
    journal_entry e = {.time_us = now_us, .kind = pc_kind_name(c.kind), .sender = c.sender,
                       .recipient = c.recipient, .verdict = pc_verdict_name(res.verdict),
                       .flagged = res.flagged, .rule = res.rule, .reason = res.reason,
                       .message_id = c.message_id, .request_id = xml_get_attr(iq, "id"),
                       .detail = detail, .disclaimer = res.disclaimer};
    xml_node *reply;
    if (journal_record(vc->journal, &e, err, sizeof err) < 0) {
        reply = journal_failed(vc, iq, err);
    } else {
        /* Metadata only: bodies belong in parleyd's archive, not in an operator's log. */
        log_info("check %s: %s %s -> %s: %s%s%s%s", e.request_id ? e.request_id : "-", e.kind,
                 c.sender, c.recipient ? c.recipient : "(no recipient)", e.verdict, res.flagged ? " (flagged)" : "",
                 res.rule ? " by " : "", res.rule ? res.rule : "");
        reply = verdict_reply(iq, vc->self, &res);
    }
    free(detail);
    pc_result_clear(&res);
    check_clear(&c);
    return reply;
}
