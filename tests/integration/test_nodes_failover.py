"""A node killed mid-conversation (issue 9): three parleyd nodes of one domain on one
PostgreSQL store, which also holds the compliance log. alice's libparley client
(tests/client/parley_driver.c) is configured with all three node addresses and signs in on
node 1; bob's is on node 2. alice sends a burst; node 1 is frozen (SIGSTOP: what alice
writes now is never read) while the rest of the burst goes out, then SIGKILLed.

What must hold: alice reconnects to another node within a bounded time; XEP-0198 cannot
resume her session there (node 1 held it), so she binds afresh and sends again every
message node 1 never acknowledged (PARLEY_EV_RESENT); bob's client shows every message of
the burst exactly once (a copy of one node 1 had delivered but not acknowledged is
dropped by its origin-id); the compliance log has every message exactly once (the copy
is recognised by sender, origin-id and content); and a message bob sent while alice was
away reaches her once (offline storage and the archive catch-up after the failover).

And when only the network fails (a relay cuts the connection), the node keeps the session
and alice resumes it (XEP-0198 <resume/>): what was queued for her arrives once, nothing
is sent again.
"""
import asyncio
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import BUILD, HOST
from testports import free_port
from nodes_util import DOMAIN, USERS, Cluster, cluster, on, pg_server, pg_uri  # noqa: F401

DRIVER = os.path.join(BUILD, "parley-driver")
# the burst: seen by bob through node 1 / handled by node 1 just before it freezes (likely
# recorded and delivered, not yet acknowledged: alice asks for acks every 5 stanzas or
# after 250 ms) / written to the frozen node, never read
BURST1, BURST_UNACKED, BURST2 = 5, 3, 8
RECONNECT_WITHIN = 30   # seconds from the kill to a session on another node


class Driver:
    """libparley through parley-driver: commands on stdin, events as JSON lines."""

    def __init__(self, logdir, user, servers, ca, *extra):
        self.name = user
        pw = os.path.join(logdir, f".pw-{user}")
        with open(pw, "w") as f:
            f.write(USERS[user] + "\n")
        os.chmod(pw, 0o600)
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = f"detect_leaks=1:log_path={logdir}/asan-driver-{user}"
        env["UBSAN_OPTIONS"] = f"print_stacktrace=1:log_path={logdir}/ubsan-driver-{user}"
        self.err_path = os.path.join(logdir, f"driver-{user}.err")
        self.err = open(self.err_path, "ab")
        args = [DRIVER, "--jid", f"{user}@{DOMAIN}/drv", "--password-file", pw, "--ca-file", ca,
                "--server", servers, *extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, env=env)
        self.events, self.lock = [], threading.RLock()  # predicates may call all()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def all(self, kind):
        with self.lock:
            return [ev for ev in self.events if ev["event"] == kind]

    async def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                for ev in self.events:
                    if pred(ev):
                        return ev
                last = self.events[-10:]
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{self.name}: no {what} within {timeout}s; last events:\n"
                                     + json.dumps(last, indent=1))
            await asyncio.sleep(0.02)

    def send(self, lines):
        self.proc.stdin.write("".join(line + "\n" for line in lines).encode())
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send(["quit"])
                self.proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.err.close()


def psql(uri, query):
    out = subprocess.run(["psql", uri, "-At", "-F", "|", "-c", query], capture_output=True,
                         text=True, timeout=60, check=True)
    return [line.split("|") for line in out.stdout.splitlines() if line]


@pytest.fixture
def shared_cluster(tmp_path, pg_uri):
    """Three nodes whose compliance log is the shared PostgreSQL database too."""
    c = Cluster(str(tmp_path), pg_uri, 3)
    for srv in c.nodes:
        srv.set_config([f"compliance_store = {pg_uri}"])
    c.start()
    yield c
    problems = []
    for srv in c.nodes:
        p = srv.stop()
        if p:
            print(f"==== {srv.name}\n{srv.log_tail(80)}")
        problems += p
    if problems:
        pytest.fail("node teardown: " + "\n".join(problems), pytrace=False)


def test_client_fails_over_and_nothing_is_lost_or_doubled(shared_cluster, pg_uri, tmp_path,
                                                         run):
    c = shared_cluster
    n1, n2, n3 = c.nodes
    servers = ",".join(f"{HOST}:{srv.c2s_port}" for srv in (n1, n2, n3))
    logdir = str(tmp_path)
    alice = Driver(logdir, "alice", servers, n1.ca, "--reconnect", "300", "--carbons", "0",
                   "--archive-sync", "50")
    bob = Driver(logdir, "bob", f"{HOST}:{n2.c2s_port}", n2.ca, "--carbons", "0")
    bodies = [f"burst {i:02d}" for i in range(1, BURST1 + BURST_UNACKED + BURST2 + 1)]
    frozen_from = BURST1 + BURST_UNACKED

    async def scenario():
        await alice.wait(lambda e: e["event"] == "connected", 20, "connected")
        await bob.wait(lambda e: e["event"] == "connected", 20, "connected")
        await asyncio.sleep(1.0)  # both sessions are in the shared directory

        # the first part of the burst reaches bob through node 1
        alice.send([f"msg bob@{DOMAIN} {b}" for b in bodies[:BURST1]])
        for b in bodies[:BURST1]:
            await bob.wait(lambda e, b=b: e["event"] == "message" and e["body"] == b, 20,
                           f"message {b!r}")
        # node 1 freezes mid-conversation, just after handling a few more (alice's pending
        # acknowledgement requests are answered during the pause before them); the rest is
        # written to it and never read
        await asyncio.sleep(1.0)
        alice.send([f"msg bob@{DOMAIN} {b}" for b in bodies[BURST1:frozen_from]])
        await asyncio.sleep(0.12)
        n1.proc.send_signal(signal.SIGSTOP)
        alice.send([f"msg bob@{DOMAIN} {b}" for b in bodies[frozen_from:]])
        await alice.wait(lambda e: e["event"] == "ack" and e["cmd"] == "msg" and
                         sum(1 for x in alice.all("ack") if x["cmd"] == "msg") == len(bodies),
                         10, "every msg command issued")
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        c.kill(n1)

        # alice fails over to another node and sends again what node 1 never acknowledged
        await alice.wait(lambda e: e["event"] == "disconnected", 15, "disconnected")
        bob.send([f"msg alice@{DOMAIN} while away"])
        await alice.wait(lambda e: e["event"] == "connected" and
                         len(alice.all("connected")) == 2, RECONNECT_WITHIN, "a second session")
        assert time.monotonic() - killed_at < RECONNECT_WITHIN
        for b in bodies:
            await bob.wait(lambda e, b=b: e["event"] == "message" and e["body"] == b, 20,
                           f"message {b!r} after the failover")
        resent = alice.all("resent")
        assert len(resent) >= BURST2, resent  # at least what the frozen node never read
        # (more: node 1 had recorded and delivered some without acknowledging them)
        print(f"{len(resent)} messages sent again after the failover")

        # what bob sent while alice was away reaches her (offline or from the archive)
        await alice.wait(lambda e: e["event"] == "message" and e["body"] == "while away", 20,
                         "the message sent while away")
        await alice.wait(lambda e: e["event"] == "archive_done" and
                         len(alice.all("archive_done")) >= 2, 20,
                         "the archive catch-up after the failover")
        await asyncio.sleep(1.5)  # any late copy would show now

    try:
        run(scenario, timeout=150)
        # every message shown once: copies are recognised by their origin-id
        got = [e["body"] for e in bob.all("message") if e["body"] in bodies]
        assert sorted(got) == bodies, f"bob's client showed {sorted(got)}"
        away = [e for e in alice.all("message") if e["body"] == "while away"]
        assert len(away) == 1, away
    finally:
        alice.close()
        bob.close()

    # the compliance log: every message of the burst exactly once, across the nodes (they
    # are end-to-end encrypted, so known by their ids, not their bodies)
    sent = sorted(e["id"] for e in alice.all("sent") if e["to"] == f"bob@{DOMAIN}")
    assert len(sent) == len(bodies), sent
    rows = psql(pg_uri, "SELECT msg_id, count(*) FROM messages WHERE sender LIKE "
                        f"'alice@{DOMAIN}/%' GROUP BY msg_id ORDER BY msg_id")
    assert rows == [[i, "1"] for i in sent], rows
    # the chain is whole: the copies left no gap
    seqs = psql(pg_uri, "SELECT count(*), min(seq), max(seq) FROM messages")[0]
    assert int(seqs[0]) == int(seqs[2]) - int(seqs[1]) + 1, seqs


class CuttingProxy:
    """A loopback TCP relay to a node whose connections the test can cut (a network
    failure: the node sees its client vanish and keeps the session for resumption)."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_port()
        self.transports = []

    async def start(self):
        self.server = await asyncio.start_server(self._client, HOST, self.port)

    async def _client(self, reader, writer):
        up_r, up_w = await asyncio.open_connection(HOST, self.target)
        self.transports += [writer.transport, up_w.transport]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    def cut(self):
        for t in self.transports:
            t.abort()
        self.transports.clear()

    def close(self):
        self.cut()
        self.server.close()


def test_client_resumes_its_session_after_a_network_cut(cluster, tmp_path, run):
    c = cluster(1)
    n1 = c.nodes[0]
    logdir = str(tmp_path)
    proxy = CuttingProxy(n1.c2s_port)
    drivers = []

    async def scenario():
        await proxy.start()
        alice = Driver(logdir, "alice", f"{HOST}:{proxy.port}", n1.ca, "--reconnect", "300",
                       "--carbons", "0")
        bob = Driver(logdir, "bob", f"{HOST}:{n1.c2s_port}", n1.ca, "--carbons", "0")
        drivers.extend([alice, bob])
        await alice.wait(lambda e: e["event"] == "connected", 20, "connected")
        await bob.wait(lambda e: e["event"] == "connected", 20, "connected")
        bob.send([f"msg alice@{DOMAIN} before"])
        await alice.wait(lambda e: e["event"] == "message" and e["body"] == "before", 20,
                         "the first message")
        proxy.cut()
        await alice.wait(lambda e: e["event"] == "disconnected", 15, "disconnected")
        # parleyd keeps the detached session and queues what arrives for it
        bob.send([f"msg alice@{DOMAIN} during the cut"])
        await alice.wait(lambda e: e["event"] == "connected" and
                         len(alice.all("connected")) == 2, RECONNECT_WITHIN, "a second session")
        await alice.wait(lambda e: e["event"] == "message" and e["body"] == "during the cut", 20,
                         "the message queued for the detached session")
        alice.send([f"msg bob@{DOMAIN} after"])
        await bob.wait(lambda e: e["event"] == "message" and e["body"] == "after", 20,
                       "a message on the resumed session")
        await asyncio.sleep(1.0)
        proxy.close()

    try:
        run(scenario, timeout=120)
        alice = drivers[0]
        assert [e["body"] for e in alice.all("message")] == ["before", "during the cut"]
        assert alice.all("resent") == []  # the same session: nothing to send again
    finally:
        for d in drivers:
            d.close()
    log = n1.log_text()
    assert "resumed alice@parley.test/drv" in log, n1.log_tail()
