/* upload_policy.h - the policies that decide a file transfer: whether the user may send
 * files or screen captures at all, how large, which types, how much per day. The
 * effective values come from the admin policy service (user over group over global);
 * the server's own ceiling (upload_max_size) applies over every policy.
 *
 * A refusal names the policy that refused it ("file_types_blocked", ...) in a sentence
 * the sender is shown. */
#ifndef PARLEY_UPLOAD_POLICY_H
#define PARLEY_UPLOAD_POLICY_H

#include "server.h"

#include <stddef.h>
#include <stdint.h>

typedef struct upload_policy {
    int file_transfer;       /* 1: may upload files */
    int screen_capture;      /* 1: may upload screen captures */
    int64_t max_file_size;   /* bytes (already capped by upload_max_size) */
    char *types_allowed;     /* list (see upload_types.h), NULL: any type */
    char *types_blocked;     /* list, NULL: none */
    int64_t daily_quota;     /* bytes per UTC day, 0: no quota */
} upload_policy;

/* The effective policy of bare JID user. 0, or -1 if it could not be read (the transfer
 * is then refused: no policy, no file). */
int upload_policy_get(server *srv, const char *user, upload_policy *out);
void upload_policy_clear(upload_policy *p);

/* Judge a slot request. Returns NULL if allowed, else the name of the refusing policy,
 * with the sentence for the sender in why. used_today: bytes already granted today. */
const char *upload_policy_check_request(const upload_policy *p, const char *name,
                                        const char *declared_type, int64_t size,
                                        int screen_capture, int64_t used_today, char *why,
                                        size_t whylen);
/* Judge the uploaded content by its sniffed type (so a renamed executable is still
 * one). NULL if allowed, else the policy's name with why set. */
const char *upload_policy_check_content(const upload_policy *p, const char *name,
                                        const char *sniffed_type, char *why, size_t whylen);

#endif
