"""XEP-0114 external components: the handshake over direct TLS (and plain on loopback),
what is refused (wrong secret, unknown domain, a second connection for a domain, a
spoofed 'from', an oversized stanza), and messages between users and a component (which
the compliance archive records)."""
import asyncio
import re
import time

from component_util import (COMP, SECRET, Component, audit_events, comp_header,
                            handshake_value, random_text, raw_authenticated, raw_component,
                            raw_open, records, start_with_components, verify_ok, wait_until)
from conftest import (DOMAIN, IqError, clients_for, expect_stream_error, healthy_pair,
                      still_healthy)

GATEWAY = f"gateway.{DOMAIN}"
GATEWAY_SECRET = "gateway-secret-0123456789"


async def wait_audit(srv, event, n=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        rows = audit_events(srv, event)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


def test_handshake_ok_over_tls(server, run):
    srv, port = start_with_components(server)

    async def scenario():
        comp = await Component(srv, port).start()
        rows = await wait_audit(srv, "component-connect")
        assert len(rows) == 1 and rows[0]["actor"] == COMP, rows
        assert rows[0]["detail"] == "tls" and rows[0]["peer"].startswith("127.0.0.1:")
        await comp.stop()
        rows = await wait_audit(srv, "component-disconnect")
        assert len(rows) == 1 and rows[0]["actor"] == COMP, rows
    run(scenario)
    assert SECRET not in srv.log_text()


def test_handshake_ok_plain_on_loopback(server, run):
    srv, port = start_with_components(server, tls=False)

    async def scenario():
        comp = await Component(srv, port, tls=False).start()
        assert (await wait_audit(srv, "component-connect"))[0]["detail"] == "plain"
        await comp.stop()
    run(scenario)


def test_plain_xml_on_the_tls_component_port(server):
    srv, port = start_with_components(server)
    rs = raw_component(srv, port, tls=False)
    rs.send(comp_header())
    # the server expects a TLS ClientHello: no XMPP is answered in the clear
    data, closed = rs.read_all(timeout=3)
    assert "<stream" not in data and closed, data
    assert srv.alive()


def test_wrong_secret_refused_and_audited(server, run):
    srv, port = start_with_components(server)
    rs = raw_component(srv, port)
    sid = raw_open(rs)
    assert len(sid) >= 16
    rs.send(f"<handshake>{handshake_value(sid, 'not-the-secret-at-all')}</handshake>")
    expect_stream_error(rs, "not-authorized")

    async def scenario():
        rows = await wait_audit(srv, "component-auth-failure")
        assert len(rows) == 1 and rows[0]["target"] == COMP, rows
        assert rows[0]["peer"].startswith("127.0.0.1:")
        # a replayed handshake from another stream does not work either: ids are fresh
        rs2 = raw_component(srv, port)
        sid2 = raw_open(rs2)
        assert sid2 != sid
        rs2.send(f"<handshake>{handshake_value(sid, SECRET)}</handshake>")
        expect_stream_error(rs2, "not-authorized")
        # and the real component still gets in
        comp = await Component(srv, port).start()
        await comp.stop()
    run(scenario)
    assert "not-the-secret" not in srv.log_text() and SECRET not in srv.log_text()


def test_handshake_garbage_and_stanza_before_handshake_refused(server):
    srv, port = start_with_components(server)
    for payload in ("<handshake>zz</handshake>", "<handshake/>",
                    f"<handshake>{'A' * 4000}</handshake>",
                    f"<message to='alice@{DOMAIN}' from='{COMP}'><body>x</body></message>"):
        rs = raw_component(srv, port)
        raw_open(rs)
        rs.send(payload)
        expect_stream_error(rs, "not-authorized")
    assert srv.alive()


def test_unknown_domain_refused(server):
    srv, port = start_with_components(server)
    rs = raw_component(srv, port)
    rs.send(comp_header("stranger.localhost"))
    expect_stream_error(rs, "host-unknown")
    rs = raw_component(srv, port)
    rs.send(comp_header(DOMAIN))  # the server's own domain is no component
    expect_stream_error(rs, "host-unknown")
    rs = raw_component(srv, port)
    rs.send(comp_header(COMP, ns="jabber:client"))
    expect_stream_error(rs, "invalid-namespace")
    assert srv.alive()


def test_duplicate_domain_conflict(server, run):
    srv, port = start_with_components(server)

    async def scenario():
        comp = await Component(srv, port).start()
        second = Component(srv, port)
        try:
            await second.start(timeout=5)
            raise AssertionError("a second connection for the same domain was accepted")
        except ConnectionError:
            pass
        assert [e["condition"] for e in second.stream_errors] == ["conflict"]
        # the first one stays and works: a user reaches it
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        text = random_text("still-there")
        a.send_message(mto=f"bot@{COMP}", mbody=text, mtype="chat")
        await wait_until(lambda: any(m["body"] == text for m in comp.messages), what=text)
        await comp.stop()
        second.abort()
    run(scenario)


def test_component_spoofing_from_outside_its_domain(server, run):
    srv, port = start_with_components(server)

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        for spoof in (f"alice@{DOMAIN}/a", DOMAIN, f"x@{GATEWAY}", "not a jid@@"):
            rs = raw_authenticated(srv, port)
            rs.send(f"<message from='{spoof}' to='bob@{DOMAIN}/healthy' type='chat'>"
                    f"<body>spoofed</body></message>")
            expect_stream_error(rs, "invalid-from")
        rs = raw_authenticated(srv, port)
        rs.send(f"<message to='bob@{DOMAIN}/healthy' type='chat'><body>spoofed</body></message>")
        expect_stream_error(rs, "improper-addressing")
        await b.expect_none("message", lambda m: m["body"] == "spoofed", 1.0)
        await still_healthy(a, b)
    run(scenario)
    assert records(srv, "body = 'spoofed'") == []


def test_oversized_stanza_from_component(server, run):
    srv_limit = 64 * 1024
    srv, port = start_with_components(server, extra=[f"max_stanza_size = {srv_limit}"])

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        rs = raw_authenticated(srv, port)
        big = "x" * (srv_limit * 2)
        rs.send_until_answered(f"<message from='bot@{COMP}' to='bob@{DOMAIN}/healthy' "
                               f"type='chat'><body>{big}</body></message>")
        expect_stream_error(rs, "policy-violation")
        await still_healthy(a, b)
        comp = await Component(srv, port).start()  # the domain is free again
        await comp.stop()
    run(scenario)


def test_client_messages_component_and_back(server, run):
    srv, port = start_with_components(server, components=((COMP, SECRET),
                                                          (GATEWAY, GATEWAY_SECRET)))

    async def scenario():
        gw = await Component(srv, port, domain=GATEWAY, secret=GATEWAY_SECRET).start()
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        out = random_text("to-gateway")
        a.send_message(mto=f"friend@{GATEWAY}", mbody=out, mtype="chat")
        await wait_until(lambda: any(m["body"] == out for m in gw.messages), what=out)
        got = [m for m in gw.messages if m["body"] == out][0]
        assert got["from"].full == f"alice@{DOMAIN}/a" and got["to"].full == f"friend@{GATEWAY}"
        back = random_text("from-gateway")
        gw.send_message(mto=f"alice@{DOMAIN}/a", mfrom=f"friend@{GATEWAY}/x", mbody=back,
                        mtype="chat")
        m = await a.wait_for("message", lambda m: m["body"] == back)
        assert m["from"].full == f"friend@{GATEWAY}/x"
        # a message to an account that does not exist comes back as an error
        gw.send_message(mto=f"nobody@{DOMAIN}", mfrom=f"friend@{GATEWAY}", mbody="lost",
                        mtype="chat")
        await wait_until(lambda: any(m["type"] == "error" for m in gw.messages), what="bounce")
        # an IQ from the component to a user is answered by the user's client
        iq = gw.make_iq_get(queryxmlns="jabber:iq:version", ito=f"alice@{DOMAIN}/a",
                            ifrom=f"friend@{GATEWAY}")
        try:
            await iq.send(timeout=5)
        except IqError:
            pass  # an error answer is an answer too: it came back through the server
        # recorded in the archive, both directions
        rows = records(srv, "body IN (?, ?)", (out, back))
        assert [(r["sender"], r["recipient"], r["outcome"]) for r in rows] == [
            (f"alice@{DOMAIN}/a", f"friend@{GATEWAY}", "delivered"),
            (f"friend@{GATEWAY}/x", f"alice@{DOMAIN}/a", "delivered")], rows
        await gw.stop()
        # gone: messages to it are refused, the user is not
        a.send_message(mto=f"friend@{GATEWAY}", mbody="after", mtype="chat")
        err = await a.wait_for("message_error", lambda m: m["body"] == "after")
        assert err["error"]["condition"] in ("remote-server-not-found", "service-unavailable")
    run(scenario)
    verify_ok(srv)


def test_stanza_namespace_is_jabber_component_accept(server, run):
    """On the wire a component sees jabber:component:accept stanzas, never a stray
    jabber:client declaration on the stanza itself."""
    srv, port = start_with_components(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        rs = raw_authenticated(srv, port)
        a.send_message(mto=f"bot@{COMP}", mbody="ns-check", mtype="chat")
        got = await asyncio.to_thread(rs.read_until, r"</message>", 5)
        assert re.search(r"<message\b", got) and "jabber:client" not in got, got
        assert "<body>ns-check</body>" in got, got
        rs.close()
    run(scenario)


def test_component_that_never_handshakes_or_goes_silent(server):
    srv, port = start_with_components(server, extra=["idle_timeout = 2", "handshake_timeout = 2"])
    # header, then nothing: dropped after handshake_timeout
    rs = raw_component(srv, port)
    raw_open(rs)
    t0 = time.monotonic()
    expect_stream_error(rs, "connection-timeout", timeout=6)
    assert time.monotonic() - t0 < 5
    # authenticated, then silent: pinged, and dropped without an answer
    rs = raw_authenticated(srv, port)
    ping = rs.read_until(r"<iq\b[^>]*>.*?</iq>", timeout=5)
    assert "urn:xmpp:ping" in ping and "type='get'" in ping.replace('"', "'"), ping
    expect_stream_error(rs, "connection-timeout", timeout=6)
    # one that answers stays
    rs = raw_authenticated(srv, port)
    ping = rs.read_until(r"<iq\b[^>]*>.*?</iq>", timeout=5)
    pid = re.search(r"\bid=['\"]([^'\"]+)", ping).group(1)
    rs.send(f"<iq type='result' id='{pid}' from='{COMP}' to='{DOMAIN}'/>")
    time.sleep(2.5)
    rs.send(f"<presence from='{COMP}' to='{COMP}'/>")  # still open: echoed back to itself
    rs.read_until(r"<presence\b", timeout=3)
    rs.close()
    assert srv.alive()
