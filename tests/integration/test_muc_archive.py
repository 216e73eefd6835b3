"""A room's message archive (XEP-0313 queries addressed to a room JID, docs/muc.md), with
slixmpp's xep_0313 plugin as the client: each room message is archived once under the
room's stanza-id, occupants page through it like through their own archive, outsiders
and the wrong filters are refused, the room advertises it, retention applies, and a
temporary room's archive goes with the room."""
import sqlite3

import pytest
from slixmpp.exceptions import IqError

from conftest import clients_for, send_iq
from muc_util import (MUC, NS_SID, PLUGINS as MUC_PLUGINS, codes, configure, create, gc_body,
                      groupchat, join, login, logins, occupied_room, room)

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
PLUGINS = MUC_PLUGINS + ("xep_0059", "xep_0313")


async def mam_login(cl, user):
    """muc_util.login, with the MAM plugins too."""
    return await login(cl, user, plugins=PLUGINS)


async def fetch_all(c, rjid, **kw):
    return [m async for m in c["xep_0313"].iterate(jid=rjid, **kw)]


def fwd(m):
    return m["mam_result"]["forwarded"]["stanza"]


def rows(srv, owner):
    db = sqlite3.connect(f"{srv.dir}/data/parley.db")
    try:
        return db.execute("SELECT count(*) FROM mam WHERE owner = ?", (owner,)).fetchone()[0]
    finally:
        db.close()


async def talk(a, rjid, bodies):
    """alice says each body in the room; returns the stanza-ids the room gave them."""
    ids = []
    for text in bodies:
        groupchat(a, rjid, text)
        m = await a.wait_for("message", gc_body(rjid, text))
        ids.append(m.xml.find(f"{{{NS_SID}}}stanza-id").get("id"))
    return ids


def test_room_archive_occupants_page_through_it_with_the_rooms_stanza_ids(srv, run):
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "annals", "alice", "bob", plugins=PLUGINS)
        info = await b["xep_0030"].get_info(jid=rjid, timeout=5)
        assert NS_MAM in info["disco_info"]["features"]
        ids = await talk(a, rjid, [f"entry {i}" for i in range(12)])
        got = await fetch_all(b, rjid, rsm={"max": 5})
        assert [fwd(m)["body"] for m in got] == [f"entry {i}" for i in range(12)]
        # the archive id is the stanza-id everyone saw live: clients dedupe on it
        assert [m["mam_result"]["id"] for m in got] == ids
        assert all(m["from"] == rjid for m in got)
        assert {str(fwd(m)["from"]) for m in got} == {f"{rjid}/alice"}
        assert all(fwd(m)["type"] == "groupchat" for m in got)
        assert all(m["mam_result"]["forwarded"]["delay"]["stamp"] for m in got)
        # the last page, as a new device asks for it (RSM empty <before/>)
        b.clear("mucm")
        await send_iq(b, rjid, f"<query xmlns='{NS_MAM}' queryid='lastpage'><set xmlns="
                      f"'{NS_RSM}'><max>3</max><before/></set></query>", itype="set")
        last = [m for m in b.events["mucm"] if m["mam_result"]["queryid"] == "lastpage"]
        assert [fwd(m)["body"] for m in last] == ["entry 9", "entry 10", "entry 11"]
        # and what came after a known id
        after = await fetch_all(a, rjid, rsm={"after": ids[9], "max": 50})
        assert [fwd(m)["body"] for m in after] == ["entry 10", "entry 11"]
        # a user's own archive does not get room messages
        own = await fetch_all(b, "bob@localhost")
        assert own == []
        # archived once for the room, not once per occupant
        assert rows(srv, rjid) == 12
    run(scenario)


def test_room_archive_bad_input_query_from_outsider_and_prefs_refused(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, d = await logins(cl, "alice", "dave", plugins=PLUGINS)
        rjid = await create(a, "closed-book", "alice")
        await talk(a, rjid, ["not for dave"])
        with pytest.raises(IqError) as ei:
            await d["xep_0313"].retrieve(jid=rjid, timeout=5)
        assert ei.value.iq["error"]["condition"] == "forbidden"
        assert "join the room" in ei.value.iq["error"]["text"]
        with pytest.raises(IqError) as ei:
            await send_iq(a, rjid, f"<prefs xmlns='{NS_MAM}' default='always'/>", itype="set")
        assert ei.value.iq["error"]["condition"] == "feature-not-implemented"
        with pytest.raises(IqError) as ei:
            await a["xep_0313"].retrieve(jid=rjid, rsm={"after": "no-such-id"}, timeout=5)
        assert ei.value.iq["error"]["condition"] == "item-not-found"
        # a query to a room that does not exist
        with pytest.raises(IqError) as ei:
            await a["xep_0313"].retrieve(jid=room("nowhere"), timeout=5)
        assert ei.value.iq["error"]["condition"] == "item-not-found"
    run(scenario)


def test_room_archive_members_read_members_only_room_without_joining(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await mam_login(cl, "alice")
        rjid = await create(a, "members-log", "alice", config={"membersonly": "1"})
        await a.plugin["xep_0045"].set_affiliation(rjid, "member", jid="bob@localhost",
                                                    timeout=5)
        await talk(a, rjid, ["minutes of the meeting"])
        b = await mam_login(cl, "bob")
        got = await fetch_all(b, rjid)
        assert [fwd(m)["body"] for m in got] == ["minutes of the meeting"]
        c = await mam_login(cl, "carol")
        with pytest.raises(IqError) as ei:
            await c["xep_0313"].retrieve(jid=rjid, timeout=5)
        assert ei.value.iq["error"]["condition"] == "forbidden"
        assert "members only" in ei.value.iq["error"]["text"]
    run(scenario)


def test_room_archive_with_filter_by_real_jid_and_refused_in_semi_anonymous_room(srv, run):
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "open-names", "alice", "bob", plugins=PLUGINS)
        await talk(a, rjid, ["from alice"])
        groupchat(b, rjid, "from bob")
        await b.wait_for("message", gc_body(rjid, "from bob"))
        got = await fetch_all(b, rjid, with_jid="bob@localhost")
        assert [fwd(m)["body"] for m in got] == ["from bob"]
        # whois = moderators: only moderators may filter on real JIDs
        await configure(a, rjid, {"whois": "moderators"})
        with pytest.raises(IqError) as ei:
            await b["xep_0313"].retrieve(jid=rjid, with_jid="alice@localhost", timeout=5)
        assert ei.value.iq["error"]["condition"] == "not-allowed"
        assert "hides real JIDs" in ei.value.iq["error"]["text"]
        assert len(await fetch_all(b, rjid)) == 2
        got = await fetch_all(a, rjid, with_jid="bob@localhost")  # alice is a moderator
        assert [fwd(m)["body"] for m in got] == ["from bob"]
    run(scenario)


def test_room_archive_of_temporary_room_deleted_with_the_room(srv, run):
    async def first():
        cl = clients_for(srv)
        a = await mam_login(cl, "alice")
        rjid = await create(a, "ephemeral", "alice")
        await talk(a, rjid, ["gone soon", "also gone"])
        assert rows(srv, rjid) == 2
        a.plugin["xep_0045"].leave_muc(rjid, "alice")
        await a.wait_for("mucp", lambda p: p["from"].bare == rjid and p["type"] == "unavailable")
    run(first)
    assert rows(srv, room("ephemeral")) == 0

    async def again():
        cl = clients_for(srv)
        a = await mam_login(cl, "alice")
        rjid = await create(a, "ephemeral", "alice")
        assert await fetch_all(a, rjid) == []
    run(again)


def test_room_archive_of_persistent_room_survives_restart_and_expires(server, run):
    srv = server(extra=["archive_expires_after = 1"])

    async def first():
        cl = clients_for(srv)
        a = await mam_login(cl, "alice")
        rjid = await create(a, "standing", "alice", config={"persistentroom": "1"})
        await talk(a, rjid, ["kept over a restart"])

    async def count():
        cl = clients_for(srv)
        a = await mam_login(cl, "alice")
        pres, *_ = await join(a, room("standing"), "alice")
        assert 110 in codes(pres)
        return [fwd(m)["body"] for m in await fetch_all(a, room("standing"))]

    run(first)
    assert not srv.stop()
    srv.start()
    assert run(count) == ["kept over a restart"]
    assert not srv.stop()
    db = sqlite3.connect(f"{srv.dir}/data/parley.db")
    db.execute("UPDATE mam SET ts_us = ts_us - 2 * 86400 * 1000000")
    db.commit()
    db.close()
    srv.start()
    assert run(count) == []


def test_room_archive_off_when_the_archive_is_off(server, run):
    srv = server(extra=["archive = no"])

    async def scenario():
        cl = clients_for(srv)
        a = await mam_login(cl, "alice")
        rjid = await create(a, "unrecorded", "alice")
        info = await a["xep_0030"].get_info(jid=rjid, timeout=5)
        assert NS_MAM not in info["disco_info"]["features"]
        await talk(a, rjid, ["not archived"])
        with pytest.raises(IqError) as ei:
            await a["xep_0313"].retrieve(jid=rjid, timeout=5)
        assert ei.value.iq["error"]["condition"] == "service-unavailable"
    run(scenario)
    assert rows(srv, f"unrecorded@{MUC}") == 0


def test_room_archive_answers_carry_the_rsm_count_and_complete(srv, run):
    """A room's archive answers like a user's: <count/> is the size of the whole result
    set (XEP-0059), <fin complete='true'/> only on the page that reaches its end."""
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "counted", "alice", "bob", plugins=PLUGINS)
        ids = await talk(a, rjid, [f"n{i}" for i in range(5)])
        groupchat(b, rjid, "from bob")
        await b.wait_for("message", gc_body(rjid, "from bob"))

        async def fin_of(rsm, form=""):
            res = await send_iq(b, rjid, f"<query xmlns='{NS_MAM}'>{form}<set xmlns='{NS_RSM}'>"
                                f"{rsm}</set></query>", itype="set")
            fin = res.xml.find(f"{{{NS_MAM}}}fin")
            count = fin.find(f"{{{NS_RSM}}}set/{{{NS_RSM}}}count")
            return fin.get("complete"), None if count is None else count.text

        assert await fin_of("<max>2</max>") == (None, "6")
        assert await fin_of(f"<max>2</max><after>{ids[3]}</after>") == ("true", "6")
        assert await fin_of("<max>10</max><before/>") == ("true", "6")
        with_bob = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                    f"<value>{NS_MAM}</value></field><field var='with'><value>bob@localhost"
                    "</value></field></x>")
        assert await fin_of("<max>0</max>", with_bob) == (None, "1")
    run(scenario)
