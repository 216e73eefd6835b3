/* omemo_recv.c - the incoming side: every <message/> on the session passes here first.
 *
 *   device list notifications (PEP)     -> the cached lists (ours republished if need be)
 *   <encrypted xmlns='urn:xmpp:omemo:2'> -> decrypted and delivered with encrypted = 1, or
 *                                          reported with the reason (never dropped, never
 *                                          shown as an empty message); replays ignored
 *                                          with a notice
 *   plaintext when the policy forbids it -> refused: the user is told, the sender gets a
 *   encrypted when the policy forbids it    policy-violation error
 * Group chat and error messages are left to the normal path. */
#include "omemo_internal.h"

#include "../../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void bounce(parley *p, const xml_node *msg, const char *text)
{
    const char *from = xml_get_attr(msg, "from");
    if (!from || client_ext_forwarded(p))
        return; /* a carbon or an archived message: not its sender's answer to give now */
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "to", from);
    xml_set_attr(m, "type", "error");
    if (xml_get_attr(msg, "id"))
        xml_set_attr(m, "id", xml_get_attr(msg, "id"));
    xml_node *e = xml_add_child(m, XMLNS_CLIENT, "error");
    xml_set_attr(e, "type", "cancel");
    xml_add_child(e, XMLNS_STANZAS, "policy-violation");
    xml_add_text(xml_add_child(e, XMLNS_STANZAS, "text"), text, strlen(text));
    session_send(p, m);
    xml_free(m);
}

/* A message event without a body: why it is not shown. */
static void report(parley *p, const xml_node *msg, int encrypted, unsigned long device,
                   const char *why)
{
    const char *type = xml_get_attr(msg, "type");
    parley_event ev = {0};
    ev.type = PARLEY_EV_MESSAGE;
    ev.from = xml_get_attr(msg, "from") ? xml_get_attr(msg, "from") : p->account_bare;
    ev.to = xml_get_attr(msg, "to");
    ev.id = xml_get_attr(msg, "id");
    ev.msg_type = type ? type : "normal";
    ev.encrypted = encrypted;
    ev.e2e_error = why;
    ev.e2e_device = device;
    ev.stanza = (const parley_stanza *)msg;
    client_emit(p, &ev);
}

static int in_list(omemo_ctx *c, const char *bare, uint32_t id)
{
    om_devlist *l = omemo_list(c, bare);
    for (size_t i = 0; i < l->n; i++)
        if (l->d[i].id == id)
            return 1;
    return 0;
}

static void on_refreshed(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    char *bare = ud;
    if (p->omemo && err == PARLEY_OK) {
        const xml_node *devs = om_item_payload((const xml_node *)res, OMEMO_NODE_DEVICES, "devices");
        om_device_entry d[OM_MAX_DEVICES];
        size_t n = 0;
        char why[160];
        if (devs && om_devices_parse(devs, d, &n, why, sizeof why) == OM_OK)
            omemo_list_update(p, bare, d, n);
    }
    free(bare);
}

static void on_ignore(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)p, (void)res, (void)err, (void)ud;
}

/* A device list notification (XEP-0163 +notify). 1 if it was one. */
static int device_list_event(parley *p, const xml_node *msg)
{
    omemo_ctx *c = p->omemo;
    const xml_node *devs = om_item_payload(msg, OMEMO_NODE_DEVICES, "devices");
    if (!devs)
        return 0;
    const char *from = xml_get_attr(msg, "from");
    char *bare = from ? jid_normalize_bare(from) : xstrdup(p->account_bare);
    om_device_entry d[OM_MAX_DEVICES];
    size_t n = 0;
    char why[160];
    if (bare && om_devices_parse(devs, d, &n, why, sizeof why) == OM_OK) {
        omemo_list_update(p, bare, d, n);
        /* our own list lost this device (another client overwrote it): put it back */
        if (str_eq(bare, p->account_bare) && c->published && p->policy.e2e_aes &&
            !in_list(c, bare, c->own.device_id) && n < OM_MAX_DEVICES) {
            d[n].id = c->own.device_id;
            snprintf(d[n].label, sizeof d[n].label, "%s", c->label);
            n++;
            omemo_list_update(p, bare, d, n);
            omemo_send_iq(p, om_publish_iq(OMEMO_NODE_DEVICES, "current", om_devices_xml(d, n), 0),
                          on_ignore, NULL);
        }
    }
    free(bare);
    return 1;
}

static void deliver(parley *p, const xml_node *msg, const om_decrypted *d)
{
    const char *type = xml_get_attr(msg, "type");
    parley_event ev = {0};
    ev.type = PARLEY_EV_MESSAGE;
    ev.from = xml_get_attr(msg, "from") ? xml_get_attr(msg, "from") : p->account_bare;
    ev.to = xml_get_attr(msg, "to");
    ev.id = xml_get_attr(msg, "id");
    ev.msg_type = type ? type : "normal";
    ev.body = d->body;
    ev.encrypted = 1;
    ev.e2e_device = d->sender_device;
    ev.e2e_trust = d->trust;
    ev.e2e_key_changed = d->ik_changed;
    ev.stanza = (const parley_stanza *)msg;
    client_emit(p, &ev);
}

static void decrypt(parley *p, const xml_node *msg, const xml_node *enc, const char *sender)
{
    omemo_ctx *c = p->omemo;
    char text[400];
    if (!c->have_own) {
        report(p, msg, 1, 0, "an end-to-end encrypted message arrived before this device had "
                             "OMEMO keys: it cannot be decrypted");
        return;
    }
    om_decrypted d;
    /* what another device of ours sent (a carbon, the archive) is addressed to the peer */
    const char *to = xml_get_attr(msg, "to");
    char *rcpt = client_ext_outgoing(p) && to ? jid_normalize_bare(to) : NULL;
    om_err e = om_message_decrypt_to(c->st, &c->own, p->account_bare,
                                     rcpt ? rcpt : p->account_bare, sender, enc, &d);
    free(rcpt);
    if (e == OM_ERR_DUPLICATE && client_ext_forwarded(p)) {
        /* from the archive again (a history fetched anew): no replay, just spent keys */
        report(p, msg, 1, d.sender_device, "an end-to-end encrypted message from the archive "
               "that this device already decrypted once: it cannot be decrypted again");
        return;
    }
    if (e == OM_ERR_DUPLICATE) {
        /* XEP-0384: a message received twice is not shown again; the user still learns */
        omemo_notice(p, sender, d.sender_device, 0, "a replayed end-to-end encrypted message "
                     "from %s (device %u) was ignored", sender, (unsigned)d.sender_device);
        return;
    }
    if (e == OM_ERR_NOT_FOR_US && !xml_child(enc, XMLNS_OMEMO, "payload")) {
        /* key material for another device of this account, sent to the bare JID: no
         * content was lost for this one */
        client_log(p, 0, "an empty OMEMO message from %s was for another device", sender);
        return;
    }
    if (e != OM_OK) {
        snprintf(text, sizeof text, "an end-to-end encrypted message from %s (device %u) could "
                 "not be decrypted: %s", sender, (unsigned)d.sender_device, om_strerror(e));
        report(p, msg, 1, d.sender_device, text);
        if (e == OM_ERR_NO_SESSION && !client_ext_forwarded(p)) /* old ones: no healing */
            omemo_heal(p, sender, d.sender_device, xml_get_attr(msg, "from"));
        if (!in_list(c, sender, d.sender_device))
            omemo_send_iq(p, om_items_iq(sender, OMEMO_NODE_DEVICES, NULL), on_refreshed,
                          xstrdup(sender));
        return;
    }
    char fp[OM_FP_LEN] = "unknown";
    if (d.has_ik)
        om_fingerprint(d.ik, fp);
    if (d.ik_changed)
        omemo_notice(p, sender, d.sender_device, 1, "WARNING: the identity key of %s device %u "
                     "CHANGED (new fingerprint %s). Verify it before trusting it.", sender,
                     (unsigned)d.sender_device, fp);
    else if (d.new_device && !str_eq(sender, p->account_bare))
        omemo_notice(p, sender, d.sender_device, 0, "new OMEMO device %u of %s, fingerprint %s "
                     "(%s)", (unsigned)d.sender_device, sender, fp,
                     d.trust == OM_TRUST_UNTRUSTED ? "not trusted: verify it with /trust"
                                                   : "trusted blindly until you verify it");
    if (d.body)
        deliver(p, msg, &d);
    if (d.used_prekey) {
        /* the pre-key is gone: a new one replaces it in the published bundle */
        int changed = 0;
        om_identity_maintain(c->st, &c->own, (int64_t)time(NULL), OM_SPK_ROTATE_SECS, &changed);
        omemo_publish_bundle(p);
    }
    if (d.needs_reply)
        omemo_send_empty(p, sender, d.sender_device, xml_get_attr(msg, "from"));
    if (!in_list(c, sender, d.sender_device) && !omemo_list(c, sender)->fetching)
        omemo_send_iq(p, om_items_iq(sender, OMEMO_NODE_DEVICES, NULL), on_refreshed,
                      xstrdup(sender));
    om_decrypted_free(&d);
}

int omemo_handle_message(parley *p, const xml_node *msg)
{
    const char *type = xml_get_attr(msg, "type");
    if (str_eq(type, "error"))
        return 0;
    if (p->omemo && xml_child(msg, XMLNS_PUBSUB_EVENT, "event"))
        return device_list_event(p, msg);
    if (str_eq(type, "groupchat"))
        return 0; /* group chats never use client-to-client encryption */
    const xml_node *enc = xml_child(msg, XMLNS_OMEMO, "encrypted");
    const char *from = xml_get_attr(msg, "from");
    char *sender = from ? jid_normalize_bare(from) : xstrdup(p->account_bare);
    char text[400];
    int consumed = 1;
    if (!sender) {
        consumed = 0;
    } else if (!enc) {
        if (xml_child(msg, XMLNS_CLIENT, "body") && !p->policy.e2e_plain) {
            snprintf(text, sizeof text, "a message from %s without end-to-end encryption was "
                     "refused: the policy of your organisation requires end-to-end encryption",
                     sender);
            report(p, msg, 0, 0, text);
            bounce(p, msg, "the recipient accepts only end-to-end encrypted messages");
        } else {
            consumed = 0;
        }
    } else if (!p->omemo || !p->policy.e2e_aes) {
        snprintf(text, sizeof text, "an end-to-end encrypted message from %s was refused: the "
                 "policy of your organisation disables end-to-end encryption", sender);
        report(p, msg, 1, 0, text);
        bounce(p, msg, "the recipient does not accept end-to-end encrypted messages");
    } else {
        decrypt(p, msg, enc, sender);
    }
    free(sender);
    return consumed;
}
