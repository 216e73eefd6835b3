/* config.c - reading and writing parleyd.conf (see config.h, docs/configuration.md).
 *
 * The format is deliberately small: "key = value" per line, '#' starts a comment line
 * (or a trailing comment after whitespace), values may be double-quoted (with \" and \\
 * escapes) when they contain '#' or leading/trailing blanks. Every mistake is an error
 * that names the file and line: a server that silently ignores a misspelt
 * "scram_iteration = 100000" would run weaker than its operator believes. */
#include "config.h"

#include "../common/jid.h"
#include "../common/log.h"
#include "../common/scram.h"
#include "../common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest line accepted; longer ones are refused rather than truncated. */
#define CONFIG_MAX_LINE 4096
/* Upper bounds that catch typos (an extra zero or two) rather than real limits. */
#define CONFIG_MAX_SIZE ((size_t)1 << 30)
#define CONFIG_MAX_ITERATIONS 10000000u

#define DEFAULT_BIND "127.0.0.1"
#define DEFAULT_C2S_PORT 5222
#define DEFAULT_TLS_PORT 5223
#define DEFAULT_HTTPS_PORT 5443
#define DEFAULT_MAX_STANZA 262144
#define DEFAULT_MAX_OUTPUT (1024 * 1024)
#define DEFAULT_HANDSHAKE_TIMEOUT 30
#define DEFAULT_IDLE_TIMEOUT 600
#define DEFAULT_MAX_CONNECTIONS 20000
#define DEFAULT_OFFLINE_MAX 1000
#define DEFAULT_AUTH_FAIL_LIMIT 5
#define DEFAULT_AUTH_FAIL_WINDOW 60
#define DEFAULT_SCRAM_ITERATIONS SCRAM_MIN_ITERATIONS
#define DEFAULT_CHECKPOINT_EVERY 1000
#define DEFAULT_COMPONENT_PORT 5347
#define DEFAULT_VERDICT_TIMEOUT_MS 5000
#define DEFAULT_MUC_MAX_ROOMS 50
#define DEFAULT_MUC_MAX_OCCUPANTS 1000
#define DEFAULT_MUC_HISTORY 50
#define DEFAULT_MUC_ROOM_RATE 200
#define DEFAULT_MUC_USER_RATE 10
#define DEFAULT_SM_RESUME_TIMEOUT 300
#define DEFAULT_ARCHIVE_DAYS 365
#define DEFAULT_SM_MAX_QUEUE 10000
#define DEFAULT_PEP_MAX_NODES 100
#define DEFAULT_PEP_MAX_ITEMS 256
#define DEFAULT_PEP_MAX_PAYLOAD (128 * 1024)
#define DEFAULT_UPLOAD_MAX_SIZE (100 * 1024 * 1024)
#define DEFAULT_UPLOAD_EXPIRE_DAYS 30
#define DEFAULT_HTTP_HEADER_TIMEOUT 10
#define DEFAULT_HTTP_IDLE_TIMEOUT 30
#define DEFAULT_S2S_PORT 5269
#define DEFAULT_S2S_MAX_QUEUE 1000
#define DEFAULT_S2S_IDLE 300
#define DEFAULT_NODE_LEASE 30
/* Secrets shorter than this are refused: a component secret is a password. */
#define MIN_COMPONENT_SECRET 16

void config_init(config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bind_address = xstrdup(DEFAULT_BIND);
    cfg->c2s_port = DEFAULT_C2S_PORT;
    cfg->tls_port = DEFAULT_TLS_PORT;
    cfg->https_port = DEFAULT_HTTPS_PORT;
    /* Relative to the working directory until config_load knows the file's directory. */
    cfg->data_dir = xstrdup("data");
    cfg->store = xstrdup("sqlite:data/parley.db");
    cfg->log_level = PLOG_INFO;
    cfg->max_stanza_size = DEFAULT_MAX_STANZA;
    cfg->max_output_buffer = DEFAULT_MAX_OUTPUT;
    cfg->scram_iterations = DEFAULT_SCRAM_ITERATIONS;
    cfg->handshake_timeout = DEFAULT_HANDSHAKE_TIMEOUT;
    cfg->idle_timeout = DEFAULT_IDLE_TIMEOUT;
    cfg->max_connections = DEFAULT_MAX_CONNECTIONS;
    cfg->offline_max = DEFAULT_OFFLINE_MAX;
    cfg->auth_fail_limit = DEFAULT_AUTH_FAIL_LIMIT;
    cfg->auth_fail_window = DEFAULT_AUTH_FAIL_WINDOW;
    cfg->hide_version = 0;
    cfg->allow_plain = 1;
    cfg->compliance = 1;
    cfg->compliance_store = xstrdup("sqlite:data/compliance.db");
    cfg->compliance_checkpoint_every = DEFAULT_CHECKPOINT_EVERY;
    cfg->compliance_mode = COMPLIANCE_STRICT;
    cfg->compliance_spool = xstrdup("data/compliance.spool");
    cfg->compliance_server_timeout = DEFAULT_VERDICT_TIMEOUT_MS;
    cfg->compliance_server_failure = COMPLIANCE_FAIL_BLOCK;
    cfg->component_port = DEFAULT_COMPONENT_PORT;
    cfg->component_tls = 1;
    cfg->muc = 1;
    cfg->muc_max_rooms_per_user = DEFAULT_MUC_MAX_ROOMS;
    cfg->muc_max_occupants = DEFAULT_MUC_MAX_OCCUPANTS;
    cfg->muc_history = DEFAULT_MUC_HISTORY;
    cfg->muc_room_rate = DEFAULT_MUC_ROOM_RATE;
    cfg->muc_user_rate = DEFAULT_MUC_USER_RATE;
    cfg->archive = 1;
    cfg->archive_expires_after = DEFAULT_ARCHIVE_DAYS;
    cfg->sm_resume_timeout = DEFAULT_SM_RESUME_TIMEOUT;
    cfg->sm_max_queue = DEFAULT_SM_MAX_QUEUE;
    cfg->pep_max_nodes = DEFAULT_PEP_MAX_NODES;
    cfg->pep_max_items = DEFAULT_PEP_MAX_ITEMS;
    cfg->pep_max_payload = DEFAULT_PEP_MAX_PAYLOAD;
    cfg->upload_max_size = DEFAULT_UPLOAD_MAX_SIZE;
    cfg->upload_expire_after = (long long)DEFAULT_UPLOAD_EXPIRE_DAYS * 86400;
    cfg->http_header_timeout = DEFAULT_HTTP_HEADER_TIMEOUT;
    cfg->http_idle_timeout = DEFAULT_HTTP_IDLE_TIMEOUT;
    cfg->s2s_port = DEFAULT_S2S_PORT;
    cfg->s2s_secure = 1;
    cfg->s2s_max_queue = DEFAULT_S2S_MAX_QUEUE;
    cfg->s2s_idle_timeout = DEFAULT_S2S_IDLE;
    cfg->node_lease = DEFAULT_NODE_LEASE;
    cfg->tls_threads = -1; /* one per online CPU, decided at start-up */
}

void config_free(config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->domain);
    free(cfg->bind_address);
    free(cfg->cert_file);
    free(cfg->key_file);
    free(cfg->ca_file);
    free(cfg->data_dir);
    free(cfg->store);
    free(cfg->log_file);
    free(cfg->compliance_store);
    free(cfg->compliance_spool);
    free(cfg->compliance_server);
    for (size_t i = 0; i < cfg->ncomponents; i++) {
        free(cfg->components[i].domain);
        OPENSSL_cleanse(cfg->components[i].secret, strlen(cfg->components[i].secret));
        free(cfg->components[i].secret);
    }
    free(cfg->components);
    free(cfg->muc_domain);
    free(cfg->upload_domain);
    free(cfg->upload_dir);
    free(cfg->upload_url);
    free(cfg->s2s_allow);
    free(cfg->s2s_deny);
    free(cfg->s2s_hosts);
    free(cfg->node_name);
    free(cfg->nodes);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- helpers ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
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

/* The directory of path, made absolute so that the daemon may chdir later. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = xstrdup(".");
    else if (slash == path)
        dir = xstrdup("/");
    else
        dir = xstrndup(path, (size_t)(slash - path));
    char *abs = realpath(dir, NULL);
    if (abs) {
        free(dir);
        return abs;
    }
    return dir;
}

/* value if absolute, else dir/value (freshly allocated). */
static char *resolve_path(const char *dir, const char *value)
{
    if (value[0] == '/')
        return xstrdup(value);
    if (strcmp(dir, "/") == 0)
        return xasprintf("/%s", value);
    return xasprintf("%s/%s", dir, value);
}

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

/* Digits with an optional K or M suffix (binary multiples), > 0. */
static int parse_size(const char *s, size_t *out)
{
    if (!*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned long long mult = 1;
    if (*end == 'K' || *end == 'k') {
        mult = 1024;
        end++;
    } else if (*end == 'M' || *end == 'm') {
        mult = 1024 * 1024;
        end++;
    }
    if (*end || v == 0 || v > CONFIG_MAX_SIZE / mult)
        return -1;
    *out = (size_t)(v * mult);
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"true", "yes", "1", "on"};
    static const char *no[] = {"false", "no", "0", "off"};
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Split one line into key and value in place. Returns 1 for a key/value line, 0 for a
 * blank or comment line, -1 with a reason on a syntax error. */
static int split_line(char *line, char **key, char **value, const char **why)
{
    char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    char *k = p;
    while (*p && *p != '=' && *p != ' ' && *p != '\t')
        p++;
    char *kend = p;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '=') {
        *why = "expected 'key = value'";
        return -1;
    }
    if (kend == k) {
        *why = "missing key before '='";
        return -1;
    }
    *kend = '\0';
    p++;
    while (*p == ' ' || *p == '\t')
        p++;

    char *v = p;
    if (*p == '"') {
        /* Quoted: unescape in place, then only blanks or a comment may follow. */
        char *w = v;
        p++;
        for (;;) {
            if (*p == '\0') {
                *why = "unterminated quoted value";
                return -1;
            }
            if (*p == '"')
                break;
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            *w++ = *p++;
        }
        *w = '\0';
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0' && *p != '#') {
            *why = "unexpected text after the closing quote";
            return -1;
        }
    } else {
        /* Unquoted: a '#' after whitespace starts a comment; trailing blanks dropped. */
        char *end = p;
        while (*end) {
            if (*end == '#' && end > v && (end[-1] == ' ' || end[-1] == '\t'))
                break;
            end++;
        }
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = '\0';
    }
    *key = k;
    *value = v;
    return 1;
}

/* ---- keys ---- */

typedef enum {
    K_STR,     /* plain string */
    K_PATH,    /* string resolved against the config file's directory */
    K_DOMAIN,  /* XMPP domain, normalised */
    K_STORE,   /* store URI */
    K_CSTORE,  /* compliance store URI (never in memory) */
    K_PORT,    /* 0..65535 */
    K_POSINT,  /* 1..INT_MAX */
    K_NONNEG,  /* 0..INT_MAX */
    K_SIZE,    /* bytes, K/M suffixes */
    K_BOOL,
    K_LOGLEVEL,
    K_ITER,    /* SCRAM iteration count */
    K_CHOICE,  /* one of key_def.choices, stored as its index */
    K_DAYS,    /* "forever" (0) or a number of days, optional 'd' suffix */
    K_COMPONENT, /* "DOMAIN SECRET"; the only key that may repeat */
    K_URL,     /* https://host[:port][/path], no trailing slash, no query */
    K_DOMAINS, /* comma-separated domains, normalised */
    K_HOSTS,   /* comma-separated name=host:port */
    K_DURATION, /* "forever" (0) or a number with unit s, m, h or d; plain number: days.
                 * Stored as seconds in a long long. */
} key_type;

typedef struct key_def {
    const char *name;
    key_type type;
    size_t offset;
    const char *const *choices; /* K_CHOICE: NULL-terminated */
} key_def;

static const char *const compliance_modes[] = {"strict", "spool", NULL};
static const char *const failure_modes[] = {"block", "allow", NULL};

#define KEY(n, t) {#n, t, offsetof(config, n), NULL}
#define CHOICE(n, c) {#n, K_CHOICE, offsetof(config, n), c}
static const key_def keys[] = {
    KEY(domain, K_DOMAIN),
    KEY(bind_address, K_STR),
    KEY(c2s_port, K_PORT),
    KEY(tls_port, K_PORT),
    KEY(https_port, K_PORT),
    KEY(cert_file, K_PATH),
    KEY(key_file, K_PATH),
    KEY(ca_file, K_PATH),
    KEY(data_dir, K_PATH),
    KEY(store, K_STORE),
    KEY(log_file, K_PATH),
    KEY(log_level, K_LOGLEVEL),
    KEY(max_stanza_size, K_SIZE),
    KEY(max_output_buffer, K_SIZE),
    KEY(scram_iterations, K_ITER),
    KEY(handshake_timeout, K_POSINT),
    KEY(idle_timeout, K_POSINT),
    KEY(max_connections, K_POSINT),
    KEY(offline_max, K_NONNEG),
    KEY(auth_fail_limit, K_POSINT),
    KEY(auth_fail_window, K_POSINT),
    KEY(hide_version, K_BOOL),
    KEY(allow_plain, K_BOOL),
    KEY(compliance, K_BOOL),
    KEY(compliance_store, K_CSTORE),
    KEY(compliance_checkpoint_every, K_POSINT),
    CHOICE(compliance_mode, compliance_modes),
    KEY(compliance_spool, K_PATH),
    KEY(compliance_retention_days, K_DAYS),
    KEY(compliance_server, K_DOMAIN),
    KEY(compliance_server_timeout, K_POSINT),
    CHOICE(compliance_server_failure, failure_modes),
    KEY(component_port, K_PORT),
    KEY(component_tls, K_BOOL),
    {"component", K_COMPONENT, 0, NULL},
    KEY(muc, K_BOOL),
    KEY(muc_domain, K_DOMAIN),
    KEY(muc_max_rooms_per_user, K_NONNEG),
    KEY(muc_max_occupants, K_POSINT),
    KEY(muc_history, K_NONNEG),
    KEY(muc_room_rate, K_POSINT),
    KEY(muc_user_rate, K_POSINT),
    KEY(archive, K_BOOL),
    KEY(archive_expires_after, K_DAYS),
    KEY(sm_resume_timeout, K_NONNEG),
    KEY(sm_max_queue, K_POSINT),
    KEY(pep_max_nodes, K_NONNEG),
    KEY(pep_max_items, K_POSINT),
    KEY(pep_max_payload, K_SIZE),
    KEY(upload_domain, K_DOMAIN),
    KEY(upload_dir, K_PATH),
    KEY(upload_url, K_URL),
    KEY(upload_max_size, K_SIZE),
    KEY(upload_expire_after, K_DURATION),
    KEY(http_header_timeout, K_POSINT),
    KEY(http_idle_timeout, K_POSINT),
    KEY(s2s_port, K_PORT),
    KEY(s2s_secure, K_BOOL),
    KEY(s2s_dialback, K_BOOL),
    KEY(s2s_allow, K_DOMAINS),
    KEY(s2s_deny, K_DOMAINS),
    KEY(s2s_hosts, K_HOSTS),
    KEY(s2s_max_queue, K_POSINT),
    KEY(s2s_idle_timeout, K_POSINT),
    KEY(node_name, K_DOMAIN),
    KEY(nodes, K_HOSTS),
    KEY(node_lease, K_POSINT),
    KEY(tls_threads, K_NONNEG),
};
#undef KEY
#undef CHOICE

int config_parse_list(char **slot, const char *value, int with_hosts, const char *key,
                      char *why, size_t whylen);

/* Apply one value. Returns 0 or -1 with a reason (without file:line) in why. */
static int apply_key(config *cfg, const key_def *k, const char *value, const char *dir,
                     char *why, size_t whylen)
{
    void *slot = (char *)cfg + k->offset;
    long n;
    switch (k->type) {
    case K_STR:
        if (!*value) {
            set_err(why, whylen, "empty value for '%s'", k->name);
            return -1;
        }
        replace_str(slot, xstrdup(value));
        return 0;
    case K_PATH:
        if (!*value) {
            set_err(why, whylen, "empty path for '%s'", k->name);
            return -1;
        }
        replace_str(slot, resolve_path(dir, value));
        return 0;
    case K_DOMAIN: {
        char *norm = *value ? jid_normalize(value) : NULL;
        if (!norm || strchr(norm, '@') || strchr(norm, '/')) {
            free(norm);
            set_err(why, whylen, "invalid domain '%s' (a bare domain such as example.org)",
                    value);
            return -1;
        }
        replace_str(slot, norm);
        return 0;
    }
    case K_CSTORE:
        /* An archive in memory would prove nothing. */
        if (strcmp(value, "sqlite::memory:") == 0) {
            set_err(why, whylen, "compliance_store cannot be in memory (sqlite:PATH or "
                                 "postgresql://...)");
            return -1;
        }
        __attribute__((fallthrough)); /* the same path rules as the store */
    case K_STORE: {
        /* Relative SQLite paths follow the same rule as every other path. Other schemes
         * are passed through for store_open to accept or refuse. */
        if (strncmp(value, "sqlite:", 7) == 0) {
            const char *p = value + 7;
            if (!*p) {
                set_err(why, whylen, "store 'sqlite:' needs a file path");
                return -1;
            }
            char *abs = strcmp(p, ":memory:") == 0 ? xstrdup(p) : resolve_path(dir, p);
            replace_str(slot, xasprintf("sqlite:%s", abs));
            free(abs);
            return 0;
        }
        if (strncmp(value, "postgresql:", 11) == 0 || strncmp(value, "postgres:", 9) == 0) {
            replace_str(slot, xstrdup(value));
            return 0;
        }
        set_err(why, whylen, "unsupported store '%s' (expected sqlite:PATH)", value);
        return -1;
    }
    case K_PORT:
        if (parse_long(value, 0, 65535, &n) < 0) {
            set_err(why, whylen, "bad port '%s' for '%s' (0-65535, 0 disables)", value,
                    k->name);
            return -1;
        }
        *(int *)slot = (int)n;
        return 0;
    case K_POSINT:
    case K_NONNEG:
        if (parse_long(value, k->type == K_POSINT ? 1 : 0, INT_MAX, &n) < 0) {
            set_err(why, whylen, "bad value '%s' for '%s' (an integer %s)", value, k->name,
                    k->type == K_POSINT ? "> 0" : ">= 0");
            return -1;
        }
        *(int *)slot = (int)n;
        return 0;
    case K_SIZE:
        if (parse_size(value, slot) < 0) {
            set_err(why, whylen,
                    "bad size '%s' for '%s' (bytes > 0, optional K or M suffix, at most 1G)",
                    value, k->name);
            return -1;
        }
        return 0;
    case K_BOOL:
        if (parse_bool(value, slot) < 0) {
            set_err(why, whylen, "bad boolean '%s' for '%s' (true/false/yes/no/1/0)", value,
                    k->name);
            return -1;
        }
        return 0;
    case K_LOGLEVEL: {
        log_level lv;
        if (log_level_parse(value, &lv) < 0) {
            set_err(why, whylen, "bad log level '%s' (debug, info, warn or error)", value);
            return -1;
        }
        *(int *)slot = (int)lv;
        return 0;
    }
    case K_ITER:
        if (parse_long(value, SCRAM_MIN_ITERATIONS, CONFIG_MAX_ITERATIONS, &n) < 0) {
            set_err(why, whylen, "bad scram_iterations '%s' (an integer from %d to %u)", value,
                    SCRAM_MIN_ITERATIONS, CONFIG_MAX_ITERATIONS);
            return -1;
        }
        *(unsigned *)slot = (unsigned)n;
        return 0;
    case K_CHOICE:
        for (int i = 0; k->choices[i]; i++) {
            if (strcasecmp(value, k->choices[i]) == 0) {
                *(int *)slot = i;
                return 0;
            }
        }
        set_err(why, whylen, "bad value '%s' for '%s' (%s or %s)", value, k->name,
                k->choices[0], k->choices[1]);
        return -1;
    case K_DAYS: {
        if (strcasecmp(value, "forever") == 0) {
            *(int *)slot = 0;
            return 0;
        }
        char num[32];
        size_t vlen = strlen(value);
        if (vlen > 1 && vlen < sizeof num && (value[vlen - 1] == 'd' || value[vlen - 1] == 'D'))
            vlen--;
        if (vlen < sizeof num) {
            memcpy(num, value, vlen);
            num[vlen] = '\0';
            if (parse_long(num, 1, 365L * 1000, &n) == 0) {
                *(int *)slot = (int)n;
                return 0;
            }
        }
        set_err(why, whylen, "bad value '%s' for '%s' ('forever' or a number of days, "
                             "e.g. 2555d)", value, k->name);
        return -1;
    }
    case K_DURATION: {
        if (strcasecmp(value, "forever") == 0) {
            *(long long *)slot = 0;
            return 0;
        }
        /* Days stay the unit of a bare number: older configurations mean days. */
        static const struct { char unit; long long seconds, max; } units[] = {
            {'s', 1, 365L * 1000 * 86400}, {'m', 60, 365L * 1000 * 1440},
            {'h', 3600, 365L * 1000 * 24}, {'d', 86400, 365L * 1000}};
        char num[32];
        size_t vlen = strlen(value);
        long long mult = 86400, max = 365L * 1000;
        for (size_t i = 0; vlen > 1 && i < ARRAY_LEN(units); i++)
            if (value[vlen - 1] == units[i].unit || value[vlen - 1] == units[i].unit - 32) {
                mult = units[i].seconds, max = units[i].max;
                vlen--;
                break;
            }
        if (vlen < sizeof num) {
            memcpy(num, value, vlen);
            num[vlen] = '\0';
            if (parse_long(num, 1, (long)max, &n) == 0) {
                *(long long *)slot = (long long)n * mult;
                return 0;
            }
        }
        set_err(why, whylen, "bad value '%s' for '%s' ('forever' or a duration: 30s, 15m, "
                             "12h, 7d; a plain number is days)", value, k->name);
        return -1;
    }
    case K_URL: {
        /* Slot URLs are built by appending to this; anything that could change their
         * meaning (query, fragment, blanks, quotes) is refused here. */
        size_t vlen = strlen(value);
        if (strncmp(value, "https://", 8) != 0 || vlen <= 8 || vlen > 512 ||
            strpbrk(value, "?#\"' \t<>") || value[vlen - 1] == '/') {
            set_err(why, whylen, "bad URL '%s' for '%s' (https://host[:port][/path] "
                                 "without a trailing slash)", value, k->name);
            return -1;
        }
        replace_str(slot, xstrdup(value));
        return 0;
    }
    case K_COMPONENT: {
        const char *sp = strpbrk(value, " \t");
        if (!sp) {
            set_err(why, whylen, "'component' needs a domain and a secret: component = "
                                 "DOMAIN SECRET");
            return -1;
        }
        char *domain = xstrndup(value, (size_t)(sp - value));
        const char *secret = sp + strspn(sp, " \t");
        char *norm = jid_normalize(domain);
        int bad_domain = !norm || strchr(norm, '@') || strchr(norm, '/');
        free(domain);
        if (bad_domain) {
            free(norm);
            set_err(why, whylen, "invalid component domain in '%s'", k->name);
            return -1;
        }
        if (strlen(secret) < MIN_COMPONENT_SECRET || strpbrk(secret, " \t")) {
            set_err(why, whylen, "the secret of component %s must be one word of at least "
                                 "%d characters", norm, MIN_COMPONENT_SECRET);
            free(norm);
            return -1;
        }
        for (size_t i = 0; i < cfg->ncomponents; i++) {
            if (strcmp(cfg->components[i].domain, norm) == 0) {
                set_err(why, whylen, "component %s is configured twice",
                        cfg->components[i].domain);
                free(norm);
                return -1;
            }
        }
        cfg->components = xrealloc(cfg->components,
                                   (cfg->ncomponents + 1) * sizeof *cfg->components);
        cfg->components[cfg->ncomponents].domain = norm;
        cfg->components[cfg->ncomponents].secret = xstrdup(secret);
        cfg->ncomponents++;
        return 0;
    }
    case K_DOMAINS:
    case K_HOSTS:
        return config_parse_list(slot, value, k->type == K_HOSTS, k->name, why, whylen);
    }
    set_err(why, whylen, "internal error: key type");
    return -1;
}

static int is_loopback_address(const char *addr)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, addr, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, addr, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

const config_component *config_find_component(const config *cfg, const char *domain)
{
    for (size_t i = 0; i < cfg->ncomponents; i++)
        if (strcmp(cfg->components[i].domain, domain) == 0)
            return &cfg->components[i];
    return NULL;
}

/* Rules between keys, checked once the whole file is read. */
static int check_consistency(const config *cfg, const char *path, char *err, size_t errlen)
{
    if (cfg->compliance_server && !config_find_component(cfg, cfg->compliance_server)) {
        set_err(err, errlen, "%s: compliance_server %s is not a configured component "
                             "(add 'component = %s SECRET')",
                path, cfg->compliance_server, cfg->compliance_server);
        return -1;
    }
    if (cfg->compliance_server && !cfg->compliance) {
        set_err(err, errlen, "%s: compliance_server needs compliance = yes (every verdict "
                             "is archived)", path);
        return -1;
    }
    if (cfg->ncomponents && !cfg->component_tls && !is_loopback_address(cfg->bind_address)) {
        set_err(err, errlen, "%s: component_tls = no is only allowed when bind_address is "
                             "a loopback address (a component secret must not cross a "
                             "network in the clear)", path);
        return -1;
    }
    if (cfg->https_port && (strcmp(cfg->upload_domain, cfg->domain) == 0 ||
                            (cfg->muc && strcmp(cfg->upload_domain, cfg->muc_domain) == 0))) {
        set_err(err, errlen, "%s: upload_domain %s clashes with another domain the server "
                             "serves", path, cfg->upload_domain);
        return -1;
    }
    if (cfg->nodes && !cfg->node_name) {
        set_err(err, errlen, "%s: nodes needs node_name (this node's own name)", path);
        return -1;
    }
    if (cfg->node_name && cfg->s2s_port == 0) {
        set_err(err, errlen, "%s: a node (node_name) needs s2s_port: nodes link over it", path);
        return -1;
    }
    if (cfg->node_name && strncmp(cfg->store, "postgres", 8) != 0) {
        set_err(err, errlen, "%s: a node (node_name) needs a postgresql:// store shared by "
                             "every node of the domain", path);
        return -1;
    }
    if (cfg->node_name && !cfg->ca_file) {
        set_err(err, errlen, "%s: a node (node_name) needs ca_file, the cluster's CA that "
                             "signs every node's certificate", path);
        return -1;
    }
    if (cfg->s2s_dialback && cfg->s2s_secure) {
        set_err(err, errlen, "%s: s2s_dialback = yes needs s2s_secure = no (dialback is "
                             "weaker than certificates)", path);
        return -1;
    }
    for (size_t i = 0; i < cfg->ncomponents; i++) {
        const char *d = cfg->components[i].domain;
        if (strcmp(d, cfg->domain) == 0 || (cfg->muc && strcmp(d, cfg->muc_domain) == 0) ||
            (cfg->https_port && strcmp(d, cfg->upload_domain) == 0)) {
            set_err(err, errlen, "%s: component %s clashes with a domain the server serves "
                                 "itself", path, d);
            return -1;
        }
    }
    return 0;
}

int config_load(config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *dir = dir_of(path);
    /* Which keys this file set, and where: duplicates are refused and the defaults
     * of data_dir and store follow the file's directory unless set. */
    int seen[ARRAY_LEN(keys)] = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    int rc = 0;

    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)len > CONFIG_MAX_LINE) {
            set_err(err, errlen, "%s:%d: line too long (more than %d bytes)", path, lineno,
                    CONFIG_MAX_LINE);
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

        char *key, *value;
        const char *why = NULL;
        int r = split_line(line, &key, &value, &why);
        if (r == 0)
            continue;
        if (r < 0) {
            set_err(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
        size_t i;
        for (i = 0; i < ARRAY_LEN(keys); i++)
            if (strcmp(keys[i].name, key) == 0)
                break;
        if (i == ARRAY_LEN(keys)) {
            set_err(err, errlen, "%s:%d: unknown key '%s'", path, lineno, key);
            rc = -1;
            break;
        }
        if (seen[i] && keys[i].type != K_COMPONENT) {
            set_err(err, errlen, "%s:%d: duplicate key '%s' (first set on line %d)", path,
                    lineno, key, seen[i]);
            rc = -1;
            break;
        }
        seen[i] = lineno;
        char why_buf[512];
        if (apply_key(cfg, &keys[i], value, dir, why_buf, sizeof why_buf) < 0) {
            set_err(err, errlen, "%s:%d: %s", path, lineno, why_buf);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);

    if (rc == 0) {
        static const char *required[] = {"domain", "cert_file", "key_file"};
        for (size_t r = 0; r < ARRAY_LEN(required); r++) {
            for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
                if (strcmp(keys[i].name, required[r]) == 0 &&
                    !*(char **)((char *)cfg + keys[i].offset)) {
                    set_err(err, errlen, "%s: missing required key '%s'", path, required[r]);
                    rc = -1;
                }
            }
            if (rc < 0)
                break;
        }
    }
    if (rc == 0) {
        int data_seen = 0, store_seen = 0, cstore_seen = 0, spool_seen = 0;
        for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
            if (strcmp(keys[i].name, "data_dir") == 0)
                data_seen = seen[i];
            else if (strcmp(keys[i].name, "store") == 0)
                store_seen = seen[i];
            else if (strcmp(keys[i].name, "compliance_store") == 0)
                cstore_seen = seen[i];
            else if (strcmp(keys[i].name, "compliance_spool") == 0)
                spool_seen = seen[i];
        }
        if (!data_seen)
            replace_str(&cfg->data_dir, resolve_path(dir, "data"));
        if (!store_seen)
            replace_str(&cfg->store, xasprintf("sqlite:%s/parley.db", cfg->data_dir));
        if (!cstore_seen)
            replace_str(&cfg->compliance_store,
                        xasprintf("sqlite:%s/compliance.db", cfg->data_dir));
        if (!spool_seen)
            replace_str(&cfg->compliance_spool,
                        xasprintf("%s/compliance.spool", cfg->data_dir));
        if (!cfg->muc_domain)
            cfg->muc_domain = xasprintf("conference.%s", cfg->domain);
        if (!cfg->upload_domain)
            cfg->upload_domain = xasprintf("upload.%s", cfg->domain);
        if (!cfg->upload_dir)
            cfg->upload_dir = xasprintf("%s/files", cfg->data_dir);
        if (!cfg->upload_url)
            cfg->upload_url = xasprintf("https://%s:%d", cfg->domain, cfg->https_port);
        char *abs = realpath(path, NULL);
        replace_str(&cfg->path, abs ? abs : xstrdup(path));
        rc = check_consistency(cfg, path, err, errlen);
    }
    free(dir);
    return rc;
}

/* ---- writing the default file ---- */

int config_write_default(const char *path, const char *domain, const char *dir, int c2s_port,
                         int tls_port, int https_port, char *err, size_t errlen)
{
    char *norm = domain ? jid_normalize(domain) : NULL;
    if (!norm || strchr(norm, '@') || strchr(norm, '/')) {
        free(norm);
        set_err(err, errlen, "invalid domain '%s'", domain ? domain : "(null)");
        return -1;
    }
    if (c2s_port < 0 || c2s_port > 65535 || tls_port < 0 || tls_port > 65535 ||
        https_port < 0 || https_port > 65535) {
        free(norm);
        set_err(err, errlen, "ports must be 0-65535");
        return -1;
    }

    /* Files named relative to the config's own directory stay valid if the whole
     * directory is moved; only when the certificates live elsewhere are they absolute. */
    char *cfg_dir = dir_of(path);
    char *prefix = xstrdup("");
    if (dir && *dir) {
        char *abs = realpath(dir, NULL);
        if (!abs || strcmp(abs, cfg_dir) != 0)
            replace_str(&prefix, xasprintf("%s/", abs ? abs : dir));
        free(abs);
    }
    free(cfg_dir);

    /* O_EXCL: an administrator's edited configuration is never overwritten. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        free(norm);
        free(prefix);
        return -1;
    }
    /* The mode argument is subject to the umask; make 0600 exact. */
    (void)fchmod(fd, 0600);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        free(norm);
        free(prefix);
        return -1;
    }

    fprintf(f,
            "# parleyd.conf - Parley server configuration (docs/configuration.md).\n"
            "# Syntax: key = value; '#' starts a comment; quote values with \"...\".\n"
            "# Relative paths are resolved against the directory of this file.\n"
            "\n"
            "# The XMPP domain this server is authoritative for (required).\n"
            "domain = %s\n"
            "\n"
            "# Address to listen on (use 0.0.0.0 or :: to listen on every interface).\n"
            "bind_address = %s\n"
            "# Client ports: STARTTLS (RFC 6120), direct TLS (XEP-0368), HTTPS file\n"
            "# transfer (XEP-0363). 0 disables a listener.\n"
            "c2s_port = %d\n"
            "tls_port = %d\n"
            "https_port = %d\n"
            "\n"
            "# Certificate chain and private key, PEM (required). RSA >= 2048 bits or\n"
            "# ECDSA P-256/P-384; weaker keys are refused at start-up.\n"
            "cert_file = %sserver.crt\n"
            "key_file = %sserver.key\n"
            "# The deployment's CA (verifies other nodes' certificates).\n"
            "ca_file = %sca.crt\n"
            "\n"
            "# Where the server keeps its data; the store defaults to\n"
            "# sqlite:<data_dir>/parley.db.\n"
            "data_dir = %sdata\n"
            "# store = sqlite:data/parley.db\n"
            "\n"
            "# Logging: to stderr unless log_file is set; level debug, info, warn or error.\n"
            "# log_file = parleyd.log\n"
            "log_level = info\n"
            "\n"
            "# Limits. Sizes take K or M suffixes.\n"
            "max_stanza_size = 256K\n"
            "max_output_buffer = 1M\n"
            "max_connections = %d\n"
            "# Offline messages kept per user (XEP-0160).\n"
            "offline_max = %d\n"
            "\n"
            "# Seconds from connect to authenticated, and of silence before a ping/close.\n"
            "handshake_timeout = %d\n"
            "idle_timeout = %d\n"
            "\n"
            "# Authentication: PBKDF2 iterations for new SCRAM credentials (>= 4096),\n"
            "# failed logins allowed per account or address per window (seconds),\n"
            "# and whether SASL PLAIN is offered (only ever inside TLS).\n"
            "scram_iterations = %u\n"
            "auth_fail_limit = %d\n"
            "auth_fail_window = %d\n"
            "allow_plain = yes\n"
            "\n"
            "# Answer software-version queries (XEP-0092) without version and OS.\n"
            "hide_version = no\n"
            "\n"
            "# The compliance archive (docs/compliance.md): every message is recorded in a\n"
            "# tamper-evident store before it is delivered. Defaults to\n"
            "# sqlite:<data_dir>/compliance.db; checkpoints are signed with key_file.\n"
            "compliance = yes\n"
            "# compliance_store = sqlite:data/compliance.db\n"
            "compliance_checkpoint_every = %d\n"
            "\n"
            "# Federation with other XMPP domains (docs/federation.md): server-to-server\n"
            "# links on s2s_port (5269 when unset). Off in a new configuration until you\n"
            "# publish the server in DNS and decide whom to federate with.\n"
            "s2s_port = 0\n",
            norm, DEFAULT_BIND, c2s_port, tls_port, https_port, prefix, prefix, prefix, prefix,
            DEFAULT_MAX_CONNECTIONS, DEFAULT_OFFLINE_MAX, DEFAULT_HANDSHAKE_TIMEOUT,
            DEFAULT_IDLE_TIMEOUT, (unsigned)DEFAULT_SCRAM_ITERATIONS,
            DEFAULT_AUTH_FAIL_LIMIT, DEFAULT_AUTH_FAIL_WINDOW, DEFAULT_CHECKPOINT_EVERY);
    free(norm);
    free(prefix);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        set_err(err, errlen, "%s: write failed: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}
