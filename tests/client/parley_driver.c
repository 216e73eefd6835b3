/* parley_driver.c - a line-driven libparley client for the pytest tests: commands on
 * stdin (one a line), every event on stdout as one JSON object a line. It exercises the
 * library's group chat, archive and carbons API against a real parleyd, where the
 * interactive client would need a terminal to be read.
 *
 *   parley-driver --jid J --password-file F --ca-file F --server H:P
 *                 [--archive-sync N] [--carbons 0|1] [--last ARCHIVE=ID]...
 *                 [--reconnect MIN_MS] [--reconnect-attempts N]
 *
 * Commands: join ROOM NICK [PASSWORD] | leave ROOM | send ROOM TEXT | msg JID TEXT |
 *   topic ROOM TEXT | invite ROOM JID [REASON] | kick ROOM NICK [REASON] |
 *   ban ROOM JID [REASON] | list [SERVICE] | who ROOM | fetch ARCHIVE WITH AFTER MAX |
 *   last ARCHIVE | quit      ("-" stands for an absent ARCHIVE, WITH or AFTER) |
 *   nick ROOM NICK | affiliation ROOM JID AFFILIATION [REASON] | destroy ROOM [REASON] |
 *   config ROOM | configure ROOM VAR=VALUE...   (answers: "done" and "config" events) |
 *   e2e_ready   (the ack's detail: "1" once this sign-in's OMEMO keys are published)
 * Each command answers {"event":"ack","cmd":...,"error":...} once issued. */
#include "../../src/client/cli/json.h"
#include "../../src/client/parley.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *event_name(parley_event_type t)
{
    switch (t) {
    case PARLEY_EV_CONNECTED: return "connected";
    case PARLEY_EV_DISCONNECTED: return "disconnected";
    case PARLEY_EV_MESSAGE: return "message";
    case PARLEY_EV_PRESENCE: return "presence";
    case PARLEY_EV_SUBSCRIPTION: return "subscription";
    case PARLEY_EV_ROSTER: return "roster";
    case PARLEY_EV_SENT: return "sent";
    case PARLEY_EV_SECURITY: return "security";
    case PARLEY_EV_POLICY: return "policy";
    case PARLEY_EV_RESENT: return "resent";
    case PARLEY_EV_ROOM_JOINED: return "room_joined";
    case PARLEY_EV_ROOM_LEFT: return "room_left";
    case PARLEY_EV_ROOM_MESSAGE: return "room_message";
    case PARLEY_EV_ROOM_PRESENCE: return "room_presence";
    case PARLEY_EV_ROOM_SUBJECT: return "room_subject";
    case PARLEY_EV_ROOM_ERROR: return "room_error";
    case PARLEY_EV_ROOM_INVITE: return "room_invite";
    case PARLEY_EV_ARCHIVE_DONE: return "archive_done";
    }
    return "other";
}

static void out_line(buf *b)
{
    buf_append_str(b, "}\n");
    fwrite(b->data, 1, b->len, stdout);
    fflush(stdout);
    buf_free(b);
}

static void on_event(parley *p, const parley_event *ev, void *ud)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, "{");
    json_kv_string(&b, "event", event_name(ev->type), 1);
    json_kv_string(&b, "from", ev->from, 0);
    json_kv_string(&b, "to", ev->to, 0);
    json_kv_string(&b, "id", ev->id, 0);
    json_kv_string(&b, "type", ev->msg_type, 0);
    json_kv_string(&b, "body", ev->body, 0);
    json_kv_bool(&b, "encrypted", ev->encrypted, 0);
    json_kv_string(&b, "room", ev->room, 0);
    json_kv_string(&b, "nick", ev->nick, 0);
    json_kv_string(&b, "real_jid", ev->real_jid, 0);
    json_kv_string(&b, "role", ev->role, 0);
    json_kv_string(&b, "affiliation", ev->affiliation, 0);
    json_kv_string(&b, "subject", ev->subject, 0);
    json_kv_string(&b, "new_nick", ev->new_nick, 0);
    json_kv_string(&b, "actor", ev->actor, 0);
    json_kv_string(&b, "reason", ev->reason, 0);
    json_kv_string(&b, "password", ev->password, 0);
    json_kv_int(&b, "change", ev->room_change, 0);
    json_kv_bool(&b, "is_self", ev->is_self, 0);
    json_kv_bool(&b, "created", ev->created, 0);
    json_kv_string(&b, "stanza_id", ev->stanza_id, 0);
    json_kv_int(&b, "timestamp_ms", (long)ev->timestamp_ms, 0);
    json_kv_bool(&b, "archived", ev->archived, 0);
    json_kv_int(&b, "carbon", ev->carbon, 0);
    json_kv_bool(&b, "outgoing", ev->outgoing, 0);
    json_kv_int(&b, "count", ev->count, 0);
    json_kv_int(&b, "error", ev->error, 0);
    json_kv_string(&b, "error_text", ev->error_text, 0);
    out_line(&b);
}

static void ack(const char *cmd, parley_error e, const char *detail)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, "{");
    json_kv_string(&b, "event", "ack", 1);
    json_kv_string(&b, "cmd", cmd, 0);
    json_kv_int(&b, "error", e, 0);
    json_kv_string(&b, "detail", detail, 0);
    out_line(&b);
}

static void on_list(parley *p, const parley_room_item *items, size_t n, parley_error err,
                    const char *error_text, void *ud)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, "{");
    json_kv_string(&b, "event", "rooms", 1);
    json_kv_int(&b, "error", err, 0);
    json_kv_string(&b, "error_text", error_text, 0);
    buf_append_str(&b, ",\"items\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_append_str(&b, ",");
        json_append_string(&b, items[i].jid);
    }
    buf_append_str(&b, "]");
    out_line(&b);
}

static int print_occupant(const parley_occupant *o, void *ud)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, "{");
    json_kv_string(&b, "event", "occupant", 1);
    json_kv_string(&b, "room", ud, 0);
    json_kv_string(&b, "nick", o->nick, 0);
    json_kv_string(&b, "jid", o->jid, 0);
    json_kv_string(&b, "role", o->role, 0);
    json_kv_string(&b, "affiliation", o->affiliation, 0);
    json_kv_bool(&b, "is_self", o->is_self, 0);
    out_line(&b);
    return 0;
}

static void on_done(parley *p, const char *room, parley_error err, const char *error_text,
                    void *ud)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, "{");
    json_kv_string(&b, "event", "done", 1);
    json_kv_string(&b, "what", ud, 0);
    json_kv_string(&b, "room", room, 0);
    json_kv_int(&b, "error", err, 0);
    json_kv_string(&b, "error_text", error_text, 0);
    out_line(&b);
}

static void on_config(parley *p, const char *room, const parley_room_field *fields, size_t n,
                      parley_error err, const char *error_text, void *ud)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, "{");
    json_kv_string(&b, "event", "config", 1);
    json_kv_string(&b, "room", room, 0);
    json_kv_int(&b, "error", err, 0);
    json_kv_string(&b, "error_text", error_text, 0);
    buf_append_str(&b, ",\"fields\":{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_append_str(&b, ",");
        json_append_string(&b, fields[i].var);
        buf_append_str(&b, ":");
        json_append_string(&b, fields[i].value ? fields[i].value : "");
    }
    buf_append_str(&b, "}");
    out_line(&b);
}

/* Next space-separated word of *s (modified in place), or NULL; "-" is NULL too. */
static char *word(char **s, int dash_null)
{
    while (**s == ' ')
        (*s)++;
    if (!**s)
        return NULL;
    char *w = *s;
    while (**s && **s != ' ')
        (*s)++;
    if (**s)
        *(*s)++ = '\0';
    return dash_null && strcmp(w, "-") == 0 ? NULL : w;
}

static int command(parley *p, char *line)
{
    char *s = line;
    char *cmd = word(&s, 0);
    if (!cmd)
        return 0;
    while (*s == ' ')
        s++;
    parley_error e = PARLEY_ERR_INVALID;
    char *a, *b, *c, *d;
    if (!strcmp(cmd, "quit")) {
        ack(cmd, PARLEY_OK, NULL);
        return 1;
    } else if (!strcmp(cmd, "join")) {
        a = word(&s, 0), b = word(&s, 1), c = word(&s, 1);
        e = parley_room_join(p, a, b, c);
    } else if (!strcmp(cmd, "leave")) {
        e = parley_room_leave(p, word(&s, 0), NULL);
    } else if (!strcmp(cmd, "send")) {
        a = word(&s, 0);
        e = parley_room_send(p, a, s, NULL, 0);
    } else if (!strcmp(cmd, "msg")) {
        a = word(&s, 0);
        e = parley_send_message(p, a, "chat", s, NULL, 0);
    } else if (!strcmp(cmd, "topic")) {
        a = word(&s, 0);
        e = parley_room_set_subject(p, a, s);
    } else if (!strcmp(cmd, "invite")) {
        a = word(&s, 0), b = word(&s, 0);
        e = parley_room_invite(p, a, b, *s ? s : NULL);
    } else if (!strcmp(cmd, "kick") || !strcmp(cmd, "ban")) {
        a = word(&s, 0), b = word(&s, 0);
        e = !strcmp(cmd, "kick") ? parley_room_kick(p, a, b, *s ? s : NULL, NULL, NULL)
                                 : parley_room_ban(p, a, b, *s ? s : NULL, NULL, NULL);
    } else if (!strcmp(cmd, "list")) {
        e = parley_room_list(p, word(&s, 1), on_list, NULL);
    } else if (!strcmp(cmd, "who")) {
        a = word(&s, 0);
        e = parley_room_occupants(p, a, print_occupant, a);
    } else if (!strcmp(cmd, "fetch")) {
        a = word(&s, 1), b = word(&s, 1), c = word(&s, 1), d = word(&s, 0);
        e = parley_archive_fetch(p, a, b, c, d ? atoi(d) : 0);
    } else if (!strcmp(cmd, "nick")) {
        a = word(&s, 0);
        e = parley_room_change_nick(p, a, word(&s, 0));
    } else if (!strcmp(cmd, "affiliation")) {
        a = word(&s, 0), b = word(&s, 0), c = word(&s, 0);
        e = parley_room_set_affiliation(p, a, b, c, *s ? s : NULL, on_done, "affiliation");
    } else if (!strcmp(cmd, "destroy")) {
        a = word(&s, 0);
        e = parley_room_destroy(p, a, *s ? s : NULL, on_done, "destroy");
    } else if (!strcmp(cmd, "config")) {
        e = parley_room_config_get(p, word(&s, 0), on_config, NULL);
    } else if (!strcmp(cmd, "configure")) {
        parley_room_field f[8];
        size_t n = 0;
        a = word(&s, 0);
        for (char *w; n < 8 && (w = word(&s, 0)) != NULL; n++) {
            char *eq = strchr(w, '=');
            if (eq)
                *eq = '\0';
            f[n] = (parley_room_field){w, NULL, NULL, eq ? eq + 1 : NULL};
        }
        e = parley_room_config_set(p, a, f, n, on_done, "configure");
    } else if (!strcmp(cmd, "last")) {
        const char *id = parley_archive_last(p, word(&s, 1));
        ack(cmd, PARLEY_OK, id);
        return 0;
    } else if (!strcmp(cmd, "e2e_ready")) { /* "1" once this sign-in published its keys */
        ack(cmd, PARLEY_OK, parley_e2e_ready(p) ? "1" : "0");
        return 0;
    }
    ack(cmd, e, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    parley_options o;
    parley_options_init(&o);
    o.reconnect = 0;
    o.on_event = on_event;
    const char *lasts[8];
    int nlast = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--jid"))
            o.jid = v;
        else if (!strcmp(k, "--password-file"))
            o.password_file = v;
        else if (!strcmp(k, "--ca-file"))
            o.ca_file = v;
        else if (!strcmp(k, "--server"))
            o.server = v;
        else if (!strcmp(k, "--archive-sync"))
            o.archive_sync = atoi(v);
        else if (!strcmp(k, "--carbons"))
            o.carbons = atoi(v);
        else if (!strcmp(k, "--reconnect")) /* N: reconnect after a lost session, min back-off N ms */
            o.reconnect = 1, o.reconnect_min_ms = atoi(v), o.reconnect_max_ms = 4 * atoi(v);
        else if (!strcmp(k, "--reconnect-attempts")) /* N: give up after N failed attempts */
            o.reconnect_max_attempts = atoi(v);
        else if (!strcmp(k, "--last") && nlast < 8)
            lasts[nlast++] = v;
        else {
            fprintf(stderr, "parley-driver: unknown option %s\n", k);
            return 1;
        }
    }
    char why[512];
    parley_error err;
    parley *p = parley_new(&o, &err, why, sizeof why);
    if (!p) {
        fprintf(stderr, "parley-driver: %s\n", why);
        return 1;
    }
    for (int i = 0; i < nlast; i++) { /* ARCHIVE=ID, "-" for the account's */
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s", lasts[i]);
        char *eq = strchr(tmp, '=');
        if (eq) {
            *eq = '\0';
            parley_archive_set_last(p, strcmp(tmp, "-") ? tmp : NULL, eq + 1);
        }
    }
    parley_connect(p);
    char line[8192];
    size_t len = 0;
    int quit = 0, eof = 0;
    while (!quit) {
        struct pollfd pfd[2] = {{eof ? -1 : 0, POLLIN, 0}, {parley_fd(p), parley_poll_events(p), 0}};
        int t = parley_timeout_ms(p);
        poll(pfd, 2, t < 0 || t > 200 ? 200 : t);
        if (parley_process(p, 0) != PARLEY_OK && parley_get_state(p) == PARLEY_STATE_OFFLINE)
            break;
        if (!eof && (pfd[0].revents & (POLLIN | POLLHUP))) {
            ssize_t n = read(0, line + len, sizeof line - 1 - len);
            if (n <= 0) {
                eof = 1;
                continue;
            }
            len += (size_t)n;
            char *nl;
            while (!quit && (nl = memchr(line, '\n', len))) {
                *nl = '\0';
                quit = command(p, line);
                size_t used = (size_t)(nl - line) + 1;
                memmove(line, nl + 1, len - used);
                len -= used;
            }
            if (len == sizeof line - 1)
                len = 0; /* a line too long for a test: dropped */
        }
    }
    parley_disconnect(p);
    for (int i = 0; i < 30 && parley_get_state(p) != PARLEY_STATE_OFFLINE; i++)
        parley_process(p, 100);
    parley_free(p);
    return 0;
}
