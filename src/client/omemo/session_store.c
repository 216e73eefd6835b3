/* session_store.c - OMEMO keys and sessions in SQLCipher (session_store.h). Private keys
 * and session snapshots are stored as BLOBs in the encrypted file and wiped from memory
 * by the callers after use; SQLite's own copies live in pages SQLCipher encrypts, with
 * secure_delete on so freed pages are zeroed. */
#include "session_store.h"

#include "../../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SQLITE_HAS_CODEC
#define SQLITE_HAS_CODEC 1 /* Debian's sqlcipher.pc does not define it */
#endif
#include <sqlcipher/sqlite3.h>

#define FORMAT_TAG "parley-omemo-1"
#define KDF_ITER 256000

struct om_store {
    sqlite3 *db;
    char errmsg[256];
};

static const char schema_sql[] =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "INSERT INTO meta VALUES('format','" FORMAT_TAG "');"
    "CREATE TABLE counters(name TEXT PRIMARY KEY, last INTEGER NOT NULL);"
    "CREATE TABLE own(one INTEGER PRIMARY KEY CHECK(one = 1), device_id INTEGER NOT NULL,"
    "  seed BLOB NOT NULL, ik BLOB NOT NULL);"
    "CREATE TABLE spk(id INTEGER PRIMARY KEY, priv BLOB NOT NULL, pub BLOB NOT NULL,"
    "  sig BLOB NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE prekeys(id INTEGER PRIMARY KEY, priv BLOB NOT NULL, pub BLOB NOT NULL);"
    "CREATE TABLE devices(jid TEXT NOT NULL, id INTEGER NOT NULL, ik BLOB, trust INTEGER NOT NULL,"
    "  active INTEGER NOT NULL, ik_changed INTEGER NOT NULL, first_seen INTEGER NOT NULL,"
    "  label TEXT NOT NULL, PRIMARY KEY(jid, id));"
    "CREATE TABLE sessions(jid TEXT NOT NULL, id INTEGER NOT NULL, state BLOB NOT NULL,"
    "  PRIMARY KEY(jid, id));";

const char *om_store_errmsg(const om_store *s) { return s ? s->errmsg : "no key store"; }

static om_err fail(om_store *s, const char *what)
{
    snprintf(s->errmsg, sizeof s->errmsg, "key store: %s: %s", what, sqlite3_errmsg(s->db));
    return OM_ERR_STORE;
}

static int exec(om_store *s, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        snprintf(s->errmsg, sizeof s->errmsg, "key store: %s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

static int make_parent_dirs(const char *path, char *why, size_t whylen)
{
    char *dir = xstrdup(path);
    int rc = 0;
    for (char *p = dir + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            snprintf(why, whylen, "cannot create %s: %s", dir, strerror(errno));
            rc = -1;
        }
        *p = '/';
    }
    free(dir);
    return rc;
}

static int apply_key(sqlite3 *db, const uint8_t *raw, const char *pass)
{
    if (pass) {
        int rc = sqlite3_key(db, pass, (int)strlen(pass));
        if (rc == SQLITE_OK) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA kdf_iter = %d;", KDF_ITER);
            rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
        return rc;
    }
    /* x'<64 hex>': SQLCipher uses it as the AES key, without a KDF */
    static const char hex[] = "0123456789abcdef";
    char blob[68] = "x'";
    for (int i = 0; i < 32; i++) {
        blob[2 + 2 * i] = hex[raw[i] >> 4];
        blob[3 + 2 * i] = hex[raw[i] & 15];
    }
    blob[66] = '\'';
    blob[67] = '\0';
    int rc = sqlite3_key(db, blob, 67);
    secure_wipe(blob, sizeof blob);
    return rc;
}

/* One text value of a one-row query into out ("" if no row), or -1. */
static int query_text(om_store *s, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    out[0] = '\0';
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, outlen, "%s", t ? (const char *)t : "");
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE)
        snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

om_err om_store_open(om_store **out, const char *path, const uint8_t *raw_key,
                     const char *passphrase, char *why, size_t whylen)
{
    *out = NULL;
    int created = 0;
    if (path) {
        if (!raw_key && !(passphrase && *passphrase)) {
            snprintf(why, whylen, "key store %s needs a key", path);
            return OM_ERR_STORE;
        }
        struct stat st;
        if (lstat(path, &st) == 0) {
            if (!S_ISREG(st.st_mode) || st.st_size == 0) {
                snprintf(why, whylen, "key store %s is %s; it was left as it is", path,
                         S_ISREG(st.st_mode) ? "empty (truncated?)" : "not a regular file");
                return OM_ERR_STORE;
            }
        } else if (errno == ENOENT) {
            if (make_parent_dirs(path, why, whylen) < 0)
                return OM_ERR_STORE;
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0) {
                snprintf(why, whylen, "cannot create key store %s: %s", path, strerror(errno));
                return OM_ERR_STORE;
            }
            close(fd);
            created = 1;
        } else {
            snprintf(why, whylen, "cannot open key store %s: %s", path, strerror(errno));
            return OM_ERR_STORE;
        }
    }
    om_store *s = xcalloc(1, sizeof *s);
    /* never SQLITE_OPEN_CREATE for a file: an existing one that fails is not replaced */
    int rc = sqlite3_open_v2(path ? path : ":memory:", &s->db,
                             SQLITE_OPEN_READWRITE | (path ? 0 : SQLITE_OPEN_CREATE), NULL);
    if (rc == SQLITE_OK)
        sqlite3_busy_timeout(s->db, 5000); /* another parley of this account may be writing */
    if (rc == SQLITE_OK && path)
        rc = apply_key(s->db, raw_key, raw_key ? NULL : passphrase);
    char res[64];
    om_err e = OM_OK;
    if (rc != SQLITE_OK) {
        snprintf(why, whylen, "cannot open key store %s: %s", path ? path : "(memory)",
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        e = OM_ERR_STORE;
    } else if (query_text(s, "SELECT count(*) FROM sqlite_master;", res, sizeof res) < 0 &&
               sqlite3_errcode(s->db) == SQLITE_BUSY) {
        snprintf(why, whylen, "key store %s is busy (another parley of this account holds it)",
                 path);
        e = OM_ERR_STORE;
    } else if (res[0] == '\0') {
        snprintf(why, whylen, "cannot open key store %s: wrong key, or not a Parley key "
                 "store (%s); the file was left untouched", path, s->errmsg);
        e = OM_ERR_STORE;
    } else if (path && !created &&
               (query_text(s, "PRAGMA quick_check;", res, sizeof res) < 0 || strcmp(res, "ok") ||
                query_text(s, "SELECT v FROM meta WHERE k = 'format';", res, sizeof res) < 0 ||
                strcmp(res, FORMAT_TAG))) {
        snprintf(why, whylen, "key store %s is damaged or not a Parley key store; the file "
                 "was left untouched", path);
        e = OM_ERR_STORE;
    }
    if (e == OM_OK) {
        if (exec(s, "PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY;") != SQLITE_OK ||
            ((created || !path) && (exec(s, "BEGIN;") != SQLITE_OK ||
                                    exec(s, schema_sql) != SQLITE_OK ||
                                    exec(s, "COMMIT;") != SQLITE_OK))) {
            snprintf(why, whylen, "cannot set up key store %s: %s", path ? path : "(memory)",
                     s->errmsg);
            e = OM_ERR_STORE;
        }
    }
    if (e != OM_OK) {
        sqlite3_close(s->db);
        free(s);
        if (created)
            unlink(path); /* only the empty file made a moment ago */
        return e;
    }
    *out = s;
    return OM_OK;
}

void om_store_close(om_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s);
}

om_err om_store_begin(om_store *s)
{
    return exec(s, "BEGIN IMMEDIATE;") == SQLITE_OK ? OM_OK : OM_ERR_STORE;
}

om_err om_store_commit(om_store *s)
{
    return exec(s, "COMMIT;") == SQLITE_OK ? OM_OK : OM_ERR_STORE;
}

void om_store_rollback(om_store *s)
{
    sqlite3_exec(s->db, "ROLLBACK;", NULL, NULL, NULL);
}

/* ------------------------------------------------------------------ statements */

static sqlite3_stmt *prep(om_store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail(s, "prepare");
        return NULL;
    }
    return st;
}

/* Step a statement that returns no row, then finalize it. */
static om_err run(om_store *s, sqlite3_stmt *st, const char *what)
{
    if (!st)
        return OM_ERR_STORE;
    int rc = sqlite3_step(st);
    om_err e = rc == SQLITE_DONE ? OM_OK : fail(s, what);
    sqlite3_finalize(st);
    return e;
}

/* Copy a BLOB column of exactly len bytes; -1 otherwise. */
static int col_blob(sqlite3_stmt *st, int col, uint8_t *out, size_t len)
{
    const void *p = sqlite3_column_blob(st, col);
    if (!p || (size_t)sqlite3_column_bytes(st, col) != len)
        return -1;
    memcpy(out, p, len);
    return 0;
}

om_err om_store_own_get(om_store *s, om_own *own, int *found)
{
    *found = 0;
    sqlite3_stmt *st = prep(s, "SELECT device_id, seed, ik FROM own WHERE one = 1;");
    if (!st)
        return OM_ERR_STORE;
    int rc = sqlite3_step(st);
    om_err e = OM_OK;
    if (rc == SQLITE_ROW) {
        own->device_id = (uint32_t)sqlite3_column_int64(st, 0);
        if (col_blob(st, 1, own->seed, OM_KEY) < 0 || col_blob(st, 2, own->ik, OM_KEY) < 0)
            e = fail(s, "damaged identity");
        else
            *found = 1;
    } else if (rc != SQLITE_DONE) {
        e = fail(s, "read identity");
    }
    sqlite3_finalize(st);
    return e;
}

om_err om_store_own_set(om_store *s, const om_own *own)
{
    sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO own VALUES(1, ?, ?, ?);");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_int64(st, 1, own->device_id);
    sqlite3_bind_blob(st, 2, own->seed, OM_KEY, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 3, own->ik, OM_KEY, SQLITE_TRANSIENT);
    return run(s, st, "store identity");
}

om_err om_store_next_id(om_store *s, const char *counter, uint32_t *id)
{
    /* SQLCipher 3.4 is SQLite 3.15: no UPSERT, so insert-if-missing, then increment */
    sqlite3_stmt *st = prep(s, "INSERT OR IGNORE INTO counters VALUES(?, 0);");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_text(st, 1, counter, -1, SQLITE_TRANSIENT);
    if (run(s, st, "counter") != OM_OK)
        return OM_ERR_STORE;
    st = prep(s, "UPDATE counters SET last = last + 1 WHERE name = ?;");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_text(st, 1, counter, -1, SQLITE_TRANSIENT);
    if (run(s, st, "counter") != OM_OK)
        return OM_ERR_STORE;
    st = prep(s, "SELECT last FROM counters WHERE name = ?;");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_text(st, 1, counter, -1, SQLITE_TRANSIENT);
    om_err e = sqlite3_step(st) == SQLITE_ROW ? OM_OK : fail(s, "counter");
    if (e == OM_OK) {
        int64_t v = sqlite3_column_int64(st, 0);
        if (v < 1 || v > UINT32_MAX)
            e = fail(s, "counter exhausted");
        else
            *id = (uint32_t)v;
    }
    sqlite3_finalize(st);
    return e;
}

om_err om_store_spk_add(om_store *s, const om_spk *spk)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO spk VALUES(?, ?, ?, ?, ?);");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_int64(st, 1, spk->id);
    sqlite3_bind_blob(st, 2, spk->priv, OM_KEY, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 3, spk->pub, OM_KEY, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 4, spk->sig, OM_SIG, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, spk->created);
    return run(s, st, "store signed pre-key");
}

static om_err spk_query(om_store *s, sqlite3_stmt *st, om_spk *spk, int *found)
{
    *found = 0;
    if (!st)
        return OM_ERR_STORE;
    int rc = sqlite3_step(st);
    om_err e = OM_OK;
    if (rc == SQLITE_ROW) {
        spk->id = (uint32_t)sqlite3_column_int64(st, 0);
        spk->created = sqlite3_column_int64(st, 4);
        if (col_blob(st, 1, spk->priv, OM_KEY) < 0 || col_blob(st, 2, spk->pub, OM_KEY) < 0 ||
            col_blob(st, 3, spk->sig, OM_SIG) < 0)
            e = fail(s, "damaged signed pre-key");
        else
            *found = 1;
    } else if (rc != SQLITE_DONE) {
        e = fail(s, "read signed pre-key");
    }
    sqlite3_finalize(st);
    return e;
}

om_err om_store_spk_current(om_store *s, om_spk *spk, int *found)
{
    return spk_query(s, prep(s, "SELECT id, priv, pub, sig, created FROM spk ORDER BY id DESC "
                                "LIMIT 1;"), spk, found);
}

om_err om_store_spk_get(om_store *s, uint32_t id, om_spk *spk, int *found)
{
    sqlite3_stmt *st = prep(s, "SELECT id, priv, pub, sig, created FROM spk WHERE id = ?;");
    if (st)
        sqlite3_bind_int64(st, 1, id);
    return spk_query(s, st, spk, found);
}

om_err om_store_spk_prune(om_store *s, int keep)
{
    sqlite3_stmt *st = prep(s, "DELETE FROM spk WHERE id NOT IN (SELECT id FROM spk ORDER BY "
                               "id DESC LIMIT ?);");
    if (st)
        sqlite3_bind_int(st, 1, keep);
    return run(s, st, "prune signed pre-keys");
}

om_err om_store_pk_add(om_store *s, uint32_t id, const uint8_t priv[OM_KEY],
                       const uint8_t pub[OM_KEY])
{
    sqlite3_stmt *st = prep(s, "INSERT INTO prekeys VALUES(?, ?, ?);");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_blob(st, 2, priv, OM_KEY, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 3, pub, OM_KEY, SQLITE_TRANSIENT);
    return run(s, st, "store pre-key");
}

om_err om_store_pk_get(om_store *s, uint32_t id, uint8_t priv[OM_KEY], int *found)
{
    *found = 0;
    sqlite3_stmt *st = prep(s, "SELECT priv FROM prekeys WHERE id = ?;");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    om_err e = OM_OK;
    if (rc == SQLITE_ROW)
        *found = col_blob(st, 0, priv, OM_KEY) == 0;
    else if (rc != SQLITE_DONE)
        e = fail(s, "read pre-key");
    sqlite3_finalize(st);
    return e;
}

om_err om_store_pk_delete(om_store *s, uint32_t id)
{
    sqlite3_stmt *st = prep(s, "DELETE FROM prekeys WHERE id = ?;");
    if (st)
        sqlite3_bind_int64(st, 1, id);
    return run(s, st, "delete pre-key");
}

om_err om_store_pk_list(om_store *s, om_prekey_pub *out, size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *st = prep(s, "SELECT id, pub FROM prekeys ORDER BY id LIMIT ?;");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        out[*n].id = (uint32_t)sqlite3_column_int64(st, 0);
        if (col_blob(st, 1, out[*n].pub, OM_KEY) == 0)
            (*n)++;
    }
    om_err e = rc == SQLITE_DONE || rc == SQLITE_ROW ? OM_OK : fail(s, "list pre-keys");
    sqlite3_finalize(st);
    return e;
}

/* ------------------------------------------------------------------ devices */

#define DEVICE_COLS "SELECT jid, id, ik, trust, active, ik_changed, first_seen, label FROM devices "

static void read_device(sqlite3_stmt *st, om_device *d)
{
    memset(d, 0, sizeof *d);
    d->id = (uint32_t)sqlite3_column_int64(st, 1);
    d->has_ik = col_blob(st, 2, d->ik, OM_KEY) == 0;
    d->trust = (om_trust)sqlite3_column_int(st, 3);
    d->active = sqlite3_column_int(st, 4);
    d->ik_changed = sqlite3_column_int(st, 5);
    d->first_seen = sqlite3_column_int64(st, 6);
    const unsigned char *l = sqlite3_column_text(st, 7);
    snprintf(d->label, sizeof d->label, "%s", l ? (const char *)l : "");
}

om_err om_store_device_get(om_store *s, const char *jid, uint32_t id, om_device *d, int *found)
{
    *found = 0;
    sqlite3_stmt *st = prep(s, DEVICE_COLS "WHERE jid = ? AND id = ?;");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    om_err e = OM_OK;
    if (rc == SQLITE_ROW) {
        read_device(st, d);
        *found = 1;
    } else if (rc != SQLITE_DONE) {
        e = fail(s, "read device");
    }
    sqlite3_finalize(st);
    return e;
}

om_err om_store_device_put(om_store *s, const char *jid, const om_device *d)
{
    sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO devices VALUES(?, ?, ?, ?, ?, ?, ?, ?);");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, d->id);
    if (d->has_ik)
        sqlite3_bind_blob(st, 3, d->ik, OM_KEY, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, d->trust);
    sqlite3_bind_int(st, 5, d->active ? 1 : 0);
    sqlite3_bind_int(st, 6, d->ik_changed ? 1 : 0);
    sqlite3_bind_int64(st, 7, d->first_seen);
    sqlite3_bind_text(st, 8, d->label, -1, SQLITE_TRANSIENT);
    return run(s, st, "store device");
}

om_err om_store_device_each(om_store *s, const char *jid, om_device_fn fn, void *ud)
{
    sqlite3_stmt *st = prep(s, jid ? DEVICE_COLS "WHERE jid = ? ORDER BY jid, id;"
                                   : DEVICE_COLS "ORDER BY jid, id;");
    if (!st)
        return OM_ERR_STORE;
    if (jid)
        sqlite3_bind_text(st, 1, jid, -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        om_device d;
        read_device(st, &d);
        const unsigned char *j = sqlite3_column_text(st, 0);
        if (fn((const char *)(j ? j : (const unsigned char *)""), &d, ud)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    om_err e = rc == SQLITE_DONE ? OM_OK : fail(s, "list devices");
    sqlite3_finalize(st);
    return e;
}

om_err om_store_has_verified(om_store *s, const char *jid, int *yes)
{
    *yes = 0;
    sqlite3_stmt *st = prep(s, "SELECT count(*) FROM devices WHERE jid = ? AND trust = 1;");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_TRANSIENT);
    om_err e = sqlite3_step(st) == SQLITE_ROW ? OM_OK : fail(s, "read trust");
    if (e == OM_OK)
        *yes = sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    return e;
}

/* ------------------------------------------------------------------ sessions */

om_err om_store_session_get(om_store *s, const char *jid, uint32_t id, buf *blob, int *found)
{
    *found = 0;
    sqlite3_stmt *st = prep(s, "SELECT state FROM sessions WHERE jid = ? AND id = ?;");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    om_err e = OM_OK;
    if (rc == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        if (p && n > 0) {
            buf_append(blob, p, (size_t)n);
            *found = 1;
        }
    } else if (rc != SQLITE_DONE) {
        e = fail(s, "read session");
    }
    sqlite3_finalize(st);
    return e;
}

om_err om_store_session_put(om_store *s, const char *jid, uint32_t id, const void *blob,
                            size_t len)
{
    sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO sessions VALUES(?, ?, ?);");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_blob(st, 3, blob, (int)len, SQLITE_TRANSIENT);
    return run(s, st, "store session");
}

om_err om_store_session_delete(om_store *s, const char *jid, uint32_t id)
{
    sqlite3_stmt *st = prep(s, "DELETE FROM sessions WHERE jid = ? AND id = ?;");
    if (!st)
        return OM_ERR_STORE;
    sqlite3_bind_text(st, 1, jid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    return run(s, st, "delete session");
}
