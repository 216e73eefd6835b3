/* store_sqlite.c - the embedded SQLite back end of the store (store.h, store_backend.h).
 *
 * Concurrency: parleyd and parleyctl open the same file at the same time. The database
 * runs in WAL mode (readers never block the writer) with a busy timeout, and every write
 * starts with BEGIN IMMEDIATE so that two writers queue on the busy handler instead of
 * failing when a read transaction tries to upgrade.
 *
 * Durability: synchronous=NORMAL for the whole database. In WAL mode that survives any
 * crash of the process; only a power loss or kernel crash may lose the most recent
 * commits (never corrupt the file). That includes offline messages: the compliance
 * archive, which has stricter rules, lives elsewhere and sets its own policy. FULL would
 * cost an fsync per offline message on the delivery path.
 *
 * Schema: versioned migrations recorded in schema_version; later features append a
 * migration to the table below and never edit an applied one.
 *
 * Checkpoints: not in the COMMIT that fills the WAL (SQLite's default, which stopped
 * parleyd's event loop for 20-35 ms several times a second under archive load) but on a
 * background thread with its own connection (sqlite_checkpoint.c), started by the first
 * commit that needs one, so parleyctl's few writes never start it.
 *
 * Every statement is prepared once per store (SQLITE_PREPARE_PERSISTENT) and reused. */
#include "store_backend.h"
#include "sqlite_checkpoint.h"
#include "sqlite_db.h"

#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Milliseconds a statement waits for another connection's write lock. */
#define SQLITE_BUSY_MS 5000

/* ---- schema ---- */

static const char *const migrations[] = {
    /* version 1: accounts, rosters, offline messages */
    "CREATE TABLE users ("
    "  jid TEXT PRIMARY KEY NOT NULL,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE credentials ("
    "  jid TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  hash TEXT NOT NULL," /* 'SHA-1' or 'SHA-256': stable across enum changes */
    "  salt BLOB NOT NULL,"
    "  iterations INTEGER NOT NULL,"
    "  stored_key BLOB NOT NULL,"
    "  server_key BLOB NOT NULL,"
    "  PRIMARY KEY (jid, hash));"
    "CREATE TABLE roster ("
    "  owner TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  contact TEXT NOT NULL,"
    "  name TEXT,"
    "  sub INTEGER NOT NULL DEFAULT 0 CHECK (sub BETWEEN 0 AND 3),"
    "  ask_out INTEGER NOT NULL DEFAULT 0,"
    "  pending_in INTEGER NOT NULL DEFAULT 0,"
    "  pending_in_stanza TEXT,"
    "  PRIMARY KEY (owner, contact));"
    "CREATE TABLE roster_groups ("
    "  owner TEXT NOT NULL,"
    "  contact TEXT NOT NULL,"
    "  grp TEXT NOT NULL,"
    "  PRIMARY KEY (owner, contact, grp),"
    "  FOREIGN KEY (owner, contact) REFERENCES roster(owner, contact) ON DELETE CASCADE);"
    "CREATE TABLE roster_versions ("
    "  owner TEXT PRIMARY KEY NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  version INTEGER NOT NULL);"
    "CREATE TABLE offline ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  owner TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  stanza TEXT NOT NULL,"
    "  stored_at INTEGER NOT NULL);"
    "CREATE INDEX offline_owner ON offline(owner, id);",
    /* version 2: small documents of server modules (store_kv_*) */
    "CREATE TABLE kv ("
    "  collection TEXT NOT NULL,"
    "  owner TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  PRIMARY KEY (collection, owner, key));",
    /* version 3: the message archive (XEP-0313) */
    "CREATE TABLE mam ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  sid TEXT NOT NULL,"
    "  owner TEXT NOT NULL,"
    "  with_jid TEXT NOT NULL,"
    "  ts_us INTEGER NOT NULL,"
    "  stanza TEXT NOT NULL);"
    "CREATE UNIQUE INDEX mam_sid ON mam(owner, sid);"
    "CREATE INDEX mam_with ON mam(owner, with_jid, seq);"
    "CREATE INDEX mam_ts ON mam(ts_us);",
    /* version 4: the admin policy: values per scope, groups, a change counter */
    "CREATE TABLE policy_groups ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE policy_group_members ("
    "  grp TEXT NOT NULL REFERENCES policy_groups(name) ON DELETE CASCADE,"
    "  member TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  PRIMARY KEY (grp, member));"
    "CREATE INDEX policy_group_members_member ON policy_group_members(member);"
    "CREATE TABLE policy ("
    "  scope TEXT NOT NULL CHECK (scope IN ('global', 'group', 'user')),"
    "  name TEXT NOT NULL," /* '' for global */
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  PRIMARY KEY (scope, name, key));"
    "CREATE TABLE policy_version ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  version INTEGER NOT NULL);"
    "INSERT INTO policy_version(id, version) VALUES (1, 0);",
    /* version 5: PEP nodes and items (XEP-0163) */
    "CREATE TABLE pep_nodes ("
    "  owner TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  node TEXT NOT NULL,"
    "  config TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (owner, node));"
    "CREATE TABLE pep_items ("
    "  owner TEXT NOT NULL,"
    "  node TEXT NOT NULL,"
    "  item_id TEXT NOT NULL,"
    "  publisher TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  seq INTEGER NOT NULL," /* publication order within the node */
    "  published INTEGER NOT NULL,"
    "  PRIMARY KEY (owner, node, item_id),"
    "  FOREIGN KEY (owner, node) REFERENCES pep_nodes(owner, node) ON DELETE CASCADE);"
    "CREATE INDEX pep_items_order ON pep_items(owner, node, seq);",
};
#define SCHEMA_VERSION ((int)ARRAY_LEN(migrations))

/* ---- statements ---- */

enum sid {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_USER_INSERT,
    S_USER_EXISTS,
    S_USER_LIST,
    S_USER_DELETE,
    S_CRED_INSERT,
    S_CRED_DELETE_ALL,
    S_CRED_GET,
    S_ROSTER_DELETE_ALL,
    S_ROSTER_GROUPS_DELETE_ALL,
    S_ROSTER_VERSION_DELETE,
    S_OFFLINE_DELETE_ALL,
    S_ROSTER_LIST,
    S_ROSTER_GET,
    S_ROSTER_UPSERT,
    S_ROSTER_DELETE,
    S_GROUPS_GET,
    S_GROUPS_DELETE,
    S_GROUP_INSERT,
    S_VERSION_BUMP,
    S_VERSION_GET,
    S_OFFLINE_COUNT,
    S_OFFLINE_INSERT,
    S_OFFLINE_LIST,
    S_OFFLINE_DELETE_UPTO,
    S_MAM_INSERT,
    S_MAM_SEQ,
    S_MAM_NEXT,
    S_MAM_PREV,
    S_MAM_PURGE,
    S_MAM_PURGE_OWNER,
    S_MAM_DELETE_ALL,
    S_KV_PUT,
    S_KV_GET,
    S_KV_DEL,
    S_KV_DEL_OWNER,
    S_KV_LIST,
    S_KV_LIST_OWNER,
    S_POLICY_USER_DELETE,
    S_MEMBERS_USER_DELETE,
    S_PEP_ITEMS_USER_DELETE,
    S_PEP_NODES_USER_DELETE,
    S_POLICY_BUMP,
    S_POLICY_VERSION,
    S_POLICY_UPSERT,
    S_POLICY_DELETE,
    S_POLICY_LIST,
    S_POLICY_FOR_USER,
    S_PGROUP_EXISTS,
    S_PGROUP_INSERT,
    S_PGROUP_DELETE,
    S_PGROUP_POLICY_DELETE,
    S_PGROUP_MEMBERS_DELETE,
    S_PGROUP_LIST,
    S_MEMBER_INSERT,
    S_MEMBER_DELETE,
    S_MEMBERS_OF,
    S_MEMBERS_ALL,
    S_PEP_NODE_GET,
    S_PEP_NODE_COUNT,
    S_PEP_NODE_INSERT,
    S_PEP_NODE_UPDATE,
    S_PEP_NODE_DELETE,
    S_PEP_NODE_ITEMS_DELETE,
    S_PEP_NODE_LIST,
    S_PEP_ITEM_UPSERT,
    S_PEP_ITEMS_TRIM,
    S_PEP_ITEM_DELETE,
    S_PEP_ITEM_GET,
    S_PEP_ITEMS_ALL,
    S_PEP_ITEMS_LAST,
    S_MAM_COUNT,
    S_COUNT
};

static const char *const sql_text[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_USER_INSERT] = "INSERT INTO users(jid, created) VALUES (?1, ?2)",
    [S_USER_EXISTS] = "SELECT 1 FROM users WHERE jid = ?1",
    [S_USER_LIST] = "SELECT jid FROM users ORDER BY jid",
    [S_USER_DELETE] = "DELETE FROM users WHERE jid = ?1",
    [S_CRED_INSERT] = "INSERT INTO credentials(jid, hash, salt, iterations, stored_key, server_key)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_CRED_DELETE_ALL] = "DELETE FROM credentials WHERE jid = ?1",
    [S_CRED_GET] = "SELECT salt, iterations, stored_key, server_key FROM credentials"
                   " WHERE jid = ?1 AND hash = ?2",
    [S_ROSTER_DELETE_ALL] = "DELETE FROM roster WHERE owner = ?1",
    [S_ROSTER_GROUPS_DELETE_ALL] = "DELETE FROM roster_groups WHERE owner = ?1",
    [S_ROSTER_VERSION_DELETE] = "DELETE FROM roster_versions WHERE owner = ?1",
    [S_OFFLINE_DELETE_ALL] = "DELETE FROM offline WHERE owner = ?1",
    [S_ROSTER_LIST] = "SELECT contact, name, sub, ask_out, pending_in, pending_in_stanza"
                      " FROM roster WHERE owner = ?1 ORDER BY contact",
    [S_ROSTER_GET] = "SELECT contact, name, sub, ask_out, pending_in, pending_in_stanza"
                     " FROM roster WHERE owner = ?1 AND contact = ?2",
    [S_ROSTER_UPSERT] =
        "INSERT INTO roster(owner, contact, name, sub, ask_out, pending_in, pending_in_stanza)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        " ON CONFLICT(owner, contact) DO UPDATE SET name = excluded.name, sub = excluded.sub,"
        " ask_out = excluded.ask_out, pending_in = excluded.pending_in,"
        " pending_in_stanza = excluded.pending_in_stanza",
    [S_ROSTER_DELETE] = "DELETE FROM roster WHERE owner = ?1 AND contact = ?2",
    [S_GROUPS_GET] = "SELECT grp FROM roster_groups WHERE owner = ?1 AND contact = ?2 ORDER BY grp",
    [S_GROUPS_DELETE] = "DELETE FROM roster_groups WHERE owner = ?1 AND contact = ?2",
    [S_GROUP_INSERT] = "INSERT OR IGNORE INTO roster_groups(owner, contact, grp) VALUES (?1, ?2, ?3)",
    [S_VERSION_BUMP] = "INSERT INTO roster_versions(owner, version) VALUES (?1, 1)"
                       " ON CONFLICT(owner) DO UPDATE SET version = version + 1",
    [S_VERSION_GET] = "SELECT version FROM roster_versions WHERE owner = ?1",
    [S_OFFLINE_COUNT] = "SELECT count(*) FROM offline WHERE owner = ?1",
    [S_OFFLINE_INSERT] = "INSERT INTO offline(owner, stanza, stored_at) VALUES (?1, ?2, ?3)",
    [S_OFFLINE_LIST] = "SELECT id, stanza FROM offline WHERE owner = ?1 ORDER BY id",
    [S_OFFLINE_DELETE_UPTO] = "DELETE FROM offline WHERE owner = ?1 AND id <= ?2",
    [S_MAM_INSERT] = "INSERT INTO mam(sid, owner, with_jid, ts_us, stanza) VALUES (?1, ?2, ?3, ?4, ?5)"
                    " ON CONFLICT(owner, sid) DO NOTHING",
    [S_MAM_SEQ] = "SELECT seq FROM mam WHERE owner = ?1 AND sid = ?2",
    [S_MAM_NEXT] = "SELECT sid, with_jid, ts_us, stanza FROM mam WHERE owner = ?1"
                   " AND (?2 IS NULL OR with_jid = ?2) AND ts_us >= ?3 AND ts_us <= ?4"
                   " AND seq > ?5 AND seq < ?6 ORDER BY seq LIMIT ?7",
    [S_MAM_PREV] = "SELECT sid, with_jid, ts_us, stanza FROM mam WHERE owner = ?1"
                   " AND (?2 IS NULL OR with_jid = ?2) AND ts_us >= ?3 AND ts_us <= ?4"
                   " AND seq > ?5 AND seq < ?6 ORDER BY seq DESC LIMIT ?7",
    [S_MAM_PURGE] = "DELETE FROM mam WHERE ts_us < ?1",
    [S_MAM_PURGE_OWNER] = "DELETE FROM mam WHERE ts_us < ?1 AND owner = ?2",
    [S_MAM_DELETE_ALL] = "DELETE FROM mam WHERE owner = ?1",
    [S_KV_PUT] = "INSERT INTO kv(collection, owner, key, value, updated) VALUES (?1, ?2, ?3, ?4, ?5)"
                 " ON CONFLICT(collection, owner, key) DO UPDATE SET value = excluded.value,"
                 " updated = excluded.updated",
    [S_KV_GET] = "SELECT value FROM kv WHERE collection = ?1 AND owner = ?2 AND key = ?3",
    [S_KV_DEL] = "DELETE FROM kv WHERE collection = ?1 AND owner = ?2 AND key = ?3",
    [S_KV_DEL_OWNER] = "DELETE FROM kv WHERE collection = ?1 AND owner = ?2",
    [S_KV_LIST] = "SELECT owner, key, value FROM kv WHERE collection = ?1 ORDER BY owner, key",
    [S_KV_LIST_OWNER] = "SELECT owner, key, value FROM kv WHERE collection = ?1 AND owner = ?2"
                        " ORDER BY key",
    [S_POLICY_USER_DELETE] = "DELETE FROM policy WHERE scope = 'user' AND name = ?1",
    [S_MEMBERS_USER_DELETE] = "DELETE FROM policy_group_members WHERE member = ?1",
    [S_PEP_ITEMS_USER_DELETE] = "DELETE FROM pep_items WHERE owner = ?1",
    [S_PEP_NODES_USER_DELETE] = "DELETE FROM pep_nodes WHERE owner = ?1",
    [S_POLICY_BUMP] = "UPDATE policy_version SET version = version + 1 WHERE id = 1",
    [S_POLICY_VERSION] = "SELECT version FROM policy_version WHERE id = 1",
    [S_POLICY_UPSERT] = "INSERT INTO policy(scope, name, key, value, updated)"
                        " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(scope, name, key)"
                        " DO UPDATE SET value = excluded.value, updated = excluded.updated",
    [S_POLICY_DELETE] = "DELETE FROM policy WHERE scope = ?1 AND name = ?2 AND key = ?3",
    [S_POLICY_LIST] = "SELECT scope, name, key, value FROM policy ORDER BY scope, name, key",
    [S_POLICY_FOR_USER] = "SELECT scope, name, key, value FROM policy WHERE scope = 'global'"
                          " OR (scope = 'user' AND name = ?1) OR (scope = 'group' AND name IN"
                          " (SELECT grp FROM policy_group_members WHERE member = ?1))"
                          " ORDER BY scope, name, key",
    [S_PGROUP_EXISTS] = "SELECT 1 FROM policy_groups WHERE name = ?1",
    [S_PGROUP_INSERT] = "INSERT INTO policy_groups(name, created) VALUES (?1, ?2)",
    [S_PGROUP_DELETE] = "DELETE FROM policy_groups WHERE name = ?1",
    [S_PGROUP_POLICY_DELETE] = "DELETE FROM policy WHERE scope = 'group' AND name = ?1",
    [S_PGROUP_MEMBERS_DELETE] = "DELETE FROM policy_group_members WHERE grp = ?1",
    [S_PGROUP_LIST] = "SELECT name FROM policy_groups ORDER BY name",
    [S_MEMBER_INSERT] = "INSERT INTO policy_group_members(grp, member) VALUES (?1, ?2)",
    [S_MEMBER_DELETE] = "DELETE FROM policy_group_members WHERE grp = ?1 AND member = ?2",
    [S_MEMBERS_OF] = "SELECT grp, member FROM policy_group_members WHERE grp = ?1"
                     " ORDER BY member",
    [S_MEMBERS_ALL] = "SELECT grp, member FROM policy_group_members ORDER BY grp, member",
    [S_PEP_NODE_GET] = "SELECT config FROM pep_nodes WHERE owner = ?1 AND node = ?2",
    [S_PEP_NODE_COUNT] = "SELECT count(*) FROM pep_nodes WHERE owner = ?1",
    [S_PEP_NODE_INSERT] = "INSERT INTO pep_nodes(owner, node, config, created)"
                          " VALUES (?1, ?2, ?3, ?4)",
    [S_PEP_NODE_UPDATE] = "UPDATE pep_nodes SET config = ?3 WHERE owner = ?1 AND node = ?2",
    [S_PEP_NODE_DELETE] = "DELETE FROM pep_nodes WHERE owner = ?1 AND node = ?2",
    [S_PEP_NODE_ITEMS_DELETE] = "DELETE FROM pep_items WHERE owner = ?1 AND node = ?2",
    [S_PEP_NODE_LIST] = "SELECT node, config FROM pep_nodes WHERE owner = ?1 ORDER BY node",
    [S_PEP_ITEM_UPSERT] =
        "INSERT INTO pep_items(owner, node, item_id, publisher, payload, seq, published)"
        " VALUES (?1, ?2, ?3, ?4, ?5,"
        " (SELECT coalesce(max(seq), 0) + 1 FROM pep_items WHERE owner = ?1 AND node = ?2), ?6)"
        " ON CONFLICT(owner, node, item_id) DO UPDATE SET publisher = excluded.publisher,"
        " payload = excluded.payload, seq = excluded.seq, published = excluded.published",
    /* Everything from the (max+1)-th newest down; nothing when there are fewer. */
    [S_PEP_ITEMS_TRIM] = "DELETE FROM pep_items WHERE owner = ?1 AND node = ?2 AND seq <="
                         " (SELECT seq FROM pep_items WHERE owner = ?1 AND node = ?2"
                         " ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
    [S_PEP_ITEM_DELETE] = "DELETE FROM pep_items WHERE owner = ?1 AND node = ?2 AND item_id = ?3",
    [S_PEP_ITEM_GET] = "SELECT item_id, publisher, payload FROM pep_items"
                       " WHERE owner = ?1 AND node = ?2 AND item_id = ?3",
    [S_PEP_ITEMS_ALL] = "SELECT item_id, publisher, payload FROM pep_items"
                        " WHERE owner = ?1 AND node = ?2 ORDER BY seq",
    [S_PEP_ITEMS_LAST] = "SELECT item_id, publisher, payload FROM (SELECT item_id, publisher,"
                         " payload, seq FROM pep_items WHERE owner = ?1 AND node = ?2"
                         " ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
    [S_MAM_COUNT] = "SELECT count(*) FROM mam WHERE owner = ?1"
                    " AND (?2 IS NULL OR with_jid = ?2) AND ts_us >= ?3 AND ts_us <= ?4",
};

typedef struct sqlite_store {
    struct store base; /* first: store.c sees only this */
    sqlite3 *db;
    sqlite_ckpt *ckpt; /* NULL for ":memory:" */
    sqlite3_stmt *stmts[S_COUNT];
} sqlite_store;

static sqlite_store *ss_of(store *st)
{
    return (sqlite_store *)st;
}

static store_status db_error(sqlite_store *s, const char *what)
{
    return store_set_error(&s->base, "%s: %s", what, sqlite3_errmsg(s->db));
}

/* The cached statement for id, prepared on first use. NULL with the error recorded. */
static sqlite3_stmt *stmt(sqlite_store *s, enum sid id)
{
    if (!s->stmts[id]) {
        if (sqlite3_prepare_v3(s->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->stmts[id], NULL) != SQLITE_OK) {
            db_error(s, "prepare");
            s->stmts[id] = NULL;
            return NULL;
        }
    }
    return s->stmts[id];
}

/* Make a cached statement reusable and drop references to the caller's strings. */
static void finish(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Run a statement that returns no rows with up to two text parameters. */
static int exec_simple(sqlite_store *s, enum sid id, const char *a, const char *b)
{
    sqlite3_stmt *st = stmt(s, id);
    if (!st)
        return -1;
    if (a)
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        db_error(s, sql_text[id]);
        finish(st);
        return -1;
    }
    finish(st);
    return 0;
}

static store_status begin(sqlite_store *s)
{
    return exec_simple(s, S_BEGIN, NULL, NULL) == 0 ? STORE_OK : STORE_ERROR;
}

static store_status commit(sqlite_store *s)
{
    if (exec_simple(s, S_COMMIT, NULL, NULL) == 0)
        return STORE_OK;
    /* The error is already recorded; the rollback must not overwrite it. */
    char keep[STORE_ERRLEN];
    snprintf(keep, sizeof keep, "%s", s->base.error);
    if (!sqlite3_get_autocommit(s->db))
        exec_simple(s, S_ROLLBACK, NULL, NULL);
    snprintf(s->base.error, sizeof s->base.error, "%s", keep);
    return STORE_ERROR;
}

/* Abandon the open transaction and return status (the error, if any, is kept). */
static store_status rollback(sqlite_store *s, store_status status)
{
    char keep[STORE_ERRLEN];
    snprintf(keep, sizeof keep, "%s", s->base.error);
    if (!sqlite3_get_autocommit(s->db))
        exec_simple(s, S_ROLLBACK, NULL, NULL);
    snprintf(s->base.error, sizeof s->base.error, "%s", keep);
    return status;
}

static char *col_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? xstrdup((const char *)t) : NULL;
}

/* The integer in the first column of the one-row query id, with arg as ?1 unless NULL.
 * No row is 0 if none_ok, else an error like a failed step. */
static store_status read_int(sqlite_store *s, enum sid id, const char *arg, int none_ok,
                             int64_t *out, const char *what)
{
    sqlite3_stmt *st = stmt(s, id);
    if (!st)
        return STORE_ERROR;
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    store_status ret = STORE_OK;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE && none_ok)
        *out = 0;
    else
        ret = db_error(s, what);
    finish(st);
    return ret;
}

static const char *hash_name(scram_hash h)
{
    return h == SCRAM_SHA1 ? "SHA-1" : "SHA-256";
}

/* ---- open / close ---- */

/* Wait for another connection's lock by retrying every millisecond, up to about
 * SQLITE_BUSY_MS. SQLite's busy_timeout sleeps 1, 2, 5, 10 ... 100 ms between tries, so
 * a lock held 30 ms (the checkpoint thread's RESTART, sqlite_checkpoint.c) would stop
 * the event loop for 53 ms. */
static int retry_every_ms(void *arg, int tries)
{
    (void)arg;
    if (tries >= SQLITE_BUSY_MS)
        return 0;
    nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
    return 1;
}

static void sqlite_close(store *st)
{
    sqlite_store *s = ss_of(st);
    sqlite_ckpt_stop(s->ckpt);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->stmts[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_warn("store: closing the database: %s", sqlite3_errmsg(s->db));
    free(s);
}

static store *sqlite_open(const char *path, char *err, size_t errlen)
{
    int memory = strcmp(path, ":memory:") == 0;
    if (!*path) {
        snprintf(err, errlen, "store sqlite: needs a file path");
        return NULL;
    }
    if (!memory && sqlite_db_create_private(path, err, errlen) < 0)
        return NULL;

    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %.200s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_handler(db, retry_every_ms, NULL);

    char what[300];
    snprintf(what, sizeof what, "%.200s", path);
    /* journal_mode answers with the mode in effect; anything but "wal" on a file means
     * readers would block parleyd's writes, which is worth a warning, not a failure. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, errlen, "%s: enabling WAL: %s", what, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return NULL;
    }
    const unsigned char *mode = sqlite3_column_text(st, 0);
    if (!memory && (!mode || strcmp((const char *)mode, "wal") != 0))
        log_warn("store %s: journal mode is %s, not wal", path, mode ? (const char *)mode : "?");
    sqlite3_finalize(st);

    if (sqlite_db_exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", what, err, errlen) < 0 ||
        sqlite_db_migrate(db, path, "store", migrations, SCHEMA_VERSION, err, errlen) < 0) {
        sqlite3_close(db);
        return NULL;
    }

    sqlite_store *s = xcalloc(1, sizeof *s);
    s->db = db;
    s->ckpt = sqlite_ckpt_start(db, "store", SQLITE_CKPT_MAX_WAL_BYTES);
    return &s->base;
}

/* ---- accounts ---- */

/* Insert creds for user; inside the caller's transaction. */
static store_status insert_creds(sqlite_store *s, const char *user, const scram_cred *creds,
                                 size_t ncreds)
{
    for (size_t i = 0; i < ncreds; i++) {
        sqlite3_stmt *st = stmt(s, S_CRED_INSERT);
        if (!st)
            return STORE_ERROR;
        const scram_cred *c = &creds[i];
        sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hash_name(c->hash), -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, c->salt, (int)c->salt_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)c->iterations);
        sqlite3_bind_blob(st, 5, c->stored_key, (int)c->key_len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 6, c->server_key, (int)c->key_len, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            db_error(s, "store credential");
            finish(st);
            return STORE_ERROR;
        }
        finish(st);
    }
    return STORE_OK;
}

static store_status sqlite_user_create(store *base, const char *user, const scram_cred *creds,
                                       size_t ncreds)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    sqlite3_stmt *st = stmt(s, S_USER_INSERT);
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        store_status ret;
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
            store_set_error(base, "user %s already exists", user);
            ret = STORE_EXISTS;
        } else {
            ret = db_error(s, "create user");
        }
        finish(st);
        return rollback(s, ret);
    }
    finish(st);
    if (insert_creds(s, user, creds, ncreds) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status user_exists_locked(sqlite_store *s, const char *user)
{
    sqlite3_stmt *st = stmt(s, S_USER_EXISTS);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    store_status ret;
    if (rc == SQLITE_ROW)
        ret = STORE_OK;
    else if (rc == SQLITE_DONE)
        ret = STORE_NOT_FOUND;
    else
        ret = db_error(s, "look up user");
    finish(st);
    if (ret == STORE_NOT_FOUND)
        store_set_error(&s->base, "no such user %s", user);
    return ret;
}

static store_status sqlite_user_exists(store *base, const char *user)
{
    return user_exists_locked(ss_of(base), user);
}

static store_status sqlite_user_set_creds(store *base, const char *user, const scram_cred *creds,
                                          size_t ncreds)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = user_exists_locked(s, user);
    if (ret != STORE_OK)
        return rollback(s, ret);
    if (exec_simple(s, S_CRED_DELETE_ALL, user, NULL) < 0)
        return rollback(s, STORE_ERROR);
    if (insert_creds(s, user, creds, ncreds) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status sqlite_user_get_cred(store *base, const char *user, scram_hash hash,
                                         scram_cred *out)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, S_CRED_GET);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hash_name(hash), -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    store_status ret = STORE_OK;
    if (rc == SQLITE_DONE) {
        ret = STORE_NOT_FOUND;
        store_set_error(base, "no %s credential for %s", hash_name(hash), user);
    } else if (rc != SQLITE_ROW) {
        ret = db_error(s, "read credential");
    } else {
        size_t want = hash == SCRAM_SHA1 ? 20 : 32;
        int salt_len = sqlite3_column_bytes(st, 0);
        sqlite3_int64 iters = sqlite3_column_int64(st, 1);
        int sk_len = sqlite3_column_bytes(st, 2);
        int vk_len = sqlite3_column_bytes(st, 3);
        /* A damaged row must never be read past a fixed-size array. */
        if (salt_len <= 0 || salt_len > SCRAM_SALT_LEN || iters <= 0 || iters > UINT_MAX ||
            (size_t)sk_len != want || (size_t)vk_len != want) {
            ret = store_set_error(base, "corrupt %s credential for %s", hash_name(hash), user);
        } else {
            memset(out, 0, sizeof *out);
            out->hash = hash;
            memcpy(out->salt, sqlite3_column_blob(st, 0), (size_t)salt_len);
            out->salt_len = (size_t)salt_len;
            out->iterations = (unsigned)iters;
            memcpy(out->stored_key, sqlite3_column_blob(st, 2), want);
            memcpy(out->server_key, sqlite3_column_blob(st, 3), want);
            out->key_len = want;
        }
    }
    finish(st);
    return ret;
}

static store_status sqlite_user_delete(store *base, const char *user)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = user_exists_locked(s, user);
    if (ret != STORE_OK)
        return rollback(s, ret);
    /* Explicit deletes, not only ON DELETE CASCADE: the account must go completely even
     * from a database someone opened without foreign_keys. */
    static const enum sid order[] = {S_ROSTER_GROUPS_DELETE_ALL, S_ROSTER_DELETE_ALL,
                                     S_ROSTER_VERSION_DELETE, S_OFFLINE_DELETE_ALL,
                                     S_PEP_ITEMS_USER_DELETE,  S_PEP_NODES_USER_DELETE,
                                     S_MEMBERS_USER_DELETE,    S_POLICY_USER_DELETE,
                                     S_MAM_DELETE_ALL,         S_CRED_DELETE_ALL,
                                     S_USER_DELETE};
    for (size_t i = 0; i < ARRAY_LEN(order); i++)
        if (exec_simple(s, order[i], user, NULL) < 0)
            return rollback(s, STORE_ERROR);
    /* Its policy values and memberships are gone: a running server re-reads. */
    if (exec_simple(s, S_POLICY_BUMP, NULL, NULL) < 0)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status sqlite_user_list(store *base, void (*fn)(void *ud, const char *user), void *ud)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, S_USER_LIST);
    if (!st)
        return STORE_ERROR;
    /* Collect first: the callback may use the store, which would reset this statement. */
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = col_dup(st, 0);
    }
    store_status ret = STORE_OK;
    if (rc != SQLITE_DONE)
        ret = db_error(s, "list users");
    finish(st);
    for (size_t i = 0; i < n; i++) {
        if (ret == STORE_OK && names[i])
            fn(ud, names[i]);
        free(names[i]);
    }
    free(names);
    return ret;
}

/* ---- roster ---- */

/* Fill item from a row of S_ROSTER_LIST / S_ROSTER_GET. */
static void read_item(sqlite3_stmt *st, roster_item *item)
{
    memset(item, 0, sizeof *item);
    item->contact = col_dup(st, 0);
    item->name = col_dup(st, 1);
    int sub = sqlite3_column_int(st, 2);
    item->sub = (sub >= SUB_NONE && sub <= SUB_BOTH) ? (sub_state)sub : SUB_NONE;
    item->ask_out = sqlite3_column_int(st, 3) != 0;
    item->pending_in = sqlite3_column_int(st, 4) != 0;
    item->pending_in_stanza = col_dup(st, 5);
}

static store_status read_groups(sqlite_store *s, const char *user, roster_item *item)
{
    sqlite3_stmt *st = stmt(s, S_GROUPS_GET);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, item->contact, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char *g = col_dup(st, 0);
        if (!g)
            continue;
        if (item->ngroups == cap) {
            cap = cap ? cap * 2 : 4;
            item->groups = xrealloc(item->groups, cap * sizeof *item->groups);
        }
        item->groups[item->ngroups++] = g;
    }
    store_status ret = rc == SQLITE_DONE ? STORE_OK : db_error(s, "read roster groups");
    finish(st);
    return ret;
}

static store_status sqlite_roster_get(store *base, const char *user, roster_item **items,
                                      size_t *n)
{
    sqlite_store *s = ss_of(base);
    /* A read transaction: items and their groups come from one snapshot. */
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, "begin");
    sqlite3_stmt *st = stmt(s, S_ROSTER_LIST);
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    roster_item *list = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            list = xrealloc(list, cap * sizeof *list);
        }
        read_item(st, &list[count++]);
    }
    store_status ret = rc == SQLITE_DONE ? STORE_OK : db_error(s, "read roster");
    finish(st);
    for (size_t i = 0; ret == STORE_OK && i < count; i++)
        ret = read_groups(s, user, &list[i]);
    rollback(s, STORE_OK); /* read-only: ending it either way is the same */
    if (ret != STORE_OK) {
        roster_items_free(list, count);
        return ret;
    }
    *items = list;
    *n = count;
    return STORE_OK;
}

static store_status sqlite_roster_get_item(store *base, const char *user, const char *contact,
                                           roster_item *out)
{
    sqlite_store *s = ss_of(base);
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, "begin");
    sqlite3_stmt *st = stmt(s, S_ROSTER_GET);
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, contact, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    store_status ret = STORE_OK;
    if (rc == SQLITE_ROW)
        read_item(st, out);
    else if (rc == SQLITE_DONE)
        ret = STORE_NOT_FOUND;
    else
        ret = db_error(s, "read roster item");
    finish(st);
    if (ret == STORE_OK)
        ret = read_groups(s, user, out);
    rollback(s, STORE_OK);
    if (ret == STORE_NOT_FOUND)
        store_set_error(base, "%s has no roster item %s", user, contact);
    else if (ret != STORE_OK)
        roster_item_clear(out);
    return ret;
}

static store_status bump_version(sqlite_store *s, const char *user)
{
    return exec_simple(s, S_VERSION_BUMP, user, NULL) == 0 ? STORE_OK : STORE_ERROR;
}

static store_status sqlite_roster_put(store *base, const char *user, const roster_item *item)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    sqlite3_stmt *st = stmt(s, S_ROSTER_UPSERT);
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, item->contact, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, item->name, -1, SQLITE_STATIC); /* NULL binds NULL */
    sqlite3_bind_int(st, 4, (int)item->sub);
    sqlite3_bind_int(st, 5, item->ask_out ? 1 : 0);
    sqlite3_bind_int(st, 6, item->pending_in ? 1 : 0);
    sqlite3_bind_text(st, 7, item->pending_in_stanza, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        store_status ret = rc == SQLITE_CONSTRAINT_FOREIGNKEY
                               ? (store_set_error(base, "no such user %s", user), STORE_NOT_FOUND)
                               : db_error(s, "store roster item");
        finish(st);
        return rollback(s, ret);
    }
    finish(st);
    if (exec_simple(s, S_GROUPS_DELETE, user, item->contact) < 0)
        return rollback(s, STORE_ERROR);
    for (size_t i = 0; i < item->ngroups; i++) {
        if (!item->groups[i])
            continue;
        st = stmt(s, S_GROUP_INSERT);
        if (!st)
            return rollback(s, STORE_ERROR);
        sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, item->contact, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, item->groups[i], -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            db_error(s, "store roster group");
            finish(st);
            return rollback(s, STORE_ERROR);
        }
        finish(st);
    }
    if (bump_version(s, user) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status sqlite_roster_del(store *base, const char *user, const char *contact)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    if (exec_simple(s, S_GROUPS_DELETE, user, contact) < 0 ||
        exec_simple(s, S_ROSTER_DELETE, user, contact) < 0)
        return rollback(s, STORE_ERROR);
    if (sqlite3_changes(s->db) == 0) {
        store_set_error(base, "%s has no roster item %s", user, contact);
        return rollback(s, STORE_NOT_FOUND);
    }
    if (bump_version(s, user) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status sqlite_roster_version(store *base, const char *user, int64_t *version)
{
    /* no row: never changed */
    return read_int(ss_of(base), S_VERSION_GET, user, 1, version, "read roster version");
}

/* ---- offline messages ---- */

static store_status count_offline(sqlite_store *s, const char *user, int *count)
{
    int64_t n = 0;
    store_status ret = read_int(s, S_OFFLINE_COUNT, user, 0, &n, "count offline messages");
    if (ret == STORE_OK)
        *count = (int)n;
    return ret;
}

static store_status sqlite_offline_count(store *base, const char *user, int *count)
{
    return count_offline(ss_of(base), user, count);
}

/* max < 0: no cap. */
static store_status sqlite_offline_push(store *base, const char *user, const char *stanza, int max)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    int count = 0;
    if (count_offline(s, user, &count) != STORE_OK)
        return rollback(s, STORE_ERROR);
    if (max >= 0 && count >= max) {
        store_set_error(base, "%s already has %d offline messages", user, count);
        return rollback(s, STORE_FULL);
    }
    sqlite3_stmt *st = stmt(s, S_OFFLINE_INSERT);
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, stanza, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        store_status ret = rc == SQLITE_CONSTRAINT_FOREIGNKEY
                               ? (store_set_error(base, "no such user %s", user), STORE_NOT_FOUND)
                               : db_error(s, "store offline message");
        finish(st);
        return rollback(s, ret);
    }
    finish(st);
    return commit(s);
}

static store_status sqlite_offline_pop(store *base, const char *user,
                                       int (*fn)(void *ud, const char *stanza), void *ud)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, S_OFFLINE_LIST);
    if (!st)
        return STORE_ERROR;
    /* Read everything first and release the statement: fn may write to the store, and a
     * read transaction held across fn would keep the WAL from checkpointing. */
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    char **stanzas = NULL;
    sqlite3_int64 last_id = 0;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            stanzas = xrealloc(stanzas, cap * sizeof *stanzas);
        }
        last_id = sqlite3_column_int64(st, 0);
        char *text = col_dup(st, 1);
        stanzas[n++] = text ? text : xstrdup("");
    }
    store_status ret = rc == SQLITE_DONE ? STORE_OK : db_error(s, "read offline messages");
    finish(st);

    size_t delivered = 0;
    for (; ret == STORE_OK && delivered < n; delivered++) {
        /* Stop at the first failure: the connection is likely gone, and every message
         * (including those already handed over) stays for the next login. */
        if (fn(ud, stanzas[delivered]) != 0)
            ret = store_set_error(base,
                                  "offline delivery to %s failed at message %zu of %zu; "
                                  "all kept",
                                  user, delivered + 1, n);
    }
    for (size_t i = 0; i < n; i++)
        free(stanzas[i]);
    free(stanzas);
    if (ret != STORE_OK || n == 0)
        return ret;

    /* Ids only grow, so "id <= last" is exactly the rows read above (plus none newer). */
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    st = stmt(s, S_OFFLINE_DELETE_UPTO);
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, last_id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        db_error(s, "delete offline messages");
        finish(st);
        return rollback(s, STORE_ERROR);
    }
    finish(st);
    return commit(s);
}

/* ---- message archive ---- */

static store_status sqlite_mam_append(store *base, const mam_row *rows, size_t n)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = stmt(s, S_MAM_INSERT);
        if (!st)
            return rollback(s, STORE_ERROR);
        sqlite3_bind_text(st, 1, rows[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, rows[i].owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, rows[i].with, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, rows[i].ts_us);
        sqlite3_bind_text(st, 5, rows[i].stanza, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            db_error(s, "archive a message");
            finish(st);
            return rollback(s, STORE_ERROR);
        }
        finish(st);
    }
    return commit(s);
}

/* The seq of an archive id of owner: STORE_NOT_FOUND if it is not in the archive. */
static store_status mam_seq(sqlite_store *s, const char *owner, const char *id, int64_t *seq)
{
    sqlite3_stmt *st = stmt(s, S_MAM_SEQ);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    store_status ret = STORE_OK;
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        ret = (store_set_error(&s->base, "no archived message with id %s", id), STORE_NOT_FOUND);
    else
        ret = db_error(s, "look up an archive id");
    finish(st);
    return ret;
}

typedef struct mam_result {
    char *id, *with, *stanza;
    int64_t ts_us;
} mam_result;

/* Parameters 1-4 of S_MAM_NEXT, S_MAM_PREV and S_MAM_COUNT: owner, with, start, end. */
static void bind_mam_filter(sqlite3_stmt *st, const mam_filter *q)
{
    sqlite3_bind_text(st, 1, q->owner, -1, SQLITE_STATIC);
    if (q->with)
        sqlite3_bind_text(st, 2, q->with, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, q->start_us);
    sqlite3_bind_int64(st, 4, q->end_us ? q->end_us : INT64_MAX);
}

static store_status sqlite_mam_query(store *base, const mam_filter *q,
                                     void (*fn)(void *ud, const mam_row *row), void *ud,
                                     int *complete)
{
    sqlite_store *s = ss_of(base);
    int64_t lo = 0, hi = INT64_MAX;
    store_status found;
    if (q->after_id && (found = mam_seq(s, q->owner, q->after_id, &lo)) != STORE_OK)
        return found;
    if (q->before_id && *q->before_id &&
        (found = mam_seq(s, q->owner, q->before_id, &hi)) != STORE_OK)
        return found;
    int backwards = q->last || (q->before_id && *q->before_id);
    sqlite3_stmt *st = stmt(s, backwards ? S_MAM_PREV : S_MAM_NEXT);
    if (!st)
        return STORE_ERROR;
    bind_mam_filter(st, q);
    sqlite3_bind_int64(st, 5, lo);
    sqlite3_bind_int64(st, 6, hi);
    sqlite3_bind_int(st, 7, q->max + 1); /* one more tells whether the page is the last */
    mam_result *res = xcalloc((size_t)q->max + 1, sizeof *res);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < (size_t)q->max + 1) {
        res[n].id = col_dup(st, 0);
        res[n].with = col_dup(st, 1);
        res[n].ts_us = sqlite3_column_int64(st, 2);
        res[n].stanza = col_dup(st, 3);
        n++;
    }
    store_status ret = rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK
                                                             : db_error(s, "query the archive");
    finish(st);
    *complete = n <= (size_t)q->max;
    if (n > (size_t)q->max)
        n = (size_t)q->max;
    for (size_t k = 0; k < n && ret == STORE_OK; k++) {
        /* Always in archive order, whichever end the page was taken from. */
        mam_result *r = &res[backwards ? n - 1 - k : k];
        mam_row row = {r->id, q->owner, r->with, r->ts_us, r->stanza};
        fn(ud, &row);
    }
    for (size_t k = 0; k <= (size_t)q->max; k++) {
        free(res[k].id);
        free(res[k].with);
        free(res[k].stanza);
    }
    free(res);
    return ret;
}

static store_status sqlite_mam_count(store *base, const mam_filter *q, int64_t *count)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, S_MAM_COUNT);
    if (!st)
        return STORE_ERROR;
    bind_mam_filter(st, q);
    store_status ret = STORE_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        *count = sqlite3_column_int64(st, 0);
    else
        ret = db_error(s, "count archived messages");
    finish(st);
    return ret;
}

static store_status sqlite_mam_purge(store *base, const char *owner, int64_t before_us,
                                     int64_t *deleted)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, owner ? S_MAM_PURGE_OWNER : S_MAM_PURGE);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_int64(st, 1, before_us);
    if (owner)
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    store_status ret = STORE_OK;
    if (sqlite3_step(st) == SQLITE_DONE)
        *deleted = sqlite3_changes(s->db);
    else
        ret = db_error(s, "purge the archive");
    finish(st);
    return ret;
}

/* ---- small documents ---- */

static store_status sqlite_kv_put(store *base, const char *collection, const char *owner,
                                  const char *key, const char *value)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, S_KV_PUT);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
    store_status ret = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : db_error(s, "store a document");
    finish(st);
    return ret;
}

static store_status sqlite_kv_get(store *base, const char *collection, const char *owner,
                                  const char *key, char **value)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, S_KV_GET);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    store_status ret = STORE_OK;
    if (rc == SQLITE_ROW)
        *value = col_dup(st, 0);
    else if (rc == SQLITE_DONE)
        ret = STORE_NOT_FOUND;
    else
        ret = db_error(s, "read a document");
    finish(st);
    return ret;
}

static store_status sqlite_kv_del(store *base, const char *collection, const char *owner,
                                  const char *key)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, key ? S_KV_DEL : S_KV_DEL_OWNER);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    if (key)
        sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    store_status ret = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : db_error(s, "delete documents");
    finish(st);
    return ret;
}

typedef struct kv_row {
    char *owner, *key, *value;
} kv_row;

static store_status sqlite_kv_list(store *base, const char *collection, const char *owner,
                                   void (*fn)(void *ud, const char *owner, const char *key,
                                              const char *value),
                                   void *ud)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, owner ? S_KV_LIST_OWNER : S_KV_LIST);
    if (!st)
        return STORE_ERROR;
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    if (owner)
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    /* Rows are read first and fn called after the statement is reset: fn may write. */
    kv_row *rows = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            rows = xrealloc(rows, cap * sizeof *rows);
        }
        rows[n].owner = col_dup(st, 0);
        rows[n].key = col_dup(st, 1);
        rows[n].value = col_dup(st, 2);
        n++;
    }
    store_status ret = rc == SQLITE_DONE ? STORE_OK : db_error(s, "list documents");
    finish(st);
    for (size_t i = 0; i < n; i++) {
        if (ret == STORE_OK)
            fn(ud, rows[i].owner, rows[i].key, rows[i].value);
        free(rows[i].owner);
        free(rows[i].key);
        free(rows[i].value);
    }
    free(rows);
    return ret;
}

/* ---- helpers for the policy and PEP tables ---- */

/* The cached statement id with texts bound to ?1..?n (a NULL text binds NULL). */
static sqlite3_stmt *bound(sqlite_store *s, enum sid id, int n, const char *const *vals)
{
    sqlite3_stmt *st = stmt(s, id);
    if (!st)
        return NULL;
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_STATIC);
    return st;
}

/* Rows of up to four text columns, read before any callback runs (a callback may use the
 * store, which would reset the statement). */
typedef struct text_rows {
    char *(*cols)[4];
    size_t n, cap;
} text_rows;

static store_status read_rows(sqlite_store *s, sqlite3_stmt *st, int ncols, text_rows *out,
                              const char *what)
{
    memset(out, 0, sizeof *out);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 16;
            out->cols = xrealloc(out->cols, out->cap * sizeof *out->cols);
        }
        for (int c = 0; c < 4; c++) {
            char *v = c < ncols ? col_dup(st, c) : NULL;
            out->cols[out->n][c] = v ? v : (c < ncols ? xstrdup("") : NULL);
        }
        out->n++;
    }
    store_status ret = rc == SQLITE_DONE ? STORE_OK : db_error(s, what);
    finish(st);
    return ret;
}

static void free_rows(text_rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        for (int c = 0; c < 4; c++)
            free(r->cols[i][c]);
    free(r->cols);
    memset(r, 0, sizeof *r);
}

/* 1 if the one-row query id on vals finds a row, 0 if not, -1 on error. */
static int row_exists(sqlite_store *s, enum sid id, int n, const char *const *vals)
{
    sqlite3_stmt *st = bound(s, id, n, vals);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (ret < 0)
        db_error(s, sql_text[id]);
    finish(st);
    return ret;
}

/* Run a write statement on vals; the rows it changed, or -1. */
static int exec_changes(sqlite_store *s, enum sid id, int n, const char *const *vals)
{
    sqlite3_stmt *st = bound(s, id, n, vals);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    finish(st);
    if (rc != SQLITE_DONE) {
        db_error(s, sql_text[id]);
        return -1;
    }
    return sqlite3_changes(s->db);
}

/* A read transaction, so that existence checks and lists agree. */
static store_status begin_read(sqlite_store *s)
{
    return sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? STORE_OK
                                                                       : db_error(s, "begin");
}

/* ---- admin policy ---- */

static store_status bump_policy(sqlite_store *s)
{
    return exec_simple(s, S_POLICY_BUMP, NULL, NULL) == 0 ? STORE_OK : STORE_ERROR;
}

/* Inside a transaction: does the scope's user or group exist? */
static store_status scope_exists(sqlite_store *s, policy_scope scope, const char *name)
{
    if (scope == POLICY_GLOBAL)
        return STORE_OK;
    int found = row_exists(s, scope == POLICY_USER ? S_USER_EXISTS : S_PGROUP_EXISTS, 1,
                           (const char *[]){name});
    if (found < 0)
        return STORE_ERROR;
    if (!found) {
        store_set_error(&s->base, "no such %s %s", policy_scope_name(scope), name);
        return STORE_NOT_FOUND;
    }
    return STORE_OK;
}

static store_status sqlite_policy_set(store *base, policy_scope scope, const char *name,
                                      const char *key, const char *value)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = scope_exists(s, scope, name);
    if (ret != STORE_OK)
        return rollback(s, ret);
    sqlite3_stmt *st = bound(s, S_POLICY_UPSERT, 4,
                             (const char *[]){policy_scope_name(scope), name, key, value});
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st);
    finish(st);
    if (rc != SQLITE_DONE)
        return rollback(s, db_error(s, "store a policy value"));
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status sqlite_policy_unset(store *base, policy_scope scope, const char *name,
                                        const char *key)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    int n = exec_changes(s, S_POLICY_DELETE, 3,
                         (const char *[]){policy_scope_name(scope), name, key});
    if (n < 0)
        return rollback(s, STORE_ERROR);
    if (n == 0) {
        store_set_error(base, "%s is not set for %s%s%s", key, policy_scope_name(scope),
                        *name ? " " : "", name);
        return rollback(s, STORE_NOT_FOUND);
    }
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static policy_scope scope_of(const char *text)
{
    return strcmp(text, "user") == 0 ? POLICY_USER
           : strcmp(text, "group") == 0 ? POLICY_GROUP
                                        : POLICY_GLOBAL;
}

static store_status sqlite_policy_list(store *base, const char *user, store_policy_fn fn,
                                       void *ud)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = user ? bound(s, S_POLICY_FOR_USER, 1, (const char *[]){user})
                            : stmt(s, S_POLICY_LIST);
    if (!st)
        return STORE_ERROR;
    text_rows r;
    store_status ret = read_rows(s, st, 4, &r, "list policy values");
    for (size_t i = 0; ret == STORE_OK && i < r.n; i++)
        fn(ud, scope_of(r.cols[i][0]), r.cols[i][1], r.cols[i][2], r.cols[i][3]);
    free_rows(&r);
    return ret;
}

static store_status sqlite_policy_version(store *base, int64_t *version)
{
    return read_int(ss_of(base), S_POLICY_VERSION, NULL, 0, version, "read the policy version");
}

static store_status sqlite_group_add(store *base, const char *group)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    sqlite3_stmt *st = bound(s, S_PGROUP_INSERT, 1, (const char *[]){group});
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st);
    finish(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        store_set_error(base, "group %s already exists", group);
        return rollback(s, STORE_EXISTS);
    }
    if (rc != SQLITE_DONE)
        return rollback(s, db_error(s, "create group"));
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status sqlite_group_del(store *base, const char *group)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = scope_exists(s, POLICY_GROUP, group);
    if (ret != STORE_OK)
        return rollback(s, ret);
    static const enum sid order[] = {S_PGROUP_POLICY_DELETE, S_PGROUP_MEMBERS_DELETE,
                                     S_PGROUP_DELETE};
    for (size_t i = 0; i < ARRAY_LEN(order); i++)
        if (exec_simple(s, order[i], group, NULL) < 0)
            return rollback(s, STORE_ERROR);
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status sqlite_group_list(store *base, void (*fn)(void *ud, const char *group),
                                      void *ud)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = stmt(s, S_PGROUP_LIST);
    if (!st)
        return STORE_ERROR;
    text_rows r;
    store_status ret = read_rows(s, st, 1, &r, "list groups");
    for (size_t i = 0; ret == STORE_OK && i < r.n; i++)
        fn(ud, r.cols[i][0]);
    free_rows(&r);
    return ret;
}

static store_status sqlite_group_member_add(store *base, const char *group, const char *user)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = scope_exists(s, POLICY_GROUP, group);
    if (ret == STORE_OK)
        ret = scope_exists(s, POLICY_USER, user);
    if (ret != STORE_OK)
        return rollback(s, ret);
    sqlite3_stmt *st = bound(s, S_MEMBER_INSERT, 2, (const char *[]){group, user});
    if (!st)
        return rollback(s, STORE_ERROR);
    int rc = sqlite3_step(st);
    finish(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        store_set_error(base, "%s is already a member of group %s", user, group);
        return rollback(s, STORE_EXISTS);
    }
    if (rc != SQLITE_DONE)
        return rollback(s, db_error(s, "add a group member"));
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status sqlite_group_member_del(store *base, const char *group, const char *user)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = scope_exists(s, POLICY_GROUP, group);
    if (ret != STORE_OK)
        return rollback(s, ret);
    int n = exec_changes(s, S_MEMBER_DELETE, 2, (const char *[]){group, user});
    if (n < 0)
        return rollback(s, STORE_ERROR);
    if (n == 0) {
        store_set_error(base, "%s is not a member of group %s", user, group);
        return rollback(s, STORE_NOT_FOUND);
    }
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status sqlite_group_members(store *base, const char *group,
                                         void (*fn)(void *ud, const char *group,
                                                    const char *user),
                                         void *ud)
{
    sqlite_store *s = ss_of(base);
    if (begin_read(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = group ? scope_exists(s, POLICY_GROUP, group) : STORE_OK;
    text_rows r = {0};
    if (ret == STORE_OK) {
        sqlite3_stmt *st = group ? bound(s, S_MEMBERS_OF, 1, (const char *[]){group})
                                 : stmt(s, S_MEMBERS_ALL);
        ret = st ? read_rows(s, st, 2, &r, "list group members") : STORE_ERROR;
    }
    rollback(s, STORE_OK); /* read-only */
    for (size_t i = 0; ret == STORE_OK && i < r.n; i++)
        fn(ud, r.cols[i][0], r.cols[i][1]);
    free_rows(&r);
    return ret;
}

/* ---- PEP ---- */

/* Inside a transaction: does the node exist? */
static store_status pep_node_exists(sqlite_store *s, const char *owner, const char *node)
{
    int found = row_exists(s, S_PEP_NODE_GET, 2, (const char *[]){owner, node});
    if (found < 0)
        return STORE_ERROR;
    if (!found) {
        store_set_error(&s->base, "%s has no PEP node %s", owner, node);
        return STORE_NOT_FOUND;
    }
    return STORE_OK;
}

static store_status sqlite_pep_node_get(store *base, const char *owner, const char *node,
                                        char **config)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = bound(s, S_PEP_NODE_GET, 2, (const char *[]){owner, node});
    if (!st)
        return STORE_ERROR;
    int rc = sqlite3_step(st);
    store_status ret = STORE_OK;
    if (rc == SQLITE_ROW) {
        *config = col_dup(st, 0);
    } else if (rc == SQLITE_DONE) {
        store_set_error(base, "%s has no PEP node %s", owner, node);
        ret = STORE_NOT_FOUND;
    } else {
        ret = db_error(s, "read a PEP node");
    }
    finish(st);
    return ret;
}

static store_status sqlite_pep_node_put(store *base, const char *owner, const char *node,
                                        const char *config, int max_nodes)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    int found = row_exists(s, S_PEP_NODE_GET, 2, (const char *[]){owner, node});
    if (found < 0)
        return rollback(s, STORE_ERROR);
    if (found) {
        if (exec_changes(s, S_PEP_NODE_UPDATE, 3, (const char *[]){owner, node, config}) < 0)
            return rollback(s, STORE_ERROR);
        return commit(s);
    }
    store_status ret = scope_exists(s, POLICY_USER, owner);
    if (ret != STORE_OK)
        return rollback(s, ret);
    sqlite3_stmt *st = bound(s, S_PEP_NODE_COUNT, 1, (const char *[]){owner});
    if (!st)
        return rollback(s, STORE_ERROR);
    int rc = sqlite3_step(st);
    int count = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    finish(st);
    if (count < 0)
        return rollback(s, db_error(s, "count PEP nodes"));
    if (max_nodes >= 0 && count >= max_nodes) {
        store_set_error(base, "%s already has %d PEP nodes", owner, count);
        return rollback(s, STORE_FULL);
    }
    st = bound(s, S_PEP_NODE_INSERT, 3, (const char *[]){owner, node, config});
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(st);
    finish(st);
    if (rc != SQLITE_DONE)
        return rollback(s, db_error(s, "create a PEP node"));
    return commit(s);
}

static store_status sqlite_pep_node_del(store *base, const char *owner, const char *node)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    const char *const vals[] = {owner, node};
    if (exec_changes(s, S_PEP_NODE_ITEMS_DELETE, 2, vals) < 0)
        return rollback(s, STORE_ERROR);
    int n = exec_changes(s, S_PEP_NODE_DELETE, 2, vals);
    if (n < 0)
        return rollback(s, STORE_ERROR);
    if (n == 0) {
        store_set_error(base, "%s has no PEP node %s", owner, node);
        return rollback(s, STORE_NOT_FOUND);
    }
    return commit(s);
}

static store_status sqlite_pep_node_list(store *base, const char *owner,
                                         void (*fn)(void *ud, const char *node,
                                                    const char *config),
                                         void *ud)
{
    sqlite_store *s = ss_of(base);
    sqlite3_stmt *st = bound(s, S_PEP_NODE_LIST, 1, (const char *[]){owner});
    if (!st)
        return STORE_ERROR;
    text_rows r;
    store_status ret = read_rows(s, st, 2, &r, "list PEP nodes");
    for (size_t i = 0; ret == STORE_OK && i < r.n; i++)
        fn(ud, r.cols[i][0], r.cols[i][1]);
    free_rows(&r);
    return ret;
}

static store_status sqlite_pep_item_put(store *base, const char *owner, const char *node,
                                        const char *id, const char *publisher,
                                        const char *payload, int max_items)
{
    sqlite_store *s = ss_of(base);
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = pep_node_exists(s, owner, node);
    if (ret != STORE_OK)
        return rollback(s, ret);
    sqlite3_stmt *st =
        bound(s, S_PEP_ITEM_UPSERT, 5, (const char *[]){owner, node, id, publisher, payload});
    if (!st)
        return rollback(s, STORE_ERROR);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st);
    finish(st);
    if (rc != SQLITE_DONE)
        return rollback(s, db_error(s, "store a PEP item"));
    if (max_items > 0) {
        st = bound(s, S_PEP_ITEMS_TRIM, 2, (const char *[]){owner, node});
        if (!st)
            return rollback(s, STORE_ERROR);
        sqlite3_bind_int(st, 3, max_items);
        rc = sqlite3_step(st);
        finish(st);
        if (rc != SQLITE_DONE)
            return rollback(s, db_error(s, "trim PEP items"));
    }
    return commit(s);
}

static store_status sqlite_pep_item_del(store *base, const char *owner, const char *node,
                                        const char *id)
{
    sqlite_store *s = ss_of(base);
    int n = exec_changes(s, S_PEP_ITEM_DELETE, 3, (const char *[]){owner, node, id});
    if (n < 0)
        return STORE_ERROR;
    if (n == 0) {
        store_set_error(base, "PEP node %s of %s has no item %s", node, owner, id);
        return STORE_NOT_FOUND;
    }
    return STORE_OK;
}

static store_status sqlite_pep_items(store *base, const char *owner, const char *node,
                                     const char *id, int max, store_pep_item_fn fn, void *ud)
{
    sqlite_store *s = ss_of(base);
    if (begin_read(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = pep_node_exists(s, owner, node);
    text_rows r = {0};
    if (ret == STORE_OK) {
        sqlite3_stmt *st;
        if (id) {
            st = bound(s, S_PEP_ITEM_GET, 3, (const char *[]){owner, node, id});
        } else if (max > 0) {
            st = bound(s, S_PEP_ITEMS_LAST, 2, (const char *[]){owner, node});
            if (st)
                sqlite3_bind_int(st, 3, max);
        } else {
            st = bound(s, S_PEP_ITEMS_ALL, 2, (const char *[]){owner, node});
        }
        ret = st ? read_rows(s, st, 3, &r, "read PEP items") : STORE_ERROR;
    }
    rollback(s, STORE_OK); /* read-only */
    for (size_t i = 0; ret == STORE_OK && i < r.n; i++)
        fn(ud, r.cols[i][0], r.cols[i][1], r.cols[i][2]);
    free_rows(&r);
    return ret;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .user_create = sqlite_user_create,
    .user_set_creds = sqlite_user_set_creds,
    .user_get_cred = sqlite_user_get_cred,
    .user_exists = sqlite_user_exists,
    .user_delete = sqlite_user_delete,
    .user_list = sqlite_user_list,
    .roster_get = sqlite_roster_get,
    .roster_get_item = sqlite_roster_get_item,
    .roster_put = sqlite_roster_put,
    .roster_del = sqlite_roster_del,
    .roster_version = sqlite_roster_version,
    .offline_push = sqlite_offline_push,
    .offline_pop = sqlite_offline_pop,
    .offline_count = sqlite_offline_count,
    .mam_append = sqlite_mam_append,
    .mam_query = sqlite_mam_query,
    .mam_purge = sqlite_mam_purge,
    .kv_put = sqlite_kv_put,
    .kv_get = sqlite_kv_get,
    .kv_del = sqlite_kv_del,
    .kv_list = sqlite_kv_list,
    .policy_set = sqlite_policy_set,
    .policy_unset = sqlite_policy_unset,
    .policy_list = sqlite_policy_list,
    .policy_version = sqlite_policy_version,
    .group_add = sqlite_group_add,
    .group_del = sqlite_group_del,
    .group_list = sqlite_group_list,
    .group_member_add = sqlite_group_member_add,
    .group_member_del = sqlite_group_member_del,
    .group_members = sqlite_group_members,
    .pep_node_get = sqlite_pep_node_get,
    .pep_node_put = sqlite_pep_node_put,
    .pep_node_del = sqlite_pep_node_del,
    .pep_node_list = sqlite_pep_node_list,
    .pep_item_put = sqlite_pep_item_put,
    .pep_item_del = sqlite_pep_item_del,
    .pep_items = sqlite_pep_items,
    .mam_count = sqlite_mam_count,
};
