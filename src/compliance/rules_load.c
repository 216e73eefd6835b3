/* rules_load.c - building a rule set from the config file's rule lines (the grammar is
 * documented in docs/parley-compliance.md). Every mistake is refused with a reason; the
 * config reader adds the file and line. Patterns are compiled here, once, so a bad
 * regular expression is a load error and never a surprise at evaluation time. */
#include "rules_internal.h"

#include "../common/jid.h"
#include "../common/util.h"
#include "match.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_NAME 64
#define MAX_EXT 32
#define MAX_MIME 127
#define MAX_REPLACEMENT 256
#define DEFAULT_REPLACEMENT "[redacted]"

static int fail(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

rules *rules_new(void)
{
    return xcalloc(1, sizeof(rules));
}

static void head_clear(rule_head *h)
{
    free(h->reason);
    free(h->replacement);
    free(h->from);
    free(h->label);
}

void rules_free(rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->ngroups; i++) {
        for (size_t m = 0; m < r->groups[i].nmembers; m++)
            free(r->groups[i].members[m]);
        free(r->groups[i].members);
        free(r->groups[i].name);
    }
    free(r->groups);
    for (size_t i = 0; i < r->nwalls; i++) {
        free(r->walls[i].a);
        free(r->walls[i].b);
    }
    free(r->walls);
    for (size_t i = 0; i < r->ncontent; i++) {
        head_clear(&r->content[i].h);
        free(r->content[i].kw);
        if (r->content[i].has_re)
            regfree(&r->content[i].re);
    }
    free(r->content);
    for (size_t i = 0; i < r->nfiles; i++) {
        head_clear(&r->files[i].h);
        for (size_t k = 0; k < r->files[i].nitems; k++)
            free(r->files[i].items[k]);
        free(r->files[i].items);
    }
    free(r->files);
    free(r->disclaimer);
    free(r);
}

int rules_group_index(const rules *r, const char *name)
{
    for (size_t i = 0; i < r->ngroups; i++)
        if (strcmp(r->groups[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rules_in_group(const rules *r, int g, const char *bare)
{
    if (g < 0 || (size_t)g >= r->ngroups || !bare)
        return 0;
    const group *gr = &r->groups[g];
    return bsearch(&bare, gr->members, gr->nmembers, sizeof *gr->members, cmp_str) != NULL;
}

/* ---- settings ---- */

/* Digits with an optional K, M or G suffix (binary multiples), > 0. */
static int parse_size(const char *s, uint64_t *out)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0)
        return -1;
    uint64_t mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1024ull * 1024 * 1024, end++;
    if (*end || v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

int rules_setting(rules *r, const char *key, const char *value, char *why, size_t whylen)
{
    if (strcmp(key, "disclaimer") == 0) {
        size_t n = strlen(value);
        if (n == 0 || n > RULES_MAX_DISCLAIMER)
            return fail(why, whylen, "disclaimer must be 1 to %d bytes", RULES_MAX_DISCLAIMER);
        free(r->disclaimer);
        r->disclaimer = xstrdup(value);
        return 1;
    }
    if (strcmp(key, "file_max_size") == 0) {
        if (parse_size(value, &r->file_max_size) < 0)
            return fail(why, whylen, "bad size '%s' for file_max_size (bytes > 0, optional "
                                     "K, M or G suffix)", value);
        return 1;
    }
    if (strcmp(key, "file_screen_capture") == 0) {
        if (strcasecmp(value, "allow") == 0)
            r->screen_capture_block = 0;
        else if (strcasecmp(value, "block") == 0)
            r->screen_capture_block = 1;
        else
            return fail(why, whylen, "bad value '%s' for file_screen_capture (allow or block)",
                        value);
        return 1;
    }
    return 0;
}

/* ---- rule lines ---- */

static int is_punct(const conf_tok *t, const char *p)
{
    return !t->quoted && strcmp(t->text, p) == 0;
}

static int is_word(const conf_tok *t, const char *w)
{
    return !t->quoted && strcmp(t->text, w) == 0;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return 0;
    return 1;
}

static int parse_group(rules *r, const conf_tok *tok, size_t ntok, int line, char *why,
                       size_t whylen)
{
    if (ntok < 4 || !is_punct(&tok[2], "="))
        return fail(why, whylen, "expected 'group NAME = user@domain, ...'");
    if (tok[1].quoted || !valid_name(tok[1].text))
        return fail(why, whylen, "bad group name '%s' (letters, digits, '_', '-', '.'; at "
                                 "most %d)", tok[1].text, MAX_NAME);
    int g = rules_group_index(r, tok[1].text);
    if (g < 0) {
        if (r->ngroups >= RULES_MAX_GROUPS)
            return fail(why, whylen, "too many groups (at most %d)", RULES_MAX_GROUPS);
        r->groups = xrealloc(r->groups, (r->ngroups + 1) * sizeof *r->groups);
        group *ng = &r->groups[r->ngroups];
        memset(ng, 0, sizeof *ng);
        ng->name = xstrdup(tok[1].text);
        ng->line = line;
        g = (int)r->ngroups++;
    }
    group *gr = &r->groups[g];
    for (size_t i = 3; i < ntok; i += 2) {
        const conf_tok *t = &tok[i];
        if (is_punct(t, ",") || is_punct(t, "="))
            return fail(why, whylen, "expected a JID in group %s, found '%s'", gr->name,
                        t->text);
        char *norm = jid_normalize_bare(t->text);
        if (!norm || !strchr(norm, '@')) {
            free(norm);
            return fail(why, whylen, "invalid member '%s' of group %s (a bare JID such as "
                                     "alice@example.org)", t->text, gr->name);
        }
        if (gr->nmembers >= RULES_MAX_MEMBERS) {
            free(norm);
            return fail(why, whylen, "group %s has too many members (at most %d)", gr->name,
                        RULES_MAX_MEMBERS);
        }
        gr->members = xrealloc(gr->members, (gr->nmembers + 1) * sizeof *gr->members);
        gr->members[gr->nmembers++] = norm;
        if (i + 1 < ntok && !is_punct(&tok[i + 1], ","))
            return fail(why, whylen, "expected ',' between members of group %s, found '%s'",
                        gr->name, tok[i + 1].text);
        if (i + 1 == ntok - 1)
            return fail(why, whylen, "trailing ',' in group %s", gr->name);
    }
    return 1;
}

static int parse_wall(rules *r, const conf_tok *tok, size_t ntok, int line, char *why,
                      size_t whylen)
{
    if (ntok != 3 || tok[1].quoted || tok[2].quoted || !valid_name(tok[1].text) ||
        !valid_name(tok[2].text))
        return fail(why, whylen, "expected 'wall GROUP GROUP'");
    if (strcmp(tok[1].text, tok[2].text) == 0)
        return fail(why, whylen, "a wall needs two different groups (both are '%s')",
                    tok[1].text);
    if (r->nwalls >= RULES_MAX_WALLS)
        return fail(why, whylen, "too many walls (at most %d)", RULES_MAX_WALLS);
    r->walls = xrealloc(r->walls, (r->nwalls + 1) * sizeof *r->walls);
    wall *w = &r->walls[r->nwalls++];
    w->a = xstrdup(tok[1].text);
    w->b = xstrdup(tok[2].text);
    w->ga = w->gb = -1;
    w->line = line;
    return 1;
}

/* ACTION [from GROUP] at tok[i..ntok). no_redact names what cannot be redacted (NULL:
 * redact is allowed). */
static int parse_action(const conf_tok *tok, size_t ntok, size_t i, const char *no_redact,
                        rule_head *h, char *why, size_t whylen)
{
    if (i >= ntok)
        return fail(why, whylen, "missing action (allow, flag, block \"reason\" or redact)");
    const conf_tok *a = &tok[i++];
    if (is_word(a, "allow")) {
        h->action = ACT_ALLOW;
    } else if (is_word(a, "flag")) {
        h->action = ACT_FLAG;
    } else if (is_word(a, "block")) {
        h->action = ACT_BLOCK;
        if (i >= ntok || is_punct(&tok[i], ",") || is_punct(&tok[i], "=") ||
            (!tok[i].quoted && strcmp(tok[i].text, "from") == 0))
            return fail(why, whylen, "block needs a reason for the sender: block \"why\"");
        size_t n = strlen(tok[i].text);
        if (n == 0 || n > RULES_MAX_REASON)
            return fail(why, whylen, "a block reason must be 1 to %d bytes", RULES_MAX_REASON);
        h->reason = xstrdup(tok[i++].text);
    } else if (is_word(a, "redact")) {
        h->action = ACT_REDACT;
        /* Only a quoted string is a replacement, so "redact from traders" stays clear. */
        if (i < ntok && tok[i].quoted) {
            if (strlen(tok[i].text) > MAX_REPLACEMENT)
                return fail(why, whylen, "a redaction replacement is at most %d bytes",
                            MAX_REPLACEMENT);
            h->replacement = xstrdup(tok[i++].text);
        } else {
            h->replacement = xstrdup(DEFAULT_REPLACEMENT);
        }
    } else {
        return fail(why, whylen, "unknown action '%s' (allow, flag, block \"reason\" or "
                                 "redact [\"replacement\"])", a->text);
    }
    if (no_redact && h->action == ACT_REDACT)
        return fail(why, whylen, "%s cannot be redacted (allow, flag or block)", no_redact);
    if (i < ntok && is_word(&tok[i], "from")) {
        if (i + 1 >= ntok || tok[i + 1].quoted || !valid_name(tok[i + 1].text))
            return fail(why, whylen, "expected a group name after 'from'");
        h->from = xstrdup(tok[i + 1].text);
        i += 2;
    }
    h->from_group = -1;
    if (i < ntok)
        return fail(why, whylen, "unexpected '%s' after the action", tok[i].text);
    return 0;
}

static int parse_content(rules *r, content_type type, const conf_tok *tok, size_t ntok,
                         int line, char *why, size_t whylen)
{
    if (r->ncontent >= RULES_MAX_CONTENT)
        return fail(why, whylen, "too many content rules (at most %d)", RULES_MAX_CONTENT);
    content_rule cr;
    memset(&cr, 0, sizeof cr);
    cr.type = type;
    cr.h.line = line;
    size_t i = 1;
    const char *pattern = NULL;
    if (type != CR_ENCRYPTED) {
        if (ntok < 2 || is_punct(&tok[1], ",") || is_punct(&tok[1], "="))
            return fail(why, whylen, "expected '%s PATTERN ACTION'", tok[0].text);
        pattern = tok[1].text;
        if (strlen(pattern) > RULES_MAX_PATTERN)
            return fail(why, whylen, "pattern longer than %d bytes", RULES_MAX_PATTERN);
        i = 2;
    }
    if (type == CR_KEYWORD && keyword_compile(pattern, &cr.kw, &cr.kwlen) < 0)
        return fail(why, whylen, "empty keyword");
    if (type == CR_REGEX) {
        if (!*pattern)
            return fail(why, whylen, "empty regular expression");
        int rc = regcomp(&cr.re, pattern, REG_EXTENDED);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &cr.re, msg, sizeof msg);
            return fail(why, whylen, "bad regular expression \"%s\": %s", pattern, msg);
        }
        cr.has_re = 1;
    }
    if (parse_action(tok, ntok, i, type == CR_ENCRYPTED ? "an encrypted message" : NULL, &cr.h,
                     why, whylen) < 0) {
        head_clear(&cr.h);
        free(cr.kw);
        if (cr.has_re)
            regfree(&cr.re);
        return -1;
    }
    if (type == CR_ENCRYPTED)
        cr.h.label = xasprintf("encrypted (line %d)", line);
    else
        cr.h.label = xasprintf("%s \"%s\" (line %d)", tok[0].text, pattern, line);
    r->content = xrealloc(r->content, (r->ncontent + 1) * sizeof *r->content);
    r->content[r->ncontent++] = cr;
    return 1;
}

/* A MIME type "major/minor", or a major type with the minor "*"; lower-cased in place;
 * 0 if valid. */
static int check_mime(char *s)
{
    static const char tchars[] = "!#$&^_.+-";
    char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strlen(s) > MAX_MIME)
        return -1;
    for (char *p = s; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
        if (p == slash)
            continue;
        if (*p == '*' && p == slash + 1 && !p[1])
            continue;
        if (!isalnum((unsigned char)*p) && !strchr(tchars, *p))
            return -1;
    }
    return 0;
}

static int check_ext(char *s)
{
    if (!*s || strlen(s) > MAX_EXT)
        return -1;
    for (char *p = s; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '+' && *p != '-')
            return -1;
    }
    return 0;
}

static void free_items(char **items, size_t n)
{
    for (size_t k = 0; k < n; k++)
        free(items[k]);
    free(items);
}

static int parse_file(rules *r, const conf_tok *tok, size_t ntok, int line, char *why,
                      size_t whylen)
{
    if (r->nfiles >= RULES_MAX_FILE)
        return fail(why, whylen, "too many file rules (at most %d)", RULES_MAX_FILE);
    if (ntok < 3)
        return fail(why, whylen, "expected 'file type|ext|any ... ACTION'");
    file_rule fr;
    memset(&fr, 0, sizeof fr);
    fr.h.line = line;
    size_t i = 2;
    if (is_word(&tok[1], "any")) {
        fr.match = FR_ANY;
    } else if (is_word(&tok[1], "type") || is_word(&tok[1], "ext")) {
        fr.match = is_word(&tok[1], "type") ? FR_TYPE : FR_EXT;
        for (;;) {
            if (i >= ntok || is_punct(&tok[i], ",") || is_punct(&tok[i], "=")) {
                free_items(fr.items, fr.nitems);
                return fail(why, whylen, "expected a %s in the list",
                            fr.match == FR_TYPE ? "MIME type" : "file extension");
            }
            char *item = xstrdup(tok[i].text[0] == '.' && fr.match == FR_EXT ? tok[i].text + 1
                                                                               : tok[i].text);
            if ((fr.match == FR_TYPE ? check_mime(item) : check_ext(item)) < 0 ||
                fr.nitems >= RULES_MAX_ITEMS) {
                int too_many = fr.nitems >= RULES_MAX_ITEMS;
                free(item);
                free_items(fr.items, fr.nitems);
                if (too_many)
                    return fail(why, whylen, "too many items (at most %d)", RULES_MAX_ITEMS);
                return fail(why, whylen, fr.match == FR_TYPE
                                             ? "bad MIME type '%s' (type/subtype or type/*)"
                                             : "bad file extension '%s'", tok[i].text);
            }
            fr.items = xrealloc(fr.items, (fr.nitems + 1) * sizeof *fr.items);
            fr.items[fr.nitems++] = item;
            i++;
            if (i < ntok && is_punct(&tok[i], ",")) {
                i++;
                continue;
            }
            break;
        }
    } else {
        return fail(why, whylen, "unknown file rule '%s' (type, ext or any; or the settings "
                                 "file_max_size and file_screen_capture)", tok[1].text);
    }
    if (parse_action(tok, ntok, i, "a file", &fr.h, why, whylen) < 0) {
        head_clear(&fr.h);
        free_items(fr.items, fr.nitems);
        return -1;
    }
    fr.h.label = xasprintf("file %s%s%s (line %d)", tok[1].text, fr.nitems ? " " : "",
                           fr.nitems ? fr.items[0] : "", line);
    r->files = xrealloc(r->files, (r->nfiles + 1) * sizeof *r->files);
    r->files[r->nfiles++] = fr;
    return 1;
}

int rules_parse_line(rules *r, const conf_tok *tok, size_t ntok, int line, char *why,
                     size_t whylen)
{
    if (ntok == 0 || tok[0].quoted)
        return 0;
    const char *w = tok[0].text;
    if (strcmp(w, "group") == 0)
        return parse_group(r, tok, ntok, line, why, whylen);
    if (strcmp(w, "wall") == 0)
        return parse_wall(r, tok, ntok, line, why, whylen);
    if (strcmp(w, "keyword") == 0)
        return parse_content(r, CR_KEYWORD, tok, ntok, line, why, whylen);
    if (strcmp(w, "regex") == 0)
        return parse_content(r, CR_REGEX, tok, ntok, line, why, whylen);
    if (strcmp(w, "encrypted") == 0)
        return parse_content(r, CR_ENCRYPTED, tok, ntok, line, why, whylen);
    if (strcmp(w, "file") == 0)
        return parse_file(r, tok, ntok, line, why, whylen);
    return 0;
}

/* ---- after the last line ---- */

static int resolve_from(rules *r, rule_head *h, int *line, char *why, size_t whylen)
{
    if (!h->from)
        return 0;
    h->from_group = rules_group_index(r, h->from);
    if (h->from_group < 0) {
        *line = h->line;
        return fail(why, whylen, "unknown group '%s' (define it with 'group %s = ...')",
                    h->from, h->from);
    }
    return 0;
}

int rules_finish(rules *r, int *line, char *why, size_t whylen)
{
    *line = 0;
    for (size_t i = 0; i < r->ngroups; i++) {
        group *g = &r->groups[i];
        qsort(g->members, g->nmembers, sizeof *g->members, cmp_str);
        size_t out = 0;
        for (size_t k = 0; k < g->nmembers; k++) {
            if (out > 0 && strcmp(g->members[out - 1], g->members[k]) == 0)
                free(g->members[k]);
            else
                g->members[out++] = g->members[k];
        }
        g->nmembers = out;
    }
    for (size_t i = 0; i < r->nwalls; i++) {
        wall *w = &r->walls[i];
        w->ga = rules_group_index(r, w->a);
        w->gb = rules_group_index(r, w->b);
        if (w->ga < 0 || w->gb < 0) {
            const char *name = w->ga < 0 ? w->a : w->b;
            *line = w->line;
            return fail(why, whylen, "unknown group '%s' (define it with 'group %s = ...')",
                        name, name);
        }
        /* A user on both sides would be walled off from themselves and everyone else:
         * always a mistake in the group lists. */
        const group *ga = &r->groups[w->ga];
        for (size_t k = 0; k < ga->nmembers; k++) {
            if (rules_in_group(r, w->gb, ga->members[k])) {
                *line = w->line;
                return fail(why, whylen, "%s is in both %s and %s, which this wall separates",
                            ga->members[k], w->a, w->b);
            }
        }
    }
    for (size_t i = 0; i < r->ncontent; i++)
        if (resolve_from(r, &r->content[i].h, line, why, whylen) < 0)
            return -1;
    for (size_t i = 0; i < r->nfiles; i++)
        if (resolve_from(r, &r->files[i].h, line, why, whylen) < 0)
            return -1;
    r->finished = 1;
    return 0;
}

void rules_counts(const rules *r, size_t *groups, size_t *walls, size_t *content, size_t *files)
{
    *groups = r->ngroups;
    *walls = r->nwalls;
    *content = r->ncontent;
    *files = r->nfiles;
}

int rules_has_disclaimer(const rules *r)
{
    return r->disclaimer != NULL;
}
