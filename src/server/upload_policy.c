/* upload_policy.c - effective upload policy of a user and the checks made with it (see
 * upload_policy.h).
 *
 * The values are the admin policy's (common/policy.h, docs/policy.md), read from the
 * store for each slot request (rare enough not to need the policy service's cache). */
#include "upload_policy.h"
#include "../common/log.h"
#include "../common/policy.h"
#include "../common/util.h"
#include "upload_types.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rows {
    policy_row *v;
    size_t n, cap;
    char **groups;
    size_t ngroups;
} rows;

static void add_row(void *ud, policy_scope scope, const char *name, const char *key,
                    const char *value)
{
    rows *r = ud;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->v = xrealloc(r->v, r->cap * sizeof *r->v);
    }
    r->v[r->n++] = (policy_row){scope, xstrdup(name ? name : ""), xstrdup(key), xstrdup(value)};
    if (scope == POLICY_GROUP) {
        for (size_t i = 0; i < r->ngroups; i++)
            if (strcmp(r->groups[i], name) == 0)
                return;
        r->groups = xrealloc(r->groups, (r->ngroups + 1) * sizeof *r->groups);
        r->groups[r->ngroups++] = xstrdup(name);
    }
}

static char *dup_value(const policy_effective *e, int key)
{
    const char *v = e->value[key];
    return v && *v ? xstrdup(v) : NULL;
}

int upload_policy_get(server *srv, const char *user, upload_policy *out)
{
    memset(out, 0, sizeof *out);
    /* The effective policy as the admin policy service computes it: the user's own
     * values over its groups' over the global ones over the defaults (docs/policy.md). */
    rows r = {0};
    store_status st = store_policy_for_user(srv->store, user, add_row, &r);
    int rc = -1;
    if (st == STORE_OK) {
        policy_effective e;
        policy_resolve(r.v, r.n, user, (const char *const *)r.groups, r.ngroups, &e);
        out->file_transfer = policy_true(&e, POLICY_FILE_TRANSFER);
        out->screen_capture = policy_true(&e, POLICY_SCREEN_CAPTURE);
        uint64_t max = policy_size_value(e.value[POLICY_MAX_FILE_SIZE]);
        out->max_file_size = (int64_t)srv->cfg.upload_max_size;
        if (max > 0 && max < (uint64_t)out->max_file_size)
            out->max_file_size = (int64_t)max;
        out->daily_quota = (int64_t)policy_size_value(e.value[POLICY_FILE_DAILY_QUOTA]);
        out->types_allowed = dup_value(&e, POLICY_FILE_TYPES_ALLOWED);
        out->types_blocked = dup_value(&e, POLICY_FILE_TYPES_BLOCKED);
        policy_effective_clear(&e);
        rc = 0;
    } else {
        log_error("upload: the policy of %s cannot be read: %s", user,
                  store_last_error(srv->store));
    }
    for (size_t i = 0; i < r.n; i++) {
        free((char *)r.v[i].name);
        free((char *)r.v[i].key);
        free((char *)r.v[i].value);
    }
    free(r.v);
    for (size_t i = 0; i < r.ngroups; i++)
        free(r.groups[i]);
    free(r.groups);
    return rc;
}

void upload_policy_clear(upload_policy *p)
{
    free(p->types_allowed);
    free(p->types_blocked);
    memset(p, 0, sizeof *p);
}

/* The type checks shared by the request (declared name and type) and the content
 * (sniffed type). */
static const char *check_types(const upload_policy *p, const char *name, const char *type,
                               const char *what, char *why, size_t whylen)
{
    char hit[128];
    if (types_match(p->types_blocked, name, type, hit, sizeof hit)) {
        snprintf(why, whylen, "refused by policy file_types_blocked: %s files are blocked "
                              "(%s %s)", hit, what, type ? type : name ? name : "?");
        return "file_types_blocked";
    }
    if (p->types_allowed && !types_match(p->types_allowed, name, type, NULL, 0)) {
        snprintf(why, whylen, "refused by policy file_types_allowed: %s %s is not one of "
                              "the allowed types (%s)", what, type ? type : name ? name : "?",
                 p->types_allowed);
        return "file_types_allowed";
    }
    return NULL;
}

const char *upload_policy_check_request(const upload_policy *p, const char *name,
                                        const char *declared_type, int64_t size,
                                        int screen_capture, int64_t used_today, char *why,
                                        size_t whylen)
{
    if (!p->file_transfer) {
        snprintf(why, whylen, "refused by policy file_transfer: you may not send files");
        return "file_transfer";
    }
    if (screen_capture && !p->screen_capture) {
        snprintf(why, whylen, "refused by policy screen_capture: you may not send screen "
                              "captures");
        return "screen_capture";
    }
    if (size > p->max_file_size) {
        snprintf(why, whylen, "refused by policy max_file_size: %" PRId64 " bytes is over "
                              "the limit of %" PRId64 " bytes", size, p->max_file_size);
        return "max_file_size";
    }
    if (p->daily_quota > 0 && used_today + size > p->daily_quota) {
        snprintf(why, whylen, "refused by policy file_daily_quota: %" PRId64 " of %" PRId64
                              " bytes already used today", used_today, p->daily_quota);
        return "file_daily_quota";
    }
    /* The name is judged on its own, then the declared type: either may give it away. */
    const char *r = check_types(p, name, NULL, "file", why, whylen);
    if (!r && declared_type && p->types_blocked &&
        types_match(p->types_blocked, NULL, declared_type, NULL, 0))
        r = check_types(p, NULL, declared_type, "declared type", why, whylen);
    return r;
}

const char *upload_policy_check_content(const upload_policy *p, const char *name,
                                        const char *sniffed_type, char *why, size_t whylen)
{
    char hit[128];
    /* The content decides: its sniffed type against both lists. The name was judged
     * before the upload, so only the content can be new here. */
    if (types_match(p->types_blocked, NULL, sniffed_type, hit, sizeof hit)) {
        snprintf(why, whylen, "refused by policy file_types_blocked: the content is %s "
                              "(%s files are blocked), whatever its name says",
                 sniffed_type, hit);
        return "file_types_blocked";
    }
    if (p->types_allowed && !types_match(p->types_allowed, NULL, sniffed_type, NULL, 0)) {
        /* Allowed by the name alone only when the name's type is one whose content we
         * cannot recognise; a "report.pdf" must contain a PDF. */
        char ext_hit[128];
        if (!types_match(p->types_allowed, name, NULL, ext_hit, sizeof ext_hit) ||
            types_ext_known(ext_hit)) {
            snprintf(why, whylen, "refused by policy file_types_allowed: the content is %s, "
                                  "not one of the allowed types (%s)",
                     sniffed_type, p->types_allowed);
            return "file_types_allowed";
        }
    }
    return NULL;
}
