/* store_files.h - managed file transfer storage (XEP-0363), shared by parleyd and
 * parleyctl: each file's metadata as a small document in the store (store_kv), its bytes
 * content-addressed under upload_dir, and the per-user daily upload tally.
 *
 * No name from a user ever reaches the file system: an object's path is derived only from
 * the SHA-256 the server computed over its bytes (upload_dir/objects/ab/abcd...), and a
 * transfer in progress lives in upload_dir/tmp under a random name until it is complete
 * and hashed, then renamed into place (so a killed upload leaves no half file visible).
 * Identical content is stored once; the object goes when the last file using it does. */
#ifndef PARLEY_STORE_FILES_H
#define PARLEY_STORE_FILES_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define FILES_ID_LEN 32     /* hex characters of a file (slot) id: 128 random bits */
#define FILES_SHA_LEN 64    /* hex characters of a SHA-256 */
#define FILES_KEY_LEN 32    /* bytes of the capability key */
#define FILES_NS "urn:parley:upload:0"

typedef enum {
    FILE_PENDING = 0,   /* slot granted, nothing uploaded yet */
    FILE_QUARANTINED,   /* uploaded, waiting for the compliance server's verdict */
    FILE_AVAILABLE,     /* uploaded and allowed: served to holders of the GET URL */
} file_state;

typedef struct file_meta {
    char id[FILES_ID_LEN + 1];
    char *sender;          /* full JID that asked for the slot */
    char *recipient;       /* intended recipient or room (may be NULL) */
    char *name;            /* sanitised file name */
    char *declared_type;   /* content type the client declared (may be NULL) */
    char *type;            /* sniffed from the bytes (NULL until uploaded) */
    int64_t size;          /* exact size of the slot = of the file */
    char sha256[FILES_SHA_LEN + 1]; /* "" until uploaded */
    int screen_capture;
    file_state state;
    int64_t created_us;    /* slot granted (Unix epoch, microseconds) */
    int64_t uploaded_us;   /* 0 until uploaded */
    int64_t expires_us;    /* pending: slot deadline; else file expiry (0: never) */
} file_meta;

void file_meta_clear(file_meta *m);
const char *file_state_name(file_state s);

/* ---- metadata ---- */
store_status files_meta_put(store *st, const file_meta *m);
/* STORE_NOT_FOUND if there is no such file; m is cleared first. */
store_status files_meta_get(store *st, const char *id, file_meta *m);
store_status files_meta_del(store *st, const char *id);
/* Every file (any state); m valid during the call only. Malformed entries are skipped. */
store_status files_meta_list(store *st, void (*fn)(void *ud, const file_meta *m), void *ud);

/* ---- daily tally (bytes granted per bare JID per UTC day) ---- */
/* day: "YYYY-MM-DD" of ts_us. */
void files_day(int64_t ts_us, char out[11]);
store_status files_usage_get(store *st, const char *user, const char *day, int64_t *bytes);
/* Add delta (may be negative; the tally never goes below 0). */
store_status files_usage_add(store *st, const char *user, const char *day, int64_t delta);

/* ---- objects ---- */
/* Create upload_dir and its objects/ and tmp/ (mode 0700) and remove leftovers in tmp/
 * (transfers cut short by a crash). 0, or -1 with err set. */
int files_dir_init(const char *dir, int clean_tmp, char *err, size_t errlen);
/* The path of the object with this hex SHA-256 (into out). -1 if sha is not 64 hex. */
int files_object_path(const char *dir, const char *sha, char *out, size_t outlen);
/* A new temporary file in dir/tmp (O_EXCL, 0600); its path into path. fd or -1 (errno). */
int files_tmp_create(const char *dir, char *path, size_t pathlen);
/* Move a complete temporary file into place as the object sha (fsynced first). If the
 * object already exists (same content) the temporary file is dropped. 0 or -1 (errno). */
int files_commit(const char *dir, const char *tmp_path, int fd, const char *sha);
/* Publish a completed upload: its bytes (files_commit, m->sha256) and then its metadata
 * m, under the lock that files_remove takes too, so that removing another file with the
 * same content (parleyctl purge, in another process) cannot delete the shared bytes in
 * between. 0; -1 (errno) if the bytes could not be stored (nothing is published); -2 if
 * the metadata could not (store_last_error; bytes no other file uses are removed). */
int files_publish(store *st, const char *dir, const char *tmp_path, int fd, const file_meta *m);
/* Delete the metadata of id, and its object if no other file uses it. */
store_status files_remove(store *st, const char *dir, const char *id);

/* The capability key (dir/capability.key, 32 random bytes, 0600, made on first use).
 * 0, or -1 with err set. Never logged. */
int files_load_key(const char *dir, unsigned char key[FILES_KEY_LEN], char *err, size_t errlen);

#endif
