/* archive_sync.c - what a device fetches from the archives by itself (archive_sync > 0):
 * at sign-in, the account's messages after the newest one it knows; a device that knows
 * none (a new device, or one whose history was wiped) fetches the last N messages of
 * each contact's conversation, then the last N of the whole archive (which adds the
 * conversations with people outside the roster, and tells where the archive ends). On
 * joining a room that keeps an archive, the same for the room. One ARCHIVE_DONE each. */
#include "../common/util.h"
#include "archive_internal.h"

#include <stdlib.h>
#include <string.h>

#define SYNC_CAP 1000 /* messages fetched after the newest known, at most */

struct sync_state {
    char **todo;      /* contacts whose last messages are still to fetch */
    size_t n, i;
    int count;        /* messages delivered so far */
    int running;
};

static sync_state *sync_of(parley *p)
{
    archive_state *a = archive_of(p);
    if (!a->sync)
        a->sync = xcalloc(1, sizeof *a->sync);
    return a->sync;
}

static void clear_todo(sync_state *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->todo[i]);
    free(s->todo);
    s->todo = NULL;
    s->n = s->i = 0;
}

void archive_sync_free(archive_state *a)
{
    if (!a->sync)
        return;
    clear_todo(a->sync);
    free(a->sync);
    a->sync = NULL;
}

static void sync_end(parley *p, parley_error err, const char *text)
{
    sync_state *s = sync_of(p);
    clear_todo(s);
    s->running = 0;
    parley_event ev = {0};
    ev.type = PARLEY_EV_ARCHIVE_DONE;
    ev.count = s->count;
    ev.error = err;
    ev.error_text = text;
    client_emit(p, &ev);
}

static void next_step(parley *p);

/* A failed conversation does not stop the others; a lost session does. */
static int stops(parley *p, parley_error err)
{
    return !ext_online(p) || err == PARLEY_ERR_UNREACHABLE || err == PARLEY_ERR_CLOSED;
}

static void contact_done(parley *p, const query *q, parley_error err, const char *text,
                         void *ud)
{
    sync_state *s = sync_of(p);
    s->count += q->delivered;
    if (stops(p, err))
        sync_end(p, err, text);
    else
        next_step(p);
}

static void all_done(parley *p, const query *q, parley_error err, const char *text, void *ud)
{
    sync_of(p)->count += q->delivered;
    sync_end(p, err, text);
}

static void next_step(parley *p)
{
    sync_state *s = sync_of(p);
    parley_error e;
    if (s->i < s->n)
        e = archive_start(p, NULL, s->todo[s->i++], NULL, p->opt.archive_sync, contact_done,
                          NULL);
    else
        e = archive_start(p, NULL, NULL, NULL, p->opt.archive_sync, all_done, NULL);
    if (e != PARLEY_OK)
        sync_end(p, e, parley_strerror(e));
}

static int collect_contact(const parley_roster_item *it, void *ud)
{
    parley *p = ud;
    sync_state *s = sync_of(p);
    if (strcmp(it->jid, p->account_bare) != 0) {
        s->todo = xrealloc(s->todo, (s->n + 1) * sizeof *s->todo);
        s->todo[s->n++] = xstrdup(it->jid);
    }
    return 0;
}

static void new_device(parley *p)
{
    clear_todo(sync_of(p));
    parley_roster_foreach(p, collect_contact, p);
    next_step(p);
}

static void after_done(parley *p, const query *q, parley_error err, const char *text,
                       void *ud)
{
    sync_of(p)->count += q->delivered;
    if (q->unknown_id && ext_online(p))
        new_device(p); /* expired, purged, or another server's id: start afresh */
    else
        sync_end(p, err, text);
}

int archive_sync_wanted(const parley *p)
{
    /* the organisation's Disable_IM_History: no earlier messages shown, from anywhere */
    return p->opt.archive_sync > 0 && !(p->policy.known && p->policy.disable_im_history);
}

void archive_sync_account(parley *p)
{
    sync_state *s = sync_of(p);
    if (!archive_sync_wanted(p) || s->running)
        return;
    s->running = 1;
    s->count = 0;
    const char *last = parley_archive_last(p, NULL);
    if (!last) {
        new_device(p);
        return;
    }
    char *after = xstrdup(last);
    parley_error e = archive_start(p, NULL, NULL, after, SYNC_CAP, after_done, NULL);
    free(after);
    if (e != PARLEY_OK)
        sync_end(p, e, parley_strerror(e));
}

/* ---- rooms */

typedef struct room_sync {
    char *room;
    int count;
} room_sync;

static void room_end(parley *p, room_sync *rs, parley_error err, const char *text)
{
    parley_event ev = {0};
    ev.type = PARLEY_EV_ARCHIVE_DONE;
    ev.room = rs->room;
    ev.count = rs->count;
    ev.error = err;
    ev.error_text = text;
    client_emit(p, &ev);
    free(rs->room);
    free(rs);
}

static void room_done(parley *p, const query *q, parley_error err, const char *text, void *ud)
{
    room_sync *rs = ud;
    rs->count += q->delivered;
    room_end(p, rs, err, text);
}

static void room_after_done(parley *p, const query *q, parley_error err, const char *text,
                            void *ud)
{
    room_sync *rs = ud;
    rs->count += q->delivered;
    if (q->unknown_id && ext_online(p) &&
        archive_start(p, rs->room, NULL, NULL, p->opt.archive_sync, room_done, rs) == PARLEY_OK)
        return;
    room_end(p, rs, err, text);
}

void archive_sync_room(parley *p, const char *room)
{
    if (!archive_sync_wanted(p))
        return;
    room_sync *rs = xcalloc(1, sizeof *rs);
    rs->room = xstrdup(room);
    const char *last = parley_archive_last(p, room);
    char *after = last ? xstrdup(last) : NULL;
    parley_error e = after ? archive_start(p, room, NULL, after, SYNC_CAP, room_after_done, rs)
                           : archive_start(p, room, NULL, NULL, p->opt.archive_sync, room_done,
                                           rs);
    free(after);
    if (e != PARLEY_OK)
        room_end(p, rs, e, parley_strerror(e));
}

void archive_on_offline(parley *p)
{
    archive_state *a = p->ext ? p->ext->archive : NULL;
    if (!a)
        return;
    /* what was held is delivered now (the fetches end with the session, their callbacks
     * run next): nothing received is ever lost */
    a->draining = 1;
    archive_release(p, NULL, 1);
    a->draining = 0;
}
