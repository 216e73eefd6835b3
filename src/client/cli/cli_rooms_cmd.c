/* cli_rooms_cmd.c - `parley rooms [--service S]`: sign in (no presence, no roster), ask
 * the group chat service (the one the server lists, or --service) for its rooms, print
 * them as JSON lines {"jid","name"} and sign out. `parley room config|affiliation|destroy
 * ...`: the same sign-in, one owner's or admin's request to a room, its answer. Exit codes
 * as for the other commands. */
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

static int budget_ms(const cli_opts *o)
{
    return (int)((o->timeout >= 0 ? o->timeout : 30) * 1000.0);
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

/* Load the configuration and sign in as for `parley rooms`: the handle (online), or NULL
 * with *rc the exit code (the reason printed). */
static parley *sign_in(cli_opts *o, list_run *r, const char *what, int *rc)
{
    char err[512];
    char *cfg = o->config ? xstrdup(o->config) : cli_default_config_path();
    int bad = cfg && cli_load_config(cfg, o->config != NULL, o, err, sizeof err) < 0;
    free(cfg);
    *rc = EXIT_USAGE;
    if (bad) {
        fprintf(stderr, "parley: %s\n", err);
        return NULL;
    }
    if (!o->jid || !o->password_file) {
        fprintf(stderr, "parley: %s needs --jid and --password-file (or jid and "
                "password_file in the configuration file)\n", what);
        return NULL;
    }
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
    po.userdata = r;
    parley_error e;
    parley *p = parley_new(&po, &e, err, sizeof err);
    if (!p) {
        fprintf(stderr, "parley: %s\n", err);
        return NULL;
    }
    parley_connect(p);
    e = parley_run_until(p, is_online, r, budget_ms(o));
    if (e != PARLEY_OK) {
        *rc = fail(p, e, "cannot sign in");
        parley_free(p);
        return NULL;
    }
    *rc = EXIT_OK;
    return p;
}

static void sign_out(parley *p)
{
    parley_disconnect(p);
    parley_run_until(p, is_offline, NULL, 3000);
    parley_free(p);
}

int cmd_rooms(cli_opts *o)
{
    list_run r = {0};
    int rc;
    parley *p = sign_in(o, &r, "rooms", &rc);
    if (!p)
        return rc;
    parley_error e;
    if ((e = parley_room_list(p, o->service, on_list, &r)) != PARLEY_OK) {
        fprintf(stderr, "parley: %s\n", e == PARLEY_ERR_INVALID
                                            ? "--service needs a service's JID (conference.example.org)"
                                            : "no group chat service found");
        rc = exit_of(e == PARLEY_ERR_INVALID ? PARLEY_ERR_INVALID : PARLEY_ERR_PROTOCOL);
    } else if ((e = parley_run_until(p, is_done, &r, budget_ms(o))) != PARLEY_OK) {
        rc = fail(p, e, "no answer from the group chat service");
    } else if (r.err != PARLEY_OK) {
        fprintf(stderr, "parley: cannot list the rooms: %s\n", r.errtext);
        rc = exit_of(r.err);
    }
    sign_out(p);
    return rc;
}

/* ------------------------------------------------------------------ parley room ... */

static void on_room_done(parley *p, const char *room, parley_error err, const char *error_text,
                         void *ud)
{
    list_run *r = ud;
    r->done = 1;
    r->err = err;
    if (err != PARLEY_OK)
        snprintf(r->errtext, sizeof r->errtext, "%s",
                 error_text ? error_text : parley_strerror(err));
}

static void on_room_config(parley *p, const char *room, const parley_room_field *fields,
                           size_t n, parley_error err, const char *error_text, void *ud)
{
    on_room_done(p, room, err, error_text, ud);
    for (size_t i = 0; err == PARLEY_OK && i < n; i++) {
        const char *key, *value;
        if (!room_config_describe(&fields[i], &key, &value))
            continue;
        buf line;
        buf_init(&line);
        buf_append_str(&line, "{");
        json_kv_string(&line, "key", key, 1);
        json_kv_string(&line, "value", value, 0);
        json_kv_string(&line, "label", fields[i].label, 0);
        buf_append_str(&line, "}\n");
        fwrite(line.data, 1, line.len, stdout);
        buf_free(&line);
    }
    fflush(stdout);
}

static const char room_usage[] =
    "usage: parley room config ROOM [KEY VALUE] | room affiliation ROOM JID "
    "owner|admin|member|none|outcast | room destroy ROOM [REASON]";

int cmd_room(cli_opts *o)
{
    const char *action = o->nargs > 0 ? o->args[0] : "";
    const char *room = o->nargs > 1 ? o->args[1] : NULL;
    int is_config = !strcmp(action, "config"), is_aff = !strcmp(action, "affiliation");
    int is_destroy = !strcmp(action, "destroy");
    parley_room_field f[2];
    char vars[2][64];
    const char *why = NULL;
    size_t nf = 0;
    if (is_config && o->nargs == 4 && (nf = room_config_fields(o->args[2], o->args[3], f, vars,
                                                               &why)) == 0) {
        fprintf(stderr, "parley: room config %s: %s\n", o->args[2], why);
        return EXIT_USAGE;
    }
    if (!room || (is_config && o->nargs != 2 && o->nargs != 4) || (is_aff && o->nargs != 4) ||
        (is_destroy && o->nargs > 3) || (!is_config && !is_aff && !is_destroy)) {
        fprintf(stderr, "parley: %s\n", room_usage);
        return EXIT_USAGE;
    }
    list_run r = {0};
    int rc;
    parley *p = sign_in(o, &r, "room", &rc);
    if (!p)
        return rc;
    parley_error e = is_aff ? parley_room_set_affiliation(p, room, o->args[2], o->args[3], NULL,
                                                          on_room_done, &r)
                     : is_destroy ? parley_room_destroy(p, room, o->nargs > 2 ? o->args[2] : NULL,
                                                        on_room_done, &r)
                     : nf ? parley_room_config_set(p, room, f, nf, on_room_done, &r)
                          : parley_room_config_get(p, room, on_room_config, &r);
    if (e == PARLEY_ERR_INVALID) {
        fprintf(stderr, "parley: %s\n", room_usage);
        rc = EXIT_USAGE;
    } else if (e != PARLEY_OK) {
        rc = fail(p, e, "cannot ask the room");
    } else if ((e = parley_run_until(p, is_done, &r, budget_ms(o))) != PARLEY_OK) {
        rc = fail(p, e, "no answer from the room");
    } else if (r.err != PARLEY_OK) {
        fprintf(stderr, "parley: %s %s: %s\n", action, room, r.errtext);
        rc = exit_of(r.err);
    }
    sign_out(p);
    return rc;
}
