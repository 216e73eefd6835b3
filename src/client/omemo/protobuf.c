/* protobuf.c - encoder and strict decoder for OMEMO's three protobuf messages
 * (protobuf.h). Wire types used: 0 (varint) and 2 (length-delimited). */
#include "protobuf.h"

#include <string.h>

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static void put_varint(buf *out, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    buf_append(out, b, n);
}

static void put_uint(buf *out, unsigned field, uint32_t v)
{
    put_varint(out, (uint64_t)field << 3 | WT_VARINT);
    put_varint(out, v);
}

static void put_bytes(buf *out, unsigned field, const uint8_t *p, size_t len)
{
    put_varint(out, (uint64_t)field << 3 | WT_LEN);
    put_varint(out, len);
    buf_append(out, p, len);
}

void pb_encode_message(buf *out, uint32_t n, uint32_t pn, const uint8_t dh_pub[32],
                       const uint8_t *ciphertext, size_t ctlen)
{
    put_uint(out, 1, n);
    put_uint(out, 2, pn);
    put_bytes(out, 3, dh_pub, 32);
    if (ciphertext)
        put_bytes(out, 4, ciphertext, ctlen);
}

void pb_encode_auth(buf *out, const uint8_t *mac, size_t maclen, const uint8_t *msg,
                    size_t msglen)
{
    put_bytes(out, 1, mac, maclen);
    put_bytes(out, 2, msg, msglen);
}

void pb_encode_kex(buf *out, uint32_t pk_id, uint32_t spk_id, const uint8_t ik[32],
                   const uint8_t ek[32], const uint8_t *auth, size_t authlen)
{
    put_uint(out, 1, pk_id);
    put_uint(out, 2, spk_id);
    put_bytes(out, 3, ik, 32);
    put_bytes(out, 4, ek, 32);
    put_bytes(out, 5, auth, authlen);
}

/* ------------------------------------------------------------------ decoding */

typedef struct reader {
    const uint8_t *p, *end;
} reader;

static int get_varint(reader *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        if (shift == 63 && (b & 0x7e))
            return -1; /* more than 64 bits */
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

typedef struct field {
    unsigned num;
    unsigned wt;
    uint64_t v;    /* WT_VARINT */
    pb_bytes b;    /* WT_LEN */
} field;

/* Next field, or 1 at the end, or -1 on malformed input. Fixed-width fields (unknown
 * to us) are read so that they can be skipped. */
static int next_field(reader *r, field *f)
{
    if (r->p == r->end)
        return 1;
    uint64_t key;
    if (get_varint(r, &key) < 0 || key >> 3 == 0 || key >> 3 > 0x1fffffff)
        return -1;
    f->num = (unsigned)(key >> 3);
    f->wt = (unsigned)(key & 7);
    switch (f->wt) {
    case WT_VARINT: return get_varint(r, &f->v);
    case WT_LEN: {
        uint64_t len;
        if (get_varint(r, &len) < 0 || len > (uint64_t)(r->end - r->p))
            return -1;
        f->b.p = r->p;
        f->b.len = (size_t)len;
        r->p += len;
        return 0;
    }
    case WT_I64:
    case WT_I32: {
        size_t n = f->wt == WT_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n)
            return -1;
        r->p += n;
        return 0;
    }
    default: return -1; /* groups (3, 4) and reserved types */
    }
}

/* Fields 1..5 of a message: which were seen (to refuse repeats) and their values. */
typedef struct fields {
    field f[6];
    unsigned seen;
} fields;

/* Read every field; known numbers (<= maxnum) must have the wire type in types[num]. */
static int read_fields(const uint8_t *in, size_t len, unsigned maxnum, const unsigned *types,
                       fields *out)
{
    if (!in || len > PB_MAX_INPUT)
        return -1;
    memset(out, 0, sizeof *out);
    reader r = {in, in + len};
    field f;
    int rc;
    while ((rc = next_field(&r, &f)) == 0) {
        if (f.num > maxnum)
            continue; /* unknown field: skipped */
        if (f.wt != types[f.num] || (out->seen & (1u << f.num)))
            return -1;
        out->seen |= 1u << f.num;
        out->f[f.num] = f;
    }
    return rc == 1 ? 0 : -1;
}

static int has(const fields *fs, unsigned num) { return (fs->seen >> num) & 1u; }

static int get_u32(const fields *fs, unsigned num, uint32_t *v)
{
    if (!has(fs, num) || fs->f[num].v > UINT32_MAX)
        return -1;
    *v = (uint32_t)fs->f[num].v;
    return 0;
}

static int get_key(const fields *fs, unsigned num, pb_bytes *b)
{
    if (!has(fs, num) || fs->f[num].b.len != 32)
        return -1;
    *b = fs->f[num].b;
    return 0;
}

int pb_decode_message(const uint8_t *in, size_t len, pb_message *m)
{
    static const unsigned types[] = {0, WT_VARINT, WT_VARINT, WT_LEN, WT_LEN};
    fields fs;
    memset(m, 0, sizeof *m);
    if (read_fields(in, len, 4, types, &fs) < 0 || get_u32(&fs, 1, &m->n) < 0 ||
        get_u32(&fs, 2, &m->pn) < 0 || get_key(&fs, 3, &m->dh_pub) < 0)
        return -1;
    m->has_ciphertext = has(&fs, 4);
    if (m->has_ciphertext)
        m->ciphertext = fs.f[4].b;
    return 0;
}

int pb_decode_auth(const uint8_t *in, size_t len, pb_auth *a)
{
    static const unsigned types[] = {0, WT_LEN, WT_LEN};
    fields fs;
    memset(a, 0, sizeof *a);
    if (read_fields(in, len, 2, types, &fs) < 0 || !has(&fs, 1) || !has(&fs, 2) ||
        fs.f[1].b.len != 16)
        return -1;
    a->mac = fs.f[1].b;
    a->message = fs.f[2].b;
    return 0;
}

int pb_decode_kex(const uint8_t *in, size_t len, pb_kex *k)
{
    static const unsigned types[] = {0, WT_VARINT, WT_VARINT, WT_LEN, WT_LEN, WT_LEN};
    fields fs;
    memset(k, 0, sizeof *k);
    if (read_fields(in, len, 5, types, &fs) < 0 || get_u32(&fs, 1, &k->pk_id) < 0 ||
        get_u32(&fs, 2, &k->spk_id) < 0 || get_key(&fs, 3, &k->ik) < 0 ||
        get_key(&fs, 4, &k->ek) < 0 || !has(&fs, 5))
        return -1;
    k->message = fs.f[5].b;
    return 0;
}
