"""RFC 6120 s7 resource binding: server-generated, client-requested, conflicts, several
resources with priorities."""
import asyncio
import re

from conftest import RawStream, clients_for, exchange, expect_stream_error


def test_server_generated_resource(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", None)
        assert a.boundjid.bare == "alice@localhost"
        assert a.boundjid.resource, f"no resource generated: {a.boundjid}"
        a2 = await cl.login("alice", None)
        assert a2.boundjid.resource and a2.boundjid.resource != a.boundjid.resource, \
            (a.boundjid, a2.boundjid)
        b = await cl.login("bob", "b")
        await exchange(b, a)
        await exchange(b, a2)
    run(scenario)


def test_client_requested_resource(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "phone")
        assert a.boundjid.full == "alice@localhost/phone"
    run(scenario)


def test_raw_bind_result_and_empty_bind(srv):
    rs = RawStream(srv.c2s_port)
    jid = rs.login(srv, "carol", None)
    assert re.fullmatch(r"carol@localhost/.+", jid), jid
    rs.close()


def test_resource_conflict_kicks_old_session(srv, run):
    async def scenario():
        cl = clients_for(srv)
        old = await cl.login("alice", "dup")
        b = await cl.login("bob", "b")
        new = await cl.login("alice", "dup")
        assert new.boundjid.full == "alice@localhost/dup"
        err = await old.wait_for("stream_error", lambda e: True, 5, what="(conflict)")
        assert err["condition"] == "conflict", str(err)
        await old.wait_for("disconnected", timeout=5)
        # messages to the resource now reach the new session
        await exchange(b, new)
    run(scenario)


def test_resource_conflict_condition_raw(srv):
    old = RawStream(srv.c2s_port)
    old.login(srv, "dave", "same")
    new = RawStream(srv.c2s_port)
    assert new.login(srv, "dave", "same") == "dave@localhost/same"
    expect_stream_error(old, "conflict")
    # the new session is live: a ping to the server is answered
    new.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    resp = new.read_until(r"<iq\b[^>]*id=['\"]p1['\"][^>]*>")
    assert "result" in resp, resp
    new.close()


def test_bind_invalid_resource_rejected(srv):
    rs = RawStream(srv.c2s_port)
    rs.open_stream()
    rs.starttls(srv)
    rs.open_stream()
    assert "<success" in rs.sasl_plain("alice", srv.users["alice"])
    rs.open_stream()
    rs.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            "<resource>" + "r" * 1100 + "</resource></bind></iq>")
    resp = rs.read_until(r"<iq\b[^>]*id=['\"]b1['\"].*?</iq>|</(\w+:)?stream>")
    assert "type='error'" in resp or 'type="error"' in resp, resp
    assert "bad-request" in resp or "not-allowed" in resp, resp
    rs.close()


def test_several_resources_with_priorities(srv, run):
    async def scenario():
        cl = clients_for(srv)
        hi = await cl.login("alice", "hi", priority=10)
        lo = await cl.login("alice", "lo", priority=1)
        b = await cl.login("bob", "b")
        # both reachable by full JID
        await exchange(b, hi)
        await exchange(b, lo)
        # bare JID -> the highest priority only
        b.send_message(mto="alice@localhost", mbody="to-bare-1", mtype="chat")
        await hi.wait_for("message", lambda m: m["body"] == "to-bare-1")
        await lo.expect_none("message", lambda m: m["body"] == "to-bare-1", 1.0)
        # priorities change: lo becomes highest
        lo.send_presence(ppriority=20)
        await asyncio.sleep(0.3)
        b.send_message(mto="alice@localhost", mbody="to-bare-2", mtype="chat")
        await lo.wait_for("message", lambda m: m["body"] == "to-bare-2")
        await hi.expect_none("message", lambda m: m["body"] == "to-bare-2", 1.0)
    run(scenario)
