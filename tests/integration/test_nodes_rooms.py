"""A room with occupants on every node (docs/federation.md, "Rooms"): three parleyd nodes
of one domain sharing PostgreSQL, slixmpp clients with XEP-0045 on each. A room lives on
one node (its home, claimed in the store at first use); the others forward its traffic
there and the home sends to occupants over the node links. Messages reach every occupant
once and in one order, the room looks the same from every node, one compliance record is
kept per room message (at the home); a killed node's occupants leave the rooms homed
elsewhere; a room whose home dies is taken over by another node (persistent
configuration kept, occupants rejoin); forged room traffic over a node link is dropped.
"""
import asyncio
import time

from slixmpp.exceptions import PresenceError

from conftest import HOST, Client
from muc_util import PLUGINS, record_raw
from nodes_util import DOMAIN, LEASE, USERS, cluster, pg_server, pg_uri  # noqa: F401
from s2s_util import RawPeer, issue_cert

MUC = f"conference.{DOMAIN}"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"


async def member(srv, user, resource="r"):
    """A session on node srv with the MUC plugins; every presence and message is also
    recorded raw ('mucp', 'mucm': slixmpp hides some of a room's stanzas)."""
    c = record_raw(Client(f"{user}@{DOMAIN}/{resource}", USERS[user], srv.ca, plugins=PLUGINS))
    c.session = asyncio.get_running_loop().create_future()
    c.connect((HOST, srv.c2s_port), force_starttls=True)
    await asyncio.wait_for(asyncio.shield(c.session), 15)
    await asyncio.wait_for(c.get_roster(), 15)
    c.send_presence()
    await asyncio.sleep(0.3)  # the session reaches the directory
    return c


async def join(c, rjid, nick):
    return await c.plugin["xep_0045"].join_muc_wait(rjid, nick, timeout=10)


async def instant(c, rjid, fields=None):
    form = c.plugin["xep_0004"].make_form(ftype="submit")
    for var, value in (fields or {}).items():
        form.add_field(var=f"muc#roomconfig_{var}", value=value)
    await c.plugin["xep_0045"].set_room_config(rjid, form, timeout=10)


def codes(p):
    return p["muc"]["status_codes"]


def gc(c, rjid, body):
    c.make_message(mto=rjid, mbody=body, mtype="groupchat").send()


def bodies(c, rjid):
    return [m["body"] for m in c.events["mucm"]
            if m["type"] == "groupchat" and m["from"].bare == rjid and m["body"]]


def occupants(c, rjid):
    """The nicks c believes are in the room, from the presence it saw, in order."""
    present = {}
    for p in c.events["mucp"]:
        if p["from"].bare != rjid:
            continue
        if p["type"] == "unavailable":
            present.pop(p["from"].resource, None)
        elif p["type"] != "error":
            present[p["from"].resource] = True
    return sorted(present)


async def until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


def unavailable(rjid, nick):
    return lambda p: (p["from"].bare == rjid and p["from"].resource == nick and
                      p["type"] == "unavailable")


def compliance_hits(nodes, text):
    out = []
    for srv in nodes:
        lines = srv.ctl("compliance", "search", "--text", text).stdout.strip().splitlines()
        out += [(srv.name, ln) for ln in lines if ln.strip()]
    return out


async def wait_dead(node, name):
    """Until node's view of the cluster says name's lease ran out."""
    deadline = time.monotonic() + LEASE * 4 + 5
    while time.monotonic() < deadline:
        out = node.ctl("node", "list").stdout
        line = [ln for ln in out.splitlines() if ln.startswith(name)]
        if line and "down" in line[0]:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name} still alive for {node.name}")


def test_room_on_node2_with_occupants_on_every_node(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes
    rjid = f"hub@{MUC}"

    async def scenario():
        bob = await member(n2, "bob")
        alice = await member(n1, "alice")
        carol = await member(n3, "carol")
        pres, *_ = await join(bob, rjid, "bob")
        assert {110, 201} <= codes(pres), pres
        await instant(bob, rjid, {"roomname": "The Hub"})
        await join(alice, rjid, "alice")
        await join(carol, rjid, "carol")
        for x in (alice, bob, carol):
            await until(lambda x=x: occupants(x, rjid) == ["alice", "bob", "carol"], 10,
                        f"{x.boundjid} sees all three occupants")
        # a refused join from node3 gets its error back from the home on node2
        dup = await member(n3, "carol", resource="dup")
        try:
            await join(dup, rjid, "bob")
            raise AssertionError("a second 'bob' joined")
        except PresenceError as e:
            assert e.condition == "conflict", e
        bob.plugin["xep_0045"].set_subject(rjid, "one room, three nodes")
        for x in (alice, bob, carol):
            await until(lambda x=x: any(m["subject"] == "one room, three nodes"
                                        for m in x.events["mucm"]), 10,
                        f"{x.boundjid} gets the subject")
        # messages from every node, interleaved, reach everyone once in one order
        sent = []
        for i in range(5):
            for x, who in ((alice, "a"), (bob, "b"), (carol, "c")):
                body = f"{who}{i}"
                gc(x, rjid, body)
                sent.append(body)
        for x in (alice, bob, carol):
            await until(lambda x=x: len(bodies(x, rjid)) >= len(sent), 15,
                        f"{x.boundjid} gets all {len(sent)} messages")
        await asyncio.sleep(0.5)  # nothing more (no duplicates) arrives
        seen = [bodies(x, rjid) for x in (alice, bob, carol)]
        assert sorted(seen[0]) == sorted(sent), seen[0]
        assert seen[0] == seen[1] == seen[2], seen
        # the same room from every node: disco lists it, its info names it
        for x in (alice, bob, carol):
            items = await x.plugin["xep_0030"].get_items(jid=MUC, timeout=10)
            assert (rjid, None, "The Hub") in items["disco_items"]["items"], items
            info = await x.plugin["xep_0030"].get_info(jid=rjid, timeout=10)
            assert {i[3] for i in info["disco_info"]["identities"]} == {"The Hub"}
        # a late joiner on node1 gets the same occupant list and subject
        alice2 = await member(n1, "alice", resource="two")
        pres, subject, occ, hist = await join(alice2, rjid, "alice2")
        assert subject["subject"] == "one room, three nodes"
        assert occupants(alice2, rjid) == ["alice", "alice2", "bob", "carol"]
        # leaving from node3 is seen on node1 and node2
        carol.plugin["xep_0045"].leave_muc(rjid, "carol")
        for x in (alice, bob):
            await x.wait_for("mucp", unavailable(rjid, "carol"), timeout=10,
                             what="carol leaves")
        for x in (alice, alice2, bob, carol, dup):
            await x.close()

    run(scenario, timeout=120)
    # one record per room message, on the room's home only
    for body in ("a0", "b2", "c4"):
        hits = compliance_hits(c.nodes, body)
        assert len(hits) == 1 and hits[0][0] == "node2", hits
        assert f"-> {rjid} [groupchat]" in hits[0][1], hits


def test_killed_node_occupants_leave_room(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes
    rjid = f"stay@{MUC}"

    async def scenario():
        alice = await member(n1, "alice")
        bob = await member(n2, "bob")
        carol = await member(n3, "carol")
        await join(alice, rjid, "alice")
        await instant(alice, rjid)
        await join(bob, rjid, "bob")
        await join(carol, rjid, "carol")
        await until(lambda: occupants(bob, rjid) == ["alice", "bob", "carol"], 10,
                    "bob sees everyone")
        c.kill(n3)
        carol.abort()
        # carol's node is gone: when its lease runs out the room drops her (333)
        for x in (alice, bob):
            await until(lambda x=x: any(map(unavailable(rjid, "carol"), x.events["mucp"])),
                        LEASE * 4 + 10, f"{x.boundjid} sees carol removed")
            p = next(filter(unavailable(rjid, "carol"), x.events["mucp"]))
            assert 333 in codes(p), p
        gc(bob, rjid, "still here")
        for x in (alice, bob):
            await until(lambda x=x: "still here" in bodies(x, rjid), 10, "the room works")
        assert occupants(alice, rjid) == ["alice", "bob"]
        for x in (alice, bob):
            await x.close()

    run(scenario, timeout=120)


def test_room_moves_when_its_home_dies(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes
    rjid = f"keep@{MUC}"

    async def scenario():
        bob = await member(n2, "bob")
        alice = await member(n1, "alice")
        carol = await member(n3, "carol")
        await join(bob, rjid, "bob")
        await instant(bob, rjid, {"persistentroom": "1", "roomname": "Keeper"})
        bob.plugin["xep_0045"].set_subject(rjid, "kept subject")
        await until(lambda: any(m["subject"] == "kept subject" for m in bob.events["mucm"]),
                    10, "subject set")
        await join(alice, rjid, "alice")
        await join(carol, rjid, "carol")
        c.kill(n2)
        bob.abort()
        # the home is unreachable: a clear error, nothing silently lost
        gc(alice, rjid, "into the void")
        err = await alice.wait_for("mucm", lambda m: m["type"] == "error" and
                                   m["body"] == "into the void", timeout=15,
                                   what="error for a message to a dead home")
        assert err["error"]["condition"] in ("remote-server-not-found",
                                             "service-unavailable"), err
        await wait_dead(n1, "node2")
        await asyncio.sleep(1)
        # occupants rejoin; the room now lives on node1 with its configuration
        alice.clear("mucp")
        carol.clear("mucp")
        pres, subject, *_ = await join(alice, rjid, "alice")
        assert pres["muc"]["affiliation"] == "none" and 201 not in codes(pres), pres
        assert subject["subject"] == "kept subject"
        await join(carol, rjid, "carol")
        info = await carol.plugin["xep_0030"].get_info(jid=rjid, timeout=10)
        assert {i[3] for i in info["disco_info"]["identities"]} == {"Keeper"}
        assert "muc_persistent" in info["disco_info"]["features"]
        await until(lambda: occupants(carol, rjid) == ["alice", "carol"], 10,
                    "carol sees alice again")
        gc(carol, rjid, "after the move")
        for x in (alice, carol):
            await until(lambda x=x: "after the move" in bodies(x, rjid), 10,
                        "a message in the moved room")
        for x in (alice, carol):
            await x.close()

    run(scenario, timeout=150)
    assert f"{rjid} loaded from the store: it lives on this node now" in n1.log_text()


def test_forged_room_stanzas_over_a_node_link_dropped(cluster, run, tmp_path):
    c = cluster(2)
    n1, n2 = c.nodes
    rjid = f"guarded@{MUC}"
    # a node of the cluster, with a certificate from its CA, that holds no sessions
    n1.ctl("node", "add", "node7", f"{HOST}:1")
    cert, key = issue_cert(str(tmp_path / "node7"), "node7", ca_from=n1.dir)

    async def scenario():
        alice = await member(n1, "alice")
        bob = await member(n2, "bob")
        await join(alice, rjid, "alice")
        await instant(alice, rjid)
        await join(bob, rjid, "bob")
        await until(lambda: occupants(bob, rjid) == ["alice", "bob"], 10, "bob sees alice")

        peer = RawPeer(n1.s2s_port)
        peer.open(DOMAIN, DOMAIN)
        peer.starttls(cert, key, n1.ca, DOMAIN)
        peer.open(DOMAIN, DOMAIN)
        assert "<success" in peer.external("node7")
        peer.open(DOMAIN, DOMAIN)
        # alice's session is on node1 itself; bob's on node2; carol has none at all
        peer.send(f"<message from='alice@{DOMAIN}/r' to='{rjid}' type='groupchat' id='f1'>"
                  "<body>forged by node7</body></message>")
        peer.send(f"<message from='bob@{DOMAIN}/r' to='{rjid}' type='groupchat' id='f2'>"
                  "<body>forged again</body></message>")
        peer.send(f"<presence from='carol@{DOMAIN}/x' to='{rjid}/mallory'>"
                  f"<x xmlns='{NS_MUC}'/></presence>")
        await asyncio.sleep(1.5)
        for x in (alice, bob):
            assert not any("forged" in b for b in bodies(x, rjid)), bodies(x, rjid)
            assert "mallory" not in occupants(x, rjid)
        # the real occupants carry on
        gc(bob, rjid, "genuine")
        for x in (alice, bob):
            await until(lambda x=x: "genuine" in bodies(x, rjid), 10, "genuine message")
        peer.close()
        for x in (alice, bob):
            await x.close()

    run(scenario, timeout=90)
    log = n1.log_text()
    assert "does not hold that session: dropped" in log, log[-3000:]
