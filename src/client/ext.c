/* ext.c - where group chat, the archive and carbons meet the core session: received
 * stanzas go through ext_dispatch (after the application's hooks, before the core's own
 * handling), sign-in and connection loss are passed on, and the MESSAGE event of a
 * forwarded message (a carbon, an archive result) is marked as such in client_emit. */
#include "../common/util.h"
#include "ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ext_state *ext_of(parley *p)
{
    if (!p->ext)
        p->ext = xcalloc(1, sizeof *p->ext);
    return p->ext;
}

int ext_online(const parley *p)
{
    return p && p->phase == PH_STREAM && p->neg == NEG_ONLINE;
}

int ext_is_own(const parley *p, const char *addr)
{
    char *bare = addr ? jid_normalize_bare(addr) : NULL;
    int own = bare && strcmp(bare, p->account_bare) == 0;
    free(bare);
    return own;
}

long long ext_delay_ms(const xml_node *msg)
{
    const xml_node *d = xml_child(msg, XMLNS_DELAY, "delay");
    int64_t us;
    if (!d || !xml_get_attr(d, "stamp") || time_parse_iso8601(xml_get_attr(d, "stamp"), &us) < 0)
        return 0;
    return (long long)(us / 1000);
}

const char *ext_stanza_id(const xml_node *msg, const char *by)
{
    for (const xml_node *s = xml_child(msg, XMLNS_SID, "stanza-id"); s;
         s = xml_next(s, XMLNS_SID, "stanza-id")) {
        char *b = xml_get_attr(s, "by") ? jid_normalize(xml_get_attr(s, "by")) : NULL;
        int ok = b && str_eq(b, by);
        free(b);
        if (ok && xml_get_attr(s, "id") && *xml_get_attr(s, "id"))
            return xml_get_attr(s, "id");
    }
    return NULL;
}

int ext_has_content(const xml_node *msg)
{
    /* a body, or an end-to-end encrypted payload (which may come without a fallback body) */
    return xml_child(msg, XMLNS_CLIENT, "body") || xml_child(msg, "urn:xmpp:omemo:2", "encrypted");
}

int client_ext_forwarded(const parley *p)
{
    return p->ext && p->ext->fwd && (p->ext->fwd->carbon || p->ext->fwd->archived);
}

int client_ext_outgoing(const parley *p)
{
    return client_ext_forwarded(p) && p->ext->fwd->outgoing;
}

void ext_send_iq(parley *p, xml_node *iq, parley_iq_fn cb, void *ud)
{
    char *id = session_new_id(p);
    xml_set_attr(iq, "id", id);
    /* not "internal": the callback must also run when the session ends, to free ud */
    session_track_iq(p, id, xml_get_attr(iq, "to"), cb, ud, 0, 0);
    session_send(p, iq);
    xml_free(iq);
    free(id);
}

void ext_deliver(parley *p, const xml_node *msg, const fwd_ctx *ctx)
{
    ext_state *x = ext_of(p);
    const fwd_ctx *saved = x->fwd;
    x->fwd = ctx;
    im_message(p, msg);
    x->fwd = saved;
}

void client_ext_emit(const parley *p, parley_event *ev)
{
    const fwd_ctx *c = p->ext ? p->ext->fwd : NULL;
    if (!c || ev->type != PARLEY_EV_MESSAGE)
        return;
    ev->carbon = c->carbon;
    ev->archived = c->archived;
    ev->outgoing = c->outgoing;
    ev->stanza_id = c->stanza_id;
    ev->timestamp_ms = c->timestamp_ms;
}

/* A one-to-one message on the live stream: marked with our archive's id, delivered once,
 * after the archive fetch that may be running. */
int ext_live_message(parley *p, const xml_node *msg)
{
    const char *type = xml_get_attr(msg, "type");
    if (str_eq(type, "error") || str_eq(type, "groupchat") || !ext_has_content(msg))
        return 0; /* errors, chat states, receipts, PEP...: the core's as before */
    if (archive_hold(p, NULL, msg))
        return 1;
    const char *sid = ext_stanza_id(msg, p->account_bare);
    if (archive_seen(p, NULL, sid))
        return 1; /* already delivered from the archive */
    if (archive_seen_origin(p, msg))
        return 1; /* the same message sent again by its client after a failover */
    long long ts = ext_delay_ms(msg);
    /* the newest message of our archive, unless it waited offline (older than what the
     * sign-in sync has fetched) */
    if (sid && !ts)
        parley_archive_set_last(p, NULL, sid);
    fwd_ctx ctx = {.stanza_id = sid, .timestamp_ms = ts};
    ext_deliver(p, msg, &ctx);
    return 1;
}

int client_ext_dispatch(parley *p, const xml_node *st)
{
    if (str_eq(st->name, "presence"))
        return rooms_presence(p, st);
    if (!str_eq(st->name, "message"))
        return 0;
    if (carbons_handle(p, st) || archive_result(p, st) || rooms_message(p, st))
        return 1;
    return ext_live_message(p, st);
}

void client_ext_online(parley *p)
{
    if (p->opt.carbons)
        carbons_enable(p);
    room_ops_discover(p);
    archive_sync_account(p);
    rooms_on_online(p);
}

void client_ext_offline(parley *p)
{
    if (!p->ext)
        return;
    archive_on_offline(p);
    rooms_on_offline(p);
}

void client_ext_sent(parley *p, const xml_node *st)
{
    /* the archived copy of what we send comes back in a later sync: known by its id */
    if (str_eq(st->name, "message") && xml_get_attr(st, "id") && ext_has_content(st) &&
        !str_eq(xml_get_attr(st, "type"), "error"))
        archive_note_sent(p, xml_get_attr(st, "id"));
}

void client_ext_free(parley *p)
{
    if (!p->ext)
        return;
    rooms_free(p);
    archive_free(p);
    free(p->ext);
    p->ext = NULL;
}
