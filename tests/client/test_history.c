/* test_history.c - cmocka tests of the client's encrypted local history (history.c):
 * keys and their permissions, the three modes, full-text search, and refusing a wrong key
 * or a damaged file without touching it. Needs a build with SQLCipher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/client/cli/history.h"


typedef struct fixture {
    char dir[64];
    char db[128];
    char keyfile[128];
    char passfile[128];
    hist_key key;
} fixture;

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/parley-hist-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/data/alice@example.org.db", f->dir);
    snprintf(f->keyfile, sizeof f->keyfile, "%s/key", f->dir);
    snprintf(f->passfile, sizeof f->passfile, "%s/pass", f->dir);
    unsigned char raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)(i * 7 + 1);
    write_file(f->keyfile, raw, sizeof raw, 0600);
    write_file(f->passfile, "correct horse battery\n", 22, 0600);
    char err[256];
    assert_int_equal(hist_key_load_file(&f->key, f->keyfile, 0, err, sizeof err), HIST_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void add(hist *h, const char *peer, int out, const char *body)
{
    hist_msg m = {.peer = peer, .outgoing = out, .sender = out ? "alice@example.org/x" : peer,
                  .body = body};
    assert_int_equal(hist_add(h, &m), HIST_OK);
}

static int count_search(hist *h, const char *text)
{
    int n = -1;
    assert_int_equal(hist_search(h, text, 0, NULL, NULL, &n), HIST_OK);
    return n;
}

static int count_show(hist *h, const char *peer)
{
    int n = -1;
    assert_int_equal(hist_show(h, peer, 0, NULL, NULL, &n), HIST_OK);
    return n;
}

/* Does the file contain this byte string anywhere? (what `strings` would show) */
static int file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char data[1 << 20];
    size_t n = fread(data, 1, sizeof data, fp);
    fclose(fp);
    return memmem(data, n, needle, strlen(needle)) != NULL;
}

static void test_modes_and_permissions(void **state)
{
    fixture *f = *state;
    char err[256];
    hist *h;
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_OK);
    struct stat st;
    assert_int_equal(stat(f->db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char dir[160];
    snprintf(dir, sizeof dir, "%s/data", f->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    add(h, "Bob@example.org/phone", 0, "the launch code is periwinkle");
    add(h, "bob@example.org", 1, "noted, periwinkle it is");
    add(h, "carol@example.org", 0, "lunch at noon?");
    assert_int_equal(count_show(h, "bob@example.org"), 2);
    assert_int_equal(count_show(h, "carol@example.org/x"), 1);

    /* default: closing a window keeps it; disabled: closing forgets that conversation */
    assert_int_equal(hist_on_close(h, HIST_MODE_DEFAULT, "bob@example.org"), HIST_OK);
    assert_int_equal(count_show(h, "bob@example.org"), 2);
    assert_int_equal(hist_on_close(h, HIST_MODE_ARCHIVE, "bob@example.org"), HIST_OK);
    assert_int_equal(count_show(h, "bob@example.org"), 2);
    assert_int_equal(hist_on_close(h, HIST_MODE_DISABLED, "bob@example.org"), HIST_OK);
    assert_int_equal(count_show(h, "bob@example.org"), 0);
    assert_int_equal(count_search(h, "periwinkle"), 0);
    assert_int_equal(count_show(h, "carol@example.org"), 1);

    /* archive: sign-out keeps everything, across a close and re-open */
    assert_int_equal(hist_on_signout(h, HIST_MODE_ARCHIVE), HIST_OK);
    hist_close(h);
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_OK);
    assert_int_equal(count_search(h, "lunch"), 1);
    /* default: sign-out wipes, and the words are gone from the file too */
    assert_int_equal(hist_on_signout(h, HIST_MODE_DEFAULT), HIST_OK);
    assert_int_equal(count_search(h, "lunch"), 0);
    assert_int_equal(count_show(h, "carol@example.org"), 0);
    hist_close(h);
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_OK);
    assert_int_equal(count_show(h, "carol@example.org"), 0);
    add(h, "dave@example.org", 0, "x");
    assert_int_equal(hist_on_signout(h, HIST_MODE_DISABLED), HIST_OK);
    assert_int_equal(count_show(h, "dave@example.org"), 0);
    hist_close(h);
}

static int collect(const hist_msg *m, void *ud)
{
    char *out = ud;
    strcat(out, m->body);
    strcat(out, "|");
    return 0;
}

static void test_search(void **state)
{
    fixture *f = *state;
    char err[256];
    hist *h;
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_OK);
    add(h, "bob@example.org", 0, "Quarterly REPORT is late");
    add(h, "bob@example.org", 1, "the report is ready");
    add(h, "carol@example.org", 0, "Café au lait");
    add(h, "carol@example.org", 0, "OR NOT * \"quoted\" (x)");
    assert_int_equal(count_search(h, "report"), 2);           /* case-insensitive */
    assert_int_equal(count_search(h, "report late"), 1);      /* every word */
    assert_int_equal(count_search(h, "CAFÉ"), 1);             /* unicode61 folding */
    assert_int_equal(count_search(h, "missing"), 0);
    /* FTS operators in the user's text are just words, never syntax errors */
    assert_int_equal(count_search(h, "OR"), 1);
    assert_int_equal(count_search(h, "\"quoted\""), 1);
    assert_int_equal(count_search(h, "NOT report"), 0);
    assert_int_equal(count_search(h, "(x)"), 1);
    int n;
    assert_int_equal(hist_search(h, "   ", 0, NULL, NULL, &n), HIST_ERR_INVALID);
    char got[256] = "";
    assert_int_equal(hist_search(h, "report", 0, collect, got, &n), HIST_OK);
    assert_string_equal(got, "Quarterly REPORT is late|the report is ready|");
    got[0] = '\0';
    assert_int_equal(hist_show(h, "bob@example.org", 1, collect, got, &n), HIST_OK);
    assert_string_equal(got, "the report is ready|"); /* the last one */
    hist_close(h);
    /* encrypted at rest: neither bodies nor JIDs are in the file */
    assert_false(file_contains(f->db, "Quarterly"));
    assert_false(file_contains(f->db, "report"));
    assert_false(file_contains(f->db, "bob@example.org"));
    assert_false(file_contains(f->db, "SQLite format 3"));
}

static void test_wrong_key_and_passphrase(void **state)
{
    fixture *f = *state;
    char err[256];
    hist *h;
    hist_key pk;
    assert_int_equal(hist_key_load_file(&pk, f->passfile, 1, err, sizeof err), HIST_OK);
    assert_int_equal(hist_open(&h, f->db, &pk, err, sizeof err), HIST_OK);
    add(h, "bob@example.org", 0, "secret words");
    hist_close(h);
    struct stat before, after;
    assert_int_equal(stat(f->db, &before), 0);

    /* the raw key is not the passphrase's key */
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_ERR_OPEN);
    assert_null(h);
    assert_non_null(strstr(err, "wrong key"));
    /* another passphrase */
    write_file(f->passfile, "wrong\n", 6, 0600);
    hist_key wk;
    assert_int_equal(hist_key_load_file(&wk, f->passfile, 1, err, sizeof err), HIST_OK);
    assert_int_equal(hist_open(&h, f->db, &wk, err, sizeof err), HIST_ERR_OPEN);
    hist_key_clear(&wk);
    /* nothing was changed */
    assert_int_equal(stat(f->db, &after), 0);
    assert_int_equal(before.st_size, after.st_size);
    assert_int_equal(before.st_mtime, after.st_mtime);
    /* and the right passphrase still works */
    assert_int_equal(hist_open(&h, f->db, &pk, err, sizeof err), HIST_OK);
    assert_int_equal(count_search(h, "secret"), 1);
    hist_close(h);
    hist_key_clear(&pk);
}

static void test_damaged_files(void **state)
{
    fixture *f = *state;
    char err[256];
    hist *h;
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_OK);
    static char body[4000];
    memset(body, 'z', sizeof body - 1);
    for (int i = 0; i < 40; i++)
        add(h, "bob@example.org", 0, body); /* many pages */
    hist_close(h);
    struct stat st;
    assert_int_equal(stat(f->db, &st), 0);
    assert_true(st.st_size > 100000);

    /* truncated to half */
    assert_int_equal(truncate(f->db, st.st_size / 2), 0);
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_ERR_OPEN);
    assert_non_null(strstr(err, "untouched"));
    struct stat st2;
    assert_int_equal(stat(f->db, &st2), 0);
    assert_int_equal(st2.st_size, st.st_size / 2);
    /* truncated to nothing: still refused, not re-created */
    assert_int_equal(truncate(f->db, 0), 0);
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_ERR_OPEN);
    assert_int_equal(stat(f->db, &st2), 0);
    assert_int_equal(st2.st_size, 0);
    /* garbage */
    write_file(f->db, "SQLite format 3\0 not really", 27, 0600);
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_ERR_OPEN);
    /* a corrupted page in the middle of a good file */
    unlink(f->db);
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_OK);
    for (int i = 0; i < 40; i++)
        add(h, "bob@example.org", 0, body);
    hist_close(h);
    int fd = open(f->db, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "XXXXXXXX", 8, 20 * 1024 + 100), 8);
    close(fd);
    assert_int_equal(hist_open(&h, f->db, &f->key, err, sizeof err), HIST_ERR_OPEN);
    assert_non_null(strstr(err, "damaged"));
    /* a directory or a missing key */
    assert_int_equal(hist_open(&h, f->dir, &f->key, err, sizeof err), HIST_ERR_OPEN);
    hist_key none = {0};
    assert_int_equal(hist_open(&h, f->db, &none, err, sizeof err), HIST_ERR_KEY);
}

static void test_key_files(void **state)
{
    fixture *f = *state;
    char err[256];
    hist_key k;
    /* readable by group or others: refused, like ssh */
    assert_int_equal(chmod(f->keyfile, 0640), 0);
    assert_int_equal(hist_key_load_file(&k, f->keyfile, 0, err, sizeof err), HIST_ERR_KEY);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(f->keyfile, 0604), 0);
    assert_int_equal(hist_key_load_file(&k, f->keyfile, 0, err, sizeof err), HIST_ERR_KEY);
    assert_int_equal(chmod(f->keyfile, 0400), 0);
    assert_int_equal(hist_key_load_file(&k, f->keyfile, 0, err, sizeof err), HIST_OK);
    assert_memory_equal(k.raw, f->key.raw, 32);
    /* hex form equals the raw form */
    char hex[66];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02X", f->key.raw[i]);
    hex[64] = '\n';
    write_file(f->keyfile, hex, 65, 0600);
    assert_int_equal(hist_key_load_file(&k, f->keyfile, 0, err, sizeof err), HIST_OK);
    assert_memory_equal(k.raw, f->key.raw, 32);
    /* wrong sizes, bad hex, empty passphrase, missing file */
    write_file(f->keyfile, "short", 5, 0600);
    assert_int_equal(hist_key_load_file(&k, f->keyfile, 0, err, sizeof err), HIST_ERR_KEY);
    hex[3] = 'g';
    write_file(f->keyfile, hex, 64, 0600);
    assert_int_equal(hist_key_load_file(&k, f->keyfile, 0, err, sizeof err), HIST_ERR_KEY);
    write_file(f->passfile, "\nsecond line\n", 13, 0600);
    assert_int_equal(hist_key_load_file(&k, f->passfile, 1, err, sizeof err), HIST_ERR_KEY);
    assert_int_equal(hist_key_load_file(&k, "/nonexistent/key", 0, err, sizeof err), HIST_ERR_KEY);
    assert_int_equal(hist_key_load_file(&k, f->dir, 0, err, sizeof err), HIST_ERR_KEY);
}

static void test_paths_and_memory(void **state)
{
    (void)state;
    char err[256];
    char *p = hist_db_path("/d", "Alice@Example.org/laptop", err, sizeof err);
    assert_string_equal(p, "/d/alice@example.org.db");
    free(p);
    assert_null(hist_db_path("/d", "../x", err, sizeof err));
    assert_null(hist_db_path("/d", "", err, sizeof err));
    assert_null(hist_db_path("/d", "a\nb@x", err, sizeof err));
    hist_mode m;
    assert_int_equal(hist_mode_parse("archive", &m), 0);
    assert_int_equal(m, HIST_MODE_ARCHIVE);
    assert_int_equal(hist_mode_parse("disabled", &m), 0);
    assert_int_equal(m, HIST_MODE_DISABLED);
    assert_int_equal(hist_mode_parse("forever", &m), -1);
    assert_string_equal(hist_mode_name(HIST_MODE_DEFAULT), "default");

    /* a session without a key: a private in-memory database, same behaviour */
    hist *h;
    assert_int_equal(hist_open(&h, NULL, NULL, err, sizeof err), HIST_OK);
    add(h, "bob@x", 0, "hello there");
    assert_int_equal(count_search(h, "hello"), 1);
    assert_int_equal(hist_on_signout(h, HIST_MODE_DEFAULT), HIST_OK);
    assert_int_equal(count_search(h, "hello"), 0);
    hist_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_modes_and_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_and_passphrase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_and_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

