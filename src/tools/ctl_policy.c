/* ctl_policy.c - `parleyctl policy` and `parleyctl group`: the admin policy per user, per
 * group and globally (docs/policy.md), and the groups it is set for.
 *
 * Every change is checked before it is made: the value must be valid for its key, and no
 * effective policy (the global one, any group's, any user's) may end up forbidding both
 * encrypted and unencrypted chat. The check runs on a copy of all policy values and
 * memberships with the change applied, so that a global or group change that would break
 * some user's combination is refused with that user named. Changes are recorded in the
 * compliance archive's audit chain; a running parleyd notices them within a second (the
 * store's policy version) and pushes new effective policies to online clients. */
#include "ctl.h"
#include "common/policy.h"
#include "common/util.h"
#include "server/store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctl_policy_usage(FILE *out)
{
    fputs("  policy set (--user JID | --group NAME | --global) KEY VALUE\n"
          "          set a policy value; the user's beats the groups', which beat the\n"
          "          global one, which beats the built-in default\n"
          "  policy get (--user JID | --group NAME | --global) [KEY]\n"
          "          the values set at that level (not inherited ones)\n"
          "  policy unset (--user JID | --group NAME | --global) KEY\n"
          "          remove a value, so the next level applies again\n"
          "  policy show --user JID\n"
          "          a user's effective policy, and where each value comes from\n"
          "  policy keys\n"
          "          the keys with their types and defaults (docs/policy.md)\n"
          "  group add NAME | group del NAME | group list\n"
          "          groups of accounts to set policy for; NAME is [a-z0-9._-]\n"
          "  group member add NAME JID | group member del NAME JID | group members NAME\n"
          "          group membership; a user in several groups gets the most\n"
          "          restrictive of their values\n",
          out);
}

/* ---- every value and membership, to check a change before it is made ---- */

typedef struct model {
    policy_row *rows; /* strings owned */
    size_t nrows, rows_cap;
    char **mgroup, **muser; /* memberships */
    size_t nmembers, members_cap;
} model;

static void model_add_row(void *ud, policy_scope scope, const char *name, const char *key,
                          const char *value)
{
    model *m = ud;
    if (m->nrows == m->rows_cap) {
        m->rows_cap = m->rows_cap ? 2 * m->rows_cap : 32;
        m->rows = xrealloc(m->rows, m->rows_cap * sizeof *m->rows);
    }
    policy_row *r = &m->rows[m->nrows++];
    r->scope = scope;
    r->name = xstrdup(name);
    r->key = xstrdup(key);
    r->value = xstrdup(value);
}

static void free_row(policy_row *r)
{
    free((char *)r->name);
    free((char *)r->key);
    free((char *)r->value);
}

static void model_add_member(void *ud, const char *group, const char *user)
{
    model *m = ud;
    if (m->nmembers == m->members_cap) {
        m->members_cap = m->members_cap ? 2 * m->members_cap : 32;
        m->mgroup = xrealloc(m->mgroup, m->members_cap * sizeof *m->mgroup);
        m->muser = xrealloc(m->muser, m->members_cap * sizeof *m->muser);
    }
    m->mgroup[m->nmembers] = xstrdup(group);
    m->muser[m->nmembers++] = xstrdup(user);
}

static void model_free(model *m)
{
    for (size_t i = 0; i < m->nrows; i++)
        free_row(&m->rows[i]);
    free(m->rows);
    for (size_t i = 0; i < m->nmembers; i++) {
        free(m->mgroup[i]);
        free(m->muser[i]);
    }
    free(m->mgroup);
    free(m->muser);
    memset(m, 0, sizeof *m);
}

static int model_load(store *st, model *m)
{
    memset(m, 0, sizeof *m);
    if (store_policy_list(st, model_add_row, m) != STORE_OK ||
        store_group_members(st, NULL, model_add_member, m) != STORE_OK) {
        fail("reading the policy: %s", store_last_error(st));
        model_free(m);
        return -1;
    }
    return 0;
}

static int same_scope(const policy_row *r, policy_scope scope, const char *name)
{
    return r->scope == scope && (scope == POLICY_GLOBAL || strcmp(r->name, name) == 0);
}

/* Remove the rows matching scope/name (and key, if non-NULL). */
static void model_remove_rows(model *m, policy_scope scope, const char *name, const char *key)
{
    size_t w = 0;
    for (size_t i = 0; i < m->nrows; i++) {
        if (same_scope(&m->rows[i], scope, name) && (!key || strcmp(m->rows[i].key, key) == 0))
            free_row(&m->rows[i]);
        else
            m->rows[w++] = m->rows[i];
    }
    m->nrows = w;
}

/* Remove memberships of group (and of user, if non-NULL). */
static void model_remove_members(model *m, const char *group, const char *user)
{
    size_t w = 0;
    for (size_t i = 0; i < m->nmembers; i++) {
        if (strcmp(m->mgroup[i], group) == 0 && (!user || strcmp(m->muser[i], user) == 0)) {
            free(m->mgroup[i]);
            free(m->muser[i]);
        } else {
            m->mgroup[w] = m->mgroup[i];
            m->muser[w++] = m->muser[i];
        }
    }
    m->nmembers = w;
}

/* The groups user is a member of (pointers into m). */
static size_t groups_of(const model *m, const char *user, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nmembers && n < max; i++)
        if (strcmp(m->muser[i], user) == 0)
            out[n++] = m->mgroup[i];
    return n;
}

/* Check one effective policy; -1 after reporting. who: "the global policy", ... */
static int check_one(const model *m, const char *user, const char *const *groups,
                     size_t ngroups, const char *who)
{
    policy_effective e;
    policy_resolve(m->rows, m->nrows, user, groups, ngroups, &e);
    char why[512];
    int rc = policy_check(&e, why, sizeof why);
    policy_effective_clear(&e);
    if (rc < 0)
        fail("refused: %s: %s", who, why);
    return rc;
}

/* Every effective policy the model defines must be valid; -1 after reporting the first
 * that is not. Users with neither values nor groups have the global policy. */
static int model_check(const model *m)
{
    if (check_one(m, NULL, NULL, 0, "the global policy") < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < m->nrows && rc == 0; i++) {
        if (m->rows[i].scope != POLICY_GROUP)
            continue;
        const char *g[1] = {m->rows[i].name};
        char *who = xasprintf("group %s", g[0]);
        rc = check_one(m, NULL, g, 1, who);
        free(who);
    }
    /* Every user with values or memberships. */
    size_t nusers = m->nrows + m->nmembers;
    const char **groups = xcalloc(m->nmembers + 1, sizeof *groups);
    for (size_t i = 0; i < nusers && rc == 0; i++) {
        const char *user = i < m->nrows ? (m->rows[i].scope == POLICY_USER ? m->rows[i].name : NULL)
                                        : m->muser[i - m->nrows];
        if (!user)
            continue;
        size_t ng = groups_of(m, user, groups, m->nmembers);
        char *who = xasprintf("user %s", user);
        rc = check_one(m, user, groups, ng, who);
        free(who);
    }
    free(groups);
    return rc;
}

/* ---- arguments ---- */

typedef struct scope_arg {
    policy_scope scope;
    char *name; /* normalised JID or group; NULL for global */
    int given;
} scope_arg;

/* A group name as given, lower-cased; NULL after reporting if invalid. */
static char *group_arg(const char *arg)
{
    char *g = xstrdup(arg);
    for (char *p = g; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (!policy_group_name_ok(g)) {
        usage_error("bad group name '%s' (1-%d characters of a-z, 0-9, '.', '_', '-', "
                    "starting with a letter or digit)",
                    arg, POLICY_MAX_GROUP);
        free(g);
        return NULL;
    }
    return g;
}

/* Split argv into the scope options and up to max positional arguments. Returns 0, or
 * EXIT_USAGE / EXIT_RUNTIME after reporting. */
static int parse_scope(const config *cfg, const char *what, int argc, char **argv,
                       scope_arg *sc, const char **pos, int max, int *npos)
{
    memset(sc, 0, sizeof *sc);
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int is_user = strcmp(a, "--user") == 0, is_group = strcmp(a, "--group") == 0;
        if (is_user || is_group || strcmp(a, "--global") == 0) {
            if (sc->given)
                return usage_error("policy %s: give one of --user, --group, --global", what);
            sc->given = 1;
            sc->scope = is_user ? POLICY_USER : is_group ? POLICY_GROUP : POLICY_GLOBAL;
            if (!is_user && !is_group)
                continue;
            if (i + 1 >= argc)
                return usage_error("policy %s: %s needs a value", what, a);
            sc->name = is_user ? account_jid(cfg, argv[++i]) : group_arg(argv[++i]);
            if (!sc->name)
                return is_user ? EXIT_RUNTIME : EXIT_USAGE;
        } else if (a[0] == '-' && a[1] == '-') {
            return usage_error("policy %s: unknown option '%s'", what, a);
        } else if (*npos < max) {
            pos[(*npos)++] = a;
        } else {
            return usage_error("policy %s: unexpected argument '%s'", what, a);
        }
    }
    if (!sc->given)
        return usage_error("policy %s needs --user JID, --group NAME or --global", what);
    return 0;
}

/* "user bob@x", "group finance", "global": for messages. */
static char *scope_text(const scope_arg *sc)
{
    return sc->scope == POLICY_GLOBAL ? xstrdup("global")
                                      : xasprintf("%s %s", policy_scope_name(sc->scope), sc->name);
}

/* The audit target: the account itself, "group:NAME" or "global". */
static char *audit_target(const scope_arg *sc)
{
    return sc->scope == POLICY_USER    ? xstrdup(sc->name)
           : sc->scope == POLICY_GROUP ? xasprintf("group:%s", sc->name)
                                       : xstrdup("global");
}

static void ignore_member(void *ud, const char *group, const char *user)
{
    (void)ud;
    (void)group;
    (void)user;
}

/* Does the scope's user or group exist? 0, or EXIT_RUNTIME after reporting. */
static int scope_exists(store *st, const scope_arg *sc)
{
    store_status s = STORE_OK;
    if (sc->scope == POLICY_USER)
        s = store_user_exists(st, sc->name);
    else if (sc->scope == POLICY_GROUP)
        s = store_group_members(st, sc->name, ignore_member, NULL);
    if (s == STORE_NOT_FOUND)
        return fail("no such %s %s", policy_scope_name(sc->scope), sc->name);
    if (s != STORE_OK)
        return fail("%s", store_last_error(st));
    return 0;
}

/* A value for display: sizes with their binary unit when exact ("104857600 (100M)"), an
 * empty list as "(none)". */
static void format_value(int key, const char *value, char *out, size_t len)
{
    policy_type t = policy_keys[key].type;
    uint64_t n = policy_size_value(value);
    static const char units[] = "KMGT";
    int u = -1;
    while ((t == POLICY_SIZE || t == POLICY_QUOTA) && n >= 1024 && n % 1024 == 0 && u < 3) {
        n /= 1024;
        u++;
    }
    if (u >= 0)
        snprintf(out, len, "%s (%llu%c)", value, (unsigned long long)n, units[u]);
    else
        snprintf(out, len, "%s", *value ? value : "(none)");
}

/* ---- policy commands ---- */

typedef struct get_ctx {
    const scope_arg *sc;
    const char *key;
    int found;
} get_ctx;

static void print_row(void *ud, policy_scope scope, const char *name, const char *key,
                      const char *value)
{
    get_ctx *g = ud;
    if (!same_scope(&(policy_row){scope, name, key, value}, g->sc->scope, g->sc->name))
        return;
    if (g->key && strcmp(g->key, key) != 0)
        return;
    g->found++;
    int k = policy_key_find(key);
    if (g->key) {
        printf("%s\n", value);
        return;
    }
    char shown[POLICY_MAX_VALUE + 64];
    if (k >= 0)
        format_value(k, value, shown, sizeof shown);
    else
        snprintf(shown, sizeof shown, "%s (unknown key, ignored)", value);
    printf("%-20s %s\n", key, shown);
}

/* Apply a set/unset to the model and check it; 0, or EXIT_RUNTIME after reporting. */
static int check_change(store *st, const scope_arg *sc, const char *key, const char *value)
{
    model m;
    if (model_load(st, &m) < 0)
        return EXIT_RUNTIME;
    model_remove_rows(&m, sc->scope, sc->name, key);
    if (value)
        model_add_row(&m, sc->scope, sc->name ? sc->name : "", key, value);
    int rc = model_check(&m) < 0 ? EXIT_RUNTIME : 0;
    model_free(&m);
    return rc;
}

static int policy_change(const config *cfg, store *st, const scope_arg *sc, const char *key_arg,
                         const char *value_arg)
{
    int key = policy_key_find(key_arg);
    if (key < 0)
        return fail("unknown policy key '%s' (see '%s policy keys')", key_arg, progname);
    char *value = NULL;
    if (value_arg) {
        char err[300];
        value = policy_canonical(key, value_arg, err, sizeof err);
        if (!value)
            return fail("%s", err);
    }
    int rc = scope_exists(st, sc);
    if (rc == 0)
        rc = check_change(st, sc, policy_keys[key].name, value);
    admin_log al = {0};
    if (rc == 0 && admin_log_open(cfg, &al) < 0)
        rc = EXIT_RUNTIME;
    char *where = scope_text(sc);
    if (rc == 0) {
        store_status s = value ? store_policy_set(st, sc->scope, sc->name, key_arg, value)
                               : store_policy_unset(st, sc->scope, sc->name, key_arg);
        if (s != STORE_OK) {
            rc = fail("%s", store_last_error(st));
        } else {
            if (value)
                printf("%s: %s = %s\n", where, key_arg, value);
            else
                printf("%s: %s unset\n", where, key_arg);
            char *target = audit_target(sc);
            char *detail = xasprintf("scope=%s %s=%s", policy_scope_name(sc->scope), key_arg,
                                     value ? value : "(unset)");
            if (admin_log_write(&al, value ? "policy-set" : "policy-unset", target, detail) < 0)
                rc = EXIT_RUNTIME;
            free(detail);
            free(target);
        }
    }
    free(where);
    free(value);
    admin_log_close(&al);
    return rc;
}

static int policy_show(store *st, const char *user)
{
    store_status s = store_user_exists(st, user);
    if (s != STORE_OK)
        return s == STORE_NOT_FOUND ? fail("no such user %s", user)
                                    : fail("%s", store_last_error(st));
    model m;
    if (model_load(st, &m) < 0)
        return EXIT_RUNTIME;
    const char **groups = xcalloc(m.nmembers + 1, sizeof *groups);
    size_t ng = groups_of(&m, user, groups, m.nmembers);
    policy_effective e;
    policy_resolve(m.rows, m.nrows, user, groups, ng, &e);
    printf("effective policy of %s (groups: ", user);
    for (size_t i = 0; i < ng; i++)
        printf("%s%s", i ? ", " : "", groups[i]);
    printf("%s)\n", ng ? "" : "none");
    for (int k = 0; k < POLICY_NKEYS; k++) {
        char shown[POLICY_MAX_VALUE + 64];
        format_value(k, e.value[k], shown, sizeof shown);
        printf("  %-20s %-24s  %s\n", policy_keys[k].name, shown, e.source[k]);
    }
    char why[512];
    int rc = 0;
    if (policy_check(&e, why, sizeof why) < 0)
        rc = fail("warning: %s", why);
    policy_effective_clear(&e);
    free(groups);
    model_free(&m);
    return rc;
}

static void print_keys(void)
{
    static const char *const type_names[] = {"bool", "size", "size|0", "list"};
    printf("%-20s %-7s %-10s %s\n", "KEY", "TYPE", "DEFAULT", "MEANING");
    for (int k = 0; k < POLICY_NKEYS; k++)
        printf("%-20s %-7s %-10s %s\n", policy_keys[k].name, type_names[policy_keys[k].type],
               *policy_keys[k].def ? policy_keys[k].def : "(none)", policy_keys[k].help);
}

int ctl_policy(const char *conf_path, int argc, char **argv)
{
    if (argc < 1)
        return usage_error("policy needs a subcommand: set, get, unset, show or keys");
    const char *sub = argv[0];
    if (strcmp(sub, "keys") == 0) {
        if (argc != 1)
            return usage_error("policy keys takes no arguments");
        print_keys();
        return 0;
    }
    int is_set = strcmp(sub, "set") == 0, is_get = strcmp(sub, "get") == 0,
        is_unset = strcmp(sub, "unset") == 0, is_show = strcmp(sub, "show") == 0;
    if (!is_set && !is_get && !is_unset && !is_show)
        return usage_error("unknown policy subcommand '%s'", sub);

    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    scope_arg sc;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    int rc = parse_scope(&cfg, sub, argc - 1, argv + 1, &sc, pos, 2, &npos);
    store *st = NULL;
    if (rc == 0) {
        if (is_show && sc.scope != POLICY_USER)
            rc = usage_error("policy show needs --user JID");
        else if (is_show && npos)
            rc = usage_error("policy show: unexpected argument '%s'", pos[0]);
        else if (is_set && npos != 2)
            rc = usage_error("policy set needs KEY VALUE");
        else if (is_unset && npos != 1)
            rc = usage_error("policy unset needs KEY");
        else if (is_get && npos > 1)
            rc = usage_error("policy get takes at most one KEY");
        else if (npos && policy_key_find(pos[0]) < 0)
            rc = fail("unknown policy key '%s' (see '%s policy keys')", pos[0], progname);
    }
    char err[512];
    if (rc == 0 && !(st = store_open(cfg.store, err, sizeof err)))
        rc = fail("%s", err);
    if (rc == 0) {
        if (is_set || is_unset) {
            rc = policy_change(&cfg, st, &sc, pos[0], is_set ? pos[1] : NULL);
        } else if (is_show) {
            rc = policy_show(st, sc.name);
        } else if ((rc = scope_exists(st, &sc)) == 0) {
            get_ctx g = {&sc, npos ? pos[0] : NULL, 0};
            if (store_policy_list(st, print_row, &g) != STORE_OK) {
                rc = fail("%s", store_last_error(st));
            } else if (g.key && !g.found) {
                char *where = scope_text(&sc);
                rc = fail("%s is not set for %s", g.key, where);
                free(where);
            }
        }
    }
    store_close(st);
    free(sc.name);
    config_free(&cfg);
    return rc;
}

/* ---- group commands ---- */

static void print_group(void *ud, const char *group)
{
    (void)ud;
    printf("%s\n", group);
}

static void print_member(void *ud, const char *group, const char *user)
{
    (void)ud;
    (void)group;
    printf("%s\n", user);
}

/* A membership change or group deletion, checked against every effective policy. */
static int check_group_change(store *st, const char *group, const char *add_user,
                              const char *del_user, int del_group)
{
    model m;
    if (model_load(st, &m) < 0)
        return EXIT_RUNTIME;
    if (add_user)
        model_add_member(&m, group, add_user);
    if (del_user)
        model_remove_members(&m, group, del_user);
    if (del_group) {
        model_remove_members(&m, group, NULL);
        model_remove_rows(&m, POLICY_GROUP, group, NULL);
    }
    int rc = model_check(&m) < 0 ? EXIT_RUNTIME : 0;
    model_free(&m);
    return rc;
}

static int group_report(store *st, store_status s)
{
    return s == STORE_OK ? 0 : fail("%s", store_last_error(st));
}

int ctl_group(const char *conf_path, int argc, char **argv)
{
    if (argc < 1)
        return usage_error("group needs a subcommand: add, del, list, member or members");
    const char *sub = argv[0];
    int member = strcmp(sub, "member") == 0;
    const char *op = member && argc > 1 ? argv[1] : NULL;
    int want = strcmp(sub, "list") == 0 ? 1 : member ? 4 : 2;
    if (strcmp(sub, "add") != 0 && strcmp(sub, "del") != 0 && strcmp(sub, "list") != 0 &&
        strcmp(sub, "members") != 0 && !member)
        return usage_error("unknown group subcommand '%s'", sub);
    if (member && (!op || (strcmp(op, "add") != 0 && strcmp(op, "del") != 0)))
        return usage_error("usage: group member add|del NAME JID");
    if (argc != want)
        return usage_error(member ? "usage: group member %s NAME JID"
                           : want == 1 ? "usage: group list%s"
                                       : "usage: group %s NAME",
                           member ? op : want == 1 ? "" : sub);

    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    int rc = 0;
    char *group = NULL, *user = NULL;
    store *st = NULL;
    admin_log al = {0};
    char err[512];
    if (want > 1 && !(group = group_arg(argv[member ? 2 : 1])))
        rc = EXIT_USAGE;
    if (rc == 0 && member && !(user = account_jid(&cfg, argv[3])))
        rc = EXIT_RUNTIME;
    if (rc == 0 && !(st = store_open(cfg.store, err, sizeof err)))
        rc = fail("%s", err);
    if (rc != 0)
        goto out;

    if (strcmp(sub, "list") == 0) {
        rc = group_report(st, store_group_list(st, print_group, NULL));
        goto out;
    }
    if (strcmp(sub, "members") == 0) {
        rc = group_report(st, store_group_members(st, group, print_member, NULL));
        goto out;
    }
    /* Changes: checked, then made, then audited. */
    int add = member ? strcmp(op, "add") == 0 : strcmp(sub, "add") == 0;
    if (member && add && store_user_exists(st, user) == STORE_NOT_FOUND) {
        rc = fail("no such user %s", user);
        goto out;
    }
    if (!add || member)
        rc = check_group_change(st, group, member && add ? user : NULL,
                                member && !add ? user : NULL, !member && !add);
    if (rc == 0 && admin_log_open(&cfg, &al) < 0)
        rc = EXIT_RUNTIME;
    if (rc != 0)
        goto out;
    store_status s;
    const char *event;
    if (member && add) {
        s = store_group_member_add(st, group, user);
        event = "group-member-add";
    } else if (member) {
        s = store_group_member_del(st, group, user);
        event = "group-member-del";
    } else if (add) {
        s = store_group_add(st, group);
        event = "group-add";
    } else {
        s = store_group_del(st, group);
        event = "group-del";
    }
    if ((rc = group_report(st, s)) != 0)
        goto out;
    if (member)
        printf("%s %s group %s\n", user, add ? "added to" : "removed from", group);
    else
        printf("group %s %s\n", group, add ? "created" : "deleted");
    char *target = member ? xstrdup(user) : xasprintf("group:%s", group);
    char *detail = member ? xasprintf("group=%s", group) : NULL;
    if (admin_log_write(&al, event, target, detail) < 0)
        rc = EXIT_RUNTIME;
    free(target);
    free(detail);
out:
    admin_log_close(&al);
    store_close(st);
    free(group);
    free(user);
    config_free(&cfg);
    return rc;
}
