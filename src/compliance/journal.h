/* journal.h - parley-compliance's own log: one SQLite row per check it answered (time,
 * kind, sender, recipient or room, verdict, the rule that decided and why), readable with
 * `parley-compliance --journal FILE` or plain SQL (docs/parley-compliance.md). The rows
 * also remember who has had the day's disclaimer, so a restart does not repeat it. */
#ifndef PC_JOURNAL_H
#define PC_JOURNAL_H

#include <stdint.h>
#include <stdio.h>

typedef struct journal journal;

typedef struct journal_entry {
    int64_t time_us;
    const char *kind;       /* message, groupchat, file; "invalid" for a malformed check */
    const char *sender;     /* bare JIDs, may be NULL */
    const char *recipient;
    const char *verdict;    /* allow, block, modify; "error" for a malformed check */
    int flagged;
    const char *rule;       /* may be NULL */
    const char *reason;     /* may be NULL */
    const char *message_id; /* may be NULL */
    const char *request_id;
    const char *detail;     /* files: "name (type, size bytes, stage)"; may be NULL */
    int disclaimer;         /* the day's disclaimer was appended */
} journal_entry;

/* Open (creating it 0600 if needed) and bring the schema up to date. NULL with err. */
journal *journal_open(const char *path, char *err, size_t errlen);
void journal_close(journal *j);
/* "YYYY-MM-DD" (UTC) of a time in microseconds since the epoch. */
void journal_day(int64_t time_us, char out[11]);
/* Did sender already get the disclaimer on day? Returns 0 with *sent, or -1 with err. */
int journal_disclaimer_sent(journal *j, const char *sender, const char *day, int *sent,
                            char *err, size_t errlen);
/* Append one row (durably: synchronous=FULL). Returns 0 or -1 with err. */
int journal_record(journal *j, const journal_entry *e, char *err, size_t errlen);
/* Print every row, oldest first, as tab-separated lines under a header. 0 or -1 with err. */
int journal_dump(const char *path, FILE *out, char *err, size_t errlen);

#endif
