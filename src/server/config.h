/* config.h - parleyd.conf: "key = value" lines, '#' comments, documented in
 * docs/configuration.md. Unknown keys and bad values are errors that name the line. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stddef.h>

enum { COMPLIANCE_STRICT = 0, COMPLIANCE_SPOOL = 1 };
enum { COMPLIANCE_FAIL_BLOCK = 0, COMPLIANCE_FAIL_ALLOW = 1 };

typedef struct config_component config_component;

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
    char *compliance_store;    /* "sqlite:PATH" or "postgresql://..."; default
                                * sqlite:<data_dir>/compliance.db */
    int compliance_checkpoint_every; /* records between signed checkpoints; default 1000 */
    int compliance_mode;       /* COMPLIANCE_STRICT (default) or COMPLIANCE_SPOOL */
    char *compliance_spool;    /* spool file; default <data_dir>/compliance.spool */
    int compliance_retention_days; /* minimum age a purge may remove; 0 = forever (default) */
    char *compliance_server;   /* the component that judges messages (a domain); NULL: none */
    int compliance_server_timeout; /* milliseconds to wait for a verdict; default 5000 */
    int compliance_server_failure; /* COMPLIANCE_FAIL_BLOCK (default) or _ALLOW */
    int component_port;        /* XEP-0114 listener; default 5347 (only if components set) */
    int component_tls;         /* direct TLS on component_port; default yes (no only on
                                * a loopback bind_address) */
    config_component *components; /* "component = NAME SECRET" lines, may repeat */
    size_t ncomponents;
    int muc;                   /* XEP-0045 service; default yes */
    char *muc_domain;          /* default conference.<domain> */
    int muc_max_rooms_per_user;    /* rooms one user may own; default 50 */
    int muc_max_occupants;     /* ceiling of any room's max users; default 1000 */
    int muc_history;           /* messages of history kept per room for joiners; default 50 */
    int muc_room_rate;         /* messages per second one room accepts; default 200 */
    int muc_user_rate;         /* messages per second one user may send to rooms; default 10 */
    int archive;               /* XEP-0313 message archive; default yes */
    int archive_expires_after; /* days archived messages are kept; default 365, 0: forever */
    int sm_resume_timeout;     /* XEP-0198: seconds a lost session waits; default 300, 0: none */
    int sm_max_queue;          /* unacknowledged stanzas kept per session; default 10000 */
    int pep_max_nodes;         /* PEP nodes one account may have; default 100 */
    int pep_max_items;         /* items one PEP node may keep ("max"); default 256 */
    size_t pep_max_payload;    /* bytes of one PEP item's payload; default 128K */
    char *upload_domain;       /* XEP-0363 service; default upload.<domain> */
    char *upload_dir;          /* stored files; default <data_dir>/files */
    char *upload_url;          /* base of slot URLs; default https://<domain>:<https_port> */
    size_t upload_max_size;    /* ceiling on any file, over every policy; default 100M */
    long long upload_expire_after; /* seconds a file is kept; 0 = forever; default 30 days */
    int http_header_timeout;   /* seconds to receive a request's headers; default 10 */
    int http_idle_timeout;     /* seconds of silence in a body or between requests; default 30 */
    /* Server-to-server links (docs/federation.md). Lists are comma-separated. */
    int s2s_port;              /* s2s listener; default 5269, 0 disables federation */
    int s2s_secure;            /* peers authenticate with certificates only; default yes */
    int s2s_dialback;          /* XEP-0220 when certificates cannot be verified; default no */
    char *s2s_allow;           /* domains federated with; NULL: every domain not denied */
    char *s2s_deny;            /* domains never federated with */
    char *s2s_hosts;           /* resolver override "domain=host:port,..."; NULL: DNS */
    int s2s_max_queue;         /* stanzas queued per link while it connects; default 1000 */
    int s2s_idle_timeout;      /* seconds an unused link stays open; default 300 */
    char *node_name;           /* this node's name in a cluster; NULL: not clustered */
    char *nodes;               /* the other nodes "name=host:port,..." */
    int node_lease;            /* seconds a session directory entry lives unrenewed; 30 */
    int tls_threads;           /* TLS handshake threads; default -1 = online CPUs, 0: none */
} config;

/* A configured external component (XEP-0114). */
struct config_component {
    char *domain;
    char *secret;
};

/* Defaults for everything (domain, cert_file, key_file unset). */
void config_init(config *cfg);
/* Read a file over the defaults. Returns 0, or -1 with "FILE:LINE: reason" in err. */
int config_load(config *cfg, const char *path, char *err, size_t errlen);
void config_free(config *cfg);
/* The configured component serving domain, or NULL. */
const config_component *config_find_component(const config *cfg, const char *domain);
/* s2s_hosts / nodes lookup: the "host:port" of name in list into host (hostlen) and
 * *port. Returns 0, or -1 if name is not listed. */
int config_host_lookup(const char *list, const char *name, char *host, size_t hostlen,
                       int *port);
/* Is domain one of the comma-separated domains of list (NULL: no)? */
int config_domain_listed(const char *list, const char *domain);
/* Call fn for each "name=host:port" of list (the nodes). */
void config_each_host(const char *list,
                      void (*fn)(void *ud, const char *name, const char *host, int port),
                      void *ud);
/* Write a default configuration file for quick start (parleyctl init). Returns 0 or -1. */
int config_write_default(const char *path, const char *domain, const char *dir, int c2s_port,
                         int tls_port, int https_port, char *err, size_t errlen);

#endif
