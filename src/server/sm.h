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
 * order, and requests in the queue are answered with an error. */
#ifndef PARLEY_SM_H
#define PARLEY_SM_H

#include "../common/xml.h"
#include "c2s.h"

#include <stddef.h>

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

#endif
