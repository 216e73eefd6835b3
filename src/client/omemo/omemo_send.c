/* omemo_send.c - the outgoing side: every message parley_send_message hands over.
 *
 * Group chat, and everything when the policy forbids encryption, goes out in plaintext
 * at once. Otherwise the message waits in a queue (in order) while the recipient's and
 * our own device lists are fetched (if not fresh) and then the bundles of devices we have
 * no session with yet; then it is encrypted to every usable device (the recipient's and
 * our other ones). With no usable device of the recipient it goes out in plaintext if the
 * policy allows (and the user is told), or is refused with a reason.
 *
 * The queue is not on the stream yet, so XEP-0198 cannot carry it across a lost
 * connection, and the key fetches die with the connection (their IQs are not repeated):
 * while the client reconnects, the queue is kept and starts over at the device lists once
 * online again, resumed or bound anew. A message waits at most OM_SEND_WAIT_MS across lost
 * connections, and is refused (the user told it was not sent) when the client gives up. */
#include "omemo_internal.h"

#include "../../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XMLNS_EME "urn:xmpp:eme:0"
#define XMLNS_HINTS "urn:xmpp:hints"
#define FALLBACK_BODY "[This message is end-to-end encrypted with OMEMO (urn:xmpp:omemo:2); " \
                      "your client cannot decrypt it.]"

/* How long a message may wait for a connection on which its keys can be fetched. */
#define OM_SEND_WAIT_MS (120 * 1000)

enum { ST_LISTS = 0, ST_WAIT_LISTS, ST_BUNDLES, ST_WAIT_BUNDLES, ST_SEND };

struct om_out {
    char *id, *to, *bare, *type, *body;
    int stage;
    uint32_t heal;  /* != 0: an empty message with a new key exchange to this device */
    int64_t give_up_ms; /* refused if a lost connection finds it still queued after this */
    om_out *next;
};

static int is_online(const parley *p) { return p->phase == PH_STREAM && p->neg == NEG_ONLINE; }

static void out_free(om_out *o)
{
    if (o->body) {
        secure_wipe(o->body, strlen(o->body));
        free(o->body);
    }
    free(o->id);
    free(o->to);
    free(o->bare);
    free(o->type);
    free(o);
}

void omemo_queue_free(omemo_ctx *c)
{
    while (c->queue) {
        om_out *o = c->queue;
        c->queue = o->next;
        out_free(o);
    }
    c->queue_tail = NULL;
}

static void emit_sent(parley *p, const char *id, const char *to, int encrypted)
{
    parley_event ev = {0};
    ev.type = PARLEY_EV_SENT;
    ev.id = id;
    ev.to = to;
    ev.msg_type = "chat";
    ev.encrypted = encrypted;
    client_emit(p, &ev);
}

/* A message that cannot be sent: the same event as a bounce, with the reason. */
static void emit_refused(parley *p, const char *id, const char *to, parley_error err,
                         const char *why)
{
    parley_event ev = {0};
    ev.type = PARLEY_EV_MESSAGE;
    ev.from = to;
    ev.to = p->bound;
    ev.id = id;
    ev.msg_type = "error";
    ev.error = err;
    ev.error_text = why;
    client_emit(p, &ev);
}

void omemo_queue_fail_all(parley *p, parley_error err, const char *why)
{
    omemo_ctx *c = p->omemo;
    while (c->queue) {
        om_out *o = c->queue;
        c->queue = o->next;
        if (!o->heal)
            emit_refused(p, o->id, o->to, err, why);
        out_free(o);
    }
    c->queue_tail = NULL;
}

void omemo_queue_hold(parley *p, parley_error err)
{
    omemo_ctx *c = p->omemo;
    int64_t now = time_mono_ms();
    om_out *keep = NULL, **tail = &keep;
    c->queue_tail = NULL;
    while (c->queue) {
        om_out *o = c->queue;
        c->queue = o->next;
        o->next = NULL;
        if (o->heal || now >= o->give_up_ms) {
            /* healing is redone per sign-in anyway; a user's message is told about */
            if (!o->heal)
                emit_refused(p, o->id, o->to, err,
                             "not sent: the connection was lost while the recipient's "
                             "encryption keys were being fetched, and it did not come back "
                             "in time");
            out_free(o);
            continue;
        }
        o->stage = ST_LISTS; /* the fetches died with the connection: ask again */
        *tail = o;
        tail = &o->next;
        c->queue_tail = o;
    }
    c->queue = keep;
}

/* No end-to-end encryption possible for this message: plaintext if allowed. */
static void without_e2e(parley *p, om_out *o, const char *why)
{
    if (p->policy.e2e_plain) {
        im_send_plain(p, o->to, o->type, o->body, o->id);
        omemo_notice(p, o->bare, 0, 0, "sent to %s without end-to-end encryption: %s", o->bare,
                     why);
        emit_sent(p, o->id, o->to, 0);
        return;
    }
    char text[512];
    snprintf(text, sizeof text, "not sent: %s, and the policy of your organisation forbids "
             "messages without end-to-end encryption", why);
    emit_refused(p, o->id, o->to, PARLEY_ERR_POLICY, text);
}

/* ------------------------------------------------------------------ fetching */

static void on_list(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    char *bare = ud;
    omemo_ctx *c = p->omemo;
    if (c) {
        om_devlist *l = omemo_list(c, bare);
        l->fetching = 0;
        l->fetched_ms = time_mono_ms();
        om_device_entry d[OM_MAX_DEVICES];
        size_t n = 0;
        char why[160] = "";
        const xml_node *devs =
            err == PARLEY_OK ? om_item_payload((const xml_node *)res, OMEMO_NODE_DEVICES, "devices")
                             : NULL;
        char *etext = err != PARLEY_OK && res ? im_error_text((const xml_node *)res) : NULL;
        if (err == PARLEY_OK && devs && om_devices_parse(devs, d, &n, why, sizeof why) != OM_OK) {
            omemo_notice(p, bare, 0, 0, "the OMEMO %s of %s was refused", why, bare);
            l->ok = 0;
            l->unknown = 1;
            snprintf(l->error, sizeof l->error, "its device list is malformed");
        } else if (err == PARLEY_OK || (etext && strncmp(etext, "item-not-found", 14) == 0)) {
            omemo_list_update(p, bare, d, n); /* no node: no devices */
            l->error[0] = '\0';
        } else {
            /* An error answer is the server saying there is nothing for us (no PEP,
             * not allowed to see it); no answer at all says nothing. */
            l->ok = 0;
            l->unknown = !res || err == PARLEY_ERR_TIMEOUT || err == PARLEY_ERR_UNREACHABLE;
            snprintf(l->error, sizeof l->error, "its device list could not be fetched (%s)",
                     etext ? etext : parley_strerror(err));
        }
        free(etext);
        omemo_pump(p);
    }
    free(bare);
}

static void fetch_list(parley *p, const char *bare)
{
    om_devlist *l = omemo_list(p->omemo, bare);
    if (l->fetching)
        return;
    l->fetching = 1;
    omemo_send_iq(p, om_items_iq(bare, OMEMO_NODE_DEVICES, NULL), on_list, xstrdup(bare));
}

static int list_fresh(omemo_ctx *c, const char *bare)
{
    om_devlist *l = omemo_list(c, bare);
    return l->fetched_ms && time_mono_ms() - l->fetched_ms < DEVLIST_FRESH_MS;
}

static void bundle_failed(omemo_ctx *c, const char *key, const char *why)
{
    om_failure *f = xcalloc(1, sizeof *f);
    f->at_ms = time_mono_ms();
    snprintf(f->why, sizeof f->why, "%s", why);
    free(dict_set(c->failed, key, f));
}

/* Check a fetched bundle against what we know of the device, and keep it. */
static void accept_bundle(parley *p, const char *bare, uint32_t id, const char *key,
                          om_bundle *b)
{
    omemo_ctx *c = p->omemo;
    if (om_spk_verify(b->ik, b->spk, b->spks) != OM_OK) {
        omemo_notice(p, bare, id, 0, "the OMEMO bundle of %s (device %u) has an invalid "
                     "signature and was refused", bare, (unsigned)id);
        bundle_failed(c, key, "its bundle has an invalid signature");
        free(b);
        return;
    }
    om_device dev;
    int found = 0;
    if (om_store_device_get(c->st, bare, id, &dev, &found) == OM_OK) {
        int verified_any = 0;
        om_store_has_verified(c->st, bare, &verified_any);
        if (!found) {
            memset(&dev, 0, sizeof dev);
            dev.id = id;
            dev.active = 1;
            dev.first_seen = (int64_t)time(NULL);
            dev.trust = verified_any ? OM_TRUST_UNTRUSTED : OM_TRUST_BLIND;
        }
        if (dev.has_ik && memcmp(dev.ik, b->ik, OM_KEY) != 0) {
            char fp[OM_FP_LEN];
            om_fingerprint(b->ik, fp);
            omemo_notice(p, bare, id, 1, "WARNING: the identity key of %s device %u CHANGED "
                         "(new fingerprint %s). Verify it before trusting it.", bare,
                         (unsigned)id, fp);
            dev.ik_changed = 1;
            if (dev.trust == OM_TRUST_VERIFIED || verified_any)
                dev.trust = OM_TRUST_UNTRUSTED;
        }
        memcpy(dev.ik, b->ik, OM_KEY);
        dev.has_ik = 1;
        om_store_device_put(c->st, bare, &dev);
    }
    free(dict_set(c->bundles, key, b));
}

static void on_bundle(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    char *key = ud; /* "jid/id" */
    omemo_ctx *c = p->omemo;
    if (c) {
        dict_del(c->inflight, key);
        char *slash = strrchr(key, '/');
        *slash = '\0';
        uint32_t id = (uint32_t)strtoul(slash + 1, NULL, 10);
        const char *bare = key;
        char why[200] = "";
        const xml_node *bel =
            err == PARLEY_OK ? om_item_payload((const xml_node *)res, OMEMO_NODE_BUNDLES, "bundle")
                             : NULL;
        om_bundle *b = xcalloc(1, sizeof *b);
        *slash = '/';
        if (bel && om_bundle_parse(bel, b, why, sizeof why) == OM_OK) {
            *slash = '\0';
            char *k = xasprintf("%s/%u", bare, (unsigned)id);
            accept_bundle(p, bare, id, k, b);
            free(k);
            *slash = '/';
        } else {
            free(b);
            if (!why[0]) {
                char *etext = res ? im_error_text((const xml_node *)res) : NULL;
                snprintf(why, sizeof why, "its bundle could not be fetched (%s)",
                         etext ? etext : bel ? "malformed" : err ? parley_strerror(err) : "empty");
                free(etext);
            } else {
                *slash = '\0';
                omemo_notice(p, bare, id, 0, "the OMEMO bundle of %s (device %u) was refused: %s",
                             bare, (unsigned)id, why);
                *slash = '/';
            }
            bundle_failed(c, key, why);
        }
        omemo_pump(p);
    }
    free(key);
}

/* Does this device need its bundle fetched (no session, none cached, none failing)? */
static int needs_bundle(omemo_ctx *c, const char *bare, uint32_t id, const char *key)
{
    if (dict_get(c->bundles, key) || dict_get(c->inflight, key))
        return 0;
    om_failure *f = dict_get(c->failed, key);
    if (f && time_mono_ms() - f->at_ms < BUNDLE_RETRY_MS)
        return 0;
    om_device dev;
    int found = 0;
    if (om_store_device_get(c->st, bare, id, &dev, &found) == OM_OK && found &&
        dev.trust == OM_TRUST_UNTRUSTED)
        return 0;
    buf blob;
    buf_init(&blob);
    int has = 0;
    om_store_session_get(c->st, bare, id, &blob, &has);
    if (blob.data)
        secure_wipe(blob.data, blob.len);
    buf_free(&blob);
    return !has;
}

/* Start the bundle fetches this message needs; the number still in flight. */
static int fetch_bundles(parley *p, const char *bare)
{
    omemo_ctx *c = p->omemo;
    om_devlist *l = omemo_list(c, bare);
    int inflight = 0;
    for (size_t i = 0; i < l->n; i++) {
        uint32_t id = l->d[i].id;
        if (str_eq(bare, p->account_bare) && id == c->own.device_id)
            continue;
        char *key = xasprintf("%s/%u", bare, (unsigned)id);
        if (dict_get(c->inflight, key)) {
            inflight++;
        } else if (needs_bundle(c, bare, id, key)) {
            dict_set(c->inflight, key, (void *)1);
            char item[16];
            snprintf(item, sizeof item, "%u", (unsigned)id);
            omemo_send_iq(p, om_items_iq(bare, OMEMO_NODE_BUNDLES, item), on_bundle, xstrdup(key));
            inflight++;
        }
        free(key);
    }
    return inflight;
}

static int bundles_inflight(omemo_ctx *c, const char *bare)
{
    om_devlist *l = omemo_list(c, bare);
    int n = 0;
    for (size_t i = 0; i < l->n; i++) {
        char *key = xasprintf("%s/%u", bare, (unsigned)l->d[i].id);
        n += dict_get(c->inflight, key) != NULL;
        free(key);
    }
    return n;
}

/* ------------------------------------------------------------------ encrypting */

typedef struct targets {
    om_target t[2 * OM_MAX_DEVICES];
    size_t n, nrecipient, untrusted;
    char why[200];
} targets;

static void add_targets(parley *p, targets *ts, const char *bare, int recipient)
{
    omemo_ctx *c = p->omemo;
    om_devlist *l = omemo_list(c, bare);
    for (size_t i = 0; i < l->n; i++) {
        uint32_t id = l->d[i].id;
        if (str_eq(bare, p->account_bare) && id == c->own.device_id)
            continue;
        om_device dev;
        int found = 0;
        if (om_store_device_get(c->st, bare, id, &dev, &found) == OM_OK && found &&
            dev.trust == OM_TRUST_UNTRUSTED) {
            ts->untrusted += recipient;
            continue;
        }
        char *key = xasprintf("%s/%u", bare, (unsigned)id);
        om_failure *f = dict_get(c->failed, key);
        if (f && recipient && !ts->why[0])
            snprintf(ts->why, sizeof ts->why, "%s", f->why);
        om_target *t = &ts->t[ts->n++];
        t->jid = str_eq(bare, p->account_bare) ? p->account_bare : bare;
        t->device_id = id;
        t->bundle = dict_get(c->bundles, key);
        t->result = OM_OK;
        ts->nrecipient += recipient;
        free(key);
    }
}

static void forget_used_bundles(omemo_ctx *c, const targets *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        if (!ts->t[i].bundle || ts->t[i].result != OM_OK)
            continue;
        char *key = xasprintf("%s/%u", ts->t[i].jid, (unsigned)ts->t[i].device_id);
        free(dict_del(c->bundles, key));
        free(key);
    }
}

static xml_node *encrypted_message(const char *to, const char *type, const char *id,
                                   xml_node *enc, int with_body)
{
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "to", to);
    xml_set_attr(m, "type", type);
    xml_set_attr(m, "id", id);
    xml_append(m, enc);
    /* XEP-0380: say what it is, so a client without OMEMO can tell the user */
    xml_node *eme = xml_add_child(m, XMLNS_EME, "encryption");
    xml_set_attr(eme, "namespace", XMLNS_OMEMO);
    xml_set_attr(eme, "name", "OMEMO");
    if (with_body)
        xml_add_text(xml_add_child(m, XMLNS_CLIENT, "body"), FALLBACK_BODY,
                     strlen(FALLBACK_BODY));
    /* XEP-0334: archives keep it although its body is only a fallback */
    xml_add_child(m, XMLNS_HINTS, "store");
    return m;
}

/* Session healing: a new session with one device, announced by an empty message. */
static void heal_now(parley *p, om_out *o)
{
    omemo_ctx *c = p->omemo;
    char *key = xasprintf("%s/%u", o->bare, (unsigned)o->heal);
    om_target t = {o->bare, o->heal, dict_get(c->bundles, key), OM_OK};
    size_t nkeys = 0;
    om_err err = OM_OK;
    xml_node *enc = t.bundle ? om_message_encrypt(c->st, &c->own, p->account_bare, o->bare, NULL,
                                                  &t, 1, &nkeys, &err)
                             : NULL;
    if (enc) {
        free(dict_del(c->bundles, key));
        xml_node *m = encrypted_message(o->to, "chat", o->id, enc, 0);
        session_send(p, m);
        xml_free(m);
        omemo_notice(p, o->bare, o->heal, 0, "a new OMEMO session was started with %s device %u "
                     "(the old one was unusable); ask them to send again", o->bare,
                     (unsigned)o->heal);
    } else {
        client_log(p, 2, "could not start a new OMEMO session with %s device %u", o->bare,
                   (unsigned)o->heal);
    }
    free(key);
}

static void encrypt_and_send(parley *p, om_out *o)
{
    omemo_ctx *c = p->omemo;
    if (o->heal) {
        heal_now(p, o);
        return;
    }
    om_devlist *rl = omemo_list(c, o->bare);
    targets *ts = xcalloc(1, sizeof *ts);
    add_targets(p, ts, o->bare, 1);
    if (!str_eq(o->bare, p->account_bare))
        add_targets(p, ts, p->account_bare, 0);
    if (ts->nrecipient == 0 && rl->unknown) {
        /* Sending in plaintext because an answer was lost or garbled would let a network
         * fault, or whoever caused it, decide that a message goes unencrypted. */
        char text[300];
        snprintf(text, sizeof text, "not sent: %s: %s; nothing was sent without end-to-end "
                 "encryption, try again", o->bare, rl->error);
        emit_refused(p, o->id, o->to, PARLEY_ERR_UNREACHABLE, text);
        free(ts);
        return;
    }
    if (ts->nrecipient == 0) {
        const char *why = !rl->ok && rl->error[0] ? rl->error
                          : ts->untrusted ? "none of its devices is trusted (verify them with "
                                            "/trust)"
                                          : "it has no OMEMO device";
        char text[300];
        snprintf(text, sizeof text, "%s: %s", o->bare, why);
        without_e2e(p, o, text);
        free(ts);
        return;
    }
    size_t nkeys = 0;
    om_err err = OM_OK;
    xml_node *enc = om_message_encrypt(c->st, &c->own, p->account_bare, o->bare, o->body, ts->t,
                                       ts->n, &nkeys, &err);
    size_t for_recipient = 0;
    for (size_t i = 0; i < ts->n; i++) {
        om_target *t = &ts->t[i];
        if (t->result == OM_OK) {
            for_recipient += t->jid != p->account_bare;
        } else if (t->result != OM_ERR_NO_SESSION) {
            omemo_notice(p, t->jid, t->device_id, 0, "cannot encrypt for %s device %u: %s",
                         t->jid, (unsigned)t->device_id, om_strerror(t->result));
        }
    }
    if (!enc || for_recipient == 0) {
        char text[300];
        snprintf(text, sizeof text, "%s: %s", o->bare,
                 err != OM_OK ? om_strerror(err)
                 : ts->why[0] ? ts->why
                              : "no session could be built with any of its devices");
        xml_free(enc);
        /* keys already given to our own devices are not sent: that session just moved on */
        without_e2e(p, o, text);
        free(ts);
        return;
    }
    forget_used_bundles(c, ts);
    xml_node *m = encrypted_message(o->to, o->type, o->id, enc, 1);
    session_send(p, m);
    xml_free(m);
    emit_sent(p, o->id, o->to, 1);
    free(ts);
}

void omemo_send_empty(parley *p, const char *bare, uint32_t device, const char *to)
{
    omemo_ctx *c = p->omemo;
    if (!c || !c->published)
        return;
    om_target t = {bare, device, NULL, OM_OK};
    size_t nkeys = 0;
    om_err err;
    xml_node *enc = om_message_encrypt(c->st, &c->own, p->account_bare, bare, NULL, &t, 1,
                                       &nkeys, &err);
    if (!enc)
        return;
    char *id = session_new_id(p);
    xml_node *m = encrypted_message(to ? to : bare, "chat", id, enc, 0);
    session_send(p, m);
    xml_free(m);
    free(id);
}

/* ------------------------------------------------------------------ the queue */

/* Move the head message on; 1 when it is done (sent or refused). */
static int advance(parley *p, om_out *o)
{
    omemo_ctx *c = p->omemo;
    if (!c->ready)
        return 0;
    if (!p->policy.e2e_aes || !c->published) {
        if (!o->heal)
            without_e2e(p, o, p->policy.e2e_aes ? "your OMEMO keys could not be published"
                                                : "end-to-end encryption is disabled by policy");
        return 1;
    }
    switch (o->stage) {
    case ST_LISTS:
        if (!list_fresh(c, o->bare))
            fetch_list(p, o->bare);
        if (!list_fresh(c, p->account_bare))
            fetch_list(p, p->account_bare);
        o->stage = ST_WAIT_LISTS;
        /* fall through */
    case ST_WAIT_LISTS:
        if (omemo_list(c, o->bare)->fetching || omemo_list(c, p->account_bare)->fetching)
            return 0;
        o->stage = ST_BUNDLES;
        /* fall through */
    case ST_BUNDLES:
        fetch_bundles(p, o->bare);
        if (!str_eq(o->bare, p->account_bare))
            fetch_bundles(p, p->account_bare);
        o->stage = ST_WAIT_BUNDLES;
        /* fall through */
    case ST_WAIT_BUNDLES:
        if (bundles_inflight(c, o->bare) || bundles_inflight(c, p->account_bare))
            return 0;
        o->stage = ST_SEND;
        /* fall through */
    default:
        encrypt_and_send(p, o);
        return 1;
    }
}

void omemo_pump(parley *p)
{
    omemo_ctx *c = p->omemo;
    if (!c || c->pumping || !is_online(p))
        return;
    c->pumping = 1;
    while (c->queue && is_online(p) && advance(p, c->queue)) {
        om_out *o = c->queue;
        c->queue = o->next;
        if (!c->queue)
            c->queue_tail = NULL;
        out_free(o);
    }
    c->pumping = 0;
}

static void enqueue(omemo_ctx *c, om_out *o)
{
    if (c->queue_tail)
        c->queue_tail->next = o;
    else
        c->queue = o;
    c->queue_tail = o;
}

void omemo_heal(parley *p, const char *bare, uint32_t device, const char *to)
{
    omemo_ctx *c = p->omemo;
    char *key = xasprintf("%s/%u", bare, (unsigned)device);
    /* at most once per device and sign-in: a stream of garbage must not eat pre-keys */
    int done = dict_get(c->healed, key) != NULL;
    if (!done)
        dict_set(c->healed, key, (void *)1);
    free(key);
    if (done || !c->published)
        return;
    om_out *o = xcalloc(1, sizeof *o);
    o->id = session_new_id(p);
    o->to = xstrdup(to ? to : bare);
    o->bare = xstrdup(bare);
    o->type = xstrdup("chat");
    o->heal = device;
    enqueue(c, o);
    omemo_pump(p);
}

parley_error omemo_send(parley *p, const char *to, const char *type, const char *body,
                        const char *id)
{
    int group = str_eq(type, "groupchat");
    if (group || !p->omemo || !p->policy.e2e_aes) {
        if (!group && !p->policy.e2e_plain) {
            emit_refused(p, id, to, PARLEY_ERR_POLICY,
                         "not sent: the policy of your organisation forbids messages without "
                         "end-to-end encryption, and end-to-end encryption is off");
            return PARLEY_OK;
        }
        /* group chats never use client-to-client encryption */
        im_send_plain(p, to, type, body, id);
        emit_sent(p, id, to, 0);
        return PARLEY_OK;
    }
    om_out *o = xcalloc(1, sizeof *o);
    o->id = xstrdup(id);
    o->to = xstrdup(to);
    o->bare = jid_normalize_bare(to);
    o->type = xstrdup(type);
    o->body = xstrdup(body);
    o->give_up_ms = time_mono_ms() + OM_SEND_WAIT_MS;
    enqueue(p->omemo, o);
    omemo_pump(p);
    return PARLEY_OK;
}
