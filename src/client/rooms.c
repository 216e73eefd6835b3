/* rooms.c - XEP-0045 rooms as an occupant: the rooms of a handle, joining (after asking
 * the room whether it keeps an archive, which then supplies the history), leaving, what
 * the application may read of them (occupants, subject, our nickname), rejoining after a
 * reconnect. What rooms send is room_events.c. Nothing a room sends is ever marked
 * end-to-end encrypted: group chats are readable by the server. */
#include "../common/util.h"
#include "rooms_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ state */

rooms_state *rooms_of(parley *p)
{
    ext_state *x = ext_of(p);
    if (!x->rooms) {
        x->rooms = xcalloc(1, sizeof *x->rooms);
        x->rooms->rooms = dict_new();
    }
    return x->rooms;
}

room *rooms_get(const parley *p, const char *addr)
{
    if (!p->ext || !p->ext->rooms || !addr)
        return NULL;
    return dict_get(p->ext->rooms->rooms, addr);
}

void rooms_occupant_free(void *v)
{
    occupant *o = v;
    if (!o)
        return;
    free(o->nick);
    free(o->jid);
    free(o->role);
    free(o->affiliation);
    free(o->show);
    free(o);
}

void rooms_clear_occupants(room *r)
{
    dict_free(r->occupants, rooms_occupant_free);
    r->occupants = dict_new();
    r->noccupants = 0;
}

static void room_free(void *v)
{
    room *r = v;
    if (!r)
        return;
    free(r->jid);
    free(r->nick);
    if (r->password) {
        secure_wipe(r->password, strlen(r->password));
        free(r->password);
    }
    dict_free(r->occupants, rooms_occupant_free);
    free(r->subject);
    free(r->role);
    free(r->affiliation);
    free(r);
}

void rooms_free(parley *p)
{
    if (!p->ext || !p->ext->rooms)
        return;
    dict_free(p->ext->rooms->rooms, room_free);
    room_ops_free_waiting(p->ext->rooms);
    free(p->ext->rooms->service);
    free(p->ext->rooms);
    p->ext->rooms = NULL;
}

void rooms_forget(parley *p, const char *addr)
{
    room_free(dict_del(rooms_of(p)->rooms, addr));
}

/* ------------------------------------------------------------------ events */

void rooms_emit(parley *p, parley_event *ev)
{
    ev->encrypted = 0; /* never, in a room: see the file's comment */
    client_emit(p, ev);
}

void rooms_error(parley *p, const char *room_jid, parley_error err, int change, const char *id,
                 const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    parley_event ev = {0};
    ev.type = PARLEY_EV_ROOM_ERROR;
    ev.room = room_jid;
    ev.from = room_jid;
    ev.id = id;
    ev.error = err;
    ev.error_text = text;
    ev.room_change = change;
    rooms_emit(p, &ev);
}

/* A join refusal in words a user understands, the server's text after it. */
const char *rooms_refusal_words(const xml_node *stanza)
{
    static const struct {
        const char *cond, *words;
    } map[] = {
        {"not-authorized", "wrong or missing room password"},
        {"registration-required", "the room is for members only"},
        {"forbidden", "you are banned from this room"},
        {"conflict", "that nickname is already taken in the room"},
        {"service-unavailable", "the room is full"},
        {"item-not-found", "the room is locked or does not exist"},
        {"not-allowed", "you may not create rooms here"},
        {"not-acceptable", "the room does not accept this nickname"},
        {"jid-malformed", "no nickname given"},
    };
    const xml_node *err = xml_child(stanza, NULL, "error");
    for (size_t i = 0; err && i < ARRAY_LEN(map); i++)
        if (xml_child(err, XMLNS_STANZAS, map[i].cond))
            return map[i].words;
    return "refused";
}

/* ------------------------------------------------------------------ joining */

static void on_room_info(parley *p, const parley_stanza *res, parley_error err, void *ud);

static void send_join(parley *p, room *r)
{
    xml_node *pr = xml_new(XMLNS_CLIENT, "presence");
    char *to = xasprintf("%s/%s", r->jid, r->nick);
    xml_set_attr(pr, "to", to);
    free(to);
    xml_node *x = xml_add_child(pr, XMLNS_MUC, "x");
    if (r->password)
        xml_add_text(xml_add_child(x, NULL, "password"), r->password, strlen(r->password));
    int policy_off = p->policy.known && p->policy.disable_im_history;
    if (p->opt.archive_sync > 0 || policy_off) {
        /* the archive supplies the history when the room has one (none twice); none at
         * all when the organisation disables history */
        char n[16];
        snprintf(n, sizeof n, "%d", r->has_mam || policy_off ? 0 : p->opt.archive_sync);
        xml_set_attr(xml_add_child(x, NULL, "history"), "maxstanzas", n);
    }
    r->phase = ROOM_JOINING;
    session_send(p, pr);
    xml_free(pr);
}

static void start_join(parley *p, room *r)
{
    r->phase = ROOM_DISCO;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "get");
    xml_set_attr(iq, "to", r->jid);
    xml_add_child(iq, XMLNS_DISCO_INFO, "query");
    ext_send_iq(p, iq, on_room_info, xstrdup(r->jid));
}

static void on_room_info(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    char *addr = ud;
    room *r = rooms_get(p, addr);
    free(addr);
    if (!r || r->phase != ROOM_DISCO || !ext_online(p))
        return; /* left meanwhile, or the session ended (rejoined at the next one) */
    r->has_mam = 0;
    const xml_node *q = err == PARLEY_OK ? xml_child((const xml_node *)res, XMLNS_DISCO_INFO,
                                                     "query") : NULL;
    for (const xml_node *f = q ? xml_child(q, XMLNS_DISCO_INFO, "feature") : NULL; f;
         f = xml_next(f, XMLNS_DISCO_INFO, "feature"))
        if (str_eq(xml_get_attr(f, "var"), XMLNS_MAM))
            r->has_mam = 1;
    /* an error (no such room yet) is no reason not to try: joining creates it */
    send_join(p, r);
}

/* XEP-0045 10.1.2: a room we created is opened with the service's defaults. */
void rooms_instant(parley *p, const room *r)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_set_attr(iq, "to", r->jid);
    xml_node *x = xml_add_child(xml_add_child(iq, XMLNS_MUC_OWNER, "query"), XMLNS_XDATA, "x");
    xml_set_attr(x, "type", "submit");
    ext_send_iq(p, iq, NULL, NULL);
}

parley_error parley_room_join(parley *p, const char *room_name, const char *nick,
                              const char *password)
{
    if (!p || !room_name)
        return PARLEY_ERR_INVALID;
    char *addr = room_ops_jid(p, room_name);
    const char *n = nick ? nick : p->account.local;
    char *full = addr && n && *n ? xasprintf("%s/%s", addr, n) : NULL;
    char *norm = full ? jid_normalize(full) : NULL;
    free(full);
    parley_error e = PARLEY_ERR_INVALID;
    if (!norm || strlen(n) > EXT_MAX_NICK || (password && strlen(password) > EXT_MAX_PASSWORD))
        goto out;
    const char *nk = strchr(norm, '/') + 1;
    rooms_state *rs = rooms_of(p);
    room *r = dict_get(rs->rooms, addr);
    if (r) {
        e = strcmp(r->nick, nk) == 0 ? PARLEY_OK : PARLEY_ERR_STATE;
        goto out;
    }
    if (dict_size(rs->rooms) >= EXT_MAX_ROOMS) {
        e = PARLEY_ERR_STATE;
        goto out;
    }
    r = xcalloc(1, sizeof *r);
    r->jid = xstrdup(addr);
    r->nick = xstrdup(nk);
    r->password = password && *password ? xstrdup(password) : NULL;
    r->occupants = dict_new();
    dict_set(rs->rooms, r->jid, r);
    if (ext_online(p))
        start_join(p, r);
    e = PARLEY_OK;
out:
    free(norm);
    free(addr);
    return e;
}

parley_error parley_room_leave(parley *p, const char *room_name, const char *status)
{
    if (!p || !room_name || (status && strlen(status) > EXT_MAX_TEXT))
        return PARLEY_ERR_INVALID;
    char *addr = room_ops_jid(p, room_name);
    room *r = addr ? rooms_get(p, addr) : NULL;
    free(addr);
    if (!r)
        return PARLEY_ERR_STATE;
    if (r->phase == ROOM_JOINED || r->phase == ROOM_JOINING) {
        /* the room's unavailable presence (110) ends it: PARLEY_EV_ROOM_LEFT then */
        xml_node *pr = xml_new(XMLNS_CLIENT, "presence");
        char *to = xasprintf("%s/%s", r->jid, r->nick);
        xml_set_attr(pr, "to", to);
        xml_set_attr(pr, "type", "unavailable");
        free(to);
        if (status)
            xml_add_text(xml_add_child(pr, NULL, "status"), status, strlen(status));
        session_send(p, pr);
        xml_free(pr);
        if (r->phase == ROOM_JOINED)
            return PARLEY_OK;
    }
    parley_event ev = {0};
    ev.type = PARLEY_EV_ROOM_LEFT;
    ev.room = r->jid;
    ev.nick = r->nick;
    ev.is_self = 1;
    ev.room_change = PARLEY_ROOM_EXITED;
    rooms_emit(p, &ev);
    rooms_forget(p, r->jid);
    return PARLEY_OK;
}

static int rejoin(void *ud, const char *key, void *value)
{
    room *r = value;
    if (r->phase == ROOM_WANTED)
        start_join(ud, r);
    return 0;
}

void rooms_on_online(parley *p)
{
    /* start_join only sends: the table does not change while it is walked */
    if (p->ext && p->ext->rooms)
        dict_each(p->ext->rooms->rooms, rejoin, p);
}

static int lost(void *ud, const char *key, void *value)
{
    parley *p = ud;
    room *r = value;
    if (r->phase == ROOM_JOINED) {
        parley_event ev = {0};
        ev.type = PARLEY_EV_ROOM_LEFT;
        ev.room = r->jid;
        ev.nick = r->nick;
        ev.is_self = 1;
        ev.room_change = PARLEY_ROOM_DISCONNECTED;
        rooms_emit(p, &ev);
    }
    r->phase = ROOM_WANTED;
    rooms_clear_occupants(r);
    return 0;
}

void rooms_on_offline(parley *p)
{
    if (p->ext && p->ext->rooms)
        dict_each(p->ext->rooms->rooms, lost, p);
}

/* ------------------------------------------------------------------ reading */

const char *parley_room_nick(const parley *p, const char *room_name)
{
    char *addr = p && room_name ? jid_normalize_bare(room_name) : NULL;
    room *r = rooms_get(p, addr);
    free(addr);
    return r && r->phase == ROOM_JOINED ? r->nick : NULL;
}

const char *parley_room_subject(const parley *p, const char *room_name)
{
    char *addr = p && room_name ? jid_normalize_bare(room_name) : NULL;
    room *r = rooms_get(p, addr);
    free(addr);
    return r && r->subject && *r->subject ? r->subject : NULL;
}

typedef struct each_ctx {
    const room *r;
    int (*fn)(const parley_occupant *o, void *ud);
    void *ud;
} each_ctx;

static int each_occupant(void *ud, const char *key, void *value)
{
    each_ctx *c = ud;
    const occupant *o = value;
    parley_occupant po = {o->nick, o->jid, o->role, o->affiliation, o->show,
                          strcmp(o->nick, c->r->nick) == 0};
    return c->fn(&po, c->ud);
}

parley_error parley_room_occupants(const parley *p, const char *room_name,
                                   int (*fn)(const parley_occupant *o, void *ud), void *ud)
{
    if (!p || !room_name || !fn)
        return PARLEY_ERR_INVALID;
    char *addr = jid_normalize_bare(room_name);
    room *r = rooms_get(p, addr);
    free(addr);
    if (!r || r->phase != ROOM_JOINED)
        return PARLEY_ERR_STATE;
    each_ctx c = {r, fn, ud};
    dict_each(r->occupants, each_occupant, &c);
    return PARLEY_OK;
}
