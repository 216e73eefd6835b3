"""IQ: XEP-0030 disco, XEP-0199 ping, XEP-0092 version, unknown namespaces."""
import pytest

from conftest import IqError, clients_for, send_iq

DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_VERSION = "jabber:iq:version"


def identities(iq):
    q = iq.xml.find(f"{{{DISCO_INFO}}}query")
    return [(i.get("category"), i.get("type")) for i in q.findall(f"{{{DISCO_INFO}}}identity")]


def features(iq):
    q = iq.xml.find(f"{{{DISCO_INFO}}}query")
    return {f.get("var") for f in q.findall(f"{{{DISCO_INFO}}}feature")}


def test_disco_info_server(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        res = await send_iq(a, "localhost", f"<query xmlns='{DISCO_INFO}'/>")
        assert res["type"] == "result" and res["from"].full == "localhost"
        assert ("server", "im") in identities(res), identities(res)
        f = features(res)
        for ns in (DISCO_INFO, DISCO_ITEMS, "urn:xmpp:ping", NS_VERSION):
            assert ns in f, f"{ns} missing from {sorted(f)}"
    run(scenario)


def test_disco_items_server(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        res = await send_iq(a, "localhost", f"<query xmlns='{DISCO_ITEMS}'/>")
        assert res["type"] == "result"
        assert res.xml.find(f"{{{DISCO_ITEMS}}}query") is not None, res
    run(scenario)


def test_disco_info_own_account(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        res = await send_iq(a, "alice@localhost", f"<query xmlns='{DISCO_INFO}'/>")
        assert res["type"] == "result"
        assert ("account", "registered") in identities(res), identities(res)
        res = await send_iq(a, "alice@localhost", f"<query xmlns='{DISCO_ITEMS}'/>")
        assert res["type"] == "result"
    run(scenario)


def test_ping_server(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        res = await send_iq(a, "localhost", "<ping xmlns='urn:xmpp:ping'/>")
        assert res["type"] == "result" and res["from"].full == "localhost"
        # no 'to': addressed to the account; the server answers for it
        res = await send_iq(a, None, "<ping xmlns='urn:xmpp:ping'/>")
        assert res["type"] == "result"
    run(scenario)


def test_ping_between_clients_routed(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a", plugins=("xep_0199",))
        b = await cl.login("bob", "b")
        res = await send_iq(b, "alice@localhost/a", "<ping xmlns='urn:xmpp:ping'/>")
        assert res["type"] == "result" and res["from"].full == "alice@localhost/a"
    run(scenario)


def test_version(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        res = await send_iq(a, "localhost", f"<query xmlns='{NS_VERSION}'/>")
        q = res.xml.find(f"{{{NS_VERSION}}}query")
        name = q.find(f"{{{NS_VERSION}}}name")
        ver = q.find(f"{{{NS_VERSION}}}version")
        assert name is not None and name.text, res
        assert ver is not None and ver.text, res
    run(scenario)


def test_version_hidden(server, run):
    srv = server(extra=["hide_version = true"])

    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        res = await send_iq(a, "localhost", f"<query xmlns='{NS_VERSION}'/>")
        assert res["type"] == "result"
        q = res.xml.find(f"{{{NS_VERSION}}}query")
        assert q is not None
        assert q.find(f"{{{NS_VERSION}}}version") is None, f"version shown: {res}"
        assert q.find(f"{{{NS_VERSION}}}os") is None, f"os shown: {res}"
    run(scenario)


def test_unknown_namespace_service_unavailable(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        for to in ("localhost", "bob@localhost", None):
            with pytest.raises(IqError) as ei:
                await send_iq(a, to, "<query xmlns='urn:example:nonexistent'/>")
            assert ei.value.iq["error"]["condition"] == "service-unavailable", (to, ei.value.iq)
        with pytest.raises(IqError) as ei:
            await send_iq(a, "localhost", "<query xmlns='urn:example:nonexistent'/>", itype="set")
        assert ei.value.iq["error"]["condition"] == "service-unavailable"
    run(scenario)


def test_iq_to_unknown_user(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        with pytest.raises(IqError) as ei:
            await send_iq(a, "nobody@localhost/x", "<ping xmlns='urn:xmpp:ping'/>")
        assert ei.value.iq["error"]["condition"] == "service-unavailable"
    run(scenario)


def test_iq_to_offline_full_jid(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        with pytest.raises(IqError) as ei:
            await send_iq(a, "bob@localhost/offline", "<ping xmlns='urn:xmpp:ping'/>")
        assert ei.value.iq["error"]["condition"] == "service-unavailable"
    run(scenario)


def test_invalid_iq_bad_request(srv, run):
    async def scenario():
        cl = clients_for(srv)
        a = await cl.login("alice", "a")
        # an iq get with no child element (RFC 6120 8.2.3: exactly one payload)
        with pytest.raises(IqError) as ei:
            await send_iq(a, "localhost", None)
        assert ei.value.iq["error"]["condition"] == "bad-request", ei.value.iq
    run(scenario)
