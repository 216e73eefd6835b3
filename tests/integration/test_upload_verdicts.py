"""File transfer under a compliance server (docs/file-transfer.md, verdict-protocol.md):
slot requests judged at stage "request", uploads quarantined (404 to GET) until the
verdict at stage "upload" allows them, blocked files deleted and the sender told why by
upload.localhost, every step in the compliance archive."""
import asyncio
import signal

from component_util import Component, error_condition, start_with_components, wait_until
import pytest

from conftest import IqError, clients_for, free_port, send_iq, wait_port
from test_upload import (UPLOAD_JID, file_records, https, objects, request_slot, slot_xml,
                         wait_records)


def judge(check):
    f = check["file"]
    name, stage = f.get("name"), f.get("stage")
    if stage == "request" and name == "forbidden.zip":
        return ("block", "archives may not leave the trading floor", None)
    if stage == "upload" and name == "bad.txt":
        return ("block", "contains client account numbers", None)
    if stage == "upload" and name == "slow.txt":
        return ("allow", None, None, 1.5)
    return ("allow", None, None)


def verdict_server(server, extra=(), timeout_ms=5000):
    port = free_port()
    srv, cport = start_with_components(
        server, extra=[f"https_port = {port}"] + list(extra), verdicts=True,
        timeout_ms=timeout_ms)
    srv.https_port = port
    assert wait_port(port, 10, srv.proc)
    return srv, cport


def test_quarantine_until_allow_and_block_deletes(server, run):
    srv, cport = verdict_server(server)

    async def scenario():
        comp = Component(srv, cport)
        comp.policy = judge
        await comp.start()
        cl = clients_for(srv)
        a = await cl.login("alice", "a")

        # stage "request": refused before any byte is sent
        with pytest.raises(IqError) as ei:
            await send_iq(a, UPLOAD_JID, slot_xml("forbidden.zip", 10))
        assert error_condition(ei.value.iq) == "policy-violation"
        assert "archives may not leave the trading floor" in ei.value.iq["error"]["text"]
        rows = await wait_records(srv, type="slot", outcome="blocked-compliance")
        assert rows and rows[0]["verdict"] == "block"

        # quarantined: 404 until the (slow) verdict allows it
        put, get = await request_slot(a, "slow.txt", 5, recipient="bob@localhost")
        st, _, body = await asyncio.to_thread(https, srv, "PUT", put, b"fine!")
        assert st == 201 and b"verdict" in body
        st, _, _ = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 404
        await wait_until(lambda: file_records(srv, type="verdict", outcome="released"),
                         timeout=8, what="release")
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == b"fine!"
        checks = [c["file"] for c in comp.checks if c["file"].get("name") == "slow.txt"]
        assert [c.get("stage") for c in checks] == ["request", "upload"]
        assert checks[1].get("sha256") and checks[1].get("type") == "text/plain"
        assert checks[1].get("recipient") == "bob@localhost"

        # blocked after upload: deleted, the sender told why
        put, get = await request_slot(a, "bad.txt", 12)
        st, _, _ = await asyncio.to_thread(https, srv, "PUT", put, b"ACCT-123-456")
        assert st == 201
        msg = await a.wait_for("message", lambda m: str(m["from"]) == UPLOAD_JID, timeout=8)
        assert "contains client account numbers" in msg["body"] and "bad.txt" in msg["body"]
        st, _, _ = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 404
        assert len(objects(srv)) == 1  # only slow.txt's bytes remain
        up = file_records(srv, type="upload", file_name="bad.txt")
        # no verdict yet when the bytes arrived: the "verdict" record carries it
        assert [(r["outcome"], r["verdict"]) for r in up] == [("quarantined", "pending")]
        vd = file_records(srv, type="verdict", file_name="bad.txt")
        assert [(r["outcome"], r["verdict"], r["reason"]) for r in vd] == \
            [("blocked-compliance", "block", "contains client account numbers")]
        await comp.stop()
    run(scenario)


def test_no_compliance_server_connected_blocks_upload(server, run):
    """compliance_server_failure = block: without a verdict nothing is granted."""
    srv, _ = verdict_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        with pytest.raises(IqError) as ei:
            await send_iq(a, UPLOAD_JID, slot_xml("x.txt", 10))
        assert ei.value.iq["error"]["condition"] == "service-unavailable"
        rows = await wait_records(srv, type="slot")
        assert rows and rows[0]["verdict"] == "block-unchecked"
    run(scenario)


def test_blocked_copy_keeps_the_bytes_of_an_allowed_one(server, run):
    """Identical content is stored once: when the compliance server blocks one upload of
    it, the bytes stay for the copy it allowed (and go with the last copy)."""
    srv, cport = verdict_server(server)

    async def scenario():
        comp = Component(srv, cport)
        comp.policy = judge
        await comp.start()
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        data = b"ACCT-123-456"
        put, get = await request_slot(a, "good.txt", len(data))
        assert (await asyncio.to_thread(https, srv, "PUT", put, data))[0] == 201
        await wait_until(lambda: file_records(srv, type="verdict", outcome="released"),
                         timeout=8, what="release")
        assert len(objects(srv)) == 1
        # bob sends the same bytes as "bad.txt": blocked and deleted ...
        put, bad_get = await request_slot(b, "bad.txt", len(data))
        assert (await asyncio.to_thread(https, srv, "PUT", put, data))[0] == 201
        await b.wait_for("message", lambda m: str(m["from"]) == UPLOAD_JID, timeout=8)
        assert (await asyncio.to_thread(https, srv, "GET", bad_get))[0] == 404
        # ... while alice's allowed copy still downloads, from the one stored object
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == data
        assert len(objects(srv)) == 1
        vd = file_records(srv, type="verdict")
        assert [(r["file_name"], r["outcome"], r["verdict"]) for r in vd] == \
            [("good.txt", "released", "allow"), ("bad.txt", "blocked-compliance", "block")]
        assert vd[0]["file_sha256"] == vd[1]["file_sha256"]
        await comp.stop()
    run(scenario)


def test_quarantined_file_judged_again_after_a_restart(server, run):
    """parleyd killed while a verdict is pending: the file stays quarantined (404), and the
    sweep asks the compliance server again once the time-out and a sweep interval have
    passed (30 s here: upload_expire_after = 60s makes the sweep run every 30 s)."""
    srv, cport = verdict_server(server, ["upload_expire_after = 60s"], timeout_ms=2000)

    def never_answers(check):
        if check["file"].get("stage") == "upload":
            return ("allow", None, None, 60)  # answered long after parleyd is gone
        return ("allow", None, None)

    async def scenario():
        comp = Component(srv, cport)
        comp.policy = never_answers
        await comp.start()
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        put, get = await request_slot(a, "limbo.txt", 6)
        assert (await asyncio.to_thread(https, srv, "PUT", put, b"limbo!"))[0] == 201
        srv.proc.send_signal(signal.SIGKILL)  # well within the 2 s verdict time-out
        srv.proc.wait(timeout=10)
        await cl.close_all()
        await comp.stop()
        assert [r["outcome"] for r in file_records(srv, type="upload")] == ["quarantined"]
        assert file_records(srv, type="verdict") == []
        await asyncio.sleep(3)  # the verdict time-out passes while parleyd is down
        srv.logf.close()
        srv.start()
        assert wait_port(srv.https_port, 10, srv.proc), srv.log_tail()
        comp = Component(srv, cport)
        comp.policy = judge
        await comp.start()
        assert (await asyncio.to_thread(https, srv, "GET", get))[0] == 404
        await wait_until(lambda: file_records(srv, type="verdict", outcome="released"),
                         timeout=45, what="a second verdict after the restart")
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == b"limbo!"
        asked = [c["file"] for c in comp.checks if c["file"].get("name") == "limbo.txt"]
        assert [c.get("stage") for c in asked] == ["upload"]
        await comp.stop()
    run(scenario, timeout=90)
