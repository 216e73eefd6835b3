/* message.h - the <encrypted xmlns='urn:xmpp:omemo:2'/> element: encrypting a body (or
 * nothing: an empty message) for a set of devices, and decrypting what arrives for ours.
 *
 *   <encrypted xmlns='urn:xmpp:omemo:2'>
 *     <header sid='OUR DEVICE'>
 *       <keys jid='bob@example.org'><key rid='1234' kex='true'>BASE64</key></keys>
 *       <keys jid='alice@example.org'><key rid='5678'>BASE64</key></keys>
 *     </header>
 *     <payload>BASE64 (the encrypted SCE envelope)</payload>
 *   </encrypted>
 *
 * Sessions and the store change only when a message really decrypts (one transaction);
 * a message that fails leaves everything as it was. */
#ifndef PARLEY_OMEMO_MESSAGE_H
#define PARLEY_OMEMO_MESSAGE_H

#include "../../common/xml.h"
#include "bundle.h"
#include "session_store.h"

/* One recipient device. bundle: for building a session if there is none (may be NULL). */
typedef struct om_target {
    const char *jid; /* bare */
    uint32_t device_id;
    const om_bundle *bundle;
    om_err result;   /* out: OM_OK if the device got a key */
} om_target;

/* Encrypt body (NULL: an empty message) for the targets. Returns the <encrypted/> element
 * (NULL on a failure that leaves nothing encrypted) and the number of devices that got a
 * key in *nkeys; each target's result says why it did not. from/to are the bare JIDs for
 * the SCE envelope. */
xml_node *om_message_encrypt(om_store *st, const om_own *own, const char *from_bare,
                             const char *to_bare, const char *body, om_target *t, size_t nt,
                             size_t *nkeys, om_err *err);

typedef struct om_decrypted {
    char *body;          /* freshly allocated; NULL for an empty message */
    uint32_t sender_device;
    int kex;             /* a key exchange built (or re-used) a session */
    uint32_t used_prekey;/* a pre-key consumed (0: none): replace it and republish */
    int ik_changed;      /* the sender device's identity key differs from the one known */
    int new_device;      /* first message from this device */
    om_trust trust;      /* the sender device's trust */
    int needs_reply;     /* answer with an empty message (confirm / keep the ratchet fresh) */
    uint8_t ik[OM_KEY];  /* the sender device's identity key (if known) */
    int has_ik;
} om_decrypted;

/* Decrypt an <encrypted/> element from sender_bare for this device. */
om_err om_message_decrypt(om_store *st, const om_own *own, const char *own_bare,
                          const char *sender_bare, const xml_node *encrypted, om_decrypted *out);
/* The same for a message whose envelope is addressed to to_bare rather than to us: a copy
 * of what another device of this account sent (a carbon, the archive). */
om_err om_message_decrypt_to(om_store *st, const om_own *own, const char *own_bare,
                             const char *to_bare, const char *sender_bare,
                             const xml_node *encrypted, om_decrypted *out);
void om_decrypted_free(om_decrypted *d);

#endif
