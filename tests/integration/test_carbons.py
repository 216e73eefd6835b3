"""XEP-0280 message carbons, with slixmpp's xep_0280 plugin as the client: a user's other
devices see the chats the user sends and receives, as <sent/> and <received/> copies."""
import asyncio
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError

from conftest import clients_for


def carbons_of(client, kind):
    """Record carbon copies of kind ('carbon_sent' / 'carbon_received') on client."""
    got = []
    client.add_event_handler(kind, lambda m: got.append(m))
    return got


async def wait_until(pred, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def enable(client):
    await client["xep_0280"].enable()


def test_carbons_feature_advertised(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "desk", plugins=("xep_0030", "xep_0280"))
        info = await a["xep_0030"].get_info(jid="localhost")
        assert "urn:xmpp:carbons:2" in info["disco_info"]["features"]
    run(scenario)


def test_carbons_sent_and_received_copies_reach_other_devices(srv, run):
    async def scenario():
        cl = clients_for(srv)
        desk = await cl.login("alice", "desk", plugins=("xep_0280",))
        phone = await cl.login("alice", "phone", plugins=("xep_0280",))
        bob = await cl.login("bob", "b")
        await enable(desk)
        await enable(phone)
        sent_on_phone = carbons_of(phone, "carbon_sent")
        recv_on_phone = carbons_of(phone, "carbon_received")
        # alice writes from her desk: her phone sees what she sent.
        desk.send_message(mto="bob@localhost", mbody="from-desk", mtype="chat")
        await bob.wait_for("message", lambda m: m["body"] == "from-desk")
        await wait_until(lambda: sent_on_phone)
        fwd = sent_on_phone[0]["carbon_sent"]
        assert fwd["body"] == "from-desk" and fwd["to"].bare == "bob@localhost"
        assert fwd["from"].full == "alice@localhost/desk"
        # bob answers the desk directly: the phone gets a received copy.
        bob.send_message(mto="alice@localhost/desk", mbody="to-desk", mtype="chat")
        await desk.wait_for("message", lambda m: m["body"] == "to-desk")
        await wait_until(lambda: recv_on_phone)
        assert recv_on_phone[0]["carbon_received"]["body"] == "to-desk"
        # Each copy exactly once, and never a copy back to the device that sent it.
        await asyncio.sleep(0.5)
        assert len(sent_on_phone) == 1 and len(recv_on_phone) == 1
    run(scenario)


def test_carbons_not_copied_when_disabled_private_or_not_enabled(srv, run):
    async def scenario():
        cl = clients_for(srv)
        desk = await cl.login("alice", "desk", plugins=("xep_0280",))
        phone = await cl.login("alice", "phone", plugins=("xep_0280",))
        tablet = await cl.login("alice", "tablet", plugins=("xep_0280",))  # never enables
        bob = await cl.login("bob", "b")
        await enable(phone)
        phone_copies = carbons_of(phone, "carbon_received")
        tablet_copies = carbons_of(tablet, "carbon_received")
        # Marked private (XEP-0280 section 7): no copies.
        bob.send_raw("<message to='alice@localhost/desk' type='chat'><body>secret</body>"
                     "<private xmlns='urn:xmpp:carbons:2'/></message>")
        await desk.wait_for("message", lambda m: m["body"] == "secret")
        # An ordinary chat: the phone (enabled) gets a copy, the tablet (not enabled) not.
        bob.send_message(mto="alice@localhost/desk", mbody="ordinary", mtype="chat")
        await wait_until(lambda: phone_copies)
        await asyncio.sleep(0.5)
        assert [m["carbon_received"]["body"] for m in phone_copies] == ["ordinary"]
        assert tablet_copies == []
        # Disabled again: no more copies.
        await phone["xep_0280"].disable()
        bob.send_message(mto="alice@localhost/desk", mbody="after-disable", mtype="chat")
        await desk.wait_for("message", lambda m: m["body"] == "after-disable")
        await asyncio.sleep(0.5)
        assert len(phone_copies) == 1
    run(scenario)


def test_carbons_bad_input_enable_as_get_is_refused(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "desk")
        iq = a.Iq()
        iq["type"] = "get"
        iq.append(ET.Element("{urn:xmpp:carbons:2}enable"))
        try:
            await iq.send(timeout=5)
            raise AssertionError("an enable sent as IQ get was accepted")
        except IqError as e:
            assert e.iq["error"]["condition"] == "bad-request"
        # The server is fine and still delivers.
        b = await cl.login("bob", "b")
        b.send_message(mto="alice@localhost/desk", mbody="still-here", mtype="chat")
        await a.wait_for("message", lambda m: m["body"] == "still-here")
    run(scenario)
