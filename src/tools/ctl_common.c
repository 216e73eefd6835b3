/* ctl_common.c - what every parleyctl command shares: error reporting with the exit
 * codes of ctl.h, loading the configuration, and recording admin actions in the
 * compliance archive's audit chain. */
#include "ctl.h"
#include "common/jid.h"
#include "common/tls.h"
#include "common/util.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *progname = "parleyctl";

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see '%s help')\n", progname);
    va_end(ap);
    return EXIT_USAGE;
}

int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_RUNTIME;
}

/* The OpenSSL error queue as one line (drained). */
const char *ssl_error(void)
{
    static char buf[256];
    tls_last_error(buf, sizeof buf);
    return buf[0] ? buf : "unknown OpenSSL error";
}

int load_config(const char *path, config *cfg)
{
    char err[1024];
    config_init(cfg);
    if (config_load(cfg, path, err, sizeof err) < 0) {
        config_free(cfg);
        return fail("%s", err), -1;
    }
    return 0;
}


/* The private key that signs checkpoints (key_file), or NULL when this user cannot read
 * it: the audit events are still chained, and parleyd's next checkpoint pins them. */
EVP_PKEY *load_signing_key(const config *cfg)
{
    FILE *f = fopen(cfg->key_file, "r");
    if (!f)
        return NULL;
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    ERR_clear_error();
    return key;
}

/* Open the archive for an account change. Returns 0 (al->log NULL when compliance is
 * off) or -1 after reporting: a change that cannot be audited is not made. */
int admin_log_open(const config *cfg, admin_log *al)
{
    memset(al, 0, sizeof *al);
    if (!cfg->compliance)
        return 0;
    char err[512];
    al->key = load_signing_key(cfg);
    al->log = clog_open(cfg->compliance_store, al->key, cfg->compliance_checkpoint_every, 0, err,
                        sizeof err);
    if (!al->log) {
        EVP_PKEY_free(al->key);
        al->key = NULL;
        fail("%s (the change would not be audited, so it was not made)", err);
        return -1;
    }
    return 0;
}

/* Record an admin action; -1 after reporting. */
int admin_log_write(admin_log *al, const char *event, const char *target,
                           const char *detail)
{
    if (!al->log)
        return 0;
    char actor_detail[256];
    snprintf(actor_detail, sizeof actor_detail, "uid=%u%s%s", (unsigned)getuid(),
             detail ? " " : "", detail ? detail : "");
    clog_audit a = {0};
    a.ts_us = time_now_us();
    a.actor = "admin";
    a.event = (char *)event;
    a.target = (char *)target;
    a.detail = actor_detail;
    if (clog_append(al->log, NULL, 0, &a, 1) < 0) {
        fail("%s %s was done but could not be recorded in the compliance archive: %s", event,
             target ? target : "", clog_last_error(al->log));
        return -1;
    }
    return 0;
}

void admin_log_close(admin_log *al)
{
    clog_close(al->log);
    EVP_PKEY_free(al->key);
    memset(al, 0, sizeof *al);
}

/* The account's normalised bare JID if it is a user of cfg's domain, else NULL. */
char *account_jid(const config *cfg, const char *arg)
{
    jid j;
    if (jid_parse(arg, &j) < 0) {
        fail("'%s' is not a valid JID", arg);
        return NULL;
    }
    char *out = NULL;
    if (!j.local || j.resource)
        fail("'%s': an account is a bare JID, user@%s", arg, cfg->domain);
    else if (strcmp(j.domain, cfg->domain) != 0)
        fail("'%s' is not in this server's domain %s", arg, cfg->domain);
    else
        out = jid_bare(&j);
    jid_clear(&j);
    return out;
}
