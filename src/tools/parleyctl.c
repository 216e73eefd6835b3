/* parleyctl.c - the Parley administration tool: sets up a deployment directory (a
 * development CA, a server certificate, a default configuration), manages accounts in
 * the store, and checks the configuration and the server certificate.
 *
 * It opens the same store as a running parleyd; the SQLite back end's WAL mode and busy
 * timeout make that safe. Passwords are read from a file or stdin, SASLprep'd, turned
 * into salted SCRAM credentials and wiped: they are never printed, logged or stored.
 *
 * Account changes are recorded in the compliance archive's audit chain (actor "admin")
 * when compliance is on; a change that cannot be recorded is not made. The compliance
 * commands read the archive: verify its hash chains, search and export records.
 *
 * Exit status: 0 success, 1 usage error, 2 runtime failure, 3 (compliance verify) the
 * archive does not verify. */
#include "ctl.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/scram.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/version.h"
#include "server/clog.h"
#include "server/config.h"
#include "server/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>


#define DEFAULT_CONFIG "/etc/parley/parleyd.conf"
#define MAX_PASSWORD 1024

#define CA_DAYS (10 * 365 + 2)
#define SERVER_DAYS 825 /* the CA/Browser Forum ceiling some clients still enforce */
#define RSA_BITS 2048   /* the seed's requirement; tls_check_key_strength's minimum */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-c FILE] COMMAND [ARGS]\n"
            "\n"
            "Administer a Parley XMPP server.\n"
            "\n"
            "  -c, --config FILE   configuration file (default: $PARLEY_CONFIG or %s)\n"
            "  --version           print the version and exit\n"
            "\n"
            "commands:\n"
            "  init --dir DIR --domain DOMAIN [--c2s-port N] [--tls-port N] [--https-port N]\n"
            "          create DIR with a development CA (ca.crt, ca.key), a certificate for\n"
            "          DOMAIN signed by it (server.crt, server.key), parleyd.conf and data/;\n"
            "          existing files are kept, never overwritten\n"
            "  user add JID [--password-file F]\n"
            "          create an account; the password is the first line of F, or read\n"
            "          from stdin\n"
            "  user passwd JID [--password-file F]\n"
            "          set a new password\n"
            "  user del JID\n"
            "          delete an account with its roster and offline messages\n"
            "  user list\n"
            "          list accounts\n"
            "  user import\n"
            "          create accounts from 'JID PASSWORD' lines on stdin (bulk provisioning)\n"
            "  cert check\n"
            "          inspect the configured certificate and key (names, key strength,\n"
            "          validity, key match)\n"
            "  check   load the configuration and report ok or the first error\n"
            "  help    show this text\n",
            progname, DEFAULT_CONFIG);
    /* Each command group describes itself. */
    ctl_compliance_usage(out);
    ctl_archive_usage(out);
    ctl_policy_usage(out);
    ctl_files_usage(out);
    ctl_node_usage(out);
    fputs("\nexit status: 0 success, 1 usage error, 2 failure, 3 archive does not verify\n",
          out);
}

static int parse_port(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 0 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

/* ======================================================================== init ==== */

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* mkdir -p with mode 0700 for each directory created. */
static int make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -1;
            *p = saved;
            if (!saved)
                break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) < 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Open path for writing only if it does not exist yet, with an exact mode. */
static FILE *create_exclusive(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return NULL;
    if (fchmod(fd, mode) < 0) {
        close(fd);
        unlink(path);
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(path);
    }
    return f;
}

static int write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = create_exclusive(path, 0600);
    if (!f) {
        fail("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    if (fclose(f) != 0 || !ok) {
        fail("writing %s failed: %s", path, ok ? strerror(errno) : ssl_error());
        unlink(path);
        return -1;
    }
    return 0;
}

static int write_cert(const char *path, X509 *cert)
{
    FILE *f = create_exclusive(path, 0644);
    if (!f) {
        fail("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = PEM_write_X509(f, cert) == 1;
    if (fclose(f) != 0 || !ok) {
        fail("writing %s failed: %s", path, ok ? strerror(errno) : ssl_error());
        unlink(path);
        return -1;
    }
    return 0;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A certificate skeleton: v3, random positive 127-bit serial, validity now..now+days. */
static X509 *new_cert(EVP_PKEY *key, int days, const char *cn, const char *org)
{
    X509 *cert = X509_new();
    if (!cert)
        return NULL;
    unsigned char serial[16];
    random_bytes(serial, sizeof serial);
    serial[0] &= 0x7f; /* positive, as RFC 5280 requires */
    serial[0] |= 0x01; /* never a leading zero byte */
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    X509_NAME *name = X509_get_subject_name(cert);
    int ok = bn && X509_set_version(cert, X509_VERSION_3) &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) &&
             X509_gmtime_adj(X509_getm_notBefore(cert), -60) && /* tolerate clock skew */
             X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) &&
             X509_set_pubkey(cert, key) &&
             (!org || X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                                 (const unsigned char *)org, -1, -1, 0)) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
                                        -1, -1, 0);
    BN_free(bn);
    if (!ok) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

static EVP_PKEY *gen_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_BITS);
}

static int make_ca(const char *domain, EVP_PKEY **key_out, X509 **cert_out)
{
    EVP_PKEY *key = gen_key();
    if (!key)
        return fail("generating the CA key: %s", ssl_error()), -1;
    char cn[300];
    snprintf(cn, sizeof cn, "Parley development CA (%.200s)", domain);
    X509 *cert = new_cert(key, CA_DAYS, cn, "Parley");
    if (!cert || !X509_set_issuer_name(cert, X509_get_subject_name(cert)) ||
        add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
        add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        add_ext(cert, cert, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(cert, cert, NID_authority_key_identifier, "keyid:always") < 0 ||
        X509_sign(cert, key, EVP_sha256()) <= 0) {
        fail("creating the CA certificate: %s", ssl_error());
        X509_free(cert);
        EVP_PKEY_free(key);
        return -1;
    }
    *key_out = key;
    *cert_out = cert;
    return 0;
}

static int make_server_cert(const char *domain, EVP_PKEY *ca_key, X509 *ca_cert,
                            EVP_PKEY **key_out, X509 **cert_out)
{
    EVP_PKEY *key = gen_key();
    if (!key)
        return fail("generating the server key: %s", ssl_error()), -1;
    /* *.DOMAIN covers conference. and upload. subdomains; the xmppAddr otherName lets
     * nodes authenticate each other with SASL EXTERNAL (XEP-0178). */
    char san[1024];
    snprintf(san, sizeof san, "DNS:%s,DNS:*.%s,otherName:1.3.6.1.5.5.7.8.5;UTF8:%s%s", domain,
             domain, domain,
             strcmp(domain, "localhost") == 0 ? ",IP:127.0.0.1,IP:::1" : "");
    X509 *cert = new_cert(key, SERVER_DAYS, domain, NULL);
    if (!cert || !X509_set_issuer_name(cert, X509_get_subject_name(ca_cert)) ||
        add_ext(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(cert, ca_cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
        add_ext(cert, ca_cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
        add_ext(cert, ca_cert, NID_subject_alt_name, san) < 0 ||
        add_ext(cert, ca_cert, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(cert, ca_cert, NID_authority_key_identifier, "keyid:always") < 0 ||
        X509_sign(cert, ca_key, EVP_sha256()) <= 0) {
        fail("creating the server certificate: %s", ssl_error());
        X509_free(cert);
        EVP_PKEY_free(key);
        return -1;
    }
    *key_out = key;
    *cert_out = cert;
    return 0;
}

static int load_ca(const char *crt_path, const char *key_path, EVP_PKEY **key, X509 **cert)
{
    FILE *f = fopen(crt_path, "r");
    if (!f)
        return fail("cannot open %s: %s", crt_path, strerror(errno)), -1;
    *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!*cert)
        return fail("%s: not a PEM certificate: %s", crt_path, ssl_error()), -1;
    f = fopen(key_path, "r");
    if (!f) {
        X509_free(*cert);
        return fail("cannot open %s: %s", key_path, strerror(errno)), -1;
    }
    *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!*key || X509_check_private_key(*cert, *key) != 1) {
        fail("%s: %s", key_path, *key ? "does not match the CA certificate" : ssl_error());
        EVP_PKEY_free(*key);
        X509_free(*cert);
        return -1;
    }
    return 0;
}

static int cmd_init(int argc, char **argv)
{
    const char *dir = NULL, *domain_arg = NULL;
    int c2s = 5222, tls = 5223, https = 5443;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int *port = strcmp(a, "--c2s-port") == 0     ? &c2s
                    : strcmp(a, "--tls-port") == 0   ? &tls
                    : strcmp(a, "--https-port") == 0 ? &https
                                                     : NULL;
        if (strcmp(a, "--dir") == 0 || strcmp(a, "--domain") == 0 || port) {
            if (i + 1 >= argc)
                return usage_error("init: %s needs a value", a);
            const char *v = argv[++i];
            if (port) {
                if (parse_port(v, port) < 0)
                    return usage_error("init: bad port '%s' for %s (0-65535)", v, a);
            } else if (strcmp(a, "--dir") == 0) {
                dir = v;
            } else {
                domain_arg = v;
            }
        } else {
            return usage_error("init: unexpected argument '%s'", a);
        }
    }
    if (!dir || !*dir || !domain_arg)
        return usage_error("init needs --dir DIR and --domain DOMAIN");
    char *domain = jid_normalize(domain_arg);
    if (!domain || strchr(domain, '@') || strchr(domain, '/')) {
        free(domain);
        return usage_error("init: '%s' is not a valid XMPP domain", domain_arg);
    }

    int rc = EXIT_RUNTIME;
    char *ca_crt = xasprintf("%s/ca.crt", dir), *ca_key = xasprintf("%s/ca.key", dir);
    char *srv_crt = xasprintf("%s/server.crt", dir), *srv_key = xasprintf("%s/server.key", dir);
    char *conf = xasprintf("%s/parleyd.conf", dir), *data = xasprintf("%s/data", dir);
    EVP_PKEY *cakey = NULL, *skey = NULL;
    X509 *cacert = NULL, *scert = NULL;

    int existed = file_exists(dir);
    if (make_dirs(dir) < 0) {
        fail("cannot create directory %s: %s", dir, strerror(errno));
        goto out;
    }
    printf("%s %s\n", existed ? "exists: " : "created:", dir);

    /* Half a key pair on disk means something went wrong before: refuse to guess. */
    int have_ca_crt = file_exists(ca_crt), have_ca_key = file_exists(ca_key);
    int have_srv_crt = file_exists(srv_crt), have_srv_key = file_exists(srv_key);
    if (have_ca_crt != have_ca_key) {
        fail("%s exists without %s; move it away or supply both",
             have_ca_crt ? ca_crt : ca_key, have_ca_crt ? ca_key : ca_crt);
        goto out;
    }
    if (have_srv_crt != have_srv_key) {
        fail("%s exists without %s; move it away or supply both",
             have_srv_crt ? srv_crt : srv_key, have_srv_crt ? srv_key : srv_crt);
        goto out;
    }

    if (have_ca_crt) {
        printf("exists:  %s, %s\n", ca_crt, ca_key);
    } else {
        if (make_ca(domain, &cakey, &cacert) < 0 || write_key(ca_key, cakey) < 0)
            goto out;
        if (write_cert(ca_crt, cacert) < 0) {
            unlink(ca_key);
            goto out;
        }
        printf("created: %s, %s (development CA, RSA %d, valid %d days)\n", ca_crt, ca_key,
               RSA_BITS, CA_DAYS);
    }

    if (have_srv_crt) {
        printf("exists:  %s, %s\n", srv_crt, srv_key);
    } else {
        if (!cacert && load_ca(ca_crt, ca_key, &cakey, &cacert) < 0)
            goto out;
        if (make_server_cert(domain, cakey, cacert, &skey, &scert) < 0 ||
            write_key(srv_key, skey) < 0)
            goto out;
        if (write_cert(srv_crt, scert) < 0) {
            unlink(srv_key);
            goto out;
        }
        printf("created: %s, %s (%s and *.%s, RSA %d, valid %d days)\n", srv_crt, srv_key,
               domain, domain, RSA_BITS, SERVER_DAYS);
    }

    if (file_exists(conf)) {
        printf("exists:  %s\n", conf);
    } else {
        char err[512];
        if (config_write_default(conf, domain, dir, c2s, tls, https, err, sizeof err) < 0) {
            fail("%s", err);
            goto out;
        }
        printf("created: %s\n", conf);
    }

    existed = file_exists(data);
    if (make_dirs(data) < 0) {
        fail("cannot create directory %s: %s", data, strerror(errno));
        goto out;
    }
    printf("%s %s\n", existed ? "exists: " : "created:", data);
    printf("next: %s -c %s user add USER@%s\n", progname, conf, domain);
    rc = 0;
out:
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(skey);
    X509_free(cacert);
    X509_free(scert);
    free(ca_crt);
    free(ca_key);
    free(srv_crt);
    free(srv_key);
    free(conf);
    free(data);
    free(domain);
    return rc;
}

/* ================================================================== config ==== */

static int cmd_check(const char *conf_path, int argc)
{
    if (argc > 0)
        return usage_error("check takes no arguments");
    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    printf("%s: ok (domain %s, store %s)\n", cfg.path, cfg.domain, cfg.store);
    config_free(&cfg);
    return 0;
}

/* =================================================================== users ==== */

/* Read one line (without its newline) into buf; -1 on EOF/error/too long. */
static int read_line(FILE *f, char *buf, size_t len, const char *what)
{
    if (!fgets(buf, (int)len, f)) {
        fail("%s: no password to read", what);
        return -1;
    }
    size_t n = strlen(buf);
    if (n == len - 1 && buf[n - 1] != '\n' && !feof(f)) {
        secure_wipe(buf, len);
        fail("%s: password longer than %d bytes", what, MAX_PASSWORD - 2);
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return 0;
}

/* Prompt on the terminal without echo. */
static int read_tty(const char *prompt, char *buf, size_t len)
{
    struct termios old, quiet;
    int have_tc = tcgetattr(STDIN_FILENO, &old) == 0;
    fputs(prompt, stderr);
    fflush(stderr);
    if (have_tc) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    int r = read_line(stdin, buf, len, "stdin");
    if (have_tc)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
    return r;
}

/* The new password, SASLprep'd (freshly allocated; the caller wipes and frees it). */
static char *get_password(const char *file)
{
    char buf[MAX_PASSWORD];
    int r;
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f)
            return fail("cannot open %s: %s", file, strerror(errno)), NULL;
        r = read_line(f, buf, sizeof buf, file);
        fclose(f);
    } else if (isatty(STDIN_FILENO)) {
        char again[MAX_PASSWORD];
        r = read_tty("New password: ", buf, sizeof buf);
        if (r == 0)
            r = read_tty("Repeat password: ", again, sizeof again);
        if (r == 0 && strcmp(buf, again) != 0) {
            fail("the passwords do not match");
            r = -1;
        }
        secure_wipe(again, sizeof again);
    } else {
        r = read_line(stdin, buf, sizeof buf, "stdin");
    }
    if (r < 0) {
        secure_wipe(buf, sizeof buf);
        return NULL;
    }
    if (!buf[0]) {
        fail("refusing an empty password");
        return NULL;
    }
    char *prepped = scram_saslprep(buf);
    secure_wipe(buf, sizeof buf);
    if (!prepped)
        fail("the password contains characters SASLprep (RFC 4013) does not allow");
    else if (!prepped[0]) {
        free(prepped);
        fail("refusing an empty password");
        return NULL;
    }
    return prepped;
}

static void free_password(char *pw)
{
    if (pw) {
        secure_wipe(pw, strlen(pw));
        free(pw);
    }
}

static int make_creds(const config *cfg, const char *password, scram_cred creds[2])
{
    if (scram_make_cred(SCRAM_SHA1, password, cfg->scram_iterations, &creds[0]) < 0 ||
        scram_make_cred(SCRAM_SHA256, password, cfg->scram_iterations, &creds[1]) < 0) {
        secure_wipe(creds, 2 * sizeof *creds);
        return fail("deriving SCRAM credentials failed"), -1;
    }
    return 0;
}

static void print_user(void *ud, const char *user)
{
    (void)ud;
    printf("%s\n", user);
}

/* Bulk provisioning: "JID PASSWORD" per line on stdin (the password is the rest of the
 * line). Existing accounts are left alone and counted; a bad line is reported with its
 * number and the others still go in. */
static int import_users(const config *cfg, store *st, admin_log *al)
{
    char line[MAX_PASSWORD + 1100];
    int lineno = 0, created = 0, existed = 0, bad = 0;
    while (fgets(line, sizeof line, stdin)) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        if (line[len] == '\0' && !feof(stdin)) {
            fail("stdin:%d: line too long", lineno);
            bad++;
            int ch;
            while ((ch = getchar()) != EOF && ch != '\n')
                ;
            continue;
        }
        line[len] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *space = strchr(line, ' ');
        char *user = NULL, *password = NULL;
        if (!space || !space[1]) {
            fail("stdin:%d: expected 'JID PASSWORD'", lineno);
            bad++;
        } else {
            *space = '\0';
            if (!(user = account_jid(cfg, line)) || !(password = scram_saslprep(space + 1)) ||
                !password[0]) {
                fail("stdin:%d: invalid JID or password", lineno);
                bad++;
            } else {
                scram_cred creds[2];
                store_status s = STORE_ERROR;
                if (make_creds(cfg, password, creds) == 0)
                    s = store_user_create(st, user, creds, 2);
                secure_wipe(creds, sizeof creds);
                if (s == STORE_OK) {
                    created++;
                    if (admin_log_write(al, "user-add", user, "import") < 0)
                        bad++;
                }
                else if (s == STORE_EXISTS)
                    existed++;
                else {
                    fail("stdin:%d: %s: %s", lineno, user, store_last_error(st));
                    bad++;
                }
            }
        }
        secure_wipe(line, sizeof line);
        free_password(password);
        free(user);
    }
    printf("imported %d users, %d already existed, %d lines rejected\n", created, existed, bad);
    return bad ? EXIT_RUNTIME : 0;
}

static int cmd_user(const char *conf_path, int argc, char **argv)
{
    if (argc < 1)
        return usage_error("user needs a subcommand: add, passwd, del, list or import");
    const char *sub = argv[0];
    const char *jid_arg = NULL, *pwfile = NULL;
    int want_jid = strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0 ||
                   strcmp(sub, "del") == 0;
    int takes_pw = strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0;
    if (!want_jid && strcmp(sub, "list") != 0 && strcmp(sub, "import") != 0)
        return usage_error("unknown user subcommand '%s'", sub);
    for (int i = 1; i < argc; i++) {
        if (takes_pw && strcmp(argv[i], "--password-file") == 0) {
            if (i + 1 >= argc)
                return usage_error("--password-file needs a file");
            pwfile = argv[++i];
        } else if (want_jid && !jid_arg && argv[i][0] != '-') {
            jid_arg = argv[i];
        } else {
            return usage_error("user %s: unexpected argument '%s'", sub, argv[i]);
        }
    }
    if (want_jid && !jid_arg)
        return usage_error("user %s needs a JID", sub);

    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    int rc = EXIT_RUNTIME;
    char *user = NULL, *password = NULL;
    store *st = NULL;
    char err[512];
    admin_log al = {0};

    if (want_jid && !(user = account_jid(&cfg, jid_arg)))
        goto out;
    st = store_open(cfg.store, err, sizeof err);
    if (!st) {
        fail("%s", err);
        goto out;
    }
    if (strcmp(sub, "list") != 0 && admin_log_open(&cfg, &al) < 0)
        goto out;

    if (strcmp(sub, "import") == 0) {
        rc = import_users(&cfg, st, &al);
        goto out;
    }
    if (strcmp(sub, "list") == 0) {
        if (store_user_list(st, print_user, NULL) != STORE_OK) {
            fail("listing users: %s", store_last_error(st));
            goto out;
        }
        rc = 0;
        goto out;
    }

    /* Check before asking for a password nobody will use. */
    store_status s = store_user_exists(st, user);
    if (s == STORE_ERROR) {
        fail("%s", store_last_error(st));
        goto out;
    }
    if (strcmp(sub, "add") == 0 && s == STORE_OK) {
        fail("user %s already exists", user);
        goto out;
    }
    if (strcmp(sub, "add") != 0 && s == STORE_NOT_FOUND) {
        fail("no such user %s", user);
        goto out;
    }

    if (strcmp(sub, "del") == 0) {
        s = store_user_delete(st, user);
        if (s != STORE_OK) {
            if (s == STORE_NOT_FOUND)
                fail("no such user %s", user);
            else
                fail("deleting %s: %s", user, store_last_error(st));
            goto out;
        }
        printf("deleted %s\n", user);
        rc = admin_log_write(&al, "user-del", user, NULL) < 0 ? EXIT_RUNTIME : 0;
        goto out;
    }

    if (!(password = get_password(pwfile)))
        goto out;
    scram_cred creds[2];
    if (make_creds(&cfg, password, creds) < 0)
        goto out;
    if (strcmp(sub, "add") == 0)
        s = store_user_create(st, user, creds, 2);
    else
        s = store_user_set_creds(st, user, creds, 2);
    secure_wipe(creds, sizeof creds);
    if (s == STORE_EXISTS)
        fail("user %s already exists", user);
    else if (s == STORE_NOT_FOUND)
        fail("no such user %s", user);
    else if (s != STORE_OK)
        fail("%s: %s", user, store_last_error(st));
    else {
        printf("%s %s\n", strcmp(sub, "add") == 0 ? "created" : "password changed for", user);
        rc = admin_log_write(&al, strcmp(sub, "add") == 0 ? "user-add" : "user-passwd", user,
                             NULL) < 0
                 ? EXIT_RUNTIME
                 : 0;
    }
out:
    free_password(password);
    admin_log_close(&al);
    store_close(st);
    free(user);
    config_free(&cfg);
    return rc;
}

/* ============================================================= cert check ==== */

static void print_time(const char *label, const ASN1_TIME *t)
{
    BIO *b = BIO_new(BIO_s_mem());
    char buf[64] = "?";
    if (b && ASN1_TIME_print(b, t)) {
        int n = BIO_read(b, buf, (int)sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    printf("%-12s %s\n", label, buf);
}

static void print_name(const char *label, const X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    char buf[512] = "?";
    if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, buf, (int)sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    printf("%-12s %s\n", label, buf);
}

static void print_sans(X509 *cert)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    printf("%-12s", "names:");
    if (!names) {
        printf(" (no subjectAltName)\n");
        return;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS) {
            printf(" DNS:%.*s", ASN1_STRING_length(gn->d.dNSName),
                   (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
        } else if (gn->type == GEN_IPADD) {
            char ip[INET6_ADDRSTRLEN] = "?";
            int n = ASN1_STRING_length(gn->d.iPAddress);
            const unsigned char *raw = ASN1_STRING_get0_data(gn->d.iPAddress);
            if (n == 4 || n == 16)
                inet_ntop(n == 4 ? AF_INET : AF_INET6, raw, ip, sizeof ip);
            printf(" IP:%s", ip);
        } else if (gn->type == GEN_OTHERNAME &&
                   OBJ_obj2nid(gn->d.otherName->type_id) == NID_XmppAddr &&
                   gn->d.otherName->value->type == V_ASN1_UTF8STRING) {
            const ASN1_UTF8STRING *s = gn->d.otherName->value->value.utf8string;
            printf(" xmppAddr:%.*s", ASN1_STRING_length(s),
                   (const char *)ASN1_STRING_get0_data(s));
        } else if (gn->type == GEN_URI) {
            printf(" URI:%.*s", ASN1_STRING_length(gn->d.uniformResourceIdentifier),
                   (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier));
        } else {
            printf(" (other)");
        }
    }
    printf("\n");
    GENERAL_NAMES_free(names);
}

static void describe_key(EVP_PKEY *key, char *out, size_t len)
{
    const char *type = EVP_PKEY_get0_type_name(key);
    char group[64] = "";
    if (EVP_PKEY_is_a(key, "EC") &&
        EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, NULL))
        snprintf(out, len, "EC %s, %d bits", group, EVP_PKEY_get_bits(key));
    else
        snprintf(out, len, "%s %d bits", type ? type : "unknown", EVP_PKEY_get_bits(key));
    ERR_clear_error();
}

static int cmd_cert(const char *conf_path, int argc, char **argv)
{
    if (argc != 1 || strcmp(argv[0], "check") != 0)
        return usage_error("usage: cert check");
    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    int rc = EXIT_RUNTIME;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int problems = 0;

    FILE *f = fopen(cfg.cert_file, "r");
    if (!f) {
        fail("cannot open certificate %s: %s", cfg.cert_file, strerror(errno));
        goto out;
    }
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    int chain = 0;
    X509 *extra;
    while ((extra = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        chain++;
        X509_free(extra);
    }
    ERR_clear_error(); /* the loop ends on "no start line" */
    fclose(f);
    if (!cert) {
        fail("%s: no PEM certificate found", cfg.cert_file);
        goto out;
    }
    f = fopen(cfg.key_file, "r");
    if (!f) {
        fail("cannot open key %s: %s", cfg.key_file, strerror(errno));
        goto out;
    }
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!key) {
        fail("%s: cannot read the private key (unencrypted PEM expected): %s", cfg.key_file,
             ssl_error());
        goto out;
    }

    printf("%-12s %s (%d more in chain)\n", "certificate:", cfg.cert_file, chain);
    print_name("subject:", X509_get_subject_name(cert));
    print_sans(cert);
    print_name("issuer:", X509_get_issuer_name(cert));

    EVP_PKEY *pub = X509_get0_pubkey(cert);
    char desc[128] = "unknown";
    if (pub)
        describe_key(pub, desc, sizeof desc);
    printf("%-12s %s\n", "key:", desc);

    print_time("not before:", X509_get0_notBefore(cert));
    print_time("not after:", X509_get0_notAfter(cert));
    int days = 0, secs = 0;
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
        printf("%-12s NOT YET VALID\n", "status:");
        fprintf(stderr, "%s: error: the certificate is not valid yet\n", progname);
        problems++;
    } else if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
        printf("%-12s EXPIRED\n", "status:");
        fprintf(stderr, "%s: error: the certificate has expired\n", progname);
        problems++;
    } else if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert))) {
        printf("%-12s valid, %d days left\n", "status:", days);
        if (days < 30)
            fprintf(stderr, "%s: warning: the certificate expires in %d day%s\n", progname, days,
                    days == 1 ? "" : "s");
    }

    char err[256];
    if (tls_check_key_strength(key, err, sizeof err) < 0) {
        printf("%-12s REFUSED: %s\n", "strength:", err);
        fprintf(stderr, "%s: error: weak key: %s\n", progname, err);
        problems++;
    } else {
        printf("%-12s acceptable\n", "strength:");
    }

    if (!pub || EVP_PKEY_eq(pub, key) != 1) {
        printf("%-12s NO\n", "key match:");
        fprintf(stderr, "%s: error: %s does not match the certificate %s\n", progname,
                cfg.key_file, cfg.cert_file);
        problems++;
    } else {
        printf("%-12s yes\n", "key match:");
    }
    ERR_clear_error();

    /* Clients check the XMPP domain against the certificate (RFC 6125). */
    if (X509_check_host(cert, cfg.domain, 0, 0, NULL) != 1) {
        printf("%-12s NO (%s)\n", "domain:", cfg.domain);
        fprintf(stderr, "%s: error: the certificate does not name the domain %s\n", progname,
                cfg.domain);
        problems++;
    } else {
        printf("%-12s %s covered\n", "domain:", cfg.domain);
    }

    if (problems)
        fprintf(stderr, "%s: %d problem%s with %s\n", progname, problems, problems > 1 ? "s" : "",
                cfg.cert_file);
    else
        rc = 0;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    config_free(&cfg);
    return rc;
}

/* ==================================================================== main ==== */

int main(int argc, char **argv)
{
    const char *conf = getenv("PARLEY_CONFIG");
    if (!conf || !*conf)
        conf = DEFAULT_CONFIG;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc)
                return usage_error("%s needs a file", a);
            conf = argv[++i];
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("parleyctl (%s) %s\n", PARLEY_NAME, PARLEY_VERSION);
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-') {
            return usage_error("unknown option '%s'", a);
        } else {
            break;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[i++];
    int rest = argc - i;
    char **args = argv + i;
    /* The store's warnings go to stderr; nothing below logs secrets. */
    log_set_level(PLOG_WARN);

    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "init") == 0)
        return cmd_init(rest, args);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(conf, rest);
    if (strcmp(cmd, "user") == 0)
        return cmd_user(conf, rest, args);
    if (strcmp(cmd, "cert") == 0)
        return cmd_cert(conf, rest, args);
    if (strcmp(cmd, "compliance") == 0)
        return ctl_compliance(conf, rest, args);
    if (strcmp(cmd, "archive") == 0)
        return ctl_archive(conf, rest, args);
    if (strcmp(cmd, "files") == 0)
        return ctl_files(conf, rest, args);
    if (strcmp(cmd, "policy") == 0 || strcmp(cmd, "group") == 0)
        return (cmd[0] == 'p' ? ctl_policy : ctl_group)(conf, rest, args);
    if (strcmp(cmd, "node") == 0)
        return ctl_node(conf, rest, args);
    return usage_error("unknown command '%s'", cmd);
}
