"""Bad input.  Each test runs against a server that also has a healthy slixmpp pair
(alice/healthy <-> bob/healthy) which must still exchange messages afterwards."""
import asyncio
import base64
import os
import re
import resource
import socket
import ssl
import threading
import time

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")

from conftest import (DOMAIN, HOST, NS_SASL, NS_TLS, STREAM_HEADER, RawStream, client_ctx,
                      expect_stream_error, healthy_pair, raw_login, still_healthy,
                      stream_error_condition)


def with_healthy(srv, run, bad, timeout=90):
    """Run the blocking `bad()` in a thread while the healthy pair is connected."""
    async def scenario():
        cl, a, b = await healthy_pair(srv)
        result = await asyncio.to_thread(bad)
        await still_healthy(a, b)
        # and a brand-new login still works
        c = await cl.login("carol", "after")
        assert c.connected()
        return result, a, b
    return run(scenario, timeout=timeout)


def authed_raw(srv, user="dave", resource="bad"):
    rs, jid = raw_login(srv, user, resource)
    return rs


# ---------------------------------------------------------------- malformed XML

def test_malformed_xml_after_login_not_well_formed(srv, run):
    def bad():
        rs = authed_raw(srv)
        rs.send("<message to='alice@localhost'><body>unclosed</message>")
        expect_stream_error(rs, "not-well-formed")
    with_healthy(srv, run, bad)


def test_malformed_xml_in_stream_header_not_well_formed(srv, run):
    def bad():
        rs = RawStream(srv.c2s_port)
        rs.send("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
                "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><<<>>>&&&")
        expect_stream_error(rs, "not-well-formed")
    with_healthy(srv, run, bad)


def test_invalid_utf8_not_well_formed(srv, run):
    def bad():
        rs = authed_raw(srv)
        rs.send(b"<message to='alice@localhost/healthy'><body>\xff\xfe\xc0\xaf</body></message>")
        expect_stream_error(rs, "not-well-formed")
    cl_res = with_healthy(srv, run, bad)


def test_undeclared_prefix_and_mismatched_tag(srv, run):
    def bad():
        rs = authed_raw(srv)
        rs.send("<foo:message to='alice@localhost/healthy'><body>x</body></foo:message>")
        data, closed = rs.read_all(timeout=5)
        assert closed and stream_error_condition(data) in ("not-well-formed", "invalid-namespace",
                                                           "bad-format"), data
    with_healthy(srv, run, bad)


# ---------------------------------------------------------------- DTD / entities

BILLION_LAUGHS = (
    "<?xml version='1.0'?>"
    "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + "".join(f"<!ENTITY lol{i} '{('&lol%s;' % ('' if i == 1 else i - 1)) * 10}'>" for i in range(1, 10))
    + "]>"
    "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams'><message><body>&lol9;</body></message>"
)


def test_billion_laughs_doctype_restricted_xml(srv, run):
    def bad():
        rss0 = srv.rss_kb()
        rs = RawStream(srv.c2s_port)
        rs.send(BILLION_LAUGHS)
        data = expect_stream_error(rs, "restricted-xml")
        assert "lollollol" not in data
        # a few more in parallel; memory must stay flat (no expansion)
        streams = [RawStream(srv.c2s_port) for _ in range(10)]
        for s in streams:
            s.send(BILLION_LAUGHS)
        for s in streams:
            expect_stream_error(s, "restricted-xml")
        time.sleep(0.3)
        rss1 = srv.rss_kb()
        assert rss1 - rss0 < 64 * 1024, f"RSS grew {rss0} -> {rss1} kB"
    with_healthy(srv, run, bad)


def test_doctype_after_tls_restricted_xml(srv, run):
    def bad():
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        rs.starttls(srv)
        rs.send("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY x 'y'>]>"
                + STREAM_HEADER.format(to=DOMAIN).split("?>", 1)[1])
        expect_stream_error(rs, "restricted-xml")
    with_healthy(srv, run, bad)


def test_entity_declaration_inside_stanza_after_login(srv, run):
    """A DOCTYPE in the middle of an authenticated stream must not be processed."""
    def bad():
        rs = authed_raw(srv)
        rs.send("<!DOCTYPE x [<!ENTITY e 'expanded'>]><message to='alice@localhost/healthy'>"
                "<body>&e;</body></message>")
        data, closed = rs.read_all(timeout=5)
        assert closed, data
        assert stream_error_condition(data) in ("restricted-xml", "not-well-formed"), data
        return True

    async def check(a):
        await a.expect_none("message", lambda m: "expanded" in (m["body"] or ""), 0.5)

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        await asyncio.to_thread(bad)
        await check(a)
        await still_healthy(a, b)
    run(scenario)


def test_processing_instruction_and_comment_restricted(srv, run):
    def bad():
        rs = authed_raw(srv)
        rs.send("<?evil pi?><message to='alice@localhost/healthy'><body>pi</body></message>")
        data, closed = rs.read_all(timeout=5)
        assert closed and stream_error_condition(data) == "restricted-xml", data
    with_healthy(srv, run, bad)


def test_external_entity_reference_not_resolved(srv, run):
    def bad():
        rs = RawStream(srv.c2s_port)
        rs.send("<?xml version='1.0'?><!DOCTYPE s [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
                "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
                "xmlns:stream='http://etherx.jabber.org/streams'><x>&xxe;</x>")
        data = expect_stream_error(rs, "restricted-xml")
        assert "root:" not in data
    with_healthy(srv, run, bad)


# ---------------------------------------------------------------- stanza size

def test_oversized_stanza_policy_violation(server, run):
    srv = server(extra=["max_stanza_size = 64K"])

    def bad():
        rs = authed_raw(srv)
        # under the limit: delivered (proves the limit is not absurdly low)
        rs.send("<message to='alice@localhost/healthy' type='chat'><body>small-"
                + "s" * 30000 + "</body></message>")
        rs.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        rs.read_until(r"<iq\b[^>]*id=['\"]p['\"]")
        rs.send_until_answered("<message to='alice@localhost/healthy' type='chat'><body>big-"
                               + "b" * (100 * 1024) + "</body></message>")
        expect_stream_error(rs, "policy-violation", timeout=10)

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        await asyncio.to_thread(bad)
        await a.wait_for("message", lambda m: m["body"].startswith("small-"), 5)
        await a.expect_none("message", lambda m: m["body"].startswith("big-"), 0.5)
        await still_healthy(a, b)
    run(scenario)


def test_unterminated_huge_stanza_policy_violation(server, run):
    """A stanza that never ends must be cut off at max_stanza_size, not buffered."""
    srv = server(extra=["max_stanza_size = 64K"])

    def bad():
        rs = authed_raw(srv)
        rs.send("<message to='alice@localhost/healthy'><body>")
        rs.send_until_answered("z" * (1024 * 1024))   # stops when the server answers
        expect_stream_error(rs, "policy-violation", timeout=10)
    with_healthy(srv, run, bad)


def test_oversized_stanza_before_auth_policy_violation(server, run):
    srv = server(extra=["max_stanza_size = 64K"])

    def bad():
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        rs.starttls(srv)
        rs.open_stream()
        rs.send_until_answered(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>" + "A" * (100 * 1024)
                               + "</auth>")
        expect_stream_error(rs, "policy-violation", timeout=10)
    with_healthy(srv, run, bad)


def test_deeply_nested_stanza_does_not_crash(server, run):
    """10,000 nested elements inside the size limit: the server may refuse the stanza or
    process it, but must not crash (recursive parse/serialise) and must stay responsive."""
    srv = server(extra=["max_stanza_size = 256K"])

    def bad():
        rs = authed_raw(srv)
        rs.send("<iq type='get' id='deep' to='localhost'><query xmlns='urn:example:deep'>"
                + "<a>" * 10000 + "</a>" * 10000 + "</query></iq>")
        rs.send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        data, closed = rs.read_all(timeout=5)
        assert srv.alive(), "parleyd died on a deeply nested stanza"
        if closed:
            assert stream_error_condition(data) in ("policy-violation", "not-well-formed",
                                                    "restricted-xml", "resource-constraint"), data[-800:]
        else:
            assert re.search(r"<iq\b[^>]*id=['\"]after['\"]", data), data[-800:]
    with_healthy(srv, run, bad)


# ---------------------------------------------------------------- timeouts

def test_silent_client_disconnected_after_handshake_timeout(server, run):
    srv = server(extra=["handshake_timeout = 2"])

    def bad():
        s = socket.create_connection((HOST, srv.c2s_port), timeout=10)
        t0 = time.monotonic()
        data = b""
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
        except (ConnectionResetError, socket.timeout):
            pass
        dt = time.monotonic() - t0
        s.close()
        assert 1.5 <= dt <= 6, f"closed after {dt:.1f}s (handshake_timeout = 2)"
    with_healthy(srv, run, bad)


def test_client_silent_after_stream_header_connection_timeout(server, run):
    srv = server(extra=["handshake_timeout = 2"])

    def bad():
        rs = RawStream(srv.c2s_port, timeout=10)
        t0 = time.monotonic()
        rs.open_stream()
        expect_stream_error(rs, "connection-timeout", timeout=8)
        dt = time.monotonic() - t0
        assert 1.5 <= dt <= 6, f"closed after {dt:.1f}s"
    with_healthy(srv, run, bad)


def test_client_stalls_mid_tls_handshake(server, run):
    srv = server(extra=["handshake_timeout = 2"])

    def bad():
        rs = RawStream(srv.c2s_port, timeout=10)
        rs.open_stream()
        rs.send(f"<starttls xmlns='{NS_TLS}'/>")
        rs.read_until(r"<proceed\b")
        t0 = time.monotonic()
        # start of a TLS 1.2 ClientHello record, then nothing
        rs.sock.sendall(bytes.fromhex("160301020001"))
        assert rs.wait_closed(8), "not disconnected while stalled mid-TLS-handshake"
        dt = time.monotonic() - t0
        assert dt <= 6, f"closed after {dt:.1f}s"
    with_healthy(srv, run, bad)


def test_client_stalls_in_direct_tls_handshake(server, run):
    srv = server(extra=["handshake_timeout = 2"])

    def bad():
        s = socket.create_connection((HOST, srv.tls_port), timeout=10)
        s.sendall(bytes.fromhex("16030100"))
        t0 = time.monotonic()
        closed = False
        try:
            closed = s.recv(4096) == b""
        except (ConnectionResetError, socket.timeout):
            closed = True
        dt = time.monotonic() - t0
        s.close()
        assert closed and dt <= 6, f"closed={closed} after {dt:.1f}s"
    with_healthy(srv, run, bad)


def test_client_silent_after_tls_before_auth_connection_timeout(server, run):
    srv = server(extra=["handshake_timeout = 2"])

    def bad():
        rs = RawStream(srv.c2s_port, timeout=10)
        t0 = time.monotonic()
        rs.open_stream()
        rs.starttls(srv)
        rs.open_stream()
        expect_stream_error(rs, "connection-timeout", timeout=8)
        assert time.monotonic() - t0 <= 6
    with_healthy(srv, run, bad)


def test_authenticated_session_not_cut_by_handshake_timeout(server, run):
    srv = server(extra=["handshake_timeout = 2"])

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        await asyncio.sleep(3.5)
        await still_healthy(a, b)
    run(scenario)


# ---------------------------------------------------------------- slow reader

def test_stanza_larger_than_output_limit_reaches_a_reading_client(server):
    """A stanza bigger than max_output_buffer (but within max_stanza_size) for a client
    that reads normally is delivered: a peer is judged "not reading" only after the
    socket took what it could, not while one pass of the loop queues its output."""
    srv = server(extra=["max_output_buffer = 64K"])
    sender, _ = raw_login(srv, "alice", "big", timeout=10)
    reader, _ = raw_login(srv, "bob", "reader", timeout=10)
    body = "b" * (100 * 1024)
    for i in range(3):
        sender.send(f"<message to='bob@localhost/reader' type='chat' id='big{i}'>"
                    f"<body>big-{i}-{body}</body></message>")
        reader.read_until(f"big-{i}-b+</body>", timeout=20)
    reader.send("<iq type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>")
    reader.read_until(r"<iq\b[^>]*\bid=['\"]still['\"]", timeout=10)
    sender.close()
    reader.close()
    assert srv.alive()


def test_never_reading_client_flooded_is_dropped(server, run):
    """carol (raw socket, small receive buffer) never reads; dave floods her with headline
    messages (headlines to a gone resource are dropped silently, so nothing bounces back to
    dave).  carol must be disconnected; alice/bob unaffected."""
    srv = server(extra=["max_output_buffer = 64K"])
    state = {}

    def slow_reader_login():
        rs, jid = raw_login(srv, "carol", "slow", rcvbuf=4096, timeout=10)
        rs.send("<presence/>")
        state["rs"] = rs
        return jid

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        d = await cl.login("dave", "flooder")
        await asyncio.to_thread(slow_reader_login)
        rs = state["rs"]
        chunk = "f" * 4000
        total = 0
        n = 0
        deadline = time.monotonic() + 30
        while total < 12 * 1024 * 1024 and time.monotonic() < deadline and d.connected():
            for _ in range(50):
                d.send_message(mto="carol@localhost/slow", mbody=f"flood-{n}-{chunk}",
                               mtype="headline")
                n += 1
                total += len(chunk) + 80
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)
        # carol never read; now drain: the server must have dropped her
        data, closed = await asyncio.to_thread(rs.read_all, 15)
        rs.close()
        assert closed, (f"slow reader not disconnected after {total} bytes queued "
                        f"(max_output_buffer = 64K); read {len(data)} bytes")
        got = data.count("flood-")
        assert got < n, f"all {n} messages delivered -- nothing was dropped"
        await still_healthy(a, b)
        assert d.connected(), f"the flooding sender was dropped too: {d.stream_errors()}"
        assert srv.alive()
    run(scenario, timeout=120)


# ---------------------------------------------------------------- pre-auth stanzas

def test_stanza_after_tls_before_auth_not_authorized(srv, run):
    def bad():
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        rs.starttls(srv)
        rs.open_stream()
        rs.send("<message to='alice@localhost/healthy' type='chat'><body>preauth-tls</body></message>")
        expect_stream_error(rs, "not-authorized")

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        await asyncio.to_thread(bad)
        await a.expect_none("message", lambda m: m["body"] == "preauth-tls", 0.5)
        await still_healthy(a, b)
    run(scenario)


def test_stanza_before_tls_policy_violation(srv, run):
    def bad():
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        rs.send("<message to='alice@localhost/healthy' type='chat'><body>preauth-plain</body></message>")
        expect_stream_error(rs, "policy-violation")

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        await asyncio.to_thread(bad)
        await a.expect_none("message", lambda m: m["body"] == "preauth-plain", 0.5)
        await still_healthy(a, b)
    run(scenario)


def test_iq_before_bind_not_authorized(srv, run):
    def bad():
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        rs.starttls(srv)
        rs.open_stream()
        assert "<success" in rs.sasl_plain("dave", srv.users["dave"])
        rs.open_stream()
        rs.send("<message to='alice@localhost/healthy' type='chat'><body>prebind</body></message>")
        data, closed = rs.read_all(timeout=5)
        assert "prebind" not in data
        assert closed and stream_error_condition(data) == "not-authorized", data

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        await asyncio.to_thread(bad)
        await a.expect_none("message", lambda m: m["body"] == "prebind", 0.5)
        await still_healthy(a, b)
    run(scenario)


# ---------------------------------------------------------------- wrong password

def test_wrong_password_not_authorized_then_right_password_works(srv, run):
    def bad():
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        rs.starttls(srv)
        rs.open_stream()
        resp = rs.sasl_plain("carol", "definitely-wrong")
        assert re.search(r"<failure\b[^>]*xmlns=['\"]" + re.escape(NS_SASL)
                         + r"['\"][^>]*>\s*<not-authorized\s*/>", resp), resp
        ok, resp = rs.sasl_scram("carol", "also-wrong")
        assert not ok and "not-authorized" in resp, resp
        rs.close()
    with_healthy(srv, run, bad)   # with_healthy logs carol in with the right password


# ---------------------------------------------------------------- TLS downgrade

def _local_tls_server_accepts(ctx_client, server_cert, server_key, server_ctx_setup):
    """Self-check: can this client context complete a handshake against a permissive
    local server?  (So that a refusal by parleyd is parleyd's doing.)"""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(server_cert, server_key)
    server_ctx_setup(sctx)
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(1)
    ls.settimeout(5)
    result = {}

    def serve():
        try:
            c, _ = ls.accept()
            t = sctx.wrap_socket(c, server_side=True)
            result["version"] = t.version()
            t.close()
        except Exception as e:
            result["err"] = e

    th = threading.Thread(target=serve)
    th.start()
    try:
        s = socket.create_connection(ls.getsockname(), timeout=5)
        t = ctx_client.wrap_socket(s, server_hostname=DOMAIN)
        v = t.version()
        t.close()
        return v
    except Exception:
        return None
    finally:
        th.join(6)
        ls.close()


def _old_tls_ctx(srv):
    ctx = client_ctx(srv)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def test_tls10_tls11_client_refused(srv, run):
    def permissive(sctx):
        sctx.minimum_version = ssl.TLSVersion.TLSv1
        sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if _local_tls_server_accepts(_old_tls_ctx(srv), srv.cert, srv.key, permissive) is None:
        pytest.skip("this OpenSSL cannot speak TLS 1.0/1.1 at all; nothing to prove")

    def bad():
        for port_kind in ("starttls", "direct"):
            ctx = _old_tls_ctx(srv)
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                if port_kind == "direct":
                    s = socket.create_connection((HOST, srv.tls_port), timeout=5)
                    t = ctx.wrap_socket(s, server_hostname=DOMAIN)
                else:
                    rs = RawStream(srv.c2s_port)
                    rs.open_stream()
                    t = rs.starttls(srv, ctx)
                pytest.fail(f"{port_kind}: server negotiated {t.version()} {t.cipher()}")
    with_healthy(srv, run, bad)


def test_tls12_cbc_only_cipher_list_refused(srv, run):
    cbc = ("ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256:"
           "ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
           "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES256-SHA:AES128-SHA")

    def mk():
        ctx = client_ctx(srv)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cbc)
        return ctx

    def permissive(sctx):
        sctx.set_ciphers("ALL:@SECLEVEL=0")
    assert _local_tls_server_accepts(mk(), srv.cert, srv.key, permissive) == "TLSv1.2", \
        "self-check: CBC client could not talk to a permissive server"

    def bad():
        for port_kind in ("starttls", "direct"):
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                if port_kind == "direct":
                    s = socket.create_connection((HOST, srv.tls_port), timeout=5)
                    t = mk().wrap_socket(s, server_hostname=DOMAIN)
                else:
                    rs = RawStream(srv.c2s_port)
                    rs.open_stream()
                    t = rs.starttls(srv, mk())
                pytest.fail(f"{port_kind}: server negotiated {t.cipher()}")
    with_healthy(srv, run, bad)


# ---------------------------------------------------------------- connection storm

def test_2000_connections_opened_and_dropped(srv, run):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2300:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        except (ValueError, OSError):
            pytest.skip(f"cannot raise RLIMIT_NOFILE (hard={hard})")

    def bad():
        socks = []
        try:
            for i in range(2000):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.connect((HOST, srv.c2s_port))
                except BlockingIOError:
                    pass
                socks.append(s)
            time.sleep(0.5)
            for i, s in enumerate(socks):
                try:
                    if i % 3 == 0:
                        s.sendall(STREAM_HEADER.format(to=DOMAIN).encode())
                    elif i % 3 == 1:
                        # abortive close (RST)
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                except OSError:
                    pass
        finally:
            for s in socks:
                s.close()
        time.sleep(1.0)
        assert srv.alive(), "parleyd died"
        # the server still serves new raw logins
        rs, jid = raw_login(srv, "dave", "storm", timeout=10)
        assert jid == "dave@localhost/storm"
        rs.close()
    with_healthy(srv, run, bad, timeout=120)


# ---------------------------------------------------------------- STARTTLS injection

def test_starttls_command_injection_not_interpreted(srv, run):
    """Bytes pipelined after <starttls/> (before the handshake) must be discarded, never
    processed as if they had arrived inside TLS (CVE-2011-0411 class)."""
    def bad():
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        creds = base64.b64encode(b"\0dave\0" + srv.users["dave"].encode()).decode()
        injected = (STREAM_HEADER.format(to=DOMAIN)
                    + f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>"
                    + "<message to='alice@localhost/healthy' type='chat'><body>INJECTED</body></message>")
        rs.send(f"<starttls xmlns='{NS_TLS}'/>" + injected)
        try:
            rs.read_until(r"<proceed\b[^>]*/>|<proceed\b[^>]*>\s*</proceed>", timeout=5)
        except AssertionError:
            return "closed-before-proceed"
        leftover = rs.buf
        assert b"<success" not in leftover and b"<features" not in leftover, leftover
        rs.buf = b""
        try:
            tls = client_ctx(srv).wrap_socket(rs.sock, server_hostname=DOMAIN)
        except (ssl.SSLError, OSError):
            return "handshake-failed"     # injected bytes broke the handshake: fine
        rs.sock = rs.tls = tls
        # nothing may arrive unsolicited inside TLS: no stream header, no <success/>
        data, closed = rs.read_all(timeout=1.5)
        assert "<success" not in data and "<stream" not in data, \
            f"server acted on pre-TLS injected bytes: {data!r}"
        if closed:
            return "closed"
        # a fresh stream inside TLS starts unauthenticated
        feats = rs.open_stream()
        assert "<mechanisms" in feats and "xmpp-bind" not in feats, feats
        rs.close()
        return "discarded"

    async def scenario():
        cl, a, b = await healthy_pair(srv)
        outcome = await asyncio.to_thread(bad)
        await a.expect_none("message", lambda m: m["body"] == "INJECTED", 0.5)
        await still_healthy(a, b)
        return outcome
    run(scenario)


# ---------------------------------------------------------------- misc garbage

def test_binary_garbage_before_stream(srv, run):
    def bad():
        rs = RawStream(srv.c2s_port)
        rs.send(os.urandom(4096))
        data, closed = rs.read_all(timeout=5)
        assert closed, "connection not closed after binary garbage"
    with_healthy(srv, run, bad)


def test_stream_namespace_element_from_client_mid_session(srv, run):
    def bad():
        rs = authed_raw(srv)
        rs.send("<stream:features/>")
        data, closed = rs.read_all(timeout=5)
        assert closed and stream_error_condition(data) in ("unsupported-stanza-type",
                                                           "policy-violation", "bad-format"), data
    with_healthy(srv, run, bad)


def test_unknown_top_level_element_unsupported_stanza_type(srv, run):
    def bad():
        rs = authed_raw(srv)
        rs.send("<foo xmlns='jabber:client'/>")
        expect_stream_error(rs, "unsupported-stanza-type")
    with_healthy(srv, run, bad)


def test_connections_over_max_connections_refused(server, run):
    srv = server(extra=["max_connections = 6"])

    def bad():
        extra = []
        try:
            for _ in range(10):
                s = socket.create_connection((HOST, srv.c2s_port), timeout=5)
                extra.append(s)
            time.sleep(0.5)
            closed = 0
            for s in extra:
                s.settimeout(0.2)
                try:
                    s.sendall(STREAM_HEADER.format(to=DOMAIN).encode())
                    d = s.recv(4096)
                    if not d or b"<features" not in d and b"features" not in d:
                        # give it a moment: features may follow the header
                        s.settimeout(1.0)
                        more = s.recv(4096)
                        if not more:
                            closed += 1
                except (ConnectionResetError, BrokenPipeError):
                    closed += 1
                except socket.timeout:
                    pass
            # 2 healthy sessions + up to 4 more may be served; the rest must be refused
            assert closed >= 6, f"only {closed} of 10 excess connections refused"
        finally:
            for s in extra:
                s.close()
        time.sleep(0.5)
    # with_healthy also logs carol in afterwards (connections were released)
    with_healthy(srv, run, bad)
