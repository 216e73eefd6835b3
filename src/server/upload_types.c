/* upload_types.c - type lists of the upload policies and file name sanitising (see
 * upload_types.h). */
#include "upload_types.h"
#include "../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_MAX_BYTES 200

/* What content of each extension is sniffed as (libmagic's names), for the types a
 * policy is likely to name. An extension not listed matches by name only. */
static const struct {
    const char *ext;
    const char *media;
} ext_media[] = {
    {"exe", "application/x-dosexec"},
    {"exe", "application/vnd.microsoft.portable-executable"},
    {"dll", "application/x-dosexec"},
    {"dll", "application/vnd.microsoft.portable-executable"},
    {"com", "application/x-dosexec"},
    {"scr", "application/x-dosexec"},
    {"msi", "application/x-msi"},
    {"elf", "application/x-executable"},
    {"elf", "application/x-pie-executable"},
    {"elf", "application/x-sharedlib"},
    {"so", "application/x-sharedlib"},
    {"sh", "text/x-shellscript"},
    {"bat", "text/x-msdos-batch"},
    {"js", "application/javascript"},
    {"js", "text/javascript"},
    {"jar", "application/java-archive"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"7z", "application/x-7z-compressed"},
    {"rar", "application/x-rar"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"bmp", "image/bmp"},
    {"svg", "image/svg+xml"},
    {"html", "text/html"},
    {"htm", "text/html"},
    {"txt", "text/plain"},
    {"csv", "text/csv"},
    {"csv", "text/plain"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"mp4", "video/mp4"},
    {"mp3", "audio/mpeg"},
};

/* The extension of name (after the last '.'), or NULL. */
static const char *extension(const char *name)
{
    if (!name)
        return NULL;
    const char *dot = strrchr(name, '.');
    return dot && dot[1] && dot != name ? dot + 1 : NULL;
}

static int media_matches(const char *pattern, const char *media)
{
    size_t plen = strlen(pattern);
    if (plen >= 2 && strcmp(pattern + plen - 2, "/*") == 0)
        return strncasecmp(pattern, media, plen - 1) == 0;
    size_t mlen = strcspn(media, "; "); /* parameters (charset) do not count */
    return strlen(pattern) == mlen && strncasecmp(pattern, media, mlen) == 0;
}

static int entry_matches(const char *entry, const char *name, const char *media)
{
    if (strcmp(entry, "*") == 0 || strcmp(entry, "*/*") == 0)
        return 1;
    if (strchr(entry, '/'))
        return media && media_matches(entry, media);
    if (entry[0] == '.')
        entry++;
    if (!*entry)
        return 0;
    const char *ext = extension(name);
    if (ext && strcasecmp(ext, entry) == 0)
        return 1;
    for (size_t i = 0; media && i < ARRAY_LEN(ext_media); i++)
        if (strcasecmp(ext_media[i].ext, entry) == 0 && media_matches(ext_media[i].media, media))
            return 1;
    return 0;
}

int types_ext_known(const char *ext)
{
    if (ext[0] == '.')
        ext++;
    for (size_t i = 0; i < ARRAY_LEN(ext_media); i++)
        if (strcasecmp(ext_media[i].ext, ext) == 0)
            return 1;
    return strchr(ext, '/') != NULL;
}

int types_match(const char *list, const char *name, const char *media_type, char *hit,
                size_t hitlen)
{
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        char entry[128];
        if (n < sizeof entry) {
            memcpy(entry, p, n);
            entry[n] = '\0';
            if (entry_matches(entry, name, media_type)) {
                if (hit && hitlen)
                    snprintf(hit, hitlen, "%s", entry);
                return 1;
            }
        }
        p += n;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (n == 2 && s[0] < 0xC2) || (n == 4 && s[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (n == 3 && s[0] == 0xE0 && s[1] < 0xA0)
        return 0; /* overlong */
    if (n == 3 && s[0] == 0xED && s[1] >= 0xA0)
        return 0; /* surrogate */
    if (n == 4 && s[0] == 0xF0 && s[1] < 0x90)
        return 0;
    if (n == 4 && s[0] == 0xF4 && s[1] >= 0x90)
        return 0;
    return n;
}

char *types_sanitize_name(const char *name)
{
    const char *base = name ? name : "";
    for (const char *p = base; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    char *out = xmalloc(NAME_MAX_BYTES + 1);
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)base;
    while (*s == '.' || *s == ' ')
        s++; /* no hidden files, no "..", no leading blanks */
    while (*s) {
        size_t n = utf8_len(s);
        if (n == 0) {
            s++;
            continue;
        }
        unsigned char ch = s[0];
        int bad = n == 1 && (ch < 0x20 || ch == 0x7f || ch == '"' || ch == ';' || ch == '%' ||
                             ch == '<' || ch == '>' || ch == '*' || ch == '?' || ch == '|' ||
                             ch == ':');
        /* U+0080..U+009F controls, and the bidi overrides that disguise extensions */
        if (n == 2 && s[0] == 0xC2 && s[1] < 0xA0)
            bad = 1;
        if (n == 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] >= 0xAA && s[2] <= 0xAE))
            bad = 1;
        if (n == 3 && s[0] == 0xE2 && s[1] == 0x81 && (s[2] >= 0xA6 && s[2] <= 0xA9))
            bad = 1;
        if (o + (bad ? 1 : n) > NAME_MAX_BYTES)
            break;
        if (bad)
            out[o++] = '_';
        else {
            memcpy(out + o, s, n);
            o += n;
        }
        s += n;
    }
    while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '.'))
        o--;
    out[o] = '\0';
    if (o == 0) {
        free(out);
        return xstrdup("file");
    }
    return out;
}

int types_valid_media_type(const char *s)
{
    if (!s || strlen(s) > 127)
        return 0;
    int slash = 0;
    size_t i = 0;
    for (; s[i] && s[i] != ';'; i++) {
        char c = s[i];
        if (c == '/') {
            if (slash++ || i == 0)
                return 0;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     strchr("!#$&^_.+-", c))) {
            return 0;
        }
    }
    return slash == 1 && i > 0 && s[i - 1] != '/';
}
