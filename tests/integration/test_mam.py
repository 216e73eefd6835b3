"""XEP-0313 message archive management for one-to-one chats, with slixmpp's xep_0313
plugin as the client: a new device fetches history, pages through it (XEP-0059),
filters it, and the user's preferences decide what is kept."""
import asyncio
import datetime
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError

from conftest import clients_for, send_iq
from muc_util import record_raw

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
PLUGINS = ("xep_0030", "xep_0059", "xep_0313")


def bodies(results):
    return [m["mam_result"]["forwarded"]["stanza"]["body"] for m in results]


async def converse(cl, n, prefix="m"):
    """alice and bob exchange n messages alternately; returns the clients."""
    alice = await cl.login("alice", "desk")
    bob = await cl.login("bob", "b")
    for i in range(n):
        sender, to = (alice, "bob@localhost") if i % 2 == 0 else (bob, "alice@localhost")
        receiver = bob if i % 2 == 0 else alice
        sender.send_message(mto=to, mbody=f"{prefix}{i}", mtype="chat")
        await receiver.wait_for("message", lambda m, t=f"{prefix}{i}": m["body"] == t)
    return alice, bob


async def fetch_all(client, **kw):
    out = []
    async for m in client["xep_0313"].iterate(**kw):
        out.append(m)
    return out


def test_mam_new_device_fetches_history_in_order_with_paging(srv, run):
    async def scenario():
        cl = clients_for(srv)
        await converse(cl, 25)
        phone = await cl.login("alice", "new-phone", plugins=PLUGINS)
        info = await phone["xep_0030"].get_info(jid="alice@localhost")
        assert NS_MAM in info["disco_info"]["features"]
        results = await fetch_all(phone, rsm={"max": 10})
        assert bodies(results) == [f"m{i}" for i in range(25)]
        # Both directions are in alice's archive, each with the original sender.
        senders = {str(m["mam_result"]["forwarded"]["stanza"]["from"].bare) for m in results}
        assert senders == {"alice@localhost", "bob@localhost"}
        # Every result carries the server's timestamp.
        assert all(m["mam_result"]["forwarded"]["delay"]["stamp"] for m in results)
    run(scenario)


def test_mam_received_messages_carry_stanza_id_matching_archive(srv, run):
    async def scenario():
        cl = clients_for(srv)
        alice = await cl.login("alice", "desk", plugins=PLUGINS)
        bob = await cl.login("bob", "b")
        bob.send_message(mto="alice@localhost", mbody="with-id", mtype="chat")
        m = await alice.wait_for("message", lambda m: m["body"] == "with-id")
        sid = m.xml.find(f"{{{NS_SID}}}stanza-id")
        assert sid is not None and sid.get("by") == "alice@localhost", ET.tostring(m.xml)
        results = await fetch_all(alice)
        assert [r["mam_result"]["id"] for r in results] == [sid.get("id")]
    run(scenario)


def test_mam_bad_input_forged_stanza_id_is_removed(srv, run):
    async def scenario():
        cl = clients_for(srv)
        alice = await cl.login("alice", "desk")
        bob = await cl.login("bob", "b")
        bob.send_raw("<message to='alice@localhost' type='chat'><body>forged</body>"
                     f"<stanza-id xmlns='{NS_SID}' by='alice@localhost' id='evil'/></message>")
        m = await alice.wait_for("message", lambda m: m["body"] == "forged")
        ids = [e.get("id") for e in m.xml.findall(f"{{{NS_SID}}}stanza-id")]
        assert "evil" not in ids and len(ids) == 1, ids
    run(scenario)


def test_mam_filter_by_with_and_time(srv, run):
    async def scenario():
        cl = clients_for(srv)
        alice, bob = await converse(cl, 4, prefix="bob")
        carol = await cl.login("carol", "c")
        carol.send_message(mto="alice@localhost", mbody="from-carol", mtype="chat")
        await alice.wait_for("message", lambda m: m["body"] == "from-carol")
        q = await cl.login("alice", "query", plugins=PLUGINS)
        only_carol = await fetch_all(q, with_jid="carol@localhost")
        assert bodies(only_carol) == ["from-carol"]
        future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        assert await fetch_all(q, start=future) == []
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        assert len(await fetch_all(q, start=past)) == 5
    run(scenario)


def test_mam_preferences_never_stops_archiving(srv, run):
    async def scenario():
        cl = clients_for(srv)
        alice = await cl.login("alice", "desk", plugins=PLUGINS)
        bob = await cl.login("bob", "b")
        iq = alice.make_iq_set()
        prefs = ET.SubElement(iq.xml, f"{{{NS_MAM}}}prefs", default="never")
        ET.SubElement(ET.SubElement(prefs, f"{{{NS_MAM}}}always"), f"{{{NS_MAM}}}jid").text = \
            "carol@localhost"
        res = await iq.send(timeout=5)
        got = res.xml.find(f"{{{NS_MAM}}}prefs")
        assert got is not None and got.get("default") == "never"
        bob.send_message(mto="alice@localhost", mbody="not-kept", mtype="chat")
        await alice.wait_for("message", lambda m: m["body"] == "not-kept")
        carol = await cl.login("carol", "c")
        carol.send_message(mto="alice@localhost", mbody="kept", mtype="chat")
        await alice.wait_for("message", lambda m: m["body"] == "kept")
        assert bodies(await fetch_all(alice)) == ["kept"]
        # bob's own archive still has what he sent: preferences are per user.
        bq = await cl.login("bob", "q", plugins=PLUGINS)
        assert bodies(await fetch_all(bq)) == ["not-kept"]
    run(scenario)


def test_mam_bad_input_unknown_after_id_and_bad_dates(srv, run):
    async def scenario():
        cl = clients_for(srv)
        await converse(cl, 2)
        q = await cl.login("alice", "q", plugins=PLUGINS)
        try:
            await q["xep_0313"].retrieve(rsm={"after": "no-such-id", "max": 5})
            raise AssertionError("an unknown RSM id was accepted")
        except IqError as e:
            assert e.iq["error"]["condition"] == "item-not-found"
        iq = q.make_iq_set()
        query = ET.SubElement(iq.xml, f"{{{NS_MAM}}}query")
        form = ET.SubElement(query, "{jabber:x:data}x", type="submit")
        for var, value in (("FORM_TYPE", NS_MAM), ("start", "yesterday")):
            f = ET.SubElement(form, "{jabber:x:data}field", var=var)
            ET.SubElement(f, "{jabber:x:data}value").text = value
        try:
            await iq.send(timeout=5)
            raise AssertionError("a malformed date was accepted")
        except IqError as e:
            assert e.iq["error"]["condition"] == "bad-request"
    run(scenario)


def test_mam_archive_survives_restart_and_expires(server, run):
    srv = server(extra=["archive_expires_after = 1"])

    async def talk():
        cl = clients_for(srv)
        await converse(cl, 2)

    async def count():
        cl = clients_for(srv)
        q = await cl.login("alice", "q", plugins=PLUGINS)
        return len(await fetch_all(q))

    run(talk)
    srv.stop()
    srv.start()
    assert run(count) == 2
    # Age the archive by two days in the store, restart: the start-up expiry removes it.
    import sqlite3
    srv.stop()
    db = sqlite3.connect(f"{srv.dir}/data/parley.db")
    db.execute("UPDATE mam SET ts_us = ts_us - 2 * 86400 * 1000000")
    db.commit()
    db.close()
    srv.start()
    assert run(count) == 0
    assert "messages older than 1 days expired" in srv.log_text()


def test_mam_parleyctl_purge_per_user_and_bad_dates(srv, run):
    async def talk():
        cl = clients_for(srv)
        await converse(cl, 2)

    async def count(user):
        cl = clients_for(srv)
        q = await cl.login(user, "q", plugins=PLUGINS)
        return len(await fetch_all(q))

    run(talk)
    bad = srv.ctl("archive", "purge", "--before", "last-week", check=False)
    assert bad.returncode == 1 and "ISO 8601" in bad.stderr
    tomorrow = (datetime.datetime.now(datetime.timezone.utc) +
                datetime.timedelta(days=1)).strftime("%Y-%m-%d")
    out = srv.ctl("archive", "purge", "--before", tomorrow, "--user", "alice@localhost")
    assert "2 archived messages deleted" in out.stdout
    assert run(count, "alice") == 0
    assert run(count, "bob") == 2
    audit = srv.ctl("compliance", "audit").stdout
    assert "archive-purge" in audit


NS_RSM = "http://jabber.org/protocol/rsm"


async def raw_query(c, queryid, fields=(), rsm=""):
    """A MAM query with these form fields and this RSM <set/> body, from c (recording with
    muc_util.record_raw: slixmpp's 'message' event does not get these results); returns
    (the bodies of the results, their archive ids, the <fin/> element)."""
    form = ""
    if fields:
        form = (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
                f"<value>{NS_MAM}</value></field>" +
                "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields) +
                "</x>")
    s = f"<set xmlns='{NS_RSM}'>{rsm}</set>" if rsm else ""
    res = await send_iq(c, None, f"<query xmlns='{NS_MAM}' queryid='{queryid}'>{form}{s}</query>",
                        itype="set")
    got = [m for m in c.events["mucm"] if m.xml.find(f"{{{NS_MAM}}}result") is not None and
           m.xml.find(f"{{{NS_MAM}}}result").get("queryid") == queryid]
    out_bodies = [m.xml.find(f".//{{jabber:client}}body").text for m in got]
    ids = [m.xml.find(f"{{{NS_MAM}}}result").get("id") for m in got]
    return out_bodies, ids, res.xml.find(f"{{{NS_MAM}}}fin")


def rsm_of(fin, name):
    el = fin.find(f"{{{NS_RSM}}}set/{{{NS_RSM}}}{name}")
    return None if el is None else el.text


def test_mam_end_and_after_id_before_id_fields_and_rsm_before_an_id(srv, run):
    """'end' keeps what is not newer; the extended form fields after-id and before-id
    (urn:xmpp:mam:2#extended) and RSM <before>id</before> bound the results by id; each
    <fin/> says complete when its page reached the end, and the RSM <count/> is the size
    of the whole result set."""
    async def scenario():
        cl = clients_for(srv)
        alice = await cl.login("alice", "desk")
        bob = await cl.login("bob", "b")

        async def say(i):
            bob.send_message(mto="alice@localhost", mbody=f"e{i}", mtype="chat")
            await alice.wait_for("message", lambda m: m["body"] == f"e{i}")
        for i in range(3):
            await say(i)
        await asyncio.sleep(1.5)
        cut = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        await asyncio.sleep(1.5)
        for i in range(3, 6):
            await say(i)
        q = record_raw(await cl.login("alice", "q", plugins=PLUGINS))
        stamp = cut.strftime("%Y-%m-%dT%H:%M:%SZ")
        # 'end' with slixmpp's own form
        assert bodies(await fetch_all(q, end=cut)) == ["e0", "e1", "e2"]
        got, ids, fin = await raw_query(q, "all")
        assert got == [f"e{i}" for i in range(6)] and fin.get("complete") == "true"
        assert rsm_of(fin, "count") == "6"
        assert (rsm_of(fin, "first"), rsm_of(fin, "last")) == (ids[0], ids[5])
        got, _, fin = await raw_query(q, "end", [("end", stamp)])
        assert got == ["e0", "e1", "e2"] and rsm_of(fin, "count") == "3"
        got, _, _ = await raw_query(q, "start-end", [("start", stamp),
                                                     ("end", "2999-01-01T00:00:00Z")])
        assert got == ["e3", "e4", "e5"]
        # the extended id fields, alone and together
        got, _, fin = await raw_query(q, "after-id", [("after-id", ids[3])])
        assert got == ["e4", "e5"] and fin.get("complete") == "true"
        got, _, _ = await raw_query(q, "before-id", [("before-id", ids[2])])
        assert got == ["e0", "e1"]
        got, _, _ = await raw_query(q, "between", [("after-id", ids[0]), ("before-id", ids[4])])
        assert got == ["e1", "e2", "e3"]
        # RSM <before>id</before>: the page just before it, newest end, in archive order
        got, _, fin = await raw_query(q, "rsm-before",
                                      rsm=f"<max>2</max><before>{ids[4]}</before>")
        assert got == ["e2", "e3"]
        assert fin.get("complete") is None  # e0 and e1 lie further back
        assert rsm_of(fin, "count") == "6"  # the size of the whole set, not of the page
        got, _, fin = await raw_query(q, "rsm-before-all",
                                      rsm=f"<max>5</max><before>{ids[2]}</before>")
        assert got == ["e0", "e1"] and fin.get("complete") == "true"
        # a page in the middle going forwards is not complete, the last one is
        got, _, fin = await raw_query(q, "page1", rsm="<max>4</max>")
        assert got == ["e0", "e1", "e2", "e3"] and fin.get("complete") is None
        got, _, fin = await raw_query(q, "page2", rsm=f"<max>4</max><after>{ids[3]}</after>")
        assert got == ["e4", "e5"] and fin.get("complete") == "true"
        # <max>0</max> asks only for the count
        got, _, fin = await raw_query(q, "count-only", rsm="<max>0</max>")
        assert got == [] and rsm_of(fin, "count") == "6"
    run(scenario)


async def set_prefs(c, default, always=(), never=()):
    iq = c.make_iq_set()
    prefs = ET.SubElement(iq.xml, f"{{{NS_MAM}}}prefs", default=default)
    for name, jids in (("always", always), ("never", never)):
        el = ET.SubElement(prefs, f"{{{NS_MAM}}}{name}")
        for j in jids:
            ET.SubElement(el, f"{{{NS_MAM}}}jid").text = j
    return (await iq.send(timeout=5)).xml.find(f"{{{NS_MAM}}}prefs")


async def get_prefs(c):
    res = await send_iq(c, None, f"<prefs xmlns='{NS_MAM}'/>")
    p = res.xml.find(f"{{{NS_MAM}}}prefs")
    lists = {}
    for name in ("always", "never"):
        el = p.find(f"{{{NS_MAM}}}{name}")
        lists[name] = [] if el is None else sorted(j.text for j in el.findall(f"{{{NS_MAM}}}jid"))
    return p.get("default"), lists["always"], lists["never"]


def test_mam_preferences_roster_default_and_never_list(srv, run):
    """default='roster' keeps only messages with roster contacts; the never list wins
    over the default for the JIDs it names."""
    async def scenario():
        cl = clients_for(srv)
        alice = await cl.login("alice", "desk", plugins=PLUGINS)
        bob = await cl.login("bob", "b")
        carol = await cl.login("carol", "c")
        await alice.update_roster("carol@localhost", name="Carol")
        await set_prefs(alice, "roster")
        assert await get_prefs(alice) == ("roster", [], [])
        bob.send_message(mto="alice@localhost", mbody="stranger", mtype="chat")
        carol.send_message(mto="alice@localhost", mbody="contact", mtype="chat")
        await alice.wait_for("message", lambda m: m["body"] == "stranger")
        await alice.wait_for("message", lambda m: m["body"] == "contact")
        assert bodies(await fetch_all(alice)) == ["contact"]
        # always, but never carol: bob is kept now, carol no longer
        await set_prefs(alice, "always", never=["carol@localhost"])
        assert await get_prefs(alice) == ("always", [], ["carol@localhost"])
        bob.send_message(mto="alice@localhost", mbody="bob kept", mtype="chat")
        carol.send_message(mto="alice@localhost", mbody="carol dropped", mtype="chat")
        await alice.wait_for("message", lambda m: m["body"] == "bob kept")
        await alice.wait_for("message", lambda m: m["body"] == "carol dropped")
        assert bodies(await fetch_all(alice)) == ["contact", "bob kept"]
    run(scenario)


def test_mam_preferences_survive_restart(srv, run):
    async def first():
        cl = clients_for(srv)
        alice = await cl.login("alice", "desk", plugins=PLUGINS)
        await set_prefs(alice, "never", always=["carol@localhost"], never=["bob@localhost"])

    async def after():
        cl = clients_for(srv)
        alice = await cl.login("alice", "desk", plugins=PLUGINS)
        assert await get_prefs(alice) == ("never", ["carol@localhost"], ["bob@localhost"])
        dave = await cl.login("dave", "d")
        carol = await cl.login("carol", "c")
        dave.send_message(mto="alice@localhost", mbody="dave not kept", mtype="chat")
        carol.send_message(mto="alice@localhost", mbody="carol kept", mtype="chat")
        await alice.wait_for("message", lambda m: m["body"] == "dave not kept")
        await alice.wait_for("message", lambda m: m["body"] == "carol kept")
        assert bodies(await fetch_all(alice)) == ["carol kept"]

    run(first)
    assert not srv.stop()
    srv.start()
    run(after)
