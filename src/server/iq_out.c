/* iq_out.c - the server's outstanding IQ requests (see iq_out.h): a table keyed by id,
 * answered by iq_out_answer or expired by the housekeeping tick. */
#include "iq_out.h"
#include "../common/dict.h"
#include "../common/log.h"
#include "../common/util.h"
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending {
    char *to;            /* the addressee: only it may answer */
    int64_t deadline_ms; /* monotonic */
    iq_reply_fn fn;
    void *ud;
} pending;

struct iq_out {
    dict *by_id;
    uint64_t next_id;
};

static struct iq_out *table(server *srv)
{
    if (!srv->iq_out) {
        srv->iq_out = xcalloc(1, sizeof *srv->iq_out);
        srv->iq_out->by_id = dict_new();
    }
    return srv->iq_out;
}

static void free_pending(pending *p)
{
    free(p->to);
    free(p);
}

void iq_out_send(server *srv, xml_node *iq, int timeout_ms, iq_reply_fn fn, void *ud)
{
    struct iq_out *t = table(srv);
    /* A counter with a random prefix would add nothing: only the addressee may answer,
     * and the id only has to be unique among our own requests. */
    char id[32];
    snprintf(id, sizeof id, "srv-%llu", (unsigned long long)++t->next_id);
    xml_set_attr(iq, "id", id);
    if (!xml_get_attr(iq, "from"))
        xml_set_attr(iq, "from", srv->cfg.domain);
    pending *p = xcalloc(1, sizeof *p);
    p->to = xstrdup(xml_get_attr(iq, "to") ? xml_get_attr(iq, "to") : srv->cfg.domain);
    p->deadline_ms = time_mono_ms() + timeout_ms;
    p->fn = fn;
    p->ud = ud;
    dict_set(t->by_id, id, p);
    router_send(srv, iq);
}

int iq_out_answer(server *srv, const xml_node *reply)
{
    const char *id = xml_get_attr(reply, "id");
    const char *from = xml_get_attr(reply, "from");
    if (!srv->iq_out || !id || !from)
        return 0;
    pending *p = dict_get(srv->iq_out->by_id, id);
    if (!p)
        return 0;
    if (strcmp(p->to, from) != 0) {
        log_warn("an answer to IQ %s came from %s, not from %s: ignored", id, from, p->to);
        return 0;
    }
    dict_del(srv->iq_out->by_id, id);
    p->fn(srv, p->ud, reply);
    free_pending(p);
    return 1;
}

typedef struct expiry {
    int64_t now;
    const char *to;     /* non-NULL: every request to this address, whatever its deadline */
    char **ids;         /* expired ids, collected first: fn may send new requests */
    size_t n, cap;
} expiry;

static int collect(void *ud, const char *id, void *value)
{
    expiry *e = ud;
    pending *p = value;
    if (e->to ? strcmp(p->to, e->to) == 0 : p->deadline_ms <= e->now) {
        if (e->n == e->cap) {
            e->cap = e->cap ? 2 * e->cap : 16;
            e->ids = xrealloc(e->ids, e->cap * sizeof *e->ids);
        }
        e->ids[e->n++] = xstrdup(id);
    }
    return 0;
}

static void expire(server *srv, int64_t now, const char *to)
{
    if (!srv->iq_out || dict_size(srv->iq_out->by_id) == 0)
        return;
    expiry e = {now, to, NULL, 0, 0};
    dict_each(srv->iq_out->by_id, collect, &e);
    for (size_t i = 0; i < e.n; i++) {
        pending *p = dict_del(srv->iq_out->by_id, e.ids[i]);
        if (p) {
            if (to)
                log_info("IQ %s to %s: the addressee went away", e.ids[i], p->to);
            else
                log_warn("IQ %s to %s: no answer in time", e.ids[i], p->to);
            p->fn(srv, p->ud, NULL);
            free_pending(p);
        }
        free(e.ids[i]);
    }
    free(e.ids);
}

void iq_out_expire(server *srv)
{
    expire(srv, time_mono_ms(), NULL);
}

void iq_out_fail_to(server *srv, const char *to)
{
    expire(srv, 0, to);
}

void iq_out_free(server *srv)
{
    if (!srv->iq_out)
        return;
    expire(srv, INT64_MAX, NULL);
    dict_free(srv->iq_out->by_id, NULL);
    free(srv->iq_out);
    srv->iq_out = NULL;
}
