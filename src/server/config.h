/* config.h - parleyd.conf: "key = value" lines, '#' comments, documented in
 * docs/configuration.md. Unknown keys and bad values are errors that name the line. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stddef.h>

typedef struct config {
    char *path;          /* the file this was read from (for relative paths) */
    char *domain;        /* the XMPP domain served (required) */
    char *bind_address;  /* address to listen on; default 127.0.0.1 */
    int c2s_port;        /* STARTTLS port; default 5222, 0 disables */
    int tls_port;        /* direct TLS (XEP-0368) port; default 5223, 0 disables */
    int https_port;      /* HTTPS listener for file transfer; default 5443, 0 disables */
    char *cert_file;     /* PEM certificate chain (required) */
    char *key_file;      /* PEM private key (required) */
    char *ca_file;       /* CA of the deployment (for node links); optional */
    char *data_dir;      /* default: directory of the config file + "/data" */
    char *store;         /* "sqlite:PATH"; default sqlite:<data_dir>/parley.db */
    char *log_file;      /* default: stderr */
    int log_level;       /* log_level from log.h; default info */
    size_t max_stanza_size;    /* bytes; default 262144 */
    size_t max_output_buffer;  /* bytes queued to a peer before it is dropped; default 1 MiB */
    unsigned scram_iterations; /* for new credentials; default 4096, minimum 4096 */
    int handshake_timeout;     /* seconds from connect to authenticated; default 30 */
    int idle_timeout;          /* seconds of silence before a ping / close; default 600 */
    int max_connections;       /* default 20000 */
    int offline_max;           /* offline messages kept per user; default 1000 */
    int auth_fail_limit;       /* failed logins per account or address per window; default 5 */
    int auth_fail_window;      /* seconds; default 60 */
    int hide_version;          /* XEP-0092 answers without version/os; default 0 */
    int allow_plain;           /* offer SASL PLAIN (inside TLS only); default 1 */
    int compliance;            /* keep the compliance archive (docs/compliance.md); default 1 */
    char *compliance_store;    /* "sqlite:PATH"; default sqlite:<data_dir>/compliance.db */
    int compliance_checkpoint_every; /* records between signed checkpoints; default 1000 */
} config;

/* Defaults for everything (domain, cert_file, key_file unset). */
void config_init(config *cfg);
/* Read a file over the defaults. Returns 0, or -1 with "FILE:LINE: reason" in err. */
int config_load(config *cfg, const char *path, char *err, size_t errlen);
void config_free(config *cfg);
/* Write a default configuration file for quick start (parleyctl init). Returns 0 or -1. */
int config_write_default(const char *path, const char *domain, const char *dir, int c2s_port,
                         int tls_port, int https_port, char *err, size_t errlen);

#endif
