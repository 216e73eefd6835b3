/* im.c - instant messaging on a bound libparley session (RFC 6121): messages, presence,
 * subscriptions, the roster and its pushes; IQ bookkeeping (answers to our IQs, pings,
 * disco, service-unavailable for the rest); the stanza hooks and raw sending that later
 * extensions (OMEMO, MUC, MAM, carbons, policy IQ) build on; read access to stanzas. */
#include "../common/util.h"
#include "internal.h"
#include "omemo/omemo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---------------------------------------------------------------- stanza access */

#define NODE(s) ((const xml_node *)(s))

const char *parley_stanza_name(const parley_stanza *s) { return s ? NODE(s)->name : NULL; }
const char *parley_stanza_ns(const parley_stanza *s) { return s ? NODE(s)->ns : NULL; }
const char *parley_stanza_attr(const parley_stanza *s, const char *name)
{
    return s && name ? xml_get_attr(NODE(s), name) : NULL;
}
const parley_stanza *parley_stanza_child(const parley_stanza *s, const char *ns, const char *name)
{
    return s ? (const parley_stanza *)xml_child(NODE(s), ns, name) : NULL;
}
const parley_stanza *parley_stanza_next(const parley_stanza *s, const char *ns, const char *name)
{
    return s ? (const parley_stanza *)xml_next(NODE(s), ns, name) : NULL;
}
char *parley_stanza_text(const parley_stanza *s) { return s ? xml_text(NODE(s)) : NULL; }
char *parley_stanza_xml(const parley_stanza *s)
{
    return s ? xml_to_string(NODE(s), XMLNS_CLIENT) : NULL;
}

static int is_online(const parley *p) { return p && p->phase == PH_STREAM && p->neg == NEG_ONLINE; }

/* ---------------------------------------------------------------- errors */

static const xml_node *error_condition(const xml_node *stanza, const xml_node **errel)
{
    const xml_node *err = xml_child(stanza, NULL, "error");
    *errel = err;
    if (!err)
        return NULL;
    for (const xml_node *c = xml_first_element(err); c; c = xml_next(c, NULL, NULL))
        if (str_eq(c->ns, XMLNS_STANZAS) && !str_eq(c->name, "text"))
            return c;
    return NULL;
}

char *im_error_text(const xml_node *stanza)
{
    const xml_node *err;
    const xml_node *cond = error_condition(stanza, &err);
    char *text = err ? xml_child_text(err, XMLNS_STANZAS, "text") : NULL;
    char *out = xasprintf("%s%s%s", cond ? cond->name : "undefined-condition",
                          text && *text ? ": " : "", text && *text ? text : "");
    free(text);
    return out;
}

parley_error im_error_code(const xml_node *stanza)
{
    const xml_node *err;
    const xml_node *cond = error_condition(stanza, &err);
    const char *n = cond ? cond->name : "";
    if (str_eq(n, "policy-violation") || str_eq(n, "forbidden") || str_eq(n, "not-allowed") ||
        str_eq(n, "not-acceptable"))
        return PARLEY_ERR_POLICY;
    if (str_eq(n, "not-authorized"))
        return PARLEY_ERR_AUTH;
    if (str_eq(n, "remote-server-timeout"))
        return PARLEY_ERR_TIMEOUT;
    if (str_eq(n, "remote-server-not-found"))
        return PARLEY_ERR_UNREACHABLE;
    return PARLEY_ERR_PROTOCOL;
}

void im_send_iq_error(parley *p, const xml_node *iq, const char *type, const char *cond)
{
    xml_node *r = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(r, "type", "error");
    xml_set_attr(r, "id", xml_get_attr(iq, "id"));
    xml_set_attr(r, "to", xml_get_attr(iq, "from"));
    xml_node *e = xml_add_child(r, NULL, "error");
    xml_set_attr(e, "type", type);
    xml_add_child(e, XMLNS_STANZAS, cond);
    session_send(p, r);
    xml_free(r);
}

static xml_node *iq_result_for(const xml_node *iq)
{
    xml_node *r = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(r, "type", "result");
    xml_set_attr(r, "id", xml_get_attr(iq, "id"));
    xml_set_attr(r, "to", xml_get_attr(iq, "from"));
    return r;
}

void im_send_iq_result(parley *p, const xml_node *iq)
{
    xml_node *r = iq_result_for(iq);
    session_send(p, r);
    xml_free(r);
}

/* ---------------------------------------------------------------- roster */

static void entry_free(void *v)
{
    roster_entry *e = v;
    if (!e)
        return;
    free(e->jid);
    free(e->name);
    free(e->subscription);
    for (size_t i = 0; i < e->ngroups; i++)
        free(e->groups[i]);
    free(e->groups);
    free(e);
}

void im_roster_free(parley *p)
{
    dict_free(p->roster, entry_free);
    p->roster = dict_new();
}

static roster_entry *entry_from_item(const xml_node *item)
{
    const char *j = xml_get_attr(item, "jid");
    char *bare = j ? jid_normalize_bare(j) : NULL;
    if (!bare)
        return NULL;
    roster_entry *e = xcalloc(1, sizeof *e);
    e->jid = bare;
    const char *name = xml_get_attr(item, "name");
    e->name = name ? xstrdup(name) : NULL;
    const char *sub = xml_get_attr(item, "subscription");
    e->subscription = xstrdup(sub ? sub : "none");
    e->ask = str_eq(xml_get_attr(item, "ask"), "subscribe");
    for (const xml_node *g = xml_child(item, XMLNS_ROSTER, "group"); g;
         g = xml_next(g, XMLNS_ROSTER, "group")) {
        e->groups = xrealloc(e->groups, (e->ngroups + 1) * sizeof *e->groups);
        e->groups[e->ngroups++] = xml_text(g);
    }
    return e;
}

static void emit_roster(parley *p, const roster_entry *e, int removed, const xml_node *st)
{
    parley_event ev = {0};
    ev.type = PARLEY_EV_ROSTER;
    ev.roster_jid = e->jid;
    ev.roster_name = e->name;
    ev.subscription = removed ? "remove" : e->subscription;
    ev.roster_ask = e->ask;
    ev.roster_removed = removed;
    ev.stanza = (const parley_stanza *)st;
    client_emit(p, &ev);
}

/* Apply one <item/>; returns 0 or -1 if it is not valid. */
static int apply_item(parley *p, const xml_node *item, const xml_node *st)
{
    roster_entry *e = entry_from_item(item);
    if (!e)
        return -1;
    if (str_eq(e->subscription, "remove")) {
        roster_entry *old = dict_del(p->roster, e->jid);
        if (old)
            emit_roster(p, old, 1, st);
        entry_free(old);
        entry_free(e);
        return 0;
    }
    entry_free(dict_set(p->roster, e->jid, e));
    emit_roster(p, e, 0, st);
    return 0;
}

typedef struct stale_ctx {
    dict *fresh;
    char **gone;
    size_t ngone;
} stale_ctx;

static int collect_stale(void *ud, const char *key, void *value)
{
    (void)value;
    stale_ctx *c = ud;
    if (!dict_get(c->fresh, key)) {
        c->gone = xrealloc(c->gone, (c->ngone + 1) * sizeof *c->gone);
        c->gone[c->ngone++] = xstrdup(key);
    }
    return 0;
}

void im_roster_result(parley *p, const xml_node *iq)
{
    const xml_node *q = xml_child(iq, XMLNS_ROSTER, "query");
    if (!q)
        return; /* roster versioning "no change" answer: keep what we have */
    dict *fresh = dict_new();
    for (const xml_node *it = xml_child(q, XMLNS_ROSTER, "item"); it;
         it = xml_next(it, XMLNS_ROSTER, "item")) {
        const char *j = xml_get_attr(it, "jid");
        char *bare = j ? jid_normalize_bare(j) : NULL;
        if (bare)
            dict_set(fresh, bare, (void *)1);
        free(bare);
    }
    /* Items that disappeared while we were away are reported as removed. */
    stale_ctx c = {fresh, NULL, 0};
    dict_each(p->roster, collect_stale, &c);
    for (size_t i = 0; i < c.ngone; i++) {
        roster_entry *old = dict_del(p->roster, c.gone[i]);
        if (old)
            emit_roster(p, old, 1, iq);
        entry_free(old);
        free(c.gone[i]);
    }
    free(c.gone);
    dict_free(fresh, NULL);
    for (const xml_node *it = xml_child(q, XMLNS_ROSTER, "item"); it;
         it = xml_next(it, XMLNS_ROSTER, "item"))
        apply_item(p, it, iq);
}

static void roster_push(parley *p, const xml_node *iq)
{
    /* RFC 6121 2.1.6: a push is only valid from our own account (or without 'from'). */
    const char *from = xml_get_attr(iq, "from");
    char *fb = from ? jid_normalize(from) : NULL;
    int ok = !from || (fb && (str_eq(fb, p->account_bare) || str_eq(fb, p->account.domain)));
    free(fb);
    const xml_node *q = xml_child(iq, XMLNS_ROSTER, "query");
    const xml_node *item = q ? xml_child(q, XMLNS_ROSTER, "item") : NULL;
    if (!ok) {
        im_send_iq_error(p, iq, "cancel", "service-unavailable");
        return;
    }
    if (!item || xml_next(item, XMLNS_ROSTER, "item") || apply_item(p, item, iq) < 0) {
        im_send_iq_error(p, iq, "modify", "bad-request");
        return;
    }
    xml_node *r = iq_result_for(iq);
    session_send(p, r);
    xml_free(r);
}

typedef struct foreach_ctx {
    int (*fn)(const parley_roster_item *it, void *ud);
    void *ud;
} foreach_ctx;

static int foreach_one(void *ud, const char *key, void *value)
{
    (void)key;
    foreach_ctx *c = ud;
    const roster_entry *e = value;
    parley_roster_item it = {e->jid, e->name, e->subscription, e->ask,
                             (const char *const *)e->groups, e->ngroups};
    return c->fn(&it, c->ud);
}

void parley_roster_foreach(const parley *p, int (*fn)(const parley_roster_item *it, void *ud),
                           void *ud)
{
    if (!p || !fn)
        return;
    foreach_ctx c = {fn, ud};
    dict_each(p->roster, foreach_one, &c);
}

/* ---------------------------------------------------------------- IQ tracking */

void im_fail_pending_iqs(parley *p, parley_error err)
{
    while (p->iqs) {
        pending_iq *q = p->iqs;
        p->iqs = q->next;
        if (q->cb && !q->internal)
            q->cb(p, NULL, err, q->ud);
        free(q->to);
        free(q->id);
        free(q);
    }
}

/* RFC 6120 8.1.2.1 / 10.3.3: an answer must come from whom we asked; a request without
 * 'to' (or to our own account) is answered without 'from' or from our own JIDs. */
static int answer_from_ok(const parley *p, const pending_iq *q, const char *from)
{
    char *f = from ? jid_normalize(from) : NULL;
    int ok;
    if (from && !f)
        ok = 0;
    else if (q->to && !str_eq(q->to, p->account_bare))
        ok = str_eq(f, q->to) || (!f && str_eq(q->to, p->account.domain));
    else
        ok = !f || str_eq(f, p->account_bare) || str_eq(f, p->bound) ||
             str_eq(f, p->account.domain);
    free(f);
    return ok;
}

/* An answer to one of our IQs? Then hand it to its callback and return 1. */
static int answer_iq(parley *p, const xml_node *iq)
{
    const char *type = xml_get_attr(iq, "type");
    const char *id = xml_get_attr(iq, "id");
    if (!id || !(str_eq(type, "result") || str_eq(type, "error")))
        return 0;
    pending_iq **pp = &p->iqs;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0 && answer_from_ok(p, *pp, xml_get_attr(iq, "from")))
            break;
    if (!*pp)
        return 0;
    pending_iq *q = *pp;
    *pp = q->next;
    if (q->cb)
        q->cb(p, (const parley_stanza *)iq,
              str_eq(type, "result") ? PARLEY_OK : im_error_code(iq), q->ud);
    free(q->to);
    free(q->id);
    free(q);
    return 1;
}

static void handle_iq(parley *p, const xml_node *iq)
{
    const char *type = xml_get_attr(iq, "type");
    if (!str_eq(type, "get") && !str_eq(type, "set"))
        return; /* an answer nobody waits for (timed out): drop it */
    const xml_node *payload = xml_first_element(iq);
    if (str_eq(type, "get") && payload && xml_is(payload, XMLNS_PING, "ping")) {
        xml_node *r = iq_result_for(iq);
        session_send(p, r);
        xml_free(r);
        return;
    }
    if (str_eq(type, "set") && payload && xml_is(payload, XMLNS_ROSTER, "query")) {
        roster_push(p, iq);
        return;
    }
    if (policy_handle_push(p, iq))
        return;
    if (str_eq(type, "get") && payload && xml_is(payload, XMLNS_DISCO_INFO, "query") &&
        !xml_get_attr(payload, "node")) {
        xml_node *r = iq_result_for(iq);
        xml_node *q = xml_add_child(r, XMLNS_DISCO_INFO, "query");
        xml_node *id = xml_add_child(q, NULL, "identity");
        xml_set_attr(id, "category", "client");
        xml_set_attr(id, "type", "console");
        xml_set_attr(id, "name", "Parley");
        /* +notify: PEP sends us OMEMO device list changes (XEP-0163 filtered notifications) */
        static const char *features[] = {XMLNS_DISCO_INFO, XMLNS_PING, "urn:xmpp:omemo:2",
                                         "urn:xmpp:omemo:2:devices+notify"};
        for (size_t i = 0; i < ARRAY_LEN(features); i++)
            xml_set_attr(xml_add_child(q, NULL, "feature"), "var", features[i]);
        session_send(p, r);
        xml_free(r);
        return;
    }
    /* RFC 6120 8.4: an IQ we do not understand still gets an answer. */
    im_send_iq_error(p, iq, "cancel", "service-unavailable");
}

/* ---------------------------------------------------------------- messages, presence */

static char *body_of(const xml_node *msg)
{
    /* The body without xml:lang (or the first one). */
    const xml_node *first = xml_child(msg, XMLNS_CLIENT, "body"), *b = first;
    for (; b; b = xml_next(b, XMLNS_CLIENT, "body"))
        if (!xml_get_attr(b, "xml:lang"))
            break;
    b = b ? b : first;
    return b ? xml_text(b) : NULL;
}

static void handle_message(parley *p, const xml_node *msg)
{
    /* end-to-end encrypted, PEP notifications, and what the policy refuses */
    if (omemo_handle_message(p, msg))
        return;
    const char *type = xml_get_attr(msg, "type");
    char *body = body_of(msg);
    int is_error = str_eq(type, "error");
    if (!body && !is_error)
        return; /* chat states, receipts...: left to hooks */
    char *thread = xml_child_text(msg, XMLNS_CLIENT, "thread");
    char *errtext = is_error ? im_error_text(msg) : NULL;
    parley_event ev = {0};
    ev.type = PARLEY_EV_MESSAGE;
    ev.from = xml_get_attr(msg, "from");
    if (!ev.from)
        ev.from = p->account_bare;
    ev.to = xml_get_attr(msg, "to");
    ev.id = xml_get_attr(msg, "id");
    ev.msg_type = type ? type : "normal";
    ev.body = body;
    ev.thread = thread;
    ev.encrypted = 0; /* encrypted messages are delivered by omemo_handle_message */
    ev.error = is_error ? im_error_code(msg) : PARLEY_OK;
    ev.error_text = errtext;
    ev.stanza = (const parley_stanza *)msg;
    client_emit(p, &ev);
    free(body);
    free(thread);
    free(errtext);
}

static void handle_presence(parley *p, const xml_node *pres)
{
    const char *type = xml_get_attr(pres, "type");
    if (str_eq(type, "probe"))
        return; /* the server answers probes */
    char *show = xml_child_text(pres, XMLNS_CLIENT, "show");
    char *status = xml_child_text(pres, XMLNS_CLIENT, "status");
    char *prio = xml_child_text(pres, XMLNS_CLIENT, "priority");
    char *errtext = str_eq(type, "error") ? im_error_text(pres) : NULL;
    parley_event ev = {0};
    int sub = str_eq(type, "subscribe") || str_eq(type, "subscribed") ||
              str_eq(type, "unsubscribe") || str_eq(type, "unsubscribed");
    ev.type = sub ? PARLEY_EV_SUBSCRIPTION : PARLEY_EV_PRESENCE;
    ev.from = xml_get_attr(pres, "from");
    ev.to = xml_get_attr(pres, "to");
    ev.id = xml_get_attr(pres, "id");
    ev.pres_type = type;
    ev.show = show;
    ev.status = status;
    ev.priority = prio ? atoi(prio) : 0;
    ev.error = errtext ? im_error_code(pres) : PARLEY_OK;
    ev.error_text = errtext;
    ev.stanza = (const parley_stanza *)pres;
    if (ev.from)
        client_emit(p, &ev);
    free(show);
    free(status);
    free(prio);
    free(errtext);
}

void im_message(parley *p, const xml_node *msg)
{
    handle_message(p, msg);
}

/* ---------------------------------------------------------------- hooks */

void im_hooks_free(parley *p)
{
    while (p->hooks) {
        stanza_hook *h = p->hooks;
        p->hooks = h->next;
        free(h->name);
        free(h->child_ns);
        free(h);
    }
}

int parley_add_stanza_hook(parley *p, const char *name, const char *child_ns,
                           parley_stanza_fn fn, void *ud)
{
    if (!p || !fn)
        return -1;
    stanza_hook *h = xcalloc(1, sizeof *h);
    h->id = p->next_hook_id++;
    h->name = name ? xstrdup(name) : NULL;
    h->child_ns = child_ns ? xstrdup(child_ns) : NULL;
    h->fn = fn;
    h->ud = ud;
    stanza_hook **pp = &p->hooks;
    while (*pp)
        pp = &(*pp)->next;
    *pp = h;
    return h->id;
}

void parley_remove_stanza_hook(parley *p, int hook_id)
{
    if (!p)
        return;
    /* Only disabled here: the list may be being walked by run_hooks. */
    for (stanza_hook *h = p->hooks; h; h = h->next)
        if (h->id == hook_id)
            h->fn = NULL;
}

static int hook_matches(const stanza_hook *h, const xml_node *st)
{
    if (!h->fn || (h->name && !str_eq(h->name, st->name)))
        return 0;
    if (!h->child_ns)
        return 1;
    for (const xml_node *c = xml_first_element(st); c; c = xml_next(c, NULL, NULL))
        if (str_eq(c->ns, h->child_ns))
            return 1;
    return 0;
}

static int run_hooks(parley *p, const xml_node *st)
{
    int consumed = 0;
    for (stanza_hook *h = p->hooks; h && !consumed; h = h->next)
        if (hook_matches(h, st))
            consumed = h->fn(p, (const parley_stanza *)st, h->ud) != 0;
    /* Drop the hooks removed meanwhile. */
    for (stanza_hook **pp = &p->hooks; *pp;) {
        stanza_hook *h = *pp;
        if (!h->fn) {
            *pp = h->next;
            free(h->name);
            free(h->child_ns);
            free(h);
        } else {
            pp = &h->next;
        }
    }
    return consumed;
}

void im_dispatch(parley *p, xml_node *st)
{
    if (str_eq(st->name, "iq") && answer_iq(p, st)) {
        xml_free(st);
        return;
    }
    if (p->neg == NEG_ONLINE && !run_hooks(p, st)) {
        if (client_ext_dispatch(p, st))
            ; /* rooms, carbons, archive results (ext.c) */
        else if (str_eq(st->name, "message"))
            handle_message(p, st);
        else if (str_eq(st->name, "presence"))
            handle_presence(p, st);
        else if (str_eq(st->name, "iq"))
            handle_iq(p, st);
    } else if (p->neg != NEG_ONLINE && str_eq(st->name, "iq")) {
        handle_iq(p, st); /* pings during sign-in; messages wait for the session */
    }
    xml_free(st);
}

/* ---------------------------------------------------------------- sending */

static int valid_jid(const char *s)
{
    char *n = s ? jid_normalize(s) : NULL;
    free(n);
    return n != NULL;
}

static void copy_id(const char *id, char *out, size_t len)
{
    if (out && len)
        snprintf(out, len, "%s", id);
}

void im_send_plain(parley *p, const char *to, const char *type, const char *body,
                   const char *id)
{
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "to", to);
    xml_set_attr(m, "type", type);
    xml_set_attr(m, "id", id);
    xml_node *b = xml_add_child(m, NULL, "body");
    xml_add_text(b, body, strlen(body));
    session_send(p, m);
    xml_free(m);
}

parley_error parley_send_message(parley *p, const char *to, const char *type, const char *body,
                                 char *id_out, size_t id_len)
{
    static const char *types[] = {"chat", "normal", "headline", "groupchat"};
    if (!p || !valid_jid(to) || !body)
        return PARLEY_ERR_INVALID;
    type = type ? type : "chat";
    int ok = 0;
    for (size_t i = 0; i < ARRAY_LEN(types); i++)
        ok |= strcmp(type, types[i]) == 0;
    if (!ok)
        return PARLEY_ERR_INVALID;
    if (!is_online(p))
        return PARLEY_ERR_STATE;
    char *id = session_new_id(p);
    copy_id(id, id_out, id_len);
    /* the end-to-end layer decides (policy, devices) and reports PARLEY_EV_SENT */
    parley_error e = omemo_send(p, to, type, body, id);
    free(id);
    return e;
}

void im_send_current_presence(parley *p)
{
    static const char *shows[] = {NULL, "chat", "away", "xa", "dnd", NULL};
    xml_node *pr = xml_new(XMLNS_CLIENT, "presence");
    if (p->show == PARLEY_SHOW_UNAVAILABLE) {
        xml_set_attr(pr, "type", "unavailable");
    } else {
        if (shows[p->show])
            xml_add_text(xml_add_child(pr, NULL, "show"), shows[p->show], strlen(shows[p->show]));
        char prio[16];
        snprintf(prio, sizeof prio, "%d", p->priority);
        xml_add_text(xml_add_child(pr, NULL, "priority"), prio, strlen(prio));
    }
    if (p->status)
        xml_add_text(xml_add_child(pr, NULL, "status"), p->status, strlen(p->status));
    session_send(p, pr);
    xml_free(pr);
}

parley_error parley_set_presence(parley *p, parley_show show, const char *status, int priority)
{
    if (!p || show < PARLEY_SHOW_AVAILABLE || show > PARLEY_SHOW_UNAVAILABLE || priority < -128 ||
        priority > 127)
        return PARLEY_ERR_INVALID;
    p->show = show;
    p->priority = priority;
    free(p->status);
    p->status = status ? xstrdup(status) : NULL;
    if (is_online(p))
        im_send_current_presence(p);
    return PARLEY_OK;
}

parley_error parley_subscription(parley *p, const char *who, parley_sub_action action)
{
    static const char *types[] = {"subscribe", "unsubscribe", "subscribed", "unsubscribed"};
    if (!p || action < PARLEY_SUB_REQUEST || action > PARLEY_SUB_DENY)
        return PARLEY_ERR_INVALID;
    char *bare = who ? jid_normalize_bare(who) : NULL;
    if (!bare)
        return PARLEY_ERR_INVALID;
    if (!is_online(p)) {
        free(bare);
        return PARLEY_ERR_STATE;
    }
    xml_node *pr = xml_new(XMLNS_CLIENT, "presence");
    xml_set_attr(pr, "to", bare);
    xml_set_attr(pr, "type", types[action]);
    session_send(p, pr);
    xml_free(pr);
    free(bare);
    return PARLEY_OK;
}

static parley_error send_tracked_iq(parley *p, xml_node *iq, parley_iq_fn cb, void *ud,
                                    int timeout_ms, char *id_out, size_t id_len)
{
    const char *given = xml_get_attr(iq, "id");
    char *id = given ? xstrdup(given) : session_new_id(p);
    xml_set_attr(iq, "id", id);
    session_track_iq(p, id, xml_get_attr(iq, "to"), cb, ud, timeout_ms, 0);
    session_send(p, iq);
    copy_id(id, id_out, id_len);
    free(id);
    xml_free(iq);
    return PARLEY_OK;
}

parley_error parley_roster_set(parley *p, const char *who, const char *name,
                               const char *const *groups, size_t ngroups, parley_iq_fn cb, void *ud)
{
    if (!p || (ngroups && !groups))
        return PARLEY_ERR_INVALID;
    char *bare = who ? jid_normalize_bare(who) : NULL;
    if (!bare)
        return PARLEY_ERR_INVALID;
    if (!is_online(p)) {
        free(bare);
        return PARLEY_ERR_STATE;
    }
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_node *item = xml_add_child(xml_add_child(iq, XMLNS_ROSTER, "query"), NULL, "item");
    xml_set_attr(item, "jid", bare);
    if (name)
        xml_set_attr(item, "name", name);
    for (size_t i = 0; i < ngroups; i++)
        if (groups[i])
            xml_add_text(xml_add_child(item, NULL, "group"), groups[i], strlen(groups[i]));
    free(bare);
    return send_tracked_iq(p, iq, cb, ud, 0, NULL, 0);
}

parley_error parley_roster_remove(parley *p, const char *who, parley_iq_fn cb, void *ud)
{
    if (!p)
        return PARLEY_ERR_INVALID;
    char *bare = who ? jid_normalize_bare(who) : NULL;
    if (!bare)
        return PARLEY_ERR_INVALID;
    if (!is_online(p)) {
        free(bare);
        return PARLEY_ERR_STATE;
    }
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_node *item = xml_add_child(xml_add_child(iq, XMLNS_ROSTER, "query"), NULL, "item");
    xml_set_attr(item, "jid", bare);
    xml_set_attr(item, "subscription", "remove");
    free(bare);
    return send_tracked_iq(p, iq, cb, ud, 0, NULL, 0);
}

static xml_node *parse_stanza(parley *p, const char *xml)
{
    if (!xml)
        return NULL;
    xml_node *st = xml_parse_document(xml, strlen(xml), XMLNS_CLIENT, p->opt.max_stanza);
    if (st && (!str_eq(st->ns, XMLNS_CLIENT) ||
               !(str_eq(st->name, "message") || str_eq(st->name, "presence") ||
                 str_eq(st->name, "iq")))) {
        xml_free(st);
        return NULL;
    }
    return st;
}

parley_error parley_send_xml(parley *p, const char *xml)
{
    if (!p)
        return PARLEY_ERR_INVALID;
    xml_node *st = parse_stanza(p, xml);
    if (!st)
        return PARLEY_ERR_INVALID;
    if (!is_online(p)) {
        xml_free(st);
        return PARLEY_ERR_STATE;
    }
    session_send(p, st);
    xml_free(st);
    return PARLEY_OK;
}

parley_error parley_send_iq(parley *p, const char *xml, parley_iq_fn cb, void *ud, int timeout_ms,
                            char *id_out, size_t id_len)
{
    if (!p)
        return PARLEY_ERR_INVALID;
    xml_node *iq = parse_stanza(p, xml);
    const char *type = iq ? xml_get_attr(iq, "type") : NULL;
    if (!iq || !str_eq(iq->name, "iq") || !(str_eq(type, "get") || str_eq(type, "set"))) {
        xml_free(iq);
        return PARLEY_ERR_INVALID;
    }
    if (!is_online(p)) {
        xml_free(iq);
        return PARLEY_ERR_STATE;
    }
    return send_tracked_iq(p, iq, cb, ud, timeout_ms, id_out, id_len);
}
