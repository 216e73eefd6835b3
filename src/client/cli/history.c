/* history.c - the client's encrypted local chat history (SQLCipher), see history.h.
 *
 * Debian 12 ships SQLCipher 3.4 (SQLite 3.15): AES-256-CBC pages with an HMAC-SHA1 per
 * page and PBKDF2-HMAC-SHA1 for passphrases. It has FTS3/FTS4 but not FTS5, so the
 * full-text index is FTS4 (external content, unicode61 tokenizer), which every SQLCipher
 * since 3.0 can read. Passphrases get 256000 PBKDF2 iterations instead of the 3.x
 * default of 64000; raw keys skip the KDF. */
#include "history.h"
#include "../../common/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ no database needed */

int hist_mode_parse(const char *s, hist_mode *out)
{
    if (!s)
        return -1;
    if (!strcmp(s, "default"))
        *out = HIST_MODE_DEFAULT;
    else if (!strcmp(s, "disabled"))
        *out = HIST_MODE_DISABLED;
    else if (!strcmp(s, "archive"))
        *out = HIST_MODE_ARCHIVE;
    else
        return -1;
    return 0;
}

const char *hist_mode_name(hist_mode m)
{
    switch (m) {
    case HIST_MODE_DISABLED: return "disabled";
    case HIST_MODE_ARCHIVE: return "archive";
    default: return "default";
    }
}

void hist_key_clear(hist_key *k)
{
    secure_wipe(k, sizeof *k);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

hist_error hist_key_load_file(hist_key *k, const char *path, int passphrase, char *err,
                              size_t errlen)
{
    memset(k, 0, sizeof *k);
    const char *what = passphrase ? "passphrase file" : "key file";
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open history %s %s: %s", what, path, strerror(errno));
        return HIST_ERR_KEY;
    }
    /* fstat on the open descriptor: what we check is what we read. */
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "history %s %s is not a regular file", what, path);
        close(fd);
        return HIST_ERR_KEY;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen, "history %s %s is accessible by others (mode %04o): "
                 "refusing it; chmod 600 %s", what, path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return HIST_ERR_KEY;
    }
    unsigned char data[600];
    ssize_t n = read(fd, data, sizeof data);
    close(fd);
    hist_error rc = HIST_OK;
    if (n < 0) {
        snprintf(err, errlen, "cannot read history %s %s: %s", what, path, strerror(errno));
        rc = HIST_ERR_KEY;
    } else if (passphrase) {
        size_t len = strcspn((const char *)data, "\r\n"), max = (size_t)n;
        if (len > max)
            len = max;
        if (len == 0 || len >= sizeof k->passphrase || memchr(data, '\0', len)) {
            snprintf(err, errlen, "history passphrase file %s: the first line must be a "
                     "passphrase of 1 to %zu bytes", path, sizeof k->passphrase - 1);
            rc = HIST_ERR_KEY;
        } else {
            memcpy(k->passphrase, data, len);
            k->len = len;
            k->is_passphrase = 1;
        }
    } else if (n == 32) {
        memcpy(k->raw, data, 32);
        k->len = 32;
    } else if (n == 64 || (n == 65 && data[64] == '\n') || (n == 66 && data[64] == '\r')) {
        for (int i = 0; i < 32; i++) {
            int hi = hexval(data[2 * i]), lo = hexval(data[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                rc = HIST_ERR_KEY;
                break;
            }
            k->raw[i] = (unsigned char)(hi << 4 | lo);
        }
        k->len = rc == HIST_OK ? 32 : 0;
        if (rc != HIST_OK)
            snprintf(err, errlen, "history key file %s: not 64 hexadecimal digits", path);
    } else {
        snprintf(err, errlen, "history key file %s must hold a 256-bit key: 32 bytes or 64 "
                 "hexadecimal digits (it has %zd bytes)", path, n);
        rc = HIST_ERR_KEY;
    }
    secure_wipe(data, sizeof data);
    if (rc != HIST_OK)
        hist_key_clear(k);
    return rc;
}

/* Bare JID in lower case (JIDs compare case-insensitively in practice; one conversation
 * per contact whatever the sender's capitalisation). */
static char *bare_jid(const char *jid)
{
    size_t n = strcspn(jid, "/");
    char *b = xstrndup(jid, n);
    for (char *c = b; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return b;
}

char *hist_db_path(const char *data_dir, const char *jid, char *err, size_t errlen)
{
    if (!jid || !*jid) {
        snprintf(err, errlen, "the history needs the account's JID");
        return NULL;
    }
    char *bare = bare_jid(jid);
    int ok = bare[0] && bare[0] != '.' && strchr(bare, '@') != bare;
    for (const unsigned char *c = (const unsigned char *)bare; ok && *c; c++)
        if (*c < 0x20 || *c == 0x7f || *c == '\\')
            ok = 0;
    if (!ok) {
        snprintf(err, errlen, "'%s' cannot name a history file", jid);
        free(bare);
        return NULL;
    }
    char *path;
    if (data_dir && *data_dir) {
        path = xasprintf("%s/%s.db", data_dir, bare);
    } else {
        const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
            path = xasprintf("%s/parley/%s.db", xdg, bare);
        else if (home && *home)
            path = xasprintf("%s/.local/share/parley/%s.db", home, bare);
        else {
            snprintf(err, errlen, "no data directory: set data_dir or HOME");
            path = NULL;
        }
    }
    free(bare);
    return path;
}


/* Debian's sqlcipher.pc does not define it; without it sqlite3_key() is not declared. */
#ifndef SQLITE_HAS_CODEC
#define SQLITE_HAS_CODEC 1
#endif
#include <sqlcipher/sqlite3.h>

#define KDF_ITER 256000
#define FORMAT_TAG "parley-history-1"

struct hist {
    sqlite3 *db;
    char errmsg[256];
};

static const char schema_sql[] =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "INSERT INTO meta VALUES('format','" FORMAT_TAG "');"
    "CREATE TABLE messages("
    "  id INTEGER PRIMARY KEY,"
    "  peer TEXT NOT NULL,"        /* bare JID: the conversation */
    "  outgoing INTEGER NOT NULL,"
    "  sender TEXT,"
    "  ts INTEGER NOT NULL,"       /* Unix ms */
    "  body TEXT NOT NULL,"
    "  encrypted INTEGER NOT NULL,"
    "  stanza_id TEXT);"
    "CREATE INDEX messages_peer ON messages(peer, id);"
    "CREATE VIRTUAL TABLE messages_fts USING fts4(content=\"messages\", body, "
    "  tokenize=unicode61);"
    "CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN"
    "  INSERT INTO messages_fts(docid, body) VALUES(new.id, new.body); END;"
    /* FTS4 with external content reads the old text to unindex it: BEFORE delete. */
    "CREATE TRIGGER messages_bd BEFORE DELETE ON messages BEGIN"
    "  DELETE FROM messages_fts WHERE docid = old.id; END;";

static void set_err(hist *h, const char *what)
{
    snprintf(h->errmsg, sizeof h->errmsg, "%s: %s", what, sqlite3_errmsg(h->db));
}

const char *hist_errmsg(const hist *h)
{
    return h ? h->errmsg : "no history";
}

/* mkdir -p for the directories above path; the ones we create are private (0700). */
static int make_parent_dirs(const char *path, char *err, size_t errlen)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; ; p++) {
            if (*p == '/' || *p == '\0') {
                char saved = *p;
                *p = '\0';
                if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                    snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
                    rc = -1;
                }
                *p = saved;
                if (rc < 0 || saved == '\0')
                    break;
            }
        }
    }
    free(dir);
    return rc;
}

static int exec_sql(hist *h, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(h->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        snprintf(h->errmsg, sizeof h->errmsg, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

static int apply_key(sqlite3 *db, const hist_key *k)
{
    if (k->is_passphrase) {
        int rc = sqlite3_key(db, k->passphrase, (int)k->len);
        if (rc == SQLITE_OK) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA kdf_iter = %d;", KDF_ITER);
            rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
        return rc;
    }
    /* SQLCipher's raw key syntax, x'<64 hex>': used as the AES key, no KDF. */
    char blob[68];
    static const char hex[] = "0123456789abcdef";
    blob[0] = 'x';
    blob[1] = '\'';
    for (int i = 0; i < 32; i++) {
        blob[2 + 2 * i] = hex[k->raw[i] >> 4];
        blob[3 + 2 * i] = hex[k->raw[i] & 15];
    }
    blob[66] = '\'';
    blob[67] = '\0';
    int rc = sqlite3_key(db, blob, 67);
    secure_wipe(blob, sizeof blob);
    return rc;
}

/* One-row, one-column text query (NULL result -> ""), or -1. */
static int query_text(hist *h, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(h->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, outlen, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        out[0] = '\0';
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        snprintf(h->errmsg, sizeof h->errmsg, "%s", sqlite3_errmsg(h->db));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

hist_error hist_open(hist **out, const char *path, const hist_key *key, char *err,
                     size_t errlen)
{
    *out = NULL;
    int created = 0;
    if (path) {
        if (!key || key->len == 0) {
            snprintf(err, errlen, "history %s needs a key (history_key_file or "
                     "history_passphrase_file)", path);
            return HIST_ERR_KEY;
        }
        struct stat st;
        if (lstat(path, &st) == 0) {
            if (!S_ISREG(st.st_mode)) {
                snprintf(err, errlen, "history %s is not a regular file", path);
                return HIST_ERR_OPEN;
            }
            if (st.st_size == 0) {
                snprintf(err, errlen, "history %s is empty (truncated?); it was left as it is: "
                         "remove it to start a new history", path);
                return HIST_ERR_OPEN;
            }
            if ((st.st_mode & 0777) != 0600)
                chmod(path, 0600); /* an older copy may have come with looser bits */
        } else if (errno == ENOENT) {
            if (make_parent_dirs(path, err, errlen) < 0)
                return HIST_ERR_OPEN;
            /* Create the file ourselves: SQLite would make it 0644 under the usual umask. */
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0) {
                snprintf(err, errlen, "cannot create history %s: %s", path, strerror(errno));
                return HIST_ERR_OPEN;
            }
            close(fd);
            created = 1;
        } else {
            snprintf(err, errlen, "cannot open history %s: %s", path, strerror(errno));
            return HIST_ERR_OPEN;
        }
    }
    hist *h = xcalloc(1, sizeof *h);
    /* Never SQLITE_OPEN_CREATE: an existing file that fails must not be replaced. */
    int rc = sqlite3_open_v2(path ? path : ":memory:", &h->db,
                             SQLITE_OPEN_READWRITE | (path ? 0 : SQLITE_OPEN_CREATE), NULL);
    if (rc == SQLITE_OK && path)
        rc = apply_key(h->db, key);
    char result[256] = "";
    hist_error herr = HIST_OK;
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open history %s: %s", path ? path : "(memory)",
                 h->db ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc));
        herr = HIST_ERR_OPEN;
    } else if (query_text(h, "SELECT count(*) FROM sqlite_master;", result, sizeof result) < 0) {
        /* SQLCipher checks page 1's HMAC here: a wrong key looks like "not a database". */
        snprintf(err, errlen, "cannot open history %s: wrong key, or not a Parley history "
                 "database (%s); the file was left untouched", path, h->errmsg);
        herr = HIST_ERR_OPEN;
    } else if (!created && path && strcmp(result, "0") == 0) {
        snprintf(err, errlen, "history %s holds no tables: not a Parley history database; "
                 "the file was left untouched", path);
        herr = HIST_ERR_OPEN;
    }
    if (herr == HIST_OK && !created && path) {
        /* Every page is read and its HMAC checked: a truncated or damaged file fails here
         * rather than half-way through a session. */
        if (query_text(h, "PRAGMA quick_check;", result, sizeof result) < 0 ||
            strcmp(result, "ok") != 0) {
            snprintf(err, errlen, "history %s is damaged (truncated or corrupt: %s); the file "
                     "was left untouched", path, result[0] ? result : h->errmsg);
            herr = HIST_ERR_OPEN;
        } else if (query_text(h, "SELECT v FROM meta WHERE k = 'format';", result,
                              sizeof result) < 0 || strcmp(result, FORMAT_TAG) != 0) {
            snprintf(err, errlen, "history %s is not a Parley history database (%s); the "
                     "file was left untouched", path, result[0] ? result : h->errmsg);
            herr = HIST_ERR_OPEN;
        }
    }
    if (herr == HIST_OK) {
        sqlite3_busy_timeout(h->db, 3000);
        /* Deleted rows are zeroed before their pages are encrypted again; temporary
         * tables (sorting, VACUUM) never reach the disk. */
        if (exec_sql(h, "PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY;") != SQLITE_OK ||
            ((created || !path) &&
             (exec_sql(h, "BEGIN;") != SQLITE_OK || exec_sql(h, schema_sql) != SQLITE_OK ||
              exec_sql(h, "COMMIT;") != SQLITE_OK))) {
            snprintf(err, errlen, "cannot set up history %s: %s", path ? path : "(memory)",
                     h->errmsg);
            herr = HIST_ERR_OPEN;
        }
    }
    if (herr != HIST_OK) {
        sqlite3_close(h->db);
        free(h);
        if (created)
            unlink(path); /* only the empty file we made a moment ago */
        return herr;
    }
    *out = h;
    return HIST_OK;
}

void hist_close(hist *h)
{
    if (!h)
        return;
    sqlite3_close(h->db);
    free(h);
}

hist_error hist_add(hist *h, const hist_msg *m)
{
    if (!m->peer || !m->body)
        return HIST_ERR_INVALID;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "INSERT INTO messages(peer, outgoing, sender, ts, body, "
                           "encrypted, stanza_id) VALUES(?,?,?,?,?,?,?);", -1, &st, NULL) != SQLITE_OK) {
        set_err(h, "cannot record message");
        return HIST_ERR_DB;
    }
    char *peer = bare_jid(m->peer);
    long long ts = m->ts_ms ? m->ts_ms : (long long)(time_now_us() / 1000);
    sqlite3_bind_text(st, 1, peer, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, m->outgoing ? 1 : 0);
    if (m->sender)
        sqlite3_bind_text(st, 3, m->sender, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, ts);
    sqlite3_bind_text(st, 5, m->body, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 6, m->encrypted ? 1 : 0);
    if (m->stanza_id)
        sqlite3_bind_text(st, 7, m->stanza_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    free(peer);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        set_err(h, "cannot record message");
        return HIST_ERR_DB;
    }
    return HIST_OK;
}

#define SELECT_COLS "SELECT id, peer, outgoing, sender, ts, body, encrypted, stanza_id "

static hist_error run_query(hist *h, sqlite3_stmt *st, hist_fn fn, void *ud, int *n)
{
    int count = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hist_msg m = {
            .id = sqlite3_column_int64(st, 0),
            .peer = (const char *)sqlite3_column_text(st, 1),
            .outgoing = sqlite3_column_int(st, 2),
            .sender = (const char *)sqlite3_column_text(st, 3),
            .ts_ms = sqlite3_column_int64(st, 4),
            .body = (const char *)sqlite3_column_text(st, 5),
            .encrypted = sqlite3_column_int(st, 6),
            .stanza_id = (const char *)sqlite3_column_text(st, 7),
        };
        count++;
        if (fn && fn(&m, ud)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (n)
        *n = count;
    if (rc != SQLITE_DONE) {
        set_err(h, "history query failed");
        sqlite3_finalize(st);
        return HIST_ERR_DB;
    }
    sqlite3_finalize(st);
    return HIST_OK;
}

/* Each word of the user's text as a quoted FTS phrase: implicit AND, and no FTS syntax
 * (OR, NOT, -, *, parentheses) can be injected. NULL if there is no word. */
static char *fts_query(const char *text)
{
    size_t n = strlen(text);
    char *q = xmalloc(3 * n + 3), *o = q;
    const char *p = text;
    while (*p) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (o != q)
            *o++ = ' ';
        *o++ = '"';
        while (*p && !isspace((unsigned char)*p)) {
            if (*p != '"')
                *o++ = *p;
            p++;
        }
        *o++ = '"';
    }
    *o = '\0';
    if (o == q) {
        free(q);
        return NULL;
    }
    return q;
}

hist_error hist_search(hist *h, const char *text, int limit, hist_fn fn, void *ud, int *n)
{
    if (n)
        *n = 0;
    char *q = text ? fts_query(text) : NULL;
    if (!q) {
        snprintf(h->errmsg, sizeof h->errmsg, "nothing to search for");
        return HIST_ERR_INVALID;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, SELECT_COLS "FROM messages WHERE id IN (SELECT docid FROM "
                           "messages_fts WHERE messages_fts MATCH ?) ORDER BY id LIMIT ?;", -1,
                           &st, NULL) != SQLITE_OK) {
        free(q);
        set_err(h, "cannot search history");
        return HIST_ERR_DB;
    }
    sqlite3_bind_text(st, 1, q, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : 1000);
    free(q);
    return run_query(h, st, fn, ud, n);
}

hist_error hist_show(hist *h, const char *peer, int limit, hist_fn fn, void *ud, int *n)
{
    if (n)
        *n = 0;
    if (!peer || !*peer)
        return HIST_ERR_INVALID;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "SELECT * FROM (" SELECT_COLS "FROM messages WHERE peer = ? "
                           "ORDER BY id DESC LIMIT ?) ORDER BY id;", -1, &st, NULL) != SQLITE_OK) {
        set_err(h, "cannot read history");
        return HIST_ERR_DB;
    }
    char *bare = bare_jid(peer);
    sqlite3_bind_text(st, 1, bare, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
    free(bare);
    return run_query(h, st, fn, ud, n);
}

/* Delete rows, then make sure nothing of them survives: the FTS index is merged (or
 * rebuilt) so no segment still lists their words, and VACUUM rewrites the file.
 * secure_delete has already zeroed the freed pages. */
static hist_error forget(hist *h, const char *peer)
{
    int rc = exec_sql(h, "BEGIN IMMEDIATE;");
    if (rc == SQLITE_OK) {
        if (peer) {
            sqlite3_stmt *st;
            rc = sqlite3_prepare_v2(h->db, "DELETE FROM messages WHERE peer = ?;", -1, &st, NULL);
            if (rc == SQLITE_OK) {
                char *bare = bare_jid(peer);
                sqlite3_bind_text(st, 1, bare, -1, SQLITE_TRANSIENT);
                free(bare);
                rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
                if (rc != SQLITE_OK)
                    set_err(h, "cannot delete");
                sqlite3_finalize(st);
            } else {
                set_err(h, "cannot delete");
            }
            if (rc == SQLITE_OK)
                rc = exec_sql(h, "INSERT INTO messages_fts(messages_fts) VALUES('optimize');");
        } else {
            rc = exec_sql(h, "DELETE FROM messages;");
            if (rc == SQLITE_OK) /* where the archive sync got to goes with what it got */
                rc = exec_sql(h, "DELETE FROM meta WHERE k LIKE 'archive:%';");
            if (rc == SQLITE_OK)
                rc = exec_sql(h, "INSERT INTO messages_fts(messages_fts) VALUES('rebuild');");
        }
        if (rc == SQLITE_OK)
            rc = exec_sql(h, "COMMIT;");
        else
            sqlite3_exec(h->db, "ROLLBACK;", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = exec_sql(h, "VACUUM;");
    return rc == SQLITE_OK ? HIST_OK : HIST_ERR_DB;
}

hist_error hist_forget_peer(hist *h, const char *peer)
{
    if (!peer || !*peer)
        return HIST_ERR_INVALID;
    return forget(h, peer);
}

hist_error hist_wipe(hist *h)
{
    return forget(h, NULL);
}

hist_error hist_on_close(hist *h, hist_mode mode, const char *peer)
{
    return mode == HIST_MODE_DISABLED ? hist_forget_peer(h, peer) : HIST_OK;
}

hist_error hist_on_signout(hist *h, hist_mode mode)
{
    return mode == HIST_MODE_ARCHIVE ? HIST_OK : hist_wipe(h);
}

int hist_has_id(hist *h, const char *peer, const char *id)
{
    if (!peer || !id || !*id)
        return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "SELECT 1 FROM messages WHERE peer = ? AND stanza_id = ? "
                           "LIMIT 1;", -1, &st, NULL) != SQLITE_OK) {
        set_err(h, "cannot read history");
        return -1;
    }
    char *bare = bare_jid(peer);
    sqlite3_bind_text(st, 1, bare, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    free(bare);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        set_err(h, "cannot read history");
        return -1;
    }
    return rc == SQLITE_ROW;
}

hist_error hist_meta_get(hist *h, const char *key, char *out, size_t len)
{
    if (len)
        out[0] = '\0';
    sqlite3_stmt *st;
    if (!key || sqlite3_prepare_v2(h->db, "SELECT v FROM meta WHERE k = ?;", -1, &st, NULL) !=
                    SQLITE_OK) {
        set_err(h, "cannot read history");
        return HIST_ERR_DB;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && len) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, len, "%s", v ? (const char *)v : "");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        set_err(h, "cannot read history");
        return HIST_ERR_DB;
    }
    return HIST_OK;
}

hist_error hist_meta_set(hist *h, const char *key, const char *value)
{
    sqlite3_stmt *st;
    if (!key || !value || strncmp(key, "archive:", 8) != 0) /* never the format tag */
        return HIST_ERR_INVALID;
    if (sqlite3_prepare_v2(h->db, "INSERT OR REPLACE INTO meta(k, v) VALUES(?, ?);", -1, &st,
                           NULL) != SQLITE_OK) {
        set_err(h, "cannot write history");
        return HIST_ERR_DB;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        set_err(h, "cannot write history");
        return HIST_ERR_DB;
    }
    return HIST_OK;
}
