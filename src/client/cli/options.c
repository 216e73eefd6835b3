/* options.c - command line and configuration file parsing for the parley command. */
#include "options.h"
#include "../../common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = xstrdup(v);
}

void cli_opts_free(cli_opts *o)
{
    free(o->command);
    free(o->jid);
    free(o->password_file);
    free(o->ca_file);
    free(o->server);
    free(o->config);
    free(o->to);
    free(o->message);
    free(o->type);
    free(o->file);
    for (int i = 0; i < o->nargs; i++)
        free(o->args[i]);
    free(o->history);
    free(o->data_dir);
    free(o->history_key_file);
    free(o->history_passphrase_file);
    free(o->with);
    free(o->service);
    memset(o, 0, sizeof *o);
}

static int parse_bool(const char *v, int *out)
{
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
        *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_long(const char *v, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

static int parse_seconds(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= 0) || d > 86400.0 * 365)
        return -1;
    *out = d;
    return 0;
}

/* Options that take a value, and where it goes. */
static char **string_slot(cli_opts *o, const char *name)
{
    static const struct {
        const char *name;
        size_t off;
    } map[] = {
        {"jid", offsetof(cli_opts, jid)},         {"password-file", offsetof(cli_opts, password_file)},
        {"ca-file", offsetof(cli_opts, ca_file)}, {"server", offsetof(cli_opts, server)},
        {"config", offsetof(cli_opts, config)},   {"to", offsetof(cli_opts, to)},
        {"message", offsetof(cli_opts, message)}, {"type", offsetof(cli_opts, type)},
        {"with", offsetof(cli_opts, with)},       {"history", offsetof(cli_opts, history)},
        {"file", offsetof(cli_opts, file)},
        {"data-dir", offsetof(cli_opts, data_dir)},
        {"history-key-file", offsetof(cli_opts, history_key_file)},
        {"history-passphrase-file", offsetof(cli_opts, history_passphrase_file)},
        {"service", offsetof(cli_opts, service)},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++)
        if (strcmp(name, map[i].name) == 0)
            return (char **)((char *)o + map[i].off);
    return NULL;
}

int cli_parse_args(int argc, char **argv, cli_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->direct_tls = -1;
    o->timeout = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (o->command) {
                /* only `history` (search TEXT...), `send-file` (PATH), `keys` and `room`
                 * take words after the command */
                if ((strcmp(o->command, "history") == 0 || strcmp(o->command, "send-file") == 0 ||
                     strcmp(o->command, "keys") == 0 || strcmp(o->command, "room") == 0) &&
                    o->nargs < (int)ARRAY_LEN(o->args)) {
                    o->args[o->nargs++] = xstrdup(a);
                    continue;
                }
                snprintf(err, errlen, "unexpected argument '%s'", a);
                return -1;
            }
            o->command = xstrdup(a);
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->help = 1;
            continue;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->verbose = 1;
            continue;
        }
        if (!strcmp(a, "--version")) {
            o->version = 1;
            continue;
        }
        if (!strcmp(a, "--direct-tls")) {
            o->direct_tls = 1;
            continue;
        }
        if (!strcmp(a, "--starttls")) {
            o->direct_tls = 0;
            continue;
        }
        if (!strcmp(a, "--room")) {
            o->room = 1;
            continue;
        }
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unknown option '%s'", a);
            return -1;
        }
        /* --name VALUE or --name=VALUE */
        char name[32];
        const char *eq = strchr(a + 2, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nlen == 0 || nlen >= sizeof name) {
            snprintf(err, errlen, "unknown option '%s'", a);
            return -1;
        }
        memcpy(name, a + 2, nlen);
        name[nlen] = '\0';
        const char *value = eq ? eq + 1 : NULL;
        char **slot = string_slot(o, name);
        int numeric = !strcmp(name, "count") || !strcmp(name, "timeout") ||
                      !strcmp(name, "keepalive");
        if (!slot && !numeric) {
            snprintf(err, errlen, "unknown option '--%s'", name);
            return -1;
        }
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option '--%s' needs a value", name);
                return -1;
            }
            value = argv[++i];
        }
        if (slot) {
            set_str(slot, value);
        } else if (!strcmp(name, "count")) {
            if (parse_long(value, 1, 1000000000L, &o->count) < 0) {
                snprintf(err, errlen, "--count needs a positive number, not '%s'", value);
                return -1;
            }
        } else if (parse_seconds(value, !strcmp(name, "timeout") ? &o->timeout : &o->keepalive) < 0) {
            snprintf(err, errlen, "--%s needs a number of seconds, not '%s'", name, value);
            return -1;
        }
    }
    return 0;
}

char *cli_default_config_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg)
        return xasprintf("%s/parley/parley.conf", xdg);
    const char *home = getenv("HOME");
    if (home && *home)
        return xasprintf("%s/.config/parley/parley.conf", home);
    return NULL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* A file name from the configuration: relative ones are relative to its directory. */
static char *config_relative(const char *config_path, const char *value)
{
    const char *slash = strrchr(config_path, '/');
    if (value[0] == '/' || !slash)
        return xstrdup(value);
    return xasprintf("%.*s/%s", (int)(slash - config_path), config_path, value);
}

int cli_load_config(const char *path, int must_exist, cli_opts *o, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (!must_exist && errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open configuration %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    unsigned seen = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        if (strlen(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[strlen(v) - 1] == v[0]) {
            v[strlen(v) - 1] = '\0';
            v++;
        }
        static const char *keys[] = {"jid", "password_file", "ca_file", "server", "direct_tls",
                                     "history", "data_dir", "history_key_file",
                                     "history_passphrase_file"};
        unsigned bit = 0;
        for (unsigned i = 0; i < ARRAY_LEN(keys); i++)
            if (!strcmp(k, keys[i]))
                bit = 1u << i;
        if (!bit) {
            snprintf(err, errlen, "%s:%d: unknown key '%s' (jid, password_file, ca_file, server, "
                     "direct_tls, history, data_dir, history_key_file, "
                     "history_passphrase_file)", path, lineno, k);
            rc = -1;
            break;
        }
        if (seen & bit) {
            snprintf(err, errlen, "%s:%d: '%s' given twice", path, lineno, k);
            rc = -1;
            break;
        }
        seen |= bit;
        if (!strcmp(k, "direct_tls")) {
            int b;
            if (parse_bool(v, &b) < 0) {
                snprintf(err, errlen, "%s:%d: direct_tls must be true or false", path, lineno);
                rc = -1;
                break;
            }
            if (o->direct_tls < 0)
                o->direct_tls = b;
        } else if (!strcmp(k, "jid")) {
            if (!o->jid)
                o->jid = xstrdup(v);
        } else if (!strcmp(k, "server")) {
            if (!o->server)
                o->server = xstrdup(v);
        } else if (!strcmp(k, "password_file")) {
            if (!o->password_file)
                o->password_file = config_relative(path, v);
        } else if (!strcmp(k, "ca_file")) {
            if (!o->ca_file)
                o->ca_file = config_relative(path, v);
        } else if (!strcmp(k, "history")) {
            if (strcmp(v, "default") && strcmp(v, "disabled") && strcmp(v, "archive")) {
                snprintf(err, errlen, "%s:%d: history must be default, disabled or archive",
                         path, lineno);
                rc = -1;
                break;
            }
            if (!o->history)
                o->history = xstrdup(v);
        } else if (!strcmp(k, "data_dir")) {
            if (!o->data_dir)
                o->data_dir = config_relative(path, v);
        } else if (!strcmp(k, "history_key_file")) {
            if (!o->history_key_file)
                o->history_key_file = config_relative(path, v);
        } else if (!strcmp(k, "history_passphrase_file")) {
            if (!o->history_passphrase_file)
                o->history_passphrase_file = config_relative(path, v);
        }
    }
    fclose(f);
    return rc;
}
