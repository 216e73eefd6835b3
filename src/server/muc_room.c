/* muc_room.c - a room's occupants: joining (with the checks of XEP-0045 7.2), nickname
 * and presence changes, leaving, removal by a moderator, and the presence broadcasts
 * with their status codes (110 self, 100 non-anonymous, 170 archived, 201 created,
 * 303 new nickname, 307 kicked, 301 banned, 321/322 membership, 333 error), and each
 * join and leave in the compliance audit chain (room-join, room-leave: who was in the room
 * when each room message was recorded). */
#include "../common/log.h"
#include "../common/util.h"
#include "compliance.h"
#include "conn.h"
#include "muc_internal.h"
#include "node.h"
#include "node_rooms.h"
#include "router.h"
#include "stanza.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *aff_names[] = {"none", "outcast", "member", "admin", "owner"};
static const char *role_names[] = {"none", "visitor", "participant", "moderator"};

const char *muc_aff_name(muc_aff a) { return aff_names[a]; }
const char *muc_role_name(muc_role r) { return role_names[r]; }

int muc_aff_parse(const char *s)
{
    for (size_t i = 0; s && i < ARRAY_LEN(aff_names); i++)
        if (strcmp(s, aff_names[i]) == 0)
            return (int)i;
    return -1;
}

int muc_role_parse(const char *s)
{
    for (size_t i = 0; s && i < ARRAY_LEN(role_names); i++)
        if (strcmp(s, role_names[i]) == 0)
            return (int)i;
    return -1;
}

xml_node *muc_user_x(xml_node *parent)
{
    return xml_add_child(parent, MUC_NS_USER, "x");
}

void muc_add_status(xml_node *x, int code)
{
    char num[8];
    snprintf(num, sizeof num, "%d", code);
    xml_set_attr(xml_add_child(x, NULL, "status"), "code", num);
}

muc_room *muc_room_new(muc *m, const char *jid)
{
    muc_room *r = xcalloc(1, sizeof *r);
    r->svc = m;
    r->jid = xstrdup(jid);
    muc_config_defaults(&r->cfg, &m->srv->cfg);
    r->affs = dict_new();
    r->by_nick = dict_new();
    r->by_jid = dict_new();
    if (m->srv->cfg.muc_history > 0)
        r->hist = xcalloc((size_t)m->srv->cfg.muc_history, sizeof *r->hist);
    return r;
}

static void occupant_free(muc_occupant *o)
{
    free(o->nick);
    free(o->jid);
    free(o->bare);
    free(o->resource);
    free(o->node);
    xml_free(o->presence);
    free(o);
}

void muc_room_free(muc_room *r)
{
    if (!r)
        return;
    for (muc_occupant *o = r->first, *next; o; o = next) {
        next = o->next;
        occupant_free(o);
    }
    dict_free(r->affs, NULL);
    dict_free(r->by_nick, NULL);
    dict_free(r->by_jid, NULL);
    muc_history_clear(r);
    free(r->hist);
    muc_config_clear(&r->cfg);
    free(r->subject);
    free(r->subject_from);
    free(r->listed);
    free(r->jid);
    free(r);
}

muc_aff muc_room_aff(const muc_room *r, const char *bare)
{
    return (muc_aff)(intptr_t)dict_get(r->affs, bare);
}

void muc_room_set_aff(muc_room *r, const char *bare, muc_aff aff)
{
    if (aff == MUC_AFF_NONE)
        dict_del(r->affs, bare);
    else
        dict_set(r->affs, bare, (void *)(intptr_t)aff);
}

muc_role muc_default_role(const muc_room *r, muc_aff aff)
{
    switch (aff) {
    case MUC_AFF_OWNER:
    case MUC_AFF_ADMIN:
        return MUC_ROLE_MODERATOR;
    case MUC_AFF_MEMBER:
        return MUC_ROLE_PARTICIPANT;
    case MUC_AFF_OUTCAST:
        return MUC_ROLE_NONE;
    default:
        return r->cfg.moderated ? MUC_ROLE_VISITOR : MUC_ROLE_PARTICIPANT;
    }
}

muc_occupant *muc_occupant_by_jid(const muc_room *r, const char *full)
{
    return dict_get(r->by_jid, full);
}

muc_occupant *muc_occupant_by_nick(const muc_room *r, const char *nick)
{
    return dict_get(r->by_nick, nick);
}

/* Occupants are sessions of this server: each broadcast stanza is serialized straight
 * into each session's stream, once per occupant, instead of being copied for
 * router_send. Occupants on other nodes of the domain get a copy over that node's link
 * (node_rooms.h). */
void muc_send(muc_room *r, const muc_occupant *o, xml_node *stanza)
{
    xml_set_attr(stanza, "to", o->jid);
    if (o->node) {
        node_rooms_send(r->svc, o->node, stanza);
        return;
    }
    c2s *s = router_session(r->svc->srv, o->bare, o->resource);
    if (s && !conn_is_closing(s->conn))
        c2s_send(s, stanza);
}

static char *occupant_jid(const muc_room *r, const char *nick)
{
    return xasprintf("%s/%s", r->jid, nick);
}

/* The payload of a presence worth repeating to others: everything but addressing and
 * the MUC elements (the join element may hold the room password; a client's own muc#user
 * element would let it claim a role). */
static xml_node *presence_payload(const xml_node *stanza)
{
    xml_node *p = xml_new(XMLNS_CLIENT, "presence");
    for (const xml_node *ch = stanza->children; ch; ch = ch->next) {
        if (!ch->name || xml_is(ch, MUC_NS, "x") || xml_is(ch, MUC_NS_USER, "x") ||
            xml_is(ch, XMLNS_NODE, MUC_SESSION_ENDED) || strcmp(ch->name, "error") == 0)
            continue;
        xml_append(p, xml_copy(ch));
    }
    return p;
}

/* What to put in the item of a presence about o. */
typedef struct presence_info {
    const char *type;       /* NULL or "unavailable" */
    const int *codes;       /* for everyone */
    size_t ncodes;
    const int *self_codes;  /* for o only, besides 110 */
    size_t nself;
    const char *actor;      /* nick of the moderator who acted */
    const char *reason;
    const char *new_nick;   /* 303 */
    const xml_node *payload; /* show/status to carry (default: o->presence) */
} presence_info;

static xml_node *build_presence(muc_room *r, const muc_occupant *o, const presence_info *pi,
                                int with_jid, int self)
{
    const xml_node *payload = pi->payload ? pi->payload : o->presence;
    xml_node *p = payload ? xml_copy(payload) : xml_new(XMLNS_CLIENT, "presence");
    char *from = occupant_jid(r, o->nick);
    xml_set_attr(p, "from", from);
    free(from);
    if (pi->type)
        xml_set_attr(p, "type", pi->type);
    xml_node *x = muc_user_x(p);
    xml_node *item = xml_add_child(x, NULL, "item");
    xml_set_attr(item, "affiliation", muc_aff_name(muc_room_aff(r, o->bare)));
    xml_set_attr(item, "role", muc_role_name(pi->type ? MUC_ROLE_NONE : o->role));
    if (with_jid)
        xml_set_attr(item, "jid", o->jid);
    if (pi->new_nick)
        xml_set_attr(item, "nick", pi->new_nick);
    if (pi->actor)
        xml_set_attr(xml_add_child(item, NULL, "actor"), "nick", pi->actor);
    if (pi->reason) {
        xml_node *reason = xml_add_child(item, NULL, "reason");
        xml_add_text(reason, pi->reason, strlen(pi->reason));
    }
    for (size_t i = 0; i < pi->ncodes; i++)
        muc_add_status(x, pi->codes[i]);
    if (self) {
        for (size_t i = 0; i < pi->nself; i++)
            muc_add_status(x, pi->self_codes[i]);
        muc_add_status(x, 110);
    }
    return p;
}

static int sees_jids(const muc_room *r, const muc_occupant *viewer)
{
    return !r->cfg.semi_anonymous || viewer->role == MUC_ROLE_MODERATOR;
}

/* o's presence to every occupant: at most three variants are built (self, with and
 * without the real JID), each serialized once per recipient. */
static void broadcast(muc_room *r, const muc_occupant *o, const presence_info *pi)
{
    xml_node *self = build_presence(r, o, pi, 1, 1);
    xml_node *with = NULL, *without = NULL;
    for (muc_occupant *to = r->first; to; to = to->next) {
        if (to == o) {
            muc_send(r, to, self);
        } else if (sees_jids(r, to)) {
            if (!with)
                with = build_presence(r, o, pi, 1, 0);
            muc_send(r, to, with);
        } else {
            if (!without)
                without = build_presence(r, o, pi, 0, 0);
            muc_send(r, to, without);
        }
    }
    xml_free(self);
    xml_free(with);
    xml_free(without);
}

void muc_room_broadcast_presence(muc_room *r, muc_occupant *o)
{
    presence_info pi = {0};
    broadcast(r, o, &pi);
}

void muc_audit_occupant(muc_room *r, const muc_occupant *o, const char *event,
                        const char *reason)
{
    server *srv = r->svc->srv;
    if (!compliance_enabled(srv))
        return;
    /* The nick last: it may hold spaces and '=' (docs/compliance.md). */
    char *detail = xasprintf("role=%s affiliation=%s%s%s%s%s nick=%s", muc_role_name(o->role),
                             muc_aff_name(muc_room_aff(r, o->bare)), reason ? " reason=" : "",
                             reason ? reason : "", o->node ? " node=" : "",
                             o->node ? o->node : "", o->nick);
    compliance_audit(srv, o->jid, event, r->jid, NULL, detail);
    free(detail);
}

/* Why an occupant was removed, for its room-leave event, from the status codes it gets. */
static const char *removal_reason(const int *codes, size_t ncodes)
{
    for (size_t i = 0; i < ncodes; i++) {
        switch (codes[i]) {
        case 301: return "banned";
        case 307: return "kicked";
        case 321: return "affiliation-changed";
        case 322: return "members-only";
        case 332: return "room-moved";
        case 333: return "disconnected";
        default: break;
        }
    }
    return "removed";
}

static void unlink_occupant(muc_room *r, muc_occupant *o)
{
    dict_del(r->by_nick, o->nick);
    dict_del(r->by_jid, o->jid);
    if (o->prev)
        o->prev->next = o->next;
    else
        r->first = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        r->last = o->prev;
    r->noccupants--;
    occupant_free(o);
}

void muc_room_remove(muc_room *r, muc_occupant *o, const int *codes, size_t ncodes,
                     const char *actor, const char *reason)
{
    presence_info pi = {.type = "unavailable", .codes = codes, .ncodes = ncodes,
                        .actor = actor, .reason = reason};
    xml_node *bare = xml_new(XMLNS_CLIENT, "presence"); /* no show/status when removed */
    pi.payload = bare;
    broadcast(r, o, &pi);
    xml_free(bare);
    muc_audit_occupant(r, o, "room-leave", removal_reason(codes, ncodes));
    unlink_occupant(r, o);
}

void muc_room_status_message(muc_room *r, const int *codes, size_t ncodes)
{
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "type", "groupchat");
    xml_set_attr(m, "from", r->jid);
    char id[17];
    random_token(id, 16);
    xml_set_attr(m, "id", id);
    xml_node *x = muc_user_x(m);
    for (size_t i = 0; i < ncodes; i++)
        muc_add_status(x, codes[i]);
    for (muc_occupant *o = r->first; o; o = o->next)
        muc_send(r, o, m);
    xml_free(m);
}

/* A join refused: the error goes back with the join element (clients match errors to
 * joins by it), minus the password the client sent. */
static void join_error(muc_room *r, const xml_node *stanza, const char *etype, const char *cond,
                       const char *text)
{
    xml_node *err = stanza_error(stanza, etype, cond, text);
    if (!err)
        return;
    xml_node *x = xml_child(err, MUC_NS, "x");
    if (!x) {
        x = xml_new(MUC_NS, "x");
        xml_node *e = xml_child(err, NULL, "error");
        xml_detach(e);
        xml_append(err, x);
        xml_append(err, e);
    }
    xml_node *pw;
    while ((pw = xml_child(x, NULL, "password")) != NULL) {
        xml_detach(pw);
        xml_free(pw);
    }
    router_send(r->svc->srv, err);
}

static int password_ok(const muc_room *r, const xml_node *join)
{
    char *given = join ? xml_child_text(join, NULL, "password") : NULL;
    int ok = given && strlen(given) == strlen(r->cfg.password) &&
             ct_equal(given, r->cfg.password, strlen(given));
    if (given)
        secure_wipe(given, strlen(given));
    free(given);
    return ok;
}

static void split_jid(const char *full, char **bare, char **resource)
{
    const char *slash = strchr(full, '/');
    *bare = slash ? xstrndup(full, (size_t)(slash - full)) : xstrdup(full);
    *resource = xstrdup(slash ? slash + 1 : "");
}

static void link_occupant(muc_room *r, muc_occupant *o)
{
    o->prev = r->last;
    if (r->last)
        r->last->next = o;
    else
        r->first = o;
    r->last = o;
    r->noccupants++;
    dict_set(r->by_nick, o->nick, o);
    dict_set(r->by_jid, o->jid, o);
}

/* What a joiner learns, in the order of XEP-0045 7.2.2 to 7.2.15: who else is here, its
 * own presence (which the others get too), the history it asked for, the subject. */
static void send_state(muc_room *r, muc_occupant *o, int created, const xml_node *join_el)
{
    server *srv = r->svc->srv;
    for (muc_occupant *other = r->first; other; other = other->next) {
        if (other == o)
            continue;
        presence_info none = {0};
        xml_node *p = build_presence(r, other, &none, sees_jids(r, o), 0);
        muc_send(r, o, p);
        xml_free(p);
    }
    int self_codes[3];
    size_t nself = 0;
    if (!r->cfg.semi_anonymous)
        self_codes[nself++] = 100;
    if (compliance_enabled(srv))
        self_codes[nself++] = 170; /* every message is kept in the compliance archive */
    if (created)
        self_codes[nself++] = 201;
    presence_info pi = {.self_codes = self_codes, .nself = nself};
    broadcast(r, o, &pi);
    muc_history_send(r, o, join_el ? xml_child(join_el, NULL, "history") : NULL);
}

static void join(muc_room *r, xml_node *stanza, const char *from, const char *nick, int created)
{
    server *srv = r->svc->srv;
    char *bare, *resource;
    split_jid(from, &bare, &resource);
    muc_aff aff = muc_room_aff(r, bare);
    const xml_node *jx = xml_child(stanza, MUC_NS, "x");
    char text[160];
    if (strlen(nick) > MUC_MAX_NICK) {
        snprintf(text, sizeof text, "nicknames are at most %d bytes long", MUC_MAX_NICK);
        join_error(r, stanza, "modify", "not-acceptable", text);
    } else if (r->locked && aff != MUC_AFF_OWNER) {
        join_error(r, stanza, "cancel", "item-not-found",
                   "this room is being set up by its owner; try again later");
    } else if (aff == MUC_AFF_OUTCAST) {
        join_error(r, stanza, "auth", "forbidden", "you are banned from this room");
    } else if (r->cfg.members_only && aff < MUC_AFF_MEMBER) {
        join_error(r, stanza, "auth", "registration-required", "this room is for members only");
    } else if (r->cfg.password && aff < MUC_AFF_ADMIN && !password_ok(r, jx)) {
        join_error(r, stanza, "auth", "not-authorized",
                   "this room needs a password, and that was not it");
    } else if (muc_occupant_by_nick(r, nick)) {
        join_error(r, stanza, "cancel", "conflict", "that nickname is taken in this room");
    } else if (r->noccupants >= (size_t)srv->cfg.muc_max_occupants ||
               (r->noccupants >= (size_t)r->cfg.max_users && aff < MUC_AFF_ADMIN)) {
        join_error(r, stanza, "wait", "service-unavailable", "the room is full");
    } else {
        muc_occupant *o = xcalloc(1, sizeof *o);
        o->nick = xstrdup(nick);
        o->jid = xstrdup(from);
        o->bare = bare;
        o->resource = resource;
        bare = resource = NULL;
        o->role = muc_default_role(r, aff);
        o->presence = presence_payload(stanza);
        /* Joined over a node link: the room sends to it over that link. */
        const char *at = strchr(o->bare, '@');
        if (r->svc->via_node && at && router_is_local_domain(srv, at + 1))
            o->node = xstrdup(r->svc->via_node);
        link_occupant(r, o);
        /* Before anything the occupant sees: a room message recorded from now on was
         * sent while it was in the room. */
        muc_audit_occupant(r, o, "room-join", NULL);
        send_state(r, o, created, jx);
        log_debug("muc: %s joined %s as %s", o->jid, r->jid, o->nick);
    }
    free(bare);
    free(resource);
    xml_free(stanza);
}

static void change_nick(muc_room *r, muc_occupant *o, xml_node *stanza, const char *nick)
{
    char text[160];
    if (strlen(nick) > MUC_MAX_NICK) {
        snprintf(text, sizeof text, "nicknames are at most %d bytes long", MUC_MAX_NICK);
        join_error(r, stanza, "modify", "not-acceptable", text);
    } else if (muc_occupant_by_nick(r, nick)) {
        join_error(r, stanza, "cancel", "conflict", "that nickname is taken in this room");
    } else {
        static const int nick_code[] = {303};
        presence_info gone = {.type = "unavailable", .codes = nick_code, .ncodes = 1,
                              .new_nick = nick};
        broadcast(r, o, &gone);
        dict_del(r->by_nick, o->nick);
        free(o->nick);
        o->nick = xstrdup(nick);
        dict_set(r->by_nick, o->nick, o);
        xml_free(o->presence);
        o->presence = presence_payload(stanza);
        presence_info back = {0};
        broadcast(r, o, &back);
    }
    xml_free(stanza);
}

void muc_room_presence(muc_room *r, xml_node *stanza, const char *from, const char *nick,
                       int created)
{
    const char *type = xml_get_attr(stanza, "type");
    muc_occupant *o = muc_occupant_by_jid(r, from);
    if (str_eq(type, "unavailable")) {
        /* Leaving: whatever nick the client addressed, it is this session that goes. */
        if (o) {
            xml_node *payload = presence_payload(stanza);
            presence_info pi = {.type = "unavailable", .payload = payload};
            broadcast(r, o, &pi);
            xml_free(payload);
            muc_audit_occupant(r, o, "room-leave",
                               muc_session_ended(stanza) ? "disconnected" : "left");
            unlink_occupant(r, o);
        }
        xml_free(stanza);
    } else if (type) {
        xml_free(stanza); /* probes and subscriptions mean nothing to a room */
    } else if (!o) {
        join(r, stanza, from, nick, created);
    } else if (muc_rate_check(r, stanza, o->bare) < 0) {
        /* Each change goes to every occupant: changes count like messages. Joins and
         * leaves do not (a client with many rooms joins them all at once). */
        xml_free(stanza);
    } else if (strcmp(o->nick, nick) != 0) {
        change_nick(r, o, stanza, nick);
    } else {
        xml_free(o->presence);
        o->presence = presence_payload(stanza);
        const xml_node *jx = xml_child(stanza, MUC_NS, "x");
        if (jx) {
            /* A join from a session already in the room: a client resynchronising (after
             * a lost connection it did not notice, say) gets the whole state again. */
            send_state(r, o, 0, jx);
        } else {
            presence_info pi = {0};
            broadcast(r, o, &pi);
        }
        xml_free(stanza);
    }
}

void muc_room_message(muc_room *r, xml_node *stanza, const char *from, const char *nick)
{
    muc_occupant *o = muc_occupant_by_jid(r, from);
    if (nick)
        muc_message_private(r, stanza, o, nick);
    else if (str_eq(xml_get_attr(stanza, "type"), "groupchat"))
        muc_message_groupchat(r, stanza, o);
    else
        muc_message_other(r, stanza, o, from);
}
