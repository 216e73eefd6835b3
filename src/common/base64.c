/* base64.c - RFC 4648 base64 (standard alphabet, padded) for SASL and XMPP payloads.
 *
 * Encoding and the bulk of decoding go through OpenSSL's EVP_EncodeBlock and
 * EVP_DecodeBlock. EVP_DecodeBlock is lenient (it skips surrounding whitespace, ignores
 * where the padding sits and keeps padding bytes in its output length), so the input is
 * validated here first: SASL data is peer-controlled and RFC 6120 6.4.2 wants anything
 * that is not canonical base64 refused. */
#include "base64.h"
#include "util.h"

#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

char *base64_encode(const unsigned char *data, size_t len)
{
    /* EVP_EncodeBlock takes an int; nothing Parley encodes comes close, but an overflow
     * here would be a heap overflow, so refuse it loudly rather than wrap. */
    if (len > (size_t)(INT_MAX / 4 * 3 - 3))
        abort();
    size_t outlen = (len + 2) / 3 * 4;
    char *out = xmalloc(outlen + 1);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[n < 0 ? 0 : n] = '\0';
    return out;
}

/* Value of a base64 alphabet character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

unsigned char *base64_decode(const char *text, size_t len, size_t *out_len)
{
    /* RFC 6120 6.4.2: "=" is how SASL says "empty response". */
    if (len == 0 || (len == 1 && text[0] == '=')) {
        unsigned char *empty = xmalloc(1);
        empty[0] = '\0';
        if (out_len)
            *out_len = 0;
        return empty;
    }
    if (len % 4 != 0 || len > (size_t)INT_MAX - 4)
        return NULL;

    /* Padding: at most two '=', only at the very end. */
    size_t pad = 0;
    if (text[len - 1] == '=')
        pad = text[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len - pad; i++) {
        if (b64_value((unsigned char)text[i]) < 0)
            return NULL;
    }
    /* Canonical form: the bits the padding makes unused must be zero, otherwise two
     * different strings would decode to the same bytes. */
    if (pad == 1 && (b64_value((unsigned char)text[len - 2]) & 0x03))
        return NULL;
    if (pad == 2 && (b64_value((unsigned char)text[len - 3]) & 0x0f))
        return NULL;

    size_t max = len / 4 * 3;
    unsigned char *out = xmalloc(max + 1);
    int n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)len);
    /* EVP_DecodeBlock counts the zero bytes that stand for padding: drop them. */
    if (n < 0 || (size_t)n != max) {
        free(out);
        return NULL;
    }
    size_t real = max - pad;
    out[real] = '\0';
    if (out_len)
        *out_len = real;
    return out;
}
