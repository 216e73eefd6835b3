"""RFC 6121 s8 message routing, XEP-0160 offline messages, JID normalisation."""
import asyncio
import re

from conftest import clients_for, exchange

NS_DELAY = "urn:xmpp:delay"


def body_is(text):
    return lambda m: m["body"] == text


def error_cond(m):
    return m["error"]["condition"]


def test_full_jid_routing(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a1 = await cl.login("alice", "one", priority=5)
        a2 = await cl.login("alice", "two", priority=5)
        b = await cl.login("bob", "b")
        b.send_message(mto="alice@localhost/two", mbody="for-two", mtype="chat")
        m = await a2.wait_for("message", body_is("for-two"))
        assert m["from"].full == "bob@localhost/b", m["from"]
        assert m["type"] == "chat"
        await a1.expect_none("message", body_is("for-two"), 0.8)
    run(scenario)


def test_from_is_stamped_by_server(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        # a spoofed from must be replaced by the sender's full JID (RFC 6120 8.1.2.1)
        b.send_raw("<message to='alice@localhost/a' from='carol@localhost/x' type='chat'>"
                   "<body>spoof</body></message>")
        m = await a.wait_for("message", body_is("spoof"), 5)
        assert m["from"].full == "bob@localhost/b", f"from not stamped: {m['from']}"
    run(scenario)


def test_bare_jid_highest_priority_and_ties(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a1 = await cl.login("alice", "one", priority=7)
        a2 = await cl.login("alice", "two", priority=7)
        a3 = await cl.login("alice", "three", priority=2)
        b = await cl.login("bob", "b")
        for mtype in ("chat", "normal"):
            text = f"bare-{mtype}"
            b.send_message(mto="alice@localhost", mbody=text, mtype=mtype)
            got = []
            for r in (a1, a2):
                try:
                    await r.wait_for("message", body_is(text), 2.0)
                    got.append(r)
                except AssertionError:
                    pass
            assert got, f"{mtype} to bare JID reached no top-priority resource"
            await a3.expect_none("message", body_is(text), 0.5)
    run(scenario)


def test_headline_to_bare_jid_goes_to_all_nonnegative(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a1 = await cl.login("alice", "one", priority=7)
        a2 = await cl.login("alice", "two", priority=0)
        a3 = await cl.login("alice", "neg", priority=-1)
        b = await cl.login("bob", "b")
        b.send_message(mto="alice@localhost", mbody="news", mtype="headline")
        await a1.wait_for("message", body_is("news"))
        await a2.wait_for("message", body_is("news"))
        await a3.expect_none("message", body_is("news"), 0.8)
    run(scenario)


def test_error_type_message_to_bare_jid_is_dropped(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "one", priority=5)
        b = await cl.login("bob", "b")
        b.send_raw("<message to='alice@localhost' type='error'><body>err-bare</body>"
                   "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                   "</error></message>")
        await a.expect_none("message_error", lambda m: m["body"] == "err-bare", 1.0)
        await a.expect_none("message", body_is("err-bare"), 0.1)
        # and the sender is not bounced an error about an error (RFC 6120 8.3.1)
        await b.expect_none("message_error", lambda m: True, 0.3)
        await exchange(b, a)
    run(scenario)


def test_negative_priority_gets_no_bare_messages(srv, run):
    async def scenario():
        cl = clients_for(srv)
        neg = await cl.login("alice", "neg", priority=-5)
        b = await cl.login("bob", "b")
        b.send_message(mto="alice@localhost", mbody="bare-to-neg", mtype="chat")
        await neg.expect_none("message", body_is("bare-to-neg"), 1.2)
        # full JID still works
        b.send_message(mto="alice@localhost/neg", mbody="full-to-neg", mtype="chat")
        await neg.wait_for("message", body_is("full-to-neg"))
        # the bare message was stored offline: a non-negative session gets it
        pos = await cl.login("alice", "pos", priority=1)
        m = await pos.wait_for("message", body_is("bare-to-neg"), 5, what="(stored for negative-only)")
        assert NS_DELAY in str(m)
    run(scenario)


def test_full_jid_of_unavailable_resource_chat_falls_back_to_bare(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "present", priority=1)
        b = await cl.login("bob", "b")
        b.send_message(mto="alice@localhost/gone", mbody="fallback", mtype="chat")
        await a.wait_for("message", body_is("fallback"), 5)
        # headline to an unknown resource is silently dropped (RFC 6121 8.5.3.2.1)
        b.send_message(mto="alice@localhost/gone", mbody="hl-gone", mtype="headline")
        await a.expect_none("message", body_is("hl-gone"), 0.8)
    run(scenario)


def test_offline_storage_and_delivery_with_delay(srv, run):
    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        for i in range(3):
            b.send_message(mto="carol@localhost", mbody=f"offline-{i}", mtype="chat")
        b.send_message(mto="carol@localhost", mbody="offline-normal", mtype="normal")
        await asyncio.sleep(0.5)
        # connecting and binding without presence: nothing yet (XEP-0160: on available)
        c = await cl.login("carol", "c", presence=False)
        await c.expect_none("message", lambda m: m["body"].startswith("offline-"), 1.0)
        c.send_presence()
        got = []
        for i in range(3):
            m = await c.wait_for("message", body_is(f"offline-{i}"), 5)
            got.append(m)
        await c.wait_for("message", body_is("offline-normal"), 5)
        for m in got:
            d = m.xml.find(f"{{{NS_DELAY}}}delay")
            assert d is not None, f"no urn:xmpp:delay: {m}"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", d.get("stamp") or ""), \
                f"bad stamp: {d.attrib}"
            assert d.get("from") in (None, "localhost"), d.attrib
            assert m["from"].bare == "bob@localhost"
        # delivered once: a second session does not get them again
        c2 = await cl.login("carol", "c2")
        await c2.expect_none("message", lambda m: m["body"].startswith("offline-"), 1.0)
    run(scenario)


def test_offline_storage_survives_restart(server, run):
    srv = server()

    async def send():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        b.send_message(mto="dave@localhost", mbody="across-restart", mtype="chat")
        await asyncio.sleep(0.5)

    async def receive():
        cl = clients_for(srv)
        d = await cl.login("dave", "d")
        await d.wait_for("message", body_is("across-restart"), 5)

    run(send)
    assert not srv.stop()
    srv.start()
    run(receive)


def test_offline_max_cap(server, run):
    srv = server(extra=["offline_max = 3"])

    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        for i in range(5):
            b.send_message(mto="carol@localhost", mbody=f"cap-{i}", mtype="chat")
        errs = []
        for _ in range(2):
            e = await b.wait_for("message_error", lambda m: True, 5, what="(over offline_max)")
            errs.append(e)
        assert all(error_cond(e) == "service-unavailable" for e in errs), \
            "\n".join(str(e)[:200] + " ... " + str(e)[-400:] for e in errs)
        assert sorted(e["body"] for e in errs if e["body"]) in ([], ["cap-3", "cap-4"]), \
            [str(e) for e in errs]
        c = await cl.login("carol", "c")
        for i in range(3):
            await c.wait_for("message", body_is(f"cap-{i}"), 5)
        await c.expect_none("message", lambda m: m["body"] in ("cap-3", "cap-4"), 1.0)
        # after delivery the store has room again
        await c.close()
        b.clear()
        b.send_message(mto="carol@localhost", mbody="cap-again", mtype="chat")
        await b.expect_none("message_error", lambda m: True, 1.0)
    run(scenario)


def test_headline_not_stored_offline(srv, run):
    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        b.send_message(mto="carol@localhost", mbody="hl-offline", mtype="headline")
        b.send_message(mto="carol@localhost", mbody="chat-offline", mtype="chat")
        await asyncio.sleep(0.5)
        c = await cl.login("carol", "c")
        await c.wait_for("message", body_is("chat-offline"), 5)
        await c.expect_none("message", body_is("hl-offline"), 0.5)
    run(scenario)


def test_unknown_user_service_unavailable(srv, run):
    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        b.send_message(mto="nosuchuser@localhost", mbody="anyone?", mtype="chat")
        e = await b.wait_for("message_error", lambda m: True, 5)
        assert error_cond(e) == "service-unavailable", str(e)
        assert e["from"].bare == "nosuchuser@localhost", e["from"]
    run(scenario)


def test_jid_normalisation_case(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        # slixmpp would normalise itself; send the raw stanza
        b.send_raw("<message to='ALICE@LocalHost' type='chat'><body>upper</body></message>")
        await a.wait_for("message", body_is("upper"), 5)
        b.send_raw("<message to='Alice@LOCALHOST/a' type='chat'><body>upper-full</body></message>")
        await a.wait_for("message", body_is("upper-full"), 5)
    run(scenario)


def test_jid_malformed(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        long_local = "a" * 1100
        for i, to in enumerate(("a@b@c", f"{long_local}@localhost", "alice@localhost/" + "r" * 1100,
                                "@localhost", "al ice@localhost")):
            b.send_raw(f"<message to='{to}' type='chat' id='bad{i}'><body>bad-{i}</body></message>")
            e = await b.wait_for("message_error", lambda m, i=i: m["id"] == f"bad{i}", 5,
                                 what=f"(jid-malformed for {to[:30]!r})")
            assert error_cond(e) == "jid-malformed", f"{to[:40]!r}: {e}"
        # iq with a malformed to
        b.send_raw("<iq type='get' id='badiq' to='a@b@c'><ping xmlns='urn:xmpp:ping'/></iq>")
        await asyncio.sleep(0.5)
        await exchange(b, a)
    run(scenario)


def test_offline_messages_wait_for_nonnegative_presence(srv, run):
    """XEP-0160: offline messages are delivered on available presence with a non-negative
    priority, not to a negative-priority session."""
    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        b.send_message(mto="carol@localhost", mbody="for-later", mtype="chat")
        await asyncio.sleep(0.5)
        c = await cl.login("carol", "neg", priority=-1)
        await c.expect_none("message", body_is("for-later"), 1.0)
        c.send_presence(ppriority=0)
        await c.wait_for("message", body_is("for-later"), 5)
    run(scenario)


def test_message_to_self_bare_jid(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a1 = await cl.login("alice", "one", priority=1)
        a2 = await cl.login("alice", "two", priority=5)
        a1.send_message(mto="alice@localhost", mbody="note-to-self", mtype="chat")
        await a2.wait_for("message", body_is("note-to-self"), 5)
    run(scenario)


def test_jid_edge_cases(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a/b@c", priority=1)     # '/' and '@' are fine in a resource
        assert a.boundjid.resource == "a/b@c", a.boundjid
        b = await cl.login("bob", "b")
        b.send_raw("<message to='alice@localhost/a/b@c' type='chat'><body>res-slash</body></message>")
        await a.wait_for("message", body_is("res-slash"), 5)
        # RFC 7622 3.2: a trailing dot on the domainpart is removed before comparison
        b.send_raw("<message to='alice@localhost.' type='chat'><body>trailing-dot</body></message>")
        await a.wait_for("message", body_is("trailing-dot"), 5)
        # nodeprep-prohibited characters in the localpart
        for i, local in enumerate(("a:b", "a&amp;b", "a&quot;b", "a&lt;b", "a&apos;b")):
            b.send_raw(f"<message to='{local}@localhost' type='chat' id='p{i}'><body>x</body></message>")
            e = await b.wait_for("message_error", lambda m, i=i: m["id"] == f"p{i}", 5,
                                 what=f"(jid-malformed for {local})")
            assert error_cond(e) == "jid-malformed", f"{local}: {e}"
        # empty resource after the slash
        b.send_raw("<message to='alice@localhost/' type='chat' id='er'><body>x</body></message>")
        e = await b.wait_for("message_error", lambda m: m["id"] == "er", 5)
        assert error_cond(e) == "jid-malformed", str(e)
        await exchange(b, a)
    run(scenario)
