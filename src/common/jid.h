/* jid.h - XMPP addresses (RFC 7622): parsing, validation and normalisation.
 *
 * Normalisation uses the stringprep profiles XMPP servers interoperate with (nodeprep
 * for the localpart, nameprep for the domain, resourceprep for the resource, via
 * libidn), plus the length limits of RFC 7622 (1023 bytes per part). Comparisons of
 * normalised JIDs are plain string comparisons. */
#ifndef PARLEY_JID_H
#define PARLEY_JID_H

typedef struct jid {
    char *local;    /* NULL if absent */
    char *domain;   /* never NULL after a successful parse */
    char *resource; /* NULL if absent */
} jid;

/* Parse and normalise s into out. Returns 0, or -1 if s is not a valid JID (out is then
 * zeroed and needs no jid_clear). */
int jid_parse(const char *s, jid *out);
void jid_clear(jid *j);
/* "local@domain" or "domain", freshly allocated. */
char *jid_bare(const jid *j);
/* "local@domain/resource" (or the bare form when there is no resource), freshly allocated. */
char *jid_full(const jid *j);
/* Normalise a string JID: a freshly allocated normalised full JID, or NULL if invalid. */
char *jid_normalize(const char *s);
/* Normalise only a bare JID's string (resource stripped): freshly allocated or NULL. */
char *jid_normalize_bare(const char *s);
/* Normalise a resource alone (resourceprep): freshly allocated or NULL if invalid. */
char *jid_normalize_resource(const char *s);
/* Normalise a localpart alone (nodeprep): freshly allocated or NULL if invalid. */
char *jid_normalize_local(const char *s);

#endif
