"""parley-compliance judging what the other slices produce: ethical walls in shared rooms
(XEP-0045 group chat, the check lists the room's occupants) and file rules on uploads
(XEP-0363, the check describes the file), end to end with the real program, parleyd and
slixmpp clients, each decision in parley-compliance's journal and parleyd's archive."""
import asyncio

import pytest

from component_util import error_condition, random_text, records, start_with_components
from conftest import DOMAIN, IqError, clients_for, free_port, send_iq, wait_port
from muc_util import create, gc_body, groupchat, join, logins
from test_parley_compliance import WALL_REASON, pcomp  # noqa: F401  (the fixture)
from test_upload import UPLOAD_JID, file_records, https, request_slot, slot_xml, wait_records

RULES = f"""
group trading = alice@{DOMAIN}
group research = bob@{DOMAIN}
wall trading research
file_max_size = 1K
file_screen_capture = block
"""


def test_ethical_wall_in_a_shared_room(server, run, pcomp):
    srv, port = start_with_components(server, verdicts=True, timeout_ms=4000)
    pc = pcomp(srv, port, rules=RULES)
    nonce = random_text("r")

    async def scenario():
        cl = clients_for(srv)
        alice, bob, carol = await logins(cl, "alice", "bob", "carol")
        rjid = await create(alice, f"desk-{nonce}")
        await join(carol, rjid, "carol")
        # Without research in the room, trading speaks freely.
        groupchat(alice, rjid, f"before {nonce}")
        await carol.wait_for("message", gc_body(rjid, f"before {nonce}"), 8)
        # Once a member of research has joined, trading's words would cross the wall.
        await join(bob, rjid, "bob")
        groupchat(alice, rjid, f"across {nonce}")
        err = await alice.wait_for("message_error", lambda m: m["body"] == f"across {nonce}", 8)
        assert error_condition(err) == "policy-violation", err
        assert err["error"]["text"].startswith(WALL_REASON), err["error"]["text"]
        await carol.expect_none("message", gc_body(rjid, f"across {nonce}"), 0.5)
        await bob.expect_none("message", gc_body(rjid, f"across {nonce}"), 0.1)
        # carol is in neither group: she may still speak to everyone, bob included.
        groupchat(carol, rjid, f"neutral {nonce}")
        await bob.wait_for("message", gc_body(rjid, f"neutral {nonce}"), 8)
        return rjid

    rjid = run(scenario)
    checks = pc.rows("kind = 'groupchat'")
    assert [c["verdict"] for c in checks] == ["allow", "block", "allow"]
    assert checks[1]["recipient"] == rjid and checks[1]["reason"].startswith(WALL_REASON)
    arch = records(srv, "body LIKE ?", (f"%{nonce}",))
    assert [(r["recipient"], r["verdict"], r["outcome"]) for r in arch] == [
        (rjid, "allow", "delivered"), (rjid, "block", "blocked-compliance"),
        (rjid, "allow", "delivered")]


def test_file_rules_size_and_screen_capture(server, run, pcomp):
    https_port = free_port()
    srv, port = start_with_components(server, extra=[f"https_port = {https_port}"],
                                      verdicts=True, timeout_ms=4000)
    srv.https_port = https_port
    assert wait_port(https_port, 10, srv.proc)
    pc = pcomp(srv, port, rules=RULES)

    async def scenario():
        cl = clients_for(srv)
        alice = await cl.login("alice", "a")
        # Too big for the compliance server's rule (parleyd's own limit is far higher).
        with pytest.raises(IqError) as ei:
            await send_iq(alice, UPLOAD_JID, slot_xml("big.txt", 4096))
        assert error_condition(ei.value.iq) == "policy-violation"
        # A screen capture, blocked by the compliance server's rule.
        with pytest.raises(IqError) as ei:
            await send_iq(alice, UPLOAD_JID, slot_xml("shot.png", 100, screen=True))
        assert error_condition(ei.value.iq) == "policy-violation"
        # The ethical wall covers files too: nothing from trading for research.
        with pytest.raises(IqError) as ei:
            await send_iq(alice, UPLOAD_JID, slot_xml("memo.txt", 10, recipient=f"bob@{DOMAIN}"))
        assert WALL_REASON in ei.value.iq["error"]["text"]
        # A small ordinary file passes both checks (request, then upload) and downloads.
        put, get = await request_slot(alice, "note.txt", 5, recipient=f"carol@{DOMAIN}")
        st, _, _ = await asyncio.to_thread(https, srv, "PUT", put, b"hello")
        assert st == 201
        await wait_records(srv, type="verdict", outcome="released", timeout=10)
        st, _, body = await asyncio.to_thread(https, srv, "GET", get)
        assert st == 200 and body == b"hello"

    run(scenario)
    checks = pc.rows("kind = 'file'")
    verdicts = [c["verdict"] for c in checks]
    assert verdicts == ["block", "block", "block", "allow", "allow"], checks
    assert checks[2]["recipient"] == f"bob@{DOMAIN}" and checks[3]["recipient"] == f"carol@{DOMAIN}"
    assert "size" in (checks[0]["reason"] or "") or "large" in (checks[0]["reason"] or "")
    assert file_records(srv, type="slot", outcome="blocked-compliance")
