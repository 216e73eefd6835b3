/* policy.c - the client side of the admin policy IQ (urn:parley:policy:0): fetched once
 * the session is bound (before CONNECTED, so nothing is sent against an unknown policy)
 * and replaced when the server pushes a new one. A server without the protocol (any
 * error answer or a time-out) means the defaults: end-to-end encryption allowed and
 * plaintext allowed (or as e2e_plain_default says). */
#include "../common/util.h"
#include "internal.h"
#include "omemo/omemo.h"

#include <stdlib.h>
#include <string.h>

#define XMLNS_POLICY "urn:parley:policy:0"
#define POLICY_TIMEOUT_MS 10000

void policy_defaults(parley *p)
{
    memset(&p->policy, 0, sizeof p->policy);
    p->policy.e2e_aes = 1;
    p->policy.e2e_plain = p->opt.e2e_plain_default;
    p->policy.file_transfer = 1;
    p->policy.screen_capture = 1;
}

static int parse_bool(const char *v, int *out)
{
    if (str_eq(v, "true") || str_eq(v, "1")) {
        *out = 1;
        return 0;
    }
    if (str_eq(v, "false") || str_eq(v, "0")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* One key: <NAME>value</NAME>, or <x name|key|var='NAME' value='v'/> or with text. */
static void apply_entry(parley_policy *pol, const xml_node *el)
{
    const char *name = xml_get_attr(el, "name");
    if (!name)
        name = xml_get_attr(el, "key");
    if (!name)
        name = xml_get_attr(el, "var");
    if (!name)
        name = el->name;
    const char *attr = xml_get_attr(el, "value");
    char *text = attr ? NULL : xml_text(el);
    const char *v = attr ? attr : text;
    static const struct {
        const char *name;
        size_t off;
    } keys[] = {
        {"e2e_aes", offsetof(parley_policy, e2e_aes)},
        {"e2e_plain", offsetof(parley_policy, e2e_plain)},
        {"disable_im_history", offsetof(parley_policy, disable_im_history)},
        {"chat_archive", offsetof(parley_policy, chat_archive)},
        {"file_transfer", offsetof(parley_policy, file_transfer)},
        {"screen_capture", offsetof(parley_policy, screen_capture)},
    };
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (str_eq(name, keys[i].name))
            parse_bool(v, (int *)((char *)pol + keys[i].off));
    free(text);
}

/* The policy element of a result or push (or NULL). */
static const xml_node *policy_element(const xml_node *iq)
{
    for (const xml_node *c = xml_first_element(iq); c; c = xml_next(c, NULL, NULL))
        if (str_eq(c->ns, XMLNS_POLICY))
            return c;
    return NULL;
}

static void apply(parley *p, const xml_node *el)
{
    parley_policy pol;
    policy_defaults(p);
    pol = p->policy;
    for (const xml_node *c = xml_first_element(el); c; c = xml_next(c, NULL, NULL)) {
        apply_entry(&pol, c);
        /* a form or list one level down (<x><field/>...</x>) */
        for (const xml_node *g = xml_first_element(c); g; g = xml_next(g, NULL, NULL))
            if (xml_get_attr(g, "name") || xml_get_attr(g, "key") || xml_get_attr(g, "var"))
                apply_entry(&pol, g);
    }
    if (!pol.e2e_aes && !pol.e2e_plain) {
        /* parleyctl refuses this combination; should it arrive anyway, nothing could be
         * sent at all, so plaintext is assumed and the user told */
        client_log(p, 3, "the admin policy forbids both encryption and plaintext; "
                         "assuming plaintext is allowed");
        pol.e2e_plain = 1;
    }
    pol.known = 1;
    p->policy = pol;
    client_log(p, 1, "admin policy: e2e_aes=%d e2e_plain=%d", pol.e2e_aes, pol.e2e_plain);
}

static void announce(parley *p)
{
    parley_event ev = {0};
    ev.type = PARLEY_EV_POLICY;
    client_emit(p, &ev);
}


static void on_policy(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    void (*then)(parley *) = (void (*)(parley *))ud;
    const xml_node *el = err == PARLEY_OK && res ? policy_element((const xml_node *)res) : NULL;
    if (el)
        apply(p, el);
    else
        client_log(p, 1, "no admin policy from the server (%s): defaults apply",
                   err == PARLEY_OK ? "empty answer" : parley_strerror(err));
    if (then)
        then(p);
}

void policy_request(parley *p, void (*then)(parley *p))
{

    policy_defaults(p);
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "get");
    xml_add_child(iq, XMLNS_POLICY, "policy");
    char *id = session_new_id(p);
    xml_set_attr(iq, "id", id);
    /* internal: answered (or timed out) during sign-in, not an application's IQ */
    session_track_iq(p, id, NULL, on_policy, (void *)then, POLICY_TIMEOUT_MS, 1);
    session_send(p, iq);
    xml_free(iq);
    free(id);
}

int policy_handle_push(parley *p, const xml_node *iq)
{
    const xml_node *el = policy_element(iq);
    if (!el || !str_eq(xml_get_attr(iq, "type"), "set"))
        return 0;
    const char *from = xml_get_attr(iq, "from");
    char *f = from ? jid_normalize(from) : NULL;
    /* only our server (or our own account) may change our policy */
    int ok = !from || (f && (str_eq(f, p->account.domain) || str_eq(f, p->account_bare)));
    free(f);
    if (!ok) {
        im_send_iq_error(p, iq, "cancel", "forbidden");
        return 1;
    }
    apply(p, el);
    im_send_iq_result(p, iq);
    omemo_on_policy(p);
    announce(p);
    return 1;
}

parley_error parley_policy_get(const parley *p, parley_policy *out)
{
    if (!p || !out)
        return PARLEY_ERR_INVALID;
    *out = p->policy;
    return PARLEY_OK;
}
