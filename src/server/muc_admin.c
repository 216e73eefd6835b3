/* muc_admin.c - moderation (XEP-0045 8 and 9): lists of roles and affiliations, kick,
 * voice, moderator, ban, membership, admin and owner grants. A request's items are all
 * checked before any is applied, so a refused request changes nothing. */
#include "../common/jid.h"
#include "../common/util.h"
#include "compliance.h"
#include "muc_internal.h"
#include "router.h"
#include "stanza.h"

#include <stdlib.h>
#include <string.h>

/* Items one request may carry (a member list is sent whole by some clients). */
#define MAX_ITEMS 1000

typedef struct actor {
    char *bare;
    muc_aff aff;
    muc_role role;   /* as an occupant; admins outside the room count as moderators */
    const char *nick;
    const char *full;
} actor;

typedef struct change {
    int is_role;
    int value;             /* muc_role or muc_aff */
    char *target;          /* role: the nick; affiliation: the bare JID */
    char *reason;
} change;

static void changes_free(change *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].target);
        free(c[i].reason);
    }
    free(c);
}

/* ---- lists ---- */

typedef struct aff_list_ctx {
    xml_node *q;
    muc_aff want;
} aff_list_ctx;

static int list_aff(void *ud, const char *key, void *value)
{
    aff_list_ctx *c = ud;
    if ((muc_aff)(intptr_t)value == c->want) {
        xml_node *item = xml_add_child(c->q, NULL, "item");
        xml_set_attr(item, "affiliation", muc_aff_name(c->want));
        xml_set_attr(item, "jid", key);
    }
    return 0;
}

static void get_list(muc_room *r, xml_node *iq, const xml_node *item, const actor *a)
{
    server *srv = r->svc->srv;
    int aff = muc_aff_parse(xml_get_attr(item, "affiliation"));
    int role = muc_role_parse(xml_get_attr(item, "role"));
    if (aff > MUC_AFF_NONE) {
        if (a->aff < MUC_AFF_ADMIN) {
            router_bounce(srv, iq, "auth", "forbidden", "only admins and owners see these lists");
            return;
        }
        xml_node *res = stanza_iq_result(iq);
        aff_list_ctx c = {xml_add_child(res, MUC_NS_ADMIN, "query"), (muc_aff)aff};
        dict_each(r->affs, list_aff, &c);
        router_send(srv, res);
    } else if (role > MUC_ROLE_NONE) {
        if (a->role != MUC_ROLE_MODERATOR) {
            router_bounce(srv, iq, "auth", "forbidden", "only moderators see this list");
            return;
        }
        xml_node *res = stanza_iq_result(iq);
        xml_node *q = xml_add_child(res, MUC_NS_ADMIN, "query");
        for (muc_occupant *o = r->first; o; o = o->next) {
            if (o->role != (muc_role)role)
                continue;
            xml_node *it = xml_add_child(q, NULL, "item");
            xml_set_attr(it, "nick", o->nick);
            xml_set_attr(it, "role", muc_role_name(o->role));
            xml_set_attr(it, "affiliation", muc_aff_name(muc_room_aff(r, o->bare)));
            xml_set_attr(it, "jid", o->jid);
        }
        router_send(srv, res);
    } else {
        router_bounce(srv, iq, "modify", "bad-request",
                      "ask for one affiliation (outcast, member, admin, owner) or role "
                      "(visitor, participant, moderator)");
    }
}

/* ---- changes ---- */

typedef struct owners_ctx {
    size_t n;
} owners_ctx;

static int count_owners(void *ud, const char *key, void *value)
{
    if ((muc_aff)(intptr_t)value == MUC_AFF_OWNER)
        ((owners_ctx *)ud)->n++;
    return 0;
}

/* Is this change allowed? NULL, or the error (condition in *cond, type in *etype). */
static const char *check(muc_room *r, const actor *a, const change *c, const char **etype,
                         const char **cond)
{
    *etype = "cancel";
    *cond = "not-allowed";
    if (c->is_role) {
        muc_occupant *t = muc_occupant_by_nick(r, c->target);
        if (!t) {
            *cond = "item-not-found";
            return "no one with that nickname is in this room";
        }
        muc_aff taff = muc_room_aff(r, t->bare);
        if (a->role != MUC_ROLE_MODERATOR ||
            (c->value == MUC_ROLE_MODERATOR && a->aff < MUC_AFF_ADMIN)) {
            *etype = "auth";
            *cond = "forbidden";
            return c->value == MUC_ROLE_MODERATOR ? "only admins and owners may make moderators"
                                                  : "only moderators may do this";
        }
        if (c->value != MUC_ROLE_MODERATOR && taff >= MUC_AFF_ADMIN)
            return c->value == MUC_ROLE_NONE ? "admins and owners cannot be kicked"
                                             : "admins and owners keep their voice";
        if (c->value != MUC_ROLE_MODERATOR && t->role == MUC_ROLE_MODERATOR &&
            a->aff < MUC_AFF_ADMIN)
            return "only admins and owners may act on a moderator";
        return NULL;
    }
    muc_aff cur = muc_room_aff(r, c->target);
    muc_aff want = (muc_aff)c->value;
    if (a->aff < MUC_AFF_ADMIN || ((want >= MUC_AFF_ADMIN || cur >= MUC_AFF_ADMIN) &&
                                   a->aff != MUC_AFF_OWNER)) {
        *etype = "auth";
        *cond = "forbidden";
        return a->aff < MUC_AFF_ADMIN ? "only admins and owners may change affiliations"
                                      : "only owners may change admins and owners";
    }
    if (cur == MUC_AFF_OWNER && want != MUC_AFF_OWNER) {
        owners_ctx oc = {0};
        dict_each(r->affs, count_owners, &oc);
        if (oc.n <= 1) {
            *cond = "conflict";
            return "a room keeps at least one owner";
        }
    }
    if (cur == MUC_AFF_NONE && want != MUC_AFF_NONE &&
        dict_size(r->affs) >= MUC_MAX_AFFILIATIONS) {
        *etype = "wait";
        *cond = "resource-constraint";
        return "this room's affiliation list is full";
    }
    return NULL;
}

static void apply_role(muc_room *r, const actor *a, const change *c)
{
    muc_occupant *t = muc_occupant_by_nick(r, c->target);
    if (!t)
        return;
    if (c->value == MUC_ROLE_NONE) {
        static const int kicked[] = {307};
        muc_room_remove(r, t, kicked, 1, a->nick, c->reason);
        return;
    }
    t->role = (muc_role)c->value;
    muc_room_broadcast_presence(r, t);
}

static void apply_aff(muc_room *r, const actor *a, const change *c)
{
    server *srv = r->svc->srv;
    muc_aff want = (muc_aff)c->value;
    muc_room_set_aff(r, c->target, want);
    char detail[64 + MUC_MAX_ROOM_NAME];
    snprintf(detail, sizeof detail, "%s of %s", muc_aff_name(want), r->jid);
    compliance_audit(srv, a->full, "muc-affiliation", c->target, NULL, detail);
    for (muc_occupant *o = r->first, *next; o; o = next) {
        next = o->next;
        if (strcmp(o->bare, c->target) != 0)
            continue;
        if (want == MUC_AFF_OUTCAST) {
            static const int banned[] = {301};
            muc_room_remove(r, o, banned, 1, a->nick, c->reason);
        } else if (r->cfg.members_only && want < MUC_AFF_MEMBER) {
            static const int removed[] = {321};
            muc_room_remove(r, o, removed, 1, a->nick, c->reason);
        } else {
            o->role = muc_default_role(r, want);
            muc_room_broadcast_presence(r, o);
        }
    }
}

/* The items of a set request, parsed; NULL after answering with an error. */
static change *parse_items(muc_room *r, xml_node *iq, const xml_node *q, size_t *n)
{
    server *srv = r->svc->srv;
    size_t count = 0;
    for (const xml_node *it = xml_child(q, NULL, "item"); it; it = xml_next(it, NULL, "item"))
        count++;
    if (count == 0 || count > MAX_ITEMS) {
        router_bounce(srv, iq, "modify", "bad-request",
                      count ? "too many items in one request" : "no item to change");
        return NULL;
    }
    change *cs = xcalloc(count, sizeof *cs);
    size_t i = 0;
    const char *bad = NULL;
    for (const xml_node *it = xml_child(q, NULL, "item"); it && !bad;
         it = xml_next(it, NULL, "item"), i++) {
        const char *role = xml_get_attr(it, "role"), *aff = xml_get_attr(it, "affiliation");
        const char *nick = xml_get_attr(it, "nick"), *jid_attr = xml_get_attr(it, "jid");
        change *c = &cs[i];
        c->reason = xml_child_text(it, NULL, "reason");
        if (c->reason && strlen(c->reason) > MUC_MAX_REASON) {
            bad = "the reason is too long";
        } else if (role && !aff) {
            c->is_role = 1;
            c->value = muc_role_parse(role);
            if (c->value < 0 || !nick)
                bad = "a role change names a role and an occupant's nick";
            else
                c->target = xstrdup(nick);
        } else if (aff && !role) {
            c->value = muc_aff_parse(aff);
            if (jid_attr) {
                c->target = jid_normalize_bare(jid_attr);
            } else if (nick && muc_occupant_by_nick(r, nick)) {
                c->target = xstrdup(muc_occupant_by_nick(r, nick)->bare);
            }
            if (c->value < 0 || !c->target)
                bad = "an affiliation change names an affiliation and a JID (or an occupant's nick)";
        } else {
            bad = "each item changes either a role or an affiliation";
        }
    }
    if (bad) {
        router_bounce(srv, iq, "modify", "bad-request", bad);
        changes_free(cs, count);
        return NULL;
    }
    *n = count;
    return cs;
}

static void set_items(muc_room *r, xml_node *iq, const xml_node *q, const actor *a)
{
    server *srv = r->svc->srv;
    size_t n;
    change *cs = parse_items(r, iq, q, &n);
    if (!cs)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *etype, *cond;
        const char *why = check(r, a, &cs[i], &etype, &cond);
        if (why) {
            router_bounce(srv, iq, etype, cond, why);
            changes_free(cs, n);
            return;
        }
    }
    int affs_changed = 0;
    for (size_t i = 0; i < n; i++) {
        if (cs[i].is_role) {
            apply_role(r, a, &cs[i]);
        } else {
            apply_aff(r, a, &cs[i]);
            affs_changed = 1;
        }
    }
    if (affs_changed)
        muc_store_affiliations(r);
    router_send(srv, stanza_iq_result(iq));
    changes_free(cs, n);
}

void muc_admin_iq(muc_room *r, xml_node *iq, const char *from)
{
    server *srv = r->svc->srv;
    const xml_node *q = xml_first_element(iq);
    muc_occupant *o = muc_occupant_by_jid(r, from);
    actor a = {0};
    a.bare = jid_normalize_bare(from);
    a.full = from;
    a.aff = a.bare ? muc_room_aff(r, a.bare) : MUC_AFF_NONE;
    a.role = o ? o->role : (a.aff >= MUC_AFF_ADMIN ? MUC_ROLE_MODERATOR : MUC_ROLE_NONE);
    a.nick = o ? o->nick : NULL;
    if (str_eq(xml_get_attr(iq, "type"), "get")) {
        const xml_node *item = xml_child(q, NULL, "item");
        if (item)
            get_list(r, iq, item, &a);
        else
            router_bounce(srv, iq, "modify", "bad-request", "ask for one list with an item");
    } else {
        set_items(r, iq, q, &a);
    }
    free(a.bare);
    xml_free(iq);
}
