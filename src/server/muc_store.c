/* muc_store.c - persistent rooms in the key-value store: collection "muc-room", owner
 * the room's JID, keys "config", "affiliations", "subject" and one "h-SEQ" per message
 * of history (written as it is said, so that no write grows with the history's length).
 * Temporary rooms are never written. */
#include "../common/log.h"
#include "../common/util.h"
#include "muc_internal.h"
#include "store.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define COLLECTION "muc-room"
/* The largest document read back: a full affiliation list. */
#define MAX_DOC (16u << 20)

static void put(muc_room *r, const char *key, const xml_node *doc)
{
    server *srv = r->svc->srv;
    char *text = xml_to_string(doc, XMLNS_CLIENT);
    if (store_kv_put(srv->store, COLLECTION, r->jid, key, text) != STORE_OK)
        log_error("muc: saving %s of %s failed: %s", key, r->jid, store_last_error(srv->store));
    free(text);
}

static void set_int(xml_node *n, const char *name, int v)
{
    char num[16];
    snprintf(num, sizeof num, "%d", v);
    xml_set_attr(n, name, num);
}

void muc_store_config(muc_room *r)
{
    if (!r->cfg.persistent)
        return;
    const muc_room_config *c = &r->cfg;
    xml_node *n = xml_new(XMLNS_CLIENT, "config");
    if (c->name)
        xml_set_attr(n, "name", c->name);
    if (c->description)
        xml_set_attr(n, "description", c->description);
    if (c->password)
        xml_set_attr(n, "password", c->password);
    set_int(n, "public", c->public_list);
    set_int(n, "members_only", c->members_only);
    set_int(n, "moderated", c->moderated);
    set_int(n, "semi_anonymous", c->semi_anonymous);
    set_int(n, "change_subject", c->change_subject);
    set_int(n, "allow_invites", c->allow_invites);
    set_int(n, "allow_pm", (int)c->allow_pm);
    set_int(n, "max_users", c->max_users);
    put(r, "config", n);
    xml_free(n);
}

static int add_aff_item(void *ud, const char *key, void *value)
{
    xml_node *item = xml_add_child(ud, NULL, "item");
    xml_set_attr(item, "jid", key);
    xml_set_attr(item, "affiliation", muc_aff_name((muc_aff)(intptr_t)value));
    return 0;
}

void muc_store_affiliations(muc_room *r)
{
    if (!r->cfg.persistent)
        return;
    xml_node *n = xml_new(XMLNS_CLIENT, "affiliations");
    dict_each(r->affs, add_aff_item, n);
    put(r, "affiliations", n);
    xml_free(n);
}

void muc_store_subject(muc_room *r)
{
    if (!r->cfg.persistent)
        return;
    xml_node *n = xml_new(XMLNS_CLIENT, "subject");
    if (r->subject_from)
        xml_set_attr(n, "nick", r->subject_from);
    if (r->subject)
        xml_add_text(n, r->subject, strlen(r->subject));
    put(r, "subject", n);
    xml_free(n);
}

static void history_key(int64_t seq, char key[24])
{
    /* Fixed width: the store lists keys in byte order, which is then numeric order. */
    snprintf(key, 24, "h-%016" PRIx64, (uint64_t)seq);
}

void muc_store_history_add(muc_room *r, const muc_history_entry *e)
{
    if (!r->cfg.persistent)
        return;
    char key[24];
    xml_node *n = xml_new(XMLNS_CLIENT, "entry");
    char ts[24];
    snprintf(ts, sizeof ts, "%" PRId64, e->ts_us);
    xml_set_attr(n, "ts", ts);
    xml_append(n, xml_copy(e->msg));
    history_key(e->seq, key);
    put(r, key, n);
    xml_free(n);
}

void muc_store_history_drop(muc_room *r, int64_t seq)
{
    if (!r->cfg.persistent)
        return;
    server *srv = r->svc->srv;
    char key[24];
    history_key(seq, key);
    if (store_kv_del(srv->store, COLLECTION, r->jid, key) != STORE_OK)
        log_error("muc: trimming the history of %s failed: %s", r->jid,
                  store_last_error(srv->store));
}

void muc_store_delete(muc_room *r)
{
    server *srv = r->svc->srv;
    if (store_kv_del(srv->store, COLLECTION, r->jid, NULL) != STORE_OK)
        log_error("muc: deleting %s from the store failed: %s", r->jid,
                  store_last_error(srv->store));
}

void muc_store_all(muc_room *r)
{
    muc_store_config(r);
    muc_store_affiliations(r);
    if (r->subject)
        muc_store_subject(r);
    size_t cap = (size_t)r->svc->srv->cfg.muc_history;
    for (size_t i = 0; i < r->hist_len; i++)
        muc_store_history_add(r, &r->hist[(r->hist_start + i) % cap]);
}

/* ---- loading ---- */

typedef struct load_ctx {
    muc *m;
    dict *into; /* room JID -> muc_room */
    int bad;
} load_ctx;

static int get_int(const xml_node *n, const char *name, int dflt)
{
    const char *v = xml_get_attr(n, name);
    return v ? atoi(v) : dflt;
}

static char *get_str(const xml_node *n, const char *name)
{
    const char *v = xml_get_attr(n, name);
    return v ? xstrdup(v) : NULL;
}

static void load_config(muc_room *r, const xml_node *n)
{
    const config *cfg = &r->svc->srv->cfg;
    muc_room_config *c = &r->cfg;
    muc_config_clear(c);
    muc_config_defaults(c, cfg);
    c->persistent = 1;
    c->name = get_str(n, "name");
    c->description = get_str(n, "description");
    c->password = get_str(n, "password");
    c->public_list = get_int(n, "public", 1) != 0;
    c->members_only = get_int(n, "members_only", 0) != 0;
    c->moderated = get_int(n, "moderated", 0) != 0;
    c->semi_anonymous = get_int(n, "semi_anonymous", 0) != 0;
    c->change_subject = get_int(n, "change_subject", 0) != 0;
    c->allow_invites = get_int(n, "allow_invites", 1) != 0;
    int pm = get_int(n, "allow_pm", MUC_PM_ANYONE);
    c->allow_pm = pm >= MUC_PM_NONE && pm <= MUC_PM_ANYONE ? (muc_pm)pm : MUC_PM_ANYONE;
    c->max_users = get_int(n, "max_users", cfg->muc_max_occupants);
    /* The server's ceiling may have been lowered since the room was configured. */
    if (c->max_users <= 0 || c->max_users > cfg->muc_max_occupants)
        c->max_users = cfg->muc_max_occupants;
}

static void load_entry(void *ud, const char *owner, const char *key, const char *value)
{
    load_ctx *lc = ud;
    muc *m = lc->m;
    xml_node *doc = xml_parse_document(value, strlen(value), XMLNS_CLIENT, MAX_DOC);
    if (!doc) {
        log_error("muc: stored %s of %s cannot be parsed; ignored", key, owner);
        lc->bad++;
        return;
    }
    muc_room *r = dict_get(lc->into, owner);
    if (!r) {
        r = muc_room_new(m, owner);
        dict_set(lc->into, r->jid, r);
    }
    if (strcmp(key, "config") == 0) {
        load_config(r, doc);
    } else if (strcmp(key, "affiliations") == 0) {
        for (const xml_node *it = xml_child(doc, NULL, "item"); it; it = xml_next(it, NULL, "item")) {
            int aff = muc_aff_parse(xml_get_attr(it, "affiliation"));
            if (aff > MUC_AFF_NONE && xml_get_attr(it, "jid"))
                muc_room_set_aff(r, xml_get_attr(it, "jid"), (muc_aff)aff);
        }
    } else if (strcmp(key, "subject") == 0) {
        free(r->subject);
        free(r->subject_from);
        r->subject = xml_text(doc);
        r->subject_from = get_str(doc, "nick");
    } else if (strncmp(key, "h-", 2) == 0) {
        const xml_node *msg = xml_first_element(doc);
        const char *ts = xml_get_attr(doc, "ts");
        int64_t seq = (int64_t)strtoull(key + 2, NULL, 16);
        if (msg && ts)
            muc_history_add(r, msg, strtoll(ts, NULL, 10), seq, 0);
    }
    xml_free(doc);
}

typedef struct sweep_ctx {
    char **drop;
    size_t n, cap;
} sweep_ctx;

static int find_incomplete(void *ud, const char *key, void *value)
{
    sweep_ctx *s = ud;
    muc_room *r = value;
    if (!r->cfg.persistent) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 8;
            s->drop = xrealloc(s->drop, s->cap * sizeof *s->drop);
        }
        s->drop[s->n++] = xstrdup(key);
    }
    return 0;
}

/* Load the rooms of owner (NULL: every room) into rooms, then drop what has no
 * configuration. */
static int load(muc *m, dict *rooms, const char *owner)
{
    server *srv = m->srv;
    load_ctx lc = {m, rooms, 0};
    if (store_kv_list(srv->store, COLLECTION, owner, load_entry, &lc) != STORE_OK) {
        log_error("muc: loading rooms failed: %s", store_last_error(srv->store));
        return -1;
    }
    /* Documents without a configuration are leftovers of an interrupted write: a room
     * only exists in the store once its owner made it persistent. */
    sweep_ctx s = {0};
    dict_each(rooms, find_incomplete, &s);
    for (size_t i = 0; i < s.n; i++) {
        log_error("muc: stored room %s has no configuration; not loaded", s.drop[i]);
        muc_room_free(dict_del(rooms, s.drop[i]));
        free(s.drop[i]);
    }
    free(s.drop);
    return 0;
}

int muc_store_load(muc *m)
{
    return load(m, m->rooms, NULL);
}

static void free_room(void *value)
{
    muc_room_free(value);
}

muc_room *muc_store_load_room(muc *m, const char *room_jid)
{
    dict *one = dict_new();
    muc_room *r = NULL;
    if (load(m, one, room_jid) == 0 && (r = dict_del(one, room_jid)) != NULL) {
        muc_room_free(dict_del(m->rooms, room_jid));
        dict_set(m->rooms, r->jid, r);
    }
    dict_free(one, free_room);
    return r;
}
