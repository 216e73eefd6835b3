/* stanza.h - building replies: IQ results and stanza errors (RFC 6120 8.3). */
#ifndef PARLEY_STANZA_H
#define PARLEY_STANZA_H

#include "../common/xml.h"

/* An IQ result for iq (to/from swapped, same id), with no payload. */
xml_node *stanza_iq_result(const xml_node *iq);
/* An error reply to stanza: to/from swapped, type="error", the original's children kept
 * (for messages and presence) and <error type=etype><condition/><text/></error>.
 * Returns NULL if stanza is itself an error (errors are never answered). */
xml_node *stanza_error(const xml_node *stanza, const char *etype, const char *condition,
                       const char *text);
/* Is stanza one of message, presence, iq (in any namespace)? */
int stanza_is_routable(const xml_node *stanza);

#endif
