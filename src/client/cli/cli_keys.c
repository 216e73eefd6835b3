/* cli_keys.c - `parley keys` (cli_keys.h). The key store is opened through libparley
 * (parley_new opens it; nothing connects), so this works with the interactive client
 * closed or offline. Output: one JSON line per device, for scripts and tests alike. */
#include "cli_keys.h"

#include "../../common/buf.h"
#include "../parley.h"
#include "cli_history.h"
#include "exit_codes.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int print_device(const parley_e2e_device *d, void *ud)
{
    (void)ud;
    static const char *trust[] = {"untrusted", "blind", "verified"};
    buf line;
    buf_init(&line);
    buf_append_str(&line, "{");
    json_kv_string(&line, "jid", d->jid, 1);
    json_kv_int(&line, "device", (long)d->device_id, 0);
    json_kv_string(&line, "fingerprint", d->fingerprint, 0);
    json_kv_string(&line, "trust", trust[d->trust + 1], 0);
    json_kv_bool(&line, "key_changed", d->key_changed, 0);
    json_kv_bool(&line, "active", d->active, 0);
    json_kv_bool(&line, "session", d->has_session, 0);
    json_kv_string(&line, "label", d->label, 0);
    buf_append_str(&line, "}\n");
    fwrite(line.data, 1, line.len, stdout);
    buf_free(&line);
    return 0;
}

int cmd_keys(const cli_opts *o)
{
    char err[512];
    const char *sub = o->nargs > 0 ? o->args[0] : NULL;
    int trust = sub && strcmp(sub, "trust") == 0;
    if ((sub && !trust) || (trust && o->nargs < 3)) {
        fprintf(stderr, "parley: usage: parley keys [--with JID] | parley keys trust JID "
                        "FINGERPRINT\n");
        return EXIT_USAGE;
    }
    if (!cli_history_has_key(o)) {
        fprintf(stderr, "parley: no key store: end-to-end keys are kept only with a history "
                        "key (history_key_file or history_passphrase_file)\n");
        return EXIT_USAGE;
    }
    parley_options po;
    parley_options_init(&po);
    po.jid = o->jid;
    po.password = "unused"; /* nothing connects */
    hist_key key;
    char *path = NULL;
    int rc = cli_e2e_options(o, &po, &key, &path, err, sizeof err);
    if (rc != EXIT_OK) {
        fprintf(stderr, "parley: %s\n", err);
        return rc;
    }
    parley_error e;
    parley *p = parley_new(&po, &e, err, sizeof err);
    hist_key_clear(&key);
    free(path);
    if (!p) {
        fprintf(stderr, "parley: %s\n", err);
        return EXIT_HISTORY;
    }
    rc = EXIT_OK;
    if (trust) {
        /* the fingerprint may come as one word or as its eight groups */
        char fp[200] = "";
        for (int i = 2; i < o->nargs; i++)
            snprintf(fp + strlen(fp), sizeof fp - strlen(fp), "%s", o->args[i]);
        if (parley_e2e_trust(p, o->args[1], fp, PARLEY_TRUST_VERIFIED) != PARLEY_OK) {
            fprintf(stderr, "parley: %s has no known device with fingerprint %s\n", o->args[1], fp);
            rc = EXIT_USAGE;
        } else {
            printf("verified: %s %s\n", o->args[1], fp);
        }
    } else {
        unsigned long id;
        char fp[80];
        if (parley_e2e_own(p, &id, fp, sizeof fp) == PARLEY_OK) {
            buf line;
            buf_init(&line);
            buf_append_str(&line, "{");
            json_kv_string(&line, "jid", o->jid, 1);
            json_kv_int(&line, "device", (long)id, 0);
            json_kv_string(&line, "fingerprint", fp, 0);
            json_kv_bool(&line, "own", 1, 0);
            buf_append_str(&line, "}\n");
            fwrite(line.data, 1, line.len, stdout);
            buf_free(&line);
        } else {
            fprintf(stderr, "parley: this account has no OMEMO keys here yet (they are made at "
                            "the first sign-in that allows end-to-end encryption)\n");
        }
        parley_e2e_devices(p, o->with, print_device, NULL);
    }
    fflush(stdout);
    parley_free(p);
    return rc;
}
