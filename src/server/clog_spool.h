/* clog_spool.h - spool mode of the compliance archive (compliance_mode = spool): when the
 * store cannot be written, a batch of records and audit events goes to a local spool file
 * instead (fsync'd before the caller releases the messages), and later batches replay the
 * spool into the store, in order and exactly once, before anything new goes in.
 *
 * Exactly once: each batch carries a number, and the store keeps, in the same
 * transaction as the batch's records, a replay marker (clog_append_marked) saying the
 * highest number of this spool it holds. A batch whose number the marker already covers
 * went in before (parleyd died between the store's commit and truncating the spool, or a
 * commit's answer was lost) and is skipped. The spool's id changes whenever it is emptied,
 * so numbers never repeat under one id.
 *
 * Records keep the ts_us they were given; seq and hashes are assigned when they enter the
 * store. File format (docs/compliance.md): a header, then entries, each length-prefixed
 * and followed by its SHA-256; a torn last entry (a crash while writing it, so its
 * messages were never released) is cut off with a log line when the spool is opened.
 * Damage anywhere else is an error: the spool is kept as it is for inspection. */
#ifndef PARLEY_CLOG_SPOOL_H
#define PARLEY_CLOG_SPOOL_H

#include "clog.h"

#include <stddef.h>

typedef struct clog_spool clog_spool;

/* Open the spool at path (created 0600, missing directories 0700) and check it; it is
 * locked against a second process. NULL with the reason in err. */
clog_spool *clog_spool_open(const char *path, char *err, size_t errlen);
void clog_spool_close(clog_spool *sp);

/* Entries in the file that are not known to be in the store (0 for sp NULL). */
size_t clog_spool_pending(const clog_spool *sp);
const char *clog_spool_error(const clog_spool *sp);

/* Spool mode's write path: replay the spool if it holds anything (while the store keeps
 * failing, after a pause that grows from 1 to 10 seconds), then append the batch to the
 * store, or to the spool if
 * the store cannot take it (or the spool is not empty yet, which keeps the order). 0: the
 * batch is durable in one of them, the messages may go; -1: in neither (the store's
 * reason in clog_last_error(log), the spool's logged and in clog_spool_error). An empty
 * batch only replays. Sets seq and hashes of records that went to the store directly. */
int clog_spool_commit(clog_spool *sp, clog *log, clog_record *recs, size_t nrecs,
                      clog_audit *evs, size_t nevs);

/* Replay every entry into the store now and empty the spool. 0: empty afterwards;
 * -1: the store or the file failed (what is in the store stays, the rest stays spooled). */
int clog_spool_replay(clog_spool *sp, clog *log);

/* Append a batch as one entry and fsync it; the building block of clog_spool_commit,
 * exposed for the tests. 0 or -1 (clog_spool_error). */
int clog_spool_write(clog_spool *sp, const clog_record *recs, size_t nrecs,
                     const clog_audit *evs, size_t nevs);

#endif
