"""Helpers for the external-component and verdict tests: configuration lines, a real
XEP-0114 component (slixmpp's ComponentXMPP, over direct TLS trusting the test CA or plain
on loopback) that can act as a compliance server, and raw component streams for bad
input."""
import asyncio
import hashlib
import os
import re
import socket
import time
import xml.etree.ElementTree as ET

from slixmpp.componentxmpp import ComponentXMPP
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import DOMAIN, HOST, RawStream, client_ctx, free_port, wait_port

NS_VERDICT = "urn:parley:compliance:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_COMPONENT = "jabber:component:accept"
COMP = f"compliance.{DOMAIN}"
SECRET = "0123456789abcdef-a-long-secret"


def component_lines(port, components=((COMP, SECRET),), tls=True, verdicts=False,
                    timeout_ms=1500, failure="block"):
    """parleyd.conf lines for components (and a compliance server when verdicts)."""
    lines = [f"component_port = {port}", f"component_tls = {'yes' if tls else 'no'}"]
    lines += [f"component = {d} {s}" for d, s in components]
    if verdicts:
        lines += [f"compliance_server = {COMP}",
                  f"compliance_server_timeout = {timeout_ms}",
                  f"compliance_server_failure = {failure}"]
    return lines


def start_with_components(server, tls=True, extra=(), **kw):
    """A started server with components configured; returns (srv, component_port)."""
    port = free_port()
    srv = server(extra=list(extra), start=False)
    add_config_lines(srv, component_lines(port, tls=tls, **kw))
    srv.start()
    assert wait_port(port, 10, srv.proc), "component port not open\n" + srv.log_tail()
    return srv, port


def add_config_lines(srv, lines):
    """Append lines to parleyd.conf as they are (Server.set_config replaces a key's earlier
    line, but 'component' may repeat)."""
    with open(srv.conf, "a") as f:
        f.write("\n".join(lines) + "\n")


class Component(ComponentXMPP):
    """A real third-party component.  It records what it receives; as a compliance server
    it answers each check with `self.policy(check) -> (action, reason, body[, delay])`, where check
    is {"kind", "forwarded" (ET element or None), "occupants", "file", "iq"}; action may
    also be "error" (an IQ error), "ignore" (no answer) or "garbage" (no verdict), and
    `self.delay` seconds are waited before answering."""

    def __init__(self, srv, port, domain=COMP, secret=SECRET, tls=True):
        super().__init__(domain, secret, HOST, port)
        self.srv = srv
        self.port = port
        self.tls = tls
        self.ca_certs = srv.ca
        self.default_domain = DOMAIN  # the server certificate's name (for the TLS check)
        self.whitespace_keepalive = False
        self.checks = []
        self.messages = []
        self.stream_errors = []
        self.policy = lambda check: ("allow", None, None)
        self.delay = 0.0
        self.started = None
        self.gone = asyncio.Event()
        self.register_handler(CoroutineCallback(
            "verdict-check", MatchXPath(f"{{{NS_COMPONENT}}}iq/{{{NS_VERDICT}}}check"),
            self._on_check))
        self.add_event_handler("message", lambda m: self.messages.append(m))
        self.add_event_handler("stream_error", lambda e: self.stream_errors.append(e))
        self.add_event_handler("session_start", self._started)
        self.add_event_handler("disconnected", self._ended)
        self.add_event_handler("connection_failed", self._ended)

    async def get_dns_records(self, domain, port=None):
        # the server listens on the loopback address only; never ask DNS
        return [(DOMAIN, HOST, self.port)]

    def _started(self, _):
        if self.started is not None and not self.started.done():
            self.started.set_result(True)

    def _ended(self, ev):
        self.gone.set()
        if self.started is not None and not self.started.done():
            self.started.set_exception(ConnectionError(f"component not accepted: {ev!r} "
                                                       f"{[e['condition'] for e in self.stream_errors]}"))

    async def start(self, timeout=10):
        self.started = asyncio.get_running_loop().create_future()
        self.connect(HOST, self.port, use_ssl=self.tls)
        await asyncio.wait_for(asyncio.shield(self.started), timeout)
        return self

    async def stop(self):
        try:
            await asyncio.wait_for(self.disconnect(wait=1), 3)
        except Exception:
            self.abort()

    async def _on_check(self, iq):
        el = iq.xml.find(f"{{{NS_VERDICT}}}check")
        fwd = el.find(f"{{{NS_FORWARD}}}forwarded")
        check = {
            "kind": el.get("kind"),
            "forwarded": list(fwd)[0] if fwd is not None and len(fwd) else None,
            "occupants": [o.get("jid") for o in el.findall(f"{{{NS_VERDICT}}}occupant")],
            "file": el.find(f"{{{NS_VERDICT}}}file"),
            "iq": iq,
            "at": time.monotonic(),
        }
        self.checks.append(check)
        decision = self.policy(check)
        action, reason, body = decision[:3]
        delay = decision[3] if len(decision) > 3 else self.delay
        if delay:
            await asyncio.sleep(delay)
        if action == "ignore" or not self.transport:
            return
        if action == "error":
            err = iq.reply(clear=True)
            err["type"] = "error"
            err["error"]["type"] = "wait"
            err["error"]["condition"] = "internal-server-error"
            err.send()
            return
        reply = iq.reply(clear=True)
        if action != "garbage":
            v = ET.Element(f"{{{NS_VERDICT}}}verdict", {"action": action})
            if reason is not None:
                ET.SubElement(v, f"{{{NS_VERDICT}}}reason").text = reason
            if body is not None:
                ET.SubElement(v, f"{{{NS_VERDICT}}}body").text = body
            reply.append(v)
        reply.send()

    def forwarded_bodies(self):
        out = []
        for c in self.checks:
            f = c["forwarded"]
            b = f.find("{jabber:client}body") if f is not None else None
            out.append(b.text if b is not None else None)
        return out


def forwarded_attr(check, name):
    f = check["forwarded"]
    return f.get(name) if f is not None else None


# --------------------------------------------------------------------------- raw streams

def comp_header(domain=COMP, ns=NS_COMPONENT):
    return (f"<?xml version='1.0'?><stream:stream xmlns='{ns}' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>")


def raw_component(srv, port, tls=True, timeout=5.0):
    """A raw socket to the component port (TLS verified against the test CA)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    if tls:
        s = client_ctx(srv).wrap_socket(s, server_hostname=DOMAIN)
    rs = RawStream(port, timeout=timeout, sock=s)
    rs.tls = s if tls else None
    return rs


def raw_open(rs, domain=COMP):
    """Send the header; return the stream id the server chose."""
    rs.send(comp_header(domain))
    head = rs.read_until(r"<(\w+:)?stream\b[^>]*>")
    m = re.search(r"\bid=['\"]([^'\"]+)['\"]", head)
    assert m, f"no stream id in {head!r}"
    return m.group(1)


def handshake_value(stream_id, secret=SECRET):
    return hashlib.sha1((stream_id + secret).encode()).hexdigest()


def raw_authenticated(srv, port, domain=COMP, secret=SECRET, tls=True):
    rs = raw_component(srv, port, tls=tls)
    sid = raw_open(rs, domain)
    rs.send(f"<handshake>{handshake_value(sid, secret)}</handshake>")
    rs.read_until(r"<handshake\s*/>|<handshake>\s*</handshake>")
    return rs


async def wait_until(pred, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def random_text(prefix):
    return f"{prefix}-{os.urandom(4).hex()}"


# --------------------------------------------------------------------------- the archive

def records(srv, where, args=()):
    """Message records matching an SQL condition, in chain order (read-only connection:
    parleyd keeps writing)."""
    import sqlite3
    con = sqlite3.connect(f"file:{srv.dir}/data/compliance.db?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM messages WHERE {where} ORDER BY seq",
                                             args)]
    finally:
        con.close()


def audit_events(srv, event):
    import sqlite3
    con = sqlite3.connect(f"file:{srv.dir}/data/compliance.db?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM audit WHERE event = ? ORDER BY seq",
                                             (event,))]
    finally:
        con.close()


def verify_ok(srv):
    p = srv.ctl("compliance", "verify", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def error_condition(stanza):
    """The defined condition of a stanza error, read from the XML: slixmpp 1.8 only knows
    RFC 3920's conditions, not policy-violation."""
    for err in stanza.xml:
        if err.tag.endswith("}error"):
            for ch in err:
                if ch.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}") and \
                        not ch.tag.endswith("}text"):
                    return ch.tag.split("}", 1)[1]
    return None
