/* cli_files.h - file transfer for the parley command: send-file, screenshot, and the
 * helpers the interactive client's /sendfile and /get use. */
#ifndef PARLEY_CLI_FILES_H
#define PARLEY_CLI_FILES_H

#include "../parley.h"

#include <stddef.h>

/* Upload path (shown to others as name) for `to` and send the link; waits (at most
 * timeout_ms per step) for the session, the slot, the upload and the server's receipt.
 * Returns an exit code; what failed (naming the refusing policy) goes to why. The GET
 * URL goes to url_out if given. */
int cli_send_file(parley *p, const char *ca_file, const char *to, const char *path,
                  const char *name, int screen_capture, int timeout_ms, char *url_out,
                  size_t url_len, char *why, size_t whylen);
/* Download url into directory dir under the name in the URL (made safe); the path
 * written goes to out. 0, or -1 with the reason in why. */
int cli_get_file(const char *url, const char *ca_file, const char *dir, int timeout_ms,
                 char *out, size_t outlen, char *why, size_t whylen);
/* Capture the X11 screen with ImageMagick's `import -window root` into a new temporary
 * PNG (path into out). 0, or -1 with the reason (and what to do instead) in err. */
int cli_capture_screen(char *out, size_t outlen, char *err, size_t errlen);
/* A media type from a file name's extension (application/octet-stream if unknown). */
const char *cli_guess_type(const char *name);
const char *cli_base_name(const char *path);

#endif
