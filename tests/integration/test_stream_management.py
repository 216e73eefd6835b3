"""XEP-0198 stream management: acknowledgements, resumption after a killed connection,
and redelivery through offline storage when a session is not resumed.

The receiving client is a raw stream that counts the stanzas it gets exactly as
XEP-0198 defines them, so the tests control precisely what was received and what was
acknowledged when the TCP connection is cut (SO_LINGER 0: a reset, no closing tag)."""
import asyncio
import re
import socket
import struct
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import (DOMAIN, HOST, NS_STANZA_ERR, NS_STREAM_ERR, RawStream, clients_for,
                      exchange, expect_stream_error, raw_login)

NS_SM = "urn:xmpp:sm:3"
NS_CLIENT = "jabber:client"
BURST = 1000


class StanzaCounter:
    """Parses what a RawStream receives after login into top-level elements, counting
    stanzas (message, presence, iq) as XEP-0198's h does."""

    def __init__(self, rs):
        self.rs = rs
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.parser.feed(f"<stream:stream xmlns='{NS_CLIENT}' "
                         "xmlns:stream='http://etherx.jabber.org/streams'>")
        self.depth = 0
        self.h = 0
        self.bodies = []      # bodies of messages, in arrival order
        self.nonzas = []      # SM elements (tag names), in arrival order
        self.elements = []
        self.feed(rs.buf)
        rs.buf = b""

    def feed(self, data):
        self.parser.feed(data)
        for ev, el in self.parser.read_events():
            if ev == "start":
                self.depth += 1
                continue
            self.depth -= 1
            if self.depth != 1:
                continue
            tag = el.tag.split("}")[-1]
            ns = el.tag[1:].split("}")[0] if el.tag.startswith("{") else ""
            self.elements.append(el)
            if ns == NS_SM:
                self.nonzas.append((tag, dict(el.attrib)))
            elif tag in ("message", "presence", "iq"):
                self.h += 1
                if tag == "message":
                    body = el.find(f"{{{NS_CLIENT}}}body")
                    if body is not None:
                        self.bodies.append(body.text)

    def pump(self, until, timeout=15.0):
        """Read until until(self) is true; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while not until(self):
            remaining = deadline - time.monotonic()
            assert remaining > 0, (f"timeout: h={self.h}, {len(self.bodies)} bodies, "
                                   f"nonzas={self.nonzas[-5:]}")
            self.rs.sock.settimeout(remaining)
            try:
                data = self.rs.sock.recv(65536)
            except socket.timeout:
                continue
            assert data, f"connection closed: h={self.h}, nonzas={self.nonzas[-5:]}"
            self.feed(data)

    def answer_ack_requests(self):
        """Answer every <r/> seen so far with the current count."""
        pending = sum(1 for t, _ in self.nonzas if t == "r")
        for _ in range(pending):
            self.rs.send(f"<a xmlns='{NS_SM}' h='{self.h}'/>")
        self.nonzas = [(t, a) for t, a in self.nonzas if t != "r"]


def kill(rs):
    """Cut the TCP connection with a reset: no closing tag, no TLS close_notify."""
    rs.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    rs.sock.close()


def enable(rs, resume=True):
    rs.send(f"<enable xmlns='{NS_SM}'" + (" resume='true'" if resume else "") + "/>")
    text = rs.read_until(r"<enabled\b[^>]*/>|<failed\b.*?</failed>|<failed\b[^>]*/>")
    m = re.search(r"\bid=['\"]([^'\"]+)", text)
    return text, (m.group(1) if m else None)


def login_sm(srv, user, resource, resume=True):
    rs, jid = raw_login(srv, user, resource, timeout=10.0)
    text, sm_id = enable(rs, resume)
    assert "<enabled" in text, text
    rs.send("<presence/>")
    return rs, sm_id


def login_for_resume(srv, user):
    """Authenticate without binding (a resumption replaces the bind)."""
    rs = RawStream(srv.c2s_port, timeout=10.0)
    feats = rs.open_stream()
    assert "starttls" in feats
    rs.starttls(srv)
    rs.open_stream()
    assert "<success" in rs.sasl_plain(user, srv.users[user])
    feats = rs.open_stream()
    assert NS_SM in feats, f"<sm/> not offered after authentication: {feats}"
    return rs


def send_burst(srv, to, start, count, sender="alice"):
    """Send count numbered messages from a raw client; returns after the server took them
    (a ping round trip after the last one)."""
    rs, _ = raw_login(srv, sender, "burst", timeout=20.0)
    chunk = []
    for i in range(start, start + count):
        chunk.append(f"<message to='{to}' type='chat' id='m{i}'><body>m{i}</body></message>")
        if len(chunk) == 50:
            rs.send("".join(chunk))
            chunk = []
    if chunk:
        rs.send("".join(chunk))
    rs.send("<iq type='get' id='done' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    rs.read_until(r"<iq\b[^>]*\bid=['\"]done['\"]", timeout=60)
    return rs


def numbers(bodies):
    return [int(b[1:]) for b in bodies if b and b.startswith("m")]


def test_sm_offered_and_acks_count_stanzas(srv):
    bob = login_for_resume(srv, "bob")
    jid = bob.bind("desk")
    assert jid == f"bob@{DOMAIN}/desk"
    text, _ = enable(bob, resume=False)
    assert "<enabled" in text and "resume" not in text
    # Three stanzas in, then a request: the server says it handled three.
    for i in range(3):
        bob.send(f"<iq type='get' id='p{i}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    bob.send(f"<r xmlns='{NS_SM}'/>")
    ack = bob.read_until(r"<a\b[^>]*/>")
    assert re.search(r"\bh=['\"]3['\"]", ack), ack


def test_sm_enable_before_bind_fails(srv):
    bob = login_for_resume(srv, "bob")
    text, _ = enable(bob)
    assert "<failed" in text and "unexpected-request" in text, text


def test_sm_ack_request_before_enable_is_stream_error(srv):
    bob, _ = raw_login(srv, "bob", "desk")
    bob.send(f"<r xmlns='{NS_SM}'/>")
    expect_stream_error(bob, "unsupported-stanza-type")


def test_sm_bad_input_ack_for_stanzas_never_sent(srv):
    bob, _ = login_sm(srv, "bob", "desk")
    bob.send(f"<a xmlns='{NS_SM}' h='999999'/>")
    expect_stream_error(bob, "undefined-condition")
    # The server is still there for everyone else.
    carol, _ = raw_login(srv, "carol", "x")
    carol.close()


def test_sm_bad_input_garbage_counter(srv):
    bob, _ = login_sm(srv, "bob", "desk")
    bob.send(f"<a xmlns='{NS_SM}' h='-5'/>")
    expect_stream_error(bob, "undefined-condition")


def test_sm_resume_unknown_or_foreign_id_fails(srv):
    bob_rs, bob_id = login_sm(srv, "bob", "desk")
    # Wrong id.
    c = login_for_resume(srv, "carol")
    c.send(f"<resume xmlns='{NS_SM}' previd='nonexistent' h='0'/>")
    text = c.read_until(r"<failed\b.*?</failed>")
    assert "item-not-found" in text
    # Somebody else's id: refused exactly like an unknown one.
    c2 = login_for_resume(srv, "carol")
    c2.send(f"<resume xmlns='{NS_SM}' previd='{bob_id}' h='0'/>")
    text = c2.read_until(r"<failed\b.*?</failed>")
    assert "item-not-found" in text
    # Bob's session is untouched: it still gets messages.
    counter = StanzaCounter(bob_rs)
    send_burst(srv, f"bob@{DOMAIN}/desk", 0, 1, sender="dave")
    counter.pump(lambda c: numbers(c.bodies) == [0])


def test_sm_killed_mid_burst_resumed_every_message_exactly_once_in_order(server):
    srv = server(extra=["sm_resume_timeout = 60"])
    bob, sm_id = login_sm(srv, "bob", "phone")
    counter = StanzaCounter(bob)
    alice = send_burst(srv, f"bob@{DOMAIN}/phone", 0, BURST // 2)
    # Bob reads part of the burst, acknowledging what the server asks about, then his
    # connection dies without a word while the rest of the burst is still coming.
    counter.pump(lambda c: len(c.bodies) >= 200)
    counter.answer_ack_requests()
    counter.pump(lambda c: len(c.bodies) >= 250)
    kill(bob)
    h_seen = counter.h
    received_before = list(counter.bodies)
    time.sleep(0.3)  # the server notices the reset
    # The sender goes on while bob is away: these are queued for the detached session.
    for i in range(BURST // 2, BURST, 50):
        alice.send("".join(f"<message to='bob@{DOMAIN}/phone' type='chat' id='m{j}'>"
                           f"<body>m{j}</body></message>" for j in range(i, i + 50)))
    alice.send("<iq type='get' id='done2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.read_until(r"<iq\b[^>]*\bid=['\"]done2['\"]", timeout=60)

    rs = login_for_resume(srv, "bob")
    rs.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='{h_seen}'/>")
    text = rs.read_until(r"<resumed\b[^>]*/>|<failed\b.*?</failed>")
    assert "<resumed" in text, text
    after = StanzaCounter(rs)
    after.pump(lambda c: len(received_before) + len(c.bodies) >= BURST, timeout=60)
    got = numbers(received_before) + numbers(after.bodies)
    assert sorted(got) == list(range(BURST)), "a message was lost or delivered twice"
    assert got == list(range(BURST)), "messages arrived out of order"
    # The resumed session is the same full JID, still bound and available.
    rs.send("<iq type='get' id='who' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    after.pump(lambda c: any(e.get("id") == "who" for e in c.elements))
    log = srv.log_text()
    assert "resumed bob@localhost/phone" in log


def test_sm_killed_not_resumed_messages_come_through_offline_storage(server):
    srv = server(extra=["sm_resume_timeout = 60"])
    bob, _ = login_sm(srv, "bob", "phone")
    counter = StanzaCounter(bob)
    alice = send_burst(srv, f"bob@{DOMAIN}/phone", 0, BURST // 2)
    counter.pump(lambda c: len(c.bodies) >= 150)
    counter.answer_ack_requests()
    # What the server was told bob has: the count in his last acknowledgement.
    acked_bodies = numbers(counter.bodies)
    bob.send(f"<a xmlns='{NS_SM}' h='{counter.h}'/>")
    acked_count = len(numbers(counter.bodies))
    time.sleep(0.2)
    kill(bob)
    received_unacked = set()
    for i in range(BURST // 2, BURST, 50):
        alice.send("".join(f"<message to='bob@{DOMAIN}/phone' type='chat' id='m{j}'>"
                           f"<body>m{j}</body></message>" for j in range(i, i + 50)))
    alice.send("<iq type='get' id='done2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.read_until(r"<iq\b[^>]*\bid=['\"]done2['\"]", timeout=60)

    # Bob logs in again without resuming, same resource: the old session ends and what it
    # never acknowledged is handed to offline storage, delivered after initial presence.
    rs, _ = raw_login(srv, "bob", "phone", timeout=20.0)
    rs.send("<presence/>")
    again = StanzaCounter(rs)
    expected_rest = set(range(BURST)) - set(acked_bodies[:acked_count])
    assert received_unacked == set()
    again.pump(lambda c: expected_rest <= set(numbers(c.bodies)), timeout=60)
    got_again = numbers(again.bodies)
    assert len(got_again) == len(set(got_again)), "offline storage delivered a message twice"
    # Acknowledged messages are never delivered again.
    assert not set(got_again) & set(acked_bodies[:acked_count])
    assert got_again == sorted(got_again), "offline messages out of order"
    assert all("Offline Storage" in ET.tostring(e, encoding="unicode")
               for e in again.elements if e.tag.endswith("message")), "no delay stamp"


def test_sm_detached_session_expires_then_messages_wait_offline(server):
    srv = server(extra=["sm_resume_timeout = 2"])
    bob, sm_id = login_sm(srv, "bob", "phone")
    kill(bob)
    time.sleep(0.5)
    dave = send_burst(srv, f"bob@{DOMAIN}/phone", 0, 5, sender="dave")
    dave.close()
    # Within the window the session is still there: a resumption would succeed. After it,
    # the session has ended and the five messages wait in offline storage.
    deadline = time.monotonic() + 10
    while "detached session ends" not in srv.log_text():
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.2)
    rs = login_for_resume(srv, "bob")
    rs.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='0'/>")
    assert "item-not-found" in rs.read_until(r"<failed\b.*?</failed>")
    rs2, _ = raw_login(srv, "bob", "laptop", timeout=10.0)
    rs2.send("<presence/>")
    c = StanzaCounter(rs2)
    c.pump(lambda c: numbers(c.bodies) == [0, 1, 2, 3, 4])
    # Audit trail: detached, then signed out when the window closed.
    out = srv.ctl("compliance", "audit", "--jid", f"bob@{DOMAIN}").stdout
    assert "session-detached" in out and "sign-out" in out


def test_sm_queued_request_answered_when_session_ends(server):
    srv = server(extra=["sm_resume_timeout = 1"])
    bob, _ = login_sm(srv, "bob", "phone")
    kill(bob)
    time.sleep(0.3)
    carol, _ = raw_login(srv, "carol", "x", timeout=10.0)
    carol.send(f"<iq type='get' id='q1' to='bob@{DOMAIN}/phone'>"
               "<query xmlns='jabber:iq:version'/></iq>")
    text = carol.read_until(r"<iq\b[^>]*\bid=['\"]q1['\"].*?</iq>", timeout=10)
    assert "type='error'" in text or 'type="error"' in text
    assert "service-unavailable" in text
    assert NS_STANZA_ERR in text


# --------------------------------------------------------------------------- less travelled paths

def wait_log(srv, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in srv.log_text():
        assert time.monotonic() < deadline, f"no {text!r} in the log\n" + srv.log_tail()
        time.sleep(0.1)


def offline_bodies(srv, user, resource, expect, timeout=20):
    """Log in again (no resumption), send presence and collect the messages until the
    numbers in expect have all arrived; returns the numbers in arrival order."""
    rs, _ = raw_login(srv, user, resource, timeout=10.0)
    rs.send("<presence/>")
    c = StanzaCounter(rs)
    c.pump(lambda c: set(expect) <= set(numbers(c.bodies)), timeout=timeout)
    time.sleep(0.3)  # anything extra (a duplicate) would arrive right behind
    rs.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    c.pump(lambda c: any(e.get("id") == "end" for e in c.elements))
    return numbers(c.bodies)


def test_sm_queue_overflow_is_policy_violation_and_queue_redelivered(server):
    # A client that never acknowledges: at sm_max_queue unacknowledged stanzas the stream
    # ends with policy-violation, the session ends for good (no resumption), and what it
    # never acknowledged is delivered again, here through offline storage.
    srv = server(extra=["sm_resume_timeout = 60", "sm_max_queue = 20"])
    bob, sm_id = login_sm(srv, "bob", "phone")
    counter = StanzaCounter(bob)
    dave = send_burst(srv, f"bob@{DOMAIN}/phone", 0, 30, sender="dave")
    dave.close()
    with pytest.raises((AssertionError, OSError)):
        counter.pump(lambda c: False, timeout=15)
    err = [e for e in counter.elements if e.tag.endswith("}error")]
    assert err and err[0].find(f"{{{NS_STREAM_ERR}}}policy-violation") is not None, \
        [ET.tostring(e) for e in counter.elements[-3:]]
    wait_log(srv, "unacknowledged stanzas handed back")
    # Not resumable: the session is gone.
    rs = login_for_resume(srv, "bob")
    rs.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='0'/>")
    assert "item-not-found" in rs.read_until(r"<failed\b.*?</failed>")
    got = offline_bodies(srv, "bob", "phone", range(30))
    assert sorted(got) == list(range(30)), f"lost or doubled: {got}"
    assert got == list(range(30)), f"out of order: {got}"


def test_sm_resume_timeout_zero_refuses_resumption_and_unacked_go_offline(server):
    srv = server(extra=["sm_resume_timeout = 0"])
    bob, sm_id = login_sm(srv, "bob", "phone", resume=True)
    assert sm_id is None, "an id was offered although resumption is off"
    counter = StanzaCounter(bob)
    dave = send_burst(srv, f"bob@{DOMAIN}/phone", 0, 5, sender="dave")
    dave.close()
    counter.pump(lambda c: numbers(c.bodies) == [0, 1, 2, 3, 4])
    kill(bob)  # received, never acknowledged
    # The session ends at once (nothing to wait for): the five wait in offline storage.
    wait_log(srv, "unacknowledged stanzas handed back")
    rs = login_for_resume(srv, "bob")
    rs.send(f"<resume xmlns='{NS_SM}' previd='anything' h='0'/>")
    assert "item-not-found" in rs.read_until(r"<failed\b.*?</failed>")
    assert offline_bodies(srv, "bob", "phone", range(5)) == [0, 1, 2, 3, 4]


def test_sm_unresumed_queue_goes_to_another_online_resource(server):
    # RFC 6121 8.5.3.2.1 for what the phone never acknowledged: the account's other
    # available resource gets it (not offline storage), once, in order.
    srv = server(extra=["sm_resume_timeout = 1"])
    laptop, _ = raw_login(srv, "bob", "laptop", timeout=10.0)
    laptop.send("<presence/>")
    lc = StanzaCounter(laptop)
    phone, _ = login_sm(srv, "bob", "phone")
    pc = StanzaCounter(phone)
    dave = send_burst(srv, f"bob@{DOMAIN}/phone", 0, 8, sender="dave")
    dave.close()
    pc.pump(lambda c: numbers(c.bodies) == list(range(8)))
    phone.send(f"<a xmlns='{NS_SM}' h='{pc.h - 5}'/>")  # the last five stay unacknowledged
    time.sleep(0.2)
    assert numbers(lc.bodies) == []
    kill(phone)
    wait_log(srv, "detached session ends")
    lc.pump(lambda c: len(numbers(c.bodies)) >= 5)
    time.sleep(0.3)
    laptop.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    lc.pump(lambda c: any(e.get("id") == "end" for e in c.elements))
    assert numbers(lc.bodies) == [3, 4, 5, 6, 7]
    # Nothing went to offline storage as well.
    got = offline_bodies(srv, "bob", "phone2", [], timeout=5)
    assert got == []


def test_sm_resume_while_old_connection_half_open(server):
    # The phone lost signal: its old TCP connection is never closed nor reset, so the
    # server still thinks it is attached when the phone comes back and resumes.
    srv = server(extra=["sm_resume_timeout = 60"])
    old, sm_id = login_sm(srv, "bob", "phone")
    oc = StanzaCounter(old)
    dave, _ = raw_login(srv, "dave", "d", timeout=10.0)
    for i in range(4):
        dave.send(f"<message to='bob@{DOMAIN}/phone' type='chat'><body>m{i}</body></message>")
    oc.pump(lambda c: numbers(c.bodies) == [0, 1, 2, 3])
    acked = oc.h - 2  # m2 and m3 reached the phone but their acknowledgement did not
    old.send(f"<a xmlns='{NS_SM}' h='{acked}'/>")
    time.sleep(0.2)
    rs = login_for_resume(srv, "bob")
    rs.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='{acked}'/>")
    text = rs.read_until(r"<resumed\b[^>]*/>|<failed\b.*?</failed>")
    assert "<resumed" in text, text
    new = StanzaCounter(rs)
    new.pump(lambda c: numbers(c.bodies) == [2, 3])
    # The server closed the old connection (it was still open on both sides).
    assert old.wait_closed(5), "the old connection was left open"
    for i in range(4, 6):
        dave.send(f"<message to='bob@{DOMAIN}/phone' type='chat'><body>m{i}</body></message>")
    new.pump(lambda c: numbers(c.bodies) == [2, 3, 4, 5])
    assert "its session was resumed on a new connection" in srv.log_text()


def test_sm_failed_carries_h_of_a_recently_ended_session(server):
    # XEP-0198 section 5: <failed/> may say how many of the client's stanzas the server
    # handled, when it still knows: here, for sm_resume_timeout seconds after the end.
    srv = server(extra=["sm_resume_timeout = 2"])
    bob, sm_id = login_sm(srv, "bob", "phone")  # <presence/>: one stanza
    for i in range(3):
        bob.send(f"<message to='dave@{DOMAIN}' type='chat'><body>x{i}</body></message>")
    bob.send(f"<r xmlns='{NS_SM}'/>")
    assert re.search(r"\bh=['\"]4['\"]", bob.read_until(r"<a\b[^>]*/>"))
    kill(bob)
    wait_log(srv, "detached session ends")
    rs = login_for_resume(srv, "bob")
    rs.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='0'/>")
    text = rs.read_until(r"<failed\b.*?</failed>")
    assert "item-not-found" in text and re.search(r"\bh=['\"]4['\"]", text), text
    # Another account learns nothing about it.
    c = login_for_resume(srv, "carol")
    c.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='0'/>")
    text = c.read_until(r"<failed\b.*?</failed>")
    assert "item-not-found" in text and "h=" not in text, text
    # Forgotten after another window.
    time.sleep(2.3)
    rs = login_for_resume(srv, "bob")
    rs.send(f"<resume xmlns='{NS_SM}' previd='{sm_id}' h='0'/>")
    text = rs.read_until(r"<failed\b.*?</failed>")
    assert "item-not-found" in text and "h=" not in text, text


def test_sm_slixmpp_client_cut_then_resumes_every_message_exactly_once(server, run):
    # slixmpp's own XEP-0198 plugin as an independent peer: it enables resumption, its
    # TCP connection is cut (a reset, no closing tag), it reconnects and resumes by
    # itself; what was sent to it meanwhile arrives once, after what it had.
    srv = server(extra=["sm_resume_timeout = 60"])
    full = f"bob@{DOMAIN}/phone"

    async def scenario():
        cl = clients_for(srv)
        bob = cl.make("bob", "phone", plugins=["xep_0198"])
        await cl.connect(bob)
        bob.send_presence()
        sm = bob["xep_0198"]
        await wait_for(lambda: sm.sm_id is not None, "the <enabled/> id")
        alice = await cl.login("alice", "a")

        def bodies():
            return [m["body"] for m in bob.events["message"] if m["body"]]
        for i in range(3):
            alice.send_message(mto=full, mbody=f"m{i}", mtype="chat")
        await wait_for(lambda: bodies() == ["m0", "m1", "m2"], "m0..m2")
        sm_id = sm.sm_id

        # Cut the connection as a lost signal would, then wait until the server noticed.
        sock = bob.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        resumed = asyncio.get_running_loop().create_future()
        bob.add_event_handler("session_resumed",
                              lambda _: resumed.done() or resumed.set_result(True))
        bob.abort()
        await wait_for(lambda: "connection lost" in srv.log_text(), "the server to notice")
        for i in range(3, 8):
            alice.send_message(mto=full, mbody=f"m{i}", mtype="chat")
        await asyncio.sleep(0.3)
        assert bodies() == ["m0", "m1", "m2"]

        bob.connect((HOST, srv.c2s_port), use_ssl=False, force_starttls=True)
        await asyncio.wait_for(resumed, 15)
        assert sm.sm_id == sm_id
        await wait_for(lambda: len(bodies()) >= 8, "m3..m7 after resumption")
        await asyncio.sleep(0.5)  # a duplicate would come right behind
        assert bodies() == [f"m{i}" for i in range(8)], bodies()
        # The same session goes on: the server's own ping reaches it as bob@/phone.
        await exchange(alice, bob)

    run(scenario, timeout=90)
    assert "resumed bob@localhost/phone" in srv.log_text()


async def wait_for(pred, what, timeout=15):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_sm_unacked_groupchat_dropped_at_session_end_but_in_room_archive(server, run):
    # A room message the session never acknowledged is not delivered again when the
    # session ends unresumed (a room message addressed to a gone occupant has no other
    # recipient, and offline storage does not keep groupchat): as in Prosody, the room's
    # own archive (XEP-0313 on the room's JID) is where the client finds it.
    from muc_util import create, groupchat, login as muc_login
    srv = server(extra=["sm_resume_timeout = 1"])
    rjid = f"smroom@conference.{DOMAIN}"
    join = (f"<presence to='{rjid}/bob'><x xmlns='http://jabber.org/protocol/muc'>"
            "<history maxstanzas='0'/></x></presence>")

    async def scenario():
        cl = clients_for(srv)
        alice = await muc_login(cl, "alice")
        await create(alice, "smroom")
        bob, _ = login_sm(srv, "bob", "phone")
        counter = StanzaCounter(bob)
        bob.send(join)
        counter.pump(lambda c: any(e.get("from") == f"{rjid}/bob" for e in c.elements))
        groupchat(alice, rjid, "missed-1", mid="missed-1")
        await asyncio.sleep(0.3)
        counter.pump(lambda c: "missed-1" in c.bodies)  # received, never acknowledged
        kill(bob)
        await wait_for(lambda: "detached session ends" in srv.log_text(), "the session's end")

        # Not redelivered: nothing in offline storage for bob.
        rs, _ = raw_login(srv, "bob", "laptop", timeout=10.0)
        rs.send("<presence/>")
        again = StanzaCounter(rs)
        await asyncio.sleep(0.5)
        rs.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        again.pump(lambda c: any(e.get("id") == "end" for e in c.elements))
        assert "missed-1" not in again.bodies
        # But the room's archive has it, for an occupant that joins again.
        rs.send(join.replace("/bob'", "/bob2'"))
        again.pump(lambda c: any(e.get("from") == f"{rjid}/bob2" for e in c.elements))
        rs.send(f"<iq type='set' id='mam1' to='{rjid}'><query xmlns='urn:xmpp:mam:2' "
                "queryid='q1'/></iq>")
        again.pump(lambda c: any(e.get("id") == "mam1" for e in c.elements))
        results = [ET.tostring(e, encoding="unicode") for e in again.elements
                   if e.tag.endswith("}message") and "urn:xmpp:mam:2" in
                   ET.tostring(e, encoding="unicode")]
        assert sum("missed-1" in r for r in results) == 1, results

    run(scenario, timeout=90)
