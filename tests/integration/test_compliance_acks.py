"""Compliance strict mode and XEP-0198 acknowledgements to the sender: kill -9 parleyd
mid-burst and restart; every message the sender was told the server handled (covered by
the last <a h='N'/> it received) has exactly one compliance record, and the archive's
chain still verifies.

An <a/> is the only "succeeded" a sender gets for a message (there is no receipt), so an
acknowledgement that leaves the server before the message's record is committed is a
promise a crash can break. Two paths are exercised: the plain group commit (records
commit in before_sleep, ahead of any output), and a compliance server whose verdicts
arrive later than the <r/> (the messages wait across loop passes)."""
import asyncio
import os
import re
import signal
import socket
import sqlite3
import threading
import time

from conftest import Closed, raw_login
from component_util import Component, start_with_components

NS_SM = "urn:xmpp:sm:3"
ROUNDS = 3          # kill -9 / restart cycles on one server
CHUNK = 10          # messages sent before each <r/>
MAX_CHUNKS = 60     # at most 600 messages per round
ACK_RX = re.compile(rb"<a\b[^>]*\bh=['\"](\d+)['\"]")


def records_by_id(srv, prefix):
    con = sqlite3.connect(f"file:{srv.dir}/data/compliance.db?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT msg_id FROM messages WHERE msg_id LIKE ?",
                           (prefix + "%",)).fetchall()
    finally:
        con.close()
    out = {}
    for (mid,) in rows:
        out[mid] = out.get(mid, 0) + 1
    return out


def restart(srv):
    if srv.logf:
        srv.logf.close()
        srv.logf = None
    srv.start()


def sm_sender(srv, resource):
    """alice with stream management enabled (no presence: h counts her messages only)."""
    rs, _ = raw_login(srv, "alice", resource, timeout=30)
    rs.send(f"<enable xmlns='{NS_SM}'/>")
    text = rs.read_until(r"<enabled\b[^>]*/>|<failed\b.*?</failed>", timeout=10)
    assert "<enabled" in text, text
    return rs


def burst_acked_then_kill(srv, prefix, kill_at_h):
    """alice sends numbered messages to bob, CHUNK at a time each followed by <r/>;
    parleyd is SIGKILLed as soon as an <a/> acknowledges at least kill_at_h of them.
    Returns the highest h alice received (messages prefix0 .. prefix{h-1} are covered)."""
    bob, _ = raw_login(srv, "bob", "b", timeout=30)
    alice = sm_sender(srv, "a")
    alice.log = b""
    stop = threading.Event()

    def read(rs):
        try:
            rs.read_all(timeout=60)
        except Exception:
            pass  # the server is gone

    reader = threading.Thread(target=read, args=(bob,), daemon=True)
    reader.start()

    def drain(seconds):
        # one thread uses alice's TLS socket for both directions (an SSL object is not
        # for two threads at once)
        deadline = time.monotonic() + seconds
        while True:
            try:
                alice._recv(deadline)
            except (socket.timeout, Closed, OSError):
                return

    def send():
        try:
            for c in range(MAX_CHUNKS):
                if stop.is_set():
                    break
                alice.send("".join(f"<message to='bob@localhost/b' type='chat' id='{prefix}{k}'>"
                                   f"<body>{prefix} {k}</body></message>"
                                   for k in range(c * CHUNK, (c + 1) * CHUNK))
                           + f"<r xmlns='{NS_SM}'/>")
                drain(0.005)
        except OSError:
            pass
        if not alice.eof:
            drain(30)  # until the server dies

    sender = threading.Thread(target=send, daemon=True)
    sender.start()

    def acked():
        hs = [int(h) for h in ACK_RX.findall(alice.log)]
        return max(hs) if hs else 0

    deadline = time.monotonic() + 60
    while acked() < kill_at_h:
        assert time.monotonic() < deadline, f"no acknowledgement of {kill_at_h}: h={acked()}"
        assert srv.alive(), srv.log_tail()
        time.sleep(0.001)
    os.kill(srv.pid(), signal.SIGKILL)
    srv.proc.wait(timeout=10)
    stop.set()
    sender.join(timeout=40)
    reader.join(timeout=70)
    h = acked()  # whatever else arrived before the socket closed counts too
    alice.close()
    bob.close()
    return h


def assert_acked_recorded_once(srv, prefix, h):
    got = records_by_id(srv, prefix)
    missing = [i for i in range(h) if got.get(f"{prefix}{i}") != 1]
    assert not missing, (f"acknowledged (h={h}) but without exactly one record: "
                         f"{[(i, got.get(f'{prefix}{i}')) for i in missing[:10]]}")
    assert all(n == 1 for n in got.values()), "a record was written twice"
    p = srv.ctl("compliance", "verify", check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_kill9_acked_messages_have_one_record_group_commit(server):
    srv = server()
    for rnd in range(ROUNDS):
        prefix = f"r{rnd}-"
        h = burst_acked_then_kill(srv, prefix, kill_at_h=50 + 40 * rnd)
        restart(srv)
        assert_acked_recorded_once(srv, prefix, h)


class ComponentThread:
    """A slixmpp compliance server on an event loop of its own (the test's raw streams
    block), answering every check "allow" after a delay."""

    def __init__(self, srv, port, delay):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make():
            c = Component(srv, port, tls=False)
            c.delay = delay
            await c.start()
            return c
        self.comp = self.call(make())

    def call(self, coro, timeout=20):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        async def shutdown():
            try:
                await self.comp.stop()
            except Exception:
                pass
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in others:
                t.cancel()
            await asyncio.gather(*others, return_exceptions=True)
        try:
            self.call(shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


def test_kill9_acked_messages_have_one_record_with_slow_verdicts(server):
    # Verdicts take 0.4 s: alice's <r/> arrives while her messages still wait for them.
    # An <a/> counting those messages before their records commit would be broken by
    # the SIGKILL that follows it at once.
    srv, port = start_with_components(server, tls=False, verdicts=True, timeout_ms=5000)
    comp = ComponentThread(srv, port, delay=0.4)
    try:
        h = burst_acked_then_kill(srv, "v-", kill_at_h=CHUNK)
    finally:
        comp.close()
    restart(srv)
    assert_acked_recorded_once(srv, "v-", h)
