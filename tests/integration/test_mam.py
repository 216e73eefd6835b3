"""XEP-0313 message archive management for one-to-one chats, with slixmpp's xep_0313
plugin as the client: a new device fetches history, pages through it (XEP-0059),
filters it, and the user's preferences decide what is kept."""
import asyncio
import datetime
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError

from conftest import clients_for

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
