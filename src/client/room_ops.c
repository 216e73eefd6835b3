/* room_ops.c - what the application asks of rooms: messages, the subject, invitations,
 * kicks, bans and affiliations (muc#admin), the list of rooms on a service (disco#items), and finding
 * the server's group chat service at sign-in (disco#items, then disco#info on each). */
#include "../common/util.h"
#include "rooms_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DISCO_ITEMS 32 /* items of the server asked what they are */

struct list_req {
    parley_rooms_fn cb;
    void *ud;
    list_req *next;
};

static void send_list(parley *p, const char *service, list_req *l);

void room_ops_free_waiting(rooms_state *rs)
{
    while (rs->waiting) {
        list_req *l = rs->waiting;
        rs->waiting = l->next;
        free(l);
    }
}

/* One discovery answer less: once all are in, the lists asked meanwhile go out (or
 * fail: the server has no group chat service). */
static void discovery_step(parley *p)
{
    rooms_state *rs = rooms_of(p);
    if (--rs->disco_pending > 0)
        return;
    while (rs->waiting) {
        list_req *l = rs->waiting;
        rs->waiting = l->next;
        l->next = NULL;
        if (rs->service && ext_online(p)) {
            send_list(p, rs->service, l);
        } else {
            l->cb(p, NULL, 0, ext_online(p) ? PARLEY_ERR_PROTOCOL : PARLEY_ERR_STATE,
                  ext_online(p) ? "the server offers no group chat service" : "not connected",
                  l->ud);
            free(l);
        }
        rs = rooms_of(p);
    }
}

/* ------------------------------------------------------------------ the service */

static void on_service_info(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    char *addr = ud;
    rooms_state *rs = rooms_of(p);
    const xml_node *q = err == PARLEY_OK ? xml_child((const xml_node *)res, XMLNS_DISCO_INFO,
                                                     "query") : NULL;
    for (const xml_node *id = q ? xml_child(q, XMLNS_DISCO_INFO, "identity") : NULL;
         id && !rs->service; id = xml_next(id, XMLNS_DISCO_INFO, "identity"))
        if (str_eq(xml_get_attr(id, "category"), "conference") &&
            str_eq(xml_get_attr(id, "type"), "text")) {
            rs->service = addr;
            addr = NULL;
        }
    free(addr);
    discovery_step(p);
}

static void on_server_items(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    const xml_node *q = err == PARLEY_OK ? xml_child((const xml_node *)res, XMLNS_DISCO_ITEMS,
                                                     "query") : NULL;
    size_t n = 0;
    for (const xml_node *it = q ? xml_child(q, XMLNS_DISCO_ITEMS, "item") : NULL;
         it && n < MAX_DISCO_ITEMS && ext_online(p);
         it = xml_next(it, XMLNS_DISCO_ITEMS, "item"), n++) {
        char *addr = xml_get_attr(it, "jid") ? jid_normalize(xml_get_attr(it, "jid")) : NULL;
        if (!addr || xml_get_attr(it, "node")) {
            free(addr);
            continue;
        }
        xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
        xml_set_attr(iq, "type", "get");
        xml_set_attr(iq, "to", addr);
        xml_add_child(iq, XMLNS_DISCO_INFO, "query");
        rooms_of(p)->disco_pending++;
        ext_send_iq(p, iq, on_service_info, addr);
    }
    discovery_step(p);
}

void room_ops_discover(parley *p)
{
    rooms_state *rs = rooms_of(p);
    free(rs->service); /* the server may have changed across the reconnect */
    rs->service = NULL;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "get");
    xml_set_attr(iq, "to", p->account.domain);
    xml_add_child(iq, XMLNS_DISCO_ITEMS, "query");
    rs->disco_pending = 1;
    ext_send_iq(p, iq, on_server_items, NULL);
}

const char *parley_room_service(const parley *p)
{
    return p && p->ext && p->ext->rooms ? p->ext->rooms->service : NULL;
}

char *room_ops_jid(const parley *p, const char *name)
{
    if (!name || !*name || strchr(name, '/'))
        return NULL;
    char *full;
    if (strchr(name, '@'))
        full = xstrdup(name);
    else /* before the service is known, the usual name of it */
        full = parley_room_service(p) ? xasprintf("%s@%s", name, parley_room_service(p))
                                      : xasprintf("%s@conference.%s", name, p->account.domain);
    jid j;
    char *bare = NULL;
    if (jid_parse(full, &j) == 0) {
        if (j.local && !j.resource)
            bare = jid_bare(&j);
        jid_clear(&j);
    }
    free(full);
    return bare;
}

/* ------------------------------------------------------------------ messages */

/* The room, if we are in it (for what needs us to be). */
static room *joined(parley *p, const char *name, parley_error *e)
{
    char *addr = p ? room_ops_jid(p, name) : NULL;
    room *r = addr ? rooms_get(p, addr) : NULL;
    *e = !addr ? PARLEY_ERR_INVALID
               : !r || r->phase != ROOM_JOINED || !ext_online(p) ? PARLEY_ERR_STATE : PARLEY_OK;
    free(addr);
    return *e == PARLEY_OK ? r : NULL;
}

static void add_text(xml_node *parent, const char *name, const char *text)
{
    xml_add_text(xml_add_child(parent, NULL, name), text, strlen(text));
}

parley_error parley_room_send(parley *p, const char *room_name, const char *body,
                              char *id_out, size_t id_len)
{
    parley_error e;
    room *r = body ? joined(p, room_name, &e) : NULL;
    if (!body)
        return PARLEY_ERR_INVALID;
    if (!r)
        return e;
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    char *id = session_new_id(p);
    xml_set_attr(m, "to", r->jid);
    xml_set_attr(m, "type", "groupchat");
    xml_set_attr(m, "id", id);
    add_text(m, "body", body); /* plaintext: group chats are never end-to-end encrypted */
    session_send(p, m);
    xml_free(m);
    if (id_out && id_len)
        snprintf(id_out, id_len, "%s", id);
    free(id);
    return PARLEY_OK;
}

parley_error parley_room_set_subject(parley *p, const char *room_name, const char *subject)
{
    parley_error e;
    if (!subject || strlen(subject) > EXT_MAX_TEXT)
        return PARLEY_ERR_INVALID;
    room *r = joined(p, room_name, &e);
    if (!r)
        return e;
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "to", r->jid);
    xml_set_attr(m, "type", "groupchat");
    add_text(m, "subject", subject);
    session_send(p, m);
    xml_free(m);
    return PARLEY_OK;
}

parley_error parley_room_invite(parley *p, const char *room_name, const char *who,
                                const char *reason)
{
    parley_error e;
    char *invitee = who ? jid_normalize_bare(who) : NULL;
    if (!invitee || (reason && strlen(reason) > EXT_MAX_TEXT)) {
        free(invitee);
        return PARLEY_ERR_INVALID;
    }
    room *r = joined(p, room_name, &e);
    if (r) {
        xml_node *m = xml_new(XMLNS_CLIENT, "message");
        xml_set_attr(m, "to", r->jid);
        xml_node *inv = xml_add_child(xml_add_child(m, XMLNS_MUC_USER, "x"), NULL, "invite");
        xml_set_attr(inv, "to", invitee);
        if (reason && *reason)
            add_text(inv, "reason", reason);
        session_send(p, m);
        xml_free(m);
    }
    free(invitee);
    return e;
}

/* ------------------------------------------------------------------ moderation */

typedef struct admin_req {
    char *room;
    char *what;     /* "kick bob", for the error text */
    parley_iq_fn cb;
    parley_room_done_fn done;
    void *ud;
} admin_req;

static void on_admin(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    admin_req *a = ud;
    char *text = err == PARLEY_OK ? NULL
                 : res ? im_error_text((const xml_node *)res) : xstrdup(parley_strerror(err));
    if (a->cb)
        a->cb(p, res, err, a->ud);
    else if (a->done)
        a->done(p, a->room, err, text, a->ud);
    else if (err != PARLEY_OK)
        rooms_error(p, a->room, err, 0, NULL, "cannot %s in %s: %s", a->what, a->room, text);
    free(text);
    free(a->room);
    free(a->what);
    free(a);
}

void room_ops_request(parley *p, const char *room_jid, xml_node *iq, const char *what,
                      parley_iq_fn cb, parley_room_done_fn done, void *ud)
{
    admin_req *a = xcalloc(1, sizeof *a);
    a->room = xstrdup(room_jid);
    a->what = xstrdup(what);
    a->cb = cb;
    a->done = done;
    a->ud = ud;
    ext_send_iq(p, iq, on_admin, a);
}

/* A muc#admin request with one item: attr=value gets set=set_value. */
static void send_admin(parley *p, const char *room_jid, const char *attr, const char *value,
                       const char *set, const char *set_value, const char *reason,
                       const char *what, parley_iq_fn cb, parley_room_done_fn done, void *ud)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_set_attr(iq, "to", room_jid);
    xml_node *item = xml_add_child(xml_add_child(iq, XMLNS_MUC_ADMIN, "query"), NULL, "item");
    xml_set_attr(item, attr, value);
    xml_set_attr(item, set, set_value);
    if (reason && *reason)
        add_text(item, "reason", reason);
    char *w = xasprintf("%s %s", what, value);
    room_ops_request(p, room_jid, iq, w, cb, done, ud);
    free(w);
}

static parley_error admin(parley *p, const char *room_name, const char *attr, const char *value,
                          const char *set, const char *set_value, const char *reason,
                          const char *what, parley_iq_fn cb, void *ud)
{
    parley_error e;
    if (reason && strlen(reason) > EXT_MAX_TEXT)
        return PARLEY_ERR_INVALID;
    room *r = joined(p, room_name, &e);
    if (!r)
        return e;
    send_admin(p, r->jid, attr, value, set, set_value, reason, what, cb, NULL, ud);
    return PARLEY_OK;
}

parley_error parley_room_kick(parley *p, const char *room_name, const char *nick,
                              const char *reason, parley_iq_fn cb, void *ud)
{
    if (!nick || !*nick || strlen(nick) > EXT_MAX_NICK)
        return PARLEY_ERR_INVALID;
    return admin(p, room_name, "nick", nick, "role", "none", reason, "kick", cb, ud);
}

parley_error parley_room_ban(parley *p, const char *room_name, const char *who,
                             const char *reason, parley_iq_fn cb, void *ud)
{
    char *bare = who ? jid_normalize_bare(who) : NULL;
    parley_error e = bare ? admin(p, room_name, "jid", bare, "affiliation", "outcast", reason,
                                  "ban", cb, ud)
                          : PARLEY_ERR_INVALID;
    free(bare);
    return e;
}

char *room_ops_target(parley *p, const char *room_name, parley_error *e)
{
    char *addr = p && room_name ? room_ops_jid(p, room_name) : NULL;
    *e = !addr ? PARLEY_ERR_INVALID : !ext_online(p) ? PARLEY_ERR_STATE : PARLEY_OK;
    if (*e != PARLEY_OK) {
        free(addr);
        return NULL;
    }
    return addr;
}

parley_error parley_room_set_affiliation(parley *p, const char *room_name, const char *who,
                                         const char *affiliation, const char *reason,
                                         parley_room_done_fn cb, void *ud)
{
    static const char *known[] = {"owner", "admin", "member", "none", "outcast"};
    int ok = 0;
    for (size_t i = 0; affiliation && i < ARRAY_LEN(known); i++)
        ok |= strcmp(affiliation, known[i]) == 0;
    char *bare = who ? jid_normalize_bare(who) : NULL;
    parley_error e = PARLEY_ERR_INVALID;
    char *addr = NULL;
    if (ok && bare && (!reason || strlen(reason) <= EXT_MAX_TEXT) &&
        (addr = room_ops_target(p, room_name, &e)) != NULL) {
        /* the error reads "cannot grant owner to bob@... in room@...: forbidden: ..." */
        char *what = strcmp(affiliation, "none") == 0      ? xstrdup("revoke the affiliation of")
                     : strcmp(affiliation, "outcast") == 0 ? xstrdup("ban")
                                                           : xasprintf("grant %s to", affiliation);
        send_admin(p, addr, "jid", bare, "affiliation", affiliation, reason, what, NULL, cb, ud);
        free(what);
    }
    free(addr);
    free(bare);
    return e;
}

/* ------------------------------------------------------------------ the room list */

static void on_list(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    list_req *l = ud;
    const xml_node *q = err == PARLEY_OK ? xml_child((const xml_node *)res, XMLNS_DISCO_ITEMS,
                                                     "query") : NULL;
    parley_room_item *items = NULL;
    size_t n = 0;
    for (const xml_node *it = q ? xml_child(q, XMLNS_DISCO_ITEMS, "item") : NULL;
         it && n < EXT_MAX_LISTED; it = xml_next(it, XMLNS_DISCO_ITEMS, "item")) {
        if (!xml_get_attr(it, "jid"))
            continue;
        items = xrealloc(items, (n + 1) * sizeof *items);
        items[n].jid = xml_get_attr(it, "jid");
        items[n].name = xml_get_attr(it, "name");
        n++;
    }
    char *text = err != PARLEY_OK ? (res ? im_error_text((const xml_node *)res)
                                         : xstrdup(parley_strerror(err)))
                                  : NULL;
    l->cb(p, items, n, err, text, l->ud);
    free(text);
    free(items);
    free(l);
}

static void send_list(parley *p, const char *service, list_req *l)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "get");
    xml_set_attr(iq, "to", service);
    xml_add_child(iq, XMLNS_DISCO_ITEMS, "query");
    ext_send_iq(p, iq, on_list, l);
}

parley_error parley_room_list(parley *p, const char *service, parley_rooms_fn cb, void *ud)
{
    if (!p || !cb)
        return PARLEY_ERR_INVALID;
    char *norm = service ? jid_normalize(service) : NULL;
    if (service && (!norm || strchr(norm, '@') || strchr(norm, '/'))) {
        free(norm);
        return PARLEY_ERR_INVALID;
    }
    rooms_state *rs = rooms_of(p);
    if (!ext_online(p) || (!norm && !rs->service && rs->disco_pending <= 0)) {
        free(norm);
        return PARLEY_ERR_STATE;
    }
    list_req *l = xcalloc(1, sizeof *l);
    l->cb = cb;
    l->ud = ud;
    if (norm || rs->service) {
        send_list(p, norm ? norm : rs->service, l);
    } else { /* the service is being looked for: the list follows */
        l->next = rs->waiting;
        rs->waiting = l;
    }
    free(norm);
    return PARLEY_OK;
}
