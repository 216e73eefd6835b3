/* cli_rooms_cmd.c - `parley rooms [--service S]`: sign in (no presence, no roster), ask
 * the group chat service (the one the server lists, or --service) for its rooms, print
 * them as JSON lines {"jid","name"} and sign out. Exit codes as for the other commands. */
#include "../../common/buf.h"
#include "../../common/util.h"
#include "../parley.h"
#include "cli_rooms.h"
#include "exit_codes.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct list_run {
    int online;
    int done;
    parley_error err;
    char errtext[512];
} list_run;

static void on_event(parley *p, const parley_event *ev, void *ud)
{
    list_run *r = ud;
    if (ev->type == PARLEY_EV_CONNECTED)
        r->online = 1;
}

static void on_list(parley *p, const parley_room_item *items, size_t n, parley_error err,
                    const char *error_text, void *ud)
{
    list_run *r = ud;
    r->done = 1;
    r->err = err;
    if (err != PARLEY_OK) {
        snprintf(r->errtext, sizeof r->errtext, "%s",
                 error_text ? error_text : parley_strerror(err));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        buf line;
        buf_init(&line);
        buf_append_str(&line, "{");
        json_kv_string(&line, "jid", items[i].jid, 1);
        json_kv_string(&line, "name", items[i].name, 0);
        buf_append_str(&line, "}\n");
        fwrite(line.data, 1, line.len, stdout);
        buf_free(&line);
    }
    fflush(stdout);
}

static int is_online(parley *p, void *ud)
{
    return ((list_run *)ud)->online;
}

static int is_done(parley *p, void *ud)
{
    return ((list_run *)ud)->done;
}

static int is_offline(parley *p, void *ud)
{
    return parley_get_state(p) == PARLEY_STATE_OFFLINE;
}

/* parley_error's 1..7 are the command's exit codes (parley.h). */
static int exit_of(parley_error e)
{
    return e == PARLEY_OK ? EXIT_OK : e <= PARLEY_ERR_PROTOCOL ? (int)e : EXIT_PROTOCOL;
}

static int fail(parley *p, parley_error e, const char *what)
{
    fprintf(stderr, "parley: %s: %s\n", what,
            parley_last_error(p) == e ? parley_last_error_text(p) : parley_strerror(e));
    return exit_of(e);
}

int cmd_rooms(cli_opts *o)
{
    char err[512];
    char *cfg = o->config ? xstrdup(o->config) : cli_default_config_path();
    int bad = cfg && cli_load_config(cfg, o->config != NULL, o, err, sizeof err) < 0;
    free(cfg);
    if (bad) {
        fprintf(stderr, "parley: %s\n", err);
        return EXIT_USAGE;
    }
    if (!o->jid || !o->password_file) {
        fprintf(stderr, "parley: rooms needs --jid and --password-file (or jid and "
                "password_file in the configuration file)\n");
        return EXIT_USAGE;
    }
    list_run r = {0};
    parley_options po;
    parley_options_init(&po);
    po.jid = o->jid;
    po.password_file = o->password_file;
    po.ca_file = o->ca_file;
    po.server = o->server;
    po.direct_tls = o->direct_tls > 0;
    po.initial_presence = 0;
    po.fetch_roster = 0;
    po.reconnect = 0;
    po.carbons = 0;
    po.on_event = on_event;
    po.userdata = &r;
    parley_error e;
    parley *p = parley_new(&po, &e, err, sizeof err);
    if (!p) {
        fprintf(stderr, "parley: %s\n", err);
        return EXIT_USAGE;
    }
    int budget = (int)((o->timeout >= 0 ? o->timeout : 30) * 1000.0);
    int rc = EXIT_OK;
    parley_connect(p);
    e = parley_run_until(p, is_online, &r, budget);
    if (e != PARLEY_OK) {
        rc = fail(p, e, "cannot sign in");
    } else if ((e = parley_room_list(p, o->service, on_list, &r)) != PARLEY_OK) {
        fprintf(stderr, "parley: %s\n", e == PARLEY_ERR_INVALID
                                            ? "--service needs a service's JID (conference.example.org)"
                                            : "no group chat service found");
        rc = exit_of(e == PARLEY_ERR_INVALID ? PARLEY_ERR_INVALID : PARLEY_ERR_PROTOCOL);
    } else if ((e = parley_run_until(p, is_done, &r, budget)) != PARLEY_OK) {
        rc = fail(p, e, "no answer from the group chat service");
    } else if (r.err != PARLEY_OK) {
        fprintf(stderr, "parley: cannot list the rooms: %s\n", r.errtext);
        rc = exit_of(r.err);
    }
    parley_disconnect(p);
    parley_run_until(p, is_offline, NULL, 3000);
    parley_free(p);
    return rc;
}
