"""The directory replica (docs/federation.md, "The directory replica"): each node keeps the
other nodes' session directory entries in memory, from a snapshot each node sends over its
link when asked and the pushes that follow. Routing to a session on another node asks no
store query; a session that just began on another node is still reached (a negative
answer is asked again of the store, never sent to offline storage on the replica's word);
ended sessions and priority changes are seen across nodes; forged directory updates (over
a node link naming another node, or from a client) change nothing; a snapshot too large
for one stanza arrives in several.

PostgreSQL: PARLEY_TEST_PG_URI, else a cluster of our own (nodes_util.py)."""
import asyncio
import time

from nodes_util import AVAILABLE, DOMAIN, USERS, on, subscribe
from nodes_util import cluster, pg_server, pg_uri  # noqa: F401
from s2s_util import RawPeer, issue_cert, login
from conftest import HOST

NS_NODE = "urn:parley:node:0"
NS_DELAY = "urn:xmpp:delay"
BOB = f"bob@{DOMAIN}"
CAROL = f"carol@{DOMAIN}"


def store_lookups(srv, since, bare):
    """The directory lookups node srv asked of the store for bare since log offset since
    (log_level debug)."""
    return srv.log_text()[since:].count(f"node directory: {bare} asked of the store")


def restart_with_debug(srv):
    """Restart srv with log_level debug; returns the log offset of its new life."""
    assert srv.stop() == []
    since = len(srv.log_text())
    srv.set_config(["log_level = debug"])
    srv.start()
    return since


def wait_synced(srv, node, since=0, timeout=15.0):
    """Until srv's replica of node is in (a log line after offset since)."""
    deadline = time.monotonic() + timeout
    while f"node directory: {node} synced" not in srv.log_text()[since:]:
        assert time.monotonic() < deadline, f"{srv.name}: {node} not synced\n" + srv.log_tail()
        time.sleep(0.1)


def live(m):
    """Delivered at once, not from offline storage (which adds a delay stamp)."""
    return m.xml.find(f"{{{NS_DELAY}}}delay") is None


def test_routing_to_other_nodes_asks_no_store_query(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes
    since = restart_with_debug(n1)

    async def scenario():
        alice = await on(n1, "alice")
        bob = await on(n2, "bob")
        # node1 asked node2 and node3 for their snapshots
        wait_synced(n1, "node2", since)
        wait_synced(n1, "node3", since)
        await asyncio.sleep(0.5)
        mark = len(n1.log_text())
        for i in range(10):
            alice.send_message(mto=f"{BOB}/r", mbody=f"full {i}", mtype="chat")
            alice.send_message(mto=BOB, mbody=f"bare {i}", mtype="chat")
        for i in range(10):
            for kind in ("full", "bare"):
                await bob.wait_for("message", lambda m, b=f"{kind} {i}": m["body"] == b,
                                   timeout=10, what=f"{kind} {i}")
        assert store_lookups(n1, mark, BOB) == 0, n1.log_text()[mark:]
        # carol is online nowhere: the replica's "no session" is asked again of the store
        # before her message goes to offline storage
        alice.send_message(mto=CAROL, mbody="for carol", mtype="chat")
        await asyncio.sleep(1)
        assert store_lookups(n1, mark, CAROL) >= 1, n1.log_text()[mark:]
        carol = await on(n3, "carol")
        await carol.wait_for("message", lambda m: m["body"] == "for carol", timeout=10,
                             what="carol's offline message")
        for x in (alice, bob, carol):
            await x.close()

    run(scenario, timeout=120)
    assert n1.stop() == []
    assert "lookups answered by the replica" in n1.log_text()


def test_sign_in_sign_out_and_priority_seen_across_nodes(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes

    async def scenario():
        alice = await on(n1, "alice")
        wait_synced(n1, "node2")
        wait_synced(n1, "node3")
        for round_ in range(3):
            # bob signs in on node2 and is messaged from node1 at once: live, not offline
            bob = await login(DOMAIN, n2.c2s_port, n2.ca, "bob", USERS["bob"], resource="r")
            # his own presence back: node2 has processed it (and written the store)
            await bob.wait_for("presence", lambda p: str(p["from"]) == f"{BOB}/r",
                               timeout=10, what="bob's own presence")
            alice.send_message(mto=BOB, mbody=f"hello {round_}", mtype="chat")
            alice.send_message(mto=f"{BOB}/r", mbody=f"full {round_}", mtype="chat")
            for b in (f"hello {round_}", f"full {round_}"):
                m = await bob.wait_for("message", lambda m, b=b: m["body"] == b, timeout=10,
                                       what=b)
                assert live(m), f"{b} came from offline storage"
            await bob.close()
            await asyncio.sleep(0.5)
            # signed out: the next message waits offline
            alice.send_message(mto=BOB, mbody=f"away {round_}", mtype="chat")
            await asyncio.sleep(0.5)
            bob = await login(DOMAIN, n3.c2s_port, n3.ca, "bob", USERS["bob"], resource="x")
            m = await bob.wait_for("message", lambda m: m["body"] == f"away {round_}",
                                   timeout=10, what="the offline message")
            assert not live(m), "expected a delay stamp from offline storage"
            await bob.close()
            await asyncio.sleep(0.5)
        # priorities on two other nodes, changed, seen from node1
        b2 = await on(n2, "bob", resource="two")
        b3 = await on(n3, "bob", resource="three")
        b2.send_presence(ppriority=1)
        b3.send_presence(ppriority=5)
        await asyncio.sleep(0.5)
        alice.send_message(mto=BOB, mbody="p1", mtype="chat")
        await b3.wait_for("message", lambda m: m["body"] == "p1", timeout=10, what="p1")
        b2.send_presence(ppriority=9)
        await asyncio.sleep(0.5)
        alice.send_message(mto=BOB, mbody="p2", mtype="chat")
        await b2.wait_for("message", lambda m: m["body"] == "p2", timeout=10, what="p2")
        await b3.expect_none("message", lambda m: m["body"] == "p2", duration=1,
                             what="p2 at the lower priority")
        await b2.expect_none("message", lambda m: m["body"] == "p1", duration=0.2,
                             what="p1 at the lower priority")
        for x in (alice, b2, b3):
            await x.close()

    run(scenario, timeout=150)


def test_killed_node_entries_dropped(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes

    async def scenario():
        alice = await on(n1, "alice")
        carol = await on(n3, "carol")
        wait_synced(n1, "node3")
        alice.send_message(mto=CAROL, mbody="before", mtype="chat")
        await carol.wait_for("message", lambda m: m["body"] == "before", timeout=10)
        c.kill(n3)
        carol.abort()
        n1.wait_log(r"node node3: inbound link down")
        # node3's entries no longer count: within the lease the store still names it
        # (the message waits offline when the link is refused), after it nobody does
        alice.send_message(mto=CAROL, mbody="during", mtype="chat")
        await asyncio.sleep(1)
        carol2 = await on(n2, "carol", resource="back")
        m = await carol2.wait_for("message", lambda m: m["body"] == "during", timeout=10,
                                  what="the offline message")
        assert not live(m)
        await carol2.close()
        await alice.close()

    run(scenario, timeout=120)


def test_forged_directory_updates_ignored(cluster, run, tmp_path):
    c = cluster(2)
    n1, n2 = c.nodes
    # a node of the cluster, with a certificate from its CA, that holds no sessions
    n1.ctl("node", "add", "node7", f"{HOST}:1")
    cert, key = issue_cert(str(tmp_path / "node7"), "node7", ca_from=n1.dir)
    since = restart_with_debug(n1)

    async def scenario():
        alice = await on(n1, "alice")
        bob = await on(n2, "bob")
        await subscribe(bob, BOB, alice, f"alice@{DOMAIN}")  # bob gets alice's presence
        wait_synced(n1, "node2", since)
        # a client cannot send one: its stanzas carry its own JID
        alice.send_raw(f"<message to='{DOMAIN}'><directory xmlns='{NS_NODE}' node='node2' "
                       "reset='1' complete='1'/></message>")
        peer = RawPeer(n1.s2s_port)
        peer.open(DOMAIN, DOMAIN)
        peer.starttls(cert, key, n1.ca, DOMAIN)
        peer.open(DOMAIN, DOMAIN)
        assert "<success" in peer.external("node7")
        peer.open(DOMAIN, DOMAIN)
        # node7 speaks for node2: wipes its entries, ends bob's session
        peer.send(f"<message from='{DOMAIN}' to='{DOMAIN}'><directory xmlns='{NS_NODE}' "
                  f"node='node2' reset='1' complete='1'/></message>")
        peer.send(f"<message from='{DOMAIN}' to='{DOMAIN}'><directory xmlns='{NS_NODE}' "
                  f"node='node2'><gone jid='{BOB}/r'/></directory></message>")
        # node7 claims bob's session (held by node2) as its own, at a high priority
        peer.send(f"<message from='{DOMAIN}' to='{DOMAIN}'><directory xmlns='{NS_NODE}' "
                  f"node='node7' reset='1' complete='1'><session jid='{BOB}/r' available='1' "
                  "priority='100'/></directory></message>")
        await asyncio.sleep(1)
        n1.wait_log(r"node node7: a directory update naming node node2 dropped")
        mark = len(n1.log_text())
        # node1 still sees bob on node2: presence, bare and full JID messages reach him
        alice.send_presence(pstatus="still here", pshow="away")
        await bob.wait_for("presence", lambda p: p["status"] == "still here", timeout=10,
                           what="alice's presence")
        alice.send_message(mto=BOB, mbody="bare", mtype="chat")
        alice.send_message(mto=f"{BOB}/r", mbody="full", mtype="chat")
        for b in ("bare", "full"):
            m = await bob.wait_for("message", lambda m, b=b: m["body"] == b, timeout=10,
                                   what=b)
            assert live(m)
        # bob/r named by node2 and node7: the store decided
        assert store_lookups(n1, mark, BOB) >= 1, n1.log_text()[mark:]
        peer.close()
        for x in (alice, bob):
            await x.close()

    run(scenario, timeout=90)


def test_snapshot_in_several_stanzas(cluster, run):
    c = cluster(2)
    n1, n2 = c.nodes
    # a quarter of max_stanza_size per snapshot stanza: a handful of sessions each
    assert n2.stop() == []
    n2.set_config(["max_stanza_size = 2K"])
    n2.start()

    async def scenario():
        # 40 sessions: more than one stanza of 2K can list
        bobs = []
        for batch in range(4):
            bobs += await asyncio.gather(*(on(n2, "bob", resource=f"r{batch * 10 + i}",
                                              presence=False) for i in range(10)))
        # node1 comes back: node2's snapshot arrives in several stanzas
        n1.set_config(["max_stanza_size = 2K"])  # what node1 takes over a link, too
        since = restart_with_debug(n1)
        wait_synced(n1, "node2", since)
        alice = await on(n1, "alice")
        await asyncio.sleep(0.5)
        mark = len(n1.log_text())
        for i, b in enumerate(bobs):
            alice.send_message(mto=f"{BOB}/r{i}", mbody=f"to r{i}", mtype="chat")
        for i, b in enumerate(bobs):
            await b.wait_for("message", lambda m, i=i: m["body"] == f"to r{i}", timeout=10,
                             what=f"to r{i}")
        assert store_lookups(n1, mark, BOB) == 0, n1.log_text()[mark:]
        for x in bobs + [alice]:
            await x.close()

    run(scenario, timeout=120)


def test_login_presence_reaches_a_contact_the_replica_does_not_know_yet(cluster, run):
    """Two contacts signing in on two nodes at about the same time each see the other:
    the login-time broadcast and probes ask the store about a contact the replica shows
    nowhere available. The replica's miss is made deterministic with a node that has just
    started: with a long lease, node1 looks at which nodes live only every lease/3
    seconds, so for that long it does not count the new node2 and trusts a replica
    without node2's sessions, while bob's available session on node2 is in the store."""
    c = cluster(2)
    n1, n2 = c.nodes
    alice_jid = f"alice@{DOMAIN}"

    async def subscribed():
        alice = await on(n1, "alice")
        bob = await on(n1, "bob")
        await subscribe(alice, alice_jid, bob, BOB)
        await subscribe(bob, BOB, alice, alice_jid)
        for x in (alice, bob):
            await x.close()

    run(subscribed, timeout=60)
    lease = 60  # node1's next look at the live nodes: 20 s after its start
    assert n2.stop() == []
    assert n1.stop() == []
    time.sleep(1.5)  # node2's clean leave: its lease (1 s) has run out
    n2.set_config([f"node_lease = {lease}"])
    n1.set_config([f"node_lease = {lease}", "log_level = debug"])
    since = len(n1.log_text())
    n1.start()
    started = time.monotonic()
    n2.start()

    async def scenario():
        bob = await login(DOMAIN, n2.c2s_port, n2.ca, "bob", USERS["bob"], resource="r")
        # his own presence back: node2 has written his availability to the store
        await bob.wait_for("presence", lambda p: str(p["from"]) == f"{BOB}/r",
                           timeout=10, what="bob's own presence")
        mark = len(n1.log_text())
        alice = await login(DOMAIN, n1.c2s_port, n1.ca, "alice", USERS["alice"], resource="r")
        await alice.wait_for("presence", lambda p: str(p["from"]) == f"{alice_jid}/r",
                             timeout=10, what="alice's own presence")
        # the race was there: node1 handled alice's initial presence before it counted
        # node2 (it asks a node it counts for its snapshot at once, and logs the sync)
        assert time.monotonic() - started < lease / 3 - 5, "too slow to set up the race"
        assert "node directory: node2 synced" not in n1.log_text()[since:]
        await alice.wait_for("presence", lambda p: str(p["from"]) == f"{BOB}/r" and
                             p["type"] in AVAILABLE, timeout=10, what="bob's presence")
        await bob.wait_for("presence", lambda p: str(p["from"]) == f"{alice_jid}/r" and
                           p["type"] in AVAILABLE, timeout=10, what="alice's presence")
        assert store_lookups(n1, mark, BOB) >= 1, n1.log_text()[mark:]
        for x in (alice, bob):
            await x.close()

    run(scenario, timeout=60)
