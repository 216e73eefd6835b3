/* room_events.c - what rooms send, as events: occupants' presence (with the status codes
 * that say who entered, left, was kicked or banned, changed nickname), our own join and
 * exit, group chat messages (live, from the room's history, from its archive, each
 * delivered once by its stanza-id), subject changes, private messages through the room,
 * invitations, and the room's errors in words a user understands. */
#include "../common/util.h"
#include "rooms_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CODES 16 /* status codes read from one presence */

typedef struct muc_info {
    int codes[MAX_CODES];
    size_t ncodes;
    const xml_node *item;   /* <item affiliation role addr nick/> */
    const char *actor;      /* the moderator's nick (kick, ban) */
    char *reason;
    const xml_node *destroy;
} muc_info;

static int has_code(const muc_info *m, int code)
{
    for (size_t i = 0; i < m->ncodes; i++)
        if (m->codes[i] == code)
            return 1;
    return 0;
}

static void read_muc(const xml_node *st, muc_info *m)
{
    memset(m, 0, sizeof *m);
    const xml_node *x = xml_child(st, XMLNS_MUC_USER, "x");
    if (!x)
        return;
    for (const xml_node *s = xml_child(x, XMLNS_MUC_USER, "status"); s && m->ncodes < MAX_CODES;
         s = xml_next(s, XMLNS_MUC_USER, "status")) {
        const char *c = xml_get_attr(s, "code");
        if (c)
            m->codes[m->ncodes++] = atoi(c);
    }
    m->item = xml_child(x, XMLNS_MUC_USER, "item");
    const xml_node *actor = m->item ? xml_child(m->item, XMLNS_MUC_USER, "actor") : NULL;
    m->actor = actor ? xml_get_attr(actor, "nick") : NULL;
    m->destroy = xml_child(x, XMLNS_MUC_USER, "destroy");
    /* a destroyed room's reason is the <destroy/>'s (its <item/> has none) */
    const xml_node *rs = m->destroy ? m->destroy : m->item;
    m->reason = rs ? xml_child_text(rs, XMLNS_MUC_USER, "reason") : NULL;
    if (m->reason && !*m->reason) {
        free(m->reason);
        m->reason = NULL;
    }
}

static const char *item_attr(const muc_info *m, const char *name)
{
    return m->item ? xml_get_attr(m->item, name) : NULL;
}

/* Why someone (or we) left, from the status codes. */
static int exit_change(const muc_info *m)
{
    if (m->destroy)
        return PARLEY_ROOM_DESTROYED;
    if (has_code(m, 301))
        return PARLEY_ROOM_BANNED;
    if (has_code(m, 307))
        return PARLEY_ROOM_KICKED;
    if (has_code(m, 321) || has_code(m, 322))
        return PARLEY_ROOM_REMOVED;
    if (has_code(m, 332) || has_code(m, 333))
        return PARLEY_ROOM_SHUTDOWN;
    return PARLEY_ROOM_EXITED;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* ------------------------------------------------------------------ presence */

static void presence_event(parley *p, room *r, const xml_node *pres, const muc_info *m,
                           const char *nick, int type, int change, int self)
{
    char *show = xml_child_text(pres, XMLNS_CLIENT, "show");
    char *status = xml_child_text(pres, XMLNS_CLIENT, "status");
    parley_event ev = {0};
    ev.type = type;
    ev.from = xml_get_attr(pres, "from");
    ev.room = r->jid;
    ev.nick = nick;
    ev.real_jid = item_attr(m, "jid");
    ev.role = item_attr(m, "role");
    ev.affiliation = item_attr(m, "affiliation");
    ev.pres_type = xml_get_attr(pres, "type");
    ev.show = show && *show ? show : NULL;
    ev.status = status && *status ? status : NULL;
    ev.new_nick = change == PARLEY_ROOM_NICK ? item_attr(m, "nick") : NULL;
    ev.actor = m->actor;
    ev.reason = m->reason;
    ev.room_change = change;
    ev.is_self = self;
    ev.created = has_code(m, 201);
    ev.stanza = (const parley_stanza *)pres;
    rooms_emit(p, &ev);
    free(show);
    free(status);
}

static void join_refused(parley *p, room *r, const xml_node *pres)
{
    char *text = im_error_text(pres);
    char *addr = xstrdup(r->jid);
    rooms_forget(p, addr); /* before the event: the application may try again from it */
    rooms_error(p, addr, im_error_code(pres), PARLEY_ROOM_REFUSED, xml_get_attr(pres, "id"),
                "cannot join %s: %s (%s)", addr, rooms_refusal_words(pres), text);
    free(addr);
    free(text);
}

static void occupant_set(room *r, const char *nick, const muc_info *m, const xml_node *pres)
{
    occupant *o = dict_get(r->occupants, nick);
    if (!o) {
        if (r->noccupants >= EXT_MAX_OCCUPANTS)
            return;
        o = xcalloc(1, sizeof *o);
        o->nick = xstrdup(nick);
        dict_set(r->occupants, nick, o);
        r->noccupants++;
    }
    free(o->jid);
    free(o->role);
    free(o->affiliation);
    free(o->show);
    o->jid = dup_or_null(item_attr(m, "jid"));
    o->role = dup_or_null(item_attr(m, "role"));
    o->affiliation = dup_or_null(item_attr(m, "affiliation"));
    o->show = xml_child_text(pres, XMLNS_CLIENT, "show");
    if (o->show && !*o->show) {
        free(o->show);
        o->show = NULL;
    }
}

static void occupant_drop(room *r, const char *nick)
{
    occupant *o = dict_del(r->occupants, nick);
    if (o) {
        rooms_occupant_free(o);
        r->noccupants--;
    }
}

static void self_available(parley *p, room *r, const xml_node *pres, const muc_info *m)
{
    free(r->role);
    free(r->affiliation);
    r->role = dup_or_null(item_attr(m, "role"));
    r->affiliation = dup_or_null(item_attr(m, "affiliation"));
    if (r->phase == ROOM_JOINED) {
        presence_event(p, r, pres, m, r->nick, PARLEY_EV_ROOM_PRESENCE, PARLEY_ROOM_CHANGED, 1);
        return;
    }
    r->phase = ROOM_JOINED;
    if (has_code(m, 201))
        rooms_instant(p, r);
    /* the archive's history before anything said from now on (archive.c holds it) */
    if (r->has_mam)
        archive_sync_room(p, r->jid);
    presence_event(p, r, pres, m, r->nick, PARLEY_EV_ROOM_JOINED, 0, 1);
}

static void self_unavailable(parley *p, room *r, const xml_node *pres, const muc_info *m)
{
    if (has_code(m, 303) && item_attr(m, "nick")) {
        presence_event(p, r, pres, m, r->nick, PARLEY_EV_ROOM_PRESENCE, PARLEY_ROOM_NICK, 1);
        occupant_drop(r, r->nick);
        free(r->nick);
        r->nick = xstrdup(item_attr(m, "nick"));
        return;
    }
    char *addr = xstrdup(r->jid), *nick = xstrdup(r->nick);
    rooms_forget(p, addr); /* not rejoined: we left, or were put out */
    parley_event ev = {0};
    ev.type = PARLEY_EV_ROOM_LEFT;
    ev.from = xml_get_attr(pres, "from");
    ev.room = addr;
    ev.nick = nick;
    ev.is_self = 1;
    ev.room_change = exit_change(m);
    ev.actor = m->actor;
    ev.reason = m->reason;
    ev.stanza = (const parley_stanza *)pres;
    rooms_emit(p, &ev);
    free(addr);
    free(nick);
}

int rooms_presence(parley *p, const xml_node *pres)
{
    const char *from = xml_get_attr(pres, "from");
    char *full = from ? jid_normalize(from) : NULL;
    char *bare = full ? jid_normalize_bare(full) : NULL;
    room *r = rooms_get(p, bare);
    if (!r) {
        free(full);
        free(bare);
        return 0;
    }
    const char *slash = strchr(full, '/');
    const char *nick = slash ? slash + 1 : NULL;
    const char *type = xml_get_attr(pres, "type");
    muc_info m;
    read_muc(pres, &m);
    int self = has_code(&m, 110) || (nick && strcmp(nick, r->nick) == 0);
    if (str_eq(type, "error")) {
        if (r->phase != ROOM_JOINED)
            join_refused(p, r, pres);
        else {
            char *text = im_error_text(pres);
            rooms_error(p, r->jid, im_error_code(pres), 0, xml_get_attr(pres, "id"), "%s: %s",
                        r->jid, text);
            free(text);
        }
    } else if (!nick || (type && !str_eq(type, "unavailable"))) {
        /* presence from the room itself, subscriptions: nothing for an occupant */
    } else if (str_eq(type, "unavailable")) {
        if (self) {
            self_unavailable(p, r, pres, &m);
        } else {
            int change = has_code(&m, 303) && item_attr(&m, "nick") ? PARLEY_ROOM_NICK
                                                                      : exit_change(&m);
            occupant_drop(r, nick);
            if (r->phase == ROOM_JOINED)
                presence_event(p, r, pres, &m, nick, PARLEY_EV_ROOM_PRESENCE, change, 0);
        }
    } else if (self) {
        occupant_set(r, nick, &m, pres);
        self_available(p, r, pres, &m);
    } else {
        int known = dict_get(r->occupants, nick) != NULL;
        occupant_set(r, nick, &m, pres);
        /* those already there when we join come before our own presence: not news */
        if (r->phase == ROOM_JOINED)
            presence_event(p, r, pres, &m, nick, PARLEY_EV_ROOM_PRESENCE,
                           known ? PARLEY_ROOM_CHANGED : PARLEY_ROOM_ENTERED, 0);
    }
    free(m.reason);
    free(full);
    free(bare);
    return 1;
}

/* ------------------------------------------------------------------ messages */

static char *body_text(const xml_node *msg)
{
    const xml_node *b = xml_child(msg, XMLNS_CLIENT, "body");
    return b ? xml_text(b) : NULL;
}

/* A group chat (or private) message from room/nick, once by its stanza-id. Returns 1 if
 * delivered. */
static int deliver(parley *p, const char *room_jid, const char *nick, const xml_node *msg,
                   const char *sid, int archived, long long ts)
{
    if (archive_seen(p, room_jid, sid))
        return 0;
    room *r = rooms_get(p, room_jid);
    char *body = body_text(msg);
    parley_event ev = {0};
    ev.type = PARLEY_EV_ROOM_MESSAGE;
    ev.from = xml_get_attr(msg, "from");
    ev.to = xml_get_attr(msg, "to");
    ev.id = xml_get_attr(msg, "id");
    ev.msg_type = xml_get_attr(msg, "type");
    ev.body = body;
    ev.room = room_jid;
    ev.nick = nick;
    ev.is_self = r && nick && strcmp(nick, r->nick) == 0;
    ev.outgoing = ev.is_self;
    ev.stanza_id = sid;
    ev.archived = archived;
    ev.timestamp_ms = ts;
    ev.stanza = (const parley_stanza *)msg;
    rooms_emit(p, &ev);
    free(body);
    return 1;
}

/* An invitation (XEP-0045 7.8.2, mediated, or XEP-0249, direct). */
static int invitation(parley *p, const xml_node *msg, const char *from_bare)
{
    const xml_node *x = xml_child(msg, XMLNS_MUC_USER, "x");
    const xml_node *inv = x ? xml_child(x, XMLNS_MUC_USER, "invite") : NULL;
    const xml_node *direct = xml_child(msg, "jabber:x:conference", "x");
    if (!inv && !direct)
        return 0;
    char *room_jid = inv ? xstrdup(from_bare)
                         : jid_normalize_bare(xml_get_attr(direct, "jid") ? xml_get_attr(direct, "jid") : "");
    char *reason = inv ? xml_child_text(inv, XMLNS_MUC_USER, "reason") : NULL;
    char *password = x ? xml_child_text(x, XMLNS_MUC_USER, "password") : NULL;
    if (room_jid) {
        parley_event ev = {0};
        ev.type = PARLEY_EV_ROOM_INVITE;
        ev.room = room_jid;
        /* mediated: the room says who invited; direct: the sender did */
        ev.from = inv ? xml_get_attr(inv, "from") : xml_get_attr(msg, "from");
        ev.reason = reason && *reason ? reason
                    : direct ? xml_get_attr(direct, "reason") : NULL;
        ev.password = password && *password ? password
                      : direct ? xml_get_attr(direct, "password") : NULL;
        ev.stanza = (const parley_stanza *)msg;
        rooms_emit(p, &ev);
    }
    free(room_jid);
    free(reason);
    if (password) {
        secure_wipe(password, strlen(password));
        free(password);
    }
    return 1;
}

int rooms_message(parley *p, const xml_node *msg)
{
    const char *from = xml_get_attr(msg, "from");
    char *full = from ? jid_normalize(from) : NULL;
    char *bare = full ? jid_normalize_bare(full) : NULL;
    int done = 0;
    room *r = rooms_get(p, bare);
    const char *type = xml_get_attr(msg, "type");
    const char *slash = full ? strchr(full, '/') : NULL;
    const char *nick = slash ? slash + 1 : NULL;
    if (!bare) {
        done = 0;
    } else if (!str_eq(type, "error") && invitation(p, msg, bare)) {
        done = 1;
    } else if (!r) {
        done = 0; /* not a room of ours: the core's, as before */
    } else if (str_eq(type, "error")) {
        char *text = im_error_text(msg);
        rooms_error(p, r->jid, im_error_code(msg), 0, xml_get_attr(msg, "id"), "%s: %s",
                    r->jid, text);
        free(text);
        done = 1;
    } else if (str_eq(type, "groupchat")) {
        const xml_node *subject = xml_child(msg, XMLNS_CLIENT, "subject");
        if (subject && !xml_child(msg, XMLNS_CLIENT, "body")) {
            free(r->subject);
            r->subject = xml_text(subject);
            parley_event ev = {0};
            ev.type = PARLEY_EV_ROOM_SUBJECT;
            ev.from = from;
            ev.room = r->jid;
            ev.nick = nick;
            ev.subject = r->subject;
            ev.stanza = (const parley_stanza *)msg;
            rooms_emit(p, &ev);
        } else if (xml_child(msg, XMLNS_CLIENT, "body") && !archive_hold(p, r->jid, msg)) {
            /* nick NULL: the room itself speaking (a notice) */
            const char *sid = ext_stanza_id(msg, r->jid);
            long long ts = ext_delay_ms(msg);
            /* a live message is the newest of the room's archive */
            if (sid && !ts)
                parley_archive_set_last(p, r->jid, sid);
            deliver(p, r->jid, nick, msg, sid, ts != 0, ts);
        }
        done = 1; /* status messages (104...) and chat states end here too */
    } else if (nick && xml_child(msg, XMLNS_CLIENT, "body")) {
        deliver(p, r->jid, nick, msg, NULL, 0, ext_delay_ms(msg)); /* private, via the room */
        done = 1;
    } else {
        done = 1; /* chat states of private conversations, room status */
    }
    free(full);
    free(bare);
    return done;
}

int rooms_archived(parley *p, const char *room_jid, const xml_node *msg, const char *id,
                   long long ts_ms)
{
    const char *from = xml_get_attr(msg, "from");
    const char *slash = from ? strchr(from, '/') : NULL;
    if (!str_eq(xml_get_attr(msg, "type"), "groupchat") || !slash ||
        !xml_child(msg, XMLNS_CLIENT, "body"))
        return 0;
    return deliver(p, room_jid, slash + 1, msg, id, 1, ts_ms);
}
