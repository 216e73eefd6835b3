"""What the MUC tests (test_muc.py, test_muc_archive.py and the compliance tests with rooms)
share: slixmpp clients with the XEP-0045 plugins that record every presence and message,
creating, configuring and joining rooms, a room with its occupants in one call, and
predicates for the messages and presences they wait for."""
import asyncio

import pytest
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import DOMAIN

MUC = f"conference.{DOMAIN}"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
PLUGINS = ("xep_0030", "xep_0004", "xep_0045", "xep_0203")


def room(name):
    return f"{name}@{MUC}"


def codes(p):
    return p["muc"]["status_codes"]


def record_raw(c):
    """Record every presence ('mucp') and message ('mucm') straight from c's stream:
    slixmpp hides some of a room's stanzas (and subject changes, invitations and
    declines have no body). Returns c."""
    c.events["mucp"] = []
    c.events["mucm"] = []
    c.register_handler(Callback("record-presence", MatchXPath("{jabber:client}presence"),
                                lambda p: c.events["mucp"].append(p)))
    c.register_handler(Callback("record-message", MatchXPath("{jabber:client}message"),
                                lambda m: c.events["mucm"].append(m)))
    return c


async def login(cl, user, resource=None, plugins=PLUGINS):
    """A client with the MUC plugins (or these). slixmpp stops raising 'presence' events
    for a room's JIDs once it has seen one of them, so every presence stanza is also
    recorded as 'mucp', straight from the stream."""
    c = record_raw(cl.make(user, resource or user, plugins=plugins))
    await cl.connect(c)
    await asyncio.wait_for(c.get_roster(), 10)
    c.send_presence()
    await asyncio.sleep(0.1)
    return c


async def join(c, rjid, nick, **kw):
    """join_muc_wait with a bounded wait; returns (self_presence, subject, occupants, history)."""
    return await c.plugin["xep_0045"].join_muc_wait(rjid, nick, timeout=5, **kw)


async def join_error(c, rjid, nick, **kw):
    with pytest.raises(PresenceError) as ei:
        await join(c, rjid, nick, **kw)
    return ei.value


async def instant(c, rjid):
    """Accept the defaults of a new room (XEP-0045 10.1.2)."""
    form = c.plugin["xep_0004"].make_form(ftype="submit")
    await c.plugin["xep_0045"].set_room_config(rjid, form, timeout=5)


async def create(c, name, nick=None, config=None):
    """Create a room and open it: instant, or with these muc#roomconfig fields."""
    rjid = room(name)
    pres, *_ = await join(c, rjid, nick or c.boundjid.user)
    assert {110, 201} <= codes(pres), pres
    if config is None:
        await instant(c, rjid)
    else:
        await configure(c, rjid, config)
    return rjid


async def configure(c, rjid, fields):
    form = c.plugin["xep_0004"].make_form(ftype="submit")
    for var, value in fields.items():
        form.add_field(var=f"muc#roomconfig_{var}", value=value)
    await c.plugin["xep_0045"].set_room_config(rjid, form, timeout=5)


async def iq_error(coro):
    with pytest.raises(IqError) as ei:
        await coro
    return ei.value.iq["error"]


def groupchat(c, rjid, body, mid=None):
    m = c.make_message(mto=rjid, mbody=body, mtype="groupchat")
    if mid:
        m["id"] = mid
    m.send()


def gc_body(rjid, body):
    return lambda m: m["type"] == "groupchat" and m["from"].bare == rjid and m["body"] == body


def presence_of(rjid, nick, ptype=None):
    def pred(p):
        if p["from"].bare != rjid or p["from"].resource != nick:
            return False
        return ptype is None or p["type"] == ptype
    return pred


async def error_for(c, body, timeout=5):
    m = await c.wait_for("message_error", lambda m: m["body"] == body, timeout, what=body)
    return m["error"]


async def logins(cl, *users, plugins=PLUGINS):
    """login() for each user, in order; their clients."""
    return [await login(cl, u, plugins=plugins) for u in users]


async def occupied_room(cl, name, owner, *others, config=None, plugins=PLUGINS):
    """owner and then each of others log in; owner creates room name (instant, or with
    these muc#roomconfig fields) and the others join it, each under their user name as
    nickname. Returns (room JID, owner's client, the others' clients...)."""
    clients = await logins(cl, owner, *others, plugins=plugins)
    rjid = await create(clients[0], name, owner, config=config)
    for c, nick in zip(clients[1:], others):
        await join(c, rjid, nick)
    return (rjid, *clients)
