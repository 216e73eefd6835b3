/* match.h - finding rule patterns in message text and redacting them.
 *
 * Keywords match whole words, case-insensitively, on Unicode code points folded with the
 * C.UTF-8 locale's towlower (ASCII only if that locale is missing); a space in a keyword
 * matches any run of white space. Regular expressions are POSIX extended (regcomp), run
 * on the raw UTF-8 text. Every span found is widened to whole UTF-8 characters, so a
 * redacted body is always valid UTF-8. */
#ifndef PC_MATCH_H
#define PC_MATCH_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

/* A text as folded code points; off[i] is the byte offset of code point i, off[n] the
 * text's length. */
typedef struct folded {
    uint32_t *cp;
    size_t *off;
    size_t n;
} folded;

void fold_text(const char *s, size_t len, folded *out);
void folded_free(folded *f);

/* A keyword compiled for matching: folded code points, white space runs collapsed to one
 * marker. Returns 0, or -1 if nothing but white space is left. */
int keyword_compile(const char *text, uint32_t **kw, size_t *kwlen);
/* The first whole-word occurrence of kw in f at or after code point from: 1 with its
 * code point span [*start, *end) (bytes: f->off[*start] to f->off[*end]), or 0. */
int keyword_find(const folded *f, const uint32_t *kw, size_t kwlen, size_t from, size_t *start,
                 size_t *end);

/* The first non-empty match of re in s[0..len) starting at byte from (s NUL-terminated
 * at len): 1 with its span widened to whole UTF-8 characters, 0 if none, -1 if regexec
 * failed (out of memory). */
int regex_find(const regex_t *re, const char *s, size_t len, size_t from, size_t *start,
               size_t *end);

/* A byte span of a text. */
typedef struct span {
    size_t start, end;
} span;

/* s with every span (sorted, not overlapping) replaced by repl, freshly allocated; NULL
 * if the result would exceed max bytes. */
char *redact_spans(const char *s, size_t len, const span *spans, size_t nspans,
                   const char *repl, size_t max);

#endif
