/* policy.h - the admin policy (docs/policy.md): its keys with their types, defaults and
 * canonical values, and how values set globally, per group and per user combine into an
 * effective policy. Pure functions, shared by the store's users: parleyctl validates with
 * them, parleyd resolves and delivers with them, a client may parse with them.
 *
 * Precedence: user, then groups, then global, then the built-in default. A user in
 * several groups that set the same key gets the most restrictive of their values (see
 * policy_resolve). */
#ifndef PARLEY_POLICY_H
#define PARLEY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define POLICY_NS "urn:parley:policy:0"

typedef enum { POLICY_GLOBAL = 0, POLICY_GROUP = 1, POLICY_USER = 2 } policy_scope;

typedef enum {
    POLICY_BOOL,  /* "true" / "false" */
    POLICY_SIZE,  /* bytes, > 0 */
    POLICY_QUOTA, /* bytes, 0 = unlimited */
    POLICY_LIST,  /* comma list of MIME types and extensions */
} policy_type;

enum {
    POLICY_E2E_AES,
    POLICY_E2E_PLAIN,
    POLICY_DISABLE_IM_HISTORY,
    POLICY_CHAT_ARCHIVE,
    POLICY_FILE_TRANSFER,
    POLICY_SCREEN_CAPTURE,
    POLICY_MAX_FILE_SIZE,
    POLICY_FILE_TYPES_ALLOWED,
    POLICY_FILE_TYPES_BLOCKED,
    POLICY_FILE_DAILY_QUOTA,
    POLICY_NKEYS
};

typedef struct policy_key_def {
    const char *name;
    policy_type type;
    const char *def;    /* canonical built-in default */
    const char *strict; /* POLICY_BOOL: the value that restricts more ("false" or "true") */
    const char *help;   /* one line for `parleyctl policy keys` */
} policy_key_def;

extern const policy_key_def policy_keys[POLICY_NKEYS];

/* Longest canonical value (a file type list); longer input is refused. */
#define POLICY_MAX_VALUE 2048
/* Longest group name. */
#define POLICY_MAX_GROUP 64

/* The index of a key by name, or -1. */
int policy_key_find(const char *name);
/* "global", "group", "user". */
const char *policy_scope_name(policy_scope scope);
/* The canonical form of value for key (freshly allocated), or NULL with a reason in err:
 * booleans true/false (from yes/no/on/off/1/0 too), sizes in bytes (from 100M, 2G, 512K),
 * lists lower-cased, deduplicated, extensions with a leading dot. */
char *policy_canonical(int key, const char *value, char *err, size_t errlen);
/* Is name a valid group name (1-64 of [a-z0-9._-], starting with a letter or digit)? A
 * name is canonical in lower case: the caller lower-cases before asking. */
int policy_group_name_ok(const char *name);
/* A canonical size/quota as a number (0 if not a number). */
uint64_t policy_size_value(const char *canonical);

/* One stored value. */
typedef struct policy_row {
    policy_scope scope;
    const char *name; /* the group or user; "" for global */
    const char *key;
    const char *value;
} policy_row;

typedef struct policy_effective {
    char *value[POLICY_NKEYS];  /* canonical */
    char *source[POLICY_NKEYS]; /* "default", "global", "group NAME", "groups A, B", "user" */
} policy_effective;

/* The effective policy of a user (user non-NULL, groups: the groups it is a member of) or
 * of a scope (user NULL: groups empty for the global scope, or the one group). Rows of
 * other users or groups are ignored, as are rows whose value is not valid for their key.
 * Several groups setting one key: booleans take the restrictive value (false, or true for
 * disable_im_history), sizes the smallest (a quota of 0, unlimited, only when all are 0),
 * blocked types the union, allowed types the intersection. out is overwritten (clear it
 * with policy_effective_clear). */
void policy_resolve(const policy_row *rows, size_t nrows, const char *user,
                    const char *const *groups, size_t ngroups, policy_effective *out);
void policy_effective_clear(policy_effective *e);
/* Do two effective policies have the same values (sources aside)? */
int policy_effective_equal(const policy_effective *a, const policy_effective *b);
/* A boolean key's effective value. */
int policy_true(const policy_effective *e, int key);
/* 0 if the combination is allowed, else -1 with the reason in why (e2e_aes=false together
 * with e2e_plain=false leaves no way to chat). */
int policy_check(const policy_effective *e, char *why, size_t whylen);

#endif
