/* ratchet.h - the Double Ratchet of urn:xmpp:omemo:2.
 *
 *   root chain     HKDF-SHA-256(salt = root key, ikm = DH output, info "OMEMO Root Chain")
 *                  -> 64 bytes: new root key || new chain key
 *   message chain  chain key' = HMAC(ck, 0x02), message key = HMAC(ck, 0x01)
 *   message AEAD   HKDF(salt = 0*32, ikm = message key, info "OMEMO Message Key Material")
 *                  -> 80 bytes: AES-256-CBC key || HMAC key || IV; the tag is the first 16
 *                  bytes of HMAC(ad || OMEMOMessage), sent in an OMEMOAuthenticatedMessage
 *
 * Decryption is transactional: the state changes only when a message authenticates, so
 * a tampered, replayed or garbled message leaves the session exactly as it was. At most
 * OM_MAX_SKIP message keys of skipped messages are kept (the oldest go first), and one
 * message may not skip more than that. */
#ifndef PARLEY_OMEMO_RATCHET_H
#define PARLEY_OMEMO_RATCHET_H

#include "../../common/buf.h"
#include "crypto.h"
#include "errors.h"

#define OM_MAX_SKIP 1000
#define OM_AD_LEN (2 * OM_KEY)
#define OM_MAX_RATCHET_PT 1024 /* the plaintext is 32 + 16 bytes of key material */

typedef struct om_skipped {
    uint8_t dh[OM_KEY];
    uint32_t n;
    uint8_t mk[OM_KEY];
} om_skipped;

typedef struct om_ratchet {
    uint8_t root[OM_KEY];
    uint8_t dhs_priv[OM_KEY], dhs_pub[OM_KEY]; /* our current ratchet key pair */
    uint8_t dhr[OM_KEY];                       /* their current ratchet key */
    uint8_t cks[OM_KEY], ckr[OM_KEY];          /* sending, receiving chain keys */
    uint32_t ns, nr, pn;                       /* lengths: sending, receiving, previous */
    int has_ckr;
    om_skipped *skipped;
    size_t nskipped;
} om_ratchet;

/* Initiator: from the X3DH secret and the responder's signed pre-key. */
om_err om_ratchet_init_active(om_ratchet *r, const uint8_t sk[OM_KEY],
                              const uint8_t their_spk[OM_KEY]);
/* Responder: from the X3DH secret, our signed pre-key and the ratchet key in the header of
 * the first message (pb_message.dh_pub); then om_ratchet_decrypt that message. */
om_err om_ratchet_init_passive(om_ratchet *r, const uint8_t sk[OM_KEY],
                               const uint8_t spk_priv[OM_KEY], const uint8_t their_dh[OM_KEY]);

/* Encrypt pt (<= OM_MAX_RATCHET_PT) into a serialized OMEMOAuthenticatedMessage. */
om_err om_ratchet_encrypt(om_ratchet *r, const uint8_t ad[OM_AD_LEN], const uint8_t *pt,
                          size_t len, buf *out);
/* Decrypt a serialized OMEMOAuthenticatedMessage; pt needs OM_MAX_RATCHET_PT bytes. */
om_err om_ratchet_decrypt(om_ratchet *r, const uint8_t ad[OM_AD_LEN], const uint8_t *in,
                          size_t len, uint8_t *pt, size_t *ptlen);

/* Wipe and free. */
void om_ratchet_clear(om_ratchet *r);
/* A binary snapshot (for the encrypted store) and its inverse. */
void om_ratchet_save(const om_ratchet *r, buf *out);
om_err om_ratchet_load(om_ratchet *r, const uint8_t *in, size_t len);

#endif
