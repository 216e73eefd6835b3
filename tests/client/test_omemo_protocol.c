/* test_omemo_protocol.c - cmocka tests of OMEMO above the primitives: protobuf decoding,
 * the Double Ratchet (out of order, replay, tampering, limits), bundle and device list XML,
 * the SCE envelope, and whole messages between two devices with their own stores (key
 * exchange, confirmation, both directions, persistence in an encrypted file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/base64.h"
#include "../../src/common/util.h"
#include "../../src/client/omemo/bundle.h"
#include "../../src/client/omemo/identity.h"
#include "../../src/client/omemo/message.h"
#include "../../src/client/omemo/om_session.h"
#include "../../src/client/omemo/payload.h"
#include "../../src/client/omemo/protobuf.h"
#include "../../src/client/omemo/sce.h"
#include "../../src/client/omemo/x3dh.h"

#include <time.h>

/* ------------------------------------------------------------------ protobuf */

static void protobuf_round_trip_and_garbage(void **state)
{
    (void)state;
    uint8_t dh[32], ct[48];
    memset(dh, 7, 32);
    memset(ct, 9, 48);
    buf b;
    buf_init(&b);
    pb_encode_message(&b, 300, 5, dh, ct, sizeof ct);
    pb_message m;
    assert_int_equal(pb_decode_message((uint8_t *)b.data, b.len, &m), 0);
    assert_int_equal(m.n, 300);
    assert_int_equal(m.pn, 5);
    assert_memory_equal(m.dh_pub.p, dh, 32);
    assert_int_equal(m.ciphertext.len, 48);
    /* every truncation fails, never reads past the end (ASan watches), except the one
     * that drops exactly the optional ciphertext field */
    size_t header_len = b.len - 2 - sizeof ct;
    for (size_t n = 0; n < b.len; n++)
        if (n != header_len)
            assert_int_equal(pb_decode_message((uint8_t *)b.data, n, &m), -1);
    assert_int_equal(pb_decode_message((uint8_t *)b.data, header_len, &m), 0);
    assert_false(m.has_ciphertext);
    /* a repeated field, a wrong wire type, a short key */
    buf bad;
    buf_init(&bad);
    buf_append(&bad, b.data, b.len);
    buf_append(&bad, "\x08\x01", 2); /* n again */
    assert_int_equal(pb_decode_message((uint8_t *)bad.data, bad.len, &m), -1);
    const uint8_t wrongtype[] = {0x0a, 0x01, 0x00};
    assert_int_equal(pb_decode_message(wrongtype, sizeof wrongtype, &m), -1);
    buf_reset(&bad);
    pb_encode_message(&bad, 1, 0, dh, NULL, 0);
    bad.data[6] = 31; /* dh_pub length 31 */
    assert_int_equal(pb_decode_message((uint8_t *)bad.data, bad.len - 1, &m), -1);
    /* an unknown field is skipped */
    buf_reset(&bad);
    pb_encode_message(&bad, 1, 0, dh, NULL, 0);
    buf_append(&bad, "\x30\x05", 2); /* field 6, varint */
    assert_int_equal(pb_decode_message((uint8_t *)bad.data, bad.len, &m), 0);
    assert_int_equal(m.has_ciphertext, 0);
    /* an over-long varint */
    const uint8_t longvar[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(pb_decode_message(longvar, sizeof longvar, &m), -1);
    pb_auth a;
    assert_int_equal(pb_decode_auth((uint8_t *)b.data, b.len, &a), -1);
    buf_free(&bad);
    buf_free(&b);
}

/* ------------------------------------------------------------------ ratchet */

typedef struct pair {
    om_ratchet a, b;
    uint8_t ad[OM_AD_LEN];
} pair;

static void make_pair(pair *p, buf *first)
{
    uint8_t sk[32], spk_priv[32], spk_pub[32], pt[48], out[OM_MAX_RATCHET_PT];
    size_t n = 0;
    random_bytes(sk, 32);
    random_bytes(p->ad, sizeof p->ad);
    assert_int_equal(om_x25519_keygen(spk_priv, spk_pub), 0);
    assert_int_equal(om_ratchet_init_active(&p->a, sk, spk_pub), OM_OK);
    memset(pt, 0x42, sizeof pt);
    assert_int_equal(om_ratchet_encrypt(&p->a, p->ad, pt, sizeof pt, first), OM_OK);
    pb_auth au;
    pb_message m;
    assert_int_equal(pb_decode_auth((uint8_t *)first->data, first->len, &au), 0);
    assert_int_equal(pb_decode_message(au.message.p, au.message.len, &m), 0);
    assert_int_equal(om_ratchet_init_passive(&p->b, sk, spk_priv, m.dh_pub.p), OM_OK);
    assert_int_equal(om_ratchet_decrypt(&p->b, p->ad, (uint8_t *)first->data, first->len, out, &n), OM_OK);
    assert_int_equal(n, 48);
    assert_memory_equal(out, pt, 48);
}

static void ratchet_conversation(void **state)
{
    (void)state;
    pair p;
    buf first;
    buf_init(&first);
    make_pair(&p, &first);
    uint8_t out[OM_MAX_RATCHET_PT];
    size_t n;
    /* replaying the first message is refused, and changes nothing */
    assert_int_equal(om_ratchet_decrypt(&p.b, p.ad, (uint8_t *)first.data, first.len, out, &n),
                     OM_ERR_DUPLICATE);
    /* ping-pong with ratchet steps, then out-of-order delivery */
    for (int round = 0; round < 4; round++) {
        om_ratchet *from = round % 2 ? &p.a : &p.b, *to = round % 2 ? &p.b : &p.a;
        buf msgs[3];
        for (int i = 0; i < 3; i++) {
            buf_init(&msgs[i]);
            uint8_t pt[32];
            memset(pt, round * 16 + i, sizeof pt);
            assert_int_equal(om_ratchet_encrypt(from, p.ad, pt, sizeof pt, &msgs[i]), OM_OK);
        }
        int order[3] = {2, 0, 1};
        for (int k = 0; k < 3; k++) {
            int i = order[k];
            assert_int_equal(om_ratchet_decrypt(to, p.ad, (uint8_t *)msgs[i].data, msgs[i].len, out, &n), OM_OK);
            assert_int_equal(n, 32);
            assert_int_equal(out[0], round * 16 + i);
        }
        for (int i = 0; i < 3; i++) {
            assert_int_equal(om_ratchet_decrypt(to, p.ad, (uint8_t *)msgs[i].data, msgs[i].len, out, &n),
                             OM_ERR_DUPLICATE);
            buf_free(&msgs[i]);
        }
    }
    /* tampering: every byte of a message flipped in turn fails and leaves the state as is */
    buf m;
    buf_init(&m);
    uint8_t pt[48] = {1, 2, 3};
    assert_int_equal(om_ratchet_encrypt(&p.a, p.ad, pt, sizeof pt, &m), OM_OK);
    for (size_t i = 0; i < m.len; i++) {
        m.data[i] ^= 0x20;
        om_err e = om_ratchet_decrypt(&p.b, p.ad, (uint8_t *)m.data, m.len, out, &n);
        assert_int_not_equal(e, OM_OK);
        m.data[i] ^= 0x20;
    }
    /* a wrong associated data (another identity) fails the tag */
    uint8_t ad2[OM_AD_LEN];
    memcpy(ad2, p.ad, sizeof ad2);
    ad2[0] ^= 1;
    assert_int_equal(om_ratchet_decrypt(&p.b, ad2, (uint8_t *)m.data, m.len, out, &n), OM_ERR_MAC);
    assert_int_equal(om_ratchet_decrypt(&p.b, p.ad, (uint8_t *)m.data, m.len, out, &n), OM_OK);
    assert_memory_equal(out, pt, 48);
    /* snapshot round trip keeps working */
    buf snap;
    buf_init(&snap);
    om_ratchet_save(&p.b, &snap);
    om_ratchet c;
    assert_int_equal(om_ratchet_load(&c, (uint8_t *)snap.data, snap.len), OM_OK);
    assert_int_equal(om_ratchet_load(&c, (uint8_t *)snap.data, snap.len - 1), OM_ERR_MALFORMED);
    assert_int_equal(om_ratchet_load(&c, (uint8_t *)snap.data, snap.len), OM_OK);
    buf_reset(&m);
    assert_int_equal(om_ratchet_encrypt(&p.a, p.ad, pt, sizeof pt, &m), OM_OK);
    assert_int_equal(om_ratchet_decrypt(&c, p.ad, (uint8_t *)m.data, m.len, out, &n), OM_OK);
    om_ratchet_clear(&c);
    buf_free(&snap);
    buf_free(&m);
    buf_free(&first);
    om_ratchet_clear(&p.a);
    om_ratchet_clear(&p.b);
}

static void ratchet_skip_limit(void **state)
{
    (void)state;
    pair p;
    buf first, m;
    buf_init(&first);
    buf_init(&m);
    make_pair(&p, &first);
    uint8_t pt[32] = {0}, out[OM_MAX_RATCHET_PT];
    size_t n;
    for (int i = 0; i < OM_MAX_SKIP + 2; i++) {
        buf_reset(&m);
        assert_int_equal(om_ratchet_encrypt(&p.a, p.ad, pt, sizeof pt, &m), OM_OK);
    }
    assert_int_equal(om_ratchet_decrypt(&p.b, p.ad, (uint8_t *)m.data, m.len, out, &n),
                     OM_ERR_SKIP_LIMIT);
    buf_free(&m);
    buf_free(&first);
    om_ratchet_clear(&p.a);
    om_ratchet_clear(&p.b);
}

/* ------------------------------------------------------------------ XML */

static void bundle_and_device_xml(void **state)
{
    (void)state;
    om_store *st;
    char why[256];
    assert_int_equal(om_store_open(&st, NULL, NULL, NULL, why, sizeof why), OM_OK);
    om_own own;
    int created;
    assert_int_equal(om_identity_load_or_create(st, NULL, 0, &own, &created), OM_OK);
    assert_true(created);
    om_bundle *b = xcalloc(1, sizeof *b), *b2 = xcalloc(1, sizeof *b2);
    assert_int_equal(om_identity_bundle(st, &own, b), OM_OK);
    assert_int_equal(b->npk, OM_PREKEYS);
    xml_node *x = om_bundle_xml(b);
    assert_int_equal(om_bundle_parse(x, b2, why, sizeof why), OM_OK);
    assert_memory_equal(b, b2, sizeof *b);
    assert_int_equal(om_spk_verify(b2->ik, b2->spk, b2->spks), OM_OK);
    /* a bundle whose signed pre-key was swapped fails verification */
    b2->spk[3] ^= 1;
    assert_int_equal(om_spk_verify(b2->ik, b2->spk, b2->spks), OM_ERR_SIGNATURE);
    /* malformed: a short identity key */
    xml_node *ik = xml_child(x, XMLNS_OMEMO, "ik");
    xml_free(ik->children);
    ik->children = ik->last = NULL;
    xml_add_text(ik, "AAAA", 4);
    assert_int_equal(om_bundle_parse(x, b2, why, sizeof why), OM_ERR_MALFORMED);
    assert_non_null(strstr(why, "identity key"));
    xml_free(x);
    /* device lists */
    om_device_entry d[3] = {{1, "Parley"}, {4294967295u, ""}, {1, ""}};
    x = om_devices_xml(d, 3);
    om_device_entry got[OM_MAX_DEVICES];
    size_t n;
    assert_int_equal(om_devices_parse(x, got, &n, why, sizeof why), OM_OK);
    assert_int_equal(n, 2); /* the repeat dropped */
    assert_string_equal(got[0].label, "Parley");
    xml_set_attr(xml_add_child(x, XMLNS_OMEMO, "device"), "id", "-5");
    assert_int_equal(om_devices_parse(x, got, &n, why, sizeof why), OM_ERR_MALFORMED);
    xml_free(x);
    free(b);
    free(b2);
    om_store_close(st);
}

static void sce_envelope(void **state)
{
    (void)state;
    char *body = NULL;
    char *xml = om_sce_build("hello <world> & \xc3\xa9", "alice@example.org", "bob@example.org");
    assert_non_null(xml);
    assert_int_equal(om_sce_parse(xml, strlen(xml), "Alice@example.org", "bob@example.org", &body), OM_OK);
    assert_string_equal(body, "hello <world> & \xc3\xa9");
    free(body);
    /* re-addressed by someone: wrong sender, wrong recipient */
    assert_int_equal(om_sce_parse(xml, strlen(xml), "mallory@example.org", "bob@example.org", &body),
                     OM_ERR_SENDER);
    assert_null(body);
    assert_int_equal(om_sce_parse(xml, strlen(xml), "alice@example.org", "carol@example.org", &body),
                     OM_ERR_SENDER);
    assert_int_equal(om_sce_parse("<nope/>", 7, "a@b", "c@d", &body), OM_ERR_MALFORMED);
    free(xml);
}

/* ------------------------------------------------------------------ whole messages */

typedef struct dev {
    om_store *st;
    om_own own;
    const char *jid;
    om_bundle b;
} dev;

static void dev_init(dev *d, const char *jid, const char *path, const uint8_t *key)
{
    char why[256];
    memset(d, 0, sizeof *d);
    d->jid = jid;
    assert_int_equal(om_store_open(&d->st, path, key, NULL, why, sizeof why), OM_OK);
    int created;
    assert_int_equal(om_identity_load_or_create(d->st, NULL, 0, &d->own, &created), OM_OK);
    assert_int_equal(om_identity_bundle(d->st, &d->own, &d->b), OM_OK);
}

/* from encrypts body for to; returns the <encrypted/> element */
static xml_node *send_to(dev *from, dev *to, const char *body, int with_bundle)
{
    om_target t = {to->jid, to->own.device_id, with_bundle ? &to->b : NULL, OM_OK};
    size_t nkeys = 0;
    om_err e;
    xml_node *enc = om_message_encrypt(from->st, &from->own, from->jid, to->jid, body, &t, 1,
                                       &nkeys, &e);
    assert_int_equal(e, OM_OK);
    assert_non_null(enc);
    assert_int_equal(nkeys, 1);
    return enc;
}

static int key_is_kex(const xml_node *enc)
{
    const xml_node *h = xml_child(enc, XMLNS_OMEMO, "header");
    const xml_node *k = xml_child(xml_child(h, XMLNS_OMEMO, "keys"), XMLNS_OMEMO, "key");
    return str_eq(xml_get_attr(k, "kex"), "true");
}

static void messages_between_devices(void **state)
{
    (void)state;
    dev *a = xcalloc(1, sizeof *a), *b = xcalloc(1, sizeof *b);
    dev_init(a, "alice@example.org", NULL, NULL);
    dev_init(b, "bob@example.org", NULL, NULL);
    om_decrypted d;
    /* first message: a key exchange, built from the bundle */
    xml_node *e1 = send_to(a, b, "hi bob", 1);
    assert_true(key_is_kex(e1));
    /* a second message before bob answered still carries the key exchange */
    xml_node *e2 = send_to(a, b, "still there?", 0);
    assert_true(key_is_kex(e2));
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, a->jid, e1, &d), OM_OK);
    assert_string_equal(d.body, "hi bob");
    assert_true(d.kex && d.needs_reply && d.new_device && d.used_prekey);
    assert_int_equal(d.trust, OM_TRUST_BLIND);
    uint32_t used = d.used_prekey;
    om_decrypted_free(&d);
    uint8_t priv[32];
    int found = 1;
    assert_int_equal(om_store_pk_get(b->st, used, priv, &found), OM_OK);
    assert_false(found); /* the one-time pre-key is gone */
    /* the same key exchange again (second message) re-uses the session */
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, a->jid, e2, &d), OM_OK);
    assert_string_equal(d.body, "still there?");
    om_decrypted_free(&d);
    /* replay of the first: refused, nothing shown */
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, a->jid, e1, &d), OM_ERR_DUPLICATE);
    assert_null(d.body);
    /* bob answers with an empty message (no payload), which confirms the session */
    xml_node *e3 = send_to(b, a, NULL, 0);
    assert_false(key_is_kex(e3));
    assert_null(xml_child(e3, XMLNS_OMEMO, "payload"));
    assert_int_equal(om_message_decrypt(a->st, &a->own, a->jid, b->jid, e3, &d), OM_OK);
    assert_null(d.body);
    om_decrypted_free(&d);
    xml_node *e4 = send_to(a, b, "no more key exchange", 0);
    assert_false(key_is_kex(e4));
    /* a flipped byte of the payload: reported, and the session does not move */
    xml_node *pl = xml_child(e4, XMLNS_OMEMO, "payload");
    char *txt = xml_text(pl), orig = txt[5];
    txt[5] = orig == 'A' ? 'B' : 'A';
    xml_free(pl->children);
    pl->children = pl->last = NULL;
    xml_add_text(pl, txt, strlen(txt));
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, a->jid, e4, &d), OM_ERR_MAC);
    txt[5] = orig;
    xml_free(pl->children);
    pl->children = pl->last = NULL;
    xml_add_text(pl, txt, strlen(txt));
    free(txt);
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, a->jid, e4, &d), OM_OK);
    assert_string_equal(d.body, "no more key exchange");
    om_decrypted_free(&d);
    /* a message for another device, or from a device without a session */
    dev *c = xcalloc(1, sizeof *c);
    dev_init(c, "carol@example.org", NULL, NULL);
    assert_int_equal(om_message_decrypt(c->st, &c->own, c->jid, a->jid, e4, &d), OM_ERR_NOT_FOR_US);
    /* carol builds her session from the bundle bob publishes now: the stale one still
     * lists the pre-key alice used, and carol picks one of the pre-keys at random */
    assert_int_equal(om_identity_bundle(b->st, &b->own, &b->b), OM_OK);
    xml_node *e5 = send_to(c, b, "from carol", 1);
    /* re-addressed: carol's message presented as alice's. The envelope names carol, so it
     * is refused, and the pre-key it used is still there (nothing was committed). */
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, a->jid, e5, &d), OM_ERR_SENDER);
    assert_null(d.body);
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, c->jid, e5, &d), OM_OK);
    assert_string_equal(d.body, "from carol");
    om_decrypted_free(&d);
    /* a key for us that is no protobuf at all */
    xml_node *hk = xml_child(xml_child(xml_child(e4, XMLNS_OMEMO, "header"), XMLNS_OMEMO, "keys"),
                             XMLNS_OMEMO, "key");
    xml_free(hk->children);
    hk->children = hk->last = NULL;
    xml_add_text(hk, "AAAA", 4);
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, a->jid, e4, &d), OM_ERR_MALFORMED);
    xml_free(e1);
    xml_free(e2);
    xml_free(e3);
    xml_free(e4);
    xml_free(e5);
    om_store_close(a->st);
    om_store_close(b->st);
    om_store_close(c->st);
    free(a);
    free(b);
    free(c);
}

static void store_on_disk(void **state)
{
    (void)state;
    char dir[] = "/tmp/omemo-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/sub/alice.omemo.db", dir);
    uint8_t key[32], wrong[32];
    random_bytes(key, 32);
    memcpy(wrong, key, 32);
    wrong[0] ^= 1;
    dev *a = xcalloc(1, sizeof *a), *b = xcalloc(1, sizeof *b);
    dev_init(a, "alice@example.org", path, key);
    dev_init(b, "bob@example.org", NULL, NULL);
    uint32_t id = a->own.device_id;
    xml_node *e1 = send_to(a, b, "one", 1);
    om_decrypted d;
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, a->jid, e1, &d), OM_OK);
    om_decrypted_free(&d);
    om_store_close(a->st);
    /* the file holds nothing readable */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char data[65536];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    assert_true(n > 0);
    assert_null(memmem(data, n, "SQLite format", 13));
    assert_null(memmem(data, n, "bob@example.org", 15));
    /* a wrong key is refused, the file stays */
    om_store *st;
    char why[512];
    assert_int_equal(om_store_open(&st, path, wrong, NULL, why, sizeof why), OM_ERR_STORE);
    assert_non_null(strstr(why, "wrong key"));
    /* the right key gives the same device and the session goes on */
    dev_init(a, "alice@example.org", path, key);
    assert_int_equal(a->own.device_id, id);
    xml_node *e2 = send_to(a, b, "two", 0);
    assert_int_equal(om_message_decrypt(b->st, &b->own, b->jid, a->jid, e2, &d), OM_OK);
    assert_string_equal(d.body, "two");
    om_decrypted_free(&d);
    /* an empty file is not replaced */
    om_store_close(a->st);
    char *empty = xasprintf("%s/empty.db", dir);
    fclose(fopen(empty, "w"));
    assert_int_equal(om_store_open(&st, empty, key, NULL, why, sizeof why), OM_ERR_STORE);
    unlink(empty);
    unlink(path);
    char *sub = xasprintf("%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
    free(sub);
    free(empty);
    free(path);
    xml_free(e1);
    xml_free(e2);
    om_store_close(b->st);
    free(a);
    free(b);
}

static void maintenance_and_fingerprints(void **state)
{
    (void)state;
    dev *a = xcalloc(1, sizeof *a);
    dev_init(a, "alice@example.org", NULL, NULL);
    int changed = 0;
    assert_int_equal(om_identity_maintain(a->st, &a->own, time(NULL), OM_SPK_ROTATE_SECS, &changed), OM_OK);
    assert_false(changed);
    uint32_t spk_before = a->b.spk_id;
    /* a week later the signed pre-key rotates; the previous one is still usable */
    assert_int_equal(om_identity_maintain(a->st, &a->own, time(NULL) + OM_SPK_ROTATE_SECS + 1,
                                          OM_SPK_ROTATE_SECS, &changed), OM_OK);
    assert_true(changed);
    om_spk spk;
    int found = 0;
    assert_int_equal(om_store_spk_current(a->st, &spk, &found), OM_OK);
    assert_true(found && spk.id != spk_before);
    assert_int_equal(om_store_spk_get(a->st, spk_before, &spk, &found), OM_OK);
    assert_true(found);
    /* a used pre-key is replaced */
    assert_int_equal(om_store_pk_delete(a->st, a->b.pk[0].id), OM_OK);
    assert_int_equal(om_identity_maintain(a->st, &a->own, time(NULL) + OM_SPK_ROTATE_SECS + 2,
                                          OM_SPK_ROTATE_SECS, &changed), OM_OK);
    assert_true(changed);
    om_bundle *b = xcalloc(1, sizeof *b);
    assert_int_equal(om_identity_bundle(a->st, &a->own, b), OM_OK);
    assert_int_equal(b->npk, OM_PREKEYS);
    char fp[OM_FP_LEN];
    uint8_t raw[32], x[32];
    assert_int_equal(om_fingerprint(a->own.ik, fp), OM_OK);
    assert_int_equal(strlen(fp), 71);
    assert_int_equal(om_fingerprint_parse(fp, raw), 0);
    assert_int_equal(om_ed25519_pub_to_x25519(a->own.ik, x), 0);
    assert_memory_equal(raw, x, 32);
    assert_int_equal(om_fingerprint_parse("abcd", raw), -1);
    free(b);
    om_store_close(a->st);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(protobuf_round_trip_and_garbage),
        cmocka_unit_test(ratchet_conversation),
        cmocka_unit_test(ratchet_skip_limit),
        cmocka_unit_test(bundle_and_device_xml),
        cmocka_unit_test(sce_envelope),
        cmocka_unit_test(messages_between_devices),
        cmocka_unit_test(store_on_disk),
        cmocka_unit_test(maintenance_and_fingerprints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
