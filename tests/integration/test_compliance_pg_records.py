"""The compliance records of every kind of message (docs/compliance.md) with the archive in
SQLite and in a real PostgreSQL (a database of its own on the server PARLEY_TEST_PG_URI
names; those cases are skipped without it): room messages with the occupants' room-join and
room-leave audit events (joined, left, kicked, banned, disconnected, room destroyed) in one
order with the room's message records, the subject column (one-to-one and room), end-to-end
encrypted messages as metadata only, messages blocked by the admin policy, and file uploads
and downloads. Every archive still verifies afterwards. Rooms on another node of the
domain: the room's home records its occupants' joins and leaves, the other nodes do not.
"""
import asyncio
import hashlib

import pytest

from conftest import clients_for, exchange
from nodes_util import cluster, pg_server, pg_uri  # noqa: F401
from muc_util import create, gc_body, groupchat, join, logins, presence_of, record_raw
from nodes_util import DOMAIN as NODES_DOMAIN
from test_nodes_rooms import gc, instant, member, unavailable, until
from test_nodes_rooms import join as node_join
from test_policy import condition
from test_compliance import wait_rows
from test_compliance_store import Database, assert_verifies, pg_base, pg_rows, sqlite_rows
from test_upload import https, request_slot, upload_server

NS_OMEMO = "urn:xmpp:omemo:2"
NS_NODE = "urn:parley:node:0"


def lit(s):
    """A SQL string literal (the same in SQLite and PostgreSQL)."""
    return "'" + str(s).replace("'", "''") + "'"


class Archive:
    """The compliance store of a test server, in SQLite (the default) or PostgreSQL."""

    def __init__(self, backend, request):
        self.backend = backend
        self.db = None
        if backend == "postgresql":
            self.db = Database(pg_base())
            request.addfinalizer(self.db.drop)

    def extra(self):
        return [f"compliance_store = {self.db.uri}"] if self.db else []

    def rows(self, srv, sql):
        return pg_rows(self.db.uri, sql) if self.db else sqlite_rows(srv, sql)

    def messages(self, srv, where):
        return self.rows(srv, f"SELECT * FROM messages WHERE {where} ORDER BY seq")

    def audit(self, srv, where):
        return self.rows(srv, f"SELECT * FROM audit WHERE {where} ORDER BY seq")


@pytest.fixture(params=["sqlite", "postgresql"])
def archive(request):
    """Tests take it before `server`, so that the database outlives the server."""
    return Archive(request.param, request)


def detail_fields(detail):
    """'role=R affiliation=A [reason=X] [node=N] nick=NICK' as a dict (the nick is last and
    may hold anything)."""
    head, nick = detail.split(" nick=", 1)
    out = dict(kv.split("=", 1) for kv in head.split(" "))
    out["nick"] = nick
    return out


def occupancy(events, records):
    """For each room message record (by body): the nicks in the room when it was recorded,
    replaying the room-join / room-leave events in one order with the records (ts_us: one
    clock for both chains)."""
    timeline = sorted([(e["ts_us"], "e", e) for e in events] +
                      [(r["ts_us"], "m", r) for r in records], key=lambda t: t[0])
    assert len({t[0] for t in timeline}) == len(timeline), "two entries at one time"
    inside, out = set(), {}
    for _, kind, x in timeline:
        if kind == "m":
            out[x["body"]] = sorted(inside)
        elif x["event"] == "room-join":
            inside.add(detail_fields(x["detail"])["nick"])
        else:
            inside.discard(detail_fields(x["detail"])["nick"])
    return out


# --------------------------------------------------------------------------- rooms

def test_room_occupants_joins_and_leaves_in_order_with_room_messages(archive, server, run):
    srv = server(extra=archive.extra())
    rjid = "ledger@conference.localhost"

    async def scenario():
        cl = clients_for(srv)
        a, b, c, d = await logins(cl, "alice", "bob", "carol", "dave")
        await create(a, "ledger", "alice")
        await join(b, rjid, "bob")
        await join(c, rjid, "carol")
        groupchat(a, rjid, "m1 all three", mid="gc-1")
        for x in (a, b, c):
            await x.wait_for("message", gc_body(rjid, "m1 all three"))
        # kicked
        await a.plugin["xep_0045"].set_role(rjid, "carol", "none", reason="be nice", timeout=5)
        await a.wait_for("mucp", presence_of(rjid, "carol", "unavailable"))
        # dave joins, and his client goes away without leaving: disconnected
        await join(d, rjid, "dave the diver")
        groupchat(b, rjid, "m2 with dave")
        for x in (a, b, d):
            await x.wait_for("message", gc_body(rjid, "m2 with dave"))
        d.abort()
        p = await a.wait_for("mucp", presence_of(rjid, "dave the diver", "unavailable"))
        assert p.xml.find(f"{{{NS_NODE}}}session-ended") is None  # the mark is the server's
        # bob leaves himself: left, even when his presence claims the server's mark
        b.send_raw(f"<presence to='{rjid}/bob' type='unavailable'>"
                   f"<session-ended xmlns='{NS_NODE}'/></presence>")
        p = await a.wait_for("mucp", presence_of(rjid, "bob", "unavailable"))
        assert p.xml.find(f"{{{NS_NODE}}}session-ended") is None
        # back in, then banned
        await join(b, rjid, "bob")
        await a.plugin["xep_0045"].set_affiliation(rjid, "outcast", jid="bob@localhost",
                                                   reason="spam", timeout=5)
        await b.wait_for("mucp", lambda p: presence_of(rjid, "bob", "unavailable")(p) and
                         p["muc"]["affiliation"] == "outcast")
        groupchat(a, rjid, "m3 alone")
        await a.wait_for("message", gc_body(rjid, "m3 alone"))
        await a.plugin["xep_0045"].destroy(rjid, "done", timeout=5)
        return await wait_rows(lambda: archive.audit(
            srv, "event IN ('room-join', 'room-leave')"), 10)
    events = run(scenario)

    assert all(e["target"] == rjid for e in events), events
    got = [(e["event"], e["actor"], detail_fields(e["detail"]).get("reason"),
            detail_fields(e["detail"])["nick"]) for e in events]
    assert got == [
        ("room-join", "alice@localhost/alice", None, "alice"),
        ("room-join", "bob@localhost/bob", None, "bob"),
        ("room-join", "carol@localhost/carol", None, "carol"),
        ("room-leave", "carol@localhost/carol", "kicked", "carol"),
        ("room-join", "dave@localhost/dave", None, "dave the diver"),
        ("room-leave", "dave@localhost/dave", "disconnected", "dave the diver"),
        ("room-leave", "bob@localhost/bob", "left", "bob"),
        ("room-join", "bob@localhost/bob", None, "bob"),
        ("room-leave", "bob@localhost/bob", "banned", "bob"),
        ("room-leave", "alice@localhost/alice", "room-destroyed", "alice"),
    ], got
    fields = [detail_fields(e["detail"]) for e in events]
    assert (fields[0]["role"], fields[0]["affiliation"]) == ("moderator", "owner")
    assert (fields[1]["role"], fields[1]["affiliation"]) == ("participant", "none")
    assert fields[8]["affiliation"] == "outcast"  # at the time of the ban
    assert all("node" not in f for f in fields)  # one server: nobody joined from a node

    recs = archive.messages(srv, f"recipient = {lit(rjid)}")
    assert [(r["body"], r["type"], r["kind"], r["outcome"]) for r in recs] == [
        ("m1 all three", "groupchat", "message", "delivered"),
        ("m2 with dave", "groupchat", "message", "delivered"),
        ("m3 alone", "groupchat", "message", "delivered")], recs
    assert (recs[0]["sender"], recs[0]["msg_id"]) == ("alice@localhost/alice", "gc-1")
    assert recs[1]["sender"] == "bob@localhost/bob"
    # who was in the room when each message was sent, from the archive alone
    assert occupancy(events, recs) == {
        "m1 all three": ["alice", "bob", "carol"],
        "m2 with dave": ["alice", "bob", "dave the diver"],
        "m3 alone": ["alice"]}
    p = assert_verifies(srv)
    assert "messages: all" in p.stdout and "audit: all" in p.stdout, p.stdout


def test_room_occupant_closing_its_stream_is_disconnected(archive, server, run):
    """A client that ends its stream without leaving the room (the server's unavailable
    presence, not the client's) leaves it 'disconnected'."""
    srv = server(extra=archive.extra())

    async def scenario():
        cl = clients_for(srv)
        a, = await logins(cl, "alice")
        await create(a, "standing", "alice", config={"persistentroom": "1"})
        await a.close()
        return await wait_rows(lambda: archive.audit(srv, "event LIKE 'room-%'"), 2)
    events = run(scenario)
    assert [(e["event"], e["actor"], detail_fields(e["detail"]).get("reason"))
            for e in events] == [("room-join", "alice@localhost/alice", None),
                                 ("room-leave", "alice@localhost/alice", "disconnected")], events
    assert srv.stop() == []
    assert_verifies(srv)


def test_subject_column_one_to_one_and_room(archive, server, run):
    srv = server(extra=archive.extra())
    rjid = "topics@conference.localhost"

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = record_raw(await cl.login("bob", "b"))  # slixmpp hides messages without a body
        m = a.make_message(mto="bob@localhost/b", mbody="see the numbers", mtype="chat")
        m["subject"] = "Quarterly report"
        m["id"] = "subj-1"
        m.send()
        await b.wait_for("message", lambda m: m["id"] == "subj-1")
        # a subject alone (no body) is recorded too
        a.send_raw("<message to='bob@localhost/b' type='normal' id='subj-2'>"
                   "<subject>Only a subject</subject></message>")
        await b.wait_for("mucm", lambda m: m["id"] == "subj-2")
        a2 = record_raw(await cl.login("alice", "muc", plugins=(
            "xep_0030", "xep_0004", "xep_0045", "xep_0203")))
        await create(a2, "topics", "alice")
        a2.plugin["xep_0045"].set_subject(rjid, "Release 2.0")
        await a2.wait_for("mucm", lambda m: m["subject"] == "Release 2.0")
        await exchange(a, b, "plain, no subject")
    run(scenario)
    rows = archive.messages(srv, "msg_id IN ('subj-1', 'subj-2')")
    assert [(r["msg_id"], r["subject"], r["body"]) for r in rows] == [
        ("subj-1", "Quarterly report", "see the numbers"),
        ("subj-2", "Only a subject", None)], rows
    room = archive.messages(srv, f"recipient = {lit(rjid)}")
    assert [(r["type"], r["subject"], r["body"]) for r in room] == \
        [("groupchat", "Release 2.0", None)], room
    plain = archive.messages(srv, "body = 'plain, no subject'")
    assert len(plain) == 1 and plain[0]["subject"] is None, plain
    assert_verifies(srv)


# --------------------------------------------------------------------------- one-to-one

def test_encrypted_message_metadata_only(archive, server, run):
    srv = server(extra=archive.extra())

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        a.send_raw(
            "<message to='bob@localhost/b' type='chat' id='omemo-1'>"
            f"<encrypted xmlns='{NS_OMEMO}'><header sid='27183'>"
            "<keys jid='bob@localhost'><key rid='31415'>b64keymaterial</key></keys>"
            "<iv>aXZpdml2</iv></header><payload>Y2lwaGVydGV4dA==</payload></encrypted>"
            "<body>This message is OMEMO encrypted (fallback)</body></message>")
        await b.wait_for("message", lambda m: m["id"] == "omemo-1")
    run(scenario)
    rows = archive.messages(srv, "msg_id = 'omemo-1'")
    assert len(rows) == 1, rows
    r = rows[0]
    assert (r["encrypted"], r["enc_ns"], r["body"], r["outcome"]) == \
        (1, NS_OMEMO, None, "delivered")
    assert (r["sender"], r["recipient"], r["type"]) == \
        ("alice@localhost/a", "bob@localhost/b", "chat")
    assert "<body" not in r["stanza"] and "fallback" not in r["stanza"]
    assert "Y2lwaGVydGV4dA==" in r["stanza"]
    assert_verifies(srv)


def test_policy_blocked_message_recorded(archive, server, run):
    srv = server(extra=archive.extra())
    p = srv.ctl("policy", "set", "--user", "alice@localhost", "e2e_plain", "false")
    assert p.returncode == 0, p.stderr

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        a.send_message(mto="bob@localhost/b", mbody="plain-refused", mtype="chat")
        err = await a.wait_for("message_error", lambda m: m["body"] == "plain-refused", 5)
        assert condition(err) == "policy-violation"
        await b.expect_none("message", lambda m: m["body"] == "plain-refused", 0.5)
    run(scenario)
    rows = archive.messages(srv, "body = 'plain-refused'")
    assert len(rows) == 1, rows
    assert (rows[0]["outcome"], rows[0]["sender"], rows[0]["recipient"]) == \
        ("blocked-policy", "alice@localhost/a", "bob@localhost/b")
    assert "e2e_plain=false" in rows[0]["reason"]
    # the policy change itself is in the audit chain of the same store
    assert archive.audit(srv, "target = 'alice@localhost' AND event LIKE 'policy%'"), \
        archive.audit(srv, "1 = 1")
    assert_verifies(srv)


# --------------------------------------------------------------------------- files

def test_file_upload_and_download_recorded(archive, server, run):
    srv = upload_server(server, extra=archive.extra())
    data = b"compliance archive test payload\n" * 100

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        put, get = await request_slot(a, "minutes.txt", len(data), ctype="text/plain",
                                      recipient="bob@localhost")
        assert (await asyncio.to_thread(https, srv, "PUT", put, data))[0] == 201
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == data
        return await wait_rows(lambda: archive.messages(srv, "kind = 'file'"), 2)
    rows = run(scenario)
    sha = hashlib.sha256(data).hexdigest()
    assert [(r["type"], r["outcome"]) for r in rows] == \
        [("upload", "stored"), ("download", "downloaded")], rows
    up, down = rows
    assert (up["sender"], up["recipient"], up["file_name"], up["file_size"], up["file_type"],
            up["file_sha256"]) == ("alice@localhost/a", "bob@localhost", "minutes.txt",
                                   len(data), "text/plain", sha)
    assert (down["file_name"], down["file_sha256"], down["recipient"]) == \
        ("minutes.txt", sha, "bob@localhost")
    assert "127.0.0.1" in down["stanza"]
    assert_verifies(srv)


# --------------------------------------------------------------------------- several nodes

def test_room_on_another_node_home_records_occupants_once(cluster, run):
    """A room homed on node2 with an occupant on node1: node2 records alice's joins and
    leaves (with the node she joined from), node1 none; her client going away on node1
    reaches node2 as 'disconnected', her own leave as 'left' even with the node link's
    mark forged into it; whoever is still in the room when its home stops leaves it then."""
    c = cluster(2)
    n1, n2 = c.nodes
    rjid = f"crossing@conference.{NODES_DOMAIN}"

    def room_events(node):
        return sqlite_rows(node, "SELECT * FROM audit WHERE event LIKE 'room-%' ORDER BY seq")

    async def scenario():
        bob = await member(n2, "bob")
        await node_join(bob, rjid, "bob")
        await instant(bob, rjid)
        alice = await member(n1, "alice")
        await node_join(alice, rjid, "alice")
        gc(bob, rjid, "x1")
        await until(lambda: any(m["body"] == "x1" for m in alice.events["mucm"]), 10, "x1")
        alice.send_raw(f"<presence to='{rjid}/alice' type='unavailable'>"
                       f"<session-ended xmlns='{NS_NODE}'/></presence>")
        await bob.wait_for("mucp", unavailable(rjid, "alice"), timeout=10)
        bob.events["mucp"].clear()
        await node_join(alice, rjid, "alice")
        alice.abort()
        await bob.wait_for("mucp", unavailable(rjid, "alice"), timeout=10)
        alice2 = await member(n1, "alice", resource="two")
        await node_join(alice2, rjid, "alice2")
        await wait_rows(lambda: room_events(n2), 6, 10)
        assert n2.stop() == []
        await alice2.close()
        await bob.close()
    run(scenario, timeout=120)

    events = room_events(n2)
    got = [(e["event"], e["actor"], detail_fields(e["detail"]).get("reason"),
            detail_fields(e["detail"]).get("node")) for e in events]
    assert got == [
        ("room-join", f"bob@{NODES_DOMAIN}/r", None, None),
        ("room-join", f"alice@{NODES_DOMAIN}/r", None, "node1"),
        ("room-leave", f"alice@{NODES_DOMAIN}/r", "left", "node1"),
        ("room-join", f"alice@{NODES_DOMAIN}/r", None, "node1"),
        ("room-leave", f"alice@{NODES_DOMAIN}/r", "disconnected", "node1"),
        ("room-join", f"alice@{NODES_DOMAIN}/two", None, "node1"),
        ("room-leave", f"bob@{NODES_DOMAIN}/r", "disconnected", None),
        ("room-leave", f"alice@{NODES_DOMAIN}/two", "server-stop", "node1"),
    ], got
    assert all(e["target"] == rjid for e in events)
    assert room_events(n1) == []  # not recorded twice
    # The chains verify. (Not who signed them: nodes_util's parleyctl wrote the first
    # audit checkpoint with the key of `parleyctl init`, before the node got its own.)
    for node in (n1, n2):
        node.set_config(["cert_file = no-such.crt"])
        try:
            p = assert_verifies(node)
        finally:
            node.set_config([f"cert_file = {node.name}.crt"])
        assert "audit: all" in p.stdout, p.stdout
