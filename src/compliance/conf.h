/* conf.h - parley-compliance.conf: connection settings ("key = value") and the rule lines
 * of rules.h, in one file documented in docs/parley-compliance.md. Every mistake is an
 * error naming the file and line. */
#ifndef PC_CONF_H
#define PC_CONF_H

#include "rules.h"

#include <stddef.h>

/* Secrets shorter than this are refused (parleyd refuses them too). */
#define PC_MIN_SECRET 16

typedef struct pc_config {
    char *path;            /* the file, absolute */
    char *server_host;     /* parleyd's component listener; default 127.0.0.1 */
    int server_port;       /* default 5347 */
    int tls;               /* direct TLS; default yes ('no' only to a loopback host) */
    char *ca_file;         /* verifies parleyd's certificate; NULL: the system store */
    char *server_name;     /* the name parleyd's certificate must carry; default server_host */
    char *component;       /* our domain, as in parleyd's 'component' line (required) */
    char *secret;          /* from 'secret' or 'secret_file' (required); wiped on free */
    char *journal;         /* SQLite file; default parley-compliance.db next to the config */
    char *log_file;        /* NULL: stderr */
    int log_level;         /* log_level of log.h; default info */
    size_t max_stanza_size; /* largest stanza accepted from parleyd; default 1M */
    int reconnect_max;     /* seconds, the longest wait between connection attempts; 30 */
    rules *rules;
} pc_config;

/* Read path into cfg (overwritten). Returns 0, or -1 with "FILE:LINE: reason" (or
 * "FILE: reason") in err; cfg is then empty and needs no pc_config_free. */
int pc_config_load(pc_config *cfg, const char *path, char *err, size_t errlen);
void pc_config_free(pc_config *cfg);

#endif
