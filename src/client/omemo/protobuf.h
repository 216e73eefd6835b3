/* protobuf.h - the three protobuf messages of urn:xmpp:omemo:2, and only the protobuf
 * they need (varints and length-delimited fields, proto2 "required" semantics):
 *
 *   OMEMOMessage              1 n uint32, 2 pn uint32, 3 dh_pub bytes, 4 ciphertext bytes
 *   OMEMOAuthenticatedMessage 1 mac bytes, 2 message bytes (a serialized OMEMOMessage)
 *   OMEMOKeyExchange          1 pk_id uint32, 2 spk_id uint32, 3 ik bytes, 4 ek bytes,
 *                             5 message (an OMEMOAuthenticatedMessage)
 *
 * Encoders write fields in number order, as every protobuf library does. Decoders are
 * strict: a truncated varint or field, a wrong wire type, a repeated or missing required
 * field, a key of the wrong length or an oversized input is an error (-1). Unknown
 * fields are skipped, as protobuf requires. Decoded byte fields point into the input. */
#ifndef PARLEY_OMEMO_PROTOBUF_H
#define PARLEY_OMEMO_PROTOBUF_H

#include "../../common/buf.h"
#include <stddef.h>
#include <stdint.h>

#define PB_MAX_INPUT 65536 /* far above any real key element; bounds all parsing */

typedef struct pb_bytes {
    const uint8_t *p;
    size_t len;
} pb_bytes;

typedef struct pb_message {
    uint32_t n, pn;
    pb_bytes dh_pub;     /* 32 bytes */
    pb_bytes ciphertext; /* len 0 when absent (the associated-data form) */
    int has_ciphertext;
} pb_message;

typedef struct pb_auth {
    pb_bytes mac;     /* 16 bytes */
    pb_bytes message; /* the serialized OMEMOMessage, exactly as received */
} pb_auth;

typedef struct pb_kex {
    uint32_t pk_id, spk_id;
    pb_bytes ik, ek;  /* 32 bytes each */
    pb_bytes message; /* the serialized OMEMOAuthenticatedMessage */
} pb_kex;

/* Append the encoding to out (ciphertext NULL: the field is left out). */
void pb_encode_message(buf *out, uint32_t n, uint32_t pn, const uint8_t dh_pub[32],
                       const uint8_t *ciphertext, size_t ctlen);
void pb_encode_auth(buf *out, const uint8_t *mac, size_t maclen, const uint8_t *msg,
                    size_t msglen);
void pb_encode_kex(buf *out, uint32_t pk_id, uint32_t spk_id, const uint8_t ik[32],
                   const uint8_t ek[32], const uint8_t *auth, size_t authlen);

int pb_decode_message(const uint8_t *in, size_t len, pb_message *m);
int pb_decode_auth(const uint8_t *in, size_t len, pb_auth *a);
int pb_decode_kex(const uint8_t *in, size_t len, pb_kex *k);

#endif
