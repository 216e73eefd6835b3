/* cli_rooms.h - group chat, the server archive and carbons in the parley command: room
 * commands, windows and events of the interactive client (cli_rooms.c; running a room:
 * cli_room_owner.c), history from the
 * server archive and copies from other devices (cli_sync.c), `parley rooms`
 * (cli_rooms_cmd.c). */
#ifndef PARLEY_CLI_ROOMS_H
#define PARLEY_CLI_ROOMS_H

#include "chat_internal.h"
#include "options.h"

/* Messages per conversation (and per room) fetched from the archive at sign-in when
 * nothing newer is known locally. */
enum { SYNC_MESSAGES = 50 };

typedef struct rooms_ui {
    char *invite_room;      /* the last invitation, and the password it carried */
    char *invite_password;
    int undecryptable;      /* archived end-to-end messages this device cannot read */
} rooms_ui;

/* ---- cli_rooms.c */
/* A /command about rooms: 1 if handled. /close in a room window leaves the room and
 * returns 0 (the window is then closed as any other). */
int rooms_command(ui *u, const char *name, const char *args);
/* Text typed in a room window goes to the room: 1 if the current window is a room's. */
int rooms_send_text(ui *u, const char *text);
/* The header line of a room window. */
void rooms_header(ui *u, const win *w, char *out, size_t len);
/* The window of a room (opened, with its kept history, if need be). */
size_t room_window(ui *u, const char *room);
/* Room events (joined, left, messages, occupants, subject, errors, invitations): 1 if
 * handled. */
int rooms_on_event(ui *u, const parley_event *ev);
void rooms_ui_free(ui *u);
/* The group chat state of the ui (made on first use). */
rooms_ui *rooms_ui_of(ui *u);

/* ---- cli_room_owner.c */
/* /nick, /affiliation, /destroy, /config: 1 if handled. */
int room_owner_command(ui *u, const char *name, const char *args);
/* A configuration field as /config shows it: its short key ("members-only") and value
 * ("on", "(set)" for a password); 0 if not shown. */
int room_config_describe(const parley_room_field *f, const char **key, const char **value);
/* The fields that set KEY to VALUE (into out, their names in vars): 1 or 2, or 0 with
 * *why (unknown key, a boolean not on/off). */
size_t room_config_fields(const char *key, const char *value, parley_room_field out[2],
                          char vars[2][64], const char **why);

/* ---- cli_sync.c */
/* Carbons on, and the archive sync unless the history is disabled. */
void sync_options(ui *u, parley_options *po);
/* Before connecting: where the archive sync starts (archive mode keeps it). */
void sync_start(ui *u);
/* Before joining room: where its archive sync starts. */
void sync_start_room(ui *u, const char *room);
/* Keep where the sync of archive (NULL: the account's) got to, in archive mode. */
void sync_save(ui *u, const char *archive);
/* At sign-out: sync_save for the account and every room window. */
void sync_save_all(ui *u);
/* Messages from the archive, copies from other devices, ARCHIVE_DONE: 1 if handled. */
int sync_on_event(ui *u, const parley_event *ev);
/* Has the conversation (or room) peer this message already (by the server's id or the
 * sender's)? */
int sync_known(ui *u, const char *peer, const char *stanza_id, const char *id);

/* The extension events in one call, for chat_on_event: 1 if handled. */
int chat_ext_event(ui *u, const parley_event *ev);

/* ---- cli_rooms_cmd.c */
/* `parley rooms [--service S]`: the rooms the service lists, as JSON lines
 * {"jid","name"}. Loads the configuration itself. Returns the exit code. */
int cmd_rooms(cli_opts *o);
/* `parley room config ROOM [KEY VALUE] | affiliation ROOM JID AFF | destroy ROOM [REASON]`:
 * one request to the room; config alone prints the settings as JSON lines
 * {"key","value","label"}. Loads the configuration itself. Returns the exit code. */
int cmd_room(cli_opts *o);

#endif
