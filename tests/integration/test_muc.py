"""Multi-user chat (XEP-0045, docs/muc.md) against parleyd, with slixmpp's xep_0045 plugin
as the independent client: creating and configuring rooms, joining and leaving with their
status codes, the refusals (nickname taken, password, members only, banned, locked),
moderation, subject, history, invitations, private messages, destruction, persistence
across a restart, the service's limits, the compliance record of each room message, and
200 occupants who all see one burst of messages in one order."""
import asyncio
import datetime
import os
import re
import socket
import sqlite3
import struct
import time

from conftest import DOMAIN, RawStream, clients_for, exchange, send_iq
from muc_util import (MUC, NS_DELAY, NS_MUC_OWNER, NS_MUC_USER, NS_SID, PLUGINS, codes,
                      configure, create, error_for, gc_body, groupchat, instant, iq_error, join,
                      join_error, login, logins, occupied_room, presence_of, room)


# --------------------------------------------------------------------------- rooms

def test_create_instant_room_join_leave_status_codes(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b = await logins(cl, "alice", "bob")
        rjid = room("lobby")
        pres, subject, occupants, history = await join(a, rjid, "Alice")
        # a new room: owner, moderator, 110 self, 201 created, 100 non-anonymous, 170 archived
        assert codes(pres) >= {110, 201, 100, 170}, codes(pres)
        assert (pres["muc"]["affiliation"], pres["muc"]["role"]) == ("owner", "moderator")
        assert pres["muc"]["jid"] == a.boundjid
        assert subject["subject"] == "" and history == []
        assert [p["from"].resource for p in occupants] == ["Alice"]  # slixmpp counts itself
        # locked until the owner accepts or configures it
        err = await join_error(b, rjid, "Bob")
        assert err.condition == "item-not-found", err
        await instant(a, rjid)

        pres, *_ = await join(b, rjid, "Bob")
        assert codes(pres) >= {110, 100} and 201 not in codes(pres)
        assert (pres["muc"]["affiliation"], pres["muc"]["role"]) == ("none", "participant")
        # bob saw alice first (non-anonymous: with her real JID), alice sees bob arrive
        seen = await b.wait_for("mucp", presence_of(rjid, "Alice"))
        assert seen["muc"]["jid"] == a.boundjid and 110 not in codes(seen)
        arrived = await a.wait_for("mucp", presence_of(rjid, "Bob"))
        assert arrived["muc"]["jid"] == b.boundjid and arrived["muc"]["role"] == "participant"

        # nickname change: 303 with the new nick, then presence under the new nick
        b.send_presence(pto=f"{rjid}/Robert")
        gone = await a.wait_for("mucp", presence_of(rjid, "Bob", "unavailable"))
        assert 303 in codes(gone) and gone["muc"]["item"]["nick"] == "Robert"
        await a.wait_for("mucp", presence_of(rjid, "Robert"))
        mine = await b.wait_for("mucp", lambda p: presence_of(rjid, "Bob", "unavailable")(p)
                                and 110 in codes(p))
        assert 303 in codes(mine)

        # leaving: unavailable to everyone, 110 for the leaver
        b.send_presence(pto=f"{rjid}/Robert", ptype="unavailable")
        left = await b.wait_for("mucp", presence_of(rjid, "Robert", "unavailable"))
        assert 110 in codes(left) and left["muc"]["role"] == "none"
        await a.wait_for("mucp", presence_of(rjid, "Robert", "unavailable"))

        # the service lists the room; disco#info on it says what it is
        items = await a.plugin["xep_0030"].get_items(jid=MUC, timeout=5)
        assert (rjid, None, "lobby") in items["disco_items"]["items"], items
        info = await a.plugin["xep_0030"].get_info(jid=rjid, timeout=5)
        feats = set(info["disco_info"]["features"])
        assert {"http://jabber.org/protocol/muc", "muc_temporary", "muc_open", "muc_unmoderated",
                "muc_unsecured", "muc_nonanonymous", "muc_public", NS_SID} <= feats, feats
        # the server's disco#items names the group chat service
        items = await a.plugin["xep_0030"].get_items(jid=DOMAIN, timeout=5)
        assert MUC in [i[0] for i in items["disco_items"]["items"]]
    run(scenario)


def test_create_with_form_and_bad_forms(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b = await logins(cl, "alice", "bob")
        rjid = room("planning")
        await join(a, rjid, "alice")
        form = await a.plugin["xep_0045"].get_room_config(rjid, timeout=5)
        fields = form.get_fields()
        for var in ("roomname", "persistentroom", "membersonly", "moderatedroom",
                    "passwordprotectedroom", "roomsecret", "maxusers", "whois", "publicroom"):
            assert f"muc#roomconfig_{var}" in fields, var
        assert fields["muc#roomconfig_whois"]["value"] == "anyone"  # non-anonymous default
        # bad forms are refused with a reason, and change nothing
        e = await iq_error(configure(a, rjid, {"maxusers": "100000"}))
        assert e["condition"] == "not-acceptable" and "at most 1000" in e["text"], e
        e = await iq_error(configure(a, rjid, {"persistentroom": "maybe"}))
        assert e["condition"] == "not-acceptable" and "boolean" in e["text"]
        e = await iq_error(configure(a, rjid, {"passwordprotectedroom": "1"}))
        assert e["condition"] == "not-acceptable" and "needs a password" in e["text"]
        # a non-owner cannot read or change the form
        await configure(a, rjid, {"roomname": "Planning", "roomdesc": "Quarterly planning",
                                  "maxusers": "20", "publicroom": "0"})
        await join(b, rjid, "bob")
        e = await iq_error(b.plugin["xep_0045"].get_room_config(rjid, timeout=5))
        assert e["condition"] == "forbidden"
        info = await b.plugin["xep_0030"].get_info(jid=rjid, timeout=5)
        assert "muc_hidden" in info["disco_info"]["features"]
        assert {i[3] for i in info["disco_info"]["identities"]} == {"Planning"}
        form = {f.get("var"): f.findtext("{jabber:x:data}value")
                for f in info.xml.iter("{jabber:x:data}field")}
        assert form["FORM_TYPE"] == "http://jabber.org/protocol/muc#roominfo"
        assert form["muc#roominfo_description"] == "Quarterly planning"
        assert form["muc#roominfo_occupants"] == "2"
        # hidden rooms are not listed
        items = await b.plugin["xep_0030"].get_items(jid=MUC, timeout=5)
        assert rjid not in [i[0] for i in items["disco_items"]["items"]]
        # a later change tells the occupants (104)
        await configure(a, rjid, {"roomname": "Planning 2"})
        m = await b.wait_for("mucm", lambda m: 104 in m["muc"]["status_codes"])
        assert m["from"] == rjid
        # cancelling the first configuration of a new room abandons it
        other = room("abandoned")
        await join(a, other, "alice")
        await a.plugin["xep_0045"].cancel_config(other, timeout=5)
        e = await iq_error(a.plugin["xep_0030"].get_info(jid=other, timeout=5))
        assert e["condition"] == "item-not-found"
    run(scenario)


def test_nick_conflict(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b = await logins(cl, "alice", "bob")
        rjid = await create(a, "names", "sam")
        err = await join_error(b, rjid, "sam")
        assert err.condition == "conflict" and err.etype == "cancel"
        err = await join_error(b, rjid, "x" * 200)  # past the nickname length limit
        assert err.condition == "not-acceptable" and "at most" in err.text
        await join(b, rjid, "sam2")
    run(scenario)


def test_password_room_wrong_password(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b = await logins(cl, "alice", "bob")
        rjid = await create(a, "secret", config={"passwordprotectedroom": "1",
                                                  "roomsecret": "s3same"})
        err = await join_error(b, rjid, "bob", password="wrong")
        assert (err.condition, err.etype) == ("not-authorized", "auth")
        assert "s3same" not in str(err.presence) and "wrong" not in str(err.presence)
        err = await join_error(b, rjid, "bob")
        assert err.condition == "not-authorized"
        await join(b, rjid, "bob", password="s3same")
        info = await b.plugin["xep_0030"].get_info(jid=rjid, timeout=5)
        assert "muc_passwordprotected" in info["disco_info"]["features"]
    run(scenario)


def test_members_only_without_membership(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b = await logins(cl, "alice", "bob")
        rjid = await create(a, "staff", config={"membersonly": "1"})
        err = await join_error(b, rjid, "bob")
        assert (err.condition, err.etype) == ("registration-required", "auth")
        await a.plugin["xep_0045"].set_affiliation(rjid, "member", jid=b.boundjid.bare, timeout=5)
        members = await a.plugin["xep_0045"].get_affiliation_list(rjid, "member", timeout=5)
        assert members == [b.boundjid.bare]
        pres, *_ = await join(b, rjid, "bob")
        assert pres["muc"]["affiliation"] == "member"
        # revoking membership removes him (321)
        await a.plugin["xep_0045"].set_affiliation(rjid, "none", jid=b.boundjid.bare, timeout=5)
        p = await b.wait_for("mucp", lambda p: presence_of(rjid, "bob", "unavailable")(p))
        assert 321 in codes(p)
        # a member cannot hand out membership
        e = await iq_error(b.plugin["xep_0045"].set_affiliation(rjid, "member", jid="carol@localhost",
                                                                  timeout=5))
        assert e["condition"] == "forbidden"
    run(scenario)


def test_kick_and_ban_by_moderator_refused_for_non_moderator(srv, run):
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b, c = await occupied_room(cl, "modroom", "alice", "bob", "carol")
        # a participant may not kick or ban
        e = await iq_error(b.plugin["xep_0045"].set_role(rjid, "carol", "none", timeout=5))
        assert (e["condition"], e["type"]) == ("forbidden", "auth")
        e = await iq_error(b.plugin["xep_0045"].set_affiliation(rjid, "outcast",
                                                                  jid="carol@localhost", timeout=5))
        assert e["condition"] == "forbidden"
        # nobody may kick the owner
        await a.plugin["xep_0045"].set_role(rjid, "bob", "moderator", timeout=5)
        e = await iq_error(b.plugin["xep_0045"].set_role(rjid, "alice", "none", timeout=5))
        assert e["condition"] == "not-allowed"
        # the kick: 307 with actor and reason, to the kicked and to the others
        await a.plugin["xep_0045"].set_role(rjid, "carol", "none", reason="be nice", timeout=5)
        k = await c.wait_for("mucp", presence_of(rjid, "carol", "unavailable"))
        assert {307, 110} <= codes(k)
        assert k["muc"]["item"]["reason"] == "be nice"
        seen = await b.wait_for("mucp", presence_of(rjid, "carol", "unavailable"))
        assert 307 in codes(seen) and 110 not in codes(seen)
        # back in, then banned: 301, and cannot return
        await join(c, rjid, "carol")
        await a.plugin["xep_0045"].set_affiliation(rjid, "outcast", jid="carol@localhost",
                                                   reason="spam", timeout=5)
        k = await c.wait_for("mucp", lambda p: presence_of(rjid, "carol", "unavailable")(p)
                             and 301 in codes(p))
        assert k["muc"]["affiliation"] == "outcast"
        err = await join_error(c, rjid, "carol")
        assert (err.condition, err.etype) == ("forbidden", "auth")
        outcasts = await a.plugin["xep_0045"].get_affiliation_list(rjid, "outcast", timeout=5)
        assert outcasts == ["carol@localhost"]
        # malformed admin requests get bad-request
        e = await iq_error(send_iq(a, rjid, "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                                            "<item role='emperor' nick='bob'/></query>", "set"))
        assert e["condition"] == "bad-request"
        e = await iq_error(send_iq(a, rjid, "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                                            "<item role='none' nick='nobody'/></query>", "set"))
        assert e["condition"] == "item-not-found"
        # the last owner cannot step down
        e = await iq_error(a.plugin["xep_0045"].set_affiliation(rjid, "member",
                                                                  jid="alice@localhost", timeout=5))
        assert e["condition"] == "conflict"
    run(scenario)


def test_moderated_room_visitor_speaking(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b = await logins(cl, "alice", "bob")
        rjid = await create(a, "stage", config={"moderatedroom": "1"})
        pres, *_ = await join(b, rjid, "bob")
        assert pres["muc"]["role"] == "visitor"
        groupchat(b, rjid, "may I speak?")
        e = await error_for(b, "may I speak?")
        assert (e["condition"], e["type"]) == ("forbidden", "auth")
        await a.expect_none("message", gc_body(rjid, "may I speak?"), 0.5)
        # voice granted: he speaks
        await a.plugin["xep_0045"].set_role(rjid, "bob", "participant", timeout=5)
        p = await b.wait_for("mucp", lambda p: presence_of(rjid, "bob")(p)
                             and p["muc"]["role"] == "participant")
        assert 110 in codes(p)
        groupchat(b, rjid, "thank you")
        await a.wait_for("message", gc_body(rjid, "thank you"))
    run(scenario)


def test_subject_change_rules(srv, run):
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "topics", "alice", "bob")
        a.plugin["xep_0045"].set_subject(rjid, "Release 2.0")
        m = await b.wait_for("mucm", lambda m: m["subject"] == "Release 2.0")
        assert m["from"] == f"{rjid}/alice"
        # a participant may not change it (default), and long subjects are refused
        b.send_message(mto=rjid, msubject="mine now", mtype="groupchat")
        e = await b.wait_for("message_error", lambda m: m["subject"] == "mine now")
        assert e["error"]["condition"] == "forbidden"
        a.send_message(mto=rjid, msubject="x" * 2000, mtype="groupchat")
        e = await a.wait_for("message_error", lambda m: m["subject"].startswith("xxx"))
        assert e["error"]["condition"] == "not-acceptable"
        # a joiner gets the subject, from whoever set it
        c = await login(cl, "carol")
        _, subject, _, _ = await join(c, rjid, "carol")
        assert subject["subject"] == "Release 2.0" and subject["from"] == f"{rjid}/alice"
        # once allowed, participants may change it
        await configure(a, rjid, {"changesubject": "1"})
        b.plugin["xep_0045"].set_subject(rjid, "bob's topic")
        await c.wait_for("mucm", lambda m: m["subject"] == "bob's topic")
    run(scenario)


def test_history_on_join_maxstanzas(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b, c = await logins(cl, "alice", "bob", "carol")
        rjid = await create(a, "history", "alice")
        for i in range(5):
            groupchat(a, rjid, f"old {i}")
        await a.wait_for("message", gc_body(rjid, "old 4"))
        _, _, _, hist = await join(b, rjid, "bob", maxstanzas=2)
        assert [m["body"] for m in hist] == ["old 3", "old 4"], hist
        assert hist[0]["delay"]["from"] == rjid and hist[0]["delay"]["stamp"] is not None
        assert hist[0]["from"] == f"{rjid}/alice"
        _, _, _, hist = await join(c, rjid, "carol")
        assert [m["body"] for m in hist] == [f"old {i}" for i in range(5)]
        await join(a, room("history2"), "alice")  # another room: its own (empty) history
        d = await login(cl, "dave")
        await instant(a, room("history2"))
        _, _, _, hist = await join(d, room("history2"), "dave", maxchars=0)
        assert hist == []
    run(scenario)


def test_invitation_and_decline(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b, c = await logins(cl, "alice", "bob", "carol")
        rjid = await create(a, "party", "alice", config={"membersonly": "1"})
        a.plugin["xep_0045"].invite(rjid, b.boundjid.bare, reason="come along")
        inv = await wait_raw_invite(b, rjid)
        assert str(inv["muc"]["invite"]["from"]) == a.boundjid.bare
        assert inv["muc"]["invite"]["reason"] == "come along"
        # an admin's invitation to a members-only room makes the invitee a member
        await join(b, rjid, "bob")
        # a member may invite too (allowinvites defaults on); carol declines
        b.plugin["xep_0045"].invite(rjid, c.boundjid.bare)
        await wait_raw_invite(c, rjid)
        c.plugin["xep_0045"].decline(rjid, b.boundjid.bare, reason="busy")
        dec = await wait_raw_decline(b, rjid)
        assert str(dec["muc"]["decline"]["from"]) == c.boundjid.bare
        assert dec["muc"]["decline"]["reason"] == "busy"
        # an invitation without a valid invitee is refused
        b.send_raw(f"<message to='{rjid}' id='bad-inv'><x xmlns='{NS_MUC_USER}'>"
                   "<invite to='not a jid@@'/></x></message>")
        e = await b.wait_for("message_error", lambda m: m["id"] == "bad-inv")
        assert e["error"]["condition"] == "jid-malformed", e
    run(scenario)


async def wait_raw_invite(c, rjid, timeout=5):
    return await c.wait_for("mucm", lambda m: m["from"] == rjid and m.xml.find(
        f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}invite") is not None, timeout, what="invitation")


async def wait_raw_decline(c, rjid, timeout=5):
    return await c.wait_for("mucm", lambda m: m["from"] == rjid and m.xml.find(
        f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}decline") is not None, timeout, what="decline")


def test_private_message(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b, c = await logins(cl, "alice", "bob", "carol")
        rjid = await create(a, "whispers", "alice")
        await join(b, rjid, "bob")
        b.send_message(mto=f"{rjid}/alice", mbody="psst", mtype="chat")
        m = await a.wait_for("message", lambda m: m["body"] == "psst")
        assert m["from"] == f"{rjid}/bob" and m["type"] == "chat"
        assert m.xml.find(f"{{{NS_MUC_USER}}}x") is not None
        # not to an absent nick, not of type groupchat, not from outside the room
        b.send_message(mto=f"{rjid}/nobody", mbody="hello?", mtype="chat")
        assert (await error_for(b, "hello?"))["condition"] == "item-not-found"
        b.send_message(mto=f"{rjid}/alice", mbody="wrong type", mtype="groupchat")
        assert (await error_for(b, "wrong type"))["condition"] == "bad-request"
        c.send_message(mto=f"{rjid}/alice", mbody="outsider", mtype="chat")
        assert (await error_for(c, "outsider"))["condition"] == "not-acceptable"
        await a.expect_none("message", lambda m: m["body"] in ("outsider", "hello?"), 0.3)
    run(scenario)


def test_destroy_with_reason_and_alternate_venue(srv, run):
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "doomed", "alice", "bob")
        e = await iq_error(b.plugin["xep_0045"].destroy(rjid, "mine", timeout=5))
        assert e["condition"] == "forbidden"
        await a.plugin["xep_0045"].destroy(rjid, "moved", altroom=room("newhome"), timeout=5)
        p = await b.wait_for("mucp", presence_of(rjid, "bob", "unavailable"))
        d = p.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}destroy")
        assert d is not None and d.get("jid") == room("newhome")
        assert d.find(f"{{{NS_MUC_USER}}}reason").text == "moved"
        e = await iq_error(a.plugin["xep_0030"].get_info(jid=rjid, timeout=5))
        assert e["condition"] == "item-not-found"
        groupchat(b, rjid, "anyone?")
        assert (await error_for(b, "anyone?"))["condition"] == "item-not-found"
    run(scenario)
    audit = srv.ctl("compliance", "audit").stdout
    assert "muc-room-create alice@localhost/alice target=doomed@conference.localhost" in audit
    assert re.search(r"muc-room-destroy alice@localhost/alice target=doomed@conference.localhost"
                     r" detail=moved", audit), audit


def test_groupchat_from_non_occupant_rejected(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a, b = await logins(cl, "alice", "bob")
        rjid = await create(a, "closed", "alice")
        groupchat(b, rjid, "let me in")
        e = await error_for(b, "let me in")
        assert (e["condition"], e["type"]) == ("not-acceptable", "modify")
        await a.expect_none("message", gc_body(rjid, "let me in"), 0.3)
        # other bad input: a join without a nickname, a message to the service itself,
        # a chat message to the room's bare JID
        b.send_raw(f"<presence to='{rjid}' id='nonick'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        p = await b.wait_for("mucp", lambda p: p["id"] == "nonick" and p["type"] == "error")
        assert p["error"]["condition"] == "jid-malformed"
        b.send_message(mto=MUC, mbody="hello service", mtype="chat")
        assert (await error_for(b, "hello service"))["condition"] == "service-unavailable"
        await join(b, rjid, "bob")
        b.send_message(mto=rjid, mbody="chat to room", mtype="chat")
        assert (await error_for(b, "chat to room"))["condition"] == "bad-request"
        await exchange(a, b)
    run(scenario)


def test_omemo_in_group_chat_rejected(srv, run):
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "plain", "alice", "bob")
        a.send_raw(f"<message to='{rjid}' type='groupchat' id='omemo-gc'>"
                   "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>eA==</payload>"
                   "</encrypted><body>[OMEMO fallback]</body></message>")
        e = await error_for(a, "[OMEMO fallback]")
        assert e["condition"] == "not-acceptable"
        assert e["text"] == "group chats are not end-to-end encrypted"
        await b.expect_none("message", lambda m: m["id"] == "omemo-gc", 0.3)
    run(scenario)


# --------------------------------------------------------------------------- limits

def test_max_rooms_per_user(server, run):
    srv = server(extra=["muc_max_rooms_per_user = 2"])

    async def scenario():
        cl = clients_for(srv)
        a = await login(cl, "alice")
        await create(a, "one")
        await create(a, "two")
        err = await join_error(a, room("three"), "alice")
        assert (err.condition, err.etype) == ("not-allowed", "cancel"), err
        assert "own 2 rooms" in err.text
        # others are not affected by alice's limit
        b = await login(cl, "bob")
        await create(b, "bobs")
    run(scenario)


def test_rate_limit_error(server, run):
    srv = server(extra=["muc_user_rate = 3"])

    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "fast", "alice", "bob")
        a.send_raw("".join(f"<message to='{rjid}' type='groupchat' id='burst-{i}'>"
                           f"<body>burst {i}</body></message>" for i in range(12)))
        # each message is either delivered or refused with resource-constraint: none vanish
        delivered, refused = set(), set()
        deadline = time.monotonic() + 5
        while len(delivered) + len(refused) < 12 and time.monotonic() < deadline:
            for m in list(a.events["message"]):
                if m["type"] == "groupchat" and m["body"].startswith("burst "):
                    delivered.add(m["body"])
            for m in list(a.events["message_error"]):
                if m["body"].startswith("burst "):
                    assert (m["error"]["condition"], m["error"]["type"]) == \
                        ("resource-constraint", "wait"), m
                    assert "at most 3 messages a second" in m["error"]["text"]
                    refused.add(m["body"])
            await asyncio.sleep(0.05)
        assert len(delivered) + len(refused) == 12, (delivered, refused)
        assert 3 <= len(delivered) < 12 and refused, (delivered, refused)
        # bob, a different user, is not limited by alice's burst
        await asyncio.sleep(1.1)
        groupchat(b, rjid, "bob still talks")
        await a.wait_for("message", gc_body(rjid, "bob still talks"))
    run(scenario)


# --------------------------------------------------------------------------- compliance

def test_one_compliance_record_per_room_message(srv, run):
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b, c = await occupied_room(cl, "audited", "alice", "bob", "carol")
        groupchat(a, rjid, "quarterly numbers", mid="rec-1")
        got = [await x.wait_for("message", gc_body(rjid, "quarterly numbers")) for x in (a, b, c)]
        # one order, one id: the echo and the copies carry the same stanza-id
        sids = {m.xml.find(f"{{{NS_SID}}}stanza-id").get("id") for m in got}
        assert len(sids) == 1
        assert all(m.xml.find(f"{{{NS_SID}}}stanza-id").get("by") == rjid for m in got)
        assert all(m["id"] == "rec-1" for m in got)
        b.send_message(mto=f"{rjid}/carol", mbody="between us", mtype="chat")
        await c.wait_for("message", lambda m: m["body"] == "between us")
    run(scenario)
    out = srv.ctl("compliance", "search", "--text", "quarterly numbers").stdout.strip().splitlines()
    assert len(out) == 1, out
    assert "alice@localhost/alice -> audited@conference.localhost [groupchat] delivered" in out[0]
    out = srv.ctl("compliance", "search", "--text", "between us").stdout.strip().splitlines()
    assert len(out) == 1 and "bob@localhost/bob -> carol@localhost/carol [chat]" in out[0], out
    audit = srv.ctl("compliance", "audit").stdout
    assert re.search(r"muc-room-create alice@localhost/alice target=audited@conference.localhost",
                     audit), audit


# --------------------------------------------------------------------------- persistence

def test_persistence_across_restart(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await login(cl, "alice")
        keep = await create(a, "keeper", "alice", config={
            "persistentroom": "1", "membersonly": "1", "roomname": "Keeper",
            "roomdesc": "survives restarts"})
        await a.plugin["xep_0045"].set_affiliation(keep, "member", jid="bob@localhost", timeout=5)
        a.plugin["xep_0045"].set_subject(keep, "kept subject")
        await a.wait_for("mucm", lambda m: m["subject"] == "kept subject")
        for i in range(3):
            groupchat(a, keep, f"kept {i}")
        await a.wait_for("message", gc_body(keep, "kept 2"))
        await create(a, "fleeting", "alice")
    run(scenario)
    problems = srv.stop()
    assert not problems, problems
    srv.start()

    async def after():
        cl = clients_for(srv)
        b, c = await logins(cl, "bob", "carol")
        keep = room("keeper")
        info = await b.plugin["xep_0030"].get_info(jid=keep, timeout=5)
        feats = info["disco_info"]["features"]
        assert "muc_persistent" in feats and "muc_membersonly" in feats
        assert {i[3] for i in info["disco_info"]["identities"]} == {"Keeper"}
        pres, subject, _, hist = await join(b, keep, "bob")
        assert pres["muc"]["affiliation"] == "member"
        assert subject["subject"] == "kept subject"
        assert [m["body"] for m in hist] == ["kept 0", "kept 1", "kept 2"]
        err = await join_error(c, keep, "carol")
        assert err.condition == "registration-required"
        e = await iq_error(b.plugin["xep_0030"].get_info(jid=room("fleeting"), timeout=5))
        assert e["condition"] == "item-not-found"
        a = await login(cl, "alice")
        pres, *_ = await join(a, keep, "alice")
        assert pres["muc"]["affiliation"] == "owner" and 201 not in codes(pres)
    run(after)


# --------------------------------------------------------------------------- 200 occupants

def raw_occupant(srv, user, resource):
    rs = RawStream.direct_tls(srv, timeout=10)
    rs.login(srv, user, resource, direct=True)
    return rs


def test_200_occupants_burst_same_order(server, run):
    """200 occupants over direct TLS; five of them send 20 messages each at once. Everyone
    gets all 100, exactly once, in one and the same order, and each sender's in its own."""
    srv = server(extra=["muc_user_rate = 100", "muc_room_rate = 1000"])
    users = ["alice", "bob", "carol", "dave"]
    rjid = room("townhall")
    socks = []
    try:
        for i in range(200):
            rs = raw_occupant(srv, users[i % 4], f"r{i}")
            socks.append(rs)
        owner = socks[0]
        owner.send(f"<presence to='{rjid}/n0'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        owner.read_until(r"<subject\s*/>|<subject>.*?</subject>")
        owner.send(f"<iq type='set' id='cfg' to='{rjid}'><query xmlns='{NS_MUC_OWNER}'>"
                   "<x xmlns='jabber:x:data' type='submit'/></query></iq>")
        owner.read_until(r"<iq\b[^>]*id=['\"]cfg['\"]")
        for i, rs in enumerate(socks[1:], 1):
            rs.send(f"<presence to='{rjid}/n{i}'><x xmlns='http://jabber.org/protocol/muc'>"
                    "<history maxstanzas='0'/></x></presence>")
            rs.read_until(r"<message\b[^>]*>\s*<subject\s*/>|<subject\s*/>", timeout=10)
        senders = [socks[i] for i in (0, 37, 99, 150, 199)]
        for s_idx, rs in enumerate(senders):
            rs.send("".join(f"<message to='{rjid}' type='groupchat' id='b{s_idx}-{k}'>"
                            f"<body>burst {s_idx}-{k}</body></message>" for k in range(20)))
        want = {f"burst {s}-{k}" for s in range(5) for k in range(20)}
        orders = []
        for rs in socks:
            seen = []
            deadline = time.monotonic() + 20
            while len(seen) < 100 and time.monotonic() < deadline:
                chunk = rs.read_until(r"</message>", timeout=max(0.1, deadline - time.monotonic()))
                m = re.search(r"<body>(burst \d+-\d+)</body>", chunk)
                if m:
                    seen.append(m.group(1))
            assert len(seen) == 100 and set(seen) == want, (len(seen), len(set(seen)))
            orders.append(seen)
        first = orders[0]
        assert all(o == first for o in orders), "occupants saw different orders"
        for s in range(5):
            mine = [b for b in first if b.startswith(f"burst {s}-")]
            assert mine == [f"burst {s}-{k}" for k in range(20)]
    finally:
        for rs in socks:
            rs.close()
    p = srv.ctl("compliance", "search", "--to", rjid)
    assert len([l for l in p.stdout.splitlines() if "burst " in l]) == 100


def test_unwritable_archive_bounces_room_message_to_sender_only(srv, run):
    """Strict mode: a room message whose record cannot be written reaches nobody (not even
    the sender's echo) and comes back as resource-constraint; the room goes on after."""
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "strict", "alice", "bob")
        lock = sqlite3.connect(os.path.join(srv.dir, "data", "compliance.db"), timeout=1,
                               isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            groupchat(a, rjid, "while locked")
            e = await error_for(a, "while locked", timeout=10)
            assert (e["condition"], e["type"]) == ("resource-constraint", "wait")
            assert "compliance archive is unavailable" in e["text"]
            for x in (a, b):
                await x.expect_none("message", gc_body(rjid, "while locked"), 0.5)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        groupchat(a, rjid, "after unlock")
        await b.wait_for("message", gc_body(rjid, "after unlock"), 10)
        c = await login(cl, "carol")
        _, _, _, hist = await join(c, rjid, "carol")
        assert [m["body"] for m in hist] == ["after unlock"]
    run(scenario, timeout=90)


def test_presence_flood_limited(server, run):
    """Presence changes go to every occupant, so they count against the sender's rate."""
    srv = server(extra=["muc_user_rate = 3"])

    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "statuses", "alice", "bob")
        a.send_raw("".join(f"<presence to='{rjid}/alice' id='st-{i}'><status>s{i}</status>"
                           "</presence>" for i in range(10)))
        err = await a.wait_for("mucp", lambda p: p["type"] == "error" and p["id"].startswith("st-"))
        assert err["error"]["condition"] == "resource-constraint"
        await asyncio.sleep(0.5)
        updates = [p for p in b.events["mucp"] if p["from"] == f"{rjid}/alice"
                   and p["status"].startswith("s")]
        assert 1 <= len(updates) <= 4, len(updates)
    run(scenario)


def test_sender_cannot_speak_for_the_room(srv, run):
    """A client's own stanza-id, delay or status codes in the room's name are removed: only
    the room's own stanza-id reaches the others."""
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "spoof", "alice", "bob")
        b.send_raw(f"<message to='{rjid}' type='groupchat' id='spoof-1'><body>forged</body>"
                   f"<stanza-id xmlns='{NS_SID}' id='fake' by='{rjid}'/>"
                   f"<delay xmlns='{NS_DELAY}' from='{rjid}' stamp='2001-01-01T00:00:00Z'/>"
                   f"<x xmlns='{NS_MUC_USER}'><status code='104'/></x></message>")
        m = await a.wait_for("message", gc_body(rjid, "forged"))
        sids = m.xml.findall(f"{{{NS_SID}}}stanza-id")
        assert len(sids) == 1 and sids[0].get("id") != "fake"
        assert m.xml.find(f"{{{NS_DELAY}}}delay") is None
        assert m.xml.find(f"{{{NS_MUC_USER}}}x") is None
    run(scenario)


def test_muc_off(server, run):
    srv = server(extra=["muc = no"])

    async def scenario():
        cl = clients_for(srv)
        a = await login(cl, "alice")
        items = await a.plugin["xep_0030"].get_items(jid=DOMAIN, timeout=5)
        assert MUC not in [i[0] for i in items["disco_items"]["items"]]
        e = await iq_error(a.plugin["xep_0030"].get_info(jid=MUC, timeout=5))
        assert e["condition"] == "remote-server-not-found"
    run(scenario)


def test_self_ping_and_rejoin(srv, run):
    """XEP-0410: a ping to one's own occupant JID says whether one is still in; a join from
    a session already in the room sends the room's state again (no 409 against itself)."""
    async def scenario():
        cl = clients_for(srv)
        a, b = await logins(cl, "alice", "bob")
        rjid = await create(a, "pingable", "alice")
        groupchat(a, rjid, "before rejoin")
        await a.wait_for("message", gc_body(rjid, "before rejoin"))
        await join(b, rjid, "bob")
        await send_iq(b, f"{rjid}/bob", "<ping xmlns='urn:xmpp:ping'/>")
        e = await iq_error(send_iq(b, f"{rjid}/alice", "<ping xmlns='urn:xmpp:ping'/>"))
        assert e["condition"] == "service-unavailable"  # IQs are not relayed to others
        c = await login(cl, "carol")
        e = await iq_error(send_iq(c, f"{rjid}/carol", "<ping xmlns='urn:xmpp:ping'/>"))
        assert e["condition"] == "not-acceptable"
        pres, subject, occupants, hist = await join(b, rjid, "bob", maxstanzas=5)
        assert 110 in codes(pres) and pres["muc"]["role"] == "participant"
        assert [m["body"] for m in hist] == ["before rejoin"]
        assert {p["from"].resource for p in occupants} >= {"alice"}
    run(scenario)


def test_history_bounded_in_bytes(srv, run):
    """Huge messages cannot make a room hold megabytes: the history keeps at most 1 MiB,
    dropping the oldest (the count limit, muc_history, still applies below that)."""
    async def scenario():
        cl = clients_for(srv)
        a = await login(cl, "alice")
        rjid = await create(a, "bulky", "alice")
        big = "y" * (200 * 1024)
        for i in range(8):
            groupchat(a, rjid, f"big {i} {big}")
        await a.wait_for("message", lambda m: m["body"].startswith("big 7 "), 20)
        b = await login(cl, "bob")
        _, _, _, hist = await join(b, rjid, "bob")
        got = [m["body"].split(" ")[1] for m in hist]
        assert got == ["3", "4", "5", "6", "7"], got
    run(scenario)


def test_compliance_server_judges_room_messages_with_occupants(server, run):
    """With a compliance server (a real XEP-0114 component), each room message is judged
    once, as kind 'groupchat' addressed to the room, with the occupants' real bare JIDs
    listed (ethical walls): a block reaches nobody and tells the sender why; a modified
    body is what everyone gets and what the history keeps."""
    from component_util import Component, error_condition, start_with_components
    srv, port = start_with_components(server, verdicts=True)

    async def scenario():
        comp = await Component(srv, port).start()
        cl = clients_for(srv)
        rjid, a, b, c = await occupied_room(cl, "walled", "alice", "bob", "carol")

        def policy(check):
            body = check["forwarded"].find("{jabber:client}body").text
            if "research" in body:
                return ("block", "ethical wall: trading may not talk to research", None)
            if "hello" in body:
                return ("modify", "disclaimer", body + " [monitored]")
            return ("allow", None, None)
        comp.policy = policy
        comp.checks.clear()
        groupchat(a, rjid, "research numbers")
        m = await a.wait_for("message_error", lambda m: m["body"] == "research numbers")
        assert error_condition(m) == "policy-violation"
        assert m["error"]["text"] == "ethical wall: trading may not talk to research"
        for x in (a, b, c):
            await x.expect_none("message", gc_body(rjid, "research numbers"), 0.3)
        check = comp.checks[0]
        assert check["kind"] == "groupchat"
        assert sorted(check["occupants"]) == ["alice@localhost", "bob@localhost",
                                              "carol@localhost"]
        assert check["forwarded"].get("to") == rjid
        groupchat(a, rjid, "hello all")
        for x in (a, b, c):
            await x.wait_for("message", gc_body(rjid, "hello all [monitored]"))
        assert len(comp.checks) == 2  # once per room message, not per occupant
        d = await login(cl, "dave")
        _, _, _, hist = await join(d, rjid, "dave")
        assert [m["body"] for m in hist] == ["hello all [monitored]"]
        await comp.stop()
    run(scenario)


# --------------------------------------------------------------------------- audit gaps

def test_room_rate_limit_is_per_room(server, run):
    """muc_room_rate caps what one room accepts, whoever sends: a burst is partly refused
    with 'this room is busy', none vanish, and another room is not held back by it."""
    srv = server(extra=["muc_user_rate = 1000", "muc_room_rate = 3"])

    async def scenario():
        cl = clients_for(srv)
        rjid, a, b = await occupied_room(cl, "busy", "alice", "bob")
        other = await create(b, "quiet", "bob")
        a.send_raw("".join(f"<message to='{rjid}' type='groupchat' id='rb-{i}'>"
                           f"<body>room burst {i}</body></message>" for i in range(12)))
        # at the same moment, another room takes a message: each room has its own bucket
        groupchat(b, other, "bob elsewhere")
        delivered, refused = set(), set()
        deadline = time.monotonic() + 5
        while len(delivered) + len(refused) < 12 and time.monotonic() < deadline:
            for m in list(a.events["message"]):
                if m["type"] == "groupchat" and m["body"].startswith("room burst "):
                    delivered.add(m["body"])
            for m in list(a.events["message_error"]):
                if m["body"].startswith("room burst "):
                    assert (m["error"]["condition"], m["error"]["type"]) == \
                        ("resource-constraint", "wait"), m
                    assert "this room is busy" in m["error"]["text"]
                    assert "at most 3 messages a second" in m["error"]["text"]
                    refused.add(m["body"])
            await asyncio.sleep(0.05)
        assert len(delivered) + len(refused) == 12, (delivered, refused)
        assert 3 <= len(delivered) < 12 and refused, (delivered, refused)
        await b.wait_for("message", gc_body(other, "bob elsewhere"))
    run(scenario)


def test_full_room_refuses_joins_but_admits_admins_and_owners(srv, run):
    """maxusers: a join past it is refused (service-unavailable, 'the room is full');
    the room's admins and owners still get in (XEP-0045 7.2.10)."""
    async def scenario():
        cl = clients_for(srv)
        a, b, c, d = await logins(cl, "alice", "bob", "carol", "dave")
        rjid = await create(a, "tiny", "alice", config={"maxusers": "2"})
        await join(b, rjid, "bob")
        err = await join_error(c, rjid, "carol")
        assert (err.condition, err.etype) == ("service-unavailable", "wait"), err
        assert err.text == "the room is full"
        await a.expect_none("mucp", presence_of(rjid, "carol"), 0.3)
        # an admin is let in although the room is full
        await a.plugin["xep_0045"].set_affiliation(rjid, "admin", jid=d.boundjid.bare, timeout=5)
        pres, *_ = await join(d, rjid, "dave")
        assert (pres["muc"]["affiliation"], pres["muc"]["role"]) == ("admin", "moderator")
        # and so is the owner from a second device
        a2 = await login(cl, "alice", resource="second")
        pres, *_ = await join(a2, rjid, "alice2")
        assert pres["muc"]["affiliation"] == "owner"
        # bob leaves, but alice, her second device and dave still fill the room
        b.plugin["xep_0045"].leave_muc(rjid, "bob")
        await a.wait_for("mucp", presence_of(rjid, "bob", "unavailable"))
        err = await join_error(c, rjid, "carol")
        assert err.text == "the room is full"
        # once under the limit, ordinary joins work again
        d.plugin["xep_0045"].leave_muc(rjid, "dave")
        a2.plugin["xep_0045"].leave_muc(rjid, "alice2")
        await a.wait_for("mucp", presence_of(rjid, "alice2", "unavailable"))
        await a.wait_for("mucp", presence_of(rjid, "dave", "unavailable"))
        await join(c, rjid, "carol")
    run(scenario)


def test_destroyed_persistent_room_stays_gone_after_restart(srv, run):
    """Destroying a persistent room deletes it and its archive from the store: after a
    restart it does not exist, and a new room of that name starts empty."""
    async def scenario():
        cl = clients_for(srv)
        a = await login(cl, "alice")
        rjid = await create(a, "monument", "alice", config={"persistentroom": "1",
                                                            "roomname": "Monument"})
        a.plugin["xep_0045"].set_subject(rjid, "old subject")
        await a.wait_for("mucm", lambda m: m["subject"] == "old subject")
        for i in range(2):
            groupchat(a, rjid, f"carved {i}")
        await a.wait_for("message", gc_body(rjid, "carved 1"))
        await a.plugin["xep_0045"].destroy(rjid, "demolished", timeout=5)
        await a.wait_for("mucp", presence_of(rjid, "alice", "unavailable"))
    run(scenario)
    db = sqlite3.connect(f"{srv.dir}/data/parley.db")
    try:
        assert db.execute("SELECT count(*) FROM mam WHERE owner = ?",
                          (room("monument"),)).fetchone()[0] == 0
    finally:
        db.close()
    assert not srv.stop()
    srv.start()

    async def after():
        cl = clients_for(srv)
        b = await login(cl, "bob")
        e = await iq_error(b.plugin["xep_0030"].get_info(jid=room("monument"), timeout=5))
        assert e["condition"] == "item-not-found"
        items = await b.plugin["xep_0030"].get_items(jid=MUC, timeout=5)
        assert room("monument") not in [i[0] for i in items["disco_items"]["items"]]
        # the name is free: bob creates a new room there, with no history nor subject
        pres, subject, _, hist = await join(b, room("monument"), "bob")
        assert 201 in codes(pres) and pres["muc"]["affiliation"] == "owner"
        assert hist == [] and subject["subject"] == ""
    run(after)


def test_persistent_room_made_temporary_goes_with_its_last_occupant(srv, run):
    """Switching persistentroom off removes the room from the store: it lives while
    occupied, vanishes when the last occupant leaves, and neither a restart nor a crash
    while it is occupied brings it back."""
    async def scenario():
        cl = clients_for(srv)
        a, b = await logins(cl, "alice", "bob")
        rjid = await create(a, "shortlived", "alice", config={"persistentroom": "1"})
        groupchat(a, rjid, "while persistent")
        await a.wait_for("message", gc_body(rjid, "while persistent"))
        await configure(a, rjid, {"persistentroom": "0"})
        await join(b, rjid, "bob")
        info = await b.plugin["xep_0030"].get_info(jid=rjid, timeout=5)
        assert "muc_temporary" in info["disco_info"]["features"]
        a.plugin["xep_0045"].leave_muc(rjid, "alice")
        await b.wait_for("mucp", presence_of(rjid, "alice", "unavailable"))
        # still there while bob is in
        await b.plugin["xep_0030"].get_info(jid=rjid, timeout=5)
        b.plugin["xep_0045"].leave_muc(rjid, "bob")
        await b.wait_for("mucp", presence_of(rjid, "bob", "unavailable"))
        e = await iq_error(a.plugin["xep_0030"].get_info(jid=rjid, timeout=5))
        assert e["condition"] == "item-not-found"
        # another, still occupied when the server dies (no one leaves): a temporary room
        # is not in the store, so it does not come back
        other = await create(a, "occupied", "alice", config={"persistentroom": "1"})
        await configure(a, other, {"persistentroom": "0"})
        srv.proc.kill()
        srv.proc.wait(timeout=10)
    run(scenario)
    srv.stop()  # reaps the killed server (its exit code is not clean, by design)
    # the room that ended took its archive (kept while it was persistent) with it
    db = sqlite3.connect(f"{srv.dir}/data/parley.db")
    try:
        assert db.execute("SELECT count(*) FROM mam WHERE owner = ?",
                          (room("shortlived"),)).fetchone()[0] == 0
    finally:
        db.close()
    srv.start()

    async def after():
        cl = clients_for(srv)
        c = await login(cl, "carol")
        for name in ("shortlived", "occupied"):
            e = await iq_error(c.plugin["xep_0030"].get_info(jid=room(name), timeout=5))
            assert e["condition"] == "item-not-found", name
    run(after)


def test_history_on_join_by_seconds_and_since(srv, run):
    """<history seconds/> and <history since/> (XEP-0045 7.2.15) leave out what is older."""
    plugins = PLUGINS + ("xep_0082",)

    async def scenario():
        cl = clients_for(srv)
        a, b, c, d = await logins(cl, "alice", "bob", "carol", "dave", plugins=plugins)
        rjid = await create(a, "recent", "alice")
        for i in range(3):
            groupchat(a, rjid, f"old {i}")
        await a.wait_for("message", gc_body(rjid, "old 2"))
        # the old ones are over 4 s old at the joins, the new ones (joins within 3 s) not
        await asyncio.sleep(4.2)
        cut = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
        for i in range(2):
            groupchat(a, rjid, f"new {i}")
        await a.wait_for("message", gc_body(rjid, "new 1"))
        _, _, _, hist = await join(b, rjid, "bob", seconds=3)
        assert [m["body"] for m in hist] == ["new 0", "new 1"], [m["body"] for m in hist]
        _, _, _, hist = await join(c, rjid, "carol", since=cut.replace(microsecond=0))
        assert [m["body"] for m in hist] == ["new 0", "new 1"], [m["body"] for m in hist]
        # a generous window gets everything
        _, _, _, hist = await join(d, rjid, "dave", seconds=3600)
        assert [m["body"] for m in hist] == ["old 0", "old 1", "old 2", "new 0", "new 1"]
    run(scenario)


def test_granting_admin_and_owner_and_the_list_queries(srv, run):
    """XEP-0045 9.x/10.x admin IQs: an owner makes an admin and another owner; each
    affiliation list and each role list says who holds it; an admin may not make owners."""
    async def scenario():
        cl = clients_for(srv)
        rjid, a, b, c = await occupied_room(cl, "council", "alice", "bob", "carol")
        muc = a.plugin["xep_0045"]
        await muc.set_affiliation(rjid, "admin", jid=b.boundjid.bare, timeout=5)
        p = await c.wait_for("mucp", lambda p: presence_of(rjid, "bob")(p)
                             and p["muc"]["affiliation"] == "admin")
        assert p["muc"]["role"] == "moderator"  # admins are moderators when they join
        assert await muc.get_affiliation_list(rjid, "admin", timeout=5) == ["bob@localhost"]
        assert sorted(await muc.get_roles_list(rjid, "moderator", timeout=5)) == ["alice", "bob"]
        assert await muc.get_roles_list(rjid, "participant", timeout=5) == ["carol"]
        # an admin may not make owners, but reads the lists
        e = await iq_error(b.plugin["xep_0045"].set_affiliation(rjid, "owner",
                                                                  jid="carol@localhost", timeout=5))
        assert e["condition"] == "forbidden"
        assert await b.plugin["xep_0045"].get_affiliation_list(rjid, "owner", timeout=5) == \
            ["alice@localhost"]
        # a participant sees no lists
        e = await iq_error(c.plugin["xep_0045"].get_affiliation_list(rjid, "admin", timeout=5))
        assert e["condition"] == "forbidden"
        e = await iq_error(c.plugin["xep_0045"].get_roles_list(rjid, "moderator", timeout=5))
        assert e["condition"] == "forbidden"
        # a second owner; then the first may step down
        await muc.set_affiliation(rjid, "owner", jid=c.boundjid.bare, timeout=5)
        p = await b.wait_for("mucp", lambda p: presence_of(rjid, "carol")(p)
                             and p["muc"]["affiliation"] == "owner")
        assert p["muc"]["role"] == "moderator"
        assert sorted(await muc.get_affiliation_list(rjid, "owner", timeout=5)) == \
            ["alice@localhost", "carol@localhost"]
        await c.plugin["xep_0045"].set_affiliation(rjid, "member", jid="alice@localhost",
                                                   timeout=5)
        assert await c.plugin["xep_0045"].get_affiliation_list(rjid, "owner", timeout=5) == \
            ["carol@localhost"]
        assert await c.plugin["xep_0045"].get_affiliation_list(rjid, "member", timeout=5) == \
            ["alice@localhost"]
        # alice, now a member, no longer configures the room
        e = await iq_error(a.plugin["xep_0045"].get_room_config(rjid, timeout=5))
        assert e["condition"] == "forbidden"
    run(scenario)


def test_occupant_whose_connection_drops_is_removed(srv, run):
    """A client that vanishes without leaving (TCP reset) is taken out of the room: the
    others get its unavailable presence and its nickname is free again."""
    async def scenario():
        cl = clients_for(srv)
        a = await login(cl, "alice")
        rjid = await create(a, "fragile", "alice")
        rs = raw_occupant(srv, "bob", "flaky")
        try:
            rs.send(f"<presence to='{rjid}/bob'><x xmlns='http://jabber.org/protocol/muc'/>"
                    "</presence>")
            rs.read_until(r"<subject\s*/>|<subject>.*?</subject>")
            await a.wait_for("mucp", presence_of(rjid, "bob"))
            # SO_LINGER 0: close sends a RST, no </stream:stream>, no unavailable presence
            rs.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            rs.close()
        gone = await a.wait_for("mucp", presence_of(rjid, "bob", "unavailable"), 10)
        assert gone["muc"]["role"] == "none"
        occupants = a.plugin["xep_0045"].get_roster(rjid)
        assert "bob" not in occupants
        b = await login(cl, "bob")
        pres, *_ = await join(b, rjid, "bob")  # the nickname is free
        assert 110 in codes(pres)
    run(scenario)
    assert "bob@localhost/flaky: closed: read failed" in srv.log_text()  # a reset, not a close
