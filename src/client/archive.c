/* archive.c - XEP-0313 queries from the client: the account's archive or a room's, paged
 * with XEP-0059, results checked (our query, from the archive we asked) and delivered
 * once: every archive id delivered, and every message id we sent, is remembered, so a
 * message seen live, as a carbon or in an earlier fetch is not delivered again. Live
 * messages of an archive wait while a fetch of it runs, so that history comes first. */
#include "../common/util.h"
#include "archive_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEEN_MAX 4096    /* ids remembered per archive */
#define HELD_MAX 2000    /* live messages held while fetching; then they pass */
#define PAGE_MAX 100     /* results asked per page when paging forward */
#define LAST_MAX 250     /* the server's largest page: "the last N" is one page */
#define PAGES_MAX 100    /* pages of one forward fetch, whatever the server says */

/* ------------------------------------------------------------------ state */

static void seen_free(void *v)
{
    seen_set *s = v;
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->ring[i]);
    free(s->ring);
    dict_free(s->ids, NULL);
    free(s);
}

static seen_set *seen_new(void)
{
    seen_set *s = xcalloc(1, sizeof *s);
    s->ids = dict_new();
    s->ring = xcalloc(SEEN_MAX, sizeof *s->ring);
    return s;
}

/* Add id; 1 if it was there already. The oldest id goes when the set is full. */
static int seen_add(seen_set *s, const char *id)
{
    if (dict_get(s->ids, id))
        return 1;
    if (s->n == SEEN_MAX) {
        dict_del(s->ids, s->ring[s->pos]);
        free(s->ring[s->pos]);
    } else {
        s->n++;
    }
    s->ring[s->pos] = xstrdup(id);
    dict_set(s->ids, id, (void *)1);
    s->pos = (s->pos + 1) % SEEN_MAX;
    return 0;
}

archive_state *archive_of(parley *p)
{
    ext_state *x = ext_of(p);
    if (!x->archive) {
        archive_state *a = xcalloc(1, sizeof *a);
        a->seen = dict_new();
        a->last = dict_new();
        a->sent = seen_new();
        x->archive = a;
    }
    return x->archive;
}

/* Archives are keyed by the room's JID; ours by "". */
static const char *key_of(const char *archive)
{
    return archive ? archive : "";
}

void archive_free(parley *p)
{
    archive_state *a = p->ext ? p->ext->archive : NULL;
    if (!a)
        return;
    /* queries are freed by their IQ callbacks, which have all run by now */
    while (a->held) {
        held_msg *h = a->held;
        a->held = h->next;
        xml_free(h->msg);
        free(h->archive);
        free(h);
    }
    dict_free(a->seen, seen_free);
    dict_free(a->last, free);
    seen_free(a->sent);
    seen_free(a->origins);
    archive_sync_free(a);
    free(a);
    p->ext->archive = NULL;
}

int archive_seen(parley *p, const char *archive, const char *id)
{
    if (!id)
        return 0;
    archive_state *a = archive_of(p);
    seen_set *s = dict_get(a->seen, key_of(archive));
    if (!s) {
        s = seen_new();
        dict_set(a->seen, key_of(archive), s);
    }
    return seen_add(s, id);
}

int archive_seen_origin(parley *p, const xml_node *msg)
{
    const xml_node *o = xml_child(msg, XMLNS_SID, "origin-id");
    const char *oid = o ? xml_get_attr(o, "id") : NULL;
    if (!oid || !*oid || strlen(oid) > 256 || str_eq(xml_get_attr(msg, "type"), "error"))
        return 0;
    const char *from = xml_get_attr(msg, "from");
    char *bare = from ? jid_normalize_bare(from) : xstrdup(p->account_bare);
    if (!bare)
        return 0;
    char *key = xasprintf("%s\n%s", bare, oid);
    archive_state *a = archive_of(p);
    if (!a->origins)
        a->origins = seen_new();
    int seen = seen_add(a->origins, key);
    free(key);
    free(bare);
    return seen;
}

void archive_note_sent(parley *p, const char *id)
{
    seen_add(archive_of(p)->sent, id);
}

parley_error parley_archive_set_last(parley *p, const char *archive, const char *id)
{
    if (!p || !id || !*id || strlen(id) > 256)
        return PARLEY_ERR_INVALID;
    char *room = archive ? jid_normalize_bare(archive) : NULL;
    if (archive && !room)
        return PARLEY_ERR_INVALID;
    free(dict_set(archive_of(p)->last, key_of(room), xstrdup(id)));
    free(room);
    return PARLEY_OK;
}

const char *parley_archive_last(const parley *p, const char *archive)
{
    if (!p || !p->ext || !p->ext->archive)
        return NULL;
    char *room = archive ? jid_normalize_bare(archive) : NULL;
    const char *id = archive && !room ? NULL : dict_get(p->ext->archive->last, key_of(room));
    free(room);
    return id;
}

/* ------------------------------------------------------------------ holding */

static int fetching(const archive_state *a, const char *archive)
{
    for (const query *q = a->queries; q; q = q->next)
        if (str_eq(key_of(q->archive), key_of(archive)))
            return 1;
    return 0;
}

int archive_hold(parley *p, const char *archive, const xml_node *msg)
{
    archive_state *a = p->ext ? p->ext->archive : NULL;
    if (!a || a->draining || a->nheld >= HELD_MAX || !fetching(a, archive))
        return 0;
    held_msg *h = xcalloc(1, sizeof *h);
    h->archive = archive ? xstrdup(archive) : NULL;
    h->msg = xml_copy(msg);
    held_msg **pp = &a->held;
    while (*pp)
        pp = &(*pp)->next;
    *pp = h;
    a->nheld++;
    return 1;
}

/* The fetches of archive are over (or the session is): its held messages, in order. */
void archive_release(parley *p, const char *archive, int all)
{
    archive_state *a = p->ext ? p->ext->archive : NULL;
    while (a) {
        held_msg **pp = &a->held;
        while (*pp && !all && !str_eq(key_of((*pp)->archive), key_of(archive)))
            pp = &(*pp)->next;
        held_msg *h = *pp;
        if (!h)
            return;
        *pp = h->next;
        a->nheld--;
        if (!client_ext_dispatch(p, h->msg))
            im_message(p, h->msg);
        xml_free(h->msg);
        free(h->archive);
        free(h);
        a = p->ext ? p->ext->archive : NULL; /* a callback may not free it, but be sure */
    }
}

/* ------------------------------------------------------------------ queries */

static void query_free(query *q)
{
    free(q->qid);
    free(q->archive);
    free(q->with);
    free(q->last_id);
    free(q);
}

static void on_page(parley *p, const parley_stanza *res, parley_error err, void *ud);

static void send_page(parley *p, query *q, const char *after)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    if (q->archive)
        xml_set_attr(iq, "to", q->archive);
    xml_node *qe = xml_add_child(iq, XMLNS_MAM, "query");
    xml_set_attr(qe, "queryid", q->qid);
    xml_node *form = xml_add_child(qe, XMLNS_XDATA, "x");
    xml_set_attr(form, "type", "submit");
    xml_node *f = xml_add_child(form, NULL, "field");
    xml_set_attr(f, "var", "FORM_TYPE");
    xml_set_attr(f, "type", "hidden");
    xml_add_text(xml_add_child(f, NULL, "value"), XMLNS_MAM, strlen(XMLNS_MAM));
    if (q->with) {
        f = xml_add_child(form, NULL, "field");
        xml_set_attr(f, "var", "with");
        xml_add_text(xml_add_child(f, NULL, "value"), q->with, strlen(q->with));
    }
    xml_node *set = xml_add_child(qe, XMLNS_RSM, "set");
    char num[16];
    int left = q->max - q->got;
    snprintf(num, sizeof num, "%d", q->after_mode ? (left < PAGE_MAX ? left : PAGE_MAX) : left);
    xml_add_text(xml_add_child(set, NULL, "max"), num, strlen(num));
    if (!q->after_mode)
        xml_add_child(set, NULL, "before"); /* empty: the last page */
    else if (after)
        xml_add_text(xml_add_child(set, NULL, "after"), after, strlen(after));
    ext_send_iq(p, iq, on_page, q);
}

parley_error archive_start(parley *p, const char *archive, const char *with,
                           const char *after_id, int max, query_done_fn done, void *done_ud)
{
    if (!ext_online(p))
        return PARLEY_ERR_STATE;
    archive_state *a = archive_of(p);
    query *q = xcalloc(1, sizeof *q);
    q->qid = session_new_id(p);
    q->archive = archive ? xstrdup(archive) : NULL;
    q->with = with ? xstrdup(with) : NULL;
    q->after_mode = after_id != NULL;
    q->max = q->after_mode ? max : (max < LAST_MAX ? max : LAST_MAX);
    q->done = done;
    q->done_ud = done_ud;
    q->next = a->queries;
    a->queries = q;
    send_page(p, q, after_id);
    return PARLEY_OK;
}

/* The fetch is over: unlink, remember the newest id, tell whoever started it, and let
 * the held messages go once no fetch of the archive runs. */
static void finish(parley *p, query *q, parley_error err, const char *text)
{
    archive_state *a = archive_of(p);
    for (query **pp = &a->queries; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    /* what was delivered up to: the pages of a forward fetch, or the last page of the
     * whole archive (not of one conversation, which may end earlier) */
    if (q->last_id && !q->with)
        parley_archive_set_last(p, q->archive, q->last_id);
    if (q->done) {
        q->done(p, q, err, text, q->done_ud);
    } else {
        parley_event ev = {0};
        ev.type = PARLEY_EV_ARCHIVE_DONE;
        ev.room = q->archive;
        ev.count = q->delivered;
        ev.error = err;
        ev.error_text = text;
        client_emit(p, &ev);
    }
    char *archive = q->archive ? xstrdup(q->archive) : NULL;
    query_free(q);
    if (!fetching(archive_of(p), archive))
        archive_release(p, archive, 0);
    free(archive);
}

static void on_page(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    query *q = ud;
    const xml_node *iq = (const xml_node *)res;
    if (err != PARLEY_OK) {
        char *text = iq ? im_error_text(iq) : xstrdup(parley_strerror(err));
        /* an unknown after-id: the caller may start over without it */
        if (iq && strncmp(text, "item-not-found", 14) == 0)
            q->unknown_id = 1;
        finish(p, q, err, text);
        free(text);
        return;
    }
    const xml_node *fin = xml_child(iq, XMLNS_MAM, "fin");
    const xml_node *set = fin ? xml_child(fin, XMLNS_RSM, "set") : NULL;
    char *last = set ? xml_child_text(set, XMLNS_RSM, "last") : NULL;
    q->complete = fin && str_eq(xml_get_attr(fin, "complete"), "true");
    if (last && *last && strlen(last) <= 256) {
        free(q->last_id);
        q->last_id = last;
        last = NULL;
    }
    free(last);
    if (q->after_mode && !q->complete && q->last_id && q->got < q->max && ext_online(p) &&
        ++q->pages < PAGES_MAX) {
        send_page(p, q, q->last_id);
        return;
    }
    finish(p, q, PARLEY_OK, NULL);
}

parley_error parley_archive_fetch(parley *p, const char *archive, const char *with,
                                  const char *after_id, int max)
{
    if (!p || max <= 0 || (after_id && (!*after_id || strlen(after_id) > 256)))
        return PARLEY_ERR_INVALID;
    char *room = archive ? jid_normalize_bare(archive) : NULL;
    char *w = with ? jid_normalize_bare(with) : NULL;
    parley_error e = PARLEY_ERR_INVALID;
    if ((!archive || room) && (!with || w))
        e = archive_start(p, room, w, after_id, max, NULL, NULL);
    free(room);
    free(w);
    return e;
}

/* ------------------------------------------------------------------ results */

static query *query_of(archive_state *a, const char *qid)
{
    for (query *q = a->queries; qid && q; q = q->next)
        if (strcmp(q->qid, qid) == 0)
            return q;
    return NULL;
}

int archive_result(parley *p, const xml_node *msg)
{
    const xml_node *r = xml_child(msg, XMLNS_MAM, "result");
    if (!r)
        return 0;
    archive_state *a = p->ext ? p->ext->archive : NULL;
    query *q = a ? query_of(a, xml_get_attr(r, "queryid")) : NULL;
    const char *from = xml_get_attr(msg, "from");
    char *fb = from ? jid_normalize(from) : NULL;
    /* only answers to our queries, from the archive asked */
    int ok = q && (q->archive ? str_eq(fb, q->archive) : (!from || str_eq(fb, p->account_bare)));
    free(fb);
    const xml_node *fwd = xml_child(r, XMLNS_FORWARD, "forwarded");
    const xml_node *inner = fwd ? xml_child(fwd, XMLNS_CLIENT, "message") : NULL;
    const char *id = xml_get_attr(r, "id");
    if (!ok || !inner || !id || !*id) {
        client_log(p, 2, "ignoring an archive result that answers none of our queries");
        return 1;
    }
    q->got++;
    long long ts = fwd ? ext_delay_ms(fwd) : 0;
    if (q->archive) {
        q->delivered += rooms_archived(p, q->archive, inner, id, ts);
        return 1;
    }
    const char *type = xml_get_attr(inner, "type");
    if (str_eq(type, "groupchat") || str_eq(type, "error") || !ext_has_content(inner))
        return 1;
    int outgoing = ext_is_own(p, xml_get_attr(inner, "from"));
    const char *mid = xml_get_attr(inner, "id");
    /* ours, sent by this handle (shown when it was sent): known by its message id */
    if (outgoing && mid && dict_get(a->sent->ids, mid)) {
        archive_seen(p, NULL, id);
        return 1;
    }
    if (archive_seen(p, NULL, id) || archive_seen_origin(p, inner))
        return 1; /* delivered already: by its archive id, or sent again after a failover */
    fwd_ctx ctx = {.archived = 1, .outgoing = outgoing, .stanza_id = id, .timestamp_ms = ts};
    ext_deliver(p, inner, &ctx);
    q->delivered++;
    return 1;
}
