"""parley-compliance against parleyd (docs/parley-compliance.md): the real program connects
as the XEP-0114 compliance server and judges what slixmpp clients send: keyword blocks,
regex redaction, ethical walls, the daily disclaimer (kept across a restart), encrypted
messages judged on metadata; killed, parleyd's compliance_server_failure applies, and
restarted, verdicts resume; SIGHUP reloads (a bad file keeps the old rules); TLS name
checks and wrong secrets are logged while the program stays up. Every answered check is
a journal row, readable with --journal."""
import asyncio
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from component_util import (COMP, SECRET, error_condition, random_text, records,
                            start_with_components, wait_until)
from conftest import BUILD, DOMAIN, HOST, clients_for

FAILURE_TEXT = "compliance server did not answer"
NS_OMEMO = "urn:xmpp:omemo:2"
WALL_REASON = "ethical wall: trading may not talk to research"
INSIDER_REASON = "insider trading terms are not allowed"

RULES = f"""
group trading = alice@{DOMAIN}
group research = bob@{DOMAIN}
wall trading research
keyword insider block "{INSIDER_REASON}"
regex "[0-9]{{4}}-[0-9]{{4}}-[0-9]{{4}}-[0-9]{{4}}" redact
"""


class PComp:
    """One parley-compliance process with its own directory, config, journal and log."""

    def __init__(self, srv, port, rules=RULES, tls=True, secret=SECRET, name="pc",
                 connection=None):
        self.srv = srv
        self.port = port
        self.dir = os.path.join(srv.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "parley-compliance.conf")
        self.secret_file = os.path.join(self.dir, "secret")
        self.journal = os.path.join(self.dir, "journal.db")
        self.log_path = os.path.join(self.dir, "parley-compliance.log")
        self.bin = os.path.join(BUILD, "parley-compliance")
        if not os.access(self.bin, os.X_OK):
            pytest.fail(f"{self.bin} not built (set PARLEY_BUILD)")
        self.proc = None
        self.write_secret(secret)
        self.tls = tls
        self.connection = connection
        self.write_config(rules)

    def write_secret(self, secret):
        with open(self.secret_file, "w") as f:
            f.write(secret + "\n")
        os.chmod(self.secret_file, 0o600)

    def write_config(self, rules):
        conn = self.connection or [
            f"server_host = {HOST}",
            f"server_port = {self.port}",
            f"tls = {'yes' if self.tls else 'no'}",
            f"ca_file = {self.srv.ca}",
            f"server_name = {DOMAIN}",
        ]
        text = "\n".join(conn + [
            f"component = {COMP}",
            "secret_file = secret",
            "journal = journal.db",
            "log_file = parley-compliance.log",
            "log_level = debug",
            "reconnect_max = 1",
        ]) + "\n" + rules
        with open(self.conf, "w") as f:
            f.write(text)
        os.chmod(self.conf, 0o600)

    def line_of(self, text):
        """The line number of the config line that contains text."""
        with open(self.conf) as f:
            for n, line in enumerate(f, 1):
                if text in line:
                    return n
        raise AssertionError(f"{text!r} not in {self.conf}")

    def env(self):
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = f"detect_leaks=1:log_path={self.dir}/asan"
        env["UBSAN_OPTIONS"] = f"print_stacktrace=1:log_path={self.dir}/ubsan"
        return env

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def connections(self):
        return self.log_text().count(f"connected as {COMP}")

    def start(self, wait_connected=True, timeout=15):
        before = self.connections()
        self.proc = subprocess.Popen([self.bin, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=self.env(), cwd=self.dir)
        if wait_connected:
            self.wait_log(lambda: self.connections() > before, timeout, "the connection")
        return self

    def wait_log(self, pred, timeout=10, what="a log line"):
        deadline = time.monotonic() + timeout
        while not pred():
            if self.proc.poll() is not None:
                pytest.fail(f"parley-compliance exited {self.proc.returncode} waiting for "
                            f"{what}: {self.proc.stderr.read()!r}\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"parley-compliance: no {what} within {timeout}s\n"
                            f"{self.log_text()[-3000:]}")
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stderr.close()
        self.proc = None

    def stop(self):
        """SIGTERM; returns a list of problems (empty = clean exit 0, no sanitizer report)."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                problems.append("parley-compliance ignored SIGTERM for 15 s (killed)")
        if self.proc is not None:
            if self.proc.returncode != 0 and not problems:
                problems.append(f"parley-compliance exit code {self.proc.returncode}: "
                                f"{self.proc.stderr.read()!r}")
            self.proc.stderr.close()
            self.proc = None
        for name in sorted(os.listdir(self.dir)):
            if name.startswith(("asan", "ubsan")):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    problems.append(f"==== {name} ====\n{f.read()}")
        return problems

    def rows(self, where="1", args=()):
        con = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True, timeout=10)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(
                f"SELECT * FROM checks WHERE {where} ORDER BY id", args)]
        finally:
            con.close()

    def journal_cli(self):
        p = subprocess.run([self.bin, "--journal", self.journal], capture_output=True,
                           text=True, timeout=30, env=self.env())
        assert p.returncode == 0, p.stderr
        return p.stdout


@pytest.fixture
def pcomp(request):
    """Factory: pcomp(srv, port, rules=..., tls=True, start=True) -> PComp."""
    made = []

    def make(srv, port, start=True, **kw):
        pc = PComp(srv, port, name=f"pc{len(made)}", **kw)
        made.append(pc)
        if start:
            pc.start()
        return pc

    yield make
    problems = []
    for pc in made:
        problems += pc.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(f"---- {pc.log_path} (tail) ----\n{pc.log_text()[-4000:]}")
    if problems:
        pytest.fail("parley-compliance teardown: " + "\n".join(problems), pytrace=False)


def body_is(text):
    return lambda m: m["body"] == text


async def login(srv, *users):
    cl = clients_for(srv)
    return [await cl.login(u, u[0]) for u in users]


async def expect_blocked(sender, receiver, to, text, reason):
    sender.send_message(mto=to, mbody=text, mtype="chat")
    err = await sender.wait_for("message_error", body_is(text), 8)
    assert error_condition(err) == "policy-violation", err
    assert err["error"]["text"] == reason
    await receiver.expect_none("message", body_is(text), 0.5)


async def expect_delivered(sender, receiver, to, text, delivered=None):
    sender.send_message(mto=to, mbody=text, mtype="chat")
    m = await receiver.wait_for("message", lambda m: m["body"] == (delivered or text), 8)
    assert m["from"].bare == sender.boundjid.bare
    return m


def test_keyword_block_and_regex_redaction(server, run, pcomp):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=4000)
    pc = pcomp(srv, port)
    nonce = random_text("n")

    async def scenario():
        a, c = await login(srv, "alice", "carol")
        to = f"carol@{DOMAIN}/c"
        await expect_blocked(a, c, to, f"a real INSIDER tip {nonce}", INSIDER_REASON)
        await expect_delivered(a, c, to, f"card 1234-5678-9012-3456 or 1111-2222-3333-4444 {nonce}",
                               f"card [redacted] or [redacted] {nonce}")
        await expect_delivered(a, c, to, f"insiders are fine {nonce}")  # not the word
    run(scenario)

    rows = pc.rows()
    assert [(r["kind"], r["sender"], r["recipient"], r["verdict"]) for r in rows] == [
        ("message", f"alice@{DOMAIN}", f"carol@{DOMAIN}", v) for v in ("block", "modify", "allow")]
    kw_line = pc.line_of("keyword insider")
    assert rows[0]["rule"] == f'keyword "insider" (line {kw_line})'
    assert rows[0]["reason"] == INSIDER_REASON
    assert rows[1]["rule"].startswith('regex "[0-9]{4}') and "redacted by" in rows[1]["reason"]
    assert rows[2]["rule"] is None and rows[2]["reason"] is None
    assert all(r["request_id"] and r["time"].endswith("Z") for r in rows)
    # parleyd's archive has the same verdicts
    arch = records(srv, "body LIKE ?", (f"%{nonce}",))
    assert [(r["verdict"], r["outcome"]) for r in arch] == [
        ("block", "blocked-compliance"), ("modify", "delivered"), ("allow", "delivered")]
    # the journal is readable with --journal; no message text in the log
    out = pc.journal_cli().splitlines()
    assert len(out) == 4 and out[0].startswith("time\tkind\tsender")
    assert f'\tblock\t0\tkeyword "insider" (line {kw_line})\t{INSIDER_REASON}' in out[1]
    assert nonce not in pc.log_text()


def test_ethical_wall_one_to_one(server, run, pcomp):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=4000)
    pc = pcomp(srv, port)

    async def scenario():
        a, b, c = await login(srv, "alice", "bob", "carol")
        await expect_blocked(a, b, f"bob@{DOMAIN}/b", random_text("to-research"), WALL_REASON)
        await expect_blocked(b, a, f"alice@{DOMAIN}", random_text("to-trading"),
                             "ethical wall: research may not talk to trading")
        # across no wall: carol is in neither group
        await expect_delivered(a, c, f"carol@{DOMAIN}/c", random_text("a-to-c"))
        await expect_delivered(c, b, f"bob@{DOMAIN}/b", random_text("c-to-b"))
    run(scenario)
    rows = pc.rows()
    wall = f"wall trading research (line {pc.line_of('wall trading')})"
    assert [(r["sender"].split("@")[0], r["recipient"].split("@")[0], r["verdict"], r["rule"])
            for r in rows] == [
        ("alice", "bob", "block", wall),
        ("bob", "alice", "block", wall),
        ("alice", "carol", "allow", None),
        ("carol", "bob", "allow", None)]


def test_encrypted_message_judged_by_walls_only(server, run, pcomp):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=4000)
    pc = pcomp(srv, port)
    omemo = (f"<encrypted xmlns='{NS_OMEMO}'><header sid='1'><iv>aXY=</iv></header>"
             "<payload>Y2lwaGVy</payload></encrypted>"
             "<body>insider: I sent you an OMEMO encrypted message</body>")

    async def scenario():
        a, b, c = await login(srv, "alice", "bob", "carol")
        a.send_raw(f"<message to='carol@{DOMAIN}/c' type='chat' id='e2e-c'>{omemo}</message>")
        m = await c.wait_for("message", lambda m: m["id"] == "e2e-c", 8)
        assert m.xml.find(f"{{{NS_OMEMO}}}encrypted") is not None
        a.send_raw(f"<message to='bob@{DOMAIN}/b' type='chat' id='e2e-b'>{omemo}</message>")
        err = await a.wait_for("message_error", lambda m: m["id"] == "e2e-b", 8)
        assert err["error"]["text"] == WALL_REASON
        await b.expect_none("message", lambda m: m["id"] == "e2e-b", 0.5)
    run(scenario)
    assert [(r["message_id"], r["verdict"]) for r in pc.rows()] == [("e2e-c", "allow"),
                                                                  ("e2e-b", "block")]


def test_disclaimer_on_first_message_of_the_day_only(server, run, pcomp):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=4000)
    disclaimer = "This message is subject to monitoring."
    pc = pcomp(srv, port, rules=RULES + f'disclaimer = "{disclaimer}"\n')

    async def scenario():
        c, d = await login(srv, "carol", "dave")
        to = f"dave@{DOMAIN}/d"
        first = random_text("first")
        await expect_delivered(c, d, to, first, f"{first}\n\n{disclaimer}")
        await expect_delivered(c, d, to, random_text("second"))
        # the disclaimer is per user: dave's first message gets it too
        back = random_text("dave-first")
        await expect_delivered(d, c, f"carol@{DOMAIN}/c", back, f"{back}\n\n{disclaimer}")
        # a restart does not repeat it: the journal remembers the day
        assert pc.stop() == []
        pc.start()
        await expect_delivered(c, d, to, random_text("after-restart"))
        await expect_delivered(d, c, f"carol@{DOMAIN}/c", random_text("dave-again"))
    run(scenario)
    rows = pc.rows()
    assert [(r["sender"].split("@")[0], r["verdict"], r["disclaimer"]) for r in rows] == [
        ("carol", "modify", 1), ("carol", "allow", 0), ("dave", "modify", 1),
        ("carol", "allow", 0), ("dave", "allow", 0)]
    assert rows[0]["reason"] == "first message of the day: disclaimer"


@pytest.mark.parametrize("failure", ["block", "allow"])
def test_killed_then_failure_setting_then_restarted(server, run, pcomp, failure):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=4000, failure=failure)
    pc = pcomp(srv, port)

    async def scenario():
        a, c = await login(srv, "alice", "carol")
        to = f"carol@{DOMAIN}/c"
        await expect_blocked(a, c, to, random_text("insider"), INSIDER_REASON)
        pc.kill()
        await asyncio.sleep(0.3)  # parleyd sees the connection close
        text = random_text("unjudged")
        a.send_message(mto=to, mbody=text, mtype="chat")
        if failure == "block":
            err = await a.wait_for("message_error", body_is(text), 8)
            assert error_condition(err) == "service-unavailable"
            assert FAILURE_TEXT in err["error"]["text"]
            await c.expect_none("message", body_is(text), 0.5)
        else:
            await c.wait_for("message", body_is(text), 8)
        r = records(srv, "body = ?", (text,))[0]
        assert r["verdict"] == f"{failure}-unchecked"
        # restarted: judged again
        pc.start()
        await expect_blocked(a, c, to, random_text("insider again"), INSIDER_REASON)
        await expect_delivered(a, c, to, random_text("fine"))
    run(scenario)
    assert [r["verdict"] for r in pc.rows()] == ["block", "block", "allow"]


def test_parleyd_restart_reconnects_by_itself(server, run, pcomp):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=4000)
    pc = pcomp(srv, port)

    async def judged():
        a, c = await login(srv, "alice", "carol")
        await expect_blocked(a, c, f"carol@{DOMAIN}/c", random_text("insider"), INSIDER_REASON)
    run(judged)
    assert srv.stop() == []
    pc.wait_log(lambda: "reconnecting to parleyd" in pc.log_text(), what="the lost connection")
    time.sleep(1.5)  # at least one refused attempt while parleyd is down
    srv.start()
    pc.wait_log(lambda: pc.connections() == 2, timeout=20, what="the new connection")
    run(judged)
    assert "Connection refused" in pc.log_text()
    assert [r["verdict"] for r in pc.rows()] == ["block", "block"]


def test_sighup_reload_keeps_old_rules_on_a_bad_file(server, run, pcomp):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=4000)
    pc = pcomp(srv, port, rules='keyword alpha block "no alpha"\n')

    async def scenario():
        a, c = await login(srv, "alice", "carol")
        to = f"carol@{DOMAIN}/c"
        await expect_blocked(a, c, to, random_text("alpha"), "no alpha")
        pc.write_config('keyword beta block "no beta"\nregex "[a-" block "broken"\n')
        pc.hup()
        pc.wait_log(lambda: "reload failed" in pc.log_text(), what="the reload failure")
        assert (f"parley-compliance.conf:{pc.line_of('regex')}: bad regular expression "
                '"[a-"') in pc.log_text()
        await expect_blocked(a, c, to, random_text("alpha"), "no alpha")
        await expect_delivered(a, c, to, random_text("beta"))
        pc.write_config('keyword beta block "no beta"\n')
        pc.hup()
        pc.wait_log(lambda: "reloaded" in pc.log_text(), what="the reload")
        await expect_blocked(a, c, to, random_text("beta"), "no beta")
        await expect_delivered(a, c, to, random_text("alpha"))
        assert pc.alive()
    run(scenario)


def test_plain_loopback_wrong_secret_then_fixed(server, run, pcomp):
    srv, port = start_with_components(server, tls=False, verdicts=True, timeout_ms=4000)
    pc = pcomp(srv, port, tls=False, secret="not-the-right-secret-at-all", start=False)
    pc.start(wait_connected=False)
    pc.wait_log(lambda: "stream error <not-authorized/>" in pc.log_text(), what="the refusal")
    assert "reconnecting to parleyd" in pc.log_text()
    assert pc.alive()
    # the right secret: connection settings apply from the next attempt after a reload
    pc.write_secret(SECRET)
    pc.hup()
    pc.wait_log(lambda: pc.connections() > 0, timeout=15, what="the connection")
    log = pc.log_text()
    assert SECRET not in log and "not-the-right-secret" not in log

    async def scenario():
        a, c = await login(srv, "alice", "carol")
        await expect_blocked(a, c, f"carol@{DOMAIN}/c", random_text("insider"), INSIDER_REASON)
    run(scenario)


def test_tls_certificate_name_mismatch_refused(server, pcomp):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=4000)
    pc = pcomp(srv, port, start=False, connection=[
        f"server_host = {HOST}", f"server_port = {port}", "tls = yes",
        f"ca_file = {srv.ca}", "server_name = parley.example.net"])
    pc.start(wait_connected=False)
    pc.wait_log(lambda: "certificate of parley.example.net not trusted" in pc.log_text(),
                what="the certificate refusal")
    pc.wait_log(lambda: pc.log_text().count("not trusted") >= 2, what="a second attempt")
    assert pc.connections() == 0 and pc.alive()


def test_documented_example_checks_and_exit_codes(tmp_path):
    """The complete example of docs/parley-compliance.md is valid; a bad file exits 1
    naming its line; usage errors exit 2."""
    bin_ = os.path.join(BUILD, "parley-compliance")
    doc = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "parley-compliance.md")
    with open(doc) as f:
        text = f.read()
    example = text.split("## Complete example", 1)[1].split("```", 2)[1]
    conf = tmp_path / "parley-compliance.conf"
    conf.write_text(example)
    secret = tmp_path / "compliance.secret"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    p = subprocess.run([bin_, "-c", str(conf), "--check"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    assert "OK: 3 groups, 1 walls, 7 content rules, 4 file rules, disclaimer on" in p.stdout

    conf.write_text(example + 'keyword x quarantine\n')
    lines = len(example.splitlines()) + 1
    p = subprocess.run([bin_, "-c", str(conf), "--check"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1
    assert f"{conf}:{lines}: unknown action 'quarantine'" in p.stderr
    assert SECRET not in p.stderr + p.stdout
    for args in ([], ["--bogus"], ["-c", str(conf), "extra"]):
        assert subprocess.run([bin_] + args, capture_output=True, timeout=30).returncode == 2
