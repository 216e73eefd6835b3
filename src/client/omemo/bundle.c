/* bundle.c - device lists, bundles and their PEP IQs (bundle.h). */
#include "bundle.h"

#include "../../common/base64.h"
#include "../../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XMLNS_DATA "jabber:x:data"

static void set_u32(xml_node *n, const char *attr, uint32_t v)
{
    char s[16];
    snprintf(s, sizeof s, "%u", (unsigned)v);
    xml_set_attr(n, attr, s);
}

/* A decimal in 1..2^32-1 without sign, spaces or leading zeros. */
static int parse_u32(const char *s, uint32_t *out)
{
    if (!s || !*s || strlen(s) > 10 || s[0] == '0')
        return -1;
    uint64_t v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    if (v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void add_b64(xml_node *parent, const char *name, const uint8_t *data, size_t len,
                    const char *id_attr, uint32_t id)
{
    xml_node *el = xml_add_child(parent, XMLNS_OMEMO, name);
    if (id_attr)
        set_u32(el, id_attr, id);
    char *b = base64_encode(data, len);
    xml_add_text(el, b, strlen(b));
    free(b);
}

/* Base64 text of el decoding to exactly len bytes; XML may wrap it in whitespace. */
static int get_b64(const xml_node *el, uint8_t *out, size_t len)
{
    if (!el)
        return -1;
    char *t = xml_text(el);
    char *s = t, *e = t + strlen(t);
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t'))
        e--;
    size_t n = 0;
    unsigned char *d = base64_decode(s, (size_t)(e - s), &n);
    int ok = d && n == len;
    if (ok)
        memcpy(out, d, len);
    free(d);
    free(t);
    return ok ? 0 : -1;
}

xml_node *om_devices_xml(const om_device_entry *d, size_t n)
{
    xml_node *devs = xml_new(XMLNS_OMEMO, "devices");
    for (size_t i = 0; i < n; i++) {
        xml_node *dev = xml_add_child(devs, XMLNS_OMEMO, "device");
        set_u32(dev, "id", d[i].id);
        if (d[i].label[0])
            xml_set_attr(dev, "label", d[i].label);
    }
    return devs;
}

om_err om_devices_parse(const xml_node *devices, om_device_entry *out, size_t *n, char *why,
                        size_t whylen)
{
    *n = 0;
    if (!devices || !xml_is(devices, XMLNS_OMEMO, "devices")) {
        snprintf(why, whylen, "not an OMEMO device list");
        return OM_ERR_MALFORMED;
    }
    for (const xml_node *d = xml_child(devices, XMLNS_OMEMO, "device"); d;
         d = xml_next(d, XMLNS_OMEMO, "device")) {
        uint32_t id;
        if (parse_u32(xml_get_attr(d, "id"), &id) < 0) {
            snprintf(why, whylen, "device list: invalid device id '%.20s'",
                     xml_get_attr(d, "id") ? xml_get_attr(d, "id") : "");
            return OM_ERR_MALFORMED;
        }
        int dup = 0;
        for (size_t i = 0; i < *n; i++)
            dup |= out[i].id == id;
        if (dup)
            continue;
        if (*n == OM_MAX_DEVICES) {
            snprintf(why, whylen, "device list: more than %d devices", OM_MAX_DEVICES);
            return OM_ERR_MALFORMED;
        }
        out[*n].id = id;
        const char *label = xml_get_attr(d, "label");
        snprintf(out[*n].label, sizeof out[*n].label, "%s", label ? label : "");
        (*n)++;
    }
    return OM_OK;
}

xml_node *om_bundle_xml(const om_bundle *b)
{
    xml_node *bundle = xml_new(XMLNS_OMEMO, "bundle");
    add_b64(bundle, "spk", b->spk, OM_KEY, "id", b->spk_id);
    add_b64(bundle, "spks", b->spks, OM_SIG, NULL, 0);
    add_b64(bundle, "ik", b->ik, OM_KEY, NULL, 0);
    xml_node *pks = xml_add_child(bundle, XMLNS_OMEMO, "prekeys");
    for (size_t i = 0; i < b->npk; i++)
        add_b64(pks, "pk", b->pk[i].pub, OM_KEY, "id", b->pk[i].id);
    return bundle;
}

om_err om_bundle_parse(const xml_node *bundle, om_bundle *b, char *why, size_t whylen)
{
    memset(b, 0, sizeof *b);
    if (!bundle || !xml_is(bundle, XMLNS_OMEMO, "bundle")) {
        snprintf(why, whylen, "not an OMEMO bundle");
        return OM_ERR_MALFORMED;
    }
    const xml_node *spk = xml_child(bundle, XMLNS_OMEMO, "spk");
    const xml_node *pks = xml_child(bundle, XMLNS_OMEMO, "prekeys");
    if (!spk || parse_u32(xml_get_attr(spk, "id"), &b->spk_id) < 0 ||
        get_b64(spk, b->spk, OM_KEY) < 0) {
        snprintf(why, whylen, "bundle: missing or invalid signed pre-key");
        return OM_ERR_MALFORMED;
    }
    if (get_b64(xml_child(bundle, XMLNS_OMEMO, "spks"), b->spks, OM_SIG) < 0) {
        snprintf(why, whylen, "bundle: missing or invalid signed pre-key signature");
        return OM_ERR_MALFORMED;
    }
    if (get_b64(xml_child(bundle, XMLNS_OMEMO, "ik"), b->ik, OM_KEY) < 0) {
        snprintf(why, whylen, "bundle: missing or invalid identity key");
        return OM_ERR_MALFORMED;
    }
    for (const xml_node *pk = pks ? xml_child(pks, XMLNS_OMEMO, "pk") : NULL; pk;
         pk = xml_next(pk, XMLNS_OMEMO, "pk")) {
        if (b->npk == OM_MAX_PREKEYS) {
            snprintf(why, whylen, "bundle: more than %d pre-keys", OM_MAX_PREKEYS);
            return OM_ERR_MALFORMED;
        }
        om_prekey_pub *p = &b->pk[b->npk];
        if (parse_u32(xml_get_attr(pk, "id"), &p->id) < 0 || get_b64(pk, p->pub, OM_KEY) < 0) {
            snprintf(why, whylen, "bundle: invalid pre-key");
            return OM_ERR_MALFORMED;
        }
        b->npk++;
    }
    if (b->npk == 0) {
        snprintf(why, whylen, "bundle: no pre-keys");
        return OM_ERR_MALFORMED;
    }
    return OM_OK;
}

static void add_field(xml_node *x, const char *var, const char *value, const char *type)
{
    xml_node *f = xml_add_child(x, XMLNS_DATA, "field");
    xml_set_attr(f, "var", var);
    if (type)
        xml_set_attr(f, "type", type);
    xml_add_text(xml_add_child(f, XMLNS_DATA, "value"), value, strlen(value));
}

xml_node *om_publish_iq(const char *node, const char *item_id, xml_node *payload,
                        int max_items)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_node *ps = xml_add_child(iq, XMLNS_PUBSUB, "pubsub");
    xml_node *pub = xml_add_child(ps, XMLNS_PUBSUB, "publish");
    xml_set_attr(pub, "node", node);
    xml_node *item = xml_add_child(pub, XMLNS_PUBSUB, "item");
    xml_set_attr(item, "id", item_id);
    xml_append(item, payload);
    xml_node *x = xml_add_child(xml_add_child(ps, XMLNS_PUBSUB, "publish-options"), XMLNS_DATA, "x");
    xml_set_attr(x, "type", "submit");
    add_field(x, "FORM_TYPE", "http://jabber.org/protocol/pubsub#publish-options", "hidden");
    if (max_items)
        add_field(x, "pubsub#max_items", "max", NULL);
    add_field(x, "pubsub#access_model", "open", NULL);
    return iq;
}

xml_node *om_retract_iq(const char *node, const char *item_id)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    xml_node *r = xml_add_child(xml_add_child(iq, XMLNS_PUBSUB, "pubsub"), XMLNS_PUBSUB, "retract");
    xml_set_attr(r, "node", node);
    xml_set_attr(r, "notify", "true");
    xml_set_attr(xml_add_child(r, XMLNS_PUBSUB, "item"), "id", item_id);
    return iq;
}

xml_node *om_items_iq(const char *to, const char *node, const char *item_id)
{
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "get");
    if (to)
        xml_set_attr(iq, "to", to);
    xml_node *items = xml_add_child(xml_add_child(iq, XMLNS_PUBSUB, "pubsub"), XMLNS_PUBSUB, "items");
    xml_set_attr(items, "node", node);
    if (item_id)
        xml_set_attr(xml_add_child(items, XMLNS_PUBSUB, "item"), "id", item_id);
    return iq;
}

const xml_node *om_item_payload(const xml_node *stanza, const char *node, const char *name)
{
    const xml_node *ps = xml_child(stanza, XMLNS_PUBSUB, "pubsub");
    const char *ns = XMLNS_PUBSUB;
    if (!ps) {
        ps = xml_child(stanza, XMLNS_PUBSUB_EVENT, "event");
        ns = XMLNS_PUBSUB_EVENT;
    }
    const xml_node *items = ps ? xml_child(ps, ns, "items") : NULL;
    if (!items || !str_eq(xml_get_attr(items, "node"), node))
        return NULL;
    const xml_node *item = xml_child(items, ns, "item");
    return item ? xml_child(item, XMLNS_OMEMO, name) : NULL;
}
