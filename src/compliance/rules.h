/* rules.h - parley-compliance's rule set: groups, ethical walls, content rules (keyword,
 * regex, encrypted), file rules and the daily disclaimer (docs/parley-compliance.md).
 *
 * Building a rule set is driven line by line by the config reader (conf.c); evaluating
 * one is pure: a check (check.h) in, a result out, no I/O. What the disclaimer needs to
 * remember between messages (was it already appended today?) is asked of the caller. */
#ifndef PC_RULES_H
#define PC_RULES_H

#include <stddef.h>
#include <stdint.h>

typedef struct rules rules;

/* One token of a rule line: a word, a double-quoted string (escapes resolved) or one of
 * the punctuation tokens "=" and "," (quoted = 0). */
typedef struct conf_tok {
    const char *text;
    int quoted;
} conf_tok;

typedef enum { PC_KIND_MESSAGE = 0, PC_KIND_GROUPCHAT, PC_KIND_FILE } pc_kind;

/* What parleyd asks about (docs/verdict-protocol.md), already validated and normalised. */
typedef struct pc_check {
    pc_kind kind;
    char *sender;      /* bare JID */
    char *recipient;   /* bare JID: the peer, or the room for groupchat */
    char **occupants;  /* groupchat: the room's occupants (real bare JIDs) */
    size_t noccupants;
    char *body;        /* the first <body/>, NULL if none: the one a verdict may replace */
    char **extra;      /* other bodies (xml:lang) and subjects: matched, never modified */
    size_t nextra;
    int encrypted;     /* end-to-end encrypted: content rules cannot read it */
    char *message_id;  /* the forwarded message's id (for the journal), may be NULL */
    /* kind == PC_KIND_FILE */
    char *file_name;
    char *file_type;   /* MIME type as declared (stage request) or sniffed (upload) */
    char *file_stage;  /* "request" or "upload" */
    uint64_t file_size;
    int screen_capture;
} pc_check;

typedef enum { PC_ALLOW = 0, PC_BLOCK, PC_MODIFY } pc_verdict;

typedef struct pc_result {
    pc_verdict verdict;
    int flagged;    /* allowed, but a flag rule matched */
    char *rule;     /* what decided, e.g. "keyword \"insider\" (line 12)"; NULL: nothing */
    char *reason;   /* for the sender (block) or the record; NULL for a plain allow */
    char *body;     /* PC_MODIFY: the body to deliver */
    int disclaimer; /* the disclaimer was appended: remember the day */
} pc_result;

/* Longest body a modify verdict may carry; a redaction or disclaimer that would make it
 * longer blocks the message instead (parleyd's default stanza limit is 256 KiB). */
#define PC_MAX_BODY (256 * 1024)
/* Matches one redaction may replace; a message with more is blocked instead. */
#define PC_MAX_REDACTIONS 1000

rules *rules_new(void);
void rules_free(rules *r);

/* A "key = value" setting that belongs to the rules (disclaimer, file_max_size,
 * file_screen_capture). Returns 1 if applied, 0 if key is not a rules setting, -1 with
 * the reason in why. */
int rules_setting(rules *r, const char *key, const char *value, char *why, size_t whylen);
/* A rule line (group, wall, keyword, regex, encrypted, file). Returns 1 if applied, 0 if
 * the first token starts no rule, -1 with the reason in why. */
int rules_parse_line(rules *r, const conf_tok *tok, size_t ntok, int line, char *why,
                     size_t whylen);
/* After the last line: resolve group names used by walls and rules, refuse a user in
 * two walled groups. Returns 0, or -1 with the reason in why and its line in *line. */
int rules_finish(rules *r, int *line, char *why, size_t whylen);

/* Counts for --check and the reload log line. */
void rules_counts(const rules *r, size_t *groups, size_t *walls, size_t *content,
                  size_t *files);
int rules_has_disclaimer(const rules *r);

/* Judge c. disclaimer_due says the sender has not had the disclaimer today; it is
 * appended to a message that is delivered with a readable body. out is overwritten. */
void rules_evaluate(const rules *r, const pc_check *c, int disclaimer_due, pc_result *out);
void pc_result_clear(pc_result *res);
const char *pc_verdict_name(pc_verdict v);
const char *pc_kind_name(pc_kind k);

#endif
