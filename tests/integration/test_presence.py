"""RFC 6121 s3-4 presence: subscription state machine (persisted pending states), initial
presence broadcast, probes, directed presence, unavailable broadcast."""
import asyncio

from conftest import clients_for, exchange
from test_roster import items_of, roster_get


def is_pres(ptype, frm_bare=None):
    def pred(p):
        if p["type"] != ptype:
            return False
        return frm_bare is None or p["from"].bare == frm_bare
    return pred


def avail_from(frm_bare):
    return lambda p: p["type"] in ("available", "", "chat", "away", "xa", "dnd") and \
        p["from"].bare == frm_bare


def push_with(jid, subscription, ask=None):
    def pred(iq):
        it = (items_of(iq) or {}).get(jid)
        return it is not None and it["subscription"] == subscription and it["ask"] == ask
    return pred


async def subscribe(a, b):
    """a subscribes to b's presence; b approves.  Both online."""
    bj, aj = b.boundjid.bare, a.boundjid.bare
    a.send_presence(pto=bj, ptype="subscribe")
    await b.wait_for("presence", is_pres("subscribe", aj), 5, what=f"subscribe from {aj}")
    b.send_presence(pto=aj, ptype="subscribed")
    await a.wait_for("presence", is_pres("subscribed", bj), 5, what=f"subscribed from {bj}")


def test_subscription_request_and_approval(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        a.send_presence(pto="bob@localhost", ptype="subscribe")
        # outbound: roster push none + ask=subscribe to the user (RFC 6121 3.1.2)
        await a.wait_for("roster_push", push_with("bob@localhost", "none", "subscribe"), 5,
                         what="(none, ask=subscribe)")
        req = await b.wait_for("presence", is_pres("subscribe", "alice@localhost"), 5)
        assert req["from"].bare == "alice@localhost" and not req["from"].resource, \
            f"subscribe must come from the bare JID: {req['from']}"
        # pending-in is not in bob's roster as an item... approve
        b.send_presence(pto="alice@localhost", ptype="subscribed")
        await b.wait_for("roster_push", push_with("alice@localhost", "from"), 5, what="(from)")
        await a.wait_for("presence", is_pres("subscribed", "bob@localhost"), 5)
        await a.wait_for("roster_push", push_with("bob@localhost", "to"), 5, what="(to)")
        # the contact's current presence follows the approval (RFC 6121 3.1.6)
        await a.wait_for("presence", avail_from("bob@localhost"), 5, what="(bob available)")
        ia = items_of(await roster_get(a))
        ib = items_of(await roster_get(b))
        assert ia["bob@localhost"]["subscription"] == "to" and ia["bob@localhost"]["ask"] is None, ia
        assert ib["alice@localhost"]["subscription"] == "from", ib
        # mutual
        await subscribe(b, a)
        ia = items_of(await roster_get(a))
        ib = items_of(await roster_get(b))
        assert ia["bob@localhost"]["subscription"] == "both", ia
        assert ib["alice@localhost"]["subscription"] == "both", ib
    run(scenario)


def test_subscribe_to_offline_contact_delivered_on_login(srv, run):
    """Pending-in is persisted: a subscribe sent while the contact is offline reaches them
    when they come online; the approval then reaches the (online) requester."""
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        a.send_presence(pto="carol@localhost", ptype="subscribe")
        await a.wait_for("roster_push", push_with("carol@localhost", "none", "subscribe"), 5)
        await asyncio.sleep(0.5)
        c = await cl.login("carol", "c")
        await c.wait_for("presence", is_pres("subscribe", "alice@localhost"), 5,
                         what="(stored subscribe request)")
        c.send_presence(pto="alice@localhost", ptype="subscribed")
        await a.wait_for("presence", is_pres("subscribed", "carol@localhost"), 5)
        ia = items_of(await roster_get(a))
        assert ia["carol@localhost"]["subscription"] == "to", ia
    run(scenario)


def test_pending_out_persisted_across_restart(server, run):
    srv = server()

    async def first():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        a.send_presence(pto="dave@localhost", ptype="subscribe")
        await a.wait_for("roster_push", push_with("dave@localhost", "none", "subscribe"), 5)

    async def second():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        ia = items_of(await roster_get(a))
        assert ia["dave@localhost"]["ask"] == "subscribe", ia
        d = await cl.login("dave", "d")
        await d.wait_for("presence", is_pres("subscribe", "alice@localhost"), 5)

    run(first)
    assert not srv.stop()
    srv.start()
    run(second)


def test_initial_presence_broadcast_and_probe(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await subscribe(a, b)          # alice sees bob (alice: to, bob: from)
        # bob goes offline and comes back: his initial presence is broadcast to alice
        await b.close()
        await a.wait_for("presence", is_pres("unavailable", "bob@localhost"), 5,
                         what="(bob unavailable broadcast)")
        a.clear("presence")
        b2 = await cl.login("bob", "b2", presence=False)
        b2.send_presence(pstatus="back", ppriority=3)
        p = await a.wait_for("presence", avail_from("bob@localhost"), 5, what="(bob initial)")
        assert p["from"].full == "bob@localhost/b2" and p["status"] == "back", str(p)
        # alice logs in on another resource: the probe gets bob's current presence
        a2 = await cl.login("alice", "a2")
        p = await a2.wait_for("presence", avail_from("bob@localhost"), 5,
                              what="(probe answer for bob)")
        assert p["from"].full == "bob@localhost/b2" and p["status"] == "back", str(p)
        # bob is only 'from' for alice: he does not get alice's presence
        await b2.expect_none("presence", avail_from("alice@localhost"), 1.0)
    run(scenario)


def test_own_presence_reflected_to_other_resources(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a1 = await cl.login("alice", "one")
        a2 = await cl.login("alice", "two", presence=False)
        a2.send_presence(pstatus="second")
        p = await a1.wait_for("presence", lambda p: p["from"].full == "alice@localhost/two"
                              and p["type"] != "unavailable", 5)
        assert p["status"] == "second"
    run(scenario)


def test_directed_presence_and_unavailable_on_disconnect(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        c = await cl.login("carol", "c")          # no subscription between them
        a.send_presence(pto="carol@localhost/c", pstatus="just for you")
        p = await c.wait_for("presence", avail_from("alice@localhost"), 5, what="(directed)")
        assert p["status"] == "just for you"
        # not broadcast to non-subscribers
        d = await cl.login("dave", "d")
        await d.expect_none("presence", avail_from("alice@localhost"), 0.8)
        await a.close()
        await c.wait_for("presence", is_pres("unavailable", "alice@localhost"), 5,
                         what="(unavailable after directed presence)")
        await d.expect_none("presence", is_pres("unavailable", "alice@localhost"), 0.5)
    run(scenario)


def test_unavailable_broadcast_on_abrupt_disconnect(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await subscribe(a, b)
        b.abort()   # TCP close without </stream:stream>
        p = await a.wait_for("presence", is_pres("unavailable", "bob@localhost"), 5)
        assert p["from"].full == "bob@localhost/b"
    run(scenario)


def test_unsubscribe_by_user(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await subscribe(a, b)
        a.clear()
        a.send_presence(pto="bob@localhost", ptype="unsubscribe")
        await b.wait_for("presence", is_pres("unsubscribe", "alice@localhost"), 5)
        await a.wait_for("roster_push", push_with("bob@localhost", "none"), 5)
        await b.wait_for("roster_push", push_with("alice@localhost", "none"), 5)
        # the user gets unavailable from the contact's resources (RFC 6121 3.3.3)
        await a.wait_for("presence", is_pres("unavailable", "bob@localhost"), 5)
        # and no longer sees bob's presence changes
        b.send_presence(pstatus="after")
        await a.expect_none("presence", avail_from("bob@localhost"), 1.0)
    run(scenario)


def test_unsubscribed_by_contact_cancels(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await subscribe(a, b)
        a.clear()
        b.send_presence(pto="alice@localhost", ptype="unsubscribed")
        await a.wait_for("presence", is_pres("unsubscribed", "bob@localhost"), 5)
        await a.wait_for("roster_push", push_with("bob@localhost", "none"), 5)
        await a.wait_for("presence", is_pres("unavailable", "bob@localhost"), 5)
        ia = items_of(await roster_get(a))
        assert ia["bob@localhost"]["subscription"] == "none", ia
    run(scenario)


def test_denying_a_pending_request(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        a.send_presence(pto="bob@localhost", ptype="subscribe")
        await b.wait_for("presence", is_pres("subscribe", "alice@localhost"), 5)
        b.send_presence(pto="alice@localhost", ptype="unsubscribed")
        await a.wait_for("presence", is_pres("unsubscribed", "bob@localhost"), 5)
        ia = items_of(await roster_get(a))
        assert ia["bob@localhost"]["subscription"] == "none" and ia["bob@localhost"]["ask"] is None, ia
    run(scenario)


def test_presence_not_leaked_without_subscription(srv, run):
    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        a = await cl.login("alice", "a")
        await b.expect_none("presence", avail_from("alice@localhost"), 1.0)
        await a.expect_none("presence", avail_from("bob@localhost"), 0.2)
        # a probe from a non-subscriber gets nothing useful
        a.send_presence(pto="bob@localhost", ptype="probe")
        await a.expect_none("presence", avail_from("bob@localhost"), 1.0)
        await exchange(a, b)
    run(scenario)


def test_unsolicited_subscribed_is_ignored(srv, run):
    """RFC 6121 3.1.5/3.1.6: 'subscribed' without a pending request changes nothing --
    otherwise anyone could push themselves into someone's presence list."""
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        b.send_presence(pto="alice@localhost", ptype="subscribed")
        await a.expect_none("presence", is_pres("subscribed", "bob@localhost"), 1.0)
        await a.expect_none("roster_push", lambda iq: "bob@localhost" in (items_of(iq) or {}), 0.2)
        ia = items_of(await roster_get(a))
        assert ia.get("bob@localhost", {"subscription": "none"})["subscription"] == "none", ia
        ib = items_of(await roster_get(b))
        assert ib.get("alice@localhost", {"subscription": "none"})["subscription"] == "none", ib
        # and bob's presence does not reach alice
        b.send_presence(pstatus="hello?")
        await a.expect_none("presence", avail_from("bob@localhost"), 1.0)
    run(scenario)


def test_subscription_from_spoofed_resource_uses_bare_jid(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        b.send_raw("<presence to='alice@localhost' type='subscribe' from='carol@localhost'/>")
        p = await a.wait_for("presence", lambda p: p["type"] == "subscribe", 5)
        assert p["from"].full == "bob@localhost", f"subscribe from {p['from']} (spoofed/unstamped)"
    run(scenario)


def test_initial_presence_reflected_to_sender_and_other_resources(srv, run):
    """RFC 6121 4.2.2: the initial presence goes to all of the user's available resources,
    including the one that sent it; a new resource learns about the others (4.2.2/4.3)."""
    async def scenario():
        cl = clients_for(srv)
        a1 = await cl.login("alice", "one", presence=False)
        a1.send_presence(pstatus="first")
        p = await a1.wait_for("presence", lambda p: p["from"].full == "alice@localhost/one", 5,
                              what="(own presence reflected)")
        assert p["status"] == "first"
        a2 = await cl.login("alice", "two", presence=False)
        a2.send_presence(pstatus="second")
        await a1.wait_for("presence", lambda p: p["from"].full == "alice@localhost/two", 5)
        p = await a2.wait_for("presence", lambda p: p["from"].full == "alice@localhost/one", 5,
                              what="(existing resource's presence)")
        assert p["status"] == "first"
    run(scenario)


def test_subscribe_when_already_subscribed_is_auto_answered(srv, run):
    """RFC 6121 3.1.3: if the user already has a subscription, the contact's server
    auto-replies 'subscribed' on the contact's behalf (and does not bother the contact)."""
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await subscribe(a, b)
        a.clear()
        b.clear()
        a.send_presence(pto="bob@localhost", ptype="subscribe")
        await a.wait_for("presence", is_pres("subscribed", "bob@localhost"), 5)
        await b.expect_none("presence", is_pres("subscribe", "alice@localhost"), 1.0)
    run(scenario)


def test_roster_remove_cancels_both_subscriptions(srv, run):
    """RFC 6121 2.5.2: removing a contact with subscription 'both' sends unsubscribe and
    unsubscribed to the contact; the contact's roster goes to 'none'."""
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        await subscribe(a, b)
        await subscribe(b, a)
        ia = items_of(await roster_get(a))
        assert ia["bob@localhost"]["subscription"] == "both", ia
        b.clear()
        from test_roster import roster_set
        await roster_set(a, "bob@localhost", remove=True)
        await b.wait_for("presence", is_pres("unsubscribe", "alice@localhost"), 5)
        await b.wait_for("presence", is_pres("unsubscribed", "alice@localhost"), 5)
        await b.wait_for("presence", is_pres("unavailable", "alice@localhost"), 5)
        ib = items_of(await roster_get(b))
        assert ib["alice@localhost"]["subscription"] == "none", ib
        ia = items_of(await roster_get(a))
        assert "bob@localhost" not in ia, ia
    run(scenario)
