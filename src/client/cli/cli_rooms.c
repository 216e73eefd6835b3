/* cli_rooms.c - group chat in the interactive client: /join, /leave, /rooms, /invite,
 * /kick, /ban, /topic, /who (and cli_room_owner.c's), one window per room, and the rooms' events shown there.
 * Room messages never carry the end-to-end lock: the server reads group chats (the
 * status bar's client-to-server lock is the only one that applies). */
#include "../../common/util.h"
#include "chat_format.h"
#include "cli_rooms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

rooms_ui *rooms_ui_of(ui *u)
{
    if (!u->rooms)
        u->rooms = xcalloc(1, sizeof *u->rooms);
    return u->rooms;
}

static void forget_invite(rooms_ui *r)
{
    free(r->invite_room);
    if (r->invite_password) {
        secure_wipe(r->invite_password, strlen(r->invite_password));
        free(r->invite_password);
    }
    r->invite_room = r->invite_password = NULL;
}

void rooms_ui_free(ui *u)
{
    if (!u->rooms)
        return;
    forget_invite(u->rooms);
    free(u->rooms);
    u->rooms = NULL;
}

/* ------------------------------------------------------------------ windows */

static int show_room_row(const hist_msg *m, void *ud)
{
    void **a = ud;
    ui *u = a[0];
    win *w = a[1];
    /* the sender is kept as room/nick: the nickname is who said it */
    const char *slash = m->sender ? strchr(m->sender, '/') : NULL;
    win_message(u, w, (time_t)(m->ts_ms / 1000), slash ? slash + 1 : "?", m->body, 0);
    return 0;
}

size_t room_window(ui *u, const char *room)
{
    char *bare = bare_of(room);
    for (size_t i = 1; i < u->nwins; i++)
        if (strcmp(u->wins[i].jid, bare) == 0) {
            u->wins[i].room = 1;
            free(bare);
            return i;
        }
    u->wins = xrealloc(u->wins, (u->nwins + 1) * sizeof *u->wins);
    win *w = &u->wins[u->nwins];
    memset(w, 0, sizeof *w);
    w->jid = bare;
    w->room = 1;
    void *a[2] = {u, w};
    int n = 0;
    if (u->h)
        hist_show(u->h, bare, HISTORY_LOAD, show_room_row, a, &n);
    if (n > 0)
        win_info(u, w, "%d earlier message%s from the local history", n, n == 1 ? "" : "s");
    return u->nwins++;
}

/* The room window of an event, or the console if the room has none (and need not). */
static win *event_window(ui *u, const char *room, int open)
{
    for (size_t i = 1; room && i < u->nwins; i++)
        if (u->wins[i].room && strcmp(u->wins[i].jid, room) == 0)
            return &u->wins[i];
    if (open && room)
        return &u->wins[room_window(u, room)];
    return &u->wins[0];
}

static int count_one(const parley_occupant *o, void *ud)
{
    (*(size_t *)ud)++;
    return 0;
}

void rooms_header(ui *u, const win *w, char *out, size_t len)
{
    size_t n = 0;
    const char *nick = parley_room_nick(u->p, w->jid);
    if (nick)
        parley_room_occupants(u->p, w->jid, count_one, &n);
    char *room = fmt_sanitize(w->jid, u->utf8, 0);
    char *snick = nick ? fmt_sanitize(nick, u->utf8, 0) : NULL;
    const char *subject = parley_room_subject(u->p, w->jid);
    char *ssubj = subject ? fmt_sanitize(subject, u->utf8, 0) : NULL;
    fmt_room_header(out, len, (int)(w - u->wins) + 1, room, snick, n, ssubj);
    free(room);
    free(snick);
    free(ssubj);
}

/* ------------------------------------------------------------------ commands */

/* "name" or "name@service": the room's JID as libparley completes it. */
static char *room_jid(ui *u, const char *name)
{
    if (strchr(name, '@'))
        return bare_of(name);
    const char *svc = parley_room_service(u->p);
    if (svc)
        return xasprintf("%s@%s", name, svc);
    const char *at = strchr(u->o->jid, '@');
    char *domain = bare_of(at ? at + 1 : u->o->jid);
    char *jid = xasprintf("%s@conference.%s", name, domain);
    free(domain);
    return jid;
}

/* The room of the current window, or NULL after saying how to use the command. */
static const char *current_room(ui *u, const char *usage)
{
    win *w = &u->wins[u->cur];
    if (w->room)
        return w->jid;
    INFO(u, "%s (in a room's window: /join ROOM first, or Alt-N to it)", usage);
    return NULL;
}

static void cmd_join(ui *u, const char *args)
{
    char name[512], nick[256] = "", password[512] = "";
    const char *rest = args;
    if (!fmt_next_word(&rest, name, sizeof name) || strchr(name, '/')) {
        INFO(u, "usage: /join ROOM[@service] [NICK] [PASSWORD]");
        return;
    }
    fmt_next_word(&rest, nick, sizeof nick);
    fmt_next_word(&rest, password, sizeof password);
    char *jid = room_jid(u, name);
    rooms_ui *r = rooms_ui_of(u);
    /* an invitation's password serves when none is typed */
    const char *pw = password[0] ? password
                     : r->invite_room && strcmp(r->invite_room, jid) == 0 ? r->invite_password
                                                                          : NULL;
    const char *joined_as = parley_room_nick(u->p, jid);
    sync_start_room(u, jid);
    parley_error e = parley_room_join(u->p, jid, nick[0] ? nick : NULL, pw);
    secure_wipe(password, sizeof password);
    size_t i = room_window(u, jid);
    switch_to(u, i);
    if (e == PARLEY_OK && joined_as)
        INFO(u, "you are already in %s as %s", jid, joined_as);
    else if (e == PARLEY_OK)
        INFO(u, "joining %s%s%s ...", jid, nick[0] ? " as " : "", nick);
    else if (e == PARLEY_ERR_STATE)
        INFO(u, "cannot join %s: already joining it under another nickname, or in too many "
             "rooms", jid);
    else
        INFO(u, "cannot join %s: %s (a room is name@service, a nickname at most 128 bytes)",
             jid, parley_strerror(e));
    free(jid);
}

static void cmd_leave(ui *u, const char *args)
{
    const char *room = current_room(u, "usage: /leave [MESSAGE]");
    if (!room)
        return;
    parley_error e = parley_room_leave(u->p, room, *args ? args : NULL);
    if (e == PARLEY_ERR_STATE)
        INFO(u, "you are not in %s", room);
    else if (e != PARLEY_OK)
        INFO(u, "/leave failed: %s", parley_strerror(e));
}

static void on_room_list(parley *p, const parley_room_item *items, size_t n, parley_error err,
                         const char *error_text, void *ud)
{
    ui *u = ud;
    if (err != PARLEY_OK) {
        INFO(u, "cannot list the rooms: %s", error_text ? error_text : parley_strerror(err));
        return;
    }
    INFO(u, "%zu room%s%s", n, n == 1 ? "" : "s", n ? " (/join NAME@SERVICE):" : "");
    for (size_t i = 0; i < n; i++)
        INFO(u, "  %s%s%s%s", items[i].jid, items[i].name ? " (" : "",
             items[i].name ? items[i].name : "", items[i].name ? ")" : "");
}

static void cmd_rooms_list(ui *u, const char *args)
{
    char svc[512] = "";
    const char *rest = args;
    fmt_next_word(&rest, svc, sizeof svc);
    parley_error e = parley_room_list(u->p, svc[0] ? svc : NULL, on_room_list, u);
    if (e == PARLEY_ERR_STATE)
        INFO(u, "cannot list the rooms: not connected (or no group chat service found: "
             "/rooms SERVICE)");
    else if (e != PARLEY_OK)
        INFO(u, "usage: /rooms [SERVICE]");
}

static void cmd_invite(ui *u, const char *args)
{
    char who[512];
    const char *rest = args;
    const char *room = current_room(u, "usage: /invite JID [REASON]");
    if (!room)
        return;
    if (!fmt_next_word(&rest, who, sizeof who) || !strchr(who, '@')) {
        INFO(u, "usage: /invite JID [REASON]");
        return;
    }
    parley_error e = parley_room_invite(u->p, room, who, *rest ? rest : NULL);
    if (e == PARLEY_OK)
        INFO(u, "invited %s to %s", who, room);
    else
        INFO(u, "/invite failed: %s", e == PARLEY_ERR_STATE ? "you are not in the room"
                                                            : "not a valid JID or reason");
}

static void cmd_kick_ban(ui *u, const char *name, const char *args)
{
    int ban = strcmp(name, "ban") == 0;
    const char *usage = ban ? "usage: /ban JID [REASON]" : "usage: /kick NICK [REASON]";
    char who[512];
    const char *rest = args;
    const char *room = current_room(u, usage);
    if (!room)
        return;
    if (!fmt_next_word(&rest, who, sizeof who) || (ban && !strchr(who, '@'))) {
        INFO(u, "%s", usage);
        return;
    }
    const char *reason = *rest ? rest : NULL;
    /* a refusal comes back as a room error, shown in this window */
    parley_error e = ban ? parley_room_ban(u->p, room, who, reason, NULL, NULL)
                         : parley_room_kick(u->p, room, who, reason, NULL, NULL);
    if (e != PARLEY_OK)
        INFO(u, "/%s failed: %s", name, e == PARLEY_ERR_STATE ? "you are not in the room"
                                                              : "bad nickname, JID or reason");
}

static void cmd_topic(ui *u, const char *args)
{
    const char *room = current_room(u, "usage: /topic TEXT");
    if (!room)
        return;
    if (!*args) {
        const char *s = parley_room_subject(u->p, room);
        INFO(u, "topic of %s: %s", room, s ? s : "(none)");
        return;
    }
    parley_error e = parley_room_set_subject(u->p, room, args);
    if (e != PARLEY_OK)
        INFO(u, "/topic failed: %s", e == PARLEY_ERR_STATE ? "you are not in the room"
                                                           : "the topic is too long");
}

static int list_occupant(const parley_occupant *o, void *ud)
{
    ui *u = ud;
    INFO(u, "  %s%s%s%s (%s, %s)%s", o->nick, o->jid ? " <" : "", o->jid ? o->jid : "",
         o->jid ? ">" : "", o->role ? o->role : "?", o->affiliation ? o->affiliation : "?",
         o->is_self ? " - you" : "");
    return 0;
}

static void cmd_who(ui *u)
{
    const char *room = current_room(u, "usage: /who");
    if (!room)
        return;
    size_t n = 0;
    if (parley_room_occupants(u->p, room, count_one, &n) != PARLEY_OK) {
        INFO(u, "you are not in %s", room);
        return;
    }
    INFO(u, "%zu in %s:", n, room);
    parley_room_occupants(u->p, room, list_occupant, u);
}

int rooms_command(ui *u, const char *name, const char *args)
{
    if (room_owner_command(u, name, args)) {
        /* /nick, /affiliation, /destroy, /config */
    } else if (!strcmp(name, "join")) {
        cmd_join(u, args);
    } else if (!strcmp(name, "leave") || !strcmp(name, "part")) {
        cmd_leave(u, args);
    } else if (!strcmp(name, "rooms")) {
        cmd_rooms_list(u, args);
    } else if (!strcmp(name, "invite")) {
        cmd_invite(u, args);
    } else if (!strcmp(name, "kick") || !strcmp(name, "ban")) {
        cmd_kick_ban(u, name, args);
    } else if (!strcmp(name, "topic")) {
        cmd_topic(u, args);
    } else if (!strcmp(name, "who")) {
        cmd_who(u);
    } else if (!strcmp(name, "help")) {
        INFO(u, "group chat: /join ROOM[@service] [NICK] [PASSWORD] | /leave [MESSAGE] | "
             "/rooms [SERVICE] | /invite JID [REASON] | /kick NICK [REASON] | /ban JID "
             "[REASON] | /topic [TEXT] | /who | /close leaves too | /nick NEWNICK | "
             "/affiliation JID owner|admin|member|none|outcast [REASON] | /destroy [REASON] "
             "| /config shows the room's settings, /config KEY VALUE changes one (name, "
             "description, persistent, public, members-only, moderated, password, "
             "max-users, ...). Room messages carry no end-to-end lock: the server can read "
             "them.");
        return 0; /* then the general help */
    } else if (!strcmp(name, "close") && u->wins[u->cur].room) {
        /* closing a room's window leaves the room; the window goes as any other */
        parley_room_leave(u->p, u->wins[u->cur].jid, NULL);
        return 0;
    } else {
        return 0;
    }
    return 1;
}

int rooms_send_text(ui *u, const char *text)
{
    win *w = &u->wins[u->cur];
    if (!w->room)
        return 0;
    /* shown when the room echoes it, in the room's order, with the room's id */
    parley_error e = parley_room_send(u->p, w->jid, text, NULL, 0);
    if (e != PARLEY_OK)
        INFO(u, "not sent: %s", e == PARLEY_ERR_STATE ? "you are not in this room (/join it)"
                                                      : parley_strerror(e));
    return 1;
}

/* ------------------------------------------------------------------ events */

static void on_room_message(ui *u, const parley_event *ev)
{
    if (!ev->body || sync_known(u, ev->room, ev->stanza_id, NULL))
        return; /* already shown and kept (live, then from the archive, or across runs) */
    size_t i = room_window(u, ev->room);
    win *w = &u->wins[i];
    if (!ev->nick) { /* the room itself speaking: a notice, not someone's message */
        win_info(u, w, "%s", ev->body);
        return;
    }
    int private_msg = ev->msg_type && strcmp(ev->msg_type, "chat") == 0;
    char *who = xasprintf("%s%s", ev->nick ? ev->nick : "?", private_msg ? " (private)" : "");
    time_t ts = ev->timestamp_ms ? (time_t)(ev->timestamp_ms / 1000) : time(NULL);
    /* never the end-to-end lock: the server reads every room message */
    win_message(u, w, ts, who, ev->body, 0);
    free(who);
    if (!ev->is_self && !ev->archived)
        win_offer_file(u, w, ev->stanza);
    if (i != u->cur && !ev->archived)
        w->unread++;
    if (u->h) {
        hist_msg m = {.peer = ev->room, .outgoing = ev->is_self, .sender = ev->from,
                      .ts_ms = ev->timestamp_ms, .body = ev->body, .encrypted = 0,
                      .stanza_id = ev->stanza_id};
        if (hist_add(u->h, &m) != HIST_OK)
            CONSOLE(u, "history: %s", hist_errmsg(u->h));
    }
}

static void on_presence(ui *u, const parley_event *ev)
{
    win *w = event_window(u, ev->room, 0);
    const char *by = ev->actor ? " by " : "", *actor = ev->actor ? ev->actor : "";
    const char *sep = ev->reason ? ": " : "", *reason = ev->reason ? ev->reason : "";
    switch (ev->room_change) {
    case PARLEY_ROOM_ENTERED:
        win_info(u, w, "%s entered%s%s%s", ev->nick, ev->real_jid ? " (" : "",
                 ev->real_jid ? ev->real_jid : "", ev->real_jid ? ")" : "");
        break;
    case PARLEY_ROOM_EXITED:
        win_info(u, w, "%s left%s%s", ev->nick, ev->status ? ": " : "",
                 ev->status ? ev->status : "");
        break;
    case PARLEY_ROOM_KICKED:
        win_info(u, w, "%s was kicked%s%s%s%s", ev->nick, by, actor, sep, reason);
        break;
    case PARLEY_ROOM_BANNED:
        win_info(u, w, "%s was banned%s%s%s%s", ev->nick, by, actor, sep, reason);
        break;
    case PARLEY_ROOM_NICK:
        win_info(u, w, "%s is now known as %s", ev->nick, ev->new_nick ? ev->new_nick : "?");
        break;
    case PARLEY_ROOM_REMOVED:
        win_info(u, w, "%s was removed (not a member)", ev->nick);
        break;
    default:
        break; /* status and role changes: not worth a line */
    }
}

static void on_left(ui *u, const parley_event *ev)
{
    win *w = event_window(u, ev->room, 0);
    const char *by = ev->actor ? " by " : "", *actor = ev->actor ? ev->actor : "";
    const char *sep = ev->reason ? ": " : "", *reason = ev->reason ? ev->reason : "";
    switch (ev->room_change) {
    case PARLEY_ROOM_KICKED:
        win_info(u, w, "you were kicked from %s%s%s%s%s", ev->room, by, actor, sep, reason);
        break;
    case PARLEY_ROOM_BANNED:
        win_info(u, w, "you were banned from %s%s%s%s%s", ev->room, by, actor, sep, reason);
        break;
    case PARLEY_ROOM_REMOVED:
        win_info(u, w, "you were removed from %s: it is for members only", ev->room);
        break;
    case PARLEY_ROOM_DESTROYED:
        win_info(u, w, "%s was destroyed%s%s", ev->room, sep, reason);
        break;
    case PARLEY_ROOM_SHUTDOWN:
        win_info(u, w, "you are no longer in %s (the service removed you)", ev->room);
        break;
    case PARLEY_ROOM_DISCONNECTED:
        win_info(u, w, "connection lost: rejoining %s once reconnected", ev->room);
        return;
    default:
        win_info(u, w, "you left %s", ev->room);
        break;
    }
    sync_save(u, ev->room);
}

static void on_joined(ui *u, const parley_event *ev)
{
    win *w = &u->wins[room_window(u, ev->room)];
    size_t n = 0;
    parley_room_occupants(u->p, ev->room, count_one, &n);
    win_info(u, w, "you are in %s as %s (%s, %s)%s; %zu occupant%s: /who lists them", ev->room,
             ev->nick, ev->role ? ev->role : "?", ev->affiliation ? ev->affiliation : "?",
             ev->created ? ", a new room you own" : "", n, n == 1 ? "" : "s");
    win_info(u, w, "group chats are not end-to-end encrypted: the server can read them");
}

static void on_invite(ui *u, const parley_event *ev)
{
    rooms_ui *r = rooms_ui_of(u);
    forget_invite(r);
    r->invite_room = bare_of(ev->room);
    r->invite_password = ev->password ? xstrdup(ev->password) : NULL;
    CONSOLE(u, "%s invites you to %s%s%s%s: /join %s", ev->from ? ev->from : "someone", ev->room,
            ev->reason ? " (" : "", ev->reason ? ev->reason : "", ev->reason ? ")" : "",
            ev->room);
}

int rooms_on_event(ui *u, const parley_event *ev)
{
    switch (ev->type) {
    case PARLEY_EV_ROOM_JOINED: on_joined(u, ev); break;
    case PARLEY_EV_ROOM_LEFT: on_left(u, ev); break;
    case PARLEY_EV_ROOM_MESSAGE: on_room_message(u, ev); break;
    case PARLEY_EV_ROOM_PRESENCE: on_presence(u, ev); break;
    case PARLEY_EV_ROOM_SUBJECT:
        if (ev->subject && *ev->subject)
            win_info(u, event_window(u, ev->room, 1), "topic: %s%s%s%s", ev->subject,
                     ev->nick ? " (set by " : "", ev->nick ? ev->nick : "", ev->nick ? ")" : "");
        break;
    case PARLEY_EV_ROOM_ERROR:
        win_info(u, event_window(u, ev->room, 0), "%s",
                 ev->error_text ? ev->error_text : parley_strerror(ev->error));
        break;
    case PARLEY_EV_ROOM_INVITE: on_invite(u, ev); break;
    default: return 0;
    }
    return 1;
}
