"""Verdicts from a compliance server (docs/verdict-protocol.md): a real XEP-0114 component
(slixmpp) judges every message before it is recorded and delivered: allow, block, modify,
and the failures (too slow, killed, not connected, error and garbage answers, forged
answers from another component) under both compliance_server_failure settings; the
sender's order is kept while a verdict is slow; encrypted messages are judged on their
metadata. `parleyctl compliance verify` passes after each."""
import asyncio
import re
import time

import pytest

from component_util import (COMP, NS_VERDICT, Component, error_condition, forwarded_attr,
                            random_text, raw_authenticated, records, start_with_components,
                            verify_ok, wait_until)
from conftest import DOMAIN, clients_for, raw_login

GATEWAY = f"gateway.{DOMAIN}"
GATEWAY_SECRET = "gateway-secret-0123456789"
NS_OMEMO = "urn:xmpp:omemo:2"
FAILURE_TEXT = "compliance server did not answer"


def body_is(text):
    return lambda m: m["body"] == text


async def judged_setup(srv, port, **kw):
    comp = await Component(srv, port, **kw).start()
    cl = clients_for(srv)
    a = await cl.login("alice", "a")
    b = await cl.login("bob", "b")
    return comp, cl, a, b


def test_allow_delivers_and_records(server, run):
    srv, port = start_with_components(server, verdicts=True)

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)
        text = random_text("allowed")
        msg = a.make_message(mto=f"bob@{DOMAIN}/b", mbody=text, mtype="chat")
        msg["id"] = "allow-1"
        msg.send()
        await b.wait_for("message", body_is(text))
        assert len(comp.checks) == 1
        check = comp.checks[0]
        assert check["kind"] == "message"
        assert check["iq"]["from"].full == DOMAIN and check["iq"]["type"] == "set"
        assert forwarded_attr(check, "from") == f"alice@{DOMAIN}/a"
        assert forwarded_attr(check, "to") == f"bob@{DOMAIN}/b"
        assert forwarded_attr(check, "id") == "allow-1"
        assert check["forwarded"].tag == "{jabber:client}message"
        assert comp.forwarded_bodies() == [text]
        rows = records(srv, "body = ?", (text,))
        assert [(r["outcome"], r["verdict"]) for r in rows] == [("delivered", "allow")], rows
        # content-free messages are not judged
        a.send_raw(f"<message to='bob@{DOMAIN}/b' type='chat'>"
                   "<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        await asyncio.sleep(0.5)
        assert len(comp.checks) == 1
        await comp.stop()
    run(scenario)
    assert "allowed-" not in srv.log_text()  # no bodies in the log
    verify_ok(srv)


def test_block_bounces_policy_violation_with_reason(server, run):
    srv, port = start_with_components(server, verdicts=True)
    reason = "ethical wall: trading may not talk to research"

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)
        comp.policy = lambda c: ("block", reason, None)
        text = random_text("insider tip")
        a.send_message(mto=f"bob@{DOMAIN}/b", mbody=text, mtype="chat")
        err = await a.wait_for("message_error", body_is(text))
        assert error_condition(err) == "policy-violation"
        assert err["error"]["type"] == "modify"
        assert err["error"]["text"] == reason
        await b.expect_none("message", body_is(text), 1.0)
        rows = records(srv, "body = ?", (text,))
        assert len(rows) == 1, rows
        assert (rows[0]["outcome"], rows[0]["verdict"], rows[0]["reason"]) == \
            ("blocked-compliance", "block", reason)
        # a block without a reason still says who blocked it
        comp.policy = lambda c: ("block", None, None)
        a.send_message(mto=f"bob@{DOMAIN}/b", mbody="no-reason", mtype="chat")
        err = await a.wait_for("message_error", body_is("no-reason"))
        assert "compliance server" in err["error"]["text"]
        # the next message is judged afresh
        comp.policy = lambda c: ("allow", None, None)
        a.send_message(mto=f"bob@{DOMAIN}/b", mbody="fine", mtype="chat")
        await b.wait_for("message", body_is("fine"))
        await comp.stop()
    run(scenario)
    verify_ok(srv)


def test_modify_replaces_body(server, run):
    srv, port = start_with_components(server, verdicts=True)
    disclaimer = "\n\nThis message is subject to monitoring."

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)

        def policy(check):
            body = check["forwarded"].find("{jabber:client}body").text
            return ("modify", "first message of the day: disclaimer", body + disclaimer)
        comp.policy = policy
        text = random_text("hello")
        a.send_message(mto=f"bob@{DOMAIN}", mbody=text, mtype="chat")
        m = await b.wait_for("message", lambda m: m["body"].startswith(text))
        assert m["body"] == text + disclaimer
        assert len(m.xml.findall("{jabber:client}body")) == 1
        rows = records(srv, "body = ?", (text + disclaimer,))
        assert len(rows) == 1, rows
        r = rows[0]
        assert (r["verdict"], r["outcome"], r["reason"]) == \
            ("modify", "delivered", "first message of the day: disclaimer")
        assert f"<body>{text}</body>" in r["stanza"] and "monitoring" not in r["stanza"]
        # modify without a body is no valid verdict: a failure, blocked by default
        comp.policy = lambda c: ("modify", "oops", None)
        a.send_message(mto=f"bob@{DOMAIN}", mbody="bodyless-modify", mtype="chat")
        err = await a.wait_for("message_error", body_is("bodyless-modify"))
        assert error_condition(err) == "service-unavailable"
        await b.expect_none("message", body_is("bodyless-modify"), 0.5)
        await comp.stop()
    run(scenario)
    verify_ok(srv)


@pytest.mark.parametrize("failure", ["block", "allow"])
def test_compliance_server_slower_than_timeout(server, run, failure):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=1000, failure=failure)

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)
        comp.policy = lambda c: ("allow", None, None, 2.5)  # answers, but too late
        text = random_text("slow")
        t0 = time.monotonic()
        a.send_message(mto=f"bob@{DOMAIN}/b", mbody=text, mtype="chat")
        if failure == "block":
            err = await a.wait_for("message_error", body_is(text), 5)
            assert error_condition(err) == "service-unavailable"
            assert err["error"]["type"] == "wait"
            assert FAILURE_TEXT in err["error"]["text"]
            # the late allow changes nothing
            await b.expect_none("message", body_is(text), 2.5)
        else:
            await b.wait_for("message", body_is(text), 5)
            await b.expect_none("message", body_is(text), 2.5)  # delivered once
        elapsed = time.monotonic() - t0
        assert elapsed >= 1.0
        rows = records(srv, "body = ?", (text,))
        assert len(rows) == 1, rows
        r = rows[0]
        assert r["verdict"] == f"{failure}-unchecked"
        assert "no verdict within 1000 ms" in r["reason"]
        assert r["outcome"] == ("blocked-compliance" if failure == "block" else "delivered")
        await comp.stop()
    run(scenario)
    verify_ok(srv)


@pytest.mark.parametrize("failure", ["block", "allow"])
def test_compliance_server_killed_while_judging(server, run, failure):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=8000, failure=failure)

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)
        comp.policy = lambda c: ("ignore", None, None)
        text = random_text("orphan")
        a.send_message(mto=f"bob@{DOMAIN}/b", mbody=text, mtype="chat")
        await wait_until(lambda: comp.checks, what="the check")
        t0 = time.monotonic()
        comp.abort()  # the connection drops without a stream close
        if failure == "block":
            err = await a.wait_for("message_error", body_is(text), 5)
            assert error_condition(err) == "service-unavailable"
            assert FAILURE_TEXT in err["error"]["text"]
            await b.expect_none("message", body_is(text), 0.5)
        else:
            await b.wait_for("message", body_is(text), 5)
        assert time.monotonic() - t0 < 3, "waited for the time-out instead of the disconnect"
        r = records(srv, "body = ?", (text,))[0]
        assert r["verdict"] == f"{failure}-unchecked"
        assert "disconnected" in r["reason"]

        # with no compliance server connected at all: the same, at once
        text2 = random_text("nobody-judges")
        a.send_message(mto=f"bob@{DOMAIN}/b", mbody=text2, mtype="chat")
        if failure == "block":
            err = await a.wait_for("message_error", body_is(text2), 3)
            assert error_condition(err) == "service-unavailable"
        else:
            await b.wait_for("message", body_is(text2), 3)
        r = records(srv, "body = ?", (text2,))[0]
        assert (r["verdict"], r["reason"]) == (f"{failure}-unchecked",
                                               "no compliance server is connected")

        # and it comes back: judged again
        comp2 = await Component(srv, port).start()
        comp2.policy = lambda c: ("block", "back", None)
        a.send_message(mto=f"bob@{DOMAIN}/b", mbody="judged-again", mtype="chat")
        err = await a.wait_for("message_error", body_is("judged-again"))
        assert error_condition(err) == "policy-violation"
        await comp2.stop()
    run(scenario)
    verify_ok(srv)


def test_error_and_garbage_answers_are_failures(server, run):
    srv, port = start_with_components(server, verdicts=True)

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)
        for action, why in (("error", "answered with an error (internal-server-error)"),
                            ("garbage", "holds no valid verdict"),
                            ("maybe", "holds no valid verdict")):
            comp.policy = lambda c, action=action: (action, None, None)
            text = random_text(action)
            a.send_message(mto=f"bob@{DOMAIN}/b", mbody=text, mtype="chat")
            err = await a.wait_for("message_error", body_is(text))
            assert error_condition(err) == "service-unavailable", action
            r = records(srv, "body = ?", (text,))[0]
            assert r["verdict"] == "block-unchecked" and why in r["reason"], (action, r)
        await b.expect_none("message", lambda m: True, 0.3)
        await comp.stop()
    run(scenario)
    verify_ok(srv)


def test_forged_verdict_from_another_component_ignored(server, run):
    srv, port = start_with_components(
        server, verdicts=True, timeout_ms=1500,
        components=((COMP, "0123456789abcdef-a-long-secret"), (GATEWAY, GATEWAY_SECRET)))

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)
        comp.policy = lambda c: ("ignore", None, None)
        rogue = raw_authenticated(srv, port, domain=GATEWAY, secret=GATEWAY_SECRET)
        text = random_text("forgery-target")
        a.send_message(mto=f"bob@{DOMAIN}/b", mbody=text, mtype="chat")
        await wait_until(lambda: comp.checks, what="the check")
        real_id = comp.checks[0]["iq"]["id"]
        forged = "".join(
            f"<iq type='result' id='{i}' from='{GATEWAY}' to='{DOMAIN}'>"
            f"<verdict xmlns='{NS_VERDICT}' action='allow'/></iq>"
            for i in (real_id, "srv-1", "srv-2", "srv-3"))
        rogue.send(forged)
        err = await a.wait_for("message_error", body_is(text), 5)
        assert error_condition(err) == "service-unavailable"
        await b.expect_none("message", body_is(text), 0.3)
        rogue.close()
        await comp.stop()
    run(scenario)
    assert "came from gateway.localhost" in srv.log_text()
    verify_ok(srv)


def test_sender_order_kept_while_verdict_is_slow(server, run):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=5000)

    async def scenario():
        comp = await Component(srv, port).start()

        def policy(check):
            body = check["forwarded"].find("{jabber:client}body").text
            return ("allow", None, None, 3.0 if body == "first-slow" else 0)
        comp.policy = policy
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        c = await cl.login("carol", "c")
        rs, _ = raw_login(srv, "bob", "b")  # raw: sees the chat states slixmpp hides
        try:
            t0 = time.monotonic()
            a.send_raw(
                f"<message to='bob@{DOMAIN}/b' type='chat' id='o-1'><body>first-slow</body></message>"
                f"<message to='bob@{DOMAIN}/b' type='chat' id='o-2'>"
                "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
                f"<message to='bob@{DOMAIN}/b' type='chat' id='o-3'><body>second</body></message>"
                f"<message to='bob@{DOMAIN}/b' type='chat' id='o-4'><body>third</body></message>")
            await wait_until(lambda: len(comp.checks) >= 1, what="first check")
            c.send_raw(f"<message to='bob@{DOMAIN}/b' type='chat' id='c-1'>"
                       "<body>carol-not-blocked</body></message>")
            got = await asyncio.to_thread(rs.read_until, r"id=['\"]c-1['\"]", 5)
            assert time.monotonic() - t0 < 2.5, "another sender waited for alice's verdict"
            assert "o-1" not in got and "o-3" not in got, got
            got += await asyncio.to_thread(rs.read_until, r"id=['\"]o-4['\"]", 8)
        finally:
            rs.close()
        ids = re.findall(r"<message\b[^>]*\bid=['\"]([oc]-\d)['\"]", got)
        assert ids == ["c-1", "o-1", "o-2", "o-3", "o-4"], ids
        # the later messages were judged at once, not one after the other
        assert len(comp.checks) == 4
        rows = records(srv, "msg_id LIKE 'o-%'")
        assert [r["msg_id"] for r in rows] == ["o-1", "o-3", "o-4"]
        await comp.stop()
    run(scenario)
    verify_ok(srv)


def test_encrypted_message_judged_on_metadata(server, run):
    srv, port = start_with_components(server, verdicts=True)
    omemo = (f"<encrypted xmlns='{NS_OMEMO}'><header sid='27183'>"
             f"<keys jid='bob@{DOMAIN}'><key rid='31415'>b64keymaterial</key></keys>"
             "<iv>aXZpdml2</iv></header><payload>Y2lwaGVydGV4dA==</payload></encrypted>"
             "<body>I sent you an OMEMO encrypted message</body>")

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)
        a.send_raw(f"<message to='bob@{DOMAIN}/b' type='chat' id='e2e-1'>{omemo}</message>")
        m = await b.wait_for("message", lambda m: m["id"] == "e2e-1")
        assert m.xml.find(f"{{{NS_OMEMO}}}encrypted") is not None
        fwd = comp.checks[0]["forwarded"]
        assert fwd.get("from") == f"alice@{DOMAIN}/a" and fwd.get("to") == f"bob@{DOMAIN}/b"
        assert fwd.find(f"{{{NS_OMEMO}}}encrypted/{{{NS_OMEMO}}}payload").text == "Y2lwaGVydGV4dA=="
        assert fwd.find("{jabber:client}body") is None  # the fallback is not the content
        r = records(srv, "msg_id = 'e2e-1'")[0]
        assert (r["encrypted"], r["verdict"], r["body"]) == (1, "allow", None)

        # judged on who talks to whom: blocked
        comp.policy = lambda c: (("block", "alice may not write to bob", None)
                                 if c["forwarded"].get("to").startswith("bob@") else
                                 ("allow", None, None))
        a.send_raw(f"<message to='bob@{DOMAIN}/b' type='chat' id='e2e-2'>{omemo}</message>")
        err = await a.wait_for("message_error", lambda m: m["id"] == "e2e-2")
        assert error_condition(err) == "policy-violation"
        assert err["error"]["text"] == "alice may not write to bob"
        # modify cannot apply to ciphertext: treated as block
        comp.policy = lambda c: ("modify", "disclaimer", "plaintext!")
        a.send_raw(f"<message to='bob@{DOMAIN}/b' type='chat' id='e2e-3'>{omemo}</message>")
        err = await a.wait_for("message_error", lambda m: m["id"] == "e2e-3")
        assert error_condition(err) == "policy-violation"
        await b.expect_none("message", lambda m: m["id"] in ("e2e-2", "e2e-3"), 0.5)
        r = records(srv, "msg_id = 'e2e-3'")[0]
        assert (r["verdict"], r["outcome"], r["body"]) == ("block", "blocked-compliance", None)
        assert "encrypted" in r["reason"]
        await comp.stop()
    run(scenario)
    verify_ok(srv)


def test_component_messages_to_users_are_judged_and_recorded(server, run):
    srv, port = start_with_components(
        server, verdicts=True,
        components=((COMP, "0123456789abcdef-a-long-secret"), (GATEWAY, GATEWAY_SECRET)))

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)
        gw = await Component(srv, port, domain=GATEWAY, secret=GATEWAY_SECRET).start()
        comp.policy = lambda c: (("block", "no gateway spam", None)
                                 if "spam" in c["forwarded"].find("{jabber:client}body").text
                                 else ("allow", None, None))
        gw.send_message(mto=f"alice@{DOMAIN}/a", mfrom=f"x@{GATEWAY}", mbody="gw-hello",
                        mtype="chat")
        await a.wait_for("message", body_is("gw-hello"))
        gw.send_message(mto=f"alice@{DOMAIN}/a", mfrom=f"x@{GATEWAY}", mbody="gw-spam",
                        mtype="chat")
        await wait_until(lambda: any(m["type"] == "error" for m in gw.messages), what="bounce")
        err = [m for m in gw.messages if m["type"] == "error"][0]
        assert error_condition(err) == "policy-violation"
        await a.expect_none("message", body_is("gw-spam"), 0.5)
        # the compliance server's own notices are recorded, not put to itself
        n = len(comp.checks)
        comp.send_message(mto=f"alice@{DOMAIN}/a", mfrom=f"notices@{COMP}",
                          mbody="compliance-notice", mtype="chat")
        await a.wait_for("message", body_is("compliance-notice"))
        assert len(comp.checks) == n
        rows = records(srv, "body IN ('gw-hello', 'gw-spam', 'compliance-notice')")
        assert [(r["body"], r["verdict"]) for r in rows] == [
            ("gw-hello", "allow"), ("gw-spam", "block"), ("compliance-notice", "allow")], rows
        await gw.stop()
        await comp.stop()
    run(scenario)
    verify_ok(srv)


def test_shutdown_while_a_verdict_is_pending(server, run):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=30000)
    text = random_text("pending-at-shutdown")

    async def scenario():
        comp, cl, a, b = await judged_setup(srv, port)
        comp.policy = lambda c: ("ignore", None, None)
        a.send_message(mto=f"bob@{DOMAIN}/b", mbody=text, mtype="chat")
        await wait_until(lambda: comp.checks, what="the check")
        t0 = time.monotonic()
        srv.proc.terminate()
        # the sender hears about it before the server goes
        err = await a.wait_for("message_error", body_is(text), 5)
        assert error_condition(err) == "service-unavailable"
        assert time.monotonic() - t0 < 5
    run(scenario)
    assert srv.stop() == []
    r = records(srv, "body = ?", (text,))
    assert len(r) == 1 and r[0]["verdict"] == "block-unchecked", r
    verify_ok(srv)
