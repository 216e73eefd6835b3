/* iq_out.h - IQ requests the server itself sends (verdicts from a compliance component,
 * later pings over server links) and the matching of their answers.
 *
 * Each request gets a fresh id; the answer (result or error from the addressee) or a
 * time-out calls the callback exactly once. */
#ifndef PARLEY_IQ_OUT_H
#define PARLEY_IQ_OUT_H

#include "../common/xml.h"
#include "server.h"

/* reply: the answering <iq type="result"|"error"/>, valid during the call only; NULL when
 * no answer came within the time-out or the server is shutting down. */
typedef void (*iq_reply_fn)(server *srv, void *ud, const xml_node *reply);

/* Send iq (type get or set; 'to' set; 'from' defaults to the server's domain; the id is
 * replaced by a fresh one) through router_send and call fn(ud, reply) once. Takes
 * ownership of iq. */
void iq_out_send(server *srv, xml_node *iq, int timeout_ms, iq_reply_fn fn, void *ud);
/* An IQ result/error addressed to the server: answer the request it belongs to. Returns
 * 1 if it did (the caller still owns reply), 0 if no request matches (it is dropped:
 * RFC 6120 8.2.3 forbids answering an answer). A reply must come from the address the
 * request went to, so nobody else can forge a verdict. */
int iq_out_answer(server *srv, const xml_node *reply);
/* Expire requests past their time-out (a 100 ms timer: verdict time-outs are short). */
void iq_out_expire(server *srv);
/* The addressee to (a component) disconnected: its pending requests get NULL now rather
 * than at their time-out. */
void iq_out_fail_to(server *srv, const char *to);
/* Shutdown: every pending callback gets NULL, then the table is freed. */
void iq_out_free(server *srv);

#endif
