/* conf.c - reading parley-compliance.conf (conf.h, docs/parley-compliance.md).
 *
 * Two kinds of lines: "key = value" settings (as in parleyd.conf: the value is the rest
 * of the line, or a double-quoted string) and rule lines, which are split into words,
 * quoted strings and the punctuation "=" and "," and handed to the rule loader. '#'
 * starts a comment at the beginning of a line or after white space. In quoted strings
 * \" \\ \n and \t are escapes; any other backslash is kept, so regular expressions such
 * as "\." need no doubling. */
#include "conf.h"

#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define CONF_MAX_LINE 8192
#define CONF_MAX_FILE (8 * 1024 * 1024)
#define MAX_SECRET 1024
#define MAX_SETTINGS 64

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 5347
#define DEFAULT_JOURNAL "parley-compliance.db"
#define DEFAULT_MAX_STANZA (1024 * 1024)
#define DEFAULT_RECONNECT_MAX 30
#define MAX_RECONNECT 3600

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void replace_str(char **slot, char *value)
{
    free(*slot);
    *slot = value;
}

static void wipe_free(char *s)
{
    if (s) {
        secure_wipe(s, strlen(s));
        free(s);
    }
}

void pc_config_free(pc_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->server_host);
    free(cfg->ca_file);
    free(cfg->server_name);
    free(cfg->component);
    wipe_free(cfg->secret);
    free(cfg->journal);
    free(cfg->log_file);
    rules_free(cfg->rules);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- paths ---- */

/* The directory of path, absolute when it exists (the program may be started anywhere). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = !slash ? xstrdup(".") : slash == path ? xstrdup("/")
                                                      : xstrndup(path, (size_t)(slash - path));
    char *abs = realpath(dir, NULL);
    if (abs) {
        free(dir);
        return abs;
    }
    return dir;
}

static char *resolve_path(const char *dir, const char *value)
{
    if (value[0] == '/')
        return xstrdup(value);
    return xasprintf("%s/%s", strcmp(dir, "/") == 0 ? "" : dir, value);
}

/* ---- lexing ---- */

/* Copy the quoted string starting at p (on the opening quote) to out, resolving escapes.
 * Returns a pointer after the closing quote, or NULL if it is not terminated. */
static const char *unquote(const char *p, char *out, size_t *outlen)
{
    size_t n = 0;
    for (p++;; p++) {
        if (*p == '\0')
            return NULL;
        if (*p == '"')
            break;
        if (*p == '\\' && p[1]) {
            char e = p[1];
            if (e == '"' || e == '\\' || e == 'n' || e == 't') {
                out[n++] = e == 'n' ? '\n' : e == 't' ? '\t' : e;
                p++;
                continue;
            }
        }
        out[n++] = *p;
    }
    out[n] = '\0';
    *outlen = n;
    return p + 1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Split a rule line into tokens; their text lives in store (at least 2 * strlen + 2
 * bytes). Returns the number of tokens, or -1 with why. */
static long tokenize(const char *line, conf_tok *tok, char *store, const char **why)
{
    long n = 0;
    const char *p = line;
    char *w = store;
    for (;;) {
        while (is_blank(*p))
            p++;
        if (*p == '\0' || *p == '#')
            return n;
        tok[n].text = w;
        tok[n].quoted = 0;
        if (*p == '"') {
            size_t len;
            const char *after = unquote(p, w, &len);
            if (!after) {
                *why = "unterminated quoted string";
                return -1;
            }
            if (*after && !is_blank(*after) && *after != ',') {
                *why = "unexpected text right after a closing quote (a space is missing?)";
                return -1;
            }
            tok[n].quoted = 1;
            w += len + 1;
            p = after;
        } else if (*p == '=' || *p == ',') {
            *w++ = *p++;
            *w++ = '\0';
        } else {
            while (*p && !is_blank(*p) && *p != '=' && *p != ',') {
                if (*p == '"') {
                    *why = "unexpected '\"' inside a word (quote the whole value)";
                    return -1;
                }
                *w++ = *p++;
            }
            *w++ = '\0';
        }
        n++;
    }
}

/* "identifier =" at the start of the line: a setting. Returns the key's length, or 0. */
static size_t setting_key(const char *line, const char **value)
{
    const char *p = line;
    while (is_blank(*p))
        p++;
    const char *k = p;
    while (islower((unsigned char)*p) || *p == '_' || isdigit((unsigned char)*p))
        p++;
    size_t klen = (size_t)(p - k);
    while (is_blank(*p))
        p++;
    if (klen == 0 || *p != '=' || (klen == 5 && strncmp(k, "group", 5) == 0))
        return 0;
    *value = p + 1;
    return klen;
}

/* The value after '=': quoted, or the rest of the line without a trailing comment and
 * blanks. Written to out (strlen(v) + 1 bytes). Returns 0 or -1 with why. */
static int setting_value(const char *v, char *out, const char **why)
{
    while (is_blank(*v))
        v++;
    if (*v == '"') {
        size_t len;
        const char *after = unquote(v, out, &len);
        if (!after) {
            *why = "unterminated quoted value";
            return -1;
        }
        while (is_blank(*after))
            after++;
        if (*after && *after != '#') {
            *why = "unexpected text after the closing quote";
            return -1;
        }
        return 0;
    }
    const char *end = v;
    while (*end && !(*end == '#' && end > v && is_blank(end[-1])))
        end++;
    while (end > v && is_blank(end[-1]))
        end--;
    memcpy(out, v, (size_t)(end - v));
    out[end - v] = '\0';
    return 0;
}

/* ---- settings ---- */

typedef enum { S_HOST, S_PORT, S_BOOL, S_PATH, S_NAME, S_DOMAIN, S_SECRET, S_LOGLEVEL, S_SIZE,
               S_SECONDS } stype;

typedef struct setting {
    const char *name;
    stype type;
    size_t offset;
} setting;

/* secret_file is read after the whole file: its path is kept here meanwhile. */
typedef struct load_state {
    pc_config *cfg;
    char *dir;
    char *secret_file;
    struct {
        char *key;
        int line;
    } seen[MAX_SETTINGS];
    size_t nseen;
} load_state;

#define S(n, t) {#n, t, offsetof(pc_config, n)}
static const setting settings[] = {
    S(server_host, S_HOST),   S(server_port, S_PORT),      S(tls, S_BOOL),
    S(ca_file, S_PATH),       S(server_name, S_NAME),      S(component, S_DOMAIN),
    S(secret, S_SECRET),      {"secret_file", S_PATH, 0},  S(journal, S_PATH),
    S(log_file, S_PATH),      S(log_level, S_LOGLEVEL),    S(max_stanza_size, S_SIZE),
    S(reconnect_max, S_SECONDS),
};
#undef S

static int parse_long(const char *s, long lo, long hi, long *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int apply_setting(load_state *st, const setting *s, const char *value, char *why,
                         size_t whylen)
{
    void *slot = (char *)st->cfg + s->offset;
    long n;
    if (!*value) {
        set_err(why, whylen, "empty value for '%s'", s->name);
        return -1;
    }
    switch (s->type) {
    case S_HOST:
    case S_NAME:
        if (strlen(value) > 253 || strpbrk(value, " \t/")) {
            set_err(why, whylen, "bad host name '%s' for '%s'", value, s->name);
            return -1;
        }
        replace_str(slot, xstrdup(value));
        return 0;
    case S_PORT:
        if (parse_long(value, 1, 65535, &n) < 0) {
            set_err(why, whylen, "bad port '%s' for '%s' (1-65535)", value, s->name);
            return -1;
        }
        *(int *)slot = (int)n;
        return 0;
    case S_BOOL:
        if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0 ||
            strcmp(value, "1") == 0 || strcasecmp(value, "on") == 0)
            *(int *)slot = 1;
        else if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
                 strcmp(value, "0") == 0 || strcasecmp(value, "off") == 0)
            *(int *)slot = 0;
        else {
            set_err(why, whylen, "bad boolean '%s' for '%s' (yes or no)", value, s->name);
            return -1;
        }
        return 0;
    case S_PATH:
        if (strcmp(s->name, "secret_file") == 0)
            replace_str(&st->secret_file, resolve_path(st->dir, value));
        else
            replace_str(slot, resolve_path(st->dir, value));
        return 0;
    case S_DOMAIN: {
        char *norm = jid_normalize(value);
        if (!norm || strchr(norm, '@') || strchr(norm, '/')) {
            free(norm);
            set_err(why, whylen, "invalid domain '%s' for '%s' (such as "
                                 "compliance.example.org)", value, s->name);
            return -1;
        }
        replace_str(slot, norm);
        return 0;
    }
    case S_SECRET:
        /* The value itself is never repeated in a message: it is a password. */
        if (strlen(value) < PC_MIN_SECRET || strlen(value) > MAX_SECRET ||
            strpbrk(value, " \t")) {
            set_err(why, whylen, "the secret must be one word of %d to %d characters",
                    PC_MIN_SECRET, MAX_SECRET);
            return -1;
        }
        wipe_free(*(char **)slot);
        *(char **)slot = xstrdup(value);
        return 0;
    case S_LOGLEVEL: {
        log_level lv;
        if (log_level_parse(value, &lv) < 0) {
            set_err(why, whylen, "bad log level '%s' (debug, info, warn or error)", value);
            return -1;
        }
        *(int *)slot = (int)lv;
        return 0;
    }
    case S_SIZE: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        unsigned long long mult = (*end == 'K' || *end == 'k') ? 1024
                                  : (*end == 'M' || *end == 'm') ? 1024 * 1024 : 1;
        if (mult != 1)
            end++;
        if (!isdigit((unsigned char)*value) || errno || *end || v == 0 ||
            v > (64ull << 20) / mult || v * mult < 4096) {
            set_err(why, whylen, "bad size '%s' for '%s' (4K to 64M, optional K or M suffix)",
                    value, s->name);
            return -1;
        }
        *(size_t *)slot = (size_t)(v * mult);
        return 0;
    }
    case S_SECONDS:
        if (parse_long(value, 1, MAX_RECONNECT, &n) < 0) {
            set_err(why, whylen, "bad value '%s' for '%s' (seconds, 1-%d)", value, s->name,
                    MAX_RECONNECT);
            return -1;
        }
        *(int *)slot = (int)n;
        return 0;
    }
    set_err(why, whylen, "internal error: setting type");
    return -1;
}

static int do_setting(load_state *st, const char *key, const char *value, int line, char *why,
                      size_t whylen)
{
    for (size_t i = 0; i < st->nseen; i++) {
        if (strcmp(st->seen[i].key, key) == 0) {
            set_err(why, whylen, "duplicate setting '%s' (first set on line %d)", key,
                    st->seen[i].line);
            return -1;
        }
    }
    int r = -1;
    size_t i;
    for (i = 0; i < ARRAY_LEN(settings); i++)
        if (strcmp(settings[i].name, key) == 0)
            break;
    if (i < ARRAY_LEN(settings))
        r = apply_setting(st, &settings[i], value, why, whylen) < 0 ? -1 : 1;
    else
        r = rules_setting(st->cfg->rules, key, value, why, whylen);
    if (r == 0) {
        set_err(why, whylen, "unknown setting '%s'", key);
        return -1;
    }
    if (r < 0)
        return -1;
    if (st->nseen < MAX_SETTINGS) {
        st->seen[st->nseen].key = xstrdup(key);
        st->seen[st->nseen].line = line;
        st->nseen++;
    }
    return 0;
}

static int handle_line(load_state *st, const char *line, int lineno, char *why, size_t whylen)
{
    size_t len = strlen(line);
    char *store = xmalloc(2 * len + 2);
    const char *value;
    const char *lexerr = NULL;
    int rc = 0;
    size_t klen = setting_key(line, &value);
    if (klen) {
        const char *k = line + strspn(line, " \t");
        char key[64];
        if (klen >= sizeof key) {
            set_err(why, whylen, "unknown setting '%.*s'", (int)klen, k);
            rc = -1;
        } else {
            memcpy(key, k, klen);
            key[klen] = '\0';
            if (setting_value(value, store, &lexerr) < 0) {
                set_err(why, whylen, "%s", lexerr);
                rc = -1;
            } else {
                rc = do_setting(st, key, store, lineno, why, whylen);
            }
        }
        secure_wipe(store, 2 * len + 2); /* it may have held the secret */
        free(store);
        return rc;
    }
    conf_tok *tok = xmalloc((len + 1) * sizeof *tok);
    long n = tokenize(line, tok, store, &lexerr);
    if (n < 0) {
        set_err(why, whylen, "%s", lexerr);
        rc = -1;
    } else if (n > 0) {
        int r = rules_parse_line(st->cfg->rules, tok, (size_t)n, lineno, why, whylen);
        if (r == 0)
            set_err(why, whylen, "unknown rule '%s' (group, wall, keyword, regex, encrypted, "
                                 "file, or a 'key = value' setting)", tok[0].text);
        rc = r > 0 ? 0 : -1;
    }
    free(tok);
    free(store);
    return rc;
}

/* ---- secrets ---- */

/* A file that holds the secret must not be readable by every user of the machine. */
static int check_private(const char *path, const char *what, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(path, &sb) < 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (sb.st_mode & S_IRWXO) {
        set_err(err, errlen, "%s: %s is accessible to every user (chmod o-rwx %s)", path,
                what, path);
        return -1;
    }
    return 0;
}

static int read_secret_file(pc_config *cfg, const char *file, char *err, size_t errlen)
{
    if (check_private(file, "the secret file", err, errlen) < 0)
        return -1;
    FILE *f = fopen(file, "r");
    if (!f) {
        set_err(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return -1;
    }
    char buf[MAX_SECRET + 2];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int bad_read = ferror(f);
    fclose(f);
    buf[n] = '\0';
    size_t len = strcspn(buf, "\r\n");
    buf[len] = '\0';
    while (len > 0 && is_blank(buf[len - 1]))
        buf[--len] = '\0';
    int ok = !bad_read && len >= PC_MIN_SECRET && len <= MAX_SECRET && !strpbrk(buf, " \t");
    if (ok)
        cfg->secret = xstrdup(buf);
    secure_wipe(buf, sizeof buf);
    if (!ok) {
        set_err(err, errlen, "%s: the first line must be the secret, one word of %d to %d "
                             "characters", file, PC_MIN_SECRET, MAX_SECRET);
        return -1;
    }
    return 0;
}

static int is_loopback(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

static int seen_line(const load_state *st, const char *key)
{
    for (size_t i = 0; i < st->nseen; i++)
        if (strcmp(st->seen[i].key, key) == 0)
            return st->seen[i].line;
    return 0;
}

/* Defaults and rules between settings, once the whole file is read. */
static int finish(load_state *st, const char *path, char *err, size_t errlen)
{
    pc_config *cfg = st->cfg;
    char why[512];
    int line;
    if (rules_finish(cfg->rules, &line, why, sizeof why) < 0) {
        set_err(err, errlen, "%s:%d: %s", path, line, why);
        return -1;
    }
    if (!cfg->component) {
        set_err(err, errlen, "%s: missing required setting 'component' (the component "
                             "domain configured in parleyd.conf)", path);
        return -1;
    }
    if (cfg->secret && st->secret_file) {
        set_err(err, errlen, "%s:%d: set either 'secret' or 'secret_file', not both", path,
                seen_line(st, "secret_file"));
        return -1;
    }
    if (!cfg->secret && !st->secret_file) {
        set_err(err, errlen, "%s: missing required setting 'secret' or 'secret_file'", path);
        return -1;
    }
    if (cfg->secret && check_private(path, "a configuration file with a secret", err,
                                     errlen) < 0)
        return -1;
    if (st->secret_file && read_secret_file(cfg, st->secret_file, err, errlen) < 0)
        return -1;
    if (!cfg->tls && !is_loopback(cfg->server_host)) {
        set_err(err, errlen, "%s:%d: tls = no is only allowed to a loopback server_host (the "
                             "secret and every message would cross the network in the clear)",
                path, seen_line(st, "tls"));
        return -1;
    }
    if (!cfg->server_name)
        cfg->server_name = xstrdup(cfg->server_host);
    if (!cfg->journal)
        cfg->journal = resolve_path(st->dir, DEFAULT_JOURNAL);
    return 0;
}

int pc_config_load(pc_config *cfg, const char *path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->server_host = xstrdup(DEFAULT_HOST);
    cfg->server_port = DEFAULT_PORT;
    cfg->tls = 1;
    cfg->log_level = PLOG_INFO;
    cfg->max_stanza_size = DEFAULT_MAX_STANZA;
    cfg->reconnect_max = DEFAULT_RECONNECT_MAX;
    cfg->rules = rules_new();

    load_state st;
    memset(&st, 0, sizeof st);
    st.cfg = cfg;
    FILE *f = fopen(path, "r");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) < 0) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        if (f)
            fclose(f);
        pc_config_free(cfg);
        return -1;
    }
    int rc = 0;
    if (!S_ISREG(sb.st_mode) || sb.st_size > CONF_MAX_FILE) {
        set_err(err, errlen, "%s: not a regular file of at most %d bytes", path, CONF_MAX_FILE);
        rc = -1;
    }
    st.dir = dir_of(path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)len > CONF_MAX_LINE) {
            set_err(err, errlen, "%s:%d: line too long (more than %d bytes)", path, lineno,
                    CONF_MAX_LINE);
            rc = -1;
            break;
        }
        if (memchr(line, '\0', (size_t)len)) {
            set_err(err, errlen, "%s:%d: NUL byte in line", path, lineno);
            rc = -1;
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char why[512];
        if (handle_line(&st, line, lineno, why, sizeof why) < 0) {
            set_err(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(f)) {
        set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    if (line) {
        secure_wipe(line, cap);
        free(line);
    }
    fclose(f);
    if (rc == 0)
        rc = finish(&st, path, err, errlen);
    if (rc == 0) {
        char *abs = realpath(path, NULL);
        cfg->path = abs ? abs : xstrdup(path);
    }
    for (size_t i = 0; i < st.nseen; i++)
        free(st.seen[i].key);
    free(st.secret_file);
    free(st.dir);
    if (rc < 0)
        pc_config_free(cfg);
    return rc;
}
