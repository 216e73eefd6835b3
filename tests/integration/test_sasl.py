"""SASL: SCRAM-SHA-256/-1 (+ -PLUS with tls-server-end-point), PLAIN only inside TLS,
failed-login rate limiting."""
import base64
import os
import socket
import re
import time

import pytest

from conftest import (DOMAIN, NS_SASL, RawStream, LoginFailed, clients_for, exchange,
                      expect_stream_error, tls_server_end_point)


def _tls_stream(srv, direct=False):
    if direct:
        rs = RawStream.direct_tls(srv)
    else:
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        rs.starttls(srv)
    feats = rs.open_stream()
    return rs, feats


def _bind_after(rs, resource):
    feats = rs.open_stream()
    assert "xmpp-bind" in feats, feats
    return rs.bind(resource)


# ---------------------------------------------------------------- slixmpp logins

@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
def test_slixmpp_login_with_mechanism(srv, run, mech):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "m", mech=mech)
        assert a["feature_mechanisms"].mech.name == mech
        b = await cl.login("bob", "m")
        await exchange(a, b)
    run(scenario)


def test_slixmpp_wrong_password_then_right_one(srv, run):
    async def scenario():
        cl = clients_for(srv)
        with pytest.raises(LoginFailed):
            await cl.login("alice", "bad", password="not-the-password", timeout=8)
        bad = cl.all[-1]
        assert "not-authorized" in bad.auth_failures(), bad.auth_failures()
        a = await cl.login("alice", "good")
        b = await cl.login("bob", "x")
        await exchange(a, b)
    run(scenario)


def test_slixmpp_default_mechanism_choice_signs_in(server, run):
    """An unconfigured slixmpp 1.8 (prefers -PLUS with tls-unique, else sends the 'y' GS2
    flag) must still end up signed in; failed attempts must not lock it out."""
    srv = server(extra=["auth_fail_limit = 20"])

    async def scenario():
        cl = clients_for(srv)
        c = cl.make("alice", "default", mech=None)
        c.strip_channel_binding = False
        await cl.connect(c, timeout=15)
        assert c.authenticated
    run(scenario)


def test_stock_slixmpp_repeated_logins_not_locked_out(srv, run):
    """With the default auth_fail_limit (5), an unconfigured slixmpp signing in several
    times in a minute must not be locked out: its rejected tls-unique -PLUS attempts never
    checked a password and should not count as failed logins."""
    async def scenario():
        cl = clients_for(srv)
        for i in range(4):
            c = cl.make("alice", f"stock{i}", mech=None)
            c.strip_channel_binding = False
            try:
                await cl.connect(c, timeout=15)
            except LoginFailed as e:
                raise AssertionError(f"login #{i + 1} of a stock slixmpp failed: {e}")
            assert c.authenticated
            await c.close()
    run(scenario)


# ---------------------------------------------------------------- raw SCRAM

@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_raw_scram_verifies_server_signature(srv, mech):
    rs, feats = _tls_stream(srv)
    assert mech in feats
    ok, resp = rs.sasl_scram("carol", srv.users["carol"], mech)
    assert ok, resp
    assert _bind_after(rs, "scram") == "carol@localhost/scram"
    rs.close()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_raw_scram_wrong_proof_not_authorized(server, mech):
    srv = server(extra=["auth_fail_limit = 50"])
    rs, _ = _tls_stream(srv)
    ok, resp = rs.sasl_scram("carol", srv.users["carol"], mech, tamper_proof=True)
    assert not ok
    assert re.search(r"<failure\b[^>]*>.*<not-authorized\s*/>", resp, re.S), resp
    # the same stream may retry (RFC 6120 6.4.5) -- and succeed with the right proof
    ok, resp = rs.sasl_scram("carol", srv.users["carol"], mech)
    assert ok, resp
    rs.close()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
@pytest.mark.parametrize("direct", [False, True], ids=["starttls", "directtls"])
def test_scram_plus_tls_server_end_point(srv, mech, direct):
    rs, feats = _tls_stream(srv, direct)
    assert mech in feats, feats
    cb = tls_server_end_point(rs.tls.getpeercert(binary_form=True))
    ok, resp = rs.sasl_scram("alice", srv.users["alice"], mech,
                             cb_flag="p=tls-server-end-point", cb_data=cb)
    assert ok, resp
    assert _bind_after(rs, "plus").startswith("alice@localhost/")
    rs.close()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
def test_scram_plus_mismatching_binding_rejected(server, mech):
    srv = server(extra=["auth_fail_limit = 50"])
    rs, _ = _tls_stream(srv)
    ok, resp = rs.sasl_scram("alice", srv.users["alice"], mech,
                             cb_flag="p=tls-server-end-point", cb_data=os.urandom(32))
    assert not ok, "server accepted a channel binding that is not its certificate's"
    assert "<failure" in resp or "</stream" in resp, resp
    rs.close()


def test_scram_plus_unsupported_binding_type_rejected(server):
    srv = server(extra=["auth_fail_limit = 50"])
    rs, _ = _tls_stream(srv)
    ok, resp = rs.sasl_scram("alice", srv.users["alice"], "SCRAM-SHA-256-PLUS",
                             cb_flag="p=tls-unique",
                             cb_data=rs.tls.get_channel_binding("tls-unique") or b"x" * 12)
    assert not ok, "server accepted tls-unique, which it does not offer"
    rs.close()


def test_scram_y_flag_rejected_when_plus_offered(server):
    """RFC 5802 s6: 'y' (client supports binding, thinks server does not) while the server
    advertises -PLUS is a downgrade: authentication MUST fail."""
    srv = server(extra=["auth_fail_limit = 50"])
    rs, feats = _tls_stream(srv)
    assert "SCRAM-SHA-256-PLUS" in feats
    ok, resp = rs.sasl_scram("alice", srv.users["alice"], "SCRAM-SHA-256", cb_flag="y")
    assert not ok, "server accepted the 'y' GS2 flag although it offers SCRAM-SHA-256-PLUS"
    rs.close()


def test_scram_plus_with_n_flag_rejected(server):
    """A -PLUS mechanism without channel binding is inconsistent; must not succeed."""
    srv = server(extra=["auth_fail_limit = 50"])
    rs, _ = _tls_stream(srv)
    ok, resp = rs.sasl_scram("alice", srv.users["alice"], "SCRAM-SHA-256-PLUS", cb_flag="n")
    assert not ok, resp
    rs.close()


def test_tls_exporter_offered_on_tls13(srv):
    """XEP-0440 channel-binding types advertised; tls-exporter on TLS 1.3 and
    tls-server-end-point are the ones the server supports (tls-unique is not)."""
    rs, feats = _tls_stream(srv)
    types = re.findall(r"<channel-binding\b[^>]*\btype=['\"]([^'\"]+)['\"]", feats)
    if not types:
        pytest.skip("server does not advertise XEP-0440 sasl-channel-binding")
    assert "tls-server-end-point" in types, types
    assert rs.tls.version() != "TLSv1.3" or "tls-exporter" in types, types
    assert "tls-unique" not in types, types
    rs.close()


# ---------------------------------------------------------------- PLAIN

def test_plain_inside_tls(srv):
    rs, feats = _tls_stream(srv)
    assert "PLAIN" in feats
    resp = rs.sasl_plain("dave", srv.users["dave"])
    assert "<success" in resp, resp
    assert _bind_after(rs, "p") == "dave@localhost/p"
    rs.close()


def test_plain_before_tls_refused(srv):
    rs = RawStream(srv.c2s_port)
    rs.open_stream()
    rs.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
            + __import__("base64").b64encode(b"\0alice\0" + srv.users["alice"].encode()).decode()
            + "</auth>")
    data, closed = rs.read_all(timeout=5)
    assert "<success" not in data, f"PLAIN accepted in cleartext: {data!r}"
    assert re.search(r"encryption-required|policy-violation|not-authorized", data), data
    rs.close()


def test_scram_before_tls_refused(srv):
    rs = RawStream(srv.c2s_port)
    rs.open_stream()
    ok, resp = (False, "")
    try:
        ok, resp = rs.sasl_scram("alice", srv.users["alice"], "SCRAM-SHA-256")
    except AssertionError as e:   # closed
        resp = str(e)
    assert not ok, "SASL succeeded before STARTTLS (TLS is mandatory)"
    rs.close()


def test_plain_not_offered_when_disabled(server):
    srv = server(extra=["allow_plain = false"])
    rs, feats = _tls_stream(srv)
    assert "<mechanism>PLAIN</mechanism>" not in feats, feats
    assert "SCRAM-SHA-256" in feats
    resp = rs.sasl_plain("alice", srv.users["alice"])
    assert "<success" not in resp, resp
    rs.close()


def test_plain_wrong_password_not_authorized(srv):
    rs, _ = _tls_stream(srv)
    resp = rs.sasl_plain("alice", "wrong")
    assert re.search(r"<failure\b[^>]*>.*<not-authorized\s*/>", resp, re.S), resp
    rs.close()


def test_plain_unknown_user_not_authorized(srv):
    rs, _ = _tls_stream(srv)
    resp = rs.sasl_plain("nosuchuser", "whatever")
    assert re.search(r"<failure\b[^>]*>.*<not-authorized\s*/>", resp, re.S), resp
    rs.close()


def test_plain_authzid_of_other_user_refused(srv):
    rs, _ = _tls_stream(srv)
    resp = rs.sasl_plain("alice", srv.users["alice"], authzid="bob@localhost")
    assert "<success" not in resp, "alice authorised as bob"
    rs.close()


def test_unknown_mechanism_invalid_mechanism(srv):
    rs, _ = _tls_stream(srv)
    rs.send(f"<auth xmlns='{NS_SASL}' mechanism='X-BOGUS'>AAAA</auth>")
    resp = rs.read_until(r"<failure\b.*?</failure>|</(\w+:)?stream>")
    assert "invalid-mechanism" in resp, resp
    rs.close()


# ---------------------------------------------------------------- rate limiting

def test_auth_rate_limit_per_account(server):
    srv = server(extra=["auth_fail_limit = 3", "auth_fail_window = 4"])
    t0 = time.monotonic()
    for i in range(3):
        rs, _ = _tls_stream(srv)
        resp = rs.sasl_plain("alice", "wrong%d" % i)
        assert "not-authorized" in resp, resp
        rs.close()
    rs, _ = _tls_stream(srv)
    resp = rs.sasl_plain("alice", srv.users["alice"])
    assert "<success" not in resp, "right password accepted while rate-limited"
    assert "temporary-auth-failure" in resp, resp
    rs.close()
    # SCRAM is limited too
    rs, _ = _tls_stream(srv)
    ok, resp = rs.sasl_scram("alice", srv.users["alice"], "SCRAM-SHA-256")
    assert not ok and "temporary-auth-failure" in resp, resp
    rs.close()
    # after the window, the right password works again
    time.sleep(max(0, 4.5 - (time.monotonic() - t0)))
    ok = False
    for _ in range(10):
        rs, _ = _tls_stream(srv)
        resp = rs.sasl_plain("alice", srv.users["alice"])
        rs.close()
        if "<success" in resp:
            ok = True
            break
        time.sleep(0.5)
    assert ok, f"still refused after the window: {resp}"


def test_auth_rate_limit_per_address(server):
    """Failures spread over accounts from one address still trip the address limit."""
    srv = server(extra=["auth_fail_limit = 3", "auth_fail_window = 30"])
    for user in ("alice", "bob", "carol"):
        rs, _ = _tls_stream(srv)
        resp = rs.sasl_plain(user, "wrong")
        assert "not-authorized" in resp, resp
        rs.close()
    rs, _ = _tls_stream(srv)
    resp = rs.sasl_plain("dave", srv.users["dave"])
    assert "<success" not in resp, "address limit not applied"
    assert "temporary-auth-failure" in resp, resp
    rs.close()


# ---------------------------------------------------------------- tls-exporter (RFC 9266)

class _PyOpenSSLSock:
    """Just enough of a socket over a pyOpenSSL Connection for RawStream."""

    def __init__(self, raw, srv):
        from OpenSSL import SSL
        self.SSL = SSL
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        ctx.load_verify_locations(srv.ca)
        ctx.set_verify(SSL.VERIFY_PEER, lambda *a: a[-1])
        raw.settimeout(None)      # blocking fd; time-outs via select in recv()
        self.raw = raw
        self.conn = SSL.Connection(ctx, raw)
        self.conn.set_tlsext_host_name(DOMAIN.encode())
        self.conn.set_connect_state()
        self.conn.do_handshake()
        self.timeout = 5

    def settimeout(self, t):
        self.timeout = t

    def recv(self, n):
        import select
        deadline = time.monotonic() + (self.timeout or 5)
        while True:
            if not self.conn.pending():
                r, _, _ = select.select([self.raw], [], [], max(0, deadline - time.monotonic()))
                if not r:
                    raise socket.timeout()
            try:
                return self.conn.recv(n)
            except self.SSL.WantReadError:
                continue
            except (self.SSL.ZeroReturnError, self.SSL.SysCallError):
                return b""

    def sendall(self, data):
        self.conn.sendall(data)

    def pending(self):
        return self.conn.pending()

    def close(self):
        try:
            self.conn.shutdown()
        except Exception:
            pass
        self.raw.close()

    def exporter(self):
        return self.conn.export_keying_material(b"EXPORTER-Channel-Binding", 32, None)

    def version(self):
        return self.conn.get_protocol_version_name()


def _pyopenssl_stream(srv, direct):
    pytest.importorskip("OpenSSL")
    if direct:
        raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=5)
        rs = RawStream(srv.tls_port, sock=raw)
    else:
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        rs.send(f"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        rs.read_until(r"<proceed\b[^>]*/>|<proceed\b[^>]*>\s*</proceed>")
        raw = rs.sock
    w = _PyOpenSSLSock(raw, srv)
    rs.sock = w
    assert w.version() == "TLSv1.3"
    feats = rs.open_stream()
    return rs, w, feats


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
@pytest.mark.parametrize("direct", [False, True], ids=["starttls", "directtls"])
def test_scram_plus_tls_exporter_on_tls13(srv, mech, direct):
    rs, w, feats = _pyopenssl_stream(srv, direct)
    assert mech in feats, feats
    ok, resp = rs.sasl_scram("bob", srv.users["bob"], mech, cb_flag="p=tls-exporter",
                             cb_data=w.exporter())
    assert ok, resp
    assert _bind_after(rs, "exp") == "bob@localhost/exp"
    rs.close()


def test_scram_plus_tls_exporter_mismatch_rejected(server):
    srv = server(extra=["auth_fail_limit = 50"])
    rs, w, feats = _pyopenssl_stream(srv, False)
    ok, resp = rs.sasl_scram("bob", srv.users["bob"], "SCRAM-SHA-256-PLUS",
                             cb_flag="p=tls-exporter", cb_data=bytes(32))
    assert not ok, "server accepted a wrong tls-exporter binding"
    rs.close()


# ---------------------------------------------------------------- protocol misuse

def test_reauth_after_bind_cannot_switch_identity(srv):
    rs = RawStream(srv.c2s_port)
    assert rs.login(srv, "alice", "reauth") == "alice@localhost/reauth"
    rs.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
            + base64.b64encode(b"\0bob\0" + srv.users["bob"].encode()).decode() + "</auth>")
    data, closed = rs.read_all(timeout=3)
    assert "<success" not in data, f"re-authentication accepted after bind: {data!r}"
    if not closed:
        # still alice: a message to bob comes from alice
        rs.send("<iq type='get' id='who' to='alice@localhost'><query "
                "xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        resp = rs.read_until(r"<iq\b[^>]*id=['\"]who['\"]")
        assert "to='alice@localhost/reauth'" in resp or 'to="alice@localhost/reauth"' in resp, resp
    rs.close()


def test_second_bind_refused(srv):
    rs = RawStream(srv.c2s_port)
    rs.login(srv, "alice", "first")
    rs.send("<iq type='set' id='bind2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            "<resource>second</resource></bind></iq>")
    data, closed = rs.read_all(timeout=3)
    assert "<jid>alice@localhost/second</jid>" not in data, f"second bind accepted: {data!r}"
    assert closed or re.search(r"type=['\"]error['\"]", data), data
    rs.close()


def test_starttls_twice_refused(srv):
    rs = RawStream(srv.c2s_port)
    rs.open_stream()
    rs.starttls(srv)
    rs.open_stream()
    rs.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    data, closed = rs.read_all(timeout=3)
    assert "<proceed" not in data, data
    assert closed or "<failure" in data, data
    rs.close()


def test_sasl_abort(srv):
    rs, _ = _tls_stream(srv)
    first = base64.b64encode(b"n,,n=alice,r=abcdefghijkl").decode()
    rs.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>")
    rs.read_until(r"<challenge\b.*?</challenge>")
    rs.send(f"<abort xmlns='{NS_SASL}'/>")
    resp = rs.read_until(r"<failure\b.*?</failure>|<failure\b[^>]*/>")
    assert "<aborted" in resp, resp
    # a fresh attempt on the same stream works
    ok, resp = rs.sasl_scram("alice", srv.users["alice"], "SCRAM-SHA-256")
    assert ok, resp
    rs.close()


@pytest.mark.parametrize("payload", ["!!!notbase64", "AAA", "YWJj\nZGVm===="])
def test_sasl_bad_base64_incorrect_encoding(server, payload):
    srv = server(extra=["auth_fail_limit = 50"])
    rs, _ = _tls_stream(srv)
    rs.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
    resp = rs.read_until(r"<failure\b.*?</failure>|</(\w+:)?stream>")
    assert "incorrect-encoding" in resp or "malformed-request" in resp, resp
    rs.close()


def test_scram_replayed_final_message_rejected(server):
    """The server nonce is fresh per exchange: replaying a captured client-final fails."""
    srv = server(extra=["auth_fail_limit = 50"])
    import hashlib, hmac
    rs, _ = _tls_stream(srv)
    sent = []
    orig_send = rs.send
    rs.send = lambda d: (sent.append(d), orig_send(d))[1]
    ok, _ = rs.sasl_scram("alice", srv.users["alice"], "SCRAM-SHA-256")
    assert ok
    rs.close()
    auth_xml, response_xml = sent[0], sent[1]
    rs2, _ = _tls_stream(srv)
    rs2.send(auth_xml)                       # same client nonce
    rs2.read_until(r"<challenge\b.*?</challenge>")
    rs2.send(response_xml)                   # old proof, old server nonce
    resp = rs2.read_until(r"<success\b[^>]*/>|<success\b.*?</success>|<failure\b.*?</failure>"
                          r"|</(\w+:)?stream>")
    assert "<success" not in resp, "replayed SCRAM exchange accepted"
    rs2.close()
