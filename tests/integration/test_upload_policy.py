"""File transfer under the admin policy (docs/file-transfer.md, docs/policy.md): each
refusal is an XMPP error whose text names the policy, and leaves a compliance record.
Policies are changed with `parleyctl policy` while parleyd runs."""
import asyncio

import pytest

from conftest import IqError, clients_for
from test_upload import (UPLOAD_JID, file_records, use_service, https, objects, request_slot, send_iq,
                         slot_xml, tmpfiles, upload_server, wait_records)

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


def policy(srv, *args):
    srv.ctl("policy", "set", *args)


async def refused(c, name, size, **kw):
    with pytest.raises(IqError) as ei:
        await send_iq(c, UPLOAD_JID, slot_xml(name, size, **kw))
    return ei.value.iq["error"]


def test_screen_capture_refused_for_user_whose_policy_forbids_it(server, run):
    srv = upload_server(server)
    policy(srv, "--user", "bob@localhost", "screen_capture", "false")

    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        err = await refused(b, "screen.png", 100, ctype="image/png", screen=True)
        assert err["condition"] == "not-allowed"
        assert "screen_capture" in err["text"]
        # an ordinary file is still fine for bob, and alice may share her screen
        await request_slot(b, "notes.txt", 100)
        a = await cl.login("alice", "a")
        await request_slot(a, "screen.png", 100, ctype="image/png", screen=True)
        rows = await wait_records(srv, type="slot", outcome="blocked-policy")
        assert len(rows) == 1 and rows[0]["sender"] == "bob@localhost/b"
        assert "screen-capture=\"true\"" in rows[0]["stanza"]
        assert rows[0]["verdict"] == "block"  # the policy refused it: not "allow"
    run(scenario)


def test_file_transfer_off_and_daily_quota(server, run):
    srv = upload_server(server)
    policy(srv, "--user", "carol@localhost", "file_transfer", "false")
    policy(srv, "--global", "file_daily_quota", "1000")

    async def scenario():
        cl = clients_for(srv)
        c = await cl.login("carol", "c")
        err = await refused(c, "a.txt", 10)
        assert err["condition"] == "not-allowed" and "file_transfer" in err["text"]
        a = await cl.login("alice", "a")
        await request_slot(a, "one.bin", 600)
        err = await refused(a, "two.bin", 600)
        assert err["condition"] == "resource-constraint" and "file_daily_quota" in err["text"]
        await request_slot(a, "small.bin", 400)  # exactly up to the quota
        rows = file_records(srv, type="slot", outcome="blocked-policy")
        assert sorted(r["reason"].split(":")[0] for r in rows) == \
            ["refused by policy file_daily_quota", "refused by policy file_transfer"]
    run(scenario)


def test_blocked_type_refused_even_when_renamed(server, run):
    srv = upload_server(server)
    policy(srv, "--global", "file_types_blocked", "exe,application/x-msdownload")

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        err = await refused(a, "setup.exe", len(EXE))
        assert err["condition"] == "not-allowed" and "file_types_blocked" in err["text"]
        err = await refused(a, "setup.bin", len(EXE), ctype="application/x-msdownload")
        assert "file_types_blocked" in err["text"]
        # renamed: the name and declared type pass, the content does not
        put, get = await request_slot(a, "quarterly-report.pdf", len(EXE), ctype="application/pdf")
        st, _, body = await asyncio.to_thread(https, srv, "PUT", put, EXE)
        assert st == 403 and b"file_types_blocked" in body and b"x-dosexec" in body
        msg = await a.wait_for("message", lambda m: str(m["from"]) == UPLOAD_JID, timeout=5)
        assert "file_types_blocked" in msg["body"] and "quarterly-report.pdf" in msg["body"]
        assert (await asyncio.to_thread(https, srv, "GET", get))[0] == 404
        assert objects(srv) == [] and tmpfiles(srv) == []
        # the slot is spent
        assert (await asyncio.to_thread(https, srv, "PUT", put, EXE))[0] == 404
        up = await wait_records(srv, type="upload")
        assert [(r["outcome"], r["file_type"], r["verdict"]) for r in up] == \
            [("blocked-policy", "application/x-dosexec", "block")]
        assert up[0]["reason"].startswith("refused by policy file_types_blocked")
    run(scenario)


def test_allowed_types_judge_content(server, run):
    srv = upload_server(server)
    policy(srv, "--user", "alice@localhost", "file_types_allowed", "pdf,image/png")

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        err = await refused(a, "notes.txt", 10)
        assert "file_types_allowed" in err["text"]
        # text renamed to .pdf: refused once its content is seen
        put, get = await request_slot(a, "fake.pdf", 12)
        st, _, body = await asyncio.to_thread(https, srv, "PUT", put, b"plain words\n")
        assert st == 403 and b"file_types_allowed" in body
        # a real PDF passes
        pdf = b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
        put, get = await request_slot(a, "real.pdf", len(pdf))
        assert (await asyncio.to_thread(https, srv, "PUT", put, pdf))[0] == 201
        st, hd, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == pdf and hd["content-type"] == "application/pdf"
    run(scenario)


def test_max_file_size_policy_below_the_server_ceiling(server, run):
    """max_file_size from the policy service, per user and per group, under the server's
    own upload_max_size (1M here): the smaller one decides, and the refusal names it."""
    srv = upload_server(server, ["upload_max_size = 1M"])
    policy(srv, "--user", "bob@localhost", "max_file_size", "1000")
    srv.ctl("group", "add", "interns")
    srv.ctl("group", "member", "add", "interns", "carol@localhost")
    policy(srv, "--group", "interns", "max_file_size", "2000")

    async def scenario():
        cl = clients_for(srv)
        for user, limit in (("bob", 1000), ("carol", 2000)):
            c = await cl.login(user, user[0], plugins=["xep_0363"])
            assert await use_service(c) == limit  # disco says the requester's own limit
            err = await refused(c, "big.bin", limit + 1)
            assert err["condition"] == "not-acceptable"
            assert err["text"] == (f"refused by policy max_file_size: {limit + 1} bytes is "
                                   f"over the limit of {limit} bytes")
            assert f"<max-file-size>{limit}</max-file-size>" in str(err)
            await request_slot(c, "fits.bin", limit)  # exactly the limit is fine
        # alice has no such policy: only the server's ceiling applies to her
        a = await cl.login("alice", "a", plugins=["xep_0363"])
        assert await use_service(a) == 1 << 20
        await request_slot(a, "big.bin", 5000)
        rows = file_records(srv, type="slot", outcome="blocked-policy")
        assert [(r["sender"], r["file_size"], r["verdict"]) for r in rows] == \
            [("bob@localhost/b", 1001, "block"), ("carol@localhost/c", 2001, "block")]
        assert all("max_file_size" in r["reason"] for r in rows)
    run(scenario)
