/* match.c - keyword and regular-expression search in message text, and redaction
 * (see match.h for the matching rules). */
#include "match.h"

#include "../common/buf.h"
#include "../common/util.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

/* Stands for "one or more white space characters" inside a compiled keyword; above the
 * Unicode range, so no text code point can equal it. */
#define KW_SPACE 0xFFFFFFFFu
#define REPLACEMENT_CHAR 0xFFFDu

/* Case folding and character classes from C.UTF-8, whatever the process locale is: a
 * keyword must match the same way under any LANG. Created once, kept for the process. */
static locale_t utf8_locale(void)
{
    static int tried;
    static locale_t loc = (locale_t)0;
    if (!tried) {
        tried = 1;
        loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    return loc;
}

static uint32_t fold_cp(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    locale_t loc = utf8_locale();
    return loc ? (uint32_t)towlower_l((wint_t)c, loc) : c;
}

static int is_word_cp(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    if (c == KW_SPACE)
        return 0;
    locale_t loc = utf8_locale();
    /* Without the locale, any non-ASCII character counts as part of a word: a keyword
     * then matches less often rather than inside foreign words. */
    return loc ? iswalnum_l((wint_t)c, loc) != 0 : 1;
}

static int is_space_cp(uint32_t c)
{
    if (c < 0x80)
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    locale_t loc = utf8_locale();
    return loc ? iswspace_l((wint_t)c, loc) != 0 : 0;
}

/* Decode one UTF-8 character at s[i] (i < len); returns its length (>= 1). Malformed
 * sequences decode as U+FFFD one byte at a time. */
static size_t decode_utf8(const unsigned char *s, size_t len, size_t i, uint32_t *cp)
{
    unsigned char b = s[i];
    size_t need;
    uint32_t c, min;
    if (b < 0x80) {
        *cp = b;
        return 1;
    } else if ((b & 0xE0) == 0xC0) {
        need = 1, c = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
        need = 2, c = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
        need = 3, c = b & 0x07, min = 0x10000;
    } else {
        *cp = REPLACEMENT_CHAR;
        return 1;
    }
    if (i + need >= len) { /* truncated at the end of the text */
        *cp = REPLACEMENT_CHAR;
        return 1;
    }
    for (size_t k = 1; k <= need; k++) {
        if ((s[i + k] & 0xC0) != 0x80) {
            *cp = REPLACEMENT_CHAR;
            return 1;
        }
        c = (c << 6) | (s[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        *cp = REPLACEMENT_CHAR;
        return 1;
    }
    *cp = c;
    return need + 1;
}

void fold_text(const char *s, size_t len, folded *out)
{
    /* At most one code point per byte. */
    out->cp = xmalloc((len + 1) * sizeof *out->cp);
    out->off = xmalloc((len + 1) * sizeof *out->off);
    out->n = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t step = decode_utf8(u, len, i, &c);
        out->cp[out->n] = fold_cp(c);
        out->off[out->n] = i;
        out->n++;
        i += step;
    }
    out->off[out->n] = len;
}

void folded_free(folded *f)
{
    free(f->cp);
    free(f->off);
    memset(f, 0, sizeof *f);
}

int keyword_compile(const char *text, uint32_t **kw, size_t *kwlen)
{
    folded f;
    fold_text(text, strlen(text), &f);
    uint32_t *k = xmalloc((f.n + 1) * sizeof *k);
    size_t n = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (is_space_cp(f.cp[i])) {
            if (n > 0 && k[n - 1] != KW_SPACE)
                k[n++] = KW_SPACE;
        } else {
            k[n++] = f.cp[i];
        }
    }
    if (n > 0 && k[n - 1] == KW_SPACE)
        n--;
    folded_free(&f);
    if (n == 0) {
        free(k);
        return -1;
    }
    *kw = k;
    *kwlen = n;
    return 0;
}

/* Does kw match f at code point i? Returns the code point index after the match, or
 * (size_t)-1. */
static size_t match_at(const folded *f, const uint32_t *kw, size_t kwlen, size_t i)
{
    size_t j = i;
    for (size_t k = 0; k < kwlen; k++) {
        if (kw[k] == KW_SPACE) {
            if (j >= f->n || !is_space_cp(f->cp[j]))
                return (size_t)-1;
            while (j < f->n && is_space_cp(f->cp[j]))
                j++;
        } else {
            if (j >= f->n || f->cp[j] != kw[k])
                return (size_t)-1;
            j++;
        }
    }
    return j;
}

int keyword_find(const folded *f, const uint32_t *kw, size_t kwlen, size_t from, size_t *start,
                 size_t *end)
{
    /* Word boundaries matter only where the keyword itself begins or ends with a word
     * character: "$AAPL" matches in "buy$AAPL", "insider" does not in "insiders". */
    int word_start = is_word_cp(kw[0]);
    int word_end = is_word_cp(kw[kwlen - 1]);
    for (size_t i = from; i < f->n; i++) {
        if (f->cp[i] != kw[0])
            continue;
        if (word_start && i > 0 && is_word_cp(f->cp[i - 1]))
            continue;
        size_t j = match_at(f, kw, kwlen, i);
        if (j == (size_t)-1)
            continue;
        if (word_end && j < f->n && is_word_cp(f->cp[j]))
            continue;
        *start = i;
        *end = j;
        return 1;
    }
    return 0;
}

static size_t next_char(const char *s, size_t len, size_t i)
{
    i++;
    while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

int regex_find(const regex_t *re, const char *s, size_t len, size_t from, size_t *start,
               size_t *end)
{
    while (from < len) {
        /* REG_STARTEND searches from 'from' while ^ and \< still see the whole string. */
        regmatch_t m[1];
        m[0].rm_so = (regoff_t)from;
        m[0].rm_eo = (regoff_t)len;
        int rc = regexec(re, s, 1, m, REG_STARTEND);
        if (rc == REG_NOMATCH)
            return 0;
        if (rc != 0)
            return -1;
        size_t so = (size_t)m[0].rm_so, eo = (size_t)m[0].rm_eo;
        if (eo > so) {
            while (so > 0 && ((unsigned char)s[so] & 0xC0) == 0x80)
                so--;
            while (eo < len && ((unsigned char)s[eo] & 0xC0) == 0x80)
                eo++;
            *start = so;
            *end = eo;
            return 1;
        }
        /* An empty match ("x*") matches nothing worth judging: look further on. */
        from = next_char(s, len, so);
    }
    return 0;
}

char *redact_spans(const char *s, size_t len, const span *spans, size_t nspans,
                   const char *repl, size_t max)
{
    buf b;
    buf_init(&b);
    size_t rlen = strlen(repl), pos = 0;
    for (size_t i = 0; i < nspans; i++) {
        size_t keep = spans[i].start - pos;
        if (b.len + keep + rlen > max) {
            buf_free(&b);
            return NULL;
        }
        buf_append(&b, s + pos, keep);
        buf_append(&b, repl, rlen);
        pos = spans[i].end;
    }
    if (b.len + (len - pos) > max) {
        buf_free(&b);
        return NULL;
    }
    buf_append(&b, s + pos, len - pos);
    return buf_steal(&b);
}
