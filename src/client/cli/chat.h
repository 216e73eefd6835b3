/* chat.h - the interactive terminal client (`parley` or `parley chat`): an ncurses UI
 * with a roster, one window per conversation, the encryption locks and the local history
 * under its mode. */
#ifndef PARLEY_CLI_CHAT_H
#define PARLEY_CLI_CHAT_H

#include "history.h"
#include "options.h"

/* Run until /quit or a signal; signs out and applies the history mode's sign-out rule.
 * Returns the exit code. */
int chat_run(const cli_opts *o, hist_mode mode);

#endif
