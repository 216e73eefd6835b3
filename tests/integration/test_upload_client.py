"""Parley's own client for file transfer: `parley send-file` and `parley screenshot`
against parleyd (slixmpp on the receiving side), including the policy's refusal, files
to a room, and the reasons for refusals after the slot (the PUT refused, the compliance
server's block)."""
import asyncio
import hashlib
import os
import resource
import signal
import subprocess
import sys

import pytest

from component_util import Component
from conftest import BUILD, HOST, clients_for
from muc_util import configure, occupied_room, presence_of
from test_upload import file_records, https, upload_server, wait_records
from test_upload_policy import EXE
from test_upload_verdicts import judge, verdict_server

PARLEY = os.environ.get("PARLEY_CLIENT", os.path.join(BUILD, "parley"))
NS_OOB = "jabber:x:oob"


def parley(srv, user, *args, env_extra=None, timeout=60):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = f"detect_leaks=1:log_path={srv.dir}/asan-client"
    env.pop("DISPLAY", None)
    env.update(env_extra or {})
    cmd = [PARLEY, *args, "--jid", f"{user}@localhost",
           "--password-file", os.path.join(srv.dir, f".pw-{user}"), "--ca-file", srv.ca,
           "--server", f"{HOST}:{srv.c2s_port}", "--timeout", "20",
           "--config", os.path.join(srv.dir, "none.conf")]
    open(os.path.join(srv.dir, "none.conf"), "a").close()
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=srv.dir)


def test_parley_send_file_and_screenshot(server, run):
    srv = upload_server(server)
    srv.ctl("policy", "set", "--user", "carol@localhost", "screen_capture", "false")
    data = os.urandom(70_000)
    path = os.path.join(srv.dir, "plan v2.bin")
    with open(path, "wb") as f:
        f.write(data)
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753"
                        "de0000000c4944415478da63f8cfc0000003010100c9fe92ef0000000049454e44ae426082")
    img = os.path.join(srv.dir, "shot.png")
    with open(img, "wb") as f:
        f.write(png)

    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        p = await asyncio.to_thread(parley, srv, "alice", "send-file", "--to", "bob@localhost", path)
        assert p.returncode == 0, p.stderr
        url = p.stdout.strip()
        assert url.startswith("https://localhost:") and url.endswith("/plan%20v2.bin"), url
        m = await b.wait_for("message", lambda m: m["body"] == url, timeout=10)
        assert f"<url>{url}</url>" in str(m) and NS_OOB in str(m)
        st, hd, body = await asyncio.to_thread(https, srv, "GET", url)
        assert st == 200 and body == data
        up = (await wait_records(srv, type="upload"))[0]
        assert up["recipient"] == "bob@localhost"
        assert up["file_sha256"] == hashlib.sha256(data).hexdigest()

        # a screen capture from a picture (no X11 here), marked as such
        p = await asyncio.to_thread(parley, srv, "alice", "screenshot", "--to", "bob@localhost",
                                    "--file", img)
        assert p.returncode == 0, p.stderr
        shot = await wait_records(srv, 2, type="upload")
        assert "screen-capture=\"true\"" in shot[1]["stanza"]
        assert shot[1]["file_name"].startswith("screenshot-") and shot[1]["file_type"] == "image/png"

        # refused by carol's policy: exit 5 and the policy's reason
        p = await asyncio.to_thread(parley, srv, "carol", "screenshot", "--to", "bob@localhost",
                                    "--file", img)
        assert p.returncode == 5, (p.returncode, p.stderr)
        assert "screen_capture" in p.stderr and "refused" in p.stderr
        # no screen and no picture: a clear usage error
        p = await asyncio.to_thread(parley, srv, "alice", "screenshot", "--to", "bob@localhost")
        assert p.returncode == 1 and "DISPLAY" in p.stderr and "--file" in p.stderr
    run(scenario)


# --------------------------------------------------------------------------- rooms

def test_send_file_to_a_room(server, run):
    """`parley send-file --room` joins the room, sends the link as groupchat with the
    out-of-band data, and leaves; an occupant downloads a byte-identical copy and the
    compliance record names the room. Without --room the room refuses the (chat) link,
    and the client says so instead of reporting success."""
    srv = upload_server(server)
    data = os.urandom(40_000)
    path = os.path.join(srv.dir, "minutes.bin")
    with open(path, "wb") as f:
        f.write(data)

    async def scenario():
        cl = clients_for(srv)
        rjid, bob, carol = await occupied_room(cl, "files", "bob", "carol")
        p = await asyncio.to_thread(parley, srv, "alice", "send-file", "--room", "--to", rjid,
                                    path)
        assert p.returncode == 0, p.stderr
        url = p.stdout.strip()
        m = await carol.wait_for("mucm", lambda m: m["type"] == "groupchat" and m["body"] == url,
                                 timeout=10)
        assert m["from"].bare == rjid and m["from"].resource == "alice"
        assert f"<url>{url}</url>" in str(m) and NS_OOB in str(m)
        st, _, body = await asyncio.to_thread(https, srv, "GET", url)
        assert st == 200 and body == data
        up = (await wait_records(srv, type="upload"))[0]
        assert up["recipient"] == rjid and up["outcome"] == "stored"
        # alice came only for the transfer
        await carol.wait_for("mucp", presence_of(rjid, "alice", "unavailable"), timeout=10)

        # a chat message to a room is refused: no success, the room's reason shown
        p = await asyncio.to_thread(parley, srv, "alice", "send-file", "--to", rjid, path)
        assert p.returncode != 0, p.stdout
        assert "bad-request" in p.stderr and "groupchat" in p.stderr, p.stderr
        assert p.stdout.strip() == ""
        # a room alice may not enter: nothing is uploaded
        await configure(bob, rjid, {"membersonly": "1"})
        p = await asyncio.to_thread(parley, srv, "alice", "send-file", "--room", "--to", rjid,
                                    path)
        assert p.returncode != 0, p.stdout
        assert "cannot enter room" in p.stderr and "registration-required" in p.stderr, p.stderr
        assert len(file_records(srv, type="upload")) == 2
    run(scenario)


# --------------------------------------------------------------------------- refusals after the slot

def test_send_file_put_refused_shows_the_reason(server, run):
    """The slot is granted for the declared name, but the content (an executable renamed
    .pdf) is refused by the blocked-types policy at PUT: exit 5 with the policy's reason,
    and no link sent."""
    srv = upload_server(server)
    srv.ctl("policy", "set", "--global", "file_types_blocked", "exe,application/x-msdownload")
    path = os.path.join(srv.dir, "quarterly-report.pdf")
    with open(path, "wb") as f:
        f.write(EXE)

    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        p = await asyncio.to_thread(parley, srv, "alice", "send-file", "--to", "bob@localhost",
                                    path)
        assert p.returncode == 5, (p.returncode, p.stderr)
        assert "quarterly-report.pdf refused: HTTP 403" in p.stderr, p.stderr
        assert "file_types_blocked" in p.stderr and "x-dosexec" in p.stderr
        assert p.stdout.strip() == ""
        await b.expect_none("message", lambda m: "quarterly-report" in m["body"], duration=1)
        up = await wait_records(srv, type="upload")
        assert [r["outcome"] for r in up] == ["blocked-policy"]
    run(scenario)


def test_send_file_blocked_by_the_compliance_server(server, run):
    """Under a compliance server the upload is held until its verdict: the client waits
    for it, sends the link once released, and on a block exits 5 with the compliance
    server's reason (upload.localhost's notice) and sends no link."""
    srv, cport = verdict_server(server)
    good = os.path.join(srv.dir, "slow.txt")
    bad = os.path.join(srv.dir, "bad.txt")
    with open(good, "w") as f:
        f.write("fine!")
    with open(bad, "w") as f:
        f.write("ACCT-123-456")

    async def scenario():
        comp = Component(srv, cport)
        # files: slow.txt allowed after 1.5 s, bad.txt blocked; messages (the links) pass
        comp.policy = lambda c: judge(c) if c["file"] is not None else ("allow", None, None)
        await comp.start()
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        p = await asyncio.to_thread(parley, srv, "alice", "send-file", "--to", "bob@localhost",
                                    good)
        assert p.returncode == 0, p.stderr
        url = p.stdout.strip()
        await b.wait_for("message", lambda m: m["body"] == url, timeout=10)
        # the link came after the release: it works at once
        st, _, body = await asyncio.to_thread(https, srv, "GET", url)
        assert st == 200 and body == b"fine!"

        p = await asyncio.to_thread(parley, srv, "alice", "send-file", "--to", "bob@localhost",
                                    bad)
        assert p.returncode == 5, (p.returncode, p.stderr)
        assert "blocked by the compliance server" in p.stderr
        assert "contains client account numbers" in p.stderr and "bad.txt" in p.stderr
        assert p.stdout.strip() == ""
        await b.expect_none("message", lambda m: "bad.txt" in m["body"], duration=1)
        vd = file_records(srv, type="verdict", file_name="bad.txt")
        assert [r["outcome"] for r in vd] == ["blocked-compliance"]
        await comp.stop()
    run(scenario)


def test_send_file_disk_full_says_insufficient_storage(server, run, monkeypatch):
    """parleyd may write no file larger than 4 MiB (RLIMIT_FSIZE, SIGXFSZ ignored: writes
    past it fail with EFBIG, which parleyd treats as a full disk): the server answers the
    PUT with 507, and `parley send-file` says the server is out of storage space."""
    limit = 4 << 20

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    real_popen = subprocess.Popen

    def popen(args, *a, **kw):
        if isinstance(args, (list, tuple)) and os.path.basename(str(args[0])) == "parleyd":
            kw["preexec_fn"] = limited
        return real_popen(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", popen)
    srv = upload_server(server)
    monkeypatch.setattr(subprocess, "Popen", real_popen)
    path = os.path.join(srv.dir, "big.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(limit + (2 << 20)))

    async def scenario():
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        p = await asyncio.to_thread(parley, srv, "alice", "send-file", "--to", "bob@localhost",
                                    path)
        assert p.returncode == 7, (p.returncode, p.stderr)
        assert "out of storage space" in p.stderr and "HTTP 507" in p.stderr, p.stderr
        assert "insufficient storage" in p.stderr
        assert p.stdout.strip() == ""
        await b.expect_none("message", lambda m: "big.bin" in m["body"], duration=1)
        up = await wait_records(srv, type="upload")
        assert [(r["outcome"], r["reason"]) for r in up] == [("failed", "insufficient storage")]
    run(scenario)


# --------------------------------------------------------------------------- interactive

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "client"))
from test_interactive import TMUX, Term, tmux_dir  # noqa: E402,F401  (tmux_dir is a fixture)


class TermServer:
    """What test_interactive's Term needs of a server, from conftest's Server."""

    def __init__(self, srv):
        self.ca, self.c2s_port = srv.ca, srv.c2s_port
        self.pwfiles = {u: os.path.join(srv.dir, f".pw-{u}") for u in ("alice", "bob", "carol")}


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_interactive_sendfile_blocked_by_the_compliance_server(server, run, tmux_dir):  # noqa: F811
    """/sendfile of a file the compliance server blocks after the upload: the
    conversation window says so, with the compliance server's reason, and no link goes
    out."""
    srv, cport = verdict_server(server)
    bad = os.path.join(str(tmux_dir), "bad.txt")
    with open(bad, "w") as f:
        f.write("ACCT-123-456")

    async def scenario():
        comp = Component(srv, cport)
        comp.policy = lambda c: judge(c) if c["file"] is not None else ("allow", None, None)
        await comp.start()
        cl = clients_for(srv)
        b = await cl.login("bob", "b")
        alice = Term(tmux_dir, "alice", TermServer(srv), "alice").start()
        await asyncio.to_thread(alice.wait, r"signed in as")
        alice.type("/msg bob@localhost")
        alice.type(f"/sendfile {bad}")
        s = await asyncio.to_thread(alice.wait, r"not sent: .*blocked by the compliance", 30)
        assert "bad.txt" in s
        s = await asyncio.to_thread(alice.wait, r"contains client account\s+numbers", 5)
        assert "https://" not in s, s
        await b.expect_none("message", lambda m: "bad.txt" in m["body"], duration=1)
        assert "PARLEY-EXIT=0" in await asyncio.to_thread(alice.quit)
        await comp.stop()
    run(scenario)
