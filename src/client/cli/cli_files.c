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

#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_PARLEY_UPLOAD "urn:parley:upload:0"

typedef struct xfer {
    int answered;
    parley_error err;
    char errtext[600];
    char *put, *get;
    int confirmed;
    /* What the server says after the upload, seen by watch(). */
    const char *to;
    int room;                 /* to is a group chat */
    int joining;              /* we are joining it for this transfer */
    char service[300];        /* upload.DOMAIN, whose notices say a file was blocked */
    char file_id[128];        /* the file's id in its GET URL (/file/ID/CAP/NAME) */
    int blocked;
    char blocked_text[700];
    char link_id[64];         /* the link message, once sent */
    int echoed;               /* the room sent our link back to us */
    int refused;              /* the link (or the join) came back as an error */
    parley_error refused_err;
    char refused_text[600];
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

/* The link is through: the server answered the ping sent after it (it handles stanzas
 * in order), or the room sent it back; or it was refused. */
static int link_done(parley *p, void *ud)
{
    xfer *x = ud;
    return x->refused || (x->room ? x->echoed : x->confirmed);
}

static int joined(parley *p, void *ud)
{
    xfer *x = ud;
    return x->refused || parley_room_nick(p, x->to) != NULL;
}

static int blocked(parley *p, void *ud)
{
    return ((xfer *)ud)->blocked;
}

static int code_of(parley_error e)
{
    return e == PARLEY_ERR_POLICY ? EXIT_POLICY : e == PARLEY_ERR_TIMEOUT ? EXIT_TIMEOUT
           : e == PARLEY_ERR_UNREACHABLE ? EXIT_UNREACHABLE
           : e == PARLEY_ERR_CERTIFICATE ? EXIT_CERTIFICATE
           : e == PARLEY_ERR_INVALID ? EXIT_USAGE : EXIT_PROTOCOL;
}

/* "from" is the bare JID jid or one of its full JIDs (a room's occupants). */
static int from_bare(const char *from, const char *jid)
{
    size_t n = strlen(jid);
    return from && strncasecmp(from, jid, n) == 0 && (from[n] == '\0' || from[n] == '/');
}

/* A stanza error as "condition: text", and whether a policy refused it. */
static parley_error error_of(const parley_stanza *s, char *out, size_t outlen)
{
    const parley_stanza *err = parley_stanza_child(s, NULL, "error");
    const char *cond = NULL;
    char *text = NULL;
    for (const parley_stanza *c = err ? parley_stanza_child(err, NS_STANZAS, NULL) : NULL; c;
         c = parley_stanza_next(c, NS_STANZAS, NULL)) {
        if (strcmp(parley_stanza_name(c), "text") != 0)
            cond = cond ? cond : parley_stanza_name(c);
        else if (!text)
            text = parley_stanza_text(c);
    }
    snprintf(out, outlen, "%s%s%s", cond ? cond : "undefined-condition",
             text && *text ? ": " : "", text && *text ? text : "");
    free(text);
    static const char *policy[] = {"policy-violation", "forbidden", "not-allowed",
                                   "not-acceptable"};
    for (size_t i = 0; cond && i < ARRAY_LEN(policy); i++)
        if (strcmp(cond, policy[i]) == 0)
            return PARLEY_ERR_POLICY;
    return PARLEY_ERR_PROTOCOL;
}

/* Sees every stanza while a transfer runs (and lets each pass on to the application):
 * the refusal of our link or of the room join, the room's echo of the link, and
 * upload.DOMAIN's notice that the compliance server blocked our file. */
static int watch(parley *p, const parley_stanza *s, void *ud)
{
    xfer *x = ud;
    const char *name = parley_stanza_name(s), *type = parley_stanza_attr(s, "type");
    const char *from = parley_stanza_attr(s, "from"), *id = parley_stanza_attr(s, "id");
    int is_msg = strcmp(name, "message") == 0;
    int ours = is_msg && x->link_id[0] && id && strcmp(id, x->link_id) == 0;
    if (type && strcmp(type, "error") == 0) {
        if (!x->refused && (ours || (!is_msg && x->joining && from_bare(from, x->to)))) {
            x->refused = 1;
            x->refused_err = error_of(s, x->refused_text, sizeof x->refused_text);
        }
    } else if (ours && x->room && from_bare(from, x->to)) {
        x->echoed = 1;
    } else if (is_msg && from && strcasecmp(from, x->service) == 0) {
        const parley_stanza *f = parley_stanza_child(s, NS_PARLEY_UPLOAD, "file-blocked");
        const char *fid = f ? parley_stanza_attr(f, "id") : NULL;
        const parley_stanza *b = parley_stanza_child(s, NULL, "body");
        if (fid && x->file_id[0] && strcmp(fid, x->file_id) == 0 && b) {
            char *text = parley_stanza_text(b);
            snprintf(x->blocked_text, sizeof x->blocked_text, "%s", text);
            free(text);
            x->blocked = 1;
        }
    }
    return 0;
}

/* The ID in https://host/file/ID/CAP/NAME, as upload.DOMAIN's notices name the file. */
static void file_id_of(const char *url, char *out, size_t outlen)
{
    const char *f = strstr(url, "/file/");
    size_t n = f ? strcspn(f + 6, "/") : 0;
    snprintf(out, outlen, "%.*s", n < outlen ? (int)n : 0, f ? f + 6 : "");
}

/* With a compliance server the upload is held (404 to downloaders) until its verdict:
 * wait for it, so that a blocked file is reported here and no dead link is sent. A
 * release is silent, so ask (HEAD) with growing pauses; a block comes as a notice.
 * Returns 1 when released (or not held at all), 0 when blocked, -1 when still held
 * after timeout_ms. */
static int wait_verdict(parley *p, xfer *x, const char *ca_file, int timeout_ms)
{
    char err[300];
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int pause = 100;; pause = pause < 1000 ? pause * 2 : 1000) {
        if (x->blocked)
            return 0;
        /* Only a 404 means held; any other failure of the check is no reason to stop. */
        if (parley_https_head(x->get, ca_file, timeout_ms, err, sizeof err) != PARLEY_ERR_INVALID)
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long spent = (now.tv_sec - t0.tv_sec) * 1000LL + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (spent >= timeout_ms)
            return -1;
        parley_error e = parley_run_until(p, blocked, x, pause);
        if (e != PARLEY_OK && e != PARLEY_ERR_TIMEOUT)
            return x->blocked ? 0 : 1; /* offline: sending the link will say so */
    }
}

/* Say why the upload itself failed, in words: the server's reason is in err. */
static void put_failed(const char *name, const char *err, char *why, size_t whylen)
{
    if (strncmp(err, "HTTP 507", 8) == 0)
        snprintf(why, whylen, "upload of %s failed: the server is out of storage space "
                              "(disk full; try again later or send a smaller file): %s",
                 name, err);
    else if (strncmp(err, "HTTP 403", 8) == 0 || strncmp(err, "HTTP 413", 8) == 0)
        snprintf(why, whylen, "upload of %s refused: %s", name, err);
    else
        snprintf(why, whylen, "upload of %s failed: %s", name, err);
}

static int send_link(parley *p, xfer *x, const char *name, int timeout_ms, char *why,
                     size_t whylen)
{
    parley_error e = x->room ? parley_room_send_file_link(p, x->to, x->get, name, x->link_id,
                                                          sizeof x->link_id)
                             : parley_send_file_link(p, x->to, x->get, name, x->link_id,
                                                     sizeof x->link_id);
    if (e != PARLEY_OK) {
        snprintf(why, whylen, "link not sent: %s", parley_strerror(e));
        return code_of(e);
    }
    if (!x->room) {
        const char *bound = parley_bound_jid(p);
        const char *dom = strchr(bound, '@') ? strchr(bound, '@') + 1 : bound;
        char iq[600];
        snprintf(iq, sizeof iq, "<iq type='get' to='%.*s'><ping xmlns='urn:xmpp:ping'/></iq>",
                 (int)strcspn(dom, "/"), dom);
        if (parley_send_iq(p, iq, on_ping, x, timeout_ms, NULL, 0) != PARLEY_OK)
            return EXIT_OK;
    }
    e = parley_run_until(p, link_done, x, timeout_ms);
    if (x->refused) {
        snprintf(why, whylen, "link to %s refused: %s", x->to, x->refused_text);
        return code_of(x->refused_err);
    }
    if (e != PARLEY_OK) {
        snprintf(why, whylen, "link to %s not confirmed: %s", x->to, parley_strerror(e));
        return code_of(e);
    }
    return EXIT_OK;
}

/* Join the room for this transfer unless we are in it already (the interactive client
 * is; `parley send-file --room` is not). 1: joined here, 0: already in, -1: refused. */
static int enter_room(parley *p, xfer *x, int timeout_ms, char *why, size_t whylen, int *rc)
{
    if (parley_room_nick(p, x->to))
        return 0;
    x->joining = 1;
    parley_error e = parley_room_join(p, x->to, NULL, NULL);
    if (e == PARLEY_OK)
        e = parley_run_until(p, joined, x, timeout_ms);
    x->joining = 0;
    if (x->refused || e != PARLEY_OK) {
        snprintf(why, whylen, "cannot enter room %s: %s", x->to,
                 x->refused ? x->refused_text : parley_strerror(e));
        *rc = code_of(x->refused ? x->refused_err : e);
        return -1;
    }
    return 1;
}

int cli_send_file(parley *p, const char *ca_file, const char *to, int room, const char *path,
                  const char *name, int screen_capture, int timeout_ms, char *url_out,
                  size_t url_len, char *why, size_t whylen)
{
    struct stat sb;
    why[0] = '\0';
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
    x.to = to;
    x.room = room;
    const char *bound = parley_bound_jid(p);
    const char *dom = strchr(bound, '@') ? strchr(bound, '@') + 1 : bound;
    snprintf(x.service, sizeof x.service, "upload.%.*s", (int)strcspn(dom, "/"), dom);
    int hook = parley_add_stanza_hook(p, NULL, NULL, watch, &x);
    int rc = EXIT_OK, entered = 0;
    if (hook < 0) {
        snprintf(why, whylen, "cannot watch the transfer");
        return EXIT_PROTOCOL;
    }
    if (room && (entered = enter_room(p, &x, timeout_ms, why, whylen, &rc)) < 0)
        goto done;
    const char *type = cli_guess_type(name);
    e = parley_request_upload_slot(p, name, (long long)sb.st_size, type, screen_capture, to,
                                   on_slot, &x);
    if (e == PARLEY_OK)
        e = parley_run_until(p, slot_done, &x, timeout_ms);
    if (e == PARLEY_OK && x.err != PARLEY_OK) {
        snprintf(why, whylen, "%s refused: %s", screen_capture ? "screen capture" : "file",
                x.errtext);
        rc = code_of(x.err);
        goto done;
    }
    if (e != PARLEY_OK) {
        snprintf(why, whylen, "no upload slot: %s", parley_strerror(e));
        rc = code_of(e);
        goto done;
    }
    char err[700];
    file_id_of(x.get, x.file_id, sizeof x.file_id);
    e = parley_https_put(x.put, ca_file, path, type, timeout_ms, err, sizeof err);
    if (e != PARLEY_OK) {
        put_failed(name, err, why, whylen);
        rc = code_of(e);
        goto done;
    }
    int verdict = wait_verdict(p, &x, ca_file, timeout_ms);
    if (verdict == 0) {
        snprintf(why, whylen, "%s", x.blocked_text);
        rc = EXIT_POLICY;
        goto done;
    }
    rc = send_link(p, &x, name, timeout_ms, why, whylen);
    if (rc == EXIT_OK && verdict < 0)
        snprintf(why, whylen, "%s is still held for the compliance server's verdict: it can "
                              "be downloaded once released", name);
    if (rc == EXIT_OK && url_out)
        snprintf(url_out, url_len, "%s", x.get);
done:
    parley_remove_stanza_hook(p, hook);
    if (entered > 0)
        parley_room_leave(p, to, NULL);
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
