/* chat_commands.c - the interactive client's keys (Enter, Alt-N, Ctrl-N/P, PageUp...)
 * and /commands, each a small call into libparley or the history. */

#include "../../common/util.h"
#include "chat_format.h"
#include "cli_files.h"
#include "chat_internal.h"
#include "cli_rooms.h"

#define NCURSES_WIDECHAR 1
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ commands */

static void send_text(ui *u, const char *text)
{
    win *w = &u->wins[u->cur];
    if (!w->jid) {
        INFO(u, "this is the console: /msg JID opens a conversation");
        return;
    }
    char id[64];
    u->sending_text = text;
    u->sending_jid = w->jid;
    u->sent_now = 0;
    parley_error e = parley_send_message(u->p, w->jid, "chat", text, id, sizeof id);
    u->sending_text = u->sending_jid = NULL;
    if (e != PARLEY_OK) {
        INFO(u, "not sent: %s", parley_strerror(e));
        return;
    }
    /* shown (and kept) when PARLEY_EV_SENT says it left and how; the event may already
     * have come, from inside parley_send_message */
    if (!u->sent_now) {
        u->sends = xrealloc(u->sends, (u->nsends + 1) * sizeof *u->sends);
        u->sends[u->nsends++] = (pending_send){xstrdup(id), xstrdup(w->jid), xstrdup(text)};
    }
}

static int print_device(const parley_e2e_device *d, void *ud)
{
    ui *u = ud;
    static const char *trust[] = {"untrusted", "trusted blindly", "verified"};
    INFO(u, "%s device %lu%s%s: %s [%s%s%s]", d->jid, d->device_id, d->label[0] ? " " : "",
         d->label, d->fingerprint[0] ? d->fingerprint : "(identity key not known yet)",
         trust[d->trust + 1], d->key_changed ? ", KEY CHANGED" : "",
         d->active ? "" : ", not in the device list");
    return 0;
}

static void cmd_fingerprint(ui *u, const char *args)
{
    char jid[512], fp[80];
    unsigned long id;
    if (parley_e2e_own(u->p, &id, fp, sizeof fp) == PARLEY_OK)
        INFO(u, "this device (%lu): %s", id, fp);
    else
        INFO(u, "this device has no OMEMO keys yet");
    const char *rest = args;
    const char *with = fmt_next_word(&rest, jid, sizeof jid) ? jid : u->wins[u->cur].jid;
    if (with && parley_e2e_devices(u->p, with, print_device, u) != PARLEY_OK)
        INFO(u, "no end-to-end keys known");
}

static void cmd_trust(ui *u, const char *args)
{
    char jid[512];
    const char *rest = args;
    if (!fmt_next_word(&rest, jid, sizeof jid) || !*rest) {
        INFO(u, "usage: /trust JID FINGERPRINT (as /fingerprint JID shows it; compare it "
                "with your contact first)");
        return;
    }
    if (parley_e2e_trust(u->p, jid, rest, PARLEY_TRUST_VERIFIED) != PARLEY_OK)
        INFO(u, "%s has no device with fingerprint %s", jid, rest);
    else
        INFO(u, "the device of %s with fingerprint %s is now verified", jid, rest);
}

static void on_iq_answer(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    ui *u = ud;
    if (err != PARLEY_OK)
        CONSOLE(u, "roster change refused: %s", parley_strerror(err));
}

static int print_search_row(const hist_msg *m, void *ud)
{
    ui *u = ud;
    time_t t = (time_t)(m->ts_ms / 1000);
    struct tm tm;
    char when[32] = "";
    if (localtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d", &tm);
    char *who = m->outgoing ? xstrdup("me") : xstrdup(m->peer);
    char *label = xasprintf("%s %s", when, m->peer);
    win_info(u, &u->wins[u->cur], "%s:", label);
    win_message(u, &u->wins[u->cur], t, who, m->body, m->encrypted);
    free(label);
    free(who);
    return 0;
}

static const char help_text[] =
    "commands: /msg JID [TEXT] open a conversation | /close close it | /win N switch "
    "(also Alt-N, Ctrl-N/Ctrl-P) | /add JID [NAME] | /accept JID | /deny JID | /remove JID "
    "| /status online|away|dnd|xa [TEXT] | /search TEXT | /sendfile PATH upload a file and "
    "send its link | /get N download received file N here | /tls the connection's security "
    "| /fingerprint [JID] end-to-end keys | /trust JID FINGERPRINT mark a device verified "
    "| /quit sign out | PageUp/PageDown scroll | //text sends /text\n"
    "locks: the status bar's lock is TLS to the server; a message or conversation marked "
    "with the end-to-end lock is readable only by its parties; unmarked messages "
    "([server-readable]) are readable by the server.";

static void cmd_tls(ui *u)
{
    parley_tls_info ti;
    if (parley_tls_info_get(u->p, &ti) != PARLEY_OK) {
        INFO(u, "not connected");
        return;
    }
    INFO(u, "client-to-server: %s, %s, %d-bit key (%s)", ti.version,
         fmt_aead_name(ti.cipher), ti.key_bits, ti.cipher);
    INFO(u, "server %s", ti.server);
    INFO(u, "server certificate: %s (%s)", ti.peer_subject,
         ti.verified ? "chain and name verified" : "NOT verified");
    INFO(u, "signed in with %s%s%s%s", ti.sasl_mechanism,
         ti.channel_binding[0] ? ", channel binding " : "", ti.channel_binding, "");
}

/* Blocking for the transfer (the screen is redrawn after): a progress display is left
 * for later. */
static void cmd_sendfile(ui *u, const char *path)
{
    win *w = &u->wins[u->cur];
    if (!w->jid || !*path) {
        INFO(u, w->jid ? "usage: /sendfile PATH" : "open a conversation first (/msg JID)");
        return;
    }
    if (w->room && !parley_room_nick(u->p, w->jid)) {
        INFO(u, "not sent: you are not in this room (/join it)");
        return;
    }
    char url[1024], why[800];
    INFO(u, "uploading %s ...", path);
    chat_draw(u);
    if (cli_send_file(u->p, u->o->ca_file, w->jid, w->room, path, cli_base_name(path), 0,
                      60000, url, sizeof url, why, sizeof why) != 0) {
        INFO(u, "not sent: %s", why);
        return;
    }
    if (why[0])
        INFO(u, "%s", why);
    /* A room sends our link back, and that echo is what shows it there. */
    if (!w->room)
        win_message(u, w, time(NULL), "me", url, 0);
}

static void cmd_get(ui *u, const char *arg)
{
    win *w = &u->wins[u->cur];
    long n = atol(arg);
    if (n < 1 || (size_t)n > w->nfiles) {
        INFO(u, "no file %s here (%zu received in this window)", arg, w->nfiles);
        return;
    }
    char out[4096], why[800];
    INFO(u, "downloading file %ld ...", n);
    chat_draw(u);
    if (cli_get_file(w->files[n - 1], u->o->ca_file, ".", 60000, out, sizeof out, why,
                     sizeof why) < 0)
        INFO(u, "download failed: %s", why);
    else
        INFO(u, "saved %s", out);
}

static void cmd_close(ui *u)
{
    if (u->cur == 0) {
        INFO(u, "the console cannot be closed (/quit signs out)");
        return;
    }
    win *w = &u->wins[u->cur];
    if (u->h && hist_on_close(u->h, u->mode, w->jid) != HIST_OK)
        CONSOLE(u, "history: %s", hist_errmsg(u->h));
    else if (u->mode == HIST_MODE_DISABLED)
        CONSOLE(u, "conversation with %s closed and forgotten (history disabled)", w->jid);
    win_free(w);
    memmove(w, w + 1, (u->nwins - u->cur - 1) * sizeof *w);
    u->nwins--;
    switch_to(u, u->cur - 1);
}

static void run_command(ui *u, const char *name, const char *args)
{
    char jid[512], word[64];
    const char *rest = args;
    parley_error e = PARLEY_OK;
    if (rooms_command(u, name, args))
        return; /* /join, /leave, /rooms, /invite, /kick, /ban, /topic, /who */
    if (!strcmp(name, "quit") || !strcmp(name, "exit")) {
        u->quit = 1;
    } else if (!strcmp(name, "help")) {
        INFO(u, "%s", help_text);
    } else if (!strcmp(name, "win")) {
        int n = atoi(args);
        if (n >= 1 && (size_t)n <= u->nwins)
            switch_to(u, (size_t)n - 1);
        else
            INFO(u, "no window %s", args);
    } else if (!strcmp(name, "msg") || !strcmp(name, "query")) {
        if (!fmt_next_word(&rest, jid, sizeof jid) || !strchr(jid, '@')) {
            INFO(u, "usage: /msg JID [TEXT]");
            return;
        }
        switch_to(u, conv_window(u, jid));
        if (*rest)
            send_text(u, rest);
    } else if (!strcmp(name, "close")) {
        cmd_close(u);
    } else if (!strcmp(name, "add")) {
        if (!fmt_next_word(&rest, jid, sizeof jid)) {
            INFO(u, "usage: /add JID [NAME]");
            return;
        }
        e = parley_roster_set(u->p, jid, *rest ? rest : NULL, NULL, 0, on_iq_answer, u);
        if (e == PARLEY_OK)
            e = parley_subscription(u->p, jid, PARLEY_SUB_REQUEST);
        if (e == PARLEY_OK)
            INFO(u, "added %s and asked to see their presence", jid);
    } else if (!strcmp(name, "accept") || !strcmp(name, "deny")) {
        if (!fmt_next_word(&rest, jid, sizeof jid)) {
            INFO(u, "usage: /%s JID", name);
            return;
        }
        int accept = !strcmp(name, "accept");
        e = parley_subscription(u->p, jid, accept ? PARLEY_SUB_APPROVE : PARLEY_SUB_DENY);
        if (e == PARLEY_OK && accept) {
            /* the usual expectation: seeing each other, so ask back unless we already do */
            contact *c = find_contact(u, jid);
            if (!c || (!c->ask && strcmp(c->subscription, "to") && strcmp(c->subscription, "both")))
                e = parley_subscription(u->p, jid, PARLEY_SUB_REQUEST);
        }
        if (e == PARLEY_OK) {
            pending_remove(u, jid);
            INFO(u, "%s %s", accept ? "accepted" : "denied", jid);
        }
    } else if (!strcmp(name, "remove")) {
        if (!fmt_next_word(&rest, jid, sizeof jid)) {
            INFO(u, "usage: /remove JID");
            return;
        }
        e = parley_roster_remove(u->p, jid, on_iq_answer, u);
        if (e == PARLEY_OK)
            INFO(u, "removed %s", jid);
    } else if (!strcmp(name, "status")) {
        static const struct { const char *name; parley_show show; } shows[] = {
            {"online", PARLEY_SHOW_AVAILABLE}, {"away", PARLEY_SHOW_AWAY},
            {"dnd", PARLEY_SHOW_DND}, {"xa", PARLEY_SHOW_XA}};
        fmt_next_word(&rest, word, sizeof word);
        size_t i = 0;
        while (i < ARRAY_LEN(shows) && strcmp(shows[i].name, word) != 0)
            i++;
        if (i == ARRAY_LEN(shows)) {
            INFO(u, "usage: /status online|away|dnd|xa [TEXT]");
            return;
        }
        e = parley_set_presence(u->p, shows[i].show, *rest ? rest : NULL, 0);
        if (e == PARLEY_OK) {
            snprintf(u->own_show, sizeof u->own_show, "%s", i ? shows[i].name : "");
            INFO(u, "status: %s%s%s", shows[i].name, *rest ? " - " : "", rest);
        }
    } else if (!strcmp(name, "search")) {
        int n = 0;
        if (!*args) {
            INFO(u, "usage: /search TEXT");
        } else if (!u->h) {
            INFO(u, "no local history");
        } else if (hist_search(u->h, args, 50, print_search_row, u, &n) != HIST_OK) {
            INFO(u, "search failed: %s", hist_errmsg(u->h));
        } else {
            INFO(u, "search '%s': %d message%s found", args, n, n == 1 ? "" : "s");
        }
    } else if (!strcmp(name, "tls")) {
        cmd_tls(u);
    } else if (!strcmp(name, "sendfile")) {
        cmd_sendfile(u, args);
    } else if (!strcmp(name, "get")) {
        cmd_get(u, args);
    } else if (!strcmp(name, "fingerprint") || !strcmp(name, "fp")) {
        cmd_fingerprint(u, args);
    } else if (!strcmp(name, "trust")) {
        cmd_trust(u, args);
    } else {
        INFO(u, "unknown command /%s (/help lists them)", name);
    }
    if (e != PARLEY_OK)
        INFO(u, "/%s failed: %s", name, parley_strerror(e));
}

static void submit(ui *u)
{
    char text[INPUT_MAX * 4 + 1];
    size_t n = wcstombs(text, u->input, sizeof text);
    u->ilen = 0;
    u->input[0] = L'\0';
    if (n == (size_t)-1 || n == 0)
        return;
    text[sizeof text - 1] = '\0';
    char name[32];
    const char *args;
    if (fmt_command(text, name, sizeof name, &args))
        run_command(u, name, args);
    else if (!rooms_send_text(u, args)) /* a room's window: to the room */
        send_text(u, args);
}

void chat_on_key(ui *u, int is_key, wint_t ch)
{
    int esc = u->esc;
    u->esc = 0;
    if (is_key) {
        switch (ch) {
        case KEY_ENTER: submit(u); break;
        case KEY_BACKSPACE:
            if (u->ilen)
                u->input[--u->ilen] = L'\0';
            break;
        case KEY_PPAGE: u->wins[u->cur].scroll += LINES / 2; break;
        case KEY_NPAGE:
            u->wins[u->cur].scroll -= LINES / 2;
            if (u->wins[u->cur].scroll < 0)
                u->wins[u->cur].scroll = 0;
            break;
        default: break;
        }
        return;
    }
    if (esc && ch >= L'0' && ch <= L'9') { /* Alt-N: window N (Alt-0 is 10) */
        size_t n = ch == L'0' ? 10 : (size_t)(ch - L'0');
        if (n <= u->nwins)
            switch_to(u, n - 1);
        return;
    }
    switch (ch) {
    case 27: u->esc = 1; break;
    case L'\n': case L'\r': submit(u); break;
    case 127: case 8:
        if (u->ilen)
            u->input[--u->ilen] = L'\0';
        break;
    case 21: /* Ctrl-U */
        u->ilen = 0;
        u->input[0] = L'\0';
        break;
    case 14: switch_to(u, (u->cur + 1) % u->nwins); break;               /* Ctrl-N */
    case 16: switch_to(u, (u->cur + u->nwins - 1) % u->nwins); break;    /* Ctrl-P */
    default:
        /* without a UTF-8 locale only ASCII can be typed (and converted) */
        if (ch >= 32 && ch != 127 && (u->utf8 || ch < 128) && u->ilen + 1 < INPUT_MAX) {
            u->input[u->ilen++] = (wchar_t)ch;
            u->input[u->ilen] = L'\0';
        }
    }
}

