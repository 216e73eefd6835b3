/* cli_room_owner.c - the interactive client's commands for running a room: /nick (another
 * nickname), /affiliation (grant or revoke membership, admin, ownership; ban), /destroy and
 * /config (show the room's settings, or change one). Each acts on the room of the current
 * window; the room's answer is shown in that room's window. */
#include "../../common/util.h"
#include "chat_format.h"
#include "cli_rooms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOMCONFIG "muc#roomconfig_"

typedef enum { KEY_TEXT, KEY_BOOL, KEY_NUMBER, KEY_SECRET } key_kind;

/* The settings /config knows by a short name (the field is ROOMCONFIG + field). */
static const struct {
    const char *key, *field;
    key_kind kind;
} keys[] = {
    {"name", "roomname", KEY_TEXT},
    {"description", "roomdesc", KEY_TEXT},
    {"persistent", "persistentroom", KEY_BOOL},
    {"public", "publicroom", KEY_BOOL},
    {"members-only", "membersonly", KEY_BOOL},
    {"moderated", "moderatedroom", KEY_BOOL},
    {"password", "roomsecret", KEY_SECRET},
    {"max-users", "maxusers", KEY_NUMBER},
    {"whois", "whois", KEY_TEXT},
    {"change-subject", "changesubject", KEY_BOOL},
    {"allow-invites", "allowinvites", KEY_BOOL},
    {"allow-pm", "allowpm", KEY_TEXT},
};

/* "members-only", "membersonly", "members_only" and "Members-Only" are the same key. */
static int key_is(const char *typed, const char *key)
{
    for (;; typed++, key++) {
        while (*typed == '-' || *typed == '_')
            typed++;
        while (*key == '-')
            key++;
        if (!*typed || !*key)
            return !*typed && !*key;
        char a = *typed >= 'A' && *typed <= 'Z' ? (char)(*typed - 'A' + 'a') : *typed;
        if (a != *key)
            return 0;
    }
}

static int find_key(const char *typed)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (key_is(typed, keys[i].key) || key_is(typed, keys[i].field))
            return (int)i;
    return -1;
}

/* "on", "yes", "true", "1" -> "1"; "off", "no", "false", "0" -> "0"; else NULL. */
static const char *bool_value(const char *v)
{
    static const char *on[] = {"on", "yes", "true", "1"}, *off[] = {"off", "no", "false", "0"};
    for (size_t i = 0; i < ARRAY_LEN(on); i++) {
        if (strcmp(v, on[i]) == 0)
            return "1";
        if (strcmp(v, off[i]) == 0)
            return "0";
    }
    return NULL;
}

static win *room_win(ui *u, const char *room)
{
    return &u->wins[room_window(u, room)];
}

/* The room of the current window, or NULL after saying how to use the command. */
static const char *this_room(ui *u, const char *usage)
{
    win *w = &u->wins[u->cur];
    if (w->room)
        return w->jid;
    INFO(u, "%s (in a room's window: /join ROOM first, or Alt-N to it)", usage);
    return NULL;
}

static const char *call_error(parley_error e)
{
    return e == PARLEY_ERR_STATE ? "not connected, or not in the room" : "bad arguments";
}

/* ------------------------------------------------------------------ /nick */

static void cmd_nick(ui *u, const char *args)
{
    char nick[256];
    const char *rest = args;
    const char *room = this_room(u, "usage: /nick NEWNICK");
    if (!room)
        return;
    if (!fmt_next_word(&rest, nick, sizeof nick) || *rest) {
        INFO(u, "usage: /nick NEWNICK (one word)");
        return;
    }
    /* the change shows as "OLD is now known as NEW"; a refusal as the room's error */
    parley_error e = parley_room_change_nick(u->p, room, nick);
    if (e != PARLEY_OK)
        INFO(u, "/nick failed: %s", e == PARLEY_ERR_STATE ? "you are not in the room"
                                                          : "not a valid nickname");
}

/* ------------------------------------------------------------------ /affiliation */

static void on_affiliation(parley *p, const char *room, parley_error err,
                           const char *error_text, void *ud)
{
    ui *u = ud;
    if (err != PARLEY_OK)
        win_info(u, room_win(u, room), "/affiliation failed: %s",
                 error_text ? error_text : parley_strerror(err));
    else
        win_info(u, room_win(u, room), "affiliation changed in %s", room);
}

static void cmd_affiliation(ui *u, const char *args)
{
    static const char usage[] = "usage: /affiliation JID owner|admin|member|none|outcast [REASON]";
    char who[512], aff[32];
    const char *rest = args;
    const char *room = this_room(u, usage);
    if (!room)
        return;
    if (!fmt_next_word(&rest, who, sizeof who) || !strchr(who, '@') ||
        !fmt_next_word(&rest, aff, sizeof aff)) {
        INFO(u, "%s", usage);
        return;
    }
    parley_error e = parley_room_set_affiliation(u->p, room, who, aff, *rest ? rest : NULL,
                                                 on_affiliation, u);
    if (e == PARLEY_ERR_INVALID)
        INFO(u, "%s", usage);
    else if (e != PARLEY_OK)
        INFO(u, "/affiliation failed: %s", call_error(e));
    else
        INFO(u, "asking %s to make %s %s ...", room, who, aff);
}

/* ------------------------------------------------------------------ /destroy */

static void on_destroyed(parley *p, const char *room, parley_error err, const char *error_text,
                         void *ud)
{
    ui *u = ud;
    /* success: the room's own presence says "ROOM was destroyed: REASON" */
    if (err != PARLEY_OK)
        win_info(u, room_win(u, room), "/destroy failed: %s",
                 error_text ? error_text : parley_strerror(err));
}

static void cmd_destroy(ui *u, const char *args)
{
    const char *room = this_room(u, "usage: /destroy [REASON]");
    if (!room)
        return;
    parley_error e = parley_room_destroy(u->p, room, *args ? args : NULL, on_destroyed, u);
    if (e != PARLEY_OK)
        INFO(u, "/destroy failed: %s", call_error(e));
}

/* ------------------------------------------------------------------ /config */

int room_config_describe(const parley_room_field *f, const char **key, const char **value)
{
    const char *var = strncmp(f->var, ROOMCONFIG, strlen(ROOMCONFIG)) == 0
                          ? f->var + strlen(ROOMCONFIG) : f->var;
    if (strcmp(var, "passwordprotectedroom") == 0)
        return 0; /* shown as password: set or none */
    int k = find_key(var);
    const char *v = f->value ? f->value : "";
    *key = k >= 0 ? keys[k].key : var;
    if ((k >= 0 && keys[k].kind == KEY_BOOL) || str_eq(f->type, "boolean"))
        v = bool_value(v) && strcmp(bool_value(v), "1") == 0 ? "on" : "off";
    else if (k >= 0 && keys[k].kind == KEY_SECRET)
        v = *v ? "(set)" : "none"; /* never shown on a screen others may see */
    *value = v;
    return 1;
}

size_t room_config_fields(const char *key, const char *value, parley_room_field out[2],
                          char vars[2][64], const char **why)
{
    int k = find_key(key);
    if (k < 0 || !*value) {
        *why = "unknown key, or no value";
        return 0;
    }
    snprintf(vars[0], 64, ROOMCONFIG "%s", keys[k].field);
    snprintf(vars[1], 64, ROOMCONFIG "passwordprotectedroom");
    out[0] = (parley_room_field){vars[0], NULL, NULL, value};
    out[1] = (parley_room_field){vars[1], NULL, NULL, "1"};
    if (keys[k].kind == KEY_BOOL && !(out[0].value = bool_value(value))) {
        *why = "takes on or off";
        return 0;
    }
    if (keys[k].kind != KEY_SECRET)
        return 1;
    if (strcmp(value, "-") == 0) /* no password: protection off, the secret emptied */
        out[0].value = "", out[1].value = "0";
    return 2;
}

static void show_field(ui *u, win *w, const parley_room_field *f)
{
    const char *name, *v;
    if (!room_config_describe(f, &name, &v))
        return;
    char *sv = fmt_sanitize(*v ? v : "(none)", u->utf8, 0);
    char *label = f->label ? fmt_sanitize(f->label, u->utf8, 0) : NULL;
    win_info(u, w, "  %-15s %s%s%s%s", name, sv, label ? "  (" : "", label ? label : "",
             label ? ")" : "");
    free(sv);
    free(label);
}

static void on_config(parley *p, const char *room, const parley_room_field *fields, size_t n,
                      parley_error err, const char *error_text, void *ud)
{
    ui *u = ud;
    win *w = room_win(u, room);
    if (err != PARLEY_OK) {
        win_info(u, w, "/config failed: %s", error_text ? error_text : parley_strerror(err));
        return;
    }
    win_info(u, w, "configuration of %s (/config KEY VALUE changes one):", room);
    for (size_t i = 0; i < n; i++)
        show_field(u, w, &fields[i]);
}

static void on_configured(parley *p, const char *room, parley_error err,
                          const char *error_text, void *ud)
{
    ui *u = ud;
    if (err != PARLEY_OK)
        win_info(u, room_win(u, room), "/config failed: %s",
                 error_text ? error_text : parley_strerror(err));
    else
        win_info(u, room_win(u, room), "configuration of %s changed", room);
}

static void cmd_config(ui *u, const char *args)
{
    static const char usage[] =
        "usage: /config [KEY VALUE] - keys: name, description, persistent, public, "
        "members-only, moderated (on|off), password (WORD, or - for none), max-users N, "
        "whois anyone|moderators, change-subject, allow-invites (on|off), allow-pm "
        "anyone|participants|moderators|none";
    char key[64];
    const char *rest = args;
    const char *room = this_room(u, usage);
    if (!room)
        return;
    if (!fmt_next_word(&rest, key, sizeof key)) {
        parley_error e = parley_room_config_get(u->p, room, on_config, u);
        if (e != PARLEY_OK)
            INFO(u, "/config failed: %s", call_error(e));
        return;
    }
    parley_room_field f[2];
    char vars[2][64];
    const char *why;
    size_t n = room_config_fields(key, rest, f, vars, &why);
    if (n == 0 && find_key(key) >= 0 && *rest) {
        INFO(u, "/config %s takes on or off", key);
        return;
    }
    if (n == 0) {
        INFO(u, "%s", usage);
        return;
    }
    parley_error e = parley_room_config_set(u->p, room, f, n, on_configured, u);
    if (e != PARLEY_OK)
        INFO(u, "/config failed: %s", call_error(e));
}

int room_owner_command(ui *u, const char *name, const char *args)
{
    if (!strcmp(name, "nick"))
        cmd_nick(u, args);
    else if (!strcmp(name, "affiliation") || !strcmp(name, "affiliate"))
        cmd_affiliation(u, args);
    else if (!strcmp(name, "destroy"))
        cmd_destroy(u, args);
    else if (!strcmp(name, "config"))
        cmd_config(u, args);
    else
        return 0;
    return 1;
}
