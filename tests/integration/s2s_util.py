"""Helpers for the server-to-server tests: a parleyd serving a domain other than
`localhost`, certificates from a shared test CA (or another one), a real Prosody that
federates over loopback, and a raw s2s peer for bad input.

Prosody resolves peers through DNS only; the tests never touch DNS or /etc/hosts.  A
ten-line Prosody plugin written into the test's own directory (mod_test_s2s_hosts)
answers Prosody's SRV/A lookup for the listed domains with 127.0.0.1:PORT instead: the
same job `s2s_hosts` does for parleyd.  Everything else in Prosody is stock.
"""
import asyncio
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import HOST, Client, Server, free_port, wait_port

NS_SERVER = "jabber:server"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def parleyctl():
    return os.path.join(os.environ.get("PARLEY_BUILD", "/work/main/build-test"), "parleyctl")


def issue_cert(dirpath, domain, ca_from=None):
    """A certificate for domain in dirpath (server.crt, server.key), signed by the CA in
    ca_from (its ca.crt and ca.key are copied), or by a new CA when ca_from is None."""
    os.makedirs(dirpath, exist_ok=True)
    if ca_from:
        for n in ("ca.crt", "ca.key"):
            shutil.copy(os.path.join(ca_from, n), os.path.join(dirpath, n))
    subprocess.run([parleyctl(), "init", "--dir", dirpath, "--domain", domain, "--c2s-port", "1",
                    "--tls-port", "2", "--https-port", "0"], check=True, capture_output=True,
                   timeout=60)
    return os.path.join(dirpath, "server.crt"), os.path.join(dirpath, "server.key")


class DomainServer(Server):
    """A parleyd for `domain` (the conftest Server is for localhost), federation on."""

    def __init__(self, root, domain, users, extra=(), ca_from=None):
        self.domain = domain
        self.dir = str(root)
        os.makedirs(self.dir, exist_ok=True)
        if ca_from:
            for n in ("ca.crt", "ca.key"):
                shutil.copy(os.path.join(ca_from, n), os.path.join(self.dir, n))
        self.conf = os.path.join(self.dir, "parleyd.conf")
        self.ca = os.path.join(self.dir, "ca.crt")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.cert = os.path.join(self.dir, "server.crt")
        self.key = os.path.join(self.dir, "server.key")
        self.log_path = os.path.join(self.dir, "parleyd.log")
        build = os.environ.get("PARLEY_BUILD", "/work/main/build-test")
        self.parleyd = os.path.join(build, "parleyd")
        self.parleyctl = os.path.join(build, "parleyctl")
        self.proc = None
        self.logf = None
        self.users = {}
        self.c2s_port, self.tls_port, self.s2s_port = free_port(), free_port(), free_port()
        self.ctl("init", "--dir", self.dir, "--domain", domain, "--c2s-port", str(self.c2s_port),
                 "--tls-port", str(self.tls_port), "--https-port", "0", use_conf=False)
        self.set_config([f"s2s_port = {self.s2s_port}"] + list(extra))
        for user, pw in users.items():
            self.add_user(user, pw)

    def add_user(self, user, pw):
        pwfile = os.path.join(self.dir, f".pw-{user}")
        with open(pwfile, "w") as f:
            f.write(pw + "\n")
        os.chmod(pwfile, 0o600)
        self.ctl("user", "add", f"{user}@{self.domain}", "--password-file", pwfile)
        self.users[user] = pw

    def start(self):
        super().start()
        if not wait_port(self.s2s_port, 10, self.proc):
            pytest.fail("parleyd not listening on its s2s port\n" + self.log_tail())
        return self

    def wait_log(self, pattern, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log_text())
            if m:
                return m
            time.sleep(0.1)
        raise AssertionError(f"no log line matching {pattern!r}\n" + self.log_tail())


async def login(domain, port, ca, user, pw, resource="r", presence=True, timeout=15,
                mech="SCRAM-SHA-256"):
    """A slixmpp session on any server (parleyd or Prosody) on 127.0.0.1:port."""
    c = Client(f"{user}@{domain}/{resource}", pw, ca, mech=mech)
    c.session = asyncio.get_running_loop().create_future()
    c.connect((HOST, port), force_starttls=True)
    await asyncio.wait_for(asyncio.shield(c.session), timeout)
    await asyncio.wait_for(c.get_roster(), timeout)
    if presence:
        c.send_presence()
    return c


# --------------------------------------------------------------------------- Prosody

PLUGIN = """\
-- Test helper (tests/integration/s2s_util.py): listed domains resolve to fixed loopback
-- addresses instead of DNS, like parleyd's s2s_hosts.
module:set_global();
local service = require "net.resolvers.service";
local manual = require "net.resolvers.manual";
local map = module:get_option("test_s2s_hosts", {});
local original = service.new;
service.new = function (hostname, srvname, proto, extra)
    local target = map[hostname];
    if target == nil then return original(hostname, srvname, proto, extra); end
    if srvname ~= "xmpp-server" then return manual.new({}, proto, extra); end
    return manual.new({ { "tcp4", target[1], target[2], extra } }, proto, extra);
end
"""

PROSODY_CFG = """\
-- generated by tests/integration/s2s_util.py
run_as_root = {run_as_root}
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
plugin_paths = {{ "{dir}/plugins" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ {s2s} }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
admin_socket = "{dir}/prosody.sock"
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "posix", "presence",
                    "message", "s2s", "dialback", "s2s_auth_certs", "test_s2s_hosts" }}
authentication = "internal_hashed"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = {secure}
s2s_timeout = 20
test_s2s_hosts = {{ {hosts} }}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{dir}/prosody.log" }} }}
ssl = {{ certificate = "{cert}", key = "{key}", cafile = "{ca}" }}
VirtualHost "{domain}"
  ssl = {{ certificate = "{cert}", key = "{key}", cafile = "{ca}" }}
"""


class Prosody:
    """A real Prosody serving `domain` on loopback (c2s and s2s), in its own directory."""

    def __init__(self, root, domain, cert, key, ca, hosts, users, secure=True):
        self.dir = str(root)
        self.domain = domain
        self.ca = ca
        # the CA of Prosody's own certificate, for its clients
        self.ca_own = os.path.join(os.path.dirname(cert), "ca.crt")
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "plugins"), exist_ok=True)
        with open(os.path.join(self.dir, "plugins", "mod_test_s2s_hosts.lua"), "w") as f:
            f.write(PLUGIN)
        self.c2s_port, self.s2s_port = free_port(), free_port()
        lua_hosts = ", ".join(f'["{d}"] = {{ "{h}", {p} }}' for d, (h, p) in hosts.items())
        self.cfg = os.path.join(self.dir, "prosody.cfg.lua")
        with open(self.cfg, "w") as f:
            f.write(PROSODY_CFG.format(dir=self.dir, c2s=self.c2s_port, s2s=self.s2s_port,
                                       run_as_root="true" if os.getuid() == 0 else "false",
                                       secure="true" if secure else "false", hosts=lua_hosts,
                                       cert=cert, key=key, ca=ca, domain=domain))
        self.users = dict(users)
        for user, pw in users.items():
            p = subprocess.run(["prosodyctl", "--config", self.cfg, "register", user, domain, pw],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stdout + p.stderr
        self.out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen(["prosody", "--config", self.cfg, "-F"], stdout=self.out,
                                     stderr=self.out, stdin=subprocess.DEVNULL, cwd=self.dir)
        for port in (self.c2s_port, self.s2s_port):
            if not wait_port(port, 15, self.proc):
                self.stop()
                pytest.fail("prosody did not start:\n" + self.log_tail())

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "prosody.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=4000):
        out = []
        for name in ("stdout.log", "prosody.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append(f"---- {name} ----\n" + f.read()[-n:])
            except OSError:
                pass
        return "\n".join(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.out.close()


def require_prosody():
    if not shutil.which("prosody") or not shutil.which("prosodyctl"):
        pytest.fail("prosody is not installed (apt-get install prosody; scripts/deps.sh test)")


# --------------------------------------------------------------------------- raw peer

class RawPeer:
    """A hand-driven s2s stream to parleyd: for certificates and addresses that a real
    server would never send."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def read_until(self, pattern, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        rx = re.compile(pattern.encode(), re.S)
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out.decode("utf-8", "replace")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timeout waiting for {pattern!r}; have {self.buf!r}")
            self.sock.settimeout(remaining)
            try:
                d = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                d = b""
            if not d:
                raise AssertionError(f"closed waiting for {pattern!r}; have {self.buf!r}")
            self.buf += d

    def read_all(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, ssl.SSLError, OSError):
                d = b""
            if not d:
                break
            self.buf += d
        out, self.buf = self.buf.decode("utf-8", "replace"), b""
        return out

    def header(self, frm, to):
        self.send(f"<?xml version='1.0'?><stream:stream xmlns='{NS_SERVER}' "
                  f"xmlns:stream='{NS_STREAM}' version='1.0' from='{frm}' to='{to}'>")

    def open(self, frm, to):
        self.header(frm, to)
        self.read_until(r"<stream:stream[^>]*>")
        return self.read_until(r"</stream:features>|<stream:features/>|</stream:stream>")

    def starttls(self, cert, key, ca, server_name):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        self.read_until(r"<proceed[^>]*/>")
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(cert, key)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_name)

    def external(self, authzid=""):
        import base64
        payload = base64.b64encode(authzid.encode()).decode() or "="
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{payload}</auth>")
        return self.read_until(r"<success[^>]*/>|</failure>|</stream:stream>")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
