/* muc.c - the multi-user chat service: stanzas for the service domain routed to rooms,
 * disco on the service (the room list), room creation and the limits that keep one user
 * from hurting the others (rooms per user, per-user and per-room message rates). */
#include "muc.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "compliance.h"
#include "conn.h"
#include "mam.h"
#include "node.h"
#include "muc_internal.h"
#include "node_rooms.h"
#include "router.h"
#include "s2s.h"
#include "stanza.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The per-user buckets are pruned when there are more than this many (a bucket that has
 * refilled carries no information, so dropping it changes nothing). */
#define USER_BUCKETS_PRUNE_AT 4096

int muc_bucket_take(muc_bucket *b, int rate, int64_t now_ms)
{
    if (b->last_ms == 0) {
        b->tokens = rate;
        b->last_ms = now_ms;
    } else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
        if (b->tokens > rate)
            b->tokens = rate;
        b->last_ms = now_ms;
    }
    if (b->tokens < 1.0)
        return -1;
    b->tokens -= 1.0;
    return 0;
}

typedef struct prune_ctx {
    int64_t now_ms;
    char **keys;
    size_t n, cap;
} prune_ctx;

static int collect_full(void *ud, const char *key, void *value)
{
    prune_ctx *c = ud;
    muc_bucket *b = value;
    if (c->now_ms - b->last_ms > 1000) { /* a second idle: refilled whatever the rate */
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 64;
            c->keys = xrealloc(c->keys, c->cap * sizeof *c->keys);
        }
        c->keys[c->n++] = xstrdup(key);
    }
    return 0;
}

static void prune_user_buckets(muc *m, int64_t now_ms)
{
    prune_ctx c = {now_ms, NULL, 0, 0};
    dict_each(m->user_rate, collect_full, &c);
    for (size_t i = 0; i < c.n; i++) {
        free(dict_del(m->user_rate, c.keys[i]));
        free(c.keys[i]);
    }
    free(c.keys);
}

int muc_rate_check(muc_room *r, const xml_node *stanza, const char *sender_bare)
{
    muc *m = r->svc;
    const config *cfg = &m->srv->cfg;
    int64_t now = time_mono_ms();
    muc_bucket *ub = dict_get(m->user_rate, sender_bare);
    if (!ub) {
        if (dict_size(m->user_rate) >= USER_BUCKETS_PRUNE_AT)
            prune_user_buckets(m, now);
        ub = xcalloc(1, sizeof *ub);
        dict_set(m->user_rate, sender_bare, ub);
    }
    /* Peek at the user's bucket first so that a message refused by the room's limit does
     * not also cost the sender a token (and vice versa). */
    muc_bucket ub_try = *ub, rb_try = r->rate;
    if (muc_bucket_take(&ub_try, cfg->muc_user_rate, now) < 0) {
        char text[160];
        snprintf(text, sizeof text,
                 "you are sending too fast: at most %d messages a second to rooms; wait",
                 cfg->muc_user_rate);
        router_bounce(m->srv, stanza, "wait", "resource-constraint", text);
        return -1;
    }
    if (muc_bucket_take(&rb_try, cfg->muc_room_rate, now) < 0) {
        char text[160];
        snprintf(text, sizeof text,
                 "this room is busy: it accepts at most %d messages a second; wait",
                 cfg->muc_room_rate);
        router_bounce(m->srv, stanza, "wait", "resource-constraint", text);
        return -1;
    }
    *ub = ub_try;
    r->rate = rb_try;
    return 0;
}

/* ---- rooms ---- */

typedef struct count_ctx {
    const char *bare;
    size_t n;
} count_ctx;

static int count_owned(void *ud, const char *key, void *value)
{
    count_ctx *c = ud;
    if (muc_room_aff(value, c->bare) == MUC_AFF_OWNER)
        c->n++;
    return 0;
}

void muc_remove_room(muc *m, muc_room *r)
{
    dict_del(m->rooms, r->jid);
    muc_room_free(r);
}

/* A join for a room that does not exist: create it, locked, with the sender as owner
 * (XEP-0045 10.1), if the service's limits allow. NULL after answering with an error. */
static muc_room *create_room(muc *m, xml_node *stanza, const jid *to, const char *from,
                             const char *from_bare)
{
    server *srv = m->srv;
    int max = srv->cfg.muc_max_rooms_per_user;
    if (strlen(to->local) > MUC_MAX_ROOM_NAME) {
        router_bounce(srv, stanza, "modify", "not-acceptable", "the room name is too long");
        return NULL;
    }
    count_ctx c = {from_bare, 0};
    dict_each(m->rooms, count_owned, &c);
    if (max == 0 || c.n >= (size_t)max) {
        char text[200];
        if (max == 0)
            snprintf(text, sizeof text, "creating rooms is disabled on this server");
        else
            snprintf(text, sizeof text,
                     "you already own %zu rooms, the most one user may own here (%d)", c.n, max);
        router_bounce(srv, stanza, "cancel", "not-allowed", text);
        return NULL;
    }
    char *room_jid = jid_bare(to);
    muc_room *r = muc_room_new(m, room_jid);
    free(room_jid);
    muc_room_set_aff(r, from_bare, MUC_AFF_OWNER);
    /* A new room starts with an empty archive, whatever an earlier room of that name
     * (destroyed, or temporary and lost in a crash) left behind. */
    muc_archive_forget(r);
    /* A join without the MUC element comes from a client that predates XEP-0045's
     * creation protocol: it gets an instant room (10.1.1). */
    r->locked = xml_child(stanza, MUC_NS, "x") != NULL;
    dict_set(m->rooms, r->jid, r);
    compliance_audit(srv, from, "muc-room-create", r->jid, NULL, NULL);
    log_info("muc: %s created by %s", r->jid, from);
    return r;
}

/* ---- the service's own address ---- */

static void reply(server *srv, xml_node *r)
{
    router_send(srv, r);
}

typedef struct list_ctx {
    xml_node *q;
    size_t n;
    dict *seen; /* several nodes: rooms already listed */
} list_ctx;

static void list_item(list_ctx *c, const char *room, const char *name)
{
    if (c->n >= MUC_MAX_LISTED || (c->seen && dict_get(c->seen, room)))
        return;
    c->n++;
    if (c->seen)
        dict_set(c->seen, room, c);
    xml_node *item = xml_add_child(c->q, NULL, "item");
    xml_set_attr(item, "jid", room);
    xml_set_attr(item, "name", name);
}

char *muc_room_listing(const muc_room *r)
{
    if (!r->cfg.public_list || r->locked)
        return NULL;
    if (r->cfg.name)
        return xstrdup(r->cfg.name);
    const char *at = strchr(r->jid, '@');
    return xstrndup(r->jid, at ? (size_t)(at - r->jid) : strlen(r->jid));
}

static int list_room(void *ud, const char *key, void *value)
{
    list_ctx *c = ud;
    char *name = muc_room_listing(value);
    if (name)
        list_item(c, key, name);
    free(name);
    return c->n >= MUC_MAX_LISTED;
}

static void list_remote_room(void *ud, const char *room, const char *name)
{
    list_item(ud, room, name);
}

static void service_iq(muc *m, xml_node *iq)
{
    server *srv = m->srv;
    const char *type = xml_get_attr(iq, "type");
    const xml_node *p = xml_first_element(iq);
    if (!str_eq(type, "get") && !str_eq(type, "set")) {
        xml_free(iq);
        return;
    }
    int get = str_eq(type, "get");
    if (get && p && xml_is(p, XMLNS_DISCO_INFO, "query") && !xml_get_attr(p, "node")) {
        xml_node *r = stanza_iq_result(iq);
        xml_node *q = xml_add_child(r, XMLNS_DISCO_INFO, "query");
        xml_node *id = xml_add_child(q, NULL, "identity");
        xml_set_attr(id, "category", "conference");
        xml_set_attr(id, "type", "text");
        xml_set_attr(id, "name", "Group chats");
        static const char *features[] = {XMLNS_DISCO_INFO, XMLNS_DISCO_ITEMS, MUC_NS, XMLNS_PING,
                                         XMLNS_SID};
        for (size_t i = 0; i < ARRAY_LEN(features); i++)
            xml_set_attr(xml_add_child(q, NULL, "feature"), "var", features[i]);
        reply(srv, r);
    } else if (get && p && xml_is(p, XMLNS_DISCO_ITEMS, "query") && !xml_get_attr(p, "node")) {
        xml_node *r = stanza_iq_result(iq);
        list_ctx c = {xml_add_child(r, XMLNS_DISCO_ITEMS, "query"), 0, NULL};
        if (node_rooms_clustered(srv))
            c.seen = dict_new();
        dict_each(m->rooms, list_room, &c);
        /* Several nodes: the rooms that live on the others too (node_rooms.h). */
        if (c.seen)
            node_rooms_each_listed(m, list_remote_room, &c);
        dict_free(c.seen, NULL);
        reply(srv, r);
    } else if (get && p && xml_is(p, XMLNS_PING, "ping")) {
        reply(srv, stanza_iq_result(iq));
    } else {
        router_bounce(srv, iq, "cancel", "service-unavailable", NULL);
    }
    xml_free(iq);
}

static void room_iq(muc_room *r, xml_node *iq, const char *from, const char *nick)
{
    server *srv = r->svc->srv;
    const char *type = xml_get_attr(iq, "type");
    const xml_node *p = xml_first_element(iq);
    if (!str_eq(type, "get") && !str_eq(type, "set")) {
        xml_free(iq); /* answers to nobody's question: the room asks none */
        return;
    }
    int get = str_eq(type, "get");
    if (nick) {
        /* XEP-0410: a ping to one's own occupant JID tells a client whether it is
         * still joined. Other IQs to occupants are not relayed (their real JIDs are
         * known in non-anonymous rooms, and relaying invites abuse). */
        muc_occupant *o = muc_occupant_by_jid(r, from);
        if (get && p && xml_is(p, XMLNS_PING, "ping") && o && strcmp(o->nick, nick) == 0)
            reply(srv, stanza_iq_result(iq));
        else if (!o)
            router_bounce(srv, iq, "cancel", "not-acceptable", "you are not in this room");
        else
            router_bounce(srv, iq, "cancel", "service-unavailable",
                          "requests are not relayed to occupants");
        xml_free(iq);
        return;
    }
    if (p && xml_is(p, MUC_NS_OWNER, "query")) {
        muc_config_iq(r, iq, from);
    } else if (p && xml_is(p, MUC_NS_ADMIN, "query")) {
        muc_admin_iq(r, iq, from);
    } else if (p && str_eq(p->ns, XMLNS_MAM)) {
        muc_archive_iq(r, iq, from);
    } else if (get && p && xml_is(p, XMLNS_DISCO_INFO, "query")) {
        muc_room_disco_info(r, iq);
    } else if (get && p && xml_is(p, XMLNS_DISCO_ITEMS, "query")) {
        /* Occupants are not listed: presence in the room tells them to those inside. */
        xml_node *res = stanza_iq_result(iq);
        xml_add_child(res, XMLNS_DISCO_ITEMS, "query");
        reply(srv, res);
        xml_free(iq);
    } else if (get && p && xml_is(p, XMLNS_PING, "ping")) {
        reply(srv, stanza_iq_result(iq));
        xml_free(iq);
    } else {
        router_bounce(srv, iq, "cancel", "feature-not-implemented", NULL);
        xml_free(iq);
    }
}

/* An error from an occupant's real JID saying that its client is gone (a session that
 * vanished under a message, say): the occupant is removed (333) so that the room stops
 * sending to it. Other errors (a client that could not handle some stanza) leave it in. */
static int says_gone(const xml_node *stanza)
{
    static const char *gone[] = {"gone", "item-not-found", "recipient-unavailable", "redirect",
                                 "remote-server-not-found", "remote-server-timeout",
                                 "service-unavailable"};
    const xml_node *err = xml_child(stanza, NULL, "error");
    for (size_t i = 0; err && i < ARRAY_LEN(gone); i++)
        if (xml_child(err, XMLNS_STANZAS, gone[i]))
            return 1;
    return 0;
}

static void error_from(muc_room *r, xml_node *stanza, const char *from)
{
    muc_occupant *o = muc_occupant_by_jid(r, from);
    if (o && says_gone(stanza)) {
        static const int codes[] = {333};
        muc_room_remove(r, o, codes, 1, NULL, "the occupant's client returned an error");
    }
    xml_free(stanza);
}

/* A temporary room lives while someone is in it. */
void muc_room_done(muc *m, const char *room_jid)
{
    muc_room *r = dict_get(m->rooms, room_jid);
    if (r && r->noccupants == 0 && !r->cfg.persistent) {
        compliance_audit(m->srv, "server", "muc-room-destroy", r->jid, NULL,
                         "temporary room: the last occupant left");
        muc_store_delete(r);
        muc_archive_forget(r);
        muc_remove_room(m, r);
        r = NULL;
    }
    if (!node_rooms_clustered(m->srv))
        return;
    if (r)
        node_rooms_describe(m, r);
    else
        node_rooms_release(m, room_jid);
}

/* Several nodes: is a stanza from a user of this domain that came over a node link from
 * the node holding that session (the directory, or the node the occupant joined from)?
 * Anything else is forged or stale, and dropped. A local stanza from an occupant that
 * had joined from another node means the session moved here. */
static int sender_checks_out(muc *m, muc_room *r, const char *from_full, const char *from_bare,
                             int is_join)
{
    const char *at = strchr(from_bare, '@');
    if (!at || !router_is_local_domain(m->srv, at + 1))
        return 1; /* another domain's user, relayed by whichever node its server reached */
    muc_occupant *o = r ? muc_occupant_by_jid(r, from_full) : NULL;
    const char *via = m->via_node;
    if (!via) {
        if (o && o->node) {
            free(o->node);
            o->node = NULL;
        }
        return 1;
    }
    if (o && o->node && strcmp(o->node, via) == 0)
        return 1;
    if (o && !is_join)
        return 0;
    if (!node_rooms_session_on(m, from_full, via))
        return 0;
    if (o) { /* rejoining from the node that holds the session now */
        free(o->node);
        o->node = xstrdup(via);
    }
    return 1;
}

/* The room a stanza is for, when it is not in m->rooms: with several nodes, the home's
 * (this node's, loaded from the store, or another's, where the stanza goes). NULL with
 * *taken set when the stanza went elsewhere or was answered. */
static muc_room *find_room(muc *m, xml_node *stanza, const char *room_jid, int *taken)
{
    *taken = 0;
    muc_room *r = dict_get(m->rooms, room_jid);
    if (r || !node_rooms_clustered(m->srv))
        return r;
    server *srv = m->srv;
    const char *type = xml_get_attr(stanza, "type");
    const char *home = NULL;
    int rc = node_rooms_home(m, room_jid, &home);
    if (rc == 1) {
        /* Claimed now: a persistent room comes from the store (another node may have
         * changed it, or died holding it); NULL: not stored, a join creates it. */
        muc_room *loaded = muc_store_load_room(m, room_jid);
        if (loaded)
            log_info("muc: %s loaded from the store: it lives on this node now", room_jid);
        return loaded;
    }
    *taken = 1;
    if (rc == 0 && !m->via_node) {
        /* A failing link drops the cache entry that home points into. */
        char *node = xstrdup(home);
        s2s_node_send(srv, node, stanza);
        free(node);
        return NULL;
    }
    /* The store failed, or another node sent us what lives on a third: stanzas from a
     * link are never forwarded again (no loops), the sender hears why. */
    if (rc == 0)
        log_warn("muc: %s sent a stanza for %s, which lives on %s: bounced", m->via_node,
                 room_jid, home);
    if (!str_eq(type, "error") && !str_eq(type, "result") &&
        !(strcmp(stanza->name, "presence") == 0 && type))
        router_bounce(srv, stanza, "wait", "service-unavailable",
                      rc == 0 ? "the room moved to another node; try again"
                              : "the room directory is unavailable; try again");
    xml_free(stanza);
    return NULL;
}

int muc_session_ended(const xml_node *stanza)
{
    return xml_child(stanza, XMLNS_NODE, MUC_SESSION_ENDED) != NULL;
}

/* Is from_full a session of this node that is ending (its connection closing, or
 * detached and not resumed)? Its unavailable presence is then the server's, sent for a
 * client that disconnected without leaving. */
static int session_ending(muc *m, const char *from_full, const char *from_bare)
{
    const char *at = strchr(from_bare, '@');
    const char *slash = strchr(from_full, '/');
    if (!at || !slash || !router_is_local_domain(m->srv, at + 1))
        return 0;
    c2s *s = router_session(m->srv, from_bare, slash + 1);
    return s && (!s->conn || conn_is_closing(s->conn));
}

/* The room-leave event says "disconnected" for a session that ended. The node holding
 * the session knows, and marks the presence (MUC_SESSION_ENDED) so that the room's home
 * learns it too when the room lives on another node; a mark from anyone but another node
 * of this domain is removed. */
static void mark_session_end(muc *m, xml_node *stanza, const char *from_full,
                             const char *from_bare)
{
    if (m->via_node)
        return; /* the node that holds the session marked it (or not) */
    xml_node *mark;
    while ((mark = xml_child(stanza, XMLNS_NODE, MUC_SESSION_ENDED)) != NULL) {
        xml_detach(mark);
        xml_free(mark);
    }
    if (str_eq(xml_get_attr(stanza, "type"), "unavailable") &&
        session_ending(m, from_full, from_bare))
        xml_add_child(stanza, XMLNS_NODE, MUC_SESSION_ENDED);
}

static void deliver_room(muc *m, xml_node *stanza, const jid *to, const char *from_full,
                         const char *from_bare)
{
    server *srv = m->srv;
    const char *type = xml_get_attr(stanza, "type");
    int is_presence = strcmp(stanza->name, "presence") == 0;
    if (is_presence)
        mark_session_end(m, stanza, from_full, from_bare);
    char *room_jid = jid_bare(to);
    int taken;
    muc_room *r = find_room(m, stanza, room_jid, &taken);
    if (taken) {
        free(room_jid);
        return;
    }
    if (!sender_checks_out(m, r, from_full, from_bare, is_presence && !type)) {
        log_warn("muc: a %s for %s from %s over the link from %s, which does not hold that "
                 "session: dropped", stanza->name, room_jid, from_full, m->via_node);
        xml_free(stanza);
    } else if (!r) {
        if (is_presence && !type) {
            r = create_room(m, stanza, to, from_full, from_bare);
            if (r)
                muc_room_presence(r, stanza, from_full, to->resource, 1);
            else
                xml_free(stanza);
        } else {
            if (!str_eq(type, "error") && !str_eq(type, "unavailable") &&
                !str_eq(type, "result"))
                router_bounce(srv, stanza, "cancel", "item-not-found", "no such room");
            xml_free(stanza);
        }
    } else if (str_eq(type, "error")) {
        error_from(r, stanza, from_full);
    } else if (is_presence) {
        muc_room_presence(r, stanza, from_full, to->resource, 0);
    } else if (strcmp(stanza->name, "message") == 0) {
        muc_room_message(r, stanza, from_full, to->resource);
    } else if (strcmp(stanza->name, "iq") == 0) {
        room_iq(r, stanza, from_full, to->resource);
    } else {
        xml_free(stanza);
    }
    muc_room_done(m, room_jid);
    free(room_jid);
}

static void deliver_from(muc *m, xml_node *stanza)
{
    server *srv = m->srv;
    const char *from = xml_get_attr(stanza, "from");
    const char *type = xml_get_attr(stanza, "type");
    jid to, fj;
    if (jid_parse(xml_get_attr(stanza, "to") ? xml_get_attr(stanza, "to") : "", &to) < 0) {
        xml_free(stanza);
        return;
    }
    /* Rooms talk to users' sessions: a sender without a full JID is the server bouncing
     * something the room sent to a bare JID (an invitation), which needs no action. */
    if (!from || jid_parse(from, &fj) < 0 || !fj.local || !fj.resource) {
        if (from && !str_eq(type, "error") && strcmp(stanza->name, "presence") != 0)
            router_bounce(srv, stanza, "cancel", "not-acceptable",
                          "rooms accept stanzas from users' sessions only");
        jid_clear(&to);
        xml_free(stanza);
        return;
    }
    char *from_full = jid_full(&fj);
    char *from_bare = jid_bare(&fj);
    jid_clear(&fj);

    if (!to.local) {
        if (strcmp(stanza->name, "iq") == 0)
            service_iq(m, stanza);
        else {
            if (strcmp(stanza->name, "message") == 0 && !str_eq(type, "error"))
                router_bounce(srv, stanza, "cancel", "service-unavailable",
                              "send messages to a room, not to the service");
            xml_free(stanza);
        }
    } else if (strcmp(stanza->name, "presence") == 0 && !to.resource) {
        if (!type)
            router_bounce(srv, stanza, "modify", "jid-malformed",
                          "join a room at room@service/nickname");
        xml_free(stanza);
    } else {
        deliver_room(m, stanza, &to, from_full, from_bare);
    }
    free(from_full);
    free(from_bare);
    jid_clear(&to);
}

/* A stanza that arrives while the service is handling another (a send to an occupant on
 * another node whose link failed at once, answered by an error for the room) waits until
 * that one is done: rooms are never changed under a loop over their occupants. */
typedef struct deferred {
    xml_node *stanza;
    char *via_node;
    struct deferred *next;
} deferred;

static void deliver_one(muc *m, xml_node *stanza, const char *via_node)
{
    if (m->busy) {
        deferred *d = xcalloc(1, sizeof *d);
        d->stanza = stanza;
        d->via_node = via_node ? xstrdup(via_node) : NULL;
        deferred **tail = &m->deferred;
        while (*tail)
            tail = &(*tail)->next;
        *tail = d;
        return;
    }
    muc_hold(m);
    m->via_node = via_node;
    deliver_from(m, stanza);
    m->via_node = NULL;
    muc_release(m);
}

void muc_hold(muc *m)
{
    m->busy = 1;
}

void muc_release(muc *m)
{
    while (m->deferred) {
        deferred *d = m->deferred;
        m->deferred = d->next;
        m->via_node = d->via_node;
        deliver_from(m, d->stanza);
        m->via_node = NULL;
        free(d->via_node);
        free(d);
    }
    m->busy = 0;
}

static void deliver(server *srv, void *ud, xml_node *stanza)
{
    (void)srv;
    deliver_one(ud, stanza, NULL);
}

void muc_deliver_via(muc *m, xml_node *stanza, const char *node)
{
    deliver_one(m, stanza, node);
}

int muc_init(server *srv)
{
    if (!srv->cfg.muc)
        return 0;
    muc *m = xcalloc(1, sizeof *m);
    m->srv = srv;
    m->domain = xstrdup(srv->cfg.muc_domain);
    m->rooms = dict_new();
    m->user_rate = dict_new();
    srv->muc = m;
    if (muc_store_load(m) < 0 || node_rooms_init(m) < 0 ||
        router_add_service(srv, m->domain, deliver, m) < 0) {
        log_error("muc: cannot serve %s", m->domain);
        muc_free(srv);
        return -1;
    }
    m->registered = 1;
    log_info("muc: serving %s (%zu persistent rooms)", m->domain, dict_size(m->rooms));
    return 0;
}

static void free_room(void *value)
{
    muc_room_free(value);
}

/* Temporary rooms end with the server: so do their archives. */
static int forget_temporary(void *ud, const char *key, void *value)
{
    muc_room *r = value;
    if (!r->cfg.persistent)
        muc_archive_forget(r);
    return 0;
}

/* Occupants still in a room when the server stops (on other nodes, or other domains'):
 * they are not in it any more, whatever happens to the room next. */
static int audit_stop(void *ud, const char *key, void *value)
{
    muc_room *r = value;
    for (const muc_occupant *o = r->first; o; o = o->next)
        muc_audit_occupant(r, o, "room-leave", "server-stop");
    return 0;
}

void muc_free(server *srv)
{
    muc *m = srv->muc;
    if (!m)
        return;
    if (m->registered)
        router_remove_service(srv, m->domain);
    dict_each(m->rooms, audit_stop, NULL);
    if (srv->store)
        dict_each(m->rooms, forget_temporary, NULL);
    node_rooms_free(m);
    dict_free(m->rooms, free_room);
    dict_free(m->user_rate, free);
    free(m->domain);
    free(m);
    srv->muc = NULL;
}
