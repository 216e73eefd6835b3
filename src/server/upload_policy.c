/* upload_policy.c - effective upload policy of a user and the checks made with it (see
 * upload_policy.h).
 *
 * The values are the admin policy's (common/policy.h, docs/policy.md), from the policy
 * service's cache, which parleyctl's changes invalidate within a second. */
#include "upload_policy.h"
#include "../common/log.h"
#include "../common/policy.h"
#include "../common/util.h"
#include "policy_service.h"
#include "upload_types.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* Slot requests are rare: catch up with parleyctl now rather than at the next tick, so
     * a transfer the admin has just forbidden is refused at once. */
    policy_service_tick(srv);
    const policy_effective *e = policy_service_effective(srv, user);
    if (!e)
        return -1;
    out->file_transfer = policy_true(e, POLICY_FILE_TRANSFER);
    out->screen_capture = policy_true(e, POLICY_SCREEN_CAPTURE);
    uint64_t max = policy_size_value(e->value[POLICY_MAX_FILE_SIZE]);
    out->max_file_size = (int64_t)srv->cfg.upload_max_size;
    if (max > 0 && max < (uint64_t)out->max_file_size)
        out->max_file_size = (int64_t)max;
    out->daily_quota = (int64_t)policy_size_value(e->value[POLICY_FILE_DAILY_QUOTA]);
    out->types_allowed = dup_value(e, POLICY_FILE_TYPES_ALLOWED);
    out->types_blocked = dup_value(e, POLICY_FILE_TYPES_BLOCKED);
    return 0;
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
