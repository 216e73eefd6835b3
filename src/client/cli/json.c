/* json.c - JSON string escaping for the parley command's JSON lines output. */
#include "json.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not valid (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
            return 0;
        return 4;
    }
    return 0;
}

void json_append_string(buf *out, const char *s)
{
    if (!s) {
        buf_append_str(out, "null");
        return;
    }
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    buf_append_str(out, "\"");
    while (*p) {
        unsigned char c = *p;
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default: break;
        }
        if (esc) {
            buf_append_str(out, esc);
            p++;
        } else if (c < 0x20 || c == 0x7F) {
            char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
            buf_append_str(out, u);
            p++;
        } else if (c < 0x80) {
            buf_append(out, p, 1);
            p++;
        } else {
            size_t n = utf8_seq(p);
            if (n == 0) {
                buf_append_str(out, "\\ufffd");
                p++;
            } else if (n == 3 && p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
                buf_append_str(out, p[2] == 0xA8 ? "\\u2028" : "\\u2029");
                p += 3;
            } else {
                buf_append(out, p, n);
                p += n;
            }
        }
    }
    buf_append_str(out, "\"");
}

static void key(buf *out, const char *k, int first)
{
    if (!first)
        buf_append_str(out, ",");
    json_append_string(out, k);
    buf_append_str(out, ":");
}

void json_kv_string(buf *out, const char *k, const char *value, int first)
{
    key(out, k, first);
    json_append_string(out, value);
}

void json_kv_bool(buf *out, const char *k, int value, int first)
{
    key(out, k, first);
    buf_append_str(out, value ? "true" : "false");
}

void json_kv_int(buf *out, const char *k, long value, int first)
{
    key(out, k, first);
    buf_appendf(out, "%ld", value);
}
