"""History from the server archive (XEP-0313) and carbons (XEP-0280) through libparley
(tests/client/parley_driver.c) against a real parleyd, with slixmpp as the other party:
a new device of an account gets its history at sign-in, in order and once; a second run
that knows where the first got to gets nothing twice; live messages that arrive during
the fetch come after it; a room's archive gives the history on joining; copies of what
another device sent or received are delivered and marked; forged carbons and archive
results are refused.

    PARLEY_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/client/test_history_sync.py
"""

from rooms_util import Driver, Peer, logdir, room, run  # noqa: F401 (logdir: a fixture)
from test_client import DOMAIN, parleyd  # noqa: F401  (parleyd is a fixture)

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
CARBON_RECEIVED, CARBON_SENT = 1, 2


async def converse(alice, bob, n):
    """alice (a driver) and bob (slixmpp) exchange n messages, alternately."""
    for i in range(n):
        if i % 2 == 0:
            assert await alice.cmd(f"msg {BOB} line {i}") == 0
            await bob.wait(lambda m, t=f"line {i}": m.name == "message" and m["body"] == t)
        else:
            bob.send_message(mto=ALICE, mbody=f"line {i}", mtype="chat")
            await alice.event("message", body=f"line {i}")


def archived_bodies(drv):
    return [e["body"] for e in drv.all("message") if e["archived"]]


def test_new_device_gets_history_in_order_once_and_a_second_run_nothing_twice(parleyd, logdir):  # noqa: F811
    async def scenario():
        desk = Driver(parleyd, "alice", "desk", logdir)
        bob = await Peer(parleyd, "bob", "b").login()
        try:
            await desk.online()
            await converse(desk, bob, 6)
            await desk.close()

            # a new device: every line, oldest first, each once, marked as archived
            phone = Driver(parleyd, "alice", "phone", logdir, "--archive-sync", "50")
            await phone.online()
            done = await phone.event("archive_done", timeout=20)
            assert done["error"] == 0 and done["count"] == 6, done
            got = [e for e in phone.all("message") if e["archived"]]
            assert [e["body"] for e in got] == [f"line {i}" for i in range(6)]
            assert all(e["stanza_id"] and e["timestamp_ms"] > 0 for e in got)
            assert [e["outgoing"] for e in got] == [i % 2 == 0 for i in range(6)]
            assert all(e["encrypted"] is False and e["carbon"] == 0 for e in got)
            last = await phone.cmd("last -")
            assert last
            # live messages after the sync are not archived ones
            bob.send_message(mto=ALICE, mbody="after the sync", mtype="chat")
            live = await phone.event("message", body="after the sync")
            assert not live["archived"] and live["stanza_id"]
            last = await phone.cmd("last -")
            await phone.close()

            # the second run knows where the first got to: nothing again
            again = Driver(parleyd, "alice", "phone", logdir, "--archive-sync", "50",
                           "--last", f"-={last}")
            await again.online()
            done = await again.event("archive_done", timeout=20)
            assert done["error"] == 0 and done["count"] == 0, done
            assert archived_bodies(again) == []
            bob.send_message(mto=ALICE, mbody="one more", mtype="chat")
            await again.event("message", body="one more")
            await again.close()
        finally:
            await bob.close()
    run(scenario)


def test_messages_arriving_while_fetching_come_after_the_history(parleyd, logdir):  # noqa: F811
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        try:
            for i in range(30):
                bob.send_message(mto=ALICE, mbody=f"old {i}", mtype="chat")
            await bob.plugin["xep_0199"].ping(jid=DOMAIN, timeout=10)  # all stored
            phone = Driver(parleyd, "alice", "phone", logdir, "--archive-sync", "50")
            # offline messages are delivered at sign-in, while the archive is fetched:
            # each comes once, and after the history
            await phone.online()
            await phone.event("archive_done", timeout=20)
            bodies = [e["body"] for e in phone.all("message")]
            assert bodies == [f"old {i}" for i in range(30)], bodies
            await phone.close()
        finally:
            await bob.close()
    run(scenario)


def test_expired_or_unknown_last_id_falls_back_to_the_last_messages(parleyd, logdir):  # noqa: F811
    async def scenario():
        desk = Driver(parleyd, "alice", "desk", logdir)
        bob = await Peer(parleyd, "bob", "b").login()
        try:
            await desk.online()
            await converse(desk, bob, 3)
            await desk.close()
            phone = Driver(parleyd, "alice", "phone", logdir, "--archive-sync", "2",
                           "--last", "-=no-such-archive-id")
            await phone.online()
            done = await phone.event("archive_done", timeout=20)
            assert done["error"] == 0 and done["count"] == 2
            assert archived_bodies(phone) == ["line 1", "line 2"]
            await phone.close()
        finally:
            await bob.close()
    run(scenario)


def test_room_history_comes_from_the_rooms_archive_on_joining(parleyd, logdir):  # noqa: F811
    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        try:
            await bob.join(room("annals"), "bob", create=True)
            for i in range(5):
                bob.send_message(mto=room("annals"), mbody=f"minute {i}", mtype="groupchat")
                await bob.wait(lambda m, t=f"minute {i}": m.name == "message" and m["body"] == t)
            alice = Driver(parleyd, "alice", "desk", logdir, "--archive-sync", "3")
            await alice.online()
            await alice.cmd(f"join {room('annals')} alice")
            await alice.event("room_joined")
            done = await alice.event("archive_done", room=room("annals"), timeout=20)
            assert done["count"] == 3
            hist = [e for e in alice.all("room_message")]
            # from the archive, not also from the join history (asked for none)
            assert [e["body"] for e in hist] == ["minute 2", "minute 3", "minute 4"]
            assert all(e["archived"] and e["nick"] == "bob" and e["encrypted"] is False
                       for e in hist)
            first = hist[0]["stanza_id"]
            bob.send_message(mto=room("annals"), mbody="live minute", mtype="groupchat")
            live = await alice.event("room_message", body="live minute")
            assert not live["archived"]
            # fetching again from an earlier id: what was delivered is not delivered again
            alice.clear()
            assert await alice.cmd(f"fetch {room('annals')} - {first} 50") == 0
            done = await alice.event("archive_done", room=room("annals"))
            assert done["count"] == 0 and done["error"] == 0
            await alice.expect_none(lambda e: e["event"] == "room_message", 0.5)
            await alice.close()
        finally:
            await bob.close()
    run(scenario)


def test_carbons_of_the_other_device_are_delivered_and_marked(parleyd, logdir):  # noqa: F811
    async def scenario():
        desk = Driver(parleyd, "alice", "desk", logdir)
        phone = Driver(parleyd, "alice", "phone", logdir)
        bob = await Peer(parleyd, "bob", "b").login()
        try:
            await desk.online()
            await phone.online()
            await phone.expect_none(lambda e: False, 0.5)  # carbons enabled meanwhile
            # what the phone sends shows on the desk as sent by another device
            assert await phone.cmd(f"msg {BOB} from my phone") == 0
            c = await desk.event("message", body="from my phone")
            assert c["carbon"] == CARBON_SENT and c["outgoing"]
            assert c["to"] == BOB and c["from"] == f"{ALICE}/phone"
            # what bob sends to the phone only shows on the desk as received elsewhere
            bob.send_message(mto=f"{ALICE}/phone", mbody="to your phone", mtype="chat")
            await phone.event("message", body="to your phone", carbon=0)
            c = await desk.event("message", body="to your phone")
            assert c["carbon"] == CARBON_RECEIVED and not c["outgoing"]
            assert c["from"].startswith(BOB) and c["stanza_id"]
            # each once
            await desk.expect_none(lambda e: e["event"] == "message", 0.5)
        finally:
            await desk.close()
            await phone.close()
            await bob.close()
    run(scenario)


def test_bad_input_forged_carbon_and_archive_result_from_another_account(parleyd, logdir):  # noqa: F811
    async def scenario():
        desk = Driver(parleyd, "alice", "desk", logdir, "--archive-sync", "5")
        bob = await Peer(parleyd, "bob", "b").login()
        try:
            await desk.online()
            await desk.event("archive_done", timeout=20)
            # bob wraps a message as if alice had sent it from another device
            bob.send_raw(f"<message to='{ALICE}/desk' type='chat'><sent xmlns="
                         f"'urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message"
                         f" xmlns='jabber:client' from='{ALICE}/phone' to='{BOB}' "
                         f"type='chat'><body>I resign</body></message></forwarded></sent>"
                         f"</message>")
            # and as an archive result nobody asked for
            bob.send_raw(f"<message to='{ALICE}/desk'><result xmlns='urn:xmpp:mam:2' "
                         f"queryid='q1' id='x1'><forwarded xmlns='urn:xmpp:forward:0'>"
                         f"<message xmlns='jabber:client' from='{ALICE}/phone' to='{BOB}' "
                         f"type='chat'><body>archived lie</body></message></forwarded>"
                         f"</result></message>")
            bob.send_message(mto=f"{ALICE}/desk", mbody="marker", mtype="chat")
            await desk.event("message", body="marker")
            bodies = [e["body"] for e in desk.all("message")]
            assert "I resign" not in bodies and "archived lie" not in bodies, bodies
        finally:
            await desk.close()
            await bob.close()
    run(scenario)


def test_admin_policy_disabling_history_fetches_none(parleyd, logdir):  # noqa: F811
    parleyd.ctl("policy", "set", "--user", ALICE, "disable_im_history", "true")

    async def scenario():
        bob = await Peer(parleyd, "bob", "b").login()
        try:
            await bob.join(room("minutes"), "bob", create=True)
            bob.send_message(mto=room("minutes"), mbody="said before", mtype="groupchat")
            bob.send_message(mto=ALICE, mbody="archived before", mtype="chat")
            await bob.plugin["xep_0199"].ping(jid=DOMAIN, timeout=10)
            phone = Driver(parleyd, "alice", "phone", logdir, "--archive-sync", "50")
            await phone.online()
            await phone.cmd(f"join {room('minutes')} alice")
            await phone.event("room_joined")
            bob.send_message(mto=room("minutes"), mbody="said after", mtype="groupchat")
            await phone.event("room_message", body="said after")
            # neither the archive nor the room's join history: the organisation says no
            assert not phone.all("archive_done")
            assert [e for e in phone.all("room_message") if e["archived"]] == []
            assert archived_bodies(phone) == []
            await phone.close()
        finally:
            await bob.close()
    run(scenario)
