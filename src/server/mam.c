/* mam.c - XEP-0313 message archive management (see mam.h).
 *
 * Archived: chat messages, and normal messages with content (a body, a subject or an
 * end-to-end encrypted payload, the same rule as the compliance archive), unless they
 * carry a no-store or no-permanent-store hint (XEP-0334). Encrypted messages are kept as
 * they are: the client's keys decrypt them. Preferences (XEP-0313 section 7) are cached per
 * user and stored as a document (store_kv "mam-prefs").
 *
 * Group commit: rows are not written one transaction each. They wait in memory (the
 * batch) and mam_flush commits them in one transaction before the event loop sleeps,
 * ahead of conn_flush_all: nothing a message caused (its delivery, an XEP-0198 <a/>
 * counting it) leaves the server before its rows are committed, so an acknowledged
 * message is in the archive as it was when every message had its own transaction. A
 * query commits the batch before reading, a purge drops the batch's rows it covers, and a
 * failed commit keeps the rows and retries (docs/protocols.md, message archive). */
#include "mam.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "compliance.h"
#include "router.h"
#include "stanza.h"
#include "store.h"

#include <inttypes.h>
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
/* A batch this long is committed at once, before the loop sleeps: bounds the memory a
 * busy iteration holds and the length of one transaction. */
#define BATCH_COMMIT_ROWS 256
/* While the store fails, rows wait for it up to these bounds; beyond them the oldest
 * tenth is dropped (with an error in the log) so a dead store cannot exhaust memory. */
#define MAX_PENDING_ROWS 100000
#define MAX_PENDING_BYTES (64u << 20)
/* A failed commit is retried at most this often (ms): each attempt may wait the store's
 * busy timeout with the event loop stopped. */
#define RETRY_MS 1000

typedef enum { PREF_ALWAYS, PREF_NEVER, PREF_ROSTER } pref_default;

typedef struct prefs {
    pref_default dflt;
    dict *always; /* bare JID -> non-NULL */
    dict *never;
} prefs;

/* Rows archived in this iteration (or kept after a failed commit), oldest first.
 * rows[i] points into mem[i]: one allocation per row. */
typedef struct batch {
    mam_row *rows;
    char **mem;
    size_t n, cap;
    size_t bytes;
    int64_t retry_after_ms; /* monotonic; 0 unless the last commit failed */
} batch;

struct mam_cache {
    dict *prefs; /* user -> prefs */
    batch pending;
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

/* ------------------------------------------------------------------ batch ---- */

static size_t row_bytes(const mam_row *r)
{
    return strlen(r->id) + strlen(r->owner) + strlen(r->with) + strlen(r->stanza) + 4;
}

/* Drop rows [0, k) (the oldest) from the batch. */
static void batch_drop_oldest(batch *b, size_t k)
{
    if (k == 0)
        return;
    for (size_t i = 0; i < k; i++) {
        b->bytes -= row_bytes(&b->rows[i]);
        free(b->mem[i]);
    }
    memmove(b->rows, b->rows + k, (b->n - k) * sizeof *b->rows);
    memmove(b->mem, b->mem + k, (b->n - k) * sizeof *b->mem);
    b->n -= k;
}

static void batch_clear(batch *b)
{
    batch_drop_oldest(b, b->n);
    b->retry_after_ms = 0;
    /* Arrays grown while the store failed go back: the usual batch is small. */
    if (b->cap > 4 * BATCH_COMMIT_ROWS) {
        free(b->rows);
        free(b->mem);
        b->rows = NULL;
        b->mem = NULL;
        b->cap = 0;
    }
}

/* Copy row into the batch (its strings too). */
static void batch_add(batch *b, const mam_row *row)
{
    if (b->n >= MAX_PENDING_ROWS || b->bytes >= MAX_PENDING_BYTES) {
        size_t k = b->n / 10 ? b->n / 10 : b->n;
        log_error("archive: %zu entries (%zu bytes) wait for the store; the oldest %zu "
                  "(from %s's archive on) are dropped",
                  b->n, b->bytes, k, b->rows[0].owner);
        batch_drop_oldest(b, k);
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->rows = xrealloc(b->rows, b->cap * sizeof *b->rows);
        b->mem = xrealloc(b->mem, b->cap * sizeof *b->mem);
    }
    size_t lid = strlen(row->id) + 1, lowner = strlen(row->owner) + 1,
           lwith = strlen(row->with) + 1, lstanza = strlen(row->stanza) + 1;
    char *m = xmalloc(lid + lowner + lwith + lstanza);
    mam_row *r = &b->rows[b->n];
    r->id = memcpy(m, row->id, lid);
    r->owner = memcpy(m + lid, row->owner, lowner);
    r->with = memcpy(m + lid + lowner, row->with, lwith);
    r->stanza = memcpy(m + lid + lowner + lwith, row->stanza, lstanza);
    r->ts_us = row->ts_us;
    b->mem[b->n++] = m;
    b->bytes += lid + lowner + lwith + lstanza;
}

/* Commit the batch in one transaction. force: try even while a failed commit waits for
 * its retry time (a query that must see the rows). Returns 0 when nothing is left. */
static int batch_commit(server *srv, batch *b, int force)
{
    if (b->n == 0)
        return 0;
    if (!force && b->retry_after_ms && time_mono_ms() < b->retry_after_ms)
        return -1;
    if (store_mam_append(srv->store, b->rows, b->n) != STORE_OK) {
        log_error("archive: committing %zu entries (the first in %s's archive, id %s) "
                  "failed, kept for a retry in %d ms: %s",
                  b->n, b->rows[0].owner, b->rows[0].id, RETRY_MS,
                  store_last_error(srv->store));
        b->retry_after_ms = time_mono_ms() + RETRY_MS;
        return -1;
    }
    if (b->retry_after_ms)
        log_info("archive: %zu entries kept after a failed commit are now stored", b->n);
    batch_clear(b);
    return 0;
}

/* Queue rows for the commit before the loop sleeps (at once when the batch is long). */
static void archive_rows(server *srv, const mam_row *rows, size_t n)
{
    batch *b = &cache(srv)->pending;
    for (size_t i = 0; i < n; i++)
        batch_add(b, &rows[i]);
    if (b->n >= BATCH_COMMIT_ROWS)
        batch_commit(srv, b, 0);
}

/* Is a row of owner still waiting in the batch? */
static int batch_holds(const batch *b, const char *owner)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->rows[i].owner, owner) == 0)
            return 1;
    return 0;
}

/* A purge covers the rows still in the batch too: drop those of owner (everyone's when
 * NULL) older than before_us, so that a later commit does not bring them back. */
static void batch_purge(batch *b, const char *owner, int64_t before_us)
{
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++) {
        mam_row *r = &b->rows[i];
        if ((!owner || strcmp(r->owner, owner) == 0) && r->ts_us < before_us) {
            b->bytes -= row_bytes(r);
            free(b->mem[i]);
            continue;
        }
        b->rows[kept] = *r;
        b->mem[kept++] = b->mem[i];
    }
    b->n = kept;
    if (kept == 0)
        b->retry_after_ms = 0;
}

void mam_flush(server *srv)
{
    if (srv->mam && srv->mam->pending.n)
        batch_commit(srv, &srv->mam->pending, 0);
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
    int to_recipient = wants(srv, recipient_bare, sender);
    /* A note to self is archived once. */
    int to_sender = sender_local && strcmp(sender, recipient_bare) != 0 &&
                    wants(srv, sender, recipient_bare);
    /* Ids only for the archives that keep it (each costs a DRBG call). */
    if (to_recipient)
        random_token(rid, sizeof rid - 1);
    if (to_sender)
        random_token(sid, sizeof sid - 1);
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
        archive_rows(srv, rows, n);
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
    archive_rows(srv, &row, 1);
    free(text);
}

void mam_forget(server *srv, const char *owner)
{
    batch_purge(&cache(srv)->pending, owner, INT64_MAX);
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
        /* The answer includes what was archived a moment ago: commit the batch first. */
        batch *b = &cache(srv)->pending;
        store_status st = STORE_OK;
        if (batch_commit(srv, b, 1) < 0 && batch_holds(b, t->owner))
            st = STORE_ERROR; /* the store failed; its error is set */
        else if (f.max > 0)
            st = store_mam_query(srv->store, &f, send_result, &r, &complete);
        /* XEP-0059: the size of the whole result set, whatever the page (a <max>0</max>
         * query asks for nothing else); complete only when nothing lies beyond. */
        int64_t total = 0;
        if (st == STORE_OK)
            st = store_mam_count(srv->store, &f, &total);
        if (f.max == 0)
            complete = total == 0;
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
            }
            char num[24];
            snprintf(num, sizeof num, "%" PRId64, total);
            xml_add_text(xml_add_child(rs, NULL, "count"), num, strlen(num));
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
    batch_purge(&cache(srv)->pending, NULL, before);
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
    batch *b = &srv->mam->pending;
    if (batch_commit(srv, b, 1) < 0)
        log_error("archive: %zu entries could not be stored at shutdown and are lost",
                  b->n);
    batch_clear(b);
    free(b->rows);
    free(b->mem);
    dict_free(srv->mam->prefs, prefs_free);
    free(srv->mam);
    srv->mam = NULL;
}
