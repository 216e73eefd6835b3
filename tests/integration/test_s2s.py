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
