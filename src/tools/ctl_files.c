/* ctl_files.c - parleyctl files: list the files of XEP-0363 file transfer and purge them
 * (expired, older than a time, or by id), each purge recorded in the audit chain. Works on
 * the store and upload_dir directly, while parleyd runs: a purged file is gone for the
 * next download (404). */
#include "ctl.h"
#include "common/util.h"
#include "server/store_files.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ctl_files_usage(FILE *out)
{
    fputs("  files list\n"
          "          every file: id, state, size, sniffed type, sender, intended\n"
          "          recipient, upload and expiry times (UTC), name\n"
          "  files purge --expired [--as-of TIME] | --before TIME | ID...\n"
          "          delete files (and their bytes once no other file shares them):\n"
          "          those past upload_expire_after (as of TIME, default now), those\n"
          "          uploaded before TIME, or the given ids; TIME is\n"
          "          YYYY-MM-DDTHH:MM:SSZ or 'now'; each purge is audited\n",
          out);
}

/* "now" or YYYY-MM-DDTHH:MM:SSZ (UTC) -> microseconds; -1 if malformed. */
static int64_t parse_time(const char *s)
{
    if (strcmp(s, "now") == 0)
        return time_now_us();
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return -1;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000000;
}

static void fmt_time(int64_t us, char out[TIME_UTC_LEN])
{
    if (us <= 0)
        snprintf(out, TIME_UTC_LEN, "-");
    else
        time_format_utc(us, out);
}

static void print_one(void *ud, const file_meta *m)
{
    (void)ud;
    char up[TIME_UTC_LEN], ex[TIME_UTC_LEN];
    fmt_time(m->uploaded_us, up);
    fmt_time(m->expires_us, ex);
    printf("%s %-11s %10" PRId64 " %-24s %s %s %s %s %s%s\n", m->id, file_state_name(m->state),
           m->size, m->type ? m->type : "-", m->sender ? m->sender : "-",
           m->recipient ? m->recipient : "-", up, ex, m->name ? m->name : "-",
           m->screen_capture ? " [screen capture]" : "");
}

typedef struct purge_sel {
    int expired;
    int64_t as_of, before;
    char **ids;
    size_t nids;
    /* what matched */
    char **hit;
    size_t nhit, cap;
} purge_sel;

static void select_one(void *ud, const file_meta *m)
{
    purge_sel *s = ud;
    int take = 0;
    if (s->expired && m->expires_us && m->expires_us < s->as_of)
        take = 1;
    if (s->before && m->created_us < s->before)
        take = 1;
    for (size_t i = 0; i < s->nids; i++)
        if (strcmp(s->ids[i], m->id) == 0)
            take = 1;
    if (!take)
        return;
    if (s->nhit == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->hit = xrealloc(s->hit, s->cap * sizeof *s->hit);
    }
    s->hit[s->nhit++] = xstrdup(m->id);
}

static int purge(const config *cfg, store *st, purge_sel *sel)
{
    if (files_meta_list(st, select_one, sel) != STORE_OK)
        return fail("cannot list files: %s", store_last_error(st));
    admin_log al;
    if (sel->nhit && admin_log_open(cfg, &al) < 0)
        return EXIT_RUNTIME;
    int rc = 0;
    size_t done = 0;
    for (size_t i = 0; i < sel->nhit; i++) {
        file_meta m;
        if (files_meta_get(st, sel->hit[i], &m) != STORE_OK)
            continue;
        char detail[512];
        snprintf(detail, sizeof detail, "id=%s sha256=%s size=%" PRId64 " name=%s why=%s", m.id,
                 m.sha256[0] ? m.sha256 : "-", m.size, m.name ? m.name : "-",
                 sel->expired && m.expires_us && m.expires_us < sel->as_of ? "expired"
                 : sel->before && m.created_us < sel->before               ? "before"
                                                                           : "id");
        /* Audited first: a purge that cannot be recorded is not made. One that fails
         * after its record (the store, the objects lock) is recorded as failed too. */
        if (admin_log_write(&al, "file-purge", m.sender, detail) < 0) {
            fprintf(stderr, "%s: cannot purge %s: not audited\n", progname, m.id);
            rc = EXIT_RUNTIME;
        } else if (files_remove(st, cfg->upload_dir, m.id) != STORE_OK) {
            fprintf(stderr, "%s: cannot purge %s: %s\n", progname, m.id, store_last_error(st));
            (void)admin_log_write(&al, "file-purge-failed", m.sender, detail);
            rc = EXIT_RUNTIME;
        } else {
            done++;
        }
        file_meta_clear(&m);
    }
    if (sel->nhit)
        admin_log_close(&al);
    for (size_t i = 0; i < sel->nids; i++) {
        int found = 0;
        for (size_t j = 0; j < sel->nhit; j++)
            found |= strcmp(sel->ids[i], sel->hit[j]) == 0;
        if (!found) {
            fprintf(stderr, "%s: no file %s\n", progname, sel->ids[i]);
            rc = rc ? rc : EXIT_RUNTIME;
        }
    }
    for (size_t i = 0; i < sel->nhit; i++)
        free(sel->hit[i]);
    free(sel->hit);
    printf("%zu file%s purged\n", done, done == 1 ? "" : "s");
    return rc;
}

int ctl_files(const char *conf_path, int argc, char **argv)
{
    if (argc < 1)
        return usage_error("files needs a subcommand: list or purge");
    const char *sub = argv[0];
    purge_sel sel;
    memset(&sel, 0, sizeof sel);
    if (strcmp(sub, "list") == 0) {
        if (argc != 1)
            return usage_error("files list takes no arguments");
    } else if (strcmp(sub, "purge") == 0) {
        sel.as_of = time_now_us();
        int as_of_given = 0;
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i];
            if (strcmp(a, "--expired") == 0) {
                sel.expired = 1;
            } else if (strcmp(a, "--as-of") == 0 || strcmp(a, "--before") == 0) {
                if (i + 1 >= argc)
                    return usage_error("files purge: %s needs a time", a);
                int64_t t = parse_time(argv[++i]);
                if (t < 0)
                    return usage_error("files purge: bad time '%s' (YYYY-MM-DDTHH:MM:SSZ or now)",
                                       argv[i]);
                if (a[2] == 'a')
                    sel.as_of = t, as_of_given = 1;
                else
                    sel.before = t;
            } else if (a[0] == '-') {
                return usage_error("files purge: unknown option '%s'", a);
            } else if (strlen(a) == FILES_ID_LEN && strspn(a, "0123456789abcdef") == FILES_ID_LEN) {
                sel.ids = argv + i;
                sel.nids = (size_t)(argc - i);
                for (int j = i; j < argc; j++)
                    if (strlen(argv[j]) != FILES_ID_LEN ||
                        strspn(argv[j], "0123456789abcdef") != FILES_ID_LEN)
                        return usage_error("files purge: '%s' is not a file id", argv[j]);
                break;
            } else {
                return usage_error("files purge: '%s' is not a file id", a);
            }
        }
        if (!sel.expired && !sel.before && !sel.nids)
            return usage_error("files purge needs --expired, --before TIME or file ids");
        if (as_of_given && !sel.expired)
            return usage_error("files purge: --as-of goes with --expired");
    } else {
        return usage_error("unknown files subcommand '%s'", sub);
    }
    config cfg;
    if (load_config(conf_path, &cfg) < 0)
        return EXIT_RUNTIME;
    char err[512];
    store *st = store_open(cfg.store, err, sizeof err);
    if (!st) {
        config_free(&cfg);
        return fail("store %s: %s", cfg.store, err);
    }
    int rc = 0;
    if (sub[0] == 'l') {
        if (files_meta_list(st, print_one, NULL) != STORE_OK)
            rc = fail("cannot list files: %s", store_last_error(st));
    } else {
        rc = purge(&cfg, st, &sel);
    }
    store_close(st);
    config_free(&cfg);
    return rc;
}
