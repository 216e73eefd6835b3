/* cli_history.h - the parley command's side of the local history: which mode and key the
 * options select, opening the account's database, and `parley history ...`. */
#ifndef PARLEY_CLI_CLI_HISTORY_H
#define PARLEY_CLI_CLI_HISTORY_H

#include "history.h"
#include "options.h"

#include <stddef.h>

/* The mode from --history / `history =` (default when unset). -1 with err if invalid. */
int cli_history_mode(const cli_opts *o, hist_mode *mode, char *err, size_t errlen);

/* Is a key (key file or passphrase file) configured? */
int cli_history_has_key(const cli_opts *o);

/* Open the account's history database with the configured key. Without a key: memory 0
 * gives *out NULL and 0 (nothing is recorded), memory 1 a private in-memory database.
 * Returns 0, or an exit code (EXIT_USAGE, EXIT_HISTORY) with the reason in err. */
int cli_history_open(const cli_opts *o, int memory, hist **out, char *err, size_t errlen);

/* `parley history search TEXT... | show --with JID | wipe`: JSON lines on stdout.
 * Returns the exit code. */
int cmd_history(const cli_opts *o);

#endif
