/* errors.h - the outcomes of OMEMO operations, each with a sentence a user can read. */
#ifndef PARLEY_OMEMO_ERRORS_H
#define PARLEY_OMEMO_ERRORS_H

typedef enum {
    OM_OK = 0,
    OM_ERR_CRYPTO,        /* an OpenSSL operation failed, or a low-order key */
    OM_ERR_SIGNATURE,     /* the signed pre-key's signature does not verify */
    OM_ERR_MALFORMED,     /* undecodable protobuf, base64 or XML, wrong key length */
    OM_ERR_MAC,           /* authentication tag mismatch: tampered or wrong key */
    OM_ERR_DUPLICATE,     /* a message already decrypted (replay) */
    OM_ERR_SKIP_LIMIT,    /* the message claims too many skipped messages */
    OM_ERR_NO_SESSION,    /* no session with the sending device and no key exchange */
    OM_ERR_NO_PREKEY,     /* the key exchange names a pre-key we do not (any more) have */
    OM_ERR_NO_SPK,        /* the key exchange names a signed pre-key we do not have */
    OM_ERR_NOT_FOR_US,    /* the message carries no key for this device */
    OM_ERR_SENDER,        /* the SCE envelope names another sender or recipient */
    OM_ERR_IDENTITY,      /* the key exchange's identity key differs from the known one */
    OM_ERR_STORE,         /* the local key store failed */
} om_err;

const char *om_strerror(om_err e);

#endif
