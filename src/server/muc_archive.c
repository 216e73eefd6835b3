/* muc_archive.c - a room's message archive (XEP-0313 on a room JID, with XEP-0045): each
 * room message is kept once, as the room broadcast it and under the room's stanza-id;
 * occupants (and members of members-only rooms) query it with the paging and filters of
 * a user's own archive (mam.c answers, this file decides who may ask); a room that goes
 * away takes its archive with it. */
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "mam.h"
#include "muc_internal.h"
#include "router.h"
#include "stanza.h"

#include <stdlib.h>
#include <string.h>

void muc_archive_message(muc_room *r, const char *sender_bare, const char *id,
                         const xml_node *stanza)
{
    mam_archive_room(r->svc->srv, r->jid, sender_bare, id, stanza);
}

void muc_archive_forget(muc_room *r)
{
    if (r->svc->srv->cfg.archive)
        mam_forget(r->svc->srv, r->jid);
}

/* Occupants read what they could have read while present; members of a members-only
 * room read it without joining first (the room is theirs). Anyone else could join an open
 * room and read the history anyway, but must join first, like for the join history. */
static const char *refusal(const muc_room *r, const char *from)
{
    char *bare = jid_normalize_bare(from);
    muc_aff aff = bare ? muc_room_aff(r, bare) : MUC_AFF_NONE;
    free(bare);
    if (aff == MUC_AFF_OUTCAST)
        return "you are banned from this room";
    if (muc_occupant_by_jid(r, from))
        return NULL;
    if (r->cfg.members_only)
        return aff >= MUC_AFF_MEMBER ? NULL : "this room's archive is for its members only";
    return aff >= MUC_AFF_MEMBER ? NULL : "join the room to read its archive";
}

static void send_routed(void *ud, xml_node *stanza)
{
    router_send(ud, stanza);
}

void muc_archive_iq(muc_room *r, xml_node *iq, const char *from)
{
    server *srv = r->svc->srv;
    const xml_node *p = xml_first_element(iq);
    const char *why = refusal(r, from);
    if (!srv->cfg.archive) {
        router_bounce(srv, iq, "cancel", "service-unavailable", "the archive is disabled");
    } else if (!str_eq(p->name, "query")) {
        /* Preferences say what a user keeps; a room keeps every message. */
        router_bounce(srv, iq, "cancel", "feature-not-implemented",
                      "a room's archive has no preferences");
    } else if (why) {
        router_bounce(srv, iq, "auth", "forbidden", why);
    } else {
        /* In a semi-anonymous room only moderators know who is behind a nickname: a
         * filter on real JIDs would tell everyone. */
        muc_occupant *o = muc_occupant_by_jid(r, from);
        int hidden = r->cfg.semi_anonymous && !(o && o->role == MUC_ROLE_MODERATOR);
        mam_target t = {
            .owner = r->jid,
            .to = from,
            .send = send_routed,
            .ud = srv,
            .with_refused = hidden ? "this room hides real JIDs: 'with' cannot be used" : NULL,
        };
        mam_answer_query(srv, &t, iq);
    }
    xml_free(iq);
}
