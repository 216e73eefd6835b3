"""A one-to-one message that is still waiting for the recipient's OMEMO keys when the
connection drops (src/client/omemo/omemo_send.c): it is not yet on the stream, so XEP-0198
cannot carry it; the library keeps it, fetches the keys again once the session is resumed
or bound anew, and sends it then, encrypted, exactly once. If the client gives up
reconnecting, the user is told that it was NOT sent (an error message event).

Same set-up as test_client_sm_live.py: alice (libparley, through parley-driver) talks to
a real parleyd through a loopback proxy that swallows traffic, then resets the link; bob
is a second parley-driver, so the message is end-to-end encrypted between two Parley
clients under the default policy.

    PARLEY_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/client/test_client_sm_omemo.py
"""
import asyncio
import time

from test_client import parleyd  # noqa: F401  (parleyd is a fixture)
from test_client_sm_live import ALICE, BOB, RECONNECT, bodies, logdir  # noqa: F401 (logdir: a fixture)
from test_client_sm_live import server_log, through_proxy, wait_bodies, wait_connected

TEXT = "first contact, written while the keys were being fetched"


async def e2e_ready(drv, timeout=20.0):
    """Until drv has published its OMEMO keys in this sign-in (peers can encrypt to it)."""
    deadline = time.monotonic() + timeout
    while True:
        drv.proc.stdin.write(b"e2e_ready\n")
        drv.proc.stdin.flush()
        ack = await drv.event("ack", cmd="e2e_ready")
        if ack["detail"] == "1":
            return
        assert time.monotonic() < deadline, f"{drv.name}: OMEMO keys not published"
        await asyncio.sleep(0.1)


async def send_into_dead_link(proxy, alice):
    """alice writes to bob for the first time while the link swallows everything: her
    fetch of bob's device list goes nowhere, the message waits for it; then the link is
    reset. Returns the message id (from alice's "sent" or error event, or None)."""
    proxy.mode = "dead"
    await asyncio.sleep(0.3)
    assert await alice.cmd(f"msg {BOB} {TEXT}") == 0
    await asyncio.sleep(0.8)
    # nothing went out yet: it is waiting for bob's keys
    assert not [ev for ev in alice.all("sent") if ev.get("to", "").startswith(BOB)]
    proxy.cut()
    await asyncio.sleep(0.5)


def refusals(alice):
    return [ev for ev in alice.all("message") if ev.get("type") == "error"]


async def delivered_once_encrypted(alice, bob):
    deadline = time.monotonic() + 30
    while TEXT not in bodies(bob) and not refusals(alice) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not refusals(alice), f"the message was refused, not carried: {refusals(alice)}"
    await wait_bodies(bob, [TEXT], timeout=1)
    got = [ev for ev in bob.all("message") if ev.get("body") == TEXT]
    assert got[0]["encrypted"] is True, got
    assert not refusals(alice), refusals(alice)
    sent = [ev for ev in alice.all("sent") if ev.get("to", "").startswith(BOB)]
    assert len(sent) == 1 and sent[0]["encrypted"] is True, sent


def test_message_waiting_for_keys_is_sent_after_resumption(parleyd, logdir):  # noqa: F811
    async def scenario(proxy, alice, bob):
        await e2e_ready(alice)
        await e2e_ready(bob)
        await send_into_dead_link(proxy, alice)
        proxy.restore()
        await wait_connected(alice, 2)
        await delivered_once_encrypted(alice, bob)
        assert f"resumed {ALICE}/desk" in server_log(parleyd)
    through_proxy(parleyd, logdir, scenario)


def test_message_waiting_for_keys_is_sent_on_a_new_session(parleyd, logdir):  # noqa: F811
    async def scenario(proxy, alice, bob):
        await e2e_ready(alice)
        await e2e_ready(bob)
        await send_into_dead_link(proxy, alice)
        # a new server process: the old session cannot be resumed, alice binds anew
        parleyd.stop()
        parleyd.start()
        proxy.restore()
        await wait_connected(alice, 2, timeout=30)
        await wait_connected(bob, 2, timeout=30)
        await delivered_once_encrypted(alice, bob)
    through_proxy(parleyd, logdir, scenario, bob_args=RECONNECT, timeout=120)


def test_message_waiting_for_keys_is_refused_when_the_client_gives_up(parleyd, logdir):  # noqa: F811
    async def scenario(proxy, alice, bob):
        await e2e_ready(alice)
        await e2e_ready(bob)
        await send_into_dead_link(proxy, alice)
        # the link never comes back: after its attempts alice stops, and says so before
        # she reports herself offline for good (the driver then exits)
        deadline = time.monotonic() + 30
        while alice.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert alice.proc.poll() is not None, "alice did not give up"
        await asyncio.sleep(0.3)  # the reader thread takes the last lines
        with alice.lock:
            events = [e for e in alice.events if e["event"] in ("message", "disconnected")]
        refused = [i for i, e in enumerate(events) if e.get("type") == "error"]
        assert len(refused) == 1, events
        ev = events[refused[0]]
        assert ev["from"].startswith(BOB) and ev["id"], ev
        assert "not sent" in ev["error_text"], ev
        assert events[-1]["event"] == "disconnected" and refused[0] < len(events) - 1, \
            f"refused only after the final disconnection: {events}"
        assert TEXT not in bodies(bob)
        assert not [e for e in alice.all("sent") if e.get("to", "").startswith(BOB)]
    through_proxy(parleyd, logdir, scenario, alice_args=["--reconnect-attempts", "2"])
