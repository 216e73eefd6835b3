/* router.c - the session directory, the service table and stanza routing. */
#include "router.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "conn.h"
#include "iq.h"
#include "iq_out.h"
#include "message.h"
#include "node.h"
#include "presence.h"
#include "s2s.h"
#include "stanza.h"

#include <stdlib.h>
#include <string.h>

static void send_to_server(server *srv, xml_node *stanza);

c2s *router_sessions(server *srv, const char *bare)
{
    return dict_get(srv->users, bare);
}

c2s *router_session(server *srv, const char *bare, const char *resource)
{
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
        if (strcmp(s->resource, resource) == 0)
            return s;
    return NULL;
}

int router_is_local_domain(server *srv, const char *domain)
{
    return strcmp(domain, srv->cfg.domain) == 0;
}

int router_is_remote_domain(server *srv, const char *domain)
{
    return !router_is_local_domain(srv, domain) && !router_is_service(srv, domain);
}

typedef struct service {
    router_service_fn deliver;
    void *ud;
} service;

int router_add_service(server *srv, const char *domain, router_service_fn deliver, void *ud)
{
    if (!srv->services)
        srv->services = dict_new();
    if (router_is_local_domain(srv, domain) || dict_get(srv->services, domain))
        return -1;
    service *svc = xcalloc(1, sizeof *svc);
    svc->deliver = deliver;
    svc->ud = ud;
    dict_set(srv->services, domain, svc);
    return 0;
}

void router_remove_service(server *srv, const char *domain)
{
    if (srv->services)
        free(dict_del(srv->services, domain));
}

static service *service_of(server *srv, const char *domain)
{
    return srv->services ? dict_get(srv->services, domain) : NULL;
}

int router_is_service(server *srv, const char *domain)
{
    return service_of(srv, domain) != NULL;
}

typedef struct each_ctx {
    void (*fn)(void *ud, const char *domain);
    void *ud;
} each_ctx;

static int each_service(void *ud, const char *key, void *value)
{
    each_ctx *c = ud;
    c->fn(c->ud, key);
    return 0;
}

void router_each_service(server *srv, void (*fn)(void *ud, const char *domain), void *ud)
{
    each_ctx c = {fn, ud};
    if (srv->services)
        dict_each(srv->services, each_service, &c);
}

void router_unbind(server *srv, c2s *s)
{
    c2s *head = dict_get(srv->users, s->user);
    c2s **p = &head;
    while (*p && *p != s)
        p = &(*p)->next_resource;
    if (!*p)
        return;
    if (s->full)
        node_session_gone(srv, s->full);
    *p = s->next_resource;
    s->next_resource = NULL;
    if (head)
        dict_set(srv->users, s->user, head);
    else
        dict_del(srv->users, s->user);
}

void router_bind(server *srv, c2s *s)
{
    c2s *old = router_session(srv, s->user, s->resource);
    if (old) {
        /* Take the old session out now, so its unavailable presence cannot follow the new
         * session's available one. */
        presence_session_end(srv, old);
        router_unbind(srv, old);
        old->state = C2S_WAIT_BIND;
        c2s_stream_error(old, "conflict", "replaced by a new connection with the same resource");
    }
    s->next_resource = dict_get(srv->users, s->user);
    dict_set(srv->users, s->user, s);
    node_session_update(srv, s->full, s->available, s->priority);
}

void router_deliver(server *srv, xml_node *stanza)
{
    jid to;
    if (jid_parse(xml_get_attr(stanza, "to") ? xml_get_attr(stanza, "to") : "", &to) < 0) {
        xml_free(stanza);
        return;
    }
    service *svc = service_of(srv, to.domain);
    if (svc || !to.local || !router_is_local_domain(srv, to.domain)) {
        if (svc) /* an error or push for a room occupant or a component */
            svc->deliver(srv, svc->ud, stanza);
        else if (!router_is_local_domain(srv, to.domain))
            s2s_send(srv, stanza); /* an answer or error for another domain */
        else if (strcmp(stanza->name, "iq") == 0 &&
                 (str_eq(xml_get_attr(stanza, "type"), "result") ||
                  str_eq(xml_get_attr(stanza, "type"), "error")))
            send_to_server(srv, stanza); /* e.g. the error for a request to a dead node */
        else
            xml_free(stanza);
        jid_clear(&to);
        return;
    }
    char *bare = jid_bare(&to);
    int here = 0;
    for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource) {
        if (to.resource ? strcmp(s->resource, to.resource) == 0 : s->available) {
            c2s_send(s, stanza);
            here = 1;
        }
    }
    /* A session on another node of this domain (node.h). */
    if (!here && to.resource && node_route(srv, bare, to.resource, stanza)) {
        free(bare);
        jid_clear(&to);
        return;
    }
    free(bare);
    jid_clear(&to);
    xml_free(stanza);
}

void router_bounce(server *srv, const xml_node *stanza, const char *etype, const char *condition,
                   const char *text)
{
    xml_node *err = stanza_error(stanza, etype, condition, text);
    if (err)
        router_deliver(srv, err);
}

static void to_server(server *srv, c2s *origin, xml_node *stanza)
{
    if (strcmp(stanza->name, "iq") == 0) {
        iq_to_server(srv, origin, stanza);
        return;
    }
    if (strcmp(stanza->name, "message") == 0 && !str_eq(xml_get_attr(stanza, "type"), "headline"))
        router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
    xml_free(stanza);
}

void router_route(server *srv, c2s *origin, xml_node *stanza)
{
    if (strcmp(stanza->name, "presence") == 0) {
        presence_from_client(srv, origin, stanza);
        return;
    }
    const char *to_attr = xml_get_attr(stanza, "to");
    if (!to_attr) {
        /* RFC 6120 10.3: no 'to' means the sender's own account. */
        if (strcmp(stanza->name, "iq") == 0)
            iq_to_account(srv, origin, stanza, origin->user);
        else
            message_to_local(srv, stanza, origin->user, NULL);
        return;
    }
    jid to;
    if (jid_parse(to_attr, &to) < 0) {
        router_bounce(srv, stanza, "modify", "jid-malformed", "the 'to' address is not a valid JID");
        xml_free(stanza);
        return;
    }
    char *normalized = jid_full(&to);
    xml_set_attr(stanza, "to", normalized);
    free(normalized);

    service *svc = service_of(srv, to.domain);
    if (svc) {
        svc->deliver(srv, svc->ud, stanza);
    } else if (!router_is_local_domain(srv, to.domain)) {
        if (strcmp(stanza->name, "message") == 0)
            message_to_remote(srv, stanza);
        else
            s2s_send(srv, stanza);
    } else if (!to.local) {
        to_server(srv, origin, stanza);
    } else {
        char *bare = jid_bare(&to);
        if (strcmp(stanza->name, "message") == 0) {
            message_to_local(srv, stanza, bare, to.resource);
        } else if (!to.resource) {
            iq_to_account(srv, origin, stanza, bare);
        } else {
            c2s *target = router_session(srv, bare, to.resource);
            const char *type = xml_get_attr(stanza, "type");
            if (target && c2s_is_live(target)) {
                c2s_send(target, stanza);
            } else if (node_route(srv, bare, to.resource, stanza)) {
                stanza = NULL; /* on another node */
            } else if (str_eq(type, "get") || str_eq(type, "set")) { /* RFC 6120 10.5.3.1 */
                router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
            }
            xml_free(stanza);
        }
        free(bare);
    }
    jid_clear(&to);
}

/* A stanza from a service or the server to the server's own domain: only answers to the
 * server's own requests are expected. */
static void send_to_server(server *srv, xml_node *stanza)
{
    const char *type = xml_get_attr(stanza, "type");
    if (strcmp(stanza->name, "iq") == 0 && (str_eq(type, "result") || str_eq(type, "error"))) {
        iq_out_answer(srv, stanza);
    } else if (strcmp(stanza->name, "iq") == 0) {
        router_bounce(srv, stanza, "cancel", "service-unavailable",
                      "the server answers no requests from services");
    }
    xml_free(stanza);
}

static void send_to_account(server *srv, xml_node *stanza, const jid *to)
{
    char *bare = jid_bare(to);
    const char *type = xml_get_attr(stanza, "type");
    if (strcmp(stanza->name, "message") == 0) {
        message_deliver(srv, stanza, bare, to->resource);
    } else if (to->resource) {
        c2s *target = router_session(srv, bare, to->resource);
        if (target && c2s_is_live(target))
            c2s_send(target, stanza);
        else if (node_route(srv, bare, to->resource, stanza))
            stanza = NULL; /* a service's answer for a session on another node */
        else if (strcmp(stanza->name, "iq") == 0 && (str_eq(type, "get") || str_eq(type, "set")))
            router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
        xml_free(stanza);
    } else if (strcmp(stanza->name, "presence") == 0) {
        /* Directed presence to a bare JID reaches every available resource. */
        for (c2s *s = router_sessions(srv, bare); s; s = s->next_resource)
            if (s->available && c2s_is_live(s))
                c2s_send(s, stanza);
        xml_free(stanza);
    } else {
        if (str_eq(type, "get") || str_eq(type, "set"))
            router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
        xml_free(stanza);
    }
    free(bare);
}

/* Is stanza from this node itself (domain/node_name), as its requests to other nodes are? */
static int from_this_node(server *srv, const xml_node *stanza)
{
    const char *from = xml_get_attr(stanza, "from");
    size_t n = strlen(srv->cfg.domain);
    return srv->cfg.node_name && from && strncmp(from, srv->cfg.domain, n) == 0 &&
           from[n] == '/' && strcmp(from + n + 1, srv->cfg.node_name) == 0;
}

void router_send(server *srv, xml_node *stanza)
{
    jid to;
    const char *to_attr = xml_get_attr(stanza, "to");
    if (!to_attr || jid_parse(to_attr, &to) < 0) {
        log_warn("a service sent a %s without a valid 'to': dropped", stanza->name);
        xml_free(stanza);
        return;
    }
    service *svc = service_of(srv, to.domain);
    if (svc) {
        svc->deliver(srv, svc->ud, stanza);
    } else if (!router_is_local_domain(srv, to.domain)) {
        s2s_send(srv, stanza);
    } else if (!to.local && to.resource && from_this_node(srv, stanza) &&
               strcmp(to.resource, srv->cfg.node_name) != 0 && node_known(srv, to.resource)) {
        s2s_node_send(srv, to.resource, stanza); /* domain/node: to another node itself */
    } else if (!to.local) {
        send_to_server(srv, stanza);
    } else {
        send_to_account(srv, stanza, &to);
    }
    jid_clear(&to);
}

/* ---- stanzas from other domains ---- */

/* An IQ from another domain to this server: ping is answered, answers go to the
 * requests they belong to, anything else is not offered to other servers. */
static void remote_to_server(server *srv, xml_node *stanza)
{
    const char *type = xml_get_attr(stanza, "type");
    if (strcmp(stanza->name, "iq") != 0) {
        if (strcmp(stanza->name, "message") == 0 && !str_eq(type, "headline"))
            router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
    } else if (str_eq(type, "result") || str_eq(type, "error")) {
        iq_out_answer(srv, stanza);
    } else if (str_eq(type, "get") && xml_child(stanza, XMLNS_PING, "ping")) {
        xml_node *r = stanza_iq_result(stanza);
        router_deliver(srv, r);
    } else {
        router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
    }
    xml_free(stanza);
}

/* An IQ from another domain to a local account. */
static void remote_iq_to_account(server *srv, xml_node *stanza, const jid *to)
{
    const char *type = xml_get_attr(stanza, "type");
    int request = str_eq(type, "get") || str_eq(type, "set");
    if (to->resource) {
        char *bare = jid_bare(to);
        c2s *target = router_session(srv, bare, to->resource);
        if (target && c2s_is_live(target)) {
            c2s_send(target, stanza);
        } else if (node_route(srv, bare, to->resource, stanza)) {
            stanza = NULL;
        } else if (request) {
            router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
        }
        free(bare);
    } else if (request) {
        /* The account's own IQs (roster, archive) are its owner's business only. */
        router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
    }
    xml_free(stanza);
}

void router_from_remote(server *srv, xml_node *stanza)
{
    jid to;
    const char *to_attr = xml_get_attr(stanza, "to");
    if (!to_attr || jid_parse(to_attr, &to) < 0) {
        xml_free(stanza);
        return;
    }
    service *svc = service_of(srv, to.domain);
    if (svc) {
        svc->deliver(srv, svc->ud, stanza);
    } else if (!to.local) {
        remote_to_server(srv, stanza);
    } else if (strcmp(stanza->name, "presence") == 0) {
        presence_from_remote(srv, stanza);
    } else if (strcmp(stanza->name, "message") == 0) {
        /* Recorded, judged and delivered like a message between local users. */
        char *bare = jid_bare(&to);
        message_to_local(srv, stanza, bare, to.resource);
        free(bare);
    } else {
        remote_iq_to_account(srv, stanza, &to);
    }
    jid_clear(&to);
}
