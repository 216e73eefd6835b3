"""Several parleyd nodes of one domain (docs/federation.md): three nodes on loopback
sharing one PostgreSQL store, linked by server streams authenticated with certificates
from the cluster's CA (SASL EXTERNAL on the node's name); slixmpp clients spread across
them. Chat and presence across nodes; a killed node's sessions leave the directory when
its lease runs out and messages for its users go to offline storage; a node with a
certificate from another CA, or an unregistered name, cannot join.

PostgreSQL: PARLEY_TEST_PG_URI (tests/run.sh starts a cluster), else a cluster of our own
from scripts/pg-cluster.sh for this module. Each test gets a database of its own.
"""
import asyncio
import time

from conftest import HOST
from nodes_util import DOMAIN, LEASE, cluster, on, pg_server, pg_uri, subscribe  # noqa: F401
from s2s_util import RawPeer, issue_cert


def test_chat_and_presence_across_three_nodes(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes

    async def scenario():
        alice = await on(n1, "alice")
        bob = await on(n2, "bob")
        carol = await on(n3, "carol")
        await subscribe(alice, f"alice@{DOMAIN}", bob, f"bob@{DOMAIN}")
        await subscribe(bob, f"bob@{DOMAIN}", alice, f"alice@{DOMAIN}")
        await subscribe(carol, f"carol@{DOMAIN}", alice, f"alice@{DOMAIN}")

        # chat across nodes, to bare and full JIDs
        alice.send_message(mto=f"bob@{DOMAIN}", mbody="1 to 2", mtype="chat")
        m = await bob.wait_for("message", lambda m: m["body"] == "1 to 2", timeout=10)
        assert str(m["from"]) == f"alice@{DOMAIN}/r"
        bob.send_message(mto=f"alice@{DOMAIN}/r", mbody="2 to 1", mtype="chat")
        await alice.wait_for("message", lambda m: m["body"] == "2 to 1", timeout=10)
        carol.send_message(mto=f"bob@{DOMAIN}", mbody="3 to 2", mtype="chat")
        await bob.wait_for("message", lambda m: m["body"] == "3 to 2", timeout=10)

        # presence broadcast across nodes, and probes at login
        bob.send_presence(pstatus="in a meeting", pshow="dnd")
        await alice.wait_for("presence", lambda p: p["status"] == "in a meeting", timeout=10)
        await carol.expect_none("presence", lambda p: p["status"] == "in a meeting", duration=1)
        alice2 = await on(n3, "alice", resource="two")
        await alice2.wait_for("presence", lambda p: str(p["from"]).startswith(f"bob@{DOMAIN}/")
                              and p["status"] == "in a meeting", timeout=10,
                              what="bob's presence by probe")
        # the user's own resources on other nodes see each other
        await alice2.wait_for("presence", lambda p: str(p["from"]) == f"alice@{DOMAIN}/r",
                              timeout=10, what="alice's other resource")
        # a roster change on node1 is pushed to the user's session on node3
        await asyncio.wait_for(alice.update_roster(f"bob@{DOMAIN}", name="Bob B."), 10)
        await alice2.wait_for("roster_push", lambda iq: iq["roster"]["items"].get(
            f"bob@{DOMAIN}", {}).get("name") == "Bob B.", timeout=10, what="roster push")
        await bob.close()
        await alice.wait_for("presence", lambda p: str(p["from"]) == f"bob@{DOMAIN}/r" and
                             p["type"] == "unavailable", timeout=10, what="bob unavailable")
        await alice2.wait_for("presence", lambda p: str(p["from"]) == f"bob@{DOMAIN}/r" and
                              p["type"] == "unavailable", timeout=10, what="bob unavailable")
        for x in (alice, alice2, carol):
            await x.close()

    run(scenario, timeout=120)
    for srv in c.nodes:
        assert "authenticated by certificate (SASL EXTERNAL)" in srv.log_text()
    out = n1.ctl("node", "list").stdout
    assert "node1" in out and "node2" in out and "node3" in out and "alive" in out, out


def test_killed_node_sessions_expire(cluster, run):
    c = cluster(3)
    n1, n2, n3 = c.nodes

    async def scenario():
        alice = await on(n1, "alice")
        carol = await on(n3, "carol")
        alice.send_message(mto=f"carol@{DOMAIN}", mbody="before", mtype="chat")
        await carol.wait_for("message", lambda m: m["body"] == "before", timeout=10)
        c.kill(n3)
        carol.abort()
        # within the lease the link is refused: the message waits offline
        alice.send_message(mto=f"carol@{DOMAIN}/r", mbody="during", mtype="chat")
        # past the lease the directory no longer names node3 at all
        deadline = time.monotonic() + LEASE * 4 + 5
        while time.monotonic() < deadline:
            out = n1.ctl("node", "list").stdout
            line = [ln for ln in out.splitlines() if ln.startswith("node3")]
            if line and "down" in line[0] and " 0 (0)" in line[0]:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"node3's entries did not expire:\n{out}")
        alice.send_message(mto=f"carol@{DOMAIN}", mbody="after", mtype="chat")
        await asyncio.sleep(1)
        carol2 = await on(n2, "carol", resource="back")
        for body in ("during", "after"):
            await carol2.wait_for("message", lambda m, b=body: m["body"] == b, timeout=10,
                                  what=f"offline message {body!r}")
        await carol2.close()
        await alice.close()

    run(scenario, timeout=120)
    assert "node3" in n1.log_text()


def test_node_with_foreign_certificate_refused(cluster, tmp_path):
    c = cluster(2)
    n1 = c.nodes[0]
    # a certificate for the domain from another CA, for a registered node name
    n1.ctl("node", "add", "node9", f"{HOST}:1")
    cert, key = issue_cert(str(tmp_path / "foreign"), DOMAIN)
    peer = RawPeer(n1.s2s_port)
    peer.open(DOMAIN, DOMAIN)
    peer.starttls(cert, key, n1.ca, DOMAIN)
    feats = peer.open(DOMAIN, DOMAIN)
    assert "EXTERNAL" in feats, feats
    out = peer.external("node9")
    assert "<not-authorized/>" in out and "not trusted" in out, out
    peer.close()
    # a certificate from the cluster CA but for a name that is not a node
    cert, key = issue_cert(str(tmp_path / "stranger"), "node7", ca_from=n1.dir)
    peer = RawPeer(n1.s2s_port)
    peer.open(DOMAIN, DOMAIN)
    peer.starttls(cert, key, n1.ca, DOMAIN)
    peer.open(DOMAIN, DOMAIN)
    out = peer.external("node7")
    assert "<not-authorized/>" in out and "not a node of this cluster" in out, out
    peer.close()
    n1.wait_log(r"SASL EXTERNAL as node9 refused: the peer's certificate is not trusted")
