/* muc_message.c - what occupants say: group chat messages (one order for everyone, the
 * sender's echo included, one XEP-0359 stanza-id each, one compliance record per room
 * message), subject changes, private messages, mediated invitations and declines, and
 * the history a joiner gets. */
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "carbons.h"
#include "compliance.h"
#include "muc_internal.h"
#include "router.h"
#include "stanza.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Invitations one message may carry: each one is a message the room sends. */
#define MAX_INVITES 10

/* End-to-end encryption in a group chat: the archive could not keep what was said, and
 * group chats in this deployment are encrypted between client and server only. */
static const struct {
    const char *ns, *name;
} e2e_elements[] = {
    {"urn:xmpp:omemo:2", "encrypted"},
    {"eu.siacs.conversations.axolotl", "encrypted"},
    {"urn:xmpp:openpgp:0", "openpgp"},
    {"jabber:x:encrypted", "x"},
};

static int is_e2e(const xml_node *stanza)
{
    for (size_t i = 0; i < ARRAY_LEN(e2e_elements); i++)
        if (xml_child(stanza, e2e_elements[i].ns, e2e_elements[i].name))
            return 1;
    return 0;
}

/* ---- history ---- */

void muc_history_clear(muc_room *r)
{
    size_t cap = (size_t)r->svc->srv->cfg.muc_history;
    for (size_t i = 0; i < r->hist_len; i++)
        xml_free(r->hist[(r->hist_start + i) % cap].msg);
    r->hist_start = r->hist_len = 0;
    r->hist_bytes = 0;
}

/* Forget the oldest entry (and its stored copy when save is set). */
static void history_drop_oldest(muc_room *r, int save)
{
    size_t cap = (size_t)r->svc->srv->cfg.muc_history;
    muc_history_entry *old = &r->hist[r->hist_start];
    if (save)
        muc_store_history_drop(r, old->seq);
    r->hist_bytes -= old->chars;
    xml_free(old->msg);
    old->msg = NULL;
    r->hist_start = (r->hist_start + 1) % cap;
    r->hist_len--;
}

void muc_history_add(muc_room *r, const xml_node *msg, int64_t ts_us, int64_t seq, int save)
{
    size_t cap = (size_t)r->svc->srv->cfg.muc_history;
    if (cap == 0)
        return;
    if (r->hist_len == cap)
        history_drop_oldest(r, save);
    muc_history_entry *e = &r->hist[(r->hist_start + r->hist_len) % cap];
    e->msg = xml_copy(msg);
    xml_set_attr(e->msg, "to", NULL);
    e->ts_us = ts_us;
    e->seq = seq;
    char *text = xml_to_string(e->msg, XMLNS_CLIENT);
    e->chars = strlen(text);
    free(text);
    r->hist_len++;
    r->hist_bytes += e->chars;
    if (seq > r->hist_seq)
        r->hist_seq = seq;
    if (save)
        muc_store_history_add(r, e);
    /* A few huge messages must not make a room hold megabytes: the byte bound wins over
     * the count (the newest entry always stays). */
    while (r->hist_bytes > MUC_MAX_HISTORY_BYTES && r->hist_len > 1)
        history_drop_oldest(r, save);
}

/* XEP-0082 date-time ("2024-05-01T12:00:00Z", fraction and offset allowed) to
 * microseconds since the epoch; -1 if malformed. */
static int64_t parse_datetime(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    long offset = 0;
    if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        offset = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
        if (*p == '+')
            offset = -offset;
    } else if (strcmp(p, "Z") != 0) {
        return -1;
    }
    return ((int64_t)timegm(&tm) + offset) * 1000000;
}

static long attr_long(const xml_node *n, const char *name, long dflt)
{
    const char *v = n ? xml_get_attr(n, name) : NULL;
    if (!v)
        return dflt;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x < 0 ? dflt : x;
}

void muc_history_send(muc_room *r, const muc_occupant *o, const xml_node *request)
{
    size_t cap = (size_t)r->svc->srv->cfg.muc_history;
    long maxstanzas = attr_long(request, "maxstanzas", (long)r->hist_len);
    long maxchars = attr_long(request, "maxchars", -1);
    long seconds = attr_long(request, "seconds", -1);
    int64_t since = -1;
    if (request && xml_get_attr(request, "since"))
        since = parse_datetime(xml_get_attr(request, "since"));
    if (seconds >= 0) {
        int64_t s2 = time_now_us() - (int64_t)seconds * 1000000;
        since = since > s2 ? since : s2;
    }
    /* Walk back from the newest while every limit holds, then send oldest first. */
    size_t n = 0, chars = 0;
    while (n < r->hist_len && (long)n < maxstanzas) {
        const muc_history_entry *e = &r->hist[(r->hist_start + r->hist_len - 1 - n) % cap];
        if (since >= 0 && e->ts_us < since)
            break;
        if (maxchars >= 0 && chars + e->chars > (size_t)maxchars)
            break;
        chars += e->chars;
        n++;
    }
    for (size_t i = r->hist_len - n; i < r->hist_len; i++) {
        const muc_history_entry *e = &r->hist[(r->hist_start + i) % cap];
        xml_node *m = xml_copy(e->msg);
        char stamp[TIME_UTC_LEN];
        time_format_utc(e->ts_us, stamp);
        xml_node *d = xml_add_child(m, XMLNS_DELAY, "delay");
        xml_set_attr(d, "from", r->jid);
        xml_set_attr(d, "stamp", stamp);
        muc_send(r, o, m);
        xml_free(m);
    }
    /* The subject always comes last, empty if none was set: clients take it as the end
     * of the join (XEP-0045 7.2.15). */
    xml_node *s = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(s, "type", "groupchat");
    char id[17];
    random_token(id, 16);
    xml_set_attr(s, "id", id);
    char *from = r->subject_from ? xasprintf("%s/%s", r->jid, r->subject_from) : xstrdup(r->jid);
    xml_set_attr(s, "from", from);
    free(from);
    xml_node *subj = xml_add_child(s, NULL, "subject");
    if (r->subject)
        xml_add_text(subj, r->subject, strlen(r->subject));
    muc_send(r, o, s);
    xml_free(s);
}

/* ---- group chat ---- */

/* What a held message needs when it is released: the room may be gone by then, so it is
 * found again by its JID. */
typedef struct pending {
    char *room;
    char *nick;   /* the sender's nick when it spoke */
    char *target; /* private messages: the recipient's real JID */
} pending;

static void pending_free(void *ud)
{
    pending *p = ud;
    free(p->room);
    free(p->nick);
    free(p->target);
    free(p);
}

static muc_room *pending_room(server *srv, const pending *p)
{
    return srv->muc ? dict_get(srv->muc->rooms, p->room) : NULL;
}

/* Remove the children ns:name of m that claim to come from the room (by_attr equal to
 * the room's JID), or all of them when by_attr is NULL. */
static void strip_claims(xml_node *m, const char *ns, const char *name, const char *by_attr,
                         const char *room)
{
    xml_node *n = xml_child(m, ns, name);
    while (n) {
        xml_node *next = xml_next(n, ns, name);
        if (!by_attr || str_eq(xml_get_attr(n, by_attr), room)) {
            xml_detach(n);
            xml_free(n);
        }
        n = next;
    }
}

/* The stanza as the room sends it: from the occupant JID, without the sender's own
 * addressing, and with nothing the sender could use to speak for the room: no
 * stanza-id or delay claiming to be the room's, no muc#user element (status codes). */
static void as_room_message(muc_room *r, xml_node *m, const char *nick)
{
    xml_set_attr(m, "to", NULL);
    char *from = xasprintf("%s/%s", r->jid, nick);
    xml_set_attr(m, "from", from);
    free(from);
    strip_claims(m, XMLNS_SID, "stanza-id", "by", r->jid);
    strip_claims(m, XMLNS_DELAY, "delay", "from", r->jid);
    strip_claims(m, MUC_NS_USER, "x", NULL, r->jid);
}

static void release_groupchat(server *srv, xml_node *stanza, void *ud)
{
    pending *p = ud;
    muc_room *r = pending_room(srv, p);
    if (!r) {
        log_debug("muc: %s went away before a message was released", p->room);
        xml_free(stanza);
        pending_free(p);
        return;
    }
    /* the sender's real JID, for the archive, before the room's addressing replaces it */
    const char *real = xml_get_attr(stanza, "from");
    char *sender_bare = real ? jid_normalize_bare(real) : NULL;
    as_room_message(r, stanza, p->nick);
    char id[25];
    random_token(id, 24);
    xml_node *sid = xml_add_child(stanza, XMLNS_SID, "stanza-id");
    xml_set_attr(sid, "id", id);
    xml_set_attr(sid, "by", r->jid);
    int has_body = xml_child(stanza, XMLNS_CLIENT, "body") != NULL;
    xml_node *subject = xml_child(stanza, XMLNS_CLIENT, "subject");
    if (subject && !has_body) {
        free(r->subject);
        free(r->subject_from);
        r->subject = xml_text(subject);
        r->subject_from = xstrdup(p->nick);
        muc_store_subject(r);
    } else if (has_body) {
        muc_history_add(r, stanza, time_now_us(), r->hist_seq + 1, 1);
        muc_archive_message(r, sender_bare ? sender_bare : r->jid, id, stanza);
    }
    free(sender_bare);
    for (muc_occupant *o = r->first; o; o = o->next)
        muc_send(r, o, stanza);
    xml_free(stanza);
    pending_free(p);
}

/* The distinct real bare JIDs in the room, for the compliance server's ethical walls. */
static const char **occupant_jids(const muc_room *r, size_t *n)
{
    const char **out = xcalloc(r->noccupants ? r->noccupants : 1, sizeof *out);
    dict *seen = dict_new();
    *n = 0;
    for (const muc_occupant *o = r->first; o; o = o->next) {
        if (dict_get(seen, o->bare))
            continue;
        dict_set(seen, o->bare, (void *)o->bare);
        out[(*n)++] = o->bare;
    }
    dict_free(seen, NULL);
    return out;
}

/* Record (once, for the room, or once for a private message) and hold, or send now when
 * there is no archive. The one place room traffic meets compliance. */
static void record_and_release(muc_room *r, xml_node *stanza, pending *p, const char *recipient,
                               compliance_release_fn release)
{
    server *srv = r->svc->srv;
    if (compliance_enabled(srv)) {
        int record = compliance_wants(stanza);
        if (record || compliance_pending(srv)) {
            const char *outcome = record ? "delivered" : NULL;
            if (p->target) {
                compliance_hold(srv, stanza, recipient, outcome, NULL, release, p, pending_free);
            } else {
                size_t n;
                const char **jids = occupant_jids(r, &n);
                compliance_hold_room(srv, stanza, r->jid, jids, n, outcome, NULL, release, p,
                                     pending_free);
                free(jids);
            }
            return;
        }
    }
    release(srv, stanza, p);
}

void muc_message_groupchat(muc_room *r, xml_node *stanza, muc_occupant *o)
{
    server *srv = r->svc->srv;
    xml_node *subject = xml_child(stanza, XMLNS_CLIENT, "subject");
    int has_body = xml_child(stanza, XMLNS_CLIENT, "body") != NULL;
    char *subject_text = subject ? xml_text(subject) : NULL;
    size_t subject_len = subject_text ? strlen(subject_text) : 0;
    free(subject_text);
    if (!o) {
        router_bounce(srv, stanza, "modify", "not-acceptable",
                      "you are not in this room: join it before sending to it");
    } else if (is_e2e(stanza)) {
        router_bounce(srv, stanza, "modify", "not-acceptable",
                      "group chats are not end-to-end encrypted");
    } else if (o->role < MUC_ROLE_PARTICIPANT) {
        router_bounce(srv, stanza, "auth", "forbidden",
                      "you have no voice in this moderated room");
    } else if (subject && !has_body && o->role != MUC_ROLE_MODERATOR && !r->cfg.change_subject) {
        router_bounce(srv, stanza, "auth", "forbidden",
                      "only moderators may change the subject of this room");
    } else if (subject_len > MUC_MAX_SUBJECT) {
        char text[96];
        snprintf(text, sizeof text, "the subject is at most %d bytes long", MUC_MAX_SUBJECT);
        router_bounce(srv, stanza, "modify", "not-acceptable", text);
    } else if (muc_rate_check(r, stanza, o->bare) == 0) {
        pending *p = xcalloc(1, sizeof *p);
        p->room = xstrdup(r->jid);
        p->nick = xstrdup(o->nick);
        record_and_release(r, stanza, p, r->jid, release_groupchat);
        return;
    }
    xml_free(stanza);
}

/* ---- private messages ---- */

static void release_private(server *srv, xml_node *stanza, void *ud)
{
    pending *p = ud;
    muc_room *r = pending_room(srv, p);
    muc_occupant *to = r ? muc_occupant_by_jid(r, p->target) : NULL;
    if (to) {
        /* The sender's other devices see what was said (XEP-0280 section 6: a chat the
         * user sent; the room is not its sender). */
        carbons_copy_sent(srv, stanza);
        as_room_message(r, stanza, p->nick);
        muc_user_x(stanza); /* XEP-0045 7.5: marks it as a private message in a room */
        muc_send(r, to, stanza);
    }
    xml_free(stanza);
    pending_free(p);
}

void muc_message_private(muc_room *r, xml_node *stanza, muc_occupant *o, const char *nick)
{
    server *srv = r->svc->srv;
    const char *type = xml_get_attr(stanza, "type");
    muc_occupant *to = muc_occupant_by_nick(r, nick);
    muc_pm pm = r->cfg.allow_pm;
    if (str_eq(type, "groupchat")) {
        router_bounce(srv, stanza, "modify", "bad-request",
                      "a private message is of type chat; group chat goes to the room's JID");
    } else if (!o) {
        router_bounce(srv, stanza, "modify", "not-acceptable",
                      "you are not in this room: join it before sending to its occupants");
    } else if (pm == MUC_PM_NONE || (pm == MUC_PM_MODERATORS && o->role != MUC_ROLE_MODERATOR) ||
               (pm == MUC_PM_PARTICIPANTS && o->role < MUC_ROLE_PARTICIPANT)) {
        router_bounce(srv, stanza, "cancel", "not-allowed",
                      "private messages are not allowed for you in this room");
    } else if (!to) {
        router_bounce(srv, stanza, "cancel", "item-not-found",
                      "no one with that nickname is in this room");
    } else if (muc_rate_check(r, stanza, o->bare) == 0) {
        pending *p = xcalloc(1, sizeof *p);
        p->room = xstrdup(r->jid);
        p->nick = xstrdup(o->nick);
        p->target = xstrdup(to->jid);
        /* The record names the real recipient: the nick may be someone else's tomorrow. */
        record_and_release(r, stanza, p, to->jid, release_private);
        return;
    }
    xml_free(stanza);
}

/* ---- invitations and declines (XEP-0045 7.8.2, 7.8.3) ---- */

static int may_invite(const muc_room *r, muc_aff aff)
{
    if (aff >= MUC_AFF_ADMIN)
        return 1;
    if (!r->cfg.allow_invites)
        return 0;
    return !r->cfg.members_only || aff >= MUC_AFF_MEMBER;
}

static void send_reason(xml_node *parent, const xml_node *from_el)
{
    char *reason = xml_child_text(from_el, NULL, "reason");
    if (reason && *reason && strlen(reason) <= MUC_MAX_REASON) {
        xml_node *n = xml_add_child(parent, NULL, "reason");
        xml_add_text(n, reason, strlen(reason));
    }
    free(reason);
}

static void invite(muc_room *r, xml_node *stanza, muc_occupant *o, const xml_node *x)
{
    server *srv = r->svc->srv;
    muc_aff aff = muc_room_aff(r, o->bare);
    size_t n = 0;
    for (const xml_node *inv = xml_child(x, NULL, "invite"); inv; inv = xml_next(inv, NULL, "invite"))
        n++;
    if (!may_invite(r, aff)) {
        router_bounce(srv, stanza, "auth", "forbidden", "you may not invite people to this room");
        return;
    }
    if (n > MAX_INVITES) {
        router_bounce(srv, stanza, "modify", "not-acceptable", "too many invitations in one message");
        return;
    }
    for (const xml_node *inv = xml_child(x, NULL, "invite"); inv; inv = xml_next(inv, NULL, "invite")) {
        char *invitee = xml_get_attr(inv, "to") ? jid_normalize_bare(xml_get_attr(inv, "to")) : NULL;
        if (!invitee) {
            router_bounce(srv, stanza, "modify", "jid-malformed",
                          "an invitation needs the invitee's JID in 'to'");
            return;
        }
        if (r->cfg.members_only && muc_room_aff(r, invitee) == MUC_AFF_NONE &&
            dict_size(r->affs) >= MUC_MAX_AFFILIATIONS) {
            router_bounce(srv, stanza, "wait", "resource-constraint",
                          "this room's member list is full");
            free(invitee);
            return;
        }
        if (r->cfg.members_only && muc_room_aff(r, invitee) == MUC_AFF_NONE) {
            /* Inviting to a members-only room makes the invitee a member (7.8.2). */
            muc_room_set_aff(r, invitee, MUC_AFF_MEMBER);
            muc_store_affiliations(r);
            char detail[64 + MUC_MAX_ROOM_NAME];
            snprintf(detail, sizeof detail, "member of %s (invited)", r->jid);
            compliance_audit(srv, o->jid, "muc-affiliation", invitee, NULL, detail);
        }
        xml_node *m = xml_new(XMLNS_CLIENT, "message");
        xml_set_attr(m, "from", r->jid);
        xml_set_attr(m, "to", invitee);
        const char *id = xml_get_attr(stanza, "id");
        if (id)
            xml_set_attr(m, "id", id);
        xml_node *ux = muc_user_x(m);
        xml_node *out = xml_add_child(ux, NULL, "invite");
        xml_set_attr(out, "from", o->bare);
        send_reason(out, inv);
        if (r->cfg.password) {
            xml_node *pw = xml_add_child(ux, NULL, "password");
            xml_add_text(pw, r->cfg.password, strlen(r->cfg.password));
        }
        router_send(srv, m);
        free(invitee);
    }
}

static void decline(muc_room *r, const xml_node *dec, const char *from)
{
    server *srv = r->svc->srv;
    char *inviter = xml_get_attr(dec, "to") ? jid_normalize(xml_get_attr(dec, "to")) : NULL;
    if (!inviter)
        return;
    char *from_bare = jid_normalize_bare(from);
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "from", r->jid);
    xml_set_attr(m, "to", inviter);
    xml_node *out = xml_add_child(muc_user_x(m), NULL, "decline");
    xml_set_attr(out, "from", from_bare);
    send_reason(out, dec);
    router_send(srv, m);
    free(from_bare);
    free(inviter);
}

void muc_message_other(muc_room *r, xml_node *stanza, muc_occupant *o, const char *from)
{
    server *srv = r->svc->srv;
    const xml_node *x = xml_child(stanza, MUC_NS_USER, "x");
    const xml_node *dec = x ? xml_child(x, NULL, "decline") : NULL;
    char *from_bare = jid_normalize_bare(from);
    if (x && xml_child(x, NULL, "invite")) {
        if (!o)
            router_bounce(srv, stanza, "modify", "not-acceptable",
                          "join the room before inviting people to it");
        else if (muc_rate_check(r, stanza, o->bare) == 0)
            invite(r, stanza, o, x);
    } else if (dec) {
        /* Declines may come from anyone; they cost a token like any message. */
        if (muc_rate_check(r, stanza, from_bare) == 0)
            decline(r, dec, from);
    } else {
        router_bounce(srv, stanza, "modify", "bad-request",
                      "messages to a room are of type groupchat (or carry an invitation)");
    }
    free(from_bare);
    xml_free(stanza);
}
