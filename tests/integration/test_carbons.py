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


def test_carbons_which_messages_are_copied(srv, run):
    """XEP-0280 section 6: chat, and normal with a body, are copied; groupchat never, nor
    a private message from a room occupant (sent by the room), nor headlines, bodiless
    normal messages, or what is marked <private/> or <no-copy/>. A private message the
    user sends to an occupant is a chat like any other: the user's other devices see it.
    Each case is sent before an ordinary message whose copy ends the wait, so a copy
    that should not exist would be there by then."""
    from muc_util import PLUGINS as MUC_PLUGINS, create, gc_body, groupchat, join
    from muc_util import login as muc_login

    async def scenario():
        cl = clients_for(srv)
        plugins = MUC_PLUGINS + ("xep_0280",)
        desk = await muc_login(cl, "alice", "desk", plugins=plugins)
        phone = await cl.login("alice", "phone", plugins=("xep_0280",))
        bob = await muc_login(cl, "bob", "b", plugins=plugins)
        await enable(desk)
        await enable(phone)
        sent = carbons_of(phone, "carbon_sent")
        received = carbons_of(phone, "carbon_received")
        rjid = await create(desk, "carbonroom", "alice")
        await join(bob, rjid, "bob")

        async def marker(text):
            bob.send_message(mto="alice@localhost/desk", mbody=text, mtype="chat")
            await wait_until(lambda: any(m["carbon_received"]["body"] == text
                                         for m in received))

        # groupchat, both ways
        groupchat(desk, rjid, "gc from alice")
        groupchat(bob, rjid, "gc from bob")
        await desk.wait_for("message", gc_body(rjid, "gc from bob"))
        # a private message from an occupant, sent by the room
        bob.send_message(mto=f"{rjid}/alice", mbody="pm from bob", mtype="chat")
        await desk.wait_for("message", lambda m: m["body"] == "pm from bob")
        # marked private, or no-copy, either way
        bob.send_raw("<message to='alice@localhost/desk' type='chat'><body>no-copy in</body>"
                     "<no-copy xmlns='urn:xmpp:hints'/></message>")
        desk.send_raw("<message to='bob@localhost/b' type='chat'><body>private out</body>"
                      "<private xmlns='urn:xmpp:carbons:2'/></message>")
        desk.send_raw("<message to='bob@localhost/b' type='chat'><body>no-copy out</body>"
                      "<no-copy xmlns='urn:xmpp:hints'/></message>")
        await bob.wait_for("message", lambda m: m["body"] == "no-copy out")
        # headline, and normal without a body
        bob.send_raw("<message to='alice@localhost/desk' type='headline'><body>headline</body>"
                     "</message>")
        bob.send_raw("<message to='alice@localhost/desk' type='normal' id='bodiless'>"
                     "<subject>only a subject</subject></message>")
        await desk.wait_for("mucm", lambda m: m["id"] == "bodiless")
        await marker("marker 1")
        assert [m["carbon_received"]["body"] for m in received] == ["marker 1"]
        assert sent == []

        # copied: normal with a body (both ways), and a private message alice sends in the room
        bob.send_message(mto="alice@localhost/desk", mbody="normal in", mtype="normal")
        desk.send_message(mto="bob@localhost/b", mbody="normal out", mtype="normal")
        desk.send_raw(f"<message to='{rjid}/bob' type='chat'><body>pm from alice</body>"
                      "<x xmlns='http://jabber.org/protocol/muc#user'/></message>")
        await bob.wait_for("message", lambda m: m["body"] == "pm from alice")
        await marker("marker 2")
        await wait_until(lambda: len(sent) == 2)
        assert [m["carbon_received"]["body"] for m in received] == \
            ["marker 1", "normal in", "marker 2"]
        assert [m["carbon_received"]["type"] for m in received][1] == "normal"
        got = {m["carbon_sent"]["body"]: m["carbon_sent"] for m in sent}
        assert set(got) == {"normal out", "pm from alice"}, list(got)
        assert got["pm from alice"]["to"] == f"{rjid}/bob"
        assert got["pm from alice"]["from"] == "alice@localhost/desk"
        assert all(m["from"] == "alice@localhost" for m in sent)
    run(scenario)
