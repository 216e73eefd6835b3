"""Managed file transfer (docs/file-transfer.md): XEP-0363 slots from upload.localhost,
PUT/GET/HEAD on parleyd's own HTTPS listener, with slixmpp's xep_0363 plugin as an
independent client and raw TLS sockets for bad input.  Every case checks the
compliance record it must leave."""
import asyncio
import fcntl
import hashlib
import http.client
import os
import random
import re
import resource
import signal
import socket
import sqlite3
import ssl
import subprocess
import time
import urllib.parse

import aiohttp
import pytest
from slixmpp.plugins.xep_0363 import http_upload

from conftest import DOMAIN, HOST, IqError, client_ctx, clients_for, free_port, send_iq, wait_port

NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_PARLEY = "urn:parley:upload:0"
UPLOAD_JID = f"upload.{DOMAIN}"


# --------------------------------------------------------------------------- helpers

def upload_server(server, extra=(), start=True):
    """A server with the HTTPS listener on a free port and short HTTP time limits."""
    port = free_port()
    srv = server(extra=[f"https_port = {port}", "http_header_timeout = 2",
                        "http_idle_timeout = 2"] + list(extra), start=False)
    srv.https_port = port
    if start:
        srv.start()
        assert wait_port(port, 10, srv.proc), "HTTPS listener not up\n" + srv.log_tail()
    return srv


def files_dir(srv):
    return os.path.join(srv.dir, "data", "files")


def db_rows(srv, sql, args=()):
    con = sqlite3.connect(f"file:{os.path.join(srv.dir, 'data', 'compliance.db')}?mode=ro",
                          uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def file_records(srv, **where):
    sql = "SELECT * FROM messages WHERE kind = 'file'"
    args = []
    for k, v in where.items():
        sql += f" AND {k} = ?"
        args.append(v)
    return db_rows(srv, sql + " ORDER BY seq", args)


async def wait_records(srv, n=1, timeout=5.0, **where):
    deadline = time.monotonic() + timeout
    while True:
        rows = file_records(srv, **where)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


def https(srv, method, url, body=None, headers=None, timeout=10, source=None):
    """One request with certificate and name verification; (status, headers, body).
    source: the loopback address to connect from (127.0.0.x)."""
    u = urllib.parse.urlsplit(url) if url.startswith("https://") else None
    path = (u.path if u else url)
    # The certificate names the XMPP domain, and "localhost" is the loopback address.
    conn = http.client.HTTPSConnection(DOMAIN, srv.https_port, timeout=timeout,
                                       context=client_ctx(srv),
                                       source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


class TLSRaw:
    """A raw TLS connection to the HTTPS port for malformed and slow requests."""

    def __init__(self, srv, timeout=10):
        sock = socket.create_connection((HOST, srv.https_port), timeout=timeout)
        self.s = client_ctx(srv).wrap_socket(sock, server_hostname=DOMAIN)
        self.s.settimeout(timeout)

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def read_all(self, timeout=10):
        """Everything until the server closes (or timeout); (data, closed)."""
        out = b""
        deadline = time.monotonic() + timeout
        self.s.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def status_of(raw):
    m = re.match(rb"HTTP/1\.1 (\d{3})", raw)
    return int(m.group(1)) if m else None


def ca_session(ca):
    """slixmpp's upload helper opens its own aiohttp session: make it trust the test CA
    (it still verifies the chain and the name)."""
    def make(*a, **kw):
        ctx = ssl.create_default_context(cafile=ca)
        return aiohttp.ClientSession(*a, connector=aiohttp.TCPConnector(ssl=ctx), **kw)
    return make


@pytest.fixture
def slix_http(monkeypatch):
    def use(srv):
        monkeypatch.setattr(http_upload, "ClientSession", ca_session(srv.ca))
    return use


async def use_service(c, max_size=None):
    """Point the plugin at upload.localhost.  (slixmpp 1.8's own discovery,
    get_info_from_domain, fails on Python 3.11; the disco answers are checked directly.)"""
    info = await send_iq(c, UPLOAD_JID, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    m = re.search(r"var=\"max-file-size\"[^>]*>\s*<value>(\d+)</value>", str(info))
    assert m, str(info)
    c["xep_0363"].upload_service = UPLOAD_JID
    c["xep_0363"].max_file_size = int(m.group(1))
    return int(m.group(1))


def slot_xml(name, size, ctype=None, screen=False, recipient=None):
    attrs = f"filename='{name}' size='{size}'" + (f" content-type='{ctype}'" if ctype else "")
    inner = ""
    if screen:
        inner += f"<screen-capture xmlns='{NS_PARLEY}'/>"
    if recipient:
        inner += f"<recipient xmlns='{NS_PARLEY}' jid='{recipient}'/>"
    return f"<request xmlns='{NS_UPLOAD}' {attrs}>{inner}</request>"


async def request_slot(c, name, size, **kw):
    """Raw slot request (with Parley's extensions); returns (put_url, get_url)."""
    res = await send_iq(c, UPLOAD_JID, slot_xml(name, size, **kw))
    xml = str(res)
    put = re.search(r"<put[^>]*url=\"([^\"]+)\"", xml).group(1).replace("&amp;", "&")
    get = re.search(r"<get[^>]*url=\"([^\"]+)\"", xml).group(1).replace("&amp;", "&")
    return put, get


async def slot_error(c, name, size, **kw):
    with pytest.raises(IqError) as ei:
        await send_iq(c, UPLOAD_JID, slot_xml(name, size, **kw))
    return ei.value.iq


def listing(d):
    out = []
    for root, _, names in os.walk(d):
        for n in names:
            out.append(os.path.relpath(os.path.join(root, n), d))
    return sorted(out)


def objects(srv):
    return listing(os.path.join(files_dir(srv), "objects"))


def tmpfiles(srv):
    return listing(os.path.join(files_dir(srv), "tmp"))


# --------------------------------------------------------------------------- tests

def test_slixmpp_upload_download_byte_identical(server, run, slix_http):
    srv = upload_server(server)
    slix_http(srv)
    # Fixed bytes: libmagic calls some random data a DOS COM executable (a first byte of
    # 0xEB or 0xE9 is a jump), and this test checks the sniffed type.
    data = random.Random(20261127).randbytes(300_000)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a", plugins=["xep_0363"])
        # the server lists the service; the service advertises its limit
        items = await send_iq(a, DOMAIN, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
        assert UPLOAD_JID in str(items)
        info = await send_iq(a, UPLOAD_JID, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        assert "max-file-size" in str(info) and NS_UPLOAD in str(info)
        path = os.path.join(srv.dir, "report.bin")
        with open(path, "wb") as f:
            f.write(data)
        await use_service(a)
        url = await a["xep_0363"].upload_file(path, content_type="application/octet-stream",
                                              timeout=10)
        assert url.startswith(f"https://{DOMAIN}:{srv.https_port}/file/")
        st, hd, body = await asyncio.to_thread(https, srv, "GET", url)
        assert st == 200 and body == data
        assert hd["content-length"] == str(len(data))
        assert hd["content-disposition"].startswith("attachment; filename=\"report.bin\"")
        assert hd["x-content-type-options"] == "nosniff"
        assert hd["etag"] == f"\"{hashlib.sha256(data).hexdigest()}\""
        # HEAD: headers only
        st, hd, body = await asyncio.to_thread(https, srv, "HEAD", url)
        assert st == 200 and body == b"" and hd["content-length"] == str(len(data))
        # single ranges
        st, hd, body = await asyncio.to_thread(https, srv, "GET", url, None, {"Range": "bytes=100-199"})
        assert st == 206 and body == data[100:200]
        assert hd["content-range"] == f"bytes 100-199/{len(data)}"
        st, hd, body = await asyncio.to_thread(https, srv, "GET", url, None, {"Range": "bytes=-10"})
        assert st == 206 and body == data[-10:]
        st, hd, body = await asyncio.to_thread(https, srv, "GET", url, None,
                                               {"Range": f"bytes={len(data)}-"})
        assert st == 416 and hd["content-range"] == f"bytes */{len(data)}"
        # the object is stored under its hash, nothing else
        sha = hashlib.sha256(data).hexdigest()
        assert objects(srv) == [f"{sha[:2]}/{sha}"] and tmpfiles(srv) == []

        up = await wait_records(srv, type="upload")
        assert len(up) == 1, up
        r = up[0]
        assert (r["sender"], r["outcome"], r["file_name"], r["file_size"], r["file_sha256"]) == \
            ("alice@localhost/a", "stored", "report.bin", len(data), sha)
        assert r["file_type"] == "application/octet-stream"
        downs = await wait_records(srv, 3, type="download")
        assert len(downs) == 3, downs  # HEAD sends no content and is not a download
        assert all(d["outcome"] == "downloaded" and d["file_sha256"] == sha for d in downs)
        assert "127.0.0.1" in downs[0]["stanza"]
        assert downs[1]["reason"] == f"bytes 100-199 of {len(data)}"
    run(scenario)


def test_oversize_refused_by_max_file_size(server, run, slix_http):
    srv = upload_server(server, ["upload_max_size = 1K"])
    slix_http(srv)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a", plugins=["xep_0363"])
        err = await slot_error(a, "big.bin", 5000)
        assert err["error"]["condition"] == "not-acceptable"
        assert "max_file_size" in err["error"]["text"]
        assert "<max-file-size>1024</max-file-size>" in str(err)
        # slixmpp takes the limit from disco and refuses before asking
        assert await use_service(a) == 1024
        path = os.path.join(srv.dir, "big.bin")
        with open(path, "wb") as f:
            f.write(b"x" * 5000)
        with pytest.raises(http_upload.FileTooBig):
            await a["xep_0363"].upload_file(path, timeout=10)
        rows = await wait_records(srv, type="slot")
        assert rows and rows[0]["outcome"] == "blocked-policy"
        assert "max_file_size" in rows[0]["reason"] and rows[0]["file_size"] == 5000
    run(scenario)


def test_put_larger_than_slot_and_slot_reused(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        put, get = await request_slot(a, "note.txt", 100, ctype="text/plain")
        st, _, body = await asyncio.to_thread(https, srv, "PUT", put, b"y" * 200)
        assert st == 413, body
        st, _, body = await asyncio.to_thread(https, srv, "PUT", put, b"y" * 50)
        assert st == 400 and b"exactly" in body
        # the slot is still good after the refusals
        st, _, _ = await asyncio.to_thread(https, srv, "PUT", put, b"y" * 100)
        assert st == 201
        # a slot takes one upload
        st, _, body = await asyncio.to_thread(https, srv, "PUT", put, b"z" * 100)
        assert st == 409 and b"already been used" in body
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == b"y" * 100
        assert len(file_records(srv, type="upload")) == 1
    run(scenario)


def test_get_without_capability(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        put, get = await request_slot(a, "secret.txt", 10)
        assert (await asyncio.to_thread(https, srv, "PUT", put, b"0123456789"))[0] == 201
        u = urllib.parse.urlsplit(get)
        parts = u.path.split("/")  # '', 'file', id, cap, name
        fid, cap = parts[2], parts[3]
        bad = cap[:-1] + ("0" if cap[-1] != "0" else "1")
        for path in (f"/file/{fid}/{bad}/secret.txt", f"/file/{fid}/{bad}",
                     f"/file/{fid}/{'0' * 64}/secret.txt"):
            st, _, body = await asyncio.to_thread(https, srv, "GET", path)
            assert st == 403 and b"secret" not in body.replace(b"secret.txt", b""), (path, body)
        for path in (f"/file/{fid}", f"/file/{fid}/", "/", f"/upload/{fid}/{cap}/x"):
            st, _, _ = await asyncio.to_thread(https, srv, "GET", path)
            assert st in (403, 404, 405), path
        # the GET capability does not authorise a PUT
        st, _, _ = await asyncio.to_thread(https, srv, "PUT", f"/upload/{fid}/{cap}/x", b"0" * 10)
        assert st == 403
        # Refused attempts that name a file are recorded (outcome "refused"); URLs that
        # name no file, and the PUT, are not downloads.
        refused = await wait_records(srv, 3, type="download")
        assert [r["outcome"] for r in refused] == ["refused"] * 3, refused
        assert all(r["msg_id"] == fid and r["verdict"] == "block" for r in refused)
        assert [r["reason"] for r in refused] == \
            ["GET refused (403): this URL does not authorise a download"] * 3
        assert refused[0]["file_name"] == "secret.txt" and "peer=" in refused[0]["stanza"]
        assert "secret" not in srv.log_text().replace("secret.txt", "")
        assert cap not in srv.log_text()
    run(scenario)


def test_traversal_in_names(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        for name, want in (("../../../../etc/passwd", "passwd"),
                           ("..\\..\\boot.ini", "boot.ini"),
                           ("..", "file"),
                           ("a\"b;c\r\nSet-Cookie: x.txt", "a_b_c Set-Cookie_ x.txt")):
            esc = name.replace("&", "&amp;").replace("\"", "&quot;").replace("'", "&apos;") \
                      .replace("\r", "&#13;").replace("\n", "&#10;")
            put, get = await request_slot(a, esc, 4)
            assert "/../" not in put and "%2F" not in put.split("/", 6)[-1]
            assert (await asyncio.to_thread(https, srv, "PUT", put, b"abcd"))[0] == 201
            st, hd, body = await asyncio.to_thread(https, srv, "GET", get)
            assert st == 200 and body == b"abcd"
            assert f"filename=\"{want}\"" in hd["content-disposition"], hd["content-disposition"]
            assert "\r" not in hd["content-disposition"] and "set-cookie" not in hd
        # nothing was written outside the object store
        assert all(re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{64}", o) for o in objects(srv))
        # traversal in the request target never reaches the file system
        for path in ("/../../etc/passwd", "/file/../../../etc/passwd",
                     "/file/%2e%2e/%2e%2e/etc/passwd", "/file/..%2f..%2fetc%2fpasswd"):
            st, _, body = await asyncio.to_thread(https, srv, "GET", path)
            assert st in (400, 404) and b"root:" not in body, path
    run(scenario)


def test_slow_loris_headers_and_body(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        put, get = await request_slot(a, "slow.bin", 1000)
        path = urllib.parse.urlsplit(put).path
        # headers dribbled one byte at a time never complete: 408 after 2 s
        t = TLSRaw(srv)
        t0 = time.monotonic()
        req = f"PUT {path} HTTP/1.1\r\nHost: {DOMAIN}\r\n".encode()
        for i in range(len(req)):
            try:
                t.send(req[i:i + 1])
            except (ssl.SSLError, OSError):
                break  # the server gave up on us: what it said is read below
            await asyncio.sleep(0.1)
            if time.monotonic() - t0 > 4:
                break
        data, closed = await asyncio.to_thread(t.read_all, 6)
        t.close()
        assert status_of(data) == 408 and closed, data
        # a body that stops half way: 408 after 2 s of silence, nothing kept
        t = TLSRaw(srv)
        t.send(f"PUT {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: 1000\r\n\r\n"
               .encode() + b"x" * 300)
        data, closed = await asyncio.to_thread(t.read_all, 6)
        t.close()
        assert status_of(data) == 408 and closed, data
        assert tmpfiles(srv) == [] and objects(srv) == []
        # the slot is still usable, and the server still serves
        st, _, _ = await asyncio.to_thread(https, srv, "PUT", put, b"x" * 1000)
        assert st == 201
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == b"x" * 1000
    run(scenario)


def test_killed_upload_leaves_no_file(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        put, get = await request_slot(a, "cut.bin", 100_000)
        path = urllib.parse.urlsplit(put).path
        t = TLSRaw(srv)
        t.send(f"PUT {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: 100000\r\n\r\n"
               .encode() + b"q" * 50_000)
        await asyncio.sleep(0.3)
        t.s.close()
        await asyncio.sleep(0.5)
        assert tmpfiles(srv) == [] and objects(srv) == []
        st, _, _ = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 404
        assert file_records(srv, type="upload") == []
    run(scenario)


def test_malformed_http(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        cases = [
            (b"HELLO WORLD\r\n\r\n", 400),
            (b"GET /file/x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
            (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
            (b"PUT /upload/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 404),
            (b"DELETE /file/x HTTP/1.1\r\nHost: a\r\n\r\n", 405),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", 417),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 400),
            (b"\x00\x01\x02\x03\r\n\r\n", 400),
        ]
        for raw, want in cases:
            t = TLSRaw(srv)
            t.send(raw)
            data, closed = await asyncio.to_thread(t.read_all, 5)
            t.close()
            assert status_of(data) == want, (raw[:60], data[:200])
            assert closed, raw[:60]
        # plain HTTP on the TLS port is not answered in the clear
        s = socket.create_connection((HOST, srv.https_port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        s.settimeout(5)
        try:
            got = s.recv(100)
        except OSError:
            got = b""
        s.close()
        assert b"HTTP/1.1" not in got
        # the server is still fine: a normal upload works
        put, get = await request_slot(a, "after.txt", 3)
        assert (await asyncio.to_thread(https, srv, "PUT", put, b"ok!"))[0] == 201
        assert srv.alive()
    run(scenario)


def test_keep_alive_and_pipelining(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        put, get = await request_slot(a, "pipe.txt", 5)
        assert (await asyncio.to_thread(https, srv, "PUT", put, b"hello"))[0] == 201
        path = urllib.parse.urlsplit(get).path
        t = TLSRaw(srv)
        t.send((f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n" * 3 +
                f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").encode())
        data, closed = await asyncio.to_thread(t.read_all, 5)
        t.close()
        assert data.count(b"HTTP/1.1 200 OK") == 4 and data.count(b"hello") == 4, data
        assert closed
    run(scenario)


def test_unknown_sender_and_bad_slot_requests(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        for xml, cond in (
                (f"<request xmlns='{NS_UPLOAD}' size='10'/>", "bad-request"),
                (f"<request xmlns='{NS_UPLOAD}' filename='a' size='-1'/>", "bad-request"),
                (f"<request xmlns='{NS_UPLOAD}' filename='a' size='1e3'/>", "bad-request"),
                (f"<request xmlns='{NS_UPLOAD}' filename='a' size='10' content-type='x y'/>",
                 "bad-request"),
                (f"<request xmlns='{NS_UPLOAD}' filename='a' size='10'><recipient xmlns='{NS_PARLEY}' jid='@@'/></request>",
                 "jid-malformed")):
            with pytest.raises(IqError) as ei:
                await send_iq(a, UPLOAD_JID, xml)
            assert ei.value.iq["error"]["condition"] == cond, xml
    run(scenario)


def test_recipient_and_screen_capture_recorded(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753"
                            "de0000000c4944415478da63f8cfc0000003010100c9fe92ef0000000049454e44ae426082")
        put, get = await request_slot(a, "screen.png", len(png), ctype="image/png",
                                      screen=True, recipient="bob@localhost")
        assert (await asyncio.to_thread(https, srv, "PUT", put, png))[0] == 201
        st, hd, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == png and hd["content-type"] == "image/png"
        up = (await wait_records(srv, type="upload"))[0]
        assert up["recipient"] == "bob@localhost" and up["file_type"] == "image/png"
        assert "screen-capture=\"true\"" in up["stanza"]
        down = (await wait_records(srv, type="download"))[0]
        assert down["recipient"] == "bob@localhost"
        assert (up["outcome"], up["verdict"]) == ("stored", "allow")
        assert (down["outcome"], down["verdict"]) == ("downloaded", "allow")
    run(scenario)


def test_expired_and_purged(server, run):
    srv = upload_server(server, ["upload_expire_after = 1d"])

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        urls = []
        for name, data in (("old.txt", b"expiring"), ("second.txt", b"purge me"),
                           ("third.txt", b"by its id")):
            put, get = await request_slot(a, name, len(data))
            assert (await asyncio.to_thread(https, srv, "PUT", put, data))[0] == 201
            urls.append(get)
        ids = [urllib.parse.urlsplit(u).path.split("/")[2] for u in urls]
        listed = srv.ctl("files", "list").stdout
        assert all(i in listed for i in ids) and "old.txt" in listed and "available" in listed
        # nothing has expired yet
        assert "0 files purged" in srv.ctl("files", "purge", "--expired").stdout
        # two days on, all three have (upload_expire_after = 1d): purge only the first
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2 * 86400))
        p = srv.ctl("files", "purge", ids[0])
        assert "1 file purged" in p.stdout
        assert (await asyncio.to_thread(https, srv, "GET", urls[0]))[0] == 404
        assert (await asyncio.to_thread(https, srv, "GET", urls[1]))[0] == 200
        p = srv.ctl("files", "purge", "--expired", "--as-of", later)
        assert "2 files purged" in p.stdout
        for u in urls:
            assert (await asyncio.to_thread(https, srv, "GET", u))[0] == 404
        assert objects(srv) == []
        assert ids[0] not in srv.ctl("files", "list").stdout
        ev = db_rows(srv, "SELECT * FROM audit WHERE event = 'file-purge' ORDER BY seq")
        assert [e["actor"] for e in ev] == ["admin"] * 3
        assert ids[0] in ev[0]["detail"] and "why=id" in ev[0]["detail"]
        assert "why=expired" in ev[1]["detail"] and ev[1]["target"] == "alice@localhost/a"
        bad = srv.ctl("files", "purge", "--before", "yesterday", check=False)
        assert bad.returncode == 1 and "bad time" in bad.stderr
        gone = srv.ctl("files", "purge", "0" * 32, check=False)
        assert gone.returncode == 2 and "no file" in gone.stderr
    run(scenario)


def file_id(url):
    return urllib.parse.urlsplit(url).path.split("/")[2]


async def put_file(srv, c, name, data):
    put, get = await request_slot(c, name, len(data))
    st, _, body = await asyncio.to_thread(https, srv, "PUT", put, data)
    assert st == 201, body
    return get


def start_with_file_size_limit(srv, limit):
    """Start parleyd as Server.start does, with RLIMIT_FSIZE: a write past limit bytes
    into any file fails with EFBIG (and SIGXFSZ, unless ignored, kills the process) --
    a full disk without mounting anything."""
    def limit_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    srv.logf = open(srv.log_path, "ab")
    srv.proc = subprocess.Popen([srv.parleyd, "-c", srv.conf], stdin=subprocess.DEVNULL,
                                stdout=srv.logf, stderr=srv.logf, env=srv.env(), cwd=srv.dir,
                                preexec_fn=limit_files)
    for port in (srv.c2s_port, srv.tls_port, srv.https_port):
        assert wait_port(port, 10, srv.proc), srv.log_tail()


def test_disk_full_answers_507_and_server_keeps_serving(server, run):
    srv = upload_server(server, start=False)
    limit = 6 << 20  # far above the databases and the log, below the file
    start_with_file_size_limit(srv, limit)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        size = limit + (64 << 10)
        put, get = await request_slot(a, "huge.bin", size)
        path = urllib.parse.urlsplit(put).path
        t = TLSRaw(srv, timeout=20)
        try:
            t.send(f"PUT {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: {size}\r\n\r\n")
            t.send(b"\x00" * size)
        except OSError:
            pass  # the server stops reading once the disk is full
        raw, _ = await asyncio.to_thread(t.read_all, 10)
        t.close()
        assert status_of(raw) == 507 and b"insufficient storage" in raw, raw[:300]
        assert srv.alive(), "a full disk killed parleyd (SIGXFSZ)\n" + srv.log_tail()
        assert objects(srv) == [] and tmpfiles(srv) == []
        assert (await asyncio.to_thread(https, srv, "GET", get))[0] == 404
        rows = await wait_records(srv, type="upload")
        assert len(rows) == 1, rows
        r = rows[0]
        assert (r["outcome"], r["reason"], r["verdict"]) == ("failed", "insufficient storage", None)
        assert r["msg_id"] == file_id(get) and r["sender"] == "alice@localhost/a"
        note = await a.wait_for("message", lambda m: str(m["from"]) == UPLOAD_JID, timeout=5)
        assert "no room" in note["body"] and "huge.bin" in note["body"]
        # the server goes on serving: a file that fits is stored and downloaded
        small = b"still here\n"
        get2 = await put_file(srv, a, "small.txt", small)
        st, _, body = await asyncio.to_thread(https, srv, "GET", get2)
        assert st == 200 and body == small
        b = await cl.login("bob", "b")
        await request_slot(b, "other.txt", 10)  # other clients are served too
        # a record without a verdict keeps the chain verifiable and exportable
        assert srv.ctl("compliance", "verify", check=False).returncode == 0
        exp = srv.ctl("compliance", "export", "--format", "json").stdout
        assert '"outcome": "failed", "verdict": null' in exp, exp[-600:]
    run(scenario)


def test_identical_content_stored_once_and_kept_while_shared(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        data = b"the same quarterly figures\n" * 100
        get_a = await put_file(srv, a, "figures.txt", data)
        get_b = await put_file(srv, b, "copy-of-figures.txt", data)
        get_c = await put_file(srv, b, "third.txt", data)
        sha = hashlib.sha256(data).hexdigest()
        assert objects(srv) == [f"{sha[:2]}/{sha}"]
        ups = await wait_records(srv, 3, type="upload")
        assert [u["file_sha256"] for u in ups] == [sha] * 3
        # purging one copy keeps the bytes for the others
        assert "1 file purged" in srv.ctl("files", "purge", file_id(get_a)).stdout
        assert (await asyncio.to_thread(https, srv, "GET", get_a))[0] == 404
        for g in (get_b, get_c):
            st, _, body = await asyncio.to_thread(https, srv, "GET", g)
            assert st == 200 and body == data
        assert objects(srv) == [f"{sha[:2]}/{sha}"]
        # the last user of the bytes takes them along
        assert "2 files purged" in srv.ctl("files", "purge", file_id(get_b),
                                           file_id(get_c)).stdout
        assert objects(srv) == []
        # uploaded again afterwards: stored anew
        get_d = await put_file(srv, a, "again.txt", data)
        st, _, body = await asyncio.to_thread(https, srv, "GET", get_d)
        assert st == 200 and body == data
    run(scenario)


def test_server_killed_mid_upload(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        size = 200_000
        put, get = await request_slot(a, "cut.bin", size)
        path = urllib.parse.urlsplit(put).path
        t = TLSRaw(srv)
        t.send(f"PUT {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: {size}\r\n\r\n"
               .encode() + b"k" * 100_000)
        deadline = time.monotonic() + 5
        while not tmpfiles(srv) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(tmpfiles(srv)) == 1  # the half file, where no one can see it
        await cl.close_all()
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(timeout=10)
        t.close()
        assert objects(srv) == []
        srv.logf.close()
        srv.start()
        assert wait_port(srv.https_port, 10, srv.proc), srv.log_tail()
        assert tmpfiles(srv) == [] and objects(srv) == []
        assert (await asyncio.to_thread(https, srv, "GET", get))[0] == 404
        assert file_records(srv, type="upload") == []
        # the slot was never used: the upload can be made again, whole
        data = b"k" * size
        st, _, _ = await asyncio.to_thread(https, srv, "PUT", put, data)
        assert st == 201
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == data
    run(scenario)


def test_automatic_expiry(server, run):
    srv = upload_server(server, ["upload_expire_after = 4s"])

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        data = b"gone in a few seconds\n"
        get = await put_file(srv, a, "brief.txt", data)
        fid = file_id(get)
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == data
        listed = srv.ctl("files", "list").stdout
        assert fid in listed
        # the sweep (every 2 s with a 4 s expiry) removes it within a few seconds
        deadline = time.monotonic() + 15
        while (objects(srv) or fid in srv.ctl("files", "list").stdout) and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert objects(srv) == [] and fid not in srv.ctl("files", "list").stdout
        st, _, _ = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 404
        ev = db_rows(srv, "SELECT * FROM audit WHERE event = 'file-expire' ORDER BY seq")
        assert len(ev) == 1 and ev[0]["actor"] == "server"
        assert f"id={fid}" in ev[0]["detail"]
        assert ev[0]["target"] == "alice@localhost/a"
        downs = await wait_records(srv, 2, type="download")
        assert [(d["outcome"], d["verdict"]) for d in downs] == \
            [("downloaded", "allow"), ("refused", "block")]
        assert downs[1]["reason"].startswith("GET refused (404)")
    run(scenario)


def test_expiry_durations_in_the_configuration(server):
    """upload_expire_after takes a unit (s, m, h, d); a plain number is still days."""
    srv = server(extra=[f"https_port = {free_port()}"], start=False)
    for value, ok in (("30s", True), ("15m", True), ("12h", True), ("7d", True), ("30", True),
                      ("forever", True), ("0", False), ("5x", False), ("s", False),
                      ("-3h", False), ("1.5h", False)):
        srv.set_config([f"upload_expire_after = {value}"])
        p = subprocess.run([srv.parleyd, "-c", srv.conf, "-t"], capture_output=True, text=True,
                           env=srv.env(), cwd=srv.dir, timeout=30)
        assert (p.returncode == 0) == ok, (value, p.stdout, p.stderr)
        if not ok:
            assert "upload_expire_after" in p.stderr + p.stdout, (value, p.stderr)


def test_refused_downloads_recorded_per_address_at_a_bounded_rate(server, run):
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        get = await put_file(srv, a, "target.txt", b"0123456789")
        fid = file_id(get)
        for i in range(25):
            st, _, _ = await asyncio.to_thread(https, srv, "GET",
                                               f"/file/{fid}/{'%064x' % i}/target.txt")
            assert st == 403
        await asyncio.sleep(0.5)
        rows = await wait_records(srv, 10, type="download", outcome="refused")
        assert len(rows) == 10, len(rows)  # at most 10 a minute from one address
        assert "not recorded (too many this minute)" in srv.log_text()
        # many addresses are cheap: all of them together get at most 120 a minute
        for k in range(13):
            for i in range(10):
                st, _, _ = await asyncio.to_thread(https, srv, "GET",
                                                   f"/file/{fid}/{'%064x' % i}/target.txt",
                                                   source=f"127.0.0.{10 + k}")
                assert st == 403
        await asyncio.sleep(0.5)
        rows = await wait_records(srv, 120, type="download", outcome="refused")
        assert len(rows) == 120, len(rows)
        assert len({re.search(r"peer=['\"]([^:'\"]+):", r["stanza"]).group(1)
                    for r in rows}) == 12, \
            "the first address and eleven more filled the minute"
        # the owner of the link still downloads, and that is recorded as ever
        assert (await asyncio.to_thread(https, srv, "GET", get))[0] == 200
        assert await wait_records(srv, type="download", outcome="downloaded")
    run(scenario)


def test_shared_bytes_change_hands_under_the_objects_lock(server, run):
    """parleyd (publishing an upload) and parleyctl (purging a file) both decide whether
    shared bytes are still used: each does so under upload_dir/objects.lock, so a purge of
    one copy cannot delete the bytes of a copy being stored at the same moment.  While
    someone else holds the lock, both wait (boundedly) and then fail, changing nothing."""
    srv = upload_server(server)

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        data = b"shared bytes\n" * 50
        get = await put_file(srv, a, "one.txt", data)
        put2, get2 = await request_slot(a, "two.txt", len(data))
        with open(os.path.join(files_dir(srv), "objects.lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            p = srv.ctl("files", "purge", file_id(get), check=False)
            assert p.returncode != 0 and "objects.lock" in p.stderr, p.stderr
            st, _, body = await asyncio.to_thread(https, srv, "PUT", put2, data, None, 20)
            assert st == 503 and b"busy" in body
            assert tmpfiles(srv) == []
        # nothing changed meanwhile; with the lock free both go through
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == data
        assert file_records(srv, type="upload", outcome="stored") and \
            len(file_records(srv, type="upload")) == 1
        put3, get3 = await request_slot(a, "three.txt", len(data))
        assert (await asyncio.to_thread(https, srv, "PUT", put3, data))[0] == 201
        assert "1 file purged" in srv.ctl("files", "purge", file_id(get)).stdout
        st, _, body = await asyncio.to_thread(https, srv, "GET", get3)
        assert st == 200 and body == data
        assert len(objects(srv)) == 1
        ev = db_rows(srv, "SELECT event, detail FROM audit WHERE event LIKE 'file-purge%' "
                          "ORDER BY seq")
        assert [e["event"] for e in ev] == ["file-purge", "file-purge-failed", "file-purge"]
        assert all(f"id={file_id(get)}" in e["detail"] for e in ev)
    run(scenario)
