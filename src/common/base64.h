/* base64.h - RFC 4648 base64 (standard alphabet, padded), strict on decode. */
#ifndef PARLEY_BASE64_H
#define PARLEY_BASE64_H

#include <stddef.h>

/* Encode len bytes; returns a freshly allocated NUL-terminated string. */
char *base64_encode(const unsigned char *data, size_t len);
/* Decode; returns a freshly allocated buffer (NUL-terminated for convenience) and its
 * length in *out_len, or NULL if the input is not valid padded base64. Whitespace is
 * not accepted (RFC 6120 6.4.2 forbids it in SASL data). "" and "=" both decode to empty. */
unsigned char *base64_decode(const char *text, size_t len, size_t *out_len);

#endif
