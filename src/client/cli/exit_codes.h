/* exit_codes.h - the parley command's exit codes (documented in docs/libparley.md and
 * docs/parley-client.md; scripts depend on them, so numbers are never reused). */
#ifndef PARLEY_CLI_EXIT_CODES_H
#define PARLEY_CLI_EXIT_CODES_H

enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1,
    EXIT_UNREACHABLE = 2,
    EXIT_CERTIFICATE = 3,
    EXIT_AUTH = 4,
    EXIT_POLICY = 5,
    EXIT_TIMEOUT = 6,
    EXIT_PROTOCOL = 7,
    EXIT_HISTORY = 8, /* local history unusable: wrong key, damaged file, unsafe key file */
};

#endif
