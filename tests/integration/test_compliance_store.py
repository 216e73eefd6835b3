"""The storage side of the compliance archive (docs/compliance.md): the PostgreSQL back end
under parleyd and parleyctl, tampering with its rows, the database going away in strict
and in spool mode, parleyd killed mid-burst, and retention purges on both back ends.

PostgreSQL is real: a database of its own per test on the server PARLEY_TEST_PG_URI names
(tests/run.sh starts one), and, for the tests that stop the database server, a private
cluster started with scripts/pg-cluster.sh. Rows are read and tampered with through psql,
as an auditor or an attacker would. Without PARLEY_TEST_PG_URI those tests are skipped."""
import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from conftest import clients_for, exchange, raw_login

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_CLUSTER = os.path.join(ROOT, "scripts", "pg-cluster.sh")
SPOOL_HEADER = 40  # bytes of an empty spool file


# --------------------------------------------------------------------------- PostgreSQL

def pg_base():
    uri = os.environ.get("PARLEY_TEST_PG_URI")
    if not uri:
        pytest.skip("PARLEY_TEST_PG_URI not set (see scripts/pg-cluster.sh)")
    return uri


def with_db(uri, db):
    """uri with its database replaced."""
    m = re.match(r"^(postgres(?:ql)?://[^/?]*)(/[^?]*)?(\?.*)?$", uri)
    assert m, uri
    return f"{m.group(1)}/{db}{m.group(3) or ''}"


def psql(uri, sql, timeout=30):
    """Run sql; the first column of each row as text (NULL as None)."""
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-P", "null=\\N",
                        "-d", uri, "-c", sql], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"psql {sql!r}: {p.stderr}"
    return [None if line == "\\N" else line for line in p.stdout.splitlines()]


def pg_rows(uri, sql):
    """Rows of sql as dicts (through JSON: NULLs, newlines and types survive)."""
    out = psql(uri, f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t")
    return json.loads("\n".join(out))


class Database:
    """A database of its own on a PostgreSQL server, dropped at the end."""

    def __init__(self, server_uri):
        self.name = "parley_it_" + uuid.uuid4().hex[:12]
        self.admin = server_uri
        psql(server_uri, f"CREATE DATABASE {self.name}")
        self.uri = with_db(server_uri, self.name)

    def drop(self):
        try:
            psql(self.admin, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        except (AssertionError, subprocess.TimeoutExpired):
            pass  # the server may be gone (a private cluster being stopped)


@pytest.fixture
def pgdb():
    db = Database(pg_base())
    yield db
    db.drop()


class Cluster:
    """A private PostgreSQL cluster (scripts/pg-cluster.sh) that tests may stop."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="parley-it-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)  # the unprivileged server user must get through
        self.data = os.path.join(self.dir, "c")
        p = subprocess.run(["sh", PG_CLUSTER, "start", self.data, "auto"], capture_output=True,
                           text=True, timeout=120)
        if p.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            pytest.fail(f"could not start a private PostgreSQL cluster: {p.stderr}")
        self.uri = p.stdout.strip()

    def cmd(self, what):
        p = subprocess.run(["sh", PG_CLUSTER, what, self.data], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, f"pg-cluster.sh {what}: {p.stderr}"

    def pause(self):
        self.cmd("pause")

    def resume(self):
        self.cmd("resume")

    def stop(self):
        subprocess.run(["sh", PG_CLUSTER, "stop", self.data], capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    pg_base()  # the same condition as every PostgreSQL test
    c = Cluster()
    yield c
    c.stop()


@pytest.fixture
def cdb(cluster):
    """A database of its own in the private cluster, which is running at the end again."""
    db = Database(cluster.uri)
    yield db
    cluster.resume()
    db.drop()


# --------------------------------------------------------------------------- helpers

def verify(srv):
    return srv.ctl("compliance", "verify", check=False)


def assert_verifies(srv):
    p = verify(srv)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def body_is(text):
    return lambda m: m["body"] == text


def sqlite_path(srv):
    return os.path.join(srv.dir, "data", "compliance.db")


def sqlite_rows(srv, sql):
    con = sqlite3.connect(f"file:{sqlite_path(srv)}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def spool_path(srv):
    return os.path.join(srv.dir, "data", "compliance.spool")


async def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        await asyncio.sleep(0.2)


def restart(srv):
    """Start parleyd again in the same directory (after it died)."""
    if srv.logf:
        srv.logf.close()
        srv.logf = None
    srv.start()


def counts_by(rows, key):
    out = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return out


# --------------------------------------------------------------------------- PostgreSQL archive

def test_pg_archive_records_messages_and_verifies(server, pgdb, run):
    # A password in the URI (ignored by the test server's trust authentication) must
    # never reach a log line or an error message.
    uri = pgdb.uri.replace("://parley@", "://parley:Pw-never-logged@")
    srv = server(extra=[f"compliance_store = {uri}"])

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        for i in range(3):
            await exchange(a, b, f"pg-{i}")
        a.send_message(mto="carol@localhost", mbody="pg-offline", mtype="chat")
        await exchange(b, a, "pg-reply")
    run(scenario)

    rows = pg_rows(pgdb.uri, "SELECT seq, sender, recipient, body, outcome, time::text AS time,"
                              " octet_length(hash) AS hlen FROM messages ORDER BY seq")
    bodies = [r["body"] for r in rows]
    assert bodies == ["pg-0", "pg-1", "pg-2", "pg-offline", "pg-reply"], rows
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["sender"] == "alice@localhost/a" and rows[0]["recipient"] == "bob@localhost/b"
    assert rows[3]["outcome"] == "offline" and rows[3]["recipient"] == "carol@localhost"
    assert all(r["hlen"] == 32 for r in rows)
    assert rows[0]["time"].startswith(time.strftime("%Y-", time.gmtime()))
    events = psql(pgdb.uri, "SELECT event FROM audit ORDER BY seq")
    assert events[0] == "server-start" and "sign-in" in events, events

    p = assert_verifies(srv)  # while parleyd writes
    assert "messages: all 5 records verify" in p.stdout, p.stdout
    p = srv.ctl("compliance", "search", "--from", "alice@localhost")
    assert [l.split(": ", 1)[1] for l in p.stdout.strip().splitlines()] == \
        ["pg-0", "pg-1", "pg-2", "pg-offline"], p.stdout
    p = srv.ctl("compliance", "search", "--jid", "bob@localhost", "--text", "REPLY")
    assert "pg-reply" in p.stdout and len(p.stdout.strip().splitlines()) == 1, p.stdout
    data = json.loads(srv.ctl("compliance", "export", "--format", "json").stdout)
    assert [r["body"] for r in data] == bodies and len(data[0]["hash"]) == 64
    p = srv.ctl("compliance", "audit", "--from", "alice@localhost")
    assert "sign-in alice@localhost" in p.stdout, p.stdout

    assert srv.stop() == []
    p = assert_verifies(srv)
    assert "(1 checkpoint)" in p.stdout, p.stdout  # the closing one
    assert psql(pgdb.uri, "SELECT count(*) FROM checkpoints WHERE chain = 'messages'") == ["1"]
    everything = srv.log_text() + p.stdout + p.stderr
    assert "Pw-never-logged" not in everything
    assert "compliance archive postgresql://parley@" in srv.log_text()


def test_pg_verify_names_tampered_row(server, pgdb, run):
    srv = server(extra=[f"compliance_store = {pgdb.uri}"])

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        for i in range(6):
            await exchange(a, b, f"chain-{i}")
    run(scenario)
    assert srv.stop() == []
    assert_verifies(srv)
    cols = ("seq, ts_us, kind, sender, recipient, msg_id, thread, type, subject, body, encrypted,"
            " enc_ns, file_name, file_size, file_type, file_sha256, outcome, verdict, reason,"
            " stanza, prev_hash, hash")
    psql(pgdb.uri, "CREATE TABLE pristine AS SELECT * FROM messages")

    def tampered(sql, expect):
        psql(pgdb.uri, f"BEGIN; DELETE FROM messages; INSERT INTO messages({cols})"
                       f" SELECT {cols} FROM pristine; COMMIT")
        assert_verifies(srv)
        psql(pgdb.uri, sql)
        p = verify(srv)
        assert p.returncode == 3, f"{sql}: exit {p.returncode}\n{p.stdout}{p.stderr}"
        assert expect in p.stdout and expect in p.stderr, f"{sql}: {p.stdout}{p.stderr}"

    seq = int(psql(pgdb.uri, "SELECT seq FROM messages WHERE body = 'chain-2'")[0])
    tampered("UPDATE messages SET body = 'harmless' WHERE body = 'chain-2'",
             f"record {seq} altered")
    tampered("DELETE FROM messages WHERE seq = 4", "record 4 missing")
    tampered("BEGIN; UPDATE messages SET seq = -1 WHERE seq = 2;"
             " UPDATE messages SET seq = 2 WHERE seq = 5;"
             " UPDATE messages SET seq = 5 WHERE seq = -1; COMMIT",
             "record 2 out of order (it holds record 5")
    tampered("DELETE FROM messages WHERE seq > 4", "records after 4 removed (checkpoint at 6)")
    # the tail of the audit chain, with its checkpoint
    tampered("UPDATE audit SET peer = '10.9.9.9:1' WHERE event = 'sign-in'", "altered")


# --------------------------------------------------------------------------- the database goes away

def test_pg_down_strict_mode_refuses_then_recovers(server, cluster, cdb, run):
    srv = server(extra=[f"compliance_store = {cdb.uri}"])

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await exchange(a, b, "before-down")
        await asyncio.to_thread(cluster.pause)
        try:
            for i in range(3):
                a.send_message(mto="bob@localhost/b", mbody=f"while-down-{i}", mtype="chat")
                err = await a.wait_for("message_error", body_is(f"while-down-{i}"), 15)
                assert err["error"]["condition"] == "resource-constraint", err
                assert err["error"]["type"] == "wait"
                assert err["error"]["text"] == ("the compliance archive is unavailable; the "
                                                "message was not delivered"), err
            await b.expect_none("message", lambda m: m["body"].startswith("while-down"), 1.0)
        finally:
            await asyncio.to_thread(cluster.resume)
        # later messages flow again, on a new connection to the database
        await exchange(a, b, "after-up", timeout=15)
        await exchange(b, a, "after-up-reply", timeout=15)
    run(scenario, timeout=120)
    rows = pg_rows(cdb.uri, "SELECT body FROM messages")
    got = counts_by(rows, "body")
    assert got == {"before-down": 1, "after-up": 1, "after-up-reply": 1}, got
    assert srv.alive()
    log = srv.log_text()
    assert "compliance: writing" in log and "reconnected to PostgreSQL" in log, srv.log_tail()
    assert_verifies(srv)


def test_pg_down_spool_mode_delivers_then_replays(server, cluster, cdb, run):
    srv = server(extra=[f"compliance_store = {cdb.uri}", "compliance_mode = spool"])
    n = 20

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await exchange(a, b, "before-down")
        await asyncio.to_thread(cluster.pause)
        try:
            for i in range(n):
                a.send_message(mto="bob@localhost/b", mbody=f"spooled-{i}", mtype="chat")
            for i in range(n):
                await b.wait_for("message", body_is(f"spooled-{i}"), 15)
            assert a.events["message_error"] == [], a.events["message_error"]
            assert os.path.getsize(spool_path(srv)) > SPOOL_HEADER
            assert os.stat(spool_path(srv)).st_mode & 0o777 == 0o600
        finally:
            await asyncio.to_thread(cluster.resume)
        # replayed by the server on its own, without new traffic
        await wait_until(lambda: len(pg_rows(cdb.uri, "SELECT seq FROM messages")) >= n + 1, 20,
                         "no replay into the database")
        await wait_until(lambda: os.path.getsize(spool_path(srv)) == SPOOL_HEADER, 10,
                         "the spool was not emptied")
        await exchange(a, b, "after-up", timeout=15)
    run(scenario, timeout=150)
    rows = pg_rows(cdb.uri, "SELECT seq, body, ts_us FROM messages ORDER BY seq")
    got = counts_by(rows, "body")
    want = {"before-down": 1, "after-up": 1}
    want.update({f"spooled-{i}": 1 for i in range(n)})
    assert got == want, got  # every delivered message exactly once
    # spool order kept, and the times they were received, not replayed
    spooled = [r for r in rows if r["body"].startswith("spooled-")]
    assert [r["body"] for r in spooled] == [f"spooled-{i}" for i in range(n)]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    log = srv.log_text()
    assert "spooled to" in log and "replayed" in log, srv.log_tail()
    assert_verifies(srv)


# --------------------------------------------------------------------------- kill -9 mid-burst

BURST = 300


def burst_and_kill(srv, kill_after=80, before_kill=None):
    """alice sends BURST messages to bob over raw streams; parleyd gets SIGKILL once bob
    has received kill_after of them. Returns the ids bob received."""
    bob, _ = raw_login(srv, "bob", "b", timeout=30)
    alice, _ = raw_login(srv, "alice", "a", timeout=30)
    received = []
    rx = re.compile(rb"<message\b[^>]*\bid=['\"](burst-\d+)['\"]")

    def read_bob():
        try:
            bob.read_all(timeout=60)
        except Exception:
            pass

    reader = threading.Thread(target=read_bob, daemon=True)
    reader.start()
    stop = threading.Event()

    def send_alice():
        try:
            for i in range(0, BURST, 10):
                if stop.is_set():
                    return
                alice.send("".join(f"<message to='bob@localhost/b' type='chat' id='burst-{k}'>"
                                   f"<body>burst {k}</body></message>" for k in range(i, i + 10)))
                time.sleep(0.01)
        except OSError:
            pass  # the server is gone

    sender = threading.Thread(target=send_alice, daemon=True)
    sender.start()
    deadline = time.monotonic() + 60
    while len(rx.findall(bob.log)) < kill_after:
        assert time.monotonic() < deadline, "bob did not receive the burst"
        assert srv.alive(), srv.log_tail()
        time.sleep(0.01)
    if before_kill:
        before_kill()
    os.kill(srv.pid(), signal.SIGKILL)
    srv.proc.wait(timeout=10)
    stop.set()
    reader.join(timeout=70)
    sender.join(timeout=10)
    received = [m.decode() for m in rx.findall(bob.log)]
    bob.close()
    alice.close()
    assert kill_after <= len(received) <= BURST
    assert len(set(received)) == len(received), "a message was delivered twice"
    return received


def test_kill9_mid_burst_strict_sqlite(server):
    srv = server()
    received = burst_and_kill(srv)
    restart(srv)
    assert_verifies(srv)
    got = counts_by(sqlite_rows(srv, "SELECT msg_id FROM messages WHERE msg_id LIKE 'burst-%'"),
                    "msg_id")
    assert all(got.get(i) == 1 for i in received), \
        [(i, got.get(i)) for i in received if got.get(i) != 1][:10]
    assert all(c == 1 for c in got.values()), "a record was written twice"


def test_kill9_mid_burst_spool_mode_pg_down(server, cluster, cdb, run):
    srv = server(extra=[f"compliance_store = {cdb.uri}", "compliance_mode = spool"])
    cluster.pause()
    try:
        received = burst_and_kill(srv)
        # what was delivered is in the spool, fsync'd before delivery
        assert os.path.getsize(spool_path(srv)) > SPOOL_HEADER
    finally:
        cluster.resume()
    restart(srv)  # start-up replays the spool
    assert os.path.getsize(spool_path(srv)) == SPOOL_HEADER
    assert "replayed" in srv.log_text(), srv.log_tail()
    assert_verifies(srv)
    got = counts_by(pg_rows(cdb.uri, "SELECT msg_id FROM messages WHERE msg_id LIKE 'burst-%'"),
                    "msg_id")
    assert all(got.get(i) == 1 for i in received), \
        [(i, got.get(i)) for i in received if got.get(i) != 1][:10]
    assert all(c == 1 for c in got.values()), "a record was written twice"

    async def scenario():  # and it goes on
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await exchange(a, b, "after-restart")
    run(scenario)
    assert psql(cdb.uri, "SELECT count(*) FROM messages WHERE body = 'after-restart'") == ["1"]


# --------------------------------------------------------------------------- retention

def field(v):
    """The canonical encoding of one field (docs/compliance.md)."""
    if v is None:
        return b"\xff\xff\xff\xff"
    b = str(v).encode()
    return struct.pack(">I", len(b)) + b


RECORD_FIELDS = ["seq", "ts_us", "kind", "sender", "recipient", "msg_id", "thread", "type",
                 "subject", "body", "encrypted", "enc_ns", "file_name", "file_size", "file_type",
                 "file_sha256", "outcome", "verdict", "reason", "stanza"]


class SqliteArchive:
    def __init__(self, srv):
        self.path = sqlite_path(srv)

    def rows(self, sql):
        con = sqlite3.connect(self.path)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(sql)]
        finally:
            con.close()

    def execute(self, statements):
        con = sqlite3.connect(self.path)
        try:
            con.executescript("BEGIN;" + ";".join(statements) + ";COMMIT;")
        finally:
            con.close()

    def records(self):
        rows = self.rows(f"SELECT {', '.join(RECORD_FIELDS)} FROM messages ORDER BY seq")
        return rows

    def blob(self, b):
        return f"X'{b.hex()}'"

    def checkpoints(self):
        return self.rows("SELECT seq FROM checkpoints WHERE chain = 'messages'")


class PgArchive:
    def __init__(self, uri):
        self.uri = uri

    def rows(self, sql):
        return pg_rows(self.uri, sql)

    def execute(self, statements):
        psql(self.uri, "BEGIN;" + ";".join(statements) + ";COMMIT")

    def records(self):
        return self.rows(f"SELECT {', '.join(RECORD_FIELDS)} FROM messages ORDER BY seq")

    def blob(self, b):
        return f"'\\x{b.hex()}'::bytea"

    def checkpoints(self):
        return self.rows("SELECT seq FROM checkpoints WHERE chain = 'messages'")


def age_records(archive, key_path, bodies, days):
    """Make the records with these bodies `days` older: what the archive would hold had
    they been received then. Every hash is recomputed and the messages chain's
    checkpoints signed again with the server's key, as parleyd would have done (the
    operator holds the key; this is no tampering verify could or should catch)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    prev = bytes(32)
    hashes_by_seq = {}
    updates = []
    for r in archive.records():
        if r["body"] in bodies:
            r["ts_us"] -= days * 86400 * 10**6
        enc = field("parley-clog-message-v1") + b"".join(field(r[k]) for k in RECORD_FIELDS)
        h = hashlib.sha256(prev + enc).digest()
        updates.append(f"UPDATE messages SET ts_us = {r['ts_us']}, prev_hash = "
                       f"{archive.blob(prev)}, hash = {archive.blob(h)} WHERE seq = {r['seq']}")
        hashes_by_seq[r["seq"]] = h
        prev = h
    for cp in archive.checkpoints():
        h = hashes_by_seq[cp["seq"]]
        text = f"parley-clog-checkpoint-v1|messages|{cp['seq']}|{h.hex()}".encode()
        sig = key.sign(text, padding.PKCS1v15(), hashes.SHA256())
        updates.append(f"UPDATE checkpoints SET hash = {archive.blob(h)}, signature = "
                       f"{archive.blob(sig)} WHERE chain = 'messages' AND seq = {cp['seq']}")
    archive.execute(updates)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_purge_refused_or_allowed_by_retention(server, run, backend, request):
    extra, db = [], None
    if backend == "postgresql":
        db = Database(pg_base())
        request.addfinalizer(db.drop)
        extra = [f"compliance_store = {db.uri}"]
    srv = server(extra=extra)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        for body in ("old-1", "old-2", "young-1", "old-3", "young-2"):
            await exchange(a, b, body)
    run(scenario)
    assert srv.stop() == []
    archive = PgArchive(db.uri) if backend == "postgresql" else SqliteArchive(srv)
    age_records(archive, srv.key, {"old-1", "old-2", "old-3"}, 400)
    assert_verifies(srv)
    before = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 200 * 86400))

    # forever (the default): never
    p = srv.ctl("compliance", "purge", "--before", before, check=False)
    assert p.returncode == 2 and "forever" in p.stderr, p.stderr
    srv.set_config(["compliance_retention_days = 300d"])
    # less than the retention in the past
    p = srv.ctl("compliance", "purge", "--before", before, check=False)
    assert p.returncode == 2 and "less than compliance_retention_days (300 days)" in p.stderr, \
        p.stderr
    p = srv.ctl("compliance", "purge", "--before", "last year", check=False)
    assert p.returncode == 1 and "bad time" in p.stderr, p.stderr
    assert len(archive.rows("SELECT seq FROM messages")) == 5  # nothing was touched

    srv.set_config(["compliance_retention_days = 100"])
    p = srv.ctl("compliance", "purge", "--before", before)
    # old-3 is older but comes after young-1: the purge stops at the first younger record
    assert "purged 2 message records (seq 1 to 2)" in p.stdout, p.stdout
    assert [r["body"] for r in archive.rows("SELECT body FROM messages ORDER BY seq")] == \
        ["young-1", "old-3", "young-2"]
    p = assert_verifies(srv)
    assert "messages: all 3 records verify" in p.stdout and "records up to 2 purged" in p.stdout, \
        p.stdout
    p = srv.ctl("compliance", "audit")
    line = [l for l in p.stdout.splitlines() if "compliance-purge" in l]
    assert len(line) == 1 and "records=2 seq=1-2" in line[0] and f"before={before}" in line[0], \
        p.stdout
    assert "admin" in line[0] and "uid=" in line[0]
    # nothing more is old enough: nothing happens, and nothing is written
    p = srv.ctl("compliance", "purge", "--before", before)
    assert "nothing to purge" in p.stdout, p.stdout
    assert len([l for l in srv.ctl("compliance", "audit").stdout.splitlines()
                if "compliance-purge" in l]) == 1

    # any other deletion is still found: here the first record after the purge point
    archive.execute(["DELETE FROM messages WHERE seq = 3"])
    p = verify(srv)
    assert p.returncode == 3 and "record 3 missing" in p.stdout, p.stdout


def test_purge_continues_chain_after_restart(server, run):
    srv = server(extra=["compliance_retention_days = 1"])

    async def send(body):
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await exchange(a, b, body)
    run(send, "to-purge")
    assert srv.stop() == []
    archive = SqliteArchive(srv)
    age_records(archive, srv.key, {"to-purge"}, 10)
    p = srv.ctl("compliance", "purge", "--before",
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86400)))
    assert "purged 1 message record (seq 1 to 1)" in p.stdout, p.stdout
    assert archive.rows("SELECT count(*) n FROM messages")[0]["n"] == 0
    restart(srv)
    run(send, "after-purge")
    rows = archive.rows("SELECT seq, body FROM messages")
    assert rows == [{"seq": 2, "body": "after-purge"}], rows
    p = assert_verifies(srv)
    assert "messages: all 1 records verify" in p.stdout and "records up to 1 purged" in p.stdout
    assert "compliance-purge" in srv.ctl("compliance", "audit").stdout
