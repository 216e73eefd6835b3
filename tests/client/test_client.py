"""The `parley` command (and libparley under it) against real servers.

Run with the Debian interpreter (python3-pytest, python3-slixmpp):

    PARLEY_BUILD=/work/main/build /usr/bin/python3 -m pytest -q tests/client

PARLEY_BUILD holds parleyd, parleyctl and parley (PARLEY_CLIENT may point at another
`parley`).  Servers: a fresh parleyd per test (parleyctl init + users), a real Prosody
(Debian package `prosody`, run in the foreground from a temporary directory with its own
configuration, on loopback), and small scripted fake servers for the policy refusals.
Everything listens on 127.0.0.1 and every wait is bounded.
"""
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from testports import free_port  # noqa: E402

BUILD = os.environ.get("PARLEY_BUILD", "/work/main/build")
PARLEY = os.environ.get("PARLEY_CLIENT", os.path.join(BUILD, "parley"))
HOST = "127.0.0.1"
DOMAIN = "localhost"
USERS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}
EXIT = {"ok": 0, "usage": 1, "unreachable": 2, "certificate": 3, "auth": 4, "policy": 5,
        "timeout": 6, "protocol": 7}

logging.getLogger("slixmpp").setLevel(logging.WARNING)


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


def sanitizer_env(d):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = f"detect_leaks=1:log_path={d}/asan-client"
    env["UBSAN_OPTIONS"] = f"print_stacktrace=1:log_path={d}/ubsan-client"
    return env


# --------------------------------------------------------------------------- servers

class Parleyd:
    def __init__(self, root):
        self.dir = str(root)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "parleyd.conf")
        self.ca = os.path.join(self.dir, "ca.crt")
        self.c2s_port, self.tls_port = free_port(), free_port()
        while self.tls_port == self.c2s_port:
            self.tls_port = free_port()
        self.proc = None
        self.log = None
        self.ctl("init", "--dir", self.dir, "--domain", DOMAIN, "--c2s-port", str(self.c2s_port),
                 "--tls-port", str(self.tls_port), "--https-port", "0", conf=False)
        self.pwfiles = {}
        for user, pw in USERS.items():
            f = os.path.join(self.dir, f"{user}.pw")
            with open(f, "w") as fh:
                fh.write(pw + "\n")
            os.chmod(f, 0o600)
            self.pwfiles[user] = f
            self.ctl("user", "add", f"{user}@{DOMAIN}", "--password-file", f)

    def ctl(self, *args, conf=True):
        cmd = [os.path.join(BUILD, "parleyctl")] + (["-c", self.conf] if conf else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"{cmd}: {p.stdout}{p.stderr}"

    def start(self):
        self.log = open(os.path.join(self.dir, "parleyd.log"), "ab")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = f"detect_leaks=1:log_path={self.dir}/asan"
        self.proc = subprocess.Popen([os.path.join(BUILD, "parleyd"), "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     cwd=self.dir, env=env)
        for port in (self.c2s_port, self.tls_port):
            assert wait_port(port, 10, self.proc), "parleyd did not start"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.log:
            self.log.close()
            self.log = None

    def account(self, user, direct_tls=False):
        port = self.tls_port if direct_tls else self.c2s_port
        args = ["--jid", f"{user}@{DOMAIN}", "--password-file", self.pwfiles[user],
                "--ca-file", self.ca, "--server", f"{HOST}:{port}"]
        return args + (["--direct-tls"] if direct_tls else [])


@pytest.fixture
def parleyd(tmp_path):
    for b in ("parleyd", "parleyctl"):
        if not os.access(os.path.join(BUILD, b), os.X_OK):
            pytest.fail(f"{BUILD}/{b} not built (set PARLEY_BUILD)")
    if not os.access(PARLEY, os.X_OK):
        pytest.fail(f"{PARLEY} not built (set PARLEY_BUILD or PARLEY_CLIENT)")
    srv = Parleyd(tmp_path / "parleyd").start()
    yield srv
    srv.stop()
    reports = [n for n in os.listdir(srv.dir) if n.startswith(("asan", "ubsan"))]
    for n in reports:
        with open(os.path.join(srv.dir, n)) as f:
            print(f.read())
    assert not reports, f"sanitizer reports: {reports}"


PROSODY_CFG = """\
-- generated by tests/client/test_client.py
run_as_root = {run_as_root}
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/cert"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ {tls} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
admin_socket = "{dir}/prosody.sock"
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "offline", "posix" }}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
c2s_require_encryption = true
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{dir}/prosody.log" }} }}
ssl = {{ certificate = "{dir}/cert/server.crt", key = "{dir}/cert/server.key" }}
c2s_direct_tls_ssl = {{ certificate = "{dir}/cert/server.crt", key = "{dir}/cert/server.key" }}
VirtualHost "localhost"
  ssl = {{ certificate = "{dir}/cert/server.crt", key = "{dir}/cert/server.key" }}
"""


class Prosody:
    """A real Prosody on loopback: its own config and data in a temp dir, the
    certificate from `parleyctl init` of another directory."""

    def __init__(self, root):
        self.dir = str(root)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        certdir = os.path.join(self.dir, "cert")
        subprocess.run([os.path.join(BUILD, "parleyctl"), "init", "--dir", certdir, "--domain",
                        DOMAIN, "--c2s-port", "1", "--tls-port", "2", "--https-port", "0"],
                       check=True, capture_output=True, timeout=60)
        self.ca = os.path.join(certdir, "ca.crt")
        self.c2s_port, self.tls_port = free_port(), free_port()
        self.cfg = os.path.join(self.dir, "prosody.cfg.lua")
        # Prosody refuses to run as root unless told to; as another user it just runs.
        with open(self.cfg, "w") as f:
            f.write(PROSODY_CFG.format(dir=self.dir, c2s=self.c2s_port, tls=self.tls_port,
                                       run_as_root="true" if os.getuid() == 0 else "false"))
        self.pwfiles = {}
        for user, pw in USERS.items():
            p = subprocess.run(["prosodyctl", "--config", self.cfg, "register", user, DOMAIN, pw],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stdout + p.stderr
            pwf = os.path.join(self.dir, f"{user}.pw")
            with open(pwf, "w") as fh:
                fh.write(pw + "\n")
            self.pwfiles[user] = pwf
        self.out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen(["prosody", "--config", self.cfg, "-F"], stdout=self.out,
                                     stderr=self.out, stdin=subprocess.DEVNULL, cwd=self.dir)
        for port in (self.c2s_port, self.tls_port):
            if not wait_port(port, 15, self.proc):
                self.stop()
                pytest.fail("prosody did not start:\n" + self.log_tail())

    def log_tail(self):
        out = []
        for n in ("stdout.log", "prosody.log"):
            try:
                with open(os.path.join(self.dir, n), errors="replace") as f:
                    out.append(f.read()[-3000:])
            except OSError:
                pass
        return "\n".join(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.out.close()

    def account(self, user, direct_tls=False):
        port = self.tls_port if direct_tls else self.c2s_port
        args = ["--jid", f"{user}@{DOMAIN}", "--password-file", self.pwfiles[user],
                "--ca-file", self.ca, "--server", f"{HOST}:{port}"]
        return args + (["--direct-tls"] if direct_tls else [])


@pytest.fixture
def prosody(tmp_path):
    if not shutil.which("prosody") or not shutil.which("prosodyctl"):
        pytest.fail("prosody is not installed (apt-get install prosody; scripts/deps.sh test)")
    srv = Prosody(tmp_path / "prosody")
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- the client

def parley(*args, timeout=30, env_dir=None):
    env = sanitizer_env(env_dir) if env_dir else None
    return subprocess.run([PARLEY] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env)


class Listener:
    """`parley listen` in the background; waits until it is signed in."""

    def __init__(self, account, *extra, count=1, timeout=20, env_dir=None):
        args = [PARLEY, "listen", "--count", str(count), "--timeout", str(timeout)] + list(extra)
        env = sanitizer_env(env_dir) if env_dir else None
        self.proc = subprocess.Popen(args + account, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.err_lines = []
        self._ready = threading.Event()
        self._t = threading.Thread(target=self._read_err, daemon=True)
        self._t.start()

    def _read_err(self):
        for line in self.proc.stderr:
            self.err_lines.append(line)
            if "listening as" in line:
                self._ready.set()

    def wait_ready(self, timeout=15):
        assert self._ready.wait(timeout), "listener not ready: " + "".join(self.err_lines)

    def wait_stderr(self, text, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in l for l in self.err_lines):
                return
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} on stderr: {''.join(self.err_lines)}")

    def finish(self, timeout=30):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=5)
            raise AssertionError("listener did not exit: " + "".join(self.err_lines))
        self._t.join(5)
        msgs = [json.loads(l) for l in out.splitlines() if l.strip()]
        return self.proc.returncode, msgs

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=5)


def assert_sent(r):
    assert r.returncode == 0, f"send exited {r.returncode}: {r.stderr}"


# --------------------------------------------------------------------------- parleyd

TRICKY = 'quote " backslash \\ newline\n tab\t <xml>&amp; caf\u00e9 \u2603 \U0001F600 \u2028'


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_send_reaches_listen(parleyd, direct_tls, tmp_path):
    lis = Listener(parleyd.account("bob", direct_tls), env_dir=str(tmp_path))
    try:
        lis.wait_ready()
        r = parley("send", "--to", f"bob@{DOMAIN}", "--message", TRICKY,
                   *parleyd.account("alice", direct_tls), env_dir=str(tmp_path))
        assert_sent(r)
        rc, msgs = lis.finish()
    finally:
        lis.kill()
    assert rc == 0, "".join(lis.err_lines)
    assert len(msgs) == 1
    m = msgs[0]
    assert set(m) >= {"from", "to", "type", "id", "body", "encrypted", "tls"}
    assert m["from"].startswith(f"alice@{DOMAIN}/")
    assert m["to"].startswith(f"bob@{DOMAIN}")
    assert m["type"] == "chat"
    assert m["body"] == TRICKY
    # both are Parley clients under the default policy: end-to-end encrypted (OMEMO)
    assert m["encrypted"] is True
    assert m["tls"] == "TLSv1.3 TLS_AES_256_GCM_SHA384"
    assert m["id"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(("asan-client", "ubsan-client"))]


def test_listen_prints_several_and_counts(parleyd):
    lis = Listener(parleyd.account("bob"), count=3)
    try:
        lis.wait_ready()
        for i in range(3):
            assert_sent(parley("send", "--to", f"bob@{DOMAIN}", "--message", f"m{i}",
                               *parleyd.account("alice")))
        rc, msgs = lis.finish()
    finally:
        lis.kill()
    assert rc == 0
    assert [m["body"] for m in msgs] == ["m0", "m1", "m2"]


def test_listen_timeout_exit_code(parleyd):
    lis = Listener(parleyd.account("bob"), count=1, timeout=1.5)
    lis.wait_ready()
    rc, msgs = lis.finish()
    assert rc == EXIT["timeout"] and msgs == []
    # without --count, listening for the whole time is a success
    r = subprocess.run([PARLEY, "listen", "--timeout", "1"] + parleyd.account("bob"),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr


def test_offline_message_delivered_to_listen(parleyd):
    assert_sent(parley("send", "--to", f"bob@{DOMAIN}", "--message", "while away",
                       *parleyd.account("alice")))
    r = subprocess.run([PARLEY, "listen", "--count", "1", "--timeout", "10"] +
                       parleyd.account("bob"), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[0])["body"] == "while away"


def test_tls_info(parleyd):
    r = parley("tls-info", *parleyd.account("alice"))
    assert r.returncode == 0, r.stderr
    assert "TLSv1.3" in r.stdout
    assert "TLS_AES_256_GCM_SHA384" in r.stdout
    assert "key bits:        256" in r.stdout
    assert "verified:        yes" in r.stdout
    assert "SCRAM-SHA-256-PLUS" in r.stdout
    r = parley("tls-info", "--json", *parleyd.account("alice", direct_tls=True))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["protocol"] == "TLSv1.3"
    assert "AES_256_GCM" in info["cipher"] and info["key_bits"] == 256
    assert info["verified"] is True
    assert info["sasl"] == "SCRAM-SHA-256-PLUS"
    assert info["channel_binding"] == "tls-exporter"


def test_wrong_password_is_exit_4(parleyd, tmp_path):
    bad = tmp_path / "bad.pw"
    bad.write_text("not-the-password\n")
    args = parleyd.account("alice")
    args[args.index("--password-file") + 1] = str(bad)
    r = parley("send", "--to", f"bob@{DOMAIN}", "--message", "x", *args)
    assert r.returncode == EXIT["auth"], r.stderr
    assert "not-authorized" in r.stderr


def test_wrong_ca_is_exit_3(parleyd, tmp_path):
    other = Parleyd(tmp_path / "other")  # a different CA, never started
    for direct in (False, True):
        args = parleyd.account("alice", direct)
        args[args.index("--ca-file") + 1] = other.ca
        r = parley("send", "--to", f"bob@{DOMAIN}", "--message", "x", *args)
        assert r.returncode == EXIT["certificate"], r.stderr
        assert "certificate" in r.stderr


def test_wrong_domain_in_certificate_is_exit_3(parleyd, tmp_path):
    # the server's certificate names "localhost"; connecting for another domain must fail
    # verification even though the chain is fine (RFC 6125): the server then never sees
    # the stream (direct TLS checks the name before any XML).
    args = parleyd.account("alice", direct_tls=True)
    args[args.index("--jid") + 1] = "alice@example.org"
    r = parley("tls-info", *args)
    assert r.returncode == EXIT["certificate"], r.stderr


def test_nothing_listening_is_exit_2(parleyd):
    args = parleyd.account("alice")
    args[args.index("--server") + 1] = f"{HOST}:{free_port()}"
    r = parley("send", "--to", f"bob@{DOMAIN}", "--message", "x", *args)
    assert r.returncode == EXIT["unreachable"], r.stderr
    assert "refused" in r.stderr.lower()


def test_server_list_tries_each_address(parleyd):
    args = parleyd.account("alice")
    dead = free_port()
    args[args.index("--server") + 1] = f"{HOST}:{dead},{HOST}:{parleyd.c2s_port}"
    r = parley("tls-info", *args)
    assert r.returncode == 0, r.stderr
    assert f"{HOST}:{parleyd.c2s_port}" in r.stdout


def test_silent_server_is_exit_6(tmp_path):
    s = socket.socket()
    s.bind((HOST, 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        pw = tmp_path / "pw"
        pw.write_text("x\n")
        t0 = time.monotonic()
        r = parley("send", "--timeout", "1.5", "--to", "bob@localhost", "--message", "x",
                   "--jid", "alice@localhost", "--password-file", str(pw),
                   "--server", f"{HOST}:{port}")
        assert r.returncode == EXIT["timeout"], r.stderr
        assert time.monotonic() - t0 < 10
    finally:
        s.close()


def test_usage_errors_are_exit_1(parleyd, tmp_path):
    assert parley().returncode == EXIT["usage"]
    assert parley("bogus").returncode == EXIT["usage"]
    assert parley("send", "--to", "bob@localhost").returncode == EXIT["usage"]
    assert parley("send", "--to", "b@l", "--message", "m", "--jid", "alice@localhost",
                  "--password-file", "/nonexistent").returncode == EXIT["usage"]
    assert parley("listen", "--config", str(tmp_path / "missing.conf")).returncode == EXIT["usage"]
    h = parley("--help")
    assert h.returncode == 0
    for word in ("send", "listen", "tls-info", "Exit codes", "4 authentication"):
        assert word in h.stdout


def test_config_file(parleyd, tmp_path):
    conf = tmp_path / "parley.conf"
    conf.write_text(f"# alice\njid = alice@{DOMAIN}\npassword_file = {parleyd.pwfiles['alice']}\n"
                    f"ca_file = {parleyd.ca}\nserver = {HOST}:{parleyd.tls_port}\n"
                    "direct_tls = true\n")
    r = parley("tls-info", "--config", str(conf))
    assert r.returncode == 0, r.stderr
    # the default location, through XDG_CONFIG_HOME
    (tmp_path / "xdg" / "parley").mkdir(parents=True)
    shutil.copy(conf, tmp_path / "xdg" / "parley" / "parley.conf")
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    r = subprocess.run([PARLEY, "send", "--to", f"bob@{DOMAIN}", "--message", "cfg"],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr


def test_listen_reconnects_after_server_restart(parleyd):
    lis = Listener(parleyd.account("bob"), count=1, timeout=40)
    try:
        lis.wait_ready()
        parleyd.stop()
        lis.wait_stderr("reconnecting in", timeout=15)
        parleyd.start()
        # the listener signs in again (its second "listening as" line)
        deadline = time.monotonic() + 20
        while sum("listening as" in l for l in lis.err_lines) < 2:
            assert time.monotonic() < deadline, "".join(lis.err_lines)
            time.sleep(0.1)
        assert_sent(parley("send", "--to", f"bob@{DOMAIN}", "--message", "after restart",
                           *parleyd.account("alice")))
        rc, msgs = lis.finish()
    finally:
        lis.kill()
    assert rc == 0, "".join(lis.err_lines)
    assert msgs[0]["body"] == "after restart"


def test_keepalive_detects_a_dead_server(parleyd):
    lis = Listener(parleyd.account("bob"), "--keepalive", "1", count=1, timeout=40)
    try:
        lis.wait_ready()
        parleyd.proc.send_signal(signal.SIGSTOP)  # connection open, nobody answering
        try:
            lis.wait_stderr("keep-alive", timeout=10)
        finally:
            parleyd.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 20
        while sum("listening as" in l for l in lis.err_lines) < 2:
            assert time.monotonic() < deadline, "".join(lis.err_lines)
            time.sleep(0.1)
        assert_sent(parley("send", "--to", f"bob@{DOMAIN}", "--message", "alive",
                           *parleyd.account("alice")))
        rc, msgs = lis.finish()
    finally:
        lis.kill()
    assert rc == 0
    assert msgs[0]["body"] == "alive"


# --------------------------------------------------------------------------- slixmpp peer

def test_interop_with_slixmpp(parleyd):
    import slixmpp

    class Bob(slixmpp.ClientXMPP):
        def __init__(self):
            super().__init__(f"bob@{DOMAIN}/slix", USERS["bob"],
                             plugin_config={"feature_mechanisms": {"use_mech": "SCRAM-SHA-256"}})
            self.ca_certs = parleyd.ca
            self.got = []
            self.ready = asyncio.get_event_loop().create_future()
            mechs = self["feature_mechanisms"]
            orig = mechs._default_credentials

            def creds(required, optional):
                c = orig(required, optional)
                c.pop("channel_binding", None)  # slixmpp only knows tls-unique
                return c

            mechs.sasl_callback = creds
            self.add_event_handler("session_start", self.start)
            self.add_event_handler("message", lambda m: self.got.append(m))

        async def start(self, _):
            self.send_presence()
            await self.get_roster()
            if not self.ready.done():
                self.ready.set_result(True)

    async def scenario():
        bob = Bob()
        bob.connect((HOST, parleyd.c2s_port), force_starttls=True)
        await asyncio.wait_for(bob.ready, 15)
        # parley -> slixmpp
        proc = await asyncio.create_subprocess_exec(
            PARLEY, "send", "--to", f"bob@{DOMAIN}", "--message", "hello slixmpp",
            *parleyd.account("alice"), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        deadline = time.monotonic() + 10
        while not any(m["body"] == "hello slixmpp" for m in bob.got):
            assert time.monotonic() < deadline, "slixmpp got nothing"
            await asyncio.sleep(0.05)
        m = next(m for m in bob.got if m["body"] == "hello slixmpp")
        assert m["from"].bare == f"alice@{DOMAIN}"
        # slixmpp -> parley listen
        lis = await asyncio.create_subprocess_exec(
            PARLEY, "listen", "--count", "1", "--timeout", "15", *parleyd.account("alice"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        line = await asyncio.wait_for(lis.stderr.readline(), 15)
        assert b"listening as" in line, line
        bob.send_message(mto=f"alice@{DOMAIN}", mbody="hello parley", mtype="chat")
        out, _ = await asyncio.wait_for(lis.communicate(), 20)
        assert lis.returncode == 0
        got = json.loads(out.decode().splitlines()[0])
        assert got["body"] == "hello parley" and got["from"] == f"bob@{DOMAIN}/slix"
        bob.disconnect()
        await asyncio.sleep(0.2)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(), 60))
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=3))
        loop.close()
        asyncio.set_event_loop(None)


# --------------------------------------------------------------------------- prosody

@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_prosody_send_listen(prosody, direct_tls):
    lis = Listener(prosody.account("bob", direct_tls))
    try:
        lis.wait_ready()
        r = parley("send", "--to", f"bob@{DOMAIN}", "--message", TRICKY,
                   *prosody.account("alice", direct_tls))
        assert_sent(r)
        rc, msgs = lis.finish()
    finally:
        lis.kill()
    assert rc == 0, "".join(lis.err_lines) + prosody.log_tail()
    assert msgs[0]["body"] == TRICKY
    assert msgs[0]["from"].startswith(f"alice@{DOMAIN}/")
    assert msgs[0]["tls"].startswith("TLSv1.3 ")


def test_prosody_tls_info_and_errors(prosody, tmp_path):
    r = parley("tls-info", "--json", *prosody.account("alice"))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["protocol"] == "TLSv1.3" and info["verified"] is True
    # Prosody 0.12 with hashed storage offers SCRAM-SHA-1 (no SHA-256, no PLUS on TLS 1.3)
    assert info["sasl"].startswith("SCRAM-SHA-")
    bad = tmp_path / "bad.pw"
    bad.write_text("wrong\n")
    args = prosody.account("alice")
    args[args.index("--password-file") + 1] = str(bad)
    assert parley("send", "--to", f"bob@{DOMAIN}", "--message", "x", *args).returncode == EXIT["auth"]
    args = prosody.account("alice")
    args[args.index("--ca-file") + 1] = Parleyd(tmp_path / "x").ca
    assert parley("send", "--to", f"bob@{DOMAIN}", "--message", "x", *args).returncode == EXIT["certificate"]


# --------------------------------------------------------------------------- policy refusals

class FakeServer:
    """Scripted XMPP server for what real servers will not do: no STARTTLS, no acceptable
    SASL mechanism, TLS below 1.2."""

    def __init__(self, mode, certdir):
        self.mode = mode
        self.certdir = certdir
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(1)
        self.sock.settimeout(15)
        self.port = self.sock.getsockname()[1]
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='localhost' "
              "id='x'>")

    def read_until(self, c, marker):
        data = b""
        c.settimeout(10)
        while marker not in data:
            d = c.recv(4096)
            if not d:
                break
            data += d
        return data

    def run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        try:
            if self.mode == "tls11":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ctx.minimum_version = ssl.TLSVersion.TLSv1
                    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.load_cert_chain(os.path.join(self.certdir, "server.crt"),
                                    os.path.join(self.certdir, "server.key"))
                try:
                    ctx.wrap_socket(c, server_side=True)
                except (ssl.SSLError, OSError):
                    pass
                return
            self.read_until(c, b">")
            if self.mode == "no-starttls":
                c.sendall((self.HEADER + "<stream:features><mechanisms xmlns='urn:ietf:params:"
                           "xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"
                           "</stream:features>").encode())
                self.read_until(c, b"</stream:stream>")
                return
            # weak-mechs: STARTTLS, then only DIGEST-MD5
            c.sendall((self.HEADER + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:"
                       "xmpp-tls'><required/></starttls></stream:features>").encode())
            self.read_until(c, b"starttls")
            c.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(self.certdir, "server.crt"),
                                os.path.join(self.certdir, "server.key"))
            t = ctx.wrap_socket(c, server_side=True)
            self.read_until(t, b">")
            t.sendall((self.HEADER + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:"
                       "xmpp-sasl'><mechanism>DIGEST-MD5</mechanism></mechanisms>"
                       "</stream:features>").encode())
            self.read_until(t, b"</stream:stream>")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()
        self.t.join(5)


@pytest.mark.parametrize("mode", ["no-starttls", "weak-mechs", "tls11"])
def test_policy_refusals_are_exit_5(parleyd, mode):
    fake = FakeServer(mode, parleyd.dir)
    try:
        args = parleyd.account("alice", direct_tls=(mode == "tls11"))
        args[args.index("--server") + 1] = f"{HOST}:{fake.port}"
        r = parley("send", "--timeout", "10", "--to", f"bob@{DOMAIN}", "--message", "x", *args)
    finally:
        fake.close()
    assert r.returncode == EXIT["policy"], r.stderr
