"""Parley's own client for file transfer: `parley send-file` and `parley screenshot`
against parleyd (slixmpp on the receiving side), including the policy's refusal."""
import asyncio
import hashlib
import os
import subprocess

from conftest import BUILD, HOST, clients_for
from test_upload import https, upload_server, wait_records

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
