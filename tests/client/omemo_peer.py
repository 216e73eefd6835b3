"""A real OMEMO (urn:xmpp:omemo:2) peer for the tests: python3-omemo with the
python3-twomemo backend, over slixmpp, with an in-memory storage.

Owned by the tests (not a library): it publishes its device list and bundle on PEP the
way XEP-0384 says, encrypts with the library's SessionManager inside an XEP-0420 envelope,
and decrypts what arrives, so Parley's client is checked against an independent
implementation on the wire.

    peer = OmemoPeer("bob@localhost/py", "pw", ca_file, ("127.0.0.1", 5222))
    await peer.start()                     # signed in, keys published
    await peer.send_omemo("alice@localhost", "hi")
    msg = await peer.next_message(10)      # {"from", "body", "device", "error"}
"""
import asyncio
import base64
import logging
import secrets
import xml.etree.ElementTree as ET

import omemo
import slixmpp
import twomemo
import twomemo.twomemo
import twomemo.etree
from omemo.storage import Just, Nothing
from slixmpp.exceptions import IqError, IqTimeout

NS = twomemo.twomemo.NAMESPACE
PUBSUB = "http://jabber.org/protocol/pubsub"
DEVICES = NS + ":devices"
BUNDLES = NS + ":bundles"
SCE = "urn:xmpp:sce:1"

logging.getLogger("omemo").setLevel(logging.WARNING)


class MemStorage(omemo.Storage):
    def __init__(self):
        super().__init__(True)
        self.data = {}

    async def _load(self, key):
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


def publish_options(max_items):
    x = ET.Element("{jabber:x:data}x", {"type": "submit"})
    fields = [("FORM_TYPE", PUBSUB + "#publish-options"), ("pubsub#access_model", "open")]
    if max_items:
        fields.append(("pubsub#max_items", "max"))
    for var, value in fields:
        f = ET.SubElement(x, "{jabber:x:data}field", {"var": var})
        ET.SubElement(f, "{jabber:x:data}value").text = value
    po = ET.Element("{%s}publish-options" % PUBSUB)
    po.append(x)
    return po


class Manager(omemo.SessionManager):
    """SessionManager whose XMPP side is the peer's slixmpp client."""
    xmpp = None

    @staticmethod
    async def _upload_bundle(bundle):
        await Manager.xmpp.publish(BUNDLES, str(bundle.device_id),
                                   twomemo.etree.serialize_bundle(bundle), True)

    @staticmethod
    async def _download_bundle(namespace, bare_jid, device_id):
        try:
            item = await Manager.xmpp.items(bare_jid, BUNDLES, str(device_id))
        except Exception as e:
            raise omemo.BundleDownloadFailed(str(e)) from e
        el = None if item is None else item.find("{%s}bundle" % NS)
        if el is None:
            raise omemo.BundleNotFound(f"no bundle for {bare_jid}/{device_id}")
        return twomemo.etree.parse_bundle(el, bare_jid, device_id)

    @staticmethod
    async def _delete_bundle(namespace, device_id):
        pass

    @staticmethod
    async def _upload_device_list(namespace, device_list):
        await Manager.xmpp.publish(DEVICES, "current",
                                   twomemo.etree.serialize_device_list(device_list), False)

    @staticmethod
    async def _download_device_list(namespace, bare_jid):
        try:
            item = await Manager.xmpp.items(bare_jid, DEVICES, None)
        except IqError as e:
            if e.condition == "item-not-found":
                return {}
            raise omemo.DeviceListDownloadFailed(str(e)) from e
        el = None if item is None else item.find("{%s}devices" % NS)
        return {} if el is None else twomemo.etree.parse_device_list(el)

    async def _evaluate_custom_trust_level(self, device):
        # blind trust before verification, like Parley's default
        if device.trust_level_name == "DISTRUSTED":
            return omemo.TrustLevel.DISTRUSTED
        return omemo.TrustLevel.TRUSTED

    async def _make_trust_decision(self, undecided, identifier):
        pass

    @staticmethod
    async def _send_message(message, bare_jid):
        Manager.xmpp.send_encrypted(bare_jid, twomemo.etree.serialize_message(message), None)


class OmemoPeer(slixmpp.ClientXMPP):
    def __init__(self, jid, password, ca, address, mech="SCRAM-SHA-256"):
        super().__init__(jid, password,
                         plugin_config={"feature_mechanisms": {"use_mech": mech}})
        self.ca_certs = ca
        self.address = address
        self.inbox = asyncio.Queue()
        self.sm = None
        self.ready = asyncio.get_event_loop().create_future()
        mechs = self["feature_mechanisms"]
        orig = mechs._default_credentials

        def creds(required, optional):
            c = orig(required, optional)
            c.pop("channel_binding", None)  # slixmpp only knows tls-unique
            return c

        mechs.sasl_callback = creds
        self.add_event_handler("session_start", self._session_start)
        self.add_event_handler("message", self._on_message)
        # slixmpp's "message" event needs a <body/>: OMEMO's empty messages (key exchange
        # answers, heartbeats) have none, so encrypted messages get their own handler
        from slixmpp.xmlstream.handler import CoroutineCallback
        from slixmpp.xmlstream.matcher import MatchXPath
        self.register_handler(CoroutineCallback(
            "omemo", MatchXPath("{jabber:client}message/{%s}encrypted" % NS),
            self._on_encrypted))

    # ---------------------------------------------------------------- PEP
    async def publish(self, node, item_id, payload, bundle):
        iq = self.Iq()
        iq["type"] = "set"
        ps = ET.Element("{%s}pubsub" % PUBSUB)
        pub = ET.SubElement(ps, "{%s}publish" % PUBSUB, {"node": node})
        ET.SubElement(pub, "{%s}item" % PUBSUB, {"id": item_id}).append(payload)
        ps.append(publish_options(bundle))
        iq.xml.append(ps)
        await iq.send(timeout=10)

    async def items(self, jid, node, item_id):
        iq = self.Iq()
        iq["type"] = "get"
        iq["to"] = jid
        ps = ET.Element("{%s}pubsub" % PUBSUB)
        items = ET.SubElement(ps, "{%s}items" % PUBSUB, {"node": node})
        if item_id is not None:
            ET.SubElement(items, "{%s}item" % PUBSUB, {"id": item_id})
        iq.xml.append(ps)
        res = await iq.send(timeout=10)
        return res.xml.find("{%s}pubsub/{%s}items/{%s}item" % (PUBSUB, PUBSUB, PUBSUB))

    # ---------------------------------------------------------------- session
    async def start(self, storage=None):
        """Sign in and publish; storage: a MemStorage to continue from (a restart)."""
        self.connect(self.address, force_starttls=True)
        await asyncio.wait_for(self.ready, 20)
        Manager.xmpp = self
        # one storage for the manager and the backend, as in a real client: both read the
        # identity key from it
        self.storage = storage or MemStorage()
        self.sm = await Manager.create([twomemo.twomemo.Twomemo(self.storage)], self.storage,
                                       self.boundjid.bare, "python-omemo peer", "UNDECIDED")
        await self.sm.after_history_sync()
        await self.sm.ensure_data_consistency()  # a changed bundle is published again
        return self

    def new_identity_storage(self, forget_jid):
        """A copy of this peer's storage with the same device id but a new identity key
        (and no sessions with forget_jid): the device comes back with another key."""
        st = MemStorage()
        ns = "/" + NS + "/"
        for k, v in self.storage.data.items():
            if k.startswith("/ikp/") or k == ns + "x3dh" or k.startswith(ns + forget_jid) or \
                    k == ns + "bare_jids":
                continue
            st.data[k] = v
        return st

    async def _session_start(self, _):
        self.send_presence()
        await self.get_roster()
        if not self.ready.done():
            self.ready.set_result(True)

    async def own_fingerprint(self):
        device, _ = await self.sm.get_own_device_information()
        return " ".join(self.sm.format_identity_key(device.identity_key)), device.device_id

    async def refresh(self, bare):
        await self.sm.refresh_device_list(NS, bare)

    # ---------------------------------------------------------------- messages
    def send_encrypted(self, to, encrypted_el, body, mid=None):
        msg = self.make_message(mto=to, mtype="chat")
        if mid:
            msg["id"] = mid
        msg.xml.append(encrypted_el)
        ET.SubElement(msg.xml, "{urn:xmpp:eme:0}encryption", {"namespace": NS, "name": "OMEMO"})
        if body:
            ET.SubElement(msg.xml, "{jabber:client}body").text = body
        ET.SubElement(msg.xml, "{urn:xmpp:hints}store")
        msg.send()

    @staticmethod
    def envelope(body, frm, to):
        env = ET.Element("{%s}envelope" % SCE)
        content = ET.SubElement(env, "{%s}content" % SCE)
        ET.SubElement(content, "{jabber:client}body").text = body
        ET.SubElement(env, "{%s}rpad" % SCE).text = secrets.token_urlsafe(secrets.randbelow(40) + 1)
        ET.SubElement(env, "{%s}from" % SCE, {"jid": frm})
        ET.SubElement(env, "{%s}to" % SCE, {"jid": to})
        return ET.tostring(env)

    async def send_omemo(self, to, body):
        """Encrypt body for every device of `to` (and our other devices) and send it."""
        await self.sm.refresh_device_list(NS, to)
        plain = self.envelope(body, self.boundjid.bare, to)
        messages, errors = await self.sm.encrypt(frozenset([to]), {NS: plain})
        for message in messages:
            self.send_encrypted(to, twomemo.etree.serialize_message(message),
                                "[OMEMO encrypted]")
        return errors

    def send_element(self, to, encrypted_el):
        self.send_encrypted(to, encrypted_el, "[OMEMO encrypted]")

    async def _on_message(self, msg):
        if msg["type"] == "error":
            await self.inbox.put({"from": str(msg["from"]), "error": msg["error"]["condition"],
                                  "body": None, "encrypted": False, "raw": ET.tostring(msg.xml)})
            return
        if msg.xml.find("{%s}encrypted" % NS) is None and msg["body"]:
            await self.inbox.put({"from": str(msg["from"]), "body": msg["body"],
                                  "encrypted": False, "error": None})

    async def _on_encrypted(self, msg):
        if msg["type"] == "error":
            return
        el = msg.xml.find("{%s}encrypted" % NS)
        sender = msg["from"].bare
        entry = {"from": str(msg["from"]), "encrypted": True, "body": None, "error": None,
                 "raw": ET.tostring(msg.xml)}
        try:
            parsed = twomemo.etree.parse_message(el, sender)
            plain, device, _ = await self.sm.decrypt(parsed)
            entry["device"] = device.device_id
            if plain is None:
                return  # an empty message (session confirmation, heartbeat)
            env = ET.fromstring(plain)
            frm = env.find("{%s}from" % SCE)
            if frm is not None and frm.get("jid") != sender:
                raise ValueError("SCE from does not match the sender")
            body = env.find("{%s}content/{jabber:client}body" % SCE)
            entry["body"] = body.text if body is not None else None
        except Exception as e:  # reported to the test, never swallowed
            entry["error"] = f"{type(e).__name__}: {e}"
        await self.inbox.put(entry)

    async def next_message(self, timeout=15):
        return await asyncio.wait_for(self.inbox.get(), timeout)
