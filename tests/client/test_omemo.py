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


async def wait_devices(peer, user, n=1, timeout=15):
    """Until `user` has published n OMEMO devices (publication follows sign-in)."""
    deadline = time.monotonic() + timeout
    while len(await device_list(peer, user)) < n:
        assert time.monotonic() < deadline, f"{user} published no OMEMO device"
        await asyncio.sleep(0.1)
    await peer.refresh(f"{user}@{DOMAIN}")


def peer_for(server, user):
    return OmemoPeer(f"{user}@{DOMAIN}/py", tc.USERS[user], server.ca,
                     (tc.HOST, server.c2s_port), getattr(server, "mech", "SCRAM-SHA-256"))


def test_python_peer_and_parley_both_ways(server, tmp_path):
    alice = server.account("alice") + history_args(tmp_path, "alice")

    async def scenario():
        bob = await peer_for(server, "bob").start()
        # alice signs in (publishing her keys) and listens
        lis = await AsyncListener.start(*alice, "--count", "2", "--timeout", "60")
        await wait_devices(bob, "alice")
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
        raw = got["raw"]
        assert b"kex='true'" in raw or b'kex="true"' in raw, raw
        # XEP-0380 label, a fallback body for clients without OMEMO, the store hint
        assert b"urn:xmpp:eme:0" in raw and b'name="OMEMO"' in raw, raw
        assert b"your client cannot decrypt it" in raw and b"urn:xmpp:hints" in raw, raw
        assert b"first contact" not in raw
        # the peer answers on the same session
        lis = await AsyncListener.start(*alice, "--count", "1", "--timeout", "40")
        await bob.send_omemo(f"alice@{DOMAIN}", "answer")
        m = await lis.message()
        assert m["encrypted"] and m["body"] == "answer", m
        await lis.stop()
        bob.disconnect()
    run(scenario())


# --------------------------------------------------------------------------- Parley <-> Parley

def test_parley_to_parley_both_ways(parleyd, tmp_path):
    alice = parleyd.account("alice") + history_args(tmp_path, "alice")
    bob = parleyd.account("bob") + history_args(tmp_path, "bob")

    async def scenario():
        # bob signs in once so his device and bundle are on PEP
        lb = await AsyncListener.start(*bob, "--count", "1", "--timeout", "60")
        rc, _, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message", "hi bob",
                                        "-v", *alice)
        assert rc == 0 and "end-to-end encrypted" in err, err
        m = await lb.message()
        assert m["encrypted"] is True and m["body"] == "hi bob", m
        await lb.stop()
        la = await AsyncListener.start(*alice, "--count", "1", "--timeout", "60")
        rc, _, err = await parley_async("send", "--to", f"alice@{DOMAIN}", "--message",
                                        "hi alice", "-v", *bob)
        assert rc == 0 and "end-to-end encrypted" in err, err
        m = await la.message()
        assert m["encrypted"] is True and m["body"] == "hi alice", m
        await la.stop()
        # the history records them as encrypted; the server's archive never saw the text
        r = tc.parley("history", "show", "--with", f"bob@{DOMAIN}", *alice)
        rows = [json.loads(x) for x in r.stdout.splitlines()]
        assert {(x["body"], x["encrypted"]) for x in rows} >= {("hi bob", True), ("hi alice", True)}
    run(scenario())


# --------------------------------------------------------------------------- the policy matrix

def policy(srv, user, key, value):
    srv.ctl("policy", "set", "--user", f"{user}@{DOMAIN}", key, value)


def device_list(peer, user):
    async def get():
        from slixmpp.exceptions import IqError
        try:
            item = await peer.items(f"{user}@{DOMAIN}", "urn:xmpp:omemo:2:devices", None)
        except IqError as e:
            # Prosody says forbidden for a PEP node not yet made (presence access model)
            if e.condition in ("item-not-found", "forbidden"):
                return []
            raise
        el = None if item is None else item.find("{urn:xmpp:omemo:2}devices")
        return [] if el is None else [int(d.get("id")) for d in el]
    return get()


def test_policy_aes_false_plain_true(parleyd, tmp_path):
    """e2e_aes=false, e2e_plain=true: no keys published (a device published earlier is
    withdrawn), plaintext both ways, even to a peer that has OMEMO."""
    alice = parleyd.account("alice") + history_args(tmp_path, "alice")

    async def scenario():
        bob = await peer_for(parleyd, "bob").start()
        # first with encryption allowed: alice's device is published
        la = await AsyncListener.start(*alice, "--count", "1", "--timeout", "5")
        await asyncio.sleep(1)
        assert len(await device_list(bob, "alice")) == 1
        await la.stop()
        policy(parleyd, "alice", "e2e_aes", "false")
        la = await AsyncListener.start(*alice, "--count", "1", "--timeout", "40")
        deadline = time.monotonic() + 10
        while await device_list(bob, "alice"):
            assert time.monotonic() < deadline, "alice's device was not withdrawn"
            await asyncio.sleep(0.2)
        # bob (OMEMO) cannot find a device of alice's: he sends plaintext, she gets it
        bob.send_message(mto=f"alice@{DOMAIN}", mbody="plain to alice", mtype="chat")
        m = await la.message()
        assert m["body"] == "plain to alice" and m["encrypted"] is False, m
        await la.stop()
        rc, _, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message",
                                        "plain to bob", "-v", *alice)
        assert rc == 0 and "without end-to-end encryption" in err, err
        got = await bob.next_message(20)
        assert got["encrypted"] is False and got["body"] == "plain to bob", got
        bob.disconnect()
    run(scenario())


def test_policy_both_true_remote_without_e2e(parleyd, tmp_path):
    """e2e_aes=true, e2e_plain=true and a remote without OMEMO: plaintext, and the user is
    told so (the encrypted case is test_python_peer_and_parley_both_ways)."""
    alice = parleyd.account("alice") + history_args(tmp_path, "alice")
    bob = parleyd.account("bob")  # no key: no OMEMO device is kept for bob
    rc_plain = tc.parley("send", "--to", f"bob@{DOMAIN}", "--message", "no keys here", "-v",
                         *alice)
    assert rc_plain.returncode == 0, rc_plain.stderr
    assert "without end-to-end encryption" in rc_plain.stderr
    assert "has no OMEMO device" in rc_plain.stderr

    async def scenario():
        la = await AsyncListener.start(*alice, "--count", "1", "--timeout", "40")
        peer = await peer_for(parleyd, "bob").start()  # a plain message from an OMEMO peer
        peer.send_message(mto=f"alice@{DOMAIN}", mbody="plain is fine", mtype="chat")
        m = await la.message()
        assert m["body"] == "plain is fine" and m["encrypted"] is False, m
        await la.stop()
        peer.disconnect()
    run(scenario())
    del bob


def test_malformed_device_list_is_no_reason_to_send_plaintext(parleyd, tmp_path):
    """e2e_aes=true, e2e_plain=true, and bob's published OMEMO device list is garbage (a
    broken client, or whoever can alter PEP): his devices are unknown, not absent, so the
    message is NOT sent in plaintext; the user is told it was not sent. Bob then publishes
    a valid list: the same command sends encrypted."""
    import xml.etree.ElementTree as ET
    alice = parleyd.account("alice") + history_args(tmp_path, "alice")

    async def scenario():
        bob = await peer_for(parleyd, "bob").start()
        la = await AsyncListener.start(*alice, "--count", "1", "--timeout", "5")
        await la.stop()  # alice's keys are published
        await wait_devices(bob, "bob")
        good = (await bob.items(f"bob@{DOMAIN}", "urn:xmpp:omemo:2:devices", None)).find(
            "{urn:xmpp:omemo:2}devices")
        bad = ET.Element("{urn:xmpp:omemo:2}devices")
        ET.SubElement(bad, "{urn:xmpp:omemo:2}device", {"id": "not-a-number"})
        await bob.publish("urn:xmpp:omemo:2:devices", "current", bad, False)
        rc, _, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message",
                                        "must not go out in plaintext", "-v", *alice)
        assert rc != 0, err
        assert "not sent" in err and "malformed" in err, err
        assert "sent to bob@" not in err, err
        with pytest.raises(asyncio.TimeoutError):
            await bob.next_message(2)
        await bob.publish("urn:xmpp:omemo:2:devices", "current", good, False)
        rc, _, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message",
                                        "now encrypted", "-v", *alice)
        assert rc == 0, err
        got = await bob.next_message(20)
        assert got["encrypted"] is True and got["body"] == "now encrypted", got
        bob.disconnect()
    run(scenario())


def test_policy_aes_true_plain_false(parleyd, tmp_path):
    """e2e_aes=true, e2e_plain=false: encrypted with an OMEMO peer; to and from a remote
    without it nothing goes, with a clear error each time."""
    policy(parleyd, "alice", "e2e_plain", "false")
    alice = parleyd.account("alice") + history_args(tmp_path, "alice")
    # bob has no OMEMO device at all: refused by the client itself (exit 5, why)
    r = tc.parley("send", "--to", f"bob@{DOMAIN}", "--message", "must not leave", *alice)
    assert r.returncode == tc.EXIT["policy"], r.stderr
    assert "has no OMEMO device" in r.stderr and "forbids" in r.stderr, r.stderr

    async def scenario():
        bob = await peer_for(parleyd, "bob").start()
        la = await AsyncListener.start(*alice, "--count", "1", "--timeout", "40")
        await wait_devices(bob, "alice")
        # plaintext from bob: refused (the server bounces it; alice never shows it)
        bob.send_message(mto=f"alice@{DOMAIN}", mbody="plain attempt", mtype="chat")
        got = await bob.next_message(20)
        assert got["error"] is not None and b"policy-violation" in got["raw"], got
        # encrypted from bob: delivered
        assert not await bob.send_omemo(f"alice@{DOMAIN}", "encrypted is fine")
        m = await la.message()
        assert m["body"] == "encrypted is fine" and m["encrypted"] is True, m
        await la.stop()
        # and alice to bob, now that he has a device: encrypted
        rc, _, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message",
                                        "encrypted reply", "-v", *alice)
        assert rc == 0 and "end-to-end encrypted" in err, err
        got = await bob.next_message(20)
        assert got["encrypted"] and got["body"] == "encrypted reply", got
        bob.disconnect()
    run(scenario())


def test_policy_false_false_is_refused(parleyd):
    policy(parleyd, "alice", "e2e_plain", "false")
    cmd = [os.path.join(tc.BUILD, "parleyctl"), "-c", parleyd.conf, "policy", "set", "--user",
           f"alice@{DOMAIN}", "e2e_aes", "false"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "e2e" in (r.stdout + r.stderr)


def test_group_chat_type_is_never_encrypted(parleyd, tmp_path):
    """A groupchat-type message goes out in plaintext even with both peers on OMEMO."""
    alice = parleyd.account("alice") + history_args(tmp_path, "alice")

    async def scenario():
        bob = await peer_for(parleyd, "bob").start()
        la = await AsyncListener.start(*alice, "--count", "1", "--timeout", "5")
        await la.stop()
        rc, _, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message", "to the room",
                                        "--type", "groupchat", "-v", *alice)
        assert "without end-to-end encryption" in err, err
        bob.disconnect()
    run(scenario())


# --------------------------------------------------------------------------- bad input

def test_tampered_replayed_and_foreign_messages(parleyd, tmp_path):
    alice = parleyd.account("alice") + history_args(tmp_path, "alice")

    async def scenario():
        import copy
        import xml.etree.ElementTree as ET
        import twomemo.etree
        bob = await peer_for(parleyd, "bob").start()
        la = await AsyncListener.start(*alice, "--count", "5", "--timeout", "60")
        to = f"alice@{DOMAIN}"
        await wait_devices(bob, "alice")
        await bob.sm.refresh_device_list(bob_ns(), to)

        async def encrypt(text):
            msgs, errs = await bob.sm.encrypt(frozenset([to]), {bob_ns(): bob.envelope(
                text, f"bob@{DOMAIN}", to)})
            return twomemo.etree.serialize_message(next(iter(msgs)))
        first = await encrypt("genuine")
        bob.send_element(to, copy.deepcopy(first))
        m = await la.message()
        assert m["body"] == "genuine" and m["encrypted"], m
        # the same message again: ignored (not shown twice), with a notice
        bob.send_element(to, copy.deepcopy(first))
        # a flipped payload byte: reported, never shown as an empty message
        tampered = await encrypt("tampered")
        pl = tampered.find("{urn:xmpp:omemo:2}payload")
        raw = bytearray(__import__("base64").b64decode(pl.text))
        raw[3] ^= 0x01
        pl.text = __import__("base64").b64encode(bytes(raw)).decode()
        bob.send_element(to, tampered)
        m = await la.message()
        assert m["body"] is None and m["encrypted"] is True, m
        assert "authentication failed" in m["e2e_error"], m
        # after that the session still works
        bob.send_element(to, await encrypt("still fine"))
        m = await la.message()
        assert m["body"] == "still fine", m
        # a message whose keys are for another device only
        foreign = await encrypt("not for you")
        for keys in foreign.iter("{urn:xmpp:omemo:2}keys"):
            for k in keys:
                k.set("rid", "1")
        bob.send_element(to, foreign)
        m = await la.message()
        assert m["body"] is None and "not encrypted for this device" in m["e2e_error"], m
        # a garbage key element
        junk = await encrypt("junk")
        for k in junk.iter("{urn:xmpp:omemo:2}key"):
            k.text = "AAAA"
        bob.send_element(to, junk)
        m = await la.message()
        assert m["body"] is None and m["e2e_error"], m
        err = await la.stop()
        assert "replayed" in err, err
        bob.disconnect()
        del ET
    run(scenario())


def bob_ns():
    return "urn:xmpp:omemo:2"


# --------------------------------------------------------------------------- trust

def test_fingerprints_trust_and_changed_identity(parleyd, tmp_path):
    alice = parleyd.account("alice") + history_args(tmp_path, "alice")

    async def scenario():
        bob = await peer_for(parleyd, "bob").start()
        bob_fp, bob_id = await bob.own_fingerprint()
        la = await AsyncListener.start(*alice, "--count", "2", "--timeout", "60")
        await wait_devices(bob, "alice")
        await bob.send_omemo(f"alice@{DOMAIN}", "hello")
        m = await la.message()
        assert m["trust"] == "blind", m
        # the fingerprint Parley shows for alice is the one the peer computes
        r = tc.parley("keys", *alice)
        keys = [json.loads(x) for x in r.stdout.splitlines()]
        assert r.returncode == 0 and any(k.get("own") for k in keys), r.stdout + r.stderr
        own = next(k for k in keys if k.get("own"))
        devs = await bob.sm.get_device_information(f"alice@{DOMAIN}")
        dev = next(d for d in devs if d.device_id == own["device"])
        assert own["fingerprint"] == " ".join(bob.sm.format_identity_key(dev.identity_key))
        # bob's device as alice sees it; verify it
        entry = next(k for k in keys if k["jid"] == f"bob@{DOMAIN}" and k["device"] == bob_id)
        assert entry["fingerprint"] == bob_fp and entry["trust"] == "blind", entry
        r = tc.parley("keys", "trust", f"bob@{DOMAIN}", bob_fp.replace(" ", ""), *alice)
        assert r.returncode == 0, r.stderr
        r = tc.parley("keys", "trust", f"bob@{DOMAIN}", "00" * 32, *alice)
        assert r.returncode != 0 and "no known device" in r.stderr
        keys = [json.loads(x) for x in tc.parley("keys", "--with", f"bob@{DOMAIN}", *alice).stdout.splitlines()]
        assert next(k for k in keys if k.get("device") == bob_id)["trust"] == "verified"
        # bob's device comes back with a new identity key under the same id: flagged
        bob.disconnect()
        st = bob.new_identity_storage(f"alice@{DOMAIN}")
        bob2 = await peer_for(parleyd, "bob").start(st)
        assert (await bob2.own_fingerprint())[1] == bob_id
        await bob2.send_omemo(f"alice@{DOMAIN}", "new key, same device")
        m = await la.message()
        assert m["body"] == "new key, same device" and m.get("key_changed") is True, m
        assert m["trust"] == "untrusted", m  # it was verified: the new key is not
        err = await la.stop()
        assert "CHANGED" in err, err
        bob2.disconnect()
    run(scenario())


def test_memory_only_device_messages_stay_decryptable(parleyd):
    """Without a history key the OMEMO keys live for one session; the device stays listed
    after it signs out, so a message it sent can still be decrypted (here after the sender
    is gone)."""
    async def scenario():
        rc, _, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message",
                                        "from a passing device", *parleyd.account("alice"))
        assert rc == 0, err
        # bob has no OMEMO device yet: plaintext; now he gets one and alice comes again
        bob = await peer_for(parleyd, "bob").start()
        got = await bob.next_message(20)  # the offline plaintext message
        assert got["body"] == "from a passing device" and not got["encrypted"], got
        rc, _, err = await parley_async("send", "--to", f"bob@{DOMAIN}", "--message",
                                        "encrypted, then gone", "-v", *parleyd.account("alice"))
        assert rc == 0 and "end-to-end encrypted" in err, err
        got = await bob.next_message(20)
        assert got["error"] is None and got["body"] == "encrypted, then gone", got
        # both of alice's passing devices are still listed
        assert len(await device_list(bob, "alice")) == 2
        bob.disconnect()
    run(scenario())


def test_session_healing(parleyd, tmp_path):
    """A message from a device we have no session with (and no key exchange) is reported,
    and answered by a new key exchange (XEP-0384 session healing): the next message
    decrypts."""
    alice = parleyd.account("alice") + history_args(tmp_path, "alice")

    async def scenario():
        import base64
        import copy
        import twomemo.etree
        from twomemo.twomemo_pb2 import OMEMOKeyExchange
        bob = await peer_for(parleyd, "bob").start()
        la = await AsyncListener.start(*alice, "--count", "2", "--timeout", "60")
        to = f"alice@{DOMAIN}"
        await wait_devices(bob, "alice")
        msgs, _ = await bob.sm.encrypt(frozenset([to]), {bob_ns(): bob.envelope(
            "lost", f"bob@{DOMAIN}", to)})
        el = twomemo.etree.serialize_message(next(iter(msgs)))
        # the key exchange stripped: as if alice had lost the session
        for keys in el.iter("{urn:xmpp:omemo:2}keys"):
            for k in keys:
                if k.get("kex") == "true":
                    kex = OMEMOKeyExchange.FromString(base64.b64decode(k.text))
                    k.text = base64.b64encode(kex.message.SerializeToString()).decode()
                    del k.attrib["kex"]
        bob.send_element(to, copy.deepcopy(el))
        m = await la.message()
        assert m["body"] is None and "no session" in m["e2e_error"], m
        # alice's new key exchange reaches bob (an empty message) and replaces his session
        deadline = time.monotonic() + 15
        backend = bob.sm._SessionManager__backends[0]
        dev = next(iter(await bob.sm.get_device_information(to)))
        while True:
            session = await backend.load_session(to, dev.device_id)
            if session is not None and session.initiation.name == "PASSIVE":
                break  # bob's session now comes from alice's key exchange
            if time.monotonic() > deadline:
                raise AssertionError(f"no new session from alice: {session.initiation} {[bob.inbox.get_nowait() for _ in range(bob.inbox.qsize())]} " + await la.stop())
            await asyncio.sleep(0.2)
        assert not await bob.send_omemo(to, "after healing")
        m = await la.message()
        assert m["body"] == "after healing" and m["encrypted"], m
        err = await la.stop()
        assert "new OMEMO session" in err, err
        bob.disconnect()
    run(scenario())
