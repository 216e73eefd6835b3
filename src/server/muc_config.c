/* muc_config.c - a room's configuration: defaults, the owner's muc#roomconfig form (get,
 * submit, cancel; XEP-0045 10.1 and 10.2), room destruction (10.9), and what disco#info
 * on the room says about it (features and muc#roominfo). */
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "compliance.h"
#include "mam.h"
#include "muc_internal.h"
#include "router.h"
#include "stanza.h"

#include <stdlib.h>
#include <string.h>

static const char *pm_names[] = {"none", "moderators", "participants", "anyone"};

void muc_config_defaults(muc_room_config *c, const config *cfg)
{
    memset(c, 0, sizeof *c);
    /* Non-anonymous by default: inside an organisation people talk under their own
     * names, and moderators must know whom they kick. */
    c->semi_anonymous = 0;
    c->public_list = 1;
    c->allow_invites = 1;
    c->allow_pm = MUC_PM_ANYONE;
    c->max_users = cfg->muc_max_occupants;
}

void muc_config_clear(muc_room_config *c)
{
    free(c->name);
    free(c->description);
    if (c->password)
        secure_wipe(c->password, strlen(c->password));
    free(c->password);
    memset(c, 0, sizeof *c);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void config_copy(muc_room_config *dst, const muc_room_config *src)
{
    *dst = *src;
    dst->name = dup_or_null(src->name);
    dst->description = dup_or_null(src->description);
    dst->password = dup_or_null(src->password);
}

/* ---- data forms (XEP-0004) ---- */

static xml_node *add_field(xml_node *x, const char *var, const char *type, const char *label,
                           const char *value)
{
    xml_node *f = xml_add_child(x, NULL, "field");
    xml_set_attr(f, "var", var);
    if (type)
        xml_set_attr(f, "type", type);
    if (label)
        xml_set_attr(f, "label", label);
    if (value) {
        xml_node *v = xml_add_child(f, NULL, "value");
        xml_add_text(v, value, strlen(value));
    }
    return f;
}

static void add_bool(xml_node *x, const char *var, const char *label, int value)
{
    add_field(x, var, "boolean", label, value ? "1" : "0");
}

static void add_option(xml_node *f, const char *label, const char *value)
{
    xml_node *o = xml_add_child(f, NULL, "option");
    xml_set_attr(o, "label", label);
    xml_node *v = xml_add_child(o, NULL, "value");
    xml_add_text(v, value, strlen(value));
}

static xml_node *config_form(const muc_room *r, int max_cap)
{
    const muc_room_config *c = &r->cfg;
    xml_node *x = xml_new(XMLNS_DATA, "x");
    xml_set_attr(x, "type", "form");
    xml_node *title = xml_add_child(x, NULL, "title");
    xml_add_text(title, "Room configuration", 18);
    add_field(x, "FORM_TYPE", "hidden", NULL, MUC_NS_ROOMCONFIG);
    add_field(x, "muc#roomconfig_roomname", "text-single", "Name", c->name ? c->name : "");
    add_field(x, "muc#roomconfig_roomdesc", "text-single", "Description",
              c->description ? c->description : "");
    add_bool(x, "muc#roomconfig_persistentroom", "Keep the room when everyone has left",
             c->persistent);
    add_bool(x, "muc#roomconfig_publicroom", "List the room in the directory", c->public_list);
    add_bool(x, "muc#roomconfig_membersonly", "Members only", c->members_only);
    add_bool(x, "muc#roomconfig_moderatedroom", "Only participants with voice may speak",
             c->moderated);
    add_bool(x, "muc#roomconfig_passwordprotectedroom", "Password required to enter",
             c->password != NULL);
    add_field(x, "muc#roomconfig_roomsecret", "text-private", "Password",
              c->password ? c->password : "");
    char num[24];
    snprintf(num, sizeof num, "%d", c->max_users);
    xml_node *mu = add_field(x, "muc#roomconfig_maxusers", "list-single",
                             "Most occupants at once", num);
    static const int choices[] = {10, 20, 50, 100, 200, 500, 1000, 5000};
    for (size_t i = 0; i < ARRAY_LEN(choices) && choices[i] <= max_cap; i++) {
        snprintf(num, sizeof num, "%d", choices[i]);
        add_option(mu, num, num);
    }
    snprintf(num, sizeof num, "%d", max_cap);
    add_option(mu, num, num);
    xml_node *w = add_field(x, "muc#roomconfig_whois", "list-single", "Who may see real JIDs",
                            c->semi_anonymous ? "moderators" : "anyone");
    add_option(w, "Moderators only", "moderators");
    add_option(w, "Anyone", "anyone");
    add_bool(x, "muc#roomconfig_changesubject", "Participants may change the subject",
             c->change_subject);
    add_bool(x, "muc#roomconfig_allowinvites", "Members may invite others", c->allow_invites);
    xml_node *pm = add_field(x, "muc#roomconfig_allowpm", "list-single",
                             "Who may send private messages", pm_names[c->allow_pm]);
    for (size_t i = ARRAY_LEN(pm_names); i-- > 0;)
        add_option(pm, pm_names[i], pm_names[i]);
    return x;
}

static int parse_bool(const char *v, int *out)
{
    if (str_eq(v, "1") || str_eq(v, "true")) {
        *out = 1;
        return 0;
    }
    if (str_eq(v, "0") || str_eq(v, "false")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* Apply a submitted form to c. NULL, or what is wrong with it (in err). */
static const char *apply_form(muc_room_config *c, const xml_node *x, int max_cap, char *err,
                              size_t errlen)
{
    int protect = -1;
    char *secret = NULL;
    const char *bad = NULL;
    for (const xml_node *f = xml_child(x, NULL, "field"); f && !bad; f = xml_next(f, NULL, "field")) {
        const char *var = xml_get_attr(f, "var");
        char *v = xml_child_text(f, NULL, "value");
        const char *val = v ? v : "";
        int b;
        if (!var) {
        } else if (strcmp(var, "muc#roomconfig_roomname") == 0) {
            if (strlen(val) > MUC_MAX_TITLE)
                bad = "the room name is too long";
            free(c->name);
            c->name = *val ? xstrdup(val) : NULL;
        } else if (strcmp(var, "muc#roomconfig_roomdesc") == 0) {
            if (strlen(val) > MUC_MAX_DESCRIPTION)
                bad = "the description is too long";
            free(c->description);
            c->description = *val ? xstrdup(val) : NULL;
        } else if (strcmp(var, "muc#roomconfig_roomsecret") == 0) {
            if (strlen(val) > MUC_MAX_PASSWORD)
                bad = "the password is too long";
            free(secret);
            secret = xstrdup(val);
        } else if (strcmp(var, "muc#roomconfig_maxusers") == 0) {
            char *end;
            long n = strtol(val, &end, 10);
            if (str_eq(val, "none") || str_eq(val, "")) {
                n = max_cap;
            } else if (*end || n <= 0) {
                bad = "the most occupants must be a positive number";
            } else if (n > max_cap) {
                snprintf(err, errlen, "a room holds at most %d occupants on this server", max_cap);
                bad = err;
            }
            if (!bad)
                c->max_users = (int)n;
        } else if (strcmp(var, "muc#roomconfig_whois") == 0) {
            if (str_eq(val, "anyone"))
                c->semi_anonymous = 0;
            else if (str_eq(val, "moderators"))
                c->semi_anonymous = 1;
            else
                bad = "whois is 'anyone' or 'moderators'";
        } else if (strcmp(var, "muc#roomconfig_allowpm") == 0) {
            int found = -1;
            for (size_t i = 0; i < ARRAY_LEN(pm_names); i++)
                if (strcmp(val, pm_names[i]) == 0)
                    found = (int)i;
            if (found < 0)
                bad = "allowpm is anyone, participants, moderators or none";
            else
                c->allow_pm = (muc_pm)found;
        } else {
            static const struct {
                const char *var;
                size_t off;
            } bools[] = {
                {"muc#roomconfig_persistentroom", offsetof(muc_room_config, persistent)},
                {"muc#roomconfig_publicroom", offsetof(muc_room_config, public_list)},
                {"muc#roomconfig_membersonly", offsetof(muc_room_config, members_only)},
                {"muc#roomconfig_moderatedroom", offsetof(muc_room_config, moderated)},
                {"muc#roomconfig_changesubject", offsetof(muc_room_config, change_subject)},
                {"muc#roomconfig_allowinvites", offsetof(muc_room_config, allow_invites)},
                {"muc#roomconfig_passwordprotectedroom", (size_t)-1},
            };
            for (size_t i = 0; i < ARRAY_LEN(bools); i++) {
                if (strcmp(var, bools[i].var) != 0)
                    continue;
                if (parse_bool(val, &b) < 0) {
                    snprintf(err, errlen, "%s is a boolean (0 or 1)", var);
                    bad = err;
                } else if (bools[i].off == (size_t)-1) {
                    protect = b;
                } else {
                    *(int *)((char *)c + bools[i].off) = b;
                }
            }
            /* Other fields (FORM_TYPE, options of other services) are ignored. */
        }
        free(v);
    }
    if (!bad) {
        if (protect < 0) /* no explicit choice: a non-empty secret means protected */
            protect = secret ? *secret != '\0' : c->password != NULL;
        if (protect) {
            if (secret && *secret) {
                free(c->password);
                c->password = secret;
                secret = NULL;
            } else if (!c->password) {
                bad = "a password-protected room needs a password (muc#roomconfig_roomsecret)";
            }
        } else {
            free(c->password);
            c->password = NULL;
        }
    }
    free(secret);
    return bad;
}

/* ---- destruction ---- */

void muc_room_destroy(muc_room *r, const char *actor, const char *reason, const char *alt)
{
    server *srv = r->svc->srv;
    for (muc_occupant *o = r->first; o; o = o->next) {
        xml_node *p = xml_new(XMLNS_CLIENT, "presence");
        char *from = xasprintf("%s/%s", r->jid, o->nick);
        xml_set_attr(p, "from", from);
        free(from);
        xml_set_attr(p, "type", "unavailable");
        xml_node *x = muc_user_x(p);
        xml_node *item = xml_add_child(x, NULL, "item");
        xml_set_attr(item, "affiliation", "none");
        xml_set_attr(item, "role", "none");
        xml_node *d = xml_add_child(x, NULL, "destroy");
        if (alt)
            xml_set_attr(d, "jid", alt);
        if (reason) {
            xml_node *rn = xml_add_child(d, NULL, "reason");
            xml_add_text(rn, reason, strlen(reason));
        }
        muc_add_status(x, 110);
        muc_send(r, o, p);
        xml_free(p);
        muc_audit_occupant(r, o, "room-leave", "room-destroyed");
    }
    compliance_audit(srv, actor, "muc-room-destroy", r->jid, NULL, reason);
    log_info("muc: %s destroyed by %s", r->jid, actor);
    muc_store_delete(r);
    muc_archive_forget(r);
    muc_remove_room(r->svc, r);
}

static void destroy_iq(muc_room *r, xml_node *iq, const xml_node *d, const char *from)
{
    server *srv = r->svc->srv;
    char *reason = xml_child_text(d, NULL, "reason");
    const char *alt_attr = xml_get_attr(d, "jid");
    char *alt = alt_attr ? jid_normalize_bare(alt_attr) : NULL;
    if (alt_attr && !alt) {
        router_bounce(srv, iq, "modify", "jid-malformed", "the alternate venue is not a JID");
    } else if (reason && strlen(reason) > MUC_MAX_REASON) {
        router_bounce(srv, iq, "modify", "not-acceptable", "the reason is too long");
    } else {
        muc_room_destroy(r, from, reason && *reason ? reason : NULL, alt);
        router_send(srv, stanza_iq_result(iq));
    }
    free(reason);
    free(alt);
}

/* ---- the owner's IQs ---- */

static void kick_non_members(muc_room *r)
{
    static const int codes[] = {322};
    for (muc_occupant *o = r->first, *next; o; o = next) {
        next = o->next;
        if (muc_room_aff(r, o->bare) < MUC_AFF_MEMBER)
            muc_room_remove(r, o, codes, 1, NULL, "the room is now for members only");
    }
}

static void submit(muc_room *r, xml_node *iq, const xml_node *x, const char *from)
{
    server *srv = r->svc->srv;
    muc_room_config next;
    config_copy(&next, &r->cfg);
    char err[160];
    const char *bad = apply_form(&next, x, srv->cfg.muc_max_occupants, err, sizeof err);
    if (bad) {
        router_bounce(srv, iq, "modify", "not-acceptable", bad);
        muc_config_clear(&next);
        return;
    }
    int was_persistent = r->cfg.persistent, was_locked = r->locked;
    int members_only_now = next.members_only && !r->cfg.members_only;
    muc_config_clear(&r->cfg);
    r->cfg = next;
    r->locked = 0;
    if (r->cfg.persistent && !was_persistent)
        muc_store_all(r);
    else if (r->cfg.persistent)
        muc_store_config(r);
    else if (was_persistent)
        muc_store_delete(r);
    if (was_locked)
        log_info("muc: %s configured and opened by %s", r->jid, from);
    compliance_audit(srv, from, "muc-room-config", r->jid, NULL, NULL);
    router_send(srv, stanza_iq_result(iq));
    if (members_only_now)
        kick_non_members(r);
    if (!was_locked) {
        static const int changed[] = {104};
        muc_room_status_message(r, changed, 1);
    }
}

void muc_config_iq(muc_room *r, xml_node *iq, const char *from)
{
    server *srv = r->svc->srv;
    const xml_node *q = xml_first_element(iq);
    char *bare = jid_normalize_bare(from);
    int get = str_eq(xml_get_attr(iq, "type"), "get");
    const xml_node *x = xml_child(q, XMLNS_DATA, "x");
    const xml_node *d = xml_child(q, MUC_NS_OWNER, "destroy");
    if (!bare || muc_room_aff(r, bare) != MUC_AFF_OWNER) {
        router_bounce(srv, iq, "auth", "forbidden", "only the room's owners may do this");
    } else if (get) {
        xml_node *res = stanza_iq_result(iq);
        xml_node *rq = xml_add_child(res, MUC_NS_OWNER, "query");
        xml_append(rq, config_form(r, srv->cfg.muc_max_occupants));
        router_send(srv, res);
    } else if (d) {
        destroy_iq(r, iq, d, from);
    } else if (x && str_eq(xml_get_attr(x, "type"), "cancel")) {
        if (r->locked) /* cancelling the initial configuration abandons the room (10.1.3) */
            muc_room_destroy(r, from, "creation cancelled", NULL);
        router_send(srv, stanza_iq_result(iq));
    } else if (x && str_eq(xml_get_attr(x, "type"), "submit")) {
        submit(r, iq, x, from);
    } else {
        router_bounce(srv, iq, "modify", "bad-request",
                      "expected a submitted or cancelled form, or <destroy/>");
    }
    free(bare);
    xml_free(iq);
}

/* ---- disco#info on the room ---- */

void muc_room_disco_info(muc_room *r, xml_node *iq)
{
    server *srv = r->svc->srv;
    if (xml_get_attr(xml_first_element(iq), "node")) {
        router_bounce(srv, iq, "cancel", "item-not-found", "no such node");
        xml_free(iq);
        return;
    }
    const muc_room_config *c = &r->cfg;
    xml_node *res = stanza_iq_result(iq);
    xml_node *q = xml_add_child(res, XMLNS_DISCO_INFO, "query");
    xml_node *id = xml_add_child(q, NULL, "identity");
    xml_set_attr(id, "category", "conference");
    xml_set_attr(id, "type", "text");
    const char *at = strchr(r->jid, '@');
    char *local = xstrndup(r->jid, at ? (size_t)(at - r->jid) : strlen(r->jid));
    xml_set_attr(id, "name", c->name ? c->name : local);
    free(local);
    const char *features[] = {
        XMLNS_DISCO_INFO,
        MUC_NS,
        XMLNS_SID,
        c->persistent ? "muc_persistent" : "muc_temporary",
        c->public_list ? "muc_public" : "muc_hidden",
        c->members_only ? "muc_membersonly" : "muc_open",
        c->moderated ? "muc_moderated" : "muc_unmoderated",
        c->password ? "muc_passwordprotected" : "muc_unsecured",
        c->semi_anonymous ? "muc_semianonymous" : "muc_nonanonymous",
    };
    for (size_t i = 0; i < ARRAY_LEN(features); i++)
        xml_set_attr(xml_add_child(q, NULL, "feature"), "var", features[i]);
    if (srv->cfg.archive) /* the room's own archive (muc_archive.c) */
        xml_set_attr(xml_add_child(q, NULL, "feature"), "var", XMLNS_MAM);
    xml_node *x = xml_add_child(q, XMLNS_DATA, "x");
    xml_set_attr(x, "type", "result");
    add_field(x, "FORM_TYPE", "hidden", NULL, MUC_NS_ROOMINFO);
    add_field(x, "muc#roominfo_description", NULL, "Description",
              c->description ? c->description : "");
    char n[24];
    snprintf(n, sizeof n, "%zu", r->noccupants);
    add_field(x, "muc#roominfo_occupants", NULL, "Number of occupants", n);
    add_field(x, "muc#roominfo_subject", NULL, "Subject", r->subject ? r->subject : "");
    add_field(x, "muc#roominfo_subjectmod", "boolean", "Participants may change the subject",
              c->change_subject ? "1" : "0");
    snprintf(n, sizeof n, "%d", c->max_users);
    add_field(x, "muc#roomconfig_maxusers", NULL, "Most occupants", n);
    router_send(srv, res);
    xml_free(iq);
}
