/* verdict.h - answering one verdict request: parse the check, ask the journal whether the
 * disclaimer is due, evaluate the rules, journal the outcome, build the reply IQ. A
 * malformed check gets an error reply (parleyd then applies its failure setting). */
#ifndef PC_VERDICT_H
#define PC_VERDICT_H

#include "../common/xml.h"
#include "journal.h"
#include "rules.h"

#include <stdint.h>

typedef struct verdict_ctx {
    const rules *rules;
    journal *journal;
    const char *self; /* our component domain: the 'from' of every reply */
} verdict_ctx;

/* The reply to iq (an <iq type='set'/> carrying <check/>): a result with the verdict, or
 * an error. now_us decides the disclaimer's day. The caller owns the reply. */
xml_node *verdict_answer(const verdict_ctx *vc, const xml_node *iq, int64_t now_us);

/* An empty <iq type='result'/> answering iq, from self. */
xml_node *iq_result_new(const xml_node *iq, const char *self);
/* An <iq type='error'/> answering iq: type ("modify", "cancel", "wait"), a defined
 * condition of RFC 6120 8.3.3 and an optional text. */
xml_node *iq_error_new(const xml_node *iq, const char *self, const char *type,
                       const char *condition, const char *text);

#endif
