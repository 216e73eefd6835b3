/* caps.c - entity capabilities (XEP-0115) of client sessions: the verified cache, the
 * per-session records and the disco#info queries that fill them (caps.h). */
#include "caps.h"
#include "../common/base64.h"
#include "../common/buf.h"
#include "../common/dict.h"
#include "../common/log.h"
#include "../common/util.h"
#include "iq_out.h"
#include "router.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Verified verification strings kept; past this a session's features are its own. */
#define CAPS_MAX_CACHED 4096
/* How long a session may take to answer the disco#info query. */
#define CAPS_QUERY_TIMEOUT_MS 10000
/* Features of one session beyond which the rest are ignored (bounds memory per client). */
#define CAPS_MAX_FEATURES 1024

#define XMLNS_DATA "jabber:x:data"

/* A feature set: a dict used as a set (values are non-NULL markers). */
typedef struct caps_entry {
    dict *features;
} caps_entry;

/* What the table knows of one session. */
typedef struct session_caps {
    char *key;          /* hash|ver|node of the session's latest <c/> */
    caps_entry *entry;  /* NULL while unknown */
    int owned;          /* entry belongs to this session (unverified), not to the cache */
    int pending;        /* a query for key is outstanding */
} session_caps;

struct caps_table {
    dict *verified;     /* hash|ver -> caps_entry */
    dict *sessions;     /* full JID -> session_caps */
    caps_ready_fn ready;
};

static void entry_free(void *p)
{
    caps_entry *e = p;
    if (!e)
        return;
    dict_free(e->features, NULL);
    free(e);
}

static void session_free(void *p)
{
    session_caps *sc = p;
    if (!sc)
        return;
    if (sc->owned)
        entry_free(sc->entry);
    free(sc->key);
    free(sc);
}

caps_table *caps_new(caps_ready_fn ready)
{
    caps_table *t = xcalloc(1, sizeof *t);
    t->verified = dict_new();
    t->sessions = dict_new();
    t->ready = ready;
    return t;
}

void caps_free(caps_table *t)
{
    if (!t)
        return;
    dict_free(t->sessions, session_free);
    dict_free(t->verified, entry_free);
    free(t);
}

void caps_forget(caps_table *t, const char *full)
{
    if (t)
        session_free(dict_del(t->sessions, full));
}

int caps_has(const caps_table *t, const char *full, const char *feature)
{
    if (!t)
        return 0;
    session_caps *sc = dict_get(t->sessions, full);
    return sc && sc->entry && dict_get(sc->entry->features, feature) != NULL;
}

/* ---- the verification string (XEP-0115 section 5.1) ---- */

typedef struct ident {
    const char *category, *type, *lang, *name;
} ident;

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static int cmp_ident(const void *a, const void *b)
{
    const ident *x = a, *y = b;
    int c = strcmp(x->category, y->category);
    if (!c)
        c = strcmp(x->type, y->type);
    if (!c)
        c = strcmp(x->lang, y->lang);
    if (!c)
        c = strcmp(x->name, y->name);
    return c;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Strings collected for sorting; owned when own is set. */
typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static void strs_add(strs *s, char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = str;
}

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int has_adjacent_duplicates(const strs *s)
{
    for (size_t i = 1; i < s->n; i++)
        if (strcmp(s->v[i - 1], s->v[i]) == 0)
            return 1;
    return 0;
}

/* A data form's FORM_TYPE field, if it is a usable one (hidden); NULL otherwise. */
static const xml_node *form_type_field(const xml_node *form)
{
    for (const xml_node *f = xml_child(form, XMLNS_DATA, "field"); f;
         f = xml_next(f, XMLNS_DATA, "field"))
        if (str_eq(xml_get_attr(f, "var"), "FORM_TYPE"))
            return str_eq(xml_get_attr(f, "type"), "hidden") ? f : NULL;
    return NULL;
}

/* Append one form: FORM_TYPE, then each other field's var and sorted values. */
static void append_form(buf *S, const xml_node *form, const char *form_type)
{
    buf_append_str(S, form_type);
    buf_append_str(S, "<");
    typedef struct field {
        const char *var;
        const xml_node *node;
    } field;
    size_t n = 0, cap = 0;
    field *fields = NULL;
    for (const xml_node *f = xml_child(form, XMLNS_DATA, "field"); f;
         f = xml_next(f, XMLNS_DATA, "field")) {
        const char *var = xml_get_attr(f, "var");
        if (!var || strcmp(var, "FORM_TYPE") == 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            fields = xrealloc(fields, cap * sizeof *fields);
        }
        fields[n++] = (field){var, f};
    }
    /* Sort by var (a handful of fields: insertion sort keeps it simple). */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(fields[j - 1].var, fields[j].var) > 0; j--) {
            field tmp = fields[j];
            fields[j] = fields[j - 1];
            fields[j - 1] = tmp;
        }
    for (size_t i = 0; i < n; i++) {
        buf_append_str(S, fields[i].var);
        buf_append_str(S, "<");
        strs values = {0};
        for (const xml_node *v = xml_child(fields[i].node, XMLNS_DATA, "value"); v;
             v = xml_next(v, XMLNS_DATA, "value"))
            strs_add(&values, xml_text(v));
        if (values.n)
            qsort(values.v, values.n, sizeof *values.v, cmp_str);
        for (size_t k = 0; k < values.n; k++) {
            buf_append_str(S, values.v[k]);
            buf_append_str(S, "<");
        }
        strs_free(&values);
    }
    free(fields);
}

/* The forms part of S; -1 if ill-formed (a FORM_TYPE with differing values, or two forms
 * of one FORM_TYPE). */
static int append_forms(buf *S, const xml_node *query)
{
    typedef struct form {
        char *type;
        const xml_node *node;
    } form;
    form *forms = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (const xml_node *x = xml_child(query, XMLNS_DATA, "x"); x && rc == 0;
         x = xml_next(x, XMLNS_DATA, "x")) {
        const xml_node *ft = form_type_field(x);
        if (!ft)
            continue; /* no hidden FORM_TYPE: not part of the string (5.4 step 3.6) */
        char *type = NULL;
        for (const xml_node *v = xml_child(ft, XMLNS_DATA, "value"); v;
             v = xml_next(v, XMLNS_DATA, "value")) {
            char *t = xml_text(v);
            if (type && strcmp(type, t) != 0)
                rc = -1;
            free(type);
            type = t;
        }
        if (!type)
            type = xstrdup("");
        if (n == cap) {
            cap = cap ? 2 * cap : 4;
            forms = xrealloc(forms, cap * sizeof *forms);
        }
        forms[n++] = (form){type, x};
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(forms[j - 1].type, forms[j].type) >= 0; j--) {
            if (strcmp(forms[j - 1].type, forms[j].type) == 0)
                rc = -1;
            form tmp = forms[j];
            forms[j] = forms[j - 1];
            forms[j - 1] = tmp;
        }
    for (size_t i = 0; i < n && rc == 0; i++)
        append_form(S, forms[i].node, forms[i].type);
    for (size_t i = 0; i < n; i++)
        free(forms[i].type);
    free(forms);
    return rc;
}

/* The OpenSSL digest for an IANA hash name of XEP-0115, or NULL. */
static const EVP_MD *digest_of(const char *hash)
{
    static const struct {
        const char *iana;
        const char *ossl;
    } names[] = {{"sha-1", "SHA1"},     {"sha-224", "SHA224"}, {"sha-256", "SHA256"},
                 {"sha-384", "SHA384"}, {"sha-512", "SHA512"}};
    for (size_t i = 0; hash && i < ARRAY_LEN(names); i++)
        if (strcmp(hash, names[i].iana) == 0)
            return EVP_get_digestbyname(names[i].ossl);
    return NULL;
}

int caps_verification_string(const xml_node *query, const char *hash, char *out, size_t outlen)
{
    const EVP_MD *md = digest_of(hash);
    if (!md)
        return -1;
    size_t nid = 0, idcap = 0;
    ident *ids = NULL;
    strs features = {0};
    for (const xml_node *c = query->children; c; c = c->next) {
        if (xml_is(c, XMLNS_DISCO_INFO, "identity")) {
            if (nid == idcap) {
                idcap = idcap ? 2 * idcap : 4;
                ids = xrealloc(ids, idcap * sizeof *ids);
            }
            ids[nid++] = (ident){or_empty(xml_get_attr(c, "category")),
                                 or_empty(xml_get_attr(c, "type")),
                                 or_empty(xml_get_attr(c, "xml:lang")),
                                 or_empty(xml_get_attr(c, "name"))};
        } else if (xml_is(c, XMLNS_DISCO_INFO, "feature") && xml_get_attr(c, "var")) {
            strs_add(&features, xstrdup(xml_get_attr(c, "var")));
        }
    }
    if (nid)
        qsort(ids, nid, sizeof *ids, cmp_ident);
    if (features.n)
        qsort(features.v, features.n, sizeof *features.v, cmp_str);
    int rc = has_adjacent_duplicates(&features) ? -1 : 0;
    for (size_t i = 1; i < nid; i++)
        if (cmp_ident(&ids[i - 1], &ids[i]) == 0)
            rc = -1;

    buf S;
    buf_init(&S);
    for (size_t i = 0; i < nid; i++)
        buf_appendf(&S, "%s/%s/%s/%s<", ids[i].category, ids[i].type, ids[i].lang,
                    ids[i].name);
    for (size_t i = 0; i < features.n; i++) {
        buf_append_str(&S, features.v[i]);
        buf_append_str(&S, "<");
    }
    if (rc == 0)
        rc = append_forms(&S, query);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (rc == 0 && EVP_Digest(S.data ? S.data : "", S.len, digest, &dlen, md, NULL) != 1)
        rc = -1;
    if (rc == 0) {
        char *b64 = base64_encode(digest, dlen);
        if (strlen(b64) < outlen)
            snprintf(out, outlen, "%s", b64);
        else
            rc = -1;
        free(b64);
    }
    buf_free(&S);
    strs_free(&features);
    free(ids);
    return rc;
}

/* ---- queries ---- */

static caps_entry *entry_from(const xml_node *query)
{
    caps_entry *e = xcalloc(1, sizeof *e);
    e->features = dict_new();
    for (const xml_node *f = xml_child(query, XMLNS_DISCO_INFO, "feature");
         f && dict_size(e->features) < CAPS_MAX_FEATURES;
         f = xml_next(f, XMLNS_DISCO_INFO, "feature")) {
        const char *var = xml_get_attr(f, "var");
        if (var)
            dict_set(e->features, var, (void *)1);
    }
    return e;
}

typedef struct query {
    caps_table *t;
    char *full;
    char *key;
    char *hash;
    char *ver;
} query;

static void query_free(query *q)
{
    free(q->full);
    free(q->key);
    free(q->hash);
    free(q->ver);
    free(q);
}

static void on_answer(server *srv, void *ud, const xml_node *reply)
{
    query *q = ud;
    caps_table *t = q->t;
    session_caps *sc = dict_get(t->sessions, q->full);
    /* The session left, or announced other caps meanwhile: this answer is stale. */
    if (!sc || !str_eq(sc->key, q->key)) {
        query_free(q);
        return;
    }
    sc->pending = 0;
    const xml_node *result = reply && str_eq(xml_get_attr(reply, "type"), "result")
                                 ? xml_child(reply, XMLNS_DISCO_INFO, "query")
                                 : NULL;
    if (!result) {
        log_debug("caps of %s: no disco#info answer", q->full);
        query_free(q);
        return;
    }
    char ver[EVP_MAX_MD_SIZE * 2];
    int verified = q->hash && caps_verification_string(result, q->hash, ver, sizeof ver) == 0 &&
                   strcmp(ver, q->ver) == 0;
    caps_entry *e = entry_from(result);
    char vkey[2048];
    snprintf(vkey, sizeof vkey, "%s|%s", q->hash ? q->hash : "", q->ver);
    if (verified && dict_size(t->verified) < CAPS_MAX_CACHED && !dict_get(t->verified, vkey)) {
        dict_set(t->verified, vkey, e);
        sc->entry = e;
        sc->owned = 0;
    } else if (verified && dict_get(t->verified, vkey)) {
        entry_free(e); /* another session verified it meanwhile */
        sc->entry = dict_get(t->verified, vkey);
        sc->owned = 0;
    } else {
        if (!verified)
            log_info("caps of %s: the disco#info answer does not hash to ver '%.60s'; "
                     "its features serve this session only",
                     q->full, q->ver);
        sc->entry = e;
        sc->owned = 1;
    }
    char *full = xstrdup(q->full);
    query_free(q);
    t->ready(srv, full);
    free(full);
}

caps_result caps_presence(server *srv, caps_table *t, c2s *s, const xml_node *presence)
{
    const xml_node *c = xml_child(presence, XMLNS_CAPS, "c");
    const char *node = c ? xml_get_attr(c, "node") : NULL;
    const char *ver = c ? xml_get_attr(c, "ver") : NULL;
    const char *hash = c ? xml_get_attr(c, "hash") : NULL;
    if (!node || !ver || !*ver || strlen(node) > 1000 || strlen(ver) > 200 ||
        (hash && strlen(hash) > 20)) {
        caps_forget(t, s->full);
        return CAPS_NONE;
    }
    char key[1300];
    snprintf(key, sizeof key, "%s|%s|%s", hash ? hash : "", ver, node);
    session_caps *sc = dict_get(t->sessions, s->full);
    if (sc && strcmp(sc->key, key) == 0)
        return sc->pending ? CAPS_PENDING : sc->entry ? CAPS_UNCHANGED : CAPS_NONE;
    if (!sc) {
        sc = xcalloc(1, sizeof *sc);
        dict_set(t->sessions, s->full, sc);
    }
    if (sc->owned)
        entry_free(sc->entry);
    sc->entry = NULL;
    sc->owned = 0;
    free(sc->key);
    sc->key = xstrdup(key);

    char vkey[300];
    snprintf(vkey, sizeof vkey, "%s|%s", hash ? hash : "", ver);
    caps_entry *known = hash ? dict_get(t->verified, vkey) : NULL;
    if (known) {
        sc->entry = known;
        sc->pending = 0;
        return CAPS_KNOWN;
    }
    query *q = xcalloc(1, sizeof *q);
    q->t = t;
    q->full = xstrdup(s->full);
    q->key = xstrdup(key);
    q->hash = hash ? xstrdup(hash) : NULL;
    q->ver = xstrdup(ver);
    sc->pending = 1;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "get");
    xml_set_attr(iq, "to", s->full);
    xml_node *qn = xml_add_child(iq, XMLNS_DISCO_INFO, "query");
    char *nv = xasprintf("%s#%s", node, ver);
    xml_set_attr(qn, "node", nv);
    free(nv);
    iq_out_send(srv, iq, CAPS_QUERY_TIMEOUT_MS, on_answer, q);
    return CAPS_PENDING;
}
