"""The compliance archive (docs/compliance.md): one record per message with its outcome,
metadata only for end-to-end encrypted messages, the audit trail, `parleyctl compliance
verify` against tampering with the SQLite file, strict mode when the archive cannot be
written, and search/export."""
import asyncio
import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time

from conftest import clients_for, exchange, raw_login

NS_OMEMO = "urn:xmpp:omemo:2"


def db_path(srv):
    return os.path.join(srv.dir, "data", "compliance.db")


def query(srv, sql, args=()):
    """Rows as dicts, from a read-only connection (parleyd keeps writing)."""
    con = sqlite3.connect(f"file:{db_path(srv)}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def records_with(srv, body):
    return query(srv, "SELECT * FROM messages WHERE body = ?", (body,))


async def wait_rows(fn, n=1, timeout=5.0):
    """Poll fn() until it returns at least n rows (records are committed before delivery,
    audit events within a second)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = fn()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


def body_is(text):
    return lambda m: m["body"] == text


def test_one_record_per_message_with_outcome(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        # delivered, with id and thread
        msg = a.make_message(mto="bob@localhost/b", mbody="rec-delivered", mtype="chat")
        msg["id"] = "m-1"
        msg["thread"] = "t-1"
        msg.send()
        await b.wait_for("message", body_is("rec-delivered"))
        # carol exists but is offline: stored
        a.send_message(mto="carol@localhost", mbody="rec-offline", mtype="chat")
        # no such account: bounced
        a.send_message(mto="nobody@localhost", mbody="rec-bounced", mtype="chat")
        err = await a.wait_for("message_error", lambda m: m["to"].bare == "alice@localhost")
        assert err["error"]["condition"] == "service-unavailable"
        # content-free (chat state only): no record, still delivered
        a.send_raw("<message to='bob@localhost/b' type='chat' id='cs-1'>"
                   "<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        await exchange(a, b, "rec-after-chatstate")

        d = records_with(srv, "rec-delivered")
        assert len(d) == 1, d
        d = d[0]
        assert d["sender"] == "alice@localhost/a"
        assert d["recipient"] == "bob@localhost/b"
        assert (d["msg_id"], d["thread"], d["type"]) == ("m-1", "t-1", "chat")
        assert (d["outcome"], d["verdict"], d["encrypted"], d["kind"]) == \
            ("delivered", "allow", 0, "message")
        assert "rec-delivered" in d["stanza"] and d["stanza"].startswith("<message")
        assert len(d["hash"]) == 32 and len(d["prev_hash"]) == 32
        assert abs(d["ts_us"] / 1e6 - time.time()) < 60
        assert d["time"].endswith("Z")

        o = records_with(srv, "rec-offline")
        assert len(o) == 1 and o[0]["outcome"] == "offline", o
        assert o[0]["recipient"] == "carol@localhost"
        bo = records_with(srv, "rec-bounced")
        assert len(bo) == 1 and bo[0]["outcome"] == "bounced", bo
        assert bo[0]["reason"] == "no such account"
        assert query(srv, "SELECT * FROM messages WHERE msg_id = 'cs-1'") == []
        # the bounce itself (type=error, from the server) is not a second record
        assert len(query(srv, "SELECT * FROM messages WHERE stanza LIKE '%rec-bounced%'")) == 1

        # carol gets the stored message on login
        c = await cl.login("carol", "c")
        await c.wait_for("message", body_is("rec-offline"))
    run(scenario)


def test_encrypted_message_metadata_only(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        a.send_raw(
            "<message to='bob@localhost/b' type='chat' id='omemo-1'>"
            f"<encrypted xmlns='{NS_OMEMO}'><header sid='27183'>"
            "<keys jid='bob@localhost'><key rid='31415'>b64keymaterial</key></keys>"
            "<iv>aXZpdml2</iv></header><payload>Y2lwaGVydGV4dA==</payload></encrypted>"
            "<body>This message is OMEMO encrypted (fallback)</body>"
            "<store xmlns='urn:xmpp:hints'/></message>")
        m = await b.wait_for("message", lambda m: m["id"] == "omemo-1")
        assert "OMEMO encrypted" in m["body"]  # delivery itself is unchanged
        rows = await wait_rows(lambda: query(srv, "SELECT * FROM messages WHERE msg_id = 'omemo-1'"))
        assert len(rows) == 1, rows
        r = rows[0]
        assert r["encrypted"] == 1 and r["enc_ns"] == NS_OMEMO
        assert r["body"] is None
        assert "<body" not in r["stanza"] and "fallback" not in r["stanza"]
        assert "Y2lwaGVydGV4dA==" in r["stanza"]  # the ciphertext is kept
        assert r["outcome"] == "delivered"
        assert r["sender"] == "alice@localhost/a"
    run(scenario)


def test_batch_keeps_order(srv, run):
    """Fifty messages in one write are committed together and delivered in order, and
    the content-free ones between them (which need no record) do not overtake them."""
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        rs, _ = raw_login(srv, "bob", "b")  # raw: slixmpp hides body-less messages
        try:
            parts = []
            for i in range(50):
                parts.append(f"<message to='bob@localhost/b' type='chat' id='batch-{i}'>"
                             f"<body>batch {i}</body></message>")
                parts.append(f"<message to='bob@localhost/b' type='chat' id='state-{i}'>"
                             "<paused xmlns='http://jabber.org/protocol/chatstates'/></message>")
            a.send_raw("".join(parts))
            got = await asyncio.to_thread(rs.read_until, r"id=['\"]state-49['\"]", 10)
        finally:
            rs.close()
        ids = re.findall(r"<message\b[^>]*\bid=['\"]((?:batch|state)-\d+)['\"]", got)
        want = [x for i in range(50) for x in (f"batch-{i}", f"state-{i}")]
        assert ids == want, ids
        rows = query(srv, "SELECT seq, msg_id FROM messages WHERE msg_id LIKE 'batch-%' ORDER BY seq")
        assert [r["msg_id"] for r in rows] == [f"batch-{i}" for i in range(50)]
        assert rows[-1]["seq"] - rows[0]["seq"] == 49
    run(scenario)


def test_audit_trail(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "audit-res")
        await a.close()
        bad = cl.make("bob", "x", password="wrong-password")
        try:
            await cl.connect(bad, timeout=5)
        except Exception:
            pass
        rows = await wait_rows(lambda: query(
            srv, "SELECT * FROM audit WHERE event IN ('sign-in', 'sign-out', 'auth-failure')"),
            3)
        ev = {r["event"]: r for r in rows}
        assert ev["sign-in"]["actor"] == "alice@localhost"
        assert ev["sign-in"]["detail"] == "mechanism=SCRAM-SHA-256"
        assert ev["sign-in"]["peer"].startswith("127.0.0.1:")
        assert ev["sign-out"]["actor"] == "alice@localhost/audit-res"
        assert ev["auth-failure"]["target"] == "bob@localhost"
        assert "not-authorized" in ev["auth-failure"]["detail"]
        events = [r["event"] for r in query(srv, "SELECT event FROM audit ORDER BY seq")]
        assert "server-start" in events
        adds = query(srv, "SELECT * FROM audit WHERE event = 'user-add'")
        assert {r["target"] for r in adds} >= {"alice@localhost", "bob@localhost"}
        assert all(r["actor"] == "admin" for r in adds)
    run(scenario)
    # parleyctl's own actions are audited too
    srv.add_user("erin", "erin-Secret-5")
    srv.ctl("user", "del", "erin@localhost")
    ev = [(r["event"], r["target"]) for r in query(srv, "SELECT * FROM audit ORDER BY seq")]
    assert ("user-add", "erin@localhost") in ev and ("user-del", "erin@localhost") in ev


def verify(srv):
    return srv.ctl("compliance", "verify", check=False)


def test_verify_detects_tampering(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        for i in range(6):
            await exchange(a, b, f"chain-{i}")
    run(scenario)
    p = verify(srv)  # while parleyd runs
    assert p.returncode == 0, p.stdout + p.stderr
    assert "messages: all 6 records verify" in p.stdout, p.stdout
    assert srv.stop() == []  # writes the closing checkpoint

    pristine = db_path(srv) + ".pristine"
    shutil.copy(db_path(srv), pristine)
    assert not os.path.exists(db_path(srv) + "-wal") or os.path.getsize(db_path(srv) + "-wal") == 0
    p = verify(srv)
    assert p.returncode == 0 and "(1 checkpoint)" in p.stdout, p.stdout + p.stderr

    def tampered(sql, expect):
        for ext in ("", "-wal", "-shm"):
            if os.path.exists(db_path(srv) + ext):
                os.unlink(db_path(srv) + ext)
        shutil.copy(pristine, db_path(srv))
        con = sqlite3.connect(db_path(srv))
        con.executescript(sql)
        con.close()
        p = verify(srv)
        assert p.returncode == 3, f"{sql}: exit {p.returncode}\n{p.stdout}{p.stderr}"
        assert expect in p.stdout and expect in p.stderr, f"{sql}: {p.stdout}{p.stderr}"
        return p

    tampered("UPDATE messages SET body = 'harmless' WHERE body = 'chain-2'",
             "record 3 altered")
    tampered("DELETE FROM messages WHERE seq = 4", "record 4 missing")
    tampered("UPDATE messages SET seq = -1 WHERE seq = 2;"
             "UPDATE messages SET seq = 2 WHERE seq = 5;"
             "UPDATE messages SET seq = 5 WHERE seq = -1;",
             "record 2 out of order (it holds record 5")
    tampered("DELETE FROM messages WHERE seq > 4", "records after 4 removed (checkpoint at 6)")
    tampered("UPDATE checkpoints SET signature = randomblob(256)",
             "checkpoint at 6: invalid signature")
    seq = query(srv, "SELECT seq FROM audit WHERE event = 'sign-in' ORDER BY seq")  # pristine
    p = tampered("UPDATE audit SET peer = '10.9.9.9:1' WHERE event = 'sign-in'",
                 f"record {seq[0]['seq']} altered")
    assert "audit: TAMPERED" in p.stdout and "messages: all 6 records verify" in p.stdout


def test_strict_mode_refuses_when_archive_locked(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await exchange(a, b, "before-lock")
        lock = sqlite3.connect(db_path(srv), timeout=1, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            a.send_message(mto="bob@localhost/b", mbody="while-locked", mtype="chat")
            err = await a.wait_for("message_error", lambda m: m["body"] == "while-locked", 10)
            assert err["error"]["condition"] == "resource-constraint", err
            assert err["error"]["type"] == "wait"
            assert "compliance archive is unavailable" in err["error"]["text"]
            await b.expect_none("message", body_is("while-locked"), 1.0)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        await exchange(a, b, "after-lock")
        assert records_with(srv, "while-locked") == []
        assert len(records_with(srv, "after-lock")) == 1
        assert srv.alive()
    run(scenario, timeout=90)
    assert "compliance: writing" in srv.log_text()
    p = verify(srv)
    assert p.returncode == 0, p.stdout + p.stderr


def test_search_and_export(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await exchange(a, b, "needle one, with \"quotes\"")
        await exchange(b, a, "haystack two")
        await exchange(a, b, "NEEDLE three\nsecond line")
    run(scenario)
    p = srv.ctl("compliance", "search", "--from", "alice@localhost")
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 2 and all("alice@localhost/a -> bob@localhost/b" in l for l in lines), p.stdout
    p = srv.ctl("compliance", "search", "--text", "needle", "--jid", "Bob@LocalHost")
    assert len(p.stdout.strip().splitlines()) == 2, p.stdout
    assert "NEEDLE three\\nsecond line" in p.stdout, p.stdout
    p = srv.ctl("compliance", "search", "--to", "alice@localhost/a")
    assert "haystack two" in p.stdout and "needle" not in p.stdout, p.stdout
    p = srv.ctl("compliance", "search", "--since", "2000-01-01", "--until", "2000-01-02T00:00:00Z")
    assert p.stdout == "", p.stdout
    p = srv.ctl("compliance", "search", "--since", "2000-01-01T00:00:00.5Z", "--limit", "1")
    assert len(p.stdout.strip().splitlines()) == 1
    p = srv.ctl("compliance", "search", "--since", "yesterday", check=False)
    assert p.returncode == 1 and "bad time" in p.stderr

    p = srv.ctl("compliance", "export", "--format", "json", "--from", "alice@localhost")
    data = json.loads(p.stdout)
    assert [r["body"] for r in data] == ["needle one, with \"quotes\"", "NEEDLE three\nsecond line"]
    assert data[0]["seq"] == 1 and data[0]["encrypted"] == 0 and len(data[0]["hash"]) == 64
    assert data[1]["prev_hash"] == query(srv, "SELECT hex(prev_hash) h FROM messages WHERE seq = 3")[0]["h"].lower()
    p = srv.ctl("compliance", "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [r["body"] for r in rows] == ["needle one, with \"quotes\"", "haystack two",
                                         "NEEDLE three\nsecond line"]
    assert rows[0]["outcome"] == "delivered" and rows[0]["file_size"] == ""
    p = srv.ctl("compliance", "export", check=False)
    assert p.returncode == 1
    p = srv.ctl("compliance", "audit", "--from", "alice@localhost")
    assert "sign-in alice@localhost" in p.stdout, p.stdout


def test_refuses_to_start_without_archive(server):
    srv = server(extra=["compliance_store = sqlite:/dev/null/compliance.db"], start=False)
    p = subprocess.run([srv.parleyd, "-c", srv.conf], capture_output=True, text=True,
                       timeout=30, env=srv.env())
    assert p.returncode == 1, p.stderr
    assert "compliance archive" in p.stderr and "refusing to start" in p.stderr, p.stderr
    # and parleyctl refuses account changes it cannot audit
    pw = os.path.join(srv.dir, ".pw")
    with open(pw, "w") as f:
        f.write("frank-Secret-6\n")
    p = srv.ctl("user", "add", "frank@localhost", "--password-file", pw, check=False)
    assert p.returncode == 2 and "would not be audited" in p.stderr, p.stderr
    assert "frank@localhost" not in srv.ctl("user", "list").stdout


def test_compliance_off(server, run):
    srv = server(extra=["compliance = false"])

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await exchange(a, b, "not-archived")
    run(scenario)
    assert records_with(srv, "not-archived") == []
