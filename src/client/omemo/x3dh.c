/* x3dh.c - X3DH for urn:xmpp:omemo:2 (x3dh.h). The HKDF input is 32 bytes of 0xFF
 * followed by DH1..DH4, as in the Signal specification for X25519; the salt is 32 zero
 * bytes. Every intermediate secret is wiped before returning. */
#include "x3dh.h"

#include "../../common/util.h"

#include <string.h>

#define X3DH_INFO "OMEMO X3DH"

om_err om_spk_sign(const uint8_t seed[OM_KEY], const uint8_t spk_pub[OM_KEY],
                   uint8_t sig[OM_SIG])
{
    return om_ed25519_sign(seed, spk_pub, OM_KEY, sig) == 0 ? OM_OK : OM_ERR_CRYPTO;
}

om_err om_spk_verify(const uint8_t ik[OM_KEY], const uint8_t spk_pub[OM_KEY],
                     const uint8_t sig[OM_SIG])
{
    return om_ed25519_verify(ik, spk_pub, OM_KEY, sig) == 0 ? OM_OK : OM_ERR_SIGNATURE;
}

/* sk = HKDF(0xFF*32 || dh[0..3]) and wipe the input. */
static om_err derive(uint8_t ikm[5 * OM_KEY], uint8_t sk[OM_KEY])
{
    uint8_t salt[OM_KEY] = {0};
    memset(ikm, 0xff, OM_KEY);
    int rc = om_hkdf(salt, sizeof salt, ikm, 5 * OM_KEY, X3DH_INFO, sk, OM_KEY);
    secure_wipe(ikm, 5 * OM_KEY);
    return rc == 0 ? OM_OK : OM_ERR_CRYPTO;
}

om_err om_x3dh_active(const uint8_t own_seed[OM_KEY], const om_x3dh_peer *peer,
                      uint8_t sk[OM_KEY], uint8_t ad[2 * OM_KEY], uint8_t ek_pub[OM_KEY])
{
    om_err e = om_spk_verify(peer->ik, peer->spk, peer->spks);
    if (e != OM_OK)
        return e;
    uint8_t own_scalar[OM_KEY], own_ik[OM_KEY], their_ik_x[OM_KEY], ek[OM_KEY];
    uint8_t ikm[5 * OM_KEY];
    e = OM_ERR_CRYPTO;
    if (om_ed25519_seed_to_x25519(own_seed, own_scalar) == 0 &&
        om_ed25519_pub(own_seed, own_ik) == 0 &&
        om_ed25519_pub_to_x25519(peer->ik, their_ik_x) == 0 && om_x25519_keygen(ek, ek_pub) == 0 &&
        om_x25519(own_scalar, peer->spk, ikm + 1 * OM_KEY) == 0 &&  /* DH1 = DH(IKa, SPKb) */
        om_x25519(ek, their_ik_x, ikm + 2 * OM_KEY) == 0 &&         /* DH2 = DH(EKa, IKb) */
        om_x25519(ek, peer->spk, ikm + 3 * OM_KEY) == 0 &&          /* DH3 = DH(EKa, SPKb) */
        om_x25519(ek, peer->pk, ikm + 4 * OM_KEY) == 0) {           /* DH4 = DH(EKa, OPKb) */
        e = derive(ikm, sk);
        memcpy(ad, own_ik, OM_KEY);
        memcpy(ad + OM_KEY, peer->ik, OM_KEY);
    }
    secure_wipe(ikm, sizeof ikm);
    secure_wipe(own_scalar, sizeof own_scalar);
    secure_wipe(ek, sizeof ek);
    return e;
}

om_err om_x3dh_passive(const uint8_t own_seed[OM_KEY], const uint8_t spk_priv[OM_KEY],
                       const uint8_t pk_priv[OM_KEY], const uint8_t their_ik[OM_KEY],
                       const uint8_t their_ek[OM_KEY], uint8_t sk[OM_KEY],
                       uint8_t ad[2 * OM_KEY])
{
    uint8_t own_scalar[OM_KEY], own_ik[OM_KEY], their_ik_x[OM_KEY];
    uint8_t ikm[5 * OM_KEY];
    om_err e = OM_ERR_CRYPTO;
    if (om_ed25519_seed_to_x25519(own_seed, own_scalar) == 0 &&
        om_ed25519_pub(own_seed, own_ik) == 0 &&
        om_ed25519_pub_to_x25519(their_ik, their_ik_x) == 0 &&
        om_x25519(spk_priv, their_ik_x, ikm + 1 * OM_KEY) == 0 &&
        om_x25519(own_scalar, their_ek, ikm + 2 * OM_KEY) == 0 &&
        om_x25519(spk_priv, their_ek, ikm + 3 * OM_KEY) == 0 &&
        om_x25519(pk_priv, their_ek, ikm + 4 * OM_KEY) == 0) {
        e = derive(ikm, sk);
        memcpy(ad, their_ik, OM_KEY);
        memcpy(ad + OM_KEY, own_ik, OM_KEY);
    }
    secure_wipe(ikm, sizeof ikm);
    secure_wipe(own_scalar, sizeof own_scalar);
    return e;
}
