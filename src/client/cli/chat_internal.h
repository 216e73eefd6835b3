/* chat_internal.h - what the interactive client's files share: the model (windows,
 * contacts, pending subscription requests), its helpers, and the three entry points of
 * the parts: events (chat_model.c), keys and commands (chat_commands.c), drawing and the
 * main loop (chat.c). */
#ifndef PARLEY_CLI_CHAT_INTERNAL_H
#define PARLEY_CLI_CHAT_INTERNAL_H

#include "../parley.h"
#include "history.h"
#include "options.h"

#include <stddef.h>
#include <time.h>
#include <wchar.h>

enum { HISTORY_LOAD = 200, MAX_LINES = 2000, INPUT_MAX = 2048 };

typedef struct wline {
    char *text; /* formatted, sanitised */
} wline;

typedef struct win {
    char *jid; /* bare JID; NULL for the console */
    int room;  /* a group chat window (cli_rooms.c): jid is the room's */
    wline *lines;
    size_t n, cap;
    int unread;
    int scroll; /* display lines scrolled back from the bottom */
    char **files; /* URLs of files received here (XEP-0066), for /get N */
    size_t nfiles;
} win;

typedef struct resource {
    char *res;
    char *show;
} resource;

typedef struct contact {
    char *jid, *name, *subscription;
    int ask;
    resource *res;
    size_t nres;
} contact;

/* A message handed to libparley, shown once it has left (PARLEY_EV_SENT says whether it
 * was end-to-end encrypted) or reported if it was refused. */
typedef struct pending_send {
    char *id, *jid, *text;
} pending_send;

typedef struct ui {
    const cli_opts *o;
    hist_mode mode;
    hist *h;
    parley *p;
    int utf8;
    win *wins;
    size_t nwins, cur;
    contact *contacts;
    size_t ncontacts;
    char **pending; /* bare JIDs asking to see our presence */
    size_t npending;
    pending_send *sends;
    size_t nsends;
    const char *sending_text, *sending_jid; /* during parley_send_message */
    int sent_now;                           /* its SENT (or refusal) came at once */
    wchar_t input[INPUT_MAX];
    size_t ilen;
    int esc;
    int quit;
    char own_show[8];
    char state[96];
    struct rooms_ui *rooms; /* group chat and archive state (cli_rooms.c) */
} ui;

/* Bare JID in lower case (freshly allocated). */
char *bare_of(const char *jid);

/* Lines of a window: a message (sanitised and formatted) or an information line. */
void win_message(ui *u, win *w, time_t ts, const char *who, const char *body, int encrypted);
void win_info(ui *u, win *w, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A file (XEP-0066 out-of-band data with an https URL) in a received message: keep its
 * URL in w and offer /get N. */
void win_offer_file(ui *u, win *w, const parley_stanza *st);
#define INFO(u, ...) win_info((u), &(u)->wins[(u)->cur], __VA_ARGS__)
#define CONSOLE(u, ...) win_info((u), &(u)->wins[0], __VA_ARGS__)
void win_free(win *w);

/* The window of a conversation, opened (with its kept history) if need be. */
size_t conv_window(ui *u, const char *jid);
/* Make window i current (its unread count goes to zero). */
void switch_to(ui *u, size_t i);

contact *find_contact(ui *u, const char *jid);
void contact_free(contact *c);
const char *contact_presence(const contact *c);
int contact_unread(ui *u, const contact *c);
void pending_remove(ui *u, const char *jid);

/* The pending send with this id (removed from the list; caller frees), or 0. */
int sends_take(ui *u, const char *id, pending_send *out);
void sends_free(ui *u);

/* libparley's event callback (userdata: the ui). */
void chat_on_event(parley *p, const parley_event *ev, void *ud);
/* One key from get_wch (is_key: a KEY_* code). */
void chat_on_key(ui *u, int is_key, wint_t ch);
/* Redraw the whole screen from the model. */
void chat_draw(ui *u);

#endif
