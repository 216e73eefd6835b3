/* sasl.h - the server side of SASL (RFC 6120 section 6) for c2s streams:
 * SCRAM-SHA-256(-PLUS), SCRAM-SHA-1(-PLUS), and PLAIN (offered only inside TLS),
 * with failed-login rate limiting. */
#ifndef PARLEY_SASL_H
#define PARLEY_SASL_H

#include "../common/xml.h"
#include "c2s.h"

typedef enum {
    SASL_STEP_CONTINUE, /* negotiation goes on (or failed; the client may retry) */
    SASL_STEP_SUCCESS,  /* authenticated: s->user is set, the stream restarts */
    SASL_STEP_CLOSED,   /* the session is being closed */
} sasl_step;

/* Add <mechanisms/> (and the XEP-0440 channel-binding types) to stream features. */
void sasl_add_features(c2s *s, xml_node *features);
/* Handle <auth/>, <response/> or <abort/>. Takes ownership of el. */
sasl_step sasl_handle(c2s *s, xml_node *el);
/* Free negotiation state. */
void sasl_reset(c2s *s);

#endif
