/* mam.c - XEP-0313 message archive management (see mam.h).
 *
 * Archived: chat messages, and normal messages with content (a body, a subject or an
 * end-to-end encrypted payload, the same rule as the compliance archive), unless they
 * carry a no-store or no-permanent-store hint (XEP-0334). Encrypted messages are kept as
 * they are: the client's keys decrypt them. Preferences (XEP-0313 section 7) are cached per
 * user and stored as a document (store_kv "mam-prefs"). */
#include "mam.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "compliance.h"
#include "router.h"
#include "stanza.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XMLNS_RSM "http://jabber.org/protocol/rsm"
#define XMLNS_DATA "jabber:x:data"
#define XMLNS_FORWARD "urn:xmpp:forward:0"
#define XMLNS_HINTS "urn:xmpp:hints"
#define PREFS_COLLECTION "mam-prefs"
#define DEFAULT_PAGE 50
#define MAX_PAGE 250
#define MAX_PREF_JIDS 1000

typedef enum { PREF_ALWAYS, PREF_NEVER, PREF_ROSTER } pref_default;

typedef struct prefs {
    pref_default dflt;
    dict *always; /* bare JID -> non-NULL */
    dict *never;
} prefs;

struct mam_cache {
    dict *prefs; /* user -> prefs */
};

static const char *const default_names[] = {"always", "never", "roster"};

/* ------------------------------------------------------------ preferences ---- */

static void prefs_free(void *p)
{
    prefs *pr = p;
    if (!pr)
        return;
    dict_free(pr->always, NULL);
    dict_free(pr->never, NULL);
    free(pr);
}

static void add_jids(dict *d, const xml_node *list)
{
    size_t n = 0;
    for (xml_node *j = list ? xml_child(list, XMLNS_MAM, "jid") : NULL; j && n < MAX_PREF_JIDS;
         j = xml_next(j, XMLNS_MAM, "jid"), n++) {
        char *text = xml_text(j);
        char *norm = jid_normalize(text);
        if (norm)
            dict_set(d, norm, (void *)1);
        free(norm);
        free(text);
    }
}

/* prefs from a <prefs/> element (stored or submitted); NULL if its default is unknown. */
static prefs *prefs_from_xml(const xml_node *el)
{
    const char *d = xml_get_attr(el, "default");
    prefs *pr = xcalloc(1, sizeof *pr);
    pr->dflt = PREF_ALWAYS;
    int known = 0;
    for (int i = 0; i < 3; i++)
        if (str_eq(d, default_names[i])) {
            pr->dflt = (pref_default)i;
            known = 1;
        }
    pr->always = dict_new();
    pr->never = dict_new();
    if (!known) {
        prefs_free(pr);
        return NULL;
    }
    add_jids(pr->always, xml_child(el, XMLNS_MAM, "always"));
    add_jids(pr->never, xml_child(el, XMLNS_MAM, "never"));
    return pr;
}

static int list_jid(void *ud, const char *key, void *value)
{
    xml_node *list = ud;
    xml_node *j = xml_add_child(list, NULL, "jid");
    xml_add_text(j, key, strlen(key));
    return 0;
}

static xml_node *prefs_to_xml(const prefs *pr)
{
    xml_node *el = xml_new(XMLNS_MAM, "prefs");
    xml_set_attr(el, "default", default_names[pr->dflt]);
    dict_each(pr->always, list_jid, xml_add_child(el, NULL, "always"));
    dict_each(pr->never, list_jid, xml_add_child(el, NULL, "never"));
    return el;
}

static struct mam_cache *cache(server *srv)
{
    if (!srv->mam) {
        srv->mam = xcalloc(1, sizeof *srv->mam);
        srv->mam->prefs = dict_new();
    }
    return srv->mam;
}

/* The user's preferences (cached; defaults when none are stored). */
static prefs *prefs_of(server *srv, const char *user)
{
    struct mam_cache *c = cache(srv);
    prefs *pr = dict_get(c->prefs, user);
    if (pr)
        return pr;
    char *text = NULL;
    store_status st = store_kv_get(srv->store, PREFS_COLLECTION, user, "prefs", &text);
    if (st == STORE_OK) {
        xml_node *el = xml_parse_document(text, strlen(text), XMLNS_MAM, 1 << 20);
        pr = el ? prefs_from_xml(el) : NULL;
        xml_free(el);
        if (!pr)
            log_error("archive preferences of %s are unreadable; using the defaults", user);
    } else if (st == STORE_ERROR) {
        log_error("archive preferences of %s: %s", user, store_last_error(srv->store));
    }
    free(text);
    if (!pr) {
        xml_node *dflt = xml_new(XMLNS_MAM, "prefs");
        xml_set_attr(dflt, "default", "always");
        pr = prefs_from_xml(dflt);
        xml_free(dflt);
    }
    dict_set(c->prefs, user, pr);
    return pr;
}

static int in_roster(server *srv, const char *user, const char *contact)
{
    roster_item item;
    memset(&item, 0, sizeof item);
    int found = store_roster_get_item(srv->store, user, contact, &item) == STORE_OK;
    roster_item_clear(&item);
    return found;
}

static int wants(server *srv, const char *owner, const char *with)
{
    prefs *pr = prefs_of(srv, owner);
    if (dict_get(pr->never, with))
        return 0;
    if (dict_get(pr->always, with))
        return 1;
    if (pr->dflt == PREF_ROSTER)
        return in_roster(srv, owner, with);
    return pr->dflt == PREF_ALWAYS;
}

/* -------------------------------------------------------------- archiving ---- */

static int archivable(const xml_node *stanza)
{
    const char *type = xml_get_attr(stanza, "type");
    if (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0)
        return 0;
    if (xml_child(stanza, XMLNS_HINTS, "no-store") ||
        xml_child(stanza, XMLNS_HINTS, "no-permanent-store"))
        return 0;
    return compliance_wants(stanza);
}

static int is_local_user(server *srv, const jid *j)
{
    return j->local && router_is_local_domain(srv, j->domain);
}

void mam_archive(server *srv, xml_node *stanza, const char *recipient_bare)
{
    /* XEP-0359 section 3: a stanza-id claiming to be ours is the sender's forgery. */
    xml_node *c = xml_child(stanza, XMLNS_SID, "stanza-id"), *next;
    for (; c; c = next) {
        next = xml_next(c, XMLNS_SID, "stanza-id");
        if (str_eq(xml_get_attr(c, "by"), recipient_bare)) {
            xml_detach(c);
            xml_free(c);
        }
    }
    if (!srv->cfg.archive || !archivable(stanza))
        return;
    jid from;
    if (jid_parse(xml_get_attr(stanza, "from") ? xml_get_attr(stanza, "from") : "", &from) < 0)
        return;
    char *sender = jid_bare(&from);
    int sender_local = is_local_user(srv, &from);
    jid_clear(&from);

    char rid[25], sid[25];
    random_token(rid, sizeof rid - 1);
    random_token(sid, sizeof sid - 1);
    int to_recipient = wants(srv, recipient_bare, sender);
    /* A note to self is archived once. */
    int to_sender = sender_local && strcmp(sender, recipient_bare) != 0 &&
                    wants(srv, sender, recipient_bare);
    if (to_recipient) {
        xml_node *tag = xml_add_child(stanza, XMLNS_SID, "stanza-id");
        xml_set_attr(tag, "id", rid);
        xml_set_attr(tag, "by", recipient_bare);
    }
    if (to_recipient || to_sender) {
        char *text = xml_to_string(stanza, XMLNS_CLIENT);
        int64_t now = time_now_us();
        mam_row rows[2];
        size_t n = 0;
        if (to_recipient)
            rows[n++] = (mam_row){rid, recipient_bare, sender, now, text};
        if (to_sender)
            rows[n++] = (mam_row){sid, sender, recipient_bare, now, text};
        if (store_mam_append(srv->store, rows, n) != STORE_OK)
            log_error("archiving a message from %s to %s failed: %s", sender, recipient_bare,
                      store_last_error(srv->store));
        free(text);
    }
    free(sender);
}

/* A room keeps its own archive (XEP-0313 section 5 with XEP-0045): one row per message
 * as the room broadcast it, under the room's stanza-id, whoever was there to read it.
 * Users' preferences do not apply: the room, not a user, owns it. */
void mam_archive_room(server *srv, const char *room, const char *sender_bare, const char *id,
                      const xml_node *stanza)
{
    if (!srv->cfg.archive || !xml_child(stanza, XMLNS_CLIENT, "body") ||
        xml_child(stanza, XMLNS_HINTS, "no-store") ||
        xml_child(stanza, XMLNS_HINTS, "no-permanent-store"))
        return;
    char *text = xml_to_string(stanza, XMLNS_CLIENT);
    mam_row row = {id, room, sender_bare, time_now_us(), text};
    if (store_mam_append(srv->store, &row, 1) != STORE_OK)
        log_error("archiving a message in %s failed: %s", room, store_last_error(srv->store));
    free(text);
}

void mam_forget(server *srv, const char *owner)
{
    int64_t deleted = 0;
    if (store_mam_purge(srv->store, owner, INT64_MAX, &deleted) != STORE_OK)
        log_error("deleting the archive of %s failed: %s", owner, store_last_error(srv->store));
    else if (deleted)
        log_info("archive of %s deleted (%lld messages)", owner, (long long)deleted);
}

/* ---------------------------------------------------------------- queries ---- */

static void reply(const mam_target *t, xml_node *r)
{
    t->send(t->ud, r);
}

static void reply_error(const mam_target *t, const xml_node *iq, const char *etype,
                        const char *cond, const char *text)
{
    xml_node *err = stanza_error(iq, etype, cond, text);
    if (err)
        reply(t, err);
}

/* The value of a submitted form field, freshly allocated, or NULL. */
static char *field_value(const xml_node *form, const char *var)
{
    for (xml_node *f = form ? xml_child(form, XMLNS_DATA, "field") : NULL; f;
         f = xml_next(f, XMLNS_DATA, "field"))
        if (str_eq(xml_get_attr(f, "var"), var))
            return xml_child_text(f, XMLNS_DATA, "value");
    return NULL;
}

typedef struct results {
    server *srv;
    const mam_target *t;
    const char *queryid;
    char *first, *last;
    int count;
} results;

static void send_result(void *ud, const mam_row *row)
{
    results *r = ud;
    xml_node *stanza = xml_parse_document(row->stanza, strlen(row->stanza), XMLNS_CLIENT,
                                          (size_t)r->srv->cfg.max_stanza_size * 2);
    if (!stanza) {
        log_error("archive of %s: message %s cannot be parsed; skipped", r->t->owner, row->id);
        return;
    }
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "to", r->t->to);
    xml_set_attr(m, "from", r->t->owner);
    xml_node *res = xml_add_child(m, XMLNS_MAM, "result");
    if (r->queryid)
        xml_set_attr(res, "queryid", r->queryid);
    xml_set_attr(res, "id", row->id);
    xml_node *fwd = xml_add_child(res, XMLNS_FORWARD, "forwarded");
    xml_node *delay = xml_add_child(fwd, XMLNS_DELAY, "delay");
    char stamp[TIME_UTC_LEN];
    time_format_utc(row->ts_us, stamp);
    xml_set_attr(delay, "stamp", stamp);
    xml_append(fwd, stanza);
    reply(r->t, m);
    if (!r->first)
        r->first = xstrdup(row->id);
    free(r->last);
    r->last = xstrdup(row->id);
    r->count++;
}

static void handle_query(server *srv, const mam_target *t, const xml_node *iq,
                         const xml_node *query)
{
    const xml_node *form = xml_child(query, XMLNS_DATA, "x");
    char *with = field_value(form, "with");
    char *start = field_value(form, "start");
    char *end = field_value(form, "end");
    char *after_id = field_value(form, "after-id");
    char *before_id = field_value(form, "before-id");
    const xml_node *set = xml_child(query, XMLNS_RSM, "set");
    char *max = set ? xml_child_text(set, XMLNS_RSM, "max") : NULL;
    char *after = set ? xml_child_text(set, XMLNS_RSM, "after") : NULL;
    char *before = set ? xml_child_text(set, XMLNS_RSM, "before") : NULL;

    mam_filter f = {.owner = t->owner, .max = DEFAULT_PAGE};
    const char *bad = NULL, *refused = NULL;
    char *with_bare = NULL;
    if (with && *with) {
        jid j;
        if (t->with_refused) {
            refused = t->with_refused;
        } else if (jid_parse(with, &j) < 0) {
            bad = "'with' is not a valid JID";
        } else {
            with_bare = jid_bare(&j);
            jid_clear(&j);
            f.with = with_bare;
        }
    }
    if (!bad && start && *start && time_parse_iso8601(start, &f.start_us) < 0)
        bad = "'start' is not an XEP-0082 date-time";
    if (!bad && end && *end && time_parse_iso8601(end, &f.end_us) < 0)
        bad = "'end' is not an XEP-0082 date-time";
    if (!bad && max) {
        char *endp;
        long v = strtol(max, &endp, 10);
        if (*max == '\0' || *endp || v < 0)
            bad = "RSM <max/> must be a non-negative integer";
        else
            f.max = v > MAX_PAGE ? MAX_PAGE : (int)v;
    }
    f.after_id = after ? after : after_id;
    if (before) {
        f.last = 1;
        f.before_id = *before ? before : NULL;
    } else if (before_id) {
        f.last = 1;
        f.before_id = before_id;
    }
    if (refused) {
        reply_error(t, iq, "cancel", "not-allowed", refused);
    } else if (bad) {
        reply_error(t, iq, "modify", "bad-request", bad);
    } else {
        results r = {srv, t, xml_get_attr(query, "queryid"), NULL, NULL, 0};
        int complete = 1;
        store_status st = f.max > 0 ? store_mam_query(srv->store, &f, send_result, &r, &complete)
                                    : STORE_OK;
        if (st == STORE_NOT_FOUND) {
            reply_error(t, iq, "cancel", "item-not-found", "no archived message has that id");
        } else if (st != STORE_OK) {
            log_error("archive query of %s: %s", t->owner, store_last_error(srv->store));
            reply_error(t, iq, "wait", "internal-server-error",
                        "the archive cannot be read right now");
        } else {
            xml_node *res = stanza_iq_result(iq);
            xml_node *fin = xml_add_child(res, XMLNS_MAM, "fin");
            if (complete)
                xml_set_attr(fin, "complete", "true");
            xml_node *rs = xml_add_child(fin, XMLNS_RSM, "set");
            if (r.first) {
                xml_add_text(xml_add_child(rs, NULL, "first"), r.first, strlen(r.first));
                xml_add_text(xml_add_child(rs, NULL, "last"), r.last, strlen(r.last));
            } else {
                xml_add_text(xml_add_child(rs, NULL, "count"), "0", 1);
            }
            reply(t, res);
        }
        free(r.first);
        free(r.last);
    }
    free(with_bare);
    free(with);
    free(start);
    free(end);
    free(after_id);
    free(before_id);
    free(max);
    free(after);
    free(before);
}

static void add_field(xml_node *form, const char *var, const char *type, const char *value)
{
    xml_node *f = xml_add_child(form, NULL, "field");
    xml_set_attr(f, "var", var);
    xml_set_attr(f, "type", type);
    if (value)
        xml_add_text(xml_add_child(f, NULL, "value"), value, strlen(value));
}

static void handle_fields(const mam_target *t, const xml_node *iq)
{
    xml_node *res = stanza_iq_result(iq);
    xml_node *q = xml_add_child(res, XMLNS_MAM, "query");
    xml_node *form = xml_add_child(q, XMLNS_DATA, "x");
    xml_set_attr(form, "type", "form");
    add_field(form, "FORM_TYPE", "hidden", XMLNS_MAM);
    add_field(form, "with", "jid-single", NULL);
    add_field(form, "start", "text-single", NULL);
    add_field(form, "end", "text-single", NULL);
    add_field(form, "after-id", "text-single", NULL);
    add_field(form, "before-id", "text-single", NULL);
    reply(t, res);
}

static void handle_prefs(server *srv, const mam_target *t, const xml_node *iq,
                         const xml_node *el)
{
    if (str_eq(xml_get_attr(iq, "type"), "set")) {
        prefs *pr = prefs_from_xml(el);
        if (!pr) {
            reply_error(t, iq, "modify", "bad-request", "default must be always, never or roster");
            return;
        }
        xml_node *stored = prefs_to_xml(pr);
        char *text = xml_to_string(stored, XMLNS_MAM);
        xml_free(stored);
        store_status st = store_kv_put(srv->store, PREFS_COLLECTION, t->owner, "prefs", text);
        free(text);
        if (st != STORE_OK) {
            prefs_free(pr);
            log_error("archive preferences of %s: %s", t->owner, store_last_error(srv->store));
            reply_error(t, iq, "wait", "internal-server-error",
                        "the preferences could not be stored");
            return;
        }
        prefs_free(dict_set(cache(srv)->prefs, t->owner, pr));
    }
    xml_node *res = stanza_iq_result(iq);
    xml_append(res, prefs_to_xml(prefs_of(srv, t->owner)));
    reply(t, res);
}

int mam_is_request(const xml_node *p)
{
    return p && str_eq(p->ns, XMLNS_MAM) && (str_eq(p->name, "query") || str_eq(p->name, "prefs"));
}

void mam_answer_query(server *srv, const mam_target *t, const xml_node *iq)
{
    const xml_node *p = xml_first_element(iq);
    if (!srv->cfg.archive)
        reply_error(t, iq, "cancel", "service-unavailable", "the archive is disabled");
    else if (str_eq(xml_get_attr(iq, "type"), "set"))
        handle_query(srv, t, iq, p);
    else
        handle_fields(t, iq);
}

/* A user's own archive: answers go straight to the asking session. */
static void send_to_session(void *ud, xml_node *stanza)
{
    c2s_send(ud, stanza);
    xml_free(stanza);
}

void mam_handle_iq(server *srv, c2s *origin, xml_node *iq)
{
    const xml_node *p = xml_first_element(iq);
    mam_target t = {.owner = origin->user, .to = origin->full, .send = send_to_session,
                    .ud = origin};
    if (srv->cfg.archive && str_eq(p->name, "prefs"))
        handle_prefs(srv, &t, iq, p);
    else
        mam_answer_query(srv, &t, iq);
    xml_free(iq);
}

void mam_expire(server *srv)
{
    if (!srv->cfg.archive || srv->cfg.archive_expires_after <= 0)
        return;
    int64_t before = time_now_us() - (int64_t)srv->cfg.archive_expires_after * 86400 * 1000000;
    int64_t deleted = 0;
    if (store_mam_purge(srv->store, NULL, before, &deleted) != STORE_OK)
        log_error("expiring the message archive failed: %s", store_last_error(srv->store));
    else if (deleted)
        log_info("message archive: %lld messages older than %d days expired",
                 (long long)deleted, srv->cfg.archive_expires_after);
}

void mam_free(server *srv)
{
    if (!srv->mam)
        return;
    dict_free(srv->mam->prefs, prefs_free);
    free(srv->mam);
    srv->mam = NULL;
}
