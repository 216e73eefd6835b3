/* upload_http.h - what the HTTPS requests of XEP-0363 mean: PUT into a granted slot, GET
 * and HEAD of an uploaded file by its capability URL (single ranges), and the records
 * they leave. Called by http.c for each request. */
#ifndef PARLEY_UPLOAD_HTTP_H
#define PARLEY_UPLOAD_HTTP_H

#include "http.h"

/* Headers complete. Returns 0 to read the body (a PUT that was accepted), or -1 when a
 * response has been queued (or the request is held) and no body is expected. */
int upload_http_begin(http_conn *h, const http_request *req);
/* Body bytes of an accepted PUT. 0, or -1 after http_refuse. */
int upload_http_body(http_conn *h, const char *data, size_t len);
/* The whole request has arrived. */
void upload_http_complete(http_conn *h);
/* The request ends (answered, refused, or the connection closed): free its state,
 * removing any temporary file. */
void upload_http_end(http_conn *h);

#endif
