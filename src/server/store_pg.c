/* store_pg.c - the PostgreSQL back end of the store (store.h, store_backend.h), on libpq.
 *
 * Same semantics and status codes as store_sqlite.c, for the case SQLite cannot serve:
 * several parleyd nodes sharing one database. Hence the locking rules, which every write
 * follows so that two nodes stay correct and never deadlock each other:
 *   - a write first locks the account's row in users, and only then touches its
 *     credentials, roster or offline rows (one lock order everywhere);
 *   - FOR KEY SHARE for roster writes (they only need the account to stay),
 *     FOR NO KEY UPDATE for offline pushes and credential changes (they serialise per
 *     account, which makes the offline cap check race-free), FOR UPDATE for deletion;
 *   - an offline pop reads the messages FOR UPDATE, hands them over and deletes exactly
 *     the ids it read, all in one transaction: a second node popping at the same time
 *     waits, then finds them gone, so a message is delivered once.
 *
 * Connection loss: each call checks the connection first and tries PQreset once if it is
 * bad; a connection that turns out dead on the call's first statement (a server restart
 * while idle) is reset and that statement retried, since nothing of the call has run yet.
 * Otherwise the call fails with STORE_ERROR and a message; the next call reconnects.
 * Nothing blocks forever: connect_timeout and TCP keepalives/user timeout are added to the
 * connection parameters unless the URI sets them, and statement_timeout is set per session
 * unless the server or role already configures one.
 *
 * Statements are prepared once per connection, on first use (PQprepare), and prepared again
 * after a reconnect. BYTEA values travel as binary parameters and results.
 *
 * Schema: versioned migrations in schema_version, applied under an advisory lock so nodes
 * starting together migrate once. Later features append; an applied one is never edited. */
#include "store_backend.h"
#include "pg_db.h"

#include "../common/log.h"
#include "../common/util.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Defaults added to the URI's parameters unless it sets them itself. */
#define PG_CONNECT_TIMEOUT "10"   /* seconds */
#define PG_TCP_USER_TIMEOUT "30000" /* ms an unacknowledged write may wait */
#define PG_STATEMENT_TIMEOUT "30s"
#define PG_IDLE_TX_TIMEOUT "60s"  /* a node stuck inside a transaction releases its locks */
/* pg_advisory_xact_lock key for migrations: "parley" in ASCII. */
#define PG_MIGRATION_LOCK "112585675516793"

/* ---- schema ---- */

/* The SQLite schema's equivalent; column names and meanings are the same so auditors'
 * queries work on both (0/1 integers, not booleans; times in Unix seconds). */
static const char *const migrations[] = {
    /* version 1: accounts, rosters, offline messages */
    "CREATE TABLE users ("
    "  jid TEXT PRIMARY KEY NOT NULL,"
    "  created BIGINT NOT NULL);"
    "CREATE TABLE credentials ("
    "  jid TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  hash TEXT NOT NULL CHECK (hash IN ('SHA-1', 'SHA-256')),"
    "  salt BYTEA NOT NULL,"
    "  iterations BIGINT NOT NULL,"
    "  stored_key BYTEA NOT NULL,"
    "  server_key BYTEA NOT NULL,"
    "  PRIMARY KEY (jid, hash));"
    "CREATE TABLE roster ("
    "  owner TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  contact TEXT NOT NULL,"
    "  name TEXT,"
    "  sub SMALLINT NOT NULL DEFAULT 0 CHECK (sub BETWEEN 0 AND 3),"
    "  ask_out SMALLINT NOT NULL DEFAULT 0 CHECK (ask_out IN (0, 1)),"
    "  pending_in SMALLINT NOT NULL DEFAULT 0 CHECK (pending_in IN (0, 1)),"
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
    "  version BIGINT NOT NULL);"
    "CREATE TABLE offline ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  owner TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  stanza TEXT NOT NULL,"
    "  stored_at BIGINT NOT NULL);"
    "CREATE INDEX offline_owner ON offline(owner, id);",
    /* version 2: small documents of server modules (store_kv_*) */
    "CREATE TABLE kv ("
    "  collection TEXT NOT NULL,"
    "  owner TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  updated BIGINT NOT NULL,"
    "  PRIMARY KEY (collection, owner, key));",
    /* version 3: the message archive (XEP-0313) */
    "CREATE TABLE mam ("
    "  seq BIGSERIAL PRIMARY KEY,"
    "  sid TEXT NOT NULL,"
    "  owner TEXT NOT NULL,"
    "  with_jid TEXT NOT NULL,"
    "  ts_us BIGINT NOT NULL,"
    "  stanza TEXT NOT NULL);"
    "CREATE UNIQUE INDEX mam_sid ON mam(owner, sid);"
    "CREATE INDEX mam_with ON mam(owner, with_jid, seq);"
    "CREATE INDEX mam_ts ON mam(ts_us);",
    /* version 4: the admin policy: values per scope, groups, a change counter */
    "CREATE TABLE policy_groups ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  created BIGINT NOT NULL);"
    "CREATE TABLE policy_group_members ("
    "  grp TEXT NOT NULL REFERENCES policy_groups(name) ON DELETE CASCADE,"
    "  member TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  PRIMARY KEY (grp, member));"
    "CREATE INDEX policy_group_members_member ON policy_group_members(member);"
    "CREATE TABLE policy ("
    "  scope TEXT NOT NULL CHECK (scope IN ('global', 'group', 'user')),"
    "  name TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  updated BIGINT NOT NULL,"
    "  PRIMARY KEY (scope, name, key));"
    "CREATE TABLE policy_version ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  version BIGINT NOT NULL);"
    "INSERT INTO policy_version(id, version) VALUES (1, 0);",
    /* version 5: PEP nodes and items (XEP-0163) */
    "CREATE TABLE pep_nodes ("
    "  owner TEXT NOT NULL REFERENCES users(jid) ON DELETE CASCADE,"
    "  node TEXT NOT NULL,"
    "  config TEXT NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  PRIMARY KEY (owner, node));"
    "CREATE TABLE pep_items ("
    "  owner TEXT NOT NULL,"
    "  node TEXT NOT NULL,"
    "  item_id TEXT NOT NULL,"
    "  publisher TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  seq BIGINT NOT NULL,"
    "  published BIGINT NOT NULL,"
    "  PRIMARY KEY (owner, node, item_id),"
    "  FOREIGN KEY (owner, node) REFERENCES pep_nodes(owner, node) ON DELETE CASCADE);"
    "CREATE INDEX pep_items_order ON pep_items(owner, node, seq);",
    /* version 6: the nodes of the domain and their session directory (node.h). A lease
     * is a time on the database's clock; NULL: registered, never up. */
    "CREATE TABLE cluster_nodes ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  address TEXT,"
    "  lease_until TIMESTAMPTZ);"
    "CREATE TABLE cluster_sessions ("
    "  jid TEXT NOT NULL,"
    "  resource TEXT NOT NULL,"
    "  node TEXT NOT NULL,"
    "  available BOOLEAN NOT NULL DEFAULT FALSE,"
    "  priority INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (jid, resource));"
    "CREATE INDEX cluster_sessions_node ON cluster_sessions(node);",
    /* version 7: the node each room of the MUC service lives on (node_rooms.h); a claim
     * counts while its node's lease runs. listing: the room's name in disco#items (NULL:
     * not listed); persistent rooms outlive their node's claim. */
    "CREATE TABLE cluster_rooms ("
    "  room TEXT PRIMARY KEY NOT NULL,"
    "  node TEXT NOT NULL,"
    "  listing TEXT,"
    "  persistent BOOLEAN NOT NULL DEFAULT FALSE);"
    "CREATE INDEX cluster_rooms_node ON cluster_rooms(node);",
};
#define SCHEMA_VERSION ((int)ARRAY_LEN(migrations))

/* ---- statements ---- */

enum sid {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_USER_INSERT,
    S_USER_EXISTS,
    S_USER_LOCK_KEYSHARE,
    S_USER_LOCK_NOKEY,
    S_USER_LOCK_UPDATE,
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
    S_GROUPS_DELETE,
    S_GROUP_INSERT,
    S_VERSION_BUMP,
    S_VERSION_GET,
    S_OFFLINE_COUNT,
    S_OFFLINE_INSERT,
    S_OFFLINE_LOCK,
    S_OFFLINE_DELETE_IDS,
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
    S_PGROUP_LOCK_KEYSHARE,
    S_PGROUP_LOCK_UPDATE,
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
    S_PEP_NODE_LOCK,
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
    S_NODE_REGISTER,
    S_NODE_UNREGISTER,
    S_NODE_SESSIONS_DELETE,
    S_NODE_ADDRESS,
    S_NODE_RENEW,
    S_NODE_LIST,
    S_NODE_SWEEP,
    S_SESSION_PUT,
    S_SESSION_DEL,
    S_SESSION_LIST,
    S_ROOM_CLAIM,
    S_ROOM_RELEASE,
    S_ROOM_RELEASE_ALL,
    S_ROOM_SWEEP,
    S_ROOM_DESCRIBE,
    S_ROOM_LIST,
    S_MAM_COUNT,
    S_COUNT
};

/* Text order is byte order (COLLATE "C"), as in SQLite, whatever the database's locale. A
 * roster is read with its groups in one statement, hence one snapshot without a
 * transaction; its rows come one per (item, group), items with no group once. */
#define ROSTER_SELECT                                                                      \
    "SELECT r.contact, r.name, r.sub, r.ask_out, r.pending_in, r.pending_in_stanza, g.grp" \
    " FROM roster r LEFT JOIN roster_groups g"                                              \
    " ON g.owner = r.owner AND g.contact = r.contact"

static const char *const sql_text[S_COUNT] = {
    [S_BEGIN] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT parley_nested",
    [S_RELEASE] = "RELEASE SAVEPOINT parley_nested",
    [S_ROLLBACK_TO] = "ROLLBACK TO SAVEPOINT parley_nested",
    [S_USER_INSERT] = "INSERT INTO users(jid, created) VALUES ($1, $2)",
    [S_USER_EXISTS] = "SELECT 1 FROM users WHERE jid = $1",
    [S_USER_LOCK_KEYSHARE] = "SELECT 1 FROM users WHERE jid = $1 FOR KEY SHARE",
    [S_USER_LOCK_NOKEY] = "SELECT 1 FROM users WHERE jid = $1 FOR NO KEY UPDATE",
    [S_USER_LOCK_UPDATE] = "SELECT 1 FROM users WHERE jid = $1 FOR UPDATE",
    [S_USER_LIST] = "SELECT jid FROM users ORDER BY jid COLLATE \"C\"",
    [S_USER_DELETE] = "DELETE FROM users WHERE jid = $1",
    [S_CRED_INSERT] = "INSERT INTO credentials(jid, hash, salt, iterations, stored_key, server_key)"
                      " VALUES ($1, $2, $3, $4, $5, $6)",
    [S_CRED_DELETE_ALL] = "DELETE FROM credentials WHERE jid = $1",
    [S_CRED_GET] = "SELECT salt, iterations, stored_key, server_key FROM credentials"
                   " WHERE jid = $1 AND hash = $2",
    [S_ROSTER_DELETE_ALL] = "DELETE FROM roster WHERE owner = $1",
    [S_ROSTER_GROUPS_DELETE_ALL] = "DELETE FROM roster_groups WHERE owner = $1",
    [S_ROSTER_VERSION_DELETE] = "DELETE FROM roster_versions WHERE owner = $1",
    [S_OFFLINE_DELETE_ALL] = "DELETE FROM offline WHERE owner = $1",
    [S_ROSTER_LIST] = ROSTER_SELECT " WHERE r.owner = $1"
                                    " ORDER BY r.contact COLLATE \"C\", g.grp COLLATE \"C\"",
    [S_ROSTER_GET] = ROSTER_SELECT " WHERE r.owner = $1 AND r.contact = $2"
                                   " ORDER BY g.grp COLLATE \"C\"",
    [S_ROSTER_UPSERT] =
        "INSERT INTO roster(owner, contact, name, sub, ask_out, pending_in, pending_in_stanza)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, sub = excluded.sub,"
        " ask_out = excluded.ask_out, pending_in = excluded.pending_in,"
        " pending_in_stanza = excluded.pending_in_stanza",
    [S_ROSTER_DELETE] = "DELETE FROM roster WHERE owner = $1 AND contact = $2",
    [S_GROUPS_DELETE] = "DELETE FROM roster_groups WHERE owner = $1 AND contact = $2",
    [S_GROUP_INSERT] = "INSERT INTO roster_groups(owner, contact, grp) VALUES ($1, $2, $3)"
                       " ON CONFLICT DO NOTHING",
    [S_VERSION_BUMP] = "INSERT INTO roster_versions(owner, version) VALUES ($1, 1)"
                       " ON CONFLICT (owner) DO UPDATE SET version = roster_versions.version + 1",
    [S_VERSION_GET] = "SELECT version FROM roster_versions WHERE owner = $1",
    [S_OFFLINE_COUNT] = "SELECT count(*) FROM offline WHERE owner = $1",
    [S_OFFLINE_INSERT] = "INSERT INTO offline(owner, stanza, stored_at) VALUES ($1, $2, $3)",
    [S_OFFLINE_LOCK] = "SELECT id, stanza FROM offline WHERE owner = $1 ORDER BY id FOR UPDATE",
    [S_OFFLINE_DELETE_IDS] = "DELETE FROM offline WHERE owner = $1 AND id = ANY($2::bigint[])",
    [S_MAM_INSERT] = "INSERT INTO mam(sid, owner, with_jid, ts_us, stanza) VALUES ($1, $2, $3, $4, $5)"
                    " ON CONFLICT (owner, sid) DO NOTHING",
    [S_MAM_SEQ] = "SELECT seq FROM mam WHERE owner = $1 AND sid = $2",
    [S_MAM_NEXT] = "SELECT sid, with_jid, ts_us, stanza FROM mam WHERE owner = $1"
                   " AND ($2::text IS NULL OR with_jid = $2) AND ts_us >= $3 AND ts_us <= $4"
                   " AND seq > $5 AND seq < $6 ORDER BY seq LIMIT $7",
    [S_MAM_PREV] = "SELECT sid, with_jid, ts_us, stanza FROM mam WHERE owner = $1"
                   " AND ($2::text IS NULL OR with_jid = $2) AND ts_us >= $3 AND ts_us <= $4"
                   " AND seq > $5 AND seq < $6 ORDER BY seq DESC LIMIT $7",
    [S_MAM_PURGE] = "DELETE FROM mam WHERE ts_us < $1",
    [S_MAM_PURGE_OWNER] = "DELETE FROM mam WHERE ts_us < $1 AND owner = $2",
    [S_MAM_DELETE_ALL] = "DELETE FROM mam WHERE owner = $1",
    [S_KV_PUT] = "INSERT INTO kv(collection, owner, key, value, updated) VALUES ($1, $2, $3, $4, $5)"
                 " ON CONFLICT (collection, owner, key) DO UPDATE SET value = excluded.value,"
                 " updated = excluded.updated",
    [S_KV_GET] = "SELECT value FROM kv WHERE collection = $1 AND owner = $2 AND key = $3",
    [S_KV_DEL] = "DELETE FROM kv WHERE collection = $1 AND owner = $2 AND key = $3",
    [S_KV_DEL_OWNER] = "DELETE FROM kv WHERE collection = $1 AND owner = $2",
    [S_KV_LIST] = "SELECT owner, key, value FROM kv WHERE collection = $1"
                  " ORDER BY owner COLLATE \"C\", key COLLATE \"C\"",
    [S_KV_LIST_OWNER] = "SELECT owner, key, value FROM kv WHERE collection = $1 AND owner = $2"
                        " ORDER BY key COLLATE \"C\"",
    [S_POLICY_USER_DELETE] = "DELETE FROM policy WHERE scope = 'user' AND name = $1",
    [S_MEMBERS_USER_DELETE] = "DELETE FROM policy_group_members WHERE member = $1",
    [S_PEP_ITEMS_USER_DELETE] = "DELETE FROM pep_items WHERE owner = $1",
    [S_PEP_NODES_USER_DELETE] = "DELETE FROM pep_nodes WHERE owner = $1",
    [S_POLICY_BUMP] = "UPDATE policy_version SET version = version + 1 WHERE id = 1",
    [S_POLICY_VERSION] = "SELECT version FROM policy_version WHERE id = 1",
    [S_POLICY_UPSERT] = "INSERT INTO policy(scope, name, key, value, updated)"
                        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, name, key)"
                        " DO UPDATE SET value = excluded.value, updated = excluded.updated",
    [S_POLICY_DELETE] = "DELETE FROM policy WHERE scope = $1 AND name = $2 AND key = $3",
    [S_POLICY_LIST] = "SELECT scope, name, key, value FROM policy"
                      " ORDER BY scope COLLATE \"C\", name COLLATE \"C\", key COLLATE \"C\"",
    [S_POLICY_FOR_USER] = "SELECT scope, name, key, value FROM policy WHERE scope = 'global'"
                          " OR (scope = 'user' AND name = $1) OR (scope = 'group' AND name IN"
                          " (SELECT grp FROM policy_group_members WHERE member = $1))"
                          " ORDER BY scope COLLATE \"C\", name COLLATE \"C\","
                          " key COLLATE \"C\"",
    [S_PGROUP_LOCK_KEYSHARE] = "SELECT 1 FROM policy_groups WHERE name = $1 FOR KEY SHARE",
    [S_PGROUP_LOCK_UPDATE] = "SELECT 1 FROM policy_groups WHERE name = $1 FOR UPDATE",
    [S_PGROUP_INSERT] = "INSERT INTO policy_groups(name, created) VALUES ($1, $2)",
    [S_PGROUP_DELETE] = "DELETE FROM policy_groups WHERE name = $1",
    [S_PGROUP_POLICY_DELETE] = "DELETE FROM policy WHERE scope = 'group' AND name = $1",
    [S_PGROUP_MEMBERS_DELETE] = "DELETE FROM policy_group_members WHERE grp = $1",
    [S_PGROUP_LIST] = "SELECT name FROM policy_groups ORDER BY name COLLATE \"C\"",
    [S_MEMBER_INSERT] = "INSERT INTO policy_group_members(grp, member) VALUES ($1, $2)",
    [S_MEMBER_DELETE] = "DELETE FROM policy_group_members WHERE grp = $1 AND member = $2",
    [S_MEMBERS_OF] = "SELECT grp, member FROM policy_group_members WHERE grp = $1"
                     " ORDER BY member COLLATE \"C\"",
    [S_MEMBERS_ALL] = "SELECT grp, member FROM policy_group_members"
                      " ORDER BY grp COLLATE \"C\", member COLLATE \"C\"",
    [S_PEP_NODE_GET] = "SELECT config FROM pep_nodes WHERE owner = $1 AND node = $2",
    [S_PEP_NODE_LOCK] = "SELECT 1 FROM pep_nodes WHERE owner = $1 AND node = $2 FOR UPDATE",
    [S_PEP_NODE_COUNT] = "SELECT count(*) FROM pep_nodes WHERE owner = $1",
    [S_PEP_NODE_INSERT] = "INSERT INTO pep_nodes(owner, node, config, created)"
                          " VALUES ($1, $2, $3, $4)",
    [S_PEP_NODE_UPDATE] = "UPDATE pep_nodes SET config = $3 WHERE owner = $1 AND node = $2",
    [S_PEP_NODE_DELETE] = "DELETE FROM pep_nodes WHERE owner = $1 AND node = $2",
    [S_PEP_NODE_ITEMS_DELETE] = "DELETE FROM pep_items WHERE owner = $1 AND node = $2",
    [S_PEP_NODE_LIST] = "SELECT node, config FROM pep_nodes WHERE owner = $1"
                        " ORDER BY node COLLATE \"C\"",
    [S_PEP_ITEM_UPSERT] =
        "INSERT INTO pep_items(owner, node, item_id, publisher, payload, seq, published)"
        " VALUES ($1, $2, $3, $4, $5,"
        " (SELECT coalesce(max(seq), 0) + 1 FROM pep_items WHERE owner = $1 AND node = $2), $6)"
        " ON CONFLICT (owner, node, item_id) DO UPDATE SET publisher = excluded.publisher,"
        " payload = excluded.payload, seq = excluded.seq, published = excluded.published",
    [S_PEP_ITEMS_TRIM] = "DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND seq <="
                         " (SELECT seq FROM pep_items WHERE owner = $1 AND node = $2"
                         " ORDER BY seq DESC LIMIT 1 OFFSET $3::bigint)",
    [S_PEP_ITEM_DELETE] = "DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND item_id = $3",
    [S_PEP_ITEM_GET] = "SELECT item_id, publisher, payload FROM pep_items"
                       " WHERE owner = $1 AND node = $2 AND item_id = $3",
    [S_PEP_ITEMS_ALL] = "SELECT item_id, publisher, payload FROM pep_items"
                        " WHERE owner = $1 AND node = $2 ORDER BY seq",
    [S_PEP_ITEMS_LAST] = "SELECT item_id, publisher, payload FROM (SELECT item_id, publisher,"
                         " payload, seq FROM pep_items WHERE owner = $1 AND node = $2"
                         " ORDER BY seq DESC LIMIT $3::bigint) AS newest ORDER BY seq",
    [S_NODE_REGISTER] = "INSERT INTO cluster_nodes(name, address) VALUES ($1, $2)"
                        " ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address",
    [S_NODE_UNREGISTER] = "DELETE FROM cluster_nodes WHERE name = $1",
    [S_NODE_SESSIONS_DELETE] = "DELETE FROM cluster_sessions WHERE node = $1",
    [S_NODE_ADDRESS] = "SELECT address FROM cluster_nodes WHERE name = $1 AND address IS NOT NULL",
    [S_NODE_RENEW] = "INSERT INTO cluster_nodes(name, lease_until)"
                     " VALUES ($1, now() + make_interval(secs => $2::int))"
                     " ON CONFLICT (name) DO UPDATE SET lease_until = EXCLUDED.lease_until",
    [S_NODE_LIST] = "SELECT n.name, n.address, coalesce(n.lease_until > now(), false),"
                    " count(s.resource), count(s.resource) FILTER (WHERE s.available)"
                    " FROM cluster_nodes n LEFT JOIN cluster_sessions s ON s.node = n.name"
                    " GROUP BY n.name, n.address, n.lease_until ORDER BY n.name COLLATE \"C\"",
    [S_NODE_SWEEP] = "DELETE FROM cluster_sessions s WHERE NOT EXISTS (SELECT 1 FROM"
                     " cluster_nodes n WHERE n.name = s.node"
                     " AND n.lease_until >= now() - make_interval(secs => $1::int))",
    [S_SESSION_PUT] = "INSERT INTO cluster_sessions(jid, resource, node, available, priority)"
                      " VALUES ($1, $2, $3, $4::boolean, $5::int) ON CONFLICT (jid, resource)"
                      " DO UPDATE SET node = EXCLUDED.node, available = EXCLUDED.available,"
                      " priority = EXCLUDED.priority",
    [S_SESSION_DEL] = "DELETE FROM cluster_sessions WHERE jid = $1 AND resource = $2 AND node = $3",
    [S_SESSION_LIST] = "SELECT s.resource, s.node, s.available, s.priority FROM cluster_sessions s"
                       " JOIN cluster_nodes n ON n.name = s.node"
                       " WHERE s.jid = $1 AND n.lease_until > now() ORDER BY s.resource COLLATE \"C\"",
    /* Taken if free, already ours, or held by a node whose lease ran out; the holder
     * either way (no row: a concurrent claim committed after this statement's snapshot,
     * and the caller asks again). */
    [S_ROOM_CLAIM] = "WITH claimed AS (INSERT INTO cluster_rooms(room, node) VALUES ($1, $2)"
                     " ON CONFLICT (room) DO UPDATE SET node = EXCLUDED.node"
                     " WHERE cluster_rooms.node = EXCLUDED.node OR NOT EXISTS (SELECT 1 FROM"
                     " cluster_nodes n WHERE n.name = cluster_rooms.node AND n.lease_until > now())"
                     " RETURNING node)"
                     " SELECT node FROM claimed UNION ALL SELECT node FROM cluster_rooms"
                     " WHERE room = $1 AND NOT EXISTS (SELECT 1 FROM claimed)",
    [S_ROOM_RELEASE] = "DELETE FROM cluster_rooms WHERE room = $1 AND node = $2",
    [S_ROOM_RELEASE_ALL] = "DELETE FROM cluster_rooms WHERE node = $1",
    [S_ROOM_SWEEP] = "DELETE FROM cluster_rooms r WHERE NOT r.persistent AND NOT EXISTS (SELECT 1"
                     " FROM cluster_nodes n WHERE n.name = r.node"
                     " AND n.lease_until >= now() - make_interval(secs => $1::int))",
    [S_ROOM_DESCRIBE] = "UPDATE cluster_rooms SET listing = $3, persistent = $4::boolean"
                        " WHERE room = $1 AND node = $2",
    [S_ROOM_LIST] = "SELECT r.room, r.node, r.listing, r.persistent,"
                    " coalesce(n.lease_until > now(), false) FROM cluster_rooms r"
                    " LEFT JOIN cluster_nodes n ON n.name = r.node ORDER BY r.room COLLATE \"C\"",
    [S_MAM_COUNT] = "SELECT count(*) FROM mam WHERE owner = $1"
                    " AND ($2::text IS NULL OR with_jid = $2) AND ts_us >= $3 AND ts_us <= $4",
};

/* SQLSTATEs the store maps to its own codes. */
#define SQLSTATE_UNIQUE "23505"
#define SQLSTATE_FOREIGN_KEY "23503"

typedef struct pg_store {
    struct store base; /* first: store.c sees only this */
    pg_db db;              /* the connection; db.where names it in messages */
    int depth;             /* 0 outside a transaction, 1 in BEGIN, more in savepoints */
    int calls;             /* store calls in progress (an offline pop's fn may call in) */
    char sqlstate[6];      /* of the last failed statement, "" if none */
} pg_store;

static pg_store *ps_of(store *st)
{
    return (pg_store *)st;
}

/* what: the failing statement's SQL or a short phrase; SQL is cut so the server's own
 * message, which says what went wrong, always fits in the error buffer. */
static store_status conn_error(pg_store *s, const char *what)
{
    char msg[STORE_ERRLEN];
    pg_db_first_line(msg, sizeof msg, PQerrorMessage(s->db.conn));
    if (PQstatus(s->db.conn) == CONNECTION_BAD)
        return store_set_error(&s->base, "PostgreSQL %s: connection lost (%.60s): %s",
                               s->db.where, what, msg);
    return store_set_error(&s->base, "%.60s: %s", what, msg);
}

/* detail: whether to add the server's DETAIL line, which may quote the failing row; never
 * for credentials (the log must not carry SCRAM keys). */
static store_status result_error(pg_store *s, const char *what, const PGresult *res,
                                 int detail_ok)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(s->sqlstate, sizeof s->sqlstate, "%s", state ? state : "");
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!primary || PQstatus(s->db.conn) == CONNECTION_BAD)
        return conn_error(s, what);
    const char *detail = detail_ok ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    return store_set_error(&s->base, "%.60s: %s%s%s", what, primary, detail ? " - " : "",
                           detail ? detail : "");
}

/* Every op runs between enter() and leave(). Only the outermost call may reconnect: a call
 * made from inside an offline pop's callback shares the pop's transaction. */
static store_status enter(pg_store *s)
{
    if (s->calls++ > 0)
        return STORE_OK;
    s->sqlstate[0] = '\0';
    /* Between calls no transaction is open; if one is (a bug), do not build on it. */
    s->depth = 0;
    if (pg_db_call_start(&s->db, 0, s->base.error, sizeof s->base.error) < 0)
        return STORE_ERROR;
    return STORE_OK;
}

static store_status leave(pg_store *s, store_status ret)
{
    s->calls--;
    return ret;
}

/* Parameters of one statement: values with their lengths and formats (1 = binary). */
typedef struct params {
    int n;
    const char *val[7];
    int len[7];
    int fmt[7];
} params;

static void p_text(params *p, const char *v)
{
    p->val[p->n] = v; /* NULL is SQL NULL */
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

static void p_bin(params *p, const void *v, size_t len)
{
    p->val[p->n] = v;
    p->len[p->n] = (int)len;
    p->fmt[p->n] = 1;
    p->n++;
}

/* Run statement id; the result (which the caller PQclears) or NULL with the error recorded.
 * A dead connection on the call's first statement is reset and the statement retried. */
static PGresult *run(pg_store *s, enum sid id, const params *p, int binary_result)
{
    static const params none = {0};
    if (!p)
        p = &none;
    PGresult *res;
    /* Only the outermost call may reconnect: an inner one shares its transaction. */
    int rc = pg_db_run(&s->db, id, p->n, p->val, p->len, p->fmt, binary_result, s->calls == 1,
                       &res, s->base.error, sizeof s->base.error);
    if (rc == 0)
        return res;
    if (rc == -1)
        result_error(s, sql_text[id], res, id != S_CRED_INSERT && id != S_CRED_GET);
    PQclear(res);
    return NULL;
}

/* Run a statement whose result is not needed. */
static int exec_simple(pg_store *s, enum sid id, const char *a, const char *b)
{
    params p = {0};
    if (a)
        p_text(&p, a);
    if (b)
        p_text(&p, b);
    PGresult *res = run(s, id, &p, 0);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

static int has_state(const pg_store *s, const char *state)
{
    return strcmp(s->sqlstate, state) == 0;
}

/* ---- transactions (nesting through a savepoint, for calls from a pop's callback) ---- */

static store_status begin(pg_store *s)
{
    if (exec_simple(s, s->depth == 0 ? S_BEGIN : S_SAVEPOINT, NULL, NULL) < 0)
        return STORE_ERROR;
    s->depth++;
    return STORE_OK;
}

/* Abandon the innermost transaction level and return status (the error is kept). */
static store_status rollback(pg_store *s, store_status status)
{
    if (s->depth == 0)
        return status;
    char keep[STORE_ERRLEN];
    snprintf(keep, sizeof keep, "%s", s->base.error);
    if (PQstatus(s->db.conn) == CONNECTION_OK) {
        if (s->depth > 1) {
            exec_simple(s, S_ROLLBACK_TO, NULL, NULL);
            exec_simple(s, S_RELEASE, NULL, NULL);
        } else if (PQtransactionStatus(s->db.conn) != PQTRANS_IDLE) {
            exec_simple(s, S_ROLLBACK, NULL, NULL);
        }
    }
    s->depth--;
    snprintf(s->base.error, sizeof s->base.error, "%s", keep);
    return status;
}

static store_status commit(pg_store *s)
{
    if (s->depth > 1) {
        if (exec_simple(s, S_RELEASE, NULL, NULL) < 0)
            return rollback(s, STORE_ERROR);
        s->depth--;
        return STORE_OK;
    }
    PGresult *res = run(s, S_COMMIT, NULL, 0);
    if (!res)
        return rollback(s, STORE_ERROR);
    /* COMMIT of a transaction that failed succeeds as a ROLLBACK. */
    int rolled_back = strcmp(PQcmdStatus(res), "ROLLBACK") == 0;
    PQclear(res);
    s->depth--;
    if (rolled_back)
        return store_set_error(&s->base, "PostgreSQL %s: the transaction was rolled back",
                               s->db.where);
    return STORE_OK;
}

static char *val_dup(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

static int val_int(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : atoi(PQgetvalue(res, row, col));
}

static const char *hash_name(scram_hash h)
{
    return h == SCRAM_SHA1 ? "SHA-1" : "SHA-256";
}

/* ---- open / close ---- */

static void pg_close(store *st)
{
    pg_store *s = ps_of(st);
    pg_db_close(&s->db);
    free(s);
}

/* location is the URI after "postgresql:" or "postgres:" ("//user@host:port/db?..."). */
static store *pg_open(const char *location, char *err, size_t errlen)
{
    static const pg_db_conf conf = {
        .log_label = "store",
        .err_label = "",
        .application_name = "parley",
        .connect_timeout = PG_CONNECT_TIMEOUT,
        .tcp_user_timeout = PG_TCP_USER_TIMEOUT,
        .statement_timeout = PG_STATEMENT_TIMEOUT,
        .idle_tx_timeout = PG_IDLE_TX_TIMEOUT,
        .min_server_version = 100000, /* GENERATED AS IDENTITY needs 10 */
        .sql = sql_text,
        .nstmts = S_COUNT,
        .stmt_prefix = "parley_",
    };
    pg_store *s = xcalloc(1, sizeof *s);
    if (pg_db_open(&s->db, &conf, location, err, errlen) < 0 ||
        pg_db_migrate(&s->db, "schema_version", PG_MIGRATION_LOCK, migrations, SCHEMA_VERSION,
                      err, errlen) < 0) {
        pg_close(&s->base);
        return NULL;
    }
    return &s->base;
}

/* ---- accounts ---- */

/* Look the account up, locking its row (lock: one of the S_USER_LOCK_* or S_USER_EXISTS). */
static store_status user_row(pg_store *s, enum sid lock, const char *user)
{
    params p = {0};
    p_text(&p, user);
    PGresult *res = run(s, lock, &p, 0);
    if (!res)
        return STORE_ERROR;
    int found = PQntuples(res) > 0;
    PQclear(res);
    if (!found) {
        store_set_error(&s->base, "no such user %s", user);
        return STORE_NOT_FOUND;
    }
    return STORE_OK;
}

/* Insert creds for user; inside the caller's transaction. */
static store_status insert_creds(pg_store *s, const char *user, const scram_cred *creds,
                                 size_t ncreds)
{
    for (size_t i = 0; i < ncreds; i++) {
        const scram_cred *c = &creds[i];
        char iters[24];
        snprintf(iters, sizeof iters, "%u", c->iterations);
        params p = {0};
        p_text(&p, user);
        p_text(&p, hash_name(c->hash));
        p_bin(&p, c->salt, c->salt_len);
        p_text(&p, iters);
        p_bin(&p, c->stored_key, c->key_len);
        p_bin(&p, c->server_key, c->key_len);
        PGresult *res = run(s, S_CRED_INSERT, &p, 0);
        if (!res)
            return STORE_ERROR;
        PQclear(res);
    }
    return STORE_OK;
}

static store_status user_create(pg_store *s, const char *user, const scram_cred *creds,
                                size_t ncreds)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    params p = {0};
    p_text(&p, user);
    p_text(&p, now);
    PGresult *res = run(s, S_USER_INSERT, &p, 0);
    if (!res) {
        /* Another node creating the same account waits on the key, then lands here. */
        if (has_state(s, SQLSTATE_UNIQUE)) {
            store_set_error(&s->base, "user %s already exists", user);
            return rollback(s, STORE_EXISTS);
        }
        return rollback(s, STORE_ERROR);
    }
    PQclear(res);
    if (insert_creds(s, user, creds, ncreds) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status user_set_creds(pg_store *s, const char *user, const scram_cred *creds,
                                   size_t ncreds)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    /* Two nodes replacing credentials at once take turns on the account row. */
    store_status ret = user_row(s, S_USER_LOCK_NOKEY, user);
    if (ret != STORE_OK)
        return rollback(s, ret);
    if (exec_simple(s, S_CRED_DELETE_ALL, user, NULL) < 0 ||
        insert_creds(s, user, creds, ncreds) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status user_get_cred(pg_store *s, const char *user, scram_hash hash,
                                  scram_cred *out)
{
    params p = {0};
    p_text(&p, user);
    p_text(&p, hash_name(hash));
    PGresult *res = run(s, S_CRED_GET, &p, 1); /* binary: bytea as raw bytes */
    if (!res)
        return STORE_ERROR;
    store_status ret = STORE_OK;
    if (PQntuples(res) == 0) {
        ret = STORE_NOT_FOUND;
        store_set_error(&s->base, "no %s credential for %s", hash_name(hash), user);
    } else {
        size_t want = hash == SCRAM_SHA1 ? 20 : 32;
        int salt_len = PQgetlength(res, 0, 0);
        int sk_len = PQgetlength(res, 0, 2);
        int vk_len = PQgetlength(res, 0, 3);
        uint64_t iters = 0;
        if (PQgetlength(res, 0, 1) == 8) { /* int8, network byte order */
            const unsigned char *b = (const unsigned char *)PQgetvalue(res, 0, 1);
            for (int i = 0; i < 8; i++)
                iters = iters << 8 | b[i];
        }
        /* A damaged row must never be read past a fixed-size array. */
        if (salt_len <= 0 || salt_len > SCRAM_SALT_LEN || iters == 0 || iters > UINT_MAX ||
            (size_t)sk_len != want || (size_t)vk_len != want) {
            ret = store_set_error(&s->base, "corrupt %s credential for %s", hash_name(hash),
                                  user);
        } else {
            memset(out, 0, sizeof *out);
            out->hash = hash;
            memcpy(out->salt, PQgetvalue(res, 0, 0), (size_t)salt_len);
            out->salt_len = (size_t)salt_len;
            out->iterations = (unsigned)iters;
            memcpy(out->stored_key, PQgetvalue(res, 0, 2), want);
            memcpy(out->server_key, PQgetvalue(res, 0, 3), want);
            out->key_len = want;
        }
    }
    PQclear(res);
    return ret;
}

static store_status user_delete(pg_store *s, const char *user)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = user_row(s, S_USER_LOCK_UPDATE, user);
    if (ret != STORE_OK)
        return rollback(s, ret);
    /* Explicit deletes, as in the SQLite back end: the order of the cascade is ours. */
    static const enum sid order[] = {S_ROSTER_GROUPS_DELETE_ALL, S_ROSTER_DELETE_ALL,
                                     S_ROSTER_VERSION_DELETE, S_OFFLINE_DELETE_ALL,
                                     S_PEP_ITEMS_USER_DELETE,  S_PEP_NODES_USER_DELETE,
                                     S_MEMBERS_USER_DELETE,    S_POLICY_USER_DELETE,
                                     S_MAM_DELETE_ALL,         S_CRED_DELETE_ALL,
                                     S_USER_DELETE};
    for (size_t i = 0; i < ARRAY_LEN(order); i++)
        if (exec_simple(s, order[i], user, NULL) < 0)
            return rollback(s, STORE_ERROR);
    /* The version row last, as in every policy write (one lock order). */
    if (exec_simple(s, S_POLICY_BUMP, NULL, NULL) < 0)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status user_list(pg_store *s, void (*fn)(void *ud, const char *user), void *ud)
{
    PGresult *res = run(s, S_USER_LIST, NULL, 0);
    if (!res)
        return STORE_ERROR;
    /* The result is ours: fn may use the store meanwhile. */
    for (int i = 0; i < PQntuples(res); i++)
        if (!PQgetisnull(res, i, 0))
            fn(ud, PQgetvalue(res, i, 0));
    PQclear(res);
    return STORE_OK;
}

/* ---- roster ---- */

/* Turn rows of ROSTER_SELECT (ordered by contact) into items, groups attached. */
static size_t read_items(const PGresult *res, roster_item **items)
{
    roster_item *list = NULL;
    size_t count = 0, cap = 0, gcap = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        const char *contact = PQgetvalue(res, row, 0);
        if (count == 0 || strcmp(list[count - 1].contact, contact) != 0) {
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                list = xrealloc(list, cap * sizeof *list);
            }
            roster_item *it = &list[count++];
            memset(it, 0, sizeof *it);
            it->contact = xstrdup(contact);
            it->name = val_dup(res, row, 1);
            int sub = val_int(res, row, 2);
            it->sub = (sub >= SUB_NONE && sub <= SUB_BOTH) ? (sub_state)sub : SUB_NONE;
            it->ask_out = val_int(res, row, 3) != 0;
            it->pending_in = val_int(res, row, 4) != 0;
            it->pending_in_stanza = val_dup(res, row, 5);
            gcap = 0;
        }
        if (PQgetisnull(res, row, 6))
            continue;
        roster_item *it = &list[count - 1];
        if (it->ngroups == gcap) {
            gcap = gcap ? gcap * 2 : 4;
            it->groups = xrealloc(it->groups, gcap * sizeof *it->groups);
        }
        it->groups[it->ngroups++] = xstrdup(PQgetvalue(res, row, 6));
    }
    *items = list;
    return count;
}

static store_status roster_get(pg_store *s, const char *user, roster_item **items, size_t *n)
{
    params p = {0};
    p_text(&p, user);
    PGresult *res = run(s, S_ROSTER_LIST, &p, 0);
    if (!res)
        return STORE_ERROR;
    *n = read_items(res, items);
    PQclear(res);
    return STORE_OK;
}

static store_status roster_get_item(pg_store *s, const char *user, const char *contact,
                                    roster_item *out)
{
    params p = {0};
    p_text(&p, user);
    p_text(&p, contact);
    PGresult *res = run(s, S_ROSTER_GET, &p, 0);
    if (!res)
        return STORE_ERROR;
    roster_item *items = NULL;
    size_t n = read_items(res, &items);
    PQclear(res);
    if (n == 0) {
        store_set_error(&s->base, "%s has no roster item %s", user, contact);
        return STORE_NOT_FOUND;
    }
    *out = items[0];
    free(items); /* n is 1: the contact is part of the key */
    return STORE_OK;
}

static store_status bump_version(pg_store *s, const char *user)
{
    return exec_simple(s, S_VERSION_BUMP, user, NULL) == 0 ? STORE_OK : STORE_ERROR;
}

static store_status roster_put(pg_store *s, const char *user, const roster_item *item)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = user_row(s, S_USER_LOCK_KEYSHARE, user);
    if (ret != STORE_OK)
        return rollback(s, ret);
    char sub[8];
    snprintf(sub, sizeof sub, "%d", (int)item->sub);
    params p = {0};
    p_text(&p, user);
    p_text(&p, item->contact);
    p_text(&p, item->name); /* NULL is SQL NULL */
    p_text(&p, sub);
    p_text(&p, item->ask_out ? "1" : "0");
    p_text(&p, item->pending_in ? "1" : "0");
    p_text(&p, item->pending_in_stanza);
    /* The upsert locks the roster row: concurrent puts of one item take turns, so the
     * groups below always belong to one of them. */
    PGresult *res = run(s, S_ROSTER_UPSERT, &p, 0);
    if (!res) {
        if (has_state(s, SQLSTATE_FOREIGN_KEY)) {
            store_set_error(&s->base, "no such user %s", user);
            return rollback(s, STORE_NOT_FOUND);
        }
        return rollback(s, STORE_ERROR);
    }
    PQclear(res);
    if (exec_simple(s, S_GROUPS_DELETE, user, item->contact) < 0)
        return rollback(s, STORE_ERROR);
    for (size_t i = 0; i < item->ngroups; i++) {
        if (!item->groups[i])
            continue;
        params g = {0};
        p_text(&g, user);
        p_text(&g, item->contact);
        p_text(&g, item->groups[i]);
        res = run(s, S_GROUP_INSERT, &g, 0);
        if (!res)
            return rollback(s, STORE_ERROR);
        PQclear(res);
    }
    if (bump_version(s, user) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status roster_del(pg_store *s, const char *user, const char *contact)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = user_row(s, S_USER_LOCK_KEYSHARE, user);
    if (ret == STORE_NOT_FOUND)
        store_set_error(&s->base, "%s has no roster item %s", user, contact);
    if (ret != STORE_OK)
        return rollback(s, ret);
    /* The item's row before its groups (the cascade does those): the same order as
     * roster_put, whose upsert locks the row first, so the two cannot deadlock. */
    params p = {0};
    p_text(&p, user);
    p_text(&p, contact);
    PGresult *res = run(s, S_ROSTER_DELETE, &p, 0);
    if (!res)
        return rollback(s, STORE_ERROR);
    int deleted = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    if (!deleted) {
        store_set_error(&s->base, "%s has no roster item %s", user, contact);
        return rollback(s, STORE_NOT_FOUND);
    }
    if (exec_simple(s, S_GROUPS_DELETE, user, contact) < 0)
        return rollback(s, STORE_ERROR);
    if (bump_version(s, user) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status roster_version(pg_store *s, const char *user, int64_t *version)
{
    params p = {0};
    p_text(&p, user);
    PGresult *res = run(s, S_VERSION_GET, &p, 0);
    if (!res)
        return STORE_ERROR;
    *version = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return STORE_OK;
}

/* ---- offline messages ---- */

static store_status offline_count(pg_store *s, const char *user, int *count)
{
    params p = {0};
    p_text(&p, user);
    PGresult *res = run(s, S_OFFLINE_COUNT, &p, 0);
    if (!res)
        return STORE_ERROR;
    long long c = PQntuples(res) > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    *count = c > INT_MAX ? INT_MAX : (int)c;
    return STORE_OK;
}

/* max < 0: no cap. */
static store_status offline_push(pg_store *s, const char *user, const char *stanza, int max)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    /* Pushes to one account take turns on its row, so the count below cannot be passed by
     * another node's push between the check and the insert. */
    store_status ret = user_row(s, S_USER_LOCK_NOKEY, user);
    if (ret == STORE_NOT_FOUND && max == 0) {
        /* The SQLite back end checks the cap before the account: same answer here. */
        store_set_error(&s->base, "%s already has 0 offline messages", user);
        return rollback(s, STORE_FULL);
    }
    if (ret != STORE_OK)
        return rollback(s, ret);
    int count = 0;
    if (offline_count(s, user, &count) != STORE_OK)
        return rollback(s, STORE_ERROR);
    if (max >= 0 && count >= max) {
        store_set_error(&s->base, "%s already has %d offline messages", user, count);
        return rollback(s, STORE_FULL);
    }
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    params p = {0};
    p_text(&p, user);
    p_text(&p, stanza);
    p_text(&p, now);
    PGresult *res = run(s, S_OFFLINE_INSERT, &p, 0);
    if (!res)
        return rollback(s, STORE_ERROR);
    PQclear(res);
    return commit(s);
}

/* Append id to a growing "{1,2,3}" array literal. */
static void ids_add(char **buf, size_t *len, size_t *cap, const char *id)
{
    size_t need = *len + strlen(id) + 3;
    if (need > *cap) {
        *cap = need * 2;
        *buf = xrealloc(*buf, *cap);
    }
    *len += (size_t)snprintf(*buf + *len, *cap - *len, "%s%s", *len ? "," : "{", id);
}

static store_status offline_pop(pg_store *s, const char *user,
                                int (*fn)(void *ud, const char *stanza), void *ud)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    params p = {0};
    p_text(&p, user);
    PGresult *res = run(s, S_OFFLINE_LOCK, &p, 0);
    if (!res)
        return rollback(s, STORE_ERROR);
    int n = PQntuples(res);
    store_status ret = STORE_OK;
    char *ids = NULL;
    size_t ids_len = 0, ids_cap = 0;
    for (int i = 0; i < n; i++) {
        /* Stop at the first failure: the connection is likely gone, and every message
         * (including those already handed over) stays for the next login. */
        if (fn(ud, PQgetvalue(res, i, 1)) != 0) {
            ret = store_set_error(&s->base,
                                  "offline delivery to %s failed at message %d of %d; all kept",
                                  user, i + 1, n);
            break;
        }
        ids_add(&ids, &ids_len, &ids_cap, PQgetvalue(res, i, 0));
    }
    PQclear(res);
    if (ret != STORE_OK || n == 0) {
        free(ids);
        return rollback(s, ret);
    }
    ids = xrealloc(ids, ids_len + 2);
    memcpy(ids + ids_len, "}", 2);
    /* Exactly the rows handed over: a message pushed meanwhile stays for the next time. */
    params d = {0};
    p_text(&d, user);
    p_text(&d, ids);
    res = run(s, S_OFFLINE_DELETE_IDS, &d, 0);
    free(ids);
    if (!res)
        return rollback(s, STORE_ERROR);
    PQclear(res);
    return commit(s);
}

/* ---- the ops table: every entry point brackets its work with enter()/leave() ---- */

#define PG_OP(name, decl_args, call_args)                                                  \
    static store_status pg_##name decl_args                                                 \
    {                                                                                       \
        pg_store *s = ps_of(base);                                                          \
        if (enter(s) != STORE_OK)                                                           \
            return leave(s, STORE_ERROR);                                                   \
        return leave(s, name call_args);                                                    \
    }

PG_OP(user_create, (store *base, const char *user, const scram_cred *creds, size_t ncreds),
      (s, user, creds, ncreds))
PG_OP(user_set_creds, (store *base, const char *user, const scram_cred *creds, size_t ncreds),
      (s, user, creds, ncreds))
PG_OP(user_get_cred, (store *base, const char *user, scram_hash hash, scram_cred *out),
      (s, user, hash, out))
PG_OP(user_delete, (store *base, const char *user), (s, user))
PG_OP(user_list, (store *base, void (*fn)(void *ud, const char *user), void *ud), (s, fn, ud))
PG_OP(roster_get, (store *base, const char *user, roster_item **items, size_t *n),
      (s, user, items, n))
PG_OP(roster_get_item, (store *base, const char *user, const char *contact, roster_item *out),
      (s, user, contact, out))
PG_OP(roster_put, (store *base, const char *user, const roster_item *item), (s, user, item))
PG_OP(roster_del, (store *base, const char *user, const char *contact), (s, user, contact))
PG_OP(roster_version, (store *base, const char *user, int64_t *version), (s, user, version))
PG_OP(offline_push, (store *base, const char *user, const char *stanza, int max),
      (s, user, stanza, max))
PG_OP(offline_pop,
      (store *base, const char *user, int (*fn)(void *ud, const char *stanza), void *ud),
      (s, user, fn, ud))
PG_OP(offline_count, (store *base, const char *user, int *count), (s, user, count))

/* ---- message archive ---- */

static store_status mam_append(pg_store *s, const mam_row *rows, size_t n)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    for (size_t i = 0; i < n; i++) {
        char ts[32];
        snprintf(ts, sizeof ts, "%lld", (long long)rows[i].ts_us);
        params p = {0};
        p_text(&p, rows[i].id);
        p_text(&p, rows[i].owner);
        p_text(&p, rows[i].with);
        p_text(&p, ts);
        p_text(&p, rows[i].stanza);
        PGresult *res = run(s, S_MAM_INSERT, &p, 0);
        if (!res)
            return rollback(s, STORE_ERROR);
        PQclear(res);
    }
    return commit(s);
}

static store_status mam_seq(pg_store *s, const char *owner, const char *id, char *seq,
                            size_t seqlen)
{
    params p = {0};
    p_text(&p, owner);
    p_text(&p, id);
    PGresult *res = run(s, S_MAM_SEQ, &p, 0);
    if (!res)
        return STORE_ERROR;
    store_status ret = STORE_OK;
    if (PQntuples(res) == 1)
        snprintf(seq, seqlen, "%s", PQgetvalue(res, 0, 0));
    else
        ret = (store_set_error(&s->base, "no archived message with id %s", id), STORE_NOT_FOUND);
    PQclear(res);
    return ret;
}

static store_status mam_query(pg_store *s, const mam_filter *q,
                              void (*fn)(void *ud, const mam_row *row), void *ud, int *complete)
{
    char lo[32] = "0", hi[32], start[32], end[32], limit[16];
    snprintf(hi, sizeof hi, "%lld", (long long)INT64_MAX);
    store_status found;
    if (q->after_id && (found = mam_seq(s, q->owner, q->after_id, lo, sizeof lo)) != STORE_OK)
        return found;
    if (q->before_id && *q->before_id &&
        (found = mam_seq(s, q->owner, q->before_id, hi, sizeof hi)) != STORE_OK)
        return found;
    int backwards = q->last || (q->before_id && *q->before_id);
    snprintf(start, sizeof start, "%lld", (long long)q->start_us);
    snprintf(end, sizeof end, "%lld", (long long)(q->end_us ? q->end_us : INT64_MAX));
    snprintf(limit, sizeof limit, "%d", q->max + 1); /* one more: is this the last page? */
    params p = {0};
    p_text(&p, q->owner);
    p_text(&p, q->with);
    p_text(&p, start);
    p_text(&p, end);
    p_text(&p, lo);
    p_text(&p, hi);
    p_text(&p, limit);
    PGresult *res = run(s, backwards ? S_MAM_PREV : S_MAM_NEXT, &p, 0);
    if (!res)
        return STORE_ERROR;
    int n = PQntuples(res);
    *complete = n <= q->max;
    if (n > q->max)
        n = q->max;
    for (int k = 0; k < n; k++) {
        /* Always in archive order, whichever end the page was taken from. */
        int i = backwards ? n - 1 - k : k;
        mam_row row = {PQgetvalue(res, i, 0), q->owner, PQgetvalue(res, i, 1),
                       strtoll(PQgetvalue(res, i, 2), NULL, 10), PQgetvalue(res, i, 3)};
        fn(ud, &row);
    }
    PQclear(res);
    return STORE_OK;
}

static store_status mam_purge(pg_store *s, const char *owner, int64_t before_us,
                              int64_t *deleted)
{
    char before[32];
    snprintf(before, sizeof before, "%lld", (long long)before_us);
    params p = {0};
    p_text(&p, before);
    if (owner)
        p_text(&p, owner);
    PGresult *res = run(s, owner ? S_MAM_PURGE_OWNER : S_MAM_PURGE, &p, 0);
    if (!res)
        return STORE_ERROR;
    *deleted = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return STORE_OK;
}

static store_status mam_count(pg_store *s, const mam_filter *q, int64_t *count)
{
    char start[32], end[32];
    snprintf(start, sizeof start, "%lld", (long long)q->start_us);
    snprintf(end, sizeof end, "%lld", (long long)(q->end_us ? q->end_us : INT64_MAX));
    params p = {0};
    p_text(&p, q->owner);
    p_text(&p, q->with);
    p_text(&p, start);
    p_text(&p, end);
    PGresult *res = run(s, S_MAM_COUNT, &p, 0);
    if (!res)
        return STORE_ERROR;
    *count = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return STORE_OK;
}

PG_OP(mam_append, (store *base, const mam_row *rows, size_t n), (s, rows, n))
PG_OP(mam_query,
      (store *base, const mam_filter *q, void (*fn)(void *ud, const mam_row *row), void *ud,
       int *complete),
      (s, q, fn, ud, complete))
PG_OP(mam_purge, (store *base, const char *owner, int64_t before_us, int64_t *deleted),
      (s, owner, before_us, deleted))
PG_OP(mam_count, (store *base, const mam_filter *q, int64_t *count), (s, q, count))

/* ---- small documents ---- */

static store_status kv_put(pg_store *s, const char *collection, const char *owner,
                           const char *key, const char *value)
{
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    params p = {0};
    p_text(&p, collection);
    p_text(&p, owner);
    p_text(&p, key);
    p_text(&p, value);
    p_text(&p, now);
    PGresult *res = run(s, S_KV_PUT, &p, 0);
    if (!res)
        return STORE_ERROR;
    PQclear(res);
    return STORE_OK;
}

static store_status kv_get(pg_store *s, const char *collection, const char *owner,
                           const char *key, char **value)
{
    params p = {0};
    p_text(&p, collection);
    p_text(&p, owner);
    p_text(&p, key);
    PGresult *res = run(s, S_KV_GET, &p, 0);
    if (!res)
        return STORE_ERROR;
    store_status ret = PQntuples(res) ? STORE_OK : STORE_NOT_FOUND;
    if (ret == STORE_OK)
        *value = val_dup(res, 0, 0);
    PQclear(res);
    return ret;
}

static store_status kv_del(pg_store *s, const char *collection, const char *owner,
                           const char *key)
{
    params p = {0};
    p_text(&p, collection);
    p_text(&p, owner);
    if (key)
        p_text(&p, key);
    PGresult *res = run(s, key ? S_KV_DEL : S_KV_DEL_OWNER, &p, 0);
    if (!res)
        return STORE_ERROR;
    PQclear(res);
    return STORE_OK;
}

static store_status kv_list(pg_store *s, const char *collection, const char *owner,
                            void (*fn)(void *ud, const char *owner, const char *key,
                                       const char *value),
                            void *ud)
{
    params p = {0};
    p_text(&p, collection);
    if (owner)
        p_text(&p, owner);
    PGresult *res = run(s, owner ? S_KV_LIST_OWNER : S_KV_LIST, &p, 0);
    if (!res)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(res); i++)
        fn(ud, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    PQclear(res);
    return STORE_OK;
}

PG_OP(kv_put,
      (store *base, const char *collection, const char *owner, const char *key,
       const char *value),
      (s, collection, owner, key, value))
PG_OP(kv_get,
      (store *base, const char *collection, const char *owner, const char *key, char **value),
      (s, collection, owner, key, value))
PG_OP(kv_del, (store *base, const char *collection, const char *owner, const char *key),
      (s, collection, owner, key))
PG_OP(kv_list,
      (store *base, const char *collection, const char *owner,
       void (*fn)(void *ud, const char *owner, const char *key, const char *value), void *ud),
      (s, collection, owner, fn, ud))

/* ---- admin policy ----
 * Lock order: the account's or group's row first (FOR KEY SHARE to keep it while a value
 * or membership refers to it, FOR UPDATE to delete a group), the policy_version row last
 * (its bump serialises policy writers until they commit). */

static store_status bump_policy(pg_store *s)
{
    return exec_simple(s, S_POLICY_BUMP, NULL, NULL) == 0 ? STORE_OK : STORE_ERROR;
}

/* Lock the group's row (lock: S_PGROUP_LOCK_*); STORE_NOT_FOUND if there is none. */
static store_status group_row(pg_store *s, enum sid lock, const char *group)
{
    params p = {0};
    p_text(&p, group);
    PGresult *res = run(s, lock, &p, 0);
    if (!res)
        return STORE_ERROR;
    int found = PQntuples(res) > 0;
    PQclear(res);
    if (!found) {
        store_set_error(&s->base, "no such group %s", group);
        return STORE_NOT_FOUND;
    }
    return STORE_OK;
}

static store_status scope_row(pg_store *s, policy_scope scope, const char *name)
{
    if (scope == POLICY_USER)
        return user_row(s, S_USER_LOCK_KEYSHARE, name);
    if (scope == POLICY_GROUP)
        return group_row(s, S_PGROUP_LOCK_KEYSHARE, name);
    return STORE_OK;
}

static store_status policy_set(pg_store *s, policy_scope scope, const char *name,
                               const char *key, const char *value)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = scope_row(s, scope, name);
    if (ret != STORE_OK)
        return rollback(s, ret);
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    params p = {0};
    p_text(&p, policy_scope_name(scope));
    p_text(&p, name);
    p_text(&p, key);
    p_text(&p, value);
    p_text(&p, now);
    PGresult *res = run(s, S_POLICY_UPSERT, &p, 0);
    if (!res)
        return rollback(s, STORE_ERROR);
    PQclear(res);
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

/* Rows a write statement changed, or -1. */
static int run_changes(pg_store *s, enum sid id, const params *p)
{
    PGresult *res = run(s, id, p, 0);
    if (!res)
        return -1;
    int n = atoi(PQcmdTuples(res));
    PQclear(res);
    return n;
}

static store_status policy_unset(pg_store *s, policy_scope scope, const char *name,
                                 const char *key)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    params p = {0};
    p_text(&p, policy_scope_name(scope));
    p_text(&p, name);
    p_text(&p, key);
    int n = run_changes(s, S_POLICY_DELETE, &p);
    if (n < 0)
        return rollback(s, STORE_ERROR);
    if (n == 0) {
        store_set_error(&s->base, "%s is not set for %s%s%s", key, policy_scope_name(scope),
                        *name ? " " : "", name);
        return rollback(s, STORE_NOT_FOUND);
    }
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status policy_list(pg_store *s, const char *user, store_policy_fn fn, void *ud)
{
    params p = {0};
    if (user)
        p_text(&p, user);
    PGresult *res = run(s, user ? S_POLICY_FOR_USER : S_POLICY_LIST, &p, 0);
    if (!res)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *scope = PQgetvalue(res, i, 0);
        policy_scope sc = strcmp(scope, "user") == 0    ? POLICY_USER
                          : strcmp(scope, "group") == 0 ? POLICY_GROUP
                                                        : POLICY_GLOBAL;
        fn(ud, sc, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
    }
    PQclear(res);
    return STORE_OK;
}

static store_status policy_version(pg_store *s, int64_t *version)
{
    PGresult *res = run(s, S_POLICY_VERSION, NULL, 0);
    if (!res)
        return STORE_ERROR;
    store_status ret = STORE_OK;
    if (PQntuples(res) == 1)
        *version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        ret = store_set_error(&s->base, "the policy version row is missing");
    PQclear(res);
    return ret;
}

static store_status group_add(pg_store *s, const char *group)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    params p = {0};
    p_text(&p, group);
    p_text(&p, now);
    PGresult *res = run(s, S_PGROUP_INSERT, &p, 0);
    if (!res) {
        if (has_state(s, SQLSTATE_UNIQUE)) {
            store_set_error(&s->base, "group %s already exists", group);
            return rollback(s, STORE_EXISTS);
        }
        return rollback(s, STORE_ERROR);
    }
    PQclear(res);
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status group_del(pg_store *s, const char *group)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = group_row(s, S_PGROUP_LOCK_UPDATE, group);
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

static store_status group_list(pg_store *s, void (*fn)(void *ud, const char *group), void *ud)
{
    PGresult *res = run(s, S_PGROUP_LIST, NULL, 0);
    if (!res)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(res); i++)
        fn(ud, PQgetvalue(res, i, 0));
    PQclear(res);
    return STORE_OK;
}

static store_status group_member_add(pg_store *s, const char *group, const char *user)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = group_row(s, S_PGROUP_LOCK_KEYSHARE, group);
    if (ret == STORE_OK)
        ret = user_row(s, S_USER_LOCK_KEYSHARE, user);
    if (ret != STORE_OK)
        return rollback(s, ret);
    params p = {0};
    p_text(&p, group);
    p_text(&p, user);
    PGresult *res = run(s, S_MEMBER_INSERT, &p, 0);
    if (!res) {
        if (has_state(s, SQLSTATE_UNIQUE)) {
            store_set_error(&s->base, "%s is already a member of group %s", user, group);
            return rollback(s, STORE_EXISTS);
        }
        return rollback(s, STORE_ERROR);
    }
    PQclear(res);
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status group_member_del(pg_store *s, const char *group, const char *user)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = group_row(s, S_PGROUP_LOCK_KEYSHARE, group);
    if (ret != STORE_OK)
        return rollback(s, ret);
    params p = {0};
    p_text(&p, group);
    p_text(&p, user);
    int n = run_changes(s, S_MEMBER_DELETE, &p);
    if (n < 0)
        return rollback(s, STORE_ERROR);
    if (n == 0) {
        store_set_error(&s->base, "%s is not a member of group %s", user, group);
        return rollback(s, STORE_NOT_FOUND);
    }
    if (bump_policy(s) != STORE_OK)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status group_members(pg_store *s, const char *group,
                                  void (*fn)(void *ud, const char *group, const char *user),
                                  void *ud)
{
    /* One transaction, so that "no such group" and the list agree. */
    if (group) {
        if (begin(s) != STORE_OK)
            return STORE_ERROR;
        store_status ret = group_row(s, S_PGROUP_LOCK_KEYSHARE, group);
        if (ret != STORE_OK)
            return rollback(s, ret);
    }
    params p = {0};
    if (group)
        p_text(&p, group);
    PGresult *res = run(s, group ? S_MEMBERS_OF : S_MEMBERS_ALL, &p, 0);
    if (group)
        rollback(s, STORE_OK); /* read-only: releases the lock */
    if (!res)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(res); i++)
        fn(ud, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    return STORE_OK;
}

/* ---- PEP ----
 * Creating a node locks the account's row FOR NO KEY UPDATE (creations per account take
 * turns, so the node cap holds across nodes); publishing, retracting and deleting lock
 * the node's row FOR UPDATE (publications to one node take turns, so the order numbers
 * and the trimming stay consistent). */

static store_status pep_node_row(pg_store *s, enum sid id, const char *owner, const char *node)
{
    params p = {0};
    p_text(&p, owner);
    p_text(&p, node);
    PGresult *res = run(s, id, &p, 0);
    if (!res)
        return STORE_ERROR;
    int found = PQntuples(res) > 0;
    PQclear(res);
    if (!found) {
        store_set_error(&s->base, "%s has no PEP node %s", owner, node);
        return STORE_NOT_FOUND;
    }
    return STORE_OK;
}

static store_status pep_node_get(pg_store *s, const char *owner, const char *node,
                                 char **config)
{
    params p = {0};
    p_text(&p, owner);
    p_text(&p, node);
    PGresult *res = run(s, S_PEP_NODE_GET, &p, 0);
    if (!res)
        return STORE_ERROR;
    store_status ret = STORE_OK;
    if (PQntuples(res) > 0) {
        *config = val_dup(res, 0, 0);
    } else {
        store_set_error(&s->base, "%s has no PEP node %s", owner, node);
        ret = STORE_NOT_FOUND;
    }
    PQclear(res);
    return ret;
}

static store_status pep_node_put(pg_store *s, const char *owner, const char *node,
                                 const char *config, int max_nodes)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = user_row(s, S_USER_LOCK_NOKEY, owner);
    if (ret != STORE_OK)
        return rollback(s, ret);
    params p = {0};
    p_text(&p, owner);
    p_text(&p, node);
    p_text(&p, config);
    int n = run_changes(s, S_PEP_NODE_UPDATE, &p);
    if (n < 0)
        return rollback(s, STORE_ERROR);
    if (n > 0)
        return commit(s);
    params c = {0};
    p_text(&c, owner);
    PGresult *res = run(s, S_PEP_NODE_COUNT, &c, 0);
    if (!res)
        return rollback(s, STORE_ERROR);
    long long count = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    if (max_nodes >= 0 && count >= max_nodes) {
        store_set_error(&s->base, "%s already has %lld PEP nodes", owner, count);
        return rollback(s, STORE_FULL);
    }
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    p_text(&p, now);
    res = run(s, S_PEP_NODE_INSERT, &p, 0);
    if (!res)
        return rollback(s, STORE_ERROR);
    PQclear(res);
    return commit(s);
}

static store_status pep_node_del(pg_store *s, const char *owner, const char *node)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = pep_node_row(s, S_PEP_NODE_LOCK, owner, node);
    if (ret != STORE_OK)
        return rollback(s, ret);
    params p = {0};
    p_text(&p, owner);
    p_text(&p, node);
    if (run_changes(s, S_PEP_NODE_ITEMS_DELETE, &p) < 0 ||
        run_changes(s, S_PEP_NODE_DELETE, &p) < 0)
        return rollback(s, STORE_ERROR);
    return commit(s);
}

static store_status pep_node_list(pg_store *s, const char *owner,
                                  void (*fn)(void *ud, const char *node, const char *config),
                                  void *ud)
{
    params p = {0};
    p_text(&p, owner);
    PGresult *res = run(s, S_PEP_NODE_LIST, &p, 0);
    if (!res)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(res); i++)
        fn(ud, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    return STORE_OK;
}

static store_status pep_item_put(pg_store *s, const char *owner, const char *node,
                                 const char *id, const char *publisher, const char *payload,
                                 int max_items)
{
    if (begin(s) != STORE_OK)
        return STORE_ERROR;
    store_status ret = pep_node_row(s, S_PEP_NODE_LOCK, owner, node);
    if (ret != STORE_OK)
        return rollback(s, ret);
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    params p = {0};
    p_text(&p, owner);
    p_text(&p, node);
    p_text(&p, id);
    p_text(&p, publisher);
    p_text(&p, payload);
    p_text(&p, now);
    PGresult *res = run(s, S_PEP_ITEM_UPSERT, &p, 0);
    if (!res)
        return rollback(s, STORE_ERROR);
    PQclear(res);
    if (max_items > 0) {
        char keep[16];
        snprintf(keep, sizeof keep, "%d", max_items);
        params t = {0};
        p_text(&t, owner);
        p_text(&t, node);
        p_text(&t, keep);
        if (run_changes(s, S_PEP_ITEMS_TRIM, &t) < 0)
            return rollback(s, STORE_ERROR);
    }
    return commit(s);
}

static store_status pep_item_del(pg_store *s, const char *owner, const char *node,
                                 const char *id)
{
    params p = {0};
    p_text(&p, owner);
    p_text(&p, node);
    p_text(&p, id);
    int n = run_changes(s, S_PEP_ITEM_DELETE, &p);
    if (n < 0)
        return STORE_ERROR;
    if (n == 0) {
        store_set_error(&s->base, "PEP node %s of %s has no item %s", node, owner, id);
        return STORE_NOT_FOUND;
    }
    return STORE_OK;
}

static store_status pep_items(pg_store *s, const char *owner, const char *node, const char *id,
                              int max, store_pep_item_fn fn, void *ud)
{
    /* A node deleted between the check and the read just reads as empty. */
    store_status ret = pep_node_row(s, S_PEP_NODE_GET, owner, node);
    if (ret != STORE_OK)
        return ret;
    params p = {0};
    p_text(&p, owner);
    p_text(&p, node);
    char lim[16];
    enum sid which = S_PEP_ITEMS_ALL;
    if (id) {
        p_text(&p, id);
        which = S_PEP_ITEM_GET;
    } else if (max > 0) {
        snprintf(lim, sizeof lim, "%d", max);
        p_text(&p, lim);
        which = S_PEP_ITEMS_LAST;
    }
    PGresult *res = run(s, which, &p, 0);
    if (!res)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(res); i++)
        fn(ud, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    PQclear(res);
    return STORE_OK;
}

PG_OP(policy_set,
      (store *base, policy_scope scope, const char *name, const char *key, const char *value),
      (s, scope, name, key, value))
PG_OP(policy_unset, (store *base, policy_scope scope, const char *name, const char *key),
      (s, scope, name, key))
PG_OP(policy_list, (store *base, const char *user, store_policy_fn fn, void *ud),
      (s, user, fn, ud))
PG_OP(policy_version, (store *base, int64_t *version), (s, version))
PG_OP(group_add, (store *base, const char *group), (s, group))
PG_OP(group_del, (store *base, const char *group), (s, group))
PG_OP(group_list, (store *base, void (*fn)(void *ud, const char *group), void *ud), (s, fn, ud))
PG_OP(group_member_add, (store *base, const char *group, const char *user), (s, group, user))
PG_OP(group_member_del, (store *base, const char *group, const char *user), (s, group, user))
PG_OP(group_members,
      (store *base, const char *group,
       void (*fn)(void *ud, const char *group, const char *user), void *ud),
      (s, group, fn, ud))
PG_OP(pep_node_get, (store *base, const char *owner, const char *node, char **config),
      (s, owner, node, config))
PG_OP(pep_node_put,
      (store *base, const char *owner, const char *node, const char *config, int max_nodes),
      (s, owner, node, config, max_nodes))
PG_OP(pep_node_del, (store *base, const char *owner, const char *node), (s, owner, node))
PG_OP(pep_node_list,
      (store *base, const char *owner,
       void (*fn)(void *ud, const char *node, const char *config), void *ud),
      (s, owner, fn, ud))
PG_OP(pep_item_put,
      (store *base, const char *owner, const char *node, const char *id, const char *publisher,
       const char *payload, int max_items),
      (s, owner, node, id, publisher, payload, max_items))
PG_OP(pep_item_del, (store *base, const char *owner, const char *node, const char *id),
      (s, owner, node, id))
PG_OP(pep_items,
      (store *base, const char *owner, const char *node, const char *id, int max,
       store_pep_item_fn fn, void *ud),
      (s, owner, node, id, max, fn, ud))

/* ---- nodes and the session directory (node.h) ---- */

/* Run a statement that returns no rows; *affected: rows changed (may be NULL). */
static store_status exec_params(pg_store *s, enum sid id, const params *p, int *affected)
{
    PGresult *res = run(s, id, p, 0);
    if (!res)
        return STORE_ERROR;
    if (affected)
        *affected = atoi(PQcmdTuples(res));
    PQclear(res);
    return STORE_OK;
}

static store_status node_register(pg_store *s, const char *name, const char *address)
{
    params p = {0};
    p_text(&p, name);
    p_text(&p, address);
    return exec_params(s, S_NODE_REGISTER, &p, NULL);
}

static store_status node_unregister(pg_store *s, const char *name)
{
    params p = {0};
    p_text(&p, name);
    int n = 0;
    if (exec_params(s, S_NODE_SESSIONS_DELETE, &p, NULL) != STORE_OK ||
        exec_params(s, S_NODE_UNREGISTER, &p, &n) != STORE_OK)
        return STORE_ERROR;
    return n ? STORE_OK : STORE_NOT_FOUND;
}

static store_status node_address(pg_store *s, const char *name, char **address)
{
    params p = {0};
    p_text(&p, name);
    PGresult *res = run(s, S_NODE_ADDRESS, &p, 0);
    if (!res)
        return STORE_ERROR;
    store_status ret = PQntuples(res) ? STORE_OK : STORE_NOT_FOUND;
    if (ret == STORE_OK)
        *address = val_dup(res, 0, 0);
    PQclear(res);
    return ret;
}

static store_status node_renew(pg_store *s, const char *name, int lease_seconds)
{
    char secs[16];
    snprintf(secs, sizeof secs, "%d", lease_seconds);
    params p = {0};
    p_text(&p, name);
    p_text(&p, secs);
    return exec_params(s, S_NODE_RENEW, &p, NULL);
}

static store_status node_list(pg_store *s, void (*fn)(void *ud, const store_node *node), void *ud)
{
    PGresult *res = run(s, S_NODE_LIST, NULL, 0);
    if (!res)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(res); i++) {
        store_node n = {PQgetvalue(res, i, 0),
                        PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1),
                        PQgetvalue(res, i, 2)[0] == 't', atoi(PQgetvalue(res, i, 3)),
                        atoi(PQgetvalue(res, i, 4))};
        fn(ud, &n);
    }
    PQclear(res);
    return STORE_OK;
}

static store_status node_sweep(pg_store *s, const char *node, int grace_seconds, int *removed)
{
    char secs[16];
    snprintf(secs, sizeof secs, "%d", grace_seconds);
    params p = {0};
    p_text(&p, node ? node : secs);
    return exec_params(s, node ? S_NODE_SESSIONS_DELETE : S_NODE_SWEEP, &p, removed);
}

static store_status session_put(pg_store *s, const char *bare, const char *resource,
                                const char *node, int available, int priority)
{
    char prio[16];
    snprintf(prio, sizeof prio, "%d", priority);
    params p = {0};
    p_text(&p, bare);
    p_text(&p, resource);
    p_text(&p, node);
    p_text(&p, available ? "true" : "false");
    p_text(&p, prio);
    return exec_params(s, S_SESSION_PUT, &p, NULL);
}

static store_status session_del(pg_store *s, const char *bare, const char *resource,
                                const char *node)
{
    params p = {0};
    p_text(&p, bare);
    p_text(&p, resource);
    p_text(&p, node);
    return exec_params(s, S_SESSION_DEL, &p, NULL);
}

static store_status session_list(pg_store *s, const char *bare, store_session_fn fn, void *ud)
{
    params p = {0};
    p_text(&p, bare);
    PGresult *res = run(s, S_SESSION_LIST, &p, 0);
    if (!res)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(res); i++)
        fn(ud, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2)[0] == 't',
           atoi(PQgetvalue(res, i, 3)));
    PQclear(res);
    return STORE_OK;
}

/* ---- room homes (node_rooms.h) ---- */

static store_status room_claim(pg_store *s, const char *room, const char *node, char **holder)
{
    params p = {0};
    p_text(&p, room);
    p_text(&p, node);
    for (int attempt = 0; attempt < 3; attempt++) {
        PGresult *res = run(s, S_ROOM_CLAIM, &p, 0);
        if (!res)
            return STORE_ERROR;
        if (PQntuples(res)) {
            *holder = val_dup(res, 0, 0);
            PQclear(res);
            return STORE_OK;
        }
        PQclear(res);
    }
    return store_set_error(&s->base, "claiming room %s: it keeps changing hands", room);
}

static store_status room_release(pg_store *s, const char *room, const char *node)
{
    params p = {0};
    if (room)
        p_text(&p, room);
    p_text(&p, node);
    return exec_params(s, room ? S_ROOM_RELEASE : S_ROOM_RELEASE_ALL, &p, NULL);
}

static store_status room_sweep(pg_store *s, int grace_seconds, int *removed)
{
    char secs[16];
    snprintf(secs, sizeof secs, "%d", grace_seconds);
    params p = {0};
    p_text(&p, secs);
    return exec_params(s, S_ROOM_SWEEP, &p, removed);
}

static store_status room_describe(pg_store *s, const char *room, const char *node,
                                  const char *listing, int persistent)
{
    params p = {0};
    p_text(&p, room);
    p_text(&p, node);
    p_text(&p, listing);
    p_text(&p, persistent ? "true" : "false");
    return exec_params(s, S_ROOM_DESCRIBE, &p, NULL);
}

static store_status room_list(pg_store *s, void (*fn)(void *ud, const store_room *room), void *ud)
{
    PGresult *res = run(s, S_ROOM_LIST, NULL, 0);
    if (!res)
        return STORE_ERROR;
    for (int i = 0; i < PQntuples(res); i++) {
        store_room r = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2),
                        PQgetvalue(res, i, 3)[0] == 't', PQgetvalue(res, i, 4)[0] == 't'};
        fn(ud, &r);
    }
    PQclear(res);
    return STORE_OK;
}

PG_OP(room_claim, (store *base, const char *room, const char *node, char **holder),
      (s, room, node, holder))
PG_OP(room_release, (store *base, const char *room, const char *node), (s, room, node))
PG_OP(room_sweep, (store *base, int grace_seconds, int *removed), (s, grace_seconds, removed))
PG_OP(room_describe,
      (store *base, const char *room, const char *node, const char *listing, int persistent),
      (s, room, node, listing, persistent))
PG_OP(room_list, (store *base, void (*fn)(void *ud, const store_room *room), void *ud),
      (s, fn, ud))
PG_OP(node_register, (store *base, const char *name, const char *address), (s, name, address))
PG_OP(node_unregister, (store *base, const char *name), (s, name))
PG_OP(node_address, (store *base, const char *name, char **address), (s, name, address))
PG_OP(node_renew, (store *base, const char *name, int lease_seconds), (s, name, lease_seconds))
PG_OP(node_list, (store *base, void (*fn)(void *ud, const store_node *node), void *ud),
      (s, fn, ud))
PG_OP(node_sweep, (store *base, const char *node, int grace_seconds, int *removed),
      (s, node, grace_seconds, removed))
PG_OP(session_put,
      (store *base, const char *bare, const char *resource, const char *node, int available,
       int priority),
      (s, bare, resource, node, available, priority))
PG_OP(session_del, (store *base, const char *bare, const char *resource, const char *node),
      (s, bare, resource, node))
PG_OP(session_list, (store *base, const char *bare, store_session_fn fn, void *ud),
      (s, bare, fn, ud))

static store_status pg_user_exists(store *base, const char *user)
{
    pg_store *s = ps_of(base);
    if (enter(s) != STORE_OK)
        return leave(s, STORE_ERROR);
    return leave(s, user_row(s, S_USER_EXISTS, user));
}

const struct store_ops store_pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .user_create = pg_user_create,
    .user_set_creds = pg_user_set_creds,
    .user_get_cred = pg_user_get_cred,
    .user_exists = pg_user_exists,
    .user_delete = pg_user_delete,
    .user_list = pg_user_list,
    .roster_get = pg_roster_get,
    .roster_get_item = pg_roster_get_item,
    .roster_put = pg_roster_put,
    .roster_del = pg_roster_del,
    .roster_version = pg_roster_version,
    .offline_push = pg_offline_push,
    .offline_pop = pg_offline_pop,
    .offline_count = pg_offline_count,
    .mam_append = pg_mam_append,
    .mam_query = pg_mam_query,
    .mam_purge = pg_mam_purge,
    .kv_put = pg_kv_put,
    .kv_get = pg_kv_get,
    .kv_del = pg_kv_del,
    .kv_list = pg_kv_list,
    .policy_set = pg_policy_set,
    .policy_unset = pg_policy_unset,
    .policy_list = pg_policy_list,
    .policy_version = pg_policy_version,
    .group_add = pg_group_add,
    .group_del = pg_group_del,
    .group_list = pg_group_list,
    .group_member_add = pg_group_member_add,
    .group_member_del = pg_group_member_del,
    .group_members = pg_group_members,
    .pep_node_get = pg_pep_node_get,
    .pep_node_put = pg_pep_node_put,
    .pep_node_del = pg_pep_node_del,
    .pep_node_list = pg_pep_node_list,
    .pep_item_put = pg_pep_item_put,
    .pep_item_del = pg_pep_item_del,
    .pep_items = pg_pep_items,
    .node_register = pg_node_register,
    .node_unregister = pg_node_unregister,
    .node_address = pg_node_address,
    .node_renew = pg_node_renew,
    .node_list = pg_node_list,
    .node_sweep = pg_node_sweep,
    .session_put = pg_session_put,
    .session_del = pg_session_del,
    .session_list = pg_session_list,
    .room_claim = pg_room_claim,
    .room_release = pg_room_release,
    .room_sweep = pg_room_sweep,
    .room_describe = pg_room_describe,
    .room_list = pg_room_list,
    .mam_count = pg_mam_count,
};
