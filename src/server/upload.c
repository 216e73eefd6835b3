/* upload.c - the XEP-0363 service upload.DOMAIN: discovery (with the requester's
 * max-file-size), slot requests judged by policy and by the compliance server, and the
 * start-up and periodic housekeeping of the file store. */
#include "upload.h"
#include "../common/dict.h"
#include "../common/jid.h"
#include "../common/log.h"
#include "../common/util.h"
#include "router.h"
#include "stanza.h"
#include "upload_policy.h"
#include "upload_types.h"

#include <magic.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_INTERVAL_MS 60000 /* at most; shorter when files expire sooner */
#define SWEEP_MIN_INTERVAL_MS 1000

/* How often the sweep runs: every minute, or, when files expire within minutes, often
 * enough that a file is gone within about half its lifetime after it expires. */
static int64_t sweep_interval_ms(const server *srv)
{
    long long expire = srv->cfg.upload_expire_after;
    if (expire <= 0 || expire * 1000 / 2 >= SWEEP_INTERVAL_MS)
        return SWEEP_INTERVAL_MS;
    return expire * 1000 / 2 < SWEEP_MIN_INTERVAL_MS ? SWEEP_MIN_INTERVAL_MS : expire * 1000 / 2;
}

void upload_capability(const server *srv, const char *purpose, const char *id, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "parley-upload-v1|%s|%s", purpose, id);
    if (!HMAC(EVP_sha256(), srv->upload->key, FILES_KEY_LEN, (const unsigned char *)msg,
              (size_t)n, mac, &maclen) || maclen != 32) {
        /* Never a guessable value: an impossible capability matches nothing. */
        memset(out, 'x', 64);
        out[64] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
}

/* ---- replies ---- */

static void send_error(server *srv, const xml_node *iq, const char *etype, const char *cond,
                       const char *text, int64_t max_size)
{
    xml_node *err = stanza_error(iq, etype, cond, text);
    if (!err)
        return;
    if (max_size > 0) {
        xml_node *e = xml_child(err, NULL, "error");
        xml_node *big = xml_add_child(e, UPLOAD_NS, "file-too-large");
        xml_node *mx = xml_add_child(big, NULL, "max-file-size");
        char num[32];
        snprintf(num, sizeof num, "%" PRId64, max_size);
        xml_add_text(mx, num, strlen(num));
    }
    router_send(srv, err);
}

static void disco_info(server *srv, const xml_node *iq, const char *user)
{
    xml_node *r = stanza_iq_result(iq);
    xml_node *q = xml_add_child(r, XMLNS_DISCO_INFO, "query");
    xml_node *id = xml_add_child(q, NULL, "identity");
    xml_set_attr(id, "category", "store");
    xml_set_attr(id, "type", "file");
    xml_set_attr(id, "name", "HTTP File Upload");
    xml_set_attr(xml_add_child(q, NULL, "feature"), "var", XMLNS_DISCO_INFO);
    xml_set_attr(xml_add_child(q, NULL, "feature"), "var", UPLOAD_NS);
    xml_set_attr(xml_add_child(q, NULL, "feature"), "var", FILES_NS);
    /* XEP-0363 section 4: the largest file this requester may upload (its policy under
     * the server's ceiling). */
    upload_policy pol;
    int64_t max = (int64_t)srv->cfg.upload_max_size;
    if (user && upload_policy_get(srv, user, &pol) == 0) {
        if (pol.max_file_size < max)
            max = pol.max_file_size;
        upload_policy_clear(&pol);
    }
    xml_node *x = xml_add_child(q, "jabber:x:data", "x");
    xml_set_attr(x, "type", "result");
    xml_node *f = xml_add_child(x, NULL, "field");
    xml_set_attr(f, "var", "FORM_TYPE");
    xml_set_attr(f, "type", "hidden");
    xml_node *v = xml_add_child(f, NULL, "value");
    xml_add_text(v, UPLOAD_NS, strlen(UPLOAD_NS));
    f = xml_add_child(x, NULL, "field");
    xml_set_attr(f, "var", "max-file-size");
    v = xml_add_child(f, NULL, "value");
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, max);
    xml_add_text(v, num, strlen(num));
    router_send(srv, r);
}

/* ---- slots ---- */

/* Percent-encode a name for a URL path segment (RFC 3986 unreserved kept). */
static void url_escape(buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            buf_append(out, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(out, e, 3);
        }
    }
}

static char *slot_url(server *srv, const char *purpose, const char *id, const char *name)
{
    char cap[65];
    upload_capability(srv, purpose, id, cap);
    buf u;
    buf_init(&u);
    buf_appendf(&u, "%s/%s/%s/%s/", srv->cfg.upload_url,
                strcmp(purpose, "put") == 0 ? "upload" : "file", id, cap);
    url_escape(&u, name);
    OPENSSL_cleanse(cap, sizeof cap);
    return buf_steal(&u);
}

typedef struct slot_req {
    xml_node *iq;
    file_meta m;
} slot_req;

static void grant(server *srv, slot_req *sr)
{
    file_meta *m = &sr->m;
    char day[11];
    files_day(m->created_us, day);
    char *bare = jid_normalize_bare(m->sender);
    if (files_meta_put(srv->store, m) != STORE_OK ||
        files_usage_add(srv->store, bare ? bare : m->sender, day, m->size) != STORE_OK) {
        log_error("upload: cannot store the slot of %s: %s", m->sender,
                  store_last_error(srv->store));
        send_error(srv, sr->iq, "wait", "internal-server-error",
                   "the file store is unavailable; try again later", 0);
        free(bare);
        return;
    }
    free(bare);
    xml_node *r = stanza_iq_result(sr->iq);
    xml_node *slot = xml_add_child(r, UPLOAD_NS, "slot");
    char *put = slot_url(srv, "put", m->id, m->name);
    char *get = slot_url(srv, "get", m->id, m->name);
    xml_set_attr(xml_add_child(slot, NULL, "put"), "url", put);
    xml_set_attr(xml_add_child(slot, NULL, "get"), "url", get);
    OPENSSL_cleanse(put, strlen(put));
    free(put);
    free(get);
    log_info("upload: slot %.8s... granted to %s (%" PRId64 " bytes%s)", m->id, m->sender,
             m->size, m->screen_capture ? ", screen capture" : "");
    router_send(srv, r);
}

static void on_request_verdict(server *srv, void *ud, int allow, const char *verdict,
                               const char *reason)
{
    slot_req *sr = ud;
    if (allow) {
        grant(srv, sr);
    } else {
        char text[600];
        snprintf(text, sizeof text, "refused by the compliance server: %s",
                 reason ? reason : "no reason given");
        upload_record(srv, &sr->m, "slot", "blocked-compliance", verdict, text, NULL, NULL, NULL);
        if (str_eq(verdict, "block-unchecked"))
            send_error(srv, sr->iq, "wait", "service-unavailable", text, 0);
        else
            send_error(srv, sr->iq, "modify", "policy-violation", text, 0);
    }
    xml_free(sr->iq);
    file_meta_clear(&sr->m);
    free(sr);
}

static int parse_size(const char *s, int64_t *out)
{
    if (!s || !*s || strlen(s) > 18 || strspn(s, "0123456789") != strlen(s))
        return -1;
    *out = strtoll(s, NULL, 10);
    return 0;
}

static void slot_request(server *srv, const xml_node *iq, const xml_node *req, const char *user)
{
    const char *from = xml_get_attr(iq, "from");
    const char *fname = xml_get_attr(req, "filename");
    const char *ctype = xml_get_attr(req, "content-type");
    int64_t size;
    if (!fname || !*fname || strlen(fname) > 1024) {
        send_error(srv, iq, "modify", "bad-request", "a slot request needs a filename", 0);
        return;
    }
    if (parse_size(xml_get_attr(req, "size"), &size) < 0 || size <= 0) {
        send_error(srv, iq, "modify", "bad-request", "a slot request needs a size in bytes > 0", 0);
        return;
    }
    if (ctype && !types_valid_media_type(ctype)) {
        send_error(srv, iq, "modify", "bad-request", "content-type is not a media type", 0);
        return;
    }
    char *recipient = NULL;
    const xml_node *rcpt = xml_child(req, FILES_NS, "recipient");
    if (rcpt) {
        const char *j = xml_get_attr(rcpt, "jid");
        recipient = j ? jid_normalize(j) : NULL;
        if (!recipient) {
            send_error(srv, iq, "modify", "jid-malformed", "the intended recipient is not a JID", 0);
            return;
        }
    }
    slot_req *sr = xcalloc(1, sizeof *sr);
    file_meta *m = &sr->m;
    char raw_id[FILES_ID_LEN / 2];
    random_bytes(raw_id, sizeof raw_id);
    for (size_t i = 0; i < sizeof raw_id; i++)
        snprintf(m->id + 2 * i, 3, "%02x", (unsigned char)raw_id[i]);
    m->sender = xstrdup(from);
    m->recipient = recipient;
    m->name = types_sanitize_name(fname);
    m->declared_type = ctype ? xstrdup(ctype) : NULL;
    m->size = size;
    m->screen_capture = xml_child(req, FILES_NS, "screen-capture") != NULL;
    m->state = FILE_PENDING;
    m->created_us = time_now_us();
    m->expires_us = m->created_us + (int64_t)UPLOAD_SLOT_SECONDS * 1000000;
    sr->iq = xml_copy(iq);

    upload_policy pol;
    char why[512];
    const char *refused = NULL;
    int64_t used = 0;
    char day[11];
    files_day(m->created_us, day);
    if (upload_policy_get(srv, user, &pol) < 0) {
        send_error(srv, iq, "wait", "internal-server-error",
                   "your file transfer policy cannot be read; try again later", 0);
        xml_free(sr->iq);
        file_meta_clear(m);
        free(sr);
        return;
    }
    if (files_usage_get(srv->store, user, day, &used) != STORE_OK)
        log_warn("upload: daily tally of %s unreadable: %s", user, store_last_error(srv->store));
    refused = upload_policy_check_request(&pol, m->name, ctype, size, m->screen_capture, used,
                                          why, sizeof why);
    int64_t max = pol.max_file_size;
    upload_policy_clear(&pol);
    if (refused) {
        log_info("upload: slot for %s refused: %s", from, why);
        upload_record(srv, m, "slot", "blocked-policy", "block", why, NULL, NULL, NULL);
        if (strcmp(refused, "max_file_size") == 0)
            send_error(srv, iq, "modify", "not-acceptable", why, max);
        else if (strcmp(refused, "file_daily_quota") == 0)
            send_error(srv, iq, "wait", "resource-constraint", why, 0);
        else
            send_error(srv, iq, "cancel", "not-allowed", why, 0);
        xml_free(sr->iq);
        file_meta_clear(m);
        free(sr);
        return;
    }
    upload_ask_verdict(srv, m, "request", on_request_verdict, sr);
}

/* ---- the service ---- */

static void deliver(server *srv, void *ud, xml_node *stanza)
{
    const char *type = xml_get_attr(stanza, "type");
    if (strcmp(stanza->name, "iq") != 0) {
        if (strcmp(stanza->name, "message") == 0 && !str_eq(type, "error") &&
            !str_eq(type, "headline"))
            router_bounce(srv, stanza, "cancel", "service-unavailable",
                          "the upload service takes no messages");
        xml_free(stanza);
        return;
    }
    if (!str_eq(type, "get") && !str_eq(type, "set")) {
        xml_free(stanza);
        return;
    }
    const xml_node *p = xml_first_element(stanza);
    jid from;
    char *user = NULL;
    if (jid_parse(xml_get_attr(stanza, "from") ? xml_get_attr(stanza, "from") : "", &from) == 0) {
        if (from.local && router_is_local_domain(srv, from.domain))
            user = jid_bare(&from);
        jid_clear(&from);
    }
    if (!p) {
        router_bounce(srv, stanza, "modify", "bad-request", "an IQ request carries one payload");
    } else if (str_eq(type, "get") && xml_is(p, XMLNS_DISCO_INFO, "query") &&
               !xml_get_attr(p, "node")) {
        disco_info(srv, stanza, user);
    } else if (str_eq(type, "get") && xml_is(p, XMLNS_DISCO_ITEMS, "query")) {
        xml_node *r = stanza_iq_result(stanza);
        xml_add_child(r, XMLNS_DISCO_ITEMS, "query");
        router_send(srv, r);
    } else if (str_eq(type, "get") && xml_is(p, UPLOAD_NS, "request")) {
        if (!user)
            router_bounce(srv, stanza, "auth", "forbidden",
                          "only accounts of this server may upload");
        else
            slot_request(srv, stanza, p, user);
    } else {
        router_bounce(srv, stanza, "cancel", "service-unavailable", NULL);
    }
    free(user);
    xml_free(stanza);
}

/* ---- housekeeping ---- */

typedef struct sweep {
    int64_t now_us;
    char **ids;
    int *what; /* 1: unused slot, 2: expired file, 3: quarantined (judge again) */
    size_t n, cap;
    int64_t lost_before_us; /* quarantined before this: its verdict was lost (restart) */
} sweep;

static void sweep_one(void *ud, const file_meta *m)
{
    sweep *s = ud;
    int what = 0;
    if (m->state == FILE_PENDING && m->expires_us < s->now_us)
        what = 1;
    else if (m->state != FILE_PENDING && m->expires_us && m->expires_us < s->now_us)
        what = 2;
    else if (m->state == FILE_QUARANTINED && m->uploaded_us < s->lost_before_us)
        what = 3;
    if (!what)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->ids = xrealloc(s->ids, s->cap * sizeof *s->ids);
        s->what = xrealloc(s->what, s->cap * sizeof *s->what);
    }
    s->ids[s->n] = xstrdup(m->id);
    s->what[s->n++] = what;
}

static void run_sweep(server *srv)
{
    int64_t now = time_now_us();
    /* A verdict is answered or timed out within compliance_server_timeout: a file still
     * quarantined well after that lost its request (parleyd restarted meanwhile). Asked
     * again only then, so that the compliance server has had time to reconnect. */
    sweep s = {now, NULL, NULL, 0, 0,
               now - (int64_t)srv->cfg.compliance_server_timeout * 1000 -
                   sweep_interval_ms(srv) * 1000};
    if (files_meta_list(srv->store, sweep_one, &s) != STORE_OK)
        log_warn("upload: cannot list files: %s", store_last_error(srv->store));
    for (size_t i = 0; i < s.n; i++) {
        file_meta m;
        if (files_meta_get(srv->store, s.ids[i], &m) != STORE_OK) {
            free(s.ids[i]);
            continue;
        }
        if (s.what[i] == 3) {
            upload_judge(srv, m.id); /* the verdict asked before a restart is lost */
        } else if (files_remove(srv->store, srv->cfg.upload_dir, m.id) == STORE_OK) {
            if (s.what[i] == 1) {
                char day[11];
                files_day(m.created_us, day);
                char *bare = jid_normalize_bare(m.sender);
                (void)files_usage_add(srv->store, bare ? bare : m.sender, day, -m.size);
                free(bare);
            } else {
                log_info("upload: file %.8s... (%s) expired", m.id, m.name ? m.name : "");
                char detail[160];
                snprintf(detail, sizeof detail, "id=%s sha256=%s", m.id, m.sha256);
                compliance_audit(srv, "server", "file-expire", m.sender, NULL, detail);
            }
        }
        file_meta_clear(&m);
        free(s.ids[i]);
    }
    free(s.ids);
    free(s.what);
}

void upload_housekeeping(server *srv)
{
    if (!srv->upload)
        return;
    int64_t now = time_mono_ms();
    if (now < srv->upload->next_sweep_ms)
        return;
    srv->upload->next_sweep_ms = now + sweep_interval_ms(srv);
    run_sweep(srv);
}

int upload_open(server *srv)
{
    if (!srv->cfg.https_port)
        return 0;
    char err[512];
    if (files_dir_init(srv->cfg.upload_dir, 1, err, sizeof err) < 0) {
        log_error("upload_dir: %s", err);
        return -1;
    }
    upload *u = xcalloc(1, sizeof *u);
    if (files_load_key(srv->cfg.upload_dir, u->key, err, sizeof err) < 0) {
        log_error("upload: %s", err);
        free(u);
        return -1;
    }
    magic_t mg = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
    if (!mg || magic_load(mg, NULL) != 0) {
        log_error("upload: libmagic cannot load its database: %s",
                  mg ? magic_error(mg) : "out of memory");
        if (mg)
            magic_close(mg);
        OPENSSL_cleanse(u->key, sizeof u->key);
        free(u);
        return -1;
    }
    u->magic = mg;
    u->uploading = dict_new();
    srv->upload = u;
    if (router_add_service(srv, srv->cfg.upload_domain, deliver, u) < 0) {
        log_error("upload: cannot serve %s (the domain is taken)", srv->cfg.upload_domain);
        upload_close(srv);
        return -1;
    }
    /* A file size limit (RLIMIT_FSIZE) or a full file system must fail the write with
     * EFBIG (507 to the uploader), never kill the server with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    run_sweep(srv);
    u->next_sweep_ms = time_mono_ms() + sweep_interval_ms(srv);
    log_info("file transfer: %s, files in %s, at most %zu bytes, kept %lld seconds (0: forever)",
             srv->cfg.upload_domain, srv->cfg.upload_dir, srv->cfg.upload_max_size,
             srv->cfg.upload_expire_after);
    return 0;
}

void upload_close(server *srv)
{
    upload *u = srv->upload;
    if (!u)
        return;
    router_remove_service(srv, srv->cfg.upload_domain);
    magic_close(u->magic);
    dict_free(u->uploading, NULL);
    OPENSSL_cleanse(u->key, sizeof u->key);
    free(u);
    srv->upload = NULL;
}
