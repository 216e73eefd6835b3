/* omemo_api.c - the public end-to-end functions of parley.h: whether a conversation is
 * encrypted, this device's fingerprint, the devices known and their trust. They read the
 * key store, so they work without a connection (the `parley keys` command). */
#include "omemo_internal.h"

#include "../../common/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct usable_ctx {
    int n;
} usable_ctx;

/* A listed device we would encrypt to (its bundle is fetched when a message goes). */
static int count_usable(const char *who, const om_device *d, void *ud)
{
    (void)who;
    usable_ctx *u = ud;
    u->n += d->active && d->trust != OM_TRUST_UNTRUSTED;
    return 0;
}

int parley_conversation_encrypted(const parley *p, const char *with)
{
    if (!p || !with || !omemo_active(p) || !p->omemo->published)
        return 0;
    char *bare = jid_normalize_bare(with);
    if (!bare)
        return 0;
    usable_ctx u = {0};
    om_store_device_each(p->omemo->st, bare, count_usable, &u);
    free(bare);
    return u.n > 0;
}

int parley_e2e_ready(const parley *p)
{
    if (!p || !parley_bound_jid(p))
        return 0;
    return !p->omemo || p->omemo->ready;
}

parley_error parley_e2e_own(parley *p, unsigned long *device_id, char *fp, size_t fplen)
{
    if (!p)
        return PARLEY_ERR_INVALID;
    if (!p->omemo || !p->omemo->have_own)
        return PARLEY_ERR_STATE;
    if (device_id)
        *device_id = p->omemo->own.device_id;
    if (fp && fplen) {
        char f[OM_FP_LEN];
        om_fingerprint(p->omemo->own.ik, f);
        snprintf(fp, fplen, "%s", f);
    }
    return PARLEY_OK;
}

typedef struct each_ctx {
    om_store *st;
    int (*fn)(const parley_e2e_device *d, void *ud);
    void *ud;
} each_ctx;

static int each_device(const char *who, const om_device *d, void *ud)
{
    each_ctx *e = ud;
    char fp[OM_FP_LEN] = "";
    if (d->has_ik)
        om_fingerprint(d->ik, fp);
    buf blob;
    buf_init(&blob);
    int has = 0;
    om_store_session_get(e->st, who, d->id, &blob, &has);
    if (blob.data)
        secure_wipe(blob.data, blob.len);
    buf_free(&blob);
    parley_e2e_device pd = {who, d->id, fp, (int)d->trust, d->ik_changed, d->active, has,
                            d->label};
    return e->fn(&pd, e->ud);
}

parley_error parley_e2e_devices(parley *p, const char *who,
                                int (*fn)(const parley_e2e_device *d, void *ud), void *ud)
{
    if (!p || !fn)
        return PARLEY_ERR_INVALID;
    if (!p->omemo)
        return PARLEY_ERR_STATE;
    char *bare = who ? jid_normalize_bare(who) : NULL;
    if (who && !bare)
        return PARLEY_ERR_INVALID;
    each_ctx e = {p->omemo->st, fn, ud};
    om_err err = om_store_device_each(p->omemo->st, bare, each_device, &e);
    free(bare);
    return err == OM_OK ? PARLEY_OK : PARLEY_ERR_INVALID;
}

typedef struct find_ctx {
    uint8_t want[OM_KEY]; /* Curve25519 form, as fingerprints show it */
    om_device found;
    int hits;
} find_ctx;

static int find_fp(const char *who, const om_device *d, void *ud)
{
    (void)who;
    find_ctx *f = ud;
    uint8_t x[OM_KEY];
    if (d->has_ik && om_ed25519_pub_to_x25519(d->ik, x) == 0 &&
        memcmp(x, f->want, OM_KEY) == 0) {
        f->found = *d;
        f->hits++;
    }
    return 0;
}

parley_error parley_e2e_trust(parley *p, const char *who, const char *fp, int trust)
{
    if (!p || !who || !fp || (trust != PARLEY_TRUST_VERIFIED && trust != PARLEY_TRUST_UNTRUSTED))
        return PARLEY_ERR_INVALID;
    if (!p->omemo)
        return PARLEY_ERR_STATE;
    char *bare = jid_normalize_bare(who);
    find_ctx f;
    memset(&f, 0, sizeof f);
    if (!bare || om_fingerprint_parse(fp, f.want) < 0) {
        free(bare);
        return PARLEY_ERR_INVALID;
    }
    om_err e = om_store_device_each(p->omemo->st, bare, find_fp, &f);
    if (e == OM_OK && f.hits == 0)
        e = OM_ERR_MALFORMED;
    for (int i = 0; e == OM_OK && i < 1; i++) {
        f.found.trust = trust == PARLEY_TRUST_VERIFIED ? OM_TRUST_VERIFIED : OM_TRUST_UNTRUSTED;
        f.found.ik_changed = 0;
        e = om_store_device_put(p->omemo->st, bare, &f.found);
    }
    free(bare);
    return e == OM_OK ? PARLEY_OK : PARLEY_ERR_INVALID;
}
