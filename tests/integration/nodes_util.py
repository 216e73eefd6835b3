"""Several parleyd nodes of one domain for the node tests (docs/federation.md): a fresh
PostgreSQL database per test, a Cluster of DomainServer nodes sharing it (node
certificates from the first node's CA, registered with `parleyctl node add`), and the
login/subscribe helpers. Import the fixtures into a test module with
`from nodes_util import pg_server, pg_uri, cluster  # noqa: F401`.

PostgreSQL: PARLEY_TEST_PG_URI (tests/run.sh starts a cluster), else a cluster of our own
from scripts/pg-cluster.sh for the module.
"""
import asyncio
import os
import secrets
import signal
import subprocess
import tempfile

import pytest

from conftest import HOST
from s2s_util import DomainServer, login

DOMAIN = "parley.test"
USERS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2", "carol": "carol-Secret-3"}
LEASE = 3
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def pg_server():
    uri = os.environ.get("PARLEY_TEST_PG_URI")
    if uri:
        yield uri
        return
    d = tempfile.mkdtemp(prefix="parley-nodes-pg-", dir="/tmp")
    os.chmod(d, 0o755)
    script = os.path.join(ROOT, "scripts", "pg-cluster.sh")
    p = subprocess.run(["sh", script, "start", f"{d}/c", "auto"], capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        pytest.fail(f"could not start PostgreSQL: {p.stderr}")
    yield p.stdout.strip()
    subprocess.run(["sh", script, "stop", f"{d}/c"], capture_output=True, timeout=60)
    os.rmdir(d)


@pytest.fixture
def pg_uri(pg_server):
    """A fresh database on the test cluster."""
    base, _, _ = pg_server.rpartition("/")
    name = "nodes_" + secrets.token_hex(6)
    subprocess.run(["psql", f"{base}/postgres", "-q", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True, timeout=60)
    yield f"{base}/{name}"
    subprocess.run(["psql", f"{base}/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {name} "
                    "WITH (FORCE)"], capture_output=True, timeout=60)


class Cluster:
    def __init__(self, root, uri, n):
        self.nodes = []
        first = None
        for i in range(1, n + 1):
            name = f"node{i}"
            srv = DomainServer(os.path.join(root, name), DOMAIN, USERS if i == 1 else {},
                               extra=[f"store = {uri}"], ca_from=first)
            srv.name = name
            first = first or srv.dir
            srv.ctl("node", "add", name, f"{HOST}:{srv.s2s_port}", "--cert-dir", srv.dir)
            srv.set_config([f"node_name = {name}", f"node_lease = {LEASE}",
                            f"cert_file = {name}.crt", f"key_file = {name}.key"])
            self.nodes.append(srv)

    def start(self):
        for srv in self.nodes:
            srv.start()
        return self

    def kill(self, srv):
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(timeout=10)
        srv.proc = None
        srv.logf.close()
        srv.logf = None


@pytest.fixture
def cluster(tmp_path, pg_uri, request):
    made = []

    def make(n=3):
        c = Cluster(str(tmp_path), pg_uri, n)
        made.append(c)
        return c.start()

    yield make
    problems = []
    for c in made:
        for srv in c.nodes:
            p = srv.stop()
            failed = getattr(request.node, "rep_call", None)
            if p or (failed is not None and failed.failed):
                print(f"==== {srv.name}")
                print(srv.log_tail(80))
            problems += p
    if problems:
        pytest.fail("node teardown: " + "\n".join(problems), pytrace=False)


async def on(srv, user, resource="r", presence=True):
    c = await login(DOMAIN, srv.c2s_port, srv.ca, user, USERS[user], resource=resource,
                    presence=presence)
    await asyncio.sleep(0.3)  # the available presence reaches the directory
    return c


AVAILABLE = ("available", "chat", "away", "xa", "dnd")


async def subscribe(a, a_jid, b, b_jid):
    """a subscribes to b, b approves; returns once a has b's presence."""
    a.send_presence(pto=b_jid, ptype="subscribe")
    await b.wait_for("presence", lambda p: p["type"] == "subscribe" and str(p["from"]) == a_jid,
                     timeout=10, what=f"subscribe from {a_jid}")
    b.send_presence(pto=a_jid, ptype="subscribed")
    await a.wait_for("presence", lambda p: p["type"] == "subscribed", timeout=10,
                     what="subscribed")
    await a.wait_for("presence", lambda p: str(p["from"]).startswith(b_jid + "/") and
                     p["type"] in AVAILABLE, timeout=10, what=f"presence of {b_jid}")
