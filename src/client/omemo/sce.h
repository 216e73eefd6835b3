/* sce.h - the XEP-0420 (Stanza Content Encryption, urn:xmpp:sce:1) envelope that OMEMO
 * encrypts: the message's <body/> inside <content/>, a random-length <rpad/> so the
 * ciphertext length does not reveal the text length, <time/>, and <to/> and <from/> so a
 * server cannot re-address a message without the recipient noticing. */
#ifndef PARLEY_OMEMO_SCE_H
#define PARLEY_OMEMO_SCE_H

#include "errors.h"

#include <stddef.h>

#define XMLNS_SCE "urn:xmpp:sce:1"
#define OM_SCE_MAX (OM_SCE_MAX_BODY + 4096)
#define OM_SCE_MAX_BODY (200 * 1024)

/* The envelope for body (freshly allocated XML text), or NULL if the body is too long. */
char *om_sce_build(const char *body, const char *from_bare, const char *to_bare);

/* Parse a decrypted envelope. A <from/> naming someone other than sender_bare, or a <to/>
 * naming someone other than own_bare, is OM_ERR_SENDER (the server re-addressed it);
 * undecodable XML or no <content/> is OM_ERR_MALFORMED. *body gets the body (freshly
 * allocated), or NULL when the envelope carries none (an empty message). */
om_err om_sce_parse(const char *xml, size_t len, const char *sender_bare, const char *own_bare,
                    char **body);

#endif
