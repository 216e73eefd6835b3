/* archive_internal.h - what archive.c (queries, results, what was delivered) and
 * archive_sync.c (what to fetch at sign-in and on joining a room) share. */
#ifndef PARLEY_CLIENT_ARCHIVE_INTERNAL_H
#define PARLEY_CLIENT_ARCHIVE_INTERNAL_H

#include "ext.h"

/* Ids already delivered (or sent): a bounded set, the oldest forgotten first. */
typedef struct seen_set {
    dict *ids;
    char **ring;
    size_t n, pos;
} seen_set;

typedef struct query query;
/* A fetch ended (err PARLEY_OK, or why not). */
typedef void (*query_done_fn)(parley *p, const query *q, parley_error err, const char *text,
                              void *ud);

struct query {
    char *qid;          /* our queryid: results name it */
    char *archive;      /* NULL: the account's; else the room's JID */
    char *with;
    int after_mode;     /* paging forward from an id, else the last page */
    int max;            /* results wanted in all */
    int got;            /* results received */
    int delivered;      /* of which new */
    int pages;
    int complete;       /* the server said the last page was the end */
    int unknown_id;     /* the server did not know the after-id */
    char *last_id;      /* the newest id of the pages so far */
    query_done_fn done; /* NULL: emit PARLEY_EV_ARCHIVE_DONE */
    void *done_ud;
    query *next;
};

typedef struct held_msg {
    char *archive;
    xml_node *msg;
    struct held_msg *next;
} held_msg;

typedef struct sync_state sync_state;

struct archive_state {
    query *queries;
    dict *seen;         /* archive ("" ours) -> seen_set of archive ids */
    dict *last;         /* archive -> newest archive id known (char *) */
    seen_set *sent;     /* ids of the messages this handle sent */
    seen_set *origins;  /* "sender bare JID\norigin-id" of the messages delivered */
    held_msg *held;     /* live messages waiting for a fetch to end, in order */
    size_t nheld;
    int draining;       /* delivering the held messages at the session's end */
    sync_state *sync;   /* the account's sign-in sync (archive_sync.c) */
};

archive_state *archive_of(parley *p);
/* Fetch archive (NULL: ours): after after_id (paging forward, at most max), or the last
 * max (one page). done (may be NULL) is told the end. PARLEY_ERR_STATE offline. */
parley_error archive_start(parley *p, const char *archive, const char *with,
                           const char *after_id, int max, query_done_fn done, void *ud);
/* Replay the held messages of archive (all: of every archive). */
void archive_release(parley *p, const char *archive, int all);
void archive_sync_free(archive_state *a);

#endif
