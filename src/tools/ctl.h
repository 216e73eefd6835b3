/* ctl.h - what parleyctl's command groups share (ctl_common.c). Each group lives in its
 * own ctl_*.c file with an entry point `int ctl_NAME(conf_path, argc, argv)` returning an
 * exit status, and a `ctl_NAME_usage(FILE *)` that prints its lines of the help text;
 * parleyctl.c dispatches to them. */
#ifndef PARLEY_CTL_H
#define PARLEY_CTL_H

#include "server/clog.h"
#include "server/config.h"

#include <openssl/evp.h>
#include <stdio.h>

/* Exit statuses. */
#define EXIT_USAGE 1
#define EXIT_RUNTIME 2
#define EXIT_TAMPERED 3 /* compliance verify: the archive does not verify */

extern const char *progname;

/* Print "parleyctl: MESSAGE" (plus a pointer to help) to stderr; return EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "parleyctl: MESSAGE" to stderr; return EXIT_RUNTIME. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The OpenSSL error queue as one line (drained; a static buffer). */
const char *ssl_error(void);

/* config_init + config_load; 0, or -1 after reporting (cfg then needs no freeing). */
int load_config(const char *path, config *cfg);
/* The private key that signs checkpoints (key_file), or NULL if unreadable. */
EVP_PKEY *load_signing_key(const config *cfg);
/* The account's normalised bare JID if it is a user of cfg's domain, else NULL after
 * reporting. */
char *account_jid(const config *cfg, const char *arg);

/* The compliance archive, opened for recording an admin action. */
typedef struct admin_log {
    clog *log;      /* NULL when compliance is off */
    EVP_PKEY *key;
} admin_log;

/* 0 (al->log NULL when compliance is off) or -1 after reporting: a change that cannot be
 * audited must not be made. */
int admin_log_open(const config *cfg, admin_log *al);
/* Record an admin action (actor "admin", detail prefixed with the uid); -1 after
 * reporting. */
int admin_log_write(admin_log *al, const char *event, const char *target, const char *detail);
void admin_log_close(admin_log *al);

/* Command groups. */
int ctl_compliance(const char *conf_path, int argc, char **argv);
int ctl_files(const char *conf_path, int argc, char **argv);
void ctl_files_usage(FILE *out);
void ctl_compliance_usage(FILE *out);
int ctl_archive(const char *conf_path, int argc, char **argv);
void ctl_archive_usage(FILE *out);
/* ctl_policy.c: `policy` and `group` (one usage text for both). */
int ctl_policy(const char *conf_path, int argc, char **argv);
int ctl_group(const char *conf_path, int argc, char **argv);
void ctl_policy_usage(FILE *out);
int ctl_node(const char *conf_path, int argc, char **argv);
void ctl_node_usage(FILE *out);

#endif
