/* check.h - reading a verdict request (<check xmlns='urn:parley:compliance:0'/>, see
 * docs/verdict-protocol.md) into the pc_check that the rules judge. Anything malformed
 * is refused with a reason that goes back to parleyd in an error reply. */
#ifndef PC_CHECK_H
#define PC_CHECK_H

#include "../common/xml.h"
#include "rules.h"

#include <stddef.h>

#define XMLNS_PC_COMPLIANCE "urn:parley:compliance:0"
#define XMLNS_FORWARD "urn:xmpp:forward:0"

/* Parse check into c. Returns 0, or -1 with the reason in why (c is then empty). */
int check_parse(const xml_node *check, pc_check *c, char *why, size_t whylen);
void check_clear(pc_check *c);

#endif
