/* lg_scram.h - the load generator's SCRAM client (RFC 5802 / RFC 7677) with a cache of
 * derived keys.
 *
 * A real client may cache ClientKey and ServerKey per (salt, iteration count) instead of
 * the password (RFC 5802 5.1). The load generator does, so that a login storm measures
 * the server and not 4096 PBKDF2 iterations per login on the generator's side. The cache
 * is in memory and, with lg_scram_cache_open(), in a file that several loadgen processes
 * (and later runs against the same accounts) share: one line per derivation.
 *
 * Bench-only code: the password must be ASCII (no SASLprep), the user name must need no
 * '=' escaping rules beyond those applied here. */
#ifndef PARLEY_LG_SCRAM_H
#define PARLEY_LG_SCRAM_H

#include <stddef.h>

typedef struct lg_scram lg_scram;

/* Load FILE (if it exists) and append new derivations to it. Returns 0 or -1. */
int lg_scram_cache_open(const char *file);
/* Derivations computed (cache misses) and reused (hits) so far. */
void lg_scram_cache_stats(unsigned long *misses, unsigned long *hits);

/* sha256: 1 for SCRAM-SHA-256, 0 for SCRAM-SHA-1. cb_type/cb_data: channel binding for
 * -PLUS (cb_type NULL: "n,," header). */
lg_scram *lg_scram_new(int sha256, const char *user, const char *password, const char *cb_type,
                       const unsigned char *cb_data, size_t cb_len);
void lg_scram_free(lg_scram *c);
/* client-first-message (malloc'd). */
char *lg_scram_first(lg_scram *c);
/* client-final-message for a server-first-message (malloc'd), or NULL if it is invalid. */
char *lg_scram_final(lg_scram *c, const char *server_first, size_t len);
/* 0 if the server-final-message carries the expected signature. */
int lg_scram_verify(lg_scram *c, const char *server_final, size_t len);

#endif
