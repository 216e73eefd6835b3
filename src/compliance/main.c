/* main.c - parley-compliance: options, signals, the journal and the reconnect loop.
 *
 * Signals only set a flag and write a byte to a pipe; the component session polls that
 * pipe and calls back here, so a reload or a shutdown happens between stanzas, never in
 * the middle of one. SIGHUP re-reads the whole file: a bad file keeps the old rules
 * (and says why), a good one replaces them at once; connection settings apply from the
 * next connection, the journal and log file only after a restart.
 *
 * Exit codes (docs/parley-compliance.md): 0 clean exit or valid --check, 1 invalid
 * configuration, 2 usage error, 3 start-up failure (journal, log file, --journal). */
#include "../common/log.h"
#include "../common/util.h"
#include "../common/version.h"
#include "component.h"
#include "conf.h"
#include "journal.h"
#include "verdict.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_START = 3 };

/* First wait after a lost connection; it doubles up to reconnect_max. */
#define RECONNECT_FIRST_MS 1000

static volatile sig_atomic_t got_term, got_hup;
static int wake_pipe[2] = {-1, -1};

typedef struct state {
    pc_config cfg;
    journal *journal;
} state;

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP)
        got_hup = 1;
    else
        got_term = 1;
    /* Non-blocking: a full pipe already holds a wake-up. */
    (void)!write(wake_pipe[1], "x", 1);
    errno = saved;
}

static int setup_signals(void)
{
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
        sigaction(SIGHUP, &sa, NULL) < 0)
        return -1;
    /* A write to a closed connection is an error to handle (OpenSSL writes to the socket
     * without MSG_NOSIGNAL), not a reason to die. */
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

static void log_rules(const char *what, const pc_config *cfg)
{
    size_t g, w, c, f;
    rules_counts(cfg->rules, &g, &w, &c, &f);
    log_info("%s %s: %zu groups, %zu walls, %zu content rules, %zu file rules, disclaimer %s",
             what, cfg->path, g, w, c, f, rules_has_disclaimer(cfg->rules) ? "on" : "off");
}

static int str_differs(const char *a, const char *b)
{
    return !str_eq(a, b);
}

static void reload(state *s)
{
    pc_config fresh;
    char err[1024];
    if (pc_config_load(&fresh, s->cfg.path, err, sizeof err) < 0) {
        log_error("reload failed, the current rules stay in force: %s", err);
        return;
    }
    if (str_differs(fresh.journal, s->cfg.journal) || str_differs(fresh.log_file, s->cfg.log_file))
        log_warn("reload: journal and log_file changes take effect after a restart");
    /* The open journal and log stay what they are until a restart. */
    char *tmp = fresh.journal;
    fresh.journal = s->cfg.journal;
    s->cfg.journal = tmp;
    tmp = fresh.log_file;
    fresh.log_file = s->cfg.log_file;
    s->cfg.log_file = tmp;
    if (str_differs(fresh.server_host, s->cfg.server_host) ||
        fresh.server_port != s->cfg.server_port || fresh.tls != s->cfg.tls ||
        str_differs(fresh.ca_file, s->cfg.ca_file) ||
        str_differs(fresh.server_name, s->cfg.server_name) ||
        str_differs(fresh.component, s->cfg.component) ||
        str_differs(fresh.secret, s->cfg.secret))
        log_info("reload: connection settings changed; they apply from the next connection");
    pc_config_free(&s->cfg);
    s->cfg = fresh;
    log_set_level((log_level)s->cfg.log_level);
    /* Reopen the log: SIGHUP after rotation is the usual convention. */
    if (s->cfg.log_file && log_open_file(s->cfg.log_file) < 0)
        log_error("cannot reopen the log file %s: %s", s->cfg.log_file, strerror(errno));
    log_rules("reloaded", &s->cfg);
}

/* Called when the wake pipe is readable. Nonzero: stop. */
static int on_wake(void *ud)
{
    state *s = ud;
    char drain[64];
    while (read(wake_pipe[0], drain, sizeof drain) > 0)
        ;
    if (got_hup && !got_term) {
        got_hup = 0;
        reload(s);
    }
    return got_term != 0;
}

static xml_node *on_check(void *ud, const xml_node *iq, const char *self)
{
    state *s = ud;
    verdict_ctx vc = {s->cfg.rules, s->journal, self};
    return verdict_answer(&vc, iq, time_now_us());
}

/* Sleep ms, still answering signals. Returns nonzero if asked to stop. */
static int backoff_wait(state *s, int ms)
{
    int64_t until = time_mono_ms() + ms;
    for (;;) {
        int64_t left = until - time_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {wake_pipe[0], POLLIN, 0};
        int n = poll(&p, 1, (int)left);
        if (n > 0 && on_wake(s))
            return 1;
        if (got_term)
            return 1;
    }
}

static int run(state *s)
{
    comp_hooks hooks = {wake_pipe[0], on_wake, on_check, s};
    int delay = RECONNECT_FIRST_MS;
    while (!got_term) {
        int authenticated = 0;
        if (component_run(&s->cfg, &hooks, &authenticated) == COMP_STOPPED)
            break;
        /* A session that got as far as the handshake was healthy: start again quickly. */
        if (authenticated)
            delay = RECONNECT_FIRST_MS;
        log_info("reconnecting to parleyd in %d.%d s", delay / 1000, (delay % 1000) / 100);
        if (backoff_wait(s, delay))
            break;
        delay *= 2;
        if (delay > s->cfg.reconnect_max * 1000)
            delay = s->cfg.reconnect_max * 1000;
    }
    log_info("parley-compliance stopping");
    return EXIT_OK;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: parley-compliance -c FILE [--check]\n"
            "       parley-compliance --journal FILE\n"
            "\n"
            "The reference compliance server of Parley: an XEP-0114 component of parleyd\n"
            "that judges every message and file (docs/parley-compliance.md).\n"
            "\n"
            "  -c, --config FILE   configuration and rules\n"
            "      --check         validate the configuration and exit (0 valid, 1 not)\n"
            "      --journal FILE  print the journal as tab-separated rows and exit\n"
            "  -h, --help          this text\n"
            "  -V, --version       the version\n");
}

static int check_only(const char *path)
{
    pc_config cfg;
    char err[1024];
    if (pc_config_load(&cfg, path, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return EXIT_CONFIG;
    }
    size_t g, w, c, f;
    rules_counts(cfg.rules, &g, &w, &c, &f);
    printf("%s: OK: %zu groups, %zu walls, %zu content rules, %zu file rules, disclaimer %s\n",
           path, g, w, c, f, rules_has_disclaimer(cfg.rules) ? "on" : "off");
    pc_config_free(&cfg);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
        {"journal", required_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0}};
    const char *config = NULL, *journal_file = NULL;
    int check = 0, o;
    while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'j':
            journal_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("parley-compliance (%s) %s\n", PARLEY_NAME, PARLEY_VERSION);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc || (journal_file && (config || check)) || (!journal_file && !config)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* Regular expressions see UTF-8 characters, not bytes, whatever LANG says. */
    if (!setlocale(LC_CTYPE, "C.UTF-8"))
        fprintf(stderr, "parley-compliance: the C.UTF-8 locale is missing; regular "
                        "expressions will match bytes\n");
    if (journal_file) {
        char err[512];
        if (journal_dump(journal_file, stdout, err, sizeof err) < 0) {
            fprintf(stderr, "parley-compliance: %s\n", err);
            return EXIT_START;
        }
        return EXIT_OK;
    }
    if (check)
        return check_only(config);

    state s;
    memset(&s, 0, sizeof s);
    char err[1024];
    if (pc_config_load(&s.cfg, config, err, sizeof err) < 0) {
        fprintf(stderr, "parley-compliance: %s\n", err);
        return EXIT_CONFIG;
    }
    log_set_level((log_level)s.cfg.log_level);
    if (s.cfg.log_file && log_open_file(s.cfg.log_file) < 0) {
        fprintf(stderr, "parley-compliance: cannot open the log file %s: %s\n",
                s.cfg.log_file, strerror(errno));
        pc_config_free(&s.cfg);
        return EXIT_START;
    }
    s.journal = journal_open(s.cfg.journal, err, sizeof err);
    if (!s.journal || setup_signals() < 0) {
        log_error("cannot start: %s", s.journal ? strerror(errno) : err);
        journal_close(s.journal);
        pc_config_free(&s.cfg);
        return EXIT_START;
    }
    log_info("parley-compliance %s starting: component %s, parleyd at %s:%d (%s), journal %s",
             PARLEY_VERSION, s.cfg.component, s.cfg.server_host, s.cfg.server_port,
             s.cfg.tls ? "TLS" : "plain, loopback", s.cfg.journal);
    log_rules("loaded", &s.cfg);
    int rc = run(&s);
    journal_close(s.journal);
    pc_config_free(&s.cfg);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    return rc;
}
