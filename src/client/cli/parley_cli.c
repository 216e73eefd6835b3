/* parley_cli.c - the `parley` command: the interactive client (`chat`, the default),
 * scriptable `send`, `listen` (JSON lines), `tls-info` and `history`, on libparley, with
 * exit codes that say what failed. */
#include "../../common/buf.h"
#include "../../common/util.h"
#include "../../common/version.h"
#include "../parley.h"
#include "chat.h"
#include "cli_files.h"
#include "cli_history.h"
#include "cli_keys.h"
#include "cli_rooms.h"
#include "exit_codes.h"
#include "json.h"
#include "options.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "Usage: parley [COMMAND] [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  chat                the interactive terminal client (the default; /help inside)\n"
    "  send --to JID --message TEXT [--type chat|normal|headline]\n"
    "                      send one message; exits once the server has accepted it\n"
    "  listen [--count N] [--timeout S]\n"
    "                      print received messages as JSON lines:\n"
    "                      {\"from\",\"to\",\"type\",\"id\",\"body\",\"encrypted\",\"tls\"}\n"
    "                      (+ \"e2e_error\" when an encrypted message could not be\n"
    "                      decrypted or the policy refused it: then no body)\n"
    "                      exits after N messages, or after S seconds; reconnects\n"
    "                      (with back-off) if the session is lost\n"
    "      --keepalive S   ping the server after S seconds of silence; no answer within\n"
    "                      S more seconds: the connection is dead (default 60)\n"
    "  send-file --to JID PATH\n"
    "                      upload a file (XEP-0363, over HTTPS to your server) and send\n"
    "                      its link; a refusal names the policy that refused it\n"
    "      --room          JID is a group chat: join it, send the link there, leave\n"
    "  screenshot --to JID [--file IMAGE] [--room]\n"
    "                      capture the screen (ImageMagick 'import' under X11) or send\n"
    "                      IMAGE, marked as a screen capture (the screen_capture policy)\n"
    "  tls-info [--json]   print the client-to-server lock: TLS version, cipher, key size,\n"
    "                      certificate and authentication mechanism\n"
    "  keys [--with JID]   this device's end-to-end (OMEMO) fingerprint and the devices\n"
    "                      known, with their trust (from the local key store, offline)\n"
    "  keys trust JID FINGERPRINT\n"
    "                      mark the device of JID with this fingerprint verified\n"
    "  history search TEXT | history show --with JID | history wipe\n"
    "                      the local history (encrypted), as JSON lines:\n"
    "                      {\"id\",\"with\",\"direction\",\"from\",\"time\",\"body\",\"encrypted\"}\n"
    "  rooms [--service S] the group chats the server's service (or S) lists, as JSON\n"
    "                      lines {\"jid\",\"name\"}; /join in the interactive client\n"
    "  room config ROOM [KEY VALUE]\n"
    "                      a room's settings as JSON lines {\"key\",\"value\",\"label\"}, or\n"
    "                      change one (keys as /config: members-only on, max-users 50...)\n"
    "  room affiliation ROOM JID owner|admin|member|none|outcast\n"
    "  room destroy ROOM [REASON]\n"
    "                      grant or revoke an affiliation; destroy the room (owners)\n"
    "\n"
    "Account (or the same keys in the configuration file):\n"
    "  --jid JID               user@domain[/resource]           (jid)\n"
    "  --password-file F       first line is the password      (password_file)\n"
    "  --ca-file F             trust these CAs, not the system store (ca_file)\n"
    "  --server HOST:PORT[,HOST:PORT...]  addresses tried in turn (server)\n"
    "  --direct-tls | --starttls          TLS from the first byte (XEP-0368) or STARTTLS\n"
    "                                     (direct_tls = true|false; default STARTTLS)\n"
    "  --config F              configuration file (default ~/.config/parley/parley.conf)\n"
    "  --timeout S             overall limit in seconds (send and tls-info default: 30)\n"
    "\n"
    "Local history (chat, send, listen, history; or the same keys in the file):\n"
    "  --history default|disabled|archive  kept until sign-out / not kept once a window\n"
    "                          is closed / kept across sign-outs         (history)\n"
    "  --history-key-file F    raw 256-bit key, mode 600       (history_key_file)\n"
    "  --history-passphrase-file F  passphrase (PBKDF2), mode 600 (history_passphrase_file)\n"
    "  --data-dir D            default ~/.local/share/parley   (data_dir)\n"
    "  -v, --verbose           log the connection's progress to stderr\n"
    "  -h, --help, --version\n"
    "\n"
    "Exit codes:\n"
    "  0 ok   1 usage   2 server unreachable   3 certificate not trusted\n"
    "  4 authentication failed   5 refused by policy   6 timeout   7 other protocol error\n"
    "  8 local history unusable (wrong key, damaged database, key file not private)\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int exit_code(parley_error e)
{
    switch (e) {
    case PARLEY_OK: return EXIT_OK;
    case PARLEY_ERR_INVALID: return EXIT_USAGE;
    case PARLEY_ERR_UNREACHABLE: return EXIT_UNREACHABLE;
    case PARLEY_ERR_CERTIFICATE: return EXIT_CERTIFICATE;
    case PARLEY_ERR_AUTH: return EXIT_AUTH;
    case PARLEY_ERR_POLICY: return EXIT_POLICY;
    case PARLEY_ERR_TIMEOUT: return EXIT_TIMEOUT;
    default: return EXIT_PROTOCOL;
    }
}

static void log_line(int level, const char *line, void *ud)
{
    (void)ud;
    static const char *names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "parley: %s: %s\n", names[level < 0 || level > 3 ? 3 : level], line);
}

/* State shared by the commands' event handler. */
typedef struct app {
    const cli_opts *opt;
    parley *p;
    int online;
    int announced;      /* "listening as" printed for this session */
    long received;
    /* send */
    char msg_id[64];
    int msg_sent;
    int left;           /* PARLEY_EV_SENT for msg_id */
    int left_encrypted;
    int confirmed;
    parley_error send_err;
    char send_errtext[256];
    /* local history: NULL when no key is configured */
    hist *h;
    hist_mode mode;
} app;

/* send and listen keep what a chat window would: nothing in `disabled` mode. */
static void record(app *a, const char *peer, int outgoing, const char *sender,
                   const char *body, int encrypted, const char *id)
{
    if (!a->h || a->mode == HIST_MODE_DISABLED || !peer || !body)
        return;
    hist_msg m = {.peer = peer, .outgoing = outgoing, .sender = sender, .body = body,
                  .encrypted = encrypted, .stanza_id = id};
    if (hist_add(a->h, &m) != HIST_OK)
        fprintf(stderr, "parley: history: %s\n", hist_errmsg(a->h));
}

static void print_message(app *a, const parley_event *ev)
{
    parley_tls_info ti;
    char tls[128] = "";
    if (parley_tls_info_get(a->p, &ti) == PARLEY_OK)
        snprintf(tls, sizeof tls, "%s %s", ti.version, ti.cipher);
    buf line;
    buf_init(&line);
    buf_append_str(&line, "{");
    json_kv_string(&line, "from", ev->from, 1);
    json_kv_string(&line, "to", ev->to ? ev->to : parley_bound_jid(a->p), 0);
    json_kv_string(&line, "type", ev->msg_type, 0);
    json_kv_string(&line, "id", ev->id, 0);
    json_kv_string(&line, "body", ev->body, 0);
    json_kv_bool(&line, "encrypted", ev->encrypted, 0);
    json_kv_string(&line, "tls", tls, 0);
    if (ev->e2e_error)
        json_kv_string(&line, "e2e_error", ev->e2e_error, 0);
    if (ev->encrypted && ev->e2e_device) {
        json_kv_int(&line, "device", (long)ev->e2e_device, 0);
        json_kv_string(&line, "trust", ev->e2e_trust > 0 ? "verified"
                                        : ev->e2e_trust < 0 ? "untrusted" : "blind", 0);
        if (ev->e2e_key_changed)
            json_kv_bool(&line, "key_changed", 1, 0);
    }
    if (ev->error_text)
        json_kv_string(&line, "error", ev->error_text, 0);
    buf_append_str(&line, "}\n");
    fwrite(line.data, 1, line.len, stdout);
    fflush(stdout);
    buf_free(&line);
}

static void on_event(parley *p, const parley_event *ev, void *ud)
{
    app *a = ud;
    switch (ev->type) {
    case PARLEY_EV_CONNECTED: {
        a->online = 1;
        parley_tls_info ti;
        if (parley_tls_info_get(p, &ti) == PARLEY_OK && a->opt->verbose)
            fprintf(stderr, "parley: online as %s via %s (%s %s, %d-bit, %s)\n",
                    parley_bound_jid(p), ti.server, ti.version, ti.cipher, ti.key_bits,
                    ti.sasl_mechanism);
        break;
    }
    case PARLEY_EV_DISCONNECTED:
        a->online = 0;
        a->announced = 0;
        if (ev->retry_in_ms >= 0)
            fprintf(stderr, "parley: disconnected (%s); reconnecting in %d ms\n",
                    ev->error_text ? ev->error_text : "", ev->retry_in_ms);
        break;
    case PARLEY_EV_SENT:
        if (ev->id && strcmp(ev->id, a->msg_id) == 0) {
            a->left = 1;
            a->left_encrypted = ev->encrypted;
        }
        break;
    case PARLEY_EV_SECURITY:
        fprintf(stderr, "parley: e2e: %s\n", ev->error_text ? ev->error_text : "");
        break;
    case PARLEY_EV_MESSAGE:
        if (ev->id && strcmp(ev->id, a->msg_id) == 0 && ev->error != PARLEY_OK) {
            a->send_err = ev->error;
            snprintf(a->send_errtext, sizeof a->send_errtext, "%s",
                     ev->error_text ? ev->error_text : "refused");
            break;
        }
        if (strcmp(a->opt->command, "listen") == 0) {
            print_message(a, ev);
            if (ev->body || ev->e2e_error)
                a->received++;
            if (ev->body && ev->error == PARLEY_OK &&
                (!ev->msg_type || strcmp(ev->msg_type, "error") != 0))
                record(a, ev->from, 0, ev->from, ev->body, ev->encrypted, ev->id);
        }
        break;
    default:
        break;
    }
}

static int is_online(parley *p, void *ud)
{
    app *a = ud;
    return a->online || stop_requested;
}

static int send_done(parley *p, void *ud)
{
    app *a = ud;
    return a->confirmed || a->send_err != PARLEY_OK || stop_requested;
}

static int left_done(parley *p, void *ud)
{
    app *a = ud;
    return a->left || a->send_err != PARLEY_OK || stop_requested;
}

static int listen_done(parley *p, void *ud)
{
    app *a = ud;
    /* "listening" once peers can reach us, end-to-end keys published included */
    if (a->online && !a->announced && parley_e2e_ready(p)) {
        a->announced = 1;
        fprintf(stderr, "parley: listening as %s\n", parley_bound_jid(p));
    }
    return (a->opt->count > 0 && a->received >= a->opt->count) || stop_requested;
}

static int is_offline(parley *p, void *ud)
{
    return parley_get_state(p) == PARLEY_STATE_OFFLINE;
}

static int fail(parley *p, parley_error e)
{
    if (parley_last_error(p) == e)
        fprintf(stderr, "parley: %s: %s\n", parley_strerror(e), parley_last_error_text(p));
    else if (e == PARLEY_ERR_TIMEOUT)
        fprintf(stderr, "parley: timed out: %s\n",
                parley_get_state(p) == PARLEY_STATE_ONLINE ? "no answer from the server"
                                                          : "could not sign in in time");
    else
        fprintf(stderr, "parley: %s\n", parley_strerror(e));
    return exit_code(e);
}

static void on_ping_answer(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    app *a = ud;
    if (err == PARLEY_OK || res) /* any answer: the server has processed the message */
        a->confirmed = 1;
    else if (a->send_err == PARLEY_OK)
        a->send_err = err;
}

static int timeout_ms(const cli_opts *o, double dflt)
{
    double s = o->timeout >= 0 ? o->timeout : dflt;
    return s < 0 ? -1 : (int)(s * 1000.0);
}

static void graceful_close(parley *p)
{
    parley_disconnect(p);
    parley_run_until(p, is_offline, NULL, 3000);
}

static int cmd_send(app *a)
{
    const cli_opts *o = a->opt;
    parley *p = a->p;
    int budget = timeout_ms(o, 30);
    parley_error e = parley_run_until(p, is_online, a, budget);
    if (stop_requested)
        return EXIT_USAGE;
    if (e != PARLEY_OK)
        return fail(p, e);
    e = parley_send_message(p, o->to, o->type ? o->type : "chat", o->message, a->msg_id,
                            sizeof a->msg_id);
    if (e != PARLEY_OK)
        return fail(p, e);
    a->msg_sent = 1;
    /* end-to-end encryption may first fetch device lists and bundles */
    e = parley_run_until(p, left_done, a, budget);
    if (e == PARLEY_OK && a->send_err != PARLEY_OK) {
        fprintf(stderr, "parley: message to %s refused: %s\n", o->to,
                a->send_errtext[0] ? a->send_errtext : parley_strerror(a->send_err));
        graceful_close(p);
        return exit_code(a->send_err);
    }
    if (e != PARLEY_OK)
        return fail(p, e);
    if (o->verbose)
        fprintf(stderr, "parley: sent %s\n", a->left_encrypted ? "end-to-end encrypted (OMEMO)"
                                                                : "without end-to-end encryption");
    /* Stanzas are processed in order: the answer to a ping sent after the message means
     * the server has taken the message (or bounced it, which arrives first). */
    const char *bound = parley_bound_jid(p);
    const char *domain = strchr(bound, '@') ? strchr(bound, '@') + 1 : bound;
    char iq[1200];
    snprintf(iq, sizeof iq, "<iq type='get' to='%.*s'><ping xmlns='urn:xmpp:ping'/></iq>",
             (int)strcspn(domain, "/"), domain);
    e = parley_send_iq(p, iq, on_ping_answer, a, budget > 0 ? budget : 30000, NULL, 0);
    if (e != PARLEY_OK)
        return fail(p, e);
    e = parley_run_until(p, send_done, a, budget);
    if (e == PARLEY_OK && a->send_err != PARLEY_OK) {
        fprintf(stderr, "parley: message to %s refused: %s\n", o->to,
                a->send_errtext[0] ? a->send_errtext : parley_strerror(a->send_err));
        graceful_close(p);
        return exit_code(a->send_err);
    }
    if (e != PARLEY_OK)
        return fail(p, e);
    record(a, o->to, 1, parley_bound_jid(p), o->message, a->left_encrypted, a->msg_id);
    graceful_close(p);
    return EXIT_OK;
}

static int cmd_listen(app *a)
{
    const cli_opts *o = a->opt;
    parley *p = a->p;
    int budget = timeout_ms(o, -1);
    parley_error e = parley_run_until(p, listen_done, a, budget);
    if (e == PARLEY_ERR_TIMEOUT && o->count == 0) {
        graceful_close(p);
        return EXIT_OK; /* listened for the time asked */
    }
    if (e != PARLEY_OK) {
        if (e == PARLEY_ERR_TIMEOUT)
            fprintf(stderr, "parley: timed out after %ld of %ld messages\n", a->received, o->count);
        else
            fail(p, e);
        graceful_close(p);
        return exit_code(e);
    }
    graceful_close(p);
    return EXIT_OK;
}

static int cmd_tls_info(app *a)
{
    parley *p = a->p;
    parley_error e = parley_run_until(p, is_online, a, timeout_ms(a->opt, 30));
    if (stop_requested)
        return EXIT_USAGE;
    if (e != PARLEY_OK)
        return fail(p, e);
    parley_tls_info ti;
    if (parley_tls_info_get(p, &ti) != PARLEY_OK)
        return fail(p, PARLEY_ERR_STATE);
    if (a->opt->json) {
        buf line;
        buf_init(&line);
        buf_append_str(&line, "{");
        json_kv_string(&line, "server", ti.server, 1);
        json_kv_string(&line, "protocol", ti.version, 0);
        json_kv_string(&line, "cipher", ti.cipher, 0);
        json_kv_int(&line, "key_bits", ti.key_bits, 0);
        json_kv_bool(&line, "verified", ti.verified, 0);
        json_kv_string(&line, "certificate", ti.peer_subject, 0);
        json_kv_string(&line, "sasl", ti.sasl_mechanism, 0);
        json_kv_string(&line, "channel_binding", ti.channel_binding[0] ? ti.channel_binding : NULL, 0);
        json_kv_string(&line, "jid", parley_bound_jid(p), 0);
        buf_append_str(&line, "}\n");
        fwrite(line.data, 1, line.len, stdout);
        buf_free(&line);
    } else {
        printf("server:          %s\n", ti.server);
        printf("jid:             %s\n", parley_bound_jid(p));
        printf("protocol:        %s\n", ti.version);
        printf("cipher:          %s\n", ti.cipher);
        printf("key bits:        %d\n", ti.key_bits);
        printf("verified:        %s\n", ti.verified ? "yes" : "no");
        printf("certificate:     %s\n", ti.peer_subject);
        printf("authentication:  %s%s%s%s\n", ti.sasl_mechanism,
               ti.channel_binding[0] ? " (channel binding " : "", ti.channel_binding,
               ti.channel_binding[0] ? ")" : "");
    }
    fflush(stdout);
    graceful_close(p);
    return EXIT_OK;
}

static int cmd_file(app *a, int screenshot)
{
    const cli_opts *o = a->opt;
    char shot[512] = "", err[512];
    const char *path = screenshot ? o->file : o->args[0];
    if (screenshot && !path) {
        if (cli_capture_screen(shot, sizeof shot, err, sizeof err) < 0) {
            fprintf(stderr, "parley: %s\n", err);
            graceful_close(a->p);
            return EXIT_USAGE;
        }
        path = shot;
    }
    char name[300];
    if (screenshot) {
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        strftime(when, sizeof when, "%Y%m%d-%H%M%S", gmtime_r(&now, &tm) ? &tm : NULL);
        const char *dot = strrchr(cli_base_name(path), '.');
        snprintf(name, sizeof name, "screenshot-%s%s", when, dot ? dot : ".png");
    } else {
        snprintf(name, sizeof name, "%s", cli_base_name(path));
    }
    char url[1024], why[800];
    int budget = timeout_ms(o, 30);
    int rc = cli_send_file(a->p, o->ca_file, o->to, o->room, path, name, screenshot,
                           budget > 0 ? budget : 30000, url, sizeof url, why, sizeof why);
    if (shot[0])
        unlink(shot);
    if (why[0])
        fprintf(stderr, "parley: %s\n", why);
    if (rc == EXIT_OK) {
        printf("%s\n", url);
        record(a, o->to, 1, parley_bound_jid(a->p), url, 0, NULL);
    }
    graceful_close(a->p);
    return rc;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "parley: %s\n\n%s", msg, usage_text);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    cli_opts o;
    char err[512];
    int rc;
    if (cli_parse_args(argc, argv, &o, err, sizeof err) < 0) {
        cli_opts_free(&o);
        return usage_error(err);
    }
    if (o.help) {
        fputs(usage_text, stdout);
        cli_opts_free(&o);
        return EXIT_OK;
    }
    if (o.version) {
        printf("parley %s\n", PARLEY_VERSION);
        cli_opts_free(&o);
        return EXIT_OK;
    }
    if (!o.command)
        o.command = xstrdup("chat");
    if (!strcmp(o.command, "rooms") || !strcmp(o.command, "room")) {
        /* cli_rooms_cmd.c: reads the configuration itself */
        rc = !strcmp(o.command, "rooms") ? cmd_rooms(&o) : cmd_room(&o);
        cli_opts_free(&o);
        return rc;
    }
    int is_send = !strcmp(o.command, "send"), is_listen = !strcmp(o.command, "listen");
    int is_info = !strcmp(o.command, "tls-info"), is_chat = !strcmp(o.command, "chat");
    int is_history = !strcmp(o.command, "history"), is_keys = !strcmp(o.command, "keys");
    int is_file = !strcmp(o.command, "send-file"), is_shot = !strcmp(o.command, "screenshot");
    if (!is_send && !is_listen && !is_info && !is_chat && !is_history && !is_keys && !is_file &&
        !is_shot) {
        snprintf(err, sizeof err, "unknown command '%s'", o.command);
        cli_opts_free(&o);
        return usage_error(err);
    }
    char *cfg = o.config ? strdup(o.config) : cli_default_config_path();
    if (cfg && cli_load_config(cfg, o.config != NULL, &o, err, sizeof err) < 0) {
        free(cfg);
        cli_opts_free(&o);
        return usage_error(err);
    }
    free(cfg);
    if ((is_file && (!o.to || o.nargs != 1)) || (is_shot && (!o.to || o.nargs))) {
        cli_opts_free(&o);
        return usage_error(is_file ? "send-file needs --to JID and one PATH"
                                   : "screenshot needs --to JID (and --file IMAGE without X11)");
    }
    if (is_send && (!o.to || !o.message)) {
        cli_opts_free(&o);
        return usage_error("send needs --to JID and --message TEXT");
    }
    hist_mode mode;
    if (cli_history_mode(&o, &mode, err, sizeof err) < 0) {
        cli_opts_free(&o);
        return usage_error(err);
    }
    if (is_history || is_keys) {
        if (!o.jid) {
            cli_opts_free(&o);
            return usage_error("history needs the account: --jid (or jid in the "
                               "configuration file)");
        }
        rc = is_keys ? cmd_keys(&o) : cmd_history(&o);
        cli_opts_free(&o);
        return rc;
    }
    if (!o.jid || !o.password_file) {
        cli_opts_free(&o);
        return usage_error("the account needs --jid and --password-file (or jid and "
                           "password_file in the configuration file)");
    }
    if (is_chat) {
        rc = chat_run(&o, mode);
        cli_opts_free(&o);
        return rc;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    app a;
    memset(&a, 0, sizeof a);
    a.opt = &o;
    a.mode = mode;
    /* Before connecting: a wrong key or a damaged history is reported, not a message
     * half-recorded. Without a key, send and listen record nothing. */
    if ((is_send || is_listen) && (rc = cli_history_open(&o, 0, &a.h, err, sizeof err)) != EXIT_OK) {
        fprintf(stderr, "parley: %s\n", err);
        cli_opts_free(&o);
        return rc;
    }
    parley_options po;
    parley_options_init(&po);
    po.jid = o.jid;
    po.password_file = o.password_file;
    po.ca_file = o.ca_file;
    po.server = o.server;
    po.direct_tls = o.direct_tls > 0;
    po.initial_presence = is_listen;   /* only a listener needs to be available */
    po.fetch_roster = is_listen;
    po.reconnect = is_listen ? 1 : 0;  /* a listener survives a lost session */
    po.carbons = 0; /* scripts see what reaches them, not their other devices' traffic */
    if (o.keepalive > 0) {
        po.ping_interval_ms = (int)(o.keepalive * 1000.0);
        po.ping_timeout_ms = po.ping_interval_ms;
    }
    po.on_event = on_event;
    po.on_log = o.verbose ? log_line : NULL;
    po.userdata = &a;
    /* the end-to-end key store beside the history, with its key; tls-info needs none */
    hist_key e2e_key;
    char *e2e_path = NULL;
    po.e2e = !is_info;
    if (po.e2e && (rc = cli_e2e_options(&o, &po, &e2e_key, &e2e_path, err, sizeof err)) != EXIT_OK) {
        fprintf(stderr, "parley: %s\n", err);
        hist_close(a.h);
        cli_opts_free(&o);
        return rc;
    }
    parley_error e;
    a.p = parley_new(&po, &e, err, sizeof err);
    if (po.e2e)
        hist_key_clear(&e2e_key);
    free(e2e_path);
    if (!a.p) {
        fprintf(stderr, "parley: %s\n", err);
        hist_close(a.h);
        cli_opts_free(&o);
        return po.e2e && cli_history_has_key(&o) ? EXIT_HISTORY : EXIT_USAGE;
    }
    parley_connect(a.p);
    if (is_file || is_shot)
        rc = cmd_file(&a, is_shot);
    else if (is_send)
        rc = cmd_send(&a);
    else if (is_listen)
        rc = cmd_listen(&a);
    else
        rc = cmd_tls_info(&a);
    parley_free(a.p);
    hist_close(a.h);
    cli_opts_free(&o);
    return rc;
}
