/* bundle.h - the XML of urn:xmpp:omemo:2 that lives on PEP (XEP-0163): device lists
 * (node urn:xmpp:omemo:2:devices, item "current") and bundles (node
 * urn:xmpp:omemo:2:bundles, one item per device, item id = device id), with the
 * publish-options XEP-0384 asks for (access_model open; max_items max for bundles), and
 * the IQs that fetch them. Parsing is strict and bounded: a malformed list or bundle is
 * refused whole, with a reason. */
#ifndef PARLEY_OMEMO_BUNDLE_H
#define PARLEY_OMEMO_BUNDLE_H

#include "../../common/xml.h"
#include "crypto.h"
#include "errors.h"

#include <stddef.h>
#include <stdint.h>

#define XMLNS_OMEMO "urn:xmpp:omemo:2"
#define OMEMO_NODE_DEVICES "urn:xmpp:omemo:2:devices"
#define OMEMO_NODE_BUNDLES "urn:xmpp:omemo:2:bundles"
#define XMLNS_PUBSUB "http://jabber.org/protocol/pubsub"
#define XMLNS_PUBSUB_EVENT "http://jabber.org/protocol/pubsub#event"
#define XMLNS_PUBSUB_ERRORS "http://jabber.org/protocol/pubsub#errors"

#define OM_MAX_DEVICES 64     /* per account: far above real use, bounds the work */
#define OM_MAX_PREKEYS 200    /* per bundle we accept (we publish 100) */
#define OM_MAX_LABEL 64

typedef struct om_device_entry {
    uint32_t id;
    char label[OM_MAX_LABEL + 1]; /* "" if none */
} om_device_entry;

typedef struct om_prekey_pub {
    uint32_t id;
    uint8_t pub[OM_KEY];
} om_prekey_pub;

typedef struct om_bundle {
    uint8_t ik[OM_KEY];
    uint32_t spk_id;
    uint8_t spk[OM_KEY];
    uint8_t spks[OM_SIG];
    size_t npk;
    om_prekey_pub pk[OM_MAX_PREKEYS];
} om_bundle;

/* <devices xmlns='urn:xmpp:omemo:2'><device id='..' label='..'/>...</devices> */
xml_node *om_devices_xml(const om_device_entry *d, size_t n);
/* Parse a <devices/> element: every id must be a decimal in 1..2^32-1; repeats are
 * dropped; more than OM_MAX_DEVICES is an error. */
om_err om_devices_parse(const xml_node *devices, om_device_entry *out, size_t *n, char *why,
                        size_t whylen);

xml_node *om_bundle_xml(const om_bundle *b);
/* Parse a <bundle/> element (keys of the right length, ids, at least one pre-key). The
 * signature is not checked here: om_spk_verify does that before the bundle is used. */
om_err om_bundle_parse(const xml_node *bundle, om_bundle *b, char *why, size_t whylen);

/* <iq type='set'><pubsub><publish node=..><item id=..>payload</item></publish>
 * <publish-options>...</publish-options></pubsub></iq>; takes ownership of payload. */
xml_node *om_publish_iq(const char *node, const char *item_id, xml_node *payload,
                        int max_items);
/* <iq type='set'><pubsub><retract node=.. notify='true'><item id=../></retract>... */
xml_node *om_retract_iq(const char *node, const char *item_id);
/* <iq type='get' to=..><pubsub><items node=..>[<item id=../>]</items></pubsub></iq> */
xml_node *om_items_iq(const char *to, const char *node, const char *item_id);
/* The payload element (ns XMLNS_OMEMO, name) of the first item of an items result or
 * of a pubsub#event notification, or NULL. */
const xml_node *om_item_payload(const xml_node *stanza, const char *node, const char *name);

#endif
