/* policy_service.c - effective policies in parleyd: cache, delivery, change pushes and
 * message enforcement (policy_service.h).
 *
 * The cache maps a bare JID to its effective policy. The hot path (every one-to-one
 * message) reads it and only a miss goes to the store. parleyctl changes the store from
 * another process, so the one-second tick reads the store's policy version and, when it
 * moved, drops the whole cache: changes are rare, and a group or global change can
 * affect anyone. Online users that had a policy cached get theirs recomputed at once and
 * pushed if it changed; a user that never had one cached never asked for it, so there is
 * nothing to correct on its clients. */
#include "policy_service.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "compliance.h"
#include "conn.h"
#include "iq_out.h"
#include "router.h"
#include "stanza.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

/* Cached policies beyond which those of offline users are dropped. */
#define POLICY_CACHE_MAX 10000
/* How long a pushed policy waits for the client's answer (which is only logged). */
#define PUSH_TIMEOUT_MS 30000

/* The end-to-end encryption elements of a message (as in compliance.c, which records the
 * namespace; here only their presence matters). */
static const struct {
    const char *ns, *name;
} e2e_elements[] = {
    {"urn:xmpp:omemo:2", "encrypted"},               /* OMEMO (XEP-0384) */
    {"eu.siacs.conversations.axolotl", "encrypted"}, /* legacy OMEMO */
    {"urn:xmpp:openpgp:0", "openpgp"},               /* OpenPGP (XEP-0373) */
    {"jabber:x:encrypted", "x"},                     /* legacy OpenPGP (XEP-0027) */
};

struct policy_cache {
    dict *users;         /* bare JID -> policy_effective */
    int64_t version;     /* the store's policy version the cache reflects */
    int version_known;
    int store_failing;   /* the last version poll failed (logged once) */
};

static struct policy_cache *cache_of(server *srv)
{
    if (!srv->policy) {
        srv->policy = xcalloc(1, sizeof *srv->policy);
        srv->policy->users = dict_new();
    }
    return srv->policy;
}

static void free_effective(void *p)
{
    policy_effective_clear(p);
    free(p);
}

/* ---- computing ---- */

typedef struct rows_ctx {
    policy_row *rows;
    size_t n, cap;
    const char **groups; /* distinct group names among the rows */
    size_t ngroups;
} rows_ctx;

static void add_row(void *ud, policy_scope scope, const char *name, const char *key,
                    const char *value)
{
    rows_ctx *c = ud;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->rows = xrealloc(c->rows, c->cap * sizeof *c->rows);
    }
    c->rows[c->n++] = (policy_row){scope, xstrdup(name), xstrdup(key), xstrdup(value)};
}

static void free_rows(rows_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free((char *)c->rows[i].name);
        free((char *)c->rows[i].key);
        free((char *)c->rows[i].value);
    }
    free(c->rows);
    free(c->groups);
}

/* Drop the cached policies of users without a session, once the cache is large. */
typedef struct evict_ctx {
    server *srv;
    char **keys;
    size_t n, cap;
} evict_ctx;

static int collect_offline(void *ud, const char *key, void *value)
{
    evict_ctx *e = ud;
    if (router_sessions(e->srv, key))
        return 0;
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->keys = xrealloc(e->keys, e->cap * sizeof *e->keys);
    }
    e->keys[e->n++] = xstrdup(key);
    return 0;
}

static void evict_offline(server *srv)
{
    struct policy_cache *c = cache_of(srv);
    evict_ctx e = {srv, NULL, 0, 0};
    dict_each(c->users, collect_offline, &e);
    for (size_t i = 0; i < e.n; i++) {
        free_effective(dict_del(c->users, e.keys[i]));
        free(e.keys[i]);
    }
    free(e.keys);
}

/* user's effective policy, from the cache or the store; NULL (logged) if the store fails. */
const policy_effective *policy_service_effective(server *srv, const char *user)
{
    struct policy_cache *c = cache_of(srv);
    policy_effective *e = dict_get(c->users, user);
    if (e)
        return e;
    /* The version before the values: a change in between is seen again by the tick. */
    int64_t v;
    if (!c->version_known && store_policy_version(srv->store, &v) == STORE_OK) {
        c->version = v;
        c->version_known = 1;
    }
    rows_ctx rc = {0};
    if (store_policy_for_user(srv->store, user, add_row, &rc) != STORE_OK) {
        log_error("policy of %s: %s", user, store_last_error(srv->store));
        free_rows(&rc);
        return NULL;
    }
    /* The store returns only the user's groups' rows: their names are its groups (a
     * group without values changes nothing). */
    rc.groups = xcalloc(rc.n + 1, sizeof *rc.groups);
    for (size_t i = 0; i < rc.n; i++) {
        if (rc.rows[i].scope != POLICY_GROUP)
            continue;
        if (rc.ngroups == 0 || strcmp(rc.groups[rc.ngroups - 1], rc.rows[i].name) != 0)
            rc.groups[rc.ngroups++] = rc.rows[i].name; /* rows are ordered by name */
    }
    e = xcalloc(1, sizeof *e);
    policy_resolve(rc.rows, rc.n, user, rc.groups, rc.ngroups, e);
    free_rows(&rc);
    if (dict_size(c->users) >= POLICY_CACHE_MAX)
        evict_offline(srv);
    dict_set(c->users, user, e);
    return e;
}

/* <policy xmlns='urn:parley:policy:0'><item key='...' value='...'/>...</policy> */
static xml_node *policy_element(const policy_effective *e)
{
    xml_node *p = xml_new(POLICY_NS, "policy");
    for (int k = 0; k < POLICY_NKEYS; k++) {
        xml_node *item = xml_add_child(p, NULL, "item");
        xml_set_attr(item, "key", policy_keys[k].name);
        xml_set_attr(item, "value", e->value[k]);
    }
    return p;
}

/* ---- the IQ ---- */

static void reply_error(c2s *origin, const xml_node *iq, const char *etype, const char *cond,
                        const char *text)
{
    xml_node *err = stanza_error(iq, etype, cond, text);
    if (err) {
        c2s_send(origin, err);
        xml_free(err);
    }
}

void policy_service_iq(server *srv, c2s *origin, xml_node *iq)
{
    const char *type = xml_get_attr(iq, "type");
    if (str_eq(type, "set")) {
        reply_error(origin, iq, "auth", "forbidden",
                    "the policy is set by the administrator (parleyctl policy)");
    } else if (str_eq(type, "get")) {
        const policy_effective *e = policy_service_effective(srv, origin->user);
        if (!e) {
            reply_error(origin, iq, "wait", "internal-server-error",
                        "the policy cannot be read right now");
        } else {
            xml_node *r = stanza_iq_result(iq);
            xml_append(r, policy_element(e));
            c2s_send(origin, r);
            xml_free(r);
        }
    }
    xml_free(iq);
}

/* ---- pushes after a change ---- */

static void push_answered(server *srv, void *ud, const xml_node *reply)
{
    char *to = ud;
    if (!reply)
        log_debug("policy push to %s: no answer", to);
    else if (str_eq(xml_get_attr(reply, "type"), "error"))
        log_debug("policy push to %s: the client answered with an error", to);
    free(to);
}

static void push(server *srv, const char *user, const policy_effective *e)
{
    for (c2s *s = router_sessions(srv, user); s; s = s->next_resource) {
        if (conn_is_closing(s->conn))
            continue;
        xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
        xml_set_attr(iq, "type", "set");
        xml_set_attr(iq, "to", s->full);
        xml_append(iq, policy_element(e));
        iq_out_send(srv, iq, PUSH_TIMEOUT_MS, push_answered, xstrdup(s->full));
    }
    log_info("policy of %s changed: pushed to its sessions", user);
}

void policy_service_tick(server *srv)
{
    struct policy_cache *c = cache_of(srv);
    int64_t v;
    if (store_policy_version(srv->store, &v) != STORE_OK) {
        if (!c->store_failing)
            log_error("policy: cannot read the policy version: %s", store_last_error(srv->store));
        c->store_failing = 1;
        return;
    }
    c->store_failing = 0;
    if (c->version_known && v == c->version)
        return;
    int had_version = c->version_known;
    c->version_known = 1;
    c->version = v;
    if (!had_version && dict_size(c->users) == 0)
        return; /* nothing cached yet could be stale */

    dict *old = c->users;
    c->users = dict_new();
    for (c2s *s = srv->sessions; s; s = s->next_all) {
        if (s->state != C2S_BOUND || dict_get(c->users, s->user))
            continue;
        const policy_effective *before = dict_get(old, s->user);
        if (!before)
            continue; /* never asked for: nothing to correct */
        const policy_effective *now = policy_service_effective(srv, s->user);
        if (now && !policy_effective_equal(before, now))
            push(srv, s->user, now);
    }
    dict_free(old, free_effective);
}

void policy_service_free(server *srv)
{
    if (!srv->policy)
        return;
    dict_free(srv->policy->users, free_effective);
    free(srv->policy);
    srv->policy = NULL;
}

/* ---- enforcement ---- */

static int is_encrypted(const xml_node *stanza)
{
    for (size_t i = 0; i < ARRAY_LEN(e2e_elements); i++)
        if (xml_child(stanza, e2e_elements[i].ns, e2e_elements[i].name))
            return 1;
    return 0;
}

/* Why the policy of user (the sender, or else the recipient) forbids the message, or NULL.
 * *failed is set when the policy could not be read. */
static const char *verdict(server *srv, const char *user, int sender, int encrypted,
                           int *failed, char *text, size_t len)
{
    const policy_effective *e = policy_service_effective(srv, user);
    if (!e) {
        *failed = 1;
        return "the policy cannot be read right now; the message was not delivered";
    }
    if (encrypted && !policy_true(e, POLICY_E2E_AES)) {
        if (sender)
            return "your policy does not allow end-to-end encrypted messages (e2e_aes=false); "
                   "send it unencrypted";
        snprintf(text, len, "the policy of %s does not allow end-to-end encrypted messages "
                            "(e2e_aes=false)", user);
        return text;
    }
    if (!encrypted && !policy_true(e, POLICY_E2E_PLAIN)) {
        if (sender)
            return "your policy does not allow unencrypted messages (e2e_plain=false); "
                   "encrypt it (OMEMO)";
        snprintf(text, len, "the policy of %s does not allow unencrypted messages "
                            "(e2e_plain=false)", user);
        return text;
    }
    return NULL;
}

typedef struct refusal {
    char *reason;
    int failed; /* the store failed: wait/internal-server-error, not a policy verdict */
} refusal;

static void send_refusal(server *srv, xml_node *stanza, void *ud)
{
    refusal *r = ud;
    router_bounce(srv, stanza, r->failed ? "wait" : "modify",
                  r->failed ? "internal-server-error" : "policy-violation", r->reason);
    xml_free(stanza);
    free(r->reason);
    free(r);
}

static void free_refusal(void *ud)
{
    refusal *r = ud;
    free(r->reason);
    free(r);
}

int policy_service_refuses(server *srv, xml_node *stanza, const char *bare)
{
    /* One-to-one chat only: group chat, headlines and errors are not the policy's. */
    const char *type = xml_get_attr(stanza, "type");
    if (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0)
        return 0;
    int encrypted = is_encrypted(stanza);
    if (!encrypted && !xml_child(stanza, XMLNS_CLIENT, "body"))
        return 0; /* chat states, receipts: no content to judge */
    jid from;
    if (jid_parse(xml_get_attr(stanza, "from") ? xml_get_attr(stanza, "from") : "", &from) < 0)
        return 0;
    char *sender = from.local && router_is_local_domain(srv, from.domain) ? jid_bare(&from) : NULL;
    jid_clear(&from);
    if (!sender)
        return 0;

    char text[512];
    int failed = 0;
    const char *why = verdict(srv, sender, 1, encrypted, &failed, text, sizeof text);
    /* The recipient's policy too: a client whose policy forbids a kind of message refuses
     * it anyway, and the sender should learn that now rather than never. */
    if (!why && (dict_get(cache_of(srv)->users, bare) || router_sessions(srv, bare) ||
                 store_user_exists(srv->store, bare) == STORE_OK))
        why = verdict(srv, bare, 0, encrypted, &failed, text, sizeof text);
    if (!why) {
        free(sender);
        return 0;
    }
    log_info("policy: refused a%s message from %s to %s: %s", encrypted ? "n encrypted" : "",
             sender, bare, why);
    refusal *r = xcalloc(1, sizeof *r);
    r->reason = xstrdup(why);
    r->failed = failed;
    if (compliance_enabled(srv) && !failed) {
        /* An attempted violation is on the record; the error goes out once it is durable
         * (and after anything the sender sent before, which may be held too). */
        const char *to = xml_get_attr(stanza, "to");
        compliance_hold(srv, stanza, to ? to : bare, "blocked-policy", why, send_refusal, r,
                        free_refusal);
    } else {
        send_refusal(srv, stanza, r);
    }
    free(sender);
    return 1;
}
