"""The interactive `parley` client in a real terminal (tmux), and the local history.

    PARLEY_BUILD=/work/main/build /usr/bin/python3 -m pytest -q tests/client/test_interactive.py

Each test starts a fresh parleyd (see test_client.py), runs `parley` for alice (and bob)
inside a private tmux server (`tmux -S <tmp>/sock`, 120x40), types with send-keys and
reads the screen with capture-pane. The second party is bob's own interactive client or
`parley send`. Everything is on loopback and every wait is bounded; the clients run with
ASan/UBSan logs in the test directory, which must stay empty.
"""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from test_client import DOMAIN, PARLEY, parleyd  # noqa: F401  (parleyd is a fixture)

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
EXIT_HISTORY = 8


class Term:
    """One tmux session running `parley` for one account."""

    def __init__(self, tmp, name, srv, user, mode="default", lang="C.UTF-8", key=True):
        self.tmp, self.name, self.srv, self.user = str(tmp), name, srv, user
        self.sock = os.path.join(self.tmp, "tmux.sock")
        self.conf = write_config(tmp, srv, user, mode, key)
        self.lang = lang
        self.asan = os.path.join(self.tmp, "sanitizer")
        os.makedirs(self.asan, exist_ok=True)

    def tmux(self, *args, check=True):
        return subprocess.run([TMUX, "-S", self.sock, "-f", "/dev/null"] + list(args),
                              capture_output=True, text=True, timeout=20, check=check)

    def start(self):
        env = (f"env -i PATH=/usr/bin:/bin HOME={self.tmp} TERM=screen LANG={self.lang} "
               f"LC_ALL={self.lang} TZ=UTC "
               f"ASAN_OPTIONS=detect_leaks=1:log_path={self.asan}/asan-{self.name} "
               f"UBSAN_OPTIONS=print_stacktrace=1:log_path={self.asan}/ubsan-{self.name}")
        # The shell stays after parley exits, so the exit code can be read off the screen.
        cmd = f"{env} {PARLEY} --config {self.conf}; echo PARLEY-EXIT=$?; sleep 60"
        # In the test's directory: downloads (/get) land there, never in the source tree.
        self.tmux("new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", "-c", self.tmp,
                  cmd)
        return self

    def keys(self, *keys):
        self.tmux("send-keys", "-t", self.name, *keys)

    def type(self, text):
        """Type a line and press Enter."""
        self.tmux("send-keys", "-t", self.name, "-l", text)
        self.tmux("send-keys", "-t", self.name, "Enter")

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", self.name).stdout

    def wait(self, pattern, timeout=20.0, absent=False):
        """Wait until the screen matches the regex (or stops matching it)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            found = re.search(pattern, s, re.M) is not None
            if found != absent:
                # A match may be caught mid-redraw, with the lines that follow it not yet
                # drawn: give the client a moment and return the settled screen.
                time.sleep(0.15)
                settled = self.screen()
                return settled if (re.search(pattern, settled, re.M) is not None) != absent else s
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {'still' if absent else 'never'} "
                                     f"matched {pattern!r}; screen:\n{s}")
            time.sleep(0.1)

    def line(self, pattern):
        """The screen line matching pattern."""
        for ln in self.screen().splitlines():
            if re.search(pattern, ln):
                return ln
        return None

    def quit(self):
        self.type("/quit")
        return self.wait(r"PARLEY-EXIT=(\d+)", timeout=20)


def write_config(tmp, srv, user, mode, key=True):
    d = os.path.join(str(tmp), user)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "parley.conf")
    lines = [f"jid = {user}@{DOMAIN}", f"password_file = {srv.pwfiles[user]}",
             f"ca_file = {srv.ca}", f"server = 127.0.0.1:{srv.c2s_port}",
             f"history = {mode}", f"data_dir = {d}/data"]
    if key:
        kf = os.path.join(d, "history.key")
        if not os.path.exists(kf):
            with open(kf, "wb") as f:
                f.write(os.urandom(32))
            os.chmod(kf, 0o600)
        lines.append(f"history_key_file = {kf}")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    return conf


def db_path(tmp, user):
    return os.path.join(str(tmp), user, "data", f"{user}@{DOMAIN}.db")


def parley_cmd(*args, timeout=60):
    return subprocess.run([PARLEY] + list(args), capture_output=True, text=True,
                          timeout=timeout)


def history(tmp, user, *args):
    conf = os.path.join(str(tmp), user, "parley.conf")
    return parley_cmd("--config", conf, "history", *args)


def send_as(srv, user, to, text):
    r = parley_cmd(*srv.account(user), "send", "--to", to, "--message", text)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def tmux_dir(tmp_path):
    d = tmp_path / "ui"
    d.mkdir()
    yield d
    sock = str(d / "tmux.sock")
    subprocess.run([TMUX, "-S", sock, "kill-server"], capture_output=True, timeout=20)
    san = d / "sanitizer"
    reports = sorted(os.listdir(san)) if san.exists() else []
    for n in reports:
        print(open(san / n).read())
    assert not reports, f"sanitizer reports: {reports}"


def befriend(alice, bob):
    """alice adds bob; both accept each other from the subscription prompt."""
    alice.type(f"/add bob@{DOMAIN}")
    bob.wait(rf"alice@{DOMAIN} asks to see your presence: /accept")
    bob.type(f"/accept alice@{DOMAIN}")
    alice.wait(rf"bob@{DOMAIN} asks to see your presence: /accept")
    alice.type(f"/accept bob@{DOMAIN}")
    alice.wait(rf"^bob@{DOMAIN} online\b")
    bob.wait(rf"^alice@{DOMAIN} online\b")


def test_chat_default_mode(parleyd, tmux_dir):  # noqa: F811
    alice = Term(tmux_dir, "alice", parleyd, "alice").start()
    bob = Term(tmux_dir, "bob", parleyd, "bob").start()
    for t in (alice, bob):
        t.wait(r"signed in as")
        # the client-to-server lock in the status bar
        t.wait(r"\[TLS1\.3 🔒\] \S+@localhost/\S+ online")
    befriend(alice, bob)

    # messages from bob open window 2 without switching: unread counts rise
    send_as(parleyd, "bob", f"alice@{DOMAIN}", "hello from bob, periwinkle")
    s = alice.wait(r"win: \[1\] 2\(1\)")
    assert re.search(rf"^bob@{DOMAIN} online \(1\)", s, re.M), s
    send_as(parleyd, "bob", f"alice@{DOMAIN}", "second note")
    s = alice.wait(r"win: \[1\] 2\(2\)")
    assert re.search(rf"^bob@{DOMAIN} online \(2\)", s, re.M), s

    # Alt-2 opens it: two Parley clients under the default policy encrypt (OMEMO), so
    # the messages carry the end-to-end lock and the header says so
    alice.keys("M-2")
    s = alice.wait(r"hello from bob, periwinkle")
    assert re.search(r"win: 1 \[2\]", s), s
    alice.wait(r"🔐 end-to-end encrypted")
    msg = alice.line(r"hello from bob, periwinkle")
    assert "🔐" in msg
    assert re.search(rf"\d\d:\d\d 🔐 <bob@{DOMAIN}> hello from bob", msg), msg

    # the keys: this device's fingerprint and bob's devices with their trust
    alice.type("/fingerprint")
    alice.wait(r"this device \(\d+\): [0-9a-f]{8} ")
    # the listing is drawn in more than one pass: wait for bob's devices too
    alice.wait(rf"bob@{DOMAIN} device \d+(.|\n)*\[trusted")

    # a reply reaches bob's client
    alice.type("thanks bob")
    bob.wait(r"win: \[1\] 2\(1\)")
    bob.keys("C-n")
    bob.wait(r"<alice@localhost> thanks bob")

    # /tls: the client-to-server lock in detail
    alice.type("/tls")
    s = alice.wait(r"server certificate:")
    assert re.search(r"client-to-server: TLSv1\.3, AES-256-GCM, 256-bit key", s), s
    alice.wait(r"signed in with SCRAM-SHA-\S+")

    # /search finds the earlier message, also after the window is closed (default mode)
    alice.type("/close")
    alice.wait(r"win: \[1\]\s*$")
    alice.type("/search periwinkle")
    s = alice.wait(r"search 'periwinkle': 1 message found")
    assert "hello from bob, periwinkle" in s
    # and re-opening the conversation shows the kept history
    alice.type(f"/msg bob@{DOMAIN}")
    alice.wait(r"3 earlier messages from the local history")

    # the file on disk: private and encrypted
    db = db_path(tmux_dir, "alice")
    assert os.stat(db).st_mode & 0o777 == 0o600
    data = open(db, "rb").read()
    assert b"periwinkle" not in data and b"SQLite format 3" not in data
    if shutil.which("strings"):
        out = subprocess.run(["strings", "-n", "4", db], capture_output=True, text=True,
                             timeout=20).stdout
        assert "periwinkle" not in out and "bob@" not in out and "second note" not in out

    # /quit signs out and wipes the history (default mode)
    s = alice.quit()
    assert "PARLEY-EXIT=0" in s
    r = history(tmux_dir, "alice", "search", "periwinkle")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert b"periwinkle" not in open(db, "rb").read()
    assert "PARLEY-EXIT=0" in bob.quit()


def test_chat_archive_mode_keeps_history_ascii(parleyd, tmux_dir):  # noqa: F811
    # LANG=C: the ASCII forms of the locks
    alice = Term(tmux_dir, "alice", parleyd, "alice", mode="archive", lang="C").start()
    alice.wait(r"\[TLS1\.3 \*locked\*\] alice@localhost/\S+ online")
    # bob's policy forbids end-to-end encryption: his message is server-readable
    parleyd.ctl("policy", "set", "--user", f"bob@{DOMAIN}", "e2e_aes", "false")
    send_as(parleyd, "bob", f"alice@{DOMAIN}", "archived words: quince")
    alice.wait(r"win: \[1\] 2\(1\)")
    alice.type("/win 2")
    s = alice.wait(r"archived words: quince")
    assert "[server-readable]" in s and "[E2E]" not in s
    alice.type("/search quince")
    alice.wait(r"search 'quince': 1 message found")
    assert "PARLEY-EXIT=0" in alice.quit()

    # kept across the sign-out, readable with the key only
    r = history(tmux_dir, "alice", "search", "quince")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 1
    assert rows[0]["body"] == "archived words: quince"
    assert rows[0]["with"] == f"bob@{DOMAIN}" and rows[0]["direction"] == "in"
    assert rows[0]["encrypted"] is False
    r = history(tmux_dir, "alice", "show", "--with", f"bob@{DOMAIN}")
    assert [json.loads(x)["body"] for x in r.stdout.splitlines()] == ["archived words: quince"]

    # a new session still has it
    alice2 = Term(tmux_dir, "alice2", parleyd, "alice", mode="archive", lang="C").start()
    alice2.wait(r"online")
    alice2.type(f"/msg bob@{DOMAIN}")
    alice2.wait(r"1 earlier message from the local history")
    alice2.wait(r"archived words: quince")
    assert "PARLEY-EXIT=0" in alice2.quit()


def test_chat_disabled_mode_forgets_on_close(parleyd, tmux_dir):  # noqa: F811
    alice = Term(tmux_dir, "alice", parleyd, "alice", mode="disabled").start()
    alice.wait(r"\[TLS1\.3 🔒\] alice@localhost/\S+ online")
    send_as(parleyd, "bob", f"alice@{DOMAIN}", "ephemeral kumquat")
    alice.wait(r"win: \[1\] 2\(1\)")
    alice.keys("M-2")
    alice.wait(r"ephemeral kumquat")
    alice.type("/search kumquat")
    alice.wait(r"search 'kumquat': 1 message found")
    # kept while the window is open (the file is readable by the CLI meanwhile)
    r = history(tmux_dir, "alice", "search", "kumquat")
    assert r.returncode == 0 and "ephemeral kumquat" in r.stdout, r.stderr
    alice.type("/close")
    alice.wait(r"closed and forgotten \(history disabled\)")
    alice.type("/search kumquat")
    alice.wait(r"search 'kumquat': 0 messages found")
    r = history(tmux_dir, "alice", "search", "kumquat")
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert "PARLEY-EXIT=0" in alice.quit()


def test_history_cli_and_bad_input(parleyd, tmp_path):  # noqa: F811
    conf = write_config(tmp_path, parleyd, "alice", "archive")
    kf = os.path.join(str(tmp_path), "alice", "history.key")
    db = db_path(tmp_path, "alice")
    # send records what it sent (a key is configured; archive mode)
    r = parley_cmd("--config", conf, "send", "--to", f"bob@{DOMAIN}", "--message", "sent by cli")
    assert r.returncode == 0, r.stderr
    r = history(tmp_path, "alice", "show", "--with", f"bob@{DOMAIN}")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["direction"] == "out" and row["body"] == "sent by cli"
    assert os.stat(db).st_mode & 0o777 == 0o600
    before = open(db, "rb").read()

    # a key file others can read is refused, like ssh does
    os.chmod(kf, 0o644)
    r = history(tmp_path, "alice", "search", "cli")
    assert r.returncode == EXIT_HISTORY and "chmod 600" in r.stderr, r.stderr
    os.chmod(kf, 0o600)
    # a wrong key: a clear error, nothing changed
    good = open(kf, "rb").read()
    with open(kf, "wb") as f:
        f.write(os.urandom(32))
    for args in (["history", "search", "cli"],
                 ["send", "--to", f"bob@{DOMAIN}", "--message", "x"]):
        r = parley_cmd("--config", conf, *args)
        assert r.returncode == EXIT_HISTORY, r.stderr
        assert "wrong key" in r.stderr
    assert open(db, "rb").read() == before
    with open(kf, "wb") as f:
        f.write(good)
    # a truncated database: refused and left as it is
    with open(db, "r+b") as f:
        f.truncate(len(before) // 2 if len(before) > 4096 else 1000)
    size = os.path.getsize(db)
    r = history(tmp_path, "alice", "search", "cli")
    assert r.returncode == EXIT_HISTORY, r.stdout + r.stderr
    assert "untouched" in r.stderr or "not a Parley" in r.stderr or "wrong key" in r.stderr
    assert os.path.getsize(db) == size
    # usage errors
    assert history(tmp_path, "alice", "frobnicate").returncode == 1
    assert history(tmp_path, "alice", "show").returncode == 1
