/* rules_internal.h - the rule set's representation, shared by the loader (rules_load.c)
 * and the evaluator (rules.c) only. */
#ifndef PC_RULES_INTERNAL_H
#define PC_RULES_INTERNAL_H

#include "rules.h"

#include <regex.h>

/* Bounds on what one file may define: a typo or a generated file gone wrong should be
 * an error, not an evaluator that takes seconds per message. */
#define RULES_MAX_GROUPS 1000
#define RULES_MAX_MEMBERS 100000
#define RULES_MAX_WALLS 1000
#define RULES_MAX_CONTENT 10000
#define RULES_MAX_FILE 1000
#define RULES_MAX_ITEMS 1000
#define RULES_MAX_DISCLAIMER 4096
#define RULES_MAX_REASON 1024
#define RULES_MAX_PATTERN 1024

typedef struct group {
    char *name;
    char **members; /* normalised bare JIDs, sorted once loaded (bsearch) */
    size_t nmembers;
    int line;       /* first definition */
} group;

typedef struct wall {
    char *a, *b;    /* group names as written */
    int ga, gb;     /* resolved indices */
    int line;
} wall;

typedef enum { ACT_ALLOW = 0, ACT_FLAG, ACT_BLOCK, ACT_REDACT } rule_action;

/* The part every ordered rule has: what to do, and for whom. */
typedef struct rule_head {
    rule_action action;
    char *reason;      /* block: the text the sender gets */
    char *replacement; /* redact: what replaces each match */
    char *from;        /* "from GROUP": only senders in that group; NULL: everyone */
    int from_group;    /* resolved index, -1 if from is NULL */
    int line;
    char *label;       /* e.g. keyword "insider" (line 12), for the journal */
} rule_head;

typedef enum { CR_KEYWORD = 0, CR_REGEX, CR_ENCRYPTED } content_type;

typedef struct content_rule {
    content_type type;
    rule_head h;
    uint32_t *kw;      /* CR_KEYWORD */
    size_t kwlen;
    regex_t re;        /* CR_REGEX */
    int has_re;
} content_rule;

typedef enum { FR_TYPE = 0, FR_EXT, FR_ANY } file_match;

typedef struct file_rule {
    file_match match;
    char **items;      /* lower-case MIME types (a "type/" + "*" wildcard allowed) or extensions */
    size_t nitems;
    rule_head h;
} file_rule;

struct rules {
    group *groups;
    size_t ngroups;
    wall *walls;
    size_t nwalls;
    content_rule *content;
    size_t ncontent;
    file_rule *files;
    size_t nfiles;
    uint64_t file_max_size;     /* 0: no limit */
    int screen_capture_block;   /* file_screen_capture = block */
    char *disclaimer;
    int finished;
};

/* Index of the group named name, or -1. */
int rules_group_index(const rules *r, const char *name);
/* Is the bare JID bare a member of group g? */
int rules_in_group(const rules *r, int g, const char *bare);

#endif
