/* stanza.c - IQ results and stanza errors. */
#include "stanza.h"
#include "../common/util.h"

#include <string.h>

static xml_node *reply_shell(const xml_node *orig)
{
    xml_node *r = xml_new(orig->ns, orig->name);
    const char *to = xml_get_attr(orig, "to");
    const char *from = xml_get_attr(orig, "from");
    const char *id = xml_get_attr(orig, "id");
    if (from)
        xml_set_attr(r, "to", from);
    if (to)
        xml_set_attr(r, "from", to);
    if (id)
        xml_set_attr(r, "id", id);
    return r;
}

xml_node *stanza_iq_result(const xml_node *iq)
{
    xml_node *r = reply_shell(iq);
    xml_set_attr(r, "type", "result");
    return r;
}

xml_node *stanza_error(const xml_node *stanza, const char *etype, const char *condition,
                       const char *text)
{
    if (str_eq(xml_get_attr(stanza, "type"), "error"))
        return NULL;
    xml_node *r = reply_shell(stanza);
    xml_set_attr(r, "type", "error");
    /* Echo the payload of messages and presence so the sender can tell what failed; an
     * IQ's payload may be large and is identified by its id anyway. */
    if (strcmp(stanza->name, "iq") != 0) {
        for (const xml_node *ch = stanza->children; ch; ch = ch->next)
            if (ch->name)
                xml_append(r, xml_copy(ch));
    }
    xml_node *err = xml_add_child(r, NULL, "error");
    xml_set_attr(err, "type", etype);
    xml_add_child(err, XMLNS_STANZAS, condition);
    if (text) {
        xml_node *t = xml_add_child(err, XMLNS_STANZAS, "text");
        xml_set_attr(t, "xml:lang", "en");
        xml_add_text(t, text, strlen(text));
    }
    return r;
}

int stanza_is_routable(const xml_node *stanza)
{
    return stanza->name && (strcmp(stanza->name, "message") == 0 ||
                            strcmp(stanza->name, "presence") == 0 ||
                            strcmp(stanza->name, "iq") == 0);
}
