/* cli_files.c - `parley send-file` and `parley screenshot`, and what the interactive
 * client's /sendfile shares with them: ask the server for an upload slot, PUT the file
 * over HTTPS (verified like the XMPP connection), send its link, and say plainly which
 * policy refused a transfer. */
#include "../../common/util.h"
#include "cli_files.h"
#include "exit_codes.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *cli_guess_type(const char *name)
{
    static const struct { const char *ext, *type; } types[] = {
        {"png", "image/png"},   {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},   {"pdf", "application/pdf"}, {"txt", "text/plain"},
        {"zip", "application/zip"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < ARRAY_LEN(types); i++)
        if (strcasecmp(dot + 1, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

const char *cli_base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

int cli_capture_screen(char *out, size_t outlen, char *err, size_t errlen)
{
    const char *display = getenv("DISPLAY");
    if (!display || !*display) {
        snprintf(err, errlen, "no screen to capture (DISPLAY is not set): give a picture "
                              "with --file IMAGE");
        return -1;
    }
    const char *tmpdir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char rnd[13];
    random_token(rnd, 12);
    snprintf(out, outlen, "%s/parley-screenshot-%s.png", tmpdir, rnd);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot start the capture tool: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* ImageMagick's import grabs the whole X11 screen; no shell is involved. */
        execlp("import", "import", "-silent", "-window", "root", out, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    struct stat sb;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || stat(out, &sb) < 0 || sb.st_size == 0) {
        snprintf(err, errlen, "the screen could not be captured (%s); give a picture with "
                              "--file IMAGE",
                 WIFEXITED(status) && WEXITSTATUS(status) == 127
                     ? "ImageMagick's 'import' is not installed"
                     : "'import -window root' failed");
        unlink(out);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ one transfer */

typedef struct xfer {
    int answered;
    parley_error err;
    char errtext[600];
    char *put, *get;
    int confirmed;
} xfer;

static void on_slot(parley *p, const char *put, const char *get, parley_error err,
                    const char *text, void *ud)
{
    xfer *x = ud;
    x->answered = 1;
    x->err = err;
    if (err == PARLEY_OK) {
        x->put = xstrdup(put);
        x->get = xstrdup(get);
    } else {
        snprintf(x->errtext, sizeof x->errtext, "%s", text ? text : parley_strerror(err));
    }
}

static int slot_done(parley *p, void *ud)
{
    return ((xfer *)ud)->answered;
}

static int online(parley *p, void *ud)
{
    return parley_get_state(p) == PARLEY_STATE_ONLINE;
}

static void on_ping(parley *p, const parley_stanza *res, parley_error err, void *ud)
{
    ((xfer *)ud)->confirmed = 1;
}

static int confirmed(parley *p, void *ud)
{
    return ((xfer *)ud)->confirmed;
}

static int code_of(parley_error e)
{
    return e == PARLEY_ERR_POLICY ? EXIT_POLICY : e == PARLEY_ERR_TIMEOUT ? EXIT_TIMEOUT
           : e == PARLEY_ERR_UNREACHABLE ? EXIT_UNREACHABLE
           : e == PARLEY_ERR_CERTIFICATE ? EXIT_CERTIFICATE
           : e == PARLEY_ERR_INVALID ? EXIT_USAGE : EXIT_PROTOCOL;
}

int cli_send_file(parley *p, const char *ca_file, const char *to, const char *path,
                  const char *name, int screen_capture, int timeout_ms, char *url_out,
                  size_t url_len, char *why, size_t whylen)
{
    struct stat sb;
    if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0) {
        snprintf(why, whylen, "%s: %s", path,
                errno && stat(path, &sb) < 0 ? strerror(errno) : "not a non-empty regular file");
        return EXIT_USAGE;
    }
    parley_error e = parley_run_until(p, online, NULL, timeout_ms);
    if (e != PARLEY_OK) {
        snprintf(why, whylen, "%s: %s", parley_strerror(e), parley_last_error_text(p));
        return code_of(e);
    }
    xfer x;
    memset(&x, 0, sizeof x);
    const char *type = cli_guess_type(name);
    e = parley_request_upload_slot(p, name, (long long)sb.st_size, type, screen_capture, to,
                                   on_slot, &x);
    if (e == PARLEY_OK)
        e = parley_run_until(p, slot_done, &x, timeout_ms);
    if (e == PARLEY_OK && x.err != PARLEY_OK) {
        snprintf(why, whylen, "%s refused: %s", screen_capture ? "screen capture" : "file",
                x.errtext);
        return code_of(x.err);
    }
    if (e != PARLEY_OK) {
        snprintf(why, whylen, "no upload slot: %s", parley_strerror(e));
        return code_of(e);
    }
    char err[700];
    e = parley_https_put(x.put, ca_file, path, type, timeout_ms, err, sizeof err);
    int rc = EXIT_OK;
    if (e != PARLEY_OK) {
        snprintf(why, whylen, "upload of %s failed: %s", name, err);
        rc = code_of(e);
    } else if ((e = parley_send_file_link(p, to, x.get, name, NULL, 0)) != PARLEY_OK) {
        snprintf(why, whylen, "link not sent: %s", parley_strerror(e));
        rc = code_of(e);
    } else {
        /* The server handles stanzas in order: the ping's answer means it has the link. */
        const char *bound = parley_bound_jid(p);
        const char *dom = strchr(bound, '@') ? strchr(bound, '@') + 1 : bound;
        char iq[600];
        snprintf(iq, sizeof iq, "<iq type='get' to='%.*s'><ping xmlns='urn:xmpp:ping'/></iq>",
                 (int)strcspn(dom, "/"), dom);
        if (parley_send_iq(p, iq, on_ping, &x, timeout_ms, NULL, 0) == PARLEY_OK)
            parley_run_until(p, confirmed, &x, timeout_ms);
        if (url_out)
            snprintf(url_out, url_len, "%s", x.get);
    }
    if (x.put)
        secure_wipe(x.put, strlen(x.put)); /* the upload capability */
    free(x.put);
    free(x.get);
    return rc;
}

int cli_get_file(const char *url, const char *ca_file, const char *dir, int timeout_ms,
                 char *out, size_t outlen, char *why, size_t whylen)
{
    /* The last path segment, percent-decoded, with anything that could leave dir or
     * hide the file replaced: the sender chose this name, not us. */
    const char *seg = strrchr(url, '/');
    char name[256];
    size_t n = 0;
    for (const char *c = seg ? seg + 1 : ""; *c && n + 1 < sizeof name; c++) {
        int ch = (unsigned char)*c;
        if (ch == '%' && c[1] && c[2]) {
            char hex[3] = {c[1], c[2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (!*end) {
                ch = (int)v;
                c += 2;
            }
        }
        if (ch == '/' || ch == '\\' || ch < 0x20 || ch == 0x7f || (n == 0 && ch == '.'))
            ch = '_';
        name[n++] = (char)ch;
    }
    name[n] = '\0';
    if (n == 0)
        snprintf(name, sizeof name, "download");
    snprintf(out, outlen, "%s/%s", dir, name);
    parley_error e = parley_https_get(url, ca_file, out, timeout_ms, why, whylen);
    return e == PARLEY_OK ? 0 : -1;
}
