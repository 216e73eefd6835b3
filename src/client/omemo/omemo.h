/* omemo.h - end-to-end encryption in libparley: what the rest of the library calls.
 *
 *   omemo_new / omemo_free      open / close the key store (parley_new, parley_free)
 *   omemo_on_online             publish this device's keys on PEP, or withdraw them, as
 *                               the admin policy says (each sign-in)
 *   omemo_on_policy             the policy changed while online
 *   omemo_on_offline            the connection was lost: queued messages wait for the
 *                               next session (those queued too long fail with a reason)
 *   omemo_give_up               no more connection attempts: queued messages fail
 *   omemo_send                  every message parley_send_message sends goes through here
 *   omemo_handle_message        every received message: decrypts, applies the policy,
 *                               follows device list notifications; 1 = consumed
 *   omemo_timers                signed pre-key rotation while a session lasts
 *
 * The split below: omemo.c (context, publishing our keys), omemo_send.c (the outgoing
 * queue: device lists and bundles fetched, then encrypted or refused), omemo_recv.c
 * (incoming messages and notifications), omemo_api.c (fingerprints and trust). */
#ifndef PARLEY_OMEMO_OMEMO_H
#define PARLEY_OMEMO_OMEMO_H

#include "../../common/xml.h"
#include "../internal.h"

omemo_ctx *omemo_new(parley *p, char *why, size_t whylen);
void omemo_free(omemo_ctx *c);

void omemo_on_online(parley *p);
void omemo_on_policy(parley *p);
void omemo_on_offline(parley *p, parley_error err);
void omemo_give_up(parley *p, parley_error err);

parley_error omemo_send(parley *p, const char *to, const char *type, const char *body,
                        const char *id);
int omemo_handle_message(parley *p, const xml_node *msg);
void omemo_timers(parley *p, int64_t now_ms);

#endif
