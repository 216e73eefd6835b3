/* identity.h - this device's OMEMO identity and the keys it publishes: an Ed25519
 * identity key and a device id made once; a signed pre-key rotated every
 * OM_SPK_ROTATE_SECS (the previous one kept one more period, for key exchanges still in
 * flight); OM_PREKEYS one-time pre-keys, each deleted when used and replaced. */
#ifndef PARLEY_OMEMO_IDENTITY_H
#define PARLEY_OMEMO_IDENTITY_H

#include "bundle.h"
#include "session_store.h"

#define OM_PREKEYS 100
#define OM_SPK_ROTATE_SECS (7 * 24 * 3600)

/* Load this device's identity, or make one (with a signed pre-key and the pre-keys) if
 * the store has none; a new device id avoids the ids in `taken` (the account's device
 * list). *created says which. */
om_err om_identity_load_or_create(om_store *st, const uint32_t *taken, size_t ntaken,
                                  om_own *own, int *created);

/* Rotate the signed pre-key when it is older than rotate_secs, and make pre-keys up to
 * OM_PREKEYS. *changed: the bundle differs from before and must be published again. */
om_err om_identity_maintain(om_store *st, const om_own *own, int64_t now, int64_t rotate_secs,
                            int *changed);

/* The public bundle: identity key, the newest signed pre-key, the pre-keys. */
om_err om_identity_bundle(om_store *st, const om_own *own, om_bundle *b);

/* The fingerprint users compare: the identity key in its Curve25519 form, as eight groups
 * of eight lower-case hex digits ("0a1b2c3d 4e5f..."), as other OMEMO clients show it.
 * out needs OM_FP_LEN bytes. */
#define OM_FP_LEN 72
om_err om_fingerprint(const uint8_t ik[OM_KEY], char out[OM_FP_LEN]);
/* Parse a fingerprint typed by a user (hex digits, any spaces or colons) into the 32 raw
 * bytes of the Curve25519 form. -1 if it is not 64 hex digits. */
int om_fingerprint_parse(const char *text, uint8_t out[OM_KEY]);

#endif
