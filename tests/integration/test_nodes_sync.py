"""A user's sessions spread over the nodes of one domain (docs/federation.md): message
carbons (XEP-0280) between devices on different nodes, exactly once; messages to the bare
JID by priority over every node (RFC 6121 8.5.2.1.1); PEP (XEP-0163) notifications to
contacts on other nodes; XEP-0198 resumption on another node than the one that held the
session (the session is handed over over the node link), and prompt <failed/> for ids
that name a dead node or are forged.

PostgreSQL: PARLEY_TEST_PG_URI, else a cluster of our own (nodes_util.py)."""
import asyncio
import re
import socket
import subprocess
import time
import xml.etree.ElementTree as ET

from conftest import HOST, Client, RawStream, client_ctx
from nodes_util import DOMAIN, LEASE, USERS, cluster, on, pg_server, pg_uri, subscribe  # noqa: F401
from test_compliance import records_with
from test_pep import NS_MOOD, options, payload
from test_stream_management import NS_SM, StanzaCounter, kill

CARBONS = ("xep_0280",)
PEP = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163")
NS_TUNE = "http://jabber.org/protocol/tune"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


async def client(srv, user, resource, plugins=(), priority=None, presence=True,
                 interests=()):
    """A slixmpp session on node srv (with plugins); caps announce NODE+notify for each
    interest before the first presence."""
    c = Client(f"{user}@{DOMAIN}/{resource}", USERS[user], srv.ca, plugins=plugins)
    c.plain = []  # bodies of plain messages, in order (wait_for consumes c.events)
    c.add_event_handler("message", lambda m: c.plain.append(m["body"]) if m["body"] else None)
    c.session = asyncio.get_running_loop().create_future()
    c.connect((HOST, srv.c2s_port), force_starttls=True)
    await asyncio.wait_for(asyncio.shield(c.session), 15)
    await asyncio.wait_for(c.get_roster(), 15)
    if interests:
        c.events["pubsub"] = []
        c.add_event_handler("pubsub_publish", lambda m: c.events["pubsub"].append(m))
        for ns in interests:
            c["xep_0163"].add_interest(ns)
        await c["xep_0115"].update_caps(broadcast=False)
    if presence:
        if priority is None:
            c.send_presence()
        else:
            c.send_presence(ppriority=priority)
    await asyncio.sleep(0.4)  # the presence reaches the directory
    return c


def record_carbons(c):
    got = {"sent": [], "received": []}
    c.add_event_handler("carbon_sent", lambda m: got["sent"].append(m["carbon_sent"]["body"]))
    c.add_event_handler("carbon_received",
                        lambda m: got["received"].append(m["carbon_received"]["body"]))
    return got


async def wait_until(pred, timeout=10.0, what=""):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def bodies(c):
    """Bodies of the plain messages c received (a carbon has no body of its own)."""
    return list(c.plain)


def archive_rows(srv, body):
    """owner -> rows in the shared archive holding a message with this body."""
    uri = [ln.split("=", 1)[1].strip() for ln in open(srv.conf)
           if ln.startswith("store")][0]
    out = subprocess.run(["psql", uri, "-At", "-c",
                          f"SELECT owner, count(*) FROM mam WHERE stanza LIKE '%>{body}<%' "
                          "GROUP BY owner ORDER BY owner"],
                         capture_output=True, text=True, timeout=30).stdout
    return dict(ln.split("|") for ln in out.split())


# --------------------------------------------------------------------------- carbons

def test_carbons_across_nodes_exactly_once(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes

    async def scenario():
        a1 = await client(n1, "alice", "one", CARBONS, priority=5)
        a1b = await client(n1, "alice", "oneb", CARBONS, priority=0)  # same node as a1
        a3 = await client(n3, "alice", "three", CARBONS, priority=1)
        bob = await client(n2, "bob", "b")
        for x in (a1, a1b, a3):
            await x["xep_0280"].enable()
        got = {x: record_carbons(x) for x in (a1, a1b, a3)}

        # sent on node1: copies to the other devices, on node1 and node3
        a1.send_message(mto=BOB, mbody="s1", mtype="chat")
        await bob.wait_for("message", lambda m: m["body"] == "s1", timeout=10)
        await wait_until(lambda: "s1" in got[a3]["sent"] and "s1" in got[a1b]["sent"],
                         what="sent copies of s1")
        # to the node1 resource: received copies to the others
        bob.send_message(mto=f"{ALICE}/one", mbody="r1", mtype="chat")
        await a1.wait_for("message", lambda m: m["body"] == "r1", timeout=10)
        await wait_until(lambda: "r1" in got[a3]["received"] and "r1" in got[a1b]["received"],
                         what="received copies of r1")
        # to the bare JID: the highest priority (5, node1) gets it, the others a copy
        bob.send_message(mto=ALICE, mbody="r2", mtype="chat")
        await a1.wait_for("message", lambda m: m["body"] == "r2", timeout=10)
        await wait_until(lambda: "r2" in got[a3]["received"] and "r2" in got[a1b]["received"],
                         what="received copies of r2")
        # sent on node3: both node1 devices get a copy
        a3.send_message(mto=BOB, mbody="s2", mtype="chat")
        await bob.wait_for("message", lambda m: m["body"] == "s2", timeout=10)
        await wait_until(lambda: "s2" in got[a1]["sent"] and "s2" in got[a1b]["sent"],
                         what="sent copies of s2")
        # to the node3 resource from node2: copies to both node1 devices
        bob.send_message(mto=f"{ALICE}/three", mbody="r3", mtype="chat")
        await a3.wait_for("message", lambda m: m["body"] == "r3", timeout=10)
        await wait_until(lambda: "r3" in got[a1]["received"] and "r3" in got[a1b]["received"],
                         what="received copies of r3")
        await asyncio.sleep(1.5)  # a duplicate would have arrived by now

        assert got[a1] == {"sent": ["s2"], "received": ["r3"]}, got[a1]
        assert got[a1b] == {"sent": ["s1", "s2"], "received": ["r1", "r2", "r3"]}, got[a1b]
        assert got[a3] == {"sent": ["s1"], "received": ["r1", "r2"]}, got[a3]
        assert bodies(a1) == ["r1", "r2"], bodies(a1)
        assert bodies(a1b) == [] and bodies(a3) == ["r3"], (bodies(a1b), bodies(a3))
        for x in (a1, a1b, a3, bob):
            await x.close()

    run(scenario, timeout=120)
    # one archive row per message and owner, whichever nodes delivered and copied it
    for body in ("s1", "r1", "r2", "s2", "r3"):
        deadline = time.monotonic() + 10
        while archive_rows(n1, body) != {ALICE: "1", BOB: "1"} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert archive_rows(n1, body) == {ALICE: "1", BOB: "1"}, (body, archive_rows(n1, body))
        # and one compliance record, on the node where it entered
        records = [len(records_with(srv, body)) for srv in c.nodes]
        assert sum(records) == 1, (body, records)


def test_bare_jid_delivery_by_priority_across_nodes(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes

    async def scenario():
        a1 = await client(n1, "alice", "one", priority=1)
        a3 = await client(n3, "alice", "three", priority=5)
        bob = await client(n2, "bob", "b")
        # the highest priority is on node3: only it gets the message
        bob.send_message(mto=ALICE, mbody="m1", mtype="chat")
        await a3.wait_for("message", lambda m: m["body"] == "m1", timeout=10)
        # node1 now has the highest priority, and the sender is on node1 itself
        a1.send_presence(ppriority=10)
        await asyncio.sleep(0.5)
        bob.send_message(mto=ALICE, mbody="m2", mtype="chat")
        await a1.wait_for("message", lambda m: m["body"] == "m2", timeout=10)
        carol = await client(n1, "carol", "c")
        carol.send_message(mto=ALICE, mbody="m3", mtype="chat")
        await a1.wait_for("message", lambda m: m["body"] == "m3", timeout=10)
        # equal priorities on two nodes: both get it
        a3.send_presence(ppriority=10)
        await asyncio.sleep(0.5)
        bob.send_message(mto=ALICE, mbody="m4", mtype="chat")
        await a1.wait_for("message", lambda m: m["body"] == "m4", timeout=10)
        await a3.wait_for("message", lambda m: m["body"] == "m4", timeout=10)
        await asyncio.sleep(1)
        assert bodies(a1) == ["m2", "m3", "m4"], bodies(a1)
        assert bodies(a3) == ["m1", "m4"], bodies(a3)
        # online only on node3 (priority 0): delivered there, never stored offline
        await a1.close()
        a3.send_presence(ppriority=0)
        await asyncio.sleep(0.5)
        carol.send_message(mto=ALICE, mbody="m5", mtype="chat")
        await a3.wait_for("message", lambda m: m["body"] == "m5", timeout=10)
        a1 = await client(n1, "alice", "again")
        await a1.expect_none("message", lambda m: m["body"] == "m5", duration=1.5,
                             what="m5 from offline storage")
        for x in (a1, a3, bob, carol):
            await x.close()

    run(scenario, timeout=120)


# --------------------------------------------------------------------------- PEP

def test_pep_notifications_across_nodes(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes

    async def scenario():
        alice = await client(n1, "alice", "a", PEP, interests=[NS_TUNE])
        alice3 = await client(n3, "alice", "a3", PEP, interests=[NS_TUNE])
        bob = await client(n2, "bob", "b", PEP, interests=[NS_TUNE])
        bob_quiet = await client(n3, "bob", "q", PEP)  # no +notify
        carol = await client(n3, "carol", "c", PEP, interests=[NS_TUNE, NS_MOOD])
        await subscribe(bob, BOB, alice, ALICE)  # bob receives alice's presence
        tune = ET.Element(f"{{{NS_TUNE}}}tune")
        tune.text = "Song One"
        await alice["xep_0060"].publish(ALICE, NS_TUNE, id="t1", payload=tune, timeout=10)
        ev = await bob.wait_for("pubsub", lambda m: m["from"].bare == ALICE, timeout=10,
                                what="tune from alice on node1")
        item = ev["pubsub_event"]["items"]["substanzas"][0]
        assert item["id"] == "t1" and item["payload"].text == "Song One"
        await alice.wait_for("pubsub", lambda m: m["from"].bare == ALICE, timeout=10)
        await alice3.wait_for("pubsub", lambda m: m["from"].bare == ALICE, timeout=10,
                              what="tune on the owner's device on node3")
        # an open node reaches anyone interested, on every node
        await alice["xep_0060"].publish(ALICE, NS_MOOD, id="m1", payload=payload(NS_MOOD, "ok"),
                                        options=options(alice, access_model="open"),
                                        timeout=10)
        ev = await carol.wait_for("pubsub", lambda m: m["from"].bare == ALICE, timeout=10,
                                  what="open mood from alice on node1")
        assert ev["pubsub_event"]["items"]["node"] == NS_MOOD
        await asyncio.sleep(1)
        assert carol.events["pubsub"] == [], carol.events["pubsub"]  # no tune: no presence
        # the last item when bob comes online on another node (the items are shared)
        bob3 = await client(n3, "bob", "late", PEP, interests=[NS_TUNE])
        ev = await bob3.wait_for("pubsub", lambda m: m["from"].bare == ALICE, timeout=10,
                                 what="last item at sign-in on node3")
        assert ev["pubsub_event"]["items"]["substanzas"][0]["id"] == "t1"
        # and any node serves the items
        iq = await bob3["xep_0060"].get_items(ALICE, NS_TUNE, timeout=10)
        assert [it["id"] for it in iq["pubsub"]["items"]] == ["t1"]
        await asyncio.sleep(1)
        assert bob.events["pubsub"] == [] and bob3.events["pubsub"] == []
        assert "pubsub_event" not in str([m for m in bob_quiet.events["message"]])
        for x in (alice, alice3, bob, bob_quiet, bob3, carol):
            await x.close()

    run(scenario, timeout=120)


# --------------------------------------------------------------------------- XEP-0198

class NodeStream(RawStream):
    """A raw client stream to a node (the certificates name the cluster's domain)."""

    def __init__(self, srv, timeout=10.0):
        super().__init__(srv.c2s_port, timeout=timeout)
        self.srv = srv

    def authenticate(self, user):
        self.open_stream(to=DOMAIN)
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.read_until(r"<proceed\b[^>]*/>")
        ctx = client_ctx(self.srv)
        self.tls = ctx.wrap_socket(self.sock, server_hostname=DOMAIN)
        self.sock = self.tls
        self.open_stream(to=DOMAIN)
        assert "<success" in self.sasl_plain(user, USERS[user])
        return self.open_stream(to=DOMAIN)

    def bind(self, resource):
        self.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{resource}</resource></bind></iq>")
        self.read_until(r"<iq\b[^>]*\bid=['\"]b1['\"].*?</iq>")

    def resume(self, previd, h):
        self.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>")


def sm_login(srv, user, resource):
    rs = NodeStream(srv)
    rs.authenticate(user)
    rs.bind(resource)
    rs.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    text = rs.read_until(r"<enabled\b[^>]*/>")
    previd = re.search(r"\bid=['\"]([^'\"]+)", text).group(1)
    rs.send("<presence/>")
    return rs, previd


def test_resume_on_another_node(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes
    rs, previd = sm_login(n1, "alice", "phone")
    assert previd.endswith(".node1"), previd
    counter = StanzaCounter(rs)

    async def scenario():
        bob = await client(n3, "bob", "b")
        for i in range(1, 4):
            bob.send_message(mto=f"{ALICE}/phone", mbody=f"m{i}", mtype="chat")
        await asyncio.to_thread(counter.pump, lambda s: len(s.bodies) == 3)
        h = counter.h  # what the client really received (presence included)
        kill(rs)  # m1..m3 received, never acknowledged; node1 keeps the session
        await asyncio.to_thread(n1.wait_log, r"session kept \d+ s for resumption")
        for i in range(4, 6):
            bob.send_message(mto=f"{ALICE}/phone", mbody=f"m{i}", mtype="chat")
        await asyncio.sleep(0.5)

        rs2 = NodeStream(n2)
        feats = await asyncio.to_thread(rs2.authenticate, "alice")
        assert NS_SM in feats
        rs2.resume(previd, h - 1)  # the client says it has all but m3
        text = await asyncio.to_thread(rs2.read_until, r"<resumed\b[^>]*/>|<failed\b.*?</failed>")
        assert "<resumed" in text and f"previd='{previd}'" in text.replace('"', "'"), text
        c2 = StanzaCounter(rs2)
        await asyncio.to_thread(c2.pump, lambda s: len(s.bodies) == 3)
        assert c2.bodies == ["m3", "m4", "m5"], c2.bodies
        # the directory names node2 now: new messages for the full JID arrive there
        bob.send_message(mto=f"{ALICE}/phone", mbody="m6", mtype="chat")
        await asyncio.to_thread(c2.pump, lambda s: len(s.bodies) == 4)
        await asyncio.sleep(1)
        c2.answer_ack_requests()
        rs2.sock.settimeout(0.5)
        try:
            c2.feed(rs2.sock.recv(65536))
        except (socket.timeout, OSError):
            pass
        assert c2.bodies == ["m3", "m4", "m5", "m6"], c2.bodies
        # alice is still available for bob (no unavailable presence in between)
        assert not [p for p in bob.events["presence"]
                    if str(p["from"]) == f"{ALICE}/phone" and p["type"] == "unavailable"]
        rs2.send("</stream:stream>")
        rs2.close()
        await bob.close()

    run(scenario, timeout=120)
    n1.wait_log(r"alice@parley.test/phone: session handed over to another node")
    n2.wait_log(r"resumed alice@parley.test/phone, 3 stanzas sent again")


def test_resume_with_dead_node_or_forged_id_fails_promptly(cluster, run):
    c = cluster(2)
    n1, n2 = c.nodes
    rs, previd = sm_login(n1, "alice", "phone")
    assert re.fullmatch(r"[A-Za-z0-9]{24}\.node1", previd), previd  # names its node
    counter = StanzaCounter(rs)
    token = previd.split(".", 1)[0]
    bad_ids = [
        "garbage",
        "A" * 24 + ".node1",           # the form of ours, a live node, no such session
        token + ".node9",              # a node that is not one of ours
        token + ".node2",              # names the node asked, which does not have it
        token + "." + "x" * 300,       # too long a node name
        "<&>'" + "A" * 20 + ".node1",  # not our alphabet (escaped on the wire)
    ]

    def try_resume(srv, ids):
        out = []
        for bad in ids:
            rs2 = NodeStream(srv)
            rs2.authenticate("alice")
            esc = bad.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
                     .replace("'", "&apos;")
            rs2.resume(esc, 0)
            t0 = time.monotonic()
            text = rs2.read_until(r"<resumed\b[^>]*/>|<failed\b.*?</failed>|<failed\b[^>]*/>",
                                  timeout=8)
            out.append((bad, text, time.monotonic() - t0))
            # the stream goes on: a fresh bind works
            rs2.bind("fresh")
            rs2.close()
        return out

    async def scenario():
        bob = await client(n2, "bob", "b")
        for bad, text, _ in await asyncio.to_thread(try_resume, n2, bad_ids):
            assert "<failed" in text and "item-not-found" in text, (bad, text)
        # the session on node1 was not disturbed by any of it
        bob.send_message(mto=f"{ALICE}/phone", mbody="still-here", mtype="chat")
        await asyncio.to_thread(counter.pump, lambda s: "still-here" in s.bodies)
        # messages in flight when node1 dies: in the archive for the client to catch up
        bob.send_message(mto=f"{ALICE}/phone", mbody="in-flight", mtype="chat")
        await asyncio.to_thread(counter.pump, lambda s: "in-flight" in s.bodies)
        c.kill(n1)
        kill(rs)
        # within node1's lease node2 still asks it: the link fails, the client is told
        (bad, text, took), = await asyncio.to_thread(try_resume, n2, [previd])
        assert "<failed" in text and "item-not-found" in text, text
        # once the lease ran out node2 does not even ask
        deadline = time.monotonic() + LEASE * 4 + 5
        while time.monotonic() < deadline:
            line = [ln for ln in n2.ctl("node", "list").stdout.splitlines()
                    if ln.startswith("node1")]
            if line and "down" in line[0]:
                break
            await asyncio.sleep(0.5)
        (bad, text, took), = await asyncio.to_thread(try_resume, n2, [previd])
        assert "<failed" in text and "item-not-found" in text, text
        await bob.close()

    run(scenario, timeout=120)
    # the well-formed ids were put to node1, which knew no such session of alice's
    n2.wait_log(r"resumption of AAAAAAAAAAAAAAAAAAAAAAAA\.node1 on another node failed: "
                r"item-not-found")
    assert archive_rows(n2, "in-flight") == {ALICE: "1", BOB: "1"}
    assert n2.proc.poll() is None, "node2 went down"
