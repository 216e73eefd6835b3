/* crypto.c - OMEMO's primitives on OpenSSL 3 (see crypto.h). Keys are loaded into
 * EVP_PKEY objects for each operation and freed at once: OpenSSL wipes key material
 * when it frees it, and nothing here keeps a secret longer than one call. */
#include "crypto.h"

#include "../../common/util.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <string.h>

int om_x25519_pub(const uint8_t priv[OM_KEY], uint8_t pub[OM_KEY])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, OM_KEY);
    size_t n = OM_KEY;
    int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == OM_KEY;
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

int om_x25519_keygen(uint8_t priv[OM_KEY], uint8_t pub[OM_KEY])
{
    random_bytes(priv, OM_KEY);
    return om_x25519_pub(priv, pub);
}

int om_x25519(const uint8_t priv[OM_KEY], const uint8_t pub[OM_KEY], uint8_t out[OM_KEY])
{
    EVP_PKEY *sk = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, OM_KEY);
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, OM_KEY);
    EVP_PKEY_CTX *ctx = sk ? EVP_PKEY_CTX_new(sk, NULL) : NULL;
    size_t n = OM_KEY;
    /* OpenSSL refuses an all-zero result (RFC 7748 6.1): the peer sent a low-order point. */
    int ok = ctx && pk && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, pk) == 1 &&
             EVP_PKEY_derive(ctx, out, &n) == 1 && n == OM_KEY;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    EVP_PKEY_free(sk);
    if (!ok)
        secure_wipe(out, OM_KEY);
    return ok ? 0 : -1;
}

int om_ed25519_pub(const uint8_t seed[OM_KEY], uint8_t pub[OM_KEY])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, OM_KEY);
    size_t n = OM_KEY;
    int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == OM_KEY;
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

int om_ed25519_sign(const uint8_t seed[OM_KEY], const uint8_t *msg, size_t len,
                    uint8_t sig[OM_SIG])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, OM_KEY);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t n = OM_SIG;
    int ok = k && md && EVP_DigestSignInit(md, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestSign(md, sig, &n, msg, len) == 1 && n == OM_SIG;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

int om_ed25519_verify(const uint8_t pub[OM_KEY], const uint8_t *msg, size_t len,
                      const uint8_t sig[OM_SIG])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, OM_KEY);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = k && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(md, sig, OM_SIG, msg, len) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

int om_ed25519_seed_to_x25519(const uint8_t seed[OM_KEY], uint8_t scalar[OM_KEY])
{
    uint8_t h[64];
    unsigned int n = 0;
    int ok = EVP_Digest(seed, OM_KEY, h, &n, EVP_sha512(), NULL) == 1 && n == 64;
    if (ok) {
        /* The same clamping Ed25519 applies to its secret scalar (RFC 8032 5.1.5). */
        memcpy(scalar, h, OM_KEY);
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
    }
    secure_wipe(h, sizeof h);
    return ok ? 0 : -1;
}

int om_ed25519_pub_to_x25519(const uint8_t ed[OM_KEY], uint8_t x[OM_KEY])
{
    /* y is the little-endian encoding with the top bit (the sign of x) cleared. Only
     * public values are involved, so BIGNUM's variable-time arithmetic is fine. */
    uint8_t ybytes[OM_KEY];
    memcpy(ybytes, ed, OM_KEY);
    ybytes[31] &= 0x7f;
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *p = BN_new(), *y = BN_lebin2bn(ybytes, OM_KEY, NULL), *num = BN_new(),
           *den = BN_new(), *u = BN_new();
    int ok = ctx && p && y && num && den && u;
    /* p = 2^255 - 19 */
    ok = ok && BN_set_bit(p, 255) && BN_sub_word(p, 19);
    ok = ok && BN_cmp(y, p) < 0;                      /* canonical encoding only */
    ok = ok && BN_copy(num, y) && BN_add_word(num, 1); /* 1 + y (< 2p, reduced below) */
    ok = ok && BN_one(den) && BN_mod_sub(den, den, y, p, ctx); /* 1 - y mod p */
    ok = ok && !BN_is_zero(den);                       /* y = 1: the neutral element */
    ok = ok && BN_mod_inverse(den, den, p, ctx) != NULL;
    ok = ok && BN_mod_mul(u, num, den, p, ctx);
    ok = ok && BN_bn2lebinpad(u, x, OM_KEY) == OM_KEY;
    BN_free(u);
    BN_free(den);
    BN_free(num);
    BN_free(y);
    BN_free(p);
    BN_CTX_free(ctx);
    return ok ? 0 : -1;
}

int om_hkdf(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
            const char *info, uint8_t *out, size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    static const uint8_t zero = 0;
    OSSL_PARAM params[5];
    size_t i = 0;
    params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    /* An empty salt or key is legal in HKDF; OpenSSL wants a non-NULL pointer. */
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                    (void *)(ikmlen ? ikm : &zero), ikmlen);
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                    (void *)(saltlen ? salt : &zero), saltlen);
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info,
                                                    info ? strlen(info) : 0);
    params[i] = OSSL_PARAM_construct_end();
    int ok = ctx && EVP_KDF_derive(ctx, out, outlen, params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok ? 0 : -1;
}

int om_hmac(const uint8_t *key, size_t keylen, const uint8_t *a, size_t alen,
            const uint8_t *b, size_t blen, uint8_t out[OM_KEY])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    size_t n = 0;
    int ok = ctx && EVP_MAC_init(ctx, key, keylen, params) == 1 &&
             (alen == 0 || EVP_MAC_update(ctx, a, alen) == 1) &&
             (!b || blen == 0 || EVP_MAC_update(ctx, b, blen) == 1) &&
             EVP_MAC_final(ctx, out, &n, OM_KEY) == 1 && n == OM_KEY;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : -1;
}

static int aes_cbc(int enc, const uint8_t key[OM_KEY], const uint8_t iv[OM_IV],
                   const uint8_t *in, size_t len, uint8_t *out, size_t *outlen)
{
    *outlen = 0;
    if (len > (size_t)INT32_MAX - 2 * OM_IV || (!enc && (len == 0 || len % OM_IV)))
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;
    int ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv, enc) == 1 &&
             EVP_CipherUpdate(ctx, out, &n1, in, (int)len) == 1 &&
             EVP_CipherFinal_ex(ctx, out + n1, &n2) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        if (!enc) /* nothing of a failed decryption leaves here */
            secure_wipe(out, len);
        return -1;
    }
    *outlen = (size_t)n1 + (size_t)n2;
    return 0;
}

int om_aes_cbc_encrypt(const uint8_t key[OM_KEY], const uint8_t iv[OM_IV], const uint8_t *in,
                       size_t len, uint8_t *out, size_t *outlen)
{
    return aes_cbc(1, key, iv, in, len, out, outlen);
}

int om_aes_cbc_decrypt(const uint8_t key[OM_KEY], const uint8_t iv[OM_IV], const uint8_t *in,
                       size_t len, uint8_t *out, size_t *outlen)
{
    return aes_cbc(0, key, iv, in, len, out, outlen);
}
