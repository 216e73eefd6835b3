/* ctl_compliance.c - `parleyctl compliance`: verify the archive's hash chains and signed
 * checkpoints, search and export message records, list audit events, purge records
 * past their retention, and create or migrate the schema. Every command but purge and
 * migrate opens the archive read-only: an audit must not change what it inspects. */
#include "ctl.h"
#include "common/jid.h"
#include "common/util.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void ctl_compliance_usage(FILE *out)
{
    fputs("  compliance verify\n"
          "          check the compliance archive's hash chains and signed checkpoints;\n"
          "          exit 3 naming the first altered, missing or reordered record\n"
          "  compliance search [FILTERS]\n"
          "          list message records; FILTERS: --from JID, --to JID, --jid JID (either\n"
          "          side), --text T (body contains), --since TIME, --until TIME,\n"
          "          --limit N; TIME is ISO 8601 UTC (2024-05-01 or 2024-05-01T12:00:00Z);\n"
          "          a bare JID matches all its resources\n"
          "  compliance export --format csv|json [FILTERS]\n"
          "          every column of the matching records, for auditors' tools\n"
          "  compliance audit [FILTERS]\n"
          "          list audit events (sign-ins, sign-outs, admin actions)\n"
          "  compliance purge --before TIME\n"
          "          delete the oldest message records older than TIME (up to the first\n"
          "          younger one), leaving a signed purge checkpoint and an audit event;\n"
          "          refused unless compliance_retention is set and TIME is at least that\n"
          "          far in the past, or if the archive does not verify; needs\n"
          "          the signing key (key_file); audit events are never purged\n"
          "  compliance migrate\n"
          "          create the compliance archive's schema, or upgrade it to this program's\n"
          "          version; prints FROM -> TO (audited as compliance-migrate when it\n"
          "          changed anything)\n"
          "  compliance schema\n"
          "          print the archive's schema version and the newest this program knows\n",
          out);
}

/* A JID argument normalised (lower case, nameprep) so it matches the stored form. */
static char *norm_jid_arg(const char *arg)
{
    jid j;
    if (jid_parse(arg, &j) < 0)
        return xstrdup(arg);
    char *out = jid_full(&j);
    jid_clear(&j);
    return out;
}

typedef struct search_opts {
    clog_filter f;
    char *from, *to, *jid;
    const char *format; /* export: csv or json */
} search_opts;

static void search_opts_free(search_opts *o)
{
    free(o->from);
    free(o->to);
    free(o->jid);
}

/* Parse filters (and --format when allow_format). Returns 0 or EXIT_USAGE. */
static int parse_filters(const char *what, int argc, char **argv, int allow_format, search_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return usage_error("compliance %s: %s needs a value", what, a);
        const char *v = argv[++i];
        if (strcmp(a, "--from") == 0) {
            free(o->from);
            o->f.from = o->from = norm_jid_arg(v);
        } else if (strcmp(a, "--to") == 0) {
            free(o->to);
            o->f.to = o->to = norm_jid_arg(v);
        } else if (strcmp(a, "--jid") == 0) {
            free(o->jid);
            o->f.jid = o->jid = norm_jid_arg(v);
        } else if (strcmp(a, "--text") == 0) {
            o->f.text = v;
        } else if (strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0) {
            int64_t t;
            if (time_parse_iso8601(v, &t) < 0)
                return usage_error("compliance %s: bad time '%s' for %s (ISO 8601 UTC, e.g. "
                                   "2024-05-01 or 2024-05-01T12:30:00Z)",
                                   what, v, a);
            if (strcmp(a, "--since") == 0)
                o->f.since_us = t;
            else
                o->f.until_us = t;
        } else if (strcmp(a, "--limit") == 0) {
            char *end;
            errno = 0;
            long long n = strtoll(v, &end, 10);
            if (!*v || *end || errno || n <= 0)
                return usage_error("compliance %s: bad --limit '%s' (a number > 0)", what, v);
            o->f.limit = n;
        } else if (allow_format && strcmp(a, "--format") == 0) {
            if (strcmp(v, "csv") != 0 && strcmp(v, "json") != 0)
                return usage_error("compliance %s: --format is csv or json", what);
            o->format = v;
        } else {
            return usage_error("compliance %s: unexpected argument '%s'", what, a);
        }
    }
    return 0;
}

static void csv_field(const char *s, int last)
{
    if (s) {
        if (strpbrk(s, ",\"\r\n")) {
            putchar('"');
            for (const char *p = s; *p; p++) {
                if (*p == '"')
                    putchar('"');
                putchar(*p);
            }
            putchar('"');
        } else {
            fputs(s, stdout);
        }
    }
    putchar(last ? '\n' : ',');
}

static void json_string(const char *s)
{
    if (!s) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (*p < 0x20)
                printf("\\u%04x", *p);
            else
                putchar(*p);
        }
    }
    putchar('"');
}

/* Text on one output line: newlines and other control characters escaped as \n, \xHH
 * (one record per line, and a body cannot forge lines of its own). */
static void print_line_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\\')
            fputs("\\\\", stdout);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
}

typedef struct printer {
    const char *format; /* NULL: human-readable lines */
    int64_t count;
} printer;

static const char *const record_columns[] = {
    "seq",      "time",    "ts_us",   "kind",      "sender",    "recipient", "msg_id",
    "thread",   "type",    "subject", "body",      "encrypted", "enc_ns",    "file_name",
    "file_size", "file_type", "file_sha256", "outcome", "verdict", "reason",  "stanza",
    "prev_hash", "hash",
};

static int print_record(void *ud, const clog_record *r)
{
    printer *pr = ud;
    char when[TIME_UTC_LEN], seq[24], ts[24], size[24];
    char prev[2 * CLOG_HASH_LEN + 1], hash[2 * CLOG_HASH_LEN + 1];
    time_format_utc(r->ts_us, when);
    if (!pr->format) {
        printf("#%lld %s %s -> %s [%s] %s%s%s", (long long)r->seq, when,
               r->sender ? r->sender : "?", r->recipient ? r->recipient : "?",
               r->type ? r->type : "?", r->outcome ? r->outcome : "?", r->reason ? " (" : "",
               r->reason ? r->reason : "");
        if (r->reason)
            putchar(')');
        if (r->encrypted)
            printf(" encrypted (%s)", r->enc_ns ? r->enc_ns : "?");
        if (r->subject) {
            fputs(" subject: ", stdout);
            print_line_safe(r->subject);
        }
        if (r->body) {
            fputs(": ", stdout);
            print_line_safe(r->body);
        }
        putchar('\n');
        pr->count++;
        return 0;
    }
    snprintf(seq, sizeof seq, "%lld", (long long)r->seq);
    snprintf(ts, sizeof ts, "%lld", (long long)r->ts_us);
    if (r->file_size >= 0)
        snprintf(size, sizeof size, "%lld", (long long)r->file_size);
    clog_hex(r->prev_hash, CLOG_HASH_LEN, prev);
    clog_hex(r->hash, CLOG_HASH_LEN, hash);
    const char *vals[] = {seq,         when,       ts,         r->kind,      r->sender,
                          r->recipient, r->msg_id, r->thread,  r->type,      r->subject,
                          r->body,      r->encrypted ? "1" : "0", r->enc_ns, r->file_name,
                          r->file_size >= 0 ? size : NULL, r->file_type, r->file_sha256,
                          r->outcome,   r->verdict, r->reason, r->stanza,    prev,
                          hash};
    if (strcmp(pr->format, "csv") == 0) {
        for (size_t i = 0; i < ARRAY_LEN(vals); i++)
            csv_field(vals[i], i + 1 == ARRAY_LEN(vals));
    } else {
        fputs(pr->count ? ",\n{" : "\n{", stdout);
        for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
            printf("%s\"%s\": ", i ? ", " : "", record_columns[i]);
            /* Numbers as JSON numbers, the rest as strings. */
            if ((i == 0 || i == 2 || i == 11 || i == 14) && vals[i])
                fputs(vals[i], stdout);
            else
                json_string(vals[i]);
        }
        putchar('}');
    }
    pr->count++;
    return 0;
}

static int print_audit(void *ud, const clog_audit *a)
{
    printer *pr = ud;
    char when[TIME_UTC_LEN];
    time_format_utc(a->ts_us, when);
    printf("#%lld %s ", (long long)a->seq, when);
    print_line_safe(a->event ? a->event : "?");
    putchar(' ');
    print_line_safe(a->actor ? a->actor : "-");
    const char *labels[] = {" target=", " peer=", " detail="};
    const char *vals[] = {a->target, a->peer, a->detail};
    for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
        if (vals[i]) {
            fputs(labels[i], stdout);
            print_line_safe(vals[i]);
        }
    }
    putchar('\n');
    pr->count++;
    return 0;
}

/* The public key checkpoints must be signed with: the server certificate's (readable by
 * auditors who do not hold the private key). NULL with a warning if unreadable. */
static EVP_PKEY *trusted_key(const config *cfg)
{
    FILE *f = fopen(cfg->cert_file, "r");
    X509 *cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    EVP_PKEY *key = cert ? X509_get_pubkey(cert) : NULL;
    X509_free(cert);
    ERR_clear_error();
    if (!key)
        fprintf(stderr, "%s: warning: cannot read %s: checkpoint signatures are checked, but "
                        "not who made them\n",
                progname, cfg->cert_file);
    return key;
}

static int compliance_verify(const config *cfg, clog *log)
{
    EVP_PKEY *trusted = trusted_key(cfg);
    int rc = 0;
    for (int ch = CLOG_MESSAGES; ch <= CLOG_AUDIT; ch++) {
        clog_verify_result res;
        if (clog_verify(log, (clog_chain)ch, trusted, &res) < 0) {
            rc = fail("verifying the %s chain: %s", clog_chain_name((clog_chain)ch),
                      clog_last_error(log));
            break;
        }
        if (res.ok) {
            char purged[64] = "";
            if (res.purged_seq)
                snprintf(purged, sizeof purged, "; records up to %lld purged",
                         (long long)res.purged_seq);
            printf("%s: all %lld records verify (%lld checkpoint%s%s)\n",
                   clog_chain_name((clog_chain)ch), (long long)res.records,
                   (long long)res.checkpoints, res.checkpoints == 1 ? "" : "s", purged);
        } else {
            printf("%s: TAMPERED: %s\n", clog_chain_name((clog_chain)ch), res.problem);
            fprintf(stderr, "%s: %s chain: %s\n", progname, clog_chain_name((clog_chain)ch),
                    res.problem);
            rc = EXIT_TAMPERED;
        }
    }
    EVP_PKEY_free(trusted);
    return rc;
}

/* `compliance purge --before TIME`: the retention rule first, then the archive's own
 * checks (it verifies before deleting, under the appenders' lock). */
static int compliance_purge(const char *conf_path, int argc, char **argv)
{
    const char *when = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--before") == 0 && i + 1 < argc)
            when = argv[++i];
        else
            return usage_error("compliance purge: unexpected argument '%s' (usage: compliance "
                               "purge --before TIME)",
                               argv[i]);
    }
    int64_t before;
    if (!when)
        return usage_error("compliance purge needs --before TIME");
    if (time_parse_iso8601(when, &before) < 0)
        return usage_error("compliance purge: bad time '%s' for --before (ISO 8601 UTC, e.g. "
                           "2024-05-01 or 2024-05-01T12:30:00Z)",
                           when);
    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    int rc = EXIT_RUNTIME;
    EVP_PKEY *key = NULL, *trusted = NULL;
    clog *log = NULL;
    char latest[TIME_UTC_LEN];
    int64_t limit = time_now_us() - (int64_t)cfg.compliance_retention_secs * 1000000LL;
    time_format_utc(limit, latest);
    if (cfg.compliance_retention_secs == 0) {
        fail("compliance purge refused: compliance_retention is forever in %s, so no record "
             "may ever be deleted (set it to how long records must be kept, e.g. 7y)",
             cfg.path);
        goto out;
    }
    if (before > limit) {
        char period[48];
        if (cfg.compliance_retention_secs % 86400 == 0)
            snprintf(period, sizeof period, "%lld days", cfg.compliance_retention_secs / 86400);
        else
            snprintf(period, sizeof period, "%lld seconds", cfg.compliance_retention_secs);
        fail("compliance purge refused: %s is less than compliance_retention (%s) in the "
             "past; the latest time allowed now is %s",
             when, period, latest);
        goto out;
    }
    if (!(key = load_signing_key(&cfg))) {
        fail("compliance purge: cannot read the signing key %s: a purge must be signed by the "
             "server's key",
             cfg.key_file);
        goto out;
    }
    trusted = trusted_key(&cfg);
    char err[512];
    log = clog_open(cfg.compliance_store, key, cfg.compliance_checkpoint_every, 0, err, sizeof err);
    if (!log) {
        fail("%s", err);
        goto out;
    }
    char note[64];
    snprintf(note, sizeof note, "uid=%u", (unsigned)getuid());
    clog_purge_result res;
    if (clog_purge(log, before, trusted, "admin", note, &res) < 0) {
        fail("compliance purge: %s", clog_last_error(log));
        goto out;
    }
    if (res.count == 0)
        printf("nothing to purge: no message record before %s comes before a younger one\n",
               when);
    else
        printf("purged %lld message record%s (seq %lld to %lld) older than %s; the purge "
               "checkpoint pins record %lld\n",
               (long long)res.count, res.count == 1 ? "" : "s", (long long)res.first_seq,
               (long long)res.last_seq, when, (long long)res.last_seq);
    rc = 0;
out:
    clog_close(log);
    EVP_PKEY_free(trusted);
    EVP_PKEY_free(key);
    config_free(&cfg);
    return rc;
}

/* `compliance migrate`: the writable open creates or migrates the schema (parleyd does
 * the same when it starts); this makes it an explicit, audited step. A schema newer than
 * this program is refused by the open, before anything is written. */
static int compliance_migrate(const char *conf_path, int argc)
{
    if (argc > 0)
        return usage_error("compliance migrate takes no arguments");
    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    int rc = EXIT_RUNTIME;
    admin_log al = {0};
    if (!cfg.compliance) {
        fail("compliance is off in %s: there is no archive to migrate", cfg.path);
        goto out;
    }
    if (admin_log_open(&cfg, &al) < 0)
        goto out;
    int found, current, supported;
    clog_schema(al.log, &found, &current, &supported);
    if (found != current) {
        char detail[64];
        snprintf(detail, sizeof detail, "from=%d to=%d", found, current);
        if (admin_log_write(&al, "compliance-migrate", "schema", detail) < 0)
            goto out;
    }
    if (found == 0)
        printf("compliance schema: 0 -> %d (archive created)\n", current);
    else if (found == current)
        printf("compliance schema: %d -> %d (already up to date)\n", found, current);
    else
        printf("compliance schema: %d -> %d (migrated)\n", found, current);
    rc = 0;
out:
    admin_log_close(&al);
    config_free(&cfg);
    return rc;
}

/* `compliance schema`: the version of the archive, read-only. */
static int compliance_schema(const char *conf_path, int argc)
{
    if (argc > 0)
        return usage_error("compliance schema takes no arguments");
    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    char err[512];
    int rc = EXIT_RUNTIME;
    clog *log = clog_open(cfg.compliance_store, NULL, 1, CLOG_READONLY, err, sizeof err);
    if (!log) {
        fail("%s", err);
    } else {
        int found, current, supported;
        clog_schema(log, &found, &current, &supported);
        printf("compliance schema version %d (this program: %d%s)\n", current, supported,
               current < supported ? "; run parleyctl compliance migrate, or start parleyd, "
                                     "to upgrade"
                                   : "");
        rc = 0;
    }
    clog_close(log);
    config_free(&cfg);
    return rc;
}

int ctl_compliance(const char *conf_path, int argc, char **argv)
{
    if (argc < 1)
        return usage_error(
            "compliance needs a subcommand: verify, search, export, audit, purge, migrate or "
            "schema");
    const char *sub = argv[0];
    if (strcmp(sub, "purge") == 0)
        return compliance_purge(conf_path, argc - 1, argv + 1);
    if (strcmp(sub, "migrate") == 0)
        return compliance_migrate(conf_path, argc - 1);
    if (strcmp(sub, "schema") == 0 || strcmp(sub, "version") == 0)
        return compliance_schema(conf_path, argc - 1);
    int is_verify = strcmp(sub, "verify") == 0, is_search = strcmp(sub, "search") == 0;
    int is_export = strcmp(sub, "export") == 0, is_audit = strcmp(sub, "audit") == 0;
    if (!is_verify && !is_search && !is_export && !is_audit)
        return usage_error("unknown compliance subcommand '%s'", sub);
    search_opts o;
    memset(&o, 0, sizeof o);
    if (is_verify && argc > 1)
        return usage_error("compliance verify takes no arguments");
    if (!is_verify) {
        int r = parse_filters(sub, argc - 1, argv + 1, is_export, &o);
        if (r) {
            search_opts_free(&o);
            return r;
        }
        if (is_export && !o.format) {
            search_opts_free(&o);
            return usage_error("compliance export needs --format csv or --format json");
        }
    }
    config cfg;
    if (load_config(conf_path, &cfg) < 0) {
        search_opts_free(&o);
        return EXIT_RUNTIME;
    }
    int rc = EXIT_RUNTIME;
    char err[512];
    /* Read-only: an audit must not change what it inspects. */
    clog *log = clog_open(cfg.compliance_store, NULL, 1, CLOG_READONLY, err, sizeof err);
    if (!log) {
        fail("%s", err);
        goto out;
    }
    if (is_verify) {
        rc = compliance_verify(&cfg, log);
        goto out;
    }
    printer pr = {is_export ? o.format : NULL, 0};
    if (is_export && strcmp(o.format, "csv") == 0)
        for (size_t i = 0; i < ARRAY_LEN(record_columns); i++)
            csv_field(record_columns[i], i + 1 == ARRAY_LEN(record_columns));
    if (is_export && strcmp(o.format, "json") == 0)
        putchar('[');
    int r = is_audit ? clog_search_audit(log, &o.f, print_audit, &pr)
                     : clog_search(log, &o.f, print_record, &pr);
    if (is_export && strcmp(o.format, "json") == 0)
        fputs(pr.count ? "\n]\n" : "]\n", stdout);
    if (r < 0) {
        fail("searching the compliance archive: %s", clog_last_error(log));
        goto out;
    }
    if (!is_export) {
        const char *noun = is_audit ? "event" : "record";
        fprintf(stderr, "%lld %s%s\n", (long long)pr.count, noun, pr.count == 1 ? "" : "s");
    }
    rc = fflush(stdout) == 0 ? 0 : fail("writing the output: %s", strerror(errno));
out:
    clog_close(log);
    config_free(&cfg);
    search_opts_free(&o);
    return rc;
}
