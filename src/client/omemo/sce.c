/* sce.c - building and checking XEP-0420 envelopes (sce.h). */
#include "sce.h"

#include "../../common/jid.h"
#include "../../common/util.h"
#include "../../common/xml.h"

#include <stdlib.h>
#include <string.h>

#define RPAD_MAX 200

char *om_sce_build(const char *body, const char *from_bare, const char *to_bare)
{
    if (!body || strlen(body) > OM_SCE_MAX_BODY)
        return NULL;
    xml_node *env = xml_new(XMLNS_SCE, "envelope");
    xml_node *content = xml_add_child(env, XMLNS_SCE, "content");
    xml_add_text(xml_add_child(content, XMLNS_CLIENT, "body"), body, strlen(body));
    /* 1..200 random characters: the ciphertext length hides the body length up to that */
    uint8_t r;
    random_bytes(&r, 1);
    size_t padlen = 1 + (size_t)(r % RPAD_MAX);
    char pad[RPAD_MAX + 1];
    random_token(pad, padlen);
    xml_add_text(xml_add_child(env, XMLNS_SCE, "rpad"), pad, padlen);
    char stamp[TIME_UTC_LEN];
    time_format_utc(time_now_us(), stamp);
    xml_set_attr(xml_add_child(env, XMLNS_SCE, "time"), "stamp", stamp);
    xml_set_attr(xml_add_child(env, XMLNS_SCE, "to"), "jid", to_bare);
    xml_set_attr(xml_add_child(env, XMLNS_SCE, "from"), "jid", from_bare);
    char *xml = xml_to_string(env, "");
    xml_free(env);
    return xml;
}

/* Does the affix element's jid name `want` (compared as normalised bare JIDs)? */
static int affix_names(const xml_node *affix, const char *want)
{
    const char *j = xml_get_attr(affix, "jid");
    char *a = j ? jid_normalize_bare(j) : NULL, *b = want ? jid_normalize_bare(want) : NULL;
    int ok = a && b && strcmp(a, b) == 0;
    free(a);
    free(b);
    return ok;
}

om_err om_sce_parse(const char *xml, size_t len, const char *sender_bare, const char *own_bare,
                    char **body)
{
    *body = NULL;
    if (len > OM_SCE_MAX)
        return OM_ERR_MALFORMED;
    xml_node *env = xml_parse_document(xml, len, XMLNS_SCE, OM_SCE_MAX);
    if (!env || !xml_is(env, XMLNS_SCE, "envelope")) {
        xml_free(env);
        return OM_ERR_MALFORMED;
    }
    const xml_node *content = xml_child(env, XMLNS_SCE, "content");
    const xml_node *from = xml_child(env, XMLNS_SCE, "from");
    const xml_node *to = xml_child(env, XMLNS_SCE, "to");
    om_err e = OM_OK;
    if (!content)
        e = OM_ERR_MALFORMED;
    else if ((from && !affix_names(from, sender_bare)) || (to && !affix_names(to, own_bare)))
        e = OM_ERR_SENDER;
    if (e == OM_OK && xml_child(content, XMLNS_CLIENT, "body"))
        *body = xml_child_text(content, XMLNS_CLIENT, "body");
    xml_free(env);
    return e;
}
