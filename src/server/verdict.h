/* verdict.h - judging messages before they are recorded and delivered: the check IQs to
 * the compliance server (docs/verdict-protocol.md), the messages waiting for their
 * verdicts in their senders' order, and what each verdict does to a message and its
 * record. Only compliance.c calls this; file checks are compliance_check_file
 * (compliance.h, implemented here). */
#ifndef PARLEY_VERDICT_H
#define PARLEY_VERDICT_H

#include "compliance_internal.h"

#define XMLNS_VERDICT "urn:parley:compliance:0"

/* Take over a message that is about to join the batch if it must wait instead: it needs
 * a check (it has a record, a compliance server is configured, and it is not traffic of
 * the compliance server itself), or its sender already has messages waiting. Returns 1
 * if taken (it joins the batch once decided, in its sender's order), 0 if the caller
 * must enqueue it now. kind, occupants: as in the check (occupants are copied). */
int verdict_take(server *srv, compliance_item *it, const char *kind,
                 const char *const *occupants, size_t noccupants);
/* Is any message waiting for a verdict? */
int verdict_pending(const server *srv);
/* Does a message of this sender (full JID) that its stream management sm_serial counted
 * (sm.h) wait for a verdict? If so *h is the count of its stanzas before the first. */
int verdict_sender_waiting(const server *srv, const char *sender, uint64_t sm_serial,
                           uint32_t *h);
/* Shutdown, after iq_out_free has answered every check: free the (then empty) table. */
void verdict_free(server *srv);

#endif
