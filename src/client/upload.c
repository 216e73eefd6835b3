/* upload.c - libparley's side of XEP-0363 on the session: asking upload.DOMAIN for a
 * slot (with Parley's screen-capture and recipient marks) and sending a file's link
 * (body plus XEP-0066 out-of-band data). The bytes go over HTTPS (https.c). */
#include "../common/util.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_UPLOAD "urn:xmpp:http:upload:0"
#define NS_PARLEY_UPLOAD "urn:parley:upload:0"
#define NS_OOB "jabber:x:oob"

typedef struct slot_ctx {
    parley_slot_fn cb;
    void *ud;
} slot_ctx;

static void on_slot(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    slot_ctx *c = ud;
    const xml_node *iq = (const xml_node *)res;
    if (err == PARLEY_OK && iq) {
        const xml_node *slot = xml_child(iq, NS_UPLOAD, "slot");
        const char *put = slot ? xml_get_attr(xml_child(slot, NS_UPLOAD, "put"), "url") : NULL;
        const char *get = slot ? xml_get_attr(xml_child(slot, NS_UPLOAD, "get"), "url") : NULL;
        if (put && get)
            c->cb(p, put, get, PARLEY_OK, NULL, c->ud);
        else
            c->cb(p, NULL, NULL, PARLEY_ERR_PROTOCOL, "the upload service sent no slot", c->ud);
    } else if (iq) {
        char *text = im_error_text(iq);
        parley_error code = im_error_code(iq);
        /* A quota refusal is the quota policy's too. */
        if (strncmp(text, "resource-constraint", 19) == 0 && strstr(text, "policy"))
            code = PARLEY_ERR_POLICY;
        c->cb(p, NULL, NULL, code, text, c->ud);
        free(text);
    } else {
        c->cb(p, NULL, NULL, err, err == PARLEY_ERR_TIMEOUT ? "the upload service did not answer"
                                                            : "the session ended", c->ud);
    }
    free(c);
}

parley_error parley_request_upload_slot(parley *p, const char *name, long long size,
                                        const char *content_type, int screen_capture,
                                        const char *recipient, parley_slot_fn cb, void *ud)
{
    if (!p || !name || !*name || size <= 0 || !cb)
        return PARLEY_ERR_INVALID;
    if (!p->bound)
        return PARLEY_ERR_STATE;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "get");
    char *service = xasprintf("upload.%s", p->account.domain);
    xml_set_attr(iq, "to", service);
    free(service);
    xml_node *req = xml_add_child(iq, NS_UPLOAD, "request");
    xml_set_attr(req, "filename", name);
    char num[32];
    snprintf(num, sizeof num, "%lld", size);
    xml_set_attr(req, "size", num);
    if (content_type)
        xml_set_attr(req, "content-type", content_type);
    if (screen_capture)
        xml_add_child(req, NS_PARLEY_UPLOAD, "screen-capture");
    if (recipient)
        xml_set_attr(xml_add_child(req, NS_PARLEY_UPLOAD, "recipient"), "jid", recipient);
    char *text = xml_to_string(iq, XMLNS_CLIENT);
    xml_free(iq);
    slot_ctx *c = xcalloc(1, sizeof *c);
    c->cb = cb;
    c->ud = ud;
    parley_error e = parley_send_iq(p, text, on_slot, c, 30000, NULL, 0);
    free(text);
    if (e != PARLEY_OK)
        free(c);
    return e;
}

/* The link message: the body is the URL alone, as XEP-0066 asks, so other clients show it
 * inline, and the out-of-band data says it is a file. Never end-to-end encrypted: the
 * server and the compliance archive see the link like the upload itself. */
static parley_error send_link(parley *p, const char *to, const char *type, const char *url,
                              const char *desc, char *id_out, size_t id_len)
{
    xml_node *m = xml_new(XMLNS_CLIENT, "message");
    xml_set_attr(m, "to", to);
    xml_set_attr(m, "type", type);
    char *id = session_new_id(p);
    xml_set_attr(m, "id", id);
    xml_add_text(xml_add_child(m, NULL, "body"), url, strlen(url));
    xml_node *x = xml_add_child(m, NS_OOB, "x");
    xml_add_text(xml_add_child(x, NULL, "url"), url, strlen(url));
    if (desc)
        xml_add_text(xml_add_child(x, NULL, "desc"), desc, strlen(desc));
    char *text = xml_to_string(m, XMLNS_CLIENT);
    xml_free(m);
    parley_error e = parley_send_xml(p, text);
    free(text);
    if (e == PARLEY_OK && id_out && id_len)
        snprintf(id_out, id_len, "%s", id);
    free(id);
    return e;
}

parley_error parley_send_file_link(parley *p, const char *to, const char *url,
                                   const char *desc, char *id_out, size_t id_len)
{
    if (!p || !to || !url || strncmp(url, "https://", 8) != 0)
        return PARLEY_ERR_INVALID;
    if (!p->bound)
        return PARLEY_ERR_STATE;
    return send_link(p, to, "chat", url, desc, id_out, id_len);
}

parley_error parley_room_send_file_link(parley *p, const char *room, const char *url,
                                        const char *desc, char *id_out, size_t id_len)
{
    if (!p || !room || !url || strncmp(url, "https://", 8) != 0)
        return PARLEY_ERR_INVALID;
    if (!p->bound)
        return PARLEY_ERR_STATE;
    /* A room takes messages of type groupchat from its occupants only. */
    if (!parley_room_nick(p, room))
        return PARLEY_ERR_STATE;
    char *addr = jid_normalize_bare(room);
    parley_error e = addr ? send_link(p, addr, "groupchat", url, desc, id_out, id_len)
                          : PARLEY_ERR_INVALID;
    free(addr);
    return e;
}
