/* session_store.h - OMEMO's persistent state in an encrypted SQLCipher database: this
 * device's identity (seed and device id), its signed pre-keys and one-time pre-keys, the
 * devices of other accounts (identity keys and trust) and the Double Ratchet sessions.
 *
 * The file is encrypted at rest (AES-256, SQLCipher) with the key the client's history
 * uses; it is created 0600 in a 0700 directory and never re-created: an existing file
 * that cannot be opened (wrong key, damage) is an error and is left as it is. path NULL
 * keeps everything in memory (a device that lives for one session). Every call returns
 * OM_OK or OM_ERR_STORE (with the reason in om_store_errmsg). */
#ifndef PARLEY_OMEMO_SESSION_STORE_H
#define PARLEY_OMEMO_SESSION_STORE_H

#include "../../common/buf.h"
#include "bundle.h"
#include "crypto.h"
#include "errors.h"

#include <stddef.h>
#include <stdint.h>

typedef struct om_store om_store;

typedef enum {
    OM_TRUST_UNTRUSTED = -1, /* distrusted, or new beside verified devices: not used */
    OM_TRUST_BLIND = 0,      /* trusted blindly, as nothing of this account is verified */
    OM_TRUST_VERIFIED = 1,   /* fingerprint compared by the user */
} om_trust;

typedef struct om_own {
    uint32_t device_id;
    uint8_t seed[OM_KEY]; /* Ed25519 private key (seed) */
    uint8_t ik[OM_KEY];   /* its public key */
} om_own;

typedef struct om_spk {
    uint32_t id;
    uint8_t priv[OM_KEY], pub[OM_KEY], sig[OM_SIG];
    int64_t created; /* Unix seconds */
} om_spk;

typedef struct om_device {
    uint32_t id;
    int has_ik;
    uint8_t ik[OM_KEY];
    om_trust trust;
    int active;        /* in the account's current device list */
    int ik_changed;    /* the identity key was replaced and not yet verified */
    int64_t first_seen;
    char label[OM_MAX_LABEL + 1];
} om_device;

om_err om_store_open(om_store **out, const char *path, const uint8_t *raw_key,
                     const char *passphrase, char *why, size_t whylen);
void om_store_close(om_store *s);
const char *om_store_errmsg(const om_store *s);

om_err om_store_begin(om_store *s);
om_err om_store_commit(om_store *s);
void om_store_rollback(om_store *s);

/* *found 0 when this store has no identity yet. */
om_err om_store_own_get(om_store *s, om_own *own, int *found);
om_err om_store_own_set(om_store *s, const om_own *own);

/* The next id of a counter ("pk", "spk"): 1, 2, 3... never reused. */
om_err om_store_next_id(om_store *s, const char *counter, uint32_t *id);

om_err om_store_spk_add(om_store *s, const om_spk *spk);
/* The newest signed pre-key (found 0 if none), or the one with this id. */
om_err om_store_spk_current(om_store *s, om_spk *spk, int *found);
om_err om_store_spk_get(om_store *s, uint32_t id, om_spk *spk, int *found);
/* Keep the newest `keep` signed pre-keys, delete the rest. */
om_err om_store_spk_prune(om_store *s, int keep);

om_err om_store_pk_add(om_store *s, uint32_t id, const uint8_t priv[OM_KEY],
                       const uint8_t pub[OM_KEY]);
om_err om_store_pk_get(om_store *s, uint32_t id, uint8_t priv[OM_KEY], int *found);
om_err om_store_pk_delete(om_store *s, uint32_t id);
/* Public halves, oldest first, at most max. */
om_err om_store_pk_list(om_store *s, om_prekey_pub *out, size_t max, size_t *n);

/* Devices of an account (bare JID). */
om_err om_store_device_get(om_store *s, const char *jid, uint32_t id, om_device *d, int *found);
om_err om_store_device_put(om_store *s, const char *jid, const om_device *d);
typedef int (*om_device_fn)(const char *jid, const om_device *d, void *ud);
/* Each device of jid (NULL: of every account), by JID then id; fn returns non-zero to stop. */
om_err om_store_device_each(om_store *s, const char *jid, om_device_fn fn, void *ud);
/* Does jid have a device the user verified? */
om_err om_store_has_verified(om_store *s, const char *jid, int *yes);

/* Sessions: opaque snapshots (om_session.c's format). */
om_err om_store_session_get(om_store *s, const char *jid, uint32_t id, buf *blob, int *found);
om_err om_store_session_put(om_store *s, const char *jid, uint32_t id, const void *blob,
                            size_t len);
om_err om_store_session_delete(om_store *s, const char *jid, uint32_t id);

#endif
