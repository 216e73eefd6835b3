"""Helpers for the group chat, archive and carbons tests of the client: `Driver` runs
tests/client/parley_driver.c (libparley, commands on stdin, events as JSON lines on
stdout) and `Peer` is an independent slixmpp client with the MUC plugins. Both are used
from an asyncio scenario run by `run()`; every wait is bounded."""
import asyncio
import json
import logging
import os
import subprocess
import threading
import time

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from test_client import BUILD, DOMAIN, HOST, USERS

DRIVER = os.path.join(BUILD, "parley-driver")
MUC = f"conference.{DOMAIN}"
logging.getLogger("slixmpp").setLevel(logging.ERROR)


def room(name):
    return f"{name}@{MUC}"


def run(scenario, timeout=90):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(asyncio.wait_for(scenario(), timeout))
    finally:
        for t in [t for t in asyncio.all_tasks(loop) if not t.done()]:
            t.cancel()
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()


class Driver:
    """libparley through parley-driver, for one account (and resource)."""

    def __init__(self, srv, user, resource, logdir, *extra):
        self.name = f"{user}/{resource}"
        os.makedirs(logdir, exist_ok=True)
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = f"detect_leaks=1:log_path={logdir}/asan-driver"
        env["UBSAN_OPTIONS"] = f"print_stacktrace=1:log_path={logdir}/ubsan-driver"
        args = [DRIVER, "--jid", f"{user}@{DOMAIN}/{resource}", "--password-file",
                srv.pwfiles[user], "--ca-file", srv.ca, "--server", f"{HOST}:{srv.c2s_port}"]
        self.err = open(os.path.join(logdir, f"driver-{user}-{resource}.err"), "ab")
        self.proc = subprocess.Popen(args + list(extra), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, env=env)
        self.events, self.lock = [], threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.lock:
                self.events.append(ev)

    async def wait(self, pred, timeout=10.0, what=""):
        """Wait for (and consume) the first event matching pred."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                for i, ev in enumerate(self.events):
                    if pred(ev):
                        del self.events[i]
                        return ev
                seen = list(self.events[-12:])
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{self.name}: no event {what} within {timeout}s; "
                                     f"last events: {json.dumps(seen, indent=1)}")
            await asyncio.sleep(0.03)

    async def event(self, kind, timeout=10.0, **fields):
        def pred(ev):
            return ev["event"] == kind and all(ev.get(k) == v for k, v in fields.items())
        return await self.wait(pred, timeout, f"{kind} {fields}")

    async def expect_none(self, pred, duration=1.0, what=""):
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            with self.lock:
                bad = [ev for ev in self.events if pred(ev)]
            assert not bad, f"{self.name}: unexpected {what}: {bad}"
            await asyncio.sleep(0.05)

    def clear(self):
        with self.lock:
            self.events.clear()

    def all(self, kind):
        with self.lock:
            return [ev for ev in self.events if ev["event"] == kind]

    async def cmd(self, line):
        """Send a command; returns its error code (0: issued)."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        ack = await self.event("ack", cmd=line.split()[0])
        return ack["error"] if line.split()[0] != "last" else ack["detail"]

    async def online(self):
        return await self.event("connected", timeout=20)

    async def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            for _ in range(100):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
        self.proc.wait(timeout=10)
        self.err.close()


class Peer(slixmpp.ClientXMPP):
    """An independent XMPP client (slixmpp) with the MUC plugins, recording stanzas."""

    def __init__(self, srv, user, resource):
        super().__init__(f"{user}@{DOMAIN}/{resource}", USERS[user])
        self.ca_certs = srv.ca
        self.srv = srv
        for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0199"):
            self.register_plugin(plugin)
        self.got = []
        self.ready = None
        self.add_event_handler("session_start", self._start)
        # every message and presence straight from the stream (slixmpp gives subjects,
        # room messages and room presence other events, or none)
        self.register_handler(Callback("record-message", MatchXPath("{jabber:client}message"),
                                       lambda m: self.got.append(m)))
        self.register_handler(Callback("record-presence", MatchXPath("{jabber:client}presence"),
                                       lambda p: self.got.append(p)))
        self.add_event_handler("failed_all_auth", self._fail)

        # slixmpp 1.8 only knows tls-unique: no channel binding (as test_client does)
        mechs = self["feature_mechanisms"]
        orig = mechs._default_credentials

        def creds(required, optional):
            c = orig(required, optional)
            c.pop("channel_binding", None)
            return c
        mechs.sasl_callback = creds

    def _start(self, _):
        self.send_presence()
        self.ready.set_result(True)

    def _fail(self, _):
        if not self.ready.done():
            self.ready.set_exception(AssertionError(f"{self.boundjid}: sign-in failed"))

    async def login(self):
        self.ready = asyncio.get_running_loop().create_future()
        self.connect((HOST, self.srv.c2s_port), force_starttls=True)
        await asyncio.wait_for(self.ready, 20)
        return self

    async def wait(self, pred, timeout=10.0, what=""):
        deadline = time.monotonic() + timeout
        while True:
            for i, st in enumerate(self.got):
                if pred(st):
                    del self.got[i]
                    return st
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.boundjid}: nothing {what} within {timeout}s; "
                                     f"got {[str(s) for s in self.got[-8:]]}")
            await asyncio.sleep(0.03)

    async def join(self, rjid, nick, password=None, create=False):
        muc = self.plugin["xep_0045"]
        kw = {"password": password} if password else {}
        await muc.join_muc_wait(rjid, nick, timeout=10, maxstanzas=0, **kw)
        if create:
            form = self.plugin["xep_0004"].make_form(ftype="submit")
            await muc.set_room_config(rjid, form, timeout=10)

    async def configure(self, rjid, fields):
        form = self.plugin["xep_0004"].make_form(ftype="submit")
        for var, value in fields.items():
            form.add_field(var=f"muc#roomconfig_{var}", value=value)
        await self.plugin["xep_0045"].set_room_config(rjid, form, timeout=10)

    async def close(self):
        if self.transport is not None:
            try:
                await asyncio.wait_for(self.disconnect(wait=1), 3)
            except Exception:  # noqa: BLE001  (a test tearing down: any failure is moot)
                self.abort()


def sanitizer_reports(d):
    out = []
    if os.path.isdir(d):
        for n in sorted(os.listdir(d)):
            if n.startswith(("asan", "ubsan")):
                with open(os.path.join(d, n), errors="replace") as f:
                    out.append(f"==== {n} ====\n{f.read()}")
    return out


@pytest.fixture
def logdir(tmp_path):
    """Where the drivers write; fails the test on any sanitizer report from them."""
    d = str(tmp_path / "clients")
    yield d
    reports = sanitizer_reports(d)
    for r in reports:
        print(r)
    assert not reports, "sanitizer reports from the driver"
