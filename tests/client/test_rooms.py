"""Group chat through libparley (tests/client/parley_driver.c drives the library) against
a real parleyd, with slixmpp as the independent other occupants: joining (and creating),
messages both ways never marked end-to-end encrypted, occupants, subject, leaving, the
room list, invitations both ways, kick and ban by a moderator and refused for others, and
the clear errors for a wrong room password and other bad input.

    PARLEY_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/client/test_rooms.py
"""

from rooms_util import Driver, Peer, logdir, room, run  # noqa: F401 (logdir: a fixture)
from test_client import DOMAIN, parleyd  # noqa: F401  (parleyd is a fixture)

OK, INVALID, STATE = 0, 1, 8
KICKED, BANNED, EXITED, REFUSED = 5, 6, 4, 11


def test_join_talk_subject_who_leave_with_slixmpp_occupant(parleyd, logdir):  # noqa: F811
    async def scenario():
        alice = Driver(parleyd, "alice", "desk", logdir)
        bob = await Peer(parleyd, "bob", "phone").login()
        try:
            await alice.online()
            assert await alice.cmd("join team") == OK  # completed with the service
            j = await alice.event("room_joined", room=room("team"))
            assert j["nick"] == "alice" and j["created"] and j["affiliation"] == "owner"
            assert j["role"] == "moderator" and j["is_self"]
            await bob.join(room("team"), "bob")
            p = await alice.event("room_presence", nick="bob")
            assert p["change"] == 1 and p["real_jid"].startswith(f"bob@{DOMAIN}/")

            assert await alice.cmd(f"send {room('team')} hello room") == OK
            echo = await alice.event("room_message", body="hello room")
            assert echo["is_self"] and echo["nick"] == "alice" and echo["encrypted"] is False
            assert echo["stanza_id"] and not echo["archived"]
            m = await bob.wait(lambda s: s.name == "message" and s["body"] == "hello room")
            assert m["type"] == "groupchat" and str(m["from"]) == f"{room('team')}/alice"

            bob.send_message(mto=room("team"), mbody="hi alice", mtype="groupchat")
            m = await alice.event("room_message", body="hi alice")
            assert m["nick"] == "bob" and not m["is_self"] and m["encrypted"] is False
            assert m["type"] == "groupchat" and m["room"] == room("team")

            assert await alice.cmd(f"topic {room('team')} quarterly planning") == OK
            s = await alice.event("room_subject", subject="quarterly planning")
            assert s["nick"] == "alice"
            await bob.wait(lambda st: st.name == "message" and
                           st["subject"] == "quarterly planning")

            assert await alice.cmd(f"who {room('team')}") == OK
            who = {(await alice.event("occupant"))["nick"] for _ in range(2)}
            assert who == {"alice", "bob"}

            bob.plugin["xep_0045"].leave_muc(room("team"), "bob")
            left = await alice.event("room_presence", nick="bob", change=EXITED)
            assert not left["is_self"]
            assert await alice.cmd(f"leave {room('team')}") == OK
            out = await alice.event("room_left", room=room("team"))
            assert out["change"] == EXITED and out["is_self"]
            # not in it any more: sending is refused at once
            assert await alice.cmd(f"send {room('team')} too late") == STATE
        finally:
            await alice.close()
            await bob.close()
    run(scenario)


def test_bad_input_wrong_room_password_is_a_clear_error(parleyd, logdir):  # noqa: F811
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        alice = Driver(parleyd, "alice", "desk", logdir)
        try:
            await bob.join(room("vault"), "bob", create=True)
            await bob.configure(room("vault"), {"passwordprotectedroom": "1",
                                                "roomsecret": "open-sesame"})
            await alice.online()
            await alice.cmd(f"join {room('vault')} alice")
            err = await alice.event("room_error", room=room("vault"))
            assert err["change"] == REFUSED
            assert "wrong or missing room password" in err["error_text"], err
            assert "cannot join vault@" in err["error_text"]
            await alice.cmd(f"join {room('vault')} alice not-the-password")
            err = await alice.event("room_error", room=room("vault"))
            assert "wrong or missing room password" in err["error_text"]
            assert "not-the-password" not in err["error_text"]
            # refused joins leave nothing behind: the right password works
            await alice.cmd(f"join {room('vault')} alice open-sesame")
            await alice.event("room_joined", room=room("vault"))
        finally:
            await alice.close()
            await bob.close()
    run(scenario)


def test_invite_kick_ban_by_moderator_and_refused_for_participant(parleyd, logdir):  # noqa: F811
    async def scenario():
        alice = Driver(parleyd, "alice", "desk", logdir)
        bob = Driver(parleyd, "bob", "laptop", logdir)
        try:
            await alice.online()
            await bob.online()
            await alice.cmd("join ops alice")
            await alice.event("room_joined")
            # an invitation from alice reaches bob's libparley as an event
            assert await alice.cmd(f"invite {room('ops')} bob@{DOMAIN} incident review") == OK
            inv = await bob.event("room_invite", room=room("ops"))
            assert inv["from"] == f"alice@{DOMAIN}" and inv["reason"] == "incident review"
            await bob.cmd(f"join {room('ops')} bob")
            await bob.event("room_joined")
            await alice.event("room_presence", nick="bob")

            # a participant may not kick: the room's refusal is an event with its reason
            assert await bob.cmd(f"kick {room('ops')} alice go away") == OK
            err = await bob.event("room_error", room=room("ops"))
            assert "cannot kick alice" in err["error_text"]
            assert "not-allowed" in err["error_text"] or "forbidden" in err["error_text"]

            # the moderator kicks bob: bob is out (not rejoined), alice sees why
            assert await alice.cmd(f"kick {room('ops')} bob cool off") == OK
            out = await bob.event("room_left", room=room("ops"))
            assert out["change"] == KICKED and out["reason"] == "cool off"
            k = await alice.event("room_presence", nick="bob", change=KICKED)
            assert k["reason"] == "cool off"

            # then bans him: his next join is refused with the reason in words
            assert await alice.cmd(f"ban {room('ops')} bob@{DOMAIN} repeated abuse") == OK
            await bob.cmd(f"join {room('ops')} bob")
            err = await bob.event("room_error", room=room("ops"))
            assert err["change"] == REFUSED and "banned" in err["error_text"]
        finally:
            await alice.close()
            await bob.close()
    run(scenario)


def test_room_list_and_invitation_from_slixmpp(parleyd, logdir):  # noqa: F811
    async def scenario():
        carol = await Peer(parleyd, "bob", "slix").login()
        alice = Driver(parleyd, "alice", "desk", logdir)
        try:
            await carol.join(room("lobby"), "bob", create=True)
            await carol.join(room("hidden"), "bob", create=True)
            await carol.configure(room("hidden"), {"publicroom": "0"})
            await alice.online()
            assert await alice.cmd("list") == OK  # the service found at sign-in
            lst = await alice.event("rooms")
            assert lst["error"] == 0 and room("lobby") in lst["items"]
            assert room("hidden") not in lst["items"]
            assert await alice.cmd("list no-such-service.example") == OK
            lst = await alice.event("rooms")
            assert lst["error"] != 0 and lst["error_text"]
            # a mediated invitation from an independent client
            carol.plugin["xep_0045"].invite(room("lobby"), f"alice@{DOMAIN}", reason="come in")
            inv = await alice.event("room_invite", room=room("lobby"))
            assert inv["reason"] == "come in" and inv["from"].startswith("bob@")
        finally:
            await alice.close()
            await carol.close()
    run(scenario)


def test_bad_input_room_names_nicks_and_commands_outside_rooms(parleyd, logdir):  # noqa: F811
    async def scenario():
        alice = Driver(parleyd, "alice", "desk", logdir)
        try:
            await alice.online()
            assert await alice.cmd("join a/b") == INVALID          # a full JID is no room
            assert await alice.cmd("join @conference.localhost") == INVALID
            assert await alice.cmd("join team " + "n" * 200) == INVALID  # nickname > 128 bytes
            assert await alice.cmd(f"send {room('nowhere')} hi") == STATE
            assert await alice.cmd(f"kick {room('nowhere')} bob") == STATE
            assert await alice.cmd(f"ban {room('nowhere')} a@@b") == INVALID
            assert await alice.cmd(f"invite {room('nowhere')} bob@{DOMAIN}") == STATE
            assert await alice.cmd(f"leave {room('nowhere')}") == STATE
            assert await alice.cmd(f"who {room('nowhere')}") == STATE
            # joining twice under the same nickname is harmless; another nickname is not
            assert await alice.cmd("join team alice") == OK
            await alice.event("room_joined")
            assert await alice.cmd("join team alice") == OK
            assert await alice.cmd("join team alicia") == STATE
        finally:
            await alice.close()
    run(scenario)


NICK, REMOVED, DESTROYED = 3, 7, 8
MUC_USER = "{http://jabber.org/protocol/muc#user}"


def muc_codes(st):
    x = st.xml.find(f"{MUC_USER}x")
    return set() if x is None else {s.get("code") for s in x.findall(f"{MUC_USER}status")}


def test_nick_config_affiliation_destroy_as_owner_seen_by_slixmpp(parleyd, logdir):  # noqa: F811
    async def scenario():
        alice = Driver(parleyd, "alice", "desk", logdir)
        bob = await Peer(parleyd, "bob", "phone").login()
        club = room("club")
        try:
            await alice.online()
            await alice.cmd("join club alice")
            await alice.event("room_joined", room=club)
            await bob.join(club, "bob")
            await alice.event("room_presence", nick="bob")

            # nickname: taken (the room's conflict), then changed (303 for everyone)
            assert await alice.cmd(f"nick {club} bob") == OK
            err = await alice.event("room_error", room=club)
            assert "conflict" in err["error_text"] and "taken" in err["error_text"], err
            assert await alice.cmd(f"nick {club} alicia") == OK
            ch = await alice.event("room_presence", change=NICK)
            assert ch["is_self"] and ch["nick"] == "alice" and ch["new_nick"] == "alicia", ch
            gone = await bob.wait(lambda p: p.name == "presence" and p["type"] == "unavailable"
                                  and str(p["from"]) == f"{club}/alice")
            assert "303" in muc_codes(gone), gone
            await bob.wait(lambda p: p.name == "presence" and str(p["from"]) == f"{club}/alicia")
            assert await alice.cmd(f"send {club} renamed") == OK
            m = await bob.wait(lambda m: m.name == "message" and m["body"] == "renamed")
            assert str(m["from"]) == f"{club}/alicia"

            # the configuration as it is, then members-only: bob (no affiliation) is out
            assert await alice.cmd(f"config {club}") == OK
            cfg = await alice.event("config", room=club)
            assert cfg["error"] == 0 and cfg["fields"]["muc#roomconfig_membersonly"] == "0"
            assert "FORM_TYPE" not in cfg["fields"]
            assert await alice.cmd(f"configure {club} muc#roomconfig_membersonly=1 "
                                   "muc#roomconfig_roomname=Book-club") == OK
            done = await alice.event("done", what="configure")
            assert done["error"] == 0 and done["room"] == club, done
            out = await bob.wait(lambda p: p.name == "presence" and p["type"] == "unavailable"
                                 and str(p["from"]) == f"{club}/bob")
            assert "322" in muc_codes(out), out
            await alice.event("room_presence", nick="bob", change=REMOVED)
            assert await alice.cmd(f"config {club}") == OK
            cfg = await alice.event("config", room=club)
            assert cfg["fields"]["muc#roomconfig_membersonly"] == "1"
            assert cfg["fields"]["muc#roomconfig_roomname"] == "Book-club"
            try:
                await bob.join(club, "bob")
                raise AssertionError("a non-member joined a members-only room")
            except Exception as e:  # noqa: BLE001  (slixmpp raises its PresenceError)
                assert "registration-required" in str(e) or "members only" in str(e), e
            # a refused value: the server's reason, nothing changed
            assert await alice.cmd(f"configure {club} muc#roomconfig_maxusers=999999") == OK
            done = await alice.event("done", what="configure")
            assert done["error"] != 0 and "at most" in done["error_text"], done

            # membership admits bob; the last owner cannot give up ownership
            assert await alice.cmd(f"affiliation {club} bob@{DOMAIN} member") == OK
            done = await alice.event("done", what="affiliation")
            assert done["error"] == 0, done
            await bob.join(club, "bob")
            p = await alice.event("room_presence", nick="bob", change=1)
            assert p["affiliation"] == "member", p
            assert await alice.cmd(f"affiliation {club} alice@{DOMAIN} none") == OK
            done = await alice.event("done", what="affiliation")
            assert done["error"] != 0 and "at least one owner" in done["error_text"], done

            # destruction: bob gets <destroy/> with the reason, alice ROOM_LEFT DESTROYED
            assert await alice.cmd(f"destroy {club} the club is closed") == OK
            left = await alice.event("room_left", room=club)
            assert left["change"] == DESTROYED and left["reason"] == "the club is closed", left
            gone = await bob.wait(lambda p: p.name == "presence" and p["type"] == "unavailable"
                                  and p.xml.find(f"{MUC_USER}x/{MUC_USER}destroy") is not None)
            reason = gone.xml.find(f"{MUC_USER}x/{MUC_USER}destroy/{MUC_USER}reason")
            assert reason is not None and reason.text == "the club is closed"
            done = await alice.event("done", what="destroy")
            assert done["error"] == 0, done
        finally:
            await alice.close()
            await bob.close()
    run(scenario)


def test_owner_requests_refused_for_participant_and_bad_input(parleyd, logdir):  # noqa: F811
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        alice = Driver(parleyd, "alice", "desk", logdir)
        bobs = room("bobs")
        try:
            await bob.join(bobs, "bob", create=True)
            await alice.online()
            # what cannot be asked at all
            assert await alice.cmd(f"nick {bobs} alice") == STATE      # not in the room
            assert await alice.cmd(f"affiliation {bobs} bob@{DOMAIN} king") == INVALID
            assert await alice.cmd(f"affiliation {bobs} not-a-jid@@ member") == INVALID
            assert await alice.cmd(f"configure {bobs}") == INVALID     # no fields
            assert await alice.cmd(f"configure {bobs} novalue") == INVALID
            assert await alice.cmd("destroy a/b") == INVALID
            await alice.cmd(f"join {bobs} alice")
            await alice.event("room_joined", room=bobs)
            assert await alice.cmd(f"nick {bobs}") == INVALID
            # the room refuses a participant, with its reason
            for line, what in ((f"config {bobs}", "config"),
                               (f"configure {bobs} muc#roomconfig_moderatedroom=1", "done"),
                               (f"destroy {bobs} mine now", "done"),
                               (f"affiliation {bobs} alice@{DOMAIN} owner", "done")):
                assert await alice.cmd(line) == OK
                ans = await alice.event(what, room=bobs)
                assert ans["error"] != 0 and "forbidden" in ans["error_text"], (line, ans)
            bob.send_message(mto=bobs, mbody="still open", mtype="groupchat")
            await alice.event("room_message", body="still open")
        finally:
            await alice.close()
            await bob.close()
    run(scenario)
