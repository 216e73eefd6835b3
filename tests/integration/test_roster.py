"""RFC 6121 s2 roster management and XEP-0237 roster versioning."""
import asyncio
import re
import xml.etree.ElementTree as ET

import pytest

from conftest import IqError, RawStream, clients_for, send_iq

NS_ROSTER = "jabber:iq:roster"


def items_of(iq):
    q = iq.xml.find(f"{{{NS_ROSTER}}}query")
    if q is None:
        return None
    out = {}
    for it in q.findall(f"{{{NS_ROSTER}}}item"):
        out[it.get("jid")] = {
            "name": it.get("name"),
            "subscription": it.get("subscription") or "none",
            "ask": it.get("ask"),
            "groups": sorted(g.text or "" for g in it.findall(f"{{{NS_ROSTER}}}group")),
        }
    return out


def query_ver(iq):
    q = iq.xml.find(f"{{{NS_ROSTER}}}query")
    return None if q is None else q.get("ver")


async def roster_get(c, ver=None):
    attr = "" if ver is None else f" ver='{ver}'"
    return await send_iq(c, None, f"<query xmlns='{NS_ROSTER}'{attr}/>")


async def roster_set(c, jid, name=None, groups=(), remove=False):
    attrs = f"jid='{jid}'" + (f" name='{name}'" if name else "") + \
        (" subscription='remove'" if remove else "")
    inner = "".join(f"<group>{g}</group>" for g in groups)
    return await send_iq(c, None, f"<query xmlns='{NS_ROSTER}'><item {attrs}>{inner}</item></query>",
                         itype="set")


def test_roster_set_get_remove(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "r")
        res = await roster_get(a)
        assert items_of(res) == {}, f"fresh roster not empty: {res}"
        await roster_set(a, "bob@localhost", "Bob", ["Friends", "Work"])
        await roster_set(a, "carol@localhost", "Carol")
        items = items_of(await roster_get(a))
        assert set(items) == {"bob@localhost", "carol@localhost"}, items
        assert items["bob@localhost"]["name"] == "Bob"
        assert items["bob@localhost"]["groups"] == ["Friends", "Work"]
        assert items["bob@localhost"]["subscription"] == "none"
        assert items["bob@localhost"]["ask"] is None
        # update
        await roster_set(a, "bob@localhost", "Bobby", ["Work"])
        items = items_of(await roster_get(a))
        assert items["bob@localhost"]["name"] == "Bobby" and items["bob@localhost"]["groups"] == ["Work"]
        # remove
        await roster_set(a, "carol@localhost", remove=True)
        items = items_of(await roster_get(a))
        assert set(items) == {"bob@localhost"}, items
    run(scenario)


def test_roster_persists_across_sessions_and_restart(server, run):
    srv = server()

    async def first():
        cl = clients_for(srv)
        a = await cl.login("alice", "r")
        await roster_set(a, "bob@localhost", "Bob", ["G"])
        await a.close()

    async def second():
        cl = clients_for(srv)
        a = await cl.login("alice", "r2")
        items = items_of(await roster_get(a))
        assert items.get("bob@localhost", {}).get("name") == "Bob", items

    run(first)
    problems = srv.stop()
    assert not problems, problems
    srv.start()
    run(second)


def test_roster_push_to_every_resource(srv, run):
    async def scenario():
        cl = clients_for(srv)
        r1 = await cl.login("alice", "one")
        r2 = await cl.login("alice", "two")
        r3 = await cl.login("alice", "three")
        await roster_set(r1, "dave@localhost", "Dave", ["X"])
        for r in (r1, r2, r3):
            push = await r.wait_for(
                "roster_push",
                lambda iq: "dave@localhost" in (items_of(iq) or {}), 5, what="(set dave)")
            it = items_of(push)["dave@localhost"]
            assert it["name"] == "Dave" and it["groups"] == ["X"], it
            assert push["from"].bare in ("", "alice@localhost"), push["from"]
        await roster_set(r2, "dave@localhost", remove=True)
        for r in (r1, r2, r3):
            push = await r.wait_for(
                "roster_push",
                lambda iq: (items_of(iq) or {}).get("dave@localhost", {}).get("subscription") == "remove",
                5, what="(remove dave)")
    run(scenario)


def test_roster_set_invalid_requests(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "r")
        # two items in one set -> bad-request (RFC 6121 2.3.3)
        with pytest.raises(IqError) as ei:
            await send_iq(a, None, f"<query xmlns='{NS_ROSTER}'><item jid='bob@localhost'/>"
                                   f"<item jid='carol@localhost'/></query>", itype="set")
        assert ei.value.iq["error"]["condition"] == "bad-request"
        # removing an item that does not exist -> item-not-found (RFC 6121 2.5.3)
        with pytest.raises(IqError) as ei:
            await roster_set(a, "nobody@localhost", remove=True)
        assert ei.value.iq["error"]["condition"] == "item-not-found"
        # a roster get/set addressed to another user is refused
        with pytest.raises(IqError) as ei:
            await send_iq(a, "bob@localhost", f"<query xmlns='{NS_ROSTER}'/>")
        assert ei.value.iq["error"]["condition"] in ("forbidden", "service-unavailable",
                                                       "not-allowed"), ei.value.iq
    run(scenario)


def test_roster_versioning(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "v", roster=False)
        assert "rosterver" in a.features, a.features
        res = await roster_get(a, ver="")
        v0 = query_ver(res)
        assert v0 is not None, f"no ver attribute in roster result: {res}"
        await roster_set(a, "bob@localhost", "Bob")
        push = await a.wait_for("roster_push", lambda iq: "bob@localhost" in (items_of(iq) or {}))
        v1 = query_ver(push)
        assert v1 and v1 != v0, f"push ver {v1!r} vs initial {v0!r}"
        # up to date: empty result, no query (RFC 6121 2.6.3)
        res = await roster_get(a, ver=v1)
        assert res.xml.find(f"{{{NS_ROSTER}}}query") is None or items_of(res) == {} and \
            query_ver(res) in (None, v1), f"expected empty result for current ver: {res}"
        # stale version: the server sends the full roster or pushes bringing us up to date
        b = await cl.login("alice", "v2", roster=False)
        res = await roster_get(b, ver=v0)
        items = items_of(res)
        if items is not None and items:
            assert "bob@localhost" in items and query_ver(res) == v1, res
        else:
            push = await b.wait_for("roster_push", lambda iq: "bob@localhost" in (items_of(iq) or {}),
                                    5, what="(catch-up push)")
        # a fresh login without ver still gets the full roster with the new ver
        res = await roster_get(b, ver="")
        assert "bob@localhost" in items_of(res) and query_ver(res) == v1, res
    run(scenario)


def test_roster_set_cannot_set_subscription_state(srv, run):
    """A client cannot grant itself a subscription by writing subscription='both'
    (RFC 6121 2.1.2.5: the server MUST ignore it)."""
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        try:
            await send_iq(a, None, f"<query xmlns='{NS_ROSTER}'><item jid='bob@localhost' "
                                   f"subscription='both' name='B'/></query>", itype="set")
        except IqError as e:
            assert e.iq["error"]["condition"] == "bad-request", e.iq
        items = items_of(await roster_get(a))
        assert items.get("bob@localhost", {"subscription": "none"})["subscription"] == "none", items
        b.send_presence(pstatus="secret")
        await a.expect_none("presence", lambda p: p["from"].bare == "bob@localhost", 1.0)
    run(scenario)
