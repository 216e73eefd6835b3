/* node_sm.c - handing a XEP-0198 session over to another node (node_sm.h).
 *
 * The request, from the node the client reconnected to (node2) to the owner (node1):
 *   <iq type='set' from='domain/node2' to='domain/node1'>
 *     <handover xmlns='urn:parley:node:0' previd='...' user='bare JID' h='...'/></iq>
 * and the answer:
 *   <iq type='result'><session xmlns='urn:parley:node:0' resource='...' available='0|1'
 *       priority='...' carbons='0|1' roster='0|1' h-in='...' acked='...'>
 *     <presence xmlns='jabber:client'>(last available presence)</presence>
 *     <directed to='...'/>...  <queued>(an unacknowledged stanza, as text)</queued>...
 *   </session></iq>
 * or an error: item-not-found (no such session of that account), undefined-condition (h
 * acknowledges stanzas never sent), resource-constraint (the queue does not fit). */
#include "node_sm.h"
#include "../common/dict.h"
#include "../common/log.h"
#include "../common/util.h"
#include "iq_out.h"
#include "node.h"
#include "pep.h"
#include "s2s.h"
#include "sm.h"
#include "stanza.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_LEN 24

/* The node named by a resumption id of the form token.node, if the token looks like ours
 * (random_token's alphabet) and the node is another live node of this cluster. */
static const char *owning_node(server *srv, const char *previd)
{
    if (!srv->cfg.node_name || strlen(previd) <= TOKEN_LEN + 1 || previd[TOKEN_LEN] != '.')
        return NULL;
    for (size_t i = 0; i < TOKEN_LEN; i++) {
        char c = previd[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return NULL;
    }
    const char *node = previd + TOKEN_LEN + 1;
    if (strlen(node) > 255 || strcmp(node, srv->cfg.node_name) == 0 || !node_known(srv, node))
        return NULL;
    return node_alive(srv, node) ? node : NULL;
}

/* ---- the asking node ---- */

typedef struct waiting {
    c2s *s;             /* valid only while it is still in srv->sessions and waits */
    char stream_id[17];
    char *user;
    char *previd;
} waiting;

static void waiting_free(waiting *w)
{
    free(w->user);
    free(w->previd);
    free(w);
}

/* The session that asked, if it is still there and still waits for this answer. */
static c2s *asker(server *srv, const waiting *w)
{
    for (c2s *s = srv->sessions; s; s = s->next_all)
        if (s == w->s)
            return sm_waits_handover(s) && strcmp(s->stream_id, w->stream_id) == 0 ? s : NULL;
    return NULL;
}

static int attr_int(const xml_node *el, const char *name)
{
    const char *v = xml_get_attr(el, name);
    return v ? atoi(v) : 0;
}

/* The session's state from the answer: bind s to it and resume. */
static void take_up(c2s *s, const char *previd, const xml_node *session)
{
    const char *resource = xml_get_attr(session, "resource");
    const xml_node *p = xml_child(session, XMLNS_CLIENT, "presence");
    int available = attr_int(session, "available") && p;
    if (!resource || !*resource) {
        sm_handover_failed(s, "item-not-found");
        return;
    }
    c2s_adopt(s, resource, available, attr_int(session, "priority"),
              attr_int(session, "roster"), attr_int(session, "carbons"),
              available ? xml_copy(p) : NULL);
    for (const xml_node *d = xml_child(session, XMLNS_NODE, "directed"); d;
         d = xml_next(d, XMLNS_NODE, "directed")) {
        const char *to = xml_get_attr(d, "to");
        if (!to)
            continue;
        if (!s->directed)
            s->directed = dict_new();
        if (!dict_get(s->directed, to))
            dict_set(s->directed, to, xstrdup(to));
    }
    if (sm_resume_handed(s, previd, session) < 0) {
        log_warn("c2s %s: the session handed over is damaged; ended", s->full);
        c2s_stream_error(s, "internal-server-error", "the session could not be resumed");
        return;
    }
    if (available)
        pep_session_moved(s->srv, s);
}

static void on_answer(server *srv, void *ud, const xml_node *reply)
{
    waiting *w = ud;
    c2s *s = asker(srv, w);
    if (s && s->state != C2S_WAIT_BIND) {
        sm_handover_failed(s, NULL); /* it bound a resource meanwhile */
        s = NULL;
    }
    const xml_node *session = reply && str_eq(xml_get_attr(reply, "type"), "result")
                                  ? xml_child(reply, XMLNS_NODE, "session")
                                  : NULL;
    if (session && s) {
        log_info("c2s %s: session %s handed over by its node", w->user, w->previd);
        take_up(s, w->previd, session);
    } else if (session) {
        /* The client left while we asked: what it had not received goes elsewhere. */
        sm_redeliver_handed(srv, w->user, session);
    } else if (s) {
        const xml_node *err = reply ? xml_child(reply, NULL, "error") : NULL;
        const xml_node *cond = err ? xml_first_element(err) : NULL;
        int bad_h = cond && strcmp(cond->name, "undefined-condition") == 0;
        log_info("c2s %s: resumption of %s on another node failed: %s", w->user, w->previd,
                 reply ? (cond ? cond->name : "error") : "no answer in time");
        sm_handover_failed(s, bad_h ? "undefined-condition" : "item-not-found");
    }
    waiting_free(w);
}

int node_sm_resume(c2s *s, const char *previd, uint32_t h)
{
    server *srv = s->srv;
    const char *node = owning_node(srv, previd);
    if (!node)
        return 0;
    xml_node *iq = xml_new(XMLNS_CLIENT, "iq");
    xml_set_attr(iq, "type", "set");
    char *from = xasprintf("%s/%s", srv->cfg.domain, srv->cfg.node_name);
    char *to = xasprintf("%s/%s", srv->cfg.domain, node);
    xml_set_attr(iq, "from", from);
    xml_set_attr(iq, "to", to);
    free(from);
    free(to);
    xml_node *ho = xml_add_child(iq, XMLNS_NODE, "handover");
    xml_set_attr(ho, "previd", previd);
    xml_set_attr(ho, "user", s->user);
    char num[16];
    snprintf(num, sizeof num, "%u", (unsigned)h);
    xml_set_attr(ho, "h", num);
    waiting *w = xcalloc(1, sizeof *w);
    w->s = s;
    memcpy(w->stream_id, s->stream_id, sizeof w->stream_id);
    w->user = xstrdup(s->user);
    w->previd = xstrdup(previd);
    sm_wait_handover(s);
    log_info("c2s %s: resumption of a session of node %s: asking it", s->user, node);
    iq_out_send(srv, iq, NODE_SM_TIMEOUT_MS, on_answer, w);
    return 1;
}

/* ---- the owning node ---- */

static int add_directed(void *ud, const char *target, void *value)
{
    xml_set_attr(xml_add_child(ud, XMLNS_NODE, "directed"), "to", target);
    return 0;
}

/* The answer to a handover request: the session's state, or NULL with *condition. */
static xml_node *hand_over(server *srv, const xml_node *req, const char **condition)
{
    const char *previd = xml_get_attr(req, "previd");
    const char *user = xml_get_attr(req, "user");
    const char *h_attr = xml_get_attr(req, "h");
    *condition = "item-not-found";
    c2s *s = previd && user ? sm_find(srv, previd) : NULL;
    if (!s || strcmp(s->user, user) != 0 || !h_attr)
        return NULL;
    char *end = NULL;
    unsigned long h = strtoul(h_attr, &end, 10);
    if (!*h_attr || *end || h > UINT32_MAX) {
        *condition = "bad-request";
        return NULL;
    }
    xml_node *session = sm_hand_over(s, (uint32_t)h, condition);
    if (!session)
        return NULL;
    char num[16];
    xml_set_attr(session, "resource", s->resource);
    xml_set_attr(session, "available", s->available ? "1" : "0");
    snprintf(num, sizeof num, "%d", s->priority);
    xml_set_attr(session, "priority", num);
    xml_set_attr(session, "carbons", s->carbons ? "1" : "0");
    xml_set_attr(session, "roster", s->roster_loaded ? "1" : "0");
    if (s->available && s->presence)
        xml_append(session, xml_copy(s->presence));
    if (s->directed)
        dict_each(s->directed, add_directed, session);
    log_info("c2s %s: session handed over to another node", s->full);
    pep_session_end(srv, s);
    c2s_hand_over(s);
    return session;
}

void node_sm_request(server *srv, const char *node, xml_node *iq)
{
    const xml_node *req = xml_first_element(iq);
    xml_node *answer;
    if (req && strcmp(req->name, "handover") == 0 &&
        str_eq(xml_get_attr(iq, "type"), "set")) {
        const char *condition = NULL;
        xml_node *session = hand_over(srv, req, &condition);
        if (session) {
            answer = stanza_iq_result(iq);
            xml_append(answer, session);
        } else {
            answer = stanza_error(iq, "cancel", condition, NULL);
        }
    } else {
        answer = stanza_error(iq, "cancel", "feature-not-implemented", NULL);
    }
    if (answer)
        s2s_node_send(srv, node, answer);
    xml_free(iq);
}
