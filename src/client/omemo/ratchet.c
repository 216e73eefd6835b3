/* ratchet.c - the Double Ratchet of urn:xmpp:omemo:2 (ratchet.h). The structure follows
 * the Signal specification; the KDFs, the AEAD and the header encoding are OMEMO's. */
#include "ratchet.h"

#include "../../common/util.h"
#include "protobuf.h"

#include <stdlib.h>
#include <string.h>

#define ROOT_INFO "OMEMO Root Chain"
#define MSGKEY_INFO "OMEMO Message Key Material"
#define TAG_LEN 16
#define MAX_CT 4096

/* (root, ck) = KDF_RK(root, DH(priv, pub)) */
static om_err root_step(uint8_t root[OM_KEY], const uint8_t priv[OM_KEY],
                        const uint8_t pub[OM_KEY], uint8_t ck[OM_KEY])
{
    uint8_t dh[OM_KEY], out[2 * OM_KEY];
    om_err e = OM_ERR_CRYPTO;
    if (om_x25519(priv, pub, dh) == 0 &&
        om_hkdf(root, OM_KEY, dh, OM_KEY, ROOT_INFO, out, sizeof out) == 0) {
        memcpy(root, out, OM_KEY);
        memcpy(ck, out + OM_KEY, OM_KEY);
        e = OM_OK;
    }
    secure_wipe(dh, sizeof dh);
    secure_wipe(out, sizeof out);
    return e;
}

/* (ck, mk) = KDF_CK(ck) */
static om_err chain_step(uint8_t ck[OM_KEY], uint8_t mk[OM_KEY])
{
    static const uint8_t c_chain = 0x02, c_msg = 0x01;
    uint8_t next[OM_KEY];
    if (om_hmac(ck, OM_KEY, &c_msg, 1, NULL, 0, mk) < 0 ||
        om_hmac(ck, OM_KEY, &c_chain, 1, NULL, 0, next) < 0) {
        secure_wipe(next, sizeof next);
        return OM_ERR_CRYPTO;
    }
    memcpy(ck, next, OM_KEY);
    secure_wipe(next, sizeof next);
    return OM_OK;
}

/* AES key || HMAC key || IV from a message key. */
static om_err message_keys(const uint8_t mk[OM_KEY], uint8_t out[80])
{
    uint8_t salt[OM_KEY] = {0};
    return om_hkdf(salt, sizeof salt, mk, OM_KEY, MSGKEY_INFO, out, 80) == 0 ? OM_OK
                                                                             : OM_ERR_CRYPTO;
}

om_err om_ratchet_init_active(om_ratchet *r, const uint8_t sk[OM_KEY],
                              const uint8_t their_spk[OM_KEY])
{
    memset(r, 0, sizeof *r);
    memcpy(r->root, sk, OM_KEY);
    memcpy(r->dhr, their_spk, OM_KEY);
    if (om_x25519_keygen(r->dhs_priv, r->dhs_pub) < 0 ||
        root_step(r->root, r->dhs_priv, r->dhr, r->cks) != OM_OK) {
        om_ratchet_clear(r);
        return OM_ERR_CRYPTO;
    }
    return OM_OK;
}

om_err om_ratchet_init_passive(om_ratchet *r, const uint8_t sk[OM_KEY],
                               const uint8_t spk_priv[OM_KEY], const uint8_t their_dh[OM_KEY])
{
    memset(r, 0, sizeof *r);
    memcpy(r->root, sk, OM_KEY);
    memcpy(r->dhr, their_dh, OM_KEY);
    r->has_ckr = 1;
    /* The receiving chain comes from our signed pre-key, the sending chain from a fresh
     * ratchet key, exactly as if a ratchet step had happened. */
    if (root_step(r->root, spk_priv, r->dhr, r->ckr) != OM_OK ||
        om_x25519_keygen(r->dhs_priv, r->dhs_pub) < 0 ||
        root_step(r->root, r->dhs_priv, r->dhr, r->cks) != OM_OK) {
        om_ratchet_clear(r);
        return OM_ERR_CRYPTO;
    }
    return OM_OK;
}

void om_ratchet_clear(om_ratchet *r)
{
    if (r->skipped) {
        secure_wipe(r->skipped, r->nskipped * sizeof *r->skipped);
        free(r->skipped);
    }
    secure_wipe(r, sizeof *r);
}

om_err om_ratchet_encrypt(om_ratchet *r, const uint8_t ad[OM_AD_LEN], const uint8_t *pt,
                          size_t len, buf *out)
{
    if (len > OM_MAX_RATCHET_PT)
        return OM_ERR_MALFORMED;
    uint8_t mk[OM_KEY], keys[80], ct[OM_MAX_RATCHET_PT + 16], tag[OM_KEY];
    size_t ctlen = 0;
    uint32_t n = r->ns;
    om_err e = chain_step(r->cks, mk);
    if (e == OM_OK)
        e = message_keys(mk, keys);
    if (e == OM_OK && om_aes_cbc_encrypt(keys, keys + 64, pt, len, ct, &ctlen) < 0)
        e = OM_ERR_CRYPTO;
    buf msg;
    buf_init(&msg);
    if (e == OM_OK) {
        r->ns++;
        pb_encode_message(&msg, n, r->pn, r->dhs_pub, ct, ctlen);
        if (om_hmac(keys + 32, OM_KEY, ad, OM_AD_LEN, (const uint8_t *)msg.data, msg.len, tag) < 0)
            e = OM_ERR_CRYPTO;
        else
            pb_encode_auth(out, tag, TAG_LEN, (const uint8_t *)msg.data, msg.len);
    }
    buf_free(&msg);
    secure_wipe(mk, sizeof mk);
    secure_wipe(keys, sizeof keys);
    return e;
}

static int find_skipped(const om_ratchet *r, const uint8_t dh[OM_KEY], uint32_t n)
{
    for (size_t i = 0; i < r->nskipped; i++)
        if (r->skipped[i].n == n && memcmp(r->skipped[i].dh, dh, OM_KEY) == 0)
            return (int)i;
    return -1;
}

static void drop_skipped(om_ratchet *r, size_t i)
{
    secure_wipe(&r->skipped[i], sizeof r->skipped[i]);
    memmove(&r->skipped[i], &r->skipped[i + 1], (r->nskipped - i - 1) * sizeof *r->skipped);
    r->nskipped--;
}

/* Keep the message keys of the receiving chain up to (excluding) `until`. */
static om_err skip_until(om_ratchet *r, uint32_t until)
{
    while (r->nr < until) {
        if (r->nskipped == OM_MAX_SKIP)
            drop_skipped(r, 0); /* the oldest goes */
        if (!r->skipped)
            r->skipped = xcalloc(OM_MAX_SKIP, sizeof *r->skipped);
        om_skipped *s = &r->skipped[r->nskipped];
        if (chain_step(r->ckr, s->mk) != OM_OK)
            return OM_ERR_CRYPTO;
        memcpy(s->dh, r->dhr, OM_KEY);
        s->n = r->nr++;
        r->nskipped++;
    }
    return OM_OK;
}

/* The message key for a header, advancing (the copy of) the state as needed. */
static om_err next_decryption_key(om_ratchet *r, const pb_message *h, uint8_t mk[OM_KEY])
{
    om_err e;
    if (memcmp(h->dh_pub.p, r->dhr, OM_KEY) != 0) {
        /* A new ratchet key: keep what is left of the old chain (unless absurdly much),
         * then step the root chain twice. */
        if (r->has_ckr && h->pn > r->nr && h->pn - r->nr <= OM_MAX_SKIP &&
            (e = skip_until(r, h->pn)) != OM_OK)
            return e;
        memcpy(r->dhr, h->dh_pub.p, OM_KEY);
        if ((e = root_step(r->root, r->dhs_priv, r->dhr, r->ckr)) != OM_OK)
            return e;
        r->has_ckr = 1;
        r->nr = 0;
        r->pn = r->ns;
        r->ns = 0;
        if (om_x25519_keygen(r->dhs_priv, r->dhs_pub) < 0 ||
            (e = root_step(r->root, r->dhs_priv, r->dhr, r->cks)) != OM_OK)
            return OM_ERR_CRYPTO;
    }
    if (!r->has_ckr)
        return OM_ERR_NO_SESSION;
    if (h->n > r->nr && h->n - r->nr > OM_MAX_SKIP)
        return OM_ERR_SKIP_LIMIT;
    if ((e = skip_until(r, h->n)) != OM_OK)
        return e;
    if (h->n < r->nr)
        return OM_ERR_DUPLICATE;
    r->nr++;
    return chain_step(r->ckr, mk);
}

static void copy_state(om_ratchet *dst, const om_ratchet *src)
{
    *dst = *src;
    dst->skipped = NULL;
    if (src->skipped) {
        dst->skipped = xcalloc(OM_MAX_SKIP, sizeof *dst->skipped);
        memcpy(dst->skipped, src->skipped, src->nskipped * sizeof *src->skipped);
    }
}

om_err om_ratchet_decrypt(om_ratchet *r, const uint8_t ad[OM_AD_LEN], const uint8_t *in,
                          size_t len, uint8_t *pt, size_t *ptlen)
{
    pb_auth a;
    pb_message m;
    *ptlen = 0;
    if (pb_decode_auth(in, len, &a) < 0 || pb_decode_message(a.message.p, a.message.len, &m) < 0 ||
        !m.has_ciphertext || m.ciphertext.len == 0 || m.ciphertext.len > MAX_CT ||
        m.ciphertext.len % OM_IV)
        return OM_ERR_MALFORMED;
    om_ratchet t;
    copy_state(&t, r);
    uint8_t mk[OM_KEY], keys[80], tag[OM_KEY];
    int idx = find_skipped(&t, m.dh_pub.p, m.n);
    om_err e = OM_OK;
    if (idx >= 0) {
        memcpy(mk, t.skipped[idx].mk, OM_KEY);
        drop_skipped(&t, (size_t)idx);
    } else {
        e = next_decryption_key(&t, &m, mk);
    }
    if (e == OM_OK)
        e = message_keys(mk, keys);
    if (e == OM_OK &&
        om_hmac(keys + 32, OM_KEY, ad, OM_AD_LEN, a.message.p, a.message.len, tag) < 0)
        e = OM_ERR_CRYPTO;
    if (e == OM_OK && !ct_equal(tag, a.mac.p, TAG_LEN))
        e = OM_ERR_MAC;
    uint8_t tmp[MAX_CT];
    size_t n = 0;
    if (e == OM_OK && (om_aes_cbc_decrypt(keys, keys + 64, m.ciphertext.p, m.ciphertext.len,
                                          tmp, &n) < 0 || n > OM_MAX_RATCHET_PT))
        e = OM_ERR_MAC; /* authenticated but undecryptable: the sender's key was wrong */
    if (e == OM_OK) {
        memcpy(pt, tmp, n);
        *ptlen = n;
        om_ratchet_clear(r);
        *r = t; /* commit */
    } else {
        om_ratchet_clear(&t);
    }
    secure_wipe(tmp, sizeof tmp);
    secure_wipe(mk, sizeof mk);
    secure_wipe(keys, sizeof keys);
    return e;
}

/* ------------------------------------------------------------------ snapshot */

#define SNAP_VERSION 1

static void put32(buf *out, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_append(out, b, 4);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void om_ratchet_save(const om_ratchet *r, buf *out)
{
    uint8_t v = SNAP_VERSION, f = (uint8_t)(r->has_ckr ? 1 : 0);
    buf_append(out, &v, 1);
    buf_append(out, &f, 1);
    buf_append(out, r->root, OM_KEY);
    buf_append(out, r->dhs_priv, OM_KEY);
    buf_append(out, r->dhr, OM_KEY);
    buf_append(out, r->cks, OM_KEY);
    buf_append(out, r->ckr, OM_KEY);
    put32(out, r->ns);
    put32(out, r->nr);
    put32(out, r->pn);
    put32(out, (uint32_t)r->nskipped);
    for (size_t i = 0; i < r->nskipped; i++) {
        buf_append(out, r->skipped[i].dh, OM_KEY);
        put32(out, r->skipped[i].n);
        buf_append(out, r->skipped[i].mk, OM_KEY);
    }
}

om_err om_ratchet_load(om_ratchet *r, const uint8_t *in, size_t len)
{
    const size_t fixed = 2 + 5 * OM_KEY + 16, each = 2 * OM_KEY + 4;
    memset(r, 0, sizeof *r);
    if (len < fixed || in[0] != SNAP_VERSION || in[1] > 1)
        return OM_ERR_MALFORMED;
    uint32_t nsk = get32(in + fixed - 4);
    if (nsk > OM_MAX_SKIP || len != fixed + nsk * each)
        return OM_ERR_MALFORMED;
    const uint8_t *p = in + 2;
    r->has_ckr = in[1];
    memcpy(r->root, p, OM_KEY), p += OM_KEY;
    memcpy(r->dhs_priv, p, OM_KEY), p += OM_KEY;
    memcpy(r->dhr, p, OM_KEY), p += OM_KEY;
    memcpy(r->cks, p, OM_KEY), p += OM_KEY;
    memcpy(r->ckr, p, OM_KEY), p += OM_KEY;
    r->ns = get32(p), p += 4;
    r->nr = get32(p), p += 4;
    r->pn = get32(p), p += 8;
    if (om_x25519_pub(r->dhs_priv, r->dhs_pub) < 0) {
        om_ratchet_clear(r);
        return OM_ERR_MALFORMED;
    }
    if (nsk) {
        r->skipped = xcalloc(OM_MAX_SKIP, sizeof *r->skipped);
        for (uint32_t i = 0; i < nsk; i++, p += each) {
            memcpy(r->skipped[i].dh, p, OM_KEY);
            r->skipped[i].n = get32(p + OM_KEY);
            memcpy(r->skipped[i].mk, p + OM_KEY + 4, OM_KEY);
        }
        r->nskipped = nsk;
    }
    return OM_OK;
}
