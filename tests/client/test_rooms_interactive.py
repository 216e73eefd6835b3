"""Group chat, history from the server archive and carbons in the interactive `parley`
client, in a real terminal (tmux, as test_interactive.py), against a real parleyd, with
slixmpp as the other people: /join (room window, header without the end-to-end lock),
talking, /who, /topic, /invite, /kick, /ban, /rooms, /leave; a wrong room password shown
to the user; history fetched from the archive on a new device, kept once across runs;
messages of the account's other devices marked as such.

    PARLEY_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/client/test_rooms_interactive.py
"""
import asyncio
import json
import re
import subprocess
import time

from rooms_util import Peer, room, run
from test_client import DOMAIN, PARLEY, parleyd  # noqa: F401  (parleyd is a fixture)
from test_interactive import Term, history, parley_cmd, pytestmark, tmux_dir  # noqa: F401

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"


async def see(term, pattern, timeout=20.0, absent=False):
    """Term.wait for asyncio scenarios: the slixmpp peers keep running meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        s = term.screen()
        if (re.search(pattern, s, re.M) is not None) != absent:
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"{term.name}: {'still' if absent else 'never'} matched "
                                 f"{pattern!r}; screen:\n{s}")
        await asyncio.sleep(0.1)


def no_e2e_lock(screen):
    return "🔐" not in screen and "[E2E]" not in screen


def test_interactive_join_talk_who_topic_invite_kick_ban_rooms_leave(parleyd, tmux_dir):  # noqa: F811
    async def scenario():
        bob = await Peer(parleyd, "bob", "phone").login()
        alice = Term(tmux_dir, "alice", parleyd, "alice").start()
        try:
            await see(alice, r"signed in as")
            alice.type("/join team")
            s = await see(alice, r"you are in team@conference\.localhost as alice "
                                 r"\(moderator, owner\), a new room")
            assert re.search(r"win: 1 \[2\]", s), s
            s = await see(alice, r"\[2\] team@conference\.localhost \[server-readable\] group "
                                 r"chat \| 1 occupant, you are alice")
            assert "group chats are not end-to-end encrypted: the server can read them" in s
            await bob.join(room("team"), "bob")
            await see(alice, r"bob entered \(bob@localhost/phone\)")

            # messages both ways; none carries the end-to-end lock, the TLS lock stays
            bob.send_message(mto=room("team"), mbody="hello from bob", mtype="groupchat")
            s = await see(alice, r"<bob> hello from bob")
            alice.type("hi all")
            await bob.wait(lambda m: m.name == "message" and m["body"] == "hi all")
            s = await see(alice, r"<alice> hi all")
            assert no_e2e_lock(s), s
            assert re.search(r"\[TLS1\.3 🔒\]", s), s
            line = alice.line(r"<bob> hello from bob")
            assert re.search(r"\d\d:\d\d\s+<bob> hello from bob", line), line

            alice.type("/who")
            s = await see(alice, r"2 in team@conference\.localhost:")
            assert re.search(r"alice <alice@localhost/\S+> \(moderator, owner\) - you", s), s
            assert re.search(r"bob <bob@localhost/phone> \(participant, none\)", s), s

            alice.type("/topic release on friday")
            await see(alice, r"topic: release on friday \(set by alice\)")
            alice.type("/topic")
            await see(alice, r"topic of team@conference\.localhost: release on friday")
            await bob.wait(lambda m: m.name == "message" and m["subject"] == "release on friday")

            alice.type(f"/invite {BOB} join us")
            await see(alice, rf"invited {BOB} to team@conference\.localhost")
            inv = await bob.wait(lambda m: m.name == "message" and
                                   m.xml.find("{http://jabber.org/protocol/muc#user}x") is not None)
            assert inv["from"] == room("team")

            alice.type("/kick bob be quiet")
            await see(alice, r"bob was kicked by alice: be quiet")
            await bob.wait(lambda p: p.name == "presence" and p["type"] == "unavailable" and
                           "307" in str(p))
            alice.type(f"/ban {BOB} for good")
            try:
                await bob.join(room("team"), "bob")
                raise AssertionError("a banned user joined")
            except Exception as e:  # noqa: BLE001  (slixmpp raises its PresenceError)
                assert "forbidden" in str(e) or "banned" in str(e), e

            alice.type("/rooms")
            await see(alice, r"1 room \(/join NAME@SERVICE\):")
            await see(alice, r"team@conference\.localhost")

            alice.type("/leave bye")
            await see(alice, r"you left team@conference\.localhost")
            alice.type("not in the room any more")
            await see(alice, r"not sent: you are not in this room \(/join it\)")
            alice.type("/kick nobody")
            await see(alice, r"/kick failed: you are not in the room")
            assert "PARLEY-EXIT=0" in alice.quit()
        finally:
            await bob.close()
    run(scenario)


def test_interactive_bad_input_wrong_room_password_and_usage(parleyd, tmux_dir):  # noqa: F811
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        alice = Term(tmux_dir, "alice", parleyd, "alice").start()
        try:
            await bob.join(room("vault"), "bob", create=True)
            await bob.configure(room("vault"), {"passwordprotectedroom": "1",
                                                "roomsecret": "s3cret"})
            await see(alice, r"signed in as")
            alice.type(f"/join {room('vault')} alice wrong-guess")
            s = await see(alice, r"cannot join vault@conference\.localhost: wrong or missing "
                                 r"room password")
            assert "wrong-guess" not in s.split("cannot join")[1], s
            alice.type("/join")
            await see(alice, r"usage: /join ROOM\[@service\] \[NICK\] \[PASSWORD\]")
            alice.type("/join a/b")
            await see(alice, r"usage: /join ROOM")
            alice.keys("M-1")
            alice.type("/kick bob")  # the console is no room
            await see(alice, r"usage: /kick NICK \[REASON\] \(in a room's window")
            alice.type(f"/join {room('vault')} alice s3cret")
            await see(alice, r"you are in vault@conference\.localhost as alice")
            assert "PARLEY-EXIT=0" in alice.quit()
        finally:
            await bob.close()
    run(scenario)


def count_lines(screen, text):
    return sum(1 for ln in screen.splitlines() if text in ln)


def test_interactive_new_device_history_from_archive_kept_once(parleyd, tmux_dir):  # noqa: F811
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        desk = await Peer(parleyd, "alice", "desk").login()
        try:
            for i in range(4):
                sender, to = (desk, BOB) if i % 2 == 0 else (bob, ALICE)
                sender.send_message(mto=to, mbody=f"earlier note {i}", mtype="chat")
                other = bob if i % 2 == 0 else desk
                await other.wait(lambda m, t=f"earlier note {i}": m.name == "message" and
                                 m["body"] == t)
            # a new device of alice's, keeping its history (archive mode)
            phone = Term(tmux_dir, "phone", parleyd, "alice", mode="archive").start()
            await see(phone, r"4 messages from the server archive")
            s = await see(phone, r"win: \[1\] 2")  # the conversation's window, not switched to
            phone.keys("M-2")
            s = await see(phone, r"earlier note 3")
            for i in range(4):
                assert count_lines(s, f"earlier note {i}") == 1, s
            assert re.search(r"<me> earlier note 0", s) and re.search(rf"<{BOB}> earlier note 1", s)
            assert "PARLEY-EXIT=0" in phone.quit()

            bob.send_message(mto=ALICE, mbody="while the phone was off", mtype="chat")
            await desk.wait(lambda m: m.name == "message" and m["body"] == "while the phone was off")
            phone.tmux("kill-session", "-t", "phone")
            again = Term(tmux_dir, "phone2", parleyd, "alice", mode="archive").start()
            await see(again, r"1 message from the server archive")
            again.keys("M-2")
            s = await see(again, r"while the phone was off")
            for i in range(4):
                assert count_lines(s, f"earlier note {i}") == 1, s
            assert "PARLEY-EXIT=0" in again.quit()
            # and the history on disk has each message once
            rows = [json.loads(ln) for ln in history(tmux_dir, "alice", "show", "--with",
                                                     BOB).stdout.splitlines()]
            bodies = [r["body"] for r in rows]
            assert sorted(bodies) == sorted([f"earlier note {i}" for i in range(4)] +
                                            ["while the phone was off"]), bodies
        finally:
            await bob.close()
            await desk.close()
    run(scenario)


def test_interactive_messages_of_other_devices_marked(parleyd, tmux_dir):  # noqa: F811
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        phone = await Peer(parleyd, "alice", "phone").login()
        alice = Term(tmux_dir, "alice", parleyd, "alice").start()
        try:
            await see(alice, r"signed in as")
            await asyncio.sleep(0.5)  # carbons enabled after sign-in
            # alice's phone writes to bob: the terminal shows it as from the other device
            phone.send_message(mto=BOB, mbody="sent from the phone", mtype="chat")
            await see(alice, r"win: \[1\] 2")
            alice.keys("M-2")
            s = await see(alice, r"<me \(other device\)> sent from the phone")
            # bob answers the phone only: the terminal shows where it went
            bob.send_message(mto=f"{ALICE}/phone", mbody="answer to the phone", mtype="chat")
            s = await see(alice, rf"<{BOB} → \(other device\)> answer to the phone")
            assert no_e2e_lock(s), s
            assert "PARLEY-EXIT=0" in alice.quit()
        finally:
            await bob.close()
            await phone.close()
    run(scenario)


def test_parley_rooms_lists_the_services_rooms(parleyd):  # noqa: F811
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        try:
            await bob.join(room("listed"), "bob", create=True)
            r = parley_cmd(*parleyd.account("alice"), "rooms", timeout=60)
            assert r.returncode == 0, r.stderr
            rows = [json.loads(ln) for ln in r.stdout.splitlines()]
            assert {"jid": room("listed"), "name": "listed"} in rows, rows
            r = parley_cmd(*parleyd.account("alice"), "rooms", "--service",
                           "nothing.example", timeout=60)
            assert r.returncode == 2, (r.returncode, r.stderr)  # remote-server-not-found
            assert "cannot list the rooms" in r.stderr
            r = parley_cmd(*parleyd.account("alice"), "rooms", "--service", "a@b/c")
            assert r.returncode == 1 and "--service needs" in r.stderr
        finally:
            await bob.close()
    run(scenario)


def test_interactive_encrypted_message_of_other_device_decrypted_and_marked(parleyd, tmux_dir):  # noqa: F811
    """A carbon of an OMEMO message another device of ours sent is addressed to the peer,
    not to us: still decrypted, shown with the end-to-end lock and as ours."""
    alice = Term(tmux_dir, "alice", parleyd, "alice").start()
    bob = subprocess.Popen([PARLEY, *parleyd.account("bob"), "listen", "--count", "1",
                            "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        assert "listening as" in bob.stderr.readline()  # bob's OMEMO keys are published
        alice.wait(r"signed in as")
        time.sleep(1.0)  # alice's terminal publishes its keys after signing in
        r = parley_cmd(*parleyd.account("alice"), "send", "--to", BOB, "--message",
                       "sealed from the other device", "-v")
        assert r.returncode == 0, r.stderr
        assert "end-to-end encrypted" in r.stderr, r.stderr
        alice.wait(r"win: \[1\] 2")
        alice.keys("M-2")
        line = alice.wait(r"sealed from the other device") and alice.line(r"sealed from the")
        assert re.search(r"🔐 <me \(other device\)> sealed from the other device", line), line
        out, _ = bob.communicate(timeout=60)
        assert json.loads(out.splitlines()[0])["encrypted"] is True
        assert "PARLEY-EXIT=0" in alice.quit()
    finally:
        if bob.poll() is None:
            bob.kill()
            bob.wait(timeout=10)


MUC_USER = "{http://jabber.org/protocol/muc#user}"


def muc_codes(st):
    x = st.xml.find(f"{MUC_USER}x")
    return set() if x is None else {s.get("code") for s in x.findall(f"{MUC_USER}status")}


def test_interactive_nick_config_affiliation_destroy_seen_by_slixmpp(parleyd, tmux_dir):  # noqa: F811
    """Running a room from the terminal: /nick (a taken nickname refused, then the change
    that the other occupant sees as 303), /config (the settings shown, members-only
    applied: the non-member is put out and refused, a bad value refused), /affiliation
    (membership admits bob again; a refused change shown) and /destroy with a reason that
    the other occupant gets."""
    async def scenario():
        bob = await Peer(parleyd, "bob", "phone").login()
        alice = Term(tmux_dir, "alice", parleyd, "alice").start()
        team = room("team")
        try:
            await see(alice, r"signed in as")
            alice.type("/join team")
            await see(alice, r"you are in team@conference\.localhost as alice \(moderator, owner\)")
            await bob.join(team, "bob")
            await see(alice, r"bob entered")

            # a nickname in use: the room's refusal is shown, nothing changes
            alice.type("/nick bob")
            await see(alice, r"conflict: that nickname is taken in this room")
            alice.type("/nick")
            await see(alice, r"usage: /nick NEWNICK")
            # the change: bob sees alice leave with 303 and the new nick, then alicia
            alice.type("/nick alicia")
            gone = await bob.wait(lambda p: p.name == "presence" and p["type"] == "unavailable"
                                  and str(p["from"]) == f"{team}/alice")
            assert "303" in muc_codes(gone), gone
            assert gone.xml.find(f"{MUC_USER}x/{MUC_USER}item").get("nick") == "alicia", gone
            await bob.wait(lambda p: p.name == "presence" and p["type"] != "unavailable"
                           and str(p["from"]) == f"{team}/alicia")
            await see(alice, r"alice is now known as alicia")
            alice.type("said under the new name")
            m = await bob.wait(lambda m: m.name == "message" and
                               m["body"] == "said under the new name")
            assert str(m["from"]) == f"{team}/alicia"
            await see(alice, r"\| 2 occupants, you are alicia")

            # the settings as the room has them
            alice.type("/config")
            s = await see(alice, r"max-users\s+\d+")
            assert re.search(r"configuration of team@conference\.localhost", s), s
            assert re.search(r"members-only\s+off", s), s
            assert re.search(r"password\s+none", s), s
            assert re.search(r"persistent\s+off", s), s
            # a value the server refuses: its reason is shown, nothing changes
            alice.type("/config max-users 999999")
            await see(alice, r"/config failed: not-acceptable: a room holds at most \d+")
            alice.type("/config members-only maybe")
            await see(alice, r"/config members-only takes on or off")
            # members-only: bob (no affiliation) is put out (322) and refused
            alice.type("/config members-only on")
            await see(alice, r"configuration of team@conference\.localhost changed")
            out = await bob.wait(lambda p: p.name == "presence" and p["type"] == "unavailable"
                                 and str(p["from"]) == f"{team}/bob")
            assert "322" in muc_codes(out), out
            await see(alice, r"bob was removed \(not a member\)")
            try:
                await bob.join(team, "bob")
                raise AssertionError("a non-member joined a members-only room")
            except Exception as e:  # noqa: BLE001  (slixmpp raises its PresenceError)
                assert "registration-required" in str(e) or "members only" in str(e), e
            alice.type("/config name Team Room")
            await see(alice, r"configuration of team@conference\.localhost changed")
            alice.type("/config")
            s = await see(alice, r"members-only\s+on")
            assert re.search(r"name\s+Team Room", s), s

            # membership admits bob
            alice.type(f"/affiliation {BOB} member")
            await see(alice, r"affiliation changed in team@conference\.localhost")
            await bob.join(team, "bob")
            await see(alice, r"bob entered")
            # the last owner cannot give up ownership: the room's reason is shown
            alice.type(f"/affiliation {ALICE} none")
            await see(alice, r"/affiliation failed: conflict: a room keeps at least one owner")
            alice.type("/affiliation bob")
            await see(alice, r"usage: /affiliation JID owner\|admin\|member\|none\|outcast")

            # destruction: bob is told why
            alice.type("/destroy moving to #ops")
            gone = await bob.wait(lambda p: p.name == "presence" and p["type"] == "unavailable"
                                  and p.xml.find(f"{MUC_USER}x/{MUC_USER}destroy") is not None)
            reason = gone.xml.find(f"{MUC_USER}x/{MUC_USER}destroy/{MUC_USER}reason")
            assert reason is not None and reason.text == "moving to #ops", gone
            await see(alice, r"team@conference\.localhost was destroyed: moving to #ops")
            assert "PARLEY-EXIT=0" in alice.quit()
        finally:
            await bob.close()
    run(scenario)


def test_interactive_owner_commands_refused_for_a_participant(parleyd, tmux_dir):  # noqa: F811
    """In bob's room alice is a participant: /config, /destroy and /affiliation come back
    with the room's refusal, and the room is unchanged."""
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        alice = Term(tmux_dir, "alice", parleyd, "alice").start()
        bobs = room("bobs")
        try:
            await bob.join(bobs, "bob", create=True)
            await see(alice, r"signed in as")
            alice.type(f"/join {bobs}")
            await see(alice, r"you are in bobs@conference\.localhost as alice \(participant")
            alice.type("/config")
            await see(alice, r"/config failed: forbidden")
            alice.type("/config moderated on")
            await see(alice, r"/config failed: forbidden")
            alice.type("/destroy bye")
            await see(alice, r"/destroy failed: forbidden")
            alice.type(f"/affiliation {ALICE} owner")
            await see(alice, r"/affiliation failed: forbidden")
            # the room is still there, bob still in it, alice too
            bob.send_message(mto=bobs, mbody="still here", mtype="groupchat")
            await see(alice, r"<bob> still here")
            alice.keys("M-1")
            alice.type("/destroy")
            await see(alice, r"usage: /destroy \[REASON\] \(in a room's window")
            assert "PARLEY-EXIT=0" in alice.quit()
        finally:
            await bob.close()
    run(scenario)


def test_parley_room_config_affiliation_destroy_commands(parleyd):  # noqa: F811
    """`parley room ...` for scripts: the settings as JSON lines, a change applied (a
    non-member refused), membership granted (then admitted), a refusal's exit code and
    reason, destruction seen by the occupant; usage errors are exit 1."""
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        acct = parleyd.account("alice")
        desk = await Peer(parleyd, "alice", "desk").login()
        hq = room("hq")
        try:
            await desk.join(hq, "alice", create=True)
            loop = asyncio.get_running_loop()

            async def cmd(*args):  # parley_cmd blocks: the peers keep running meanwhile
                return await loop.run_in_executor(None, lambda: parley_cmd(*acct, "room",
                                                                          *args, timeout=60))
            r = await cmd("config", hq)
            assert r.returncode == 0, r.stderr
            rows = {row["key"]: row["value"] for row in map(json.loads, r.stdout.splitlines())}
            assert rows["members-only"] == "off" and rows["password"] == "none", rows
            assert "max-users" in rows and "passwordprotectedroom" not in rows, rows
            r = await cmd("config", hq, "members-only", "on")
            assert r.returncode == 0, r.stderr
            r = await cmd("config", hq)
            assert ('{"key":"members-only","value":"on"' in r.stdout), r.stdout
            try:
                await bob.join(hq, "bob")
                raise AssertionError("a non-member joined a members-only room")
            except Exception as e:  # noqa: BLE001  (slixmpp raises its PresenceError)
                assert "registration-required" in str(e) or "members only" in str(e), e
            r = await cmd("affiliation", hq, BOB, "member")
            assert r.returncode == 0, r.stderr
            await bob.join(hq, "bob")
            # refused by the room: its reason, the policy exit code
            r = await cmd("affiliation", hq, ALICE, "none")
            assert r.returncode == 7 and "at least one owner" in r.stderr, (r.returncode,
                                                                            r.stderr)
            r = await cmd("config", hq, "max-users", "999999")
            assert r.returncode == 5 and "at most" in r.stderr, (r.returncode, r.stderr)
            r = await cmd("destroy", hq, "merged into ops")
            assert r.returncode == 0, r.stderr
            gone = await bob.wait(lambda p: p.name == "presence" and p["type"] == "unavailable"
                                  and p.xml.find(f"{MUC_USER}x/{MUC_USER}destroy") is not None)
            reason = gone.xml.find(f"{MUC_USER}x/{MUC_USER}destroy/{MUC_USER}reason")
            assert reason is not None and reason.text == "merged into ops"
            for bad in (["config"], ["frob", hq], ["config", hq, "colour", "red"],
                        ["config", hq, "moderated", "maybe"], ["affiliation", hq, BOB]):
                r = await cmd(*bad)
                assert r.returncode == 1 and "parley:" in r.stderr, (bad, r.stderr)
        finally:
            await bob.close()
            await desk.close()
    run(scenario)
