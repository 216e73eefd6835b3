/* test_srv_mam.c - the archive's group commit (mam.c) on a real SQLite store: rows wait
 * for mam_flush and keep their order, a long batch commits early, a query answers with the
 * rows archived a moment ago, deleting an archive takes its waiting rows with it, a commit
 * the store refuses is kept and retried, and shutdown commits what is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/xml.h"
#include "server/mam.h"
#include "server/server.h"
#include "server/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROOM "annals@conference.localhost"
#define OTHER "other@conference.localhost"

typedef struct fixture {
    char dir[64];
    char uri[128];
    server srv;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/parley-test-mam-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->uri, sizeof f->uri, "sqlite:%s/parley.db", f->dir);
    char err[256];
    f->srv.store = store_open(f->uri, err, sizeof err);
    if (!f->srv.store) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    f->srv.cfg.archive = 1;
    f->srv.cfg.max_stanza_size = 65536;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mam_free(&f->srv);
    store_close(f->srv.store);
    char path[128];
    const char *const files[] = {"parley.db", "parley.db-wal", "parley.db-shm"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A room message with body text, archived under id. */
static void say(server *srv, const char *room, const char *id, const char *text)
{
    char doc[256];
    snprintf(doc, sizeof doc, "<message from='%s/alice' type='groupchat'><body>%s</body></message>",
             room, text);
    xml_node *m = xml_parse_document(doc, strlen(doc), XMLNS_CLIENT, 1 << 16);
    assert_non_null(m);
    mam_archive_room(srv, room, "alice@localhost", id, m);
    xml_free(m);
}

typedef struct ids {
    char list[400][16];
    int n;
} ids;

static void collect(void *ud, const mam_row *row)
{
    ids *out = ud;
    if (out->n < 400)
        snprintf(out->list[out->n++], sizeof out->list[0], "%s", row->id);
}

/* Every stored id of owner, in archive order (paging through the store). */
static void stored(server *srv, const char *owner, ids *out)
{
    memset(out, 0, sizeof *out);
    char after[16] = "";
    for (int pages = 0; pages < 10; pages++) {
        mam_filter q = {.owner = owner, .max = 100, .after_id = *after ? after : NULL};
        int complete = 0, before = out->n;
        assert_int_equal(store_mam_query(srv->store, &q, collect, out, &complete), STORE_OK);
        if (complete || out->n == before)
            return;
        snprintf(after, sizeof after, "%s", out->list[out->n - 1]);
    }
}

static void rows_wait_for_the_flush_in_order(void **state)
{
    fixture *f = *state;
    say(&f->srv, ROOM, "id-a", "one");
    say(&f->srv, ROOM, "id-b", "two");
    say(&f->srv, ROOM, "id-c", "three");
    ids got;
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 0);
    mam_flush(&f->srv);
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 3);
    assert_string_equal(got.list[0], "id-a");
    assert_string_equal(got.list[1], "id-b");
    assert_string_equal(got.list[2], "id-c");
    /* Nothing twice: a second flush has nothing to write. */
    mam_flush(&f->srv);
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 3);
}

static void a_long_batch_commits_early(void **state)
{
    fixture *f = *state;
    char id[16];
    ids got;
    for (int i = 0; i < 255; i++) {
        snprintf(id, sizeof id, "id-%03d", i);
        say(&f->srv, ROOM, id, "x");
    }
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 0);
    for (int i = 255; i < 300; i++) {
        snprintf(id, sizeof id, "id-%03d", i);
        say(&f->srv, ROOM, id, "x");
    }
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 256); /* committed when the 256th arrived */
    mam_flush(&f->srv);
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 300);
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "id-%03d", i);
        assert_string_equal(got.list[i], id);
    }
}

typedef struct answers {
    int results;
    int fin;
    char last_id[16];
} answers;

static void take_answer(void *ud, xml_node *stanza)
{
    answers *a = ud;
    xml_node *res = xml_child(stanza, XMLNS_MAM, "result");
    if (res) {
        a->results++;
        snprintf(a->last_id, sizeof a->last_id, "%s", xml_get_attr(res, "id"));
    } else if (xml_child(stanza, XMLNS_MAM, "fin")) {
        a->fin++;
    }
    xml_free(stanza);
}

/* A query of ROOM's archive answers n results, the last one last_id, and a <fin/>. */
static void a_query_sees_what_waits_ids(server *srv, int n, const char *last_id)
{
    const char *q = "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2'/></iq>";
    xml_node *iq = xml_parse_document(q, strlen(q), XMLNS_CLIENT, 1 << 16);
    assert_non_null(iq);
    answers a = {0};
    mam_target t = {.owner = ROOM, .to = "bob@localhost/b", .send = take_answer, .ud = &a};
    mam_answer_query(srv, &t, iq);
    xml_free(iq);
    assert_int_equal(a.results, n);
    assert_int_equal(a.fin, 1);
    assert_string_equal(a.last_id, last_id);
}

static void a_query_sees_what_waits(void **state)
{
    fixture *f = *state;
    say(&f->srv, ROOM, "id-1", "archived a moment ago");
    say(&f->srv, ROOM, "id-2", "and this too");
    a_query_sees_what_waits_ids(&f->srv, 2, "id-2");
}

static void forgetting_an_archive_drops_its_waiting_rows(void **state)
{
    fixture *f = *state;
    say(&f->srv, ROOM, "old", "committed before");
    mam_flush(&f->srv);
    say(&f->srv, ROOM, "id-1", "gone");
    say(&f->srv, OTHER, "id-2", "stays");
    say(&f->srv, ROOM, "id-3", "gone too");
    mam_forget(&f->srv, ROOM);
    mam_flush(&f->srv);
    ids got;
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 0);
    stored(&f->srv, OTHER, &got);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.list[0], "id-2");
}

static void a_refused_commit_is_kept_and_retried(void **state)
{
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/parley.db", f->dir);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    say(&f->srv, ROOM, "id-1", "while locked");
    mam_flush(&f->srv); /* fails after the store's busy timeout */
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    ids got;
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 0);
    /* The next message joins the kept one; a query does not wait for the retry delay:
     * both are committed, in order, once. */
    say(&f->srv, ROOM, "id-2", "after");
    a_query_sees_what_waits_ids(&f->srv, 2, "id-2");
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.list[0], "id-1");
    assert_string_equal(got.list[1], "id-2");
}

static void shutdown_commits_what_is_left(void **state)
{
    fixture *f = *state;
    say(&f->srv, ROOM, "id-1", "at the end");
    mam_free(&f->srv);
    ids got;
    stored(&f->srv, ROOM, &got);
    assert_int_equal(got.n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rows_wait_for_the_flush_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(a_long_batch_commits_early, setup, teardown),
        cmocka_unit_test_setup_teardown(a_query_sees_what_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(forgetting_an_archive_drops_its_waiting_rows, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_refused_commit_is_kept_and_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(shutdown_commits_what_is_left, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
