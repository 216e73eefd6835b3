/* crypto.h - the primitives OMEMO (urn:xmpp:omemo:2) is built from, on OpenSSL 3 only:
 * X25519, Ed25519, the Ed25519 -> Curve25519 public key map, HKDF-SHA-256, HMAC-SHA-256
 * and AES-256-CBC with PKCS#7 padding.
 *
 * Every function returns 0 on success and -1 on failure (a bad key, a low-order point, a
 * padding error, an OpenSSL error); outputs are undefined after a failure. Secrets handed
 * in are never copied anywhere but OpenSSL's own key objects, which are freed (and so
 * wiped by OpenSSL) before returning. */
#ifndef PARLEY_OMEMO_CRYPTO_H
#define PARLEY_OMEMO_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define OM_KEY 32      /* X25519 and Ed25519 keys, chain and root keys, HMAC outputs */
#define OM_SIG 64      /* Ed25519 signature */
#define OM_IV 16       /* AES block */

/* A fresh X25519 key pair (priv random, pub = priv * base point). */
int om_x25519_keygen(uint8_t priv[OM_KEY], uint8_t pub[OM_KEY]);
int om_x25519_pub(const uint8_t priv[OM_KEY], uint8_t pub[OM_KEY]);
/* X25519(priv, pub); -1 for an all-zero result (a low-order point: no shared secret). */
int om_x25519(const uint8_t priv[OM_KEY], const uint8_t pub[OM_KEY], uint8_t out[OM_KEY]);

/* Ed25519 with a 32-byte seed as the private key (RFC 8032). */
int om_ed25519_pub(const uint8_t seed[OM_KEY], uint8_t pub[OM_KEY]);
int om_ed25519_sign(const uint8_t seed[OM_KEY], const uint8_t *msg, size_t len,
                    uint8_t sig[OM_SIG]);
/* 0 only if sig is a valid signature of msg by pub. */
int om_ed25519_verify(const uint8_t pub[OM_KEY], const uint8_t *msg, size_t len,
                      const uint8_t sig[OM_SIG]);

/* The X25519 private scalar of an Ed25519 seed: SHA-512(seed)[0..31], clamped. Its X25519
 * public key is om_ed25519_pub_to_x25519 of the seed's Ed25519 public key. */
int om_ed25519_seed_to_x25519(const uint8_t seed[OM_KEY], uint8_t scalar[OM_KEY]);
/* The birational map u = (1 + y) / (1 - y) mod 2^255 - 19. -1 for a non-canonical y or
 * y = 1 (no such u). */
int om_ed25519_pub_to_x25519(const uint8_t ed[OM_KEY], uint8_t x[OM_KEY]);

/* HKDF-SHA-256 (RFC 5869), extract and expand; outlen <= 255 * 32. */
int om_hkdf(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
            const char *info, uint8_t *out, size_t outlen);
/* HMAC-SHA-256 over the concatenation a || b (b may be NULL). */
int om_hmac(const uint8_t *key, size_t keylen, const uint8_t *a, size_t alen,
            const uint8_t *b, size_t blen, uint8_t out[OM_KEY]);

/* AES-256-CBC with PKCS#7 padding. out needs len + 16 bytes (encrypt) or len bytes
 * (decrypt); *outlen gets the length written. Decrypting fails on a length that is not a
 * whole number of blocks and on bad padding. */
int om_aes_cbc_encrypt(const uint8_t key[OM_KEY], const uint8_t iv[OM_IV], const uint8_t *in,
                       size_t len, uint8_t *out, size_t *outlen);
int om_aes_cbc_decrypt(const uint8_t key[OM_KEY], const uint8_t iv[OM_IV], const uint8_t *in,
                       size_t len, uint8_t *out, size_t *outlen);

#endif
