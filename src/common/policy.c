/* policy.c - the admin policy's keys, canonical values and resolution (policy.h). */
#include "policy.h"
#include "buf.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Sizes above 1 PiB are typos, and every client can hold this exactly in a double. */
#define POLICY_MAX_SIZE ((uint64_t)1 << 50)
/* Items in one file type list. */
#define POLICY_MAX_ITEMS 64
#define MAX_EXT_LEN 32
#define MAX_MIME_PART 127

const policy_key_def policy_keys[POLICY_NKEYS] = {
    [POLICY_E2E_AES] = {"e2e_aes", POLICY_BOOL, "true", "false",
                        "client-to-client encryption (OMEMO) allowed"},
    [POLICY_E2E_PLAIN] = {"e2e_plain", POLICY_BOOL, "true", "false",
                          "unencrypted one-to-one chat allowed"},
    [POLICY_DISABLE_IM_HISTORY] = {"disable_im_history", POLICY_BOOL, "false", "true",
                                   "the client keeps no history once a chat is closed"},
    [POLICY_CHAT_ARCHIVE] = {"chat_archive", POLICY_BOOL, "false", "false",
                             "the client keeps local history across sign-outs"},
    [POLICY_FILE_TRANSFER] = {"file_transfer", POLICY_BOOL, "true", "false",
                              "file transfer allowed"},
    [POLICY_SCREEN_CAPTURE] = {"screen_capture", POLICY_BOOL, "true", "false",
                               "screen capture sharing allowed"},
    [POLICY_MAX_FILE_SIZE] = {"max_file_size", POLICY_SIZE, "104857600", NULL,
                              "largest file one transfer may carry (bytes; K/M/G/T suffixes)"},
    [POLICY_FILE_TYPES_ALLOWED] = {"file_types_allowed", POLICY_LIST, "*", NULL,
                                   "MIME types and extensions that may be sent (* = any)"},
    [POLICY_FILE_TYPES_BLOCKED] = {"file_types_blocked", POLICY_LIST, "", NULL,
                                   "MIME types and extensions that may never be sent"},
    [POLICY_FILE_DAILY_QUOTA] = {"file_daily_quota", POLICY_QUOTA, "0", NULL,
                                 "bytes a user may send per day (0 = unlimited)"},
};

int policy_key_find(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < POLICY_NKEYS; i++)
        if (strcmp(policy_keys[i].name, name) == 0)
            return i;
    return -1;
}

const char *policy_scope_name(policy_scope scope)
{
    switch (scope) {
    case POLICY_GLOBAL:
        return "global";
    case POLICY_GROUP:
        return "group";
    case POLICY_USER:
        return "user";
    }
    return "?";
}

int policy_group_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > POLICY_MAX_GROUP || !(islower((unsigned char)name[0]) ||
                                                isdigit((unsigned char)name[0])))
        return 0;
    for (const char *p = name; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '.' &&
            *p != '_' && *p != '-')
            return 0;
    return 1;
}

uint64_t policy_size_value(const char *canonical)
{
    return canonical ? strtoull(canonical, NULL, 10) : 0;
}

/* ---- canonical values ---- */

static char *canon_bool(const char *v, const char *key, char *err, size_t errlen)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return xstrdup("true");
        if (strcasecmp(v, no[i]) == 0)
            return xstrdup("false");
    }
    snprintf(err, errlen, "bad value '%.100s' for %s: a boolean (true or false)", v, key);
    return NULL;
}

/* Digits, an optional binary multiplier K/M/G/T and an optional B or iB. */
static char *canon_size(const char *v, const char *key, int zero_ok, char *err, size_t errlen)
{
    const char *p = v;
    uint64_t n = 0;
    if (!isdigit((unsigned char)*p))
        goto bad;
    for (; isdigit((unsigned char)*p); p++) {
        if (n > POLICY_MAX_SIZE)
            goto too_big; /* and n * 10 cannot overflow */
        n = n * 10 + (uint64_t)(*p - '0');
    }
    uint64_t mult = 1;
    switch (toupper((unsigned char)*p)) {
    case 'K':
        mult = (uint64_t)1 << 10;
        break;
    case 'M':
        mult = (uint64_t)1 << 20;
        break;
    case 'G':
        mult = (uint64_t)1 << 30;
        break;
    case 'T':
        mult = (uint64_t)1 << 40;
        break;
    default:
        break;
    }
    if (mult > 1)
        p++;
    if (mult > 1 && (strcasecmp(p, "iB") == 0 || strcasecmp(p, "B") == 0))
        p += strlen(p);
    else if (mult == 1 && strcasecmp(p, "B") == 0)
        p++;
    if (*p)
        goto bad;
    if (n > POLICY_MAX_SIZE / mult)
        goto too_big;
    n *= mult;
    if (n == 0 && !zero_ok) {
        snprintf(err, errlen, "bad value '%.100s' for %s: must be more than 0 (to forbid files, "
                              "set file_transfer false)", v, key);
        return NULL;
    }
    return xasprintf("%llu", (unsigned long long)n);
too_big:
    snprintf(err, errlen, "bad value '%.100s' for %s: larger than 1 PiB", v, key);
    return NULL;
bad:
    snprintf(err, errlen,
             "bad value '%.100s' for %s: a size in bytes with an optional K, M, G or T suffix "
             "(e.g. 100M)%s",
             v, key, zero_ok ? ", 0 for unlimited" : "");
    return NULL;
}

static int mime_char(char c)
{
    return islower((unsigned char)c) || isdigit((unsigned char)c) || strchr("!#$&^_.+-", c);
}

/* RFC 6838 restricted-name (lower-cased), or "*" as a subtype. */
static int mime_part_ok(const char *s, size_t len, int star_ok)
{
    if (star_ok && len == 1 && s[0] == '*')
        return 1;
    if (len == 0 || len > MAX_MIME_PART || !(islower((unsigned char)s[0]) ||
                                             isdigit((unsigned char)s[0])))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!mime_char(s[i]))
            return 0;
    return 1;
}

/* One list item, lower-cased in place; its canonical form into out ("" if invalid). */
static void canon_item(char *item, char *out, size_t outlen)
{
    out[0] = '\0';
    for (char *p = item; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(item, "*") == 0 || strcmp(item, "*/*") == 0) {
        snprintf(out, outlen, "*");
        return;
    }
    char *slash = strchr(item, '/');
    if (slash) {
        if (mime_part_ok(item, (size_t)(slash - item), 0) &&
            mime_part_ok(slash + 1, strlen(slash + 1), 1))
            snprintf(out, outlen, "%s", item);
        return;
    }
    const char *ext = item;
    if (strncmp(ext, "*.", 2) == 0)
        ext += 2;
    else if (ext[0] == '.')
        ext += 1;
    size_t len = strlen(ext);
    if (len == 0 || len > MAX_EXT_LEN || !(islower((unsigned char)ext[0]) ||
                                           isdigit((unsigned char)ext[0])) ||
        ext[len - 1] == '.')
        return;
    for (size_t i = 0; i < len; i++)
        if (!islower((unsigned char)ext[i]) && !isdigit((unsigned char)ext[i]) &&
            !strchr("+_.-", ext[i]))
            return;
    snprintf(out, outlen, ".%s", ext);
}

/* A growing list of distinct items; "*" absorbs everything else. */
typedef struct item_list {
    char *items[POLICY_MAX_ITEMS];
    size_t n;
    int any;
} item_list;

static int list_has(const item_list *l, const char *item)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i], item) == 0)
            return 1;
    return 0;
}

/* 0, or -1 when the list is full. */
static int list_add(item_list *l, const char *item)
{
    if (strcmp(item, "*") == 0) {
        l->any = 1;
        return 0;
    }
    if (list_has(l, item))
        return 0;
    if (l->n == POLICY_MAX_ITEMS)
        return -1;
    l->items[l->n++] = xstrdup(item);
    return 0;
}

static char *list_join(const item_list *l)
{
    if (l->any)
        return xstrdup("*");
    buf b;
    buf_init(&b);
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            buf_append_str(&b, ",");
        buf_append_str(&b, l->items[i]);
    }
    return buf_steal(&b);
}

static void list_free(item_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    l->n = 0;
}

/* Parse a list (canonical or not) into l; 0, or -1 with a reason. */
static int list_parse(const char *v, const char *key, item_list *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    if (strcasecmp(v, "none") == 0)
        return 0;
    if (strcasecmp(v, "any") == 0) {
        l->any = 1;
        return 0;
    }
    if (strlen(v) > POLICY_MAX_VALUE) {
        snprintf(err, errlen, "bad value for %s: longer than %d characters", key,
                 POLICY_MAX_VALUE);
        return -1;
    }
    char *copy = xstrdup(v);
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t len = strlen(tok);
        while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
            tok[--len] = '\0';
        if (!len)
            continue;
        char item[MAX_MIME_PART * 2 + 2];
        canon_item(tok, item, sizeof item);
        if (!item[0]) {
            snprintf(err, errlen,
                     "bad value for %s: '%.100s' is neither a MIME type (type/subtype or "
                     "type/*) nor a file extension (.pdf)",
                     key, tok);
            rc = -1;
            break;
        }
        if (list_add(l, item) < 0) {
            snprintf(err, errlen, "bad value for %s: more than %d items", key,
                     POLICY_MAX_ITEMS);
            rc = -1;
            break;
        }
    }
    free(copy);
    if (rc < 0)
        list_free(l);
    return rc;
}

char *policy_canonical(int key, const char *value, char *err, size_t errlen)
{
    if (key < 0 || key >= POLICY_NKEYS || !value) {
        snprintf(err, errlen, "unknown policy key");
        return NULL;
    }
    const policy_key_def *k = &policy_keys[key];
    switch (k->type) {
    case POLICY_BOOL:
        return canon_bool(value, k->name, err, errlen);
    case POLICY_SIZE:
        return canon_size(value, k->name, 0, err, errlen);
    case POLICY_QUOTA:
        return canon_size(value, k->name, 1, err, errlen);
    case POLICY_LIST: {
        item_list l;
        if (list_parse(value, k->name, &l, err, errlen) < 0)
            return NULL;
        char *out = list_join(&l);
        list_free(&l);
        return out;
    }
    }
    snprintf(err, errlen, "unknown policy key type");
    return NULL;
}

/* ---- resolution ---- */

void policy_effective_clear(policy_effective *e)
{
    for (int i = 0; i < POLICY_NKEYS; i++) {
        free(e->value[i]);
        free(e->source[i]);
    }
    memset(e, 0, sizeof *e);
}

int policy_effective_equal(const policy_effective *a, const policy_effective *b)
{
    for (int i = 0; i < POLICY_NKEYS; i++)
        if (!str_eq(a->value[i], b->value[i]))
            return 0;
    return 1;
}

int policy_true(const policy_effective *e, int key)
{
    return key >= 0 && key < POLICY_NKEYS && str_eq(e->value[key], "true");
}

int policy_check(const policy_effective *e, char *why, size_t whylen)
{
    if (policy_true(e, POLICY_E2E_AES) || policy_true(e, POLICY_E2E_PLAIN))
        return 0;
    snprintf(why, whylen,
             "e2e_aes=false (from %s) together with e2e_plain=false (from %s) would forbid "
             "both encrypted and unencrypted chat; at least one must stay true",
             e->source[POLICY_E2E_AES] ? e->source[POLICY_E2E_AES] : "?",
             e->source[POLICY_E2E_PLAIN] ? e->source[POLICY_E2E_PLAIN] : "?");
    return -1;
}

/* A group's value for one key, while combining. */
typedef struct group_value {
    const char *group;
    char *value; /* canonical */
} group_value;

static int cmp_group_value(const void *a, const void *b)
{
    return strcmp(((const group_value *)a)->group, ((const group_value *)b)->group);
}

static int in_groups(const char *name, const char *const *groups, size_t ngroups)
{
    for (size_t i = 0; i < ngroups; i++)
        if (strcmp(groups[i], name) == 0)
            return 1;
    return 0;
}

/* "group a" or "groups a, b" for the groups in gv whose flag is set (all if flags NULL). */
static char *groups_source(const group_value *gv, size_t n, const int *flags)
{
    buf b;
    buf_init(&b);
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += !flags || flags[i];
    buf_append_str(&b, count > 1 ? "groups " : "group ");
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (flags && !flags[i])
            continue;
        if (done++)
            buf_append_str(&b, ", ");
        buf_append_str(&b, gv[i].group);
    }
    return buf_steal(&b);
}

/* Does list item y cover item x? A star covers everything, type/star its subtypes. */
static int covers(const char *y, const char *x)
{
    if (strcmp(y, "*") == 0 || strcmp(y, x) == 0)
        return 1;
    size_t ylen = strlen(y);
    return ylen > 2 && strcmp(y + ylen - 2, "/*") == 0 && strncmp(y, x, ylen - 1) == 0;
}

static int list_covers(const item_list *l, const char *x)
{
    if (l->any)
        return 1;
    for (size_t i = 0; i < l->n; i++)
        if (covers(l->items[i], x))
            return 1;
    return 0;
}

/* Allowed types of several groups: what every one of them allows. */
static char *intersect_lists(const group_value *gv, size_t n)
{
    item_list *lists = xcalloc(n, sizeof *lists);
    char err[8];
    for (size_t i = 0; i < n; i++)
        list_parse(gv[i].value, "", &lists[i], err, sizeof err); /* canonical: cannot fail */
    item_list out;
    memset(&out, 0, sizeof out);
    int all_any = 1;
    for (size_t i = 0; i < n; i++)
        all_any &= lists[i].any;
    out.any = all_any;
    for (size_t i = 0; i < n && !all_any; i++) {
        for (size_t k = 0; k < lists[i].n; k++) {
            const char *x = lists[i].items[k];
            int everywhere = 1;
            for (size_t j = 0; j < n && everywhere; j++)
                everywhere = j == i || list_covers(&lists[j], x);
            if (everywhere)
                list_add(&out, x); /* at most the items of one list: cannot overflow */
        }
    }
    char *joined = list_join(&out);
    list_free(&out);
    for (size_t i = 0; i < n; i++)
        list_free(&lists[i]);
    free(lists);
    return joined;
}

/* Blocked types of several groups: what any of them blocks. */
static char *union_lists(const group_value *gv, size_t n)
{
    item_list out;
    memset(&out, 0, sizeof out);
    char err[8];
    for (size_t i = 0; i < n; i++) {
        item_list l;
        if (list_parse(gv[i].value, "", &l, err, sizeof err) < 0)
            continue;
        out.any |= l.any;
        for (size_t k = 0; k < l.n; k++)
            if (list_add(&out, l.items[k]) < 0)
                out.any = 1; /* more than a list holds: refuse everything rather than less */
        list_free(&l);
    }
    char *joined = list_join(&out);
    list_free(&out);
    return joined;
}

/* The most restrictive of several groups' values of key k (gv sorted by group). */
static void combine_groups(int k, group_value *gv, size_t n, char **value, char **source)
{
    const policy_key_def *def = &policy_keys[k];
    size_t pick = 0;
    switch (def->type) {
    case POLICY_BOOL:
        for (size_t i = 0; i < n; i++) {
            if (strcmp(gv[i].value, def->strict) == 0) {
                pick = i;
                break;
            }
        }
        break;
    case POLICY_SIZE:
        for (size_t i = 1; i < n; i++)
            if (policy_size_value(gv[i].value) < policy_size_value(gv[pick].value))
                pick = i;
        break;
    case POLICY_QUOTA: {
        /* 0 is unlimited: any limit is more restrictive. */
        for (size_t i = 1; i < n; i++) {
            uint64_t a = policy_size_value(gv[i].value), b = policy_size_value(gv[pick].value);
            if (a != 0 && (b == 0 || a < b))
                pick = i;
        }
        break;
    }
    case POLICY_LIST:
        *value = k == POLICY_FILE_TYPES_BLOCKED ? union_lists(gv, n) : intersect_lists(gv, n);
        *source = groups_source(gv, n, NULL);
        return;
    }
    *value = xstrdup(gv[pick].value);
    int *flags = xcalloc(n, sizeof *flags);
    flags[pick] = 1;
    *source = groups_source(gv, n, flags);
    free(flags);
}

/* The canonical value of a row, or NULL if it is not valid for k. */
static char *row_value(int k, const policy_row *r)
{
    char err[8];
    return policy_canonical(k, r->value ? r->value : "", err, sizeof err);
}

void policy_resolve(const policy_row *rows, size_t nrows, const char *user,
                    const char *const *groups, size_t ngroups, policy_effective *out)
{
    memset(out, 0, sizeof *out);
    group_value *gv = nrows ? xcalloc(nrows, sizeof *gv) : NULL;
    for (int k = 0; k < POLICY_NKEYS; k++) {
        const char *name = policy_keys[k].name;
        char *user_v = NULL, *global_v = NULL;
        size_t ng = 0;
        for (size_t i = 0; i < nrows; i++) {
            const policy_row *r = &rows[i];
            if (!r->key || strcmp(r->key, name) != 0)
                continue;
            if (r->scope == POLICY_USER && user && str_eq(r->name, user) && !user_v) {
                user_v = row_value(k, r);
            } else if (r->scope == POLICY_GROUP && r->name &&
                       in_groups(r->name, groups, ngroups)) {
                char *v = row_value(k, r);
                if (v) {
                    gv[ng].group = r->name;
                    gv[ng++].value = v;
                }
            } else if (r->scope == POLICY_GLOBAL && !global_v) {
                global_v = row_value(k, r);
            }
        }
        if (user_v) {
            out->value[k] = user_v;
            out->source[k] = xstrdup("user");
        } else if (ng) {
            qsort(gv, ng, sizeof *gv, cmp_group_value);
            combine_groups(k, gv, ng, &out->value[k], &out->source[k]);
        } else if (global_v) {
            out->value[k] = global_v;
            global_v = NULL;
            out->source[k] = xstrdup("global");
        } else {
            out->value[k] = xstrdup(policy_keys[k].def);
            out->source[k] = xstrdup("default");
        }
        free(global_v);
        for (size_t i = 0; i < ng; i++)
            free(gv[i].value);
    }
    free(gv);
}
