/* message.c - encrypting and decrypting <encrypted xmlns='urn:xmpp:omemo:2'/> (message.h). */
#include "message.h"

#include "../../common/base64.h"
#include "../../common/jid.h"
#include "../../common/util.h"
#include "om_session.h"
#include "payload.h"
#include "sce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_KEY_B64 8192       /* a key element is ~200 bytes; bounds the decoder */
#define STALE_CHAIN 53         /* XEP-0384: answer a chain this long with a heartbeat */

static void set_u32(xml_node *n, const char *attr, uint32_t v)
{
    char s[16];
    snprintf(s, sizeof s, "%u", (unsigned)v);
    xml_set_attr(n, attr, s);
}

static int parse_u32(const char *s, uint32_t *out)
{
    if (!s || !*s || strlen(s) > 10)
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v == 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* The <keys jid=..> element of header for jid, made if need be. */
static xml_node *keys_for(xml_node *header, const char *who)
{
    for (xml_node *k = xml_child(header, XMLNS_OMEMO, "keys"); k; k = xml_next(k, XMLNS_OMEMO, "keys"))
        if (str_eq(xml_get_attr(k, "jid"), who))
            return k;
    xml_node *k = xml_add_child(header, XMLNS_OMEMO, "keys");
    xml_set_attr(k, "jid", who);
    return k;
}

/* Encrypt km for one target, saving its session; adds the <key/> on success. */
static om_err encrypt_for(om_store *st, const om_own *own, om_target *t, const uint8_t *km,
                          size_t kmlen, xml_node *header)
{
    om_session s;
    buf blob, out;
    buf_init(&blob);
    buf_init(&out);
    int found = 0, kex = 0;
    om_err e = om_store_session_get(st, t->jid, t->device_id, &blob, &found);
    if (e == OM_OK && found)
        e = om_session_load(&s, (const uint8_t *)blob.data, blob.len);
    else if (e == OM_OK && t->bundle)
        e = om_session_build_active(own, t->bundle, &s);
    else if (e == OM_OK)
        e = OM_ERR_NO_SESSION;
    if (blob.data)
        secure_wipe(blob.data, blob.len);
    buf_reset(&blob);
    if (e == OM_OK) {
        e = om_session_encrypt(&s, km, kmlen, &out, &kex);
        if (e == OM_OK) {
            om_session_save(&s, &blob);
            e = om_store_session_put(st, t->jid, t->device_id, blob.data, blob.len);
        }
        om_session_clear(&s);
    }
    if (e == OM_OK) {
        xml_node *key = xml_add_child(keys_for(header, t->jid), XMLNS_OMEMO, "key");
        set_u32(key, "rid", t->device_id);
        /* kex is a boolean; some parsers read any value as true, so "false" is never sent */
        if (kex)
            xml_set_attr(key, "kex", "true");
        char *b = base64_encode((const unsigned char *)out.data, out.len);
        xml_add_text(key, b, strlen(b));
        free(b);
    }
    if (blob.data)
        secure_wipe(blob.data, blob.len);
    buf_free(&blob);
    buf_free(&out);
    return e;
}

xml_node *om_message_encrypt(om_store *st, const om_own *own, const char *from_bare,
                             const char *to_bare, const char *body, om_target *t, size_t nt,
                             size_t *nkeys, om_err *err)
{
    uint8_t km[OM_KM_LEN] = {0};
    size_t kmlen = OM_KM_EMPTY_LEN;
    buf ct;
    buf_init(&ct);
    *nkeys = 0;
    *err = OM_OK;
    if (body) {
        char *sce = om_sce_build(body, from_bare, to_bare);
        *err = sce ? om_payload_encrypt((const uint8_t *)sce, strlen(sce), &ct, km)
                   : OM_ERR_MALFORMED;
        if (sce) {
            secure_wipe(sce, strlen(sce));
            free(sce);
        }
        kmlen = OM_KM_LEN;
    }
    xml_node *enc = NULL;
    if (*err == OM_OK)
        *err = om_store_begin(st);
    if (*err == OM_OK) {
        enc = xml_new(XMLNS_OMEMO, "encrypted");
        xml_node *header = xml_add_child(enc, XMLNS_OMEMO, "header");
        set_u32(header, "sid", own->device_id);
        for (size_t i = 0; i < nt; i++) {
            t[i].result = encrypt_for(st, own, &t[i], km, kmlen, header);
            if (t[i].result == OM_OK)
                (*nkeys)++;
            else if (t[i].result == OM_ERR_STORE)
                break;
        }
        if (*nkeys && om_store_commit(st) != OM_OK)
            *err = OM_ERR_STORE;
        if (!*nkeys || *err != OM_OK) {
            om_store_rollback(st);
            xml_free(enc);
            enc = NULL;
            *nkeys = 0;
        } else if (body) {
            char *b = base64_encode((const unsigned char *)ct.data, ct.len);
            xml_add_text(xml_add_child(enc, XMLNS_OMEMO, "payload"), b, strlen(b));
            free(b);
        }
    }
    secure_wipe(km, sizeof km);
    buf_free(&ct);
    return enc;
}

/* ------------------------------------------------------------------ decryption */

/* Base64 text of el (surrounding whitespace allowed), at most max encoded bytes. */
static unsigned char *b64_of(const xml_node *el, size_t max, size_t *len)
{
    char *t = xml_text(el);
    char *s = t, *e = t + strlen(t);
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t'))
        e--;
    unsigned char *d = (size_t)(e - s) <= max && e > s ? base64_decode(s, (size_t)(e - s), len)
                                                       : NULL;
    free(t);
    return d;
}

static int same_bare(const char *a, const char *b)
{
    char *x = a ? jid_normalize_bare(a) : NULL, *y = b ? jid_normalize_bare(b) : NULL;
    int eq = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return eq;
}

/* Our <key/>: the one in <keys jid=own_bare> with rid = our device id. */
static const xml_node *our_key(const xml_node *header, const char *own_bare, uint32_t own_id)
{
    for (const xml_node *k = xml_child(header, XMLNS_OMEMO, "keys"); k;
         k = xml_next(k, XMLNS_OMEMO, "keys")) {
        if (!same_bare(xml_get_attr(k, "jid"), own_bare))
            continue;
        for (const xml_node *key = xml_child(k, XMLNS_OMEMO, "key"); key;
             key = xml_next(key, XMLNS_OMEMO, "key")) {
            uint32_t rid;
            if (parse_u32(xml_get_attr(key, "rid"), &rid) == 0 && rid == own_id)
                return key;
        }
    }
    return NULL;
}

/* The key material for our key element, through the session (made from a key exchange
 * if there is one). The session is saved in the open transaction. */
static om_err open_key(om_store *st, const om_own *own, const char *sender, uint32_t sid,
                       const unsigned char *key, size_t keylen, int kex, om_device *dev,
                       int dev_found, om_decrypted *out, uint8_t *km, size_t *kmlen)
{
    om_session s;
    buf blob;
    buf_init(&blob);
    int found = 0;
    om_err e = om_store_session_get(st, sender, sid, &blob, &found);
    if (e == OM_OK && found)
        e = om_session_load(&s, (const uint8_t *)blob.data, blob.len);
    if (blob.data)
        secure_wipe(blob.data, blob.len);
    buf_reset(&blob);
    if (e != OM_OK)
        found = 0;
    if (e == OM_OK && kex) {
        pb_kex k;
        if (pb_decode_kex(key, keylen, &k) < 0) {
            e = OM_ERR_MALFORMED;
        } else {
            out->kex = 1;
            memcpy(out->ik, k.ik.p, OM_KEY);
            out->has_ik = 1;
            out->ik_changed = dev_found && dev->has_ik && memcmp(dev->ik, k.ik.p, OM_KEY) != 0;
            if (found && om_session_same_kex(&s, &k)) {
                e = om_session_decrypt(&s, k.message.p, k.message.len, km, kmlen);
            } else {
                /* a new key exchange replaces whatever session there was */
                if (found)
                    om_session_clear(&s);
                found = 0;
                e = om_session_build_passive(st, own, &k, &s, km, kmlen);
                if (e == OM_OK) {
                    found = 1;
                    out->used_prekey = k.pk_id;
                    e = om_store_pk_delete(st, k.pk_id);
                }
            }
            out->needs_reply = 1;
        }
    } else if (e == OM_OK) {
        e = found ? om_session_decrypt(&s, key, keylen, km, kmlen) : OM_ERR_NO_SESSION;
        if (dev_found && dev->has_ik) {
            memcpy(out->ik, dev->ik, OM_KEY);
            out->has_ik = 1;
        }
    }
    if (e == OM_OK && s.r.nr > STALE_CHAIN)
        out->needs_reply = 1;
    if (e == OM_OK) {
        om_session_save(&s, &blob);
        e = om_store_session_put(st, sender, sid, blob.data, blob.len);
    }
    if (found)
        om_session_clear(&s);
    if (blob.data)
        secure_wipe(blob.data, blob.len);
    buf_free(&blob);
    return e;
}

/* Record what this message taught us about the sending device. */
static om_err note_device(om_store *st, const char *sender, uint32_t sid, om_device *dev,
                          int found, om_decrypted *out)
{
    int verified_any = 0;
    om_err e = om_store_has_verified(st, sender, &verified_any);
    if (e != OM_OK)
        return e;
    if (!found) {
        memset(dev, 0, sizeof *dev);
        dev->id = sid;
        dev->first_seen = (int64_t)time(NULL);
        dev->active = 1;
        /* blind trust until the user verifies a device of this account; after that a
         * new device must be verified before it is trusted */
        dev->trust = verified_any ? OM_TRUST_UNTRUSTED : OM_TRUST_BLIND;
        out->new_device = 1;
    }
    if (out->has_ik && (!dev->has_ik || out->ik_changed)) {
        if (out->ik_changed) {
            dev->ik_changed = 1;
            dev->trust = verified_any ? OM_TRUST_UNTRUSTED : OM_TRUST_BLIND;
        }
        memcpy(dev->ik, out->ik, OM_KEY);
        dev->has_ik = 1;
    }
    if (dev->trust == OM_TRUST_VERIFIED && out->ik_changed)
        dev->trust = OM_TRUST_UNTRUSTED;
    out->trust = dev->trust;
    return om_store_device_put(st, sender, dev);
}

om_err om_message_decrypt(om_store *st, const om_own *own, const char *own_bare,
                          const char *sender_bare, const xml_node *encrypted, om_decrypted *out)
{
    return om_message_decrypt_to(st, own, own_bare, own_bare, sender_bare, encrypted, out);
}

om_err om_message_decrypt_to(om_store *st, const om_own *own, const char *own_bare,
                             const char *to_bare, const char *sender_bare,
                             const xml_node *encrypted, om_decrypted *out)
{
    memset(out, 0, sizeof *out);
    const xml_node *header = xml_child(encrypted, XMLNS_OMEMO, "header");
    uint32_t sid;
    if (!header || parse_u32(xml_get_attr(header, "sid"), &sid) < 0)
        return OM_ERR_MALFORMED;
    out->sender_device = sid;
    const xml_node *key_el = our_key(header, own_bare, own->device_id);
    if (!key_el)
        return OM_ERR_NOT_FOR_US;
    const char *kexattr = xml_get_attr(key_el, "kex");
    int kex = str_eq(kexattr, "true") || str_eq(kexattr, "1");
    size_t keylen = 0, ctlen = 0;
    unsigned char *key = b64_of(key_el, MAX_KEY_B64, &keylen);
    const xml_node *pl = xml_child(encrypted, XMLNS_OMEMO, "payload");
    unsigned char *ct = pl ? b64_of(pl, (OM_MAX_PAYLOAD + 64) / 3 * 4 + 8, &ctlen) : NULL;
    if (!key || (pl && !ct)) {
        free(key);
        free(ct);
        return OM_ERR_MALFORMED;
    }
    om_device dev;
    int dev_found = 0;
    uint8_t km[OM_MAX_RATCHET_PT];
    size_t kmlen = 0;
    om_err e = om_store_device_get(st, sender_bare, sid, &dev, &dev_found);
    if (e == OM_OK)
        e = om_store_begin(st);
    int in_tx = e == OM_OK;
    if (e == OM_OK)
        e = open_key(st, own, sender_bare, sid, key, keylen, kex, &dev, dev_found, out, km, &kmlen);
    if (e == OM_OK && kmlen != OM_KM_LEN && kmlen != OM_KM_EMPTY_LEN)
        e = OM_ERR_MALFORMED;
    if (e == OM_OK && ct) {
        buf sce;
        buf_init(&sce);
        e = om_payload_decrypt(km, kmlen, ct, ctlen, &sce);
        if (e == OM_OK)
            e = om_sce_parse(sce.data ? sce.data : "", sce.len, sender_bare, to_bare, &out->body);
        if (sce.data)
            secure_wipe(sce.data, sce.len);
        buf_free(&sce);
    }
    if (e == OM_OK)
        e = note_device(st, sender_bare, sid, &dev, dev_found, out);
    /* all or nothing: a message that fails anywhere changes no session and no key */
    if (e == OM_OK)
        e = om_store_commit(st);
    if (e != OM_OK && in_tx)
        om_store_rollback(st);
    if (e != OM_OK) {
        uint32_t keep = out->sender_device;
        om_decrypted_free(out);
        out->sender_device = keep;
    }
    secure_wipe(km, sizeof km);
    free(key);
    free(ct);
    return e;
}

void om_decrypted_free(om_decrypted *d)
{
    if (d->body) {
        secure_wipe(d->body, strlen(d->body));
        free(d->body);
    }
    memset(d, 0, sizeof *d);
}
