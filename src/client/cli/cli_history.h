/* cli_history.h - the parley command's side of the local history: which mode and key the
 * options select, opening the account's database, and `parley history ...`. */
#ifndef PARLEY_CLI_CLI_HISTORY_H
#define PARLEY_CLI_CLI_HISTORY_H

#include "../parley.h"
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

/* The end-to-end (OMEMO) key store: <data_dir>/<bare JID>.omemo.db, encrypted with the
 * history key. Fills po->e2e_store and its key (kept in *key and *path, which the caller
 * clears and frees after parley_new). Without a history key the store is memory only
 * (po->e2e_store NULL). Returns 0, or an exit code with the reason in err. */
int cli_e2e_options(const cli_opts *o, parley_options *po, hist_key *key, char **path,
                    char *err, size_t errlen);

/* `parley history search TEXT... | show --with JID | wipe`: JSON lines on stdout.
 * Returns the exit code. */
int cmd_history(const cli_opts *o);

#endif
