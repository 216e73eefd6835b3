/* store_files.c - file-transfer metadata in the store and content-addressed objects on
 * disk (see store_files.h). */
#include "store_files.h"
#include "store_backend.h"
#include "../common/util.h"
#include "../common/xml.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define COLL_FILE "upload-file"
#define COLL_USAGE "upload-usage"
#define META_KEY "meta"
#define META_MAX 16384

static const char *state_names[] = {"pending", "quarantined", "available"};

const char *file_state_name(file_state s)
{
    return (unsigned)s < 3 ? state_names[s] : "?";
}

void file_meta_clear(file_meta *m)
{
    free(m->sender);
    free(m->recipient);
    free(m->name);
    free(m->declared_type);
    free(m->type);
    memset(m, 0, sizeof *m);
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[n] == '\0';
}

/* ---- metadata: one <file/> element per file ---- */

static void set_attr_i64(xml_node *n, const char *name, int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, v);
    xml_set_attr(n, name, num);
}

static void set_opt(xml_node *n, const char *name, const char *v)
{
    if (v)
        xml_set_attr(n, name, v);
}

store_status files_meta_put(store *st, const file_meta *m)
{
    if (!is_hex(m->id, FILES_ID_LEN))
        return store_set_error(st, "files: malformed file id");
    xml_node *n = xml_new(FILES_NS, "file");
    xml_set_attr(n, "id", m->id);
    set_opt(n, "sender", m->sender);
    set_opt(n, "recipient", m->recipient);
    set_opt(n, "name", m->name);
    set_opt(n, "declared-type", m->declared_type);
    set_opt(n, "type", m->type);
    set_attr_i64(n, "size", m->size);
    if (m->sha256[0])
        xml_set_attr(n, "sha256", m->sha256);
    xml_set_attr(n, "screen-capture", m->screen_capture ? "1" : "0");
    xml_set_attr(n, "state", file_state_name(m->state));
    set_attr_i64(n, "created", m->created_us);
    set_attr_i64(n, "uploaded", m->uploaded_us);
    set_attr_i64(n, "expires", m->expires_us);
    char *text = xml_to_string(n, NULL);
    xml_free(n);
    store_status rc = store_kv_put(st, COLL_FILE, m->id, META_KEY, text);
    free(text);
    return rc;
}

static int get_i64(const xml_node *n, const char *name, int64_t *out)
{
    const char *v = xml_get_attr(n, name);
    if (!v || !*v)
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end)
        return -1;
    *out = x;
    return 0;
}

static char *dup_attr(const xml_node *n, const char *name)
{
    const char *v = xml_get_attr(n, name);
    return v ? xstrdup(v) : NULL;
}

/* 0, or -1 if the document is not a well-formed entry (never trusted blindly: the
 * store may be shared and edited). */
static int decode_meta(const char *text, file_meta *m)
{
    memset(m, 0, sizeof *m);
    xml_node *n = xml_parse_document(text, strlen(text), FILES_NS, META_MAX);
    if (!n)
        return -1;
    int rc = -1;
    const char *id = xml_get_attr(n, "id");
    const char *sha = xml_get_attr(n, "sha256");
    const char *state = xml_get_attr(n, "state");
    int s = -1;
    for (int i = 0; state && i < 3; i++)
        if (strcmp(state, state_names[i]) == 0)
            s = i;
    if (xml_is(n, FILES_NS, "file") && id && is_hex(id, FILES_ID_LEN) && s >= 0 &&
        (!sha || is_hex(sha, FILES_SHA_LEN)) && get_i64(n, "size", &m->size) == 0 &&
        m->size >= 0 && get_i64(n, "created", &m->created_us) == 0 &&
        get_i64(n, "uploaded", &m->uploaded_us) == 0 &&
        get_i64(n, "expires", &m->expires_us) == 0 && (s == FILE_PENDING || sha)) {
        memcpy(m->id, id, FILES_ID_LEN + 1);
        if (sha)
            memcpy(m->sha256, sha, FILES_SHA_LEN + 1);
        m->sender = dup_attr(n, "sender");
        m->recipient = dup_attr(n, "recipient");
        m->name = dup_attr(n, "name");
        m->declared_type = dup_attr(n, "declared-type");
        m->type = dup_attr(n, "type");
        m->screen_capture = str_eq(xml_get_attr(n, "screen-capture"), "1");
        m->state = (file_state)s;
        rc = 0;
    }
    xml_free(n);
    return rc;
}

store_status files_meta_get(store *st, const char *id, file_meta *m)
{
    memset(m, 0, sizeof *m);
    char *text = NULL;
    store_status rc = store_kv_get(st, COLL_FILE, id, META_KEY, &text);
    if (rc != STORE_OK)
        return rc;
    int bad = decode_meta(text, m);
    free(text);
    if (bad) {
        file_meta_clear(m);
        return STORE_NOT_FOUND;
    }
    return STORE_OK;
}

store_status files_meta_del(store *st, const char *id)
{
    return store_kv_del(st, COLL_FILE, id, NULL);
}

typedef struct list_ctx {
    void (*fn)(void *ud, const file_meta *m);
    void *ud;
} list_ctx;

static void list_one(void *ud, const char *owner, const char *key, const char *value)
{
    list_ctx *c = ud;
    file_meta m;
    if (strcmp(key, META_KEY) != 0 || decode_meta(value, &m) < 0)
        return;
    c->fn(c->ud, &m);
    file_meta_clear(&m);
}

store_status files_meta_list(store *st, void (*fn)(void *ud, const file_meta *m), void *ud)
{
    list_ctx c = {fn, ud};
    return store_kv_list(st, COLL_FILE, NULL, list_one, &c);
}

/* ---- daily tally ---- */

void files_day(int64_t ts_us, char out[11])
{
    time_t t = (time_t)(ts_us / 1000000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, 11, "%Y-%m-%d", &tm) != 10)
        snprintf(out, 11, "0000-00-00");
}

store_status files_usage_get(store *st, const char *user, const char *day, int64_t *bytes)
{
    char *v = NULL;
    *bytes = 0;
    store_status rc = store_kv_get(st, COLL_USAGE, user, day, &v);
    if (rc == STORE_NOT_FOUND)
        return STORE_OK;
    if (rc != STORE_OK)
        return rc;
    *bytes = strtoll(v, NULL, 10);
    if (*bytes < 0)
        *bytes = 0;
    free(v);
    return STORE_OK;
}

store_status files_usage_add(store *st, const char *user, const char *day, int64_t delta)
{
    int64_t cur;
    store_status rc = files_usage_get(st, user, day, &cur);
    if (rc != STORE_OK)
        return rc;
    cur += delta;
    if (cur < 0)
        cur = 0;
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, cur);
    return store_kv_put(st, COLL_USAGE, user, day, num);
}

/* ---- objects ---- */

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

int files_dir_init(const char *dir, int clean_tmp, char *err, size_t errlen)
{
    char path[4096];
    const char *subs[] = {"", "/objects", "/tmp"};
    for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
        snprintf(path, sizeof path, "%s%s", dir, subs[i]);
        if (make_dir(path) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return -1;
        }
    }
    if (!clean_tmp)
        return 0;
    snprintf(path, sizeof path, "%s/tmp", dir);
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096 + 300];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    return 0;
}

int files_object_path(const char *dir, const char *sha, char *out, size_t outlen)
{
    if (!sha || !is_hex(sha, FILES_SHA_LEN))
        return -1;
    int n = snprintf(out, outlen, "%s/objects/%.2s/%s", dir, sha, sha);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

int files_tmp_create(const char *dir, char *path, size_t pathlen)
{
    char name[33];
    random_token(name, sizeof name - 1);
    int n = snprintf(path, pathlen, "%s/tmp/%s.part", dir, name);
    if (n < 0 || (size_t)n >= pathlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
}

int files_commit(const char *dir, const char *tmp_path, int fd, const char *sha)
{
    char obj[4096], sub[4096];
    if (files_object_path(dir, sha, obj, sizeof obj) < 0) {
        errno = EINVAL;
        return -1;
    }
    /* Durable before visible: the rename must not publish bytes still in the cache. */
    if (fsync(fd) < 0)
        return -1;
    snprintf(sub, sizeof sub, "%s/objects/%.2s", dir, sha);
    if (make_dir(sub) < 0)
        return -1;
    struct stat sb;
    if (stat(obj, &sb) == 0) { /* the same content is already stored */
        unlink(tmp_path);
        return 0;
    }
    if (rename(tmp_path, obj) < 0)
        return -1;
    int dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Objects are shared by the files of the same content, and both parleyd and parleyctl
 * add and remove them: a file's metadata is removed together with the object it leaves
 * unused (files_remove), and an object is published together with its file's metadata
 * (files_publish), each under an exclusive lock on upload_dir/objects.lock. The wait is
 * bounded: a holder that does not let go makes the operation fail, never hang. */
#define OBJECTS_LOCK_WAIT_MS 5000

static int objects_lock(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/objects.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    for (int waited = 0;; waited += 10) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        if ((errno != EWOULDBLOCK && errno != EINTR) || waited >= OBJECTS_LOCK_WAIT_MS) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

static void objects_unlock(int fd)
{
    close(fd); /* releases the lock */
}

typedef struct users_of {
    const char *sha;
    const char *except;
    int n;
} users_of;

static void count_user(void *ud, const file_meta *m)
{
    users_of *u = ud;
    if (strcmp(m->id, u->except) != 0 && strcmp(m->sha256, u->sha) == 0)
        u->n++;
}

/* Remove the object sha unless a file other than except_id still uses it. Under the
 * objects lock. */
static store_status drop_unused_object(store *st, const char *dir, const char *sha,
                                       const char *except_id)
{
    users_of u = {sha, except_id, 0};
    store_status rc = files_meta_list(st, count_user, &u);
    char obj[4096];
    if (rc == STORE_OK && u.n == 0 && files_object_path(dir, sha, obj, sizeof obj) == 0)
        unlink(obj);
    return rc;
}

store_status files_remove(store *st, const char *dir, const char *id)
{
    int lock = objects_lock(dir);
    if (lock < 0)
        return store_set_error(st, "files: cannot lock %s/objects.lock: %s", dir,
                               strerror(errno));
    file_meta m;
    store_status rc = files_meta_get(st, id, &m);
    if (rc != STORE_OK) {
        rc = rc == STORE_NOT_FOUND ? files_meta_del(st, id) : rc;
    } else {
        rc = files_meta_del(st, id);
        if (rc == STORE_OK && m.sha256[0])
            rc = drop_unused_object(st, dir, m.sha256, m.id);
    }
    file_meta_clear(&m);
    objects_unlock(lock);
    return rc;
}

int files_publish(store *st, const char *dir, const char *tmp_path, int fd, const file_meta *m)
{
    int lock = objects_lock(dir);
    if (lock < 0)
        return -1;
    if (files_commit(dir, tmp_path, fd, m->sha256) < 0) {
        int e = errno;
        objects_unlock(lock);
        errno = e;
        return -1;
    }
    int rc = 0;
    if (files_meta_put(st, m) != STORE_OK) {
        (void)drop_unused_object(st, dir, m->sha256, m->id);
        rc = -2;
    }
    objects_unlock(lock);
    return rc;
}

int files_load_key(const char *dir, unsigned char key[FILES_KEY_LEN], char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/capability.key", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        unsigned char fresh[FILES_KEY_LEN];
        random_bytes(fresh, sizeof fresh);
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.new", path);
        int w = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        int ok = w >= 0 && write(w, fresh, sizeof fresh) == (ssize_t)sizeof fresh &&
                 fsync(w) == 0;
        if (w >= 0)
            close(w);
        secure_wipe(fresh, sizeof fresh);
        /* link, not rename: if another process made the key meanwhile, theirs wins */
        if (!ok || (link(tmp, path) < 0 && errno != EEXIST)) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            unlink(tmp);
            return -1;
        }
        unlink(tmp);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, key, FILES_KEY_LEN);
    close(fd);
    if (n != FILES_KEY_LEN) {
        snprintf(err, errlen, "%s: not a %d-byte key", path, FILES_KEY_LEN);
        return -1;
    }
    return 0;
}
