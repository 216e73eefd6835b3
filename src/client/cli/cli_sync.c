/* cli_sync.c - the interactive client and the server's archive: history fetched at
 * sign-in shown in its conversation and kept in the local history (never twice: by the
 * server's id or the sender's), copies of what another device of ours sent or received
 * (carbons) shown as such, and, in archive mode, where the sync got to kept with the
 * history so the next start fetches only what is new. */
#include "../../common/util.h"
#include "chat_format.h"
#include "cli_rooms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sync_options(ui *u, parley_options *po)
{
    po->carbons = 1;
    /* with the history disabled nothing earlier is shown, from the server either */
    po->archive_sync = u->mode == HIST_MODE_DISABLED ? 0 : SYNC_MESSAGES;
}

static char *meta_key(const char *archive)
{
    return archive ? xasprintf("archive:room:%s", archive) : xstrdup("archive:account");
}

/* Where the sync got to is worth keeping only with a history that is kept. */
static int keeps(const ui *u)
{
    return u->h && u->mode == HIST_MODE_ARCHIVE;
}

static void restore(ui *u, const char *archive)
{
    if (!keeps(u))
        return;
    char *key = meta_key(archive), id[300];
    if (hist_meta_get(u->h, key, id, sizeof id) == HIST_OK && id[0])
        parley_archive_set_last(u->p, archive, id);
    free(key);
}

void sync_start(ui *u)
{
    restore(u, NULL);
}

void sync_start_room(ui *u, const char *room)
{
    restore(u, room);
}

void sync_save(ui *u, const char *archive)
{
    const char *id = keeps(u) ? parley_archive_last(u->p, archive) : NULL;
    if (!id)
        return;
    char *key = meta_key(archive);
    if (hist_meta_set(u->h, key, id) != HIST_OK)
        CONSOLE(u, "history: %s", hist_errmsg(u->h));
    free(key);
}

void sync_save_all(ui *u)
{
    sync_save(u, NULL);
    for (size_t i = 1; i < u->nwins; i++)
        if (u->wins[i].room)
            sync_save(u, u->wins[i].jid);
}

int sync_known(ui *u, const char *peer, const char *stanza_id, const char *id)
{
    return u->h && (hist_has_id(u->h, peer, stanza_id) == 1 || hist_has_id(u->h, peer, id) == 1);
}

static win *find_window(ui *u, const char *peer)
{
    for (size_t i = 1; i < u->nwins; i++)
        if (strcmp(u->wins[i].jid, peer) == 0)
            return &u->wins[i];
    return NULL;
}

static void keep(ui *u, const char *peer, int outgoing, const parley_event *ev, const char *id)
{
    if (!u->h)
        return;
    hist_msg m = {.peer = peer, .outgoing = outgoing, .sender = ev->from,
                  .ts_ms = ev->timestamp_ms, .body = ev->body, .encrypted = ev->encrypted,
                  .stanza_id = id};
    if (hist_add(u->h, &m) != HIST_OK)
        CONSOLE(u, "history: %s", hist_errmsg(u->h));
}

/* A message from the archive: kept, and shown in its window (a window opened for it
 * loads it from the history with the rest). */
static void archived(ui *u, const parley_event *ev, const char *peer, int outgoing)
{
    win *w = find_window(u, peer);
    keep(u, peer, outgoing, ev, ev->stanza_id ? ev->stanza_id : ev->id);
    if (!w) {
        conv_window(u, peer);
        return;
    }
    char *who = outgoing ? xstrdup("me") : bare_of(ev->from);
    win_message(u, w, (time_t)(ev->timestamp_ms / 1000), who, ev->body, ev->encrypted);
    free(who);
}

/* A copy of what another device of ours sent (to: the peer) or received. */
static void carbon(ui *u, const parley_event *ev, const char *peer, int sent)
{
    size_t i = conv_window(u, peer);
    char who[600];
    char *sender = bare_of(ev->from);
    fmt_carbon_who(who, sizeof who, sent, sender, u->utf8);
    free(sender);
    win_message(u, &u->wins[i], time(NULL), who, ev->body, ev->encrypted);
    if (!sent && i != u->cur)
        u->wins[i].unread++;
    /* what we sent is known by its message id on the device that sent it too */
    keep(u, peer, sent, ev, sent ? ev->id : (ev->stanza_id ? ev->stanza_id : ev->id));
}

static void archive_done(ui *u, const parley_event *ev)
{
    win *w = ev->room ? find_window(u, ev->room) : NULL;
    w = w ? w : &u->wins[0];
    rooms_ui *r = rooms_ui_of(u);
    if (r->undecryptable) /* one line, not one per message the archive gave */
        win_info(u, &u->wins[0], "%d end-to-end encrypted message%s from the server archive "
                 "cannot be read on this device (not encrypted for it, or already read once)",
                 r->undecryptable, r->undecryptable == 1 ? "" : "s");
    r->undecryptable = 0;
    if (ev->error != PARLEY_OK && ev->error != PARLEY_ERR_UNREACHABLE &&
        ev->error != PARLEY_ERR_CLOSED)
        win_info(u, w, "history from the server archive%s%s could not be fetched: %s",
                 ev->room ? " of " : "", ev->room ? ev->room : "",
                 ev->error_text ? ev->error_text : parley_strerror(ev->error));
    else if (ev->count > 0)
        win_info(u, w, "%d message%s from the server archive%s%s", ev->count,
                 ev->count == 1 ? "" : "s", ev->room ? " of " : "", ev->room ? ev->room : "");
    sync_save(u, ev->room);
}

int sync_on_event(ui *u, const parley_event *ev)
{
    if (ev->type == PARLEY_EV_ARCHIVE_DONE) {
        archive_done(u, ev);
        return 1;
    }
    if (ev->type != PARLEY_EV_MESSAGE || !(ev->carbon || ev->archived) ||
        ev->error != PARLEY_OK || (!ev->body && !ev->e2e_error))
        return 0;
    int sent = ev->carbon == PARLEY_CARBON_SENT || ev->outgoing;
    const char *other = sent ? ev->to : ev->from;
    if (!other)
        return 1;
    char *peer = bare_of(other);
    if (!ev->body) { /* end-to-end encrypted, and not readable here */
        if (ev->archived)
            rooms_ui_of(u)->undecryptable++;
        else
            win_info(u, &u->wins[conv_window(u, peer)], "%s (another device of yours)",
                     ev->e2e_error);
        free(peer);
        return 1;
    }
    if (!sync_known(u, peer, ev->stanza_id, ev->id)) {
        if (ev->carbon)
            carbon(u, ev, peer, ev->carbon == PARLEY_CARBON_SENT);
        else
            archived(u, ev, peer, sent);
    }
    free(peer);
    return 1;
}

int chat_ext_event(ui *u, const parley_event *ev)
{
    return rooms_on_event(u, ev) || sync_on_event(u, ev);
}
