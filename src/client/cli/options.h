/* options.h - the parley command's options: command line and configuration file. */
#ifndef PARLEY_CLI_OPTIONS_H
#define PARLEY_CLI_OPTIONS_H

#include <stddef.h>

typedef struct cli_opts {
    char *command;       /* "send", "listen", "tls-info", "chat", "history" (NULL: chat) */
    char *args[4];       /* words after "history" (search TEXT, show, wipe) or "keys"
                            (trust JID FINGERPRINT) */
    int nargs;
    /* account (command line beats the configuration file) */
    char *jid;
    char *password_file;
    char *ca_file;
    char *server;
    int direct_tls;      /* -1: not given */
    char *config;        /* --config F */
    /* send */
    char *to;
    char *message;
    char *type;
    /* screenshot */
    char *file;          /* --file IMAGE instead of capturing the screen */
    /* listen */
    long count;          /* 0: no limit */
    double timeout;      /* seconds; < 0: not given */
    double keepalive;    /* seconds; <= 0: library default */
    int json;            /* tls-info --json */
    /* local history (history.h) */
    char *history;       /* "default", "disabled", "archive" */
    char *data_dir;      /* default ~/.local/share/parley */
    char *history_key_file;
    char *history_passphrase_file;
    char *with;          /* history show --with JID */
    int verbose;
    int help;
    int version;
    char *service;       /* rooms --service: the group chat service */
    int room;            /* send-file, screenshot --room: --to is a group chat */
} cli_opts;

/* Parse argv. Returns 0, or -1 with a message in err (a usage error). */
int cli_parse_args(int argc, char **argv, cli_opts *o, char *err, size_t errlen);
/* Read a configuration file of "key = value" lines (# comments; keys jid, password_file,
 * ca_file, server, direct_tls, history, data_dir, history_key_file,
 * history_passphrase_file) and fill in what the command line left unset. Relative
 * file names are taken relative to the configuration file's directory. must_exist: a
 * missing file is an error (--config) rather than silently skipped (the default path).
 * Returns 0, or -1 with a message in err. */
int cli_load_config(const char *path, int must_exist, cli_opts *o, char *err, size_t errlen);
/* The default configuration path ($XDG_CONFIG_HOME or ~/.config)/parley/parley.conf,
 * freshly allocated, or NULL if there is no home directory. */
char *cli_default_config_path(void);
void cli_opts_free(cli_opts *o);

#endif
