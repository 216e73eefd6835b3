/* omemo_internal.h - the state shared by omemo.c, omemo_send.c, omemo_recv.c and
 * omemo_api.c (see omemo.h). */
#ifndef PARLEY_OMEMO_INTERNAL_H
#define PARLEY_OMEMO_INTERNAL_H

#include "../../common/dict.h"
#include "bundle.h"
#include "identity.h"
#include "message.h"
#include "omemo.h"
#include "session_store.h"
#include "x3dh.h"

#define DEVLIST_FRESH_MS 30000   /* a fetched device list is used this long without asking */
#define OM_IQ_TIMEOUT_MS 15000
#define OM_MAINTAIN_EVERY_MS (3600 * 1000)

/* What we know of an account's device list in this session. */
typedef struct om_devlist {
    om_device_entry d[OM_MAX_DEVICES];
    size_t n;
    int64_t fetched_ms;  /* 0: never */
    int ok;              /* the last fetch (or notification) gave a list (maybe empty) */
    int fetching;        /* a fetch is in flight */
    char error[160];     /* why the last fetch failed ("" if it did not) */
    int unknown;         /* the last fetch got no usable answer (no answer at all, or a
                          * malformed list): its devices are unknown, not absent */
} om_devlist;

typedef struct om_out om_out;

typedef struct om_failure {
    int64_t at_ms;
    char why[160];
} om_failure;

#define BUNDLE_RETRY_MS 60000

struct omemo_ctx {
    om_store *st;
    int persistent;      /* the store is a file */
    om_own own;
    int have_own;        /* identity loaded or made */
    int published;       /* our device and bundle are on PEP this session */
    int ready;           /* the sign-in publication step is over (published or not) */
    int withdrawn;       /* the policy forbids encryption: our device is not listed */
    dict *lists;         /* bare JID -> om_devlist */
    dict *bundles;       /* "jid/id" -> om_bundle (fetched, not yet used) */
    dict *inflight;      /* "jid/id" -> (void *)1: bundle fetches in flight */
    dict *failed;        /* "jid/id" -> om_failure: bundles that could not be had */
    dict *healed;        /* "jid/id" -> (void *)1: sessions healed in this sign-in */
    int pumping;
    om_out *queue, *queue_tail;
    int64_t next_maintain_ms;
    char label[OM_MAX_LABEL + 1];
};

/* ---- omemo.c */
int omemo_active(const parley *p);              /* policy allows e2e and a store exists */
om_devlist *omemo_list(omemo_ctx *c, const char *bare);
/* Apply a fetched or notified device list for bare (stored as each device's "active"). */
void omemo_list_update(parley *p, const char *bare, const om_device_entry *d, size_t n);
/* Publish our bundle again (after a pre-key was used, or a rotation). */
void omemo_publish_bundle(parley *p);
/* Track an IQ with a callback that also runs on time-out and disconnect. */
void omemo_send_iq(parley *p, xml_node *iq, parley_iq_fn cb, void *ud);
void omemo_notice(parley *p, const char *jid, unsigned long device, int key_changed,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The queue can move on (own publication finished, a list arrived...). */
void omemo_pump(parley *p);

/* ---- omemo_send.c */
void omemo_queue_fail_all(parley *p, parley_error err, const char *why);
/* The connection was lost: keep the queue for the next session (fetches start over),
 * refusing the messages that waited too long. */
void omemo_queue_hold(parley *p, parley_error err);
void omemo_queue_free(omemo_ctx *c);
/* Send an empty message (no payload) to one device of bare, addressed to `to` (the full
 * JID it wrote from, so other resources of the account are not bothered): confirms a
 * session / keeps it fresh. */
void omemo_send_empty(parley *p, const char *bare, uint32_t device, const char *to);
/* XEP-0384 session healing: a message from a device we have no session with gets an
 * empty message with a fresh key exchange (its bundle fetched first), once per device
 * and sign-in. */
void omemo_heal(parley *p, const char *bare, uint32_t device, const char *to);

#endif
