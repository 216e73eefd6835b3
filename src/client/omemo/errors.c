/* errors.c - readable text for om_err. */
#include "errors.h"

const char *om_strerror(om_err e)
{
    switch (e) {
    case OM_OK: return "ok";
    case OM_ERR_CRYPTO: return "cryptographic operation failed";
    case OM_ERR_SIGNATURE: return "the signed pre-key signature is invalid";
    case OM_ERR_MALFORMED: return "malformed OMEMO data";
    case OM_ERR_MAC: return "authentication failed: the message was tampered with or "
                            "encrypted with another key";
    case OM_ERR_DUPLICATE: return "message already received (replayed)";
    case OM_ERR_SKIP_LIMIT: return "too many skipped messages in the session";
    case OM_ERR_NO_SESSION: return "no session with the sending device";
    case OM_ERR_NO_PREKEY: return "the key exchange uses a pre-key that is not available";
    case OM_ERR_NO_SPK: return "the key exchange uses a signed pre-key that is not available";
    case OM_ERR_NOT_FOR_US: return "the message was not encrypted for this device";
    case OM_ERR_SENDER: return "the encrypted envelope names another sender or recipient";
    case OM_ERR_IDENTITY: return "the identity key of the sending device changed";
    case OM_ERR_STORE: return "the local key store failed";
    }
    return "unknown error";
}
