/* x3dh.h - the X3DH key agreement as urn:xmpp:omemo:2 uses it: Ed25519 identity keys
 * (converted to Curve25519 for the Diffie-Hellman steps), X25519 signed and one-time
 * pre-keys, HKDF-SHA-256 with info "OMEMO X3DH", and the associated data
 * initiator-identity || responder-identity (both in their Ed25519 form). */
#ifndef PARLEY_OMEMO_X3DH_H
#define PARLEY_OMEMO_X3DH_H

#include "crypto.h"
#include "errors.h"

/* What the initiator takes from the responder's bundle (one pre-key chosen). */
typedef struct om_x3dh_peer {
    uint8_t ik[OM_KEY];   /* Ed25519 identity key */
    uint8_t spk[OM_KEY];
    uint8_t spks[OM_SIG]; /* Ed25519 signature of spk by ik */
    uint8_t pk[OM_KEY];
} om_x3dh_peer;

/* The signature over a signed pre-key's public key. */
om_err om_spk_sign(const uint8_t seed[OM_KEY], const uint8_t spk_pub[OM_KEY],
                   uint8_t sig[OM_SIG]);
om_err om_spk_verify(const uint8_t ik[OM_KEY], const uint8_t spk_pub[OM_KEY],
                     const uint8_t sig[OM_SIG]);

/* Initiator: verifies the signed pre-key (OM_ERR_SIGNATURE), makes the ephemeral key
 * (public half to ek_pub, for the key exchange message) and derives sk and ad. */
om_err om_x3dh_active(const uint8_t own_seed[OM_KEY], const om_x3dh_peer *peer,
                      uint8_t sk[OM_KEY], uint8_t ad[2 * OM_KEY], uint8_t ek_pub[OM_KEY]);

/* Responder: from our identity seed, the signed and one-time pre-keys the initiator
 * named, and the initiator's identity and ephemeral keys. */
om_err om_x3dh_passive(const uint8_t own_seed[OM_KEY], const uint8_t spk_priv[OM_KEY],
                       const uint8_t pk_priv[OM_KEY], const uint8_t their_ik[OM_KEY],
                       const uint8_t their_ek[OM_KEY], uint8_t sk[OM_KEY],
                       uint8_t ad[2 * OM_KEY]);

#endif
