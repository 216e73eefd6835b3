"""The compliance archive's schema as docs/compliance.md documents it for auditors.

  * Every ```sql block of the document runs against a real, populated archive (one-to-one,
    federated and room messages, a file uploaded and downloaded, sign-ins), on SQLite and
    on PostgreSQL as its first line says, and the queries that map the seed's tables
    (JM, TC_MSGARCHIVE, TC_ROOMS, AFT_LOG) return what they promise. The blocks are read
    from the document itself, so the document and this test cannot drift apart.
  * `parleyctl compliance migrate` upgrades an archive built as an older schema version
    had it (the tables of that version, from the history of clog_sqlite.c / clog_pg.c,
    with chained, signed records written the way that version wrote them): the records
    written before the upgrade still verify after it, and parleyd goes on appending.
  * A schema newer than the program is refused by parleyd and by parleyctl, with a clear
    error, and nothing in the archive changes.

PostgreSQL is real (PARLEY_TEST_PG_URI, see scripts/pg-cluster.sh); without it those
cases are skipped."""
import asyncio
import hashlib
import os
import re
import sqlite3
import struct
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

import muc_util
from conftest import DOMAIN, clients_for, exchange, free_port
from test_compliance_store import pg_rows, pgdb, psql  # noqa: F401 (pgdb: a fixture)
from test_upload import https, request_slot, upload_server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "compliance.md")
REMOTE = "partner.example"  # a domain this server may not federate with (s2s_deny)
NEWER = "is newer than this program supports"


# --------------------------------------------------------------------------- the document

def doc_queries():
    """[(stores, title, sql)] for every statement of every ```sql block of the document.
    stores: {"sqlite", "postgresql"} from the block's first line ("-- runs on: ...");
    title: the comment line just above the statement."""
    with open(DOC) as f:
        text = f.read()
    out = []
    for block in re.findall(r"^```sql\n(.*?)^```", text, flags=re.S | re.M):
        lines = block.splitlines()
        m = re.match(r"^-- runs on: (.*)$", lines[0])
        assert m, f"a sql block of docs/compliance.md does not say where it runs:\n{block}"
        stores = {s.strip().lower() for s in m.group(1).split(",")}
        assert stores and stores <= {"sqlite", "postgresql"}, m.group(0)
        title, stmt = None, []
        for line in lines[1:]:
            if not stmt and line.startswith("-- "):
                title = line[3:].strip()
                continue
            if not stmt and not line.strip():
                continue
            stmt.append(line)
            if sqlite3.complete_statement("\n".join(stmt)):
                out.append((stores, title, "\n".join(stmt).strip().rstrip(";")))
                stmt = []
        assert not stmt, f"unterminated statement in docs/compliance.md: {stmt}"
    return out


def localised(sql):
    """The document's example domain is this test server's."""
    return sql.replace("example.org", DOMAIN)


# Queries that must return rows on the archive the test builds (titles as in the doc).
MUST_RETURN_ROWS = {
    "a conversation between two accounts",
    "messages that were not delivered, and why",
    "sign-ins and failed logins for an account",
    "records per kind and outcome",
    "the latest checkpoint of each chain",
    "JM: one-to-one messages",
    "TC_MSGARCHIVE: room messages, one record each",
    "TC_ROOMS: rooms created, configured and destroyed, and by whom",
    "TC_ROOMS: every room that had messages, with its first and last",
    "AFT_LOG: file transfers (upload = the seed's POST, download = GET)",
    "AFT_LOG: downloads with the downloader's network address",
    "JM: direction (inbound from another domain, outbound to one, or internal)",
    "the schema version and when each migration was applied",
}


def test_doc_blocks_are_well_formed():
    qs = doc_queries()
    titles = {t for _, t, _ in qs}
    assert MUST_RETURN_ROWS <= titles, f"not in the document: {MUST_RETURN_ROWS - titles}"
    assert sum(1 for s, _, _ in qs if "sqlite" in s) >= 15
    assert sum(1 for s, _, _ in qs if "postgresql" in s) >= 15


# --------------------------------------------------------------------------- a populated archive

def populate(server, run, extra=()):
    """A server (HTTPS on, federation with REMOTE refused) whose archive holds one-to-one
    messages, one to another domain, a room with a message, and a file uploaded and
    downloaded; stopped again. Returns (srv, room JID, file name)."""
    srv = upload_server(server, extra=[f"s2s_port = {free_port()}", f"s2s_deny = {REMOTE}"]
                        + list(extra))
    name = "quarterly-report.txt"
    content = b"figures for the auditors\n" * 40

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "desk")
        b = await cl.login("bob", "desk")
        await exchange(a, b, "hello bob")
        await exchange(b, a, "hello alice")
        a.send_message(mto=f"carol@{REMOTE}", mbody="to a partner", mtype="chat")
        await a.wait_for("message", lambda m: m["type"] == "error", 5, what="bounce")
        rjid, ma, mb = await muc_util.occupied_room(cl, "board", "alice", "bob")
        muc_util.groupchat(ma, rjid, "the board meets at noon")
        await mb.wait_for("message", muc_util.gc_body(rjid, "the board meets at noon"), 5,
                          what="room message")
        put, get = await request_slot(a, name, len(content), ctype="text/plain",
                                      recipient=f"bob@{DOMAIN}")
        assert (await asyncio.to_thread(https, srv, "PUT", put, content))[0] == 201
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == content
        return rjid
    rjid = run(scenario)
    assert srv.stop() == []
    return srv, rjid, name


def sqlite_db(srv):
    return os.path.join(srv.dir, "data", "compliance.db")


def sqlite_query(path, sql):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def check_doc_queries(store, rows_of, rjid, file_name):
    """Run every statement meant for store; check what the seed's tables promise."""
    results, ran = {}, 0
    for stores, title, sql in doc_queries():
        if store not in stores:
            continue
        try:
            rows = rows_of(localised(sql))
        except Exception as e:  # noqa: BLE001 (name the query that failed)
            pytest.fail(f"docs/compliance.md query {title!r} fails on {store}: {e}\n{sql}")
        results[title] = rows
        ran += 1
    empty = sorted(t for t in MUST_RETURN_ROWS if t in results and not results[t])
    assert not empty, f"queries without rows on {store}: {empty}"
    assert ran >= 15

    jm = results["JM: one-to-one messages"]
    hello = [r for r in jm if r["body"] == "hello bob"]
    assert len(hello) == 1 and hello[0]["from_jid"].startswith(f"alice@{DOMAIN}/")
    assert hello[0]["to_jid"].startswith(f"bob@{DOMAIN}")
    assert "<body>hello bob</body>" in hello[0]["message_string"]
    assert all(r["type"] != "groupchat" for r in jm)

    room = results["TC_MSGARCHIVE: room messages, one record each"]
    assert [(r["room_jid"], r["body"]) for r in room] == [(rjid, "the board meets at noon")]
    assert room[0]["from_jid"].startswith(f"alice@{DOMAIN}/")
    created = results["TC_ROOMS: rooms created, configured and destroyed, and by whom"]
    assert any(r["room_jid"] == rjid and r["event"] == "muc-room-create" for r in created)

    # Occupancy events (room-join / room-leave) come with the room code that writes them;
    # once they are there, the occupants at the time of the room message are alice and bob.
    joins = results["TC_USERS: who joined and left which room, with role, affiliation and nick"]
    if any(r["event"] == "room-join" for r in joins):
        present = results["TC_USERS: who was in the room when each room message was recorded"]
        assert sorted(r["occupant"].split("/")[0] for r in present) == \
            [f"alice@{DOMAIN}", f"bob@{DOMAIN}"], present

    aft = results["AFT_LOG: file transfers (upload = the seed's POST, download = GET)"]
    assert [(r["method"], r["file_name"], r["to_jid"], r["outcome"]) for r in aft] == [
        ("POST", file_name, f"bob@{DOMAIN}", "stored"),
        ("GET", file_name, f"bob@{DOMAIN}", "downloaded")]
    assert aft[0]["uploader"].startswith(f"alice@{DOMAIN}/") and aft[0]["file_size"] == 1000
    assert aft[0]["file_type"] == "text/plain" and len(aft[0]["file_sha256"]) == 64
    down = results["AFT_LOG: downloads with the downloader's network address"]
    assert len(down) == 1 and re.fullmatch(r"127\.0\.0\.1:\d+", down[0]["downloader_address"]), down

    dir_title = "JM: direction (inbound from another domain, outbound to one, or internal)"
    direction = {r["recipient"]: r["direction"] for r in results[dir_title]}
    assert direction[f"carol@{REMOTE}"] == "outbound"
    assert direction[rjid] == "internal"
    assert {d for r, d in direction.items() if r.startswith(f"bob@{DOMAIN}")} == {"internal"}

    refused = results["messages that were not delivered, and why"]
    assert [(r["recipient"], r["outcome"]) for r in refused] == [(f"carol@{REMOTE}", "bounced")]


def test_doc_queries_sqlite(server, run):
    srv, rjid, name = populate(server, run)
    check_doc_queries("sqlite", lambda sql: sqlite_query(sqlite_db(srv), sql), rjid, name)


def test_doc_queries_postgresql(server, run, pgdb):  # noqa: F811 (the fixture)
    srv, rjid, name = populate(server, run, extra=[f"compliance_store = {pgdb.uri}"])
    check_doc_queries("postgresql", lambda sql: pg_rows(pgdb.uri, sql), rjid, name)


# --------------------------------------------------------------------------- older schemas

# The tables as each version created them (clog_sqlite.c at 346b41e for version 1, at
# 0d013d9 for version 2; clog_pg.c at 0d013d9 for PostgreSQL version 1), copied here so
# that a migration that would fail on a real old archive fails this test.
SQLITE_V1 = """
CREATE TABLE messages (
  seq INTEGER PRIMARY KEY NOT NULL, ts_us INTEGER NOT NULL,
  time TEXT GENERATED ALWAYS AS
    (strftime('%Y-%m-%dT%H:%M:%fZ', ts_us / 1000000.0, 'unixepoch')) VIRTUAL,
  kind TEXT NOT NULL, sender TEXT, recipient TEXT, msg_id TEXT, thread TEXT, type TEXT,
  subject TEXT, body TEXT, encrypted INTEGER NOT NULL DEFAULT 0, enc_ns TEXT,
  file_name TEXT, file_size INTEGER, file_type TEXT, file_sha256 TEXT, outcome TEXT,
  verdict TEXT, reason TEXT, stanza TEXT, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
CREATE INDEX messages_ts ON messages(ts_us);
CREATE INDEX messages_sender ON messages(sender, ts_us);
CREATE INDEX messages_recipient ON messages(recipient, ts_us);
CREATE INDEX messages_hash ON messages(hash);
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY NOT NULL, ts_us INTEGER NOT NULL,
  time TEXT GENERATED ALWAYS AS
    (strftime('%Y-%m-%dT%H:%M:%fZ', ts_us / 1000000.0, 'unixepoch')) VIRTUAL,
  actor TEXT, event TEXT NOT NULL, target TEXT, peer TEXT, detail TEXT,
  prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
CREATE INDEX audit_ts ON audit(ts_us);
CREATE INDEX audit_actor ON audit(actor, ts_us);
CREATE INDEX audit_target ON audit(target, ts_us);
CREATE INDEX audit_hash ON audit(hash);
CREATE TABLE checkpoints (
  chain TEXT NOT NULL CHECK (chain IN ('messages', 'audit')), seq INTEGER NOT NULL,
  ts_us INTEGER NOT NULL, hash BLOB NOT NULL, signature BLOB NOT NULL,
  signer TEXT NOT NULL, PRIMARY KEY (chain, seq));
"""
SQLITE_V2 = """
CREATE TABLE purges (
  chain TEXT NOT NULL CHECK (chain IN ('messages', 'audit')), seq INTEGER NOT NULL,
  ts_us INTEGER NOT NULL, hash BLOB NOT NULL, signature BLOB NOT NULL,
  signer TEXT NOT NULL, PRIMARY KEY (chain, seq));
CREATE TABLE spool_replay (
  spool_id TEXT PRIMARY KEY NOT NULL, last_entry INTEGER NOT NULL, ts_us INTEGER NOT NULL);
"""
PG_V1 = """
CREATE TABLE compliance_schema_version (version INTEGER PRIMARY KEY NOT NULL,
  applied BIGINT NOT NULL);
CREATE TABLE messages (
  seq BIGINT PRIMARY KEY NOT NULL, ts_us BIGINT NOT NULL,
  time TIMESTAMP GENERATED ALWAYS AS
    (TIMESTAMP '1970-01-01' + ts_us * INTERVAL '1 microsecond') STORED,
  kind TEXT NOT NULL, sender TEXT COLLATE "C", recipient TEXT COLLATE "C", msg_id TEXT,
  thread TEXT, type TEXT, subject TEXT, body TEXT, encrypted SMALLINT NOT NULL DEFAULT 0,
  enc_ns TEXT, file_name TEXT, file_size BIGINT, file_type TEXT, file_sha256 TEXT,
  outcome TEXT, verdict TEXT, reason TEXT, stanza TEXT, prev_hash BYTEA NOT NULL,
  hash BYTEA NOT NULL);
CREATE INDEX messages_ts ON messages(ts_us);
CREATE INDEX messages_sender ON messages(sender, ts_us);
CREATE INDEX messages_recipient ON messages(recipient, ts_us);
CREATE INDEX messages_hash ON messages(hash);
CREATE TABLE audit (
  seq BIGINT PRIMARY KEY NOT NULL, ts_us BIGINT NOT NULL,
  time TIMESTAMP GENERATED ALWAYS AS
    (TIMESTAMP '1970-01-01' + ts_us * INTERVAL '1 microsecond') STORED,
  actor TEXT COLLATE "C", event TEXT NOT NULL, target TEXT COLLATE "C", peer TEXT,
  detail TEXT, prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL);
CREATE INDEX audit_ts ON audit(ts_us);
CREATE INDEX audit_actor ON audit(actor, ts_us);
CREATE INDEX audit_target ON audit(target, ts_us);
CREATE INDEX audit_hash ON audit(hash);
CREATE TABLE checkpoints (
  chain TEXT NOT NULL CHECK (chain IN ('messages', 'audit')), seq BIGINT NOT NULL,
  ts_us BIGINT NOT NULL, hash BYTEA NOT NULL, signature BYTEA NOT NULL,
  signer TEXT NOT NULL, PRIMARY KEY (chain, seq));
CREATE TABLE purges (
  chain TEXT NOT NULL CHECK (chain IN ('messages', 'audit')), seq BIGINT NOT NULL,
  ts_us BIGINT NOT NULL, hash BYTEA NOT NULL, signature BYTEA NOT NULL,
  signer TEXT NOT NULL, PRIMARY KEY (chain, seq));
CREATE TABLE spool_replay (
  spool_id TEXT PRIMARY KEY NOT NULL, last_entry BIGINT NOT NULL, ts_us BIGINT NOT NULL);
"""

MESSAGE_COLS = ["seq", "ts_us", "kind", "sender", "recipient", "msg_id", "thread", "type",
                "subject", "body", "encrypted", "enc_ns", "file_name", "file_size",
                "file_type", "file_sha256", "outcome", "verdict", "reason", "stanza"]
AUDIT_COLS = ["seq", "ts_us", "actor", "event", "target", "peer", "detail"]


def field(v):
    if v is None:
        return b"\xff\xff\xff\xff"
    b = str(v).encode()
    return struct.pack(">I", len(b)) + b


def old_records():
    """What an older parleyd wrote: records and events with the documented hash chain
    (docs/compliance.md, "The hash chain"), and a signed checkpoint at each chain's head.
    Returns ({table: [row dicts with prev_hash and hash]})."""
    t0 = 1_700_000_000_000_000
    msgs = [
        dict(kind="message", sender=f"alice@{DOMAIN}/desk", recipient=f"bob@{DOMAIN}",
             msg_id="m1", thread="t-1", type="chat", subject="budget", body="before the upgrade",
             encrypted=0, outcome="delivered", verdict="allow",
             stanza=f"<message from='alice@{DOMAIN}/desk' to='bob@{DOMAIN}' type='chat' id='m1'>"
                    "<subject>budget</subject><thread>t-1</thread>"
                    "<body>before the upgrade</body></message>"),
        dict(kind="message", sender=f"bob@{DOMAIN}/desk", recipient=f"board@conference.{DOMAIN}",
             msg_id="m2", type="groupchat", body="room message, old schema", encrypted=0,
             outcome="delivered", verdict="allow",
             stanza=f"<message to='board@conference.{DOMAIN}' type='groupchat' id='m2'>"
                    "<body>room message, old schema</body></message>"),
        dict(kind="message", sender=f"carol@{DOMAIN}/desk", recipient=f"alice@{DOMAIN}",
             msg_id="m3", type="chat", encrypted=1, enc_ns="urn:xmpp:omemo:2",
             outcome="offline", verdict="allow",
             stanza="<message type='chat' id='m3'><encrypted xmlns='urn:xmpp:omemo:2'/></message>"),
    ]
    events = [
        dict(actor=f"alice@{DOMAIN}", event="sign-in", target=f"alice@{DOMAIN}",
             peer="127.0.0.1:40000", detail="mechanism=SCRAM-SHA-256"),
        dict(actor="admin", event="user-add", target=f"dave@{DOMAIN}", detail="uid=0"),
    ]
    out = {}
    for table, rows, cols, tag in (("messages", msgs, MESSAGE_COLS, "parley-clog-message-v1"),
                                   ("audit", events, AUDIT_COLS, "parley-clog-audit-v1")):
        prev = bytes(32)
        done = []
        for i, r in enumerate(rows, 1):
            r = {c: r.get(c) for c in cols}
            r["seq"], r["ts_us"] = i, t0 + i * 1000
            if table == "messages":
                r["encrypted"] = r["encrypted"] or 0
            enc = field(tag) + b"".join(field(r[c]) for c in cols)
            r["prev_hash"], r["hash"] = prev, hashlib.sha256(prev + enc).digest()
            prev = r["hash"]
            done.append(r)
        out[table] = done
    return out


def checkpoints(srv, recs):
    """A signed checkpoint at the head of each chain, as parleyd signs them."""
    with open(srv.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    signer = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    out = []
    for chain in ("messages", "audit"):
        head = recs[chain][-1]
        text = f"parley-clog-checkpoint-v1|{chain}|{head['seq']}|{head['hash'].hex()}".encode()
        sig = key.sign(text, padding.PKCS1v15(), hashes.SHA256())
        out.append(dict(chain=chain, seq=head["seq"], ts_us=head["ts_us"], hash=head["hash"],
                        signature=sig, signer=signer))
    return out


def build_sqlite(srv, path, version):
    recs = old_records()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE schema_version ("
                " version INTEGER PRIMARY KEY NOT NULL, applied INTEGER NOT NULL)")
    con.executescript(SQLITE_V1 + (SQLITE_V2 if version >= 2 else ""))
    for v in range(1, version + 1):
        con.execute("INSERT INTO schema_version VALUES (?, ?)", (v, int(time.time())))
    for table, cols in (("messages", MESSAGE_COLS), ("audit", AUDIT_COLS)):
        names = cols + ["prev_hash", "hash"]
        for r in recs[table]:
            con.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                        f"({', '.join('?' * len(names))})", [r[c] for c in names])
    for cp in checkpoints(srv, recs):
        con.execute("INSERT INTO checkpoints VALUES (:chain, :seq, :ts_us, :hash, :signature,"
                    " :signer)", cp)
    con.commit()
    con.close()
    return recs


def pg_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bytes):
        return f"'\\x{v.hex()}'::bytea"
    if isinstance(v, int):
        return str(v)
    return "'" + v.replace("'", "''") + "'"


def build_pg(srv, uri):
    recs = old_records()
    sql = [PG_V1, f"INSERT INTO compliance_schema_version VALUES (1, {int(time.time())});"]
    for table, cols in (("messages", MESSAGE_COLS), ("audit", AUDIT_COLS)):
        names = cols + ["prev_hash", "hash"]
        for r in recs[table]:
            sql.append(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                       f"({', '.join(pg_literal(r[c]) for c in names)});")
    for cp in checkpoints(srv, recs):
        sql.append("INSERT INTO checkpoints VALUES (" + ", ".join(
            pg_literal(cp[c]) for c in ("chain", "seq", "ts_us", "hash", "signature", "signer"))
            + ");")
    psql(uri, "BEGIN;" + "\n".join(sql) + "COMMIT;")
    return recs


def evidence(rows_of):
    """The records and checkpoints as stored, hashes in hex (to compare before/after)."""
    out = {}
    for table, order in (("messages", "seq"), ("audit", "seq"), ("checkpoints", "chain, seq")):
        rows = rows_of(f"SELECT * FROM {table} ORDER BY {order}")
        for r in rows:
            for k, v in list(r.items()):
                if isinstance(v, bytes):
                    r[k] = v.hex()
                elif isinstance(v, str) and v.startswith("\\x"):
                    r[k] = v[2:]  # PostgreSQL bytea through JSON
            r.pop("dedupe_key", None)  # added by the migration; NULL for old records
        out[table] = rows
    return out


def ctl(srv, *args):
    return srv.ctl("compliance", *args, check=False)


def check_upgrade(srv, rows_of, found, latest, run):
    before = evidence(rows_of)
    p = ctl(srv, "schema")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"compliance schema version {found} (this program: {latest};" in p.stdout, p.stdout
    # Read-only commands read the older schema as it is.
    p = ctl(srv, "verify")
    assert p.returncode == 0 and "messages: all 3 records verify (1 checkpoint)" in p.stdout \
        and "audit: all 2 records verify (1 checkpoint)" in p.stdout, p.stdout + p.stderr

    p = ctl(srv, "migrate")
    assert p.returncode == 0 and \
        f"compliance schema: {found} -> {latest} (migrated)" in p.stdout, p.stdout + p.stderr
    p = ctl(srv, "schema")
    assert p.returncode == 0 and \
        f"compliance schema version {latest} (this program: {latest})\n" == p.stdout, p.stdout
    after = evidence(rows_of)
    assert after["messages"] == before["messages"]  # untouched by the upgrade
    assert after["audit"][:2] == before["audit"]
    migrated = after["audit"][2:]
    assert [(e["actor"], e["event"], e["target"]) for e in migrated] == \
        [("admin", "compliance-migrate", "schema")]
    assert migrated[0]["detail"].endswith(f" from={found} to={latest}")
    p = ctl(srv, "verify")
    assert p.returncode == 0 and "messages: all 3 records verify" in p.stdout \
        and "audit: all 3 records verify" in p.stdout, p.stdout + p.stderr

    # Once more: nothing to do, nothing written.
    p = ctl(srv, "migrate")
    assert p.returncode == 0 and \
        f"compliance schema: {latest} -> {latest} (already up to date)" in p.stdout, p.stdout
    assert evidence(rows_of)["audit"] == after["audit"]

    # The upgraded archive takes new records on the same chain.
    srv.start()

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "desk")
        b = await cl.login("bob", "desk")
        await exchange(a, b, "after the upgrade")
    run(scenario)
    assert srv.stop() == []
    bodies = [r["body"] for r in rows_of("SELECT body FROM messages ORDER BY seq")]
    assert bodies == ["before the upgrade", "room message, old schema", None, "after the upgrade"]
    p = ctl(srv, "verify")
    assert p.returncode == 0 and "messages: all 4 records verify" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("found", [1, 2])
def test_sqlite_older_schema_migrated(server, run, found):
    srv = server(start=False)
    path = os.path.join(srv.dir, "old-compliance.db")
    srv.set_config([f"compliance_store = sqlite:{path}"])
    build_sqlite(srv, path, found)
    check_upgrade(srv, lambda sql: sqlite_query(path, sql), found, 3, run)
    versions = [r["version"] for r in sqlite_query(path, "SELECT version FROM schema_version"
                                                         " ORDER BY version")]
    assert versions == [1, 2, 3]
    cols = [r["name"] for r in sqlite_query(path, "PRAGMA table_info(messages)")]
    assert "dedupe_key" in cols


def test_pg_older_schema_migrated(server, run, pgdb):  # noqa: F811 (the fixture)
    srv = server(start=False)
    srv.set_config([f"compliance_store = {pgdb.uri}"])
    build_pg(srv, pgdb.uri)
    check_upgrade(srv, lambda sql: pg_rows(pgdb.uri, sql), 1, 2, run)
    assert psql(pgdb.uri, "SELECT version FROM compliance_schema_version ORDER BY version") == \
        ["1", "2"]
    assert psql(pgdb.uri, "SELECT indexname FROM pg_indexes WHERE indexname = 'messages_dedupe'") \
        == ["messages_dedupe"]


# --------------------------------------------------------------------------- newer schemas

def refused_everywhere(srv, newer, latest):
    """parleyctl (migrate, schema, verify, an account change) and parleyd refuse the
    archive, naming both versions."""
    want = f"schema version {newer} {NEWER} ({latest}); upgrade Parley"
    for args in (("migrate",), ("schema",), ("verify",)):
        p = ctl(srv, *args)
        assert p.returncode == 2 and want in p.stderr, (args, p.stdout, p.stderr)
    p = srv.ctl("user", "passwd", f"alice@{DOMAIN}", "--password-file", "/dev/null", check=False)
    assert p.returncode != 0 and want in p.stderr, p.stderr
    p = subprocess.run([srv.parleyd, "-c", srv.conf], capture_output=True, text=True,
                       timeout=60, env=srv.env(), cwd=srv.dir, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    if os.path.exists(srv.log_path):
        with open(srv.log_path, errors="replace") as f:
            out += f.read()
    assert p.returncode != 0 and want in out, out


def test_sqlite_newer_schema_refused(server):
    srv = server(start=False)
    path = sqlite_db(srv)
    con = sqlite3.connect(path)
    con.execute("INSERT INTO schema_version VALUES (4, ?)", (int(time.time()),))
    con.execute("CREATE TABLE from_the_future (x INTEGER)")
    con.commit()
    con.close()
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    dump = list(sqlite3.connect(f"file:{path}?mode=ro", uri=True).iterdump())
    refused_everywhere(srv, 4, 3)
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest, "the archive file changed"
    assert list(sqlite3.connect(f"file:{path}?mode=ro", uri=True).iterdump()) == dump
    wal = path + "-wal"
    assert not os.path.exists(wal) or os.path.getsize(wal) == 0, "something went to the WAL"


def test_pg_newer_schema_refused(server, pgdb):  # noqa: F811 (the fixture)
    srv = server(start=False)
    srv.set_config([f"compliance_store = {pgdb.uri}"])
    p = ctl(srv, "migrate")
    assert p.returncode == 0 and "compliance schema: 0 -> 2 (archive created)" in p.stdout, \
        p.stdout + p.stderr
    psql(pgdb.uri, f"INSERT INTO compliance_schema_version VALUES (3, {int(time.time())})")
    psql(pgdb.uri, "CREATE TABLE from_the_future (x INTEGER)")
    before = evidence(lambda sql: pg_rows(pgdb.uri, sql))
    tables = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    tables_before = psql(pgdb.uri, tables)
    refused_everywhere(srv, 3, 2)
    assert evidence(lambda sql: pg_rows(pgdb.uri, sql)) == before
    assert psql(pgdb.uri, tables) == tables_before
    assert psql(pgdb.uri, "SELECT version FROM compliance_schema_version ORDER BY version") == \
        ["1", "2", "3"]
