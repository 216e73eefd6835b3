/* chat_format.h - the terminal client's text formatting, free of curses and of the
 * network: the encryption icons, message lines, roster entries, headers, wrapping,
 * sanitising of untrusted text and /command splitting. Unit-tested on its own.
 *
 * Icons (the seed's lock icons): the client-to-server lock "[TLS1.3 🔒]" in the status
 * bar, and a different, client-to-client lock "🔐" on each end-to-end encrypted message
 * and on the header of an encrypted conversation. Without a UTF-8 locale they become
 * "[TLS1.3 *locked*]" and "[E2E]". Plaintext messages carry no lock, and the header of a
 * plaintext conversation says "[server-readable]", so which messages the server could
 * read is visible at a glance. */
#ifndef PARLEY_CLI_CHAT_FORMAT_H
#define PARLEY_CLI_CHAT_FORMAT_H

#include <stddef.h>
#include <time.h>

/* Client-to-server lock for the status bar. tls_version is parley_tls_info.version
 * ("TLSv1.3"); NULL or "" means not connected: "[no connection]". */
void fmt_tls_lock(char *out, size_t len, const char *tls_version, int utf8);

/* Client-to-client mark of one message: "🔐" / "[E2E]" when encrypted; blanks of the
 * same width when not, so bodies line up and the lock stands out. */
const char *fmt_e2e_mark(int encrypted, int utf8);

/* "HH:MM <mark> <who> body" (who is "me" for our own messages). body is used as given:
 * sanitise it first. */
void fmt_message(char *out, size_t len, time_t ts, const char *who, const char *body,
                 int encrypted, int utf8);

/* Header of conversation window n: "[2] bob@x (online) 🔐 end-to-end encrypted" or
 * "[2] bob@x (online) [server-readable] not end-to-end encrypted". */
void fmt_conv_header(char *out, size_t len, int n, const char *jid, const char *presence,
                     int encrypted, int utf8);

/* The AEAD of an OpenSSL cipher name in the usual spelling: "TLS_AES_256_GCM_SHA384" and
 * "ECDHE-RSA-AES256-GCM-SHA384" are "AES-256-GCM"; "unknown" if not recognised. */
const char *fmt_aead_name(const char *cipher);

/* Presence word for a contact: "offline" when not available, else "online", "away",
 * "dnd", "xa" from the show value ("chat" and NULL are "online"). */
const char *fmt_presence(int available, const char *show);

/* One roster line fitting in width columns: "bob@x online (3)"; the name is shortened
 * (ending in "~") rather than the presence or the unread count. */
void fmt_roster_entry(char *out, size_t len, int width, const char *name,
                      const char *presence, int unread);

/* Make untrusted text (message bodies, names, status texts) safe for the terminal:
 * control characters (C0 except newline, DEL, C1) become "?", tabs spaces, bidi
 * overrides and invalid UTF-8 "?"; with utf8 0, every non-ASCII character is "?".
 * keep_newlines 0 turns newlines into spaces. Freshly allocated. */
char *fmt_sanitize(const char *s, int utf8, int keep_newlines);

/* Display width of s (UTF-8) in columns. */
int fmt_width(const char *s);
/* How many bytes of s (whole characters) fit in cols columns. */
size_t fmt_fit(const char *s, int cols);

/* Split s into display lines of at most width columns (at spaces when possible, at
 * newlines always), calling fn(line, nbytes, ud) for each; returns the line count. */
int fmt_wrap(const char *s, int width, void (*fn)(const char *line, size_t n, void *ud),
             void *ud);

/* "/name args": 1 and the lower-cased name (without '/') and the argument text (leading
 * blanks skipped); 0 if the line is not a command ("//x" is the text "/x": *args then
 * points at it). */
int fmt_command(const char *line, char *name, size_t nlen, const char **args);

/* Next blank-separated word of *p into out (truncated to len); advances *p. 0 if none. */
int fmt_next_word(const char **p, char *out, size_t len);

/* ---- group chat, carbons */

/* Header of room window n: "[3] team@conference.x [server-readable] group chat |
 * 4 occupants, you are alice | topic: ...". Never the end-to-end lock: rooms are
 * readable by the server. nick NULL: not (yet) in the room. */
void fmt_room_header(char *out, size_t len, int n, const char *room, const char *nick,
                     size_t occupants, const char *subject);

/* Who a message line names for a copy from another device of ours (XEP-0280): sent,
 * "me (other device)"; received, "<sender> → (other device)" ("->" without UTF-8). */
void fmt_carbon_who(char *out, size_t len, int sent, const char *sender, int utf8);

#endif
