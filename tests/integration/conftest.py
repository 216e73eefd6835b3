"""Integration test fixtures for parleyd.

Run with the Debian interpreter (it has python3-slixmpp and python3-pytest):

    PARLEY_BUILD=/work/main/build-it /usr/bin/python3 -m pytest tests/integration -q

Pieces:
  * ``server`` fixture: a factory ``server(extra=[...], users=...)`` that creates a fresh
    server directory with ``parleyctl init``, appends extra ``key = value`` lines to
    parleyd.conf, adds users and starts ``parleyd``.  At teardown the server gets SIGTERM
    and must exit 0 with no sanitizer report.
  * ``run`` fixture: runs an ``async def`` scenario in a fresh asyncio loop with a timeout;
    slixmpp clients are created inside it through ``Clients`` (``clients.login(...)``).
  * ``RawStream``: a blocking raw-socket XMPP stream for bad input and for protocol details
    slixmpp cannot express (STARTTLS, direct TLS, SASL PLAIN/SCRAM incl. channel binding).
"""
import asyncio
import base64
import hashlib
import hmac
import logging
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

import slixmpp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from testports import free_port  # noqa: E402,F401  (re-exported for tests)
from slixmpp.exceptions import IqError, IqTimeout  # noqa: F401  (re-exported for tests)

BUILD = os.environ.get("PARLEY_BUILD", "/work/main/build-test")
DOMAIN = "localhost"
HOST = "127.0.0.1"

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAM_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"

USERS = {
    "alice": "alice-Secret-1",
    "bob": "bob-Secret-2",
    "carol": "carol-Secret-3",
    "dave": "dave-Secret-4",
}

# Lots of sockets in a few tests (2,000 connections); the server inherits this limit.
try:
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    _want = min(_hard, 8192) if _hard != resource.RLIM_INFINITY else 8192
    if _soft < _want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))
except (ValueError, OSError):
    pass

logging.getLogger("slixmpp").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- server

def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    def __init__(self, root, extra=(), users=None, template=None):
        self.dir = str(root)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "parleyd.conf")
        self.ca = os.path.join(self.dir, "ca.crt")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.cert = os.path.join(self.dir, "server.crt")
        self.key = os.path.join(self.dir, "server.key")
        self.log_path = os.path.join(self.dir, "parleyd.log")
        self.parleyd = os.path.join(BUILD, "parleyd")
        self.parleyctl = os.path.join(BUILD, "parleyctl")
        self.proc = None
        self.logf = None
        self.users = dict(USERS if users is None else users)
        for b in (self.parleyd, self.parleyctl):
            if not os.access(b, os.X_OK):
                pytest.fail(f"{b} not built (set PARLEY_BUILD)")
        self.c2s_port = free_port()
        self.tls_port = free_port()
        while self.tls_port == self.c2s_port:
            self.tls_port = free_port()
        if template is not None and users is None:
            # copy of a directory made once per session by `parleyctl init` + `user add`
            # (saves the key generation and user creation for every test)
            shutil.rmtree(self.dir)
            shutil.copytree(template, self.dir)
            self.set_config([f"c2s_port = {self.c2s_port}", f"tls_port = {self.tls_port}"])
            if extra:
                self.set_config(extra)
            return
        self.ctl("init", "--dir", self.dir, "--domain", DOMAIN,
                 "--c2s-port", str(self.c2s_port), "--tls-port", str(self.tls_port),
                 "--https-port", "0", use_conf=False)
        if extra:
            self.set_config(extra)
        for user, pw in self.users.items():
            self.add_user(user, pw)

    def set_config(self, extra):
        """Apply `key = value` lines.  The generated parleyd.conf already sets most keys
        and the parser rejects duplicate keys, so an existing line is replaced; new keys
        are appended."""
        with open(self.conf) as f:
            lines = f.read().splitlines()
        for line in extra:
            key = line.split("=", 1)[0].strip()
            rx = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
            idx = [i for i, l in enumerate(lines) if rx.match(l)]
            if idx:
                lines[idx[0]] = line.strip()
                for i in reversed(idx[1:]):
                    del lines[i]
            else:
                lines.append(line.strip())
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    # parleyctl ------------------------------------------------------------
    def ctl(self, *args, use_conf=True, input=None, check=True, timeout=60):
        cmd = [self.parleyctl] + (["-c", self.conf] if use_conf else []) + list(args)
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                           env=self.env())
        if check and p.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def add_user(self, user, pw):
        pwfile = os.path.join(self.dir, f".pw-{user}")
        with open(pwfile, "w") as f:
            f.write(pw + "\n")
        os.chmod(pwfile, 0o600)
        self.ctl("user", "add", f"{user}@{DOMAIN}", "--password-file", pwfile)
        self.users[user] = pw

    # process ----------------------------------------------------------------
    def env(self):
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = f"detect_leaks=1:log_path={self.dir}/asan"
        env["UBSAN_OPTIONS"] = f"print_stacktrace=1:log_path={self.dir}/ubsan"
        return env

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.parleyd, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf, env=self.env(),
                                     cwd=self.dir)
        for port in (self.c2s_port, self.tls_port):
            if not wait_port(port, 10, self.proc):
                rc = self.proc.poll()
                pytest.fail(f"parleyd not listening on {port} within 10 s (exit={rc})\n"
                            + self.log_tail())
        return self

    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "---- parleyd.log (tail) ----\n" + "\n".join(lines[-n:])

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sanitizer_reports(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("asan") or name.startswith("ubsan"):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append(f"==== {name} ====\n{f.read()}")
        return out

    def stop(self, timeout=20):
        """SIGTERM; returns a list of problems (empty = clean)."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                problems.append(f"parleyd did not exit within {timeout}s of SIGTERM (killed)")
        rc = self.proc.returncode
        if rc != 0 and not problems:
            problems.append(f"parleyd exit code {rc} (expected 0 after SIGTERM)")
        reports = self.sanitizer_reports()
        if reports:
            problems.append("sanitizer reports:\n" + "\n".join(reports))
        if self.logf:
            self.logf.close()
            self.logf = None
        return problems


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def server_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template")
    Server(root / "srv")          # parleyctl init + the standard users; never started
    return str(root / "srv")


@pytest.fixture
def server(tmp_path, request, server_template):
    """Factory: server(extra=["max_stanza_size = 64K"], users=None, start=True)."""
    made = []

    def make(extra=(), users=None, start=True):
        srv = Server(tmp_path / f"srv{len(made)}", extra=extra, users=users,
                     template=server_template)
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
            print(srv.log_tail(120))
        problems += p
    if problems:
        pytest.fail("server teardown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def srv(server):
    """A default server with the standard users."""
    return server()


# --------------------------------------------------------------------------- slixmpp

class Client(slixmpp.ClientXMPP):
    """slixmpp client that records what it receives for polling assertions."""

    def __init__(self, jid, password, ca, mech="SCRAM-SHA-256", plugins=()):
        cfg = {"feature_mechanisms": {"use_mech": mech}} if mech else {}
        super().__init__(jid, password, plugin_config=cfg)
        self.ca_certs = ca
        self.auto_authorize = None
        self.auto_subscribe = False
        self.whitespace_keepalive = False
        for p in plugins:
            self.register_plugin(p)
        # slixmpp 1.8 only knows tls-unique; when it has a binding but uses a non-PLUS
        # mechanism it sends the 'y' GS2 flag, which a server that offers -PLUS must
        # reject (RFC 5802 s6).  Send 'n' (no channel binding support) instead.
        self.strip_channel_binding = True
        mechs = self["feature_mechanisms"]
        orig = mechs._default_credentials

        def creds(required, optional):
            c = orig(required, optional)
            if self.strip_channel_binding and "channel_binding" in c:
                c["channel_binding"] = b""
            return c

        mechs.sasl_callback = creds
        self.events = {k: [] for k in ("message", "message_error", "presence",
                                       "roster_push", "stream_error", "failed_auth",
                                       "disconnected")}
        self.session = None
        self.add_event_handler("message", lambda m: self.events["message"].append(m))
        self.add_event_handler("message_error",
                               lambda m: self.events["message_error"].append(m))
        self.add_event_handler("presence", lambda p: self.events["presence"].append(p))
        self.add_event_handler("stream_error",
                               lambda e: self.events["stream_error"].append(e))
        self.add_event_handler("failed_auth", lambda e: self.events["failed_auth"].append(e))
        self.add_event_handler("disconnected",
                               lambda e: self.events["disconnected"].append(e))
        self.add_event_handler("roster_update", self._roster_update)
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_all_auth", self._on_fail)
        self.add_event_handler("disconnected", self._on_fail)
        self.add_event_handler("connection_failed", self._on_fail)

    def _roster_update(self, iq):
        if iq["type"] == "set":
            self.events["roster_push"].append(iq)

    def _on_start(self, _):
        if self.session is not None and not self.session.done():
            self.session.set_result(True)

    def _on_fail(self, ev):
        if self.session is not None and not self.session.done():
            self.session.set_exception(LoginFailed(f"{self.boundjid}: {ev!r} "
                                                   f"stream_errors={self.stream_errors()} "
                                                   f"auth={self.auth_failures()}"))
            self.cancel_connection_attempt()

    def stream_errors(self):
        return [e["condition"] for e in self.events["stream_error"]]

    def auth_failures(self):
        return [f["condition"] for f in self.events["failed_auth"]]

    async def wait_for(self, kind, pred=lambda x: True, timeout=5.0, what=""):
        """Wait for (and consume) the first recorded event of `kind` matching pred."""
        deadline = time.monotonic() + timeout
        while True:
            lst = self.events[kind]
            for i, ev in enumerate(lst):
                if pred(ev):
                    del lst[i]
                    return ev
            if time.monotonic() >= deadline:
                seen = "\n  ".join(str(e) for e in lst[-10:])
                raise AssertionError(f"{self.boundjid}: no {kind} {what} within {timeout}s; "
                                     f"recorded:\n  {seen}")
            await asyncio.sleep(0.03)

    async def expect_none(self, kind, pred=lambda x: True, duration=1.0, what=""):
        """Assert that no event of `kind` matching pred arrives within `duration`."""
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            for ev in self.events[kind]:
                if pred(ev):
                    raise AssertionError(f"{self.boundjid}: unexpected {kind} {what}: {ev}")
            await asyncio.sleep(0.05)

    def clear(self, kind=None):
        for k in ([kind] if kind else self.events):
            self.events[k].clear()

    async def close(self, timeout=3):
        if self.transport is None:
            return
        try:
            await asyncio.wait_for(self.disconnect(wait=1), timeout)
        except (asyncio.TimeoutError, Exception):
            self.abort()

    def connected(self):
        return self.transport is not None


class LoginFailed(Exception):
    pass


class Clients:
    """Creates slixmpp clients against one server within the running loop."""

    def __init__(self, srv):
        self.srv = srv
        self.all = []

    def make(self, user, resource=None, password=None, mech="SCRAM-SHA-256", plugins=()):
        jid = f"{user}@{DOMAIN}" + (f"/{resource}" if resource else "")
        pw = self.srv.users.get(user, "x") if password is None else password
        c = Client(jid, pw, self.srv.ca, mech=mech, plugins=plugins)
        self.all.append(c)
        return c

    async def connect(self, c, direct_tls=False, timeout=10):
        c.session = asyncio.get_running_loop().create_future()
        port = self.srv.tls_port if direct_tls else self.srv.c2s_port
        c.connect((HOST, port), use_ssl=direct_tls, force_starttls=not direct_tls)
        try:
            await asyncio.wait_for(asyncio.shield(c.session), timeout)
        except asyncio.TimeoutError:
            c.cancel_connection_attempt()
            c.abort()
            raise LoginFailed(f"{c.boundjid}: no session within {timeout}s "
                              f"(stream_errors={c.stream_errors()} auth={c.auth_failures()})")
        return c

    async def login(self, user, resource=None, password=None, presence=True, priority=None,
                    roster=True, direct_tls=False, mech="SCRAM-SHA-256", plugins=(), timeout=10):
        c = self.make(user, resource, password, mech, plugins)
        await self.connect(c, direct_tls=direct_tls, timeout=timeout)
        if roster:
            await asyncio.wait_for(c.get_roster(), timeout)
        if presence:
            if priority is None:
                c.send_presence()
            else:
                c.send_presence(ppriority=priority)
            await asyncio.sleep(0.2)
        return c

    async def close_all(self):
        for c in self.all:
            try:
                c.cancel_connection_attempt()
                if c.transport is not None:
                    c.abort()
            except Exception:
                pass


@pytest.fixture
def run():
    """run(scenario_coroutine_function, *args, timeout=60) in a fresh event loop."""

    def _run(fn, *args, timeout=60):
        async def main():
            try:
                return await asyncio.wait_for(fn(*args), timeout)
            finally:
                for c in list(_current_clients):
                    await c.close_all()
                _current_clients.clear()
                await asyncio.sleep(0.05)

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(main())
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.wait(pending, timeout=3))
            finally:
                loop.close()
                asyncio.set_event_loop(None)

    return _run


_current_clients = []


def clients_for(srv):
    c = Clients(srv)
    _current_clients.append(c)
    return c


async def exchange(a, b, text=None, timeout=5):
    """a sends a chat message to b's full JID; b must receive it (proves both alive)."""
    text = text or f"ping-{os.urandom(4).hex()}"
    a.send_message(mto=b.boundjid.full, mbody=text, mtype="chat")
    msg = await b.wait_for("message", lambda m: m["body"] == text, timeout,
                           what=f"body={text!r}")
    assert msg["from"].bare == a.boundjid.bare
    return msg


async def healthy_pair(srv):
    """alice and bob logged in with slixmpp and exchanging messages."""
    cl = clients_for(srv)
    a = await cl.login("alice", "healthy")
    b = await cl.login("bob", "healthy")
    await exchange(a, b)
    return cl, a, b


async def still_healthy(a, b):
    assert a.connected(), f"healthy session {a.boundjid} was dropped: {a.stream_errors()}"
    assert b.connected(), f"healthy session {b.boundjid} was dropped: {b.stream_errors()}"
    await exchange(a, b)
    await exchange(b, a)


async def send_iq(c, to, payload_xml, itype="get", timeout=5):
    """Send an IQ with a raw payload; returns the result Iq or raises IqError."""
    iq = c.Iq()
    iq["type"] = itype
    if to is not None:
        iq["to"] = to
    if payload_xml is not None:
        iq.append(ET.fromstring(payload_xml))
    return await iq.send(timeout=timeout)


# --------------------------------------------------------------------------- raw sockets

def client_ctx(srv, **kw):
    ctx = ssl.create_default_context(cafile=srv.ca)
    ctx.check_hostname = True
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


STREAM_HEADER = ("<?xml version='1.0'?><stream:stream to='{to}' version='1.0' "
                 "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


class Closed(Exception):
    pass


class RawStream:
    """Blocking raw XMPP stream (plain, STARTTLS-upgraded or direct TLS)."""

    def __init__(self, port, timeout=5.0, sock=None, rcvbuf=None):
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((HOST, port))
        self.sock = sock
        self.timeout = timeout
        self.buf = b""        # unread data
        self.log = b""        # everything received (current TLS layer and before)
        self.eof = False
        self.tls = None

    @classmethod
    def direct_tls(cls, srv, ctx=None, timeout=5.0, alpn=True):
        ctx = ctx or client_ctx(srv)
        if alpn:
            try:
                ctx.set_alpn_protocols(["xmpp-client"])
            except NotImplementedError:
                pass
        s = socket.create_connection((HOST, srv.tls_port), timeout=timeout)
        t = ctx.wrap_socket(s, server_hostname=DOMAIN)
        rs = cls(srv.tls_port, timeout=timeout, sock=t)
        rs.tls = t
        return rs

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send_until_answered(self, data, chunk=8192):
        """Send in chunks, stopping as soon as the server says something or hangs up (so a
        stream error sent mid-upload is not lost to a TCP reset).  Returns bytes sent."""
        import select
        if isinstance(data, str):
            data = data.encode()
        sent = 0
        while sent < len(data):
            if self.tls is not None and self.tls.pending():
                break
            r, _, _ = select.select([self.sock], [], [], 0)
            if r:
                break
            try:
                self.sock.sendall(data[sent:sent + chunk])
            except OSError:
                break
            sent += chunk
            time.sleep(0.001)
        return min(sent, len(data))

    def _recv(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            d = b""
        if not d:
            self.eof = True
            raise Closed()
        self.buf += d
        self.log += d

    def read_until(self, pattern, timeout=None, flags=re.S):
        """Read until regex `pattern` (str) matches the unread buffer; consume through the
        match and return the consumed text.  AssertionError on timeout or EOF."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern, flags)
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out.decode("utf-8", "replace")
            try:
                self._recv(deadline)
            except socket.timeout:
                raise AssertionError(f"timeout ({timeout}s) waiting for {pattern!r}; "
                                     f"unread: {self.buf[-2000:]!r}")
            except Closed:
                m = rx.search(self.buf)
                if m:
                    continue
                raise AssertionError(f"connection closed waiting for {pattern!r}; "
                                     f"unread: {self.buf[-2000:]!r}")

    def read_all(self, timeout=None, max_bytes=64 << 20):
        """Read until EOF (returns (data, closed)); stops at timeout."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while len(self.buf) < max_bytes:
            try:
                self._recv(deadline)
            except socket.timeout:
                break
            except Closed:
                break
        out = self.buf
        self.buf = b""
        return out.decode("utf-8", "replace"), self.eof

    def wait_closed(self, timeout):
        """True if the peer closed the connection within timeout (data discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._recv(deadline)
            except socket.timeout:
                return self.eof
            except Closed:
                return True
            except OSError:
                return True
        return self.eof

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- protocol steps ----
    def open_stream(self, to=DOMAIN, header=None):
        """Send a stream header; return the features text."""
        self.send(header or STREAM_HEADER.format(to=to))
        self.read_until(r"<(\w+:)?stream\b[^>]*>")
        return self.read_until(r"</(\w+:)?features>")

    def starttls(self, srv, ctx=None):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        self.read_until(r"<proceed\b[^>]*/>|<proceed\b[^>]*>\s*</proceed>")
        assert self.buf == b"", f"data after <proceed/>: {self.buf!r}"
        ctx = ctx or client_ctx(srv)
        self.sock.settimeout(self.timeout)
        self.tls = ctx.wrap_socket(self.sock, server_hostname=DOMAIN)
        self.sock = self.tls
        return self.tls

    def sasl_plain(self, user, password, authzid=""):
        payload = base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        return self.read_until(r"<success\b[^>]*/>|<success\b.*?</success>|<failure\b.*?</failure>"
                               r"|</(\w+:)?stream>")

    def sasl_scram(self, user, password, mech="SCRAM-SHA-256", cb_flag="n", cb_data=b"",
                   tamper_proof=False):
        """Run SCRAM; returns (ok, last_server_text). Verifies the server signature."""
        hname = "sha256" if "SHA-256" in mech else "sha1"
        cnonce = base64.b64encode(os.urandom(18)).decode()
        gs2 = f"{cb_flag},,"
        bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={cnonce}"
        first = base64.b64encode((gs2 + bare).encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>{first}</auth>")
        resp = self.read_until(r"<challenge\b.*?</challenge>|<failure\b.*?</failure>"
                               r"|</(\w+:)?stream>")
        m = re.search(r"<challenge\b[^>]*>([^<]*)</challenge>", resp)
        if not m:
            return False, resp
        server_first = base64.b64decode(m.group(1)).decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(cnonce), f"server nonce does not extend ours: {server_first}"
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        assert iters >= 4096, f"SCRAM iteration count {iters} < 4096"
        salted = hashlib.pbkdf2_hmac(hname, password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", hname).digest()
        stored_key = hashlib.new(hname, client_key).digest()
        cbind = base64.b64encode(gs2.encode() + cb_data).decode()
        without_proof = f"c={cbind},r={attrs['r']}"
        auth_msg = f"{bare},{server_first},{without_proof}".encode()
        sig = hmac.new(stored_key, auth_msg, hname).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        if tamper_proof:
            proof = bytes([proof[0] ^ 1]) + proof[1:]
        final = base64.b64encode(
            f"{without_proof},p={base64.b64encode(proof).decode()}".encode()).decode()
        self.send(f"<response xmlns='{NS_SASL}'>{final}</response>")
        resp = self.read_until(r"<success\b[^>]*/>|<success\b.*?</success>|<failure\b.*?</failure>"
                               r"|<challenge\b.*?</challenge>|</(\w+:)?stream>")
        m = re.search(r"<success\b[^>]*>([^<]*)</success>", resp)
        if not m and not re.search(r"<challenge\b", resp):
            return False, resp
        if not m:
            # RFC 6120 allows the additional data in a final challenge
            data = re.search(r"<challenge\b[^>]*>([^<]*)</challenge>", resp).group(1)
            self.send(f"<response xmlns='{NS_SASL}'/>")
            resp += self.read_until(r"<success\b[^>]*/>|<success\b.*?</success>|<failure\b.*?</failure>")
            if "<success" not in resp:
                return False, resp
        else:
            data = m.group(1)
        server_final = base64.b64decode(data).decode()
        server_key = hmac.new(salted, b"Server Key", hname).digest()
        expect = base64.b64encode(hmac.new(server_key, auth_msg, hname).digest()).decode()
        assert server_final == f"v={expect}", f"bad server signature: {server_final!r}"
        return True, resp

    def bind(self, resource=None):
        inner = f"<resource>{resource}</resource>" if resource else ""
        self.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>")
        resp = self.read_until(r"<iq\b[^>]*\bid=['\"]bind1['\"].*?</iq>|<iq\b[^>]*\bid=['\"]bind1['\"][^>]*/>"
                               r"|</(\w+:)?stream>")
        m = re.search(r"<jid>([^<]+)</jid>", resp)
        assert m, f"bind failed: {resp}"
        return m.group(1)

    def login(self, srv, user, resource=None, mech="PLAIN", ctx=None, direct=False):
        """Full raw login on this (plain, c2s) stream: STARTTLS, SASL, bind."""
        if not direct:
            feats = self.open_stream()
            assert "starttls" in feats, feats
            self.starttls(srv, ctx)
        self.open_stream()
        if mech == "PLAIN":
            resp = self.sasl_plain(user, srv.users[user])
            ok = "<success" in resp
        else:
            ok, resp = self.sasl_scram(user, srv.users[user], mech)
        assert ok, f"raw login of {user} failed: {resp}"
        feats = self.open_stream()
        jid = self.bind(resource)
        if "urn:ietf:params:xml:ns:xmpp-session" in feats and "<optional" not in feats:
            self.send("<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
            self.read_until(r"<iq\b[^>]*\bid=['\"]sess1['\"]")
        return jid


def raw_login(srv, user, resource=None, rcvbuf=None, timeout=5.0):
    rs = RawStream(srv.c2s_port, timeout=timeout, rcvbuf=rcvbuf)
    jid = rs.login(srv, user, resource)
    return rs, jid


def stream_error_condition(text):
    """The defined condition of the first stream error in text, or None."""
    m = re.search(r"<(?:\w+:)?error\b[^>]*>(.*?)</(?:\w+:)?error>", text, re.S)
    if not m:
        return None
    m2 = re.search(r"<([a-z-]+)\b[^>]*xmlns=['\"]" + re.escape(NS_STREAM_ERR), m.group(1))
    return m2.group(1) if m2 else None


def expect_stream_error(rs, condition, timeout=5.0):
    """Read until the stream is closed; assert a stream error with `condition` was sent
    and the server closed the connection.  Returns everything read."""
    data, closed = rs.read_all(timeout=timeout)
    got = stream_error_condition(data)
    assert got == condition, (f"expected <{condition}/> stream error, got {got!r}; "
                              f"closed={closed}; data: {data[-1500:]!r}")
    assert closed, f"server sent <{condition}/> but did not close the connection"
    # RFC 6120 4.9.1.1: a stream header precedes the error even when the client's header
    # was bad; 4.4: the stream is closed with the closing tag.
    assert re.search(rb"<(\w+:)?stream\b", rs.log), f"no stream header before the error: {rs.log[:500]!r}"
    tail = data[data.find("error"):]
    assert re.search(r"</(\w+:)?stream>", tail), f"stream error not followed by </stream:stream>: {tail!r}"
    return data


def tls_server_end_point(der_cert):
    """RFC 5929 tls-server-end-point: hash of the DER certificate with its signature
    hash (SHA-256 if that is MD5/SHA-1)."""
    try:
        from cryptography import x509
        cert = x509.load_der_x509_certificate(der_cert)
        alg = cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else "sha256"
    except Exception:
        alg = "sha256"
    if alg in ("md5", "sha1"):
        alg = "sha256"
    return hashlib.new(alg, der_cert).digest()
