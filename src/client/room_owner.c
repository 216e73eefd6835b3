/* room_owner.c - what an occupant, owner or admin asks of a room beyond talking: another
 * nickname (XEP-0045 7.6), the room's configuration form (muc#owner, 10.2: read it, change
 * some fields) and its destruction (10.9). Affiliations are muc#admin: room_ops.c. */
#include "../common/util.h"
#include "rooms_internal.h"

#include <stdlib.h>
#include <string.h>

#define XMLNS_ROOMCONFIG "http://jabber.org/protocol/muc#roomconfig"

/* ------------------------------------------------------------------ nickname */

parley_error parley_room_change_nick(parley *p, const char *room_name, const char *nick)
{
    if (!p || !room_name || !nick || !*nick || strlen(nick) > EXT_MAX_NICK)
        return PARLEY_ERR_INVALID;
    char *addr = room_ops_jid(p, room_name);
    char *full = addr ? xasprintf("%s/%s", addr, nick) : NULL;
    char *norm = full ? jid_normalize(full) : NULL; /* the nickname as the room compares it */
    free(full);
    room *r = addr ? rooms_get(p, addr) : NULL;
    parley_error e = !norm                                             ? PARLEY_ERR_INVALID
                     : !r || r->phase != ROOM_JOINED || !ext_online(p) ? PARLEY_ERR_STATE
                                                                       : PARLEY_OK;
    if (e == PARLEY_OK && strcmp(strchr(norm, '/') + 1, r->nick) != 0) {
        /* presence to the new occupant JID: 303 then the new one, or an error (conflict) */
        xml_node *pr = xml_new(XMLNS_CLIENT, "presence");
        xml_set_attr(pr, "to", norm);
        session_send(p, pr);
        xml_free(pr);
    }
    free(norm);
    free(addr);
    return e;
}

/* ------------------------------------------------------------------ destruction */

parley_error parley_room_destroy(parley *p, const char *room_name, const char *reason,
                                 parley_room_done_fn cb, void *ud)
{
    parley_error e = PARLEY_ERR_INVALID;
    if (reason && strlen(reason) > EXT_MAX_TEXT)
        return e;
    char *addr = room_ops_target(p, room_name, &e);
    if (!addr)
        return e;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_set_attr(iq, "to", addr);
    xml_node *d = xml_add_child(xml_add_child(iq, XMLNS_MUC_OWNER, "query"), NULL, "destroy");
    if (reason && *reason)
        xml_add_text(xml_add_child(d, NULL, "reason"), reason, strlen(reason));
    room_ops_request(p, addr, iq, "destroy the room", NULL, cb, ud);
    free(addr);
    return PARLEY_OK;
}

/* ------------------------------------------------------------------ configuration */

typedef struct config_req {
    char *room;
    parley_room_config_fn cb;
    void *ud;
} config_req;

static void on_config(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    config_req *c = ud;
    const xml_node *q = err == PARLEY_OK ? xml_child((const xml_node *)res, XMLNS_MUC_OWNER,
                                                     "query") : NULL;
    const xml_node *x = q ? xml_child(q, XMLNS_XDATA, "x") : NULL;
    parley_room_field *fields = NULL;
    char **values = NULL; /* the texts the fields point to, freed after the callback */
    size_t n = 0;
    for (const xml_node *f = x ? xml_child(x, NULL, "field") : NULL;
         f && n < EXT_MAX_LISTED; f = xml_next(f, NULL, "field")) {
        const char *type = xml_get_attr(f, "type");
        if (!xml_get_attr(f, "var") || str_eq(type, "hidden") || str_eq(type, "fixed"))
            continue;
        fields = xrealloc(fields, (n + 1) * sizeof *fields);
        values = xrealloc(values, (n + 1) * sizeof *values);
        values[n] = xml_child_text(f, NULL, "value");
        fields[n] = (parley_room_field){xml_get_attr(f, "var"), type, xml_get_attr(f, "label"),
                                        values[n]};
        n++;
    }
    char *text = err != PARLEY_OK ? (res ? im_error_text((const xml_node *)res)
                                         : xstrdup(parley_strerror(err)))
                 : !x ? xstrdup("the room sent no configuration form") : NULL;
    c->cb(p, c->room, fields, n, text && err == PARLEY_OK ? PARLEY_ERR_PROTOCOL : err, text,
          c->ud);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    free(values);
    free(fields);
    free(text);
    free(c->room);
    free(c);
}

parley_error parley_room_config_get(parley *p, const char *room_name, parley_room_config_fn cb,
                                    void *ud)
{
    parley_error e = PARLEY_ERR_INVALID;
    char *addr = cb ? room_ops_target(p, room_name, &e) : NULL;
    if (!addr)
        return e;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "get");
    xml_set_attr(iq, "to", addr);
    xml_add_child(iq, XMLNS_MUC_OWNER, "query");
    config_req *c = xcalloc(1, sizeof *c);
    c->room = addr;
    c->cb = cb;
    c->ud = ud;
    ext_send_iq(p, iq, on_config, c);
    return PARLEY_OK;
}

static void add_field(xml_node *x, const char *var, const char *value)
{
    xml_node *f = xml_add_child(x, NULL, "field");
    xml_set_attr(f, "var", var);
    xml_add_text(xml_add_child(f, NULL, "value"), value, strlen(value));
}

parley_error parley_room_config_set(parley *p, const char *room_name,
                                    const parley_room_field *fields, size_t n,
                                    parley_room_done_fn cb, void *ud)
{
    if (!fields || n == 0 || n > PARLEY_ROOM_MAX_FIELDS)
        return PARLEY_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (!fields[i].var || !*fields[i].var || strlen(fields[i].var) > 256 ||
            !fields[i].value || strlen(fields[i].value) > EXT_MAX_TEXT)
            return PARLEY_ERR_INVALID;
    parley_error e = PARLEY_ERR_INVALID;
    char *addr = room_ops_target(p, room_name, &e);
    if (!addr)
        return e;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_set_attr(iq, "to", addr);
    xml_node *x = xml_add_child(xml_add_child(iq, XMLNS_MUC_OWNER, "query"), XMLNS_XDATA, "x");
    xml_set_attr(x, "type", "submit");
    add_field(x, "FORM_TYPE", XMLNS_ROOMCONFIG);
    for (size_t i = 0; i < n; i++)
        add_field(x, fields[i].var, fields[i].value);
    room_ops_request(p, addr, iq, "change the configuration", NULL, cb, ud);
    free(addr);
    return PARLEY_OK;
}
