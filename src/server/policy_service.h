/* policy_service.h - the admin policy inside parleyd (docs/policy.md): each user's
 * effective policy, cached in memory; the urn:parley:policy:0 IQ that delivers it; pushes
 * to online sessions when parleyctl changes it; and enforcement of e2e_aes / e2e_plain on
 * one-to-one messages. */
#ifndef PARLEY_POLICY_SERVICE_H
#define PARLEY_POLICY_SERVICE_H

#include "../common/policy.h"
#include "../common/xml.h"
#include "c2s.h"

/* An IQ with a <policy xmlns='urn:parley:policy:0'/> payload, addressed to the server or
 * the sender's own bare JID. Takes ownership. */
void policy_service_iq(server *srv, c2s *origin, xml_node *iq);
/* The housekeeping tick: poll the store's policy version; after a change, drop the cache
 * and push the new effective policy to every session of each online user whose policy
 * changed. */
void policy_service_tick(server *srv);
/* user's effective policy (cached; valid until the next tick or lookup), or NULL after
 * logging if the store cannot be read. */
const policy_effective *policy_service_effective(server *srv, const char *user);
/* Before a one-to-one message from a local account is recorded and delivered: 1 if the
 * sender's (or the local recipient's) policy forbids it, in which case the sender gets a
 * <policy-violation/> error saying which policy, the compliance archive records the
 * attempt (outcome blocked-policy) and stanza is consumed; 0 to go on. */
int policy_service_refuses(server *srv, xml_node *stanza, const char *bare);
void policy_service_free(server *srv);

#endif
