/* carbons.c - XEP-0280 message carbons: asked for at sign-in, so that what the account's
 * other devices send and receive shows up here too. A carbon is only believed when our
 * own account's server wraps it (from our bare JID): anyone else could wrap a message
 * and make it look as if we had sent it. */
#include "../common/util.h"
#include "ext.h"

#include <stdlib.h>
#include <string.h>

static void on_enabled(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    (void)ud;
    if (err != PARLEY_OK && res) {
        char *why = im_error_text((const xml_node *)res);
        client_log(p, 2, "carbons not enabled (%s): messages of your other devices will "
                   "not show here", why);
        free(why);
    }
}

void carbons_enable(parley *p)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_add_child(iq, XMLNS_CARBONS, "enable");
    ext_send_iq(p, iq, on_enabled, NULL);
}

int carbons_handle(parley *p, const xml_node *msg)
{
    const xml_node *w = xml_child(msg, XMLNS_CARBONS, "received");
    int sent = 0;
    if (!w) {
        w = xml_child(msg, XMLNS_CARBONS, "sent");
        sent = 1;
    }
    if (!w)
        return 0;
    const xml_node *fwd = xml_child(w, XMLNS_FORWARD, "forwarded");
    const xml_node *inner = fwd ? xml_child(fwd, XMLNS_CLIENT, "message") : NULL;
    const char *from = xml_get_attr(msg, "from");
    /* The wrapper from our bare JID only (XEP-0280 section 11); a sent copy was sent by
     * one of our own resources, a received one was addressed to us. */
    if (!from || !ext_is_own(p, from) || strchr(from, '/') || !inner ||
        !ext_is_own(p, xml_get_attr(inner, sent ? "from" : "to"))) {
        client_log(p, 2, "ignoring a carbon copy that did not come from our own account");
        return 1;
    }
    const char *type = xml_get_attr(inner, "type");
    if (str_eq(type, "groupchat") || str_eq(type, "error"))
        return 1; /* rooms send to each device themselves */
    if (!ext_has_content(inner)) {
        /* chat states and receipts of the other device: nothing to show */
        return 1;
    }
    if (archive_hold(p, NULL, msg))
        return 1;
    const char *sid = sent ? NULL : ext_stanza_id(inner, p->account_bare);
    if (archive_seen(p, NULL, sid))
        return 1;
    if (sid)
        parley_archive_set_last(p, NULL, sid); /* live: the newest of our archive */
    if (sent && xml_get_attr(inner, "id"))
        archive_note_sent(p, xml_get_attr(inner, "id")); /* its archived copy is known */
    fwd_ctx ctx = {.carbon = sent ? PARLEY_CARBON_SENT : PARLEY_CARBON_RECEIVED,
                   .outgoing = sent, .stanza_id = sid};
    ext_deliver(p, inner, &ctx);
    return 1;
}
