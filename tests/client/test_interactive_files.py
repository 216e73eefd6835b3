"""File transfer in the interactive client (tmux): /sendfile uploads through parleyd's
HTTPS listener and sends the link; the receiver's window offers /get N, which downloads
a byte-identical copy; a transfer the admin policy forbids shows the policy's reason."""
import hashlib
import os
import re

import pytest

from test_client import DOMAIN, Parleyd, free_port, wait_port
from test_interactive import TMUX, Term, tmux_dir  # noqa: F401  (tmux_dir is a fixture)

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


@pytest.fixture
def parleyd_https(tmp_path):
    srv = Parleyd(tmp_path / "parleyd")
    port = free_port()
    with open(srv.conf) as f:
        text = f.read()
    with open(srv.conf, "w") as f:
        f.write(re.sub(r"^https_port = 0$", f"https_port = {port}", text, flags=re.M))
    srv.start()
    assert wait_port(port, 10, srv.proc), "HTTPS listener not up"
    yield srv
    srv.stop()
    reports = [n for n in os.listdir(srv.dir) if n.startswith(("asan", "ubsan"))]
    assert not reports, f"sanitizer reports: {reports}"


def test_sendfile_and_get_in_the_chat_window(parleyd_https, tmux_dir):  # noqa: F811
    srv = parleyd_https
    data = os.urandom(50_000)
    outbox = os.path.join(str(tmux_dir), "outbox")
    os.makedirs(outbox)
    src = os.path.join(outbox, "quarterly report.bin")
    with open(src, "wb") as f:
        f.write(data)
    alice = Term(tmux_dir, "alice", srv, "alice").start()
    bob = Term(tmux_dir, "bob", srv, "bob").start()
    for t in (alice, bob):
        t.wait(r"signed in as")
    alice.type(f"/msg bob@{DOMAIN}")
    alice.type(f"/sendfile {src}")
    alice.wait(r"quarterly%20report\.bin")
    # bob's window for alice offers the file; /get saves it in the working directory
    bob.wait(r"win: \[1\] 2\(1\)")
    bob.keys("C-n")
    bob.wait(r"file 1 received: /get 1 downloads it")
    bob.type("/get 1")
    s = bob.wait(r"saved .*\.bin")
    saved = re.search(r"saved (.*\.bin)", s).group(1)
    path = saved if os.path.isabs(saved) else os.path.join(str(tmux_dir), saved)
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
    # Asked again, the client will not overwrite what it saved.
    bob.type("/get 1")
    bob.wait(r"download failed: .*already exists")
    # A number that is not a received file is a clear error, not a crash.
    bob.type("/get 7")
    bob.wait(r"no file 7 here \(1 received in this window\)")

    # The admin forbids alice's transfers: /sendfile says which policy refused.
    srv.ctl("policy", "set", "--user", f"alice@{DOMAIN}", "file_transfer", "false")
    alice.type(f"/sendfile {src}")
    alice.wait(r"not sent: .*file_transfer", timeout=30)
    assert "PARLEY-EXIT=0" in alice.quit()
    assert "PARLEY-EXIT=0" in bob.quit()


EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


def test_sendfile_in_a_room_window(parleyd_https, tmux_dir):  # noqa: F811
    """In a room window /sendfile sends the link to the room (groupchat with the
    out-of-band data): the room shows it once, and another occupant's room window offers
    /get, which downloads a byte-identical copy."""
    srv = parleyd_https
    data = os.urandom(30_000)
    src = os.path.join(str(tmux_dir), "outbox", "agenda.bin")
    os.makedirs(os.path.dirname(src))
    with open(src, "wb") as f:
        f.write(data)
    alice = Term(tmux_dir, "alice", srv, "alice").start()
    bob = Term(tmux_dir, "bob", srv, "bob").start()
    for t in (alice, bob):
        t.wait(r"signed in as")
    alice.type("/join team")
    alice.wait(r"you are in team@conference\.localhost as alice")
    bob.type("/join team")
    bob.wait(r"you are in team@conference\.localhost as bob")
    alice.wait(r"bob entered")
    alice.type(f"/sendfile {src}")
    # (the long URL wraps over lines)
    s = alice.wait(r"<alice>(.|\n)*https://localhost:\d+/file/(.|\n)*/agenda\.bin *$")
    assert "not sent" not in s and "bad-request" not in s, s
    assert s.count("<alice>") == 1, s
    bob.wait(r"<alice>(.|\n)*https://localhost:\d+/file/(.|\n)*/agenda\.bin *$")
    bob.wait(r"file 1 received: /get 1 downloads it")
    bob.type("/get 1")
    s = bob.wait(r"saved .*agenda\.bin")
    saved = re.search(r"saved (\S*agenda\.bin)", s).group(1)
    path = saved if os.path.isabs(saved) else os.path.join(str(tmux_dir), saved)
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
    assert "PARLEY-EXIT=0" in alice.quit()
    assert "PARLEY-EXIT=0" in bob.quit()


def test_sendfile_refused_at_upload_shows_the_reason(parleyd_https, tmux_dir):  # noqa: F811
    """The slot is granted for the name, but the content (an executable renamed .pdf) is
    refused at the upload: the window says which policy refused it and why."""
    srv = parleyd_https
    srv.ctl("policy", "set", "--global", "file_types_blocked", "exe")
    src = os.path.join(str(tmux_dir), "outbox", "quarterly-report.pdf")
    os.makedirs(os.path.dirname(src))
    with open(src, "wb") as f:
        f.write(EXE)
    alice = Term(tmux_dir, "alice", srv, "alice").start()
    alice.wait(r"signed in as")
    alice.type(f"/msg bob@{DOMAIN}")
    alice.type(f"/sendfile {src}")
    s = alice.wait(r"not sent: upload of quarterly-report\.pdf refused: HTTP 403", timeout=30)
    assert "file_types_blocked" in s, s
    assert "PARLEY-EXIT=0" in alice.quit()
