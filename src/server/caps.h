/* caps.h - XEP-0115 entity capabilities of the server's own client sessions: the features
 * each available session announced (PEP notifications go to the "+notify" ones).
 *
 * A presence's <c node ver hash/> is resolved from a cache keyed by hash and ver. On a
 * miss the server asks the session itself (disco#info to node#ver, through iq_out) and
 * recomputes the verification string from the answer (XEP-0115 section 5): only an
 * answer that hashes to the announced string is cached for everyone; any other answer
 * (a mismatch, an unknown hash, duplicates, legacy caps without a hash) serves that
 * session alone, so one client cannot poison what the server believes of others. */
#ifndef PARLEY_CAPS_H
#define PARLEY_CAPS_H

#include "../common/xml.h"
#include "c2s.h"

#include <stddef.h>

typedef struct caps_table caps_table;

/* Called when a session's features became known after a query (not for caps_presence's
 * immediate answers); full is the session's JID. */
typedef void (*caps_ready_fn)(server *srv, const char *full);

typedef enum {
    CAPS_NONE,      /* no (usable) <c/>: the session has no features */
    CAPS_PENDING,   /* asked the session; ready() follows if it answers */
    CAPS_KNOWN,     /* known now, and new or different from before */
    CAPS_UNCHANGED, /* the same caps as the session's previous presence */
} caps_result;

caps_table *caps_new(caps_ready_fn ready);
/* Free everything. Queries still pending refer to the table: free it after iq_out_free. */
void caps_free(caps_table *t);
/* A session's available presence (with or without <c/>). */
caps_result caps_presence(server *srv, caps_table *t, c2s *s, const xml_node *presence);
/* Did session full announce feature? */
int caps_has(const caps_table *t, const char *full, const char *feature);
/* The session went unavailable or away. */
void caps_forget(caps_table *t, const char *full);
/* The verification string of a disco#info <query/> for hash ("sha-1", "sha-256", ...):
 * base64 into out. 0, or -1 if the hash is unknown or the answer is ill-formed (a
 * duplicate identity, feature or form type, XEP-0115 section 5.4). */
int caps_verification_string(const xml_node *query, const char *hash, char *out, size_t outlen);

#endif
