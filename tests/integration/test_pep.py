"""XEP-0163 PEP (docs/pep.md) with slixmpp's xep_0163/xep_0060/xep_0115 plugins:
notifications to resources whose entity capabilities carry NODE+notify (and only
those), access models presence and open, publish-options (max_items trimming, "max",
precondition-not-met), retract, node deletion, persistence across a restart, the last
item on sign-in and on a new subscription, the limits, and the OMEMO (XEP-0384) device
list and bundle nodes."""
import asyncio
import re
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from conftest import clients_for, raw_login, send_iq
from test_presence import subscribe

NS_TUNE = "http://jabber.org/protocol/tune"
NS_MOOD = "http://jabber.org/protocol/mood"
NS_DEVICES = "urn:xmpp:omemo:2:devices"
NS_BUNDLES = "urn:xmpp:omemo:2:bundles"
NS_OMEMO = "urn:xmpp:omemo:2"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
PLUGINS = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163")


async def pep_login(cl, user, resource, interests=(), presence=True):
    """A slixmpp client with PEP; its caps announce NODE+notify for each interest before
    its first presence, and it records pubsub events."""
    c = cl.make(user, resource, plugins=PLUGINS)
    c.events["pubsub"] = []
    for ev in ("pubsub_publish", "pubsub_retract", "pubsub_delete", "pubsub_purge"):
        c.add_event_handler(ev, lambda m, ev=ev: c.events["pubsub"].append((ev, m)))
    await cl.connect(c)
    await asyncio.wait_for(c.get_roster(), 10)
    for ns in interests:
        c["xep_0163"].add_interest(ns)  # the disco feature NS+notify
    await c["xep_0115"].update_caps(broadcast=False)
    if presence:
        c.send_presence()
        await asyncio.sleep(0.3)
    return c


def payload(ns, text):
    el = ET.Element(f"{{{ns}}}tune" if ns == NS_TUNE else f"{{{ns}}}data")
    el.text = text
    return el


def event_pred(kind, node, item_id=None, frm=None):
    def pred(ev):
        name, msg = ev
        if name != kind:
            return False
        items = msg["pubsub_event"]["items"] if kind in ("pubsub_publish", "pubsub_retract") \
            else msg["pubsub_event"][kind.split("_")[1]]
        if items["node"] != node:
            return False
        if frm is not None and msg["from"].bare != frm:
            return False
        if item_id is not None:
            it = items["substanzas"][0] if kind != "pubsub_delete" else None
            return it is not None and it["id"] == item_id
        return True
    return pred


def event_text(ev):
    _, msg = ev
    item = msg["pubsub_event"]["items"]["substanzas"][0]
    return item["payload"].text


def options(c, **fields):
    form = c["xep_0004"].make_form("submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for k, v in fields.items():
        form.add_field(var=f"pubsub#{k}", value=v)
    return form


async def publish(c, node, item_id, text, opts=None, ns=None):
    return await c["xep_0060"].publish(c.boundjid.bare, node, id=item_id,
                                       payload=payload(ns or node, text), options=opts,
                                       timeout=5)


async def item_ids(c, owner, node, max_items=None):
    iq = await c["xep_0060"].get_items(owner, node, max_items=max_items, timeout=5)
    return [it["id"] for it in iq["pubsub"]["items"]]


def error_of(exc):
    err = exc.iq["error"]
    app = [el.tag.split("}")[1] for el in err.xml if el.tag.startswith(f"{{{NS_PUBSUB_ERRORS}}}")]
    return err["condition"], (app[0] if app else None), err["text"]


def test_publish_notifies_interested_resources_only(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await pep_login(cl, "alice", "a", interests=[NS_TUNE])
        a2 = await pep_login(cl, "alice", "a2")            # no +notify
        b = await pep_login(cl, "bob", "b", interests=[NS_TUNE])
        bx = await pep_login(cl, "bob", "bx")              # no +notify
        c = await pep_login(cl, "carol", "c", interests=[NS_TUNE])  # no subscription
        await subscribe(b, a)  # bob receives alice's presence
        res = await publish(a, NS_TUNE, "t1", "Song One")
        assert res["pubsub"]["publish"]["item"]["id"] == "t1"
        ev = await a.wait_for("pubsub", event_pred("pubsub_publish", NS_TUNE, "t1"), 5)
        assert event_text(ev) == "Song One"
        ev = await b.wait_for("pubsub", event_pred("pubsub_publish", NS_TUNE, "t1",
                                                   "alice@localhost"), 5)
        assert event_text(ev) == "Song One"
        assert ev[1]["type"] == "headline"
        # no +notify, or no subscription to a presence-access node: nothing
        await a2.expect_none("pubsub", duration=0.5)
        await bx.expect_none("pubsub", duration=0.2)
        await c.expect_none("pubsub", duration=0.2)
        # items: the owner and the subscribed contact may read, others may not
        assert await item_ids(b, "alice@localhost", NS_TUNE) == ["t1"]
        with pytest.raises(IqError) as e:
            await item_ids(c, "alice@localhost", NS_TUNE)
        assert error_of(e.value)[:2] == ("not-authorized", "presence-subscription-required")
    run(scenario)


def test_open_access_reaches_anyone_interested(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await pep_login(cl, "alice", "a")
        c = await pep_login(cl, "carol", "c", interests=[NS_MOOD])
        d = await pep_login(cl, "dave", "d")  # no interest
        await publish(a, NS_MOOD, "m1", "happy", opts=options(a, access_model="open"))
        ev = await c.wait_for("pubsub", event_pred("pubsub_publish", NS_MOOD, "m1"), 5)
        assert event_text(ev) == "happy"
        await d.expect_none("pubsub", duration=0.5)
        assert await item_ids(d, "alice@localhost", NS_MOOD) == ["m1"]
        # publish-options that contradict the node: precondition-not-met, item not stored
        with pytest.raises(IqError) as e:
            await publish(a, NS_MOOD, "m2", "sad", opts=options(a, access_model="presence"))
        cond, app, text = error_of(e.value)
        assert (cond, app) == ("conflict", "precondition-not-met")
        assert "access_model" in text
        assert await item_ids(a, "alice@localhost", NS_MOOD) == ["m1"]
        # unsupported access models and options are refused clearly
        with pytest.raises(IqError) as e:
            await publish(a, "urn:x:wl", "1", "x", opts=options(a, access_model="whitelist"),
                          ns=NS_MOOD)
        assert "whitelist" in error_of(e.value)[2]
    run(scenario)


def test_max_items_trimming_retract_and_delete(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await pep_login(cl, "alice", "a", interests=[NS_TUNE])
        for i in range(5):
            await publish(a, NS_TUNE, f"t{i}", f"song {i}", opts=options(a, max_items="3"))
        assert await item_ids(a, "alice@localhost", NS_TUNE) == ["t2", "t3", "t4"]
        assert await item_ids(a, "alice@localhost", NS_TUNE, max_items=1) == ["t4"]
        one = await a["xep_0060"].get_item("alice@localhost", NS_TUNE, "t3", timeout=5)
        assert [it["payload"].text for it in one["pubsub"]["items"]] == ["song 3"]
        # republishing an id replaces the item and makes it the newest
        await publish(a, NS_TUNE, "t2", "song 2 again", opts=options(a, max_items="3"))
        assert await item_ids(a, "alice@localhost", NS_TUNE) == ["t3", "t4", "t2"]
        a.clear("pubsub")
        # retract with notify
        await a["xep_0060"].retract("alice@localhost", NS_TUNE, "t3", notify=True, timeout=5)
        await a.wait_for("pubsub", event_pred("pubsub_retract", NS_TUNE, "t3"), 5)
        assert await item_ids(a, "alice@localhost", NS_TUNE) == ["t4", "t2"]
        with pytest.raises(IqError) as e:
            await a["xep_0060"].retract("alice@localhost", NS_TUNE, "t3", timeout=5)
        assert error_of(e.value)[0] == "item-not-found"
        # someone else cannot publish or retract here
        b = await pep_login(cl, "bob", "b")
        with pytest.raises(IqError) as e:
            await b["xep_0060"].publish("alice@localhost", NS_TUNE, id="x",
                                        payload=payload(NS_TUNE, "x"), timeout=5)
        assert error_of(e.value)[0] == "forbidden"
        # node deletion, notified
        await a["xep_0060"].delete_node("alice@localhost", NS_TUNE, timeout=5)
        await a.wait_for("pubsub", event_pred("pubsub_delete", NS_TUNE), 5)
        with pytest.raises(IqError) as e:
            await item_ids(a, "alice@localhost", NS_TUNE)
        assert error_of(e.value)[0] == "item-not-found"
    run(scenario)


def test_items_persist_across_restart_and_last_item_on_sign_in(srv, run):
    async def first():
        cl = clients_for(srv)
        a = await pep_login(cl, "alice", "a")
        b = await pep_login(cl, "bob", "b")
        await subscribe(b, a)
        await publish(a, NS_TUNE, "old", "before restart", opts=options(a, max_items="5"))
        await publish(a, NS_TUNE, "last", "still here", opts=options(a, max_items="5"))

    async def second():
        cl = clients_for(srv)
        assert await item_ids(await pep_login(cl, "alice", "a"), "alice@localhost",
                              NS_TUNE) == ["old", "last"]
        # a contact that signs in interested gets the last item without asking
        b = await pep_login(cl, "bob", "b", interests=[NS_TUNE])
        ev = await b.wait_for("pubsub", event_pred("pubsub_publish", NS_TUNE, "last",
                                                   "alice@localhost"), 5)
        assert event_text(ev) == "still here"
        await asyncio.sleep(0.3)
        assert len([e for e in b.events["pubsub"] if e[0] == "pubsub_publish"]) == 0
        # carol is not subscribed: nothing at sign-in; once alice approves her, the last
        # item arrives
        c = await pep_login(cl, "carol", "c", interests=[NS_TUNE])
        await c.expect_none("pubsub", duration=0.5)
        a = cl.all[0]
        await subscribe(c, a)
        await c.wait_for("pubsub", event_pred("pubsub_publish", NS_TUNE, "last"), 5)

    run(first)
    assert not srv.stop()
    srv.start()
    run(second)


def test_interest_learned_from_caps_query_and_cached(srv, run):
    """The server asks a new caps ver with disco#info (node#ver) and verifies its hash; a
    second client with the same ver is served from the cache, without a query."""
    async def scenario():
        cl = clients_for(srv)
        asked = {}

        def counting(name):
            def f(st):
                if st.name == "iq" and st["type"] == "get" and \
                        st.xml.find("{http://jabber.org/protocol/disco#info}query") is not None:
                    asked[name] = asked.get(name, 0) + 1
                return st
            return f

        clients = []
        for res in ("a", "a2"):
            c = await pep_login(cl, "alice", res, interests=[NS_TUNE], presence=False)
            c.add_filter("in", counting(res))
            c.send_presence()
            await asyncio.sleep(0.5)
            clients.append(c)
        assert asked == {"a": 1}, asked
        await publish(clients[0], NS_TUNE, "x", "cached")
        for c in clients:
            await c.wait_for("pubsub", event_pred("pubsub_publish", NS_TUNE, "x"), 5)
    run(scenario)


def test_forged_caps_are_not_cached_for_others(srv, run):
    """A client whose disco#info answer does not hash to the ver it announced is served by
    its own answer alone: another client announcing the same ver is asked again."""
    async def scenario():
        cl = clients_for(srv)
        a = await pep_login(cl, "alice", "a")
        liar, liar_jid = raw_login(srv, "bob", "liar")
        try:
            ver = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
            node = "http://example.org/caps"
            liar.send(f"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                      f"node='{node}' ver='{ver}'/></presence>")
            q = await asyncio.to_thread(
                liar.read_until, r"<iq\b[^>]*>\s*<query[^>]*disco#info.*?</iq>|<iq\b[^>]*/>")
            assert f"{node}#{ver}" in q, q
            qid = re.search(r"id=['\"]([^'\"]+)", q).group(1)
            liar.send(f"<iq type='result' id='{qid}' to='localhost'><query "
                      f"xmlns='http://jabber.org/protocol/disco#info' node='{node}#{ver}'>"
                      "<identity category='client' type='pc'/>"
                      f"<feature var='{NS_TUNE}+notify'/></query></iq>")
            liar.send("<presence to='alice@localhost' type='subscribe'/>")
            await a.wait_for("presence", lambda p: p["type"] == "subscribe", 5)
            a.send_presence(pto="bob@localhost", ptype="subscribed")
            # an honest client with no interest announces the same ver
            good = await pep_login(cl, "bob", "honest", presence=False)
            good.send_raw(f"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                          f"node='{node}' ver='{ver}'/></presence>")
            await asyncio.sleep(1.0)
            await publish(a, NS_TUNE, "t", "x")
            # the liar's own (unverified) answer still serves the liar
            await asyncio.to_thread(liar.read_until, r"<message\b[^>]*headline.*?</message>")
            # but was not believed for the honest client, whose real features lack +notify
            await good.expect_none("pubsub", duration=0.5)
        finally:
            liar.close()
    run(scenario)


def test_limits(server, run):
    srv = server(extra=["pep_max_nodes = 2", "pep_max_items = 4", "pep_max_payload = 1K"])

    async def scenario():
        cl = clients_for(srv)
        a = await pep_login(cl, "alice", "a")
        await publish(a, "urn:x:one", "1", "x", ns=NS_TUNE)
        await publish(a, "urn:x:two", "1", "x", ns=NS_TUNE)
        with pytest.raises(IqError) as e:
            await publish(a, "urn:x:three", "1", "x", ns=NS_TUNE)
        cond, _, text = error_of(e.value)
        assert cond == "not-allowed" and "at most 2 PEP nodes" in text
        with pytest.raises(IqError) as e:
            await publish(a, "urn:x:one", "2", "y" * 2000, ns=NS_TUNE)
        cond, app, text = error_of(e.value)
        assert (cond, app) == ("not-acceptable", "payload-too-big")
        with pytest.raises(IqError) as e:
            await publish(a, "urn:x:one", "2", "y", opts=options(a, max_items="10"), ns=NS_TUNE)
        assert "limit of 4" in error_of(e.value)[2]
        # "max" is the server's limit
        await a["xep_0060"].delete_node("alice@localhost", "urn:x:two", timeout=5)
        for i in range(6):
            await publish(a, "urn:x:two", f"i{i}", "x", opts=options(a, max_items="max"),
                          ns=NS_TUNE)
        assert await item_ids(a, "alice@localhost", "urn:x:two") == ["i2", "i3", "i4", "i5"]
        # bad requests are answered, the server stays up
        for bad in (f"<pubsub xmlns='{NS_PUBSUB}'><publish/></pubsub>",
                    f"<pubsub xmlns='{NS_PUBSUB}'><publish node='n'/></pubsub>",
                    f"<pubsub xmlns='{NS_PUBSUB}'><publish node='n'><item id='1'/></publish>"
                    "</pubsub>",
                    f"<pubsub xmlns='{NS_PUBSUB}'><items/></pubsub>",
                    f"<pubsub xmlns='{NS_PUBSUB}'><subscribe node='n' jid='alice@localhost'/>"
                    "</pubsub>"):
            with pytest.raises(IqError):
                await send_iq(a, "alice@localhost", bad, itype="set" if "items" not in bad
                              else "get")
        await publish(a, "urn:x:one", "ok", "still up", ns=NS_TUNE)
    run(scenario)


def test_omemo_device_list_and_bundle(srv, run):
    """XEP-0384: the device list and the bundle are published with max_items=max and
    access_model=open; anyone may fetch them, contacts interested in the device list are
    notified."""
    async def scenario():
        cl = clients_for(srv)
        a = await pep_login(cl, "alice", "a", interests=[NS_DEVICES])
        b = await pep_login(cl, "bob", "b", interests=[NS_DEVICES])
        c = await pep_login(cl, "carol", "c")
        await subscribe(b, a)
        devices = ET.fromstring(f"<devices xmlns='{NS_OMEMO}'><device id='12345' "
                                "label='Phone'/></devices>")
        opts = options(a, max_items="max", access_model="open")
        await a["xep_0060"].publish("alice@localhost", NS_DEVICES, id="current",
                                    payload=devices, options=opts, timeout=5)
        bundle = ET.fromstring(
            f"<bundle xmlns='{NS_OMEMO}'><spk id='0'>c3BrCg==</spk><spks>c3Brcwo=</spks>"
            "<ik>aWsK</ik><prekeys><pk id='1'>cGsxCg==</pk><pk id='2'>cGsyCg==</pk>"
            "</prekeys></bundle>")
        await a["xep_0060"].publish("alice@localhost", NS_BUNDLES, id="12345",
                                    payload=bundle, options=opts, timeout=5)
        ev = await b.wait_for("pubsub", event_pred("pubsub_publish", NS_DEVICES, "current"), 5)
        dev = ev[1]["pubsub_event"]["items"]["substanzas"][0]["payload"]
        assert dev.find(f"{{{NS_OMEMO}}}device").get("id") == "12345"
        # the bundle node has no +notify interest: only fetched
        assert not [e for e in b.events["pubsub"] if event_pred("pubsub_publish", NS_BUNDLES)(e)]
        got = await c["xep_0060"].get_item("alice@localhost", NS_BUNDLES, "12345", timeout=5)
        items = list(got["pubsub"]["items"])
        assert len(items) == 1
        assert items[0]["payload"].find(f"{{{NS_OMEMO}}}ik").text == "aWsK"
        # a second device's bundle lives beside the first (max_items=max)
        await a["xep_0060"].publish("alice@localhost", NS_BUNDLES, id="67890",
                                    payload=bundle, options=opts, timeout=5)
        assert await item_ids(c, "alice@localhost", NS_BUNDLES) == ["12345", "67890"]
        # the node's configuration says what was asked
        conf = await send_iq(a, "alice@localhost",
                             f"<pubsub xmlns='{NS_PUBSUB}#owner'><configure node='{NS_BUNDLES}'/>"
                             "</pubsub>")
        values = {f.get("var"): f.findtext("{jabber:x:data}value")
                  for f in conf.xml.iter("{jabber:x:data}field")}
        assert values["pubsub#max_items"] == "max"
        assert values["pubsub#access_model"] == "open"
        # the account advertises PEP with publish-options
        info = await a["xep_0030"].get_info(jid="alice@localhost", timeout=5)
        feats = info["disco_info"]["features"]
        assert f"{NS_PUBSUB}#publish-options" in feats
        assert ("pubsub", "pep", None, None) in info["disco_info"]["identities"]
    run(scenario)
