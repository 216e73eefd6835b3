/* ctl_archive.c - `parleyctl archive purge`: delete users' archived one-to-one messages
 * (XEP-0313) older than a date, for everyone or one account. This is the users' archive;
 * the compliance archive has its own, audited purge. */
#include "ctl.h"
#include "common/util.h"
#include "server/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctl_archive_usage(FILE *out)
{
    fputs("  archive purge --before TIME [--user JID]\n"
          "          delete archived messages (XEP-0313) older than TIME (ISO 8601 UTC), of\n"
          "          every user or of one; recorded in the compliance audit chain\n",
          out);
}

int ctl_archive(const char *conf_path, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "purge") != 0)
        return usage_error("archive needs a subcommand: purge");
    const char *before = NULL, *user_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--before") == 0)
            before = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--user") == 0)
            user_arg = argv[++i];
        else
            return usage_error("archive purge: unexpected argument '%s'", argv[i]);
    }
    int64_t before_us;
    if (!before)
        return usage_error("archive purge needs --before TIME");
    if (time_parse_iso8601(before, &before_us) < 0)
        return usage_error("'%s' is not an ISO 8601 time (2024-05-01 or "
                           "2024-05-01T12:00:00Z)", before);
    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    int rc = EXIT_RUNTIME;
    char *user = NULL;
    store *st = NULL;
    admin_log al;
    memset(&al, 0, sizeof al);
    if (user_arg && !(user = account_jid(&cfg, user_arg)))
        goto out;
    if (admin_log_open(&cfg, &al) < 0)
        goto out;
    char err[512];
    st = store_open(cfg.store, err, sizeof err);
    if (!st) {
        fail("%s", err);
        goto out;
    }
    int64_t deleted = 0;
    if (store_mam_purge(st, user, before_us, &deleted) != STORE_OK) {
        fail("purging the archive: %s", store_last_error(st));
        goto out;
    }
    char detail[128];
    snprintf(detail, sizeof detail, "before=%s deleted=%lld", before, (long long)deleted);
    if (admin_log_write(&al, "archive-purge", user ? user : "*", detail) < 0)
        goto out;
    printf("%lld archived message%s deleted\n", (long long)deleted, deleted == 1 ? "" : "s");
    rc = 0;
out:
    store_close(st);
    admin_log_close(&al);
    free(user);
    config_free(&cfg);
    return rc;
}
