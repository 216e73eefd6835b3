/* cli_files.h - file transfer for the parley command: send-file, screenshot, and the
 * helpers the interactive client's /sendfile and /get use. */
#ifndef PARLEY_CLI_FILES_H
#define PARLEY_CLI_FILES_H

#include "../parley.h"

#include <stddef.h>

/* Upload path (shown to others as name) for `to` (a group chat if room: joined for the
 * transfer unless we are in it, and the link sent as groupchat) and send the link;
 * waits (at most timeout_ms per step) for the session, the slot, the upload, the
 * compliance server's verdict on a held file and the server's (or room's) receipt.
 * Returns an exit code; what failed (the refusing policy, the server's reason for
 * refusing the upload, the compliance server's block, the refusal of the link) goes to
 * why. On success why is empty, or a note for the user (the file is still held). The
 * GET URL goes to url_out if given. */
int cli_send_file(parley *p, const char *ca_file, const char *to, int room, const char *path,
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
