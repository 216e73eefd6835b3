/* jid.c - XMPP addresses (RFC 7622): split, validate and normalise.
 *
 * The localpart goes through nodeprep, the domain through nameprep, the resource
 * through resourceprep (libidn's stringprep profiles, which is what deployed XMPP
 * servers compare with). Every part is limited to 1023 bytes before and after
 * preparation; all work happens in fixed 1024-byte buffers. */
#include "jid.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

#define JID_PART_MAX 1023
#define JID_WORK_BUF (JID_PART_MAX + 1)

/* Strict UTF-8 check (no overlongs, no surrogates, nothing above U+10FFFF, no NUL):
 * stringprep assumes well-formed input and we do not want to depend on how a given
 * libidn version reacts to garbage. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t extra;
        unsigned min;
        unsigned cp;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= extra)
            return 0;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += extra + 1;
    }
    return 1;
}

enum part_kind { PART_LOCAL, PART_DOMAIN, PART_RESOURCE };

/* Printable ASCII is the common case, and there the three profiles reduce to simple
 * rules: no mapping except case folding (nodeprep, nameprep), NFKC is the identity,
 * and only controls, space (nodeprep, nameprep) and nodeprep's extra characters
 * "&'/:<>@ are prohibited. Handling it here keeps stringprep off the per-stanza path.
 * Returns 1 if handled (0 or -1 in *rc), 0 if the part needs the full profile. */
static int prep_ascii(enum part_kind kind, const char *s, size_t n, char *work, int *rc)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80)
            return 0;
        if (c < 0x20 || c == 0x7f || (c == ' ' && kind != PART_RESOURCE) ||
            (kind == PART_LOCAL && strchr("\"&'/:<>@", c))) {
            *rc = -1;
            return 1;
        }
        work[i] = kind != PART_RESOURCE && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : (char)c;
    }
    work[n] = '\0';
    *rc = 0;
    return 1;
}

/* Prepare n bytes of s with the profile for kind into work (JID_WORK_BUF bytes).
 * Returns 0, or -1 if the part is empty, too long or prohibited by the profile. */
static int prep_part(enum part_kind kind, const char *s, size_t n, char work[JID_WORK_BUF])
{
    if (n == 0 || n > JID_PART_MAX || !utf8_valid((const unsigned char *)s, n))
        return -1;
    int rc;
    if (prep_ascii(kind, s, n, work, &rc))
        return rc;
    memcpy(work, s, n);
    work[n] = '\0';
    switch (kind) {
    case PART_LOCAL:
        rc = stringprep_xmpp_nodeprep(work, JID_WORK_BUF);
        break;
    case PART_DOMAIN:
        rc = stringprep_nameprep(work, JID_WORK_BUF);
        break;
    default:
        rc = stringprep_xmpp_resourceprep(work, JID_WORK_BUF);
        break;
    }
    /* A part can map to nothing (e.g. only U+00AD SOFT HYPHEN): that is empty too. */
    if (rc != STRINGPREP_OK || work[0] == '\0')
        return -1;
    return 0;
}

/* Domain rules beyond nameprep: an IP literal, or dot-separated labels with no empty
 * label whose ASCII characters are letters, digits or '-' (RFC 7622 3.2 defers to
 * IDNA2008/RFC 5890; non-ASCII characters were already vetted by nameprep). */
static int domain_normalise(const char *s, size_t n, char work[JID_WORK_BUF])
{
    if (n > 0 && s[0] == '[') {
        /* IPv6 literal: canonicalise through inet_pton/inet_ntop so that "[::1]" and
         * "[0:0::1]" compare equal. */
        char addr[INET6_ADDRSTRLEN + 1];
        struct in6_addr in6;
        if (n < 3 || s[n - 1] != ']' || n - 2 > INET6_ADDRSTRLEN)
            return -1;
        memcpy(addr, s + 1, n - 2);
        addr[n - 2] = '\0';
        if (inet_pton(AF_INET6, addr, &in6) != 1 || !inet_ntop(AF_INET6, &in6, addr, sizeof addr))
            return -1;
        size_t alen = strlen(addr);
        work[0] = '[';
        memcpy(work + 1, addr, alen);
        work[alen + 1] = ']';
        work[alen + 2] = '\0';
        return 0;
    }
    /* RFC 7622 3.2: a trailing dot (fully qualified DNS name) is not part of the JID. */
    if (n > 0 && s[n - 1] == '.')
        n--;
    if (prep_part(PART_DOMAIN, s, n, work) < 0)
        return -1;
    size_t label = 0;
    for (const unsigned char *p = (const unsigned char *)work; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return -1;
            label = 0;
            continue;
        }
        if (*p < 0x80 && !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return -1;
        label++;
    }
    return label == 0 ? -1 : 0;
}

int jid_parse(const char *s, jid *out)
{
    char work[JID_WORK_BUF];
    memset(out, 0, sizeof *out);
    if (!s)
        return -1;
    /* The resource is everything after the first '/', and may itself contain '@' and
     * '/'; the localpart is what precedes the first '@' of the rest (RFC 7622 3.1). */
    size_t total = strlen(s);
    const char *slash = memchr(s, '/', total);
    size_t bare_len = slash ? (size_t)(slash - s) : total;
    const char *at = memchr(s, '@', bare_len);
    const char *dom = at ? at + 1 : s;
    size_t dom_len = bare_len - (size_t)(dom - s);

    if (at) {
        if (prep_part(PART_LOCAL, s, (size_t)(at - s), work) < 0)
            goto fail;
        out->local = xstrdup(work);
    }
    if (domain_normalise(dom, dom_len, work) < 0)
        goto fail;
    out->domain = xstrdup(work);
    if (slash) {
        if (prep_part(PART_RESOURCE, slash + 1, total - bare_len - 1, work) < 0)
            goto fail;
        out->resource = xstrdup(work);
    }
    return 0;
fail:
    jid_clear(out);
    return -1;
}

void jid_clear(jid *j)
{
    if (!j)
        return;
    free(j->local);
    free(j->domain);
    free(j->resource);
    j->local = j->domain = j->resource = NULL;
}

char *jid_bare(const jid *j)
{
    if (j->local)
        return xasprintf("%s@%s", j->local, j->domain);
    return xstrdup(j->domain);
}

char *jid_full(const jid *j)
{
    if (!j->resource)
        return jid_bare(j);
    if (j->local)
        return xasprintf("%s@%s/%s", j->local, j->domain, j->resource);
    return xasprintf("%s/%s", j->domain, j->resource);
}

char *jid_normalize(const char *s)
{
    jid j;
    if (jid_parse(s, &j) < 0)
        return NULL;
    char *r = jid_full(&j);
    jid_clear(&j);
    return r;
}

char *jid_normalize_bare(const char *s)
{
    jid j;
    if (jid_parse(s, &j) < 0)
        return NULL;
    char *r = jid_bare(&j);
    jid_clear(&j);
    return r;
}

char *jid_normalize_resource(const char *s)
{
    char work[JID_WORK_BUF];
    if (!s || prep_part(PART_RESOURCE, s, strlen(s), work) < 0)
        return NULL;
    return xstrdup(work);
}

char *jid_normalize_local(const char *s)
{
    char work[JID_WORK_BUF];
    if (!s || prep_part(PART_LOCAL, s, strlen(s), work) < 0)
        return NULL;
    return xstrdup(work);
}
