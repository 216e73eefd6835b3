/* check.c - a <check/> element into a pc_check (check.h): JIDs normalised to bare JIDs
 * (the rules compare bare JIDs), bodies and subjects collected, end-to-end encryption
 * recognised by the same elements parleyd's archive recognises. */
#include "check.h"

#include "../common/jid.h"
#include "../common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* End-to-end encryption elements (as in parleyd's src/server/compliance.c): a message
 * carrying one is judged on its metadata only; its body, if any, is a fallback text. */
static const struct {
    const char *ns, *name;
} e2e_elements[] = {
    {"urn:xmpp:omemo:2", "encrypted"},               /* OMEMO (XEP-0384) */
    {"eu.siacs.conversations.axolotl", "encrypted"}, /* legacy OMEMO */
    {"urn:xmpp:openpgp:0", "openpgp"},               /* OpenPGP (XEP-0373) */
    {"jabber:x:encrypted", "x"},                     /* legacy OpenPGP (XEP-0027) */
};

static int bad(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

void check_clear(pc_check *c)
{
    free(c->sender);
    free(c->recipient);
    for (size_t i = 0; i < c->noccupants; i++)
        free(c->occupants[i]);
    free(c->occupants);
    free(c->body);
    for (size_t i = 0; i < c->nextra; i++)
        free(c->extra[i]);
    free(c->extra);
    free(c->message_id);
    free(c->file_name);
    free(c->file_type);
    free(c->file_stage);
    memset(c, 0, sizeof *c);
}

/* A required JID attribute as a bare JID. */
static int bare_attr(const xml_node *n, const char *attr, char **out, char *why, size_t whylen)
{
    const char *v = xml_get_attr(n, attr);
    if (!v)
        return bad(why, whylen, "<%s/> has no '%s'", n->name, attr);
    *out = jid_normalize_bare(v);
    if (!*out)
        return bad(why, whylen, "<%s/> has an invalid '%s' JID", n->name, attr);
    return 0;
}

static void add_extra(pc_check *c, char *text)
{
    c->extra = xrealloc(c->extra, (c->nextra + 1) * sizeof *c->extra);
    c->extra[c->nextra++] = text;
}

/* The room's occupants, one <occupant jid='...'/> each. */
static int parse_occupants(const xml_node *check, pc_check *c, char *why, size_t whylen)
{
    for (const xml_node *o = xml_child(check, XMLNS_PC_COMPLIANCE, "occupant"); o;
         o = xml_next(o, XMLNS_PC_COMPLIANCE, "occupant")) {
        char *occupant;
        if (bare_attr(o, "jid", &occupant, why, whylen) < 0)
            return -1;
        c->occupants = xrealloc(c->occupants, (c->noccupants + 1) * sizeof *c->occupants);
        c->occupants[c->noccupants++] = occupant;
    }
    return 0;
}

static int parse_message(const xml_node *check, pc_check *c, char *why, size_t whylen)
{
    const xml_node *fwd = xml_child(check, XMLNS_FORWARD, "forwarded");
    const xml_node *msg = fwd ? xml_child(fwd, NULL, "message") : NULL;
    if (!msg)
        return bad(why, whylen, "a %s check needs <forwarded xmlns='%s'><message/>",
                   pc_kind_name(c->kind), XMLNS_FORWARD);
    if (bare_attr(msg, "from", &c->sender, why, whylen) < 0 ||
        bare_attr(msg, "to", &c->recipient, why, whylen) < 0)
        return -1;
    const char *id = xml_get_attr(msg, "id");
    if (id)
        c->message_id = xstrdup(id);
    for (const xml_node *b = xml_child(msg, msg->ns, "body"); b; b = xml_next(b, msg->ns, "body")) {
        if (!c->body)
            c->body = xml_text(b);
        else
            add_extra(c, xml_text(b));
    }
    for (const xml_node *s = xml_child(msg, msg->ns, "subject"); s;
         s = xml_next(s, msg->ns, "subject"))
        add_extra(c, xml_text(s));
    for (size_t i = 0; i < ARRAY_LEN(e2e_elements); i++)
        if (xml_child(msg, e2e_elements[i].ns, e2e_elements[i].name))
            c->encrypted = 1;
    return c->kind == PC_KIND_GROUPCHAT ? parse_occupants(check, c, why, whylen) : 0;
}

static int parse_file(const xml_node *check, pc_check *c, char *why, size_t whylen)
{
    const xml_node *f = xml_child(check, XMLNS_PC_COMPLIANCE, "file");
    if (!f)
        return bad(why, whylen, "a file check needs a <file/> element");
    /* An upload need not name who it is for (then no wall applies to it). */
    if (bare_attr(f, "sender", &c->sender, why, whylen) < 0 ||
        (xml_get_attr(f, "recipient") && bare_attr(f, "recipient", &c->recipient, why, whylen) < 0))
        return -1;
    const char *size = xml_get_attr(f, "size");
    char *end = NULL;
    errno = 0;
    unsigned long long n = size && size[0] >= '0' && size[0] <= '9' ? strtoull(size, &end, 10) : 0;
    if (!size || !end || *end || errno)
        return bad(why, whylen, "<file/> needs a 'size' in bytes");
    c->file_size = n;
    const char *sc = xml_get_attr(f, "screen-capture");
    if (sc && strcmp(sc, "true") != 0 && strcmp(sc, "1") != 0 && strcmp(sc, "false") != 0 &&
        strcmp(sc, "0") != 0)
        return bad(why, whylen, "<file/> has a bad 'screen-capture' (true or false)");
    c->screen_capture = sc && (strcmp(sc, "true") == 0 || strcmp(sc, "1") == 0);
    const char *stage = xml_get_attr(f, "stage");
    if (stage && strcmp(stage, "request") != 0 && strcmp(stage, "upload") != 0)
        return bad(why, whylen, "<file/> has a bad 'stage' (request or upload)");
    const char *name = xml_get_attr(f, "name"), *type = xml_get_attr(f, "type");
    c->file_name = name ? xstrdup(name) : NULL;
    c->file_type = type ? xstrdup(type) : NULL;
    c->file_stage = xstrdup(stage ? stage : "request");
    /* A file shared in a room: walls apply to its occupants as to a room message. */
    return parse_occupants(check, c, why, whylen);
}

int check_parse(const xml_node *check, pc_check *c, char *why, size_t whylen)
{
    memset(c, 0, sizeof *c);
    if (!xml_is(check, XMLNS_PC_COMPLIANCE, "check"))
        return bad(why, whylen, "expected <check xmlns='%s'/>", XMLNS_PC_COMPLIANCE);
    const char *kind = xml_get_attr(check, "kind");
    int rc;
    if (str_eq(kind, "message") || str_eq(kind, "groupchat")) {
        c->kind = str_eq(kind, "message") ? PC_KIND_MESSAGE : PC_KIND_GROUPCHAT;
        rc = parse_message(check, c, why, whylen);
    } else if (str_eq(kind, "file")) {
        c->kind = PC_KIND_FILE;
        rc = parse_file(check, c, why, whylen);
    } else {
        rc = bad(why, whylen, kind ? "unknown check kind (message, groupchat or file)"
                                   : "the check has no 'kind'");
    }
    if (rc < 0)
        check_clear(c);
    return rc;
}
