/* config_lists.c - the list-valued keys of parleyd.conf: domain lists (s2s_allow,
 * s2s_deny) and host maps (s2s_hosts, nodes: "name=host:port,..."). Values are checked
 * and normalised when the file is read, so lookups at run time cannot fail on syntax. */
#include "config.h"

#include "../common/buf.h"
#include "../common/jid.h"
#include "../common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest host name or address accepted in a host map (RFC 1035 names are 253). */
#define MAX_HOST 255

int config_parse_list(char **slot, const char *value, int with_hosts, const char *key,
                      char *why, size_t whylen);

/* One "host:port" (host may be "[v6]") into host and *port. 0 or -1. */
static int split_host_port(const char *s, size_t len, char *host, size_t hostlen, int *port)
{
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon || colon == s)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return -1;
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen || hl > MAX_HOST || memchr(h, ' ', hl))
        return -1;
    char num[8];
    size_t nl = len - (size_t)(colon + 1 - s);
    if (nl == 0 || nl >= sizeof num)
        return -1;
    memcpy(num, colon + 1, nl);
    num[nl] = '\0';
    char *end;
    errno = 0;
    long p = strtol(num, &end, 10);
    if (errno || *end || p < 1 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

int config_parse_list(char **slot, const char *value, int with_hosts, const char *key,
                      char *why, size_t whylen)
{
    buf out;
    buf_init(&out);
    const char *p = value;
    int n = 0;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", \t");
        char *item = xstrndup(p, len);
        char *shown = xstrndup(p, len);
        p += len;
        char *eq = with_hosts ? strchr(item, '=') : NULL;
        if (eq)
            *eq = '\0';
        char *dom = jid_normalize(item);
        char host[MAX_HOST + 1];
        int port = 0;
        int bad = !dom || strchr(dom, '@') || strchr(dom, '/');
        if (!bad && with_hosts)
            bad = !eq || split_host_port(eq + 1, strlen(eq + 1), host, sizeof host, &port) < 0;
        if (bad) {
            snprintf(why, whylen,
                     with_hosts ? "bad entry '%s' in '%s' (expected name=host:port, ...)"
                                : "bad domain '%s' in '%s' (expected domain, domain, ...)",
                     shown, key);
            free(shown);
            free(item);
            free(dom);
            buf_free(&out);
            return -1;
        }
        if (n++)
            buf_append_str(&out, ",");
        buf_append_str(&out, dom);
        if (with_hosts) {
            int v6 = strchr(host, ':') != NULL;
            buf_appendf(&out, "=%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
        }
        free(shown);
        free(item);
        free(dom);
    }
    if (n == 0) {
        snprintf(why, whylen, "empty list for '%s'", key);
        buf_free(&out);
        return -1;
    }
    free(*slot);
    *slot = buf_steal(&out);
    return 0;
}

/* Walk a normalised list ("a,b" or "a=h:p,b=h:p"): fn(ud, name, rest or NULL) until it
 * returns non-zero. */
static int walk(const char *list, int (*fn)(void *ud, const char *name, size_t nlen,
                                            const char *rest, size_t rlen),
                void *ud)
{
    const char *p = list;
    while (p && *p) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t)(eq - p) : len;
        int r = fn(ud, p, nlen, eq ? eq + 1 : NULL, eq ? len - nlen - 1 : 0);
        if (r)
            return r;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

typedef struct find_ctx {
    const char *name;
    char *host;
    size_t hostlen;
    int *port;
} find_ctx;

static int find_one(void *ud, const char *name, size_t nlen, const char *rest, size_t rlen)
{
    find_ctx *f = ud;
    if (strlen(f->name) != nlen || memcmp(f->name, name, nlen) != 0)
        return 0;
    if (!rest)
        return 1;
    return split_host_port(rest, rlen, f->host, f->hostlen, f->port) == 0 ? 1 : -1;
}

int config_host_lookup(const char *list, const char *name, char *host, size_t hostlen, int *port)
{
    char dummy[MAX_HOST + 1];
    int dport;
    find_ctx f = {name, host ? host : dummy, host ? hostlen : sizeof dummy, port ? port : &dport};
    return list && walk(list, find_one, &f) == 1 ? 0 : -1;
}

int config_domain_listed(const char *list, const char *domain)
{
    find_ctx f = {domain, NULL, 0, NULL};
    return list && domain && walk(list, find_one, &f) == 1;
}

typedef struct each_ctx {
    void (*fn)(void *ud, const char *name, const char *host, int port);
    void *ud;
} each_ctx;

static int each_one(void *ud, const char *name, size_t nlen, const char *rest, size_t rlen)
{
    each_ctx *e = ud;
    char host[MAX_HOST + 1];
    int port;
    if (!rest || split_host_port(rest, rlen, host, sizeof host, &port) < 0)
        return 0;
    char *n = xstrndup(name, nlen);
    e->fn(e->ud, n, host, port);
    free(n);
    return 0;
}

void config_each_host(const char *list,
                      void (*fn)(void *ud, const char *name, const char *host, int port),
                      void *ud)
{
    each_ctx e = {fn, ud};
    if (list)
        walk(list, each_one, &e);
}
