/* pep_config.c - PEP node configuration: its stored text form, and the data forms that
 * set it (publish-options, node_config) or show it (pep_internal.h). */
#include "pep_internal.h"
#include "../common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* XEP-0163 section 4.2's defaults. */
const node_cfg pep_default_cfg = {1, 0, 1};

char *pep_cfg_text(const node_cfg *c)
{
    char max[16];
    if (c->max_items)
        snprintf(max, sizeof max, "%d", c->max_items);
    else
        snprintf(max, sizeof max, "max");
    return xasprintf("max_items=%s;access_model=%s;persist_items=%d", max,
                     c->open ? "open" : "presence", c->persist ? 1 : 0);
}

/* Unknown or damaged parts keep their defaults. */
node_cfg pep_cfg_parse(const char *text)
{
    node_cfg c = pep_default_cfg;
    char *copy = xstrdup(text ? text : "");
    char *save = NULL;
    for (char *kv = strtok_r(copy, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(kv, "max_items") == 0)
            c.max_items = strcmp(v, "max") == 0 ? 0 : atoi(v) > 0 ? atoi(v) : 1;
        else if (strcmp(kv, "access_model") == 0)
            c.open = strcmp(v, "open") == 0;
        else if (strcmp(kv, "persist_items") == 0)
            c.persist = strcmp(v, "0") != 0;
    }
    free(copy);
    return c;
}

/* Items a node keeps: its own limit, never above the server's. */
int pep_keep_items(server *srv, const node_cfg *c)
{
    int lim = srv->cfg.pep_max_items;
    return c->max_items && c->max_items < lim ? c->max_items : lim;
}

static int parse_bool(const char *v, int *out)
{
    if (str_eq(v, "1") || str_eq(v, "true")) {
        *out = 1;
        return 0;
    }
    if (str_eq(v, "0") || str_eq(v, "false")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* Options this server does not store but always behaves as; a client asking for exactly
 * that behaviour is satisfied. */
static int fixed_option_ok(const char *var, const char *v)
{
    static const struct {
        const char *var, *value;
    } fixed[] = {
        {"pubsub#deliver_payloads", "1"},      {"pubsub#deliver_payloads", "true"},
        {"pubsub#deliver_notifications", "1"}, {"pubsub#deliver_notifications", "true"},
        {"pubsub#send_last_published_item", "on_sub_and_presence"},
    };
    for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
        if (strcmp(var, fixed[i].var) == 0 && str_eq(v, fixed[i].value))
            return 1;
    return 0;
}

/* Apply a data form's fields (FORM_TYPE form_type) to *c, noting which were given. 0, or
 * -1 with the reason in why. */
int pep_parse_options(server *srv, const xml_node *x, const char *form_type, node_cfg *c,
                         unsigned *given, char *why, size_t len)
{
    *given = 0;
    if (!x)
        return 0;
    for (const xml_node *f = xml_child(x, XMLNS_DATA, "field"); f;
         f = xml_next(f, XMLNS_DATA, "field")) {
        const char *var = xml_get_attr(f, "var");
        char *v = xml_child_text(f, XMLNS_DATA, "value");
        int rc = 0;
        if (!var) {
            rc = -1;
            snprintf(why, len, "a form field without var");
        } else if (strcmp(var, "FORM_TYPE") == 0) {
            if (v && strcmp(v, form_type) != 0) {
                rc = -1;
                snprintf(why, len, "FORM_TYPE must be %s", form_type);
            }
        } else if (strcmp(var, "pubsub#max_items") == 0) {
            char *end = NULL;
            errno = 0;
            long n = v ? strtol(v, &end, 10) : 0;
            if (str_eq(v, "max")) {
                c->max_items = 0;
            } else if (!v || !*v || *end || errno || n < 1) {
                rc = -1;
                snprintf(why, len, "pubsub#max_items must be a number > 0 or 'max'");
            } else if (n > srv->cfg.pep_max_items) {
                rc = -1;
                snprintf(why, len, "pubsub#max_items %ld exceeds this server's limit of %d items "
                                   "per node (use 'max')", n, srv->cfg.pep_max_items);
            } else {
                c->max_items = (int)n;
            }
            *given |= OPT_MAX_ITEMS;
        } else if (strcmp(var, "pubsub#access_model") == 0) {
            if (str_eq(v, "open") || str_eq(v, "presence")) {
                c->open = str_eq(v, "open");
            } else {
                rc = -1;
                snprintf(why, len, "access model '%.40s' is not supported (open or presence)",
                         v ? v : "");
            }
            *given |= OPT_ACCESS;
        } else if (strcmp(var, "pubsub#persist_items") == 0) {
            if (parse_bool(v, &c->persist) < 0) {
                rc = -1;
                snprintf(why, len, "pubsub#persist_items must be a boolean");
            }
            *given |= OPT_PERSIST;
        } else if (!fixed_option_ok(var, v)) {
            rc = -1;
            snprintf(why, len, "option %.80s%s%.40s is not supported", var, v ? "=" : "",
                     v ? v : "");
        }
        free(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The first given option on which want and have differ, or NULL. */
const char *pep_cfg_mismatch(unsigned given, const node_cfg *want, const node_cfg *have)
{
    if ((given & OPT_MAX_ITEMS) && want->max_items != have->max_items)
        return "pubsub#max_items";
    if ((given & OPT_ACCESS) && want->open != have->open)
        return "pubsub#access_model";
    if ((given & OPT_PERSIST) && want->persist != have->persist)
        return "pubsub#persist_items";
    return NULL;
}

/* <x type='form'> describing c, for configure requests. */
xml_node *pep_config_form(const node_cfg *c)
{
    xml_node *x = xml_new(XMLNS_DATA, "x");
    xml_set_attr(x, "type", "form");
    static const char *const vars[] = {"FORM_TYPE", "pubsub#max_items", "pubsub#access_model",
                                       "pubsub#persist_items"};
    static const char *const types[] = {"hidden", "text-single", "list-single", "boolean"};
    char max[16];
    if (c->max_items)
        snprintf(max, sizeof max, "%d", c->max_items);
    else
        snprintf(max, sizeof max, "max");
    const char *values[] = {FORM_NODE_CONFIG, max, c->open ? "open" : "presence",
                            c->persist ? "1" : "0"};
    for (size_t i = 0; i < ARRAY_LEN(vars); i++) {
        xml_node *f = xml_add_child(x, NULL, "field");
        xml_set_attr(f, "var", vars[i]);
        xml_set_attr(f, "type", types[i]);
        if (i == 2) {
            static const char *const models[] = {"open", "presence"};
            for (size_t k = 0; k < 2; k++) {
                xml_node *o = xml_add_child(f, NULL, "option");
                xml_node *v = xml_add_child(o, NULL, "value");
                xml_add_text(v, models[k], strlen(models[k]));
            }
        }
        xml_node *v = xml_add_child(f, NULL, "value");
        xml_add_text(v, values[i], strlen(values[i]));
    }
    return x;
}
