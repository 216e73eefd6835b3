"""The admin policy (docs/policy.md): `parleyctl policy` and `parleyctl group` with their
errors, precedence user > groups > global > default (the most restrictive value across
groups), the audit trail, the urn:parley:policy:0 IQ, pushes to online clients after a
change, and the server's enforcement of e2e_aes / e2e_plain on one-to-one messages (with a
blocked-policy compliance record). Group chat is the MUC service's and is not covered
here."""
import asyncio
import os
import re
import sqlite3
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import clients_for, exchange, send_iq

NS_POLICY = "urn:parley:policy:0"
NS_OMEMO = "urn:xmpp:omemo:2"
NS_LEGACY_OMEMO = "eu.siacs.conversations.axolotl"


def ctl(srv, *args, ok=True):
    p = srv.ctl(*args, check=False)
    if ok:
        assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def ctl_fails(srv, *args, code=2, says=None):
    p = srv.ctl(*args, check=False)
    assert p.returncode == code, f"{args}: exit {p.returncode}, wanted {code}\n{p.stdout}{p.stderr}"
    if says:
        assert says in p.stderr, f"{args}: {p.stderr!r} lacks {says!r}"
    return p


def show(srv, user):
    """{key: (value, source)} from `policy show --user`."""
    out = ctl(srv, "policy", "show", "--user", user).stdout.splitlines()
    assert out[0].startswith(f"effective policy of {user}")
    got = {}
    for line in out[1:]:
        key, rest = line.split(None, 1)
        value, source = re.split(r"\s{2,}", rest.strip())
        got[key] = (value.split(" (")[0], source)
    return got


def audit(srv):
    con = sqlite3.connect(f"file:{os.path.join(srv.dir, 'data', 'compliance.db')}?mode=ro",
                          uri=True, timeout=10)
    try:
        return [(e, t, d) for e, t, d in
                con.execute("SELECT event, target, detail FROM audit ORDER BY seq")]
    finally:
        con.close()


def test_ctl_set_get_unset_and_precedence(server):
    srv = server(start=False)
    # defaults
    s = show(srv, "alice@localhost")
    assert s["e2e_aes"] == ("true", "default") and s["e2e_plain"] == ("true", "default")
    assert s["max_file_size"] == ("104857600", "default")
    # global, then a group, then the user: each level beats the one before
    ctl(srv, "policy", "set", "--global", "max_file_size", "50M")
    ctl(srv, "group", "add", "Finance")  # names are case-insensitive, kept lower-case
    ctl(srv, "group", "add", "legal")
    assert ctl(srv, "group", "list").stdout.split() == ["finance", "legal"]
    ctl(srv, "group", "member", "add", "finance", "alice@localhost")
    ctl(srv, "group", "member", "add", "legal", "alice@localhost")
    ctl(srv, "group", "member", "add", "legal", "bob@localhost")
    assert ctl(srv, "group", "members", "legal").stdout.split() == \
        ["alice@localhost", "bob@localhost"]
    assert show(srv, "bob@localhost")["max_file_size"] == ("52428800", "global")
    ctl(srv, "policy", "set", "--group", "finance", "max_file_size", "10M")
    ctl(srv, "policy", "set", "--group", "legal", "max_file_size", "20M")
    ctl(srv, "policy", "set", "--group", "finance", "file_transfer", "yes")
    ctl(srv, "policy", "set", "--group", "legal", "file_transfer", "no")
    ctl(srv, "policy", "set", "--group", "legal", "file_types_blocked", ".exe, application/x-msdos-program")
    ctl(srv, "policy", "set", "--group", "finance", "file_types_blocked", "*.BAT")
    s = show(srv, "alice@localhost")
    # in several groups: the most restrictive value, and which group it came from
    assert s["max_file_size"] == ("10485760", "group finance")
    assert s["file_transfer"] == ("false", "group legal")
    assert s["file_types_blocked"][0] == ".bat,.exe,application/x-msdos-program"
    assert s["file_types_blocked"][1] == "groups finance, legal"
    assert show(srv, "bob@localhost")["max_file_size"] == ("20971520", "group legal")
    # the user's own value beats the groups', even when less restrictive
    ctl(srv, "policy", "set", "--user", "alice@localhost", "file_transfer", "true")
    assert show(srv, "alice@localhost")["file_transfer"] == ("true", "user")
    # get shows what is set at one level; unset falls back
    assert ctl(srv, "policy", "get", "--user", "alice@localhost", "file_transfer").stdout == "true\n"
    assert "max_file_size" in ctl(srv, "policy", "get", "--group", "legal").stdout
    ctl(srv, "policy", "unset", "--user", "alice@localhost", "file_transfer")
    assert show(srv, "alice@localhost")["file_transfer"] == ("false", "group legal")
    ctl_fails(srv, "policy", "get", "--user", "alice@localhost", "file_transfer",
              says="not set")
    ctl(srv, "group", "member", "del", "legal", "alice@localhost")
    assert show(srv, "alice@localhost")["file_transfer"] == ("true", "group finance")
    ctl(srv, "group", "del", "finance")
    assert show(srv, "alice@localhost")["max_file_size"] == ("52428800", "global")
    assert "finance" not in ctl(srv, "group", "list").stdout
    # every change is in the compliance archive's audit chain
    events = audit(srv)
    assert ("policy-set", "global", "uid=%d scope=global max_file_size=52428800" % os.getuid()) \
        in events
    assert ("group-add", "group:finance", f"uid={os.getuid()}") in events
    assert ("group-member-add", "alice@localhost", f"uid={os.getuid()} group=finance") in events
    assert ("policy-set", "group:legal", f"uid={os.getuid()} scope=group file_transfer=false") \
        in events
    assert ("policy-unset", "alice@localhost",
            f"uid={os.getuid()} scope=user file_transfer=(unset)") in events
    assert ("group-member-del", "alice@localhost", f"uid={os.getuid()} group=legal") in events
    assert ("group-del", "group:finance", f"uid={os.getuid()}") in events


def test_ctl_errors(server):
    srv = server(start=False)
    # the invalid combination, at the level where it is set
    ctl(srv, "policy", "set", "--global", "e2e_aes", "false")
    ctl_fails(srv, "policy", "set", "--global", "e2e_plain", "false",
              says="would forbid both encrypted and unencrypted chat")
    # ... and where it would be inherited: bob allows plaintext for himself, but a group
    # or global change that leaves him with neither is refused, naming him
    ctl(srv, "policy", "unset", "--global", "e2e_aes")
    ctl(srv, "policy", "set", "--user", "bob@localhost", "e2e_aes", "false")
    p = ctl_fails(srv, "policy", "set", "--global", "e2e_plain", "false",
                  says="user bob@localhost")
    assert "e2e_aes=false (from user)" in p.stderr and "(from global)" in p.stderr
    ctl(srv, "group", "add", "secure")
    ctl(srv, "policy", "set", "--group", "secure", "e2e_plain", "false")
    ctl_fails(srv, "group", "member", "add", "secure", "bob@localhost",
              says="e2e_plain=false (from group secure)")
    ctl(srv, "policy", "set", "--user", "bob@localhost", "e2e_plain", "true")
    ctl(srv, "group", "member", "add", "secure", "bob@localhost")  # now fine: user wins
    ctl_fails(srv, "policy", "unset", "--user", "bob@localhost", "e2e_plain", says="refused")
    assert show(srv, "bob@localhost")["e2e_plain"] == ("true", "user")
    # unknown key, bad values
    ctl_fails(srv, "policy", "set", "--global", "e2e_rot13", "true", says="unknown policy key")
    ctl_fails(srv, "policy", "set", "--global", "e2e_aes", "perhaps", says="a boolean")
    ctl_fails(srv, "policy", "set", "--global", "max_file_size", "lots", says="a size in bytes")
    ctl_fails(srv, "policy", "set", "--global", "max_file_size", "0", says="more than 0")
    ctl_fails(srv, "policy", "set", "--global", "file_types_allowed", "image/, .pdf",
              says="neither a MIME type")
    # unknown user or group, bad names
    ctl_fails(srv, "policy", "set", "--user", "nobody@localhost", "e2e_aes", "true",
              says="no such user nobody@localhost")
    ctl_fails(srv, "policy", "set", "--user", "bob@elsewhere.example", "e2e_aes", "true",
              says="not in this server's domain")
    ctl_fails(srv, "policy", "set", "--group", "nogroup", "e2e_aes", "true",
              says="no such group nogroup")
    ctl_fails(srv, "policy", "show", "--user", "nobody@localhost", says="no such user")
    ctl_fails(srv, "group", "members", "nogroup", says="no such group")
    ctl_fails(srv, "group", "add", "secure", says="already exists")
    ctl_fails(srv, "group", "member", "add", "secure", "nobody@localhost", says="no such user")
    ctl_fails(srv, "group", "member", "del", "secure", "alice@localhost", says="not a member")
    ctl_fails(srv, "group", "add", "bad name!", code=1, says="bad group name")
    # usage errors
    ctl_fails(srv, "policy", "set", "e2e_aes", "true", code=1, says="needs --user")
    ctl_fails(srv, "policy", "set", "--global", "--group", "x", "e2e_aes", "true", code=1)
    ctl_fails(srv, "policy", "set", "--global", "e2e_aes", code=1, says="KEY VALUE")
    ctl_fails(srv, "policy", "frobnicate", code=1)
    ctl_fails(srv, "group", "member", "add", "secure", code=1)
    # nothing refused was stored or audited
    events = [e for e in audit(srv) if e[0].startswith("policy") or e[0].startswith("group")]
    assert not [e for e in events if "e2e_rot13" in (e[2] or "") or "nogroup" in (e[1] or "")]
    assert ctl(srv, "policy", "get", "--global").stdout == ""
    assert "e2e_aes" in ctl(srv, "policy", "keys").stdout


def policy_items(iq):
    el = iq.xml.find(f"{{{NS_POLICY}}}policy")
    assert el is not None, iq
    return {i.get("key"): i.get("value") for i in el.findall(f"{{{NS_POLICY}}}item")}


async def get_policy(c, to):
    return policy_items(await send_iq(c, to, f"<policy xmlns='{NS_POLICY}'/>"))


def test_policy_iq_and_disco(srv, run):
    ctl(srv, "policy", "set", "--global", "max_file_size", "1G")
    ctl(srv, "policy", "set", "--user", "alice@localhost", "e2e_plain", "false")

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a", plugins=("xep_0030",))
        for to in ("alice@localhost", "localhost", None):
            p = await get_policy(a, to)
            assert p["e2e_plain"] == "false" and p["e2e_aes"] == "true", (to, p)
            assert p["max_file_size"] == str(1 << 30)
            assert p["file_types_allowed"] == "*" and p["file_types_blocked"] == ""
            assert set(p) == {"e2e_aes", "e2e_plain", "disable_im_history", "chat_archive",
                              "file_transfer", "screen_capture", "max_file_size",
                              "file_types_allowed", "file_types_blocked", "file_daily_quota"}
        with pytest.raises(IqError) as e:
            await send_iq(a, "localhost", f"<policy xmlns='{NS_POLICY}'/>", itype="set")
        assert e.value.iq["error"]["condition"] == "forbidden"
        with pytest.raises(IqError):
            await get_policy(a, "bob@localhost")  # not someone else's
        info = await a["xep_0030"].get_info(jid="localhost", timeout=5)
        assert NS_POLICY in info["disco_info"]["features"]
        b = await cl.login("bob", "b")
        assert (await get_policy(b, "localhost"))["e2e_plain"] == "true"
    run(scenario)


def watch_pushes(c):
    """Record (and acknowledge) policy pushes."""
    c.events["policy_push"] = []

    def on_push(iq):
        if iq["type"] == "set":
            c.events["policy_push"].append(policy_items(iq))
            iq.reply().send()

    c.register_handler(Callback("policy push", MatchXPath(f"{{{c.default_ns}}}iq/{{{NS_POLICY}}}policy"),
                                on_push))


def test_push_after_ctl_change(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        a2 = await cl.login("alice", "a2")
        b = await cl.login("bob", "b")
        for c in (a, a2, b):
            watch_pushes(c)
            await get_policy(c, "localhost")  # what a Parley client does at sign-in
        await asyncio.to_thread(ctl, srv, "policy", "set", "--user", "alice@localhost",
                                "e2e_aes", "false")
        for c in (a, a2):
            p = await c.wait_for("policy_push", lambda p: p["e2e_aes"] == "false", 5)
            assert p["e2e_plain"] == "true"
        await b.expect_none("policy_push", duration=1.5)  # bob's policy did not change
        # a group change reaches its members
        await asyncio.to_thread(ctl, srv, "group", "add", "ops")
        await asyncio.to_thread(ctl, srv, "group", "member", "add", "ops", "bob@localhost")
        await asyncio.to_thread(ctl, srv, "policy", "set", "--group", "ops",
                                "screen_capture", "false")
        await b.wait_for("policy_push", lambda p: p["screen_capture"] == "false", 5)
        await a.expect_none("policy_push", duration=1.5)
        # the pushed policy is the one the IQ now answers
        assert (await get_policy(b, "localhost"))["screen_capture"] == "false"
    run(scenario)


def condition(msg):
    """The defined condition of a stanza error, read from the XML (slixmpp 1.8 does not
    know RFC 6120's policy-violation)."""
    err = msg.xml.find("{jabber:client}error")
    for el in err:
        ns, _, name = el.tag[1:].partition("}")
        if ns == "urn:ietf:params:xml:ns:xmpp-stanzas" and name != "text":
            return name
    return None


def omemo_message(to, mid, body=True):
    fallback = "<body>I sent you an OMEMO encrypted message</body>" if body else ""
    return (f"<message to='{to}' type='chat' id='{mid}'>"
            f"<encrypted xmlns='{NS_OMEMO}'><header sid='1'><keys jid='{to.split('/')[0]}'>"
            "<key rid='2'>a2V5</key></keys></header><payload>Y2lwaGVy</payload></encrypted>"
            f"{fallback}</message>")


def records(srv, where, args=()):
    con = sqlite3.connect(f"file:{os.path.join(srv.dir, 'data', 'compliance.db')}?mode=ro",
                          uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM messages WHERE {where}", args)]
    finally:
        con.close()


def test_plaintext_refused_when_e2e_plain_false(srv, run):
    ctl(srv, "policy", "set", "--user", "alice@localhost", "e2e_plain", "false")

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        a.send_message(mto="bob@localhost/b", mbody="plain-refused", mtype="chat")
        err = await a.wait_for("message_error", lambda m: m["body"] == "plain-refused", 5)
        assert condition(err) == "policy-violation"
        assert err["error"]["type"] == "modify"
        assert "e2e_plain=false" in err["error"]["text"]
        # a message without a type is one-to-one too
        a.send_message(mto="bob@localhost", mbody="plain-normal")
        await a.wait_for("message_error", lambda m: m["body"] == "plain-normal", 5)
        # encrypted goes through
        a.send_raw(omemo_message("bob@localhost/b", "enc-ok"))
        await b.wait_for("message", lambda m: m["id"] == "enc-ok", 5)
        await b.expect_none("message", lambda m: m["body"].startswith("plain-"), duration=0.3)
        # bob (default policy) may not send plaintext to alice either: her policy refuses it
        b.send_message(mto="alice@localhost/a", mbody="to-alice-plain", mtype="chat")
        err = await b.wait_for("message_error", lambda m: m["body"] == "to-alice-plain", 5)
        assert condition(err) == "policy-violation"
        assert "policy of alice@localhost" in err["error"]["text"]
        # content-free messages (chat states) are not judged
        a.send_raw("<message to='bob@localhost/b' type='chat' id='cs'>"
                   "<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        await a.expect_none("message_error", lambda m: m["id"] == "cs", duration=0.5)
        # the attempt is on the compliance record
        rows = records(srv, "body = ?", ("plain-refused",))
        assert len(rows) == 1 and rows[0]["outcome"] == "blocked-policy", rows
        assert "e2e_plain=false" in rows[0]["reason"]
    run(scenario)


def test_encrypted_refused_when_e2e_aes_false(srv, run):
    ctl(srv, "policy", "set", "--user", "bob@localhost", "e2e_aes", "false")

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        c = await cl.login("carol", "c")
        for ns, mid in ((NS_OMEMO, "omemo2"), (NS_LEGACY_OMEMO, "legacy")):
            b.send_raw(omemo_message("alice@localhost/a", mid).replace(NS_OMEMO, ns))
            err = await b.wait_for("message_error", lambda m, mid=mid: m["id"] == mid, 5)
            assert condition(err) == "policy-violation", mid
            assert "e2e_aes=false" in err["error"]["text"]
        # an encrypted message without a fallback body is still encrypted
        b.send_raw(omemo_message("alice@localhost/a", "nobody", body=False))
        await b.wait_for("message_error", lambda m: m["id"] == "nobody", 5)
        await a.expect_none("message", lambda m: m["id"] in ("omemo2", "legacy", "nobody"),
                            duration=0.3)
        # plaintext is fine for bob
        await exchange(b, a, "bob-plain-ok")
        # and encrypting to bob is refused too: his client would not read it
        c.send_raw(omemo_message("bob@localhost/b", "to-bob"))
        err = await c.wait_for("message_error", lambda m: m["id"] == "to-bob", 5)
        assert "policy of bob@localhost" in err["error"]["text"]
        # everyone else still talks encrypted
        c.send_raw(omemo_message("alice@localhost/a", "c-to-a"))
        await a.wait_for("message", lambda m: m["id"] == "c-to-a", 5)
        rows = records(srv, "msg_id = 'omemo2'")
        assert len(rows) == 1 and rows[0]["outcome"] == "blocked-policy", rows
        assert rows[0]["encrypted"] == 1 and rows[0]["body"] is None
    run(scenario)


def test_policy_change_applies_to_the_next_message(srv, run):
    """The cache follows parleyctl: after the push, the new policy is enforced."""
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        b = await cl.login("bob", "b")
        watch_pushes(a)
        await get_policy(a, "localhost")
        await exchange(a, b, "before-change")
        await asyncio.to_thread(ctl, srv, "policy", "set", "--global", "e2e_plain", "false")
        await a.wait_for("policy_push", lambda p: p["e2e_plain"] == "false", 5)
        a.send_message(mto="bob@localhost/b", mbody="after-change", mtype="chat")
        err = await a.wait_for("message_error", lambda m: m["body"] == "after-change", 5)
        assert condition(err) == "policy-violation"
        await asyncio.to_thread(ctl, srv, "policy", "unset", "--global", "e2e_plain")
        await a.wait_for("policy_push", lambda p: p["e2e_plain"] == "true", 5)
        await exchange(a, b, "after-unset")
    run(scenario)
