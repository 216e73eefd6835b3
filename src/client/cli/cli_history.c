/* cli_history.c - options to history database, and the `parley history` command. */
#include "cli_history.h"
#include "../../common/buf.h"
#include "../../common/util.h"
#include "exit_codes.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_history_mode(const cli_opts *o, hist_mode *mode, char *err, size_t errlen)
{
    *mode = HIST_MODE_DEFAULT;
    if (o->history && hist_mode_parse(o->history, mode) < 0) {
        snprintf(err, errlen, "history must be default, disabled or archive, not '%s'",
                 o->history);
        return -1;
    }
    return 0;
}

int cli_history_has_key(const cli_opts *o)
{
    return o->history_key_file || o->history_passphrase_file;
}

int cli_history_open(const cli_opts *o, int memory, hist **out, char *err, size_t errlen)
{
    *out = NULL;
    if (o->history_key_file && o->history_passphrase_file) {
        snprintf(err, errlen, "give history_key_file or history_passphrase_file, not both");
        return EXIT_USAGE;
    }
    if (!cli_history_has_key(o)) {
        if (!memory)
            return EXIT_OK;
        return hist_open(out, NULL, NULL, err, errlen) == HIST_OK ? EXIT_OK : EXIT_HISTORY;
    }
    hist_key key;
    int pass = o->history_passphrase_file != NULL;
    if (hist_key_load_file(&key, pass ? o->history_passphrase_file : o->history_key_file, pass,
                           err, errlen) != HIST_OK)
        return EXIT_HISTORY;
    char *path = hist_db_path(o->data_dir, o->jid, err, errlen);
    int rc = EXIT_HISTORY;
    if (path && hist_open(out, path, &key, err, errlen) == HIST_OK)
        rc = EXIT_OK;
    hist_key_clear(&key);
    free(path);
    return rc;
}

int cli_e2e_options(const cli_opts *o, parley_options *po, hist_key *key, char **path,
                    char *err, size_t errlen)
{
    memset(key, 0, sizeof *key);
    *path = NULL;
    if (!cli_history_has_key(o))
        return EXIT_OK;
    int pass = o->history_passphrase_file != NULL;
    if (hist_key_load_file(key, pass ? o->history_passphrase_file : o->history_key_file, pass,
                           err, errlen) != HIST_OK)
        return EXIT_HISTORY;
    char *db = hist_db_path(o->data_dir, o->jid, err, errlen);
    if (!db) {
        hist_key_clear(key);
        return EXIT_HISTORY;
    }
    size_t n = strlen(db);
    db[n - 3] = '\0'; /* drop ".db" */
    *path = xasprintf("%s.omemo.db", db);
    free(db);
    po->e2e_store = *path;
    if (key->is_passphrase)
        po->e2e_store_passphrase = key->passphrase;
    else
        po->e2e_store_key = key->raw;
    return EXIT_OK;
}

/* One history row as a JSON line. */
static int print_row(const hist_msg *m, void *ud)
{
    (void)ud;
    char when[40];
    time_t secs = (time_t)(m->ts_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03dZ", (int)(m->ts_ms % 1000));
    buf line;
    buf_init(&line);
    buf_append_str(&line, "{");
    json_kv_int(&line, "id", (long)m->id, 1);
    json_kv_string(&line, "with", m->peer, 0);
    json_kv_string(&line, "direction", m->outgoing ? "out" : "in", 0);
    json_kv_string(&line, "from", m->sender, 0);
    json_kv_string(&line, "time", when, 0);
    json_kv_string(&line, "body", m->body, 0);
    json_kv_bool(&line, "encrypted", m->encrypted, 0);
    buf_append_str(&line, "}\n");
    fwrite(line.data, 1, line.len, stdout);
    buf_free(&line);
    return 0;
}

int cmd_history(const cli_opts *o)
{
    char err[512];
    const char *sub = o->nargs > 0 ? o->args[0] : NULL;
    int is_search = sub && !strcmp(sub, "search"), is_show = sub && !strcmp(sub, "show");
    int is_wipe = sub && !strcmp(sub, "wipe");
    if (!is_search && !is_show && !is_wipe) {
        fprintf(stderr, "parley: history needs search TEXT, show --with JID or wipe\n");
        return EXIT_USAGE;
    }
    if ((is_search && o->nargs < 2) || (!is_search && o->nargs > 1) || (is_show && !o->with)) {
        fprintf(stderr, "parley: usage: parley history search TEXT | show --with JID | wipe\n");
        return EXIT_USAGE;
    }
    if (!cli_history_has_key(o)) {
        fprintf(stderr, "parley: no history key: set history_key_file or "
                "history_passphrase_file (or --history-key-file F)\n");
        return EXIT_USAGE;
    }
    hist *h;
    int rc = cli_history_open(o, 0, &h, err, sizeof err);
    if (rc != EXIT_OK) {
        fprintf(stderr, "parley: %s\n", err);
        return rc;
    }
    hist_error he;
    if (is_search) {
        /* the words may come as one argument or several */
        buf text;
        buf_init(&text);
        for (int i = 1; i < o->nargs; i++) {
            buf_append_str(&text, o->args[i]);
            buf_append_str(&text, " ");
        }
        buf_append(&text, "", 1);
        he = hist_search(h, text.data, 0, print_row, NULL, NULL);
        buf_free(&text);
    } else if (is_show) {
        he = hist_show(h, o->with, 0, print_row, NULL, NULL);
    } else {
        he = hist_wipe(h);
    }
    fflush(stdout);
    if (he != HIST_OK) {
        fprintf(stderr, "parley: history: %s\n", hist_errmsg(h));
        rc = he == HIST_ERR_INVALID ? EXIT_USAGE : EXIT_HISTORY;
    }
    hist_close(h);
    return rc;
}
