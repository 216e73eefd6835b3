/* omemo.c - the end-to-end encryption context of a libparley handle: the key store, and
 * this device on PEP. At each sign-in that the policy allows encryption, the account's
 * device list is fetched (so a new device id avoids the ids taken), the identity is
 * loaded or made, the signed pre-key rotated if due and the pre-keys topped up, the
 * bundle published and the device added to the list if missing. When the policy forbids
 * encryption, the device is taken off the list and its bundle retracted, so that no peer
 * encrypts to it. */
#include "omemo_internal.h"

#include "../../common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int is_online(const parley *p) { return p->phase == PH_STREAM && p->neg == NEG_ONLINE; }

int omemo_active(const parley *p)
{
    return p->omemo && p->policy.e2e_aes;
}

omemo_ctx *omemo_new(parley *p, char *why, size_t whylen)
{
    omemo_ctx *c = xcalloc(1, sizeof *c);
    const parley_options *o = &p->opt;
    om_err e = om_store_open(&c->st, o->e2e_store, o->e2e_store_key,
                             o->e2e_store_key ? NULL : o->e2e_store_passphrase, why, whylen);
    if (e != OM_OK) {
        free(c);
        return NULL;
    }
    c->persistent = o->e2e_store != NULL;
    int found = 0;
    if (om_store_own_get(c->st, &c->own, &found) != OM_OK) {
        snprintf(why, whylen, "%s", om_store_errmsg(c->st));
        om_store_close(c->st);
        free(c);
        return NULL;
    }
    c->have_own = found;
    c->lists = dict_new();
    c->bundles = dict_new();
    c->inflight = dict_new();
    c->failed = dict_new();
    c->healed = dict_new();
    snprintf(c->label, sizeof c->label, "%s", o->e2e_label ? o->e2e_label : "Parley");
    return c;
}

void omemo_free(omemo_ctx *c)
{
    if (!c)
        return;
    omemo_queue_free(c);
    dict_free(c->lists, free);
    dict_free(c->bundles, free);
    dict_free(c->inflight, NULL);
    dict_free(c->failed, free);
    dict_free(c->healed, NULL);
    om_store_close(c->st);
    secure_wipe(&c->own, sizeof c->own);
    free(c);
}

om_devlist *omemo_list(omemo_ctx *c, const char *bare)
{
    om_devlist *l = dict_get(c->lists, bare);
    if (!l) {
        l = xcalloc(1, sizeof *l);
        dict_set(c->lists, bare, l);
    }
    return l;
}

typedef struct active_ctx {
    const om_device_entry *d;
    size_t n;
    const char *bare;
    om_store *st;
} active_ctx;

static int mark_active(const char *who, const om_device *d, void *ud)
{
    active_ctx *a = ud;
    int in = 0;
    for (size_t i = 0; i < a->n; i++)
        in |= a->d[i].id == d->id;
    if (in != d->active) {
        om_device copy = *d;
        copy.active = in;
        om_store_device_put(a->st, who, &copy);
    }
    return 0;
}

void omemo_list_update(parley *p, const char *bare, const om_device_entry *d, size_t n)
{
    omemo_ctx *c = p->omemo;
    om_devlist *l = omemo_list(c, bare);
    memcpy(l->d, d, n * sizeof *d);
    l->n = n;
    l->ok = 1;
    l->unknown = 0;
    l->fetched_ms = time_mono_ms();
    /* the store remembers which devices are listed (for trust display and `parley keys`) */
    int verified_any = 0;
    om_store_has_verified(c->st, bare, &verified_any);
    for (size_t i = 0; i < n; i++) {
        if (str_eq(bare, p->account_bare) && d[i].id == c->own.device_id)
            continue;
        om_device dev;
        int found = 0;
        if (om_store_device_get(c->st, bare, d[i].id, &dev, &found) != OM_OK)
            continue;
        if (!found) {
            memset(&dev, 0, sizeof dev);
            dev.id = d[i].id;
            dev.first_seen = (int64_t)time(NULL);
            dev.trust = verified_any ? OM_TRUST_UNTRUSTED : OM_TRUST_BLIND;
        }
        dev.active = 1;
        snprintf(dev.label, sizeof dev.label, "%s", d[i].label);
        om_store_device_put(c->st, bare, &dev);
    }
    active_ctx a = {d, n, bare, c->st};
    om_store_device_each(c->st, bare, mark_active, &a);
}

void omemo_send_iq(parley *p, xml_node *iq, parley_iq_fn cb, void *ud)
{
    char *id = session_new_id(p);
    xml_set_attr(iq, "id", id);
    session_track_iq(p, id, xml_get_attr(iq, "to"), cb, ud, OM_IQ_TIMEOUT_MS, 0);
    session_send(p, iq);
    xml_free(iq);
    free(id);
}

void omemo_notice(parley *p, const char *who, unsigned long device, int key_changed,
                  const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    parley_event ev = {0};
    ev.type = PARLEY_EV_SECURITY;
    ev.from = who;
    ev.error_text = text;
    ev.e2e_device = device;
    ev.e2e_key_changed = key_changed;
    client_log(p, 2, "%s", text);
    client_emit(p, &ev);
}

/* ------------------------------------------------------------------ publishing */

static void publication_over(parley *p, int published)
{
    omemo_ctx *c = p->omemo;
    c->published = published;
    c->ready = 1;
    omemo_pump(p);
}

static void on_list_published(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)res, (void)ud;
    if (!p->omemo || !is_online(p))
        return;
    if (err != PARLEY_OK) {
        char *why = res ? im_error_text((const xml_node *)res) : xstrdup(parley_strerror(err));
        omemo_notice(p, p->account_bare, p->omemo->own.device_id, 0,
                     "could not publish this device in your OMEMO device list (%s): messages "
                     "to you cannot be end-to-end encrypted", why);
        free(why);
    }
    publication_over(p, err == PARLEY_OK);
}

static void publish_list(parley *p, const om_device_entry *d, size_t n, parley_iq_fn cb)
{
    /* XEP-0384's schema wants at least one <device/>: an empty list is no list at all */
    xml_node *iq = n ? om_publish_iq(OMEMO_NODE_DEVICES, "current", om_devices_xml(d, n), 0)
                     : om_retract_iq(OMEMO_NODE_DEVICES, "current");
    omemo_send_iq(p, iq, cb, NULL);
}

static void on_bundle_published(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)ud;
    omemo_ctx *c = p->omemo;
    if (!c || !is_online(p))
        return;
    if (err != PARLEY_OK) {
        char *why = res ? im_error_text((const xml_node *)res) : xstrdup(parley_strerror(err));
        omemo_notice(p, p->account_bare, c->own.device_id, 0,
                     c->ready ? "could not publish your new OMEMO pre-keys (%s)"
                              : "could not publish your OMEMO keys (%s): end-to-end encryption "
                                "is not available in this session", why);
        free(why);
        if (!c->ready)
            publication_over(p, 0);
        return;
    }
    if (c->ready)
        return; /* a re-publication (pre-key used, rotation): nothing more to do */
    om_devlist *l = omemo_list(c, p->account_bare);
    for (size_t i = 0; i < l->n; i++)
        if (l->d[i].id == c->own.device_id) {
            publication_over(p, 1);
            return;
        }
    if (l->n == OM_MAX_DEVICES) {
        omemo_notice(p, p->account_bare, c->own.device_id, 0,
                     "your OMEMO device list is full (%d devices); remove old devices",
                     OM_MAX_DEVICES);
        publication_over(p, 0);
        return;
    }
    om_device_entry d[OM_MAX_DEVICES];
    memcpy(d, l->d, l->n * sizeof *d);
    d[l->n].id = c->own.device_id;
    snprintf(d[l->n].label, sizeof d[l->n].label, "%s", c->label);
    memcpy(l->d, d, (l->n + 1) * sizeof *d);
    l->n++;
    publish_list(p, d, l->n, on_list_published);
}

void omemo_publish_bundle(parley *p)
{
    omemo_ctx *c = p->omemo;
    om_bundle *b = xcalloc(1, sizeof *b);
    if (om_identity_bundle(c->st, &c->own, b) != OM_OK) {
        omemo_notice(p, p->account_bare, c->own.device_id, 0, "%s", om_store_errmsg(c->st));
        free(b);
        if (!c->ready)
            publication_over(p, 0);
        return;
    }
    char id[16];
    snprintf(id, sizeof id, "%u", (unsigned)c->own.device_id);
    omemo_send_iq(p, om_publish_iq(OMEMO_NODE_BUNDLES, id, om_bundle_xml(b), 1),
                  on_bundle_published, NULL);
    free(b);
}

/* Our device list as fetched: an error that means "no such node" is an empty list. */
static int parse_own_list(parley *p, const parley_stanza *res, parley_error err,
                          om_device_entry *d, size_t *n)
{
    *n = 0;
    char why[200];
    if (err == PARLEY_OK) {
        const xml_node *devs = om_item_payload((const xml_node *)res, OMEMO_NODE_DEVICES, "devices");
        if (!devs)
            return 0;
        if (om_devices_parse(devs, d, n, why, sizeof why) != OM_OK) {
            omemo_notice(p, p->account_bare, 0, 0, "your OMEMO %s; it will be replaced", why);
            *n = 0;
        }
        return 0;
    }
    char *text = res ? im_error_text((const xml_node *)res) : NULL;
    int missing = text && strncmp(text, "item-not-found", 14) == 0;
    free(text);
    return missing ? 0 : -1;
}

static void on_own_list(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)ud;
    omemo_ctx *c = p->omemo;
    if (!c || !is_online(p))
        return;
    om_device_entry d[OM_MAX_DEVICES];
    size_t n = 0;
    if (parse_own_list(p, res, err, d, &n) < 0) {
        char *why = res ? im_error_text((const xml_node *)res) : xstrdup(parley_strerror(err));
        omemo_notice(p, p->account_bare, 0, 0,
                     "the server does not keep OMEMO device lists (%s): end-to-end encryption "
                     "is not available", why);
        free(why);
        publication_over(p, 0);
        return;
    }
    if (!c->have_own) {
        uint32_t taken[OM_MAX_DEVICES];
        for (size_t i = 0; i < n; i++)
            taken[i] = d[i].id;
        int created = 0;
        if (om_identity_load_or_create(c->st, taken, n, &c->own, &created) != OM_OK) {
            omemo_notice(p, p->account_bare, 0, 0, "%s", om_store_errmsg(c->st));
            publication_over(p, 0);
            return;
        }
        c->have_own = 1;
        if (created)
            client_log(p, 1, "new OMEMO device %u", (unsigned)c->own.device_id);
    }
    omemo_list_update(p, p->account_bare, d, n);
    int changed = 0;
    if (om_identity_maintain(c->st, &c->own, (int64_t)time(NULL), OM_SPK_ROTATE_SECS, &changed) !=
        OM_OK)
        omemo_notice(p, p->account_bare, 0, 0, "%s", om_store_errmsg(c->st));
    c->next_maintain_ms = time_mono_ms() + OM_MAINTAIN_EVERY_MS;
    omemo_publish_bundle(p); /* at each sign-in: the server's copy may be stale or gone */
}

static void on_withdrawn(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)res, (void)err, (void)ud;
}

static void on_own_list_withdraw(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)ud;
    omemo_ctx *c = p->omemo;
    if (!c || !is_online(p))
        return;
    om_device_entry d[OM_MAX_DEVICES];
    size_t n = 0, k = 0;
    if (parse_own_list(p, res, err, d, &n) == 0 && c->have_own) {
        for (size_t i = 0; i < n; i++)
            if (d[i].id != c->own.device_id)
                d[k++] = d[i];
        if (k != n) {
            publish_list(p, d, k, on_withdrawn);
            char id[16];
            snprintf(id, sizeof id, "%u", (unsigned)c->own.device_id);
            omemo_send_iq(p, om_retract_iq(OMEMO_NODE_BUNDLES, id), on_withdrawn, NULL);
            client_log(p, 1, "policy: OMEMO device %u withdrawn", (unsigned)c->own.device_id);
        }
        omemo_list_update(p, p->account_bare, d, k);
    }
    c->withdrawn = 1;
}

void omemo_on_online(parley *p)
{
    omemo_ctx *c = p->omemo;
    if (!c)
        return;
    c->ready = 0;
    c->published = 0;
    c->withdrawn = 0;
    /* device lists may have changed while we were away */
    dict_free(c->lists, free);
    c->lists = dict_new();
    dict_free(c->failed, free);
    c->failed = dict_new();
    dict_free(c->healed, NULL);
    c->healed = dict_new();
    if (!p->policy.e2e_aes) {
        c->ready = 1; /* sends go out in plaintext at once */
        if (c->have_own)
            omemo_send_iq(p, om_items_iq(p->account_bare, OMEMO_NODE_DEVICES, NULL),
                          on_own_list_withdraw, NULL);
        else
            c->withdrawn = 1;
        return;
    }
    omemo_send_iq(p, om_items_iq(p->account_bare, OMEMO_NODE_DEVICES, NULL), on_own_list, NULL);
}

void omemo_on_policy(parley *p)
{
    omemo_ctx *c = p->omemo;
    if (!c || !is_online(p))
        return;
    int want = p->policy.e2e_aes;
    if ((want && (c->withdrawn || (!c->published && c->ready))) || (!want && !c->withdrawn))
        omemo_on_online(p);
    else
        omemo_pump(p);
}

void omemo_on_offline(parley *p, parley_error err)
{
    omemo_ctx *c = p->omemo;
    if (!c)
        return;
    c->ready = 0;
    c->published = 0;
    omemo_queue_hold(p, err);
}

void omemo_give_up(parley *p, parley_error err)
{
    if (p->omemo)
        omemo_queue_fail_all(p, err, "not sent: the connection was lost before the "
                             "recipient's encryption keys could be fetched");
}

void omemo_timers(parley *p, int64_t now_ms)
{
    omemo_ctx *c = p->omemo;
    if (!c || !c->published || now_ms < c->next_maintain_ms)
        return;
    c->next_maintain_ms = now_ms + OM_MAINTAIN_EVERY_MS;
    int changed = 0;
    if (om_identity_maintain(c->st, &c->own, (int64_t)time(NULL), OM_SPK_ROTATE_SECS, &changed) ==
            OM_OK && changed)
        omemo_publish_bundle(p);
}
