/* scram_internal.h - hooks into scram.c for the unit tests only.
 *
 * The RFC 5802 / RFC 7677 test vectors fix both nonces and the salt; production code
 * never does, so these are kept out of scram.h. Nothing outside tests/ includes this. */
#ifndef PARLEY_SCRAM_INTERNAL_H
#define PARLEY_SCRAM_INTERNAL_H

#include "scram.h"

/* Use nonce (printable ASCII except ',', at most 64 characters) instead of a random one.
 * Must be called before scram_server_first / scram_client_first. Returns 0 or -1. */
int scram_server_set_nonce_for_test(scram_server *s, const char *nonce);
int scram_client_set_nonce_for_test(scram_client *c, const char *nonce);

/* Derive credentials from a password with a given salt (scram_make_cred uses a random
 * one). No minimum iteration count is enforced here. Returns 0 or -1. */
int scram_derive_cred(scram_hash hash, const char *password, const unsigned char *salt,
                      size_t salt_len, unsigned iterations, scram_cred *out);

#endif
