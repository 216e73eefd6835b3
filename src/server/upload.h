/* upload.h - managed file transfer (XEP-0363 HTTP File Upload) in parleyd: the
 * upload.DOMAIN service that grants slots under policy (upload.c), the HTTPS side that
 * takes and serves the bytes (upload_http.c), and what happens to a file between the
 * two: records, the compliance server's verdict, notices to the sender, expiry
 * (upload_flow.c). docs/file-transfer.md describes it for users and operators. */
#ifndef PARLEY_UPLOAD_H
#define PARLEY_UPLOAD_H

#include "compliance.h"
#include "server.h"
#include "store_files.h"

#include <stdint.h>

#define UPLOAD_NS "urn:xmpp:http:upload:0"
#define UPLOAD_SLOT_SECONDS 300 /* a granted slot must be used within this */

/* Refused downloads are recorded (who tried to fetch what), but anyone can make them:
 * at most UPLOAD_REFUSED_PER_MINUTE records per client address per minute, and
 * UPLOAD_REFUSED_ALL_PER_MINUTE from all addresses together (many addresses are cheap),
 * the rest only logged; the last UPLOAD_REFUSED_TRACKED addresses are tracked. */
#define UPLOAD_REFUSED_PER_MINUTE 10
#define UPLOAD_REFUSED_ALL_PER_MINUTE 120
#define UPLOAD_REFUSED_TRACKED 64

typedef struct refused_tally {
    char addr[64];     /* client address without the port */
    int64_t window_ms; /* start of its minute (monotonic) */
    int n;             /* records in that minute */
} refused_tally;

typedef struct upload {
    unsigned char key[FILES_KEY_LEN]; /* capability HMAC key: never logged */
    void *magic;                      /* libmagic handle (magic_t) */
    int64_t next_sweep_ms;            /* expiry sweep */
    struct dict *uploading;           /* slot ids with a PUT in progress */
    refused_tally refused[UPLOAD_REFUSED_TRACKED];
    refused_tally refused_all; /* every address together (addr unused) */
} upload;

/* Start the service if https_port is set: storage directory, key, libmagic, the
 * upload.DOMAIN service. 0, or -1 after logging why (parleyd then refuses to start). */
int upload_open(server *srv);
void upload_close(server *srv);
/* Timer: expire unused slots and files past upload_expire_after. */
void upload_housekeeping(server *srv);

/* The capability of a file for purpose "put" or "get": hex HMAC-SHA256 over purpose and
 * id under the server's key (64 hex characters + NUL). */
void upload_capability(const server *srv, const char *purpose, const char *id, char out[65]);

/* ---- upload_flow.c ---- */

/* Queue the compliance record of a file event: type "slot", "upload", "verdict",
 * "download", outcome and verdict as in docs/file-transfer.md (verdict NULL: none
 * applies), reason and peer (the HTTP client, may be NULL). done as for
 * compliance_record. */
void upload_record(server *srv, const file_meta *m, const char *type, const char *outcome,
                   const char *verdict, const char *reason, const char *peer,
                   compliance_done_fn done, void *ud);
/* A notice to the file's sender from upload.DOMAIN (why a file was blocked or lost). */
void upload_notify(server *srv, const file_meta *m, const char *text);
/* Ask the compliance server about a file (stage "request" or "upload"). fn(srv, ud,
 * allow, verdict, reason) is called once: verdict is "allow", "block",
 * "allow-unchecked" or "block-unchecked". Called at once with "allow" when no
 * compliance server is configured. */
typedef void (*upload_verdict_fn)(server *srv, void *ud, int allow, const char *verdict,
                                  const char *reason);
void upload_ask_verdict(server *srv, const file_meta *m, const char *stage,
                        upload_verdict_fn fn, void *ud);
/* A completed upload (state QUARANTINED, metadata stored) is judged by the compliance
 * server: allowed files become available, blocked ones are deleted and the sender
 * told why. Without a compliance server the file is available at once. */
void upload_judge(server *srv, const char *id);

#endif
