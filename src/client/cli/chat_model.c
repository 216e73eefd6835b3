/* chat_model.c - the interactive client's model (conversation windows, contacts and
 * their presence, pending subscription requests) and how libparley's events change it.
 * Everything from the network is sanitised on its way into a window. */

#include "../../common/util.h"
#include "chat_format.h"
#include "chat_internal.h"
#include "cli_rooms.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *bare_of(const char *jid)
{
    char *b = xstrndup(jid, strcspn(jid, "/"));
    for (char *c = b; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return b;
}

/* ------------------------------------------------------------------ model */

static void win_add_text(win *w, char *text)
{
    if (w->n == MAX_LINES) { /* drop the oldest: the history keeps them */
        free(w->lines[0].text);
        memmove(w->lines, w->lines + 1, (w->n - 1) * sizeof *w->lines);
        w->n--;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->lines = xrealloc(w->lines, w->cap * sizeof *w->lines);
    }
    w->lines[w->n++].text = text;
}

void win_message(ui *u, win *w, time_t ts, const char *who, const char *body,
                        int encrypted)
{
    char *swho = fmt_sanitize(who, u->utf8, 0), *sbody = fmt_sanitize(body, u->utf8, 1);
    size_t len = strlen(sbody) + strlen(swho) + 64;
    char *text = xmalloc(len);
    fmt_message(text, len, ts, swho, sbody, encrypted, u->utf8);
    free(swho);
    free(sbody);
    win_add_text(w, text);
}

void win_info(ui *u, win *w, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void win_info(ui *u, win *w, const char *fmt, ...)
{
    char raw[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    char *s = fmt_sanitize(raw, u->utf8, 1);
    time_t now = time(NULL);
    struct tm tm;
    char hm[8] = "--:--";
    if (localtime_r(&now, &tm))
        strftime(hm, sizeof hm, "%H:%M", &tm);
    win_add_text(w, xasprintf("%s -!- %s", hm, s));
    free(s);
}

void win_free(win *w)
{
    for (size_t i = 0; i < w->nfiles; i++)
        free(w->files[i]);
    free(w->files);
    for (size_t i = 0; i < w->n; i++)
        free(w->lines[i].text);
    free(w->lines);
    free(w->jid);
}

static int show_history_row(const hist_msg *m, void *ud)
{
    void **a = ud;
    ui *u = a[0];
    win *w = a[1];
    win_message(u, w, (time_t)(m->ts_ms / 1000), m->outgoing ? "me" : m->peer, m->body,
                m->encrypted);
    return 0;
}

/* The window of a conversation, opened (with its kept history) if need be. */
size_t conv_window(ui *u, const char *jid)
{
    char *bare = bare_of(jid);
    for (size_t i = 1; i < u->nwins; i++)
        if (strcmp(u->wins[i].jid, bare) == 0) {
            free(bare);
            return i;
        }
    u->wins = xrealloc(u->wins, (u->nwins + 1) * sizeof *u->wins);
    win *w = &u->wins[u->nwins];
    memset(w, 0, sizeof *w);
    w->jid = bare;
    void *a[2] = {u, w};
    int n = 0;
    if (u->h)
        hist_show(u->h, bare, HISTORY_LOAD, show_history_row, a, &n);
    if (n > 0)
        win_info(u, w, "%d earlier message%s from the local history", n, n == 1 ? "" : "s");
    return u->nwins++;
}

void switch_to(ui *u, size_t i)
{
    if (i < u->nwins) {
        u->cur = i;
        u->wins[i].unread = 0;
        u->wins[i].scroll = 0;
    }
}

contact *find_contact(ui *u, const char *jid)
{
    char *bare = bare_of(jid);
    contact *c = NULL;
    for (size_t i = 0; i < u->ncontacts && !c; i++)
        if (strcmp(u->contacts[i].jid, bare) == 0)
            c = &u->contacts[i];
    free(bare);
    return c;
}

void contact_free(contact *c)
{
    for (size_t i = 0; i < c->nres; i++) {
        free(c->res[i].res);
        free(c->res[i].show);
    }
    free(c->res);
    free(c->jid);
    free(c->name);
    free(c->subscription);
}

const char *contact_presence(const contact *c)
{
    return c->nres ? fmt_presence(1, c->res[0].show) : "offline";
}

int contact_unread(ui *u, const contact *c)
{
    for (size_t i = 1; i < u->nwins; i++)
        if (strcmp(u->wins[i].jid, c->jid) == 0)
            return u->wins[i].unread;
    return 0;
}

void pending_remove(ui *u, const char *jid)
{
    char *bare = bare_of(jid);
    for (size_t i = 0; i < u->npending; i++)
        if (strcmp(u->pending[i], bare) == 0) {
            free(u->pending[i]);
            u->pending[i--] = u->pending[--u->npending];
        }
    free(bare);
}
/* ------------------------------------------------------------------ events */

static void on_roster(ui *u, const parley_event *ev)
{
    contact *c = find_contact(u, ev->roster_jid);
    if (ev->roster_removed) {
        if (c) {
            contact_free(c);
            size_t i = (size_t)(c - u->contacts);
            memmove(c, c + 1, (u->ncontacts - i - 1) * sizeof *c);
            u->ncontacts--;
        }
        return;
    }
    if (!c) {
        u->contacts = xrealloc(u->contacts, (u->ncontacts + 1) * sizeof *u->contacts);
        /* keep the pane sorted by JID */
        char *bare = bare_of(ev->roster_jid);
        size_t at = 0;
        while (at < u->ncontacts && strcmp(u->contacts[at].jid, bare) < 0)
            at++;
        memmove(u->contacts + at + 1, u->contacts + at, (u->ncontacts - at) * sizeof *c);
        c = &u->contacts[at];
        memset(c, 0, sizeof *c);
        c->jid = bare;
        u->ncontacts++;
    }
    free(c->name);
    free(c->subscription);
    c->name = ev->roster_name && *ev->roster_name ? fmt_sanitize(ev->roster_name, u->utf8, 0)
                                                  : NULL;
    c->subscription = xstrdup(ev->subscription ? ev->subscription : "none");
    c->ask = ev->roster_ask;
}

static void on_presence(ui *u, const parley_event *ev)
{
    contact *c = find_contact(u, ev->from);
    if (!c)
        return;
    const char *slash = strchr(ev->from, '/');
    const char *res = slash ? slash + 1 : "";
    size_t i = 0;
    while (i < c->nres && strcmp(c->res[i].res, res) != 0)
        i++;
    int unavailable = ev->pres_type && strcmp(ev->pres_type, "unavailable") == 0;
    if (unavailable) {
        if (i < c->nres) {
            free(c->res[i].res);
            free(c->res[i].show);
            c->res[i] = c->res[--c->nres];
        }
        return;
    }
    if (i == c->nres) {
        c->res = xrealloc(c->res, (c->nres + 1) * sizeof *c->res);
        c->res[i].res = xstrdup(res);
        c->res[i].show = NULL;
        c->nres++;
    }
    free(c->res[i].show);
    c->res[i].show = ev->show ? xstrdup(ev->show) : NULL;
}

int sends_take(ui *u, const char *id, pending_send *out)
{
    for (size_t i = 0; id && i < u->nsends; i++)
        if (strcmp(u->sends[i].id, id) == 0) {
            *out = u->sends[i];
            u->sends[i] = u->sends[--u->nsends];
            return 1;
        }
    return 0;
}

void sends_free(ui *u)
{
    for (size_t i = 0; i < u->nsends; i++) {
        free(u->sends[i].id);
        free(u->sends[i].jid);
        free(u->sends[i].text);
    }
    free(u->sends);
    u->sends = NULL;
    u->nsends = 0;
}

/* The message with this id left: show it, with the end-to-end mark if it was encrypted. */
static void on_sent(ui *u, const parley_event *ev)
{
    pending_send s = {0};
    int owned = sends_take(u, ev->id, &s);
    if (!owned) {
        if (!u->sending_text)
            return;
        s.jid = (char *)u->sending_jid;
        s.text = (char *)u->sending_text;
        u->sent_now = 1;
    }
    size_t i = conv_window(u, s.jid);
    win_message(u, &u->wins[i], time(NULL), "me", s.text, ev->encrypted);
    if (u->h) {
        hist_msg m = {.peer = s.jid, .outgoing = 1, .sender = parley_bound_jid(u->p),
                      .body = s.text, .encrypted = ev->encrypted, .stanza_id = ev->id};
        if (hist_add(u->h, &m) != HIST_OK)
            CONSOLE(u, "history: %s", hist_errmsg(u->h));
    }
    if (owned) {
        free(s.id);
        free(s.jid);
        free(s.text);
    }
}

static void on_message(ui *u, const parley_event *ev)
{
    if (!ev->from)
        return;
    if (ev->error != PARLEY_OK || (ev->msg_type && strcmp(ev->msg_type, "error") == 0)) {
        pending_send s = {0};
        int owned = sends_take(u, ev->id, &s);
        if (!owned && u->sending_text)
            u->sent_now = 1; /* refused at once: nothing is pending */
        size_t i = conv_window(u, ev->from);
        win_info(u, &u->wins[i], "message not %s: %s", owned || u->sent_now ? "sent" : "delivered",
                 ev->error_text ? ev->error_text : parley_strerror(ev->error));
        if (owned) {
            free(s.id);
            free(s.jid);
            free(s.text);
        }
        return;
    }
    if (ev->e2e_error) {
        /* never an empty line: the user sees that something came and why it is not shown */
        size_t i = conv_window(u, ev->from);
        win_info(u, &u->wins[i], "%s", ev->e2e_error);
        if (i != u->cur)
            u->wins[i].unread++;
        return;
    }
    if (!ev->body)
        return;
    size_t i = conv_window(u, ev->from);
    char *bare = bare_of(ev->from);
    win_message(u, &u->wins[i], time(NULL), bare, ev->body, ev->encrypted);
    free(bare);
    if (i != u->cur)
        u->wins[i].unread++;
    win_offer_file(u, &u->wins[i], ev->stanza);
    if (u->h) {
        hist_msg m = {.peer = ev->from, .sender = ev->from, .body = ev->body,
                      .encrypted = ev->encrypted, .stanza_id = ev->id};
        if (hist_add(u->h, &m) != HIST_OK)
            CONSOLE(u, "history: %s", hist_errmsg(u->h));
    }
}

void chat_on_event(parley *p, const parley_event *ev, void *ud)
{
    ui *u = ud;
    if (chat_ext_event(u, ev))
        return; /* rooms, archive history, carbons (cli_rooms.c, cli_sync.c) */
    switch (ev->type) {
    default: /* the extension events are handled above */
        break;
    case PARLEY_EV_CONNECTED: {
        parley_tls_info ti;
        snprintf(u->state, sizeof u->state, "online");
        if (parley_tls_info_get(p, &ti) == PARLEY_OK)
            CONSOLE(u, "signed in as %s via %s (%s, %s, %d-bit key)", parley_bound_jid(p),
                    ti.server, ti.version, ti.cipher, ti.key_bits);
        break;
    }
    case PARLEY_EV_DISCONNECTED:
        for (size_t i = 0; i < u->ncontacts; i++) { /* presence is unknown now */
            contact *c = &u->contacts[i];
            for (size_t r = 0; r < c->nres; r++) {
                free(c->res[r].res);
                free(c->res[r].show);
            }
            c->nres = 0;
        }
        if (ev->retry_in_ms >= 0) {
            snprintf(u->state, sizeof u->state, "reconnecting");
            CONSOLE(u, "disconnected (%s); reconnecting in %d s",
                    ev->error_text ? ev->error_text : parley_strerror(ev->error),
                    (ev->retry_in_ms + 999) / 1000);
        } else {
            snprintf(u->state, sizeof u->state, "offline");
            if (ev->error != PARLEY_OK && ev->error != PARLEY_ERR_CLOSED)
                CONSOLE(u, "offline: %s", ev->error_text ? ev->error_text
                                                         : parley_strerror(ev->error));
        }
        break;
    case PARLEY_EV_MESSAGE:
        on_message(u, ev);
        break;
    case PARLEY_EV_PRESENCE:
        on_presence(u, ev);
        break;
    case PARLEY_EV_SUBSCRIPTION: {
        char *bare = bare_of(ev->from);
        if (strcmp(ev->pres_type, "subscribe") == 0) {
            pending_remove(u, bare);
            u->pending = xrealloc(u->pending, (u->npending + 1) * sizeof *u->pending);
            u->pending[u->npending++] = xstrdup(bare);
            CONSOLE(u, "%s asks to see your presence: /accept %s or /deny %s", bare, bare, bare);
        } else if (strcmp(ev->pres_type, "subscribed") == 0) {
            CONSOLE(u, "%s accepted your request: you see their presence", bare);
        } else if (strcmp(ev->pres_type, "unsubscribed") == 0) {
            CONSOLE(u, "%s refused or revoked your subscription", bare);
        } else {
            pending_remove(u, bare);
            CONSOLE(u, "%s no longer sees your presence", bare);
        }
        free(bare);
        break;
    }
    case PARLEY_EV_ROSTER:
        on_roster(u, ev);
        break;
    case PARLEY_EV_SENT:
        on_sent(u, ev);
        break;
    case PARLEY_EV_SECURITY: {
        /* in the conversation it concerns, so it is seen where it matters */
        char *bare = ev->from ? bare_of(ev->from) : NULL;
        const char *own = parley_bound_jid(p);
        int self = bare && own && strncmp(own, bare, strlen(bare)) == 0 &&
                   (own[strlen(bare)] == '/' || own[strlen(bare)] == '\0');
        /* the index first: opening the window may move u->wins */
        size_t i = bare && !self ? conv_window(u, bare) : 0;
        win_info(u, &u->wins[i], "%s%s", ev->e2e_key_changed ? "!!! " : "", ev->error_text);
        free(bare);
        break;
    }
    case PARLEY_EV_POLICY: {
        parley_policy pol;
        parley_policy_get(p, &pol);
        CONSOLE(u, "admin policy: end-to-end encryption %s, plaintext %s",
                pol.e2e_aes ? "allowed" : "disabled", pol.e2e_plain ? "allowed" : "forbidden");
        break;
    }
    }
}

void win_offer_file(ui *u, win *w, const parley_stanza *st)
{
    const parley_stanza *x = st ? parley_stanza_child(st, "jabber:x:oob", "x") : NULL;
    char *url = x && parley_stanza_child(x, "jabber:x:oob", "url")
                    ? parley_stanza_text(parley_stanza_child(x, "jabber:x:oob", "url"))
                    : NULL;
    if (url && strncmp(url, "https://", 8) == 0 && strlen(url) < 2048) {
        w->files = xrealloc(w->files, (w->nfiles + 1) * sizeof *w->files);
        w->files[w->nfiles++] = url;
        url = NULL;
        win_info(u, w, "file %zu received: /get %zu downloads it", w->nfiles, w->nfiles);
    }
    free(url);
}
