/* om_session.h - one OMEMO session with one device of another account (or of our own):
 * the Double Ratchet, the X3DH associated data, and the key exchange that built it.
 *
 * The initiator ("active") sends its key exchange (OMEMOKeyExchange: pre-key ids, its
 * identity and ephemeral keys) with every message until the other side has answered
 * (the session is "confirmed"); the responder ("passive") keeps the key exchange it was
 * built from, so a repeated key exchange for the same session is recognised. */
#ifndef PARLEY_OMEMO_OM_SESSION_H
#define PARLEY_OMEMO_OM_SESSION_H

#include "../../common/buf.h"
#include "bundle.h"
#include "protobuf.h"
#include "ratchet.h"
#include "session_store.h"

typedef struct om_session {
    om_ratchet r;
    uint8_t ad[OM_AD_LEN];
    int active;
    int confirmed;
    /* the key exchange: ids of the responder's pre-keys, the initiator's keys */
    uint32_t pk_id, spk_id;
    uint8_t ik[OM_KEY], ek[OM_KEY];
} om_session;

/* Initiator: X3DH with a pre-key chosen at random from the bundle (whose signature is
 * verified: OM_ERR_SIGNATURE). */
om_err om_session_build_active(const om_own *own, const om_bundle *b, om_session *s);

/* Responder: X3DH from a received key exchange, with our pre-keys from the store
 * (OM_ERR_NO_SPK / OM_ERR_NO_PREKEY), then the first message decrypted into km. */
om_err om_session_build_passive(om_store *st, const om_own *own, const pb_kex *kex,
                                om_session *s, uint8_t *km, size_t *kmlen);

/* Encrypt key material for this device: the serialized OMEMOKeyExchange while an active
 * session is unconfirmed (*kex = 1), else the OMEMOAuthenticatedMessage. */
om_err om_session_encrypt(om_session *s, const uint8_t *km, size_t kmlen, buf *out, int *kex);
/* Decrypt an OMEMOAuthenticatedMessage with the session (which then counts as confirmed). */
om_err om_session_decrypt(om_session *s, const uint8_t *in, size_t len, uint8_t *km,
                          size_t *kmlen);

/* Did this key exchange build this (passive) session? */
int om_session_same_kex(const om_session *s, const pb_kex *kex);

void om_session_save(const om_session *s, buf *out);
om_err om_session_load(om_session *s, const uint8_t *in, size_t len);
void om_session_clear(om_session *s);

#endif
