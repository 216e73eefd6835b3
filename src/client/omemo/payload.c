/* payload.c - encryption of the OMEMO payload (payload.h). */
#include "payload.h"

#include "../../common/util.h"
#include "crypto.h"

#include <stdlib.h>
#include <string.h>

#define PAYLOAD_INFO "OMEMO Payload"
#define TAG_LEN 16

static om_err payload_keys(const uint8_t key[OM_KEY], uint8_t out[80])
{
    uint8_t salt[OM_KEY] = {0};
    return om_hkdf(salt, sizeof salt, key, OM_KEY, PAYLOAD_INFO, out, 80) == 0 ? OM_OK
                                                                               : OM_ERR_CRYPTO;
}

om_err om_payload_encrypt(const uint8_t *pt, size_t len, buf *out, uint8_t km[OM_KM_LEN])
{
    if (len > OM_MAX_PAYLOAD)
        return OM_ERR_MALFORMED;
    uint8_t keys[80], tag[OM_KEY];
    uint8_t *ct = xmalloc(len + OM_IV);
    size_t ctlen = 0;
    random_bytes(km, OM_KEY);
    om_err e = payload_keys(km, keys);
    if (e == OM_OK && om_aes_cbc_encrypt(keys, keys + 64, pt, len, ct, &ctlen) < 0)
        e = OM_ERR_CRYPTO;
    if (e == OM_OK && om_hmac(keys + 32, OM_KEY, ct, ctlen, NULL, 0, tag) < 0)
        e = OM_ERR_CRYPTO;
    if (e == OM_OK) {
        memcpy(km + OM_KEY, tag, TAG_LEN);
        buf_append(out, ct, ctlen);
    } else {
        secure_wipe(km, OM_KM_LEN);
    }
    secure_wipe(keys, sizeof keys);
    free(ct);
    return e;
}

om_err om_payload_decrypt(const uint8_t *km, size_t kmlen, const uint8_t *ct, size_t len,
                          buf *out)
{
    if (kmlen != OM_KM_LEN)
        return OM_ERR_MAC; /* an empty message's key material cannot open a payload */
    if (len == 0 || len > OM_MAX_PAYLOAD + OM_IV || len % OM_IV)
        return OM_ERR_MALFORMED;
    uint8_t keys[80], tag[OM_KEY];
    om_err e = payload_keys(km, keys);
    if (e == OM_OK && om_hmac(keys + 32, OM_KEY, ct, len, NULL, 0, tag) < 0)
        e = OM_ERR_CRYPTO;
    if (e == OM_OK && !ct_equal(tag, km + OM_KEY, TAG_LEN))
        e = OM_ERR_MAC;
    uint8_t *pt = e == OM_OK ? xmalloc(len + 1) : NULL;
    size_t ptlen = 0;
    if (e == OM_OK && om_aes_cbc_decrypt(keys, keys + 64, ct, len, pt, &ptlen) < 0)
        e = OM_ERR_MAC;
    if (e == OM_OK)
        buf_append(out, pt, ptlen);
    if (pt) {
        secure_wipe(pt, len + 1);
        free(pt);
    }
    secure_wipe(keys, sizeof keys);
    return e;
}
