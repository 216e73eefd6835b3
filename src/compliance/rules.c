/* rules.c - judging one check against a loaded rule set.
 *
 * Order (docs/parley-compliance.md): ethical walls first, wherever they appear in the
 * file, so that no content rule (an 'allow' or a 'flag') can open a wall; then for files
 * the size and screen-capture limits and the file rules, for messages the content rules
 * (keyword, regex; only 'encrypted' rules for end-to-end encrypted messages, which the
 * server cannot read); the first rule that matches decides. Last, the daily disclaimer
 * is appended to a message that is delivered with a readable body. */
#include "rules_internal.h"

#include "../common/util.h"
#include "match.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DISCLAIMER_SEP "\n\n"

void pc_result_clear(pc_result *res)
{
    free(res->rule);
    free(res->reason);
    free(res->body);
    memset(res, 0, sizeof *res);
}

const char *pc_verdict_name(pc_verdict v)
{
    switch (v) {
    case PC_ALLOW:
        return "allow";
    case PC_BLOCK:
        return "block";
    case PC_MODIFY:
        return "modify";
    }
    return "?";
}

const char *pc_kind_name(pc_kind k)
{
    switch (k) {
    case PC_KIND_MESSAGE:
        return "message";
    case PC_KIND_GROUPCHAT:
        return "groupchat";
    case PC_KIND_FILE:
        return "file";
    }
    return "?";
}

static void decide(pc_result *out, pc_verdict v, char *rule, char *reason)
{
    out->verdict = v;
    free(out->rule);
    free(out->reason);
    out->rule = rule;
    out->reason = reason;
}

/* ---- ethical walls ---- */

/* Does wall w stand between x and y? *from_a says x is on the wall's a side. */
static int walled(const rules *r, const wall *w, const char *x, const char *y, int *from_a)
{
    if (!x || !y || strcmp(x, y) == 0)
        return 0;
    if (rules_in_group(r, w->ga, x) && rules_in_group(r, w->gb, y)) {
        *from_a = 1;
        return 1;
    }
    if (rules_in_group(r, w->gb, x) && rules_in_group(r, w->ga, y)) {
        *from_a = 0;
        return 1;
    }
    return 0;
}

static int check_walls(const rules *r, const pc_check *c, pc_result *out)
{
    for (size_t i = 0; i < r->nwalls; i++) {
        const wall *w = &r->walls[i];
        /* The recipient too for groupchat: a room's JID is in no group, but a message of
         * type groupchat sent straight to a user comes without occupants. */
        int from_a = 0;
        int hit = walled(r, w, c->sender, c->recipient, &from_a);
        for (size_t k = 0; !hit && k < c->noccupants; k++)
            hit = walled(r, w, c->sender, c->occupants[k], &from_a);
        if (!hit)
            continue;
        const char *mine = from_a ? w->a : w->b, *theirs = from_a ? w->b : w->a;
        char *reason = c->noccupants
                           ? xasprintf("ethical wall: %s may not talk to %s, and members of "
                                       "%s are in this room", mine, theirs, theirs)
                           : xasprintf("ethical wall: %s may not talk to %s", mine, theirs);
        decide(out, PC_BLOCK, xasprintf("wall %s %s (line %d)", w->a, w->b, w->line), reason);
        return 1;
    }
    return 0;
}

static int applies_to_sender(const rules *r, const rule_head *h, const pc_check *c)
{
    return h->from_group < 0 || rules_in_group(r, h->from_group, c->sender);
}

/* allow, flag or block as the matching rule says (redact is handled by the caller). */
static void decide_simple(const rule_head *h, pc_result *out)
{
    switch (h->action) {
    case ACT_BLOCK:
        decide(out, PC_BLOCK, xstrdup(h->label), xstrdup(h->reason));
        break;
    case ACT_FLAG:
        decide(out, PC_ALLOW, xstrdup(h->label), xasprintf("flagged by %s", h->label));
        out->flagged = 1;
        break;
    default:
        decide(out, PC_ALLOW, xstrdup(h->label), NULL);
        break;
    }
}

/* ---- files ---- */

static void format_size(uint64_t n, char *out, size_t outlen)
{
    static const struct {
        uint64_t mult;
        const char *suffix;
    } units[] = {{1024ull * 1024 * 1024, "G"}, {1024 * 1024, "M"}, {1024, "K"}};
    for (size_t i = 0; i < ARRAY_LEN(units); i++) {
        if (n % units[i].mult == 0) {
            snprintf(out, outlen, "%llu%s", (unsigned long long)(n / units[i].mult),
                     units[i].suffix);
            return;
        }
    }
    snprintf(out, outlen, "%llu bytes", (unsigned long long)n);
}

/* Lower-case extension of name (after the last '.'), in out; "" if none. */
static void file_ext(const char *name, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *slash = name ? strrchr(name, '/') : NULL;
    const char *base = slash ? slash + 1 : name;
    const char *dot = base ? strrchr(base, '.') : NULL;
    if (!dot || dot == base || strlen(dot + 1) >= outlen)
        return;
    size_t i = 0;
    for (const char *p = dot + 1; *p; p++)
        out[i++] = (char)tolower((unsigned char)*p);
    out[i] = '\0';
}

/* Lower-case MIME type without parameters ("text/plain; charset=x" -> "text/plain"). */
static void file_mime(const char *type, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!type)
        return;
    size_t i = 0;
    for (const char *p = type; *p && *p != ';' && i + 1 < outlen; p++)
        if (!isspace((unsigned char)*p))
            out[i++] = (char)tolower((unsigned char)*p);
    out[i] = '\0';
}

static int mime_matches(const char *pattern, const char *type)
{
    size_t n = strlen(pattern);
    if (n >= 2 && strcmp(pattern + n - 2, "/*") == 0)
        return strncmp(pattern, type, n - 1) == 0; /* "image/" prefix */
    return strcmp(pattern, type) == 0;
}

static int file_rule_matches(const file_rule *fr, const char *ext, const char *mime)
{
    if (fr->match == FR_ANY)
        return 1;
    for (size_t i = 0; i < fr->nitems; i++) {
        if (fr->match == FR_EXT && *ext && strcmp(fr->items[i], ext) == 0)
            return 1;
        if (fr->match == FR_TYPE && *mime && mime_matches(fr->items[i], mime))
            return 1;
    }
    return 0;
}

static void check_file(const rules *r, const pc_check *c, pc_result *out)
{
    if (r->file_max_size && c->file_size > r->file_max_size) {
        char lim[48];
        format_size(r->file_max_size, lim, sizeof lim);
        decide(out, PC_BLOCK, xstrdup("file_max_size"),
               xasprintf("files larger than %s may not be sent", lim));
        return;
    }
    if (r->screen_capture_block && c->screen_capture) {
        decide(out, PC_BLOCK, xstrdup("file_screen_capture"),
               xstrdup("screen captures may not be shared"));
        return;
    }
    char ext[64], mime[128];
    file_ext(c->file_name, ext, sizeof ext);
    file_mime(c->file_type, mime, sizeof mime);
    for (size_t i = 0; i < r->nfiles; i++) {
        const file_rule *fr = &r->files[i];
        if (applies_to_sender(r, &fr->h, c) && file_rule_matches(fr, ext, mime)) {
            decide_simple(&fr->h, out);
            return;
        }
    }
}

/* ---- message content ---- */

/* The texts of one message, folded for keyword rules only when one needs them. */
typedef struct texts {
    const pc_check *c;
    folded *f;       /* [0]: body (if any), then extra; NULL until needed */
    size_t n;
} texts;

static const char *text_at(const texts *t, size_t i)
{
    if (t->c->body)
        return i == 0 ? t->c->body : t->c->extra[i - 1];
    return t->c->extra[i];
}

static const folded *folded_at(texts *t, size_t i)
{
    if (!t->f) {
        t->f = xcalloc(t->n, sizeof *t->f);
        for (size_t k = 0; k < t->n; k++)
            fold_text(text_at(t, k), strlen(text_at(t, k)), &t->f[k]);
    }
    return &t->f[i];
}

static void texts_free(texts *t)
{
    if (t->f)
        for (size_t k = 0; k < t->n; k++)
            folded_free(&t->f[k]);
    free(t->f);
}

/* Every match of cr in text i, as byte spans (when spans is non-NULL), or just whether
 * there is one. Returns the number found (capped at 1 without spans), -1 on a regex
 * engine failure. */
static long find_all(const content_rule *cr, texts *t, size_t i, span **spans)
{
    const char *s = text_at(t, i);
    size_t len = strlen(s);
    long found = 0;
    size_t cap = 0;
    size_t from = 0, a, b;
    for (;;) {
        int rc;
        if (cr->type == CR_KEYWORD) {
            const folded *f = folded_at(t, i);
            rc = keyword_find(f, cr->kw, cr->kwlen, from, &a, &b);
            if (rc == 1) {
                from = b;
                a = f->off[a];
                b = f->off[b];
            }
        } else {
            rc = regex_find(&cr->re, s, len, from, &a, &b);
            if (rc == 1)
                from = b;
        }
        if (rc < 0)
            return -1;
        if (rc == 0)
            return found;
        if (!spans)
            return 1;
        /* Each regexec costs up to the rest of the text, so a pattern matching every
         * character of a long message would be quadratic: past a bound, stop. */
        if (found == PC_MAX_REDACTIONS)
            return -2;
        if ((size_t)found == cap) {
            cap = cap ? 2 * cap : 16;
            *spans = xrealloc(*spans, cap * sizeof **spans);
        }
        (*spans)[found].start = a;
        (*spans)[found].end = b;
        found++;
    }
}

/* The redact action of cr, known to match. */
static void redact(const content_rule *cr, texts *t, int in_extra, pc_result *out)
{
    if (in_extra || !t->c->body) {
        decide(out, PC_BLOCK, xstrdup(cr->h.label),
               xstrdup("the message matches a redaction rule in its subject or a second "
                       "body, which cannot be redacted"));
        return;
    }
    span *spans = NULL;
    long n = find_all(cr, t, 0, &spans);
    char *body = n > 0 ? redact_spans(t->c->body, strlen(t->c->body), spans, (size_t)n,
                                      cr->h.replacement, PC_MAX_BODY)
                       : NULL;
    free(spans);
    if (!body) {
        decide(out, PC_BLOCK, xstrdup(cr->h.label),
               xstrdup(n == -2  ? "too many passages to redact"
                       : n < 0 ? "the compliance server could not evaluate its rules"
                               : "the redacted message would be too long"));
        return;
    }
    decide(out, PC_MODIFY, xstrdup(cr->h.label), xasprintf("redacted by %s", cr->h.label));
    out->body = body;
}

static void check_content(const rules *r, const pc_check *c, pc_result *out)
{
    texts t = {c, NULL, (c->body ? 1 : 0) + c->nextra};
    for (size_t i = 0; i < r->ncontent; i++) {
        const content_rule *cr = &r->content[i];
        if (!applies_to_sender(r, &cr->h, c))
            continue;
        if (cr->type == CR_ENCRYPTED) {
            if (!c->encrypted)
                continue;
            decide_simple(&cr->h, out);
            break;
        }
        if (c->encrypted) /* any body is a fallback text, not the content */
            continue;
        int hit = 0, in_extra = 0;
        for (size_t k = 0; k < t.n && !hit; k++) {
            long m = find_all(cr, &t, k, NULL);
            if (m < 0) {
                decide(out, PC_BLOCK, xstrdup(cr->h.label),
                       xstrdup("the compliance server could not evaluate its rules"));
                texts_free(&t);
                return;
            }
            if (m > 0) {
                hit = 1;
                in_extra = c->body ? k > 0 : 1;
            }
        }
        if (!hit)
            continue;
        if (cr->h.action == ACT_REDACT)
            redact(cr, &t, in_extra, out);
        else
            decide_simple(&cr->h, out);
        break;
    }
    texts_free(&t);
}

/* ---- the disclaimer ---- */

static void add_disclaimer(const rules *r, const pc_check *c, pc_result *out)
{
    const char *base = out->verdict == PC_MODIFY ? out->body : c->body;
    size_t blen = strlen(base), dlen = strlen(r->disclaimer), slen = strlen(DISCLAIMER_SEP);
    /* Too long to carry it: deliver without; it stays due for the next message. */
    if (blen + slen + dlen > PC_MAX_BODY)
        return;
    char *body = xmalloc(blen + slen + dlen + 1);
    memcpy(body, base, blen);
    memcpy(body + blen, DISCLAIMER_SEP, slen);
    memcpy(body + blen + slen, r->disclaimer, dlen + 1);
    free(out->body);
    out->body = body;
    char *reason = out->reason ? xasprintf("%s; first message of the day: disclaimer",
                                           out->reason)
                               : xstrdup("first message of the day: disclaimer");
    free(out->reason);
    out->reason = reason;
    if (!out->rule)
        out->rule = xstrdup("disclaimer");
    out->verdict = PC_MODIFY;
    out->disclaimer = 1;
}

void rules_evaluate(const rules *r, const pc_check *c, int disclaimer_due, pc_result *out)
{
    memset(out, 0, sizeof *out);
    if (check_walls(r, c, out))
        return;
    if (c->kind == PC_KIND_FILE) {
        check_file(r, c, out);
        return;
    }
    check_content(r, c, out);
    if (out->verdict != PC_BLOCK && r->disclaimer && disclaimer_due && !c->encrypted && c->body)
        add_disclaimer(r, c, out);
}
