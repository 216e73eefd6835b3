/* compliance_internal.h - what compliance.c shares with verdict.c and nobody else: a
 * message held for the archive, and the batch that compliance_flush commits. */
#ifndef PARLEY_COMPLIANCE_INTERNAL_H
#define PARLEY_COMPLIANCE_INTERNAL_H

#include "clog.h"
#include "compliance.h"

/* One held message: its record (if it needs one) and what to do with it afterwards. */
typedef struct compliance_item {
    xml_node *stanza;
    int has_record;
    clog_record rec;
    compliance_release_fn release;
    compliance_done_fn done; /* a caller's record without a stanza (compliance_record) */
    void *ud;
    void (*free_ud)(void *ud);
} compliance_item;

/* Append it to the batch the next compliance_flush commits; the batch takes over the
 * stanza, the record and ud (it is copied, so it may live on the caller's stack). */
void compliance_enqueue(server *srv, const compliance_item *it);

#endif
