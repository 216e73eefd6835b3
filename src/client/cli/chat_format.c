/* chat_format.c - pure text formatting for the terminal client (see chat_format.h). */
#include "chat_format.h"
#include "../../common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

void fmt_tls_lock(char *out, size_t len, const char *tls_version, int utf8)
{
    if (!tls_version || !*tls_version) {
        snprintf(out, len, "[no connection]");
        return;
    }
    /* "TLSv1.3" -> "TLS1.3": shorter, and how people say it */
    char v[24];
    size_t j = 0;
    for (size_t i = 0; tls_version[i] && j + 1 < sizeof v; i++)
        if (!(tls_version[i] == 'v' && i > 0 && isupper((unsigned char)tls_version[i - 1])))
            v[j++] = tls_version[i];
    v[j] = '\0';
    snprintf(out, len, "[%s %s]", v, utf8 ? "\xF0\x9F\x94\x92" /* 🔒 */ : "*locked*");
}

const char *fmt_e2e_mark(int encrypted, int utf8)
{
    if (utf8)
        return encrypted ? "\xF0\x9F\x94\x90" /* 🔐 */ : "  ";
    return encrypted ? "[E2E]" : "     ";
}

void fmt_message(char *out, size_t len, time_t ts, const char *who, const char *body,
                 int encrypted, int utf8)
{
    struct tm tm;
    char hm[8] = "--:--";
    if (localtime_r(&ts, &tm))
        strftime(hm, sizeof hm, "%H:%M", &tm);
    snprintf(out, len, "%s %s <%s> %s", hm, fmt_e2e_mark(encrypted, utf8), who ? who : "?",
             body ? body : "");
}

void fmt_conv_header(char *out, size_t len, int n, const char *jid, const char *presence,
                     int encrypted, int utf8)
{
    const char *e2e = encrypted ? (utf8 ? "\xF0\x9F\x94\x90 end-to-end encrypted"
                                        : "[E2E] end-to-end encrypted")
                                : "[server-readable] not end-to-end encrypted";
    snprintf(out, len, "[%d] %s (%s) %s", n, jid, presence ? presence : "offline", e2e);
}

const char *fmt_aead_name(const char *cipher)
{
    if (!cipher)
        return "unknown";
    if (strstr(cipher, "AES_256_GCM") || strstr(cipher, "AES256-GCM"))
        return "AES-256-GCM";
    if (strstr(cipher, "AES_128_GCM") || strstr(cipher, "AES128-GCM"))
        return "AES-128-GCM";
    if (strstr(cipher, "CHACHA20"))
        return "ChaCha20-Poly1305";
    if (strstr(cipher, "CCM"))
        return "AES-CCM";
    return "unknown";
}

const char *fmt_presence(int available, const char *show)
{
    if (!available)
        return "offline";
    if (!show || !strcmp(show, "chat"))
        return "online";
    if (!strcmp(show, "away"))
        return "away";
    if (!strcmp(show, "dnd"))
        return "dnd";
    if (!strcmp(show, "xa"))
        return "xa";
    return "online";
}

/* Decode one UTF-8 character at s (n bytes available): its length, or 0 if invalid
 * (overlong forms, surrogates and values past U+10FFFF are invalid). */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    unsigned c, min;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2, c = s[0] & 0x1F, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, c = s[0] & 0x0F, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

static int cp_width(unsigned cp)
{
    int w = wcwidth((wchar_t)cp);
    return w < 0 ? 1 : w; /* unknown in this locale: assume one column */
}

int fmt_width(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    int w = 0;
    while (n) {
        unsigned cp;
        size_t l = utf8_decode(p, n, &cp);
        if (!l) {
            l = 1;
            cp = '?';
        }
        w += cp_width(cp);
        p += l;
        n -= l;
    }
    return w;
}

size_t fmt_fit(const char *s, int cols)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), used = 0;
    int w = 0;
    while (used < n) {
        unsigned cp;
        size_t l = utf8_decode(p + used, n - used, &cp);
        if (!l)
            l = 1, cp = '?';
        int cw = cp_width(cp);
        if (w + cw > cols)
            break;
        w += cw;
        used += l;
    }
    return used;
}

char *fmt_sanitize(const char *s, int utf8, int keep_newlines)
{
    if (!s)
        return xstrdup("");
    size_t n = strlen(s);
    char *out = xmalloc(n + 1), *o = out;
    const unsigned char *p = (const unsigned char *)s;
    while (n) {
        unsigned cp;
        size_t l = utf8_decode(p, n, &cp);
        if (!l) {
            *o++ = '?'; /* invalid byte */
            p++;
            n--;
            continue;
        }
        if (cp == '\n')
            *o++ = keep_newlines ? '\n' : ' ';
        else if (cp == '\t')
            *o++ = ' ';
        else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F))
            *o++ = '?'; /* would be a terminal escape or control */
        else if ((cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
                 cp == 0x200E || cp == 0x200F)
            *o++ = '?'; /* bidi overrides could make one message look like another */
        else if (cp >= 0x80 && !utf8)
            *o++ = '?';
        else {
            memcpy(o, p, l);
            o += l;
        }
        p += l;
        n -= l;
    }
    *o = '\0';
    return out;
}

int fmt_wrap(const char *s, int width, void (*fn)(const char *line, size_t n, void *ud),
             void *ud)
{
    if (width < 1)
        width = 1;
    int lines = 0;
    const char *line = s;
    for (;;) {
        /* Walk one display line: up to width columns, a newline or the end. */
        const char *p = line, *brk = NULL;
        int w = 0;
        size_t left = strlen(line);
        while (*p && *p != '\n') {
            unsigned cp;
            size_t l = utf8_decode((const unsigned char *)p, left, &cp);
            if (!l)
                l = 1, cp = '?';
            int cw = cp_width(cp);
            if (w + cw > width)
                break;
            if (cp == ' ')
                brk = p;
            w += cw;
            p += l;
            left -= l;
        }
        const char *end = p, *next = p;
        if (*p == '\n') {
            next = p + 1;
        } else if (*p) {
            if (brk && brk > line) { /* break at the last space, dropping it */
                end = brk;
                next = brk + 1;
            } else if (p == line) { /* one character wider than the line */
                unsigned cp;
                size_t l = utf8_decode((const unsigned char *)p, left, &cp);
                end = next = p + (l ? l : 1);
            }
        }
        fn(line, (size_t)(end - line), ud);
        lines++;
        if (!*next) /* the end (a trailing newline makes no empty last line) */
            break;
        line = next;
    }
    return lines;
}

int fmt_command(const char *line, char *name, size_t nlen, const char **args)
{
    if (line[0] != '/' || line[1] == '/') {
        *args = line[0] == '/' ? line + 1 : line;
        if (nlen)
            name[0] = '\0';
        return 0;
    }
    const char *p = line + 1;
    size_t i = 0;
    while (*p && !isspace((unsigned char)*p)) {
        if (i + 1 < nlen)
            name[i++] = (char)tolower((unsigned char)*p);
        p++;
    }
    if (nlen)
        name[i] = '\0';
    while (isspace((unsigned char)*p))
        p++;
    *args = p;
    return 1;
}

int fmt_next_word(const char **p, char *out, size_t len)
{
    const char *s = *p;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s) {
        *p = s;
        if (len)
            out[0] = '\0';
        return 0;
    }
    size_t i = 0;
    while (*s && !isspace((unsigned char)*s)) {
        if (i + 1 < len)
            out[i++] = *s;
        s++;
    }
    if (len)
        out[i] = '\0';
    while (isspace((unsigned char)*s))
        s++;
    *p = s;
    return 1;
}

void fmt_roster_entry(char *out, size_t len, int width, const char *name,
                      const char *presence, int unread)
{
    char tail[48];
    if (unread > 0)
        snprintf(tail, sizeof tail, " %s (%d)", presence, unread);
    else
        snprintf(tail, sizeof tail, " %s", presence);
    int room = width - (int)strlen(tail);
    if (room < 2)
        room = 2;
    /* Copy as much of the name as fits in room columns, marking a cut with "~". */
    const char *p = name;
    size_t left = strlen(name), o = 0;
    int w = 0, total = fmt_width(name);
    int limit = total <= room ? room : room - 1;
    while (left && o + 5 < len) {
        unsigned cp;
        size_t l = utf8_decode((const unsigned char *)p, left, &cp);
        if (!l)
            l = 1;
        int cw = cp_width(l == 1 ? (unsigned char)*p : cp);
        if (w + cw > limit)
            break;
        memcpy(out + o, p, l);
        o += l, w += cw, p += l, left -= l;
    }
    if (total > room && o + 1 < len)
        out[o++] = '~';
    out[o] = '\0';
    snprintf(out + o, len - o, "%s", tail);
}

void fmt_room_header(char *out, size_t len, int n, const char *room, const char *nick,
                     size_t occupants, const char *subject)
{
    char who[200];
    if (nick)
        snprintf(who, sizeof who, "%zu occupant%s, you are %s", occupants,
                 occupants == 1 ? "" : "s", nick);
    else
        snprintf(who, sizeof who, "not joined");
    /* the room first, then what protects it: readable by the server, like every room */
    snprintf(out, len, "[%d] %s [server-readable] group chat | %s%s%s", n, room, who,
             subject && *subject ? " | topic: " : "", subject ? subject : "");
}

void fmt_carbon_who(char *out, size_t len, int sent, const char *sender, int utf8)
{
    if (sent)
        snprintf(out, len, "me (other device)");
    else
        snprintf(out, len, "%s %s (other device)", sender ? sender : "?",
                 utf8 ? "\xE2\x86\x92" /* → */ : "->");
}
