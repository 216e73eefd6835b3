"""Accounts as seen by clients: stringprep'd localparts, password changes via parleyctl,
idle sessions (XEP-0199 server pings), explicit unavailable presence."""
import asyncio
import re
import time

from conftest import (DOMAIN, STREAM_HEADER, RawStream, clients_for, exchange,
                      expect_stream_error, raw_login)
from test_presence import avail_from, is_pres, subscribe


def test_non_ascii_localpart_is_nodeprepped(server, run):
    srv = server()
    srv.add_user("émile", "pâss wörd-Ω")   # non-ASCII password exercises SASLprep too

    async def scenario():
        cl = clients_for(srv)
        e = await cl.login("émile", "e")
        assert e.boundjid.bare == "émile@localhost"
        e1 = await cl.login("émile", "sha1", mech="SCRAM-SHA-1")
        b = await cl.login("bob", "b")
        b.send_raw("<message to='ÉMILE@LOCALHOST/e' type='chat'><body>upper-e</body></message>")
        await e.wait_for("message", lambda m: m["body"] == "upper-e", 5)
        await exchange(e, b)
    run(scenario)


def test_password_change_takes_effect(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "before")
        pwfile = srv.dir + "/.newpw"
        with open(pwfile, "w") as f:
            f.write("brand-new-Pw-9\n")
        await asyncio.to_thread(srv.ctl, "user", "passwd", "alice@localhost", "--password-file", pwfile)
        # old password refused, new accepted (SCRAM and PLAIN)
        failed = False
        try:
            await cl.login("alice", "old", password=srv.users["alice"], timeout=8)
        except Exception:
            failed = True
        assert failed, "old password still accepted after 'parleyctl user passwd'"
        srv.users["alice"] = "brand-new-Pw-9"
        await cl.login("alice", "new-scram")
        await cl.login("alice", "new-plain", mech="PLAIN")
        # the session open before the change is unaffected
        b = await cl.login("bob", "b")
        await exchange(b, a)
    run(scenario)


def test_stream_to_is_normalised(srv):
    rs = RawStream(srv.c2s_port)
    feats = rs.open_stream(to="LocalHost")
    assert "starttls" in feats, feats
    rs.close()


def test_idle_client_is_pinged_then_dropped(server, run):
    srv = server(extra=["idle_timeout = 2", "handshake_timeout = 2"])

    def idle():
        rs, jid = raw_login(srv, "dave", "idle", timeout=10)
        t0 = time.monotonic()
        ping = rs.read_until(r"<iq\b[^>]*>\s*<ping\b[^>]*urn:xmpp:ping", timeout=8)
        assert "type='get'" in ping or 'type="get"' in ping, ping
        expect_stream_error(rs, "connection-timeout", timeout=8)
        dt = time.monotonic() - t0
        assert dt <= 9, f"idle session dropped after {dt:.1f}s"

    def answering():
        rs, jid = raw_login(srv, "carol", "answering", timeout=10)
        deadline = time.monotonic() + 6
        answered = 0
        while time.monotonic() < deadline:
            try:
                iq = rs.read_until(r"<iq\b[^>]*>\s*<ping\b[^>]*/>\s*</iq>", timeout=1)
            except AssertionError as e:
                assert "closed" not in str(e), f"answering client was dropped: {e}"
                continue
            m = re.search(r"\bid=['\"]([^'\"]+)['\"]", iq)
            rs.send(f"<iq type='result' id='{m.group(1)}' to='localhost'/>")
            answered += 1
        rs.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        rs.read_until(r"<iq\b[^>]*id=['\"]alive['\"]")
        rs.close()
        return answered

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a", plugins=("xep_0199",))
        b = await cl.login("bob", "b", plugins=("xep_0199",))
        t1 = asyncio.to_thread(idle)
        t2 = asyncio.to_thread(answering)
        _, answered = await asyncio.gather(t1, t2)
        assert answered >= 1, "server never pinged the idle (answering) client"
        # slixmpp sessions answer pings and survive
        await exchange(a, b)
    run(scenario, timeout=60)


def test_explicit_unavailable_presence(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        c = await cl.login("carol", "c")
        await subscribe(a, b)
        b.send_presence(pto="carol@localhost/c")        # directed
        await c.wait_for("presence", avail_from("bob@localhost"), 5)
        b.send_presence(ptype="unavailable")
        await a.wait_for("presence", is_pres("unavailable", "bob@localhost"), 5)
        await c.wait_for("presence", is_pres("unavailable", "bob@localhost"), 5)
        # bob is connected but unavailable: bare-JID chat goes offline, not to him
        a.send_message(mto="bob@localhost", mbody="while-unavailable", mtype="chat")
        await b.expect_none("message", lambda m: m["body"] == "while-unavailable", 1.0)
        b.send_presence()
        await b.wait_for("message", lambda m: m["body"] == "while-unavailable", 5)
    run(scenario)


def test_kicked_resource_unavailable_broadcast(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "dup")
        await subscribe(a, b)
        a.clear("presence")
        b2 = await cl.login("bob", "dup")
        # the old bob/dup went away (conflict) and the new one came online
        await a.wait_for("presence", lambda p: p["from"].full == "bob@localhost/dup", 5)
        await exchange(a, b2)
    run(scenario)
