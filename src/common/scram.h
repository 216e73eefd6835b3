/* scram.h - SASL SCRAM (RFC 5802, RFC 7677) with SHA-1 and SHA-256, both sides.
 *
 * The server stores only salted credentials (salt, iteration count, StoredKey,
 * ServerKey): never a password, nothing reversible. Client and server state machines
 * here are shared by parleyd, libparley and the load generator. Channel binding
 * (-PLUS) takes the binding type and data from tls.h's tls_channel_binding(). */
#ifndef PARLEY_SCRAM_H
#define PARLEY_SCRAM_H

#include <stddef.h>

typedef enum { SCRAM_SHA1 = 0, SCRAM_SHA256 = 1 } scram_hash;

#define SCRAM_MAX_KEY 32
#define SCRAM_SALT_LEN 16
#define SCRAM_MIN_ITERATIONS 4096

typedef struct scram_cred {
    scram_hash hash;
    unsigned char salt[SCRAM_SALT_LEN];
    size_t salt_len;
    unsigned iterations;
    unsigned char stored_key[SCRAM_MAX_KEY];
    unsigned char server_key[SCRAM_MAX_KEY];
    size_t key_len; /* 20 for SHA-1, 32 for SHA-256 */
} scram_cred;

typedef enum {
    SCRAM_OK = 0,
    SCRAM_CONTINUE,      /* client: more steps follow */
    SCRAM_ERR_MALFORMED, /* a message that does not parse -> malformed-request */
    SCRAM_ERR_AUTH,      /* wrong password / unknown user -> not-authorized */
    SCRAM_ERR_BINDING,   /* channel binding mismatch or not supported */
    SCRAM_ERR_AUTHZID,   /* authorization identity not permitted -> invalid-authzid */
    SCRAM_ERR_INTERNAL,
} scram_status;

/* Mechanism name of hash with or without -PLUS: "SCRAM-SHA-256-PLUS". */
const char *scram_mech_name(scram_hash hash, int plus);
/* Parse a mechanism name; returns 0 and sets *hash, *plus, or -1 if not SCRAM. */
int scram_mech_parse(const char *name, scram_hash *hash, int *plus);

/* SASLprep (RFC 4013) a password; freshly allocated, or NULL if it is not allowed. */
char *scram_saslprep(const char *password);

/* Derive stored credentials from a password with a fresh random salt. Returns 0 or -1. */
int scram_make_cred(scram_hash hash, const char *password, unsigned iterations, scram_cred *out);
/* Check a plaintext password (SASL PLAIN) against stored credentials in constant time.
 * Returns 1 if it matches, 0 otherwise. */
int scram_check_password(const scram_cred *cred, const char *password);

/* ---- server side ---- */
typedef struct scram_server scram_server;

/* Looks up the credentials of username (already SASLprep'd/normalised by the caller's
 * policy). Returns 0 and fills *out if known, -1 if not. */
typedef int (*scram_lookup_fn)(void *ud, const char *username, scram_hash hash, scram_cred *out);

/* cb_type/cb_data: the channel binding this connection offers ("tls-exporter" ...), or
 * NULL when none is available. plus: the client chose a -PLUS mechanism. */
scram_server *scram_server_new(scram_hash hash, int plus, const char *cb_type,
                               const unsigned char *cb_data, size_t cb_len,
                               scram_lookup_fn lookup, void *lookup_ud);
void scram_server_free(scram_server *s);
/* client-first-message -> server-first-message (freshly allocated in *out).
 * Unknown users still get a well-formed challenge (a fake salt) so that the
 * answer does not reveal whether an account exists; they fail at the final step. */
scram_status scram_server_first(scram_server *s, const char *in, size_t inlen, char **out);
/* client-final-message -> server-final-message ("v=...") on success. */
scram_status scram_server_final(scram_server *s, const char *in, size_t inlen, char **out);
/* The authenticated username (valid after SCRAM_OK), owned by s. */
const char *scram_server_username(const scram_server *s);

/* ---- client side ---- */
typedef struct scram_client scram_client;
/* cb_type NULL: no channel binding ("n,,"); with plus=0 and cb available the client sends
 * "y,," to signal it could have bound (downgrade protection, RFC 5802 6). */
scram_client *scram_client_new(scram_hash hash, int plus, const char *cb_type,
                               const unsigned char *cb_data, size_t cb_len,
                               const char *username, const char *password);
void scram_client_free(scram_client *c);
/* client-first-message (freshly allocated). */
char *scram_client_first(scram_client *c);
/* server-first-message -> client-final-message (freshly allocated in *out). */
scram_status scram_client_final(scram_client *c, const char *in, size_t inlen, char **out);
/* server-final-message: verifies the server signature. SCRAM_OK or SCRAM_ERR_AUTH. */
scram_status scram_client_verify(scram_client *c, const char *in, size_t inlen);

#endif
