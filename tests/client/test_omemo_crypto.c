/* test_omemo_crypto.c - cmocka tests of OMEMO's primitives (src/client/omemo/crypto.c)
 * against published vectors: RFC 7748 (X25519), RFC 8032 (Ed25519), RFC 5869 (HKDF),
 * RFC 4231 (HMAC-SHA-256), NIST SP 800-38A (AES-256-CBC); the Ed25519 -> Curve25519 map
 * against values computed by libxeddsa (python3-xeddsa), and failure cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "../../src/client/omemo/crypto.h"
#include "omemo_test.h"

static void x25519_rfc7748(void **state)
{
    (void)state;
    uint8_t a[32], apub[32], b[32], bpub[32], out[32], want[32], u[32];
    unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a);
    unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b);
    assert_int_equal(om_x25519_pub(a, apub), 0);
    assert_int_equal(om_x25519_pub(b, bpub), 0);
    unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", want);
    assert_memory_equal(apub, want, 32);
    unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", want);
    assert_memory_equal(bpub, want, 32);
    unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", want);
    assert_int_equal(om_x25519(a, bpub, out), 0);
    assert_memory_equal(out, want, 32);
    assert_int_equal(om_x25519(b, apub, out), 0);
    assert_memory_equal(out, want, 32);
    /* 5.2, first vector: an arbitrary scalar and u-coordinate */
    unhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", a);
    unhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", u);
    unhex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552", want);
    assert_int_equal(om_x25519(a, u, out), 0);
    assert_memory_equal(out, want, 32);
}

static void x25519_low_order_refused(void **state)
{
    (void)state;
    uint8_t priv[32], pub[32], zero[32] = {0}, one[32] = {1}, out[32];
    assert_int_equal(om_x25519_keygen(priv, pub), 0);
    assert_int_equal(om_x25519(priv, zero, out), -1); /* u = 0: all-zero result */
    assert_int_equal(om_x25519(priv, one, out), -1);  /* u = 1: order 1 */
}

static const struct {
    const char *seed, *pub, *msg, *sig;
} ed_vectors[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701"
     "cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d"
     "0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f7609"
     "84dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

static void ed25519_rfc8032(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ed_vectors / sizeof ed_vectors[0]; i++) {
        uint8_t seed[32], pub[32], want[32], msg[8], sig[64], wantsig[64];
        unhex(ed_vectors[i].seed, seed);
        unhex(ed_vectors[i].pub, want);
        size_t mlen = unhex(ed_vectors[i].msg, msg);
        unhex(ed_vectors[i].sig, wantsig);
        assert_int_equal(om_ed25519_pub(seed, pub), 0);
        assert_memory_equal(pub, want, 32);
        assert_int_equal(om_ed25519_sign(seed, msg, mlen, sig), 0);
        assert_memory_equal(sig, wantsig, 64);
        assert_int_equal(om_ed25519_verify(pub, msg, mlen, sig), 0);
        /* any flipped bit of the signature, the message or the key fails */
        sig[5] ^= 0x01;
        assert_int_equal(om_ed25519_verify(pub, msg, mlen, sig), -1);
        sig[5] ^= 0x01;
        pub[0] ^= 0x80;
        assert_int_equal(om_ed25519_verify(pub, msg, mlen, sig), -1);
        pub[0] ^= 0x80;
        msg[0] ^= 1;
        assert_int_equal(om_ed25519_verify(pub, msg, mlen ? mlen : 1, sig), -1);
    }
}

static void ed_to_curve_map(void **state)
{
    (void)state;
    /* Expected values: libxeddsa's ed25519_pub_to_curve25519_pub and seed_to_priv. */
    uint8_t seed[32], ed[32], x[32], want[32], scalar[32], xpub[32];
    unhex(ed_vectors[0].seed, seed);
    unhex(ed_vectors[0].pub, ed);
    unhex("d85e07ec22b0ad881537c2f44d662d1a143cf830c57aca4305d85c7a90f6b62e", want);
    assert_int_equal(om_ed25519_pub_to_x25519(ed, x), 0);
    assert_memory_equal(x, want, 32);
    unhex("307c83864f2833cb427a2ef1c00a013cfdff2768d980c0a3a520f006904de94f", want);
    assert_int_equal(om_ed25519_seed_to_x25519(seed, scalar), 0);
    assert_memory_equal(scalar, want, 32);
    /* the scalar's X25519 public key is the mapped Ed25519 key */
    assert_int_equal(om_x25519_pub(scalar, xpub), 0);
    assert_memory_equal(xpub, x, 32);
    unhex(ed_vectors[2].pub, ed);
    unhex("cbb22fc9f790bd3eba9b84680c157ca4950a9894362601701f89c3c4d9fda23a", want);
    assert_int_equal(om_ed25519_pub_to_x25519(ed, x), 0);
    assert_memory_equal(x, want, 32);
    /* the sign bit does not matter (u depends on y only) */
    ed[31] ^= 0x80;
    assert_int_equal(om_ed25519_pub_to_x25519(ed, x), 0);
    assert_memory_equal(x, want, 32);
    /* y = 1 (the neutral element) and a non-canonical y >= p have no image */
    uint8_t one[32] = {1};
    assert_int_equal(om_ed25519_pub_to_x25519(one, x), -1);
    uint8_t big[32];
    memset(big, 0xff, 32);
    big[31] = 0x7f;
    assert_int_equal(om_ed25519_pub_to_x25519(big, x), -1);
}

static void hkdf_rfc5869(void **state)
{
    (void)state;
    uint8_t ikm[22], salt[13], info[11] = {0}, okm[42], want[42];
    memset(ikm, 0x0b, sizeof ikm);
    unhex("000102030405060708090a0b0c", salt);
    unhex("f0f1f2f3f4f5f6f7f8f9", info);
    unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
          want);
    assert_int_equal(om_hkdf(salt, sizeof salt, ikm, sizeof ikm, (const char *)info, okm, 42), 0);
    assert_memory_equal(okm, want, 42);
    /* test case 3: no salt, no info */
    unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
          want);
    assert_int_equal(om_hkdf(NULL, 0, ikm, sizeof ikm, NULL, okm, 42), 0);
    assert_memory_equal(okm, want, 42);
}

static void hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t out[32], want[32];
    const char *data = "what do ya want for nothing?";
    unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want);
    assert_int_equal(om_hmac((const uint8_t *)"Jefe", 4, (const uint8_t *)data, strlen(data),
                             NULL, 0, out), 0);
    assert_memory_equal(out, want, 32);
    /* a || b is the concatenation */
    assert_int_equal(om_hmac((const uint8_t *)"Jefe", 4, (const uint8_t *)data, 10,
                             (const uint8_t *)data + 10, strlen(data) - 10, out), 0);
    assert_memory_equal(out, want, 32);
}

static void aes_cbc_sp800_38a(void **state)
{
    (void)state;
    uint8_t key[32], iv[16], pt[16], want[16], ct[32], back[32];
    size_t n = 0, m = 0;
    unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", key);
    unhex("000102030405060708090a0b0c0d0e0f", iv);
    unhex("6bc1bee22e409f96e93d7e117393172a", pt);
    unhex("f58c4c04d6e5f1ba779eabfb5f7bfbd6", want);
    assert_int_equal(om_aes_cbc_encrypt(key, iv, pt, 16, ct, &n), 0);
    assert_int_equal(n, 32); /* PKCS#7 adds a whole block */
    assert_memory_equal(ct, want, 16);
    assert_int_equal(om_aes_cbc_decrypt(key, iv, ct, n, back, &m), 0);
    assert_int_equal(m, 16);
    assert_memory_equal(back, pt, 16);
    /* wrong padding after a flipped byte of the last block; partial blocks refused */
    ct[31] ^= 0x5a;
    assert_int_equal(om_aes_cbc_decrypt(key, iv, ct, n, back, &m), -1);
    assert_int_equal(om_aes_cbc_decrypt(key, iv, ct, 17, back, &m), -1);
    assert_int_equal(om_aes_cbc_decrypt(key, iv, ct, 0, back, &m), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(x25519_rfc7748),
        cmocka_unit_test(x25519_low_order_refused),
        cmocka_unit_test(ed25519_rfc8032),
        cmocka_unit_test(ed_to_curve_map),
        cmocka_unit_test(hkdf_rfc5869),
        cmocka_unit_test(hmac_rfc4231),
        cmocka_unit_test(aes_cbc_sp800_38a),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
