"""TLS handshakes on the handshake threads (tls_threads, src/server/tls_pool.c): many
concurrent logins over direct TLS and STARTTLS, stalled or garbage-speaking clients that
must not hold anyone else up, the handshake timeout while a handshake is on a thread,
shutdown with handshakes in flight, TLS 1.3 resumption, and tls_threads = 0, where a
burst of handshakes must not hold up the established sessions."""
import os
import select
import signal
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import DOMAIN, HOST, RawStream, client_ctx


def login(srv, i, direct, ctx=None, timeout=30.0):
    """One complete login (TLS, SASL PLAIN, bind); returns the bound JID."""
    user = ("alice", "bob", "carol", "dave")[i % 4]
    if direct:
        rs = RawStream.direct_tls(srv, ctx=ctx, timeout=timeout)
        try:
            return rs.login(srv, user, f"r{i}", direct=True)
        finally:
            rs.close()
    rs = RawStream(srv.c2s_port, timeout=timeout)
    try:
        return rs.login(srv, user, f"r{i}", ctx=ctx)
    finally:
        rs.close()


def many_logins(srv, n, workers=50, direct=None):
    """n logins from `workers` threads at once; direct None alternates the two ports.
    Returns the list of failures (empty when all succeeded)."""
    def one(i):
        d = (i % 2 == 0) if direct is None else direct
        try:
            jid = login(srv, i, d)
            want = f"{('alice', 'bob', 'carol', 'dave')[i % 4]}@{DOMAIN}/r{i}"
            return None if jid == want else f"login {i}: bound {jid}, wanted {want}"
        except Exception as e:  # noqa: BLE001  (collected and reported below)
            return f"login {i} ({'direct TLS' if d else 'STARTTLS'}): {e!r}"[:300]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return [r for r in ex.map(one, range(n)) if r]


def client_hello(ctx=None):
    """A real ClientHello, as the first flight of a client made from ctx."""
    out = ssl.MemoryBIO()
    obj = (ctx or ssl.create_default_context()).wrap_bio(ssl.MemoryBIO(), out,
                                                          server_hostname=DOMAIN)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert len(hello) > 100, hello
    return hello


def client_hello_start():
    """The first bytes of a real ClientHello (a client that stops mid-handshake)."""
    hello = client_hello()
    return hello[:len(hello) // 2]


def stalled_clients(srv, n_silent=5, n_half=5, n_starttls=3):
    """Clients that never finish their handshake: silent after connecting, half a
    ClientHello, and STARTTLS clients that stop after <proceed/>."""
    socks = []
    half = client_hello_start()
    for _ in range(n_silent):
        socks.append(socket.create_connection((HOST, srv.tls_port), timeout=5))
    for _ in range(n_half):
        s = socket.create_connection((HOST, srv.tls_port), timeout=5)
        s.sendall(half)
        socks.append(s)
    for _ in range(n_starttls):
        rs = RawStream(srv.c2s_port)
        rs.open_stream()
        rs.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        rs.read_until(r"<proceed\b[^>]*/>")
        socks.append(rs.sock)
    return socks


def closed_within(sock, timeout):
    """True if the server closed sock (EOF or reset) within timeout; data is discarded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            return False
        except OSError:
            return True
    return False


def test_200_concurrent_logins_on_two_threads(server):
    srv = server(extra=["tls_threads = 2"])
    assert "TLS handshakes on 2 threads" in srv.log_text()
    failures = many_logins(srv, 200)
    assert not failures, f"{len(failures)} of 200 logins failed: {failures[:5]}"
    assert srv.alive()


def test_direct_tls_and_starttls_both_work_on_threads(server):
    srv = server(extra=["tls_threads = 2"])
    for direct in (True, False):
        failures = many_logins(srv, 20, workers=10, direct=direct)
        assert not failures, failures[:5]
    # The connection works after the handshake, in both directions and at length.
    rs = RawStream.direct_tls(srv)
    rs.login(srv, "alice", "long", direct=True)
    body = "x" * 100000
    rs.send(f"<message to='alice@{DOMAIN}/long' type='chat' id='m1'><body>{body}</body></message>")
    got = rs.read_until(r"<message\b.*?</message>", timeout=10)
    assert body in got
    rs.close()


def test_stalled_and_garbage_clients_do_not_delay_others(server):
    # One handshake thread: it must multiplex, so a stalled handshake cannot hold it.
    # handshake_timeout bounds the whole login: long enough for the others' logins on a
    # busy machine, short enough to see the stalled ones closed by it.
    srv = server(extra=["tls_threads = 1", "handshake_timeout = 12"])
    stalled = stalled_clients(srv)
    garbage = []
    for payload in (b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\x00\x05hello", os.urandom(600)):
        s = socket.create_connection((HOST, srv.tls_port), timeout=5)
        s.sendall(payload)
        garbage.append(s)
    try:
        # Everyone else logs in while those wait (generous bounds, no timing claims).
        failures = many_logins(srv, 40, workers=20)
        assert not failures, failures[:5]
        # A garbage speaker is refused at once: an alert and a close, logged.
        for s in garbage:
            assert closed_within(s, 10), "garbage-speaking client not closed"
        assert "TLS handshake failed" in srv.log_text()
        # Stalled handshakes end at handshake_timeout, on the thread or not.
        for s in stalled:
            assert closed_within(s, 40), "stalled handshake not closed by the timeout"
        # Still serving afterwards.
        assert login(srv, 7, True) == f"dave@{DOMAIN}/r7"
    finally:
        for s in stalled + garbage:
            s.close()


def test_shutdown_with_handshakes_in_flight(server):
    """SIGTERM while handshakes sit on the threads: a clean exit (code 0, and under ASan
    no leak of the abandoned SSL objects or connections; the fixture checks both)."""
    srv = server(extra=["tls_threads = 2"])
    stalled = stalled_clients(srv, n_silent=6, n_half=6, n_starttls=2)
    try:
        assert login(srv, 1, True) == f"bob@{DOMAIN}/r1"
        problems = srv.stop()
        assert not problems, problems
        for s in stalled:
            assert closed_within(s, 5)
    finally:
        for s in stalled:
            s.close()


def test_tls13_ticket_resumes_on_threads(server):
    srv = server(extra=["tls_threads = 2"])
    ctx = client_ctx(srv)
    rs = RawStream.direct_tls(srv, ctx=ctx)
    rs.login(srv, "alice", "first", direct=True)  # the ticket arrives with the first records
    session = rs.tls.session
    assert not rs.tls.session_reused
    rs.close()
    assert session is not None and session.has_ticket, "no TLS 1.3 ticket received"
    s = socket.create_connection((HOST, srv.tls_port), timeout=10)
    t = ctx.wrap_socket(s, server_hostname=DOMAIN, session=session)
    assert t.session_reused, "TLS 1.3 resumption did not resume"
    rs2 = RawStream(srv.tls_port, timeout=10, sock=t)
    rs2.tls = t
    assert rs2.login(srv, "alice", "second", direct=True) == f"alice@{DOMAIN}/second"
    rs2.close()


def test_tls_threads_zero_handshakes_in_the_loop(server):
    srv = server(extra=["tls_threads = 0"])
    assert "TLS handshakes on" not in srv.log_text()
    assert "TLS handshakes in the event loop" in srv.log_text()
    failures = many_logins(srv, 40, workers=10)
    assert not failures, failures[:5]


def test_default_is_one_thread_per_cpu(server):
    srv = server()
    n = len(os.sched_getaffinity(0))
    assert f"TLS handshakes on {n} thread{'' if n == 1 else 's'}" in srv.log_text()
    assert login(srv, 2, False) == f"carol@{DOMAIN}/r2"


def test_default_counts_only_the_cpus_parleyd_may_run_on(server):
    """Under taskset or a container's cpuset parleyd starts one handshake thread per CPU
    it may use, not one per CPU of the machine."""
    mine = os.sched_getaffinity(0)
    if len(mine) < 2:
        pytest.skip("needs a machine with two CPUs to restrict parleyd to one")
    os.sched_setaffinity(0, {min(mine)})  # this thread only; parleyd inherits it
    try:
        srv = server()
    finally:
        os.sched_setaffinity(0, mine)
    assert "TLS handshakes on 1 thread" in srv.log_text()
    assert "TLS handshakes on 1 threads" not in srv.log_text()
    assert not many_logins(srv, 8, workers=4)


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for_fds(pid, at_least, timeout=10.0):
    """Until process pid has at least that many open files (bounded in time)."""
    deadline = time.monotonic() + timeout
    while open_files(pid) < at_least:
        assert time.monotonic() < deadline, "parleyd did not accept the connections"
        time.sleep(0.02)


def test_a_burst_of_80_client_hellos_does_not_hold_up_an_established_session(server):
    """With the handshakes in the event loop, 80 ClientHellos that arrive together (each
    costs an RSA-2048 signature) are not all answered before an established session's
    ping that arrived just after them: the loop gives handshakes a few milliseconds
    per iteration and serves the ping in between. parleyd is stopped while the input
    queues up, so the burst is the same on any machine; what is counted is order (how
    many ServerHellos were out when the pong arrived), not time."""
    srv = server(extra=["tls_threads = 0"])
    alice = RawStream.direct_tls(srv, timeout=30)
    alice.login(srv, "alice", "ping", direct=True)
    fds_before = open_files(srv.pid())
    storm = [socket.create_connection((HOST, srv.tls_port), timeout=30) for _ in range(80)]
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["xmpp-client"])
    hellos = [client_hello(ctx) for _ in storm]
    try:
        wait_for_fds(srv.pid(), fds_before + len(storm))  # all accepted, waiting for input
        os.kill(srv.pid(), signal.SIGSTOP)
        try:
            for sock, hello in zip(storm, hellos):
                sock.sendall(hello)
            alice.send(f"<iq type='get' id='burst-ping' to='{DOMAIN}'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>")
        finally:
            os.kill(srv.pid(), signal.SIGCONT)
        alice.read_until(r"<iq\b[^>]*id=['\"]burst-ping", timeout=60)
        answered = len(select.select(storm, [], [], 0)[0])
        assert answered < len(storm) // 2, (
            f"{answered} of {len(storm)} handshakes were answered before the ping")
        # The others are answered too, and the server stays up.
        for sock in storm:
            sock.settimeout(30)
            assert sock.recv(5)[:1] == b"\x16", "no ServerHello"
        assert srv.alive()
    finally:
        for sock in storm:
            sock.close()
        alice.close()
