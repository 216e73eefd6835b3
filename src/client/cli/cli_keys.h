/* cli_keys.h - `parley keys`: this device's OMEMO fingerprint, the devices known and their
 * trust, and `parley keys trust JID FINGERPRINT`, from the local key store (offline). */
#ifndef PARLEY_CLI_CLI_KEYS_H
#define PARLEY_CLI_CLI_KEYS_H

#include "options.h"

/* Returns the exit code. */
int cmd_keys(const cli_opts *o);

#endif
