/* identity.c - this device's identity, signed pre-key rotation and pre-key supply
 * (identity.h). Every private key is wiped from memory once stored. */
#include "identity.h"

#include "../../common/util.h"
#include "x3dh.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static om_err new_spk(om_store *st, const om_own *own, int64_t now)
{
    om_spk spk;
    om_err e = om_store_next_id(st, "spk", &spk.id);
    if (e == OM_OK && om_x25519_keygen(spk.priv, spk.pub) < 0)
        e = OM_ERR_CRYPTO;
    if (e == OM_OK)
        e = om_spk_sign(own->seed, spk.pub, spk.sig);
    spk.created = now;
    if (e == OM_OK)
        e = om_store_spk_add(st, &spk);
    /* the current one and its predecessor (for key exchanges made before the rotation) */
    if (e == OM_OK)
        e = om_store_spk_prune(st, 2);
    secure_wipe(&spk, sizeof spk);
    return e;
}

static om_err top_up_prekeys(om_store *st, int *added)
{
    om_prekey_pub have[OM_PREKEYS];
    size_t n = 0;
    *added = 0;
    om_err e = om_store_pk_list(st, have, OM_PREKEYS, &n);
    for (; e == OM_OK && n < OM_PREKEYS; n++) {
        uint32_t id;
        uint8_t priv[OM_KEY], pub[OM_KEY];
        e = om_store_next_id(st, "pk", &id);
        if (e == OM_OK && om_x25519_keygen(priv, pub) < 0)
            e = OM_ERR_CRYPTO;
        if (e == OM_OK)
            e = om_store_pk_add(st, id, priv, pub);
        secure_wipe(priv, sizeof priv);
        (*added)++;
    }
    return e;
}

static uint32_t random_device_id(const uint32_t *taken, size_t ntaken)
{
    for (;;) {
        uint32_t id;
        random_bytes(&id, sizeof id);
        id &= 0x7fffffff; /* 1 .. 2^31-1, as other implementations choose them */
        int clash = id == 0;
        for (size_t i = 0; i < ntaken && !clash; i++)
            clash = taken[i] == id;
        if (!clash)
            return id;
    }
}

om_err om_identity_load_or_create(om_store *st, const uint32_t *taken, size_t ntaken,
                                  om_own *own, int *created)
{
    int found = 0;
    *created = 0;
    om_err e = om_store_own_get(st, own, &found);
    if (e != OM_OK || found)
        return e;
    if ((e = om_store_begin(st)) != OM_OK)
        return e;
    random_bytes(own->seed, OM_KEY);
    own->device_id = random_device_id(taken, ntaken);
    int added = 0;
    e = om_ed25519_pub(own->seed, own->ik) == 0 ? OM_OK : OM_ERR_CRYPTO;
    if (e == OM_OK)
        e = om_store_own_set(st, own);
    if (e == OM_OK)
        e = new_spk(st, own, (int64_t)time(NULL));
    if (e == OM_OK)
        e = top_up_prekeys(st, &added);
    if (e == OM_OK)
        e = om_store_commit(st);
    if (e != OM_OK) {
        om_store_rollback(st);
        secure_wipe(own, sizeof *own);
        return e;
    }
    *created = 1;
    return OM_OK;
}

om_err om_identity_maintain(om_store *st, const om_own *own, int64_t now, int64_t rotate_secs,
                            int *changed)
{
    *changed = 0;
    om_spk cur;
    int found = 0, added = 0;
    om_err e = om_store_begin(st);
    if (e == OM_OK)
        e = om_store_spk_current(st, &cur, &found);
    if (e == OM_OK && (!found || now - cur.created >= rotate_secs || now < cur.created)) {
        e = new_spk(st, own, now);
        *changed = 1;
    }
    secure_wipe(&cur, sizeof cur);
    if (e == OM_OK)
        e = top_up_prekeys(st, &added);
    if (e == OM_OK)
        e = om_store_commit(st);
    if (e != OM_OK) {
        om_store_rollback(st);
        *changed = 0;
        return e;
    }
    *changed |= added > 0;
    return OM_OK;
}

om_err om_identity_bundle(om_store *st, const om_own *own, om_bundle *b)
{
    memset(b, 0, sizeof *b);
    om_spk spk;
    int found = 0;
    om_err e = om_store_spk_current(st, &spk, &found);
    if (e == OM_OK && !found)
        e = OM_ERR_STORE;
    if (e == OM_OK) {
        memcpy(b->ik, own->ik, OM_KEY);
        b->spk_id = spk.id;
        memcpy(b->spk, spk.pub, OM_KEY);
        memcpy(b->spks, spk.sig, OM_SIG);
        e = om_store_pk_list(st, b->pk, OM_MAX_PREKEYS, &b->npk);
    }
    secure_wipe(&spk, sizeof spk);
    return e;
}

om_err om_fingerprint(const uint8_t ik[OM_KEY], char out[OM_FP_LEN])
{
    uint8_t x[OM_KEY];
    if (om_ed25519_pub_to_x25519(ik, x) < 0) {
        out[0] = '\0';
        return OM_ERR_MALFORMED;
    }
    size_t o = 0;
    for (int i = 0; i < OM_KEY; i++) {
        if (i && i % 4 == 0)
            out[o++] = ' ';
        o += (size_t)snprintf(out + o, OM_FP_LEN - o, "%02x", x[i]);
    }
    out[o] = '\0';
    return OM_OK;
}

int om_fingerprint_parse(const char *text, uint8_t out[OM_KEY])
{
    size_t n = 0;
    int hi = -1;
    for (const char *c = text; *c; c++) {
        if (*c == ' ' || *c == ':' || *c == '-' || *c == '\t')
            continue;
        if (!isxdigit((unsigned char)*c) || n == OM_KEY)
            return -1;
        int v = isdigit((unsigned char)*c) ? *c - '0' : tolower((unsigned char)*c) - 'a' + 10;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return n == OM_KEY && hi < 0 ? 0 : -1;
}
