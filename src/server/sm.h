/* sm.h - XEP-0198 stream management for client sessions: acknowledgements, resumption of
 * a session whose connection died, and redelivery of what the client never acknowledged.
 *
 * A session with resumption enabled survives the loss of its connection for
 * sm_resume_timeout seconds, "detached": it stays bound and available, and everything
 * routed to it is queued behind the stanzas the client had not acknowledged. A client that
 * resumes (same account, the session's id, its count of stanzas received) gets the
 * unacknowledged and queued stanzas, in order. A session that is not resumed in time, or
 * is replaced by a new one with the same resource, ends: its queued messages are
 * delivered again through the normal rules (another resource, else offline storage), in
 * order, and requests in the queue are answered with an error; its count of stanzas
 * received is remembered for another sm_resume_timeout seconds, for <failed h='...'/>.
 * With a compliance server, <a/> never counts a message still waiting for its verdict
 * (its record is not committed yet): that count follows once they are decided. */
#ifndef PARLEY_SM_H
#define PARLEY_SM_H

#include "../common/xml.h"
#include "c2s.h"

#include <stddef.h>
#include <stdint.h>

#define XMLNS_SM "urn:xmpp:sm:3"

typedef struct sm_state sm_state;

/* Add <sm/> to the stream features offered after authentication. */
void sm_add_feature(c2s *s, xml_node *features);
/* A nonza in the urn:xmpp:sm:3 namespace (enable, r, a, resume). Takes ownership.
 * Returns 0, or -1 if the session was ended with a stream error. */
int sm_handle(c2s *s, xml_node *nonza);
/* A stanza arrived from the client (counted when management is enabled). */
void sm_count_inbound(c2s *s);
/* A stanza is being sent to the client (serialised as text): keep it until acknowledged.
 * Returns 1 if it must still be written to the connection, 0 if the session is detached
 * (only queued). */
int sm_track_outbound(c2s *s, const char *text, size_t len);
/* The connection is gone. Returns 1 if the session is now detached and waits for
 * resumption (the caller must not end it), 0 if it must end now. */
int sm_detach(c2s *s, const char *reason);
/* Would the session wait for resumption if its connection were lost now? */
int sm_may_resume(const c2s *s);
/* The session will not be resumed: it may end cleanly (the client closed its stream, or
 * the server sent a stream error). */
void sm_forbid_resume(c2s *s);
/* The session ends: hand queued messages back to the router (after the caller unbound
 * the session) and free the state. */
void sm_session_end(c2s *s);
/* Housekeeping tick: end detached sessions whose window has passed; ask for overdue
 * acknowledgements. Returns 1 if s was ended (and freed). */
int sm_housekeeping(c2s *s, int64_t now_ms);
/* Compliance (verdict.c): a message of sender (a full JID) is about to wait for the
 * compliance server's verdict as it is routed. Returns the serial of the sender's stream
 * management, with *h its count of the sender's stanzas (this one's number), or 0 if
 * the sender has none. */
uint64_t sm_inbound_count(server *srv, const char *sender, uint32_t *h);
/* Compliance: messages of sender left the verdict queue for the batch committed before
 * any output: an <a/> held back for them may go out. */
void sm_sender_settled(server *srv, const char *sender);
/* Shutdown: forget the counts of recently ended sessions. */
void sm_free(server *srv);

/* ---- handover of a session between the nodes of a domain (node_sm.h) ---- */
/* The resumable session bound here with id previd, or NULL. */
c2s *sm_find(server *srv, const char *previd);
/* Another node takes session s over; the client acknowledged h. Returns the stream
 * management state as <session xmlns=XMLNS_NODE h-in acked><queued>text</queued>...
 * and stops managing s here (s->sm is NULL, the id forgotten): the caller then lets the
 * session go without ending it. NULL with *condition (an RFC 6120 stanza error) if h
 * acknowledges stanzas never sent or the queue does not fit in a stanza. */
xml_node *sm_hand_over(c2s *s, uint32_t h, const char **condition);
/* s (authenticated, not bound) waits for another node's answer: further <resume/>s are
 * refused meanwhile. */
void sm_wait_handover(c2s *s);
int sm_waits_handover(const c2s *s);
/* The other node did not hand the session over: <failed/> with condition (NULL: the
 * wait just ends, the client moved on). */
void sm_handover_failed(c2s *s, const char *condition);
/* The other node's <session/>: s, bound to the session's resource by the caller, resumes
 * it as previd (<resumed/>, then the unacknowledged stanzas). 0, or -1 if it is damaged. */
int sm_resume_handed(c2s *s, const char *previd, const xml_node *session);
/* A session handed over for a client that left meanwhile: its queued messages are
 * delivered again through the normal rules. */
void sm_redeliver_handed(server *srv, const char *user, const xml_node *session);

#endif
