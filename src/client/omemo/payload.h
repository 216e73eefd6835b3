/* payload.h - the message payload of urn:xmpp:omemo:2: a fresh 32-byte key per message,
 * HKDF-SHA-256 (salt 0*32, info "OMEMO Payload") -> AES-256-CBC key || HMAC key || IV,
 * and a 16-byte truncated HMAC-SHA-256 of the ciphertext. The key and the tag (48 bytes,
 * the "key material") travel to each recipient device through its Double Ratchet session.
 * An empty OMEMO message (a heartbeat or a session confirmation) has no payload; its key
 * material is 32 zero bytes without a tag. */
#ifndef PARLEY_OMEMO_PAYLOAD_H
#define PARLEY_OMEMO_PAYLOAD_H

#include "../../common/buf.h"
#include "errors.h"

#include <stddef.h>
#include <stdint.h>

#define OM_KM_LEN 48        /* key (32) || tag (16) */
#define OM_KM_EMPTY_LEN 32  /* the key material of an empty message */
#define OM_MAX_PAYLOAD (256 * 1024)

/* Encrypt pt into out (ciphertext); km gets the key material. */
om_err om_payload_encrypt(const uint8_t *pt, size_t len, buf *out, uint8_t km[OM_KM_LEN]);
/* Check the tag in km (constant time), then decrypt into out (NUL-terminated). */
om_err om_payload_decrypt(const uint8_t *km, size_t kmlen, const uint8_t *ct, size_t len,
                          buf *out);

#endif
