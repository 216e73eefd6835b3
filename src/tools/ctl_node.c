/* ctl_node.c - `parleyctl node add|remove|list`: the registry of the nodes of a domain in
 * the shared store (node.h), each node's certificate from the cluster's CA, and a view
 * of the session directory (which node is alive, how many sessions it holds). */
#include "ctl.h"
#include "common/jid.h"
#include "common/util.h"
#include "server/store.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define NODE_CERT_DAYS 825

void ctl_node_usage(FILE *out)
{
    fputs("  node add NAME HOST:PORT [--cert-dir DIR] [--ca-key FILE]\n"
          "          register a node of this domain (it links to the others at HOST:PORT,\n"
          "          its s2s_port); with --cert-dir, also issue DIR/NAME.crt and NAME.key\n"
          "          from the cluster CA (ca_file, key beside it or --ca-key), naming the\n"
          "          domain and the node\n"
          "  node remove NAME\n"
          "          unregister a node and drop its session directory entries\n"
          "  node list\n"
          "          the registered nodes, whether each is alive and its sessions\n",
          out);
}

/* ---- the node's certificate ---- */

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

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    X509 *c = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return c;
}

static int write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
    FILE *f = fopen(path, "wx");
    if (!f)
        return fail("cannot create %s (it must not exist yet)", path), -1;
    if (key)
        fchmod(fileno(f), 0600);
    int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1
                 : PEM_write_X509(f, cert) == 1;
    if (fclose(f) != 0 || !ok)
        return fail("writing %s failed", path), -1;
    return 0;
}

/* DIR/NAME.crt and DIR/NAME.key: ECDSA P-256, names the domain (for clients) and the node
 * (for the other nodes' SASL EXTERNAL), signed by the cluster CA. */
static int issue(const config *cfg, const char *name, const char *dir, const char *ca_key_path)
{
    char *default_key = NULL;
    if (!ca_key_path) {
        size_t n = strlen(cfg->ca_file);
        default_key = n > 4 && strcmp(cfg->ca_file + n - 4, ".crt") == 0
                          ? xasprintf("%.*s.key", (int)(n - 4), cfg->ca_file)
                          : xasprintf("%s.key", cfg->ca_file);
        ca_key_path = default_key;
    }
    int rc = -1;
    X509 *ca = read_cert(cfg->ca_file), *cert = NULL;
    EVP_PKEY *cakey = read_key(ca_key_path), *key = NULL;
    char *crt_path = xasprintf("%s/%s.crt", dir, name), *key_path = xasprintf("%s/%s.key", dir, name);
    if (!ca || !cakey || X509_check_private_key(ca, cakey) != 1) {
        fail("cannot use the cluster CA %s with key %s: %s", cfg->ca_file, ca_key_path,
             ssl_error());
        goto out;
    }
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    cert = X509_new();
    BIGNUM *bn = BN_new();
    char san[1200];
    snprintf(san, sizeof san, "DNS:%s,DNS:*.%s,DNS:%s,otherName:1.3.6.1.5.5.7.8.5;UTF8:%s,"
                              "otherName:1.3.6.1.5.5.7.8.5;UTF8:%s",
             cfg->domain, cfg->domain, name, cfg->domain, name);
    X509_NAME *subj = cert ? X509_get_subject_name(cert) : NULL;
    int ok = key && cert && bn && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) &&
             X509_set_version(cert, X509_VERSION_3) &&
             X509_gmtime_adj(X509_getm_notBefore(cert), -60) &&
             X509_time_adj_ex(X509_getm_notAfter(cert), NODE_CERT_DAYS, 0, NULL) &&
             X509_set_pubkey(cert, key) &&
             X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)name,
                                        -1, -1, 0) &&
             X509_set_issuer_name(cert, X509_get_subject_name(ca)) &&
             add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
             add_ext(cert, ca, NID_key_usage, "critical,digitalSignature") == 0 &&
             add_ext(cert, ca, NID_ext_key_usage, "serverAuth,clientAuth") == 0 &&
             add_ext(cert, ca, NID_subject_alt_name, san) == 0 &&
             add_ext(cert, ca, NID_authority_key_identifier, "keyid:always") == 0 &&
             X509_sign(cert, cakey, EVP_sha256()) > 0;
    BN_free(bn);
    if (!ok) {
        fail("issuing the node certificate: %s", ssl_error());
        goto out;
    }
    if (write_pem(key_path, key, NULL) < 0)
        goto out;
    if (write_pem(crt_path, NULL, cert) < 0) {
        remove(key_path);
        goto out;
    }
    printf("created: %s, %s (ECDSA P-256, names %s and %s, valid %d days)\n", crt_path,
           key_path, cfg->domain, name, NODE_CERT_DAYS);
    rc = 0;
out:
    X509_free(ca);
    X509_free(cert);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
    free(crt_path);
    free(key_path);
    free(default_key);
    return rc;
}

/* ---- list ---- */

static void print_node(void *ud, const store_node *n)
{
    (void)ud;
    printf("%-24s %-28s %-8s %d (%d)\n", n->name, n->address ? n->address : "(configured)",
           n->alive ? "alive" : "down", n->sessions, n->available);
}

static int list(store *st)
{
    printf("%-24s %-28s %-8s %s\n", "NODE", "ADDRESS", "STATE", "SESSIONS (AVAILABLE)");
    if (store_node_list(st, print_node, NULL) != STORE_OK)
        return fail("reading the node registry: %s", store_last_error(st));
    return 0;
}

/* ---- entry point ---- */

int ctl_node(const char *conf_path, int argc, char **argv)
{
    if (argc < 1)
        return usage_error("node needs a subcommand: add, remove or list");
    const char *sub = argv[0];
    const char *name_arg = NULL, *addr = NULL, *cert_dir = NULL, *ca_key = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--cert-dir") == 0)
            cert_dir = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--ca-key") == 0)
            ca_key = argv[++i];
        else if (argv[i][0] != '-' && !name_arg)
            name_arg = argv[i];
        else if (argv[i][0] != '-' && !addr)
            addr = argv[i];
        else
            return usage_error("node %s: unexpected argument '%s'", sub, argv[i]);
    }
    int add = strcmp(sub, "add") == 0, remove_ = strcmp(sub, "remove") == 0;
    if (!add && !remove_ && strcmp(sub, "list") != 0)
        return usage_error("unknown node subcommand '%s' (add, remove or list)", sub);
    if ((add && (!name_arg || !addr)) || (remove_ && (!name_arg || addr)) ||
        (!add && !remove_ && name_arg))
        return usage_error("usage: node add NAME HOST:PORT | node remove NAME | node list");
    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    int rc = EXIT_RUNTIME;
    char *name = name_arg ? jid_normalize(name_arg) : NULL;
    store *st = NULL;
    if (name_arg && (!name || strchr(name, '@') || strchr(name, '/'))) {
        rc = usage_error("'%s' is not a valid node name (a host-name-like word)", name_arg);
        goto out;
    }
    if (add) {
        /* The same syntax as the nodes key, checked by the same parser. */
        char host[256];
        int port;
        char *entry = xasprintf("%s=%s", name, addr);
        int bad = config_host_lookup(entry, name, host, sizeof host, &port) < 0;
        free(entry);
        if (bad) {
            rc = usage_error("'%s' is not HOST:PORT", addr);
            goto out;
        }
        if (cert_dir && !cfg.ca_file) {
            rc = fail("--cert-dir needs ca_file (the cluster CA) in the configuration");
            goto out;
        }
    }
    char err[512];
    st = store_open(cfg.store, err, sizeof err);
    if (!st) {
        fail("%s", err);
        goto out;
    }
    if (add) {
        if (cert_dir && issue(&cfg, name, cert_dir, ca_key) < 0)
            goto out;
        if (store_node_register(st, name, addr) != STORE_OK) {
            fail("registering the node: %s", store_last_error(st));
            goto out;
        }
        printf("node %s registered at %s\n", name, addr);
        rc = 0;
    } else if (remove_) {
        store_status r = store_node_unregister(st, name);
        if (r == STORE_NOT_FOUND) {
            fail("no node %s is registered", name);
            goto out;
        }
        if (r != STORE_OK) {
            fail("removing the node: %s", store_last_error(st));
            goto out;
        }
        printf("node %s removed with its session directory entries\n", name);
        rc = 0;
    } else {
        rc = list(st) == 0 ? 0 : EXIT_RUNTIME;
    }
out:
    store_close(st);
    free(name);
    config_free(&cfg);
    return rc;
}
