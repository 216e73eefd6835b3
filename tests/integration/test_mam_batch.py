"""The users' and rooms' archive commits in groups (src/server/mam.c): the messages one
pass of the event loop archives are committed in one transaction before the server
sleeps or writes anything out. These tests hold the batch to what one transaction per
message guaranteed: every message of a burst archived exactly once, in order, under the
stanza-id its recipient saw; a query right behind the messages (in the same TCP write)
sees them; a room deleted right behind its messages keeps none of them; a commit that
the store refuses is kept and retried, not lost. SQLite and PostgreSQL."""
import asyncio
import sqlite3
import xml.etree.ElementTree as ET

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import USERS, clients_for
from nodes_util import pg_server, pg_uri  # noqa: F401
from test_muc import create, room
from test_muc_archive import mam_login, rows

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_SID = "urn:xmpp:sid:0"
# More rows than the batch commits at once (256: each message is archived for its sender
# and its recipient), so the burst also crosses an early commit.
BURST = 150


async def recorder(cl, user, resource):
    """A client that records archive results and IQ answers straight from the stream."""
    c = cl.make(user, resource)
    c.events["mam"], c.events["iq"] = [], []
    c.register_handler(Callback("mam-result",
                                MatchXPath(f"{{jabber:client}}message/{{{NS_MAM}}}result"),
                                lambda m: c.events["mam"].append(m)))
    c.register_handler(Callback("iq-answer", MatchXPath("{jabber:client}iq"),
                                lambda iq: c.events["iq"].append(iq)))
    await cl.connect(c)
    c.send_presence()
    await asyncio.sleep(0.2)
    return c


def query_xml(qid, to=None, max_=250):
    attr = f" to='{to}'" if to else ""
    return (f"<iq type='set' id='{qid}'{attr}><query xmlns='{NS_MAM}' queryid='{qid}'>"
            f"<set xmlns='{NS_RSM}'><max>{max_}</max></set></query></iq>")


async def answered(c, qid, timeout=20):
    """The archive results of query qid, once its IQ result arrived (in order)."""
    iq = await c.wait_for("iq", lambda i: i["id"] == qid, timeout, what=f"id={qid}")
    assert iq["type"] == "result", iq
    res = [m for m in c.events["mam"]
           if m.xml.find(f"{{{NS_MAM}}}result").get("queryid") == qid]
    return [(r.xml.find(f"{{{NS_MAM}}}result").get("id"),
             r.xml.find(f".//{{jabber:client}}body").text) for r in res]


async def burst_then_query(srv):
    cl = clients_for(srv)
    alice = await recorder(cl, "alice", "desk")
    bob = await cl.login("bob", "b")
    texts = [f"burst {i}" for i in range(BURST)]
    # All the messages and alice's query of her own archive in one write: the query is
    # read in the same pass of the loop as the last messages, before any commit.
    alice.send_raw("".join(f"<message to='bob@localhost' type='chat' id='b{i}'>"
                           f"<body>{t}</body></message>" for i, t in enumerate(texts)) +
                   query_xml("q-alice"))
    got = await answered(alice, "q-alice")
    assert [body for _, body in got] == texts, got[:5]
    assert len({sid for sid, _ in got}) == BURST
    # bob received each with the stanza-id of his archive, which has them in order once.
    seen = []
    for t in texts:
        m = await bob.wait_for("message", lambda m, t=t: m["body"] == t, 20)
        tag = m.xml.find(f"{{{NS_SID}}}stanza-id")
        assert tag is not None and tag.get("by") == "bob@localhost", ET.tostring(m.xml)
        seen.append(tag.get("id"))
    bq = await recorder(cl, "bob", "q")
    bq.send_raw(query_xml("q-bob"))
    assert await answered(bq, "q-bob") == list(zip(seen, texts))


# Without the compliance archive: in its strict mode a message is archived only when its
# record is written, at the end of the loop's pass, after a query read with it.
def test_mam_batch_burst_archived_once_in_order_and_seen_by_a_query_in_the_same_write(
        server, run):
    srv = server(extra=["compliance = no"])
    run(burst_then_query, srv)


def test_mam_batch_burst_on_postgresql(server, run, pg_uri):  # noqa: F811
    srv = server(extra=[f"store = {pg_uri}", "compliance = no"], users=dict(USERS))
    run(burst_then_query, srv)


def test_mam_batch_room_deleted_right_behind_its_messages_keeps_none(server, run):
    srv = server(extra=["compliance = no"])  # room messages archived as they are read

    async def scenario():
        cl = clients_for(srv)
        a = await mam_login(cl, "alice")
        rjid = await create(a, "fleeting", "alice")
        # The messages and the leave that ends the temporary room arrive together: the
        # rows still wait in the batch when the room's archive is deleted.
        a.send_raw("".join(f"<message to='{rjid}' type='groupchat'><body>last words {i}"
                           "</body></message>" for i in range(5)) +
                   f"<presence to='{rjid}/alice' type='unavailable'/>")
        await a.wait_for("mucp", lambda p: p["from"].bare == rjid and p["type"] == "unavailable")
        # a later pass of the loop, with a commit before it, has certainly run
        await a.get_roster()
    run(scenario)
    assert rows(srv, room("fleeting")) == 0


def test_mam_batch_commit_refused_by_the_store_is_kept_and_retried(srv, run):
    async def scenario():
        cl = clients_for(srv)
        alice = await recorder(cl, "alice", "desk")
        bob = await cl.login("bob", "b")
        # Another writer holds the database: the archive's commit fails after the busy
        # timeout; the message is delivered anyway and waits in memory.
        db = sqlite3.connect(f"{srv.dir}/data/parley.db", isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            alice.send_message(mto="bob@localhost", mbody="while locked", mtype="chat")
            await bob.wait_for("message", lambda m: m["body"] == "while locked", 20)
            for _ in range(100):
                if "kept for a retry" in srv.log_text():
                    break
                await asyncio.sleep(0.1)
            assert "kept for a retry" in srv.log_text()
        finally:
            db.execute("ROLLBACK")
            db.close()
        for _ in range(100):
            if "kept after a failed commit are now stored" in srv.log_text():
                break
            await asyncio.sleep(0.1)
        assert "kept after a failed commit are now stored" in srv.log_text()
        alice.send_raw(query_xml("q-after"))
        assert [b for _, b in await answered(alice, "q-after")] == ["while locked"]
    run(scenario)
    assert "archiving a message" not in srv.log_text()


def test_mam_batch_xep0198_ack_and_delivery_leave_after_the_commit(srv, run):
    """An acknowledged (XEP-0198) or delivered message is committed to the archive, as
    when each message had its own transaction: while another writer holds the database
    the commit waits, and so do the <a/> and the delivery."""
    def archived():
        db = sqlite3.connect(f"{srv.dir}/data/parley.db")
        try:
            return db.execute("SELECT count(*) FROM mam WHERE owner = 'alice@localhost'"
                              ).fetchone()[0]
        finally:
            db.close()

    async def scenario():
        cl = clients_for(srv)
        bob = await cl.login("bob", "b")
        seen_by_bob = []
        bob.add_event_handler("message", lambda m: seen_by_bob.append(archived()))
        alice = cl.make("alice", "sm", plugins=("xep_0198",))
        enabled = asyncio.get_running_loop().create_future()
        alice.add_event_handler("sm_enabled", lambda _: enabled.done() or enabled.set_result(1))
        await cl.connect(alice)
        await asyncio.wait_for(enabled, 10)
        acks = []
        alice.register_handler(Callback("count-at-ack", MatchXPath("{urn:xmpp:sm:3}a"),
                                        lambda a: acks.append(archived())))
        db = sqlite3.connect(f"{srv.dir}/data/parley.db", isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            alice.send_raw("<message to='bob@localhost/b' type='chat'><body>acked</body>"
                           "</message><r xmlns='urn:xmpp:sm:3'/>")
            await asyncio.sleep(1.0)
        finally:
            db.execute("ROLLBACK")
            db.close()
        for _ in range(100):
            if acks and seen_by_bob:
                break
            await asyncio.sleep(0.1)
        assert acks and seen_by_bob, (acks, seen_by_bob)
        assert all(n == 1 for n in acks), acks
        assert seen_by_bob == [1]
    run(scenario)
