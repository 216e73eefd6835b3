"""Federation (docs/federation.md): parleyd and a real Prosody, each on its own domain on
loopback, with certificates from one test CA; SASL EXTERNAL both ways (Prosody with
s2s_secure_auth = true). Subscriptions, presence and chat both ways, compliance records
on the Parley side; and the refusals: a certificate from another CA, a certificate that
does not name the claimed domain, a spoofed 'from', a deny-listed domain, an unreachable
one.
"""
import asyncio
import os
import sqlite3
import time

import pytest

from conftest import HOST, free_port
from s2s_util import (DomainServer, Prosody, RawPeer, issue_cert, login, require_prosody)

PARLEY = "parley.test"
PROSODY = "prosody.test"
P_USERS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}
X_USERS = {"pat": "pat-Secret-3", "quinn": "quinn-Secret-4"}


@pytest.fixture
def parley(tmp_path, request):
    made = []

    def make(extra=(), start=True):
        srv = DomainServer(tmp_path / f"parley{len(made)}", PARLEY, P_USERS, extra=extra)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    problems = []
    for srv in made:
        p = srv.stop()
        failed = getattr(request.node, "rep_call", None)
        if p or (failed is not None and failed.failed):
            print(srv.log_tail(150))
        problems += p
    if problems:
        pytest.fail("parleyd teardown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def prosody(tmp_path, request):
    require_prosody()
    made = []

    def make(parley_srv, secure=True, ca_from="same"):
        d = tmp_path / f"prosody{len(made)}"
        cert, key = issue_cert(str(d / "cert"), PROSODY,
                               ca_from=parley_srv.dir if ca_from == "same" else None)
        p = Prosody(d, PROSODY, cert, key, parley_srv.ca, {PARLEY: (HOST, parley_srv.s2s_port)},
                    X_USERS, secure=secure)
        made.append(p)
        return p

    yield make
    for p in made:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(p.log_tail())
        p.stop()


def compliance_rows(srv, body):
    con = sqlite3.connect(f"file:{os.path.join(srv.dir, 'data', 'compliance.db')}?mode=ro",
                          uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM messages WHERE body = ?", (body,))]
    finally:
        con.close()


async def wait_until(fn, timeout=10.0, what=""):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


AVAILABLE = ("available", "chat", "away", "xa", "dnd")


def presence_from(jid_prefix, ptype="available"):
    types = AVAILABLE if ptype == "available" else (ptype,)
    return lambda p: str(p["from"]).startswith(jid_prefix) and p["type"] in types


def test_federation_with_prosody(parley, prosody, run):
    """Subscriptions, presence, chat both ways between parleyd and Prosody; both links
    authenticated by certificate; every message recorded on the Parley side."""
    srv = parley(start=False)
    pro = prosody(srv)
    srv.set_config([f"s2s_hosts = {PROSODY}={HOST}:{pro.s2s_port}"])
    srv.start()

    async def scenario():
        alice = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"])
        pat = await login(PROSODY, pro.c2s_port, srv.ca, "pat", X_USERS["pat"], mech="SCRAM-SHA-1")

        # alice subscribes to pat; pat approves; pat subscribes back; alice approves
        alice.send_presence(pto=f"pat@{PROSODY}", ptype="subscribe")
        await pat.wait_for("presence", lambda p: p["type"] == "subscribe" and
                           str(p["from"]) == f"alice@{PARLEY}", timeout=20, what="subscribe")
        pat.send_presence(pto=f"alice@{PARLEY}", ptype="subscribed")
        await alice.wait_for("presence", lambda p: p["type"] == "subscribed", timeout=10,
                             what="subscribed")
        # after approval Prosody sends pat's current presence
        await alice.wait_for("presence", presence_from(f"pat@{PROSODY}/"), timeout=10,
                             what="pat's presence")
        pat.send_presence(pto=f"alice@{PARLEY}", ptype="subscribe")
        await alice.wait_for("presence", lambda p: p["type"] == "subscribe" and
                             str(p["from"]) == f"pat@{PROSODY}", timeout=10, what="subscribe")
        alice.send_presence(pto=f"pat@{PROSODY}", ptype="subscribed")
        await pat.wait_for("presence", presence_from(f"alice@{PARLEY}/"), timeout=10,
                           what="alice's presence after approval")

        # chat both ways
        alice.send_message(mto=f"pat@{PROSODY}", mbody="hello from parley", mtype="chat")
        m = await pat.wait_for("message", lambda m: m["body"] == "hello from parley",
                               timeout=10, what="alice's message")
        assert str(m["from"]) == f"alice@{PARLEY}/r"
        pat.send_message(mto=f"alice@{PARLEY}", mbody="hello from prosody", mtype="chat")
        m = await alice.wait_for("message", lambda m: m["body"] == "hello from prosody",
                                 timeout=10, what="pat's message")
        assert str(m["from"]) == f"pat@{PROSODY}/r"

        # presence: a new status is broadcast across; logout is seen as unavailable
        pat.send_presence(pstatus="busy", pshow="dnd")
        await alice.wait_for("presence", lambda p: p["status"] == "busy", timeout=10,
                             what="pat's new status")
        alice.send_presence(pstatus="lunch", pshow="away")
        await pat.wait_for("presence", lambda p: p["status"] == "lunch", timeout=10,
                           what="alice's new status")
        # a second Parley session gets pat's presence by probe at login
        alice2 = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"],
                             resource="second")
        await alice2.wait_for("presence", presence_from(f"pat@{PROSODY}/"), timeout=10,
                              what="presence by probe at login")
        await alice2.close()
        await alice.close()
        await pat.wait_for("presence", presence_from(f"alice@{PARLEY}/", "unavailable"),
                           timeout=10, what="alice unavailable on logout")

        # roster state on Parley's side
        await pat.close()

    run(scenario, timeout=120)

    out = compliance_rows(srv, "hello from parley")
    assert len(out) == 1 and out[0]["outcome"] == "sent-remote", out
    assert out[0]["sender"].startswith(f"alice@{PARLEY}") and PROSODY in out[0]["recipient"], out
    inb = compliance_rows(srv, "hello from prosody")
    assert len(inb) == 1 and inb[0]["outcome"] == "delivered", inb
    assert inb[0]["sender"].startswith(f"pat@{PROSODY}"), inb
    log = srv.log_text()
    assert f"s2s domain out to {PROSODY}: authenticated by certificate" in log
    assert f"s2s domain in from {PROSODY}: authenticated by certificate" in log
    assert "SASL EXTERNAL" in pro.log_text()


# --------------------------------------------------------------------------- refusals

def peer_cert(srv, tmp_path, domain, same_ca=True):
    d = str(tmp_path / f"peer-{domain}-{'same' if same_ca else 'other'}")
    return issue_cert(d, domain, ca_from=srv.dir if same_ca else None)


def stream_error(text):
    import re
    m = re.search(r"<stream:error>\s*<([a-z-]+)", text)
    return m.group(1) if m else None


def test_certificate_from_another_ca_refused(parley, tmp_path, run):
    srv = parley()
    cert, key = peer_cert(srv, tmp_path, PROSODY, same_ca=False)
    peer = RawPeer(srv.s2s_port)
    feats = peer.open(PROSODY, PARLEY)
    assert "starttls" in feats and "<required/>" in feats, feats
    peer.starttls(cert, key, srv.ca, PARLEY)
    out = peer.open(PROSODY, PARLEY) + peer.read_all(3)
    assert stream_error(out) == "not-authorized", out
    assert "not trusted" in out and "EXTERNAL" not in out, out
    peer.close()
    srv.wait_log(r"stream error <not-authorized/>: the peer's certificate is not trusted")

    # and still serving everyone else
    async def scenario():
        a = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"])
        await a.close()
    run(scenario)


def test_certificate_not_naming_the_domain_refused(parley, tmp_path):
    """A valid certificate for prosody.test, used to claim evil.test."""
    srv = parley()
    cert, key = peer_cert(srv, tmp_path, PROSODY)
    peer = RawPeer(srv.s2s_port)
    peer.open("evil.test", PARLEY)
    peer.starttls(cert, key, srv.ca, PARLEY)
    out = peer.open("evil.test", PARLEY) + peer.read_all(3)
    assert stream_error(out) == "not-authorized", out
    assert "does not name evil.test" in out, out
    peer.close()

    # the same certificate with its own domain but a different SASL identity
    peer = RawPeer(srv.s2s_port)
    peer.open(PROSODY, PARLEY)
    peer.starttls(cert, key, srv.ca, PARLEY)
    feats = peer.open(PROSODY, PARLEY)
    assert "EXTERNAL" in feats, feats
    out = peer.external("evil.test")
    assert "<not-authorized/>" in out and "evil.test" in out, out
    peer.close()


def authenticated_peer(srv, tmp_path, domain=PROSODY):
    cert, key = peer_cert(srv, tmp_path, domain)
    peer = RawPeer(srv.s2s_port)
    peer.open(domain, PARLEY)
    peer.starttls(cert, key, srv.ca, PARLEY)
    feats = peer.open(domain, PARLEY)
    assert "EXTERNAL" in feats, feats
    out = peer.external(domain)
    assert "<success" in out, out
    peer.open(domain, PARLEY)
    return peer


def test_spoofed_from_refused(parley, tmp_path, run):
    srv = parley()

    async def scenario():
        a = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"])
        peer = authenticated_peer(srv, tmp_path)
        # a stanza in its own domain is delivered
        peer.send(f"<message from='pat@{PROSODY}/x' to='alice@{PARLEY}' type='chat'>"
                  "<body>genuine</body></message>")
        await a.wait_for("message", lambda m: m["body"] == "genuine", timeout=5)
        # one claiming another domain closes the stream
        peer.send(f"<message from='boss@{PARLEY}/x' to='alice@{PARLEY}' type='chat'>"
                  "<body>spoofed</body></message>")
        out = peer.read_all(3)
        assert stream_error(out) == "invalid-from", out
        await a.expect_none("message", lambda m: m["body"] == "spoofed", duration=1)
        peer.close()
        await a.close()
    run(scenario)
    srv.wait_log(r"spoofed 'from' domain parley.test refused")


def test_deny_list(parley, tmp_path, run):
    srv = parley(extra=[f"s2s_deny = {PROSODY}, other.test",
                        f"s2s_hosts = {PROSODY}={HOST}:{free_port()}"])
    cert, key = peer_cert(srv, tmp_path, PROSODY)
    peer = RawPeer(srv.s2s_port)
    out = peer.open(PROSODY, PARLEY) + peer.read_all(2)
    assert stream_error(out) == "policy-violation", out
    assert "not allowed" in out, out
    peer.close()

    async def scenario():
        a = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"])
        a.send_message(mto=f"pat@{PROSODY}", mbody="to a denied domain", mtype="chat")
        err = await a.wait_for("message_error", timeout=5)
        assert err["error"]["condition"] == "remote-server-not-found", err
        assert "not allowed" in err["error"]["text"], err
        await a.close()
    run(scenario)
    rows = compliance_rows(srv, "to a denied domain")
    assert len(rows) == 1 and rows[0]["outcome"] == "bounced", rows


def test_unreachable_domain_bounces(parley, run):
    closed = free_port()
    srv = parley(extra=[f"s2s_hosts = nowhere.test={HOST}:{closed}"])

    async def scenario():
        a = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"])
        for i in range(3):
            a.send_message(mto=f"x@nowhere.test", mbody=f"lost {i}", mtype="chat")
        for i in range(3):
            err = await a.wait_for("message_error", lambda m: m["body"] == f"lost {i}",
                                   timeout=10)
            assert err["error"]["condition"] == "remote-server-not-found", err
            assert "nowhere.test" in err["error"]["text"], err
        await a.close()
    run(scenario)


def test_outbound_to_untrusted_prosody_refused(parley, prosody, run):
    """Prosody with a certificate from a CA parleyd does not trust: parleyd will not
    authenticate it, messages bounce with the reason, the log says why."""
    srv = parley(start=False)
    pro = prosody(srv, ca_from=None)
    srv.set_config([f"s2s_hosts = {PROSODY}={HOST}:{pro.s2s_port}"])
    srv.start()

    async def scenario():
        a = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"])
        a.send_message(mto=f"pat@{PROSODY}", mbody="to an untrusted server", mtype="chat")
        err = await a.wait_for("message_error", timeout=15)
        assert err["error"]["condition"] == "remote-server-timeout", err
        assert "not trusted" in err["error"]["text"], err
        await a.close()
    run(scenario, timeout=60)
    srv.wait_log(r"s2s out prosody.test: failed: the peer's certificate is not trusted")


def test_dialback_when_allowed(parley, prosody, run):
    """s2s_secure = no with s2s_dialback = yes: a Prosody whose certificate parleyd cannot
    verify (and which does not insist on certificates itself) federates by dialback."""
    srv = parley(extra=["s2s_secure = no", "s2s_dialback = yes"], start=False)
    pro = prosody(srv, ca_from=None, secure=False)
    srv.set_config([f"s2s_hosts = {PROSODY}={HOST}:{pro.s2s_port}"])
    srv.start()

    async def scenario():
        alice = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"])
        pat = await login(PROSODY, pro.c2s_port, pro.ca_own, "pat", X_USERS["pat"],
                          mech="SCRAM-SHA-1")
        alice.send_message(mto=f"pat@{PROSODY}/r", mbody="by dialback", mtype="chat")
        await pat.wait_for("message", lambda m: m["body"] == "by dialback", timeout=20)
        pat.send_message(mto=f"alice@{PARLEY}/r", mbody="dialback back", mtype="chat")
        await alice.wait_for("message", lambda m: m["body"] == "dialback back", timeout=20)
        await alice.close()
        await pat.close()
    run(scenario, timeout=90)
    log = srv.log_text()
    assert "s2s domain out to prosody.test: authenticated by dialback" in log, log[-3000:]
    assert "s2s domain in from prosody.test: authenticated by dialback" in log, log[-3000:]


def test_silent_peer_queue_bounded_and_timed_out(parley, run):
    """A peer that accepts the connection and never speaks: the queue is bounded
    (s2s_max_queue), and what waited is bounced when the handshake times out."""
    import socket
    lsock = socket.socket()
    lsock.bind((HOST, 0))
    lsock.listen(4)
    port = lsock.getsockname()[1]
    srv = parley(extra=[f"s2s_hosts = silent.test={HOST}:{port}", "s2s_max_queue = 2",
                        "handshake_timeout = 3"])
    try:
        async def scenario():
            a = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"])
            for i in range(3):
                a.send_message(mto="x@silent.test", mbody=f"q{i}", mtype="chat")
            err = await a.wait_for("message_error", lambda m: m["body"] == "q2", timeout=5)
            assert err["error"]["condition"] == "remote-server-timeout", err
            assert "too many" in err["error"]["text"], err
            for i in range(2):
                err = await a.wait_for("message_error", lambda m, i=i: m["body"] == f"q{i}",
                                       timeout=10)
                assert err["error"]["condition"] == "remote-server-timeout", err
                assert "in time" in err["error"]["text"], err
            await a.close()
        run(scenario)
    finally:
        lsock.close()


def test_allow_list(parley, tmp_path, run):
    """With s2s_allow, every domain not listed is refused both ways."""
    srv = parley(extra=["s2s_allow = partner.test"])
    peer = RawPeer(srv.s2s_port)
    out = peer.open(PROSODY, PARLEY) + peer.read_all(2)
    assert stream_error(out) == "policy-violation", out
    peer.close()
    # a listed domain gets as far as TLS and authentication
    cert, key = peer_cert(srv, tmp_path, "partner.test")
    peer = RawPeer(srv.s2s_port)
    feats = peer.open("partner.test", PARLEY)
    assert "starttls" in feats, feats
    peer.starttls(cert, key, srv.ca, PARLEY)
    assert "EXTERNAL" in peer.open("partner.test", PARLEY)
    peer.close()

    async def scenario():
        a = await login(PARLEY, srv.c2s_port, srv.ca, "alice", P_USERS["alice"])
        a.send_message(mto=f"pat@{PROSODY}", mbody="not allowed", mtype="chat")
        err = await a.wait_for("message_error", timeout=5)
        assert err["error"]["condition"] == "remote-server-not-found", err
        await a.close()
    run(scenario)
