/* om_session.c - building, using and saving OMEMO sessions (om_session.h). */
#include "om_session.h"

#include "../../common/util.h"
#include "x3dh.h"

#include <string.h>

om_err om_session_build_active(const om_own *own, const om_bundle *b, om_session *s)
{
    memset(s, 0, sizeof *s);
    if (b->npk == 0)
        return OM_ERR_MALFORMED;
    uint32_t r;
    random_bytes(&r, sizeof r);
    const om_prekey_pub *pk = &b->pk[r % b->npk];
    om_x3dh_peer peer;
    memcpy(peer.ik, b->ik, OM_KEY);
    memcpy(peer.spk, b->spk, OM_KEY);
    memcpy(peer.spks, b->spks, OM_SIG);
    memcpy(peer.pk, pk->pub, OM_KEY);
    uint8_t sk[OM_KEY];
    om_err e = om_x3dh_active(own->seed, &peer, sk, s->ad, s->ek);
    if (e == OM_OK)
        e = om_ratchet_init_active(&s->r, sk, b->spk);
    secure_wipe(sk, sizeof sk);
    if (e != OM_OK) {
        om_session_clear(s);
        return e;
    }
    s->active = 1;
    s->pk_id = pk->id;
    s->spk_id = b->spk_id;
    memcpy(s->ik, own->ik, OM_KEY);
    return OM_OK;
}

om_err om_session_build_passive(om_store *st, const om_own *own, const pb_kex *kex,
                                om_session *s, uint8_t *km, size_t *kmlen)
{
    memset(s, 0, sizeof *s);
    om_spk spk;
    uint8_t pk[OM_KEY], sk[OM_KEY];
    int found = 0;
    pb_auth a;
    pb_message m;
    if (pb_decode_auth(kex->message.p, kex->message.len, &a) < 0 ||
        pb_decode_message(a.message.p, a.message.len, &m) < 0)
        return OM_ERR_MALFORMED;
    if (om_store_spk_get(st, kex->spk_id, &spk, &found) != OM_OK)
        return OM_ERR_STORE;
    if (!found)
        return OM_ERR_NO_SPK;
    om_err e = om_store_pk_get(st, kex->pk_id, pk, &found) != OM_OK ? OM_ERR_STORE
               : found                                              ? OM_OK
                                                                    : OM_ERR_NO_PREKEY;
    if (e == OM_OK)
        e = om_x3dh_passive(own->seed, spk.priv, pk, kex->ik.p, kex->ek.p, sk, s->ad);
    if (e == OM_OK)
        e = om_ratchet_init_passive(&s->r, sk, spk.priv, m.dh_pub.p);
    if (e == OM_OK)
        e = om_ratchet_decrypt(&s->r, s->ad, kex->message.p, kex->message.len, km, kmlen);
    secure_wipe(&spk, sizeof spk);
    secure_wipe(pk, sizeof pk);
    secure_wipe(sk, sizeof sk);
    if (e != OM_OK) {
        om_session_clear(s);
        return e;
    }
    s->active = 0;
    s->confirmed = 1;
    s->pk_id = kex->pk_id;
    s->spk_id = kex->spk_id;
    memcpy(s->ik, kex->ik.p, OM_KEY);
    memcpy(s->ek, kex->ek.p, OM_KEY);
    return OM_OK;
}

om_err om_session_encrypt(om_session *s, const uint8_t *km, size_t kmlen, buf *out, int *kex)
{
    buf auth;
    buf_init(&auth);
    om_err e = om_ratchet_encrypt(&s->r, s->ad, km, kmlen, &auth);
    *kex = s->active && !s->confirmed;
    if (e == OM_OK) {
        if (*kex)
            pb_encode_kex(out, s->pk_id, s->spk_id, s->ik, s->ek, (const uint8_t *)auth.data,
                          auth.len);
        else
            buf_append(out, auth.data, auth.len);
    }
    buf_free(&auth);
    return e;
}

om_err om_session_decrypt(om_session *s, const uint8_t *in, size_t len, uint8_t *km,
                          size_t *kmlen)
{
    om_err e = om_ratchet_decrypt(&s->r, s->ad, in, len, km, kmlen);
    if (e == OM_OK)
        s->confirmed = 1; /* they have our key exchange: it need not be sent again */
    return e;
}

int om_session_same_kex(const om_session *s, const pb_kex *kex)
{
    return !s->active && s->pk_id == kex->pk_id && s->spk_id == kex->spk_id &&
           memcmp(s->ik, kex->ik.p, OM_KEY) == 0 && memcmp(s->ek, kex->ek.p, OM_KEY) == 0;
}

#define SESSION_VERSION 1

void om_session_save(const om_session *s, buf *out)
{
    uint8_t head[2] = {SESSION_VERSION, (uint8_t)((s->active ? 1 : 0) | (s->confirmed ? 2 : 0))};
    uint8_t ids[8] = {(uint8_t)(s->pk_id >> 24), (uint8_t)(s->pk_id >> 16), (uint8_t)(s->pk_id >> 8),
                      (uint8_t)s->pk_id, (uint8_t)(s->spk_id >> 24), (uint8_t)(s->spk_id >> 16),
                      (uint8_t)(s->spk_id >> 8), (uint8_t)s->spk_id};
    buf_append(out, head, 2);
    buf_append(out, ids, 8);
    buf_append(out, s->ad, OM_AD_LEN);
    buf_append(out, s->ik, OM_KEY);
    buf_append(out, s->ek, OM_KEY);
    om_ratchet_save(&s->r, out);
}

om_err om_session_load(om_session *s, const uint8_t *in, size_t len)
{
    const size_t fixed = 2 + 8 + OM_AD_LEN + 2 * OM_KEY;
    memset(s, 0, sizeof *s);
    if (len < fixed || in[0] != SESSION_VERSION || in[1] > 3)
        return OM_ERR_MALFORMED;
    s->active = in[1] & 1;
    s->confirmed = (in[1] >> 1) & 1;
    s->pk_id = (uint32_t)in[2] << 24 | (uint32_t)in[3] << 16 | (uint32_t)in[4] << 8 | in[5];
    s->spk_id = (uint32_t)in[6] << 24 | (uint32_t)in[7] << 16 | (uint32_t)in[8] << 8 | in[9];
    memcpy(s->ad, in + 10, OM_AD_LEN);
    memcpy(s->ik, in + 10 + OM_AD_LEN, OM_KEY);
    memcpy(s->ek, in + 10 + OM_AD_LEN + OM_KEY, OM_KEY);
    om_err e = om_ratchet_load(&s->r, in + fixed, len - fixed);
    if (e != OM_OK)
        om_session_clear(s);
    return e;
}

void om_session_clear(om_session *s)
{
    om_ratchet_clear(&s->r);
    secure_wipe(s, sizeof *s);
}
