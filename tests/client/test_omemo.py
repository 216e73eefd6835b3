"""End-to-end encryption (XEP-0384 OMEMO, urn:xmpp:omemo:2) between Parley's client and a
real python3-omemo + python3-twomemo peer (omemo_peer.py), and between two Parley
clients, through a real server, with the admin policy matrix of DESIGN.md.

    PARLEY_BUILD=build /usr/bin/python3 -m pytest -q tests/client/test_omemo.py
"""
import asyncio
import json
import os
import subprocess
import time

import pytest

import test_client as tc
from omemo_peer import OmemoPeer
from test_client import parleyd  # noqa: F401 (the fixture: a fresh parleyd per test)

DOMAIN = tc.DOMAIN


def run(coro, timeout=120):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=3))
        loop.close()
        asyncio.set_event_loop(None)


class PepProsody(tc.Prosody):
    """Prosody with PEP (mod_pep), where XEP-0384 keeps device lists and bundles."""
    mech = "SCRAM-SHA-1"


@pytest.fixture
def pep_prosody(tmp_path, monkeypatch):
    monkeypatch.setattr(tc, "PROSODY_CFG", tc.PROSODY_CFG.replace('"posix" }', '"posix", "pep" }'))
    srv = PepProsody(tmp_path / "prosody")
    yield srv
    srv.stop()


@pytest.fixture(params=["parleyd", "prosody"])
def server(request):
    """Interop runs through parleyd (its PEP) and through Prosody's, as a cross-check."""
    return request.getfixturevalue("parleyd" if request.param == "parleyd" else "pep_prosody")


def history_args(tmp_path, user):
    """A history key and data dir: the OMEMO keys are kept in <data>/<jid>.omemo.db."""
    d = tmp_path / f"data-{user}"
    d.mkdir(exist_ok=True)
    key = tmp_path / f"{user}.key"
    if not key.exists():
        key.write_bytes(os.urandom(32))
        os.chmod(key, 0o600)
    return ["--history-key-file", str(key), "--data-dir", str(d), "--history", "archive"]


async def parley_async(*args, timeout=40):
    proc = await asyncio.create_subprocess_exec(
        tc.PARLEY, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


class AsyncListener:
    """`parley listen` running beside the asyncio peer."""

    def __init__(self, proc):
        self.proc = proc

    @classmethod
    async def start(cls, *args):
        proc = await asyncio.create_subprocess_exec(
            tc.PARLEY, "listen", *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self = cls(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = await asyncio.wait_for(proc.stderr.readline(), 20)
            assert line, "parley listen ended before signing in"
            if b"listening as" in line:
                return self
        raise AssertionError("parley listen did not sign in")

    async def message(self, timeout=20):
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert line, "parley listen ended"
        return json.loads(line)

    async def stop(self):
        if self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)
        return (await self.proc.stderr.read()).decode()


def peer_for(server, user):
    return OmemoPeer(f"{user}@{DOMAIN}/py", tc.USERS[user], server.ca,
                     (tc.HOST, server.c2s_port), getattr(server, "mech", "SCRAM-SHA-256"))


def test_python_peer_and_parley_both_ways(server, tmp_path):
    alice = server.account("alice") + history_args(tmp_path, "alice")

    async def scenario():
        bob = await peer_for(server, "bob").start()
        # alice signs in (publishing her keys) and listens
        lis = await AsyncListener.start(*alice, "--count", "2", "--timeout", "60")
        await asyncio.sleep(0.5)
        errors = await bob.send_omemo(f"alice@{DOMAIN}", "hello from python-omemo")
        assert not errors, errors
        m = await lis.message()
        assert m["encrypted"] is True, m
        assert m["body"] == "hello from python-omemo", m
        assert m["from"].startswith(f"bob@{DOMAIN}")
        # a second one on the same session
        await bob.send_omemo(f"alice@{DOMAIN}", "second")
        m = await lis.message()
        assert m["body"] == "second" and m["encrypted"] is True, m
        await lis.stop()
        # Parley -> python: encrypted with the session the peer built
        rc, out, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message",
                                          "hello from parley", "-v", *alice)
        assert rc == 0, err
        assert "end-to-end encrypted" in err, err
        got = await bob.next_message(20)
        assert got["error"] is None, got
        assert got["encrypted"] and got["body"] == "hello from parley", got
        bob.disconnect()
    run(scenario())


def test_parley_starts_the_session(server, tmp_path):
    """Parley builds the session from the peer's bundle (X3DH as initiator)."""
    alice = server.account("alice") + history_args(tmp_path, "alice")

    async def scenario():
        bob = await peer_for(server, "bob").start()
        rc, out, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message",
                                          "first contact", "-v", *alice)
        assert rc == 0, err
        assert "end-to-end encrypted" in err, err
        got = await bob.next_message(20)
        assert got["error"] is None and got["body"] == "first contact", got
        assert b"kex='true'" in got["raw"] or b'kex="true"' in got["raw"], got["raw"]
        # the peer answers on the same session
        lis = await AsyncListener.start(*alice, "--count", "1", "--timeout", "40")
        await bob.send_omemo(f"alice@{DOMAIN}", "answer")
        m = await lis.message()
        assert m["encrypted"] and m["body"] == "answer", m
        await lis.stop()
        bob.disconnect()
    run(scenario())
