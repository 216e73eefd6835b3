/* history.h - the parley client's local chat history: one SQLCipher database per account,
 * encrypted at rest (AES-256), with full-text search, kept or wiped by the history mode.
 *
 *   hist_key k;   hist_key_load_file(&k, path, 0, err, len)   raw 256-bit key file
 *                 hist_key_load_file(&k, path, 1, err, len)   passphrase file (PBKDF2)
 *   hist *h;      hist_open(&h, "/home/a/.local/share/parley/a@x.db", &k, err, len)
 *                 (path NULL: a private in-memory database, for a session without a key)
 *   hist_add(h, &msg);  hist_search(h, "words", cb, ud);  hist_show(h, "bob@x", 0, cb, ud);
 *   hist_forget_peer(h, "bob@x");  hist_wipe(h);  hist_close(h);
 *
 * Modes (the seed's "Local Chat History", Disable_IM_History and chat archives):
 *   default   kept after a conversation window closes, wiped at sign-out
 *   disabled  a conversation is forgotten when its window closes, all wiped at sign-out
 *   archive   kept across sign-outs
 * The caller applies them with hist_on_close() and hist_on_signout().
 *
 * Safety: an existing database is only ever opened, never re-created: a wrong key, a
 * truncated or corrupt file is HIST_ERR_OPEN and the file is left untouched. New files
 * are created 0600 in a 0700 directory; key and passphrase files readable by group or
 * others are refused (HIST_ERR_KEY), as ssh does for private keys. Deleted rows are
 * overwritten (secure_delete) and the file vacuumed, so a wipe leaves no old pages. */
#ifndef PARLEY_CLI_HISTORY_H
#define PARLEY_CLI_HISTORY_H

#include <stddef.h>
#include <stdint.h>

typedef struct hist hist;

typedef enum {
    HIST_OK = 0,
    HIST_ERR_INVALID, /* bad argument (mode name, JID, ...) */
    HIST_ERR_KEY,     /* key or passphrase file missing, malformed or not private */
    HIST_ERR_OPEN,    /* database cannot be opened: wrong key, truncated, corrupt, I/O */
    HIST_ERR_DB,      /* a statement failed on an open database */
    HIST_ERR_UNAVAILABLE, /* this parley was built without SQLCipher */
} hist_error;

typedef enum {
    HIST_MODE_DEFAULT = 0,
    HIST_MODE_DISABLED,
    HIST_MODE_ARCHIVE,
} hist_mode;

/* "default", "disabled", "archive" -> mode; returns -1 for anything else. */
int hist_mode_parse(const char *s, hist_mode *out);
const char *hist_mode_name(hist_mode m);

/* The key: a raw 256-bit key, or a passphrase stretched by SQLCipher's PBKDF2. */
typedef struct hist_key {
    int is_passphrase;
    unsigned char raw[32];
    char passphrase[512];
    size_t len;               /* 0: no key */
} hist_key;

/* Load a key file (passphrase 0: exactly 32 bytes, or 64 hex digits and an optional
 * newline) or a passphrase file (first line; not empty). The file must be a regular file
 * not accessible to group or others. */
hist_error hist_key_load_file(hist_key *k, const char *path, int passphrase, char *err,
                              size_t errlen);
/* Overwrite the key material. */
void hist_key_clear(hist_key *k);

/* <data_dir>/<bare jid>.db (freshly allocated), or NULL with err set if the JID cannot
 * name a file. data_dir NULL: $XDG_DATA_HOME/parley or ~/.local/share/parley. */
char *hist_db_path(const char *data_dir, const char *jid, char *err, size_t errlen);

/* Open (or create, if no file exists at path) the database. key must be given for a file
 * (len > 0); path NULL opens an in-memory database (key ignored). */
hist_error hist_open(hist **out, const char *path, const hist_key *key, char *err,
                     size_t errlen);
void hist_close(hist *h);

typedef struct hist_msg {
    long long id;            /* assigned by hist_add / filled by queries */
    const char *peer;        /* bare JID of the other party (the conversation) */
    int outgoing;            /* 1: we sent it */
    const char *sender;      /* full JID of the sender, or NULL */
    long long ts_ms;         /* Unix time in milliseconds (0: now) */
    const char *body;
    int encrypted;           /* client-to-client encrypted */
    const char *stanza_id;   /* or NULL */
} hist_msg;

/* Record a message. The peer is stored as a bare JID. */
hist_error hist_add(hist *h, const hist_msg *m);

/* Query callbacks: return non-zero to stop. Strings are valid during the call. */
typedef int (*hist_fn)(const hist_msg *m, void *ud);

/* Full-text search of the bodies: every word of text must occur (case-insensitive),
 * oldest first, at most limit results (<= 0: 1000). Returns the number found in *n. */
hist_error hist_search(hist *h, const char *text, int limit, hist_fn fn, void *ud, int *n);
/* The conversation with peer, oldest first: the last `limit` messages (<= 0: all). */
hist_error hist_show(hist *h, const char *peer, int limit, hist_fn fn, void *ud, int *n);

/* Forget one conversation / everything, securely (rows deleted, index merged, pages
 * overwritten, file vacuumed). */
hist_error hist_forget_peer(hist *h, const char *peer);
hist_error hist_wipe(hist *h);

/* The mode's rules: a conversation window was closed / the user signed out. */
hist_error hist_on_close(hist *h, hist_mode mode, const char *peer);
hist_error hist_on_signout(hist *h, hist_mode mode);

/* Is there a message in the conversation with peer whose stanza id is id (the server's
 * archive id, or the sender's message id)? 1 yes, 0 no, -1 on a database error. Keeps a
 * message that arrives again (from the archive, on another device) from being doubled. */
int hist_has_id(hist *h, const char *peer, const char *id);
/* Small values kept with the history (where the archive sync got to): keys start with
 * "archive:" (set refuses others). get: *out "" when absent. A wipe deletes them with the
 * messages. */
hist_error hist_meta_get(hist *h, const char *key, char *out, size_t len);
hist_error hist_meta_set(hist *h, const char *key, const char *value);

/* The last error message of h (static for the life of h). */
const char *hist_errmsg(const hist *h);

#endif
