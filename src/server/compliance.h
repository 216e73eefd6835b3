/* compliance.h - the server side of the compliance archive (clog.h): which messages are
 * recorded, holding them until their records are durable (strict mode), and audit
 * events (sign-in, sign-out, authentication failures, server start and stop).
 *
 * Strict mode: a recorded message is held, not delivered. Before the event loop sleeps,
 * compliance_flush commits every record of that iteration in one transaction (group
 * commit), then releases each held message to its delivery function; if the commit
 * failed, each goes back to its sender as <resource-constraint/> instead and nothing is
 * delivered. While anything is held, messages that need no record (chat states,
 * receipts) queue behind it, so a sender's messages keep their order.
 *
 * With a compliance server (compliance_server, docs/verdict-protocol.md) a message that
 * needs a record is first judged: it waits for its verdict (verdict.c), holding back its
 * sender's later messages but nobody else's, and only then joins the batch with the
 * verdict in its record; a blocked message is bounced at the flush instead of released.
 *
 * With compliance off (srv->compliance NULL) every function is a cheap no-op. */
#ifndef PARLEY_COMPLIANCE_H
#define PARLEY_COMPLIANCE_H

#include "../common/xml.h"
#include "server.h"

/* Delivers a released message; takes ownership of stanza (and of ud, see free_ud). */
typedef void (*compliance_release_fn)(server *srv, xml_node *stanza, void *ud);

/* Open the archive of srv->cfg (checkpoints signed with the TLS key). 0, or -1 after
 * logging why: the server must then refuse to start. */
int compliance_open(server *srv);
/* Commit what is pending, write the closing checkpoint and close. */
void compliance_close(server *srv);

/* Is the archive on? */
int compliance_enabled(const server *srv);
/* Does this message need a record (a body, a subject or end-to-end encrypted content,
 * and not an error)? */
int compliance_wants(const xml_node *stanza);
/* Is anything held or waiting for a verdict (so that a message needing no record must
 * queue behind it)? */
int compliance_pending(const server *srv);
/* Do messages of this sender (full JID) wait for the compliance server's verdict, so that
 * their records are not yet in the batch the next flush commits? Only those counted by
 * the stream management sm_serial (sm.h); *h is then its count of the sender's stanzas
 * before the first of them. */
int compliance_sender_waiting(const server *srv, const char *sender, uint64_t sm_serial,
                              uint32_t *h);
/* Hold stanza until the next flush (takes ownership). outcome NULL: no record, only
 * ordering; else the record says this outcome (delivered, offline, bounced, discarded)
 * and why (may be NULL). recipient: the JID it is addressed to. release(srv, stanza, ud)
 * is called at the flush when the record committed (or none was needed) and the verdict
 * allowed it (with the body replaced if the verdict modified it); free_ud frees ud if the
 * message is bounced instead (may be NULL). The check is kind="message", or "groupchat"
 * (without occupants) for a message of type groupchat. */
void compliance_hold(server *srv, xml_node *stanza, const char *recipient, const char *outcome,
                     const char *reason, compliance_release_fn release, void *ud,
                     void (*free_ud)(void *ud));
/* A room message, held like compliance_hold (one record per room message: recipient is
 * the room's bare JID). occupants: the real bare JIDs of the room's occupants (n of them,
 * copied; NULL when n is 0), listed in the kind="groupchat" check so that ethical walls
 * apply to rooms. */
void compliance_hold_room(server *srv, xml_node *stanza, const char *room,
                          const char *const *occupants, size_t noccupants, const char *outcome,
                          const char *reason, compliance_release_fn release, void *ud,
                          void (*free_ud)(void *ud));

/* The compliance server's decision on a file (kind="file"). */
typedef struct compliance_verdict {
    int allowed;          /* 1: go ahead; 0: refuse the transfer */
    const char *verdict;  /* for the record: allow, block, allow-unchecked, block-unchecked */
    const char *reason;   /* the verdict's reason or why there was none; may be NULL */
} compliance_verdict;
/* v and its strings are valid during the call only. */
typedef void (*compliance_file_fn)(server *srv, void *ud, const compliance_verdict *v);
/* Ask the compliance server about a file transfer. file: a <file/> element in the
 * urn:parley:compliance:0 namespace with the attributes of docs/verdict-protocol.md
 * (taken over). fn(srv, ud, verdict) is called exactly once: when the verdict arrives,
 * or on failure as compliance_server_failure says; before this function returns when no
 * compliance server is configured (allow) or none is connected (failure). A modify
 * verdict counts as block. Recording the transfer is the caller's job. */
void compliance_check_file(server *srv, xml_node *file, compliance_file_fn fn, void *ud);

/* Queue an audit event (committed with the next flush; kept and retried if the store
 * fails). Any string may be NULL but event. */
void compliance_audit(server *srv, const char *actor, const char *event, const char *target,
                      const char *peer, const char *detail);
/* A record built by the caller (file transfers, kind "file": upload_http.c): committed
 * with the next flush, in order with the messages. done (may be NULL) is then called
 * with ok 1 if the record is durable, 0 if the archive failed. Takes ownership of the
 * record's strings. With the archive off, done runs at once with ok 1. */
struct clog_record;
typedef void (*compliance_done_fn)(server *srv, int ok, void *ud);
void compliance_record(server *srv, struct clog_record *rec, compliance_done_fn done, void *ud);

/* The before-sleep hook: commit the batch, then release or bounce what was held. */
void compliance_flush(server *srv);

#endif
