/* iq.h - IQs the server answers itself: to the server (disco, ping, version, session)
 * and to an account's bare JID (roster, disco on the account), RFC 6120 8.2.3 / 10.5.3. */
#ifndef PARLEY_IQ_H
#define PARLEY_IQ_H

#include "../common/xml.h"
#include "c2s.h"

/* An IQ addressed to the server's domain. Takes ownership. */
void iq_to_server(server *srv, c2s *origin, xml_node *iq);
/* An IQ addressed to the bare JID of a local account (or with no 'to'). Takes ownership. */
void iq_to_account(server *srv, c2s *origin, xml_node *iq, const char *bare);

#endif
