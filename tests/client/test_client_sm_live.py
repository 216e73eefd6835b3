"""XEP-0198 stream management of libparley (src/client/sm.c) against a real parleyd, over a
connection the test cuts: the client (tests/client/parley_driver.c) talks to parleyd
through a small loopback TCP proxy that can swallow traffic (a dead link that still looks
open) and then reset both ends. Checked:

- resumption: what was sent to the client meanwhile arrives exactly once, and what the
  client sent into the dead link is sent again after <resumed/> and arrives exactly once;
  nothing is PARLEY_EV_RESENT (the session went on);
- no resumption (parleyd restarted in between): the client binds afresh and sends its
  unacknowledged messages again (PARLEY_EV_RESENT, each once); the receiver gets each once,
  also those the old server had already delivered (the same XEP-0359 origin-id, dropped
  by the receiver's libparley).

    PARLEY_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/client/test_client_sm_live.py
"""
import asyncio
import os
import socket
import struct
import threading
import time


from rooms_util import Driver, logdir, run  # noqa: F401 (logdir: a fixture)
from test_client import DOMAIN, HOST, parleyd  # noqa: F401  (parleyd is a fixture)
from testports import free_port

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
RECONNECT = ["--reconnect", "300"]  # back-off 300..1200 ms


class Proxy:
    """Loopback TCP proxy in front of parleyd. mode "forward" passes everything; "up" passes
    client -> server only (the client's stanzas arrive, the server's acks do not); "dead"
    passes nothing. cut() resets every connection and refuses new ones until restore()."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_port()
        self.mode = "forward"
        self.refusing = False
        self.pairs = []
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, self.port))
        self.listener.listen(8)
        self.accepted = 0
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                self._reset(c)
                continue
            try:
                s = socket.create_connection((HOST, self.target), timeout=5)
            except OSError:
                self._reset(c)
                continue
            with self.lock:
                self.pairs.append((c, s))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(c, s, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, "down"), daemon=True).start()

    def _pump(self, src, dst, direction):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                self._reset(dst)
                return
            if self.mode == "forward" or (self.mode == "up" and direction == "up"):
                try:
                    dst.sendall(data)
                except OSError:
                    return

    @staticmethod
    def _reset(s):
        try:  # SO_LINGER 0: close sends RST, as a dropped link looks to the peer
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:  # wakes the pump blocked in recv() on it: close() alone would wait for it
            s.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        s.close()

    def cut(self):
        self.refusing = True
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for c, s in pairs:
            self._reset(c)
            self._reset(s)

    def restore(self):
        self.mode = "forward"
        self.refusing = False

    def close(self):
        self.running = False
        self.cut()
        self.listener.close()


def bodies(drv, kind="message"):
    return [ev["body"] for ev in drv.all(kind) if ev.get("body")]


async def wait_bodies(drv, want, timeout=30.0):
    """Wait until every body of want was received; then a little longer for duplicates."""
    deadline = time.monotonic() + timeout
    while not set(want) <= set(bodies(drv)):
        assert time.monotonic() < deadline, \
            f"{drv.name}: missing {sorted(set(want) - set(bodies(drv)))}; got {bodies(drv)}"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # a duplicate would come right after
    got = bodies(drv)
    for b in want:
        assert got.count(b) == 1, f"{drv.name}: {b!r} received {got.count(b)} times: {got}"


def server_log(srv):
    with open(os.path.join(srv.dir, "parleyd.log"), errors="replace") as f:
        return f.read()


async def wait_connected(drv, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while len(drv.all("connected")) < n:
        assert time.monotonic() < deadline, f"{drv.name}: not connected {n} times"
        await asyncio.sleep(0.05)


def through_proxy(parleyd, logdir, scenario, alice_args=(), bob_args=(), timeout=90):
    """Run `await scenario(proxy, alice, bob)`: alice (resource desk, reconnecting) reaches
    parleyd through a Proxy, bob (laptop) directly; both are connected first, and the
    drivers and the proxy are closed however it ends."""
    proxy = Proxy(parleyd.c2s_port)

    async def main():
        alice = Driver(parleyd, "alice", "desk", logdir, "--server", f"{HOST}:{proxy.port}",
                       *RECONNECT, *alice_args)
        bob = Driver(parleyd, "bob", "laptop", logdir, *bob_args)
        try:
            await wait_connected(alice, 1)
            await wait_connected(bob, 1)
            await scenario(proxy, alice, bob)
        finally:
            await alice.close()
            await bob.close()
    try:
        run(main, timeout=timeout)
    finally:
        proxy.close()


async def warm_up(alice, bob):
    """A message alice -> bob before the link is cut: her end-to-end session with bob's
    device is set up, so what she sends later goes out at once and only stream management
    carries it (a message still waiting for keys is test_client_sm_omemo.py's case)."""
    assert await alice.cmd(f"msg {BOB} warming up") == 0
    await wait_bodies(bob, ["warming up"])


def test_cut_connection_resumes_every_message_once_both_ways(parleyd, logdir):  # noqa: F811
    async def scenario(proxy, alice, bob):
        await bob.cmd(f"msg {ALICE} before the cut")
        await wait_bodies(alice, ["before the cut"])
        await warm_up(alice, bob)
        # the link dies without either end noticing: what goes in is lost
        proxy.mode = "dead"
        await asyncio.sleep(0.3)
        assert await alice.cmd(f"msg {BOB} written into the dead link") == 0
        for i in range(5):
            assert await bob.cmd(f"msg {ALICE} lost on the wire {i}") == 0
        await asyncio.sleep(0.5)
        # then both ends see it reset; more is said while alice is away
        proxy.cut()
        await asyncio.sleep(0.5)
        for i in range(5):
            assert await bob.cmd(f"msg {ALICE} while away {i}") == 0
        await asyncio.sleep(0.5)
        assert "written into the dead link" not in bodies(bob)
        proxy.restore()
        await wait_connected(alice, 2)
        want = [f"lost on the wire {i}" for i in range(5)] + \
               [f"while away {i}" for i in range(5)]
        await wait_bodies(alice, want)
        await wait_bodies(bob, ["written into the dead link"])
        assert bodies(alice).count("before the cut") == 1
        # the session went on: nothing was sent again as on a new session
        assert not alice.all("resent"), alice.all("resent")
        assert f"resumed {ALICE}/desk" in server_log(parleyd)
        # and it keeps working both ways
        assert await alice.cmd(f"msg {BOB} after the resumption") == 0
        await wait_bodies(bob, ["after the resumption"])
    through_proxy(parleyd, logdir, scenario)


def test_no_resumption_after_restart_binds_anew_and_resends_each_once(parleyd, logdir):  # noqa: F811
    async def scenario(proxy, alice, bob):
        await warm_up(alice, bob)
        # the server gets these, but its acknowledgements never reach alice
        proxy.mode = "up"
        await asyncio.sleep(0.3)
        for i in range(2):
            assert await alice.cmd(f"msg {BOB} delivered, never acked {i}") == 0
        await wait_bodies(bob, [f"delivered, never acked {i}" for i in range(2)])
        # and these the server never gets
        proxy.mode = "dead"
        await asyncio.sleep(0.3)
        for i in range(2):
            assert await alice.cmd(f"msg {BOB} never arrived {i}") == 0
        await asyncio.sleep(0.5)
        proxy.cut()
        # a new server process: the old session cannot be resumed
        parleyd.stop()
        parleyd.start()
        proxy.restore()
        await wait_connected(alice, 2, timeout=30)
        resent = alice.all("resent")
        deadline = time.monotonic() + 10
        while len(resent) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            resent = alice.all("resent")
        assert len(resent) == 4, resent
        assert all(ev["to"].startswith(BOB) and ev["id"] for ev in resent), resent
        assert len({ev["id"] for ev in resent}) == 4, resent
        await wait_connected(bob, 2, timeout=30)
        want = [f"delivered, never acked {i}" for i in range(2)] + \
               [f"never arrived {i}" for i in range(2)]
        await wait_bodies(bob, want, timeout=30)
        assert len(alice.all("resent")) == 4  # once each, not again
    through_proxy(parleyd, logdir, scenario, bob_args=RECONNECT, timeout=120)
