/* chat.c - the interactive terminal client's screen and main loop: roster pane with
 * presence and unread counts, the current window, a subscription prompt, a status bar
 * with the client-to-server lock, the input line. The screen is redrawn whole from the
 * model after each change (ncurses sends only the difference), which keeps drawing
 * stateless. Model and events: chat_model.c; keys and commands: chat_commands.c. */
#include "chat.h"
#include "exit_codes.h"


#include "../../common/util.h"
#include "chat_format.h"
#include "chat_internal.h"
#include "cli_history.h"
#include "cli_rooms.h"

#define NCURSES_WIDECHAR 1
#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* ------------------------------------------------------------------ drawing */

static void put(int y, int x, int cols, const char *s)
{
    if (cols > 0 && y >= 0 && y < LINES)
        mvaddnstr(y, x, s, (int)fmt_fit(s, cols));
}

typedef struct dline {
    const char *s;
    size_t n;
} dline;

typedef struct dlines {
    dline *v;
    size_t n, cap;
} dlines;

static void collect_line(const char *line, size_t n, void *ud)
{
    dlines *d = ud;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 256;
        d->v = xrealloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n++] = (dline){line, n};
}

static void draw_window_list(ui *u, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < u->nwins && o + 24 < len; i++) {
        win *w = &u->wins[i];
        if (i == u->cur)
            o += (size_t)snprintf(out + o, len - o, " [%zu]", i + 1);
        else if (w->unread)
            o += (size_t)snprintf(out + o, len - o, " %zu(%d)", i + 1, w->unread);
        else
            o += (size_t)snprintf(out + o, len - o, " %zu", i + 1);
    }
}

void chat_draw(ui *u)
{
    erase();
    int rows = LINES, cols = COLS;
    int rw = cols >= 90 ? 30 : cols / 3;
    int mx = rw + 1, mw = cols - mx;
    int bottom = rows - 2 - (u->npending ? 1 : 0); /* first row below the message area */
    char line[1024];

    /* roster pane */
    attron(A_BOLD);
    put(0, 0, rw, "Contacts");
    attroff(A_BOLD);
    for (size_t i = 0; i < u->ncontacts && (int)i + 1 < bottom; i++) {
        contact *c = &u->contacts[i];
        /* JIDs are kept exact (they address stanzas) and made safe only for display */
        char *label = fmt_sanitize(c->name ? c->name : c->jid, u->utf8, 0);
        fmt_roster_entry(line, sizeof line, rw, label, contact_presence(c),
                         contact_unread(u, c));
        free(label);
        int online = c->nres > 0;
        if (online)
            attron(A_BOLD);
        put((int)i + 1, 0, rw, line);
        if (online)
            attroff(A_BOLD);
    }
    /* ACS line drawing needs the terminal's alternate character set, which some
     * terminals ignore outside UTF-8: a plain bar there. */
    for (int y = 0; y < bottom; y++)
        mvaddch(y, rw, u->utf8 ? ACS_VLINE : '|');

    /* header */
    win *w = &u->wins[u->cur];
    if (w->room) {
        rooms_header(u, w, line, sizeof line); /* never the end-to-end lock */
    } else if (w->jid) {
        contact *c = find_contact(u, w->jid);
        char *label = fmt_sanitize(w->jid, u->utf8, 0);
        fmt_conv_header(line, sizeof line, (int)u->cur + 1, label,
                        c ? contact_presence(c) : "not in roster",
                        parley_conversation_encrypted(u->p, w->jid), u->utf8);
        free(label);
    } else {
        snprintf(line, sizeof line, "[1] console: /help lists the commands");
    }
    attron(A_REVERSE);
    mvhline(0, mx, ' ', mw);
    put(0, mx, mw, line);
    attroff(A_REVERSE);

    /* messages: the wrapped lines that fit, from the bottom (less the scroll-back) */
    int height = bottom - 1;
    if (height > 0 && mw > 1) {
        dlines d = {0};
        for (size_t i = 0; i < w->n; i++)
            fmt_wrap(w->lines[i].text, mw - 1, collect_line, &d);
        int maxscroll = (int)d.n > height ? (int)d.n - height : 0;
        if (w->scroll > maxscroll)
            w->scroll = maxscroll;
        size_t end = d.n - (size_t)w->scroll;
        size_t start = end > (size_t)height ? end - (size_t)height : 0;
        for (size_t i = start; i < end; i++) {
            char tmp[2048];
            size_t n = d.v[i].n < sizeof tmp - 1 ? d.v[i].n : sizeof tmp - 1;
            memcpy(tmp, d.v[i].s, n);
            tmp[n] = '\0';
            put(1 + (int)(i - start), mx + 1, mw - 1, tmp);
        }
        free(d.v);
    }

    /* a pending subscription request */
    if (u->npending) {
        char *who = fmt_sanitize(u->pending[0], u->utf8, 0);
        snprintf(line, sizeof line, "%s asks to see your presence: /accept %s or /deny %s%s",
                 who, who, who, u->npending > 1 ? " (more waiting)" : "");
        free(who);
        attron(A_BOLD);
        put(rows - 3, 0, cols, line);
        attroff(A_BOLD);
    }

    /* status bar: the client-to-server lock first */
    parley_tls_info ti;
    int tls = parley_tls_info_get(u->p, &ti) == PARLEY_OK;
    char lock[64], wl[256];
    fmt_tls_lock(lock, sizeof lock, tls ? ti.version : NULL, u->utf8);
    draw_window_list(u, wl, sizeof wl);
    char *me = fmt_sanitize(parley_bound_jid(u->p) ? parley_bound_jid(u->p) : u->o->jid,
                            u->utf8, 0);
    snprintf(line, sizeof line, "%s %s %s%s%s | history: %s | win:%s", lock, me, u->state,
             u->own_show[0] ? "/" : "", u->own_show, hist_mode_name(u->mode), wl);
    free(me);
    attron(A_REVERSE);
    mvhline(rows - 2, 0, ' ', cols);
    put(rows - 2, 0, cols, line);
    attroff(A_REVERSE);

    /* input line: the tail that fits */
    char in[INPUT_MAX * 4 + 1];
    if (wcstombs(in, u->input, sizeof in) == (size_t)-1)
        in[0] = '\0';
    in[sizeof in - 1] = '\0';
    const char *shown = in;
    while (fmt_width(shown) > cols - 3 && *shown)
        shown += fmt_fit(shown, 1) ? fmt_fit(shown, 1) : 1;
    put(rows - 1, 0, 2, "> ");
    put(rows - 1, 2, cols - 3, shown);
    refresh();
}
/* ------------------------------------------------------------------ main loop */

static int is_offline(parley *p, void *ud)
{
    return parley_get_state(p) == PARLEY_STATE_OFFLINE;
}

static void log_to_console(int level, const char *line, void *ud)
{
    if (level >= 2)
        CONSOLE((ui *)ud, "%s", line);
}

int chat_run(const cli_opts *o, hist_mode mode)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        /* scripts get a clear error rather than curses' exit from initscr() */
        fprintf(stderr, "parley: the interactive client needs a terminal (scripts: send, "
                "listen, tls-info, history; see parley --help)\n");
        return EXIT_USAGE;
    }
    setlocale(LC_ALL, "");
    ui u;
    memset(&u, 0, sizeof u);
    u.o = o;
    u.mode = mode;
    u.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    snprintf(u.state, sizeof u.state, "connecting");
    char err[512];
    /* The history first: a wrong key or a damaged file stops here, before the screen. */
    int rc = cli_history_open(o, 1, &u.h, err, sizeof err);
    if (rc != EXIT_OK) {
        fprintf(stderr, "parley: %s\n", err);
        return rc;
    }
    /* History never outlives the session it belongs to: what a crashed or killed session
     * left behind goes now, in the modes that wipe at sign-out. */
    if (hist_on_signout(u.h, mode) != HIST_OK) {
        fprintf(stderr, "parley: history: %s\n", hist_errmsg(u.h));
        hist_close(u.h);
        return EXIT_HISTORY;
    }
    parley_options po;
    parley_options_init(&po);
    po.jid = o->jid;
    po.password_file = o->password_file;
    po.ca_file = o->ca_file;
    po.server = o->server;
    po.direct_tls = o->direct_tls > 0;
    po.reconnect = 2; /* an interactive client keeps trying, first attempt included */
    sync_options(&u, &po); /* carbons, and history from the server archive */
    po.on_event = chat_on_event;
    po.on_log = log_to_console;
    po.userdata = &u;
    hist_key e2e_key;
    char *e2e_path = NULL;
    if ((rc = cli_e2e_options(o, &po, &e2e_key, &e2e_path, err, sizeof err)) != EXIT_OK) {
        fprintf(stderr, "parley: %s\n", err);
        hist_close(u.h);
        return rc;
    }
    parley_error e;
    u.p = parley_new(&po, &e, err, sizeof err);
    hist_key_clear(&e2e_key);
    free(e2e_path);
    if (!u.p) {
        fprintf(stderr, "parley: %s\n", err);
        hist_close(u.h);
        return cli_history_has_key(o) ? EXIT_HISTORY : EXIT_USAGE;
    }
    u.wins = xcalloc(1, sizeof *u.wins);
    u.nwins = 1;
    CONSOLE(&u, "parley: connecting as %s; history %s (%s); /help lists the commands", o->jid,
            hist_mode_name(mode), cli_history_has_key(o) ? "encrypted file" : "memory only");
    if (mode == HIST_MODE_ARCHIVE && !cli_history_has_key(o))
        CONSOLE(&u, "archive mode needs a history key: this session's history is not kept");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* terminal gone: still sign out and wipe */
    signal(SIGPIPE, SIG_IGN);

    initscr();
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    sync_start(&u);
    parley_connect(u.p);
    while (!u.quit && !stop_requested) {
        chat_draw(&u);
        struct pollfd pfd[2] = {{0, POLLIN, 0}, {parley_fd(u.p), parley_poll_events(u.p), 0}};
        int t = parley_timeout_ms(u.p);
        if (t < 0 || t > 1000)
            t = 1000;
        poll(pfd, pfd[1].fd >= 0 ? 2 : 1, t);
        parley_process(u.p, 0);
        wint_t ch;
        int r;
        while ((r = get_wch(&ch)) != ERR)
            chat_on_key(&u, r == KEY_CODE_YES, ch);
    }
    /* Sign out: a polite close, then the mode's sign-out rule. */
    snprintf(u.state, sizeof u.state, "signing out");
    chat_draw(&u);
    parley_disconnect(u.p);
    parley_run_until(u.p, is_offline, NULL, 3000);
    endwin();
    sync_save_all(&u); /* where the archive syncs got to (archive mode) */
    rc = EXIT_OK;
    if (hist_on_signout(u.h, mode) != HIST_OK) {
        fprintf(stderr, "parley: history: %s\n", hist_errmsg(u.h));
        rc = EXIT_HISTORY;
    }
    hist_close(u.h);
    parley_free(u.p);
    rooms_ui_free(&u);
    for (size_t i = 0; i < u.nwins; i++)
        win_free(&u.wins[i]);
    free(u.wins);
    for (size_t i = 0; i < u.ncontacts; i++)
        contact_free(&u.contacts[i]);
    free(u.contacts);
    for (size_t i = 0; i < u.npending; i++)
        free(u.pending[i]);
    free(u.pending);
    sends_free(&u);
    return rc;
}

